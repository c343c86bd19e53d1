//! Gossip de-duplication: the key of a gossip message and a bounded set of keys seen.

use crate::hash::mix64;

/// The de-dup key of a gossip message, and the second its text is stamped with.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct GossipKey {
    /// A hash of the text plus the origin's port, so two peers on one IP that generate the
    /// same text in the same second never collide. A gossip without a port (from the
    /// reference implementation) keys on its text alone (port 0, which no node uses).
    pub hash: u64,
    /// The unix second the text starts with (`<timestamp>:<IP>:<Msg#>`), if it does. It only
    /// chooses where the key is kept (see [`SeenSet`]), never whether two keys are equal.
    pub second: Option<u64>,
}

/// The de-dup key of the gossip with this text and origin port. Inlined: it runs for every
/// gossip delivered.
#[inline(always)]
pub fn gossip_key(text: &str, origin_port: Option<u16>) -> GossipKey {
    let bytes = text.as_bytes();
    GossipKey {
        hash: mix64(text_hash(bytes) ^ u64::from(origin_port.unwrap_or(0))),
        second: stamped_second(bytes),
    }
}

/// The decimal number before a text's first `:`, if that is all digits and fits a `u64`.
#[inline]
fn stamped_second(text: &[u8]) -> Option<u64> {
    // Every stamp from 2001 to 2286 has ten digits: the fast path reads eight at once.
    if let (Some(head), Some(b':')) = (text.get(..10), text.get(10)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&head[..8]);
        let (d8, d9) = (head[8], head[9]);
        if let Some(high) = eight_digits(u64::from_le_bytes(word)) {
            if d8.is_ascii_digit() && d9.is_ascii_digit() {
                return Some(high * 100 + u64::from(d8 - b'0') * 10 + u64::from(d9 - b'0'));
            }
        }
    }
    any_stamped_second(text)
}

/// [`stamped_second`] for stamps of any length: one digit at a time.
#[cold]
fn any_stamped_second(text: &[u8]) -> Option<u64> {
    let mut second = 0u64;
    for (i, &byte) in text.iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                second = second
                    .checked_mul(10)?
                    .checked_add(u64::from(byte - b'0'))?
            }
            b':' if i > 0 => return Some(second),
            _ => return None,
        }
    }
    None
}

/// The value of eight ASCII digits read as a little-endian word (the first digit in the
/// lowest byte), or `None` if any byte is not a digit. SWAR: neighbouring digits are combined
/// into pairs, then fours, then all eight, each step one multiply for every lane at once.
fn eight_digits(word: u64) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // A byte is a digit iff its high nibble is 3 and adding 6 does not carry out of its low
    // nibble (no byte can carry into the next: its high nibble is 3).
    if word & HIGH_NIBBLES != ZEROS
        || word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS
    {
        return None;
    }
    let digits = word - ZEROS;
    let pairs = (digits * 10 + (digits >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some(fours.wrapping_mul(10_000).wrapping_add(fours >> 32) & 0xFFFF_FFFF)
}

/// A word-at-a-time hash of a gossip text, not yet finalised (the caller mixes in the port,
/// then finalises once): computed for every delivery, so it reads eight bytes per step where
/// [`crate::hash::hash64`] reads one. Keys never leave the node, so they need not match any
/// other build's.
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
    let rest = chunks.remainder().len();
    let mut word = [0u8; 8];
    if rest > 0 && bytes.len() >= 8 {
        // The last eight bytes, overlapping the previous word: a fixed-size read instead of a
        // copy of `rest` bytes. The length is in the hash, so this stays a function of the text.
        word.copy_from_slice(&bytes[bytes.len() - 8..]);
    } else {
        word[..rest].copy_from_slice(chunks.remainder());
    }
    step(h, word)
}

/// An open-addressing set of `u64` keys with linear probing, at most 3/4 full. Keys live in
/// the probed slots themselves, so a lookup costs one cache line where a general-purpose hash
/// set costs two (control bytes, then the key).
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

/// `key` as the tables store it.
fn stored(key: u64) -> u64 {
    if key == EMPTY {
        ZERO_STANDIN
    } else {
        key
    }
}

