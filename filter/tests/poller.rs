#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The rule-source poller's protocol, natively: several VMs (Envoy's main
//! thread and workers) share one shared-data store with Envoy's CAS
//! semantics, a fake clock and a fake rule server. The same code runs in the
//! `.wasm`; the in-process host and the real-Envoy tests cover the adapter.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use canary_router::domain::plugin::{self, Rules, Settings};
use canary_router::domain::poll::{self, Counter, Level, PollHost, Poller};
use canary_router::domain::shared::{CasMismatch, SharedStore};
use canary_router::{ConfigError, Plugin, Workload};

const INTERVAL: u64 = 1000;
const TIMEOUT: u64 = 300;
const CLUSTER: &str = "outbound|80||canary-rules.istio-system.svc.cluster.local";

/// Envoy's shared data: a CAS token per key; CAS 0 or a missing key always
/// writes.
#[derive(Default)]
struct Store {
    map: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

/// What the rule server does with the next fetches.
#[derive(Clone, Debug)]
enum Server {
    /// Serves `body` with this ETag (None: no ETag, like `python3 -m http.server`).
    File { body: String, etag: Option<String> },
    /// Answers with this status and no body.
    Status(u16),
    /// The call fails: Envoy calls back with no headers.
    Reset,
    /// Never answers (Envoy would time out; here the test decides).
    Hang,
}

#[derive(Debug)]
struct Fetch {
    vm: usize,
    token: u32,
    at: u64,
    cluster: String,
    headers: Vec<(String, String)>,
}

impl Fetch {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct World {
    store: RefCell<Store>,
    now: Cell<u64>,
    next_token: Cell<u32>,
    fetches: RefCell<Vec<Fetch>>,
    logs: RefCell<Vec<(usize, Level, String)>>,
    counts: RefCell<HashMap<Counter, u64>>,
    /// A failing dispatch (`Err` from the host), e.g. an unknown cluster.
    dispatch_error: RefCell<Option<String>>,
}

/// One VM's view of the host while it handles one answer.
struct Host<'w> {
    world: &'w World,
    vm: usize,
    response: Option<(u16, Option<String>, Vec<u8>)>,
}

impl SharedStore for Host<'_> {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self.world.store.borrow().map.get(key).cloned())
    }

    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<Result<(), CasMismatch>, String> {
        let mut store = self.world.store.borrow_mut();
        if let Some((_, current)) = store.map.get(key) {
            if cas != 0 && cas != *current {
                return Ok(Err(CasMismatch));
            }
        }
        store.next_cas += 1;
        let cas = store.next_cas;
        store.map.insert(key.to_string(), (value.to_vec(), cas));
        Ok(Ok(()))
    }
}

impl PollHost for Host<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        Some(self.world.now.get())
    }

    fn fetch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, String> {
        assert_eq!(timeout, Duration::from_millis(TIMEOUT));
        if let Some(e) = self.world.dispatch_error.borrow().clone() {
            return Err(e);
        }
        let token = self.world.next_token.get() + 1;
        self.world.next_token.set(token);
        self.world.fetches.borrow_mut().push(Fetch {
            vm: self.vm,
            token,
            at: self.world.now.get(),
            cluster: cluster.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        });
        Ok(token)
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        let (status, etag, _) = self.response.as_ref()?;
        match name {
            ":status" => Some(status.to_string().into_bytes()),
            "etag" => etag.clone().map(String::into_bytes),
            _ => None,
        }
    }

    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, String> {
        let (_, _, body) = self.response.as_ref().ok_or("no response")?;
        assert!(
            size <= body.len(),
            "asked for {size} of {} bytes",
            body.len()
        );
        Ok(body[..size].to_vec())
    }

    fn count(&mut self, counter: Counter) {
        *self.world.counts.borrow_mut().entry(counter).or_default() += 1;
    }

    fn log(&mut self, level: Level, message: &str) {
        self.world
            .logs
            .borrow_mut()
            .push((self.vm, level, message.to_string()));
    }
}

/// One VM: a poller and the rules it serves.
struct Vm {
    poller: Poller,
    settings: Settings,
    active: Option<u64>,
    compiles: usize,
}

