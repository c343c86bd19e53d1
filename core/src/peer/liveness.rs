//! Liveness: neighbour probes, suspicion rounds with witnesses and the dead report (the
//! detector's side), and probing a suspect on another detector's behalf (the witness's side).
//! All `PING`s go through one table so roles probing the same endpoint share one probe.

use super::{
    count, pick_witnesses, verdict, Accusation, Peer, PingRole, PingWaiters, Suspicion, Timer,
    ACCUSATION_RETRIES, MAX_ACCUSATIONS, MAX_PENDING_WITNESS,
};
use crate::msg::{DeadReport, Endpoint, Message, Ping, SuspectAck, SuspectReq};
use crate::{ConnId, Event, Failure, Millis};

impl Peer {
    // ----- probes ---------------------------------------------------------------------------

    /// Pings `to` for `role`, sharing a `PING` already in flight to the same endpoint.
    pub(super) fn ping(&mut self, now: Millis, to: Endpoint, role: PingRole) {
        let (fresh, waiters) = match self.pings.iter().position(|(p, _)| *p == to) {
            Some(i) => (false, &mut self.pings[i].1),
            None => {
                self.pings.push((to, PingWaiters::default()));
                let last = self.pings.len() - 1;
                (true, &mut self.pings[last].1)
            }
        };
        match role {
            PingRole::Probe => waiters.probe = true,
            PingRole::Greeter => waiters.greeter = true,
            PingRole::Candidate => waiters.candidate = true,
            PingRole::Recheck => waiters.recheck = true,
            PingRole::Witness(conn, requester) => waiters.witnesses.push((conn, requester)),
        }
        if fresh {
            self.counters.probes_sent += 1;
            let msg = Message::Ping(Ping { sender: self.me });
            self.send(to, msg, now.after(self.settings.probe_timeout_ms));
        }
    }

    /// Any reply at all proves the node is up; a failure is a miss.
    pub(super) fn on_ping_outcome(
        &mut self,
        now: Millis,
        to: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let Some(i) = self.pings.iter().position(|(p, _)| *p == to) else {
            return;
        };
        let (_, waiters) = self.pings.swap_remove(i);
        let alive = outcome.is_ok();
        if waiters.candidate {
            self.on_candidate_outcome(now, to, &outcome);
        }
        for (conn, requester) in waiters.witnesses {
            self.witness_pending = self.witness_pending.saturating_sub(1);
            self.answer_witness(conn, to, requester, alive);
        }
        if waiters.probe {
            self.on_probe_outcome(now, to, alive);
        }
        if waiters.recheck {
            self.on_recheck_outcome(now, to, alive);
        }
        if waiters.greeter {
            self.on_greeter_probed(to, alive);
        }
    }

    // ----- liveness: detector ---------------------------------------------------------------

    /// Probes every neighbour with no probe in flight, except one whose own `PING` arrived
    /// since the last round while nothing was amiss: it was up a moment ago, and both ends of
    /// a link probing each other every interval doubled the probe traffic for nothing. A
    /// neighbour that stops pinging is probed again from the next round, so a crash is seen
    /// at most one interval later; one that has missed a probe is probed every round.
    pub(super) fn probe_neighbours(&mut self, now: Millis) {
        for i in 0..self.neighbours.len() {
            let Some((&peer, link)) = self.neighbours.get_index_mut(i) else {
                break;
            };
            let heard = std::mem::take(&mut link.heard);
            if link.probing || (heard && link.misses == 0) {
                continue;
            }
            link.probing = true;
            self.ping(now, peer, PingRole::Probe);
        }
        self.timers
            .set(Timer::Probe, now.after(self.settings.probe_interval_ms));
    }

    pub(super) fn on_probe_outcome(&mut self, now: Millis, peer: Endpoint, alive: bool) {
        let Some(link) = self.neighbours.get_mut(&peer) else {
            return;
        };
        link.probing = false;
        if alive {
            link.misses = 0;
            self.withdraw_suspicion(peer);
            return;
        }
        link.misses = link.misses.saturating_add(1);
        self.counters.probes_missed += 1;
        let misses = link.misses;
        if misses >= self.settings.probe_misses && !self.suspicions.contains_key(&peer) {
            self.raise_suspicion(now, peer, misses);
        }
    }

