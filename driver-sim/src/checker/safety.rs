//! The safety promises, judged after every event: 1–4, and 8–9 with adversaries.
//!
//! Owns what they need beyond the ghost: every yes-vote cast, every entry each seed applied,
//! every witness's "dead", each detector's valid verdicts, the `DEAD_REPORT`s of the current
//! step, which seeds lie, and the incarnations peers asked for and honest seeds held. See the
//! [module documentation](super) for the promises in words.

use std::sync::Arc;

use gossip_core::event::ProposalKind;
use gossip_core::hash::{FxHashMap, FxHashSet};
use gossip_core::msg::{Endpoint, Entry, Status};

use super::ghost::Receipt;
use super::Checker;

/// The state promises 1–4 and 8–9 are judged with, besides the ghost.
#[derive(Debug)]
pub(super) struct Safety {
    quorum: usize,
    /// Yes votes ever cast: (voter, kind, peer, incarnation).
    votes: FxHashSet<(u32, ProposalKind, Endpoint, u64)>,
    /// Entries each seed ever applied: (seed, peer, incarnation, status).
    held: FxHashSet<(u32, Endpoint, u64, Status)>,
    /// `SuspectAnswered { alive: false }` ever emitted: (witness, requester, suspect).
    denials: FxHashSet<(u32, u32, u32)>,
    /// Per peer index: suspects its current instance reached a valid consensus verdict about.
    verdicts: Vec<Vec<u32>>,
    /// `DEAD_REPORT`s sent in the current step: (reporter, accused).
    pub(super) deferred_reports: Vec<(u32, Endpoint)>,
    /// Per seed: it lies (its own Peer List is not checked, its name in a certificate is
    /// taken as given).
    liars: Vec<bool>,
    liar_count: usize,
    /// Per peer index: the highest incarnation any of its instances asked for or was
    /// admitted at.
    claimed: Vec<u64>,
    /// Per peer endpoint: the highest incarnation any honest seed held it at (any status).
    honest_max: FxHashMap<Endpoint, u64>,
    /// The highest incarnation any honest seed held for any peer.
    honest_range: u64,
    /// Facts adversaries put forward: (peer, incarnation, status).
    forged: FxHashSet<(Endpoint, u64, Status)>,
    /// Applications at honest seeds of a forged fact while it was false: must stay 0.
    pub(super) forged_changes: u64,
    /// Removal commits of a live peer that never crashed (not all are violations: its links
    /// may have lost messages).
    pub(super) false_removals: u64,
    /// Per peer endpoint: the incarnations an instance of it held when it was told to leave.
    /// A `LEFT` entry at any other is a live peer made to leave (promise 4).
    pub(super) left: FxHashSet<(Endpoint, u64)>,
    /// Per (seed, peer): the incarnation the seed reaped and when. Within a tombstone period
    /// after, an honest seed must not take that incarnation (or one below) again.
    pub(super) reaped: FxHashMap<(u32, Endpoint), (u64, u64)>,
    /// The tombstone period.
    pub(super) tombstone_ms: u64,
}

impl Safety {
    pub(super) fn new(seeds: u32, peers: u32, liars: &[u32]) -> Safety {
        let mut is_liar = vec![false; seeds as usize];
        for &i in liars {
            if let Some(l) = is_liar.get_mut(i as usize) {
                *l = true;
            }
        }
        Safety {
            quorum: gossip_core::quorum(seeds as usize),
            votes: FxHashSet::default(),
            held: FxHashSet::default(),
            denials: FxHashSet::default(),
            verdicts: vec![Vec::new(); peers as usize],
            deferred_reports: Vec::new(),
            liar_count: is_liar.iter().filter(|l| **l).count(),
            liars: is_liar,
            claimed: vec![0; peers as usize],
            honest_max: FxHashMap::default(),
            honest_range: 0,
            forged: FxHashSet::default(),
            forged_changes: 0,
            false_removals: 0,
            left: FxHashSet::default(),
            reaped: FxHashMap::default(),
            tombstone_ms: u64::MAX,
        }
    }

    /// True if seed `node` lies.
    pub(super) fn is_liar(&self, node: u32) -> bool {
        self.liars.get(node as usize).copied().unwrap_or(false)
    }

    /// Peer `j` started a fresh instance: it has no verdicts.
    pub(super) fn started(&mut self, j: usize) {
        self.verdicts[j].clear();
    }

