//! Faults: crashes and restarts, partitions and their healing, network rate changes, the
//! lying peer's `DEAD_REPORT`, and the moment faults stop (healing). Every scheduled fault
//! is a [`FaultKind`] applied at its time; tests apply them on cue with [`Sim::inject`].

use gossip_core::hash::mix64;
use gossip_core::msg::{DeadReport, Message};
use gossip_core::Millis;

use super::calls::Outcome;
use super::{Sim, World, EXTERNAL, NONE, UNIX_MS_AT_ZERO};
use crate::actor::Actor;
use crate::addr::LIAR;
use crate::config::{FaultKind, NodeRef, Partition, PartitionKind, Split};

#[derive(Debug)]
pub(super) struct PartState {
    /// 0: side A, 1: side B, 2: bridge.
    labels: Vec<u8>,
    blocked: [[bool; 3]; 3],
    replies_blocked: bool,
}

impl World {
    #[inline]
    pub(super) fn blocked(&self, from: u32, to: u32, reply: bool) -> bool {
        match &self.part {
            None => false,
            Some(p) => {
                if reply && !p.replies_blocked {
                    return false;
                }
                match (p.labels.get(from as usize), p.labels.get(to as usize)) {
                    (Some(&a), Some(&b)) => p.blocked[a as usize][b as usize],
                    _ => false,
                }
            }
        }
    }
}

impl<A: Actor> Sim<A> {
    /// Crashes node `r` now: its state and queued events are lost, requests to it fail.
    pub fn crash(&mut self, r: NodeRef) {
        let now = self.now();
        let node = self.id(r);
        self.crash_node(now, node);
    }

    /// Restarts node `r` now with fresh state (no-op if it is up).
    pub fn restart(&mut self, r: NodeRef) {
        let now = self.now();
        let node = self.id(r);
        self.start_node(now, node);
    }

    /// Applies a fault now (as if scheduled).
    pub fn inject(&mut self, kind: FaultKind) {
        let now = self.now();
        self.apply(now, kind);
    }

    pub(super) fn crash_node(&mut self, now: u64, node: u32) {
        let Some(slot) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if slot.actor.take().is_none() {
            return;
        }
        slot.epoch += 1;
        slot.timer_at = NONE;
        slot.leaving = false;
        self.w.checker.crashed(now, node);
        // Every request it accepted and had not answered fails for its sender.
        for call in 0..self.w.calls.len() as u32 {
            let c = &mut self.w.calls[call as usize];
            if c.live && c.to == node && c.pending != 0 && !c.done {
                c.pending = 0;
                let from = c.from;
                let at = now
                    + if from == EXTERNAL {
                        1
                    } else {
                        self.w.latency(node, from)
                    };
                self.w.answer_at(call, at, Outcome::Unreachable);
            }
        }
    }

    pub(super) fn apply(&mut self, now: u64, kind: FaultKind) {
        match kind {
            FaultKind::Crash(r) => {
                let n = self.id(r);
                self.crash_node(now, n);
            }
            FaultKind::Restart(r) => {
                let n = self.id(r);
                if (n as usize) < self.nodes.len() && self.nodes[n as usize].life > 0 {
                    self.start_node(now, n);
                }
            }
            FaultKind::Leave(r) => {
                let n = self.id(r);
                self.leave_node(now, n);
            }
            FaultKind::Partition(p) => self.w.part = Some(self.partition_state(&p)),
            FaultKind::HealPartition => self.w.part = None,
            FaultKind::SetDrop(x) => self.w.net.drop = x.clamp(0.0, 1.0),
            FaultKind::SetDup(x) => self.w.net.dup = x.clamp(0.0, 1.0),
            FaultKind::SetJitter(j) => self.w.net.jitter_ms = j,
            FaultKind::Slow { node, extra_ms } => {
                let n = self.id(node);
                self.w.slow.retain(|(s, _)| *s != n);
                if extra_ms > 0 {
                    self.w.slow.push((n, extra_ms));
                }
            }
            FaultKind::Lie { peer, seed } => self.lying_report(now, peer, seed),
            FaultKind::Forge { kind, seed, peer } => self.forge(now, kind, seed, peer),
            FaultKind::ReplayCommits { seed } => {
                let seed = seed % self.w.addrs.seeds.max(1);
                self.w.replay_commits(now, seed);
            }
        }
    }

    pub(super) fn partition_state(&self, p: &Partition) -> PartState {
        let n = self.w.addrs.nodes();
        let unit = |h: u64| (h >> 11) as f64 / (1u64 << 53) as f64;
        let mut labels: Vec<u8> = match &p.split {
            Split::Random { fraction, salt } => (0..n)
                .map(|i| {
                    u8::from(unit(mix64(salt ^ u64::from(i).wrapping_mul(0x9e37))) >= *fraction)
                })
                .collect(),
            Split::Nodes(list) => {
                let mut l = vec![1u8; n as usize];
                for r in list {
                    if let Some(x) = l.get_mut(self.id(*r) as usize) {
                        *x = 0;
                    }
                }
                l
            }
        };
        let mut blocked = [[false; 3]; 3];
        let mut replies_blocked = true;
        match p.kind {
            PartitionKind::Symmetric => {
                blocked[0][1] = true;
                blocked[1][0] = true;
            }
            PartitionKind::OneWay => {
                blocked[0][1] = true;
                replies_blocked = false;
            }
            PartitionKind::Bridge { bridge } => {
                blocked[0][1] = true;
                blocked[1][0] = true;
                let salt = match &p.split {
                    Split::Random { salt, .. } => *salt,
                    Split::Nodes(_) => 0,
                };
                for (i, l) in labels.iter_mut().enumerate() {
                    if unit(mix64(!salt ^ (i as u64).wrapping_mul(0x7f4a))) < bridge {
                        *l = 2;
                    }
                }
            }
        }
        PartState {
            labels,
            blocked,
            replies_blocked,
        }
    }

    /// The simulator plays a lying peer: a `DEAD_REPORT` accusing live peer `peer`, with two
    /// made-up witnesses, to seed `seed`.
    pub(super) fn lying_report(&mut self, now: u64, peer: u32, seed: u32) {
        let a = self.w.addrs;
        if peer >= a.peers || seed >= a.seeds {
            return;
        }
        let dead = a.endpoint(a.seeds + peer);
        let witnesses = (1..=2)
            .map(|k| a.endpoint(a.seeds + (peer + k) % a.peers))
            .collect();
        let ts = (UNIX_MS_AT_ZERO + now) / 1000;
        let msg = Message::DeadReport(Box::new(DeadReport::new(dead, LIAR, ts, None, witnesses)));
        let deadline = Millis(now + self.w.cfg.settings.register_timeout_ms);
        self.w
            .send(now, EXTERNAL, 0, a.endpoint(seed), msg, deadline, true);
    }

    /// Faults stop: the partition heals, the base network returns, crashed seeds restart
    /// (empty); crashed peers stay down, so their removal can be checked.
    pub(super) fn heal(&mut self, now: u64) {
        self.w.healed = true;
        self.w.part = None;
        self.w.net = self.w.cfg.net.clone();
        for s in 0..self.w.addrs.seeds {
            if self.nodes[s as usize].actor.is_none() {
                self.start_node(now, s);
            }
        }
    }
}
