//! Which service a request is for: Istio-style host names, their short
//! aliases, and the `:authority` of a request.

use alloc::{boxed::Box, format, string::String, string::ToString, vec, vec::Vec};

use filter_runtime::fnv::FnvBuild;
use hashbrown::HashMap;

/// A `HashMap` keyed by host names (the operator's, so FNV needs no seed).
pub type HostMap<V> = HashMap<Box<str>, V, FnvBuild>;

/// Longest host name accepted (DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// How short names expand: the namespace and the cluster domain.
#[derive(Debug, Clone)]
pub struct Expansion<'a> {
    /// Namespace a host without a dot expands against.
    pub namespace: &'a str,
    /// Kubernetes cluster domain, e.g. `cluster.local`.
    pub cluster_domain: &'a str,
}

/// Whether `host` (as written in the config) is an acceptable host name.
pub fn valid_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    host == "*"
        || (!name.is_empty()
            && name.len() <= MAX_HOST_LEN
            && crate::domain::text::all_bytes(name, |b| {
                b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
            })
            && !name.starts_with('.')
            && !name.ends_with('.')
            // Bytes, not a `&str` pattern: that links core's two-way searcher.
            && !name.as_bytes().windows(2).any(|w| w == b".."))
}

/// Expands a configured host to its canonical name: a name without a dot
/// becomes `name.<namespace>.svc.<cluster_domain>`, as Istio expands a short
/// VirtualService host; anything else is taken as written (lower-cased).
pub fn expand(host: &str, exp: &Expansion<'_>) -> String {
    let host = host.to_ascii_lowercase();
    if host == "*" || host.starts_with("*.") || host.contains('.') {
        host
    } else {
        format!("{host}.{}.svc.{}", exp.namespace, exp.cluster_domain)
    }
}

/// The names a client may use for a canonical host, as an Istio sidecar
/// resolves them: the FQDN, `name.ns.svc`, `name.ns`, and the bare `name`
/// when the client runs in the same namespace.
pub fn aliases(fqdn: &str, cluster_domain: &str, client_namespace: Option<&str>) -> Vec<String> {
    let mut out = vec![fqdn.to_string()];
    let Some(svc) = fqdn
        .strip_suffix(cluster_domain)
        .and_then(|s| s.strip_suffix('.'))
    else {
        return out;
    };
    let Some(name_ns) = svc.strip_suffix(".svc") else {
        return out;
    };
    let Some(dot) = crate::domain::text::find_byte(name_ns, b'.') else {
        return out;
    };
    let (Some(name), Some(ns)) = (name_ns.get(..dot), name_ns.get(dot + 1..)) else {
        return out;
    };
    if ns.contains('.') || name.is_empty() || ns.is_empty() {
        return out;
    }
    out.push(svc.to_string());
    out.push(name_ns.to_string());
    if client_namespace == Some(ns) {
        out.push(name.to_string());
    }
    out
}

/// Strips the port and a trailing dot from an `:authority` and lower-cases
/// it into `buf` when needed. Returns `None` for values that cannot be a
/// configured host (too long, not ASCII).
pub fn normalize_authority<'b>(authority: &'b [u8], buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let host = host_part(authority);
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    // One pass without an early exit, which the compiler vectorises: the
    // bits of every byte (a byte outside ASCII sets the top one), and
    // whether any is an upper-case letter. This runs for every request.
    let (bits, upper) = host.iter().fold((0u8, false), |(bits, upper), b| {
        (bits | b, upper | b.is_ascii_uppercase())
    });
    if bits >= 0x80 {
        return None;
    }
    if upper {
        let out = buf.get_mut(..host.len())?;
        for (o, b) in out.iter_mut().zip(host) {
            *o = b.to_ascii_lowercase();
        }
        core::str::from_utf8(out).ok()
    } else {
        core::str::from_utf8(host).ok()
    }
}

