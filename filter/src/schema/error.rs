//! Errors of a rule set: each names the JSON path of the offending field and why.

use alloc::{boxed::Box, string::String};

use core::fmt;

/// Why a rule set was rejected ([`ConfigErrorKind`], boxed). The whole set
/// is rejected; whatever rules were serving before keep serving.
///
/// One pointer, so that every `Result` of the compile steps stays small: a
/// `Result<T, ConfigErrorKind>` is 48 bytes on wasm32, which each `?` and
/// `return Err` copied, and the boxed error made the module 2 KB smaller
/// (bench/README.md, "Module size").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<ConfigErrorKind>);

/// What a [`ConfigError`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The configuration is larger than [`crate::schema::limits::MAX_CONFIG_BYTES`].
    TooLarge {
        /// Size received, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The configuration is empty.
    Empty,
    /// The host failed to hand over the configuration's bytes (its status).
    Unreadable(String),
    /// Not valid JSON, a wrong type, or an unknown field.
    Syntax {
        /// Path of the field, e.g. `services[0].http[2].route[1].weight`.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// Well-formed, but a value is not acceptable.
    Invalid {
        /// Path of the field, e.g. `services[0].http[2].route[1].weight`.
        path: String,
        /// Why.
        reason: Reason,
    },
}

/// Why a well-formed value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A list that must have at least one entry is empty.
    EmptyList,
    /// A string that must not be empty is empty.
    EmptyString,
    /// A host name is not a valid host.
    BadHost(String),
    /// The same host is claimed by two services.
    DuplicateHost {
        /// The host, as expanded.
        host: String,
        /// Path of the first claim.
        first: String,
    },
    /// A weight is negative.
    NegativeWeight(i64),
    /// A weight exceeds [`crate::schema::limits::MAX_WEIGHT`].
    WeightTooLarge(i64),
    /// Every destination of a route has weight 0.
    AllZeroWeights,
    /// A route with several destinations has one without a weight.
    MissingWeight,
    /// A port is outside 1..=65535.
    BadPort(i64),
    /// A destination names a host but no port, on a gateway (where the
    /// request's port is the gateway's own) and without a `destinationPort`.
    MissingPort,
    /// A destination names neither a host nor a cluster.
    MissingDestination,
    /// A destination names both a host and an explicit cluster.
    HostAndCluster,
    /// A StringMatch gives more than one of exact/prefix/regex.
    MoreThanOneMatchKind,
    /// A StringMatch with no kind, where "present" means nothing (`uri`, `method`...).
    NoMatchKind,
    /// A regular expression does not compile.
    BadRegex(String),
    /// A `pathPrefix` outside `uri`.
    PathPrefixOutsideUri,
    /// A `pathPrefix` Envoy would refuse as a `path_separated_prefix`.
    BadPathPrefix(String),
    /// A sticky block gives no key, or more than one.
    StickyNeedsOneKey,
    /// `sourceIp: false` is meaningless.
    StickySourceIpFalse,
    /// A header name is not a valid (lower-case-able) HTTP header name.
    BadHeaderName(String),
    /// A value that must be a plain token contains forbidden characters.
    BadCharacters(String),
    /// A list or string is over one of the documented limits.
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A duration is out of range.
    BadDuration {
        /// Smallest accepted, in milliseconds.
        min: u64,
        /// Largest accepted, in milliseconds.
        max: u64,
    },
    /// A duration is not in Istio's syntax (`30s`, `1m`, `500ms`).
    MalformedDuration(String),
    /// A guard's `maxErrorRate` is outside (0, 1].
    GuardRate,
    /// A guard's `minRequests` is below 1.
    GuardMinRequests(i64),
    /// Neither inline `services` nor a `ruleSource` was given.
    NoRules,
    /// A rule reads the route header, which only the filter writes (a client
    /// copy is removed, so matching on it would let clients steer).
    RouteHeaderInRule(String),
    /// `setCookie` in a sticky block that is not by `cookie`.
    SetCookieNeedsCookie,
    /// A cookie name is not an RFC 6265 token (browsers refuse it).
    BadCookieName(String),
    /// `sameSite` is not `Strict`, `Lax` or `None`.
    BadSameSite(String),
    /// An attribute browsers accept only on a `Secure` cookie (`sameSite:
    /// None`, `partitioned: true`) without `secure: true`.
    NeedsSecure(&'static str),
    /// `maxAge` is outside 1..=[`crate::schema::limits::MAX_COOKIE_AGE_SECS`].
    BadMaxAge(i64),
    /// A cookie `path` does not start with `/`, or holds a control character or `;`.
    BadCookiePath(String),
    /// `portlessDestinations` is not `requestPort` or `glue`.
    BadPortlessMode(String),
    /// A `ramp` or a guard's `baseline` is wrong in the way named.
    Fault(Fault),
    /// A name that should be one destination of the rule (`ramp.canary`,
    /// a guard's `baseline`) names none, or several.
    NotADestination(String),
}

/// What is wrong with one of canary-router's own fields, `ramp` and a
/// guard's `baseline` (the path says where).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A step gives both `setWeight` and `pause`, or neither.
    StepKind,
    /// A `setWeight` is outside [0, 100] or has more than two decimals.
    WeightRange,
    /// A `setWeight` is below an earlier one, or below the route's own
    /// share of the canary.
    WeightDown,
    /// No step sets a weight.
    NothingToDo,
    /// The canary is the only destination with weight: no one takes the rest.
    NoOtherWeight,
    /// `start` is not an RFC 3339 time.
    BadStart,
    /// A guard's `baseline` is its own destination.
    BaselineIsSelf,
    /// A rule with a baseline guard has guards of different intervals
    /// (the windows compared must be alike).
    BaselineInterval,
    /// `maxLatencyRatio` is not above 1.
    LatencyRatio,
    /// `maxLatencyRatio` without `baseline`.
    LatencyNeedsBaseline,
}

