//! The peer state machine: a thin router over the components that own its state.
//!
//! A [`Peer`] is driven like every node of this crate (see the crate doc): one
//! [`Peer::handle`] into a buffer the caller lends, then [`Peer::next_deadline`].
//!
//! Its parts, each in its own module with the types it owns:
//! - **membership** (`membership.rs`, `membership/neighbours.rs`): registration with a quorum
//!   of seeds (with backoff), Peer List discovery and refresh, rejoin after a removal, the
//!   known peers, repair, and choosing and greeting neighbours (preferential attachment;
//!   a new neighbour's `HELLO` is checked before it is accepted);
//! - **overlay** (`overlay.rs`): the neighbours and what this peer knows about each link;
//! - **gossip** (`gossip.rs` and `gossip/`, `seen.rs`): generation, first-time forwarding,
//!   de-duplication, and the repair that sends neighbours what they lost;
//! - **liveness** (`liveness.rs`): probing neighbours, suspicion rounds with witnesses, dead
//!   reports and following them up, answering as a witness;
//! - **pings** (`pings.rs`): the `PING`s in flight, shared by every part that probes.
//!
//! The peer routes each input to the part it concerns and carries the few effects that
//! cross parts (a neighbour found dead is dropped from the overlay and forgotten by
//! membership). The decisions worth testing alone (neighbour choice, witness choice,
//! suspicion verdict) are pure functions in `decide.rs`.

mod decide;
mod gossip;
mod known;
mod leave;
mod liveness;
mod membership;
mod overlay;
mod pings;
mod seen;

use std::num::NonZeroU32;

use crate::config::{GossipMode, SettingsError};
use crate::msg::{
    DeadResult, Endpoint, LeaveReq, Message, PeerStatus, Pong, RoleStatus, StatusResp,
};
use crate::rng::Rng;
use crate::timers::FewTimers;
use crate::{ConnId, Event, Failure, Input, Millis, NodeInit, Output, Settings};

use gossip::Gossip;
use leave::Leaving;
use liveness::Liveness;
use membership::Membership;
use overlay::Overlay;
use pings::{PingRole, Pings};

pub use decide::{choose_neighbours, pick_witnesses, verdict, Verdict};
pub use gossip::{
    BODY_OVERHEAD, MARGIN_SECS, MAX_MISSING, MAX_MISSING_HEARSAY, MAX_OWED_ANNOUNCEMENTS,
    MAX_PULLS_IN_FLIGHT, MAX_PULL_BYTES, MAX_RETAINED, MAX_RETAINED_BYTES, MAX_TRACKED_ORIGINS,
    RETAIN_SECS,
};
pub use liveness::{MAX_LOCAL_HEALTH, MAX_PENDING_WITNESS};
pub use membership::{
    LINK_CHECK_MS, LOST_LINK_BACKOFF, LOST_LINK_TRIES, MAX_LOST_LINKS, MAX_PENDING_GREETINGS,
    MAX_SHUNNED, SHUN_MS, STARVING_AFTER,
};
pub use seen::{gossip_key, Coverage, GossipKey, SeenSet, AHEAD_SECS, COVERED_SECS};

/// Known peers remembered per `peer_list_limit` (a random one is evicted beyond).
const KNOWN_PER_LIST: usize = 4;

/// A peer at or above the minimum degree merges one periodic Peer List refresh in this many
/// into its known set (see `Membership::periodic_refresh`).
const MERGE_EVERY: u32 = 4;

/// The peer's periodic and one-shot deadlines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Registration failed; try again.
    RegisterRetry,
    /// Generate the next gossip message.
    Gossip,
    /// Probe the neighbours.
    Probe,
    /// Probe again, half a round early, the neighbours that missed a probe.
    Reprobe,
    /// Refresh the Peer List from a seed (repair, rejoin).
    Refresh,
    /// Still below the minimum degree after a selection round: refresh early.
    Repair,
    /// Send the next neighbour a digest of the gossip held (gossip repair).
    Reconcile,
    /// Pull the announced gossips that are due.
    Pull,
    /// Lazy push: send the `IHAVE`s owed to lazy links.
    Announce,
    /// Greet the neighbours dropped as dead that are due (a partition may have healed).
    GreetLost,
}

/// What every part of a peer uses while it handles one input: who it is, the time, its
/// settings, its randomness and timers, and where its outputs go.
struct Cx<'a> {
    now: Millis,
    me: Endpoint,
    seeds: &'a [Endpoint],
    settings: &'a Settings,
    unix_ms_at_zero: u64,
    rng: &'a mut Rng,
    timers: &'a mut FewTimers<Timer>,
    out: &'a mut Vec<Output>,
}

