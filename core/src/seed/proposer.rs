//! The rounds this seed runs: a registration for a `REGISTER_REQ` (after its own probe of
//! the registrant), a removal for a `DEAD_REPORT`, and a re-certification for a change it
//! pulled that its voters could no longer vouch for. Any seed may propose; a round asks every
//! seed, counts the votes, and commits on a quorum of yes or aborts at its deadline.

use super::round::{self, Probed, Round, Verdict, MAX_INCARNATION};
use super::voter::{Ballot, BallotBox};
use super::{Core, Timer, MAX_PENDING, MAX_RECERTIFYING};
use crate::event::{ChangeSource, Event, ProposalKind};
use crate::msg::{
    CommitSync, DeadReport, DeadResult, Decision, Endpoint, Entry, Fact, LeaveReq, Message,
    RegisterReq, RegisterResult, Status, VoteReq,
};
use crate::{ConnId, Failure, Millis};

/// Fresh registration rounds a proposer starts, above an incarnation a voter reported, before
/// it gives up.
const MAX_RETRIES: u32 = 2;

impl Core {
    // ----- registration -----

    pub(super) fn on_register_req(&mut self, now: Millis, conn: ConnId, req: RegisterReq) {
        let peer = req.peer;
        if self.certifier.is_seed(&peer) {
            return self.reject(conn, format!("REGISTER_REQ: {peer} is a seed, not a peer"));
        }
        if req.incarnation.is_some_and(|inc| inc >= MAX_INCARNATION) {
            return self.refuse_registration(conn, "incarnation out of range".into());
        }
        if self.stopping {
            return self.refuse_registration(conn, "this seed is shutting down".into());
        }
        if self.answer_without_new_round(conn, &req) {
            return;
        }
        self.probe_registrant(now, conn, req);
    }

    /// Answers `req` at once if the peer is already registered as asked, or joins it to a
    /// round in flight that would satisfy it (one round serves every such request). False if
    /// a new round is needed.
    fn answer_without_new_round(&mut self, conn: ConnId, req: &RegisterReq) -> bool {
        if let Some(inc) = self.already_registered(req) {
            let done = self.result(
                ProposalKind::Register,
                "",
                true,
                self.quorum(),
                Some(inc),
                None,
            );
            self.reply(conn, done);
            return true;
        }
        match self
            .rounds
            .about(ProposalKind::Register, req.peer)
            .filter(|r| round::satisfies(r.incarnation, req.incarnation))
        {
            Some(round) => {
                round.waiting.push(conn);
                true
            }
            None => false,
        }
    }

    /// The peer's incarnation if it is admitted at (or above) the one it asks for: then the
    /// request is answered at once, as the reference does, with no round.
    fn already_registered(&self, req: &RegisterReq) -> Option<u64> {
        match self.pl.rank(&req.peer)? {
            (inc, Status::Alive) if round::satisfies(inc, req.incarnation) => Some(inc),
            _ => None,
        }
    }

    /// This seed's `PING` of the registrant ended: refuse it if it did not answer or asks
    /// for more than this seed can vouch for; else propose its admission, with this seed's
    /// own yes already earned by the probe.
    pub(super) fn admit_after_probe(
        &mut self,
        now: Millis,
        conn: ConnId,
        req: RegisterReq,
        probed: Probed,
    ) {
        let peer = req.peer;
        if !probed.answered {
            return self.refuse_registration(conn, format!("{peer} did not answer a probe"));
        }
        // The world may have moved while the probe ran: decide afresh.
        if self.answer_without_new_round(conn, &req) {
            return;
        }
        let current = self.pl.rank_or_reaped(&peer);
        let inc = round::registration_incarnation(current, req.incarnation);
        if round::register_after_probe(current, inc, probed) != round::Check::Yes {
            return self.refuse_registration(
                conn,
                format!("incarnation {inc} is more than one step above what this seed knows"),
            );
        }
        let deadline = now.after(self.settings.vote_timeout_ms);
        let mut round = Round::new(ProposalKind::Register, peer, inc, deadline, vec![conn]);
        round.retries_left = MAX_RETRIES;
        round.probed = Some(probed);
        self.propose(now, round);
    }

    fn refuse_registration(&mut self, conn: ConnId, why: String) {
        self.count("admissions_refused");
        let refused = self.result(ProposalKind::Register, "", false, 0, None, Some(&why));
        self.reply(conn, refused);
    }

    // ----- removal -----

