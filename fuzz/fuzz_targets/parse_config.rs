//! Arbitrary bytes as a plugin configuration and as a polled rule file:
//! either accepted or rejected with an error that names a field, never a
//! panic, never unbounded time or memory.
#![no_main]

use canary_router::domain::cluster::PortlessMode;
use canary_router::domain::plugin::{rule_file_from_bytes, Plugin, Settings};
use canary_router::Workload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let workload = Workload::default();
    match Plugin::from_bytes(data, &workload) {
        Ok(p) => {
            if let Some(r) = &p.rules {
                // Every destination of an accepted rule set is countable and named.
                let n = r.set.all_destinations().count();
                assert_eq!(n, r.set.destination_count() as usize);
                for (_, _, d) in r.set.all_destinations() {
                    assert!(!d.cluster.key().is_empty());
                }
            }
            let _ = rule_file_from_bytes(data, &p.settings, &workload);
        }
        Err(e) => {
            // The message is printable and not empty.
            assert!(!e.to_string().is_empty());
        }
    }
    // A rule file on its own, with destinations without a port given a port
    // by the request or by the glue.
    for portless in [PortlessMode::RequestPort, PortlessMode::Glue] {
        let settings = Settings {
            route_header: "x-canary-upstream".into(),
            debug_header: None,
            namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
            portless,
            source: None,
        };
        if let Err(e) = rule_file_from_bytes(data, &settings, &workload) {
            assert!(!e.to_string().is_empty());
        }
    }
});
