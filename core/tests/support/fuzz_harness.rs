//! The fuzz harness, shared by the cargo-fuzz targets in `fuzz/` (which include this file by
//! path) and the bounded proptests in `core/tests/fuzz_props.rs`.
//!
//! Both targets take plain bytes, so libFuzzer's mutations and proptest's generated vectors
//! drive exactly the same code:
//!
//! * [`decode_line`]: `wire::decode` on the bytes, plus `LineReader` framing them in chunks,
//!   checked against a one-line model of the framing rules.
//! * [`node_inputs`]: a seed or a peer fed a sequence of inputs read from the bytes: structured
//!   requests of every kind (valid, spoofed, invalid in the node's state), lines decoded from
//!   raw bytes, replies with any outcome to the requests the node actually sent, and ticks
//!   with advancing time. After every input the node's outputs are checked; at the end every
//!   outstanding send is failed and time runs on until every request has been answered.
//!
//! What a driver owes a node and a node owes a driver (one reply per request, sends that are
//! requests with deadlines ahead, a response only for a send that wants one, ...) is checked
//! by the test network's [`Driven`] (`net.rs`, included here by path), the same bookkeeping
//! every node of the seed and peer tests' networks is fed through; this harness adds its own
//! checks on top.
//!
//! A broken promise panics with a message naming it; libFuzzer and proptest both report the
//! input that did it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use gossip_core::config::GossipMode;
use gossip_core::msg::*;
use gossip_core::wire::{self, DecodeError, LineReader};
use gossip_core::{
    quorum, ConnId, Failure, Input, Millis, Node, NodeInit, Output, Refusal, Settings,
};

#[path = "net.rs"]
mod net;

use net::{Driven, SendId};

/// Inputs one run feeds a node at most: keeps one fuzz iteration in the millisecond range.
pub const MAX_OPS: usize = 1_500;

/// A cursor over the fuzz bytes. Reads past the end give zeros, so every byte string is a
/// valid program.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// Up to `n` raw bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or_default()
    }

    /// A small count, 0..=n.
    fn small(&mut self, n: usize) -> usize {
        self.below(n + 1)
    }

    /// Mostly small numbers, sometimes extremes: where the off-by-ones and overflows live.
    fn num(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX),
            3 => self.u64(),
            _ => u64::from(self.u8() % 8),
        }
    }

    fn num32(&mut self) -> u32 {
        u32::try_from(self.num()).unwrap_or(u32::MAX)
    }
}

// ----- decode_line ---------------------------------------------------------------------------

/// `wire::decode` on `data`, then `LineReader` over `data` cut into chunks; panics on a broken
/// promise.
///
/// * A decoded message re-encodes to one line without a raw newline, and that line decodes to
///   a message that encodes to the same line (encoding is a fixpoint after one round).
/// * `LineReader` yields exactly the lines of the one-line model below, however the stream is
///   cut, and never holds more than its limit plus one chunk.
pub fn decode_line(data: &[u8]) {
    if let Ok(msg) = wire::decode(data) {
        check_roundtrip(&msg);
    }
    // Frame the same bytes with a small limit so the over-long paths run too. The first byte
    // picks the limit and the chunking; the rest is the stream.
    let Some((&knob, stream)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(knob % 64);
    let chunk = 1 + usize::from(knob / 64) * 7;
    let mut reader = LineReader::new(max);
    let mut got: Vec<Result<Vec<u8>, ()>> = Vec::new();
    for piece in stream.chunks(chunk) {
        reader.push(piece);
        assert!(
            reader.pending_bytes() <= max + 1 + chunk,
            "LineReader holds {} bytes with max {max}, chunk {chunk}",
            reader.pending_bytes()
        );
        while let Some(line) = reader.next_line() {
            got.push(line.map(<[u8]>::to_vec).map_err(|_| ()));
        }
    }
    while let Some(line) = reader.finish() {
        got.push(line.map(<[u8]>::to_vec).map_err(|_| ()));
    }
    assert_eq!(got, model_lines(stream, max), "max={max} chunk={chunk}");
}

/// The framing rules in one place: split at `\n`, the last piece counts at end of stream,
/// a piece longer than `max` is one error, a blank piece (spaces, tabs, `\r`) is skipped.
fn model_lines(stream: &[u8], max: usize) -> Vec<Result<Vec<u8>, ()>> {
    let mut out = Vec::new();
    for line in stream.split(|&b| b == b'\n') {
        if line.len() > max {
            out.push(Err(()));
        } else if !line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            out.push(Ok(line.to_vec()));
        }
    }
    out
}

