//! The rest of the routes istiod builds from a VirtualService, beside their
//! matches ([`crate::native`]): the action (a cluster, or weighted
//! clusters), the mesh defaults every outbound route carries, the rule's own
//! route policies, and the tracing decorator. The oracle of what a request
//! keeps on its route: the same requests sent through these routes and
//! through canary-router with its rendered glue must be treated alike.
//!
//! The translation follows Istio's `pilot/pkg/networking/core/route`:
//! - `applyHTTPRouteDestination`: `setTimeout` (the rule's `timeout`, else
//!   `0s`; `max_grpc_timeout` the same), the rule's `retries` or the mesh
//!   default through `retry.ConvertPolicy` (2 retries on
//!   `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`,
//!   `previous_hosts`, 5 host selection attempts; `attempts: 0` none;
//!   `retryOn` status codes into `retriable_status_codes`), `rewrite`
//!   (`prefix_rewrite` or `regex_rewrite`, `host_rewrite_literal`),
//!   `mirror` with `mirrorPercentage` (per million; none given: 100 per
//!   hundred) and `mirrors`, a lone destination as `cluster`, several as
//!   `weighted_clusters` without the 0-weight ones;
//! - `TranslateHeadersOperations`: `set` (overwrite) then `add` (append),
//!   each sorted by name, `remove`; `:authority`/`host` become the host
//!   rewrite; a lone destination's operations after the rule's;
//! - `TranslateFault` and `TranslateCORSPolicy` into `typed_per_filter_config`;
//! - `GetRouteOperation`: `<host>:<port><path>` for a lone Istio cluster,
//!   `<VirtualService>:<port><path>` otherwise.
//!
//! Only the fields the tests use are translated; any other is refused by
//! name, so that a test cannot rely on one this oracle ignores.

use serde_json::{json, Map, Value};

use crate::Error;

const RULE_FIELDS: [&str; 12] = [
    "name",
    "match",
    "route",
    "timeout",
    "retries",
    "headers",
    "rewrite",
    "mirror",
    "mirrorPercentage",
    "mirrors",
    "fault",
    "corsPolicy",
];

/// The Envoy routes istiod builds from a VirtualService's `http` list on
/// listener port `port`: each match entry's route (as [`crate::native::routes`])
/// with its rule's action, policies and decorator. `cluster(destination)`
/// names the cluster of an Istio `Destination` (hosts as written).
pub fn routes(
    http: &Value,
    vs_name: &str,
    port: u16,
    cluster: &dyn Fn(&Value) -> String,
) -> Result<Vec<Value>, Error> {
    let rules = http
        .as_array()
        .ok_or_else(|| Error::new("http: not a list"))?;
    let mut actions = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        actions.push(
            action(rule, cluster).map_err(|e| Error::new(format!("http[{i}].{}", e.message())))?,
        );
    }
    let mut out = crate::native::routes(http, |i, _| actions[i].clone())?;
    // istiod names a route after its rule and its match entry (`rule.match`);
    // a rule without a name gives none.
    for (route, (rule, entry)) in out.iter_mut().zip(route_rules(rules)) {
        let mut name = rule.get("name").and_then(Value::as_str).map(str::to_string);
        if let Some(m) = entry
            .and_then(|e| e["name"].as_str())
            .filter(|m| !m.is_empty())
        {
            name = Some(format!("{}.{m}", name.unwrap_or_default()));
        }
        match name {
            Some(n) => route["name"] = json!(n),
            None => {
                if let Some(r) = route.as_object_mut() {
                    r.remove("name");
                }
            }
        }
        let op = operation(route, vs_name, port);
        route["decorator"] = json!({ "operation": op });
    }
    Ok(out)
}

/// The rule and match entry of each route [`crate::native::routes`] emits,
/// in order.
fn route_rules(rules: &[Value]) -> Vec<(&Value, Option<&Value>)> {
    let mut out = Vec::new();
    for rule in rules {
        match rule.get("match").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => out.extend(list.iter().map(|m| (rule, Some(m)))),
            _ => out.push((rule, None)),
        }
    }
    out
}

fn fraction(numerator: u64, denominator: &str) -> Value {
    json!({ "numerator": numerator, "denominator": denominator })
}

