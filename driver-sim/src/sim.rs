//! The simulator proper: nodes, calls in flight, the network, faults, and the run loop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use gossip_core::hash::{combine, hash64, mix64};
use gossip_core::msg::{
    CommitSync, ConfirmResp, DeadReport, Decision, Endpoint, Entry, Fact, Message, RegisterReq,
    SeedSync, Status, VoteReq, VoteResp, SYNC_BUCKETS,
};
use gossip_core::rng::Rng;
use gossip_core::seed::MAX_INCARNATION;
use gossip_core::{ConnId, Event, Failure, Input, Millis, Node, NodeInit, Output};

use crate::actor::Actor;
use crate::addr::{nowhere, Addrs, FORGER, LIAR, NOWHERE_COUNT};
use crate::checker::{Checker, Violation};
use crate::config::{
    FaultKind, ForgeKind, NetConfig, NodeRef, Partition, PartitionKind, SimConfig, Split,
};
use crate::queue::Queue;
use crate::report::{thread_cpu_seconds, Report};

/// Unix time at `Millis(0)` in every simulated node: 2026-01-01T00:00:00Z, fixed so that the
/// texts nodes make (gossip, dead reports) are the same on every run.
pub const UNIX_MS_AT_ZERO: u64 = 1_767_225_600_000;

const NONE: u64 = u64::MAX;
/// The simulator itself as a sender (the lying peer).
const EXTERNAL: u32 = u32::MAX;
/// An endpoint nobody listens on.
const NOBODY: u32 = u32::MAX - 1;
const GEN_MASK: u32 = (1 << 31) - 1;

/// What the queue holds. Small and `Copy`: messages stay in their [`Call`].
#[derive(Copy, Clone, Debug)]
enum Ev {
    /// A node's timer, valid only if the node is still in `epoch` and still wants it now.
    Timer { node: u32, epoch: u32 },
    /// A request reaches its target (`dup`: the injected second copy).
    Deliver { call: u32, gen: u32, dup: bool },
    /// The outcome of a call reaches its sender (the first one to arrive wins).
    Answer {
        call: u32,
        gen: u32,
        outcome: Outcome,
    },
    /// A peer joins for the first time.
    Start(u32),
    /// The fault at this index of the sorted schedule.
    Fault(u32),
    /// Faults stop.
    Heal,
    /// Evaluate promises 6–7 (`last`: the bound is reached; failures are violations).
    Check { last: bool },
    /// A forged request queued for later (`World::later`) is sent.
    Inject(u32),
    /// A lying seed pushes a forged commit sync.
    LiarTick(u32),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Reply,
    Unreachable,
    Timeout,
}

/// One `Output::Send`, from the send until its single `Input::Response` and the end of every
/// delivery of the request.
///
/// Two cache lines, in this order (`repr(C)`): a delivery reads only the first, the outcome
/// both. Calls in flight outnumber what the CPU cache holds, so each line read is a miss; the
/// trace hash's fingerprints are recomputed from the messages rather than stored, as the
/// nodes read those messages anyway.
#[derive(Debug, Default)]
#[repr(C, align(64))]
struct Call {
    request: Option<Message>,
    gen: u32,
    /// The target's node id, or `NOBODY` (its endpoint is then in `World::unknown_targets`).
    to: u32,
    from: u32,
    /// Deliveries of the request still in the queue.
    inflight: u8,
    /// Connections (bit 0: first copy, bit 1: duplicate) delivered and not yet answered.
    pending: u8,
    live: bool,
    /// The sender got its response (or is gone).
    done: bool,

    reply: Option<Message>,
    deadline: u64,
    from_epoch: u32,
    replied: bool,
    timeout_armed: bool,
}

/// `repr(C)`: the bookkeeping every event reads sits right before the node's own first fields
/// (see `gossip_core::Peer`), in the same cache line.
#[derive(Debug)]
#[repr(C, align(64))]
struct Slot<A> {
    /// The deadline the queued timer event is for (`NONE`: none queued).
    timer_at: u64,
    /// Bumped at every crash: events of an earlier epoch are stale.
    epoch: u32,
    /// Starts so far.
    life: u32,
    actor: Option<A>,
}

#[derive(Debug)]
struct PartState {
    /// 0: side A, 1: side B, 2: bridge.
    labels: Vec<u8>,
    blocked: [[bool; 3]; 3],
    replies_blocked: bool,
}

/// A predicate over node events that stops the run when it holds (for scenario tests).
pub type Watch = Box<dyn FnMut(u64, NodeRef, &Event) -> bool>;

/// Everything but the nodes, so a node's outputs can be carried out while it is borrowed.
struct World {
    cfg: SimConfig,
    addrs: Addrs,
    seed_list: Vec<Endpoint>,
    q: Queue<Ev>,
    calls: Vec<Call>,
    free: Vec<u32>,
    /// The endpoint of each live call to an endpoint no node listens on (rare).
    unknown_targets: BTreeMap<u32, Endpoint>,
    rng: Rng,
    link_salt: u64,
    net: NetConfig,
    part: Option<PartState>,
    trace: u64,
    events: u64,
    checker: Checker,
    healed: bool,
    converged_ms: Option<u64>,
    liveness_checked: bool,
    watch: Option<Watch>,
    watch_hit: bool,
    log: bool,
    faults: Vec<crate::config::Fault>,
    messages_lost: u64,
    /// The adversaries' own random choices, apart from the network's: a run without forgers
    /// or lying seeds draws exactly what it drew before they existed.
    adv_rng: Rng,
    /// Per seed: it is a lying seed (it lies while [`World::lying`] says so).
    liars: Vec<bool>,
    any_liars: bool,
    /// Forged requests to send later, `(seed, request)`, taken when sent.
    later: Vec<Option<(u32, Message)>>,
    /// Forged messages sent (and lies told), by kind.
    forged_sent: BTreeMap<&'static str, u64>,
    /// Numbers the forged proposal ids.
    forged_seq: u64,
}

/// A simulated cluster. See the crate documentation for the model.
pub struct Sim<A: Actor = Node> {
    nodes: Vec<Slot<A>>,
    /// The buffer the simulator lends every node for its outputs (see [`Actor::handle`]).
    outputs: Vec<Output>,
    w: World,
    /// The node the next event to dispatch is for (`NOBODY` if none or unknown): see
    /// [`Sim::read_ahead`].
    ahead: u32,
}

fn ep_word(e: &Endpoint) -> u64 {
    let ip = match e.ip() {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => hash64(&v6.octets()),
    };
    (ip << 16) ^ u64::from(e.port())
}

