//! Envoy's own route configuration for a rule set, built the way istiod
//! builds it from a VirtualService, so that a real Envoy can be the oracle
//! of every match semantic: the same requests sent to these native routes
//! and to canary-router must reach the same destination.
//!
//! The translation follows Istio's `pilot/pkg/networking/core/route/route.go`:
//! - `BuildHTTPRoutesForVirtualService`: one Envoy route per match entry, in
//!   rule order (a rule without `match` is one route matching everything);
//!   after a catch-all route ([`is_catch_all`]) nothing more is emitted.
//! - `TranslateRouteMatch`: `uri` becomes `path` (exact), `prefix` or
//!   `safe_regex`, and `pathPrefix` (canary-router's form of Gateway API's
//!   `PathPrefix`, which istiod writes for an HTTPRoute's prefix other than
//!   `/`) `path_separated_prefix`; `ignoreUriCase` becomes `case_sensitive: false`, which
//!   Envoy applies to `path` and `prefix` only; `method`, `authority` and
//!   `scheme` become header matchers on `:method`, `:authority`, `:scheme`;
//!   `queryParams` become `query_parameters`.
//! - `translateHeaderMatch`: `{}`, and the regex `*` (which Istio reads as a
//!   wildcard, not RE2), become `present_match: true`; otherwise a
//!   `string_match` (`exact`, `prefix`, `safe_regex`).
//! - `withoutHeaders`: the same matcher with `invert_match: true`, and
//!   `treat_missing_header_as_empty: true` unless it is a presence match.
//! - `translateQueryParamMatch`: `{}` or `*` becomes `present_match: true`,
//!   otherwise a `string_match`.
//!
//! Input is the rule set as JSON (an `http` list in canary-router's, that is
//! Istio's, shape), so callers with other sources (a VirtualService, Gateway
//! API routes) can use it too. Fields with no `RouteMatch` counterpart
//! (`port`, which selects the listener's route configuration, and the
//! source conditions, which select the proxy) are refused by name.

use serde_json::{json, Map, Value};

use super::Error;

/// The Envoy routes of an `http` list, in order. `action(rule, name)` gives
/// the action fields of the routes of rule `rule` (e.g. `{"route": ...}` or
/// `{"direct_response": ...}`), merged into each route beside `match`.
pub fn routes(
    http: &Value,
    mut action: impl FnMut(usize, &str) -> Value,
) -> Result<Vec<Value>, Error> {
    let rules = http
        .as_array()
        .ok_or_else(|| Error::new("http: not a list"))?;
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let name = rule
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("http-{i}"), str::to_string);
        let entries = match rule.get("match").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(mi, m)| route_match(m).map_err(|e| at(&format!("http[{i}].match[{mi}]"), e)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![route_match(&json!({}))?],
        };
        let mut catch_all = false;
        for m in entries {
            catch_all = is_catch_all(&m);
            let mut route = Map::new();
            route.insert("name".into(), Value::String(name.clone()));
            route.insert("match".into(), m);
            if let Value::Object(fields) = action(i, &name) {
                route.extend(fields);
            }
            out.push(Value::Object(route));
            if catch_all {
                break;
            }
        }
        if catch_all {
            break;
        }
    }
    Ok(out)
}

fn at(path: &str, e: Error) -> Error {
    Error::new(format!("{path}.{}", e.message()))
}

/// What [`route_match`] makes of a match entry's field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// A part of the `RouteMatch`.
    RouteMatch,
    /// Nothing: informational (`name`).
    Ignored,
    /// No `RouteMatch` counterpart: refused by name, for this reason.
    Refused(&'static str),
}

/// Every field of a match entry (the filter's `MatchRequest`; a test holds
/// this list to its declaration) and what the translation makes of it.
pub const MATCH_FIELDS: [(&str, Native); 12] = [
    ("name", Native::Ignored),
    ("uri", Native::RouteMatch),
    ("scheme", Native::RouteMatch),
    ("method", Native::RouteMatch),
    ("authority", Native::RouteMatch),
    ("headers", Native::RouteMatch),
    ("withoutHeaders", Native::RouteMatch),
    (
        "port",
        Native::Refused("it selects the listener's route configuration"),
    ),
    ("queryParams", Native::RouteMatch),
    ("ignoreUriCase", Native::RouteMatch),
    ("sourceLabels", Native::Refused("it selects the proxy")),
    ("sourceNamespace", Native::Refused("it selects the proxy")),
];

