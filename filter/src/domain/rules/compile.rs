//! Configuration → compiled rules: every check, with the JSON path of the
//! field it refuses.

use alloc::{boxed::Box, format, string::String, string::ToString, vec::Vec};

use crate::domain::cluster::{ClusterName, PortlessAs, PortlessMode};
use crate::domain::cookie::{self};
use crate::domain::hosts::{self, Expansion};
use crate::domain::matcher::{Field, StringMatcher};
use crate::domain::pick::{hash_key, Weights};
use crate::schema::config;
use crate::schema::error::{field_path, index_path, ConfigError, Fault, Reason};
use crate::schema::limits;
use filter_runtime::map::Map;

use super::{
    CompileOptions, Condition, Destination, MatchEntry, Ramped, Route, Rule, RuleIndex, RuleSet,
    Service, Sticky, StickyKey, Target, Via, INDEX_MIN_RULES,
};

// ---------------------------------------------------------------------------
// Compilation.
//
// The `#[inline(never)]` on the compile steps (here and on `RuleIndex::build`)
// is for memory, not speed. Envoy's V8 compiles every function of the
// module with TurboFan when it loads it, and the compiler's scratch memory
// grows faster than the function: inlined into one 28 KiB function, the
// compile steps left about 9 MiB more in Envoy's heap than kept apart
// (bench/README.md, "Memory"). This code runs once per configuration.
// ---------------------------------------------------------------------------

/// Compiles services into a rule set, or names the first field that is wrong.
/// `path` is the JSON path of the `services` list (usually `services`).
pub fn compile(
    services: &[config::Service],
    path: &str,
    opts: &CompileOptions<'_>,
) -> Result<RuleSet, ConfigError> {
    let mut counts = Vec::with_capacity(services.len());
    for s in services {
        counts.push(s.http.len());
    }
    let mut c = Compiler::new(services, &counts, path, opts)?;
    for (si, svc) in services.iter().enumerate() {
        for (ri, rule) in svc.http.iter().enumerate() {
            c.rule(si, ri, rule)?;
        }
    }
    c.finish()
}

/// Compiles a rule set one rule at a time, in document order, so that the
/// rules need not be held parsed all at once: [`Compiler::rule`] for each
/// rule, then [`Compiler::finish`]. The services come without their rules
/// (their `http` is not read), with how many rules each has in `counts`.
/// The checks and their order are those of compiling the whole list: each
/// service's own fields before its rules, its `defaultDestination` after.
pub struct Compiler<'a> {
    services: &'a [config::Service],
    counts: &'a [usize],
    path: &'a str,
    opts: &'a CompileOptions<'a>,
    set: RuleSet,
    // Each host claimed so far → its JSON path, in `claim_paths`.
    claimed: hosts::HostMap<u32>,
    claim_paths: Vec<String>,
    aliases: Vec<(String, u32)>,
    targets: Targets,
    /// The service whose rules come now.
    open: Option<Open<'a>>,
    /// The index of the next service to open.
    next: usize,
}

/// The service being compiled.
struct Open<'a> {
    index: usize,
    path: String,
    http_path: String,
    exp: Expansion<'a>,
    portless: PortlessAs,
    name: String,
    rules: Vec<Rule>,
}

impl<'a> Compiler<'a> {
    /// Starts a rule set of `services`, service `i` with `counts[i]` rules.
    pub fn new(
        services: &'a [config::Service],
        counts: &'a [usize],
        path: &'a str,
        opts: &'a CompileOptions<'a>,
    ) -> Result<Self, ConfigError> {
        if services.len() > limits::MAX_SERVICES {
            return Err(ConfigError::invalid(
                path,
                Reason::TooMany {
                    what: "services",
                    limit: limits::MAX_SERVICES,
                },
            ));
        }
        let mut rules = 0usize;
        for n in counts {
            rules += n;
        }
        if rules > limits::MAX_RULES {
            return Err(ConfigError::invalid(
                path,
                Reason::TooMany {
                    what: "rules across all services",
                    limit: limits::MAX_RULES,
                },
            ));
        }
        Ok(Compiler {
            services,
            counts,
            path,
            opts,
            set: RuleSet::default(),
            claimed: Default::default(),
            claim_paths: Vec::new(),
            aliases: Vec::new(),
            targets: Targets::default(),
            open: None,
            next: 0,
        })
    }

