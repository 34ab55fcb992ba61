//! Compiled rules: what the request path runs. Built once per configuration
//! by [`compile`]; immutable afterwards and shared by every request.

use std::collections::HashMap;

use crate::map::Map;
use std::hash::BuildHasherDefault;

use crate::cluster::{ClusterName, PortlessAs};
use crate::config;
use crate::cookie::{self, Issuer, Key};
use crate::error::{ConfigError, Reason};
use crate::hosts::{self, Expansion, Fnv, HostIndex};
use crate::limits;
use crate::matcher::{Field, StringMatcher};
use crate::pick::{hash_key, Weights};

/// Who this sidecar is: the workload's namespace and labels, from Envoy's
/// node metadata (`NAMESPACE`, `LABELS`). Source-label and source-namespace
/// conditions are judged against it once, at compile time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The workload's namespace, if the node metadata names one.
    pub namespace: Option<String>,
    /// The workload's labels.
    pub labels: Map<String>,
    /// Whether this proxy is an Istio gateway (node id `router~...`). Its
    /// listener port is the gateway's, not a service's, so a destination
    /// without a port needs the service's `destinationPort` there.
    pub gateway: bool,
}

/// How hosts expand while compiling.
#[derive(Debug, Clone)]
pub struct CompileOptions<'a> {
    /// Namespace short hosts expand against when a service names none.
    pub namespace: &'a str,
    /// Kubernetes cluster domain.
    pub cluster_domain: &'a str,
    /// The sidecar's own workload.
    pub workload: &'a Workload,
}

/// A compiled rule set.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    services: Vec<Service>,
    hosts: HostIndex,
    destinations: u32,
}

/// A compiled service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Canonical name (the first host, expanded), used in stats.
    pub name: Box<str>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Finds the candidate rules of a request without testing every rule
    /// (services with at least [`INDEX_MIN_RULES`] rules it can file).
    index: Option<RuleIndex>,
}

/// At most this many distinct header names are indexed in a service; rules
/// on further names are tested for every request, like unindexed rules.
pub const MAX_INDEXED_HEADERS: usize = 64;

/// Services where at least this many rules can be filed get a [`RuleIndex`];
/// with fewer, a plain scan is as fast.
pub const INDEX_MIN_RULES: usize = 8;

type ValueMap = HashMap<Box<[u8]>, Vec<u32>, BuildHasherDefault<Fnv>>;

/// Which rules can match a request. A rule whose every match entry requires
/// an exact header value (`headers: {x-user: {exact: ...}}`, the usual
/// canary rule) or a path prefix (`uri: {prefix: ...}`, `{pathPrefix: ...}` or `{exact: ...}`,
/// case-sensitive) can only match a request carrying one of those, so it is
/// filed under each `(header, value)` or path prefix; every other rule is
/// tested for every request. The first matching rule is then found by testing only the
/// rules filed under the request's own header values and the others, in rule
/// order: the cost of a decision depends on those, not on how many exact
/// header rules there are.
#[derive(Debug, Clone)]
struct RuleIndex {
    /// Header name → (value → indices of the rules filed there, ascending).
    /// At most [`MAX_INDEXED_HEADERS`] names, so that one `u64` can mark the
    /// names a request has already shown.
    by_header: Box<[(Box<str>, ValueMap)]>,
    /// For each name length `n` (the last entry: 63 bytes or more), the
    /// slots of `by_header` whose names are that long, as a bit set: most
    /// request headers are passed over on their length alone, the others
    /// are compared with one or two names.
    slots_by_len: Box<[u64; 64]>,
    /// Bit `n` set when `slots_by_len[n]` is not empty.
    name_lens: u64,
    /// Path prefix → indices of the rules filed there, ascending.
    by_prefix: ValueMap,
    /// The distinct lengths of the filed prefixes, ascending.
    prefix_lens: Box<[usize]>,
    /// Indices of the rules that are not filed (ascending).
    always: Box<[u32]>,
    /// How many rules are filed.
    filed: usize,
}

