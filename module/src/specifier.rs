//! An experiment, built only with the `cluster-specifier` feature (for the
//! benchmark): the same decision made at Envoy's other extension point, a
//! route's cluster specifier, which selects the cluster while the route is
//! resolved: no header to write, no route to select again, no per-stream
//! filter object. `canary-bench compare-module` measures it against the
//! HTTP filter and native routing (module/README.md, "The extension point").
//!
//! What this extension point cannot do, and the experiment therefore
//! refuses or leaves out: it sees only the request, so no `Set-Cookie` for
//! an issued sticky cookie (`sticky.setCookie` is refused) and no debug
//! header (refused); a guard has no response to count (refused); a
//! `ramp` is refused (the experiment starts no ticker to walk it); a
//! client's copy of the route header is not removed (nothing routes by it
//! here). A request the rules do not cover gets no decision, and Envoy
//! 1.40 answers it 503 (`no_cluster`): the route has no cluster of its
//! own. Only inline rules (no `ruleSource`).

use canary_router::domain::cluster::Built;
use canary_router::domain::plugin::{self, Plugin, Rules};
use canary_router::domain::rules::{Outcome, RequestView};
use canary_router::schema::config::PluginConfig;

use crate::metrics::Metric;
use crate::stream::{any_header_value, for_each_header_of_len, header, random, Header};

/// What the cluster specifier's context offers (the ABI's, or a fake).
pub trait SelectHost {
    /// Every request header.
    fn request_headers(&self) -> Option<Vec<Header<'_>>>;
    /// The client's address.
    fn source_address(&self) -> Option<&[u8]>;
    /// The port the request arrived on.
    fn local_port(&self) -> Option<u16>;
    /// Sets the cluster the request goes to.
    fn set_cluster(&mut self, name: &[u8]);
    /// Adds one to a counter of the configuration.
    fn bump(&self, metric: Option<&Metric>);
}

/// A cluster-specifier configuration: the compiled rules and counters.
pub struct SpecifierConfig {
    rules: Rules,
    dest_metrics: Box<[Option<Metric>]>,
    passthrough: Option<Metric>,
}

/// Why the experiment refuses a configuration.
pub fn refusal(cfg: &PluginConfig, plugin: &Plugin) -> Option<&'static str> {
    if cfg.rule_source.is_some() || plugin.rules.is_none() {
        return Some("the cluster-specifier experiment takes inline rules only (no ruleSource)");
    }
    if plugin.settings.debug_header.is_some() {
        return Some("debugHeader: a cluster specifier has no response to add it to");
    }
    let rules = plugin.rules.as_ref()?;
    if rules
        .set
        .all_destinations()
        .any(|(_, _, d)| d.guard.is_some())
    {
        return Some("guard: a cluster specifier sees no response to count");
    }
    if rules
        .set
        .services()
        .iter()
        .flat_map(|s| s.rules.iter())
        .any(|r| r.route.issuer().is_some())
    {
        return Some("sticky.setCookie: a cluster specifier has no response to add Set-Cookie to");
    }
    if rules
        .set
        .services()
        .iter()
        .flat_map(|s| s.rules.iter())
        .any(|r| r.route.ramp().is_some())
    {
        return Some("ramp: the cluster-specifier experiment has no ticker to walk it");
    }
    None
}

/// The request as the rules see it.
struct View<'s, H> {
    headers: &'s [Header<'s>],
    host: &'s H,
}

impl<H: SelectHost> RequestView for View<'_, H> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        header(self.headers, name)
    }

    fn any_header_value(&self, name: &str, f: impl FnMut(&[u8]) -> bool) -> Option<bool> {
        any_header_value(self.headers, name, f)
    }

    fn for_each_header_of_len(&self, lengths: u64, f: impl FnMut(&[u8], &[u8])) -> bool {
        for_each_header_of_len(self.headers, lengths, f);
        true
    }

    fn source_address(&self) -> Option<&[u8]> {
        self.host.source_address()
    }

    fn local_port(&self) -> Option<u16> {
        self.host.local_port()
    }
}

impl SpecifierConfig {
    /// Compiles `bytes`; an error names why it is refused.
    pub fn compile(
        bytes: &[u8],
        mut define: impl FnMut(&str) -> Option<usize>,
    ) -> Result<Self, String> {
        let cfg: PluginConfig = plugin::parse(bytes).map_err(|e| e.to_string())?;
        let plugin = Plugin::from_config(&cfg, bytes, &crate::workload::from_env())
            .map_err(|e| e.to_string())?;
        if let Some(why) = refusal(&cfg, &plugin) {
            return Err(why.into());
        }
        let rules = plugin.rules.ok_or("no rules")?;
        let dest_metrics = crate::metrics::destinations(&rules.set, "requests", None, &mut define);
        Ok(SpecifierConfig {
            rules,
            dest_metrics,
            passthrough: define("canary_router.passthrough").map(Metric::plain),
        })
    }

    /// Selects the cluster of a request; false when the rules make no decision.
    pub fn select(&self, host: &mut impl SelectHost) -> bool {
        let Some(headers) = host.request_headers() else {
            host.bump(self.passthrough.as_ref());
            return false;
        };
        let view = View {
            headers: &headers,
            host: &*host,
        };
        let outcome = self.rules.set.decide_issuing(&view, random, || None);
        let mut built = Built::default();
        let chosen = match outcome {
            Outcome::Routed(d) => d
                .cluster
                .resolve(|| view.local_port(), &mut built)
                .map(|name| (d.target.stat_index, name)),
            _ => None,
        };
        drop(headers);
        match chosen {
            Some((index, name)) => {
                host.set_cluster(name);
                host.bump(
                    self.dest_metrics
                        .get(index as usize)
                        .and_then(Option::as_ref),
                );
                true
            }
            None => {
                host.bump(self.passthrough.as_ref());
                false
            }
        }
    }
}
