//! The revision of a configuration: a number derived from its JSON, the
//! same wherever it is computed, so that `canaryctl verify` can tell from
//! a rule file which proxies apply it (`canary_router_config_revision`).
//!
//! The bytes a proxy receives are rarely the file's: Istio turns a
//! WasmPlugin's YAML `pluginConfig` into JSON (protobuf's `Struct`, written
//! by Go's protojson: keys sorted, numbers as doubles, whitespace of its
//! own choosing). So the revision is a hash of the JSON *value*, not of
//! its text: whitespace, the order of an object's keys and how a number is
//! written (`90`, `90.0`, `9e1`) do not change it. Numbers are compared as
//! decimals (digits and exponent), not as doubles; `0.1` written with 17
//! digits would differ, which no one writes. Strings are compared as
//! written: the JSON writers on the way (serde_json in `canaryctl`, Go's
//! protojson in istiod) escape alike (`"`, `\\` and control characters,
//! nothing else), and a JSON file Envoy reads as is has its own bytes.
//!
//! The number is below 2^53 (and above 0), so a Prometheus float (a
//! double) holds it exactly.

/// Deepest nesting hashed; deeper values hash as one constant (the
/// filter's configuration is never that deep, and refuses what is).
const MAX_DEPTH: u32 = 64;

use filter_runtime::json::Reader;

use crate::domain::plugin::{read_pieces, Source};
use crate::schema::error::ConfigError;

/// The revision of a JSON document (bytes the parser accepted; other bytes
/// get some number, never a panic).
pub fn revision(mut json: &[u8]) -> u64 {
    hashes(&mut json).map_or(1, |(_, revision)| revision)
}

/// The hash of a document's bytes ([`crate::domain::pick::hash_key`]) and
/// its revision, from one read of its pieces.
pub fn hashes(src: &mut dyn Source) -> Result<(u64, u64), ConfigError> {
    let mut bytes = Fnv(FNV_OFFSET);
    let mut value = 0;
    read_pieces(src, None, Some(&mut bytes), &mut |r| {
        value = Scan { r }.value(0);
        while r.byte().is_some() {
            r.bump();
        }
        Ok(())
    })?;
    Ok((bytes.done(), (value >> 11).max(1)))
}

/// FNV-1a's offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A 64-bit hash being fed bytes (FNV-1a).
pub(crate) struct Fnv(u64);

impl Fnv {
    fn new(tag: u8) -> Self {
        let mut h = Fnv(FNV_OFFSET);
        h.byte(tag);
        h
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }

    fn done(&self) -> u64 {
        crate::domain::pick::mix(self.0)
    }
}

/// A walk over a document's bytes (through a reader's window, not its
/// JSON parser).
struct Scan<'r, 'a> {
    r: &'r mut Reader<'a>,
}

impl Scan<'_, '_> {
    /// The next byte, 0 at the end.
    fn at(&mut self) -> u8 {
        self.r.byte().unwrap_or(0)
    }

    #[inline(never)]
    fn bump(&mut self) {
        self.r.bump();
    }

    fn peek(&mut self) -> u8 {
        while let b' ' | b'\n' | b'\t' | b'\r' = self.at() {
            self.bump();
        }
        self.at()
    }

    /// The hash of the value at the current position.
    fn value(&mut self, depth: u32) -> u64 {
        if depth > MAX_DEPTH {
            while self.r.byte().is_some() {
                self.bump();
            }
            return 0;
        }
        match self.peek() {
            b'{' => {
                self.bump();
                // Members in any order: a sum of each one's hash.
                let (mut sum, mut n) = (0u64, 0u64);
                while self.peek() == b'"' {
                    let key = self.string();
                    if self.peek() == b':' {
                        self.bump();
                    }
                    let value = self.value(depth + 1);
                    sum = sum.wrapping_add(crate::domain::pick::mix(key ^ value.rotate_left(29)));
                    n += 1;
                    if self.peek() == b',' {
                        self.bump();
                    }
                }
                self.bump(); // `}`
                crate::domain::pick::mix(sum ^ crate::domain::pick::mix(n ^ 0x7b))
            }
            b'[' => {
                self.bump();
                let mut h: u64 = 0x5b;
                while !matches!(self.peek(), b']' | 0) {
                    h = crate::domain::pick::mix(
                        h.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.value(depth + 1),
                    );
                    if self.peek() == b',' {
                        self.bump();
                    }
                }
                self.bump(); // `]`
                crate::domain::pick::mix(h)
            }
            b'"' => self.string(),
            b't' | b'f' | b'n' => {
                let c = self.peek();
                while self.r.byte().is_some_and(|b| b.is_ascii_lowercase()) {
                    self.bump();
                }
                Fnv::new(c).done()
            }
            0 => 0,
            _ => self.number(),
        }
    }

