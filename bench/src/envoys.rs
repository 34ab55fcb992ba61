//! Starting the Envoys of a run: the upstream, and the Envoys under test,
//! each a fresh process, pinned to its core.

use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_runner::{Build, Envoy, EnvoyConfig, EnvoyOptions, WasmModule};

use crate::configs::{self, Kind, UPSTREAM_PORTS};
use crate::{pin, ENVOY_CORE, LOAD_CORE};

/// The `.wasm` modules the Envoys under test load.
pub struct Modules<'a> {
    /// canary-router (what scripts/build-wasm.sh ships).
    pub filter: &'a Path,
    /// The wasm floor, its exports trimmed to the callbacks it implements
    /// (as canary-router exports only those).
    pub floor: &'a Path,
    /// The dynamic module (`libcanary_router_module.so`, as
    /// scripts/build-module.sh builds it), for
    /// the cluster specifier's rows ([`Kind::is_specifier`]).
    pub specifier: Option<&'a Path>,
}

/// The upstream Envoy, and how to start Envoys under test that send to it.
pub struct Starter<'a> {
    /// Kept alive (and stopped on drop) with the Envoys under test.
    _upstream: Envoy,
    /// The upstream's ports of v1 and v2.
    upstream_ports: (u16, u16),
    modules: Option<&'a Modules<'a>>,
    pin_cores: bool,
    /// Worker threads of each Envoy under test (`--concurrency`).
    workers: usize,
    /// What runs the Envoys under test instead of Envoy itself (a script
    /// that starts Envoy under valgrind), if anything.
    wrapper: Option<PathBuf>,
}

fn options(wasm: Option<&Path>, extra: Vec<String>, workers: usize) -> EnvoyOptions {
    let mut o = EnvoyOptions::default()
        .concurrency(workers)
        .without_access_logs();
    o.log_level = "warn".into();
    o.extra_args = extra;
    if let Some(w) = wasm {
        o.wasm = WasmModule::Path(w.to_path_buf());
    }
    o
}

/// A loopback port free now (the kernel's pick, released at once).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("reserving a port: {e}"))
}

impl<'a> Starter<'a> {
    /// Starts the upstream Envoy (on the load generator's core when pinning).
    /// `modules` serves the kinds that name no module of their own.
    pub fn new(modules: Option<&'a Modules<'a>>, pin_cores: bool) -> Result<Self, String> {
        let cfg = EnvoyConfig::from_yaml_str(&configs::upstream_yaml(), "bench upstream")
            .map_err(|e| e.to_string())?;
        let upstream =
            Envoy::start(cfg, &options(None, Vec::new(), 1)).map_err(|e| e.to_string())?;
        if pin_cores {
            pin(upstream.pid(), LOAD_CORE)?;
        }
        let port = |p: u16| {
            upstream
                .addr(p)
                .map(|a| a.port())
                .map_err(|e| e.to_string())
        };
        let upstream_ports = (port(UPSTREAM_PORTS[0].0)?, port(UPSTREAM_PORTS[1].0)?);
        Ok(Starter {
            _upstream: upstream,
            upstream_ports,
            modules,
            pin_cores,
            workers: 1,
            wrapper: None,
        })
    }

    /// Envoys under test are started by `wrapper` (given Envoy's arguments)
    /// instead of Envoy, and may take minutes to be ready (valgrind).
    pub fn with_wrapper(mut self, wrapper: PathBuf) -> Self {
        self.wrapper = Some(wrapper);
        self
    }

    /// Envoys under test run this many workers (default 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The module an Envoy of this kind loads, if any.
    fn module(&self, kind: &'a Kind) -> Result<Option<&'a Path>, String> {
        let from = |pick: fn(&'a Modules<'a>) -> &'a Path| {
            self.modules
                .map(|m| Some(pick(m)))
                .ok_or_else(|| format!("{}: no module given", kind.name()))
        };
        match kind {
            Kind::Native | Kind::NativeSticky(_) | Kind::Lua | Kind::LuaDefaultRoute => Ok(None),
            Kind::CanaryRouterModuleSpecifier | Kind::CanaryRouterModuleSpecifierSticky(_) => self
                .modules
                .and_then(|m| m.specifier)
                .map(Some)
                .ok_or_else(|| format!("{}: the module's .so was not built", kind.name())),
            Kind::WasmEmpty | Kind::WasmReadOnly | Kind::WasmNoRead | Kind::WasmFloor => {
                from(|m| m.floor)
            }
            Kind::CanaryRouter { .. }
            | Kind::CanaryRouterModule { .. }
            | Kind::CanaryRouterEveryRequest
            | Kind::CanaryRouterPortless
            | Kind::CanaryRouterPortlessRequestPort
            | Kind::CanaryRouterGuard
            | Kind::CanaryRouterModuleSticky(_)
            | Kind::CanaryRouterRamp
            | Kind::CanaryRouterBaseline => from(|m| m.filter),
            Kind::Module { path, .. } => Ok(Some(path.as_path())),
        }
    }

    /// Starts a fresh Envoy under test of this kind, pinned to its core.
    pub fn start(&self, kind: &'a Kind) -> Result<Envoy, String> {
        let wasm = self.module(kind)?;
        // Destinations without a port take the port the request arrives on:
        // the listener binds at a port known here, and two of the clusters
        // are named after it (the same for every configuration).
        let port = free_port()?;
        let (v1, v2) = self.upstream_ports;
        let clusters = configs::clusters_json(port, v1, v2);
        let yaml = configs::under_test_yaml(kind, wasm, port);
        let build = match kind {
            Kind::CanaryRouterModule { .. } | Kind::CanaryRouterModuleSticky(_) => Build::Module,
            _ => Build::Wasm,
        };
        let mut o = options(wasm, vec!["--config-yaml".into(), clusters], self.workers)
            .bind_port(configs::LISTENER_PORT, port)
            .build(build);
        if let Some(w) = &self.wrapper {
            o = o.envoy_bin(w);
            o.ready_timeout = Duration::from_secs(300);
        }
        let cfg = EnvoyConfig::from_yaml_str(&yaml, kind.name()).map_err(|e| e.to_string())?;
        let envoy = Envoy::start(cfg, &o).map_err(|e| format!("{}: {e}", kind.name()))?;
        if self.pin_cores {
            pin(envoy.pid(), ENVOY_CORE)?;
        }
        Ok(envoy)
    }

    /// Starts one fresh Envoy per kind.
    pub fn start_all(&self, kinds: &'a [Kind]) -> Result<Vec<Envoy>, String> {
        kinds.iter().map(|k| self.start(k)).collect()
    }
}
