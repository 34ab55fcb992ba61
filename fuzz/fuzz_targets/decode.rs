//! The configuration decoder the declarations generate (`schema!` in
//! `filter/src/schema/decode.rs`, over the runtime's JSON reader) against the serde
//! derive of the same declarations (serde_json with serde_path_to_error,
//! what the filter used before): for every input, as a plugin
//! configuration and as a rule file, the same value, or the same error at
//! the same JSON path with the same message (` at line L column C`
//! included), but for the two exceptions `filter-runtime/README.md` lists.
//!
//! Half of the inputs are arbitrary bytes; the other half are documents of
//! the declared types generated from their `Schema` (every declared field,
//! with the mistakes serde refuses), so that most reach the nested types.
#![no_main]

use std::fmt::Debug;

use canary_router::schema::config::{PluginConfig, RuleFile};
use canary_router::schema::decode::FromJson;
use canary_router::ConfigErrorKind;
use canary_router_fuzz::differential::{assert_same, Exception, Outcome};
use canary_router_fuzz::schema_doc;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn ours<T: FromJson + Debug>(bytes: &[u8]) -> Outcome {
    Outcome::of(
        canary_router::domain::plugin::parse::<T>(bytes).map_err(|e| match e.into_kind() {
            ConfigErrorKind::Syntax { path, message } => (path, message),
            other => ("(not a syntax error)".into(), other.to_string()),
        }),
    )
}

fn reference<T: DeserializeOwned + Debug>(bytes: &[u8]) -> Outcome {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Outcome::of(
        serde_path_to_error::deserialize::<_, T>(&mut de)
            .map_err(|e| (e.path().to_string(), e.inner().to_string()))
            .and_then(|v| {
                de.end().map_err(|e| (String::new(), e.to_string()))?;
                Ok(v)
            }),
    )
}

fn message(o: &Outcome) -> Option<(&str, &str)> {
    match o {
        Outcome::Error { path, message } => Some((path, message)),
        Outcome::Value(_) => None,
    }
}

/// `text` cut at each float that follows `before`: the text between them,
/// and the floats' values (`None`: the text was no float).
fn split_floats(text: &str, before: &str) -> (Vec<String>, Vec<Option<f64>>) {
    let (mut parts, mut floats) = (Vec::new(), Vec::new());
    let mut rest = text;
    while let Some(i) = rest.find(before) {
        parts.push(rest[..i + before.len()].to_string());
        rest = &rest[i + before.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(rest.len());
        floats.push(rest[..end].parse::<f64>().ok());
        rest = &rest[end..];
    }
    parts.push(rest.to_string());
    (parts, floats)
}

/// Whether `a` and `b` are the same text but for the floats after
/// `before`, which may differ as `close` allows.
fn same_but_floats(a: &str, b: &str, before: &str, close: fn(f64, f64) -> bool) -> bool {
    let (pa, fa) = split_floats(a, before);
    let (pb, fb) = split_floats(b, before);
    pa == pb
        && fa.len() == fb.len()
        && fa.iter().zip(&fb).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => close(*x, *y),
            _ => false,
        })
}

const EXCEPTIONS: &[Exception] = &[
    Exception {
        name: "a struct given as a JSON array",
        documented: "filter-runtime/README.md (known exceptions): serde reads a positional form nobody writes; the reader refuses it as the type error it reads as",
        covers: |_, ours, _| {
            message(ours).is_some_and(|(_, m)| m.starts_with("invalid type: sequence, expected struct "))
        },
    },
    Exception {
        name: "a float in a message spelled as written",
        documented: "filter-runtime/README.md (known exceptions): the reader quotes the text as written, serde_json respells it",
        covers: |_, ours, theirs| match (message(ours), message(theirs)) {
            (Some((p, m)), Some((q, n))) => {
                // The float's text is not part of the contract.
                p == q && same_but_floats(m, n, "floating point `", |_, _| true)
            }
            _ => false,
        },
    },
];

fn both<T: FromJson + DeserializeOwned + Debug>(what: &str, bytes: &[u8]) {
    assert_same(
        what,
        bytes,
        &ours::<T>(bytes),
        &reference::<T>(bytes),
        EXCEPTIONS,
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let doc: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut u = arbitrary::Unstructured::new(rest);
        let schema = if mode & 2 == 0 {
            PluginConfig::schema()
        } else {
            RuleFile::schema()
        };
        match schema_doc::document(&mut u, schema) {
            Ok(d) => d.into_bytes(),
            Err(_) => return,
        }
    };
    // Both refuse an empty document before reading (ours says so by name).
    if doc.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    both::<PluginConfig>("PluginConfig", &doc);
    both::<RuleFile>("RuleFile", &doc);
});
