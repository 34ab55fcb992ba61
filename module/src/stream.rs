//! One request, as the wasm filter routes it: read the request headers
//! once, decide with the shared core, write the chosen cluster into the
//! route header (removing a client's copy), ask Envoy to select the route
//! again, count; on the response, the sticky cookie the rule issued and the
//! debug header.

use std::cell::{OnceCell, RefCell};
use std::sync::Arc;

use canary_router::domain::cluster::Built;
use canary_router::domain::cookie::{Key, MAX_SET_COOKIE_LEN};
use canary_router::domain::pick::Rng;
use canary_router::domain::rules::{Outcome, RequestView, Via};

use crate::abi::HeaderList;
use crate::config::Active;
use crate::metrics::Metric;

/// A request or response header, borrowed from Envoy's header map.
pub type Header<'s> = (&'s [u8], &'s [u8]);

/// The first value of header `name` (lower case, as Envoy keeps them).
pub fn header<'h>(headers: &[Header<'h>], name: &str) -> Option<&'h [u8]> {
    let name = name.as_bytes();
    headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// Whether a value of header `name` satisfies `f`: `None` when the header
/// is absent ([`RequestView::any_header_value`]'s contract).
pub fn any_header_value(
    headers: &[Header<'_>],
    name: &str,
    mut f: impl FnMut(&[u8]) -> bool,
) -> Option<bool> {
    let name = name.as_bytes();
    let mut seen = false;
    for (k, v) in headers {
        if *k == name {
            seen = true;
            if f(v) {
                return Some(true);
            }
        }
    }
    seen.then_some(false)
}

/// Calls `f` with every header whose name's length (63 for 63 and more) is
/// a bit of `lengths`.
pub fn for_each_header_of_len(
    headers: &[Header<'_>],
    lengths: u64,
    mut f: impl FnMut(&[u8], &[u8]),
) {
    for (k, v) in headers {
        if lengths & (1u64 << k.len().min(63)) != 0 {
            f(k, v);
        }
    }
}

/// What a stream of Envoy's offers the filter (the ABI's stream, or a fake
/// in tests).
pub trait Host {
    /// Appends every request header to `list`, in order (repeated names
    /// repeatedly); false if Envoy cannot list them.
    fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool;
    /// The first value of a response header (`:status` among them).
    fn response_header(&self, name: &str) -> Option<&[u8]>;
    /// Sets a request header (replacing every value); false if refused.
    fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Adds a request header (other values of it stay).
    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Removes a request header.
    fn remove_request_header(&mut self, name: &str) -> bool;
    /// Sets a response header (replacing every value).
    fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Adds a response header (other values of it stay).
    fn add_response_header(&mut self, name: &str, value: &[u8]) -> bool;
    /// Asks Envoy to select the route again (the request headers changed).
    fn clear_route_cache(&mut self);
    /// The client's address (`source.address`, `ip:port`).
    fn source_address(&self) -> Option<&[u8]>;
    /// The port the request arrived on (`destination.port`).
    fn local_port(&self) -> Option<u16>;
    /// Adds one to a counter of the stream's configuration.
    fn bump(&mut self, metric: Option<&Metric>);
}

thread_local! {
    /// Each worker's generator for weighted picks, seeded from the OS.
    static RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

/// 64 random bits for a weighted pick.
pub fn random() -> u64 {
    RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rng = slot.get_or_insert_with(|| {
            // The clock and the thread only if the OS has no randomness.
            let seed = getrandom::u64().unwrap_or_else(|_| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                t ^ (std::process::id() as u64) << 32
            });
            Rng::new(seed)
        });
        rng.next_u64()
    })
}

/// Fresh random bits for a cookie key; none if the OS has none (the request
/// then gets the random split and no cookie).
fn fresh_bits() -> Option<[u8; 16]> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits).ok().map(|()| bits)
}

/// A key issued to a request, and the rule whose cookie carries it.
struct Issued {
    service: usize,
    rule: usize,
    key: Key,
    /// The request came over plain HTTP (`:scheme` `http`).
    over_http: bool,
}

