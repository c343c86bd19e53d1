//! Calls: every `Output::Send` from the send to its single `Input::Response` (the reply,
//! `Unreachable` or `Timeout`), its deliveries to the target (a duplicate on a second
//! connection), replies, and the network a message crosses (latency, loss). Calls live in a
//! table of reusable slots; an event names a call by slot and generation, so an event of a
//! finished call is stale and skipped.

use gossip_core::msg::{Endpoint, Message};
use gossip_core::{ConnId, Failure, Input, Millis};

use super::trace::fingerprint;
use super::{Ev, Sim, World, EXTERNAL, NOBODY};
use crate::actor::Actor;
use gossip_core::hash::mix64;

/// Generations wrap below the bit a connection id uses to mark a duplicate.
const GEN_MASK: u32 = (1 << 31) - 1;

/// How a call ends for its sender.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Reply,
    Unreachable,
    Timeout,
}

/// One `Output::Send`, from the send until its single `Input::Response` and the end of every
/// delivery of the request.
///
/// Two cache lines, in this order (`repr(C)`): a delivery reads only the first, the outcome
/// both. Calls in flight outnumber what the CPU cache holds, so each line read is a miss; the
/// trace hash's fingerprints are recomputed from the messages rather than stored, as the
/// nodes read those messages anyway.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(super) struct Call {
    pub(super) request: Option<Message>,
    pub(super) gen: u32,
    /// The target's node id, or `NOBODY` (its endpoint is then in `World::unknown_targets`).
    pub(super) to: u32,
    pub(super) from: u32,
    /// Deliveries of the request still in the queue.
    pub(super) inflight: u8,
    /// Connections (bit 0: first copy, bit 1: duplicate) delivered and not yet answered.
    pub(super) pending: u8,
    pub(super) live: bool,
    /// The sender got its response (or is gone).
    pub(super) done: bool,

    pub(super) reply: Option<Message>,
    pub(super) deadline: u64,
    pub(super) from_epoch: u32,
    pub(super) replied: bool,
    pub(super) timeout_armed: bool,
}

impl World {
    /// One-way latency from `a` to `b` now.
    #[inline]
    pub(super) fn latency(&mut self, a: u32, b: u32) -> u64 {
        let n = &self.net;
        let mut l = n.latency_min_ms;
        if n.latency_max_ms > n.latency_min_ms {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let h = mix64(self.link_salt ^ (u64::from(lo) << 32 | u64::from(hi)));
            l += h % (n.latency_max_ms - n.latency_min_ms + 1);
        }
        if n.jitter_ms > 0 {
            l += self.rng.below(n.jitter_ms + 1);
        }
        if n.tail > 0.0 && self.rng.chance(n.tail) {
            l += self.rng.below(n.tail_ms + 1);
        }
        if !self.slow.is_empty() {
            for &(node, extra) in &self.slow {
                if node == a || node == b {
                    l += self.rng.below(extra + 1);
                }
            }
        }
        l.max(1)
    }

    #[inline]
    pub(super) fn lost(&mut self) -> bool {
        self.net.drop > 0.0 && self.rng.chance(self.net.drop)
    }

