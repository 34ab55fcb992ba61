//! What istiod puts on a route besides its match and its cluster, for the
//! glue routes the requests canary-router routes take: Istio's translation
//! of a rule's route policies (`TranslateRoute` and its helpers in
//! `pilot/pkg/networking/core/route/route.go`, `retry.ConvertPolicy`), and
//! the mesh defaults every route istiod builds carries (no route timeout,
//! Istio's default retry policy).
//!
//! The input is a rule of a rule file (an Istio `HTTPRoute` in JSON); the
//! output the Envoy fields, as JSON, of the glue route of one of its
//! destinations. Content istiod's validation would refuse is refused here
//! with the JSON path of the field.

use std::fmt;

use canary_router::schema::config::{HttpRoute, RouteDestination};
use canary_router::schema::decode::{Schema, Shape};
use serde_json::{json, Map, Value};

mod headers;
mod per_filter;
mod retry;

use headers::headers;
use per_filter::{cors, fault};
pub use per_filter::{CORS_FILTER, FAULT_FILTER};
use retry::retry_policy;

/// A route policy istiod would refuse: the JSON path of the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where, e.g. `services[0].http[1].retries.attempts`.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

type Result<T> = std::result::Result<T, PolicyError>;

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T> {
    Err(PolicyError {
        path: path.to_string(),
        reason: reason.into(),
    })
}

fn at(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

/// Istio's mesh-wide route defaults (MeshConfig), as the operator's mesh
/// has them.
#[derive(Debug, Clone, Default)]
pub struct MeshDefaults {
    /// `defaultHttpRetryPolicy` (an Istio `HTTPRetry`); `None`: Istio's
    /// built-in default (2 retries on [`retry::DEFAULT_RETRY_ON`]).
    pub retries: Option<Value>,
}

impl MeshDefaults {
    /// Checks the defaults as istiod checks MeshConfig's retry policy.
    pub fn check(&self) -> Result<()> {
        match &self.retries {
            Some(r) => retry_policy(Some(r), "defaultHttpRetryPolicy").map(drop),
            None => Ok(()),
        }
    }
}

/// The Envoy fields of a glue route, beside its `match` and its cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteFields {
    /// Fields of the route's action (`route:`): `timeout`,
    /// `max_grpc_timeout`, `retry_policy`, rewrites and mirrors.
    pub action: Map<String, Value>,
    /// Fields of the route: header operations, `typed_per_filter_config`.
    pub route: Map<String, Value>,
    /// The destination's own header operations when its rule has several
    /// destinations: istiod puts them on the destination's entry of
    /// `weighted_clusters`, where Envoy applies them before the route's.
    pub cluster: Map<String, Value>,
}

/// What every route istiod builds carries when its rule says nothing: no
/// route timeout (`timeout: 0s`, and no limit from `grpc-timeout`), and the
/// mesh's default retry policy (`setTimeout`, `retry.ConvertPolicy`).
pub fn mesh_fields(mesh: &MeshDefaults) -> Result<RouteFields> {
    let mut out = RouteFields::default();
    set_timeout(&mut out.action, None);
    if let Some(r) = retry_policy(mesh.retries.as_ref(), "defaultHttpRetryPolicy")? {
        out.action.insert("retry_policy".into(), r);
    }
    Ok(out)
}

/// Whether a rule carries a route policy: its own, or a destination's
/// `headers` (the filter's `HttpRoute::has_policy`, from the same lists).
pub fn has_policy(rule: &Value) -> bool {
    let given = |v: &Value, schema: &'static Schema| {
        policy_fields(schema).any(|k| v.get(k).is_some_and(|x| !x.is_null()))
    };
    given(rule, HttpRoute::schema())
        || rule
            .get("route")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|d| given(d, RouteDestination::schema())))
}

