//! The report of a run: speed, dissemination, detection, overlay shape, violations.

use std::collections::VecDeque;

use gossip_core::msg::Status;
use serde::Serialize;

use crate::actor::Actor;
use crate::sim::Sim;

/// What a run measured. Serialised as the `sim --json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run seed.
    pub seed: u64,
    /// Seeds in the cluster.
    pub seeds: u32,
    /// Peers in the cluster.
    pub peers: u32,
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
    pub seed_sends: std::collections::BTreeMap<String, u64>,
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
    pub forged_by_kind: std::collections::BTreeMap<String, u64>,
    /// Distinct Peer List facts they put forward.
    pub forged_facts: u64,
    /// Changes of an honest seed's Peer List to a forged fact while it was false: must be 0.
    pub forged_changes: u64,
    /// Peak resident memory of the process (KiB), filled in by the `sim` command.
    pub peak_rss_kib: Option<u64>,
}

/// CPU time the calling thread has run, in seconds: Linux's `/proc/thread-self/schedstat`
/// (nanoseconds on the CPU), `None` where there is none.
pub(crate) fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The final overlay among live peers: undirected (a link counts if either side holds it).
pub(crate) struct Overlay {
    /// Peer index → neighbours (peer indices), sorted, deduplicated; empty for a dead peer.
    pub adj: Vec<Vec<u32>>,
    /// Peer index → component id (`u32::MAX` for a dead peer).
    pub comp: Vec<u32>,
    /// Component sizes.
    pub comp_size: Vec<u32>,
}

impl Overlay {
    pub(crate) fn build<A: Actor>(sim: &Sim<A>) -> Overlay {
        let a = sim.addrs();
        let ck = sim.checker();
        let n = a.peers as usize;
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (j, p) in ck.peers.iter().enumerate() {
            if !p.alive {
                continue;
            }
            for &m in &p.adj {
                let k = (m - a.seeds) as usize;
                if k != j && ck.peers[k].alive {
                    adj[j].push(k as u32);
                    adj[k].push(j as u32);
                }
            }
        }
        for l in &mut adj {
            l.sort_unstable();
            l.dedup();
        }
        let mut comp = vec![u32::MAX; n];
        let mut comp_size = Vec::new();
        let mut queue = VecDeque::new();
        for s in 0..n {
            if comp[s] != u32::MAX || !ck.peers[s].alive {
                continue;
            }
            let id = comp_size.len() as u32;
            comp[s] = id;
            let mut size = 0;
            queue.push_back(s as u32);
            while let Some(x) = queue.pop_front() {
                size += 1;
                for &y in &adj[x as usize] {
                    if comp[y as usize] == u32::MAX {
                        comp[y as usize] = id;
                        queue.push_back(y);
                    }
                }
            }
            comp_size.push(size);
        }
        Overlay {
            adj,
            comp,
            comp_size,
        }
    }

    fn eccentricity(&self, s: usize, dist: &mut [u32], queue: &mut VecDeque<u32>) -> u32 {
        dist.iter_mut().for_each(|d| *d = u32::MAX);
        dist[s] = 0;
        queue.clear();
        queue.push_back(s as u32);
        let mut ecc = 0;
        while let Some(x) = queue.pop_front() {
            let d = dist[x as usize];
            ecc = ecc.max(d);
            for &y in &self.adj[x as usize] {
                if dist[y as usize] == u32::MAX {
                    dist[y as usize] = d + 1;
                    queue.push_back(y);
                }
            }
        }
        ecc
    }

    /// The largest eccentricity: exact (BFS from every node) up to 3 000 live peers, else the
    /// largest found from 64 evenly spread starting nodes (a lower bound).
    fn max_eccentricity(&self) -> (u32, bool) {
        let live: Vec<usize> = (0..self.adj.len())
            .filter(|&i| self.comp[i] != u32::MAX)
            .collect();
        let mut dist = vec![u32::MAX; self.adj.len()];
        let mut queue = VecDeque::new();
        let exact = live.len() <= 3_000;
        let step = if exact { 1 } else { live.len() / 64 };
        let ecc = live
            .iter()
            .step_by(step.max(1))
            .map(|&s| self.eccentricity(s, &mut dist, &mut queue))
            .max()
            .unwrap_or(0);
        (ecc, exact)
    }
}

