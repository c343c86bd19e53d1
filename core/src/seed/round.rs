//! Vote rounds: what a proposer tracks, the pure voting rules every seed applies, and the
//! message shapes that differ only by the kind of round.

use std::collections::{BTreeMap, BTreeSet};

use super::peer_list::Rank;
use crate::event::ProposalKind;
use crate::msg::{CommitSync, Endpoint, Message, Status, VoteReq, VoteResp};
use crate::quorum::{tally, Tally};
use crate::{ConnId, Millis};

/// How a round stands once the votes so far are counted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Pending,
    Won,
    Lost(&'static str),
}

/// One vote round this seed proposed.
#[derive(Clone, Debug)]
pub(super) struct Round {
    pub kind: ProposalKind,
    pub peer: Endpoint,
    pub incarnation: u64,
    /// Requests (`REGISTER_REQ` / `DEAD_REPORT`) answered when the round ends.
    pub waiting: Vec<ConnId>,
    /// The round ends by then at the latest; a retry keeps it, so a requester never waits
    /// longer than one round's budget.
    pub deadline: Millis,
    /// Fresh rounds left above an incarnation a voter reported.
    pub retries_left: u32,
    /// Seeds (this one included) whose vote has not come yet.
    awaiting: BTreeSet<Endpoint>,
    yes: BTreeSet<Endpoint>,
    no: BTreeSet<Endpoint>,
    /// The highest incarnation a no-voter said it knows.
    max_known: Option<u64>,
}

impl Round {
    /// A round not yet asked of anyone, with no retries.
    pub(super) fn new(
        kind: ProposalKind,
        peer: Endpoint,
        incarnation: u64,
        deadline: Millis,
        waiting: Vec<ConnId>,
    ) -> Round {
        Round {
            kind,
            peer,
            incarnation,
            waiting,
            deadline,
            retries_left: 0,
            awaiting: BTreeSet::new(),
            yes: BTreeSet::new(),
            no: BTreeSet::new(),
            max_known: None,
        }
    }

    /// Expects a vote from each of `voters`.
    pub(super) fn ask(&mut self, voters: &BTreeSet<Endpoint>) {
        self.awaiting.extend(voters.iter().copied());
    }

    /// Counts `voter`'s vote. Only a seed asked and not yet heard from counts: a duplicate
    /// or an uninvited vote is ignored (false).
    pub(super) fn record(&mut self, voter: Endpoint, yes: bool, known: Option<u64>) -> bool {
        if !self.awaiting.remove(&voter) {
            return false;
        }
        if yes {
            self.yes.insert(voter);
        } else {
            self.no.insert(voter);
            self.max_known = self.max_known.max(known);
        }
        true
    }

    /// `voter` will not answer (down, timed out, garbled): it counts as neither yes nor no.
    pub(super) fn silence(&mut self, voter: Endpoint) -> bool {
        self.awaiting.remove(&voter)
    }

    /// Won with a quorum of yes; lost when the no-votes, or the seeds that can no longer
    /// answer, leave a quorum of yes out of reach.
    pub(super) fn verdict(&self, n: usize, q: usize) -> Verdict {
        match tally(n, q, &self.yes, &self.no) {
            Tally::Won => Verdict::Won,
            Tally::Lost => Verdict::Lost("quorum lost"),
            Tally::Pending if self.yes.len() + self.awaiting.len() < q => {
                Verdict::Lost("seeds unreachable")
            }
            Tally::Pending => Verdict::Pending,
        }
    }

    /// The incarnation to retry a registration at: one above the highest a no-voter knows,
    /// if that is what defeated this round.
    pub(super) fn retry_incarnation(&self) -> Option<u64> {
        let known = self.max_known.filter(|k| *k >= self.incarnation)?;
        (self.kind == ProposalKind::Register && self.retries_left > 0)
            .then(|| known.saturating_add(1))
    }

    /// The yes-voters: the certificate when the round is won.
    pub(super) fn yes_voters(&self) -> Vec<Endpoint> {
        self.yes.iter().copied().collect()
    }

    pub(super) fn yes_count(&self) -> u32 {
        self.yes.len() as u32
    }
}

/// The rounds in flight, findable by id and by the peer they concern.
#[derive(Clone, Debug, Default)]
pub(super) struct Rounds {
    by_id: BTreeMap<String, Round>,
    by_subject: BTreeMap<(ProposalKind, Endpoint), String>,
}

