//! Rule sets built from a grammar of the configuration (valid-ish JSON:
//! every field the format knows, with values both right and wrong), raw and
//! tidied: the validator accepts or names a field, never panics; an accepted
//! rule set decides a request; a rule that issues its cookie (`setCookie`)
//! gives a key that, brought back as the cookie, picks the same destination
//! and gets no new one.
#![no_main]

use canary_router::domain::plugin::Plugin;
use canary_router_fuzz::{RequestG, RuleSetG};
use libfuzzer_sys::fuzz_target;

struct Req(Vec<(String, Vec<u8>)>);

impl canary_router::RequestView for Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

fuzz_target!(|input: (RuleSetG, RequestG)| {
    let (set, req) = input;
    let workload = set.workload();
    for tidy in [false, true] {
        let json = set.json(tidy);
        match Plugin::from_bytes(json.as_bytes(), &workload) {
            Ok(p) => {
                if let Some(r) = p.rules {
                    let headers = req.headers(&set.claimed_hosts());
                    let _ = r.set.decide(&Req(headers.clone()), || req.random);
                    // A rule that issues its cookie: the issued key, brought
                    // back as the cookie, picks the same destination.
                    let bits = req.random.to_le_bytes();
                    let fresh = [bits, bits].concat().try_into().ok();
                    let first =
                        r.set
                            .decide_issuing(&Req(headers.clone()), || req.random, || fresh);
                    if let canary_router::Outcome::Routed(d) = first {
                        if let Some(key) = d.issued {
                            assert!(d.sticky);
                            let name =
                                match r.set.services()[d.service].rules[d.rule].route.sticky() {
                                    Some(canary_router::domain::rules::StickyKey::Cookie(n)) => {
                                        n.clone()
                                    }
                                    other => panic!("issued without a cookie key: {other:?}"),
                                };
                            let mut again = headers.clone();
                            again.retain(|(n, _)| n != "cookie");
                            let mut cookie = name.to_vec();
                            cookie.push(b'=');
                            cookie.extend_from_slice(key.as_bytes());
                            again.push(("cookie".into(), cookie));
                            let second = r.set.decide_issuing(&Req(again), || !req.random, || None);
                            // (Another rule may match once the cookie header changed.)
                            if let Some(second) = second.decision() {
                                if (second.service, second.rule) == (d.service, d.rule) {
                                    assert!(
                                        second.issued.is_none(),
                                        "a brought key gets no new one"
                                    );
                                    assert_eq!(second.destination, d.destination, "the key sticks");
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                // A rejected grammar-built config names the field, unless
                // it is over the size bound (a large input can expand past it).
                if !matches!(e.kind(), canary_router::ConfigErrorKind::TooLarge { .. }) {
                    assert!(e.path().is_some(), "no path in {msg}");
                }
            }
        }
    }
});
