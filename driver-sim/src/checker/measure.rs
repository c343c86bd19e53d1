//! What the ghost state measured over a run, for its report: dissemination, the overlay's
//! shape, detection, membership cost, adversaries' effect, violations.

use std::collections::BTreeMap;

use gossip_core::msg::Status;

use super::overlay::Overlay;
use super::Checker;
use crate::stats::{percentile, powerlaw_alpha};

/// The checker's numbers at the end of a run (see [`crate::Report`] for each one's meaning).
#[derive(Clone, Debug)]
pub struct Measured {
    /// Gossip messages generated.
    pub gossip_generated: u64,
    /// First-time deliveries owed and made (see [`crate::Report::delivered_ratio`]).
    pub owed: u64,
    /// First-time deliveries of those owed.
    pub delivered: u64,
    /// Gossip requests sent.
    pub gossip_sends: u64,
    /// Gossip sends a perfect flood makes.
    pub expected_sends: u64,
    /// Most links a first-time delivery travelled.
    pub hops_max: u32,
    /// First-time deliveries (any gossip, any peer).
    pub first_deliveries: u64,
    /// Copies of gossip bodies sent (`GOSSIP_MSG` requests and bodies of pull replies).
    pub payload_sends: u64,
    /// Lines of the gossip plane sent, and their bytes.
    pub gossip_lines: u64,
    /// Bytes of those lines.
    pub gossip_bytes: u64,
    /// First-time deliveries that came by the repair's pulls.
    pub repaired: u64,
    /// Per gossip delivered to someone: ms from its generation to its last first-time
    /// delivery, ascending.
    pub last_delivery_ms: Vec<u64>,
    /// The final overlay's largest eccentricity, and whether it is exact.
    pub eccentricity: (u32, bool),
    /// Peers crashed.
    pub crashed_peers: u64,
    /// Ms from each crash to the first quorum removal of the crashed peer, ascending.
    pub detection_ms: Vec<u64>,
    /// Removal commits of live peers that never crashed.
    pub false_removals: u64,
    /// Peers promise 4 guarded for some time (up, never crashed, no loss on their links
    /// within the loss window before).
    pub promise4_peers: u64,
    /// The share of the peers' time up during which promise 4 guarded them.
    pub promise4_share: f64,
    /// Violations found in all, and the first ones in words.
    pub violation_count: u64,
    /// The first violations, in words.
    pub violations: Vec<String>,
    /// Degrees of the live peers in the final overlay.
    pub degrees: Vec<u32>,
    /// Fitted power-law exponent of `degrees` (from the minimum degree).
    pub powerlaw_alpha: Option<f64>,
    /// Live peers in the largest overlay component.
    pub largest_component: u64,
    /// Time from healing until promises 6–7 held.
    pub converged_ms: Option<u64>,
    /// Requests the seeds sent, by wire type.
    pub seed_sends: BTreeMap<&'static str, u64>,
    /// Distinct admissions and removals applied at some seed.
    pub admissions: u64,
    /// Distinct removals applied at some seed.
    pub removals: u64,
    /// For every change all seeds applied: ms from its first application to its last,
    /// ascending.
    pub commit_spread_ms: Vec<u64>,
    /// Distinct facts adversaries put forward.
    pub forged_facts: u64,
    /// Forged facts applied at honest seeds while false.
    pub forged_changes: u64,
}

impl Measured {
    /// The `p`-quantile of detection times.
    pub fn detection_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.detection_ms, p)
    }

    /// The `p`-quantile of the last-delivery times.
    pub fn last_delivery_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.last_delivery_ms, p)
    }

    /// The `p`-quantile of commit spreads.
    pub fn commit_spread_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.commit_spread_ms, p)
    }
}

impl Checker {
    /// Measures the run until `now`. `min_degree` is where the power-law fit starts.
    pub fn measure(&self, now: u64, min_degree: u32) -> Measured {
        let g = &self.ghost;
        let (mut checked_ms, mut up_ms, mut promise4_peers) = (0u64, 0u64, 0u64);
        for p in &g.peers {
            let (checked, up) = p.checked_and_up_ms(now);
            checked_ms += checked;
            up_ms += up;
            promise4_peers += u64::from(checked > 0);
        }
        let ov = Overlay::build(g);
        let (owed, delivered) = self.dissemination(&ov, None, |_, _, _| {}, false);
        let degrees = ov.degrees();
        let mut detection_ms: Vec<u64> = (g.crashes.iter())
            .filter_map(|c| c.removed_at.map(|r| r - c.at_ms))
            .collect();
        detection_ms.sort_unstable();
        let seeds = g.addrs.seeds;
        let mut commit_spread_ms: Vec<u64> = (g.spread.values())
            .filter(|(_, _, at)| *at >= seeds)
            .map(|(first, last, _)| last - first)
            .collect();
        commit_spread_ms.sort_unstable();
        let mut last_delivery_ms: Vec<u64> = (g.gossips.iter().zip(&g.last_delivery))
            .filter(|(info, &at)| at > info.gen_at)
            .map(|(info, &at)| at - info.gen_at)
            .collect();
        last_delivery_ms.sort_unstable();
        let changes = |status| g.spread.keys().filter(|(_, _, s)| *s == status).count() as u64;
        Measured {
            gossip_generated: g.gossips.len() as u64,
            owed,
            delivered,
            gossip_sends: g.gossip_sends,
            expected_sends: g.expected_sends,
            hops_max: g.hops_max,
            first_deliveries: g.first_deliveries,
            payload_sends: g.payload_sends,
            gossip_lines: g.gossip_lines,
            gossip_bytes: g.gossip_bytes,
            repaired: g.repaired,
            last_delivery_ms,
            eccentricity: ov.max_eccentricity(),
            crashed_peers: g.crashes.len() as u64,
            detection_ms,
            false_removals: self.safety.false_removals,
            promise4_peers,
            promise4_share: if up_ms == 0 {
                0.0
            } else {
                checked_ms as f64 / up_ms as f64
            },
            violation_count: self.violation_count,
            violations: self.violations.iter().map(|v| v.to_string()).collect(),
            powerlaw_alpha: powerlaw_alpha(&degrees, min_degree),
            degrees,
            largest_component: ov.comp_size.iter().copied().max().unwrap_or(0).into(),
            converged_ms: self.liveness.converged_ms,
            seed_sends: g.seed_sends.clone(),
            admissions: changes(Status::Alive),
            removals: changes(Status::Removed),
            commit_spread_ms,
            forged_facts: self.safety.forged_facts() as u64,
            forged_changes: self.safety.forged_changes,
        }
    }
}
