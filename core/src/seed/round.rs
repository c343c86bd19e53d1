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

/// One vote round this seed proposed: its votes, its deadline, and who waits for its end.
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
    /// This seed's probe of the registrant, made before proposing (its own vote reuses it).
    pub probed: Option<Probed>,
    /// A round that re-certifies a change another seed holds but whose voters could not
    /// confirm it (they restarted, say), rather than one a request asked for.
    pub recertify: bool,
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
            probed: None,
            recertify: false,
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

    /// `voter` takes back its yes (what it checked no longer holds): it counts as a no. True
    /// if it had said yes.
    pub(super) fn withdraw(&mut self, voter: Endpoint) -> bool {
        if !self.yes.remove(&voter) {
            return false;
        }
        self.no.insert(voter);
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

    /// The id of the latest round of `kind` about `peer`.
    pub(super) fn id_about(&self, kind: ProposalKind, peer: Endpoint) -> Option<String> {
        self.by_subject.get(&(kind, peer)).cloned()
    }

    /// The latest round of `kind` about `peer`.
    pub(super) fn about(&mut self, kind: ProposalKind, peer: Endpoint) -> Option<&mut Round> {
        let id = self.by_subject.get(&(kind, peer))?;
        self.by_id.get_mut(id)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Re-certification rounds in flight.
    pub(super) fn recertifying(&self) -> usize {
        self.by_id.values().filter(|r| r.recertify).count()
    }
}

/// No incarnation reaches this: a seed admits below it and removes below it, so whatever is
/// admitted can be removed, and far below `u64::MAX`, so no arithmetic on an incarnation can
/// overflow. Each step up needs a removal and a fresh registration, so 4 billion of them
/// never run out.
pub const MAX_INCARNATION: u64 = u32::MAX as u64;

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

/// What a seed's rules say about a vote before it probes anyone.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Yes at once: this seed holds exactly that entry, or already voted yes for it (both
    /// were checked when they happened).
    Yes,
    /// No; with the incarnation this seed knows, if any, so a proposer can retry above it.
    No(Option<u64>),
    /// The answer depends on this seed's own `PING` of the peer concerned.
    Probe,
}

/// What a seed's own `PING` of a peer showed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Probed {
    /// Anything answered (even `ERROR`: a reference node is up).
    pub answered: bool,
    /// The incarnation the peer said it holds or registers for (`PONG.incarnation`).
    pub claimed: Option<u64>,
    /// The peer said it is leaving (`PONG.leaving`).
    pub leaving: bool,
}

/// A registration vote for `(peer, inc, Alive)`, before probing. `voted` is true when this
/// seed already voted yes for exactly this change.
pub(super) fn register_check(current: Option<Rank>, inc: u64, voted: bool) -> Check {
    let wanted = (inc, Status::Alive);
    match current {
        // Below the largest, so whatever is admitted can still be removed.
        _ if inc == 0 || inc >= MAX_INCARNATION => Check::No(current.map(|(k, _)| k)),
        Some(rank) if rank > wanted => Check::No(Some(rank.0)),
        Some(rank) if rank == wanted => Check::Yes,
        _ if voted => Check::Yes,
        _ => Check::Probe,
    }
}

/// A registration vote once the registrant was probed: yes only if it answered at its address
/// and `inc` is within bounds. An entry moves up at most one step from what this seed knows
/// (one above a removal; a first admission at 1), except where the registrant itself claims
/// more in its `PONG` (a peer rejoining above a removal this seed has not heard of yet). An
/// admitted entry moves up only on the peer's own claim: nobody else can bump it.
pub(super) fn register_after_probe(current: Option<Rank>, inc: u64, probed: Probed) -> Check {
    match register_check(current, inc, false) {
        Check::Probe => {}
        decided => return decided,
    }
    let known = current.map(|(k, _)| k);
    if !probed.answered {
        return Check::No(known);
    }
    let step = match current {
        None => 1,
        Some((k, Status::Alive)) => k,
        Some((k, Status::Removed | Status::Left)) => k.saturating_add(1),
    };
    if inc <= step.max(probed.claimed.unwrap_or(0)) {
        Check::Yes
    } else {
        Check::No(known)
    }
}

