//! The seed state machine: the membership authority.
//!
//! A seed keeps a certified Peer List (PL): per peer an `(incarnation, status)` entry that
//! only moves up, and only with a quorum certificate (the distinct seeds that voted yes for
//! exactly that change). Any seed may propose a change: a `REGISTER_REQ` starts a
//! registration round, a `DEAD_REPORT` a removal round. Votes are not locks: a voter records
//! nothing, so a proposer that crashes mid-round blocks nobody, and merging is "take the
//! higher", so commits may arrive late, twice or never: periodic anti-entropy (`SEED_SYNC`,
//! pull, per-bucket digests) brings every live seed to the same PL.

mod peer_list;
mod round;

use std::collections::BTreeMap;

use crate::config::SettingsError;
use crate::event::{ChangeSource, Event, ProposalKind};
use crate::msg::{
    CommitSync, DeadReport, DeadResult, Decision, Endpoint, Entry, Message, PeerListResp, Ping,
    Pong, RegisterReq, RegisterResult, RoleStatus, SeedStatus, SeedSync, Status, StatusResp,
    VoteReq, VoteResp, SYNC_BUCKETS,
};
use crate::rng::Rng;
use crate::timers::Timers;
use crate::{ConnId, Failure, Input, Millis, NodeInit, Output, Settings};

use peer_list::{Certifier, PeerList};
use round::{RemovalBallot, Round, Rounds, Verdict};

/// Rounds in flight (and votes waiting for a probe) at most. Beyond, requests are answered
/// `success: false` ("busy"), so a flood of requests cannot grow a seed without bound.
pub const MAX_PENDING: usize = 1024;

/// Fresh registration rounds a proposer starts, above an incarnation a voter reported, before
/// it gives up.
const MAX_RETRIES: u32 = 2;

/// Every counter the status shows, sorted by name (so all appear, even at zero).
const COUNTERS: [&str; 9] = [
    "aborts",
    "bad_input",
    "commits",
    "entries_merged",
    "peer_lists_served",
    "proposals",
    "sync_rounds",
    "votes_no",
    "votes_yes",
];

/// A seed's named deadlines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    AntiEntropy,
    /// The deadline of the round with this id.
    Round(String),
}

/// Where a vote goes once cast.
#[derive(Copy, Clone, Debug)]
enum BallotBox {
    /// This seed's own round.
    Own,
    /// Another seed's round: the reply on this connection.
    Remote(ConnId),
}

/// A vote to cast, possibly after probing the peer concerned.
#[derive(Clone, Debug)]
struct Ballot {
    kind: ProposalKind,
    proposal_id: String,
    peer: Endpoint,
    incarnation: u64,
    proposer: Endpoint,
    to: BallotBox,
}

/// A seed node.
///
/// A thin handle on boxed state, so a [`crate::Node`] stays small whichever role it holds
/// (the state is several hundred bytes, most of it the ChaCha generator).
#[derive(Debug)]
pub struct Seed(Box<Core>);

impl Seed {
    /// A seed for `init`. Fails if the settings do not validate or `init.me` is not a seed.
    pub fn new(init: NodeInit, now: Millis) -> Result<Seed, SettingsError> {
        Core::new(init, now).map(|core| Seed(Box::new(core)))
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Millis, input: Input) {
        self.0.handle(now, input)
    }

    /// Takes every queued output.
    #[must_use = "outputs are what the seed asks the driver to do"]
    #[inline]
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.0.outputs.drain(..)
    }

    /// Exchanges the buffer outputs are queued in (with its contents) for `buf`.
    #[inline]
    pub fn swap_outputs(&mut self, buf: &mut Vec<Output>) {
        std::mem::swap(&mut self.0.outputs, buf);
    }

    /// When the seed next wants a tick.
    #[inline]
    pub fn next_deadline(&self) -> Option<Millis> {
        self.0.timers.next_deadline()
    }

    /// This seed's endpoint.
    pub fn me(&self) -> Endpoint {
        self.0.me
    }

    /// A read-only view: every entry sorted by peer, the rounds in flight, the counters.
    pub fn status(&self) -> StatusResp {
        self.0.status()
    }
}

