//! The Envoy configurations compared, the upstream Envoy, and the rule sets.
//!
//! Every Envoy under test has the same bootstrap (node, admin, one listener,
//! the two version clusters); only the route table and the HTTP filter in
//! front of the router differ. The clusters are passed with `--config-yaml`
//! so that they point at the upstream Envoy's real ports (the runner remaps
//! every port written in the main config).

use std::fmt::Write as _;
use std::path::Path;

/// The cluster of the stable version (Istio's name for subset v1).
pub const V1: &str = "outbound|80|v1|backend.default.svc.cluster.local";
/// The cluster of the canary.
pub const V2: &str = "outbound|80|v2|backend.default.svc.cluster.local";
/// The `Host`/`:authority` every request carries.
pub const HOST: &str = "backend.default.svc.cluster.local";
/// The header rule: requests with `x-canary: always` go to v2.
pub const CANARY_HEADER: (&str, &str) = ("x-canary", "always");
/// The header the filters write the chosen cluster into.
pub const ROUTE_HEADER: &str = "x-canary-upstream";
/// The canary's share of the split.
pub const V2_SHARE: f64 = 0.10;
/// Listener port of the Envoy under test, as written (the runner remaps it).
pub const LISTENER_PORT: u16 = 10000;
/// The sticky rows' key: every request of their load carries this header
/// with one user's value ([`StickyUser::key`]), so that both the native
/// hash policy and canary-router hash a key on every request.
pub const STICKY_HEADER: &str = "x-user-id";
/// Listener ports of the upstream Envoy, as written.
pub const UPSTREAM_PORTS: [(u16, &str); 2] = [(10101, "v1"), (10102, "v2")];

/// What runs in front of the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No filter: the route table decides (`weighted_clusters` + header route).
    Native,
    /// Envoy's Lua filter makes the same decision.
    Lua,
    /// The Lua filter leaving v1 to the default route, as canary-router
    /// does with `defaultDestination`: it writes the header only for v2.
    LuaDefaultRoute,
    /// The wasm floor's module making no host call: only the VM contexts of
    /// a stream (Envoy's default route takes every request to v1).
    WasmEmpty,
    /// The wasm floor's header read alone: one host call reads every
    /// request header, nothing is written (Envoy's default route takes
    /// every request to v1).
    WasmReadOnly,
    /// The wasm floor without its header read: writes the cluster header
    /// and clears the route cache.
    WasmNoRead,
    /// The minimal wasm module: reads the headers, writes v1 or (every tenth request) v2.
    WasmFloor,
    /// canary-router with this many rules, the matching one last.
    CanaryRouter { rules: usize },
    /// canary-router (2 rules) without `defaultDestination`: it writes the
    /// route header and re-selects the route for every request, like the
    /// wasm floor and Lua.
    CanaryRouterEveryRequest,
    /// canary-router (2 rules) whose destinations name no port, without
    /// `defaultDestination`, as `canaryctl render --glue` deploys them
    /// (`portlessDestinations: glue`): it writes `outbound||<subset>|<host>`
    /// and the route table's glue routes, one per value, send each to the
    /// cluster of the listener's port (see [`clusters_json`]).
    CanaryRouterPortless,
    /// The same rules in the default `portlessDestinations: requestPort`:
    /// for every request the filter reads the port the request arrived on
    /// (`destination.port`) and builds the cluster name with it; the route
    /// table routes by `cluster_header`, as for the other rows.
    CanaryRouterPortlessRequestPort,
    /// canary-router as deployed (2 rules, `defaultDestination`) with a
    /// guard on v2 of the split: every v2 answer is counted (its `:status`
    /// read) and flushed to shared data in batches; the upstreams never
    /// fail, so nothing is ejected.
    CanaryRouterGuard,
    /// canary-router as deployed (2 rules, `defaultDestination`) with a
    /// `ramp` on the split, in its first step (10%, the route's own share)
    /// for a day: each request reads the step's weights; ticks are due at
    /// most once a minute.
    CanaryRouterRamp,
    /// canary-router as deployed with a guard on the split's v2 judged
    /// against v1 (`baseline`, `maxLatencyRatio`): every answer of both is
    /// counted, its `:status` and `x-envoy-upstream-service-time` read, and
    /// flushed with its response time's bin; nothing is ejected.
    CanaryRouterBaseline,
    /// canary-router as the Envoy dynamic module (`module/`, a native .so)
    /// with this many rules: the canary-router row's configuration, run as
    /// the runner's `Build::Module` (the wasm filter rewritten into a
    /// `DynamicModuleFilter` with the same rule JSON).
    CanaryRouterModule { rules: usize },
    /// Envoy's native sticky weighted split: the routes of [`Kind::Native`]
    /// (istiod's route action included), the split's `weighted_clusters`
    /// with `use_hash_policy` and a header hash policy on [`STICKY_HEADER`]
    /// (Envoy 1.36+). The sticky anchor; its load is this user's.
    NativeSticky(StickyUser),
    /// The dynamic module with the 2 rules of [`Kind::CanaryRouterModule`],
    /// the split sticky by [`STICKY_HEADER`] ([`rules_json_sticky`]); its
    /// load is this user's.
    CanaryRouterModuleSticky(StickyUser),
    /// The module's second placement: the same decision at a route's
    /// cluster specifier (`module/src/specifier.rs`, in the shipped `.so`),
    /// with the rules of [`Kind::CanaryRouterModule`] (2 rules, v1 the
    /// `defaultDestination`): the route selects the cluster while it is
    /// resolved, with no filter, no header and no re-selection.
    CanaryRouterModuleSpecifier,
    /// The cluster specifier with the sticky rules of
    /// [`Kind::CanaryRouterModuleSticky`] ([`rules_json_sticky`]); its load
    /// is this user's. Both users cost it one decision and no re-selection:
    /// the user only changes the cluster it names.
    CanaryRouterModuleSpecifierSticky(StickyUser),
    /// Any module, with its plugin configuration (`canary-bench compare`);
    /// routed by the cluster header like canary-router.
    Module {
        name: String,
        path: std::path::PathBuf,
        config: String,
    },
}

