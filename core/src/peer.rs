//! The peer state machine: bootstrap, overlay, gossip, liveness. (Being built: issue #2.)

use crate::config::SettingsError;
use crate::msg::{Endpoint, StatusResp};
use crate::{Input, Millis, NodeInit, Output};

/// A peer node.
#[derive(Debug)]
pub struct Peer {
    me: Endpoint,
    outputs: Vec<Output>,
}

impl Peer {
    /// A peer for `init`. Fails if the settings do not validate.
    pub fn new(init: NodeInit, now: Millis) -> Result<Peer, SettingsError> {
        let _ = now;
        Ok(Peer {
            me: init.me,
            outputs: Vec::new(),
        })
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Millis, input: Input) {
        let _ = (now, input);
        todo!("issue #2: peer state machine")
    }

    /// Takes every queued output.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// When the peer next wants a tick.
    pub fn next_deadline(&self) -> Option<Millis> {
        None
    }

    /// This peer's endpoint.
    pub fn me(&self) -> Endpoint {
        self.me
    }

    /// A read-only view.
    pub fn status(&self) -> StatusResp {
        todo!("issue #2: peer status")
    }
}
