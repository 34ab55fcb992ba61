//! The engine against regex-lite 0.1.9, configured as the filter's
//! `matcher.rs` configured it before the engine replaced it: each pattern
//! and value byte the character of that number, `\A(?:pattern)\z`,
//! `case_insensitive`, the filter's size and nesting limits, and an error's
//! message as `first_line(e.to_string())` gave it. Both must accept and refuse the same
//! patterns with the same message, and match the same values.
//!
//! Left out of the exact comparison: the size limit's boundary. Both refuse
//! a program over 64 KiB, each by its own measure (regex-lite's is the heap
//! of its NFA on the machine that runs it: 32 bytes a state on 64 bits, 20
//! on wasm32), so a pattern near the bound may compile with one and not the
//! other; such a case only counts as skipped, and the skips must stay few.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Options, Regex};

/// The filter's limits (`canary_router::schema::limits`), which the cases below
/// are shaped around.
const SIZE_LIMIT: usize = 64 * 1024;
const NEST_LIMIT: u32 = 32;
/// The longest pattern and value the filter lets through.
const MAX_PATTERN: usize = 1024;
const MAX_VALUE: usize = 4096;
/// The most instruction visits of one match (`limits::MAX_REGEX_STEPS`).
const STEP_LIMIT: usize = 1 << 18;

/// Compiles as the filter does.
fn ours(pattern: &[u8], ignore_case: bool) -> Result<Regex, &'static str> {
    let options = Options {
        case_insensitive: ignore_case,
        nest_limit: NEST_LIMIT,
        size_limit: SIZE_LIMIT,
        step_limit: STEP_LIMIT,
    };
    Regex::new(pattern, &options).map_err(|e| e.message())
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&b| char::from(b)).collect()
}

fn reference(pattern: &[u8], ignore_case: bool) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(&format!(r"\A(?:{})\z", latin1(pattern)))
        .case_insensitive(ignore_case)
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
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

#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    errors: usize,
    matches: usize,
    skipped: usize,
}

/// Compares one pattern and its values; panics with the case on a difference.
fn compare(pattern: &[u8], ignore_case: bool, values: &[&[u8]], t: &mut Tally) {
    let ours = ours(pattern, ignore_case);
    let theirs = reference(pattern, ignore_case);
    let size = super::err::SIZE_LIMIT;
    match (&ours, &theirs) {
        (Err(a), Err(b)) if *a == size || b == size => {
            t.skipped += usize::from(a != b);
            t.compared += usize::from(a == b);
            return;
        }
        (Err(e), Ok(_)) if *e == size => {
            t.skipped += 1;
            return;
        }
        (Ok(_), Err(e)) if e == size => {
            t.skipped += 1;
            return;
        }
        _ => {}
    }
    t.compared += 1;
    match (ours, theirs) {
        (Err(a), Err(b)) => {
            assert_eq!(
                a,
                b,
                "error for {:?} (ignore_case {ignore_case})",
                latin1(pattern)
            );
            t.errors += 1;
        }
        (Ok(a), Ok(b)) => {
            for v in values {
                let want = b.is_match(&latin1(v));
                assert_eq!(
                    a.is_match(v),
                    want,
                    "{:?} (ignore_case {ignore_case}) on {:?}",
                    latin1(pattern),
                    latin1(v)
                );
                t.matches += usize::from(want);
            }
        }
        (a, b) => panic!(
            "{:?} (ignore_case {ignore_case}): ours {:?}, regex-lite {:?}",
            latin1(pattern),
            a.err(),
            b.err()
        ),
    }
}

