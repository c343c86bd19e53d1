//! Fault schedules: a cluster (seeds, peers, gossip mode), faults at chosen times in a
//! window after the last join (crashes and restarts of peers and of a minority of seeds,
//! partitions of every kind, loss, duplicates, jitter, graceful leaves), adversaries (lying
//! reports, forged messages, replayed commits, a minority of lying seeds), and the healing
//! after which the liveness promises are judged. The property tests generate them with
//! proptest (`tests/tests/sim_props.rs`), `sim --soak` from a seed ([`Schedule::random`]);
//! both run them through [`Schedule::config`], so a schedule either finds replays in the
//! other.

use gossip_core::config::GossipMode;
use gossip_core::rng::Rng;

use crate::{
    Fault, FaultKind, ForgeKind, NetConfig, NodeRef, Partition, PartitionKind, Publishing,
    SimConfig, Split,
};

/// One fault of a schedule, times in ms from the start of the fault window. Node numbers
/// are taken modulo the cluster's size (peers, seeds, the seed minority), so any `u32` names
/// one.
#[derive(Clone, Debug, PartialEq)]
pub enum Gen {
    /// Peer `peer` crashes at `at` and, if `restart_after`, starts again (empty) that much
    /// later.
    CrashPeer {
        /// Which peer.
        peer: u32,
        /// When.
        at: u64,
        /// Restart this long after.
        restart_after: Option<u64>,
    },
    /// A seed of the minority crashes (and may restart).
    CrashSeed {
        /// Which seed of the minority.
        seed: u32,
        /// When.
        at: u64,
        /// Restart this long after.
        restart_after: Option<u64>,
    },
    /// A partition of kind `kind` (0 symmetric, 1 one-way, 2 with a bridge) cutting off a
    /// random `fraction` of the nodes, for `len` ms.
    Partition {
        /// 0 symmetric, 1 one-way, 2 bridge.
        kind: u8,
        /// Share of the nodes on the small side.
        fraction: f64,
        /// Picks which nodes.
        salt: u64,
        /// When.
        at: u64,
        /// How long.
        len: u64,
    },
    /// Messages dropped at `rate` for `len` ms.
    Drop {
        /// Share dropped.
        rate: f64,
        /// When.
        at: u64,
        /// How long.
        len: u64,
    },
    /// Messages duplicated at `rate` for `len` ms.
    Dup {
        /// Share duplicated.
        rate: f64,
        /// When.
        at: u64,
        /// How long.
        len: u64,
    },
    /// Up to `ms` of extra latency, at random, for `len` ms.
    Jitter {
        /// Most extra latency.
        ms: u64,
        /// When.
        at: u64,
        /// How long.
        len: u64,
    },
    /// A lying `DEAD_REPORT` about `peer` to `seed`.
    Lie {
        /// The accused peer.
        peer: u32,
        /// The seed told.
        seed: u32,
        /// When.
        at: u64,
    },
    /// A forger sends `ForgeKind::ALL[kind % 9]` about `peer` to `seed`.
    Forge {
        /// Which forgery.
        kind: u8,
        /// About which peer.
        peer: u32,
        /// To which seed.
        seed: u32,
        /// When.
        at: u64,
    },
    /// An on-path attacker replays every genuine commit sync so far to `seed`.
    Replay {
        /// To which seed.
        seed: u32,
        /// When.
        at: u64,
    },
    /// Peer `peer` leaves (as on SIGTERM) and, if `restart_after`, starts again later.
    Leave {
        /// Which peer.
        peer: u32,
        /// When.
        at: u64,
        /// Start again this long after.
        restart_after: Option<u64>,
    },
}

/// The fault window lasts this long after the last join.
pub const WINDOW_MS: u64 = 30_000;

/// A fault schedule: the cluster, its faults and adversaries (see [`Schedule::config`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The simulator's seed (the network, the nodes' randomness).
    pub seed: u64,
    /// Seeds in the config.
    pub seeds: u32,
    /// Peers that join.
    pub peers: u32,
    /// The faults, in any order.
    pub faults: Vec<Gen>,
    /// Lying seeds: this many (at most a minority), from seed `first_liar` on.
    pub liars: u32,
    /// The first lying seed (modulo the seeds).
    pub first_liar: u32,
    /// They lie to the end (else they stop at healing).
    pub keep_lying: bool,
    /// The peers pass gossip on in lazy mode (else they flood).
    pub lazy: bool,
}

