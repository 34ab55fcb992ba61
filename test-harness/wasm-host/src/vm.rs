//! [`Module`] (a compiled proxy-wasm module) and [`Vm`] (one instance of it, driven like
//! Envoy drives a worker's VM).

use super::abi;
use super::cache;
use super::clock::Clock;
use super::error::HostError;
use super::maps::HeaderMap;
use super::metrics::{MetricIds, Stats};
use super::properties::{NodeMetadataPaths, Properties};
use super::random::Random;
use super::shared::SharedData;
use super::state::{CallResponse, Failure, HostCall, HostState, Stream};
use super::types::{Action, ForeignCall, HttpAnswer, HttpCall, LocalReply, LogLevel, Status};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use wasmtime::{Engine, Instance, InstancePre, Store, TypedFunc, WasmParams, WasmResults};

/// How many log lines a [`HostError::Trap`] carries.
const TRAP_LOG_LINES: usize = 10;

/// The process-wide wasmtime engines (compiled code is tied to its engine): the plain one,
/// and the one whose code counts fuel ([`Module::load_metered`]), which runs slower.
fn engine(metered: bool) -> Result<&'static Engine, HostError> {
    static ENGINES: [OnceLock<Engine>; 2] = [OnceLock::new(), OnceLock::new()];
    let cell = &ENGINES[usize::from(metered)];
    if let Some(engine) = cell.get() {
        return Ok(engine);
    }
    let mut config = wasmtime::Config::new();
    config.consume_fuel(metered);
    let engine = Engine::new(&config).map_err(|e| HostError::Load {
        module: "<engine>".into(),
        message: describe(&e),
    })?;
    Ok(cell.get_or_init(|| engine))
}

/// A wasmtime error: its root cause (the trap, or the host call's error) first, then the
/// context wasmtime added (the wasm backtrace).
fn describe(error: &wasmtime::Error) -> String {
    let causes: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
    match causes.split_last() {
        Some((root, [])) => root.clone(),
        Some((root, context)) => format!("{root}\n{}", context.join("\n")),
        None => String::new(),
    }
}

/// A compiled proxy-wasm module, ready to be instantiated into many [`Vm`]s.
///
/// Compiling is the slow part (seconds for a filter in a debug build): load a module once per
/// test binary, e.g. in a `static MODULE: OnceLock<Module>`, and make a fresh [`Vm`] per test.
/// `Module` is cheap to clone and can be shared between threads. Compiled code is also cached
/// on disk (`target/host-cache`, or `$CANARY_HOST_CACHE_DIR`; `off` disables it), so the next
/// process loading the same bytes skips compiling.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    name: String,
    pre: InstancePre<HostState>,
    stubbed: Vec<String>,
    metered: bool,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.name)
            .field("unimplemented_imports", &self.inner.stubbed)
            .finish()
    }
}

impl Module {
    /// Reads and compiles the `.wasm` file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Module, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| HostError::Load {
            module: path.display().to_string(),
            message: e.to_string(),
        })?;
        Module::from_bytes(&path.display().to_string(), &bytes)
    }

    /// Reads and compiles the `.wasm` file at `path` with fuel metering: every [`Vm`] of it
    /// counts the wasm instructions it runs ([`Vm::fuel_consumed`]), a figure that, unlike
    /// time, does not depend on the machine or its load. Metered code runs slower.
    pub fn load_metered(path: impl AsRef<Path>) -> Result<Module, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| HostError::Load {
            module: path.display().to_string(),
            message: e.to_string(),
        })?;
        Module::compile(&path.display().to_string(), &bytes, true)
    }

    /// Compiles a module from its bytes; `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Module, HostError> {
        Module::compile(name, bytes, false)
    }

    fn compile(name: &str, bytes: &[u8], metered: bool) -> Result<Module, HostError> {
        let load_error = |message: String| HostError::Load {
            module: name.to_string(),
            message,
        };
        let engine = engine(metered)?;
        let module = cache::compile(engine, bytes).map_err(|e| load_error(describe(&e)))?;
        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        if !exports.contains(&"proxy_abi_version_0_2_1") {
            let found: Vec<&&str> = exports
                .iter()
                .filter(|e| e.starts_with("proxy_abi_version_"))
                .collect();
            return Err(load_error(if found.is_empty() {
                "not a proxy-wasm module: it exports no proxy_abi_version_* function".into()
            } else {
                format!("exports {found:?}; this host only speaks proxy-wasm ABI 0.2.1")
            }));
        }
        if !exports.contains(&"memory") {
            return Err(load_error("it exports no memory named `memory`".into()));
        }
        if !exports.contains(&"malloc") && !exports.contains(&"proxy_on_memory_allocate") {
            return Err(load_error(
                "it exports neither `malloc` nor `proxy_on_memory_allocate`".into(),
            ));
        }
        let (linker, stubbed) =
            abi::linker(engine, &module).map_err(|e| load_error(describe(&e)))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| load_error(describe(&e)))?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                name: name.to_string(),
                pre,
                stubbed,
                metered,
            }),
        })
    }

    /// The module's name (its path when loaded from a file).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Imports the module has that this host does not implement (`module.name`). Calling one
    /// fails the call loudly: the export running returns [`HostError::Trap`] naming it.
    pub fn unimplemented_imports(&self) -> &[String] {
        &self.inner.stubbed
    }
}

