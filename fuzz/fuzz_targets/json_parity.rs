//! The filter's JSON reader against serde_json with serde_path_to_error,
//! the libraries it replaced (its parity contract): for every document and
//! every shape asked of it, the same value, or the same error path and the
//! same message, ` at line L column C` included. The documented exceptions
//! (`filter-runtime/README.md`, "Parity"): a float quoted in a message is
//! spelled as in the document (serde_json respells it), and a struct given
//! as a JSON array is refused where it starts (serde reads it field by
//! field; refused, its error comes after the array).
#![no_main]

use std::collections::BTreeMap;

use canary_router_fuzz::json_case::{reference, without_float, JsonCase, Out, Shape};
use filter_runtime::json::{Error, Reader, R};
use libfuzzer_sys::fuzz_target;

fn read(r: &mut Reader<'_>, shape: &Shape) -> R<Out> {
    Ok(match shape {
        Shape::Str => Out::Str(r.string()?),
        Shape::U64 => Out::U(r.u64()?),
        Shape::I64 => Out::I(r.i64()?),
        Shape::F64 => Out::F(r.f64()?.to_bits()),
        Shape::Bool => Out::B(r.bool()?),
        Shape::Opt(inner) => Out::Opt(r.opt(|r| read(r, inner))?.map(Box::new)),
        Shape::Seq(inner) => Out::Seq(r.seq(&mut |r| read(r, inner))?),
        Shape::Map(inner) => {
            let map = r.map(&mut |r| read(r, inner))?;
            Out::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
        Shape::Struct {
            name,
            fields,
            shapes,
        } => {
            let mut got: Vec<Option<Out>> = vec![None; fields.len()];
            r.object(name, fields, &mut |r, n| {
                got[n] = Some(read(r, &shapes[n])?);
                Ok(())
            })?;
            for (n, shape) in shapes.iter().enumerate() {
                if got[n].is_none() && !matches!(shape, Shape::Opt(_)) {
                    return Err(r.missing_field(fields[n]));
                }
            }
            Out::Struct(got)
        }
    })
}

/// Our reader's answer, from the document as one slice, or handed over
/// `piece` bytes at a time (as the host hands a configuration over).
fn ours(shape: &Shape, doc: &[u8], piece: Option<usize>) -> Result<Out, (String, String)> {
    let split = |e: Box<Error>| (e.path, e.message);
    let mut pieces = |start: usize, out: &mut Vec<u8>| {
        let rest = doc.get(start..).unwrap_or_default();
        out.extend_from_slice(&rest[..rest.len().min(piece.unwrap_or(0))]);
        true
    };
    let mut r = match piece {
        None => Reader::new(doc),
        Some(_) => Reader::from_pieces(&mut pieces, None),
    };
    let value = read(&mut r, shape).map_err(split)?;
    r.end().map_err(split)?;
    Ok(value)
}

fuzz_target!(|case: JsonCase| {
    let a = ours(&case.shape, &case.doc, None);
    // The same document in pieces of 1 to 16 bytes, the size drawn from
    // the input: a piece boundary changes no value and no error.
    let piece = 1 + case
        .doc
        .iter()
        .fold(case.doc.len(), |h, &b| h.wrapping_mul(31) ^ usize::from(b))
        % 16;
    assert_eq!(
        ours(&case.shape, &case.doc, Some(piece)),
        a,
        "in pieces of {piece}: {:?} as {:?}",
        String::from_utf8_lossy(&case.doc),
        case.shape
    );
    if let Err((_, m)) = &a {
        if m.starts_with("invalid type: sequence, expected struct ") {
            return;
        }
    }
    let b = reference(&case.shape, &case.doc);
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                a,
                b,
                "values differ for {:?} as {:?}",
                String::from_utf8_lossy(&case.doc),
                case.shape
            );
            return;
        }
        (a, b) => (
            a.map_err(|(p, m)| (p, without_float(&m))),
            b.map_err(|(p, m)| (p, without_float(&m))),
        ),
    };
    assert_eq!(
        a,
        b,
        "for {:?} as {:?}",
        String::from_utf8_lossy(&case.doc),
        case.shape
    );
});
