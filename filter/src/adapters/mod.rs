//! The hosts the domain runs in. Each adapter only translates: the host's
//! request into a [`crate::RequestView`], the decision back into host
//! calls, counts into stats.

pub mod proxy_wasm;
