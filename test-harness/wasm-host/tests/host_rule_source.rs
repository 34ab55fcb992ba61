//! The rule-source poller of the built `.wasm`, in the in-process host: three VMs (Envoy's
//! main thread and two workers) share one shared-data store, one clock and one stats store.
//! Only one fetches per poll interval, all of them converge on each new file, a broken file /
//! an error status / no answer keep the last good rules and are logged once.

use std::time::Duration;

use serde_json::json;
use wasm_host::{Clock, HttpAnswer, Module, SharedData, Stats, Vm, VmOptions};

const INTERVAL_MS: u64 = 1000;
const TIMEOUT_MS: u64 = 300;
const CLUSTER: &str = "outbound|80||canary-rules.istio-system.svc.cluster.local";
const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";

fn plugin_config() -> String {
    json!({
        "ruleSource": {
            "cluster": CLUSTER,
            "path": "/rules.json",
            "pollIntervalMs": INTERVAL_MS,
            "timeoutMs": TIMEOUT_MS
        }
    })
    .to_string()
}

/// A rule file sending everything to one subset.
fn rules(version: u64, subset: &str) -> String {
    json!({
        "version": version,
        "services": [{
            "hosts": ["backend"],
            "http": [{
                "name": "all",
                "route": [{"destination": {"host": "backend", "subset": subset, "port": {"number": 80}}}]
            }]
        }]
    })
    .to_string()
}

/// What the fake rule server does.
enum Server {
    File {
        body: String,
        etag: String,
    },
    Status(u16),
    /// Never answers: the host times the call out.
    Hang,
}

struct Mesh {
    clock: Clock,
    stats: Stats,
    vms: Vec<Vm>,
    server: Server,
    /// (time in ms since start, VM index, if-none-match sent)
    fetches: Vec<(u64, usize, Option<String>)>,
    /// Calls seen, by VM and token.
    seen: std::collections::HashSet<(usize, u32)>,
    start: u64,
}

impl Mesh {
    fn new(n: usize) -> Mesh {
        let module = Module::load(test_tools::filter_wasm()).expect("the filter loads");
        let clock = Clock::default();
        let shared = SharedData::new();
        let stats = Stats::new();
        let vms = (0..n)
            .map(|i| {
                Vm::new(
                    &module,
                    VmOptions {
                        node_metadata: json!({"NAMESPACE": "default"}),
                        shared: shared.clone(),
                        stats: stats.clone(),
                        clock: clock.clone(),
                        random_seed: 100 + i as u64,
                        vm_id: "canary-router".into(),
                        root_id: "canary-router".into(),
                        plugin_name: "canary-router".into(),
                        clusters: Some(vec![CLUSTER.into()]),
                        ..VmOptions::default()
                    },
                )
                .expect("the filter instantiates")
            })
            .collect();
        let start = now_ms(&clock);
        Mesh {
            clock,
            stats,
            vms,
            server: Server::Status(404),
            fetches: Vec::new(),
            seen: Default::default(),
            start,
        }
    }

    fn configure_all(&mut self) {
        let config = plugin_config();
        for vm in &mut self.vms {
            assert!(vm.configure(config.as_bytes()).unwrap(), "{:#?}", vm.logs());
        }
        self.answer_all();
    }

    fn serve(&mut self, version: u64, subset: &str) {
        self.server = Server::File {
            body: rules(version, subset),
            etag: format!("\"v{version}\""),
        };
    }

    /// Answers every pending call of every VM as the server is set up now.
    fn answer_all(&mut self) {
        let now = now_ms(&self.clock) - self.start;
        for (i, vm) in self.vms.iter_mut().enumerate() {
            for call in vm.pending_http_calls() {
                if !self.seen.insert((i, call.token)) {
                    continue; // a hanging call, already counted
                }
                assert_eq!(call.upstream, CLUSTER);
                assert_eq!(call.headers.get(":path"), Some("/rules.json"));
                assert_eq!(
                    call.headers.get(":authority"),
                    Some("canary-rules.istio-system.svc.cluster.local")
                );
                assert_eq!(call.timeout, Some(Duration::from_millis(TIMEOUT_MS)));
                let inm = call.headers.get("if-none-match").map(str::to_string);
                let answer = match &self.server {
                    Server::File { etag, .. } if inm.as_deref() == Some(etag) => {
                        HttpAnswer::response(304, &[("etag", etag)], b"")
                    }
                    Server::File { body, etag } => HttpAnswer::response(
                        200,
                        &[("etag", etag), ("content-type", "application/json")],
                        body.as_bytes(),
                    ),
                    Server::Status(code) => {
                        HttpAnswer::response(*code, &[], format!("error {code}").as_bytes())
                    }
                    Server::Hang => {
                        self.fetches.push((now, i, inm));
                        continue;
                    }
                };
                self.fetches.push((now, i, inm));
                vm.answer_http_call(call.token, answer).unwrap();
            }
        }
    }

