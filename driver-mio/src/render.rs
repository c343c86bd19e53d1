//! Events rendered as the log lines of the spec's validation checklist.
//!
//! Each line starts with the phrase the checklist greps for (`Generated gossip: <text>`,
//! `First-time gossip received: <text> from <ip:port>`, `Dead-node consensus COMMIT for
//! <ip:port> ...`), then details, then a tag naming the node that logged it and when:
//! `[peer 127.0.0.2:6001 t=1767225600.123]`. Probes are never logged.
//!
//! A seed logs `Registration consensus COMMIT` / `Dead-node consensus COMMIT` each time its
//! Peer List changes (`EntryChanged`), whether its own round won, a commit sync or
//! anti-entropy brought the change; the line says which. So every seed that applies a change
//! logs it exactly once, and the proposer does not log it twice: its round's end
//! (`Decided`) is logged as `... proposal <id> ... won`, without the word COMMIT. An aborted
//! round, or a report refused at once (`already removed`), is logged as
//! `... consensus ABORT for <ip:port> ...`.

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

/// How a seed learned of a change, as its COMMIT line says it.
fn source(via: ChangeSource) -> &'static str {
    match via {
        ChangeSource::LocalCommit => "own round",
        ChangeSource::CommitSync => "commit sync",
        ChangeSource::AntiEntropy => "anti-entropy",
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
                ProposalKind::Leave => "Leave proposal",
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
                ProposalKind::Leave => "leave",
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
            decision: Decision::Commit,
            yes_votes,
            quorum,
            reason,
        } => {
            // The change itself is logged by `EntryChanged` (the checklist's COMMIT line), at
            // this seed as at every other: this line only closes the round.
            let what = match kind {
                ProposalKind::Register => "Registration proposal",
                ProposalKind::Removal => "Dead-node proposal",
                ProposalKind::Leave => "Leave proposal",
            };
            (
                Output,
                format!(
                    "{what} {proposal_id} for {peer} (incarnation {incarnation}) won: \
                     yes={yes_votes} quorum={quorum}, {reason}"
                ),
            )
        }
        Event::Decided {
            kind,
            proposal_id,
            peer,
            incarnation,
            decision: Decision::Abort,
            yes_votes,
            quorum,
            reason,
        } => {
            let what = match kind {
                ProposalKind::Register => "Registration consensus",
                ProposalKind::Removal => "Dead-node consensus",
                ProposalKind::Leave => "Leave consensus",
            };
            // A report refused at once (already removed, unknown peer) had no round.
            let round = if proposal_id.is_empty() {
                String::new()
            } else {
                format!(" [{proposal_id}]")
            };
            (
                Output,
                format!(
                    "{what} ABORT for {peer} (incarnation {incarnation}): yes={yes_votes} \
                     quorum={quorum}, {reason}{round}"
                ),
            )
        }
        Event::EntryChanged { entry, via } => {
            let (what, change) = match entry.status {
                Status::Alive => ("Registration consensus", "admitted to"),
                Status::Removed => ("Dead-node consensus", "removed from"),
                Status::Left => ("Leave consensus", "left"),
            };
            (
                Output,
                format!(
                    "{what} COMMIT for {} (incarnation {}) via {}: {change} the Peer List \
                     (votes: {})",
                    entry.peer,
                    entry.incarnation,
                    source(*via),
                    list(&entry.votes)
                ),
            )
        }
        Event::EntryReaped { entry } => (
            Detail,
            format!(
                "Forgot {} (incarnation {}, {}): its tombstone period passed",
                entry.peer,
                entry.incarnation,
                match entry.status {
                    Status::Alive => "alive",
                    Status::Removed => "removed",
                    Status::Left => "left",
                }
            ),
        ),
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
        Event::GossipFirstReceived {
            text,
            from,
            hops,
            repaired: false,
        } => (
            Output,
            format!("First-time gossip received: {text} from {from} (hops={hops})"),
        ),
        Event::GossipFirstReceived {
            text,
            from,
            repaired: true,
            ..
        } => (
            Output,
            format!("First-time gossip received: {text} from {from} (by repair)"),
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
        Event::AppPublished { body } => {
            let (name, bytes) = app_summary(body);
            (
                Output,
                format!(
                    "Published application message: {}{name} ({bytes} bytes)",
                    body.text
                ),
            )
        }
        Event::AppDelivered {
            body,
            from,
            hops,
            repaired,
        } => {
            let (name, bytes) = app_summary(body);
            let how = match repaired {
                true => "by repair".to_string(),
                false => format!("hops={hops}"),
            };
            (
                Output,
                format!(
                    "Application message received: {}{name} ({bytes} bytes) from {from} ({how})",
                    body.text
                ),
            )
        }
        Event::PublishRefused { reason, .. } => (Output, format!("Publish refused: {reason}")),
        Event::Leaving {
            incarnation,
            seeds,
            neighbours,
        } => (
            Output,
            format!(
                "Leaving the network: incarnation {incarnation}, asking {} seeds to certify \
                 LEFT ({}), telling {} neighbours ({})",
                seeds.len(),
                list(seeds),
                neighbours.len(),
                list(neighbours)
            ),
        ),
        Event::Left { seeds, neighbours } if seeds.is_empty() => (
            Output,
            format!(
                "Left the network without a certificate: no seed could certify LEFT ({neighbours} \
                 neighbours dropped the link); failure detection removes this peer instead"
            ),
        ),
        Event::Left { seeds, neighbours } => (
            Output,
            format!(
                "Left the network: LEFT certified by the round of {} ({neighbours} neighbours \
                 dropped the link)",
                list(seeds)
            ),
        ),
        Event::Stopping { rounds } => (
            Output,
            format!("Shutting down: no new rounds; {rounds} rounds in flight finish first"),
        ),
        Event::Stopped => (Output, "Shut down: every round finished".to_string()),
        Event::BadInput { reason } => (Detail, format!("Bad input answered: {reason}")),
        #[allow(unreachable_patterns)]
        other => (Detail, format!("{other:?}")),
    }
}

