//! # canary-router
//!
//! A proxy-wasm HTTP filter for Envoy and Istio sidecars that chooses the
//! upstream cluster of each request from rules shaped like an Istio
//! VirtualService `http:` block: weights, header and source-label matches,
//! and sticky canaries.
//!
//! Three layers, so that the decision is pure and testable without a host:
//! - [`schema`]: what operators write (one declaration per type), read from
//!   JSON with the path of every error, and the documented limits;
//! - [`domain`]: the decision logic: configuration → [`domain::plugin`]
//!   (settings, compiled rules) → [`domain::rules::RuleSet::decide`] per
//!   request, plus the guards and the rule-source poller, each behind a
//!   small trait for its host;
//! - [`adapters`]: the hosts. The proxy-wasm adapter (its host calls only
//!   for `wasm32`) reads the request, calls `decide`, writes the cluster
//!   header and bumps stats.
//!
//! What the filter runs on in place of std and the libraries it replaced
//! (JSON, regex, the proxy-wasm ABI) is the `filter-runtime` crate.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

pub mod adapters;
pub mod domain;
pub mod schema;

pub use domain::plugin::{Plugin, Rules, Settings};
pub use domain::rules::{Decision, Outcome, RequestView, RuleSet, Workload};
pub use schema::error::{ConfigError, ConfigErrorKind, Reason};
