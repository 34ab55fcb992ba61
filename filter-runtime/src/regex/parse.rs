//! Pattern → a small syntax tree, by regex-lite 0.1.9's rules (its
//! `hir/parse.rs`), one pattern byte to a character: the same branches in
//! the same order, so that a pattern is refused exactly when regex-lite
//! refuses it, with the message it gives.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::err::*;
use super::Set;

/// Flags: `i`, `m`, `s`, `R`, `x` (`U` only swaps greed, and `u` does
/// nothing; a full match does not care about either).
const I: u8 = 1;
const M: u8 = 2;
const S: u8 = 4;
const R: u8 = 8;
const X: u8 = 16;

/// Look-around assertions, by number.
pub(super) const START: u8 = 0;
const END: u8 = 1;
const WORD: u8 = 6;

pub(super) enum Kind {
    Empty,
    /// A character; one over 0xff (`\x{100}`) matches no byte.
    Char(u32),
    Class(Box<Set>),
    Look(u8),
    /// `sub{min,max}`; `None`: no max.
    Rep(u32, Option<u32>, Box<Node>),
    /// A capture group: it matters for the nesting count only.
    Cap(Box<Node>),
    Cat(Vec<Node>),
    Alt(Vec<Node>),
}

/// A node and its height (regex-lite's `check_hir_nesting` depth).
pub(super) struct Node {
    h: u8,
    pub(super) k: Kind,
}

const fn leaf(k: Kind) -> Node {
    Node { h: 0, k }
}

/// Parses `pattern` (already wrapped in `\A(?:` … `)\z`), refusing
/// nesting deeper than `nest` (at most 250: a node's height is a `u8`).
pub(super) fn parse(pattern: &[u8], ignore_case: bool, nest: u32) -> Result<Node, &'static str> {
    let mut p = Parser {
        p: pattern,
        pos: 0,
        depth: 0,
        nest,
        flags: if ignore_case { I } else { 0 },
        names: Vec::new(),
        deep: false,
    };
    let node = p.inner()?;
    if p.deep {
        return Err(TOO_MUCH_NESTING);
    }
    Ok(node)
}

struct Parser<'a> {
    p: &'a [u8],
    pos: usize,
    depth: u32,
    /// The deepest nesting allowed (regex-lite's `nest_limit`).
    nest: u32,
    flags: u8,
    names: Vec<&'a [u8]>,
    /// A node was deeper than `nest`: reported once parsing succeeds, as
    /// regex-lite checks the finished tree. Such a node is not built, which
    /// bounds the tree's depth (and so every recursion over it).
    deep: bool,
}

/// `char::is_whitespace` for the characters 0..=0xff.
fn is_space(c: u8) -> bool {
    matches!(c, 9..=13 | b' ' | 0x85 | 0xa0)
}

/// `char::is_alphabetic` for the characters 0..=0xff.
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, 0xaa | 0xb5 | 0xba | 0xc0..=0xd6 | 0xd8..=0xf6 | 0xf8..=0xff)
}

/// regex-lite's `is_capture_char` (`char::is_alphanumeric` for the rest).
fn is_name_char(c: u8, first: bool) -> bool {
    c == b'_'
        || is_alpha(c)
        || !first
            && (c.is_ascii_digit()
                || matches!(c, b'.' | b'[' | b']' | 0xb2 | 0xb3 | 0xb9 | 0xbc..=0xbe))
}

pub(super) fn add(s: &mut Set, c: u32) {
    if let Some(w) = s.get_mut(c as usize / 32) {
        *w |= 1 << (c % 32);
    }
}

pub(super) fn has(s: &Set, c: u32) -> bool {
    s.get(c as usize / 32)
        .is_some_and(|w| w >> (c % 32) & 1 != 0)
}

fn add_range(s: &mut Set, lo: u32, hi: u32) {
    for c in lo..=hi.min(255) {
        add(s, c);
    }
}

fn negate(s: &mut Set) {
    for w in s.iter_mut() {
        *w = !*w;
    }
}

fn union(s: &mut Set, t: &Set) {
    for (w, v) in s.iter_mut().zip(t) {
        *w |= v;
    }
}