impl Cx<'_> {
    /// `now + ms`.
    fn after(&self, ms: u64) -> Millis {
        self.now.after(ms)
    }

    /// Wall-clock unix seconds now: the texts the spec fixes carry them.
    fn unix_secs(&self) -> u64 {
        self.unix_ms() / 1000
    }

    /// Wall-clock unix milliseconds now.
    fn unix_ms(&self) -> u64 {
        self.unix_ms_at_zero.saturating_add(self.now.0)
    }

    fn send(&mut self, to: Endpoint, msg: Message, deadline: Millis) {
        self.out.push(Output::Send {
            to,
            msg,
            deadline,
            wants_response: true,
        });
    }

    fn reply(&mut self, conn: ConnId, msg: Message) {
        self.out.push(Output::Reply { conn, msg });
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Output::Event(event));
    }
}

/// A peer node.
#[derive(Debug)]
pub struct Peer {
    me: Endpoint,
    seeds: Vec<Endpoint>,
    settings: Settings,
    unix_ms_at_zero: u64,
    rng: Rng,
    timers: FewTimers<Timer>,
    /// Bad requests answered `ERROR`.
    bad_input: u64,
    membership: Membership,
    overlay: Overlay,
    gossip: Gossip,
    liveness: Liveness,
    pings: Pings,
    /// Told to stop: leaving (see `leave.rs`).
    leaving: Option<Leaving>,
}

impl Peer {
    /// A peer for `init`: it registers once started ([`Input::Start`]). Fails if the settings
    /// do not validate, no seed is given, or `init.me` is one of the seeds.
    pub fn new(init: NodeInit) -> Result<Peer, SettingsError> {
        init.settings.validate()?;
        if init.seeds.is_empty() {
            return Err(SettingsError("a peer needs at least one seed".into()));
        }
        if init.seeds.contains(&init.me) {
            return Err(SettingsError(format!(
                "{} is a seed: a peer must not be one of the seeds",
                init.me
            )));
        }
        let peer = Peer {
            me: init.me,
            seeds: init.seeds,
            gossip: Gossip::new(init.settings.seen_capacity),
            settings: init.settings,
            unix_ms_at_zero: init.unix_ms_at_zero,
            rng: Rng::new(init.rng_seed),
            timers: FewTimers::default(),
            bad_input: 0,
            membership: Membership::default(),
            overlay: Overlay::default(),
            liveness: Liveness::default(),
            pings: Pings::default(),
            leaving: None,
        };
        Ok(peer)
    }

