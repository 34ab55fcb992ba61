//! `canaryctl import`: Istio VirtualServices and Gateway API HTTPRoutes to
//! a canary-router rule file.
//!
//! What carries over: `hosts`, and per `http` route its `name`, `match`
//! (uri, scheme, method, authority, headers, withoutHeaders, port,
//! queryParams, ignoreUriCase, sourceLabels, sourceNamespace), `route`
//! (destination host/subset/port, weight, headers) and its route policies
//! (timeout, retries, headers, rewrite, mirror(s), fault, corsPolicy),
//! which the routing glue applies. Short hosts expand as Istio
//! expands them, against the manifest's namespace. Everything else is named
//! in a warning on stderr (VirtualService and JSON path), never dropped
//! silently; the output is judged by the filter's parser before it is
//! printed.
//!
//! One importer per input kind: [`virtual_service`] (Istio VirtualServices)
//! and [`http_route`] (Gateway API HTTPRoutes, with the Gateways they
//! attach to) turn documents into the rule file's types below; this module
//! holds the command, the output, the overlay ([`overlay`]: what HTTPRoute
//! and VirtualService lack, such as `sticky`, merged into the imported
//! rules) and the check by the filter's parser.

mod http_route;
mod overlay;
mod route_filters;
mod service_entry;
mod virtual_service;

use std::collections::BTreeMap;
use std::path::PathBuf;

use canary_router::schema::config::MatchRequest;
use canary_router::{Plugin, Workload};
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::input;

/// Read Istio VirtualServices and Gateway API HTTPRoutes and print the equivalent rule file.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Read Istio VirtualService manifests (networking.istio.io v1alpha3, v1beta1 and v1; one \
or many `---` separated documents) and print the equivalent canary-router rule file. \
Short hosts expand as Istio expands them: `reviews` in a manifest of namespace `prod` becomes \
`reviews.prod.svc.cluster.local`. The route policies (timeout, retries, headers, rewrite, mirror, \
mirrors, mirrorPercentage, fault, corsPolicy, a destination's headers) are carried into the rules \
as written (the deprecated mirrorPercent as mirrorPercentage), checked as istiod checks them: the \
routing glue of `canaryctl render --glue` applies them. What cannot be carried over (redirect, \
directResponse, delegate, tcp/tls routes, unsupported match fields, VirtualServices and match \
entries bound to gateways only) is named in a warning on stderr with the VirtualService and the \
JSON path; `gateways` absent or empty means the sidecars (`mesh`), as in Istio. Destinations without a port stay without one: the filter gives \
them the port the request arrived on, as Istio does in a sidecar (--port gives the service port \
instead, needed on an ingress gateway; --default-port writes a port into each). Other kinds of \
documents (DestinationRule, Gateway, ...) are skipped with a note; a ServiceEntry is read for its \
hosts' ports: a destination without a port on a ServiceEntry host with one port gets that port, as \
Istio gives it (wildcard hosts such as *.example.org are destinations like any other).\n\n\
Gateway API HTTPRoutes (gateway.networking.k8s.io v1 and v1beta1) in the same files become rules \
that route as Istio routes them (docs/gateway-api.md): one rule per match, ordered by Gateway API's \
precedence per host (exact path, longest prefix, method, most headers, most query parameters, then \
the oldest route, namespace/name and list order); a Service parent gives mesh rules for its host, a \
Gateway parent (its listeners read from a Gateway in the same input) rules for the hostnames its \
listeners accept; an input with routes for more than one kind of proxy (the mesh, a Gateway) is \
refused, and --for chooses one, as Istio applies each route only in its own proxies. The header modifier, URLRewrite and RequestMirror filters, `timeouts` and \
`retry` become the rules' route policies as istiod converts them; other filters are named in \
warnings; a rule Gateway API answers itself (500 for no backend with a weight, a redirect) is left \
to Envoy's own route.\n\n\
--sticky and --overlay add what neither API has (sticky, and any rule field the filter knows) to \
the imported rules. The output is checked with the filter's own parser before it is printed.",
    after_help = "\
Examples:
  canaryctl import reviews-vs.yaml > rules.json
  kubectl get virtualservice -A -o yaml | canaryctl import - -o yaml
  canaryctl import --strict cli/tests/fixtures/virtualservices.yaml
  canaryctl import httproutes.yaml --sticky cookie=session
  canaryctl import httproutes.yaml --overlay overlay.yaml
  canaryctl import routes.yaml --for gateway=shop/edge

Exit codes: 0 imported (warnings on stderr), 1 nothing to import, the result is rejected by the
filter, or --strict and something could not be carried over; 2 the file cannot be read."
)]
pub struct Args {
    /// VirtualService and HTTPRoute manifests (YAML or JSON; `-` reads standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
    /// Namespace of manifests that name none (Istio: the namespace they are applied to).
    #[arg(long, default_value = "default", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Kubernetes cluster domain short hosts expand with.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub cluster_domain: String,
    /// Write this port into every destination that gives none. Without it
    /// (and without --port) such destinations stay port-less and take the
    /// port the request arrives on, as Istio routes them in a sidecar.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub default_port: Option<u16>,
    /// The service port of destinations that give none, as the rules'
    /// `destinationPort` (Istio: the service's only port). Needed for rules
    /// run on an ingress gateway, whose listener port is its own.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Fail (exit 1, no output) when anything cannot be carried over.
    #[arg(long)]
    pub strict: bool,
    /// Keep each user on one destination in every imported rule with more
    /// than one destination: `header=NAME`, `cookie=NAME` or `source-ip`.
    #[arg(long, value_name = "KEY", value_parser = overlay::parse_sticky)]
    pub sticky: Option<Value>,
    /// The proxies the rules are for: `mesh` (the sidecars: VirtualServices
    /// bound to `mesh`, HTTPRoutes with a Service parent) or
    /// `gateway=[NAMESPACE/]NAME` (the proxies of that Gateway API Gateway:
    /// HTTPRoutes with it as parent). Needed when the input has routes for
    /// more than one, as Istio applies each only in its own proxies while
    /// the filter applies its whole rule set wherever it runs.
    #[arg(long = "for", value_name = "PROXIES", value_parser = parse_target)]
    pub target: Option<TargetArg>,
    /// A JSON or YAML overlay merged into the imported rules (JSON merge
    /// patch): `{"rules": {"<rule name>" | "*": {...}}, "services": {"<host>" | "*": {...}}}`.
    /// Any field the filter reads can be given; the filter's parser judges the result.
    #[arg(long, value_name = "FILE")]
    pub overlay: Option<PathBuf>,
}