/// A removal vote for `(peer, inc, Removed)`, before probing: yes only if the accused does
/// not answer this seed's own probe, and this seed holds it alive at exactly that
/// incarnation. Where this seed's list is behind (it restarted empty, or missed changes),
/// `heard` (what another seed said it holds, unconfirmed: see `confirm.rs`) at exactly that
/// incarnation is reason enough to look: a silent peer is removed whoever admitted it, so a
/// dead peer whose voters lost their state is still removed where it is listed. Hearsay never
/// makes a yes by itself, and a removal at [`MAX_INCARNATION`] (which no peer could rejoin
/// above) is refused.
///
/// Hearsay may come from a lying seed, and a removal at an incarnation nobody held makes the
/// peer rejoin above it, however high (above `MAX_INCARNATION - 1`, at an incarnation it
/// could never be removed at again). So it counts only one step above what this seed knows:
/// one above the incarnation it holds for that peer; for a peer it has no entry for (it
/// restarted empty, or missed the admission), one above `highest`, the highest incarnation it
/// holds for any peer: within the range the cluster uses, never beyond it.
pub(super) fn removal_check(
    current: Option<Rank>,
    heard: Option<Rank>,
    highest: u64,
    inc: u64,
    voted: bool,
) -> Check {
    let step = current.map_or(highest, |(k, _)| k).saturating_add(1);
    let heard_of =
        heard.is_some_and(|(k, _)| k == inc) && current < Some((inc, Status::Alive)) && inc <= step;
    match current {
        _ if inc >= MAX_INCARNATION => Check::No(current.map(|(k, _)| k)),
        Some(rank) if rank > (inc, Status::Removed) => Check::No(Some(rank.0)),
        Some(rank) if rank == (inc, Status::Removed) => Check::Yes,
        _ if voted => Check::Yes,
        Some(rank) if rank == (inc, Status::Alive) => Check::Probe,
        _ if heard_of => Check::Probe,
        other => Check::No(other.map(|(k, _)| k)),
    }
}

/// A removal vote once the accused was probed.
pub(super) fn removal_after_probe(
    current: Option<Rank>,
    heard: Option<Rank>,
    highest: u64,
    inc: u64,
    probed: Probed,
) -> Check {
    match removal_check(current, heard, highest, inc, false) {
        Check::Probe if probed.answered => Check::No(current.map(|(k, _)| k)),
        Check::Probe => Check::Yes,
        decided => decided,
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
        (std::cmp::Ordering::Equal, Status::Left) => Err("already left"),
        (std::cmp::Ordering::Less, _) => Err("stale incarnation"),
        (std::cmp::Ordering::Greater, _) => Err("unknown incarnation"),
    }
}

/// The incarnation a `LEAVE` certifies, if this seed holds the peer alive at exactly it; else
/// why the request ends at once (`Ok(None)`: it already left there, nothing to do).
pub(super) fn leave_target(current: Option<Rank>, inc: u64) -> Result<Option<u64>, &'static str> {
    match current {
        Some((k, Status::Alive)) if k == inc => Ok(Some(inc)),
        Some((k, Status::Left)) if k == inc => Ok(None),
        Some((k, Status::Removed)) if k == inc => Err("already removed"),
        Some((k, _)) if k > inc => Err("stale incarnation"),
        _ => Err("unknown peer or incarnation"),
    }
}

/// A leave vote for `(peer, inc, Left)`, before probing: it waits for this seed's own probe
/// if it holds the peer alive at exactly that incarnation. Nobody but the peer can make it
/// leave: the yes needs the peer's own `PONG` saying it is leaving (see
/// [`leave_after_probe`]). A seed that holds that incarnation removed says yes: it is gone
/// either way, and a leave certified elsewhere while this seed removed it (the leaver exited
/// before its `LEFT` reached every seed) is how the seeds agree again.
pub(super) fn leave_check(current: Option<Rank>, inc: u64, voted: bool) -> Check {
    match current {
        Some(rank) if rank == (inc, Status::Left) || rank == (inc, Status::Removed) => Check::Yes,
        Some(rank) if rank > (inc, Status::Left) => Check::No(Some(rank.0)),
        _ if voted => Check::Yes,
        Some(rank) if rank == (inc, Status::Alive) => Check::Probe,
        other => Check::No(other.map(|(k, _)| k)),
    }
}

/// A leave vote once the peer was probed: yes only if it answered, said it is leaving, and
/// named that incarnation (or none).
pub(super) fn leave_after_probe(current: Option<Rank>, inc: u64, probed: Probed) -> Check {
    match leave_check(current, inc, false) {
        Check::Probe => {}
        decided => return decided,
    }
    let own = probed.claimed.is_none_or(|k| k == inc);
    if probed.answered && probed.leaving && own {
        Check::Yes
    } else {
        Check::No(current.map(|(k, _)| k))
    }
}

/// The status a won round of `kind` gives its peer.
pub(super) fn status_of(kind: ProposalKind) -> Status {
    match kind {
        ProposalKind::Register => Status::Alive,
        ProposalKind::Removal => Status::Removed,
        ProposalKind::Leave => Status::Left,
    }
}

