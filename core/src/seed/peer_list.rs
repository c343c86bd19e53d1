//! The certified Peer List: one `(incarnation, status)` entry per peer, the merge rule that
//! only ever moves an entry up, the per-bucket digests anti-entropy compares, and reaping:
//! a removed or left entry is forgotten a tombstone period after this list took it, and its
//! incarnation remembered one period more, so a seed that has not reaped it yet cannot hand
//! it back (see `Core::reap`).

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::{combine, hash64};
use crate::msg::{Endpoint, Entry, Fact, Status, SYNC_BUCKETS};
use crate::rng::Rng;
use crate::Millis;

/// Where an entry stands: `Alive < Removed < Left` at one incarnation, a higher incarnation
/// above all three.
pub(super) type Rank = (u64, Status);

/// Who may certify a change: the configured seeds, `quorum` of them at least.
#[derive(Clone, Debug)]
pub(super) struct Certifier {
    seeds: BTreeSet<Endpoint>,
    quorum: usize,
}

impl Certifier {
    pub(super) fn new(seeds: &[Endpoint]) -> Certifier {
        let seeds: BTreeSet<Endpoint> = seeds.iter().copied().collect();
        let quorum = crate::quorum(seeds.len());
        Certifier { seeds, quorum }
    }

    /// Votes needed.
    pub(super) fn quorum(&self) -> usize {
        self.quorum
    }

    /// Distinct seeds configured.
    pub(super) fn seed_count(&self) -> usize {
        self.seeds.len()
    }

    /// Every configured seed, in order.
    pub(super) fn seeds(&self) -> &BTreeSet<Endpoint> {
        &self.seeds
    }

    pub(super) fn is_seed(&self, endpoint: &Endpoint) -> bool {
        self.seeds.contains(endpoint)
    }

    /// A valid certificate names at least a quorum of distinct configured seeds. Anything
    /// less could be forged by a minority (or a confused non-seed), so it changes nothing.
    pub(super) fn certifies(&self, votes: &[Endpoint]) -> bool {
        let distinct: BTreeSet<&Endpoint> = votes.iter().collect();
        distinct.len() == votes.len()
            && votes.len() >= self.quorum
            && votes.iter().all(|v| self.seeds.contains(v))
    }
}

/// The rank of an entry.
pub(super) fn rank(entry: &Entry) -> Rank {
    (entry.incarnation, entry.status)
}

/// The merge rule: `candidate` replaces `current` only if it ranks strictly higher and carries
/// a valid certificate. "Take the higher" makes merging commutative and idempotent, so commits
/// and syncs may arrive in any order, twice, or late, and every seed ends in the same state.
pub(super) fn supersedes(
    current: Option<&Entry>,
    candidate: &Entry,
    certifier: &Certifier,
) -> bool {
    Some(rank(candidate)) > current.map(rank) && certifier.certifies(&candidate.votes)
}

/// The anti-entropy bucket of a peer. Hashes the endpoint's text so every build agrees.
pub(super) fn bucket(peer: &Endpoint) -> usize {
    (hash64(peer.to_string().as_bytes()) % SYNC_BUCKETS as u64) as usize
}

/// What a digest sums for one entry. The certificate is left out: two seeds holding the same
/// rank under different (equally valid) certificates agree, and need not sync.
fn fingerprint(entry: &Entry) -> u64 {
    let status = match entry.status {
        Status::Alive => 0,
        Status::Removed => 1,
        Status::Left => 2,
    };
    combine(
        combine(hash64(entry.peer.to_string().as_bytes()), entry.incarnation),
        status,
    )
}

