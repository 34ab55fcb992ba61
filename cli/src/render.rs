//! `canaryctl render`: the Istio manifests that deploy a rule file, in the
//! shape of `wasmplugin/` (`wasmplugin.yaml`, `wasmplugin-file.yaml`, and
//! with `--configmap` `rules-configmap.yaml` + `wasmplugin-configmap.yaml`;
//! with `--traffic-extension` their `trafficextension*.yaml` variants).

use std::collections::BTreeSet;
use std::path::PathBuf;

use canary_router::domain::cluster::{ClusterName, PortlessMode};
use canary_router::domain::plugin::{rule_file_from_bytes, DEFAULT_CLUSTER_DOMAIN};
use canary_router::{Plugin, Workload};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{CliError, Result};
use crate::glue::{self, Attachment};
use crate::input::{self, Kind};
use crate::summary::{self, parse_label};
use crate::traffic_extension;
use crate::yaml::{map, push, s};

/// Print the WasmPlugin (and with --configmap the ConfigMap) that deploy a rule file.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Print the Istio manifests that deploy a rule file: the WasmPlugin with the rules inline \
in pluginConfig (as wasmplugin/wasmplugin.yaml; wasmplugin-file.yaml for a file:// module), or with \
--configmap the ConfigMap holding the rules (as wasmplugin/rules-configmap.yaml) and the WasmPlugin \
that polls it (as wasmplugin/wasmplugin-configmap.yaml; serve the ConfigMap with \
wasmplugin/config-server.yaml). The rules are checked with the filter's parser first, and so is \
what is printed.\n\n\
The filter runs in the client sidecars (match mode CLIENT) on the ports the rules' destinations \
name, FAIL_OPEN, in phase UNSPECIFIED_PHASE (before istiod's fault, CORS and router filters, which \
read the route it selects). For an HTTPRoute-based setup (docs/gateway-api.md), \
--gateway attaches it to a Gateway API Gateway by targetRefs (on every listener, or those \
--port names; the glue's port is 80 unless --port says), as Istio requires there, and --waypoint-service to a Service's ambient waypoint. \
--glue adds the routing glue: an EnvoyFilter, attached the same way, whose routes, first in each \
service's virtual host, send a request whose route header names one of that service's clusters \
there (by cluster_header), with what istiod puts on its routes (timeout 0s, no grpc-timeout cap, \
Istio's default retry policy or --mesh-retries, a tracing decorator); a rule with route policies \
(timeout, retries, headers, rewrite, mirror(s), fault, corsPolicy) gets routes of its own, one per \
destination and match entry, with those policies as istiod translates them, for the value \
`<cluster>;<rule>` its requests carry. For destinations without a port, --glue also sets \
`portlessDestinations: glue`: the filter writes `outbound||<subset>|<host>` and reads no port, and \
the route of each --port sends that value to its own port's cluster. On a gateway, such \
destinations need the service's `destinationPort`.\n\n--traffic-extension prints an Istio 1.30+ TrafficExtension (extensions.istio.io/v1alpha1) instead of the WasmPlugin: the same object as istiod converts the WasmPlugin into (the same selector or targetRefs, match, phase, failStrategy and pluginConfig; the module's fields under `wasm`). Apply one of the two, never both: each runs the filter.",
    after_help = "\
Examples:
  canaryctl render --namespace default --image oci://registry/canary-router:0.1.0 \\
      --sha256 <digest> --selector app=frontend examples/weighted/rules.json | kubectl apply -f -
  canaryctl render --namespace default --image file:///var/local/wasm/canary_router.wasm \\
      --selector app=frontend examples/weighted/rules.json
  canaryctl render --configmap --namespace default --image oci://registry/canary-router:0.1.0 \\
      --selector app=frontend --debug-header x-canary-route examples/configmap-poll/rule-file-90-10.json
  canaryctl import routes.yaml > rules.json && canaryctl render --namespace shop \\
      --image oci://registry/canary-router:0.1.0 --gateway edge --glue rules.json

Exit codes: 0 printed, 1 the rules are rejected, 2 bad options or an unreadable file."
)]
pub struct Args {
    /// The rules: a plugin configuration or a rule file (anything `validate` reads; the first configuration in it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Namespace of the WasmPlugin (the workloads it selects live there).
    #[arg(long, default_value = "default", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Name of the WasmPlugin.
    #[arg(long, default_value = "canary-router", value_name = "NAME")]
    pub name: String,
    /// Where the sidecars get the module: `oci://registry/canary-router:0.1.0`, `file:///...` or `https://...`.
    #[arg(long, value_name = "URL")]
    pub image: String,
    /// The module's sha256 (for oci://, the image manifest's digest), with or without `sha256:`.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Labels of the client workloads to run the filter in, e.g. `app=frontend` (default: every workload of the namespace).
    #[arg(long, value_name = "KEY=VALUE,...", value_delimiter = ',', value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
    /// Outbound ports to run on (repeatable; default: the ports of the rules' destinations;
    /// with --gateway, the Gateway's listener ports: default every listener, and 80 for --glue).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Run on this Gateway API Gateway (of --namespace), attached by `targetRefs`, as Istio
    /// requires for the gateways Gateway API deploys (instead of --selector).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["selector", "waypoint_service"])]
    pub gateway: Option<String>,
    /// Run on the ambient waypoint of this Service (of --namespace), attached by `targetRefs`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["selector", "glue"])]
    pub waypoint_service: Option<String>,
    /// Print a TrafficExtension (Istio 1.30 and later) instead of the WasmPlugin: the same
    /// attachment, match, phase, failure strategy and pluginConfig, as istiod converts a WasmPlugin.
    #[arg(long)]
    pub traffic_extension: bool,
    /// Also print the routing glue: an EnvoyFilter whose routes, first in each of the rules'
    /// virtual hosts, send a request to the cluster the filter wrote (only the rules' clusters),
    /// with istiod's route fields and each rule's route policies.
    #[arg(long)]
    pub glue: bool,
    /// The mesh's default retry policy (MeshConfig `defaultHttpRetryPolicy`, an
    /// Istio HTTPRetry in YAML or JSON), if the mesh changes Istio's: the glue
    /// routes of rules without their own `retries` take it, as istiod's
    /// routes do. `{attempts: 0}` means none.
    #[arg(long, value_name = "YAML", value_parser = parse_mesh_retries)]
    pub mesh_retries: Option<serde_json::Value>,
    /// What Istio does when the module cannot be fetched or the VM fails.
    #[arg(long, value_enum, default_value_t = FailStrategy::FailOpen)]
    pub fail_strategy: FailStrategy,
    /// Response header naming what served each request (overrides the file's `debugHeader`).
    #[arg(long, value_name = "HEADER")]
    pub debug_header: Option<String>,
    /// Poll the rules from a ConfigMap: print the ConfigMap and the WasmPlugin with a `ruleSource`.
    #[arg(long)]
    pub configmap: bool,
    /// Name of the ConfigMap (and of the config server's Service), with --configmap.
    #[arg(long, default_value = "canary-rules", value_name = "NAME")]
    pub configmap_name: String,
    /// Namespace of the ConfigMap and its config server, with --configmap.
    #[arg(long, default_value = "istio-system", value_name = "NAMESPACE")]
    pub configmap_namespace: String,
    /// Path the config server serves the rule file at, with --configmap.
    #[arg(long, default_value = "/canary/rules.json", value_name = "PATH")]
    pub rules_path: String,
    /// Service port of the config server, with --configmap.
    #[arg(long, default_value_t = 80, value_name = "PORT")]
    pub rules_port: u16,
    /// How often the sidecars poll, with --configmap.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub poll_interval_ms: u64,
    /// Timeout of one poll, with --configmap.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub timeout_ms: u64,
    /// `version` of the rule file in the ConfigMap (default: the file's own, if any).
    #[arg(long, value_name = "N")]
    pub rules_version: Option<u64>,
}

