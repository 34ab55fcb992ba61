//! `canaryctl import`: Istio VirtualServices to a canary-router rule file.
//!
//! What carries over: `hosts`, and per `http` route its `name`, `match`
//! (uri, scheme, method, authority, headers, withoutHeaders, port,
//! queryParams, ignoreUriCase, sourceLabels, sourceNamespace) and `route`
//! (destination host/subset/port, weight). Short hosts expand as Istio
//! expands them, against the manifest's namespace. Everything else is named
//! in a warning on stderr (VirtualService and JSON path), never dropped
//! silently; the output is judged by the filter's parser before it is
//! printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use canary_router::{Plugin, Workload};
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::input;

/// Read Istio VirtualServices and print the equivalent rule file.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Read Istio VirtualService manifests (networking.istio.io v1alpha3, v1beta1 and v1; one \
or many `---` separated documents) and print the equivalent canary-router rule file. \
Short hosts expand as Istio expands them: `reviews` in a manifest of namespace `prod` becomes \
`reviews.prod.svc.cluster.local`. What cannot be carried over (mirror, fault, retries, timeout, \
rewrite, redirect, directResponse, delegate, headers manipulation, corsPolicy, tcp/tls \
routes, unsupported match fields, VirtualServices and match entries bound to gateways only) is named \
in a warning on stderr with the VirtualService and the JSON path; `gateways` absent or empty means \
the sidecars (`mesh`), as in Istio. Destinations without a port stay without one: the filter gives \
them the port the request arrived on, as Istio does in a sidecar (--port gives the service port \
instead, needed on an ingress gateway; --default-port writes a port into each). Other kinds of \
documents (DestinationRule, Gateway, ...) are skipped with a note. The output is checked with the \
filter's own parser before it is printed.",
    after_help = "\
Examples:
  canaryctl import reviews-vs.yaml > rules.json
  kubectl get virtualservice -A -o yaml | canaryctl import - -o yaml
  canaryctl import --strict cli/tests/fixtures/virtualservices.yaml

Exit codes: 0 imported (warnings on stderr), 1 nothing to import, the result is rejected by the
filter, or --strict and something could not be carried over; 2 the file cannot be read."
)]
pub struct Args {
    /// VirtualService manifests (YAML or JSON; `-` reads standard input).
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
}

/// How `import` prints the rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// JSON (what the filter reads).
    Json,
    /// YAML (e.g. for a ConfigMap or a WasmPlugin's pluginConfig).
    Yaml,
}

const API_GROUP: &str = "networking.istio.io/";
const API_VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];

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
}

/// One rule.
#[derive(Debug, Serialize)]
pub struct RouteOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    matches: Vec<MatchOut>,
    route: Vec<DestinationOut>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    without_headers: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_params: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_uri_case: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_labels: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_namespace: Option<Value>,
}

#[derive(Debug, Serialize)]
struct DestinationOut {
    destination: DestOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<Value>,
}

#[derive(Debug, Serialize)]
struct DestOut {
    host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<PortOut>,
}

#[derive(Debug, Serialize)]
struct PortOut {
    number: Value,
}

// ---------------------------------------------------------------------------
// Conversion.
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
    /// For each output service: the VirtualService and, per output rule, its
    /// `spec.http` index.
    pub origins: Vec<(String, Vec<usize>)>,
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
}

struct Vs<'a> {
    /// `VirtualService ns/name (origin)` for messages.
    id: String,
    namespace: &'a str,
    opts: &'a Options,
}

impl Vs<'_> {
    fn warn(&self, report: &mut Report, path: &str, what: &str) {
        report.warnings.push(format!("{}: {path}: {what}", self.id));
    }

    /// Expands a host as Istio does for a VirtualService: a name without a
    /// dot is relative to the manifest's namespace.
    fn expand(&self, host: &str) -> String {
        if host == "*" || host.contains('.') {
            host.to_string()
        } else {
            format!("{host}.{}.svc.{}", self.namespace, self.opts.cluster_domain)
        }
    }
}