/// The seed's state and logic.
#[derive(Debug)]
struct Core {
    me: Endpoint,
    /// The other seeds, in config order.
    others: Vec<Endpoint>,
    certifier: Certifier,
    settings: Settings,
    rng: Rng,
    pl: PeerList,
    rounds: Rounds,
    next_round: u64,
    /// Removal votes waiting for this seed's own `PING` of the accused, by accused.
    probes: BTreeMap<Endpoint, Vec<Ballot>>,
    /// Registrations waiting for this seed's `PING` of the registrant
    /// (`Settings::probe_before_admit`), by registrant.
    admissions: BTreeMap<Endpoint, Vec<(ConnId, RegisterReq)>>,
    timers: Timers<Timer>,
    counters: BTreeMap<&'static str, u64>,
    outputs: Vec<Output>,
}

impl Core {
    fn new(init: NodeInit, now: Millis) -> Result<Core, SettingsError> {
        init.settings.validate()?;
        if !init.seeds.contains(&init.me) {
            return Err(SettingsError(format!(
                "{} is not in the seed list",
                init.me
            )));
        }
        let mut seed = Core {
            me: init.me,
            others: init
                .seeds
                .iter()
                .copied()
                .filter(|s| *s != init.me)
                .collect(),
            certifier: Certifier::new(&init.seeds),
            settings: init.settings,
            rng: Rng::new(init.rng_seed),
            pl: PeerList::default(),
            rounds: Rounds::default(),
            next_round: 0,
            probes: BTreeMap::new(),
            admissions: BTreeMap::new(),
            timers: Timers::default(),
            counters: COUNTERS.iter().map(|name| (*name, 0)).collect(),
            outputs: Vec::new(),
        };
        // A random first sync, so seeds started together do not sync in lockstep.
        let interval = seed.settings.anti_entropy_interval_ms;
        let first = now.after(1 + seed.rng.below(interval));
        seed.timers.set(Timer::AntiEntropy, first);
        Ok(seed)
    }

    fn handle(&mut self, now: Millis, input: Input) {
        match input {
            Input::Request { conn, msg } => self.on_request(now, conn, msg),
            Input::Malformed { conn, error } => self.reject(conn, error.to_string()),
            Input::Response {
                to,
                request,
                outcome,
            } => self.on_response(now, to, request, outcome),
            Input::Tick => self.on_tick(now),
        }
    }

    fn status(&self) -> StatusResp {
        StatusResp {
            node: self.me,
            role: RoleStatus::Seed(SeedStatus {
                entries: self.pl.entries().cloned().collect(),
                pending: self.rounds.len() as u32,
            }),
            counters: self
                .counters
                .iter()
                .map(|(name, n)| (name.to_string(), *n))
                .collect(),
        }
    }

    // ----- dispatch -----

    fn on_request(&mut self, now: Millis, conn: ConnId, msg: Message) {
        match msg {
            Message::RegisterReq(req) => self.on_register_req(now, conn, *req),
            Message::DeadReport(report) => self.on_dead_report(now, conn, *report),
            Message::RegisterVote(req) => self.on_vote_req(now, conn, ProposalKind::Register, *req),
            Message::DeadVote(req) => self.on_vote_req(now, conn, ProposalKind::Removal, *req),
            Message::RegisterCommit(sync) => self.on_commit(conn, ProposalKind::Register, *sync),
            Message::DeadCommit(sync) => self.on_commit(conn, ProposalKind::Removal, *sync),
            Message::PeerListReq { requester } => self.on_peer_list_req(conn, requester),
            Message::SeedSync(sync) if !sync.reply => self.on_sync_req(conn, *sync),
            Message::Ping(_) => self.reply(
                conn,
                Message::Pong(Pong {
                    responder: self.me,
                    degree: None,
                }),
            ),
            Message::StatusReq => self.reply(conn, Message::StatusResp(Box::new(self.status()))),
            Message::Hello(_) | Message::Gossip(_) | Message::SuspectReq(_) => {
                self.reject(conn, format!("{}: not a peer", msg.type_name()))
            }
            other => self.reject(conn, format!("{}: not a request", other.type_name())),
        }
    }