/// The module's state of one stream.
pub struct StreamFilter {
    active: Arc<Active>,
    /// `stat_index` of the destination that served the request.
    served: Option<u32>,
    cookie: Option<Issued>,
    /// Response headers were seen (a guarded destination's stream that
    /// ends without them counts as an error).
    responded: bool,
    /// Whether the guards count this request's answer, and its time
    /// (decided with the request: a baseline's answers are sampled).
    counted: Option<bool>,
}

impl Drop for StreamFilter {
    /// The stream is over: a counted request that never saw response
    /// headers counts as an error.
    fn drop(&mut self) {
        let active = &*self.active;
        if let (Some(g), Some(rules), Some(served), Some(_), false) = (
            &active.guard,
            &active.rules,
            self.served,
            self.counted,
            self.responded,
        ) {
            if g.on_response(&rules.set, served, None, None) {
                active.show_weights();
            }
        }
    }
}

/// A `Secure` cookie issued over plain HTTP: a browser on a host other
/// than `localhost` drops it, so every request of it gets a new key and
/// the random split. Counted, and warned once per configuration (the wasm
/// filter's count and line).
fn secure_over_http(active: &Active, stream: &mut impl Host) {
    stream.bump(active.global.secure_cookie_over_http.as_ref());
    if !active
        .warned_secure_over_http
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        log::warn!("Secure sticky cookie issued over http: browsers drop it (see canary_router.secure_cookie_over_http)");
    }
}

/// A decimal header value (`None` if not one).
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
    })
}

/// The request as the rules see it: Envoy's header list, and the client
/// address and arrival port, asked only if a rule needs them.
struct View<'s, H> {
    headers: &'s [Header<'s>],
    stream: &'s H,
    source: OnceCell<Option<&'s [u8]>>,
    port: OnceCell<Option<u16>>,
}

impl<H: Host> RequestView for View<'_, H> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        header(self.headers, name)
    }

    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        any_header_value(self.headers, name, f)
    }

    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        for_each_header_of_len(self.headers, lengths, f);
        true
    }

    fn source_address(&self) -> Option<&[u8]> {
        *self
            .source
            .get_or_init(|| self.stream.source_address().filter(|a| !a.is_empty()))
    }

    fn local_port(&self) -> Option<u16> {
        *self.port.get_or_init(|| self.stream.local_port())
    }
}

/// A new stream's state, as Envoy holds it for the stream's hooks.
pub enum NewStream {
    /// The whole filter: the response has work (see [`Active::response_work`]).
    Filter(Box<StreamFilter>),
    /// Only the rules the request is routed by: the response has nothing
    /// to do, so nothing of the stream is kept (no allocation per stream).
    RoutingOnly(Arc<Active>),
}

/// What a routed request's response needs: the destination that served
/// it, whether the guards count its answer, the cookie it was issued.
#[derive(Default)]
pub struct Routed {
    served: Option<u32>,
    counted: Option<bool>,
    cookie: Option<Issued>,
}