    /// Compiles rule `ri` of service `si` (rules come in document order).
    pub fn rule(
        &mut self,
        si: usize,
        ri: usize,
        rule: &config::HttpRoute,
    ) -> Result<(), ConfigError> {
        while self.open.as_ref().is_none_or(|o| o.index != si) && self.next <= si {
            self.step()?;
        }
        let Some(o) = self.open.as_mut() else {
            return Ok(());
        };
        let rule = compile_rule(
            rule,
            &index_path(&o.http_path, ri),
            ri,
            (&o.exp, o.portless),
            self.opts,
            &mut self.targets,
        )?;
        o.rules.push(rule);
        Ok(())
    }

    /// Closes the services left, and returns the rule set.
    pub fn finish(mut self) -> Result<RuleSet, ConfigError> {
        while self.open.is_some() || self.next < self.services.len() {
            self.step()?;
        }
        // Short aliases never override a name some service claimed in full.
        for (alias, index) in core::mem::take(&mut self.aliases) {
            self.set.hosts.insert(&alias, index);
        }
        self.set.destinations = self.targets.next_stat;
        self.set.targets = self.targets.list;
        Ok(self.set)
    }

    /// Closes the open service, or opens the next one.
    fn step(&mut self) -> Result<(), ConfigError> {
        match self.open.take() {
            Some(o) => self.close(o),
            None => {
                self.next += 1;
                self.begin(self.next - 1)
            }
        }
    }

    /// Opens service `si`: its own fields, checked before its rules.
    #[inline(never)]
    fn begin(&mut self, si: usize) -> Result<(), ConfigError> {
        let (Some(svc), opts) = (self.services.get(si), self.opts) else {
            return Ok(());
        };
        let spath = index_path(self.path, si);
        let namespace = svc.namespace.as_deref().unwrap_or(opts.namespace);
        if namespace.is_empty() || !hosts::valid_host(namespace) || namespace.contains('.') {
            return Err(ConfigError::at(
                &spath,
                "namespace",
                Reason::BadHost(namespace.to_string()),
            ));
        }
        let exp = Expansion {
            namespace,
            cluster_domain: opts.cluster_domain,
        };
        let hosts_path = field_path(&spath, "hosts");
        if svc.hosts.is_empty() {
            return Err(ConfigError::invalid(hosts_path, Reason::EmptyList));
        }
        if svc.hosts.len() > limits::MAX_HOSTS_PER_SERVICE {
            return Err(ConfigError::invalid(
                hosts_path,
                Reason::TooMany {
                    what: "hosts",
                    limit: limits::MAX_HOSTS_PER_SERVICE,
                },
            ));
        }
        let index = u32::try_from(si).unwrap_or(u32::MAX);
        let mut name = String::new();
        for (hi, host) in svc.hosts.iter().enumerate() {
            let hpath = index_path(&hosts_path, hi);
            if host.is_empty() {
                return Err(ConfigError::invalid(hpath, Reason::EmptyString));
            }
            if !hosts::valid_host(host) {
                return Err(ConfigError::invalid(hpath, Reason::BadHost(host.clone())));
            }
            let fqdn = hosts::expand(host, &exp);
            if name.is_empty() {
                name.clone_from(&fqdn);
            }
            if let Some(first) = self.claimed.get(fqdn.as_str()) {
                let first = self
                    .claim_paths
                    .get(*first as usize)
                    .cloned()
                    .unwrap_or_default();
                return Err(ConfigError::invalid(
                    hpath,
                    Reason::DuplicateHost { host: fqdn, first },
                ));
            }
            self.claimed
                .insert(fqdn.as_str().into(), self.claim_paths.len() as u32);
            self.claim_paths.push(hpath);
            let client_ns = opts.workload.namespace.as_deref().or(Some(opts.namespace));
            let mut names = hosts::aliases(&fqdn, opts.cluster_domain, client_ns).into_iter();
            if let Some(primary) = names.next() {
                self.set.hosts.insert(&primary, index);
            }
            for alias in names {
                self.aliases.push((alias, index));
            }
        }
        let http_path = field_path(&spath, "http");
        let count = self.counts.get(si).copied().unwrap_or(0);
        if count == 0 {
            return Err(ConfigError::invalid(http_path, Reason::EmptyList));
        }
        let portless = match svc.destination_port {
            Some(p) => PortlessAs::Port(
                port(p).map_err(|r| ConfigError::at(&spath, "destinationPort", r))?,
            ),
            None => match opts.portless {
                PortlessMode::Glue => PortlessAs::Glue,
                PortlessMode::RequestPort if opts.workload.gateway => PortlessAs::Refused,
                PortlessMode::RequestPort => PortlessAs::RequestPort,
            },
        };
        self.open = Some(Open {
            index: si,
            path: spath,
            http_path,
            exp,
            portless,
            name,
            rules: Vec::with_capacity(count),
        });
        Ok(())
    }