pub(super) fn vote_request(kind: ProposalKind, req: VoteReq) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterVote(Box::new(req)),
        ProposalKind::Removal => Message::DeadVote(Box::new(req)),
        ProposalKind::Leave => Message::LeaveVote(Box::new(req)),
    }
}

pub(super) fn vote_response(kind: ProposalKind, resp: VoteResp) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterVoteResp(Box::new(resp)),
        ProposalKind::Removal => Message::DeadVoteResp(Box::new(resp)),
        ProposalKind::Leave => Message::LeaveVoteResp(Box::new(resp)),
    }
}

pub(super) fn commit_sync(kind: ProposalKind, sync: CommitSync) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterCommit(Box::new(sync)),
        ProposalKind::Removal => Message::DeadCommit(Box::new(sync)),
        ProposalKind::Leave => Message::LeaveCommit(Box::new(sync)),
    }
}

pub(super) fn commit_ack(kind: ProposalKind) -> Message {
    match kind {
        ProposalKind::Register => Message::RegisterCommitAck,
        ProposalKind::Removal => Message::DeadCommitAck,
        ProposalKind::Leave => Message::LeaveCommitAck,
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

    fn answered(claimed: Option<u64>) -> Probed {
        Probed {
            answered: true,
            claimed,
            leaving: false,
        }
    }

    const SILENT: Probed = Probed {
        answered: false,
        claimed: None,
        leaving: false,
    };

    fn leaving(claimed: Option<u64>) -> Probed {
        Probed {
            answered: true,
            claimed,
            leaving: true,
        }
    }

    #[test]
    fn leave_votes() {
        use Check::{No, Probe, Yes};
        use Status::Left;
        // (current, inc, voted) → before probing
        let before: &[(Option<Rank>, u64, bool, Check)] = &[
            (Some((2, Alive)), 2, false, Probe),
            (Some((2, Left)), 2, false, Yes),
            // gone either way: how a leave certified elsewhere reaches a seed that removed
            // the peer meanwhile
            (Some((2, Removed)), 2, false, Yes),
            (Some((3, Alive)), 2, false, No(Some(3))),
            (Some((1, Alive)), 2, false, No(Some(1))),
            (Some((1, Alive)), 2, true, Yes),
            (None, 1, false, No(None)),
        ];
        for &(current, inc, voted, want) in before {
            assert_eq!(leave_check(current, inc, voted), want, "{current:?} {inc}");
        }
        // only the peer's own PONG saying it leaves, at that incarnation, earns a yes
        let after: &[(Option<Rank>, u64, Probed, Check)] = &[
            (Some((2, Alive)), 2, leaving(Some(2)), Yes),
            (Some((2, Alive)), 2, leaving(None), Yes),
            (Some((2, Alive)), 2, leaving(Some(3)), No(Some(2))),
            (Some((2, Alive)), 2, answered(Some(2)), No(Some(2))),
            (Some((2, Alive)), 2, SILENT, No(Some(2))),
            (None, 2, leaving(Some(2)), No(None)),
        ];
        for &(current, inc, probed, want) in after {
            assert_eq!(
                leave_after_probe(current, inc, probed),
                want,
                "{current:?} {inc} {probed:?}"
            );
        }
        assert_eq!(leave_target(Some((2, Alive)), 2), Ok(Some(2)));
        assert_eq!(leave_target(Some((2, Left)), 2), Ok(None));
        assert_eq!(leave_target(Some((2, Removed)), 2), Err("already removed"));
        assert_eq!(leave_target(Some((3, Alive)), 2), Err("stale incarnation"));
        assert!(leave_target(None, 2).is_err());
        assert_eq!(
            removal_target(Some((2, Left)), Some(2)),
            Err("already left")
        );
    }

    #[test]
    fn registration_votes() {
        use Check::{No, Probe, Yes};
        // (current, inc, voted before) → before probing
        let before: &[(Option<Rank>, u64, bool, Check)] = &[
            (None, 1, false, Probe),
            (None, 1, true, Yes),
            (Some((1, Alive)), 1, false, Yes),
            (Some((1, Removed)), 1, false, No(Some(1))),
            (Some((1, Removed)), 1, true, No(Some(1))),
            (Some((2, Alive)), 1, false, No(Some(2))),
            (Some((1, Removed)), 2, false, Probe),
            (None, 0, false, No(None)),
            (None, MAX_INCARNATION + 1, true, No(None)),
            (None, MAX_INCARNATION, true, No(None)),
            (Some((3, Alive)), u64::MAX, false, No(Some(3))),
        ];
        for &(current, inc, voted, want) in before {
            assert_eq!(
                register_check(current, inc, voted),
                want,
                "{current:?} {inc}"
            );
        }
        // (current, inc, probe) → after probing
        let after: &[(Option<Rank>, u64, Probed, Check)] = &[
            (None, 1, answered(None), Yes),
            (None, 1, SILENT, No(None)),
            // a first admission is at 1, unless the peer itself claims more
            (None, 2, answered(None), No(None)),
            (None, 5, answered(Some(5)), Yes),
            (None, 6, answered(Some(5)), No(None)),
            // one above a removal
            (Some((4, Removed)), 5, answered(None), Yes),
            (Some((4, Removed)), 6, answered(None), No(Some(4))),
            (Some((4, Removed)), 6, answered(Some(6)), Yes),
            // an admitted entry moves up only on the peer's own claim
            (Some((4, Alive)), 5, answered(None), No(Some(4))),
            (Some((4, Alive)), 5, answered(Some(4)), No(Some(4))),
            (Some((4, Alive)), 5, answered(Some(5)), Yes),
            (Some((4, Alive)), 5, SILENT, No(Some(4))),
            // decided before any probe
            (Some((4, Alive)), 4, SILENT, Yes),
            (None, u64::MAX, answered(Some(u64::MAX)), No(None)),
        ];
        for &(current, inc, probed, want) in after {
            assert_eq!(
                register_after_probe(current, inc, probed),
                want,
                "{current:?} {inc} {probed:?}"
            );
        }
    }

    #[test]
    fn removal_votes() {
        use Check::{No, Probe, Yes};
        // (current, heard, inc, voted) → before probing, this seed holding incarnations up
        // to 1 for other peers
        type Case = (Option<Rank>, Option<Rank>, u64, bool, Check);
        let before: &[Case] = &[
            (Some((2, Alive)), None, 2, false, Probe),
            (Some((2, Removed)), None, 2, false, Yes),
            (Some((3, Alive)), None, 2, false, No(Some(3))),
            (Some((3, Alive)), None, 2, true, No(Some(3))),
            (Some((1, Alive)), None, 2, false, No(Some(1))),
            (Some((1, Alive)), None, 2, true, Yes),
            (Some((1, Removed)), None, 2, false, No(Some(1))),
            (None, None, 2, false, No(None)),
            // hearsay at exactly that incarnation makes a seed that is behind look
            (None, Some((1, Alive)), 1, false, Probe),
            (None, Some((1, Removed)), 1, false, Probe),
            (Some((1, Removed)), Some((2, Alive)), 2, false, Probe),
            (Some((1, Alive)), Some((2, Alive)), 2, false, Probe),
            (None, Some((3, Alive)), 2, false, No(None)),
            (None, Some((2, Alive)), 2, false, Probe),
            // but only one step above what this seed knows (for a peer it has no entry for,
            // one above the highest incarnation it holds): a liar's word cannot make a
            // removal at an incarnation nobody held
            (None, Some((3, Alive)), 3, false, No(None)),
            (Some((1, Removed)), Some((3, Alive)), 3, false, No(Some(1))),
            (Some((1, Alive)), Some((5, Removed)), 5, false, No(Some(1))),
            (
                Some((1, Removed)),
                Some((MAX_INCARNATION - 1, Removed)),
                MAX_INCARNATION - 1,
                false,
                No(Some(1)),
            ),
            // but never overrides what the list holds
            (Some((3, Alive)), Some((2, Alive)), 2, false, No(Some(3))),
            (
                None,
                Some((MAX_INCARNATION, Alive)),
                MAX_INCARNATION,
                false,
                No(None),
            ),
        ];
        for &(current, heard, inc, voted, want) in before {
            assert_eq!(
                removal_check(current, heard, 1, inc, voted),
                want,
                "{current:?} {heard:?} {inc} {voted}"
            );
        }
        assert_eq!(
            removal_after_probe(Some((2, Alive)), None, 1, 2, SILENT),
            Yes
        );
        assert_eq!(
            removal_after_probe(Some((2, Alive)), None, 1, 2, answered(None)),
            No(Some(2))
        );
        assert_eq!(
            removal_after_probe(None, Some((1, Alive)), 0, 1, SILENT),
            Yes
        );
        assert_eq!(
            removal_after_probe(None, Some((1, Alive)), 0, 1, answered(None)),
            No(None)
        );
        assert_eq!(
            removal_after_probe(Some((1, Removed)), Some((9, Alive)), 9, 9, SILENT),
            No(Some(1))
        );
        // For a peer it has no entry for, the range is that of the incarnations it holds.
        assert_eq!(
            removal_after_probe(None, Some((10, Alive)), 9, 10, SILENT),
            Yes
        );
        assert_eq!(
            removal_after_probe(None, Some((11, Alive)), 9, 11, SILENT),
            No(None)
        );
        assert_eq!(removal_after_probe(None, None, 1, 2, SILENT), No(None));
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