/// Routes a request by `active`'s rules: decides, writes the route header
/// (removing a client's copy), asks Envoy to select the route again, counts.
pub fn route(active: &Active, stream: &mut impl Host) -> Routed {
    let header = &*active.settings.route_header;
    let mut headers = HeaderList::default();
    if !stream.request_headers(&mut headers) {
        // Unreadable: a client's copy of the route header cannot be
        // seen either, so remove it blindly (never steered by a client).
        stream.bump(active.global.host_call_errors.as_ref());
        if stream.remove_request_header(header) {
            stream.clear_route_cache();
        }
        stream.bump(active.global.passthrough.as_ref());
        return Routed::default();
    }
    let spoofed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(header.as_bytes()));
    let view = View {
        headers: &headers,
        stream,
        source: OnceCell::new(),
        port: OnceCell::new(),
    };
    let outcome = match &active.rules {
        Some(rules) => {
            let outcome = rules.set.decide_issuing(&view, random, fresh_bits);
            match &active.guard {
                Some(g) => g.adjust(&rules.set, outcome, &view, random),
                None => outcome,
            }
        }
        None => Outcome::NoService,
    };
    // Where a port-less destination's name is built: filled only for a
    // request that leaves the default route.
    let mut built: Built;
    let mut target: Option<(u32, Option<&[u8]>)> = None;
    if let Outcome::Routed(d) = outcome {
        match d.target.via {
            Via::DefaultRoute => target = Some((d.target.stat_index, None)),
            Via::RouteHeader => {
                built = Built::default();
                match d.cluster.resolve(|| view.local_port(), &mut built) {
                    Some(name) => target = Some((d.target.stat_index, Some(name))),
                    None => {
                        log::debug!("destination.port unknown: the request stays on Envoy's route")
                    }
                }
            }
        }
    }
    let over_http = matches!(&outcome, Outcome::Routed(d) if d.issued.is_some())
        && view.header(":scheme") == Some(b"http");
    // The header slices borrow the stream: they end here, before the writes.
    drop(headers);
    let mut served = None;
    let mut modified = false;
    match target {
        Some((index, None)) => served = Some(index),
        Some((index, Some(name))) => {
            // Without a client's copy to replace, adding the header is
            // setting it, and spares Envoy a search of the header map.
            let written = if spoofed {
                stream.set_request_header(header, name)
            } else {
                stream.add_request_header(header, name)
            };
            if written {
                served = Some(index);
                modified = true;
            } else {
                stream.bump(active.global.host_call_errors.as_ref());
            }
        }
        None => {}
    }
    if spoofed {
        stream.bump(active.global.spoofed_header_removed.as_ref());
        if !modified {
            if stream.remove_request_header(header) {
                modified = true;
            } else {
                stream.bump(active.global.host_call_errors.as_ref());
            }
        }
    }
    if modified {
        stream.clear_route_cache();
    }
    match served {
        Some(i) => stream.bump(active.dest_metrics.get(i as usize).and_then(Option::as_ref)),
        None => stream.bump(active.global.passthrough.as_ref()),
    }
    let counted = match (&active.guard, served) {
        (Some(g), Some(i)) => g.sample(i),
        _ => None,
    };
    let cookie = match (served, outcome) {
        (Some(_), Outcome::Routed(d)) => d.issued.map(|key| Issued {
            service: d.service,
            rule: d.rule,
            key,
            over_http,
        }),
        _ => None,
    };
    Routed {
        served,
        counted,
        cookie,
    }
}

impl StreamFilter {
    /// A stream routed by `active`.
    pub fn new(active: Arc<Active>) -> Self {
        StreamFilter {
            active,
            served: None,
            cookie: None,
            responded: false,
            counted: None,
        }
    }

    /// Routes the request.
    pub fn on_request_headers(&mut self, stream: &mut impl Host) {
        let routed = route(&self.active, stream);
        self.served = routed.served;
        self.counted = routed.counted;
        self.cookie = routed.cookie;
    }