/// An application message's name (as ` name=<name>`, or nothing) and payload size: its
/// payload is the application's, never logged.
fn app_summary(body: &gossip_core::msg::GossipBody) -> (String, usize) {
    match &body.app {
        Some(app) => (
            app.name
                .as_deref()
                .map_or_else(String::new, |n| format!(" name={n:?}")),
            app.data.len(),
        ),
        None => (String::new(), 0),
    }
}

/// The tag closing every line: `[peer 127.0.0.2:6001 t=1767225600.123]`.
pub fn tag(role: Role, me: SocketAddr, unix_ms: u64) -> String {
    format!("[{role} {me} t={}.{:03}]", unix_ms / 1000, unix_ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_core::msg::Entry;

    fn ep(s: &str) -> SocketAddr {
        s.parse().expect("endpoint")
    }

    fn changed(status: Status, via: ChangeSource) -> Event {
        Event::EntryChanged {
            entry: Entry {
                peer: ep("127.0.0.5:6004"),
                incarnation: 1,
                status,
                votes: vec![ep("127.0.0.1:5001"), ep("127.0.0.1:5002")],
            },
            via,
        }
    }

    fn decided(kind: ProposalKind, id: &str, decision: Decision, reason: &'static str) -> Event {
        Event::Decided {
            kind,
            proposal_id: id.to_string(),
            peer: ep("127.0.0.5:6004"),
            incarnation: 1,
            decision,
            yes_votes: u32::from(decision == Decision::Commit) * 2,
            quorum: 2,
            reason,
        }
    }

    #[test]
    fn every_applied_change_is_a_checklist_commit_line_saying_how_it_was_learned() {
        let cases = [
            (
                changed(Status::Removed, ChangeSource::LocalCommit),
                "Dead-node consensus COMMIT for 127.0.0.5:6004 (incarnation 1) via own round: \
                 removed from the Peer List (votes: 127.0.0.1:5001, 127.0.0.1:5002)",
            ),
            (
                changed(Status::Removed, ChangeSource::CommitSync),
                "Dead-node consensus COMMIT for 127.0.0.5:6004 (incarnation 1) via commit sync: \
                 removed from the Peer List (votes: 127.0.0.1:5001, 127.0.0.1:5002)",
            ),
            (
                changed(Status::Alive, ChangeSource::AntiEntropy),
                "Registration consensus COMMIT for 127.0.0.5:6004 (incarnation 1) via \
                 anti-entropy: admitted to the Peer List (votes: 127.0.0.1:5001, 127.0.0.1:5002)",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(render(&event), (Level::Output, want.to_string()));
        }
    }

    #[test]
    fn a_won_round_is_not_a_second_commit_line_and_aborts_stay() {
        let (level, won) = render(&decided(
            ProposalKind::Removal,
            "127.0.0.1:5001#3",
            Decision::Commit,
            "quorum reached",
        ));
        assert_eq!(level, Level::Output);
        assert_eq!(
            won,
            "Dead-node proposal 127.0.0.1:5001#3 for 127.0.0.5:6004 (incarnation 1) won: \
             yes=2 quorum=2, quorum reached"
        );
        assert!(!won.contains("COMMIT"), "{won}");
        assert_eq!(
            render(&decided(
                ProposalKind::Removal,
                "",
                Decision::Abort,
                "already removed"
            ))
            .1,
            "Dead-node consensus ABORT for 127.0.0.5:6004 (incarnation 1): yes=0 quorum=2, \
             already removed"
        );
        assert_eq!(
            render(&decided(
                ProposalKind::Register,
                "127.0.0.1:5002#9",
                Decision::Abort,
                "quorum lost"
            ))
            .1,
            "Registration consensus ABORT for 127.0.0.5:6004 (incarnation 1): yes=0 quorum=2, \
             quorum lost [127.0.0.1:5002#9]"
        );
    }
}
