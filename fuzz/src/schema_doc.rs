//! JSON documents of a declared configuration type, generated from its
//! [`Schema`] (the declaration in `filter/src/config.rs`): every field the
//! declaration has is generated, so a new field is fuzzed without touching
//! this file. Mostly well-formed, with the mistakes a decoder must refuse
//! the way serde does: a field left out, `null`, a wrong type, an unknown
//! or misspelt name, a field given twice, a struct as an array, numbers at
//! and past every limit, strings with escapes, and a cut document.

use arbitrary::{Result, Unstructured};
use canary_router::schema::decode::{Schema, Shape};

/// Numbers near the edges of what the reader and serde_json handle.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "80",
    "65535",
    "1000000",
    "1.5",
    "0.05",
    "5e-2",
    "1e5",
    "1E+2",
    "-1.25e-7",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "-1.8e308",
    "1e309",
    "1e-400",
    "0.1e310",
    "123456789012345678901234567890",
    "0.30000000000000004",
    "1.23456789012345678901234567",
    "00",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "0x10",
];

/// Strings, some with escapes the reader must decode as serde_json does.
const STRINGS: &[&str] = &[
    "",
    "a",
    "backend",
    "x-user",
    "/api",
    "v1",
    "outbound|80|v1|backend.default.svc.cluster.local",
    "\\u00e9\\n\\\"\\\\\\/",
    "\\ud83d\\ude00",
    "\\ud800",
    "\\udc00",
    "\\x",
    "\\u12",
    "é",
    "30s",
    "1m",
    "Lax",
    "None",
    "requestPort",
    "glue",
    "*.example.com",
    "[a-z]+",
];

/// A document of `schema` as JSON text.
pub fn document(u: &mut Unstructured<'_>, schema: &Schema) -> Result<String> {
    let mut out = String::new();
    object(u, schema, 0, &mut out)?;
    if u.ratio(1, 32)? {
        // Cut short: every EOF error.
        let cut = u.int_in_range(0..=out.len())?;
        while !out.is_char_boundary(cut.min(out.len())) {
            out.pop();
        }
        out.truncate(cut.min(out.len()));
    }
    Ok(out)
}

fn object(u: &mut Unstructured<'_>, schema: &Schema, depth: u32, out: &mut String) -> Result<()> {
    if u.ratio(1, 64)? {
        // A struct as an array (serde accepts its positional form).
        out.push('[');
        for (i, f) in schema
            .fields
            .iter()
            .enumerate()
            .take(u.int_in_range(0..=3)?)
        {
            if i > 0 {
                out.push(',');
            }
            value(u, f.shape, depth + 1, out)?;
        }
        out.push(']');
        return Ok(());
    }
    out.push('{');
    let mut first = true;
    let mut comma = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    let mut order: Vec<usize> = (0..schema.fields.len()).collect();
    if u.ratio(1, 4)? {
        // Another order than the declaration's.
        for i in (1..order.len()).rev() {
            let j = u.int_in_range(0..=i)?;
            order.swap(i, j);
        }
    }
    for i in order {
        let f = &schema.fields[i];
        // Required fields are usually there, others half the time.
        let give = if f.required {
            !u.ratio(1, 16)?
        } else {
            u.ratio(1, 2)?
        };
        if !give {
            continue;
        }
        let times = if u.ratio(1, 32)? { 2 } else { 1 };
        for _ in 0..times {
            comma(out);
            key(u, f.json, out)?;
            out.push(':');
            value(u, f.shape, depth + 1, out)?;
        }
    }
    if u.ratio(1, 16)? {
        // A field the type does not have, or a misspelt one.
        comma(out);
        let name = match schema
            .fields
            .get(u.choose_index(schema.fields.len().max(1))?)
        {
            Some(f) if u.ratio(1, 2)? => {
                let mut n = f.json.to_string();
                n.push(*u.choose(&['s', 'X', '_'])?);
                n
            }
            _ => u.choose(&["x", "retries", "Name", ""])?.to_string(),
        };
        key(u, &name, out)?;
        out.push(':');
        value(u, Shape::Str, depth + 1, out)?;
    }
    out.push('}');
    Ok(())
}

fn key(u: &mut Unstructured<'_>, name: &str, out: &mut String) -> Result<()> {
    out.push('"');
    out.push_str(name);
    out.push('"');
    if u.ratio(1, 64)? {
        out.push_str(" \n\t");
    }
    Ok(())
}

fn value(u: &mut Unstructured<'_>, shape: Shape, depth: u32, out: &mut String) -> Result<()> {
    // Sometimes a value of the wrong shape (or null where none is taken).
    if u.ratio(1, 24)? || depth > 12 {
        let wrong = u.choose(&[
            Shape::Str,
            Shape::I64,
            Shape::Bool,
            Shape::Seq(|| Shape::Str),
            Shape::Map(|| Shape::Str),
        ])?;
        return match u.int_in_range(0..=2)? {
            0 => {
                out.push_str("null");
                Ok(())
            }
            _ if depth > 12 => {
                out.push_str("0");
                Ok(())
            }
            _ => value(u, *wrong, depth + 1, out),
        };
    }
    match shape {
        Shape::Str => {
            out.push('"');
            if u.ratio(1, 4)? {
                let s: String = u.arbitrary()?;
                for c in s.chars() {
                    match c {
                        '"' | '\\' => {
                            out.push('\\');
                            out.push(c);
                        }
                        c if (c as u32) < 0x20 && !u.ratio(1, 8)? => {
                            out.push_str(&format!("\\u{:04x}", c as u32))
                        }
                        c => out.push(c),
                    }
                }
            } else {
                out.push_str(u.choose(STRINGS)?);
            }
            out.push('"');
        }
        Shape::U64 | Shape::I64 | Shape::F64 => {
            if u.ratio(1, 3)? {
                let n: i64 = u.arbitrary()?;
                out.push_str(&n.to_string());
            } else if u.ratio(1, 4)? {
                let n: f64 = u.arbitrary()?;
                out.push_str(&format!("{n:e}").replace("inf", "1e400").replace("NaN", "0"));
            } else {
                out.push_str(u.choose(NUMBERS)?);
            }
        }
        Shape::Bool => out.push_str(u.choose(&["true", "false", "tru", "True"])?),
        // Any JSON value (a route policy): one of the other shapes.
        Shape::Json => {
            let any = u.choose(&[
                Shape::Str,
                Shape::F64,
                Shape::Bool,
                Shape::Seq(|| Shape::Json),
                Shape::Map(|| Shape::Json),
            ])?;
            value(u, *any, depth + 1, out)?;
        }
        Shape::Option(s) => {
            if u.ratio(1, 8)? {
                out.push_str("null");
            } else {
                value(u, s(), depth, out)?;
            }
        }
        Shape::Seq(s) => {
            out.push('[');
            let n = u.int_in_range(0..=3)?;
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                value(u, s(), depth + 1, out)?;
            }
            if n > 0 && u.ratio(1, 32)? {
                out.push(',');
            }
            out.push(']');
        }
        Shape::Map(s) => {
            out.push('{');
            let n = u.int_in_range(0..=3)?;
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                let name = u.choose(&["x-user", "a", "a", ":path", ""])?;
                key(u, name, out)?;
                out.push(':');
                value(u, s(), depth + 1, out)?;
            }
            out.push('}');
        }
        Shape::Struct(s) => object(u, s(), depth, out)?,
    }
    Ok(())
}
