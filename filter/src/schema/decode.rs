//! From JSON to the [`crate::schema::config`] types, field by field, with the
//! [`filter_runtime::json`] reader: strict (an unknown field is an error), with the
//! JSON path and serde's message in every error.
//!
//! Each configuration type is declared once, with [`schema!`]: its fields,
//! their JSON names, which may be left out, and their docs. The macro writes
//! the struct, its decoder (by field name: a field cannot be named without
//! being decoded), the list of its JSON names ([`FIELDS`](crate::schema::config::MatchRequest::FIELDS)),
//! a description for tools ([`Schema`]), and, with the `serde` feature,
//! serde's derive with the same names: the oracle the decoder is tested
//! against.

use alloc::{boxed::Box, string::String, vec::Vec};

use crate::schema::config::Given;
use filter_runtime::json::{Fail, Reader, R};
use filter_runtime::map::Map;

/// A configuration type the reader can fill.
pub trait FromJson: Sized + Default {
    /// What the value is, for tools that walk the schema.
    const SHAPE: Shape;
    /// Whether a field of this type may be left out (serde's rule: an
    /// `Option` may, and is then `None`).
    const OPTIONAL: bool = false;

    /// Reads one value of this type at the reader's position.
    #[doc(hidden)]
    fn read(r: &mut Reader<'_>) -> R<Self>;

    /// Reads one value into a field: one function per value type, not one
    /// per field.
    #[doc(hidden)]
    #[inline(never)]
    fn fill(r: &mut Reader<'_>, field: &mut Self) -> R<()> {
        *field = Self::read(r)?;
        Ok(())
    }
}

/// serde's `missing field` error for the first field of `required` (bits
/// by declaration order) that is not in `seen`, at the object's path.
#[inline(never)]
#[doc(hidden)]
pub fn missing(r: &Reader<'_>, seen: u64, required: u64, fields: &[&str]) -> Fail {
    let first = (required & !seen).trailing_zeros() as usize;
    let field = fields.get(first).copied().unwrap_or_default();
    r.missing_field(field)
}

/// The bits of the fields a document must give, by declaration order.
#[doc(hidden)]
pub const fn required_bits(mut required: &[bool]) -> u64 {
    assert!(required.len() <= 64, "at most 64 fields per type");
    let (mut bits, mut bit) = (0, 1);
    while let [first, rest @ ..] = required {
        if *first {
            bits |= bit;
        }
        bit <<= 1;
        required = rest;
    }
    bits
}

/// What a configuration value is: the schema as data, for the tools that
/// must know every field (the fuzz grammar, the docs and translation
/// checks). Nothing in the filter reads it.
#[derive(Clone, Copy)]
pub enum Shape {
    /// A string.
    Str,
    /// An unsigned integer.
    U64,
    /// A signed integer.
    I64,
    /// A number.
    F64,
    /// `true` or `false`.
    Bool,
    /// `null` (or left out), or the value.
    Option(fn() -> Shape),
    /// A list.
    Seq(fn() -> Shape),
    /// An object with string keys.
    Map(fn() -> Shape),
    /// An object with the fields of a declared type.
    Struct(fn() -> &'static Schema),
    /// Any JSON value, checked and not kept, or none ([`Given`]).
    Json,
}

impl core::fmt::Debug for Shape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Shape::Str => f.write_str("string"),
            Shape::U64 => f.write_str("u64"),
            Shape::I64 => f.write_str("i64"),
            Shape::F64 => f.write_str("f64"),
            Shape::Bool => f.write_str("bool"),
            Shape::Option(s) => write!(f, "Option<{:?}>", s()),
            Shape::Seq(s) => write!(f, "Vec<{:?}>", s()),
            Shape::Map(s) => write!(f, "Map<{:?}>", s()),
            Shape::Struct(s) => f.write_str(s().name),
            Shape::Json => f.write_str("Given"),
        }
    }
}

/// A declared configuration type.
#[derive(Debug)]
pub struct Schema {
    /// The Rust name (serde's `expected struct ...`).
    pub name: &'static str,
    /// The fields, in declaration order.
    pub fields: &'static [Field],
}