    /// Peer `j` asked for, or was admitted at, `incarnation`.
    pub(super) fn claimed(&mut self, j: usize, incarnation: u64) {
        self.claimed[j] = self.claimed[j].max(incarnation);
    }

    /// A yes-vote `voter` cast.
    pub(super) fn vote(&mut self, voter: u32, kind: ProposalKind, peer: Endpoint, inc: u64) {
        self.votes.insert((voter, kind, peer, inc));
    }

    /// Witness `witness` told `requester` that `suspect` is dead.
    pub(super) fn denial(&mut self, witness: u32, requester: u32, suspect: u32) {
        self.denials.insert((witness, requester, suspect));
    }

    /// An adversary put forward `(peer, incarnation, status)`.
    pub(super) fn forged(&mut self, peer: Endpoint, incarnation: u64, status: Status) {
        self.forged.insert((peer, incarnation, status));
    }

    /// Distinct facts adversaries put forward so far.
    pub(super) fn forged_facts(&self) -> usize {
        self.forged.len()
    }
}

impl Checker {
    /// Promise 3 for a first-time receipt (and the ghost's record of it).
    #[inline]
    pub(super) fn gossip_received(&mut self, now: u64, node: u32, text: &Arc<str>, hops: u32) {
        let what = match self.ghost.received(now, node, text, hops) {
            Receipt::First => return,
            Receipt::NotAPeer => "",
            Receipt::NeverGenerated => " that no peer generated",
            Receipt::Twice => " first-time twice",
        };
        let who = self.ghost.name(node);
        self.violation(now, 3, format!("{who} received gossip {text:?}{what}"));
    }

    /// Promise 3: only peers generate gossip.
    pub(super) fn gossip_generated(&mut self, now: u64, node: u32, text: &Arc<str>) {
        if !self.ghost.generated(now, node, text) {
            let who = self.ghost.name(node);
            self.violation(now, 3, format!("{who} generated gossip {text:?}"));
        }
    }

    /// Promise 2: the `DEAD_REPORT`s of the step just ended, each backed by a verdict.
    pub(super) fn check_dead_reports(&mut self, now: u64) {
        for (node, dead) in std::mem::take(&mut self.safety.deferred_reports) {
            self.check_dead_report(now, node, &dead);
        }
    }

    fn check_dead_report(&mut self, now: u64, node: u32, dead: &Endpoint) {
        let Some(j) = self.ghost.peer_ix(node) else {
            let who = self.ghost.name(node);
            self.violation(now, 2, format!("{who} sent a DEAD_REPORT about {dead}"));
            return;
        };
        let ok =
            (self.ghost.addrs.node(dead)).is_some_and(|x| self.safety.verdicts[j].contains(&x));
        if !ok {
            let who = self.ghost.name(node);
            self.violation(
                now,
                2,
                format!(
                    "{who} sent a DEAD_REPORT about {dead} without a peer-level consensus verdict"
                ),
            );
        }
    }

    /// Promise 2: a consensus verdict is real (more dead votes than alive, at least one
    /// witness, every dead witness really said dead to this detector about this suspect).
    /// A valid one allows this instance to report the suspect.
    pub(super) fn verdict(
        &mut self,
        now: u64,
        node: u32,
        suspect: &Endpoint,
        dead_votes: u32,
        alive_votes: u32,
        dead_witnesses: &[Endpoint],
    ) {
        let who = self.ghost.name(node);
        let addrs = self.ghost.addrs;
        let (Some(j), Some(x)) = (self.ghost.peer_ix(node), addrs.node(suspect)) else {
            return self.violation(
                now,
                2,
                format!("{who}: consensus verdict about unknown {suspect}"),
            );
        };
        let mut problems = Vec::new();
        if dead_witnesses.is_empty() {
            problems.push("no dead witness".to_string());
        }
        if dead_votes <= alive_votes {
            problems.push(format!("dead {dead_votes} <= alive {alive_votes}"));
        }
        if dead_votes as usize > dead_witnesses.len() + 1 {
            problems.push(format!(
                "{dead_votes} dead votes but {} witnesses + self",
                dead_witnesses.len()
            ));
        }
        let mut seen = Vec::new();
        for w in dead_witnesses {
            let wn = addrs.node(w);
            if seen.contains(w) {
                problems.push(format!("witness {w} counted twice"));
            }
            seen.push(*w);
            match wn {
                Some(wn) if wn == node || wn == x => {
                    problems.push(format!("witness {w} is the detector or the suspect"))
                }
                Some(wn) if self.safety.denials.contains(&(wn, node, x)) => {}
                _ => problems.push(format!("witness {w} never answered dead")),
            }
        }
        if problems.is_empty() {
            let v = &mut self.safety.verdicts[j];
            if !v.contains(&x) {
                v.push(x);
            }
        } else {
            self.violation(
                now,
                2,
                format!(
                    "{who}: consensus verdict about {suspect} is not real: {}",
                    problems.join("; ")
                ),
            );
        }
    }