    /// Closes a service: its `defaultDestination`, after its rules, and its index.
    #[inline(never)]
    fn close(&mut self, o: Open<'a>) -> Result<(), ConfigError> {
        let mut rules = o.rules;
        if let Some(d) = self
            .services
            .get(o.index)
            .and_then(|s| s.default_destination.as_ref())
        {
            let dpath = field_path(&o.path, "defaultDestination");
            mark_default_route(
                &mut rules,
                &self.targets.list,
                d,
                &dpath,
                &o.exp,
                o.portless,
            )?;
        }
        let index = Some(RuleIndex::build(&rules)).filter(|i| i.filed >= INDEX_MIN_RULES);
        self.set.services.push(Service {
            name: o.name.into(),
            rules,
            index,
        });
        Ok(())
    }
}

/// What a destination of `svc` without a port becomes (`spath` is the
/// service's JSON path), for [`default_cluster`]. `Compiler::begin` has the
/// same lines inline: calling this from there makes the `.wasm` 70 bytes
/// larger. A test holds the two to one answer.
fn portless_as(
    svc: &config::Service,
    spath: &str,
    opts: &CompileOptions<'_>,
) -> Result<PortlessAs, ConfigError> {
    Ok(match svc.destination_port {
        Some(p) => {
            PortlessAs::Port(port(p).map_err(|r| ConfigError::at(spath, "destinationPort", r))?)
        }
        None => match opts.portless {
            PortlessMode::Glue => PortlessAs::Glue,
            PortlessMode::RequestPort if opts.workload.gateway => PortlessAs::Refused,
            PortlessMode::RequestPort => PortlessAs::RequestPort,
        },
    })
}

/// The cluster of `svc`'s `defaultDestination`, if it names one, compiled
/// as a rule's destination is (`spath` is the service's JSON path). The
/// filter never sends a request there itself: Envoy's own route does. A
/// placement that sets the cluster of every request of the service (the
/// dynamic module's cluster specifier) sends there what no rule routes.
pub fn default_cluster(
    svc: &config::Service,
    spath: &str,
    opts: &CompileOptions<'_>,
) -> Result<Option<ClusterName>, ConfigError> {
    let Some(d) = &svc.default_destination else {
        return Ok(None);
    };
    let exp = Expansion {
        namespace: svc.namespace.as_deref().unwrap_or(opts.namespace),
        cluster_domain: opts.cluster_domain,
    };
    let portless = portless_as(svc, spath, opts)?;
    let path = field_path(spath, "defaultDestination");
    cluster_name(d, &path, &exp, portless).map(|(name, _)| Some(name))
}

/// The rule set's targets as they are compiled: each distinct cluster name
/// and label once, and the next destination's `stat_index`.
#[derive(Default)]
struct Targets {
    list: Vec<Target>,
    /// Each target's key (its name's kind, name, a space and its label;
    /// neither holds a space) → its index in `list`.
    at: hosts::HostMap<u32>,
    next_stat: u32,
}

impl Targets {
    /// The index of the target `(cluster, label)`, added if new.
    #[inline(never)]
    fn intern(&mut self, cluster: ClusterName, label: String) -> u32 {
        let (kind, name) = match &cluster {
            ClusterName::Fixed(n) => ('f', n),
            ClusterName::RequestPort(n) => ('r', n),
            ClusterName::GluePort(n) => ('g', n),
        };
        let mut key = String::with_capacity(name.len() + label.len() + 2);
        key.push(kind);
        key.push_str(name);
        key.push(' ');
        key.push_str(&label);
        if let Some(at) = self.at.get(key.as_str()) {
            return *at;
        }
        let at = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.list.push(Target {
            cluster,
            label: label.into(),
        });
        self.at.insert(key.into(), at);
        at
    }
}

