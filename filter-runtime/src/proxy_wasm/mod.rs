//! The module's side of proxy-wasm (ABI 0.2.1), in place of the SDK: the
//! host calls it makes ([`hostcalls`], none of which panics), the callbacks
//! it exports and their dispatch to its contexts ([`exports`]), its
//! logger ([`logger`]), and the header-map encoding ([`pairs`]).
//!
//! The host calls and the logger exist on wasm32 only; the dispatch table
//! and the header maps everywhere, so that they are tested natively.

pub mod exports;
#[cfg(target_arch = "wasm32")]
pub mod hostcalls;
#[cfg(target_arch = "wasm32")]
pub mod logger;
pub mod pairs;