    /// A seed changed its Peer List: promise 1 (certificate, only upwards), 8 and 9 (at an
    /// honest seed), 4 (a removal of a clean live member), and forged facts applied.
    pub(super) fn entry_changed(
        &mut self,
        now: u64,
        node: u32,
        peer: Endpoint,
        incarnation: u64,
        status: Status,
        votes: &[Endpoint],
    ) {
        let who = self.ghost.name(node);
        if !self.ghost.addrs.is_seed(node) {
            return self.violation(now, 1, format!("{who} changed a Peer List entry"));
        }
        let honest = !self.safety.is_liar(node);
        let mut problems = Vec::new();
        if honest {
            self.check_certificate(peer, incarnation, status, votes, &mut problems);
        }
        self.safety.held.insert((node, peer, incarnation, status));
        let new = (incarnation, status);
        if let Some(old) = self
            .ghost
            .entry_applied(now, node, peer, incarnation, status)
        {
            if old >= new {
                problems.push(format!("entry moved down or sideways from {old:?}"));
            }
        }
        if !problems.is_empty() {
            self.violation(
                now,
                1,
                format!(
                    "{who}: {peer} -> ({incarnation}, {status:?}) with votes {votes:?}: {}",
                    problems.join("; ")
                ),
            );
        }
        let false_fact = if honest {
            self.check_admission(node, peer, incarnation, status)
        } else {
            None
        };
        let reaped = self.safety.reaped.get(&(node, peer)).copied();
        if let Some((inc, at)) = reaped.filter(|&(inc, at)| {
            honest && incarnation <= inc && now < at.saturating_add(self.safety.tombstone_ms)
        }) {
            problems.push(format!(
                "took back incarnation {incarnation} {} ms after reaping {inc}",
                now - at
            ));
        }
        if status == Status::Left && !self.safety.left.contains(&(peer, incarnation)) {
            let who = self.ghost.name(node);
            self.violation(
                now,
                4,
                format!("{who}: {peer} LEFT at {incarnation}, which no instance of it ever asked"),
            );
        }
        let mut clean_live_removed = false;
        if status == Status::Removed {
            if let Some(x) = self.ghost.addrs.node(&peer) {
                clean_live_removed = self.removal(now, x, incarnation);
            }
        }
        if honest {
            let s = &mut self.safety;
            let forged = s.forged.contains(&(peer, incarnation, status));
            if forged && (false_fact.is_some() || clean_live_removed) {
                s.forged_changes += 1;
            }
            let max = s.honest_max.entry(peer).or_insert(0);
            *max = (*max).max(incarnation);
            s.honest_range = s.honest_range.max(incarnation);
            if let Some((promise, what)) = false_fact {
                let what = if forged {
                    format!("{what} (a forged fact)")
                } else {
                    what
                };
                self.violation(now, promise, what);
            }
        }
    }

    /// Promise 1 for an honest seed's change: every voter a distinct configured seed, every
    /// honest one of which voted yes for exactly that change or held it, a quorum in all, and
    /// at least `quorum − liars` honest. A lying seed's name is taken as given.
    fn check_certificate(
        &self,
        peer: Endpoint,
        incarnation: u64,
        status: Status,
        votes: &[Endpoint],
        problems: &mut Vec<String>,
    ) {
        let s = &self.safety;
        let addrs = self.ghost.addrs;
        let kind = match status {
            Status::Alive => ProposalKind::Register,
            Status::Removed => ProposalKind::Removal,
            Status::Left => ProposalKind::Leave,
        };
        let mut voters: Vec<u32> = Vec::new();
        let mut honest = 0;
        for v in votes {
            match addrs.node(v) {
                Some(seed) if addrs.is_seed(seed) => {
                    if voters.contains(&seed) {
                        problems.push(format!("voter {v} listed twice"));
                    } else if s.is_liar(seed) {
                        // Counted by name: its word is worth nothing, its name is a name.
                    } else if s.votes.contains(&(seed, kind, peer, incarnation))
                        || s.held.contains(&(seed, peer, incarnation, status))
                    {
                        honest += 1;
                    } else {
                        problems.push(format!("{v} never voted yes for it nor held it"));
                    }
                    voters.push(seed);
                }
                _ => problems.push(format!("voter {v} is not a configured seed")),
            }
        }
        voters.sort_unstable();
        voters.dedup();
        if voters.len() < s.quorum {
            problems.push(format!(
                "{} distinct voters < quorum {}",
                voters.len(),
                s.quorum
            ));
        }
        let needed = s.quorum.saturating_sub(s.liar_count);
        if honest < needed {
            problems.push(format!(
                "{honest} honest seeds voted for it or held it < quorum - liars = {needed}"
            ));
        }
    }

