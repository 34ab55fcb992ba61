//! Parsing Envoy's `/stats` and `/stats/prometheus` admin output.

use std::collections::BTreeMap;

/// `/stats` as a map: counters and gauges by full name (tags still embedded
/// in the name, e.g. `wasmcustom.canary_router.requests.service=...;`).
/// Histogram lines (non-integer values) are kept apart, as text.
///
/// The dynamic module's stats (`dynamicmodulescustom.canary_router.*`, the
/// prefix Envoy gives a module's stats) are also listed under the wasm
/// filter's name (`wasmcustom.canary_router.*`), so that one test source
/// checks the filter's counters in both builds ([`crate::Build`]). The
/// module's labelled stats (rules from a rule source: `/stats` shows
/// `….requests.service.<s>.rule.<r>.destination.<d>`, a ramp's gauges
/// `….ramp_step.service.<s>.rule.<r>`) are listed under the wasm filter's
/// tagged name (`….requests.service=<s>;.rule=<r>;.destination=<d>;`,
/// `….ramp_step.service=<s>;.rule=<r>;`).
const MODULE_STAT_PREFIX: &str = "dynamicmodulescustom.canary_router.";
const WASM_STAT_PREFIX: &str = "wasmcustom.canary_router.";

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub values: BTreeMap<String, u64>,
    pub other: BTreeMap<String, String>,
}

impl Stats {
    /// Parses `name: value` lines.
    pub fn parse(text: &str) -> Self {
        let mut stats = Stats::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(": ") else {
                continue;
            };
            match value.trim().parse::<u64>() {
                Ok(v) => {
                    if let Some(rest) = name.strip_prefix(MODULE_STAT_PREFIX) {
                        let rest = untag(rest).unwrap_or_else(|| rest.to_owned());
                        stats.values.insert(format!("{WASM_STAT_PREFIX}{rest}"), v);
                    }
                    stats.values.insert(name.to_owned(), v);
                }
                Err(_) => {
                    stats.other.insert(name.to_owned(), value.trim().to_owned());
                }
            }
        }
        stats
    }

    /// A counter or gauge; 0 when absent (Envoy creates stats lazily).
    pub fn get(&self, name: &str) -> u64 {
        self.values.get(name).copied().unwrap_or(0)
    }

    /// Whether the stat exists.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// All stats whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, u64)> {
        self.values
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// The sum of all stats whose name starts with `prefix`.
    pub fn sum_prefix(&self, prefix: &str) -> u64 {
        self.with_prefix(prefix).map(|(_, v)| v).sum()
    }
}

/// A labelled stat's name as Envoy writes it in `/stats`
/// (`requests.service.<s>.rule.<r>.destination.<d>`) in the `.name=value;`
/// form of the wasm filter's names; `None` for other names.
fn untag(name: &str) -> Option<String> {
    let (head, rest) = name.split_once(".service.")?;
    let (service, rest) = rest.rsplit_once(".rule.")?;
    Some(match rest.rsplit_once(".destination.") {
        Some((rule, destination)) => {
            format!("{head}.service={service};.rule={rule};.destination={destination};")
        }
        // A rule's stat (a ramp's gauges: labels `service`, `rule`).
        None => format!("{head}.service={service};.rule={rest};"),
    })
}

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl PromSample {
    /// Whether every `(label, value)` given is on this sample.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Parses the Prometheus text exposition format (comments skipped).
pub fn parse_prometheus(text: &str) -> Vec<PromSample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_prom_line)
        .collect()
}

/// The samples named `name` that carry the given labels.
pub fn prom_find<'a>(
    samples: &'a [PromSample],
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a PromSample> {
    samples
        .iter()
        .filter(|s| s.name == name && s.has_labels(labels))
        .collect()
}

fn parse_prom_line(line: &str) -> Option<PromSample> {
    let name_end = line.find(['{', ' '])?;
    let name = line.get(..name_end)?.to_owned();
    let mut rest = line.get(name_end..)?;
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        let mut chars = rest.char_indices().skip(1).peekable();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // Quoted value with \\, \" and \n escapes.
                    let (_, q) = chars.next()?;
                    if q != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = rest.get(end..)?;
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(PromSample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_lines() {
        let s = Stats::parse(
            "cluster.a.upstream_rq_200: 12\nwasmcustom.x.service=a.b;.rule=r;: 3\nh: P0(nan,1) P25(nan,2)\n",
        );
        assert_eq!(s.get("cluster.a.upstream_rq_200"), 12);
        assert_eq!(s.get("wasmcustom.x.service=a.b;.rule=r;"), 3);
        assert_eq!(s.get("missing"), 0);
        assert!(s.other.contains_key("h"));
        assert_eq!(s.sum_prefix("wasmcustom."), 3);
    }

    #[test]
    fn lists_the_modules_stats_under_the_wasm_filters_names() {
        let s = Stats::parse(
            "dynamicmodulescustom.canary_router.passthrough: 4\n\
             dynamicmodulescustom.canary_router.requests.service=b.ns.svc;.rule=r;.destination=v1;: 5\n\
             dynamicmodulescustom.canary_router.requests.service.b.ns.svc.rule.split.destination.v2: 6\n\
             dynamicmodulescustom.canary_router.ramp_step.service.b.ns.svc.rule.split: 3\n",
        );
        assert_eq!(
            s.get("wasmcustom.canary_router.ramp_step.service=b.ns.svc;.rule=split;"),
            3
        );
        assert_eq!(s.get("wasmcustom.canary_router.passthrough"), 4);
        assert_eq!(
            s.get("wasmcustom.canary_router.requests.service=b.ns.svc;.rule=r;.destination=v1;"),
            5
        );
        assert_eq!(
            s.get(
                "wasmcustom.canary_router.requests.service=b.ns.svc;.rule=split;.destination=v2;"
            ),
            6
        );
    }

    #[test]
    fn parses_prometheus_lines() {
        let text = "# TYPE canary_router_requests counter\n\
            canary_router_requests{service=\"backend.default.svc.cluster.local\",rule=\"split\",destination=\"v1\"} 7\n\
            envoy_server_live{} 1\n\
            plain 2.5\n\
            esc{a=\"x\\\"y\\\\z\"} 1\n";
        let samples = parse_prometheus(text);
        assert_eq!(samples.len(), 4);
        let found = prom_find(&samples, "canary_router_requests", &[("destination", "v1")]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, 7.0);
        assert_eq!(
            found[0].labels["service"],
            "backend.default.svc.cluster.local"
        );
        assert_eq!(samples[2].value, 2.5);
        assert_eq!(samples[3].labels["a"], "x\"y\\z");
    }
}
