//! The peer state machine: bootstrap, overlay, gossip, liveness, repair and rejoin.
//!
//! A [`Peer`] is driven like every node of this crate (see the crate doc): one
//! [`Peer::handle`], then [`Peer::drain_outputs`], then [`Peer::next_deadline`].
//!
//! Its life, and where each part lives:
//! 1. **Registration**: `REGISTER_REQ` to a quorum of randomly chosen seeds, more if some
//!    fail; registered only once a quorum said success. Failed rounds retry later.
//!    Steps 1-3 and 6 are in `bootstrap.rs`.
//! 2. **Discovery**: `PEER_LIST_REQ` to the seeds that admitted it; the union is the set of
//!    known peers (bounded).
//! 3. **Neighbour selection** (preferential attachment): `PING` a sample of candidates, weight
//!    each by the degree its `PONG` carries, draw neighbours by weight, `HELLO` them. The
//!    first round ending is "bootstrap complete", whatever it found.
//! 4. **Gossip**: generate a message every interval up to a maximum; forward first-time
//!    messages to every neighbour but the sender; a bounded seen-set drops repeats
//!    (`gossip.rs`, `seen.rs`).
//! 5. **Liveness**: probe neighbours (a round skips a neighbour whose own `PING` arrived since
//!    the last one, so a link is probed about once per interval, not once from each end);
//!    after enough consecutive misses ask witnesses to probe the suspect; only a peer-level
//!    majority (with at least one witness) leads to a `DEAD_REPORT` to a quorum of seeds. As
//!    a witness, probe and answer later (`liveness.rs`).
//! 6. **Repair and rejoin**: refresh the Peer List periodically and after a drop, reconnect
//!    while below the minimum degree, and register again if the seeds removed this peer.
//!    Every refresh checks this peer's own entry; a peer at or above the minimum degree
//!    merges the listed peers into its known set on one periodic refresh in four.
//!
//! This file holds the state and the dispatch of inputs; the decisions worth testing alone
//! (neighbour choice, witness choice, suspicion verdict) are pure functions in `decide.rs`.
//! All probes go through one table, keyed by endpoint, so a neighbour probe, a candidate
//! probe and witness probes of the same node share one `PING` and its single response.

mod bootstrap;
mod decide;
mod gossip;
mod known;
mod liveness;
mod neighbours;
mod seen;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU32;

use crate::config::SettingsError;
use crate::msg::{Endpoint, Hello, Message, PeerStatus, Pong, RoleStatus, StatusResp};
use crate::rng::Rng;
use crate::timers::FewTimers;
use crate::{ConnId, Event, Failure, Input, Millis, NodeInit, Output, Settings};

use known::Known;
use neighbours::Neighbours;

pub use decide::{choose_neighbours, pick_witnesses, verdict, Verdict};
pub use seen::{gossip_key, SeenSet};

/// Witness probes a peer keeps pending at most; beyond, `SUSPECT_REQ` is answered `ERROR`
/// so a flood of requests cannot grow memory.
pub const MAX_PENDING_WITNESS: usize = 256;

/// New neighbours' `HELLO`s a peer keeps waiting for their checks at most (see [`Greeting`]);
/// beyond, a new `HELLO` is refused at once.
pub const MAX_PENDING_GREETINGS: usize = 64;

/// Dead reports a peer keeps following at most (see [`Accusation`]).
const MAX_ACCUSATIONS: usize = 64;

/// Re-checks of an unsettled accusation before it is given up, unless a Peer List shows the
/// accused still listed (then they start over).
const ACCUSATION_RETRIES: u32 = 3;

/// Known peers remembered per `peer_list_limit` (a random one is evicted beyond).
const KNOWN_PER_LIST: usize = 4;

/// A peer at or above the minimum degree merges one periodic Peer List refresh in this many
/// into its known set (see `periodic_refresh`).
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
    /// Refresh the Peer List from a seed (repair, rejoin).
    Refresh,
    /// Still below the minimum degree after a selection round: refresh early.
    Repair,
}

/// The two counters every gossip delivery bumps, kept apart from the others (see [`Peer`]'s
/// layout).
#[derive(Debug, Default)]
#[repr(C)]
struct GossipCounts {
    duplicate: u64,
    first: u64,
}

/// Counters shown in `STATUS_RESP`, with the [`GossipCounts`].
#[derive(Debug, Default)]
struct Counters {
    bad_input: u64,
    dead_reports: u64,
    gossip_generated: u64,
    probes_missed: u64,
    probes_sent: u64,
    suspicions: u64,
}

