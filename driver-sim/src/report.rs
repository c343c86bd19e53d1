//! The report of a run: speed, dissemination, detection, overlay shape, membership cost,
//! adversaries, violations. It only assembles and formats numbers the simulator
//! ([`RunNumbers`]) and the checker ([`Measured`]) computed: as one JSON object (`sim
//! --json`) or a few lines for people ([`Report::human`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checker::Measured;

/// What a run measured. Serialised as the `sim --json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run seed.
    pub seed: u64,
    /// Seeds in the cluster.
    pub seeds: u32,
    /// Peers in the cluster.
    pub peers: u32,
    /// How the peers passed gossip on: `flood` or `lazy`.
    pub gossip_mode: String,
    /// Simulated seconds.
    pub sim_time_s: f64,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// Messages delivered to nodes plus timers fired at them.
    pub events: u64,
    /// `events / wall_s`.
    pub events_per_sec: f64,
    /// `sim_time_s / wall_s`.
    pub real_time_factor: f64,
    /// CPU seconds the run's thread used (Linux), over the span `wall_s` covers. On a shared
    /// machine it stays near the run's own cost while `wall_s` grows with time spent waiting
    /// for a core.
    pub cpu_s: Option<f64>,
    /// `events / cpu_s`.
    pub events_per_cpu_sec: Option<f64>,
    /// Hash of everything delivered, in order (hex): same seed, same hash.
    pub trace_hash: String,
    /// Gossip messages generated.
    pub gossip_generated: u64,
    /// First-time deliveries over those owed: for each gossip of a peer still up, every live
    /// peer in its origin's overlay component that had a neighbour when it was generated.
    pub delivered_ratio: f64,
    /// First-time deliveries counted in `delivered_ratio`.
    pub delivered: u64,
    /// Deliveries owed.
    pub owed: u64,
    /// Sybil peers in the run ([`crate::Sybils`]) and their attack (`None`: none).
    pub sybils: u32,
    /// The Sybils' attack, if any.
    pub sybil_attack: Option<String>,
    /// With Sybils: `delivered_ratio`, which then counts deliveries owed to and made by
    /// honest peers only (a Sybil's gossip is owed nobody, and nobody owes a Sybil).
    pub honest_delivered_ratio: Option<f64>,
    /// Gossip sends over those of a perfect flood (`2|E| − (N−1)` per broadcast on a fixed
    /// overlay; on a growing one, Σ over holders of its degree then, minus one per receiver).
    pub overhead_ratio: f64,
    /// Gossip requests sent.
    pub gossip_sends: u64,
    /// Copies of gossip bodies sent (`GOSSIP_MSG` requests and bodies in pull replies) per
    /// first-time delivery: a broadcast's payload sends over the `N − 1` peers it reaches.
    /// 1.0 is a perfect spanning tree; a flood sends `2|E| − (N − 1)` per broadcast.
    pub payload_per_broadcast: f64,
    /// Gossip-plane lines other than `GOSSIP_MSG` requests (their acks, and the repair's
    /// messages and replies) per gossip generated.
    pub control_lines_per_broadcast: f64,
    /// Every gossip-plane line per gossip generated.
    pub lines_per_broadcast: f64,
    /// Bytes of every gossip-plane line (as the wire encodes it, without a cluster key) per
    /// gossip generated.
    pub bytes_per_broadcast: f64,
    /// Median over gossips of the time from its generation to its last first-time delivery.
    pub last_delivery_ms_p50: Option<u64>,
    /// 99th percentile of the same.
    pub last_delivery_ms_p99: Option<u64>,
    /// First-time deliveries that came by a pull (gossip repair), not pushed.
    pub repaired: u64,
    /// Most links a first-time delivery travelled.
    pub hops_max: u32,
    /// The final overlay's largest eccentricity (its diameter; a lower bound if not exact).
    pub eccentricity_max: u32,
    /// Whether `eccentricity_max` is exact (BFS from every node) or sampled.
    pub eccentricity_exact: bool,
    /// Peers crashed (by faults).
    pub crashed_peers: u64,
    /// Crashed registered peers whose removal a seed quorum committed.
    pub detected: u64,
    /// Median ms from a peer's crash to the quorum removal of it.
    pub detection_ms_p50: Option<u64>,
    /// 99th percentile of the same.
    pub detection_ms_p99: Option<u64>,
    /// Removal commits of live peers that never crashed.
    pub false_removals: u64,
    /// Peers promise 4 ("no live peer removed") guarded for some time of the run: up, never
    /// crashed, and no message on their links lost within the loss window before.
    pub promise4_peers: u64,
    /// The share of the peers' time up during which promise 4 guarded them.
    pub promise4_share: f64,
    /// Promises broken (see `violations`).
    pub invariant_violations: u64,
    /// The first violations, in words.
    pub violations: Vec<String>,
    /// Largest degree in the final overlay (live peers, links either side holds).
    pub degree_max: u32,
    /// Mean degree.
    pub degree_mean: f64,
    /// Discrete power-law exponent fitted to the degree distribution (Clauset et al.
    /// approximation `1 + n / Σ ln(d_i / (d_min − ½))`, `d_min` = `min_degree`).
    pub powerlaw_alpha: Option<f64>,
    /// Live peers in the largest overlay component.
    pub largest_component: u64,
    /// Live peers.
    pub live_peers: u64,
    /// Messages lost, stopped by partitions or late.
    pub messages_lost: u64,
    /// The liveness bound after healing (ms), if a liveness phase ran.
    pub liveness_bound_ms: Option<u64>,
    /// Time from healing until promises 6–7 held, if they did.
    pub converged_ms: Option<u64>,
    /// Requests the seeds sent, by wire type: the cost of membership.
    pub seed_sends: BTreeMap<String, u64>,
    /// Distinct admissions `(peer, incarnation)` applied at some seed.
    pub admissions: u64,
    /// Distinct removals `(peer, incarnation)` applied at some seed.
    pub removals: u64,
    /// Median ms from a Peer List change's first application at a seed to its application
    /// at the last of the seeds that applied it (changes every seed applied).
    pub commit_spread_ms_p50: Option<u64>,
    /// 99th percentile of the same.
    pub commit_spread_ms_p99: Option<u64>,
    /// Forged messages the forger and the lying seeds sent, and lies the lying seeds told in
    /// answer (votes, confirmations, anti-entropy replies with forged entries).
    pub forged_sent: u64,
    /// The same by kind: `commit`, `sync`, `vote`, `register` (the forger); `liar_commit`,
    /// `sync_reply`, `vote_lie`, `confirm_lie`, `confirm_deny` (lying seeds).
    pub forged_by_kind: BTreeMap<String, u64>,
    /// Distinct Peer List facts they put forward.
    pub forged_facts: u64,
    /// Changes of an honest seed's Peer List to a forged fact while it was false: must be 0.
    pub forged_changes: u64,
    /// Peak resident memory of the process (KiB), filled in by the `sim` command.
    pub peak_rss_kib: Option<u64>,
}