/// A cheap, stable digest of a message for the trace hash: its kind and the fields that
/// matter, never a pointer.
fn fingerprint(m: &Message) -> u64 {
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
    fn hash_event(&mut self, now: u64, node: u32, fp: u64) {
        self.events += 1;
        self.trace = combine(self.trace, mix64((now << 24) ^ u64::from(node)) ^ fp);
    }

    /// One-way latency from `a` to `b` now.
    #[inline]
    fn latency(&mut self, a: u32, b: u32) -> u64 {
        let n = &self.net;
        let mut l = n.latency_min_ms;
        if n.latency_max_ms > n.latency_min_ms {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let h = mix64(self.link_salt ^ (u64::from(lo) << 32 | u64::from(hi)));
            l += h % (n.latency_max_ms - n.latency_min_ms + 1);
        }
        if n.jitter_ms > 0 {
            l += self.rng.below(n.jitter_ms + 1);
        }
        if n.tail > 0.0 && self.rng.chance(n.tail) {
            l += self.rng.below(n.tail_ms + 1);
        }
        l.max(1)
    }

    #[inline]
    fn lost(&mut self) -> bool {
        self.net.drop > 0.0 && self.rng.chance(self.net.drop)
    }

    #[inline]
    fn blocked(&self, from: u32, to: u32, reply: bool) -> bool {
        match &self.part {
            None => false,
            Some(p) => {
                if reply && !p.replies_blocked {
                    return false;
                }
                match (p.labels.get(from as usize), p.labels.get(to as usize)) {
                    (Some(&a), Some(&b)) => p.blocked[a as usize][b as usize],
                    _ => false,
                }
            }
        }
    }

    fn alloc_call(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            i
        } else {
            self.calls.push(Call::default());
            (self.calls.len() - 1) as u32
        }
    }

    fn free_if_finished(&mut self, call: u32) {
        let c = &mut self.calls[call as usize];
        if c.live && c.done && c.inflight == 0 {
            c.live = false;
            c.gen = (c.gen + 1) & GEN_MASK;
            c.request = None;
            c.reply = None;
            if c.to == NOBODY {
                self.unknown_targets.remove(&call);
            }
            self.free.push(call);
        }
    }

    fn arm_timeout(&mut self, call: u32) {
        let c = &mut self.calls[call as usize];
        if !c.timeout_armed && !c.done {
            c.timeout_armed = true;
            let (deadline, gen) = (c.deadline, c.gen);
            self.q.push(
                deadline,
                Ev::Answer {
                    call,
                    gen,
                    outcome: Outcome::Timeout,
                },
            );
        }
    }

    /// Schedules an outcome arriving at `at`; past the deadline it becomes a timeout there.
    fn answer_at(&mut self, call: u32, at: u64, outcome: Outcome) {
        let c = &self.calls[call as usize];
        if at > c.deadline {
            let (a, b) = (c.from, c.to);
            self.checker.link_lost(a, b);
            self.messages_lost += 1;
            self.arm_timeout(call);
        } else {
            let gen = c.gen;
            self.q.push(at, Ev::Answer { call, gen, outcome });
        }
    }

    /// Carries out `Output::Send` from `from` (in `from_epoch`). A send that wants no response
    /// is done from the start: its request is delivered, its reply dropped, and no timeout
    /// or refusal travels back.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: u64,
        from: u32,
        from_epoch: u32,
        to_ep: Endpoint,
        msg: Message,
        deadline: Millis,
        wants_response: bool,
    ) {
        if from != EXTERNAL {
            // Counts gossip sends (statistics) and queues the DEAD_REPORT check (reported only
            // when checks are on).
            self.checker.on_send(now, from, &msg);
        }
        let to = self.addrs.node(&to_ep).unwrap_or(NOBODY);
        let call = self.alloc_call();
        if to == NOBODY {
            self.unknown_targets.insert(call, to_ep);
        }
        let c = &mut self.calls[call as usize];
        c.live = true;
        c.from = from;
        c.from_epoch = from_epoch;
        c.to = to;
        c.deadline = deadline.0.max(now);
        c.request = Some(msg);
        c.reply = None;
        c.inflight = 0;
        c.pending = 0;
        c.replied = false;
        c.timeout_armed = false;
        c.done = !wants_response;
        let gen = c.gen;
        let deadline = c.deadline;
        if to == NOBODY {
            if wants_response {
                let at = now + self.net.latency_min_ms.max(1);
                self.answer_at(call, at, Outcome::Unreachable);
            } else {
                self.free_if_finished(call);
            }
            return;
        }
        if self.blocked(from, to, false) || self.lost() {
            self.checker.link_lost(from, to);
            self.messages_lost += 1;
            self.arm_timeout(call);
            self.free_if_finished(call);
            return;
        }
        let at = now + self.latency(from, to);
        self.calls[call as usize].inflight = 1;
        self.q.push(
            at,
            Ev::Deliver {
                call,
                gen,
                dup: false,
            },
        );
        if at > deadline {
            self.checker.link_lost(from, to);
            self.arm_timeout(call);
        }
        if self.net.dup > 0.0 && self.rng.chance(self.net.dup) {
            let at = now + self.latency(from, to);
            self.calls[call as usize].inflight += 1;
            self.q.push(
                at,
                Ev::Deliver {
                    call,
                    gen,
                    dup: true,
                },
            );
        }
    }

    /// Carries out `Output::Reply` from `node`.
    fn reply(&mut self, now: u64, node: u32, conn: ConnId, mut msg: Message) {
        self.checker.on_reply(now, &msg);
        let call = (conn.0 & 0xffff_ffff) as u32;
        let gen = ((conn.0 >> 32) as u32) & GEN_MASK;
        let bit = if conn.0 >> 63 == 1 { 2 } else { 1 };
        let Some(c) = self.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen || c.to != node {
            return; // the call is over (timed out, sender gone): the reply goes nowhere
        }
        c.pending &= !bit;
        if c.replied || c.done {
            return; // a duplicate's reply: the sender sees only the first
        }
        c.replied = true;
        let from = c.from;
        if from == EXTERNAL {
            c.done = true;
            self.free_if_finished(call);
            return;
        }
        if self.blocked(node, from, true) || self.lost() {
            self.checker.link_lost(node, from);
            self.messages_lost += 1;
            self.arm_timeout(call);
            return;
        }
        if self.any_liars && self.lying(node) {
            self.forge_sync_reply(node, &mut msg);
        }
        let c = &mut self.calls[call as usize];
        c.reply = Some(msg);
        let at = now + self.latency(node, from);
        self.answer_at(call, at, Outcome::Reply);
    }

    /// Carries out one output of `node` (in `epoch`), in the order the node made them.
    #[inline]
    fn output(&mut self, now: u64, node: u32, epoch: u32, o: Output) {
        match o {
            Output::Send {
                to,
                msg,
                deadline,
                wants_response,
            } => self.send(now, node, epoch, to, msg, deadline, wants_response),
            Output::Reply { conn, msg } => self.reply(now, node, conn, msg),
            Output::Event(ev) => self.event(now, node, &ev),
        }
    }

    fn event(&mut self, now: u64, node: u32, ev: &Event) {
        if self.log {
            eprintln!("{now:>9} {} {ev:?}", self.addrs.endpoint(node));
        }
        if self.cfg.check_safety
            || matches!(
                ev,
                // Statistics need these even when the checks are off.
                Event::GossipFirstReceived { .. }
                    | Event::GossipGenerated { .. }
                    | Event::NeighbourAdded { .. }
                    | Event::NeighbourDropped { .. }
                    | Event::EntryChanged { .. }
                    | Event::RegistrationQuorum { .. }
                    | Event::Rejoining { .. }
            )
        {
            self.checker.on_event(now, node, ev);
        }
        if let Some(w) = &mut self.watch {
            let r = if self.addrs.is_seed(node) {
                NodeRef::Seed(node)
            } else {
                NodeRef::Peer(node - self.addrs.seeds)
            };
            if w(now, r, ev) {
                self.watch_hit = true;
            }
        }
    }

    // ----- adversaries -----

    /// True while seed `node` lies.
    #[inline]
    fn lying(&self, node: u32) -> bool {
        self.any_liars
            && self.liars.get(node as usize).copied().unwrap_or(false)
            && !(self.healed && self.cfg.liars_stop_at_heal)
    }

    /// A fact of a commit kind about peer `victim` (`k`: its current incarnation, 1 if none).
    fn forged_fact(&mut self, kind: ForgeKind, victim: u32) -> Fact {
        let a = self.addrs;
        if a.peers == 0 || kind == ForgeKind::AdmitNowhere {
            return Fact {
                peer: nowhere(self.adv_rng.below(u64::from(NOWHERE_COUNT)) as u32),
                incarnation: 1,
                status: Status::Alive,
            };
        }
        let j = victim % a.peers;
        let k = (self.checker.peers.get(j as usize))
            .and_then(|p| p.incarnation)
            .unwrap_or(1);
        let (incarnation, status) = match kind {
            ForgeKind::RemoveCurrent => (k, Status::Removed),
            ForgeKind::RemoveNext => (k + 1, Status::Removed),
            ForgeKind::RemoveHuge => (MAX_INCARNATION - 1, Status::Removed),
            _ => (k + 1, Status::Alive),
        };
        Fact {
            peer: a.endpoint(a.seeds + j),
            incarnation,
            status,
        }
    }

    /// A forged fact of a random commit kind about a random peer.
    fn random_forged_fact(&mut self) -> Fact {
        let kinds = ForgeKind::COMMITS;
        let kind = kinds[self.adv_rng.below(kinds.len() as u64) as usize];
        let victim = self.adv_rng.below(u64::from(self.addrs.peers.max(1))) as u32;
        self.forged_fact(kind, victim)
    }

    /// A quorum of distinct configured seeds, from seed `first` on in config order: a
    /// certificate that names real seeds.
    fn quorum_from(&self, first: u32) -> Vec<Endpoint> {
        let n = self.addrs.seeds;
        let q = gossip_core::quorum(n as usize) as u32;
        (0..q)
            .map(|i| self.addrs.endpoint((first + i) % n))
            .collect()
    }

    /// A certificate naming a quorum of real seeds from a random one on.
    fn random_quorum(&mut self) -> Vec<Endpoint> {
        let first = self.adv_rng.below(u64::from(self.addrs.seeds)) as u32;
        self.quorum_from(first)
    }

    /// A fresh proposal id, as if `votes`' first seed had proposed it.
    fn forged_id(&mut self, votes: &[Endpoint]) -> String {
        self.forged_seq += 1;
        let source = votes.first().copied().unwrap_or(FORGER);
        format!("{source}#forged{}", self.forged_seq)
    }

    /// A `REGISTER_COMMIT` / `SEED_DEAD_COMMIT` sync of `fact` with the certificate `votes`.
    fn forged_commit(&mut self, fact: Fact, votes: Vec<Endpoint>, id: String) -> Message {
        let source_seed = votes.first().copied().unwrap_or(FORGER);
        let sync = Box::new(CommitSync {
            proposal_id: id,
            decision: Decision::Commit,
            peer: fact.peer,
            source_seed,
            incarnation: Some(fact.incarnation),
            votes,
        });
        match fact.status {
            Status::Alive => Message::RegisterCommit(sync),
            Status::Removed => Message::DeadCommit(sync),
        }
    }

    /// Sends a forged request to seed `to` from outside the cluster, and notes the facts it
    /// puts forward.
    fn inject(&mut self, now: u64, to: u32, msg: Message, what: &'static str) {
        let mut note = |peer, incarnation, status| self.checker.forged(peer, incarnation, status);
        match &msg {
            Message::RegisterCommit(c) | Message::DeadCommit(c) => {
                let status = match msg {
                    Message::RegisterCommit(_) => Status::Alive,
                    _ => Status::Removed,
                };
                note(c.peer, c.incarnation.unwrap_or(0), status);
            }
            Message::RegisterVote(v) => note(v.peer, v.incarnation.unwrap_or(0), Status::Alive),
            Message::DeadVote(v) => note(v.peer, v.incarnation.unwrap_or(0), Status::Removed),
            Message::RegisterReq(r) => note(r.peer, r.incarnation.unwrap_or(1), Status::Alive),
            Message::SeedSync(x) => {
                for e in &x.entries {
                    note(e.peer, e.incarnation, e.status);
                }
            }
            _ => {}
        }
        *self.forged_sent.entry(what).or_insert(0) += 1;
        let deadline = Millis(now + self.cfg.settings.request_timeout_ms);
        let to = self.addrs.endpoint(to);
        self.send(now, EXTERNAL, 0, to, msg, deadline, false);
    }

    /// What lying seed `liar` answers instead of its node: yes to every vote; to a
    /// `SEED_CONFIRM`, vouching for every fact, or one time in four denying them all (its own
    /// votes too). `None`: the node answers.
    fn lie(&mut self, msg: &Message, liar: u32) -> Option<Message> {
        let me = self.addrs.endpoint(liar);
        let yes = |v: &VoteReq| {
            Box::new(VoteResp {
                proposal_id: v.proposal_id.clone(),
                vote: true,
                voter: me,
                known_incarnation: None,
            })
        };
        let (lie, what) = match msg {
            Message::RegisterVote(v) => (Message::RegisterVoteResp(yes(v)), "vote_lie"),
            Message::DeadVote(v) => (Message::DeadVoteResp(yes(v)), "vote_lie"),
            Message::Confirm(c) => {
                let deny = self.adv_rng.chance(0.25);
                let resp = ConfirmResp {
                    seed: me,
                    vouched: vec![!deny; c.facts.len()],
                };
                let what = if deny { "confirm_deny" } else { "confirm_lie" };
                (Message::ConfirmResp(Box::new(resp)), what)
            }
            _ => return None,
        };
        *self.forged_sent.entry(what).or_insert(0) += 1;
        Some(lie)
    }

    /// Lying seed `liar`'s `SEED_SYNC` reply gets two forged entries whose certificates name
    /// it and the seeds after it.
    fn forge_sync_reply(&mut self, liar: u32, msg: &mut Message) {
        let Message::SeedSync(x) = msg else { return };
        if !x.reply {
            return;
        }
        for _ in 0..2 {
            let fact = self.random_forged_fact();
            self.checker
                .forged(fact.peer, fact.incarnation, fact.status);
            x.entries.push(Entry {
                peer: fact.peer,
                incarnation: fact.incarnation,
                status: fact.status,
                votes: self.quorum_from(liar),
            });
        }
        *self.forged_sent.entry("sync_reply").or_insert(0) += 1;
    }

    fn stopped(&self) -> bool {
        self.watch_hit || (self.cfg.stop_on_violation && self.checker.violation_count > 0)
    }
}

