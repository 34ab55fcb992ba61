//! # canary-router
//!
//! A proxy-wasm HTTP filter for Envoy and Istio sidecars that chooses the
//! upstream cluster of each request from rules shaped like an Istio
//! VirtualService `http:` block: weights, header and source-label matches,
//! and sticky canaries.
//!
//! The crate is split so that the decision is pure and testable without a
//! host: [`config`] (what operators write) → [`plugin`] (parse + validate)
//! → [`rules`] (compiled, immutable) → [`rules::RuleSet::decide`]. The
//! proxy-wasm glue (built only for `wasm32`) reads the request, calls
//! `decide`, writes the cluster header and bumps stats.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

pub mod cluster;
pub mod config;
pub mod cookie;
pub mod decode;
pub mod error;
pub mod guard;
pub mod hosts;
pub mod limits;
pub mod matcher;
pub mod pairs;
pub mod pick;
pub mod plugin;
pub mod poll;
pub mod rules;
pub mod shared;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use error::{ConfigError, Reason};
pub use plugin::{Plugin, Rules, Settings};
pub use rules::{Decision, Outcome, RequestView, RuleSet, Workload};
