//! Header maps, and the proxy-wasm "pairs" serialization used to pass them across the ABI.
//!
//! Pairs layout (little endian): `u32` count, then `count` × (`u32` key length, `u32` value
//! length), then each key and each value followed by a NUL byte.

use std::fmt;

/// An HTTP header map as Envoy keeps it: ordered, repeated keys allowed, keys lowercase,
/// pseudo-headers (`:path`, ...) before regular ones.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map holding `pairs` in order (keys lowercased, as Envoy's codecs do).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let mut map = HeaderMap {
            entries: Vec::with_capacity(pairs.len() + 4),
        };
        for (key, value) in pairs {
            map.add(key.as_bytes(), value.as_bytes());
        }
        map
    }

    /// The first value of `name` (case-insensitive), or `None` when absent.
    ///
    /// # Panics
    /// If the value is not UTF-8 (use [`HeaderMap::get_bytes`] for such values).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .map(|value| match std::str::from_utf8(value) {
                Ok(s) => s,
                Err(_) => panic!("header {name} is not UTF-8 ({value:?}); use get_bytes"),
            })
    }

    /// The first value of `name` (case-insensitive) as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.find(name.as_bytes())
            .map(|i| self.entries[i].1.as_slice())
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name.as_bytes()).is_some()
    }

    /// Number of entries (a repeated key counts once per value).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order, values as bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The entries in order, values converted lossily to strings.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    pub(crate) fn value_at(&self, index: usize) -> &[u8] {
        &self.entries[index].1
    }

    pub(crate) fn find(&self, key: &[u8]) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| k.as_bytes().eq_ignore_ascii_case(key))
    }

    /// Appends an entry; a pseudo-header goes after the last pseudo-header.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        let key = String::from_utf8_lossy(key).to_ascii_lowercase();
        let entry = (key, value.to_vec());
        if entry.0.starts_with(':') {
            let at = self
                .entries
                .iter()
                .position(|(k, _)| !k.starts_with(':'))
                .unwrap_or(self.entries.len());
            self.entries.insert(at, entry);
        } else {
            self.entries.push(entry);
        }
    }

    /// Removes every entry of `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.entries
            .retain(|(k, _)| !k.as_bytes().eq_ignore_ascii_case(key));
    }

    /// Envoy's `setCopy`: removes every entry of `key`, then appends one.
    pub(crate) fn replace(&mut self, key: &[u8], value: &[u8]) {
        self.remove(key);
        self.add(key, value);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Size of the pairs serialization of this map.
    pub(crate) fn pairs_size(&self) -> usize {
        pairs_size(self.iter().map(|(k, v)| (k.as_bytes(), v)))
    }

    /// Writes the pairs serialization into `out`, which must be exactly [`Self::pairs_size`]
    /// bytes long.
    pub(crate) fn write_pairs(&self, out: &mut [u8]) {
        let pairs = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_slice()));
        write_pairs(out, self.len(), pairs);
    }
}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// Size of the pairs serialization of `pairs`.
pub(crate) fn pairs_size<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    4 + pairs
        .map(|(k, v)| 8 + k.len() + 1 + v.len() + 1)
        .sum::<usize>()
}

/// Writes `count` pairs into `out` (exactly [`pairs_size`] bytes).
pub(crate) fn write_pairs<'a, I>(out: &mut [u8], count: usize, pairs: I)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        put(&(k.len() as u32).to_le_bytes());
        put(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        put(k);
        put(&[0]);
        put(v);
        put(&[0]);
    }
}

/// The pairs serialization of `pairs`.
pub(crate) fn serialize_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let iter = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
    let mut out = vec![0; pairs_size(iter.clone())];
    write_pairs(&mut out, pairs.len(), iter);
    out
}

/// Parses a pairs serialization; `None` when it is malformed. An empty buffer is an empty map
/// (that is what the SDK sends for an empty `Vec`... and what Envoy accepts).
pub(crate) fn parse_pairs(buf: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(bytes) as usize)
    };
    let count = word(0)?;
    let mut pos = 4usize.checked_add(count.checked_mul(8)?)?;
    if pos > buf.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = word(4 + i * 8)?;
        let value_len = word(8 + i * 8)?;
        let key = buf.get(pos..pos.checked_add(key_len)?)?;
        pos += key_len;
        if buf.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        let value = buf.get(pos..pos.checked_add(value_len)?)?;
        pos += value_len;
        if buf.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        pairs.push((key, value));
    }
    (pos == buf.len()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            (b":path".to_vec(), b"/".to_vec()),
            (b"x-a".to_vec(), b"".to_vec()),
        ];
        let bytes = serialize_pairs(&pairs);
        assert_eq!(bytes.len(), 4 + 16 + 6 + 2 + 4 + 1);
        let parsed = parse_pairs(&bytes).unwrap();
        assert_eq!(
            parsed,
            vec![(&b":path"[..], &b"/"[..]), (&b"x-a"[..], &b""[..])]
        );
        assert_eq!(parse_pairs(&bytes[..bytes.len() - 1]), None);
        assert_eq!(parse_pairs(&[]), Some(vec![]));
        assert_eq!(parse_pairs(&[1, 0, 0]), None);
    }

    #[test]
    fn header_map_keeps_pseudo_headers_first() {
        let mut map = HeaderMap::from_pairs(&[(":path", "/"), ("Accept", "*/*")]);
        map.add(b":authority", b"backend");
        map.add(b"x-b", b"1");
        map.add(b"x-b", b"2");
        let keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [":path", ":authority", "accept", "x-b", "x-b"]);
        assert_eq!(map.get("ACCEPT"), Some("*/*"));
        map.replace(b"x-b", b"3");
        assert_eq!(map.get_all("x-b"), ["3"]);
        let mut out = vec![0; map.pairs_size()];
        map.write_pairs(&mut out);
        assert_eq!(parse_pairs(&out).unwrap().len(), 4);
    }
}