/// The route policies of a type: the fields the filter declares as JSON
/// it does not read.
pub fn policy_fields(schema: &'static Schema) -> impl Iterator<Item = &'static str> {
    schema
        .fields
        .iter()
        .filter(|f| matches!(f.shape, Shape::Json))
        .map(|f| f.json)
}

/// The Envoy fields istiod gives the route of rule `rule` (at `path`) for
/// its destination `dest`; `mirror_cluster(destination, path)` names the
/// cluster of a mirror destination (as istiod's `GetDestinationCluster`,
/// on the glue route's port).
pub fn rule_fields(
    rule: &Value,
    path: &str,
    dest: usize,
    mesh: &MeshDefaults,
    mirror_cluster: &dyn Fn(&Value, &str) -> Result<String>,
) -> Result<RouteFields> {
    let mut out = RouteFields::default();
    let timeout = match rule.get("timeout").filter(|v| !v.is_null()) {
        Some(t) => Some(duration(t, &at(path, "timeout"))?),
        None => None,
    };
    set_timeout(&mut out.action, timeout);

    // Header operations: the rule's, then its destination's.
    let mut authority = None;
    if let Some(h) = rule.get("headers").filter(|v| !v.is_null()) {
        let ops = headers(h, &at(path, "headers"))?;
        authority = ops.authority.clone();
        ops.put(&mut out.route);
    }
    let dests = rule.get("route").and_then(Value::as_array);
    let weighted = dests.is_some_and(|d| d.len() > 1);
    let dpath = format!("{path}.route[{dest}].headers");
    if let Some(h) = dests
        .and_then(|d| d.get(dest))
        .and_then(|d| d.get("headers"))
        .filter(|v| !v.is_null())
    {
        let ops = headers(h, &dpath)?;
        if weighted {
            // `processWeightedDestination`: on the weighted cluster.
            if let Some(a) = &ops.authority {
                out.cluster.insert("host_rewrite_literal".into(), json!(a));
            }
            ops.put(&mut out.cluster);
        } else {
            // `processDestination`: appended to the route's, and its
            // authority only when the rule rewrites none.
            if authority.is_none() {
                authority.clone_from(&ops.authority);
            }
            ops.append(&mut out.route);
        }
    }

    if let Some(rw) = rule.get("rewrite").filter(|v| !v.is_null()) {
        let rpath = at(path, "rewrite");
        let obj = object(rw, &rpath)?;
        for k in obj.keys() {
            if !matches!(k.as_str(), "uri" | "authority" | "uriRegexRewrite") {
                return err(&at(&rpath, k), "not a field of an Istio HTTPRewrite");
            }
        }
        let uri = opt_str(obj.get("uri"), &at(&rpath, "uri"))?.filter(|u| !u.is_empty());
        let regex = obj.get("uriRegexRewrite").filter(|v| !v.is_null());
        let auth =
            opt_str(obj.get("authority"), &at(&rpath, "authority"))?.filter(|a| !a.is_empty());
        match (uri, regex) {
            (Some(_), Some(_)) => {
                return err(
                    &rpath,
                    "rewrite may only contain one of uri or uriRegexRewrite",
                )
            }
            (None, None) if auth.is_none() => {
                return err(
                    &rpath,
                    "rewrite must specify at least one of uri, uriRegexRewrite or authority",
                )
            }
            _ => {}
        }
        if let Some(re) = regex {
            let repath = at(&rpath, "uriRegexRewrite");
            let re = object(re, &repath)?;
            let pattern = opt_str(re.get("match"), &at(&repath, "match"))?.unwrap_or_default();
            let sub = opt_str(re.get("rewrite"), &at(&repath, "rewrite"))?.unwrap_or_default();
            if pattern.is_empty() || sub.is_empty() {
                return err(&repath, "uriRegexRewrite requires both match and rewrite");
            }
            out.action.insert(
                "regex_rewrite".into(),
                json!({"pattern": {"regex": pattern}, "substitution": sub}),
            );
        } else if let Some(uri) = uri {
            out.action.insert("prefix_rewrite".into(), json!(uri));
        }
        if let Some(a) = auth {
            if authority.is_some() {
                return err(
                    &at(&rpath, "authority"),
                    "authority header cannot be set multiple times (headers.request sets it too)",
                );
            }
            authority = Some(a.to_string());
        }
    }
    if let Some(a) = authority {
        out.action.insert("host_rewrite_literal".into(), json!(a));
    }

    let mut mirrors = Vec::new();
    if let Some(m) = rule.get("mirror").filter(|v| !v.is_null()) {
        let mpath = at(path, "mirror");
        let cluster = mirror_cluster(m, &mpath)?;
        let percent = match (
            rule.get("mirrorPercentage").filter(|v| !v.is_null()),
            rule.get("mirrorPercent").filter(|v| !v.is_null()),
        ) {
            (Some(p), _) => percentage(p, &at(path, "mirrorPercentage"))?,
            (None, Some(p)) => {
                let ppath = at(path, "mirrorPercent");
                let n = p
                    .as_u64()
                    .filter(|n| *n <= 100)
                    .map_or_else(|| err(&ppath, "an integer from 0 to 100"), Ok)?;
                (n > 0).then(|| fraction(n, "HUNDRED"))
            }
            (None, None) => Some(fraction(100, "HUNDRED")),
        };
        if let Some(p) = percent {
            mirrors.push(mirror_policy(&cluster, p));
        }
    } else {
        for k in ["mirrorPercentage", "mirrorPercent"] {
            if rule.get(k).is_some_and(|v| !v.is_null()) {
                return err(&at(path, k), "given without `mirror`");
            }
        }
    }
    if let Some(list) = rule.get("mirrors").filter(|v| !v.is_null()) {
        let lpath = at(path, "mirrors");
        let list = list
            .as_array()
            .map_or_else(|| err(&lpath, "not a list"), Ok)?;
        for (i, m) in list.iter().enumerate() {
            let mpath = format!("{lpath}[{i}]");
            let obj = object(m, &mpath)?;
            for k in obj.keys() {
                if !matches!(k.as_str(), "destination" | "percentage") {
                    return err(&at(&mpath, k), "not a field of an Istio HTTPMirrorPolicy");
                }
            }
            let Some(d) = obj.get("destination").filter(|v| !v.is_null()) else {
                return err(&mpath, "destination is required for mirrors");
            };
            let cluster = mirror_cluster(d, &at(&mpath, "destination"))?;
            let percent = match obj.get("percentage").filter(|v| !v.is_null()) {
                Some(p) => percentage(p, &at(&mpath, "percentage"))?,
                None => Some(fraction(100, "HUNDRED")),
            };
            if let Some(p) = percent {
                mirrors.push(mirror_policy(&cluster, p));
            }
        }
    }
    if !mirrors.is_empty() {
        out.action
            .insert("request_mirror_policies".into(), Value::Array(mirrors));
    }

    let retries = rule.get("retries").filter(|v| !v.is_null());
    let (retries, rpath) = match retries {
        Some(r) => (Some(r), at(path, "retries")),
        None => (mesh.retries.as_ref(), "defaultHttpRetryPolicy".to_string()),
    };
    if let Some(r) = retry_policy(retries, &rpath)? {
        out.action.insert("retry_policy".into(), r);
    }

    let mut per_filter = Map::new();
    if let Some(f) = rule.get("fault").filter(|v| !v.is_null()) {
        if let Some(f) = fault(f, &at(path, "fault"))? {
            per_filter.insert(FAULT_FILTER.into(), f);
        }
    }
    if let Some(c) = rule.get("corsPolicy").filter(|v| !v.is_null()) {
        per_filter.insert(CORS_FILTER.into(), cors(c, &at(path, "corsPolicy"))?);
    }
    if !per_filter.is_empty() {
        out.route
            .insert("typed_per_filter_config".into(), Value::Object(per_filter));
    }
    Ok(out)
}

/// `setTimeout`: the rule's timeout or none, and gRPC's `grpc-timeout`
/// header capped by the same value (0: not capped).
fn set_timeout(action: &mut Map<String, Value>, ms: Option<u64>) {
    let t = envoy_duration(ms.unwrap_or(0));
    action.insert("timeout".into(), json!(t));
    action.insert("max_grpc_timeout".into(), json!(t));
}

/// A duration as Envoy's JSON writes it: `0s`, `1s`, `0.250s`.
pub fn envoy_duration(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        frac => format!("{}.{frac:03}s", ms / 1000),
    }
}

