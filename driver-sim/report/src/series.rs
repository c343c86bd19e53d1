//! A run over time, for `sim --html` and `sim --json FILE`: per-second samples of the cluster
//! ([`Recorder`]), and after the run the fault timeline, every crash's detection and the
//! promises' outcome ([`Recording`]).
//!
//! Little here runs per event. The recorder looks at the simulator between steps of
//! [`Sim::run_observed`] (the ghost state the checker keeps anyway); what it needs of every
//! event, requests by kind and when gossip spread ([`Spread`]), a tap it adds to the run
//! ([`Recorder::attach`]) counts. A run without a report asked for pays nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use gossip_core::msg::{Endpoint, Message, Status};
use gossip_core::Event;
use gossip_driver_sim::checker::Checker;
use gossip_driver_sim::{Actor, FaultKind, NodeRef, PartitionKind, Report, Sim, SimConfig, Tap};
use serde::Serialize;

/// The request kinds counted per second (wire type names); the last collects any other.
pub const REQUEST_KINDS: [&str; 15] = [
    "GOSSIP_MSG",
    "PING",
    "SUSPECT_REQ",
    "HELLO",
    "PEER_LIST_REQ",
    "REGISTER_REQ",
    "REGISTER_VOTE",
    "REGISTER_COMMIT",
    "DEAD_REPORT",
    "SEED_DEAD_VOTE",
    "SEED_DEAD_COMMIT",
    "SEED_SYNC",
    "SEED_CONFIRM",
    "STATUS_REQ",
    "other",
];

/// The [`REQUEST_KINDS`] index of `msg`.
pub fn request_kind(msg: &Message) -> usize {
    let name = msg.type_name();
    REQUEST_KINDS
        .iter()
        .position(|k| *k == name)
        .unwrap_or(REQUEST_KINDS.len() - 1)
}

/// The promises the simulator checks (`docs/SIMULATOR.md`, "The promises"), in a few words
/// each.
pub const PROMISES: [(u8, &str); 9] = [
    (
        1,
        "every Peer List change is backed by a quorum of seeds' yes-votes",
    ),
    (
        2,
        "a peer is reported dead only after a peer-level majority said dead",
    ),
    (
        3,
        "no gossip is delivered twice to a peer, none that nobody made",
    ),
    (
        4,
        "no live peer is removed unless its links lost messages just before",
    ),
    (
        5,
        "every gossip of a live peer reaches every live peer connected to it",
    ),
    (
        6,
        "a crashed peer is removed at every live seed (after healing)",
    ),
    (
        7,
        "all live seeds hold the same Peer List, listing every live peer",
    ),
    (
        8,
        "nothing is admitted that did not answer at its address (adversaries)",
    ),
    (9, "no incarnation jumps (adversaries)"),
];

/// What [`Recorder::attach`]'s tap keeps of every event.
#[derive(Debug, Default)]
struct Tally {
    /// Requests nodes sent, by [`REQUEST_KINDS`] index.
    sent_by_kind: Vec<u64>,
    /// When and how far each gossip spread.
    spread: Spread,
}

/// The tap that fills a [`Tally`] shared with its recorder.
struct TallyTap(Rc<RefCell<Tally>>);

impl Tap for TallyTap {
    fn on_send(&mut self, _now: u64, _from: u32, msg: &Message) {
        self.0.borrow_mut().sent_by_kind[request_kind(msg)] += 1;
    }

    fn on_event(&mut self, now: u64, node: u32, _: Endpoint, ev: &Event, checker: &Checker) {
        if let Event::GossipFirstReceived { text, hops, .. } = ev {
            (self.0.borrow_mut().spread).received(checker, now, node, text, *hops);
        }
    }
}

/// Per-second samples, one per bucket: bucket `i` ends at `t_s[i]` simulated seconds (every
/// whole second, and the end of the run). Counts are cumulative unless named `_per_s`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// The end of each bucket, in simulated seconds.
    pub t_s: Vec<f64>,
    /// Peers up.
    pub peers_up: Vec<u32>,
    /// Peers up with at least one overlay neighbour.
    pub peers_connected: Vec<u32>,
    /// Fewest peers `Alive` in a live honest seed's Peer List (`None`: no such seed is up).
    pub alive_at_seeds_min: Vec<Option<u32>>,
    /// Most peers `Alive` in a live honest seed's Peer List.
    pub alive_at_seeds_max: Vec<Option<u32>>,
    /// Gossip messages generated so far.
    pub gossip_generated: Vec<u64>,
    /// First-time gossip deliveries so far.
    pub first_deliveries: Vec<u64>,
    /// Deliveries owed so far: each gossip, to the peers that had a neighbour when it was
    /// made and are still up when the second it was made in ends, its origin excepted.
    pub owed: Vec<u64>,
    /// `first_deliveries / owed` (`None` before any gossip). It dips as each new gossip is
    /// owed to everyone and climbs as it spreads; deliveries to peers that joined after a
    /// gossip was made can lift it a little above 1.
    pub delivered_ratio: Vec<Option<f64>>,
    /// Requests sent per second in the bucket, by wire type (kinds never sent are left out).
    pub requests_per_s: BTreeMap<String, Vec<f64>>,
    /// Messages lost per second in the bucket (dropped, stopped by a partition, or late).
    pub lost_per_s: Vec<f64>,
}