    /// The issued cookie, the guard's count and the debug header.
    pub fn on_response_headers(&mut self, stream: &mut impl Host) {
        let active = &*self.active;
        if let (Some(g), Some(rules), Some(served), Some(timed)) =
            (&active.guard, &active.rules, self.served, self.counted)
        {
            self.responded = true;
            // Unreadable: not an error of the destination's (a 5xx is).
            let status = stream
                .response_header(":status")
                .and_then(number)
                .map_or(200, |s| s.min(999) as u32);
            // The router's time from sending the request to the response
            // headers; absent on Envoy's own replies.
            let ms = timed
                .then(|| stream.response_header("x-envoy-upstream-service-time"))
                .flatten()
                .and_then(number);
            if g.on_response(&rules.set, served, Some(status), ms) {
                active.show_weights();
            }
        }
        if let Some(issued) = self.cookie.take() {
            let issuer = active
                .rules
                .as_ref()
                .and_then(|r| r.set.services().get(issued.service))
                .and_then(|s| s.rules.get(issued.rule))
                .and_then(|r| r.route.issuer());
            if let Some(issuer) = issuer {
                if issued.over_http && issuer.secure() {
                    secure_over_http(active, stream);
                }
                let mut buf = [0u8; MAX_SET_COOKIE_LEN];
                let value = issuer.render(&issued.key, &mut buf);
                if !stream.add_response_header("set-cookie", value) {
                    stream.bump(active.global.host_call_errors.as_ref());
                }
            }
        }
        if let (Some(name), Some(value)) = (
            active.settings.debug_header.as_deref(),
            self.served
                .and_then(|i| active.debug_values.get(i as usize)),
        ) {
            if !stream.set_response_header(name, value.as_bytes()) {
                stream.bump(active.global.host_call_errors.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use crate::metrics::Global;
    use canary_router::{Plugin, Workload};

    /// A stream as Envoy would hold it: header lists, and what the filter did.
    #[derive(Default)]
    struct Fake {
        request: Vec<(String, String)>,
        response: Vec<(String, String)>,
        status: Option<&'static str>,
        unreadable: bool,
        refuse_writes: bool,
        cleared: u32,
        port: Option<u16>,
        /// Counter ids bumped (labelled ones as `id:labels`).
        bumps: Vec<String>,
    }

    impl Fake {
        fn get(&self, name: &str) -> Option<&str> {
            self.request
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        fn count(&self, id: usize) -> usize {
            self.bumps.iter().filter(|b| **b == id.to_string()).count()
        }
    }

    impl Host for Fake {
        fn request_headers<'s>(&'s self, list: &mut HeaderList<'s>) -> bool {
            if self.unreadable {
                return false;
            }
            for (k, v) in &self.request {
                list.push((k.as_bytes(), v.as_bytes()));
            }
            true
        }
        fn response_header(&self, name: &str) -> Option<&[u8]> {
            match name {
                ":status" => self.status.map(str::as_bytes),
                _ => self
                    .response
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_bytes()),
            }
        }
        fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
            if self.refuse_writes {
                return false;
            }
            self.request.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            self.request
                .push((name.into(), String::from_utf8(value.to_vec()).unwrap()));
            true
        }
        fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
            if self.refuse_writes {
                return false;
            }
            self.request
                .push((name.into(), String::from_utf8(value.to_vec()).unwrap()));
            true
        }
        fn remove_request_header(&mut self, name: &str) -> bool {
            if self.refuse_writes {
                return false;
            }
            self.request.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            true
        }
        fn set_response_header(&mut self, name: &str, value: &[u8]) -> bool {
            self.response.retain(|(k, _)| k != name);
            self.add_response_header(name, value)
        }
        fn add_response_header(&mut self, name: &str, value: &[u8]) -> bool {
            self.response
                .push((name.into(), String::from_utf8(value.to_vec()).unwrap()));
            true
        }
        fn clear_route_cache(&mut self) {
            self.cleared += 1;
        }
        fn source_address(&self) -> Option<&[u8]> {
            Some(b"10.0.0.1:5555")
        }
        fn local_port(&self) -> Option<u16> {
            self.port
        }
        fn bump(&mut self, metric: Option<&Metric>) {
            if let Some(m) = metric {
                let mut s = m.id.to_string();
                if !m.labels.is_empty() {
                    s = format!("{s}:{}", m.labels.join("/"));
                }
                self.bumps.push(s);
            }
        }
    }

    struct NoSink;
    impl crate::guard::Sink for NoSink {
        fn add(&self, _: Option<&Metric>, _: u64) {}
        fn set(&self, _: Option<&Metric>, _: u64) {}
    }

    const PASSTHROUGH: usize = 100;
    const SPOOFED: usize = 101;
    const HOST_ERRORS: usize = 102;
    const SECURE_OVER_HTTP: usize = 103;

    /// `rules` compiled as the configuration compiles them; destination
    /// counters numbered from 0 in `stat_index` order.
    fn active(rules: &str) -> Arc<Active> {
        let Plugin { settings, rules } =
            crate::config::compile(b"canary-router", rules.as_bytes(), &Workload::default())
                .unwrap();
        let global = Arc::new(Global {
            passthrough: Some(Metric::plain(PASSTHROUGH)),
            spoofed_header_removed: Some(Metric::plain(SPOOFED)),
            host_call_errors: Some(Metric::plain(HOST_ERRORS)),
            secure_cookie_over_http: Some(Metric::plain(SECURE_OVER_HTTP)),
            ..Global::default()
        });
        let mut next = 0;
        Arc::new(Active::new(
            Arc::new(settings),
            rules,
            global,
            Arc::new(NoSink),
            |_, _| {
                next += 1;
                Some(next - 1)
            },
        ))
    }

    fn example(name: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join("examples").join(name)).unwrap()
    }