/// An Istio duration (`1s`, `500ms`, `1m30s`), at least 1 ms
/// (`ValidateDuration`), in milliseconds.
fn duration(v: &Value, path: &str) -> Result<u64> {
    let Some(text) = v.as_str() else {
        return err(path, "not a duration string (e.g. `1s`, `500ms`)");
    };
    match canary_router::domain::guard::parse_duration(text) {
        None => err(
            path,
            format!("`{text}` is not a duration (e.g. `1s`, `500ms`)"),
        ),
        Some(0) => err(path, format!("`{text}`: a duration must be at least 1ms")),
        Some(ms) => Ok(ms),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().map_or_else(|| err(path, "not an object"), Ok)
}

fn opt_str<'a>(v: Option<&'a Value>, path: &str) -> Result<Option<&'a str>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => err(path, "not a string"),
    }
}

fn fraction(numerator: u64, denominator: &str) -> Value {
    json!({"numerator": numerator, "denominator": denominator})
}

/// An Istio `Percent` (`{value: 12.5}`): `None` for 0 (no mirroring, as
/// istiod), else per million (`translatePercentToFractionalPercent`).
fn percentage(v: &Value, path: &str) -> Result<Option<Value>> {
    let value = percent_value(v, path)?;
    Ok((value > 0.0).then(|| per_million(value)))
}

