//! Links that starve this peer. A neighbour is there to pass gossip on; one that takes the
//! link and passes nothing (a Sybil that claimed a huge degree to win every newcomer's
//! links, then drops what it gets) is found by what it does, not by what it claims: at each
//! link check, if enough new gossip reached this peer by other ways while a neighbour sent
//! nothing at all on the gossip plane (no copy, first or not, no `IHAVE`, no digest, no
//! digest answer), and answered every probe meanwhile, the link goes and the peer is shunned
//! for a while: its `HELLO`s are refused and it is no candidate. The replacements are drawn
//! uniformly, not by claimed degree: the claim is what brought the starving link.
//!
//! An honest neighbour passes on every gossip it did not get from this peer first, and
//! exchanges digests with its neighbours in turn, so [`STARVING_AFTER`] new gossips in one
//! check period with nothing from it does not happen to it. When gossip stops, nothing is
//! judged.

use super::super::overlay::Overlay;
use super::super::pings::Pings;
use super::super::Cx;
use super::Membership;
use crate::msg::Endpoint;

/// How often the links are checked (ms): each check judges the period since the last one.
pub const LINK_CHECK_MS: u64 = 5_000;

/// New gossips this peer must have got in one link check period before a neighbour that
/// sent nothing in it is judged starving.
pub const STARVING_AFTER: u64 = 10;

/// How long a starving neighbour is shunned (ms).
pub const SHUN_MS: u64 = 10 * 60 * 1_000;

/// Peers shunned at once at most; past it the oldest shun ends early.
pub const MAX_SHUNNED: usize = 256;

impl Membership {
    /// True if `peer` was dropped as starving and is still shunned.
    pub(in crate::peer) fn shunned(&self, cx: &Cx<'_>, peer: &Endpoint) -> bool {
        self.shunned.get(peer).is_some_and(|until| *until > cx.now)
    }

    /// The link check, on each probe round once [`LINK_CHECK_MS`] passed since the last;
    /// `delivered` counts this peer's first-time deliveries so far. Starving links go (see
    /// the module's doc), and if that leaves the peer below its minimum degree the
    /// replacements are drawn uniformly.
    pub(in crate::peer) fn check_links(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        delivered: u64,
    ) {
        let now = cx.now;
        if now < self.next_link_check {
            return;
        }
        self.next_link_check = cx.after(LINK_CHECK_MS);
        self.shunned.retain(|_, until| *until > now);
        let fresh = delivered.saturating_sub(self.delivered_at_check);
        self.delivered_at_check = delivered;
        let judge = fresh >= STARVING_AFTER;
        let mut starving = Vec::new();
        for i in 0..overlay.len() {
            let Some((&peer, link)) = overlay.get_index_mut(i) else {
                break;
            };
            if judge && link.judged && !link.served && link.misses == 0 {
                starving.push(peer);
            }
            link.judged = true;
            link.served = false;
        }
        if starving.is_empty() {
            return;
        }
        for peer in starving {
            overlay.drop_link(peer, "starving", cx.out);
            if self.shunned.len() >= MAX_SHUNNED {
                let oldest = (self.shunned.iter())
                    .min_by_key(|(_, until)| **until)
                    .map(|(p, _)| *p);
                if let Some(oldest) = oldest {
                    self.shunned.remove(&oldest);
                }
            }
            self.shunned.insert(peer, cx.after(SHUN_MS));
        }
        self.uniform_next = true;
        self.repair(cx, overlay, pings);
    }

    /// An admitted peer that is no neighbour and not shunned, drawn at random: where the
    /// repair asks a stranger (see `Gossip::reconcile`).
    pub(in crate::peer) fn stranger(&self, cx: &mut Cx<'_>, overlay: &Overlay) -> Option<Endpoint> {
        let mut pool = self.known.positions_except(overlay.keys());
        pool.retain(|&i| self.known.key_at(i).is_some_and(|p| !self.shunned(cx, &p)));
        let i = *cx.rng.sample(&pool, 1).first()?;
        self.known.key_at(i)
    }
}
