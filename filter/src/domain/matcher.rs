//! Compiled string matchers: Istio's `StringMatch` (`exact`, `prefix`,
//! `regex`, or `{}` for "present").

use alloc::{boxed::Box, string::ToString};

use crate::schema::config::StringMatch;
use crate::schema::error::Reason;
use crate::schema::limits;
use filter_runtime::regex::{self, Regex};

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
    /// `pathPrefix`: the value is these bytes, or starts with them followed
    /// by `/` (Envoy's `path_separated_prefix`). Never ends with `/`.
    PathPrefix(Box<[u8]>),
    /// Like `PathPrefix`, ASCII case-insensitive; stored lower-case.
    PathPrefixNoCase(Box<[u8]>),
    /// The whole value (as UTF-8, at most `MAX_REGEX_INPUT_BYTES`) matches the regex.
    /// (Boxed: a compiled regex with its match scratch is about 70 bytes,
    /// six times any other matcher.)
    Regex(Box<Regex>),
}

/// What a `StringMatch` is matched against. It decides what `{}`, an empty
/// prefix and the regex `*` mean, as Istio's validation
/// (`validateHTTPRouteMatchRequest`) and translation
/// (`canBeConvertedToPresentMatch`) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `uri`: `{}` is an error; an empty prefix matches every path.
    Uri,
    /// `method`, `scheme`, `authority`: `{}` and an empty prefix are errors.
    Pseudo,
    /// `headers`, `queryParams`: `{}` means present; an empty prefix is an error.
    Present,
    /// `withoutHeaders`: as [`Field::Present`], and the regex `*` (not RE2:
    /// Istio's wildcard) means present too.
    Without,
}

impl StringMatcher {
    /// Compiles a `StringMatch` for `field`. `ignore_case` (`ignoreUriCase`)
    /// applies to `exact` and `prefix` only: Envoy ignores `case_sensitive`
    /// for a `safe_regex` path (`RouteMatch.case_sensitive`).
    pub fn compile(
        m: &StringMatch,
        field: Field,
        ignore_case: bool,
    ) -> Result<Self, (&'static str, Reason)> {
        let kinds = [
            m.exact.is_some(),
            m.prefix.is_some(),
            m.regex.is_some(),
            m.path_prefix.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 if matches!(field, Field::Present | Field::Without) => {
                return Ok(StringMatcher::Present)
            }
            0 => return Err(("", Reason::NoMatchKind)),
            1 => {}
            _ => return Err(("", Reason::MoreThanOneMatchKind)),
        }
        match (m.prefix.as_deref(), m.regex.as_deref()) {
            (Some(""), _) if field != Field::Uri => return Err(("prefix", Reason::EmptyString)),
            (_, Some("*")) if field == Field::Without => return Ok(StringMatcher::Present),
            (_, Some("")) => return Err(("regex", Reason::EmptyString)),
            _ => {}
        }
        if let Some(p) = &m.path_prefix {
            return path_prefix(p, field, ignore_case);
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
        compile_regex(pattern, false)
            .map(|re| StringMatcher::Regex(Box::new(re)))
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
            StringMatcher::PathPrefix(p) => {
                value.starts_with(p) && value.get(p.len()).is_none_or(|b| *b == b'/')
            }
            StringMatcher::PathPrefixNoCase(p) => {
                value
                    .get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
                    && value.get(p.len()).is_none_or(|b| *b == b'/')
            }
            StringMatcher::Regex(re) => regex_matches(re, value),
        }
    }
}

/// Compiles a `pathPrefix`: `uri` only, and a value Envoy accepts as a
/// `path_separated_prefix` (at least two bytes, no `?` or `#`, not ending
/// with `/`; `prefix: /` is the one for every path).
#[inline(never)]
fn path_prefix(
    p: &str,
    field: Field,
    ignore_case: bool,
) -> Result<StringMatcher, (&'static str, Reason)> {
    if field != Field::Uri {
        return Err(("pathPrefix", Reason::PathPrefixOutsideUri));
    }
    if p.len() < 2 || p.ends_with('/') || p.contains(['?', '#']) {
        return Err(("pathPrefix", Reason::BadPathPrefix(p.to_string())));
    }
    Ok(if ignore_case {
        StringMatcher::PathPrefixNoCase(p.to_ascii_lowercase().into_bytes().into())
    } else {
        StringMatcher::PathPrefix(p.as_bytes().into())
    })
}

