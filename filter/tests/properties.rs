//! Properties of the decision over generated rule sets and requests
//! (proptest; `PROPTEST_CASES=100000 cargo test -p canary-router --test
//! properties` runs longer than the default 256 cases per property).
//!
//! Rule sets come from a small grammar: up to three services sharing a pool
//! of hosts (short names, FQDNs, a wildcard), each with up to four rules of
//! header/uri/method/query matches and up to four weighted destinations, some
//! sticky by header, cookie or source IP. Every generated rule set is valid;
//! requests mix the values the rules look for with arbitrary bytes.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
use canary_router::{Outcome, Plugin, RuleSet};
use common::{workload, Req};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Hosts services may claim, and the `:authority` that reaches each.
const HOSTS: [(&str, &str); 6] = [
    ("alpha", "alpha"),
    ("beta", "beta.default.svc.cluster.local"),
    ("gamma.example.com", "gamma.example.com"),
    ("*.wild.example", "api.wild.example"),
    ("delta.other.svc.cluster.local", "delta.other.svc"),
    ("epsilon", "epsilon.default"),
];
/// Authorities no host of [`HOSTS`] covers.
const STRANGERS: [&str; 6] = [
    "zeta",
    "nope.example.org",
    "alpha.other",
    "wild.example",
    "gamma.example.com.evil",
    "delta.default.svc.cluster.local",
];
const HEADERS: [&str; 2] = ["x-user", "x-group"];
const VALUES: [&str; 4] = ["a", "ab", "b", "canary"];
const PATHS: [&str; 4] = ["/", "/api", "/api/v1", "/static"];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];

#[derive(Debug, Clone)]
enum Cond {
    Header(usize, Kind, usize),
    Uri(Kind, usize),
    Method(usize),
    Query(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Exact,
    Prefix,
    Regex,
}

#[derive(Debug, Clone)]
enum StickyG {
    Header(usize),
    Cookie,
    SourceIp,
}

#[derive(Debug, Clone)]
struct RuleG {
    matches: Vec<Vec<Cond>>,
    dests: Vec<(u8, u32)>,
    sticky: Option<StickyG>,
}

#[derive(Debug, Clone)]
struct SetG {
    /// For each host of [`HOSTS`], the service owning it (or none).
    owner: [Option<usize>; 6],
    services: Vec<Vec<RuleG>>,
}

impl SetG {
    /// Services that own at least one host, in order (the others are left out).
    fn kept(&self) -> Vec<usize> {
        (0..self.services.len())
            .filter(|s| self.owner.contains(&Some(*s)))
            .collect()
    }

    fn json(&self) -> String {
        let services: Vec<Value> = self
            .kept()
            .into_iter()
            .map(|s| {
                let hosts: Vec<&str> = HOSTS
                    .iter()
                    .zip(self.owner)
                    .filter(|(_, o)| *o == Some(s))
                    .map(|((h, _), _)| *h)
                    .collect();
                json!({ "hosts": hosts, "http": self.services[s].iter().map(rule_json).collect::<Vec<_>>() })
            })
            .collect();
        json!({ "services": services }).to_string()
    }

    fn compile(&self) -> RuleSet {
        let json = self.json();
        match Plugin::from_bytes(json.as_bytes(), &workload("default", &[])) {
            Ok(p) => p.rules.unwrap().set,
            Err(e) => panic!("a generated rule set is rejected: {e}\n{json}"),
        }
    }
}

fn string_match(kind: Kind, value: &str) -> Value {
    match kind {
        Kind::Exact => json!({ "exact": value }),
        Kind::Prefix => json!({ "prefix": value }),
        Kind::Regex => json!({ "regex": format!("{value}.*") }),
    }
}

fn rule_json(r: &RuleG) -> Value {
    let matches: Vec<Value> = r
        .matches
        .iter()
        .map(|conds| {
            let mut m = serde_json::Map::new();
            let mut headers = serde_json::Map::new();
            let mut query = serde_json::Map::new();
            for c in conds {
                match c {
                    Cond::Header(h, k, v) => {
                        headers.insert(HEADERS[*h].into(), string_match(*k, VALUES[*v]));
                    }
                    Cond::Uri(k, p) => {
                        m.insert("uri".into(), string_match(*k, PATHS[*p]));
                    }
                    Cond::Method(i) => {
                        m.insert("method".into(), json!({ "exact": METHODS[*i] }));
                    }
                    Cond::Query(n, v) => {
                        query.insert(format!("q{n}"), json!({ "exact": VALUES[*v] }));
                    }
                }
            }
            if !headers.is_empty() {
                m.insert("headers".into(), Value::Object(headers));
            }
            if !query.is_empty() {
                m.insert("queryParams".into(), Value::Object(query));
            }
            Value::Object(m)
        })
        .collect();
    let route: Vec<Value> = r
        .dests
        .iter()
        .map(|(c, w)| json!({ "destination": { "cluster": cluster(*c) }, "weight": w }))
        .collect();
    let mut rule = json!({ "match": matches, "route": route });
    if let Some(s) = &r.sticky {
        rule["sticky"] = match s {
            StickyG::Header(h) => json!({ "header": HEADERS[*h] }),
            StickyG::Cookie => json!({ "cookie": "user" }),
            StickyG::SourceIp => json!({ "sourceIp": true }),
        };
    }
    rule
}

fn cluster(c: u8) -> String {
    format!("cluster-{c}")
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Exact), Just(Kind::Prefix), Just(Kind::Regex)]
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        (0..HEADERS.len(), kind(), 0..VALUES.len()).prop_map(|(h, k, v)| Cond::Header(h, k, v)),
        (kind(), 0..PATHS.len()).prop_map(|(k, p)| Cond::Uri(k, p)),
        (0..METHODS.len()).prop_map(Cond::Method),
        (0..2usize, 0..VALUES.len()).prop_map(|(n, v)| Cond::Query(n, v)),
    ]
}

