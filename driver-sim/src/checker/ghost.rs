//! Ghost state: the cluster as the nodes' events and the simulator's own knowledge tell it.
//!
//! Who is up, each peer's instance, incarnation and links, each seed's Peer List, every gossip
//! and who got it, every crash and when its removal was committed, and the running counts a
//! report shows (gossip sends, first deliveries, hops, the seeds' requests). Nothing here
//! decides whether a promise held: [`super::safety`], [`super::liveness`] and
//! [`super::delivery`] judge against this state.

use std::collections::BTreeMap;
use std::sync::Arc;

use gossip_core::hash::{FxHashMap, FxHashSet};
use gossip_core::msg::{Endpoint, Status};
use gossip_core::Message;

use crate::addr::Addrs;

/// One generated gossip.
#[derive(Clone, Debug)]
pub struct GossipInfo {
    /// Origin node id.
    pub origin: u32,
    /// The origin's instance (restart count) that made it.
    pub origin_life: u32,
    /// When it was generated.
    pub gen_at: u64,
}

/// A crashed peer awaiting removal.
#[derive(Clone, Debug)]
pub struct CrashRecord {
    /// Peer index.
    pub peer: u32,
    /// When it crashed.
    pub at_ms: u64,
    /// Its incarnation then (None: it was never registered).
    pub incarnation: Option<u64>,
    /// Its neighbours then (node ids) with their lives, to tell whether anyone could detect it.
    pub neighbours: Vec<(u32, u32)>,
    /// When the first seed committed its removal.
    pub removed_at: Option<u64>,
}

/// Per-peer ghost state, for the current instance unless noted.
#[derive(Clone, Debug, Default)]
pub struct PeerGhost {
    /// Up now.
    pub alive: bool,
    /// Instances started so far (0 before the first start).
    pub life: u32,
    /// Crashed at least once (ever).
    pub crashed_ever: bool,
    /// When a message on one of its links was last lost, stopped or late. A removal within
    /// the loss window after it is excused (promise 4).
    pub last_loss_ms: Option<u64>,
    /// Promise 4 never judges this peer (its links were faulted at times the checker cannot
    /// see: a multi-host run's log).
    pub excused: bool,
    /// Time it spent under promise 4 so far (up, never crashed, no loss in the window
    /// before), not counting the current stretch.
    pub checked_ms: u64,
    /// Start of the current stretch under promise 4 (may lie ahead: a loss window's end).
    pub checked_from: Option<u64>,
    /// Time it spent up so far, not counting the current stretch, and when that began.
    pub up_ms: u64,
    /// When the current instance started.
    pub up_since: Option<u64>,
    /// The incarnation the current instance was admitted at.
    pub incarnation: Option<u64>,
    /// Overlay neighbours (node ids), from `NeighbourAdded` / `NeighbourDropped`.
    pub adj: Vec<u32>,
    /// When the current instance first had a neighbour.
    pub connected_since: Option<u64>,
}

/// What a first-time gossip receipt was, for promise 3.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Receipt {
    /// The first receipt of a generated gossip by this peer instance.
    First,
    /// This peer instance had it already.
    Twice,
    /// No peer generated that text.
    NeverGenerated,
    /// The receiver is not a peer.
    NotAPeer,
}

