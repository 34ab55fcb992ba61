#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `docs/rules.md` documents every field the declarations in
//! `filter/src/schema/config.rs` have, and no field they lack: its field tables
//! are checked row by row against each type's [`Schema`], and the types
//! documented in prose (a StringMatch, `sticky`, the rule file) must name
//! each of their fields.

use std::collections::BTreeSet;
use std::path::Path;

use canary_router::schema::config::{
    Destination, Guard, HttpRoute, MatchRequest, Pause, PluginConfig, PortSelector, Ramp, RampStep,
    RouteDestination, RuleFile, RuleSource, Service, SetCookie, Sticky, StringMatch,
};
use canary_router::schema::decode::{Schema, Shape};

/// How a type is documented: under which heading, and how.
enum Doc {
    /// A table whose first column names the fields (several per cell, or
    /// dotted paths into nested types: `destination.port.number`).
    Table(&'static str),
    /// Prose in which each field appears as `"name"` or `` `name` ``.
    Prose(&'static str),
}

fn docs() -> Vec<(&'static Schema, Doc)> {
    vec![
        (
            PluginConfig::schema(),
            Doc::Table("## Top level (plugin configuration)"),
        ),
        (RuleSource::schema(), Doc::Table("### `ruleSource`")),
        (RuleFile::schema(), Doc::Prose("### `ruleSource`")),
        (Service::schema(), Doc::Table("## `services[]`")),
        (HttpRoute::schema(), Doc::Table("## `http[]`")),
        (MatchRequest::schema(), Doc::Table("### Match entry")),
        (StringMatch::schema(), Doc::Prose("### Match entry")),
        (RouteDestination::schema(), Doc::Table("### `route[]`")),
        // Documented as `destination.host`, `destination.port.number`, ...
        (Destination::schema(), Doc::Table("### `route[]`")),
        (PortSelector::schema(), Doc::Table("### `route[]`")),
        (Sticky::schema(), Doc::Prose("### `sticky`")),
        (SetCookie::schema(), Doc::Table("#### `setCookie`")),
        (Guard::schema(), Doc::Table("### `guard`")),
        (Ramp::schema(), Doc::Table("### `ramp`")),
        (RampStep::schema(), Doc::Prose("### `ramp`")),
        (Pause::schema(), Doc::Prose("### `ramp`")),
    ]
}

fn rules_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rules.md");
    std::fs::read_to_string(&path).expect("docs/rules.md")
}

/// The text under the heading that starts with `heading`, to the next
/// heading of the same or a higher level (its subsections included).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let level = heading.bytes().take_while(|b| *b == b'#').count();
    let start = md
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("docs/rules.md has no heading `{heading}`"));
    let body = &md[start + 1..];
    let body_start = body.find('\n').map_or(body.len(), |i| i + 1);
    let end = body[body_start..]
        .lines()
        .scan(body_start, |at, line| {
            let here = *at;
            *at += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            let hashes = line.bytes().take_while(|b| *b == b'#').count();
            hashes > 0 && hashes <= level && line.as_bytes().get(hashes) == Some(&b' ')
        })
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