/// Destinations with distinct clusters and at least one weight above 0.
fn dests() -> impl Strategy<Value = Vec<(u8, u32)>> {
    prop::collection::btree_map(0u8..8, prop_oneof![Just(0u32), 1u32..=100], 1..=4)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        .prop_filter("one weight above 0", |d| d.iter().any(|(_, w)| *w > 0))
}

fn sticky() -> impl Strategy<Value = Option<StickyG>> {
    prop_oneof![
        Just(None),
        (0..HEADERS.len()).prop_map(|h| Some(StickyG::Header(h))),
        Just(Some(StickyG::Cookie)),
        Just(Some(StickyG::SourceIp)),
    ]
}

fn rule() -> impl Strategy<Value = RuleG> {
    (
        prop::collection::vec(prop::collection::vec(cond(), 0..=3), 0..=2),
        dests(),
        sticky(),
    )
        .prop_map(|(matches, dests, sticky)| RuleG {
            matches,
            dests,
            sticky,
        })
}

fn rule_set() -> impl Strategy<Value = SetG> {
    (1..=3usize)
        .prop_flat_map(|n| {
            (
                prop::array::uniform6(prop::option::weighted(0.8, 0..n)),
                prop::collection::vec(prop::collection::vec(rule(), 1..=4), n),
            )
        })
        .prop_map(|(owner, services)| SetG { owner, services })
        .prop_filter("at least one service", |s| !s.kept().is_empty())
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0..VALUES.len()).prop_map(|v| VALUES[v].as_bytes().to_vec()),
        (0..VALUES.len(), "[a-z]{0,3}").prop_map(|(v, s)| format!("{}{s}", VALUES[v]).into_bytes()),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}

/// A request for `authority`, with values the rules look for mixed with noise.
fn request_to(authority: impl Strategy<Value = String>) -> impl Strategy<Value = Req> {
    (
        authority,
        (
            0..PATHS.len(),
            "[a-z/]{0,6}",
            prop::option::of((0..2usize, value())),
        ),
        0..METHODS.len(),
        prop::collection::vec((0..HEADERS.len(), value()), 0..=3),
        prop::option::of(value()),
        prop::option::of("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}"),
    )
        .prop_map(
            |(authority, (p, tail, query), m, headers, cookie, source)| {
                let mut path = format!("{}{tail}", PATHS[p]).into_bytes();
                if let Some((n, v)) = query {
                    path.extend_from_slice(format!("?q{n}=").as_bytes());
                    path.extend_from_slice(&v);
                }
                let mut req = Req::to(&authority)
                    .with(":path", path)
                    .with(":method", METHODS[m]);
                for (h, v) in headers {
                    req = req.with(HEADERS[h], v);
                }
                if let Some(c) = cookie {
                    let mut header = b"theme=dark; user=".to_vec();
                    header.extend_from_slice(&c);
                    req = req.with("cookie", header);
                }
                if let Some(s) = source {
                    req = req.with_source(&s);
                }
                req
            },
        )
}

