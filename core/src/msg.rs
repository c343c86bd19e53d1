//! Typed protocol messages: every message of `docs/PROTOCOL.md`, with its exact wire field names
//! noted on each field, plus this project's extensions.
//!
//! The state machines speak only these types; [`crate::wire`] turns them into JSON lines and
//! back. A [`Message`] is moved several times per delivery, so it is kept small (48 bytes):
//! the hot small ones (`PING`, `PONG`, the gossip ack) are inline, the rare large ones are
//! boxed, and a gossip is inline: an `Arc` of its origin's body, shared by every copy, plus
//! the sender and hop count each hop rewrites.
//!
//! Several wire `type`s carry more than one kind of message (a request and its reply share
//! `REGISTER_COMMIT`, for instance); each kind is its own variant here, and the codec tells
//! them apart by the fields present (see [`crate::wire`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

/// A node's identity: the endpoint `ip:port` it tells others (never a connection's ephemeral
/// port). Written `[v6]:port` for IPv6, as `SocketAddr` displays it.
pub type Endpoint = std::net::SocketAddr;

/// An IP address in texts that join it to more fields with `:` (the gossip id
/// `<ts>:<IP>:<n>`, `Dead Node:<IP>:<port>:...`): IPv4 as is, IPv6 in brackets, so the
/// fields split unambiguously and IPv4 texts stay byte for byte the original's.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IpText(pub IpAddr);

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "{ip}"),
            IpAddr::V6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// The outcome of a seed vote round, as the wire spells it (`"COMMIT"` / `"ABORT"`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decision {
    /// The change is applied.
    Commit,
    /// Nothing changes.
    Abort,
}

/// Where a peer's Peer List entry stands at one incarnation. `Alive < Removed < Left`: a
/// removal of an incarnation outranks its admission, a leave outranks both (a peer that left
/// is not reported dead afterwards), and any higher incarnation outranks all three.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Admitted.
    Alive,
    /// Removed as dead; this incarnation never comes back.
    Removed,
    /// Left of its own accord (SIGTERM, `gossipctl leave`), certified like a removal; this
    /// incarnation never comes back either.
    Left,
}

impl Status {
    /// True for a peer that is no member any more at this incarnation.
    pub fn gone(self) -> bool {
        self != Status::Alive
    }
}

/// One certified Peer List entry, as exchanged by seed anti-entropy and shown by status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// wire: `peer` (`"ip:port"`)
    pub peer: Endpoint,
    /// wire: `incarnation`
    pub incarnation: u64,
    /// wire: `status` (`"ALIVE"` / `"REMOVED"`)
    pub status: Status,
    /// wire: `votes` — the quorum certificate: distinct seeds that voted yes for exactly
    /// this `(peer, incarnation, status)`.
    pub votes: Vec<Endpoint>,
}

/// `REGISTER_REQ` (peer → seed). Reply: [`Message::RegisterResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterReq {
    /// wire: `peer_ip` + `peer_port`
    pub peer: Endpoint,
    /// wire: `incarnation` (extension, optional): the lowest incarnation the peer will accept,
    /// e.g. one above the incarnation it learned was removed.
    pub incarnation: Option<u64>,
}

/// `REGISTER_COMMIT` as the reply to `REGISTER_REQ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterResult {
    /// wire: `proposal_id` (empty when answered without a round, e.g. already registered)
    pub proposal_id: String,
    /// wire: `success`
    pub success: bool,
    /// wire: `yes_votes`
    pub yes_votes: u32,
    /// wire: `quorum`
    pub quorum: u32,
    /// wire: `incarnation` (extension, optional): the incarnation admitted.
    pub incarnation: Option<u64>,
    /// wire: `error` (optional): why it failed.
    pub error: Option<String>,
}