    fn request(headers: &[(&str, &str)]) -> Fake {
        Fake {
            request: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: Some("200"),
            port: Some(80),
            ..Fake::default()
        }
    }

    fn backend(extra: &[(&str, &str)]) -> Fake {
        let mut h = vec![
            (":authority", "backend"),
            (":path", "/"),
            (":method", "GET"),
        ];
        h.extend_from_slice(extra);
        request(&h)
    }

    /// Runs one request and its response through a stream of `active`.
    fn run(active: &Arc<Active>, mut fake: Fake) -> Fake {
        let mut f = StreamFilter::new(active.clone());
        f.on_request_headers(&mut fake);
        f.on_response_headers(&mut fake);
        fake
    }

    #[test]
    fn a_header_rule_writes_the_cluster_reselects_the_route_and_counts() {
        let a = active(&example("native-module/rules.json"));
        let out = run(&a, backend(&[("canary", "canary-tester")]));
        assert_eq!(
            out.get("x-canary-upstream"),
            Some("outbound|80|v2|backend.default.svc.cluster.local")
        );
        assert_eq!(out.cleared, 1);
        // Destinations: testers/v2 (0), split/v1 (1), split/v2 (2).
        assert_eq!(out.bumps, ["0"]);
        assert_eq!(
            out.response,
            [(
                "x-canary-route".to_string(),
                "backend.default.svc.cluster.local/testers/v2".to_string()
            )]
        );
    }

    #[test]
    fn weights_split_and_a_sticky_key_keeps_its_destination() {
        let a = active(&example("native-module/rules.json"));
        let mut v2 = 0;
        for _ in 0..2000 {
            let out = run(&a, backend(&[]));
            let upstream = out.get("x-canary-upstream").unwrap();
            v2 += usize::from(upstream.contains("|v2|"));
            assert_eq!(out.cleared, 1);
        }
        assert!((120..=290).contains(&v2), "v2 {v2} of 2000 at 10%");
        for user in 0..50 {
            let id = format!("user-{user}");
            let first = run(&a, backend(&[("x-user-id", &id)]));
            let first = first.get("x-canary-upstream").unwrap().to_string();
            for _ in 0..5 {
                let again = run(&a, backend(&[("x-user-id", &id)]));
                assert_eq!(again.get("x-canary-upstream"), Some(first.as_str()));
            }
        }
    }

    #[test]
    fn the_default_destination_writes_nothing_and_selects_no_route_again() {
        let a = active(&example("default-destination/rules.json"));
        let mut untouched = 0;
        for _ in 0..500 {
            let out = run(&a, backend(&[]));
            match out.get("x-canary-upstream") {
                None => {
                    untouched += 1;
                    assert_eq!(out.cleared, 0);
                    // Served by v1 on Envoy's own route, counted as split/v1.
                    assert_eq!(out.bumps, ["1"]);
                }
                Some(v) => {
                    assert_eq!(v, "outbound|80|v2|backend.default.svc.cluster.local");
                    assert_eq!(out.cleared, 1);
                }
            }
        }
        assert!(untouched > 350, "{untouched}");
    }

