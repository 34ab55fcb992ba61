//! Compiled rules: what the request path runs. Built once per configuration
//! by [`compile`]; immutable afterwards and shared by every request.
//!
//! - [`compile`](mod@compile): configuration → rules, every check with its JSON path;
//! - `index`: which rules a request can match, without testing them all;
//! - `decide`: the request path, from a [`RequestView`] to an [`Outcome`].

use alloc::{boxed::Box, string::String, vec::Vec};

mod compile;
mod decide;
mod index;
#[cfg(test)]
mod tests;

pub use compile::{compile, default_cluster, header_name, Compiler};
pub use decide::cookie;
pub use index::{INDEX_MIN_RULES, MAX_INDEXED_HEADERS};

use crate::domain::cluster::ClusterName;
use crate::domain::cookie::{Issuer, Key};
use crate::domain::hosts::HostIndex;
use crate::domain::matcher::StringMatcher;
use crate::domain::pick::Weights;
use crate::domain::ramp::Schedule;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use filter_runtime::map::Map;

use index::RuleIndex;

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
    /// Who gives a port to destinations without one.
    pub portless: crate::domain::cluster::PortlessMode,
}

/// A compiled rule set.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    services: Vec<Service>,
    hosts: HostIndex,
    destinations: u32,
    /// Each distinct cluster name and label the destinations name, once:
    /// most destinations of a rule set name one of a few clusters.
    targets: Vec<Target>,
}

/// A cluster name and the label that goes with it, held once by a rule set
/// however many destinations name them ([`Destination`] holds its index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Envoy cluster requests are sent to (some take the request's port).
    pub cluster: ClusterName,
    /// A short label for stats and the debug header (the subset, or the cluster).
    pub label: Box<str>,
}

/// A destination with the cluster name and label its rule set holds for
/// it; derefs to the [`Destination`].
#[derive(Debug, Clone, Copy)]
pub struct Dest<'a> {
    /// The Envoy cluster requests are sent to.
    pub cluster: &'a ClusterName,
    /// Its label (the subset, or the cluster).
    pub label: &'a str,
    /// The destination.
    pub destination: &'a Destination,
}

impl core::ops::Deref for Dest<'_> {
    type Target = Destination;
    fn deref(&self) -> &Destination {
        self.destination
    }
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

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name, or `http-<index>`.
    pub name: Box<str>,
    /// Match entries (ORed). Empty with `always` means every request.
    matches: Box<[MatchEntry]>,
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
    pub destinations: Box<[Destination]>,
    weights: Weights,
    /// How a sticky rule keeps its users (most rules are not sticky).
    sticky: Option<Box<Sticky>>,
    /// The scheduled ramp, if the rule has one: then its weights replace
    /// `weights`.
    ramp: Option<Box<Ramped>>,
}

/// A route's ramp, compiled: the schedule, the weights of each of its
/// phases, and the phase in force. [`RuleSet::advance`] moves the phase at
/// step boundaries (so a request reads one index, never the clock), and
/// [`Ramped::abort`] sets the canary's weight to 0 for good.
#[derive(Debug)]
pub struct Ramped {
    /// The schedule.
    pub schedule: Schedule,
    /// The weights of each phase, then those of an aborted ramp (the
    /// canary at 0, the others in the proportions of their own weights).
    weights: Box<[Weights]>,
    /// The phase in force (an index into the schedule's phases).
    phase: AtomicU32,
    /// Set by an ejection of the canary: the ramp stops.
    aborted: AtomicBool,
    /// Index into `weights` the requests use.
    current: AtomicU32,
}

impl Clone for Ramped {
    fn clone(&self) -> Self {
        Ramped {
            schedule: self.schedule.clone(),
            weights: self.weights.clone(),
            phase: AtomicU32::new(self.phase.load(Ordering::Relaxed)),
            aborted: AtomicBool::new(self.aborted.load(Ordering::Relaxed)),
            current: AtomicU32::new(self.current.load(Ordering::Relaxed)),
        }
    }
}

impl Ramped {
    /// Moves to the phase at `now_ms`, unless aborted; whether it moved.
    pub fn advance(&self, now_ms: u64) -> bool {
        let phase = self.schedule.phase_at(now_ms) as u32;
        if self.is_aborted() || phase == self.phase.load(Ordering::Relaxed) {
            return false;
        }
        self.phase.store(phase, Ordering::Relaxed);
        self.current.store(phase, Ordering::SeqCst);
        // An abort by another thread (the dynamic module's workers) since
        // the check above wins: it sets `aborted` before the weights.
        if self.is_aborted() {
            self.abort();
        }
        true
    }

    /// Stops the ramp: the canary gets weight 0 until the rule set
    /// changes. Whether it was running.
    pub fn abort(&self) -> bool {
        let was = self.aborted.swap(true, Ordering::SeqCst);
        let last = self.weights.len().saturating_sub(1) as u32;
        self.current.store(last, Ordering::SeqCst);
        !was
    }

    /// Whether an ejection stopped it.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// The phase in force (where it stopped, if aborted).
    pub fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed) as usize
    }

    /// The weights of phase `i` of the schedule.
    pub fn phase_weights(&self, i: usize) -> Option<&Weights> {
        self.weights.get(i)
    }

    /// The weights requests are picked with now.
    #[inline]
    pub fn weights(&self) -> Option<&Weights> {
        self.weights
            .get(self.current.load(Ordering::Relaxed) as usize)
    }
}

/// One destination of a route.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Its cluster name and label: an index into its rule set's targets
    /// ([`RuleSet::dest`] reads them).
    target: u32,
    /// The relative weight.
    pub weight: u32,
    /// Index of this destination across the whole rule set, for stats.
    pub stat_index: u32,
    /// How a request gets there.
    pub via: Via,
    /// Its guard, if it has one.
    pub guard: Option<alloc::boxed::Box<crate::domain::guard::Spec>>,
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

/// How a sticky route keeps its users.
#[derive(Debug, Clone)]
struct Sticky {
    /// What a pick hashes.
    key: StickyKey,
    /// The cookie issued to requests that bring none (`sticky.setCookie`).
    issuer: Option<Box<Issuer>>,
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

/// A match entry: every one of its conditions holds (none: every request).
/// It holds only the conditions the entry names, in the order they are
/// tested (most entries name one).
#[derive(Debug, Clone)]
struct MatchEntry(Box<[Condition]>);

/// One condition of a match entry.
#[derive(Debug, Clone)]
enum Condition {
    /// `uri`: the path, without its query.
    Uri(StringMatcher),
    /// `scheme`: `:scheme`.
    Scheme(StringMatcher),
    /// `method`: `:method`.
    Method(StringMatcher),
    /// `authority`: `:authority`.
    Authority(StringMatcher),
    /// `headers`: a value of the header (lower-case name) matches.
    Header(Box<str>, StringMatcher),
    /// `withoutHeaders`: no value of the header matches.
    WithoutHeader(Box<str>, StringMatcher),
    /// `port`: the port the request arrived on.
    Port(u16),
    /// `queryParams`: the parameter's first value matches.
    Query(Box<[u8]>, StringMatcher),
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
    /// Its cluster.
    pub cluster: &'a ClusterName,
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