/// Envoy's `RouteMatch` for one match entry (an Istio `HTTPMatchRequest`),
/// as Istio's `TranslateRouteMatch` writes it.
pub fn route_match(m: &Value) -> Result<Value, Error> {
    let m = m
        .as_object()
        .ok_or_else(|| Error::new("match entry: not an object"))?;
    for key in m.keys() {
        match MATCH_FIELDS.iter().find(|(f, _)| f == key) {
            Some((_, Native::RouteMatch | Native::Ignored)) => {}
            Some((_, Native::Refused(why))) => {
                return Err(Error::new(format!(
                    "{key}: not translated to a RouteMatch: {why}"
                )))
            }
            None => return Err(Error::new(format!("{key}: not a match field"))),
        }
    }
    let mut out = Map::new();
    let mut headers = Vec::new();
    for (name, sm) in object(m.get("headers"), "headers")? {
        headers.push(header_matcher(name, sm, false)?);
    }
    for (name, sm) in object(m.get("withoutHeaders"), "withoutHeaders")? {
        headers.push(header_matcher(name, sm, true)?);
    }
    // Istio sorts the header matchers by name (they are ANDed, so this is
    // only for a stable output).
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    match m.get("uri") {
        None => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(uri) => {
            let (key, value) = match kind(uri).map_err(|e| at("uri", e))? {
                Kind::Exact(v) => ("path", json!(v)),
                Kind::Prefix(v) => ("prefix", json!(v)),
                Kind::Regex(v) => ("safe_regex", json!({ "regex": v })),
                Kind::PathPrefix(v) => ("path_separated_prefix", json!(v)),
                Kind::Present => return Err(Error::new("uri: no match kind")),
            };
            out.insert(key.into(), value);
        }
    }
    let ignore_case = m
        .get("ignoreUriCase")
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| Error::new("ignoreUriCase: not a boolean"))
        })
        .transpose()?
        .unwrap_or(false);
    out.insert("case_sensitive".into(), json!(!ignore_case));
    for (field, pseudo) in [
        ("method", ":method"),
        ("authority", ":authority"),
        ("scheme", ":scheme"),
    ] {
        if let Some(sm) = m.get(field) {
            headers.push(header_matcher(pseudo, sm, false).map_err(|e| at(field, e))?);
        }
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    let query: Vec<Value> = object(m.get("queryParams"), "queryParams")?
        .map(|(name, sm)| {
            Ok(
                match kind(sm).map_err(|e| at(&format!("queryParams.{name}"), e))? {
                    Kind::Present => json!({ "name": name, "present_match": true }),
                    k => json!({ "name": name, "string_match": string_matcher(&k)? }),
                },
            )
        })
        .collect::<Result<_, Error>>()?;
    if !query.is_empty() {
        out.insert("query_parameters".into(), Value::Array(query));
    }
    Ok(Value::Object(out))
}

/// Whether a `RouteMatch` matches every request, as Istio's
/// `IsCatchAllRoute` judges it: path prefix `/` or regex `.*`, and no header
/// or query parameter condition.
pub fn is_catch_all(m: &Value) -> bool {
    let path = m.get("prefix").and_then(Value::as_str) == Some("/")
        || m.get("path_separated_prefix").and_then(Value::as_str) == Some("/")
        || m.pointer("/safe_regex/regex").and_then(Value::as_str) == Some(".*");
    path && m.get("headers").is_none() && m.get("query_parameters").is_none()
}

