//! From JSON to the [`crate::config`] types, field by field, with the
//! [`crate::json`] reader: strict (an unknown field is an error), with the
//! JSON path and serde's message in every error.

use alloc::{string::String, vec::Vec};

use crate::config::{
    Destination, Guard, HttpRoute, MatchRequest, PluginConfig, PortSelector, RouteDestination,
    RuleFile, RuleSource, Service, SetCookie, Sticky, StringMatch,
};
use crate::json::{Fail, Reader, R};
use crate::map::Map;

/// The fields of a match entry (`MatchRequest`), in the order serde's
/// messages list them; `canaryctl import` carries exactly these.
pub const MATCH_REQUEST_FIELDS: [&str; 12] = [
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

/// A configuration type the reader can fill.
pub trait FromJson: Sized {
    /// Reads one value of this type at the reader's position.
    #[doc(hidden)]
    fn read(r: &mut Reader<'_>) -> R<Self>;
}

/// serde's `missing field` error, at the object's path.
#[inline(never)]
fn missing(r: &Reader<'_>, field: &str) -> Fail {
    r.custom(&["missing field `", field, "`"].concat())
}

fn required<T>(r: &Reader<'_>, v: Option<T>, field: &str) -> R<T> {
    v.ok_or_else(|| missing(r, field))
}

// Readers of one field's value into its slot: one function per value type,
// not one per field.

fn opt_string(r: &mut Reader<'_>, slot: &mut Option<String>) -> R<()> {
    *slot = r.opt(Reader::string)?;
    Ok(())
}

fn opt_u64(r: &mut Reader<'_>, slot: &mut Option<u64>) -> R<()> {
    *slot = r.opt(Reader::u64)?;
    Ok(())
}

fn opt_i64(r: &mut Reader<'_>, slot: &mut Option<i64>) -> R<()> {
    *slot = r.opt(Reader::i64)?;
    Ok(())
}

fn opt_bool(r: &mut Reader<'_>, slot: &mut Option<bool>) -> R<()> {
    *slot = r.opt(Reader::bool)?;
    Ok(())
}

fn opt_string_match(r: &mut Reader<'_>, slot: &mut Option<StringMatch>) -> R<()> {
    *slot = r.opt(StringMatch::read)?;
    Ok(())
}

fn string_matches(r: &mut Reader<'_>, slot: &mut Option<Map<StringMatch>>) -> R<()> {
    *slot = r.opt(|r| r.map(&mut StringMatch::read))?;
    Ok(())
}

fn services(r: &mut Reader<'_>) -> R<Vec<Service>> {
    r.seq(&mut Service::read)
}

impl FromJson for PluginConfig {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut c = PluginConfig::default();
        r.object(
            "PluginConfig",
            &[
                "routeHeader",
                "debugHeader",
                "namespace",
                "clusterDomain",
                "version",
                "portlessDestinations",
                "services",
                "ruleSource",
            ],
            &mut |r, n| match n {
                0 => opt_string(r, &mut c.route_header),
                1 => opt_string(r, &mut c.debug_header),
                2 => opt_string(r, &mut c.namespace),
                3 => opt_string(r, &mut c.cluster_domain),
                4 => opt_u64(r, &mut c.version),
                5 => opt_string(r, &mut c.portless_destinations),
                6 => {
                    c.services = r.opt(services)?;
                    Ok(())
                }
                _ => {
                    c.rule_source = r.opt(RuleSource::read)?;
                    Ok(())
                }
            },
        )?;
        Ok(c)
    }
}

impl FromJson for RuleFile {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut c = RuleFile::default();
        r.object(
            "RuleFile",
            &["namespace", "version", "services"],
            &mut |r, n| match n {
                0 => opt_string(r, &mut c.namespace),
                1 => opt_u64(r, &mut c.version),
                _ => {
                    c.services = services(r)?;
                    Ok(())
                }
            },
        )?;
        Ok(c)
    }
}

impl FromJson for RuleSource {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let (mut cluster, mut authority, mut path, mut poll, mut timeout) =
            (None, None, None, None, None);
        r.object(
            "RuleSource",
            &[
                "cluster",
                "authority",
                "path",
                "pollIntervalMs",
                "timeoutMs",
            ],
            &mut |r, n| match n {
                0 | 2 => {
                    let v = Some(r.string()?);
                    *if n == 0 { &mut cluster } else { &mut path } = v;
                    Ok(())
                }
                1 => opt_string(r, &mut authority),
                3 => opt_u64(r, &mut poll),
                _ => opt_u64(r, &mut timeout),
            },
        )?;
        Ok(RuleSource {
            cluster: required(r, cluster, "cluster")?,
            authority,
            path: required(r, path, "path")?,
            poll_interval_ms: poll,
            timeout_ms: timeout,
        })
    }
}