impl Schedule {
    /// The simulator config of a schedule. Seed crashes are limited to a minority at any time
    /// (seed `i` may crash only if `i < (n−1)/2`), and every crashed seed restarts by healing.
    /// Lying seeds (a minority too, from `first_liar` on) may be among those that crash.
    pub fn config(&self, liveness: bool) -> SimConfig {
        let s = self;
        let mut c = SimConfig::new(s.seed, s.seeds, s.peers);
        c.net = NetConfig::chosen_by(s.seed);
        c.settings.max_gossip = 1_000; // keep gossiping through the liveness phase (promise 5)
        if s.lazy {
            c.settings.gossip_mode = GossipMode::Lazy;
        }
        let t0 = c.joins_end_ms() + 1_000;
        let minority = (s.seeds - 1) / 2;
        let mut faults = Vec::new();
        let mut push = |at: u64, kind: FaultKind| {
            faults.push(Fault {
                at_ms: t0 + at,
                kind,
            })
        };
        for f in &s.faults {
            match *f {
                Gen::CrashPeer {
                    peer,
                    at,
                    restart_after,
                } => {
                    let r = NodeRef::Peer(peer % s.peers);
                    push(at, FaultKind::Crash(r));
                    if let Some(d) = restart_after {
                        push(at + d, FaultKind::Restart(r));
                    }
                }
                Gen::CrashSeed {
                    seed,
                    at,
                    restart_after,
                } => {
                    if minority == 0 {
                        continue;
                    }
                    let r = NodeRef::Seed(seed % minority);
                    push(at, FaultKind::Crash(r));
                    if let Some(d) = restart_after {
                        push(at + d, FaultKind::Restart(r));
                    }
                }
                Gen::Partition {
                    kind,
                    fraction,
                    salt,
                    at,
                    len,
                } => {
                    let kind = match kind {
                        0 => PartitionKind::Symmetric,
                        1 => PartitionKind::OneWay,
                        _ => PartitionKind::Bridge { bridge: 0.1 },
                    };
                    push(
                        at,
                        FaultKind::Partition(Partition {
                            split: Split::Random { fraction, salt },
                            kind,
                        }),
                    );
                    push(at + len, FaultKind::HealPartition);
                }
                Gen::Drop { rate, at, len } => {
                    push(at, FaultKind::SetDrop(rate));
                    push(at + len, FaultKind::SetDrop(0.0));
                }
                Gen::Dup { rate, at, len } => {
                    push(at, FaultKind::SetDup(rate));
                    push(at + len, FaultKind::SetDup(0.0));
                }
                Gen::Jitter { ms, at, len } => {
                    push(at, FaultKind::SetJitter(ms));
                    push(at + len, FaultKind::SetJitter(0));
                }
                Gen::Lie { peer, seed, at } => push(
                    at,
                    FaultKind::Lie {
                        peer: peer % s.peers,
                        seed: seed % s.seeds,
                    },
                ),
                Gen::Forge {
                    kind,
                    peer,
                    seed,
                    at,
                } => push(
                    at,
                    FaultKind::Forge {
                        kind: ForgeKind::ALL[kind as usize % ForgeKind::ALL.len()],
                        seed: seed % s.seeds,
                        peer: peer % s.peers,
                    },
                ),
                Gen::Replay { seed, at } => push(
                    at,
                    FaultKind::ReplayCommits {
                        seed: seed % s.seeds,
                    },
                ),
                Gen::Leave {
                    peer,
                    at,
                    restart_after,
                } => {
                    let r = NodeRef::Peer(peer % s.peers);
                    push(at, FaultKind::Leave(r));
                    if let Some(d) = restart_after {
                        push(at + d, FaultKind::Restart(r));
                    }
                }
            }
        }
        c.faults = faults;
        c.lying_seeds = (0..s.liars.min(minority))
            .map(|i| (s.first_liar % s.seeds + i) % s.seeds)
            .collect();
        c.liars_stop_at_heal = !s.keep_lying;
        c.heal_at_ms = Some(t0 + WINDOW_MS + 15_000);
        c.liveness = liveness;
        // Application messages through the fault window and both of promise 5's check windows.
        c.publishing = Some(Publishing {
            every_ms: 10_000,
            bytes: 64,
            until_ms: t0 + WINDOW_MS + 15_000 + c.liveness_bound_ms() + 20_000,
        });
        if !liveness {
            c.duration_ms = Some(t0 + WINDOW_MS + 20_000);
        }
        c
    }