/// `--for` as given: a Gateway's namespace may be left to `--namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetArg {
    /// `mesh`.
    Mesh,
    /// `gateway=[NAMESPACE/]NAME`.
    Gateway {
        /// The Gateway's namespace, if given.
        namespace: Option<String>,
        /// The Gateway's name.
        name: String,
    },
}

fn parse_target(s: &str) -> std::result::Result<TargetArg, String> {
    if s == "mesh" {
        return Ok(TargetArg::Mesh);
    }
    let bad = || format!("{s:?}: expected `mesh` or `gateway=[NAMESPACE/]NAME`");
    let gateway = s.strip_prefix("gateway=").ok_or_else(bad)?;
    let (namespace, name) = match gateway.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, gateway),
    };
    if name.is_empty() || namespace.is_some_and(str::is_empty) || name.contains('/') {
        return Err(bad());
    }
    Ok(TargetArg::Gateway {
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    })
}

/// The proxies imported rules are for: where Istio applies the routes
/// they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The sidecars.
    Mesh,
    /// The proxies of one Gateway API Gateway.
    Gateway {
        /// The Gateway's namespace.
        namespace: String,
        /// The Gateway's name.
        name: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Mesh => f.write_str("the mesh"),
            Target::Gateway { namespace, name } => write!(f, "Gateway {namespace}/{name}"),
        }
    }
}

/// How `import` prints the rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// JSON (what the filter reads).
    Json,
    /// YAML (e.g. for a ConfigMap or a WasmPlugin's pluginConfig).
    Yaml,
}

// ---------------------------------------------------------------------------
// Output types: the rule file, in the order operators read it.
// ---------------------------------------------------------------------------

/// A rule file.
#[derive(Debug, Serialize)]
pub struct RuleFileOut {
    /// The services, one per VirtualService.
    pub services: Vec<ServiceOut>,
}

/// One service.
#[derive(Debug, Serialize)]
pub struct ServiceOut {
    /// Hosts, expanded.
    pub hosts: Vec<String>,
    /// Rules.
    pub http: Vec<RouteOut>,
    /// Port of destinations that give none (`--port`).
    #[serde(rename = "destinationPort", skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// Where Envoy's own route sends the requests the filter leaves alone.
    #[serde(rename = "defaultDestination", skip_serializing_if = "Option::is_none")]
    pub default_destination: Option<Value>,
}

