//! Lazy push (`gossip_mode lazy`): Plumtree (Leitão, Pereira, Rodrigues 2007) on our overlay,
//! with the changes that keep its tree whole when many origins broadcast at once.
//!
//! **The tree.** A gossip goes whole over the eager links and is only announced, by id, over
//! the lazy ones: one `IHAVE` per neighbour every `ihave_interval_ms` for all the ids owed
//! to it. Every new link to a node that speaks the extension starts lazy; a peer with
//! neighbours but no eager link grafts one at once (an empty `GOSSIP_PULL` with
//! `graft: true`), so each newcomer joins the tree by exactly one link and the tree stays a
//! tree as the overlay grows.
//!
//! **Grafts.** A peer that hears of a gossip which the tree does not bring within
//! `graft_timeout_ms` (plus up to as long again at random, so that of the peers cut off
//! together the first one's graft reaches the others in time) pulls it with `graft: true`,
//! and both ends make the link eager: that is how the tree grows back around a crash or a
//! partition. It asks an announcer over a tree link first (that link was only pruned for the
//! gossip's origin, see below). A peer adds a link to the tree at most once per
//! `4 × graft_timeout_ms`, and only for a gossip stamped after its last graft: what it missed
//! before it was in the tree is pulled without grafting.
//!
//! **Prunes, per origin.** A peer that receives a copy it already has answers the push's ack
//! with `prune: true`, and both ends then carry that origin's gossip over the link as
//! announcements only. Plumtree prunes the whole link instead; with many origins
//! broadcasting at once, each one's copies meet on a different link of the same cycle, so
//! several links of it go at once and the tree falls apart (at 1,000 peers a third of the
//! deliveries then came by graft). One origin's broadcasts are seconds apart, so its prunes
//! never race. A first-time copy pushed over a link, or pulled by a graft, makes the link
//! eager for its origin again.
//!
//! **What a lie can do.** A `prune` counts only as the ack to our own push, on our own
//! connection, from a neighbour that speaks the extension, and a pruned link still carries
//! every announcement: a forged or hostile prune delays gossip by a graft at most and never
//! cuts a peer off. A forged duplicate naming a neighbour prunes that origin on our side
//! only; the neighbour still pushes to us, and grafts what it misses. A forged graft makes us
//! send a neighbour whole copies until its duplicates prune them again. A link to a node that
//! does not speak the extension (the reference implementation) stays eager for everything.

use super::{grouped, Gossip};
use crate::config::GossipMode;
use crate::msg::{
    Endpoint, Gossip as GossipMsg, GossipAck, GossipBody, GossipPull, IHave, Message, MAX_IDS,
};
use crate::peer::overlay::{Origin, Overlay, Speaks};
use crate::peer::seen::GossipKey;
use crate::peer::{Cx, Timer};
use crate::{Failure, Millis, Output};

/// A peer adds a link to the tree by a graft at most once in this many `graft_timeout_ms`:
/// the peers cut off from the tree together all miss the same gossip; one graft each would
/// close a cycle per peer. Pulls in between fetch what is missing without grafting.
const GRAFT_GAP_TIMEOUTS: u64 = 4;

/// Most announcements (a neighbour and a gossip id) owed at once; past it a gossip goes
/// whole to the lazy links too (an owed announcement is never dropped).
pub const MAX_OWED_ANNOUNCEMENTS: usize = 16_384;

/// The lazy links' announcements owed, and counters.
#[derive(Debug, Default)]
pub(super) struct Lazy {
    /// Announcements owed, as (neighbour, stamp second, key), sent at `Timer::Announce`.
    owed: Vec<(Endpoint, u64, u64)>,
    /// When this peer last grafted a lazy link, and the unix second then.
    last_graft: Option<(Millis, u64)>,
    /// The degree when this peer last checked that it is in the tree.
    checked_degree: usize,
    /// (Link, origin) pairs this peer pruned (a duplicate came over them).
    pub prunes_sent: u64,
    /// (Link, origin) pairs a neighbour pruned (its ack to our push said so).
    pub prunes_heard: u64,
    /// Links this peer grafted (it pulled a gossip the tree did not bring).
    pub grafts_sent: u64,
    /// Links a neighbour grafted (its pull said so).
    pub grafts_heard: u64,
    /// `IHAVE` lines sent, and the ids they carried.
    pub ihave_sent: u64,
    pub ids_announced: u64,
}

