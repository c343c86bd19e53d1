//! Liveness: probing neighbours, suspicion rounds with witnesses and the dead report (the
//! detector's side), following a report until a seed commits it, and probing a suspect on
//! another detector's behalf (the witness's side). It owns the suspicions, the accusations
//! and the witness backlog; the links it probes are the overlay's, the probes go through the
//! shared `PING` table.
//!
//! One peer alone never gets another removed: a `DEAD_REPORT` follows only a peer-level
//! majority (the detector's vote and at least one witness's), and the seeds probe the accused
//! themselves before they vote.

use std::collections::{BTreeMap, BTreeSet};

use super::decide::{pick_witnesses, verdict};
use super::known::Known;
use super::overlay::Overlay;
use super::pings::{PingRole, Pings};
use super::{count, Cx, Timer};
use crate::msg::{DeadReport, Endpoint, Message, PeerListResp, Ping, SuspectAck, SuspectReq};
use crate::{quorum, ConnId, Event, Failure, Output};

/// Witness probes a peer keeps pending at most; beyond, `SUSPECT_REQ` is answered `ERROR`
/// so a flood of requests cannot grow memory.
pub const MAX_PENDING_WITNESS: usize = 256;

/// Dead reports a peer keeps following at most (see [`Accusation`]).
const MAX_ACCUSATIONS: usize = 64;

/// Re-checks of an unsettled accusation before it is given up, unless a Peer List shows the
/// accused still listed (then they start over).
const ACCUSATION_RETRIES: u32 = 3;
/// Sampled Peer Lists (a bounded share of a large one) that may miss a neighbour that left
/// before its watch ends; a complete one settles it at once.
const LEAVER_WATCH_LISTS: u32 = 8;

/// A neighbour that said it leaves, watched in the Peer Lists this peer gets next.
#[derive(Debug)]
struct Leaver {
    /// The incarnation it left at, if known.
    incarnation: Option<u64>,
    /// Peer Lists still to look at before the watch ends.
    lists_left: u32,
    /// The seeds whose lists still listed it.
    listed_by: Vec<Endpoint>,
}

/// The highest local health score (Lifeguard's "local health multiplier", Dadgar et al.
/// 2018): at it, a peer waits `1 + MAX_LOCAL_HEALTH` probe timeouts for a neighbour's `PONG`
/// and needs `probe_misses + MAX_LOCAL_HEALTH` misses in a row to suspect it.
pub const MAX_LOCAL_HEALTH: u32 = 4;

/// A suspicion round in progress.
#[derive(Debug)]
struct Suspicion {
    /// Witnesses whose `SUSPECT_ACK` is awaited.
    awaiting: BTreeSet<Endpoint>,
    /// Witnesses that said dead, in answer order.
    dead: Vec<Endpoint>,
    /// Witnesses that said alive.
    alive: u32,
    /// The suspect refuted once (its `PING` arrived) and was probed again.
    refuted: bool,
}

/// A dead report whose outcome is not settled: no seed has committed the removal yet (a
/// quorum of seeds may have been down). On each refresh the detector probes the accused
/// again and, if it is still silent, runs a fresh witness round and reports again. It ends
/// when a seed commits, the accused answers, the witnesses disagree, a complete Peer List no
/// longer lists it, or the retries run out.
#[derive(Debug)]
struct Accusation {
    /// The incarnation accused, if known.
    incarnation: Option<u64>,
    /// Seeds whose answer to the latest report is awaited.
    awaiting: BTreeSet<Endpoint>,
    /// Re-checks left.
    retries_left: u32,
    /// Every seed that answered the latest report so far refused it, and none failed to
    /// answer: once all have, the seeds (which probe the accused themselves) did not find
    /// it dead.
    refused: bool,
}

