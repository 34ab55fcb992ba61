//! Choosing a destination: a weighted random pick, or a sticky pick by a
//! hash of the user's key that never moves a user off a destination whose
//! weight only grew.

use alloc::{boxed::Box, vec::Vec};

/// A small, fast PRNG (wyrand). Seeded from the host's randomness once per
/// VM; never a fixed seed in the filter.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) as u64) ^ (t as u64)
    }
}

/// Hashes a sticky key (FNV-1a, then a finalizer). Stable across VMs,
/// processes and versions of the filter, so every sidecar puts one user on
/// the same destination.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// A 64-bit finalizer (from SplitMix64): spreads every input bit over the output.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weights of a route's destinations, prepared for both kinds of pick.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Running totals of the weights, for the random pick (the last is the
    /// sum).
    cumulative: Box<[u64]>,
    /// Weight and hash seed of each destination, for the sticky pick.
    sticky: Box<[(f64, u64)]>,
}

impl Weights {
    /// Prepares weights; `seeds` identify destinations for the sticky pick
    /// (a hash of the cluster name, so reordering destinations moves no user).
    /// The caller guarantees at least one weight is above zero.
    pub fn new(weights: &[u64], seeds: &[u64]) -> Self {
        // Plain loops: an iterator chain collected is three generic
        // functions of its own in the module.
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(weights.len());
        for w in weights {
            total += *w;
            cumulative.push(total);
        }
        let mut sticky = Vec::with_capacity(weights.len().min(seeds.len()));
        for (w, s) in weights.iter().zip(seeds) {
            sticky.push((*w as f64, *s));
        }
        Weights {
            cumulative: cumulative.into_boxed_slice(),
            sticky: sticky.into_boxed_slice(),
        }
    }

    /// Sum of the weights.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The weight of destination `i` (0 past the last), without an
    /// iterator to instantiate at each caller.
    pub fn weight(&self, i: usize) -> u64 {
        let before = match i.checked_sub(1) {
            Some(p) => self.cumulative.get(p).copied().unwrap_or(0),
            None => 0,
        };
        self.cumulative.get(i).map_or(0, |c| c - before)
    }

