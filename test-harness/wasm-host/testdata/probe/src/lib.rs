//! A proxy-wasm module that does whatever its inputs ask, so that the tests of the in-process
//! host (`test-harness/wasm-host/tests/host_*.rs`) can exercise every host call.
//!
//! - Plugin configuration: space-separated words. `fail` makes `on_configure` return false,
//!   `panic` panics in it, `tick=<ms>` sets the tick period, `tick-call=<cluster>` dispatches an
//!   HTTP call from the root context on each tick, `shared=<key>=<value>` stores shared data.
//! - VM configuration `fail` makes `on_vm_start` return false.
//! - Request (and response) header `x-probe`: `;`-separated operations `name` or `name:arg`,
//!   run in order in `on_http_request_headers` (`on_http_response_headers`) against the request
//!   (response) header map. Results are reported as `x-probe-*` headers added to the same map.
//!   See [`Probe::run`] for the list.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType, Status};
use std::time::{Duration, UNIX_EPOCH};

// Raw imports, to observe the exact status the host returns (the SDK panics on most errors).
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_set_effective_context(context_id: u32) -> Status;
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(ProbeRoot { context_id, ..ProbeRoot::default() }));
}}

#[derive(Clone, Copy, Default)]
struct Metrics {
    requests: u32,
    requests_again: u32,
    gauge: u32,
    histogram: u32,
    logged: u32,
}

#[derive(Default)]
struct ProbeRoot {
    context_id: u32,
    metrics: Metrics,
    ticks: u64,
    tick_call: Option<String>,
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

impl Context for ProbeRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "none".to_string());
        log(
            LogLevel::Info,
            &format!(
                "root #{} call {token} answered: headers={headers} body={body} trailers={trailers} status={status}",
                self.context_id
            ),
        );
    }
}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        let vm_config = self.get_vm_configuration().unwrap_or_default();
        let vm_config = String::from_utf8_lossy(&vm_config);
        log(
            LogLevel::Info,
            &format!("probe vm start: size={vm_configuration_size} config={vm_config}"),
        );
        vm_config != "fail"
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let config = String::from_utf8_lossy(&config).into_owned();
        log(
            LogLevel::Info,
            &format!("probe configured: size={plugin_configuration_size} config={config}"),
        );
        let define = |kind, name| hostcalls::define_metric(kind, name).unwrap_or(u32::MAX);
        self.metrics = Metrics {
            requests: define(MetricType::Counter, "probe.requests"),
            requests_again: define(MetricType::Counter, "probe.requests"),
            gauge: define(MetricType::Gauge, "probe.gauge"),
            histogram: define(MetricType::Histogram, "probe.histogram"),
            logged: define(MetricType::Counter, "probe.logged"),
        };
        log(
            LogLevel::Debug,
            &format!(
                "metric ids: requests={} again={} gauge={} histogram={}",
                self.metrics.requests,
                self.metrics.requests_again,
                self.metrics.gauge,
                self.metrics.histogram
            ),
        );
        for word in config.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match key {
                "fail" => return false,
                "panic" => panic!("probe asked to panic in on_configure"),
                "tick" => {
                    let ms = value.parse().unwrap_or(0);
                    self.set_tick_period(Duration::from_millis(ms));
                }
                "tick-call" => self.tick_call = Some(value.to_string()),
                "shared" => {
                    let (k, v) = value.split_once('=').unwrap_or((value, ""));
                    let _ = self.set_shared_data(k, Some(v.as_bytes()), None);
                }
                _ => {}
            }
        }
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        log(LogLevel::Info, &format!("tick {} at {now} ms", self.ticks));
        if let Some(cluster) = &self.tick_call {
            let headers = vec![
                (":method", "GET"),
                (":path", "/tick"),
                (":authority", "probe"),
            ];
            match self.dispatch_http_call(cluster, headers, None, vec![], Duration::from_secs(1)) {
                Ok(token) => log(LogLevel::Info, &format!("tick call {token} dispatched")),
                Err(status) => log(LogLevel::Warn, &format!("tick call failed: {status:?}")),
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            context_id,
            metrics: self.metrics,
        }))
    }
}

struct Probe {
    context_id: u32,
    metrics: Metrics,
}

fn report(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::add_map_value(map, name, value);
}

fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("s:{s}"),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
    }
}

