//! # filter-runtime
//!
//! What the canary-router filter runs on in place of `std` and the
//! libraries it replaced, each written for the module's size (every byte
//! of the `.wasm` is compiled by V8 in every sidecar) and each answering to
//! the library it replaced (README.md, "Parity"):
//!
//! - [`json`]: a pull reader of JSON with serde_json's errors and paths;
//! - [`regex`]: a regex engine with regex-lite's syntax and errors;
//! - [`map`]: a sorted `Vec` map, iterated as a `BTreeMap` is;
//! - [`fnv`]: the hasher of the hash maps;
//! - [`proxy_wasm`]: the module's side of the proxy-wasm ABI, in place of
//!   the SDK: host calls, exported callbacks, logger, header maps;
//! - [`heap`]: the module's allocator; [`memcmp`]: the one libc function
//!   the compiled code calls.
//!
//! Nothing here knows about routing: limits are parameters, errors are this
//! crate's own. `no_std` (but for its own tests).

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod fnv;
pub mod heap;
pub mod json;
pub mod map;
pub mod memcmp;
pub mod proxy_wasm;
pub mod regex;
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod single;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub use single::Single;