const VALUES: &[&[u8]] = &[
    b"",
    b"a",
    b"A",
    b"b",
    b"ab",
    b"aB",
    b"abc",
    b"aaa",
    b"z",
    b"Z",
    b"_",
    b"0",
    b"9",
    b"12",
    b" ",
    b"-",
    b"a b",
    b"a-b",
    b"\n",
    b"\r",
    b"\r\n",
    b"a\nb",
    b"a\r\nb",
    b"\na",
    b"a\n",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xe9",
    b"\xff",
    b"\xc3\xa9",
    b"\xe6\x97\xa5",
    b"a\xe9",
    b"[",
    b"]",
    b"^",
    b"$",
    b".",
    b"\\",
    b"{",
    b"}",
    b"(",
    b")",
    b"|",
    b"#",
    b"&",
    b"~",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"\x07",
    b"foo",
    b"FOO",
    b"foo bar",
    b"v12",
    b"/api/v1",
    b"Ab_9",
    b"\x85",
    b"\xa0",
    b"xyz",
    b"XYZ",
];

/// Patterns covering every construct and every error regex-lite reports.
const PATTERNS: &[&[u8]] = &[
    // Literals, escapes.
    b"a",
    b"abc",
    b"\\t\\n\\r\\f\\v\\a",
    b"\\x7F",
    b"\\x7f",
    b"\\x{e9}",
    b"\\x{E9}",
    b"\\x{100}",
    b"\\x{10FFFF}",
    b"\\x{110000}",
    b"\\x{D800}",
    b"\\x{000000041}",
    b"\\x{}",
    b"\\x{4",
    b"\\x{g}",
    b"\\x",
    b"\\x4",
    b"\\x4g",
    b"\\xg",
    b"\\u0041",
    b"\\u00e9",
    b"\\uD800",
    b"\\u{41}",
    b"\\U00000041",
    b"\\U00110000",
    b"\\U0001F600",
    b"\\u004",
    b"\\.",
    b"\\*",
    b"\\\\",
    b"\\-",
    b"\\#",
    b"\\&",
    b"\\~",
    b"\\%",
    b"\\ ",
    b"\\\n",
    b"\\<",
    b"\\>",
    b"\\e",
    b"\\y",
    b"\\\xe9",
    b"\\",
    b"a\\",
    b"\\1",
    b"\\0",
    b"\\p{L}",
    b"\\pL",
    b"\\P{L}",
    b"\\d",
    b"\\D",
    b"\\s",
    b"\\S",
    b"\\w",
    b"\\W",
    b"\\d+",
    b"\\w*",
    // Assertions.
    b"\\A",
    b"\\z",
    b"\\Aa\\z",
    b"\\b",
    b"\\B",
    b"a\\b",
    b"\\ba\\b",
    b"a\\Bb",
    b"\\<a",
    b"a\\>",
    b"\\b{start}a",
    b"a\\b{end}",
    b"\\b{start-half}a",
    b"a\\b{end-half}",
    b"\\b{foo}",
    b"\\b{start",
    b"\\b{",
    b"\\b{5}",
    b"a\\b{2}",
    b"\\b{ start}",
    b"(?x)\\b{ st art }a",
    b"\\b{start-half-x}",
    b"^",
    b"$",
    b"^a$",
    b"(?m)^a$",
    b"(?m)a$",
    b"(?m)^a",
    b"(?mR)^a$",
    b"(?mR)a$",
    b"(?R)^a$",
    b"(?m)a\\n^b",
    b"(?m)a$\\n",
    b"(?mR)a$\\r\\n^b",
    b"(?mR)a\\r$",
    b"(?mR)^\\na",
    b"(?m)$\\n^",
    b"(?m)(?:\\n|^)a",
    // Dot.
    b".",
    b"..",
    b".*",
    b"(?s).",
    b"(?s:.)*",
    b"(?R).",
    b"(?Rs).",
    b"(?sR).*",
    b"a.b",
    // Classes.
    b"[a]",
    b"[abc]",
    b"[a-c]",
    b"[^a]",
    b"[^a-c]",
    b"[]a]",
    b"[]]",
    b"[^]]",
    b"[-a]",
    b"[a-]",
    b"[--]",
    b"[---]",
    b"[a-c-e]",
    b"[c-a]",
    b"[a-a]",
    b"[\\d]",
    b"[^\\d]",
    b"[\\w-]",
    b"[\\w-z]",
    b"[a-\\w]",
    b"[\\x41-\\x43]",
    b"[\\x{41}-\\u0043]",
    b"[\\x{100}-\\x{200}]",
    b"[\\x{200}-\\x{100}]",
    b"[\\n-\\r]",
    b"[\\A]",
    b"[\\A-Z]",
    b"[\\b]",
    b"[\\z]",
    b"[\\p{L}]",
    b"[\\1]",
    b"[\\]]",
    b"[\\[]",
    b"[\\^a]",
    b"[a^]",
    b"[[:alpha:]]",
    b"[[:^alpha:]]",
    b"[[:digit:]a]",
    b"[[:alnum:]]",
    b"[[:ascii:]]",
    b"[[:blank:]]",
    b"[[:cntrl:]]",
    b"[[:graph:]]",
    b"[[:lower:]]",
    b"[[:print:]]",
    b"[[:punct:]]",
    b"[[:space:]]",
    b"[[:upper:]]",
    b"[[:word:]]",
    b"[[:xdigit:]]",
    b"[[:foo:]]",
    b"[[:alpha]]",
    b"[[:alpha:]",
    b"[[:",
    b"[[:]]",
    b"[[::]]",
    b"[[a]]",
    b"[a[]",
    b"[[]",
    b"[:alpha:]",
    b"[a&&b]",
    b"[a&b]",
    b"[a--b]",
    b"[a-b--c]",
    b"[a~~b]",
    b"[a~b]",
    b"[&&]",
    b"[~~]",
    b"[",
    b"[a",
    b"[^",
    b"[-",
    b"[]",
    b"[^]",
    b"[a-",
    b"[a-b",
    b"[\\",
    b"[\xe9]",
    b"[\xe0-\xff]",
    b"[^\xe9]",
    b"[\\x00-\\x{10FFFF}]",
    b"[^\\x00-\\x{10FFFF}]",
    b"[^\\x00-\\xff]a?",
    b"[a-z&&[^aeiou]]",
    b"(?x)[ a - c ]",
    b"(?x)[a -]",
    b"(?x)[a - ]",
    b"(?x)[a -#\n]",
    b"(?x)[a-# c\nz]",
    b"(?x)[a-#",
    b"(?x)[ ^ a]",
    b"(?x)[ ]",
    b"(?x)[ ] ]",
    b"(?x)[ - ]",
    b"(?x)[\\ ]",
    // Case folding.
    b"(?i)a",
    b"(?i)A",
    b"(?i)[a-c]",
    b"(?i)[X-c]",
    b"(?i)[X-Z\\[-`a-c]",
    b"(?i)[Z-a]",
    b"(?i)[^a]",
    b"(?i)[^X-c]",
    b"(?i)\\x61",
    b"(?i)[\\x61]",
    b"(?i)[\\x61-z]",
    b"(?i)[a-\\x7a]",
    b"(?i)\xe9",
    b"(?i)[\xc0-\xff]",
    b"(?i)\\w",
    b"(?i)\\W",
    b"(?i)[\\W]",
    b"(?i)[^\\W]",
    b"(?i)[[:upper:]]",
    b"(?i)[[:^lower:]]",
    b"(?i)foo",
    b"(?i:f)oo",
    b"f(?i)oo",
    b"(?i)f(?-i)oo",
    b"(?i)[A-z]",
    b"(?i)[@-`]",
    // Flags.
    b"(?i)",
    b"(?)",
    b"(?i",
    b"(?",
    b"(?-)",
    b"(?i-)",
    b"(?--i)",
    b"(?i-i)",
    b"(?ii)",
    b"(?i-m-s)",
    b"(?q)",
    b"(?u)a",
    b"(?uu)",
    b"(?U)a*",
    b"(?x)a b",
    b"(?x)a#comment\nb",
    b"(?x)a # c",
    b"(?x)#",
    b"(?x) a \\  b",
    b"(?x)a{ 2 }",
    b"(?x)\\x4 1",
    b"(?x)\\x{ 4 1 }",
    b"(?x)a\xa0b",
    b"(?x)a\x85b",
    b"(?x)( ?i)a",
    b"(?x)(?i )a",
    b"(?imsUxR)",
    b"(?-imsUxR)",
    b"(?i:)",
    b"(?:)",
    b"(?i:a",
    b"(?x:a b)c d",
    b"(? i)",
    b"(?i:a)b",
    b"(?i)(?-i:A)",
    b"(?s-s:.)",
    b"(?m:$)",
    b"(?R:^)",
    b"(?U:a+?)",
    // Groups.
    b"()",
    b"(a)",
    b"((a))",
    b"(a",
    b"a)",
    b")",
    b"(",
    b"(()",
    b"())",
    b"a)(b",
    b"a)|(b",
    b")(",
    b"(?:a",
    b"(?P<n>a)",
    b"(?<n>a)",
    b"(?P<n>a)(?P<n>b)",
    b"(?P<n>a)(?<n>b)",
    b"(?P<>a)",
    b"(?P<",
    b"(?P<n",
    b"(?P<n>",
    b"(?P<1>a)",
    b"(?P<_1>a)",
    b"(?P<a.b[c]>a)",
    b"(?P<a-b>a)",
    b"(?P<\xe9>a)",
    b"(?P<a\xb2>a)",
    b"(?P<\xb2>a)",
    b"(?P<a b>a)",
    b"(?<a>x)(?<b>y)",
    b"(?P=n)",
    b"(?P>n)",
    b"(?=a)",
    b"(?!a)",
    b"(?<=a)",
    b"(?<!a)",
    b"(?<",
    b"(?P",
    b"(?Pn)",
    b"(?#c)",
    // Repetition.
    b"a*",
    b"a+",
    b"a?",
    b"a*?",
    b"a+?",
    b"a??",
    b"a**",
    b"a*+",
    b"a{2}",
    b"a{2,}",
    b"a{2,3}",
    b"a{2,3}?",
    b"a{0}",
    b"a{0,0}",
    b"a{1}",
    b"a{1,1}",
    b"a{0,1}",
    b"a{3,2}",
    b"a{,2}",
    b"a{",
    b"a{2",
    b"a{2,",
    b"a{2,3",
    b"a{x}",
    b"a{2x}",
    b"a{ 2}",
    b"a{2 }",
    b"a{2 ,3}",
    b"a{2, 3}",
    b"a{2, }",
    b"a{2,3 }",
    b"a{4294967295}",
    b"a{4294967296}",
    b"a{99999999999999999999}",
    b"a{0,4294967295}",
    b"*",
    b"+",
    b"?",
    b"{2}",
    b"a|*",
    b"(*)",
    b"(?i)*",
    b"^*",
    b"\\b+",
    b"(?:)*",
    b"(?:)+",
    b"(a*)*",
    b"(a*)+",
    b"(a|)+",
    b"(|a)*",
    b"(?:a*)*b",
    b"a{2}{3}",
    b"(a{2}){3}",
    b"x{2}y{0}",
    b"(a){0}b",
    b"a{1000}",
    b"(?:a|b){5,10}",
    b"a{1}{1}{1}",
    // Alternation.
    b"a|b",
    b"|",
    b"a|",
    b"|a",
    b"a||b",
    b"(a|b)c",
    b"(|)",
    b"a|b|c",
    b"ab|cd",
    b"(?:a|ab)(?:c|bcd)",
    // Values of the fields.
    b"v[0-9]+",
    b"/api/.*",
    b"GET|PUT",
    b"user-[0-9]{2}",
    b"(?i)/Login",
    b"e.*",
    b"\xe6\x97\xa5...",
    b"\xc3\xbc",
    b"(\\.service=(.*?);)",
    b"[^/]+/[^/]+",
    b"\xe9*",
];