/// `--mesh-retries`: YAML or JSON, checked as istiod checks MeshConfig.
fn parse_mesh_retries(text: &str) -> std::result::Result<serde_json::Value, String> {
    let v: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    glue::policy::MeshDefaults {
        retries: Some(v.clone()),
    }
    .check()
    .map_err(|e| e.to_string())?;
    Ok(v)
}

/// Istio's `failStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailStrategy {
    /// Skip the filter: requests take Istio's own routes.
    FailOpen,
    /// Fail the requests.
    FailClose,
}

/// The input configuration as an ordered YAML value (keys keep the file's
/// order; JSON is YAML).
fn ordered(bytes: &[u8]) -> Result<Mapping> {
    let value = match serde_yaml_ng::from_slice::<Value>(bytes) {
        Ok(v) => v,
        // JSON that YAML does not take (tabs as indentation...): through
        // serde_json, in sorted key order.
        Err(_) => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| serde_yaml_ng::to_value(v).ok())
            .unwrap_or(Value::Null),
    };
    match value {
        Value::Mapping(m) => Ok(m),
        _ => Err(CliError::rejected("the configuration is not an object")),
    }
}

fn sha256(given: &str) -> Result<String> {
    let hex = given
        .strip_prefix("sha256:")
        .unwrap_or(given)
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(CliError::usage(format!(
            "--sha256 {given}: not 64 hex digits (a sha256, optionally prefixed with `sha256:`)"
        )))
    }
}