impl Kind {
    /// Short name for tables.
    pub fn name(&self) -> String {
        match self {
            Kind::Native => "native".into(),
            Kind::Lua => "lua".into(),
            Kind::LuaDefaultRoute => "lua, v1 left to the default route".into(),
            Kind::WasmEmpty => "wasm, empty filter".into(),
            Kind::WasmReadOnly => "wasm, header read only".into(),
            Kind::WasmNoRead => "wasm floor, no header read".into(),
            Kind::WasmFloor => "wasm floor".into(),
            Kind::CanaryRouter { rules: 2 } => "canary-router".into(),
            Kind::CanaryRouter { rules } => format!("canary-router, {rules} rules"),
            Kind::CanaryRouterEveryRequest => "canary-router, header on every request".into(),
            Kind::CanaryRouterPortless => "canary-router, port-less destinations".into(),
            Kind::CanaryRouterPortlessRequestPort => {
                "canary-router, port-less, request port".into()
            }
            Kind::CanaryRouterGuard => "canary-router with a guard".into(),
            Kind::CanaryRouterRamp => "canary-router with a ramp".into(),
            Kind::CanaryRouterBaseline => "canary-router, guard with baseline".into(),
            Kind::CanaryRouterModule { rules: 2 } => "canary-router, dynamic module".into(),
            Kind::CanaryRouterModule { rules } => {
                format!("canary-router, dynamic module, {rules} rules")
            }
            Kind::NativeSticky(u) => format!("native, sticky (use_hash_policy), {}", u.name()),
            Kind::CanaryRouterModuleSticky(u) => {
                format!("canary-router, dynamic module, sticky, {}", u.name())
            }
            Kind::CanaryRouterModuleSpecifier => {
                "canary-router, dynamic module, cluster specifier".into()
            }
            Kind::CanaryRouterModuleSpecifierSticky(u) => {
                format!(
                    "canary-router, dynamic module, cluster specifier, sticky, {}",
                    u.name()
                )
            }
            Kind::Module { name, .. } => name.clone(),
        }
    }

    /// Whether this is the dynamic module (compared with native routing).
    pub fn is_module(&self) -> bool {
        matches!(
            self,
            Kind::CanaryRouterModule { .. }
                | Kind::CanaryRouterModuleSticky(_)
                | Kind::CanaryRouterModuleSpecifier
                | Kind::CanaryRouterModuleSpecifierSticky(_)
        )
    }

    /// Whether the module sits at the route's cluster specifier (its route
    /// loads the `.so` by path).
    pub fn is_specifier(&self) -> bool {
        matches!(
            self,
            Kind::CanaryRouterModuleSpecifier | Kind::CanaryRouterModuleSpecifierSticky(_)
        )
    }

