//! The Istio and Kubernetes manifests in `wasmplugin/`: every file parses;
//! every object is checked against the API fields it uses (apiVersion and
//! kind, required fields, enum values, no unknown fields); and they agree
//! with each other and with the filter:
//! - every `pluginConfig` and the ConfigMap's rule file pass the filter's
//!   own validation (`Plugin::from_bytes`, `rule_file_from_bytes`);
//! - every cluster the rules can produce is `outbound|<port>|<subset>|<host>`
//!   of a subset of the DestinationRule, is accepted by the EnvoyFilter's
//!   route and mapped to that subset by the VirtualService alternative;
//! - the polling WasmPlugin's `ruleSource` points at the config server's
//!   Service (Istio's outbound cluster name) and the path nginx serves the
//!   ConfigMap at.
//!
//! The schemas below mirror the fields of Istio's CRDs (istio/api
//! `kubernetes/customresourcedefinitions.gen.yaml`, Istio 1.2x; the
//! TrafficExtension's from Istio 1.30.0, with its length limits, patterns
//! and validation rules) and of the Kubernetes core/apps v1 API that these
//! manifests can use; objects are closed, so a misspelt field is an error
//! here rather than something `kubectl apply` silently drops. Each
//! TrafficExtension is also checked to be its WasmPlugin as istiod 1.30
//! converts it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use canary_router::domain::plugin;
use canary_router::{Plugin, Workload};
use envoy_runner::{example_dir, repo_root, EnvoyConfig};
use serde::Deserialize;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// A small structural schema checker

#[derive(Clone, Debug)]
enum S {
    Str,
    Int {
        min: i64,
        max: i64,
    },
    IntOrStr,
    Bool,
    Enum(&'static [&'static str]),
    /// A string with a check; the text says what is expected.
    Pattern(&'static str, fn(&str) -> bool),
    List(Box<S>),
    /// An object with any keys, all values of one schema.
    Map(Box<S>),
    /// Anything (`x-kubernetes-preserve-unknown-fields`, Envoy config).
    Any,
    /// A closed object.
    Obj(Vec<F>),
    /// `null` or the inner schema (`nullable: true`).
    Nullable(Box<S>),
    /// The inner schema, then rules on the whole value (a CRD's
    /// `x-kubernetes-validations`, `maxItems`, list-map keys): each a
    /// message and a check.
    Checked(Box<S>, Vec<Rule>),
}

