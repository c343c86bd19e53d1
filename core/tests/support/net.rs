//! The core's one test network: real [`Node`]s (seeds and peers, any mix) wired together in
//! memory, and the contract between a node and its driver checked on every input and output.
//!
//! Two layers:
//!
//! * [`Driven`]: one node and what it and its driver owe each other (the crate doc's
//!   contract): every request fed is answered by exactly one reply, at once unless its type
//!   may defer ([`Message::may_defer`]); every send is a request, not to the node itself, with
//!   a deadline ahead; a send that wants its response gets exactly one, one that does not gets
//!   none; time never goes back; `Input::Start` comes first and once. Any driver can use it:
//!   the network below for each of its nodes, the peer tests' hand-fed harness, and the fuzz
//!   harness for its one node.
//! * [`Net`]: hosts nodes by endpoint and routes every `Send` to the node at that endpoint,
//!   at once (no latency); the reply goes back to the sender as its `Response` if it wants it,
//!   and is dropped otherwise. Endpoints nobody hosts are fake peers that answer `PING` with
//!   the incarnation they claim, until killed. Directed cuts and muted message types lose
//!   sends (which then time out at their deadline); a crashed node refuses connections (its
//!   senders see `Unreachable`) and restarts empty. Time only moves when a test advances it:
//!   timers fire and lost sends fail on the way. Every node's events are logged; a test sends
//!   its own requests and reads the replies.
//!
//! Seeds are hosted at [`seed_ep`]`(i)` and can be named by their index in the config
//! wherever a method takes an [`At`].
//!
//! Everything is deterministic: the same calls give the same events, bit for bit.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::rc::Rc;

use gossip_core::event::ProposalKind;
use gossip_core::msg::{
    Entry, PeerStatus, Pong, RegisterReq, RegisterResult, RoleStatus, Status, StatusResp,
};
use gossip_core::{
    quorum, ConnId, Endpoint, Event, Failure, Input, Message, Millis, Node, NodeInit, Output,
    Refusal, Settings,
};

/// Outputs one input may cause at most. The largest legitimate burst is a seed's fan-out of a
/// round or a tick's probes: a few per configured node.
pub const MAX_OUTPUTS_PER_INPUT: usize = 512;
/// Sends a node may keep waiting for their responses at most; a node that keeps more in
/// flight than this under a bounded test is growing without bound.
pub const MAX_IN_FLIGHT: usize = 8_192;
/// Inputs a network feeds its nodes at most (by default): a message storm fails the test
/// instead of hanging it.
pub const MAX_FED: u64 = 2_000_000;
/// Unix time at `Millis(0)` for every node of a network (2026-01-01).
pub const UNIX_MS_AT_ZERO: u64 = 1_767_225_600_000;

/// Where [`Net::new`] hosts seed `i`: `127.0.0.1:7000+i`.
pub fn seed_ep(i: usize) -> Endpoint {
    Endpoint::from(([127, 0, 0, 1], 7000 + i as u16))
}

/// A peer's endpoint by number, on its own address: `127.0.0.2:9000+i`.
pub fn peer_ep(i: usize) -> Endpoint {
    Endpoint::from(([127, 0, 0, 2], 9000 + i as u16))
}

// ----- one node and its driver ------------------------------------------------------------------

/// Names a send that wants its response, within its node's life.
pub type SendId = u64;

/// A send that wants its response and has none yet: the driver owes the node one
/// `Input::Response` for it, the reply or a failure by `deadline`.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Handed out in order, one per send that wants its response.
    pub id: SendId,
    /// Where it went.
    pub to: Endpoint,
    /// The request, as it will be handed back.
    pub msg: Message,
    /// When it fails at the latest.
    pub deadline: Millis,
}

/// A node as its driver holds it, with the bookkeeping of what each owes the other; every
/// input goes through it and every output is checked (a broken promise panics, naming it).
pub struct Driven {
    node: Node,
    me: Endpoint,
    /// Named in every broken promise, with `me`.
    tag: Option<Rc<str>>,
    started: bool,
    now: Millis,
    /// Requests fed and not answered yet: the node owes each one reply.
    open: BTreeMap<ConnId, &'static str>,
    /// Sends that want their response and have none yet: the driver owes each one.
    pending: Vec<Pending>,
    next_id: SendId,
    /// The ids given to the sends of the last input.
    last_ids: Vec<SendId>,
}