impl<A: Actor> Sim<A> {
    /// A cluster for `cfg`: seeds start at 0, peers at their join times, faults are queued.
    /// Fails if the settings do not validate.
    pub fn new(cfg: SimConfig) -> Result<Sim<A>, String> {
        cfg.settings.validate().map_err(|e| e.0)?;
        if cfg.seeds == 0 {
            return Err("at least one seed is needed".into());
        }
        if cfg.seeds > 60_000 || cfg.peers > 254 << 16 {
            return Err("too many nodes for the address plan".into());
        }
        let mut liars = cfg.lying_seeds.clone();
        liars.sort_unstable();
        liars.dedup();
        if liars.len() != cfg.lying_seeds.len()
            || liars.iter().any(|&i| i >= cfg.seeds)
            || liars.len() as u32 > (cfg.seeds - 1) / 2
        {
            return Err(format!(
                "lying seeds {:?}: distinct seeds of the config, at most a minority ({})",
                cfg.lying_seeds,
                (cfg.seeds - 1) / 2
            ));
        }
        let addrs = Addrs {
            seeds: cfg.seeds,
            peers: cfg.peers,
        };
        let mut faults = cfg.faults.clone();
        if let Some(h) = cfg.heal_at_ms {
            faults.retain(|f| f.at_ms < h);
        }
        faults.sort_by_key(|f| f.at_ms); // stable: ties keep list order
        let w = World {
            addrs,
            seed_list: addrs.seed_list(),
            q: Queue::default(),
            calls: Vec::new(),
            unknown_targets: BTreeMap::new(),
            free: Vec::new(),
            rng: Rng::new(mix64(cfg.seed ^ 0x7369_6d6e_6574_0001)),
            link_salt: mix64(cfg.seed ^ 0x6c69_6e6b_0002),
            net: cfg.net.clone(),
            part: None,
            trace: mix64(cfg.seed),
            events: 0,
            checker: Checker::new(addrs),
            healed: false,
            converged_ms: None,
            liveness_checked: false,
            watch: None,
            watch_hit: false,
            log: false,
            faults,
            messages_lost: 0,
            adv_rng: Rng::new(mix64(cfg.seed ^ 0x6164_7665_7273_0003)),
            liars: (0..cfg.seeds).map(|i| cfg.is_lying_seed(i)).collect(),
            any_liars: !cfg.lying_seeds.is_empty(),
            later: Vec::new(),
            forged_sent: BTreeMap::new(),
            forged_seq: 0,
            cfg,
        };
        let mut w = w;
        w.checker.enabled = w.cfg.check_safety;
        w.checker.set_liars(&w.cfg.lying_seeds);
        let mut sim = Sim {
            nodes: (0..addrs.nodes())
                .map(|_| Slot {
                    actor: None,
                    epoch: 0,
                    timer_at: NONE,
                    life: 0,
                })
                .collect(),
            outputs: Vec::new(),
            ahead: NOBODY,
            w,
        };
        for j in 0..addrs.peers {
            let at = sim.w.cfg.join_at_ms(j);
            sim.w.q.push(at, Ev::Start(addrs.seeds + j));
        }
        for (i, f) in sim.w.faults.iter().enumerate() {
            sim.w.q.push(f.at_ms, Ev::Fault(i as u32));
        }
        if let Some(h) = sim.w.cfg.heal_at_ms {
            sim.w.q.push(h, Ev::Heal);
            if sim.w.cfg.liveness {
                let bound = sim.w.cfg.liveness_bound_ms();
                let mut t = h + 1_000;
                while t < h + bound {
                    sim.w.q.push(t, Ev::Check { last: false });
                    t += 1_000;
                }
                sim.w.q.push(h + bound, Ev::Check { last: true });
            }
        }
        for s in 0..addrs.seeds {
            sim.start_node(0, s);
        }
        let interval = sim.w.cfg.settings.anti_entropy_interval_ms;
        for &liar in &sim.w.cfg.lying_seeds {
            let at = 1 + sim.w.adv_rng.below(interval);
            sim.w.q.push(at, Ev::LiarTick(liar));
        }
        Ok(sim)
    }