/// Per gossip (of an origin still up in the instance that made it): the receivers owed and
/// how many of them got it. `visit(gossip, owed receiver, got it)` is called for every owed
/// receiver when `each` is set.
fn dissemination<A: Actor>(
    sim: &Sim<A>,
    ov: &Overlay,
    window: Option<(u64, u64)>,
    mut visit: impl FnMut(usize, u32, bool),
    each: bool,
) -> (u64, u64) {
    let ck = sim.checker();
    let seeds = sim.addrs().seeds;
    let n = ov.adj.len();
    // Per component, the times its members first had a neighbour, sorted.
    let mut since: Vec<Vec<u64>> = vec![Vec::new(); ov.comp_size.len()];
    for j in 0..n {
        if let (c, Some(t)) = (ov.comp[j], ck.peers[j].connected_since) {
            if c != u32::MAX {
                since[c as usize].push(t);
            }
        }
    }
    since.iter_mut().for_each(|v| v.sort_unstable());
    let (mut owed, mut delivered) = (0u64, 0u64);
    for (gi, g) in ck.gossips.iter().enumerate() {
        if let Some((from, to)) = window {
            if g.gen_at < from || g.gen_at >= to {
                continue;
            }
        }
        let o = (g.origin - seeds) as usize;
        let op = &ck.peers[o];
        if !op.alive || op.life != g.origin_life || ov.comp[o] == u32::MAX {
            continue;
        }
        let c = ov.comp[o];
        let eligible = |r: usize| {
            r != o && ov.comp[r] == c && ck.peers[r].connected_since.is_some_and(|t| t <= g.gen_at)
        };
        let mut owed_g = since[c as usize].partition_point(|&t| t <= g.gen_at) as u64;
        if op.connected_since.is_some_and(|t| t <= g.gen_at) {
            owed_g -= 1;
        }
        let mut got = 0u64;
        let receivers = ck.receivers(gi);
        for (w, &word) in receivers.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let r = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if r < n && eligible(r) {
                    got += 1;
                }
            }
        }
        if each && got < owed_g {
            for r in 0..n {
                if eligible(r) {
                    let has = receivers[r / 64] & (1 << (r % 64)) != 0;
                    visit(gi, r as u32, has);
                }
            }
        }
        owed += owed_g;
        delivered += got;
    }
    (owed, delivered)
}

/// Gossips generated in `[from, to)` that missed a live peer connected to their origin:
/// `(gossip description, peer endpoint)`.
pub(crate) fn undelivered<A: Actor>(sim: &Sim<A>, from: u64, to: u64) -> Vec<(String, String)> {
    let ov = Overlay::build(sim);
    let a = sim.addrs();
    let ck = sim.checker();
    let mut out = Vec::new();
    dissemination(
        sim,
        &ov,
        Some((from, to)),
        |g, r, has| {
            if !has && out.len() < 100 {
                let gi = &ck.gossips[g];
                out.push((
                    format!("#{g} of {} made at {} ms", a.endpoint(gi.origin), gi.gen_at),
                    a.endpoint(a.seeds + r).to_string(),
                ));
            }
        },
        true,
    );
    out
}

/// Distinct Peer List changes to `status` applied at some seed.
fn count_changes(ck: &crate::checker::Checker, status: Status) -> u64 {
    ck.spread.keys().filter(|(_, _, s)| *s == status).count() as u64
}

