//! Small text scans written out by hand, each the exact equal of a `str`
//! method it replaces (`trim`, `trim_end`, `split`, `from_str_radix`):
//! every pattern type a `str` search is called with (a `char`, a closure,
//! a list of chars) is a searcher of its own in the module, which V8
//! compiles in every sidecar, for text read a few times per configuration.

/// `s` without trailing whitespace, as [`str::trim_end`] (Unicode's).
pub fn trim_end(s: &str) -> &str {
    let mut end = s.len();
    for c in s.chars().rev() {
        if !c.is_whitespace() {
            break;
        }
        end -= c.len_utf8();
    }
    s.get(..end).unwrap_or(s)
}

/// `s` without leading and trailing whitespace, as [`str::trim`].
pub fn trim(s: &str) -> &str {
    let s = trim_end(s);
    let mut start = 0;
    for c in s.chars() {
        if !c.is_whitespace() {
            break;
        }
        start += c.len_utf8();
    }
    s.get(start..).unwrap_or("")
}

/// Splits `s` at every `sep` into `fields`, if it has exactly that many
/// (what `s.split(sep)` yields, one by one).
pub fn split_exact<'a>(s: &'a str, sep: u8, fields: &mut [&'a str]) -> bool {
    let count = fields.len();
    let mut rest = s;
    for (k, slot) in fields.iter_mut().enumerate() {
        let last = k + 1 == count;
        match (find_byte(rest, sep), last) {
            (Some(i), false) => {
                let (Some(field), Some(tail)) = (rest.get(..i), rest.get(i + 1..)) else {
                    return false;
                };
                *slot = field;
                rest = tail;
            }
            (None, true) => {
                *slot = rest;
                return true;
            }
            _ => return false,
        }
    }
    false
}

/// Whether every byte of `s` passes `ok` (`s.bytes().all(ok)`): one loop
/// for the configuration's many checks of a value's characters, where each
/// closure given to `all` or `any` would be a function of its own.
pub fn all_bytes(s: &str, ok: fn(u8) -> bool) -> bool {
    for b in s.bytes() {
        if !ok(b) {
            return false;
        }
    }
    true
}

/// Where the first `byte` is in `s` (`s.bytes().position(|b| b == byte)`).
pub fn find_byte(s: &str, byte: u8) -> Option<usize> {
    for (i, b) in s.bytes().enumerate() {
        if b == byte {
            return Some(i);
        }
    }
    None
}

/// The number `s` writes in `radix` (at most 16), as
/// [`u64::from_str_radix`] reads it: an optional `+`, then at least one
/// digit, no overflow.
pub fn parse_u64(s: &[u8], radix: u32) -> Option<u64> {
    let digits = match s {
        [b'+', rest @ ..] => rest,
        _ => s,
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = char::from(b).to_digit(radix)?;
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{string::String, vec::Vec};

    /// Every string of up to four characters from an alphabet of
    /// separators, whitespace (ASCII and not), digits and signs.
    fn strings() -> Vec<String> {
        let alphabet = [
            ' ', '\t', '\n', '\u{a0}', '\u{2003}', '\u{3000}', '|', ':', '+', '-', '0', '7', '9',
            'a', 'F', 'g', 'é',
        ];
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &last {
                for c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    next.push(t);
                }
            }
            out.extend(next.iter().cloned());
            last = next;
        }
        out
    }

    #[test]
    fn as_str_does() {
        let all = strings();
        assert!(all.len() > 80_000);
        for s in &all {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(trim_end(s), s.trim_end(), "{s:?}");
            let graphic: fn(u8) -> bool = |b| b.is_ascii_graphic();
            let digit: fn(u8) -> bool = |b| b.is_ascii_digit();
            for ok in [graphic, digit] {
                assert_eq!(all_bytes(s, ok), s.bytes().all(ok), "{s:?}");
            }
            for sep in [b'|', b':'] {
                assert_eq!(find_byte(s, sep), s.bytes().position(|b| b == sep));
                let theirs: Vec<&str> = s.split(char::from(sep)).collect();
                for n in 1..=5 {
                    let mut fields = vec![""; n];
                    let ok = split_exact(s, sep, &mut fields);
                    assert_eq!(ok, theirs.len() == n, "{s:?} in {n}");
                    if ok {
                        assert_eq!(fields, theirs, "{s:?}");
                    }
                }
            }
            for radix in [10, 16] {
                assert_eq!(
                    parse_u64(s.as_bytes(), radix),
                    u64::from_str_radix(s, radix).ok(),
                    "{s:?} in radix {radix}"
                );
            }
        }
        for s in [
            "18446744073709551615",
            "18446744073709551616",
            "+18446744073709551615",
            "ffffffffffffffff",
            "10000000000000000",
        ] {
            for radix in [10, 16] {
                assert_eq!(
                    parse_u64(s.as_bytes(), radix),
                    u64::from_str_radix(s, radix).ok(),
                    "{s:?} in radix {radix}"
                );
            }
        }
    }
}