impl KeyTable {
    /// The slot holding `key` (a stored key), or the empty slot where it would go.
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
        self.find(key).is_some_and(|i| self.slots[i] == key)
    }

    /// Inserts a stored key known to be absent.
    #[inline]
    fn insert_new(&mut self, key: u64) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
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

    /// Forgets every key, keeping the allocation for the next use.
    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(EMPTY);
            self.len = 0;
        }
    }
}

/// Keys in two generations of at most `half` keys each: when the current one fills, it
/// becomes the previous one and the oldest is forgotten, so a key is remembered for at least
/// `half` further insertions.
#[derive(Debug)]
struct Generations {
    current: KeyTable,
    previous: KeyTable,
    half: usize,
}

impl Generations {
    fn contains(&self, key: u64) -> bool {
        self.current.contains(key) || self.previous.contains(key)
    }

    /// Inserts a stored key known to be absent.
    fn insert_new(&mut self, key: u64) {
        if self.current.len >= self.half {
            // The previous generation's table is recycled as the new current one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert_new(key);
    }

    fn len(&self) -> usize {
        self.current.len + self.previous.len
    }
}

/// Seconds of gossip timestamps that have a table each.
const SECONDS: usize = 32;

/// How far past the peer's own clock a gossip's stamp may be and still take over a table: a
/// stamp further ahead is a lie or a badly skewed clock, and must not evict current keys.
pub const AHEAD_SECS: u64 = 8;

/// How far behind the peer's clock a stamp may be and the set still know for sure whether it
/// saw that gossip ([`SeenSet::check`]). A table is taken over only by a stamp at most
/// [`AHEAD_SECS`] past the clock, so the second it held, [`SECONDS`] earlier, is at most
/// `SECONDS − AHEAD_SECS` behind: every later second still has its own table.
pub const COVERED_SECS: u64 = SECONDS as u64 - AHEAD_SECS - 1;

/// What the set knows about one gossip key ([`SeenSet::check`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Seen (and still remembered).
    Seen,
    /// Surely never seen: the key's second has its table, the table never gave keys of that
    /// second to the general generations, and the key is not in it.
    New,
    /// The set cannot tell: no stamp, a stamp outside the covered window, or a second whose
    /// keys may have gone to the general generations, which forget by count.
    Unsure,
}

/// The keys of gossips stamped with one second: one cache line, which a lookup reads before
/// the key's own line.
#[derive(Debug, Default)]
#[repr(C, align(64))]
struct SecondTable {
    /// The second whose keys `keys` holds.
    second: u64,
    /// One past the latest second ≡ this table's index (mod [`SECONDS`]) that has keys in the
    /// general generations instead (the table was full, or the stamp too far ahead): a lookup
    /// for such a second must look there too. Zero when there are none.
    spilled_below: u64,
    /// The most keys `keys` may hold: the set's capacity shared among the seconds.
    limit: usize,
    keys: KeyTable,
}

/// Slots of the recent-key cache (see [`SeenSet`]): with the pointer to the per-second
/// tables, one cache line. A few slots catch most repeats (a gossip reaches a peer once per
/// neighbour within a short wave); more would not fit the line, and a line of its own would
/// miss the cache on most deliveries.
const RECENT: usize = 7;

/// Gossip keys seen, bounded by `capacity`. Lookups are O(1). Never iterated, so its order
/// cannot reach an output.
///
/// A key is kept by the second its gossip is stamped with: one small table per second, for
/// the last [`SECONDS`] seconds stamped, holding up to `capacity / (2 · SECONDS)` keys each.
/// A gossip reaches every peer within a few seconds of being made, so the keys a peer looks
/// up at any moment sit in one or two small tables, which fit the CPU's last-level cache even
/// across thousands of peers; one table for all of a peer's keys would make every first
/// receipt a miss to main memory. A table is taken over by the first gossip stamped
/// [`SECONDS`] later (never by one stamped more than [`AHEAD_SECS`] past the peer's clock,
/// so a lying stamp cannot evict current keys); its keys then move to the general
/// generations.
///
/// Everything else goes to two general generations of `capacity / 4` keys each: gossips with
/// no stamp, one older than its table's second or too far ahead, keys beyond a second's
/// share, and the keys of a table taken over. A gossip is therefore remembered while its
/// table holds its second and then for at least `capacity / 4` further keys.
///
/// In front of all of it sits a small direct-mapped cache of recently seen keys. A gossip
/// reaches a peer once per neighbour within a short wave, so most repeats hit the cache. A key
/// the cache holds is reported seen even if the tables have just forgotten it: it is only
/// remembered longer, never shorter.
#[derive(Debug)]
pub struct SeenSet {
    recent: [u64; RECENT],
    /// The per-second tables, indexed by second mod [`SECONDS`]; allocated with the first
    /// stamped key, so peers that never gossip pay nothing.
    by_second: Option<Box<[SecondTable; SECONDS]>>,
    per_second: usize,
    general: Generations,
}