fn source_config() -> String {
    format!(
        r#"{{"ruleSource":{{"cluster":"{CLUSTER}","path":"/rules.json","pollIntervalMs":{INTERVAL},"timeoutMs":{TIMEOUT}}}}}"#
    )
}

fn rules(version: u64, v1: u32, v2: u32) -> String {
    format!(
        r#"{{"version":{version},"services":[{{"hosts":["backend"],"http":[{{"name":"split","route":[
        {{"destination":{{"host":"backend","subset":"v1","port":{{"number":80}}}},"weight":{v1}}},
        {{"destination":{{"host":"backend","subset":"v2","port":{{"number":80}}}},"weight":{v2}}}]}}]}}]}}"#
    )
}

struct Sim {
    world: Rc<World>,
    vms: Vec<Vm>,
    server: Server,
    rounds: usize,
}

impl Sim {
    fn new(vms: usize) -> Self {
        let world = Rc::new(World::default());
        world.now.set(1_700_000_000_000);
        let mut sim = Sim {
            world,
            vms: Vec::new(),
            server: Server::Status(404),
            rounds: 0,
        };
        for i in 0..vms {
            sim.add_vm(i as u64 + 1);
        }
        sim
    }

    fn add_vm(&mut self, me: u64) -> usize {
        let plugin = Plugin::from_bytes(source_config().as_bytes(), &Workload::default()).unwrap();
        let settings = plugin.settings;
        let poller = Poller::new(settings.source.clone().unwrap(), me);
        self.vms.push(Vm {
            poller,
            settings,
            active: None,
            compiles: 0,
        });
        self.vms.len() - 1
    }

    fn host(&self, vm: usize) -> Host<'_> {
        Host {
            world: &self.world,
            vm,
            response: None,
        }
    }

    fn tick_vm(&mut self, i: usize) {
        let world = self.world.clone();
        let vm = &mut self.vms[i];
        let mut host = Host {
            world: &world,
            vm: i,
            response: None,
        };
        let settings = vm.settings.clone();
        let mut compiles = 0;
        let got = vm.poller.tick(&mut host, &mut |b| {
            compiles += 1;
            compile(&settings, b)
        });
        vm.compiles += compiles;
        if let Some(r) = got {
            vm.active = Some(r.version);
        }
    }

    /// Every VM ticks once, then pending fetches are answered. The VM that
    /// ticks first changes from round to round, as Envoy's threads would.
    fn tick_all(&mut self) {
        let n = self.vms.len();
        let first = self.rounds % n;
        self.rounds += 1;
        for i in (first..n).chain(0..first) {
            self.tick_vm(i);
        }
        self.answer_pending();
    }

    fn pending(&self) -> Vec<(usize, u32, Option<String>)> {
        self.world
            .fetches
            .borrow()
            .iter()
            .filter(|f| f.at == self.world.now.get())
            .map(|f| (f.vm, f.token, f.header("if-none-match").map(str::to_string)))
            .collect()
    }

    fn answer_pending(&mut self) {
        for (vm, token, inm) in self.pending() {
            self.answer(vm, token, inm);
        }
    }

    fn answer(&mut self, i: usize, token: u32, if_none_match: Option<String>) {
        let (num_headers, response) = match &self.server {
            Server::File { body, etag } => {
                if etag.is_some() && etag == &if_none_match {
                    (3, Some((304, etag.clone(), Vec::new())))
                } else {
                    (3, Some((200, etag.clone(), body.clone().into_bytes())))
                }
            }
            // A body that differs on every answer, like a page with a timestamp.
            Server::Status(code) => (
                3,
                Some((
                    *code,
                    None,
                    format!("oops\r\nat {}", self.world.now.get()).into_bytes(),
                )),
            ),
            Server::Reset => (0, None),
            Server::Hang => return,
        };
        let body_size = response.as_ref().map_or(0, |r| r.2.len());
        let world = self.world.clone();
        let vm = &mut self.vms[i];
        let mut host = Host {
            world: &world,
            vm: i,
            response,
        };
        let settings = vm.settings.clone();
        let mut compiles = 0;
        let got = vm
            .poller
            .on_response(&mut host, token, num_headers, body_size, &mut |b| {
                compiles += 1;
                compile(&settings, b)
            });
        vm.compiles += compiles;
        if let Some(r) = got {
            vm.active = Some(r.version);
        }
    }

    fn advance(&self, ms: u64) {
        self.world.now.set(self.world.now.get() + ms);
    }

    /// Runs `ms` of time in steps of the tick period.
    fn run(&mut self, ms: u64) {
        let tick = u64::from(self.vms[0].poller.tick_period_ms());
        let mut left = ms;
        while left > 0 {
            self.advance(tick.min(left));
            left = left.saturating_sub(tick);
            self.tick_all();
        }
    }

    fn fetch_count(&self) -> usize {
        self.world.fetches.borrow().len()
    }

    fn count(&self, c: Counter) -> u64 {
        self.world.counts.borrow().get(&c).copied().unwrap_or(0)
    }

    fn logs_containing(&self, needle: &str) -> usize {
        self.world
            .logs
            .borrow()
            .iter()
            .filter(|(_, _, m)| m.contains(needle))
            .count()
    }

    fn versions(&self) -> Vec<Option<u64>> {
        self.vms.iter().map(|v| v.active).collect()
    }

    fn serve(&mut self, version: u64, v1: u32, v2: u32, etag: Option<&str>) {
        self.server = Server::File {
            body: rules(version, v1, v2),
            etag: etag.map(str::to_string),
        };
    }
}

