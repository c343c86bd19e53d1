//! What goes into a node and what comes out: the whole interface between the core and a driver.

use crate::event::Event;
use crate::msg::{Endpoint, Message};
use crate::wire::DecodeError;
use crate::Settings;

/// A point in time in milliseconds, on a monotonic clock the driver owns (its origin is the
/// driver's business). Never goes backwards.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating.
    #[inline]
    pub fn after(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    #[inline]
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A connection the driver accepted, named by the driver. A node answers a request by
/// replying on the connection it came in on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Why a request got no reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The connect was refused or the connection was reset or closed before the reply.
    Unreachable,
    /// No reply came by the send's deadline.
    Timeout,
    /// The reply line could not be decoded.
    BadReply,
}

/// Why a driver did not hand a node the request that came in on a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// The line did not decode (or, with a cluster key, did not authenticate).
    Undecodable(DecodeError),
    /// The connection sent more requests of this type than its rate allows (see
    /// [`crate::ratelimit`]).
    RateLimited(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Undecodable(error) => error.fmt(f),
            Refusal::RateLimited(kind) => {
                write!(f, "rate limited: too many {kind} on this connection")
            }
        }
    }
}

/// Everything a driver feeds a node.
#[derive(Clone, Debug)]
pub enum Input {
    /// The node begins: the first input, exactly once (a peer asks seeds to register it, a
    /// seed arms its anti-entropy).
    Start,
    /// A request arrived on `conn`. The node answers it with exactly one
    /// [`Output::Reply`] on `conn`, now or later.
    Request {
        /// Where to answer.
        conn: ConnId,
        /// The decoded request.
        msg: Message,
    },
    /// A line arrived on `conn` that the driver did not hand over as a request. The node
    /// answers with `ERROR`.
    Refused {
        /// Where to answer.
        conn: ConnId,
        /// Why.
        why: Refusal,
    },
    /// The outcome of an earlier [`Output::Send`] that wanted one: the request as it was
    /// sent, and the reply or why there was none.
    Response {
        /// The endpoint the request was sent to.
        to: Endpoint,
        /// The request, handed back unchanged.
        request: Message,
        /// The reply, or why none came.
        outcome: Result<Message, Failure>,
    },
    /// `now` has reached [`crate::Node::next_deadline`]: run the timers that are due.
    /// A spurious tick (nothing due) is harmless.
    Tick,
    /// An application on this node's machine asks it to broadcast a message (the control
    /// socket's `publish`). The node answers with exactly one event, at once:
    /// [`Event::AppPublished`] with the message's id, or [`Event::PublishRefused`] (a seed,
    /// a payload over the limit, a peer not joined yet, or over its publish rate).
    Publish {
        /// What the application calls it (optional).
        name: Option<String>,
        /// The payload.
        data: String,
    },
    /// The node is told to stop (SIGTERM, SIGINT, `gossipctl leave`). A peer leaves: it
    /// asks the seeds to certify its `LEFT` entry and tells its neighbours, which check with
    /// it and drop the link without suspicion. A seed starts no new round and finishes those
    /// in flight. Either is done when [`crate::Node::done`] says so; the driver exits then
    /// (or at its own deadline: a peer whose seeds are unreachable is found by failure
    /// detection instead). More than once is harmless.
    Leave,
}

/// Everything a node asks its driver to do or to know.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a request to `to`. If `wants_response`, report the outcome as one
    /// [`Input::Response`]: the reply, or a [`Failure`] at `deadline` at the latest;
    /// otherwise the reply (still read, to keep the connection in step) is dropped.
    Send {
        /// The listening endpoint of the node to send to.
        to: Endpoint,
        /// The request.
        msg: Message,
        /// When to give up waiting for the reply.
        deadline: Millis,
        /// The node acts on the reply: hand it back.
        wants_response: bool,
    },
    /// Answer the request that came in on `conn`. If the connection is gone, drop it.
    Reply {
        /// The connection the request came in on.
        conn: ConnId,
        /// The reply.
        msg: Message,
    },
    /// Something observable happened: drivers log it, tests assert on it.
    Event(Event),
}

/// What a node is given at birth.
#[derive(Clone, Debug)]
pub struct NodeInit {
    /// This node's listening endpoint: its identity.
    pub me: Endpoint,
    /// The seeds of the config, in config order.
    pub seeds: Vec<Endpoint>,
    /// Timing and limits.
    pub settings: Settings,
    /// Seeds this node's ChaCha generator.
    pub rng_seed: u64,
    /// Unix time in milliseconds at `Millis(0)`: the texts the spec fixes carry wall-clock
    /// seconds (`<timestamp>:<IP>:<Msg#>`), computed as `(unix_ms_at_zero + now) / 1000`.
    pub unix_ms_at_zero: u64,
}