impl Driven {
    /// `node`, not started yet: the first input must be `Input::Start`.
    pub fn new(node: Node) -> Driven {
        Driven {
            me: node.me(),
            tag: None,
            node,
            started: false,
            now: Millis(0),
            open: BTreeMap::new(),
            pending: Vec::new(),
            next_id: 0,
            last_ids: Vec::new(),
        }
    }

    /// Names this node's run (a random schedule's seed, ...) in every broken promise.
    pub fn tag(&mut self, tag: impl fmt::Display) {
        self.tag = Some(Rc::from(tag.to_string()));
    }

    /// `node`, started at `now`, and the outputs its start caused.
    pub fn start(node: Node, now: Millis) -> (Driven, Vec<Output>) {
        let mut driven = Driven::new(node);
        let born = driven.feed(now, Input::Start);
        (driven, born)
    }

    /// Feeds `input` at `now`; the outputs, checked. A `Response` must answer a pending send
    /// (the first with the same endpoint and request).
    pub fn feed(&mut self, now: Millis, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.feed_into(now, input, &mut out);
        out
    }

    /// As [`Driven::feed`], appending the outputs to `out`.
    pub fn feed_into(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        if let Input::Response { to, request, .. } = &input {
            let Some(i) = (self.pending.iter()).position(|p| p.to == *to && p.msg == *request)
            else {
                panic!(
                    "{}: a response to no send that wants one: {} to {to}",
                    self.who(),
                    request.type_name()
                );
            };
            self.pending.swap_remove(i);
        }
        self.handle(now, input, out);
    }

    /// Answers the pending send at `i` (of [`Driven::pending`]; the last one takes its
    /// place) with `outcome`; the outputs, checked.
    pub fn respond_nth(
        &mut self,
        now: Millis,
        i: usize,
        outcome: Result<Message, Failure>,
    ) -> Vec<Output> {
        let p = self.pending.swap_remove(i);
        let input = Input::Response {
            to: p.to,
            request: p.msg,
            outcome,
        };
        let mut out = Vec::new();
        self.handle(now, input, &mut out);
        out
    }

    /// Answers the pending send `id` with `outcome`, if it is still pending; the outputs.
    pub fn respond_id(
        &mut self,
        now: Millis,
        id: SendId,
        outcome: Result<Message, Failure>,
    ) -> Option<Vec<Output>> {
        let i = self.pending.iter().position(|p| p.id == id)?;
        Some(self.respond_nth(now, i, outcome))
    }

    /// The sends the driver owes a response, oldest first but for the gaps answers leave
    /// (filled by the last).
    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }

    /// The requests the node has not answered yet.
    pub fn open(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.open.keys().copied()
    }

    /// The ids of the last input's sends that want their response, in the order of the sends.
    pub fn last_ids(&self) -> &[SendId] {
        &self.last_ids
    }

    /// Panics unless every request fed has been answered.
    pub fn assert_settled(&self) {
        assert!(
            self.open.is_empty(),
            "{}: requests never answered: {:?}",
            self.who(),
            self.open
        );
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, to feed it past the checks (a benchmark of its hot path).
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The node's endpoint.
    pub fn me(&self) -> Endpoint {
        self.me
    }

    /// The time of the latest input.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// When the node next wants `Input::Tick`.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.node.next_deadline()
    }

    /// The node's status, as it answers `STATUS_REQ`.
    pub fn status(&self) -> StatusResp {
        self.node.status()
    }

    /// Who broke a promise: the node, and the tag of its run.
    fn who(&self) -> Who {
        Who(self.me, self.tag.clone())
    }

    /// Feeds `input` (a response already taken off `pending`) and checks what came out.
    fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        let me = self.who();
        assert!(
            now >= self.now,
            "{me}: time went back from {:?} to {now:?}",
            self.now
        );
        self.now = now;
        if matches!(input, Input::Start) {
            assert!(!self.started, "{me}: Input::Start twice");
            self.started = true;
        }
        assert!(self.started, "{me}: {input:?} before Input::Start");
        // The request this input brings, whether it may be answered later.
        let fresh = match &input {
            Input::Request { conn, msg } => Some((*conn, msg.type_name(), msg.may_defer())),
            Input::Refused { conn, .. } => Some((*conn, "a refused line", false)),
            _ => None,
        };
        if let Some((conn, kind, _)) = fresh {
            if let Some(before) = self.open.insert(conn, kind) {
                panic!(
                    "{me}: {kind} on {conn:?}, which still waits for the answer to its {before}"
                );
            }
        }
        let first = out.len();
        self.node.handle(now, input, out);
        self.check(&out[first..]);
        if let Some((conn, kind, may_defer)) = fresh {
            assert!(
                may_defer || !self.open.contains_key(&conn),
                "{me}: {kind} on {conn:?} not answered at once, yet it may not defer"
            );
        }
    }

    /// The node's side of the contract, on the outputs of one input.
    fn check(&mut self, outs: &[Output]) {
        let (me, now) = (self.who(), self.now);
        assert!(
            outs.len() <= MAX_OUTPUTS_PER_INPUT,
            "{me}: {} outputs for one input",
            outs.len()
        );
        self.last_ids.clear();
        for out in outs {
            match out {
                Output::Send {
                    to,
                    msg,
                    deadline,
                    wants_response,
                } => {
                    assert!(msg.is_request(), "{me}: sent a reply: {msg:?}");
                    assert_ne!(*to, self.me, "{me}: sent to itself: {msg:?}");
                    assert!(
                        *deadline > now,
                        "{me}: a deadline not ahead ({deadline:?} at {now:?}): {msg:?}"
                    );
                    if *wants_response {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.last_ids.push(id);
                        self.pending.push(Pending {
                            id,
                            to: *to,
                            msg: msg.clone(),
                            deadline: *deadline,
                        });
                    }
                }
                Output::Reply { conn, msg } => {
                    assert!(
                        self.open.remove(conn).is_some(),
                        "{me}: reply on {conn:?}, which has no open request (a second reply?): {msg:?}"
                    );
                    assert!(!msg.is_request(), "{me}: replied with a request: {msg:?}");
                }
                Output::Event(_) => {}
            }
        }
        assert!(
            self.pending.len() <= MAX_IN_FLIGHT,
            "{me}: {} sends in flight",
            self.pending.len()
        );
    }
}