impl RuleIndex {
    /// Builds the index of a service's rules.
    #[inline(never)]
    fn build(rules: &[Rule]) -> RuleIndex {
        let names = indexed_names(rules);
        // Slot `n` of `by_header` is `names[n]`: the names in the order the
        // rules first use them.
        let mut by_header: Vec<ValueMap> = names.iter().map(|_| ValueMap::default()).collect();
        let mut by_prefix = ValueMap::default();
        let mut always = Vec::new();
        let mut filed = 0;
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if !rule.reachable {
                continue;
            }
            let keys: Option<Vec<(Option<usize>, &[u8])>> = if rule.matches.is_empty() {
                None
            } else {
                rule.matches
                    .iter()
                    .map(|m| match m.index_key()? {
                        IndexKey::Header(name, value) => {
                            Some((Some(names.iter().position(|n| *n == name)?), value))
                        }
                        IndexKey::PathPrefix(prefix) => Some((None, prefix)),
                    })
                    .collect()
            };
            let Some(keys) = keys else {
                always.push(i);
                continue;
            };
            filed += 1;
            for (slot, key) in keys {
                let map = match slot {
                    Some(slot) => by_header.get_mut(slot),
                    None => Some(&mut by_prefix),
                };
                if let Some(map) = map {
                    let list = map.entry(Box::from(key)).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
        let mut slots_by_len = Box::new([0u64; 64]);
        for (slot, name) in names.iter().enumerate() {
            if let Some(set) = slots_by_len.get_mut(name.len().min(63)) {
                *set |= 1u64 << slot;
            }
        }
        for map in by_header.iter_mut().chain([&mut by_prefix]) {
            map.values_mut().for_each(Vec::shrink_to_fit);
            map.shrink_to_fit();
        }
        let mut prefix_lens: Vec<usize> = Vec::new();
        for len in by_prefix.keys().map(|p| p.len()) {
            if let Err(at) = prefix_lens.binary_search(&len) {
                prefix_lens.insert(at, len);
            }
        }
        RuleIndex {
            name_lens: (0..64)
                .filter(|&n| slots_by_len.get(n).is_some_and(|&s| s != 0))
                .fold(0, |lens, n| lens | 1u64 << n),
            slots_by_len,
            by_header: names.into_iter().map(Box::from).zip(by_header).collect(),
            prefix_lens: prefix_lens.into_boxed_slice(),
            by_prefix,
            always: always.into_boxed_slice(),
            filed,
        }
    }
}

/// The header names to index: the first [`MAX_INDEXED_HEADERS`] met in rule order.
#[inline(never)]
fn indexed_names(rules: &[Rule]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for rule in rules.iter().filter(|r| r.reachable) {
        for m in &rule.matches {
            if let Some(IndexKey::Header(name, _)) = m.index_key() {
                if !names.contains(&name) && names.len() < MAX_INDEXED_HEADERS {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// What a match entry is filed under in a [`RuleIndex`].
enum IndexKey<'a> {
    /// An exact header value: `(name, value)`.
    Header(&'a str, &'a [u8]),
    /// A path prefix (from `uri.prefix` or `uri.pathPrefix`, or `uri.exact`, which implies it).
    PathPrefix(&'a [u8]),
}

impl Service {
    /// The index of the first rule that matches, if any.
    #[inline]
    fn first_match<R: RequestView>(&self, parts: &RequestParts<'_, R>) -> Option<usize> {
        let Some(index) = &self.index else {
            return self.rules.iter().position(|r| r.matches(parts));
        };
        let mut best = usize::MAX;
        let scan = |list: &[u32], best: &mut usize| {
            for &i in list {
                let i = i as usize;
                if i >= *best {
                    break;
                }
                if self.rules.get(i).is_some_and(|r| r.matches(parts)) {
                    *best = i;
                    break;
                }
            }
        };
        if !index.by_header.is_empty() {
            // One walk of the request's headers, each name looked up among
            // the indexed ones. Every value of a repeated name is looked up:
            // a rule matches when any one of them does, as in
            // `RequestView::any_header_value`.
            let walked = parts
                .req
                .for_each_header_of_len(index.name_lens, |name, value| {
                    let mut candidates = index
                        .slots_by_len
                        .get(name.len().min(63))
                        .copied()
                        .unwrap_or(0);
                    while candidates != 0 {
                        let slot = candidates.trailing_zeros() as usize;
                        candidates &= candidates - 1;
                        let Some((n, values)) = index.by_header.get(slot) else {
                            return;
                        };
                        // Most same-length names already differ in their
                        // first byte (`x-` headers against pseudo-headers and
                        // standard ones): no call to compare them.
                        if n.as_bytes().first() == name.first() && n.as_bytes() == name {
                            if let Some(list) = values.get(value) {
                                scan(list, &mut best);
                            }
                            return;
                        }
                    }
                });
            if !walked {
                for (name, values) in index.by_header.iter() {
                    parts.req.any_header_value(name, |v| {
                        if let Some(list) = values.get(v) {
                            scan(list, &mut best);
                        }
                        false
                    });
                }
            }
        }
        for &len in index.prefix_lens.iter() {
            let Some(head) = parts.path.get(..len) else {
                break;
            };
            if let Some(list) = index.by_prefix.get(head) {
                scan(list, &mut best);
            }
        }
        scan(&index.always, &mut best);
        (best != usize::MAX).then_some(best)
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name, or `http-<index>`.
    pub name: Box<str>,
    /// Match entries (ORed). Empty with `always` means every request.
    matches: Vec<MatchEntry>,
    /// False when every match entry was ruled out at compile time (its source
    /// labels or namespace are not this sidecar's).
    reachable: bool,
    /// Where matching requests go.
    pub route: Route,
}

/// Where a rule sends requests.
#[derive(Debug, Clone)]
pub struct Route {
    /// The destinations.
    pub destinations: Vec<Destination>,
    weights: Weights,
    sticky: Option<StickyKey>,
    /// The cookie issued to requests that bring none (`sticky.setCookie`).
    issuer: Option<Box<Issuer>>,
}

/// One destination of a route.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The Envoy cluster requests are sent to (some take the request's port).
    pub cluster: ClusterName,
    /// A short label for stats and the debug header (the subset, or the cluster).
    pub label: Box<str>,
    /// The relative weight.
    pub weight: u32,
    /// Index of this destination across the whole rule set, for stats.
    pub stat_index: u32,
    /// How a request gets there.
    pub via: Via,
    /// Its guard, if it has one.
    pub guard: Option<crate::guard::Spec>,
}

/// How a request reaches a [`Destination`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The filter writes the cluster into the route header and Envoy
    /// re-selects the route.
    RouteHeader,
    /// The destination is the service's `defaultDestination`: Envoy's own
    /// route already sends the request there, so the filter leaves it alone.
    DefaultRoute,
}

/// What a sticky pick hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header (lower-case name).
    Header(Box<str>),
    /// A cookie, by name.
    Cookie(Box<[u8]>),
    /// The client's IP address.
    SourceIp,
}

#[derive(Debug, Clone, Default)]
struct MatchEntry {
    uri: Option<StringMatcher>,
    scheme: Option<StringMatcher>,
    method: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Box<[(Box<str>, StringMatcher)]>,
    without_headers: Box<[(Box<str>, StringMatcher)]>,
    port: Option<u16>,
    query: Box<[(Box<[u8]>, StringMatcher)]>,
}

/// What the filter needs to know of a request. Header names are lower-case;
/// pseudo-headers (`:authority`, `:path`, `:method`, `:scheme`) included.
pub trait RequestView {
    /// The first value of a header.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// Whether any value of header `name` satisfies `f` (stopping at the
    /// first that does), or `None` if the request has no such header.
    /// Header conditions use it: Envoy 1.40's `HeaderMatcher` matches a
    /// repeated header when one of its values matches. The default asks
    /// [`header`](Self::header) only, for views with one value per name.
    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        self.header(name).map(f)
    }
    /// Calls `f` with every header whose name is `n` bytes long with bit
    /// `min(n, 63)` of `lengths` set, in order (repeated names repeatedly),
    /// and returns true; or returns false without calling it if the view
    /// cannot list its headers. Rule indexes use it to read many names in
    /// one walk.
    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        let _ = (lengths, f);
        false
    }
    /// The client's address (`ip:port` or `ip`), asked only by `sticky.sourceIp` rules.
    fn source_address(&self) -> Option<&[u8]> {
        None
    }
    /// The port the request arrived on: the port of the address the client
    /// dialled (Envoy's `destination.port`), not the one in `:authority`.
    /// Asked only by `match[].port` and by destinations without a port.
    fn local_port(&self) -> Option<u16> {
        None
    }
}

/// The result of a decision.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The request is for no configured service.
    NoService,
    /// The request is for a service, but no rule matched.
    NoRule {
        /// The service's index.
        service: usize,
    },
    /// A rule matched and chose a destination.
    Routed(Decision<'a>),
}

/// A routing decision.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The service's index in the rule set.
    pub service: usize,
    /// The rule's index in the service.
    pub rule: usize,
    /// The destination's index in the rule's route.
    pub destination: usize,
    /// The chosen destination.
    pub target: &'a Destination,
    /// Whether the pick was by a sticky key (false: random).
    pub sticky: bool,
    /// The fresh key this request was routed by, for the cookie its
    /// response carries (the rule's [`Route::issuer`]).
    pub issued: Option<Key>,
}

impl<'a> Outcome<'a> {
    /// The decision, if routed.
    pub fn decision(&self) -> Option<&Decision<'a>> {
        match self {
            Outcome::Routed(d) => Some(d),
            _ => None,
        }
    }
}

impl RuleSet {
    /// The services, in configuration order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Number of destinations across all rules (the range of `stat_index`).
    pub fn destination_count(&self) -> u32 {
        self.destinations
    }