/// Everything a [`Vm`] can be given; start from `VmOptions::default()`.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// The node metadata (Istio puts `NAMESPACE`, `LABELS`, ... there). Default `{}`.
    pub node_metadata: serde_json::Value,
    /// Where the node metadata is visible (default: both `xds.node.metadata` and
    /// `node.metadata`).
    pub node_metadata_paths: NodeMetadataPaths,
    /// `node.id` / `xds.node.id`.
    pub node_id: String,
    /// `node.cluster` / `xds.node.cluster`.
    pub node_cluster: String,
    /// Shared-data store; clone one into several VMs to share it (default: a fresh one).
    pub shared: SharedData,
    /// Stats store; clone one into several VMs to aggregate (default: a fresh one).
    pub stats: Stats,
    /// The clock the guest sees (default: a fresh one at 2025-01-01T00:00:00Z).
    pub clock: Clock,
    /// Seed of WASI `random_get` (default 0).
    pub random_seed: u64,
    /// VM configuration (`vm_config.configuration`), readable in `on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// `vm_id`: the namespace of shared data; also the `plugin_vm_id` property.
    pub vm_id: String,
    /// The `plugin_root_id` property.
    pub root_id: String,
    /// The `plugin_name` property.
    pub plugin_name: String,
    /// Lines below this level are dropped, and `proxy_get_log_level` returns it
    /// (default: trace, everything is kept).
    pub log_level: LogLevel,
    /// Environment variables the guest sees through WASI (Envoy's `environment_variables`).
    pub env: Vec<(String, String)>,
    /// Clusters `proxy_http_call` may target; `None` (default) accepts any. Envoy refuses an
    /// unknown cluster with BadArgument.
    pub clusters: Option<Vec<String>>,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            node_metadata: serde_json::Value::Object(serde_json::Map::new()),
            node_metadata_paths: NodeMetadataPaths::Both,
            node_id: String::new(),
            node_cluster: String::new(),
            shared: SharedData::new(),
            stats: Stats::new(),
            clock: Clock::default(),
            random_seed: 0,
            vm_configuration: Vec::new(),
            vm_id: String::new(),
            root_id: String::new(),
            plugin_name: String::new(),
            log_level: LogLevel::Trace,
            env: Vec::new(),
            clusters: None,
        }
    }
}

/// The request side of an HTTP stream, as the filter left it.
#[derive(Clone, Debug)]
pub struct RequestOutcome {
    /// The stream's context id.
    pub id: u32,
    /// What `on_request_headers` returned.
    pub action: Action,
    /// The request headers after the filter.
    pub headers: HeaderMap,
    /// The filter called the `clear_route_cache` foreign function for this stream.
    pub cleared_route_cache: bool,
    /// How many times it did.
    pub route_cache_clears: u32,
    /// The local reply it sent, if any (the stream is then closed).
    pub local_reply: Option<LocalReply>,
    /// It resumed the request (`proxy_continue_stream`) after pausing.
    pub resumed: bool,
    /// It reset the stream (`proxy_close_stream`).
    pub reset: bool,
    /// The stream is over (`on_done`, `on_log` and `on_delete` ran).
    pub closed: bool,
}

impl RequestOutcome {
    /// The first value of request header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Whether the request goes on to the router: not answered locally, not reset, and not
    /// paused (or resumed).
    pub fn forwarded(&self) -> bool {
        self.local_reply.is_none()
            && !self.reset
            && (self.action == Action::Continue || self.resumed)
    }
}

/// The response side of an HTTP stream, after `on_response_headers`.
#[derive(Clone, Debug)]
pub struct ResponseOutcome {
    /// What `on_response_headers` returned.
    pub action: Action,
    /// The response headers after the filter (the local reply's, if it sent one).
    pub headers: HeaderMap,
    /// A local reply the filter sent while encoding, which replaced the response.
    pub local_reply: Option<LocalReply>,
}