/// Encodes `msg`, decodes the line and encodes again: the two lines must be equal.
fn check_roundtrip(msg: &Message) {
    let mut first = Vec::new();
    wire::encode(msg, 1.5, &mut first);
    let body = first.strip_suffix(b"\n").unwrap_or(&first);
    assert!(
        !body.contains(&b'\n'),
        "encoded line holds a raw newline: {msg:?}"
    );
    let again = match wire::decode(body) {
        Ok(m) => m,
        Err(e) => panic!(
            "{msg:?} encodes to a line that does not decode ({e}): {}",
            String::from_utf8_lossy(body)
        ),
    };
    let mut second = Vec::new();
    wire::encode(&again, 1.5, &mut second);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "encoding is not a fixpoint"
    );
}

// ----- node_inputs ---------------------------------------------------------------------------

/// What a run reached, so a bounded test can check its inputs were not all trivial.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    /// Requests answered.
    pub replies: u64,
    /// Sends the node made.
    pub sends: u64,
    /// Most PL entries a seed held / most neighbours a peer had.
    pub size: usize,
}

const SEEDS: [u16; 3] = [9001, 9002, 9003];
const ME_PEER: u16 = 7000;

fn lo(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// Settings with short, still valid timings: more timers fire within a run.
fn settings() -> Settings {
    Settings {
        gossip_interval_ms: 500,
        probe_interval_ms: 200,
        probe_timeout_ms: 100,
        suspect_timeout_ms: 300,
        request_timeout_ms: 200,
        vote_timeout_ms: 300,
        register_timeout_ms: 500,
        register_retry_ms: 200,
        anti_entropy_interval_ms: 400,
        peer_list_refresh_ms: 1_000,
        min_degree: 2,
        max_degree: 6,
        candidate_sample: 4,
        peer_list_limit: 8,
        sync_entry_limit: 8,
        seen_capacity: 16,
        ..Settings::default()
    }
}

/// The world the generated messages talk about: the seeds, the node itself, a handful of
/// peers (so states line up: votes and commits about peers it knows), and now and then any
/// address at all.
struct World {
    me: SocketAddr,
    seeds: Vec<SocketAddr>,
    pool: Vec<SocketAddr>,
}

impl World {
    fn endpoint(&self, b: &mut Bytes<'_>) -> SocketAddr {
        let k = b.u8();
        if k < 240 {
            self.pool
                .get(usize::from(k) % self.pool.len())
                .copied()
                .unwrap_or(self.me)
        } else {
            let ip = if b.bool() {
                IpAddr::from(b.u32().to_be_bytes())
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(
                    (u128::from(b.u64()) << 64) | u128::from(b.u64()),
                ))
            };
            SocketAddr::new(ip, b.u16().max(1))
        }
    }

    fn endpoints(&self, b: &mut Bytes<'_>) -> Vec<SocketAddr> {
        let n = b.small(4);
        (0..n).map(|_| self.endpoint(b)).collect()
    }

    /// A quorum certificate: mostly real seeds (often enough to be valid), sometimes junk.
    fn votes(&self, b: &mut Bytes<'_>) -> Vec<SocketAddr> {
        match b.u8() % 4 {
            0 => self.endpoints(b),
            1 => Vec::new(),
            _ => {
                let n = 1 + b.small(3);
                (0..n)
                    .map(|_| {
                        self.seeds
                            .get(b.below(self.seeds.len()))
                            .copied()
                            .unwrap_or(self.me)
                    })
                    .collect()
            }
        }
    }

    fn text(&self, b: &mut Bytes<'_>) -> String {
        match b.u8() % 4 {
            0 => String::new(),
            1 => String::from_utf8_lossy(b.take(16)).into_owned(),
            _ => format!("p{}", b.u8() % 4),
        }
    }

    fn status(&self, b: &mut Bytes<'_>) -> Status {
        if b.bool() {
            Status::Alive
        } else {
            Status::Removed
        }
    }

    fn entry(&self, b: &mut Bytes<'_>) -> Entry {
        Entry {
            peer: self.endpoint(b),
            incarnation: b.num(),
            status: self.status(b),
            votes: self.votes(b),
        }
    }

    fn opt(&self, b: &mut Bytes<'_>) -> Option<u64> {
        b.bool().then(|| b.num())
    }

    fn vote_req(&self, b: &mut Bytes<'_>) -> VoteReq {
        VoteReq {
            proposal_id: self.text(b),
            peer: self.endpoint(b),
            incarnation: self.opt(b),
            proposer: self.endpoint(b),
        }
    }

    fn vote_resp(&self, b: &mut Bytes<'_>) -> VoteResp {
        VoteResp {
            proposal_id: self.text(b),
            vote: b.bool(),
            voter: self.endpoint(b),
            known_incarnation: self.opt(b),
        }
    }

    fn commit(&self, b: &mut Bytes<'_>) -> CommitSync {
        CommitSync {
            proposal_id: self.text(b),
            decision: if b.bool() {
                Decision::Commit
            } else {
                Decision::Abort
            },
            peer: self.endpoint(b),
            source_seed: self.endpoint(b),
            incarnation: self.opt(b),
            votes: self.votes(b),
        }
    }

    /// A gossip of the spec, or (one in four) an application message, whose id names its
    /// origin or (one in eight of those) another endpoint.
    fn gossip(&self, b: &mut Bytes<'_>) -> Gossip {
        let origin = self.endpoint(b);
        let n = b.u8() % 12;
        let (text, app) = if b.u8().is_multiple_of(4) {
            let named = if b.u8().is_multiple_of(8) {
                self.endpoint(b)
            } else {
                origin
            };
            let app = gossip_core::msg::AppPart {
                name: b.bool().then(|| "fuzz".into()),
                data: "d".repeat(usize::from(b.u8()) * 100).into(),
                published_ms: 1_767_225_600_000,
            };
            (
                format!("1767225600:{named}/0000beef.{n}"),
                Some(Box::new(app)),
            )
        } else {
            (format!("1767225600:{}:{n}", origin.ip()), None)
        };
        Gossip {
            body: Arc::new(GossipBody {
                text: Arc::from(text.as_str()),
                origin_ip: origin.ip(),
                origin_port: b.bool().then(|| origin.port()),
                msg_no: b.num32(),
                app,
            }),
            sender: self.endpoint(b),
            hops: b.num32(),
        }
    }

    /// Gossip ids: mostly of the gossips `gossip` makes (so they may be held), some random.
    fn ids(&self, b: &mut Bytes<'_>) -> Vec<IdGroup> {
        (0..b.small(4))
            .map(|_| {
                let keys = (0..b.small(5))
                    .map(|_| {
                        if b.bool() {
                            let g = self.gossip(b);
                            gossip_core::peer::gossip_key(&g.body.text, g.body.origin_port).hash
                        } else {
                            b.u64()
                        }
                    })
                    .collect();
                IdGroup {
                    second: 1_767_225_600 + b.num() % 64,
                    keys,
                }
            })
            .collect()
    }

    /// A message of the gossip repair and lazy push, request or reply.
    fn gossip_repair(&self, b: &mut Bytes<'_>) -> Message {
        match b.u8() % 6 {
            0 => {
                let n = b.small(30);
                Message::Digest(Box::new(GossipDigest {
                    sender: self.endpoint(b),
                    first: 1_767_225_600 + b.num() % 64,
                    counts: (0..n).map(|_| b.num32() % 4).collect(),
                    hashes: (0..n).map(|_| b.u64()).collect(),
                }))
            }
            1 => Message::DigestResp(Box::new(DigestResp {
                responder: self.endpoint(b),
                ids: self.ids(b),
            })),
            2 => Message::IHave(Box::new(IHave {
                sender: self.endpoint(b),
                ids: self.ids(b),
            })),
            3 => Message::IHaveAck,
            4 => Message::Pull(Box::new(GossipPull {
                sender: self.endpoint(b),
                ids: self.ids(b),
                graft: b.bool(),
            })),
            _ => Message::PullResp(Box::new(PullResp {
                responder: self.endpoint(b),
                bodies: (0..b.small(4)).map(|_| self.gossip(b).body).collect(),
            })),
        }
    }

    fn sync(&self, b: &mut Bytes<'_>, reply: bool) -> SeedSync {
        let buckets = match b.u8() % 4 {
            0 => Vec::new(),
            1 => (0..b.small(70)).map(|_| b.u64()).collect(),
            _ => (0..SYNC_BUCKETS).map(|_| b.u8().into()).collect(),
        };
        SeedSync {
            seed: self.endpoint(b),
            buckets,
            entries: (0..b.small(6)).map(|_| self.entry(b)).collect(),
            reply,
        }
    }

    /// Any message at all, request or reply, fields drawn from the bytes.
    fn message(&self, b: &mut Bytes<'_>) -> Message {
        match b.u8() % 29 {
            0 => Message::RegisterReq(Box::new(RegisterReq {
                peer: self.endpoint(b),
                incarnation: self.opt(b),
            })),
            1 => Message::RegisterResult(Box::new(RegisterResult {
                proposal_id: self.text(b),
                success: b.bool(),
                yes_votes: b.num32(),
                quorum: b.num32(),
                incarnation: self.opt(b),
                error: b.bool().then(|| self.text(b)),
            })),
            2 => Message::RegisterVote(Box::new(self.vote_req(b))),
            3 => Message::RegisterVoteResp(Box::new(self.vote_resp(b))),
            4 => Message::RegisterCommit(Box::new(self.commit(b))),
            5 => Message::RegisterCommitAck,
            6 => Message::PeerListReq {
                requester: if b.bool() {
                    self.endpoint(b).to_string()
                } else {
                    self.text(b)
                },
            },
            7 => Message::PeerListResp(Box::new(PeerListResp {
                peers: self.endpoints(b),
                seed: self.endpoint(b),
                incarnations: (0..b.small(3))
                    .map(|_| (self.endpoint(b), b.num()))
                    .collect(),
                total: self.opt(b),
                requester_entry: b.bool().then(|| (b.num(), self.status(b))),
            })),
            8 => Message::Hello(Box::new(Hello {
                peer: self.endpoint(b),
                degree: b.num32(),
                incarnation: self.opt(b),
            })),
            9 => Message::HelloAck(Box::new(HelloAck {
                accepted: b.bool(),
                peer: self.endpoint(b),
                degree: b.num32(),
                incarnation: self.opt(b),
            })),
            10 | 11 => Message::Gossip(self.gossip(b)),
            12 => Message::GossipAck(GossipAck {
                accepted: b.bool(),
                duplicate: b.bool(),
                prune: b.bool(),
                app: false,
            }),
            13 => Message::SuspectReq(Box::new(SuspectReq {
                suspect: self.endpoint(b),
                requester: self.endpoint(b),
            })),
            14 => Message::SuspectAck(Box::new(SuspectAck {
                suspect: self.endpoint(b),
                alive: b.bool(),
                confirmer: self.endpoint(b),
            })),
            15 => Message::DeadReport(Box::new(DeadReport {
                dead: self.endpoint(b),
                self_ip: self.endpoint(b).ip(),
                timestamp: b.num(),
                reporter: self.endpoint(b),
                text: b.bool().then(|| self.text(b)),
                incarnation: self.opt(b),
                witnesses: self.endpoints(b),
            })),
            16 => Message::DeadResult(DeadResult {
                proposal_id: self.text(b),
                success: b.bool(),
                yes_votes: b.num32(),
                quorum: b.num32(),
            }),
            17 => Message::DeadVote(Box::new(self.vote_req(b))),
            18 => Message::DeadVoteResp(Box::new(self.vote_resp(b))),
            19 => Message::DeadCommit(Box::new(self.commit(b))),
            20 => Message::DeadCommitAck,
            21 => Message::Error {
                reason: self.text(b),
            },
            22 => Message::Ping(Ping {
                sender: self.endpoint(b),
                suspected_by: None,
            }),
            23 => Message::Pong(Pong {
                responder: self.endpoint(b),
                degree: b.bool().then(|| b.num32() as u16),
                incarnation: std::num::NonZeroU32::new(b.num32()),
                leaving: b.bool(),
            }),
            26 => Message::Confirm(Box::new(ConfirmReq {
                seed: self.endpoint(b),
                facts: (0..b.small(6)).map(|_| self.entry(b).fact()).collect(),
            })),
            27 => Message::ConfirmResp(Box::new(ConfirmResp {
                seed: self.endpoint(b),
                vouched: (0..b.small(6)).map(|_| b.bool()).collect(),
            })),
            24 => {
                let reply = b.u8() & 3 == 0;
                Message::SeedSync(Box::new(self.sync(b, reply)))
            }
            25 => Message::StatusReq,
            _ if !b.u8().is_multiple_of(4) => self.gossip_repair(b),
            _ => Message::StatusResp(Box::new(StatusResp {
                node: self.endpoint(b),
                role: RoleStatus::Peer(PeerStatus {
                    registered: b.bool(),
                    incarnation: b.num(),
                    neighbours: self.endpoints(b),
                    known_peers: b.num32(),
                }),
                counters: Vec::new(),
            })),
        }
    }

    /// The reply `to` would plausibly give to `request`, fields drawn from the bytes (so
    /// proposal ids, votes and incarnations line up often and disagree sometimes).
    fn plausible_reply(&self, b: &mut Bytes<'_>, to: SocketAddr, request: &Message) -> Message {
        let same_id = |b: &mut Bytes<'_>, id: &str| {
            if b.u8() < 200 {
                id.to_string()
            } else {
                self.text(b)
            }
        };
        match request {
            Message::RegisterReq(r) => Message::RegisterResult(Box::new(RegisterResult {
                proposal_id: self.text(b),
                success: b.u8() < 180,
                yes_votes: b.num32(),
                quorum: b.num32(),
                incarnation: if b.bool() { r.incarnation } else { self.opt(b) },
                error: None,
            })),
            Message::RegisterVote(r) | Message::DeadVote(r) => {
                let resp = VoteResp {
                    proposal_id: same_id(b, &r.proposal_id),
                    vote: b.u8() < 200,
                    voter: if b.u8() < 220 { to } else { self.endpoint(b) },
                    known_incarnation: self.opt(b),
                };
                if matches!(request, Message::RegisterVote(_)) {
                    Message::RegisterVoteResp(Box::new(resp))
                } else {
                    Message::DeadVoteResp(Box::new(resp))
                }
            }
            Message::RegisterCommit(_) => Message::RegisterCommitAck,
            Message::DeadCommit(_) => Message::DeadCommitAck,
            Message::PeerListReq { .. } => Message::PeerListResp(Box::new(PeerListResp {
                peers: (0..b.small(6)).map(|_| self.endpoint(b)).collect(),
                seed: to,
                incarnations: Vec::new(),
                total: None,
                requester_entry: b.bool().then(|| (b.num(), self.status(b))),
            })),
            Message::Hello(_) => Message::HelloAck(Box::new(HelloAck {
                accepted: b.u8() < 200,
                peer: to,
                degree: b.num32(),
                incarnation: self.opt(b),
            })),
            Message::Gossip(_) => Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: b.bool(),
                prune: b.u8() < 40,
                app: false,
            }),
            Message::Digest(_) => Message::DigestResp(Box::new(DigestResp {
                responder: to,
                ids: self.ids(b),
            })),
            Message::IHave(_) => Message::IHaveAck,
            Message::Pull(_) => Message::PullResp(Box::new(PullResp {
                responder: to,
                bodies: (0..b.small(4)).map(|_| self.gossip(b).body).collect(),
            })),
            Message::SuspectReq(r) => Message::SuspectAck(Box::new(SuspectAck {
                suspect: r.suspect,
                alive: b.bool(),
                confirmer: to,
            })),
            Message::DeadReport(_) => Message::DeadResult(DeadResult {
                proposal_id: self.text(b),
                success: b.bool(),
                yes_votes: b.num32(),
                quorum: b.num32(),
            }),
            Message::Ping(_) => Message::Pong(Pong {
                responder: to,
                degree: b.bool().then(|| (b.num32() % 8) as u16),
                incarnation: std::num::NonZeroU32::new(b.num32() % 4),
                leaving: b.u8().is_multiple_of(16),
            }),
            // Mostly one answer per fact, mostly yes; sometimes the wrong count.
            Message::Confirm(r) => {
                let n = if b.u8() < 230 {
                    r.facts.len()
                } else {
                    b.small(6)
                };
                Message::ConfirmResp(Box::new(ConfirmResp {
                    seed: to,
                    vouched: (0..n).map(|_| b.u8() < 200).collect(),
                }))
            }
            Message::SeedSync(_) => {
                let mut s = self.sync(b, true);
                s.seed = to;
                Message::SeedSync(Box::new(s))
            }
            Message::StatusReq => Message::StatusReq,
            _ => self.message(b),
        }
    }
}

