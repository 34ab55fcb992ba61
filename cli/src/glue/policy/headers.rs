//! `headers` as istiod translates an Istio `Headers`
//! (`TranslateHeadersOperations`): `set` overwrites and `add` appends, each
//! sorted by name; `:authority`/`host` become the route's host rewrite.

use serde_json::{json, Map, Value};

use super::{at, err, object, Result};

/// Header operations, as `TranslateHeadersOperations` writes them.
#[derive(Debug, Default)]
pub(super) struct HeaderOps {
    request_add: Vec<Value>,
    request_remove: Vec<Value>,
    response_add: Vec<Value>,
    response_remove: Vec<Value>,
    /// `:authority` or `host` set (or added) on requests.
    pub(super) authority: Option<String>,
}

impl HeaderOps {
    fn lists(self) -> [(&'static str, Vec<Value>); 4] {
        [
            ("request_headers_to_add", self.request_add),
            ("request_headers_to_remove", self.request_remove),
            ("response_headers_to_add", self.response_add),
            ("response_headers_to_remove", self.response_remove),
        ]
    }

    /// Puts the non-empty lists into `m`.
    pub(super) fn put(self, m: &mut Map<String, Value>) {
        for (k, list) in self.lists() {
            if !list.is_empty() {
                m.insert(k.into(), Value::Array(list));
            }
        }
    }

    /// Appends the lists to those already in `m`.
    pub(super) fn append(self, m: &mut Map<String, Value>) {
        for (k, list) in self.lists() {
            if list.is_empty() {
                continue;
            }
            match m.get_mut(k) {
                Some(Value::Array(have)) => have.extend(list),
                _ => {
                    m.insert(k.into(), Value::Array(list));
                }
            }
        }
    }
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// An Istio `Headers` (`{request: {set, add, remove}, response: {...}}`).
pub(super) fn headers(v: &Value, path: &str) -> Result<HeaderOps> {
    let obj = object(v, path)?;
    let mut out = HeaderOps::default();
    for (side, ops) in obj {
        let spath = at(path, side);
        let request = match side.as_str() {
            "request" => true,
            "response" => false,
            _ => {
                return err(
                    &spath,
                    "not a field of an Istio Headers (request, response)",
                )
            }
        };
        if ops.is_null() {
            continue;
        }
        let ops = object(ops, &spath)?;
        let mut set_authority = None;
        let mut add_authority = None;
        let (mut to_add, mut to_remove) = (Vec::new(), Vec::new());
        for (op, value) in ops {
            let opath = at(&spath, op);
            match op.as_str() {
                "set" | "add" => {
                    if value.is_null() {
                        continue;
                    }
                    let mut entries = Vec::new();
                    for (name, val) in object(value, &opath)? {
                        let Some(val) = val.as_str() else {
                            return err(&at(&opath, name), "not a string");
                        };
                        header_name(name, &at(&opath, name), request)?;
                        header_value(val, &at(&opath, name))?;
                        if is_authority(name) {
                            // "If there are multiple, last one wins".
                            if op == "set" {
                                set_authority = Some(val.to_string());
                            } else {
                                add_authority = Some(val.to_string());
                            }
                        }
                        if is_internal(name) {
                            continue;
                        }
                        entries.push((name.clone(), val.to_string()));
                    }
                    // `translateAppendHeaders`: sorted by name.
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    let action = if op == "set" {
                        "OVERWRITE_IF_EXISTS_OR_ADD"
                    } else {
                        "APPEND_IF_EXISTS_OR_ADD"
                    };
                    let list: Vec<Value> = entries
                        .into_iter()
                        .map(|(k, v)| {
                            json!({"header": {"key": k, "value": v}, "append_action": action})
                        })
                        .collect();
                    // `set` before `add`, whatever the order written.
                    if op == "set" {
                        to_add.splice(0..0, list);
                    } else {
                        to_add.extend(list);
                    }
                }
                "remove" => {
                    if value.is_null() {
                        continue;
                    }
                    let Some(list) = value.as_array() else {
                        return err(&opath, "not a list of header names");
                    };
                    for (i, name) in list.iter().enumerate() {
                        let Some(name) = name.as_str() else {
                            return err(&format!("{opath}[{i}]"), "not a string");
                        };
                        header_name(name, &format!("{opath}[{i}]"), false)?;
                        if !is_internal(name) {
                            to_remove.push(json!(name));
                        }
                    }
                }
                _ => {
                    return err(
                        &opath,
                        "not a field of an Istio HeaderOperations (set, add, remove)",
                    )
                }
            }
        }
        if request {
            if set_authority.is_some() && add_authority.is_some() {
                return err(
                    &spath,
                    "authority header cannot be set multiple times (in set and add)",
                );
            }
            out.authority = set_authority.or(add_authority);
            out.request_add = to_add;
            out.request_remove = to_remove;
        } else {
            out.response_add = to_add;
            out.response_remove = to_remove;
        }
    }
    Ok(out)
}

/// A header name Istio accepts in an operation: a lower-case-insensitive
/// token (`:authority`/`host` in request `set`/`add` only).
fn header_name(name: &str, path: &str, authority_ok: bool) -> Result<()> {
    if authority_ok && is_authority(name) {
        return Ok(());
    }
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return err(path, format!("{name:?} is not a valid header name"));
    }
    Ok(())
}

fn header_value(v: &str, path: &str) -> Result<()> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return err(path, "a header value cannot hold CR, LF or NUL");
    }
    Ok(())
}
