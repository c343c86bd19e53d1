//! How changes travel between seeds, and what this seed believes of them: commit syncs,
//! anti-entropy, confirmations; and the Peer Lists it serves.
//!
//! A change this seed did not decide in its own round is *carried*: pushed by whoever sent a
//! commit sync (anyone can open a connection), or pulled from another seed by anti-entropy
//! (over a connection this seed opened to that seed's configured address). Either way it
//! is applied only once a quorum of seeds vouch for exactly it (see `confirm.rs`): the seeds
//! its certificate names are asked, and the seed an anti-entropy reply came from counts as
//! vouching, since it holds what it sent. A pulled change its voters cannot vouch for any
//! more is re-certified by a fresh round (`proposer.rs`); a pushed one is dropped
//! (anti-entropy brings the real ones), so a forged push costs at most `q` small requests.

use std::collections::BTreeSet;

use super::confirm::Outcome;
use super::peer_list::Rank;
use super::round;
use super::Core;
use super::Timer;
use crate::event::{ChangeSource, Event, ProposalKind};
use crate::msg::{
    CommitSync, ConfirmReq, Decision, Endpoint, Entry, Fact, Message, PeerListResp, SeedSync,
    Status, SYNC_BUCKETS,
};
use crate::{ConnId, Failure, Millis};

impl Core {
    // ----- commit syncs -----

    /// Another seed's decision, or what claims to be one. An abort changes nothing; a commit
    /// with a well-formed certificate is confirmed with the seeds it names before it is
    /// applied. Always acknowledged: the ack says "received", not "believed".
    pub(super) fn on_commit(
        &mut self,
        now: Millis,
        conn: ConnId,
        kind: ProposalKind,
        sync: CommitSync,
    ) {
        let name = round::commit_ack(kind).type_name();
        if sync.decision == Decision::Abort {
            return self.reply(conn, round::commit_ack(kind));
        }
        let Some(incarnation) = sync.incarnation else {
            return self.reject(conn, format!("{name}: COMMIT without an incarnation"));
        };
        if !self.certifier.certifies(&sync.votes) {
            return self.reject(
                conn,
                format!("{name}: COMMIT without a valid quorum certificate"),
            );
        }
        self.reply(conn, round::commit_ack(kind));
        let entry = Entry {
            peer: sync.peer,
            incarnation,
            status: round::status_of(kind),
            votes: sync.votes,
        };
        self.carry(now, entry, None);
    }

    /// Starts confirming a carried `entry` if it would move this seed's Peer List up.
    /// `holder` is the seed it was pulled from, if it was.
    fn carry(&mut self, now: Millis, entry: Entry, holder: Option<Endpoint>) {
        let fact = entry.fact();
        if self.certifier.is_seed(&fact.peer)
            || !self.pl.would_move_up(&fact)
            || self.pl.reaped_covers(&fact)
        {
            return;
        }
        let mut vouched = BTreeSet::new();
        if self.memory.voted(&fact, now) {
            vouched.insert(self.me);
        }
        vouched.extend(holder);
        let named: Vec<Endpoint> = (entry.votes.iter())
            .filter(|v| **v != self.me)
            .copied()
            .collect();
        let via = match holder {
            Some(_) => ChangeSource::AntiEntropy,
            None => ChangeSource::CommitSync,
        };
        if !self.confirmations.offer(fact, &named, vouched, via) {
            self.count("confirmations_dropped");
            return;
        }
        if let Some((outcome, via)) = self.confirmations.advance(fact) {
            self.conclude(now, fact, outcome, via);
        }
        self.ask_for_confirmations(now);
    }

    /// Sends the confirmation batches that can go now.
    fn ask_for_confirmations(&mut self, now: Millis) {
        let deadline = now.after(self.settings.request_timeout_ms);
        for (seed, facts) in self.confirmations.batches() {
            self.count("confirm_requests");
            let req = ConfirmReq {
                seed: self.me,
                facts,
            };
            self.send(seed, Message::Confirm(Box::new(req)), deadline);
        }
    }