/// `REGISTER_VOTE` / `SEED_DEAD_VOTE` with `action: "REQUEST"` (proposing seed → other seeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteReq {
    /// wire: `proposal_id`
    pub proposal_id: String,
    /// wire: `peer_ip`+`peer_port` (register) or `dead_ip`+`dead_port` (removal)
    pub peer: Endpoint,
    /// wire: `incarnation` (extension; absent from the reference: means "the current one")
    pub incarnation: Option<u64>,
    /// wire: `proposer` (`"ip:port"`)
    pub proposer: Endpoint,
}

/// `REGISTER_VOTE` / `SEED_DEAD_VOTE` with `action: "RESPONSE"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteResp {
    /// wire: `proposal_id`
    pub proposal_id: String,
    /// wire: `vote`
    pub vote: bool,
    /// wire: `voter` (`"ip:port"`)
    pub voter: Endpoint,
    /// wire: `known_incarnation` (extension, optional): on a no, the higher incarnation the
    /// voter already knows for this peer, so the proposer can retry above it.
    pub known_incarnation: Option<u64>,
}

/// `REGISTER_COMMIT` / `SEED_DEAD_COMMIT` as a sync (proposing seed → other seeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSync {
    /// wire: `proposal_id`
    pub proposal_id: String,
    /// wire: `decision`
    pub decision: Decision,
    /// wire: `peer_ip`+`peer_port` (register) or `dead_ip`+`dead_port` (removal)
    pub peer: Endpoint,
    /// wire: `source_seed` (`"ip:port"`)
    pub source_seed: Endpoint,
    /// wire: `incarnation` (extension)
    pub incarnation: Option<u64>,
    /// wire: `votes` (extension): the quorum certificate. A `COMMIT` without a valid one
    /// changes nothing.
    pub votes: Vec<Endpoint>,
}

/// `SEED_DEAD_COMMIT` as the reply to `DEAD_REPORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadResult {
    /// wire: `proposal_id`
    pub proposal_id: String,
    /// wire: `success`
    pub success: bool,
    /// wire: `yes_votes`
    pub yes_votes: u32,
    /// wire: `quorum`
    pub quorum: u32,
}

/// `LEAVE` request (extension): a peer leaving asks a seed to certify its `LEFT` entry, and
/// tells its neighbours (who check with it before they drop the link). Answered with
/// [`Message::LeaveResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveReq {
    /// wire: `peer_ip` + `peer_port`: the leaving peer
    pub peer: Endpoint,
    /// wire: `incarnation`: the incarnation that leaves
    pub incarnation: u64,
}

/// `PEER_LIST_RESP` (seed → peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerListResp {
    /// wire: `peers` (list of `"ip:port"`); may be a bounded random sample of the PL.
    pub peers: Vec<Endpoint>,
    /// wire: `seed` (`"ip:port"`)
    pub seed: Endpoint,
    /// wire: `incarnations` (extension, optional): `{"ip:port": n}` for the listed peers.
    pub incarnations: Vec<(Endpoint, u64)>,
    /// wire: `total` (extension, optional): the size of the whole PL.
    pub total: Option<u64>,
    /// wire: `requester_entry` (extension, optional): the requester's own entry, so a peer
    /// learns that it was removed and registers again.
    pub requester_entry: Option<(u64, Status)>,
}

/// `HELLO` (peer → peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// wire: `peer_ip`+`peer_port`
    pub peer: Endpoint,
    /// wire: `degree`
    pub degree: u32,
    /// wire: `incarnation` (extension, optional)
    pub incarnation: Option<u64>,
}

/// `HELLO_ACK` (reply to `HELLO`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// wire: `accepted`
    pub accepted: bool,
    /// wire: `peer_ip`+`peer_port`: the answering peer
    pub peer: Endpoint,
    /// wire: `degree`: the answering peer's degree
    pub degree: u32,
    /// wire: `incarnation` (extension, optional)
    pub incarnation: Option<u64>,
}