    /// Prints every node event to stderr as it happens (`time node event`).
    pub fn set_log(&mut self, on: bool) {
        self.w.log = on;
    }

    /// Stops [`Sim::run_until`] right after the step in which `watch` returns true.
    pub fn set_watch(&mut self, watch: Option<Watch>) {
        self.w.watch = watch;
        self.w.watch_hit = false;
    }

    /// The config this run follows.
    pub fn config(&self) -> &SimConfig {
        &self.w.cfg
    }

    /// The address plan.
    pub fn addrs(&self) -> Addrs {
        self.w.addrs
    }

    /// Current simulated time (ms).
    pub fn now(&self) -> u64 {
        self.w.q.now()
    }

    /// Events so far: messages delivered to nodes and timers fired at them.
    pub fn events(&self) -> u64 {
        self.w.events
    }

    /// Hash of everything delivered so far, in order: same seed and config, same hash.
    pub fn trace_hash(&self) -> u64 {
        self.w.trace
    }

    /// Violations found so far (the first few in full).
    pub fn violations(&self) -> &[Violation] {
        &self.w.checker.violations
    }

    /// The ghost state and statistics.
    pub fn checker(&self) -> &Checker {
        &self.w.checker
    }

    /// The node `r`, if it is up.
    pub fn node(&self, r: NodeRef) -> Option<&A> {
        self.nodes.get(self.id(r) as usize)?.actor.as_ref()
    }