    /// Feeds one input at `now`; the outputs it leads to are appended to `out`, in order.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        if let Input::Request {
            conn,
            msg: Message::StatusReq,
        } = input
        {
            let status = Message::StatusResp(Box::new(self.status()));
            out.push(Output::Reply { conn, msg: status });
            return;
        }
        let (mut cx, mut parts) = self.split(now, out);
        match input {
            Input::Start => parts.membership.start_registration(&mut cx, None),
            Input::Request { conn, msg } => parts.on_request(&mut cx, conn, msg),
            Input::Refused { conn, why } => parts.reject(&mut cx, conn, why.to_string()),
            Input::Response {
                to,
                request,
                outcome,
            } => parts.on_response(&mut cx, to, request, outcome),
            Input::Tick => parts.on_tick(&mut cx),
            Input::Publish { .. } if parts.leaving.is_some() => cx.emit(Event::PublishRefused {
                reason: "this peer is leaving the network".into(),
                retry_after_ms: None,
            }),
            Input::Publish { name, data } => {
                (parts.gossip).publish(&mut cx, parts.overlay, name, data)
            }
            Input::Leave => parts.leave(&mut cx),
        }
        if parts.leaving.is_some() {
            return;
        }
        if cx.settings.gossip_repair {
            parts.gossip.note_links(&cx, parts.overlay);
        }
        if cx.settings.gossip_mode == GossipMode::Lazy {
            parts.gossip.attach(&mut cx, parts.overlay);
        }
    }

    /// Told to leave ([`Input::Leave`]) and done: the seeds certified its `LEFT` entry (or
    /// none could) and its neighbours dropped their links. The driver may exit.
    pub fn done(&self) -> bool {
        self.leaving.as_ref().is_some_and(Leaving::done)
    }

    /// When the peer next wants [`Input::Tick`].
    #[inline]
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// This peer's endpoint.
    pub fn me(&self) -> Endpoint {
        self.me
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The seeds of its config.
    pub fn seeds(&self) -> &[Endpoint] {
        &self.seeds
    }

    /// The peers this peer knows of (from seeds' Peer Lists and its links), with the
    /// incarnation it last heard of, in endpoint order: a sample of the membership, never all
    /// of it.
    pub fn known_peers(&self) -> Vec<(Endpoint, Option<u64>)> {
        let known = &self.membership.known;
        let mut all: Vec<_> = known.keys().map(|p| (p, known.get(&p).flatten())).collect();
        all.sort_unstable();
        all
    }

    /// A read-only view, as answered to `STATUS_REQ`.
    pub fn status(&self) -> StatusResp {
        let mut counters = vec![
            ("bad_input", self.bad_input),
            ("dead_reports", self.liveness.dead_reports),
            ("gossip_duplicate", self.gossip.duplicate),
            ("gossip_first", self.gossip.first),
            ("gossip_generated", u64::from(self.gossip.generated())),
            ("local_health", u64::from(self.liveness.health())),
            ("probes_missed", self.liveness.probes_missed),
            ("probes_sent", self.pings.sent),
            ("refutations", self.liveness.refutations),
            ("suspicions", self.liveness.suspicions_raised),
        ];
        counters.extend(self.gossip.counters());
        counters.sort_unstable();
        StatusResp {
            node: self.me,
            role: RoleStatus::Peer(PeerStatus {
                registered: self.membership.registered(),
                incarnation: self.membership.incarnation(),
                neighbours: self.overlay.keys().copied().collect(),
                known_peers: count(self.membership.known.len()),
            }),
            counters: counters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// The context of one input and the parts, borrowed apart.
    fn split<'a>(&'a mut self, now: Millis, out: &'a mut Vec<Output>) -> (Cx<'a>, Parts<'a>) {
        let cx = Cx {
            now,
            me: self.me,
            seeds: &self.seeds,
            settings: &self.settings,
            unix_ms_at_zero: self.unix_ms_at_zero,
            rng: &mut self.rng,
            timers: &mut self.timers,
            out,
        };
        let parts = Parts {
            leaving: &mut self.leaving,
            bad_input: &mut self.bad_input,
            membership: &mut self.membership,
            overlay: &mut self.overlay,
            gossip: &mut self.gossip,
            liveness: &mut self.liveness,
            pings: &mut self.pings,
        };
        (cx, parts)
    }
}

/// The parts of a peer, borrowed for one input.
struct Parts<'a> {
    leaving: &'a mut Option<Leaving>,
    bad_input: &'a mut u64,
    membership: &'a mut Membership,
    overlay: &'a mut Overlay,
    gossip: &'a mut Gossip,
    liveness: &'a mut Liveness,
    pings: &'a mut Pings,
}