/// An authority that reaches one of [`HOSTS`], sometimes with a port,
/// upper-case letters or a trailing dot.
fn known_authority() -> impl Strategy<Value = (usize, String)> {
    (0..HOSTS.len(), 0..4usize).prop_map(|(h, variant)| {
        let a = HOSTS[h].1;
        let a = match variant {
            0 => a.to_string(),
            1 => format!("{a}:80"),
            2 => a.to_ascii_uppercase(),
            _ => format!("{a}."),
        };
        (h, a)
    })
}

fn random_source() -> impl FnMut() -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The chosen cluster is one the matched rule names, with a weight above
    /// 0, for the service owning the requested host; or nothing is chosen.
    #[test]
    fn the_chosen_cluster_is_named_by_the_matched_rule(
        set in rule_set(),
        (host, authority) in known_authority(),
        reqs in prop::collection::vec(any::<u64>(), 1..8),
        req_template in request_to(Just(String::new())),
    ) {
        let compiled = set.compile();
        let req = req_template.with(":authority", authority.as_bytes());
        let kept = set.kept();
        for random in reqs {
            match compiled.decide(&req, || random) {
                Outcome::Routed(d) => {
                    let service = kept[d.service];
                    prop_assert_eq!(set.owner[host], Some(service), "routed by the service owning the host");
                    let rule = &set.services[service][d.rule];
                    let (c, w) = rule.dests[d.destination];
                    let expected = cluster(c);
                    prop_assert_eq!(d.cluster.to_string(), expected.clone());
                    prop_assert!(w > 0, "weight 0 chosen: {:?}", rule.dests);
                    prop_assert_eq!(d.target.weight, w);
                }
                Outcome::NoRule { service } => {
                    prop_assert_eq!(set.owner[host], Some(kept[service]));
                }
                Outcome::NoService => prop_assert_eq!(set.owner[host], None),
            }
        }
    }

    /// Weight 0 is never chosen, whatever the random draw or sticky key.
    #[test]
    fn weight_zero_is_never_chosen(
        weights in prop::collection::vec(prop_oneof![Just(0u32), 1u32..=1_000_000], 2..=8)
            .prop_filter("one weight above 0", |w| w.iter().any(|w| *w > 0)),
        sticky in any::<bool>(),
        keys in prop::collection::vec((any::<u64>(), prop::collection::vec(any::<u8>(), 0..12)), 1..32),
    ) {
        let rule = RuleG {
            matches: vec![],
            dests: weights.iter().enumerate().map(|(i, w)| (i as u8, *w)).collect(),
            sticky: sticky.then_some(StickyG::Header(0)),
        };
        let set = SetG { owner: [Some(0), None, None, None, None, None], services: vec![vec![rule]] };
        let compiled = set.compile();
        for (random, key) in keys {
            let req = Req::to("alpha").with(HEADERS[0], &key);
            let d = *compiled.decide(&req, || random).decision().unwrap();
            prop_assert!(weights[d.destination] > 0, "weight 0 chosen: {:?} -> {}", weights, d.destination);
        }
    }

    /// A sticky key maps to one destination, whatever the random draw.
    #[test]
    fn a_sticky_key_always_maps_to_the_same_destination(
        set in rule_set(),
        (_, authority) in known_authority(),
        req_template in request_to(Just(String::new())),
        draws in prop::collection::vec(any::<u64>(), 2..8),
    ) {
        let compiled = set.compile();
        let req = req_template.with(":authority", authority.as_bytes());
        let first = compiled.decide(&req, || draws[0]).decision().copied();
        if let Some(first) = first.filter(|d| d.sticky) {
            for r in &draws[1..] {
                let again = *compiled.decide(&req, || *r).decision().unwrap();
                prop_assert_eq!(again.cluster.clone(), first.cluster.clone());
            }
            // And on a rule set compiled again from the same text.
            let recompiled = set.compile();
            let again = *recompiled.decide(&req, random_source()).decision().unwrap();
            prop_assert_eq!(again.cluster.clone(), first.cluster.clone());
        }
    }

    /// Raising one of two destinations' weight never moves a sticky key away
    /// from it.
    #[test]
    fn raising_a_weight_never_moves_a_sticky_key_away(
        a in 0u32..=1000,
        b in 0u32..=1000,
        raise in 1u32..=100_000,
        raise_first in any::<bool>(),
        kind in 0..3usize,
        keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..16), 1..32),
    ) {
        prop_assume!(a + b > 0);
        let sticky = match kind {
            0 => StickyG::Header(0),
            1 => StickyG::Cookie,
            _ => StickyG::SourceIp,
        };
        let build = |wa: u32, wb: u32| {
            let rule = RuleG { matches: vec![], dests: vec![(0, wa), (1, wb)], sticky: Some(sticky.clone()) };
            SetG { owner: [Some(0), None, None, None, None, None], services: vec![vec![rule]] }.compile()
        };
        let before = build(a, b);
        let after = if raise_first { build(a + raise, b) } else { build(a, b + raise) };
        let raised = if raise_first { 0 } else { 1 };
        for key in keys {
            let text: String = key.iter().map(|b| char::from(b'a' + b % 26)).collect();
            let req = match kind {
                0 => Req::to("alpha").with(HEADERS[0], &key),
                1 => Req::to("alpha").with("cookie", format!("user={text}")),
                _ => Req::to("alpha").with_source(&format!("10.0.{}.{}:4000", key[0], key.len())),
            };
            let was = before.decide(&req, || 0).decision().unwrap().destination;
            let now = after.decide(&req, || 0).decision().unwrap().destination;
            if was == raised {
                prop_assert_eq!(now, raised, "a key on the raised destination moved");
            }
        }
    }

    /// A request for a host no service names is never routed.
    #[test]
    fn a_host_no_service_names_is_never_routed(
        set in rule_set(),
        stranger in 0..STRANGERS.len() + HOSTS.len(),
        suffix in prop_oneof![Just(""), Just(":80"), Just(":8080"), Just(".")],
        req_template in request_to(Just(String::new())),
    ) {
        let compiled = set.compile();
        // Strangers, and the hosts of the pool no service claimed.
        let candidates: Vec<&str> = STRANGERS
            .iter()
            .copied()
            .chain(HOSTS.iter().zip(set.owner).filter(|(_, o)| o.is_none()).map(|((_, a), _)| *a))
            .collect();
        let authority = candidates[stranger % candidates.len()];
        let req = req_template.with(":authority", format!("{authority}{suffix}"));
        prop_assert!(matches!(compiled.decide(&req, random_source()), Outcome::NoService));
    }

    /// Arbitrary header names and bytes, pseudo-headers included, never make
    /// `decide` panic, read directly or through the pairs buffer the adapter uses.
    #[test]
    fn decide_never_panics_on_arbitrary_headers(
        set in rule_set(),
        headers in prop::collection::vec(
            (
                prop_oneof![
                    Just(":authority".to_string()),
                    Just(":path".to_string()),
                    Just(":method".to_string()),
                    Just(":scheme".to_string()),
                    Just("cookie".to_string()),
                    Just(HEADERS[0].to_string()),
                    Just(HEADERS[1].to_string()),
                    "[a-z:-]{1,8}",
                ],
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..64),
                    (0..HOSTS.len(), prop::collection::vec(any::<u8>(), 0..8))
                        .prop_map(|(h, tail)| [HOSTS[h].1.as_bytes(), &tail].concat()),
                ],
            ),
            0..12,
        ),
        source in prop::option::of(prop::collection::vec(any::<u8>(), 0..48)),
        random in any::<u64>(),
    ) {
        let compiled = set.compile();
        let mut req = Req::default();
        for (n, v) in &headers {
            req.headers.push((n.clone(), v.clone()));
        }
        req.source = source;
        let _ = compiled.decide(&req, || random);
        let buf = serialize(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())));
        let pairs = Pairs::parse(&buf).unwrap();
        prop_assert_eq!(pairs.len(), headers.len());
        let direct = compiled.decide(&req, || random).decision().map(|d| d.cluster.clone());
        let via_pairs = compiled.decide(&pairs, || random).decision().map(|d| d.cluster.clone());
        if req.source.is_none() {
            prop_assert_eq!(direct, via_pairs);
        }
    }
}

/// The clusters a rule set built from the grammar can ever name: a sanity
/// check of the generator itself (every destination is reachable).
#[test]
fn every_generated_destination_is_counted() {
    let rule = RuleG {
        matches: vec![],
        dests: vec![(3, 1), (5, 0), (7, 9)],
        sticky: None,
    };
    let set = SetG {
        owner: [Some(0), None, None, None, None, None],
        services: vec![vec![rule]],
    };
    let compiled = set.compile();
    let named: BTreeSet<String> = compiled
        .all_destinations()
        .map(|(_, _, d)| d.cluster.to_string())
        .collect();
    let expected: BTreeSet<String> = [3, 5, 7].into_iter().map(cluster).collect();
    assert_eq!(named, expected);
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut random = random_source();
    for _ in 0..2000 {
        let d = *compiled
            .decide(&Req::to("alpha"), &mut random)
            .decision()
            .unwrap();
        *seen.entry(d.cluster.to_string()).or_default() += 1;
    }
    assert!(!seen.contains_key("cluster-5"), "{seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
}