/// Takes the samples of a [`Series`] while a run goes on.
#[derive(Debug, Default)]
pub struct Recorder {
    /// What the tap counted of every event.
    tally: Rc<RefCell<Tally>>,
    series: Series,
    /// Simulated ms of the last sample.
    last_ms: u64,
    /// The cumulative counts at the last sample.
    last_kinds: Vec<u64>,
    last_lost: u64,
    /// Gossips already owed.
    owed_gossips: usize,
    owed: u64,
}

impl Recorder {
    /// Sample interval (simulated ms) the recorder expects between calls of
    /// [`Recorder::observe`]; calls in between are ignored.
    pub const EVERY_MS: u64 = 1_000;

    /// A recorder for `sim`, which has not started: it adds the tap that counts requests by
    /// kind and follows the spread of gossip.
    pub fn attach<A: Actor>(sim: &mut Sim<A>) -> Recorder {
        let tally = Rc::new(RefCell::new(Tally {
            sent_by_kind: vec![0; REQUEST_KINDS.len()],
            spread: Spread::new(sim.config()),
        }));
        sim.add_tap(Box::new(TallyTap(Rc::clone(&tally))));
        Recorder {
            tally,
            ..Recorder::default()
        }
    }

    /// Looks at `sim`: a sample if a whole second passed since the last one, or if the run
    /// reached its end (`at_end`).
    pub fn observe<A: Actor>(&mut self, sim: &Sim<A>) {
        let now = sim.now();
        let at_end = now >= sim.config().end_ms();
        if now <= self.last_ms || (now - self.last_ms < Self::EVERY_MS && !at_end) {
            return;
        }
        let dur_s = (now - self.last_ms) as f64 / 1000.0;
        self.last_ms = now;
        let c = sim.checker();
        let s = &mut self.series;
        s.t_s.push(now as f64 / 1000.0);
        let peers = c.peers();
        let up = peers.iter().filter(|p| p.alive).count() as u32;
        let connected = peers
            .iter()
            .filter(|p| p.alive && p.connected_since.is_some())
            .count() as u32;
        s.peers_up.push(up);
        s.peers_connected.push(connected);
        let alive: Vec<u32> = (0..sim.config().seeds)
            .filter(|&i| c.seed_up(i) && !c.is_liar(i))
            .map(|i| {
                let pl = c.seed_pl(i);
                pl.values().filter(|(_, st)| *st == Status::Alive).count() as u32
            })
            .collect();
        s.alive_at_seeds_min.push(alive.iter().min().copied());
        s.alive_at_seeds_max.push(alive.iter().max().copied());
        let gossips = c.gossips().len();
        if gossips > self.owed_gossips {
            // Owed to the peers up now that had a neighbour when the gossip was made.
            let mut since: Vec<u64> = peers
                .iter()
                .filter(|p| p.alive)
                .filter_map(|p| p.connected_since)
                .collect();
            since.sort_unstable();
            let seeds = sim.config().seeds;
            for g in &c.gossips()[self.owed_gossips..] {
                let mut owed = since.partition_point(|&t| t <= g.gen_at) as u64;
                let origin = peers.get(g.origin.wrapping_sub(seeds) as usize);
                if origin
                    .is_some_and(|o| o.alive && o.connected_since.is_some_and(|t| t <= g.gen_at))
                {
                    owed = owed.saturating_sub(1);
                }
                self.owed += owed;
            }
            self.owed_gossips = gossips;
        }
        let delivered = c.first_deliveries();
        s.gossip_generated.push(gossips as u64);
        s.first_deliveries.push(delivered);
        s.owed.push(self.owed);
        s.delivered_ratio
            .push((self.owed > 0).then(|| delivered as f64 / self.owed as f64));
        let buckets = s.t_s.len();
        let tally = self.tally.borrow();
        {
            let kinds = &tally.sent_by_kind;
            self.last_kinds.resize(kinds.len(), 0);
            for (k, (&now_n, last_n)) in kinds.iter().zip(&mut self.last_kinds).enumerate() {
                let sent = now_n.saturating_sub(*last_n);
                *last_n = now_n;
                if sent == 0 && !s.requests_per_s.contains_key(REQUEST_KINDS[k]) {
                    continue;
                }
                let v = s
                    .requests_per_s
                    .entry(REQUEST_KINDS[k].to_string())
                    .or_default();
                v.resize(buckets - 1, 0.0);
                v.push(sent as f64 / dur_s);
            }
        }
        for v in s.requests_per_s.values_mut() {
            v.resize(buckets, 0.0);
        }
        let lost = sim.messages_lost();
        s.lost_per_s
            .push((lost - self.last_lost.min(lost)) as f64 / dur_s);
        self.last_lost = lost;
    }

