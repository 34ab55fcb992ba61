//! A small pull parser for JSON configuration: the caller asks for the type
//! it expects (a string, an integer, an object with known fields...), the
//! reader checks it and tracks the JSON path of the value being read.
//!
//! It replaces serde_json with serde_path_to_error, whose monomorphised
//! visitors were a fifth of the module (see bench/README.md), and keeps their
//! behaviour: the same streaming order (the first error in the document is
//! the one reported), the same messages with ` at line L column C`, and the
//! same paths (the value being read; a sequence's own path for a missing `,`
//! or `]`; `key` for an unknown field; the object's path for missing and
//! duplicate fields; `?` for a key that could not be read).

use alloc::{boxed::Box, string::String, vec::Vec};

use core::fmt;

use crate::map::Map;

/// One step of a JSON path.
enum Seg {
    Index(usize),
    Key(String),
    Unknown,
}

/// A syntax or type error, as serde_path_to_error reports serde_json's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The JSON path of the value being read, e.g. `services[0].hosts`
    /// (`.` for the document itself, empty after it).
    pub path: String,
    /// serde_json's message, with ` at line L column C`.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl core::error::Error for Error {}

/// An error of a read, boxed so that a result stays small.
pub type Fail = Box<Error>;

/// A result of reading one value.
pub type R<T> = Result<T, Fail>;