    /// A header every request of this configuration's load carries.
    pub fn load_header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::NativeSticky(u)
            | Kind::CanaryRouterModuleSticky(u)
            | Kind::CanaryRouterModuleSpecifierSticky(u) => Some((STICKY_HEADER, u.key())),
            _ => None,
        }
    }

    /// Whether the configuration has the `x-canary: always` rule (canary-router
    /// with one rule has only the split).
    pub fn has_header_rule(&self) -> bool {
        match self {
            Kind::WasmEmpty
            | Kind::WasmReadOnly
            | Kind::WasmNoRead
            | Kind::WasmFloor
            | Kind::Module { .. } => false,
            Kind::CanaryRouter { rules } | Kind::CanaryRouterModule { rules } => *rules >= 2,
            _ => true,
        }
    }

    /// Whether the configuration splits the traffic 90/10 (the empty
    /// filter and the header read alone route nothing).
    pub fn splits(&self) -> bool {
        !matches!(self, Kind::WasmEmpty | Kind::WasmReadOnly)
    }
}

/// The sticky comparison's pairs: `use_hash_policy` under each user, then
/// each placement of the module under the same user.
pub fn sticky_pairs() -> Vec<[Kind; 2]> {
    STICKY_PLACEMENTS
        .iter()
        .flat_map(|(_, module)| StickyUser::BOTH.map(|u| [Kind::NativeSticky(u), module(u)]))
        .collect()
}

/// A sticky row's kind for a given user.
pub type StickyKind = fn(StickyUser) -> Kind;

/// The module's two placements with the split sticky by header, each named.
pub const STICKY_PLACEMENTS: [(&str, StickyKind); 2] = [
    ("HTTP filter", Kind::CanaryRouterModuleSticky),
    ("cluster specifier", Kind::CanaryRouterModuleSpecifierSticky),
];

/// Which user a sticky row's load is: every request carries one user's
/// key, so each row measures one of the two paths a sticky split's users
/// take; a population split 90/10 costs the mix of the two
/// ([`StickyUser::share`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StickyUser {
    /// A user the module's split keeps on v1, the `defaultDestination`:
    /// the filter writes nothing and Envoy's first route selection stands.
    Stable,
    /// A user the split sends to v2: the route header is written and the
    /// route selected again (the dearest path).
    Canary,
}

impl StickyUser {
    /// Both, the stable one first.
    pub const BOTH: [StickyUser; 2] = [StickyUser::Stable, StickyUser::Canary];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            StickyUser::Stable => "a user on v1",
            StickyUser::Canary => "a user on v2",
        }
    }

    /// The share of a population's users this one stands for (the split's
    /// weights).
    pub fn share(self) -> f64 {
        match self {
            StickyUser::Stable => 1.0 - V2_SHARE,
            StickyUser::Canary => V2_SHARE,
        }
    }

    /// The population's split as the weights give it, `"90/10"`: the stable
    /// user's share, then the canary user's, in percent.
    pub fn split_label() -> String {
        format!(
            "{:.0}/{:.0}",
            100.0 * StickyUser::Stable.share(),
            100.0 * StickyUser::Canary.share()
        )
    }

    /// What a population of users split as the weights makes of a per-user
    /// value: the sum of each user's value times its share; none unless
    /// every user has one.
    pub fn population(value: impl Fn(StickyUser) -> Option<f64>) -> Option<f64> {
        StickyUser::BOTH
            .iter()
            .try_fold(0.0, |sum, &u| Some(sum + u.share() * value(u)?))
    }

    /// The user's key: the first `user-NNNN` the module's sticky split
    /// ([`rules_json_sticky`], decided by the core itself) sends to this
    /// user's version.
    pub fn key(self) -> &'static str {
        static KEYS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            let json = rules_json_sticky();
            let set = canary_router::Plugin::from_bytes(json.as_bytes(), &Default::default())
                .ok()
                .and_then(|p| p.rules)
                .map(|r| r.set);
            let find = |want: usize| {
                (0..10_000)
                    .map(|i| format!("user-{i:04}"))
                    .find(|key| set.as_ref().and_then(|s| sticky_destination(s, key)) == Some(want))
                    .unwrap_or_default()
            };
            [find(0), find(1)]
        });
        &keys[self as usize]
    }
}