/// The ghost state and the running counts.
#[derive(Debug)]
pub(super) struct Ghost {
    pub(super) addrs: Addrs,
    /// Per seed: up now.
    pub(super) seed_up: Vec<bool>,
    /// Each seed's Peer List as its events say (current instance).
    pub(super) seed_pl: Vec<BTreeMap<Endpoint, (u64, Status)>>,
    gossip_ids: FxHashMap<Arc<str>, u32>,
    /// Every gossip generated, by dense id.
    pub(super) gossips: Vec<GossipInfo>,
    /// The receivers of every gossip: a bitset of peer indices per gossip, `words` words each,
    /// in one array (a first receipt touches one word, not a per-gossip allocation).
    receivers: Vec<u64>,
    words: usize,
    /// Each peer's `adj.len()`, kept dense: read on every first receipt.
    degrees: Vec<u32>,
    /// Per peer index.
    pub(super) peers: Vec<PeerGhost>,
    /// (peer node, incarnation) removals committed somewhere.
    removed: FxHashSet<(u32, u64)>,
    /// Crashes of peers, in order.
    pub(super) crashes: Vec<CrashRecord>,
    open_crash: FxHashMap<u32, usize>,
    /// When each Peer List change `(peer, incarnation, status)` was first and last applied
    /// at a seed, and at how many seeds.
    pub(super) spread: BTreeMap<(Endpoint, u64, Status), (u64, u64, u32)>,
    /// Gossip requests sent.
    pub(super) gossip_sends: u64,
    /// Requests seeds sent, by wire type.
    pub(super) seed_sends: BTreeMap<&'static str, u64>,
    /// Gossip sends a perfect flood makes: Σ over holders of (degree − 1 if received).
    pub(super) expected_sends: u64,
    /// First-time deliveries.
    pub(super) first_deliveries: u64,
    /// Largest `hops` of a first-time delivery.
    pub(super) hops_max: u32,
    /// Lines of the gossip plane sent: `GOSSIP_MSG` and its ack, and the repair's messages
    /// (`GOSSIP_DIGEST`, `IHAVE`, `GOSSIP_PULL`) and their replies.
    pub(super) gossip_lines: u64,
    /// Their bytes, as the wire encodes them (newline included, no cluster key).
    pub(super) gossip_bytes: u64,
    /// Copies of gossip bodies sent: `GOSSIP_MSG` requests and the bodies of pull replies.
    pub(super) payload_sends: u64,
    /// First-time deliveries that came by a pull (the repair).
    pub(super) repaired: u64,
    /// Per gossip (dense id): when its last first-time delivery so far happened.
    pub(super) last_delivery: Vec<u64>,
    /// How long after a loss on its links a peer's removal is excused (promise 4).
    pub(super) loss_window_ms: u64,
}

impl PeerGhost {
    /// Closes the current stretch under promise 4 at `now`.
    fn stop_checking(&mut self, now: u64) {
        if let Some(from) = self.checked_from.take() {
            self.checked_ms += now.saturating_sub(from);
        }
    }

    /// Time under promise 4 and time up, until `now`.
    pub fn checked_and_up_ms(&self, now: u64) -> (u64, u64) {
        let open = |since: Option<u64>| since.map_or(0, |s| now.saturating_sub(s));
        (
            self.checked_ms + open(self.checked_from),
            self.up_ms + open(self.up_since),
        )
    }
}

/// The `timestamp` the bytes of a gossip-plane line are measured with: a time of the run
/// (from 2026-01-01T00:00:00Z), to the millisecond.
const LINE_TS: f64 = 1_767_225_600.125;

impl Ghost {
    pub(super) fn new(addrs: Addrs, loss_window_ms: u64) -> Ghost {
        Ghost {
            loss_window_ms,
            addrs,
            seed_up: vec![false; addrs.seeds as usize],
            seed_pl: vec![BTreeMap::new(); addrs.seeds as usize],
            gossip_ids: FxHashMap::default(),
            gossips: Vec::new(),
            receivers: Vec::new(),
            words: (addrs.peers as usize).div_ceil(64),
            degrees: vec![0; addrs.peers as usize],
            peers: vec![PeerGhost::default(); addrs.peers as usize],
            removed: Default::default(),
            crashes: Vec::new(),
            open_crash: FxHashMap::default(),
            spread: BTreeMap::new(),
            gossip_sends: 0,
            seed_sends: BTreeMap::new(),
            expected_sends: 0,
            first_deliveries: 0,
            hops_max: 0,
            gossip_lines: 0,
            gossip_bytes: 0,
            payload_sends: 0,
            repaired: 0,
            last_delivery: Vec::new(),
        }
    }

    /// The peer index of node `node`, if it is a peer.
    #[inline]
    pub(super) fn peer_ix(&self, node: u32) -> Option<usize> {
        (node >= self.addrs.seeds && node < self.addrs.nodes())
            .then(|| (node - self.addrs.seeds) as usize)
    }

    /// "seed 127.0.0.1:5001" or "peer 127.1.0.0:6000".
    pub(super) fn name(&self, node: u32) -> String {
        let kind = if self.addrs.is_seed(node) {
            "seed"
        } else {
            "peer"
        };
        format!("{kind} {}", self.addrs.endpoint(node))
    }

