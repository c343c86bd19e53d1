//! The seed state machine: the membership authority.
//!
//! A seed keeps a certified Peer List (PL): per peer an `(incarnation, status)` entry that
//! only moves up, and only with a quorum certificate (the distinct seeds that vouched for
//! exactly that change). Any seed may propose a change: a `REGISTER_REQ` starts a
//! registration round, a `DEAD_REPORT` a removal round. Votes are not locks, so a proposer
//! that crashes mid-round blocks nobody, and merging is "take the higher", so changes may
//! arrive late, twice or never: periodic anti-entropy (`SEED_SYNC`, pull, per-bucket digests)
//! brings every live seed to the same PL.
//!
//! Trust: a certificate certifies a fact that each of its voters checked for itself, and a
//! seed checks a certificate before it believes it.
//! - **Every yes is earned** (`voter.rs`): a seed votes to admit only a registrant that
//!   answers its own `PING` at that endpoint, at an incarnation at most one step above what
//!   it knows (or what the registrant itself claims); to remove only a peer it holds alive at
//!   that incarnation that does not answer its own `PING`. Whoever asks. A yes to remove
//!   is taken back if the peer answers one of this seed's probes afterwards.
//! - **Carried changes are confirmed** (`sync.rs`, `confirm.rs`): a change this seed did not
//!   decide in its own round (a pushed commit sync, an anti-entropy entry) is applied only
//!   after a quorum of seeds, asked over connections this seed opens, vouch for exactly it
//!   (`SEED_CONFIRM`): they voted yes for it (`memory.rs`) or hold it. A pulled change its
//!   voters can no longer vouch for (they restarted empty) is certified again by a fresh
//!   round in which every voter checks it anew (`proposer.rs`).
//! - **Hearsay moves nothing far** (`confirm.rs`, `round::removal_check`): what another seed
//!   said it holds that a quorum could not confirm may come from a lying seed. It makes a
//!   seed whose list is behind probe a peer for its removal only at most one step above what
//!   it knows, so no lie can push a peer's incarnation beyond the range the cluster uses.
//!   A seed that holds a peer alive but heard of its removal at that incarnation tells the
//!   peer when it asks for its Peer List (`sync.rs`), so it registers one above.
//!
//! Where each part lives: rounds this seed runs in `proposer.rs`, votes it casts in
//! `voter.rs`, commit syncs, confirmations and anti-entropy in `sync.rs`; the pure rules in
//! `round.rs`, the PL in `peer_list.rs`.

mod confirm;
mod memory;
mod peer_list;
mod proposer;
mod round;
mod sync;
mod voter;

use std::collections::BTreeMap;

use crate::config::SettingsError;
use crate::event::{Event, ProposalKind};
use crate::msg::{Endpoint, Message, Pong, RoleStatus, SeedStatus, StatusResp};
use crate::rng::Rng;
use crate::timers::Timers;
use crate::{ConnId, Failure, Input, Millis, NodeInit, Output, Settings};

use confirm::Confirmations;
use memory::VoteMemory;
use peer_list::{Certifier, PeerList};
use round::Rounds;
use voter::Probes;

pub use confirm::MAX_CONFIRMING;
pub use memory::{vote_lifetime_ms, MEMORY_CAP};
pub use round::MAX_INCARNATION;

/// Rounds in flight (and registrations and votes waiting for a probe) at most. Beyond,
/// requests are answered `success: false` ("busy"), so a flood of requests cannot grow a
/// seed without bound.
pub const MAX_PENDING: usize = 1024;

/// Re-certification rounds in flight at most (see `proposer.rs`); more wait for a later
/// anti-entropy round to offer their changes again.
pub const MAX_RECERTIFYING: usize = 64;

/// Every counter the status shows, sorted by name (so all appear, even at zero).
const COUNTERS: [&str; 19] = [
    "aborts",
    "admissions_refused",
    "bad_input",
    "commits",
    "confirm_requests",
    "confirmations_dropped",
    "confirmed",
    "entries_merged",
    "entries_reaped",
    "orphans_refused",
    "peer_lists_served",
    "proposals",
    "recertifications",
    "sync_rounds",
    "unconfirmed",
    "votes_no",
    "votes_yes",
    "vouched",
    "vouches_refused",
];

/// A seed's named deadlines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    AntiEntropy,
    /// The deadline of the round with this id.
    Round(String),
}

