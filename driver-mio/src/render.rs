//! Events rendered as the log lines of the spec's validation checklist.
//!
//! Each line starts with the phrase the checklist greps for (`Generated gossip: <text>`,
//! `First-time gossip received: <text> from <ip:port>`, `Dead-node consensus COMMIT for
//! <ip:port> ...`), then details, then a tag naming the node that logged it and when:
//! `[peer 127.0.0.2:6001 t=1767225600.123]`. Probes are never logged.

use std::fmt::Write as _;
use std::net::SocketAddr;

use gossip_core::event::{ChangeSource, ProposalKind};
use gossip_core::msg::{Decision, Status};
use gossip_core::Event;

/// Which kind of node logged a line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A seed.
    Seed,
    /// A peer.
    Peer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Seed => "seed",
            Role::Peer => "peer",
        })
    }
}

/// How important a rendered line is: checklist lines go to the output file; detail lines
/// only to the `log` facade (`RUST_LOG=debug`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// Written to stdout and the output file.
    Output,
    /// Written through `log::debug!` only.
    Detail,
}

fn list(eps: &[SocketAddr]) -> String {
    if eps.is_empty() {
        return "none".to_string();
    }
    let mut s = String::new();
    for (i, ep) in eps.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{ep}");
    }
    s
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn decision(d: Decision) -> &'static str {
    match d {
        Decision::Commit => "COMMIT",
        Decision::Abort => "ABORT",
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Alive => "ALIVE",
        Status::Removed => "REMOVED",
    }
}

/// The line for `event` (without the node tag), and where it goes.
pub fn render(event: &Event) -> (Level, String) {
    use Level::{Detail, Output};
    match event {
        Event::Proposed {
            kind,
            proposal_id,
            peer,
            incarnation,
        } => {
            let what = match kind {
                ProposalKind::Register => "Registration proposal",
                ProposalKind::Removal => "Dead-node proposal",
            };
            (
                Output,
                format!("{what} {proposal_id} for {peer} (incarnation {incarnation})"),
            )
        }
        Event::VoteCast {
            kind,
            proposal_id,
            peer,
            incarnation,
            yes,
            proposer,
        } => {
            let what = match kind {
                ProposalKind::Register => "registration",
                ProposalKind::Removal => "dead-node",
            };
            let vote = if *yes { "YES" } else { "NO" };
            (
                Output,
                format!(
                    "Vote {vote} on {what} proposal {proposal_id} for {peer} \
                     (incarnation {incarnation}) from {proposer}"
                ),
            )
        }
        Event::Decided {
            kind,
            proposal_id,
            peer,
            incarnation,
            decision: d,
            yes_votes,
            quorum,
            reason,
        } => {
            let what = match kind {
                ProposalKind::Register => "Registration consensus",
                ProposalKind::Removal => "Dead-node consensus",
            };
            (
                Output,
                format!(
                    "{what} {} for {peer} (incarnation {incarnation}): yes={yes_votes} \
                     quorum={quorum}, {reason} [{proposal_id}]",
                    decision(*d)
                ),
            )
        }
        Event::EntryChanged { entry, via } => {
            let via = match via {
                ChangeSource::LocalCommit => "own round",
                ChangeSource::CommitSync => "commit sync",
                ChangeSource::AntiEntropy => "anti-entropy",
            };
            (
                Output,
                format!(
                    "Peer List updated: {} incarnation {} {} via {via} (votes: {})",
                    entry.peer,
                    entry.incarnation,
                    status(entry.status),
                    list(&entry.votes)
                ),
            )
        }
        Event::PeerListServed { requester, count } => (
            Output,
            format!("Peer list served to {requester}: {count} peers"),
        ),
        Event::RegistrationQuorum { seeds, incarnation } => (
            Output,
            format!(
                "Registration quorum achieved: {} seeds accepted ({}), incarnation {incarnation}",
                seeds.len(),
                list(seeds)
            ),
        ),
        Event::RegistrationFailed {
            successes,
            needed,
            retry_at,
        } => (
            Output,
            format!(
                "Registration failed: {successes}/{needed} seeds accepted, retrying at t+{} ms",
                retry_at.0
            ),
        ),
        Event::BootstrapComplete {
            neighbours,
            known_peers,
        } => (
            Output,
            format!(
                "Bootstrap complete: {} neighbours ({}), {known_peers} known peers",
                neighbours.len(),
                list(neighbours)
            ),
        ),
        Event::NeighbourAdded { peer, their_degree } => (
            Output,
            format!("Neighbor added: {peer} (its degree {their_degree})"),
        ),
        Event::NeighbourDropped { peer, reason } => {
            (Output, format!("Neighbor dropped: {peer} ({reason})"))
        }
        Event::GossipGenerated { text, msg_no } => {
            (Output, format!("Generated gossip: {text} (#{msg_no})"))
        }
        Event::GossipFirstReceived { text, from, hops } => (
            Output,
            format!("First-time gossip received: {text} from {from} (hops={hops})"),
        ),
        Event::GossipDuplicate { text, from } => (
            Output,
            format!("Duplicate gossip ignored: {text} from {from}"),
        ),
        Event::SuspicionRaised {
            suspect,
            misses,
            witnesses,
        } => (
            Output,
            format!(
                "Neighbor suspicion triggered for {suspect}: {misses} missed probes, \
                 asking witnesses {}",
                list(witnesses)
            ),
        ),
        Event::SuspectAnswered {
            suspect,
            requester,
            alive,
        } => (
            Output,
            format!(
                "Suspicion check for {suspect} asked by {requester}: alive={}",
                py_bool(*alive)
            ),
        ),
        Event::SuspicionVerdict {
            suspect,
            dead_votes,
            alive_votes,
            dead_witnesses,
            consensus,
        } => (
            Output,
            format!(
                "Peer-level suspicion result for {suspect}: dead={dead_votes} \
                 alive={alive_votes} consensus={} (witnesses saying dead: {})",
                py_bool(*consensus),
                list(dead_witnesses)
            ),
        ),
        Event::DeadReported { text, seeds, .. } => (
            Output,
            format!("{text} (DEAD_REPORT sent to {})", list(seeds)),
        ),
        Event::DeadReportOutcome {
            suspect,
            seed,
            success,
        } => (
            Output,
            format!(
                "DEAD_REPORT for {suspect} at seed {seed}: {}",
                if *success { "COMMIT" } else { "ABORT" }
            ),
        ),
        Event::Rejoining {
            removed_incarnation,
        } => (
            Output,
            format!(
                "Removed from the Peer List (incarnation {removed_incarnation}): registering again"
            ),
        ),
        Event::BadInput { reason } => (Detail, format!("Bad input answered: {reason}")),
        #[allow(unreachable_patterns)]
        other => (Detail, format!("{other:?}")),
    }
}

/// The tag closing every line: `[peer 127.0.0.2:6001 t=1767225600.123]`.
pub fn tag(role: Role, me: SocketAddr, unix_ms: u64) -> String {
    format!("[{role} {me} t={}.{:03}]", unix_ms / 1000, unix_ms % 1000)
}
