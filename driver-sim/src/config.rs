//! What a simulation runs: the cluster, the network model, the fault schedule, the phases.

use gossip_core::hash::mix64;
use gossip_core::Settings;

/// The network model. Latency of a message = the link's base latency (fixed per link, drawn
/// uniformly from `latency_min_ms..=latency_max_ms` by hashing the run seed and the two node
/// ids) + a per-message jitter uniform in `0..=jitter_ms` (jitter reorders messages) + with
/// probability `tail`, a long-tail extra uniform in `0..=tail_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest per-link base latency.
    pub latency_min_ms: u64,
    /// Largest per-link base latency.
    pub latency_max_ms: u64,
    /// Per-message extra delay, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Chance that a message takes the long tail.
    pub tail: f64,
    /// Largest long-tail extra delay.
    pub tail_ms: u64,
    /// Chance that a message (request or reply) is lost.
    pub drop: f64,
    /// Chance that a request is delivered twice (the second copy gets its own connection;
    /// the sender sees only the first reply).
    pub dup: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_min_ms: 5,
            latency_max_ms: 5,
            jitter_ms: 0,
            tail: 0.0,
            tail_ms: 0,
            drop: 0.0,
            dup: 0.0,
        }
    }
}

impl NetConfig {
    /// A network whose shape the run seed chooses: constant, uniform per link, or jittery with
    /// a long tail, always well inside the default probe timeout on the common path.
    pub fn chosen_by(seed: u64) -> NetConfig {
        let h = mix64(seed ^ 0x6e65_7477_6f72_6b00);
        match h % 3 {
            0 => NetConfig {
                latency_min_ms: 1 + (h >> 8) % 10,
                latency_max_ms: 1 + (h >> 8) % 10,
                ..NetConfig::default()
            },
            1 => NetConfig {
                latency_min_ms: 1,
                latency_max_ms: 5 + (h >> 8) % 40,
                ..NetConfig::default()
            },
            _ => NetConfig {
                latency_min_ms: 1,
                latency_max_ms: 20,
                jitter_ms: 1 + (h >> 8) % 30,
                tail: 0.01,
                tail_ms: 300,
                ..NetConfig::default()
            },
        }
    }

    /// The worst latency of one message.
    pub fn max_latency_ms(&self) -> u64 {
        self.latency_max_ms + self.jitter_ms + if self.tail > 0.0 { self.tail_ms } else { 0 }
    }
}

/// A node named by role and index (seed `i` of the config, peer `j` in join order).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRef {
    /// Seed `i`.
    Seed(u32),
    /// Peer `j`.
    Peer(u32),
}

/// How a partition splits the nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// Each node is on side A with probability `fraction`, by a hash of `salt` and its id.
    Random {
        /// Share of nodes on side A.
        fraction: f64,
        /// Picks which nodes.
        salt: u64,
    },
    /// These nodes are on side A, every other on side B.
    Nodes(Vec<NodeRef>),
}

/// Which messages a partition stops.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum PartitionKind {
    /// A and B cannot reach each other.
    Symmetric,
    /// A cannot reach B; B reaches A (and A's replies to B's requests get through).
    OneWay,
    /// Like symmetric, but a few bridge nodes (a `bridge` share, by hash) reach both sides.
    Bridge {
        /// Share of nodes that are bridges.
        bridge: f64,
    },
}

