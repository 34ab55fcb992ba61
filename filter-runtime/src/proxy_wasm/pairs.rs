//! Header maps in the proxy-wasm "pairs" serialization: `u32 count`, then
//! `count` × (`u32 key_len`, `u32 value_len`), then each key and value
//! followed by a NUL byte (all integers little-endian). [`Pairs`] reads one
//! without copying (all request headers with one host call and no
//! allocation per header); [`serialize`] writes one.

use alloc::vec::Vec;

/// A validated pairs buffer.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'b> {
    count: usize,
    sizes: &'b [u8],
    data: &'b [u8],
}

#[inline]
fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = b.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(arr)).ok()
}

impl<'b> Pairs<'b> {
    /// Checks the buffer's framing; `None` if it is malformed. An empty
    /// buffer is an empty map.
    #[inline]
    pub fn parse(buf: &'b [u8]) -> Option<Self> {
        if buf.is_empty() {
            return Some(Pairs {
                count: 0,
                sizes: &[],
                data: &[],
            });
        }
        let count = read_u32(buf, 0)?;
        let sizes_end = count.checked_mul(8)?.checked_add(4)?;
        let sizes = buf.get(4..sizes_end)?;
        let data = buf.get(sizes_end..)?;
        let mut need = 0usize;
        for i in 0..count {
            let k = read_u32(sizes, i * 8)?;
            let v = read_u32(sizes, i * 8 + 4)?;
            need = need.checked_add(k)?.checked_add(v)?.checked_add(2)?;
        }
        (need <= data.len()).then_some(Pairs { count, sizes, data })
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the map is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every `(name, value)` in order (repeated names appear repeatedly).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + '_ {
        let data = self.data;
        let mut offset = 0usize;
        (0..self.count).map_while(move |i| {
            let k = read_u32(self.sizes, i * 8)?;
            let v = read_u32(self.sizes, i * 8 + 4)?;
            let key = data.get(offset..offset + k)?;
            let value = data.get(offset + k + 1..offset + k + 1 + v)?;
            offset += k + v + 2;
            Some((key, value))
        })
    }

    /// The first value of a header. The hot path of every decision (a
    /// lookup per header a rule reads): sizes are compared before any
    /// slice of the data is taken.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&'b [u8]> {
        let name = name.as_bytes();
        let mut offset = 0usize;
        for sizes in self.sizes.chunks_exact(8).take(self.count) {
            let (k, v) = sizes.split_at(4);
            let k = u32::from_le_bytes(k.try_into().ok()?) as usize;
            let v = u32::from_le_bytes(v.try_into().ok()?) as usize;
            if k == name.len() && self.data.get(offset..offset + k)? == name {
                return self.data.get(offset + k + 1..offset + k + 1 + v);
            }
            offset += k + v + 2;
        }
        None
    }

    /// Whether any value of header `name` satisfies `f` (stopping at the
    /// first that does); `None` if there is no such header.
    #[inline]
    pub fn any_value(&self, name: &str, mut f: impl FnMut(&'b [u8]) -> bool) -> Option<bool> {
        let name = name.as_bytes();
        let mut found = None;
        let mut offset = 0usize;
        for sizes in self.sizes.chunks_exact(8).take(self.count) {
            let (k, v) = sizes.split_at(4);
            let k = u32::from_le_bytes(k.try_into().ok()?) as usize;
            let v = u32::from_le_bytes(v.try_into().ok()?) as usize;
            if k == name.len() && self.data.get(offset..offset + k)? == name {
                if f(self.data.get(offset + k + 1..offset + k + 1 + v)?) {
                    return Some(true);
                }
                found = Some(false);
            }
            offset += k + v + 2;
        }
        found
    }

    /// Calls `f` with every `(name, value)` whose name is `n` bytes long
    /// with bit `min(n, 63)` of `lengths` set, in order. The per-request
    /// walk of a rule index: a header of no wanted length costs a load and
    /// a mask test, and no slice is taken of it.
    #[inline]
    pub fn for_each_of_len(&self, lengths: u64, mut f: impl FnMut(&'b [u8], &'b [u8])) {
        let mut offset = 0usize;
        // `parse` checked every size and that they fit `data`: the sums
        // below cannot wrap, and a `get` only fails on a broken buffer.
        for sizes in self.sizes.chunks_exact(8) {
            let Ok([k0, k1, k2, k3, v0, v1, v2, v3]) = <[u8; 8]>::try_from(sizes) else {
                return;
            };
            let k = u32::from_le_bytes([k0, k1, k2, k3]) as usize;
            let v = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
            if lengths & 1u64 << k.min(63) != 0 {
                let value_at = offset.wrapping_add(k).wrapping_add(1);
                match (
                    self.data.get(offset..offset.wrapping_add(k)),
                    self.data.get(value_at..value_at.wrapping_add(v)),
                ) {
                    (Some(key), Some(value)) => f(key, value),
                    _ => return,
                }
            }
            offset = offset.wrapping_add(k).wrapping_add(v).wrapping_add(2);
        }
    }

    /// Whether a header is present, its name compared ASCII case-insensitively.
    #[inline]
    pub fn contains_ignore_case(&self, name: &str) -> bool {
        self.iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Serializes pairs (for hosts and tests).
pub fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let list: Vec<(&[u8], &[u8])> = pairs.into_iter().collect();
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(list.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (k, v) in &list {
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
    }
    for (k, v) in &list {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let list: Vec<(&[u8], &[u8])> = vec![
            (b":authority", b"backend"),
            (b"x-a", b""),
            (b"x-a", &[0xff, 0x00, 0x01]),
        ];
        let buf = serialize(list.clone());
        let p = Pairs::parse(&buf).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.iter().collect::<Vec<_>>(), list);
        assert_eq!(p.get("x-a"), Some(&b""[..]), "first value wins");
        assert!(p.contains_ignore_case("X-A"));
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn the_length_filtered_walk_yields_exactly_the_wanted_lengths_in_order() {
        let long = "x".repeat(70);
        let list: Vec<(&[u8], &[u8])> = vec![
            (b":path", b"/"),
            (b"x-user", b"alice"),
            (b"accept", b""),
            (long.as_bytes(), b"long"),
            (b"x-user", b"bob"),
            (b"x-b", b"3"),
        ];
        let buf = serialize(list.clone());
        let p = Pairs::parse(&buf).unwrap();
        for lengths in [0u64, 1 << 6, 1 << 3 | 1 << 5, 1 << 63, u64::MAX] {
            let mut seen = Vec::new();
            p.for_each_of_len(lengths, |k, v| seen.push((k, v)));
            let want: Vec<_> = list
                .iter()
                .copied()
                .filter(|(k, _)| lengths & 1u64 << k.len().min(63) != 0)
                .collect();
            assert_eq!(seen, want, "lengths {lengths:#x}");
        }
        let mut all = Vec::new();
        p.for_each_of_len(u64::MAX, |k, v| all.push((k, v)));
        assert_eq!(all, p.iter().collect::<Vec<_>>());
    }

    #[test]
    fn malformed_buffers_are_rejected_not_read_past() {
        let buf = serialize(vec![(&b"k"[..], &b"v"[..])]);
        for cut in 1..buf.len() - 2 {
            assert!(Pairs::parse(&buf[..cut]).is_none(), "cut at {cut}");
        }
        let mut huge = buf.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Pairs::parse(&huge).is_none());
        assert!(Pairs::parse(&[]).unwrap().is_empty());
    }
}
