//! Confirmations: a seed believes a change it did not decide only once a quorum of seeds
//! vouch for it, over connections this seed opens to their configured addresses.
//!
//! A certificate names seeds; names are easy to forge. So when a change arrives carried by
//! someone else (a pushed commit sync, an entry in an anti-entropy reply), this seed asks the
//! seeds the certificate names (`SEED_CONFIRM`) whether each voted yes for exactly that change
//! or holds it, and applies it only when a quorum of distinct seeds vouch. The component owns
//! the bookkeeping: which facts wait, whom each still waits for, and the batches to send
//! (one request per seed in flight, up to [`MAX_CONFIRM_FACTS`] facts each). It sends
//! nothing itself: the seed asks it for [`Confirmations::batches`] and hands it the replies.
//!
//! Costs are bounded: a fact is asked of no more seeds than could still complete a quorum,
//! so one forged line costs at most `q` small requests; facts are deduplicated; at most
//! [`MAX_CONFIRMING`] wait at once, and an offer over that budget is dropped (anti-entropy
//! offers it again later).
//!
//! It also keeps *hearsay*: the changes another seed sent this one over its own connection
//! that a quorum could not confirm (their voters restarted empty, or the sender lies). Hearsay
//! is never applied, served or vouched for; it only tells this seed's vote rules that a peer it
//! does not know may exist at some incarnation, so that it probes the peer before answering
//! rather than refusing outright (see `round::removal_check`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::peer_list::Rank;
use crate::event::ChangeSource;
use crate::msg::{Endpoint, Fact, Status, MAX_CONFIRM_FACTS};
use crate::Millis;

/// Facts waiting for confirmation at most.
pub const MAX_CONFIRMING: usize = 4096;

/// How long a change whose re-certification round lost is not re-certified again (a lying
/// seed may keep offering it).
pub const REFUTED_MS: u64 = 60_000;

/// Peers with hearsay at most (the oldest is forgotten beyond).
pub const MAX_HEARSAY: usize = 4096;

/// How a fact's confirmation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A quorum vouched: these seeds, sorted, are its certificate.
    Confirmed(Vec<Endpoint>),
    /// A quorum can no longer vouch among the seeds named.
    Unconfirmed,
}

/// One fact waiting for vouchers.
#[derive(Clone, Debug)]
struct Pending {
    via: ChangeSource,
    /// Named seeds not asked yet, in the order the certificate names them.
    candidates: VecDeque<Endpoint>,
    /// Seeds asked whose answer has not come.
    awaiting: BTreeSet<Endpoint>,
    /// Seeds asked so far: never more than a quorum, whatever the certificate names.
    asked: usize,
    /// Seeds that vouched (this one, if it voted for it; the seed an anti-entropy reply came
    /// from, which holds it).
    vouched: BTreeSet<Endpoint>,
}

/// The facts waiting for confirmation, and the requests to make for them.
#[derive(Clone, Debug)]
pub(super) struct Confirmations {
    quorum: usize,
    pending: BTreeMap<Fact, Pending>,
    /// Facts to ask each seed, in the order they were queued.
    queued: BTreeMap<Endpoint, Vec<Fact>>,
    /// Seeds with a request in flight (one at a time each).
    in_flight: BTreeSet<Endpoint>,
    /// Changes a re-certification round refused, with when: not re-certified again before
    /// [`REFUTED_MS`] (at most [`MAX_CONFIRMING`] remembered).
    refuted: BTreeMap<Fact, Millis>,
    /// Per peer, the highest unconfirmed rank another seed said it holds, and when.
    hearsay: BTreeMap<Endpoint, (Rank, Millis)>,
}

impl Confirmations {
    pub(super) fn new(quorum: usize) -> Confirmations {
        Confirmations {
            quorum,
            pending: BTreeMap::new(),
            queued: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            refuted: BTreeMap::new(),
            hearsay: BTreeMap::new(),
        }
    }