/// What the caller expected, as serde words it.
#[derive(Clone, Copy)]
pub enum Expected {
    /// A string.
    Str,
    /// An unsigned integer.
    U64,
    /// A signed integer.
    I64,
    /// A floating-point number.
    F64,
    /// `true` or `false`.
    Bool,
    /// A list.
    Seq,
    /// An object with string keys.
    Map,
    /// An object with the fields of this struct.
    Struct(&'static str),
}

/// A number as read: serde_json's three kinds (a float keeps its text).
enum Num<'a> {
    U(u64),
    I(i64),
    F(&'a str),
}

/// The reader: bytes, a position and the path of the value being read.
pub struct Reader<'a> {
    src: &'a [u8],
    i: usize,
    path: Vec<Seg>,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `src`.
    pub fn new(src: &'a [u8]) -> Self {
        Reader {
            src,
            i: 0,
            path: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    /// Skips whitespace and peeks at the next byte.
    fn ws(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
        self.peek()
    }

    fn path_string(&self) -> String {
        if self.path.is_empty() {
            return ".".into();
        }
        let mut out = String::new();
        for (n, seg) in self.path.iter().enumerate() {
            match seg {
                Seg::Index(i) => {
                    out.push('[');
                    push_u64(&mut out, *i as u64);
                    out.push(']');
                }
                Seg::Key(k) => {
                    if n > 0 {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Unknown => {
                    if n > 0 {
                        out.push('.');
                    }
                    out.push('?');
                }
            }
        }
        out
    }

    #[inline(never)]
    fn fail_at(&self, message: &str, at: usize) -> Fail {
        let before = self.src.get(..at).unwrap_or(self.src);
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = 1 + before.iter().take(start).filter(|&&b| b == b'\n').count();
        let column = at - start;
        let mut text = cat(&[message, " at line "]);
        push_u64(&mut text, line as u64);
        text.push_str(" column ");
        push_u64(&mut text, column as u64);
        Box::new(Error {
            path: self.path_string(),
            message: text,
        })
    }

    /// An error at the current position (serde_json's `error`).
    fn err(&self, message: &str) -> Fail {
        self.fail_at(message, self.i)
    }

    /// An error at the byte just peeked (serde_json's `peek_error`).
    fn peek_err(&self, message: &str) -> Fail {
        self.fail_at(message, (self.i + 1).min(self.src.len()))
    }

    /// A custom error of the value under the path.
    pub fn custom(&self, message: &str) -> Fail {
        self.err(message)
    }

    /// serde's `missing field` error, at the path of the object just read.
    #[inline(never)]
    pub fn missing_field(&self, field: &str) -> Fail {
        self.err(&cat(&["missing field `", field, "`"]))
    }

    /// After the document: only whitespace may follow.
    pub fn end(&mut self) -> R<()> {
        if self.ws().is_some() {
            self.path.clear();
            let mut e = self.peek_err("trailing characters");
            e.path.clear();
            return Err(e);
        }
        Ok(())
    }

    /// Reads the literal `word` (`null`, `true`, `false`), whose first byte
    /// was just peeked.
    fn ident(&mut self, word: &[u8]) -> R<()> {
        self.i += 1;
        for &want in word.get(1..).unwrap_or_default() {
            match self.peek() {
                None => return Err(self.err("EOF while parsing a value")),
                Some(b) => {
                    self.i += 1;
                    if b != want {
                        return Err(self.err("expected ident"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a string whose opening quote is at the current position.
    fn raw_string(&mut self) -> R<String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.err("EOF while parsing a string"));
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("EOF while parsing a string"));
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0..=0x1f => {
                    return Err(self
                        .err("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|e| {
            // As serde_json: back from the closing quote by the bytes from
            // the first invalid one on, but not before the line's start.
            let back = e.as_bytes().len() - e.utf8_error().valid_up_to();
            let line_start = self
                .src
                .get(..self.i)
                .and_then(|s| s.iter().rposition(|&b| b == b'\n'))
                .map_or(0, |p| p + 1);
            self.fail_at(
                "invalid unicode code point",
                self.i.saturating_sub(back).max(line_start),
            )
        })
    }

    fn hex4(&mut self) -> R<u16> {
        let Some(digits) = self.src.get(self.i..self.i + 4) else {
            self.i = self.src.len();
            return Err(self.err("EOF while parsing a string"));
        };
        let mut n: u16 = 0;
        let mut ok = true;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    ok = false;
                    0
                }
            };
            n = n.wrapping_mul(16).wrapping_add(u16::from(v));
        }
        self.i += 4;
        if !ok {
            return Err(self.err("invalid escape"));
        }
        Ok(n)
    }

    fn unicode_escape(&mut self) -> R<char> {
        let n = self.hex4()?;
        let code = match n {
            0xDC00..=0xDFFF => return Err(self.err("lone leading surrogate in hex escape")),
            0xD800..=0xDBFF => {
                // As serde_json: the backslash and the `u` are each consumed, also when
                // it is the wrong byte.
                for want in [b'\\', b'u'] {
                    let Some(c) = self.peek() else {
                        return Err(self.err("EOF while parsing a string"));
                    };
                    self.i += 1;
                    if c != want {
                        return Err(self.err("unexpected end of hex escape"));
                    }
                }
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err("lone leading surrogate in hex escape"));
                }
                0x10000 + ((u32::from(n) - 0xD800) << 10) + (u32::from(lo) - 0xDC00)
            }
            n => u32::from(n),
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid unicode code point"))
    }

    /// Reads a number whose first byte (`-` or a digit) is at the current position.
    fn number(&mut self) -> R<Num<'a>> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.peek_err("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
            }
            Some(_) => {
                self.i += 1;
                return Err(self.err("invalid number"));
            }
            None => return Err(self.err("EOF while parsing a value")),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.i += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits()?;
        }
        let text = self.src.get(start..self.i).unwrap_or_default();
        let text = core::str::from_utf8(text).unwrap_or_default();
        if !float {
            // The magnitude, if a u64 holds it.
            let mut magnitude = Some(0u64);
            for d in text.trim_start_matches('-').bytes() {
                magnitude =
                    magnitude.and_then(|m| m.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            }
            match magnitude {
                Some(v) if !negative => return Ok(Num::U(v)),
                // `-0` is a float to serde_json, as is anything below `i64::MIN`.
                Some(v @ 1..=0x8000_0000_0000_0000) => {
                    return Ok(Num::I(0i64.wrapping_sub_unsigned(v)))
                }
                _ => {}
            }
        }
        if over_f64(text) {
            let at = exponent_overflow(text).map_or(self.i, |k| start + k);
            return Err(self.fail_at("number out of range", at));
        }
        Ok(Num::F(text))
    }

    fn digits(&mut self) -> R<()> {
        match self.peek() {
            Some(b'0'..=b'9') => {}
            Some(_) => return Err(self.peek_err("invalid number")),
            None => return Err(self.peek_err("EOF while parsing a value")),
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        Ok(())
    }

    /// The value at the current position is not what was expected: consume
    /// it if it is a scalar and report serde's `invalid type`.
    #[inline(never)]
    fn invalid_type(&mut self, exp: Expected) -> Fail {
        let mut message = String::from("invalid type: ");
        match self.ws() {
            None => return self.peek_err("EOF while parsing a value"),
            Some(b @ (b'n' | b't' | b'f')) => {
                let (word, shown): (&[u8], _) = match b {
                    b'n' => (b"null", "null"),
                    b't' => (b"true", "boolean `true`"),
                    _ => (b"false", "boolean `false`"),
                };
                if let Err(e) = self.ident(word) {
                    return e;
                }
                message.push_str(shown);
            }
            Some(b'-' | b'0'..=b'9') => match self.number() {
                Err(e) => return e,
                Ok(n) => describe(&mut message, &n),
            },
            Some(b'"') => match self.raw_string() {
                Err(e) => return e,
                Ok(s) => {
                    message.push_str("string ");
                    push_debug_str(&mut message, &s);
                }
            },
            Some(b'[') => message.push_str("sequence"),
            Some(b'{') => message.push_str("map"),
            Some(_) => return self.peek_err("expected value"),
        }
        message.push_str(", expected ");
        push_expected(&mut message, exp);
        self.err(&message)
    }

    /// A number of the wrong kind for `exp` (`u64` or `i64`): serde's
    /// `invalid value` for an integer out of its range, `invalid type` for
    /// a float.
    #[inline(never)]
    fn wrong_number(&self, n: &Num<'_>, exp: Expected) -> Fail {
        let mut message = String::from(match n {
            Num::F(_) => "invalid type: ",
            _ => "invalid value: ",
        });
        describe(&mut message, n);
        message.push_str(", expected ");
        push_expected(&mut message, exp);
        self.err(&message)
    }

    /// Reads a string.
    pub fn string(&mut self) -> R<String> {
        match self.ws() {
            Some(b'"') => self.raw_string(),
            _ => Err(self.invalid_type(Expected::Str)),
        }
    }

    /// Reads a `null` if one is next: whether it did.
    #[inline(never)]
    pub fn null(&mut self) -> R<bool> {
        if self.ws() != Some(b'n') {
            return Ok(false);
        }
        self.ident(b"null")?;
        Ok(true)
    }

    /// Reads `null` as `None`, anything else with `f`.
    #[inline]
    pub fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        f(self).map(Some)
    }

    fn integer(&mut self, exp: Expected) -> R<Num<'a>> {
        match self.ws() {
            None => Err(self.peek_err("EOF while parsing a value")),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.invalid_type(exp)),
        }
    }

    /// Reads an unsigned integer.
    pub fn u64(&mut self) -> R<u64> {
        match self.integer(Expected::U64)? {
            Num::U(v) => Ok(v),
            n => Err(self.wrong_number(&n, Expected::U64)),
        }
    }

    /// Reads a signed integer.
    pub fn i64(&mut self) -> R<i64> {
        let n = self.integer(Expected::I64)?;
        match n {
            Num::I(v) => Ok(v),
            Num::U(v) if v <= i64::MAX as u64 => Ok(v as i64),
            n => Err(self.wrong_number(&n, Expected::I64)),
        }
    }

    /// Reads a number as `f64`, as serde does (integers too). Decimal text
    /// with at most 15 significant digits and a small exponent converts
    /// exactly as serde's correctly rounded parser does; longer text may
    /// differ from it in the last bit (no float parser in the module).
    pub fn f64(&mut self) -> R<f64> {
        Ok(match self.integer(Expected::F64)? {
            Num::U(v) => v as f64,
            Num::I(v) => v as f64,
            Num::F(t) => decimal_f64(t),
        })
    }

    /// Reads `true` or `false`.
    pub fn bool(&mut self) -> R<bool> {
        let value = match self.ws() {
            Some(b't') => true,
            Some(b'f') => false,
            _ => return Err(self.invalid_type(Expected::Bool)),
        };
        self.ident(if value { b"true" } else { b"false" })?;
        Ok(value)
    }

    /// Reads a list, each element with `f` under its index.
    pub fn seq<T>(&mut self, f: &mut dyn FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let mut out = Vec::new();
        self.seq_each(&mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Reader::seq`]'s walk, once for every element type: `f` reads each
    /// element under its index.
    #[inline(never)]
    fn seq_each(&mut self, f: &mut dyn FnMut(&mut Self) -> R<()>) -> R<()> {
        if self.ws() != Some(b'[') {
            return Err(self.invalid_type(Expected::Seq));
        }
        self.i += 1;
        let mut n = 0;
        loop {
            match self.ws() {
                None => return Err(self.peek_err("EOF while parsing a list")),
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b',') if n > 0 => {
                    self.i += 1;
                    match self.ws() {
                        Some(b']') => return Err(self.peek_err("trailing comma")),
                        Some(_) => {}
                        None => return Err(self.peek_err("EOF while parsing a value")),
                    }
                }
                Some(_) if n == 0 => {}
                Some(_) => return Err(self.peek_err("expected `,` or `]`")),
            }
            self.path.push(Seg::Index(n));
            f(self)?;
            self.path.pop();
            n += 1;
        }
    }

    /// Reads the next key of an object (`first`: none read yet), or `None` at its end.
    fn key(&mut self, first: bool) -> R<Option<String>> {
        let peek = match self.ws() {
            Some(b'}') => {
                self.i += 1;
                return Ok(None);
            }
            Some(b',') if !first => {
                self.i += 1;
                self.ws()
            }
            Some(b) if first => Some(b),
            Some(_) => return Err(self.unknown_key("expected `,` or `}`")),
            None => return Err(self.unknown_key("EOF while parsing an object")),
        };
        match peek {
            Some(b'"') => {
                self.path.push(Seg::Unknown);
                let k = self.raw_string()?;
                self.path.pop();
                Ok(Some(k))
            }
            Some(b'}') => Err(self.unknown_key("trailing comma")),
            Some(_) => Err(self.unknown_key("key must be a string")),
            None => Err(self.unknown_key("EOF while parsing a value")),
        }
    }

    fn unknown_key(&mut self, message: &str) -> Fail {
        self.path.push(Seg::Unknown);
        self.peek_err(message)
    }

    fn colon(&mut self) -> R<()> {
        match self.ws() {
            Some(b':') => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(self.peek_err("expected `:`")),
            None => Err(self.peek_err("EOF while parsing an object")),
        }
    }

    /// Reads an object with string keys, each value with `f` under its key.
    pub fn map<T>(&mut self, f: &mut dyn FnMut(&mut Self) -> R<T>) -> R<Map<T>> {
        let mut entries = Vec::new();
        self.map_each(&mut |r| {
            let value = f(r)?;
            entries.push((r.take_key(), value));
            Ok(())
        })?;
        Ok(Map::from_entries(entries))
    }

    /// The key of the value just read, taken out of the path (which only
    /// an error would show, and none comes after the value).
    fn take_key(&mut self) -> String {
        match self.path.last_mut() {
            Some(Seg::Key(k)) => core::mem::take(k),
            _ => String::new(),
        }
    }

    /// [`Reader::map`]'s walk, once for every value type: `f` reads each
    /// value under its key.
    #[inline(never)]
    fn map_each(&mut self, f: &mut dyn FnMut(&mut Self) -> R<()>) -> R<()> {
        if self.ws() != Some(b'{') {
            return Err(self.invalid_type(Expected::Map));
        }
        self.i += 1;
        let mut first = true;
        while let Some(k) = self.key(first)? {
            first = false;
            self.colon()?;
            self.path.push(Seg::Key(k));
            f(self)?;
            self.path.pop();
        }
        Ok(())
    }

    /// serde_json ends the object after its visitor's error (a `}` right
    /// after the key is consumed), then positions the error there.
    fn end_after_error(&mut self) {
        if self.ws() == Some(b'}') {
            self.i += 1;
        }
    }

    /// Reads an object with the given fields (serde's `deny_unknown_fields`):
    /// `f` reads the value of field number `n` under its name. A field given
    /// twice is an error. Returns the fields given, as bits by number.
    pub fn object(
        &mut self,
        name: &'static str,
        fields: &[&'static str],
        f: &mut dyn FnMut(&mut Self, usize) -> R<()>,
    ) -> R<u64> {
        if self.ws() != Some(b'{') {
            return Err(self.invalid_type(Expected::Struct(name)));
        }
        self.i += 1;
        let mut seen = 0u64;
        let mut first = true;
        while let Some(k) = self.key(first)? {
            first = false;
            let Some(n) = fields.iter().position(|f| *f == k) else {
                self.end_after_error();
                let message = unknown_field(&k, fields);
                self.path.push(Seg::Key(k));
                return Err(self.err(&message));
            };
            if seen & (1 << n) != 0 {
                self.end_after_error();
                return Err(self.err(&cat(&["duplicate field `", &k, "`"])));
            }
            seen |= 1 << n;
            self.colon()?;
            self.path.push(Seg::Key(k));
            f(self, n)?;
            self.path.pop();
        }
        Ok(seen)
    }
}

/// Whether a float's text is over `f64::MAX` (serde_json's `number out of
/// range`), without parsing it (a float parser is 19 KB of the module).
/// Within a unit in the 17th digit of `f64::MAX` it may differ from
/// serde_json, whose arithmetic is not correctly rounded either.
fn over_f64(text: &str) -> bool {
    let text = text.trim_start_matches('-');
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(e) => (text.get(..e).unwrap_or(""), text.get(e + 1..).unwrap_or("")),
        None => (text, ""),
    };
    let mut exp_value: i64 = 0;
    let negative_exp = exp.starts_with('-');
    for d in exp.trim_start_matches(['+', '-']).bytes() {
        exp_value = (exp_value * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    if negative_exp {
        exp_value = -exp_value;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int = int.trim_start_matches('0');
    // The exponent of the first significant digit, and the digits from it.
    let (first, digits) = if int.is_empty() {
        let significant = frac.trim_start_matches('0');
        if significant.is_empty() {
            return false; // zero
        }
        let zeros = frac.len() - significant.len();
        (-(zeros as i64) - 1, "".bytes().chain(significant.bytes()))
    } else {
        (int.len() as i64 - 1, int.bytes().chain(frac.bytes()))
    };
    match first + exp_value {
        309.. => true,
        // Compared as text, as the digits' string was.
        308 => digits.gt("17976931348623158".bytes()),
        _ => false,
    }
}

/// The value of a JSON number's text (`-0.05`, `5e-2`): its digits as an
/// integer divided or multiplied by a power of ten, which IEEE arithmetic
/// rounds correctly while both are exact (up to 2^53 and 10^22).
fn decimal_f64(text: &str) -> f64 {
    let negative = text.starts_with('-');
    let text = text.trim_start_matches('-');
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(e) => (text.get(..e).unwrap_or(""), text.get(e + 1..).unwrap_or("")),
        None => (text, ""),
    };
    let mut e: i64 = 0;
    for d in exp.trim_start_matches(['+', '-']).bytes() {
        e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
    }
    if exp.starts_with('-') {
        e = -e;
    }
    let (mut m, mut point) = (0u64, false);
    for d in mantissa.bytes() {
        match d {
            b'.' => point = true,
            // Digits past what a u64 holds are dropped (before the point,
            // each one still multiplies by ten).
            _ if m >= (1 << 59) => e += i64::from(!point),
            d => {
                m = m * 10 + u64::from(d - b'0');
                e -= i64::from(point);
            }
        }
    }
    // One rounding by an exact power of ten (up to 10^22), then step by step.
    let up = e > 0;
    let mut k = e.unsigned_abs().min(400);
    let mut pow = 1.0f64;
    while k > 0 && pow < 1e22 {
        pow *= 10.0;
        k -= 1;
    }
    let mut v = if up { m as f64 * pow } else { m as f64 / pow };
    while k > 0 {
        v = if up { v * 10.0 } else { v / 10.0 };
        k -= 1;
    }
    if negative {
        -v
    } else {
        v
    }
}

/// Where serde_json stops on a positive exponent over `i32::MAX`: just after
/// the digit that overflows (an offset into `text`).
fn exponent_overflow(text: &str) -> Option<usize> {
    let e = text.find(['e', 'E'])?;
    let digits = text.get(e + 1..)?;
    let (skip, digits) = match digits.strip_prefix('+') {
        Some(rest) => (e + 2, rest),
        None if digits.starts_with('-') => return None,
        None => (e + 1, digits),
    };
    let mut exp: i32 = 0;
    for (k, d) in digits.bytes().enumerate() {
        match exp
            .checked_mul(10)
            .and_then(|v| v.checked_add(i32::from(d - b'0')))
        {
            Some(v) => exp = v,
            None => return Some(skip + k + 1),
        }
    }
    None
}

/// The strings of `parts`, one after another: `[&str]::concat`, whose
/// generic join is 1.2 KiB of the module where this is a loop.
fn cat(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Appends `v` in decimal.
fn push_u64(out: &mut String, v: u64) {
    if v >= 10 {
        push_u64(out, v / 10);
    }
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// Appends `s` as `{:?}` shows it (serde's `string "…"`): each character
/// as `char::escape_debug` writes it, but for `'`, which a string's
/// `Debug` leaves alone (both escape every grapheme extender, also after
/// a base character). The same text without linking `<str as Debug>::fmt`.
fn push_debug_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '\'' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    out.push('"');
}

/// Appends a number as serde shows an unexpected one (`integer `5``).
fn describe(out: &mut String, n: &Num<'_>) {
    match *n {
        Num::U(v) => {
            out.push_str("integer `");
            push_u64(out, v);
        }
        Num::I(v) => {
            out.push_str("integer `");
            if v < 0 {
                out.push('-');
            }
            push_u64(out, v.unsigned_abs());
        }
        Num::F(t) => {
            // serde prints the shortest form: `1.50` as `1.5`, `2.0` as `2.0`.
            let t = match t.find(['e', 'E']) {
                None if t.contains('.') => {
                    let trimmed = t.trim_end_matches('0');
                    if trimmed.ends_with('.') {
                        t.get(..trimmed.len() + 1).unwrap_or(t)
                    } else {
                        trimmed
                    }
                }
                _ => t,
            };
            out.push_str("floating point `");
            out.push_str(t);
        }
    }
    out.push('`');
}

/// Appends what was expected, as serde words it.
fn push_expected(out: &mut String, exp: Expected) {
    let text = match exp {
        Expected::Str => "a string",
        Expected::U64 => "u64",
        Expected::I64 => "i64",
        Expected::F64 => "f64",
        Expected::Bool => "a boolean",
        Expected::Seq => "a sequence",
        Expected::Map => "a map",
        Expected::Struct(name) => {
            out.push_str("struct ");
            name
        }
    };
    out.push_str(text);
}

/// serde's `unknown field` message.
fn unknown_field(key: &str, fields: &[&str]) -> String {
    let mut out = cat(&["unknown field `", key, "`, "]);
    match fields {
        [] => out.push_str("there are no fields"),
        [a] => out.push_str(&cat(&["expected `", a, "`"])),
        [a, b] => out.push_str(&cat(&["expected `", a, "` or `", b, "`"])),
        _ => {
            out.push_str("expected one of ");
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('`');
                out.push_str(f);
                out.push('`');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{format, string::ToString};

    fn ours(s: &str) -> String {
        let mut out = String::new();
        push_debug_str(&mut out, s);
        out
    }

    /// `push_debug_str` writes what `{:?}` does, for every scalar value
    /// alone, after a base character and before a combining mark.
    #[test]
    fn debug_str_is_str_debug() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            for s in [
                c.to_string(),
                format!("a{c}"),
                format!("{c}\u{301}"),
                format!("\u{301}{c}'"),
            ] {
                assert_eq!(ours(&s), format!("{s:?}"), "U+{:04X}", u32::from(c));
            }
        }
    }

    #[test]
    fn numbers_in_decimal() {
        for v in [0, 1, 9, 10, 99, 100, 12345, u64::MAX, i64::MAX as u64] {
            let mut out = String::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
    }
}
