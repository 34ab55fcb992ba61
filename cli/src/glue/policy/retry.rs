//! `retries` (and the mesh's default retry policy) as istiod converts an
//! Istio `HTTPRetry` (`retry.ConvertPolicy` in
//! `pilot/pkg/networking/core/route/retry`), checked as istiod's
//! `ValidateHTTPRetry` checks it.

use serde_json::{json, Map, Value};

use super::{at, duration, envoy_duration, err, object, opt_str, Result};

/// Envoy's retry conditions of Istio's default retry policy.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The `retryOn` values Istio accepts besides HTTP status codes.
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// HTTP status codes Go names (`http.StatusText`): Istio reads these in
/// `retryOn` as retriable status codes.
const HTTP_STATUS: [u16; 62] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

/// `retry.ConvertPolicy` (no consistent hash): Istio's default policy for
/// `None`, no policy for `attempts: 0`.
pub(super) fn retry_policy(r: Option<&Value>, path: &str) -> Result<Option<Value>> {
    let previous_hosts = json!([{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
    }]);
    let mut out = Map::new();
    out.insert("retry_on".into(), json!(DEFAULT_RETRY_ON));
    out.insert("num_retries".into(), json!(2));
    out.insert("retry_host_predicate".into(), previous_hosts.clone());
    out.insert("host_selection_retry_max_attempts".into(), json!("5"));
    let Some(r) = r else {
        return Ok(Some(Value::Object(out)));
    };
    let obj = object(r, path)?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "attempts"
                | "perTryTimeout"
                | "retryOn"
                | "retryRemoteLocalities"
                | "retryIgnorePreviousHosts"
                | "backoff"
        ) {
            return err(&at(path, k), "not a field of an Istio HTTPRetry");
        }
    }
    let attempts = match obj.get("attempts") {
        None | Some(Value::Null) => 0,
        Some(a) => a
            .as_i64()
            .filter(|a| *a >= 0 && *a <= i64::from(i32::MAX))
            .map_or_else(
                || err(&at(path, "attempts"), "not a non-negative integer"),
                Ok,
            )?,
    };
    let retry_on = opt_str(obj.get("retryOn"), &at(path, "retryOn"))?.unwrap_or_default();
    let per_try = match obj.get("perTryTimeout").filter(|v| !v.is_null()) {
        Some(t) => Some(duration(t, &at(path, "perTryTimeout"))?),
        None => None,
    };
    let remote = obj
        .get("retryRemoteLocalities")
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_bool().map_or_else(
                || err(&at(path, "retryRemoteLocalities"), "not a boolean"),
                Ok,
            )
        })
        .transpose()?;
    if attempts == 0 && (per_try.is_some() || !retry_on.is_empty() || remote.is_some()) {
        return err(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    // Istio's check: each part a retry policy or an HTTP status code.
    let mut codes = Vec::new();
    let mut policies = Vec::new();
    if !retry_on.is_empty() {
        for part in retry_on.split(',') {
            let status = part.parse::<u16>().ok().filter(|c| HTTP_STATUS.contains(c));
            if status.is_none() && !RETRY_ON_POLICIES.contains(&part) {
                return err(
                    &at(path, "retryOn"),
                    format!("{part:?} is not a valid retryOn policy"),
                );
            }
        }
        // `parseRetryOn`: trimmed, status codes apart.
        for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u16>().ok().filter(|c| HTTP_STATUS.contains(c)) {
                Some(c) => codes.push(c),
                None => policies.push(part),
            }
        }
    }
    let backoff = match obj.get("backoff").filter(|v| !v.is_null()) {
        Some(b) => Some(duration(b, &at(path, "backoff"))?),
        None => None,
    };
    let ignore_previous = obj
        .get("retryIgnorePreviousHosts")
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_bool().map_or_else(
                || err(&at(path, "retryIgnorePreviousHosts"), "not a boolean"),
                Ok,
            )
        })
        .transpose()?;
    if attempts == 0 {
        return Ok(None);
    }
    out.insert("num_retries".into(), json!(attempts));
    if !retry_on.is_empty() {
        let mut on = policies.join(",");
        if !codes.is_empty() {
            if !on.contains("retriable-status-codes") {
                on.push_str(",retriable-status-codes");
            }
            out.insert("retriable_status_codes".into(), json!(codes));
        }
        out.insert("retry_on".into(), json!(on));
    }
    if let Some(t) = per_try {
        out.insert("per_try_timeout".into(), json!(envoy_duration(t)));
    }
    if ignore_previous == Some(false) {
        out.remove("retry_host_predicate");
    }
    if remote == Some(true) {
        out.insert(
            "retry_priority".into(),
            json!({
                "name": "envoy.retry_priorities.previous_priorities",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                    "update_frequency": 2
                }
            }),
        );
    }
    if let Some(b) = backoff {
        out.insert(
            "retry_back_off".into(),
            json!({"base_interval": envoy_duration(b)}),
        );
    }
    Ok(Some(Value::Object(out)))
}
