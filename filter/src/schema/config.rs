//! The rule file as operators write it: types that mirror an Istio
//! VirtualService `http:` block, plus the filter's own settings.
//!
//! These types are only the *shape* of the input. They are strict (an
//! unknown field is an error, never a silent default) but hold raw values;
//! [`crate::domain::rules::compile`] checks the meaning (weights, regexes, hosts) and
//! builds the structures the request path uses.
//!
//! Each type is declared once, with [`schema!`](crate::schema::decode): a field is
//! `"jsonName" => rust_name: Type` under its docs, `= default` when a
//! document may leave it out (an `Option` may anyway). The declaration
//! writes the decoder, the field list and the serde oracle too. A new field
//! is one line here, plus what it means in `rules::compile` and `decide`.

use alloc::{boxed::Box, string::String, vec::Vec};

use crate::schema::decode::schema;
use filter_runtime::map::Map;

schema! {
    /// The plugin configuration: the WasmPlugin's `pluginConfig`, or the
    /// `configuration` of an Envoy wasm filter.
    #[derive(Debug, Clone)]
    pub struct PluginConfig {
        /// Request header the chosen cluster is written to (default `x-canary-upstream`).
        "routeHeader" => route_header: Option<String>,
        /// Response header naming `service/rule/destination` that served the
        /// request; absent means off.
        "debugHeader" => debug_header: Option<String>,
        /// Namespace that short hosts expand against (default `default`).
        "namespace" => namespace: Option<String>,
        /// Kubernetes cluster domain (default `cluster.local`).
        "clusterDomain" => cluster_domain: Option<String>,
        /// Optional version of the inline rules, shown in the `rules_version` gauge.
        "version" => version: Option<u64>,
        /// Who gives a port to destinations without one: `requestPort` (the
        /// default: the port the request arrived on) or `glue` (the filter
        /// writes `outbound||<subset>|<host>` and each port's routing glue maps
        /// it to its own port's cluster).
        "portlessDestinations" => portless_destinations: Option<String>,
        /// Inline rules.
        "services" => services: Option<Vec<Service>>,
        /// A rule file to poll over HTTP (a ConfigMap behind a tiny web server).
        "ruleSource" => rule_source: Option<RuleSource>,
    }
}

schema! {
    /// A rule file fetched from a [`RuleSource`]: the routing part of a
    /// [`PluginConfig`] only.
    #[derive(Debug, Clone)]
    pub struct RuleFile {
        /// Namespace that short hosts expand against (default: the plugin's, then `default`).
        "namespace" => namespace: Option<String>,
        /// Version of this file, shown in the `rules_version` gauge.
        "version" => version: Option<u64>,
        /// The rules.
        "services" => services: Vec<Service> = default,
    }
}

schema! {
    /// Where to poll a rule file from.
    #[derive(Debug, Clone)]
    pub struct RuleSource {
        /// The Envoy cluster that serves the rule file.
        "cluster" => cluster: String,
        /// `:authority` of the request (default: the host of an Istio cluster
        /// name `outbound|<port>|<subset>|<host>`, with `:<port>` unless 80; for
        /// any other cluster, the cluster name).
        "authority" => authority: Option<String>,
        /// Path of the rule file, e.g. `/rules.json`.
        "path" => path: String,
        /// How often to poll, in milliseconds (default 5000).
        "pollIntervalMs" => poll_interval_ms: Option<u64>,
        /// Timeout of one fetch, in milliseconds (default 2000).
        "timeoutMs" => timeout_ms: Option<u64>,
    }
}