/// Values for a pattern: the fixed ones, and each pattern's own bytes.
fn values_for(pattern: &[u8]) -> Vec<&[u8]> {
    let mut v = VALUES.to_vec();
    v.push(pattern);
    v
}

#[test]
fn fixed_table_is_regex_lites() {
    let mut t = Tally::default();
    for p in PATTERNS {
        for ic in [false, true] {
            compare(p, ic, &values_for(p), &mut t);
        }
    }
    assert_eq!(t.skipped, 0, "{t:?}");
    assert!(t.errors > 150 && t.matches > 500, "{t:?}");
}

/// Every byte as a name character, an `x`-mode space, an escape, a literal,
/// a class member and a flag.
#[test]
fn every_byte_is_regex_lites() {
    let mut t = Tally::default();
    for b in 0..=255u8 {
        let one = [b];
        let values: Vec<&[u8]> = [&one[..], b"ab", b"a b", b"", b"aa", b"\\"].to_vec();
        for p in [
            &[b"(?P<", &one[..], b">a)"].concat()[..],
            &[b"(?P<a", &one[..], b">a)"].concat(),
            &[b"(?x)a", &one[..], b"b"].concat(),
            &[b"(?x)[a", &one[..], b"b]"].concat(),
            &[b"\\", &one[..]].concat(),
            &[b"[\\", &one[..], b"]"].concat(),
            &one,
            &[b"[", &one[..], b"]"].concat(),
            &[b"(?", &one[..], b")a"].concat(),
            &[b"a{", &one[..], b"}"].concat(),
            &[b"\\b{", &one[..], b"}"].concat(),
            &[b"\\x{", &one[..], b"}"].concat(),
        ] {
            for ic in [false, true] {
                compare(p, ic, &values, &mut t);
            }
        }
    }
    assert_eq!(t.skipped, 0, "{t:?}");
}