/// Which node a [`node_inputs`] run drives.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The first of three seeds.
    Seed,
    /// A peer of those three seeds.
    Peer,
    /// A peer in lazy-push mode.
    LazyPeer,
}

/// Runs `role` on the input sequence read from `data`; panics on a broken promise.
pub fn node_inputs(role: Role, data: &[u8]) -> Reached {
    let seeds: Vec<SocketAddr> = SEEDS.iter().copied().map(lo).collect();
    let me = match role {
        Role::Seed => seeds[0],
        Role::Peer | Role::LazyPeer => lo(ME_PEER),
    };
    let mut pool = seeds.clone();
    pool.push(lo(ME_PEER));
    pool.extend((7001..7007).map(lo));
    let world = World { me, seeds, pool };
    let init = NodeInit {
        me,
        seeds: world.seeds.clone(),
        settings: Settings {
            gossip_mode: match role {
                Role::LazyPeer => GossipMode::Lazy,
                Role::Seed | Role::Peer => GossipMode::Flood,
            },
            ..settings()
        },
        rng_seed: 7,
        unix_ms_at_zero: 1_767_225_600_000,
    };
    let node = match role {
        Role::Seed => Node::seed(init),
        Role::Peer | Role::LazyPeer => Node::peer(init),
    }
    .unwrap_or_else(|e| panic!("harness settings rejected: {e}"));
    let mut run = Run {
        world,
        node: Driven::new(node),
        now: Millis(0),
        next_conn: 0,
        pl: BTreeMap::new(),
        reached: Reached::default(),
    };
    run.feed(Input::Start);

    let mut b = Bytes::new(data);
    let mut ops = 0;
    while !b.is_empty() && ops < MAX_OPS {
        ops += 1;
        let input = match b.u8() % 10 {
            0..=2 => {
                let msg = run.world.message(&mut b);
                run.request(msg)
            }
            3 => {
                let len = usize::from(b.u8());
                let line = b.take(len);
                let conn = run.conn();
                match wire::decode(line) {
                    Ok(msg) => Input::Request { conn, msg },
                    Err(error) => Input::Refused {
                        conn,
                        why: Refusal::Undecodable(error),
                    },
                }
            }
            4..=6 if !run.node.pending().is_empty() => {
                let i = b.below(run.node.pending().len());
                let (to, request) = {
                    let p = &run.node.pending()[i];
                    (p.to, p.msg.clone())
                };
                let outcome = match b.u8() % 8 {
                    0 => Err(Failure::Timeout),
                    1 => Err(Failure::Unreachable),
                    2 => Err(Failure::BadReply),
                    3 => Ok(run.world.message(&mut b)),
                    4 => Ok(Message::error("no")),
                    _ => Ok(run.world.plausible_reply(&mut b, to, &request)),
                };
                run.respond(i, outcome);
                continue;
            }
            7 => {
                let conn = run.conn();
                let error = match b.u8() % 3 {
                    0 => DecodeError::TooLong {
                        max: wire::DEFAULT_MAX_LINE,
                    },
                    1 => DecodeError::UnknownType("NOPE".into()),
                    _ => DecodeError::Syntax("junk".into()),
                };
                let why = match b.u8() % 4 {
                    0 => Refusal::RateLimited("REGISTER_REQ"),
                    _ => Refusal::Undecodable(error),
                };
                Input::Refused { conn, why }
            }
            _ => {
                let step = u64::from(b.u16() % 2_000);
                if b.bool() {
                    if let Some(at) = run.node.next_deadline() {
                        run.now = run.now.max(at);
                    }
                }
                run.now = run.now.after(step);
                Input::Tick
            }
        };
        run.feed(input);
    }
    run.quiesce();
    run.reached
}