    /// Promises 8 and 9 for an honest seed's change: what is wrong with it, if anything.
    fn check_admission(
        &self,
        node: u32,
        peer: Endpoint,
        incarnation: u64,
        status: Status,
    ) -> Option<(u8, String)> {
        let who = self.ghost.name(node);
        let j = self
            .ghost
            .addrs
            .node(&peer)
            .and_then(|x| self.ghost.peer_ix(x));
        if status == Status::Alive && !matches!(j, Some(j) if self.ghost.peers[j].life > 0) {
            return Some((
                8,
                format!(
                    "{who} admitted {peer} at {incarnation}, where no simulated peer ever answered"
                ),
            ));
        }
        let s = &self.safety;
        let claimed = j.map_or(0, |j| s.claimed[j]);
        let held = s.honest_max.get(&peer).copied().unwrap_or(0);
        let mut base = claimed.max(held);
        if status == Status::Removed {
            base = base.max(s.honest_range);
        }
        if incarnation <= base.saturating_add(1) {
            return None;
        }
        let range = if status == Status::Removed {
            format!(" and the highest honest seeds hold ({})", s.honest_range)
        } else {
            String::new()
        };
        Some((
            9,
            format!(
                "{who}: {peer} -> ({incarnation}, {status:?}), more than one above what the peer \
                 ever asked for or was admitted at ({claimed}), what any honest seed held for it \
                 ({held}){range}"
            ),
        ))
    }

    /// A removal committed at some seed. Returns true if it removed a clean live member
    /// (promise 4; judged at its first commit, not again as it propagates).
    fn removal(&mut self, now: u64, x: u32, incarnation: u64) -> bool {
        if !self.ghost.first_removal(now, x, incarnation) {
            return false;
        }
        let Some(j) = self.ghost.peer_ix(x) else {
            return false;
        };
        if !self.ghost.ever_listed(&self.ghost.addrs.endpoint(x)) {
            return false;
        }
        let p = &self.ghost.peers[j];
        let current = match p.incarnation {
            Some(inc) => incarnation >= inc,
            None => true,
        };
        if !(p.alive && !p.crashed_ever && current) {
            return false;
        }
        self.safety.false_removals += 1;
        let window = self.ghost.loss_window_ms;
        let recent_loss = p
            .last_loss_ms
            .is_some_and(|l| now.saturating_sub(l) <= window);
        if p.excused || recent_loss {
            return false;
        }
        let last = match p.last_loss_ms {
            Some(l) => format!("the last loss on its links was {} ms before", now - l),
            None => "no message on its links was ever lost".to_string(),
        };
        let name = self.ghost.name(x);
        self.violation(
            now,
            4,
            format!(
                "{name} (incarnation {incarnation}) removed while up and never crashed; {last} \
                 (more than the {window} ms that excuse a removal)"
            ),
        );
        true
    }

    /// Promise 1 at the end of a run: live seed `seed`'s own Peer List (`entries`, from its
    /// status) is what its `EntryChanged` events said.
    pub fn check_seed_list(&mut self, now: u64, seed: u32, entries: &[Entry]) {
        let Some(ghost) = self.ghost.seed_pl.get(seed as usize) else {
            return;
        };
        let real: std::collections::BTreeMap<Endpoint, (u64, Status)> = entries
            .iter()
            .map(|e| (e.peer, (e.incarnation, e.status)))
            .collect();
        if &real != ghost {
            let what = format!(
                "seed {} holds {} entries but its EntryChanged events account for {} (or different ones)",
                self.ghost.addrs.endpoint(seed),
                real.len(),
                ghost.len()
            );
            self.violation(now, 1, what);
        }
    }
}