/// An Istio `Percent` per million (`translatePercentToFractionalPercent`).
fn per_million(p: &Value) -> Result<u64, Error> {
    let v = p["value"]
        .as_f64()
        .ok_or_else(|| Error::new("percentage.value: not a number"))?;
    Ok((v * 10000.0) as u64)
}

/// A Go duration written in a VirtualService as Envoy's JSON takes it.
fn duration(v: &Value, field: &str) -> Result<String, Error> {
    let text = v
        .as_str()
        .ok_or_else(|| Error::new(format!("{field}: not a string")))?;
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return Err(Error::new(format!(
            "{field}: {text}: one number with h, m, s or ms"
        )));
    };
    let secs: f64 = number
        .parse::<f64>()
        .map_err(|_| Error::new(format!("{field}: {text}")))?
        * scale;
    Ok(format!("{secs:.3}s"))
}

/// Istio's `HeadersOperations` of a `Headers`: request/response lists and
/// the authority.
fn header_ops(h: &Value) -> Result<(Map<String, Value>, Option<String>), Error> {
    let mut out = Map::new();
    let mut authority = None;
    for (side, prefix) in [("request", "request"), ("response", "response")] {
        let ops = &h[side];
        let mut add = Vec::new();
        for (op, action) in [
            ("set", "OVERWRITE_IF_EXISTS_OR_ADD"),
            ("add", "APPEND_IF_EXISTS_OR_ADD"),
        ] {
            let mut pairs: Vec<(&String, &Value)> =
                ops[op].as_object().into_iter().flatten().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in pairs {
                let lower = k.to_ascii_lowercase();
                if side == "request" && (lower == ":authority" || lower == "host") {
                    authority = v.as_str().map(str::to_string);
                }
                if k.starts_with(':') || lower == "host" {
                    continue;
                }
                add.push(json!({"header": {"key": k, "value": v}, "append_action": action}));
            }
        }
        let remove: Vec<Value> = ops["remove"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n.as_str()
                    .is_some_and(|n| !n.starts_with(':') && !n.eq_ignore_ascii_case("host"))
            })
            .cloned()
            .collect();
        if !add.is_empty() {
            out.insert(format!("{prefix}_headers_to_add"), Value::Array(add));
        }
        if !remove.is_empty() {
            out.insert(format!("{prefix}_headers_to_remove"), Value::Array(remove));
        }
    }
    Ok((out, authority))
}

