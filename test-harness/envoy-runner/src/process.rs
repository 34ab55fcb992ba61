//! Starting, talking to, reloading and stopping one Envoy process.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::set_listener_rules;
use super::http::{get_once, HttpClient, Request, Response};
use super::stats::{parse_prometheus, PromSample, Stats};
use super::{
    bootstrap_to_module, build_filter_module, build_filter_wasm, find_envoy, repo_root,
    wasm_filters_to_module, workload_env, Build, EnvoyConfig, Error, FILTER_WASM_RELATIVE,
};

/// Which wasm module the wasm filters load.
#[derive(Clone, Debug, Default)]
pub enum WasmModule {
    /// Relative `filename`s are resolved against the repo root; the project's
    /// filter (`target/wasm/.../canary_router.wasm`) is replaced by
    /// [`build_filter_wasm`]'s module: `$CANARY_ROUTER_WASM`, or the filter
    /// built once per process.
    #[default]
    Auto,
    /// Every wasm filter loads this file.
    Path(PathBuf),
}

/// How to run Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// `--concurrency` (worker threads). Default 2.
    pub concurrency: usize,
    /// `-l`. Default `info`.
    pub log_level: String,
    /// `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// Appended to the command line, e.g. `--config-yaml {...}`.
    pub extra_args: Vec<String>,
    /// Serve the listeners that hold a wasm filter through file-based LDS so
    /// that [`Envoy::reload_rules`] can change the rules without a restart.
    /// Off by default: the bootstrap then stays as static as the example.
    pub reloadable: bool,
    /// Keep the examples' access logs (default true; benchmarks turn them off).
    pub access_logs: bool,
    /// How long to wait for readiness. Default 60 s.
    pub ready_timeout: Duration,
    /// The wasm module to load.
    pub wasm: WasmModule,
    /// Ports written in the config that bind at a given port instead of a
    /// free one (see [`EnvoyOptions::bind_port`]).
    pub bound_ports: BTreeMap<u16, u16>,
    /// Which build of the filter runs: the config's wasm filters as they
    /// are, or rewritten into the dynamic module ([`Build::Module`]).
    pub build: Build,
    /// The Envoy binary; default [`find_envoy`]'s.
    pub envoy_bin: Option<PathBuf>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            concurrency: 2,
            log_level: "info".into(),
            component_log_level: None,
            extra_args: Vec::new(),
            reloadable: false,
            access_logs: true,
            ready_timeout: Duration::from_secs(60),
            wasm: WasmModule::Auto,
            bound_ports: BTreeMap::new(),
            build: Build::from_env(),
            envoy_bin: None,
        }
    }
}

impl EnvoyOptions {
    /// Sets `--concurrency`.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Appends command-line arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds `--config-yaml <yaml>` (merged into the bootstrap by Envoy).
    pub fn config_yaml(self, yaml: &str) -> Self {
        self.args(["--config-yaml", yaml])
    }

    /// Serves the wasm listeners through file-based LDS (see [`Envoy::reload_rules`]).
    pub fn reloadable(mut self) -> Self {
        self.reloadable = true;
        self
    }

    /// Drops the access logs.
    pub fn without_access_logs(mut self) -> Self {
        self.access_logs = false;
        self
    }

    /// Runs the filter as `build`.
    pub fn build(mut self, build: Build) -> Self {
        self.build = build;
        self
    }

    /// Runs this Envoy binary instead of [`find_envoy`]'s.
    pub fn envoy_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.envoy_bin = Some(path.into());
        self
    }

    /// Loads this wasm module in every wasm filter.
    pub fn wasm(mut self, path: impl Into<PathBuf>) -> Self {
        self.wasm = WasmModule::Path(path.into());
        self
    }

    /// Binds the port written as `written` at `at` instead of a free port.
    /// For what depends on the port a request arrives on (Envoy's
    /// `destination.port`, e.g. cluster names built from it): the caller
    /// knows the port and names things after it. `at` must be free.
    pub fn bind_port(mut self, written: u16, at: u16) -> Self {
        self.bound_ports.insert(written, at);
        self
    }

    /// Sets `--component-log-level`.
    pub fn component_log_level(mut self, levels: &str) -> Self {
        self.component_log_level = Some(levels.into());
        self
    }
}