/// The index (0: v1, 1: v2) of the destination the sticky split of `set`
/// ([`rules_json_sticky`], compiled) sends a request with this key to.
fn sticky_destination(set: &canary_router::RuleSet, key: &str) -> Option<usize> {
    use canary_router::adapters::proxy_wasm::pairs::{serialize, Pairs};
    let buf = serialize(vec![
        (&b":authority"[..], HOST.as_bytes()),
        (b":path", b"/"),
        (STICKY_HEADER.as_bytes(), key.as_bytes()),
    ]);
    let pairs = Pairs::parse(&buf)?;
    let mut random = 0u64;
    let outcome = set.decide(&pairs, || {
        random = random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        random
    });
    outcome
        .decision()
        .filter(|d| d.sticky)
        .map(|d| d.destination)
}

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// The upstream Envoy: one listener per version, each answering `v1`/`v2`
/// with `direct_response`.
pub fn upstream_yaml() -> String {
    let mut listeners = String::new();
    for (port, version) in UPSTREAM_PORTS {
        let _ = write!(
            listeners,
            r#"
  - name: backend_{version}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: backend_{version}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: "{version}\n" }} }}
                response_headers_to_add: [{{ header: {{ key: x-version, value: {version} }} }}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}"#
        );
    }
    format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9901 }} }}\nstatic_resources:\n  listeners:{listeners}\n"
    )
}

/// The cluster of `subset` for a request that arrived on `port`.
pub fn cluster_name(port: u16, subset: &str) -> String {
    format!("outbound|{port}|{subset}|{HOST}")
}

/// `--config-yaml` for an Envoy under test: the two version clusters, at the
/// upstream Envoy's real ports, named for port 80 ([`V1`], [`V2`]) and also
/// for `listener_port`, the port the listener binds: that is the port a
/// destination without a port takes ([`Kind::CanaryRouterPortless`]). Every
/// configuration gets the same four clusters.
pub fn clusters_json(listener_port: u16, v1_port: u16, v2_port: u16) -> String {
    let cluster = |name: &str, port: u16| {
        serde_json::json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                    "socket_address": { "address": "127.0.0.1", "port_value": port }
                }}}]}]
            }
        })
    };
    serde_json::json!({
        "static_resources": { "clusters": [
            cluster(V1, v1_port),
            cluster(V2, v2_port),
            cluster(&cluster_name(listener_port, "v1"), v1_port),
            cluster(&cluster_name(listener_port, "v2"), v2_port)
        ] }
    })
    .to_string()
}

/// The Lua script: the header rule, then a weighted random pick; write the
/// cluster header and re-select the route (with `every_request` false, only
/// for v2: v1 is the default route's).
pub fn lua_script(every_request: bool) -> String {
    let (name, value) = CANARY_HEADER;
    let percent = (V2_SHARE * 100.0).round() as u32;
    // The decision both scripts make: v2 for the header rule and 10% of the rest.
    let to_v2 = format!(r#"headers:get("{name}") == "{value}" or math.random(100) <= {percent}"#);
    if every_request {
        format!(
            r#"function envoy_on_request(handle)
  local headers = handle:headers()
  local cluster = "{V1}"
  if {to_v2} then
    cluster = "{V2}"
  end
  headers:replace("{ROUTE_HEADER}", cluster)
  handle:clearRouteCache()
end
"#
        )
    } else {
        format!(
            r#"function envoy_on_request(handle)
  local headers = handle:headers()
  if {to_v2} then
    headers:replace("{ROUTE_HEADER}", "{V2}")
    handle:clearRouteCache()
  end
end
"#
        )
    }
}

/// What the rules before the matching one look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Filler {
    /// Exact matches on four headers the traffic does not carry.
    Header,
    /// `uri.prefix` matches the traffic's path does not start with.
    Prefix,
}

impl Filler {
    /// The command-line spelling (clap's, from the variant's name).
    pub fn arg(self) -> &'static str {
        match self {
            Filler::Header => "header",
            Filler::Prefix => "prefix",
        }
    }
}

/// canary-router's plugin configuration with `n` rules (n >= 1): the header
/// rule first (n >= 2), then `n - 2` rules that never match the benchmark's
/// traffic (exact matches on four other headers), then the 90/10 split,
/// which matches every request: a request without `x-canary` runs through
/// every rule before it is routed. v1 is the `defaultDestination`, as in an
/// Istio mesh whose VirtualService's last route goes to v1
/// (`wasmplugin/route-virtualservice.yaml`).
pub fn rules_json(n: usize) -> String {
    rules_json_with(n, Filler::Header)
}

