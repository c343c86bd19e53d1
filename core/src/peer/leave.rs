//! Leaving the network ([`crate::Input::Leave`]: SIGTERM, SIGINT, `gossipctl leave`).
//!
//! The peer asks every seed to certify its `LEFT` entry (`LEAVE`) and tells every neighbour
//! (`LEAVE` too). Nobody can make a live peer leave: a seed votes `LEFT`, and a neighbour
//! drops its link, only after its own `PING` of the peer is answered with `leaving: true`,
//! which only the peer itself, at its own address, says. From then on the peer does nothing
//! of its own accord (no probes, no gossip, no refresh): it answers, and waits for the seeds'
//! and the neighbours' answers. It is done when a seed certified the leave (or every seed
//! answered or failed) and every neighbour answered; the driver exits then, or at its own
//! deadline (unreachable seeds: failure detection removes the peer instead).

use std::collections::BTreeSet;

use super::overlay::Overlay;
use super::Cx;
use crate::msg::{Endpoint, LeaveReq, Message};
use crate::{Event, Failure};

/// A leave in progress.
#[derive(Debug)]
pub(super) struct Leaving {
    seeds_awaiting: BTreeSet<Endpoint>,
    /// Seeds whose round certified `LEFT`.
    certified: Vec<Endpoint>,
    neighbours_awaiting: BTreeSet<Endpoint>,
    /// Neighbours that dropped the link on this peer's word.
    neighbours_dropped: u32,
    done: bool,
}

impl Leaving {
    /// Starts leaving at `incarnation`: `LEAVE` to every seed and every neighbour. A peer
    /// that was never admitted (`registered` false) has nothing to certify: done at once.
    pub(super) fn start(
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        registered: bool,
        incarnation: u64,
    ) -> Leaving {
        cx.timers.clear();
        let seeds: Vec<Endpoint> = if registered {
            cx.seeds.to_vec()
        } else {
            Vec::new()
        };
        let neighbours: Vec<Endpoint> = overlay.keys().copied().collect();
        cx.emit(Event::Leaving {
            incarnation,
            seeds: seeds.clone(),
            neighbours: neighbours.clone(),
        });
        let leave = Message::Leave(Box::new(LeaveReq {
            peer: cx.me,
            incarnation,
        }));
        // A seed answers after its round (its probe of this peer, then the votes).
        let round = cx.after(cx.settings.register_timeout_ms);
        for &seed in &seeds {
            cx.send(seed, leave.clone(), round);
        }
        // A neighbour answers after its own probe of this peer.
        let check = cx.after(cx.settings.probe_timeout_ms + cx.settings.request_timeout_ms);
        for &n in &neighbours {
            cx.send(n, leave.clone(), check);
        }
        let mut leaving = Leaving {
            seeds_awaiting: seeds.into_iter().collect(),
            certified: Vec::new(),
            neighbours_awaiting: neighbours.into_iter().collect(),
            neighbours_dropped: 0,
            done: false,
        };
        leaving.settle(cx);
        leaving
    }

    /// The answer to one of this peer's `LEAVE`s (or why none came).
    pub(super) fn on_result(
        &mut self,
        cx: &mut Cx<'_>,
        from: Endpoint,
        outcome: &Result<Message, Failure>,
    ) {
        let success = matches!(outcome, Ok(Message::LeaveResult(r)) if r.success);
        if self.seeds_awaiting.remove(&from) {
            if success {
                self.certified.push(from);
            }
        } else if self.neighbours_awaiting.remove(&from) && success {
            self.neighbours_dropped += 1;
        }
        self.settle(cx);
    }

    /// Done once a seed certified the leave (or none can) and every neighbour answered.
    fn settle(&mut self, cx: &mut Cx<'_>) {
        let seeds_settled = !self.certified.is_empty() || self.seeds_awaiting.is_empty();
        if self.done || !seeds_settled || !self.neighbours_awaiting.is_empty() {
            return;
        }
        self.done = true;
        cx.emit(Event::Left {
            seeds: self.certified.clone(),
            neighbours: self.neighbours_dropped,
        });
    }

    /// Nothing more to wait for: the driver may exit.
    pub(super) fn done(&self) -> bool {
        self.done
    }
}
