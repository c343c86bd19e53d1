//! Membership: how a peer joins the network and stays in it. Registration with a quorum of
//! seeds (with backoff), Peer List discovery and periodic refresh (asking the seeds in turn),
//! rejoining when the seeds removed this peer, the set of peers it knows of, and repair while
//! below the minimum degree. Choosing and greeting neighbours is in `membership/neighbours.rs`.
//!
//! It owns the registration state, the known set and the neighbour-selection and greeting
//! rounds; the links it makes are the overlay's.

mod neighbours;
mod starving;

use std::collections::{BTreeMap, BTreeSet};

use super::known::Known;
use super::overlay::Overlay;
use super::pings::Pings;
use super::{count, Cx, Timer, KNOWN_PER_LIST, MERGE_EVERY};
use crate::msg::{Endpoint, Hello, Message, PeerListResp, RegisterReq, Status};
use crate::{quorum, Event, Failure, Millis};

pub use neighbours::MAX_PENDING_GREETINGS;
use neighbours::{Greeting, Selection};
pub use starving::{LINK_CHECK_MS, MAX_SHUNNED, SHUN_MS, STARVING_AFTER};

/// Neighbours dropped as dead that a peer remembers at most, to greet again (see
/// `Membership::lost`); beyond, the oldest is forgotten.
pub const MAX_LOST_LINKS: usize = 8;

/// Greetings of a lost neighbour before it is given up (with the default 1 s probe interval,
/// about ten minutes: see [`LOST_LINK_BACKOFF`]).
pub const LOST_LINK_TRIES: u32 = 45;

/// A lost neighbour is greeted again after a probe interval, or after this fraction of the
/// time since the link was lost if that is longer: the two sides of a partition find each
/// other again within an eighth of how long it lasted (at least a probe interval), so the
/// gossip made in its last seconds is still in the repair window when the overlay is whole
/// again, and a peer that really died costs a few dozen greetings, not one per interval.
pub const LOST_LINK_BACKOFF: u64 = 8;

/// A neighbour dropped as dead, to be greeted again until the link is back.
#[derive(Debug)]
struct LostLink {
    peer: Endpoint,
    lost_at: Millis,
    /// When it is greeted next.
    due: Millis,
    tries_left: u32,
}

/// One registration attempt (a retry or a rejoin starts from the seeds that said success).
#[derive(Debug, Default)]
struct Registration {
    /// The lowest incarnation asked for (one above a removed one when rejoining).
    hint: Option<u64>,
    /// Seeds asked in this round; a failure moves on to one not asked yet.
    asked: BTreeSet<Endpoint>,
    /// Seeds whose answer is awaited.
    in_flight: BTreeSet<Endpoint>,
    /// Seeds that admitted this peer.
    successes: BTreeSet<Endpoint>,
    /// The highest incarnation a seed said it admitted.
    admitted: Option<u64>,
    /// The lowest incarnation a seed proposed in a round that failed.
    proposed: Option<u64>,
    /// The lowest incarnation a seed said it admitted.
    admitted_low: Option<u64>,
}

/// A peer's standing with the seeds and what it knows of the other peers.
#[derive(Debug, Default)]
pub(super) struct Membership {
    registered: bool,
    incarnation: u64,
    reg: Registration,
    /// Registration rounds failed in a row (the backoff's exponent).
    register_failures: u32,
    bootstrapped: bool,
    /// Seeds whose bootstrap `PEER_LIST_RESP` is awaited.
    pl_awaiting: BTreeSet<Endpoint>,
    /// A refresh `PEER_LIST_REQ` is in flight.
    refreshing: bool,
    /// Its answer is to be merged into the known set.
    refresh_merge: bool,
    /// Seeds still to ask in this cycle of refreshes: every seed in turn, in a random order,
    /// so a peer hears each seed's view of its own entry within one cycle (seeds may
    /// disagree for a while about a change only some of them could certify).
    refresh_order: Vec<Endpoint>,
    /// Periodic refreshes so far.
    periodic_refreshes: u32,
    selection: Option<Selection>,
    /// Peers known from seeds' Peer Lists (and links made), with the incarnation last heard
    /// of: the candidates for neighbours and witnesses.
    pub known: Known,
    /// New neighbours' `HELLO`s being checked, by greeter.
    greetings: BTreeMap<Endpoint, Greeting>,
    /// Neighbours dropped as dead, greeted again (see [`LOST_LINK_BACKOFF`]) until a link to
    /// them is back. A partition makes both ends of every link across it drop the link;
    /// without this the two sides stay two overlays once it heals (each peer still at its
    /// minimum degree, so nothing repairs) and gossip never crosses again. A peer that really
    /// died is never linked again and is given up after [`LOST_LINK_TRIES`] greetings.
    lost: Vec<LostLink>,
    /// Neighbours dropped as starving, refused until the time given (see `starving.rs`).
    shunned: BTreeMap<Endpoint, Millis>,
    /// The next selection round draws uniformly, not by claimed degree.
    uniform_next: bool,
    /// First-time deliveries at the last link check.
    delivered_at_check: u64,
    /// When the links are checked next.
    next_link_check: Millis,
}