/// The ports of the Istio clusters the rules route to (`outbound|PORT|...`),
/// or the first destination that takes the request's port, which only the
/// operator can name (`--port`).
fn destination_ports(set: &canary_router::RuleSet) -> Result<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    for (s, r, d) in set.all_destinations() {
        let name = match &d.cluster {
            ClusterName::Fixed(name) => name,
            ClusterName::RequestPort(_) | ClusterName::GluePort(_) => {
                return Err(CliError::rejected(format!(
                    "service {}, rule {}, destination {}: no port (it takes the port the request \
                     arrived on), so the ports to run on are not known: give them with --port \
                     (the service's port, e.g. --port 9080)",
                    s.name, r.name, d.label
                )))
            }
        };
        let mut parts = name.split('|');
        if let (Some("outbound"), Some(p)) = (parts.next(), parts.next()) {
            ports.extend(p.parse::<u16>().ok());
        }
    }
    Ok(ports)
}

/// The `portlessDestinations` of the rendered configuration: the file's,
/// except that `--glue` gives rules with port-less destinations the glue
/// mode (its routes name each port, so the filter reads no port per
/// request). On a gateway the listener port is the gateway's own, so a
/// port-less destination there needs its service's `destinationPort`,
/// except when the operator's own VirtualService glue resolves it.
fn portless_mode(
    args: &Args,
    given: PortlessMode,
    set: &canary_router::RuleSet,
) -> Result<PortlessMode> {
    let first = set
        .all_destinations()
        .find(|(_, _, d)| d.cluster.is_portless());
    let Some((svc, rule, d)) = first else {
        return Ok(given);
    };
    let named = format!(
        "service {}, rule {}, destination {}",
        svc.name, rule.name, d.label
    );
    let mode = if args.glue { PortlessMode::Glue } else { given };
    if args.gateway.is_some() && (args.glue || mode == PortlessMode::RequestPort) {
        return Err(CliError::rejected(format!(
            "{named}: no port, and on a gateway the listener port is the gateway's own, not the \
             service's: give the service's `destinationPort` (or the destination's `port`){}",
            if args.glue {
                ""
            } else {
                ", or set `portlessDestinations: glue` with a VirtualService glue that names \
                 the port-less values (wasmplugin/route-virtualservice.yaml)"
            }
        )));
    }
    if mode != given {
        eprintln!(
            "note: {named} has no port: with --glue it is written port-less \
             (portlessDestinations: glue) and the glue's route of each port names its cluster"
        );
    }
    Ok(mode)
}

/// The configuration's `services`.
fn services_of(input: &Mapping) -> Value {
    input
        .get("services")
        .cloned()
        .unwrap_or(Value::Sequence(Vec::new()))
}