/// The host of an authority, without the port (`[::1]:80` gives `[::1]`).
fn host_part(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return match authority.iter().position(|b| *b == b']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        };
    }
    // Most authorities name no port: `contains` (a word at a time) spares
    // them the byte-by-byte search from the end.
    if !authority.contains(&b':') {
        return authority;
    }
    match authority.iter().rposition(|b| *b == b':') {
        Some(colon) => authority.get(..colon).unwrap_or(authority),
        None => authority,
    }
}

/// The port of an authority, if it names one.
pub fn authority_port(authority: &[u8]) -> Option<u16> {
    let after = if authority.first() == Some(&b'[') {
        let end = authority.iter().position(|b| *b == b']')?;
        authority.get(end + 1..)?.strip_prefix(b":")?
    } else {
        let colon = authority.iter().rposition(|b| *b == b':')?;
        authority.get(colon + 1..)?
    };
    if after.is_empty() || after.len() > 5 || !after.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(after).ok()?.parse().ok()
}

/// Maps a normalized host to a service index: exact names first, then
/// `*.suffix` wildcards (longest suffix first), then `*`.
#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    exact: HostMap<u32>,
    /// `(".suffix", service)`, longest first.
    wildcards: Vec<(Box<str>, u32)>,
    catch_all: Option<u32>,
}

impl HostIndex {
    /// Adds a name for a service. Returns the service already holding it, if any
    /// (the existing entry is kept).
    pub fn insert(&mut self, name: &str, service: u32) -> Option<u32> {
        if name == "*" {
            return match self.catch_all {
                Some(s) => Some(s),
                None => {
                    self.catch_all = Some(service);
                    None
                }
            };
        }
        if let Some(suffix) = name.strip_prefix('*') {
            if let Some((_, s)) = self.wildcards.iter().find(|(w, _)| &**w == suffix) {
                return Some(*s);
            }
            // Longest suffix first, then by name.
            let at = self
                .wildcards
                .partition_point(|(w, _)| (suffix.len(), &**w) < (w.len(), suffix));
            self.wildcards.insert(at, (suffix.into(), service));
            return None;
        }
        if let Some(s) = self.exact.get(name) {
            return Some(*s);
        }
        self.exact.insert(name.into(), service);
        None
    }

    /// The service for a normalized host.
    #[inline]
    pub fn lookup(&self, host: &str) -> Option<u32> {
        if let Some(s) = self.exact.get(host) {
            return Some(*s);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(&**suffix))
            .map(|(_, s)| *s)
            .or(self.catch_all)
    }