fn compile(settings: &Settings, bytes: &[u8]) -> Result<Rules, ConfigError> {
    plugin::rule_file_from_bytes(bytes, settings, &Workload::default())
}

#[test]
fn one_vm_fetches_per_interval_and_every_vm_converges() {
    let mut sim = Sim::new(3);
    sim.serve(1, 100, 0, Some("\"e1\""));
    sim.tick_all();
    assert_eq!(sim.fetch_count(), 1, "three VMs ticking at once fetch once");
    // Every VM runs version 1 after one more tick (it adopts the shared copy).
    sim.run(200);
    assert_eq!(sim.versions(), [Some(1); 3]);
    assert_eq!(sim.count(Counter::ReloadSuccess), 1);

    // Ten intervals: ten more fetches (not thirty), all answered 304.
    sim.run(10 * INTERVAL);
    let fetches = sim.fetch_count() - 1;
    assert!(
        (9..=11).contains(&fetches),
        "{fetches} fetches in 10 intervals"
    );
    assert_eq!(sim.count(Counter::NotModified) as usize, fetches);
    assert_eq!(sim.count(Counter::ReloadSuccess), 1);
    // Fetches are spread over the VMs' ticks, but never closer than an interval.
    let times: Vec<u64> = sim.world.fetches.borrow().iter().map(|f| f.at).collect();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= INTERVAL, "{times:?}");
    }
    // The ETag went back, the authority is the Service host, the cluster Istio's.
    let fetches = sim.world.fetches.borrow();
    let last = fetches.last().unwrap();
    assert_eq!(last.header("if-none-match"), Some("\"e1\""));
    assert_eq!(
        last.header(":authority"),
        Some("canary-rules.istio-system.svc.cluster.local")
    );
    assert_eq!(last.header(":path"), Some("/rules.json"));
    assert_eq!(last.header(":method"), Some("GET"));
    assert_eq!(last.cluster, CLUSTER);
    drop(fetches);

    // A new file reaches every VM within one interval and two ticks.
    sim.serve(2, 0, 100, Some("\"e2\""));
    let tick = u64::from(sim.vms[0].poller.tick_period_ms());
    sim.run(INTERVAL + 2 * tick);
    assert_eq!(sim.versions(), [Some(2); 3]);
    assert_eq!(sim.count(Counter::ReloadSuccess), 2);
    // Each VM compiled each version once, not once per tick.
    for vm in &sim.vms {
        assert!(vm.compiles <= 2, "{} compiles", vm.compiles);
    }
}

