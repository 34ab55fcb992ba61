//! Tests of compilation, the index and decisions.

use super::decide::RequestParts;
use super::*;
use crate::domain::plugin::Plugin;
use filter_runtime::proxy_wasm::pairs::{serialize, Pairs};

/// Rules of every kind the index treats differently, in an order where
/// filed and unfiled rules interleave.
fn mixed_rules(catch_all: bool) -> serde_json::Value {
    let to = serde_json::json!([{ "destination": { "cluster": "c" } }]);
    let mut rules = vec![
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "alice" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "bob" }, "x-tenant": { "exact": "t1" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "carol" } } }, { "uri": { "prefix": "/carol" } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "prefix": "dav" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "dave" } }, "sourceLabels": { "app": "elsewhere" } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "alice" }, "x-region": { "exact": "eu" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-tenant": { "exact": "t1" } } }] }),
        serde_json::json!({ "match": [{ "method": { "exact": "POST" } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "erin" } } }, { "headers": { "x-build": { "exact": "b1" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "regex": "e.*" }, "x-build": { "exact": "b2" } } }] }),
        serde_json::json!({ "match": [{ "headers": { "x-user": { "regex": "z.*" } } }] }),
    ];
    if catch_all {
        rules.push(serde_json::json!({}));
    }
    rules.push(serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "zed" } } }] }));
    // Eight filed rules: enough for an index (INDEX_MIN_RULES).
    rules.push(serde_json::json!({ "match": [{ "headers": { "x-region": { "exact": "us" } } }] }));
    // Path rules: filed by prefix (an exact uri is a prefix too), except
    // a case-insensitive one.
    rules.push(serde_json::json!({ "match": [{ "uri": { "prefix": "/api" } , "method": { "exact": "POST" } }] }));
    rules.push(serde_json::json!({ "match": [{ "uri": { "exact": "/api/v2" } }, { "headers": { "x-user": { "exact": "bob" } } }] }));
    rules.push(
        serde_json::json!({ "match": [{ "uri": { "prefix": "/API" }, "ignoreUriCase": true }] }),
    );
    rules.push(serde_json::json!({ "match": [{ "uri": { "pathPrefix": "/carol" } }] }));
    rules.push(serde_json::json!({ "match": [{ "uri": { "prefix": "/" } }] }));
    for r in &mut rules {
        r["route"] = to.clone();
    }
    serde_json::Value::Array(rules)
}

/// A request view without `for_each_header`: lookups by name only.
struct LookupOnly<'b>(Pairs<'b>);

impl RequestView for LookupOnly<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name)
    }
    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        self.0.any_value(name, f)
    }
}

#[test]
fn header_names_past_the_index_limit_are_scanned() {
    let n = MAX_INDEXED_HEADERS + 6;
    let http: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("r{i}"),
                "match": [{ "headers": { format!("x-h{i}"): { "exact": "on" } } }],
                "route": [{ "destination": { "cluster": format!("c{i}") } }],
            })
        })
        .collect();
    let config = serde_json::json!({ "services": [{ "hosts": ["a"], "http": http }] });
    let set = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default())
        .unwrap()
        .rules
        .unwrap()
        .set;
    let index = set.services()[0].index.as_ref().unwrap();
    assert_eq!(index.by_header.len(), MAX_INDEXED_HEADERS);
    let first_unfiled = u32::try_from(MAX_INDEXED_HEADERS).unwrap();
    assert_eq!(
        &*index.always,
        &(first_unfiled..u32::try_from(n).unwrap()).collect::<Vec<_>>()[..]
    );
    for i in [0, MAX_INDEXED_HEADERS - 1, MAX_INDEXED_HEADERS, n - 1] {
        let name = format!("x-h{i}");
        let buf = serialize(vec![
            (&b":authority"[..], &b"a"[..]),
            (name.as_bytes(), b"on"),
        ]);
        let pairs = Pairs::parse(&buf).unwrap();
        let outcome = set.decide(&pairs, || 0);
        assert_eq!(outcome.decision().map(|d| d.rule), Some(i), "{name}");
    }
}