impl Rounds {
    pub(super) fn insert(&mut self, id: String, round: Round) {
        self.by_subject.insert((round.kind, round.peer), id.clone());
        self.by_id.insert(id, round);
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Round> {
        let round = self.by_id.remove(id)?;
        let subject = (round.kind, round.peer);
        if self.by_subject.get(&subject).map(String::as_str) == Some(id) {
            self.by_subject.remove(&subject);
        }
        Some(round)
    }

    pub(super) fn get(&self, id: &str) -> Option<&Round> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Round> {
        self.by_id.get_mut(id)
    }

    /// The latest round of `kind` about `peer`.
    pub(super) fn about(&mut self, kind: ProposalKind, peer: Endpoint) -> Option<&mut Round> {
        let id = self.by_subject.get(&(kind, peer))?;
        self.by_id.get_mut(id)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// The incarnation a registration proposes: at least the peer's hint, and above whatever
/// this seed knows, so the new entry outranks the old one.
pub(super) fn registration_incarnation(current: Option<Rank>, hint: Option<u64>) -> u64 {
    let above_known = current.map_or(1, |(inc, _)| inc.saturating_add(1));
    above_known.max(hint.unwrap_or(0))
}

/// True when admission at `inc` satisfies a peer that asked for at least `hint`.
pub(super) fn satisfies(inc: u64, hint: Option<u64>) -> bool {
    !matches!(hint, Some(hint) if hint > inc)
}

/// A registration vote: yes unless this seed knows the peer at a rank above `(inc, Alive)`;
/// a no says which incarnation it knows, so the proposer can retry above it.
pub(super) fn register_ballot(current: Option<Rank>, inc: u64) -> (bool, Option<u64>) {
    match current {
        Some(rank) if rank > (inc, Status::Alive) => (false, Some(rank.0)),
        _ => (true, None),
    }
}

/// A removal vote before any probe.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum RemovalBallot {
    /// Already removed at that incarnation: agreeing changes nothing.
    Yes,
    /// Alive at that incarnation: yes if the accused does not answer this seed either.
    Probe,
    /// Unknown, or known at another incarnation (which it says).
    No(Option<u64>),
}

pub(super) fn removal_ballot(current: Option<Rank>, inc: u64) -> RemovalBallot {
    match current {
        Some((known, Status::Alive)) if known == inc => RemovalBallot::Probe,
        Some((known, Status::Removed)) if known == inc => RemovalBallot::Yes,
        other => RemovalBallot::No(other.map(|(known, _)| known)),
    }
}

/// The incarnation a `DEAD_REPORT` accuses, if this seed holds it alive; else why the report
/// ends at once.
pub(super) fn removal_target(
    current: Option<Rank>,
    accused: Option<u64>,
) -> Result<u64, &'static str> {
    let (known, status) = current.ok_or("unknown peer")?;
    let inc = accused.unwrap_or(known);
    match (inc.cmp(&known), status) {
        (std::cmp::Ordering::Equal, Status::Alive) => Ok(inc),
        (std::cmp::Ordering::Equal, Status::Removed) => Err("already removed"),
        (std::cmp::Ordering::Less, _) => Err("stale incarnation"),
        (std::cmp::Ordering::Greater, _) => Err("unknown incarnation"),
    }
}

/// The status a won round of `kind` gives its peer.
pub(super) fn status_of(kind: ProposalKind) -> Status {
    match kind {
        ProposalKind::Register => Status::Alive,
        ProposalKind::Removal => Status::Removed,
    }
}

pub(super) fn vote_request(kind: ProposalKind, req: VoteReq) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterVote(Box::new(req)),
        ProposalKind::Removal => Message::DeadVote(Box::new(req)),
    }
}

pub(super) fn vote_response(kind: ProposalKind, resp: VoteResp) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterVoteResp(Box::new(resp)),
        ProposalKind::Removal => Message::DeadVoteResp(Box::new(resp)),
    }
}

pub(super) fn commit_sync(kind: ProposalKind, sync: CommitSync) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterCommit(Box::new(sync)),
        ProposalKind::Removal => Message::DeadCommit(Box::new(sync)),
    }
}

pub(super) fn commit_ack(kind: ProposalKind) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterCommitAck,
        ProposalKind::Removal => Message::DeadCommitAck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Alive, Removed};

    #[test]
    fn registration_incarnation_goes_above_what_is_known() {
        assert_eq!(registration_incarnation(None, None), 1);
        assert_eq!(registration_incarnation(None, Some(4)), 4);
        assert_eq!(registration_incarnation(Some((3, Removed)), None), 4);
        assert_eq!(registration_incarnation(Some((3, Alive)), Some(5)), 5);
        assert_eq!(registration_incarnation(Some((3, Removed)), Some(2)), 4);
    }

    #[test]
    fn ballots() {
        assert_eq!(register_ballot(None, 1), (true, None));
        assert_eq!(register_ballot(Some((1, Alive)), 1), (true, None));
        assert_eq!(register_ballot(Some((1, Removed)), 1), (false, Some(1)));
        assert_eq!(register_ballot(Some((2, Alive)), 1), (false, Some(2)));
        assert_eq!(removal_ballot(Some((2, Alive)), 2), RemovalBallot::Probe);
        assert_eq!(removal_ballot(Some((2, Removed)), 2), RemovalBallot::Yes);
        assert_eq!(
            removal_ballot(Some((3, Alive)), 2),
            RemovalBallot::No(Some(3))
        );
        assert_eq!(removal_ballot(None, 2), RemovalBallot::No(None));
        assert_eq!(removal_target(None, None), Err("unknown peer"));
        assert_eq!(removal_target(Some((2, Alive)), None), Ok(2));
        assert_eq!(
            removal_target(Some((2, Removed)), Some(2)),
            Err("already removed")
        );
        assert_eq!(
            removal_target(Some((2, Alive)), Some(1)),
            Err("stale incarnation")
        );
        assert_eq!(
            removal_target(Some((2, Alive)), Some(3)),
            Err("unknown incarnation")
        );
    }
}
