//! From configuration bytes to a ready plugin: parsing with JSON paths in
//! every error, the filter's settings, and the compiled rules.

use alloc::{boxed::Box, format, string::String, string::ToString, vec::Vec};

use core::time::Duration;

use crate::domain::cluster::PortlessMode;
use crate::domain::rules::{self, CompileOptions, Compiler, RuleSet, Workload};
use crate::domain::text;
use crate::schema::config::{self, HttpRoute, PluginConfig, RuleFile};
use crate::schema::decode::FromJson;
use crate::schema::error::{ConfigError, Reason};
use crate::schema::limits;
use filter_runtime::json::{Reader, Sink, PIECE, R};

/// Default request header carrying the chosen cluster.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
/// Default namespace short hosts expand against.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default Kubernetes cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The filter's settings (everything in the plugin configuration but the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Request header the chosen cluster is written to (lower-case).
    pub route_header: Box<str>,
    /// Response header naming what served the request, if enabled (lower-case).
    pub debug_header: Option<Box<str>>,
    /// Namespace short hosts expand against.
    pub namespace: Box<str>,
    /// Kubernetes cluster domain.
    pub cluster_domain: Box<str>,
    /// Who gives a port to destinations without one (`portlessDestinations`).
    pub portless: PortlessMode,
    /// Where to poll rules from, if anywhere.
    pub source: Option<SourceSettings>,
}

/// A validated rule source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// Envoy cluster serving the rule file.
    pub cluster: Box<str>,
    /// `:authority` of the fetch.
    pub authority: Box<str>,
    /// `:path` of the fetch.
    pub path: Box<str>,
    /// Poll period.
    pub poll_interval: Duration,
    /// Timeout of one fetch.
    pub timeout: Duration,
}

/// A parsed and compiled plugin configuration.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// The settings.
    pub settings: Settings,
    /// The inline rules, if any.
    pub rules: Option<Rules>,
}

/// A compiled rule set with its version.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The rules.
    pub set: RuleSet,
    /// The version: the file's `version`, or a hash of its bytes (below 2^53,
    /// so it survives a trip through a Prometheus float).
    pub version: u64,
    /// A hash of the bytes the rules came from: a new value is a new rule
    /// set, which starts the guards over.
    pub digest: u64,
    /// The configuration's revision ([`crate::domain::revision`]): what
    /// `canary_router_config_revision` shows and `canaryctl verify` expects.
    pub revision: u64,
}

/// A configuration's JSON as the host hands it over: its size, and its
/// bytes read a piece at a time from any offset, as often as needed (the
/// configuration is read more than once), so that it is never held whole
/// in the module. A slice is one.
pub trait Source {
    /// The size in bytes.
    fn size(&self) -> usize;
    /// Appends the bytes from offset `start` on (a piece of them, none at
    /// the end) to `out`; an error is the host's, as it says it.
    fn read(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), String>;
}

impl Source for &[u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn read(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let rest = self.get(start..).unwrap_or_default();
        out.extend_from_slice(rest.get(..PIECE).unwrap_or(rest));
        Ok(())
    }
}

/// Parses JSON into `T`, naming the path of the first bad field.
pub fn parse<T: FromJson>(mut bytes: &[u8]) -> Result<T, ConfigError> {
    parse_with(&mut bytes, None)
}

/// [`parse`], the rules handed to `sink` one by one if given (see
/// [`HttpRoutes`](config::HttpRoutes)).
fn parse_with<T: FromJson>(src: &mut dyn Source, sink: Option<Sink<'_>>) -> Result<T, ConfigError> {
    let mut value = T::default();
    read_doc(src, sink, &mut |r| T::fill(r, &mut value))?;
    Ok(value)
}