    pub(super) fn on_confirm_resp(
        &mut self,
        now: Millis,
        from: Endpoint,
        req: ConfirmReq,
        outcome: Result<Message, Failure>,
    ) {
        let vouched = match outcome {
            Ok(Message::ConfirmResp(resp)) if resp.vouched.len() == req.facts.len() => {
                Some(resp.vouched)
            }
            Ok(other) => {
                self.bad_input(format!(
                    "{} from {from} in answer to SEED_CONFIRM of {} facts",
                    other.type_name(),
                    req.facts.len()
                ));
                None
            }
            Err(_) => None,
        };
        for (fact, outcome, via) in
            (self.confirmations).answered(from, &req.facts, vouched.as_deref())
        {
            self.conclude(now, fact, outcome, via);
        }
        self.ask_for_confirmations(now);
    }

    /// A carried change was confirmed (apply it, with its vouchers as the certificate) or
    /// not (re-certify it if it was pulled from a seed that holds it).
    fn conclude(&mut self, now: Millis, fact: Fact, outcome: Outcome, via: ChangeSource) {
        match outcome {
            Outcome::Confirmed(vouchers) => {
                self.count("confirmed");
                let entry = Entry {
                    peer: fact.peer,
                    incarnation: fact.incarnation,
                    status: fact.status,
                    votes: vouchers,
                };
                self.merge(now, entry, via);
            }
            Outcome::Unconfirmed => {
                self.count("unconfirmed");
                if via == ChangeSource::AntiEntropy && self.pl.would_move_up(&fact) {
                    self.confirmations.hear(fact, now);
                    self.recertify(now, fact);
                }
            }
        }
    }

    /// Applies `entry` if it supersedes this seed's; true if it did. A removal of a peer this
    /// seed never held is refused once it holds `max_hearsay_removals` of them: only hearsay
    /// leads to one, and a lying seed could feed it without end.
    pub(super) fn merge(&mut self, now: Millis, entry: Entry, via: ChangeSource) -> bool {
        let (peer, rank) = (entry.peer, (entry.incarnation, entry.status));
        let orphan = entry.status.gone() && self.pl.get(&peer).is_none();
        if orphan && self.pl.orphans() >= self.settings.max_hearsay_removals as usize {
            self.count("orphans_refused");
            return false;
        }
        if !self.pl.apply(entry, &self.certifier, now) {
            return false;
        }
        self.memory.settled(peer, rank);
        self.confirmations.settled(peer, rank);
        if via != ChangeSource::LocalCommit {
            self.count("entries_merged");
        }
        if let Some(entry) = self.pl.get(&peer).cloned() {
            self.emit(Event::EntryChanged { entry, via });
        }
        true
    }

    // ----- peer lists -----

    pub(super) fn on_peer_list_req(&mut self, conn: ConnId, requester: String) {
        let total = self.pl.alive_count();
        let limit = self.settings.peer_list_limit as usize;
        let listed = self.pl.sample_alive(limit, &mut self.rng);
        let requester_entry = requester
            .parse::<Endpoint>()
            .ok()
            .and_then(|ep| self.requester_entry(&ep));
        let resp = PeerListResp {
            peers: listed.iter().map(|&(peer, _)| peer).collect(),
            seed: self.me,
            incarnations: listed,
            total: Some(total as u64),
            requester_entry,
        };
        let count = resp.peers.len() as u32;
        self.reply(conn, Message::PeerListResp(Box::new(resp)));
        self.count("peer_lists_served");
        self.emit(Event::PeerListServed { requester, count });
    }