/// The detector's and the witness's state.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    suspicions: BTreeMap<Endpoint, Suspicion>,
    accusations: BTreeMap<Endpoint, Accusation>,
    /// Neighbours that said they leave: see [`Liveness::note_listed`].
    leavers: BTreeMap<Endpoint, Leaver>,
    /// Witness probes in flight for other detectors.
    witness_pending: usize,
    /// How much this peer distrusts its own probes, 0 (healthy) to [`MAX_LOCAL_HEALTH`]. A
    /// peer that is slow (a saturated host) or on a lossy link misses `PONG`s of live
    /// neighbours; the evidence is its own suspicions proved wrong (a witness or a later
    /// probe found the suspect up) and being told it is suspected itself. Each point waits
    /// one more probe timeout and needs one more miss; a probe round without a miss takes a
    /// point off. So a sick detector is slow to accuse, a healthy one stays fast.
    health: u32,
    /// A neighbour's probe missed since the last probe round began.
    missed_this_round: bool,
    /// Suspicions this peer refuted (a witness's `PING` said who suspected it).
    pub refutations: u64,
    /// Probes of neighbours that got no answer.
    pub probes_missed: u64,
    /// Suspicion rounds started.
    pub suspicions_raised: u64,
    /// `DEAD_REPORT`s sent (one per round, to a quorum of seeds).
    pub dead_reports: u64,
}

impl Liveness {
    /// A neighbour left of its own accord: no suspicion of it, and no report, goes on; it is
    /// watched in the next Peer Lists in case no quorum of seeds certifies its leave.
    pub(super) fn follow_leaver(&mut self, cx: &Cx<'_>, peer: &Endpoint, incarnation: Option<u64>) {
        self.suspicions.remove(peer);
        self.accusations.remove(peer);
        if self.leavers.len() < MAX_ACCUSATIONS || self.leavers.contains_key(peer) {
            let leaver = Leaver {
                incarnation,
                // Long enough to hear every seed twice in turn.
                lists_left: LEAVER_WATCH_LISTS.max(2 * count(cx.seeds.len())),
                listed_by: Vec::new(),
            };
            self.leavers.insert(*peer, leaver);
        }
    }

    // ----- detector: probes and suspicion ---------------------------------------------------

    /// Probes every neighbour with no probe in flight, except one whose own `PING` arrived
    /// since the last round while nothing was amiss: it was up a moment ago, and both ends of
    /// a link probing each other every interval doubled the probe traffic for nothing. Never
    /// two rounds in a row, though: a `PING`'s sender is only what it says, and pings
    /// spoofed in a dead neighbour's name must not hide its crash. So a crash is seen at most
    /// one interval later; a neighbour that has missed a probe is probed every round.
    pub(super) fn probe_neighbours(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
    ) {
        if !std::mem::take(&mut self.missed_this_round) {
            self.health = self.health.saturating_sub(1);
        }
        let deadline = cx.after(self.probe_timeout_ms(cx));
        for i in 0..overlay.len() {
            let Some((&peer, link)) = overlay.get_index_mut(i) else {
                break;
            };
            let heard = std::mem::take(&mut link.heard);
            if link.probing {
                continue;
            }
            if heard && link.misses == 0 && !link.skipped {
                link.skipped = true;
                continue;
            }
            link.skipped = false;
            link.probing = true;
            pings.ping(cx.me, peer, PingRole::Probe, deadline, cx.out);
        }
        let next = cx.after(cx.settings.probe_interval_ms);
        cx.timers.set(Timer::Probe, next);
    }

    /// Probes again the neighbours that missed their last probe and have none in flight: a
    /// neighbour that stops answering is suspected after `probe_misses` misses a half round
    /// apart, not whole rounds, so a crash is reported sooner at no cost to a healthy link.
    pub(super) fn reprobe_missed(&self, cx: &mut Cx<'_>, overlay: &mut Overlay, pings: &mut Pings) {
        let deadline = cx.after(self.probe_timeout_ms(cx));
        for i in 0..overlay.len() {
            let Some((&peer, link)) = overlay.get_index_mut(i) else {
                break;
            };
            if link.misses == 0 || link.probing {
                continue;
            }
            link.probing = true;
            pings.ping(cx.me, peer, PingRole::Probe, deadline, cx.out);
        }
    }