impl FromJson for Service {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let (mut hosts, mut namespace, mut http, mut default, mut port) =
            (None, None, Vec::new(), None, None);
        r.object(
            "Service",
            &[
                "hosts",
                "namespace",
                "http",
                "defaultDestination",
                "destinationPort",
            ],
            &mut |r, n| {
                match n {
                    0 => hosts = Some(r.seq(&mut Reader::string)?),
                    1 => return opt_string(r, &mut namespace),
                    2 => http = r.seq(&mut HttpRoute::read)?,
                    3 => default = r.opt(Destination::read)?,
                    _ => return opt_i64(r, &mut port),
                }
                Ok(())
            },
        )?;
        Ok(Service {
            hosts: required(r, hosts, "hosts")?,
            namespace,
            http,
            default_destination: default,
            destination_port: port,
        })
    }
}

impl FromJson for HttpRoute {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let (mut name, mut matches, mut route, mut sticky) = (None, Vec::new(), None, None);
        r.object(
            "HttpRoute",
            &["name", "match", "route", "sticky"],
            &mut |r, n| {
                match n {
                    0 => return opt_string(r, &mut name),
                    1 => matches = r.seq(&mut MatchRequest::read)?,
                    2 => route = Some(r.seq(&mut RouteDestination::read)?),
                    _ => sticky = r.opt(Sticky::read)?,
                }
                Ok(())
            },
        )?;
        Ok(HttpRoute {
            name,
            matches,
            route: required(r, route, "route")?,
            sticky,
        })
    }
}

impl FromJson for MatchRequest {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut m = MatchRequest::default();
        r.object("MatchRequest", &MATCH_REQUEST_FIELDS, &mut |r, n| match n {
            0 => opt_string(r, &mut m.name),
            1 => opt_string_match(r, &mut m.uri),
            2 => opt_string_match(r, &mut m.scheme),
            3 => opt_string_match(r, &mut m.method),
            4 => opt_string_match(r, &mut m.authority),
            5 => string_matches(r, &mut m.headers),
            6 => string_matches(r, &mut m.without_headers),
            7 => opt_i64(r, &mut m.port),
            8 => string_matches(r, &mut m.query_params),
            9 => opt_bool(r, &mut m.ignore_uri_case),
            10 => {
                m.source_labels = r.opt(|r| r.map(&mut Reader::string))?;
                Ok(())
            }
            _ => opt_string(r, &mut m.source_namespace),
        })?;
        Ok(m)
    }
}

impl FromJson for StringMatch {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut m = StringMatch::default();
        let fields = ["exact", "prefix", "regex", "pathPrefix"];
        r.object("StringMatch", &fields, &mut |r, n| {
            opt_string(
                r,
                match n {
                    0 => &mut m.exact,
                    1 => &mut m.prefix,
                    2 => &mut m.regex,
                    _ => &mut m.path_prefix,
                },
            )
        })?;
        Ok(m)
    }
}

impl FromJson for RouteDestination {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let (mut destination, mut weight, mut guard) = (None, None, None);
        r.object(
            "RouteDestination",
            &["destination", "weight", "guard"],
            &mut |r, n| {
                match n {
                    0 => destination = Some(Destination::read(r)?),
                    1 => return opt_i64(r, &mut weight),
                    _ => guard = r.opt(Guard::read)?,
                }
                Ok(())
            },
        )?;
        Ok(RouteDestination {
            destination: required(r, destination, "destination")?,
            weight,
            guard,
        })
    }
}

impl FromJson for Guard {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let (mut rate, mut min, mut interval) = (None, None, None);
        r.object(
            "Guard",
            &["maxErrorRate", "minRequests", "interval"],
            &mut |r, n| {
                match n {
                    0 => rate = Some(r.f64()?),
                    1 => min = Some(r.i64()?),
                    _ => interval = Some(r.string()?),
                }
                Ok(())
            },
        )?;
        Ok(Guard {
            max_error_rate: required(r, rate, "maxErrorRate")?,
            min_requests: required(r, min, "minRequests")?,
            interval: required(r, interval, "interval")?,
        })
    }
}