impl Counters {
    /// Named counters, sorted by name.
    fn sorted(&self, gossip: &GossipCounts) -> Vec<(String, u64)> {
        [
            ("bad_input", self.bad_input),
            ("dead_reports", self.dead_reports),
            ("gossip_duplicate", gossip.duplicate),
            ("gossip_first", gossip.first),
            ("gossip_generated", self.gossip_generated),
            ("probes_missed", self.probes_missed),
            ("probes_sent", self.probes_sent),
            ("suspicions", self.suspicions),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// One registration attempt (a retry or a rejoin starts from the seeds that said success).
#[derive(Debug, Default)]
struct Registration {
    /// The lowest incarnation asked for (one above a removed one when rejoining).
    hint: Option<u64>,
    /// Seeds asked in this round; a failure moves on to one not asked yet.
    asked: BTreeSet<Endpoint>,
    /// Seeds whose answer is awaited.
    in_flight: BTreeSet<Endpoint>,
    /// Seeds that admitted this peer.
    successes: BTreeSet<Endpoint>,
    /// The highest incarnation a seed said it admitted.
    admitted: Option<u64>,
}

/// One round of neighbour selection.
#[derive(Debug, Default)]
struct Selection {
    /// Candidates pinged, `PONG` awaited.
    probing: BTreeSet<Endpoint>,
    /// Candidates that answered, with their weight (degree, at least 1).
    answered: Vec<(Endpoint, u32)>,
    /// Answered candidates in weighted-draw order, not greeted yet.
    reserve: VecDeque<Endpoint>,
    /// `HELLO`s awaiting their `HELLO_ACK`.
    greeting: BTreeSet<Endpoint>,
}

/// Per-neighbour liveness state.
#[derive(Debug, Default)]
struct Link {
    /// Consecutive missed probes.
    misses: u32,
    /// A probe is in flight.
    probing: bool,
    /// The neighbour's own `PING` arrived since the last probe round: it was up then, so
    /// the next round may skip probing it (see `probe_neighbours`).
    heard: bool,
    /// The neighbour re-greeted us (a `HELLO` on an existing link) since our last periodic
    /// re-greeting: it holds the link, so the next one may skip it (see
    /// `regreet_neighbours`).
    greeted: bool,
}

/// A suspicion round in progress.
#[derive(Debug)]
struct Suspicion {
    /// Witnesses whose `SUSPECT_ACK` is awaited.
    awaiting: BTreeSet<Endpoint>,
    /// Witnesses that said dead, in answer order.
    dead: Vec<Endpoint>,
    /// Witnesses that said alive.
    alive: u32,
}

/// A dead report whose outcome is not settled: no seed has committed the removal yet (a
/// quorum of seeds may have been down). On each refresh the detector probes the accused
/// again and, if it is still silent, runs a fresh witness round and reports again. It ends
/// when a seed commits, the accused answers, the witnesses disagree, a complete Peer List no
/// longer lists it, or the retries run out.
#[derive(Debug)]
struct Accusation {
    /// The incarnation accused, if known.
    incarnation: Option<u64>,
    /// Seeds whose answer to the latest report is awaited.
    awaiting: BTreeSet<Endpoint>,
    /// Re-checks left.
    retries_left: u32,
}

/// A `HELLO` from a peer that is not a neighbour yet, answered once it is checked: it must
/// answer this peer's own `PING` at the endpoint it claims, and be admitted in a seed's Peer
/// List (known from one, or confirmed by asking one). So nobody can plant a neighbour that
/// the seeds never admitted, or one that does not listen where it says.
#[derive(Debug)]
struct Greeting {
    /// The `HELLO` (the first, if it came more than once) and every connection to answer.
    hello: Hello,
    conns: Vec<ConnId>,
    /// The `PING` answered (`None`: not yet).
    answered: Option<bool>,
    /// A seed lists it as admitted (`None`: asked, no answer yet).
    admitted: Option<bool>,
}

/// Who waits for the outcome of the `PING` in flight to one endpoint.
#[derive(Debug, Default)]
struct PingWaiters {
    /// The neighbour probe.
    probe: bool,
    /// Checking a new neighbour's `HELLO`.
    greeter: bool,
    /// Neighbour selection.
    candidate: bool,
    /// Re-checking an unsettled accusation.
    recheck: bool,
    /// Detectors that asked this peer to witness: the connection to answer and who asked.
    witnesses: Vec<(ConnId, Endpoint)>,
}

/// Why a `PING` is sent.
enum PingRole {
    Probe,
    Greeter,
    Candidate,
    Recheck,
    Witness(ConnId, Endpoint),
}

/// A peer node.
///
/// `repr(C)` keeps the fields in this order: the ones a gossip delivery touches come first,
/// packed into as few cache lines as they fit. A simulator hosts thousands of peers and visits
/// each only now and then, so every separate line a delivery touches is a cache miss. The
/// simulator keeps 16 bytes of its own just before a node, so line boundaries fall at peer
/// offsets 48, 112, 176 and 240 there:
///
/// - 0–48 (with the simulator's bookkeeping): the output buffer and the earliest timer: every
///   input, the answer to a gossip reads nothing else;
/// - 48–112: the clock, the gossip counters and the neighbours: every gossip;
/// - 112–176: the seen set's recent-key cache and its table pointer: every gossip;
/// - 240–: the endpoint and the request deadline a first receipt forwards with.
#[derive(Debug)]
#[repr(C)]
pub struct Peer {
    // ----- touched by every gossip delivery and response -----
    outputs: Vec<Output>,
    timers: FewTimers<Timer>,
    unix_ms_at_zero: u64,
    gossip_counts: GossipCounts,
    /// The overlay adjacency.
    neighbours: Neighbours,
    seen: SeenSet,
    me: Endpoint,
    /// `settings.request_timeout_ms`, copied next to `me` for forwarding.
    request_timeout_ms: u64,

    counters: Counters,
    seeds: Vec<Endpoint>,
    settings: Settings,
    rng: Rng,

    registered: bool,
    incarnation: u64,
    reg: Registration,
    /// Registration rounds failed in a row (the backoff's exponent).
    register_failures: u32,

    bootstrapped: bool,
    /// Seeds whose bootstrap `PEER_LIST_RESP` is awaited.
    pl_awaiting: BTreeSet<Endpoint>,
    /// A refresh `PEER_LIST_REQ` is in flight.
    refreshing: bool,
    /// Its answer is to be merged into the known set.
    refresh_merge: bool,
    /// Periodic refreshes so far.
    periodic_refreshes: u32,
    selection: Option<Selection>,
    /// Peers known from Peer Lists and handshakes, with the incarnation last heard of.
    known: Known,

    generated: u32,

    /// `PING`s in flight, by endpoint: a handful (one per neighbour, candidate or suspect
    /// probed), looked up by a scan; never iterated, so their order reaches no output.
    pings: Vec<(Endpoint, PingWaiters)>,
    /// New neighbours' `HELLO`s being checked, by greeter.
    greetings: BTreeMap<Endpoint, Greeting>,
    witness_pending: usize,
    suspicions: BTreeMap<Endpoint, Suspicion>,
    accusations: BTreeMap<Endpoint, Accusation>,
}

impl Peer {
    /// A peer for `init`; its registration requests are queued at once. Fails if the settings
    /// do not validate, no seed is given, or `init.me` is one of the seeds.
    pub fn new(init: NodeInit, now: Millis) -> Result<Peer, SettingsError> {
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
        let seen = SeenSet::new(usize::try_from(init.settings.seen_capacity).unwrap_or(usize::MAX));
        let mut peer = Peer {
            me: init.me,
            seeds: init.seeds,
            request_timeout_ms: init.settings.request_timeout_ms,
            settings: init.settings,
            rng: Rng::new(init.rng_seed),
            unix_ms_at_zero: init.unix_ms_at_zero,
            outputs: Vec::new(),
            timers: FewTimers::default(),
            gossip_counts: GossipCounts::default(),
            counters: Counters::default(),
            registered: false,
            incarnation: 0,
            reg: Registration::default(),
            register_failures: 0,
            bootstrapped: false,
            pl_awaiting: BTreeSet::new(),
            refreshing: false,
            refresh_merge: false,
            periodic_refreshes: 0,
            selection: None,
            known: Known::default(),
            neighbours: Neighbours::default(),
            generated: 0,
            seen,
            pings: Vec::new(),
            greetings: BTreeMap::new(),
            witness_pending: 0,
            suspicions: BTreeMap::new(),
            accusations: BTreeMap::new(),
        };
        peer.start_registration(now, None);
        Ok(peer)
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Millis, input: Input) {
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

    /// Takes every queued output, in order.
    #[must_use = "outputs are what the node asks the driver to do"]
    #[inline]
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// Exchanges the buffer outputs are queued in (with its contents) for `buf`.
    #[inline]
    pub fn swap_outputs(&mut self, buf: &mut Vec<Output>) {
        std::mem::swap(&mut self.outputs, buf);
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

    /// A read-only view, as answered to `STATUS_REQ`.
    pub fn status(&self) -> StatusResp {
        StatusResp {
            node: self.me,
            role: RoleStatus::Peer(PeerStatus {
                registered: self.registered,
                incarnation: self.incarnation,
                neighbours: self.neighbours.keys().copied().collect(),
                known_peers: u32::try_from(self.known.len()).unwrap_or(u32::MAX),
            }),
            counters: self.counters.sorted(&self.gossip_counts),
        }
    }

    // ----- dispatch -------------------------------------------------------------------------

    fn on_request(&mut self, now: Millis, conn: ConnId, msg: Message) {
        match msg {
            Message::Gossip(g) => self.on_gossip(now, conn, &g),
            Message::Ping(ping) => {
                if let Some(link) = self.neighbours.get_mut(&ping.sender) {
                    link.heard = true;
                }
                // What a probing seed may vouch for: the incarnation held, or the one this
                // peer is registering for (one above a removal the seed may not know yet).
                let claimed = self.incarnation.max(self.reg.hint.unwrap_or(0));
                let pong = Pong {
                    responder: self.me,
                    degree: Some(self.degree()),
                    incarnation: NonZeroU32::new(u32::try_from(claimed).unwrap_or(u32::MAX)),
                };
                self.reply(conn, Message::Pong(pong));
            }
            Message::Hello(h) => self.on_hello(now, conn, *h),
            Message::SuspectReq(r) => self.on_suspect_req(now, conn, *r),
            Message::StatusReq => {
                let status = self.status();
                self.reply(conn, Message::StatusResp(Box::new(status)));
            }
            Message::RegisterReq(_)
            | Message::RegisterVote(_)
            | Message::RegisterCommit(_)
            | Message::PeerListReq { .. }
            | Message::DeadReport(_)
            | Message::DeadVote(_)
            | Message::DeadCommit(_)
            | Message::SeedSync(_) => self.reject(conn, format!("{}: not a seed", msg.type_name())),
            other => self.reject(conn, format!("{} is not a request", other.type_name())),
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
            Message::RegisterReq(_) => self.on_register_result(now, to, outcome),
            Message::PeerListReq { requester } => match requester.parse::<Endpoint>() {
                Ok(greeter) if greeter != self.me => self.on_greeter_listed(greeter, outcome),
                _ => self.on_peer_list(now, to, outcome),
            },
            Message::Ping(_) => self.on_ping_outcome(now, to, outcome),
            Message::Hello(_) => self.on_hello_ack(now, to, outcome),
            Message::SuspectReq(r) => self.on_suspect_ack(now, to, r.suspect, outcome),
            Message::DeadReport(r) => self.on_dead_result(to, r.dead, outcome),
            // Gossip acks carry nothing we act on: liveness comes from probes.
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Millis) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::RegisterRetry => self.retry_registration(now),
                Timer::Gossip => self.generate_gossip(now),
                Timer::Probe => self.probe_neighbours(now),
                Timer::Repair => {
                    if self.neighbours.len() < self.settings.min_degree as usize {
                        self.refresh_peer_list(now);
                    }
                }
                Timer::Refresh => {
                    self.periodic_refresh(now);
                    self.regreet_neighbours(now, false);
                    self.recheck_accusations(now);
                    let at = now.after(self.settings.peer_list_refresh_ms);
                    self.timers.set(Timer::Refresh, at);
                }
            }
        }
    }

    // ----- outputs --------------------------------------------------------------------------

    fn send(&mut self, to: Endpoint, msg: Message, deadline: Millis) {
        self.outputs.push(Output::Send { to, msg, deadline });
    }

    fn reply(&mut self, conn: ConnId, msg: Message) {
        self.outputs.push(Output::Reply { conn, msg });
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push(Output::Event(event));
    }

    /// Answers a bad request with `ERROR` and records it.
    fn reject(&mut self, conn: ConnId, reason: String) {
        self.counters.bad_input += 1;
        self.reply(conn, Message::error(reason.clone()));
        self.emit(Event::BadInput { reason });
    }
}

/// A collection size as a wire/event count.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