    /// Every destination with its service and rule, in `stat_index` order.
    pub fn all_destinations(&self) -> impl Iterator<Item = (&Service, &Rule, &Destination)> {
        self.services.iter().flat_map(|s| {
            s.rules
                .iter()
                .flat_map(move |r| r.route.destinations.iter().map(move |d| (s, r, d)))
        })
    }

    /// Decides where a request goes. `random` is called at most once, for a
    /// random pick. Rules that issue cookies get no fresh keys here: a
    /// request without the cookie gets the random split
    /// ([`decide_issuing`](Self::decide_issuing) issues them).
    #[inline]
    pub fn decide<R: RequestView>(&self, req: &R, random: impl FnOnce() -> u64) -> Outcome<'_> {
        self.decide_issuing(req, random, || None)
    }

    /// [`decide`](Self::decide), and for a rule with `sticky.setCookie` and
    /// a request without a usable cookie, `fresh` gives 128 random bits
    /// for a new key (called at most once; `None`: the random split, no
    /// cookie). The decision's `issued` then holds the key it was routed by.
    #[inline]
    pub fn decide_issuing<R: RequestView>(
        &self,
        req: &R,
        random: impl FnOnce() -> u64,
        fresh: impl FnOnce() -> Option<[u8; 16]>,
    ) -> Outcome<'_> {
        let Some(authority) = req.header(":authority") else {
            return Outcome::NoService;
        };
        let mut buf = [0u8; 256];
        let Some(host) = hosts::normalize_authority(authority, &mut buf) else {
            return Outcome::NoService;
        };
        let Some(index) = self.hosts.lookup(host) else {
            return Outcome::NoService;
        };
        let index = index as usize;
        let Some(service) = self.services.get(index) else {
            return Outcome::NoService;
        };
        let parts = RequestParts::new(req, authority);
        let Some((rule_index, rule)) = service
            .first_match(&parts)
            .and_then(|i| Some((i, service.rules.get(i)?)))
        else {
            return Outcome::NoRule { service: index };
        };
        let (destination, sticky, issued) = rule.route.pick(req, random, fresh);
        match rule.route.destinations.get(destination) {
            Some(target) => Outcome::Routed(Decision {
                service: index,
                rule: rule_index,
                destination,
                target,
                sticky,
                issued,
            }),
            None => Outcome::NoRule { service: index },
        }
    }
}

/// A request's fields that rules look at, split once per request.
struct RequestParts<'r, R: RequestView> {
    req: &'r R,
    authority: &'r [u8],
    path: &'r [u8],
    query: &'r [u8],
}

impl<'r, R: RequestView> RequestParts<'r, R> {
    fn new(req: &'r R, authority: &'r [u8]) -> Self {
        let full = req.header(":path").unwrap_or_default();
        let full = match full.iter().position(|b| *b == b'#') {
            Some(i) => full.get(..i).unwrap_or(full),
            None => full,
        };
        let (path, query) = match full.iter().position(|b| *b == b'?') {
            Some(i) => (
                full.get(..i).unwrap_or(full),
                full.get(i + 1..).unwrap_or_default(),
            ),
            None => (full, &[][..]),
        };
        RequestParts {
            req,
            authority,
            path,
            query,
        }
    }

    /// The first value of a query parameter (not percent-decoded).
    fn query_param(&self, name: &[u8]) -> Option<&'r [u8]> {
        self.query.split(|b| *b == b'&').find_map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (pair.get(..i)?, pair.get(i + 1..)?),
                None => (pair, &[][..]),
            };
            (k == name).then_some(v)
        })
    }
}

impl Rule {
    #[inline]
    fn matches<R: RequestView>(&self, req: &RequestParts<'_, R>) -> bool {
        self.reachable && (self.matches.is_empty() || self.matches.iter().any(|m| m.matches(req)))
    }

    /// Whether the rule can match at all on this sidecar.
    pub fn reachable(&self) -> bool {
        self.reachable
    }
}

/// Whether an optional matcher accepts a value, looked up only if there is a matcher.
#[inline]
fn opt_matches<'v>(m: &Option<StringMatcher>, value: impl FnOnce() -> Option<&'v [u8]>) -> bool {
    match m {
        None => true,
        Some(m) => value().is_some_and(|v| m.matches(v)),
    }
}