    /// Node `node` started (first start or restart): a fresh instance.
    pub(super) fn started(&mut self, now: u64, node: u32) {
        let window = self.loss_window_ms;
        if let Some(j) = self.peer_ix(node) {
            let p = &mut self.peers[j];
            p.up_since = Some(now);
            if !p.crashed_ever && !p.excused {
                let clear = p.last_loss_ms.map_or(now, |l| now.max(l + window));
                p.checked_from = Some(clear);
            }
            p.alive = true;
            p.life += 1;
            p.incarnation = None;
            p.adj.clear();
            self.degrees[j] = 0;
            p.connected_since = None;
            if p.life > 1 {
                // A fresh instance may receive every gossip again.
                let (w, b) = (j / 64, 1u64 << (j % 64));
                for row in self.receivers.chunks_exact_mut(self.words) {
                    row[w] &= !b;
                }
            }
        } else if let Some(pl) = self.seed_pl.get_mut(node as usize) {
            pl.clear();
            self.seed_up[node as usize] = true;
        }
    }

    /// Node `node` crashed: a peer's crash is recorded, to measure (and require) its removal.
    pub(super) fn crashed(&mut self, now: u64, node: u32) {
        let Some(j) = self.peer_ix(node) else {
            if let Some(up) = self.seed_up.get_mut(node as usize) {
                *up = false;
            }
            return;
        };
        let neighbours: Vec<(u32, u32)> = self.peers[j]
            .adj
            .iter()
            .filter_map(|&n| self.peer_ix(n).map(|k| (n, self.peers[k].life)))
            .collect();
        let p = &mut self.peers[j];
        p.stop_checking(now);
        if let Some(since) = p.up_since.take() {
            p.up_ms += now.saturating_sub(since);
        }
        p.alive = false;
        p.crashed_ever = true;
        let rec = CrashRecord {
            peer: j as u32,
            at_ms: now,
            incarnation: p.incarnation,
            neighbours,
            removed_at: None,
        };
        p.adj.clear();
        self.degrees[j] = 0;
        if rec.incarnation.is_some() {
            self.open_crash.insert(node, self.crashes.len());
        }
        self.crashes.push(rec);
    }

    /// A message between `a` and `b` was lost, stopped by a partition, or late.
    #[inline]
    pub(super) fn link_lost(&mut self, now: u64, a: u32, b: u32) {
        let window = self.loss_window_ms;
        for n in [a, b] {
            if let Some(j) = self.peer_ix(n) {
                let p = &mut self.peers[j];
                p.last_loss_ms = Some(now);
                if p.checked_from.is_some() {
                    p.stop_checking(now);
                    p.checked_from = Some(now + window);
                }
            }
        }
    }

    /// Promise 4 never judges peer node `node` (see [`PeerGhost::excused`]).
    pub(super) fn excuse(&mut self, node: u32) {
        if let Some(j) = self.peer_ix(node) {
            let p = &mut self.peers[j];
            p.excused = true;
            p.checked_from = None;
            p.checked_ms = 0;
        }
    }

    /// Counts a request a seed sent (the cost of membership).
    #[inline]
    pub(super) fn count_seed_send(&mut self, node: u32, msg: &Message) {
        if self.addrs.is_seed(node) {
            *self.seed_sends.entry(msg.type_name()).or_insert(0) += 1;
        }
    }

    /// Counts a line of the gossip plane sent, with `payload` body copies. Its bytes are
    /// measured at [`LINE_TS`]: every line carries its send time, and a time of the run
    /// with milliseconds has that many characters (a few lines have one or two fewer).
    #[inline]
    pub(super) fn gossip_line(&mut self, msg: &Message, payload: u64) {
        self.gossip_lines += 1;
        self.payload_sends += payload;
        self.gossip_bytes += gossip_core::wire::encoded_len(msg, LINE_TS) as u64;
    }

    /// Peer `node` generated gossip `text`. False if `node` is not a peer.
    pub(super) fn generated(&mut self, now: u64, node: u32, text: &Arc<str>) -> bool {
        let Some(j) = self.peer_ix(node) else {
            return false;
        };
        let deg = u64::from(self.degrees[j]);
        self.expected_sends += deg;
        if self.gossip_ids.contains_key(text) {
            return true; // the same text again (a restarted peer within the same second): one gossip
        }
        let id = self.gossips.len() as u32;
        self.gossip_ids.insert(text.clone(), id);
        self.gossips.push(GossipInfo {
            origin: node,
            origin_life: self.peers[j].life,
            gen_at: now,
        });
        self.receivers.resize(self.receivers.len() + self.words, 0);
        self.last_delivery.push(now);
        true
    }