/// One field of a declared type.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The JSON name.
    pub json: &'static str,
    /// The Rust name.
    pub rust: &'static str,
    /// Its docs line(s).
    pub doc: &'static str,
    /// Whether a document must give it (else `missing field`).
    pub required: bool,
    /// Its value.
    pub shape: Shape,
}

impl Schema {
    /// The field with this JSON name.
    pub fn field(&self, json: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.json == json)
    }
}

impl FromJson for String {
    const SHAPE: Shape = Shape::Str;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.string()
    }
}

impl FromJson for u64 {
    const SHAPE: Shape = Shape::U64;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.u64()
    }
}

impl FromJson for i64 {
    const SHAPE: Shape = Shape::I64;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.i64()
    }
}

impl FromJson for f64 {
    const SHAPE: Shape = Shape::F64;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.f64()
    }
}

impl FromJson for bool {
    const SHAPE: Shape = Shape::Bool;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.bool()
    }
}

impl FromJson for Given {
    const SHAPE: Shape = Shape::Json;
    fn read(r: &mut Reader<'_>) -> R<Self> {
        if r.null()? {
            return Ok(Given(false));
        }
        r.skip()?;
        Ok(Given(true))
    }
}

impl<T: FromJson> FromJson for Option<T> {
    const SHAPE: Shape = Shape::Option(|| T::SHAPE);
    const OPTIONAL: bool = true;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.opt(T::read)
    }
    #[inline(never)]
    fn fill(r: &mut Reader<'_>, field: &mut Self) -> R<()> {
        if r.null()? {
            return Ok(());
        }
        T::fill(r, field.insert(T::default()))
    }
}

/// A rarely given object held by pointer, so that the lists holding its
/// parent stay small (a rule set's parsed form is alive while it compiles).
impl<T: FromJson> FromJson for Box<T> {
    const SHAPE: Shape = T::SHAPE;
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        T::read(r).map(Box::new)
    }
    #[inline]
    fn fill(r: &mut Reader<'_>, field: &mut Self) -> R<()> {
        T::fill(r, field)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    const SHAPE: Shape = Shape::Seq(|| T::SHAPE);
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.seq(&mut T::read)
    }
}

impl<T: FromJson> FromJson for Map<T> {
    const SHAPE: Shape = Shape::Map(|| T::SHAPE);
    #[inline]
    fn read(r: &mut Reader<'_>) -> R<Self> {
        r.map(&mut T::read)
    }
}

