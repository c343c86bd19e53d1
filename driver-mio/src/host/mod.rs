//! [`Host`]: one mio event loop running one or many nodes on real TCP sockets.
//!
//! See the crate documentation for the shape of the loop and the promises it keeps. This
//! module owns the host: its public API, the turn (poll, serve ready sockets, expire, tick,
//! flush), the clocks, and feeding nodes and draining their outputs. The sockets live in
//! `conn.rs` (the socket table, reading, flushing, closing, the idle sweep), `inbound.rs`
//! (accepted connections) and `outbound.rs` (dialled connections and the requests on them);
//! `cluster_key.rs` opens keyed lines.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossip_core::config::SettingsError;
use gossip_core::hash::FxHashMap;
use gossip_core::msg::Endpoint;
use gossip_core::wire::auth::{self, Keyring, ReplayCache};
use gossip_core::{Event, Input, Millis, Node, NodeInit, Output, Settings};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use crate::limits::Limits;
use crate::local::control::{ClientId, Request};
use crate::local::metrics;
use crate::local::metrics::{HostView, Traffic};
use crate::local::{self, Local, LocalConfig, LOCAL_TOKENS};
use crate::render::Role;
use crate::resolve::{Renamer, SeedName};

mod cluster_key;
mod conn;
mod inbound;
mod outbound;

pub use cluster_key::{nonce_seed, unix_now_ms};

use conn::{Side, Socket};
use outbound::{Link, Requests};

#[cfg(doc)]
use gossip_core::Failure;

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
    /// The endpoint the node tells others (its identity), if not the address it listens on:
    /// a node listening on `0.0.0.0` or `::` must name one.
    pub advertise: Option<Endpoint>,
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
    /// The node listens on every address (`0.0.0.0`, `::`) and advertises none, or
    /// advertises one of those: others could not reach it by its identity.
    Unadvertised {
        /// The address listened on.
        addr: SocketAddr,
    },
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
            AddNodeError::Unadvertised { addr } => write!(
                f,
                "listening on {addr}, every address of this machine: name the one others reach with --advertise IP:PORT"
            ),
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

impl<O: Observer> Host<O> {
    /// SIGTERM or SIGINT arrived: the first makes the nodes leave, a second aborts.
    fn on_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let count = signals.pending().count();
        for _ in 0..count {
            if self.leave_started.is_some() {
                log::warn!("second signal: exiting at once");
                self.aborted = true;
            } else {
                self.leave();
            }
        }
    }

    /// A readiness event of a local interface: the control socket's requests are carried
    /// out, a metrics scrape is answered from the node's status and the host's counts.
    fn local_ready(&mut self, token: Token) {
        let Some(mut local) = self.local.take() else {
            return;
        };
        let registry = self.poll.registry();
        let mut requests = Vec::new();
        if let Some(control) = local.control.as_mut().filter(|c| c.owns(token)) {
            requests = control.on_ready(registry, token);
        }
        if local.http.as_ref().is_some_and(|h| h.owns(token)) {
            let view = self.host_view(&local);
            let (metrics, node) = (&local.metrics, self.nodes.get(local.node));
            let traffic = self.traffic.as_deref();
            if let Some(http) = local.http.as_mut() {
                http.on_ready(registry, token, self.now.0, &mut |out| {
                    let (Some(metrics), Some(node), Some(traffic)) = (metrics, node, traffic)
                    else {
                        return metrics::CONTENT_TYPE;
                    };
                    let mut text = String::new();
                    let kind = metrics.scrape(&node.node.status(), traffic, &view, &mut text);
                    out.extend_from_slice(text.as_bytes());
                    kind
                });
            }
        }
        let idx = NodeIdx(local.node);
        self.local = Some(local);
        for (client, req) in requests {
            self.carry_out(idx, client, req);
        }
    }

    /// Carries out one control request for the node at `idx`: answered from the node's
    /// state, or, for a publish, handed to the node, whose answering event is the reply.
    fn carry_out(&mut self, idx: NodeIdx, client: ClientId, req: Request) {
        let Some(slot) = self.nodes.get(idx.0) else {
            return;
        };
        let registry = self.poll.registry();
        let Some(local) = self.local.as_mut() else {
            return;
        };
        let Some(control) = local.control.as_mut() else {
            return;
        };
        match req {
            Request::Members => control.reply(
                registry,
                client,
                &local::members_reply(&slot.node).to_string(),
            ),
            Request::Info => {
                control.reply(registry, client, &local::info_reply(&slot.node).to_string())
            }
            Request::Watch { mask, name } => {
                control.reply(registry, client, &local::watching_reply(mask));
                control.start_watch(client, mask, name);
            }
            Request::Leave => {
                local.leave_asked(client);
                self.leave();
            }
            Request::Publish { name, data } => {
                local.publishing(client);
                self.feed(idx, Input::Publish { name, data });
                if let Some(local) = self.local.as_mut() {
                    local.published(self.poll.registry());
                }
            }
        }
    }

    /// What the host knows for a metrics scrape.
    fn host_view(&self, local: &Local) -> HostView {
        let mut view = HostView {
            send_failures: self.stats.send_failures,
            rate_limited: self.stats.rate_limited,
            auth_refused: self.stats.auth_refused,
            removals: local.removals,
            publish_refused: local.publish_refused,
            ..HostView::default()
        };
        if let Some(c) = &local.control {
            view.control_clients = c.clients();
            view.watch_missed = c.stats().missed_events;
        }
        for socket in self.sockets.iter().flatten() {
            if let Socket::Conn(c) = socket {
                match c.side {
                    Side::Inbound(_) => view.inbound += 1,
                    Side::Outbound(_) => view.outbound += 1,
                }
                view.write_queue_bytes += c.wbuf.len();
            }
        }
        view.queued_requests = self.links.values().map(|l| l.unsent.len()).sum();
        view.in_flight = self.requests.live();
        view
    }
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