impl FromJson for Destination {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut d = Destination::default();
        r.object(
            "Destination",
            &["host", "subset", "port", "cluster"],
            &mut |r, n| match n {
                0 => opt_string(r, &mut d.host),
                1 => opt_string(r, &mut d.subset),
                2 => {
                    d.port = r.opt(PortSelector::read)?;
                    Ok(())
                }
                _ => opt_string(r, &mut d.cluster),
            },
        )?;
        Ok(d)
    }
}

impl FromJson for PortSelector {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut number = None;
        r.object("PortSelector", &["number"], &mut |r, _| {
            number = Some(r.i64()?);
            Ok(())
        })?;
        Ok(PortSelector {
            number: required(r, number, "number")?,
        })
    }
}

impl FromJson for Sticky {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut s = Sticky::default();
        r.object(
            "Sticky",
            &["header", "cookie", "sourceIp", "setCookie"],
            &mut |r, n| match n {
                0 => opt_string(r, &mut s.header),
                1 => opt_string(r, &mut s.cookie),
                2 => opt_bool(r, &mut s.source_ip),
                _ => {
                    s.set_cookie = r.opt(SetCookie::read)?;
                    Ok(())
                }
            },
        )?;
        Ok(s)
    }
}

impl FromJson for SetCookie {
    fn read(r: &mut Reader<'_>) -> R<Self> {
        let mut c = SetCookie::default();
        r.object(
            "SetCookie",
            &["maxAge", "path", "httpOnly", "secure", "sameSite", "domain"],
            &mut |r, n| match n {
                0 => opt_i64(r, &mut c.max_age),
                1 => opt_string(r, &mut c.path),
                2 => opt_bool(r, &mut c.http_only),
                3 => opt_bool(r, &mut c.secure),
                4 => opt_string(r, &mut c.same_site),
                _ => opt_string(r, &mut c.domain),
            },
        )?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::ConfigError;

    /// What serde_json with serde_path_to_error said (the parser this one replaced).
    fn serde<T: serde::de::DeserializeOwned + core::fmt::Debug>(
        bytes: &[u8],
    ) -> Result<String, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value: T =
            serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError::Syntax {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        de.end().map_err(|e| ConfigError::Syntax {
            path: String::new(),
            message: e.to_string(),
        })?;
        Ok(format!("{value:?}"))
    }

    /// The two known differences: a struct given as a JSON array (serde
    /// accepts a positional form nobody writes; here it is the type error
    /// it reads as), and a float in exponent form or beyond u64, shown as
    /// written instead of in Rust's shortest form.
    fn known_difference(a: &Result<String, ConfigError>, o: &Result<String, ConfigError>) -> bool {
        match (a, o) {
            (_, Err(ConfigError::Syntax { message, .. }))
                if message.contains("invalid type: sequence, expected struct") =>
            {
                true
            }
            (
                Err(ConfigError::Syntax {
                    path: p,
                    message: m,
                }),
                Err(ConfigError::Syntax {
                    path: q,
                    message: n,
                }),
            ) => {
                p == q
                    && m.starts_with("invalid type: floating point")
                    && n.starts_with("invalid type: floating point")
            }
            _ => false,
        }
    }

    fn ours<T: FromJson + core::fmt::Debug>(bytes: &[u8]) -> Result<String, ConfigError> {
        crate::plugin::parse::<T>(bytes).map(|v| format!("{v:?}"))
    }

    const GOOD: &str = r#"{"routeHeader":"x-up","debugHeader":null,"namespace":"ns","clusterDomain":"c.l","version":7,
      "ruleSource":{"cluster":"c","authority":"a","path":"/r","pollIntervalMs":600,"timeoutMs":200},
      "services":[{"hosts":["a","b.c"],"namespace":"n2","destinationPort":8080,
        "defaultDestination":{"host":"a","subset":"v1","port":{"number":80}},
        "http":[{"name":"r1","match":[{"name":"m","uri":{"pathPrefix":"/a"},"scheme":{"exact":"http"},
          "method":{"regex":"GET|PUT"},"authority":{"exact":"x"},"headers":{"x-a":{},"x-b":{"exact":"\u00e9\n\"\\/\ud83d\ude00"}},
          "withoutHeaders":{"x-c":{"prefix":"p"}},"port":80,"queryParams":{"q":{"exact":"1"}},"ignoreUriCase":true,
          "sourceLabels":{"app":"x"},"sourceNamespace":"sn"}],
          "route":[{"destination":{"cluster":"c1"},"weight":90},{"destination":{"host":"h"},"weight":10,
            "guard":{"maxErrorRate":0.05,"minRequests":100,"interval":"30s"}}],
          "sticky":{"header":"x-user","cookie":null,"sourceIp":true}},
          {"route":[{"destination":{"cluster":"c3"}}],"sticky":{"cookie":"k","setCookie":{"maxAge":60,"path":"/p",
            "httpOnly":false,"secure":true,"sameSite":"None","domain":"d.e"}}},
          {"route":[{"destination":{"cluster":"c2"}}]}]}]}"#;

