//! Per-request work: read the request headers once, decide, write the
//! cluster header, re-select the route, count. A decision for the
//! service's `defaultDestination` writes nothing and re-selects nothing:
//! Envoy's own route already goes there. The weighted picks' random bits
//! come from one generator per VM, seeded from the host on first use.

use alloc::rc::Rc;
use core::cell::{Cell, OnceCell};

use crate::domain::cluster::Built;
use crate::domain::cookie::{Key, MAX_SET_COOKIE_LEN};
use crate::domain::pick::Rng;
use crate::domain::rules::{Outcome, RequestView, Via};

use filter_runtime::proxy_wasm::exports::{Action, HttpContext};
use filter_runtime::proxy_wasm::hostcalls::{self, HostBytes, Map, Status};
use filter_runtime::proxy_wasm::logger;
use filter_runtime::proxy_wasm::pairs::Pairs;
use filter_runtime::Single;

use super::active::Active;
use super::metrics::bump;

/// The weighted picks' generator, seeded on first use.
static RNG: Single<Cell<Option<Rng>>> = Single(Cell::new(None));

/// A seed from the host's randomness (WASI `random_get`); the clock only if
/// that fails.
fn seed() -> u64 {
    let mut seed = [0; 8];
    match hostcalls::random(&mut seed) {
        Ok(()) => u64::from_le_bytes(seed),
        Err(e) => {
            logger::warn!("no randomness from the host ({e}); seeding from the clock");
            hostcalls::now_ms().unwrap_or(0) ^ 0x9e37_79b9_7f4a_7c15
        }
    }
}

/// 64 random bits for a weighted pick.
pub fn random() -> u64 {
    let mut rng = RNG.0.take().unwrap_or_else(|| Rng::new(seed()));
    let bits = rng.next_u64();
    RNG.0.set(Some(rng));
    bits
}

/// One HTTP stream.
pub struct Filter {
    active: Option<Rc<Active>>,
    /// `stat_index` of the destination that served the request, for the debug header.
    served: Option<u32>,
    /// The cookie this request's response gets, if the filter issued one.
    cookie: Option<Issued>,
    /// Response headers were seen (a guarded destination's stream that
    /// ends without them counts as an error).
    responded: bool,
    /// Whether the guards count this request's answer, and its time
    /// (decided with the request: a baseline's answers are sampled).
    counted: Option<bool>,
}

impl Filter {
    pub fn new(active: Option<Rc<Active>>) -> Self {
        Filter {
            active,
            served: None,
            cookie: None,
            responded: false,
            counted: None,
        }
    }
}

impl Drop for Filter {
    /// The stream is over (`proxy_on_delete`): a guarded request that never
    /// saw response headers counts as an error.
    fn drop(&mut self) {
        if let (Some(active), Some(served), Some(_), false) =
            (&self.active, self.served, self.counted, self.responded)
        {
            if let (Some(g), Some(rules)) = (&active.guard, &active.rules) {
                if g.on_response(&rules.set, served, None, None) {
                    active.show_weights();
                }
            }
        }
    }
}

/// A key issued to a request, and the rule whose cookie carries it.
struct Issued {
    service: u32,
    rule: u32,
    key: Key,
    /// The request came over plain HTTP (`:scheme` `http`).
    over_http: bool,
}

/// Fresh random bits for a cookie key, from the host (WASI `random_get`);
/// none if it fails, and the request gets the random split, no cookie.
fn fresh_bits(active: &Active) -> Option<[u8; 16]> {
    let mut bits = [0u8; 16];
    match hostcalls::random(&mut bits) {
        Ok(()) => Some(bits),
        Err(e) => {
            bump(active.global.host_call_errors);
            logger::debug!("random_get failed ({e}): no cookie for this request");
            None
        }
    }
}

/// Adds the `Set-Cookie` header of an issued key to the response (one
/// more header: the upstream's own `Set-Cookie` headers stay).
fn set_cookie(active: &Active, issued: &Issued) {
    let Some(issuer) = active.rules.as_ref().and_then(|r| {
        r.set
            .services()
            .get(issued.service as usize)?
            .rules
            .get(issued.rule as usize)?
            .route
            .issuer()
    }) else {
        return;
    };
    if issued.over_http && issuer.secure() {
        secure_over_http(active);
    }
    let mut buf = [0u8; MAX_SET_COOKIE_LEN];
    let value = issuer.render(&issued.key, &mut buf);
    if let Err(s) = hostcalls::add_header(Map::Response, "set-cookie", value) {
        host_error(active, "proxy_add_header_map_value (set-cookie)", s);
    }
}

