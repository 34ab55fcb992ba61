//! The request path: the service of a request, its first matching rule and
//! the destination picked, by weight or by a sticky key.

use crate::domain::cluster::ClusterName;
use crate::domain::cookie::{self, Issuer, Key};
use crate::domain::hosts::{self};
use crate::domain::matcher::StringMatcher;
use crate::domain::pick::{hash_key, Weights};

use super::{
    Condition, Decision, Dest, Destination, MatchEntry, Outcome, RequestView, Route, Rule, RuleSet,
    Service, StickyKey,
};

impl RuleSet {
    /// The services, in configuration order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Number of destinations across all rules (the range of `stat_index`).
    pub fn destination_count(&self) -> u32 {
        self.destinations
    }

    /// Moves every ramp to its phase at `now_ms` ([`Ramped::advance`](super::Ramped::advance)),
    /// and returns whether one moved and when the next step is due.
    pub fn advance(&self, now_ms: u64) -> (bool, Option<u64>) {
        let (mut moved, mut next) = (false, None::<u64>);
        for r in self.services.iter().flat_map(|s| &s.rules) {
            if let Some(ramp) = r.route.ramp() {
                moved |= ramp.advance(now_ms);
                if !ramp.is_aborted() {
                    if let Some(at) = ramp.schedule.next_at(ramp.phase()) {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
            }
        }
        (moved, next)
    }

    /// Every destination with its service and rule, in `stat_index` order.
    pub fn all_destinations(&self) -> impl Iterator<Item = (&Service, &Rule, Dest<'_>)> {
        self.services.iter().flat_map(move |s| {
            s.rules
                .iter()
                .flat_map(move |r| self.dests(&r.route).map(move |d| (s, r, d)))
        })
    }

    /// The destinations of `route` (one of this rule set's) with their
    /// cluster names and labels, in order.
    pub fn dests<'a>(&'a self, route: &'a Route) -> impl Iterator<Item = Dest<'a>> {
        route.destinations.iter().filter_map(|d| self.dest(d))
    }

    /// The cluster of a destination of this rule set (`None` only for a
    /// destination of another rule set).
    #[inline]
    pub fn cluster(&self, d: &Destination) -> Option<&ClusterName> {
        self.targets.get(d.target as usize).map(|t| &t.cluster)
    }

    /// A destination of this rule set with its cluster name and label
    /// (`None` only for a destination of another rule set).
    #[inline]
    pub fn dest<'a>(&'a self, d: &'a Destination) -> Option<Dest<'a>> {
        let t = self.targets.get(d.target as usize)?;
        Some(Dest {
            cluster: &t.cluster,
            label: &t.label,
            destination: d,
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
        self.decide_at(index as usize, authority, req, random, fresh)
    }

    /// Decides where a request for service `index` goes, whatever its
    /// authority: for a placement where Envoy's route has already chosen
    /// the service (the dynamic module's cluster specifier, on one
    /// service's route, as istiod's routes apply to every request of their
    /// virtual host). Rules that issue cookies get no fresh keys.
    #[inline]
    pub fn decide_service<R: RequestView>(
        &self,
        index: usize,
        req: &R,
        random: impl FnOnce() -> u64,
    ) -> Outcome<'_> {
        let authority = req.header(":authority").unwrap_or_default();
        self.decide_at(index, authority, req, random, || None)
    }

    #[inline(always)]
    fn decide_at<R: RequestView>(
        &self,
        index: usize,
        authority: &[u8],
        req: &R,
        random: impl FnOnce() -> u64,
        fresh: impl FnOnce() -> Option<[u8; 16]>,
    ) -> Outcome<'_> {
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
        let target = rule.route.destinations.get(destination);
        match target.and_then(|d| Some((d, self.cluster(d)?))) {
            Some((target, cluster)) => Outcome::Routed(Decision {
                service: index,
                rule: rule_index,
                destination,
                target,
                cluster,
                sticky,
                issued,
            }),
            None => Outcome::NoRule { service: index },
        }
    }
}

/// A request's fields that rules look at, split once per request.
pub(super) struct RequestParts<'r, R: RequestView> {
    pub(super) req: &'r R,
    pub(super) authority: &'r [u8],
    pub(super) path: &'r [u8],
    pub(super) query: &'r [u8],
}

impl<'r, R: RequestView> RequestParts<'r, R> {
    pub(super) fn new(req: &'r R, authority: &'r [u8]) -> Self {
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
    pub(super) fn query_param(&self, name: &[u8]) -> Option<&'r [u8]> {
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
    pub(super) fn matches<R: RequestView>(&self, req: &RequestParts<'_, R>) -> bool {
        self.reachable && (self.matches.is_empty() || self.matches.iter().any(|m| m.matches(req)))
    }

    /// Whether the rule can match at all on this sidecar.
    pub fn reachable(&self) -> bool {
        self.reachable
    }
}

impl MatchEntry {
    #[inline]
    pub(super) fn matches<R: RequestView>(&self, r: &RequestParts<'_, R>) -> bool {
        self.0.iter().all(|c| c.holds(r))
    }
}

impl Condition {
    /// Whether the request meets this condition: the conditions on one
    /// value find it first, and share one `StringMatcher::matches`.
    #[inline]
    fn holds<R: RequestView>(&self, r: &RequestParts<'_, R>) -> bool {
        let (m, value) = match self {
            Condition::Uri(m) => (m, Some(r.path)),
            Condition::Scheme(m) => (m, r.req.header(":scheme")),
            Condition::Method(m) => (m, r.req.header(":method")),
            Condition::Authority(m) => (m, Some(r.authority)),
            Condition::Query(name, m) => (m, r.query_param(name)),
            Condition::Header(name, m) => {
                return r.req.any_header_value(name, |v| m.matches(v)) == Some(true)
            }
            Condition::WithoutHeader(name, m) => return without_header(r.req, name, m),
            Condition::Port(p) => return r.req.local_port() == Some(*p),
        };
        value.is_some_and(|v| m.matches(v))
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
        if self.issuer().is_some() {
            return self.pick_issuing(req, random, fresh);
        }
        if self.destinations.len() == 1 {
            return (0, self.sticky.is_some(), None);
        }
        if let Some(key) = self.sticky().and_then(|k| sticky_value(k, req)) {
            return (self.weights().pick_sticky(hash_key(key)), true, None);
        }
        (self.weights().pick_random(random()), false, None)
    }

