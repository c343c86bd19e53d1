//! [`Host`]: one mio event loop running one or many nodes on real TCP sockets.
//!
//! See the crate documentation for the shape of the loop and the promises it keeps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossip_core::config::SettingsError;
use gossip_core::hash::FxHashMap;
use gossip_core::msg::{Endpoint, Message};
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache, Stamp};
use gossip_core::wire::{self, DecodeError, LineReader};
use gossip_core::{ConnId, Event, Failure, Input, Millis, Node, NodeInit, Output, Settings};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::limits::Limits;
use crate::render::Role;

/// Receives every event of every node the host runs (to log it, count it, assert on it).
pub trait Observer {
    /// `event` happened at node `me` (a `role`) at `now`, which is `unix_ms` on the wall clock.
    fn on_event(&mut self, role: Role, me: SocketAddr, unix_ms: u64, now: Millis, event: &Event);
}

/// An observer that ignores everything.
impl Observer for () {
    fn on_event(&mut self, _: Role, _: SocketAddr, _: u64, _: Millis, _: &Event) {}
}

/// A node's index in its [`Host`], in the order added.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIdx(pub usize);

/// What a node is, where it listens and how it is tuned.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Seed or peer.
    pub role: Role,
    /// The seeds of the config, in config order.
    pub seeds: Vec<Endpoint>,
    /// Timing and limits of the protocol.
    pub settings: Settings,
    /// Seeds the node's random generator.
    pub rng_seed: u64,
}

/// Why a node could not be added.
#[derive(Debug)]
pub enum AddNodeError {
    /// The listening socket could not be bound or set up.
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The core refused the settings (or a seed's address is not among the seeds).
    Settings(SettingsError),
}

impl std::fmt::Display for AddNodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddNodeError::Listen { addr, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {addr}: address already in use (is another node running there?)"
                )
            }
            AddNodeError::Listen { addr, source }
                if source.kind() == io::ErrorKind::AddrNotAvailable =>
            {
                write!(
                    f,
                    "cannot listen on {addr}: address not available on this machine"
                )
            }
            AddNodeError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            AddNodeError::Settings(e) => write!(f, "invalid settings: {e}"),
        }
    }
}

impl std::error::Error for AddNodeError {}

/// Counters of the driver's own work, summed over all nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests read from accepted connections and handed to nodes (malformed ones included).
    pub requests_in: u64,
    /// Replies read on dialled connections and handed back to nodes.
    pub replies_in: u64,
    /// Sends that ended in a failure (`Unreachable`, `Timeout`, `BadReply`).
    pub send_failures: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections dialled.
    pub dialled: u64,
    /// `write` calls that moved bytes.
    pub writes: u64,
    /// Requests answered `ERROR` by the per-connection rate limits, never handed to a node.
    pub rate_limited: u64,
    /// Lines refused by the cluster-key check (no MAC, unknown key, bad MAC, stale, replayed,
    /// unbound reply, replay cache full): requests are answered `ERROR` through the node,
    /// replies fail their request with `BadReply`.
    pub auth_refused: u64,
}

struct NodeSlot {
    node: Node,
    role: Role,
    me: Endpoint,
    inbound: usize,
    next_deadline: Option<Millis>,
    /// Nonces of the frames this node accepted inside the window (with a cluster key).
    replay: ReplayCache,
}

enum Socket {
    Listener {
        node: NodeIdx,
        listener: TcpListener,
    },
    Conn(Box<Conn>),
}

struct Conn {
    stream: TcpStream,
    node: NodeIdx,
    side: Side,
    reader: LineReader,
    /// Bytes encoded and not yet written. Written bytes are removed at once, so the front
    /// is always the next byte to write.
    wbuf: OutBuf,
    /// WRITABLE interest is registered (only while `wbuf` holds bytes, or while connecting).
    want_write: bool,
    /// In the host's `dirty` list, to be flushed at the end of this turn.
    dirty: bool,
    last_active: Millis,
}

enum Side {
    /// Accepted: requests come in, replies go out in request order.
    Inbound(Inbound),
    /// Dialled by `node` to a destination: requests go out, replies come back in order.
    Outbound(Outbound),
}

struct Inbound {
    /// One slot per request read, in order; a slot fills when the node replies, and filled
    /// slots at the front are encoded. This keeps replies in request order on a pipelined
    /// connection even when the node answers a later request first.
    replies: VecDeque<ReplySlot>,
    /// Reading stopped because of backpressure; resumed when replies drain.
    paused: bool,
    /// The remote closed its side (or framing was lost): close once every reply is out.
    finishing: bool,
    /// The remote's address, for the per-IP connection count.
    remote: std::net::IpAddr,
    /// Rate limits of this connection's expensive requests.
    rate: gossip_core::ratelimit::ConnRate,
    /// Since when (as seen by the idle sweep) part of a line has waited for its end.
    partial_since: Option<Millis>,
}

