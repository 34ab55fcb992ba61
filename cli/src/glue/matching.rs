//! A rule's match entries as istiod writes them into an Envoy route
//! (`TranslateRouteMatch`, `translateHeaderMatch`,
//! `translateQueryParamMatch` in `pilot/pkg/networking/core/route`), for
//! the glue routes of rules that carry route policies: a URI rewrite is a
//! `prefix_rewrite` relative to the route's own path match, and the route's
//! name and tracing operation come from its match too.
//!
//! The filter already matched the request; the glue route repeats the
//! entry's conditions only so that the route Envoy selects is the one
//! istiod would have built for that entry. Source conditions and `port`
//! have no Envoy counterpart: a proxy whose labels the entry does not
//! select never routes by it, and the glue of a port skips entries for
//! other ports, as istiod does.

use serde_json::{json, Map, Value};

/// Envoy's `RouteMatch` for a match entry (`None`: the rule has no match
/// entries, which matches every request).
pub fn route_match(entry: Option<&Value>) -> Value {
    let mut out = Map::new();
    let Some(m) = entry.and_then(Value::as_object) else {
        out.insert("prefix".into(), json!("/"));
        return Value::Object(out);
    };
    let mut headers = Vec::new();
    for (field, invert) in [("headers", false), ("withoutHeaders", true)] {
        for (name, sm) in m
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let mut h = header_matcher(name, sm);
            if invert {
                h.insert("invert_match".into(), json!(true));
                // "treat_missing_header_as_empty conflict with present_match".
                if !present(sm) {
                    h.insert("treat_missing_header_as_empty".into(), json!(true));
                }
            }
            headers.push(Value::Object(h));
        }
    }
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let (key, value) = match m.get("uri").and_then(Value::as_object) {
        Some(u) if u.contains_key("exact") => ("path", u["exact"].clone()),
        Some(u) if u.contains_key("prefix") => ("prefix", u["prefix"].clone()),
        Some(u) if u.contains_key("regex") => ("safe_regex", json!({"regex": u["regex"]})),
        Some(u) if u.contains_key("pathPrefix") => {
            ("path_separated_prefix", u["pathPrefix"].clone())
        }
        _ => ("prefix", json!("/")),
    };
    out.insert(key.into(), value);
    let ignore_case = m.get("ignoreUriCase").and_then(Value::as_bool) == Some(true);
    out.insert("case_sensitive".into(), json!(!ignore_case));
    for (field, pseudo) in [
        ("method", ":method"),
        ("authority", ":authority"),
        ("scheme", ":scheme"),
    ] {
        if let Some(sm) = m.get(field).filter(|v| !v.is_null()) {
            headers.push(Value::Object(header_matcher(pseudo, sm)));
        }
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    let query: Vec<Value> = m
        .get("queryParams")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, sm)| {
            if present(sm) {
                json!({"name": name, "present_match": true})
            } else {
                json!({"name": name, "string_match": string_matcher(sm)})
            }
        })
        .collect();
    if !query.is_empty() {
        out.insert("query_parameters".into(), Value::Array(query));
    }
    Value::Object(out)
}

/// `canBeConvertedToPresentMatch`: `{}`, or the regex `*`.
fn present(sm: &Value) -> bool {
    match sm.as_object() {
        None => true,
        Some(o) => o.is_empty() || o.get("regex").and_then(Value::as_str) == Some("*"),
    }
}

fn header_matcher(name: &str, sm: &Value) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("name".into(), json!(name));
    if present(sm) {
        h.insert("present_match".into(), json!(true));
    } else {
        h.insert("string_match".into(), string_matcher(sm));
    }
    h
}

/// `ConvertToEnvoyMatch`.
fn string_matcher(sm: &Value) -> Value {
    let text = |k: &str| sm.get(k).and_then(Value::as_str);
    match (text("exact"), text("prefix"), text("regex")) {
        (Some(v), _, _) => json!({"exact": v}),
        (_, Some(v), _) => json!({"prefix": v}),
        (_, _, Some(v)) => json!({"safe_regex": {"regex": v}}),
        _ => json!({}),
    }
}

/// `IsCatchAllRoute`: every path, and no header or query condition.
pub fn is_catch_all(m: &Value) -> bool {
    let path = m.get("prefix").and_then(Value::as_str) == Some("/")
        || m.get("path_separated_prefix").and_then(Value::as_str) == Some("/")
        || m.pointer("/safe_regex/regex").and_then(Value::as_str) == Some(".*");
    path && m.get("headers").is_none() && m.get("query_parameters").is_none()
}

/// `GetRouteOperation` for a route to one cluster: `<host>:<port><path>`
/// for an Istio cluster, `<service>:<port><path>` for another.
pub fn operation(m: &Value, cluster: &str, service: &str, port: u16) -> String {
    let path = if let Some(p) = m.get("prefix").and_then(Value::as_str) {
        format!("{p}*")
    } else if let Some(p) = m.get("path").and_then(Value::as_str) {
        p.to_string()
    } else if let Some(r) = m.pointer("/safe_regex/regex").and_then(Value::as_str) {
        r.to_string()
    } else {
        "/*".to_string()
    };
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("outbound"), Some(p), Some(_), Some(host), None) if p.parse::<u16>().is_ok() => {
            format!("{host}:{p}{path}")
        }
        _ => format!("{service}:{port}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_translate_as_istiod_writes_them() {
        let m = route_match(Some(&json!({
            "uri": {"prefix": "/api"}, "ignoreUriCase": true, "method": {"exact": "GET"},
            "headers": {"x-b": {"regex": "*"}, "x-a": {"exact": "1"}},
            "withoutHeaders": {"x-c": {"prefix": "p"}, "x-d": {}},
            "queryParams": {"q": {"regex": "a.*"}}, "sourceLabels": {"app": "x"}, "port": 80
        })));
        assert_eq!(
            m,
            json!({
                "prefix": "/api", "case_sensitive": false,
                "headers": [
                    {"name": "x-a", "string_match": {"exact": "1"}},
                    {"name": "x-b", "present_match": true},
                    {"name": "x-c", "string_match": {"prefix": "p"}, "invert_match": true, "treat_missing_header_as_empty": true},
                    {"name": "x-d", "present_match": true, "invert_match": true},
                    {"name": ":method", "string_match": {"exact": "GET"}}
                ],
                "query_parameters": [{"name": "q", "string_match": {"safe_regex": {"regex": "a.*"}}}]
            })
        );
        assert!(!is_catch_all(&m));
        assert!(is_catch_all(&route_match(None)));
        assert!(is_catch_all(&route_match(Some(
            &json!({"uri": {"regex": ".*"}})
        ))));
        assert_eq!(
            operation(
                &m,
                "outbound|9080|v2|reviews.default.svc.cluster.local",
                "s",
                1
            ),
            "reviews.default.svc.cluster.local:9080/api*"
        );
        assert_eq!(
            operation(&route_match(None), "plain", "svc", 80),
            "svc:80/*"
        );
        let exact = route_match(Some(&json!({"uri": {"exact": "/login"}})));
        assert_eq!(operation(&exact, "outbound|80||a", "s", 80), "a:80/login");
    }
}