/// A network partition. A stopped message is silently lost (the sender times out).
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// Which nodes are on side A.
    pub split: Split,
    /// What is stopped.
    pub kind: PartitionKind,
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// The node loses its state and every message queued to it; connects to it are refused.
    Crash(NodeRef),
    /// The node starts again with fresh state from its config (a no-op if it is up).
    Restart(NodeRef),
    /// The node is told to stop (`Input::Leave`, as on SIGTERM): a peer leaves the network, a
    /// seed finishes its rounds. It stops when it says it is done, or after
    /// [`LEAVE_DEADLINE_MS`] at the latest (as the real driver does).
    Leave(NodeRef),
    /// A partition starts (replacing any current one).
    Partition(Partition),
    /// The current partition heals.
    HealPartition,
    /// The network's drop rate changes.
    SetDrop(f64),
    /// The network's duplication rate changes.
    SetDup(f64),
    /// The network's per-message jitter changes.
    SetJitter(u64),
    /// The node's host is saturated: every message to or from it waits a further uniform
    /// `0..=extra_ms` (0 ends it). Its messages come late, none is lost: a merely slow peer
    /// must not be removed, nor lose its links for long (the scenarios check it).
    Slow {
        /// The slow node.
        node: NodeRef,
        /// Most extra delay per message, each way.
        extra_ms: u64,
    },
    /// The simulator, playing a lying peer, sends a `DEAD_REPORT` accusing peer `peer` (alive)
    /// to seed `seed`. The accused must never be removed for it.
    Lie {
        /// The accused peer.
        peer: u32,
        /// The seed lied to.
        seed: u32,
    },
    /// The simulator, playing an on-path attacker without a cluster key, sends seed `seed`
    /// every genuine commit sync the seeds sent so far (their certificates are real; what
    /// they certify may be long gone, removed, left or reaped). Nothing may be resurrected or
    /// removed by them.
    ReplayCommits {
        /// The seed replayed to.
        seed: u32,
    },
    /// The simulator, playing a forger (a stranger at [`crate::addr::FORGER`], not a seed),
    /// sends seed `seed` forged messages of `kind` about peer `peer` (the victim). Nothing
    /// they claim may change any honest seed's Peer List.
    Forge {
        /// What is forged.
        kind: ForgeKind,
        /// The seed forged to.
        seed: u32,
        /// The victim peer.
        peer: u32,
    },
}

/// How long a node told to leave may take before it is stopped anyway (the `seed` and `peer`
/// programs' `--leave-timeout-ms` default).
pub const LEAVE_DEADLINE_MS: u64 = 3_000;

/// What a forger (or a lying seed) claims. Certificates name a quorum of real seeds; `k` is
/// the victim's current incarnation (1 if it has none).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForgeKind {
    /// A `SEED_DEAD_COMMIT` sync removing the victim at `k`.
    RemoveCurrent,
    /// A `SEED_DEAD_COMMIT` sync removing it at `k + 1`.
    RemoveNext,
    /// A `SEED_DEAD_COMMIT` sync removing it at a huge incarnation (`MAX_INCARNATION - 1`,
    /// the highest a peer could still rejoin above).
    RemoveHuge,
    /// A `REGISTER_COMMIT` sync admitting an endpoint where nothing listens.
    AdmitNowhere,
    /// A `REGISTER_COMMIT` sync admitting the victim at `k + 1`.
    AdmitBumped,
    /// `SEED_SYNC` requests (one shaped as a reply) carrying entries of each kind above.
    SyncEntries,
    /// `REGISTER_VOTE` / `SEED_DEAD_VOTE` requests naming a real seed as proposer to a quorum
    /// of seeds (removing the victim at `k`, admitting it at `k + 1`, admitting an endpoint
    /// where nothing listens), then, once they answered, the commits naming exactly the
    /// seeds asked.
    SolicitVotes,
    /// A `REGISTER_REQ` for the victim's endpoint at `MAX_INCARNATION`.
    RegisterHuge,
    /// A `REGISTER_REQ` for an endpoint where nothing listens.
    RegisterNowhere,
}

impl ForgeKind {
    /// Every kind, in order.
    pub const ALL: [ForgeKind; 9] = [
        ForgeKind::RemoveCurrent,
        ForgeKind::RemoveNext,
        ForgeKind::RemoveHuge,
        ForgeKind::AdmitNowhere,
        ForgeKind::AdmitBumped,
        ForgeKind::SyncEntries,
        ForgeKind::SolicitVotes,
        ForgeKind::RegisterHuge,
        ForgeKind::RegisterNowhere,
    ];

    /// The kinds that are one forged commit sync (what a lying seed pushes and puts in its
    /// anti-entropy replies).
    pub const COMMITS: [ForgeKind; 5] = [
        ForgeKind::RemoveCurrent,
        ForgeKind::RemoveNext,
        ForgeKind::RemoveHuge,
        ForgeKind::AdmitNowhere,
        ForgeKind::AdmitBumped,
    ];
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// When, in simulated ms from the start.
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
}