/// One rule.
#[derive(Debug, Clone, Serialize)]
pub struct RouteOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub(super) matches: Vec<MatchOut>,
    pub(super) route: Vec<DestinationOut>,
    /// Istio's route policies (`timeout`, `retries`, ...), as written in
    /// the source, which the routing glue applies.
    #[serde(flatten)]
    pub(super) policies: serde_json::Map<String, Value>,
}

/// A match entry: fields of the filter's `MatchRequest` by their JSON
/// names, written in its declaration's order.
#[derive(Debug, Clone, Default)]
pub(super) struct MatchOut(Vec<(&'static str, Value)>);

impl MatchOut {
    /// The value of `field`.
    pub(super) fn get(&self, field: &str) -> Option<&Value> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, v)| v)
    }

    /// Sets `field` (a JSON name of `MatchRequest`'s) to `value`, or
    /// removes it for `None`.
    pub(super) fn set(&mut self, field: &str, value: Option<Value>) {
        let Some(&name) = MatchRequest::FIELDS.iter().find(|f| **f == field) else {
            unreachable!("`{field}` is not a field of a match entry");
        };
        self.0.retain(|(f, _)| *f != name);
        if let Some(v) = value {
            self.0.push((name, v));
        }
    }
}

impl Serialize for MatchOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for field in MatchRequest::FIELDS {
            if let Some(v) = self.get(field) {
                map.serialize_entry(field, v)?;
            }
        }
        map.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct DestinationOut {
    pub(super) destination: DestOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) weight: Option<Value>,
    /// The destination's header operations (a route policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) headers: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct DestOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) subset: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) port: Option<PortOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cluster: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct PortOut {
    pub(super) number: Value,
}

// ---------------------------------------------------------------------------
// What every importer reports, and its options.
// ---------------------------------------------------------------------------

/// What could not be carried over, and where the output came from.
#[derive(Debug, Default)]
pub struct Report {
    /// Warnings: something in a VirtualService that the rule file does not have.
    pub warnings: Vec<String>,
    /// Notes: documents skipped because they are not VirtualServices.
    pub notes: Vec<String>,
    /// Destinations left without a port (they take the request's port).
    pub portless: Vec<String>,
    /// For each output service: where it came from and, per output rule,
    /// the manifest and path it came from.
    pub origins: Vec<(String, Vec<String>)>,
    /// The proxies the imported rules are for ([`Target`]'s words).
    pub proxies: std::collections::BTreeSet<String>,
}

/// Options of a conversion.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of manifests without one.
    pub namespace: String,
    /// Cluster domain.
    pub cluster_domain: String,
    /// Port written into destinations without one (`--default-port`).
    pub default_port: Option<u16>,
    /// `destinationPort` of every service (`--port`).
    pub service_port: Option<u16>,
    /// The services of the input's ServiceEntries, by host: a destination
    /// without a port on one with a single port takes that port, as in Istio.
    pub service_entries: BTreeMap<String, service_entry::Service>,
    /// The hosts of the input's ServiceEntries, by (namespace, name).
    pub service_entry_hosts: BTreeMap<(String, String), Vec<String>>,
    /// `--for`: the proxies to import for; `None` imports every route.
    pub target: Option<Target>,
}

/// Renders the rule file.
pub fn render(file: &impl Serialize, format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(file)
            .map(|s| s + "\n")
            .map_err(|e| CliError::rejected(format!("cannot write JSON: {e}"))),
        OutputFormat::Yaml => serde_yaml_ng::to_string(file)
            .map_err(|e| CliError::rejected(format!("cannot write YAML: {e}"))),
    }
}

/// Maps `services[i].http[j]...` of the output back to the VirtualService.
fn origin_of(path: &str, report: &Report) -> Option<String> {
    let rest = path.strip_prefix("services[")?;
    let (i, rest) = rest.split_once(']')?;
    let (vs, rules) = report.origins.get(i.parse::<usize>().ok()?)?;
    let Some(rest) = rest.strip_prefix(".http[") else {
        return Some(vs.clone());
    };
    let (j, _) = rest.split_once(']')?;
    rules.get(j.parse::<usize>().ok()?).cloned()
}

