//! The grammar of `json_parity`: a shape (what the caller asks the reader
//! for: strings, integers, floats, booleans, options, lists, maps, structs
//! with known fields) and a document, read twice: by the filter's JSON
//! reader, and by serde_json through serde_path_to_error with a
//! `DeserializeSeed` that asks serde for the same shape as serde's derive
//! asks (`deny_unknown_fields`; a missing field is an error unless it is an
//! option). The results are values, or a path and a message.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Field names structs pick from, in this order.
const NAMES: [&str; 5] = ["a", "b", "hosts", "é", "a b"];
/// Struct names.
const STRUCTS: [&str; 3] = ["A", "Route", "Z"];

/// Every subset of `NAMES`, in order, by bit mask (made once: serde wants
/// `&'static` field lists).
fn field_lists() -> &'static [&'static [&'static str]] {
    static LISTS: OnceLock<Vec<&'static [&'static str]>> = OnceLock::new();
    LISTS.get_or_init(|| {
        (0..1u32 << NAMES.len())
            .map(|mask| {
                let list: Vec<&'static str> = NAMES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                &*Box::leak(list.into_boxed_slice())
            })
            .collect()
    })
}

/// What the caller asks for.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A string.
    Str,
    /// An unsigned integer.
    U64,
    /// A signed integer.
    I64,
    /// A float.
    F64,
    /// A boolean.
    Bool,
    /// `null` or the inner shape.
    Opt(Box<Shape>),
    /// A list.
    Seq(Box<Shape>),
    /// An object with string keys.
    Map(Box<Shape>),
    /// An object with these fields (a field of shape `Opt` may be missing).
    Struct {
        /// Its name, in messages.
        name: &'static str,
        /// Its fields' names.
        fields: &'static [&'static str],
        /// Their shapes, one per name.
        shapes: Vec<Shape>,
    },
}

impl Shape {
    fn build(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Shape> {
        let pick = if depth >= 4 {
            u.int_in_range(0..=4)?
        } else {
            u.int_in_range(0..=8)?
        };
        Ok(match pick {
            0 => Shape::Str,
            1 => Shape::U64,
            2 => Shape::I64,
            3 => Shape::F64,
            4 => Shape::Bool,
            5 => Shape::Opt(Box::new(Shape::build(u, depth + 1)?)),
            6 => Shape::Seq(Box::new(Shape::build(u, depth + 1)?)),
            7 => Shape::Map(Box::new(Shape::build(u, depth + 1)?)),
            _ => {
                let lists = field_lists();
                let fields = lists[u.choose_index(lists.len())?];
                let mut shapes = Vec::new();
                for _ in fields {
                    shapes.push(Shape::build(u, depth + 1)?);
                }
                Shape::Struct {
                    name: STRUCTS[u.choose_index(STRUCTS.len())?],
                    fields,
                    shapes,
                }
            }
        })
    }
}

/// A value as read; floats by their bits.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A string.
    Str(String),
    /// An unsigned integer.
    U(u64),
    /// A signed integer.
    I(i64),
    /// A float's bits.
    F(u64),
    /// A boolean.
    B(bool),
    /// An option.
    Opt(Option<Box<Out>>),
    /// A list.
    Seq(Vec<Out>),
    /// A map, by key (the last of equal keys).
    Map(BTreeMap<String, Out>),
    /// A struct's fields, by number (`None`: a missing option).
    Struct(Vec<Option<Out>>),
}

/// A JSON value to write, of any shape, with room for near-misses.
#[derive(Debug, Arbitrary)]
enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    /// A number written from pieces: digits, a fraction, an exponent.
    Number {
        negative: bool,
        int: u64,
        zeros: u8,
        frac: Option<u64>,
        exp: Option<i32>,
    },
    /// A number near `f64::MAX`: its 17 digits with one changed, and an
    /// exponent around 308.
    NearMax {
        digit: u8,
        by: i8,
        exp_delta: i8,
        negative: bool,
    },
    Str(String),
    /// A string with escapes.
    Escaped(Vec<u8>),
    Arr(Vec<Doc>),
    Obj(Vec<(u8, Doc)>),
    /// Bytes as they are.
    Raw(Vec<u8>),
}

