//! Runs the examples in a real Envoy: for end-to-end tests, the demo and
//! benchmarks.
//!
//! ```no_run
//! use envoy_runner::{Envoy, EnvoyConfig, EnvoyOptions, Request, SplitKey};
//!
//! let mut config = EnvoyConfig::from_example("weighted")?;
//! config.set_rules_file(envoy_runner::example_dir("weighted").join("rules-50-50.json"))?;
//! let envoy = Envoy::start(config, &EnvoyOptions::default())?;
//! let mut client = envoy.client(10000)?; // the port as written in envoy.yaml
//! let req = Request::get("/").host("backend");
//! let split = envoy_runner::count_split(&mut client, 2000, &req, &SplitKey::version())?;
//! envoy_runner::check_binomial(split.total(), 0.5, split.count("v2"))?;
//! let stats = envoy.stats()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`find_envoy`]: `ENVOY_BIN`, `envoy` on `PATH`, then the project's venv.
//! - [`EnvoyConfig`]: an `envoy.yaml` parsed into a tree; rules can be swapped.
//! - [`Envoy::start`]: renders the config (free loopback ports, absolute wasm
//!   path), starts Envoy in its own process group with its log in a temp dir,
//!   and waits until it is ready. Dropping it stops Envoy; when dropped while
//!   a test panics it prints the tail of Envoy's log and keeps the temp dir.
//! - [`HttpClient`]: a blocking HTTP/1.1 keep-alive client with byte headers.
//! - [`native`]: Envoy's own routes for a rule set, as istiod translates a
//!   VirtualService (the oracle of match semantics).
//! - [`route_policy`]: the rest of istiod's routes (action, mesh defaults,
//!   a rule's route policies, decorator): the oracle of route policies.
//! - [`count_split`], [`check_binomial`]: split counting and its statistics.

mod binary;
mod config;
mod http;
mod module;
pub mod native;
mod process;
pub mod route_policy;
mod split;
mod stats;
mod wasm;

pub use binary::{
    envoy_version, find_envoy, find_envoy_previous_abi, repo_root, HOW_TO_GET_ENVOY,
    PREVIOUS_ABI_ENVOY,
};
pub use config::{
    example_dir, example_names, set_listener_rules, EnvoyConfig, STRING_VALUE_TYPE,
    WASM_FILTER_TYPE,
};
pub use http::{get_once, HttpClient, Request, Response};
pub use module::{
    bootstrap_to_module, build_filter_module, resource_file_for, wasm_filters_to_module,
    workload_env, Build, FILTER_MODULE_RELATIVE, MODULE_FILTER_TYPE, STRIP_PREFIX_FLAG,
};
pub use process::{Envoy, EnvoyOptions, WasmModule};
pub use split::{
    binomial, check_binomial, count_split, count_split_parallel, BinomialCheck, Split, SplitKey,
    DEFAULT_Z,
};
pub use stats::{parse_prometheus, prom_find, PromSample, Stats};
pub use wasm::{build_filter_wasm, FILTER_WASM_RELATIVE};

use std::fmt;

/// An error of the runner, with enough context to act on (for Envoy failures,
/// the tail of its log).
#[derive(Clone, Debug)]
pub struct Error {
    msg: String,
}

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error { msg: msg.into() }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
