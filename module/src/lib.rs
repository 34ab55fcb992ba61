//! # canary-router-module
//!
//! canary-router as an Envoy dynamic module: a native shared object
//! (`libcanary_router_module.so`) that Envoy 1.40 loads as an HTTP filter
//! or as a route's cluster specifier.
//! The rules, their JSON, the errors, the limits, the decisions and the
//! stat names are the filter crate's ([`canary_router`]), shared and not
//! copied; this crate is only the adapter to Envoy's dynamic-module ABI.
//!
//! - [`abi`]: the ABI declarations, handles and event hooks, the crate's only `unsafe`;
//! - [`version`]: the ABI version and the check that refuses another Envoy;
//! - [`config`]: a filter configuration (the rule JSON → compiled rules, stats);
//! - [`stream`]: one request: decide, write the route header, re-select the route;
//! - [`specifier`]: the cluster specifier: one service's route, a cluster for every request;
//! - [`guard`]: the destinations' guards, counted by every worker together;
//! - [`metrics`]: the stats, by the wasm filter's names;
//! - [`source`]: the polled rule file, ticked by a thread of the module's own;
//! - [`store`]: the process-wide store that stands in for proxy-wasm's shared data;
//! - [`workload`]: who this proxy is (namespace, labels), for source-label rules;
//! - [`logger`]: the `log` crate's records into Envoy's log.
//!
//! Why a crate beside the filter and not a feature of it: the filter crate's
//! cdylib is the `.wasm`, built `no_std` with its own heap for `wasm32`;
//! this adapter needs `std` (threads, `catch_unwind`, the environment) and
//! its own release profile (speed, unwinding). As its own crate it cannot
//! add a byte to the `.wasm` or a dependency to the filter, and it follows
//! the filter's reorganisation through its public API only.

pub mod abi;
pub mod config;
pub mod guard;
pub mod logger;
pub mod metrics;
pub mod source;
pub mod specifier;
pub mod store;
pub mod stream;
pub mod version;
pub mod workload;