schema! {
    /// One service: the hosts it answers for and its ordered rules
    /// (an Istio VirtualService `spec`).
    #[derive(Debug, Clone)]
    pub struct Service {
        /// Hosts the service answers for: FQDNs, short names or `*.suffix` wildcards.
        "hosts" => hosts: Vec<String>,
        /// Namespace short hosts of this service expand against.
        "namespace" => namespace: Option<String>,
        /// Rules, tried in order.
        "http" => http: HttpRoutes = default,
        /// Where Envoy's own route sends this service's requests when the
        /// filter leaves them alone (in Istio: the last route of the
        /// VirtualService). Requests the rules send there are left alone too:
        /// no header is written and the route is not re-selected.
        "defaultDestination" => default_destination: Option<Destination>,
        /// The port of destinations that name none (Istio: the service's only
        /// port). Absent: the port the request arrived on, as Istio resolves a
        /// sidecar's routes; required on a gateway, whose port is its own.
        "destinationPort" => destination_port: Option<i64>,
    }
}

schema! {
    /// One rule: an Istio `HTTPRoute` (the fields canary-router supports).
    #[derive(Debug, Clone)]
    pub struct HttpRoute {
        /// Rule name, used in stats and the debug header.
        "name" => name: Option<String>,
        /// Match entries, ORed; none matches every request.
        "match" => matches: Vec<MatchRequest> = default,
        /// Weighted destinations.
        "route" => route: Vec<RouteDestination>,
        /// Keep one user on one destination.
        "sticky" => sticky: Option<Sticky>,
        /// Raise the canary's weight on a schedule (canary-router's own field).
        "ramp" => ramp: Option<Box<Ramp>>,
        /// Istio's route timeout (a route policy, see [`HttpRoute::has_policy`]).
        "timeout" => timeout: Given = default,
        /// Istio's retry policy (a route policy).
        "retries" => retries: Given = default,
        /// Istio's header operations (a route policy).
        "headers" => headers: Given = default,
        /// Istio's URI and authority rewrite (a route policy).
        "rewrite" => rewrite: Given = default,
        /// Istio's mirror destination (a route policy).
        "mirror" => mirror: Given = default,
        /// Istio's mirror destinations (a route policy).
        "mirrors" => mirrors: Given = default,
        /// The share of requests `mirror` gets (a route policy).
        "mirrorPercentage" => mirror_percentage: Given = default,
        /// Istio's fault injection (a route policy).
        "fault" => fault: Given = default,
        /// Istio's CORS policy (a route policy).
        "corsPolicy" => cors_policy: Given = default,
    }
}

/// A service's rules: a list of [`HttpRoute`]s, which a reader with a
/// sink hands over one by one instead (the filter compiles each rule as it
/// is read, so a large rule set is never held parsed whole: see
/// `domain::plugin`). Read as a plain `Vec<HttpRoute>` otherwise.
#[derive(Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(transparent))]
pub struct HttpRoutes(pub Vec<HttpRoute>);

impl core::ops::Deref for HttpRoutes {
    type Target = Vec<HttpRoute>;
    fn deref(&self) -> &Vec<HttpRoute> {
        &self.0
    }
}

impl core::fmt::Debug for HttpRoutes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl crate::schema::decode::FromJson for HttpRoutes {
    const SHAPE: crate::schema::decode::Shape = <Vec<HttpRoute>>::SHAPE;
    fn read(r: &mut filter_runtime::json::Reader<'_>) -> filter_runtime::json::R<Self> {
        r.stream(&mut HttpRoute::read).map(HttpRoutes)
    }
}

impl HttpRoute {
    /// Whether the rule carries a route policy: its own, or one of its
    /// destinations' `headers`. The routing glue applies them, not the
    /// filter: the rule's requests take glue routes of their own, as the
    /// filter writes `<cluster>;<rule name>` into the route header, a value
    /// only those routes accept (`canaryctl render --glue` builds them from
    /// the same file).
    pub fn has_policy(&self) -> bool {
        self.timeout.0
            || self.retries.0
            || self.headers.0
            || self.rewrite.0
            || self.mirror.0
            || self.mirrors.0
            || self.mirror_percentage.0
            || self.fault.0
            || self.cors_policy.0
            || self.route.iter().any(|d| d.headers.0)
    }
}