/// Reads a whole document with `doc`: [`parse_with`]'s part that is the
/// same for every type. The oversized and the blank are refused before
/// it is parsed; a host error while reading is reported as it, not as
/// what the parser made of the bytes it had.
#[inline(never)]
fn read_doc(
    src: &mut dyn Source,
    sink: Option<Sink<'_>>,
    doc: &mut dyn FnMut(&mut Reader<'_>) -> R<()>,
) -> Result<(), ConfigError> {
    let size = src.size();
    if size > limits::MAX_CONFIG_BYTES {
        return Err(crate::ConfigErrorKind::TooLarge {
            size,
            limit: limits::MAX_CONFIG_BYTES,
        }
        .into());
    }
    read_pieces(src, sink, None, &mut |r| {
        if r.blank() {
            return Err(crate::ConfigErrorKind::Empty.into());
        }
        doc(r)
            .and_then(|()| r.end())
            .map_err(|e| ConfigError::from(*e))
    })
}

/// Runs `f` over a reader of `src`'s pieces, feeding each byte read to
/// `hash` if given; a host error while reading is the answer, whatever
/// `f` made of the bytes before it.
pub(crate) fn read_pieces(
    src: &mut dyn Source,
    sink: Option<Sink<'_>>,
    mut hash: Option<&mut crate::domain::revision::Fnv>,
    f: &mut dyn FnMut(&mut Reader<'_>) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let mut failed = None;
    let mut pieces = |start: usize, out: &mut Vec<u8>| {
        let from = out.len();
        if let Err(e) = src.read(start, out) {
            failed = Some(e);
            return false;
        }
        if let Some(h) = hash.as_mut() {
            for &b in out.get(from..).unwrap_or_default() {
                h.byte(b);
            }
        }
        true
    };
    let sink = sink.map(|s| s as Sink<'_>);
    let answer = f(&mut Reader::from_pieces(&mut pieces, sink));
    match failed {
        Some(e) => Err(crate::ConfigErrorKind::Unreadable(e).into()),
        None => answer,
    }
}

/// The service and rule indices of the rule a sink is handed.
fn rule_at(r: &Reader<'_>) -> (usize, usize) {
    let mut at = r.indices();
    (at.next().unwrap_or(0), at.next().unwrap_or(0))
}

/// What a first read of a document learns of its rules: how many each
/// service has, and the label keys they ask about (so the adapter reads
/// only those from the node metadata).
#[derive(Default)]
struct Outline {
    counts: Vec<usize>,
    keys: Vec<String>,
}

impl Outline {
    /// Reads a rule and notes it.
    #[inline(never)]
    fn rule(&mut self, r: &mut Reader<'_>) -> R<()> {
        let rule = HttpRoute::read(r)?;
        let (si, ri) = rule_at(r);
        if self.counts.len() <= si {
            self.counts.resize(si + 1, 0);
        }
        if let Some(n) = self.counts.get_mut(si) {
            *n = ri + 1;
        }
        label_keys(&rule, &mut self.keys);
        Ok(())
    }
}

/// A document of `T` read through once, each rule read and dropped: every
/// syntax and type error, in document order, as [`parse`] gives them. Returns
/// the document (its services without their rules) and its [`Outline`].
fn outline<T: FromJson>(src: &mut dyn Source) -> Result<(T, Outline), ConfigError> {
    let mut o = Outline::default();
    let doc = parse_with(src, Some(&mut |r| o.rule(r)))?;
    Ok((doc, o))
}

/// Compiles the rules of a document that [`outline`] read (`services` and
/// `outline` are its answer), reading it again with `doc` and compiling
/// each rule as it comes, so that only one rule is held parsed at a time.
/// The errors are those of [`check_route_header`] then [`rules::compile`]
/// over the whole list: a rule reading the route header anywhere, else the
/// first field that is wrong.
#[inline(never)]
fn compile_streamed(
    src: &mut dyn Source,
    services: &[config::Service],
    outline: &Outline,
    opts: &CompileOptions<'_>,
    route_header: &str,
    version: Option<u64>,
    doc: &mut dyn FnMut(&mut Reader<'_>) -> R<()>,
) -> Result<Rules, ConfigError> {
    let mut compiler = Compiler::new(services, &outline.counts, "services", opts);
    let mut refused = None;
    read_doc(
        src,
        Some(&mut |r| {
            let rule = HttpRoute::read(r)?;
            if refused.is_some() {
                return Ok(());
            }
            let (si, ri) = rule_at(r);
            if let Err(e) = rule_route_header(&rule, si, ri, "services", route_header) {
                refused = Some(e);
            } else if let Ok(c) = &mut compiler {
                if let Err(e) = c.rule(si, ri, &rule) {
                    compiler = Err(e);
                }
            }
            Ok(())
        }),
        doc,
    )?;
    match refused {
        Some(e) => Err(e),
        None => Rules::new(compiler?.finish()?, version, src),
    }
}

/// Adds the source label keys `rule` asks about to `keys` (sorted, once each).
fn label_keys(rule: &HttpRoute, keys: &mut Vec<String>) {
    for labels in rule.matches.iter().filter_map(|m| m.source_labels.as_ref()) {
        for key in labels.keys() {
            if let Err(at) = keys.binary_search(key) {
                keys.insert(at, key.clone());
            }
        }
    }
}

/// Refuses rules that read the route header: clients must never steer with it.
fn check_route_header(
    services: &[config::Service],
    path: &str,
    route_header: &str,
) -> Result<(), ConfigError> {
    for (si, svc) in services.iter().enumerate() {
        for (ri, rule) in svc.http.iter().enumerate() {
            rule_route_header(rule, si, ri, path, route_header)?;
        }
    }
    Ok(())
}

/// Refuses rule `ri` of service `si` (under `path`) if it reads the route header.
#[inline(never)]
fn rule_route_header(
    rule: &HttpRoute,
    si: usize,
    ri: usize,
    path: &str,
    route_header: &str,
) -> Result<(), ConfigError> {
    let is_route = |name: &str| name.eq_ignore_ascii_case(route_header);
    let refuse = |field: String| {
        Err(ConfigError::invalid(
            format!("{path}[{si}].http[{ri}].{field}"),
            Reason::RouteHeaderInRule(route_header.to_string()),
        ))
    };
    for (mi, m) in rule.matches.iter().enumerate() {
        for (field, map) in [
            ("headers", &m.headers),
            ("withoutHeaders", &m.without_headers),
        ] {
            for name in map.iter().flat_map(|h| h.keys()) {
                if is_route(name) {
                    return refuse(format!("match[{mi}].{field}.{name}"));
                }
            }
        }
    }
    if rule
        .sticky
        .as_ref()
        .and_then(|s| s.header.as_deref())
        .is_some_and(is_route)
    {
        return refuse("sticky.header".into());
    }
    Ok(())
}

/// A stable version for bytes without an explicit `version`.
pub fn content_version(bytes: &[u8]) -> u64 {
    crate::domain::pick::hash_key(bytes) >> 11
}

impl Settings {
    /// What the debug header says of each destination of `set`,
    /// `service/rule/destination`, in `stat_index` order; nothing without a
    /// debug header, where no request reads them (they cost about 50 bytes a
    /// destination).
    pub fn debug_values(&self, set: &RuleSet) -> Box<[Box<str>]> {
        match self.debug_header {
            None => Box::default(),
            Some(_) => {
                let mut values = Vec::with_capacity(set.destination_count() as usize);
                for (s, r, d) in set.all_destinations() {
                    values.push(format!("{}/{}/{}", s.name, r.name, d.label).into());
                }
                values.into_boxed_slice()
            }
        }
    }

    /// Validates the settings part of a plugin configuration.
    pub fn from_config(cfg: &PluginConfig) -> Result<Self, ConfigError> {
        let route_header = header(cfg.route_header.as_deref(), "routeHeader")?
            .unwrap_or_else(|| DEFAULT_ROUTE_HEADER.into());
        let debug_header = header(cfg.debug_header.as_deref(), "debugHeader")?;
        let namespace = cfg.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        if namespace.is_empty()
            || namespace.contains('.')
            || !crate::domain::hosts::valid_host(namespace)
        {
            return Err(ConfigError::invalid(
                "namespace",
                Reason::BadHost(namespace.to_string()),
            ));
        }
        let cluster_domain = cfg
            .cluster_domain
            .as_deref()
            .unwrap_or(DEFAULT_CLUSTER_DOMAIN);
        if cluster_domain.starts_with('*') || !crate::domain::hosts::valid_host(cluster_domain) {
            return Err(ConfigError::invalid(
                "clusterDomain",
                Reason::BadHost(cluster_domain.to_string()),
            ));
        }
        let portless = match cfg.portless_destinations.as_deref() {
            None | Some("requestPort") => PortlessMode::RequestPort,
            Some("glue") => PortlessMode::Glue,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "portlessDestinations",
                    Reason::BadPortlessMode(other.to_string()),
                ))
            }
        };
        let source = cfg.rule_source.as_ref().map(source).transpose()?;
        if cfg.services.is_none() && source.is_none() {
            return Err(ConfigError::invalid("services", Reason::NoRules));
        }
        Ok(Settings {
            route_header,
            debug_header,
            namespace: namespace.into(),
            cluster_domain: cluster_domain.to_ascii_lowercase().into(),
            portless,
            source,
        })
    }

    /// Compile options for these settings and a workload.
    pub fn compile_options<'a>(&'a self, workload: &'a Workload) -> CompileOptions<'a> {
        CompileOptions {
            namespace: &self.namespace,
            cluster_domain: &self.cluster_domain,
            workload,
            portless: self.portless,
        }
    }

    /// The options a rule file is compiled with: its own namespace, if it
    /// names one.
    fn file_options<'a>(
        &'a self,
        file: &'a RuleFile,
        workload: &'a Workload,
    ) -> CompileOptions<'a> {
        CompileOptions {
            namespace: file.namespace.as_deref().unwrap_or(&self.namespace),
            ..self.compile_options(workload)
        }
    }

    /// Compiles a parsed rule file fetched from the rule source (`bytes`, its JSON).
    pub fn compile_rule_file(
        &self,
        file: &RuleFile,
        mut bytes: &[u8],
        workload: &Workload,
    ) -> Result<Rules, ConfigError> {
        check_route_header(&file.services, "services", &self.route_header)?;
        let set = rules::compile(
            &file.services,
            "services",
            &self.file_options(file, workload),
        )?;
        Rules::new(set, file.version, &mut bytes)
    }
}