/// A node's endpoint and the tag of its run, as a broken promise names them.
struct Who(Endpoint, Option<Rc<str>>);

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.1 {
            Some(tag) => write!(f, "{} ({tag})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

// ----- the network ------------------------------------------------------------------------------

/// Names a node: a seed by its index in the config, or any endpoint.
pub trait At: Copy {
    /// The endpoint named.
    fn endpoint(self, net: &Net) -> Endpoint;
}

impl At for usize {
    fn endpoint(self, net: &Net) -> Endpoint {
        net.seeds[self]
    }
}

impl At for Endpoint {
    fn endpoint(self, _: &Net) -> Endpoint {
        self
    }
}

/// What answers at an endpoint no node is hosted at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fake {
    /// Answers `PING` (with a `PONG`) and any other request (with `ERROR`); otherwise every
    /// connection is refused.
    pub alive: bool,
    /// The incarnation its `PONG` claims (0: none).
    pub incarnation: u64,
    /// Its `PONG` says it is leaving.
    pub leaving: bool,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            alive: true,
            incarnation: 0,
            leaving: false,
        }
    }
}

/// A hosted endpoint.
struct Host {
    /// `None` while crashed.
    up: Option<Driven>,
    /// Starts since it was hosted: replies to a former life's sends are dropped.
    boot: u32,
    is_seed: bool,
    settings: Settings,
    /// Its ChaCha seed is this plus the time of its start.
    rng_base: u64,
}

/// A request delivered to a hosted node, waiting for its reply.
struct Flight {
    from: Endpoint,
    boot: u32,
    to: Endpoint,
    /// The send, if its sender wants the response.
    id: Option<SendId>,
}

enum Job {
    /// Feed an input (not a response) to the node at the endpoint.
    Feed(Endpoint, Input),
    /// Answer the node's pending send.
    Respond {
        to: Endpoint,
        id: SendId,
        outcome: Result<Message, Failure>,
    },
}

impl Job {
    fn target(&self) -> Endpoint {
        match self {
            Job::Feed(at, _) | Job::Respond { to: at, .. } => *at,
        }
    }
}

type Tap = Box<dyn FnMut(Endpoint, Endpoint, &Message)>;