    /// A string's hash: its bytes as written, escapes included (JSON
    /// writers escape alike: `"`, `\\` and control characters only).
    fn string(&mut self) -> u64 {
        let mut h = Fnv::new(b'"');
        self.bump();
        while let Some(c) = self.r.byte() {
            self.bump();
            if c == b'"' {
                break;
            }
            h.byte(c);
            if c == b'\\' {
                h.byte(self.at());
                self.bump();
            }
        }
        h.done()
    }

    /// A number's hash: its sign, significant digits and decimal exponent,
    /// so that every way of writing one value hashes alike.
    fn number(&mut self) -> u64 {
        let mut h = Fnv::new(b'0');
        let negative = self.r.byte() == Some(b'-');
        if negative {
            self.bump();
        }
        // Significant digits; zeros after the last non-zero one are only
        // counted (`pending`), so that trailing zeros move into the exponent.
        let (mut exp, mut pending, mut any, mut point) = (0i64, 0i64, false, false);
        while let Some(c) = self.r.byte() {
            match c {
                b'.' => point = true,
                b'0' if !any => exp -= i64::from(point),
                b'0' => {
                    pending += 1;
                    exp -= i64::from(point);
                }
                b'1'..=b'9' => {
                    for _ in 0..pending {
                        h.byte(b'0');
                    }
                    pending = 0;
                    any = true;
                    h.byte(c);
                    exp -= i64::from(point);
                }
                _ => break,
            }
            self.bump();
        }
        exp += pending;
        if let Some(b'e' | b'E') = self.r.byte() {
            self.bump();
            let minus = self.r.byte() == Some(b'-');
            if let Some(b'+' | b'-') = self.r.byte() {
                self.bump();
            }
            let mut e = 0i64;
            while let Some(d @ b'0'..=b'9') = self.r.byte() {
                e = (e * 10 + i64::from(d - b'0')).min(1 << 40);
                self.bump();
            }
            exp += if minus { -e } else { e };
        }
        if !any {
            return Fnv::new(b'0').done();
        }
        h.byte(u8::from(negative));
        for b in exp.to_le_bytes() {
            h.byte(b);
        }
        h.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_counts_not_its_text() {
        let a = revision(br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":90}]}]}],"version":3}"#);
        for same in [
            &br#" { "version" : 3 , "services" : [ { "http" : [ { "route" : [ { "weight" : 90.0 , "destination" : { "subset" : "v1" , "host" : "backend" } } ] } ] , "hosts" : [ "backend" ] } ] } "#[..],
            br#"{"version":3e0,"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":9E1}]}]}]}"#,
            br#"{"version":0.3e1,"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":900e-1}]}]}]}"#,
        ] {
            assert_eq!(revision(same), a, "{}", String::from_utf8_lossy(same));
        }
        for other in [
            &br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":91}]}]}],"version":3}"#[..],
            br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v2"},"weight":90}]}]}],"version":3}"#,
            br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":90}]}]}],"version":-3}"#,
            br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":"90"}]}]}],"version":3}"#,
            br#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"host":"backend","subset":"v1"},"weight":90}]}]}]}"#,
        ] {
            assert_ne!(revision(other), a, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn numbers_strings_and_lists() {
        let r = |s: &str| revision(s.as_bytes());
        assert_eq!(r("0"), r("-0.000e5"));
        assert_eq!(r("100"), r("1e2"));
        assert_eq!(r("100"), r("1.00E+2"));
        assert_eq!(r("0.05"), r("5e-2"));
        assert_eq!(r("0.05"), r("0.0500"));
        assert_ne!(r("0.05"), r("0.5"));
        assert_ne!(r("105"), r("15"));
        assert_ne!(r("1005"), r("1050"));
        assert_ne!(r("-1"), r("1"));
        assert_ne!(r(r#""a\"b""#), r(r#""a\\b""#));
        assert_ne!(r(r#""a\"""#), r(r#""a""#));
        assert_eq!(r(r#""a\"b""#), r(" \"a\\\"b\" "));
        assert_ne!(r("[1,2]"), r("[2,1]"));
        assert_ne!(r("[[1],2]"), r("[1,[2]]"));
        assert_ne!(r("[]"), r("{}"));
        assert_ne!(r("null"), r("false"));
        assert_ne!(r(r#"{"a":{"b":1}}"#), r(r#"{"a":{},"b":1}"#));
        assert_ne!(r(r#"{"a":1,"b":2}"#), r(r#"{"a":2,"b":1}"#));
    }

    #[test]
    fn below_2_to_the_53_and_never_a_panic() {
        for s in [
            "",
            "{",
            "[",
            "\"",
            "\"\\u12",
            "{\"a\"",
            "-",
            "1e",
            "[1,",
            "]]]",
            "\u{0}",
            "{\"a\":1,}",
        ] {
            let v = revision(s.as_bytes());
            assert!((1..1 << 53).contains(&v), "{s:?}");
        }
        let deep = "[".repeat(100_000);
        assert!(revision(deep.as_bytes()) >= 1);
    }
}