impl Rules {
    /// Compiled rules from the JSON `src` holds, with their `version` if
    /// given: the hashes of its bytes and of its value, from one more read.
    fn new(set: RuleSet, version: Option<u64>, src: &mut dyn Source) -> Result<Self, ConfigError> {
        let (digest, revision) = crate::domain::revision::hashes(src)?;
        Ok(Rules {
            set,
            version: version.unwrap_or(digest >> 11),
            digest,
            revision,
        })
    }
}

#[inline(never)]
fn header(name: Option<&str>, field: &str) -> Result<Option<Box<str>>, ConfigError> {
    let Some(name) = name else { return Ok(None) };
    if name.starts_with(':') {
        return Err(ConfigError::invalid(
            field,
            Reason::BadHeaderName(name.to_string()),
        ));
    }
    rules::header_name(name)
        .map(|n| Some(n.into()))
        .map_err(|r| ConfigError::invalid(field, r))
}

/// The `:authority` of rule fetches when `ruleSource.authority` is not given:
/// for an Istio cluster name `outbound|<port>|<subset>|<host>` the host (with
/// `:<port>` unless it is 80), so the rule server sees the Service's name;
/// for any other cluster, the cluster name.
pub fn default_authority(cluster: &str) -> String {
    let mut parts = [""; 4];
    if text::split_exact(cluster, b'|', &mut parts) {
        let [kind, port, _subset, host] = parts;
        let port_number = text::parse_u64(port.as_bytes(), 10);
        if kind == "outbound" && !host.is_empty() && matches!(port_number, Some(1..=65535)) {
            return if port == "80" {
                host.to_string()
            } else {
                format!("{host}:{port}")
            };
        }
    }
    cluster.to_string()
}

