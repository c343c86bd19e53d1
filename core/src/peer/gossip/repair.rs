//! Gossip repair: neighbours reconcile the gossip they hold, so a copy lost to a drop, a
//! partition or a crash is sent again once a path exists.
//!
//! Every `repair_interval_ms` a peer sends one neighbour (in turn) a `GOSSIP_DIGEST`: per
//! stamp second of its window, how many gossips it holds and the XOR of their keys. The
//! neighbour answers with its keys of every second that differs, and nothing else (nothing
//! lost: one short line each way). The asker then pulls what it lacks (`GOSSIP_PULL`, in
//! batches) and announces what the neighbour lacks (`IHAVE`), which the neighbour pulls in
//! turn. Bodies travel only in replies to a peer's own pull, and each is checked against what
//! was asked; a body delivered for the first time this way is forwarded like any other.
//!
//! Gossips announced (by a digest reply or an `IHAVE`) and not yet received wait in a bounded
//! table ([`MAX_MISSING`]) with the neighbours that announced them; when one is due it is
//! pulled from the next announcer, a few times at most.
//!
//! A repaired copy is delivered only if the seen set is sure it is new (`SeenSet::check`):
//! one outside the covered window is refused and counted (`repair_refused`), so a copy is
//! never delivered twice. A node that answers a repair message with `ERROR` (the reference
//! implementation) is asked nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::retained::{MARGIN_SECS, RETAIN_SECS};
use super::{Gossip, Overlay};
use crate::config::GossipMode;
use crate::msg::{
    DigestResp, Endpoint, Gossip as GossipMsg, GossipBody, GossipDigest, GossipPull, IHave,
    IdGroup, Message, PullResp, MAX_BODIES, MAX_IDS,
};
use crate::peer::overlay::Speaks;
use crate::peer::seen::{gossip_key, Coverage, GossipKey};
use crate::peer::{Cx, Timer};
use crate::{ConnId, Failure, Millis};

/// Most gossips announced and awaited at once; further announcements are ignored (the next
/// digest exchange names them again).
pub const MAX_MISSING: usize = 4_096;

/// Of [`MAX_MISSING`], how many gossips announced only by peers that are not neighbours
/// may wait.
pub const MAX_MISSING_HEARSAY: usize = 512;

/// Most pulls in flight at once.
pub const MAX_PULLS_IN_FLIGHT: usize = 8;

/// Most bytes of bodies (text plus overhead) one pull reply carries.
pub const MAX_PULL_BYTES: usize = 64 << 10;

/// Neighbours remembered per awaited gossip as holding it.
const MAX_ANNOUNCERS: usize = 3;

/// Pulls tried per awaited gossip before it is given up (the digest names it again).
const MAX_TRIES: u8 = 3;

/// A gossip announced and not yet received.
#[derive(Debug)]
struct Missing {
    second: u64,
    /// Neighbours that said they hold it, tried in this order.
    announcers: Vec<Endpoint>,
    /// When it is pulled (again).
    due: Millis,
    tries: u8,
    /// It was announced while it could still be on its way: pulling it in lazy mode means
    /// the tree did not bring it in time, so the pull grafts.
    recent: bool,
}

/// The repair's state and counters.
#[derive(Debug, Default)]
pub(super) struct Repair {
    /// The next neighbour (position in the overlay) to send a digest to.
    next: usize,
    digest_in_flight: bool,
    pub(super) pulls_in_flight: usize,
    /// Gossips announced and awaited, by key.
    missing: BTreeMap<u64, Missing>,
    /// First-time deliveries by repair.
    pub repaired: u64,
    pub digests_sent: u64,
    /// Reconcile rounds with nothing in flight: every other one asks a stranger.
    rounds: u64,
    pub pulls_sent: u64,
    pub bodies_served: u64,
    /// Pulled bodies refused: the seen set could not tell whether they were new.
    pub refused: u64,
    /// Bodies in a pull reply that were not asked for.
    pub unasked: u64,
}

