//! The rule file as operators write it: serde types that mirror an Istio
//! VirtualService `http:` block, plus the filter's own settings.
//!
//! These types are only the *shape* of the input. They are strict
//! (`deny_unknown_fields` everywhere, so a typo is an error, never a silent
//! default) but hold raw values; [`crate::rules::compile`] checks the meaning
//! (weights, regexes, hosts) and builds the structures the request path uses.

use alloc::{string::String, vec::Vec};

use crate::map::Map;

/// The plugin configuration: the WasmPlugin's `pluginConfig`, or the
/// `configuration` of an Envoy wasm filter.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct PluginConfig {
    /// Request header the chosen cluster is written to (default `x-canary-upstream`).
    pub route_header: Option<String>,
    /// Response header naming `service/rule/destination` that served the
    /// request; absent means off.
    pub debug_header: Option<String>,
    /// Namespace that short hosts expand against (default `default`).
    pub namespace: Option<String>,
    /// Kubernetes cluster domain (default `cluster.local`).
    pub cluster_domain: Option<String>,
    /// Optional version of the inline rules, shown in the `rules_version` gauge.
    pub version: Option<u64>,
    /// Who gives a port to destinations without one: `requestPort` (the
    /// default: the port the request arrived on) or `glue` (the filter
    /// writes `outbound||<subset>|<host>` and each port's routing glue maps
    /// it to its own port's cluster).
    pub portless_destinations: Option<String>,
    /// Inline rules.
    pub services: Option<Vec<Service>>,
    /// A rule file to poll over HTTP (a ConfigMap behind a tiny web server).
    pub rule_source: Option<RuleSource>,
}

/// A rule file fetched from a [`RuleSource`]: the routing part of a
/// [`PluginConfig`] only.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct RuleFile {
    /// Namespace that short hosts expand against (default: the plugin's, then `default`).
    pub namespace: Option<String>,
    /// Version of this file, shown in the `rules_version` gauge.
    pub version: Option<u64>,
    /// The rules.
    #[cfg_attr(feature = "serde", serde(default))]
    pub services: Vec<Service>,
}

/// Where to poll a rule file from.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct RuleSource {
    /// The Envoy cluster that serves the rule file.
    pub cluster: String,
    /// `:authority` of the request (default: the host of an Istio cluster
    /// name `outbound|<port>|<subset>|<host>`, with `:<port>` unless 80; for
    /// any other cluster, the cluster name).
    pub authority: Option<String>,
    /// Path of the rule file, e.g. `/rules.json`.
    pub path: String,
    /// How often to poll, in milliseconds (default 5000).
    pub poll_interval_ms: Option<u64>,
    /// Timeout of one fetch, in milliseconds (default 2000).
    pub timeout_ms: Option<u64>,
}

/// One service: the hosts it answers for and its ordered rules
/// (an Istio VirtualService `spec`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Service {
    /// Hosts the service answers for: FQDNs, short names or `*.suffix` wildcards.
    pub hosts: Vec<String>,
    /// Namespace short hosts of this service expand against.
    pub namespace: Option<String>,
    /// Rules, tried in order.
    #[cfg_attr(feature = "serde", serde(default))]
    pub http: Vec<HttpRoute>,
    /// Where Envoy's own route sends this service's requests when the
    /// filter leaves them alone (in Istio: the last route of the
    /// VirtualService). Requests the rules send there are left alone too:
    /// no header is written and the route is not re-selected.
    pub default_destination: Option<Destination>,
    /// The port of destinations that name none (Istio: the service's only
    /// port). Absent: the port the request arrived on, as Istio resolves a
    /// sidecar's routes; required on a gateway, whose port is its own.
    pub destination_port: Option<i64>,
}

/// One rule: an Istio `HTTPRoute` (the fields canary-router supports).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct HttpRoute {
    /// Rule name, used in stats and the debug header.
    pub name: Option<String>,
    /// Match entries, ORed; none matches every request.
    #[cfg_attr(feature = "serde", serde(default, rename = "match"))]
    pub matches: Vec<MatchRequest>,
    /// Weighted destinations.
    pub route: Vec<RouteDestination>,
    /// Keep one user on one destination.
    pub sticky: Option<Sticky>,
}