    /// The endpoint of `r`.
    pub fn endpoint(&self, r: NodeRef) -> Endpoint {
        self.w.addrs.endpoint(self.id(r))
    }

    /// Time from healing until promises 6–7 first held (checked every second), if they did.
    pub fn converged_ms(&self) -> Option<u64> {
        self.w.converged_ms
    }

    fn id(&self, r: NodeRef) -> u32 {
        match r {
            NodeRef::Seed(i) => i,
            NodeRef::Peer(j) => self.w.addrs.seeds + j,
        }
    }

    /// Runs until simulated time `until_ms` (or a stop). Returns false if it stopped early on
    /// a violation or the watch.
    pub fn run_until(&mut self, until_ms: u64) -> bool {
        while let Some((now, ev)) = self.w.q.pop_until(until_ms) {
            self.read_ahead();
            self.dispatch(now, ev);
            if self.w.stopped() {
                return false;
            }
        }
        true
    }

    /// Runs the whole configured run and reports.
    pub fn run(&mut self) -> Report {
        let start = Instant::now();
        let cpu_start = thread_cpu_seconds();
        let end = self.w.cfg.end_ms();
        self.run_until(end);
        self.finish();
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_start
            .zip(thread_cpu_seconds())
            .map(|(a, b)| (b - a).max(0.0));
        Report::build(self, wall, cpu)
    }

    /// Starts two cache misses of the coming events while this one is handled: the first line
    /// of the next event's node, and the call of the event after it (which names that event's
    /// node for the next step). The simulator visits a node or a call only now and then, so
    /// each is a miss to main memory; loaded early, it overlaps with this event's own misses
    /// instead of following them (3–5 % less wall time at 1000 peers × 10 gossips). Safe Rust
    /// has no prefetch instruction, so these are plain loads whose values are discarded.
    #[inline]
    fn read_ahead(&mut self) {
        if let Some(slot) = self.nodes.get(self.ahead as usize) {
            std::hint::black_box(slot.timer_at);
        }
        let call_node = |call: u32, pick: fn(&Call) -> u32| {
            self.w.calls.get(call as usize).map_or(NOBODY, pick)
        };
        self.ahead = match self.w.q.peek_now(1) {
            Some(&Ev::Timer { node, .. }) => node,
            Some(&Ev::Deliver { call, .. }) => call_node(call, |c| c.to),
            Some(&Ev::Answer { call, .. }) => call_node(call, |c| c.from),
            _ => NOBODY,
        };
    }

    fn dispatch(&mut self, now: u64, ev: Ev) {
        match ev {
            Ev::Timer { node, epoch } => {
                let slot = &mut self.nodes[node as usize];
                if slot.epoch != epoch || slot.timer_at != now {
                    return;
                }
                slot.timer_at = NONE;
                let Some(actor) = slot.actor.as_mut() else {
                    return;
                };
                self.w.hash_event(now, node, 0x7469_636b);
                actor.handle(Millis(now), Input::Tick, &mut self.outputs);
                self.after(now, node, true);
            }
            Ev::Deliver { call, gen, dup } => self.deliver(now, call, gen, dup),
            Ev::Answer { call, gen, outcome } => self.answer(now, call, gen, outcome),
            Ev::Start(node) => self.start_node(now, node),
            Ev::Fault(i) => {
                if let Some(f) = self.w.faults.get(i as usize) {
                    let kind = f.kind.clone();
                    self.apply(now, kind);
                }
            }
            Ev::Heal => self.heal(now),
            Ev::Check { last } => self.check_liveness(now, last),
            Ev::Inject(i) => {
                if let Some((to, msg)) = self.w.later.get_mut(i as usize).and_then(Option::take) {
                    self.w.inject(now, to, msg, "commit");
                }
            }
            Ev::LiarTick(liar) => self.liar_tick(now, liar),
        }
    }

    /// After a node handled an input: carry out its outputs and queue its next timer.
    #[inline]
    fn after(&mut self, now: u64, node: u32, ticked: bool) {
        let slot = &mut self.nodes[node as usize];
        let Some(actor) = slot.actor.as_mut() else {
            self.outputs.clear();
            return;
        };
        let epoch = slot.epoch;
        let w = &mut self.w;
        for o in self.outputs.drain(..) {
            w.output(now, node, epoch, o);
        }
        w.checker.end_step(now);
        if let Some(d) = actor.next_deadline() {
            // After a tick a deadline that is still due would spin: move it on by 1 ms.
            let at = if ticked {
                d.0.max(now + 1)
            } else {
                d.0.max(now)
            };
            if slot.timer_at != at {
                slot.timer_at = at;
                self.w.q.push(at, Ev::Timer { node, epoch });
            }
        }
    }

    fn deliver(&mut self, now: u64, call: u32, gen: u32, dup: bool) {
        let Some(c) = self.w.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen {
            return;
        }
        c.inflight -= 1;
        let to = c.to;
        let from = c.from;
        let up = self
            .nodes
            .get(to as usize)
            .is_some_and(|s| s.actor.is_some());
        if up {
            let bit = if dup { 2 } else { 1 };
            c.pending |= bit;
            let msg = if c.done && c.inflight == 0 {
                c.request.take()
            } else {
                c.request.clone()
            };
            let Some(msg) = msg else {
                return;
            };
            let conn = ConnId(u64::from(call) | u64::from(gen) << 32 | u64::from(dup) << 63);
            self.w.hash_event(now, to, fingerprint(&msg));
            if self.w.any_liars && self.w.lying(to) {
                if let Some(lie) = self.w.lie(&msg, to) {
                    // The lying seed answers in its node's stead; the node never sees it.
                    self.w.reply(now, to, conn, lie);
                    self.w.free_if_finished(call);
                    return;
                }
            }
            if let Some(actor) = self.nodes[to as usize].actor.as_mut() {
                let input = Input::Request { conn, msg };
                actor.handle(Millis(now), input, &mut self.outputs);
            }
            self.after(now, to, false);
            let c = &self.w.calls[call as usize];
            if c.pending & bit != 0 && !c.done {
                self.w.arm_timeout(call); // a deferred reply may never come
            }
        } else if !dup && !c.done {
            // Connection refused; the refusal travels back.
            let at = now
                + if from == EXTERNAL {
                    1
                } else {
                    self.w.latency(to, from)
                };
            self.w.answer_at(call, at, Outcome::Unreachable);
        }
        self.w.free_if_finished(call);
    }

