//! The gossip a peer keeps to repair its neighbours: the bodies of the stamped gossips it
//! made or received within the retention window, by stamp second, with a running count and
//! XOR of keys per second (the digest the repair compares).
//!
//! The retention window and the seen set are one decision. A gossip comes back by repair
//! only inside [`RETAIN_SECS`] of its stamp, and a peer takes a repaired copy only while its
//! seen set knows for sure whether it saw it (`SeenSet::check`, [`COVERED_SECS`] behind the
//! clock): so the window is shorter than what the seen set covers, with room for clocks that
//! disagree by a few seconds and for a copy in flight. A copy outside is refused, never
//! delivered twice.
//!
//! Bounded by count ([`MAX_RETAINED`]) and bytes ([`MAX_RETAINED_BYTES`]): over either, the
//! oldest seconds are given up whole, and the digest starts after them (a neighbour compares
//! only the seconds both hold), so a full store costs no repeated exchanges.

use std::sync::Arc;

use crate::msg::{GossipBody, IdGroup, MAX_IDS};
use crate::peer::seen::{GossipKey, AHEAD_SECS, COVERED_SECS};

/// Seconds (of stamp) a gossip is kept and offered to neighbours after it was made.
pub const RETAIN_SECS: u64 = 20;

/// The newest seconds left out of a digest: gossip that recent may still be on its way by
/// the ordinary push, and pulling it would only make duplicates.
pub const MARGIN_SECS: u64 = 2;

/// Most gossip bodies kept: room for 1,600 messages a second over the whole window, so a
/// cluster carrying application messages at that rate can still repair every one.
pub const MAX_RETAINED: usize = 32_768;

/// Most bytes of gossip kept, counted as text length (payload included) plus
/// [`BODY_OVERHEAD`] per body: 1,000 messages of 1 KiB a second over the whole window. The
/// store grows with what it holds; this only bounds it.
pub const MAX_RETAINED_BYTES: usize = 32 << 20;

/// What one body costs beyond its text (the body, its reference count, its slot).
pub const BODY_OVERHEAD: usize = 96;

/// Slots of the ring of seconds: every second a body may be kept for (the window, up to
/// [`AHEAD_SECS`] ahead of the clock) has its own.
const SLOTS: usize = 32;

// The window the store keeps (and a stamp up to AHEAD_SECS ahead) must fit the ring, and a
// repaired copy must reach its receiver while that receiver's seen set still covers it: two
// seconds of room for clocks that disagree and copies in flight.
const _: () = assert!(RETAIN_SECS + AHEAD_SECS < SLOTS as u64);
const _: () = assert!(RETAIN_SECS + 2 < COVERED_SECS);
const _: () = assert!(MARGIN_SECS < RETAIN_SECS);

/// The bodies of one stamp second.
#[derive(Debug, Default)]
struct Bucket {
    /// The second held; the bucket is empty if it is not the one a lookup wants.
    second: u64,
    entries: Vec<(u64, Arc<GossipBody>)>,
    /// XOR of the keys of `entries`.
    xor: u64,
    bytes: usize,
}

impl Bucket {
    fn clear(&mut self) -> (usize, usize) {
        let freed = (self.entries.len(), self.bytes);
        self.entries = Vec::new();
        self.xor = 0;
        self.bytes = 0;
        freed
    }
}

/// A digest: bucket `i` is second `first + i`, with its count and XOR of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub first: u64,
    pub counts: Vec<u32>,
    pub hashes: Vec<u64>,
}

/// The retained gossip of one peer.
#[derive(Debug)]
pub struct Retained {
    /// Indexed by second mod [`SLOTS`]; allocated with the first body kept.
    buckets: Vec<Bucket>,
    count: usize,
    bytes: usize,
    /// Seconds below this are neither kept nor summarised: the store gave some of their
    /// bodies up for room, or the peer had no neighbour yet (`u64::MAX` until it has one).
    floor: u64,
}

/// What a body costs the store (and a pull reply): its text, an application message's
/// payload and name, and [`BODY_OVERHEAD`].
pub(super) fn cost(body: &GossipBody) -> usize {
    let app = body
        .app
        .as_ref()
        .map_or(0, |a| a.data.len() + a.name.as_ref().map_or(0, |n| n.len()));
    body.text.len() + app + BODY_OVERHEAD
}

impl Default for Retained {
    fn default() -> Self {
        Retained {
            buckets: Vec::new(),
            count: 0,
            bytes: 0,
            floor: u64::MAX,
        }
    }
}

impl Retained {
    /// A store that keeps nothing until [`Retained::open`].
    pub fn new() -> Retained {
        Retained::default()
    }

    /// True until [`Retained::open`].
    pub fn closed(&self) -> bool {
        self.floor == u64::MAX
    }

