//! The filter's regex engine against regex-lite 0.1.9, the library it
//! replaced (its parity contract: same patterns accepted, same error
//! message, same match on every value). Patterns are built from pieces of
//! regex syntax and raw bytes; values from the pattern's own bytes and
//! arbitrary ones. The one allowed difference is the size limit's boundary
//! (each engine measures its program its own way; see the regex module's
//! tests).
#![no_main]

use canary_router_fuzz::regex_case::{latin1, ours, reference, RegexCase, SIZE_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: RegexCase| {
    let pattern = case.pattern();
    let theirs = reference(&pattern, case.ignore_case);
    match (ours(&pattern, case.ignore_case), theirs) {
        (Err(a), Err(b)) => {
            if a != SIZE_LIMIT && b != SIZE_LIMIT {
                assert_eq!(
                    a,
                    b,
                    "error for {:?} (ignore case {})",
                    latin1(&pattern),
                    case.ignore_case
                );
            }
        }
        (Ok(a), Ok(b)) => {
            for v in case.values(&pattern) {
                let want = b.is_match(&latin1(&v));
                assert_eq!(
                    a.is_match(&v),
                    want,
                    "{:?} (ignore case {}) on {:?}",
                    latin1(&pattern),
                    case.ignore_case,
                    latin1(&v)
                );
            }
        }
        (Err(SIZE_LIMIT), Ok(_)) => {}
        (Ok(_), Err(e)) if e == SIZE_LIMIT => {}
        (a, b) => panic!(
            "{:?} (ignore case {}): ours {:?}, regex-lite {:?}",
            latin1(&pattern),
            case.ignore_case,
            a.err(),
            b.err()
        ),
    }
});
