//! Gossip de-duplication: the key of a gossip message and a bounded set of keys seen.

use crate::hash::mix64;

/// The de-dup key of a gossip message: its text plus the origin's port, so two peers on one
/// IP that generate the same text in the same second never collide. A gossip without a port
/// (from the reference implementation) keys on its text alone (port 0, which no node uses).
pub fn gossip_key(text: &str, origin_port: Option<u16>) -> u64 {
    mix64(text_hash(text.as_bytes()) ^ u64::from(origin_port.unwrap_or(0)))
}

/// A word-at-a-time hash of a gossip text: computed for every delivery, so it reads eight
/// bytes per step where [`crate::hash::hash64`] reads one. Keys never leave the node, so they
/// need not match any other build's.
fn text_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, word: [u8; 8]| {
        (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31)
    };
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = step(h, word);
    }
    let rest = chunks.remainder();
    let mut word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    mix64(step(h, word))
}

/// An open-addressing set of `u64` keys with linear probing, at most 3/4 full. Keys live in
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

/// Slots of the recent-key cache (see [`SeenSet`]): one cache line's worth, kept inside the
/// peer next to the table headers. In the simulator's 1000 × 10 run, 8 slots catch 90 % of
/// repeats and 64 slots 98.6 %, but 64 slots lived in a separate allocation whose line missed
/// the cache on almost every delivery; the extra table lookups of 8 slots cost less.
const RECENT: usize = 8;

/// Gossip keys seen, bounded: two generations of at most `capacity / 2` keys each. When the
/// current generation fills it becomes the previous one and the oldest is forgotten, so a key
/// is remembered for at least `capacity / 2` further insertions. Lookups are O(1). Never
/// iterated, so its order cannot reach an output.
///
/// In front of the generations sits a small direct-mapped cache of recently seen keys. A
/// gossip reaches a peer once per neighbour within a short wave, so most repeats hit the
/// cache, which stays in the CPU cache, instead of the large tables, which do not. A key the
/// cache holds is reported seen even if the generations have just forgotten it: it is only
/// remembered longer, never shorter.
///
/// `repr(C)`, the cache first: see [`crate::Peer`]'s layout.
#[derive(Debug)]
#[repr(C)]
pub struct SeenSet {
    recent: [u64; RECENT],
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
            recent: [EMPTY; RECENT],
        }
    }

    fn recent_slot(key: u64) -> usize {
        // The tables index by the low bits; the cache uses the high ones.
        (KeyTable::stored(key) >> 56) as usize % RECENT
    }

    /// True if `key` was seen (and is still remembered).
    pub fn contains(&self, key: u64) -> bool {
        self.recent[Self::recent_slot(key)] == KeyTable::stored(key)
            || self.current.contains(key)
            || self.previous.contains(key)
    }

    /// Records `key`; true if it was new.
    pub fn insert(&mut self, key: u64) -> bool {
        let slot = Self::recent_slot(key);
        if self.recent[slot] == KeyTable::stored(key) {
            return false;
        }
        self.recent[slot] = KeyTable::stored(key);
        if self.current.contains(key) || self.previous.contains(key) {
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

    /// Keys remembered by the generations (never more than `2 * (capacity / 2)`; the recent
    /// cache adds at most `RECENT` more).
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
    fn texts_that_differ_anywhere_get_different_keys() {
        let mut keys = std::collections::HashSet::new();
        for ts in 0..100u64 {
            for n in 0..1_000u32 {
                let text = format!("{}:10.0.{}.{}:{n}", 1_767_225_600 + ts, n % 7, n % 251);
                assert!(
                    keys.insert(gossip_key(&text, Some(6000))),
                    "collision at {text}"
                );
            }
        }
        // Trailing zero bytes and lengths that are multiples of eight still count.
        assert_ne!(gossip_key("abcdefgh", None), gossip_key("abcdefgh\0", None));
        assert_ne!(gossip_key("", None), gossip_key("\0", None));
    }

    #[test]
    fn remembers_recent_and_stays_bounded() {
        let mut s = SeenSet::new(100);
        let key = |k: u64| crate::hash::mix64(k);
        for k in 0..1_000u64 {
            assert!(s.insert(key(k)), "{k} reported seen before insertion");
            assert!(
                !s.insert(key(k)),
                "{k} not remembered right after insertion"
            );
            assert!(s.len() <= 100, "len {} after {k}", s.len());
        }
        // The last half-capacity keys are always remembered; the oldest are mostly gone
        // (only the recent cache may still hold a few).
        for k in 950..1_000u64 {
            assert!(s.contains(key(k)), "recent {k} forgotten");
        }
        let remembered = (0..1_000u64).filter(|&k| s.contains(key(k))).count();
        assert!(remembered <= 100 + RECENT, "{remembered} keys remembered");
        let old = (0..500u64).filter(|&k| s.contains(key(k))).count();
        assert!(old < 500 / 2, "{old} of the 500 oldest still remembered");
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
