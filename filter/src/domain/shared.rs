//! Envoy's shared data as the poller and the guards use it: one value per
//! key across the VMs of an Envoy, written with a compare-and-swap token.

use alloc::{string::String, vec::Vec};

/// A shared-data write that lost a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasMismatch;

/// Envoy's shared data, or a stand-in for it in tests.
pub trait SharedStore {
    /// A value and its CAS token; `Ok(None)` when the key does not exist.
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String>;
    /// Writes if the CAS token is still `cas` (0: always).
    fn set(&mut self, key: &str, value: &[u8], cas: u32)
        -> Result<Result<(), CasMismatch>, String>;
}
