//! The route policies Envoy filters read from the selected route's
//! `typed_per_filter_config`: `fault` (`TranslateFault`) and `corsPolicy`
//! (`TranslateCORSPolicy`), as istiod translates and validates them.

use serde_json::{json, Map, Value};

use super::{
    at, duration, envoy_duration, err, fraction, object, opt_str, per_million, percent_value,
    Result,
};

/// The Envoy filter that reads a route's fault injection.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The Envoy filter that reads a route's CORS policy.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// gRPC status names Istio accepts in `fault.abort.grpcStatus`, by code.
const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `TranslateFault`: `None` when neither part can be carried (an
/// exponential delay or an HTTP/2 error, which istiod drops with a warning).
pub(super) fn fault(v: &Value, path: &str) -> Result<Option<Value>> {
    let obj = object(v, path)?;
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"),
    );
    for k in obj.keys() {
        if !matches!(k.as_str(), "delay" | "abort") {
            return err(&at(path, k), "not a field of an Istio HTTPFaultInjection");
        }
    }
    let delay = obj.get("delay").filter(|v| !v.is_null());
    let abort = obj.get("abort").filter(|v| !v.is_null());
    if delay.is_none() && abort.is_none() {
        return err(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(d) = delay {
        let dpath = at(path, "delay");
        let d = object(d, &dpath)?;
        let mut delay = Map::new();
        let pct = match (
            d.get("percentage").filter(|v| !v.is_null()),
            d.get("percent"),
        ) {
            (Some(p), _) => per_million(percent_value(p, &at(&dpath, "percentage"))?),
            (None, Some(p)) if !p.is_null() => {
                let n = p.as_u64().filter(|n| *n <= 100).map_or_else(
                    || err(&at(&dpath, "percent"), "an integer from 0 to 100"),
                    Ok,
                )?;
                fraction(n, "HUNDRED")
            }
            _ => fraction(0, "HUNDRED"),
        };
        delay.insert("percentage".into(), pct);
        let mut carried = false;
        for (k, v) in d {
            match k.as_str() {
                "percentage" | "percent" => {}
                "fixedDelay" => {
                    let ms = duration(v, &at(&dpath, k))?;
                    delay.insert("fixed_delay".into(), json!(envoy_duration(ms)));
                    carried = true;
                }
                "exponentialDelay" => {
                    return err(
                        &at(&dpath, k),
                        "exponentialDelay not supported yet (by Istio)",
                    )
                }
                _ => return err(&at(&dpath, k), "not a field of an Istio fault delay"),
            }
        }
        if carried {
            out.insert("delay".into(), Value::Object(delay));
        }
    }
    if let Some(a) = abort {
        let apath = at(path, "abort");
        let a = object(a, &apath)?;
        let mut abort = Map::new();
        let mut kind = false;
        for (k, v) in a {
            match k.as_str() {
                "percentage" => {
                    if !v.is_null() {
                        abort.insert(
                            "percentage".into(),
                            per_million(percent_value(v, &at(&apath, k))?),
                        );
                    }
                }
                "httpStatus" => {
                    let s = v.as_u64().filter(|s| (200..=600).contains(s)).map_or_else(
                        || {
                            err(
                                &at(&apath, k),
                                format!("HTTP status {v} is not in range 200-599"),
                            )
                        },
                        Ok,
                    )?;
                    abort.insert("http_status".into(), json!(s));
                    kind = true;
                }
                "grpcStatus" => {
                    let name = v.as_str().unwrap_or_default();
                    let Some(code) = GRPC_STATUS.iter().position(|s| *s == name) else {
                        return err(
                            &at(&apath, k),
                            format!("gRPC status {v} is not supported (e.g. NOT_FOUND)"),
                        );
                    };
                    abort.insert("grpc_status".into(), json!(code));
                    kind = true;
                }
                "http2Error" => {
                    return err(
                        &at(&apath, k),
                        "HTTP/2 abort fault injection not supported yet (by Istio)",
                    )
                }
                _ => return err(&at(&apath, k), "not a field of an Istio fault abort"),
            }
        }
        if !kind {
            return err(
                &apath,
                "abort configured, but error type not set (httpStatus or grpcStatus)",
            );
        }
        out.insert("abort".into(), Value::Object(abort));
    }
    Ok((out.len() > 1).then_some(Value::Object(out)))
}

/// HTTP methods Istio accepts in `corsPolicy.allowMethods`.
const CORS_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `TranslateCORSPolicy`.
pub(super) fn cors(v: &Value, path: &str) -> Result<Value> {
    let obj = object(v, path)?;
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"),
    );
    let strings = |k: &str| -> Result<Vec<String>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(l)) => l
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str()
                        .map(str::to_string)
                        .map_or_else(|| err(&format!("{path}.{k}[{i}]"), "not a string"), Ok)
                })
                .collect(),
            Some(_) => err(&at(path, k), "not a list of strings"),
        }
    };
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "allowOrigins"
                | "allowOrigin"
                | "allowMethods"
                | "allowHeaders"
                | "exposeHeaders"
                | "maxAge"
                | "allowCredentials"
                | "unmatchedPreflights"
        ) {
            return err(&at(path, k), "not a field of an Istio CorsPolicy");
        }
    }
    let forward = match opt_str(
        obj.get("unmatchedPreflights"),
        &at(path, "unmatchedPreflights"),
    )? {
        None | Some("UNSPECIFIED" | "FORWARD") => true,
        Some("IGNORE") => false,
        Some(other) => {
            return err(
                &at(path, "unmatchedPreflights"),
                format!("{other:?}: give FORWARD or IGNORE"),
            )
        }
    };
    out.insert("forward_not_matching_preflights".into(), json!(forward));
    match obj.get("allowOrigins").filter(|v| !v.is_null()) {
        Some(list) => {
            let opath = at(path, "allowOrigins");
            let list = list
                .as_array()
                .map_or_else(|| err(&opath, "not a list"), Ok)?;
            let mut matches = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let mpath = format!("{opath}[{i}]");
                let sm = object(m, &mpath)?;
                let (kind, value) = match sm.iter().next() {
                    Some((k, v))
                        if sm.len() == 1 && matches!(k.as_str(), "exact" | "prefix" | "regex") =>
                    {
                        (k.as_str(), v.as_str().unwrap_or_default())
                    }
                    _ => return err(&mpath, "not a StringMatch (exact, prefix or regex)"),
                };
                if value.is_empty() {
                    return err(
                        &mpath,
                        "'' is not a valid match type for CORS allow origins",
                    );
                }
                matches.push(match kind {
                    "regex" => json!({"safe_regex": {"regex": value}}),
                    k => json!({ k: value }),
                });
            }
            out.insert("allow_origin_string_match".into(), Value::Array(matches));
        }
        None => {
            let origins = strings("allowOrigin")?;
            if !origins.is_empty() {
                let exact: Vec<Value> = origins.iter().map(|o| json!({"exact": o})).collect();
                out.insert("allow_origin_string_match".into(), Value::Array(exact));
            }
        }
    }
    out.insert(
        "filter_enabled".into(),
        json!({"default_value": fraction(100, "HUNDRED")}),
    );
    if let Some(c) = obj.get("allowCredentials").filter(|v| !v.is_null()) {
        let c = c
            .as_bool()
            .map_or_else(|| err(&at(path, "allowCredentials"), "not a boolean"), Ok)?;
        out.insert("allow_credentials".into(), json!(c));
    }
    let methods = strings("allowMethods")?;
    for (i, m) in methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            return err(
                &format!("{path}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (k, list) in [
        ("allow_headers", strings("allowHeaders")?),
        ("allow_methods", methods),
        ("expose_headers", strings("exposeHeaders")?),
    ] {
        if !list.is_empty() {
            out.insert(k.into(), json!(list.join(",")));
        }
    }
    if let Some(m) = obj.get("maxAge").filter(|v| !v.is_null()) {
        let ms = duration(m, &at(path, "maxAge"))?;
        if ms % 1000 != 0 {
            return err(
                &at(path, "maxAge"),
                "max_age duration is accurate only to seconds precision",
            );
        }
        out.insert("max_age".into(), json!((ms / 1000).to_string()));
    }
    Ok(Value::Object(out))
}