    /// Moves time forward in 100 ms steps; every VM runs its ticks (and call timeouts) due,
    /// then the server answers what was asked.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 100 {
            self.clock.advance(Duration::from_millis(100));
            for vm in &mut self.vms {
                vm.advance(Duration::ZERO).unwrap();
            }
            self.answer_all();
        }
    }

    /// The cluster each VM routes a request for `backend` to.
    fn routes(&mut self) -> Vec<Option<String>> {
        self.vms
            .iter_mut()
            .map(|vm| {
                let r = vm
                    .request(&[
                        (":authority", "backend"),
                        (":path", "/"),
                        (":method", "GET"),
                    ])
                    .unwrap();
                let cluster = r.header("x-canary-upstream").map(str::to_string);
                vm.respond(&r, &[(":status", "200")]).unwrap();
                cluster
            })
            .collect()
    }

    fn metric(&self, name: &str) -> u64 {
        self.stats.value(name).unwrap_or(0)
    }

    fn logs_containing(&self, needle: &str) -> usize {
        self.vms
            .iter()
            .map(|vm| vm.logs_containing(needle).len())
            .sum()
    }
}

fn now_ms(clock: &Clock) -> u64 {
    clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn all(cluster: &str, n: usize) -> Vec<Option<String>> {
    vec![Some(cluster.to_string()); n]
}

#[test]
fn one_vm_fetches_per_interval_and_all_converge() {
    let mut mesh = Mesh::new(3);
    mesh.serve(1, "v1");
    mesh.configure_all();
    mesh.run(300);
    assert_eq!(
        mesh.fetches.len(),
        1,
        "three VMs configured together fetch once"
    );
    assert_eq!(mesh.routes(), all(V1, 3));
    assert_eq!(mesh.metric("canary_router.rules_version"), 1);
    assert_eq!(mesh.metric("canary_router.rules.reload_success"), 1);

    // Ten seconds: about ten fetches in all (not thirty), each a 304.
    let before = mesh.fetches.len();
    mesh.run(10_000);
    let fetched = mesh.fetches.len() - before;
    assert!(
        (9..=11).contains(&fetched),
        "{fetched} fetches: {:?}",
        mesh.fetches
    );
    assert_eq!(
        mesh.metric("canary_router.rules.fetch_not_modified"),
        fetched as u64
    );
    assert!(mesh.fetches[before..]
        .iter()
        .all(|f| f.2.as_deref() == Some("\"v1\"")));

    // A new file: every VM routes by it within one interval and two ticks.
    mesh.serve(2, "v2");
    mesh.run(INTERVAL_MS + 400);
    assert_eq!(mesh.routes(), all(V2, 3));
    assert_eq!(mesh.metric("canary_router.rules_version"), 2);
    assert_eq!(mesh.metric("canary_router.rules.reload_success"), 2);
    // One "fetched" line per reload; the others adopt quietly.
    assert_eq!(
        mesh.logs_containing("rules version 2 fetched from the rule source"),
        1
    );
}

#[test]
fn failures_keep_the_last_good_rules_and_are_logged_once() {
    let mut mesh = Mesh::new(3);
    mesh.serve(1, "v2");
    mesh.configure_all();
    mesh.run(300);
    assert_eq!(mesh.routes(), all(V2, 3));

    // A broken file: refused, logged once (with the field), the last good rules serve.
    mesh.server = Server::File {
        body: r#"{"services": [{"hosts": ["backend"], "http": [{"route": []}]}]}"#.into(),
        etag: "\"broken\"".into(),
    };
    mesh.run(4000);
    assert!(mesh.metric("canary_router.rules.reload_failure") >= 2);
    assert_eq!(
        mesh.logs_containing("rule file rejected: services[0].http[0].route"),
        1
    );
    assert_eq!(mesh.routes(), all(V2, 3));

    // HTTP 500, then no answer at all: each logged once more.
    mesh.server = Server::Status(500);
    mesh.run(9000);
    assert_eq!(
        mesh.logs_containing("rule server answered HTTP 500: error 500"),
        1
    );
    mesh.server = Server::Hang;
    mesh.run(17_000);
    assert_eq!(mesh.logs_containing("no answer from the rule server"), 1);
    assert_eq!(mesh.routes(), all(V2, 3));
    assert_eq!(mesh.metric("canary_router.rules_version"), 1);
    let failures = mesh.metric("canary_router.rules.reload_failure");
    assert!(failures >= 5, "{failures} failures");

    // Recovery within the longest backoff: new rules everywhere, "recovered" once.
    mesh.serve(3, "v1");
    mesh.run(31_000);
    assert_eq!(mesh.routes(), all(V1, 3));
    assert_eq!(mesh.metric("canary_router.rules_version"), 3);
    assert_eq!(mesh.logs_containing("recovered"), 1);
}
