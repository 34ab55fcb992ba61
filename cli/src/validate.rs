//! `canaryctl validate`: the filter's own checks, with the JSON path of the
//! first bad field.

use std::path::PathBuf;

use canary_router::domain::plugin::Settings;

use crate::error::{CliError, Result};
use crate::input::{self, Kind};
use crate::summary::{self, Identity};

/// Check rules exactly as the filter's configure does.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Check rules exactly as the filter's configure does (the filter crate's own parser), \
naming the JSON path of the first bad field.\n\n\
Accepts a plugin configuration, a bare rule file {\"services\": [...]}, a WasmPlugin, TrafficExtension or \
ConfigMap manifest (spec.pluginConfig, spec.wasm.pluginConfig, data[\"*.json\"|\"*.yaml\"]), or an Envoy bootstrap (the configuration \
of each wasm HTTP filter, judged with the bootstrap's node metadata as the sidecar identity); \
JSON or YAML, several files, or - for standard input. YAML is converted to JSON first, so paths \
are the same.",
    after_help = "\
Examples:
  canaryctl validate examples/weighted/rules.json
  canaryctl validate --labels app=frontend,version=v2 --namespace default examples/source-labels/rules.json
  canaryctl validate wasmplugin/*.yaml
  kubectl get wasmplugin canary-router -o yaml | canaryctl validate -

Exit codes: 0 every configuration is accepted, 1 one is rejected (the error names the file and
the JSON path), 2 a file cannot be read."
)]
pub struct Args {
    /// Files to check (JSON or YAML; `-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub identity: Identity,
    /// Print only errors and notes.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `validate`.
pub fn run(args: &Args) -> Result<()> {
    let mut rejected = 0usize;
    let mut accepted = 0usize;
    for path in &args.files {
        let src = input::read_source(path)?;
        let loaded = match input::load(&src) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {}", e.message);
                rejected += 1;
                continue;
            }
        };
        for note in &loaded.notes {
            eprintln!("note: {note}");
        }
        if loaded.configs.is_empty() {
            eprintln!(
                "note: {}: no canary-router configuration in it; nothing to check",
                src.name
            );
            let routes = loaded
                .notes
                .iter()
                .any(|n| n.contains(": HTTPRoute ") || n.contains(": VirtualService "));
            if routes {
                eprintln!(
                    "note: {}: it holds routes: `canaryctl import {} | canaryctl validate -` checks the rules they import to",
                    src.name,
                    path.display()
                );
            }
            continue;
        }
        // A manifest file may hold a WasmPlugin with a ruleSource and the
        // ConfigMap it polls, in any order: the ConfigMap's rules are judged
        // with that plugin's settings (namespace, cluster domain).
        let settings: Option<Settings> = loaded
            .configs
            .iter()
            .filter(|c| c.kind == Kind::Plugin)
            .filter_map(|c| {
                let workload = args.identity.workload(c.node.as_ref());
                summary::judge(c, &workload, None).ok()
            })
            .map(|j| j.settings)
            .max_by_key(|s| s.source.is_some());
        for cfg in &loaded.configs {
            let workload = args.identity.workload(cfg.node.as_ref());
            match summary::judge(cfg, &workload, settings.as_ref()) {
                Ok(j) => {
                    accepted += 1;
                    if !args.quiet {
                        let what = match cfg.kind {
                            Kind::RuleFile => "rule file (as polled from a ruleSource)",
                            Kind::Plugin if input::looks_like_rule_file(&cfg.bytes) => "rule file",
                            Kind::Plugin => "plugin configuration",
                        };
                        println!("ok: {}", cfg.origin);
                        if !workload.labels.is_empty() || workload.namespace.is_some() {
                            println!("  sidecar identity: {}", Identity::describe(&workload));
                        }
                        print!("  {}", summary::describe_judged(what, &j));
                    }
                }
                Err(msg) => {
                    rejected += 1;
                    eprintln!("error: {msg}");
                }
            }
        }
    }
    if rejected == 0 && accepted == 0 {
        return Err(CliError::rejected(
            "no canary-router configuration found: nothing was checked",
        ));
    }
    if rejected > 0 {
        return Err(CliError::rejected(format!(
            "{rejected} configuration(s) rejected, {accepted} accepted"
        )));
    }
    Ok(())
}
