//! Shared data: the key-value store that Envoy shares between all VMs with the same `vm_id`
//! (one VM per worker thread), with its compare-and-swap rules.

use super::Status;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A shared-data store. Clone it into the [`VmOptions`](super::VmOptions) of several VMs to
/// make them share it, as Envoy's worker threads do. A fresh store per test keeps tests
/// independent.
///
/// The semantics are Envoy's (proxy-wasm-cpp-host `SharedData`):
/// - every successful write gives the entry a new CAS token (a process-wide counter of this
///   store, never 0);
/// - a write with `cas == 0` is unconditional; a write with another `cas` to an existing key
///   fails with [`Status::CasMismatch`] unless it equals the entry's token; a write with a
///   `cas` to a missing key succeeds;
/// - reading a missing key is [`Status::NotFound`];
/// - keys live in a namespace per `vm_id`.
#[derive(Clone, Default)]
pub struct SharedData {
    inner: Arc<Mutex<Store>>,
}

/// Key -> (value, CAS token), in one `vm_id` namespace.
type Namespace = HashMap<Vec<u8>, (Vec<u8>, u32)>;

#[derive(Default)]
struct Store {
    by_vm: HashMap<String, Namespace>,
    last_cas: u32,
}

impl Store {
    fn next_cas(&mut self) -> u32 {
        self.last_cas = self.last_cas.wrapping_add(1);
        if self.last_cas == 0 {
            self.last_cas = 1;
        }
        self.last_cas
    }
}

impl std::fmt::Debug for SharedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = self.lock();
        f.debug_struct("SharedData")
            .field("vm_ids", &store.by_vm.keys().collect::<Vec<_>>())
            .field("last_cas", &store.last_cas)
            .finish()
    }
}

impl SharedData {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Value and CAS token of `key` for VMs with the default (empty) `vm_id`.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.get_in("", key)
    }

    /// Value and CAS token of `key` in the namespace of `vm_id`.
    pub fn get_in(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.get_raw(vm_id, key.as_bytes()).ok()
    }

    /// Stores `value` unconditionally (default `vm_id`) and returns its new CAS token, as if
    /// another VM had written it.
    pub fn set(&self, key: &str, value: &[u8]) -> u32 {
        let mut store = self.lock();
        let cas = store.next_cas();
        store
            .by_vm
            .entry(String::new())
            .or_default()
            .insert(key.as_bytes().to_vec(), (value.to_vec(), cas));
        cas
    }

    /// A write with Envoy's CAS rules, in the namespace of `vm_id`.
    pub fn set_in(&self, vm_id: &str, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        self.set_raw(vm_id, key.as_bytes(), value, cas)
    }

    /// The keys of `vm_id`'s namespace, sorted.
    pub fn keys(&self, vm_id: &str) -> Vec<String> {
        let store = self.lock();
        let mut keys: Vec<String> = store
            .by_vm
            .get(vm_id)
            .map(|map| {
                map.keys()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys
    }

    pub(crate) fn get_raw(&self, vm_id: &str, key: &[u8]) -> Result<(Vec<u8>, u32), Status> {
        let store = self.lock();
        store
            .by_vm
            .get(vm_id)
            .and_then(|map| map.get(key))
            .cloned()
            .ok_or(Status::NotFound)
    }

    pub(crate) fn set_raw(
        &self,
        vm_id: &str,
        key: &[u8],
        value: &[u8],
        cas: u32,
    ) -> Result<(), Status> {
        let mut store = self.lock();
        if let Some((_, current)) = store.by_vm.get(vm_id).and_then(|map| map.get(key)) {
            if cas != 0 && cas != *current {
                return Err(Status::CasMismatch);
            }
        }
        let next = store.next_cas();
        let map = store.by_vm.entry(vm_id.to_string()).or_default();
        match map.get_mut(key) {
            Some(entry) => *entry = (value.to_vec(), next),
            None => {
                map.insert(key.to_vec(), (value.to_vec(), next));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rules_match_envoy() {
        let store = SharedData::new();
        assert_eq!(store.get_raw("", b"k"), Err(Status::NotFound));
        // A write with a CAS to a missing key succeeds.
        assert_eq!(store.set_raw("", b"k", b"a", 42), Ok(()));
        let (value, cas) = store.get_raw("", b"k").unwrap();
        assert_eq!((value.as_slice(), cas), (&b"a"[..], 1));
        assert_eq!(store.set_raw("", b"k", b"b", 7), Err(Status::CasMismatch));
        assert_eq!(store.set_raw("", b"k", b"b", cas), Ok(()));
        assert_eq!(store.set_raw("", b"k", b"c", cas), Err(Status::CasMismatch));
        assert_eq!(store.set_raw("", b"k", b"c", 0), Ok(()));
        assert_eq!(store.get("k"), Some((b"c".to_vec(), 3)));
        // Namespaces per vm_id.
        assert_eq!(store.get_in("other", "k"), None);
        assert_eq!(store.set("j", b"x"), 4);
        assert_eq!(store.keys(""), ["j", "k"]);
    }
}