    fn answer(&mut self, now: u64, call: u32, gen: u32, outcome: Outcome) {
        let Some(c) = self.w.calls.get_mut(call as usize) else {
            return;
        };
        if !c.live || c.gen != gen || c.done {
            return;
        }
        c.done = true;
        let from = c.from;
        let sender_here = from != EXTERNAL
            && self
                .nodes
                .get(from as usize)
                .is_some_and(|s| s.epoch == c.from_epoch && s.actor.is_some());
        if sender_here {
            let request = if c.inflight == 0 {
                c.request.take()
            } else {
                c.request.clone()
            };
            let result = match outcome {
                Outcome::Reply => c.reply.take().ok_or(Failure::Timeout),
                Outcome::Unreachable => Err(Failure::Unreachable),
                Outcome::Timeout => Err(Failure::Timeout),
            };
            let to = match c.to {
                NOBODY => self.w.unknown_targets.get(&call).copied(),
                node => Some(self.w.addrs.endpoint(node)),
            };
            if let (Some(request), Some(to)) = (request, to) {
                let fp = fingerprint(&request)
                    ^ match &result {
                        Ok(reply) => fingerprint(reply) << 1,
                        Err(f) => 0x6661_696c ^ *f as u64,
                    };
                self.w.hash_event(now, from, fp);
                if let Some(actor) = self.nodes[from as usize].actor.as_mut() {
                    let input = Input::Response {
                        to,
                        request,
                        outcome: result,
                    };
                    actor.handle(Millis(now), input, &mut self.outputs);
                }
                self.after(now, from, false);
            }
        }
        self.w.free_if_finished(call);
    }

    fn start_node(&mut self, now: u64, node: u32) {
        let slot = &mut self.nodes[node as usize];
        if slot.actor.is_some() {
            return;
        }
        slot.life += 1;
        let rng_seed = mix64(combine(
            combine(self.w.cfg.seed, u64::from(node)),
            u64::from(slot.life),
        ));
        let init = NodeInit {
            me: self.w.addrs.endpoint(node),
            seeds: self.w.seed_list.clone(),
            settings: self.w.cfg.settings.clone(),
            rng_seed,
            unix_ms_at_zero: UNIX_MS_AT_ZERO,
        };
        self.w.checker.started(node);
        match A::start(self.w.addrs.is_seed(node), init) {
            Ok(a) => {
                let actor = slot.actor.insert(a);
                slot.timer_at = NONE;
                actor.handle(Millis(now), Input::Start, &mut self.outputs);
                self.after(now, node, false);
            }
            Err(e) => {
                let what = format!("{} failed to start: {e}", self.w.addrs.endpoint(node));
                self.w.checker.violation(now, 0, what);
            }
        }
    }

    /// Crashes node `r` now: its state and queued events are lost, requests to it fail.
    pub fn crash(&mut self, r: NodeRef) {
        let now = self.now();
        let node = self.id(r);
        self.crash_node(now, node);
    }

    /// Restarts node `r` now with fresh state (no-op if it is up).
    pub fn restart(&mut self, r: NodeRef) {
        let now = self.now();
        let node = self.id(r);
        self.start_node(now, node);
    }

    /// Lets `f` act on node `r` (if up) as if it were handling an input now, with its outputs
    /// going to `f`'s second argument; they are then carried out. For tests that need a node
    /// to do something on cue.
    pub fn with_node<R>(
        &mut self,
        r: NodeRef,
        f: impl FnOnce(&mut A, &mut Vec<Output>) -> R,
    ) -> Option<R> {
        let now = self.now();
        let node = self.id(r);
        let actor = self.nodes.get_mut(node as usize)?.actor.as_mut()?;
        let res = f(actor, &mut self.outputs);
        self.after(now, node, false);
        Some(res)
    }

    /// Applies a fault now (as if scheduled).
    pub fn inject(&mut self, kind: FaultKind) {
        let now = self.now();
        self.apply(now, kind);
    }

    fn crash_node(&mut self, now: u64, node: u32) {
        let Some(slot) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if slot.actor.take().is_none() {
            return;
        }
        slot.epoch += 1;
        slot.timer_at = NONE;
        self.w.checker.crashed(now, node);
        // Every request it accepted and had not answered fails for its sender.
        for call in 0..self.w.calls.len() as u32 {
            let c = &mut self.w.calls[call as usize];
            if c.live && c.to == node && c.pending != 0 && !c.done {
                c.pending = 0;
                let from = c.from;
                let at = now
                    + if from == EXTERNAL {
                        1
                    } else {
                        self.w.latency(node, from)
                    };
                self.w.answer_at(call, at, Outcome::Unreachable);
            }
        }
    }

    fn apply(&mut self, now: u64, kind: FaultKind) {
        match kind {
            FaultKind::Crash(r) => {
                let n = self.id(r);
                self.crash_node(now, n);
            }
            FaultKind::Restart(r) => {
                let n = self.id(r);
                if (n as usize) < self.nodes.len() && self.nodes[n as usize].life > 0 {
                    self.start_node(now, n);
                }
            }
            FaultKind::Partition(p) => self.w.part = Some(self.partition_state(&p)),
            FaultKind::HealPartition => self.w.part = None,
            FaultKind::SetDrop(x) => self.w.net.drop = x.clamp(0.0, 1.0),
            FaultKind::SetDup(x) => self.w.net.dup = x.clamp(0.0, 1.0),
            FaultKind::SetJitter(j) => self.w.net.jitter_ms = j,
            FaultKind::Lie { peer, seed } => self.lie(now, peer, seed),
            FaultKind::Forge { kind, seed, peer } => self.forge(now, kind, seed, peer),
        }
    }

    fn partition_state(&self, p: &Partition) -> PartState {
        let n = self.w.addrs.nodes();
        let unit = |h: u64| (h >> 11) as f64 / (1u64 << 53) as f64;
        let mut labels: Vec<u8> = match &p.split {
            Split::Random { fraction, salt } => (0..n)
                .map(|i| {
                    u8::from(unit(mix64(salt ^ u64::from(i).wrapping_mul(0x9e37))) >= *fraction)
                })
                .collect(),
            Split::Nodes(list) => {
                let mut l = vec![1u8; n as usize];
                for r in list {
                    if let Some(x) = l.get_mut(self.id(*r) as usize) {
                        *x = 0;
                    }
                }
                l
            }
        };
        let mut blocked = [[false; 3]; 3];
        let mut replies_blocked = true;
        match p.kind {
            PartitionKind::Symmetric => {
                blocked[0][1] = true;
                blocked[1][0] = true;
            }
            PartitionKind::OneWay => {
                blocked[0][1] = true;
                replies_blocked = false;
            }
            PartitionKind::Bridge { bridge } => {
                blocked[0][1] = true;
                blocked[1][0] = true;
                let salt = match &p.split {
                    Split::Random { salt, .. } => *salt,
                    Split::Nodes(_) => 0,
                };
                for (i, l) in labels.iter_mut().enumerate() {
                    if unit(mix64(!salt ^ (i as u64).wrapping_mul(0x7f4a))) < bridge {
                        *l = 2;
                    }
                }
            }
        }
        PartState {
            labels,
            blocked,
            replies_blocked,
        }
    }