    /// The series so far.
    pub fn series(&self) -> &Series {
        &self.series
    }

    /// The recording of a finished run (after [`Sim::run_observed`] returned `report`).
    pub fn finish<A: Actor>(self, sim: &Sim<A>, report: &Report, command: &str) -> Recording {
        let cfg = sim.config();
        let c = sim.checker();
        let end_ms = sim.now();
        let by = c.violations_by_promise();
        let adversaries = !cfg.lying_seeds.is_empty()
            || cfg
                .faults
                .iter()
                .any(|f| matches!(f.kind, FaultKind::Forge { .. }));
        let promises = PROMISES
            .iter()
            .map(|&(n, what)| {
                let judged = c.enabled()
                    && match n {
                        5 => c.delivery_judged(end_ms),
                        6 | 7 => sim.liveness_checked(),
                        8 | 9 => adversaries,
                        _ => true,
                    };
                let violations = by[usize::from(n)];
                PromiseOutcome {
                    promise: n,
                    what,
                    judged,
                    violations,
                    outcome: if violations > 0 {
                        "violated"
                    } else if judged {
                        "held"
                    } else {
                        "not judged"
                    },
                }
            })
            .collect();
        let detection = c
            .crashes()
            .iter()
            .map(|r| Detection {
                peer: sim.endpoint(NodeRef::Peer(r.peer)).to_string(),
                crashed_at_ms: r.at_ms,
                removed_after_ms: r.removed_at.map(|t| t.saturating_sub(r.at_ms)),
            })
            .collect();
        let mut degrees = BTreeMap::new();
        for (j, p) in c.peers().iter().enumerate() {
            if p.alive {
                *degrees.entry(c.degree(j) as u32).or_insert(0u32) += 1;
            }
        }
        let (coverage, hops_histogram) = {
            let sp = &self.tally.borrow().spread;
            (sp.coverage(c), sp.hops().to_vec())
        };
        Recording {
            report: report.clone(),
            command: command.to_string(),
            config: ConfigSummary::of(cfg, end_ms),
            promises,
            start_failures: by[0],
            series: self.series,
            timeline: Timeline::of(cfg, end_ms),
            detection,
            degree_histogram: degrees.into_iter().collect(),
            coverage,
            hops_histogram,
        }
    }
}

/// One promise's outcome in a run.
#[derive(Clone, Debug, Serialize)]
pub struct PromiseOutcome {
    /// Its number in `docs/SIMULATOR.md`, "The promises".
    pub promise: u8,
    /// What it says, in a few words.
    pub what: &'static str,
    /// Whether the run judged it: checks on, and the run reached where it is judged (5: the
    /// end of its check window; 6–7: the liveness bound; 8–9: adversaries present).
    pub judged: bool,
    /// Times it was found broken.
    pub violations: u64,
    /// `held`, `violated` or `not judged`.
    pub outcome: &'static str,
}

/// One crash of a peer and how long its removal took.
#[derive(Clone, Debug, Serialize)]
pub struct Detection {
    /// The crashed peer.
    pub peer: String,
    /// When it crashed (simulated ms).
    pub crashed_at_ms: u64,
    /// Ms from the crash to the first quorum removal (`None`: not removed by the end).
    pub removed_after_ms: Option<u64>,
}

/// The run's settings as a report shows them.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigSummary {
    /// The run seed.
    pub seed: u64,
    /// Seeds.
    pub seeds: u32,
    /// Peers.
    pub peers: u32,
    /// Gossip messages each peer makes.
    pub max_gossip: u32,
    /// Ms between a peer's gossip messages.
    pub gossip_interval_ms: u64,
    /// Ms between a peer's probes.
    pub probe_interval_ms: u64,
    /// The overlay degree a peer keeps at least (where the power-law fit starts).
    pub min_degree: u32,
    /// One-way latency range of the base network (ms).
    pub latency_ms: (u64, u64),
    /// Ms over which peers join.
    pub join_window_ms: u64,
    /// When faults stop (ms), if there are faults.
    pub heal_at_ms: Option<u64>,
    /// When promises 6–7 must hold by (ms), if the liveness phase runs.
    pub liveness_by_ms: Option<u64>,
    /// How long the run lasted (simulated ms).
    pub end_ms: u64,
    /// Faults scheduled (before healing).
    pub faults: usize,
    /// Lying seeds (seed indices).
    pub lying_seeds: Vec<u32>,
    /// Whether promises were judged.
    pub checks: bool,
}

