#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Configuration errors: each names the JSON path and the reason, and the
//! whole rule set is rejected.

mod common;
use canary_router::{ConfigError, ConfigErrorKind, Plugin};
use common::*;

fn error(json: &str) -> ConfigError {
    match Plugin::from_bytes(json.as_bytes(), &workload("default", &[])) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e,
    }
}

fn service(http: &str) -> String {
    format!(r#"{{"services":[{{"hosts":["backend"],"http":[{http}]}}]}}"#)
}

const D: &str = r#"{"destination":{"host":"backend","subset":"v1","port":{"number":80}}}"#;

#[test]
fn errors_name_the_field_and_the_reason() {
    let route = |r: &str| service(&format!(r#"{{"route":[{r}]}}"#));
    let cases: Vec<(String, &str, &str)> = vec![
        (r#"{"services":[{"hosts":[],"http":[]}]}"#.into(), "services[0].hosts", "must not be empty"),
        (r#"{"services":[{"hosts":[""],"http":[]}]}"#.into(), "services[0].hosts[0]", "empty string"),
        (r#"{"services":[{"hosts":["backend:80"],"http":[]}]}"#.into(), "services[0].hosts[0]", "not a valid host"),
        (r#"{"services":[{"hosts":["backend"],"http":[]}]}"#.into(), "services[0].http", "must not be empty"),
        (route(r#"{"destination":{"cluster":"a"},"weight":1},{"destination":{"cluster":"b"},"weight":-1}"#), "services[0].http[0].route[1].weight", "negative"),
        (route(r#"{"destination":{"cluster":"a"},"weight":0},{"destination":{"cluster":"b"},"weight":0}"#), "services[0].http[0].route", "weight 0"),
        (route(r#"{"destination":{"cluster":"a"},"weight":5},{"destination":{"cluster":"b"}}"#), "services[0].http[0].route[1].weight", "required"),
        (route(r#"{"destination":{"cluster":"a"},"weight":1000001}"#), "services[0].http[0].route[0].weight", "over the limit"),
        (route(r#"{"destination":{"host":"backend","port":{"number":0}}}"#), "services[0].http[0].route[0].destination.port.number", "outside 1..=65535"),
        (route(r#"{"destination":{"host":"backend","cluster":"x","port":{"number":80}}}"#), "services[0].http[0].route[0].destination", "not both"),
        (route(r#"{"destination":{}}"#), "services[0].http[0].route[0].destination", "give `host`"),
        // Istio's validateDestination: `*` is no destination (`*.suffix` is).
        (route(r#"{"destination":{"host":"*","port":{"number":80}}}"#), "services[0].http[0].route[0].destination.host", "not a valid host"),
        (route(r#"{"destination":{"cluster":"has space"}}"#), "services[0].http[0].route[0].destination.cluster", "not allowed"),
        (service(&format!(r#"{{"match":[{{"headers":{{"x":{{"regex":"("}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.x.regex", "invalid regex"),
        (service(&format!(r#"{{"match":[{{"headers":{{"x":{{"exact":"a","prefix":"b"}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.x", "at most one"),
        (service(&format!(r#"{{"match":[{{"uri":{{}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].uri", "give one of"),
        // Istio's validation: no empty prefix (but on `uri`), no empty
        // regex; the regex `*` is Istio's wildcard in `withoutHeaders` only.
        (service(&format!(r#"{{"match":[{{"headers":{{"x":{{"prefix":""}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.x.prefix", "empty string"),
        (service(&format!(r#"{{"match":[{{"method":{{"prefix":""}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].method.prefix", "empty string"),
        (service(&format!(r#"{{"match":[{{"queryParams":{{"q":{{"prefix":""}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].queryParams.q.prefix", "empty string"),
        (service(&format!(r#"{{"match":[{{"uri":{{"regex":""}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].uri.regex", "empty string"),
        (service(&format!(r#"{{"match":[{{"headers":{{"x":{{"regex":"*"}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.x.regex", "invalid regex"),
        (service(&format!(r#"{{"match":[{{"headers":{{"bad header":{{}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.bad header", "not a valid HTTP header name"),
        (service(&format!(r#"{{"match":[{{"port":70000}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].port", "outside"),
        (service(&format!(r#"{{"route":[{D}],"sticky":{{}}}}"#)), "services[0].http[0].sticky", "exactly one"),
        (service(&format!(r#"{{"route":[{D}],"sticky":{{"header":"a","cookie":"b"}}}}"#)), "services[0].http[0].sticky", "exactly one"),
        (service(&format!(r#"{{"route":[{D}],"sticky":{{"sourceIp":false}}}}"#)), "services[0].http[0].sticky.sourceIp", "sourceIp: false"),
        (service(&format!(r#"{{"name":"","route":[{D}]}}"#)), "services[0].http[0].name", "empty string"),
        (r#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"cluster":"a"}}]}]},{"hosts":["backend.default.svc.cluster.local"],"http":[{"route":[{"destination":{"cluster":"a"}}]}]}]}"#.into(), "services[1].hosts[0]", "already claimed by services[0].hosts[0]"),
        (service(&format!(r#"{{"match":[{{"headers":{{"X-Canary-Upstream":{{}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].headers.X-Canary-Upstream", "is the route header"),
        (service(&format!(r#"{{"match":[{{"withoutHeaders":{{"x-canary-upstream":{{}}}}}}],"route":[{D}]}}"#)), "services[0].http[0].match[0].withoutHeaders.x-canary-upstream", "is the route header"),
        (service(&format!(r#"{{"route":[{D}],"sticky":{{"header":"x-canary-upstream"}}}}"#)), "services[0].http[0].sticky.header", "is the route header"),
        (r#"{"routeHeader":"x-route","services":[{"hosts":["a"],"http":[{"match":[{"headers":{"x-route":{}}}],"route":[{"destination":{"cluster":"c"}}]}]}]}"#.into(), "services[0].http[0].match[0].headers.x-route", "is the route header"),
        (r#"{"routeHeader":"bad header","services":[]}"#.into(), "routeHeader", "not a valid HTTP header name"),
        (r#"{"routeHeader":":path","services":[]}"#.into(), "routeHeader", "not a valid HTTP header name"),
        (r#"{"namespace":"a.b","services":[]}"#.into(), "namespace", "not a valid host"),
        (r#"{}"#.into(), "services", "give inline `services`, a `ruleSource`"),
        (r#"{"ruleSource":{"cluster":"c","path":"/r.json","pollIntervalMs":10}}"#.into(), "ruleSource.pollIntervalMs", "between 500 and"),
        (r#"{"ruleSource":{"cluster":"c","path":"r.json"}}"#.into(), "ruleSource.path", "not allowed"),
        (r#"{"ruleSource":{"cluster":"","path":"/r.json"}}"#.into(), "ruleSource.cluster", "empty string"),
    ];
    for (json, path, reason) in cases {
        let e = error(&json);
        assert_eq!(e.path(), Some(path), "{json}\n=> {e}");
        assert!(
            e.to_string().contains(reason),
            "{json}\n=> {e}\nwanted: {reason}"
        );
        assert!(
            e.to_string().starts_with(path),
            "the message leads with the path: {e}"
        );
    }
}

#[test]
fn syntax_errors_name_the_field() {
    let cases = [
        (
            service(&format!(r#"{{"route":[{D}],"retry":{{"attempts":3}}}}"#)),
            "services[0].http[0].retry",
            "unknown field `retry`",
        ),
        (
            service(&format!(
                r#"{{"match":[{{"headers":{{"x":{{"suffix":"a"}}}}}}],"route":[{D}]}}"#
            )),
            "services[0].http[0].match[0].headers.x.suffix",
            "unknown field `suffix`",
        ),
        (
            service(r#"{"route":[{"destination":{"cluster":"a"},"weight":"ten"}]}"#),
            "services[0].http[0].route[0].weight",
            "invalid type",
        ),
        (
            service(r#"{"route":[{"destination":{"cluster":"a"},"weight":1.5}]}"#),
            "services[0].http[0].route[0].weight",
            "invalid type",
        ),
        (
            r#"{"services":[{"hosts":["a"],"htpp":[]}]}"#.to_string(),
            "services[0].htpp",
            "unknown field `htpp`",
        ),
        (r#"{"services":"#.to_string(), "services", "EOF"),
        (r#"{"services":[]} trailing"#.to_string(), "", "trailing"),
    ];
    for (json, path, message) in cases {
        let e = error(&json);
        match e.kind() {
            ConfigErrorKind::Syntax {
                path: p,
                message: m,
            } => {
                assert_eq!(p, path, "{json}\n=> {e}");
                assert!(m.contains(message), "{json}\n=> {m}\nwanted: {message}");
            }
            other => panic!("{json}: expected a syntax error, got {other:?}"),
        }
    }
    assert_eq!(error("").kind(), &ConfigErrorKind::Empty);
    assert_eq!(error("  \n").kind(), &ConfigErrorKind::Empty);
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let big = format!(
        r#"{{"services":[],"pad":"{}"}}"#,
        "x".repeat(canary_router::schema::limits::MAX_CONFIG_BYTES)
    );
    assert!(matches!(
        error(&big).kind(),
        ConfigErrorKind::TooLarge { .. }
    ));
    let many_rules: Vec<String> = (0..=canary_router::schema::limits::MAX_RULES)
        .map(|i| format!(r#"{{"name":"r{i}","route":[{{"destination":{{"cluster":"c"}}}}]}}"#))
        .collect();
    let e = error(&service(&many_rules.join(",")));
    assert!(e.to_string().contains("more than 5000 rules"), "{e}");
    let long = "a".repeat(canary_router::schema::limits::MAX_REGEX_LEN + 1);
    let e = error(&service(&format!(
        r#"{{"match":[{{"uri":{{"regex":"{long}"}}}}],"route":[{D}]}}"#
    )));
    assert_eq!(
        e.path(),
        Some("services[0].http[0].match[0].uri.regex"),
        "{e}"
    );
    let e = error(&service(&format!(
        r#"{{"match":[{{"uri":{{"regex":"(x{{1000}}){{1000}}"}}}}],"route":[{D}]}}"#
    )));
    assert!(
        e.to_string().contains("invalid regex"),
        "a regex over the compiled-size limit is refused: {e}"
    );
}

#[test]
fn every_shipped_rule_file_is_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut seen = 0;
    for dir in ["examples"] {
        for entry in walk(&std::path::Path::new(root).join(dir)) {
            if entry.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&entry).unwrap();
                if let Err(e) = Plugin::from_bytes(&bytes, &workload("default", &[])) {
                    panic!("{}: {e}", entry.display());
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "found only {seen} rule files");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