/// What the simulator itself counted; the rest of a report comes from the checker
/// ([`Measured`]).
#[derive(Clone, Debug)]
pub struct RunNumbers {
    /// The run seed.
    pub seed: u64,
    /// Seeds in the cluster.
    pub seeds: u32,
    /// Peers in the cluster.
    pub peers: u32,
    /// How the peers passed gossip on.
    pub gossip_mode: gossip_core::config::GossipMode,
    /// Simulated ms at the end.
    pub sim_ms: u64,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// CPU seconds the run's thread used, where the platform says.
    pub cpu_s: Option<f64>,
    /// Messages delivered to nodes plus timers fired at them.
    pub events: u64,
    /// Hash of everything delivered, in order.
    pub trace_hash: u64,
    /// Messages lost, stopped by partitions or late.
    pub messages_lost: u64,
    /// The liveness bound after healing, if a liveness phase ran.
    pub liveness_bound_ms: Option<u64>,
    /// Forged messages sent and lies told, by kind.
    pub forged_sent: BTreeMap<&'static str, u64>,
    /// Sybil peers and their attack's name (`None`: none).
    pub sybils: Option<(u32, &'static str)>,
}

impl Report {
    /// The report of a run from the simulator's numbers and the checker's.
    pub fn new(run: RunNumbers, m: Measured) -> Report {
        let sim_time_s = run.sim_ms as f64 / 1000.0;
        let wall = run.wall_s.max(1e-9);
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                1.0
            } else {
                num as f64 / den as f64
            }
        };
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let degrees = &m.degrees;
        let names = |map: &BTreeMap<&'static str, u64>| {
            (map.iter())
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<String, u64>>()
        };
        Report {
            seed: run.seed,
            seeds: run.seeds,
            peers: run.peers,
            gossip_mode: run.gossip_mode.to_string(),
            sim_time_s,
            wall_s: run.wall_s,
            events: run.events,
            events_per_sec: run.events as f64 / wall,
            real_time_factor: sim_time_s / wall,
            cpu_s: run.cpu_s,
            events_per_cpu_sec: run.cpu_s.map(|c| run.events as f64 / c.max(1e-9)),
            trace_hash: format!("{:016x}", run.trace_hash),
            gossip_generated: m.gossip_generated,
            delivered_ratio: ratio(m.delivered, m.owed),
            delivered: m.delivered,
            owed: m.owed,
            sybils: run.sybils.map_or(0, |(n, _)| n),
            sybil_attack: run.sybils.map(|(_, a)| a.to_string()),
            honest_delivered_ratio: run.sybils.map(|_| ratio(m.delivered, m.owed)),
            overhead_ratio: ratio(m.gossip_sends, m.expected_sends),
            gossip_sends: m.gossip_sends,
            payload_per_broadcast: per(m.payload_sends, m.first_deliveries),
            control_lines_per_broadcast: per(
                m.gossip_lines.saturating_sub(m.gossip_sends),
                m.gossip_generated,
            ),
            lines_per_broadcast: per(m.gossip_lines, m.gossip_generated),
            bytes_per_broadcast: per(m.gossip_bytes, m.gossip_generated),
            last_delivery_ms_p50: m.last_delivery_percentile(0.5),
            last_delivery_ms_p99: m.last_delivery_percentile(0.99),
            repaired: m.repaired,
            hops_max: m.hops_max,
            eccentricity_max: m.eccentricity.0,
            eccentricity_exact: m.eccentricity.1,
            crashed_peers: m.crashed_peers,
            detected: m.detection_ms.len() as u64,
            detection_ms_p50: m.detection_percentile(0.5),
            detection_ms_p99: m.detection_percentile(0.99),
            false_removals: m.false_removals,
            promise4_peers: m.promise4_peers,
            promise4_share: m.promise4_share,
            invariant_violations: m.violation_count,
            violations: m.violations.clone(),
            degree_max: degrees.iter().copied().max().unwrap_or(0),
            degree_mean: if degrees.is_empty() {
                0.0
            } else {
                degrees.iter().map(|&d| f64::from(d)).sum::<f64>() / degrees.len() as f64
            },
            powerlaw_alpha: m.powerlaw_alpha,
            largest_component: m.largest_component,
            live_peers: degrees.len() as u64,
            messages_lost: run.messages_lost,
            liveness_bound_ms: run.liveness_bound_ms,
            converged_ms: m.converged_ms,
            seed_sends: names(&m.seed_sends),
            admissions: m.admissions,
            removals: m.removals,
            commit_spread_ms_p50: m.commit_spread_percentile(0.5),
            commit_spread_ms_p99: m.commit_spread_percentile(0.99),
            forged_sent: run.forged_sent.values().sum(),
            forged_by_kind: names(&run.forged_sent),
            forged_facts: m.forged_facts,
            forged_changes: m.forged_changes,
            peak_rss_kib: None,
        }
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let opt = |x: Option<u64>| x.map_or("-".to_string(), |v| v.to_string());
        let mut s = format!(
            "seed {} · {} seeds · {} peers · {:.1} s simulated in {:.2} s ({:.0}× real time)\n\
             events {} ({:.2} M/s{}) · trace hash {}\n\
             gossip: {} generated · delivered {}/{} ({:.4}) · overhead {:.4} · hops max {} (overlay eccentricity {}{})\n\
             overlay: {} live peers · largest component {} · degree mean {:.2} max {} · power-law alpha {}\n\
             failures: {} peers crashed · {} removed by quorum · detection p50 {} ms p99 {} ms · false removals {} · messages lost {}\n\
             promise 4 (no live peer removed) guarded {} peers, {:.1} % of their time up\n",
            self.seed,
            self.seeds,
            self.peers,
            self.sim_time_s,
            self.wall_s,
            self.real_time_factor,
            self.events,
            self.events_per_sec / 1e6,
            self.events_per_cpu_sec
                .map_or(String::new(), |e| format!(", {:.2} M per CPU second", e / 1e6)),
            self.trace_hash,
            self.gossip_generated,
            self.delivered,
            self.owed,
            self.delivered_ratio,
            self.overhead_ratio,
            self.hops_max,
            self.eccentricity_max,
            if self.eccentricity_exact { "" } else { ", sampled" },
            self.live_peers,
            self.largest_component,
            self.degree_mean,
            self.degree_max,
            self.powerlaw_alpha.map_or("-".into(), |a| format!("{a:.2}")),
            self.crashed_peers,
            self.detected,
            opt(self.detection_ms_p50),
            opt(self.detection_ms_p99),
            self.false_removals,
            self.messages_lost,
            self.promise4_peers,
            100.0 * self.promise4_share,
        );
        s += &format!(
            "dissemination ({}): payload {:.3} per receiver · {:.0} lines ({:.0} control) and {:.0} bytes per broadcast · last delivery p50 {} ms p99 {} ms · repaired {}\n",
            self.gossip_mode,
            self.payload_per_broadcast,
            self.lines_per_broadcast,
            self.control_lines_per_broadcast,
            self.bytes_per_broadcast,
            opt(self.last_delivery_ms_p50),
            opt(self.last_delivery_ms_p99),
            self.repaired,
        );
        let seed_sends: u64 = self.seed_sends.values().sum();
        s += &format!(
            "membership: {} admissions · {} removals · {} seed requests · commit reaches every seed in p50 {} ms p99 {} ms\n",
            self.admissions,
            self.removals,
            seed_sends,
            opt(self.commit_spread_ms_p50),
            opt(self.commit_spread_ms_p99),
        );
        if let (Some(attack), Some(r)) = (&self.sybil_attack, self.honest_delivered_ratio) {
            s += &format!(
                "sybils: {} peers ({attack} attack) · honest_delivered_ratio {r:.6} ({} of {} deliveries owed to and made by honest peers)\n",
                self.sybils, self.delivered, self.owed,
            );
        }
        if self.forged_sent > 0 {
            let kinds: Vec<String> = (self.forged_by_kind.iter())
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            s += &format!(
                "adversaries: {} forged messages and lies ({}) · {} forged facts · {} changes caused\n",
                self.forged_sent,
                kinds.join(", "),
                self.forged_facts,
                self.forged_changes,
            );
        }
        if let Some(b) = self.liveness_bound_ms {
            s += &format!(
                "liveness: bound {b} ms after healing · converged {}\n",
                self.converged_ms
                    .map_or("never".to_string(), |c| format!("after {c} ms"))
            );
        }
        if let Some(r) = self.peak_rss_kib {
            s += &format!("peak RSS {r} KiB\n");
        }
        if self.invariant_violations == 0 {
            s += "invariants: all held\n";
        } else {
            s += &format!("INVARIANT VIOLATIONS: {}\n", self.invariant_violations);
            for v in &self.violations {
                s += &format!("  {v}\n");
            }
        }
        s
    }
}
