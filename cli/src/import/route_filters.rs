//! An HTTPRoute rule's filters, `timeouts` and `retry` as istiod turns them
//! into a VirtualService's route policies (`convertHTTPRoute` and
//! `createHeadersFilter`, `createRewriteFilter`, `createMirrorFilter` in
//! `pilot/pkg/config/kube/gateway/conversion.go`), which the rules carry
//! and the routing glue applies as it applies a VirtualService's.

use serde_json::{json, Map, Value};

/// The route policies of one HTTPRoute rule.
#[derive(Debug, Default)]
pub struct RulePolicies {
    /// The VirtualService fields (`headers`, `rewrite`, `mirrors`,
    /// `timeout`, `retries`).
    pub policies: Map<String, Value>,
    /// `URLRewrite` with `ReplacePrefixMatch: /`: istiod removes each
    /// match's path prefix with a regex built from it, so the rewrite is
    /// written per match ([`remove_prefix`]).
    pub remove_prefix: bool,
}

/// What could not be converted: the path and why (istiod refuses the
/// route then).
pub type Refused = (String, String);

fn refused<T>(path: &str, why: impl Into<String>) -> Result<T, Refused> {
    Err((path.to_string(), why.into()))
}

/// The filter types converted here.
pub const CONVERTED: [&str; 4] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "URLRewrite",
    "RequestMirror",
];