fn yaml(v: &Value) -> Result<String> {
    serde_yaml_ng::to_string(v).map_err(|e| CliError::rejected(format!("cannot write YAML: {e}")))
}

/// Runs `render`.
pub fn run(args: &Args) -> Result<()> {
    let src = input::read_source(&args.file)?;
    let loaded = input::load(&src)?;
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let Some(cfg) = loaded.configs.into_iter().next() else {
        return Err(CliError::rejected(format!(
            "{}: no canary-router configuration found",
            src.name
        )));
    };
    let judged = summary::judge(&cfg, &Workload::default(), None).map_err(CliError::rejected)?;
    let Some((set, _)) = &judged.rules else {
        return Err(CliError::rejected(format!(
            "{}: no inline rules (it polls a ruleSource already): render the rule file itself",
            cfg.origin
        )));
    };
    let input = ordered(&cfg.bytes)?;
    if cfg.kind == Kind::RuleFile || input.contains_key("ruleSource") {
        return Err(CliError::rejected(format!(
            "{}: give the rules as a plugin configuration or a bare rule file",
            cfg.origin
        )));
    }
    let st = &judged.settings;

    // pluginConfig: the settings, written out, then the rules or the source.
    let mut plugin = map([("routeHeader", s(&st.route_header))]);
    let debug = args
        .debug_header
        .clone()
        .or_else(|| st.debug_header.as_deref().map(str::to_string));
    if let Some(d) = &debug {
        push(&mut plugin, "debugHeader", s(d));
    }
    push(&mut plugin, "namespace", s(&st.namespace));
    if &*st.cluster_domain != DEFAULT_CLUSTER_DOMAIN {
        push(&mut plugin, "clusterDomain", s(&st.cluster_domain));
    }
    let portless = portless_mode(args, st.portless, set)?;
    if portless == PortlessMode::Glue {
        push(&mut plugin, "portlessDestinations", s("glue"));
    }
    let services = services_of(&input);
    let version = args
        .rules_version
        .map(Value::from)
        .or_else(|| input.get("version").cloned());

    let mut docs: Vec<(String, Value)> = Vec::new();
    // The rules as the rendered configuration compiles them (the glue's values).
    let rendered: canary_router::RuleSet;
    if args.configmap {
        let mut file = Mapping::new();
        if let Some(v) = &version {
            file.insert(s("version"), v.clone());
        }
        file.insert(s("services"), services);
        let text = serde_json::to_string_pretty(&Value::Mapping(file))
            .map_err(|e| CliError::rejected(format!("cannot write the rule file: {e}")))?
            + "\n";
        let cluster = format!(
            "outbound|{}||{}.{}.svc.{}",
            args.rules_port, args.configmap_name, args.configmap_namespace, st.cluster_domain
        );
        push(
            &mut plugin,
            "ruleSource",
            map([
                ("cluster", s(&cluster)),
                ("path", s(&args.rules_path)),
                ("pollIntervalMs", Value::from(args.poll_interval_ms)),
                ("timeoutMs", Value::from(args.timeout_ms)),
            ]),
        );
        // What is printed must be what the filter accepts.
        let plugin_json = serde_json::to_vec(&plugin).unwrap_or_default();
        let p = Plugin::from_bytes(&plugin_json, &Workload::default()).map_err(|e| {
            CliError::rejected(format!("the rendered pluginConfig is rejected: {e}"))
        })?;
        rendered = rule_file_from_bytes(text.as_bytes(), &p.settings, &Workload::default())
            .map_err(|e| {
                CliError::rejected(format!(
                    "the rendered ConfigMap's rules.json is rejected: {e}"
                ))
            })?
            .set;
        let configmap = map([
            ("apiVersion", s("v1")),
            ("kind", s("ConfigMap")),
            (
                "metadata",
                map([
                    ("name", s(&args.configmap_name)),
                    ("namespace", s(&args.configmap_namespace)),
                    ("labels", map([("app", s(&args.configmap_name))])),
                ]),
            ),
            ("data", map([("rules.json", s(&text))])),
        ]);
        docs.push((
            format!(
                "# The canary rules, polled by the WasmPlugin below through the config server\n\
                 # (wasmplugin/config-server.yaml: a Service `{}` in `{}` serving this\n\
                 # ConfigMap at {}). Rendered by canaryctl from {}.\n",
                args.configmap_name, args.configmap_namespace, args.rules_path, src.name
            ),
            configmap,
        ));
    } else {
        if let Some(v) = &version {
            push(&mut plugin, "version", v.clone());
        }
        push(&mut plugin, "services", services);
        let plugin_json = serde_json::to_vec(&plugin).unwrap_or_default();
        let p = Plugin::from_bytes(&plugin_json, &Workload::default()).map_err(|e| {
            CliError::rejected(format!("the rendered pluginConfig is rejected: {e}"))
        })?;
        rendered = p.rules.map(|r| r.set).unwrap_or_default();
    }

    // The WasmPlugin.
    let attach = match (&args.gateway, &args.waypoint_service) {
        (Some(g), _) => Attachment::Gateway(g.clone()),
        (_, Some(w)) => Attachment::Waypoint(w.clone()),
        _ => Attachment::Sidecars(args.selector.clone()),
    };
    let mut spec = Value::Mapping(Mapping::new());
    match attach.field("selector") {
        Some((k, v)) => push(&mut spec, k, v),
        None => eprintln!(
            "note: no --selector: the {} applies to every workload of namespace {}",
            if args.traffic_extension {
                "TrafficExtension"
            } else {
                "WasmPlugin"
            },
            args.namespace
        ),
    }
    if !["oci://", "file://", "https://", "http://"]
        .iter()
        .any(|p| args.image.starts_with(p))
    {
        return Err(CliError::usage(format!(
            "--image {}: give oci://..., file://... or https://...",
            args.image
        )));
    }
    push(&mut spec, "url", s(&args.image));
    if args.image.starts_with("oci://") {
        push(&mut spec, "imagePullPolicy", s("IfNotPresent"));
    }
    match &args.sha256 {
        Some(h) => push(&mut spec, "sha256", s(&sha256(h)?)),
        None => eprintln!(
            "note: no --sha256: Istio will not verify the module it downloads (see wasmplugin/README.md, pin-sha256.sh)"
        ),
    }
    push(&mut spec, "pluginName", s("canary-router"));
    push(&mut spec, "phase", s("UNSPECIFIED_PHASE"));
    push(&mut spec, "type", s("HTTP"));
    let ports: BTreeSet<u16> = match (args.ports.is_empty(), &attach) {
        (false, _) => args.ports.iter().copied().collect(),
        // A gateway's listener ports, not the services' (the glue's route
        // configuration is the listener's; 80 unless --port says).
        (true, Attachment::Gateway(_)) => [80].into(),
        (true, _) => destination_ports(set)?,
    };
    // Istio gives a gateway's listeners and a sidecar's outbound ones the
    // mode CLIENT; a waypoint's are the Service's inbound side. On a
    // gateway the filter runs on every listener unless --port names them
    // (as wasmplugin/gateway-api-wasmplugin.yaml).
    let mut selector = match attach {
        Attachment::Waypoint(_) => Value::Mapping(Mapping::new()),
        _ => map([("mode", s("CLIENT"))]),
    };
    let gateway_default = args.ports.is_empty() && matches!(attach, Attachment::Gateway(_));
    if !ports.is_empty() && !gateway_default {
        push(
            &mut selector,
            "ports",
            Value::Sequence(
                ports
                    .iter()
                    .map(|p| map([("number", Value::from(*p))]))
                    .collect(),
            ),
        );
    }
    push(&mut spec, "match", Value::Sequence(vec![selector]));
    push(
        &mut spec,
        "failStrategy",
        s(match args.fail_strategy {
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailClose => "FAIL_CLOSE",
        }),
    );
    push(&mut spec, "pluginConfig", plugin);
    let (kind, spec) = match (&spec, args.traffic_extension) {
        (Value::Mapping(wp), true) => (
            "TrafficExtension",
            Value::Mapping(traffic_extension::spec_of_wasm_plugin(wp)),
        ),
        _ => ("WasmPlugin", spec),
    };
    let wasmplugin = map([
        ("apiVersion", s("extensions.istio.io/v1alpha1")),
        ("kind", s(kind)),
        (
            "metadata",
            map([("name", s(&args.name)), ("namespace", s(&args.namespace))]),
        ),
        ("spec", spec),
    ]);
    docs.push((
        format!(
            "# canary-router in {}, rules {}{}.\n# Rendered by canaryctl from {}.\n",
            attach.describe(),
            if args.configmap {
                format!(
                    "polled from ConfigMap {}/{}",
                    args.configmap_namespace, args.configmap_name
                )
            } else {
                "inline".to_string()
            },
            if args.traffic_extension {
                " (a TrafficExtension: Istio 1.30 and later)"
            } else {
                ""
            },
            src.name
        ),
        wasmplugin,
    ));

    let services_json = serde_json::to_value(services_of(&input))
        .map_err(|e| CliError::rejected(format!("cannot read the rules: {e}")))?;
    let policies = services_json
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["http"].as_array().into_iter().flatten())
        .filter(|r| glue::policy::has_policy(r))
        .count();
    if args.glue {
        let mesh = glue::policy::MeshDefaults {
            retries: args.mesh_retries.clone(),
        };
        let opts = glue::GlueOptions {
            route_header: &st.route_header,
            ports: &ports,
            mesh: &mesh,
            namespace: &st.namespace,
            cluster_domain: &st.cluster_domain,
        };
        let routes = glue::glue_routes(&rendered, &services_json, &opts)
            .map_err(|e| CliError::rejected(format!("{}: {e}", cfg.origin)))?;
        if routes.is_empty() {
            return Err(CliError::rejected(
                "--glue: the rules name no Istio cluster (outbound|...) to route to",
            ));
        }
        docs.push((
            format!(
                "# The routing glue: routes first in each service's virtual host on port(s) {}\n\
                 # send a request whose {} names one of that service's clusters there{},\n\
                 # with what istiod puts on its routes (no route timeout, the mesh's retry policy){}.\n\
                 # Istio inserts each patch before all others: each virtual host's routes are listed last first.\n",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                st.route_header,
                if portless == PortlessMode::Glue {
                    ",\n# and one holding a port-less value (outbound||<subset>|<host>) to that port's cluster"
                } else {
                    ""
                },
                if policies > 0 {
                    ",\n# and for each rule with route policies, its own routes (value <cluster>;<rule>) with its policies"
                } else {
                    ""
                }
            ),
            glue::envoy_filter(&args.name, &args.namespace, &attach, &routes)
                .map_err(CliError::rejected)?,
        ));
    } else if policies > 0 {
        eprintln!(
            "note: {policies} rule(s) carry route policies (timeout, retries, headers, ...): the routing \
             glue carries them (--glue, or a VirtualService glue that matches <cluster>;<rule> and has \
             the rule's policies); without it their requests stay on Envoy's own routes"
        );
    }
    let mut out = String::new();
    for (i, (comment, doc)) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(comment);
        out.push_str(&yaml(doc)?);
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_checked_and_normalized() {
        let h = "AB".repeat(32);
        assert_eq!(sha256(&format!("sha256:{h}")).unwrap(), "ab".repeat(32));
        assert!(sha256("abc").is_err());
        assert!(sha256(&"g".repeat(64)).is_err());
    }

    #[test]
    fn ordered_keeps_the_files_key_order() {
        let m = ordered(br#"{"services": [], "routeHeader": "x", "debugHeader": "y"}"#).unwrap();
        let keys: Vec<&str> = m.keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["services", "routeHeader", "debugHeader"]);
        let tabs = ordered(b"{\n\t\"services\": [],\n\t\"routeHeader\": \"x\"\n}").unwrap();
        assert_eq!(tabs.len(), 2);
    }
}