impl MatchEntry {
    /// What this entry is filed under: its first exact header condition, else
    /// a case-sensitive path prefix. A request without it cannot match.
    fn index_key(&self) -> Option<IndexKey<'_>> {
        if let Some((name, value)) = self.exact_header() {
            return Some(IndexKey::Header(name, value));
        }
        match &self.uri {
            Some(
                StringMatcher::Prefix(p) | StringMatcher::Exact(p) | StringMatcher::PathPrefix(p),
            ) => Some(IndexKey::PathPrefix(p)),
            _ => None,
        }
    }

    /// The first exact header condition, `(name, value)`: a request without
    /// that value cannot match this entry.
    fn exact_header(&self) -> Option<(&str, &[u8])> {
        self.headers.iter().find_map(|(name, m)| match m {
            StringMatcher::Exact(v) => Some((&**name, &**v)),
            _ => None,
        })
    }

    #[inline]
    fn matches<R: RequestView>(&self, r: &RequestParts<'_, R>) -> bool {
        opt_matches(&self.uri, || Some(r.path))
            && opt_matches(&self.method, || r.req.header(":method"))
            && opt_matches(&self.scheme, || r.req.header(":scheme"))
            && opt_matches(&self.authority, || Some(r.authority))
            && self.port.is_none_or(|p| r.req.local_port() == Some(p))
            && self
                .headers
                .iter()
                .all(|(name, m)| r.req.any_header_value(name, |v| m.matches(v)) == Some(true))
            && self
                .without_headers
                .iter()
                .all(|(name, m)| without_header(r.req, name, m))
            && self
                .query
                .iter()
                .all(|(name, m)| r.query_param(name).is_some_and(|v| m.matches(v)))
    }
}

/// Whether a `withoutHeaders` condition holds, as Istio writes it for
/// Envoy: `{}` (or `*`) is an inverted presence match, so the header must be
/// absent; any other kind is inverted with `treat_missing_header_as_empty`,
/// so a missing header is matched as the empty value, and no value of a
/// repeated header may match.
#[inline]
fn without_header<R: RequestView>(req: &R, name: &str, m: &StringMatcher) -> bool {
    match m {
        StringMatcher::Present => req.header(name).is_none(),
        m => match req.any_header_value(name, |v| m.matches(v)) {
            Some(any) => !any,
            None => !m.matches(b""),
        },
    }
}

impl Route {
    fn pick<R: RequestView>(
        &self,
        req: &R,
        random: impl FnOnce() -> u64,
        fresh: impl FnOnce() -> Option<[u8; 16]>,
    ) -> (usize, bool, Option<Key>) {
        if self.issuer.is_some() {
            return self.pick_issuing(req, random, fresh);
        }
        if self.destinations.len() == 1 {
            return (0, self.sticky.is_some(), None);
        }
        if let Some(key) = self.sticky.as_ref().and_then(|k| sticky_value(k, req)) {
            return (self.weights.pick_sticky(hash_key(key)), true, None);
        }
        (self.weights.pick_random(random()), false, None)
    }

    /// The pick of a rule that issues its cookie: by the cookie brought if
    /// it is usable, else by a fresh key (issued), else random.
    fn pick_issuing<R: RequestView>(
        &self,
        req: &R,
        random: impl FnOnce() -> u64,
        fresh: impl FnOnce() -> Option<[u8; 16]>,
    ) -> (usize, bool, Option<Key>) {
        let brought = self.sticky.as_ref().and_then(|k| sticky_value(k, req));
        if let Some(key) = brought.filter(|k| cookie::usable(k)) {
            return (self.weights.pick_sticky(hash_key(key)), true, None);
        }
        match fresh() {
            Some(bits) => {
                let key = Key::from_bits(bits);
                (
                    self.weights.pick_sticky(hash_key(key.as_bytes())),
                    true,
                    Some(key),
                )
            }
            None => (self.weights.pick_random(random()), false, None),
        }
    }

    /// The sum of the destinations' weights (a destination's share is its
    /// weight over this).
    pub fn total_weight(&self) -> u64 {
        self.weights.total()
    }

    /// The hash a sticky pick of this request uses, if the route is sticky
    /// and the request carries the key.
    pub fn sticky_hash<R: RequestView>(&self, req: &R) -> Option<u64> {
        let key = self.sticky.as_ref()?;
        sticky_value(key, req).map(hash_key)
    }

    /// The prepared weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// How this route keeps users sticky, if it does.
    pub fn sticky(&self) -> Option<&StickyKey> {
        self.sticky.as_ref()
    }

    /// The cookie this route issues to requests that bring none, if it does.
    pub fn issuer(&self) -> Option<&Issuer> {
        self.issuer.as_deref()
    }
}

/// The bytes a sticky key hashes, if the request carries them.
fn sticky_value<'r, R: RequestView>(key: &StickyKey, req: &'r R) -> Option<&'r [u8]> {
    match key {
        StickyKey::Header(name) => req.header(name),
        StickyKey::Cookie(name) => cookie(req.header("cookie")?, name),
        StickyKey::SourceIp => {
            let addr = req.source_address()?;
            Some(ip_of(addr))
        }
    }
}

/// A cookie's value from a `cookie` header.
pub fn cookie<'v>(header: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    header.split(|b| *b == b';').find_map(|crumb| {
        let crumb = crumb.trim_ascii();
        let eq = crumb.iter().position(|b| *b == b'=')?;
        (crumb.get(..eq)?.trim_ascii() == name)
            .then(|| crumb.get(eq + 1..).unwrap_or_default().trim_ascii())
    })
}