/// A `HeaderMatcher` as Istio's `translateHeaderMatch` writes it, inverted
/// for `withoutHeaders`.
fn header_matcher(name: &str, sm: &Value, without: bool) -> Result<Value, Error> {
    let k = kind(sm).map_err(|e| at(name, e))?;
    let mut out = match &k {
        Kind::Present => json!({ "name": name, "present_match": true }),
        k => json!({ "name": name, "string_match": string_matcher(k).map_err(|e| at(name, e))? }),
    };
    if without {
        out["invert_match"] = json!(true);
        // Istio: "treat_missing_header_as_empty conflict with present_match".
        if !matches!(k, Kind::Present) {
            out["treat_missing_header_as_empty"] = json!(true);
        }
    }
    Ok(out)
}

/// An Istio `StringMatch`, read.
enum Kind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
    /// `pathPrefix` (in `uri` only).
    PathPrefix(&'a str),
    /// `{}`, or the regex `*` (Istio's `canBeConvertedToPresentMatch`).
    Present,
}

/// The kinds of a StringMatch (the filter's `StringMatch` fields; a test
/// holds this list to its declaration).
pub const STRING_MATCH_KINDS: [&str; 4] = ["exact", "prefix", "regex", "pathPrefix"];

fn kind(sm: &Value) -> Result<Kind<'_>, Error> {
    let sm = sm
        .as_object()
        .ok_or_else(|| Error::new("not a StringMatch object"))?;
    if let Some(k) = sm
        .keys()
        .find(|k| !STRING_MATCH_KINDS.contains(&k.as_str()))
    {
        return Err(Error::new(format!("{k}: not a StringMatch kind")));
    }
    let text = |k: &str| sm.get(k).and_then(Value::as_str);
    if sm.len() > 1 {
        return Err(Error::new("more than one match kind"));
    }
    Ok(
        match (
            text("exact"),
            text("prefix"),
            text("regex"),
            text("pathPrefix"),
        ) {
            (Some(v), _, _, _) => Kind::Exact(v),
            (_, Some(v), _, _) => Kind::Prefix(v),
            (_, _, Some("*"), _) => Kind::Present,
            (_, _, Some(v), _) => Kind::Regex(v),
            (_, _, _, Some(v)) => Kind::PathPrefix(v),
            _ if sm.is_empty() => Kind::Present,
            _ => return Err(Error::new("a match kind that is not a string")),
        },
    )
}

/// Istio's `ConvertToEnvoyMatch`: an Envoy `StringMatcher`.
fn string_matcher(k: &Kind<'_>) -> Result<Value, Error> {
    Ok(match k {
        Kind::Exact(v) => json!({ "exact": v }),
        Kind::Prefix(v) => json!({ "prefix": v }),
        Kind::Regex(v) => json!({ "safe_regex": { "regex": v } }),
        Kind::Present => json!({}),
        Kind::PathPrefix(_) => return Err(Error::new("pathPrefix: for uri only")),
    })
}