/// Converts the filters of `kinds` in [`CONVERTED`], `timeouts` and
/// `retry` of `rule` (at `path`); `service_host(name, namespace)` names a
/// backend Service's host.
pub fn convert(
    rule: &Value,
    path: &str,
    service_host: &dyn Fn(&str, Option<&str>) -> String,
) -> Result<RulePolicies, Refused> {
    let mut out = RulePolicies::default();
    let mut headers = Map::new();
    let mut mirrors = Vec::new();
    let filters = rule.get("filters").and_then(Value::as_array);
    for (fi, f) in filters.into_iter().flatten().enumerate() {
        let fpath = format!("{path}.filters[{fi}]");
        match f.get("type").and_then(Value::as_str).unwrap_or_default() {
            kind @ ("RequestHeaderModifier" | "ResponseHeaderModifier") => {
                let (field, side) = if kind == "RequestHeaderModifier" {
                    ("requestHeaderModifier", "request")
                } else {
                    ("responseHeaderModifier", "response")
                };
                let ops = header_filter(f.get(field), &format!("{fpath}.{field}"))?;
                if let Some(ops) = ops {
                    // A later filter of the same type replaces the earlier.
                    headers.insert(side.into(), ops);
                }
            }
            "URLRewrite" => {
                let u = f.get("urlRewrite");
                let upath = format!("{fpath}.urlRewrite");
                let mut rewrite = Map::new();
                if let Some(p) = u.and_then(|u| u.get("path")) {
                    match p.get("type").and_then(Value::as_str) {
                        Some("ReplacePrefixMatch") => {
                            let with = p
                                .get("replacePrefixMatch")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            let uri = with.trim_end_matches('/');
                            if uri.is_empty() {
                                out.remove_prefix = true;
                            } else {
                                rewrite.insert("uri".into(), json!(uri));
                            }
                        }
                        Some("ReplaceFullPath") => {
                            let with = p
                                .get("replaceFullPath")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            rewrite.insert(
                                "uriRegexRewrite".into(),
                                json!({"match": "/.*", "rewrite": with}),
                            );
                        }
                        other => {
                            return refused(
                                &format!("{upath}.path.type"),
                                format!("{other:?}: give ReplacePrefixMatch or ReplaceFullPath"),
                            )
                        }
                    }
                }
                if let Some(h) = u.and_then(|u| u.get("hostname")).and_then(Value::as_str) {
                    rewrite.insert("authority".into(), json!(h));
                }
                out.policies.remove("rewrite");
                out.remove_prefix &= !rewrite.contains_key("uri");
                if !rewrite.is_empty() {
                    out.policies
                        .insert("rewrite".into(), Value::Object(rewrite));
                }
            }
            "RequestMirror" => {
                let m = f.get("requestMirror");
                let mpath = format!("{fpath}.requestMirror");
                let b = m.and_then(|m| m.get("backendRef"));
                let kind = b
                    .and_then(|b| b.get("kind"))
                    .and_then(Value::as_str)
                    .unwrap_or("Service");
                let group = b
                    .and_then(|b| b.get("group"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = b.and_then(|b| b.get("name")).and_then(Value::as_str);
                let port = b.and_then(|b| b.get("port")).and_then(Value::as_u64);
                let (Some(name), Some(port), "Service", "" | "core") = (name, port, kind, group)
                else {
                    return refused(
                        &format!("{mpath}.backendRef"),
                        "canary-router mirrors to a Service with a name and a port only",
                    );
                };
                let ns = b.and_then(|b| b.get("namespace")).and_then(Value::as_str);
                let mut mirror = json!({"destination": {"host": service_host(name, ns), "port": {"number": port}}});
                let fraction = m.and_then(|m| m.get("fraction"));
                let percent = m.and_then(|m| m.get("percent")).and_then(Value::as_f64);
                if let Some(f) = fraction {
                    let n = f.get("numerator").and_then(Value::as_f64).unwrap_or(0.0);
                    let d = f
                        .get("denominator")
                        .and_then(Value::as_f64)
                        .unwrap_or(100.0);
                    if d <= 0.0 {
                        return refused(
                            &format!("{mpath}.fraction.denominator"),
                            "not a positive number",
                        );
                    }
                    mirror["percentage"] = json!({"value": 100.0 * n / d});
                } else if let Some(p) = percent {
                    mirror["percentage"] = json!({"value": p});
                }
                mirrors.push(mirror);
            }
            _ => {}
        }
    }
    if !headers.is_empty() {
        out.policies
            .insert("headers".into(), Value::Object(headers));
    }
    if !mirrors.is_empty() {
        out.policies.insert("mirrors".into(), Value::Array(mirrors));
    }
    if let Some(r) = rule.get("retry").filter(|r| !r.is_null()) {
        let rpath = format!("{path}.retry");
        // "Implementations SHOULD retry on connection errors".
        let mut on = vec![
            "connect-failure".to_string(),
            "refused-stream".into(),
            "unavailable".into(),
            "cancelled".into(),
        ];
        for (i, c) in r
            .get("codes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(c) = c.as_u64() else {
                return refused(&format!("{rpath}.codes[{i}]"), "not a status code");
            };
            on.push(c.to_string());
        }
        let attempts = r.get("attempts").and_then(Value::as_u64).unwrap_or(2);
        let mut retries = json!({"attempts": attempts});
        if attempts > 0 {
            retries["retryOn"] = json!(on.join(","));
        }
        if let Some(b) = r.get("backoff").and_then(Value::as_str) {
            retries["backoff"] = json!(b);
        }
        out.policies.insert("retries".into(), retries);
    }
    if let Some(t) = rule.get("timeouts").filter(|t| !t.is_null()) {
        let tpath = format!("{path}.timeouts");
        let nonzero = |k: &str| -> Result<Option<&str>, Refused> {
            match t.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(d)) => match canary_router::domain::guard::parse_duration(d) {
                    Some(0) => Ok(None),
                    Some(_) => Ok(Some(d)),
                    None => refused(&format!("{tpath}.{k}"), format!("`{d}` is not a duration")),
                },
                Some(_) => refused(&format!("{tpath}.{k}"), "not a duration string"),
            }
        };
        if let Some(request) = nonzero("request")? {
            out.policies.insert("timeout".into(), json!(request));
        }
        if let Some(backend) = nonzero("backendRequest")? {
            match out.policies.get_mut("retries") {
                Some(r) => r["perTryTimeout"] = json!(backend),
                None => {
                    out.policies.insert("timeout".into(), json!(backend));
                }
            }
        }
    }
    Ok(out)
}

