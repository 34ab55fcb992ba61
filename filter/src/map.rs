//! [`Map`]: the string-keyed maps of a configuration (headers, query
//! parameters, labels), as a vector sorted by key.
//!
//! These maps are small, built once at configure time and then only read,
//! in key order or by key. A `BTreeMap` does the same with far more code:
//! its node, search, insertion and bulk-build routines, and a stable sort,
//! are instantiated once per value type, and V8 compiles all of them in every
//! sidecar (see bench/README.md, "Module size"). Here every value type
//! shares one sort, [`order`], and the rest is a few lines per type.

use std::fmt;

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

/// The order of `keys` sorted by key, ties in input order: one sort for
/// every map of the module.
#[inline(never)]
fn order(keys: &[&str]) -> Vec<usize> {
    let mut by_key: Vec<(&str, usize)> = keys.iter().copied().zip(0..).collect();
    sort_by(&mut by_key, &|a, b| a < b);
    by_key.into_iter().map(|(_, i)| i).collect()
}

impl<V> Map<V> {
    /// An empty map.
    pub fn new() -> Self {
        Map(Vec::new())
    }

    /// The map of `entries`: sorted by key, the last of equal keys kept.
    pub fn from_entries(entries: Vec<(String, V)>) -> Self {
        let sorted = entries.windows(2).all(|w| match w {
            [a, b] => a.0 < b.0,
            _ => true,
        });
        if sorted {
            return Map(entries);
        }
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let order = order(&keys);
        let mut slots: Vec<Option<(String, V)>> = entries.into_iter().map(Some).collect();
        let mut out: Vec<(String, V)> = Vec::with_capacity(slots.len());
        for i in order {
            let Some(entry) = slots.get_mut(i).and_then(Option::take) else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => out.push(entry),
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

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets the value under `key`, returning the one it replaces.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => self.0.get_mut(i).map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &V)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + Clone {
        self.0.iter().map(|(_, v)| v)
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
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, V)>,
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

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Map<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, V>::deserialize(d)?;
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
        assert!(ours.contains_key(""));
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

    #[test]
    fn insert_keeps_the_order_and_replaces() {
        let mut m = Map::new();
        for (k, v) in [("m", 1), ("c", 2), ("x", 3), ("c", 4)] {
            m.insert(k.to_string(), v);
        }
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["c", "m", "x"]
        );
        assert_eq!(m.insert("m".into(), 9), Some(1));
        assert_eq!(m.get("c"), Some(&4));
        assert_eq!(m.len(), 3);
    }
}