/// Runs `import`.
pub fn run(args: &Args) -> Result<()> {
    let src = input::read_source(&args.file)?;
    let docs = match src.format {
        input::Format::Json => {
            let v: Value = serde_json::from_slice(&src.bytes)
                .map_err(|e| CliError::rejected(format!("{}: not valid JSON: {e}", src.name)))?;
            match v {
                // `kubectl get -o json` prints a List.
                Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => m
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                v => vec![v],
            }
        }
        input::Format::Yaml => {
            let mut docs = Vec::new();
            for d in input::yaml_documents(&src.bytes, &src.name)? {
                match d {
                    Value::Object(ref m)
                        if m.get("kind").and_then(Value::as_str) == Some("List") =>
                    {
                        docs.extend(
                            m.get("items")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default(),
                        );
                    }
                    d => docs.push(d),
                }
            }
            docs
        }
    };
    let many = docs.len() > 1;
    let name = src.name.clone();
    let origin = move |i: usize| {
        if many {
            format!("{name}, document {}", i + 1)
        } else {
            name.clone()
        }
    };
    let opts = Options {
        namespace: args.namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
        default_port: args.default_port,
        service_port: args.port,
        service_entries: service_entry::services(&docs, &origin, &args.namespace),
        service_entry_hosts: service_entry::hosts_by_entry(&docs, &args.namespace),
        target: args.target.clone().map(|t| match t {
            TargetArg::Mesh => Target::Mesh,
            TargetArg::Gateway { namespace, name } => Target::Gateway {
                namespace: namespace.unwrap_or_else(|| args.namespace.clone()),
                name,
            },
        }),
    };
    let (mut file, mut report) = virtual_service::convert(&docs, &origin, &opts)?;
    let routes = http_route::convert(&docs, &origin, &opts, &mut file, &mut report)?;
    if report.proxies.len() > 1 {
        let list: Vec<&str> = report.proxies.iter().map(String::as_str).collect();
        return Err(CliError::rejected(format!(
            "{}: the routes are for {}: Istio applies each only in its own proxies, but the filter \
             applies its whole rule set wherever its WasmPlugin runs; import them one at a time \
             with --for mesh or --for gateway=NAMESPACE/NAME",
            src.name,
            list.join(" and ")
        )));
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    if let Some(first) = report.portless.first() {
        eprintln!(
            "note: {first}{}: no port: it takes the port the request arrives on, as Istio routes it \
             in a sidecar (Istio would use the service's port if the service has only one). \
             For rules run on an ingress gateway, whose listener port is its own, give the \
             service port with --port",
            match report.portless.len() {
                1 => String::new(),
                n => format!(" and {} more destination(s)", n - 1),
            }
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if file.services.is_empty() {
        return Err(CliError::rejected(format!(
            "{}: no {} could be imported",
            src.name,
            if routes > 0 {
                "VirtualService or HTTPRoute"
            } else {
                "VirtualService"
            }
        )));
    }
    // With additions, the rule file as a JSON value (its keys then print
    // in alphabetical order); without, as imported.
    let mut value = None;
    if args.sticky.is_some() || args.overlay.is_some() {
        let mut v = serde_json::to_value(&file)
            .map_err(|e| CliError::rejected(format!("cannot write JSON: {e}")))?;
        if let Some(sticky) = &args.sticky {
            overlay::add_sticky(&mut v, sticky);
        }
        if let Some(path) = &args.overlay {
            overlay::apply_file(&mut v, path)?;
        }
        value = Some(v);
    }
    // The output must be what the filter accepts: judge it with its parser.
    let json = match &value {
        Some(v) => serde_json::to_vec(v),
        None => serde_json::to_vec(&file),
    }
    .map_err(|e| CliError::rejected(format!("cannot write JSON: {e}")))?;
    if let Err(e) = Plugin::from_bytes(&json, &Workload::default()) {
        let from = e
            .path()
            .and_then(|p| origin_of(p, &report))
            .map(|o| format!(" (from {o})"))
            .unwrap_or_default();
        return Err(CliError::rejected(format!(
            "the imported rules are rejected by the filter: {e}{from}"
        )));
    }
    if args.strict && !report.warnings.is_empty() {
        return Err(CliError::rejected(format!(
            "--strict: {} thing(s) could not be carried over (see the warnings above)",
            report.warnings.len()
        )));
    }
    let text = match &value {
        Some(v) => render(v, args.output)?,
        None => render(&file, args.output)?,
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_output_paths_back_to_the_virtualservice() {
        let report = Report {
            origins: vec![(
                "VirtualService a/b (f)".into(),
                vec![
                    "VirtualService a/b (f) spec.http[0]".into(),
                    "VirtualService a/b (f) spec.http[2]".into(),
                ],
            )],
            ..Report::default()
        };
        assert_eq!(
            origin_of("services[0].http[1].route[0].weight", &report).as_deref(),
            Some("VirtualService a/b (f) spec.http[2]")
        );
        assert_eq!(origin_of("services[1].hosts", &report), None);
    }
}
