//! What this seed voted yes for, so it can vouch for its votes when another seed asks
//! (`SEED_CONFIRM`) before the change reaches its own Peer List.
//!
//! A vote vouches only for a short while: long enough for its round to end and its commit to
//! reach every seed (see [`vote_lifetime_ms`]), not longer. A yes to a removal says the peer
//! did not answer *then*; kept for long, a stranger could collect such votes while a peer was
//! briefly unreachable and carry a commit naming them once it answers again. Once this seed
//! holds a change, holding it vouches for it, so a vote is also forgotten as soon as the
//! seed's entry for that peer reaches or passes it. At most [`MEMORY_CAP`] are kept (the
//! oldest go first): a forgotten vote only means its change needs re-certifying if it ever
//! turns up.

use std::collections::{BTreeMap, VecDeque};

use super::peer_list::Rank;
use crate::msg::{Endpoint, Fact, Status};
use crate::Millis;

/// Yes-votes remembered at most.
pub const MEMORY_CAP: usize = 65_536;

/// How long a yes-vote vouches: the round's deadline, then the commit sync's and a
/// confirmation's request deadlines.
pub fn vote_lifetime_ms(s: &crate::Settings) -> u64 {
    s.vote_timeout_ms
        .saturating_add(s.request_timeout_ms.saturating_mul(2))
}

/// The yes-votes this seed cast for changes it does not hold (yet).
#[derive(Clone, Debug)]
pub(super) struct VoteMemory {
    /// How long a vote vouches (see [`vote_lifetime_ms`]).
    lifetime_ms: u64,
    /// Fact → when the vote was cast.
    votes: BTreeMap<Fact, Millis>,
    /// Votes in casting order; an entry whose fact was forgotten or voted again since is
    /// skipped when it comes up.
    order: VecDeque<(Millis, Fact)>,
}

impl VoteMemory {
    pub(super) fn new(lifetime_ms: u64) -> VoteMemory {
        VoteMemory {
            lifetime_ms,
            votes: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers a yes-vote for `fact`.
    pub(super) fn remember(&mut self, fact: Fact, now: Millis) {
        self.votes.insert(fact, now);
        self.order.push_back((now, fact));
        // Records of votes forgotten or cast again also count, so the order stays bounded.
        while self.votes.len() > MEMORY_CAP || self.order.len() > 2 * MEMORY_CAP {
            self.pop_oldest();
        }
    }

    /// True if this seed voted yes for exactly `fact` recently enough to vouch for it.
    pub(super) fn voted(&self, fact: &Fact, now: Millis) -> bool {
        (self.votes.get(fact)).is_some_and(|at| now.since(*at) <= self.lifetime_ms)
    }

    /// Forgets votes past their time.
    pub(super) fn expire(&mut self, now: Millis) {
        while let Some(&(at, _)) = self.order.front() {
            if now.since(at) <= self.lifetime_ms {
                break;
            }
            self.pop_oldest();
        }
    }

    /// The Peer List now holds `peer` at `rank`: votes for that change or any below it are
    /// no longer needed.
    pub(super) fn settled(&mut self, peer: Endpoint, rank: Rank) {
        let low = Fact {
            peer,
            incarnation: 0,
            status: Status::Alive,
        };
        let high = Fact {
            peer,
            incarnation: rank.0,
            status: rank.1,
        };
        let done: Vec<Fact> = self.votes.range(low..=high).map(|(f, _)| *f).collect();
        for fact in done {
            self.votes.remove(&fact);
        }
    }

    /// `peer` answered this seed's own probe: its yes-votes for removing it no longer hold.
    pub(super) fn forget_removals(&mut self, peer: Endpoint) {
        let low = Fact {
            peer,
            incarnation: 0,
            status: Status::Alive,
        };
        let high = Fact {
            peer,
            incarnation: u64::MAX,
            status: Status::Left,
        };
        let removals: Vec<Fact> = (self.votes.range(low..=high))
            .map(|(f, _)| *f)
            .filter(|f| f.status == Status::Removed)
            .collect();
        for fact in removals {
            self.votes.remove(&fact);
        }
    }

    /// Votes remembered.
    pub(super) fn len(&self) -> usize {
        self.votes.len()
    }

    fn pop_oldest(&mut self) {
        if let Some((at, fact)) = self.order.pop_front() {
            if self.votes.get(&fact) == Some(&at) {
                self.votes.remove(&fact);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(port: u16, incarnation: u64, status: Status) -> Fact {
        Fact {
            peer: Endpoint::from(([127, 0, 0, 1], port)),
            incarnation,
            status,
        }
    }

    const LIFETIME: u64 = 3_200;

    #[test]
    fn votes_are_forgotten_once_held_or_old() {
        let mut m = VoteMemory::new(LIFETIME);
        let a1 = fact(1, 1, Status::Alive);
        let r1 = fact(1, 1, Status::Removed);
        let a2 = fact(1, 2, Status::Alive);
        let other = fact(2, 1, Status::Alive);
        for f in [a1, r1, a2, other] {
            m.remember(f, Millis(0));
        }
        m.settled(a1.peer, (1, Status::Removed));
        assert!(!m.voted(&a1, Millis(0)) && !m.voted(&r1, Millis(0)));
        assert!(m.voted(&a2, Millis(0)) && m.voted(&other, Millis(LIFETIME)));
        // A vote no longer vouches once its lifetime is over, expired or not.
        assert!(!m.voted(&a2, Millis(LIFETIME + 1)));
        // Voted again later: the old record does not make it expire early.
        m.remember(other, Millis(LIFETIME / 2));
        m.expire(Millis(LIFETIME + 1));
        assert!(!m.voted(&a2, Millis(LIFETIME + 1)));
        assert!(m.voted(&other, Millis(LIFETIME + 1)));
        m.expire(Millis(LIFETIME * 2));
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = VoteMemory::new(u64::MAX);
        for i in 0..(MEMORY_CAP as u64 + 10) {
            m.remember(fact(1, i + 1, Status::Alive), Millis(i));
        }
        assert_eq!(m.len(), MEMORY_CAP);
        let now = Millis(MEMORY_CAP as u64 + 10);
        assert!(
            !m.voted(&fact(1, 1, Status::Alive), now),
            "the oldest went first"
        );
        assert!(m.voted(&fact(1, MEMORY_CAP as u64 + 10, Status::Alive), now));
    }
}
