//! Events as JSON lines: what `gossipctl watch` streams and `--events FILE` records (the
//! format is in `docs/CONTROL.md`). The human log lines are `render.rs`'s; both say what the
//! core's [`Event`] says, and nothing parses either back.

use std::fmt::Write as _;
use std::net::SocketAddr;

use gossip_core::event::{ChangeSource, ProposalKind};
use gossip_core::msg::{Decision, Status};
use gossip_core::Event;
use serde_json::{json, Map, Value};

/// What an event is about, for a watcher's `types` filter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Category {
    /// Application messages: published, delivered.
    Gossip,
    /// Registration, bootstrap, rejoining; a seed's Peer List changes.
    Member,
    /// Overlay links up and down.
    Link,
    /// Suspicions, verdicts, witness answers, dead reports.
    Suspect,
    /// A seed's proposals and votes.
    Vote,
    /// A seed's rounds ending (COMMIT or ABORT).
    Commit,
    /// The spec's own gossip (`<timestamp>:<IP>:<Msg#>`).
    Synthetic,
    /// Requests answered `ERROR`.
    Error,
}

impl Category {
    /// Every category, in the order of [`Category::bit`].
    pub const ALL: [Category; 8] = [
        Category::Gossip,
        Category::Member,
        Category::Link,
        Category::Suspect,
        Category::Vote,
        Category::Commit,
        Category::Synthetic,
        Category::Error,
    ];

    /// The name a watcher asks for and an event line carries as `type`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Gossip => "gossip",
            Category::Member => "member",
            Category::Link => "link",
            Category::Suspect => "suspect",
            Category::Vote => "vote",
            Category::Commit => "commit",
            Category::Synthetic => "synthetic",
            Category::Error => "error",
        }
    }

    /// The category named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }

    /// This category's bit in a filter mask.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The category of `event` and its name in an event line, or `None` for an event no program
/// is shown (a refused publish: the publisher's reply says it).
pub fn classify(event: &Event) -> Option<(Category, &'static str)> {
    use Category::*;
    Some(match event {
        Event::AppPublished { .. } => (Gossip, "published"),
        Event::AppDelivered { .. } => (Gossip, "delivered"),
        Event::PublishRefused { .. } => return None,
        Event::GossipGenerated { .. } => (Synthetic, "generated"),
        Event::GossipFirstReceived { .. } => (Synthetic, "received"),
        Event::GossipDuplicate { .. } => (Synthetic, "duplicate"),
        Event::RegistrationQuorum { .. } => (Member, "registered"),
        Event::RegistrationFailed { .. } => (Member, "registration_failed"),
        Event::BootstrapComplete { .. } => (Member, "bootstrapped"),
        Event::Rejoining { .. } => (Member, "rejoining"),
        Event::EntryChanged { .. } => (Member, "entry_changed"),
        Event::EntryReaped { .. } => (Member, "entry_reaped"),
        Event::PeerListServed { .. } => (Member, "peer_list_served"),
        Event::NeighbourAdded { .. } => (Link, "neighbour_added"),
        Event::NeighbourDropped { .. } => (Link, "neighbour_dropped"),
        Event::SuspicionRaised { .. } => (Suspect, "suspicion_raised"),
        Event::SuspectAnswered { .. } => (Suspect, "suspect_answered"),
        Event::SuspicionVerdict { .. } => (Suspect, "suspicion_verdict"),
        Event::DeadReported { .. } => (Suspect, "dead_reported"),
        Event::DeadReportOutcome { .. } => (Suspect, "dead_report_outcome"),
        Event::Proposed { .. } => (Vote, "proposed"),
        Event::VoteCast { .. } => (Vote, "vote_cast"),
        Event::Decided { .. } => (Commit, "decided"),
        Event::Leaving { .. } => (Member, "leaving"),
        Event::Left { .. } => (Member, "left"),
        Event::Stopping { .. } => (Member, "stopping"),
        Event::Stopped => (Member, "stopped"),
        Event::BadInput { .. } => (Error, "bad_input"),
    })
}

/// The application message name of `event`, if it is about one that has a name.
pub fn app_name(event: &Event) -> Option<&str> {
    match event {
        Event::AppPublished { body } | Event::AppDelivered { body, .. } => {
            body.app.as_ref()?.name.as_deref()
        }
        _ => None,
    }
}

fn eps(list: &[SocketAddr]) -> Value {
    Value::Array(list.iter().map(|e| Value::String(e.to_string())).collect())
}

fn kind(k: ProposalKind) -> &'static str {
    match k {
        ProposalKind::Register => "register",
        ProposalKind::Removal => "removal",
        ProposalKind::Leave => "leave",
    }
}