/// Real nodes wired together in memory (see the module doc).
pub struct Net {
    /// The seeds' settings.
    pub settings: Settings,
    /// Directed links `(from, to)` that lose every request.
    pub cut: BTreeSet<(Endpoint, Endpoint)>,
    /// `(sender, wire type)`: sends of that type by that node are lost.
    pub muted: BTreeSet<(Endpoint, &'static str)>,
    /// Every event of every node, in order, with the node it came from.
    pub events: Vec<(Endpoint, Event)>,
    /// Inputs fed to nodes so far.
    pub fed: u64,
    /// Inputs fed at most before the test fails as a message storm.
    pub max_fed: u64,
    now: Millis,
    seeds: Vec<Endpoint>,
    nodes: BTreeMap<Endpoint, Host>,
    fakes: BTreeMap<Endpoint, Fake>,
    queue: VecDeque<Job>,
    flights: BTreeMap<ConnId, Flight>,
    /// The test's own requests not answered yet.
    own: BTreeSet<ConnId>,
    /// The answers to the test's own requests.
    replies: BTreeMap<ConnId, Message>,
    next_conn: u64,
    tap: Option<Tap>,
}

impl Net {
    /// `n` seeds at [`seed_ep`]`(0..n)`, one config, each started at time 0.
    pub fn new(n: usize, settings: Settings) -> Net {
        let seeds: Vec<Endpoint> = (0..n).map(seed_ep).collect();
        let mut net = Net {
            settings: settings.clone(),
            cut: BTreeSet::new(),
            muted: BTreeSet::new(),
            events: Vec::new(),
            fed: 0,
            max_fed: MAX_FED,
            now: Millis(0),
            seeds: seeds.clone(),
            nodes: BTreeMap::new(),
            fakes: BTreeMap::new(),
            queue: VecDeque::new(),
            flights: BTreeMap::new(),
            own: BTreeSet::new(),
            replies: BTreeMap::new(),
            next_conn: 0,
            tap: None,
        };
        for (i, &me) in seeds.iter().enumerate() {
            let host = Host {
                up: None,
                boot: 0,
                is_seed: true,
                settings: settings.clone(),
                rng_base: 1000 + i as u64,
            };
            net.nodes.insert(me, host);
            net.boot(me);
        }
        net.run();
        net
    }

    /// Hosts a peer at `me` with `settings` and starts it now.
    pub fn join(&mut self, me: Endpoint, settings: Settings) {
        let host = Host {
            up: None,
            boot: 0,
            is_seed: false,
            settings,
            rng_base: u64::from(me.port()),
        };
        assert!(
            self.nodes.insert(me, host).is_none(),
            "{me} is hosted already"
        );
        self.boot(me);
        self.run();
    }

    /// A fresh node at `me` and its `Input::Start`, queued.
    fn boot(&mut self, me: Endpoint) {
        let host = self.nodes.get_mut(&me).expect("hosted");
        let init = NodeInit {
            me,
            seeds: self.seeds.clone(),
            settings: host.settings.clone(),
            rng_seed: host.rng_base + self.now.0,
            unix_ms_at_zero: UNIX_MS_AT_ZERO,
        };
        let node = if host.is_seed {
            Node::seed(init)
        } else {
            Node::peer(init)
        };
        host.up = Some(Driven::new(node.expect("valid settings")));
        host.boot += 1;
        self.queue.push_back(Job::Feed(me, Input::Start));
    }

    // ----- who is where -----

    /// The current time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Seed `i` of the config.
    pub fn seed(&self, i: usize) -> Endpoint {
        self.seeds[i]
    }

    /// The config's seeds.
    pub fn seeds(&self) -> &[Endpoint] {
        &self.seeds
    }