/// The origin lazy push prunes by.
pub(super) fn origin(body: &GossipBody) -> Origin {
    (body.origin_ip, body.origin_port.unwrap_or(0))
}

impl Lazy {
    /// Sends `gossip` whole to every neighbour but `except` whose link is eager for its
    /// origin, and owes its id to the others. A gossip without a stamp second cannot be
    /// named, so it goes whole to all.
    pub(super) fn forward(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        gossip: &GossipMsg,
        key: GossipKey,
        except: Option<Endpoint>,
    ) {
        let deadline = cx.after(cx.settings.request_timeout_ms);
        let from = origin(&gossip.body);
        let app = gossip.body.is_app();
        for (&to, link) in overlay.iter() {
            if Some(to) == except || (app && link.speaks != Speaks::Yes) {
                continue;
            }
            match key.second {
                Some(second)
                    if !link.eager_for(&from) && self.owed.len() < MAX_OWED_ANNOUNCEMENTS =>
                {
                    if self.owed.is_empty() {
                        let at = cx.after(cx.settings.ihave_interval_ms);
                        cx.timers.set(Timer::Announce, at);
                    }
                    self.owed.push((to, second, key.hash));
                }
                _ => cx.out.push(Output::Send {
                    to,
                    msg: Message::Gossip(gossip.clone()),
                    deadline,
                    // Only our own implementation prunes: its ack is worth reading.
                    wants_response: link.speaks == Speaks::Yes,
                }),
            }
        }
    }

    /// `Timer::Announce`: one `IHAVE` per neighbour (more if it is owed over [`MAX_IDS`]
    /// ids) for every announcement owed to a neighbour that is still one.
    pub(super) fn announce(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        self.owed.sort_unstable();
        self.owed.dedup();
        let deadline = cx.after(cx.settings.request_timeout_ms);
        for owed in self.owed.chunk_by(|a, b| a.0 == b.0) {
            let to = owed[0].0;
            if !overlay.contains(&to) {
                continue;
            }
            for batch in owed.chunks(MAX_IDS) {
                self.ihave_sent += 1;
                self.ids_announced += batch.len() as u64;
                let msg = Message::IHave(Box::new(IHave {
                    sender: cx.me,
                    ids: grouped(batch.iter().map(|&(_, s, k)| (s, k))),
                }));
                cx.send(to, msg, deadline);
            }
        }
        self.owed.clear();
    }

    /// A duplicate of `body` pushed by `from`: if it is a neighbour that speaks the
    /// extension, the link carries that origin's gossip as announcements from now on, and
    /// the ack asks the sender to do the same.
    pub(super) fn prune(
        &mut self,
        overlay: &mut Overlay,
        from: &Endpoint,
        body: &GossipBody,
    ) -> bool {
        match overlay.link_mut(from) {
            Some(link) if link.speaks == Speaks::Yes => {
                if link.prune(origin(body)) {
                    self.prunes_sent += 1;
                }
                true
            }
            _ => false,
        }
    }

    /// A first-time copy of `body` came from `from`, pushed or pulled by a graft: the link
    /// carries its origin's gossip whole (the sender holds it so, or was asked to).
    pub(super) fn came_over(&mut self, overlay: &mut Overlay, from: &Endpoint, body: &GossipBody) {
        if let Some(link) = overlay.link_mut(from) {
            link.lazy = false;
            link.unprune(&origin(body));
        }
    }

    /// The ack to our push of `pushed` to `to`: `prune` stops whole copies of its origin over
    /// the link (the ack came on our own connection to it, and only our implementation sends
    /// it).
    pub(super) fn on_ack(
        &mut self,
        overlay: &mut Overlay,
        to: &Endpoint,
        pushed: &GossipBody,
        outcome: &Result<Message, Failure>,
    ) {
        if let Ok(Message::GossipAck(GossipAck { prune: true, .. })) = outcome {
            if let Some(link) = overlay.link_mut(to) {
                link.speaks = Speaks::Yes;
                if link.prune(origin(pushed)) {
                    self.prunes_heard += 1;
                }
            }
        }
    }

