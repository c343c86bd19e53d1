//! The `PING`s in flight, by endpoint, with who waits for each outcome.
//!
//! A neighbour probe (liveness), a candidate's degree (membership), a re-check of an
//! accusation, a witness's probe for another detector, and the check of a new neighbour's
//! `HELLO` may all want to know whether the same endpoint answers: they share one probe.
//!
//! A probe is one `PING`, or two at once for a witness (whose single answer decides a vote
//! another peer counts, with no time for a second try): any answer decides it answered;
//! silence is decided only when every `PING` of it failed.

use crate::msg::{Endpoint, Message, Ping};
use crate::{ConnId, Millis, Output};

/// Why a `PING` is sent.
pub(super) enum PingRole {
    /// A neighbour's periodic probe.
    Probe,
    /// A candidate neighbour's degree.
    Candidate,
    /// Re-checking an unsettled accusation.
    Recheck,
    /// Checking a new neighbour's `HELLO`.
    Greeter,
    /// As a witness: the detector that asked, and where to answer it.
    Witness(ConnId, Endpoint),
    /// Checking that a neighbour which said it leaves says so itself; where to answer it.
    Leaver(ConnId),
}

/// Who waits for the outcome of the probe in flight to one endpoint.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    pub probe: bool,
    pub candidate: bool,
    pub recheck: bool,
    pub greeter: bool,
    /// Detectors that asked this peer to witness: the connection to answer and who asked.
    pub witnesses: Vec<(ConnId, Endpoint)>,
    /// `LEAVE`s from the endpoint probed, to answer once it says it leaves (or does not).
    pub leavers: Vec<ConnId>,
}

impl Waiters {
    fn is_empty(&self) -> bool {
        !(self.probe || self.candidate || self.recheck || self.greeter)
            && self.witnesses.is_empty()
            && self.leavers.is_empty()
    }
}

/// One endpoint's probe: who waits, and how many of its `PING`s are still out.
#[derive(Debug)]
struct Probe {
    to: Endpoint,
    waiters: Waiters,
    outstanding: u8,
}

/// The table: a handful of entries (one per neighbour, candidate or suspect probed), looked
/// up by a scan; never iterated, so their order reaches no output.
#[derive(Debug, Default)]
pub(super) struct Pings {
    in_flight: Vec<Probe>,
    /// `PING`s sent, for the status counters.
    pub sent: u64,
}

impl Pings {
    /// Probes `to` for `role`, sharing a probe already in flight to the same endpoint.
    pub(super) fn ping(
        &mut self,
        me: Endpoint,
        to: Endpoint,
        role: PingRole,
        deadline: Millis,
        out: &mut Vec<Output>,
    ) {
        // A witness tells the suspect who suspects it, so that it can refute.
        let (tries, suspected_by): (u8, _) = match role {
            PingRole::Witness(_, detector) => (2, Some(Box::new(detector))),
            _ => (1, None),
        };
        let i = match self.in_flight.iter().position(|p| p.to == to) {
            Some(i) => i,
            None => {
                self.in_flight.push(Probe {
                    to,
                    waiters: Waiters::default(),
                    outstanding: 0,
                });
                self.in_flight.len() - 1
            }
        };
        let probe = &mut self.in_flight[i];
        // A new probe, or one whose outcome was decided while `PING`s of it are still out:
        // send this role's tries (the late answers of the old ones count for it too).
        let fresh = probe.waiters.is_empty();
        let waiters = &mut probe.waiters;
        match role {
            PingRole::Probe => waiters.probe = true,
            PingRole::Candidate => waiters.candidate = true,
            PingRole::Recheck => waiters.recheck = true,
            PingRole::Greeter => waiters.greeter = true,
            PingRole::Witness(conn, requester) => waiters.witnesses.push((conn, requester)),
            PingRole::Leaver(conn) => waiters.leavers.push(conn),
        }
        if fresh {
            probe.outstanding += tries;
            for _ in 0..tries {
                self.sent += 1;
                let msg = Message::Ping(Ping {
                    sender: me,
                    suspected_by: suspected_by.clone(),
                });
                out.push(Output::Send {
                    to,
                    msg,
                    deadline,
                    wants_response: true,
                });
            }
        }
    }

    /// A `PING` to `to` ended, answered or not: who waited for the probe, once its outcome is
    /// decided (an answer decides at once, silence when every `PING` of it failed).
    pub(super) fn settle(&mut self, to: &Endpoint, answered: bool) -> Option<Waiters> {
        let i = self.in_flight.iter().position(|p| p.to == *to)?;
        let probe = &mut self.in_flight[i];
        probe.outstanding = probe.outstanding.saturating_sub(1);
        let decided = answered || probe.outstanding == 0;
        let waiters = decided.then(|| std::mem::take(&mut probe.waiters));
        if probe.outstanding == 0 {
            self.in_flight.swap_remove(i);
        }
        waiters.filter(|w| !w.is_empty())
    }
}
