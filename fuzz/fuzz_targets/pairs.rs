//! Arbitrary bytes as the proxy-wasm header-pairs buffer the host hands the
//! filter: parsed or refused, never read past its end; every lookup and a
//! full decision over it are safe.
#![no_main]

use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
use canary_router::domain::rules::RequestView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(pairs) = Pairs::parse(data) else {
        return;
    };
    let mut n = 0;
    for (k, v) in pairs.iter() {
        n += 1;
        // Each slice lies inside the buffer.
        assert!(k.len() + v.len() <= data.len());
    }
    assert_eq!(n, pairs.len(), "iter yields every entry of a parsed buffer");
    assert_eq!(pairs.is_empty(), n == 0);
    for name in [":authority", ":path", "cookie", "x-canary-upstream", ""] {
        let _ = pairs.get(name);
        let _ = pairs.header(name);
        let _ = pairs.contains_ignore_case(name);
    }
    // Serializing what was read gives a buffer that reads back the same.
    let list: Vec<(&[u8], &[u8])> = pairs.iter().collect();
    let again = serialize(list.clone());
    let reread = Pairs::parse(&again).expect("a serialized map parses");
    assert_eq!(reread.iter().collect::<Vec<_>>(), list);
    // A decision over it.
    let rules = canary_router_fuzz::sample_rules();
    let _ = rules.decide(&pairs, || 0x5eed);
});