/// For every change all `seeds` applied: ms from its first application to its last, sorted.
fn commit_spreads(ck: &crate::checker::Checker, seeds: u32) -> Vec<u64> {
    let mut spread: Vec<u64> = (ck.spread.values())
        .filter(|(_, _, at)| *at >= seeds)
        .map(|(first, last, _)| last - first)
        .collect();
    spread.sort_unstable();
    spread
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Discrete power-law MLE (approximation of Clauset, Shalizi & Newman 2009):
/// `alpha = 1 + n / Σ ln(d_i / (d_min − 0.5))` over degrees `d_i ≥ d_min`.
pub fn powerlaw_alpha(degrees: &[u32], d_min: u32) -> Option<f64> {
    let d_min = d_min.max(1);
    let base = f64::from(d_min) - 0.5;
    let (n, sum) = degrees
        .iter()
        .filter(|&&d| d >= d_min)
        .fold((0u64, 0f64), |(n, s), &d| {
            (n + 1, s + (f64::from(d) / base).ln())
        });
    (n > 0 && sum > 0.0).then(|| 1.0 + n as f64 / sum)
}

impl Report {
    pub(crate) fn build<A: Actor>(sim: &Sim<A>, wall_s: f64, cpu_s: Option<f64>) -> Report {
        let cfg = sim.config();
        let ck = sim.checker();
        let ov = Overlay::build(sim);
        let (owed, delivered) = dissemination(sim, &ov, None, |_, _, _| {}, false);
        let degrees: Vec<u32> = (0..ov.adj.len())
            .filter(|&j| ov.comp[j] != u32::MAX)
            .map(|j| ov.adj[j].len() as u32)
            .collect();
        let (ecc, exact) = ov.max_eccentricity();
        let spread = commit_spreads(ck, cfg.seeds);
        let mut det: Vec<u64> = ck
            .crashes
            .iter()
            .filter_map(|c| c.removed_at.map(|r| r - c.at_ms))
            .collect();
        det.sort_unstable();
        let mut last: Vec<u64> = (ck.gossips.iter().zip(&ck.last_delivery))
            .filter(|(g, &at)| at > g.gen_at)
            .map(|(g, &at)| at - g.gen_at)
            .collect();
        last.sort_unstable();
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let generated = ck.gossips.len() as u64;
        let sim_time_s = sim.now() as f64 / 1000.0;
        let wall = wall_s.max(1e-9);
        Report {
            seed: cfg.seed,
            seeds: cfg.seeds,
            peers: cfg.peers,
            sim_time_s,
            wall_s,
            events: sim.events(),
            events_per_sec: sim.events() as f64 / wall,
            real_time_factor: sim_time_s / wall,
            cpu_s,
            events_per_cpu_sec: cpu_s.map(|c| sim.events() as f64 / c.max(1e-9)),
            trace_hash: format!("{:016x}", sim.trace_hash()),
            gossip_generated: ck.gossips.len() as u64,
            delivered_ratio: if owed == 0 {
                1.0
            } else {
                delivered as f64 / owed as f64
            },
            delivered,
            owed,
            overhead_ratio: if ck.expected_sends == 0 {
                1.0
            } else {
                ck.gossip_sends as f64 / ck.expected_sends as f64
            },
            gossip_sends: ck.gossip_sends,
            payload_per_broadcast: per(ck.payload_sends, ck.first_deliveries),
            control_lines_per_broadcast: per(ck.gossip_lines - ck.gossip_sends, generated),
            lines_per_broadcast: per(ck.gossip_lines, generated),
            bytes_per_broadcast: per(ck.gossip_bytes, generated),
            last_delivery_ms_p50: percentile(&last, 0.5),
            last_delivery_ms_p99: percentile(&last, 0.99),
            repaired: ck.repaired,
            hops_max: ck.hops_max,
            eccentricity_max: ecc,
            eccentricity_exact: exact,
            crashed_peers: ck.crashes.len() as u64,
            detected: det.len() as u64,
            detection_ms_p50: percentile(&det, 0.5),
            detection_ms_p99: percentile(&det, 0.99),
            false_removals: ck.false_removals,
            invariant_violations: ck.violation_count,
            violations: ck.violations.iter().map(|v| v.to_string()).collect(),
            degree_max: degrees.iter().copied().max().unwrap_or(0),
            degree_mean: if degrees.is_empty() {
                0.0
            } else {
                degrees.iter().map(|&d| f64::from(d)).sum::<f64>() / degrees.len() as f64
            },
            powerlaw_alpha: powerlaw_alpha(&degrees, cfg.settings.min_degree),
            largest_component: ov.comp_size.iter().copied().max().unwrap_or(0).into(),
            live_peers: degrees.len() as u64,
            messages_lost: sim.messages_lost(),
            liveness_bound_ms: (cfg.liveness && cfg.heal_at_ms.is_some())
                .then(|| cfg.liveness_bound_ms()),
            converged_ms: sim.converged_ms(),
            seed_sends: (ck.seed_sends.iter())
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            admissions: count_changes(ck, Status::Alive),
            removals: count_changes(ck, Status::Removed),
            commit_spread_ms_p50: percentile(&spread, 0.5),
            commit_spread_ms_p99: percentile(&spread, 0.99),
            forged_sent: sim.forged_sent().values().sum(),
            forged_by_kind: (sim.forged_sent().iter())
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            forged_facts: ck.forged_facts() as u64,
            forged_changes: ck.forged_changes,
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
             failures: {} peers crashed · {} removed by quorum · detection p50 {} ms p99 {} ms · false removals {} · messages lost {}\n",
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
        );
        s += &format!(
            "dissemination: payload {:.3} per receiver · {:.0} lines ({:.0} control) and {:.0} bytes per broadcast · last delivery p50 {} ms p99 {} ms · repaired {}\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_of_a_known_sample() {
        // All degrees equal to d_min: ln(2/1.5) each.
        let a = powerlaw_alpha(&[2, 2, 2, 2], 2).unwrap();
        assert!((a - (1.0 + 1.0 / (2.0f64 / 1.5).ln())).abs() < 1e-12);
        assert_eq!(powerlaw_alpha(&[1, 1], 2), None);
        // A heavier tail gives a smaller exponent.
        let b = powerlaw_alpha(&[2, 2, 3, 50, 200], 2).unwrap();
        assert!(b < a);
    }

    /// The thread's CPU clock counts work done and not time slept: what makes
    /// `events_per_cpu_sec` steadier than `events_per_sec` on a shared machine.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_cpu_clock_counts_work_not_sleep() {
        use std::time::{Duration, Instant};
        let before_sleep = thread_cpu_seconds().expect("Linux has /proc/thread-self/schedstat");
        std::thread::sleep(Duration::from_millis(200));
        let after_sleep = thread_cpu_seconds().expect("still there");
        assert!(
            after_sleep - before_sleep < 0.1,
            "slept 0.2 s, charged {:.3} s",
            after_sleep - before_sleep
        );
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while thread_cpu_seconds().expect("still there") - after_sleep < 0.05 {
            assert!(
                Instant::now() < give_up,
                "20 s of spinning never charged 0.05 s"
            );
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
