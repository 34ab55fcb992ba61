//! The per-request decision: a valid rule set from a small grammar, then
//! many requests with arbitrary authorities, paths, query strings, headers,
//! cookies and source addresses. No panic, and every outcome is one the
//! rules allow: a routed request goes to a destination of the rule that
//! matched, never to one of weight 0, and a sticky pick does not depend on
//! the random draw. The same request read through the pairs buffer the glue
//! uses decides the same.
#![no_main]

use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
use canary_router::{Outcome, RequestView, RuleSet};
use canary_router_fuzz::{RequestG, RuleSetG};
use libfuzzer_sys::fuzz_target;

struct Req {
    headers: Vec<(String, Vec<u8>)>,
    source: Option<Vec<u8>>,
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
}

fuzz_target!(|input: (RuleSetG, Vec<RequestG>)| {
    let (set, requests) = input;
    let Some(rules) = set.compile() else {
        return;
    };
    let claimed = set.claimed_hosts();
    for r in requests {
        let headers = r.headers(&claimed);
        // The request as generated, and the same for a host the rules claim.
        let mut retargeted = headers.clone();
        retargeted.retain(|(n, _)| n != ":authority");
        if let Some(host) = claimed.get(r.random as usize % claimed.len().max(1)) {
            let host = host.replace('*', "w");
            retargeted.insert(0, (":authority".to_string(), host.into_bytes()));
        }
        for headers in [headers, retargeted] {
            check(
                &rules,
                Req {
                    headers,
                    source: r.source.clone(),
                },
                r.random,
            );
        }
    }
});

/// Decides `req` and checks the outcome is one the rules allow.
fn check(rules: &RuleSet, req: Req, random: u64) {
    let outcome = rules.decide(&req, || random);
    if let Outcome::Routed(d) = outcome {
        let service = &rules.services()[d.service];
        let rule = &service.rules[d.rule];
        let target = &rule.route.destinations[d.destination];
        assert!(std::ptr::eq(target, d.target), "the target is the rule's");
        assert!(d.target.weight > 0, "weight 0 chosen");
        if d.sticky {
            let again = rules.decide(&req, || !random.rotate_left(17));
            let again = again.decision().expect("a sticky request is routed again");
            assert_eq!(again.cluster, d.cluster, "sticky pick moved");
        }
    }
    if req.source.is_none() {
        let buf = serialize(
            req.headers
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_slice())),
        );
        let pairs = Pairs::parse(&buf).expect("a serialized map parses");
        let via = rules.decide(&pairs, || random);
        assert_eq!(
            via.decision().map(|d| &d.cluster),
            outcome.decision().map(|d| &d.cluster),
            "pairs and direct reads disagree"
        );
    }
}