/// What a gossip's origin wrote: the same in every copy of it, so every copy in the network
/// shares one allocation. The spec's gossip (`GOSSIP_MSG`) and an application message
/// (`APP_MSG`, with [`GossipBody::app`]) travel, de-duplicate and are repaired alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipBody {
    /// wire: `message`: `<timestamp>:<IP>:<Msg#>`, or an application message's id
    /// `<timestamp>:<ip:port>/<boot>.<n>` (see [`AppPart`]).
    pub text: Arc<str>,
    /// wire: `origin_ip`
    pub origin_ip: IpAddr,
    /// wire: `origin_port` (extension, optional): with the text, the de-dup key, so two
    /// peers sharing one IP never collide.
    pub origin_port: Option<u16>,
    /// wire: `msg_no`
    pub msg_no: u32,
    /// What an application published, if this is an application message (wire: `APP_MSG`
    /// rather than `GOSSIP_MSG`). Boxed: the spec's gossip, the hot case, stays small.
    pub app: Option<Box<AppPart>>,
}

impl GossipBody {
    /// True for an application message.
    #[inline]
    pub fn is_app(&self) -> bool {
        self.app.is_some()
    }
}

/// Longest application message name, in bytes.
pub const MAX_APP_NAME: usize = 128;

/// The part of a gossip body only an application message has (`APP_MSG`, extension).
///
/// Its id (the body's `text`) is `<timestamp>:<ip:port>/<boot>.<n>`: the second it was
/// published (so the repair can name it like any gossip), the publisher's endpoint, a random
/// 32-bit number the publisher drew when it started (eight hex digits) and a count from 1.
/// No spec gossip text contains `/`, so the two never share a key, and a publisher that
/// restarts within a second does not reuse an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPart {
    /// wire: `name` (optional, at most [`MAX_APP_NAME`] bytes): what the application calls
    /// it, for subscribers to filter on.
    pub name: Option<Box<str>>,
    /// wire: `data`: the payload, UTF-8 text (`Settings::max_app_bytes` at most).
    pub data: Box<str>,
    /// wire: `published_ms`: the publisher's unix time in ms when it published.
    pub published_ms: u64,
}

/// `GOSSIP_MSG` (peer → neighbour). The hot message: the origin's shared body plus the two
/// fields each hop rewrites, so forwarding a gossip costs a reference count, never an
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    /// The origin's fields, shared by every copy.
    pub body: Arc<GossipBody>,
    /// wire: `sender` (`"ip:port"`): the neighbour that forwarded it
    pub sender: Endpoint,
    /// wire: `hops` (extension, optional, default 0): links travelled so far.
    pub hops: u32,
}

/// `GOSSIP_MSG` as the reply to a gossip.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GossipAck {
    /// wire: `accepted`
    pub accepted: bool,
    /// wire: `duplicate`
    pub duplicate: bool,
    /// wire: `prune` (extension, optional, default false; written only when true): lazy
    /// push's PRUNE ("the copy was a duplicate: announce this origin's gossip to me on this
    /// link instead of pushing it"); read only in lazy mode, as the reply to our own push.
    pub prune: bool,
    /// The ack of an application message: its wire type is `APP_MSG`, like the request's.
    pub app: bool,
}

/// The gossips of one stamp second, named by their de-dup keys: how the repair's messages
/// name gossips. On the wire `[second, key, key, ...]`.
///
/// A gossip is named only if its text is stamped (`<unix_secs>:<ip>:<msg_no>`): `second`
/// is that stamp, each key is `gossip_key(text, origin_port).hash` (see
/// `peer::gossip_key`; the function is part of the protocol, and a test pins its values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdGroup {
    /// The stamp second shared by the gossips named.
    pub second: u64,
    /// Their de-dup keys.
    pub keys: Vec<u64>,
}

/// Most buckets (stamp seconds) one `GOSSIP_DIGEST` carries; more is answered `ERROR`.
pub const MAX_DIGEST_BUCKETS: usize = 64;

/// Most gossip ids one repair message names (the keys of every group of a
/// `GOSSIP_DIGEST` reply, an `IHAVE` or a `GOSSIP_PULL`); more is answered `ERROR`.
pub const MAX_IDS: usize = 1_024;

