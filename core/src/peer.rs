//! The peer state machine: bootstrap, overlay, gossip, liveness, repair and rejoin.
//!
//! A [`Peer`] is driven like every node of this crate (see the crate doc): one
//! [`Peer::handle`], then [`Peer::drain_outputs`], then [`Peer::next_deadline`].
//!
//! Its life, in the order the sections of this file follow:
//! 1. **Registration**: `REGISTER_REQ` to a quorum of randomly chosen seeds, more if some
//!    fail; registered only once a quorum said success. Failed rounds retry later.
//! 2. **Discovery**: `PEER_LIST_REQ` to the seeds that admitted it; the union is the set of
//!    known peers (bounded).
//! 3. **Neighbour selection** (preferential attachment): `PING` a sample of candidates, weight
//!    each by the degree its `PONG` carries, draw neighbours by weight, `HELLO` them. The
//!    first round ending is "bootstrap complete", whatever it found.
//! 4. **Gossip**: generate a message every interval up to a maximum; forward first-time
//!    messages to every neighbour but the sender; a bounded seen-set drops repeats.
//! 5. **Liveness**: probe neighbours; after enough consecutive misses ask witnesses to probe
//!    the suspect; only a peer-level majority (with at least one witness) leads to a
//!    `DEAD_REPORT` to a quorum of seeds. As a witness, probe and answer later.
//! 6. **Repair and rejoin**: refresh the Peer List periodically and after a drop, reconnect
//!    while below the minimum degree, and register again if the seeds removed this peer.
//!
//! All probes go through one table, keyed by endpoint, so a neighbour probe, a candidate
//! probe and witness probes of the same node share one `PING` and its single response.

mod decide;
mod seen;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::config::SettingsError;
use crate::msg::{
    DeadReport, Endpoint, Gossip, GossipAck, Hello, HelloAck, Message, PeerListResp, PeerStatus,
    Ping, Pong, RegisterReq, RoleStatus, Status, StatusResp, SuspectAck, SuspectReq,
};
use crate::rng::Rng;
use crate::timers::Timers;
use crate::{quorum, ConnId, Event, Failure, Input, Millis, NodeInit, Output, Settings};

pub use decide::{choose_neighbours, pick_witnesses, verdict, Verdict};
pub use seen::{gossip_key, SeenSet};

/// Witness probes a peer keeps pending at most; beyond, `SUSPECT_REQ` is answered `ERROR`
/// so a flood of requests cannot grow memory.
pub const MAX_PENDING_WITNESS: usize = 256;

/// Known peers remembered per `peer_list_limit` (a random one is evicted beyond).
const KNOWN_PER_LIST: usize = 4;

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
}

/// Counters shown in `STATUS_RESP`.
#[derive(Debug, Default)]
struct Counters {
    bad_input: u64,
    dead_reports: u64,
    gossip_duplicate: u64,
    gossip_first: u64,
    gossip_generated: u64,
    probes_missed: u64,
    probes_sent: u64,
    suspicions: u64,
}