/// regex-lite's ASCII case folding of a class: each maximal range adds the
/// other case of its part in `a-z` or, failing that, in `A-Z`.
fn fold(s: &mut Set) {
    let old = *s;
    let mut c = 0;
    while c < 256 {
        if !has(&old, c) {
            c += 1;
            continue;
        }
        let lo = c;
        while has(&old, c) {
            c += 1;
        }
        let hi = c - 1;
        let part = if lo <= u32::from(b'z') && hi >= u32::from(b'a') {
            (u32::from(b'a'), u32::from(b'z'))
        } else {
            (u32::from(b'A'), u32::from(b'Z'))
        };
        for x in lo.max(part.0)..=hi.min(part.1) {
            add(s, x ^ 0x20);
        }
    }
}

/// The POSIX classes (`[[:name:]]`): name, then ranges as pairs of bytes.
const POSIX: [(&[u8], &[u8]); 14] = [
    (b"alnum", b"09AZaz"),
    (b"alpha", b"AZaz"),
    (b"ascii", b"\x00\x7f"),
    (b"blank", b"\t\t  "),
    (b"cntrl", b"\x00\x1f\x7f\x7f"),
    (b"digit", b"09"),
    (b"graph", b"!~"),
    (b"lower", b"az"),
    (b"print", b" ~"),
    (b"punct", b"!/:@[`{~"),
    (b"space", b"\t\r  "),
    (b"upper", b"AZ"),
    (b"word", b"09AZ__az"),
    (b"xdigit", b"09AFaf"),
];

fn posix(name: &[u8]) -> Option<Set> {
    let (_, ranges) = POSIX.iter().find(|(n, _)| *n == name)?;
    let mut s = [0; 8];
    for r in ranges.chunks(2) {
        if let [lo, hi] = r {
            add_range(&mut s, u32::from(*lo), u32::from(*hi));
        }
    }
    Some(s)
}

impl<'a> Parser<'a> {
    fn cur(&self) -> Option<u8> {
        self.p.get(self.pos).copied()
    }

    fn is(&self, c: u8) -> bool {
        self.cur() == Some(c)
    }

    fn done(&self) -> bool {
        self.pos >= self.p.len()
    }

    fn peek(&self) -> Option<u8> {
        self.p.get(self.pos + 1).copied()
    }

    fn x(&self) -> bool {
        self.flags & X != 0
    }

    /// Moves on one character; whether there is one after it.
    fn bump(&mut self) -> bool {
        if self.done() {
            return false;
        }
        self.pos += 1;
        !self.done()
    }

    fn bump_if(&mut self, s: &[u8]) -> bool {
        let yes = self.p.get(self.pos..).is_some_and(|r| r.starts_with(s));
        if yes {
            self.pos += s.len();
        }
        yes
    }