impl ConfigSummary {
    fn of(cfg: &SimConfig, end_ms: u64) -> ConfigSummary {
        let heal = cfg.heal_at_ms;
        ConfigSummary {
            seed: cfg.seed,
            seeds: cfg.seeds,
            peers: cfg.peers,
            max_gossip: cfg.settings.max_gossip,
            gossip_interval_ms: cfg.settings.gossip_interval_ms,
            probe_interval_ms: cfg.settings.probe_interval_ms,
            min_degree: cfg.settings.min_degree,
            latency_ms: (cfg.net.latency_min_ms, cfg.net.latency_max_ms),
            join_window_ms: cfg.join_window_ms,
            heal_at_ms: heal,
            liveness_by_ms: heal
                .filter(|_| cfg.liveness)
                .map(|h| h + cfg.liveness_bound_ms()),
            end_ms,
            faults: cfg
                .faults
                .iter()
                .filter(|f| heal.is_none_or(|h| f.at_ms < h))
                .count(),
            lying_seeds: cfg.lying_seeds.clone(),
            checks: cfg.check_safety,
        }
    }
}

/// A stretch of time a fault lasted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    /// `partition`, `network` (drop, duplication or jitter raised) or `seed down`.
    pub kind: &'static str,
    /// What it was, in words.
    pub label: String,
    /// Start (simulated ms).
    pub from_ms: u64,
    /// End (simulated ms).
    pub to_ms: u64,
}

/// A moment something happened to one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moment {
    /// `peer crash`, `peer restart`, `slow host`, `host fast again`, `lie` or `forgery`.
    pub kind: &'static str,
    /// When (simulated ms).
    pub at_ms: u64,
}

/// The fault schedule as windows and moments.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timeline {
    /// Partitions, network faults and seeds down.
    pub windows: Vec<Window>,
    /// Peer crashes and restarts, lies and forgeries.
    pub moments: Vec<Moment>,
}