impl Counters {
    /// Named counters, sorted by name.
    fn sorted(&self) -> Vec<(String, u64)> {
        [
            ("bad_input", self.bad_input),
            ("dead_reports", self.dead_reports),
            ("gossip_duplicate", self.gossip_duplicate),
            ("gossip_first", self.gossip_first),
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

/// Who waits for the outcome of the `PING` in flight to one endpoint.
#[derive(Debug, Default)]
struct PingWaiters {
    /// The neighbour probe.
    probe: bool,
    /// Neighbour selection.
    candidate: bool,
    /// Detectors that asked this peer to witness: the connection to answer and who asked.
    witnesses: Vec<(ConnId, Endpoint)>,
}

/// Why a `PING` is sent.
enum PingRole {
    Probe,
    Candidate,
    Witness(ConnId, Endpoint),
}

/// A peer node.
#[derive(Debug)]
pub struct Peer {
    me: Endpoint,
    seeds: Vec<Endpoint>,
    settings: Settings,
    rng: Rng,
    unix_ms_at_zero: u64,
    outputs: Vec<Output>,
    timers: Timers<Timer>,
    counters: Counters,

    registered: bool,
    incarnation: u64,
    reg: Registration,

    bootstrapped: bool,
    /// Seeds whose bootstrap `PEER_LIST_RESP` is awaited.
    pl_awaiting: BTreeSet<Endpoint>,
    /// A refresh `PEER_LIST_REQ` is in flight.
    refreshing: bool,
    selection: Option<Selection>,
    /// Peers known from Peer Lists and handshakes, with the incarnation last heard of.
    known: BTreeMap<Endpoint, Option<u64>>,
    /// The overlay adjacency.
    neighbours: BTreeMap<Endpoint, Link>,

    generated: u32,
    seen: SeenSet,

    pings: BTreeMap<Endpoint, PingWaiters>,
    witness_pending: usize,
    suspicions: BTreeMap<Endpoint, Suspicion>,
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
            settings: init.settings,
            rng: Rng::new(init.rng_seed),
            unix_ms_at_zero: init.unix_ms_at_zero,
            outputs: Vec::new(),
            timers: Timers::default(),
            counters: Counters::default(),
            registered: false,
            incarnation: 0,
            reg: Registration::default(),
            bootstrapped: false,
            pl_awaiting: BTreeSet::new(),
            refreshing: false,
            selection: None,
            known: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            generated: 0,
            seen,
            pings: BTreeMap::new(),
            witness_pending: 0,
            suspicions: BTreeMap::new(),
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
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// When the peer next wants [`Input::Tick`].
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
            counters: self.counters.sorted(),
        }
    }

    // ----- dispatch -------------------------------------------------------------------------

    fn on_request(&mut self, now: Millis, conn: ConnId, msg: Message) {
        match msg {
            Message::Gossip(g) => self.on_gossip(now, conn, g),
            Message::Ping(_) => {
                let pong = Pong {
                    responder: self.me,
                    degree: Some(self.degree()),
                };
                self.reply(conn, Message::Pong(pong));
            }
            Message::Hello(h) => self.on_hello(conn, h),
            Message::SuspectReq(r) => self.on_suspect_req(now, conn, r),
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
            Message::PeerListReq { .. } => self.on_peer_list(now, to, outcome),
            Message::Ping(_) => self.on_ping_outcome(now, to, outcome),
            Message::Hello(_) => self.on_hello_ack(now, to, outcome),
            Message::SuspectReq(r) => self.on_suspect_ack(now, to, r.suspect, outcome),
            Message::DeadReport(r) => {
                if let Ok(Message::DeadResult(res)) = outcome {
                    self.emit(Event::DeadReportOutcome {
                        suspect: r.dead,
                        seed: to,
                        success: res.success,
                    });
                }
            }
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
                Timer::Refresh => {
                    self.refresh_peer_list(now);
                    self.regreet_neighbours(now);
                    let at = now.after(self.settings.peer_list_refresh_ms);
                    self.timers.set(Timer::Refresh, at);
                }
            }
        }
    }

    // ----- registration ---------------------------------------------------------------------

    fn quorum(&self) -> usize {
        quorum(self.seeds.len())
    }

    /// Starts a fresh registration round asking for at least incarnation `hint`.
    fn start_registration(&mut self, now: Millis, hint: Option<u64>) {
        self.timers.cancel(&Timer::RegisterRetry);
        self.reg = Registration {
            hint,
            ..Registration::default()
        };
        self.ask_seeds(now);
    }

    /// Asks as many seeds not asked yet as could still complete a quorum: successes plus
    /// answers awaited stay at `q` while fresh seeds remain.
    fn ask_seeds(&mut self, now: Millis) {
        let busy = self.reg.successes.len() + self.reg.in_flight.len();
        let need = self.quorum().saturating_sub(busy);
        let fresh: Vec<Endpoint> = self
            .seeds
            .iter()
            .filter(|s| !self.reg.asked.contains(s))
            .copied()
            .collect();
        let deadline = now.after(self.settings.register_timeout_ms);
        for seed in self.rng.sample(&fresh, need) {
            self.reg.asked.insert(seed);
            self.reg.in_flight.insert(seed);
            let msg = Message::RegisterReq(RegisterReq {
                peer: self.me,
                incarnation: self.reg.hint,
            });
            self.send(seed, msg, deadline);
        }
    }

    fn on_register_result(
        &mut self,
        now: Millis,
        seed: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if !self.reg.in_flight.remove(&seed) {
            return; // a stale answer from an earlier round
        }
        if let Ok(Message::RegisterResult(r)) = outcome {
            if r.success {
                self.reg.successes.insert(seed);
                self.reg.admitted = self.reg.admitted.max(r.incarnation);
            }
        }
        if self.registered {
            return;
        }
        if self.reg.successes.len() >= self.quorum() {
            self.registration_won(now);
            return;
        }
        self.ask_seeds(now);
        if self.reg.in_flight.is_empty() {
            let retry_at = now.after(self.settings.register_retry_ms);
            self.timers.set(Timer::RegisterRetry, retry_at);
            self.emit(Event::RegistrationFailed {
                successes: count(self.reg.successes.len()),
                needed: count(self.quorum()),
                retry_at,
            });
        }
    }

