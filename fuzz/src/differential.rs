//! Differential fuzzing: the filter's own replacement of a library against
//! the library it replaced, on the same input. Each side's answer is an
//! [`Outcome`]; [`same`] compares them, and lets through only the
//! differences the replacement documents ([`Exception`]s, each with where
//! it is written down). A target reads its input, runs both, and calls
//! [`assert_same`].

use std::fmt::Debug;

/// What one side made of an input: a value (as its `Debug` text) or an
/// error (the JSON path and the message, for a decoder).
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Value(String),
    /// Refused.
    Error {
        /// Where (a JSON path; empty when the contract has none).
        path: String,
        /// Why.
        message: String,
    },
}

impl Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "Ok({v})"),
            Outcome::Error { path, message } => write!(f, "Err({path:?}: {message})"),
        }
    }
}

impl Outcome {
    /// The outcome of a result whose error is a path and a message.
    pub fn of<T: Debug>(r: Result<T, (String, String)>) -> Self {
        match r {
            Ok(v) => Outcome::Value(format!("{v:?}")),
            Err((path, message)) => Outcome::Error { path, message },
        }
    }
}

/// A difference the replacement documents: its name, where it is written
/// down, and whether it covers a pair of outcomes (ours, the reference's).
pub struct Exception {
    /// What differs.
    pub name: &'static str,
    /// Where the difference is documented.
    pub documented: &'static str,
    /// Whether it explains (input, ours, reference).
    pub covers: fn(&[u8], &Outcome, &Outcome) -> bool,
}

/// Whether the two outcomes are the same (`Ok(None)`), or differ only as
/// a documented exception says (`Ok(Some(its name))`); `Err` if they differ.
pub fn same(
    input: &[u8],
    ours: &Outcome,
    reference: &Outcome,
    exceptions: &[Exception],
) -> Result<Option<&'static str>, ()> {
    if ours == reference {
        return Ok(None);
    }
    exceptions
        .iter()
        .find(|e| (e.covers)(input, ours, reference))
        .map(|e| Some(e.name))
        .ok_or(())
}

/// Panics (a finding) unless the outcomes are the same or a documented
/// exception.
pub fn assert_same(
    what: &str,
    input: &[u8],
    ours: &Outcome,
    reference: &Outcome,
    exceptions: &[Exception],
) {
    if same(input, ours, reference, exceptions).is_err() {
        panic!(
            "{what}: the two differ on {:?}\nours:      {ours:?}\nreference: {reference:?}",
            String::from_utf8_lossy(input)
        );
    }
}