    /// Keeps and summarises the seconds from `floor` on: called when the peer first has a
    /// neighbour, with that second (it was owed nothing before; of that second it may lack
    /// what was made before the link, and pulls it once).
    pub fn open(&mut self, floor: u64) {
        if self.closed() {
            self.floor = floor;
        }
    }

    /// Bodies kept.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Bytes kept, as counted against [`MAX_RETAINED_BYTES`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bucket of `second`, if it holds that second.
    fn bucket(&self, second: u64) -> Option<&Bucket> {
        self.buckets
            .get(second as usize % SLOTS)
            .filter(|b| b.second == second && !b.entries.is_empty())
    }

    /// Keeps `body` (its key `key`) if its stamp is within the window at `now_secs`. The
    /// caller keeps each gossip once (on its first delivery).
    pub fn insert(&mut self, now_secs: u64, key: GossipKey, body: &Arc<GossipBody>) {
        let Some(second) = key.second else { return };
        if second.saturating_add(RETAIN_SECS) < now_secs
            || second > now_secs.saturating_add(AHEAD_SECS)
            || second < self.floor
        {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets.resize_with(SLOTS, Bucket::default);
        }
        let slot = second as usize % SLOTS;
        if self.buckets[slot].second != second {
            if self.buckets[slot].second > second {
                return; // the slot holds a later second: this one is long gone
            }
            self.free_slot(slot);
            self.buckets[slot].second = second;
        }
        let size = cost(body);
        while self.count >= MAX_RETAINED || self.bytes + size > MAX_RETAINED_BYTES {
            if !self.give_up_oldest(second) {
                return;
            }
        }
        let b = &mut self.buckets[slot];
        b.entries.push((key.hash, Arc::clone(body)));
        b.xor ^= key.hash;
        b.bytes += size;
        self.count += 1;
        self.bytes += size;
    }

    fn free_slot(&mut self, slot: usize) {
        let (n, bytes) = self.buckets[slot].clear();
        self.count -= n;
        self.bytes -= bytes;
    }

    /// Frees the oldest second held to make room for one of `second`, and stops summarising
    /// it; false if `second` is itself the oldest (then it is not summarised either).
    fn give_up_oldest(&mut self, second: u64) -> bool {
        let oldest = (0..self.buckets.len())
            .filter(|&i| !self.buckets[i].entries.is_empty())
            .min_by_key(|&i| self.buckets[i].second);
        match oldest {
            Some(i) if self.buckets[i].second < second => {
                self.floor = self.floor.max(self.buckets[i].second + 1);
                self.free_slot(i);
                true
            }
            _ => {
                self.floor = self.floor.max(second + 1);
                false
            }
        }
    }

    /// Frees the seconds that left the window.
    pub fn expire(&mut self, now_secs: u64) {
        for i in 0..self.buckets.len() {
            let b = &self.buckets[i];
            if !b.entries.is_empty() && b.second.saturating_add(RETAIN_SECS) < now_secs {
                self.free_slot(i);
            }
        }
    }

    /// The seconds a digest covers at `now_secs`: the window without its newest
    /// [`MARGIN_SECS`], from the floor on. Empty if `lo > hi`.
    pub fn window(&self, now_secs: u64) -> (u64, u64) {
        let lo = now_secs.saturating_sub(RETAIN_SECS).max(self.floor);
        (lo, now_secs.saturating_sub(MARGIN_SECS))
    }

    /// This peer's digest at `now_secs`.
    pub fn summary(&self, now_secs: u64) -> Summary {
        let (lo, hi) = self.window(now_secs);
        let mut s = Summary {
            first: lo,
            ..Summary::default()
        };
        for second in lo..=hi {
            let (n, x) = self
                .bucket(second)
                .map_or((0, 0), |b| (b.entries.len() as u32, b.xor));
            s.counts.push(n);
            s.hashes.push(x);
        }
        s
    }

    /// Compares a neighbour's digest (bucket `i` is second `first + i`) with this store at
    /// `now_secs`: this peer's keys of every second, within both windows, whose count or XOR
    /// differs; whole seconds, oldest first, up to [`MAX_IDS`] keys.
    pub fn differences(
        &self,
        first: u64,
        counts: &[u32],
        hashes: &[u64],
        now_secs: u64,
    ) -> Vec<IdGroup> {
        let (lo, hi) = self.window(now_secs);
        let mut out = Vec::new();
        let mut keys = 0;
        for (i, (&n, &x)) in counts.iter().zip(hashes).enumerate() {
            let Some(second) = first.checked_add(i as u64) else {
                break;
            };
            if second < lo || second > hi {
                continue;
            }
            let (mine_n, mine_x) = self
                .bucket(second)
                .map_or((0, 0), |b| (b.entries.len() as u32, b.xor));
            if (mine_n, mine_x) == (n, x) {
                continue;
            }
            let group = IdGroup {
                second,
                keys: self.keys(second).collect(),
            };
            if keys + group.keys.len() > MAX_IDS {
                break;
            }
            keys += group.keys.len();
            out.push(group);
        }
        out
    }

