//! Promise 5, checked at the end of a run: every gossip a live peer made in the check window
//! (two gossip intervals after the liveness bound) reached every live peer of its overlay
//! component that had a neighbour when it was made; with gossip repair, so did every gossip
//! made in the retention window before healing (copies lost while the faults lasted). Also the dissemination the report shows:
//! deliveries owed and made, over every gossip of the run.

use super::overlay::Overlay;
use super::Checker;

/// When promise 5 is judged.
#[derive(Debug)]
pub(super) struct Delivery {
    /// Gossips generated in `[from, to)` of each window must have reached every peer owed.
    windows: [Option<(u64, u64)>; 2],
    /// The run must have lasted this long (the gossips of the window had time to spread).
    judged_from: Option<u64>,
    /// Per peer index: a Sybil ([`crate::Sybils`]). Gossip is owed only to honest peers, and
    /// only honest peers' gossip is owed: what Sybils make or get is not the promise's.
    sybil: Vec<bool>,
}

impl Delivery {
    pub(super) fn new(
        windows: [Option<(u64, u64)>; 2],
        judged_from: Option<u64>,
        sybil: Vec<bool>,
    ) -> Delivery {
        Delivery {
            windows,
            judged_from,
            sybil,
        }
    }

    /// True if peer index `j` is a Sybil.
    pub(super) fn is_sybil(&self, j: usize) -> bool {
        self.sybil.get(j).copied().unwrap_or(false)
    }
}

impl Checker {
    /// Per gossip generated in `window` (all if `None`) by an honest origin still up in the
    /// instance that made it: the receivers owed (live honest peers of the origin's component
    /// that had a neighbour when it was made) and how many of them got it. `visit(gossip, owed receiver,
    /// got it)` is called for every owed receiver of a gossip that missed one, when `each`.
    /// Returns `(owed, delivered)`.
    pub(super) fn dissemination(
        &self,
        ov: &Overlay,
        window: Option<(u64, u64)>,
        mut visit: impl FnMut(usize, u32, bool),
        each: bool,
    ) -> (u64, u64) {
        let g = &self.ghost;
        let seeds = g.addrs.seeds;
        let n = ov.adj.len();
        // Per component, the times its members first had a neighbour, sorted.
        let mut since: Vec<Vec<u64>> = vec![Vec::new(); ov.comp_size.len()];
        for j in 0..n {
            if let (c, Some(t)) = (ov.comp[j], g.peers[j].connected_since) {
                if c != u32::MAX && !self.delivery.is_sybil(j) {
                    since[c as usize].push(t);
                }
            }
        }
        since.iter_mut().for_each(|v| v.sort_unstable());
        let (mut owed, mut delivered) = (0u64, 0u64);
        for (gi, info) in g.gossips.iter().enumerate() {
            if let Some((from, to)) = window {
                if info.gen_at < from || info.gen_at >= to {
                    continue;
                }
            }
            let o = (info.origin - seeds) as usize;
            let op = &g.peers[o];
            if !op.alive
                || op.life != info.origin_life
                || ov.comp[o] == u32::MAX
                || self.delivery.is_sybil(o)
            {
                continue;
            }
            let c = ov.comp[o];
            let eligible = |r: usize| {
                r != o
                    && ov.comp[r] == c
                    && !self.delivery.is_sybil(r)
                    && g.peers[r].connected_since.is_some_and(|t| t <= info.gen_at)
            };
            let mut owed_g = since[c as usize].partition_point(|&t| t <= info.gen_at) as u64;
            if op.connected_since.is_some_and(|t| t <= info.gen_at) {
                owed_g -= 1;
            }
            let mut got = 0u64;
            let receivers = g.receivers(gi);
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
    /// `(gossip description, peer endpoint)`, at most 100.
    fn undelivered(&self, from: u64, to: u64) -> Vec<(String, String)> {
        let ov = Overlay::build(&self.ghost);
        let a = self.ghost.addrs;
        let mut out = Vec::new();
        self.dissemination(
            &ov,
            Some((from, to)),
            |g, r, has| {
                if !has && out.len() < 100 {
                    let gi = &self.ghost.gossips[g];
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

    /// Whether promise 5 is judged by a run that ends at `end_ms` (it lasts through the check
    /// window and the flood after it).
    pub fn delivery_judged(&self, end_ms: u64) -> bool {
        self.delivery.windows.iter().any(Option::is_some)
            && end_ms >= self.delivery.judged_from.unwrap_or(u64::MAX)
    }

    /// Promise 5, at the end of a run that lasted through the check window and the flood
    /// after it (a shorter run checks nothing).
    pub fn check_delivery(&mut self, now: u64) {
        if now < self.delivery.judged_from.unwrap_or(u64::MAX) {
            return;
        }
        for (from, to) in self.delivery.windows.into_iter().flatten() {
            for (g, who) in self.undelivered(from, to).into_iter().take(10) {
                self.violation(
                    now,
                    5,
                    format!("gossip {g} never reached live peer {who}, connected to its origin"),
                );
            }
        }
    }
}