impl Membership {
    /// Registered with a quorum of seeds (and not removed since, as far as it knows).
    pub(super) fn registered(&self) -> bool {
        self.registered
    }

    /// The incarnation admitted.
    pub(super) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The incarnation this peer holds or is registering for: what a probing seed may vouch
    /// for (see `PONG.incarnation`).
    pub(super) fn claimed_incarnation(&self) -> u64 {
        self.incarnation.max(self.reg.hint.unwrap_or(0))
    }

    // ----- registration ---------------------------------------------------------------------

    /// Starts a fresh registration round asking for at least incarnation `hint`.
    pub(super) fn start_registration(&mut self, cx: &mut Cx<'_>, hint: Option<u64>) {
        cx.timers.cancel(&Timer::RegisterRetry);
        self.reg = Registration {
            hint,
            ..Registration::default()
        };
        self.ask_seeds(cx);
    }

    /// Asks as many seeds not asked yet as could still complete a quorum: successes plus
    /// answers awaited stay at `q` while fresh seeds remain.
    fn ask_seeds(&mut self, cx: &mut Cx<'_>) {
        let busy = self.reg.successes.len() + self.reg.in_flight.len();
        let need = quorum(cx.seeds.len()).saturating_sub(busy);
        let fresh: Vec<Endpoint> = (cx.seeds.iter())
            .filter(|s| !self.reg.asked.contains(s))
            .copied()
            .collect();
        let deadline = cx.after(cx.settings.register_timeout_ms);
        for seed in cx.rng.sample(&fresh, need) {
            self.reg.asked.insert(seed);
            self.reg.in_flight.insert(seed);
            let msg = Message::RegisterReq(Box::new(RegisterReq {
                peer: cx.me,
                incarnation: self.reg.hint,
            }));
            cx.send(seed, msg, deadline);
        }
    }

    pub(super) fn on_register_result(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        seed: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if !self.reg.in_flight.remove(&seed) {
            return; // a stale answer from an earlier round
        }
        if let Ok(Message::RegisterResult(r)) = outcome {
            if r.success {
                self.reg.successes.insert(seed);
                self.reg.admitted = self.reg.admitted.max(r.incarnation);
                self.reg.admitted_low = lowest(self.reg.admitted_low, r.incarnation);
            } else {
                self.reg.proposed = lowest(self.reg.proposed, r.incarnation);
            }
        }
        if self.registered {
            return;
        }
        let q = quorum(cx.seeds.len());
        if self.reg.successes.len() >= q {
            self.registration_won(cx, overlay);
            return;
        }
        self.ask_seeds(cx);
        if self.reg.in_flight.is_empty() {
            let pause = self.registration_backoff(cx);
            let retry_at = cx.after(pause);
            self.register_failures = self.register_failures.saturating_add(1);
            cx.timers.set(Timer::RegisterRetry, retry_at);
            cx.emit(Event::RegistrationFailed {
                successes: count(self.reg.successes.len()),
                needed: count(q),
                retry_at,
            });
        }
    }

