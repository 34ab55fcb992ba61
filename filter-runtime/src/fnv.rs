//! FNV-1a, the hasher of the filter's hash maps: small and fast on short
//! keys, and without a per-process seed, which a module without std has no
//! source for at start (std's `RandomState` asks the OS).
//!
//! Unseeded hashing is fine where the keys come from the operator (host
//! names, rule values, context ids), not from a client who could choose
//! colliding ones.

use core::hash::{BuildHasherDefault, Hasher};

/// The FNV-1a state of the bytes written so far.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// What a hash map takes to hash with [`Fnv`].
pub type FnvBuild = BuildHasherDefault<Fnv>;

#[cfg(test)]
mod tests {
    use super::Fnv;
    use core::hash::Hasher;

    /// FNV-1a's published 64-bit test vectors.
    #[test]
    fn the_published_vectors() {
        for (input, want) in [
            (&b"a"[..], 0xaf63_dc4c_8601_ec8cu64),
            (b"foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut h = Fnv::default();
            h.write(input);
            assert_eq!(h.finish(), want, "{input:?}");
        }
    }
}