fn percent_value(v: &Value, path: &str) -> Result<f64> {
    let obj = object(v, path)?;
    if let Some(k) = obj.keys().find(|k| *k != "value") {
        return err(
            &at(path, k),
            "not a field of an Istio Percent (only `value`)",
        );
    }
    let value = match obj.get("value") {
        None | Some(Value::Null) => 0.0,
        Some(n) => n
            .as_f64()
            .map_or_else(|| err(&at(path, "value"), "not a number"), Ok)?,
    };
    if !(0.0..=100.0).contains(&value) {
        return err(
            &at(path, "value"),
            format!("{value} is not a percentage from 0 to 100"),
        );
    }
    Ok(value)
}

/// Go's `uint32(p * 10000)`, truncated.
fn per_million(value: f64) -> Value {
    fraction((value * 10000.0) as u64, "MILLION")
}

fn mirror_policy(cluster: &str, fraction: Value) -> Value {
    json!({
        "cluster": cluster,
        "runtime_fraction": {"default_value": fraction},
        "trace_sampled": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &Value, _: &str) -> Result<String> {
        Ok("outbound|80||mirror".into())
    }

    #[test]
    fn the_mesh_defaults_are_istiods() {
        let f = mesh_fields(&MeshDefaults::default()).unwrap();
        assert_eq!(
            Value::Object(f.action),
            json!({
                "timeout": "0s",
                "max_grpc_timeout": "0s",
                "retry_policy": {
                    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                    "num_retries": 2,
                    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
                    "host_selection_retry_max_attempts": "5"
                }
            })
        );
        assert!(f.route.is_empty());
        let off = MeshDefaults {
            retries: Some(json!({"attempts": 0})),
        };
        assert!(mesh_fields(&off)
            .unwrap()
            .action
            .get("retry_policy")
            .is_none());
    }

    #[test]
    fn retries_convert_as_istio_converts_them() {
        let rule = json!({"retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "5xx,503,gateway-error",
            "retryRemoteLocalities": true, "retryIgnorePreviousHosts": false, "backoff": "25ms"},
            "route": [{"destination": {"host": "a"}}]});
        let f = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap();
        let p = &f.action["retry_policy"];
        assert_eq!(p["num_retries"], 3);
        assert_eq!(p["retry_on"], "5xx,gateway-error,retriable-status-codes");
        assert_eq!(p["retriable_status_codes"], json!([503]));
        assert_eq!(p["per_try_timeout"], "0.500s");
        assert_eq!(p["retry_back_off"]["base_interval"], "0.025s");
        assert_eq!(p["host_selection_retry_max_attempts"], "5");
        assert!(p.get("retry_host_predicate").is_none());
        assert_eq!(p["retry_priority"]["typed_config"]["update_frequency"], 2);
        for (bad, path) in [
            (json!({"attempts": -1}), "r.retries.attempts"),
            (
                json!({"attempts": 2, "retryOn": "5xx,bogus"}),
                "r.retries.retryOn",
            ),
            (json!({"attempts": 0, "retryOn": "5xx"}), "r.retries"),
            (
                json!({"attempts": 1, "perTryTimeout": "1x"}),
                "r.retries.perTryTimeout",
            ),
            (json!({"attempt": 1}), "r.retries.attempt"),
        ] {
            let rule = json!({"retries": bad, "route": []});
            let e = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
    }

    #[test]
    fn timeouts_headers_rewrites_mirrors_faults_and_cors() {
        let rule = json!({
            "timeout": "1.5s",
            "headers": {"request": {"add": {"x-b": "2", "x-a": "1"}, "set": {"x-c": "3", ":authority": "a.example"}, "remove": ["x-d", "host"]},
                        "response": {"set": {"x-e": "5"}, "remove": ["server"]}},
            "rewrite": {"uri": "/v2"},
            "mirror": {"host": "m"}, "mirrorPercentage": {"value": 12.5},
            "mirrors": [{"destination": {"host": "n"}}, {"destination": {"host": "o"}, "percentage": {"value": 0}}],
            "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}, "delay": {"exponentialDelay": "1s"}},
            "corsPolicy": {"allowOrigins": [{"exact": "https://a"}, {"regex": ".*\\.b"}], "allowMethods": ["GET", "POST"],
                           "maxAge": "24h", "allowCredentials": true},
            "route": [{"destination": {"host": "a"}, "headers": {"request": {"set": {"x-dest": "1"}}}}]
        });
        let e = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap_err();
        assert_eq!(e.path, "r.fault.delay.exponentialDelay");
        let mut rule = rule;
        rule["fault"]["delay"] = json!({"fixedDelay": "2s", "percent": 50});
        let f = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap();
        assert_eq!(f.action["timeout"], "1.500s");
        assert_eq!(f.action["max_grpc_timeout"], "1.500s");
        assert_eq!(f.action["prefix_rewrite"], "/v2");
        assert_eq!(f.action["host_rewrite_literal"], "a.example");
        let keys: Vec<&str> = f.route["request_headers_to_add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["header"]["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["x-c", "x-a", "x-b", "x-dest"]);
        assert_eq!(f.route["request_headers_to_remove"], json!(["x-d"]));
        assert_eq!(f.route["response_headers_to_remove"], json!(["server"]));
        let mirrors = f.action["request_mirror_policies"].as_array().unwrap();
        assert_eq!(mirrors.len(), 2, "0% is no mirror");
        assert_eq!(
            mirrors[0]["runtime_fraction"]["default_value"],
            json!({"numerator": 125000, "denominator": "MILLION"})
        );
        assert_eq!(
            mirrors[1]["runtime_fraction"]["default_value"],
            json!({"numerator": 100, "denominator": "HUNDRED"})
        );
        let fault = &f.route["typed_per_filter_config"][FAULT_FILTER];
        assert_eq!(fault["abort"]["http_status"], 418);
        assert_eq!(
            fault["delay"],
            json!({"fixed_delay": "2s", "percentage": {"numerator": 50, "denominator": "HUNDRED"}})
        );
        let cors = &f.route["typed_per_filter_config"][CORS_FILTER];
        assert_eq!(cors["allow_methods"], "GET,POST");
        assert_eq!(cors["max_age"], "86400");
        assert_eq!(cors["allow_credentials"], true);
        assert_eq!(
            cors["allow_origin_string_match"],
            json!([{"exact": "https://a"}, {"safe_regex": {"regex": ".*\\.b"}}])
        );
        // A weighted rule: the destination's operations on its cluster.
        rule["route"] = json!([{"destination": {"host": "a"}, "weight": 1, "headers": {"request": {"set": {"x-dest": "1"}}}},
                               {"destination": {"host": "b"}, "weight": 1}]);
        let f = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap();
        assert_eq!(
            f.route["request_headers_to_add"].as_array().unwrap().len(),
            3
        );
        assert_eq!(
            f.cluster["request_headers_to_add"][0]["header"]["key"],
            "x-dest"
        );
        let f = rule_fields(&rule, "r", 1, &MeshDefaults::default(), &none).unwrap();
        assert!(f.cluster.is_empty());
    }

    #[test]
    fn a_policy_istio_refuses_is_refused_by_path() {
        for (rule, path) in [
            (json!({"timeout": "0s"}), "r.timeout"),
            (json!({"timeout": 5}), "r.timeout"),
            (json!({"rewrite": {}}), "r.rewrite"),
            (
                json!({"rewrite": {"uri": "/a", "uriRegexRewrite": {"match": "a", "rewrite": "b"}}}),
                "r.rewrite",
            ),
            (
                json!({"mirrorPercentage": {"value": 10}}),
                "r.mirrorPercentage",
            ),
            (
                json!({"mirror": {"host": "m"}, "mirrorPercentage": {"value": 101}}),
                "r.mirrorPercentage.value",
            ),
            (
                json!({"mirrors": [{"percentage": {"value": 1}}]}),
                "r.mirrors[0]",
            ),
            (json!({"fault": {}}), "r.fault"),
            (
                json!({"fault": {"abort": {"httpStatus": 100}}}),
                "r.fault.abort.httpStatus",
            ),
            (
                json!({"fault": {"abort": {"grpcStatus": "NOPE"}}}),
                "r.fault.abort.grpcStatus",
            ),
            (
                json!({"corsPolicy": {"allowMethods": ["FETCH"]}}),
                "r.corsPolicy.allowMethods[0]",
            ),
            (
                json!({"corsPolicy": {"maxAge": "1500ms"}}),
                "r.corsPolicy.maxAge",
            ),
            (
                json!({"headers": {"request": {"set": {"bad name": "x"}}}}),
                "r.headers.request.set.bad name",
            ),
            (
                json!({"headers": {"response": {"set": {"x": "a\nb"}}}}),
                "r.headers.response.set.x",
            ),
            (
                json!({"headers": {"request": {"set": {"host": "a"}, "add": {":authority": "b"}}}}),
                "r.headers.request",
            ),
            (
                json!({"headers": {"request": {"set": {"host": "a"}}}, "rewrite": {"authority": "b"}}),
                "r.rewrite.authority",
            ),
        ] {
            let mut rule = rule;
            rule["route"] = json!([{"destination": {"host": "a"}}]);
            let e = rule_fields(&rule, "r", 0, &MeshDefaults::default(), &none).unwrap_err();
            assert_eq!(e.path, path, "{rule}: {e}");
        }
        assert!(has_policy(&json!({"route": [{"headers": {}}]})));
        assert_eq!(
            policy_fields(HttpRoute::schema()).collect::<Vec<_>>(),
            [
                "timeout",
                "retries",
                "headers",
                "rewrite",
                "mirror",
                "mirrors",
                "mirrorPercentage",
                "fault",
                "corsPolicy"
            ]
        );
        assert!(!has_policy(
            &json!({"timeout": null, "route": [{"weight": 1}]})
        ));
    }
}