#[inline(never)]
fn compile_rule(
    rule: &config::HttpRoute,
    path: &str,
    index: usize,
    (exp, portless): (&Expansion<'_>, PortlessAs),
    opts: &CompileOptions<'_>,
    targets: &mut Targets,
) -> Result<Rule, ConfigError> {
    let name = match &rule.name {
        Some(n) if n.is_empty() => return Err(ConfigError::at(path, "name", Reason::EmptyString)),
        Some(n) if n.len() > limits::MAX_NAME_LEN => {
            return Err(ConfigError::at(
                path,
                "name",
                Reason::TooMany {
                    what: "bytes in a name",
                    limit: limits::MAX_NAME_LEN,
                },
            ))
        }
        Some(n) => n.clone(),
        None => format!("http-{index}"),
    };
    let mpath = field_path(path, "match");
    if rule.matches.len() > limits::MAX_MATCHES_PER_RULE {
        return Err(ConfigError::invalid(
            mpath,
            Reason::TooMany {
                what: "match entries",
                limit: limits::MAX_MATCHES_PER_RULE,
            },
        ));
    }
    let mut matches = Vec::with_capacity(rule.matches.len());
    for (mi, m) in rule.matches.iter().enumerate() {
        if let Some(entry) = compile_match(m, &index_path(&mpath, mi), opts)? {
            matches.push(entry);
        }
    }
    let reachable = rule.matches.is_empty() || !matches.is_empty();
    // A rule that carries a route policy writes its name into the route
    // header, after each cluster name.
    let policy = match rule.has_policy() {
        true => Some(plain_value(&name).map_err(|r| ConfigError::at(path, "name", r))?),
        false => None,
    };
    let route = compile_route(rule, path, exp, portless, policy.map(|()| &*name), targets)?;
    Ok(Rule {
        name: name.into(),
        matches: matches.into(),
        reachable,
        route,
    })
}

/// Compiles one match entry; `None` when its source conditions rule it out
/// on this sidecar.
#[inline(never)]
fn compile_match(
    m: &config::MatchRequest,
    path: &str,
    opts: &CompileOptions<'_>,
) -> Result<Option<MatchEntry>, ConfigError> {
    let conditions = [
        m.headers.as_ref().map_or(0, Map::len),
        m.without_headers.as_ref().map_or(0, Map::len),
        m.query_params.as_ref().map_or(0, Map::len),
        m.source_labels.as_ref().map_or(0, Map::len),
    ];
    if conditions[0] + conditions[1] + conditions[2] + conditions[3]
        > limits::MAX_CONDITIONS_PER_MATCH
    {
        return Err(ConfigError::invalid(
            path,
            Reason::TooMany {
                what: "conditions in one match entry",
                limit: limits::MAX_CONDITIONS_PER_MATCH,
            },
        ));
    }
    let ignore_case = m.ignore_uri_case.unwrap_or(false);
    // Room for exactly the conditions the entry names: the list is then
    // boxed without a copy.
    let singles = [&m.uri, &m.scheme, &m.method, &m.authority];
    let count = singles.iter().filter(|s| s.is_some()).count()
        + conditions[0]
        + conditions[1]
        + conditions[2]
        + usize::from(m.port.is_some());
    let mut out = Vec::with_capacity(count);
    let kinds: [(&str, Wrap); 4] = [
        ("uri", Condition::Uri),
        ("scheme", Condition::Scheme),
        ("method", Condition::Method),
        ("authority", Condition::Authority),
    ];
    for ((field, wrap), sm) in kinds.into_iter().zip(singles) {
        if let Some(c) = single(path, field, sm, ignore_case && field == "uri")? {
            out.push(wrap(c));
        }
    }
    header_matchers(
        m.headers.as_ref(),
        &field_path(path, "headers"),
        Field::Present,
        &mut out,
    )?;
    header_matchers(
        m.without_headers.as_ref(),
        &field_path(path, "withoutHeaders"),
        Field::Without,
        &mut out,
    )?;
    if let Some(p) = m.port {
        out.push(Condition::Port(
            port(p).map_err(|r| ConfigError::at(path, "port", r))?,
        ));
    }
    query_matchers(
        m.query_params.as_ref(),
        &field_path(path, "queryParams"),
        &mut out,
    )?;
    let entry = MatchEntry(out.into_boxed_slice());
    if let Some(ns) = &m.source_namespace {
        if ns.is_empty() {
            return Err(ConfigError::at(
                path,
                "sourceNamespace",
                Reason::EmptyString,
            ));
        }
        if opts.workload.namespace.as_deref() != Some(ns.as_str()) {
            return Ok(None);
        }
    }
    if let Some(labels) = &m.source_labels {
        for (k, v) in labels {
            if k.is_empty() {
                return Err(ConfigError::at(path, "sourceLabels", Reason::EmptyString));
            }
            if opts.workload.labels.get(k) != Some(v) {
                return Ok(None);
            }
        }
    }
    Ok(Some(entry))
}

/// How a compiled `uri`, `scheme`, `method` or `authority` becomes its condition.
type Wrap = fn(StringMatcher) -> Condition;

/// The StringMatch `field` of a match entry at `path` (`uri`, `scheme`,
/// `method`, `authority`), if given.
#[inline(never)]
fn single(
    path: &str,
    field: &str,
    sm: &Option<config::StringMatch>,
    ignore_case: bool,
) -> Result<Option<StringMatcher>, ConfigError> {
    let kind = if field == "uri" {
        Field::Uri
    } else {
        Field::Pseudo
    };
    match sm {
        None => Ok(None),
        Some(sm) => StringMatcher::compile(sm, kind, ignore_case)
            .map(Some)
            .map_err(|(sub, r)| ConfigError::invalid(join(path, field, sub), r)),
    }
}

/// `{path}.{field}`, then `.{sub}` unless `sub` is empty.
#[inline(never)]
fn join(path: &str, field: &str, sub: &str) -> String {
    let out = field_path(path, field);
    if sub.is_empty() {
        out
    } else {
        field_path(&out, sub)
    }
}

/// Compiles the `headers` (`field` [`Field::Present`]) or `withoutHeaders`
/// ([`Field::Without`]) conditions at `path` into `out`.
#[inline(never)]
fn header_matchers(
    map: Option<&Map<config::StringMatch>>,
    path: &str,
    field: Field,
    out: &mut Vec<Condition>,
) -> Result<(), ConfigError> {
    let Some(map) = map else {
        return Ok(());
    };
    for (name, sm) in map.iter() {
        let lower = header_name(name).map_err(|r| ConfigError::at(path, name, r))?;
        let lower = as_envoy_names(lower).into();
        let m = StringMatcher::compile(sm, field, false)
            .map_err(|(sub, r)| ConfigError::invalid(join(path, name, sub), r))?;
        out.push(match field {
            Field::Without => Condition::WithoutHeader(lower, m),
            _ => Condition::Header(lower, m),
        });
    }
    Ok(())
}

/// Compiles the `queryParams` conditions at `path` into `out`.
#[inline(never)]
fn query_matchers(
    map: Option<&Map<config::StringMatch>>,
    path: &str,
    out: &mut Vec<Condition>,
) -> Result<(), ConfigError> {
    let Some(map) = map else {
        return Ok(());
    };
    for (name, sm) in map.iter() {
        if name.is_empty() {
            return Err(ConfigError::invalid(path, Reason::EmptyString));
        }
        let m = StringMatcher::compile(sm, Field::Present, false)
            .map_err(|(sub, r)| ConfigError::invalid(join(path, name, sub), r))?;
        out.push(Condition::Query(name.as_bytes().into(), m));
    }
    Ok(())
}

/// Envoy keeps HTTP/1's `Host` as `:authority`, and its header matchers
/// find `host` there; so does the filter.
fn as_envoy_names(lower: String) -> String {
    if lower == "host" {
        ":authority".into()
    } else {
        lower
    }
}

/// Validates and lower-cases a header name (an RFC 9110 token, or a
/// pseudo-header such as `:path`).
pub fn header_name(name: &str) -> Result<String, Reason> {
    let token = name.strip_prefix(':').unwrap_or(name);
    let ok = !token.is_empty()
        && name.len() <= limits::MAX_NAME_LEN
        && crate::domain::text::all_bytes(token, |b| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
        });
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(Reason::BadHeaderName(name.to_string()))
    }
}