    pub(super) fn on_dead_report(&mut self, now: Millis, conn: ConnId, report: DeadReport) {
        let peer = report.dead;
        if self.certifier.is_seed(&peer) {
            return self.reject(conn, format!("DEAD_REPORT: {peer} is a seed, not a peer"));
        }
        if self.stopping {
            let busy = self.result(ProposalKind::Removal, "", false, 0, None, None);
            return self.reply(conn, busy);
        }
        let current = self.pl.rank(&peer);
        let inc = match round::removal_target(current, report.incarnation) {
            Ok(inc) => inc,
            // This seed is behind, but another said it holds the peer alive: the voters
            // decide by probing it (see `round::removal_check`).
            Err(_) if self.heard_alive(peer, report.incarnation).is_some() => {
                self.heard_alive(peer, report.incarnation).unwrap_or(0)
            }
            Err(reason) => {
                let accused = report.incarnation.or(current.map(|(k, _)| k)).unwrap_or(0);
                return self.refuse_removal(conn, peer, accused, reason);
            }
        };
        if let Some(round) = self.rounds.about(ProposalKind::Removal, peer) {
            if round.incarnation == inc {
                return round.waiting.push(conn);
            }
        }
        let deadline = now.after(self.settings.vote_timeout_ms);
        self.propose(
            now,
            Round::new(ProposalKind::Removal, peer, inc, deadline, vec![conn]),
        );
    }

    /// A report that needs no round: nothing to remove at that incarnation.
    fn refuse_removal(&mut self, conn: ConnId, peer: Endpoint, inc: u64, reason: &'static str) {
        self.count("aborts");
        self.emit(Event::Decided {
            kind: ProposalKind::Removal,
            proposal_id: String::new(),
            peer,
            incarnation: inc,
            decision: Decision::Abort,
            yes_votes: 0,
            quorum: self.quorum(),
            reason,
        });
        let refused = self.result(ProposalKind::Removal, "", false, 0, None, Some(reason));
        self.reply(conn, refused);
    }

    /// The incarnation hearsay holds `peer` alive at, above this seed's list, if it is the
    /// one `accused` (when named).
    fn heard_alive(&self, peer: Endpoint, accused: Option<u64>) -> Option<u64> {
        match self.hearsay(&peer) {
            Some((k, Status::Alive))
                if (accused.is_none() || accused == Some(k))
                    && self.pl.rank(&peer) < Some((k, Status::Alive)) =>
            {
                Some(k)
            }
            _ => None,
        }
    }

    // ----- leave -----

    /// A peer asks to leave: certify its `LEFT` entry with a round in which every voter,
    /// this one first, checks with the peer itself (its `PONG` must say it is leaving), so
    /// nobody can make a live peer leave. Already left: success at once.
    pub(super) fn on_leave_req(&mut self, now: Millis, conn: ConnId, req: LeaveReq) {
        let peer = req.peer;
        if self.certifier.is_seed(&peer) {
            return self.reject(conn, format!("LEAVE: {peer} is a seed, not a peer"));
        }
        if self.stopping {
            let busy = self.result(ProposalKind::Leave, "", false, 0, None, None);
            return self.reply(conn, busy);
        }
        let inc = match round::leave_target(self.pl.rank(&peer), req.incarnation) {
            Ok(Some(inc)) => inc,
            Ok(None) => {
                let done = self.result(ProposalKind::Leave, "", true, self.quorum(), None, None);
                return self.reply(conn, done);
            }
            Err(reason) => {
                self.emit(Event::Decided {
                    kind: ProposalKind::Leave,
                    proposal_id: String::new(),
                    peer,
                    incarnation: req.incarnation,
                    decision: Decision::Abort,
                    yes_votes: 0,
                    quorum: self.quorum(),
                    reason,
                });
                let refused = self.result(ProposalKind::Leave, "", false, 0, None, None);
                return self.reply(conn, refused);
            }
        };
        if let Some(round) = self.rounds.about(ProposalKind::Leave, peer) {
            if round.incarnation == inc {
                return round.waiting.push(conn);
            }
        }
        let deadline = now.after(self.settings.vote_timeout_ms);
        self.propose(
            now,
            Round::new(ProposalKind::Leave, peer, inc, deadline, vec![conn]),
        );
    }

    // ----- re-certification -----

    /// A change pulled from another seed that the seeds its certificate names could not vouch
    /// for (they restarted empty, or lie): certify it again with a fresh round, in which every
    /// seed checks it anew by its own rules (a seed that holds it says yes; one that does not
    /// probes the peer). True if a round started.
    pub(super) fn recertify(&mut self, now: Millis, fact: Fact) -> bool {
        let kind = match fact.status {
            Status::Alive => ProposalKind::Register,
            Status::Removed => ProposalKind::Removal,
            Status::Left => ProposalKind::Leave,
        };
        let busy = self.rounds.about(kind, fact.peer).is_some()
            || self.rounds.recertifying() >= MAX_RECERTIFYING
            || self.confirmations.refuted(&fact, now);
        if busy {
            return false;
        }
        self.count("recertifications");
        let deadline = now.after(self.settings.vote_timeout_ms);
        let mut round = Round::new(kind, fact.peer, fact.incarnation, deadline, Vec::new());
        round.recertify = true;
        self.propose(now, round);
        true
    }