/// Declares a configuration type: the struct, its decoder, its field list
/// and its [`Schema`], and serde's derive (feature `serde`) as the oracle.
///
/// ```text
/// schema! {
///     /// The attributes of the sticky cookie the filter issues.
///     #[derive(Debug, Clone, Default)]
///     pub struct SetCookie {
///         /// `Max-Age` in seconds; absent: a session cookie.
///         "maxAge" => max_age: Option<i64>,
///         ...
///     }
/// }
/// ```
///
/// Each field is `"jsonName" => rust_name: Type`, under its docs. How a
/// field left out of a document reads follows from its type, as in serde:
/// an `Option` is `None`, anything else is `missing field`, unless the
/// field ends in `= default` (serde's `#[serde(default)]`: the type's
/// `Default`). Field names are refused but these (`unknown field`, serde's
/// message), and so is a field given twice.
macro_rules! schema {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $json:literal => $field:ident : $ty:ty $(= $default:ident)?,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        #[cfg_attr(feature = "serde", derive(serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "serde", serde(rename = $json $(, $default)?))]
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The JSON names of the fields, in the order serde's
            /// messages list them.
            pub const FIELDS: &'static [&'static str] = &[$($json),*];

            /// The declaration, as data.
            pub fn schema() -> &'static $crate::schema::decode::Schema {
                static SCHEMA: $crate::schema::decode::Schema = $crate::schema::decode::Schema {
                    name: stringify!($name),
                    fields: &[$($crate::schema::decode::Field {
                        json: $json,
                        rust: stringify!($field),
                        doc: concat!($($doc),*),
                        required: schema!(@required $ty $(, $default)?),
                        shape: <$ty as $crate::schema::decode::FromJson>::SHAPE,
                    }),*],
                };
                &SCHEMA
            }
        }

        impl $crate::schema::decode::FromJson for $name {
            const SHAPE: $crate::schema::decode::Shape = $crate::schema::decode::Shape::Struct(Self::schema);

            fn read(r: &mut ::filter_runtime::json::Reader<'_>) -> ::filter_runtime::json::R<Self> {
                let mut value = Self::default();
                Self::fill(r, &mut value)?;
                Ok(value)
            }

            // In place: `value` holds the default of each field. (A type
            // without required fields masks with zero.)
            #[inline(never)]
            #[allow(clippy::bad_bit_mask)]
            fn fill(r: &mut ::filter_runtime::json::Reader<'_>, value: &mut Self) -> ::filter_runtime::json::R<()> {
                // A field's number is its place in the declaration.
                #[allow(non_camel_case_types)]
                enum Index { $($field),* }
                const REQUIRED: u64 =
                    $crate::schema::decode::required_bits(&[$(schema!(@required $ty $(, $default)?)),*]);
                let seen = r.object(stringify!($name), Self::FIELDS, &mut |r, n| {
                    $(if n == Index::$field as usize {
                        return $crate::schema::decode::FromJson::fill(r, &mut value.$field);
                    })*
                    Ok(())
                })?;
                if REQUIRED & !seen != 0 {
                    return Err($crate::schema::decode::missing(r, seen, REQUIRED, Self::FIELDS));
                }
                Ok(())
            }
        }
    };
    (@required $ty:ty) => { !<$ty as $crate::schema::decode::FromJson>::OPTIONAL };
    (@required $ty:ty, default) => { false };
}

