#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The filter compiles each rule as it reads it (`Plugin::read`,
//! `read_rule_file`: the document read twice, one rule held parsed at a
//! time). It must answer exactly as compiling the whole parsed document
//! does (`parse`, then `Plugin::from_config` / `Settings::compile_rule_file`):
//! the same rules, or the same first error (a syntax or type error before
//! any other, the settings' before the rules', a rule reading the route
//! header before any other rule error, then the first wrong field in
//! document order), over a document with several services and every kind
//! of rule, mutated one and two places at a time. The streamed reads take
//! the document in pieces of every size from one byte on, as the host
//! hands it over (`Source`), and the whole parse takes it as one slice:
//! a piece boundary anywhere (in a string, an escape, a number, between
//! lines) changes no value, no error message and no line or column.

mod common;
use canary_router::domain::plugin::{parse, read_rule_file, Settings, Source};
use canary_router::schema::config::{PluginConfig, RuleFile};
use canary_router::{Plugin, Workload};
use common::workload;

/// Three services, the settings after them, rules of every kind: an
/// indexed service (nine exact-header rules), source conditions, a
/// sticky split, guards with a baseline, a ramp, a route policy, a default
/// destination, a regex, a port of the service's.
fn services() -> String {
    let d = |subset: &str, w: u32| {
        format!(
            r#"{{"destination":{{"host":"a","subset":"{subset}","port":{{"number":80}}}},"weight":{w}}}"#
        )
    };
    let indexed: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"name":"i{i}","match":[{{"headers":{{"x-user":{{"exact":"u{i}"}}}}}}],"route":[{},{}]}}"#,
                d("v1", 90),
                d("v2", 10)
            )
        })
        .collect();
    format!(
        r#"[{{"hosts":["a","b.n2"],"namespace":"n1","http":[
  {{"name":"src","match":[{{"sourceLabels":{{"app":"x"}},"headers":{{"x-a":{{"prefix":"p"}}}}}},{{"sourceNamespace":"other"}}],"route":[{}]}},
  {{"name":"sticky","match":[{{"headers":{{"x-tenant":{{"exact":"t"}}}}}}],"route":[{},{}],"sticky":{{"header":"x-user"}}}},
  {{"name":"guarded","route":[{{"destination":{{"host":"a","subset":"v1"}},"weight":50}},{{"destination":{{"host":"a","subset":"v2"}},"weight":50,
     "guard":{{"maxErrorRate":0.1,"minRequests":10,"interval":"30s","baseline":"v1","maxLatencyRatio":2}}}}],
   "ramp":{{"canary":"v2","start":"2026-12-07T10:00:00Z","steps":[{{"setWeight":60}},{{"pause":{{"duration":"1m"}}}}]}}}}],
  "defaultDestination":{{"host":"a","subset":"v1"}}}},
 {{"destinationPort":8080,"http":[
  {{"name":"pol","match":[{{"uri":{{"regex":"/x/[0-9]+"}},"withoutHeaders":{{"x-b":{{}}}},"queryParams":{{"q":{{"exact":"1"}}}}}}],
   "route":[{{"destination":{{"host":"c","subset":"v1"}}}}],"timeout":"1s"}},
  {{"name":"cookie","match":[{{"uri":{{"pathPrefix":"/api"}},"method":{{"exact":"GET"}}}}],"route":[{},{}],
   "sticky":{{"cookie":"k","setCookie":{{"maxAge":60}}}}}}],"hosts":["c"]}},
 {{"hosts":["d.n3.svc.cluster.local"],"http":[{}]}}]"#,
        d("v1", 1),
        d("v1", 50),
        d("v2", 50),
        d("v1", 70),
        d("v2", 30),
        indexed.join(",")
    )
}

fn plugin_doc() -> String {
    format!(
        r#"{{"services":{},"routeHeader":"x-up","namespace":"ns","version":4}}"#,
        services()
    )
}