    /// The dense id of gossip `text`, if some peer generated it.
    pub(super) fn gossip_id(&self, text: &str) -> Option<u32> {
        self.gossip_ids.get(text).copied()
    }

    /// Node `node` received gossip `text` first-time, `hops` links from its origin.
    #[inline]
    pub(super) fn received(&mut self, now: u64, node: u32, text: &Arc<str>, hops: u32) -> Receipt {
        let Some(j) = self.peer_ix(node) else {
            return Receipt::NotAPeer;
        };
        let Some(&id) = self.gossip_ids.get(text) else {
            return Receipt::NeverGenerated;
        };
        let (w, b) = (j / 64, 1u64 << (j % 64));
        let word = &mut self.receivers[id as usize * self.words + w];
        if *word & b != 0 {
            return Receipt::Twice;
        }
        *word |= b;
        self.last_delivery[id as usize] = now;
        self.first_deliveries += 1;
        self.hops_max = self.hops_max.max(hops);
        self.expected_sends += u64::from(self.degrees[j]).saturating_sub(1);
        Receipt::First
    }

    /// Peer `node` added `peer` as a neighbour.
    pub(super) fn neighbour_added(&mut self, now: u64, node: u32, peer: &Endpoint) {
        if let (Some(j), Some(n)) = (self.peer_ix(node), self.addrs.node(peer)) {
            let p = &mut self.peers[j];
            if !p.adj.contains(&n) {
                p.adj.push(n);
                self.degrees[j] = p.adj.len() as u32;
            }
            p.connected_since.get_or_insert(now);
        }
    }

    /// Peer `node` dropped `peer` as a neighbour.
    pub(super) fn neighbour_dropped(&mut self, node: u32, peer: &Endpoint) {
        if let (Some(j), Some(n)) = (self.peer_ix(node), self.addrs.node(peer)) {
            self.peers[j].adj.retain(|&x| x != n);
            self.degrees[j] = self.peers[j].adj.len() as u32;
        }
    }

    /// Seed `node` applied `(peer, incarnation, status)`: its Peer List and the change's
    /// spread. Returns the entry it held before.
    pub(super) fn entry_applied(
        &mut self,
        now: u64,
        node: u32,
        peer: Endpoint,
        incarnation: u64,
        status: Status,
    ) -> Option<(u64, Status)> {
        let seen = self
            .spread
            .entry((peer, incarnation, status))
            .or_insert((now, now, 0));
        seen.1 = now;
        seen.2 += 1;
        self.seed_pl[node as usize].insert(peer, (incarnation, status))
    }

    /// Seed `node` forgot its entry of `peer` (the tombstone period passed).
    pub(super) fn entry_reaped(&mut self, node: u32, peer: &Endpoint) {
        if let Some(pl) = self.seed_pl.get_mut(node as usize) {
            pl.remove(peer);
        }
    }

    /// A removal of node `x` at `incarnation` was committed at some seed. Returns true the
    /// first time (later ones are its propagation); a crashed peer's record notes when.
    pub(super) fn first_removal(&mut self, now: u64, x: u32, incarnation: u64) -> bool {
        if !self.removed.insert((x, incarnation)) {
            return false;
        }
        if let Some(&i) = self.open_crash.get(&x) {
            let rec = &mut self.crashes[i];
            if rec.incarnation.is_some_and(|inc| inc <= incarnation) {
                rec.removed_at = Some(now);
                self.open_crash.remove(&x);
            }
        }
        true
    }

    /// True if some seed ever listed `peer` `Alive`.
    pub(super) fn ever_listed(&self, peer: &Endpoint) -> bool {
        (self
            .spread
            .range((*peer, 0, Status::Alive)..=(*peer, u64::MAX, Status::Left)))
        .any(|((_, _, status), _)| *status == Status::Alive)
    }

    /// Degree of peer `j` (current instance).
    pub(super) fn degree(&self, j: usize) -> usize {
        self.degrees.get(j).map_or(0, |&d| d as usize)
    }

    /// The receivers of gossip `id` (`gossips[id]`): a bitset of peer indices.
    pub(super) fn receivers(&self, id: usize) -> &[u64] {
        self.receivers
            .get(id * self.words..(id + 1) * self.words)
            .unwrap_or(&[])
    }
}