#[test]
fn nesting_is_counted_as_regex_lite_counts_it() {
    let mut t = Tally::default();
    for n in 28..36 {
        let open = "(".repeat(n);
        let close = ")".repeat(n);
        for p in [
            format!("{open}a{close}"),
            format!("{}a{}", "(?:".repeat(n), close),
            format!("a{}", "*".repeat(n)),
            format!("(a{})", "+".repeat(n)),
            format!("{}a{}", "(?:".repeat(n / 2), "){2}".repeat(n / 2)),
            format!("{}a{}", "(".repeat(n / 2), "|b)*".repeat(n / 2)),
            format!("{}ab{}", "(?:x|".repeat(n), ")".repeat(n)),
            format!("{open}a{close}("),
            format!("a{}(", "*".repeat(n)),
            format!("{}a{}", "(?i)(".repeat(n), ")".repeat(n)),
            format!("{}a{}", "[a](".repeat(n), ")".repeat(n)),
        ] {
            compare(
                p.as_bytes(),
                false,
                &[b"a", b"aa", b"ab", b"b", b""],
                &mut t,
            );
        }
    }
    assert_eq!(t.skipped, 0, "{t:?}");
    // Deep, long patterns do not overflow the stack.
    for deep in [
        format!("a{}", "*".repeat(1023)),
        "(".repeat(1024),
        "(?:".repeat(341),
        "[a](".repeat(256),
    ] {
        compare(deep.as_bytes(), false, &[b"a"], &mut t);
        assert!(ours(deep.as_bytes(), false).is_err());
    }
}

