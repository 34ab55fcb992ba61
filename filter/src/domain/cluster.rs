//! Cluster names, some with a port slot.
//!
//! An Istio destination without `port` goes, as Istio resolves it
//! (`GetDestinationCluster` in `pilot/pkg/networking/core/route`), to the
//! service's only port, or else to the port of the listener the request
//! arrived on. The filter cannot see the service registry, so such a
//! destination takes the request's port: the port of the address the
//! application dialled (Envoy's `destination.port`). Its name is compiled
//! once with the port left out, and the full name is written into a stack
//! buffer when a request is sent there: no allocation, no parsing.
//!
//! With `portlessDestinations: glue` the filter leaves the port to the
//! routing glue instead: it writes `outbound||<subset>|<host>` (the port
//! left empty), and the glue's route of each port, which knows its port,
//! maps that value to the cluster of that port. The filter then reads no
//! property per request.

use alloc::{boxed::Box, format, string::String, string::ToString};

use core::fmt;

/// The longest cluster name [`ClusterName::RequestPort`] can build: the
/// `outbound|65535` head and a tail of at most [`MAX_TAIL`] bytes.
pub const MAX_BUILT: usize = HEAD.len() + 5 + MAX_TAIL;

/// The longest tail (`|subset|host`, and a rule's `;<name>` when it carries
/// a route policy) of a [`ClusterName::RequestPort`].
pub const MAX_TAIL: usize = 800;

const HEAD: &[u8] = b"outbound|";

/// Where a destination's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// A complete name: `outbound|<port>|<subset>|<host>`, or a plain Envoy cluster.
    Fixed(Box<str>),
    /// An Istio cluster whose port is the request's:
    /// `outbound|<port>` followed by this tail, `|<subset>|<host>`.
    RequestPort(Box<str>),
    /// An Istio cluster whose port the routing glue's route names: this
    /// value, `outbound||<subset>|<host>`, is written as it is, and each
    /// port's glue route maps it to `outbound|<port>|<subset>|<host>`.
    GluePort(Box<str>),
}

/// Who gives a port to destinations without one (the plugin's
/// `portlessDestinations`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PortlessMode {
    /// The filter: the port the request arrived on (`destination.port`,
    /// one property read per request routed there).
    #[default]
    RequestPort,
    /// The routing glue: each port's route maps the port-less value to
    /// its own port's cluster (no property read).
    Glue,
}

/// What a destination without `port` becomes, in one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortlessAs {
    /// The request's port (a sidecar).
    RequestPort,
    /// The glue route's port ([`PortlessMode::Glue`]).
    Glue,
    /// The service's `destinationPort`.
    Port(u16),
    /// Refused: on a gateway the request's port is the gateway's own, and
    /// the service names no `destinationPort`.
    Refused,
}

/// A buffer a [`ClusterName::RequestPort`] name is built in.
pub struct Built {
    buf: [u8; MAX_BUILT],
    len: usize,
}

impl Default for Built {
    fn default() -> Self {
        Built {
            buf: [0; MAX_BUILT],
            len: 0,
        }
    }
}

impl Built {
    /// The name built last.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }
}

impl ClusterName {
    /// Whether requests sent here take the request's port.
    pub fn takes_request_port(&self) -> bool {
        matches!(self, ClusterName::RequestPort(_))
    }

    /// Whether requests sent here take the port of the glue's route.
    pub fn takes_glue_port(&self) -> bool {
        matches!(self, ClusterName::GluePort(_))
    }

    /// Whether the destination names no port (the request's or the glue's
    /// route gives it).
    pub fn is_portless(&self) -> bool {
        !matches!(self, ClusterName::Fixed(_))
    }

    /// The bytes that identify this name in a rule set (for sticky seeds);
    /// for a name without its port, its tail `|<subset>|<host>` (the same
    /// in both [`PortlessMode`]s, so switching keeps sticky users).
    pub fn key(&self) -> &str {
        match self {
            ClusterName::Fixed(n) | ClusterName::RequestPort(n) => n,
            ClusterName::GluePort(n) => n.get(HEAD.len()..).unwrap_or_default(),
        }
    }

