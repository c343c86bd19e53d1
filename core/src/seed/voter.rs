//! The votes this seed casts, in its own rounds and in others', and what it vouches for.
//!
//! Every yes is earned, whoever asks: the rules in `round.rs` say yes at once only for a
//! change this seed holds or already voted for; otherwise the answer waits for this seed's
//! own `PING` of the peer concerned (a registrant must answer it, an accused must not). The
//! proposer named in a vote request is informational: a vote certifies only what this seed
//! checked, so soliciting one gains nothing. One probe per endpoint (two `PING`s at once, so
//! a lost message does not decide) serves every vote and registration waiting on it.

use std::collections::BTreeMap;

use super::round::{self, Check, Probed};
use super::Core;
use crate::event::{Event, ProposalKind};
use crate::msg::{
    ConfirmReq, ConfirmResp, Endpoint, Fact, Message, Ping, RegisterReq, VoteReq, VoteResp,
};
use crate::{ConnId, Failure, Millis};

use super::MAX_PENDING;

/// Where a vote goes once cast.
#[derive(Copy, Clone, Debug)]
pub(super) enum BallotBox {
    /// This seed's own round.
    Own,
    /// Another seed's round: the reply on this connection.
    Remote(ConnId),
}

/// A vote to cast, possibly after probing the peer concerned.
#[derive(Clone, Debug)]
pub(super) struct Ballot {
    pub kind: ProposalKind,
    pub proposal_id: String,
    pub peer: Endpoint,
    pub incarnation: u64,
    pub proposer: Endpoint,
    pub to: BallotBox,
    /// A probe of the peer this seed already made for this vote (a proposer's admission
    /// probe): no second one is sent.
    pub probed: Option<Probed>,
}

impl Ballot {
    fn fact(&self) -> Fact {
        Fact {
            peer: self.peer,
            incarnation: self.incarnation,
            status: round::status_of(self.kind),
        }
    }
}

/// `PING`s a seed sends at once to probe an endpoint: one lost `PING` or `PONG` must not decide
/// an admission or a removal, and two tries at once cost no more time than one.
const TRIES: u8 = 2;

/// Who waits for this seed's probe of one endpoint, and how it stands.
#[derive(Clone, Debug, Default)]
struct Waiters {
    ballots: Vec<Ballot>,
    registrations: Vec<(ConnId, RegisterReq)>,
    /// `PING`s of this probe whose outcome has not come.
    outstanding: u8,
    /// What the probe showed once any `PING` was answered (the rest are then only awaited).
    answered: Option<Probed>,
}

/// The probes in flight, by endpoint, with what waits on each.
#[derive(Clone, Debug, Default)]
pub(super) struct Probes {
    by_peer: BTreeMap<Endpoint, Waiters>,
    ballots: usize,
    registrations: usize,
}

/// What adding a waiter to a probe calls for.
enum Wait {
    /// A probe is in flight: wait for it.
    Joined,
    /// No probe in flight: start one.
    Start,
    /// The probe in flight was answered already: this is what it showed.
    Known(Probed),
}

impl Probes {
    /// The state of the probe of `peer`, creating it (and noting its `PING`s sent) if none.
    fn join(&mut self, peer: Endpoint) -> (&mut Waiters, Wait) {
        let fresh = !self.by_peer.contains_key(&peer);
        let w = self.by_peer.entry(peer).or_default();
        let wait = match (fresh, w.answered) {
            (true, _) => {
                w.outstanding = TRIES;
                Wait::Start
            }
            (false, Some(probed)) => Wait::Known(probed),
            (false, None) => Wait::Joined,
        };
        (w, wait)
    }

    /// One `PING` of `peer` ended: the waiters to resolve, and what the probe showed, once it
    /// is decided (any answer decides at once; silence only when every try failed).
    fn settle(&mut self, peer: &Endpoint, probed: Probed) -> Option<(Waiters, Probed)> {
        let w = self.by_peer.get_mut(peer)?;
        w.outstanding = w.outstanding.saturating_sub(1);
        let decided = match (w.answered, probed.answered) {
            (Some(_), _) => None,
            (None, true) => Some(probed),
            (None, false) if w.outstanding == 0 => Some(probed),
            (None, false) => None,
        };
        let taken = decided.map(|probed| {
            w.answered = probed.answered.then_some(probed);
            let waiters = Waiters {
                ballots: std::mem::take(&mut w.ballots),
                registrations: std::mem::take(&mut w.registrations),
                outstanding: 0,
                answered: None,
            };
            (waiters, probed)
        });
        if w.outstanding == 0 {
            self.by_peer.remove(peer);
        }
        if let Some((w, _)) = &taken {
            self.ballots -= w.ballots.len();
            self.registrations -= w.registrations.len();
        }
        taken
    }
}