/// A `Secure` cookie issued over plain HTTP: a browser on a host other
/// than `localhost` drops it, so every request of it gets a new key and
/// the random split. Counted, and warned once per configuration.
#[inline(never)]
fn secure_over_http(active: &Active) {
    bump(active.global.secure_cookie_over_http);
    if !active.warned_secure_over_http.replace(true) {
        logger::warn!("Secure sticky cookie issued over http: browsers drop it (see canary_router.secure_cookie_over_http)");
    }
}

/// A decimal header value (`None` if not one).
fn number(v: &[u8]) -> Option<u64> {
    v.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
    })
}

/// The status of the response being handled and, with `timed`, the
/// router's time from sending the request to the response headers
/// (`x-envoy-upstream-service-time`, absent on Envoy's own replies): one
/// host call either way. The status is `None` if unreadable.
fn response_figures(timed: bool) -> (Option<u64>, Option<u64>) {
    if !timed {
        let status = hostcalls::header_value(Map::Response, ":status").ok();
        return (status.and_then(|v| number(v.as_slice())), None);
    }
    let Ok(buf) = hostcalls::header_pairs(Map::Response) else {
        return (None, None);
    };
    let pairs = Pairs::parse(buf.as_slice());
    let get = |name| pairs.as_ref().and_then(|p| p.get(name)).and_then(number);
    (get(":status"), get("x-envoy-upstream-service-time"))
}

/// The request as the rules see it: the header map, and the client address
/// and the port the request arrived on, fetched only if a rule asks.
struct Request<'b> {
    pairs: Pairs<'b>,
    source: OnceCell<Option<HostBytes>>,
    port: OnceCell<Option<u16>>,
    active: &'b Active,
}

impl RequestView for Request<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.pairs.get(name)
    }

    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        self.pairs.any_value(name, f)
    }

    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        self.pairs.for_each_of_len(lengths, f);
        true
    }

    fn source_address(&self) -> Option<&[u8]> {
        self.source
            .get_or_init(|| match hostcalls::property_at(b"source\0address") {
                Ok(bytes) => Some(bytes),
                Err(Status::NOT_FOUND) => None,
                Err(s) => {
                    host_error(self.active, "proxy_get_property(source.address)", s);
                    None
                }
            })
            .as_ref()
            .map(HostBytes::as_slice)
            .filter(|a| !a.is_empty())
    }

    fn local_port(&self) -> Option<u16> {
        *self.port.get_or_init(|| {
            // Envoy answers an int64 attribute as 8 little-endian bytes.
            match hostcalls::property_at(b"destination\0port") {
                Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                    Ok(b) => u16::try_from(i64::from_le_bytes(b)).ok().filter(|p| *p > 0),
                    Err(_) => None,
                },
                Err(Status::NOT_FOUND) => None,
                Err(s) => {
                    host_error(self.active, "proxy_get_property(destination.port)", s);
                    None
                }
            }
        })
    }
}

/// Counts a failed host call and logs it at debug level (it may repeat per request).
fn host_error(active: &Active, call: &str, status: Status) {
    bump(active.global.host_call_errors);
    logger::debug!("{call} failed: {status}; the request continues as Envoy routes it");
}

/// When the request cannot be read, a client's copy of the route header
/// cannot be seen either: remove it blindly, so that an unreadable request
/// is never steered by the client (it goes where Envoy's default route says).
fn scrub(active: &Active) {
    let header = &*active.settings.route_header;
    match hostcalls::remove_header(Map::Request, header) {
        Ok(()) => clear_route_cache(active),
        Err(s) => host_error(active, "proxy_remove_header_map_value", s),
    }
    bump(active.global.passthrough);
}

fn clear_route_cache(active: &Active) {
    // Envoy >= 1.33 no longer re-selects the route when a wasm filter
    // changes headers; older Envoys do it themselves and lack the function.
    match hostcalls::call_foreign("clear_route_cache", &[]) {
        Ok(_) | Err(Status::NOT_FOUND) => {}
        Err(s) => host_error(active, "clear_route_cache", s),
    }
}

