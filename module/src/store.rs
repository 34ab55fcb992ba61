//! What proxy-wasm's shared data is to the wasm filter: one value per key
//! for the whole Envoy process, written with a compare-and-swap token. The
//! module runs in Envoy's own process, so this is a map behind a mutex.
//!
//! The rule-source poller ([`canary_router::domain::poll`]) keeps its lease, the
//! last good rule file and the last logged failure here, as it does in
//! shared data: configurations that replace each other (an ECDS push, a
//! listener update) find the rules an earlier one fetched, and at most one
//! of them fetches per poll interval.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use canary_router::domain::shared::{CasMismatch, SharedStore};

#[derive(Default)]
struct Map {
    values: HashMap<String, (Vec<u8>, u32)>,
    /// The last CAS token handed out (0 is never one).
    last_cas: u32,
}

static STORE: LazyLock<Mutex<Map>> = LazyLock::new(Mutex::default);

fn map() -> MutexGuard<'static, Map> {
    // A panic while holding the lock cannot leave a half-written entry
    // (each write is one insert): the map is still good.
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process-wide store, as a [`SharedStore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Shared;

impl SharedStore for Shared {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(map().values.get(key).cloned())
    }

    /// Envoy's rules for shared data: a CAS of 0 always writes; otherwise
    /// an existing key is written only if its token is still `cas`.
    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<Result<(), CasMismatch>, String> {
        let mut map = map();
        if let Some((_, current)) = map.values.get(key) {
            if cas != 0 && cas != *current {
                return Ok(Err(CasMismatch));
            }
        }
        map.last_cas = map.last_cas.checked_add(1).unwrap_or(1);
        let token = map.last_cas;
        map.values.insert(key.to_owned(), (value.to_vec(), token));
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_with_a_stale_token_lose_and_a_zero_token_always_writes() {
        let mut s = Shared;
        let key = "test/store/cas";
        assert_eq!(s.get(key).unwrap(), None);
        assert_eq!(s.set(key, b"a", 0).unwrap(), Ok(()));
        let (v, cas) = s.get(key).unwrap().unwrap();
        assert_eq!(v, b"a");
        assert_eq!(s.set(key, b"b", cas).unwrap(), Ok(()));
        // The token `cas` is stale now.
        assert_eq!(s.set(key, b"c", cas).unwrap(), Err(CasMismatch));
        assert_eq!(s.get(key).unwrap().unwrap().0, b"b");
        assert_eq!(s.set(key, b"d", 0).unwrap(), Ok(()));
        assert_eq!(s.get(key).unwrap().unwrap().0, b"d");
    }

    #[test]
    fn two_threads_claiming_with_the_same_token_one_wins() {
        let key = "test/store/race";
        Shared.set(key, b"free", 0).unwrap().unwrap();
        let (_, cas) = Shared.get(key).unwrap().unwrap();
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    s.spawn(move || {
                        Shared
                            .set(key, format!("{i}").as_bytes(), cas)
                            .unwrap()
                            .is_ok()
                    })
                })
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
    }
}