impl Core {
    pub(super) fn on_vote_req(
        &mut self,
        now: Millis,
        conn: ConnId,
        kind: ProposalKind,
        req: VoteReq,
    ) {
        if !self.certifier.is_seed(&req.proposer) {
            return self.reject(
                conn,
                format!("vote request from {}, not a seed", req.proposer),
            );
        }
        if self.certifier.is_seed(&req.peer) {
            return self.reject(conn, format!("vote request about {}, a seed", req.peer));
        }
        // The reference names no incarnation: it means the next one (register) or the
        // current one (removal).
        let current = self.pl.rank(&req.peer).map(|(inc, _)| inc);
        let incarnation = req.incarnation.unwrap_or(match kind {
            ProposalKind::Register => current.map_or(1, |inc| inc.saturating_add(1)),
            ProposalKind::Removal | ProposalKind::Leave => current.unwrap_or(0),
        });
        self.vote(
            now,
            Ballot {
                kind,
                proposal_id: req.proposal_id,
                peer: req.peer,
                incarnation,
                proposer: req.proposer,
                to: BallotBox::Remote(conn),
                probed: None,
            },
        );
    }

    /// Casts a vote by the rules every seed applies, proposer included: at once where they
    /// decide without a probe, else once this seed's own `PING` of the peer ends.
    pub(super) fn vote(&mut self, now: Millis, ballot: Ballot) {
        let current = self.pl.rank(&ballot.peer);
        let heard = self.hearsay(&ballot.peer);
        let voted = self.memory.voted(&ballot.fact(), now);
        let check = match ballot.kind {
            ProposalKind::Register => {
                // An incarnation reaped a moment ago counts as known: go above it.
                let current = self.pl.rank_or_reaped(&ballot.peer);
                round::register_check(current, ballot.incarnation, voted)
            }
            ProposalKind::Removal => {
                let highest = self.pl.highest();
                round::removal_check(current, heard, highest, ballot.incarnation, voted)
            }
            ProposalKind::Leave => round::leave_check(current, ballot.incarnation, voted),
        };
        match (check, ballot.probed) {
            (Check::Probe, Some(probed)) => self.vote_after_probe(now, ballot, probed),
            (Check::Probe, None) if self.probes.ballots >= MAX_PENDING => {
                self.cast(now, ballot, Check::No(None))
            }
            (Check::Probe, None) => {
                let peer = ballot.peer;
                let (waiters, wait) = self.probes.join(peer);
                match wait {
                    Wait::Known(probed) => self.vote_after_probe(now, ballot, probed),
                    Wait::Start | Wait::Joined => {
                        waiters.ballots.push(ballot);
                        self.probes.ballots += 1;
                        if matches!(wait, Wait::Start) {
                            self.send_pings(now, peer);
                        }
                    }
                }
            }
            (decided, _) => self.cast(now, ballot, decided),
        }
    }

    fn vote_after_probe(&mut self, now: Millis, ballot: Ballot, probed: Probed) {
        let current = self.pl.rank(&ballot.peer);
        let heard = self.hearsay(&ballot.peer);
        let check = match ballot.kind {
            ProposalKind::Register => {
                let current = self.pl.rank_or_reaped(&ballot.peer);
                round::register_after_probe(current, ballot.incarnation, probed)
            }
            ProposalKind::Removal => {
                let highest = self.pl.highest();
                round::removal_after_probe(current, heard, highest, ballot.incarnation, probed)
            }
            ProposalKind::Leave => round::leave_after_probe(current, ballot.incarnation, probed),
        };
        self.cast(now, ballot, check);
    }

    /// Holds `req` until this seed's `PING` of the registrant answers or fails.
    pub(super) fn probe_registrant(&mut self, now: Millis, conn: ConnId, req: RegisterReq) {
        if self.probes.registrations >= MAX_PENDING {
            let busy = self.result(ProposalKind::Register, "", false, 0, None, Some("busy"));
            return self.reply(conn, busy);
        }
        let peer = req.peer;
        let (waiters, wait) = self.probes.join(peer);
        match wait {
            Wait::Known(probed) => self.admit_after_probe(now, conn, req, probed),
            Wait::Start | Wait::Joined => {
                waiters.registrations.push((conn, req));
                self.probes.registrations += 1;
                if matches!(wait, Wait::Start) {
                    self.send_pings(now, peer);
                }
            }
        }
    }