/// Everything a run depends on: the same config gives the same run, bit for bit.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The run seed: every random choice of the run derives from it.
    pub seed: u64,
    /// Seeds in the config.
    pub seeds: u32,
    /// Peers that join.
    pub peers: u32,
    /// Every node's settings.
    pub settings: Settings,
    /// The network.
    pub net: NetConfig,
    /// Peer `j` starts at `join_start_ms + j * join_window_ms / peers` (staggered joins let
    /// preferential attachment build a heavy-tailed overlay).
    pub join_start_ms: u64,
    /// Span over which peers join.
    pub join_window_ms: u64,
    /// Scheduled faults (any order; applied in time order, ties in list order).
    pub faults: Vec<Fault>,
    /// When faults stop: partitions heal, drop/dup/jitter return to the base network, crashed
    /// seeds restart, liars stop. Peers that are down stay down (they must be removed).
    /// `None`: no healing (and no liveness phase).
    pub heal_at_ms: Option<u64>,
    /// Check promises 5–7 after healing (needs `heal_at_ms`); the run then lasts at least
    /// until [`SimConfig::liveness_end_ms`].
    pub liveness: bool,
    /// Simulated time to run; `None` lets [`SimConfig::end_ms`] choose.
    pub duration_ms: Option<u64>,
    /// Check promises 1–4 after every event (off only for pure speed measurements).
    pub check_safety: bool,
    /// Stop at the first violation (the default: the first one is the bug report).
    pub stop_on_violation: bool,
    /// Seeds that lie (a minority: at most `(seeds - 1) / 2`), from the start: each stays a
    /// seed of the config and its node runs unchanged (it answers probes, runs its own
    /// rounds), but the simulator answers the vote requests and `SEED_CONFIRM`s sent to it
    /// with lies (yes to every vote; vouching for every fact, or now and then denying them
    /// all), adds forged entries to its `SEED_SYNC` replies, and pushes forged commit syncs
    /// from it to the other seeds every anti-entropy interval.
    pub lying_seeds: Vec<u32>,
    /// Lying seeds stop lying at `heal_at_ms` (then promises 6–7 hold at every live seed);
    /// else they lie to the end and promises 6–7 are checked among the honest seeds only.
    pub liars_stop_at_heal: bool,
    /// Application messages the peers publish (`None`: none).
    pub publishing: Option<Publishing>,
    /// Sybil peers and their attack (`None`: every peer is honest). See [`Sybils`].
    pub sybils: Option<Sybils>,
}

/// Sybil peers: admitted like any peer (each one's node runs unchanged, registers, answers
/// probes and keeps links of its own choosing), but the simulator answers what other peers
/// send it as its attack says, with the wire messages a real attacker could send. The
/// checker judges gossip delivery among the honest peers only (`honest_delivered_ratio`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sybils {
    /// Peer indices (`0..peers`), sorted.
    pub peers: Vec<u32>,
    /// What they do.
    pub attack: SybilAttack,
}

impl Sybils {
    /// A share `fraction` of `peers`, spread evenly over the join order.
    pub fn share(peers: u32, fraction: f64, attack: SybilAttack) -> Sybils {
        let count =
            ((f64::from(peers) * fraction.clamp(0.0, 1.0)).round() as u64).min(u64::from(peers));
        let peers = (0..u64::from(peers))
            .filter(|&j| {
                (j + 1) * count / u64::from(peers.max(1)) != j * count / u64::from(peers.max(1))
            })
            .map(|j| j as u32)
            .collect();
        Sybils { peers, attack }
    }
}

/// A Sybil attack on the overlay (the Gossipsub v1.1 evaluation's catalogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SybilAttack {
    /// Claim a huge degree (`PONG` says 65,535), accept every `HELLO`, ack every gossip as
    /// new and forward nothing, and answer the repair's messages `ERROR`, as a node of the
    /// original would.
    Degree,
}

impl SybilAttack {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SybilAttack::Degree => "degree",
        }
    }

    /// The attack named `name`.
    pub fn parse(name: &str) -> Option<SybilAttack> {
        match name {
            "degree" => Some(SybilAttack::Degree),
            _ => None,
        }
    }
}

/// Application messages published during a run: every peer that is up publishes one of
/// `bytes` bytes every `every_ms` from one interval after it joins, until `until_ms`. They
/// travel as the peers' own gossip does, and every promise about gossip covers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publishing {
    /// Each peer publishes this often.
    pub every_ms: u64,
    /// Payload size.
    pub bytes: u32,
    /// No publish at or after this time.
    pub until_ms: u64,
}