    /// A peer's own entry, as it is told when it asks for a Peer List. A seed that holds it
    /// alive at `k` but heard another seed holds it removed at exactly `k` tells it removed:
    /// the peer registers one above, as it would on hearing it from that seed. Such a removal
    /// cannot spread by confirmation when its certificate names a seed that cannot vouch for
    /// it (one that restarted before applying it, or lied), and a fresh round refutes it while
    /// the peer answers, so otherwise the seeds stay split until the peer happens to ask one
    /// that holds it. (Any seed can make a peer register one above this way, by its own
    /// answer; nobody can make it go further.)
    fn requester_entry(&self, peer: &Endpoint) -> Option<Rank> {
        let held = self.pl.rank(peer);
        match (held, self.confirmations.hearsay(peer)) {
            (Some((k, Status::Alive)), Some((heard, Status::Removed))) if heard == k => {
                Some((k, Status::Removed))
            }
            _ => held,
        }
    }

    // ----- anti-entropy -----

    /// Forgets the removed and left entries older than the tombstone period.
    ///
    /// Forgetting is safe because nothing this seed applies rests on a certificate alone: a
    /// change it did not decide is applied only when a quorum vouches for exactly it (they
    /// hold it, or voted for it within the vote's few-second lifetime), or after a fresh
    /// round in which every voter checks it against the peer itself. A certificate replayed
    /// after its entry was reaped everywhere finds no voucher, and a fresh round checks the
    /// world as it is: a peer that came back answers (no removal), a dead one does not (no
    /// resurrection). Meanwhile the reaped incarnation is remembered one more period: a
    /// seed that has not reaped yet cannot hand it back, and a peer that comes back at
    /// once registers above it.
    pub(super) fn reap(&mut self, now: Millis) {
        for entry in self.pl.reap(now, self.settings.tombstone_ms) {
            self.count("entries_reaped");
            self.emit(Event::EntryReaped { entry });
        }
    }

    /// Pulls from one random other seed, and arms the next round.
    pub(super) fn start_sync(&mut self, now: Millis) {
        self.timers.set(
            Timer::AntiEntropy,
            now.after(self.settings.anti_entropy_interval_ms),
        );
        if self.others.is_empty() {
            return;
        }
        let pick = self.rng.below(self.others.len() as u64) as usize;
        let Some(&to) = self.others.get(pick) else {
            return;
        };
        let ask = Message::SeedSync(Box::new(SeedSync {
            seed: self.me,
            buckets: self.pl.digests().to_vec(),
            entries: Vec::new(),
            reply: false,
        }));
        self.count("sync_rounds");
        self.send(to, ask, now.after(self.settings.request_timeout_ms));
    }

    /// Answers a pull with this seed's entries of every bucket that differs. Entries a
    /// request carries are ignored: only a pull over this seed's own connection brings any.
    pub(super) fn on_sync_req(&mut self, conn: ConnId, sync: SeedSync) {
        if sync.buckets.len() != SYNC_BUCKETS {
            return self.reject(
                conn,
                format!(
                    "SEED_SYNC: {} buckets, expected {SYNC_BUCKETS}",
                    sync.buckets.len()
                ),
            );
        }
        let start = self.rng.below(SYNC_BUCKETS as u64) as usize;
        let limit = self.settings.sync_entry_limit as usize;
        let entries = self.pl.differing(&sync.buckets, limit, start);
        let reply = Message::SeedSync(Box::new(SeedSync {
            seed: self.me,
            buckets: self.pl.digests().to_vec(),
            entries,
            reply: true,
        }));
        self.reply(conn, reply);
    }

    /// The answer to this seed's pull: every entry that would move this seed up is carried
    /// (the seed that sent it holds it, so it vouches; the seeds its certificate names are
    /// asked for the rest of a quorum).
    pub(super) fn on_sync_reply(
        &mut self,
        now: Millis,
        from: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        match outcome {
            Ok(Message::SeedSync(sync)) if sync.reply => {
                for entry in sync.entries {
                    if self.certifier.certifies(&entry.votes) {
                        self.carry(now, entry, Some(from));
                    }
                }
            }
            Ok(other) => self.bad_input(format!(
                "{} from {from} in answer to SEED_SYNC",
                other.type_name()
            )),
            // The next round, maybe with another seed, tries again.
            Err(_) => {}
        }
    }
}