    pub(super) fn alloc_call(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            i
        } else {
            self.calls.push(Call::default());
            (self.calls.len() - 1) as u32
        }
    }

    pub(super) fn free_if_finished(&mut self, call: u32) {
        let c = &mut self.calls[call as usize];
        if c.live && c.done && c.inflight == 0 {
            c.live = false;
            c.gen = (c.gen + 1) & GEN_MASK;
            c.request = None;
            c.reply = None;
            if c.to == NOBODY {
                self.unknown_targets.remove(&call);
            }
            self.free.push(call);
        }
    }

    pub(super) fn arm_timeout(&mut self, call: u32) {
        let c = &mut self.calls[call as usize];
        if !c.timeout_armed && !c.done {
            c.timeout_armed = true;
            let (deadline, gen) = (c.deadline, c.gen);
            self.q.push(
                deadline,
                Ev::Answer {
                    call,
                    gen,
                    outcome: Outcome::Timeout,
                },
            );
        }
    }

    /// Schedules an outcome arriving at `at`; past the deadline it becomes a timeout there.
    pub(super) fn answer_at(&mut self, call: u32, at: u64, outcome: Outcome) {
        let c = &self.calls[call as usize];
        if at > c.deadline {
            let (a, b) = (c.from, c.to);
            self.checker.link_lost(self.q.now(), a, b);
            self.messages_lost += 1;
            self.arm_timeout(call);
        } else {
            let gen = c.gen;
            self.q.push(at, Ev::Answer { call, gen, outcome });
        }
    }

    /// Carries out `Output::Send` from `from` (in `from_epoch`). A send that wants no response
    /// is done from the start: its request is delivered, its reply dropped, and no timeout
    /// or refusal travels back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        now: u64,
        from: u32,
        from_epoch: u32,
        to_ep: Endpoint,
        msg: Message,
        deadline: Millis,
        wants_response: bool,
    ) {
        if from != EXTERNAL {
            // Counts gossip sends (statistics) and queues the DEAD_REPORT check (reported only
            // when checks are on).
            self.checker.on_send(from, &msg);
            if self.addrs.is_seed(from) {
                self.record_commit(&msg);
            }
            for tap in &mut self.taps {
                tap.on_send(now, from, &msg);
            }
        }
        let to = self.addrs.node(&to_ep).unwrap_or(NOBODY);
        let call = self.alloc_call();
        if to == NOBODY {
            self.unknown_targets.insert(call, to_ep);
        }
        let c = &mut self.calls[call as usize];
        c.live = true;
        c.from = from;
        c.from_epoch = from_epoch;
        c.to = to;
        c.deadline = deadline.0.max(now);
        c.request = Some(msg);
        c.reply = None;
        c.inflight = 0;
        c.pending = 0;
        c.replied = false;
        c.timeout_armed = false;
        c.done = !wants_response;
        let gen = c.gen;
        let deadline = c.deadline;
        if to == NOBODY {
            if wants_response {
                let at = now + self.net.latency_min_ms.max(1);
                self.answer_at(call, at, Outcome::Unreachable);
            } else {
                self.free_if_finished(call);
            }
            return;
        }
        if self.blocked(from, to, false) || self.lost() {
            self.checker.link_lost(self.q.now(), from, to);
            self.messages_lost += 1;
            self.arm_timeout(call);
            self.free_if_finished(call);
            return;
        }
        let at = now + self.latency(from, to);
        self.calls[call as usize].inflight = 1;
        self.q.push(
            at,
            Ev::Deliver {
                call,
                gen,
                dup: false,
            },
        );
        if at > deadline {
            self.checker.link_lost(self.q.now(), from, to);
            self.arm_timeout(call);
        }
        if self.net.dup > 0.0 && self.rng.chance(self.net.dup) {
            let at = now + self.latency(from, to);
            self.calls[call as usize].inflight += 1;
            self.q.push(
                at,
                Ev::Deliver {
                    call,
                    gen,
                    dup: true,
                },
            );
        }
    }

    /// Carries out `Output::Reply` from `node`.
    pub(super) fn reply(&mut self, now: u64, node: u32, conn: ConnId, mut msg: Message) {
        self.checker.on_reply(&msg);
        let call = (conn.0 & 0xffff_ffff) as u32;
        let gen = ((conn.0 >> 32) as u32) & GEN_MASK;
        let bit = if conn.0 >> 63 == 1 { 2 } else { 1 };
        let Some(c) = self.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen || c.to != node {
            return; // the call is over (timed out, sender gone): the reply goes nowhere
        }
        c.pending &= !bit;
        if c.replied || c.done {
            return; // a duplicate's reply: the sender sees only the first
        }
        c.replied = true;
        let from = c.from;
        if from == EXTERNAL {
            c.done = true;
            self.free_if_finished(call);
            return;
        }
        if self.blocked(node, from, true) || self.lost() {
            self.checker.link_lost(self.q.now(), node, from);
            self.messages_lost += 1;
            self.arm_timeout(call);
            return;
        }
        if self.any_liars && self.lying(node) {
            self.forge_sync_reply(node, &mut msg);
        }
        if self.any_sybils && self.is_sybil(node) {
            self.sybil_reply(&mut msg);
        }
        let c = &mut self.calls[call as usize];
        c.reply = Some(msg);
        let at = now + self.latency(node, from);
        self.answer_at(call, at, Outcome::Reply);
    }
}