/// Routes one request; returns the `stat_index` of the destination chosen,
/// and the key issued to it.
fn route(active: &Active) -> (Option<u32>, Option<Issued>) {
    let buf = match hostcalls::header_pairs(Map::Request) {
        Ok(buf) => buf,
        Err(s) => {
            host_error(active, "proxy_get_header_map_pairs", s);
            scrub(active);
            return (None, None);
        }
    };
    let Some(pairs) = Pairs::parse(buf.as_slice()) else {
        host_error(
            active,
            "proxy_get_header_map_pairs (malformed map)",
            Status(3),
        );
        scrub(active);
        return (None, None);
    };
    let header = &*active.settings.route_header;
    let spoofed = pairs.contains_ignore_case(header);
    let request = Request {
        pairs,
        source: OnceCell::new(),
        port: OnceCell::new(),
        active,
    };
    let outcome = match &active.rules {
        Some(rules) => {
            let outcome = rules
                .set
                .decide_issuing(&request, random, || fresh_bits(active));
            match &active.guard {
                Some(g) => g.adjust(&rules.set, outcome, &request, random),
                None => outcome,
            }
        }
        None => Outcome::NoService,
    };
    let mut served = None;
    let mut modified = false;
    if let Outcome::Routed(d) = outcome {
        match d.target.via {
            // Envoy's own route goes there: no write, no re-selection
            // (unless a client's copy of the header is removed below).
            Via::DefaultRoute => served = Some(d.target.stat_index),
            Via::RouteHeader => {
                let mut built = Built::default();
                match d.cluster.resolve(|| request.local_port(), &mut built) {
                    // The port is unknown: Envoy's own route serves it
                    // (counted as passed through).
                    None => {
                        logger::debug!(
                            "destination.port unknown: the request stays on Envoy's route"
                        )
                    }
                    Some(name) => match hostcalls::replace_header(Map::Request, header, name) {
                        Ok(()) => {
                            served = Some(d.target.stat_index);
                            modified = true;
                        }
                        Err(s) => host_error(active, "proxy_replace_header_map_value", s),
                    },
                }
            }
        }
    }
    if spoofed {
        bump(active.global.spoofed_header_removed);
        if !modified {
            match hostcalls::remove_header(Map::Request, header) {
                Ok(()) => modified = true,
                Err(s) => host_error(active, "proxy_remove_header_map_value", s),
            }
        }
    }
    if modified {
        clear_route_cache(active);
    }
    match served {
        Some(i) => bump(active.stats.counters.get(i as usize).copied().flatten()),
        None => bump(active.global.passthrough),
    }
    // A cookie only for a request the rule routed.
    let issued = match (served, outcome) {
        (Some(_), Outcome::Routed(d)) => d.issued.map(|key| Issued {
            service: d.service as u32,
            rule: d.rule as u32,
            key,
            over_http: request.pairs.get(":scheme") == Some(b"http"),
        }),
        _ => None,
    };
    (served, issued)
}

impl HttpContext for Filter {
    fn on_request_headers(&mut self) -> Action {
        if let Some(active) = &self.active {
            (self.served, self.cookie) = route(active);
            if let (Some(g), Some(served)) = (&active.guard, self.served) {
                self.counted = g.sample(served);
            }
        }
        Action::Continue
    }

    fn on_response_headers(&mut self) -> Action {
        let Some(active) = &self.active else {
            return Action::Continue;
        };
        if let Some(issued) = self.cookie.take() {
            set_cookie(active, &issued);
        }
        let Some(served) = self.served else {
            return Action::Continue;
        };
        if let (Some(g), Some(rules)) = (&active.guard, &active.rules) {
            if let Some(timed) = self.counted {
                self.responded = true;
                let (status, ms) = response_figures(timed);
                // Unreadable: not an error of the destination's (a 5xx is).
                let status = status.map_or(200, |s| s.min(999) as u32);
                if g.on_response(&rules.set, served, Some(status), ms) {
                    active.show_weights();
                }
            }
        }
        if let (Some(name), Some(value)) = (
            active.settings.debug_header.as_deref(),
            active.debug_values.get(served as usize),
        ) {
            if let Err(s) = hostcalls::replace_header(Map::Response, name, value.as_bytes()) {
                host_error(active, "proxy_replace_header_map_value (response)", s);
            }
        }
        Action::Continue
    }
}
