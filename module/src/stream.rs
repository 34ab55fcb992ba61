//! One request, as the wasm filter routes it: read the request headers
//! once, decide with the shared core, write the chosen cluster into the
//! route header (removing a client's copy), ask Envoy to select the route
//! again, count; on the response, the sticky cookie the rule issued and the
//! debug header.

use std::cell::{OnceCell, RefCell};
use std::sync::Arc;

use canary_router::cluster::Built;
use canary_router::cookie::{Key, MAX_SET_COOKIE_LEN};
use canary_router::pick::Rng;
use canary_router::rules::{Outcome, RequestView, Via};

use crate::abi::{Header, Stream};
use crate::config::Active;

thread_local! {
    /// Each worker's generator for weighted picks, seeded from the OS.
    static RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

/// 64 random bits for a weighted pick.
fn random() -> u64 {
    RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rng = slot.get_or_insert_with(|| {
            // The clock and the thread only if the OS has no randomness.
            let seed = getrandom::u64().unwrap_or_else(|_| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                t ^ (std::process::id() as u64) << 32
            });
            Rng::new(seed)
        });
        rng.next_u64()
    })
}

/// Fresh random bits for a cookie key; none if the OS has none (the request
/// then gets the random split and no cookie).
fn fresh_bits() -> Option<[u8; 16]> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits).ok().map(|()| bits)
}

/// A key issued to a request, and the rule whose cookie carries it.
struct Issued {
    service: usize,
    rule: usize,
    key: Key,
}

/// The module's state of one stream.
pub struct StreamFilter {
    active: Arc<Active>,
    /// `stat_index` of the destination that served the request.
    served: Option<u32>,
    cookie: Option<Issued>,
}

/// The request as the rules see it: Envoy's header list, and the client
/// address and arrival port, asked only if a rule needs them.
struct View<'s> {
    headers: &'s [Header<'s>],
    stream: &'s Stream,
    source: OnceCell<Option<&'s [u8]>>,
    port: OnceCell<Option<u16>>,
}

impl RequestView for View<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    fn any_header_value(&self, name: &str, mut f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        let name = name.as_bytes();
        let mut seen = false;
        for (k, v) in self.headers {
            if *k == name {
                seen = true;
                if f(v) {
                    return Some(true);
                }
            }
        }
        seen.then_some(false)
    }

    fn for_each_header_of_len(&self, lengths: u64, mut f: impl FnMut(&[u8], &[u8])) -> bool {
        for (k, v) in self.headers {
            if lengths & (1u64 << k.len().min(63)) != 0 {
                f(k, v);
            }
        }
        true
    }

    fn source_address(&self) -> Option<&[u8]> {
        *self
            .source
            .get_or_init(|| self.stream.source_address().filter(|a| !a.is_empty()))
    }

    fn local_port(&self) -> Option<u16> {
        *self.port.get_or_init(|| self.stream.local_port())
    }
}

impl StreamFilter {
    /// A stream routed by `active`.
    pub fn new(active: Arc<Active>) -> Self {
        StreamFilter {
            active,
            served: None,
            cookie: None,
        }
    }

    /// Routes the request.
    pub fn on_request_headers(&mut self, stream: &mut Stream) {
        let active = self.active.clone();
        let header = &*active.settings.route_header;
        let Some(headers) = stream.request_headers() else {
            // Unreadable: a client's copy of the route header cannot be
            // seen either, so remove it blindly (never steered by a client).
            stream.bump(active.global.host_call_errors);
            if stream.remove_request_header(header) {
                stream.clear_route_cache();
            }
            stream.bump(active.global.passthrough);
            return;
        };
        let spoofed = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(header.as_bytes()));
        let view = View {
            headers: &headers,
            stream,
            source: OnceCell::new(),
            port: OnceCell::new(),
        };
        let outcome = active.rules.set.decide_issuing(&view, random, fresh_bits);
        let mut built = Built::default();
        let mut target: Option<(u32, Option<&[u8]>)> = None;
        if let Outcome::Routed(d) = outcome {
            match d.target.via {
                Via::DefaultRoute => target = Some((d.target.stat_index, None)),
                Via::RouteHeader => {
                    match d.target.cluster.resolve(|| view.local_port(), &mut built) {
                        Some(name) => target = Some((d.target.stat_index, Some(name))),
                        None => log::debug!(
                            "destination.port unknown: the request stays on Envoy's route"
                        ),
                    }
                }
            }
        }
        // The header slices borrow the stream: they end here, before the writes.
        drop(headers);
        let mut served = None;
        let mut modified = false;
        match target {
            Some((index, None)) => served = Some(index),
            Some((index, Some(name))) => {
                if stream.set_request_header(header, name) {
                    served = Some(index);
                    modified = true;
                } else {
                    stream.bump(active.global.host_call_errors);
                }
            }
            None => {}
        }
        if spoofed {
            stream.bump(active.global.spoofed_header_removed);
            if !modified {
                if stream.remove_request_header(header) {
                    modified = true;
                } else {
                    stream.bump(active.global.host_call_errors);
                }
            }
        }
        if modified {
            stream.clear_route_cache();
        }
        match served {
            Some(i) => stream.bump(active.dest_metrics.get(i as usize).copied().flatten()),
            None => stream.bump(active.global.passthrough),
        }
        self.served = served;
        self.cookie = match (served, outcome) {
            (Some(_), Outcome::Routed(d)) => d.issued.map(|key| Issued {
                service: d.service,
                rule: d.rule,
                key,
            }),
            _ => None,
        };
    }

    /// The issued cookie and the debug header.
    pub fn on_response_headers(&mut self, stream: &mut Stream) {
        let active = &*self.active;
        if let Some(issued) = self.cookie.take() {
            let issuer = active
                .rules
                .set
                .services()
                .get(issued.service)
                .and_then(|s| s.rules.get(issued.rule))
                .and_then(|r| r.route.issuer());
            if let Some(issuer) = issuer {
                let mut buf = [0u8; MAX_SET_COOKIE_LEN];
                let value = issuer.render(&issued.key, &mut buf);
                if !stream.add_response_header("set-cookie", value) {
                    stream.bump(active.global.host_call_errors);
                }
            }
        }
        if let (Some(name), Some(value)) = (
            active.settings.debug_header.as_deref(),
            self.served
                .and_then(|i| active.debug_values.get(i as usize)),
        ) {
            if !stream.set_response_header(name, value.as_bytes()) {
                stream.bump(active.global.host_call_errors);
            }
        }
    }
}