    /// This peer pulls gossips the tree did not bring, the newest stamped `newest`, from
    /// neighbour `from`: the link joins the tree, and the pull says `graft` so the other end
    /// does the same. A link already in the tree is grafted for the pulled gossips' origins
    /// only. False (a plain pull) if `from` is no neighbour, or a lazy link and this peer
    /// grafted one less than the gap ago or after `newest` was stamped.
    pub(super) fn graft(
        &mut self,
        cx: &Cx<'_>,
        overlay: &mut Overlay,
        from: &Endpoint,
        newest: u64,
    ) -> bool {
        let gap = cx
            .settings
            .graft_timeout_ms
            .saturating_mul(GRAFT_GAP_TIMEOUTS);
        match overlay.link_mut(from) {
            Some(link) if link.lazy => {
                let since_last = self
                    .last_graft
                    .is_some_and(|(at, secs)| cx.now < at.after(gap) || newest <= secs);
                if since_last {
                    return false;
                }
                link.lazy = false;
                self.last_graft = Some((cx.now, cx.unix_secs()));
                self.grafts_sent += 1;
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// After every input: a peer with neighbours of which none is eager grafts one at
    /// random at once (an empty `GOSSIP_PULL` with `graft: true`), so a newcomer, or a peer
    /// whose tree links all went, joins the tree by one link without waiting to miss gossip.
    /// Links become lazy only when new, so the check runs only when the degree changed.
    pub(super) fn attach(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay) -> bool {
        if overlay.len() == self.checked_degree {
            return false;
        }
        self.checked_degree = overlay.len();
        if overlay.len() == 0 || overlay.iter().any(|(_, l)| l.eager()) {
            return false;
        }
        let pick = cx.rng.below(overlay.len() as u64) as usize;
        let Some((&to, link)) = overlay.get_index_mut(pick) else {
            return false;
        };
        link.lazy = false;
        self.grafts_sent += 1;
        self.last_graft = Some((cx.now, cx.unix_secs()));
        let graft = Message::Pull(Box::new(GossipPull {
            sender: cx.me,
            ids: Vec::new(),
            graft: true,
        }));
        let deadline = cx.after(cx.settings.request_timeout_ms);
        cx.send(to, graft, deadline);
        true
    }

    /// A neighbour's pull said `graft`: the link to it joins the tree, whole for the origins
    /// of what it pulled (`bodies`).
    pub(super) fn grafted_by<'b>(
        &mut self,
        overlay: &mut Overlay,
        from: &Endpoint,
        bodies: impl Iterator<Item = &'b GossipBody>,
    ) {
        if let Some(link) = overlay.link_mut(from) {
            if link.lazy {
                link.lazy = false;
                self.grafts_heard += 1;
            }
            for body in bodies {
                link.unprune(&origin(body));
            }
        }
    }
}

impl Gossip {
    /// After every input in lazy mode: joins the tree if this peer is out of it.
    pub(in crate::peer) fn attach(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay) {
        if self.lazy.attach(cx, overlay) {
            self.repair.pulls_in_flight += 1;
        }
    }

    /// `Timer::Announce`: the owed `IHAVE`s go out.
    pub(in crate::peer) fn announce(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        self.lazy.announce(cx, overlay);
    }

    /// The ack to one of our pushes: in lazy mode it may prune the link for its origin.
    pub(in crate::peer) fn on_gossip_ack(
        &mut self,
        cx: &Cx<'_>,
        overlay: &mut Overlay,
        to: &Endpoint,
        pushed: &GossipMsg,
        outcome: &Result<Message, Failure>,
    ) {
        if cx.settings.gossip_mode == GossipMode::Lazy {
            self.lazy.on_ack(overlay, to, &pushed.body, outcome);
        }
    }
}