pub(crate) use schema;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::config::{PluginConfig, RuleFile};
    use crate::schema::error::{ConfigError, ConfigErrorKind};

    /// What serde_json with serde_path_to_error said (the parser this one replaced).
    fn serde<T: serde::de::DeserializeOwned + core::fmt::Debug>(
        bytes: &[u8],
    ) -> Result<String, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            ConfigError::from(ConfigErrorKind::Syntax {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })
        })?;
        de.end().map_err(|e| {
            ConfigError::from(ConfigErrorKind::Syntax {
                path: String::new(),
                message: e.to_string(),
            })
        })?;
        Ok(format!("{value:?}"))
    }

    /// The two known differences: a struct given as a JSON array (serde
    /// accepts a positional form nobody writes; here it is the type error
    /// it reads as), and a float in exponent form or beyond u64, shown as
    /// written instead of in Rust's shortest form.
    fn known_difference(a: &Result<String, ConfigError>, o: &Result<String, ConfigError>) -> bool {
        match (
            a.as_ref().map_err(ConfigError::kind),
            o.as_ref().map_err(ConfigError::kind),
        ) {
            (_, Err(ConfigErrorKind::Syntax { message, .. }))
                if message.contains("invalid type: sequence, expected struct") =>
            {
                true
            }
            (
                Err(ConfigErrorKind::Syntax {
                    path: p,
                    message: m,
                }),
                Err(ConfigErrorKind::Syntax {
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
        crate::domain::plugin::parse::<T>(bytes).map(|v| format!("{v:?}"))
    }

    /// A document of `schema` giving every field (`all`) or only the
    /// required ones, each value unique (`n` counts them), and its Debug
    /// text; `want` gets the Debug text of each field with a scalar value
    /// (`rust_name: value`).
    fn sample(schema: &Schema, all: bool, n: &mut u64, want: &mut Vec<String>) -> (String, String) {
        let (mut json, mut debug) = (Vec::new(), Vec::new());
        for f in schema.fields.iter().filter(|f| all || f.required) {
            let (j, d) = value(f.shape, all, n, want);
            json.push(format!("{:?}:{j}", f.json));
            debug.push(format!("{}: {d}", f.rust));
        }
        // Leaves only: a struct given with its required fields alone shows
        // the others at their defaults.
        let leaf = |f: &&Field| {
            let mut s = f.shape;
            while let Shape::Option(i) | Shape::Seq(i) | Shape::Map(i) = s {
                s = i();
            }
            !matches!(s, Shape::Struct(_))
        };
        let given = schema.fields.iter().filter(|f| all || f.required);
        want.extend(
            given
                .zip(&debug)
                .filter(|(f, _)| leaf(f))
                .map(|(_, d)| d.clone()),
        );
        (
            format!("{{{}}}", json.join(",")),
            format!("{} {{ {} }}", schema.name, debug.join(", ")),
        )
    }

    /// A unique value of `shape`: its JSON and how Debug shows it.
    fn value(shape: Shape, all: bool, n: &mut u64, want: &mut Vec<String>) -> (String, String) {
        *n += 1;
        let k = *n;
        match shape {
            Shape::Str => (format!("\"s{k}\""), format!("\"s{k}\"")),
            Shape::U64 | Shape::I64 => (format!("{k}"), format!("{k}")),
            Shape::F64 => (format!("{k}.5"), format!("{k}.5")),
            Shape::Bool => ((k % 2 == 0).to_string(), (k % 2 == 0).to_string()),
            Shape::Option(s) => {
                let (j, d) = value(s(), all, n, want);
                (j, format!("Some({d})"))
            }
            Shape::Seq(s) => {
                let (j, d) = value(s(), all, n, want);
                (format!("[{j}]"), format!("[{d}]"))
            }
            Shape::Map(s) => {
                let (j, d) = value(s(), all, n, want);
                (format!("{{\"k{k}\":{j}}}"), format!("{{\"k{k}\": {d}}}"))
            }
            Shape::Struct(s) => sample(s(), all, n, want),
            Shape::Json => (
                format!("{{\"k{k}\":[{k},\"s\",null]}}"),
                "Given(true)".into(),
            ),
        }
    }

    /// Every declared field, at every depth, decodes into the Rust field its
    /// declaration names (each value unique, each found under its name), as
    /// serde reads it; a required field left out is serde's `missing field`.
    #[test]
    fn every_declared_field_decodes_into_its_field() {
        use crate::schema::config::*;
        fn check<T: FromJson + core::fmt::Debug + serde::de::DeserializeOwned>(
            fields: &[&str],
            checked: &mut Vec<&'static str>,
        ) {
            let Shape::Struct(schema) = T::SHAPE else {
                unreachable!()
            };
            let schema = schema();
            checked.push(schema.name);
            assert_eq!(
                schema.fields.iter().map(|f| f.json).collect::<Vec<_>>(),
                fields
            );
            for all in [true, false] {
                let (mut n, mut want) = (0, Vec::new());
                let (doc, _) = sample(schema, all, &mut n, &mut want);
                let got = ours::<T>(doc.as_bytes()).unwrap();
                assert_eq!(Ok(got.clone()), serde::<T>(doc.as_bytes()), "{doc}");
                let lost: Vec<_> = want.iter().filter(|w| !got.contains(w.as_str())).collect();
                assert!(lost.is_empty(), "{doc}\n{got}\nnot found: {lost:?}");
            }
            for f in schema.fields.iter().filter(|f| f.required) {
                let mut without = Schema {
                    name: schema.name,
                    fields: schema.fields,
                };
                let kept: Vec<Field> = schema
                    .fields
                    .iter()
                    .filter(|g| g.json != f.json)
                    .map(|g| Field { ..*g })
                    .collect();
                without.fields = Vec::leak(kept);
                let (doc, _) = sample(&without, true, &mut 0, &mut Vec::new());
                let message = format!("missing field `{}` at line 1 column {}", f.json, doc.len());
                let want = Err(ConfigError::from(ConfigErrorKind::Syntax {
                    path: ".".into(),
                    message,
                }));
                assert_eq!(ours::<T>(doc.as_bytes()), want, "{doc}");
                assert_eq!(serde::<T>(doc.as_bytes()), want, "{doc}");
            }
        }
        let mut checked = Vec::new();
        check::<PluginConfig>(PluginConfig::FIELDS, &mut checked);
        check::<RuleFile>(RuleFile::FIELDS, &mut checked);
        check::<RuleSource>(RuleSource::FIELDS, &mut checked);
        check::<Service>(Service::FIELDS, &mut checked);
        check::<HttpRoute>(HttpRoute::FIELDS, &mut checked);
        check::<MatchRequest>(MatchRequest::FIELDS, &mut checked);
        check::<StringMatch>(StringMatch::FIELDS, &mut checked);
        check::<RouteDestination>(RouteDestination::FIELDS, &mut checked);
        check::<Guard>(Guard::FIELDS, &mut checked);
        check::<Destination>(Destination::FIELDS, &mut checked);
        check::<PortSelector>(PortSelector::FIELDS, &mut checked);
        check::<Sticky>(Sticky::FIELDS, &mut checked);
        check::<SetCookie>(SetCookie::FIELDS, &mut checked);
        check::<Ramp>(Ramp::FIELDS, &mut checked);
        check::<RampStep>(RampStep::FIELDS, &mut checked);
        check::<Pause>(Pause::FIELDS, &mut checked);
        // Every type the two documents reach was checked.
        let mut reached = Vec::new();
        let mut stack = vec![PluginConfig::schema(), RuleFile::schema()];
        while let Some(schema) = stack.pop() {
            if reached.contains(&schema.name) {
                continue;
            }
            reached.push(schema.name);
            for f in schema.fields {
                let mut s = f.shape;
                while let Shape::Option(i) | Shape::Seq(i) | Shape::Map(i) = s {
                    s = i();
                }
                if let Shape::Struct(i) = s {
                    stack.push(i());
                }
            }
        }
        reached.sort_unstable();
        checked.sort_unstable();
        assert_eq!(reached, checked);
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
            "guard":{"maxErrorRate":0.05,"minRequests":100,"interval":"30s","baseline":"c1","maxLatencyRatio":2.5}}],
          "sticky":{"header":"x-user","cookie":null,"sourceIp":true},
          "ramp":{"canary":"h","start":"2026-12-07T10:00:00Z","steps":[{"setWeight":12.5},{"pause":{"duration":"1m"}},{"setWeight":null,"pause":null}]}},
          {"route":[{"destination":{"cluster":"c3"}}],"sticky":{"cookie":"k","setCookie":{"maxAge":60,"path":"/p",
            "httpOnly":false,"secure":true,"sameSite":"None","domain":"d.e"}}},
          {"route":[{"destination":{"cluster":"c2"},"headers":{"response":{"add":{"x":"y"}}}}],"timeout":"1s",
            "retries":{"attempts":2,"perTryTimeout":"0.5s","retryOn":"5xx,503"},"fault":null,
            "headers":{"request":{"set":{"a":"b"},"remove":["c"]}},"rewrite":{"uri":"/v2"},"mirror":{"host":"m"},
            "mirrorPercentage":{"value":50.5},"mirrors":[{"destination":{"host":"m"},"percentage":{"value":1e1}}],
            "corsPolicy":{"allowOrigins":[{"exact":"x"}],"maxAge":"1h","allowCredentials":true,
              "n":[1,-2,3.5e2,-0,null,false,true,"\u00e9\ud83d\ude00",[],{}]}}]}]}"#;

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
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"timeout":[1,]}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"timeout":{"a":1,}}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"timeout":{"a":1,"a":2}}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"fault":1e999}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"fault":"\ud800"}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"fault":{1:2}}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"}}],"mirrorPercent":5}]}]}"#,
            r#"{"services":[{"hosts":["a"],"http":[{"route":[{"destination":{"cluster":"a"},"headers":{}}],"headers":nul}]}]}"#,
        ];
        cases.extend(extra.iter().map(|s| s.to_string()));
        // Policies nested around serde_json's recursion limit (128 open
        // objects and lists, counted from the root).
        for depth in [121, 122, 123, 200] {
            cases.push(format!(
                r#"{{"services":[{{"hosts":["a"],"http":[{{"route":[{{"destination":{{"cluster":"a"}}}}],"retries":{}1{}}}]}}]}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ));
        }
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