    /// The pick of a rule that issues its cookie: by the cookie brought if
    /// it is usable, else by a fresh key (issued), else random.
    fn pick_issuing<R: RequestView>(
        &self,
        req: &R,
        random: impl FnOnce() -> u64,
        fresh: impl FnOnce() -> Option<[u8; 16]>,
    ) -> (usize, bool, Option<Key>) {
        let brought = self.sticky().and_then(|k| sticky_value(k, req));
        if let Some(key) = brought.filter(|k| cookie::usable(k)) {
            return (self.weights().pick_sticky(hash_key(key)), true, None);
        }
        match fresh() {
            Some(bits) => {
                let key = Key::from_bits(bits);
                (
                    self.weights().pick_sticky(hash_key(key.as_bytes())),
                    true,
                    Some(key),
                )
            }
            None => (self.weights().pick_random(random()), false, None),
        }
    }

    /// The sum of the destinations' weights (a destination's share is its
    /// weight over this).
    pub fn total_weight(&self) -> u64 {
        self.weights().total()
    }

    /// The hash a sticky pick of this request uses, if the route is sticky
    /// and the request carries the key.
    pub fn sticky_hash<R: RequestView>(&self, req: &R) -> Option<u64> {
        let key = self.sticky()?;
        sticky_value(key, req).map(hash_key)
    }

    /// The weights requests are picked with now: the ramp's phase, if
    /// the rule has a ramp, else the route's own.
    #[inline]
    pub fn weights(&self) -> &Weights {
        match &self.ramp {
            None => &self.weights,
            Some(r) => r.weights().unwrap_or(&self.weights),
        }
    }

    /// The route's own weights (before any ramp).
    pub fn own_weights(&self) -> &Weights {
        &self.weights
    }

    /// The ramp, if the rule has one.
    pub fn ramp(&self) -> Option<&super::Ramped> {
        self.ramp.as_deref()
    }

    /// How this route keeps users sticky, if it does.
    pub fn sticky(&self) -> Option<&StickyKey> {
        self.sticky.as_deref().map(|s| &s.key)
    }

    /// The cookie this route issues to requests that bring none, if it does.
    pub fn issuer(&self) -> Option<&Issuer> {
        self.sticky.as_deref()?.issuer.as_deref()
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