/// The IP of an `ip:port` address (`[v6]:port` gives `v6`).
fn ip_of(addr: &[u8]) -> &[u8] {
    if addr.first() == Some(&b'[') {
        let end = addr.iter().position(|b| *b == b']').unwrap_or(addr.len());
        return addr.get(1..end).unwrap_or(addr);
    }
    match addr.iter().filter(|b| **b == b':').count() {
        1 => addr
            .iter()
            .position(|b| *b == b':')
            .and_then(|i| addr.get(..i))
            .unwrap_or(addr),
        _ => addr,
    }
}

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
    if services.len() > limits::MAX_SERVICES {
        return Err(ConfigError::invalid(
            path,
            Reason::TooMany {
                what: "services",
                limit: limits::MAX_SERVICES,
            },
        ));
    }
    let rules: usize = services.iter().map(|s| s.http.len()).sum();
    if rules > limits::MAX_RULES {
        return Err(ConfigError::invalid(
            path,
            Reason::TooMany {
                what: "rules across all services",
                limit: limits::MAX_RULES,
            },
        ));
    }
    let mut set = RuleSet::default();
    // Each host claimed so far → its JSON path, in `claim_paths`.
    let mut claimed: hosts::HostMap<u32> = hosts::HostMap::default();
    let mut claim_paths: Vec<String> = Vec::new();
    let mut aliases: Vec<(String, u32)> = Vec::new();
    for (si, svc) in services.iter().enumerate() {
        let spath = format!("{path}[{si}]");
        let namespace = svc.namespace.as_deref().unwrap_or(opts.namespace);
        if namespace.is_empty() || !hosts::valid_host(namespace) || namespace.contains('.') {
            return Err(ConfigError::invalid(
                format!("{spath}.namespace"),
                Reason::BadHost(namespace.to_string()),
            ));
        }
        let exp = Expansion {
            namespace,
            cluster_domain: opts.cluster_domain,
        };
        if svc.hosts.is_empty() {
            return Err(ConfigError::invalid(
                format!("{spath}.hosts"),
                Reason::EmptyList,
            ));
        }
        if svc.hosts.len() > limits::MAX_HOSTS_PER_SERVICE {
            return Err(ConfigError::invalid(
                format!("{spath}.hosts"),
                Reason::TooMany {
                    what: "hosts",
                    limit: limits::MAX_HOSTS_PER_SERVICE,
                },
            ));
        }
        let index = u32::try_from(si).unwrap_or(u32::MAX);
        let mut name = String::new();
        for (hi, host) in svc.hosts.iter().enumerate() {
            let hpath = format!("{spath}.hosts[{hi}]");
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
            if let Some(first) = claimed.get(fqdn.as_str()) {
                let first = claim_paths
                    .get(*first as usize)
                    .cloned()
                    .unwrap_or_default();
                return Err(ConfigError::invalid(
                    hpath,
                    Reason::DuplicateHost { host: fqdn, first },
                ));
            }
            claimed.insert(fqdn.as_str().into(), claim_paths.len() as u32);
            claim_paths.push(hpath);
            let client_ns = opts.workload.namespace.as_deref().or(Some(opts.namespace));
            let mut names = hosts::aliases(&fqdn, opts.cluster_domain, client_ns).into_iter();
            if let Some(primary) = names.next() {
                set.hosts.insert(&primary, index);
            }
            aliases.extend(names.map(|a| (a, index)));
        }
        if svc.http.is_empty() {
            return Err(ConfigError::invalid(
                format!("{spath}.http"),
                Reason::EmptyList,
            ));
        }
        let portless = match svc.destination_port {
            Some(p) => PortlessAs::Port(
                port(p).map_err(|r| ConfigError::invalid(format!("{spath}.destinationPort"), r))?,
            ),
            None if opts.workload.gateway => PortlessAs::Refused,
            None => PortlessAs::RequestPort,
        };
        let mut rules = Vec::with_capacity(svc.http.len());
        for (ri, rule) in svc.http.iter().enumerate() {
            rules.push(compile_rule(
                rule,
                &format!("{spath}.http[{ri}]"),
                ri,
                (&exp, portless),
                opts,
                &mut set.destinations,
            )?);
        }
        if let Some(d) = &svc.default_destination {
            let dpath = format!("{spath}.defaultDestination");
            mark_default_route(&mut rules, d, &dpath, &exp, portless)?;
        }
        let index = Some(RuleIndex::build(&rules)).filter(|i| i.filed >= INDEX_MIN_RULES);
        set.services.push(Service {
            name: name.into(),
            rules,
            index,
        });
    }
    // Short aliases never override a name some service claimed in full.
    for (alias, index) in aliases {
        set.hosts.insert(&alias, index);
    }
    Ok(set)
}