/// Most gossip bodies one `GOSSIP_PULL` reply carries; more makes the reply refused.
pub const MAX_BODIES: usize = 256;

/// `GOSSIP_DIGEST` request (extension, gossip repair): a summary of the gossips the sender
/// holds, per stamp second: bucket `i` is the second `first + i`, with how many gossips of
/// that second the sender holds and the XOR of their keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipDigest {
    /// wire: `sender` (`"ip:port"`)
    pub sender: Endpoint,
    /// wire: `first`: the stamp second of the first bucket
    pub first: u64,
    /// wire: `counts`: gossips held per second, at most [`MAX_DIGEST_BUCKETS`]
    pub counts: Vec<u32>,
    /// wire: `hashes`: the XOR of their keys per second, as many as `counts`
    pub hashes: Vec<u64>,
}

/// `GOSSIP_DIGEST` reply: the responder's keys of every second (within both windows) whose
/// bucket differs from the request's, whole seconds only, up to [`MAX_IDS`] keys. A second
/// listed with no key: the responder holds none of it. No group: nothing differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestResp {
    /// wire: `responder` (`"ip:port"`)
    pub responder: Endpoint,
    /// wire: `ids`: `[[second, key, ...], ...]`
    pub ids: Vec<IdGroup>,
}

/// `IHAVE` (extension): "I hold these gossips". Sent by the repair to a neighbour that lacks
/// them (one line names many). The receiver pulls what it still lacks (`GOSSIP_PULL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IHave {
    /// wire: `sender` (`"ip:port"`): the neighbour that holds them
    pub sender: Endpoint,
    /// wire: `ids`: `[[second, key, ...], ...]`, at most [`MAX_IDS`] keys
    pub ids: Vec<IdGroup>,
}

/// `GOSSIP_PULL` request (extension): "send me these gossips". `graft` is lazy push's GRAFT
/// ("send me gossip over this link whole again"); a peer in flood mode ignores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipPull {
    /// wire: `sender` (`"ip:port"`)
    pub sender: Endpoint,
    /// wire: `ids`: `[[second, key, ...], ...]`, at most [`MAX_IDS`] keys
    pub ids: Vec<IdGroup>,
    /// wire: `graft` (optional, default false)
    pub graft: bool,
}

/// `GOSSIP_PULL` reply: the bodies asked for that the responder holds, at most
/// [`MAX_BODIES`] (and a byte budget): the rest is asked again later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullResp {
    /// wire: `responder` (`"ip:port"`)
    pub responder: Endpoint,
    /// wire: `bodies`: `[{"message", "origin_ip", "origin_port"?, "msg_no"}, ...]`
    pub bodies: Vec<Arc<GossipBody>>,
}

/// `SUSPECT_REQ` (detector → witness peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspectReq {
    /// wire: `dead_ip`+`dead_port`
    pub suspect: Endpoint,
    /// wire: `requester` (`"ip:port"`)
    pub requester: Endpoint,
}

/// `SUSPECT_ACK` (reply to `SUSPECT_REQ`), sent after the witness probed the suspect itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspectAck {
    /// wire: `suspect` (`"ip:port"`)
    pub suspect: Endpoint,
    /// wire: `alive`: the witness's own probe answered
    pub alive: bool,
    /// wire: `confirmer` (`"ip:port"`): the witness
    pub confirmer: Endpoint,
}

/// `DEAD_REPORT` (peer → seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadReport {
    /// wire: `dead_ip`+`dead_port`
    pub dead: Endpoint,
    /// wire: `self_ip`
    pub self_ip: IpAddr,
    /// wire: `timestamp` (unix seconds)
    pub timestamp: u64,
    /// wire: `reporter` (`"ip:port"`)
    pub reporter: Endpoint,
    /// wire: `text`: `Dead Node:<DeadNode.IP>:<DeadNode.Port>:<timestamp>:<self.IP>`
    pub text: Option<String>,
    /// wire: `incarnation` (extension, optional): the accused incarnation; absent means the
    /// current one.
    pub incarnation: Option<u64>,
    /// wire: `witnesses` (extension, optional): the peers that confirmed the suspicion.
    pub witnesses: Vec<Endpoint>,
}

