//! The proxy-wasm glue: translates host callbacks into calls of the pure
//! decision code and back. Thin on purpose; everything here is about the
//! host, nothing about routing policy.

mod abi;
mod guard;
mod hostio;
mod http;
mod logger;
mod metrics;
mod node;
mod root;
mod source;