    // ----- proposing -----

    /// Starts a round: asks every other seed, casts this seed's own vote, and arms the
    /// round's deadline.
    fn propose(&mut self, now: Millis, mut round: Round) {
        if self.rounds.len() >= MAX_PENDING {
            let busy = self.result(round.kind, "", false, 0, None, Some("busy"));
            for conn in round.waiting {
                self.reply(conn, busy.clone());
            }
            return;
        }
        self.next_round += 1;
        let id = format!("{}#{}", self.me, self.next_round);
        round.ask(self.certifier.seeds());
        let (kind, peer, incarnation, deadline, probed) = (
            round.kind,
            round.peer,
            round.incarnation,
            round.deadline,
            round.probed,
        );
        self.rounds.insert(id.clone(), round);
        self.timers.set(Timer::Round(id.clone()), deadline);
        self.count("proposals");
        self.emit(Event::Proposed {
            kind,
            proposal_id: id.clone(),
            peer,
            incarnation,
        });
        let ask = round::vote_request(
            kind,
            VoteReq {
                proposal_id: id.clone(),
                peer,
                incarnation: Some(incarnation),
                proposer: self.me,
            },
        );
        let send_deadline = now.after(self.settings.request_timeout_ms).min(deadline);
        self.send_to_others(&ask, send_deadline);
        self.vote(
            now,
            Ballot {
                kind,
                proposal_id: id,
                peer,
                incarnation,
                proposer: self.me,
                to: BallotBox::Own,
                probed,
            },
        );
    }

    pub(super) fn on_vote_resp(
        &mut self,
        now: Millis,
        to: Endpoint,
        kind: ProposalKind,
        req: VoteReq,
        outcome: Result<Message, Failure>,
    ) {
        let resp = match (kind, outcome) {
            (_, Err(_)) => None,
            (ProposalKind::Register, Ok(Message::RegisterVoteResp(resp)))
            | (ProposalKind::Removal, Ok(Message::DeadVoteResp(resp)))
            | (ProposalKind::Leave, Ok(Message::LeaveVoteResp(resp))) => Some(resp),
            (_, Ok(other)) => {
                self.bad_input(format!(
                    "{} from {to} in answer to a vote request",
                    other.type_name()
                ));
                None
            }
        };
        match resp {
            Some(resp) if resp.proposal_id == req.proposal_id && resp.voter == to => {
                self.record_vote(now, &req.proposal_id, to, resp.vote, resp.known_incarnation)
            }
            Some(resp) => {
                self.bad_input(format!(
                    "vote from {to} names voter {} and round {:?}, asked {:?}",
                    resp.voter, resp.proposal_id, req.proposal_id
                ));
                self.record_silence(now, &req.proposal_id, to);
            }
            None => self.record_silence(now, &req.proposal_id, to),
        }
    }

    pub(super) fn record_vote(
        &mut self,
        now: Millis,
        id: &str,
        voter: Endpoint,
        yes: bool,
        known: Option<u64>,
    ) {
        if let Some(round) = self.rounds.get_mut(id) {
            if round.record(voter, yes, known) {
                self.settle(now, id);
            }
        }
    }

    fn record_silence(&mut self, now: Millis, id: &str, voter: Endpoint) {
        if let Some(round) = self.rounds.get_mut(id) {
            if round.silence(voter) {
                self.settle(now, id);
            }
        }
    }

    /// Ends the round `id` if its votes decide it.
    pub(super) fn settle(&mut self, now: Millis, id: &str) {
        let (n, q) = (self.certifier.seed_count(), self.certifier.quorum());
        if let Some(verdict) = self.rounds.get(id).map(|r| r.verdict(n, q)) {
            if verdict != Verdict::Pending {
                self.end_round(now, id, verdict);
            }
        }
    }