/// Whether a regex compiled by [`compile_regex`] matches `value`, one byte
/// to a character: RE2 as Envoy 1.40 runs `safe_regex` on a header matches
/// bytes, not UTF-8 characters (measured side by side: `.` does not match
/// `ü`, `..` does, `.*` matches a lone `0xff`).
#[inline]
fn regex_matches(re: &Regex, value: &[u8]) -> bool {
    value.len() <= limits::MAX_REGEX_INPUT_BYTES && re.is_match(value)
}

/// Compiles an anchored regex within the documented limits. The pattern is
/// read one byte to a character too, as RE2 reads it for bytes (`日` is
/// three characters).
pub fn compile_regex(pattern: &str, ignore_case: bool) -> Result<Regex, Reason> {
    if pattern.len() > limits::MAX_REGEX_LEN {
        return Err(Reason::TooMany {
            what: "bytes in a regex",
            limit: limits::MAX_REGEX_LEN,
        });
    }
    let options = regex::Options {
        case_insensitive: ignore_case,
        nest_limit: limits::MAX_REGEX_NESTING,
        size_limit: limits::MAX_REGEX_PROGRAM_BYTES,
        step_limit: limits::MAX_REGEX_STEPS,
    };
    Regex::new(pattern.as_bytes(), &options).map_err(|e| Reason::BadRegex(e.message().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(str::to_string),
            prefix: prefix.map(str::to_string),
            regex: regex.map(str::to_string),
            path_prefix: None,
        }
    }

    fn path_prefix(p: &str) -> StringMatch {
        StringMatch {
            path_prefix: Some(p.to_string()),
            ..StringMatch::default()
        }
    }

    #[test]
    fn path_prefix_is_element_wise() {
        let uri = |p, ic| StringMatcher::compile(&path_prefix(p), Field::Uri, ic);
        let api = uri("/api", false).unwrap();
        for yes in ["/api", "/api/", "/api/x", "/api//x"] {
            assert!(api.matches(yes.as_bytes()), "{yes}");
        }
        for no in ["/apix", "/ap", "/", "", "/API", "/x/api"] {
            assert!(!api.matches(no.as_bytes()), "{no}");
        }
        let nested = uri("/api/v1", false).unwrap();
        assert!(nested.matches(b"/api/v1/x") && !nested.matches(b"/api/v10"));
        let nocase = uri("/API", true).unwrap();
        assert!(nocase.matches(b"/api") && nocase.matches(b"/Api/x"));
        assert!(!nocase.matches(b"/apix"));
        for bad in ["/", "/api/", "/a?b", "/a#b", "a", ""] {
            assert_eq!(
                uri(bad, false).unwrap_err(),
                ("pathPrefix", Reason::BadPathPrefix(bad.to_string())),
                "{bad}"
            );
        }
        for field in [Field::Present, Field::Without, Field::Pseudo] {
            let e = StringMatcher::compile(&path_prefix("/api"), field, false);
            assert_eq!(e.unwrap_err(), ("pathPrefix", Reason::PathPrefixOutsideUri));
        }
        let two = StringMatch {
            prefix: Some("/a".into()),
            ..path_prefix("/a")
        };
        let e = StringMatcher::compile(&two, Field::Uri, false);
        assert_eq!(e.unwrap_err().1, Reason::MoreThanOneMatchKind);
    }

    fn compile(m: StringMatch, ic: bool) -> StringMatcher {
        StringMatcher::compile(&m, Field::Present, ic).unwrap()
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
        assert!(!re.matches(&[0xff, 0xfe]));
    }

    #[test]
    fn regexes_match_bytes_as_envoys_re2_does() {
        let one = compile(sm(None, None, Some(".")), false);
        let two = compile(sm(None, None, Some("..")), false);
        assert!(!one.matches("ü".as_bytes()), "ü is two bytes");
        assert!(two.matches("ü".as_bytes()));
        assert!(
            one.matches(&[0xff]),
            "a byte that is not UTF-8 is a character"
        );
        let any = compile(sm(None, None, Some(".*")), false);
        assert!(any.matches(&[b'v', 0xe9, 0xff]));
        let six = compile(sm(None, None, Some("日...")), false);
        assert!(six.matches("日本".as_bytes()) && !six.matches("日".as_bytes()));
        let literal = compile(sm(None, None, Some("ü")), false);
        assert!(literal.matches("ü".as_bytes()));
        assert!(!literal.matches(b"\xfc"), "the pattern is its UTF-8 bytes");
        let long = vec![0xe9; limits::MAX_REGEX_INPUT_BYTES];
        assert!(any.matches(&long));
        assert!(!any.matches(&[long.as_slice(), b"x"].concat()));
    }

    #[test]
    fn what_regex_lite_leaves_out_of_re2() {
        // docs/rules.md says so: no Unicode classes.
        assert!(matches!(
            compile_regex(r"\p{L}", false),
            Err(Reason::BadRegex(_))
        ));
        let fold = compile(sm(None, None, Some("(?i)v1")), false);
        assert!(fold.matches(b"V1"));
    }

    #[test]
    fn what_empty_values_and_the_star_mean_per_field() {
        let compile = |m, field| StringMatcher::compile(&m, field, false);
        let star = || sm(None, None, Some("*"));
        assert!(matches!(
            compile(star(), Field::Without),
            Ok(StringMatcher::Present)
        ));
        for field in [Field::Present, Field::Pseudo, Field::Uri] {
            assert!(matches!(
                compile(star(), field),
                Err(("regex", Reason::BadRegex(_)))
            ));
        }
        for field in [Field::Present, Field::Without, Field::Pseudo] {
            let empty = compile(sm(None, Some(""), None), field);
            assert_eq!(empty.unwrap_err(), ("prefix", Reason::EmptyString));
        }
        assert!(compile(sm(None, Some(""), None), Field::Uri).is_ok_and(|m| m.matches(b"/x")));
        for field in [Field::Present, Field::Without, Field::Pseudo, Field::Uri] {
            let empty = compile(sm(None, None, Some("")), field);
            assert_eq!(empty.unwrap_err(), ("regex", Reason::EmptyString));
            let exact = compile(sm(Some(""), None, None), field);
            assert!(exact.is_ok_and(|m| m.matches(b"") && !m.matches(b"x")));
        }
    }

    #[test]
    fn ignore_case() {
        let exact = compile(sm(Some("/Login"), None, None), true);
        assert!(exact.matches(b"/LOGIN") && exact.matches(b"/login"));
        let prefix = compile(sm(None, Some("/API"), None), true);
        assert!(prefix.matches(b"/api/x") && !prefix.matches(b"/ap"));
        // Envoy ignores `case_sensitive` for a `safe_regex` path.
        let re = compile(sm(None, None, Some("/users/[a-z]+")), true);
        assert!(re.matches(b"/users/bob"));
        assert!(!re.matches(b"/USERS/Bob"));
    }

    #[test]
    fn errors() {
        let two = StringMatcher::compile(&sm(Some("a"), Some("b"), None), Field::Present, false);
        assert_eq!(two.unwrap_err().1, Reason::MoreThanOneMatchKind);
        let none = StringMatcher::compile(&sm(None, None, None), Field::Pseudo, false);
        assert_eq!(none.unwrap_err().1, Reason::NoMatchKind);
        let bad = StringMatcher::compile(&sm(None, None, Some("(")), Field::Present, false);
        let (field, reason) = bad.unwrap_err();
        assert_eq!(field, "regex");
        assert!(matches!(reason, Reason::BadRegex(_)), "{reason:?}");
        let long = "a".repeat(limits::MAX_REGEX_LEN + 1);
        let too_long = StringMatcher::compile(&sm(None, None, Some(&long)), Field::Present, false);
        assert!(matches!(too_long.unwrap_err().1, Reason::TooMany { .. }));
        let huge = compile_regex("(a{1000}){1000}", false);
        assert!(matches!(huge, Err(Reason::BadRegex(_))), "{huge:?}");
    }
}