    /// A schedule drawn from `seed` alone, as the property tests draw theirs (the same
    /// kinds, weights and ranges), with `peers_max` peers at most: `sim --soak` runs these.
    pub fn random(seed: u64, peers_max: u32, lazy: bool) -> Schedule {
        let mut rng = Rng::new(seed);
        let mut r = |lo: u64, hi: u64| lo + rng.below(hi - lo);
        let seeds = r(3, 8) as u32;
        let peers = r(5, u64::from(peers_max.max(6)) + 1) as u32;
        let n = r(0, 8);
        let mut faults = Vec::new();
        for _ in 0..n {
            faults.push(random_fault(&mut r));
        }
        let liars = if r(0, 3) < 2 { 0 } else { r(1, 4) as u32 };
        Schedule {
            seed,
            seeds,
            peers,
            faults,
            liars,
            first_liar: r(0, 1 << 32) as u32,
            keep_lying: r(0, 2) == 1,
            lazy,
        }
    }
}

/// One fault, drawn with the property tests' weights: crash a peer 3, partition 2, forge 2,
/// every other kind 1.
fn random_fault(r: &mut impl FnMut(u64, u64) -> u64) -> Gen {
    const WEIGHTS: [u64; 10] = [3, 1, 2, 1, 1, 1, 1, 2, 1, 1];
    let mut pick = r(0, WEIGHTS.iter().sum());
    let kind = WEIGHTS
        .iter()
        .position(|&w| {
            let hit = pick < w;
            pick = pick.saturating_sub(w);
            hit
        })
        .unwrap_or(0);
    let at = r(0, WINDOW_MS);
    let len = r(500, 15_000);
    let restart = |r: &mut dyn FnMut(u64, u64) -> u64| (r(0, 2) == 1).then(|| r(500, 10_000));
    let unit = |r: &mut dyn FnMut(u64, u64) -> u64, lo: f64, hi: f64| {
        lo + (hi - lo) * r(0, 1 << 30) as f64 / f64::from(1u32 << 30)
    };
    let any32 = |r: &mut dyn FnMut(u64, u64) -> u64| r(0, 1 << 32) as u32;
    match kind {
        0 => Gen::CrashPeer {
            peer: any32(r),
            at,
            restart_after: restart(r),
        },
        1 => Gen::CrashSeed {
            seed: any32(r),
            at,
            restart_after: restart(r),
        },
        2 => Gen::Partition {
            kind: r(0, 3) as u8,
            fraction: unit(r, 0.05, 0.6),
            salt: r(0, u64::MAX),
            at,
            len,
        },
        3 => Gen::Drop {
            rate: unit(r, 0.01, 0.3),
            at,
            len,
        },
        4 => Gen::Dup {
            rate: unit(r, 0.01, 0.5),
            at,
            len,
        },
        5 => Gen::Jitter {
            ms: r(1, 400),
            at,
            len,
        },
        6 => Gen::Lie {
            peer: any32(r),
            seed: any32(r),
            at,
        },
        7 => Gen::Forge {
            kind: r(0, 256) as u8,
            peer: any32(r),
            seed: any32(r),
            at,
        },
        8 => Gen::Replay { seed: any32(r), at },
        _ => Gen::Leave {
            peer: any32(r),
            at,
            restart_after: restart(r),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_schedule_is_a_function_of_its_seed() {
        let a = Schedule::random(7, 30, false);
        assert_eq!(a, Schedule::random(7, 30, false));
        assert_ne!(a, Schedule::random(8, 30, false));
        assert!((3..=7).contains(&a.seeds) && (5..=30).contains(&a.peers));
        // every kind of fault turns up
        let kinds: std::collections::HashSet<std::mem::Discriminant<Gen>> = (0..200)
            .flat_map(|s| Schedule::random(s, 30, true).faults)
            .map(|f| std::mem::discriminant(&f))
            .collect();
        assert_eq!(kinds.len(), 10);
    }
}