impl DeadReport {
    /// `reporter`'s report of `dead` at `timestamp` (unix seconds), with the spec's `text`.
    pub fn new(
        dead: Endpoint,
        reporter: Endpoint,
        timestamp: u64,
        incarnation: Option<u64>,
        witnesses: Vec<Endpoint>,
    ) -> DeadReport {
        DeadReport {
            dead,
            self_ip: reporter.ip(),
            timestamp,
            reporter,
            text: Some(DeadReport::text_of(dead, timestamp, reporter.ip())),
            incarnation,
            witnesses,
        }
    }

    /// The spec's report text `Dead Node:<ip>:<port>:<timestamp>:<reporter ip>` (IPv6 in
    /// brackets, see [`IpText`]): the one place it is written.
    pub fn text_of(dead: Endpoint, timestamp: u64, reporter: IpAddr) -> String {
        format!(
            "{}{timestamp}:{}",
            DeadReport::text_prefix(dead),
            IpText(reporter)
        )
    }

    /// How every report text about `dead` starts: `Dead Node:<ip>:<port>:`.
    pub fn text_prefix(dead: Endpoint) -> String {
        format!("Dead Node:{}:{}:", IpText(dead.ip()), dead.port())
    }
}

/// `PING` (extension): application-level liveness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ping {
    /// wire: `sender` (`"ip:port"`)
    pub sender: Endpoint,
    /// wire: `suspected_by` (optional, peers): set by a witness probing a suspect, the
    /// detector that suspects it. The suspect can refute by `PING`ing that detector (which
    /// then probes it once more) and learns that it may be slow itself (local health).
    /// Boxed: set only on a witness's probes, it keeps the common `PING` small.
    pub suspected_by: Option<Box<Endpoint>>,
}

/// `PONG` (extension): reply to `PING`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// wire: `responder` (`"ip:port"`)
    pub responder: Endpoint,
    /// wire: `degree` (optional): the responder's overlay degree (peers), used for
    /// preferential attachment. Any non-negative integer is read; a claim above 65,535 is
    /// taken as 65,535 (no degree that high is believable, and 16 bits keep `PONG`, a hot
    /// message, inline in [`Message`]).
    pub degree: Option<u16>,
    /// wire: `leaving` (optional, peers, written only when true): the responder is leaving
    /// the network. Only the peer itself, answering at its own address, can say so: a seed
    /// votes for its `LEFT` entry, and a neighbour drops its link, only on this answer.
    pub leaving: bool,
    /// wire: `incarnation` (optional, peers; `1..=`[`crate::seed::MAX_INCARNATION`], `0`
    /// reads as absent): the incarnation the responder holds or is registering for. A seed
    /// that probes a registrant reads it to bound the incarnation it votes for: only the peer
    /// itself, answering at its own address, can raise its claim. (32 bits keep `PONG`, a hot
    /// message, inline in [`Message`].)
    pub incarnation: Option<NonZeroU32>,
}

/// A Peer List change a seed can be asked to vouch for: an entry without its certificate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fact {
    /// wire: `peer` (`"ip:port"`)
    pub peer: Endpoint,
    /// wire: `incarnation`
    pub incarnation: u64,
    /// wire: `status` (`"ALIVE"` / `"REMOVED"`)
    pub status: Status,
}

impl Entry {
    /// The change this entry certifies.
    pub fn fact(&self) -> Fact {
        Fact {
            peer: self.peer,
            incarnation: self.incarnation,
            status: self.status,
        }
    }
}

/// Facts one `SEED_CONFIRM` request carries at most (a seed's batches stay under it; a
/// longer request is answered `ERROR`).
pub const MAX_CONFIRM_FACTS: usize = 256;

