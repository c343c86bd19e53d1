//! What the simulator hosts: anything with the core's driver contract. [`gossip_core::Node`]
//! is the one that matters; the trait exists so the simulator's own machinery (queue, network,
//! crash bookkeeping) can be tested with tiny stand-ins, and costs nothing (monomorphised).

use gossip_core::config::SettingsError;
use gossip_core::msg::StatusResp;
use gossip_core::{Input, Millis, Node, NodeInit, Output};

/// A node the simulator can host: the contract of `gossip_core` (start, handle into a lent
/// buffer, next deadline).
pub trait Actor: Sized {
    /// A fresh seed (`seed == true`) or peer for `init`; it begins at its first
    /// [`Input::Start`].
    fn start(seed: bool, init: NodeInit) -> Result<Self, SettingsError>;
    /// Feeds one input; its outputs are appended to `out`.
    fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>);
    /// When it next wants a tick.
    fn next_deadline(&self) -> Option<Millis>;
    /// A read-only view (used by end-of-phase checks, never on the hot path).
    fn status(&self) -> StatusResp;
    /// Told to leave and done with it: the simulator stops it.
    fn done(&self) -> bool {
        false
    }
}

impl Actor for Node {
    fn start(seed: bool, init: NodeInit) -> Result<Self, SettingsError> {
        if seed {
            Node::seed(init)
        } else {
            Node::peer(init)
        }
    }

    #[inline]
    fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        Node::handle(self, now, input, out)
    }

    fn next_deadline(&self) -> Option<Millis> {
        Node::next_deadline(self)
    }

    fn status(&self) -> StatusResp {
        Node::status(self)
    }

    fn done(&self) -> bool {
        Node::done(self)
    }
}