    /// Another seed said it holds `fact`, and a quorum could not confirm it.
    pub(super) fn hear(&mut self, fact: Fact, now: Millis) {
        let rank = (fact.incarnation, fact.status);
        if let Some((held, at)) = self.hearsay.get_mut(&fact.peer) {
            if rank > *held {
                *held = rank;
                *at = now;
            }
            return;
        }
        if self.hearsay.len() >= MAX_HEARSAY {
            let oldest = (self.hearsay.iter())
                .min_by_key(|(peer, (_, at))| (*at, **peer))
                .map(|(peer, _)| *peer);
            if let Some(peer) = oldest {
                self.hearsay.remove(&peer);
            }
        }
        self.hearsay.insert(fact.peer, (rank, now));
    }

    /// The highest rank hearsay gives `peer`.
    pub(super) fn hearsay(&self, peer: &Endpoint) -> Option<Rank> {
        self.hearsay.get(peer).map(|(rank, _)| *rank)
    }

    /// This seed's Peer List now holds `peer` at `rank`: hearsay at or below it is moot.
    pub(super) fn settled(&mut self, peer: Endpoint, rank: Rank) {
        if self.hearsay(&peer).is_some_and(|heard| heard <= rank) {
            self.hearsay.remove(&peer);
        }
        // A refuted change of this incarnation above the entry now held gets a fresh look:
        // the entry moved since its round lost (a leave that could not be re-certified while
        // this seed held the peer alive can be once it holds it removed).
        if self.refuted.is_empty() {
            return;
        }
        let at = |status| Fact {
            peer,
            incarnation: rank.0,
            status,
        };
        let stale: Vec<Fact> = (self.refuted.range(at(Status::Alive)..=at(Status::Left)))
            .map(|(fact, _)| *fact)
            .filter(|fact| (fact.incarnation, fact.status) > rank)
            .collect();
        for fact in stale {
            self.refuted.remove(&fact);
        }
    }

    /// A re-certification round for `fact` lost.
    pub(super) fn refute(&mut self, fact: Fact, now: Millis) {
        if self.refuted.len() >= MAX_CONFIRMING {
            self.refuted.retain(|_, at| now.since(*at) < REFUTED_MS);
        }
        if self.refuted.len() < MAX_CONFIRMING {
            self.refuted.insert(fact, now);
        }
    }

    /// True if a re-certification of `fact` lost less than [`REFUTED_MS`] ago.
    pub(super) fn refuted(&self, fact: &Fact, now: Millis) -> bool {
        self.refuted
            .get(fact)
            .is_some_and(|at| now.since(*at) < REFUTED_MS)
    }

    /// Facts waiting.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Starts (or joins) the confirmation of `fact`: `named` are the seeds its certificate
    /// names, `vouched` those already known to vouch. False if it was dropped over budget.
    /// Call [`Confirmations::advance`] on it afterwards.
    pub(super) fn offer(
        &mut self,
        fact: Fact,
        named: &[Endpoint],
        vouched: BTreeSet<Endpoint>,
        via: ChangeSource,
    ) -> bool {
        if let Some(p) = self.pending.get_mut(&fact) {
            p.vouched.extend(vouched);
            for seed in named {
                let known = p.candidates.contains(seed)
                    || p.awaiting.contains(seed)
                    || p.vouched.contains(seed);
                if !known {
                    p.candidates.push_back(*seed);
                }
            }
            // A change pulled from a seed that holds it is worth re-certifying if it cannot
            // be confirmed; a pushed one is not (see the seed's `carry`).
            if via == ChangeSource::AntiEntropy {
                p.via = via;
            }
            return true;
        }
        if self.pending.len() >= MAX_CONFIRMING {
            return false;
        }
        let candidates = (named.iter())
            .filter(|seed| !vouched.contains(seed))
            .copied()
            .collect();
        let pending = Pending {
            via,
            candidates,
            awaiting: BTreeSet::new(),
            asked: 0,
            vouched,
        };
        self.pending.insert(fact, pending);
        true
    }