impl SimConfig {
    /// A fault-free cluster of `seeds` seeds and `peers` peers with default settings.
    pub fn new(seed: u64, seeds: u32, peers: u32) -> SimConfig {
        SimConfig {
            seed,
            seeds,
            peers,
            settings: Settings::default(),
            net: NetConfig::default(),
            join_start_ms: 0,
            join_window_ms: default_join_window_ms(peers),
            faults: Vec::new(),
            heal_at_ms: None,
            liveness: false,
            duration_ms: None,
            check_safety: true,
            stop_on_violation: true,
            lying_seeds: Vec::new(),
            liars_stop_at_heal: true,
            publishing: None,
            sybils: None,
        }
    }

    /// True if peer `j` (an index in `0..peers`) is a Sybil.
    pub fn is_sybil(&self, j: u32) -> bool {
        self.sybils
            .as_ref()
            .is_some_and(|s| s.peers.binary_search(&j).is_ok())
    }

    /// True if seed `i` is one of the lying seeds.
    pub fn is_lying_seed(&self, i: u32) -> bool {
        self.lying_seeds.contains(&i)
    }

    /// When the last peer has joined.
    pub fn joins_end_ms(&self) -> u64 {
        self.join_start_ms + self.join_window_ms
    }

    /// When peer `j` starts.
    pub fn join_at_ms(&self, j: u32) -> u64 {
        if self.peers == 0 {
            return self.join_start_ms;
        }
        self.join_start_ms + u64::from(j) * self.join_window_ms / u64::from(self.peers)
    }

    /// How long a lost message can weigh on a removal (promise 4): a live peer's removal is
    /// excused only if a message on its links was lost, stopped or late at most this long
    /// before. A removal needs the seeds' own probes of the peer to fail within a vote round
    /// before it commits, so losses that caused it are recent; twice a detection (see
    /// [`liveness_bound_ms`]) leaves room for a detector's slow suspicion and a retried round.
    pub fn loss_window_ms(&self) -> u64 {
        2 * detection_ms(&self.settings) + 4 * self.net.max_latency_ms()
    }

    /// The liveness bound after healing (see [`liveness_bound_ms`]).
    pub fn liveness_bound_ms(&self) -> u64 {
        liveness_bound_ms(&self.settings, self.seeds, self.peers, &self.net)
    }

    /// Gossips generated in `[window.0, window.1)` must reach every live peer connected to
    /// their origin by the end of the run (promise 5).
    pub fn gossip_check_window(&self) -> Option<(u64, u64)> {
        let heal = self.heal_at_ms?;
        if !self.liveness {
            return None;
        }
        let start = heal + self.liveness_bound_ms();
        Some((start, start + 2 * self.settings.gossip_interval_ms))
    }

    /// Gossips generated in `[window.0, window.1)`, the retention window before healing, must
    /// reach every live peer connected to their origin by the end of the run too (promise 5
    /// with gossip repair: copies lost while the faults lasted are sent again). `None` without
    /// repair or without a liveness phase.
    pub fn repair_check_window(&self) -> Option<(u64, u64)> {
        let heal = self.heal_at_ms?;
        if !self.liveness || !self.settings.gossip_repair {
            return None;
        }
        let retain_ms = gossip_core::peer::RETAIN_SECS * 1_000;
        Some((heal.saturating_sub(retain_ms), heal))
    }

    /// The end of the liveness phase: promises 6–7 are checked at `heal + bound`; the run goes
    /// on for two gossip intervals (gossips to check) and a flood time.
    pub fn liveness_end_ms(&self) -> Option<u64> {
        let (_, gen_end) = self.gossip_check_window()?;
        Some(gen_end + flood_time_ms(&self.settings, self.peers, &self.net))
    }

    /// How long the run lasts: `duration_ms` if set, else long enough for every peer to join,
    /// make all its gossip and see it spread (and for the liveness phase, if any).
    pub fn end_ms(&self) -> u64 {
        if let Some(d) = self.duration_ms {
            return d.max(self.liveness_end_ms().unwrap_or(0));
        }
        let s = &self.settings;
        let gossip_done = self.joins_end_ms()
            + s.register_timeout_ms
            + s.request_timeout_ms * 3
            + u64::from(s.max_gossip) * s.gossip_interval_ms
            + flood_time_ms(s, self.peers, &self.net);
        let faults = self.faults.iter().map(|f| f.at_ms).max().unwrap_or(0);
        gossip_done
            .max(faults + self.liveness_bound_ms())
            .max(self.liveness_end_ms().unwrap_or(0))
    }
}