/// [`rules_json`] with another kind of non-matching rule.
pub fn rules_json_with(n: usize, filler: Filler) -> String {
    rules_json_inner(n, filler, true)
}

/// [`rules_json`] without `defaultDestination`: the filter writes the route
/// header and re-selects the route for every request, v1 included, as the
/// wasm floor and Lua do.
pub fn rules_json_every_request(n: usize) -> String {
    rules_json_inner(n, Filler::Header, false)
}

/// [`rules_json`] (2 rules, v1 the `defaultDestination`) with the split
/// sticky by [`STICKY_HEADER`]: a user the split keeps on v1 costs the
/// filter no header and no second route selection; a user it sends to v2
/// costs both ([`StickyUser`]).
pub fn rules_json_sticky() -> String {
    let mut v: serde_json::Value = serde_json::from_str(&rules_json(2)).unwrap_or_default();
    if let Some(split) = v["services"][0]["http"]
        .as_array_mut()
        .and_then(|h| h.last_mut())
    {
        split["sticky"] = serde_json::json!({ "header": STICKY_HEADER });
    }
    v.to_string()
}

/// [`rules_json`] (2 rules) with a guard on the split's v2.
pub fn rules_json_guard() -> String {
    rules_json_guarded(
        serde_json::json!({"maxErrorRate": 0.05, "minRequests": 100, "interval": "30s"}),
    )
}

/// [`rules_json`] (2 rules) with a guard on the split's v2 that judges it
/// against v1, errors and latency.
pub fn rules_json_baseline() -> String {
    rules_json_guarded(serde_json::json!({
        "baseline": "v1", "maxErrorRate": 0.05, "maxLatencyRatio": 2.0,
        "minRequests": 100, "interval": "30s"
    }))
}

/// [`rules_json`] (2 rules) with a ramp on the split: v2 at 10% (its own
/// share) from a minute ago for a day, then 50%.
pub fn rules_json_ramp() -> String {
    let mut v: serde_json::Value = serde_json::from_str(&rules_json(2)).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if let Some(rule) = v["services"][0]["http"]
        .as_array_mut()
        .and_then(|h| h.last_mut())
    {
        rule["ramp"] = serde_json::json!({
            "canary": "v2",
            "start": canary_router::domain::ramp::format_time(now - 60_000),
            "steps": [{"setWeight": 10}, {"pause": {"duration": "24h"}}, {"setWeight": 50}]
        });
    }
    v.to_string()
}

fn rules_json_guarded(guard: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&rules_json(2)).unwrap_or_default();
    if let Some(route) = v["services"][0]["http"]
        .as_array_mut()
        .and_then(|h| h.last_mut())
        .and_then(|r| r["route"].as_array_mut())
    {
        for d in route
            .iter_mut()
            .filter(|d| d["destination"]["subset"] == "v2")
        {
            d["guard"] = guard.clone();
        }
    }
    v.to_string()
}