/// `event` at node `me` as one JSON line (no newline), or `None` if it is not shown.
pub fn to_line(me: SocketAddr, unix_ms: u64, event: &Event) -> Option<String> {
    let (category, name) = classify(event)?;
    let mut m = Map::new();
    m.insert("type".into(), category.name().into());
    m.insert("event".into(), name.into());
    m.insert("node".into(), me.to_string().into());
    m.insert("at_ms".into(), unix_ms.into());
    let fields = match event {
        Event::AppPublished { body } => {
            let app = body.app.as_deref();
            json!({
                "id": &*body.text,
                "name": app.and_then(|a| a.name.as_deref()),
                "bytes": app.map_or(0, |a| a.data.len()),
            })
        }
        Event::AppDelivered {
            body,
            from,
            hops,
            repaired,
        } => {
            let app = body.app.as_deref();
            let origin = body
                .origin_port
                .map(|p| SocketAddr::new(body.origin_ip, p).to_string());
            let published = app.map_or(unix_ms, |a| a.published_ms);
            json!({
                "id": &*body.text,
                "origin": origin,
                "from": from.to_string(),
                "name": app.and_then(|a| a.name.as_deref()),
                "data": app.map(|a| &*a.data),
                "hops": (!repaired).then_some(*hops),
                "by_repair": repaired,
                "age_ms": unix_ms.saturating_sub(published),
            })
        }
        Event::GossipGenerated { text, msg_no } => json!({ "text": &**text, "msg_no": msg_no }),
        Event::GossipFirstReceived {
            text,
            from,
            hops,
            repaired,
        } => json!({
            "text": &**text,
            "from": from.to_string(),
            "hops": (!repaired).then_some(*hops),
            "by_repair": repaired,
        }),
        Event::GossipDuplicate { text, from } => {
            json!({ "text": &**text, "from": from.to_string() })
        }
        Event::RegistrationQuorum { seeds, incarnation } => {
            json!({ "seeds": eps(seeds), "incarnation": incarnation })
        }
        Event::RegistrationFailed {
            successes, needed, ..
        } => json!({ "successes": successes, "needed": needed }),
        Event::BootstrapComplete {
            neighbours,
            known_peers,
        } => json!({ "neighbours": eps(neighbours), "known_peers": known_peers }),
        Event::Rejoining {
            removed_incarnation,
        } => json!({ "removed_incarnation": removed_incarnation }),
        Event::EntryChanged { entry, via } => json!({
            "peer": entry.peer.to_string(),
            "incarnation": entry.incarnation,
            "status": match entry.status {
                Status::Alive => "alive",
                Status::Removed => "removed",
                Status::Left => "left",
            },
            "votes": eps(&entry.votes),
            "via": match via {
                ChangeSource::LocalCommit => "own_round",
                ChangeSource::CommitSync => "commit_sync",
                ChangeSource::AntiEntropy => "anti_entropy",
            },
        }),
        Event::EntryReaped { entry } => json!({
            "peer": entry.peer.to_string(),
            "incarnation": entry.incarnation,
            "status": match entry.status {
                Status::Alive => "alive",
                Status::Removed => "removed",
                Status::Left => "left",
            },
        }),
        Event::PeerListServed { requester, count } => {
            json!({ "requester": requester, "count": count })
        }
        Event::NeighbourAdded { peer, their_degree } => {
            json!({ "peer": peer.to_string(), "their_degree": their_degree })
        }
        Event::NeighbourDropped { peer, reason } => {
            json!({ "peer": peer.to_string(), "reason": reason })
        }
        Event::SuspicionRaised {
            suspect,
            misses,
            witnesses,
        } => json!({
            "suspect": suspect.to_string(),
            "misses": misses,
            "witnesses": eps(witnesses),
        }),
        Event::SuspectAnswered {
            suspect,
            requester,
            alive,
        } => json!({
            "suspect": suspect.to_string(),
            "requester": requester.to_string(),
            "alive": alive,
        }),
        Event::SuspicionVerdict {
            suspect,
            dead_votes,
            alive_votes,
            dead_witnesses,
            consensus,
        } => json!({
            "suspect": suspect.to_string(),
            "dead_votes": dead_votes,
            "alive_votes": alive_votes,
            "dead_witnesses": eps(dead_witnesses),
            "consensus": consensus,
        }),
        Event::DeadReported {
            suspect,
            text,
            seeds,
        } => json!({ "suspect": suspect.to_string(), "text": text, "seeds": eps(seeds) }),
        Event::DeadReportOutcome {
            suspect,
            seed,
            success,
        } => json!({
            "suspect": suspect.to_string(),
            "seed": seed.to_string(),
            "success": success,
        }),
        Event::Proposed {
            kind: k,
            proposal_id,
            peer,
            incarnation,
        } => json!({
            "kind": kind(*k),
            "proposal_id": proposal_id,
            "peer": peer.to_string(),
            "incarnation": incarnation,
        }),
        Event::VoteCast {
            kind: k,
            proposal_id,
            peer,
            incarnation,
            yes,
            proposer,
        } => json!({
            "kind": kind(*k),
            "proposal_id": proposal_id,
            "peer": peer.to_string(),
            "incarnation": incarnation,
            "yes": yes,
            "proposer": proposer.to_string(),
        }),
        Event::Decided {
            kind: k,
            proposal_id,
            peer,
            incarnation,
            decision,
            yes_votes,
            quorum,
            reason,
        } => json!({
            "kind": kind(*k),
            "proposal_id": proposal_id,
            "peer": peer.to_string(),
            "incarnation": incarnation,
            "decision": match decision { Decision::Commit => "COMMIT", Decision::Abort => "ABORT" },
            "yes_votes": yes_votes,
            "quorum": quorum,
            "reason": reason,
        }),
        Event::Leaving {
            incarnation,
            seeds,
            neighbours,
        } => json!({
            "incarnation": incarnation,
            "seeds": eps(seeds),
            "neighbours": eps(neighbours),
        }),
        Event::Left { seeds, neighbours } => json!({
            "certified_by": eps(seeds),
            "certified": !seeds.is_empty(),
            "neighbours": neighbours,
        }),
        Event::Stopping { rounds } => json!({ "rounds": rounds }),
        Event::Stopped => json!({}),
        Event::BadInput { reason } => json!({ "reason": reason }),
        Event::PublishRefused { .. } => return None,
    };
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    Some(Value::Object(m).to_string())
}

/// The line a watcher that fell behind gets once it has room again.
pub fn dropped_line(count: u64) -> String {
    let mut s = String::with_capacity(40);
    let _ = write!(s, "{{\"type\":\"dropped\",\"count\":{count}}}");
    s
}