    /// The simulator plays a lying peer: a `DEAD_REPORT` accusing live peer `peer`, with two
    /// made-up witnesses, to seed `seed`.
    fn lie(&mut self, now: u64, peer: u32, seed: u32) {
        let a = self.w.addrs;
        if peer >= a.peers || seed >= a.seeds {
            return;
        }
        let dead = a.endpoint(a.seeds + peer);
        let witnesses = (1..=2)
            .map(|k| a.endpoint(a.seeds + (peer + k) % a.peers))
            .collect();
        let ts = (UNIX_MS_AT_ZERO + now) / 1000;
        let msg = Message::DeadReport(Box::new(DeadReport {
            dead,
            self_ip: LIAR.ip(),
            timestamp: ts,
            reporter: LIAR,
            text: Some(format!(
                "Dead Node:{}:{}:{ts}:{}",
                dead.ip(),
                dead.port(),
                LIAR.ip()
            )),
            incarnation: None,
            witnesses,
        }));
        let deadline = Millis(now + self.w.cfg.settings.register_timeout_ms);
        self.w
            .send(now, EXTERNAL, 0, a.endpoint(seed), msg, deadline, true);
    }

    /// The simulator plays a forger: messages of `kind` about peer `peer` to seed `seed`
    /// (see [`ForgeKind`]), from a stranger's address, certificates naming real seeds.
    fn forge(&mut self, now: u64, kind: ForgeKind, seed: u32, peer: u32) {
        let a = self.w.addrs;
        if seed >= a.seeds {
            return;
        }
        let w = &mut self.w;
        match kind {
            ForgeKind::RemoveCurrent
            | ForgeKind::RemoveNext
            | ForgeKind::RemoveHuge
            | ForgeKind::AdmitNowhere
            | ForgeKind::AdmitBumped => {
                let fact = w.forged_fact(kind, peer);
                let votes = w.random_quorum();
                let id = w.forged_id(&votes);
                let msg = w.forged_commit(fact, votes, id);
                w.inject(now, seed, msg, "commit");
            }
            ForgeKind::SyncEntries => {
                let mut entries = Vec::new();
                for k in ForgeKind::COMMITS {
                    let fact = w.forged_fact(k, peer);
                    entries.push(Entry {
                        peer: fact.peer,
                        incarnation: fact.incarnation,
                        status: fact.status,
                        votes: w.random_quorum(),
                    });
                }
                // A pull carrying entries, and a "reply" pushed as a request.
                for reply in [false, true] {
                    let msg = Message::SeedSync(Box::new(SeedSync {
                        seed: a.endpoint((seed + 1) % a.seeds),
                        buckets: vec![0; SYNC_BUCKETS],
                        entries: entries.clone(),
                        reply,
                    }));
                    w.inject(now, seed, msg, "sync");
                }
            }
            ForgeKind::SolicitVotes => {
                // Ask a quorum of seeds (from the target on) to vote in a round a real seed
                // is named as proposing; once they answered, carry the commits naming exactly
                // them to the target.
                let asked = w.quorum_from(seed);
                let proposer = a.endpoint((seed + 1) % a.seeds);
                let later = now + w.cfg.settings.vote_timeout_ms + 2 * w.net.max_latency_ms();
                for kind in [
                    ForgeKind::RemoveCurrent,
                    ForgeKind::AdmitBumped,
                    ForgeKind::AdmitNowhere,
                ] {
                    let fact = w.forged_fact(kind, peer);
                    let id = w.forged_id(&[proposer]);
                    let req = Box::new(VoteReq {
                        proposal_id: id.clone(),
                        peer: fact.peer,
                        incarnation: Some(fact.incarnation),
                        proposer,
                    });
                    let ask = match fact.status {
                        Status::Alive => Message::RegisterVote(req),
                        Status::Removed => Message::DeadVote(req),
                    };
                    for voter in &asked {
                        if let Some(v) = a.node(voter) {
                            w.inject(now, v, ask.clone(), "vote");
                        }
                    }
                    let commit = w.forged_commit(fact, asked.clone(), id);
                    w.q.push(later, Ev::Inject(w.later.len() as u32));
                    w.later.push(Some((seed, commit)));
                }
            }
            ForgeKind::RegisterHuge | ForgeKind::RegisterNowhere => {
                let (peer, incarnation) = if kind == ForgeKind::RegisterHuge && a.peers > 0 {
                    (a.endpoint(a.seeds + peer % a.peers), Some(MAX_INCARNATION))
                } else {
                    let k = w.adv_rng.below(u64::from(NOWHERE_COUNT)) as u32;
                    (nowhere(k), None)
                };
                let msg = Message::RegisterReq(Box::new(RegisterReq { peer, incarnation }));
                w.inject(now, seed, msg, "register");
            }
        }
    }

    /// Lying seed `liar` pushes a forged commit sync (its certificate naming the liar and the
    /// seeds after it) to a random other seed, every anti-entropy interval while it lies.
    fn liar_tick(&mut self, now: u64, liar: u32) {
        if !self.w.lying(liar) {
            return; // it stopped lying for good
        }
        let n = self.w.addrs.seeds;
        if self.nodes[liar as usize].actor.is_some() && n > 1 {
            let to = (liar + 1 + self.w.adv_rng.below(u64::from(n - 1)) as u32) % n;
            let fact = self.w.random_forged_fact();
            let votes = self.w.quorum_from(liar);
            let id = self.w.forged_id(&votes);
            let msg = self.w.forged_commit(fact, votes, id);
            self.w.inject(now, to, msg, "liar_commit");
        }
        let interval = self.w.cfg.settings.anti_entropy_interval_ms;
        self.w.q.push(now + interval, Ev::LiarTick(liar));
    }

    fn heal(&mut self, now: u64) {
        self.w.healed = true;
        self.w.part = None;
        self.w.net = self.w.cfg.net.clone();
        for s in 0..self.w.addrs.seeds {
            if self.nodes[s as usize].actor.is_none() {
                self.start_node(now, s);
            }
        }
    }