fn port(p: i64) -> Result<u16, Reason> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(Reason::BadPort(p))
}

#[inline(never)]
fn compile_route(
    rule: &config::HttpRoute,
    path: &str,
    exp: &Expansion<'_>,
    portless: PortlessAs,
    policy: Option<&str>,
    targets: &mut Targets,
) -> Result<Route, ConfigError> {
    let rpath = field_path(path, "route");
    if rule.route.is_empty() {
        return Err(ConfigError::invalid(rpath, Reason::EmptyList));
    }
    if rule.route.len() > limits::MAX_DESTINATIONS {
        return Err(ConfigError::invalid(
            rpath,
            Reason::TooMany {
                what: "destinations",
                limit: limits::MAX_DESTINATIONS,
            },
        ));
    }
    let lone = rule.route.len() == 1;
    let mut destinations = Vec::with_capacity(rule.route.len());
    let mut weights = Vec::with_capacity(rule.route.len());
    let mut seeds = Vec::with_capacity(rule.route.len());
    for (di, rd) in rule.route.iter().enumerate() {
        let dpath = index_path(&rpath, di);
        let weight = match rd.weight {
            None if lone => 1,
            None => return Err(ConfigError::at(&dpath, "weight", Reason::MissingWeight)),
            Some(w) if w < 0 => {
                return Err(ConfigError::at(&dpath, "weight", Reason::NegativeWeight(w)))
            }
            Some(w) if w > limits::MAX_WEIGHT => {
                return Err(ConfigError::at(&dpath, "weight", Reason::WeightTooLarge(w)))
            }
            Some(w) => u32::try_from(w).unwrap_or(0),
        };
        let (cluster, label) = cluster_name(
            &rd.destination,
            &field_path(&dpath, "destination"),
            exp,
            portless,
        )?;
        let guard = match &rd.guard {
            None => None,
            Some(g) => Some(crate::domain::guard::compile(
                g,
                &field_path(&dpath, "guard"),
            )?),
        };
        weights.push(weight);
        // The plain name is the sticky key, with or without a policy.
        seeds.push(hash_key(cluster.key().as_bytes()));
        let mut cluster = cluster;
        if let Some(rule) = policy {
            cluster.for_rule(rule);
        }
        destinations.push(Destination {
            target: targets.intern(cluster, label),
            weight,
            stat_index: targets.next_stat,
            via: Via::RouteHeader,
            guard: guard.map(alloc::boxed::Box::new),
        });
        targets.next_stat = targets.next_stat.saturating_add(1);
    }
    if weights.iter().all(|w| *w == 0) {
        return Err(ConfigError::invalid(rpath, Reason::AllZeroWeights));
    }
    baselines(rule, &rpath, &mut destinations, &targets.list)?;
    // Only a sticky pick reads the seeds: the weights of other rules keep
    // none (16 bytes a destination).
    if rule.sticky.is_none() {
        seeds.clear();
    }
    let ramp = match &rule.ramp {
        None => None,
        Some(r) => Some(compile_ramp(
            r,
            &field_path(path, "ramp"),
            &destinations,
            &targets.list,
            &weights,
            &seeds,
        )?),
    };
    let sticky = match &rule.sticky {
        None => None,
        Some(s) => {
            let spath = field_path(path, "sticky");
            let key = sticky_key(s, &spath)?;
            let issuer = match (&s.set_cookie, &s.cookie) {
                (None, _) => None,
                (Some(c), Some(name)) => Some(Box::new(cookie::compile(name, c, &spath)?)),
                (Some(_), None) => {
                    return Err(ConfigError::at(
                        &spath,
                        "setCookie",
                        Reason::SetCookieNeedsCookie,
                    ))
                }
            };
            Some(Box::new(Sticky { key, issuer }))
        }
    };
    let own = widen(&weights);
    Ok(Route {
        weights: Weights::new(&own, &seeds),
        destinations: destinations.into(),
        sticky,
        ramp,
    })
}