/// Whether a route policy is given: its content is any JSON value, which
/// the filter checks as JSON (serde_json's `Value` accepts the same
/// documents) and does not keep; the routing glue applies it (`canaryctl`
/// reads it). `null`, or no field, is not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given(pub bool);

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Given {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::Deserialize<'de> for Any {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Any)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Any;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_str<E>(self, _: &str) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_unit<E>(self) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                while a.next_element::<Any>()?.is_some() {}
                Ok(Any)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
                while a.next_entry::<String, Any>()?.is_some() {}
                Ok(Any)
            }
        }
        Option::<Any>::deserialize(d).map(|v| Given(v.is_some()))
    }
}

schema! {
    /// An Istio `HTTPMatchRequest`: every field given must match (AND).
    #[derive(Debug, Clone)]
    pub struct MatchRequest {
        /// Name of the match entry (informational, as in Istio).
        "name" => name: Option<String>,
        /// The request path, without the query string.
        "uri" => uri: Option<StringMatch>,
        /// `:scheme`.
        "scheme" => scheme: Option<StringMatch>,
        /// `:method`.
        "method" => method: Option<StringMatch>,
        /// `:authority` (as sent, port included).
        "authority" => authority: Option<StringMatch>,
        /// Headers that must be present and match; `{}` means present.
        "headers" => headers: Option<Map<StringMatch>>,
        /// Headers that must not match; `{}` means absent.
        "withoutHeaders" => without_headers: Option<Map<StringMatch>>,
        /// Port the request arrived on (the listener's, Envoy's
        /// `destination.port`; not the port in `:authority`).
        "port" => port: Option<i64>,
        /// Query parameters; `{}` means present.
        "queryParams" => query_params: Option<Map<StringMatch>>,
        /// Match `uri` without regard to ASCII case.
        "ignoreUriCase" => ignore_uri_case: Option<bool>,
        /// Labels of the workload this sidecar runs in.
        "sourceLabels" => source_labels: Option<Map<String>>,
        /// Namespace of the workload this sidecar runs in.
        "sourceNamespace" => source_namespace: Option<String>,
    }
}

schema! {
    /// An Istio `StringMatch`: at most one kind (none means "present"), plus,
    /// in `uri` only, Gateway API's element-wise path prefix.
    #[derive(Debug, Clone)]
    pub struct StringMatch {
        /// The whole value equals this.
        "exact" => exact: Option<String>,
        /// The value starts with this.
        "prefix" => prefix: Option<String>,
        /// The whole value matches this regular expression (RE2-like syntax).
        "regex" => regex: Option<String>,
        /// `uri` only: the path is this, or starts with this followed by `/`
        /// (Gateway API's `PathPrefix`, Envoy's `path_separated_prefix`):
        /// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`.
        "pathPrefix" => path_prefix: Option<String>,
    }
}

schema! {
    /// An Istio `HTTPRouteDestination`.
    #[derive(Debug, Clone)]
    pub struct RouteDestination {
        /// Where the traffic goes.
        "destination" => destination: Destination,
        /// Relative weight; optional for a lone destination.
        "weight" => weight: Option<i64>,
        /// Eject this destination from the split when its responses fail too
        /// often (canary-router's own field; Istio has none).
        "guard" => guard: Option<Box<Guard>>,
        /// Istio's header operations for this destination (a route policy,
        /// see [`HttpRoute::has_policy`]).
        "headers" => headers: Given = default,
    }
}

schema! {
    /// A destination's guard: over the last `interval`, once at least
    /// `minRequests` responses were counted and the share of errors (5xx, or no
    /// response) reaches `maxErrorRate`, the destination is ejected. With a
    /// `baseline`, the destination is judged against that destination of the
    /// same rule instead: ejected when its error share exceeds the baseline's
    /// by at least `maxErrorRate` (significantly), or its p90 response time is
    /// over `maxLatencyRatio` × the baseline's.
    #[derive(Debug, Clone)]
    pub struct Guard {
        /// Error share that ejects, in (0, 1] (with a `baseline`: the excess
        /// over the baseline's).
        "maxErrorRate" => max_error_rate: f64,
        /// Responses the window must hold before it can eject (at least 1;
        /// with a `baseline`, on each side).
        "minRequests" => min_requests: i64,
        /// Length of the sliding window, in Istio's duration syntax (`30s`, `1m`, `500ms`).
        "interval" => interval: String,
        /// The destination of the same rule this one is compared with (its
        /// subset, or its host's or cluster's name).
        "baseline" => baseline: Option<String>,
        /// With `baseline`: eject when the p90 response time is over this
        /// many times the baseline's (above 1).
        "maxLatencyRatio" => max_latency_ratio: Option<f64>,
    }
}