    /// A neighbour's probe ended. A first silence is tried again at once (a lost `PING` or
    /// `PONG` on a lossy link is not a miss); a second one is a miss, and enough misses in a
    /// row raise a suspicion. Returns the neighbour if it was found dead (see
    /// [`Liveness::conclude`]).
    pub(super) fn on_probe_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        known: &Known,
        peer: Endpoint,
        alive: bool,
    ) -> Option<Endpoint> {
        let link = overlay.link_mut(&peer)?;
        link.probing = false;
        let retried = std::mem::take(&mut link.retrying);
        if alive {
            link.misses = 0;
            self.withdraw_suspicion(cx, peer);
            return None;
        }
        if !retried {
            link.probing = true;
            link.retrying = true;
            let deadline = cx.after(self.probe_timeout_ms(cx));
            pings.ping(cx.me, peer, PingRole::Probe, deadline, cx.out);
            return None;
        }
        link.misses = link.misses.saturating_add(1);
        self.probes_missed += 1;
        self.missed_this_round = true;
        let misses = link.misses;
        let needed = cx.settings.probe_misses.saturating_add(self.health);
        if misses >= needed && !self.suspicions.contains_key(&peer) {
            return self.raise_suspicion(cx, overlay, known, peer, misses);
        }
        if misses < needed {
            let soon = cx.after(cx.settings.probe_interval_ms / 2);
            if cx.timers.get(&Timer::Reprobe).is_none_or(|at| at > soon) {
                cx.timers.set(Timer::Reprobe, soon);
            }
        }
        None
    }

    /// How long a neighbour's probe waits for its `PONG`: longer while this peer distrusts
    /// its own probes.
    fn probe_timeout_ms(&self, cx: &Cx<'_>) -> u64 {
        (cx.settings.probe_timeout_ms).saturating_mul(u64::from(1 + self.health))
    }

    /// This peer's own probes were proved wrong, or it was told it is suspected.
    fn distrust_own_probes(&mut self) {
        self.health = (self.health + 1).min(MAX_LOCAL_HEALTH);
    }

    /// Local health, for the status counters.
    pub(super) fn health(&self) -> u32 {
        self.health
    }

    /// A `PING` arrived. From a neighbour, it shows the neighbour up (see
    /// [`Liveness::probe_neighbours`]); from a neighbour under suspicion, it is a refutation:
    /// the suspect is probed once more at once (the `PING` itself proves nothing, anyone can
    /// write any sender). A `PING` naming who suspects this peer (a witness's) makes it
    /// distrust its own probes a little and refute: it `PING`s that detector, if it is a
    /// neighbour, at most once per probe interval.
    pub(super) fn on_ping(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        ping: &Ping,
    ) {
        if let Some(link) = overlay.link_mut(&ping.sender) {
            link.heard = true;
            link.holds_link = true;
            if let Some(round) = self.suspicions.get_mut(&ping.sender) {
                if !std::mem::replace(&mut round.refuted, true) && !link.probing {
                    link.probing = true;
                    let deadline = cx.after(self.probe_timeout_ms(cx));
                    pings.ping(cx.me, ping.sender, PingRole::Probe, deadline, cx.out);
                }
            }
        }
        let Some(detector) = ping.suspected_by.as_deref().copied() else {
            return;
        };
        let Some(link) = overlay.link_mut(&detector) else {
            return;
        };
        let interval = cx.settings.probe_interval_ms;
        if link
            .refuted_at
            .is_some_and(|at| cx.now.0 < at.0.saturating_add(interval))
        {
            return;
        }
        link.refuted_at = Some(cx.now);
        self.refutations += 1;
        self.distrust_own_probes();
        let refutation = Ping {
            sender: cx.me,
            suspected_by: None,
        };
        cx.out.push(Output::Send {
            to: detector,
            msg: Message::Ping(refutation),
            deadline: cx.after(cx.settings.probe_timeout_ms),
            wants_response: false,
        });
    }

    /// Asks witnesses (other neighbours first) to probe `suspect` themselves. With no
    /// witness at all the round ends at once (without a consensus).
    fn raise_suspicion(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        known: &Known,
        suspect: Endpoint,
        misses: u32,
    ) -> Option<Endpoint> {
        let preferred: Vec<Endpoint> = overlay.keys().filter(|&&p| p != suspect).copied().collect();
        let others: Vec<Endpoint> = known
            .keys()
            .filter(|&p| p != suspect && !overlay.contains(&p))
            .collect();
        let k = cx.settings.witnesses as usize;
        let witnesses = pick_witnesses(&preferred, &others, k, cx.rng);
        self.suspicions_raised += 1;
        cx.emit(Event::SuspicionRaised {
            suspect,
            misses,
            witnesses: witnesses.clone(),
        });
        let round = Suspicion {
            awaiting: witnesses.iter().copied().collect(),
            dead: Vec::new(),
            alive: 0,
            refuted: false,
        };
        if witnesses.is_empty() {
            return self.conclude(cx, overlay, known, suspect, round);
        }
        self.suspicions.insert(suspect, round);
        let deadline = cx.after(cx.settings.suspect_timeout_ms);
        for w in witnesses {
            let req = SuspectReq {
                suspect,
                requester: cx.me,
            };
            cx.send(w, Message::SuspectReq(Box::new(req)), deadline);
        }
        None
    }

    /// The suspect answered the detector's own probe while its witnesses were still out: the
    /// detector's vote turns to alive, so no report can follow. Later witness answers find no
    /// round and are ignored.
    fn withdraw_suspicion(&mut self, cx: &mut Cx<'_>, suspect: Endpoint) {
        if let Some(round) = self.suspicions.remove(&suspect) {
            self.distrust_own_probes();
            cx.emit(Event::SuspicionVerdict {
                suspect,
                dead_votes: count(round.dead.len()),
                alive_votes: round.alive.saturating_add(1),
                dead_witnesses: round.dead,
                consensus: false,
            });
        }
    }

    /// A witness's answer is a vote; a failure or any other reply is no vote. Returns the
    /// suspect if the round ended with it found dead.
    pub(super) fn on_suspect_ack(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        known: &Known,
        witness: Endpoint,
        suspect: Endpoint,
        outcome: Result<Message, Failure>,
    ) -> Option<Endpoint> {
        let round = self.suspicions.get_mut(&suspect)?;
        if !round.awaiting.remove(&witness) {
            return None;
        }
        if let Ok(Message::SuspectAck(ack)) = outcome {
            if ack.suspect == suspect {
                if ack.alive {
                    round.alive += 1;
                } else {
                    round.dead.push(witness);
                }
            }
        }
        if round.awaiting.is_empty() {
            let round = self.suspicions.remove(&suspect)?;
            return self.conclude(cx, overlay, known, suspect, round);
        }
        None
    }

    /// Tallies a finished round. On a consensus the suspect is reported to a quorum of seeds
    /// and returned: the peer drops the link, forgets it and refreshes its Peer List.
    fn conclude(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        known: &Known,
        suspect: Endpoint,
        round: Suspicion,
    ) -> Option<Endpoint> {
        let v = verdict(count(round.dead.len()), round.alive);
        cx.emit(Event::SuspicionVerdict {
            suspect,
            dead_votes: v.dead_votes,
            alive_votes: v.alive_votes,
            dead_witnesses: round.dead.clone(),
            consensus: v.consensus,
        });
        if !v.consensus {
            if round.alive > 0 {
                self.distrust_own_probes();
            }
            if let Some(link) = overlay.link_mut(&suspect) {
                link.misses = 0;
            }
            self.accusations.remove(&suspect);
            return None;
        }
        self.report_dead(cx, known, suspect, round.dead);
        Some(suspect)
    }

    /// `DEAD_REPORT` to a quorum of random seeds, naming the incarnation accused if known:
    /// the highest this peer heard of, from an earlier accusation or since (a Peer List
    /// refresh, a greeting). A report is sent only when the peer at that endpoint is silent
    /// now and witnesses agree, so it accuses whatever life is there; an accusation that
    /// kept the incarnation of its first report accused a life the seeds had already replaced
    /// after a restart, and every retry was refused as stale (promise 6).
    fn report_dead(
        &mut self,
        cx: &mut Cx<'_>,
        known: &Known,
        dead: Endpoint,
        witnesses: Vec<Endpoint>,
    ) {
        let earlier = self.accusations.get(&dead).and_then(|a| a.incarnation);
        let incarnation = earlier.max(known.get(&dead).flatten());
        let report = DeadReport::new(dead, cx.me, cx.unix_secs(), incarnation, witnesses);
        let text = report.text.clone().unwrap_or_default();
        let seeds = cx.rng.sample(cx.seeds, quorum(cx.seeds.len()));
        self.follow_accusation(dead, report.incarnation, &seeds);
        let deadline = cx.after(cx.settings.register_timeout_ms);
        for &seed in &seeds {
            cx.send(
                seed,
                Message::DeadReport(Box::new(report.clone())),
                deadline,
            );
        }
        self.dead_reports += 1;
        cx.emit(Event::DeadReported {
            suspect: dead,
            text,
            seeds,
        });
    }

    // ----- detector: following a report until a seed commits it ----------------------------

    /// Remembers what a report was sent to, so an unsettled one can be retried.
    fn follow_accusation(&mut self, dead: Endpoint, incarnation: Option<u64>, seeds: &[Endpoint]) {
        let awaiting = seeds.iter().copied().collect();
        if let Some(accusation) = self.accusations.get_mut(&dead) {
            accusation.incarnation = accusation.incarnation.max(incarnation);
            accusation.awaiting = awaiting;
            accusation.refused = true;
        } else if self.accusations.len() < MAX_ACCUSATIONS {
            let accusation = Accusation {
                incarnation,
                awaiting,
                retries_left: ACCUSATION_RETRIES,
                refused: true,
            };
            self.accusations.insert(dead, accusation);
        }
    }

    /// A seed answered a `DEAD_REPORT` (or could not): a commit settles the accusation. Once
    /// every seed asked has answered and all refused (none failed to answer), the accused is
    /// probed again at once: if it is up, the link dropped on the suspicion comes back now
    /// (see `Membership::greet_lost_now`), not at the next refresh; if it is still silent,
    /// the accusation waits for the periodic re-check (the seeds just found it up: no new
    /// round before then).
    pub(super) fn on_dead_result(
        &mut self,
        cx: &mut Cx<'_>,
        pings: &mut Pings,
        seed: Endpoint,
        dead: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let success = matches!(&outcome, Ok(Message::DeadResult(r)) if r.success);
        if let Ok(Message::DeadResult(_)) = outcome {
            cx.emit(Event::DeadReportOutcome {
                suspect: dead,
                seed,
                success,
            });
        }
        if success {
            self.accusations.remove(&dead);
            return;
        }
        let Some(accusation) = self.accusations.get_mut(&dead) else {
            return;
        };
        accusation.awaiting.remove(&seed);
        accusation.refused &= matches!(outcome, Ok(Message::DeadResult(_)));
        if accusation.awaiting.is_empty() && accusation.refused {
            let deadline = cx.after(cx.settings.probe_timeout_ms);
            pings.ping(cx.me, dead, PingRole::Recheck, deadline, cx.out);
        }
    }

    /// On each refresh: probe again every accused peer whose last report no seed committed.
    pub(super) fn recheck_accusations(&mut self, cx: &mut Cx<'_>, pings: &mut Pings) {
        let mut due = Vec::new();
        self.accusations.retain(|&dead, accusation| {
            if !accusation.awaiting.is_empty() {
                return true;
            }
            if accusation.retries_left == 0 {
                return false;
            }
            accusation.retries_left -= 1;
            accusation.refused = false;
            due.push(dead);
            true
        });
        let deadline = cx.after(cx.settings.probe_timeout_ms);
        for dead in due {
            pings.ping(cx.me, dead, PingRole::Recheck, deadline, cx.out);
        }
    }

    /// The accused answered: it is alive after all. Still silent: ask witnesses again.
    /// Returns it if a round ended at once with it found dead.
    pub(super) fn on_recheck_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        known: &Known,
        dead: Endpoint,
        alive: bool,
    ) -> Option<Endpoint> {
        if !self.accusations.contains_key(&dead) {
            return None;
        }
        let refused = self.accusations.get(&dead).is_some_and(|a| a.refused);
        if alive {
            self.accusations.remove(&dead);
        } else if !refused && !self.suspicions.contains_key(&dead) {
            let misses = cx.settings.probe_misses;
            return self.raise_suspicion(cx, overlay, known, dead, misses);
        }
        None
    }

    /// A Peer List still listing an accused peer renews its retries; a complete one that no
    /// longer lists it means the removal happened.
    ///
    /// A neighbour that left and is still listed by a quorum of seeds (`from` is the seed
    /// that answered) becomes an accusation, re-checked at the next refresh like any other.
    /// A leave no quorum of seeds could certify leaves the peer listed alive, and its
    /// neighbours, which dropped the link on its word, were the only ones who would ever have
    /// probed it again: it stayed listed for ever. A certified leave is held by a quorum, so
    /// no quorum ever lists it again (a seed that lagged behind may, for a moment: one list
    /// is not enough), and a complete list without it ends the watch: that costs no message.
    /// A leaver that came back answers the re-check.
    pub(super) fn note_listed(
        &mut self,
        list: &PeerListResp,
        complete: bool,
        from: Endpoint,
        quorum: usize,
    ) {
        let peers = &list.peers;
        for (dead, accusation) in self.accusations.iter_mut() {
            if peers.contains(dead) {
                accusation.retries_left = ACCUSATION_RETRIES;
            }
        }
        if complete {
            self.accusations
                .retain(|dead, accusation| !accusation.awaiting.is_empty() || peers.contains(dead));
        }
        let accusations = &mut self.accusations;
        self.leavers.retain(|peer, leaver| {
            leaver.lists_left = leaver.lists_left.saturating_sub(1);
            if !peers.contains(peer) {
                return !complete && leaver.lists_left > 0;
            }
            if !leaver.listed_by.contains(&from) {
                leaver.listed_by.push(from);
            }
            if leaver.listed_by.len() < quorum {
                return leaver.lists_left > 0;
            }
            let listed_at = list
                .incarnations
                .iter()
                .find_map(|(p, n)| (p == peer).then_some(*n));
            if !accusations.contains_key(peer) && accusations.len() < MAX_ACCUSATIONS {
                let accusation = Accusation {
                    incarnation: leaver.incarnation.max(listed_at),
                    awaiting: BTreeSet::new(),
                    retries_left: ACCUSATION_RETRIES,
                    refused: false,
                };
                accusations.insert(*peer, accusation);
            }
            false
        });
    }

    // ----- witness ----------------------------------------------------------------------------

    /// Probes the suspect and answers when the probe's outcome is in (deferred reply).
    pub(super) fn on_suspect_req(
        &mut self,
        cx: &mut Cx<'_>,
        pings: &mut Pings,
        conn: ConnId,
        req: SuspectReq,
    ) {
        if req.suspect == cx.me {
            self.answer_witness(cx, conn, req.suspect, req.requester, true);
        } else if self.witness_pending >= MAX_PENDING_WITNESS {
            cx.reply(conn, Message::error("busy: too many suspicions pending"));
        } else {
            self.witness_pending += 1;
            let deadline = cx.after(cx.settings.probe_timeout_ms);
            let role = PingRole::Witness(conn, req.requester);
            pings.ping(cx.me, req.suspect, role, deadline, cx.out);
        }
    }

    /// This peer's probe of a suspect, made as a witness, ended: answer the detector.
    pub(super) fn on_witness_probe(
        &mut self,
        cx: &mut Cx<'_>,
        conn: ConnId,
        suspect: Endpoint,
        requester: Endpoint,
        alive: bool,
    ) {
        self.witness_pending = self.witness_pending.saturating_sub(1);
        self.answer_witness(cx, conn, suspect, requester, alive);
    }

    /// Answers a detector with what this peer's own probe of the suspect showed.
    fn answer_witness(
        &mut self,
        cx: &mut Cx<'_>,
        conn: ConnId,
        suspect: Endpoint,
        requester: Endpoint,
        alive: bool,
    ) {
        let ack = SuspectAck {
            suspect,
            alive,
            confirmer: cx.me,
        };
        cx.reply(conn, Message::SuspectAck(Box::new(ack)));
        cx.emit(Event::SuspectAnswered {
            suspect,
            requester,
            alive,
        });
    }
}