    /// A retry asks again every seed that has not said success.
    fn retry_registration(&mut self, now: Millis) {
        if self.registered {
            return;
        }
        self.reg.asked = self.reg.successes.clone();
        self.ask_seeds(now);
    }

    fn registration_won(&mut self, now: Millis) {
        self.registered = true;
        self.incarnation = self.reg.admitted.unwrap_or(self.incarnation);
        self.emit(Event::RegistrationQuorum {
            seeds: self.reg.successes.iter().copied().collect(),
            incarnation: self.incarnation,
        });
        if self.bootstrapped {
            // Rejoined: the links we kept may have been dropped at the other end.
            self.regreet_neighbours(now);
        } else if self.pl_awaiting.is_empty() && self.selection.is_none() {
            self.pl_awaiting = self.reg.successes.clone();
            let seeds: Vec<Endpoint> = self.pl_awaiting.iter().copied().collect();
            for seed in seeds {
                self.send_peer_list_req(now, seed);
            }
        }
    }

    // ----- discovery and repair -------------------------------------------------------------

    fn send_peer_list_req(&mut self, now: Millis, seed: Endpoint) {
        let msg = Message::PeerListReq {
            requester: self.me.to_string(),
        };
        self.send(seed, msg, now.after(self.settings.request_timeout_ms));
    }

    /// Asks one random seed for its Peer List, unless a refresh is already in flight.
    fn refresh_peer_list(&mut self, now: Millis) {
        if self.refreshing {
            return;
        }
        let i = self.rng.below(self.seeds.len() as u64) as usize;
        if let Some(&seed) = self.seeds.get(i) {
            self.refreshing = true;
            self.send_peer_list_req(now, seed);
        }
    }

    fn on_peer_list(&mut self, now: Millis, seed: Endpoint, outcome: Result<Message, Failure>) {
        if let Ok(Message::PeerListResp(resp)) = outcome {
            self.merge_peer_list(now, resp);
        }
        if self.pl_awaiting.remove(&seed) {
            if self.pl_awaiting.is_empty() && !self.bootstrapped {
                self.start_selection(now);
            }
        } else {
            self.refreshing = false;
            if self.bootstrapped {
                self.repair(now);
            }
        }
    }

    fn merge_peer_list(&mut self, now: Millis, resp: PeerListResp) {
        for &peer in &resp.peers {
            self.remember(peer, None);
        }
        for &(peer, inc) in &resp.incarnations {
            if let Some(slot) = self.known.get_mut(&peer) {
                *slot = (*slot).max(Some(inc));
            }
        }
        if let Some((removed, Status::Removed)) = resp.requester_entry {
            if self.registered && removed >= self.incarnation {
                self.rejoin(now, removed);
            }
        }
    }

    /// The seeds removed this peer's incarnation: register again above it, keeping the links
    /// (neighbours that still talk to it prove it is alive).
    fn rejoin(&mut self, now: Millis, removed: u64) {
        self.emit(Event::Rejoining {
            removed_incarnation: removed,
        });
        self.registered = false;
        self.start_registration(now, Some(removed.saturating_add(1)));
    }

    /// Reconnects while below the minimum degree.
    fn repair(&mut self, now: Millis) {
        if self.neighbours.len() < self.settings.min_degree as usize {
            self.start_selection(now);
        }
    }

    /// Adds `peer` to the known set (bounded: a random non-neighbour is evicted when full).
    fn remember(&mut self, peer: Endpoint, incarnation: Option<u64>) {
        if peer == self.me || self.seeds.contains(&peer) {
            return;
        }
        if let Some(slot) = self.known.get_mut(&peer) {
            *slot = (*slot).max(incarnation);
            return;
        }
        let cap = KNOWN_PER_LIST.saturating_mul(self.settings.peer_list_limit as usize);
        if self.known.len() >= cap && !self.evict_known() {
            return;
        }
        self.known.insert(peer, incarnation);
    }