impl Repair {
    /// Gossip `key` arrived (by any path): it is no longer awaited.
    #[inline]
    pub(super) fn arrived(&mut self, key: GossipKey) {
        if !self.missing.is_empty() {
            self.missing.remove(&key.hash);
        }
    }

    /// Notes that `announcer` holds gossip `(second, key)`, to be pulled at `due` unless it
    /// arrives first; a new entry only while fewer than `room` wait.
    fn await_gossip(
        &mut self,
        (second, key): (u64, u64),
        announcer: Endpoint,
        due: Millis,
        recent: bool,
        room: usize,
    ) {
        if let Some(m) = self.missing.get_mut(&key) {
            m.recent |= recent;
            if !m.announcers.contains(&announcer) && m.announcers.len() < MAX_ANNOUNCERS {
                m.announcers.push(announcer);
            }
            // A pull already out is waited for (until its deadline), not doubled.
            if m.tries == 0 {
                m.due = m.due.min(due);
            }
        } else if self.missing.len() < room.min(MAX_MISSING) {
            self.missing.insert(
                key,
                Missing {
                    second,
                    announcers: vec![announcer],
                    due,
                    tries: 0,
                    recent,
                },
            );
        }
    }
}

/// When a gossip announced now, and possibly still on its way, is pulled if it has not come:
/// after `graft_timeout_ms`, and in lazy mode after up to as long again at random. Every
/// peer cut off from the tree hears of a gossip at about the same time; the spread lets the
/// first graft bring it to the others before they graft links of their own (each one more
/// would close a cycle).
fn graft_wait(cx: &mut Cx<'_>) -> Millis {
    let timeout = cx.settings.graft_timeout_ms;
    match cx.settings.gossip_mode {
        GossipMode::Flood => cx.after(timeout),
        GossipMode::Lazy => {
            let spread = cx.rng.below(timeout);
            cx.after(timeout + spread)
        }
    }
}

/// Notes what a reply from `peer` says about whether it speaks the extension.
fn learn(overlay: &mut Overlay, peer: &Endpoint, speaks: Speaks) {
    if let Some(link) = overlay.link_mut(peer) {
        link.speaks = speaks;
    }
}

/// Ids as groups by second, in the order given (consecutive equal seconds share a group).
pub(super) fn grouped(ids: impl IntoIterator<Item = (u64, u64)>) -> Vec<IdGroup> {
    let mut groups: Vec<IdGroup> = Vec::new();
    for (second, key) in ids {
        match groups.last_mut() {
            Some(g) if g.second == second => g.keys.push(key),
            _ => groups.push(IdGroup {
                second,
                keys: vec![key],
            }),
        }
    }
    groups
}

impl Gossip {
    /// `Timer::Reconcile`: frees what left the window and sends the next neighbour a digest;
    /// every other round it goes to `stranger` instead, an admitted peer that is no
    /// neighbour (if there is one). Neighbours alone can starve a peer: peers that took all
    /// its links and pass nothing on would answer the repair `ERROR` too, as a node of the
    /// original does. A random admitted peer is honest as often as the network is, and once
    /// it answers, what this peer lacks is pulled from it.
    pub(in crate::peer) fn reconcile(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        stranger: Option<Endpoint>,
    ) {
        let at = cx.after(cx.settings.repair_interval_ms);
        cx.timers.set(Timer::Reconcile, at);
        let now_secs = cx.unix_secs();
        self.note_links(cx, overlay);
        self.retained.expire(now_secs);
        if self.repair.digest_in_flight {
            return;
        }
        self.repair.rounds += 1;
        let n = overlay.len();
        let neighbour = (0..n).map(|i| (self.repair.next + i) % n).find_map(|i| {
            let (p, l) = overlay.get_index(i)?;
            (l.speaks != Speaks::No).then_some((i, *p))
        });
        let to = match (stranger, neighbour) {
            (Some(stranger), _) if self.repair.rounds.is_multiple_of(2) => stranger,
            (_, Some((i, to))) => {
                self.repair.next = i + 1;
                to
            }
            (Some(stranger), None) => stranger,
            (None, None) => return,
        };
        let s = self.retained.summary(now_secs);
        if s.counts.is_empty() {
            return;
        }
        let msg = Message::Digest(Box::new(GossipDigest {
            sender: cx.me,
            first: s.first,
            counts: s.counts,
            hashes: s.hashes,
        }));
        self.repair.digest_in_flight = true;
        self.repair.digests_sent += 1;
        let deadline = cx.after(cx.settings.request_timeout_ms);
        cx.send(to, msg, deadline);
    }