    /// The keys of `second` held, in arrival order.
    pub fn keys(&self, second: u64) -> impl Iterator<Item = u64> + '_ {
        self.bucket(second)
            .into_iter()
            .flat_map(|b| b.entries.iter().map(|(k, _)| *k))
    }

    /// The body of gossip `(second, key)`, if held.
    pub fn get(&self, second: u64, key: u64) -> Option<&Arc<GossipBody>> {
        let b = self.bucket(second)?;
        b.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, body)| body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::seen::gossip_key;

    const NOW: u64 = 1_767_225_600;

    fn body(second: u64, n: u32) -> (GossipKey, Arc<GossipBody>) {
        let text = format!("{second}:10.0.0.1:{n}");
        let key = gossip_key(&text, Some(6000));
        let body = Arc::new(GossipBody {
            text: Arc::from(text),
            origin_ip: "10.0.0.1".parse().expect("ip"),
            origin_port: Some(6000),
            msg_no: n,
            app: None,
        });
        (key, body)
    }

    #[test]
    fn keeps_the_window_and_summarises_it() {
        let mut r = Retained::new();
        r.open(0);
        for (s, n) in [
            (NOW - 30, 1),
            (NOW - 10, 2),
            (NOW - 10, 3),
            (NOW - 5, 4),
            (NOW + 9, 5),
        ] {
            let (k, b) = body(s, n);
            r.insert(NOW, k, &b);
        }
        assert_eq!(r.len(), 3, "too old and too far ahead are not kept");
        let sum = r.summary(NOW);
        assert_eq!(sum.first, NOW - RETAIN_SECS);
        assert_eq!(sum.counts.len() as u64, RETAIN_SECS - MARGIN_SECS + 1);
        let at = |s: u64| (s - sum.first) as usize;
        assert_eq!(sum.counts[at(NOW - 10)], 2);
        assert_eq!(sum.counts[at(NOW - 5)], 1);
        let (k2, _) = body(NOW - 10, 2);
        let (k3, _) = body(NOW - 10, 3);
        assert_eq!(sum.hashes[at(NOW - 10)], k2.hash ^ k3.hash);
        assert!(r.get(NOW - 10, k3.hash).is_some());
        assert_eq!(r.get(NOW - 10, k2.hash).map(|b| b.msg_no), Some(2));
        r.expire(NOW + 11);
        assert_eq!(r.len(), 1, "second NOW - 10 left the window");
        assert!(r.get(NOW - 10, k3.hash).is_none());
    }

    #[test]
    fn differences_name_whole_differing_seconds_of_both_windows() {
        let (mut a, mut b) = (Retained::new(), Retained::new());
        a.open(0);
        b.open(0);
        for n in 0..6 {
            let (k, body) = body(NOW - 8, n);
            a.insert(NOW, k, &body);
            if n != 3 {
                b.insert(NOW, k, &body);
            }
        }
        let (k, only_b) = body(NOW - 4, 99);
        b.insert(NOW, k, &only_b);
        let diff_with =
            |r: &Retained, s: &Summary| r.differences(s.first, &s.counts, &s.hashes, NOW);
        assert_eq!(diff_with(&a, &a.summary(NOW)), vec![]);
        let diff = diff_with(&b, &a.summary(NOW));
        assert_eq!(diff.len(), 2);
        assert_eq!((diff[0].second, diff[0].keys.len()), (NOW - 8, 5));
        assert_eq!(
            (diff[1].second, diff[1].keys.clone()),
            (NOW - 4, vec![k.hash])
        );
        // A store that started later compares only the seconds both hold.
        let mut late = Retained::new();
        late.open(NOW - 5);
        let diff = diff_with(&late, &a.summary(NOW));
        assert!(diff.iter().all(|g| g.second >= NOW - 5), "{diff:?}");
    }

    #[test]
    fn stays_within_its_bounds_giving_up_the_oldest_seconds() {
        let mut r = Retained::new();
        let (k, b) = body(NOW, 0);
        r.insert(NOW, k, &b);
        assert_eq!(r.len(), 0, "nothing is kept before the store is open");
        r.open(0);
        let per_second = MAX_RETAINED / 10 + 1;
        for s in 0..12u64 {
            for n in 0..per_second as u32 {
                let (k, b) = body(NOW - 19 + s, n);
                r.insert(NOW, k, &b);
                assert!(r.len() <= MAX_RETAINED && r.bytes() <= MAX_RETAINED_BYTES);
            }
        }
        let (lo, _) = r.window(NOW);
        assert!(
            lo > NOW - 19,
            "the digest no longer covers the seconds given up"
        );
        let sum = r.summary(NOW);
        assert!(sum
            .counts
            .iter()
            .all(|&c| c as usize == per_second || c == 0));
    }
}