/// The weights as `u64`s, as [`Weights::new`] takes them.
fn widen(weights: &[u32]) -> Vec<u64> {
    let mut out = Vec::with_capacity(weights.len());
    for w in weights {
        out.push(u64::from(*w));
    }
    out
}

/// The index of the destination `name` names (its label: the subset, the
/// host's FQDN, or the cluster); exactly one must match.
fn destination_named(
    ds: &[Destination],
    targets: &[Target],
    name: &str,
    path: &str,
) -> Result<usize, ConfigError> {
    let named = |d: &Destination| targets.get(d.target as usize).map(|t| &*t.label) == Some(name);
    let mut found = ds.iter().enumerate().filter(|(_, d)| named(d));
    match (found.next(), found.next()) {
        (Some((i, _)), None) => Ok(i),
        _ => Err(ConfigError::invalid(
            path,
            Reason::NotADestination(name.to_string()),
        )),
    }
}

/// Resolves the guards' `baseline`s of a route (`rpath` is its `route`
/// path): each names another destination of the rule; `maxLatencyRatio`
/// needs one. In a rule with a baseline, every guard has the same
/// `interval`: the windows compared must be alike.
#[inline(never)]
fn baselines(
    rule: &config::HttpRoute,
    rpath: &str,
    destinations: &mut [Destination],
    targets: &[Target],
) -> Result<(), ConfigError> {
    let (mut interval, mut mismatch, mut compared) = (None, None, false);
    for (di, rd) in rule.route.iter().enumerate() {
        let Some(g) = &rd.guard else { continue };
        let gpath = field_path(&index_path(rpath, di), "guard");
        let ratio = g.max_latency_ratio.unwrap_or(0.0);
        let fault = match &g.baseline {
            None if g.max_latency_ratio.is_some() => {
                Some(("maxLatencyRatio", Fault::LatencyNeedsBaseline))
            }
            None => None,
            Some(name) => {
                let bpath = field_path(&gpath, "baseline");
                let b = destination_named(destinations, targets, name, &bpath)?;
                compared = true;
                if let Some(spec) = destinations.get_mut(di).and_then(|d| d.guard.as_mut()) {
                    spec.judge = crate::domain::guard::Judge::Baseline {
                        slot: b as u32,
                        max_latency_ratio: ratio,
                    };
                }
                if b == di {
                    Some(("baseline", Fault::BaselineIsSelf))
                } else if g.max_latency_ratio.is_some() && (ratio <= 1.0 || ratio.is_nan()) {
                    Some(("maxLatencyRatio", Fault::LatencyRatio))
                } else {
                    None
                }
            }
        };
        if let Some((field, f)) = fault {
            return Err(ConfigError::at(&gpath, field, Reason::Fault(f)));
        }
        let ms = destinations
            .get(di)
            .and_then(|d| d.guard.as_deref().copied())
            .map(|s| s.interval_ms);
        if *interval.get_or_insert(ms) != ms && mismatch.is_none() {
            mismatch = Some(gpath);
        }
    }
    match mismatch {
        Some(gpath) if compared => Err(ConfigError::at(
            &gpath,
            "interval",
            Reason::Fault(Fault::BaselineInterval),
        )),
        _ => Ok(()),
    }
}

