//! Hashing without random state.
//!
//! * [`hash64`], [`mix64`], [`combine`]: a small, stable 64-bit hash, the same on every
//!   machine, build and run, because seeds compare digests with each other and the
//!   simulator's trace hash must replay.
//! * [`FxHasher`] (with [`FxHashMap`], [`FxHashSet`]): a fast hasher for in-memory lookups
//!   of keys that no stranger chooses.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over `bytes`, finished with a SplitMix64 avalanche so every bit of the result
/// depends on every input bit.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// SplitMix64's finaliser: a bijective scramble of one word.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Combines `h` with one more word (order-dependent).
#[inline]
pub fn combine(h: u64, word: u64) -> u64 {
    mix64(
        h ^ word
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2),
    )
}

/// FxHash (the hasher of rustc and Firefox): one rotate, xor and multiply per word. Fast and
/// deterministic (no random state), but weak: keys an adversary chooses can all collide, so
/// it is for keys the program makes itself (indices, endpoints of local nodes, ids of
/// things already checked), not for what arrives from the network.
///
/// For lookups only: a map or set built on it must never be iterated on the way to an
/// output (its order is not part of any promise; use a `BTreeMap`, `BTreeSet` or `Vec`
/// there).
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn write_u16(&mut self, word: u16) {
        self.write_u64(u64::from(word));
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn write_isize(&mut self, word: isize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FxHasher`]s, for `HashMap::with_hasher` and friends.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// A `HashMap` on [`FxHasher`]: for lookups, never iterated on the way to an output.
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// A `HashSet` on [`FxHasher`]: for lookups, never iterated on the way to an output.
pub type FxHashSet<K> = HashSet<K, FxBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_stable() {
        // Pinned: seeds on different builds compare these.
        assert_eq!(hash64(b""), mix64(0xcbf2_9ce4_8422_2325));
        assert_ne!(hash64(b"a"), hash64(b"b"));
        assert_ne!(combine(1, 2), combine(2, 1));
    }

    #[test]
    fn fx_reads_every_integer_as_one_word() {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let one = |f: &dyn Fn(&mut FxHasher)| {
            let mut h = FxHasher::default();
            f(&mut h);
            h.finish()
        };
        assert_eq!(one(&|h| h.write_u64(1)), K);
        assert_eq!(one(&|h| h.write_u64(3)), 3u64.wrapping_mul(K));
        for v in [0u64, 1, 0xff, 0x1234, 0xdead_beef] {
            let want = one(&|h| h.write_u64(v));
            assert_eq!(one(&|h| h.write(&v.to_le_bytes())), want);
            assert_eq!(one(&|h| h.write_usize(v as usize)), want);
            if let Ok(w) = u32::try_from(v) {
                assert_eq!(one(&|h| h.write_u32(w)), want);
            }
            if let Ok(w) = u16::try_from(v) {
                assert_eq!(one(&|h| h.write_u16(w)), want);
            }
        }
        // Bytes go in as little-endian words, the last one zero-padded.
        let two_words = one(&|h| {
            h.write_u64(u64::from_le_bytes(*b"abcdefgh"));
            h.write_u64(u64::from(b'i'));
        });
        assert_eq!(one(&|h| h.write(b"abcdefghi")), two_words);
    }
}