struct Lds {
    dir: PathBuf,
    listeners: Vec<Value>,
    version: u64,
    /// The module's `.so` when the listeners are written as the module's.
    module: Option<PathBuf>,
}

/// A running Envoy. Dropping it stops the process (SIGTERM to its process
/// group, SIGKILL after 3 s) and removes its temp dir; when dropped during a
/// panic it prints the tail of Envoy's log and keeps the dir for a look.
pub struct Envoy {
    child: Child,
    pid: i32,
    dir: PathBuf,
    admin: SocketAddr,
    ports: BTreeMap<u16, u16>,
    listener_ports: BTreeMap<String, u16>,
    lds: Option<Lds>,
    bin: PathBuf,
    stopped: bool,
    keep_dir: bool,
    /// Held while this Envoy runs: one lock per port of
    /// [`EnvoyOptions::bind_port`], so that Envoys binding the same fixed
    /// port (Envoy's listeners share a port with `SO_REUSEPORT`, and would
    /// split the connections silently) take turns.
    _port_locks: Vec<std::fs::File>,
}

const START_ATTEMPTS: usize = 3;

impl Envoy {
    /// Starts `examples/<name>/envoy.yaml` as is, with default options.
    pub fn example(name: &str) -> Result<Envoy, Error> {
        Envoy::start(EnvoyConfig::from_example(name)?, &EnvoyOptions::default())
    }