schema! {
    /// An Istio `Destination`, or an explicit Envoy cluster.
    #[derive(Debug, Clone)]
    pub struct Destination {
        /// Service host (short names expand like the service's hosts).
        "host" => host: Option<String>,
        /// DestinationRule subset.
        "subset" => subset: Option<String>,
        /// Service port; absent: the service's `destinationPort`, else the
        /// port the request arrived on.
        "port" => port: Option<PortSelector>,
        /// An explicit Envoy cluster name, for plain Envoy setups.
        "cluster" => cluster: Option<String>,
    }
}

schema! {
    /// An Istio `PortSelector`.
    #[derive(Debug, Clone)]
    pub struct PortSelector {
        /// The port number.
        "number" => number: i64,
    }
}

schema! {
    /// What keeps a user on one destination: exactly one field.
    #[derive(Debug, Clone)]
    pub struct Sticky {
        /// Hash this request header.
        "header" => header: Option<String>,
        /// Hash this cookie.
        "cookie" => cookie: Option<String>,
        /// Hash the client's IP address (`source.address`).
        "sourceIp" => source_ip: Option<bool>,
        /// With `cookie`: give a request that brings no such cookie a fresh
        /// random key, and send it back in a `Set-Cookie` response header.
        "setCookie" => set_cookie: Option<SetCookie>,
    }
}

schema! {
    /// The attributes of the sticky cookie the filter issues.
    #[derive(Debug, Clone)]
    pub struct SetCookie {
        /// `Max-Age` in seconds; absent: a session cookie.
        "maxAge" => max_age: Option<i64>,
        /// `Path` (default `/`).
        "path" => path: Option<String>,
        /// `HttpOnly` (default true).
        "httpOnly" => http_only: Option<bool>,
        /// `Secure` (default false).
        "secure" => secure: Option<bool>,
        /// `SameSite`: `Strict`, `Lax` (default) or `None` (which needs `secure`).
        "sameSite" => same_site: Option<String>,
        /// `Domain`; absent: the host the response came from only.
        "domain" => domain: Option<String>,
        /// `Partitioned` (CHIPS: a cookie jar per top-level site; default
        /// false; needs `secure`).
        "partitioned" => partitioned: Option<bool>,
    }
}

schema! {
    /// A rule's scheduled ramp (canary-router's own field): Argo Rollouts'
    /// canary steps, walked from `start` by every proxy's own clock.
    #[derive(Debug, Clone)]
    pub struct Ramp {
        /// The destination the steps raise (its subset, or its host's or
        /// cluster's name).
        "canary" => canary: String,
        /// When the first step runs: an RFC 3339 time in UTC (`2026-12-07T10:00:00Z`).
        "start" => start: String,
        /// The steps, in order.
        "steps" => steps: Vec<RampStep>,
    }
}

schema! {
    /// One step of a ramp: exactly one of its fields.
    #[derive(Debug, Clone)]
    pub struct RampStep {
        /// The canary's share from this step on, in percent (0.01 the finest).
        "setWeight" => set_weight: Option<f64>,
        /// Hold the current weights for a while.
        "pause" => pause: Option<Pause>,
    }
}

schema! {
    /// A ramp's pause.
    #[derive(Debug, Clone)]
    pub struct Pause {
        /// How long, in Istio's duration syntax (`10m`, `30s`, `1h30m`).
        "duration" => duration: String,
    }
}