    /// The pause before the next registration attempt: `register_retry_ms` doubled for each
    /// failure in a row, capped at `register_retry_max_ms`, and drawn between half of that and
    /// all of it, so peers refused together do not retry together.
    fn registration_backoff(&self, cx: &mut Cx<'_>) -> u64 {
        let s = cx.settings;
        let doubled = s
            .register_retry_ms
            .saturating_mul(1 << self.register_failures.min(32));
        let ceiling = doubled.min(s.register_retry_max_ms).max(1);
        ceiling / 2 + cx.rng.below(ceiling - ceiling / 2 + 1)
    }

    /// A retry asks again every seed that has not said success.
    pub(super) fn retry_registration(&mut self, cx: &mut Cx<'_>) {
        if self.registered {
            return;
        }
        if let Some(hint) = self.raised_hint() {
            // Successes at the old incarnation no longer count: ask everyone again.
            return self.start_registration(cx, Some(hint));
        }
        self.reg.asked = self.reg.successes.clone();
        self.ask_seeds(cx);
    }

    /// After a failed round: the incarnation to ask for next, if seeds found a higher one due
    /// than this peer claims. Seeds that hold a removal this peer has not heard of (it
    /// restarted empty, or missed it) propose one above it, while seeds that lost their state
    /// or hold the old admission refuse that above what the peer claims: without this, a
    /// restarted peer collected two kinds of partial yes for good.
    ///
    /// The lowest proposal counts, at most one step above the lowest admission a seed named
    /// (or the incarnation it holds): a lying seed naming a higher one, or lying seeds one
    /// admitting it high and another proposing one above, move it no further than what the
    /// honest seeds that answered found.
    fn raised_hint(&self) -> Option<u64> {
        let ceiling = (self.reg.admitted_low)
            .unwrap_or(0)
            .max(self.incarnation)
            .saturating_add(1);
        let hint = self.reg.proposed?.min(ceiling);
        (hint > self.claimed_incarnation()).then_some(hint)
    }

    fn registration_won(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay) {
        self.registered = true;
        self.register_failures = 0;
        self.incarnation = self.reg.admitted.unwrap_or(self.incarnation);
        cx.emit(Event::RegistrationQuorum {
            seeds: self.reg.successes.iter().copied().collect(),
            incarnation: self.incarnation,
        });
        if self.bootstrapped {
            // Rejoined: the links we kept may have been dropped at the other end.
            self.regreet_neighbours(cx, overlay, true);
        } else if self.pl_awaiting.is_empty() && self.selection.is_none() {
            self.pl_awaiting = self.reg.successes.clone();
            let seeds: Vec<Endpoint> = self.pl_awaiting.iter().copied().collect();
            for seed in seeds {
                send_peer_list_req(cx, seed);
            }
        }
    }

    // ----- discovery and repair -------------------------------------------------------------

    /// Asks a seed for its Peer List, to be merged into the known set, unless a refresh is
    /// already in flight (then that one's answer is merged).
    pub(super) fn refresh_peer_list(&mut self, cx: &mut Cx<'_>) {
        self.request_peer_list(cx, true);
    }

    /// The periodic refresh: every one checks this peer's own entry (rejoin) and the
    /// accusations it follows, but while the degree is at least the minimum only one in
    /// [`MERGE_EVERY`] merges the listed peers into the known set. Merging (and trimming
    /// back to the cap) walks the whole known set, the costliest thing a settled peer did;
    /// a healthy peer does not need fresh candidates every period, and any repair merges.
    pub(super) fn periodic_refresh(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        let merge = overlay.len() < cx.settings.min_degree as usize
            || self.periodic_refreshes.is_multiple_of(MERGE_EVERY);
        self.periodic_refreshes = self.periodic_refreshes.wrapping_add(1);
        self.request_peer_list(cx, merge);
    }

    fn request_peer_list(&mut self, cx: &mut Cx<'_>, merge: bool) {
        if self.refreshing {
            self.refresh_merge |= merge;
            return;
        }
        if self.refresh_order.is_empty() {
            self.refresh_order = cx.seeds.to_vec();
            cx.rng.shuffle(&mut self.refresh_order);
        }
        if let Some(seed) = self.refresh_order.pop() {
            self.refreshing = true;
            self.refresh_merge = merge;
            send_peer_list_req(cx, seed);
        }
    }