/// The entries and their digests, kept in step on every change.
#[derive(Clone, Debug)]
pub(super) struct PeerList {
    entries: BTreeMap<Endpoint, Entry>,
    /// XOR of the fingerprints of each bucket's entries: order-independent, and updated in
    /// O(1) by XOR-ing the old fingerprint out and the new one in.
    digests: Vec<u64>,
    /// The admitted peers with their incarnations, sorted by peer, so a `PEER_LIST_RESP`
    /// sample costs O(sample), not O(Peer List) (every peer refreshes periodically, and a
    /// scan per request made serving the list quadratic in the cluster's size), reads only
    /// this array, and comes out sorted by drawing sorted positions.
    alive: Vec<(Endpoint, u64)>,
    /// Peers this list holds removed (or left) without ever having held them admitted. A seed takes
    /// part in such removals only on hearsay (see `round::removal_check`), so their number is
    /// what a lying seed could make it hold for endpoints nobody registered: it is bounded.
    orphans: BTreeSet<Endpoint>,
    /// The highest incarnation of any entry (entries only move up, so it only grows).
    highest: u64,
    /// Removed and left entries, by when this list took them: the oldest are reaped first.
    tombstones: BTreeSet<(Millis, Endpoint)>,
    /// When this list took each removed or left entry (the key of `tombstones`).
    gone_at: BTreeMap<Endpoint, Millis>,
    /// Reaped entries: the incarnation that was forgotten and until when that is remembered.
    reaped: BTreeMap<Endpoint, (u64, Millis)>,
    /// `reaped` by expiry.
    reaped_until: BTreeSet<(Millis, Endpoint)>,
}

impl Default for PeerList {
    fn default() -> Self {
        PeerList {
            entries: BTreeMap::new(),
            digests: vec![0; SYNC_BUCKETS],
            alive: Vec::new(),
            orphans: BTreeSet::new(),
            highest: 0,
            tombstones: BTreeSet::new(),
            gone_at: BTreeMap::new(),
            reaped: BTreeMap::new(),
            reaped_until: BTreeSet::new(),
        }
    }
}

impl PeerList {
    /// The entry of `peer`.
    pub(super) fn get(&self, peer: &Endpoint) -> Option<&Entry> {
        self.entries.get(peer)
    }

    /// The rank of `peer`'s entry.
    pub(super) fn rank(&self, peer: &Endpoint) -> Option<Rank> {
        self.get(peer).map(rank)
    }

    /// True if `fact` ranks above this list's entry for its peer (or the peer is unknown).
    pub(super) fn would_move_up(&self, fact: &Fact) -> bool {
        Some((fact.incarnation, fact.status)) > self.rank(&fact.peer)
    }

    /// The highest incarnation this list holds for any peer (0 when empty): the range of
    /// incarnations the cluster uses, as far as this seed knows.
    pub(super) fn highest(&self) -> u64 {
        self.highest
    }

    /// Every entry, sorted by peer.
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// How many peers are admitted.
    pub(super) fn alive_count(&self) -> usize {
        self.alive.len()
    }