impl ResponseOutcome {
    /// The first value of response header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// `proxy_on_http_call_response(context, token, headers, body size, trailers)`.
type OnHttpCallResponse = TypedFunc<(u32, u32, u32, u32, u32), ()>;

struct Exports {
    on_context_create: Option<TypedFunc<(u32, u32), ()>>,
    on_vm_start: Option<TypedFunc<(u32, u32), u32>>,
    on_configure: Option<TypedFunc<(u32, u32), u32>>,
    on_request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    on_response_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    on_tick: Option<TypedFunc<u32, ()>>,
    on_http_call_response: Option<OnHttpCallResponse>,
    on_done: Option<TypedFunc<u32, u32>>,
    on_log: Option<TypedFunc<u32, ()>>,
    on_delete: Option<TypedFunc<u32, ()>>,
}

/// An optional export with the expected signature; a wrong signature is a load error.
fn export<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    instance: &Instance,
    name: &str,
    module: &str,
) -> Result<Option<TypedFunc<P, R>>, HostError> {
    let Some(func) = instance.get_func(&mut *store, name) else {
        return Ok(None);
    };
    func.typed::<P, R>(&*store)
        .map(Some)
        .map_err(|e| HostError::Load {
            module: module.to_string(),
            message: format!("export `{name}`: {}", describe(&e)),
        })
}

/// The root context id (Envoy numbers contexts from 1; 0 is the VM context of `_initialize`).
const ROOT_ID: u32 = 1;

/// One VM: an instance of a [`Module`] with its root context and HTTP streams, driven the way
/// Envoy drives a worker's VM. Everything the guest does through the host is recorded and can
/// be inspected: headers, logs, metrics, shared data, HTTP calls, foreign-function calls.
///
/// ```no_run
/// use wasm_host::{Module, Vm, VmOptions};
/// # fn main() -> Result<(), wasm_host::HostError> {
/// let module = Module::load(test_tools::filter_wasm())?;
/// let mut vm = Vm::new(&module, VmOptions::default())?;
/// assert!(vm.configure(br#"{"services":[]}"#)?);
/// let r = vm.request(&[(":authority", "backend"), (":path", "/"), (":method", "GET")])?;
/// println!("{:?} {:?}", r.action, r.header("x-canary-upstream"));
/// let response = vm.respond(&r, &[(":status", "200")])?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
pub struct Vm {
    store: Store<HostState>,
    exports: Exports,
    module: String,
    next_context_id: u32,
    started: bool,
    configured: bool,
    failed: Option<String>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("module", &self.module)
            .field("started", &self.started)
            .field("configured", &self.configured)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Vm {
    /// Instantiates `module` and runs its WASI initialization (`_initialize`, then `main` or
    /// `__main_void` if exported, or else `_start`), like Envoy. The root context is created by
    /// [`Vm::start`] / [`Vm::configure`].
    pub fn new(module: &Module, options: VmOptions) -> Result<Vm, HostError> {
        let engine = engine(module.inner.metered)?;
        let name = module.inner.name.clone();
        let mut properties = Properties::new(
            options.node_metadata,
            options.node_id,
            options.node_cluster,
            options.node_metadata_paths,
        );
        properties.set(&["plugin_vm_id"], options.vm_id.as_bytes());
        properties.set(&["plugin_root_id"], options.root_id.as_bytes());
        properties.set(&["plugin_name"], options.plugin_name.as_bytes());
        let state = HostState {
            memory: None,
            malloc: None,
            root_id: ROOT_ID,
            effective: 0,
            in_configure: false,
            plugin_config: Vec::new(),
            vm_config: options.vm_configuration,
            call_response: None,
            streams: HashMap::new(),
            logs: Vec::new(),
            log_level: options.log_level,
            stdout: Vec::new(),
            stderr: Vec::new(),
            clock: options.clock,
            random: Random::new(options.random_seed),
            shared: options.shared,
            vm_id: options.vm_id,
            metrics: MetricIds::new(options.stats),
            properties,
            tick_period_ms: 0,
            next_tick: 0,
            http_calls: BTreeMap::new(),
            last_token: 0,
            clusters: options.clusters.map(|c| c.into_iter().collect()),
            failures: HashMap::new(),
            calls: [0; HostCall::ALL.len()],
            foreign_calls: Vec::new(),
            root_route_cache_clears: 0,
            root_done_pending: false,
            done_called: false,
            env: options.env,
        };
        let mut store = Store::new(engine, state);
        if module.inner.metered {
            store.set_fuel(u64::MAX).map_err(|e| HostError::Load {
                module: name.clone(),
                message: describe(&e),
            })?;
        }
        let instance = module
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Load {
                module: name.clone(),
                message: describe(&e),
            })?;
        let memory = instance.get_memory(&mut store, "memory");
        let malloc = match export::<u32, u32>(&mut store, &instance, "malloc", &name)? {
            Some(malloc) => Some(malloc),
            None => export(&mut store, &instance, "proxy_on_memory_allocate", &name)?,
        };
        store.data_mut().memory = memory;
        store.data_mut().malloc = malloc;
        let initialize = export::<(), ()>(&mut store, &instance, "_initialize", &name)?;
        let start = export::<(), ()>(&mut store, &instance, "_start", &name)?;
        let main = export::<(u32, u32), u32>(&mut store, &instance, "main", &name)?;
        let main_void = export::<(), u32>(&mut store, &instance, "__main_void", &name)?;
        let exports = Exports {
            on_context_create: export(&mut store, &instance, "proxy_on_context_create", &name)?,
            on_vm_start: export(&mut store, &instance, "proxy_on_vm_start", &name)?,
            on_configure: export(&mut store, &instance, "proxy_on_configure", &name)?,
            on_request_headers: export(&mut store, &instance, "proxy_on_request_headers", &name)?,
            on_response_headers: export(&mut store, &instance, "proxy_on_response_headers", &name)?,
            on_tick: export(&mut store, &instance, "proxy_on_tick", &name)?,
            on_http_call_response: export(
                &mut store,
                &instance,
                "proxy_on_http_call_response",
                &name,
            )?,
            on_done: export(&mut store, &instance, "proxy_on_done", &name)?,
            on_log: export(&mut store, &instance, "proxy_on_log", &name)?,
            on_delete: export(&mut store, &instance, "proxy_on_delete", &name)?,
        };
        let mut vm = Vm {
            store,
            exports,
            module: name,
            next_context_id: ROOT_ID + 1,
            started: false,
            configured: false,
            failed: None,
        };
        if let Some(initialize) = initialize {
            vm.invoke("_initialize", Some(&initialize), 0, ())?;
            if let Some(main) = main {
                vm.invoke("main", Some(&main), 0, (0, 0))?;
            } else if let Some(main_void) = main_void {
                vm.invoke("__main_void", Some(&main_void), 0, ())?;
            }
        } else if let Some(start) = start {
            vm.invoke("_start", Some(&start), 0, ())?;
        }
        Ok(vm)
    }

