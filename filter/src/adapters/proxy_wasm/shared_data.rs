//! Envoy's shared data as the domain's [`SharedStore`], for the rule-source
//! poller and the guards: a key never written is `None`, a lost
//! compare-and-swap is [`CasMismatch`], any other host status an error.

use alloc::{string::String, string::ToString, vec::Vec};

use filter_runtime::proxy_wasm::hostcalls::{self, Status};

use crate::domain::shared::{CasMismatch, SharedStore};

/// Envoy's shared data, through host calls.
pub struct SharedData;

impl SharedStore for SharedData {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        match hostcalls::shared_data(key) {
            Ok((bytes, cas)) => Ok(Some((bytes.as_slice().to_vec(), cas))),
            Err(Status::NOT_FOUND) => Ok(None),
            Err(s) => Err(s.to_string()),
        }
    }

    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<Result<(), CasMismatch>, String> {
        match hostcalls::set_shared_data(key, value, cas) {
            Ok(()) => Ok(Ok(())),
            Err(Status::CAS_MISMATCH) => Ok(Err(CasMismatch)),
            Err(s) => Err(s.to_string()),
        }
    }
}
