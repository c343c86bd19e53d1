//! # gossip-driver-mio: the core's state machines on real TCP sockets
//!
//! A [`Host`] is one single-threaded [mio] event loop that runs one node (the `seed` and
//! `peer` programs) or many (the benchmark hosts a hundred peers in one process). It owns
//! every socket; the nodes own every decision. Its code is in `src/host/` (the [`host`]
//! module doc says which file owns what); [`Limits`], [`OutputLog`] and the log lines
//! ([`render`]) have a file each.
//!
//! ## The loop
//!
//! Each [`Host::turn`]:
//!
//! 1. `poll` with a timeout of `min(cap, earliest node deadline, earliest request deadline)`
//!    minus now (zero if work is already queued);
//! 2. reads `Instant::now()` and feeds that monotonic time ([`Millis`] since the host
//!    started), never a deadline, to the nodes; it reads it again before each ready socket,
//!    so a busy turn does not feed a stale time to the sockets served last;
//! 3. serves every ready socket: accepts until `WouldBlock`; reads until `WouldBlock`, or
//!    until a read that does not fill the buffer (readiness is edge-triggered: later bytes
//!    bring a new event), into a [`wire::LineReader`] (bounded line length); each line is decoded and handed to its node
//!    at once, as [`Input::Request`] / [`Input::Refused`] on an accepted connection or as
//!    [`Input::Response`] on a dialled one. Readiness may be spurious; every read and write
//!    tolerates `WouldBlock`;
//! 4. fails requests whose deadline passed ([`Failure::Timeout`]) and sends [`Input::Tick`]
//!    to every node whose [`Node::next_deadline`] is due;
//! 5. flushes every connection written to during the turn: one `write` moves everything
//!    encoded since the last flush (writes are coalesced), WRITABLE interest is registered
//!    only while bytes remain.
//!
//! After every input the node's outputs are drained completely ("handle, then drain"):
//! [`Output::Send`] is encoded onto a connection, [`Output::Reply`] into its request's slot,
//! [`Output::Event`] goes to the [`Observer`]. Failures found while draining are queued as
//! inputs, so a node is never re-entered.
//!
//! ## Requests and connections
//!
//! * **Accepted connections** serve one-shot clients (connect, one line, one reply, close) and
//!   kept-alive, pipelined ones alike. Every request gets its own [`ConnId`]; replies go out in
//!   request order even when the node answers a later one first (a seed answers a
//!   `REGISTER_REQ` only after its vote round). A line over [`Limits::max_line`] is answered
//!   `ERROR` and the connection is closed after the flush.
//! * **Dialled connections** are kept per (node, destination) in a small pool. Replies come
//!   back in request order, so each connection keeps a FIFO of the requests written on it. A
//!   connection is pipelined only once the remote has proven it keeps connections alive (two
//!   replies on one connection), and never behind a request whose reply may be deferred (a
//!   vote, a suspicion check): those get a connection of their own, so a probe never waits
//!   behind a slow reply. A remote that closes after each reply (the reference
//!   implementation) is detected and served one request per connection.
//! * **Failures**: a refused, reset or closed connection fails its requests with
//!   [`Failure::Unreachable`]; a request still unanswered at its deadline fails with
//!   [`Failure::Timeout`] and its connection is closed (later replies would be misaligned);
//!   a reply line that does not decode fails with [`Failure::BadReply`]. A request whose
//!   connection went away through no fault of its own (the remote answered earlier ones, or
//!   another request timed out) is sent again once on a fresh connection.
//!
//! ## Cluster key
//!
//! With [`Host::set_keyring`], every line the host writes is sealed
//! ([`wire::auth::seal_with`]: requests with a fresh nonce and no binding, replies bound to
//! the nonce of the request they answer, kept in the request's reply slot) and every line it
//! reads is opened ([`wire::auth::open`]: the nonce of each request sent is kept with it, to
//! check its reply's binding; each node has its own replay cache, bounded by
//! [`Limits::max_replay_entries`]). A request that fails reaches its node as
//! [`Input::Refused`] with [`wire::DecodeError::Auth`], so the node answers `ERROR` (sealed;
//! bound only to a frame whose MAC verified) and changes nothing; a reply that fails fails
//! its request with [`Failure::BadReply`]. [`Stats::auth_refused`] counts both. Without a
//! key none of this runs: lines are encoded and decoded as before, with no extra allocation
//! or clock read. Nonces start from [`nonce_seed`] (`/dev/urandom`) and count up; timestamps
//! are [`unix_now_ms`].
//!
//! Every buffer is bounded by [`Limits`]: line length, write buffers (a slow reader is
//! dropped), pending replies per connection (reading pauses), connections per node, queued
//! requests per destination, and idle time.
//!
//! ## Signals and stopping
//!
//! With [`Host::catch_signals`], SIGTERM and SIGINT wake the loop (`signal-hook-mio`: no
//! handler of ours runs in signal context) and the host tells every node to leave
//! ([`Host::leave`], [`Input::Leave`]): a peer leaves the network, a seed finishes its rounds.
//! [`Host::exit`] says when the loop may end: every node done and every byte written, the
//! leave older than its deadline, or a second signal. Log lines are written whole with one
//! `write` on an `O_APPEND` file ([`OutputLog`]), so even a `kill -9` leaves no torn line.
//!
//! ## Addresses
//!
//! A node's identity is the endpoint it advertises ([`NodeSpec::advertise`]), which may differ
//! from the address it listens on (bind `0.0.0.0`, advertise the address others reach).
//! Seeds the config names by host name are resolved by [`resolve`] before the node starts;
//! [`Host::set_seed_names`] makes the host resolve a name again when its seed stops
//! answering (on a thread, never in the loop) and dial it where it moved.
//!
//! ## Local interfaces
//!
//! [`Host::attach_local`] opens a node's control socket, events file and metrics endpoint on
//! the same loop ([`local`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod host;
pub mod limits;
pub mod local;
pub mod output;
pub mod render;
pub mod resolve;

pub use host::{
    nonce_seed, unix_now_ms, AddNodeError, Exit, Host, NodeIdx, NodeSpec, Observer, Stats,
};
pub use limits::Limits;
pub use output::OutputLog;
pub use render::Role;

#[cfg(doc)]
use gossip_core::{wire, ConnId, Failure, Input, Millis, Node, Output};