fn rule_file_doc() -> String {
    format!(r#"{{"services":{},"namespace":"n4"}}"#, services())
}

/// Mutations that break the meaning, not the syntax: each one makes some
/// rule, service or setting wrong (or reads the route header).
const WRONG: &[(&str, &str)] = &[
    (r#""x-user":{"exact":"u3"}"#, r#""X-Up":{"exact":"u3"}"#),
    (
        r#""sticky":{"header":"x-user"}"#,
        r#""sticky":{"header":"x-up"}"#,
    ),
    (r#""withoutHeaders":{"x-b""#, r#""withoutHeaders":{"x-up""#),
    (r#""weight":90"#, r#""weight":-1"#),
    (r#""weight":30"#, r#""weight":1000001"#),
    (r#""hosts":["a","b.n2"]"#, r#""hosts":["a","a"]"#),
    (r#""hosts":["c"]"#, r#""hosts":[]"#),
    (r#""hosts":["c"]"#, r#""hosts":["b.n2.svc.cluster.local"]"#),
    (r#""namespace":"n1""#, r#""namespace":"n.1""#),
    (r#""destinationPort":8080"#, r#""destinationPort":0"#),
    (r#""subset":"v2","port""#, r#""subset":"v 2","port""#),
    (r#""baseline":"v1""#, r#""baseline":"v9""#),
    (r#""canary":"v2""#, r#""canary":"v7""#),
    (r#""regex":"/x/[0-9]+""#, r#""regex":"/x/[0-9+""#),
    (r#""name":"i5""#, r#""name":"""#),
    (r#""name":"pol""#, r#""name":"p o l""#),
    (
        r#""defaultDestination":{"host":"a","subset":"v1"}"#,
        r#""defaultDestination":{"host":"a","cluster":"x"}"#,
    ),
    (r#""maxAge":60"#, r#""maxAge":60,"sameSite":"Bad""#),
    (
        r#""http":[{"name":"pol""#,
        r#""http":[],"x":[{"name":"pol""#,
    ),
    (r#""routeHeader":"x-up""#, r#""routeHeader":":x-up""#),
    (r#""namespace":"ns""#, r#""namespace":"n s""#),
    (r#""namespace":"n4""#, r#""namespace":"n 4""#),
    (
        r#""sourceLabels":{"app":"x"}"#,
        r#""sourceLabels":{"":"x"}"#,
    ),
    (r#""exact":"GET""#, r#""exact":"GET","prefix":"G""#),
];

/// Syntax and type errors, put in place of one byte.
const BROKEN: &[&str] = &["1", "\"s\"", "]", "}", ",", "null", "{", "[", "-1"];

fn who() -> Workload {
    workload("ns", &[("app", "x"), ("tier", "web")])
}

/// The label keys the whole parsed document's rules ask about (sorted, once each).
fn keys_of(services: &[canary_router::schema::config::Service]) -> Vec<String> {
    let mut keys: Vec<String> = services
        .iter()
        .flat_map(|s| s.http.iter())
        .flat_map(|r| &r.matches)
        .filter_map(|m| m.source_labels.as_ref())
        .flat_map(|l| l.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A document handed over `piece` bytes at a time (the last piece
/// shorter), failing at offset `fail` if given, as a host error would.
struct Pieces<'a> {
    bytes: &'a [u8],
    piece: usize,
    fail: Option<usize>,
}

impl Source for Pieces<'_> {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    fn read(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if self.fail.is_some_and(|f| start >= f) {
            return Err("InternalFailure".into());
        }
        let rest = &self.bytes[start.min(self.bytes.len())..];
        out.extend_from_slice(&rest[..rest.len().min(self.piece)]);
        Ok(())
    }
}

/// Streamed (in pieces of `piece` bytes) against whole (one slice), for a
/// plugin configuration and a rule file; a description of each difference.
fn compare(bytes: &[u8], settings: &Settings, piece: usize) -> Vec<String> {
    let mut differ = Vec::new();
    let w = who();
    let mut asked = None;
    let pieces = || Pieces {
        bytes,
        piece,
        fail: None,
    };
    let streamed = Plugin::read(&mut pieces(), &mut |keys| {
        asked = Some(keys.to_vec());
        w.clone()
    });
    let whole = parse::<PluginConfig>(bytes).and_then(|cfg| {
        let keys = keys_of(cfg.services.as_deref().unwrap_or_default());
        Plugin::from_config(&cfg, bytes, &w).map(|p| (p, keys))
    });
    let streamed = streamed.map(|p| (format!("{p:?}"), asked.clone()));
    let whole = whole.map(|(p, keys)| (format!("{p:?}"), Some(keys)));
    if streamed != whole {
        differ.push(format!(
            "plugin in pieces of {piece} {}\n  streamed: {:.300?}\n  whole:    {:.300?}",
            String::from_utf8_lossy(bytes),
            streamed,
            whole
        ));
    }
    let mut asked = None;
    let streamed = read_rule_file(&mut pieces(), settings, &mut |keys| {
        asked = Some(keys.to_vec());
        w.clone()
    })
    .map(|r| (format!("{r:?}"), asked.clone()));
    let whole = parse::<RuleFile>(bytes).and_then(|f| {
        let keys = keys_of(&f.services);
        settings
            .compile_rule_file(&f, bytes, &w)
            .map(|r| (format!("{r:?}"), Some(keys)))
    });
    if streamed != whole {
        differ.push(format!(
            "rule file in pieces of {piece} {}\n  streamed: {:.300?}\n  whole:    {:.300?}",
            String::from_utf8_lossy(bytes),
            streamed,
            whole
        ));
    }
    differ
}

fn settings() -> Settings {
    let cfg: PluginConfig =
        parse(br#"{"ruleSource":{"cluster":"c","path":"/r"},"routeHeader":"x-up"}"#).unwrap();
    Settings::from_config(&cfg).unwrap()
}

#[test]
fn the_good_documents_compile_alike() {
    let settings = settings();
    for doc in [plugin_doc(), rule_file_doc()] {
        for piece in (1..=64).chain([100, 1000, doc.len() - 1, doc.len(), 1 << 20]) {
            assert_eq!(
                compare(doc.as_bytes(), &settings, piece),
                Vec::<String>::new()
            );
        }
    }
    let p = Plugin::from_bytes(plugin_doc().as_bytes(), &who()).unwrap();
    let set = &p.rules.unwrap().set;
    assert_eq!(set.services().len(), 3);
    assert_eq!(set.services()[2].rules.len(), 9);
    assert!(read_rule_file(&mut rule_file_doc().as_bytes(), &settings, &mut |_| who()).is_ok());
}

/// A host error at any point of any of the reads (the outline, the
/// compile, the hashes) refuses the configuration with the host's status,
/// whatever the bytes before it were: never a panic, never rules compiled
/// from part of a document.
#[test]
fn a_host_error_while_reading_refuses_the_configuration() {
    let settings = settings();
    let doc = plugin_doc();
    for piece in [1, 7, 64, 4096] {
        for fail in (0..doc.len()).step_by(37) {
            let mut src = Pieces {
                bytes: doc.as_bytes(),
                piece,
                fail: Some(fail),
            };
            let e = Plugin::read(&mut src, &mut |_| who()).unwrap_err();
            assert_eq!(
                e.to_string(),
                "cannot read the configuration: InternalFailure",
                "piece {piece}, failing at {fail}"
            );
            let file = rule_file_doc();
            let mut src = Pieces {
                bytes: file.as_bytes(),
                piece,
                fail: Some(fail.min(file.len() - 1)),
            };
            let e = read_rule_file(&mut src, &settings, &mut |_| who()).unwrap_err();
            assert_eq!(
                e.to_string(),
                "cannot read the configuration: InternalFailure"
            );
        }
    }
}

#[test]
fn every_mutation_is_answered_alike() {
    let settings = settings();
    let mut cases: Vec<String> = Vec::new();
    for doc in [plugin_doc(), rule_file_doc()] {
        for (from, to) in WRONG {
            if doc.contains(from) {
                cases.push(doc.replacen(from, to, 1));
            }
        }
        // Two wrong places: which one is reported.
        for (i, (a, a2)) in WRONG.iter().enumerate() {
            for (b, b2) in WRONG.iter().skip(i + 1) {
                if doc.contains(a) && doc.contains(b) {
                    let one = doc.replacen(a, a2, 1);
                    if one.contains(b) {
                        cases.push(one.replacen(b, b2, 1));
                    }
                }
            }
        }
        // A wrong place and a syntax or type error after it, or before it.
        for (from, to) in WRONG.iter().filter(|(f, _)| doc.contains(f)).step_by(5) {
            let wrong = doc.replacen(from, to, 1);
            for (i, _) in wrong.char_indices().step_by(29) {
                for with in BROKEN {
                    let mut s = wrong.clone();
                    let end = s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                    s.replace_range(i..end, with);
                    cases.push(s);
                }
            }
        }
        for cut in (1..doc.len()).step_by(13) {
            cases.push(doc[..cut].into());
        }
    }
    let mut differ = Vec::new();
    let mut refused = 0;
    // Piece sizes from one byte on, a different one for each case.
    let pieces = [1, 2, 3, 4, 5, 7, 11, 16, 64, 333, 4096];
    for (n, case) in cases.iter().enumerate() {
        differ.extend(compare(
            case.as_bytes(),
            &settings,
            pieces[n % pieces.len()],
        ));
        refused += usize::from(Plugin::from_bytes(case.as_bytes(), &who()).is_err());
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        cases.len() * 2,
        differ[..differ.len().min(10)].join("\n")
    );
    assert!(
        refused * 10 > cases.len() * 9,
        "the mutations break the documents"
    );
}