    #[test]
    fn a_clients_route_header_is_removed_and_counted_whatever_the_rules_do() {
        let a = active(&example("native-module/rules.json"));
        // Routed: the filter's value replaces the client's.
        let out = run(
            &a,
            backend(&[("canary", "canary-tester"), ("X-Canary-Upstream", "evil")]),
        );
        assert_eq!(
            out.request
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-canary-upstream"))
                .count(),
            1
        );
        assert_eq!(
            out.get("x-canary-upstream"),
            Some("outbound|80|v2|backend.default.svc.cluster.local")
        );
        assert_eq!(out.count(SPOOFED), 1);
        // Not covered by the rules: removed, route selected again, passed through.
        let out = run(
            &a,
            request(&[(":authority", "other"), ("x-canary-upstream", "evil")]),
        );
        assert_eq!(out.get("x-canary-upstream"), None);
        assert_eq!(out.cleared, 1);
        assert_eq!((out.count(SPOOFED), out.count(PASSTHROUGH)), (1, 1));
        assert!(out.response.is_empty(), "no debug header for a passthrough");
    }

    #[test]
    fn host_failures_leave_the_request_on_envoys_route_never_on_a_clients() {
        let a = active(&example("native-module/rules.json"));
        // Headers unreadable: the route header is removed blindly.
        let mut fake = backend(&[("x-canary-upstream", "evil")]);
        fake.unreadable = true;
        let out = run(&a, fake);
        assert_eq!(out.get("x-canary-upstream"), None);
        assert_eq!((out.count(HOST_ERRORS), out.count(PASSTHROUGH)), (1, 1));
        // A refused write: counted, not served, no route re-selection.
        let mut fake = backend(&[("canary", "canary-tester")]);
        fake.refuse_writes = true;
        let out = run(&a, fake);
        assert_eq!(out.get("x-canary-upstream"), None);
        assert_eq!(out.cleared, 0);
        assert_eq!((out.count(HOST_ERRORS), out.count(PASSTHROUGH)), (1, 1));
    }