/// A connection's outgoing bytes: appended at the end, written from `pos`. Written bytes are
/// dropped lazily (all at once when everything is out, or by one move when they are most of
/// the buffer), so a partial write does not move the rest of a large buffer every time.
#[derive(Default)]
struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where to encode more.
    fn append(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn unwritten(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// After a flush: drop written bytes once they dominate, and give back a burst's capacity.
    fn settle(&mut self) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

struct ReplySlot {
    id: u64,
    msg: Option<Message>,
    /// With a cluster key: the nonce of the request, which the reply is bound to (`None` for
    /// a request whose MAC did not verify: its `ERROR` is sealed unbound).
    bind: Option<u64>,
}

struct Outbound {
    dest: Endpoint,
    connected: bool,
    /// Requests written (or encoded) on this connection, oldest first; replies answer them
    /// in this order.
    inflight: VecDeque<u64>,
    /// The newest request in flight may get a deferred reply: nothing is pipelined behind it.
    tail_deferrable: bool,
    /// Replies received on this connection.
    answered: u64,
}

/// Everything a node keeps towards one destination.
#[derive(Default)]
struct Link {
    sockets: Vec<Token>,
    /// Requests waiting for a connection that can take them.
    unsent: VecDeque<u64>,
    /// A connection answered two requests: the remote keeps connections alive, requests can
    /// be pipelined.
    proven: bool,
    /// The remote closed after answering: one request per connection (the reference
    /// implementation's style).
    one_shot: bool,
}

struct Request {
    node: NodeIdx,
    to: Endpoint,
    msg: Message,
    /// Re-sent once already after its connection went away through no fault of its own.
    retried: bool,
    socket: Option<Token>,
    /// With a cluster key: the nonce it was last sent with, which its reply must be bound to.
    nonce: u64,
}

/// Why a connection is being closed; decides what happens to requests in flight on it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Close {
    /// Reset, refused, or end of stream from the remote.
    Remote,
    /// Closed because of another request (its timeout, an over-long reply): the rest is
    /// re-sent on a new connection.
    Collateral,
    /// Nothing in flight and idle, or the host decided (limits, protocol violation).
    Local,
}

/// Whether `msg` may be answered only after the remote does other work (a vote round, a
/// probe). Nothing is pipelined behind such a request, so a quick request (a probe, a
/// gossip) never waits behind a slow reply on the same connection.
fn may_defer(msg: &Message) -> bool {
    matches!(
        msg,
        Message::RegisterReq(_)
            | Message::DeadReport(_)
            | Message::SuspectReq(_)
            | Message::RegisterVote(_)
            | Message::DeadVote(_)
    )
}

/// The connection at `token`, borrowing only the socket table (so other fields of the host
/// stay usable).
fn conn_in(sockets: &mut [Option<Socket>], token: Token) -> Option<&mut Conn> {
    match sockets.get_mut(token.0) {
        Some(Some(Socket::Conn(c))) => Some(c),
        _ => None,
    }
}

/// Requests in flight, in a slab: an id is `slot | generation << 32`, so a stale id (a
/// deadline entry of a request already answered) finds nothing.
#[derive(Default)]
struct Requests {
    slots: Vec<(u32, Option<Request>)>,
    free: Vec<usize>,
}

impl Requests {
    fn insert(&mut self, req: Request) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.1 = Some(req);
        (index as u64) | (u64::from(slot.0) << 32)
    }

    fn locate(&self, id: u64) -> Option<usize> {
        let index = (id & 0xffff_ffff) as usize;
        let generation = (id >> 32) as u32;
        match self.slots.get(index) {
            Some((g, Some(_))) if *g == generation => Some(index),
            _ => None,
        }
    }

    fn get(&self, id: &u64) -> Option<&Request> {
        let i = self.locate(*id)?;
        self.slots.get(i).and_then(|s| s.1.as_ref())
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Request> {
        let i = self.locate(*id)?;
        self.slots.get_mut(i).and_then(|s| s.1.as_mut())
    }

    fn remove(&mut self, id: &u64) -> Option<Request> {
        let i = self.locate(*id)?;
        let slot = self.slots.get_mut(i)?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(i);
        slot.1.take()
    }
}

/// Opens a line read under the cluster key and decodes its JSON; on a refusal, counts it
/// and returns the reason with the nonce an `ERROR` may be bound to (a member's frame only).
fn open_line(
    ring: &Keyring,
    replay: Option<&mut ReplayCache>,
    line: &[u8],
    (expect, now_unix_ms): (Expect, u64),
    stats: &mut Stats,
) -> (Result<Message, DecodeError>, Option<u64>) {
    let refused = match replay {
        Some(replay) => match auth::open(ring, line, now_unix_ms, expect, replay) {
            Ok(opened) => return (wire::decode(opened.json), Some(opened.stamp.nonce)),
            Err(refused) => refused,
        },
        None => auth::Refused {
            error: auth::AuthError::Missing,
            nonce: None,
        },
    };
    stats.auth_refused += 1;
    log::debug!("cluster key: refused a line: {}", refused.error);
    (Err(DecodeError::Auth(refused.error)), refused.nonce)
}

/// Unix time in milliseconds on the wall clock (cluster-key timestamps).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A random 64-bit start for cluster-key nonces: 8 bytes of `/dev/urandom`, or (if that
/// cannot be read) a hash of the wall clock and the process id. Nonces
/// then count up from it, so they are unique per sender.
pub fn nonce_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if random {
        return u64::from_le_bytes(bytes);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    gossip_core::hash::combine(nanos, u64::from(std::process::id()))
}

/// What a poll event said about a socket.
#[derive(Copy, Clone)]
struct Ready {
    token: Token,
    readable: bool,
    writable: bool,
    /// End of stream or an error is already known: read until `read` says so.
    closed: bool,
}

/// Bits of a reply id ([`ConnId`]) that count requests; the bits above name the socket, so
/// a reply finds its connection without a lookup table, and a reply for a connection that
/// was closed (its socket slot maybe reused) finds no matching slot and is dropped.
const REPLY_SEQ_BITS: u32 = 40;

const READ_CHUNK: usize = 64 * 1024;
const SWEEP_EVERY_MS: u64 = 1_000;
/// Write buffers above this capacity are given back once empty, so a burst does not pin
/// memory for the life of a connection.
const KEEP_CAPACITY: usize = 64 * 1024;

/// One single-threaded mio event loop hosting one or many nodes.
pub struct Host<O: Observer> {
    poll: Poll,
    events: Events,
    limits: Limits,
    observer: O,
    start: Instant,
    unix_ms_at_zero: u64,
    now: Millis,
    nodes: Vec<NodeSlot>,
    sockets: Vec<Option<Socket>>,
    free_tokens: Vec<usize>,
    /// Keyed by FxHash rather than SipHash: the keys are the host's own (node index and a
    /// destination its node chose), flooding is not a concern, and SipHash showed up in
    /// profiles of the hot path.
    links: FxHashMap<(NodeIdx, Endpoint), Link>,
    requests: Requests,
    /// Deadlines of requests, lazily cleaned: an entry whose request is gone is skipped.
    deadlines: BinaryHeap<Reverse<(Millis, u64)>>,
    /// Counts requests read, for reply ids (see [`REPLY_SEQ_BITS`]).
    next_reply_seq: u64,
    inputs: VecDeque<(NodeIdx, Input)>,
    dirty: Vec<Token>,
    resume: Vec<Token>,
    read_buf: Vec<u8>,
    /// Accepted connections open per (node, remote IP).
    inbound_by_ip: HashMap<(usize, std::net::IpAddr), usize>,
    ready: Vec<Ready>,
    outputs: Vec<Output>,
    next_sweep: Millis,
    stats: Stats,
    /// The cluster key: with one, every line written is sealed and every line read opened.
    keyring: Option<Keyring>,
    /// The nonce of the next sealed frame (random start, then counting).
    next_nonce: u64,
    /// With a cluster key: the wall clock (unix ms), read with `now` (not per frame).
    wall_ms: u64,
}

impl<O: Observer> Host<O> {
    /// An empty host; its clock starts now.
    pub fn new(limits: Limits, observer: O) -> io::Result<Host<O>> {
        let unix_ms_at_zero = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(Host {
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            limits,
            observer,
            start: Instant::now(),
            unix_ms_at_zero,
            now: Millis(0),
            nodes: Vec::new(),
            sockets: Vec::new(),
            free_tokens: Vec::new(),
            links: FxHashMap::default(),
            requests: Requests::default(),
            deadlines: BinaryHeap::new(),
            next_reply_seq: 0,
            inputs: VecDeque::new(),
            dirty: Vec::new(),
            resume: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            inbound_by_ip: HashMap::new(),
            ready: Vec::new(),
            outputs: Vec::new(),
            next_sweep: Millis(SWEEP_EVERY_MS),
            stats: Stats::default(),
            keyring: None,
            next_nonce: nonce_seed(),
            wall_ms: 0,
        })
    }

    /// Binds `listen` and starts a node there. Port 0 picks a free port; the node's identity
    /// is the address actually bound.
    pub fn add_node(
        &mut self,
        listen: SocketAddr,
        spec: NodeSpec,
    ) -> Result<NodeIdx, AddNodeError> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| AddNodeError::Listen {
                addr: listen,
                source,
            })?;
        self.add_node_on(listener, spec)
    }

    /// Starts a node on a listener the caller bound (so it can learn ports before it writes
    /// a seed list).
    pub fn add_node_on(
        &mut self,
        listener: std::net::TcpListener,
        spec: NodeSpec,
    ) -> Result<NodeIdx, AddNodeError> {
        let listen_err = |addr, source| AddNodeError::Listen { addr, source };
        let fallback: SocketAddr = ([0, 0, 0, 0], 0).into();
        let me = listener.local_addr().map_err(|e| listen_err(fallback, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_err(me, e))?;
        let mut listener = TcpListener::from_std(listener);
        self.now = self.clock();
        self.refresh_wall();
        let init = NodeInit {
            me,
            seeds: spec.seeds,
            settings: spec.settings,
            rng_seed: spec.rng_seed,
            unix_ms_at_zero: self.unix_ms_at_zero,
        };
        let node = match spec.role {
            Role::Seed => Node::seed(init, self.now),
            Role::Peer => Node::peer(init, self.now),
        }
        .map_err(AddNodeError::Settings)?;
        let idx = NodeIdx(self.nodes.len());
        let token = self.alloc_token();
        self.poll
            .registry()
            .register(&mut listener, token, Interest::READABLE)
            .map_err(|e| listen_err(me, e))?;
        self.sockets[token.0] = Some(Socket::Listener {
            node: idx,
            listener,
        });
        self.nodes.push(NodeSlot {
            node,
            role: spec.role,
            me,
            inbound: 0,
            next_deadline: None,
            replay: ReplayCache::new(auth::WINDOW_MS, self.limits.max_replay_entries),
        });
        self.drain_node(idx);
        self.run_inputs();
        Ok(idx)
    }

    /// The node at `idx`.
    pub fn node(&self, idx: NodeIdx) -> Option<&Node> {
        self.nodes.get(idx.0).map(|s| &s.node)
    }

    /// How many nodes run here.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The listening endpoint (identity) of the node at `idx`.
    pub fn endpoint(&self, idx: NodeIdx) -> Option<Endpoint> {
        self.nodes.get(idx.0).map(|s| s.me)
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer, mutably.
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// The driver's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sets (or, with `None`, removes) the cluster key. With a keyring, every line written is
    /// sealed under its first key (requests unbound, replies bound to their request's nonce)
    /// and every line read must open under one of its keys ([`auth::open`]): a request that
    /// does not reaches its node as [`Input::Malformed`] (answered `ERROR`, sealed), a reply
    /// that does not fails its request with [`Failure::BadReply`]. Replacing the keyring
    /// (rotation) keeps the replay caches. Set it before adding nodes: connections accepted
    /// or dialled before the first keyring keep the unkeyed line limit.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) {
        self.keyring = keyring;
        self.refresh_wall();
    }

    /// The cluster key in use, if any.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// The time fed to the nodes at the last turn.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Wall-clock unix milliseconds at `Millis(0)`.
    pub fn unix_ms_at_zero(&self) -> u64 {
        self.unix_ms_at_zero
    }

    /// Runs turns until `stop` says so (checked before every turn).
    pub fn run_until(&mut self, mut stop: impl FnMut(&mut Self) -> bool) -> io::Result<()> {
        while !stop(self) {
            self.turn()?;
        }
        Ok(())
    }

    /// Runs turns for `duration` at least.
    pub fn run_for(&mut self, duration: Duration) -> io::Result<()> {
        let end = Instant::now() + duration;
        self.run_until(|_| Instant::now() >= end)
    }

    fn clock(&self) -> Millis {
        Millis(self.start.elapsed().as_millis() as u64)
    }

    /// Reads the wall clock for cluster-key timestamps, with a key only (so an unkeyed host
    /// reads no extra clock); called wherever `now` is read.
    fn refresh_wall(&mut self) {
        if self.keyring.is_some() {
            self.wall_ms = unix_now_ms();
        }
    }

    /// One turn of the loop: wait for readiness or the next deadline, serve every ready
    /// socket, expire requests, tick nodes whose deadline passed, flush what was written.
    pub fn turn(&mut self) -> io::Result<()> {
        self.now = self.clock();
        self.refresh_wall();
        let timeout = self.poll_timeout();
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = self.clock();
        debug_assert!(now >= self.now);
        self.now = now;
        self.refresh_wall();

        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter().map(|e| Ready {
            token: e.token(),
            readable: e.is_readable() || e.is_read_closed() || e.is_error(),
            writable: e.is_writable() || e.is_write_closed() || e.is_error(),
            closed: e.is_read_closed() || e.is_error(),
        }));
        for &r in &ready {
            // A busy turn can take a while: keep the time fed to the nodes current.
            self.now = self.clock().max(self.now);
            self.refresh_wall();
            self.on_ready(r);
        }
        self.now = self.clock().max(self.now);
        self.refresh_wall();
        ready.clear();
        self.ready = ready;

        self.expire_requests();
        self.tick_nodes();
        self.run_inputs();
        self.flush_all();
        if self.now >= self.next_sweep {
            self.sweep_idle();
            self.next_sweep = self.now.after(SWEEP_EVERY_MS);
        }
        Ok(())
    }

    fn poll_timeout(&self) -> Duration {
        if !self.inputs.is_empty() || !self.dirty.is_empty() || !self.resume.is_empty() {
            return Duration::ZERO;
        }
        let mut wake = self
            .now
            .after(self.limits.max_poll_wait_ms)
            .min(self.next_sweep);
        for slot in &self.nodes {
            if let Some(d) = slot.next_deadline {
                wake = wake.min(d);
            }
        }
        if let Some(Reverse((d, _))) = self.deadlines.peek() {
            wake = wake.min(*d);
        }
        let at = self.start + Duration::from_millis(wake.0);
        at.saturating_duration_since(Instant::now())
    }

    // ----- nodes -----

    /// Feeds one input now (outside any drain), then everything it led to.
    fn feed(&mut self, idx: NodeIdx, input: Input) {
        if let Some(slot) = self.nodes.get_mut(idx.0) {
            slot.node.handle(self.now, input);
            self.drain_node(idx);
        }
        self.run_inputs();
    }

    fn run_inputs(&mut self) {
        while let Some((idx, input)) = self.inputs.pop_front() {
            let Some(slot) = self.nodes.get_mut(idx.0) else {
                continue;
            };
            slot.node.handle(self.now, input);
            self.drain_node(idx);
        }
    }

    /// Carries out every output the node queued. Never feeds a node: failures found here
    /// are queued as inputs, so a node is never re-entered while its outputs are drained.
    fn drain_node(&mut self, idx: NodeIdx) {
        let Some(slot) = self.nodes.get_mut(idx.0) else {
            return;
        };
        // The outputs are moved to a scratch vector first: carrying them out needs the
        // whole host, and the node stays borrowed while its own drain iterator lives.
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.extend(slot.node.drain_outputs());
        let (role, me) = (slot.role, slot.me);
        for out in outputs.drain(..) {
            match out {
                Output::Send { to, msg, deadline } => self.send(idx, to, msg, deadline),
                Output::Reply { conn, msg } => self.reply(idx, conn, msg),
                Output::Event(event) => {
                    let unix_ms = self.unix_ms_at_zero + self.now.0;
                    self.observer.on_event(role, me, unix_ms, self.now, &event);
                }
            }
        }
        self.outputs = outputs;
        if let Some(slot) = self.nodes.get_mut(idx.0) {
            slot.next_deadline = slot.node.next_deadline();
        }
    }

    fn tick_nodes(&mut self) {
        for (i, slot) in self.nodes.iter().enumerate() {
            if slot.next_deadline.is_some_and(|d| d <= self.now) {
                self.inputs.push_back((NodeIdx(i), Input::Tick));
            }
        }
    }

    fn respond(&mut self, req: Request, outcome: Result<Message, Failure>) {
        if outcome.is_err() {
            self.stats.send_failures += 1;
        }
        self.inputs.push_back((
            req.node,
            Input::Response {
                to: req.to,
                request: req.msg,
                outcome,
            },
        ));
    }

    /// Longest line a new connection reads: the limit, plus the cluster-key prefix if keyed.
    fn line_limit(&self) -> usize {
        match self.keyring {
            None => self.limits.max_line,
            Some(_) => self.limits.max_line.saturating_add(auth::MAX_PREFIX),
        }
    }

    fn wire_ts(&self) -> f64 {
        (self.unix_ms_at_zero + self.now.0) as f64 / 1000.0
    }

    // ----- sockets -----

    fn alloc_token(&mut self) -> Token {
        match self.free_tokens.pop() {
            Some(i) => Token(i),
            None => {
                self.sockets.push(None);
                Token(self.sockets.len() - 1)
            }
        }
    }

    fn conn_mut(&mut self, token: Token) -> Option<&mut Conn> {
        conn_in(&mut self.sockets, token)
    }

    fn mark_dirty(&mut self, token: Token) {
        if let Some(c) = self.conn_mut(token) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    fn on_ready(&mut self, ready: Ready) {
        let Ready {
            token,
            readable,
            writable,
            closed,
        } = ready;
        match self.sockets.get(token.0) {
            Some(Some(Socket::Listener { node, .. })) => {
                let node = *node;
                self.accept_all(token, node);
            }
            Some(Some(Socket::Conn(c))) => {
                if let Side::Outbound(ob) = &c.side {
                    if !ob.connected && !self.finish_connect(token) {
                        return;
                    }
                }
                if writable {
                    self.flush(token);
                }
                if readable {
                    self.read_ready(token, !closed);
                }
            }
            _ => {}
        }
    }

    fn accept_all(&mut self, token: Token, node: NodeIdx) {
        loop {
            let accepted = match self.sockets.get(token.0) {
                Some(Some(Socket::Listener { listener, .. })) => listener.accept(),
                _ => return,
            };
            match accepted {
                Ok((mut stream, remote)) => {
                    let Some(slot) = self.nodes.get_mut(node.0) else {
                        return;
                    };
                    if slot.inbound >= self.limits.max_inbound_per_node {
                        log::warn!("{}: connection limit reached, refusing {remote}", slot.me);
                        continue;
                    }
                    let from_ip = self.inbound_by_ip.entry((node.0, remote.ip())).or_insert(0);
                    if *from_ip >= self.limits.max_inbound_per_ip {
                        log::warn!("{}: per-address limit reached, refusing {remote}", slot.me);
                        continue;
                    }
                    *from_ip += 1;
                    slot.inbound += 1;
                    let _ = stream.set_nodelay(true);
                    let t = self.alloc_token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, t, Interest::READABLE)
                    {
                        log::warn!("register accepted connection: {e}");
                        self.free_tokens.push(t.0);
                        if let Some(slot) = self.nodes.get_mut(node.0) {
                            slot.inbound -= 1;
                        }
                        self.release_ip(node.0, remote.ip());
                        continue;
                    }
                    self.stats.accepted += 1;
                    self.sockets[t.0] = Some(Socket::Conn(Box::new(Conn {
                        stream,
                        node,
                        side: Side::Inbound(Inbound {
                            replies: VecDeque::new(),
                            paused: false,
                            finishing: false,
                            remote: remote.ip(),
                            rate: gossip_core::ratelimit::ConnRate::new(
                                self.now,
                                &self.limits.rate,
                            ),
                            partial_since: None,
                        }),
                        reader: LineReader::new(self.line_limit()),
                        wbuf: OutBuf::default(),
                        want_write: false,
                        dirty: false,
                        last_active: self.now,
                    })));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the backlog keeps the connection; a later
                    // readiness retries.
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// A dialled connection became ready before it was known to be connected. Returns true
    /// once connected; closes it (failing its requests) when the connect failed.
    fn finish_connect(&mut self, token: Token) -> bool {
        let Some(c) = conn_in(&mut self.sockets, token) else {
            return false;
        };
        let state = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        };
        match state {
            Ok(true) => {
                if let Side::Outbound(ob) = &mut c.side {
                    ob.connected = true;
                }
                c.last_active = self.now;
                true
            }
            Ok(false) => false,
            Err(e) => {
                log::debug!("connect failed: {e}");
                self.close(token, Close::Remote);
                false
            }
        }
    }

    /// Reads until `WouldBlock`, handing every complete line on as it goes.
    ///
    /// With `stop_when_short`, a read that did not fill the buffer ends it early: it drained
    /// the socket, and readiness is edge-triggered, so any later byte (or end of stream)
    /// comes with a new event; this saves the `read` that would only say `WouldBlock`, about
    /// one in two. Not after a pause (bytes may have waited through several events), nor when
    /// the event already reported end of stream (the `read` that returns 0 must happen).
    fn read_ready(&mut self, token: Token, stop_when_short: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        loop {
            if !self.take_lines(token, false) {
                break;
            }
            let Some(c) = conn_in(&mut self.sockets, token) else {
                break;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.on_eof(token);
                    break;
                }
                Ok(n) => {
                    c.last_active = self.now;
                    c.reader.push(buf.get(..n).unwrap_or_default());
                    if stop_when_short && n < buf.len() {
                        self.take_lines(token, false);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("read: {e}");
                    self.close(token, Close::Remote);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    fn on_eof(&mut self, token: Token) {
        if !self.take_lines(token, true) {
            // Paused with lines left: those requests are dropped with the connection.
            if let Some(c) = self.conn_mut(token) {
                if let Side::Inbound(ib) = &mut c.side {
                    ib.finishing = true;
                }
            }
        }
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        match &mut c.side {
            Side::Inbound(ib) => {
                ib.finishing = true;
                self.close_if_finished(token);
            }
            Side::Outbound(_) => self.close(token, Close::Remote),
        }
    }

    /// Hands every complete line buffered on `token` to its node. Returns false when the
    /// connection is gone or must not be read further for now.
    fn take_lines(&mut self, token: Token, at_eof: bool) -> bool {
        loop {
            let max_pending = self.limits.max_pending_replies;
            let high_water = self.limits.write_high_water;
            let rate_limits = self.limits.rate;
            let now = self.now;
            let Some(Some(Socket::Conn(c))) = self.sockets.get_mut(token.0) else {
                return false;
            };
            let conn = &mut **c;
            if let Side::Inbound(ib) = &mut conn.side {
                if ib.finishing {
                    return false;
                }
                if ib.replies.len() >= max_pending || conn.wbuf.len() >= high_water {
                    ib.paused = true;
                    return false;
                }
            }
            let line = if at_eof {
                conn.reader.finish()
            } else {
                conn.reader.next_line()
            };
            let line = match line {
                None => return true,
                Some(line) => line,
            };
            let framing_lost = matches!(line, Err(DecodeError::TooLong { .. }));
            let node = conn.node;
            match &mut conn.side {
                Side::Inbound(ib) => {
                    let (decoded, bind) = match (line, &self.keyring) {
                        (Err(e), _) => (Err(e), None),
                        (Ok(bytes), None) => (wire::decode(bytes), None),
                        (Ok(bytes), Some(ring)) => open_line(
                            ring,
                            self.nodes.get_mut(node.0).map(|n| &mut n.replay),
                            bytes,
                            (Expect::Request, self.wall_ms),
                            &mut self.stats,
                        ),
                    };
                    let seq = self.next_reply_seq & ((1 << REPLY_SEQ_BITS) - 1);
                    self.next_reply_seq += 1;
                    let id = ((token.0 as u64) << REPLY_SEQ_BITS) | seq;
                    ib.replies.push_back(ReplySlot {
                        id,
                        msg: None,
                        bind,
                    });
                    if framing_lost {
                        ib.finishing = true;
                    }
                    self.stats.requests_in += 1;
                    let conn = ConnId(id);
                    let input = match decoded {
                        // Over its rate: the node never sees it, and answers `ERROR`.
                        Ok(msg) if !ib.rate.admit(now, &rate_limits, &msg) => {
                            self.stats.rate_limited += 1;
                            Input::Malformed {
                                conn,
                                error: DecodeError::Syntax(format!(
                                    "rate limited: too many {} on this connection",
                                    msg.type_name()
                                )),
                            }
                        }
                        Ok(msg) => Input::Request { conn, msg },
                        Err(error) => Input::Malformed { conn, error },
                    };
                    self.feed(node, input);
                }
                Side::Outbound(ob) => {
                    let Some(id) = ob.inflight.pop_front() else {
                        log::debug!("unsolicited reply from {}: closing", ob.dest);
                        self.close(token, Close::Local);
                        return false;
                    };
                    if ob.inflight.is_empty() {
                        ob.tail_deferrable = false;
                    }
                    ob.answered += 1;
                    let (dest, answered) = (ob.dest, ob.answered);
                    let key = (node, dest);
                    let one_shot = match self.links.get_mut(&key) {
                        Some(link) => {
                            if answered >= 2 {
                                link.proven = true;
                            }
                            link.one_shot
                        }
                        None => false,
                    };
                    let req = self.requests.remove(&id);
                    let decoded = match (line, &self.keyring, &req) {
                        (Err(e), _, _) => Err(e),
                        (Ok(bytes), None, _) => wire::decode(bytes),
                        (Ok(bytes), Some(ring), Some(req)) => {
                            open_line(
                                ring,
                                self.nodes.get_mut(node.0).map(|n| &mut n.replay),
                                bytes,
                                (Expect::Reply(req.nonce), self.wall_ms),
                                &mut self.stats,
                            )
                            .0
                        }
                        // Nobody waits for it: not worth a MAC check.
                        (Ok(_), Some(_), None) => Err(DecodeError::Auth(auth::AuthError::Unbound)),
                    };
                    if framing_lost || one_shot {
                        self.close(token, Close::Collateral);
                    }
                    if let Some(req) = req {
                        self.stats.replies_in += 1;
                        let outcome = decoded.map_err(|e| {
                            log::debug!("bad reply from {dest}: {e}");
                            self.stats.send_failures += 1;
                            Failure::BadReply
                        });
                        let input = Input::Response {
                            to: req.to,
                            request: req.msg,
                            outcome,
                        };
                        self.feed(req.node, input);
                    } else {
                        self.run_inputs();
                    }
                    if framing_lost || one_shot {
                        return false;
                    }
                    self.pump_link(key);
                }
            }
        }
    }

    // ----- replies (accepted connections) -----

    fn reply(&mut self, idx: NodeIdx, conn: ConnId, msg: Message) {
        let token = Token((conn.0 >> REPLY_SEQ_BITS) as usize);
        let ts = self.wire_ts();
        let ts_ms = self.wall_ms;
        let Some(c) = conn_in(&mut self.sockets, token) else {
            log::debug!("reply on a closed connection dropped: {}", msg.type_name());
            return;
        };
        if c.node != idx {
            log::warn!("node {idx:?} replied on a connection it does not own");
            return;
        }
        let Side::Inbound(ib) = &mut c.side else {
            return;
        };
        match ib.replies.iter_mut().find(|s| s.id == conn.0) {
            Some(slot) => slot.msg = Some(msg),
            None => {
                log::debug!("reply on a closed connection dropped: {}", msg.type_name());
                return;
            }
        }
        while ib.replies.front().is_some_and(|s| s.msg.is_some()) {
            let Some(ReplySlot {
                msg: Some(m), bind, ..
            }) = ib.replies.pop_front()
            else {
                continue;
            };
            match &self.keyring {
                None => wire::encode(&m, ts, c.wbuf.append()),
                Some(ring) => {
                    let nonce = self.next_nonce;
                    self.next_nonce = nonce.wrapping_add(1);
                    let stamp = Stamp { ts_ms, nonce, bind };
                    auth::seal_with(ring, stamp, c.wbuf.append(), |out| {
                        wire::encode(&m, ts, out)
                    });
                }
            }
        }
        self.mark_dirty(token);
    }

    fn close_if_finished(&mut self, token: Token) {
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        if let Side::Inbound(ib) = &c.side {
            if ib.finishing && ib.replies.is_empty() && c.wbuf.is_empty() {
                self.close(token, Close::Local);
            }
        }
    }

    // ----- requests (dialled connections) -----

    fn send(&mut self, idx: NodeIdx, to: Endpoint, msg: Message, deadline: Millis) {
        let key = (idx, to);
        let link = self.links.entry(key).or_default();
        let req = Request {
            node: idx,
            to,
            msg,
            retried: false,
            socket: None,
            nonce: 0,
        };
        if link.unsent.len() >= self.limits.max_queued_per_link {
            log::debug!("queue to {to} full: failing {}", req.msg.type_name());
            self.respond(req, Err(Failure::Timeout));
            return;
        }
        let id = self.requests.insert(req);
        link.unsent.push_back(id);
        self.deadlines.push(Reverse((deadline, id)));
        self.pump_link(key);
    }

    /// Moves queued requests of a link onto connections that can take them, dialling new
    /// connections up to the per-link limit.
    fn pump_link(&mut self, key: (NodeIdx, Endpoint)) {
        loop {
            let Some(link) = self.links.get(&key) else {
                return;
            };
            let Some(&id) = link.unsent.front() else {
                return;
            };
            let Some(req) = self.requests.get(&id) else {
                if let Some(link) = self.links.get_mut(&key) {
                    link.unsent.pop_front();
                }
                continue;
            };
            let deferrable = may_defer(&req.msg);
            let mut empty = None;
            let mut pipelined = None;
            for &t in &link.sockets {
                let Some(Some(Socket::Conn(c))) = self.sockets.get(t.0) else {
                    continue;
                };
                let Side::Outbound(ob) = &c.side else {
                    continue;
                };
                if c.wbuf.len() >= self.limits.write_high_water {
                    continue;
                }
                if ob.inflight.is_empty() {
                    if !(link.one_shot && ob.answered > 0) && empty.is_none() {
                        empty = Some(t);
                    }
                } else if link.proven
                    && !link.one_shot
                    && !ob.tail_deferrable
                    && pipelined.is_none()
                {
                    pipelined = Some(t);
                }
            }
            let room = link.sockets.len() < self.limits.sockets_per_link;
            let pick = if deferrable {
                empty.or(if room { None } else { pipelined })
            } else {
                pipelined.or(empty)
            };
            let token = match pick {
                Some(t) => t,
                None if room => match self.dial(key) {
                    Some(t) => t,
                    None => {
                        if let Some(link) = self.links.get_mut(&key) {
                            link.unsent.pop_front();
                        }
                        if let Some(req) = self.requests.remove(&id) {
                            self.respond(req, Err(Failure::Unreachable));
                        }
                        continue;
                    }
                },
                None => return,
            };
            self.assign(key, token, id, deferrable);
        }
    }

    fn assign(&mut self, key: (NodeIdx, Endpoint), token: Token, id: u64, deferrable: bool) {
        if let Some(link) = self.links.get_mut(&key) {
            link.unsent.pop_front();
        }
        let ts = self.wire_ts();
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.socket = Some(token);
        let Some(Some(Socket::Conn(c))) = self.sockets.get_mut(token.0) else {
            return;
        };
        match &self.keyring {
            None => wire::encode(&req.msg, ts, c.wbuf.append()),
            Some(ring) => {
                let nonce = self.next_nonce;
                self.next_nonce = nonce.wrapping_add(1);
                req.nonce = nonce;
                let stamp = Stamp {
                    ts_ms: self.wall_ms,
                    nonce,
                    bind: None,
                };
                let msg = &req.msg;
                auth::seal_with(ring, stamp, c.wbuf.append(), |out| {
                    wire::encode(msg, ts, out)
                });
            }
        }
        if let Side::Outbound(ob) = &mut c.side {
            ob.inflight.push_back(id);
            ob.tail_deferrable = deferrable;
        }
        self.mark_dirty(token);
    }

    fn dial(&mut self, key: (NodeIdx, Endpoint)) -> Option<Token> {
        let (node, dest) = key;
        let mut stream = match TcpStream::connect(dest) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("connect to {dest}: {e}");
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let token = self.alloc_token();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("register dialled connection: {e}");
            self.free_tokens.push(token.0);
            return None;
        }
        self.stats.dialled += 1;
        self.sockets[token.0] = Some(Socket::Conn(Box::new(Conn {
            stream,
            node,
            side: Side::Outbound(Outbound {
                dest,
                connected: false,
                inflight: VecDeque::new(),
                tail_deferrable: false,
                answered: 0,
            }),
            reader: LineReader::new(self.line_limit()),
            wbuf: OutBuf::default(),
            want_write: true,
            dirty: false,
            last_active: self.now,
        })));
        self.links.entry(key).or_default().sockets.push(token);
        Some(token)
    }

    fn expire_requests(&mut self) {
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > self.now {
                break;
            }
            self.deadlines.pop();
            let Some(req) = self.requests.remove(&id) else {
                continue;
            };
            match req.socket {
                Some(token) => {
                    if let Some(c) = self.conn_mut(token) {
                        if let Side::Outbound(ob) = &mut c.side {
                            ob.inflight.retain(|&r| r != id);
                        }
                    }
                    // Replies on this connection would now be misaligned: close it; the
                    // other requests on it are re-sent.
                    self.close(token, Close::Collateral);
                }
                None => {
                    if let Some(link) = self.links.get_mut(&(req.node, req.to)) {
                        link.unsent.retain(|&r| r != id);
                    }
                }
            }
            self.respond(req, Err(Failure::Timeout));
        }
    }

    // ----- writing -----

    fn flush_all(&mut self) {
        loop {
            while let Some(token) = self.dirty.pop() {
                self.flush(token);
            }
            let resume = std::mem::take(&mut self.resume);
            for &token in &resume {
                self.read_ready(token, false);
            }
            self.run_inputs();
            if self.dirty.is_empty() && self.resume.is_empty() && self.inputs.is_empty() {
                break;
            }
        }
    }

    /// Writes until the buffer is empty or the socket would block; keeps WRITABLE interest
    /// registered exactly while bytes remain.
    fn flush(&mut self, token: Token) {
        let limits = self.limits.clone();
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        c.dirty = false;
        if let Side::Outbound(ob) = &c.side {
            if !ob.connected {
                return;
            }
        }
        let mut written = 0;
        let mut failed = None;
        let mut writes = 0;
        while !c.wbuf.is_empty() {
            match c.stream.write(c.wbuf.unwritten()) {
                Ok(0) => {
                    failed = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => {
                    c.wbuf.consume(n);
                    written += n;
                    writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.stats.writes += writes;
        let Some(c) = conn_in(&mut self.sockets, token) else {
            return;
        };
        if let Some(e) = failed {
            log::debug!("write: {e}");
            self.close(token, Close::Remote);
            return;
        }
        if written > 0 {
            c.last_active = self.now;
        }
        c.wbuf.settle();
        let want_write = !c.wbuf.is_empty();
        if want_write != c.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest)
            {
                log::warn!("reregister: {e}");
                self.close(token, Close::Local);
                return;
            }
            c.want_write = want_write;
        }
        let below_high_water = c.wbuf.len() < limits.write_high_water;
        match &mut c.side {
            Side::Inbound(ib) => {
                if c.wbuf.len() > limits.write_hard_limit {
                    log::debug!("slow reader: dropping connection");
                    self.close(token, Close::Local);
                    return;
                }
                if ib.paused && below_high_water && ib.replies.len() < limits.max_pending_replies {
                    ib.paused = false;
                    self.resume.push(token);
                }
                self.close_if_finished(token);
            }
            Side::Outbound(ob) => {
                if below_high_water {
                    let key = (c.node, ob.dest);
                    self.pump_link(key);
                }
            }
        }
    }

    // ----- closing -----

    fn close(&mut self, token: Token, why: Close) {
        let Some(slot) = self.sockets.get_mut(token.0) else {
            return;
        };
        let Some(Socket::Conn(mut c)) = slot.take() else {
            return;
        };
        self.free_tokens.push(token.0);
        let _ = self.poll.registry().deregister(&mut c.stream);
        match c.side {
            Side::Inbound(ib) => {
                if let Some(n) = self.nodes.get_mut(c.node.0) {
                    n.inbound = n.inbound.saturating_sub(1);
                }
                self.release_ip(c.node.0, ib.remote);
            }
            Side::Outbound(ob) => {
                let key = (c.node, ob.dest);
                let answered = ob.answered > 0;
                let mut retry = Vec::new();
                if let Some(link) = self.links.get_mut(&key) {
                    link.sockets.retain(|&t| t != token);
                    if why == Close::Remote && answered && !link.proven {
                        // It answered, then closed: it serves one request per connection.
                        link.one_shot = true;
                    }
                }
                for id in ob.inflight {
                    let Some(req) = self.requests.get_mut(&id) else {
                        continue;
                    };
                    req.socket = None;
                    let innocent = why != Close::Remote || answered;
                    if innocent && !req.retried {
                        req.retried = true;
                        retry.push(id);
                    } else if let Some(req) = self.requests.remove(&id) {
                        self.respond(req, Err(Failure::Unreachable));
                    }
                }
                match self.links.get_mut(&key) {
                    Some(link) => {
                        for id in retry.into_iter().rev() {
                            link.unsent.push_front(id);
                        }
                        if link.sockets.is_empty() && link.unsent.is_empty() && !link.proven {
                            self.links.remove(&key);
                        } else {
                            self.pump_link(key);
                        }
                    }
                    None => {
                        for id in retry {
                            if let Some(req) = self.requests.remove(&id) {
                                self.respond(req, Err(Failure::Unreachable));
                            }
                        }
                    }
                }
            }
        }
    }

    /// One accepted connection from `ip` to node `node` is gone.
    fn release_ip(&mut self, node: usize, ip: std::net::IpAddr) {
        if let std::collections::hash_map::Entry::Occupied(mut e) =
            self.inbound_by_ip.entry((node, ip))
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Closes connections idle past their limit; forgets links with nothing left.
    fn sweep_idle(&mut self) {
        let now = self.now;
        let mut idle = Vec::new();
        for (i, s) in self.sockets.iter_mut().enumerate() {
            let Some(Socket::Conn(c)) = s else {
                continue;
            };
            let quiet = now.since(c.last_active);
            let partial = c.reader.pending_bytes() > 0;
            let expired = match &mut c.side {
                Side::Inbound(ib) => {
                    // Part of a line with nothing outstanding: a trickle, timed from when
                    // the sweep first saw it.
                    let trickle = partial && ib.replies.is_empty();
                    let since = match (trickle, ib.partial_since) {
                        (false, _) => None,
                        (true, None) => Some(now),
                        (true, Some(t)) => Some(t),
                    };
                    ib.partial_since = since;
                    let too_slow =
                        since.is_some_and(|t| now.since(t) >= self.limits.line_timeout_ms);
                    too_slow || (ib.replies.is_empty() && quiet >= self.limits.inbound_idle_ms)
                }
                Side::Outbound(ob) => {
                    ob.inflight.is_empty() && quiet >= self.limits.outbound_idle_ms
                }
            };
            if expired {
                idle.push(Token(i));
            }
        }
        for token in idle {
            self.close(token, Close::Local);
        }
        self.links
            .retain(|_, l| !(l.sockets.is_empty() && l.unsent.is_empty()));
    }
}