/// Why an HTTP route field is not carried over.
fn route_field_reason(field: &str) -> Option<&'static str> {
    Some(match field {
        "mirror" | "mirrors" | "mirrorPercentage" | "mirrorPercent" | "mirror_percent" => {
            "traffic mirroring is not supported by canary-router; dropped (no request is mirrored)"
        }
        "fault" => "fault injection is not supported by canary-router; dropped",
        "retries" => "retries are not carried over (the sidecar's route keeps its own retry policy); dropped",
        "timeout" => "timeouts are not carried over (the sidecar's route keeps its own timeout); dropped",
        "rewrite" => "rewrites are not supported by canary-router; dropped (requests keep their path and authority)",
        "headers" => "header manipulation is not supported by canary-router; dropped",
        "corsPolicy" => "CORS policies are not supported by canary-router; dropped",
        _ => return None,
    })
}

/// Fields that make a rule impossible to carry over (it does something else
/// than routing to weighted destinations).
fn rule_blocking_reason(field: &str) -> Option<&'static str> {
    Some(match field {
        "redirect" => "redirects are not supported by canary-router",
        "directResponse" => "direct responses are not supported by canary-router",
        "delegate" => "delegation to another VirtualService is not supported by canary-router",
        _ => return None,
    })
}

const MATCH_FIELDS: [&str; 12] = [
    "name",
    "uri",
    "scheme",
    "method",
    "authority",
    "headers",
    "withoutHeaders",
    "port",
    "queryParams",
    "ignoreUriCase",
    "sourceLabels",
    "sourceNamespace",
];

/// How a `gateways` list binds: Istio reads an empty list as no list, i.e.
/// the sidecars (`mesh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// Sidecars only (absent, empty, or only `mesh`).
    Mesh,
    /// Sidecars and gateways.
    MeshAndGateways,
    /// Gateways only: never a sidecar.
    GatewaysOnly,
}

fn binding(gateways: Option<&Value>) -> Binding {
    let list = gateways
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mesh = list.iter().any(|v| v.as_str() == Some("mesh"));
    match (mesh, list.len()) {
        (_, 0) => Binding::Mesh,
        (true, 1) => Binding::Mesh,
        (true, _) => Binding::MeshAndGateways,
        (false, _) => Binding::GatewaysOnly,
    }
}

fn name_of(doc: &Value) -> (String, Option<String>) {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    (name, ns)
}

/// Converts the documents of a file; `origin(i)` names document `i` in messages.
pub fn convert(
    docs: &[Value],
    origin: &dyn Fn(usize) -> String,
    opts: &Options,
) -> Result<(RuleFileOut, Report)> {
    let mut report = Report::default();
    let mut out = RuleFileOut {
        services: Vec::new(),
    };
    // Host → the VirtualService that claimed it first (Istio gives a sidecar
    // one VirtualService per host).
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (name, ns) = name_of(doc);
        if kind == "List" {
            report
                .notes
                .push(format!("{}: a List inside a List; skipped", origin(i)));
            continue;
        }
        if kind != "VirtualService" || !api.starts_with(API_GROUP) {
            let what = if kind.is_empty() {
                "a document without a kind".to_string()
            } else {
                format!("{kind} {name} ({api})")
            };
            report.notes.push(format!(
                "{}: {what} is not a VirtualService; skipped",
                origin(i)
            ));
            continue;
        }
        let version = &api[API_GROUP.len()..];
        let namespace = ns.as_deref().unwrap_or(&opts.namespace);
        let vs = Vs {
            id: format!("VirtualService {namespace}/{name} ({})", origin(i)),
            namespace,
            opts,
        };
        if !API_VERSIONS.contains(&version) {
            report.warnings.push(format!(
                "{}: apiVersion {api} is not one canaryctl knows (v1alpha3, v1beta1, v1); skipped",
                vs.id
            ));
            continue;
        }
        if let Some(svc) = convert_vs(doc, &vs, &mut claimed, &mut report)? {
            out.services.push(svc.0);
            report.origins.push((vs.id.clone(), svc.1));
        }
    }
    Ok((out, report))
}

