//! The `PING`s in flight, by endpoint, with who waits for each outcome.
//!
//! A neighbour probe (liveness), a candidate's degree (membership), a re-check of an
//! accusation, a witness's probe for another detector, and the check of a new neighbour's
//! `HELLO` may all want to know whether the same endpoint answers: they share one `PING` and
//! its single response.

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
}

/// Who waits for the outcome of the `PING` in flight to one endpoint.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    pub probe: bool,
    pub candidate: bool,
    pub recheck: bool,
    pub greeter: bool,
    /// Detectors that asked this peer to witness: the connection to answer and who asked.
    pub witnesses: Vec<(ConnId, Endpoint)>,
}

/// The table: a handful of entries (one per neighbour, candidate or suspect probed), looked
/// up by a scan; never iterated, so their order reaches no output.
#[derive(Debug, Default)]
pub(super) struct Pings {
    in_flight: Vec<(Endpoint, Waiters)>,
    /// `PING`s sent, for the status counters.
    pub sent: u64,
}

impl Pings {
    /// Pings `to` for `role`, sharing a `PING` already in flight to the same endpoint.
    pub(super) fn ping(
        &mut self,
        me: Endpoint,
        to: Endpoint,
        role: PingRole,
        deadline: Millis,
        out: &mut Vec<Output>,
    ) {
        let (fresh, waiters) = match self.in_flight.iter().position(|(p, _)| *p == to) {
            Some(i) => (false, &mut self.in_flight[i].1),
            None => {
                self.in_flight.push((to, Waiters::default()));
                let last = self.in_flight.len() - 1;
                (true, &mut self.in_flight[last].1)
            }
        };
        match role {
            PingRole::Probe => waiters.probe = true,
            PingRole::Candidate => waiters.candidate = true,
            PingRole::Recheck => waiters.recheck = true,
            PingRole::Greeter => waiters.greeter = true,
            PingRole::Witness(conn, requester) => waiters.witnesses.push((conn, requester)),
        }
        if fresh {
            self.sent += 1;
            let msg = Message::Ping(Ping { sender: me });
            out.push(Output::Send {
                to,
                msg,
                deadline,
                wants_response: true,
            });
        }
    }

    /// The `PING` to `to` ended: who waited for it.
    pub(super) fn take(&mut self, to: &Endpoint) -> Option<Waiters> {
        let i = self.in_flight.iter().position(|(p, _)| p == to)?;
        Some(self.in_flight.swap_remove(i).1)
    }
}