    /// The hosted peers that are up, in endpoint order.
    pub fn peers(&self) -> Vec<Endpoint> {
        (self.nodes.iter())
            .filter(|(_, h)| !h.is_seed && h.up.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether a node is hosted at `at` and up.
    pub fn is_up(&self, at: impl At) -> bool {
        self.driven(at).is_some()
    }

    /// The node at `at`, with its bookkeeping, if it is up.
    pub fn driven(&self, at: impl At) -> Option<&Driven> {
        let at = at.endpoint(self);
        self.nodes.get(&at).and_then(|h| h.up.as_ref())
    }

    /// The node at `at`, if it is up.
    pub fn node(&self, at: impl At) -> Option<&Node> {
        self.driven(at).map(Driven::node)
    }

    /// The status of the node at `at`, if it is up.
    pub fn status(&self, at: impl At) -> Option<StatusResp> {
        self.node(at).map(Node::status)
    }

    /// The counter `name` of the node at `at` (0 if it has none). Panics if it is down.
    pub fn counter(&self, at: impl At, name: &str) -> u64 {
        let status = self.status(at).expect("the node is up");
        (status.counters.iter())
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// What the peer at `p` says about itself. Panics if it is down or a seed.
    pub fn peer_status(&self, p: Endpoint) -> PeerStatus {
        match self.status(p).expect("the peer is up").role {
            RoleStatus::Peer(s) => s,
            RoleStatus::Seed(_) => panic!("{p} is a seed"),
        }
    }

    /// The neighbours of the peer at `p`, as its status shows them.
    pub fn neighbours(&self, p: Endpoint) -> Vec<Endpoint> {
        self.peer_status(p).neighbours
    }

    /// The Peer List of the seed at `at`. Panics if it is down.
    pub fn entries(&self, at: impl At) -> Vec<Entry> {
        match self.status(at).expect("seed is up").role {
            RoleStatus::Seed(s) => s.entries,
            RoleStatus::Peer(_) => panic!("a seed reports as a seed"),
        }
    }

    /// The entry the seed at `at` holds for `peer`: its incarnation and status.
    pub fn rank(&self, at: impl At, peer: Endpoint) -> Option<(u64, Status)> {
        (self.entries(at).into_iter())
            .find(|e| e.peer == peer)
            .map(|e| (e.incarnation, e.status))
    }

    /// Every entry the seed at `at` holds, without certificates.
    pub fn ranks(&self, at: impl At) -> Vec<(Endpoint, u64, Status)> {
        (self.entries(at).into_iter())
            .map(|e| (e.peer, e.incarnation, e.status))
            .collect()
    }

    // ----- the event log -----

    /// The events of the node at `at`, in order (across its crashes).
    pub fn events_of(&self, at: impl At) -> impl Iterator<Item = &Event> + '_ {
        let at = at.endpoint(self);
        (self.events.iter())
            .filter(move |(who, _)| *who == at)
            .map(|(_, e)| e)
    }

    /// How many events of any node match `pred`.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }

    /// How many entry changes the seed at `at` made that match `pred`.
    pub fn changes_at(&self, at: impl At, pred: impl Fn(&Entry) -> bool) -> usize {
        (self.events_of(at))
            .filter(|e| matches!(e, Event::EntryChanged { entry, .. } if pred(entry)))
            .count()
    }

    /// Calls `f(from, to, msg)` on every message between nodes from now on: each request
    /// delivered (or answered by a fake), each reply on its way back.
    pub fn tap(&mut self, f: impl FnMut(Endpoint, Endpoint, &Message) + 'static) {
        self.tap = Some(Box::new(f));
    }

    // ----- faults -----

    /// Nothing answers at `at` any more: a fake stops answering, a hosted node crashes.
    pub fn kill(&mut self, at: impl At) {
        let at = at.endpoint(self);
        if self.nodes.contains_key(&at) {
            self.crash(at);
        } else {
            self.fakes.entry(at).or_default().alive = false;
        }
    }

    /// `at` answers again: a killed fake, or a crashed node (restarted empty).
    pub fn revive(&mut self, at: impl At) {
        let at = at.endpoint(self);
        if self.nodes.contains_key(&at) {
            self.restart(at);
        } else {
            self.fakes.entry(at).or_default().alive = true;
        }
    }

    /// Every killed fake answers again.
    pub fn revive_all(&mut self) {
        for fake in self.fakes.values_mut() {
            fake.alive = true;
        }
    }

    /// The killed fakes.
    pub fn dead(&self) -> Vec<Endpoint> {
        (self.fakes.iter())
            .filter(|(_, f)| !f.alive)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether `at` is a killed fake.
    pub fn is_dead(&self, at: Endpoint) -> bool {
        self.fake(at).is_some_and(|f| !f.alive)
    }

    /// What answers at `at`, if no node is hosted there.
    pub fn fake(&self, at: Endpoint) -> Option<Fake> {
        (!self.nodes.contains_key(&at)).then(|| self.fakes.get(&at).copied().unwrap_or_default())
    }

    /// The fake at `peer` claims `incarnation` from now on (never less than it did).
    pub fn claim(&mut self, peer: Endpoint, incarnation: u64) {
        let fake = self.fakes.entry(peer).or_default();
        fake.incarnation = fake.incarnation.max(incarnation);
    }

    /// The fake at `peer` says it is leaving (or no longer) in its `PONG`s.
    pub fn set_leaving(&mut self, peer: Endpoint, leaving: bool) {
        self.fakes.entry(peer).or_default().leaving = leaving;
    }

    /// Cuts `at` off from every other hosted node, both ways.
    pub fn isolate(&mut self, at: impl At) {
        let at = at.endpoint(self);
        for &other in self.nodes.keys().filter(|e| **e != at) {
            self.cut.insert((at, other));
            self.cut.insert((other, at));
        }
    }

    /// Every cut link works again.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The sends of `kind` (a wire type) by the node at `at` are lost from now on.
    pub fn mute(&mut self, at: impl At, kind: &'static str) {
        let at = at.endpoint(self);
        self.muted.insert((at, kind));
    }

    /// The node at `at` crashes: its state is gone, connections to it are refused, the
    /// requests it was serving fail as `Unreachable` and its own sends get no response.
    pub fn crash(&mut self, at: impl At) {
        let at = at.endpoint(self);
        let host = self.nodes.get_mut(&at).expect("a hosted node");
        if host.up.take().is_none() {
            return;
        }
        self.queue.retain(|job| job.target() != at);
        let orphaned: Vec<ConnId> = (self.flights.iter())
            .filter(|(_, f)| f.to == at || f.from == at)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in orphaned {
            let f = self.flights.remove(&conn).expect("listed");
            if let (true, Some(id)) = (f.to == at, f.id) {
                self.respond_later(f.from, f.boot, id, Err(Failure::Unreachable));
            }
        }
        self.run();
    }

    /// The crashed node at `at` starts again, empty (a fresh node, then `Input::Start`).
    pub fn restart(&mut self, at: impl At) {
        let at = at.endpoint(self);
        let host = self.nodes.get(&at).expect("a hosted node");
        assert!(host.up.is_none(), "{at} is up: crash it first");
        self.boot(at);
        self.run();
    }

    /// As [`Net::restart`] (every restart is empty: nothing persists).
    pub fn restart_empty(&mut self, at: impl At) {
        self.restart(at);
    }

    // ----- the test's own requests -----

    /// The test sends `msg` to the node at `at`, and the network runs; where the answer will
    /// be (see [`Net::reply`]).
    pub fn request(&mut self, at: impl At, msg: Message) -> ConnId {
        let conn = self.enqueue(at, msg);
        self.run();
        conn
    }

    /// Queues `msg` for the node at `at` without running the network, to make requests
    /// concurrent; [`Net::run`] delivers them.
    pub fn enqueue(&mut self, at: impl At, msg: Message) -> ConnId {
        let at = at.endpoint(self);
        let conn = self.own_conn();
        self.queue
            .push_back(Job::Feed(at, Input::Request { conn, msg }));
        conn
    }

    /// Queues `input` for the node at `at` without running the network.
    pub fn enqueue_input(&mut self, at: impl At, input: Input) {
        let at = at.endpoint(self);
        self.queue.push_back(Job::Feed(at, input));
    }

    /// A line the driver refused (`why`) arrives at `at` from the test; where the answer
    /// will be.
    pub fn refuse(&mut self, at: impl At, why: Refusal) -> ConnId {
        let at = at.endpoint(self);
        let conn = self.own_conn();
        self.queue
            .push_back(Job::Feed(at, Input::Refused { conn, why }));
        self.run();
        conn
    }

    /// The sends of the node at `at` still waiting for their response (a muted send waits
    /// until its deadline): `(id, to, message)`, for [`Net::answer_held`].
    pub fn held(&self, at: impl At) -> Vec<(SendId, Endpoint, Message)> {
        let at = at.endpoint(self);
        self.driven(at)
            .map(|d| {
                (d.pending().iter())
                    .map(|p| (p.id, p.to, p.msg.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The test answers the held send `id` of the node at `at` with `outcome` (in place of
    /// the network), and the network runs.
    pub fn answer_held(&mut self, at: impl At, id: SendId, outcome: Result<Message, Failure>) {
        let to = at.endpoint(self);
        self.queue.push_back(Job::Respond { to, id, outcome });
        self.run();
    }

    /// The answer to the test's request on `conn`, once it came.
    pub fn reply(&self, conn: ConnId) -> Option<&Message> {
        self.replies.get(&conn)
    }

    fn own_conn(&mut self) -> ConnId {
        let conn = self.conn();
        self.own.insert(conn);
        conn
    }

    fn conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    // ----- running -----

    /// Delivers everything queued, and everything that causes, at the current time.
    pub fn run(&mut self) {
        while let Some(job) = self.queue.pop_front() {
            let (at, now) = (job.target(), self.now);
            let Some(driven) = self.nodes.get_mut(&at).and_then(|h| h.up.as_mut()) else {
                continue;
            };
            let outs = match job {
                Job::Feed(_, input) => driven.feed(now, input),
                Job::Respond { id, outcome, .. } => {
                    let Some(p) = driven.pending().iter().find(|p| p.id == id) else {
                        continue; // failed at its deadline already: the late reply is dropped
                    };
                    assert!(now <= p.deadline, "the network answered {at} late");
                    driven.respond_id(now, id, outcome).expect("pending")
                }
            };
            let ids = driven.last_ids().to_vec();
            self.fed += 1;
            assert!(
                self.fed <= self.max_fed,
                "a message storm at {:?}: {} inputs",
                self.now,
                self.fed
            );
            self.route(at, outs, ids);
        }
    }

    /// Moves time forward by `ms`, firing timers and failing lost sends on the way.
    pub fn advance(&mut self, ms: u64) {
        let until = self.now.after(ms);
        self.run_until(until);
    }

    /// Runs until `until`: at each timer's deadline the node is ticked, at each pending
    /// send's deadline it fails (timers first: a round whose deadline coincides with its
    /// sends' ends by deadline). Then the time is `until`.
    pub fn run_until(&mut self, until: Millis) {
        loop {
            self.run();
            let up = self.nodes.values().filter_map(|h| h.up.as_ref());
            let timers = up.clone().filter_map(Driven::next_deadline);
            let losses = up.flat_map(|d| d.pending().iter().map(|p| p.deadline));
            let Some(next) = timers.chain(losses).min().filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(next);
            let mut due = Vec::new();
            for (&at, host) in &self.nodes {
                let Some(d) = host.up.as_ref() else {
                    continue;
                };
                if d.next_deadline().is_some_and(|t| t <= next) {
                    self.queue.push_back(Job::Feed(at, Input::Tick));
                }
                for p in d.pending().iter().filter(|p| p.deadline <= next) {
                    due.push((p.deadline, at, p.id));
                }
            }
            due.sort_unstable();
            for (_, to, id) in due {
                let outcome = Err(Failure::Timeout);
                self.queue.push_back(Job::Respond { to, id, outcome });
            }
        }
        self.now = self.now.max(until);
    }

    /// Carries out the outputs of the node at `from`; `ids` names its sends that want their
    /// response, in order.
    fn route(&mut self, from: Endpoint, outs: Vec<Output>, ids: Vec<SendId>) {
        let boot = self.nodes[&from].boot;
        let mut ids = ids.into_iter();
        for out in outs {
            match out {
                Output::Event(e) => self.events.push((from, e)),
                Output::Reply { conn, msg } => {
                    if self.own.remove(&conn) {
                        self.replies.insert(conn, msg);
                    } else if let Some(f) = self.flights.remove(&conn) {
                        self.watch(from, f.from, &msg);
                        if let Some(id) = f.id {
                            self.respond_later(f.from, f.boot, id, Ok(msg));
                        }
                    }
                }
                Output::Send {
                    to,
                    msg,
                    wants_response,
                    ..
                } => {
                    let id = wants_response.then(|| ids.next().expect("an id per send"));
                    self.deliver(from, boot, to, msg, id);
                }
            }
        }
    }

    /// Carries `msg` from `from` to `to`: to the node there, or answered for a fake, or lost.
    fn deliver(
        &mut self,
        from: Endpoint,
        boot: u32,
        to: Endpoint,
        msg: Message,
        id: Option<SendId>,
    ) {
        if self.cut.contains(&(from, to)) || self.muted.contains(&(from, msg.type_name())) {
            return; // lost: the send fails at its deadline
        }
        let Some(host) = self.nodes.get(&to) else {
            let fake = self.fakes.get(&to).copied().unwrap_or_default();
            self.watch(from, to, &msg);
            let outcome = match &msg {
                _ if !fake.alive => Err(Failure::Unreachable),
                Message::Ping(_) => Ok(Message::Pong(Pong {
                    responder: to,
                    degree: Some(1),
                    incarnation: std::num::NonZeroU32::new(fake.incarnation as u32),
                    leaving: fake.leaving,
                })),
                other => Ok(Message::error(format!(
                    "unknown type {}",
                    other.type_name()
                ))),
            };
            if let Some(id) = id {
                self.respond_later(from, boot, id, outcome);
            }
            return;
        };
        if host.up.is_none() {
            if let Some(id) = id {
                self.respond_later(from, boot, id, Err(Failure::Unreachable));
            }
            return;
        }
        self.watch(from, to, &msg);
        let conn = self.conn();
        self.flights.insert(conn, Flight { from, boot, to, id });
        self.queue
            .push_back(Job::Feed(to, Input::Request { conn, msg }));
    }

    /// Queues the response to the send `id` of `to`'s life `boot`, if that life goes on.
    fn respond_later(
        &mut self,
        to: Endpoint,
        boot: u32,
        id: SendId,
        outcome: Result<Message, Failure>,
    ) {
        if self.nodes.get(&to).is_some_and(|h| h.boot == boot) {
            (self.queue).push_back(Job::Respond { to, id, outcome });
        }
    }

    fn watch(&mut self, from: Endpoint, to: Endpoint, msg: &Message) {
        if let Some(tap) = self.tap.as_mut() {
            tap(from, to, msg);
        }
    }

    // ----- the seeds' protocol, from the outside -----

    /// The test asks the seed at `at` to register `peer` (at `hint`); a fake at `peer` claims
    /// at least `hint` from now on, as a real peer rejoining does. Where the answer will be.
    pub fn register(&mut self, at: impl At, peer: Endpoint, hint: Option<u64>) -> ConnId {
        if !self.nodes.contains_key(&peer) {
            self.claim(peer, hint.unwrap_or(0));
        }
        let req = RegisterReq {
            peer,
            incarnation: hint,
        };
        self.request(at, Message::RegisterReq(Box::new(req)))
    }

    /// [`Net::register`], and the result (which must have come).
    pub fn register_now(
        &mut self,
        at: impl At,
        peer: Endpoint,
        hint: Option<u64>,
    ) -> RegisterResult {
        let conn = self.register(at, peer, hint);
        self.register_result(conn)
    }

    /// The test sends a report (`msg`) to the seed at `at`: whether it removed the peer.
    pub fn report_now(&mut self, at: impl At, msg: Message) -> bool {
        let conn = self.request(at, msg);
        self.dead_success(conn)
    }

    /// The registration result answered on `conn`. Panics if there is none.
    pub fn register_result(&self, conn: ConnId) -> RegisterResult {
        match self.reply(conn) {
            Some(Message::RegisterResult(r)) => *r.clone(),
            other => panic!("expected a registration result, got {other:?}"),
        }
    }

    /// Whether the removal answered on `conn` succeeded. Panics if there is no answer.
    pub fn dead_success(&self, conn: ConnId) -> bool {
        match self.reply(conn) {
            Some(Message::DeadResult(r)) => r.success,
            other => panic!("expected a removal result, got {other:?}"),
        }
    }

    /// Every entry at every live seed is backed by a quorum of seeds that vouched for exactly
    /// it: each really voted yes for it, or held it (a change it had itself applied).
    pub fn assert_certificates_real(&self) {
        let kind = |status: Status| match status {
            Status::Alive => ProposalKind::Register,
            Status::Removed => ProposalKind::Removal,
            Status::Left => ProposalKind::Leave,
        };
        let cast: BTreeSet<(Endpoint, Endpoint, u64, ProposalKind)> = (self.events.iter())
            .filter_map(|(who, e)| match e {
                Event::VoteCast {
                    kind,
                    peer,
                    incarnation,
                    yes: true,
                    ..
                } => Some((*who, *peer, *incarnation, *kind)),
                Event::EntryChanged { entry, .. } => {
                    Some((*who, entry.peer, entry.incarnation, kind(entry.status)))
                }
                _ => None,
            })
            .collect();
        for i in (0..self.seeds.len()).filter(|i| self.is_up(*i)) {
            for e in self.entries(i) {
                assert!(e.votes.len() >= quorum(self.seeds.len()), "{e:?}");
                for v in &e.votes {
                    assert!(
                        cast.contains(&(*v, e.peer, e.incarnation, kind(e.status))),
                        "{v} never voted for {e:?}"
                    );
                }
            }
        }
    }
}

/// The counter `name` of the node at `at` (0 if it has none): [`Net::counter`].
pub fn counter(net: &Net, at: impl At, name: &str) -> u64 {
    net.counter(at, name)
}