impl Probe {
    /// Runs the operations listed in the `x-probe` header of `map`:
    ///
    /// `log:<msg>`, `warn:<msg>`, `set:<name>=<value>`, `add:<name>=<value>`, `del:<name>`,
    /// `get:<name>`, `count`, `replace-all`, `route:<cluster>`, `foreign:<function>`,
    /// `prop:<a.b.c>`, `set-prop:<a.b>=<value>`, `shared-get:<key>`, `shared-set:<key>=<value>@<cas>`, `call:<cluster>`,
    /// `bad-call:<cluster>`, `reply:<status>`, `pause`, `panic`, `incr`, `incr-both`,
    /// `gauge:<n>`, `gauge-add:<n>`, `hist:<n>`, `metric-get`, `incr-raw:<offset>`, `time`,
    /// `random`, `stdout:<msg>`, `stderr:<msg>`, `queue`, `raw-replace:<name>=<value>`,
    /// `raw-get-response`, `effective:<id>`, `tick:<ms>`, `log-level`, `env:<name>`.
    fn run(&mut self, map: MapType) -> Action {
        let ops = hostcalls::get_map_value(map, "x-probe")
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut action = Action::Continue;
        for op in ops.split(';').map(str::trim).filter(|op| !op.is_empty()) {
            let (name, arg) = op.split_once(':').unwrap_or((op, ""));
            let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
            match name {
                "log" => log(LogLevel::Info, arg),
                "warn" => log(LogLevel::Warn, arg),
                "set" => {
                    let _ = hostcalls::set_map_value(map, key, Some(value));
                }
                "add" => report(map, key, value),
                "del" => {
                    let _ = hostcalls::set_map_value(map, key, None);
                }
                "get" => {
                    let got = hostcalls::get_map_value(map, arg).ok().flatten();
                    report(map, "x-probe-got", got.as_deref().unwrap_or("<none>"));
                }
                "count" => {
                    let n = hostcalls::get_map(map).map(|m| m.len()).unwrap_or(0);
                    report(map, "x-probe-count", &n.to_string());
                }
                "replace-all" => {
                    let mut all = hostcalls::get_map(map).unwrap_or_default();
                    all.retain(|(k, _)| k != "x-probe");
                    all.push(("x-replaced".to_string(), "1".to_string()));
                    let pairs: Vec<(&str, &str)> =
                        all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let _ = hostcalls::set_map(map, pairs);
                }
                "route" => {
                    let _ = hostcalls::set_map_value(map, "x-canary-upstream", Some(arg));
                    let _ = hostcalls::call_foreign_function("clear_route_cache", None);
                }
                "foreign" => {
                    let result = match hostcalls::call_foreign_function(arg, Some(b"args")) {
                        Ok(Some(bytes)) => show(&bytes),
                        Ok(None) => "ok".to_string(),
                        Err(status) => format!("{status:?}"),
                    };
                    report(map, "x-probe-foreign", &result);
                }
                "prop" => {
                    let path: Vec<&str> = arg.split('.').collect();
                    let result = match hostcalls::get_property(path) {
                        Ok(Some(bytes)) => show(&bytes),
                        Ok(None) => "none".to_string(),
                        Err(status) => format!("err:{status:?}"),
                    };
                    report(map, "x-probe-prop", &result);
                }
                "set-prop" => {
                    let path: Vec<&str> = key.split('.').collect();
                    let result = match hostcalls::set_property(path, Some(value.as_bytes())) {
                        Ok(()) => "ok".to_string(),
                        Err(status) => format!("{status:?}"),
                    };
                    report(map, "x-probe-set-prop", &result);
                }
                "shared-get" => {
                    let result = match hostcalls::get_shared_data(arg) {
                        Ok((Some(value), cas)) => {
                            format!("{}@{}", String::from_utf8_lossy(&value), cas.unwrap_or(0))
                        }
                        Ok((None, Some(cas))) => format!("@{cas}"),
                        Ok((None, None)) => "none".to_string(),
                        Err(status) => format!("err:{status:?}"),
                    };
                    report(map, "x-probe-shared", &result);
                }
                "shared-set" => {
                    let (value, cas) = value.split_once('@').unwrap_or((value, "0"));
                    let cas = cas.parse::<u32>().unwrap_or(0);
                    let cas = if cas == 0 { None } else { Some(cas) };
                    let result = match hostcalls::set_shared_data(key, Some(value.as_bytes()), cas)
                    {
                        Ok(()) => "ok".to_string(),
                        Err(status) => format!("{status:?}"),
                    };
                    report(map, "x-probe-shared-set", &result);
                }
                "call" | "bad-call" => {
                    let mut headers = vec![(":method", "POST"), (":path", "/probe")];
                    if name == "call" {
                        headers.push((":authority", "probe"));
                    }
                    headers.push(("x-from", "probe"));
                    match hostcalls::dispatch_http_call(
                        arg,
                        headers,
                        Some(b"ping"),
                        vec![("x-trailer", "t")],
                        Duration::from_millis(1500),
                    ) {
                        Ok(token) => {
                            report(map, "x-probe-call-token", &token.to_string());
                            action = Action::Pause;
                        }
                        Err(status) => report(map, "x-probe-call-error", &format!("{status:?}")),
                    }
                }
                "reply" => {
                    let status = arg.parse().unwrap_or(403);
                    let _ = hostcalls::send_http_response(
                        status,
                        vec![("x-probe-reply", "1")],
                        Some(b"probe reply"),
                    );
                    action = Action::Pause;
                }
                "pause" => action = Action::Pause,
                "panic" => panic!("probe asked to panic: {arg}"),
                "incr" => {
                    let _ = hostcalls::increment_metric(self.metrics.requests, 1);
                }
                "incr-both" => {
                    let _ = hostcalls::increment_metric(self.metrics.requests, 1);
                    let _ = hostcalls::increment_metric(self.metrics.requests_again, 1);
                }
                "gauge" => {
                    let _ = hostcalls::record_metric(self.metrics.gauge, arg.parse().unwrap_or(0));
                }
                "gauge-add" => {
                    let _ =
                        hostcalls::increment_metric(self.metrics.gauge, arg.parse().unwrap_or(0));
                }
                "hist" => {
                    let _ =
                        hostcalls::record_metric(self.metrics.histogram, arg.parse().unwrap_or(0));
                }
                "metric-get" => {
                    let result = match hostcalls::get_metric(self.metrics.requests) {
                        Ok(v) => v.to_string(),
                        Err(status) => format!("err:{status:?}"),
                    };
                    report(map, "x-probe-metric", &result);
                }
                "incr-raw" => {
                    let offset = arg.parse().unwrap_or(0);
                    // SAFETY: plain values.
                    let status = unsafe { proxy_increment_metric(self.metrics.requests, offset) };
                    report(map, "x-probe-status", &format!("{}", status as u32));
                }
                "time" => {
                    let nanos = self
                        .get_current_time()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    report(map, "x-probe-time", &nanos.to_string());
                }
                "random" => {
                    let mut bytes = [0u8; 8];
                    let result = match getrandom::fill(&mut bytes) {
                        Ok(()) => show(&bytes),
                        Err(e) => format!("err:{e}"),
                    };
                    report(map, "x-probe-random", &result);
                }
                "stdout" => println!("{arg}"),
                "stderr" => eprintln!("{arg}"),
                "queue" => {
                    let id = hostcalls::register_shared_queue("probe-queue");
                    report(map, "x-probe-queue", &format!("{id:?}"));
                }
                "raw-replace" => {
                    // SAFETY: pointers and lengths of live slices.
                    let status = unsafe {
                        proxy_replace_header_map_value(
                            map,
                            key.as_ptr(),
                            key.len(),
                            value.as_ptr(),
                            value.len(),
                        )
                    };
                    report(map, "x-probe-status", &format!("{}", status as u32));
                }
                "raw-get-response" => {
                    let key = ":status";
                    let mut data: *mut u8 = std::ptr::null_mut();
                    let mut size: usize = 0;
                    // SAFETY: pointers to locals; the host allocates through
                    // proxy_on_memory_allocate (leaked here, which is fine for a probe).
                    let status = unsafe {
                        proxy_get_header_map_value(
                            MapType::HttpResponseHeaders,
                            key.as_ptr(),
                            key.len(),
                            &mut data,
                            &mut size,
                        )
                    };
                    report(map, "x-probe-status", &format!("{}", status as u32));
                }
                "effective" => {
                    let id = arg.parse().unwrap_or(0);
                    // SAFETY: plain value.
                    let status = unsafe { proxy_set_effective_context(id) };
                    // Back to ourselves, so that the report lands in this stream.
                    // SAFETY: plain value.
                    let _ = unsafe { proxy_set_effective_context(self.context_id) };
                    report(map, "x-probe-status", &format!("{}", status as u32));
                }
                "tick" => {
                    let _ =
                        hostcalls::set_tick_period(Duration::from_millis(arg.parse().unwrap_or(0)));
                }
                "log-level" => {
                    let level = hostcalls::get_log_level().map(|l| l as u32).unwrap_or(99);
                    report(map, "x-probe-log-level", &level.to_string());
                }
                "env" => {
                    let value = std::env::var(arg).unwrap_or_else(|_| "<unset>".to_string());
                    report(map, "x-probe-env", &value);
                }
                other => log(LogLevel::Warn, &format!("unknown probe op {other}")),
            }
        }
        action
    }
}