/// Compiles a rule's `ramp` (at `path`) over its destinations, with the
/// weights of each phase prepared.
#[inline(never)]
fn compile_ramp(
    r: &config::Ramp,
    path: &str,
    destinations: &[Destination],
    targets: &[Target],
    own: &[u32],
    seeds: &[u64],
) -> Result<Box<Ramped>, ConfigError> {
    let cpath = field_path(path, "canary");
    let canary = destination_named(destinations, targets, &r.canary, &cpath)?;
    let schedule = crate::domain::ramp::compile(r, path, canary, own)?;
    let mut weights = Vec::with_capacity(schedule.phases.len() + 1);
    for p in schedule.phases.iter() {
        let w = match p.canary_bp {
            None => widen(own),
            Some(bp) => crate::domain::ramp::weights_at(own, canary, bp),
        };
        weights.push(Weights::new(&w, seeds));
    }
    weights.push(Weights::new(
        &crate::domain::ramp::weights_at(own, canary, 0),
        seeds,
    ));
    Ok(Box::new(Ramped {
        schedule,
        weights: weights.into(),
        phase: Default::default(),
        aborted: Default::default(),
        current: Default::default(),
    }))
}

/// Marks the destinations that are the service's `defaultDestination`
/// ([`Via::DefaultRoute`]).
#[inline(never)]
fn mark_default_route(
    rules: &mut [Rule],
    targets: &[Target],
    default: &config::Destination,
    path: &str,
    exp: &Expansion<'_>,
    portless: PortlessAs,
) -> Result<(), ConfigError> {
    let (cluster, _) = cluster_name(default, path, exp, portless)?;
    for rule in rules.iter_mut() {
        for d in rule.route.destinations.iter_mut() {
            if targets
                .get(d.target as usize)
                .is_some_and(|t| t.cluster == cluster)
            {
                d.via = Via::DefaultRoute;
            }
        }
    }
    Ok(())
}

