//! Rule sets built from a grammar of the configuration (valid-ish JSON:
//! every field the format knows, with values both right and wrong), raw and
//! tidied: the validator accepts or names a field, never panics; an accepted
//! rule set decides a request.
#![no_main]

use canary_router::plugin::Plugin;
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
                    let _ = r
                        .set
                        .decide(&Req(req.headers(&set.claimed_hosts())), || req.random);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                // A rejected grammar-built config names the field, unless
                // it is over the size bound (a large input can expand past it).
                if !matches!(e, canary_router::ConfigError::TooLarge { .. }) {
                    assert!(e.path().is_some(), "no path in {msg}");
                }
            }
        }
    }
});