impl Fault {
    /// The operator's explanation.
    pub fn message(self) -> &'static str {
        match self {
            Fault::StepKind => "give either `setWeight` or `pause` in a step",
            Fault::WeightRange => {
                "must be a percentage from 0 to 100 with at most two decimals (0.01 is the finest)"
            }
            Fault::WeightDown => {
                "goes down: a ramp only raises the canary (from the route's own share of it on), so that no sticky user on the canary is moved back"
            }
            Fault::NothingToDo => "no step sets a weight: give at least one `setWeight`",
            Fault::NoOtherWeight => {
                "the route's other destinations have no weight: they share what the canary does not take, in the proportions of their `weight`s"
            }
            Fault::BadStart => "is not an RFC 3339 time in UTC, e.g. `2026-12-07T10:00:00Z`",
            Fault::BaselineIsSelf => "is the guarded destination itself: name another destination of the rule",
            Fault::BaselineInterval => {
                "differs from another guard's of this rule: with a `baseline`, the windows compared must be alike"
            }
            Fault::LatencyRatio => "must be above 1 (the canary's p90 over the baseline's)",
            Fault::LatencyNeedsBaseline => "needs `baseline`: the latency is compared with it",
        }
    }
}

impl From<ConfigErrorKind> for ConfigError {
    #[inline(never)]
    fn from(kind: ConfigErrorKind) -> Self {
        ConfigError(Box::new(kind))
    }
}

impl ConfigError {
    /// What the error says.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0
    }

    /// What the error says, unboxed.
    pub fn into_kind(self) -> ConfigErrorKind {
        *self.0
    }

    /// Shorthand for [`ConfigErrorKind::Invalid`].
    pub fn invalid(path: impl Into<String>, reason: Reason) -> Self {
        ConfigErrorKind::Invalid {
            path: path.into(),
            reason,
        }
        .into()
    }

    /// [`ConfigErrorKind::Invalid`] at `{path}.{field}`: one out-of-line
    /// constructor for the many checks that refuse a field of an object.
    #[inline(never)]
    pub fn at(path: &str, field: &str, reason: Reason) -> Self {
        Self::invalid(field_path(path, field), reason)
    }

    /// The JSON path the error is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self.kind() {
            ConfigErrorKind::Syntax { path, .. } | ConfigErrorKind::Invalid { path, .. } => {
                Some(path)
            }
            ConfigErrorKind::TooLarge { .. }
            | ConfigErrorKind::Empty
            | ConfigErrorKind::Unreadable(_) => None,
        }
    }
}

/// The JSON path `{path}.{field}`.
#[inline(never)]
pub fn field_path(path: &str, field: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1 + field.len());
    out.push_str(path);
    out.push('.');
    out.push_str(field);
    out
}