#[test]
fn the_index_finds_the_same_first_rule_as_a_scan() {
    let config = serde_json::json!({ "services": [
        { "hosts": ["a"], "http": mixed_rules(true) },
        { "hosts": ["b"], "http": mixed_rules(false) },
    ]});
    let plugin = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default()).unwrap();
    let set = plugin.rules.unwrap().set;
    let regions = [None, Some("eu"), Some("us")];
    let users = [
        None,
        Some("alice"),
        Some("bob"),
        Some("carol"),
        Some("dave"),
        Some("erin"),
        Some("zed"),
        Some("eve"),
    ];
    let mut compared = 0;
    for service in set.services() {
        assert!(
            service.index.is_some(),
            "{} rules get an index",
            service.rules.len()
        );
        for user in users {
            for tenant in [None, Some("t1")] {
                for region in regions {
                    for build in [None, Some("b1"), Some("b2")] {
                        for method in ["GET", "POST"] {
                            for path in [
                                "/", "/carol/x", "/carolx", "/carol", "/api/v2", "/API/x", "/apix",
                                "",
                            ] {
                                let mut h: Vec<(&[u8], &[u8])> = vec![
                                    (b":authority", b"a"),
                                    (b":path", path.as_bytes()),
                                    (b":method", method.as_bytes()),
                                ];
                                for (name, v) in [
                                    ("x-user", user),
                                    ("x-tenant", tenant),
                                    ("x-region", region),
                                    ("x-build", build),
                                ] {
                                    if let Some(v) = v {
                                        h.push((name.as_bytes(), v.as_bytes()));
                                    }
                                }
                                // A repeated header: a rule matches on any of its values.
                                h.push((b"x-user", b"zed"));
                                h.push((b"x-region", b"us"));
                                let buf = serialize(h);
                                let pairs = Pairs::parse(&buf).unwrap();
                                let parts = RequestParts::new(&pairs, b"a");
                                let scan = service.rules.iter().position(|r| r.matches(&parts));
                                assert_eq!(
                                    service.first_match(&parts),
                                    scan,
                                    "one walk: {user:?} {tenant:?} {region:?} {build:?} {method} {path}"
                                );
                                // A view that cannot list its headers: a lookup per name.
                                let lookups = LookupOnly(pairs);
                                let parts = RequestParts::new(&lookups, b"a");
                                assert_eq!(
                                    service.first_match(&parts),
                                    scan,
                                    "lookups: {user:?} {tenant:?} {region:?} {build:?} {method} {path}"
                                );
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, 2 * 8 * 2 * 3 * 3 * 2 * 8);
}

#[test]
fn small_services_are_scanned_and_exact_header_rules_are_filed() {
    let few = serde_json::json!({ "services": [{ "hosts": ["a"], "http": [
        { "match": [{ "headers": { "x-user": { "exact": "alice" } } }], "route": [{ "destination": { "cluster": "c" } }] },
        { "route": [{ "destination": { "cluster": "c" } }] },
    ]}]});
    let set = Plugin::from_bytes(few.to_string().as_bytes(), &Workload::default())
        .unwrap()
        .rules
        .unwrap()
        .set;
    assert!(set.services()[0].index.is_none());
    let rules = mixed_rules(true);
    let index = {
        let config = serde_json::json!({ "services": [{ "hosts": ["a"], "http": rules }] });
        let set = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default())
            .unwrap()
            .rules
            .unwrap()
            .set;
        set.services()[0].index.clone().unwrap()
    };
    // Unreachable (4) is nowhere; one entry without an exact header
    // condition makes a rule "always"; 9 is filed under its exact x-build.
    assert_eq!(&*index.always, &[3, 7, 10, 11, 16]);
    // 2 (carol: a header or /carol), 14, 15 (/api/v2 or bob), 17
    // (pathPrefix /carol) and 18 are filed by path.
    let prefix = |p: &str| index.filed_under(&index.by_prefix, p.as_bytes()).to_vec();
    assert_eq!(prefix("/carol"), vec![2, 17]);
    assert_eq!(prefix("/api"), vec![14]);
    assert_eq!(prefix("/api/v2"), vec![15]);
    assert_eq!(prefix("/"), vec![18]);
    assert_eq!(prefix("/nowhere"), Vec::<u32>::new());
    assert_eq!(&*index.prefix_lens, &[1, 4, 6, 7]);
    // The names in the order the rules first use them.
    let names: Vec<&str> = index.by_header.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["x-user", "x-tenant", "x-region", "x-build"]);
    let user = &index.by_header[0].1;
    assert_eq!(index.filed_under(user, b"alice"), &[0u32]);
    assert_eq!(index.filed_under(user, b"zed"), &[12u32]);
    let tenant = &index.by_header[1].1;
    assert_eq!(index.filed_under(tenant, b"t1"), &[1u32, 6]);
}

#[test]
fn a_rule_set_holds_each_cluster_and_label_once() {
    let host = |subset: &str| serde_json::json!({ "destination": { "host": "backend", "subset": subset, "port": { "number": 80 } } });
    let split = |w1: u32, w2: u32| {
        let (mut a, mut b) = (host("v1"), host("v2"));
        a["weight"] = w1.into();
        b["weight"] = w2.into();
        serde_json::json!([a, b])
    };
    let v1 = "outbound|80|v1|backend.default.svc.cluster.local";
    let config = serde_json::json!({ "services": [{ "hosts": ["backend"], "http": [
        { "name": "a", "match": [{ "headers": { "x-user": { "exact": "a" } } }], "route": split(90, 10) },
        { "name": "b", "match": [{ "headers": { "x-user": { "exact": "b" } } }], "route": split(50, 50) },
        // The same cluster named in full: another label, so another target.
        { "name": "c", "match": [{ "headers": { "x-user": { "exact": "c" } } }], "route": [{ "destination": { "cluster": v1 } }] },
        // A route policy: the rule's own cluster value.
        { "name": "d", "match": [{ "headers": { "x-user": { "exact": "d" } } }], "route": [host("v2")], "timeout": "5s" },
        { "name": "split", "route": [host("v1")] },
    ] }] });
    let set = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default())
        .unwrap()
        .rules
        .unwrap()
        .set;
    let targets: Vec<(String, &str)> = set
        .targets
        .iter()
        .map(|t| (t.cluster.to_string(), &*t.label))
        .collect();
    let v2 = "outbound|80|v2|backend.default.svc.cluster.local";
    assert_eq!(
        targets,
        [
            (v1.to_string(), "v1"),
            (v2.to_string(), "v2"),
            (v1.to_string(), v1),
            (format!("{v2};d"), "v2"),
        ]
    );
    // Every destination reads its own name and label through the table.
    let seen: Vec<(String, String, &str)> = set
        .all_destinations()
        .map(|(_, r, d)| (r.name.to_string(), d.cluster.to_string(), d.label))
        .collect();
    let (a, b) = ("a".to_string(), "b".to_string());
    assert_eq!(seen[0], (a.clone(), v1.to_string(), "v1"));
    assert_eq!(seen[1], (a, v2.to_string(), "v2"));
    assert_eq!(seen[3], (b, v2.to_string(), "v2"));
    assert_eq!(seen[4], ("c".to_string(), v1.to_string(), v1));
    assert_eq!(seen[5], ("d".to_string(), format!("{v2};d"), "v2"));
    assert_eq!(seen[6], ("split".to_string(), v1.to_string(), "v1"));
}

/// A service's `defaultDestination` compiles to the cluster a rule sending
/// to the same destination gets (the service's port and namespace, the
/// port-less modes, a gateway's refusal): `default_cluster` and
/// `Compiler::begin` give one answer.
#[test]
fn a_default_destination_compiles_to_the_cluster_of_the_same_destination_in_a_rule() {
    use crate::schema::config::PluginConfig;
    let cases = [
        (
            r#"{"host": "backend", "subset": "v1", "port": {"number": 80}}"#,
            "",
            "",
        ),
        (r#"{"host": "backend", "subset": "v1"}"#, "", ""),
        (r#"{"host": "backend"}"#, r#""destinationPort": 9080,"#, ""),
        (
            r#"{"host": "backend", "subset": "v1"}"#,
            r#""namespace": "shop","#,
            "",
        ),
        (
            r#"{"host": "backend", "subset": "v1"}"#,
            "",
            r#""portlessDestinations": "glue","#,
        ),
        (r#"{"cluster": "plain"}"#, "", ""),
    ];
    for gateway in [false, true] {
        let workload = Workload {
            gateway,
            ..Workload::default()
        };
        for (dest, svc, top) in cases {
            let json = format!(
                r#"{{ {top} "services": [{{ "hosts": ["backend"], {svc}
                  "defaultDestination": {dest},
                  "http": [{{ "route": [{{ "destination": {dest} }}] }}] }}] }}"#
            );
            let compiled = Plugin::from_bytes(json.as_bytes(), &workload);
            let cfg: PluginConfig = crate::domain::plugin::parse(json.as_bytes()).unwrap();
            let settings = crate::domain::plugin::Settings::from_config(&cfg).unwrap();
            let svc0 = &cfg.services.as_ref().unwrap()[0];
            let default =
                default_cluster(svc0, "services[0]", &settings.compile_options(&workload));
            match compiled {
                Ok(p) => {
                    let set = p.rules.unwrap().set;
                    let d = &set.services()[0].rules[0].route.destinations[0];
                    assert_eq!(default.unwrap().as_ref(), set.cluster(d), "{json}");
                }
                Err(e) => {
                    let d = default.unwrap_err();
                    // The rule's destination is refused first; the default
                    // for the same reason.
                    assert_eq!(
                        d.to_string()
                            .replace("defaultDestination", "http[0].route[0].destination"),
                        e.to_string(),
                        "{json}"
                    );
                }
            }
        }
    }
}