    /// Renders `config` for this run and starts Envoy, waiting until it is
    /// LIVE and every listener accepts connections. A start that lost a race
    /// for a port is retried with new ports.
    pub fn start(config: EnvoyConfig, opts: &EnvoyOptions) -> Result<Envoy, Error> {
        let bin = match &opts.envoy_bin {
            Some(bin) => bin.clone(),
            None => find_envoy()?,
        };
        let mut config = config;
        resolve_wasm(&mut config, &opts.wasm)?;
        if !opts.access_logs {
            config.strip_access_logs();
        }
        let locks = lock_ports(opts.bound_ports.values())?;
        let mut last = Error::new("not started");
        for attempt in 1..=START_ATTEMPTS {
            match Envoy::start_once(&bin, &config, opts) {
                Ok(mut envoy) => {
                    envoy._port_locks = locks;
                    return Ok(envoy);
                }
                Err((e, port_race)) => {
                    last = e;
                    if !port_race || attempt == START_ATTEMPTS {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn start_once(
        bin: &Path,
        config: &EnvoyConfig,
        opts: &EnvoyOptions,
    ) -> Result<Envoy, (Error, bool)> {
        let plain = |e: Error| (e, false);
        let dir = make_temp_dir().map_err(plain)?;
        let mut config = config.clone();

        // Free loopback ports for every fixed port; the admin port becomes 0
        // and Envoy reports the one it took through --admin-address-path.
        let admin_port = config.admin_port();
        let mut ports = BTreeMap::new();
        let mut reservations = Vec::new();
        for port in config.fixed_ports() {
            if Some(port) == admin_port {
                continue;
            }
            if let Some(at) = opts.bound_ports.get(&port) {
                ports.insert(port, *at);
                continue;
            }
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| plain(Error::new(format!("reserving a port: {e}"))))?;
            let free = listener
                .local_addr()
                .map_err(|e| plain(Error::new(format!("reserving a port: {e}"))))?
                .port();
            ports.insert(port, free);
            reservations.push(listener);
        }
        config.remap_ports(&ports);
        if admin_port.is_some() {
            config.set_admin_port(0).map_err(plain)?;
        }
        let listener_ports: BTreeMap<String, u16> = config.listeners().into_iter().collect();

        let module = match opts.build {
            Build::Wasm => None,
            Build::Module => Some(build_filter_module().map_err(plain)?.to_path_buf()),
        };
        let lds = if opts.reloadable {
            let listeners = config.take_wasm_listeners();
            if listeners.is_empty() {
                return Err(plain(Error::new(
                    "reloadable: the config has no listener with a wasm filter",
                )));
            }
            let lds_dir = dir.join("lds");
            std::fs::create_dir_all(&lds_dir)
                .map_err(|e| plain(Error::new(format!("creating {}: {e}", lds_dir.display()))))?;
            let lds = Lds {
                dir: lds_dir,
                listeners,
                version: 1,
                module: module.clone(),
            };
            write_lds(&lds).map_err(plain)?;
            let doc = config.value_mut();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert(
                    "dynamic_resources".into(),
                    serde_json::json!({
                        "lds_config": {
                            "resource_api_version": "V3",
                            "path_config_source": {
                                "path": lds.dir.join("lds.json"),
                                "watched_directory": { "path": lds.dir },
                            }
                        }
                    }),
                );
            }
            Some(lds)
        } else {
            None
        };
        let mut listener_ports = listener_ports;
        for listener in lds.iter().flat_map(|l| &l.listeners) {
            let name = listener.get("name").and_then(Value::as_str);
            let port = listener
                .pointer("/address/socket_address/port_value")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            if let (Some(name), Some(port)) = (name, port) {
                listener_ports.insert(name.to_owned(), port);
            }
        }

        let config_path = dir.join("envoy.json");
        let mut env = Vec::new();
        if let Some(so) = &module {
            env = workload_env(config.value(), &opts.extra_args);
            bootstrap_to_module(config.value_mut(), so);
        }
        std::fs::write(&config_path, config.to_json()).map_err(|e| {
            plain(Error::new(format!(
                "writing {}: {e}",
                config_path.display()
            )))
        })?;

        let mut cmd = Command::new(bin);
        cmd.current_dir(repo_root())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &opts.concurrency.to_string()])
            .args(["-l", &opts.log_level])
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .arg("--admin-address-path")
            .arg(dir.join("admin-address"))
            // No hot restart: no shared memory or domain sockets to clash
            // between parallel instances (so no --base-id is needed) and none
            // left behind in /dev/shm when a run is killed.
            .arg("--disable-hot-restart")
            // Connections of a replaced listener config drain within 1 s.
            .args(["--drain-time-s", "1"])
            .stdin(Stdio::null())
            .envs(env);
        if let Some(levels) = &opts.component_log_level {
            cmd.args(["--component-log-level", levels]);
        }
        cmd.args(&opts.extra_args);
        let stdout = File::create(dir.join("stdout.log"))
            .map_err(|e| plain(Error::new(format!("creating stdout.log: {e}"))))?;
        let stderr = File::create(dir.join("stderr.log"))
            .map_err(|e| plain(Error::new(format!("creating stderr.log: {e}"))))?;
        cmd.stdout(stdout).stderr(stderr);
        // Its own process group, so that the whole group can be signalled.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent. It makes the kernel SIGKILL Envoy if the thread that spawned
        // it dies, which `spawn_on_long_lived_thread` makes the end of this
        // process: Envoy dies with a test binary that is killed or aborts
        // without running Drop.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        drop(reservations);
        let command_line = format!("{cmd:?}");
        let child = spawn_on_long_lived_thread(cmd).map_err(|e| {
            plain(Error::new(format!(
                "starting {}: {e}\n{}",
                bin.display(),
                super::HOW_TO_GET_ENVOY
            )))
        })?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let mut envoy = Envoy {
            child,
            pid,
            dir,
            admin: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            ports,
            listener_ports,
            lds,
            bin: bin.to_path_buf(),
            stopped: false,
            keep_dir: false,
            _port_locks: Vec::new(),
        };
        match envoy.wait_ready(opts.ready_timeout) {
            Ok(()) => Ok(envoy),
            Err(e) => {
                let log = envoy.log_tail(60);
                let port_race = log.contains("Address already in use");
                let msg = format!(
                    "Envoy ({}) did not become ready: {e}\n--- command: {:?}\n--- config: {}\n--- tail of envoy.log:\n{log}\n--- stderr:\n{}",
                    envoy.bin.display(),
                    command_line,
                    config_path.display(),
                    tail_file(&envoy.dir.join("stderr.log"), 20)
                );
                envoy.stop_process();
                // Keep the dir for a look, unless the start is retried.
                envoy.keep_dir = !port_race;
                Err((Error::new(msg), port_race))
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let admin_file = self.dir.join("admin-address");
        let mut last = String::from("no admin address yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                return Err(Error::new(format!("Envoy exited early: {status}")));
            }
            match self.check_ready(&admin_file) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::new(format!("timed out after {timeout:?}: {last}")))
    }

    fn check_ready(&mut self, admin_file: &Path) -> Result<(), Error> {
        if self.admin.port() == 0 {
            let text = std::fs::read_to_string(admin_file)
                .map_err(|_| Error::new("no admin address yet"))?;
            self.admin = text
                .trim()
                .parse()
                .map_err(|_| Error::new(format!("admin address {text:?}")))?;
        }
        let ready = get_once(self.admin, "/ready")?;
        if ready.status != 200 || ready.text().trim() != "LIVE" {
            return Err(Error::new(format!(
                "/ready: {} {}",
                ready.status,
                ready.text().trim()
            )));
        }
        let listeners = self.bound_listeners()?;
        for (name, port) in &self.listener_ports {
            match listeners.get(name) {
                Some(bound) if *bound == *port || *port == 0 => {}
                Some(bound) => {
                    return Err(Error::new(format!(
                        "listener {name} bound to {bound}, expected {port}"
                    )))
                }
                None => return Err(Error::new(format!("listener {name} not active yet"))),
            }
            if *port != 0 {
                TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                    .map_err(|e| Error::new(format!("connecting to listener {name}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Active listeners and their ports, from `/listeners?format=json`.
    pub fn bound_listeners(&self) -> Result<BTreeMap<String, u16>, Error> {
        let text = self.admin_get("/listeners?format=json")?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Error::new(format!("/listeners?format=json: {e}")))?;
        Ok(doc
            .get("listener_statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let name = l.get("name")?.as_str()?.to_owned();
                let port = l
                    .pointer("/local_address/socket_address/port_value")?
                    .as_u64()?;
                Some((name, u16::try_from(port).ok()?))
            })
            .collect())
    }

    /// The loopback address now serving what `envoy.yaml` put on `port`
    /// (e.g. 10000, 10101).
    pub fn addr(&self, port: u16) -> Result<SocketAddr, Error> {
        self.ports
            .get(&port)
            .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, *p)))
            .ok_or_else(|| {
                Error::new(format!(
                    "port {port} is not in the config (ports: {:?})",
                    self.ports.keys().collect::<Vec<_>>()
                ))
            })
    }

    /// A keep-alive client for the listener written as `port` in the config.
    pub fn client(&self, port: u16) -> Result<HttpClient, Error> {
        Ok(HttpClient::new(self.addr(port)?))
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `GET` on the admin endpoint; non-200 is an error.
    pub fn admin_get(&self, path: &str) -> Result<String, Error> {
        let resp = get_once(self.admin, path)?;
        if resp.status != 200 {
            return Err(Error::new(format!(
                "admin GET {path}: {} {}",
                resp.status,
                resp.text()
            )));
        }
        Ok(resp.text())
    }

    /// `POST` on the admin endpoint (e.g. `/reset_counters`); non-200 is an error.
    pub fn admin_post(&self, path: &str) -> Result<Response, Error> {
        let mut req = Request::get(path).header("connection", "close");
        req.method = "POST".into();
        let resp = HttpClient::new(self.admin).send(&req)?;
        if resp.status != 200 {
            return Err(Error::new(format!(
                "admin POST {path}: {} {}",
                resp.status,
                resp.text()
            )));
        }
        Ok(resp)
    }

    /// `/stats` parsed into a map.
    pub fn stats(&self) -> Result<Stats, Error> {
        Ok(Stats::parse(&self.admin_get("/stats")?))
    }

    /// `/stats/prometheus` as text.
    pub fn prometheus_text(&self) -> Result<String, Error> {
        self.admin_get("/stats/prometheus")
    }

    /// `/stats/prometheus` parsed into samples.
    pub fn prometheus(&self) -> Result<Vec<PromSample>, Error> {
        Ok(parse_prometheus(&self.prometheus_text()?))
    }

    /// `/config_dump` as JSON.
    pub fn config_dump(&self) -> Result<Value, Error> {
        let text = self.admin_get("/config_dump")?;
        serde_json::from_str(&text).map_err(|e| Error::new(format!("/config_dump: {e}")))
    }

    /// Replaces the rules of every wasm filter by rewriting the LDS file that
    /// Envoy watches (atomic rename), and waits until Envoy has applied it.
    /// Needs [`EnvoyOptions::reloadable`]. Requests on connections opened
    /// before the reload may still see the old rules while those drain
    /// (`--drain-time-s 1`): use a new client afterwards.
    pub fn reload_rules(&mut self, rules: &str) -> Result<(), Error> {
        self.reload_listeners(|listeners| {
            for listener in listeners {
                set_listener_rules(listener, rules);
            }
        })
    }

    /// Applies `edit` to the listeners of the LDS file that Envoy watches
    /// (it may add and remove some), rewrites it (atomic rename), and waits
    /// until Envoy has applied it, as [`Envoy::reload_rules`] does.
    pub fn reload_listeners(&mut self, edit: impl FnOnce(&mut Vec<Value>)) -> Result<(), Error> {
        let before = self.stats()?;
        let Some(lds) = self.lds.as_mut() else {
            return Err(Error::new(
                "reloading needs EnvoyOptions::reloadable() (listeners served by file LDS)",
            ));
        };
        edit(&mut lds.listeners);
        lds.version += 1;
        write_lds(lds)?;
        let success = "listener_manager.lds.update_success";
        let rejected = "listener_manager.lds.update_rejected";
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.stats()?;
            if now.get(rejected) > before.get(rejected) {
                return Err(Error::new(format!(
                    "Envoy rejected the new listeners:\n{}",
                    self.log_tail(30)
                )));
            }
            if now.get(success) > before.get(success)
                && now.get("listener_manager.total_listeners_warming") == 0
            {
                return Ok(());
            }
        }
        Err(Error::new(format!(
            "Envoy did not apply the new listeners within 30 s:\n{}",
            self.log_tail(30)
        )))
    }

    /// The last `lines` lines of Envoy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path(), lines)
    }

    /// Envoy's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// Envoy's stdout (the examples' access logs go there).
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.join("stdout.log")
    }

    /// The temp dir of this run (rendered config, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A report for a failed assertion: where the files are and the log tail.
    pub fn failure_report(&self) -> String {
        format!(
            "--- Envoy run dir: {}\n--- tail of envoy.log:\n{}\n--- tail of stdout (access log):\n{}\n--- stderr:\n{}",
            self.dir.display(),
            self.log_tail(80),
            tail_file(&self.stdout_path(), 20),
            tail_file(&self.dir.join("stderr.log"), 20),
        )
    }

    /// Stops Envoy gracefully (SIGTERM, then SIGKILL after 3 s).
    pub fn stop(mut self) {
        self.stop_process();
    }

    fn stop_process(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // Reaped already: nothing of ours is left to signal.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // The child is not reaped yet, so its pid (= the group id) is still ours.
        if self.pid > 0 {
            // SAFETY: kill(2) with a negative pid signals our child's group.
            unsafe {
                libc::kill(-self.pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.pid > 0 {
            // SAFETY: as above; the child is still unreaped.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!(
                "\n=== a test failed while Envoy (pid {}) was running ===\n{}\n=== end of Envoy report ===",
                self.child.id(),
                self.failure_report()
            );
        }
        self.stop_process();
        let keep =
            panicking || self.keep_dir || std::env::var_os("CANARY_KEEP_ENVOY_DIR").is_some();
        if keep {
            eprintln!("Envoy run dir kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Spawns `cmd` from one thread that lives as long as the process.
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so spawning
/// from a test's own thread would kill an Envoy that outlives that thread
/// (one kept in a static and shared by several tests or benchmarks).
fn spawn_on_long_lived_thread(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("envoy-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(spawner) = spawner else {
        let mut cmd = cmd;
        return cmd.spawn();
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("the envoy-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the envoy-spawner thread is gone"))?
}

/// Takes an exclusive lock per port (a file in the temp dir, `flock`),
/// waiting for any other test process that holds it.
fn lock_ports<'a>(ports: impl Iterator<Item = &'a u16>) -> Result<Vec<std::fs::File>, Error> {
    use std::os::fd::AsRawFd;
    let mut locks = Vec::new();
    for port in ports {
        let path = std::env::temp_dir().join(format!("canary-router-port-{port}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::new(format!("opening {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::new(format!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        locks.push(file);
    }
    Ok(locks)
}

fn resolve_wasm(config: &mut EnvoyConfig, wasm: &WasmModule) -> Result<(), Error> {
    if config.wasm_filenames().is_empty() {
        return Ok(());
    }
    match wasm {
        WasmModule::Path(path) => {
            let path = path.to_string_lossy().into_owned();
            config.map_wasm_filenames(|_| path.clone());
        }
        WasmModule::Auto => {
            let needs_filter = config
                .wasm_filenames()
                .iter()
                .any(|f| Path::new(f) == Path::new(FILTER_WASM_RELATIVE));
            let built = if needs_filter {
                Some(build_filter_wasm()?.to_string_lossy().into_owned())
            } else {
                None
            };
            config.map_wasm_filenames(|old| {
                if Path::new(old) == Path::new(FILTER_WASM_RELATIVE) {
                    if let Some(built) = &built {
                        return built.clone();
                    }
                }
                if Path::new(old).is_absolute() {
                    old.to_owned()
                } else {
                    repo_root().join(old).to_string_lossy().into_owned()
                }
            });
        }
    }
    Ok(())
}

fn write_lds(lds: &Lds) -> Result<(), Error> {
    let mut resources = Value::from(lds.listeners.clone());
    if let Some(so) = &lds.module {
        wasm_filters_to_module(&mut resources, so);
    }
    let doc = serde_json::json!({
        "version_info": lds.version.to_string(),
        "resources": resources,
    });
    let tmp = lds.dir.join(format!(".lds.json.{}", lds.version));
    let path = lds.dir.join("lds.json");
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc).unwrap_or_default())
        .map_err(|e| Error::new(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::new(format!("renaming to {}: {e}", path.display())))
}

fn make_temp_dir() -> Result<PathBuf, Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "envoy-runner-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The last `lines` lines of a file (reads at most the last 256 KiB).
fn tail_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("({} missing)", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in all
        .get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
    {
        // Envoy's start-up lists every extension on a few huge lines.
        match line.char_indices().nth(MAX_TAIL_LINE) {
            Some((cut, _)) => {
                out.push_str(line.get(..cut).unwrap_or(line));
                out.push_str(" [...]");
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Longest line shown by [`tail_file`].
const MAX_TAIL_LINE: usize = 400;