fn convert_vs(
    doc: &Value,
    vs: &Vs<'_>,
    claimed: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Option<(ServiceOut, Vec<usize>)>> {
    let Some(spec) = doc.get("spec").and_then(Value::as_object) else {
        vs.warn(report, "spec", "missing; skipped");
        return Ok(None);
    };
    match binding(spec.get("gateways")) {
        Binding::Mesh => {}
        Binding::GatewaysOnly => {
            vs.warn(
                report,
                "spec.gateways",
                "bound to gateways only (no `mesh`), so it never applies to sidecars; skipped",
            );
            return Ok(None);
        }
        Binding::MeshAndGateways => vs.warn(
            report,
            "spec.gateways",
            "also bound to gateways: only the sidecar (`mesh`) part is carried over",
        ),
    }
    for (k, v) in spec {
        match k.as_str() {
            "hosts" | "http" | "gateways" => {}
            "tcp" | "tls" => vs.warn(
                report,
                &format!("spec.{k}"),
                &format!(
                    "{} {k} route(s) not supported by canary-router (HTTP only); dropped",
                    v.as_array().map_or(0, Vec::len)
                ),
            ),
            "exportTo" => vs.warn(
                report,
                "spec.exportTo",
                "visibility is not carried over: the rules apply wherever the filter runs; dropped",
            ),
            other => vs.warn(report, &format!("spec.{other}"), "not supported; dropped"),
        }
    }
    let mut hosts = Vec::new();
    for (hi, h) in spec
        .get("hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.hosts[{hi}]");
        let Some(h) = h.as_str() else {
            return Err(CliError::rejected(format!(
                "{}: {path}: not a string",
                vs.id
            )));
        };
        let fqdn = vs.expand(h);
        if let Some(first) = claimed.get(&fqdn) {
            vs.warn(
                report,
                &path,
                &format!(
                    "host {fqdn} is already routed by {first} (a sidecar uses one VirtualService per host); dropped"
                ),
            );
            continue;
        }
        claimed.insert(fqdn.clone(), vs.id.clone());
        hosts.push(fqdn);
    }
    if hosts.is_empty() {
        vs.warn(report, "spec.hosts", "no host left to route; skipped");
        return Ok(None);
    }
    let mut rules = Vec::new();
    let mut indices = Vec::new();
    for (ri, route) in spec
        .get("http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(r) = convert_route(route, &format!("spec.http[{ri}]"), vs, report)? {
            rules.push(r);
            indices.push(ri);
        }
    }
    if rules.is_empty() {
        vs.warn(
            report,
            "spec.http",
            "no HTTP route could be carried over; skipped",
        );
        return Ok(None);
    }
    Ok(Some((
        ServiceOut {
            hosts,
            http: rules,
            destination_port: vs.opts.service_port,
        },
        indices,
    )))
}