/// A seed node.
///
/// A thin handle on boxed state: a seed's state is several hundred bytes (the ChaCha
/// generator alone is 320) and a [`crate::Node`] holding either role should not be as large
/// as the larger one for both.
#[derive(Debug)]
pub struct Seed(Box<Core>);

impl Seed {
    /// A seed for `init`. Fails if the settings do not validate or `init.me` is not a seed.
    pub fn new(init: NodeInit) -> Result<Seed, SettingsError> {
        Core::new(init).map(|core| Seed(Box::new(core)))
    }

    /// Feeds one input at `now`; the outputs it leads to are appended to `out`, in order.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        // The seed writes into the caller's buffer for the length of the call: between
        // calls it holds none.
        std::mem::swap(&mut self.0.outputs, out);
        self.0.handle(now, input);
        std::mem::swap(&mut self.0.outputs, out);
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

    /// Told to stop ([`Input::Leave`]) and every round it proposed has ended (its commit
    /// syncs are among the outputs already handed out): the driver may exit once they are
    /// written.
    pub fn done(&self) -> bool {
        self.0.stopping && self.0.rounds.len() == 0
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The seeds of its config, in config order (itself included).
    pub fn seeds(&self) -> &[Endpoint] {
        &self.0.seeds
    }
}

/// The seed's state and logic.
#[derive(Debug)]
struct Core {
    me: Endpoint,
    /// Every seed of the config, in config order.
    seeds: Vec<Endpoint>,
    /// The other seeds, in config order.
    others: Vec<Endpoint>,
    certifier: Certifier,
    settings: Settings,
    rng: Rng,
    pl: PeerList,
    rounds: Rounds,
    next_round: u64,
    /// Registrations and votes waiting for this seed's own `PING` of a peer.
    probes: Probes,
    /// Yes-votes this seed cast for changes it does not hold yet.
    memory: VoteMemory,
    /// Carried changes waiting for a quorum to vouch for them.
    confirmations: Confirmations,
    timers: Timers<Timer>,
    counters: BTreeMap<&'static str, u64>,
    outputs: Vec<Output>,
    /// Told to stop ([`Input::Leave`]): it starts no new round, finishes those in flight,
    /// and is done when none is left ([`Seed::done`]).
    stopping: bool,
    stopped_said: bool,
}

impl Core {
    fn new(init: NodeInit) -> Result<Core, SettingsError> {
        init.settings.validate()?;
        if !init.seeds.contains(&init.me) {
            return Err(SettingsError(format!(
                "{} is not in the seed list",
                init.me
            )));
        }
        let certifier = Certifier::new(&init.seeds);
        let lifetime = memory::vote_lifetime_ms(&init.settings);
        let seed = Core {
            me: init.me,
            others: init
                .seeds
                .iter()
                .copied()
                .filter(|s| *s != init.me)
                .collect(),
            seeds: init.seeds,
            confirmations: Confirmations::new(certifier.quorum()),
            certifier,
            settings: init.settings,
            rng: Rng::new(init.rng_seed),
            pl: PeerList::default(),
            rounds: Rounds::default(),
            next_round: 0,
            probes: Probes::default(),
            memory: VoteMemory::new(lifetime),
            timers: Timers::default(),
            counters: COUNTERS.iter().map(|name| (*name, 0)).collect(),
            outputs: Vec::new(),
            stopping: false,
            stopped_said: false,
        };
        Ok(seed)
    }

    fn handle(&mut self, now: Millis, input: Input) {
        match input {
            Input::Start => {
                // A random first sync, so seeds started together do not sync in lockstep.
                let interval = self.settings.anti_entropy_interval_ms;
                let first = now.after(1 + self.rng.below(interval));
                self.timers.set(Timer::AntiEntropy, first);
            }
            Input::Request { conn, msg } => self.on_request(now, conn, msg),
            Input::Refused { conn, why } => self.reject(conn, why.to_string()),
            Input::Response {
                to,
                request,
                outcome,
            } => self.on_response(now, to, request, outcome),
            Input::Tick => self.on_tick(now),
            Input::Publish { .. } => self.emit(Event::PublishRefused {
                reason: "seeds do not publish: publish from a peer".into(),
                retry_after_ms: None,
            }),
            Input::Leave => {
                if !self.stopping {
                    self.stopping = true;
                    self.emit(Event::Stopping {
                        rounds: self.rounds.len() as u32,
                    });
                }
            }
        }
        self.note_done();
    }

