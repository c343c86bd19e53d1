//! [`Node`]: a seed or a peer behind one interface, so a driver can host either.

use crate::config::SettingsError;
use crate::msg::{Endpoint, StatusResp};
use crate::{Input, Millis, NodeInit, Output, Peer, Seed, Settings};

/// A seed or a peer.
// A seed keeps its state behind a box (see [`Seed`]); a peer is inline: it is the one a
// simulator hosts by the thousand and touches on every gossip.
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
    pub fn seed(init: NodeInit) -> Result<Node, SettingsError> {
        Seed::new(init).map(Node::Seed)
    }

    /// A peer. Fails if the settings do not validate or `init.me` is a seed.
    pub fn peer(init: NodeInit) -> Result<Node, SettingsError> {
        Peer::new(init).map(Node::Peer)
    }

    /// Feeds one input at `now`; the outputs it leads to are appended to `out`, in order.
    #[inline]
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        match self {
            Node::Seed(s) => s.handle(now, input, out),
            Node::Peer(p) => p.handle(now, input, out),
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

    /// Told to stop ([`Input::Leave`]) and done with it: a peer left, a seed finished its
    /// rounds. The driver exits once what the node sent is written.
    pub fn done(&self) -> bool {
        match self {
            Node::Seed(s) => s.done(),
            Node::Peer(p) => p.done(),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        match self {
            Node::Seed(s) => s.settings(),
            Node::Peer(p) => p.settings(),
        }
    }

    /// The seeds of its config, in config order.
    pub fn seeds(&self) -> &[Endpoint] {
        match self {
            Node::Seed(s) => s.seeds(),
            Node::Peer(p) => p.seeds(),
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
