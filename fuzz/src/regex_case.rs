//! The grammar of `regex_parity`: a pattern made of pieces of regex syntax
//! and raw bytes, values made from the pattern's own bytes and arbitrary
//! ones, and the reference (regex-lite configured as the filter configured
//! it before its own engine replaced it).

use arbitrary::Arbitrary;
use canary_router::schema::limits;
use filter_runtime::regex::{Options, Regex};

/// regex-lite's message for a program over the size limit, the one
/// message whose boundary differs (each engine measures its own program).
pub const SIZE_LIMIT: &str = "compiled regex exceeded size limit";

/// The longest value tried: the largest program (2,044 instructions) on a
/// value this long stays under the engine's step budget
/// (`limits::MAX_REGEX_STEPS`), past which a match stops and does not
/// match, where regex-lite would go on (the parity contract's one exception
/// for matches, checked by the engine's own tests).
pub const MAX_VALUE: usize = 64;

/// Pieces of syntax, each as often as a raw byte.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "(?:",
    "(?i)",
    "(?-i)",
    "(?s)",
    "(?m)",
    "(?U)",
    "(?x)",
    "(?P<n>",
    "(?<n>",
    "(?i:",
    "*",
    "+",
    "?",
    "*?",
    "+?",
    "??",
    "{2}",
    "{1,3}",
    "{0,}",
    "{,2}",
    "{3,1}",
    "{",
    "}",
    ",",
    "[",
    "]",
    "[^",
    "[a-z]",
    "[[:alpha:]]",
    "[[:^digit:]]",
    "[:word:]",
    "-",
    "&&",
    "~~",
    "--",
    "^",
    "$",
    ".",
    "|",
    "\\",
    "\\b",
    "\\B",
    "\\A",
    "\\z",
    "\\d",
    "\\D",
    "\\w",
    "\\W",
    "\\s",
    "\\S",
    "\\x41",
    "\\x{62}",
    "\\x{}",
    "\\u0041",
    "\\n",
    "\\t",
    "\\.",
    "\\-",
    "\\<",
    "\\>",
    "\\b{start}",
    "\\b{end}",
    "\\p{L}",
    "\\1",
    "a",
    "b",
    "A",
    "_",
    "0",
    "9",
    " ",
    "\n",
    "\r",
    "é",
    "\u{80}",
    "\u{ff}",
];

/// One piece of a pattern.
#[derive(Arbitrary, Debug)]
pub enum Piece {
    /// A piece of syntax from `TOKENS`.
    Token(u8),
    /// A byte, taken as the character of that number.
    Byte(u8),
}

/// One case: a pattern, its flag and values.
#[derive(Arbitrary, Debug)]
pub struct RegexCase {
    /// `ignoreCase`-style matching (regex-lite's `case_insensitive`).
    pub ignore_case: bool,
    /// The pattern's pieces.
    pub pieces: Vec<Piece>,
    /// Values to match, beyond those made from the pattern.
    pub values: Vec<Vec<u8>>,
    /// How the pattern's own bytes are turned into values.
    pub shuffle: Vec<u8>,
}

impl RegexCase {
    /// The pattern's bytes (each byte one character, as the filter reads it).
    pub fn pattern(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Token(t) => {
                    let s = TOKENS[usize::from(*t) % TOKENS.len()];
                    // A token's characters as bytes of their own (é is 0xe9).
                    out.extend(
                        s.chars()
                            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
                    );
                }
                Piece::Byte(b) => out.push(*b),
            }
        }
        out
    }

    /// The values to try: the empty one, the given ones, the pattern's
    /// literal characters, and runs of them picked by `shuffle`; each cut
    /// to `MAX_VALUE` bytes.
    pub fn values(&self, pattern: &[u8]) -> Vec<Vec<u8>> {
        let literal: Vec<u8> = pattern
            .iter()
            .copied()
            .filter(|b| !b"()[]{}*+?|\\^$.".contains(b))
            .collect();
        let mut out = vec![Vec::new(), literal.clone(), pattern.to_vec()];
        out.extend(self.values.iter().take(16).cloned());
        if !literal.is_empty() {
            let picked: Vec<u8> = self
                .shuffle
                .iter()
                .map(|i| literal[usize::from(*i) % literal.len()])
                .collect();
            out.push(picked);
        }
        // Each value as is and case-swapped.
        let swapped: Vec<Vec<u8>> = out
            .iter()
            .map(|v| {
                v.iter()
                    .map(|b| {
                        if b.is_ascii_alphabetic() {
                            b ^ 0x20
                        } else {
                            *b
                        }
                    })
                    .collect()
            })
            .collect();
        out.extend(swapped);
        for v in &mut out {
            v.truncate(MAX_VALUE);
        }
        out
    }
}

/// Bytes as the characters of those numbers.
pub fn latin1(b: &[u8]) -> String {
    b.iter().map(|&b| char::from(b)).collect()
}

/// The engine as the filter configures it (`matcher.rs`); an error is
/// regex-lite's message.
pub fn ours(pattern: &[u8], ignore_case: bool) -> Result<Regex, &'static str> {
    let options = Options {
        case_insensitive: ignore_case,
        nest_limit: limits::MAX_REGEX_NESTING,
        size_limit: limits::MAX_REGEX_PROGRAM_BYTES,
        step_limit: limits::MAX_REGEX_STEPS,
    };
    Regex::new(pattern, &options).map_err(|e| e.message())
}

/// regex-lite as the filter configured it: `\A(?:pattern)\z`, the size
/// and nesting limits, an error's last line.
pub fn reference(pattern: &[u8], ignore_case: bool) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(&format!(r"\A(?:{})\z", latin1(pattern)))
        .case_insensitive(ignore_case)
        .size_limit(limits::MAX_REGEX_PROGRAM_BYTES)
        .nest_limit(limits::MAX_REGEX_NESTING)
        .build()
        .map_err(|e| {
            let s = e.to_string();
            s.lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or(&s)
                .trim()
                .to_string()
        })
}
