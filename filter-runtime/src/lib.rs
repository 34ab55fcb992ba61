//! # filter-runtime
//!
//! What the canary-router filter runs on in place of `std` and the
//! libraries it replaced, each written for the module's size (every byte
//! of the `.wasm` is compiled by V8 in every sidecar) and each answering to
//! the library it replaced (README.md, "Parity"):
//!
//! - [`json`]: a pull reader of JSON with serde_json's errors and paths;
//! - [`regex`]: a regex engine with regex-lite's syntax and errors;
//! - [`map`]: a sorted `Vec` map, iterated as a `BTreeMap` is.
//!
//! Nothing here knows about routing: limits are parameters, errors are this
//! crate's own. `no_std` (but for its own tests).

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod json;
pub mod map;
pub mod regex;