    /// A seed answered this peer's own `PEER_LIST_REQ` (or could not). Only a response to a
    /// request this peer sent to a configured seed ever reaches here.
    pub(super) fn on_peer_list(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        seed: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if let Ok(Message::PeerListResp(resp)) = outcome {
            let merge = self.pl_awaiting.contains(&seed) || !self.refreshing || self.refresh_merge;
            self.merge_peer_list(cx, overlay, *resp, merge);
        }
        if self.pl_awaiting.remove(&seed) {
            if self.pl_awaiting.is_empty() && !self.bootstrapped {
                self.start_selection(cx, overlay, pings);
            }
        } else {
            self.refreshing = false;
            if self.bootstrapped {
                self.repair(cx, overlay, pings);
            }
        }
    }

    /// Takes a Peer List in: this peer's own entry (rejoin) and, if `merge`, the listed peers
    /// into the known set.
    fn merge_peer_list(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        resp: PeerListResp,
        merge: bool,
    ) {
        if merge {
            let (me, seeds) = (cx.me, cx.seeds);
            self.known.merge(
                resp.peers
                    .iter()
                    .copied()
                    .filter(|p| *p != me && !seeds.contains(p)),
                &resp.incarnations,
            );
            self.trim_known(cx, overlay);
        }
        // One seed's word moves this peer at most one incarnation up: a removal is of the one
        // it holds, or of the one above (readmitted there unawares, below). A lying seed
        // naming a removal far above would otherwise send it to register where no seed
        // admits anyone (`MAX_INCARNATION`), locked out for good.
        let ceiling = self.incarnation.saturating_add(1);
        match resp.requester_entry {
            // Removed, or listed as left (it left and was restarted, or a leave went through
            // while it stayed up): register again above it.
            Some((removed, Status::Removed | Status::Left))
                if self.registered && (self.incarnation..=ceiling).contains(&removed) =>
            {
                self.rejoin(cx, removed);
            }
            // Admitted one above the incarnation held: that one was removed and the seeds
            // readmitted this peer (it answered their probes) before it heard of the removal.
            // Register at the new one, which they answer at once, so this peer holds and
            // claims what they list.
            Some((admitted, Status::Alive))
                if self.registered && admitted == self.incarnation.saturating_add(1) =>
            {
                self.rejoin(cx, self.incarnation);
            }
            _ => {}
        }
    }

    /// The seeds removed this peer's incarnation: register again above it, keeping the links
    /// (neighbours that still talk to it prove it is alive).
    fn rejoin(&mut self, cx: &mut Cx<'_>, removed: u64) {
        cx.emit(Event::Rejoining {
            removed_incarnation: removed,
        });
        self.registered = false;
        self.start_registration(cx, Some(removed.saturating_add(1)));
    }

    /// Reconnects while below the minimum degree.
    pub(super) fn repair(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay, pings: &mut Pings) {
        if overlay.len() < cx.settings.min_degree as usize {
            self.start_selection(cx, overlay, pings);
        }
    }

    /// A neighbour was found dead (and reported): forget it and look for new candidates.
    pub(super) fn forget_dead(&mut self, cx: &mut Cx<'_>, dead: &Endpoint) {
        self.known.remove(dead);
        self.refresh_peer_list(cx);
    }

    /// A neighbour left of its own accord: it is no candidate, and is never greeted again.
    pub(super) fn forget_left(&mut self, cx: &mut Cx<'_>, peer: &Endpoint) {
        self.known.remove(peer);
        self.lost.retain(|l| l.peer != *peer);
        arm_lost_timer(cx, &self.lost);
    }

    /// A neighbour was dropped as dead: remember it, to greet it again (see `lost`).
    pub(super) fn note_lost(&mut self, cx: &mut Cx<'_>, peer: Endpoint) {
        self.lost.retain(|l| l.peer != peer);
        if self.lost.len() >= MAX_LOST_LINKS {
            self.lost.remove(0);
        }
        self.lost.push(LostLink {
            peer,
            lost_at: cx.now,
            due: cx.after(cx.settings.probe_interval_ms),
            tries_left: LOST_LINK_TRIES,
        });
        arm_lost_timer(cx, &self.lost);
    }