    /// Forgets one random known peer that is not a neighbour; false if there is none.
    fn evict_known(&mut self) -> bool {
        let len = self.known.len();
        let start = self.rng.below(len as u64) as usize;
        let victim = self
            .known
            .keys()
            .cycle()
            .skip(start)
            .take(len)
            .find(|p| !self.neighbours.contains_key(p))
            .copied();
        victim.is_some_and(|v| self.known.remove(&v).is_some())
    }

    // ----- neighbour selection --------------------------------------------------------------

    fn degree(&self) -> u32 {
        count(self.neighbours.len())
    }

    /// Starts a selection round (never two at once): ping a sample of known non-neighbours.
    fn start_selection(&mut self, now: Millis) {
        if self.selection.is_some() {
            return;
        }
        let want = (self.settings.min_degree as usize).saturating_sub(self.neighbours.len());
        let pool: Vec<Endpoint> = self
            .known
            .keys()
            .filter(|p| !self.neighbours.contains_key(p))
            .copied()
            .collect();
        let sample = self
            .rng
            .sample(&pool, self.settings.candidate_sample as usize);
        if want == 0 || sample.is_empty() {
            self.selection_done(now);
            return;
        }
        self.selection = Some(Selection {
            probing: sample.iter().copied().collect(),
            ..Selection::default()
        });
        for candidate in sample {
            self.ping(now, candidate, PingRole::Candidate);
        }
    }