    fn on_response(
        &mut self,
        now: Millis,
        to: Endpoint,
        request: Message,
        outcome: Result<Message, Failure>,
    ) {
        match request {
            Message::RegisterVote(req) => {
                self.on_vote_resp(now, to, ProposalKind::Register, *req, outcome)
            }
            Message::DeadVote(req) => {
                self.on_vote_resp(now, to, ProposalKind::Removal, *req, outcome)
            }
            // Any reply at all, even `ERROR`, proves the accused is up.
            Message::Ping(_) => {
                self.on_admission_probe(now, to, outcome.is_ok());
                self.on_probe_result(now, to, outcome.is_ok());
            }
            Message::SeedSync(_) => self.on_sync_reply(to, outcome),
            // Commit syncs: the ack carries nothing to act on; anti-entropy covers a loss.
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Millis) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::AntiEntropy => self.start_sync(now),
                Timer::Round(id) => self.end_round(now, &id, Verdict::Lost("deadline")),
            }
        }
    }

    // ----- registration and removal requests -----

    fn on_register_req(&mut self, now: Millis, conn: ConnId, req: RegisterReq) {
        let peer = req.peer;
        if self.certifier.is_seed(&peer) {
            return self.reject(conn, format!("REGISTER_REQ: {peer} is a seed, not a peer"));
        }
        if self.answer_without_new_round(conn, &req) {
            return;
        }
        if self.settings.probe_before_admit {
            return self.probe_registrant(now, conn, req);
        }
        self.propose_registration(now, conn, req);
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

    /// Starts the vote round that admits `req.peer`.
    fn propose_registration(&mut self, now: Millis, conn: ConnId, req: RegisterReq) {
        let peer = req.peer;
        let inc = round::registration_incarnation(self.pl.rank(&peer), req.incarnation);
        let deadline = now.after(self.settings.vote_timeout_ms);
        let mut round = Round::new(ProposalKind::Register, peer, inc, deadline, vec![conn]);
        round.retries_left = MAX_RETRIES;
        self.propose(now, round);
    }

    /// Holds `req` until this seed's `PING` of the registrant answers or fails; one probe
    /// serves every registration of the same endpoint.
    fn probe_registrant(&mut self, now: Millis, conn: ConnId, req: RegisterReq) {
        let waiting: usize = self.admissions.values().map(Vec::len).sum();
        if waiting >= MAX_PENDING {
            let busy = self.result(ProposalKind::Register, "", false, 0, None, Some("busy"));
            return self.reply(conn, busy);
        }
        let peer = req.peer;
        let list = self.admissions.entry(peer).or_default();
        list.push((conn, req));
        if list.len() == 1 {
            let ping = Message::Ping(Ping { sender: self.me });
            let deadline = now.after(self.settings.probe_timeout_ms);
            self.send(peer, ping, deadline);
        }
    }

    /// The registrant answered this seed's `PING` (anything at all) or did not: admit through
    /// a vote round, or refuse.
    fn on_admission_probe(&mut self, now: Millis, peer: Endpoint, answered: bool) {
        for (conn, req) in self.admissions.remove(&peer).unwrap_or_default() {
            if !answered {
                self.count("admissions_refused");
                let why = format!("{peer} did not answer a probe");
                let refused = self.result(
                    ProposalKind::Register,
                    "",
                    false,
                    0,
                    None,
                    Some(why.as_str()),
                );
                self.reply(conn, refused);
                continue;
            }
            // The world may have moved while the probe ran: decide afresh.
            if !self.answer_without_new_round(conn, &req) {
                self.propose_registration(now, conn, req);
            }
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

    fn on_dead_report(&mut self, now: Millis, conn: ConnId, report: DeadReport) {
        let peer = report.dead;
        if self.certifier.is_seed(&peer) {
            return self.reject(conn, format!("DEAD_REPORT: {peer} is a seed, not a peer"));
        }
        let current = self.pl.rank(&peer);
        let inc = match round::removal_target(current, report.incarnation) {
            Ok(inc) => inc,
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
        let (kind, peer, incarnation, deadline) =
            (round.kind, round.peer, round.incarnation, round.deadline);
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
            },
        );
    }

    fn on_vote_resp(
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
            | (ProposalKind::Removal, Ok(Message::DeadVoteResp(resp))) => Some(resp),
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

    fn record_vote(
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
    fn settle(&mut self, now: Millis, id: &str) {
        let (n, q) = (self.certifier.seed_count(), self.certifier.quorum());
        if let Some(verdict) = self.rounds.get(id).map(|r| r.verdict(n, q)) {
            if verdict != Verdict::Pending {
                self.end_round(now, id, verdict);
            }
        }
    }

    fn end_round(&mut self, now: Millis, id: &str, verdict: Verdict) {
        let Some(round) = self.rounds.remove(id) else {
            return;
        };
        self.timers.cancel(&Timer::Round(id.to_string()));
        match verdict {
            Verdict::Won => self.commit(now, id, round),
            Verdict::Lost(reason) => match round.retry_incarnation() {
                // A voter knows a higher incarnation: try again above it, same requesters,
                // same deadline.
                Some(inc) if round.deadline > now => {
                    let mut next =
                        Round::new(round.kind, round.peer, inc, round.deadline, round.waiting);
                    next.retries_left = round.retries_left - 1;
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
        self.merge(entry, ChangeSource::LocalCommit);
        self.count("commits");
        self.finish(now, id, round, Decision::Commit, "quorum reached");
    }

    /// A lost round: nothing changes; the other seeds are told (informational), the
    /// requesters answered no.
    fn abort(&mut self, now: Millis, id: &str, round: Round, reason: &'static str) {
        self.count("aborts");
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
            success.then_some(round.incarnation),
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
    fn result(
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
        }
    }

    // ----- voting -----

    fn on_vote_req(&mut self, now: Millis, conn: ConnId, kind: ProposalKind, req: VoteReq) {
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
            ProposalKind::Removal => current.unwrap_or(0),
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
            },
        );
    }

    /// Casts a vote by the rules every seed applies, proposer included; a removal vote for a
    /// peer this seed holds alive waits for its own probe of the accused, if configured.
    fn vote(&mut self, now: Millis, ballot: Ballot) {
        let current = self.pl.rank(&ballot.peer);
        match ballot.kind {
            ProposalKind::Register => {
                let (yes, known) = round::register_ballot(current, ballot.incarnation);
                self.cast(now, ballot, yes, known)
            }
            ProposalKind::Removal => match round::removal_ballot(current, ballot.incarnation) {
                RemovalBallot::Probe if self.settings.probe_before_vote => self.probe(now, ballot),
                RemovalBallot::Probe | RemovalBallot::Yes => self.cast(now, ballot, true, None),
                RemovalBallot::No(known) => self.cast(now, ballot, false, known),
            },
        }
    }

    /// Defers `ballot` until this seed's `PING` of the accused answers or fails; one probe
    /// serves every ballot about the same peer.
    fn probe(&mut self, now: Millis, ballot: Ballot) {
        let deferred: usize = self.probes.values().map(Vec::len).sum();
        if deferred >= MAX_PENDING {
            return self.cast(now, ballot, false, None);
        }
        let peer = ballot.peer;
        let waiting = self.probes.entry(peer).or_default();
        waiting.push(ballot);
        if waiting.len() == 1 {
            let ping = Message::Ping(Ping { sender: self.me });
            self.send(peer, ping, now.after(self.settings.probe_timeout_ms));
        }
    }

    /// The probe of `peer` ended: the ballots waiting for it are cast, yes only if the
    /// accused stayed silent and the entry is still the one accused.
    fn on_probe_result(&mut self, now: Millis, peer: Endpoint, answered: bool) {
        for ballot in self.probes.remove(&peer).unwrap_or_default() {
            match round::removal_ballot(self.pl.rank(&peer), ballot.incarnation) {
                RemovalBallot::Probe => self.cast(now, ballot, !answered, None),
                RemovalBallot::Yes => self.cast(now, ballot, true, None),
                RemovalBallot::No(known) => self.cast(now, ballot, false, known),
            }
        }
    }

    fn cast(&mut self, now: Millis, ballot: Ballot, yes: bool, known: Option<u64>) {
        self.count(if yes { "votes_yes" } else { "votes_no" });
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

    // ----- commit syncs -----

    /// Another seed's decision. A commit changes this PL only with a valid certificate, and
    /// only upwards; an abort changes nothing.
    fn on_commit(&mut self, conn: ConnId, kind: ProposalKind, sync: CommitSync) {
        let name = round::commit_ack(kind).type_name();
        if sync.decision == Decision::Abort {
            return self.reply(conn, round::commit_ack(kind));
        }
        let Some(incarnation) = sync.incarnation else {
            return self.reject(conn, format!("{name}: COMMIT without an incarnation"));
        };
        if !self.certifier.certifies(&sync.votes) {
            return self.reject(
                conn,
                format!("{name}: COMMIT without a valid quorum certificate"),
            );
        }
        self.merge(
            Entry {
                peer: sync.peer,
                incarnation,
                status: round::status_of(kind),
                votes: sync.votes,
            },
            ChangeSource::CommitSync,
        );
        self.reply(conn, round::commit_ack(kind));
    }

    /// Applies `entry` if it supersedes this seed's; true if it did.
    fn merge(&mut self, entry: Entry, via: ChangeSource) -> bool {
        if !self.pl.apply(entry.clone(), &self.certifier) {
            return false;
        }
        if via != ChangeSource::LocalCommit {
            self.count("entries_merged");
        }
        let entry = self.pl.get(&entry.peer).cloned().unwrap_or(entry);
        self.emit(Event::EntryChanged { entry, via });
        true
    }

    // ----- peer lists -----

    fn on_peer_list_req(&mut self, conn: ConnId, requester: String) {
        let total = self.pl.alive_count();
        let limit = self.settings.peer_list_limit as usize;
        let listed = self.pl.sample_alive(limit, &mut self.rng);
        let requester_entry = requester
            .parse::<Endpoint>()
            .ok()
            .and_then(|ep| self.pl.rank(&ep));
        let resp = PeerListResp {
            peers: listed.iter().map(|&(peer, _)| peer).collect(),
            seed: self.me,
            incarnations: listed,
            total: Some(total as u64),
            requester_entry,
        };
        let count = resp.peers.len() as u32;
        self.reply(conn, Message::PeerListResp(Box::new(resp)));
        self.count("peer_lists_served");
        self.emit(Event::PeerListServed { requester, count });
    }

    // ----- anti-entropy -----

    /// Pulls from one random other seed, and arms the next round.
    fn start_sync(&mut self, now: Millis) {
        self.timers.set(
            Timer::AntiEntropy,
            now.after(self.settings.anti_entropy_interval_ms),
        );
        if self.others.is_empty() {
            return;
        }
        let pick = self.rng.below(self.others.len() as u64) as usize;
        let Some(&to) = self.others.get(pick) else {
            return;
        };
        let ask = Message::SeedSync(Box::new(SeedSync {
            seed: self.me,
            buckets: self.pl.digests().to_vec(),
            entries: Vec::new(),
            reply: false,
        }));
        self.count("sync_rounds");
        self.send(to, ask, now.after(self.settings.request_timeout_ms));
    }

    /// Answers a pull with this seed's entries of every bucket that differs.
    fn on_sync_req(&mut self, conn: ConnId, sync: SeedSync) {
        if sync.buckets.len() != SYNC_BUCKETS {
            return self.reject(
                conn,
                format!(
                    "SEED_SYNC: {} buckets, expected {SYNC_BUCKETS}",
                    sync.buckets.len()
                ),
            );
        }
        let start = self.rng.below(SYNC_BUCKETS as u64) as usize;
        let limit = self.settings.sync_entry_limit as usize;
        let entries = self.pl.differing(&sync.buckets, limit, start);
        let reply = Message::SeedSync(Box::new(SeedSync {
            seed: self.me,
            buckets: self.pl.digests().to_vec(),
            entries,
            reply: true,
        }));
        self.reply(conn, reply);
    }

    fn on_sync_reply(&mut self, from: Endpoint, outcome: Result<Message, Failure>) {
        match outcome {
            Ok(Message::SeedSync(sync)) if sync.reply => {
                for entry in sync.entries {
                    self.merge(entry, ChangeSource::AntiEntropy);
                }
            }
            Ok(other) => self.bad_input(format!(
                "{} from {from} in answer to SEED_SYNC",
                other.type_name()
            )),
            // The next round, maybe with another seed, tries again.
            Err(_) => {}
        }
    }

    // ----- outputs -----

    fn quorum(&self) -> u32 {
        self.certifier.quorum() as u32
    }

    fn send(&mut self, to: Endpoint, msg: Message, deadline: Millis) {
        self.outputs.push(Output::Send { to, msg, deadline });
    }

    fn send_to_others(&mut self, msg: &Message, deadline: Millis) {
        let sends = self.others.iter().map(|&to| Output::Send {
            to,
            msg: msg.clone(),
            deadline,
        });
        self.outputs.extend(sends);
    }

    fn reply(&mut self, conn: ConnId, msg: Message) {
        self.outputs.push(Output::Reply { conn, msg });
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push(Output::Event(event));
    }

    fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_insert(0) += 1;
    }

    /// Answers a bad request with `ERROR`.
    fn reject(&mut self, conn: ConnId, reason: String) {
        self.reply(conn, Message::error(reason.clone()));
        self.bad_input(reason);
    }

    /// Notes bad input (a bad request or a bad reply to one of ours).
    fn bad_input(&mut self, reason: String) {
        self.count("bad_input");
        self.emit(Event::BadInput { reason });
    }
}