/// The JSON path `{path}[{index}]`.
#[inline(never)]
pub fn index_path(path: &str, index: usize) -> String {
    alloc::format!("{path}[{index}]")
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind().fmt(f)
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigErrorKind::TooLarge { size, limit } => {
                write!(
                    f,
                    "configuration is {size} bytes, over the limit of {limit}"
                )
            }
            ConfigErrorKind::Empty => f.write_str("configuration is empty"),
            ConfigErrorKind::Unreadable(status) => {
                write!(f, "cannot read the configuration: {status}")
            }
            ConfigErrorKind::Syntax { path, message } if path.is_empty() || path == "." => {
                f.write_str(message)
            }
            ConfigErrorKind::Syntax { path, message } => write!(f, "{path}: {message}"),
            ConfigErrorKind::Invalid { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// The JSON reader's error is a [`ConfigErrorKind::Syntax`].
impl From<filter_runtime::json::Error> for ConfigError {
    fn from(e: filter_runtime::json::Error) -> Self {
        let filter_runtime::json::Error { path, message } = e;
        ConfigErrorKind::Syntax { path, message }.into()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::EmptyList => f.write_str("must not be empty"),
            Reason::EmptyString => f.write_str("must not be an empty string"),
            Reason::BadHost(h) => write!(f, "`{h}` is not a valid host (letters, digits, '-', '.', an optional leading '*.'; no port, no scheme)"),
            Reason::DuplicateHost { host, first } => {
                write!(f, "host `{host}` is already claimed by {first}")
            }
            Reason::NegativeWeight(w) => write!(f, "weight {w} is negative"),
            Reason::WeightTooLarge(w) => write!(
                f,
                "weight {w} is over the limit of {}",
                crate::schema::limits::MAX_WEIGHT
            ),
            Reason::AllZeroWeights => {
                f.write_str("every destination has weight 0, so no request could be routed")
            }
            Reason::MissingWeight => {
                f.write_str("required when a route has more than one destination")
            }
            Reason::BadPort(p) => write!(f, "port {p} is outside 1..=65535"),
            Reason::MissingPort => f.write_str(
                "required on an Istio gateway, whose listener port is its own, not the service's: give `port`, or the service's `destinationPort`",
            ),
            Reason::MissingDestination => f.write_str("give `host` (Istio) or `cluster` (plain Envoy)"),
            Reason::HostAndCluster => f.write_str("give either `host` or `cluster`, not both"),
            Reason::MoreThanOneMatchKind => {
                f.write_str("give at most one of `exact`, `prefix`, `regex`, `pathPrefix` (uri only)")
            }
            Reason::NoMatchKind => {
                f.write_str("give one of `exact`, `prefix`, `regex` (or, in uri, `pathPrefix`)")
            }
            Reason::BadRegex(e) => write!(f, "invalid regex: {e}"),
            Reason::PathPrefixOutsideUri => f.write_str("`pathPrefix` is for `uri` only"),
            Reason::BadPathPrefix(p) => write!(
                f,
                "`{p}` is not a path prefix: at least two bytes, no '?' or '#', no trailing '/' (`prefix: /` matches every path)"
            ),
            Reason::StickyNeedsOneKey => {
                f.write_str("give exactly one of `header`, `cookie`, `sourceIp`")
            }
            Reason::StickySourceIpFalse => {
                f.write_str("`sourceIp: false` means nothing; remove `sticky` instead")
            }
            Reason::BadHeaderName(h) => write!(f, "`{h}` is not a valid HTTP header name"),
            Reason::BadCharacters(s) => write!(
                f,
                "`{s}` contains characters not allowed here (control characters, spaces, ';', '=' or '|')"
            ),
            Reason::TooMany { what, limit } => write!(f, "more than {limit} {what}"),
            Reason::BadDuration { min, max } => {
                write!(f, "must be between {min} and {max} milliseconds")
            }
            Reason::MalformedDuration(d) => write!(
                f,
                "`{d}` is not a duration: write a number and a unit (`h`, `m`, `s`, `ms`), e.g. `30s`, `1m`, `500ms`"
            ),
            Reason::GuardRate => {
                f.write_str("must be above 0 and at most 1 (a share of the responses, e.g. 0.05)")
            }
            Reason::GuardMinRequests(n) => write!(f, "{n} is below 1"),
            Reason::NoRules => f.write_str("give inline `services`, a `ruleSource`, or both"),
            Reason::RouteHeaderInRule(h) => write!(
                f,
                "`{h}` is the route header: the filter writes it and removes any client copy, so rules cannot read it"
            ),
            Reason::SetCookieNeedsCookie => {
                f.write_str("`setCookie` needs `cookie`: it issues the cookie the rule is sticky by")
            }
            Reason::BadCookieName(c) => write!(
                f,
                "`{c}` is not a cookie name browsers accept (an RFC 6265 token: no separators such as ()<>@,;:\\\"/[]?={{}}, spaces or control characters)"
            ),
            Reason::BadSameSite(v) => {
                write!(f, "`{v}` is not one of `Strict`, `Lax`, `None`")
            }
            Reason::NeedsSecure(what) => write!(
                f,
                "`{what}` needs `secure: true`: browsers drop such a cookie otherwise"
            ),
            Reason::BadMaxAge(v) => write!(
                f,
                "maxAge {v} is outside 1..={} seconds (400 days, the most browsers keep a cookie)",
                crate::schema::limits::MAX_COOKIE_AGE_SECS
            ),
            Reason::BadCookiePath(p) => write!(
                f,
                "`{p}` is not a cookie path (it starts with '/', with no control characters or ';')"
            ),
            Reason::Fault(fault) => f.write_str(fault.message()),
            Reason::NotADestination(name) => write!(
                f,
                "`{name}` does not name one destination of this rule (by its subset, or its host's or cluster's name)"
            ),
            Reason::BadPortlessMode(v) => write!(
                f,
                "`{v}`: give `requestPort` (the port the request arrived on) or `glue` (each port's routing glue maps `outbound||<subset>|<host>`)"
            ),
        }
    }
}
