//! The host's header map (proxy-wasm pairs) as a request the rules read:
//! its headers only (no path split, port or address). How the tests, the
//! fuzz targets and the benchmark feed [`RuleSet::decide`](crate::RuleSet)
//! the bytes the host hands the filter; the filter itself reads requests
//! through `http.rs`, which adds the host's properties.

use filter_runtime::proxy_wasm::pairs::Pairs;

use crate::domain::rules::RequestView;

impl RequestView for Pairs<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }

    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        self.any_value(name, f)
    }

    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        self.for_each_of_len(lengths, f);
        true
    }
}