#[test]
fn failures_keep_the_last_good_rules_are_logged_once_and_back_off() {
    let mut sim = Sim::new(2);
    sim.serve(1, 90, 10, Some("\"e1\""));
    sim.run(400);
    assert_eq!(sim.versions(), [Some(1); 2]);

    // HTTP 500 for a while: backoff of 1, 2, 4, 8 intervals.
    sim.server = Server::Status(500);
    let before = sim.fetch_count();
    sim.run(16 * INTERVAL);
    let failed: Vec<u64> = sim.world.fetches.borrow()[before..]
        .iter()
        .map(|f| f.at)
        .collect();
    let gaps: Vec<u64> = failed.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(failed.len() >= 4, "{failed:?}");
    for (i, gap) in gaps.iter().enumerate() {
        let want = poll::backoff_ms(INTERVAL, i as u32 + 1);
        assert!(
            *gap >= want && *gap <= want + 200,
            "gap {i} is {gap} ms, want {want}: {gaps:?}"
        );
    }
    assert_eq!(sim.count(Counter::ReloadFailure) as usize, failed.len());
    assert_eq!(sim.versions(), [Some(1); 2], "the last good rules serve");
    assert_eq!(sim.logs_containing("answered HTTP 500: oops at "), 1);
    let fetchers: std::collections::BTreeSet<usize> =
        sim.world.fetches.borrow().iter().map(|f| f.vm).collect();
    assert_eq!(fetchers.len(), 2, "both VMs took turns fetching");

    // A different failure is logged once more; the same one never again.
    sim.server = Server::File {
        body: "{\"services\": [".into(),
        etag: Some("\"bad\"".into()),
    };
    sim.run(40 * INTERVAL);
    assert_eq!(sim.logs_containing("rule file rejected"), 1);
    sim.server = Server::Reset;
    sim.run(40 * INTERVAL);
    assert_eq!(sim.logs_containing("no answer from the rule server"), 1);
    sim.server = Server::Status(500);
    sim.run(40 * INTERVAL);
    assert_eq!(sim.logs_containing("answered HTTP 500"), 2);
    assert_eq!(sim.versions(), [Some(1); 2]);
    assert_eq!(sim.count(Counter::ReloadSuccess), 1);
    let warns = sim
        .world
        .logs
        .borrow()
        .iter()
        .filter(|(_, l, _)| *l == Level::Warn)
        .count();
    assert_eq!(warns, 4, "{:?}", sim.world.logs.borrow());

    // Recovery: within the capped backoff, logged once, new rules everywhere.
    sim.serve(3, 50, 50, Some("\"e3\""));
    sim.run(poll::MAX_BACKOFF_MS + INTERVAL);
    assert_eq!(sim.versions(), [Some(3); 2]);
    assert_eq!(sim.logs_containing("recovered"), 1);
    // After a success the backoff is gone: the next fetch one interval later.
    let n = sim.fetch_count();
    sim.run(INTERVAL + 200);
    assert!(sim.fetch_count() > n);
}

#[test]
fn a_fetch_that_never_answers_is_given_up_after_its_timeout() {
    let mut sim = Sim::new(2);
    sim.server = Server::Hang;
    sim.tick_all();
    assert_eq!(sim.fetch_count(), 1);
    // While the fetch is under way nobody else fetches, even past an interval
    // shorter than the timeout would allow.
    sim.run(TIMEOUT + poll::LEASE_GRACE_MS - 200);
    assert_eq!(sim.fetch_count(), 1);
    sim.run(INTERVAL);
    assert_eq!(
        sim.fetch_count(),
        2,
        "the lease expired and was taken again"
    );
}

#[test]
fn the_same_bytes_install_nothing_and_a_new_etag_is_kept() {
    let mut sim = Sim::new(2);
    // A server without ETags (python3 -m http.server): every poll is a 200.
    sim.serve(1, 90, 10, None);
    sim.run(5 * INTERVAL);
    assert_eq!(sim.count(Counter::ReloadSuccess), 1);
    assert!(sim.count(Counter::NotModified) >= 3);
    assert!(sim
        .world
        .fetches
        .borrow()
        .iter()
        .all(|f| f.header("if-none-match").is_none()));
    // Same bytes, now with an ETag: kept and sent back, nothing reinstalled.
    sim.serve(1, 90, 10, Some("\"late\""));
    sim.run(3 * INTERVAL);
    assert_eq!(sim.count(Counter::ReloadSuccess), 1);
    let fetches = sim.world.fetches.borrow();
    assert_eq!(
        fetches.last().unwrap().header("if-none-match"),
        Some("\"late\"")
    );
    drop(fetches);
    for vm in &sim.vms {
        assert_eq!(vm.compiles, 1);
    }
}