/// The fields of one rule's routes besides `match` and `name`.
fn action(rule: &Value, cluster: &dyn Fn(&Value) -> String) -> Result<Value, Error> {
    let obj = rule
        .as_object()
        .ok_or_else(|| Error::new("not an object"))?;
    if let Some(k) = obj.keys().find(|k| !RULE_FIELDS.contains(&k.as_str())) {
        return Err(Error::new(format!("{k}: not translated by this oracle")));
    }
    let mut route = Map::new();
    let mut action = Map::new();
    let timeout = match obj.get("timeout") {
        Some(t) => duration(t, "timeout")?,
        None => "0s".to_string(),
    };
    action.insert("timeout".into(), json!(timeout));
    action.insert("max_grpc_timeout".into(), json!(timeout));
    let mut authority = None;
    if let Some(h) = obj.get("headers") {
        let (ops, a) = header_ops(h)?;
        route.extend(ops);
        authority = a;
    }
    if let Some(rw) = obj.get("rewrite") {
        if let Some(re) = rw.get("uriRegexRewrite") {
            action.insert(
                "regex_rewrite".into(),
                json!({ "pattern": { "regex": re["match"] }, "substitution": re["rewrite"] }),
            );
        } else if let Some(uri) = rw["uri"].as_str() {
            action.insert("prefix_rewrite".into(), json!(uri));
        }
        if let Some(a) = rw["authority"].as_str() {
            authority = Some(a.to_string());
        }
    }
    let dests = obj
        .get("route")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::new("route: missing"))?;
    if let [lone] = dests.as_slice() {
        action.insert("cluster".into(), json!(cluster(&lone["destination"])));
        if let Some(h) = lone.get("headers") {
            let (ops, a) = header_ops(h)?;
            for (k, v) in ops {
                match route.get_mut(&k) {
                    Some(Value::Array(have)) => {
                        have.extend(v.as_array().cloned().unwrap_or_default())
                    }
                    _ => {
                        route.insert(k, v);
                    }
                }
            }
            if authority.is_none() {
                authority = a;
            }
        }
    } else {
        let mut clusters = Vec::new();
        for d in dests {
            let w = d["weight"].as_u64().unwrap_or(0);
            if w == 0 {
                continue;
            }
            let mut c = Map::new();
            c.insert("name".into(), json!(cluster(&d["destination"])));
            c.insert("weight".into(), json!(w));
            if let Some(h) = d.get("headers") {
                let (ops, a) = header_ops(h)?;
                c.extend(ops);
                if let Some(a) = a {
                    c.insert("host_rewrite_literal".into(), json!(a));
                }
            }
            clusters.push(Value::Object(c));
        }
        action.insert("weighted_clusters".into(), json!({ "clusters": clusters }));
    }
    if let Some(a) = authority {
        action.insert("host_rewrite_literal".into(), json!(a));
    }
    let mut mirrors = Vec::new();
    let mirror = |d: &Value, p: Option<&Value>| -> Result<Option<Value>, Error> {
        let percent = match p {
            Some(p) => Some(per_million(p)?)
                .filter(|n| *n > 0)
                .map(|n| fraction(n, "MILLION")),
            None => Some(fraction(100, "HUNDRED")),
        };
        Ok(percent.map(|p| {
            json!({ "cluster": cluster(d), "runtime_fraction": { "default_value": p }, "trace_sampled": false })
        }))
    };
    if let Some(m) = obj.get("mirror") {
        mirrors.extend(mirror(m, obj.get("mirrorPercentage"))?);
    }
    for m in obj
        .get("mirrors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        mirrors.extend(mirror(&m["destination"], m.get("percentage"))?);
    }
    if !mirrors.is_empty() {
        action.insert("request_mirror_policies".into(), Value::Array(mirrors));
    }
    let previous_hosts = json!([{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" }
    }]);
    let mut retry = json!({
        "num_retries": 2,
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "host_selection_retry_max_attempts": 5,
        "retry_host_predicate": previous_hosts,
    });
    match obj.get("retries") {
        None => {
            action.insert("retry_policy".into(), retry);
        }
        Some(r) if r["attempts"].as_u64().unwrap_or(0) == 0 => {}
        Some(r) => {
            retry["num_retries"] = r["attempts"].clone();
            if let Some(on) = r["retryOn"].as_str() {
                let (codes, policies): (Vec<&str>, Vec<&str>) = on
                    .split(',')
                    .map(str::trim)
                    .partition(|p| p.parse::<u16>().is_ok());
                let mut on = policies.join(",");
                if !codes.is_empty() {
                    if !on.contains("retriable-status-codes") {
                        on.push_str(",retriable-status-codes");
                    }
                    let codes: Vec<u16> = codes.iter().filter_map(|c| c.parse().ok()).collect();
                    retry["retriable_status_codes"] = json!(codes);
                }
                retry["retry_on"] = json!(on);
            }
            if let Some(t) = r.get("perTryTimeout") {
                retry["per_try_timeout"] = json!(duration(t, "retries.perTryTimeout")?);
            }
            action.insert("retry_policy".into(), retry);
        }
    }
    let mut per_filter = Map::new();
    if let Some(f) = obj.get("fault") {
        let mut fault = json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault" });
        if let Some(a) = f.get("abort") {
            let mut abort = json!({ "http_status": a["httpStatus"] });
            if let Some(p) = a.get("percentage") {
                abort["percentage"] = fraction(per_million(p)?, "MILLION");
            }
            fault["abort"] = abort;
        }
        if let Some(d) = f.get("delay") {
            fault["delay"] = json!({
                "fixed_delay": duration(&d["fixedDelay"], "fault.delay.fixedDelay")?,
                "percentage": fraction(per_million(&d["percentage"])?, "MILLION"),
            });
        }
        per_filter.insert("envoy.filters.http.fault".into(), fault);
    }
    if let Some(c) = obj.get("corsPolicy") {
        let origins: Vec<Value> = c["allowOrigins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| match o.get("regex") {
                Some(r) => json!({ "safe_regex": { "regex": r } }),
                None => o.clone(),
            })
            .collect();
        let join = |k: &str| -> String {
            c[k].as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut cors = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "allow_origin_string_match": origins,
            "filter_enabled": { "default_value": fraction(100, "HUNDRED") },
            "forward_not_matching_preflights": true,
        });
        for (k, field) in [
            ("allow_methods", "allowMethods"),
            ("allow_headers", "allowHeaders"),
            ("expose_headers", "exposeHeaders"),
        ] {
            let v = join(field);
            if !v.is_empty() {
                cors[k] = json!(v);
            }
        }
        if let Some(b) = c.get("allowCredentials") {
            cors["allow_credentials"] = b.clone();
        }
        if let Some(m) = c.get("maxAge") {
            let secs = duration(m, "corsPolicy.maxAge")?;
            cors["max_age"] = json!(secs.trim_end_matches('s').split('.').next().unwrap_or("0"));
        }
        per_filter.insert("envoy.filters.http.cors".into(), cors);
    }
    if !per_filter.is_empty() {
        route.insert("typed_per_filter_config".into(), Value::Object(per_filter));
    }
    route.insert("route".into(), Value::Object(action));
    Ok(Value::Object(route))
}