/// `SEED_CONFIRM` request (extension): "do you vouch for these changes?" A seed that was
/// handed a change it did not decide (a commit sync, an anti-entropy entry) asks the seeds
/// named in its certificate, over connections it opens to their configured addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmReq {
    /// wire: `seed` (`"ip:port"`): the asking seed (informational)
    pub seed: Endpoint,
    /// wire: `facts`: `[{"peer", "incarnation", "status"}]`, at most [`MAX_CONFIRM_FACTS`]
    pub facts: Vec<Fact>,
}

/// `SEED_CONFIRM` reply: one answer per fact asked, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmResp {
    /// wire: `seed` (`"ip:port"`): the answering seed
    pub seed: Endpoint,
    /// wire: `vouched`: true where the seed voted yes for exactly that change, or holds it
    pub vouched: Vec<bool>,
}

/// Number of buckets the Peer List is split into for anti-entropy digests.
pub const SYNC_BUCKETS: usize = 64;

/// `SEED_SYNC` (extension): seed-to-seed anti-entropy of the Peer List (pull).
///
/// The request carries the sender's per-bucket digests (entries: empty). The reply
/// (`reply: true`) carries the responder's digests and its certified entries of every
/// bucket whose digest differs, up to a cap; repeated rounds finish the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSync {
    /// wire: `seed` (`"ip:port"`): the sender
    pub seed: Endpoint,
    /// wire: `buckets`: [`SYNC_BUCKETS`] order-independent digests of the sender's entries,
    /// bucketed by peer endpoint
    pub buckets: Vec<u64>,
    /// wire: `entries`
    pub entries: Vec<Entry>,
    /// wire: `reply`: true on the answer to a sync request
    pub reply: bool,
}

/// What a seed reports about itself in `STATUS_RESP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedStatus {
    /// wire: `entries`: every certified entry, alive and removed
    pub entries: Vec<Entry>,
    /// wire: `pending`: proposals in flight
    pub pending: u32,
}

/// What a peer reports about itself in `STATUS_RESP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// wire: `registered`
    pub registered: bool,
    /// wire: `incarnation`
    pub incarnation: u64,
    /// wire: `neighbours`
    pub neighbours: Vec<Endpoint>,
    /// wire: `known_peers`: how many peers it knows of
    pub known_peers: u32,
}

/// `STATUS_RESP` (extension): read-only view of a node for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusResp {
    /// wire: `node` (`"ip:port"`)
    pub node: Endpoint,
    /// wire: `role` (`"seed"` / `"peer"`) and the role's fields
    pub role: RoleStatus,
    /// wire: `counters`: named counters, sorted by name
    pub counters: Vec<(String, u64)>,
}

/// The role-specific part of a status reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleStatus {
    /// A seed's view.
    Seed(SeedStatus),
    /// A peer's view.
    Peer(PeerStatus),
}