impl Timeline {
    /// The faults of `cfg` that happened in a run that ended at `end_ms`.
    pub fn of(cfg: &SimConfig, end_ms: u64) -> Timeline {
        let stop = cfg.heal_at_ms.unwrap_or(end_ms).min(end_ms);
        let mut faults: Vec<_> = cfg.faults.iter().filter(|f| f.at_ms < stop).collect();
        faults.sort_by_key(|f| f.at_ms);
        let mut t = Timeline::default();
        let mut partition: Option<(u64, String)> = None;
        let mut seed_down: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut drop, mut dup, mut jitter) = (cfg.net.drop, cfg.net.dup, cfg.net.jitter_ms);
        let mut net_from: Option<u64> = None;
        let close_net = |t: &mut Timeline, at: u64, from: &mut Option<u64>, what: String| {
            if let Some(f) = from.take() {
                if at > f {
                    t.windows.push(Window {
                        kind: "network",
                        label: what,
                        from_ms: f,
                        to_ms: at,
                    });
                }
            }
        };
        for f in faults {
            let at = f.at_ms;
            match &f.kind {
                FaultKind::Crash(NodeRef::Peer(_)) => t.moments.push(Moment {
                    kind: "peer crash",
                    at_ms: at,
                }),
                FaultKind::Restart(NodeRef::Peer(_)) => t.moments.push(Moment {
                    kind: "peer restart",
                    at_ms: at,
                }),
                FaultKind::Leave(NodeRef::Peer(_)) => t.moments.push(Moment {
                    kind: "peer leave",
                    at_ms: at,
                }),
                FaultKind::Leave(NodeRef::Seed(s)) => {
                    seed_down.entry(*s).or_insert(at);
                }
                FaultKind::Crash(NodeRef::Seed(s)) => {
                    seed_down.entry(*s).or_insert(at);
                }
                FaultKind::Restart(NodeRef::Seed(s)) => {
                    if let Some(from) = seed_down.remove(s) {
                        t.windows.push(seed_window(*s, from, at));
                    }
                }
                FaultKind::Partition(p) => {
                    if let Some((from, label)) = partition.take() {
                        t.windows.push(partition_window(label, from, at));
                    }
                    let kind = match p.kind {
                        PartitionKind::Symmetric => "symmetric",
                        PartitionKind::OneWay => "one-way",
                        PartitionKind::Bridge { .. } => "bridged",
                    };
                    partition = Some((at, kind.to_string()));
                }
                FaultKind::HealPartition => {
                    if let Some((from, label)) = partition.take() {
                        t.windows.push(partition_window(label, from, at));
                    }
                }
                FaultKind::SetDrop(_) | FaultKind::SetDup(_) | FaultKind::SetJitter(_) => {
                    let before = net_label(drop, dup, jitter);
                    match f.kind {
                        FaultKind::SetDrop(d) => drop = d,
                        FaultKind::SetDup(d) => dup = d,
                        FaultKind::SetJitter(j) => jitter = j,
                        _ => {}
                    }
                    let after = net_label(drop, dup, jitter);
                    if after != before {
                        if let Some(b) = before {
                            close_net(&mut t, at, &mut net_from, b);
                        }
                        if after.is_some() {
                            net_from = Some(at);
                        }
                    }
                }
                FaultKind::Slow { extra_ms, .. } => t.moments.push(Moment {
                    kind: if *extra_ms > 0 {
                        "slow host"
                    } else {
                        "host fast again"
                    },
                    at_ms: at,
                }),
                FaultKind::Lie { .. } => t.moments.push(Moment {
                    kind: "lie",
                    at_ms: at,
                }),
                FaultKind::ReplayCommits { .. } => t.moments.push(Moment {
                    kind: "replay",
                    at_ms: at,
                }),
                FaultKind::Forge { .. } => t.moments.push(Moment {
                    kind: "forgery",
                    at_ms: at,
                }),
            }
        }
        // Healing ends every fault but a crashed peer's.
        if let Some(label) = net_label(drop, dup, jitter) {
            close_net(&mut t, stop, &mut net_from, label);
        }
        if let Some((from, label)) = partition {
            t.windows.push(partition_window(label, from, stop));
        }
        for (s, from) in seed_down {
            t.windows.push(seed_window(s, from, stop));
        }
        t.windows.retain(|w| w.to_ms > w.from_ms);
        t.windows.sort_by_key(|w| (w.from_ms, w.to_ms));
        t
    }
}

fn partition_window(kind: String, from_ms: u64, to_ms: u64) -> Window {
    Window {
        kind: "partition",
        label: format!("{kind} partition"),
        from_ms,
        to_ms,
    }
}

fn seed_window(seed: u32, from_ms: u64, to_ms: u64) -> Window {
    Window {
        kind: "seed down",
        label: format!("seed {seed} down"),
        from_ms,
        to_ms,
    }
}

