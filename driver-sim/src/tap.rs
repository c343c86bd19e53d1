//! Taps: what observers of a run (a log, a report's recorder) see of it. The simulation and
//! the checks never depend on a tap; a tap only reads. A run without taps pays one empty
//! loop per event for them.

use gossip_core::msg::{Endpoint, Message};
use gossip_core::Event;

use crate::checker::Checker;

/// An observer of a run, added with [`crate::Sim::add_tap`].
pub trait Tap {
    /// Node `from` sent `msg` at `now` (every `Output::Send` of a simulated node).
    fn on_send(&mut self, _now: u64, _from: u32, _msg: &Message) {}

    /// Node `node` (at `endpoint`) emitted `ev` at `now`; `checker` has already seen it.
    fn on_event(
        &mut self,
        _now: u64,
        _node: u32,
        _endpoint: Endpoint,
        _ev: &Event,
        _checker: &Checker,
    ) {
    }
}

/// Prints every node event to stderr as it happens (`time node event`): `sim --log`.
#[derive(Debug, Default)]
pub struct LogTap;

impl Tap for LogTap {
    fn on_event(&mut self, now: u64, _: u32, endpoint: Endpoint, ev: &Event, _: &Checker) {
        eprintln!("{now:>9} {endpoint} {ev:?}");
    }
}