#[test]
fn the_size_limit() {
    let literal = "a".repeat(MAX_PATTERN);
    let re = ours(literal.as_bytes(), false).unwrap();
    assert!(re.is_match(literal.as_bytes()) && !re.is_match(b"a"));
    for ok in [
        "\\w{1000}",
        "[a-z]{1,500}",
        "(?:[0-9]{1,3}\\.){3}[0-9]{1,3}",
        "\\d{4}-\\d{2}-\\d{2}",
        "(a{10}){100}",
    ] {
        assert!(ours(ok.as_bytes(), false).is_ok(), "{ok}");
    }
    for big in [
        "(a{1000}){1000}",
        "a{4294967295}",
        "(?:){4294967295}",
        "a{0,4294967295}",
        "\\b{100000}",
        "(?:a{0}){100000}",
    ] {
        assert_eq!(
            ours(big.as_bytes(), false).err(),
            Some(super::err::SIZE_LIMIT),
            "{big}"
        );
        assert_eq!(
            reference(big.as_bytes(), false).err().as_deref(),
            Some(super::err::SIZE_LIMIT),
            "{big}"
        );
    }
}

/// A small seeded PRNG (xorshift64*), for repeatable random cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
        from.get(self.below(from.len()))
            .copied()
            .unwrap_or_default()
    }
}