/// The per-second tables, each for at most `limit` keys. Out of line: it runs once per peer.
#[cold]
fn second_tables(limit: usize) -> Box<[SecondTable; SECONDS]> {
    Box::new(std::array::from_fn(|_| SecondTable {
        limit,
        ..SecondTable::default()
    }))
}

impl SeenSet {
    /// A set remembering at most `capacity` keys (plus the recent cache); at least one per
    /// table.
    pub fn new(capacity: usize) -> SeenSet {
        SeenSet {
            recent: [EMPTY; RECENT],
            by_second: None,
            per_second: (capacity / (2 * SECONDS)).max(1),
            general: Generations {
                current: KeyTable::default(),
                previous: KeyTable::default(),
                half: (capacity / 4).max(1),
            },
        }
    }

    fn recent_slot(key: u64) -> usize {
        // The tables index by the low bits; the cache uses the high byte, scaled onto the
        // slots by a multiply (a remainder by 7 would cost a division's worth).
        ((key >> 56) as usize * RECENT) >> 8
    }

    /// True if `key` was seen (and is still remembered).
    pub fn contains(&self, key: GossipKey) -> bool {
        let hash = stored(key.hash);
        self.recent[Self::recent_slot(hash)] == hash || self.remembers(hash, key.second)
    }

    /// Whether `key` was seen, answered only where the answer is sure: a gossip that comes
    /// back by repair is delivered only if [`Coverage::New`], so it is never delivered twice.
    /// Sure means stamped within `[now_secs − COVERED_SECS, now_secs + AHEAD_SECS]`, in a
    /// second whose table holds that second (or an older one, about to be taken over) and
    /// never spilled keys of it into the general generations.
    pub fn check(&self, key: GossipKey, now_secs: u64) -> Coverage {
        let Some(s) = key.second else {
            return Coverage::Unsure;
        };
        if s > now_secs.saturating_add(AHEAD_SECS) || s.saturating_add(COVERED_SECS) < now_secs {
            return Coverage::Unsure;
        }
        if self.contains(key) {
            return Coverage::Seen;
        }
        match self.by_second.as_deref() {
            None => Coverage::New,
            Some(tables) => {
                let t = &tables[s as usize % SECONDS];
                if t.second > s || t.spilled_below > s {
                    Coverage::Unsure
                } else {
                    Coverage::New
                }
            }
        }
    }

    /// Records `key`, seen at `now_secs` (unix seconds by the peer's clock); true if it was new.
    pub fn insert(&mut self, key: GossipKey, now_secs: u64) -> bool {
        let hash = stored(key.hash);
        let slot = Self::recent_slot(hash);
        if self.recent[slot] == hash {
            return false;
        }
        self.recent[slot] = hash;
        if let Some(second) = key.second {
            let tables = self
                .by_second
                .get_or_insert_with(|| second_tables(self.per_second));
            let t = &mut tables[second as usize % SECONDS];
            if second > t.second && second <= now_secs.saturating_add(AHEAD_SECS) {
                // Take the table over. Its keys, SECONDS or more seconds older, move to the
                // general generations: a late copy of one of those gossips is still known
                // there (for at least `capacity / 4` further keys), not delivered again.
                t.second = second;
                for &old in t.keys.slots.iter().filter(|&&k| k != EMPTY) {
                    self.general.insert_new(old);
                }
                t.keys.clear();
            }
        }
        if self.remembers(hash, key.second) {
            return false;
        }
        self.remember(hash, key.second);
        true
    }

    /// The table holding the keys stamped `second`, whatever second it holds now.
    fn table_mut(&mut self, second: u64) -> Option<&mut SecondTable> {
        Some(&mut self.by_second.as_deref_mut()?[second as usize % SECONDS])
    }