    /// `Timer::GreetLost`: `HELLO` to every lost neighbour that is due and not linked again
    /// yet (its answer is handled as any greeting's: an acceptance adds the link). While
    /// this peer is not registered (it would be refused) or has no room, the greetings wait
    /// without using up tries.
    pub(super) fn greet_lost(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        let now = cx.now;
        self.greet_lost_where(cx, overlay, |l| l.due <= now);
        arm_lost_timer(cx, &self.lost);
    }

    /// A lost neighbour was found up (it answered the re-check of an accusation the seeds
    /// refused): greet it now rather than when it is due, so a link dropped on a suspicion
    /// the seeds did not share comes back within a round trip.
    pub(super) fn greet_lost_now(&mut self, cx: &mut Cx<'_>, overlay: &Overlay, peer: Endpoint) {
        self.greet_lost_where(cx, overlay, |l| l.peer == peer);
        arm_lost_timer(cx, &self.lost);
    }

    fn greet_lost_where(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        pick: impl Fn(&LostLink) -> bool,
    ) {
        self.lost
            .retain(|l| l.tries_left > 0 && !overlay.contains(&l.peer));
        let can_greet = self.registered && overlay.len() < cx.settings.max_degree as usize;
        let hello = Hello {
            peer: cx.me,
            degree: count(overlay.len()),
            incarnation: Some(self.incarnation),
        };
        let deadline = cx.after(cx.settings.request_timeout_ms);
        let (now, interval) = (cx.now, cx.settings.probe_interval_ms);
        for lost in self.lost.iter_mut().filter(|l| pick(l)) {
            let gap = (now.since(lost.lost_at) / LOST_LINK_BACKOFF).max(interval);
            lost.due = now.after(gap);
            if can_greet {
                lost.tries_left -= 1;
                cx.send(lost.peer, Message::Hello(Box::new(hello.clone())), deadline);
            }
        }
    }

    /// Adds `peer` to the known set (bounded: a random non-neighbour is evicted when full).
    fn remember(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        peer: Endpoint,
        incarnation: Option<u64>,
    ) {
        if peer == cx.me || cx.seeds.contains(&peer) {
            return;
        }
        if let Some(slot) = self.known.get_mut(&peer) {
            *slot = (*slot).max(incarnation);
            return;
        }
        if self.known.len() >= known_cap(cx) && !self.evict_known(cx, overlay) {
            return;
        }
        self.known.insert(peer, incarnation);
    }

    /// Back under the cap after a whole Peer List was merged: forgets random non-neighbours
    /// in one pass (evicting one per insert made every refresh quadratic in the cap).
    fn trim_known(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        let excess = self.known.len().saturating_sub(known_cap(cx));
        if excess == 0 {
            return;
        }
        // Positions rather than endpoints: the same draws, without copying the endpoints.
        let candidates = self.known.positions_except(overlay.keys());
        let victims = cx.rng.sample(&candidates, excess);
        self.known.remove_at(&victims);
    }

    /// Forgets one random known peer that is not a neighbour; false if there is none.
    fn evict_known(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) -> bool {
        let len = self.known.len();
        let start = cx.rng.below(len as u64) as usize;
        let victim = (0..len)
            .map(|off| (start + off) % len)
            .find(|&i| self.known.key_at(i).is_some_and(|p| !overlay.contains(&p)));
        victim.is_some_and(|i| self.known.remove_index(i))
    }
}

/// Arms `Timer::GreetLost` for the first lost neighbour due (none: cancelled).
fn arm_lost_timer(cx: &mut Cx<'_>, lost: &[LostLink]) {
    match lost.iter().map(|l| l.due).min() {
        Some(at) => cx.timers.set(Timer::GreetLost, at),
        None => cx.timers.cancel(&Timer::GreetLost),
    }
}

fn send_peer_list_req(cx: &mut Cx<'_>, seed: Endpoint) {
    let msg = Message::PeerListReq {
        requester: cx.me.to_string(),
    };
    let deadline = cx.after(cx.settings.request_timeout_ms);
    cx.send(seed, msg, deadline);
}

/// The most known peers kept.
fn known_cap(cx: &Cx<'_>) -> usize {
    KNOWN_PER_LIST.saturating_mul(cx.settings.peer_list_limit as usize)
}

/// The lower of what is known and what a seed named (`None` when neither said anything).
fn lowest(known: Option<u64>, named: Option<u64>) -> Option<u64> {
    match (known, named) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