const ATOMS: &[&[u8]] = &[
    b"a",
    b"b",
    b"A",
    b"Z",
    b"_",
    b"0",
    b" ",
    b"\xe9",
    b"\xff",
    b"-",
    b".",
    b"^",
    b"$",
    b"\\d",
    b"\\w",
    b"\\s",
    b"\\D",
    b"\\W",
    b"\\S",
    b"\\b",
    b"\\B",
    b"\\A",
    b"\\z",
    b"\\<",
    b"\\>",
    b"\\b{start}",
    b"\\b{end}",
    b"\\b{start-half}",
    b"\\b{end-half}",
    b"\\n",
    b"\\r",
    b"\\t",
    b"\\x41",
    b"\\x{e9}",
    b"\\u0061",
    b"\\.",
    b"\\-",
    b"\\ ",
    b"\\#",
    b"#",
    b"\n",
    b"\r",
    b"[a-c]",
    b"[^a]",
    b"[[:alpha:]]",
    b"[[:^digit:]_]",
    b"[\\w-]",
    b"[]a]",
    b"[-z]",
    b"[\\x00-\\x7f]",
    b"[^\\n]",
    b"[A-z]",
    b"[X-c]",
    b"(?i)",
    b"(?-i)",
    b"(?s)",
    b"(?m)",
    b"(?R)",
    b"(?x)",
    b"(?U)",
    b"(?mR)",
    b"(?-x)",
    b"&",
    b"~",
];
const NOISE: &[&[u8]] = &[
    b"(",
    b")",
    b"[",
    b"]",
    b"{",
    b"}",
    b"|",
    b"*",
    b"+",
    b"?",
    b"\\",
    b"{2",
    b"{,1}",
    b"(?",
    b"(?P<",
    b"(?=",
    b"\\p{L}",
    b"\\1",
    b"\\e",
    b"[[:foo:]]",
    b"[a&&b]",
    b"[a--b]",
    b"[z-a]",
    b"(?ii)",
    b"(?-)",
    b"\\x{}",
    b"\\xg",
    b"\\b{x}",
    b"{3,1}",
    b"[\\b]",
    b"[\\d-z]",
    b"(?P<n>",
    b")(",
    b"\\",
    b"[[",
];
const QUANTS: &[&[u8]] = &[
    b"*", b"+", b"?", b"*?", b"+?", b"??", b"{2}", b"{0}", b"{1}", b"{0,2}", b"{1,3}", b"{2,}",
    b"{,2}", b"{ 1 }", b"{3,1}", b"{0,1}?",
];
const GROUPS: &[&[u8]] = &[
    b"(", b"(?:", b"(?i:", b"(?-i:", b"(?s:", b"(?x:", b"(?P<g>", b"(?<h>", b"(?m:",
];
const VALUE_BYTES: &[u8] = b"aabbAZ_0  -.\n\r\xe9\xff#&~\t";