impl<A: Actor> Sim<A> {
    pub(super) fn deliver(&mut self, now: u64, call: u32, gen: u32, dup: bool) {
        let Some(c) = self.w.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen {
            return;
        }
        c.inflight -= 1;
        let to = c.to;
        let from = c.from;
        let up = self
            .nodes
            .get(to as usize)
            .is_some_and(|s| s.actor.is_some());
        if up {
            let bit = if dup { 2 } else { 1 };
            c.pending |= bit;
            let msg = if c.done && c.inflight == 0 {
                c.request.take()
            } else {
                c.request.clone()
            };
            let Some(msg) = msg else {
                return;
            };
            let conn = ConnId(u64::from(call) | u64::from(gen) << 32 | u64::from(dup) << 63);
            self.w.hash_event(now, to, fingerprint(&msg));
            if self.w.any_liars && self.w.lying(to) {
                if let Some(lie) = self.w.lying_answer(&msg, to) {
                    // The lying seed answers in its node's stead; the node never sees it.
                    self.w.reply(now, to, conn, lie);
                    self.w.free_if_finished(call);
                    return;
                }
            }
            if self.w.any_sybils && self.w.is_sybil(to) {
                if let Some(answer) = self.w.sybil_answer(&msg, to) {
                    // So does a Sybil, for what its attack answers itself.
                    self.w.reply(now, to, conn, answer);
                    self.w.free_if_finished(call);
                    return;
                }
            }
            if let Some(actor) = self.nodes[to as usize].actor.as_mut() {
                let input = Input::Request { conn, msg };
                actor.handle(Millis(now), input, &mut self.outputs);
            }
            self.after(now, to, false);
            let c = &self.w.calls[call as usize];
            if c.pending & bit != 0 && !c.done {
                self.w.arm_timeout(call); // a deferred reply may never come
            }
        } else if !dup && !c.done {
            // Connection refused; the refusal travels back.
            let at = now
                + if from == EXTERNAL {
                    1
                } else {
                    self.w.latency(to, from)
                };
            self.w.answer_at(call, at, Outcome::Unreachable);
        }
        self.w.free_if_finished(call);
    }

    pub(super) fn answer(&mut self, now: u64, call: u32, gen: u32, outcome: Outcome) {
        let Some(c) = self.w.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen || c.done {
            return;
        }
        c.done = true;
        let from = c.from;
        let sender_here = from != EXTERNAL
            && self
                .nodes
                .get(from as usize)
                .is_some_and(|s| s.epoch == c.from_epoch && s.actor.is_some());
        if sender_here {
            let request = if c.inflight == 0 {
                c.request.take()
            } else {
                c.request.clone()
            };
            let result = match outcome {
                Outcome::Reply => c.reply.take().ok_or(Failure::Timeout),
                Outcome::Unreachable => Err(Failure::Unreachable),
                Outcome::Timeout => Err(Failure::Timeout),
            };
            let to = match c.to {
                NOBODY => self.w.unknown_targets.get(&call).copied(),
                node => Some(self.w.addrs.endpoint(node)),
            };
            if let (Some(request), Some(to)) = (request, to) {
                let fp = fingerprint(&request)
                    ^ match &result {
                        Ok(reply) => fingerprint(reply) << 1,
                        Err(f) => 0x6661_696c ^ *f as u64,
                    };
                self.w.hash_event(now, from, fp);
                if let Some(actor) = self.nodes[from as usize].actor.as_mut() {
                    let input = Input::Response {
                        to,
                        request,
                        outcome: result,
                    };
                    actor.handle(Millis(now), input, &mut self.outputs);
                }
                self.after(now, from, false);
            }
        }
        self.w.free_if_finished(call);
    }
}