    /// A candidate's `PONG` (or any reply) gives its weight; a failure drops it.
    fn on_candidate_outcome(
        &mut self,
        now: Millis,
        peer: Endpoint,
        outcome: &Result<Message, Failure>,
    ) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        if !sel.probing.remove(&peer) {
            return;
        }
        let weight = match outcome {
            Ok(Message::Pong(p)) => Some(p.degree.unwrap_or(1).max(1)),
            Ok(_) => Some(1),
            Err(_) => None,
        };
        if let Some(w) = weight {
            sel.answered.push((peer, w));
        }
        if sel.probing.is_empty() {
            let order = choose_neighbours(&sel.answered, sel.answered.len(), &mut self.rng);
            sel.reserve = order.into();
            self.greet_more(now);
        }
    }

    /// Sends `HELLO` to the next drawn candidates until enough are in flight to reach the
    /// minimum degree; ends the round when nothing is left in flight.
    fn greet_more(&mut self, now: Millis) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        let want = (self.settings.min_degree as usize).saturating_sub(self.neighbours.len());
        let deadline = now.after(self.settings.request_timeout_ms);
        while sel.greeting.len() < want {
            let Some(next) = sel.reserve.pop_front() else {
                break;
            };
            if self.neighbours.contains_key(&next) {
                continue;
            }
            sel.greeting.insert(next);
            let hello = Hello {
                peer: self.me,
                degree: count(self.neighbours.len()),
                incarnation: Some(self.incarnation),
            };
            self.outputs.push(Output::Send {
                to: next,
                msg: Message::Hello(hello),
                deadline,
            });
        }
        if sel.probing.is_empty() && sel.greeting.is_empty() {
            self.selection_done(now);
        }
    }

    fn on_hello_ack(&mut self, now: Millis, peer: Endpoint, outcome: Result<Message, Failure>) {
        if let Ok(Message::HelloAck(ack)) = outcome {
            if ack.accepted {
                self.add_neighbour(peer, ack.degree, ack.incarnation);
            } else if self.neighbours.contains_key(&peer) {
                // A re-greeted neighbour no longer keeps the link: drop our half of it.
                self.drop_neighbour(peer, "refused");
                self.repair(now);
            }
        }
        if let Some(sel) = self.selection.as_mut() {
            if sel.greeting.remove(&peer) {
                self.greet_more(now);
            }
        }
    }

    /// Ends a selection round; the first one ends the bootstrap and starts the periodic work.
    fn selection_done(&mut self, now: Millis) {
        self.selection = None;
        if self.bootstrapped {
            return;
        }
        self.bootstrapped = true;
        self.emit(Event::BootstrapComplete {
            neighbours: self.neighbours.keys().copied().collect(),
            known_peers: count(self.known.len()),
        });
        if self.settings.max_gossip > 0 {
            self.timers
                .set(Timer::Gossip, now.after(self.settings.gossip_interval_ms));
        }
        self.timers
            .set(Timer::Probe, now.after(self.settings.probe_interval_ms));
        self.timers.set(
            Timer::Refresh,
            now.after(self.settings.peer_list_refresh_ms),
        );
    }

    /// `HELLO` again to every neighbour. A link can become one-sided (the other end dropped
    /// us on a suspicion the seeds then rejected, or removed us before we rejoined); greeting
    /// again makes the other end add us back, or tells us to drop our half.
    fn regreet_neighbours(&mut self, now: Millis) {
        let hello = Hello {
            peer: self.me,
            degree: self.degree(),
            incarnation: Some(self.incarnation),
        };
        let deadline = now.after(self.settings.request_timeout_ms);
        for &to in self.neighbours.keys() {
            self.outputs.push(Output::Send {
                to,
                msg: Message::Hello(hello.clone()),
                deadline,
            });
        }
    }

    fn add_neighbour(&mut self, peer: Endpoint, their_degree: u32, incarnation: Option<u64>) {
        if peer == self.me {
            return;
        }
        self.remember(peer, incarnation);
        if self.neighbours.insert(peer, Link::default()).is_none() {
            self.emit(Event::NeighbourAdded { peer, their_degree });
        }
    }

    fn drop_neighbour(&mut self, peer: Endpoint, reason: &'static str) {
        if self.neighbours.remove(&peer).is_some() {
            self.emit(Event::NeighbourDropped { peer, reason });
        }
    }

    /// Incoming `HELLO`: accept unless full (or it claims to be this peer).
    fn on_hello(&mut self, conn: ConnId, hello: Hello) {
        let accepted = if hello.peer == self.me {
            false
        } else if self.neighbours.contains_key(&hello.peer) {
            self.remember(hello.peer, hello.incarnation);
            true
        } else if self.neighbours.len() >= self.settings.max_degree as usize {
            self.remember(hello.peer, hello.incarnation);
            false
        } else {
            self.add_neighbour(hello.peer, hello.degree, hello.incarnation);
            true
        };
        let ack = HelloAck {
            accepted,
            peer: self.me,
            degree: self.degree(),
            incarnation: Some(self.incarnation),
        };
        self.reply(conn, Message::HelloAck(ack));
    }

    // ----- gossip (hot path) ----------------------------------------------------------------

    fn unix_secs(&self, now: Millis) -> u64 {
        self.unix_ms_at_zero.saturating_add(now.0) / 1000
    }

    fn generate_gossip(&mut self, now: Millis) {
        if self.generated >= self.settings.max_gossip {
            return;
        }
        self.generated += 1;
        let msg_no = self.generated;
        let text: Arc<str> = Arc::from(format!(
            "{}:{}:{}",
            self.unix_secs(now),
            self.me.ip(),
            msg_no
        ));
        self.seen.insert(gossip_key(&text, Some(self.me.port())));
        self.counters.gossip_generated += 1;
        self.emit(Event::GossipGenerated {
            text: Arc::clone(&text),
            msg_no,
        });
        let gossip = Gossip {
            text,
            origin_ip: self.me.ip(),
            origin_port: Some(self.me.port()),
            msg_no,
            sender: self.me,
            hops: 1,
        };
        self.forward(now, &gossip, None);
        if self.generated < self.settings.max_gossip {
            self.timers
                .set(Timer::Gossip, now.after(self.settings.gossip_interval_ms));
        }
    }

    /// Sends `gossip` to every neighbour but `except`. Each copy shares the text's `Arc`.
    fn forward(&mut self, now: Millis, gossip: &Gossip, except: Option<Endpoint>) {
        let deadline = now.after(self.settings.request_timeout_ms);
        self.outputs.reserve(self.neighbours.len());
        self.outputs.extend(
            self.neighbours
                .keys()
                .filter(|&&to| Some(to) != except)
                .map(|&to| Output::Send {
                    to,
                    msg: Message::Gossip(gossip.clone()),
                    deadline,
                }),
        );
    }

    /// Incoming gossip, from a neighbour or not (the reference may gossip before `HELLO`).
    fn on_gossip(&mut self, now: Millis, conn: ConnId, gossip: Gossip) {
        let first = self
            .seen
            .insert(gossip_key(&gossip.text, gossip.origin_port));
        self.reply(
            conn,
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: !first,
            }),
        );
        let from = gossip.sender;
        if !first {
            self.counters.gossip_duplicate += 1;
            self.emit(Event::GossipDuplicate {
                text: gossip.text,
                from,
            });
            return;
        }
        self.counters.gossip_first += 1;
        self.emit(Event::GossipFirstReceived {
            text: Arc::clone(&gossip.text),
            from,
            hops: gossip.hops,
        });
        let onward = Gossip {
            sender: self.me,
            hops: gossip.hops.saturating_add(1),
            ..gossip
        };
        self.forward(now, &onward, Some(from));
    }

    // ----- probes ---------------------------------------------------------------------------

    /// Pings `to` for `role`, sharing a `PING` already in flight to the same endpoint.
    fn ping(&mut self, now: Millis, to: Endpoint, role: PingRole) {
        let fresh = !self.pings.contains_key(&to);
        let waiters = self.pings.entry(to).or_default();
        match role {
            PingRole::Probe => waiters.probe = true,
            PingRole::Candidate => waiters.candidate = true,
            PingRole::Witness(conn, requester) => waiters.witnesses.push((conn, requester)),
        }
        if fresh {
            self.counters.probes_sent += 1;
            let msg = Message::Ping(Ping { sender: self.me });
            self.send(to, msg, now.after(self.settings.probe_timeout_ms));
        }
    }

    /// Any reply at all proves the node is up; a failure is a miss.
    fn on_ping_outcome(&mut self, now: Millis, to: Endpoint, outcome: Result<Message, Failure>) {
        let Some(waiters) = self.pings.remove(&to) else {
            return;
        };
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
    }

    // ----- liveness: detector ---------------------------------------------------------------

    fn probe_neighbours(&mut self, now: Millis) {
        let due: Vec<Endpoint> = self
            .neighbours
            .iter_mut()
            .filter(|(_, link)| !link.probing)
            .map(|(peer, link)| {
                link.probing = true;
                *peer
            })
            .collect();
        for peer in due {
            self.ping(now, peer, PingRole::Probe);
        }
        self.timers
            .set(Timer::Probe, now.after(self.settings.probe_interval_ms));
    }

    fn on_probe_outcome(&mut self, now: Millis, peer: Endpoint, alive: bool) {
        let Some(link) = self.neighbours.get_mut(&peer) else {
            return;
        };
        link.probing = false;
        if alive {
            link.misses = 0;
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
    fn raise_suspicion(&mut self, now: Millis, suspect: Endpoint, misses: u32) {
        let preferred: Vec<Endpoint> = self
            .neighbours
            .keys()
            .filter(|&&p| p != suspect)
            .copied()
            .collect();
        let others: Vec<Endpoint> = self
            .known
            .keys()
            .filter(|&&p| p != suspect && !self.neighbours.contains_key(&p))
            .copied()
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
            self.send(w, Message::SuspectReq(req), deadline);
        }
    }

    /// A witness's answer is a vote; a failure or any other reply is no vote.
    fn on_suspect_ack(
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
    fn conclude(&mut self, now: Millis, suspect: Endpoint, round: Suspicion) {
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
            return;
        }
        self.report_dead(now, suspect, round.dead);
        self.drop_neighbour(suspect, "dead");
        self.known.remove(&suspect);
        self.refresh_peer_list(now);
    }

    /// `DEAD_REPORT` to a quorum of random seeds, naming the incarnation accused if known.
    fn report_dead(&mut self, now: Millis, dead: Endpoint, witnesses: Vec<Endpoint>) {
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
            incarnation: self.known.get(&dead).copied().flatten(),
            witnesses,
        };
        let seeds = self.rng.sample(&self.seeds, self.quorum());
        let deadline = now.after(self.settings.register_timeout_ms);
        for &seed in &seeds {
            self.send(seed, Message::DeadReport(report.clone()), deadline);
        }
        self.counters.dead_reports += 1;
        self.emit(Event::DeadReported {
            suspect: dead,
            text,
            seeds,
        });
    }

    // ----- liveness: witness ----------------------------------------------------------------

    /// Probes the suspect and answers when the probe's outcome is in (deferred reply).
    fn on_suspect_req(&mut self, now: Millis, conn: ConnId, req: SuspectReq) {
        if req.suspect == self.me {
            self.answer_witness(conn, req.suspect, req.requester, true);
        } else if self.witness_pending >= MAX_PENDING_WITNESS {
            self.reply(conn, Message::error("busy: too many suspicions pending"));
        } else {
            self.witness_pending += 1;
            self.ping(now, req.suspect, PingRole::Witness(conn, req.requester));
        }
    }

    fn answer_witness(
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
        self.reply(conn, Message::SuspectAck(ack));
        self.emit(Event::SuspectAnswered {
            suspect,
            requester,
            alive,
        });
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
