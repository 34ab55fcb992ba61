//! What neither a VirtualService nor an HTTPRoute can say, added to the
//! imported rules: `--sticky` for every split rule, and `--overlay`, a
//! document merged into rules and services by name (JSON merge patch, RFC
//! 7386). The overlay knows no field: whatever it gives (`sticky`, and
//! fields the filter learns later) goes into the rule file as written and
//! is judged by the filter's parser with the rest.
//!
//! ```yaml
//! rules:                      # by rule name (an HTTPRoute rule's `name`, or <ns>.<route>.<index>)
//!   default.backend.0:
//!     sticky: {cookie: session}
//!     route:                  # an object, not a list: by destination host (or cluster), "*" for all
//!       backend-v2.default.svc.cluster.local: {guard: {maxErrorRate: 0.05, minRequests: 100, interval: 30s}}
//!   "*": {}                   # every rule, before the named ones
//! services:                   # by host, as imported
//!   backend.default.svc.cluster.local: {destinationPort: 8080}
//! ```

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{CliError, Result};
use crate::input;

/// Parses `--sticky`: `header=NAME`, `cookie=NAME` or `source-ip`.
pub fn parse_sticky(s: &str) -> std::result::Result<Value, String> {
    match s.split_once('=') {
        Some(("header", name)) if !name.is_empty() => Ok(json!({ "header": name })),
        Some(("cookie", name)) if !name.is_empty() => Ok(json!({ "cookie": name })),
        None if s == "source-ip" => Ok(json!({ "sourceIp": true })),
        _ => Err(format!("`{s}`: give header=NAME, cookie=NAME or source-ip")),
    }
}

fn rules_mut(file: &mut Value) -> impl Iterator<Item = &mut Value> {
    file.get_mut("services")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get_mut("http").and_then(Value::as_array_mut))
        .flatten()
}

/// Gives every rule with more than one destination this `sticky`.
pub fn add_sticky(file: &mut Value, sticky: &Value) {
    for rule in rules_mut(file) {
        let split = rule
            .get("route")
            .and_then(Value::as_array)
            .is_some_and(|r| r.len() > 1);
        if split {
            rule["sticky"] = sticky.clone();
        }
    }
}

/// JSON merge patch (RFC 7386): objects merge, `null` removes, anything
/// else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return;
    };
    for (k, v) in patch {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Merges a rule's patch. A `route` given as an object (the rule's
/// `route` is a list) is by destination: each key, a destination's `host`
/// or `cluster` or `*`, is merged into the entries it names.
fn merge_rule(rule: &mut Value, key: &str, patch: &Value, used: &mut [(String, bool)]) {
    let Some(Value::Object(by)) = patch.get("route") else {
        merge(rule, patch);
        return;
    };
    let mut rest = patch.clone();
    if let Some(m) = rest.as_object_mut() {
        m.remove("route");
    }
    merge(rule, &rest);
    let entries = rule.get_mut("route").and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        let dest = &entry["destination"];
        let names: Vec<String> = ["host", "cluster"]
            .iter()
            .filter_map(|k| dest.get(*k).and_then(Value::as_str).map(str::to_string))
            .collect();
        for (d, p) in by {
            let hit = d == "*" || names.iter().any(|n| n == d);
            if hit {
                merge(entry, p);
                let path = format!("rules.{key}.route.{d}");
                if let Some(u) = used.iter_mut().find(|(k, _)| *k == path) {
                    u.1 = true;
                }
            }
        }
    }
}

/// Reads an overlay file and merges it into the rule file.
pub fn apply_file(file: &mut Value, path: &Path) -> Result<()> {
    let src = input::read_source(path)?;
    let doc = match src.format {
        input::Format::Json => serde_json::from_slice(&src.bytes)
            .map_err(|e| CliError::usage(format!("{}: not valid JSON: {e}", src.name)))?,
        input::Format::Yaml => {
            let mut docs = input::yaml_documents(&src.bytes, &src.name)?;
            if docs.len() != 1 {
                return Err(CliError::usage(format!(
                    "{}: an overlay is one document",
                    src.name
                )));
            }
            docs.remove(0)
        }
    };
    apply(file, &doc).map_err(|e| CliError::rejected(format!("{}: {e}", src.name)))
}