/// [`rules_json_every_request`] with destinations that name no port: with
/// `glue`, written port-less for the glue routes (`portlessDestinations:
/// glue`), else they take the port the request arrived on.
pub fn rules_json_portless(n: usize, glue: bool) -> String {
    let json = rules_json_inner(n, Filler::Header, false);
    let json = json.replace(r#","port":{"number":80}"#, "");
    if glue {
        json.replacen('{', r#"{"portlessDestinations":"glue","#, 1)
    } else {
        json
    }
}

fn rules_json_inner(n: usize, filler: Filler, default_route: bool) -> String {
    let dest = |subset: &str| serde_json::json!({ "host": HOST, "subset": subset, "port": { "number": 80 } });
    let mut http = Vec::with_capacity(n);
    if n >= 2 {
        let (name, value) = CANARY_HEADER;
        http.push(serde_json::json!({
            "name": "canary-header",
            "match": [{ "headers": { name: { "exact": value } } }],
            "route": [{ "destination": dest("v2") }]
        }));
    }
    let headers = ["x-user", "x-tenant", "x-region", "x-build"];
    for i in 0..n.saturating_sub(2) {
        let matches = match filler {
            Filler::Header => {
                let header = headers[i % headers.len()];
                serde_json::json!([{ "headers": { header: { "exact": format!("value-{i}") } } }])
            }
            Filler::Prefix => serde_json::json!([{ "uri": { "prefix": format!("/filler-{i}/") } }]),
        };
        http.push(serde_json::json!({
            "name": format!("filler-{i}"),
            "match": matches,
            "route": [{ "destination": dest("v2") }]
        }));
    }
    let v1 = (100.0 * (1.0 - V2_SHARE)).round() as u32;
    http.push(serde_json::json!({
        "name": "split",
        "route": [
            { "destination": dest("v1"), "weight": v1 },
            { "destination": dest("v2"), "weight": 100 - v1 }
        ]
    }));
    let mut service = serde_json::json!({ "hosts": [HOST], "http": http });
    if default_route {
        // The route table's `default` route goes to v1 (see
        // `under_test_yaml`): decisions for v1 are left to it.
        service["defaultDestination"] = dest("v1");
    }
    serde_json::json!({
        "routeHeader": ROUTE_HEADER,
        "namespace": "default",
        "services": [service]
    })
    .to_string()
}

/// What istiod puts on every route it builds besides the cluster (no route
/// timeout, Istio's default retry policy): on every route of every row, so
/// that the native row is shaped as istiod shapes it and the glue routes
/// cost what a routed request keeps.
const ISTIOD_ACTION: &str = r#"timeout: 0s, max_grpc_timeout: 0s, retry_policy: { retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", num_retries: 2, retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }], host_selection_retry_max_attempts: 5 }"#;

/// The Envoy under test for one configuration. `wasm` is the module for the
/// wasm kinds; `listener_port` is the port its listener binds (the glue
/// routes of [`Kind::CanaryRouterPortless`] send to that port's clusters).
pub fn under_test_yaml(kind: &Kind, wasm: Option<&Path>, listener_port: u16) -> String {
    let (name, value) = CANARY_HEADER;
    let routes = match kind {
        // What an Istio VirtualService with a header match and a 90/10 split
        // compiles to.
        Kind::Native => format!(
            r#"
              - name: canary-header
                match: {{ prefix: /, headers: [{{ name: {name}, string_match: {{ exact: {value} }} }}] }}
                route: {{ cluster: "{V2}", {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}
              - name: split
                match: {{ prefix: / }}
                route: {{ weighted_clusters: {{ clusters: [{{ name: "{V1}", weight: {w1} }}, {{ name: "{V2}", weight: {w2} }}] }}, {ISTIOD_ACTION} }}
                decorator: {{ operation: "backend:80/*" }}"#,
            w1 = (100.0 * (1.0 - V2_SHARE)).round() as u32,
            w2 = (100.0 * V2_SHARE).round() as u32,
        ),
        // Envoy's sticky weighted split: the same routes, the split hashed on
        // the user's header (WeightedCluster.use_hash_policy).
        Kind::NativeSticky(_) => format!(
            r#"
              - name: canary-header
                match: {{ prefix: /, headers: [{{ name: {name}, string_match: {{ exact: {value} }} }}] }}
                route: {{ cluster: "{V2}", {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}
              - name: split
                match: {{ prefix: / }}
                route: {{ hash_policy: [{{ header: {{ header_name: {STICKY_HEADER} }} }}], weighted_clusters: {{ use_hash_policy: true, clusters: [{{ name: "{V1}", weight: {w1} }}, {{ name: "{V2}", weight: {w2} }}] }}, {ISTIOD_ACTION} }}
                decorator: {{ operation: "backend:80/*" }}"#,
            w1 = (100.0 * (1.0 - V2_SHARE)).round() as u32,
            w2 = (100.0 * V2_SHARE).round() as u32,
        ),
        // The module's decision at the route's cluster specifier.
        Kind::CanaryRouterModuleSpecifier => specifier_route(&rules_json(2), wasm),
        Kind::CanaryRouterModuleSpecifierSticky(_) => specifier_route(&rules_json_sticky(), wasm),
        // What `canaryctl render --glue` inserts for port-less rules: one
        // route per value, to the cluster of this listener's port.
        Kind::CanaryRouterPortless => {
            let mut routes = String::new();
            for subset in ["v1", "v2"] {
                let _ = write!(
                    routes,
                    r#"
              - name: canary-router-{subset}
                match: {{ prefix: /, headers: [{{ name: {ROUTE_HEADER}, string_match: {{ exact: "outbound||{subset}|{HOST}" }} }}] }}
                route: {{ cluster: "{cluster}", {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}"#,
                    cluster = cluster_name(listener_port, subset)
                );
            }
            format!(
                r#"{routes}
              - name: default
                match: {{ prefix: / }}
                route: {{ cluster: "{V1}", {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}"#
            )
        }
        _ => format!(
            r#"
              - name: chosen
                match: {{ prefix: /, headers: [{{ name: {ROUTE_HEADER}, present_match: true }}] }}
                route: {{ cluster_header: {ROUTE_HEADER}, {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}
              - name: default
                match: {{ prefix: / }}
                route: {{ cluster: "{V1}", {ISTIOD_ACTION} }}
                decorator: {{ operation: "{HOST}:80/*" }}"#
        ),
    };
    let wasm_path = wasm.map(|p| p.display().to_string()).unwrap_or_default();
    let filter = match kind {
        Kind::Native
        | Kind::NativeSticky(_)
        | Kind::CanaryRouterModuleSpecifier
        | Kind::CanaryRouterModuleSpecifierSticky(_) => String::new(),
        Kind::Lua | Kind::LuaDefaultRoute => {
            let script: String = lua_script(*kind == Kind::Lua)
                .lines()
                .map(|l| format!("                  {l}\n"))
                .collect();
            format!(
                r#"
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
{script}"#
            )
        }
        Kind::WasmEmpty => wasm_filter("wasm-floor", &wasm_path, "empty"),
        Kind::WasmReadOnly => wasm_filter("wasm-floor", &wasm_path, "read-only"),
        Kind::WasmNoRead => wasm_filter("wasm-floor", &wasm_path, "no-read"),
        Kind::WasmFloor => wasm_filter("wasm-floor", &wasm_path, "{}"),
        Kind::CanaryRouter { rules } | Kind::CanaryRouterModule { rules } => {
            wasm_filter("canary-router", &wasm_path, &rules_json(*rules))
        }
        Kind::CanaryRouterEveryRequest => {
            wasm_filter("canary-router", &wasm_path, &rules_json_every_request(2))
        }
        Kind::CanaryRouterPortless => {
            wasm_filter("canary-router", &wasm_path, &rules_json_portless(2, true))
        }
        Kind::CanaryRouterPortlessRequestPort => {
            wasm_filter("canary-router", &wasm_path, &rules_json_portless(2, false))
        }
        Kind::CanaryRouterGuard => wasm_filter("canary-router", &wasm_path, &rules_json_guard()),
        Kind::CanaryRouterModuleSticky(_) => {
            wasm_filter("canary-router", &wasm_path, &rules_json_sticky())
        }
        Kind::CanaryRouterRamp => wasm_filter("canary-router", &wasm_path, &rules_json_ramp()),
        Kind::CanaryRouterBaseline => {
            wasm_filter("canary-router", &wasm_path, &rules_json_baseline())
        }
        Kind::Module { config, .. } => wasm_filter("module", &wasm_path, config),
    };
    format!(
        r#"node:
  id: sidecar~127.0.0.1~frontend-v1-0.default~default.svc.cluster.local
  cluster: frontend.default
  metadata: {{ NAMESPACE: default, LABELS: {{ app: frontend, version: v1 }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9901 }} }}
static_resources:
  listeners:
  - name: outbound_80
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {LISTENER_PORT} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: outbound_80
          route_config:
            name: "80"
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:{routes}
          http_filters:{filter}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
"#
    )
}

/// The one route of the cluster specifier's rows: istiod's route action,
/// its cluster chosen by the module (`so`) with these rules.
fn specifier_route(rules: &str, so: Option<&Path>) -> String {
    let config = serde_json::to_string(rules).unwrap_or_default();
    format!(
        r#"
              - name: canary-router
                match: {{ prefix: / }}
                decorator: {{ operation: "{HOST}:80/*" }}
                route: {{ {ISTIOD_ACTION}, inline_cluster_specifier_plugin: {{ extension: {{ name: canary-router, typed_config: {{
                  "@type": type.googleapis.com/envoy.extensions.router.cluster_specifiers.dynamic_modules.v3.DynamicModuleClusterSpecifier,
                  dynamic_module_config: {{ module: {{ local: {{ filename: "{path}" }} }} }},
                  specifier_name: canary-router,
                  specifier_config: {{ "@type": type.googleapis.com/google.protobuf.StringValue, value: {config} }} }} }} }} }}"#,
        path = so.map(|p| p.display().to_string()).unwrap_or_default(),
    )
}

fn wasm_filter(name: &str, path: &str, configuration: &str) -> String {
    let config = serde_json::to_string(configuration).unwrap_or_default();
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{path}" }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_router::{Plugin, Workload};

    #[test]
    fn every_rule_set_compiles_with_the_split_last() {
        for n in [1, 2, 10, 100, 1000] {
            let json = rules_json(n);
            let plugin = Plugin::from_bytes(json.as_bytes(), &Workload::default())
                .unwrap_or_else(|e| panic!("{n} rules: {e}"));
            let set = plugin.rules.unwrap().set;
            let rules = &set.services()[0].rules;
            assert_eq!(rules.len(), n);
            assert_eq!(&*rules[n - 1].name, "split");
        }
        let json = rules_json_sticky();
        let plugin = Plugin::from_bytes(json.as_bytes(), &Workload::default()).unwrap();
        let set = plugin.rules.unwrap().set;
        assert_eq!(set.destination_count(), 3);
        assert!(
            json.contains(r#""sticky":{"header":"x-user-id"}"#),
            "{json}"
        );
        // Each sticky user's key goes where its name says, and the rules
        // leave v1 to the default route (its requests write nothing).
        assert!(json.contains(r#""defaultDestination""#), "{json}");
        let keys = StickyUser::BOTH.map(StickyUser::key);
        assert!(keys.iter().all(|k| k.starts_with("user-")), "{keys:?}");
        assert_eq!(sticky_destination(&set, keys[0]), Some(0));
        assert_eq!(sticky_destination(&set, keys[1]), Some(1));
        let json = rules_json_guard();
        let plugin = Plugin::from_bytes(json.as_bytes(), &Workload::default()).unwrap();
        let set = plugin.rules.unwrap().set;
        let guarded: Vec<_> = set
            .all_destinations()
            .filter(|(_, _, d)| d.guard.is_some())
            .map(|(_, r, d)| (r.name.to_string(), d.label.to_string()))
            .collect();
        assert_eq!(guarded, [("split".to_string(), "v2".to_string())]);
        for json in [rules_json_ramp(), rules_json_baseline()] {
            let plugin = Plugin::from_bytes(json.as_bytes(), &Workload::default())
                .unwrap_or_else(|e| panic!("{e}: {json}"));
            let set = plugin.rules.unwrap().set;
            let split = set.services()[0].rules.last().unwrap();
            assert!(split.route.ramp().is_some() || split.route.destinations[1].guard.is_some());
        }
        for glue in [false, true] {
            let json = rules_json_portless(2, glue);
            let plugin = Plugin::from_bytes(json.as_bytes(), &Workload::default()).unwrap();
            let set = plugin.rules.unwrap().set;
            assert_eq!(set.destination_count(), 3);
            assert!(set.all_destinations().all(|(_, _, d)| if glue {
                d.cluster.takes_glue_port()
            } else {
                d.cluster.takes_request_port()
            }));
        }
    }

    #[test]
    fn configs_are_yaml() {
        let wasm = Path::new("/tmp/x.wasm");
        for kind in [
            Kind::Native,
            Kind::Lua,
            Kind::WasmFloor,
            Kind::CanaryRouter { rules: 1000 },
            Kind::CanaryRouterPortless,
            Kind::CanaryRouterPortlessRequestPort,
            Kind::CanaryRouterGuard,
            Kind::NativeSticky(StickyUser::Stable),
            Kind::CanaryRouterModuleSticky(StickyUser::Canary),
            Kind::CanaryRouterModuleSpecifier,
            Kind::CanaryRouterModuleSpecifierSticky(StickyUser::Stable),
            Kind::CanaryRouterRamp,
            Kind::CanaryRouterBaseline,
        ] {
            let yaml = under_test_yaml(&kind, Some(wasm), 10080);
            envoy_runner::EnvoyConfig::from_yaml_str(&yaml, "test")
                .unwrap_or_else(|e| panic!("{kind:?}: {e}\n{yaml}"));
        }
        envoy_runner::EnvoyConfig::from_yaml_str(&upstream_yaml(), "up").unwrap();
    }
}