    fn send_pings(&mut self, now: Millis, peer: Endpoint) {
        for _ in 0..TRIES {
            let ping = Message::Ping(Ping {
                sender: self.me,
                suspected_by: None,
            });
            self.send(peer, ping, now.after(self.settings.probe_timeout_ms));
        }
    }

    /// This seed's `PING` of `peer` ended: any reply at all, even `ERROR`, shows it is up.
    pub(super) fn on_probe_result(
        &mut self,
        now: Millis,
        peer: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let pong = match &outcome {
            Ok(Message::Pong(pong)) => Some(pong),
            _ => None,
        };
        let probed = Probed {
            answered: outcome.is_ok(),
            claimed: pong.and_then(|p| p.incarnation.map(|n| u64::from(n.get()))),
            leaving: pong.is_some_and(|p| p.leaving),
        };
        let Some((waiters, probed)) = self.probes.settle(&peer, probed) else {
            return;
        };
        if probed.answered {
            self.withdraw_removal(now, peer);
        }
        for (conn, req) in waiters.registrations {
            self.admit_after_probe(now, conn, req, probed);
        }
        for ballot in waiters.ballots {
            self.vote_after_probe(now, ballot, probed);
        }
    }

    /// `peer` answered this seed's own probe: a yes this seed gave before to removing it no
    /// longer holds (the probe it was earned by was silent, or the peer was not up yet). It
    /// stops vouching for it and takes it back from its own round removing the peer, if one
    /// runs: otherwise the other voters' yes (a lying seed's, say) could still complete that
    /// round and remove a peer this seed has just heard from.
    fn withdraw_removal(&mut self, now: Millis, peer: Endpoint) {
        self.memory.forget_removals(peer);
        let Some(id) = self.rounds.id_about(ProposalKind::Removal, peer) else {
            return;
        };
        let me = self.me;
        if self.rounds.get_mut(&id).is_some_and(|r| r.withdraw(me)) {
            self.settle(now, &id);
        }
    }

    fn cast(&mut self, now: Millis, ballot: Ballot, check: Check) {
        let (yes, known) = match check {
            Check::Yes => (true, None),
            Check::No(known) => (false, known),
            // The callers resolve a probe before casting; never a yes without one.
            Check::Probe => (false, None),
        };
        self.count(if yes { "votes_yes" } else { "votes_no" });
        if yes {
            self.memory.remember(ballot.fact(), now);
        }
        self.emit(Event::VoteCast {
            kind: ballot.kind,
            proposal_id: ballot.proposal_id.clone(),
            peer: ballot.peer,
            incarnation: ballot.incarnation,
            yes,
            proposer: ballot.proposer,
        });
        match ballot.to {
            BallotBox::Own => self.record_vote(now, &ballot.proposal_id, self.me, yes, known),
            BallotBox::Remote(conn) => {
                let resp = VoteResp {
                    proposal_id: ballot.proposal_id,
                    vote: yes,
                    voter: self.me,
                    known_incarnation: known,
                };
                self.reply(conn, round::vote_response(ballot.kind, resp));
            }
        }
    }

    /// Answers a `SEED_CONFIRM`: this seed vouches for a change it voted yes for or holds.
    /// From memory only, so a request costs a lookup per fact and nothing else; anyone may
    /// ask (what a seed holds is no secret: `STATUS_REQ` shows it).
    pub(super) fn on_confirm_req(&mut self, now: Millis, conn: ConnId, req: ConfirmReq) {
        let vouched: Vec<bool> = (req.facts.iter())
            .map(|f| self.vouches(f, now))
            .collect::<Vec<bool>>();
        let yes = vouched.iter().filter(|v| **v).count() as u64;
        *self.counters.entry("vouched").or_insert(0) += yes;
        *self.counters.entry("vouches_refused").or_insert(0) += vouched.len() as u64 - yes;
        let resp = ConfirmResp {
            seed: self.me,
            vouched,
        };
        self.reply(conn, Message::ConfirmResp(Box::new(resp)));
    }

    /// True if this seed holds exactly `fact`, or voted yes for exactly it a moment ago.
    fn vouches(&self, fact: &Fact, now: Millis) -> bool {
        self.pl.rank(&fact.peer) == Some((fact.incarnation, fact.status))
            || self.memory.voted(fact, now)
    }
}
