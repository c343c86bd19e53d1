//! Promises 6 and 7, once faults stop: evaluated every simulated second after healing, they
//! must hold by the liveness bound ([`crate::config::liveness_bound_ms`]).
//!
//! 6. A crashed peer that had a live neighbour (a witness) is not `Alive` at any live seed.
//! 7. All live seeds hold the same Peer List, and every live registered peer is `Alive` in it
//!    at its incarnation.
//!
//! "Live seeds" leaves out lying seeds that lie to the end; with fewer live seeds than a
//! quorum nothing is promised.

use gossip_core::msg::Status;

use super::Checker;

/// The liveness phase: its timing and how it went.
#[derive(Debug)]
pub(super) struct Liveness {
    /// When faults stop (0 if they never do).
    heal_at_ms: u64,
    /// The bound after healing.
    bound_ms: u64,
    /// Lying seeds stop lying at healing (so they count as live seeds).
    liars_stop_at_heal: bool,
    /// Time from healing until promises 6–7 first held.
    pub(super) converged_ms: Option<u64>,
    /// The bound was reached (promises 6–7 were judged).
    pub(super) checked: bool,
}

impl Liveness {
    pub(super) fn new(heal_at_ms: Option<u64>, bound_ms: u64, liars_stop_at_heal: bool) -> Self {
        Liveness {
            heal_at_ms: heal_at_ms.unwrap_or(0),
            bound_ms,
            liars_stop_at_heal,
            converged_ms: None,
            checked: false,
        }
    }
}

impl Checker {
    /// Promises 6 and 7 as they stand now: the failures, in words.
    pub fn liveness_failures(&self) -> Vec<(u8, String)> {
        let g = &self.ghost;
        let a = g.addrs;
        // Lying seeds that lie to the end hold anything: promises 6–7 are about the others.
        let counted = |s: u32| self.liveness.liars_stop_at_heal || !self.safety.is_liar(s);
        let live_seeds: Vec<u32> = (0..a.seeds)
            .filter(|&s| g.seed_up[s as usize] && counted(s))
            .collect();
        let mut fails = Vec::new();
        if live_seeds.len() < gossip_core::quorum(a.seeds as usize) {
            return fails; // no quorum of live seeds: nothing is promised
        }
        // 6: crashed peers that someone could detect are removed at every live seed.
        for rec in &g.crashes {
            let (Some(inc), p) = (rec.incarnation, &g.peers[rec.peer as usize]) else {
                continue;
            };
            if p.alive {
                continue; // it came back
            }
            let witnessed = rec.neighbours.iter().any(|&(n, life)| {
                let q = &g.peers[(n - a.seeds) as usize];
                q.alive && q.life == life
            });
            if !witnessed {
                continue;
            }
            let ep = a.endpoint(a.seeds + rec.peer);
            for &s in &live_seeds {
                if let Some(&(i, Status::Alive)) = g.seed_pl[s as usize].get(&ep) {
                    if i <= inc {
                        fails.push((
                            6,
                            format!(
                                "peer {ep} crashed at {} ms is still alive at seed {}",
                                rec.at_ms,
                                a.endpoint(s)
                            ),
                        ));
                        break;
                    }
                }
            }
        }
        // 7: all live seeds hold the same Peer List, with every live registered peer in it.
        let first = &g.seed_pl[live_seeds[0] as usize];
        for &s in &live_seeds[1..] {
            let pl = &g.seed_pl[s as usize];
            if pl != first {
                let diff = first
                    .iter()
                    .find(|(k, v)| pl.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k}: {v:?} vs {:?}", pl.get(k)))
                    .or_else(|| {
                        pl.iter()
                            .find(|(k, _)| !first.contains_key(*k))
                            .map(|(k, v)| format!("{k}: absent vs {v:?}"))
                    })
                    .unwrap_or_default();
                fails.push((
                    7,
                    format!(
                        "seeds {} and {} hold different Peer Lists (first difference {diff})",
                        a.endpoint(live_seeds[0]),
                        a.endpoint(s)
                    ),
                ));
            }
        }
        for (j, p) in g.peers.iter().enumerate() {
            let Some(inc) = p.incarnation else { continue };
            if !p.alive {
                continue;
            }
            let ep = a.endpoint(a.seeds + j as u32);
            for &s in &live_seeds {
                if g.seed_pl[s as usize].get(&ep) != Some(&(inc, Status::Alive)) {
                    fails.push((
                        7,
                        format!(
                            "live peer {ep} (incarnation {inc}) is {:?} at seed {}",
                            g.seed_pl[s as usize].get(&ep),
                            a.endpoint(s)
                        ),
                    ));
                    break;
                }
            }
        }
        fails
    }

    /// One evaluation of promises 6–7 after healing. Until they first hold, each evaluation
    /// checks again; at the bound (`last`) failures are violations.
    pub fn check_liveness(&mut self, now: u64, last: bool) {
        if last {
            self.liveness.checked = true;
        }
        if self.liveness.converged_ms.is_some() {
            return;
        }
        let fails = self.liveness_failures();
        let heal = self.liveness.heal_at_ms;
        if fails.is_empty() {
            self.liveness.converged_ms = Some(now - heal);
        } else if last {
            let n = fails.len();
            let bound = self.liveness.bound_ms;
            for (promise, what) in fails.into_iter().take(10) {
                self.violation(
                    now,
                    promise,
                    format!(
                        "{what} ({} ms after healing; bound {bound} ms; {n} failures)",
                        now - heal
                    ),
                );
            }
        }
    }

    /// Time from healing until promises 6–7 first held (checked every second), if they did.
    pub fn converged_ms(&self) -> Option<u64> {
        self.liveness.converged_ms
    }

    /// Whether the run reached the liveness bound (so promises 6–7 were judged).
    pub fn liveness_checked(&self) -> bool {
        self.liveness.checked
    }
}