    /// A neighbour's digest: answered with this peer's keys of every second that differs.
    /// Read-only and bounded ([`MAX_IDS`] keys), whoever asks.
    pub(in crate::peer) fn on_digest(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        conn: ConnId,
        d: &GossipDigest,
    ) {
        if !cx.settings.gossip_repair {
            cx.reply(conn, Message::error("GOSSIP_DIGEST: gossip repair is off"));
            return;
        }
        if overlay.contains(&d.sender) {
            learn(overlay, &d.sender, Speaks::Yes);
            overlay.served(&d.sender);
        }
        self.note_links(cx, overlay);
        let ids = (self.retained).differences(d.first, &d.counts, &d.hashes, cx.unix_secs());
        cx.reply(
            conn,
            Message::DigestResp(Box::new(DigestResp {
                responder: cx.me,
                ids,
            })),
        );
    }

    /// The answer to our digest: pull what the neighbour holds and we lack, announce what we
    /// hold and it lacks.
    pub(in crate::peer) fn on_digest_resp(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        to: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        self.repair.digest_in_flight = false;
        let r = match outcome {
            Ok(Message::DigestResp(r)) => r,
            Ok(Message::Error { .. }) => return learn(overlay, &to, Speaks::No),
            _ => return,
        };
        learn(overlay, &to, Speaks::Yes);
        overlay.served(&to);
        let now_secs = cx.unix_secs();
        let (lo, hi) = self.retained.window(now_secs);
        let mut offer = Vec::new();
        let mut offered = 0;
        let wait = graft_wait(cx);
        for g in r.ids.iter().filter(|g| (lo..=hi).contains(&g.second)) {
            let s = g.second;
            // In lazy mode a gossip that may still be on its way down the tree is given the
            // time an announced one gets; a flood brings it in milliseconds if at all.
            let recent = s.saturating_add(MARGIN_SECS) > now_secs;
            let due = match cx.settings.gossip_mode {
                GossipMode::Lazy if recent => wait,
                _ => cx.now,
            };
            for &k in &g.keys {
                let key = GossipKey {
                    hash: k,
                    second: Some(s),
                };
                if self.seen.check(key, now_secs) == Coverage::New {
                    self.repair
                        .await_gossip((s, k), to, due, recent, MAX_MISSING);
                }
            }
            let mut theirs = g.keys.clone();
            theirs.sort_unstable();
            let lacking: Vec<u64> = (self.retained.keys(s))
                .filter(|k| theirs.binary_search(k).is_err())
                .take(MAX_IDS - offered)
                .collect();
            if !lacking.is_empty() {
                offered += lacking.len();
                offer.push(IdGroup {
                    second: s,
                    keys: lacking,
                });
            }
        }
        if !offer.is_empty() {
            let msg = Message::IHave(Box::new(IHave {
                sender: cx.me,
                ids: offer,
            }));
            let deadline = cx.after(cx.settings.request_timeout_ms);
            cx.send(to, msg, deadline);
        }
        self.pull_due(cx, overlay);
    }