impl Doc {
    fn write(&self, out: &mut Vec<u8>, ws: &mut impl Iterator<Item = u8>) {
        let mut space = |out: &mut Vec<u8>| match ws.next().unwrap_or(0) % 8 {
            0 => out.push(b' '),
            1 => out.push(b'\n'),
            2 => out.extend_from_slice(b"\r\n\t"),
            _ => {}
        };
        space(out);
        match self {
            Doc::Null => out.extend_from_slice(b"null"),
            Doc::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Doc::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Doc::Big(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Doc::Number {
                negative,
                int,
                zeros,
                frac,
                exp,
            } => {
                if *negative {
                    out.push(b'-');
                }
                out.extend_from_slice(int.to_string().as_bytes());
                out.extend(std::iter::repeat_n(b'0', usize::from(*zeros % 40)));
                if let Some(f) = frac {
                    out.push(b'.');
                    out.extend(std::iter::repeat_n(b'0', usize::from(*zeros / 40 % 8)));
                    out.extend_from_slice(f.to_string().as_bytes());
                }
                if let Some(e) = exp {
                    out.push(if e % 2 == 0 { b'e' } else { b'E' });
                    out.extend_from_slice(e.to_string().as_bytes());
                }
            }
            Doc::NearMax {
                digit,
                by,
                exp_delta,
                negative,
            } => {
                let mut digits = b"17976931348623157".to_vec();
                let i = usize::from(*digit) % digits.len();
                digits[i] =
                    b'0' + ((digits[i] - b'0') as i32 + i32::from(*by)).rem_euclid(10) as u8;
                if *negative {
                    out.push(b'-');
                }
                out.push(digits[0]);
                out.push(b'.');
                out.extend_from_slice(&digits[1..]);
                out.push(b'e');
                out.extend_from_slice((308 + i32::from(*exp_delta % 4)).to_string().as_bytes());
            }
            Doc::Str(s) => {
                out.extend_from_slice(serde_json::to_string(s).unwrap_or_default().as_bytes())
            }
            Doc::Escaped(bytes) => {
                out.push(b'"');
                for b in bytes {
                    match b % 12 {
                        0 => out.extend_from_slice(b"\\n"),
                        1 => out.extend_from_slice(b"\\u00e9"),
                        2 => out.extend_from_slice(b"\\ud83d\\ude00"),
                        3 => out.extend_from_slice(b"\\ud83d"),
                        4 => out.extend_from_slice(b"\\\""),
                        5 => out.extend_from_slice(b"\\x"),
                        6 => out.push(*b),
                        _ => out.push(b'a' + b % 26),
                    }
                }
                out.push(b'"');
            }
            Doc::Arr(items) => {
                out.push(b'[');
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    d.write(out, ws);
                }
                out.push(b']');
            }
            Doc::Obj(entries) => {
                out.push(b'{');
                for (i, (k, d)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let key = NAMES.get(usize::from(*k)).copied().unwrap_or("zz");
                    out.extend_from_slice(
                        serde_json::to_string(key).unwrap_or_default().as_bytes(),
                    );
                    out.push(b':');
                    d.write(out, ws);
                }
                out.push(b'}');
            }
            Doc::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// An edit of the written document.
#[derive(Debug, Arbitrary)]
enum Edit {
    Truncate(u16),
    Replace(u16, u8),
    Insert(u16, u8),
    Remove(u16),
}

/// One case: a shape and a document.
#[derive(Debug)]
pub struct JsonCase {
    /// What is asked for.
    pub shape: Shape,
    /// The document.
    pub doc: Vec<u8>,
}

impl<'a> Arbitrary<'a> for JsonCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let shape = Shape::build(u, 0)?;
        let doc: Doc = u.arbitrary()?;
        let ws: Vec<u8> = u.arbitrary()?;
        let edits: Vec<Edit> = u.arbitrary()?;
        let mut bytes = Vec::new();
        doc.write(&mut bytes, &mut ws.into_iter());
        for e in edits.iter().take(3) {
            let at = |i: &u16| usize::from(*i) % (bytes.len() + 1);
            match e {
                Edit::Truncate(i) => bytes.truncate(at(i)),
                Edit::Replace(i, b) if !bytes.is_empty() => {
                    let i = usize::from(*i) % bytes.len();
                    bytes[i] = *b;
                }
                Edit::Insert(i, b) => {
                    let i = at(i);
                    bytes.insert(i, *b);
                }
                Edit::Remove(i) if !bytes.is_empty() => {
                    let i = usize::from(*i) % bytes.len();
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        Ok(JsonCase { shape, doc: bytes })
    }
}

/// serde_json's reading of `doc` as `shape`: the value, or the path and
/// the message (an error after the value has an empty path).
pub fn reference(shape: &Shape, doc: &[u8]) -> Result<Out, (String, String)> {
    let mut de = serde_json::Deserializer::from_slice(doc);
    let mut track = serde_path_to_error::Track::new();
    let value = shape
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .map_err(|e| (track.path().to_string(), e.to_string()))?;
    de.end().map_err(|e| (String::new(), e.to_string()))?;
    Ok(value)
}

impl<'de> DeserializeSeed<'de> for &Shape {
    type Value = Out;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        use serde::Deserialize;
        match self {
            Shape::Str => String::deserialize(d).map(Out::Str),
            Shape::U64 => u64::deserialize(d).map(Out::U),
            Shape::I64 => i64::deserialize(d).map(Out::I),
            Shape::F64 => f64::deserialize(d).map(|f| Out::F(f.to_bits())),
            Shape::Bool => bool::deserialize(d).map(Out::B),
            Shape::Opt(inner) => d.deserialize_option(OptV(inner)),
            Shape::Seq(inner) => d.deserialize_seq(SeqV(inner)),
            Shape::Map(inner) => d.deserialize_map(MapV(inner)),
            Shape::Struct { name, fields, .. } => d.deserialize_struct(name, fields, StructV(self)),
        }
    }
}

struct OptV<'s>(&'s Shape);

impl<'de> Visitor<'de> for OptV<'_> {
    type Value = Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("option")
    }
    fn visit_none<E: de::Error>(self) -> Result<Out, E> {
        Ok(Out::Opt(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Out, E> {
        Ok(Out::Opt(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        self.0.deserialize(d).map(|v| Out::Opt(Some(Box::new(v))))
    }
}

struct SeqV<'s>(&'s Shape);

impl<'de> Visitor<'de> for SeqV<'_> {
    type Value = Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Out, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.0)? {
            out.push(v);
        }
        Ok(Out::Seq(out))
    }
}

struct MapV<'s>(&'s Shape);

