//! Every documented bound of a rule set (`src/schema/limits.rs`, `docs/limits.md`):
//! a rule set *at* the bound is accepted, one past it is rejected with an
//! error that names the field and the bound. And the rule set at every bound
//! at once (`test_tools::fixtures::rules_at_limits`, included here by
//! path so this crate does not depend on the harness) compiles and routes.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

#[path = "../../test-harness/test-tools/src/fixtures.rs"]
mod fixtures;

use canary_router::domain::plugin::{rule_file_from_bytes, Plugin};
use canary_router::schema::limits::*;
use canary_router::{ConfigError, ConfigErrorKind, Outcome};
use common::{workload, Req};

const D: &str = r#"{"destination":{"cluster":"c"}}"#;

fn check(json: &str) -> Result<Plugin, ConfigError> {
    Plugin::from_bytes(json.as_bytes(), &workload("default", &[]))
}

fn rule(body: &str) -> String {
    format!(r#"{{"services":[{{"hosts":["backend"],"http":[{body}]}}]}}"#)
}

/// `make(bound)` is accepted; `make(bound + 1)` is rejected at `path` with a
/// message containing `why`.
fn at_and_over(what: &str, bound: usize, path: &str, why: &str, make: impl Fn(usize) -> String) {
    if let Err(e) = check(&make(bound)) {
        panic!("{what}: a rule set at the bound ({bound}) is rejected: {e}");
    }
    match check(&make(bound + 1)) {
        Ok(_) => panic!(
            "{what}: a rule set over the bound ({}) is accepted",
            bound + 1
        ),
        Err(e) => {
            assert_eq!(e.path(), Some(path), "{what}: {e}");
            assert!(e.to_string().contains(why), "{what}: `{e}` lacks `{why}`");
        }
    }
}

#[test]
fn the_fixture_mirrors_the_filter_bounds() {
    use fixtures::bounds;
    assert_eq!(bounds::CONFIG_BYTES, MAX_CONFIG_BYTES);
    assert_eq!(bounds::SERVICES, MAX_SERVICES);
    assert_eq!(bounds::HOSTS_PER_SERVICE, MAX_HOSTS_PER_SERVICE);
    assert_eq!(bounds::RULES, MAX_RULES);
    assert_eq!(bounds::MATCHES_PER_RULE, MAX_MATCHES_PER_RULE);
    assert_eq!(bounds::CONDITIONS_PER_MATCH, MAX_CONDITIONS_PER_MATCH);
    assert_eq!(bounds::DESTINATIONS, MAX_DESTINATIONS);
    assert_eq!(bounds::WEIGHT, MAX_WEIGHT);
    assert_eq!(bounds::REGEX_LEN, MAX_REGEX_LEN);
    assert_eq!(bounds::NAME_LEN, MAX_NAME_LEN);
}

#[test]
fn the_rule_set_at_every_bound_compiles_and_routes() {
    let json = fixtures::rules_at_limits();
    assert!(json.len() <= MAX_CONFIG_BYTES, "{} bytes", json.len());
    assert!(
        json.len() > MAX_CONFIG_BYTES * 9 / 10,
        "the fixture is padded close to the size bound: {} bytes",
        json.len()
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), MAX_SERVICES);
    let rules: usize = services
        .iter()
        .map(|s| s["http"].as_array().unwrap().len())
        .sum();
    assert_eq!(rules, MAX_RULES);
    let hot = services.last().unwrap();
    assert_eq!(
        hot["hosts"].as_array().unwrap().len(),
        MAX_HOSTS_PER_SERVICE
    );
    let http = hot["http"].as_array().unwrap();
    let most = &http[http.len() - 2];
    assert_eq!(
        most["match"].as_array().unwrap().len(),
        MAX_MATCHES_PER_RULE
    );
    let first = most["match"][0].as_object().unwrap();
    let conditions: usize = first.values().map(|m| m.as_object().unwrap().len()).sum();
    assert_eq!(conditions, MAX_CONDITIONS_PER_MATCH);
    let wide = http.last().unwrap();
    assert_eq!(wide["route"].as_array().unwrap().len(), MAX_DESTINATIONS);
    assert_eq!(wide["route"][0]["weight"], MAX_WEIGHT);
    assert_eq!(wide["name"].as_str().unwrap().len(), MAX_NAME_LEN);
    let regexes: Vec<usize> = http
        .iter()
        .filter_map(|r| r["match"][0]["uri"]["regex"].as_str())
        .map(str::len)
        .collect();
    assert_eq!(regexes, vec![MAX_REGEX_LEN; fixtures::REGEX_RULES]);

    let plugin = check(&json).unwrap_or_else(|e| panic!("rules at the limits rejected: {e}"));
    let set = plugin.rules.unwrap().set;
    assert_eq!(set.services().len(), MAX_SERVICES);

    let headers = fixtures::request_walking_every_rule();
    let mut req = Req::default();
    for (name, value) in &headers {
        req = req.with(name, value);
    }
    let mut seen = std::collections::BTreeSet::new();
    for random in [0, u64::MAX / 3, u64::MAX] {
        match set.decide(&req, || random) {
            Outcome::Routed(d) => {
                assert!(d.sticky, "the last rule is sticky by cookie");
                assert_eq!(d.rule, set.services()[d.service].rules.len() - 1);
                assert!(d.cluster.key().starts_with(fixtures::WIDE_CLUSTER_PREFIX));
                assert!(d.target.weight > 0);
                seen.insert(d.cluster.to_string());
            }
            other => panic!("the worst request is not routed: {other:?}"),
        }
    }
    assert_eq!(seen.len(), 1, "a sticky key always lands on one cluster");

    let mut unknown = Req::default();
    for (name, value) in fixtures::request_for_unknown_host() {
        unknown = unknown.with(&name, value);
    }
    assert!(matches!(set.decide(&unknown, || 0), Outcome::NoService));

    let file = fixtures::rule_file_at_limits();
    rule_file_from_bytes(file.as_bytes(), &plugin.settings, &workload("default", &[]))
        .unwrap_or_else(|e| panic!("rule file at the limits rejected: {e}"));
}