    /// How many exact names are indexed.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len() + usize::from(self.catch_all.is_some())
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP: Expansion<'static> = Expansion {
        namespace: "default",
        cluster_domain: "cluster.local",
    };

    #[test]
    fn expansion_like_istio() {
        assert_eq!(expand("backend", &EXP), "backend.default.svc.cluster.local");
        assert_eq!(expand("Backend", &EXP), "backend.default.svc.cluster.local");
        assert_eq!(
            expand("backend.prod.svc.cluster.local", &EXP),
            "backend.prod.svc.cluster.local"
        );
        assert_eq!(expand("api.example.com", &EXP), "api.example.com");
        assert_eq!(expand("*.example.com", &EXP), "*.example.com");
    }

    #[test]
    fn aliases_follow_the_client_namespace() {
        let same = aliases(
            "backend.default.svc.cluster.local",
            "cluster.local",
            Some("default"),
        );
        assert_eq!(
            same,
            [
                "backend.default.svc.cluster.local",
                "backend.default.svc",
                "backend.default",
                "backend"
            ]
        );
        let other = aliases(
            "backend.default.svc.cluster.local",
            "cluster.local",
            Some("prod"),
        );
        assert!(
            !other.contains(&"backend".to_string()),
            "bare name only from the same namespace"
        );
        assert!(other.contains(&"backend.default".to_string()));
        assert_eq!(
            aliases("api.example.com", "cluster.local", Some("default")),
            ["api.example.com"]
        );
    }

    /// The normalisation as first written (byte-by-byte searches with early
    /// exits): the specification of the one-pass version.
    fn normalize_reference(authority: &[u8]) -> Option<String> {
        let host = if authority.first() == Some(&b'[') {
            match authority.iter().position(|b| *b == b']') {
                Some(end) => &authority[..=end],
                None => authority,
            }
        } else {
            match authority.iter().rposition(|b| *b == b':') {
                Some(colon) => &authority[..colon],
                None => authority,
            }
        };
        let host = host.strip_suffix(b".").unwrap_or(host);
        if host.is_empty() || host.len() > MAX_HOST_LEN || !host.is_ascii() {
            return None;
        }
        Some(String::from_utf8(host.to_ascii_lowercase()).unwrap())
    }

    #[test]
    fn authority_normalization_as_first_written() {
        let parts: [&[u8]; 13] = [
            b"",
            b"a",
            b"B",
            b":",
            b".",
            b"[",
            b"]",
            b"80",
            b"\xc3\xa9",
            b"\x7f",
            b"\x80",
            b"\xff",
            b"Backend.default.svc.cluster.local",
        ];
        let mut buf = [0u8; 256];
        let mut seen = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    for d in parts {
                        let input = [a, b, c, d].concat();
                        let got = normalize_authority(&input, &mut buf).map(str::to_string);
                        assert_eq!(got, normalize_reference(&input), "{input:?}");
                        seen += usize::from(got.is_some());
                    }
                }
            }
        }
        assert!(seen > 5000, "{seen}");
        for len in [1, 252, 253, 254, 255, 300] {
            for input in [
                vec![b'A'; len],
                [vec![b'a'; len], b":8080".to_vec()].concat(),
            ] {
                let got = normalize_authority(&input, &mut buf).map(str::to_string);
                assert_eq!(got, normalize_reference(&input), "{len}");
            }
        }
    }

    #[test]
    fn authority_normalization() {
        let mut buf = [0u8; 256];
        assert_eq!(
            normalize_authority(b"backend:80", &mut buf),
            Some("backend")
        );
        assert_eq!(
            normalize_authority(b"Backend.Default", &mut buf),
            Some("backend.default")
        );
        assert_eq!(normalize_authority(b"backend.", &mut buf), Some("backend"));
        assert_eq!(normalize_authority(b"[::1]:8080", &mut buf), Some("[::1]"));
        assert_eq!(normalize_authority(b"", &mut buf), None);
        assert_eq!(normalize_authority(&[0xff, b'a'], &mut buf), None);
        assert_eq!(normalize_authority(&[b'a'; 300], &mut buf), None);
        assert_eq!(authority_port(b"backend:8080"), Some(8080));
        assert_eq!(authority_port(b"backend"), None);
        assert_eq!(authority_port(b"[::1]:443"), Some(443));
        assert_eq!(authority_port(b"backend:99999"), None);
        assert_eq!(authority_port(b"backend:8x"), None);
    }

    #[test]
    fn index_exact_wildcard_catch_all() {
        let mut idx = HostIndex::default();
        assert_eq!(idx.insert("backend", 0), None);
        assert_eq!(idx.insert("*.example.com", 1), None);
        assert_eq!(idx.insert("*.api.example.com", 2), None);
        assert_eq!(idx.insert("backend", 3), Some(0));
        assert_eq!(idx.lookup("backend"), Some(0));
        assert_eq!(idx.lookup("a.example.com"), Some(1));
        assert_eq!(
            idx.lookup("v1.api.example.com"),
            Some(2),
            "longest suffix wins"
        );
        assert_eq!(idx.lookup("example.com"), None);
        assert_eq!(idx.lookup("other"), None);
        idx.insert("*", 4);
        assert_eq!(idx.lookup("other"), Some(4));
    }

    #[test]
    fn host_validation() {
        assert!(valid_host("backend"));
        assert!(valid_host("*.example.com"));
        assert!(valid_host("*"));
        assert!(!valid_host(""));
        assert!(!valid_host("backend:80"));
        assert!(!valid_host("http://backend"));
        assert!(!valid_host("a..b"));
        assert!(!valid_host("a b"));
    }
}