    /// The value a rule that carries a route policy writes for this
    /// destination: the name followed by `;<rule>`, which only that rule's
    /// glue routes accept (they send it to the name without the suffix).
    pub fn for_rule(&mut self, rule: &str) {
        let (ClusterName::Fixed(n) | ClusterName::RequestPort(n) | ClusterName::GluePort(n)) = self;
        let mut with = String::from(&**n);
        with.push(';');
        with.push_str(rule);
        *n = with.into();
    }

    /// The name for a request arriving on `port` (`port` is called only if
    /// the name takes it); `None` when the port is needed and unknown.
    #[inline]
    pub fn resolve<'b>(
        &'b self,
        port: impl FnOnce() -> Option<u16>,
        built: &'b mut Built,
    ) -> Option<&'b [u8]> {
        match self {
            ClusterName::Fixed(n) | ClusterName::GluePort(n) => Some(n.as_bytes()),
            ClusterName::RequestPort(tail) => {
                let port = port()?;
                built.len = 0;
                built.push(HEAD);
                let mut digits = [0u8; 5];
                let mut start = digits.len();
                let mut p = port;
                loop {
                    start -= 1;
                    if let Some(d) = digits.get_mut(start) {
                        *d = b'0' + (p % 10) as u8;
                    }
                    p /= 10;
                    if p == 0 || start == 0 {
                        break;
                    }
                }
                built.push(digits.get(start..).unwrap_or_default());
                built.push(tail.as_bytes());
                Some(built.as_bytes())
            }
        }
    }

    /// The cluster requests sent here reach on port `port`, as a string
    /// (for tools; the filter uses [`ClusterName::resolve`]).
    pub fn with_port(&self, port: u16) -> String {
        match self {
            ClusterName::Fixed(n) => n.to_string(),
            ClusterName::RequestPort(_) | ClusterName::GluePort(_) => {
                format!("outbound|{port}{}", self.key())
            }
        }
    }
}

/// A name with a port slot shows it as `<request port>`; a name whose
/// port the glue gives shows the value written, `outbound||...`.
impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterName::Fixed(n) | ClusterName::GluePort(n) => f.write_str(n),
            ClusterName::RequestPort(tail) => write!(f, "outbound|<request port>{tail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_slot_is_filled_with_the_request_port() {
        let name = ClusterName::RequestPort("|v1|reviews.default.svc.cluster.local".into());
        let mut built = Built::default();
        for port in [1u16, 9, 10, 80, 9080, 65535] {
            assert_eq!(
                name.resolve(|| Some(port), &mut built),
                Some(format!("outbound|{port}|v1|reviews.default.svc.cluster.local").as_bytes())
            );
            assert_eq!(
                name.with_port(port),
                format!("outbound|{port}|v1|reviews.default.svc.cluster.local")
            );
        }
        assert_eq!(name.resolve(|| None, &mut built), None);
        let fixed = ClusterName::Fixed("outbound|80||a".into());
        assert_eq!(
            fixed.resolve(|| unreachable!("a fixed name never asks"), &mut built),
            Some(&b"outbound|80||a"[..])
        );
        assert_eq!(
            name.to_string(),
            "outbound|<request port>|v1|reviews.default.svc.cluster.local"
        );
    }

    #[test]
    fn a_glue_port_name_is_written_without_its_port() {
        let name = ClusterName::GluePort("outbound||v1|reviews.default.svc.cluster.local".into());
        let mut built = Built::default();
        assert_eq!(
            name.resolve(|| unreachable!("the glue gives the port"), &mut built),
            Some(&b"outbound||v1|reviews.default.svc.cluster.local"[..])
        );
        assert_eq!(
            name.with_port(9080),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        // The same sticky key as the request-port name of the destination.
        let request = ClusterName::RequestPort("|v1|reviews.default.svc.cluster.local".into());
        assert_eq!(name.key(), request.key());
        assert_eq!(
            name.to_string(),
            "outbound||v1|reviews.default.svc.cluster.local"
        );
    }
}