    /// Skips whitespace and `#` comments in `x` mode.
    fn space(&mut self) {
        if !self.x() {
            return;
        }
        while let Some(c) = self.cur() {
            if is_space(c) {
                self.pos += 1;
            } else if c == b'#' {
                self.pos += 1;
                while let Some(c) = self.cur() {
                    self.pos += 1;
                    if c == b'\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// regex-lite's `bump_and_bump_space`.
    fn bsp(&mut self) -> bool {
        if !self.bump() {
            return false;
        }
        self.space();
        !self.done()
    }

    /// regex-lite's `peek_space`, quirks included: after a `#`, the next
    /// non-space character counts; with none, the very next one.
    fn peek_space(&self) -> Option<u8> {
        if !self.x() || self.done() {
            return self.peek();
        }
        let mut comment = false;
        for &c in self.p.get(self.pos + 1..).unwrap_or_default() {
            if is_space(c) {
                continue;
            }
            if !comment && c == b'#' {
                comment = true;
                continue;
            }
            return Some(c);
        }
        self.peek()
    }

    fn wrap(&mut self, h: u8, k: Kind) -> Node {
        if u32::from(h) > self.nest {
            self.deep = true;
            return leaf(Kind::Empty);
        }
        Node { h, k }
    }

    fn rep(&mut self, min: u32, max: Option<u32>, sub: Node) -> Node {
        match (min, max) {
            (0, Some(0)) => leaf(Kind::Empty),
            (1, Some(1)) => sub,
            _ => self.wrap(sub.h + 1, Kind::Rep(min, max, Box::new(sub))),
        }
    }

    /// A concatenation (`alt` false) or an alternation of `v`.
    fn list(&mut self, mut v: Vec<Node>, alt: bool) -> Node {
        if v.len() <= 1 {
            return v.pop().unwrap_or(leaf(Kind::Empty));
        }
        let h = v.iter().map(|n| n.h).max().unwrap_or(0) + 1;
        self.wrap(h, if alt { Kind::Alt(v) } else { Kind::Cat(v) })
    }

    fn class_node(s: Set) -> Node {
        leaf(Kind::Class(Box::new(s)))
    }

    /// A literal character, both cases of it under `i`.
    fn chr(&self, c: u32) -> Node {
        if self.flags & I != 0 && u8::try_from(c).is_ok_and(|b| b.is_ascii_alphabetic()) {
            let mut s = [0; 8];
            add(&mut s, c);
            add(&mut s, c ^ 0x20);
            return Self::class_node(s);
        }
        leaf(Kind::Char(c))
    }

    fn look(&self, k: u8) -> Node {
        leaf(Kind::Look(k))
    }

    /// A sequence of alternatives, up to a `)` or the end.
    fn inner(&mut self) -> Result<Node, &'static str> {
        let depth = self.depth;
        if depth > self.nest {
            return Err(TOO_MUCH_NESTING);
        }
        self.depth += 1;
        let mut alts = Vec::new();
        let mut cat = Vec::new();
        loop {
            self.space();
            let Some(c) = self.cur() else { break };
            match c {
                b'(' => {
                    let flags = self.flags;
                    if let Some(sub) = self.group()? {
                        cat.push(sub);
                        self.flags = flags;
                    }
                    if !self.is(b')') {
                        return Err(UNCLOSED_GROUP);
                    }
                    self.bump();
                }
                b')' => {
                    if depth == 0 {
                        return Err(UNOPENED_GROUP);
                    }
                    break;
                }
                b'|' => {
                    let n = self.list(core::mem::take(&mut cat), false);
                    alts.push(n);
                    self.bump();
                }
                b'[' => {
                    let n = self.class()?;
                    cat.push(n);
                }
                b'?' | b'*' | b'+' => {
                    let sub = cat.pop().ok_or(UNCOUNTED_REP_SUB_MISSING)?;
                    if self.bump() && self.is(b'?') {
                        self.bump();
                    }
                    let (min, max) = match c {
                        b'?' => (0, Some(1)),
                        b'*' => (0, None),
                        _ => (1, None),
                    };
                    let n = self.rep(min, max, sub);
                    cat.push(n);
                }
                b'{' => {
                    let sub = cat.pop().ok_or(COUNTED_REP_SUB_MISSING)?;
                    let n = self.counted(sub)?;
                    cat.push(n);
                }
                _ => {
                    let n = self.primitive()?;
                    cat.push(n);
                }
            }
        }
        self.depth -= 1;
        let n = self.list(cat, false);
        alts.push(n);
        Ok(self.list(alts, true))
    }

    #[inline(never)]
    fn primitive(&mut self) -> Result<Node, &'static str> {
        let c = self.cur().unwrap_or_default();
        self.bump();
        let (m, crlf) = (self.flags & M != 0, self.flags & R != 0);
        Ok(match c {
            b'\\' => return self.escape(),
            b'.' => {
                let mut s = [0; 8];
                if self.flags & S == 0 {
                    add(&mut s, 10);
                    if crlf {
                        add(&mut s, 13);
                    }
                }
                negate(&mut s);
                Self::class_node(s)
            }
            // Start, StartLF, StartCRLF; End, EndLF, EndCRLF.
            b'^' => self.look(if !m {
                START
            } else if crlf {
                4
            } else {
                2
            }),
            b'$' => self.look(if !m {
                END
            } else if crlf {
                5
            } else {
                3
            }),
            c => self.chr(u32::from(c)),
        })
    }

    /// After a `\`.
    #[inline(never)]
    fn escape(&mut self) -> Result<Node, &'static str> {
        let Some(c) = self.cur() else {
            return Err(ESCAPE_UNEXPECTED_EOF);
        };
        match c {
            b'0'..=b'9' => return Err(BACKREF_UNSUPPORTED),
            b'p' | b'P' => return Err(UNICODE_CLASS_UNSUPPORTED),
            b'x' | b'u' | b'U' => return self.hex(c),
            b'd' | b's' | b'w' | b'D' | b'S' | b'W' => {
                self.bump();
                // digit, space, word.
                let i = match c.to_ascii_lowercase() {
                    b'd' => 5,
                    b's' => 10,
                    _ => 12,
                };
                let mut s = POSIX.get(i).and_then(|(n, _)| posix(n)).unwrap_or_default();
                if c.is_ascii_uppercase() {
                    negate(&mut s);
                }
                return Ok(Self::class_node(s));
            }
            _ => {}
        }
        self.bump();
        // Escapable: every ASCII character but letters, digits, `<`, `>`.
        if c.is_ascii() && !c.is_ascii_alphanumeric() && c != b'<' && c != b'>' {
            return Ok(self.chr(u32::from(c)));
        }
        let special = match c {
            b'a' => 7,
            b'f' => 12,
            b't' => 9,
            b'n' => 10,
            b'r' => 13,
            b'v' => 11,
            _ => 0,
        };
        if special != 0 {
            return Ok(self.chr(special));
        }
        let k = match c {
            b'A' => START,
            b'z' => END,
            b'b' if self.is(b'{') => self.special_word()?.unwrap_or(WORD),
            b'b' => WORD,
            b'B' => 7,
            b'<' => 8,
            b'>' => 9,
            _ => return Err(ESCAPE_UNRECOGNIZED),
        };
        Ok(self.look(k))
    }

    /// `\b{start}`, `\b{end}`, `\b{start-half}`, `\b{end-half}`; `None`
    /// (and back at the `{`) for what may be a counted repetition.
    #[inline(never)]
    fn special_word(&mut self) -> Result<Option<u8>, &'static str> {
        let valid = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphabetic() || c == b'-');
        let start = self.pos;
        if !self.bsp() {
            return Err(SPECIAL_WORD_OR_REP_UNEXPECTED_EOF);
        }
        if !valid(self.cur()) {
            self.pos = start;
            return Ok(None);
        }
        let mut name = [0u8; 10];
        let mut len = 0;
        while valid(self.cur()) {
            if let Some(b) = name.get_mut(len) {
                *b = self.cur().unwrap_or_default();
            }
            len += 1;
            self.bsp();
        }
        if !self.is(b'}') {
            return Err(SPECIAL_WORD_BOUNDARY_UNCLOSED);
        }
        self.bump();
        let name = name.get(..len).unwrap_or_default();
        let names: [&[u8]; 4] = [b"start", b"end", b"start-half", b"end-half"];
        let k = names.iter().position(|n| *n == name);
        // WordStart, WordEnd, WordStartHalf, WordEndHalf.
        k.map(|k| Some(8 + k as u8))
            .ok_or(SPECIAL_WORD_BOUNDARY_UNRECOGNIZED)
    }

    /// `\xNN`, `\uNNNN`, `\UNNNNNNNN`, or any of them with `{hex}`.
    #[inline(never)]
    fn hex(&mut self, c: u8) -> Result<Node, &'static str> {
        let digits = match c {
            b'x' => 2,
            b'u' => 4,
            _ => 8,
        };
        if !self.bsp() {
            return Err(HEX_UNEXPECTED_EOF);
        }
        let mut v: u32 = 0;
        let mut push = |d: u32| {
            if v <= 0x10ffff {
                v = v * 16 + d;
            }
        };
        let digit = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
        let invalid = if self.is(b'{') {
            let mut any = false;
            while self.bsp() && !self.is(b'}') {
                push(digit(self.cur()).ok_or(HEX_BRACE_INVALID_DIGIT)?);
                any = true;
            }
            if self.done() {
                return Err(HEX_BRACE_UNEXPECTED_EOF);
            }
            self.bsp();
            if !any {
                return Err(HEX_BRACE_EMPTY);
            }
            HEX_BRACE_INVALID
        } else {
            for i in 0..digits {
                if i > 0 && !self.bsp() {
                    return Err(HEX_FIXED_UNEXPECTED_EOF);
                }
                push(digit(self.cur()).ok_or(HEX_FIXED_INVALID_DIGIT)?);
            }
            self.bsp();
            HEX_FIXED_INVALID
        };
        if char::from_u32(v).is_none() {
            return Err(invalid);
        }
        Ok(self.chr(v))
    }

    fn decimal(&mut self) -> Result<u32, &'static str> {
        while self.cur().is_some_and(is_space) {
            self.bump();
        }
        let mut v: u64 = 0;
        let mut any = false;
        while let Some(c @ b'0'..=b'9') = self.cur() {
            v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            any = true;
            self.bsp();
        }
        while self.cur().is_some_and(is_space) {
            self.bsp();
        }
        if !any {
            return Err(DECIMAL_NO_DIGITS);
        }
        u32::try_from(v).map_err(|_| DECIMAL_INVALID)
    }

    /// `{n}`, `{n,}`, `{n,m}` (and a lazy `?`) after `sub`.
    #[inline(never)]
    fn counted(&mut self, sub: Node) -> Result<Node, &'static str> {
        if !self.bsp() {
            return Err(COUNTED_REP_UNCLOSED);
        }
        let min = self.decimal()?;
        let mut max = Some(min);
        if self.done() {
            return Err(COUNTED_REP_MIN_UNCLOSED);
        }
        if self.is(b',') {
            if !self.bsp() {
                return Err(COUNTED_REP_COMMA_UNCLOSED);
            }
            max = if self.is(b'}') {
                None
            } else {
                Some(self.decimal()?)
            };
            if self.done() {
                return Err(COUNTED_REP_MIN_MAX_UNCLOSED);
            }
        }
        if !self.is(b'}') {
            return Err(COUNTED_REP_INVALID);
        }
        if self.bsp() && self.is(b'?') {
            self.bump();
        }
        if max.is_some_and(|max| min > max) {
            return Err(COUNTED_REP_INVALID_RANGE);
        }
        Ok(self.rep(min, max, sub))
    }

    /// `(…)`, `(?:…)`, `(?flags)`, `(?flags:…)`, `(?P<name>…)`, `(?<name>…)`;
    /// `None` for a flag directive.
    #[inline(never)]
    fn group(&mut self) -> Result<Option<Node>, &'static str> {
        self.bsp();
        if self.bump_if(b"?=")
            || self.bump_if(b"?!")
            || self.bump_if(b"?<=")
            || self.bump_if(b"?<!")
        {
            return Err(LOOK_UNSUPPORTED);
        }
        if self.bump_if(b"?P<") || self.bump_if(b"?<") {
            self.name()?;
        } else if self.bump_if(b"?") {
            if self.done() {
                return Err(UNCLOSED_GROUP_QUESTION);
            }
            let start = self.pos;
            self.flags = self.flag_list()?;
            if self.is(b')') {
                if self.pos == start {
                    return Err(EMPTY_FLAGS);
                }
                return Ok(None);
            }
            self.bump();
            return self.inner().map(Some);
        }
        // (No pattern of 1024 bytes has 2^32 groups: regex-lite's "too
        // many capture groups" cannot happen.)
        let sub = self.inner()?;
        Ok(Some(self.wrap(sub.h + 1, Kind::Cap(Box::new(sub)))))
    }

    #[inline(never)]
    fn name(&mut self) -> Result<(), &'static str> {
        if self.done() {
            return Err(MISSING_GROUP_NAME);
        }
        let start = self.pos;
        while let Some(c) = self.cur() {
            if c == b'>' {
                break;
            }
            if !is_name_char(c, self.pos == start) {
                return Err(INVALID_GROUP_NAME);
            }
            self.pos += 1;
        }
        let name = self.p.get(start..self.pos).unwrap_or_default();
        if self.done() {
            return Err(UNCLOSED_GROUP_NAME);
        }
        self.bump();
        if name.is_empty() {
            return Err(EMPTY_GROUP_NAME);
        }
        if self.names.contains(&name) {
            return Err(DUPLICATE_CAPTURE_NAME);
        }
        self.names.push(name);
        Ok(())
    }

    /// The flags of `(?…)` up to the `:` or `)`.
    #[inline(never)]
    fn flag_list(&mut self) -> Result<u8, &'static str> {
        let mut flags = self.flags;
        let mut negate = false;
        let mut dangling = false;
        let mut seen = 0u8;
        while let Some(c) = self.cur().filter(|c| !matches!(c, b':' | b')')) {
            dangling = c == b'-';
            if dangling {
                if negate {
                    return Err(FLAG_REPEATED_NEGATION);
                }
                negate = true;
            } else {
                let bit = match c {
                    b'i' => I,
                    b'm' => M,
                    b's' => S,
                    b'R' => R,
                    b'x' => X,
                    b'U' => 32,
                    b'u' => 64,
                    _ => return Err(FLAG_UNRECOGNIZED),
                };
                if negate {
                    flags &= !bit;
                } else {
                    flags |= bit;
                }
                if seen & bit != 0 {
                    return Err(FLAG_DUPLICATE);
                }
                seen |= bit;
            }
            if !self.bump() {
                return Err(FLAG_UNEXPECTED_EOF);
            }
        }
        if dangling {
            return Err(FLAG_DANGLING_NEGATION);
        }
        Ok(flags)
    }

    /// `[…]`.
    #[inline(never)]
    fn class(&mut self) -> Result<Node, &'static str> {
        let mut s = [0; 8];
        if !self.bsp() {
            return Err(CLASS_UNCLOSED);
        }
        let negated = self.is(b'^');
        if negated && !self.bsp() {
            return Err(CLASS_UNCLOSED_AFTER_NEGATION);
        }
        let mut empty = true;
        while self.is(b'-') {
            add(&mut s, u32::from(b'-'));
            empty = false;
            if !self.bsp() {
                return Err(CLASS_UNCLOSED_AFTER_DASH);
            }
        }
        if empty && self.is(b']') {
            add(&mut s, u32::from(b']'));
            if !self.bsp() {
                return Err(CLASS_UNCLOSED_AFTER_CLOSING);
            }
        }
        loop {
            self.space();
            let Some(c) = self.cur() else {
                return Err(CLASS_UNCLOSED);
            };
            let twice = self.peek() == Some(c);
            match c {
                b'[' => {
                    let p = self.posix_class().ok_or(CLASS_NEST_UNSUPPORTED)?;
                    union(&mut s, &p);
                }
                b']' => {
                    self.bump();
                    if self.flags & I != 0 {
                        fold(&mut s);
                    }
                    if negated {
                        negate(&mut s);
                    }
                    return Ok(Self::class_node(s));
                }
                b'&' if twice => return Err(CLASS_INTERSECTION_UNSUPPORTED),
                b'-' if twice => return Err(CLASS_DIFFERENCE_UNSUPPORTED),
                b'~' if twice => return Err(CLASS_SYMDIFFERENCE_UNSUPPORTED),
                _ => self.class_range(&mut s)?,
            }
        }
    }

    /// One item of a class: a character, a range, or an escaped class.
    #[inline(never)]
    fn class_range(&mut self, s: &mut Set) -> Result<(), &'static str> {
        let first = self.class_item()?;
        self.space();
        if self.done() {
            return Err(CLASS_UNCLOSED_AFTER_ITEM);
        }
        let next = self.peek_space();
        if !self.is(b'-') || next == Some(b']') || next == Some(b'-') {
            match first.k {
                Kind::Char(c) => add(s, c),
                Kind::Class(t) => union(s, &t),
                _ => return Err(CLASS_INVALID_ITEM),
            }
            return Ok(());
        }
        if !self.bsp() {
            return Err(CLASS_UNCLOSED_AFTER_DASH);
        }
        let last = self.class_item()?;
        let (Kind::Char(lo), Kind::Char(hi)) = (first.k, last.k) else {
            return Err(CLASS_INVALID_RANGE_ITEM);
        };
        if lo > hi {
            return Err(CLASS_INVALID_RANGE);
        }
        add_range(s, lo, hi);
        Ok(())
    }

    fn class_item(&mut self) -> Result<Node, &'static str> {
        let c = self.cur().unwrap_or_default();
        self.bump();
        if c == b'\\' {
            return self.escape();
        }
        Ok(leaf(Kind::Char(u32::from(c))))
    }

    /// `[:name:]` or `[:^name:]` inside a class; `None` if it is not one.
    fn posix_class(&mut self) -> Option<Set> {
        if !self.bump() || !self.is(b':') || !self.bump() {
            return None;
        }
        let negated = self.is(b'^');
        if negated && !self.bump() {
            return None;
        }
        let start = self.pos;
        while !self.is(b':') && self.bump() {}
        let name = self.p.get(start..self.pos)?;
        if self.done() || !self.bump_if(b":]") {
            return None;
        }
        let mut s = posix(name)?;
        if negated {
            negate(&mut s);
        }
        Some(s)
    }
}
