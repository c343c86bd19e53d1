//! What the simulator hosts: anything with the core's driver contract. [`gossip_core::Node`]
//! is the one that matters; the trait exists so the simulator's own machinery (queue, network,
//! crash bookkeeping) can be tested with tiny stand-ins, and costs nothing (monomorphised).

use gossip_core::config::SettingsError;
use gossip_core::msg::StatusResp;
use gossip_core::{Input, Millis, Node, NodeInit, Output};

/// A node the simulator can host: the contract of `gossip_core` (handle, drain, deadline).
pub trait Actor: Sized {
    /// A fresh seed (`seed == true`) or peer for `init`, started at `now`.
    fn start(seed: bool, init: NodeInit, now: Millis) -> Result<Self, SettingsError>;
    /// Feeds one input.
    fn handle(&mut self, now: Millis, input: Input);
    /// Hands every queued output, in order, to `f`.
    fn drain<F: FnMut(Output)>(&mut self, f: F);
    /// Feeds one input; its outputs end up in `out`. The simulator calls this with `out` empty
    /// and nothing queued in the node, and `Node` queues straight into `out`: every node
    /// writes into the one buffer the simulator keeps in the CPU cache.
    fn handle_into(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        self.handle(now, input);
        self.drain(|o| out.push(o));
    }
    /// When it next wants a tick.
    fn next_deadline(&self) -> Option<Millis>;
    /// A read-only view (used by end-of-phase checks, never on the hot path).
    fn status(&self) -> StatusResp;
}

impl Actor for Node {
    fn start(seed: bool, init: NodeInit, now: Millis) -> Result<Self, SettingsError> {
        if seed {
            Node::seed(init, now)
        } else {
            Node::peer(init, now)
        }
    }

    fn handle(&mut self, now: Millis, input: Input) {
        Node::handle(self, now, input)
    }

    fn drain<F: FnMut(Output)>(&mut self, f: F) {
        self.drain_outputs().for_each(f);
    }

    #[inline]
    fn handle_into(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        self.swap_outputs(out);
        Node::handle(self, now, input);
        self.swap_outputs(out);
    }

    fn next_deadline(&self) -> Option<Millis> {
        Node::next_deadline(self)
    }

    fn status(&self) -> StatusResp {
        Node::status(self)
    }
}