    fn status(&self) -> StatusResp {
        let mut counters: Vec<(String, u64)> = (self.counters.iter())
            .map(|(name, n)| (name.to_string(), *n))
            .collect();
        // Gauges: what waits now.
        counters.push((
            "confirmations_pending".into(),
            self.confirmations.len() as u64,
        ));
        counters.push(("votes_remembered".into(), self.memory.len() as u64));
        counters.push(("entries".into(), self.pl.len() as u64));
        counters.push(("reaped_remembered".into(), self.pl.reaped_len() as u64));
        counters.sort();
        StatusResp {
            node: self.me,
            role: RoleStatus::Seed(SeedStatus {
                entries: self.pl.entries().cloned().collect(),
                pending: self.rounds.len() as u32,
            }),
            counters,
        }
    }

    // ----- dispatch -----

    fn on_request(&mut self, now: Millis, conn: ConnId, msg: Message) {
        match msg {
            Message::RegisterReq(req) => self.on_register_req(now, conn, *req),
            Message::DeadReport(report) => self.on_dead_report(now, conn, *report),
            Message::RegisterVote(req) => self.on_vote_req(now, conn, ProposalKind::Register, *req),
            Message::DeadVote(req) => self.on_vote_req(now, conn, ProposalKind::Removal, *req),
            Message::RegisterCommit(sync) => {
                self.on_commit(now, conn, ProposalKind::Register, *sync)
            }
            Message::DeadCommit(sync) => self.on_commit(now, conn, ProposalKind::Removal, *sync),
            Message::Leave(req) => self.on_leave_req(now, conn, *req),
            Message::LeaveVote(req) => self.on_vote_req(now, conn, ProposalKind::Leave, *req),
            Message::LeaveCommit(sync) => self.on_commit(now, conn, ProposalKind::Leave, *sync),
            Message::Confirm(req) => self.on_confirm_req(now, conn, *req),
            Message::PeerListReq { requester } => self.on_peer_list_req(conn, requester),
            Message::SeedSync(sync) if !sync.reply => self.on_sync_req(conn, *sync),
            Message::Ping(_) => self.reply(
                conn,
                Message::Pong(Pong {
                    responder: self.me,
                    degree: None,
                    leaving: false,
                    incarnation: None,
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
            Message::LeaveVote(req) => {
                self.on_vote_resp(now, to, ProposalKind::Leave, *req, outcome)
            }
            Message::Ping(_) => self.on_probe_result(now, to, outcome),
            Message::SeedSync(_) => self.on_sync_reply(now, to, outcome),
            Message::Confirm(req) => self.on_confirm_resp(now, to, *req, outcome),
            // Commit syncs: the ack carries nothing to act on; anti-entropy covers a loss.
            _ => {}
        }
    }

    /// A stopping seed whose last round ended says so, once.
    fn note_done(&mut self) {
        if self.stopping && self.rounds.len() == 0 && !self.stopped_said {
            self.stopped_said = true;
            self.emit(Event::Stopped);
        }
    }

    fn on_tick(&mut self, now: Millis) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::AntiEntropy => {
                    self.memory.expire(now);
                    self.reap(now);
                    self.start_sync(now);
                }
                Timer::Round(id) => self.end_round(now, &id, round::Verdict::Lost("deadline")),
            }
        }
    }

    /// What another seed said it holds for `peer` and a quorum could not confirm, while this
    /// seed still has room for removals it takes part in on hearsay alone.
    fn hearsay(&self, peer: &Endpoint) -> Option<peer_list::Rank> {
        if self.pl.orphans() >= self.settings.max_hearsay_removals as usize {
            return None;
        }
        self.confirmations.hearsay(peer)
    }

    // ----- outputs -----

    fn quorum(&self) -> u32 {
        self.certifier.quorum() as u32
    }

    fn send(&mut self, to: Endpoint, msg: Message, deadline: Millis) {
        self.outputs.push(Output::Send {
            to,
            msg,
            deadline,
            wants_response: true,
        });
    }

    /// Sends `msg` to every other seed. The acks of a commit sync carry nothing to act on
    /// (anti-entropy covers a loss), so only vote requests want their responses.
    fn send_to_others(&mut self, msg: &Message, deadline: Millis) {
        let wants_response = matches!(
            msg,
            Message::RegisterVote(_) | Message::DeadVote(_) | Message::LeaveVote(_)
        );
        let sends = self.others.iter().map(|&to| Output::Send {
            to,
            msg: msg.clone(),
            deadline,
            wants_response,
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