/// An Istio `HTTPMatchRequest`: every field given must match (AND).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct MatchRequest {
    /// Name of the match entry (informational, as in Istio).
    pub name: Option<String>,
    /// The request path, without the query string.
    pub uri: Option<StringMatch>,
    /// `:scheme`.
    pub scheme: Option<StringMatch>,
    /// `:method`.
    pub method: Option<StringMatch>,
    /// `:authority` (as sent, port included).
    pub authority: Option<StringMatch>,
    /// Headers that must be present and match; `{}` means present.
    pub headers: Option<Map<StringMatch>>,
    /// Headers that must not match; `{}` means absent.
    pub without_headers: Option<Map<StringMatch>>,
    /// Port the request arrived on (the listener's, Envoy's
    /// `destination.port`; not the port in `:authority`).
    pub port: Option<i64>,
    /// Query parameters; `{}` means present.
    pub query_params: Option<Map<StringMatch>>,
    /// Match `uri` without regard to ASCII case.
    pub ignore_uri_case: Option<bool>,
    /// Labels of the workload this sidecar runs in.
    pub source_labels: Option<Map<String>>,
    /// Namespace of the workload this sidecar runs in.
    pub source_namespace: Option<String>,
}

/// An Istio `StringMatch`: at most one kind (none means "present"), plus,
/// in `uri` only, Gateway API's element-wise path prefix.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct StringMatch {
    /// The whole value equals this.
    pub exact: Option<String>,
    /// The value starts with this.
    pub prefix: Option<String>,
    /// The whole value matches this regular expression (RE2-like syntax).
    pub regex: Option<String>,
    /// `uri` only: the path is this, or starts with this followed by `/`
    /// (Gateway API's `PathPrefix`, Envoy's `path_separated_prefix`):
    /// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`.
    #[cfg_attr(feature = "serde", serde(rename = "pathPrefix"))]
    pub path_prefix: Option<String>,
}

/// An Istio `HTTPRouteDestination`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct RouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Relative weight; optional for a lone destination.
    pub weight: Option<i64>,
    /// Eject this destination from the split when its responses fail too
    /// often (canary-router's own field; Istio has none).
    pub guard: Option<Guard>,
}

/// A destination's guard: over the last `interval`, once at least
/// `minRequests` responses were counted and the share of errors (5xx, or no
/// response) reaches `maxErrorRate`, the destination is ejected.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Guard {
    /// Error share that ejects, in (0, 1].
    pub max_error_rate: f64,
    /// Responses the window must hold before it can eject (at least 1).
    pub min_requests: i64,
    /// Length of the sliding window, in Istio's duration syntax (`30s`, `1m`, `500ms`).
    pub interval: String,
}

/// An Istio `Destination`, or an explicit Envoy cluster.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Destination {
    /// Service host (short names expand like the service's hosts).
    pub host: Option<String>,
    /// DestinationRule subset.
    pub subset: Option<String>,
    /// Service port; absent: the service's `destinationPort`, else the
    /// port the request arrived on.
    pub port: Option<PortSelector>,
    /// An explicit Envoy cluster name, for plain Envoy setups.
    pub cluster: Option<String>,
}

/// An Istio `PortSelector`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PortSelector {
    /// The port number.
    pub number: i64,
}

/// What keeps a user on one destination: exactly one field.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Sticky {
    /// Hash this request header.
    pub header: Option<String>,
    /// Hash this cookie.
    pub cookie: Option<String>,
    /// Hash the client's IP address (`source.address`).
    pub source_ip: Option<bool>,
    /// With `cookie`: give a request that brings no such cookie a fresh
    /// random key, and send it back in a `Set-Cookie` response header.
    pub set_cookie: Option<SetCookie>,
}

/// The attributes of the sticky cookie the filter issues.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct SetCookie {
    /// `Max-Age` in seconds; absent: a session cookie.
    pub max_age: Option<i64>,
    /// `Path` (default `/`).
    pub path: Option<String>,
    /// `HttpOnly` (default true).
    pub http_only: Option<bool>,
    /// `Secure` (default false).
    pub secure: Option<bool>,
    /// `SameSite`: `Strict`, `Lax` (default) or `None` (which needs `secure`).
    pub same_site: Option<String>,
    /// `Domain`; absent: the host the response came from only.
    pub domain: Option<String>,
}