#[test]
fn file_size() {
    let w = workload("default", &[]);
    // Whitespace pads a valid file to exactly the bound, then one byte past it.
    let body = rule(&format!(r#"{{"route":[{D}]}}"#));
    let at = format!("{body}{}", " ".repeat(MAX_CONFIG_BYTES - body.len()));
    assert!(check(&at).is_ok());
    let over = format!("{at} ");
    let e = check(&over).unwrap_err();
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TooLarge {
            size: MAX_CONFIG_BYTES + 1,
            limit: MAX_CONFIG_BYTES
        }
    );
    assert!(e.to_string().contains("over the limit of 1048576"), "{e}");
    let settings = check(&body).unwrap().settings;
    let e = rule_file_from_bytes(over.as_bytes(), &settings, &w).unwrap_err();
    assert!(matches!(e.kind(), ConfigErrorKind::TooLarge { .. }), "{e}");
}

#[test]
fn services() {
    at_and_over(
        "services",
        MAX_SERVICES,
        "services",
        "more than 1000 services",
        |n| {
            let list: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"hosts":["s{i}"],"http":[{{"route":[{D}]}}]}}"#))
                .collect();
            format!(r#"{{"services":[{}]}}"#, list.join(","))
        },
    );
}

#[test]
fn hosts_per_service() {
    at_and_over(
        "hosts",
        MAX_HOSTS_PER_SERVICE,
        "services[0].hosts",
        "more than 100 hosts",
        |n| {
            let hosts: Vec<String> = (0..n).map(|i| format!(r#""h{i}""#)).collect();
            format!(
                r#"{{"services":[{{"hosts":[{}],"http":[{{"route":[{D}]}}]}}]}}"#,
                hosts.join(",")
            )
        },
    );
}

#[test]
fn rules_across_services() {
    at_and_over(
        "rules",
        MAX_RULES,
        "services",
        "more than 5000 rules",
        |n| {
            // Split over two services: the bound is on the total.
            let one: Vec<String> = (0..n / 2)
                .map(|_| format!(r#"{{"route":[{D}]}}"#))
                .collect();
            let two: Vec<String> = (n / 2..n)
                .map(|_| format!(r#"{{"route":[{D}]}}"#))
                .collect();
            format!(
                r#"{{"services":[{{"hosts":["a"],"http":[{}]}},{{"hosts":["b"],"http":[{}]}}]}}"#,
                one.join(","),
                two.join(",")
            )
        },
    );
}

#[test]
fn match_entries_per_rule() {
    at_and_over(
        "match entries",
        MAX_MATCHES_PER_RULE,
        "services[0].http[0].match",
        "more than 64 match entries",
        |n| {
            let entries: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"headers":{{"x-{i}":{{}}}}}}"#))
                .collect();
            rule(&format!(
                r#"{{"match":[{}],"route":[{D}]}}"#,
                entries.join(",")
            ))
        },
    );
}

#[test]
fn conditions_per_match_entry() {
    at_and_over(
        "conditions",
        MAX_CONDITIONS_PER_MATCH,
        "services[0].http[0].match[0]",
        "more than 64 conditions in one match entry",
        |n| {
            // Spread over every kind of condition: the bound is on the sum.
            let kinds = ["headers", "withoutHeaders", "queryParams", "sourceLabels"];
            let mut parts = Vec::new();
            for (k, kind) in kinds.iter().enumerate() {
                let items: Vec<String> = (0..n)
                    .filter(|i| i % kinds.len() == k)
                    .map(|i| match *kind {
                        "sourceLabels" => format!(r#""l{i}":"v""#),
                        _ => format!(r#""x-{i}":{{}}"#),
                    })
                    .collect();
                parts.push(format!(r#""{kind}":{{{}}}"#, items.join(",")));
            }
            rule(&format!(
                r#"{{"match":[{{{}}}],"route":[{D}]}}"#,
                parts.join(",")
            ))
        },
    );
}

#[test]
fn destinations_per_route() {
    at_and_over(
        "destinations",
        MAX_DESTINATIONS,
        "services[0].http[0].route",
        "more than 64 destinations",
        |n| {
            let route: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"destination":{{"cluster":"c{i}"}},"weight":1}}"#))
                .collect();
            rule(&format!(r#"{{"route":[{}]}}"#, route.join(",")))
        },
    );
}

#[test]
fn weight() {
    let make = |w: i64| {
        rule(&format!(
            r#"{{"route":[{{"destination":{{"cluster":"a"}},"weight":{w}}},{{"destination":{{"cluster":"b"}},"weight":1}}]}}"#
        ))
    };
    assert!(check(&make(MAX_WEIGHT)).is_ok());
    let e = check(&make(MAX_WEIGHT + 1)).unwrap_err();
    assert_eq!(e.path(), Some("services[0].http[0].route[0].weight"));
    assert!(e.to_string().contains("over the limit of 1000000"), "{e}");
}

#[test]
fn regex_length() {
    at_and_over(
        "regex length",
        MAX_REGEX_LEN,
        "services[0].http[0].match[0].uri.regex",
        "more than 1024 bytes in a regex",
        |n| {
            rule(&format!(
                r#"{{"match":[{{"uri":{{"regex":"/{}"}}}}],"route":[{D}]}}"#,
                "a".repeat(n - 1)
            ))
        },
    );
}

#[test]
fn regex_compiled_size_bounds_compile_cost() {
    // The longest pattern, a literal, fits the compiled-size bound.
    let literal = rule(&format!(
        r#"{{"match":[{{"uri":{{"regex":"/{}"}}}}],"route":[{D}]}}"#,
        "a".repeat(MAX_REGEX_LEN - 1)
    ));
    assert!(check(&literal).is_ok());
    // A 20-byte pattern whose counted repetitions expand past
    // MAX_REGEX_PROGRAM_BYTES: refused at compile time, so neither compile
    // time nor memory grows with the expansion.
    let make = |inner: u32| {
        rule(&format!(
            r#"{{"match":[{{"headers":{{"x-a":{{"regex":"(?:a{{0,{inner}}}){{1,{inner}}}"}}}}}}],"route":[{D}]}}"#
        ))
    };
    assert!(check(&make(20)).is_ok());
    let e = check(&make(100)).unwrap_err();
    assert_eq!(
        e.path(),
        Some("services[0].http[0].match[0].headers.x-a.regex")
    );
    assert!(
        e.to_string().contains("compiled regex exceeded size limit"),
        "{e}"
    );
    // Stacked repetitions (a{5}{5}{5}... = a{5^n}) are caught the same way.
    let stacked = rule(&format!(
        r#"{{"match":[{{"uri":{{"regex":"a{}"}}}}],"route":[{D}]}}"#,
        "{9}".repeat(12)
    ));
    let e = check(&stacked).unwrap_err();
    assert!(e.to_string().contains("exceeded size limit"), "{e}");
}

#[test]
fn regex_nesting() {
    // The filter wraps each pattern in one group to anchor it, so a pattern
    // may nest MAX_REGEX_NESTING - 1 groups.
    let depth = MAX_REGEX_NESTING as usize - 1;
    at_and_over(
        "regex nesting",
        depth,
        "services[0].http[0].match[0].uri.regex",
        "too much nesting",
        |n| {
            rule(&format!(
                r#"{{"match":[{{"uri":{{"regex":"{}a{}"}}}}],"route":[{D}]}}"#,
                "(".repeat(n),
                ")".repeat(n)
            ))
        },
    );
}

#[test]
fn name_lengths() {
    at_and_over(
        "rule name",
        MAX_NAME_LEN,
        "services[0].http[0].name",
        "more than 256 bytes in a name",
        |n| rule(&format!(r#"{{"name":"{}","route":[{D}]}}"#, "r".repeat(n))),
    );
    at_and_over(
        "cluster name",
        MAX_NAME_LEN,
        "services[0].http[0].route[0].destination.cluster",
        "more than 256 bytes in a name",
        |n| {
            rule(&format!(
                r#"{{"route":[{{"destination":{{"cluster":"{}"}}}}]}}"#,
                "c".repeat(n)
            ))
        },
    );
    at_and_over(
        "subset",
        MAX_NAME_LEN,
        "services[0].http[0].route[0].destination.subset",
        "more than 256 bytes in a name",
        |n| {
            rule(&format!(
                r#"{{"route":[{{"destination":{{"host":"b","subset":"{}","port":{{"number":80}}}}}}]}}"#,
                "s".repeat(n)
            ))
        },
    );
    let header = |n: usize| {
        let name = "h".repeat(n);
        let json = rule(&format!(
            r#"{{"match":[{{"headers":{{"{name}":{{}}}}}}],"route":[{D}]}}"#
        ));
        (name, check(&json))
    };
    assert!(header(MAX_NAME_LEN).1.is_ok());
    let (name, over) = header(MAX_NAME_LEN + 1);
    let e = over.unwrap_err();
    let path = format!("services[0].http[0].match[0].headers.{name}");
    assert_eq!(e.path(), Some(path.as_str()));
    assert!(
        e.to_string().contains("is not a valid HTTP header name"),
        "{e}"
    );
}

#[test]
fn rule_source_durations() {
    let make = |field: &str, ms: u64| {
        format!(r#"{{"ruleSource":{{"cluster":"rules","path":"/rules.json","{field}":{ms}}}}}"#)
    };
    for (field, min, max) in [
        ("pollIntervalMs", MIN_POLL_INTERVAL_MS, MAX_POLL_INTERVAL_MS),
        ("timeoutMs", MIN_FETCH_TIMEOUT_MS, MAX_FETCH_TIMEOUT_MS),
    ] {
        for ok in [min, max] {
            assert!(check(&make(field, ok)).is_ok(), "{field} = {ok}");
        }
        for bad in [min - 1, max + 1] {
            let e = check(&make(field, bad)).unwrap_err();
            let path = format!("ruleSource.{field}");
            assert_eq!(e.path(), Some(path.as_str()), "{e}");
            let why = format!("must be between {min} and {max} milliseconds");
            assert!(e.to_string().contains(&why), "{e}");
        }
    }
}

#[test]
fn regex_input_length() {
    // A value longer than MAX_REGEX_INPUT_BYTES never matches a regex (the
    // cost of one match is bounded whatever the client sends); exact and
    // prefix still see it whole.
    let json = r#"{"services":[{"hosts":["backend"],"http":[
        {"name":"re","match":[{"headers":{"x-a":{"regex":"a*"}}}],"route":[{"destination":{"cluster":"re"}}]},
        {"name":"prefix","match":[{"headers":{"x-a":{"prefix":"aaa"}}}],"route":[{"destination":{"cluster":"prefix"}}]}
    ]}]}"#;
    let set = check(json).unwrap().rules.unwrap().set;
    let at = Req::to("backend").with("x-a", "a".repeat(MAX_REGEX_INPUT_BYTES));
    let over = Req::to("backend").with("x-a", "a".repeat(MAX_REGEX_INPUT_BYTES + 1));
    assert_eq!(common::cluster(&set, &at).as_deref(), Some("re"));
    assert_eq!(common::cluster(&set, &over).as_deref(), Some("prefix"));
}