fn source(s: &config::RuleSource) -> Result<SourceSettings, ConfigError> {
    if s.cluster.is_empty() {
        return Err(ConfigError::invalid(
            "ruleSource.cluster",
            Reason::EmptyString,
        ));
    }
    if !s.path.starts_with('/') || !text::all_bytes(&s.path, |b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            "ruleSource.path",
            Reason::BadCharacters(s.path.clone()),
        ));
    }
    let authority = s
        .authority
        .clone()
        .unwrap_or_else(|| default_authority(&s.cluster));
    if authority.is_empty() || !text::all_bytes(&authority, |b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            "ruleSource.authority",
            Reason::BadCharacters(authority),
        ));
    }
    let ms = |v: Option<u64>, default: u64, min: u64, max: u64, field: &str| {
        let v = v.unwrap_or(default);
        if (min..=max).contains(&v) {
            Ok(Duration::from_millis(v))
        } else {
            Err(ConfigError::at(
                "ruleSource",
                field,
                Reason::BadDuration { min, max },
            ))
        }
    };
    Ok(SourceSettings {
        cluster: s.cluster.as_str().into(),
        authority: authority.into(),
        path: s.path.as_str().into(),
        poll_interval: ms(
            s.poll_interval_ms,
            5000,
            limits::MIN_POLL_INTERVAL_MS,
            limits::MAX_POLL_INTERVAL_MS,
            "pollIntervalMs",
        )?,
        timeout: ms(
            s.timeout_ms,
            2000,
            limits::MIN_FETCH_TIMEOUT_MS,
            limits::MAX_FETCH_TIMEOUT_MS,
            "timeoutMs",
        )?,
    })
}

