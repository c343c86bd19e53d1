//! Observable events: what drivers log and what tests and the simulator's invariant checker
//! assert on. Each carries the data its log line needs.

use std::sync::Arc;

use crate::msg::{Decision, Endpoint, Entry, GossipBody};
use crate::Millis;

/// Which kind of seed vote round.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProposalKind {
    /// Admit a peer (`REGISTER_VOTE` / `REGISTER_COMMIT`).
    Register,
    /// Remove a dead peer (`SEED_DEAD_VOTE` / `SEED_DEAD_COMMIT`).
    Removal,
    /// Certify that a peer left (`LEAVE_VOTE` / `LEAVE_COMMIT`).
    Leave,
}

/// How a seed learned of a Peer List change.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChangeSource {
    /// Its own proposal won a quorum.
    LocalCommit,
    /// Another seed's commit sync (`REGISTER_COMMIT` / `SEED_DEAD_COMMIT` with a certificate).
    CommitSync,
    /// Anti-entropy (`SEED_SYNC`).
    AntiEntropy,
}

/// Something observable a node did or learned.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    // ----- seeds -----
    /// A seed started a vote round.
    Proposed {
        /// Register or removal.
        kind: ProposalKind,
        /// The round's id.
        proposal_id: String,
        /// The peer concerned.
        peer: Endpoint,
        /// The incarnation proposed (register) or accused (removal).
        incarnation: u64,
    },
    /// This seed cast a vote, its own proposal's self-vote included. Ghost state: the
    /// simulator checks every certificate against the votes really cast.
    VoteCast {
        /// Register or removal.
        kind: ProposalKind,
        /// The round voted in.
        proposal_id: String,
        /// The peer concerned.
        peer: Endpoint,
        /// The incarnation voted on.
        incarnation: u64,
        /// Yes or no.
        yes: bool,
        /// The proposing seed.
        proposer: Endpoint,
    },
    /// A round this seed proposed ended.
    /// Log: `Registration consensus COMMIT for ip:port ...` / `Dead-node consensus COMMIT for ip:port ...`.
    Decided {
        /// Register or removal.
        kind: ProposalKind,
        /// The round.
        proposal_id: String,
        /// The peer concerned.
        peer: Endpoint,
        /// The incarnation.
        incarnation: u64,
        /// COMMIT or ABORT.
        decision: Decision,
        /// Yes votes counted.
        yes_votes: u32,
        /// Votes needed.
        quorum: u32,
        /// Why, in a few words (`quorum reached`, `deadline`, `already removed`, ...).
        reason: &'static str,
    },
    /// This seed's Peer List entry for a peer moved up, with the certificate that backs it.
    EntryChanged {
        /// The new entry.
        entry: Entry,
        /// How the change arrived.
        via: ChangeSource,
    },
    /// A removed or left entry was forgotten: its tombstone period passed.
    EntryReaped {
        /// The entry forgotten.
        entry: Entry,
    },
    /// A seed answered `PEER_LIST_REQ`.
    PeerListServed {
        /// Who asked (as they said).
        requester: String,
        /// How many peers were listed.
        count: u32,
    },

    // ----- peers -----
    /// Log: `Registration quorum achieved ...`.
    RegistrationQuorum {
        /// The seeds that said success.
        seeds: Vec<Endpoint>,
        /// The incarnation admitted.
        incarnation: u64,
    },
    /// Fewer than a quorum of seeds said success; registration starts over at `retry_at`.
    RegistrationFailed {
        /// Successes gathered.
        successes: u32,
        /// Successes needed.
        needed: u32,
        /// When it tries again.
        retry_at: Millis,
    },
    /// Log: `Bootstrap complete ...`: registered, Peer Lists fetched, neighbours greeted.
    BootstrapComplete {
        /// The neighbours it has.
        neighbours: Vec<Endpoint>,
        /// How many peers it knows of.
        known_peers: u32,
    },
    /// A link of the overlay was made.
    NeighbourAdded {
        /// The neighbour.
        peer: Endpoint,
        /// The neighbour's degree, as it said.
        their_degree: u32,
    },
    /// A link of the overlay was dropped.
    NeighbourDropped {
        /// The former neighbour.
        peer: Endpoint,
        /// Why (`dead`, `removed`, ...).
        reason: &'static str,
    },
    /// Log: `Generated gossip: <text>`.
    GossipGenerated {
        /// `<timestamp>:<IP>:<Msg#>`.
        text: Arc<str>,
        /// 1-based.
        msg_no: u32,
    },
    /// Log: `First-time gossip received: <text> from <ip:port>` (with ` (by repair)` when it
    /// came in the reply to a pull).
    GossipFirstReceived {
        /// The gossip text.
        text: Arc<str>,
        /// The neighbour it came from.
        from: Endpoint,
        /// Links it travelled to get here (0 when pulled: a pulled copy does not say).
        hops: u32,
        /// It came in the reply to this peer's pull (`GOSSIP_PULL`, the repair), not
        /// pushed.
        repaired: bool,
    },
    /// This peer broadcast an application message (the answer to [`crate::Input::Publish`]).
    AppPublished {
        /// The message (its id is `body.text`).
        body: Arc<GossipBody>,
    },
    /// A publish was refused; nothing was sent (the answer to [`crate::Input::Publish`]).
    PublishRefused {
        /// Why, in a sentence.
        reason: String,
        /// Over the publish rate: when a publish would pass.
        retry_after_ms: Option<u64>,
    },
    /// An application message reached this peer for the first time.
    AppDelivered {
        /// The message.
        body: Arc<GossipBody>,
        /// The neighbour it came from.
        from: Endpoint,
        /// Links it travelled to get here (0 when pulled).
        hops: u32,
        /// It came in the reply to this peer's pull (the repair), not pushed.
        repaired: bool,
    },
    /// Log: `Duplicate gossip ignored: <text>`.
    GossipDuplicate {
        /// The gossip text.
        text: Arc<str>,
        /// The neighbour it came from.
        from: Endpoint,
    },
    /// Log: `Neighbor suspicion triggered for <ip:port> ...`: misses reached the threshold and
    /// witnesses were asked.
    SuspicionRaised {
        /// The neighbour suspected.
        suspect: Endpoint,
        /// Consecutive missed probes.
        misses: u32,
        /// The peers asked to probe it.
        witnesses: Vec<Endpoint>,
    },
    /// As a witness, this peer probed a suspect for a detector and answered.
    SuspectAnswered {
        /// The suspect.
        suspect: Endpoint,
        /// The detector that asked.
        requester: Endpoint,
        /// What the probe showed.
        alive: bool,
    },
    /// Log: `Peer-level suspicion result for <ip:port>: dead=.. alive=.. consensus=True|False`.
    SuspicionVerdict {
        /// The suspect.
        suspect: Endpoint,
        /// Votes for dead, the detector's own included.
        dead_votes: u32,
        /// Votes for alive.
        alive_votes: u32,
        /// The witnesses that said dead.
        dead_witnesses: Vec<Endpoint>,
        /// True when a majority of votes, at least one a witness's, said dead.
        consensus: bool,
    },
    /// Log: the `Dead Node:...` text: a `DEAD_REPORT` went to these seeds.
    DeadReported {
        /// The dead peer.
        suspect: Endpoint,
        /// `Dead Node:<DeadNode.IP>:<DeadNode.Port>:<timestamp>:<self.IP>`.
        text: String,
        /// The seeds reported to.
        seeds: Vec<Endpoint>,
    },
    /// A seed answered a `DEAD_REPORT`.
    DeadReportOutcome {
        /// The dead peer.
        suspect: Endpoint,
        /// The seed.
        seed: Endpoint,
        /// The seed's round committed.
        success: bool,
    },
    /// This peer learned that it was removed from the Peer List and registers again.
    Rejoining {
        /// The incarnation that was removed.
        removed_incarnation: u64,
    },

    /// This peer is leaving (told to stop): it asked the seeds to certify `LEFT` at this
    /// incarnation and told its neighbours.
    Leaving {
        /// The incarnation leaving.
        incarnation: u64,
        /// Seeds asked.
        seeds: Vec<Endpoint>,
        /// Neighbours told.
        neighbours: Vec<Endpoint>,
    },
    /// This peer is done leaving: the driver may exit.
    Left {
        /// Seeds that certified its `LEFT` entry (a round each; one is enough). Empty: no
        /// seed could (unreachable): failure detection removes it instead.
        seeds: Vec<Endpoint>,
        /// Neighbours that dropped the link on its word.
        neighbours: u32,
    },

    // ----- seeds -----
    /// This seed was told to stop: it starts no new round and finishes these first.
    Stopping {
        /// Rounds in flight.
        rounds: u32,
    },
    /// A stopping seed's last round ended: the driver may exit.
    Stopped,

    // ----- both -----
    /// A bad request was answered with `ERROR` (or a bad reply dropped).
    BadInput {
        /// The `ERROR` reason.
        reason: String,
    },
}