/// `GetRouteOperation`.
fn operation(route: &Value, vs_name: &str, port: u16) -> String {
    let m = &route["match"];
    let path = if let Some(p) = m["prefix"].as_str() {
        format!("{p}*")
    } else if let Some(p) = m["path"].as_str() {
        p.to_string()
    } else if let Some(r) = m.pointer("/safe_regex/regex").and_then(Value::as_str) {
        r.to_string()
    } else {
        "/*".to_string()
    };
    let cluster = route["route"]["cluster"].as_str().unwrap_or_default();
    let parts: Vec<&str> = cluster.split('|').collect();
    match parts.as_slice() {
        ["outbound", p, _, host] if p.parse::<u16>().is_ok() => format!("{host}:{p}{path}"),
        _ => format!("{vs_name}:{port}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(d: &Value) -> String {
        format!(
            "outbound|{}|{}|{}",
            d["port"]["number"].as_u64().unwrap_or(80),
            d["subset"].as_str().unwrap_or(""),
            d["host"].as_str().unwrap_or("")
        )
    }

    #[test]
    fn routes_carry_istiods_defaults_and_the_rules_policies() {
        let http = json!([
            {"name": "slow", "match": [{"headers": {"x": {"exact": "1"}}}], "timeout": "1s",
             "retries": {"attempts": 3, "retryOn": "5xx,503"},
             "headers": {"request": {"set": {"b": "2", "a": "1"}, "remove": ["c"]}},
             "rewrite": {"uri": "/v2"}, "mirror": {"host": "m"}, "mirrorPercentage": {"value": 50},
             "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
             "route": [{"destination": {"host": "s", "subset": "v1"}}]},
            {"route": [{"destination": {"host": "s", "subset": "v1"}, "weight": 90},
                       {"destination": {"host": "s", "subset": "v2"}, "weight": 10},
                       {"destination": {"host": "s", "subset": "v3"}, "weight": 0}]}
        ]);
        let r = routes(&http, "vs", 80, &c).unwrap();
        assert_eq!(r.len(), 2);
        let a = &r[0]["route"];
        assert_eq!(a["timeout"], "1.000s");
        assert_eq!(a["max_grpc_timeout"], "1.000s");
        assert_eq!(a["retry_policy"]["retry_on"], "5xx,retriable-status-codes");
        assert_eq!(a["retry_policy"]["retriable_status_codes"], json!([503]));
        assert_eq!(a["prefix_rewrite"], "/v2");
        assert_eq!(
            a["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"],
            500000
        );
        assert_eq!(r[0]["request_headers_to_add"][0]["header"]["key"], "a");
        assert_eq!(r[0]["name"], "slow");
        assert_eq!(r[0]["decorator"]["operation"], "s:80/*");
        assert_eq!(
            r[0]["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"]["http_status"],
            418
        );
        let b = &r[1]["route"];
        assert_eq!(b["timeout"], "0s");
        assert_eq!(b["retry_policy"]["num_retries"], 2);
        assert_eq!(
            b["weighted_clusters"]["clusters"].as_array().unwrap().len(),
            2
        );
        assert!(r[1].get("name").is_none());
        assert_eq!(r[1]["decorator"]["operation"], "vs:80/*");
        assert!(routes(&json!([{"route": [], "redirect": {}}]), "vs", 80, &c).is_err());
    }
}