/// Every message, request or reply, of the protocol and its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    // --- reference protocol ---
    /// `REGISTER_REQ`
    RegisterReq(Box<RegisterReq>),
    /// `REGISTER_COMMIT` with `success` (reply to `REGISTER_REQ`)
    RegisterResult(Box<RegisterResult>),
    /// `REGISTER_VOTE` with `action: "REQUEST"`
    RegisterVote(Box<VoteReq>),
    /// `REGISTER_VOTE` with `action: "RESPONSE"`
    RegisterVoteResp(Box<VoteResp>),
    /// `REGISTER_COMMIT` with `decision` (seed → seeds)
    RegisterCommit(Box<CommitSync>),
    /// `REGISTER_COMMIT` with `ack: true`
    RegisterCommitAck,
    /// `PEER_LIST_REQ`; wire `requester` (`"ip:port"`, or anything for the reference)
    PeerListReq {
        /// wire: `requester`
        requester: String,
    },
    /// `PEER_LIST_RESP`
    PeerListResp(Box<PeerListResp>),
    /// `HELLO`
    Hello(Box<Hello>),
    /// `HELLO_ACK`
    HelloAck(Box<HelloAck>),
    /// `GOSSIP_MSG` with `message` (`APP_MSG` for an application message)
    Gossip(Gossip),
    /// `GOSSIP_MSG` (or `APP_MSG`) with `accepted` (reply)
    GossipAck(GossipAck),
    /// `SUSPECT_REQ`
    SuspectReq(Box<SuspectReq>),
    /// `SUSPECT_ACK`
    SuspectAck(Box<SuspectAck>),
    /// `DEAD_REPORT`
    DeadReport(Box<DeadReport>),
    /// `SEED_DEAD_COMMIT` with `success` (reply to `DEAD_REPORT`)
    DeadResult(DeadResult),
    /// `SEED_DEAD_VOTE` with `action: "REQUEST"`
    DeadVote(Box<VoteReq>),
    /// `SEED_DEAD_VOTE` with `action: "RESPONSE"`
    DeadVoteResp(Box<VoteResp>),
    /// `SEED_DEAD_COMMIT` with `decision` (seed → seeds)
    DeadCommit(Box<CommitSync>),
    /// `SEED_DEAD_COMMIT` with `ack: true`
    DeadCommitAck,
    /// `LEAVE` request (peer → seed, peer → neighbour)
    Leave(Box<LeaveReq>),
    /// `LEAVE` with `success` (reply to `LEAVE`)
    LeaveResult(DeadResult),
    /// `LEAVE_VOTE` with `action: "REQUEST"`
    LeaveVote(Box<VoteReq>),
    /// `LEAVE_VOTE` with `action: "RESPONSE"`
    LeaveVoteResp(Box<VoteResp>),
    /// `LEAVE_COMMIT` with `decision` (seed → seeds)
    LeaveCommit(Box<CommitSync>),
    /// `LEAVE_COMMIT` with `ack: true`
    LeaveCommitAck,
    /// `ERROR`; wire `reason`. Never answered.
    Error {
        /// wire: `reason`
        reason: String,
    },
    // --- extensions ---
    /// `PING`
    Ping(Ping),
    /// `PONG`
    Pong(Pong),
    /// `SEED_SYNC` (request or reply, see [`SeedSync::reply`])
    SeedSync(Box<SeedSync>),
    /// `SEED_CONFIRM` with `facts` (request)
    Confirm(Box<ConfirmReq>),
    /// `SEED_CONFIRM` with `vouched` (reply)
    ConfirmResp(Box<ConfirmResp>),
    /// `GOSSIP_DIGEST` with `counts` (request)
    Digest(Box<GossipDigest>),
    /// `GOSSIP_DIGEST` with `ids` (reply)
    DigestResp(Box<DigestResp>),
    /// `IHAVE` with `ids` (request)
    IHave(Box<IHave>),
    /// `IHAVE` with `ack: true` (reply)
    IHaveAck,
    /// `GOSSIP_PULL` with `ids` (request; a GRAFT with `graft: true`)
    Pull(Box<GossipPull>),
    /// `GOSSIP_PULL` with `bodies` (reply)
    PullResp(Box<PullResp>),
    /// `STATUS_REQ` (no fields)
    StatusReq,
    /// `STATUS_RESP`
    StatusResp(Box<StatusResp>),
}