    /// Asks witnesses (other neighbours first) to probe `suspect` themselves.
    pub(super) fn raise_suspicion(&mut self, now: Millis, suspect: Endpoint, misses: u32) {
        let preferred: Vec<Endpoint> = self
            .neighbours
            .keys()
            .filter(|&&p| p != suspect)
            .copied()
            .collect();
        let others: Vec<Endpoint> = self
            .known
            .keys()
            .filter(|&p| p != suspect && !self.neighbours.contains_key(&p))
            .collect();
        let k = self.settings.witnesses as usize;
        let witnesses = pick_witnesses(&preferred, &others, k, &mut self.rng);
        self.counters.suspicions += 1;
        self.emit(Event::SuspicionRaised {
            suspect,
            misses,
            witnesses: witnesses.clone(),
        });
        let round = Suspicion {
            awaiting: witnesses.iter().copied().collect(),
            dead: Vec::new(),
            alive: 0,
        };
        if witnesses.is_empty() {
            self.conclude(now, suspect, round);
            return;
        }
        self.suspicions.insert(suspect, round);
        let deadline = now.after(self.settings.suspect_timeout_ms);
        for w in witnesses {
            let req = SuspectReq {
                suspect,
                requester: self.me,
            };
            self.send(w, Message::SuspectReq(Box::new(req)), deadline);
        }
    }

    /// The suspect answered the detector's own probe while its witnesses were still out: the
    /// detector's vote turns to alive, so no report can follow. Later witness answers find no
    /// round and are ignored.
    pub(super) fn withdraw_suspicion(&mut self, suspect: Endpoint) {
        if let Some(round) = self.suspicions.remove(&suspect) {
            self.emit(Event::SuspicionVerdict {
                suspect,
                dead_votes: count(round.dead.len()),
                alive_votes: round.alive.saturating_add(1),
                dead_witnesses: round.dead,
                consensus: false,
            });
        }
    }

    /// A witness's answer is a vote; a failure or any other reply is no vote.
    pub(super) fn on_suspect_ack(
        &mut self,
        now: Millis,
        witness: Endpoint,
        suspect: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let Some(round) = self.suspicions.get_mut(&suspect) else {
            return;
        };
        if !round.awaiting.remove(&witness) {
            return;
        }
        if let Ok(Message::SuspectAck(ack)) = outcome {
            if ack.suspect == suspect {
                if ack.alive {
                    round.alive += 1;
                } else {
                    round.dead.push(witness);
                }
            }
        }
        if round.awaiting.is_empty() {
            if let Some(round) = self.suspicions.remove(&suspect) {
                self.conclude(now, suspect, round);
            }
        }
    }

    /// Tallies a finished round; on consensus reports, drops the neighbour and repairs.
    pub(super) fn conclude(&mut self, now: Millis, suspect: Endpoint, round: Suspicion) {
        let v = verdict(count(round.dead.len()), round.alive);
        self.emit(Event::SuspicionVerdict {
            suspect,
            dead_votes: v.dead_votes,
            alive_votes: v.alive_votes,
            dead_witnesses: round.dead.clone(),
            consensus: v.consensus,
        });
        if !v.consensus {
            if let Some(link) = self.neighbours.get_mut(&suspect) {
                link.misses = 0;
            }
            self.accusations.remove(&suspect);
            return;
        }
        self.report_dead(now, suspect, round.dead);
        self.drop_neighbour(suspect, "dead");
        self.known.remove(&suspect);
        self.refresh_peer_list(now);
    }

    /// `DEAD_REPORT` to a quorum of random seeds, naming the incarnation accused if known.
    pub(super) fn report_dead(&mut self, now: Millis, dead: Endpoint, witnesses: Vec<Endpoint>) {
        let timestamp = self.unix_secs(now);
        let text = format!(
            "Dead Node:{}:{}:{}:{}",
            dead.ip(),
            dead.port(),
            timestamp,
            self.me.ip()
        );
        let report = DeadReport {
            dead,
            self_ip: self.me.ip(),
            timestamp,
            reporter: self.me,
            text: Some(text.clone()),
            incarnation: match self.accusations.get(&dead) {
                Some(accusation) => accusation.incarnation,
                None => self.known.get(&dead).flatten(),
            },
            witnesses,
        };
        let seeds = self.rng.sample(&self.seeds, self.quorum());
        self.follow_accusation(dead, report.incarnation, &seeds);
        let deadline = now.after(self.settings.register_timeout_ms);
        for &seed in &seeds {
            self.send(
                seed,
                Message::DeadReport(Box::new(report.clone())),
                deadline,
            );
        }
        self.counters.dead_reports += 1;
        self.emit(Event::DeadReported {
            suspect: dead,
            text,
            seeds,
        });
    }