    #[test]
    fn same_values_and_errors_as_serde() {
        let mut cases: Vec<String> = vec![GOOD.into()];
        // Every prefix: EOF errors at every point.
        for cut in 1..GOOD.len() {
            if GOOD.is_char_boundary(cut) {
                cases.push(GOOD[..cut].into());
            }
        }
        // Bytes replaced: syntax and type errors at every point.
        for (i, _) in GOOD.char_indices().step_by(3) {
            for with in [
                "1", "\"s\"", "]", "}", ",", "null", "x", "{", "[", "-1", "1.5", "true", "\u{1}",
            ] {
                let mut s = GOOD.to_string();
                let end = s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                s.replace_range(i..end, with);
                cases.push(s);
            }
        }
        let extra = [
            r#"{"services":[{"hosts":["a"],"hosts":["b"]}]}"#,
            r#"{"services":[{"http":[]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"port":{}}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"port":{"number":1,"x":2}}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"weight":9223372036854775808}]}]}]}"#,
            r#"{"version":-3,"services":[]}"#,
            r#"{"version":18446744073709551616,"services":[]}"#,
            r#"{"version":01}"#,
            r#"{"version":1.}"#,
            r#"{"version":1e5}"#,
            r#"{"version":-}"#,
            r#"{"namespace":"\x"}"#,
            r#"{"namespace":"\u12"}"#,
            r#"{"namespace":"\ud800"}"#,
            r#"{"namespace":"\udc00"}"#,
            r#"{"namespace":"\ud800\u0041"}"#,
            r#"{"services":[],}"#,
            r#"{"services":[1,]}"#,
            r#"{,}"#,
            r#"{1:2}"#,
            r#"{"a" 1}"#,
            "{\n  \"services\": [\n  {\"hosts\": 5}]}",
            "[]",
            "\"x\"",
            "nul",
            "{\"services\":[]} trailing",
            "{\"services\":[]}   ",
            "{\"routeHeader\":tru}",
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":1,"minRequests":1,"interval":"1m"}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":-2,"minRequests":1,"interval":"1m"}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":5e-2,"minRequests":1,"interval":"1m"}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":0.125,"minRequests":1.5,"interval":"1m"}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":"0.5","minRequests":1,"interval":"1m"}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"minRequests":1,"interval":1}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":0.3,"minRequests":1}}]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"guard":{"maxErrorRate":0.1,"x":1}}]}]}]}"#,
        ];
        cases.extend(extra.iter().map(|s| s.to_string()));
        let mut bytes_cases: Vec<Vec<u8>> = cases.iter().map(|s| s.clone().into_bytes()).collect();
        bytes_cases.push(b"{\"namespace\":\"\xff\"}".to_vec());
        let mut differ = Vec::new();
        for b in &bytes_cases {
            if b.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let a = serde::<PluginConfig>(b);
            let o = ours::<PluginConfig>(b);
            if a != o && !known_difference(&a, &o) {
                differ.push(format!(
                    "{:?}\n  serde: {a:?}\n  ours:  {o:?}",
                    String::from_utf8_lossy(&b[b.len().saturating_sub(30)..])
                ));
            }
            let a = serde::<RuleFile>(b);
            let o = ours::<RuleFile>(b);
            if a != o && !known_difference(&a, &o) {
                differ.push(format!(
                    "(rule file) {:?}\n  serde: {a:?}\n  ours:  {o:?}",
                    String::from_utf8_lossy(&b[b.len().saturating_sub(30)..])
                ));
            }
        }
        assert!(
            differ.is_empty(),
            "{} of {} differ:\n{}",
            differ.len(),
            bytes_cases.len() * 2,
            differ
                .iter()
                .take(60)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
