//! Gossip de-duplication: the key of a gossip message and a bounded set of keys seen.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::hash::{combine, hash64};

/// The de-dup key of a gossip message: its text plus the origin's port, so two peers on one
/// IP that generate the same text in the same second never collide. A gossip without a port
/// (from the reference implementation) keys on its text alone (port 0, which no node uses).
pub fn gossip_key(text: &str, origin_port: Option<u16>) -> u64 {
    combine(hash64(text.as_bytes()), u64::from(origin_port.unwrap_or(0)))
}

/// A `Hasher` that passes a `u64` through: the keys are already well-mixed hashes, so hashing
/// them again would only cost time on the hot path.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-u64 keys, which this set never holds; stay correct anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Gossip keys seen, bounded: two generations of at most `capacity / 2` keys each. When the
/// current generation fills it becomes the previous one and the oldest is forgotten, so a key
/// is remembered for at least `capacity / 2` further insertions. Lookups are O(1). Never
/// iterated, so its order cannot reach an output.
#[derive(Debug, Default)]
pub struct SeenSet {
    current: KeySet,
    previous: KeySet,
    half: usize,
}

impl SeenSet {
    /// A set remembering about `capacity` keys (at least 1 per generation).
    pub fn new(capacity: usize) -> SeenSet {
        SeenSet {
            current: KeySet::default(),
            previous: KeySet::default(),
            half: (capacity / 2).max(1),
        }
    }

    /// True if `key` was seen (and is still remembered).
    pub fn contains(&self, key: u64) -> bool {
        self.current.contains(&key) || self.previous.contains(&key)
    }

    /// Records `key`; true if it was new.
    pub fn insert(&mut self, key: u64) -> bool {
        if self.contains(key) {
            return false;
        }
        if self.current.len() >= self.half {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key);
        true
    }

    /// Keys remembered now (never more than `2 * (capacity / 2)`).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_other_port_is_another_message() {
        let text = "1767225600:127.0.0.1:1";
        assert_ne!(gossip_key(text, Some(6001)), gossip_key(text, Some(6002)));
        assert_eq!(gossip_key(text, Some(6001)), gossip_key(text, Some(6001)));
        assert_ne!(gossip_key(text, None), gossip_key(text, Some(6001)));
    }

    #[test]
    fn remembers_recent_and_stays_bounded() {
        let mut s = SeenSet::new(100);
        for k in 0..1_000u64 {
            assert!(s.insert(k), "{k} reported seen before insertion");
            assert!(!s.insert(k), "{k} not remembered right after insertion");
            assert!(s.len() <= 100, "len {} after {k}", s.len());
        }
        // The last half-capacity keys are always remembered; the oldest are gone.
        for k in 950..1_000u64 {
            assert!(s.contains(k), "recent {k} forgotten");
        }
        assert!(!s.contains(0));
    }
}