const READ_CHUNK: usize = 64 * 1024;
const SWEEP_EVERY_MS: u64 = 1_000;

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
    /// Counts requests read, for reply ids (see [`REPLY_SEQ_BITS`](inbound::REPLY_SEQ_BITS)).
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
    /// The local interfaces of one node (control socket, events file, metrics), if asked.
    local: Option<Box<Local>>,
    /// Lines and bytes by type, counted only while metrics are served.
    traffic: Option<Box<Traffic>>,
    /// SIGTERM and SIGINT, once [`Host::catch_signals`] asked for them.
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// When the nodes were told to leave (a signal, `gossipctl leave`, [`Host::leave`]).
    leave_started: Option<Millis>,
    /// A second signal came: exit at once.
    aborted: bool,
    /// Where seeds known by host name are dialled (see [`Host::set_seed_names`]).
    renamer: Renamer,
}

/// Why a host's loop should end (see [`Host::exit`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every node left (or finished its rounds) and what they sent is written.
    Left,
    /// The leave took longer than its bound: exit anyway (failure detection does the rest).
    Deadline,
    /// A second signal: exit at once, without waiting.
    Aborted,
}

/// The token of the signal source (below the local interfaces' tokens).
const SIGNAL_TOKEN: usize = LOCAL_TOKENS - 1;

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
            local: None,
            traffic: None,
            signals: None,
            leave_started: None,
            aborted: false,
            renamer: Renamer::default(),
        })
    }

    /// SIGTERM and SIGINT make the nodes leave ([`Host::leave`]) instead of killing the
    /// process; a second one makes [`Host::exit`] say [`Exit::Aborted`].
    pub fn catch_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGTERM, SIGINT])?;
        self.poll
            .registry()
            .register(&mut signals, Token(SIGNAL_TOKEN), Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Tells every node to leave ([`Input::Leave`]): a peer leaves the network, a seed
    /// finishes its rounds. The loop goes on until [`Host::exit`] says it may end.
    pub fn leave(&mut self) {
        if self.leave_started.is_none() {
            self.leave_started = Some(self.now);
        }
        for i in 0..self.nodes.len() {
            self.inputs.push_back((NodeIdx(i), Input::Leave));
        }
        self.run_inputs();
    }

    /// Whether the loop should end, and why: every node done leaving and every byte written;
    /// the leave older than `deadline_ms`; or a second signal.
    pub fn exit(&self, deadline_ms: u64) -> Option<Exit> {
        if self.aborted {
            return Some(Exit::Aborted);
        }
        let started = self.leave_started?;
        let done = self.nodes.iter().all(|n| n.node.done()) && self.nothing_to_write();
        if done {
            Some(Exit::Left)
        } else if self.now.since(started) >= deadline_ms {
            Some(Exit::Deadline)
        } else {
            None
        }
    }

    /// True when no connection holds bytes still to write.
    fn nothing_to_write(&self) -> bool {
        self.sockets.iter().flatten().all(|s| match s {
            Socket::Conn(c) => c.wbuf.is_empty(),
            Socket::Listener { .. } => true,
        })
    }

    /// Opens the local interfaces `cfg` asks for (control socket, events file, metrics
    /// endpoint) for the node at `idx`; one node of a host at most. Returns the address the
    /// metrics endpoint is bound to, if any (port 0 picks one).
    pub fn attach_local(
        &mut self,
        idx: NodeIdx,
        cfg: &LocalConfig,
    ) -> io::Result<Option<SocketAddr>> {
        let Some(slot) = self.nodes.get(idx.0) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such node"));
        };
        if self.local.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "local interfaces are already open for a node of this host",
            ));
        }
        if cfg.metrics.is_some() {
            self.traffic = Some(Box::default());
        }
        let registry = self.poll.registry();
        let opened = Local::open(idx.0, cfg, registry, slot.role, self.traffic.as_deref());
        let local = match opened {
            Ok(local) => local,
            Err(e) => {
                self.traffic = None;
                return Err(e);
            }
        };
        let addr = local.http.as_ref().map(|h| h.local_addr());
        self.local = Some(Box::new(local));
        Ok(addr)
    }

    /// Binds `listen` and starts a node there. Port 0 picks a free port; the node's identity
    /// is [`NodeSpec::advertise`], or else the address actually bound.
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
        let bound = listener.local_addr().map_err(|e| listen_err(fallback, e))?;
        let me = spec.advertise.unwrap_or(bound);
        if me.ip().is_unspecified() || me.port() == 0 {
            return Err(AddNodeError::Unadvertised { addr: bound });
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_err(bound, e))?;
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
            Role::Seed => Node::seed(init),
            Role::Peer => Node::peer(init),
        }
        .map_err(AddNodeError::Settings)?;
        let idx = NodeIdx(self.nodes.len());
        let token = self.alloc_token();
        self.poll
            .registry()
            .register(&mut listener, token, Interest::READABLE)
            .map_err(|e| listen_err(bound, e))?;
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
        self.feed(idx, Input::Start);
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
    /// does not reaches its node as [`Input::Refused`] (answered `ERROR`, sealed), a reply
    /// that does not fails its request with [`Failure::BadReply`]. Replacing the keyring
    /// (rotation) keeps the replay caches. Set it before adding nodes: connections accepted
    /// or dialled before the first keyring keep the unkeyed line limit.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) {
        self.keyring = keyring;
        self.refresh_wall();
    }

    /// The seeds the config names by host name: when one stops answering (a connect fails, a
    /// request times out), its name is resolved again, at most every
    /// [`RETRY_EVERY`](crate::resolve::RETRY_EVERY) and off the loop, and the seed is dialled
    /// where it moved (its identity stays the address it had at start).
    pub fn set_seed_names(&mut self, names: Vec<SeedName>) {
        self.renamer.set_names(names);
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
        self.renamer.poll();

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
        if let Some(http) = self.local.as_mut().and_then(|l| l.http.as_mut()) {
            if http.next_deadline().is_some_and(|d| d <= self.now.0) {
                http.sweep(self.poll.registry(), self.now.0);
            }
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
        if let Some(d) = (self.local.as_ref()).and_then(|l| l.http.as_ref()?.next_deadline()) {
            wake = wake.min(Millis(d));
        }
        let at = self.start + Duration::from_millis(wake.0);
        at.saturating_duration_since(Instant::now())
    }

    /// Feeds one input now (outside any drain), then everything it led to.
    fn feed(&mut self, idx: NodeIdx, input: Input) {
        self.handle(idx, input);
        self.run_inputs();
    }

    fn run_inputs(&mut self) {
        while let Some((idx, input)) = self.inputs.pop_front() {
            self.handle(idx, input);
        }
    }

    /// One input to the node at `idx`, then every output it led to carried out. Never feeds
    /// a node while carrying out: failures found then are queued as inputs, so a node is
    /// never re-entered.
    fn handle(&mut self, idx: NodeIdx, input: Input) {
        let Some(slot) = self.nodes.get_mut(idx.0) else {
            return;
        };
        // A scratch buffer kept across calls: carrying the outputs out needs the whole host.
        let mut outputs = std::mem::take(&mut self.outputs);
        slot.node.handle(self.now, input, &mut outputs);
        let (role, me) = (slot.role, slot.me);
        for out in outputs.drain(..) {
            match out {
                Output::Send {
                    to,
                    msg,
                    deadline,
                    wants_response,
                } => self.send(idx, to, msg, deadline, wants_response),
                Output::Reply { conn, msg } => self.reply(idx, conn, msg),
                Output::Event(event) => {
                    let unix_ms = self.unix_ms_at_zero + self.now.0;
                    if let Some(local) = self.local.as_mut().filter(|l| l.node == idx.0) {
                        local.on_event(self.poll.registry(), me, unix_ms, &event);
                    }
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

    fn on_ready(&mut self, ready: Ready) {
        let Ready {
            token,
            readable,
            writable,
            closed,
        } = ready;
        if token.0 == SIGNAL_TOKEN {
            return self.on_signals();
        }
        if token.0 >= LOCAL_TOKENS {
            return self.local_ready(token);
        }
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
}