impl Parts<'_> {
    fn on_request(&mut self, cx: &mut Cx<'_>, conn: ConnId, msg: Message) {
        match msg {
            Message::Gossip(g) => match gossip::app::invalid(cx.settings, &g.body) {
                Some(why) => self.reject(cx, conn, why),
                None => self.gossip.on_gossip(cx, self.overlay, conn, &g),
            },
            Message::Digest(d) => self.gossip.on_digest(cx, self.overlay, conn, &d),
            Message::IHave(i) => self.gossip.on_ihave(cx, self.overlay, conn, &i),
            Message::Pull(p) => self.gossip.on_pull(cx, self.overlay, conn, &p),
            Message::Ping(ping) => {
                if self.leaving.is_none() {
                    (self.liveness).on_ping(cx, self.overlay, self.pings, &ping);
                }
                let claimed = self.membership.claimed_incarnation();
                let pong = Pong {
                    responder: cx.me,
                    degree: Some(u16::try_from(self.overlay.len()).unwrap_or(u16::MAX)),
                    leaving: self.leaving.is_some(),
                    incarnation: NonZeroU32::new(u32::try_from(claimed).unwrap_or(u32::MAX)),
                };
                cx.reply(conn, Message::Pong(pong));
            }
            Message::Hello(_) if self.leaving.is_some() => {
                self.membership.refuse_hello(cx, self.overlay, conn)
            }
            Message::Hello(h) => self
                .membership
                .on_hello(cx, self.overlay, self.pings, conn, *h),
            Message::Leave(l) => self.on_neighbour_leave(cx, conn, &l),
            Message::SuspectReq(r) => self.liveness.on_suspect_req(cx, self.pings, conn, *r),
            Message::RegisterReq(_)
            | Message::RegisterVote(_)
            | Message::RegisterCommit(_)
            | Message::PeerListReq { .. }
            | Message::DeadReport(_)
            | Message::DeadVote(_)
            | Message::DeadCommit(_)
            | Message::SeedSync(_)
            | Message::LeaveVote(_)
            | Message::LeaveCommit(_)
            | Message::Confirm(_) => {
                self.reject(cx, conn, format!("{}: not a seed", msg.type_name()))
            }
            other => self.reject(cx, conn, format!("{} is not a request", other.type_name())),
        }
    }

    fn on_response(
        &mut self,
        cx: &mut Cx<'_>,
        to: Endpoint,
        request: Message,
        outcome: Result<Message, Failure>,
    ) {
        if let Some(leaving) = self.leaving.as_mut() {
            // Leaving: only the answers to its `LEAVE`s matter (no suspicion, rejoin or new
            // link may start now).
            if let Message::Leave(_) = request {
                leaving.on_result(cx, to, &outcome);
            }
            return;
        }
        match request {
            Message::RegisterReq(_) => {
                self.membership
                    .on_register_result(cx, self.overlay, to, outcome)
            }
            Message::PeerListReq { requester } => match requester.parse::<Endpoint>() {
                Ok(greeter) if greeter != cx.me => {
                    self.membership
                        .on_greeter_listed(cx, self.overlay, greeter, outcome)
                }
                _ => {
                    if let Ok(Message::PeerListResp(resp)) = &outcome {
                        let complete = resp.total.is_some_and(|t| t <= resp.peers.len() as u64);
                        let quorum = crate::quorum(cx.seeds.len());
                        self.liveness.note_listed(resp, complete, to, quorum);
                    }
                    self.membership
                        .on_peer_list(cx, self.overlay, self.pings, to, outcome)
                }
            },
            Message::Ping(_) => self.on_ping_outcome(cx, to, outcome),
            Message::Hello(_) => {
                self.membership
                    .on_hello_ack(cx, self.overlay, self.pings, to, outcome)
            }
            Message::SuspectReq(r) => {
                let known = &self.membership.known;
                let dead =
                    (self.liveness).on_suspect_ack(cx, self.overlay, known, to, r.suspect, outcome);
                self.bury(cx, dead);
            }
            Message::DeadReport(r) => {
                (self.liveness).on_dead_result(cx, self.pings, to, r.dead, outcome)
            }
            Message::Digest(_) => self.gossip.on_digest_resp(cx, self.overlay, to, outcome),
            Message::IHave(i) => (self.gossip).on_ihave_resp(cx, self.overlay, to, &i, &outcome),
            Message::Gossip(g) => (self.gossip).on_gossip_ack(cx, self.overlay, &to, &g, &outcome),
            Message::Pull(p) => (self.gossip).on_pull_resp(cx, self.overlay, to, &p, outcome),
            _ => {}
        }
    }

    /// A `PING` ended: every part that waited for it learns the outcome (any reply at all
    /// proves the node is up; a failure is a miss).
    fn on_ping_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        to: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let alive = outcome.is_ok();
        let Some(waiters) = self.pings.settle(&to, alive) else {
            return;
        };
        // A peer that says it is leaving is up, but no neighbour, candidate or greeter any
        // more: whatever probe found it so, its link goes without suspicion.
        let leaving = matches!(&outcome, Ok(Message::Pong(p)) if p.leaving);
        if leaving {
            self.neighbour_left(cx, to);
        }
        for conn in &waiters.leavers {
            let answer = DeadResult {
                proposal_id: String::new(),
                success: leaving,
                yes_votes: 0,
                quorum: 0,
            };
            cx.reply(*conn, Message::LeaveResult(answer));
        }
        if waiters.candidate {
            let outcome = if leaving {
                Err(Failure::Unreachable)
            } else {
                outcome
            };
            self.membership
                .on_candidate_outcome(cx, self.overlay, to, &outcome);
        }
        for (conn, requester) in waiters.witnesses {
            self.liveness
                .on_witness_probe(cx, conn, to, requester, alive);
        }
        if waiters.probe && !leaving {
            let known = &self.membership.known;
            let dead =
                (self.liveness).on_probe_outcome(cx, self.overlay, self.pings, known, to, alive);
            self.bury(cx, dead);
        }
        if waiters.recheck && !leaving {
            let known = &self.membership.known;
            let dead = (self.liveness).on_recheck_outcome(cx, self.overlay, known, to, alive);
            self.bury(cx, dead);
            if alive {
                self.membership.greet_lost_now(cx, self.overlay, to);
            }
        }
        if waiters.greeter {
            self.membership
                .on_greeter_probed(cx, self.overlay, to, alive && !leaving);
        }
    }

    /// A neighbour found dead by a peer-level consensus (and reported): drop the link, forget
    /// it, and look for new candidates; greet it again now and then in case it was only cut
    /// off (a partition), so the link comes back soon after it heals.
    fn bury(&mut self, cx: &mut Cx<'_>, dead: Option<Endpoint>) {
        if let Some(dead) = dead {
            self.overlay.drop_link(dead, "dead", cx.out);
            self.membership.forget_dead(cx, &dead);
            self.membership.note_lost(cx, dead);
        }
    }

    /// Told to stop: start leaving (once).
    fn leave(&mut self, cx: &mut Cx<'_>) {
        if self.leaving.is_none() {
            let registered = self.membership.registered();
            let inc = self.membership.incarnation();
            *self.leaving = Some(Leaving::start(cx, self.overlay, registered, inc));
        }
    }

    /// A neighbour says it leaves (`LEAVE`): checked with its own `PING` (only it can answer
    /// `leaving: true` at its address), answered once the check is in. Not a neighbour:
    /// nothing to drop.
    fn on_neighbour_leave(&mut self, cx: &mut Cx<'_>, conn: ConnId, leave: &LeaveReq) {
        if !self.overlay.contains(&leave.peer) || self.leaving.is_some() {
            let answer = DeadResult {
                proposal_id: String::new(),
                success: true,
                yes_votes: 0,
                quorum: 0,
            };
            return cx.reply(conn, Message::LeaveResult(answer));
        }
        let deadline = cx.after(cx.settings.probe_timeout_ms);
        (self.pings).ping(cx.me, leave.peer, PingRole::Leaver(conn), deadline, cx.out);
    }

    /// A peer left (or is leaving): no suspicion or accusation of it goes on, it is no
    /// candidate any more, and if it was a neighbour the link goes and a replacement is
    /// looked for at once.
    fn neighbour_left(&mut self, cx: &mut Cx<'_>, peer: Endpoint) {
        let incarnation = self.membership.known.get(&peer).flatten();
        self.liveness.follow_leaver(cx, &peer, incarnation);
        self.membership.forget_left(cx, &peer);
        if self.overlay.contains(&peer) {
            self.overlay.drop_link(peer, "left", cx.out);
            self.membership.repair(cx, self.overlay, self.pings);
        }
    }

    fn on_tick(&mut self, cx: &mut Cx<'_>) {
        while let Some(timer) = cx.timers.pop_due(cx.now) {
            match timer {
                Timer::RegisterRetry => self.membership.retry_registration(cx),
                Timer::Gossip => self.gossip.generate(cx, self.overlay),
                Timer::Reconcile => {
                    let stranger = self.membership.stranger(cx, self.overlay);
                    self.gossip.reconcile(cx, self.overlay, stranger);
                }
                Timer::Pull => self.gossip.pull_due(cx, self.overlay),
                Timer::Announce => self.gossip.announce(cx, self.overlay),
                Timer::GreetLost => self.membership.greet_lost(cx, self.overlay),
                Timer::Probe => {
                    let delivered = self.gossip.delivered_total();
                    (self.membership).check_links(cx, self.overlay, self.pings, delivered);
                    (self.liveness).probe_neighbours(cx, self.overlay, self.pings);
                }
                Timer::Reprobe => (self.liveness).reprobe_missed(cx, self.overlay, self.pings),
                Timer::Repair => {
                    if self.overlay.len() < cx.settings.min_degree as usize {
                        self.membership.refresh_peer_list(cx);
                    }
                }
                Timer::Refresh => {
                    self.membership.periodic_refresh(cx, self.overlay);
                    self.membership.regreet_neighbours(cx, self.overlay, false);
                    self.liveness.recheck_accusations(cx, self.pings);
                    let at = cx.after(cx.settings.peer_list_refresh_ms);
                    cx.timers.set(Timer::Refresh, at);
                }
            }
        }
    }

    /// Answers a bad request with `ERROR` and records it.
    fn reject(&mut self, cx: &mut Cx<'_>, conn: ConnId, reason: String) {
        *self.bad_input += 1;
        cx.reply(conn, Message::error(reason.clone()));
        cx.emit(Event::BadInput { reason });
    }
}

/// A collection size as a wire/event count.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