    /// Up to `k` distinct admitted peers chosen uniformly, with their incarnations, sorted by
    /// peer. Costs O(k²) when `k` is small against the list (a few dozen), never O(n).
    pub(super) fn sample_alive(&self, k: usize, rng: &mut Rng) -> Vec<(Endpoint, u64)> {
        let n = self.alive.len();
        if k.saturating_mul(2) >= n {
            let mut listed = rng.sample(&self.alive, k);
            listed.sort_unstable_by_key(|&(peer, _)| peer);
            return listed;
        }
        // Distinct positions by rejection; a linear scan of a few dozen beats a tree.
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        while chosen.len() < k {
            let i = rng.below(n as u64) as usize;
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen.sort_unstable();
        // Sized up front, so it is not reallocated as it grows (a seed answers hundreds of
        // these a second in a large simulation).
        let mut listed = Vec::with_capacity(k);
        listed.extend(
            chosen
                .into_iter()
                .filter_map(|i| self.alive.get(i).copied()),
        );
        listed
    }

    pub(super) fn digests(&self) -> &[u64] {
        &self.digests
    }

    /// Applies `candidate` at `now` if the merge rule allows; true if the list changed.
    pub(super) fn apply(
        &mut self,
        mut candidate: Entry,
        certifier: &Certifier,
        now: Millis,
    ) -> bool {
        if !supersedes(self.get(&candidate.peer), &candidate, certifier) {
            return false;
        }
        candidate.votes.sort();
        let slot = bucket(&candidate.peer);
        if let Some(old) = self.entries.get(&candidate.peer) {
            self.digests[slot] ^= fingerprint(old);
        }
        self.digests[slot] ^= fingerprint(&candidate);
        self.track_alive(
            candidate.peer,
            candidate.incarnation,
            candidate.status == Status::Alive,
        );
        match (self.entries.contains_key(&candidate.peer), candidate.status) {
            (_, Status::Alive) => {
                self.orphans.remove(&candidate.peer);
            }
            (false, _) => {
                self.orphans.insert(candidate.peer);
            }
            (true, _) => {}
        }
        self.highest = self.highest.max(candidate.incarnation);
        if let Some(at) = self.gone_at.remove(&candidate.peer) {
            self.tombstones.remove(&(at, candidate.peer));
        }
        if candidate.status.gone() {
            self.gone_at.insert(candidate.peer, now);
            self.tombstones.insert((now, candidate.peer));
        }
        self.entries.insert(candidate.peer, candidate);
        true
    }

    /// Forgets every removed or left entry taken `tombstone_ms` or longer before `now`, and
    /// remembers its incarnation `tombstone_ms` more; forgets what was remembered longer.
    /// Returns the entries forgotten.
    pub(super) fn reap(&mut self, now: Millis, tombstone_ms: u64) -> Vec<Entry> {
        while let Some(&(until, peer)) = self.reaped_until.first() {
            if until > now {
                break;
            }
            self.reaped_until.pop_first();
            if self.reaped.get(&peer).is_some_and(|&(_, u)| u == until) {
                self.reaped.remove(&peer);
            }
        }
        let mut gone = Vec::new();
        while let Some(&(at, peer)) = self.tombstones.first() {
            if at.after(tombstone_ms) > now {
                break;
            }
            self.tombstones.pop_first();
            self.gone_at.remove(&peer);
            let Some(entry) = self.entries.remove(&peer) else {
                continue;
            };
            self.digests[bucket(&peer)] ^= fingerprint(&entry);
            self.orphans.remove(&peer);
            let until = now.after(tombstone_ms);
            if let Some((_, old)) = self.reaped.insert(peer, (entry.incarnation, until)) {
                self.reaped_until.remove(&(old, peer));
            }
            self.reaped_until.insert((until, peer));
            gone.push(entry);
        }
        gone
    }

    /// True if `fact` is about an incarnation this list reaped a moment ago (or below it):
    /// a seed that has not reaped it yet offers it back, and it must not come back.
    pub(super) fn reaped_covers(&self, fact: &Fact) -> bool {
        self.reaped
            .get(&fact.peer)
            .is_some_and(|&(inc, _)| fact.incarnation <= inc)
    }

    /// The rank of `peer`'s entry, or, if it was reaped a moment ago, the removal of that
    /// incarnation: what a registration must go above.
    pub(super) fn rank_or_reaped(&self, peer: &Endpoint) -> Option<Rank> {
        self.rank(peer).or_else(|| {
            self.reaped
                .get(peer)
                .map(|&(inc, _)| (inc, Status::Removed))
        })
    }

    /// Entries held (alive, removed and left).
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Reaped incarnations still remembered.
    pub(super) fn reaped_len(&self) -> usize {
        self.reaped.len()
    }

    /// How many peers it holds removed without ever having held them admitted.
    pub(super) fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// Keeps `alive` in step with a peer's new rank (admissions and removals are rare
    /// against samples: an insertion into the sorted array is fine).
    fn track_alive(&mut self, peer: Endpoint, incarnation: u64, alive: bool) {
        match (self.alive.binary_search_by_key(&peer, |&(p, _)| p), alive) {
            (Err(at), true) => self.alive.insert(at, (peer, incarnation)),
            (Ok(at), true) => self.alive[at].1 = incarnation,
            (Ok(at), false) => {
                self.alive.remove(at);
            }
            (Err(_), false) => {}
        }
    }

    /// Up to `limit` entries of the buckets whose digest differs from `theirs`, starting at
    /// bucket `start` and wrapping, so that when more differ than fit, successive rounds
    /// (with random starts) cover them all rather than resending the same first few.
    pub(super) fn differing(&self, theirs: &[u64], limit: usize, start: usize) -> Vec<Entry> {
        // In a settled cluster every digest agrees: skip hashing every entry's bucket.
        if limit == 0 || (0..SYNC_BUCKETS).all(|i| theirs.get(i) == self.digests.get(i)) {
            return Vec::new();
        }
        let mut by_bucket: Vec<Vec<&Entry>> = vec![Vec::new(); SYNC_BUCKETS];
        for entry in self.entries.values() {
            let slot = bucket(&entry.peer);
            if theirs.get(slot) != self.digests.get(slot) {
                by_bucket[slot].push(entry);
            }
        }
        (0..SYNC_BUCKETS)
            .flat_map(|i| by_bucket[(start + i) % SYNC_BUCKETS].iter())
            .take(limit)
            .map(|e| (*e).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint::from(([127, 0, 0, 1], port))
    }

    fn entry(inc: u64, status: Status, votes: &[u16]) -> Entry {
        Entry {
            peer: ep(9000),
            incarnation: inc,
            status,
            votes: votes.iter().map(|p| ep(*p)).collect(),
        }
    }

    #[test]
    fn merge_rule_table() {
        use Status::{Alive, Removed};
        let certifier = Certifier::new(&[ep(1), ep(2), ep(3)]);
        let ok = &[1, 2][..];
        // (current, candidate, applies)
        let cases: Vec<(Option<Entry>, Entry, bool)> = vec![
            (None, entry(1, Alive, ok), true),
            (None, entry(1, Removed, ok), true),
            (Some(entry(1, Alive, ok)), entry(1, Alive, &[2, 3]), false),
            (Some(entry(1, Alive, ok)), entry(1, Removed, ok), true),
            (Some(entry(1, Removed, ok)), entry(1, Alive, ok), false),
            (Some(entry(1, Removed, ok)), entry(1, Removed, ok), false),
            (Some(entry(1, Removed, ok)), entry(2, Alive, ok), true),
            (Some(entry(2, Alive, ok)), entry(1, Removed, ok), false),
            (Some(entry(3, Alive, ok)), entry(2, Alive, ok), false),
            // certificates: too few, duplicated, or naming a non-seed
            (None, entry(1, Alive, &[1]), false),
            (None, entry(1, Alive, &[1, 1]), false),
            (None, entry(1, Alive, &[1, 4]), false),
            (None, entry(1, Alive, &[]), false),
            (
                Some(entry(1, Alive, ok)),
                entry(2, Alive, &[2, 2, 2]),
                false,
            ),
            (None, entry(1, Alive, &[3, 2, 1]), true),
        ];
        for (current, candidate, want) in cases {
            assert_eq!(
                supersedes(current.as_ref(), &candidate, &certifier),
                want,
                "current={current:?} candidate={candidate:?}"
            );
        }
    }

    #[test]
    fn alive_sample_follows_admissions_and_removals() {
        let certifier = Certifier::new(&[ep(1), ep(2), ep(3)]);
        let mut pl = PeerList::default();
        let admit = |pl: &mut PeerList, port: u16, inc: u64, status: Status| {
            let e = Entry {
                peer: ep(port),
                incarnation: inc,
                status,
                votes: vec![ep(1), ep(2)],
            };
            assert!(pl.apply(e, &certifier, Millis(0)));
        };
        for port in 100..120 {
            admit(&mut pl, port, 1, Status::Alive);
        }
        for port in (100..120).step_by(3) {
            admit(&mut pl, port, 1, Status::Removed);
        }
        admit(&mut pl, 100, 2, Status::Alive); // re-registered above its removal
        admit(&mut pl, 101, 3, Status::Alive); // moved up while admitted: a new incarnation
        let alive: Vec<Endpoint> = pl
            .entries()
            .filter(|e| e.status == Status::Alive)
            .map(|e| e.peer)
            .collect();
        assert_eq!(pl.alive_count(), alive.len());
        let mut rng = Rng::new(5);
        for k in [0, 1, 5, 13, 14, 100] {
            let drawn = pl.sample_alive(k, &mut rng);
            for &(peer, inc) in &drawn {
                assert_eq!(pl.get(&peer).map(|e| e.incarnation), Some(inc), "{peer}");
            }
            let sample: Vec<Endpoint> = drawn.iter().map(|&(peer, _)| peer).collect();
            assert_eq!(sample.len(), k.min(alive.len()), "k={k}");
            assert!(
                sample.windows(2).all(|w| w[0] < w[1]),
                "sorted and distinct"
            );
            assert!(
                sample.iter().all(|p| alive.contains(p)),
                "only admitted peers"
            );
        }
    }

    #[test]
    fn digests_track_content_not_history() {
        let certifier = Certifier::new(&[ep(1), ep(2), ep(3)]);
        let (mut a, mut b) = (PeerList::default(), PeerList::default());
        assert!(a.apply(entry(1, Status::Alive, &[1, 2]), &certifier, Millis(0)));
        assert!(a.apply(entry(1, Status::Removed, &[1, 2]), &certifier, Millis(0)));
        assert_ne!(a.digests(), b.digests());
        // b reaches the same state directly, under another certificate
        assert!(b.apply(entry(1, Status::Removed, &[2, 3]), &certifier, Millis(0)));
        assert_eq!(a.digests(), b.digests());
        assert!(a.differing(b.digests(), 10, 0).is_empty());
        assert!(b.apply(entry(2, Status::Alive, &[2, 3]), &certifier, Millis(0)));
        assert_eq!(a.differing(b.digests(), 10, 7).len(), 1);
        assert_eq!(a.differing(b.digests(), 0, 0).len(), 0);
    }

    #[test]
    fn reaping_forgets_gone_entries_after_the_period_and_remembers_their_incarnation() {
        let certifier = Certifier::new(&[ep(1), ep(2), ep(3)]);
        let mut pl = PeerList::default();
        let t = 1_000;
        let at = |peer: u16, inc: u64, status: Status| Entry {
            peer: ep(peer),
            incarnation: inc,
            status,
            votes: vec![ep(1), ep(2)],
        };
        assert!(pl.apply(at(100, 1, Status::Alive), &certifier, Millis(0)));
        assert!(pl.apply(at(101, 1, Status::Alive), &certifier, Millis(0)));
        assert!(pl.apply(at(100, 1, Status::Removed), &certifier, Millis(500)));
        let digests_with_alive_only = {
            let mut only = PeerList::default();
            assert!(only.apply(at(101, 1, Status::Alive), &certifier, Millis(0)));
            only.digests().to_vec()
        };
        // Alive entries are never reaped; a removal only a full period after it was taken.
        assert!(pl.reap(Millis(1_499), t).is_empty());
        let gone = pl.reap(Millis(1_500), t);
        assert_eq!(gone.iter().map(|e| e.peer).collect::<Vec<_>>(), [ep(100)]);
        assert_eq!((pl.len(), pl.reaped_len()), (1, 1));
        assert!(pl.get(&ep(100)).is_none());
        assert_eq!(pl.digests().to_vec(), digests_with_alive_only);
        // A seed that has not reaped yet offers the removal back: refused while remembered.
        let removal = at(100, 1, Status::Removed).fact();
        assert!(pl.reaped_covers(&removal));
        assert!(!pl.reaped_covers(&at(100, 2, Status::Alive).fact()));
        assert_eq!(pl.rank_or_reaped(&ep(100)), Some((1, Status::Removed)));
        // The peer comes back one incarnation up: no longer a tombstone.
        assert!(pl.apply(at(100, 2, Status::Alive), &certifier, Millis(1_600)));
        assert!(pl.reap(Millis(10_000), t).is_empty());
        assert_eq!(pl.reaped_len(), 0, "remembered one period, then forgotten");
        assert_eq!(pl.len(), 2);
        // Left entries are reaped like removed ones.
        assert!(pl.apply(at(101, 1, Status::Left), &certifier, Millis(10_000)));
        assert_eq!(pl.reap(Millis(11_000), t).len(), 1);
        assert_eq!(pl.rank_or_reaped(&ep(101)), Some((1, Status::Removed)));
    }
}