struct Run {
    world: World,
    /// The node, and what it and this driver owe each other.
    node: Driven,
    now: Millis,
    next_conn: u64,
    /// A seed's PL as last seen: entries only move up.
    pl: BTreeMap<SocketAddr, (u64, Status)>,
    reached: Reached,
}

impl Run {
    fn conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn request(&mut self, msg: Message) -> Input {
        Input::Request {
            conn: self.conn(),
            msg,
        }
    }

    /// Feeds `input` to the node now and checks its outputs and state.
    fn feed(&mut self, input: Input) {
        let outs = self.node.feed(self.now, input);
        self.check(outs);
    }

    /// Answers the node's pending send at `i` now and checks its outputs and state.
    fn respond(&mut self, i: usize, outcome: Result<Message, Failure>) {
        let outs = self.node.respond_nth(self.now, i, outcome);
        self.check(outs);
    }

    /// Checks the outputs of one input and the node's state, beyond the driver contract
    /// (which [`Driven`] checked).
    fn check(&mut self, outs: Vec<Output>) {
        let trace = std::env::var_os("HARNESS_TRACE").is_some();
        for out in outs {
            match out {
                Output::Send { to, msg, .. } => {
                    check_roundtrip(&msg);
                    if trace {
                        eprintln!("{:>6} send {to} {}", self.now.0, msg.type_name());
                    }
                    self.reached.sends += 1;
                }
                Output::Reply { msg, .. } => {
                    check_roundtrip(&msg);
                    self.reached.replies += 1;
                }
                Output::Event(e) => {
                    if trace {
                        eprintln!("{:>6} {e:?}", self.now.0);
                    }
                }
            }
        }
        let status = self.node.status();
        match &status.role {
            RoleStatus::Seed(s) => {
                let q = quorum(self.world.seeds.len());
                for e in &s.entries {
                    let voters: BTreeSet<_> = e.votes.iter().collect();
                    let valid = voters
                        .iter()
                        .filter(|v| self.world.seeds.contains(v))
                        .count();
                    assert!(valid >= q, "entry without a quorum certificate: {e:?}");
                    let now = (e.incarnation, e.status);
                    if let Some(before) = self.pl.insert(e.peer, now) {
                        assert!(
                            now >= before,
                            "{} moved down: {before:?} -> {now:?}",
                            e.peer
                        );
                    }
                }
                assert!(
                    s.entries.len() >= self.pl.len(),
                    "an entry disappeared from the PL"
                );
                self.reached.size = self.reached.size.max(s.entries.len());
            }
            RoleStatus::Peer(p) => {
                let max = settings().max_degree as usize;
                assert!(
                    p.neighbours.len() <= max,
                    "degree {} over the maximum {max}",
                    p.neighbours.len()
                );
                assert!(!p.neighbours.contains(&self.world.me), "own neighbour");
                assert!(
                    p.neighbours.iter().all(|n| !self.world.seeds.contains(n)),
                    "a seed as a neighbour: {:?}",
                    p.neighbours
                );
                self.reached.size = self.reached.size.max(p.neighbours.len());
            }
        }
    }

    /// Fails every outstanding send and lets time run until every request is answered.
    fn quiesce(&mut self) {
        for _ in 0..200 {
            if self.node.open().next().is_none() {
                return;
            }
            let ids: Vec<SendId> = self.node.pending().iter().map(|p| p.id).collect();
            for id in ids {
                let outs = (self.node)
                    .respond_id(self.now, id, Err(Failure::Timeout))
                    .expect("still pending");
                self.check(outs);
            }
            self.now = self
                .node
                .next_deadline()
                .unwrap_or(self.now)
                .max(self.now.after(50));
            self.feed(Input::Tick);
        }
        self.node.assert_settled();
    }
}