impl Plugin {
    /// Parses, validates and compiles a plugin configuration.
    pub fn from_bytes(mut bytes: &[u8], workload: &Workload) -> Result<Self, ConfigError> {
        Self::read(&mut bytes, &mut |_| workload.clone())
    }

    /// Parses, validates and compiles a plugin configuration for the
    /// workload `workload` gives for the label keys the rules ask about.
    /// The rules are compiled as they are read (the document is read twice,
    /// see [`outline`]), so the peak of memory holds one rule parsed, not
    /// all; the errors are those of [`parse`] then [`Plugin::from_config`].
    pub fn read(
        src: &mut dyn Source,
        workload: &mut dyn FnMut(&[String]) -> Workload,
    ) -> Result<Self, ConfigError> {
        let (cfg, outline) = outline::<PluginConfig>(src)?;
        let workload = workload(&outline.keys);
        let settings = Settings::from_config(&cfg)?;
        let rules = match &cfg.services {
            None => None,
            Some(services) => Some(compile_streamed(
                src,
                services,
                &outline,
                &settings.compile_options(&workload),
                &settings.route_header,
                cfg.version,
                &mut |r| PluginConfig::read(r).map(drop),
            )?),
        };
        Ok(Plugin { settings, rules })
    }

    /// Validates and compiles a parsed plugin configuration.
    pub fn from_config(
        cfg: &PluginConfig,
        mut bytes: &[u8],
        workload: &Workload,
    ) -> Result<Self, ConfigError> {
        let settings = Settings::from_config(cfg)?;
        let rules = match &cfg.services {
            None => None,
            Some(services) => {
                check_route_header(services, "services", &settings.route_header)?;
                let set =
                    rules::compile(services, "services", &settings.compile_options(workload))?;
                Some(Rules::new(set, cfg.version, &mut bytes)?)
            }
        };
        Ok(Plugin { settings, rules })
    }
}

/// Parses and compiles a rule file (the polled ConfigMap) for given settings.
pub fn rule_file_from_bytes(
    mut bytes: &[u8],
    settings: &Settings,
    workload: &Workload,
) -> Result<Rules, ConfigError> {
    read_rule_file(&mut bytes, settings, &mut |_| workload.clone())
}

/// [`rule_file_from_bytes`] for the workload `workload` gives for the label
/// keys the rules ask about, compiling the rules as they are read (as
/// [`Plugin::read`]).
pub fn read_rule_file(
    src: &mut dyn Source,
    settings: &Settings,
    workload: &mut dyn FnMut(&[String]) -> Workload,
) -> Result<Rules, ConfigError> {
    let (file, outline) = outline::<RuleFile>(src)?;
    let workload = workload(&outline.keys);
    compile_streamed(
        src,
        &file.services,
        &outline,
        &settings.file_options(&file, &workload),
        &settings.route_header,
        file.version,
        &mut |r| RuleFile::read(r).map(drop),
    )
}