#[inline(never)]
fn compile_rule(
    rule: &config::HttpRoute,
    path: &str,
    index: usize,
    (exp, portless): (&Expansion<'_>, PortlessAs),
    opts: &CompileOptions<'_>,
    next_stat: &mut u32,
) -> Result<Rule, ConfigError> {
    let name = match &rule.name {
        Some(n) if n.is_empty() => {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                Reason::EmptyString,
            ))
        }
        Some(n) if n.len() > limits::MAX_NAME_LEN => {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                Reason::TooMany {
                    what: "bytes in a name",
                    limit: limits::MAX_NAME_LEN,
                },
            ))
        }
        Some(n) => n.clone(),
        None => format!("http-{index}"),
    };
    if rule.matches.len() > limits::MAX_MATCHES_PER_RULE {
        return Err(ConfigError::invalid(
            format!("{path}.match"),
            Reason::TooMany {
                what: "match entries",
                limit: limits::MAX_MATCHES_PER_RULE,
            },
        ));
    }
    let mut matches = Vec::with_capacity(rule.matches.len());
    for (mi, m) in rule.matches.iter().enumerate() {
        if let Some(entry) = compile_match(m, &format!("{path}.match[{mi}]"), opts)? {
            matches.push(entry);
        }
    }
    let reachable = rule.matches.is_empty() || !matches.is_empty();
    let route = compile_route(rule, path, exp, portless, next_stat)?;
    Ok(Rule {
        name: name.into(),
        matches,
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
    if conditions.iter().sum::<usize>() > limits::MAX_CONDITIONS_PER_MATCH {
        return Err(ConfigError::invalid(
            path,
            Reason::TooMany {
                what: "conditions in one match entry",
                limit: limits::MAX_CONDITIONS_PER_MATCH,
            },
        ));
    }
    let ignore_case = m.ignore_uri_case.unwrap_or(false);
    let single = |field: &str, sm: &Option<config::StringMatch>, ic: bool| {
        let kind = if field == "uri" {
            Field::Uri
        } else {
            Field::Pseudo
        };
        sm.as_ref()
            .map(|sm| {
                StringMatcher::compile(sm, kind, ic)
                    .map_err(|(sub, r)| ConfigError::invalid(join(path, field, sub), r))
            })
            .transpose()
    };
    let entry = MatchEntry {
        uri: single("uri", &m.uri, ignore_case)?,
        scheme: single("scheme", &m.scheme, false)?,
        method: single("method", &m.method, false)?,
        authority: single("authority", &m.authority, false)?,
        headers: header_matchers(
            m.headers.as_ref(),
            &format!("{path}.headers"),
            Field::Present,
        )?,
        without_headers: header_matchers(
            m.without_headers.as_ref(),
            &format!("{path}.withoutHeaders"),
            Field::Without,
        )?,
        port: m
            .port
            .map(|p| port(p).map_err(|r| ConfigError::invalid(format!("{path}.port"), r)))
            .transpose()?,
        query: query_matchers(m.query_params.as_ref(), &format!("{path}.queryParams"))?,
    };
    if let Some(ns) = &m.source_namespace {
        if ns.is_empty() {
            return Err(ConfigError::invalid(
                format!("{path}.sourceNamespace"),
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
                return Err(ConfigError::invalid(
                    format!("{path}.sourceLabels"),
                    Reason::EmptyString,
                ));
            }
            if opts.workload.labels.get(k) != Some(v) {
                return Ok(None);
            }
        }
    }
    Ok(Some(entry))
}

fn join(path: &str, field: &str, sub: &str) -> String {
    if sub.is_empty() {
        format!("{path}.{field}")
    } else {
        format!("{path}.{field}.{sub}")
    }
}

type Matchers<K> = Box<[(K, StringMatcher)]>;

#[inline(never)]
fn header_matchers(
    map: Option<&Map<config::StringMatch>>,
    path: &str,
    field: Field,
) -> Result<Matchers<Box<str>>, ConfigError> {
    let Some(map) = map else {
        return Ok(Box::default());
    };
    map.iter()
        .map(|(name, sm)| {
            let hpath = format!("{path}.{name}");
            let lower = header_name(name).map_err(|r| ConfigError::invalid(&hpath, r))?;
            let lower = as_envoy_names(lower);
            let m = StringMatcher::compile(sm, field, false)
                .map_err(|(sub, r)| ConfigError::invalid(join(path, name, sub), r))?;
            Ok((lower.into(), m))
        })
        .collect()
}

#[inline(never)]
fn query_matchers(
    map: Option<&Map<config::StringMatch>>,
    path: &str,
) -> Result<Matchers<Box<[u8]>>, ConfigError> {
    let Some(map) = map else {
        return Ok(Box::default());
    };
    map.iter()
        .map(|(name, sm)| {
            if name.is_empty() {
                return Err(ConfigError::invalid(path, Reason::EmptyString));
            }
            let m = StringMatcher::compile(sm, Field::Present, false)
                .map_err(|(sub, r)| ConfigError::invalid(join(path, name, sub), r))?;
            Ok((name.as_bytes().into(), m))
        })
        .collect()
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
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
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
    next_stat: &mut u32,
) -> Result<Route, ConfigError> {
    let rpath = format!("{path}.route");
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
    for (di, rd) in rule.route.iter().enumerate() {
        let dpath = format!("{rpath}[{di}]");
        let weight = match rd.weight {
            None if lone => 1,
            None => {
                return Err(ConfigError::invalid(
                    format!("{dpath}.weight"),
                    Reason::MissingWeight,
                ))
            }
            Some(w) if w < 0 => {
                return Err(ConfigError::invalid(
                    format!("{dpath}.weight"),
                    Reason::NegativeWeight(w),
                ))
            }
            Some(w) if w > limits::MAX_WEIGHT => {
                return Err(ConfigError::invalid(
                    format!("{dpath}.weight"),
                    Reason::WeightTooLarge(w),
                ))
            }
            Some(w) => u32::try_from(w).unwrap_or(0),
        };
        let (cluster, label) = cluster_name(
            &rd.destination,
            &format!("{dpath}.destination"),
            exp,
            portless,
        )?;
        let guard = rd
            .guard
            .as_ref()
            .map(|g| crate::guard::compile(g, &format!("{dpath}.guard")))
            .transpose()?;
        destinations.push(Destination {
            cluster,
            label: label.into(),
            weight,
            stat_index: *next_stat,
            via: Via::RouteHeader,
            guard,
        });
        *next_stat = next_stat.saturating_add(1);
    }
    if destinations.iter().all(|d| d.weight == 0) {
        return Err(ConfigError::invalid(rpath, Reason::AllZeroWeights));
    }
    let weights: Vec<u32> = destinations.iter().map(|d| d.weight).collect();
    let seeds: Vec<u64> = destinations
        .iter()
        .map(|d| hash_key(d.cluster.key().as_bytes()))
        .collect();
    let (sticky, issuer) = match &rule.sticky {
        None => (None, None),
        Some(s) => {
            let spath = format!("{path}.sticky");
            let key = sticky_key(s, &spath)?;
            let issuer = match (&s.set_cookie, &s.cookie) {
                (None, _) => None,
                (Some(c), Some(name)) => Some(Box::new(cookie::compile(name, c, &spath)?)),
                (Some(_), None) => {
                    return Err(ConfigError::invalid(
                        format!("{spath}.setCookie"),
                        Reason::SetCookieNeedsCookie,
                    ))
                }
            };
            (Some(key), issuer)
        }
    };
    Ok(Route {
        weights: Weights::new(&weights, &seeds),
        destinations,
        sticky,
        issuer,
    })
}

/// Marks the destinations that are the service's `defaultDestination`
/// ([`Via::DefaultRoute`]).
#[inline(never)]
fn mark_default_route(
    rules: &mut [Rule],
    default: &config::Destination,
    path: &str,
    exp: &Expansion<'_>,
    portless: PortlessAs,
) -> Result<(), ConfigError> {
    let (cluster, _) = cluster_name(default, path, exp, portless)?;
    rules
        .iter_mut()
        .flat_map(|r| r.route.destinations.iter_mut())
        .filter(|d| d.cluster == cluster)
        .for_each(|d| d.via = Via::DefaultRoute);
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
            let cpath = format!("{path}.cluster");
            plain_value(cluster).map_err(|r| ConfigError::invalid(&cpath, r))?;
            if d.subset.is_some() || d.port.is_some() {
                return Err(ConfigError::invalid(path, Reason::HostAndCluster));
            }
            Ok((ClusterName::Fixed(cluster.as_str().into()), cluster.clone()))
        }
        (Some(host), None) => {
            let hpath = format!("{path}.host");
            if host.is_empty() {
                return Err(ConfigError::invalid(hpath, Reason::EmptyString));
            }
            if !hosts::valid_host(host) || host.starts_with('*') {
                return Err(ConfigError::invalid(hpath, Reason::BadHost(host.clone())));
            }
            let fqdn = hosts::expand(host, exp);
            let subset = d.subset.as_deref().unwrap_or("");
            if d.subset.is_some() {
                plain_value(subset)
                    .map_err(|r| ConfigError::invalid(format!("{path}.subset"), r))?;
            }
            let port = match (&d.port, portless) {
                (Some(p), _) => Some(
                    port(p.number)
                        .map_err(|r| ConfigError::invalid(format!("{path}.port.number"), r))?,
                ),
                (None, PortlessAs::Port(p)) => Some(p),
                (None, PortlessAs::RequestPort) => None,
                (None, PortlessAs::Refused) => {
                    return Err(ConfigError::invalid(
                        format!("{path}.port"),
                        Reason::MissingPort,
                    ))
                }
            };
            let label = if subset.is_empty() {
                fqdn.clone()
            } else {
                subset.to_string()
            };
            let tail = format!("|{subset}|{fqdn}");
            let name = match port {
                Some(p) => ClusterName::Fixed(format!("outbound|{p}{tail}").into()),
                None => ClusterName::RequestPort(tail.into()),
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
    if v.bytes().any(|b| !b.is_ascii_graphic()) {
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
        let name = header_name(h).map_err(|r| ConfigError::invalid(format!("{path}.header"), r))?;
        let name = as_envoy_names(name);
        return Ok(StickyKey::Header(name.into()));
    }
    if let Some(c) = &s.cookie {
        if c.is_empty()
            || c.bytes()
                .any(|b| !b.is_ascii_graphic() || b == b';' || b == b'=')
        {
            return Err(ConfigError::invalid(
                format!("{path}.cookie"),
                Reason::BadCharacters(c.clone()),
            ));
        }
        return Ok(StickyKey::Cookie(c.as_bytes().into()));
    }
    match s.source_ip {
        Some(true) => Ok(StickyKey::SourceIp),
        _ => Err(ConfigError::invalid(
            format!("{path}.sourceIp"),
            Reason::StickySourceIpFalse,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::{serialize, Pairs};
    use crate::plugin::Plugin;

    /// Rules of every kind the index treats differently, in an order where
    /// filed and unfiled rules interleave.
    fn mixed_rules(catch_all: bool) -> serde_json::Value {
        let to = serde_json::json!([{ "destination": { "cluster": "c" } }]);
        let mut rules = vec![
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "alice" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "bob" }, "x-tenant": { "exact": "t1" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "carol" } } }, { "uri": { "prefix": "/carol" } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "prefix": "dav" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "dave" } }, "sourceLabels": { "app": "elsewhere" } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "alice" }, "x-region": { "exact": "eu" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-tenant": { "exact": "t1" } } }] }),
            serde_json::json!({ "match": [{ "method": { "exact": "POST" } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "erin" } } }, { "headers": { "x-build": { "exact": "b1" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "regex": "e.*" }, "x-build": { "exact": "b2" } } }] }),
            serde_json::json!({ "match": [{ "headers": { "x-user": { "regex": "z.*" } } }] }),
        ];
        if catch_all {
            rules.push(serde_json::json!({}));
        }
        rules.push(
            serde_json::json!({ "match": [{ "headers": { "x-user": { "exact": "zed" } } }] }),
        );
        // Eight filed rules: enough for an index (INDEX_MIN_RULES).
        rules.push(
            serde_json::json!({ "match": [{ "headers": { "x-region": { "exact": "us" } } }] }),
        );
        // Path rules: filed by prefix (an exact uri is a prefix too), except
        // a case-insensitive one.
        rules.push(serde_json::json!({ "match": [{ "uri": { "prefix": "/api" } , "method": { "exact": "POST" } }] }));
        rules.push(serde_json::json!({ "match": [{ "uri": { "exact": "/api/v2" } }, { "headers": { "x-user": { "exact": "bob" } } }] }));
        rules.push(serde_json::json!({ "match": [{ "uri": { "prefix": "/API" }, "ignoreUriCase": true }] }));
        rules.push(serde_json::json!({ "match": [{ "uri": { "pathPrefix": "/carol" } }] }));
        rules.push(serde_json::json!({ "match": [{ "uri": { "prefix": "/" } }] }));
        for r in &mut rules {
            r["route"] = to.clone();
        }
        serde_json::Value::Array(rules)
    }

    /// A request view without `for_each_header`: lookups by name only.
    struct LookupOnly<'b>(Pairs<'b>);

    impl RequestView for LookupOnly<'_> {
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.0.get(name)
        }
        fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
            self.0.any_value(name, f)
        }
    }

    #[test]
    fn header_names_past_the_index_limit_are_scanned() {
        let n = MAX_INDEXED_HEADERS + 6;
        let http: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "name": format!("r{i}"),
                    "match": [{ "headers": { format!("x-h{i}"): { "exact": "on" } } }],
                    "route": [{ "destination": { "cluster": format!("c{i}") } }],
                })
            })
            .collect();
        let config = serde_json::json!({ "services": [{ "hosts": ["a"], "http": http }] });
        let set = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default())
            .unwrap()
            .rules
            .unwrap()
            .set;
        let index = set.services()[0].index.as_ref().unwrap();
        assert_eq!(index.by_header.len(), MAX_INDEXED_HEADERS);
        let first_unfiled = u32::try_from(MAX_INDEXED_HEADERS).unwrap();
        assert_eq!(
            &*index.always,
            &(first_unfiled..u32::try_from(n).unwrap()).collect::<Vec<_>>()[..]
        );
        for i in [0, MAX_INDEXED_HEADERS - 1, MAX_INDEXED_HEADERS, n - 1] {
            let name = format!("x-h{i}");
            let buf = serialize(vec![
                (&b":authority"[..], &b"a"[..]),
                (name.as_bytes(), b"on"),
            ]);
            let pairs = Pairs::parse(&buf).unwrap();
            let outcome = set.decide(&pairs, || 0);
            assert_eq!(outcome.decision().map(|d| d.rule), Some(i), "{name}");
        }
    }

    #[test]
    fn the_index_finds_the_same_first_rule_as_a_scan() {
        let config = serde_json::json!({ "services": [
            { "hosts": ["a"], "http": mixed_rules(true) },
            { "hosts": ["b"], "http": mixed_rules(false) },
        ]});
        let plugin =
            Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default()).unwrap();
        let set = plugin.rules.unwrap().set;
        let regions = [None, Some("eu"), Some("us")];
        let users = [
            None,
            Some("alice"),
            Some("bob"),
            Some("carol"),
            Some("dave"),
            Some("erin"),
            Some("zed"),
            Some("eve"),
        ];
        let mut compared = 0;
        for service in set.services() {
            assert!(
                service.index.is_some(),
                "{} rules get an index",
                service.rules.len()
            );
            for user in users {
                for tenant in [None, Some("t1")] {
                    for region in regions {
                        for build in [None, Some("b1"), Some("b2")] {
                            for method in ["GET", "POST"] {
                                for path in [
                                    "/", "/carol/x", "/carolx", "/carol", "/api/v2", "/API/x",
                                    "/apix", "",
                                ] {
                                    let mut h: Vec<(&[u8], &[u8])> = vec![
                                        (b":authority", b"a"),
                                        (b":path", path.as_bytes()),
                                        (b":method", method.as_bytes()),
                                    ];
                                    for (name, v) in [
                                        ("x-user", user),
                                        ("x-tenant", tenant),
                                        ("x-region", region),
                                        ("x-build", build),
                                    ] {
                                        if let Some(v) = v {
                                            h.push((name.as_bytes(), v.as_bytes()));
                                        }
                                    }
                                    // A repeated header: a rule matches on any of its values.
                                    h.push((b"x-user", b"zed"));
                                    h.push((b"x-region", b"us"));
                                    let buf = serialize(h);
                                    let pairs = Pairs::parse(&buf).unwrap();
                                    let parts = RequestParts::new(&pairs, b"a");
                                    let scan = service.rules.iter().position(|r| r.matches(&parts));
                                    assert_eq!(
                                        service.first_match(&parts),
                                        scan,
                                        "one walk: {user:?} {tenant:?} {region:?} {build:?} {method} {path}"
                                    );
                                    // A view that cannot list its headers: a lookup per name.
                                    let lookups = LookupOnly(pairs);
                                    let parts = RequestParts::new(&lookups, b"a");
                                    assert_eq!(
                                        service.first_match(&parts),
                                        scan,
                                        "lookups: {user:?} {tenant:?} {region:?} {build:?} {method} {path}"
                                    );
                                    compared += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 8 * 2 * 3 * 3 * 2 * 8);
    }

    #[test]
    fn small_services_are_scanned_and_exact_header_rules_are_filed() {
        let few = serde_json::json!({ "services": [{ "hosts": ["a"], "http": [
            { "match": [{ "headers": { "x-user": { "exact": "alice" } } }], "route": [{ "destination": { "cluster": "c" } }] },
            { "route": [{ "destination": { "cluster": "c" } }] },
        ]}]});
        let set = Plugin::from_bytes(few.to_string().as_bytes(), &Workload::default())
            .unwrap()
            .rules
            .unwrap()
            .set;
        assert!(set.services()[0].index.is_none());
        let rules = mixed_rules(true);
        let index = {
            let config = serde_json::json!({ "services": [{ "hosts": ["a"], "http": rules }] });
            let set = Plugin::from_bytes(config.to_string().as_bytes(), &Workload::default())
                .unwrap()
                .rules
                .unwrap()
                .set;
            set.services()[0].index.clone().unwrap()
        };
        // Unreachable (4) is nowhere; one entry without an exact header
        // condition makes a rule "always"; 9 is filed under its exact x-build.
        assert_eq!(&*index.always, &[3, 7, 10, 11, 16]);
        // 2 (carol: a header or /carol), 14, 15 (/api/v2 or bob), 17
        // (pathPrefix /carol) and 18 are filed by path.
        let prefix = |p: &str| index.by_prefix.get(p.as_bytes()).map(|l| l.to_vec());
        assert_eq!(prefix("/carol"), Some(vec![2, 17]));
        assert_eq!(prefix("/api"), Some(vec![14]));
        assert_eq!(prefix("/api/v2"), Some(vec![15]));
        assert_eq!(prefix("/"), Some(vec![18]));
        assert_eq!(&*index.prefix_lens, &[1, 4, 6, 7]);
        // The names in the order the rules first use them.
        let names: Vec<&str> = index.by_header.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["x-user", "x-tenant", "x-region", "x-build"]);
        let user = &index.by_header[0].1;
        assert_eq!(user.get(&b"alice"[..]).map(|l| &**l), Some(&[0u32][..]));
        assert_eq!(user.get(&b"zed"[..]).map(|l| &**l), Some(&[12u32][..]));
        let tenant = &index.by_header[1].1;
        assert_eq!(tenant.get(&b"t1"[..]).map(|l| &**l), Some(&[1u32, 6][..]));
    }
}