#[inline(never)]
fn cluster_name(
    d: &config::Destination,
    path: &str,
    exp: &Expansion<'_>,
    portless: PortlessAs,
) -> Result<(ClusterName, String), ConfigError> {
    match (&d.host, &d.cluster) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(path, Reason::HostAndCluster)),
        (None, None) => Err(ConfigError::invalid(path, Reason::MissingDestination)),
        (None, Some(cluster)) => {
            plain_value(cluster).map_err(|r| ConfigError::at(path, "cluster", r))?;
            if d.subset.is_some() || d.port.is_some() {
                return Err(ConfigError::invalid(path, Reason::HostAndCluster));
            }
            Ok((ClusterName::Fixed(cluster.as_str().into()), cluster.clone()))
        }
        (Some(host), None) => {
            let hpath = field_path(path, "host");
            if host.is_empty() {
                return Err(ConfigError::invalid(hpath, Reason::EmptyString));
            }
            // Istio refuses `*` as a destination, not `*.suffix` (a
            // ServiceEntry's wildcard host names a service). Of the valid
            // hosts only `*` ends with a `*`.
            if !hosts::valid_host(host) || host.ends_with('*') {
                return Err(ConfigError::invalid(hpath, Reason::BadHost(host.clone())));
            }
            let fqdn = hosts::expand(host, exp);
            let subset = d.subset.as_deref().unwrap_or("");
            if d.subset.is_some() {
                plain_value(subset).map_err(|r| ConfigError::at(path, "subset", r))?;
            }
            let port = match (&d.port, portless) {
                (Some(p), _) => PortlessAs::Port(
                    port(p.number).map_err(|r| ConfigError::at(path, "port.number", r))?,
                ),
                (None, PortlessAs::Refused) => {
                    return Err(ConfigError::at(path, "port", Reason::MissingPort))
                }
                (None, as_) => as_,
            };
            let label = if subset.is_empty() {
                fqdn.clone()
            } else {
                subset.to_string()
            };
            let tail = format!("|{subset}|{fqdn}");
            let name = match port {
                PortlessAs::Port(p) => {
                    ClusterName::Fixed(format!("outbound|{}{tail}", u32::from(p)).into())
                }
                PortlessAs::Glue => ClusterName::GluePort(format!("outbound|{tail}").into()),
                _ => ClusterName::RequestPort(tail.into()),
            };
            Ok((name, label))
        }
    }
}

/// A value that goes into a header or a stat name: non-empty, printable, no spaces.
fn plain_value(v: &str) -> Result<(), Reason> {
    if v.is_empty() {
        return Err(Reason::EmptyString);
    }
    if v.len() > limits::MAX_NAME_LEN {
        return Err(Reason::TooMany {
            what: "bytes in a name",
            limit: limits::MAX_NAME_LEN,
        });
    }
    if !crate::domain::text::all_bytes(v, |b| b.is_ascii_graphic()) {
        return Err(Reason::BadCharacters(v.to_string()));
    }
    Ok(())
}

#[inline(never)]
fn sticky_key(s: &config::Sticky, path: &str) -> Result<StickyKey, ConfigError> {
    let given = [
        s.header.is_some(),
        s.cookie.is_some(),
        s.source_ip.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ConfigError::invalid(path, Reason::StickyNeedsOneKey));
    }
    if let Some(h) = &s.header {
        let name = header_name(h).map_err(|r| ConfigError::at(path, "header", r))?;
        let name = as_envoy_names(name);
        return Ok(StickyKey::Header(name.into()));
    }
    if let Some(c) = &s.cookie {
        if c.is_empty()
            || !crate::domain::text::all_bytes(c, |b| {
                b.is_ascii_graphic() && b != b';' && b != b'='
            })
        {
            return Err(ConfigError::at(
                path,
                "cookie",
                Reason::BadCharacters(c.clone()),
            ));
        }
        return Ok(StickyKey::Cookie(c.as_bytes().into()));
    }
    match s.source_ip {
        Some(true) => Ok(StickyKey::SourceIp),
        _ => Err(ConfigError::at(
            path,
            "sourceIp",
            Reason::StickySourceIpFalse,
        )),
    }
}
