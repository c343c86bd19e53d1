//! Adversaries: the forger (a stranger sending forged commits, syncs, solicited votes and
//! registrations, certificates naming real seeds) and lying seeds (a minority whose answers
//! to votes and confirmations, anti-entropy replies and pushed commits the simulator forges
//! in their name). Every fact they put forward is handed to the checker, which requires
//! that none changes an honest seed's Peer List while false.

use std::collections::BTreeMap;

use gossip_core::msg::{
    CommitSync, ConfirmResp, Decision, Endpoint, Entry, Fact, Message, RegisterReq, SeedSync,
    Status, VoteReq, VoteResp, SYNC_BUCKETS,
};
use gossip_core::seed::MAX_INCARNATION;
use gossip_core::Millis;

/// Genuine commit syncs kept for a replay at most.
pub(super) const RECORDED_COMMITS: usize = 4_096;

use super::{Ev, Sim, World, EXTERNAL};
use crate::actor::Actor;
use crate::addr::{nowhere, FORGER, NOWHERE_COUNT};
use crate::config::ForgeKind;

impl World {
    /// True while seed `node` lies.
    #[inline]
    pub(super) fn lying(&self, node: u32) -> bool {
        self.any_liars
            && self.liars.get(node as usize).copied().unwrap_or(false)
            && !(self.healed && self.cfg.liars_stop_at_heal)
    }

    /// A fact of a commit kind about peer `victim` (`k`: its current incarnation, 1 if none).
    pub(super) fn forged_fact(&mut self, kind: ForgeKind, victim: u32) -> Fact {
        let a = self.addrs;
        if a.peers == 0 || kind == ForgeKind::AdmitNowhere {
            return Fact {
                peer: nowhere(self.adv_rng.below(u64::from(NOWHERE_COUNT)) as u32),
                incarnation: 1,
                status: Status::Alive,
            };
        }
        let j = victim % a.peers;
        let k = (self.checker.peers().get(j as usize))
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
    pub(super) fn random_forged_fact(&mut self) -> Fact {
        let kinds = ForgeKind::COMMITS;
        let kind = kinds[self.adv_rng.below(kinds.len() as u64) as usize];
        let victim = self.adv_rng.below(u64::from(self.addrs.peers.max(1))) as u32;
        self.forged_fact(kind, victim)
    }

    /// A quorum of distinct configured seeds, from seed `first` on in config order: a
    /// certificate that names real seeds.
    pub(super) fn quorum_from(&self, first: u32) -> Vec<Endpoint> {
        let n = self.addrs.seeds;
        let q = gossip_core::quorum(n as usize) as u32;
        (0..q)
            .map(|i| self.addrs.endpoint((first + i) % n))
            .collect()
    }

    /// A certificate naming a quorum of real seeds from a random one on.
    pub(super) fn random_quorum(&mut self) -> Vec<Endpoint> {
        let first = self.adv_rng.below(u64::from(self.addrs.seeds)) as u32;
        self.quorum_from(first)
    }

    /// A fresh proposal id, as if `votes`' first seed had proposed it.
    pub(super) fn forged_id(&mut self, votes: &[Endpoint]) -> String {
        self.forged_seq += 1;
        let source = votes.first().copied().unwrap_or(FORGER);
        format!("{source}#forged{}", self.forged_seq)
    }

    /// A `REGISTER_COMMIT` / `SEED_DEAD_COMMIT` sync of `fact` with the certificate `votes`.
    pub(super) fn forged_commit(
        &mut self,
        fact: Fact,
        votes: Vec<Endpoint>,
        id: String,
    ) -> Message {
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
            Status::Left => Message::LeaveCommit(sync),
        }
    }

    /// Seed `seed` gets, from outside the cluster, every genuine commit sync the seeds sent
    /// so far (as an on-path attacker without a cluster key could replay them), whatever
    /// became of the entries since: certificates for incarnations since removed, left or
    /// reaped must change nothing they should not.
    pub(super) fn replay_commits(&mut self, now: u64, seed: u32) {
        for msg in self.recorded_commits.clone() {
            self.send_forged(now, seed, msg, "replay");
        }
    }

    /// Keeps a genuine commit sync a seed sent, for [`World::replay_commits`] (the first of
    /// each change, at most [`RECORDED_COMMITS`]).
    #[inline]
    pub(super) fn record_commit(&mut self, msg: &Message) {
        let (Message::RegisterCommit(c) | Message::DeadCommit(c) | Message::LeaveCommit(c)) = msg
        else {
            return;
        };
        if c.decision != Decision::Commit || self.recorded_commits.len() >= RECORDED_COMMITS {
            return;
        }
        let same = |m: &Message| match m {
            Message::RegisterCommit(o) | Message::DeadCommit(o) | Message::LeaveCommit(o) => {
                o.peer == c.peer
                    && o.incarnation == c.incarnation
                    && std::mem::discriminant(m) == std::mem::discriminant(msg)
            }
            _ => false,
        };
        if !self.recorded_commits.iter().any(same) {
            self.recorded_commits.push(msg.clone());
        }
    }

    /// Sends a forged request to seed `to` from outside the cluster, and notes the facts it
    /// puts forward.
    pub(super) fn send_forged(&mut self, now: u64, to: u32, msg: Message, what: &'static str) {
        let mut note = |peer, incarnation, status| self.checker.forged(peer, incarnation, status);
        match &msg {
            Message::RegisterCommit(c) | Message::DeadCommit(c) | Message::LeaveCommit(c) => {
                let status = match msg {
                    Message::RegisterCommit(_) => Status::Alive,
                    Message::LeaveCommit(_) => Status::Left,
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
    pub(super) fn lying_answer(&mut self, msg: &Message, liar: u32) -> Option<Message> {
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
    pub(super) fn forge_sync_reply(&mut self, liar: u32, msg: &mut Message) {
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
}

impl<A: Actor> Sim<A> {
    /// The simulator plays a forger: messages of `kind` about peer `peer` to seed `seed`
    /// (see [`ForgeKind`]), from a stranger's address, certificates naming real seeds.
    pub(super) fn forge(&mut self, now: u64, kind: ForgeKind, seed: u32, peer: u32) {
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
                w.send_forged(now, seed, msg, "commit");
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
                    w.send_forged(now, seed, msg, "sync");
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
                        Status::Left => Message::LeaveVote(req),
                    };
                    for voter in &asked {
                        if let Some(v) = a.node(voter) {
                            w.send_forged(now, v, ask.clone(), "vote");
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
                w.send_forged(now, seed, msg, "register");
            }
        }
    }

    /// Lying seed `liar` pushes a forged commit sync (its certificate naming the liar and the
    /// seeds after it) to a random other seed, every anti-entropy interval while it lies.
    pub(super) fn liar_tick(&mut self, now: u64, liar: u32) {
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
            self.w.send_forged(now, to, msg, "liar_commit");
        }
        let interval = self.w.cfg.settings.anti_entropy_interval_ms;
        self.w.q.push(now + interval, Ev::LiarTick(liar));
    }
    /// Forged messages sent and lies told, by kind: `commit`, `sync`, `vote`, `register`
    /// (the forger); `liar_commit`, `sync_reply`, `vote_lie`, `confirm_lie`, `confirm_deny`
    /// (lying seeds).
    pub fn forged_sent(&self) -> &BTreeMap<&'static str, u64> {
        &self.w.forged_sent
    }
}