#[test]
fn a_vm_that_starts_later_adopts_the_shared_rules_without_fetching() {
    let mut sim = Sim::new(1);
    sim.serve(7, 0, 100, Some("\"e7\""));
    sim.tick_all();
    assert_eq!(sim.versions(), [Some(7)]);
    let n = sim.fetch_count();
    let late = sim.add_vm(99);
    sim.tick_vm(late);
    assert_eq!(sim.vms[late].active, Some(7));
    assert_eq!(sim.fetch_count(), n);
}

#[test]
fn a_dispatch_error_counts_and_is_logged_once() {
    let mut sim = Sim::new(2);
    *sim.world.dispatch_error.borrow_mut() = Some("BadArgument".into());
    sim.run(8 * INTERVAL);
    assert!(sim.count(Counter::ReloadFailure) >= 3);
    assert_eq!(sim.logs_containing("cannot call cluster"), 1);
    assert_eq!(sim.versions(), [None, None]);
}

#[test]
fn an_empty_or_invalid_answer_is_a_failure_with_its_reason() {
    let mut sim = Sim::new(1);
    sim.server = Server::File {
        body: String::new(),
        etag: None,
    };
    sim.tick_all();
    assert_eq!(sim.logs_containing("rule file is empty"), 1);
    assert_eq!(sim.count(Counter::ReloadFailure), 1);
    // An invalid rule file names the field.
    sim.server = Server::File {
        body: rules(2, 1, 2).replace("\"weight\":2}", "\"weight\":-2}"),
        etag: None,
    };
    sim.run(3 * INTERVAL);
    let logs = sim.world.logs.borrow();
    let line = logs
        .iter()
        .find(|(_, _, m)| m.contains("rejected"))
        .unwrap();
    assert!(
        line.2.contains("services[0].http[0].route[1].weight"),
        "{line:?}"
    );
    assert!(line.2.contains("keeping the last good rules"), "{line:?}");
}

#[test]
fn the_lease_is_created_once_and_claimed_with_cas() {
    let mut sim = Sim::new(1);
    sim.serve(1, 1, 1, None);
    // A lease someone else just claimed: nobody fetches before it is due.
    let key = format!("canary-router/v1/{CLUSTER}/rules.json/lease");
    let now = sim.world.now.get();
    let lease = poll::Lease {
        owner: "other".into(),
        next_fetch_ms: now + 500,
        failures: 0,
    };
    sim.host(0)
        .set(&key, lease.encode().as_bytes(), 0)
        .unwrap()
        .unwrap();
    sim.tick_all();
    assert_eq!(sim.fetch_count(), 0);
    sim.run(500);
    assert_eq!(sim.fetch_count(), 1);
    let stored = sim.world.store.borrow().map.get(&key).cloned().unwrap();
    let lease = poll::Lease::parse(&stored.0).unwrap();
    assert_eq!(lease.owner, "1");
    assert_eq!(lease.failures, 0);
}

#[test]
fn default_authority_is_the_service_host_of_an_istio_cluster() {
    let settings = |cluster: &str, authority: Option<&str>| {
        let authority = authority.map_or(String::new(), |a| format!(r#","authority":"{a}""#));
        let json =
            format!(r#"{{"ruleSource":{{"cluster":"{cluster}","path":"/r.json"{authority}}}}}"#);
        Plugin::from_bytes(json.as_bytes(), &Workload::default())
            .unwrap()
            .settings
            .source
            .unwrap()
            .authority
            .to_string()
    };
    assert_eq!(
        settings(CLUSTER, None),
        "canary-rules.istio-system.svc.cluster.local"
    );
    assert_eq!(
        settings("outbound|8080|v1|rules.ns.svc.cluster.local", None),
        "rules.ns.svc.cluster.local:8080"
    );
    assert_eq!(settings("rule_server", None), "rule_server");
    assert_eq!(settings("outbound|x||h", None), "outbound|x||h");
    assert_eq!(settings(CLUSTER, Some("rules.example")), "rules.example");
    assert_eq!(
        plugin::default_authority("inbound|80||backend.default.svc.cluster.local"),
        "inbound|80||backend.default.svc.cluster.local"
    );
}