    /// Promises 6 and 7 as they stand now: the failures, in words.
    pub fn liveness_failures(&self) -> Vec<(u8, String)> {
        let a = self.w.addrs;
        let ck = &self.w.checker;
        // Lying seeds that lie to the end hold anything: promises 6–7 are about the others.
        let counted = |s: u32| self.w.cfg.liars_stop_at_heal || !self.w.checker.is_liar(s);
        let live_seeds: Vec<u32> = (0..a.seeds)
            .filter(|&s| self.nodes[s as usize].actor.is_some() && counted(s))
            .collect();
        let mut fails = Vec::new();
        if live_seeds.len() < gossip_core::quorum(a.seeds as usize) {
            return fails; // no quorum of live seeds: nothing is promised
        }
        // 6: crashed peers that someone could detect are removed at every live seed.
        for rec in &ck.crashes {
            let (Some(inc), p) = (rec.incarnation, &ck.peers[rec.peer as usize]) else {
                continue;
            };
            if p.alive {
                continue; // it came back
            }
            let witnessed = rec.neighbours.iter().any(|&(n, life)| {
                let q = &ck.peers[(n - a.seeds) as usize];
                q.alive && q.life == life
            });
            if !witnessed {
                continue;
            }
            let ep = a.endpoint(a.seeds + rec.peer);
            for &s in &live_seeds {
                if let Some(&(i, Status::Alive)) = ck.seed_pl[s as usize].get(&ep) {
                    if i <= inc {
                        fails.push((
                            6,
                            format!(
                                "peer {ep} crashed at {} ms is still alive at seed {}",
                                rec.at_ms,
                                a.endpoint(s)
                            ),
                        ));
                        break;
                    }
                }
            }
        }
        // 7: all live seeds hold the same Peer List, with every live registered peer in it.
        let first = &ck.seed_pl[live_seeds[0] as usize];
        for &s in &live_seeds[1..] {
            let pl = &ck.seed_pl[s as usize];
            if pl != first {
                let diff = first
                    .iter()
                    .find(|(k, v)| pl.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k}: {v:?} vs {:?}", pl.get(k)))
                    .or_else(|| {
                        pl.iter()
                            .find(|(k, _)| !first.contains_key(*k))
                            .map(|(k, v)| format!("{k}: absent vs {v:?}"))
                    })
                    .unwrap_or_default();
                fails.push((
                    7,
                    format!(
                        "seeds {} and {} hold different Peer Lists (first difference {diff})",
                        a.endpoint(live_seeds[0]),
                        a.endpoint(s)
                    ),
                ));
            }
        }
        for (j, p) in ck.peers.iter().enumerate() {
            let Some(inc) = p.incarnation else { continue };
            if !p.alive {
                continue;
            }
            let ep = a.endpoint(a.seeds + j as u32);
            for &s in &live_seeds {
                if ck.seed_pl[s as usize].get(&ep) != Some(&(inc, Status::Alive)) {
                    fails.push((
                        7,
                        format!(
                            "live peer {ep} (incarnation {inc}) is {:?} at seed {}",
                            ck.seed_pl[s as usize].get(&ep),
                            a.endpoint(s)
                        ),
                    ));
                    break;
                }
            }
        }
        fails
    }

    fn check_liveness(&mut self, now: u64, last: bool) {
        if last {
            self.w.liveness_checked = true;
        }
        if self.w.converged_ms.is_some() {
            return;
        }
        let fails = self.liveness_failures();
        let heal = self.w.cfg.heal_at_ms.unwrap_or(0);
        if fails.is_empty() {
            self.w.converged_ms = Some(now - heal);
        } else if last {
            self.w.liveness_checked = true;
            let n = fails.len();
            for (promise, what) in fails.into_iter().take(10) {
                self.w.checker.violation(
                    now,
                    promise,
                    format!(
                        "{what} ({} ms after healing; bound {} ms; {n} failures)",
                        now - heal,
                        self.w.cfg.liveness_bound_ms()
                    ),
                );
            }
        }
        if last {
            self.w.liveness_checked = true;
        }
    }

    /// End-of-run checks: promise 5 for the gossips of the check windows (after the bound,
    /// and, with repair, the retention window before healing), and each live seed's own Peer
    /// List against the ghost built from its events.
    pub fn finish(&mut self) {
        let now = self.now();
        let windows = [
            self.w.cfg.gossip_check_window(),
            self.w.cfg.repair_check_window(),
        ];
        for (from, to) in windows.into_iter().flatten() {
            if now >= self.w.cfg.liveness_end_ms().unwrap_or(NONE) {
                let missing = crate::report::undelivered(self, from, to);
                for (g, who) in missing.into_iter().take(10) {
                    self.w.checker.violation(
                        now,
                        5,
                        format!(
                            "gossip {g} never reached live peer {who}, connected to its origin"
                        ),
                    );
                }
            }
        }
        let a = self.w.addrs;
        for s in 0..a.seeds {
            let Some(actor) = self.nodes[s as usize].actor.as_ref() else {
                continue;
            };
            let gossip_core::msg::RoleStatus::Seed(st) = actor.status().role else {
                continue;
            };
            let ghost = &self.w.checker.seed_pl[s as usize];
            let real: std::collections::BTreeMap<Endpoint, (u64, Status)> = st
                .entries
                .iter()
                .map(|e| (e.peer, (e.incarnation, e.status)))
                .collect();
            if &real != ghost {
                let what = format!(
                    "seed {} holds {} entries but its EntryChanged events account for {} (or different ones)",
                    a.endpoint(s),
                    real.len(),
                    ghost.len()
                );
                self.w.checker.violation(now, 1, what);
            }
        }
    }

    // ----- read access for the report -----

    pub(crate) fn messages_lost(&self) -> u64 {
        self.w.messages_lost
    }

    /// Forged messages sent and lies told, by kind: `commit`, `sync`, `vote`, `register`
    /// (the forger); `liar_commit`, `sync_reply`, `vote_lie`, `confirm_lie`, `confirm_deny`
    /// (lying seeds).
    pub fn forged_sent(&self) -> &BTreeMap<&'static str, u64> {
        &self.w.forged_sent
    }

    /// Whether the run reached the liveness bound (so promises 6–7 were checked).
    pub fn liveness_checked(&self) -> bool {
        self.w.liveness_checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_two_cache_lines_and_a_delivery_reads_only_the_first() {
        assert_eq!(std::mem::size_of::<Call>(), 128);
        assert_eq!(std::mem::align_of::<Call>(), 64);
        // Everything `deliver` reads lies before the reply, which starts the second line.
        assert_eq!(std::mem::offset_of!(Call, reply), 64);
        for end in [
            std::mem::offset_of!(Call, request) + std::mem::size_of::<Option<Message>>(),
            std::mem::offset_of!(Call, done) + 1,
        ] {
            assert!(end <= 64, "a delivery's field ends at byte {end}");
        }
    }

    /// `gossip_core::Peer` packs its hot fields assuming this: 16 bytes of the slot's own
    /// bookkeeping, then the node, from the start of a cache line.
    #[test]
    fn a_node_starts_16_bytes_into_its_cache_line() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<Slot<Node>>(), 64);
        assert_eq!(offset_of!(Slot<Node>, actor), 16);
        // No tag in front of the peer: `Option<Node>` is the peer's own size.
        assert_eq!(size_of::<Option<Node>>(), size_of::<gossip_core::Peer>());
    }
}
