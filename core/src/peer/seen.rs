//! Gossip de-duplication: the key of a gossip message and a bounded set of keys seen.

use crate::hash::{combine, hash64};

/// The de-dup key of a gossip message: its text plus the origin's port, so two peers on one
/// IP that generate the same text in the same second never collide. A gossip without a port
/// (from the reference implementation) keys on its text alone (port 0, which no node uses).
pub fn gossip_key(text: &str, origin_port: Option<u16>) -> u64 {
    combine(hash64(text.as_bytes()), u64::from(origin_port.unwrap_or(0)))
}

/// An open-addressing set of `u64` keys with linear probing, at most half full. Keys live in
/// the probed slots themselves, so a lookup costs one cache line where a general-purpose hash
/// set costs two (control bytes, then the key): with a thousand peers each remembering tens of
/// thousands of keys, these lookups miss the cache and dominated the simulator's profile.
#[derive(Debug, Default)]
struct KeyTable {
    /// `EMPTY` or a key; the length is zero or a power of two.
    slots: Vec<u64>,
    len: usize,
}

/// The empty slot. A key equal to it is stored as `ZERO_STANDIN` (keys are hashes: folding one
/// value onto another costs a 2⁻⁶⁴ collision, as any other pair of keys does).
const EMPTY: u64 = 0;
const ZERO_STANDIN: u64 = 0x9e37_79b9_7f4a_7c15;

impl KeyTable {
    fn stored(key: u64) -> u64 {
        if key == EMPTY {
            ZERO_STANDIN
        } else {
            key
        }
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: u64) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = (key as usize) & mask;
        loop {
            let s = self.slots[i];
            if s == key || s == EMPTY {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn contains(&self, key: u64) -> bool {
        let key = Self::stored(key);
        self.find(key).is_some_and(|i| self.slots[i] == key)
    }

    /// Inserts a key known to be absent.
    fn insert_new(&mut self, key: u64) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let key = Self::stored(key);
        if let Some(i) = self.find(key) {
            self.slots[i] = key;
            self.len += 1;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        for key in old.into_iter().filter(|&k| k != EMPTY) {
            if let Some(i) = self.find(key) {
                self.slots[i] = key;
            }
        }
    }

    /// Forgets every key, keeping the allocation for the next generation.
    fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }
}

/// Gossip keys seen, bounded: two generations of at most `capacity / 2` keys each. When the
/// current generation fills it becomes the previous one and the oldest is forgotten, so a key
/// is remembered for at least `capacity / 2` further insertions. Lookups are O(1). Never
/// iterated, so its order cannot reach an output.
#[derive(Debug, Default)]
pub struct SeenSet {
    current: KeyTable,
    previous: KeyTable,
    half: usize,
}

impl SeenSet {
    /// A set remembering about `capacity` keys (at least 1 per generation).
    pub fn new(capacity: usize) -> SeenSet {
        SeenSet {
            current: KeyTable::default(),
            previous: KeyTable::default(),
            half: (capacity / 2).max(1),
        }
    }

    /// True if `key` was seen (and is still remembered).
    pub fn contains(&self, key: u64) -> bool {
        self.current.contains(key) || self.previous.contains(key)
    }

    /// Records `key`; true if it was new.
    pub fn insert(&mut self, key: u64) -> bool {
        if self.contains(key) {
            return false;
        }
        if self.current.len >= self.half {
            // The previous generation's table is recycled as the new current one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert_new(key);
        true
    }

    /// Keys remembered now (never more than `2 * (capacity / 2)`).
    pub fn len(&self) -> usize {
        self.current.len + self.previous.len
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

    #[test]
    fn agrees_with_a_hash_set_while_nothing_is_forgotten() {
        let mut s = SeenSet::new(1 << 16);
        let mut model = std::collections::HashSet::new();
        let mut x = 7u64;
        for i in 0..20_000u64 {
            // Many repeats (small range) plus the key that doubles as the empty marker.
            x = crate::hash::mix64(x);
            let key = if i % 97 == 0 { 0 } else { x % 15_000 };
            assert_eq!(s.insert(key), model.insert(key), "key {key} at step {i}");
            assert!(s.contains(key));
        }
        assert_eq!(s.len(), model.len());
    }
}