impl<'de> Visitor<'de> for MapV<'_> {
    type Value = Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Out, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self.0)?;
            out.insert(k, v);
        }
        Ok(Out::Map(out))
    }
}

struct StructV<'s>(&'s Shape);

/// A field's name, as serde's derive reads it: its number, or
/// `unknown field`.
struct FieldSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|f| *f == v)
            .ok_or_else(|| E::unknown_field(v, self.0))
    }
}

impl<'de> Visitor<'de> for StructV<'_> {
    type Value = Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Shape::Struct { name, .. } => write!(f, "struct {name}"),
            _ => f.write_str("struct"),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Out, A::Error> {
        let Shape::Struct { fields, shapes, .. } = self.0 else {
            return Err(de::Error::custom("not a struct"));
        };
        let mut got: Vec<Option<Out>> = vec![None; fields.len()];
        while let Some(n) = map.next_key_seed(FieldSeed(fields))? {
            if got[n].is_some() {
                return Err(de::Error::duplicate_field(fields[n]));
            }
            got[n] = Some(map.next_value_seed(&shapes[n])?);
        }
        for (n, shape) in shapes.iter().enumerate() {
            if got[n].is_none() && !matches!(shape, Shape::Opt(_)) {
                return Err(de::Error::missing_field(fields[n]));
            }
        }
        Ok(Out::Struct(got))
    }
}

/// A message with the text of a float it quotes left out: the reader
/// quotes a float as the document spells it, serde_json respells it (the
/// documented exception).
pub fn without_float(m: &str) -> String {
    const AT: &str = "floating point `";
    match m.find(AT) {
        Some(i) => {
            let rest = &m[i + AT.len()..];
            let end = rest.find('`').unwrap_or(0);
            format!("{}{AT}{}", &m[..i], &rest[end..])
        }
        None => m.to_string(),
    }
}