    /// Decides `fact` if its vouchers allow, else asks as many more named seeds as could
    /// still complete a quorum (at most a quorum in all). Returns the outcome (with how the
    /// fact arrived) once decided.
    pub(super) fn advance(&mut self, fact: Fact) -> Option<(Outcome, ChangeSource)> {
        let q = self.quorum;
        let p = self.pending.get_mut(&fact)?;
        if p.vouched.len() < q {
            let mut asking = p.vouched.len() + p.awaiting.len();
            while asking < q && p.asked < q {
                let Some(seed) = p.candidates.pop_front() else {
                    break;
                };
                p.awaiting.insert(seed);
                p.asked += 1;
                self.queued.entry(seed).or_default().push(fact);
                asking += 1;
            }
            if p.vouched.len() + p.awaiting.len() >= q {
                return None;
            }
        }
        let p = self.pending.remove(&fact)?;
        let outcome = if p.vouched.len() >= q {
            Outcome::Confirmed(p.vouched.into_iter().collect())
        } else {
            Outcome::Unconfirmed
        };
        Some((outcome, p.via))
    }

    /// The requests to send now: for each seed with facts queued and no request in flight,
    /// one batch. The seed is marked busy until [`Confirmations::answered`].
    pub(super) fn batches(&mut self) -> Vec<(Endpoint, Vec<Fact>)> {
        let mut out = Vec::new();
        for (seed, queue) in self.queued.iter_mut() {
            if self.in_flight.contains(seed) {
                continue;
            }
            // A fact decided meanwhile (by other vouchers) needs no answer from this seed.
            queue.retain(|f| (self.pending.get(f)).is_some_and(|p| p.awaiting.contains(seed)));
            if queue.is_empty() {
                continue;
            }
            let take = queue.len().min(MAX_CONFIRM_FACTS);
            let batch: Vec<Fact> = queue.drain(..take).collect();
            self.in_flight.insert(*seed);
            out.push((*seed, batch));
        }
        self.queued.retain(|_, q| !q.is_empty());
        out
    }