/// The network fault in force, in words (`None`: none).
fn net_label(drop: f64, dup: f64, jitter: u64) -> Option<String> {
    let mut parts = Vec::new();
    if drop > 0.0 {
        parts.push(format!("drop {:.0} %", drop * 100.0));
    }
    if dup > 0.0 {
        parts.push(format!("dup {:.0} %", dup * 100.0));
    }
    if jitter > 0 {
        parts.push(format!("jitter {jitter} ms"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Everything `sim --html` shows and `sim --json FILE` writes: the report's numbers, the
/// settings, the promises, the series, the fault timeline, the detections and the final
/// degree distribution.
#[derive(Clone, Debug, Serialize)]
pub struct Recording {
    /// The report of the run (its fields are at the top level of the JSON).
    #[serde(flatten)]
    pub report: Report,
    /// The command line the run came from (empty if not given).
    pub command: String,
    /// The settings.
    pub config: ConfigSummary,
    /// Promises 1–9.
    pub promises: Vec<PromiseOutcome>,
    /// Nodes that failed to start (counted as violations, promise "0").
    pub start_failures: u64,
    /// The per-second samples.
    pub series: Series,
    /// The faults over time.
    pub timeline: Timeline,
    /// Every peer crash.
    pub detection: Vec<Detection>,
    /// `(degree, live peers with it)` in the final overlay, by degree.
    pub degree_histogram: Vec<(u32, u32)>,
    /// How fast gossip reached the peers it was owed to.
    pub coverage: Coverage,
    /// First-time gossip deliveries by the links they travelled: entry `h` counts those of
    /// `h` hops (entry [`Spread::MAX_HOPS`] also those of more). Its sum is the run's
    /// first-time deliveries (a repeat that breaks promise 3 would count here too).
    pub hops_histogram: Vec<u64>,
}

/// When gossip spread, kept during a run for the report (by the tap
/// [`Recorder::attach`] adds): the hop count of every first-time delivery, and for a sample of
/// the gossips, when each peer first got it.
///
/// Memory is bounded: every `stride`-th gossip (by the order they were made) is followed,
/// at most `SPREAD_CELLS / peers` of them, with one `u32` per peer each, 16 MiB at most
/// (10,000 peers: 419 gossips). A run whose gossips all fit is followed in full.
#[derive(Debug, Default)]
pub struct Spread {
    seeds: u32,
    peers: usize,
    /// Gossip ids that are multiples of `stride` are followed ...
    stride: u32,
    /// ... the first `cap` of them.
    cap: usize,
    /// Per followed gossip (`id / stride`): per peer index, ms from its making to that peer's
    /// latest first-time receipt (`u32::MAX`: none). Allocated at its first receipt.
    got: Vec<Vec<u32>>,
    /// First-time deliveries by hops.
    hops: Vec<u64>,
}

/// At most this many (gossip, peer) cells are kept by a [`Spread`].
const SPREAD_CELLS: usize = 4 << 20;

/// Points of the coverage curves.
pub const COVERAGE_POINTS: usize = 100;

impl Coverage {
    /// Offsets are log-spaced when the last delivery came this many times later than the
    /// median gossip reached half its peers.
    pub const LOG_SPAN: f64 = 20.0;
}

impl Spread {
    /// Hop counts from here on share the last bucket (the count comes off the wire).
    pub const MAX_HOPS: u32 = 1_000;

    /// A record for a run of `cfg`, empty.
    pub fn new(cfg: &SimConfig) -> Spread {
        let peers = cfg.peers as usize;
        let cap = (SPREAD_CELLS / peers.max(1)).max(1);
        let expected = peers.saturating_mul(cfg.settings.max_gossip as usize);
        let stride = u32::try_from(expected.div_ceil(cap).max(1)).unwrap_or(u32::MAX);
        Spread {
            seeds: cfg.seeds,
            peers,
            stride,
            cap,
            got: Vec::new(),
            hops: Vec::new(),
        }
    }

    /// Node `node` received gossip `text` first-time at `now`, `hops` links from its origin
    /// (after the checker `c` was told).
    pub fn received(&mut self, c: &Checker, now: u64, node: u32, text: &str, hops: u32) {
        let Some(j) = node
            .checked_sub(self.seeds)
            .map(|j| j as usize)
            .filter(|&j| j < self.peers)
        else {
            return;
        };
        let Some(id) = c.gossip_id(text) else {
            return;
        };
        let h = hops.min(Self::MAX_HOPS) as usize;
        if self.hops.len() <= h {
            self.hops.resize(h + 1, 0);
        }
        self.hops[h] += 1;
        if id % self.stride != 0 {
            return;
        }
        let k = (id / self.stride) as usize;
        let Some(g) = c.gossips().get(id as usize).filter(|_| k < self.cap) else {
            return;
        };
        if self.got.len() <= k {
            self.got.resize_with(k + 1, Vec::new);
        }
        let row = &mut self.got[k];
        if row.is_empty() {
            *row = vec![u32::MAX; self.peers];
        }
        let delay = now.saturating_sub(g.gen_at).min(u64::from(u32::MAX - 1));
        row[j] = delay as u32;
    }

    /// First-time deliveries by hops (see [`Recording::hops_histogram`]).
    pub fn hops(&self) -> &[u64] {
        &self.hops
    }

    /// The coverage of the followed gossips at the end of a run (`c`: its checker). A gossip
    /// counts if its origin is up at the end in the instance that made it and it is owed to
    /// some peer; it is owed to the live peers whose current instance had a neighbour when it
    /// was made, its origin excepted (as in [`crate::Report::delivered_ratio`], but without
    /// its restriction to the origin's overlay component), and a peer holds it if its current
    /// instance got it.
    pub fn coverage(&self, c: &Checker) -> Coverage {
        let peers = c.peers();
        let gossips = c.gossips();
        let mut cov = Coverage {
            gossips_made: gossips.len() as u64,
            ..Coverage::default()
        };
        // Per counted gossip: (owed, sorted delays of the owed peers that hold it).
        let mut each: Vec<(usize, Vec<u32>)> = Vec::new();
        let stride = self.stride as usize;
        for (k, id) in (0..gossips.len())
            .step_by(stride)
            .take(self.cap)
            .enumerate()
        {
            cov.gossips_sampled += 1;
            let g = &gossips[id];
            let o = g.origin.wrapping_sub(self.seeds) as usize;
            if !peers
                .get(o)
                .is_some_and(|p| p.alive && p.life == g.origin_life)
            {
                continue;
            }
            let row = self.got.get(k).map_or(&[][..], Vec::as_slice);
            let bits = c.receivers(id);
            let mut owed = 0;
            let mut delays = Vec::new();
            for (r, p) in peers.iter().enumerate() {
                if r == o || !p.alive || p.connected_since.is_none_or(|t| t > g.gen_at) {
                    continue;
                }
                owed += 1;
                let has = bits.get(r / 64).is_some_and(|w| (w >> (r % 64)) & 1 == 1);
                match row.get(r) {
                    Some(&d) if has && d != u32::MAX => delays.push(d),
                    _ => {}
                }
            }
            if owed == 0 {
                continue;
            }
            delays.sort_unstable();
            cov.owed += owed as u64;
            cov.delivered += delays.len() as u64;
            each.push((owed, delays));
        }
        cov.gossips_counted = each.len() as u64;
        let n = each.len();
        let Some(hi) = each.iter().filter_map(|(_, d)| d.last()).max().copied() else {
            // Nothing delivered: the final shares are all 0 (if anything was owed).
            if n > 0 {
                cov.final_median = Some(0.0);
                cov.final_worst = Some(0.0);
            }
            return cov;
        };
        let lo = each
            .iter()
            .filter_map(|(_, d)| d.first())
            .min()
            .copied()
            .unwrap_or(hi)
            .max(1);
        let hi = hi.max(lo);
        // The median is the lower middle: the [(n - 1) / 2]-th smallest share.
        let mid = (n - 1) / 2;
        // When a share `q` is reached: per gossip, the delay of its ceil(q × owed)-th holder.
        // The median curve reaches q when n - mid gossips did; the worst when all did.
        let reached = |q: f64| -> (Option<u64>, Option<u64>) {
            let mut at: Vec<Option<u32>> = each
                .iter()
                .map(|(owed, d)| {
                    // The fewest holders whose share is q or more (`share >= q`
                    // as the curves test it, without rounding up past a whole count).
                    let need = (q * *owed as f64 - 1e-9).ceil().max(1.0) as usize;
                    d.get(need - 1).copied()
                })
                .collect();
            // Not reached sorts last.
            at.sort_by_key(|a| (a.is_none(), a.unwrap_or(0)));
            let med = at[n - 1 - mid].map(u64::from);
            let worst = at[n - 1].map(u64::from);
            (med, worst)
        };
        (cov.median_50_ms, cov.worst_50_ms) = reached(0.5);
        (cov.median_99_ms, cov.worst_99_ms) = reached(0.99);
        // Offsets in whole ms, each once: from 0 to the last delivery, or, when the last came
        // more than [`Coverage::LOG_SPAN`] times later than the median gossip reached half
        // its peers (a long tail), log-spaced from the first delivery to the last.
        let typical = cov
            .median_50_ms
            .map_or(lo, |t| u32::try_from(t).unwrap_or(hi))
            .max(1);
        cov.log_t = f64::from(hi) > Coverage::LOG_SPAN * f64::from(typical);
        let last = (COVERAGE_POINTS - 1) as f64;
        let mut ts: Vec<u32> = (0..COVERAGE_POINTS)
            .map(|i| {
                let f = i as f64 / last;
                if cov.log_t {
                    (f64::from(lo) * (f64::from(hi) / f64::from(lo)).powf(f)).round() as u32
                } else {
                    (f64::from(hi) * f).round() as u32
                }
            })
            .map(|t| t.min(hi))
            .collect();
        ts.dedup();
        let mut shares = vec![0.0; n];
        for &t in &ts {
            for (s, (owed, d)) in shares.iter_mut().zip(&each) {
                *s = d.partition_point(|&x| x <= t) as f64 / *owed as f64;
            }
            shares.sort_by(f64::total_cmp);
            cov.t_ms.push(u64::from(t));
            cov.median.push(shares[mid]);
            cov.worst.push(shares[0]);
        }
        let mut finals: Vec<f64> = each
            .iter()
            .map(|(owed, d)| d.len() as f64 / *owed as f64)
            .collect();
        finals.sort_by(f64::total_cmp);
        cov.final_median = Some(finals[mid]);
        cov.final_worst = Some(finals[0]);
        cov
    }
}

/// How fast gossip reached the peers owed it (see [`Spread::coverage`]): per followed gossip,
/// the share of the peers owed it that hold it, against ms since it was made; the median and
/// the fewest over the gossips at each of up to [`COVERAGE_POINTS`] log-spaced offsets.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    /// Gossips made in the run.
    pub gossips_made: u64,
    /// Gossips followed (a deterministic sample: every k-th made).
    pub gossips_sampled: u64,
    /// Of those, the gossips counted (origin up at the end, owed to some peer).
    pub gossips_counted: u64,
    /// Deliveries owed, over the counted gossips.
    pub owed: u64,
    /// Of those, made.
    pub delivered: u64,
    /// Whether `t_ms` is log-spaced (from the first delivery to the last: the last came more
    /// than [`Coverage::LOG_SPAN`] times later than `median_50_ms`) rather than evenly spaced
    /// from 0 to the last delivery.
    pub log_t: bool,
    /// Ms since a gossip was made, ascending.
    pub t_ms: Vec<u64>,
    /// The median share over the counted gossips at each offset.
    pub median: Vec<f64>,
    /// The smallest share at each offset.
    pub worst: Vec<f64>,
    /// The median share at the end of the run (`None`: no gossip counted).
    pub final_median: Option<f64>,
    /// The smallest share at the end of the run.
    pub final_worst: Option<f64>,
    /// Ms after which the median share reached 50 % (`None`: never).
    pub median_50_ms: Option<u64>,
    /// Ms after which the median share reached 99 %.
    pub median_99_ms: Option<u64>,
    /// Ms after which every counted gossip had reached 50 %.
    pub worst_50_ms: Option<u64>,
    /// Ms after which every counted gossip had reached 99 %.
    pub worst_99_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_driver_sim::{Fault, Partition, Split};

    fn fault(at_ms: u64, kind: FaultKind) -> Fault {
        Fault { at_ms, kind }
    }

    #[test]
    fn every_request_kind_has_its_own_bucket() {
        let kind = |m: &Message| REQUEST_KINDS[request_kind(m)];
        assert_eq!(kind(&Message::StatusReq), "STATUS_REQ");
        let plr = Message::PeerListReq {
            requester: String::new(),
        };
        assert_eq!(kind(&plr), "PEER_LIST_REQ");
        assert_eq!(kind(&Message::DeadCommitAck), "SEED_DEAD_COMMIT");
        assert_eq!(kind(&Message::error("x")), "other");
    }

    #[test]
    fn the_timeline_pairs_each_fault_with_its_end() {
        let mut cfg = SimConfig::new(1, 3, 10);
        let part = Partition {
            split: Split::Random {
                fraction: 0.3,
                salt: 1,
            },
            kind: PartitionKind::Symmetric,
        };
        cfg.faults = vec![
            fault(5_000, FaultKind::SetDrop(0.1)),
            fault(6_000, FaultKind::Partition(part)),
            fault(7_000, FaultKind::Crash(NodeRef::Seed(1))),
            fault(8_000, FaultKind::Crash(NodeRef::Peer(3))),
            fault(9_000, FaultKind::HealPartition),
            fault(9_500, FaultKind::Restart(NodeRef::Peer(3))),
            fault(30_000, FaultKind::Crash(NodeRef::Peer(4))),
        ];
        cfg.heal_at_ms = Some(20_000);
        let t = Timeline::of(&cfg, 50_000);
        let w = |kind, label: &str, from_ms, to_ms| Window {
            kind,
            label: label.to_string(),
            from_ms,
            to_ms,
        };
        assert_eq!(
            t.windows,
            vec![
                w("network", "drop 10 %", 5_000, 20_000),
                w("partition", "symmetric partition", 6_000, 9_000),
                w("seed down", "seed 1 down", 7_000, 20_000),
            ]
        );
        // The crash after healing never happens.
        let kinds: Vec<_> = t.moments.iter().map(|m| (m.kind, m.at_ms)).collect();
        assert_eq!(kinds, vec![("peer crash", 8_000), ("peer restart", 9_500)]);
    }

    #[test]
    fn a_spread_follows_a_bounded_sample_of_the_gossips() {
        let mut cfg = SimConfig::new(1, 5, 10_000);
        cfg.settings.max_gossip = 10;
        let s = Spread::new(&cfg);
        assert!(s.cap * s.peers <= SPREAD_CELLS);
        assert_eq!(s.cap, 419);
        // 100,000 gossips expected, every 239th followed: 419 of them.
        assert_eq!(s.stride, 239);
        assert_eq!(100_000usize.div_ceil(s.stride as usize), s.cap);
        // A small run is followed in full.
        let mut cfg = SimConfig::new(1, 3, 30);
        cfg.settings.max_gossip = 3;
        assert_eq!(Spread::new(&cfg).stride, 1);
    }

    #[test]
    fn a_run_without_faults_has_an_empty_timeline() {
        let cfg = SimConfig::new(1, 3, 10);
        let t = Timeline::of(&cfg, 50_000);
        assert!(t.windows.is_empty() && t.moments.is_empty());
    }
}