impl Message {
    /// The wire `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::RegisterReq(_) => "REGISTER_REQ",
            Message::RegisterResult(_)
            | Message::RegisterCommit(_)
            | Message::RegisterCommitAck => "REGISTER_COMMIT",
            Message::RegisterVote(_) | Message::RegisterVoteResp(_) => "REGISTER_VOTE",
            Message::PeerListReq { .. } => "PEER_LIST_REQ",
            Message::PeerListResp(_) => "PEER_LIST_RESP",
            Message::Hello(_) => "HELLO",
            Message::HelloAck(_) => "HELLO_ACK",
            Message::Gossip(g) if g.body.is_app() => "APP_MSG",
            Message::GossipAck(a) if a.app => "APP_MSG",
            Message::Gossip(_) | Message::GossipAck(_) => "GOSSIP_MSG",
            Message::SuspectReq(_) => "SUSPECT_REQ",
            Message::SuspectAck(_) => "SUSPECT_ACK",
            Message::DeadReport(_) => "DEAD_REPORT",
            Message::DeadResult(_) | Message::DeadCommit(_) | Message::DeadCommitAck => {
                "SEED_DEAD_COMMIT"
            }
            Message::DeadVote(_) | Message::DeadVoteResp(_) => "SEED_DEAD_VOTE",
            Message::Leave(_) | Message::LeaveResult(_) => "LEAVE",
            Message::LeaveVote(_) | Message::LeaveVoteResp(_) => "LEAVE_VOTE",
            Message::LeaveCommit(_) | Message::LeaveCommitAck => "LEAVE_COMMIT",
            Message::Error { .. } => "ERROR",
            Message::Ping(_) => "PING",
            Message::Pong(_) => "PONG",
            Message::SeedSync(_) => "SEED_SYNC",
            Message::Confirm(_) | Message::ConfirmResp(_) => "SEED_CONFIRM",
            Message::Digest(_) | Message::DigestResp(_) => "GOSSIP_DIGEST",
            Message::IHave(_) | Message::IHaveAck => "IHAVE",
            Message::Pull(_) | Message::PullResp(_) => "GOSSIP_PULL",
            Message::StatusReq => "STATUS_REQ",
            Message::StatusResp(_) => "STATUS_RESP",
        }
    }

    /// True for the messages a node sends expecting exactly one reply line.
    /// Replies and `ERROR` are never answered.
    pub fn is_request(&self) -> bool {
        match self {
            Message::RegisterReq(_)
            | Message::RegisterVote(_)
            | Message::RegisterCommit(_)
            | Message::PeerListReq { .. }
            | Message::Hello(_)
            | Message::Gossip(_)
            | Message::SuspectReq(_)
            | Message::DeadReport(_)
            | Message::DeadVote(_)
            | Message::DeadCommit(_)
            | Message::Leave(_)
            | Message::LeaveVote(_)
            | Message::LeaveCommit(_)
            | Message::Ping(_)
            | Message::Confirm(_)
            | Message::Digest(_)
            | Message::IHave(_)
            | Message::Pull(_)
            | Message::StatusReq => true,
            Message::SeedSync(s) => !s.reply,
            Message::RegisterResult(_)
            | Message::RegisterVoteResp(_)
            | Message::RegisterCommitAck
            | Message::PeerListResp(_)
            | Message::HelloAck(_)
            | Message::GossipAck(_)
            | Message::SuspectAck(_)
            | Message::DeadResult(_)
            | Message::DeadVoteResp(_)
            | Message::DeadCommitAck
            | Message::LeaveResult(_)
            | Message::LeaveVoteResp(_)
            | Message::LeaveCommitAck
            | Message::Error { .. }
            | Message::Pong(_)
            | Message::ConfirmResp(_)
            | Message::DigestResp(_)
            | Message::IHaveAck
            | Message::PullResp(_)
            | Message::StatusResp(_) => false,
        }
    }

    /// True for requests whose reply may come late, after the receiver asked others (a vote
    /// round, a probe): a driver keeps them off connections other requests wait on.
    pub fn may_defer(&self) -> bool {
        matches!(
            self,
            Message::RegisterReq(_)
                | Message::DeadReport(_)
                | Message::SuspectReq(_)
                | Message::RegisterVote(_)
                | Message::DeadVote(_)
                | Message::Leave(_)
                | Message::LeaveVote(_)
                | Message::Hello(_)
        )
    }

    /// An `ERROR` reply with a reason.
    pub fn error(reason: impl Into<String>) -> Message {
        Message::Error {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every delivery moves a message several times (output queue, driver, input): a variant
    /// that grows past the hot ones must be boxed, not inlined.
    #[test]
    fn a_message_stays_small() {
        assert!(
            std::mem::size_of::<Message>() <= 48,
            "Message is {} bytes",
            std::mem::size_of::<Message>()
        );
    }
}