    #[test]
    fn a_destination_without_a_port_takes_the_requests_port_or_stays_on_envoys_route() {
        let rules = r#"{"services":[{"hosts":["backend"],"http":[{"name":"all",
            "route":[{"destination":{"host":"backend","subset":"v2"}}]}]}]}"#;
        let a = active(rules);
        let out = run(&a, backend(&[]));
        assert_eq!(
            out.get("x-canary-upstream"),
            Some("outbound|80|v2|backend.default.svc.cluster.local")
        );
        let mut fake = backend(&[]);
        fake.port = None;
        let out = run(&a, fake);
        assert_eq!(out.get("x-canary-upstream"), None);
        assert_eq!(out.count(PASSTHROUGH), 1);
    }

    #[test]
    fn without_rules_yet_every_request_passes_through() {
        let a = active(&example("configmap-poll/rules.json"));
        assert!(a.rules.is_none());
        let out = run(&a, backend(&[("canary", "canary-tester")]));
        assert_eq!(out.get("x-canary-upstream"), None);
        assert_eq!(out.bumps, [PASSTHROUGH.to_string()]);
    }

    #[test]
    fn an_issued_sticky_cookie_is_added_to_the_response() {
        let a = active(&example("sticky/rules-cookie.json"));
        let out = run(&a, backend(&[]));
        let cookies: Vec<&String> = out
            .response
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(cookies.len(), 1, "{:?}", out.response);
        assert!(cookies[0].starts_with("canary-id="), "{}", cookies[0]);
        assert!(cookies[0].contains("Max-Age=604800"), "{}", cookies[0]);
        // A browser that sends it back gets no new one, and its destination.
        let value = cookies[0].split(';').next().unwrap().to_string();
        let upstream = out.get("x-canary-upstream").map(str::to_string);
        for _ in 0..5 {
            let again = run(&a, backend(&[("cookie", &value)]));
            assert!(again.response.iter().all(|(k, _)| k != "set-cookie"));
            assert_eq!(again.get("x-canary-upstream").map(str::to_string), upstream);
        }
    }

    #[test]
    fn only_a_response_with_work_keeps_the_stream() {
        let without_debug = |name: &str| {
            let text = example(name);
            let line = "\"debugHeader\": \"x-canary-route\",";
            assert!(text.contains(line), "{name}");
            text.replace(line, "")
        };
        // Weights alone: the response has nothing to do.
        assert!(!active(&without_debug("native-module/rules.json")).response_work);
        assert!(!active(&without_debug("default-destination/rules.json")).response_work);
        // The debug header, an issued cookie, a guard: it has.
        assert!(active(&example("native-module/rules.json")).response_work);
        assert!(active(&without_debug("sticky/rules-cookie.json")).response_work);
        let guarded = r#"{"services":[{"hosts":["backend"],"http":[{"name":"g","route":[
            {"destination":{"host":"backend","subset":"v1","port":{"number":80}},"weight":50},
            {"destination":{"host":"backend","subset":"v2","port":{"number":80}},"weight":50,
             "guard":{"maxErrorRate":0.5,"minRequests":10,"interval":"30s"}}]}]}]}"#;
        assert!(active(guarded).response_work);
    }

    #[test]
    fn a_secure_cookie_issued_over_plain_http_is_counted() {
        let text = example("sticky/rules-cookie.json");
        assert!(text.contains("\"secure\": false"), "{text}");
        let a = active(&text.replacen("\"secure\": false", "\"secure\": true", 1));
        for (scheme, counted) in [("http", 1), ("https", 0)] {
            let out = run(&a, backend(&[(":scheme", scheme)]));
            assert!(out.response.iter().any(|(k, _)| k == "set-cookie"));
            assert_eq!(out.count(SECURE_OVER_HTTP), counted, ":scheme {scheme}");
        }
        assert!(a
            .warned_secure_over_http
            .load(std::sync::atomic::Ordering::Relaxed));
        // A browser sending its cookie back gets none: nothing to count.
        let first = run(&a, backend(&[(":scheme", "http")]));
        let cookie = first
            .response
            .iter()
            .find(|(k, _)| k == "set-cookie")
            .and_then(|(_, v)| v.split(';').next())
            .unwrap()
            .to_string();
        let again = run(&a, backend(&[(":scheme", "http"), ("cookie", &cookie)]));
        assert_eq!(again.count(SECURE_OVER_HTTP), 0);
    }

    #[test]
    fn a_guarded_destinations_failures_eject_it_and_its_requests_move() {
        let rules = r#"{"services":[{"hosts":["backend"],"http":[{"name":"stream-guard","route":[
            {"destination":{"host":"backend","subset":"v1","port":{"number":80}},"weight":50},
            {"destination":{"host":"backend","subset":"v2","port":{"number":80}},"weight":50,
             "guard":{"maxErrorRate":0.5,"minRequests":10,"interval":"30s"}}]}]}]}"#;
        let a = active(rules);
        let to_v2 = |out: &Fake| {
            out.get("x-canary-upstream")
                .is_some_and(|u| u.contains("|v2|"))
        };
        // v2 answers 503; streams to v2 alternately end without a response.
        let mut failed = 0;
        for i in 0..400 {
            let mut f = StreamFilter::new(a.clone());
            let mut fake = backend(&[]);
            f.on_request_headers(&mut fake);
            if to_v2(&fake) {
                failed += 1;
                fake.status = Some("503");
                if i % 2 == 0 {
                    f.on_response_headers(&mut fake);
                }
            } else {
                f.on_response_headers(&mut fake);
            }
            drop(f);
        }
        assert_eq!(
            failed, 10,
            "the 10th failure (5xx or no response) ejects v2"
        );
        for _ in 0..100 {
            assert!(!to_v2(&run(&a, backend(&[]))));
        }
    }
}
