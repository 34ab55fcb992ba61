//! [`Map`]: string-keyed maps built once and then only read (a
//! configuration's headers, query parameters, labels), as a vector sorted
//! by key.
//!
//! These maps are small and read in key order or by key. A `BTreeMap` does
//! the same with far more code: its node, search, insertion and bulk-build
//! routines, and a stable sort, are instantiated once per value type, and
//! V8 compiles all of them in every sidecar (bench/README.md, "Module
//! size"). Here each value type costs a small heapsort ([`sort_by`]) and a
//! few lines.

use alloc::{string::String, vec::Vec};

use core::fmt;

/// A map from `String` keys, iterated in key order, one entry per key.
/// Built from entries where a key may repeat, the last one is kept, as
/// inserting them one by one into a `BTreeMap` (or serde_json's map) would.
#[derive(Clone, PartialEq, Eq)]
pub struct Map<V>(Vec<(String, V)>);

impl<V> Default for Map<V> {
    fn default() -> Self {
        Map(Vec::new())
    }
}

/// Sorts `v` by `less` (a strict weak order), not stably, in place and
/// in O(n log n): a heapsort, a few hundred bytes of code where core's sorts
/// are several KiB per element type.
#[allow(clippy::indexing_slicing)] // every index is below `end <= v.len()`
pub fn sort_by<T>(v: &mut [T], less: &dyn Fn(&T, &T) -> bool) {
    fn sift<T>(v: &mut [T], mut root: usize, end: usize, less: &dyn Fn(&T, &T) -> bool) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && less(&v[child], &v[child + 1]) {
                child += 1;
            }
            if !less(&v[root], &v[child]) {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift(v, start, n, less);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift(v, 0, end, less);
    }
}

/// The positions of the entries a map of `keys` keeps, in key order: of
/// equal keys the last.
fn kept_order(keys: &[&str]) -> Vec<usize> {
    let key = |i: usize| keys.get(i).copied().unwrap_or_default();
    let mut order: Vec<usize> = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        order.push(i);
    }
    // By key, then by position: of equal keys the last comes last.
    sort_by(&mut order, &|&i, &j| (key(i), i) < (key(j), j));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        match kept.last_mut() {
            Some(last) if key(*last) == key(i) => *last = i,
            _ => kept.push(i),
        }
    }
    kept
}

impl<V> Map<V> {
    /// The map of `entries`: sorted by key, the last of equal keys kept.
    pub fn from_entries(entries: Vec<(String, V)>) -> Self {
        if entries.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)) {
            return Map(entries);
        }
        // The order is found over the keys alone, by code that is not
        // generic: only moving the entries into it is, per value type.
        let mut keys: Vec<&str> = Vec::with_capacity(entries.len());
        for (k, _) in &entries {
            keys.push(k);
        }
        let order = kept_order(&keys);
        let mut slots: Vec<Option<(String, V)>> = Vec::with_capacity(entries.len());
        for entry in entries {
            slots.push(Some(entry));
        }
        let mut out: Vec<(String, V)> = Vec::with_capacity(order.len());
        for i in order {
            if let Some(entry) = slots.get_mut(i).and_then(Option::take) {
                out.push(entry);
            }
        }
        Map(out)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &V)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> FromIterator<(String, V)> for Map<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Map::from_entries(iter.into_iter().collect())
    }
}

impl<'a, V> IntoIterator for &'a Map<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = core::iter::Map<
        core::slice::Iter<'a, (String, V)>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<V: fmt::Debug> fmt::Debug for Map<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(feature = "serde")]
impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Map<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = alloc::collections::BTreeMap::<String, V>::deserialize(d)?;
        Ok(Map(m.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::Map;

    #[test]
    fn sorted_by_key_and_the_last_duplicate_wins_as_in_a_btreemap() {
        let entries = [("b", 1), ("a", 2), ("c", 3), ("a", 4), ("b", 5), ("", 6)];
        let ours: Map<i32> = entries.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        let theirs: std::collections::BTreeMap<String, i32> =
            entries.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        assert_eq!(
            ours.iter().collect::<Vec<_>>(),
            theirs.iter().collect::<Vec<_>>()
        );
        assert_eq!(ours.get("a"), Some(&4));
        assert_eq!(ours.get("z"), None);
        assert_eq!(ours.get(""), Some(&6));
    }

    /// Lists of every length to 40 with keys that repeat, in random
    /// orders: the map a `BTreeMap` built one insert at a time is.
    #[test]
    fn from_entries_is_a_btreemap_of_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..40 {
            for _ in 0..50 {
                let entries: Vec<(String, u32)> = (0..n)
                    .map(|v| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (
                            ["", "a", "b", "ab", "ba", "c"][(seed % 6) as usize].to_string(),
                            v,
                        )
                    })
                    .collect();
                let ours = Map::from_entries(entries.clone());
                let theirs: std::collections::BTreeMap<String, u32> = entries.into_iter().collect();
                assert_eq!(
                    ours.iter().collect::<Vec<_>>(),
                    theirs.iter().collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn sort_by_sorts_every_order() {
        // Every permutation of a few elements with ties, and a longer run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in 0..40 {
            for _ in 0..20 {
                let mut v: Vec<u32> = (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % 7) as u32
                    })
                    .collect();
                let mut want = v.clone();
                want.sort();
                super::sort_by(&mut v, &|a, b| a < b);
                assert_eq!(v, want);
            }
        }
    }
}