    /// Calls `func` (if the module exports it) for `context`, with the host bookkeeping around
    /// it; a trap kills the VM.
    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        export: &'static str,
        func: Option<&TypedFunc<P, R>>,
        context: u32,
        params: P,
    ) -> Result<Option<R>, HostError> {
        if let Some(reason) = &self.failed {
            return Err(HostError::Failed {
                reason: reason.clone(),
            });
        }
        let Some(func) = func else {
            return Ok(None);
        };
        self.store.data_mut().effective = context;
        let result = func.call(&mut self.store, params);
        let state = self.store.data_mut();
        match result {
            Ok(value) => {
                state.flush_output(false);
                Ok(Some(value))
            }
            Err(error) => {
                state.flush_output(true);
                let message = describe(&error);
                let last_logs = state
                    .logs
                    .iter()
                    .rev()
                    .take(TRAP_LOG_LINES)
                    .rev()
                    .map(|(level, line)| format!("[{level}] {line}"))
                    .collect();
                self.failed = Some(format!("`{export}` (context #{context}) failed: {message}"));
                Err(HostError::Trap {
                    export,
                    context_id: context,
                    message,
                    last_logs,
                })
            }
        }
    }

    fn ensure_alive(&self) -> Result<(), HostError> {
        match &self.failed {
            Some(reason) => Err(HostError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Creates the root context (`proxy_on_context_create(1, 0)`) and runs
    /// `proxy_on_vm_start`. Returns what `on_vm_start` returned; `false` fails the VM, as in
    /// Envoy. [`Vm::configure`] calls this first if needed.
    pub fn start(&mut self) -> Result<bool, HostError> {
        self.ensure_alive()?;
        if self.started {
            return Ok(true);
        }
        let create = self.exports.on_context_create.clone();
        self.invoke(
            "proxy_on_context_create",
            create.as_ref(),
            ROOT_ID,
            (ROOT_ID, 0),
        )?;
        let vm_start = self.exports.on_vm_start.clone();
        let size = self.store.data().vm_config.len() as u32;
        let ok = self
            .invoke(
                "proxy_on_vm_start",
                vm_start.as_ref(),
                ROOT_ID,
                (ROOT_ID, size),
            )?
            .is_none_or(|ok| ok != 0);
        self.started = true;
        if !ok {
            self.failed = Some("proxy_on_vm_start returned false".into());
        }
        Ok(ok)
    }

    /// The fuel the guest has burnt so far, about one unit per wasm instruction it ran
    /// (wasmtime's count: most operators cost 1, `nop` and `drop` 0), host calls not included;
    /// `None` unless the module was loaded with [`Module::load_metered`]. The difference
    /// around a call is what that call cost, the same on every machine.
    pub fn fuel_consumed(&self) -> Option<u64> {
        let left = self.store.get_fuel().ok()?;
        Some(u64::MAX - left)
    }

    /// The size of the module's linear memory, in bytes: how far its heap
    /// has grown (wasm memory never shrinks).
    pub fn memory_bytes(&self) -> usize {
        let memory = self.store.data().memory;
        memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// Starts the VM if needed, then runs `proxy_on_configure` with `plugin_configuration`
    /// (readable by the guest only during that call, as in Envoy). Returns what it returned;
    /// requests are refused until a configuration is accepted. Can be called again with a new
    /// configuration; a refused one leaves the last accepted one serving, as Envoy does.
    pub fn configure(&mut self, plugin_configuration: &[u8]) -> Result<bool, HostError> {
        if !self.start()? {
            return Ok(false);
        }
        let state = self.store.data_mut();
        state.plugin_config = plugin_configuration.to_vec();
        state.in_configure = true;
        let configure = self.exports.on_configure.clone();
        let size = plugin_configuration.len() as u32;
        let result = self.invoke(
            "proxy_on_configure",
            configure.as_ref(),
            ROOT_ID,
            (ROOT_ID, size),
        );
        self.store.data_mut().in_configure = false;
        let ok = result?.is_none_or(|ok| ok != 0);
        // As in Envoy, a refused new configuration leaves the last accepted one serving.
        self.configured |= ok;
        Ok(ok)
    }

    /// A new HTTP stream: `proxy_on_context_create(id, root)` then
    /// `proxy_on_request_headers(id, n, end_of_stream = true)` with `headers` (keys lowercased).
    /// A local reply sent by the filter is run through its `on_response_headers` and the stream
    /// is closed, as in Envoy. Otherwise the stream stays open until [`Vm::respond`] or
    /// [`Vm::close`].
    pub fn request(&mut self, headers: &[(&str, &str)]) -> Result<RequestOutcome, HostError> {
        self.ensure_alive()?;
        if !self.configured {
            return Err(HostError::Usage(
                "no accepted plugin configuration yet: call Vm::configure first".into(),
            ));
        }
        let id = self.next_context_id;
        self.next_context_id += 1;
        let map = HeaderMap::from_pairs(headers);
        let count = map.len() as u32;
        self.store.data_mut().streams.insert(id, Stream::new(map));
        let create = self.exports.on_context_create.clone();
        self.invoke(
            "proxy_on_context_create",
            create.as_ref(),
            id,
            (id, ROOT_ID),
        )?;
        let on_headers = self.exports.on_request_headers.clone();
        let action = self
            .invoke(
                "proxy_on_request_headers",
                on_headers.as_ref(),
                id,
                (id, count, 1),
            )?
            .map_or(Action::Continue, Action::from_abi);
        if let Some(stream) = self.store.data_mut().streams.get_mut(&id) {
            stream.action = action;
        }
        self.send_local_replies()?;
        let outcome = self.outcome(id)?;
        if outcome.closed {
            self.store.data_mut().streams.remove(&id);
        }
        Ok(outcome)
    }

    /// The upstream answers stream `request` with `headers` (a headers-only response):
    /// `proxy_on_response_headers(id, n, end_of_stream = true)`, then the stream ends
    /// (`on_done`, `on_log`, `on_delete`). Refused for a stream that is paused (answer its
    /// HTTP call first) or closed.
    pub fn respond(
        &mut self,
        request: &RequestOutcome,
        headers: &[(&str, &str)],
    ) -> Result<ResponseOutcome, HostError> {
        self.ensure_alive()?;
        let id = request.id;
        let state = self.store.data_mut();
        let Some(stream) = state.streams.get_mut(&id).filter(|s| !s.closed) else {
            return Err(HostError::Usage(format!("stream #{id} is closed")));
        };
        if stream.local_reply.is_some() || stream.reset {
            return Err(HostError::Usage(format!(
                "stream #{id} was answered locally or reset: there is no upstream response"
            )));
        }
        if stream.action != Action::Continue && !stream.resumed_request {
            return Err(HostError::Usage(format!(
                "stream #{id} is paused ({:?}) and was not resumed: the request never reached \
                 the upstream",
                stream.action
            )));
        }
        let map = HeaderMap::from_pairs(headers);
        let count = map.len() as u32;
        stream.response = Some(map);
        let on_headers = self.exports.on_response_headers.clone();
        let action = self
            .invoke(
                "proxy_on_response_headers",
                on_headers.as_ref(),
                id,
                (id, count, 1),
            )?
            .map_or(Action::Continue, Action::from_abi);
        let (headers, local_reply) = match self.store.data_mut().streams.get_mut(&id) {
            Some(stream) => {
                stream.reply_pending = false;
                match stream.local_reply.clone() {
                    // Envoy replaces a response that has not been sent with the local reply.
                    Some(reply) => (reply.headers.clone(), Some(reply)),
                    None => (stream.response.clone().unwrap_or_default(), None),
                }
            }
            None => (HeaderMap::new(), None),
        };
        self.finish(id)?;
        self.store.data_mut().streams.remove(&id);
        Ok(ResponseOutcome {
            action,
            headers,
            local_reply,
        })
    }

    /// Ends stream `request` without a response (a downstream reset): `on_done`, `on_log`,
    /// `on_delete`. Nothing happens for a stream that is already closed.
    pub fn close(&mut self, request: &RequestOutcome) -> Result<(), HostError> {
        self.ensure_alive()?;
        let open = self
            .store
            .data()
            .streams
            .get(&request.id)
            .is_some_and(|s| !s.closed);
        if open {
            self.finish(request.id)?;
        }
        self.store.data_mut().streams.remove(&request.id);
        Ok(())
    }

    /// The current state of stream `request` (after HTTP-call answers, ticks...). A stream
    /// closed by the host itself (a local reply sent from `on_http_call_response`) can still be
    /// looked at; one closed by [`Vm::respond`] or [`Vm::close`] cannot.
    pub fn stream(&self, request: &RequestOutcome) -> Result<RequestOutcome, HostError> {
        self.outcome(request.id)
    }

    /// Number of HTTP streams open in the guest.
    pub fn open_streams(&self) -> usize {
        self.store
            .data()
            .streams
            .values()
            .filter(|s| !s.closed)
            .count()
    }

    fn outcome(&self, id: u32) -> Result<RequestOutcome, HostError> {
        let stream = self
            .store
            .data()
            .streams
            .get(&id)
            .ok_or_else(|| HostError::Usage(format!("no stream #{id}")))?;
        Ok(RequestOutcome {
            id,
            action: stream.action,
            headers: stream.request.clone(),
            cleared_route_cache: stream.route_cache_clears > 0,
            route_cache_clears: stream.route_cache_clears,
            local_reply: stream.local_reply.clone(),
            resumed: stream.resumed_request,
            reset: stream.reset,
            closed: stream.closed,
        })
    }

    /// `on_done`, `on_log`, `on_delete` for a stream.
    fn finish(&mut self, id: u32) -> Result<(), HostError> {
        let on_done = self.exports.on_done.clone();
        self.invoke("proxy_on_done", on_done.as_ref(), id, id)?;
        let on_log = self.exports.on_log.clone();
        self.invoke("proxy_on_log", on_log.as_ref(), id, id)?;
        let on_delete = self.exports.on_delete.clone();
        self.invoke("proxy_on_delete", on_delete.as_ref(), id, id)?;
        if let Some(stream) = self.store.data_mut().streams.get_mut(&id) {
            stream.closed = true;
        }
        Ok(())
    }

    /// Runs the local replies sent while decoding through `on_response_headers` (Envoy sends
    /// them through the encoder filters, the sender included), then ends those streams.
    fn send_local_replies(&mut self) -> Result<(), HostError> {
        let pending: Vec<u32> = self
            .store
            .data()
            .streams
            .iter()
            .filter(|(_, s)| s.reply_pending && !s.closed)
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            let Some(stream) = self.store.data_mut().streams.get_mut(&id) else {
                continue;
            };
            stream.reply_pending = false;
            let Some(reply) = &stream.local_reply else {
                continue;
            };
            let end_of_stream = u32::from(reply.body.is_empty());
            let count = reply.headers.len() as u32;
            stream.response = Some(reply.headers.clone());
            let on_headers = self.exports.on_response_headers.clone();
            self.invoke(
                "proxy_on_response_headers",
                on_headers.as_ref(),
                id,
                (id, count, end_of_stream),
            )?;
            if let Some(stream) = self.store.data_mut().streams.get_mut(&id) {
                stream.reply_pending = false;
                if let (Some(reply), Some(response)) =
                    (stream.local_reply.as_mut(), stream.response.take())
                {
                    reply.headers = response;
                }
            }
            self.finish(id)?;
        }
        Ok(())
    }

    /// Runs `proxy_on_tick` on the root context now.
    pub fn tick(&mut self) -> Result<(), HostError> {
        if !self.started {
            return Err(HostError::Usage(
                "no root context yet: call Vm::start or Vm::configure first".into(),
            ));
        }
        let on_tick = self.exports.on_tick.clone();
        self.invoke("proxy_on_tick", on_tick.as_ref(), ROOT_ID, ROOT_ID)?;
        self.send_local_replies()
    }

    /// Moves the clock forward by `by`, firing in time order the ticks (at the period the
    /// guest set) and the HTTP-call timeouts (answered with [`HttpAnswer::Failure`], as Envoy
    /// does) that fall due. The guest sees the time of each event when it runs.
    pub fn advance(&mut self, by: Duration) -> Result<(), HostError> {
        self.ensure_alive()?;
        let clock = self.store.data().clock.clone();
        let target = clock
            .nanos()
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        loop {
            let state = self.store.data();
            let tick =
                (state.tick_period_ms > 0 && state.next_tick <= target).then_some(state.next_tick);
            let timeout = state
                .http_calls
                .values()
                .filter_map(|p| p.deadline.map(|d| (d, p.call.token)))
                .filter(|(d, _)| *d <= target)
                .min();
            match (tick, timeout) {
                (Some(at), timeout) if timeout.is_none_or(|(d, _)| at <= d) => {
                    clock.set_nanos(at);
                    let state = self.store.data_mut();
                    state.next_tick = at + u64::from(state.tick_period_ms) * 1_000_000;
                    self.tick()?;
                }
                (_, Some((at, token))) => {
                    clock.set_nanos(at);
                    self.answer_http_call(token, HttpAnswer::Failure)?;
                }
                _ => break,
            }
        }
        clock.set_nanos(target);
        Ok(())
    }

    /// The tick period the guest set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.store.data().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// The HTTP calls waiting for an answer, by token.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.store
            .data()
            .http_calls
            .values()
            .map(|p| p.call.clone())
            .collect()
    }

    /// Answers HTTP call `token`: `proxy_on_http_call_response(root, token, headers, body,
    /// trailers)` with the response visible to the guest during the call (headers start with
    /// `:status`), or with zeros for [`HttpAnswer::Failure`]. A local reply the guest sends
    /// meanwhile is delivered and ends its stream (see [`Vm::stream`]).
    pub fn answer_http_call(&mut self, token: u32, answer: HttpAnswer) -> Result<(), HostError> {
        self.ensure_alive()?;
        let state = self.store.data_mut();
        if state.http_calls.remove(&token).is_none() {
            return Err(HostError::Usage(format!(
                "no pending HTTP call with token {token}"
            )));
        }
        let sizes = match answer {
            HttpAnswer::Response {
                status,
                headers,
                body,
                trailers,
            } => {
                let mut header_map = HeaderMap::new();
                header_map.add(b":status", status.to_string().as_bytes());
                for (key, value) in &headers {
                    header_map.add(key.as_bytes(), value.as_bytes());
                }
                let mut trailer_map = HeaderMap::new();
                for (key, value) in &trailers {
                    trailer_map.add(key.as_bytes(), value.as_bytes());
                }
                let sizes = (
                    header_map.len() as u32,
                    body.len() as u32,
                    trailer_map.len() as u32,
                );
                state.call_response = Some(CallResponse {
                    headers: header_map,
                    body,
                    trailers: (!trailer_map.is_empty()).then_some(trailer_map),
                });
                sizes
            }
            HttpAnswer::Failure => {
                state.call_response = None;
                (0, 0, 0)
            }
        };
        let on_response = self.exports.on_http_call_response.clone();
        let result = self.invoke(
            "proxy_on_http_call_response",
            on_response.as_ref(),
            ROOT_ID,
            (ROOT_ID, token, sizes.0, sizes.1, sizes.2),
        );
        self.store.data_mut().call_response = None;
        result?;
        self.send_local_replies()
    }

    /// Runs `proxy_on_done` on the root context (Envoy does when the plugin is removed). If it
    /// returns true, or later calls `proxy_done`, `proxy_on_delete` follows. Returns whether
    /// the root context was deleted.
    pub fn shutdown(&mut self) -> Result<bool, HostError> {
        let on_done = self.exports.on_done.clone();
        let done = self
            .invoke("proxy_on_done", on_done.as_ref(), ROOT_ID, ROOT_ID)?
            .is_none_or(|done| done != 0);
        let state = self.store.data_mut();
        if !done && !state.done_called {
            state.root_done_pending = true;
            return Ok(false);
        }
        let on_delete = self.exports.on_delete.clone();
        self.invoke("proxy_on_delete", on_delete.as_ref(), ROOT_ID, ROOT_ID)?;
        Ok(true)
    }

    // --- Inspection ------------------------------------------------------------------------

    /// Every line the guest logged (`proxy_log`, and stdout/stderr at info/error), in order.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.store.data().logs
    }

    /// The logged lines that contain `needle`.
    pub fn logs_containing(&self, needle: &str) -> Vec<&str> {
        self.store
            .data()
            .logs
            .iter()
            .filter(|(_, line)| line.contains(needle))
            .map(|(_, line)| line.as_str())
            .collect()
    }

    /// Forgets the logged lines.
    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
    }

    /// Value of counter or gauge `name` (`None`: never defined, or a histogram).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.store.data().metrics.stats().value(name)
    }

    /// All counters and gauges.
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        self.store.data().metrics.stats().values()
    }

    /// Values recorded into histogram `name`.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.store.data().metrics.stats().histogram(name)
    }

    /// The VM's stats store.
    pub fn stats(&self) -> Stats {
        self.store.data().metrics.stats().clone()
    }

    /// The VM's shared-data store.
    pub fn shared_data(&self) -> SharedData {
        self.store.data().shared.clone()
    }

    /// The VM's clock.
    pub fn clock(&self) -> Clock {
        self.store.data().clock.clone()
    }

    /// Current time of the VM's clock.
    pub fn now(&self) -> SystemTime {
        self.store.data().clock.now()
    }

    /// Every `proxy_call_foreign_function` call, in order (unknown functions included: they
    /// got NotFound).
    pub fn foreign_calls(&self) -> &[ForeignCall] {
        &self.store.data().foreign_calls
    }

    /// `clear_route_cache` calls made outside any stream (from the root context).
    pub fn root_route_cache_clears(&self) -> u32 {
        self.store.data().root_route_cache_clears
    }

    /// How many times the guest called host function `name` (e.g. `"proxy_get_property"`,
    /// `"random_get"`).
    ///
    /// # Panics
    /// If the host has no function of that name.
    pub fn host_call_count(&self, name: &str) -> u64 {
        self.store.data().calls_of(host_call(name))
    }

    /// Why the VM failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    // --- Test controls ---------------------------------------------------------------------

    /// Sets property `path` (e.g. `&["source", "address"]`) to `value`.
    pub fn set_property(&mut self, path: &[&str], value: &[u8]) {
        self.store.data_mut().properties.set(path, value);
    }

    /// Removes property `path`.
    pub fn remove_property(&mut self, path: &[&str]) {
        self.store.data_mut().properties.remove(path);
    }

    /// From now on every call of proxy-wasm host function `name` (e.g.
    /// `"proxy_replace_header_map_value"`) returns `status` without doing anything.
    ///
    /// # Panics
    /// If `name` is not a proxy-wasm host function of this host.
    pub fn fail_host_call(&mut self, name: &str, status: Status) {
        self.inject(name, status, None);
    }

    /// Like [`Vm::fail_host_call`], for the next `times` calls only.
    ///
    /// # Panics
    /// If `name` is not a proxy-wasm host function of this host.
    pub fn fail_host_call_times(&mut self, name: &str, status: Status, times: u32) {
        self.inject(name, status, Some(times));
    }

    fn inject(&mut self, name: &str, status: Status, remaining: Option<u32>) {
        let call = host_call(name);
        assert!(
            call.module() == "env",
            "{name} is a WASI function; only proxy-wasm host calls can be made to fail"
        );
        if remaining == Some(0) {
            return;
        }
        self.store
            .data_mut()
            .failures
            .insert(call, Failure { status, remaining });
    }

    /// Removes every injected failure.
    pub fn clear_failures(&mut self) {
        self.store.data_mut().failures.clear();
    }
}

fn host_call(name: &str) -> HostCall {
    HostCall::ALL
        .iter()
        .copied()
        .find(|call| call.name() == name)
        .unwrap_or_else(|| {
            let known: Vec<&str> = HostCall::ALL.iter().map(|c| c.name()).collect();
            panic!("this host has no host function {name:?}; it has {known:?}")
        })
}