    /// `seed` answered a batch: `vouched[i]` for `facts[i]`, or `None` if no usable answer
    /// came (then it vouched for none). Returns the facts decided.
    pub(super) fn answered(
        &mut self,
        seed: Endpoint,
        facts: &[Fact],
        vouched: Option<&[bool]>,
    ) -> Vec<(Fact, Outcome, ChangeSource)> {
        self.in_flight.remove(&seed);
        let mut decided = Vec::new();
        for (i, fact) in facts.iter().enumerate() {
            let Some(p) = self.pending.get_mut(fact) else {
                continue;
            };
            if !p.awaiting.remove(&seed) {
                continue;
            }
            if vouched.and_then(|v| v.get(i)).copied() == Some(true) {
                p.vouched.insert(seed);
            }
            if let Some((outcome, via)) = self.advance(*fact) {
                decided.push((*fact, outcome, via));
            }
        }
        decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Status;

    fn ep(port: u16) -> Endpoint {
        Endpoint::from(([127, 0, 0, 1], port))
    }

    fn fact(port: u16) -> Fact {
        Fact {
            peer: ep(port),
            incarnation: 1,
            status: Status::Alive,
        }
    }

    const PUSH: ChangeSource = ChangeSource::CommitSync;

    #[test]
    fn asks_only_as_many_as_could_complete_a_quorum() {
        // 5 seeds, q = 3; the certificate names four others.
        let mut c = Confirmations::new(3);
        let named = [ep(2), ep(3), ep(4), ep(5)];
        assert!(c.offer(fact(9), &named, BTreeSet::new(), PUSH));
        assert_eq!(c.advance(fact(9)), None);
        let asked: Vec<Endpoint> = c.batches().into_iter().map(|(s, _)| s).collect();
        assert_eq!(asked, vec![ep(2), ep(3), ep(4)]);
        assert!(c.answered(ep(2), &[fact(9)], Some(&[true])).is_empty());
        assert!(c.answered(ep(3), &[fact(9)], Some(&[true])).is_empty());
        let done = c.answered(ep(4), &[fact(9)], Some(&[true]));
        assert_eq!(
            done,
            vec![(fact(9), Outcome::Confirmed(vec![ep(2), ep(3), ep(4)]), PUSH)]
        );
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_forged_certificate_costs_at_most_a_quorum_of_requests() {
        let mut c = Confirmations::new(3);
        let named = [ep(2), ep(3), ep(4), ep(5)];
        c.offer(fact(9), &named, BTreeSet::new(), PUSH);
        c.advance(fact(9));
        let mut requests = 0;
        let mut decided = Vec::new();
        loop {
            let batches = c.batches();
            if batches.is_empty() {
                break;
            }
            for (seed, facts) in batches {
                requests += 1;
                decided.extend(c.answered(seed, &facts, Some(&vec![false; facts.len()])));
            }
        }
        assert_eq!(decided, vec![(fact(9), Outcome::Unconfirmed, PUSH)]);
        assert_eq!(requests, 3);
        // Answers one at a time: still a quorum of requests at most, and no answer counts
        // as a denial.
        c.offer(fact(8), &named, BTreeSet::new(), PUSH);
        c.advance(fact(8));
        assert_eq!(c.batches().len(), 3);
        let decided = c.answered(ep(2), &[fact(8)], None);
        assert_eq!(decided, vec![(fact(8), Outcome::Unconfirmed, PUSH)]);
        assert!(c.batches().is_empty());
        // With two vouchers known, a denial leaves room to ask one more.
        let mut c = Confirmations::new(3);
        c.offer(fact(7), &named, BTreeSet::from([ep(1), ep(9)]), PUSH);
        c.advance(fact(7));
        assert_eq!(c.batches(), vec![(ep(2), vec![fact(7)])]);
        c.answered(ep(2), &[fact(7)], Some(&[false]));
        assert_eq!(c.batches(), vec![(ep(3), vec![fact(7)])]);
    }

    #[test]
    fn known_vouchers_count_and_are_not_asked() {
        let mut c = Confirmations::new(2);
        let me = ep(1);
        c.offer(fact(9), &[me, ep(2)], BTreeSet::from([me]), PUSH);
        assert_eq!(c.advance(fact(9)), None);
        assert_eq!(c.batches(), vec![(ep(2), vec![fact(9)])]);
        // Already vouched by a quorum: decided at once, nobody asked.
        c.offer(fact(7), &[ep(2)], BTreeSet::from([me, ep(3)]), PUSH);
        assert_eq!(
            c.advance(fact(7)).map(|(o, _)| o),
            Some(Outcome::Confirmed(vec![me, ep(3)]))
        );
    }

    #[test]
    fn facts_are_deduplicated_batched_and_bounded() {
        let mut c = Confirmations::new(2);
        for port in 0..300 {
            assert!(c.offer(fact(port), &[ep(2), ep(3)], BTreeSet::new(), PUSH));
            // The same fact again joins the first.
            assert!(c.offer(fact(port), &[ep(2)], BTreeSet::new(), PUSH));
            c.advance(fact(port));
        }
        assert_eq!(c.len(), 300);
        let batches = c.batches();
        assert_eq!(batches.len(), 2);
        assert!(batches.iter().all(|(_, f)| f.len() == MAX_CONFIRM_FACTS));
        // One request per seed in flight: nothing more until they answer.
        assert!(c.batches().is_empty());
        let (seed, facts) = &batches[0];
        c.answered(*seed, facts, Some(&vec![true; facts.len()]));
        assert_eq!(c.batches(), vec![(*seed, (256..300).map(fact).collect())]);
        let mut c = Confirmations::new(2);
        for port in 0..MAX_CONFIRMING as u16 {
            assert!(c.offer(fact(port), &[ep(2)], BTreeSet::new(), PUSH));
        }
        assert!(!c.offer(fact(u16::MAX), &[ep(2)], BTreeSet::new(), PUSH));
    }
}