/// Default join window: 10 ms per peer, at most 100 s.
pub fn default_join_window_ms(peers: u32) -> u64 {
    (u64::from(peers) * 10).min(100_000)
}

/// Time for a gossip to cross the overlay: every hop at most the worst latency; an overlay
/// built by preferential attachment has a diameter far below `2·log2(peers) + 4` hops.
pub fn flood_time_ms(_s: &Settings, peers: u32, net: &NetConfig) -> u64 {
    let hops = 2 * u64::from(32 - peers.max(1).leading_zeros()) + 4;
    hops * net.max_latency_ms().max(1) + 1_000
}

/// The liveness bound: after the network heals, within this many ms every crashed peer is
/// removed at every live seed (promise 6) and all live seeds hold the same Peer List with
/// every live registered peer in it (promise 7). Gossips made after it reach every live peer
/// connected to their origin (promise 5).
///
/// ```text
/// detect   = (probe_misses+1)·probe_interval + probe_timeout  a neighbour's probes miss
///                                                              (a round may skip it: its
///                                                              own PING just arrived)
///          + suspect_timeout                                   witnesses answer
///          + vote_timeout + request_timeout                    seed round, commit sync
/// repeat   = 2·detect                                          a first round may fail (a
///                                                              witness lost in the faults)
/// rejoin   = seeds·peer_list_refresh + register_timeout        a falsely removed peer learns
///            + register_retry_max + request_timeout            it from a seed (it asks each
///                                                              in turn) and registers again
///                                                              (after the longest backoff)
/// converge = (seeds + 1)·anti_entropy_interval                 every seed pulls every other
///            · ceil(peers / sync_entry_limit)                  in capped batches
/// repair   = 2·peer_list_refresh + 2·request_timeout           dropped links are replaced
///                                                              (a re-greeting may skip a
///                                                              link greeted from its end)
/// bound    = repeat + rejoin + converge + repair + 20·max_latency
/// ```
///
/// With the default settings, 5 seeds, 50 peers and a 5 ms network this is 113.3 s.
pub fn liveness_bound_ms(s: &Settings, seeds: u32, peers: u32, net: &NetConfig) -> u64 {
    let detect = detection_ms(s);
    let rejoin = u64::from(seeds) * s.peer_list_refresh_ms
        + s.register_timeout_ms
        + s.register_retry_max_ms
        + s.request_timeout_ms;
    let batches = u64::from(peers)
        .div_ceil(u64::from(s.sync_entry_limit.max(1)))
        .max(1);
    let converge = (u64::from(seeds) + 1) * s.anti_entropy_interval_ms * batches;
    // Two refreshes: a neighbour that greeted us just before dropping its half is re-greeted
    // at the second.
    let repair = 2 * s.peer_list_refresh_ms + 2 * s.request_timeout_ms;
    2 * detect + rejoin + converge + repair + 20 * net.max_latency_ms()
}

/// `detect` of [`liveness_bound_ms`]: from a crash to the removal's commit, at the most.
fn detection_ms(s: &Settings) -> u64 {
    // The first probe comes within two rounds (a neighbour's own PING lets one round skip
    // it); each miss is two silent tries, and a miss is probed again within half a round.
    let misses = u64::from(s.probe_misses.max(1));
    2 * s.probe_interval_ms
        + 2 * s.probe_timeout_ms
        + (misses - 1) * (s.probe_interval_ms / 2 + 2 * s.probe_timeout_ms)
        + s.suspect_timeout_ms
        + s.vote_timeout_ms
        + s.request_timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_with_defaults_is_as_documented() {
        let b = liveness_bound_ms(&Settings::default(), 5, 50, &NetConfig::default());
        assert_eq!(b, 113_300);
    }

    #[test]
    fn loss_window_with_defaults_is_as_documented() {
        assert_eq!(SimConfig::new(1, 5, 50).loss_window_ms(), 18_420);
    }

    #[test]
    fn joins_are_staggered_over_the_window() {
        let mut c = SimConfig::new(1, 3, 100);
        c.join_window_ms = 1_000;
        assert_eq!(c.join_at_ms(0), 0);
        assert_eq!(c.join_at_ms(50), 500);
        assert_eq!(c.join_at_ms(99), 990);
        assert!(c.end_ms() > c.joins_end_ms() + 50_000);
    }
}
