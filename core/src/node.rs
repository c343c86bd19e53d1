//! [`Node`]: a seed or a peer behind one interface, so a driver can host either.

use crate::config::SettingsError;
use crate::msg::{Endpoint, StatusResp};
use crate::{Input, Millis, NodeInit, Output, Peer, Seed};

/// A seed or a peer.
// Both roles are large (a ChaCha generator alone is 320 bytes) and their sizes move as they
// grow; a driver holds one `Node` per hosted node and touches it on every event, so an extra
// box per access buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Node {
    /// A membership authority.
    Seed(Seed),
    /// A gossip peer.
    Peer(Peer),
}

impl Node {
    /// A seed. Fails if the settings do not validate or `init.me` is not among `init.seeds`.
    pub fn seed(init: NodeInit, now: Millis) -> Result<Node, SettingsError> {
        Seed::new(init, now).map(Node::Seed)
    }

    /// A peer. Its first outputs (registration requests) are queued at once.
    pub fn peer(init: NodeInit, now: Millis) -> Result<Node, SettingsError> {
        Peer::new(init, now).map(Node::Peer)
    }

    /// Feeds one input at `now`.
    #[inline]
    pub fn handle(&mut self, now: Millis, input: Input) {
        match self {
            Node::Seed(s) => s.handle(now, input),
            Node::Peer(p) => p.handle(now, input),
        }
    }

    /// Takes every output queued since the last call, in order.
    #[must_use = "outputs are what the node asks the driver to do"]
    #[inline]
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        match self {
            Node::Seed(s) => s.drain_outputs(),
            Node::Peer(p) => p.drain_outputs(),
        }
    }

    /// Exchanges the buffer the node queues outputs in (with its contents) for `buf`.
    ///
    /// For a driver hosting many nodes: lending each node one buffer around
    /// [`Node::handle`] and taking it back has every node write its outputs into memory
    /// that is already in the CPU cache, where each node's own buffer would not be.
    #[inline]
    pub fn swap_outputs(&mut self, buf: &mut Vec<Output>) {
        match self {
            Node::Seed(s) => s.swap_outputs(buf),
            Node::Peer(p) => p.swap_outputs(buf),
        }
    }

    /// When the node next wants [`Input::Tick`].
    #[inline]
    pub fn next_deadline(&self) -> Option<Millis> {
        match self {
            Node::Seed(s) => s.next_deadline(),
            Node::Peer(p) => p.next_deadline(),
        }
    }

    /// This node's endpoint.
    pub fn me(&self) -> Endpoint {
        match self {
            Node::Seed(s) => s.me(),
            Node::Peer(p) => p.me(),
        }
    }

    /// A read-only view, as answered to `STATUS_REQ`.
    pub fn status(&self) -> StatusResp {
        match self {
            Node::Seed(s) => s.status(),
            Node::Peer(p) => p.status(),
        }
    }
}
