//! # gossip-core: the protocol, with no I/O
//!
//! The seed and peer of the gossip network (see the project README and `docs/PROTOCOL.md`) as pure,
//! deterministic state machines. A node is a value; a driver (the in-memory simulator or the
//! mio event loop) owns it, feeds it [`Input`]s and carries out the [`Output`]s it returns.
//!
//! ## Contract
//!
//! * **No I/O.** This crate opens no socket, reads no clock, starts no thread, touches no
//!   file and uses no global random generator. Time arrives as a [`Millis`] argument;
//!   randomness comes from a ChaCha generator seeded by the driver ([`NodeInit::rng_seed`]).
//! * **Deterministic.** The same inputs at the same times give the same outputs, bit for bit:
//!   nothing iterated on the way to an output is a `HashMap`.
//! * **Total.** Every input is validated. Bad input is answered with an `ERROR` reply (and a
//!   [`Event::BadInput`]) or dropped; it never panics and never changes state it should not.
//!
//! ## How a driver calls a node
//!
//! ```text
//! let mut node = Node::seed(init)?;                // or Node::peer(..)
//! let mut out = Vec::new();
//! node.handle(now, Input::Start, &mut out);        // the first input, once
//! loop {
//!     for o in out.drain(..) { carry out: Send / Reply / Event }
//!     wait until an input arrives or `node.next_deadline()` passes
//!     node.handle(now, input, &mut out)            // Input::Tick when the deadline passed
//! }
//! ```
//!
//! The caller lends the buffer the outputs go to: one mutation, then carry out every output,
//! then ask for the next deadline. There is no other way out of a node. `now` must never go
//! backwards. Every [`Output::Send`] is a request; when it `wants_response`, the driver
//! answers it with exactly one [`Input::Response`], carrying the reply or why none came by
//! the send's deadline. Every [`Input::Request`] (or [`Input::Refused`]) is answered by the
//! node with exactly one [`Output::Reply`] on the same connection, at once or (after a vote
//! round or a probe: [`Message::may_defer`]) later, but always before the deadlines the
//! reference implementation waits for.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod event;
pub mod hash;
pub mod io;
pub mod msg;
pub mod node;
pub mod peer;
pub mod quorum;
pub mod ratelimit;
pub mod rng;
pub mod seed;
pub mod timers;
pub mod wire;

pub use config::{quorum, Settings};
pub use event::Event;
pub use io::{ConnId, Failure, Input, Millis, NodeInit, Output, Refusal};
pub use msg::{Endpoint, Message};
pub use node::Node;
pub use peer::Peer;
pub use seed::Seed;