    /// True if the tables (not the recent cache) hold the stored key `hash`.
    fn remembers(&self, hash: u64, second: Option<u64>) -> bool {
        let table = second
            .zip(self.by_second.as_deref())
            .map(|(s, tables)| (s, &tables[s as usize % SECONDS]));
        match table {
            Some((s, t)) if t.second == s => {
                t.keys.contains(hash) || (s < t.spilled_below && self.general.contains(hash))
            }
            _ => self.general.contains(hash),
        }
    }

    /// Stores `hash`, known absent: in its second's table if that holds its second and has
    /// room, else in the general generations, marking the table so lookups look there too
    /// (unless the key is older than the table, whose second then never comes back).
    fn remember(&mut self, hash: u64, second: Option<u64>) {
        if let Some((s, t)) = second.and_then(|s| Some((s, self.table_mut(s)?))) {
            if t.second == s && t.keys.len < t.limit {
                t.keys.insert_new(hash);
                return;
            }
            if s >= t.second {
                t.spilled_below = t.spilled_below.max(s.saturating_add(1));
            }
        }
        self.general.insert_new(hash);
    }

    /// Keys remembered by the tables (never more than `capacity`; the recent cache adds at
    /// most `RECENT` more).
    pub fn len(&self) -> usize {
        let by_second = self
            .by_second
            .as_deref()
            .map_or(0, |tables| tables.iter().map(|t| t.keys.len).sum::<usize>());
        self.general.len() + by_second
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unstamped key (kept in the general generations).
    fn plain(k: u64) -> GossipKey {
        GossipKey {
            hash: mix64(k),
            second: None,
        }
    }

    fn stamped(k: u64, second: u64) -> GossipKey {
        GossipKey {
            hash: mix64(k),
            second: Some(second),
        }
    }

    /// Empties the recent cache, so lookups reach the tables.
    fn flush_recent(s: &mut SeenSet) {
        s.recent = [EMPTY; RECENT];
    }

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
                    keys.insert(gossip_key(&text, Some(6000)).hash),
                    "collision at {text}"
                );
            }
        }
        // Trailing zero bytes and lengths that are multiples of eight still count.
        assert_ne!(gossip_key("abcdefgh", None), gossip_key("abcdefgh\0", None));
        assert_ne!(gossip_key("", None), gossip_key("\0", None));
    }

    #[test]
    fn the_stamp_is_the_leading_number_before_a_colon() {
        let second = |text: &str| gossip_key(text, None).second;
        assert_eq!(second("1767225600:127.0.0.1:1"), Some(1_767_225_600));
        assert_eq!(second("0:x"), Some(0));
        assert_eq!(second("18446744073709551615:x"), Some(u64::MAX));
        for text in [
            "",
            ":1:2",
            "1767225600",
            "17672256.5:x",
            "-1:x",
            " 1:x",
            "18446744073709551616:x",
            "Dead Node:1:2",
        ] {
            assert_eq!(second(text), None, "{text:?}");
        }
    }

    /// The ten-digit fast path against a plain parse, over digits with every byte near
    /// them (`/`, `:`, `;` … `?`, `@`, high bytes) swapped in anywhere.
    #[test]
    fn the_fast_stamp_parse_agrees_with_a_plain_one() {
        let plain_parse = |text: &[u8]| -> Option<u64> {
            let end = text.iter().position(|&b| b == b':').filter(|&i| i > 0)?;
            std::str::from_utf8(&text[..end])
                .ok()?
                .parse::<u64>()
                .ok()
                .filter(|_| text[..end].iter().all(u8::is_ascii_digit))
        };
        let mut x = 11u64;
        for _ in 0..200_000 {
            x = mix64(x);
            let mut text = format!("{:010}:10.0.0.1:7", x % 10_000_000_000).into_bytes();
            if x & 1 == 0 {
                let at = (x >> 8) as usize % 11;
                text[at] =
                    [b'/', b':', b';', b'?', b'@', b'0' + 10, 0xB0, b' '][(x >> 16) as usize % 8];
            }
            assert_eq!(
                stamped_second(&text),
                plain_parse(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"12345678")),
            Some(12_345_678)
        );
        assert_eq!(
            eight_digits(u64::from_le_bytes(*b"99999999")),
            Some(99_999_999)
        );
        assert_eq!(eight_digits(u64::from_le_bytes(*b"1234567:")), None);
    }

    #[test]
    fn remembers_recent_and_stays_bounded() {
        let mut s = SeenSet::new(100);
        for k in 0..1_000u64 {
            assert!(s.insert(plain(k), 0), "{k} reported seen before insertion");
            assert!(
                !s.insert(plain(k), 0),
                "{k} not remembered right after insertion"
            );
            assert!(s.len() <= 100, "len {} after {k}", s.len());
        }
        // The last capacity/4 keys are always remembered; the oldest are mostly gone (only
        // the recent cache may still hold a few).
        for k in 975..1_000u64 {
            assert!(s.contains(plain(k)), "recent {k} forgotten");
        }
        let remembered = (0..1_000u64).filter(|&k| s.contains(plain(k))).count();
        assert!(remembered <= 50 + RECENT, "{remembered} keys remembered");
        let old = (0..500u64).filter(|&k| s.contains(plain(k))).count();
        assert!(old < 500 / 2, "{old} of the 500 oldest still remembered");
    }

    #[test]
    fn a_flood_of_one_stamp_stays_bounded_and_remembers_its_latest() {
        let mut s = SeenSet::new(640);
        for k in 0..10_000u64 {
            assert!(s.insert(stamped(k, 1_000), 1_000), "{k} seen before");
            assert!(s.len() <= 640, "len {} after {k}", s.len());
        }
        // The second's share (640 / 64) and the last capacity/4 keys of the overflow.
        flush_recent(&mut s);
        for k in (0..10).chain(9_850..10_000) {
            assert!(s.contains(stamped(k, 1_000)), "{k} forgotten");
            assert!(!s.insert(stamped(k, 1_000), 1_000), "{k} taken for new");
        }
    }

    #[test]
    fn a_table_taken_over_hands_its_keys_to_the_generations() {
        let now = 1_767_225_600;
        let mut s = SeenSet::new(1 << 10);
        assert!(s.insert(stamped(1, now), now));
        // A stamp SECONDS ahead of the clock is too far ahead to take the table over...
        let ahead = now + SECONDS as u64;
        assert!(s.insert(stamped(2, ahead), now));
        flush_recent(&mut s);
        assert!(
            s.contains(stamped(1, now)),
            "a lying stamp evicted a current key"
        );
        assert!(s.contains(stamped(2, ahead)));
        // ...but once the clock has caught up, it does; the early key is still found.
        assert!(s.insert(stamped(3, ahead), ahead));
        flush_recent(&mut s);
        assert!(
            s.contains(stamped(2, ahead)),
            "a key stamped ahead was lost"
        );
        assert!(!s.insert(stamped(2, ahead), ahead));
        assert!(s.contains(stamped(3, ahead)));
        // The old second's keys moved to the generations: a replay of it is no news.
        assert!(
            !s.insert(stamped(1, now), ahead),
            "a key of the taken-over second was delivered again"
        );
        // A gossip older than its table's second is still de-duplicated (in the generations).
        assert!(s.insert(stamped(4, now), ahead));
        flush_recent(&mut s);
        assert!(!s.insert(stamped(4, now), ahead));
    }

    /// Stamps spread over one table span, some ahead of the clock, some missing; a small
    /// per-second share, so full tables spill: the set must answer as a `HashSet` would.
    #[test]
    fn agrees_with_a_hash_set_while_nothing_is_forgotten() {
        let start = 1_000u64;
        let mut s = SeenSet::new(1 << 16);
        let mut model = std::collections::HashSet::new();
        let mut x = 7u64;
        for i in 0..40_000u64 {
            // Many repeats (small range), the key that doubles as the empty marker, and
            // stamps anywhere in the span while the clock crosses it.
            x = mix64(x);
            let k = if i % 97 == 0 { 0 } else { x % 15_000 };
            let key = GossipKey {
                hash: k,
                second: (k % 10 != 0).then_some(start + k % SECONDS as u64),
            };
            let now = start + i * SECONDS as u64 / 40_000;
            assert_eq!(
                s.insert(key, now),
                model.insert(key),
                "key {key:?} at step {i}"
            );
            assert!(s.contains(key));
        }
        assert_eq!(s.len(), model.len());
    }
}