    /// A peer holds these gossips: the ones this peer surely lacks are awaited, and pulled
    /// from it when due (at once if they are past the margin of gossip still in flight, else
    /// after `graft_timeout_ms`, in case the push brings them first). The sender need not be
    /// a neighbour (it may hold a link we dropped, and repair through it is all it can do),
    /// but what a non-neighbour announces may fill only [`MAX_MISSING_HEARSAY`] of the
    /// awaited table, so a stranger naming made-up gossips cannot crowd out the neighbours'.
    pub(in crate::peer) fn on_ihave(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        conn: ConnId,
        ih: &IHave,
    ) {
        if !cx.settings.gossip_repair {
            cx.reply(conn, Message::error("IHAVE: gossip repair is off"));
            return;
        }
        cx.reply(conn, Message::IHaveAck);
        if ih.sender == cx.me {
            return;
        }
        let room = if overlay.contains(&ih.sender) {
            learn(overlay, &ih.sender, Speaks::Yes);
            overlay.served(&ih.sender);
            MAX_MISSING
        } else {
            MAX_MISSING_HEARSAY
        };
        let now_secs = cx.unix_secs();
        let later = graft_wait(cx);
        let mut pull_now = false;
        for g in &ih.ids {
            let s = g.second;
            let recent = s.saturating_add(MARGIN_SECS) > now_secs;
            let due = if recent { later } else { cx.now };
            for &k in &g.keys {
                let key = GossipKey {
                    hash: k,
                    second: Some(s),
                };
                if self.seen.check(key, now_secs) == Coverage::New {
                    self.repair
                        .await_gossip((s, k), ih.sender, due, recent, room);
                    pull_now |= !recent;
                }
            }
        }
        if pull_now {
            self.pull_due(cx, overlay);
        } else if !self.repair.missing.is_empty() {
            // Nothing due yet: no walk of the whole table (lazy push announces every gossip
            // on every lazy link, and most arrive whole before they are due), only the timer
            // brought forward if a new one is due first.
            let first = cx
                .timers
                .get(&Timer::Pull)
                .map_or(later, |at| at.min(later));
            cx.timers.set(Timer::Pull, first);
        }
    }