/// Merges an overlay into the rule file. Every name in it must match a
/// rule or a service (a typo is an error, not a silent no-op).
pub fn apply(file: &mut Value, overlay: &Value) -> std::result::Result<(), String> {
    let Some(top) = overlay.as_object() else {
        return Err("an overlay is an object with `rules` and/or `services`".into());
    };
    for k in top.keys() {
        if k != "rules" && k != "services" {
            return Err(format!(
                "{k}: unknown field, expected `rules` or `services`"
            ));
        }
    }
    let section = |name: &str| -> std::result::Result<Map<String, Value>, String> {
        match top.get(name) {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(format!("{name}: not an object (name → fields)")),
        }
    };
    let rules = section("rules")?;
    let services = section("services")?;
    for (k, v) in rules.iter().chain(services.iter()) {
        if !v.is_object() {
            return Err(format!("{k}: not an object of fields"));
        }
    }
    let mut used_rules = vec![false; rules.len()];
    let mut used_destinations: Vec<(String, bool)> = Vec::new();
    for (k, patch) in &rules {
        if let Some(Value::Object(by)) = patch.get("route") {
            for d in by.keys() {
                used_destinations.push((format!("rules.{k}.route.{d}"), false));
            }
        }
    }
    for rule in rules_mut(file) {
        let name = rule
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // `*` first, then the rule's own name.
        for wildcard in [true, false] {
            for (i, (k, patch)) in rules.iter().enumerate() {
                if (k == "*") == wildcard && (wildcard || *k == name) {
                    merge_rule(rule, k, patch, &mut used_destinations);
                    used_rules[i] = true;
                }
            }
        }
    }
    let mut used_services = vec![false; services.len()];
    for svc in file
        .get_mut("services")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let hosts: Vec<String> = svc
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        for (i, (k, patch)) in services.iter().enumerate() {
            if k == "*" || hosts.contains(k) {
                merge(svc, patch);
                used_services[i] = true;
            }
        }
    }
    let unused: Vec<String> = rules
        .keys()
        .zip(&used_rules)
        .map(|(k, u)| (format!("rules.{k}"), u))
        .chain(
            services
                .keys()
                .zip(&used_services)
                .map(|(k, u)| (format!("services.{k}"), u)),
        )
        .filter(|(_, u)| !**u)
        .map(|(k, _)| k)
        .chain(
            used_destinations
                .into_iter()
                .filter(|(_, u)| !u)
                .map(|(k, _)| k),
        )
        .collect();
    if !unused.is_empty() {
        return Err(format!(
            "{}: no imported rule, service or destination has that name",
            unused.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Value {
        json!({"services": [{"hosts": ["a"], "http": [
            {"name": "r0", "route": [{"destination": {"host": "a"}, "weight": 1}, {"destination": {"host": "b"}, "weight": 1}]},
            {"name": "r1", "route": [{"destination": {"host": "a"}}]}
        ]}]})
    }

    #[test]
    fn overlays_merge_by_name_and_carry_any_field() {
        let mut f = file();
        apply(
            &mut f,
            &json!({"rules": {"*": {"x-new": 1}, "r0": {"sticky": {"cookie": "s", "setCookie": {"ttl": 5}}, "x-new": null}},
                    "services": {"a": {"destinationPort": 8080}}}),
        )
        .unwrap();
        let http = &f["services"][0]["http"];
        assert_eq!(
            http[0]["sticky"],
            json!({"cookie": "s", "setCookie": {"ttl": 5}})
        );
        assert!(http[0].get("x-new").is_none(), "null removes");
        assert_eq!(http[1]["x-new"], 1);
        assert_eq!(f["services"][0]["destinationPort"], 8080);
        let mut f = file();
        let e = apply(&mut f, &json!({"rules": {"typo": {}}})).unwrap_err();
        assert!(e.contains("rules.typo"), "{e}");
        assert!(apply(&mut f, &json!({"rule": {}})).is_err());
    }

    #[test]
    fn a_route_object_patches_destinations_by_host() {
        let mut f = file();
        apply(
            &mut f,
            &json!({"rules": {"r0": {"route": {"b": {"guard": {"maxErrorRate": 0.5}}}, "x": 1}}}),
        )
        .unwrap();
        let r0 = &f["services"][0]["http"][0];
        assert_eq!(r0["x"], 1);
        assert_eq!(r0["route"][1]["guard"], json!({"maxErrorRate": 0.5}));
        assert!(r0["route"][0].get("guard").is_none());
        assert_eq!(r0["route"].as_array().unwrap().len(), 2, "the list is kept");
        let mut f = file();
        let e = apply(&mut f, &json!({"rules": {"r0": {"route": {"nope": {}}}}})).unwrap_err();
        assert!(e.contains("rules.r0.route.nope"), "{e}");
        // A list still replaces the list.
        let mut f = file();
        apply(
            &mut f,
            &json!({"rules": {"r1": {"route": [{"destination": {"host": "c"}}]}}}),
        )
        .unwrap();
        assert_eq!(
            f["services"][0]["http"][1]["route"][0]["destination"]["host"],
            "c"
        );
    }

    #[test]
    fn sticky_goes_to_split_rules() {
        let mut f = file();
        add_sticky(&mut f, &parse_sticky("header=x-user").unwrap());
        assert_eq!(
            f["services"][0]["http"][0]["sticky"],
            json!({"header": "x-user"})
        );
        assert!(f["services"][0]["http"][1].get("sticky").is_none());
        assert_eq!(
            parse_sticky("source-ip").unwrap(),
            json!({"sourceIp": true})
        );
        assert!(parse_sticky("cookie=").is_err() && parse_sticky("ip").is_err());
    }
}
