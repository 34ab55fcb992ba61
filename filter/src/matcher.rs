//! Compiled string matchers: Istio's `StringMatch` (`exact`, `prefix`,
//! `regex`, or `{}` for "present").

use regex_lite::{Regex, RegexBuilder};

use crate::config::StringMatch;
use crate::error::Reason;
use crate::limits;

/// A compiled `StringMatch`. Regexes are anchored: they must match the whole
/// value, as in Istio and Envoy.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// `{}`: the value is present (any value, including empty).
    Present,
    /// The whole value equals these bytes.
    Exact(Box<[u8]>),
    /// The value starts with these bytes.
    Prefix(Box<[u8]>),
    /// Like `Exact`, ASCII case-insensitive (`ignoreUriCase`); stored lower-case.
    ExactNoCase(Box<[u8]>),
    /// Like `Prefix`, ASCII case-insensitive; stored lower-case.
    PrefixNoCase(Box<[u8]>),
    /// The whole value (as UTF-8, at most `MAX_REGEX_INPUT_BYTES`) matches the regex.
    Regex(Regex),
}

/// Whether a `StringMatch` may be empty (`{}`), meaning "present".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `{}` means "present" (headers, query parameters).
    Allowed,
    /// `{}` is an error (uri, method, scheme, authority).
    Forbidden,
}

impl StringMatcher {
    /// Compiles a `StringMatch`.
    pub fn compile(
        m: &StringMatch,
        presence: Presence,
        ignore_case: bool,
    ) -> Result<Self, (&'static str, Reason)> {
        let kinds = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()];
        match kinds.iter().filter(|k| **k).count() {
            0 if presence == Presence::Allowed => return Ok(StringMatcher::Present),
            0 => return Err(("", Reason::NoMatchKind)),
            1 => {}
            _ => return Err(("", Reason::MoreThanOneMatchKind)),
        }
        if let Some(exact) = &m.exact {
            return Ok(if ignore_case {
                StringMatcher::ExactNoCase(exact.to_ascii_lowercase().into_bytes().into())
            } else {
                StringMatcher::Exact(exact.as_bytes().into())
            });
        }
        if let Some(prefix) = &m.prefix {
            return Ok(if ignore_case {
                StringMatcher::PrefixNoCase(prefix.to_ascii_lowercase().into_bytes().into())
            } else {
                StringMatcher::Prefix(prefix.as_bytes().into())
            });
        }
        let pattern = m.regex.as_deref().unwrap_or_default();
        compile_regex(pattern, ignore_case)
            .map(StringMatcher::Regex)
            .map_err(|r| ("regex", r))
    }

    /// Whether `value` matches.
    #[inline]
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatcher::Present => true,
            StringMatcher::Exact(e) => value == &e[..],
            StringMatcher::Prefix(p) => value.starts_with(p),
            StringMatcher::ExactNoCase(e) => value.eq_ignore_ascii_case(e),
            StringMatcher::PrefixNoCase(p) => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            StringMatcher::Regex(re) => {
                value.len() <= limits::MAX_REGEX_INPUT_BYTES
                    && std::str::from_utf8(value).is_ok_and(|s| re.is_match(s))
            }
        }
    }
}

/// Compiles an anchored regex within the documented limits.
pub fn compile_regex(pattern: &str, ignore_case: bool) -> Result<Regex, Reason> {
    if pattern.len() > limits::MAX_REGEX_LEN {
        return Err(Reason::TooMany {
            what: "bytes in a regex",
            limit: limits::MAX_REGEX_LEN,
        });
    }
    RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .case_insensitive(ignore_case)
        .size_limit(limits::MAX_REGEX_PROGRAM_BYTES)
        .nest_limit(limits::MAX_REGEX_NESTING)
        .build()
        .map_err(|e| Reason::BadRegex(first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(str::to_string),
            prefix: prefix.map(str::to_string),
            regex: regex.map(str::to_string),
        }
    }

    fn compile(m: StringMatch, ic: bool) -> StringMatcher {
        StringMatcher::compile(&m, Presence::Allowed, ic).unwrap()
    }

    #[test]
    fn exact_prefix_regex_present() {
        let exact = compile(sm(Some("canary-tester"), None, None), false);
        assert!(exact.matches(b"canary-tester"));
        assert!(!exact.matches(b"canary-tester2"));
        assert!(!exact.matches(b"Canary-tester"));
        let prefix = compile(sm(None, Some("/api"), None), false);
        assert!(prefix.matches(b"/api/v1"));
        assert!(prefix.matches(b"/api"));
        assert!(!prefix.matches(b"/ap"));
        let present = compile(sm(None, None, None), false);
        assert!(present.matches(b""));
        assert!(present.matches(b"anything"));
    }

    #[test]
    fn regex_must_match_the_whole_value() {
        let re = compile(sm(None, None, Some("v[0-9]+")), false);
        assert!(re.matches(b"v12"));
        assert!(
            !re.matches(b"xv12"),
            "a regex matches the whole value, not a part"
        );
        assert!(!re.matches(b"v12x"));
        let alt = compile(sm(None, None, Some("a|b")), false);
        assert!(alt.matches(b"a") && alt.matches(b"b"));
        assert!(
            !alt.matches(b"ab"),
            "alternation is grouped inside the anchors"
        );
        assert!(
            !re.matches(&[0xff, 0xfe]),
            "non-UTF-8 never matches a regex"
        );
    }

    #[test]
    fn ignore_case() {
        let exact = compile(sm(Some("/Login"), None, None), true);
        assert!(exact.matches(b"/LOGIN") && exact.matches(b"/login"));
        let prefix = compile(sm(None, Some("/API"), None), true);
        assert!(prefix.matches(b"/api/x") && !prefix.matches(b"/ap"));
        let re = compile(sm(None, None, Some("/users/[a-z]+")), true);
        assert!(re.matches(b"/USERS/Bob"));
    }

    #[test]
    fn errors() {
        let two = StringMatcher::compile(&sm(Some("a"), Some("b"), None), Presence::Allowed, false);
        assert_eq!(two.unwrap_err().1, Reason::MoreThanOneMatchKind);
        let none = StringMatcher::compile(&sm(None, None, None), Presence::Forbidden, false);
        assert_eq!(none.unwrap_err().1, Reason::NoMatchKind);
        let bad = StringMatcher::compile(&sm(None, None, Some("(")), Presence::Allowed, false);
        let (field, reason) = bad.unwrap_err();
        assert_eq!(field, "regex");
        assert!(matches!(reason, Reason::BadRegex(_)), "{reason:?}");
        let long = "a".repeat(limits::MAX_REGEX_LEN + 1);
        let too_long =
            StringMatcher::compile(&sm(None, None, Some(&long)), Presence::Allowed, false);
        assert!(matches!(too_long.unwrap_err().1, Reason::TooMany { .. }));
        let huge = compile_regex("(a{1000}){1000}", false);
        assert!(matches!(huge, Err(Reason::BadRegex(_))), "{huge:?}");
    }
}