/// A rule on a whole value: the message when it fails, and the check.
type Rule = (&'static str, fn(&Value) -> bool);

fn checked(s: S, rules: Vec<Rule>) -> S {
    S::Checked(Box::new(s), rules)
}

/// A string of `min..=max` bytes (a CRD's `minLength` / `maxLength`; the
/// values here are ASCII).
fn len_str(what: &'static str, min: usize, max: usize) -> S {
    let ok: fn(&str) -> bool = match (min, max) {
        (1, 253) => |s| (1..=253).contains(&s.len()),
        (1, 256) => |s| (1..=256).contains(&s.len()),
        (0, 2048) => |s| s.len() <= 2048,
        (1, 65536) => |s| (1..=65536).contains(&s.len()),
        _ => panic!("no length check for {min}..={max}"),
    };
    S::Pattern(what, ok)
}

#[derive(Clone, Debug)]
struct F {
    name: &'static str,
    required: bool,
    schema: S,
}

fn opt(name: &'static str, schema: S) -> F {
    F {
        name,
        required: false,
        schema,
    }
}

fn req(name: &'static str, schema: S) -> F {
    F {
        name,
        required: true,
        schema,
    }
}

fn list(s: S) -> S {
    S::List(Box::new(s))
}

fn map(s: S) -> S {
    S::Map(Box::new(s))
}

fn int() -> S {
    S::Int {
        min: i64::from(i32::MIN),
        max: i64::from(i32::MAX),
    }
}

fn port() -> S {
    S::Int { min: 1, max: 65535 }
}

fn check(v: &Value, s: &S, path: &str, errors: &mut Vec<String>) {
    let mut err = |msg: String| errors.push(format!("{path}: {msg}"));
    match s {
        S::Any => {}
        S::Str => {
            if !v.is_string() {
                err(format!("expected a string, found {v}"));
            }
        }
        S::Bool => {
            if !v.is_boolean() {
                err(format!("expected a boolean, found {v}"));
            }
        }
        S::Int { min, max } => match v.as_i64() {
            Some(i) if (*min..=*max).contains(&i) => {}
            _ => err(format!("expected an integer in {min}..={max}, found {v}")),
        },
        S::IntOrStr => {
            if !(v.is_i64() || v.is_string()) {
                err(format!("expected an integer or a string, found {v}"));
            }
        }
        S::Enum(values) => match v.as_str() {
            Some(x) if values.contains(&x) => {}
            _ => err(format!("expected one of {values:?}, found {v}")),
        },
        S::Pattern(what, ok) => match v.as_str() {
            Some(x) if ok(x) => {}
            _ => err(format!("expected {what}, found {v}")),
        },
        S::List(item) => match v.as_array() {
            Some(items) => {
                for (i, x) in items.iter().enumerate() {
                    check(x, item, &format!("{path}[{i}]"), errors);
                }
            }
            None => err(format!("expected a list, found {v}")),
        },
        S::Map(value) => match v.as_object() {
            Some(obj) => {
                for (k, x) in obj {
                    check(x, value, &format!("{path}.{k}"), errors);
                }
            }
            None => err(format!("expected a mapping, found {v}")),
        },
        S::Obj(fields) => {
            let Some(obj) = v.as_object() else {
                return err(format!("expected a mapping, found {v}"));
            };
            for key in obj.keys() {
                if !fields.iter().any(|f| f.name == key) {
                    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                    errors.push(format!("{path}: unknown field `{key}` (known: {known:?})"));
                }
            }
            for f in fields {
                match obj.get(f.name) {
                    Some(x) => check(x, &f.schema, &format!("{path}.{}", f.name), errors),
                    None if f.required => {
                        errors.push(format!("{path}: missing required field `{}`", f.name))
                    }
                    None => {}
                }
            }
        }
        S::Nullable(inner) => {
            if !v.is_null() {
                check(v, inner, path, errors);
            }
        }
        S::Checked(inner, rules) => {
            let before = errors.len();
            check(v, inner, path, errors);
            if errors.len() == before {
                for (message, ok) in rules {
                    if !ok(v) {
                        errors.push(format!("{path}: {message}"));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The API fields

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

fn metadata() -> S {
    S::Obj(vec![
        req("name", S::Pattern("a DNS-1123 subdomain", dns_subdomain)),
        // Required here: every manifest says where it goes.
        req("namespace", S::Pattern("a DNS-1123 label", dns_label)),
        opt("labels", map(S::Str)),
        opt("annotations", map(S::Str)),
    ])
}

fn label_selector() -> S {
    S::Obj(vec![
        opt("matchLabels", map(S::Str)),
        opt("matchExpressions", S::Any),
    ])
}

/// Istio `StringMatch`: one of exact, prefix, regex.
fn string_match() -> S {
    S::Obj(vec![
        opt("exact", S::Str),
        opt("prefix", S::Str),
        opt("regex", S::Str),
    ])
}

fn wasm_url(s: &str) -> bool {
    ["oci://", "file:///", "http://", "https://"]
        .iter()
        .any(|p| s.starts_with(p) && s.len() > p.len())
}

fn sha256(s: &str) -> bool {
    s.is_empty()
        || (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// `spec` of extensions.istio.io/v1alpha1 WasmPlugin.
fn wasm_plugin_spec() -> S {
    S::Obj(vec![
        opt("selector", label_selector()),
        opt("targetRef", S::Any),
        opt("targetRefs", S::Any),
        req(
            "url",
            S::Pattern("an oci://, file:///, http:// or https:// URL", wasm_url),
        ),
        opt(
            "sha256",
            S::Pattern("64 lower-case hex digits, or empty", sha256),
        ),
        opt(
            "imagePullPolicy",
            S::Enum(&["UNSPECIFIED_POLICY", "IfNotPresent", "Always"]),
        ),
        opt("imagePullSecret", S::Str),
        opt("pluginConfig", S::Any),
        opt("pluginName", S::Str),
        opt(
            "phase",
            S::Enum(&["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]),
        ),
        opt("priority", int()),
        // FAIL_RELOAD exists from Istio 1.27 on; these manifests stay valid for older ones.
        opt("failStrategy", S::Enum(&["FAIL_CLOSE", "FAIL_OPEN"])),
        opt(
            "type",
            S::Enum(&["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"]),
        ),
        opt("verificationKey", S::Str),
        opt(
            "vmConfig",
            S::Obj(vec![opt(
                "env",
                list(S::Obj(vec![
                    req("name", S::Str),
                    opt("value", S::Str),
                    opt("valueFrom", S::Enum(&["INLINE", "HOST"])),
                ])),
            )]),
        ),
        opt(
            "match",
            list(S::Obj(vec![
                opt(
                    "mode",
                    S::Enum(&["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"]),
                ),
                opt("ports", list(S::Obj(vec![req("number", port())]))),
            ])),
        ),
    ])
}

/// `spec` of extensions.istio.io/v1alpha1 TrafficExtension, field by field
/// as Istio publishes it: the CRD `trafficextensions.extensions.istio.io`
/// of istio/api v1.30.0 (`kubernetes/customresourcedefinitions.gen.yaml`,
/// generated from `extensions/v1alpha1/traffic_extension.proto`, where the
/// API first appears): its fields, enums, `minLength` / `maxLength`,
/// patterns, `maxItems`, list-map keys and `x-kubernetes-validations`.
fn traffic_extension_spec() -> S {
    // `^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`, at most 253.
    fn group(g: &str) -> bool {
        let label = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        g.len() <= 253 && (g.is_empty() || g.split('.').all(label))
    }
    // `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`, 1 to 63.
    fn kind(k: &str) -> bool {
        (1..=63).contains(&k.len())
            && k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !k.ends_with('-')
    }
    // `isURL(self) ? url(self).getScheme() in [...] : isURL('http://' + self) && ...`:
    // a scheme, if any, of those four (none means `oci://`), and a non-empty rest.
    fn url(u: &str) -> bool {
        match u.split_once("://") {
            Some((scheme, rest)) => {
                ["http", "https", "file", "oci"].contains(&scheme) && !rest.is_empty()
            }
            None => !u.is_empty() && !u.contains(char::is_whitespace),
        }
    }
    let selector = S::Obj(vec![opt(
        "matchLabels",
        checked(
            map(S::Pattern(
                "at most 63 characters, no wildcard (wildcard not allowed in label value match)",
                |v| v.len() <= 63 && !v.contains('*'),
            )),
            vec![
                ("wildcard not allowed in label key match", |m| {
                    m.as_object()
                        .is_some_and(|m| m.keys().all(|k| !k.contains('*')))
                }),
                ("key must not be empty", |m| {
                    m.as_object()
                        .is_some_and(|m| m.keys().all(|k| !k.is_empty()))
                }),
                ("at most 4096 labels (maxProperties)", |m| {
                    m.as_object().is_some_and(|m| m.len() <= 4096)
                }),
            ],
        ),
    )]);
    let target_ref = S::Obj(vec![
        opt(
            "group",
            S::Pattern("a DNS subdomain of at most 253 characters, or empty", group),
        ),
        req(
            "kind",
            S::Pattern("1 to 63 letters, digits and '-', a letter first", kind),
        ),
        req("name", len_str("1 to 253 characters", 1, 253)),
        opt(
            "namespace",
            S::Pattern(
                "empty (cross namespace referencing is not currently supported)",
                str::is_empty,
            ),
        ),
    ]);
    let traffic_selector = S::Obj(vec![
        opt(
            "mode",
            S::Enum(&["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"]),
        ),
        opt(
            "ports",
            checked(
                list(S::Obj(vec![req("number", port())])),
                vec![(
                    "two ports with one number (a list map keyed by number)",
                    |l| unique_by(l, "number"),
                )],
            ),
        ),
    ]);
    let env = checked(
        S::Obj(vec![
            req("name", len_str("1 to 256 characters", 1, 256)),
            opt("value", len_str("at most 2048 characters", 0, 2048)),
            opt("valueFrom", S::Enum(&["INLINE", "HOST"])),
        ]),
        vec![("value may only be set when valueFrom is INLINE", |e| {
            e.get("valueFrom").and_then(Value::as_str) != Some("HOST") || e.get("value").is_none()
        })],
    );
    let wasm = S::Obj(vec![
        req(
            "url",
            S::Pattern("url must have schema one of [http, https, file, oci]", url),
        ),
        opt(
            "sha256",
            S::Pattern("64 lower-case hex digits, or empty", sha256),
        ),
        opt(
            "imagePullPolicy",
            S::Enum(&["UNSPECIFIED_POLICY", "IfNotPresent", "Always"]),
        ),
        opt("imagePullSecret", len_str("1 to 253 characters", 1, 253)),
        opt("verificationKey", S::Str),
        // An object (`type: object`) of anything (`x-kubernetes-preserve-unknown-fields`).
        opt("pluginConfig", map(S::Any)),
        opt("pluginName", len_str("1 to 256 characters", 1, 256)),
        opt(
            "failStrategy",
            S::Enum(&["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]),
        ),
        opt(
            "vmConfig",
            S::Obj(vec![opt(
                "env",
                checked(
                    list(env),
                    vec![
                        ("at most 256 variables (maxItems)", |l| {
                            l.as_array().is_some_and(|l| l.len() <= 256)
                        }),
                        (
                            "two variables with one name (a list map keyed by name)",
                            |l| unique_by(l, "name"),
                        ),
                    ],
                ),
            )]),
        ),
        opt(
            "type",
            S::Enum(&["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"]),
        ),
    ]);
    checked(
        S::Obj(vec![
            opt("selector", selector),
            opt(
                "targetRefs",
                checked(
                    list(target_ref),
                    vec![("at most 16 targetRefs (maxItems)", |l| {
                        l.as_array().is_some_and(|l| l.len() <= 16)
                    })],
                ),
            ),
            opt(
                "phase",
                S::Enum(&["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]),
            ),
            opt("priority", S::Nullable(Box::new(int()))),
            opt("match", list(traffic_selector)),
            opt("wasm", wasm),
            opt(
                "lua",
                S::Obj(vec![req(
                    "inlineCode",
                    len_str("1 to 65536 characters", 1, 65536),
                )]),
            ),
        ]),
        vec![
            ("only one of targetRefs or selector can be set", |s| {
                !(s.get("selector").is_some() && s.get("targetRefs").is_some())
            }),
            ("exactly one of wasm or lua must be set", |s| {
                s.get("wasm").is_some() != s.get("lua").is_some()
            }),
        ],
    )
}

/// Whether the objects of a list have distinct values of `key`.
fn unique_by(list: &Value, key: &str) -> bool {
    let keys: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get(key))
        .map(Value::to_string)
        .collect();
    keys.iter().collect::<BTreeSet<_>>().len() == keys.len()
}

/// `spec` of networking.istio.io DestinationRule.
fn destination_rule_spec() -> S {
    S::Obj(vec![
        req("host", S::Str),
        opt("trafficPolicy", S::Any),
        opt(
            "subsets",
            list(S::Obj(vec![
                req("name", S::Str),
                opt("labels", map(S::Str)),
                opt("trafficPolicy", S::Any),
            ])),
        ),
        opt("exportTo", list(S::Str)),
        opt("workloadSelector", S::Any),
    ])
}

/// `spec` of networking.istio.io VirtualService (the HTTP part in full).
fn virtual_service_spec() -> S {
    let destination = S::Obj(vec![
        req("host", S::Str),
        opt("subset", S::Str),
        opt("port", S::Obj(vec![req("number", port())])),
    ]);
    let http_match = S::Obj(vec![
        opt("name", S::Str),
        opt("uri", string_match()),
        opt("scheme", string_match()),
        opt("method", string_match()),
        opt("authority", string_match()),
        opt("headers", map(string_match())),
        opt("port", port()),
        opt("sourceLabels", map(S::Str)),
        opt("gateways", list(S::Str)),
        opt("queryParams", map(string_match())),
        opt("ignoreUriCase", S::Bool),
        opt("withoutHeaders", map(string_match())),
        opt("sourceNamespace", S::Str),
        opt("statPrefix", S::Str),
    ]);
    let http_route = S::Obj(vec![
        opt("name", S::Str),
        opt("match", list(http_match)),
        opt(
            "route",
            list(S::Obj(vec![
                req("destination", destination),
                opt("weight", S::Int { min: 0, max: 100 }),
                opt("headers", S::Any),
            ])),
        ),
        opt("redirect", S::Any),
        opt("directResponse", S::Any),
        opt("delegate", S::Any),
        opt("rewrite", S::Any),
        opt("timeout", S::Str),
        opt("retries", S::Any),
        opt("fault", S::Any),
        opt("mirror", S::Any),
        opt("mirrors", S::Any),
        opt("mirrorPercentage", S::Any),
        opt("corsPolicy", S::Any),
        opt("headers", S::Any),
    ]);
    S::Obj(vec![
        opt("hosts", list(S::Str)),
        opt("gateways", list(S::Str)),
        opt("http", list(http_route)),
        opt("tls", S::Any),
        opt("tcp", S::Any),
        opt("exportTo", list(S::Str)),
    ])
}

/// `spec` of networking.istio.io/v1alpha3 EnvoyFilter.
fn envoy_filter_spec() -> S {
    let route_configuration = S::Obj(vec![
        opt("portNumber", port()),
        opt("portName", S::Str),
        opt("gateway", S::Str),
        opt("name", S::Str),
        opt(
            "vhost",
            S::Obj(vec![
                opt("name", S::Str),
                opt("domainName", S::Str),
                opt(
                    "route",
                    S::Obj(vec![
                        opt("name", S::Str),
                        opt(
                            "action",
                            S::Enum(&["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]),
                        ),
                    ]),
                ),
            ]),
        ),
    ]);
    S::Obj(vec![
        opt("workloadSelector", S::Obj(vec![opt("labels", map(S::Str))])),
        opt("targetRefs", S::Any),
        opt("priority", int()),
        req(
            "configPatches",
            list(S::Obj(vec![
                req(
                    "applyTo",
                    S::Enum(&[
                        "INVALID",
                        "LISTENER",
                        "FILTER_CHAIN",
                        "NETWORK_FILTER",
                        "HTTP_FILTER",
                        "ROUTE_CONFIGURATION",
                        "VIRTUAL_HOST",
                        "HTTP_ROUTE",
                        "CLUSTER",
                        "EXTENSION_CONFIG",
                        "BOOTSTRAP",
                        "LISTENER_FILTER",
                    ]),
                ),
                opt(
                    "match",
                    S::Obj(vec![
                        opt(
                            "context",
                            S::Enum(&["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]),
                        ),
                        opt("proxy", S::Any),
                        opt("listener", S::Any),
                        opt("routeConfiguration", route_configuration),
                        opt("cluster", S::Any),
                    ]),
                ),
                req(
                    "patch",
                    S::Obj(vec![
                        req(
                            "operation",
                            S::Enum(&[
                                "INVALID",
                                "MERGE",
                                "ADD",
                                "REMOVE",
                                "INSERT_BEFORE",
                                "INSERT_AFTER",
                                "INSERT_FIRST",
                                "REPLACE",
                            ]),
                        ),
                        opt("value", S::Any),
                        opt(
                            "filterClass",
                            S::Enum(&["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]),
                        ),
                    ]),
                ),
            ])),
        ),
    ])
}

fn probe() -> S {
    S::Obj(vec![
        opt(
            "httpGet",
            S::Obj(vec![
                opt(
                    "path",
                    S::Pattern("an absolute path", |p| p.starts_with('/')),
                ),
                req("port", S::IntOrStr),
                opt("scheme", S::Enum(&["HTTP", "HTTPS"])),
                opt("httpHeaders", S::Any),
            ]),
        ),
        opt("tcpSocket", S::Any),
        opt("exec", S::Any),
        opt("initialDelaySeconds", int()),
        opt("periodSeconds", int()),
        opt("timeoutSeconds", int()),
        opt("failureThreshold", int()),
        opt("successThreshold", int()),
    ])
}

/// apps/v1 Deployment `spec` (the pod fields these manifests can use).
fn deployment_spec() -> S {
    let container = S::Obj(vec![
        req("name", S::Pattern("a DNS-1123 label", dns_label)),
        req("image", S::Str),
        opt(
            "imagePullPolicy",
            S::Enum(&["Always", "IfNotPresent", "Never"]),
        ),
        opt("command", list(S::Str)),
        opt("args", list(S::Str)),
        opt("env", S::Any),
        opt(
            "ports",
            list(S::Obj(vec![
                opt(
                    "name",
                    S::Pattern("an IANA service name", |n| n.len() <= 15 && dns_label(n)),
                ),
                req("containerPort", port()),
                opt("protocol", S::Enum(&["TCP", "UDP", "SCTP"])),
            ])),
        ),
        opt(
            "volumeMounts",
            list(S::Obj(vec![
                req("name", S::Str),
                req(
                    "mountPath",
                    S::Pattern("an absolute path", |p| p.starts_with('/')),
                ),
                opt("readOnly", S::Bool),
                opt("subPath", S::Str),
            ])),
        ),
        opt("readinessProbe", probe()),
        opt("livenessProbe", probe()),
        opt("startupProbe", probe()),
        opt(
            "resources",
            S::Obj(vec![
                opt("requests", map(S::IntOrStr)),
                opt("limits", map(S::IntOrStr)),
            ]),
        ),
        opt("securityContext", S::Any),
    ]);
    let pod = S::Obj(vec![
        req("containers", list(container)),
        opt(
            "volumes",
            list(S::Obj(vec![
                req("name", S::Pattern("a DNS-1123 label", dns_label)),
                opt(
                    "configMap",
                    S::Obj(vec![
                        req("name", S::Str),
                        opt("items", S::Any),
                        opt("defaultMode", int()),
                        opt("optional", S::Bool),
                    ]),
                ),
            ])),
        ),
        opt("serviceAccountName", S::Str),
        opt("securityContext", S::Any),
        opt("nodeSelector", map(S::Str)),
        opt("tolerations", S::Any),
        opt("affinity", S::Any),
    ]);
    S::Obj(vec![
        opt("replicas", S::Int { min: 0, max: 1000 }),
        req("selector", label_selector()),
        req(
            "template",
            S::Obj(vec![
                opt(
                    "metadata",
                    S::Obj(vec![
                        opt("labels", map(S::Str)),
                        opt("annotations", map(S::Str)),
                    ]),
                ),
                req("spec", pod),
            ]),
        ),
        opt("strategy", S::Any),
        opt("minReadySeconds", int()),
        opt("revisionHistoryLimit", int()),
        opt("progressDeadlineSeconds", int()),
    ])
}

/// v1 Service `spec`.
fn service_spec() -> S {
    S::Obj(vec![
        opt(
            "type",
            S::Enum(&["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
        ),
        opt("selector", map(S::Str)),
        req(
            "ports",
            list(S::Obj(vec![
                opt("name", S::Pattern("a DNS-1123 label", dns_label)),
                req("port", port()),
                opt("targetPort", S::IntOrStr),
                opt("protocol", S::Enum(&["TCP", "UDP", "SCTP"])),
                opt("appProtocol", S::Str),
            ])),
        ),
    ])
}

/// The whole object: apiVersion, kind, metadata, and `spec` (or `data`).
fn object_schema(api_version: &str, kind: &str) -> Result<S, String> {
    let head = |body: Vec<F>| {
        let mut fields = vec![
            req("apiVersion", S::Str),
            req("kind", S::Str),
            req("metadata", metadata()),
        ];
        fields.extend(body);
        S::Obj(fields)
    };
    let istio_networking = [
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ];
    let spec = |s: S| head(vec![req("spec", s)]);
    match (api_version, kind) {
        ("extensions.istio.io/v1alpha1", "WasmPlugin") => Ok(spec(wasm_plugin_spec())),
        ("extensions.istio.io/v1alpha1", "TrafficExtension") => Ok(spec(traffic_extension_spec())),
        (v, "DestinationRule") if istio_networking.contains(&v) => {
            Ok(spec(destination_rule_spec()))
        }
        (v, "VirtualService") if istio_networking.contains(&v) => Ok(spec(virtual_service_spec())),
        ("networking.istio.io/v1alpha3", "EnvoyFilter") => Ok(spec(envoy_filter_spec())),
        ("apps/v1", "Deployment") => Ok(spec(deployment_spec())),
        ("v1", "Service") => Ok(spec(service_spec())),
        ("v1", "ConfigMap") => Ok(head(vec![
            opt("data", map(S::Str)),
            opt("binaryData", map(S::Str)),
            opt("immutable", S::Bool),
        ])),
        (v, k) => Err(format!("unknown apiVersion/kind {v}/{k}")),
    }
}

// ---------------------------------------------------------------------------
// The manifests

fn wasmplugin_dir() -> PathBuf {
    repo_root().join("wasmplugin")
}

/// Every YAML document of a file, as JSON values.
fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// One object, with the file it came from.
#[derive(Clone, Debug)]
struct Obj {
    file: String,
    v: Value,
}

impl Obj {
    fn kind(&self) -> &str {
        self.v["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.v["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn namespace(&self) -> &str {
        self.v["metadata"]["namespace"].as_str().unwrap_or_default()
    }
    fn spec(&self) -> &Value {
        &self.v["spec"]
    }
}

fn load_all() -> Vec<Obj> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(wasmplugin_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut objs = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = parse_docs(&text, &file);
        assert!(!docs.is_empty(), "{file}: no object");
        objs.extend(docs.into_iter().map(|v| Obj {
            file: file.clone(),
            v,
        }));
    }
    objs
}

fn schema_errors(v: &Value) -> Vec<String> {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    match object_schema(api, kind) {
        Ok(schema) => {
            let mut errors = Vec::new();
            check(v, &schema, kind, &mut errors);
            errors
        }
        Err(e) => vec![e],
    }
}

fn one<'a>(objs: &'a [Obj], kind: &str, file: &str) -> &'a Obj {
    let found: Vec<&Obj> = objs
        .iter()
        .filter(|o| o.kind() == kind && o.file == file)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in {file}");
    found[0]
}

fn plugin_config_bytes(o: &Obj) -> Vec<u8> {
    serde_json::to_vec(&o.spec()["pluginConfig"]).unwrap()
}

/// The sidecar these rules are judged for: a `frontend` pod in `default`.
fn frontend() -> Workload {
    Workload {
        namespace: Some("default".into()),
        labels: [
            ("app".into(), "frontend".into()),
            ("version".into(), "v1".into()),
        ]
        .into_iter()
        .collect(),
        gateway: false,
    }
}

fn plugin_of(o: &Obj) -> Plugin {
    Plugin::from_bytes(&plugin_config_bytes(o), &frontend())
        .unwrap_or_else(|e| panic!("{}: pluginConfig refused by the filter: {e}", o.file))
}

/// Every cluster a rule set can route to.
fn clusters(set: &canary_router::RuleSet) -> BTreeSet<String> {
    set.all_destinations()
        .map(|(_, _, d)| d.cluster.to_string())
        .collect()
}

const WASM_PLUGINS: [&str; 3] = [
    "wasmplugin.yaml",
    "wasmplugin-file.yaml",
    "wasmplugin-configmap.yaml",
];

/// Each TrafficExtension here and the WasmPlugin it stands for.
const TRAFFIC_EXTENSIONS: [(&str, &str); 5] = [
    ("trafficextension.yaml", "wasmplugin.yaml"),
    ("trafficextension-file.yaml", "wasmplugin-file.yaml"),
    (
        "trafficextension-configmap.yaml",
        "wasmplugin-configmap.yaml",
    ),
    ("gateway-trafficextension.yaml", "gateway-wasmplugin.yaml"),
    (
        "gateway-api-trafficextension.yaml",
        "gateway-api-wasmplugin.yaml",
    ),
];

/// The TrafficExtension istiod 1.30 makes of a WasmPlugin
/// (`pilot/pkg/config/kube/extensions/translate.go`, `translateWasmPlugin`):
/// `selector`, `targetRefs` (a singular `targetRef` becomes its one entry),
/// `priority` and `match` as they are; the phase by its enum number
/// (`PluginPhase` to `ExecutionPhase`: `UNSPECIFIED_PHASE` is
/// `UNSPECIFIED`); the module's fields under `wasm`; `verificationKey` is
/// not carried. Written here from that source, apart from canaryctl's.
fn as_istiod_translates(wp: &Value) -> Value {
    let spec = &wp["spec"];
    let mut te = serde_json::Map::new();
    if let Some(v) = spec.get("selector") {
        te.insert("selector".into(), v.clone());
    }
    match (spec.get("targetRefs"), spec.get("targetRef")) {
        (Some(refs), _) => {
            te.insert("targetRefs".into(), refs.clone());
        }
        (None, Some(one)) => {
            te.insert("targetRefs".into(), json!([one]));
        }
        (None, None) => {}
    }
    if let Some(p) = spec.get("phase") {
        let number = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]
            .iter()
            .position(|x| p == x)
            .expect("a WasmPlugin phase");
        te.insert(
            "phase".into(),
            json!(["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"][number]),
        );
    }
    for k in ["priority", "match"] {
        if let Some(v) = spec.get(k) {
            te.insert(k.into(), v.clone());
        }
    }
    let mut wasm = serde_json::Map::new();
    for k in [
        "url",
        "sha256",
        "imagePullPolicy",
        "imagePullSecret",
        "pluginConfig",
        "pluginName",
        "failStrategy",
        "vmConfig",
        "type",
    ] {
        if let Some(v) = spec.get(k) {
            wasm.insert(k.into(), v.clone());
        }
    }
    te.insert("wasm".into(), Value::Object(wasm));
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": wp["metadata"],
        "spec": te,
    })
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn every_manifest_parses_and_uses_only_known_api_fields() {
    let objs = load_all();
    let mut errors = Vec::new();
    for o in &objs {
        for e in schema_errors(&o.v) {
            errors.push(format!("{}: {} {}: {e}", o.file, o.kind(), o.name()));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The set of objects this directory is meant to hold.
    let kinds: BTreeSet<(String, String)> = objs
        .iter()
        .map(|o| (o.file.clone(), format!("{}/{}", o.kind(), o.name())))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("config-server.yaml", "Deployment/canary-rules"),
        ("config-server.yaml", "Service/canary-rules"),
        ("destinationrule.yaml", "DestinationRule/backend"),
        (
            "gateway-api-route-envoyfilter.yaml",
            "EnvoyFilter/canary-router-gateway-route",
        ),
        (
            "gateway-api-wasmplugin.yaml",
            "WasmPlugin/canary-router-gateway",
        ),
        (
            "gateway-route-envoyfilter.yaml",
            "EnvoyFilter/canary-router-gateway-route",
        ),
        (
            "gateway-wasmplugin.yaml",
            "WasmPlugin/canary-router-gateway",
        ),
        ("route-envoyfilter.yaml", "EnvoyFilter/canary-router-route"),
        ("route-virtualservice.yaml", "VirtualService/backend"),
        ("rules-configmap.yaml", "ConfigMap/canary-rules"),
        ("stats-bootstrap.yaml", "ConfigMap/canary-router-stats"),
        (
            "trafficextension-configmap.yaml",
            "TrafficExtension/canary-router",
        ),
        (
            "trafficextension-file.yaml",
            "TrafficExtension/canary-router",
        ),
        ("trafficextension.yaml", "TrafficExtension/canary-router"),
        (
            "gateway-trafficextension.yaml",
            "TrafficExtension/canary-router-gateway",
        ),
        (
            "gateway-api-trafficextension.yaml",
            "TrafficExtension/canary-router-gateway",
        ),
        ("wasmplugin-configmap.yaml", "WasmPlugin/canary-router"),
        ("wasmplugin-file.yaml", "WasmPlugin/canary-router"),
        ("wasmplugin.yaml", "WasmPlugin/canary-router"),
    ]
    .iter()
    .map(|(f, k)| (f.to_string(), k.to_string()))
    .collect();
    assert_eq!(
        kinds, want,
        "wasmplugin/ changed: check the new manifests here"
    );
}

#[test]
fn the_schema_check_rejects_typos_bad_enums_and_missing_fields() {
    let objs = load_all();
    let wp = one(&objs, "WasmPlugin", "wasmplugin.yaml").v.clone();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "misspelt spec field",
            Box::new(|v| v["spec"]["failstrategy"] = json!("FAIL_OPEN")),
            "unknown field `failstrategy`",
        ),
        (
            "bad phase",
            Box::new(|v| v["spec"]["phase"] = json!("STAT")),
            "spec.phase: expected one of",
        ),
        (
            "bad failStrategy",
            Box::new(|v| v["spec"]["failStrategy"] = json!("FAIL_OPENED")),
            "spec.failStrategy: expected one of",
        ),
        (
            "bad match mode",
            Box::new(|v| v["spec"]["match"][0]["mode"] = json!("CLIENTS")),
            "spec.match[0].mode: expected one of",
        ),
        (
            "bad pull policy",
            Box::new(|v| v["spec"]["imagePullPolicy"] = json!("Never")),
            "spec.imagePullPolicy",
        ),
        (
            "short sha256",
            Box::new(|v| v["spec"]["sha256"] = json!("abc")),
            "spec.sha256",
        ),
        (
            "no url",
            Box::new(|v| {
                v["spec"].as_object_mut().unwrap().remove("url");
            }),
            "missing required field `url`",
        ),
        (
            "ftp url",
            Box::new(|v| v["spec"]["url"] = json!("ftp://x/y.wasm")),
            "spec.url",
        ),
        (
            "port 0",
            Box::new(|v| v["spec"]["match"][0]["ports"][0]["number"] = json!(0)),
            "spec.match[0].ports[0].number",
        ),
        (
            "wrong apiVersion",
            Box::new(|v| v["apiVersion"] = json!("extensions.istio.io/v1")),
            "unknown apiVersion/kind",
        ),
        (
            "no namespace",
            Box::new(|v| {
                v["metadata"].as_object_mut().unwrap().remove("namespace");
            }),
            "missing required field `namespace`",
        ),
    ];
    for (what, edit, want) in cases {
        let mut v = wp.clone();
        edit(&mut v);
        let errors = schema_errors(&v);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{what}: expected an error containing {want:?}, got {errors:?}"
        );
    }
    let deployment = one(&objs, "Deployment", "config-server.yaml").v.clone();
    let mut v = deployment.clone();
    v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresnt");
    assert!(schema_errors(&v)
        .iter()
        .any(|e| e.contains("imagePullPolicy")));
    let mut v = deployment;
    v["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = json!([]);
    assert!(schema_errors(&v)
        .iter()
        .any(|e| e.contains("unknown field `volumeMount`")));
}

/// Where a manifest's module fields (`sha256`, `url`...) are: a WasmPlugin's
/// `spec`, a TrafficExtension's `spec.wasm`.
fn module_fields(doc: &mut Value) -> &mut Value {
    if doc["spec"].get("wasm").is_some() {
        &mut doc["spec"]["wasm"]
    } else {
        &mut doc["spec"]
    }
}

/// The TrafficExtension schema refuses what Istio 1.30's CRD refuses,
/// starting with the spellings a WasmPlugin uses: a top-level `url`, the
/// phase `UNSPECIFIED_PHASE`, a singular `targetRef`.
#[test]
fn the_traffic_extension_schema_is_istios_crd() {
    let objs = load_all();
    let te = one(&objs, "TrafficExtension", "trafficextension.yaml")
        .v
        .clone();
    let gw = one(
        &objs,
        "TrafficExtension",
        "gateway-api-trafficextension.yaml",
    )
    .v
    .clone();
    type Edit = Box<dyn Fn(&mut Value)>;
    let refused: Vec<(&str, &Value, Edit, &str)> = vec![
        (
            "the WasmPlugin's phase",
            &te,
            Box::new(|v| v["spec"]["phase"] = json!("UNSPECIFIED_PHASE")),
            "spec.phase: expected one of",
        ),
        (
            "url at the top",
            &te,
            Box::new(|v| v["spec"]["url"] = json!("oci://r/c:1")),
            "unknown field `url`",
        ),
        (
            "pluginConfig at the top",
            &te,
            Box::new(|v| v["spec"]["pluginConfig"] = json!({})),
            "unknown field `pluginConfig`",
        ),
        (
            "a singular targetRef",
            &gw,
            Box::new(|v| v["spec"]["targetRef"] = json!({"kind": "Gateway", "name": "x"})),
            "unknown field `targetRef`",
        ),
        (
            "selector and targetRefs",
            &gw,
            Box::new(|v| v["spec"]["selector"] = json!({"matchLabels": {"a": "b"}})),
            "only one of targetRefs or selector can be set",
        ),
        (
            "neither wasm nor lua",
            &te,
            Box::new(|v| {
                v["spec"].as_object_mut().unwrap().remove("wasm");
            }),
            "exactly one of wasm or lua must be set",
        ),
        (
            "wasm and lua",
            &te,
            Box::new(|v| v["spec"]["lua"] = json!({"inlineCode": "x"})),
            "exactly one of wasm or lua must be set",
        ),
        (
            "no url",
            &te,
            Box::new(|v| {
                v["spec"]["wasm"].as_object_mut().unwrap().remove("url");
            }),
            "missing required field `url`",
        ),
        (
            "an ftp url",
            &te,
            Box::new(|v| v["spec"]["wasm"]["url"] = json!("ftp://x/y.wasm")),
            "spec.wasm.url: expected url must have schema",
        ),
        (
            "a short sha256",
            &te,
            Box::new(|v| v["spec"]["wasm"]["sha256"] = json!("abc")),
            "spec.wasm.sha256",
        ),
        (
            "a bad failStrategy",
            &te,
            Box::new(|v| v["spec"]["wasm"]["failStrategy"] = json!("FAIL_OPENED")),
            "spec.wasm.failStrategy: expected one of",
        ),
        (
            "a bad pull policy",
            &te,
            Box::new(|v| v["spec"]["wasm"]["imagePullPolicy"] = json!("Never")),
            "spec.wasm.imagePullPolicy",
        ),
        (
            "an empty pluginName",
            &te,
            Box::new(|v| v["spec"]["wasm"]["pluginName"] = json!("")),
            "spec.wasm.pluginName",
        ),
        (
            "a long pull secret",
            &te,
            Box::new(|v| v["spec"]["wasm"]["imagePullSecret"] = json!("s".repeat(254))),
            "spec.wasm.imagePullSecret",
        ),
        (
            "pluginConfig not an object",
            &te,
            Box::new(|v| v["spec"]["wasm"]["pluginConfig"] = json!("{}")),
            "spec.wasm.pluginConfig: expected a mapping",
        ),
        (
            "a bad match mode",
            &te,
            Box::new(|v| v["spec"]["match"][0]["mode"] = json!("CLIENTS")),
            "spec.match[0].mode: expected one of",
        ),
        (
            "port 0",
            &te,
            Box::new(|v| v["spec"]["match"][0]["ports"][0]["number"] = json!(0)),
            "spec.match[0].ports[0].number",
        ),
        (
            "a port twice",
            &te,
            Box::new(|v| v["spec"]["match"][0]["ports"] = json!([{"number": 80}, {"number": 80}])),
            "a list map keyed by number",
        ),
        (
            "matchExpressions",
            &te,
            Box::new(|v| v["spec"]["selector"]["matchExpressions"] = json!([])),
            "unknown field `matchExpressions`",
        ),
        (
            "a wildcard label",
            &te,
            Box::new(|v| v["spec"]["selector"]["matchLabels"]["app"] = json!("front*")),
            "wildcard not allowed in label value match",
        ),
        (
            "a cross-namespace targetRef",
            &gw,
            Box::new(|v| v["spec"]["targetRefs"][0]["namespace"] = json!("other")),
            "cross namespace referencing is not currently supported",
        ),
        (
            "a targetRef without kind",
            &gw,
            Box::new(|v| {
                v["spec"]["targetRefs"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("kind");
            }),
            "missing required field `kind`",
        ),
        (
            "17 targetRefs",
            &gw,
            Box::new(|v| {
                v["spec"]["targetRefs"] = json!(vec![json!({"kind": "Gateway", "name": "g"}); 17])
            }),
            "at most 16 targetRefs",
        ),
        (
            "a host env value",
            &te,
            Box::new(|v| {
                v["spec"]["wasm"]["vmConfig"] =
                    json!({"env": [{"name": "A", "valueFrom": "HOST", "value": "x"}]})
            }),
            "value may only be set when valueFrom is INLINE",
        ),
        (
            "an empty Lua",
            &te,
            Box::new(|v| {
                v["spec"].as_object_mut().unwrap().remove("wasm");
                v["spec"]["lua"] = json!({"inlineCode": ""});
            }),
            "spec.lua.inlineCode",
        ),
    ];
    for (what, base, edit, want) in refused {
        let mut v = base.clone();
        edit(&mut v);
        let errors = schema_errors(&v);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{what}: expected an error containing {want:?}, got {errors:?}"
        );
    }
    // What the CRD accepts that a WasmPlugin of Istio 1.2x does not, and
    // what it makes optional.
    let accepted: Vec<(&str, &Value, Edit)> = vec![
        (
            "FAIL_RELOAD",
            &te,
            Box::new(|v| v["spec"]["wasm"]["failStrategy"] = json!("FAIL_RELOAD")),
        ),
        (
            "a url without a scheme (oci)",
            &te,
            Box::new(|v| v["spec"]["wasm"]["url"] = json!("registry/canary-router:0.1.0")),
        ),
        (
            "a null priority",
            &te,
            Box::new(|v| v["spec"]["priority"] = Value::Null),
        ),
        (
            "no selector: the whole namespace",
            &te,
            Box::new(|v| {
                v["spec"].as_object_mut().unwrap().remove("selector");
            }),
        ),
        (
            "Lua instead of wasm",
            &te,
            Box::new(|v| {
                v["spec"].as_object_mut().unwrap().remove("wasm");
                v["spec"]["lua"] = json!({"inlineCode": "function envoy_on_request(h) end"});
            }),
        ),
        (
            "every phase",
            &te,
            Box::new(|v| v["spec"]["phase"] = json!("STATS")),
        ),
    ];
    for (what, base, edit) in accepted {
        let mut v = base.clone();
        edit(&mut v);
        let errors = schema_errors(&v);
        assert!(errors.is_empty(), "{what}: {errors:?}");
    }
}

/// Each TrafficExtension is its WasmPlugin as istiod 1.30 converts it, so
/// both run the same filter with the same rules on the same workloads,
/// before the router, failing open; and its rules pass the filter.
#[test]
fn each_traffic_extension_is_its_wasmplugin_as_istiod_converts_it() {
    let objs = load_all();
    for (te_file, wp_file) in TRAFFIC_EXTENSIONS {
        let te = one(&objs, "TrafficExtension", te_file);
        let wp = one(&objs, "WasmPlugin", wp_file);
        assert_eq!(
            te.v,
            as_istiod_translates(&wp.v),
            "{te_file} is not {wp_file} as istiod converts it"
        );
        assert_eq!(te.spec()["phase"], "UNSPECIFIED", "{te_file}");
        assert_eq!(te.spec()["wasm"]["failStrategy"], "FAIL_OPEN", "{te_file}");
        let bytes = serde_json::to_vec(&te.spec()["wasm"]["pluginConfig"]).unwrap();
        let workload = if te.namespace() == "default" {
            frontend()
        } else {
            Workload {
                gateway: true,
                ..Workload::default()
            }
        };
        Plugin::from_bytes(&bytes, &workload)
            .unwrap_or_else(|e| panic!("{te_file}: pluginConfig refused by the filter: {e}"));
    }
    // The translation itself: a singular targetRef, the other phases, and
    // verificationKey left behind.
    let wp = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "a", "namespace": "b"},
        "spec": {"targetRef": {"kind": "Gateway", "name": "g"}, "phase": "AUTHZ", "priority": 7,
                 "url": "oci://r/c:1", "verificationKey": "k"}});
    assert_eq!(
        as_istiod_translates(&wp)["spec"],
        json!({"targetRefs": [{"kind": "Gateway", "name": "g"}], "phase": "AUTHZ", "priority": 7,
               "wasm": {"url": "oci://r/c:1"}})
    );
}

#[test]
fn wasm_plugins_are_one_object_for_client_sidecars_with_valid_rules() {
    let objs = load_all();
    let plugins: Vec<&Obj> = WASM_PLUGINS
        .iter()
        .map(|f| one(&objs, "WasmPlugin", f))
        .collect();
    // Variants of one object: apply one.
    for p in &plugins {
        assert_eq!(
            (p.namespace(), p.name()),
            ("default", "canary-router"),
            "{}",
            p.file
        );
        let s = p.spec();
        assert_eq!(
            s["match"],
            json!([{"mode": "CLIENT", "ports": [{"number": 80}]}]),
            "{}",
            p.file
        );
        assert_eq!(s["failStrategy"], "FAIL_OPEN", "{}", p.file);
        assert_eq!(s["pluginName"], "canary-router", "{}", p.file);
        assert!(s["phase"].is_string(), "{}", p.file);
        assert_eq!(s["selector"], plugins[0].spec()["selector"], "{}", p.file);
        assert!(s["sha256"].is_string(), "{}: pinned with sha256", p.file);
        // Every pluginConfig passes the filter's own validation.
        let plugin = plugin_of(p);
        assert_eq!(
            &*plugin.settings.route_header, "x-canary-upstream",
            "{}",
            p.file
        );
    }
    assert!(plugins[0].spec()["url"]
        .as_str()
        .unwrap()
        .starts_with("oci://"));
    assert!(plugins[1].spec()["url"]
        .as_str()
        .unwrap()
        .starts_with("file:///"));
    assert!(plugins[2].spec()["url"]
        .as_str()
        .unwrap()
        .starts_with("oci://"));
    // The inline rules are the examples' rules.
    let weighted: Value = serde_json::from_str(
        &std::fs::read_to_string(example_dir("weighted").join("rules.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(plugins[0].spec()["pluginConfig"], weighted);
    assert_eq!(plugins[1].spec()["pluginConfig"], weighted);
    // The OCI image's runtime config names the plugin's root id.
    let runtime: Value = serde_json::from_str(
        &std::fs::read_to_string(wasmplugin_dir().join("runtime-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(runtime["type"], "envoy_proxy");
    assert_eq!(runtime["config"]["root_ids"], json!(["canary-router"]));
}

#[test]
fn every_cluster_the_rules_produce_is_a_subset_both_routing_variants_accept() {
    let objs = load_all();
    let dr = one(&objs, "DestinationRule", "destinationrule.yaml");
    let host = dr.spec()["host"].as_str().unwrap();
    let subsets: BTreeSet<&str> = dr.spec()["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(host, "backend.default.svc.cluster.local");
    assert_eq!(subsets, BTreeSet::from(["v1", "v2"]));
    let port = 80;
    let cluster_of = |subset: &str| format!("outbound|{port}|{subset}|{host}");

    // Every rule set: the inline ones, and the ConfigMap's file judged with
    // the polling plugin's settings.
    let mut rule_sets = Vec::new();
    for f in ["wasmplugin.yaml", "wasmplugin-file.yaml"] {
        let rules = plugin_of(one(&objs, "WasmPlugin", f))
            .rules
            .expect("inline rules");
        rule_sets.push((f.to_string(), rules.set));
    }
    let poll = plugin_of(one(&objs, "WasmPlugin", "wasmplugin-configmap.yaml"));
    assert!(
        poll.rules.is_none(),
        "the polling variant has no inline rules"
    );
    let cm = one(&objs, "ConfigMap", "rules-configmap.yaml");
    let file = cm.v["data"]["rules.json"]
        .as_str()
        .expect("data.rules.json");
    let rules = plugin::rule_file_from_bytes(file.as_bytes(), &poll.settings, &frontend())
        .unwrap_or_else(|e| panic!("rules-configmap.yaml: rules.json refused by the filter: {e}"));
    rule_sets.push(("rules-configmap.yaml".into(), rules.set));

    let ef = one(&objs, "EnvoyFilter", "route-envoyfilter.yaml");
    let route = &ef.spec()["configPatches"][0]["patch"]["value"];
    let header = &route["match"]["headers"][0];
    assert_eq!(header["name"], "x-canary-upstream");
    let regex = regex_lite::Regex::new(
        header["string_match"]["safe_regex"]["regex"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let vs = one(&objs, "VirtualService", "route-virtualservice.yaml");
    let vs_map: BTreeMap<String, String> = vs.spec()["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let exact = r["match"][0]["headers"]["x-canary-upstream"]["exact"].as_str()?;
            let d = &r["route"][0]["destination"];
            assert_eq!(d["host"], host);
            assert_eq!(d["port"]["number"], port);
            Some((exact.to_string(), d["subset"].as_str().unwrap().to_string()))
        })
        .collect();

    for (origin, set) in &rule_sets {
        let produced = clusters(set);
        assert!(!produced.is_empty(), "{origin}");
        for c in &produced {
            let parts: Vec<&str> = c.split('|').collect();
            assert!(
                matches!(parts.as_slice(), ["outbound", p, s, h] if *p == "80" && subsets.contains(s) && *h == host),
                "{origin}: cluster {c} is not outbound|{port}|<subset of destinationrule.yaml>|{host}"
            );
            assert!(
                regex.is_match(c),
                "{origin}: the EnvoyFilter's route does not accept {c}"
            );
            assert_eq!(
                vs_map.get(c).map(String::as_str),
                Some(parts[2]),
                "{origin}: the VirtualService does not map {c} to subset {}",
                parts[2]
            );
        }
    }
    // And the route accepts nothing else: exactly the DestinationRule's subsets.
    for s in &subsets {
        assert!(regex.is_match(&cluster_of(s)));
    }
    for other in [
        cluster_of("v3"),
        "outbound|80|v1|backend.other.svc.cluster.local".to_string(),
        format!("outbound|8080|v1|{host}"),
        format!("outbound|80||{host}"),
        format!("x{}", cluster_of("v1")),
        format!("{}x", cluster_of("v2")),
        "outbound|443||admin.internal.svc.cluster.local".to_string(),
    ] {
        assert!(
            !regex.is_match(&other),
            "the EnvoyFilter's route accepts {other}"
        );
    }
    let vs_clusters: BTreeSet<String> = vs_map.keys().cloned().collect();
    let dr_clusters: BTreeSet<String> = subsets.iter().map(|s| cluster_of(s)).collect();
    assert_eq!(
        vs_clusters, dr_clusters,
        "the VirtualService maps exactly the DestinationRule's subsets"
    );
    // Its last route (no match) is the fallback, a subset of the DestinationRule.
    let last = vs.spec()["http"].as_array().unwrap().last().unwrap();
    assert!(last.get("match").is_none());
    assert!(subsets.contains(last["route"][0]["destination"]["subset"].as_str().unwrap()));
    assert!(vs.spec()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h == host));
}

/// The action istiod gives a route without policies (the oracle's
/// translation), to the cluster the route header names: what a glue route
/// must carry so that a routed request keeps Istio's defaults.
fn istiod_route(route_header: &str) -> Value {
    let http = json!([{"route": [{"destination": {"host": "backend", "subset": "v1"}}]}]);
    let routes = envoy_runner::route_policy::routes(&http, "backend", 80, &|_| "c".into()).unwrap();
    let mut action = routes[0]["route"].clone();
    action.as_object_mut().unwrap().remove("cluster");
    action["cluster_header"] = json!(route_header);
    action
}

/// Every route that honours the route header, in `examples/*/envoy.yaml`
/// and in the manifests, carries what istiod puts on its routes; so does
/// each example's default route (what the sidecar does without the filter).
#[test]
fn every_glue_route_carries_istiods_timeout_and_retry_policy() {
    let mut checked = 0;
    for name in envoy_runner::example_names() {
        let config = EnvoyConfig::from_example(&name).unwrap();
        let doc = config.value();
        for l in doc["static_resources"]["listeners"].as_array().unwrap() {
            let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
            for vh in hcm["route_config"]["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for r in vh["routes"].as_array().into_iter().flatten() {
                    let action = &r["route"];
                    if action.get("cluster_header").is_some() {
                        assert_eq!(*action, istiod_route("x-canary-upstream"), "{name}: {r:#}");
                        checked += 1;
                    } else if r["name"] == "default" {
                        let mut want = istiod_route("x-canary-upstream");
                        want.as_object_mut().unwrap().remove("cluster_header");
                        want["cluster"] = action["cluster"].clone();
                        assert_eq!(*action, want, "{name}: {r:#}");
                    }
                }
            }
        }
    }
    assert!(checked >= 8, "{checked} glue routes in the examples");
}

#[test]
fn the_envoy_filter_patches_backends_outbound_route_on_the_plugins_workloads() {
    let objs = load_all();
    let ef = one(&objs, "EnvoyFilter", "route-envoyfilter.yaml");
    let wp = one(&objs, "WasmPlugin", "wasmplugin.yaml");
    assert_eq!(ef.namespace(), wp.namespace());
    assert_eq!(
        ef.spec()["workloadSelector"]["labels"],
        wp.spec()["selector"]["matchLabels"]
    );
    let patch = &ef.spec()["configPatches"][0];
    assert_eq!(patch["applyTo"], "HTTP_ROUTE");
    assert_eq!(patch["match"]["context"], "SIDECAR_OUTBOUND");
    assert_eq!(patch["match"]["routeConfiguration"]["portNumber"], 80);
    assert_eq!(
        patch["match"]["routeConfiguration"]["vhost"]["name"],
        "backend.default.svc.cluster.local:80"
    );
    assert_eq!(
        patch["patch"]["operation"], "INSERT_FIRST",
        "placed before Istio's own route"
    );
    let route = &patch["patch"]["value"];
    let keys: BTreeSet<&str> = route
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["name", "match", "route", "decorator"])
    );
    assert_eq!(route["match"]["prefix"], "/");
    assert_eq!(route["route"], istiod_route("x-canary-upstream"));
    assert_eq!(
        route["decorator"]["operation"],
        "backend.default.svc.cluster.local:80/*"
    );
}

#[test]
fn the_polling_plugin_points_at_the_config_server_and_the_file_it_serves() {
    let objs = load_all();
    let poll = plugin_of(one(&objs, "WasmPlugin", "wasmplugin-configmap.yaml"));
    let source = poll.settings.source.as_ref().expect("a ruleSource");
    let svc = one(&objs, "Service", "config-server.yaml");
    let deploy = one(&objs, "Deployment", "config-server.yaml");
    let cm = one(&objs, "ConfigMap", "rules-configmap.yaml");
    assert_eq!(svc.namespace(), deploy.namespace());
    assert_eq!(cm.namespace(), deploy.namespace());
    let ports = svc.spec()["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    let svc_port = ports[0]["port"].as_i64().unwrap();
    // Istio's outbound cluster of the Service, and its host as :authority.
    let fqdn = format!("{}.{}.svc.cluster.local", svc.name(), svc.namespace());
    assert_eq!(&*source.cluster, format!("outbound|{svc_port}||{fqdn}"));
    assert_eq!(&*source.authority, fqdn);
    // The Service selects the Deployment's pods, on a port the container opens.
    let pod_labels = &deploy.spec()["template"]["metadata"]["labels"];
    for (k, v) in svc.spec()["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }
    for (k, v) in deploy.spec()["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[k], v, "Deployment selector {k}");
    }
    let pod = &deploy.spec()["template"]["spec"];
    let container = &pod["containers"][0];
    let target = &ports[0]["targetPort"];
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| &p["name"] == target || &p["containerPort"] == target),
        "targetPort {target} is a port of the container"
    );
    assert!(container["image"].as_str().unwrap().starts_with("nginx:"));
    // nginx serves /usr/share/nginx/html; the ConfigMap is mounted below it,
    // so the path polled is the mount point plus the ConfigMap's key.
    let mount = &container["volumeMounts"][0];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"], cm.name());
    let served = mount["mountPath"]
        .as_str()
        .unwrap()
        .strip_prefix("/usr/share/nginx/html")
        .expect("mounted under nginx's document root");
    let keys: Vec<&String> = cm.v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["rules.json"]);
    assert_eq!(&*source.path, format!("{served}/rules.json"));
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        &*source.path
    );
    assert_eq!(
        deploy.spec()["replicas"],
        1,
        "one replica: see config-server.yaml"
    );
    // The ConfigMap's rules are the configmap-poll example's first file.
    let example: Value = serde_json::from_slice(
        &std::fs::read(example_dir("configmap-poll").join("rule-file-90-10.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(cm.v["data"]["rules.json"].as_str().unwrap()).unwrap(),
        example
    );
}

#[test]
fn the_stats_bootstrap_adds_the_examples_stats_tags() {
    let objs = load_all();
    let cm = one(&objs, "ConfigMap", "stats-bootstrap.yaml");
    let wp = one(&objs, "WasmPlugin", "wasmplugin.yaml");
    assert_eq!(
        cm.namespace(),
        wp.namespace(),
        "the bootstrap override lives with the pods"
    );
    let bootstrap: Value = serde_json::from_str(
        cm.v["data"]["custom_bootstrap.json"]
            .as_str()
            .expect("custom_bootstrap.json"),
    )
    .unwrap();
    let example = EnvoyConfig::from_example("weighted").unwrap();
    assert_eq!(
        bootstrap["stats_config"]["stats_tags"],
        example.value()["stats_config"]["stats_tags"]
    );
    assert_eq!(
        bootstrap.as_object().unwrap().len(),
        1,
        "only stats_config is merged"
    );
    // The tags turn the filter's counter name into labels.
    let name = "wasmcustom.canary_router.requests.service=backend.default.svc.cluster.local;.rule=split;.destination=v2;";
    for tag in bootstrap["stats_config"]["stats_tags"].as_array().unwrap() {
        let re = regex_lite::Regex::new(tag["regex"].as_str().unwrap()).unwrap();
        let caps = re
            .captures(name)
            .unwrap_or_else(|| panic!("{tag} matches nothing"));
        assert!(caps.get(2).is_some_and(|m| !m.as_str().is_empty()), "{tag}");
    }
}

#[test]
fn pin_sha256_sets_the_checksums_and_refuses_bad_input() {
    let dir = std::env::temp_dir().join(format!("canary-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pinned_files: Vec<&str> = WASM_PLUGINS
        .iter()
        .copied()
        .chain(TRAFFIC_EXTENSIONS.iter().take(3).map(|(te, _)| *te))
        .collect();
    for f in &pinned_files {
        std::fs::copy(wasmplugin_dir().join(f), dir.join(f)).unwrap();
    }
    let module = dir.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0canary").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(wasmplugin_dir().join("pin-sha256.sh"))
            .args(args)
            .env("WASMPLUGIN_DIR", &dir)
            .output()
            .unwrap()
    };
    // A WasmPlugin's spec.sha256, a TrafficExtension's spec.wasm.sha256.
    let sha_of = |f: &str| -> String {
        let docs = parse_docs(&std::fs::read_to_string(dir.join(f)).unwrap(), f);
        let spec = &docs[0]["spec"];
        spec.get("wasm").unwrap_or(spec)["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let out = run(&["file", module.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = String::from_utf8(
        std::process::Command::new("sha256sum")
            .arg(&module)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(sha_of("wasmplugin-file.yaml"), expected);
    assert_eq!(sha_of("trafficextension-file.yaml"), expected);
    let digest = "4f0c".repeat(16);
    let out = run(&["oci", &format!("sha256:{digest}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha_of("wasmplugin.yaml"), digest);
    assert_eq!(sha_of("wasmplugin-configmap.yaml"), digest);
    assert_eq!(sha_of("trafficextension.yaml"), digest);
    assert_eq!(sha_of("trafficextension-configmap.yaml"), digest);
    for f in ["wasmplugin-file.yaml", "trafficextension-file.yaml"] {
        assert_eq!(sha_of(f), expected, "the OCI pin leaves {f} alone");
    }
    // Still valid manifests afterwards, the rest unchanged.
    for f in &pinned_files {
        let pinned = parse_docs(&std::fs::read_to_string(dir.join(f)).unwrap(), f);
        assert!(schema_errors(&pinned[0]).is_empty(), "{f}");
        let mut original = parse_docs(
            &std::fs::read_to_string(wasmplugin_dir().join(f)).unwrap(),
            f,
        );
        module_fields(&mut original[0])["sha256"] = json!(sha_of(f));
        assert_eq!(pinned[0], original[0], "{f}");
    }
    for bad in [
        vec!["oci", "sha256:XYZ"],
        vec!["file", "/no/such/file"],
        vec!["tar", "x"],
        vec!["oci"],
    ] {
        let out = run(&bad);
        assert!(!out.status.success(), "{bad:?} accepted");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_image_holds_only_the_module() {
    let dockerfile = std::fs::read_to_string(wasmplugin_dir().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        instructions,
        ["FROM scratch", "COPY plugin.wasm ./plugin.wasm"]
    );
    let ignore = std::fs::read_to_string(wasmplugin_dir().join(".dockerignore")).unwrap();
    let rules: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(rules, ["*", "!plugin.wasm"]);
    assert!(Path::new(&wasmplugin_dir().join(".gitignore")).is_file());
}

/// The ingress gateway's manifests: a WasmPlugin by `selector` (the classic
/// `istio: ingressgateway`) and one by `targetRefs` (a Gateway API Gateway),
/// each with its routing glue. Match mode CLIENT (Istio's reference: CLIENT
/// or CLIENT_AND_SERVER on a gateway) and no ports (the gateway's listener
/// port is its own), the last phase of the extensions, the rules of
/// `examples/gateway-cookie` (judged as on a gateway, where every
/// destination needs its port), and a route that accepts exactly the
/// clusters those rules produce, the same as the example's `canary` route.
#[test]
fn the_gateway_manifests_issue_the_cookie_on_the_gateways_and_route_its_clusters() {
    let objs = load_all();
    let gateway = Workload {
        namespace: Some("istio-system".into()),
        labels: [("istio".into(), "ingressgateway".into())]
            .into_iter()
            .collect(),
        gateway: true,
    };
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(example_dir("gateway-cookie").join("rules.json")).unwrap(),
    )
    .unwrap();
    let target =
        json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "shop-gateway"}]);
    for (plugin_file, route_file) in [
        ("gateway-wasmplugin.yaml", "gateway-route-envoyfilter.yaml"),
        (
            "gateway-api-wasmplugin.yaml",
            "gateway-api-route-envoyfilter.yaml",
        ),
    ] {
        let wp = one(&objs, "WasmPlugin", plugin_file);
        let ef = one(&objs, "EnvoyFilter", route_file);
        let s = wp.spec();
        assert_eq!(s["match"], json!([{"mode": "CLIENT"}]), "{plugin_file}");
        assert_eq!(s["phase"], "UNSPECIFIED_PHASE", "{plugin_file}");
        assert_eq!(s["failStrategy"], "FAIL_OPEN", "{plugin_file}");
        assert_eq!(s["pluginName"], "canary-router", "{plugin_file}");
        assert_eq!(s["pluginConfig"], example, "{plugin_file}");
        // One of selector and targetRefs, the same workloads as the glue's.
        assert!(s.get("selector").is_some() != s.get("targetRefs").is_some());
        assert_eq!(ef.namespace(), wp.namespace(), "{route_file}");
        match s.get("selector") {
            Some(sel) => {
                assert_eq!(wp.namespace(), "istio-system");
                assert_eq!(sel["matchLabels"], json!({"istio": "ingressgateway"}));
                assert_eq!(ef.spec()["workloadSelector"]["labels"], sel["matchLabels"]);
            }
            None => {
                assert_eq!(s["targetRefs"], target);
                assert_eq!(ef.spec()["targetRefs"], target);
            }
        }
        let rules = Plugin::from_bytes(&plugin_config_bytes(wp), &gateway)
            .unwrap_or_else(|e| panic!("{plugin_file}: refused on a gateway: {e}"))
            .rules
            .expect("inline rules");
        let route = &rules.set.services()[0].rules[0].route;
        assert!(route.issuer().is_some(), "{plugin_file}: issues the cookie");
        let patch = &ef.spec()["configPatches"][0];
        assert_eq!(patch["applyTo"], "HTTP_ROUTE");
        assert_eq!(patch["match"]["context"], "GATEWAY");
        assert_eq!(patch["match"]["routeConfiguration"]["portNumber"], 80);
        assert_eq!(
            patch["match"]["routeConfiguration"]["vhost"]["name"],
            "shop.example.com:80"
        );
        assert_eq!(patch["patch"]["operation"], "INSERT_FIRST");
        let value = &patch["patch"]["value"];
        assert_eq!(value["route"], istiod_route("x-canary-upstream"));
        let regex = regex_lite::Regex::new(
            value["match"]["headers"][0]["string_match"]["safe_regex"]["regex"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let produced = clusters(&rules.set);
        assert_eq!(produced.len(), 2);
        for c in &produced {
            assert!(regex.is_match(c), "{route_file}: does not accept {c}");
        }
        for other in [
            "outbound|80|v3|backend.default.svc.cluster.local",
            "outbound|80||backend.default.svc.cluster.local",
            "outbound|443||admin.internal.svc.cluster.local",
        ] {
            assert!(!regex.is_match(other), "{route_file}: accepts {other}");
        }
    }
}
