//! Helpers shared by the filter's tests.
#![allow(dead_code)]

use canary_router::{Outcome, Plugin, RequestView, RuleSet, Workload};

/// A request as a list of headers (names lower-case, pseudo-headers included).
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub headers: Vec<(String, Vec<u8>)>,
    pub source: Option<Vec<u8>>,
    /// The port the request arrived on (Envoy's `destination.port`).
    pub port: Option<u16>,
}

impl Req {
    pub fn to(authority: &str) -> Self {
        Req::default()
            .with(":authority", authority)
            .with(":path", "/")
            .with(":method", "GET")
            .with(":scheme", "http")
    }
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        if name.starts_with(':') {
            self.headers.retain(|(n, _)| n != name);
        }
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
    pub fn on_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn with_source(mut self, addr: &str) -> Self {
        self.source = Some(addr.as_bytes().to_vec());
        self
    }
}

impl RequestView for Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .peekable();
        values.peek()?;
        Some(values.any(f))
    }
    fn source_address(&self) -> Option<&[u8]> {
        self.source.as_deref()
    }
    fn local_port(&self) -> Option<u16> {
        self.port
    }
}

pub fn workload(ns: &str, labels: &[(&str, &str)]) -> Workload {
    Workload {
        namespace: Some(ns.to_string()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gateway: false,
    }
}

pub fn compile_for(json: &str, w: &Workload) -> RuleSet {
    match Plugin::from_bytes(json.as_bytes(), w) {
        Ok(p) => p.rules.expect("inline rules").set,
        Err(e) => panic!("config rejected: {e}\n{json}"),
    }
}

pub fn compile(json: &str) -> RuleSet {
    compile_for(json, &workload("default", &[]))
}

/// The cluster a request goes to, or None when untouched.
pub fn cluster(rules: &RuleSet, req: &Req) -> Option<String> {
    let mut seed = 0x1234_5678_u64;
    match rules.decide(req, || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed
    }) {
        // As the proxy-wasm adapter writes it: a destination without a port takes the
        // request's, and stays on Envoy's route if that is unknown.
        Outcome::Routed(d) => {
            let mut built = canary_router::domain::cluster::Built::default();
            let name = d.cluster.resolve(|| req.port, &mut built)?;
            Some(String::from_utf8_lossy(name).into_owned())
        }
        _ => None,
    }
}

/// The rule name that served a request.
pub fn rule_name(rules: &RuleSet, req: &Req) -> Option<String> {
    match rules.decide(req, || 0) {
        Outcome::Routed(d) => Some(rules.services()[d.service].rules[d.rule].name.to_string()),
        _ => None,
    }
}

/// One route with explicit clusters and weights, optionally sticky.
pub fn weighted(weights: &[(&str, i64)], sticky: Option<&str>) -> String {
    let route: Vec<String> = weights
        .iter()
        .map(|(c, w)| format!(r#"{{"destination":{{"cluster":"{c}"}},"weight":{w}}}"#))
        .collect();
    let sticky = sticky
        .map(|s| format!(r#","sticky":{s}"#))
        .unwrap_or_default();
    format!(
        r#"{{"services":[{{"hosts":["backend"],"http":[{{"name":"split","route":[{}]{sticky}}}]}}]}}"#,
        route.join(",")
    )
}

/// The largest deviation from n·p that a binomial count passes with:
/// z = 5 standard deviations (a false failure about once in 3.5 million runs).
pub fn binomial_bound(n: u64, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

pub fn assert_binomial(k: u64, n: u64, p: f64, what: &str) {
    let expected = n as f64 * p;
    let bound = binomial_bound(n, p).max(1.0);
    assert!(
        (k as f64 - expected).abs() <= bound,
        "{what}: {k} of {n}, expected {expected:.1} ± {bound:.1} (p = {p})"
    );
}