impl Context for Probe {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        let status = if headers == 0 {
            "failed".to_string()
        } else {
            self.get_http_call_response_header(":status")
                .unwrap_or_else(|| "none".to_string())
        };
        let body = self
            .get_http_call_response_body(0, body)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        // Envoy has no trailer map when the response had none (BadArgument, a panic in the
        // SDK): only ask when there are some.
        let trailer = if trailers > 0 {
            self.get_http_call_response_trailer("x-trailer")
                .unwrap_or_default()
        } else {
            String::new()
        };
        log(
            LogLevel::Info,
            &format!(
                "#{} call {token} answered: {status} trailers={trailers}",
                self.context_id
            ),
        );
        self.add_http_request_header("x-probe-call-status", &status);
        self.add_http_request_header("x-probe-call-body", &body);
        self.add_http_request_header("x-probe-call-trailer", &trailer);
        if status == "503" {
            self.send_http_response(503, vec![], Some(b"upstream call failed"));
        } else {
            self.resume_http_request();
        }
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        report(
            MapType::HttpRequestHeaders,
            "x-probe-context",
            &self.context_id.to_string(),
        );
        self.run(MapType::HttpRequestHeaders)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-probe-response", Some("seen"));
        self.run(MapType::HttpResponseHeaders)
    }

    fn on_log(&mut self) {
        let _ = hostcalls::increment_metric(self.metrics.logged, 1);
    }
}