    // ----- liveness: following a report until a seed commits it ---------------------------

    /// Remembers what a report was sent to, so an unsettled one can be retried.
    fn follow_accusation(&mut self, dead: Endpoint, incarnation: Option<u64>, seeds: &[Endpoint]) {
        let awaiting = seeds.iter().copied().collect();
        if let Some(accusation) = self.accusations.get_mut(&dead) {
            accusation.awaiting = awaiting;
        } else if self.accusations.len() < MAX_ACCUSATIONS {
            let accusation = Accusation {
                incarnation,
                awaiting,
                retries_left: ACCUSATION_RETRIES,
            };
            self.accusations.insert(dead, accusation);
        }
    }

    /// A seed answered a `DEAD_REPORT` (or could not): a commit settles the accusation.
    pub(super) fn on_dead_result(
        &mut self,
        seed: Endpoint,
        dead: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let success = matches!(&outcome, Ok(Message::DeadResult(r)) if r.success);
        if let Ok(Message::DeadResult(_)) = outcome {
            self.emit(Event::DeadReportOutcome {
                suspect: dead,
                seed,
                success,
            });
        }
        if success {
            self.accusations.remove(&dead);
        } else if let Some(accusation) = self.accusations.get_mut(&dead) {
            accusation.awaiting.remove(&seed);
        }
    }

    /// On each refresh: probe again every accused peer whose last report no seed committed.
    pub(super) fn recheck_accusations(&mut self, now: Millis) {
        let mut due = Vec::new();
        self.accusations.retain(|&dead, accusation| {
            if !accusation.awaiting.is_empty() {
                return true;
            }
            if accusation.retries_left == 0 {
                return false;
            }
            accusation.retries_left -= 1;
            due.push(dead);
            true
        });
        for dead in due {
            self.ping(now, dead, PingRole::Recheck);
        }
    }

    /// The accused answered: it is alive after all. Still silent: ask witnesses again.
    fn on_recheck_outcome(&mut self, now: Millis, dead: Endpoint, alive: bool) {
        if !self.accusations.contains_key(&dead) {
            return;
        }
        if alive {
            self.accusations.remove(&dead);
        } else if !self.suspicions.contains_key(&dead) {
            self.raise_suspicion(now, dead, self.settings.probe_misses);
        }
    }

    /// A Peer List still listing an accused peer renews its retries; a complete one that no
    /// longer lists it means the removal happened.
    pub(super) fn note_listed(&mut self, peers: &[Endpoint], complete: bool) {
        for (dead, accusation) in self.accusations.iter_mut() {
            if peers.contains(dead) {
                accusation.retries_left = ACCUSATION_RETRIES;
            }
        }
        if complete {
            self.accusations
                .retain(|dead, accusation| !accusation.awaiting.is_empty() || peers.contains(dead));
        }
    }

    // ----- liveness: witness ----------------------------------------------------------------

    /// Probes the suspect and answers when the probe's outcome is in (deferred reply).
    pub(super) fn on_suspect_req(&mut self, now: Millis, conn: ConnId, req: SuspectReq) {
        if req.suspect == self.me {
            self.answer_witness(conn, req.suspect, req.requester, true);
        } else if self.witness_pending >= MAX_PENDING_WITNESS {
            self.reply(conn, Message::error("busy: too many suspicions pending"));
        } else {
            self.witness_pending += 1;
            self.ping(now, req.suspect, PingRole::Witness(conn, req.requester));
        }
    }

    pub(super) fn answer_witness(
        &mut self,
        conn: ConnId,
        suspect: Endpoint,
        requester: Endpoint,
        alive: bool,
    ) {
        let ack = SuspectAck {
            suspect,
            alive,
            confirmer: self.me,
        };
        self.reply(conn, Message::SuspectAck(Box::new(ack)));
        self.emit(Event::SuspectAnswered {
            suspect,
            requester,
            alive,
        });
    }
}