    /// The answer to our `IHAVE`: an `ERROR` means the neighbour does not speak the extension
    /// (one of ours with the repair off). It gets what the `IHAVE` named whole instead: in
    /// lazy mode that was its only copy.
    pub(in crate::peer) fn on_ihave_resp(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        to: Endpoint,
        request: &IHave,
        outcome: &Result<Message, Failure>,
    ) {
        match outcome {
            Ok(Message::IHaveAck) => learn(overlay, &to, Speaks::Yes),
            Ok(Message::Error { .. }) => {
                learn(overlay, &to, Speaks::No);
                let deadline = cx.after(cx.settings.request_timeout_ms);
                for g in &request.ids {
                    for &k in &g.keys {
                        let body = self.retained.get(g.second, k);
                        // It refused the extensions: it refuses an `APP_MSG` too.
                        if let Some(body) = body.filter(|b| !b.is_app()) {
                            let gossip = GossipMsg {
                                body: Arc::clone(body),
                                sender: cx.me,
                                hops: 1,
                            };
                            cx.out.push(crate::Output::Send {
                                to,
                                msg: Message::Gossip(gossip),
                                deadline,
                                wants_response: false,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// `Timer::Pull` (and after new announcements): pulls every awaited gossip that is due
    /// from its next announcer, one `GOSSIP_PULL` per neighbour, and arms the timer for the
    /// next one due. A gossip tried [`MAX_TRIES`] times, or whose announcers are all gone, or
    /// that left the window, is given up.
    ///
    /// In lazy mode a pull of a recent gossip (one that may still be in flight) from a
    /// neighbour is a graft: the tree did not bring it, so the link it came on joins the tree.
    pub(in crate::peer) fn pull_due(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay) {
        let now = cx.now;
        let now_secs = cx.unix_secs();
        let slots = MAX_PULLS_IN_FLIGHT.saturating_sub(self.repair.pulls_in_flight);
        let mut batches: BTreeMap<Endpoint, Vec<(u64, u64, bool)>> = BTreeMap::new();
        let lazy_mode = cx.settings.gossip_mode == GossipMode::Lazy;
        let retry = cx.after(cx.settings.request_timeout_ms);
        self.repair.missing.retain(|&key, m| {
            if m.due > now {
                return true;
            }
            if m.tries >= MAX_TRIES
                || m.announcers.is_empty()
                || m.second.saturating_add(RETAIN_SECS) < now_secs
            {
                return false;
            }
            let mut from = m.announcers[usize::from(m.tries) % m.announcers.len()];
            // Lazy mode: a first try goes to an announcer over a tree link if there is one
            // (it is only pruned for this origin, and the pull mends that), not one that
            // would add a link to the tree and close a cycle.
            if lazy_mode && m.tries == 0 {
                let in_tree = |a: &&Endpoint| overlay.link(a).is_some_and(|l| !l.lazy);
                if let Some(&a) = m.announcers.iter().find(in_tree) {
                    from = a;
                }
            }
            let open = batches.len() < slots || batches.contains_key(&from);
            match batches.get(&from).map_or(0, Vec::len) {
                n if open && n < MAX_IDS => {
                    batches
                        .entry(from)
                        .or_default()
                        .push((m.second, key, m.recent));
                    m.tries += 1;
                    m.due = retry;
                }
                // No room in this round: stays due, and goes out when a pull in flight
                // is answered (every pull is answered, by its deadline at the latest).
                _ => {}
            }
            true
        });
        for (from, mut ids) in batches {
            ids.sort_unstable();
            let newest = (ids.iter()).filter(|id| id.2).map(|id| id.0).max();
            let graft = lazy_mode
                && newest.is_some_and(|newest| self.lazy.graft(cx, overlay, &from, newest));
            let msg = Message::Pull(Box::new(GossipPull {
                sender: cx.me,
                ids: grouped(ids.into_iter().map(|(s, k, _)| (s, k))),
                graft,
            }));
            self.repair.pulls_in_flight += 1;
            self.repair.pulls_sent += 1;
            let deadline = cx.after(cx.settings.request_timeout_ms);
            cx.send(from, msg, deadline);
        }
        let next = (self.repair.missing.values())
            .map(|m| m.due)
            .filter(|&due| due > now)
            .min();
        match next {
            Some(at) => cx.timers.set(Timer::Pull, at),
            None => cx.timers.cancel(&Timer::Pull),
        }
    }

    /// A pull: the bodies asked for that this peer holds, up to [`MAX_BODIES`] and
    /// [`MAX_PULL_BYTES`]. Bounded, whoever asks; in lazy mode a neighbour's `graft` makes
    /// the link to it eager (the worst a forged one does is send a neighbour more whole
    /// copies, until it prunes the link again).
    pub(in crate::peer) fn on_pull(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        conn: ConnId,
        p: &GossipPull,
    ) {
        if !cx.settings.gossip_repair {
            cx.reply(conn, Message::error("GOSSIP_PULL: gossip repair is off"));
            return;
        }
        if overlay.contains(&p.sender) {
            learn(overlay, &p.sender, Speaks::Yes);
        }
        // One walk of each second's bodies, whatever the order and repetition of the ids.
        let mut wanted: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for g in &p.ids {
            wanted.entry(g.second).or_default().extend(&g.keys);
        }
        let mut bodies: Vec<Arc<GossipBody>> = Vec::new();
        let mut bytes = 0;
        'seconds: for (second, mut keys) in wanted {
            keys.sort_unstable();
            for key in self.retained.keys(second).collect::<Vec<_>>() {
                if keys.binary_search(&key).is_err() {
                    continue;
                }
                let Some(body) = self.retained.get(second, key) else {
                    continue;
                };
                let size = super::retained::cost(body);
                // At least one body goes, however large (an application message may be
                // larger than the budget alone).
                let full = !bodies.is_empty() && bytes + size > MAX_PULL_BYTES;
                if bodies.len() >= MAX_BODIES || full {
                    break 'seconds;
                }
                bytes += size;
                bodies.push(Arc::clone(body));
            }
        }
        self.repair.bodies_served += bodies.len() as u64;
        if p.graft && cx.settings.gossip_mode == GossipMode::Lazy {
            (self.lazy).grafted_by(overlay, &p.sender, bodies.iter().map(|b| &**b));
        }
        cx.reply(
            conn,
            Message::PullResp(Box::new(PullResp {
                responder: cx.me,
                bodies,
            })),
        );
    }

    /// The answer to our pull: each body that was asked for and that the seen set is sure is
    /// new is delivered (logged as repaired) and forwarded to every neighbour but the one it
    /// came from; a body not asked for is dropped (`repair_unasked`), one the seen set cannot
    /// vouch for is refused (`repair_refused`).
    pub(in crate::peer) fn on_pull_resp(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        to: Endpoint,
        request: &GossipPull,
        outcome: Result<Message, Failure>,
    ) {
        self.repair.pulls_in_flight = self.repair.pulls_in_flight.saturating_sub(1);
        let r = match outcome {
            Ok(Message::PullResp(r)) => r,
            Ok(Message::Error { .. }) => {
                learn(overlay, &to, Speaks::No);
                return self.pull_due(cx, overlay);
            }
            _ => return self.pull_due(cx, overlay),
        };
        learn(overlay, &to, Speaks::Yes);
        let mut asked: Vec<(u64, u64)> = (request.ids.iter())
            .flat_map(|g| g.keys.iter().map(move |&k| (g.second, k)))
            .collect();
        asked.sort_unstable();
        let now_secs = cx.unix_secs();
        for body in &r.bodies {
            let key = gossip_key(&body.text, body.origin_port);
            let id = key.second.map(|s| (s, key.hash));
            if id.is_none_or(|id| asked.binary_search(&id).is_err()) {
                self.repair.unasked += 1;
                continue;
            }
            match self.seen.check(key, now_secs) {
                Coverage::New => {
                    self.seen.insert(key, now_secs);
                    self.repair.repaired += 1;
                    self.delivered(cx, key, body, to, 0, true);
                    if request.graft {
                        self.lazy.came_over(overlay, &to, body);
                    }
                    let onward = GossipMsg {
                        body: Arc::clone(body),
                        sender: cx.me,
                        hops: 1,
                    };
                    self.forward(cx, overlay, &onward, key, Some(to));
                }
                Coverage::Seen => self.repair.arrived(key),
                Coverage::Unsure => {
                    self.repair.refused += 1;
                    self.repair.arrived(key);
                }
            }
        }
        self.pull_due(cx, overlay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_grouped_by_consecutive_seconds() {
        let g = grouped([(5, 1), (5, 2), (6, 3), (5, 4)]);
        let shape: Vec<(u64, Vec<u64>)> = g.into_iter().map(|g| (g.second, g.keys)).collect();
        assert_eq!(shape, vec![(5, vec![1, 2]), (6, vec![3]), (5, vec![4])]);
    }

    #[test]
    fn awaited_gossip_is_bounded_and_remembers_a_few_announcers() {
        let ep = |p: u16| Endpoint::from(([10, 0, 0, 1], p));
        let mut r = Repair::default();
        for k in 0..(MAX_MISSING as u64 + 10) {
            r.await_gossip((1, k), ep(1), Millis(5), false, MAX_MISSING_HEARSAY);
        }
        assert_eq!(
            r.missing.len(),
            MAX_MISSING_HEARSAY,
            "hearsay has its share"
        );
        for k in 0..(MAX_MISSING as u64 + 10) {
            r.await_gossip((1, k), ep(1), Millis(5), false, MAX_MISSING);
        }
        assert_eq!(r.missing.len(), MAX_MISSING);
        for p in 2..8 {
            r.await_gossip((1, 0), ep(p), Millis(1), false, MAX_MISSING);
        }
        let m = &r.missing[&0];
        assert_eq!(m.announcers.len(), MAX_ANNOUNCERS);
        assert_eq!(m.due, Millis(1), "the earliest due time wins");
        r.arrived(GossipKey {
            hash: 0,
            second: Some(1),
        });
        assert!(!r.missing.contains_key(&0));
    }
}
