//! The seed state machine: the membership authority. (Being built: issue #2.)

use crate::config::SettingsError;
use crate::msg::{Endpoint, StatusResp};
use crate::{Input, Millis, NodeInit, Output};

/// A seed node.
#[derive(Debug)]
pub struct Seed {
    me: Endpoint,
    outputs: Vec<Output>,
}

impl Seed {
    /// A seed for `init`. Fails if the settings do not validate or `init.me` is not a seed.
    pub fn new(init: NodeInit, now: Millis) -> Result<Seed, SettingsError> {
        let _ = now;
        Ok(Seed {
            me: init.me,
            outputs: Vec::new(),
        })
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Millis, input: Input) {
        let _ = (now, input);
        todo!("issue #2: seed state machine")
    }

    /// Takes every queued output.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// When the seed next wants a tick.
    pub fn next_deadline(&self) -> Option<Millis> {
        None
    }

    /// This seed's endpoint.
    pub fn me(&self) -> Endpoint {
        self.me
    }

    /// A read-only view.
    pub fn status(&self) -> StatusResp {
        todo!("issue #2: seed status")
    }
}