fn convert_route(
    route: &Value,
    path: &str,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<Option<RouteOut>> {
    let Some(obj) = route.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    for k in obj.keys() {
        if let Some(why) = rule_blocking_reason(k) {
            vs.warn(
                report,
                &format!("{path}.{k}"),
                &format!("{why}; the whole rule is skipped, so requests it matched fall through to the next rules"),
            );
            return Ok(None);
        }
    }
    let mut out = RouteOut {
        name: None,
        matches: Vec::new(),
        route: Vec::new(),
    };
    for (k, v) in obj {
        let fpath = format!("{path}.{k}");
        match k.as_str() {
            "name" => match v.as_str() {
                Some(n) => out.name = Some(n.to_string()),
                None => {
                    return Err(CliError::rejected(format!(
                        "{}: {fpath}: not a string",
                        vs.id
                    )))
                }
            },
            "match" | "route" => {}
            other => match route_field_reason(other) {
                Some(why) => vs.warn(report, &fpath, why),
                None => vs.warn(report, &fpath, "not supported by canary-router; dropped"),
            },
        }
    }
    let match_list = obj.get("match").and_then(Value::as_array);
    let given = match_list.map_or(0, Vec::len);
    for (mi, m) in match_list.into_iter().flatten().enumerate() {
        if let Some(entry) = convert_match(m, &format!("{path}.match[{mi}]"), vs, report)? {
            out.matches.push(entry);
        }
    }
    if given > 0 && out.matches.is_empty() {
        vs.warn(
            report,
            &format!("{path}.match"),
            "every match entry is for gateways only, so the rule never applies to sidecars; skipped",
        );
        return Ok(None);
    }
    let dests = obj.get("route").and_then(Value::as_array);
    let Some(dests) = dests.filter(|d| !d.is_empty()) else {
        vs.warn(
            report,
            &format!("{path}.route"),
            "no destinations; the rule is skipped",
        );
        return Ok(None);
    };
    let many = dests.len() > 1;
    for (di, d) in dests.iter().enumerate() {
        out.route.push(convert_destination(
            d,
            &format!("{path}.route[{di}]"),
            many,
            vs,
            report,
        )?);
    }
    Ok(Some(out))
}

fn convert_match(
    m: &Value,
    path: &str,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<Option<MatchOut>> {
    let Some(obj) = m.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    // An empty or absent list inherits the VirtualService's binding, which
    // includes the sidecars (or the VirtualService was skipped).
    match binding(obj.get("gateways")) {
        Binding::Mesh => {}
        Binding::GatewaysOnly => {
            vs.warn(
                report,
                &format!("{path}.gateways"),
                "this match entry is for gateways only, never for sidecars; entry dropped",
            );
            return Ok(None);
        }
        Binding::MeshAndGateways => vs.warn(
            report,
            &format!("{path}.gateways"),
            "includes `mesh`: the entry applies to sidecars as written; the gateway binding is dropped",
        ),
    }
    let mut out = MatchOut::default();
    let take = |k: &str| obj.get(k).cloned();
    out.name = take("name");
    out.uri = take("uri");
    out.scheme = take("scheme");
    out.method = take("method");
    out.authority = take("authority");
    out.headers = take("headers");
    out.without_headers = take("withoutHeaders");
    out.port = take("port");
    out.query_params = take("queryParams");
    out.ignore_uri_case = take("ignoreUriCase");
    out.source_labels = take("sourceLabels");
    out.source_namespace = take("sourceNamespace");
    for field in ["headers", "withoutHeaders"] {
        let names = obj.get(field).and_then(Value::as_object);
        for name in names.into_iter().flat_map(|m| m.keys()) {
            if name.eq_ignore_ascii_case(canary_router::plugin::DEFAULT_ROUTE_HEADER) {
                vs.warn(
                    report,
                    &format!("{path}.{field}.{name}"),
                    "matches on the header canary-router itself writes (and a client could send): \
                     this VirtualService looks like the routing glue (wasmplugin/route-virtualservice.yaml), \
                     not canary rules; the filter refuses rules that read its route header",
                );
            }
        }
    }
    for k in obj.keys() {
        if MATCH_FIELDS.contains(&k.as_str()) || k == "gateways" {
            continue;
        }
        let why = if k == "statPrefix" {
            "per-route stat prefixes are not supported (canary-router's own stats name the rule); dropped"
        } else {
            "match field not supported by canary-router; dropped, so this entry matches MORE requests than in Istio"
        };
        vs.warn(report, &format!("{path}.{k}"), why);
    }
    Ok(Some(out))
}

fn convert_destination(
    d: &Value,
    path: &str,
    many: bool,
    vs: &Vs<'_>,
    report: &mut Report,
) -> Result<DestinationOut> {
    let Some(obj) = d.as_object() else {
        return Err(CliError::rejected(format!(
            "{}: {path}: not an object",
            vs.id
        )));
    };
    for (k, _) in obj {
        match k.as_str() {
            "destination" | "weight" => {}
            other => {
                let why =
                    route_field_reason(other).unwrap_or("not supported by canary-router; dropped");
                vs.warn(report, &format!("{path}.{other}"), why);
            }
        }
    }
    let dpath = format!("{path}.destination");
    let Some(dest) = obj.get("destination").and_then(Value::as_object) else {
        return Err(CliError::rejected(format!("{}: {dpath}: missing", vs.id)));
    };
    let Some(host) = dest.get("host").and_then(Value::as_str) else {
        return Err(CliError::rejected(format!(
            "{}: {dpath}.host: missing or not a string",
            vs.id
        )));
    };
    for k in dest.keys() {
        if !matches!(k.as_str(), "host" | "subset" | "port") {
            vs.warn(
                report,
                &format!("{dpath}.{k}"),
                "not supported by canary-router; dropped",
            );
        }
    }
    let port = match dest.get("port") {
        Some(p) => match p.get("number") {
            Some(n) => Some(PortOut { number: n.clone() }),
            None => {
                return Err(CliError::rejected(format!(
                    "{}: {dpath}.port.number: missing",
                    vs.id
                )))
            }
        },
        None => vs.opts.default_port.map(|p| PortOut {
            number: Value::from(p),
        }),
    };
    if port.is_none() && vs.opts.service_port.is_none() {
        report.portless.push(format!("{}: {dpath}", vs.id));
    }
    // Istio: a destination without a weight gets 0 when there are several
    // (proto3 default); canary-router wants it written.
    let weight = match obj.get("weight") {
        Some(w) => Some(w.clone()),
        None if many => Some(Value::from(0)),
        None => None,
    };
    Ok(DestinationOut {
        destination: DestOut {
            host: vs.expand(host),
            subset: dest.get("subset").cloned(),
            port,
        },
        weight,
    })
}

/// Renders the rule file.
pub fn render(file: &RuleFileOut, format: OutputFormat) -> Result<String> {
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
    let http = rules.get(j.parse::<usize>().ok()?)?;
    Some(format!("{vs} spec.http[{http}]"))
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
    };
    let (file, report) = convert(&docs, &origin, &opts)?;
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
            "{}: no VirtualService could be imported",
            src.name
        )));
    }
    // The output must be what the filter accepts: judge it with its parser.
    let json = serde_json::to_vec(&file)
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
    print!("{}", render(&file, args.output)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
            default_port: None,
            service_port: None,
        }
    }

    #[test]
    fn expands_short_hosts_against_the_manifest_namespace() {
        let docs = input::yaml_documents(
            br"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews, ratings.other, '*.example.com']
  http:
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
",
            "t",
        )
        .unwrap();
        let (file, report) = convert(&docs, &|_| "t".into(), &opts()).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let v = serde_json::to_value(&file).unwrap();
        assert_eq!(
            v["services"][0]["hosts"],
            serde_json::json!([
                "reviews.prod.svc.cluster.local",
                "ratings.other",
                "*.example.com"
            ])
        );
        assert_eq!(
            v["services"][0]["http"][0]["route"][0]["destination"]["host"],
            "reviews.prod.svc.cluster.local"
        );
    }

    #[test]
    fn maps_output_paths_back_to_the_virtualservice() {
        let report = Report {
            origins: vec![("VirtualService a/b (f)".into(), vec![0, 2])],
            ..Report::default()
        };
        assert_eq!(
            origin_of("services[0].http[1].route[0].weight", &report).as_deref(),
            Some("VirtualService a/b (f) spec.http[2]")
        );
        assert_eq!(origin_of("services[1].hosts", &report), None);
    }
}