    pub(super) fn end_round(&mut self, now: Millis, id: &str, verdict: Verdict) {
        let Some(round) = self.rounds.remove(id) else {
            return;
        };
        self.timers.cancel(&Timer::Round(id.to_string()));
        match verdict {
            Verdict::Won => self.commit(now, id, round),
            Verdict::Lost(reason) => match round.retry_incarnation() {
                // A voter knows a higher incarnation: try again above it, same requesters,
                // same deadline, the same probe of the registrant.
                Some(inc) if round.deadline > now && inc < MAX_INCARNATION => {
                    let mut next =
                        Round::new(round.kind, round.peer, inc, round.deadline, round.waiting);
                    next.retries_left = round.retries_left - 1;
                    next.probed = round.probed;
                    self.propose(now, next)
                }
                _ => self.abort(now, id, round, reason),
            },
            Verdict::Pending => {}
        }
    }

    /// A won round: apply locally, tell the other seeds (with the certificate), answer.
    /// The requesters hear success even if a higher entry arrived meanwhile: the change was
    /// certified, and a peer learns of anything newer from its next peer list.
    fn commit(&mut self, now: Millis, id: &str, round: Round) {
        let entry = Entry {
            peer: round.peer,
            incarnation: round.incarnation,
            status: round::status_of(round.kind),
            votes: round.yes_voters(),
        };
        self.merge(now, entry, ChangeSource::LocalCommit);
        self.count("commits");
        let reason = if round.recertify {
            "re-certified"
        } else {
            "quorum reached"
        };
        self.finish(now, id, round, Decision::Commit, reason);
    }

    /// A lost round: nothing changes; the other seeds are told (informational), the
    /// requesters answered no.
    fn abort(&mut self, now: Millis, id: &str, round: Round, reason: &'static str) {
        self.count("aborts");
        if round.recertify {
            let fact = Fact {
                peer: round.peer,
                incarnation: round.incarnation,
                status: round::status_of(round.kind),
            };
            self.confirmations.refute(fact, now);
            // An admission that cannot be certified again, most often because its peer is
            // gone: let the seeds look whether it should be removed instead, each by its own
            // probe (a peer that answers keeps its entry where it has one). So for a leave
            // this seed holds alive: once the leaver exited, no voter hears it say so any
            // more, and it would stay listed alive here for good.
            let admission_gone = fact.status == Status::Alive
                && self
                    .heard_alive(fact.peer, Some(fact.incarnation))
                    .is_some();
            let leave_unheard = fact.status == Status::Left
                && self.pl.rank(&fact.peer) == Some((fact.incarnation, Status::Alive));
            if admission_gone || leave_unheard {
                let removal = Fact {
                    status: Status::Removed,
                    ..fact
                };
                self.recertify(now, removal);
            }
        }
        self.finish(now, id, round, Decision::Abort, reason);
    }

    fn finish(
        &mut self,
        now: Millis,
        id: &str,
        round: Round,
        decision: Decision,
        reason: &'static str,
    ) {
        let sync = round::commit_sync(
            round.kind,
            CommitSync {
                proposal_id: id.to_string(),
                decision,
                peer: round.peer,
                source_seed: self.me,
                incarnation: Some(round.incarnation),
                votes: round.yes_voters(),
            },
        );
        self.send_to_others(&sync, now.after(self.settings.request_timeout_ms));
        let success = decision == Decision::Commit;
        let answer = self.result(
            round.kind,
            id,
            success,
            round.yes_count(),
            // On failure too: the incarnation this seed found due tells a registrant that
            // lost its state (or missed a removal) what to ask for next time.
            Some(round.incarnation),
            (!success).then_some(reason),
        );
        for conn in &round.waiting {
            self.reply(*conn, answer.clone());
        }
        self.emit(Event::Decided {
            kind: round.kind,
            proposal_id: id.to_string(),
            peer: round.peer,
            incarnation: round.incarnation,
            decision,
            yes_votes: round.yes_count(),
            quorum: self.quorum(),
            reason,
        });
    }

    /// The answer to a `REGISTER_REQ` or a `DEAD_REPORT`.
    pub(super) fn result(
        &self,
        kind: ProposalKind,
        id: &str,
        success: bool,
        yes_votes: u32,
        incarnation: Option<u64>,
        error: Option<&str>,
    ) -> Message {
        match kind {
            ProposalKind::Register => Message::RegisterResult(Box::new(RegisterResult {
                proposal_id: id.to_string(),
                success,
                yes_votes,
                quorum: self.quorum(),
                incarnation,
                error: error.map(str::to_string),
            })),
            ProposalKind::Removal => Message::DeadResult(DeadResult {
                proposal_id: id.to_string(),
                success,
                yes_votes,
                quorum: self.quorum(),
            }),
            ProposalKind::Leave => Message::LeaveResult(DeadResult {
                proposal_id: id.to_string(),
                success,
                yes_votes,
                quorum: self.quorum(),
            }),
        }
    }
}