fn object<'a>(
    v: Option<&'a Value>,
    field: &str,
) -> Result<impl Iterator<Item = (&'a str, &'a Value)>, Error> {
    let map = match v {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(Error::new(format!("{field}: not an object"))),
    };
    Ok(map.into_iter().flatten().map(|(k, v)| (k.as_str(), v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_router::schema::config::{MatchRequest, StringMatch};
    use canary_router::schema::decode::Shape;

    /// A value of `shape`, as a match entry would give it.
    fn sample(shape: Shape) -> Value {
        match shape {
            Shape::Str => json!("/v"),
            Shape::U64 | Shape::I64 => json!(80),
            Shape::F64 => json!(0.5),
            Shape::Bool => json!(true),
            Shape::Option(s) => sample(s()),
            Shape::Seq(s) => json!([sample(s())]),
            Shape::Map(s) => json!({ "x-k": sample(s()) }),
            Shape::Struct(s) => {
                let f = &s().fields[0];
                json!({ f.json: sample(f.shape) })
            }
            Shape::Json => json!({}),
        }
    }

    /// The translation knows every field of a match entry the filter
    /// declares (and no other): each one it translates changes the
    /// `RouteMatch`, the ignored one does not, the others are refused by
    /// name; and every StringMatch kind translates, each differently.
    #[test]
    fn every_declared_match_field_is_translated_or_refused_by_name() {
        let ours: Vec<&str> = MATCH_FIELDS.iter().map(|(f, _)| *f).collect();
        assert_eq!(ours, MatchRequest::FIELDS, "native.rs's MATCH_FIELDS");
        let empty = route_match(&json!({})).unwrap();
        for field in MatchRequest::schema().fields {
            let (_, native) = MATCH_FIELDS.iter().find(|(f, _)| *f == field.json).unwrap();
            let mut entry = json!({ field.json: sample(field.shape) });
            if field.json == "ignoreUriCase" {
                entry["uri"] = json!({"prefix": "/v"});
                assert_ne!(
                    route_match(&entry).unwrap(),
                    route_match(&json!({"uri": {"prefix": "/v"}})).unwrap()
                );
                continue;
            }
            match (native, route_match(&entry)) {
                (Native::RouteMatch, Ok(m)) => assert_ne!(m, empty, "{entry}"),
                (Native::Ignored, Ok(m)) => assert_eq!(m, empty, "{entry}"),
                (Native::Refused(_), Err(e)) => {
                    assert!(
                        e.message().starts_with(&format!("{}: ", field.json)),
                        "{e:?}"
                    )
                }
                (n, r) => panic!("{entry}: {n:?} but {r:?}"),
            }
        }
        assert_eq!(
            STRING_MATCH_KINDS,
            StringMatch::FIELDS,
            "native.rs's STRING_MATCH_KINDS"
        );
        let mut seen = Vec::new();
        for kind in StringMatch::FIELDS {
            let m = route_match(&json!({"uri": { *kind: "/v" }})).unwrap();
            assert!(!seen.contains(&m), "{kind}: {m}");
            seen.push(m);
        }
    }

    #[test]
    fn match_entries_translate_as_istiod_writes_them() {
        let m = route_match(&json!({
            "uri": {"regex": "/a.*"},
            "ignoreUriCase": true,
            "method": {"exact": "GET"},
            "headers": {"x-b": {"regex": "*"}, "x-a": {}},
            "withoutHeaders": {"x-c": {"exact": ""}, "x-d": {"regex": "*"}},
            "queryParams": {"q": {"prefix": "p"}, "r": {}}
        }))
        .unwrap();
        assert_eq!(
            m,
            json!({
                "safe_regex": {"regex": "/a.*"},
                "case_sensitive": false,
                "headers": [
                    {"name": "x-a", "present_match": true},
                    {"name": "x-b", "present_match": true},
                    {"name": "x-c", "string_match": {"exact": ""}, "invert_match": true,
                     "treat_missing_header_as_empty": true},
                    {"name": "x-d", "present_match": true, "invert_match": true},
                    {"name": ":method", "string_match": {"exact": "GET"}}
                ],
                "query_parameters": [
                    {"name": "q", "string_match": {"prefix": "p"}},
                    {"name": "r", "present_match": true}
                ]
            })
        );
        assert!(route_match(&json!({"port": 80})).is_err());
        assert_eq!(
            route_match(&json!({"uri": {"pathPrefix": "/api"}})).unwrap(),
            json!({"path_separated_prefix": "/api", "case_sensitive": true})
        );
        assert!(route_match(&json!({"uri": {}})).is_err());
    }

    #[test]
    fn routes_stop_after_a_catch_all() {
        let http = json!([
            {"name": "a", "match": [{"headers": {"x": {"exact": "1"}}}, {"uri": {"prefix": "/"}}, {"uri": {"exact": "/z"}}]},
            {"name": "b"}
        ]);
        let out = routes(
            &http,
            |i, name| json!({"direct_response": {"status": 200 + i}, "n": name}),
        )
        .unwrap();
        let names: Vec<&str> = out.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "a"]);
        assert!(is_catch_all(&out[1]["match"]));
        assert!(!is_catch_all(&out[0]["match"]));
        let rest = routes(
            &json!([{"match": [{"uri": {"exact": "/z"}}]}, {}]),
            |_, _| json!({}),
        )
        .unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1]["name"], "http-1");
        assert_eq!(
            rest[1]["match"],
            json!({"prefix": "/", "case_sensitive": true})
        );
    }
}