fn gen(r: &mut Rng, depth: u32, out: &mut Vec<u8>) {
    let items = r.below(5);
    for _ in 0..items {
        match r.below(20) {
            0..=8 => out.extend_from_slice(r.pick(ATOMS)),
            9..=10 if depth < 4 => {
                out.extend_from_slice(r.pick(GROUPS));
                gen(r, depth + 1, out);
                if r.below(12) != 0 {
                    out.push(b')');
                }
            }
            11 => out.push(b'|'),
            12 => out.extend_from_slice(r.pick(NOISE)),
            13 => {
                // A class of random items.
                out.push(b'[');
                if r.below(3) == 0 {
                    out.push(b'^');
                }
                for _ in 0..r.below(4) {
                    out.extend_from_slice(r.pick(&[
                        b"a",
                        b"-",
                        b"z",
                        b"\\w",
                        b"]",
                        b"[:alpha:]",
                        b"\xe9",
                        b" ",
                        b"\\x{41}",
                        b"#",
                    ]));
                }
                if r.below(10) != 0 {
                    out.push(b']');
                }
            }
            _ => {
                out.extend_from_slice(r.pick(ATOMS));
                out.extend_from_slice(r.pick(QUANTS));
            }
        }
    }
}

#[test]
fn random_patterns_are_regex_lites() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t = Tally::default();
    for _ in 0..6000 {
        let mut p = Vec::new();
        gen(&mut r, 0, &mut p);
        let mut values: Vec<Vec<u8>> = (0..12)
            .map(|_| {
                (0..r.below(7))
                    .map(|_| VALUE_BYTES[r.below(VALUE_BYTES.len())])
                    .collect()
            })
            .collect();
        // The pattern's own literal bytes, often a match.
        values.push(
            p.iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric())
                .collect(),
        );
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        compare(&p, r.below(4) == 0, &values, &mut t);
    }
    eprintln!("{t:?}");
    assert!(
        t.skipped < 10 && t.errors > 500 && t.matches > 2000,
        "{t:?}"
    );
}

#[test]
fn a_busy_scratch_is_not_shared() {
    let re = ours(b"a+b", false).unwrap();
    fn sync<T: Send + Sync>(_: &T) {}
    sync(&re);
    re.busy.store(true, core::sync::atomic::Ordering::Relaxed);
    assert!(re.is_match(b"aab") && !re.is_match(b"aa"));
    re.busy.store(false, core::sync::atomic::Ordering::Relaxed);
    assert!(re.is_match(b"ab") && !re.clone().is_match(b"b"));
}

/// A match stops after `STEP_LIMIT` visits and does not
/// match (`(?:.*a){300}x` would, on 4,095 `a` and an `x`, after 4.9 million
/// visits), while ordinary patterns finish the longest value the filter
/// hands the engine. The cost that buys, in the `.wasm`, is asserted by
/// `test-harness/wasm-host/tests/host_regex_budget.rs`.
#[test]
fn a_match_stops_at_the_step_budget() {
    let mut v = vec![b'a'; MAX_VALUE];
    if let Some(last) = v.last_mut() {
        *last = b'x';
    }
    let pathological = ours(b"(?:.*a){300}x", false).unwrap();
    assert!(reference(b"(?:.*a){300}x", false)
        .unwrap()
        .is_match(&latin1(&v)));
    assert!(!pathological.is_match(&v), "over the budget: no match");
    // Under the budget, the same shape matches.
    let small = ours(b"(?:.*a){10}x", false).unwrap();
    assert!(small.is_match(&v));
    let mut ua = vec![b'x'; MAX_VALUE];
    ua[2000..2006].copy_from_slice(b"Mobile");
    for p in [
        &b".*Mobile.*"[..],
        b"(?i).*(?:android|iphone|ipad|mobile).*",
        b"[a-zA-Z]+Mobile.*",
    ] {
        let re = ours(p, false).unwrap();
        assert!(re.is_match(&ua), "{}", latin1(p));
    }
}
