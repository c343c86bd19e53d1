//! The trace hash: a digest of every delivery and timer in order (time, node, message
//! fingerprint), so that a run's replay can be checked by one number. A fingerprint is a
//! cheap, stable digest of a message's kind and the fields that matter, never a pointer.

use std::net::IpAddr;

use gossip_core::hash::{combine, hash64, mix64};
use gossip_core::msg::{Endpoint, Message};

use super::World;

fn ep_word(e: &Endpoint) -> u64 {
    let ip = match e.ip() {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => hash64(&v6.octets()),
    };
    (ip << 16) ^ u64::from(e.port())
}

/// A cheap, stable digest of a message for the trace hash: its kind and the fields that
/// matter, never a pointer.
pub(super) fn fingerprint(m: &Message) -> u64 {
    let s = |x: &str| hash64(x.as_bytes());
    match m {
        Message::Gossip(g) => {
            1 ^ (u64::from(g.body.msg_no) << 8)
                ^ (u64::from(g.hops) << 24)
                ^ ((g.body.text.len() as u64) << 40)
                ^ mix64(ep_word(&g.sender))
        }
        Message::GossipAck(a) => 2 ^ (u64::from(a.duplicate) << 8) ^ (u64::from(a.accepted) << 9),
        Message::Ping(p) => 3 ^ mix64(ep_word(&p.sender)),
        Message::Pong(p) => {
            4 ^ mix64(ep_word(&p.responder))
                ^ u64::from(p.degree.unwrap_or(0))
                ^ (p.incarnation.map_or(0, |n| u64::from(n.get())) << 32)
                ^ (u64::from(p.leaving) << 31)
        }
        Message::RegisterReq(r) => 5 ^ mix64(ep_word(&r.peer)) ^ r.incarnation.unwrap_or(0),
        Message::RegisterResult(r) => {
            6 ^ s(&r.proposal_id) ^ u64::from(r.success) ^ r.incarnation.unwrap_or(0)
        }
        Message::RegisterVote(v) | Message::DeadVote(v) => {
            7 ^ s(&v.proposal_id) ^ mix64(ep_word(&v.peer)) ^ v.incarnation.unwrap_or(0)
        }
        Message::RegisterVoteResp(v) | Message::DeadVoteResp(v) => {
            8 ^ s(&v.proposal_id) ^ u64::from(v.vote) ^ mix64(ep_word(&v.voter))
        }
        Message::RegisterCommit(c) | Message::DeadCommit(c) => {
            9 ^ s(&c.proposal_id) ^ mix64(ep_word(&c.peer)) ^ ((c.votes.len() as u64) << 32)
        }
        Message::RegisterCommitAck => 10,
        Message::DeadCommitAck => 11,
        Message::PeerListReq { requester } => 12 ^ s(requester),
        Message::PeerListResp(r) => 13 ^ ((r.peers.len() as u64) << 8) ^ mix64(ep_word(&r.seed)),
        Message::Hello(h) => 14 ^ mix64(ep_word(&h.peer)) ^ u64::from(h.degree),
        Message::HelloAck(h) => {
            15 ^ mix64(ep_word(&h.peer)) ^ u64::from(h.degree) ^ u64::from(h.accepted)
        }
        Message::SuspectReq(r) => 16 ^ mix64(ep_word(&r.suspect)) ^ ep_word(&r.requester),
        Message::SuspectAck(a) => 17 ^ mix64(ep_word(&a.suspect)) ^ u64::from(a.alive),
        Message::DeadReport(r) => 18 ^ mix64(ep_word(&r.dead)) ^ ep_word(&r.reporter),
        Message::DeadResult(r) => 19 ^ s(&r.proposal_id) ^ u64::from(r.success),
        Message::Error { reason } => 20 ^ s(reason),
        Message::SeedSync(x) => {
            21 ^ ((x.entries.len() as u64) << 8) ^ u64::from(x.reply) ^ mix64(ep_word(&x.seed))
        }
        Message::StatusReq => 22,
        Message::StatusResp(_) => 23,
        Message::Confirm(c) => 24 ^ ((c.facts.len() as u64) << 8) ^ mix64(ep_word(&c.seed)),
        Message::ConfirmResp(c) => {
            25 ^ ((c.vouched.len() as u64) << 8)
                ^ ((c.vouched.iter().filter(|v| **v).count() as u64) << 24)
                ^ mix64(ep_word(&c.seed))
        }
        Message::Digest(d) => {
            26 ^ (d.first << 8)
                ^ d.hashes.iter().fold(0, |h, &x| combine(h, x))
                ^ mix64(ep_word(&d.sender))
        }
        Message::DigestResp(r) => 27 ^ ids_word(&r.ids) ^ mix64(ep_word(&r.responder)),
        Message::IHave(i) => 28 ^ ids_word(&i.ids) ^ mix64(ep_word(&i.sender)),
        Message::IHaveAck => 29,
        Message::Pull(p) => {
            30 ^ ids_word(&p.ids) ^ (u64::from(p.graft) << 8) ^ mix64(ep_word(&p.sender))
        }
        Message::PullResp(r) => {
            31 ^ (r.bodies.iter()).fold(0, |h, b| combine(h, u64::from(b.msg_no) ^ s(&b.text)))
                ^ mix64(ep_word(&r.responder))
        }
        Message::Leave(l) => 32 ^ mix64(ep_word(&l.peer)) ^ (l.incarnation << 8),
        Message::LeaveResult(r) => 33 ^ s(&r.proposal_id) ^ u64::from(r.success),
        Message::LeaveVote(v) => {
            34 ^ s(&v.proposal_id) ^ mix64(ep_word(&v.peer)) ^ v.incarnation.unwrap_or(0)
        }
        Message::LeaveVoteResp(v) => {
            35 ^ s(&v.proposal_id) ^ u64::from(v.vote) ^ mix64(ep_word(&v.voter))
        }
        Message::LeaveCommit(c) => {
            36 ^ s(&c.proposal_id) ^ mix64(ep_word(&c.peer)) ^ ((c.votes.len() as u64) << 32)
        }
        Message::LeaveCommitAck => 37,
    }
}

/// The gossip ids a repair message names, as one word for the trace hash.
fn ids_word(ids: &[gossip_core::msg::IdGroup]) -> u64 {
    ids.iter().fold(0, |h, g| {
        g.keys
            .iter()
            .fold(combine(h, g.second), |h, &k| combine(h, k))
    })
}

impl World {
    #[inline]
    pub(super) fn hash_event(&mut self, now: u64, node: u32, fp: u64) {
        self.events += 1;
        self.trace = combine(self.trace, mix64((now << 24) ^ u64::from(node)) ^ fp);
    }
}