/// `createHeadersFilter`: `set` and `add` as maps (names lower-cased, the
/// first of equal names kept), `remove` as given.
fn header_filter(f: Option<&Value>, path: &str) -> Result<Option<Value>, Refused> {
    let Some(f) = f.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let mut ops = Map::new();
    for op in ["set", "add"] {
        let mut map = Map::new();
        for (i, h) in f
            .get(op)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let hpath = format!("{path}.{op}[{i}]");
            let (Some(name), Some(value)) = (
                h.get("name").and_then(Value::as_str),
                h.get("value").and_then(Value::as_str),
            ) else {
                return refused(&hpath, "needs a name and a value");
            };
            if value
                .bytes()
                .any(|c| !(c == 0x09 || (c >= 0x20 && c != 0x7f)))
            {
                return refused(
                    &hpath,
                    format!("header {name:?} value contains invalid characters"),
                );
            }
            map.entry(name.to_ascii_lowercase())
                .or_insert_with(|| json!(value));
        }
        if !map.is_empty() {
            ops.insert(op.into(), Value::Object(map));
        }
    }
    if let Some(r) = f.get("remove").filter(|r| !r.is_null()) {
        ops.insert("remove".into(), r.clone());
    }
    Ok(Some(Value::Object(ops)))
}

/// istiod's rewrite for `ReplacePrefixMatch: /` on a route whose path match
/// is the element-wise prefix `prefix` (none: ``): the prefix removed, a
/// `/` kept.
pub fn remove_prefix(prefix: Option<&str>) -> Value {
    let quoted: String = prefix
        .unwrap_or_default()
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect();
    json!({"match": format!("^{quoted}(/?)(.*)"), "rewrite": "/\\2"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: &str, ns: Option<&str>) -> String {
        format!("{n}.{}.svc.cluster.local", ns.unwrap_or("default"))
    }

    #[test]
    fn filters_and_timeouts_convert_as_istiod_converts_them() {
        let rule = json!({
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                    "set": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}],
                    "add": [{"name": "x-b", "value": "3"}], "remove": ["x-c"]}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-r", "value": "4"}]}},
                {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2/"}, "hostname": "b.example"}},
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 8080}, "fraction": {"numerator": 1, "denominator": 4}}}
            ],
            "timeouts": {"request": "10s", "backendRequest": "2s"}
        });
        let p = convert(&rule, "spec.rules[0]", &host).unwrap();
        assert!(!p.remove_prefix);
        assert_eq!(
            Value::Object(p.policies),
            json!({
                "headers": {"request": {"set": {"x-a": "1"}, "add": {"x-b": "3"}, "remove": ["x-c"]},
                            "response": {"set": {"x-r": "4"}}},
                "rewrite": {"uri": "/v2", "authority": "b.example"},
                "mirrors": [{"destination": {"host": "shadow.default.svc.cluster.local", "port": {"number": 8080}},
                             "percentage": {"value": 25.0}}],
                "timeout": "2s"
            })
        );
        let with_retry = json!({"retry": {"codes": [503], "attempts": 3}, "timeouts": {"backendRequest": "1s", "request": "0s"}});
        let p = convert(&with_retry, "r", &host).unwrap();
        assert_eq!(
            Value::Object(p.policies),
            json!({"retries": {"attempts": 3, "retryOn": "connect-failure,refused-stream,unavailable,cancelled,503", "perTryTimeout": "1s"}})
        );
        let strip = json!({"filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]});
        let p = convert(&strip, "r", &host).unwrap();
        assert!(p.remove_prefix && p.policies.is_empty());
        assert_eq!(
            remove_prefix(Some("/api.v1")),
            json!({"match": "^/api\\.v1(/?)(.*)", "rewrite": "/\\2"})
        );
        let bad = json!({"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "a\nb"}]}}]});
        assert_eq!(
            convert(&bad, "r", &host).unwrap_err().0,
            "r.filters[0].requestHeaderModifier.set[0]"
        );
    }
}