/// The backticked names in the first column of the first field table of
/// `text` (the one whose header starts with `| field`).
fn table_names(text: &str) -> Vec<String> {
    let mut rows = text
        .lines()
        .skip_while(|l| !l.starts_with("| field"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let mut names = Vec::new();
    for row in rows.by_ref() {
        let cell = row.trim_start_matches('|').split(" |").next().unwrap_or("");
        names.extend(cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    assert!(!names.is_empty(), "no field table in:\n{text}");
    names
}

/// The type a field's value is (through `Option`, lists and maps).
fn inner(shape: Shape) -> Option<&'static Schema> {
    match shape {
        Shape::Option(s) | Shape::Seq(s) | Shape::Map(s) => inner(s()),
        Shape::Struct(s) => Some(s()),
        _ => None,
    }
}

/// Each documented name of `table` resolved through the schemas, as
/// (type, field) pairs; a name that is no declared field is an error.
fn documented(
    root: &'static Schema,
    table: &[String],
) -> Result<BTreeSet<(String, String)>, String> {
    let mut out = BTreeSet::new();
    for name in table {
        let mut schema = root;
        let mut segments = name.split('.').peekable();
        while let Some(seg) = segments.next() {
            let Some(field) = schema.field(seg) else {
                return Err(format!(
                    "`{name}` is documented for {} but {} has no field `{seg}`",
                    root.name, schema.name
                ));
            };
            out.insert((schema.name.to_string(), seg.to_string()));
            if segments.peek().is_some() {
                schema =
                    inner(field.shape).ok_or_else(|| format!("`{name}`: `{seg}` has no fields"))?;
            }
        }
    }
    Ok(out)
}

/// Every declared field that `docs/rules.md` leaves out, and every name
/// its tables give that is not declared.
fn check(md: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (schema, doc) in docs() {
        match doc {
            Doc::Table(heading) => {
                let text = section(md, heading);
                let names = table_names(text);
                // The table documents the type whose fields its first
                // segments are.
                let root = docs().into_iter().find_map(|(s, d)| match d {
                    Doc::Table(h) if h == heading && documented(s, &names).is_ok() => Some(s),
                    _ => None,
                });
                let Some(root) = root else {
                    problems.push(documented(schema, &names).unwrap_err());
                    continue;
                };
                let covered = documented(root, &names).unwrap_or_default();
                for f in schema.fields {
                    if !covered.contains(&(schema.name.to_string(), f.json.to_string())) {
                        problems.push(format!(
                            "{}.{} is not in the table under `{heading}`",
                            schema.name, f.json
                        ));
                    }
                }
            }
            Doc::Prose(heading) => {
                let text = section(md, heading);
                for f in schema.fields {
                    let quoted = format!("\"{}\"", f.json);
                    let ticked = format!("`{}`", f.json);
                    if !text.contains(&quoted) && !text.contains(&ticked) {
                        problems.push(format!(
                            "{}.{} is not named under `{heading}`",
                            schema.name, f.json
                        ));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn every_declared_field_is_documented_and_every_documented_one_declared() {
    let problems = check(&rules_md());
    assert!(
        problems.is_empty(),
        "docs/rules.md:\n{}",
        problems.join("\n")
    );
}

/// Every declared type has its place in the docs.
#[test]
fn every_declared_type_is_documented() {
    let mut reached = BTreeSet::new();
    let mut stack = vec![PluginConfig::schema(), RuleFile::schema()];
    while let Some(s) = stack.pop() {
        if reached.insert(s.name) {
            stack.extend(s.fields.iter().filter_map(|f| inner(f.shape)));
        }
    }
    let documented: BTreeSet<_> = docs().into_iter().map(|(s, _)| s.name).collect();
    assert_eq!(reached, documented);
}

/// The check finds a row taken out of a table, a field left out of prose,
/// and a documented field that is not declared.
#[test]
fn the_check_fails_when_the_docs_lose_or_invent_a_field() {
    let md = rules_md();
    let cut = |needle: &str| {
        assert!(md.contains(needle), "{needle}");
        md.replacen(needle, "", 1)
    };
    let lost_row = cut("| `sameSite` |");
    assert!(check(&lost_row)
        .contains(&"SetCookie.sameSite is not in the table under `#### `setCookie``".to_string()));
    let lost_nested = cut("+ `destination.port.number`");
    assert!(check(&lost_nested)
        .contains(&"PortSelector.number is not in the table under `### `route[]``".to_string()));
    let lost_prose = cut("`{\"sourceIp\": true}`");
    assert!(check(&lost_prose)
        .contains(&"Sticky.sourceIp is not named under `### `sticky``".to_string()));
    let invented = md.replacen("| `interval` |", "| `intervall` |", 1);
    assert!(check(&invented)
        .iter()
        .any(|p| p
            .contains("`intervall` is documented for Guard but Guard has no field `intervall`")));
}