    /// Each destination's weight, in order.
    pub fn each(&self) -> impl Iterator<Item = u64> + '_ {
        let mut before = 0;
        self.cumulative.iter().map(move |c| {
            let w = c - before;
            before = *c;
            w
        })
    }

    /// A random pick: destination `i` with probability `w_i / total`.
    #[inline]
    pub fn pick_random(&self, random: u64) -> usize {
        if self.cumulative.len() <= 1 {
            return 0;
        }
        // Multiply-shift maps 64 random bits onto 0..total (bias < total/2^64).
        let r = ((u128::from(random) * u128::from(self.total())) >> 64) as u64;
        self.cumulative.partition_point(|c| *c <= r)
    }

    /// A sticky pick by weighted rendezvous hashing: each destination draws
    /// `-ln(u)/w` from the key's hash, the smallest wins. A destination is
    /// chosen with probability `w_i / total`; raising `w_i` only lowers its own
    /// score, so a key on it never moves away; weight 0 is never chosen.
    #[inline]
    pub fn pick_sticky(&self, key_hash: u64) -> usize {
        self.pick_sticky_except(key_hash, 0)
    }

    /// [`pick_sticky`](Self::pick_sticky) as if the destinations in
    /// `skip` (a bit mask by index) had weight 0: a key whose winner is
    /// skipped goes to its runner-up, and no other key moves.
    #[inline]
    pub fn pick_sticky_except(&self, key_hash: u64, skip: u64) -> usize {
        let mut best = 0;
        let mut best_score = f64::INFINITY;
        for (i, (w, seed)) in self.sticky.iter().enumerate() {
            if *w <= 0.0 || skip & (1u64 << (i % 64)) != 0 {
                continue;
            }
            let h = mix(key_hash ^ *seed);
            // A uniform in (0, 1): 53 random bits, never 0.
            let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
            let score = -libm::log(u) / *w;
            if score < best_score {
                best_score = score;
                best = i;
            }
        }
        best
    }

    /// A random pick as if the destinations in `skip` had weight 0; `None`
    /// when no other destination has weight.
    pub fn pick_random_except(&self, random: u64, skip: u64) -> Option<usize> {
        let weight = |i: usize| {
            let prev = if i == 0 {
                0
            } else {
                self.cumulative.get(i - 1).copied().unwrap_or(0)
            };
            let w = self.cumulative.get(i).copied().unwrap_or(0) - prev;
            if skip & (1u64 << (i % 64)) != 0 {
                0
            } else {
                w
            }
        };
        let total: u64 = (0..self.cumulative.len()).map(weight).sum();
        if total == 0 {
            return None;
        }
        let mut r = ((u128::from(random) * u128::from(total)) >> 64) as u64;
        for i in 0..self.cumulative.len() {
            let w = weight(i);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| hash_key(format!("dest-{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn weight_reads_each_destination() {
        for given in [&[90, 10][..], &[0, 5], &[7], &[0, 1, 0], &[3, 0, 4, 9]] {
            let w = Weights::new(given, &seeds(given.len()));
            let read: Vec<u64> = (0..given.len()).map(|i| w.weight(i)).collect();
            assert_eq!(read, given);
            assert_eq!(read, w.each().collect::<Vec<_>>());
            assert_eq!(w.weight(given.len()), 0);
        }
    }

    #[test]
    fn random_pick_honours_every_boundary() {
        let w = Weights::new(&[90, 10], &seeds(2));
        assert_eq!(w.pick_random(0), 0);
        assert_eq!(w.pick_random(u64::MAX), 1);
        // r = floor(random * 100 / 2^64): the first value giving r = 90 picks v2.
        let boundary = ((90u128 << 64) / 100) as u64 + 1;
        assert_eq!(w.pick_random(boundary - 2), 0);
        assert_eq!(w.pick_random(boundary), 1);
        let zero_first = Weights::new(&[0, 5], &seeds(2));
        assert_eq!(zero_first.pick_random(0), 1, "weight 0 is never picked");
        assert_eq!(zero_first.pick_random(u64::MAX), 1);
        let lone = Weights::new(&[7], &seeds(1));
        assert_eq!(lone.pick_random(12345), 0);
    }

    #[test]
    fn sticky_pick_never_chooses_zero_weight() {
        let w = Weights::new(&[0, 1, 0], &seeds(3));
        for k in 0..10_000u64 {
            assert_eq!(w.pick_sticky(hash_key(&k.to_le_bytes())), 1);
        }
    }

    #[test]
    fn sticky_ramp_is_monotonic() {
        // Raising the canary from 1% to 100% never moves a user off it.
        let s = seeds(2);
        let keys: Vec<u64> = (0..5000u32)
            .map(|k| hash_key(format!("user-{k}").as_bytes()))
            .collect();
        let mut on_canary = vec![false; keys.len()];
        for canary in [1u32, 5, 10, 25, 50, 75, 99, 100] {
            let w = Weights::new(&[100 - canary, canary].map(u64::from), &s);
            for (i, k) in keys.iter().enumerate() {
                let now = w.pick_sticky(*k) == 1;
                assert!(!on_canary[i] || now, "key {i} left the canary at {canary}%");
                on_canary[i] = now;
            }
        }
        assert!(
            on_canary.iter().all(|c| *c),
            "at 100% every key is on the canary"
        );
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // Sticky users must land on the same version after an upgrade of the filter.
        // Golden values, computed independently (FNV-1a 64 then SplitMix64's finalizer).
        assert_eq!(hash_key(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(hash_key(b"user-42"), 0x7a15_96f0_e94b_5793);
        assert_ne!(hash_key(b"user-1"), hash_key(b"user-2"));
    }

    #[test]
    fn skipping_a_destination_moves_only_its_keys() {
        let w = Weights::new(&[50, 30, 20], &seeds(3));
        let mut moved_to = [0u32; 3];
        for k in 0..20_000u32 {
            let h = hash_key(format!("user-{k}").as_bytes());
            let before = w.pick_sticky(h);
            let after = w.pick_sticky_except(h, 0b010);
            assert_ne!(after, 1, "a skipped destination is never chosen");
            if before != 1 {
                assert_eq!(
                    after, before,
                    "key {k} moved although its destination stayed"
                );
            } else {
                moved_to[after] += 1;
            }
        }
        // The skipped one's users spread by the others' weights (50:20).
        let share = f64::from(moved_to[0]) / f64::from(moved_to[0] + moved_to[2]);
        assert!((share - 50.0 / 70.0).abs() < 0.03, "{share}");
    }

    #[test]
    fn random_pick_except_follows_the_remaining_weights() {
        let w = Weights::new(&[50, 30, 20], &seeds(3));
        let mut rng = Rng::new(7);
        let mut n = [0u32; 3];
        for _ in 0..70_000 {
            n[w.pick_random_except(rng.next_u64(), 0b010).unwrap()] += 1;
        }
        assert_eq!(n[1], 0);
        let share = f64::from(n[0]) / 70_000.0;
        assert!((share - 50.0 / 70.0).abs() < 0.01, "{share}");
        assert_eq!(w.pick_random_except(0, 0b111), None);
        assert_eq!(
            Weights::new(&[0, 5], &seeds(2)).pick_random_except(u64::MAX, 0b10),
            None
        );
    }

    #[test]
    fn rng_is_not_constant() {
        let mut r = Rng::new(1);
        let a = r.next_u64();
        let b = r.next_u64();
        assert_ne!(a, b);
        assert_ne!(Rng::new(2).next_u64(), Rng::new(1).next_u64());
    }
}
