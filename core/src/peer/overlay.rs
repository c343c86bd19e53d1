//! The overlay adjacency: this peer's neighbours and what it knows about each link.
//!
//! A sorted vector, not a tree: a peer has a handful of neighbours (at most `max_degree`)
//! and walks all of them for every gossip it forwards; a contiguous array makes that walk a
//! few cache lines, and binary search keeps lookups O(log d). Iteration is in endpoint order,
//! as a `BTreeMap`'s would be. Membership adds and drops links, gossip forwards along them,
//! liveness probes them.

use crate::event::Event;
use crate::msg::Endpoint;
use crate::Output;

/// What this peer knows about one link.
#[derive(Clone, Debug, Default)]
pub(super) struct Link {
    /// Consecutive missed probes.
    pub misses: u32,
    /// A probe is in flight.
    pub probing: bool,
    /// The probe in flight is this round's second try (the first got no answer).
    pub retrying: bool,
    /// The neighbour's own `PING` arrived since the last probe round: it was up then, so
    /// the next round may skip probing it.
    pub heard: bool,
    /// The last probe round skipped it: the next one probes it whatever it heard (a `PING`
    /// names its sender, and anyone can write any name).
    pub skipped: bool,
    /// When this peer last refuted a suspicion this neighbour holds against it (at most one
    /// refutation per probe interval per link).
    pub refuted_at: Option<crate::Millis>,
    /// Since our last periodic re-greeting the neighbour showed that it holds the link: it
    /// re-greeted us (a `HELLO` on an existing link), probed us or pushed us a gossip (a peer
    /// does those to its own neighbours; digests and `IHAVE`s may come from a peer that asks
    /// strangers too), so the next re-greeting may skip it.
    pub holds_link: bool,
    /// Whether the neighbour speaks the gossip repair's messages.
    pub speaks: Speaks,
    /// Lazy push: the link is not in the tree, so gossip goes to this neighbour as `IHAVE`
    /// announcements, not whole. A new link starts so; a graft takes it into the tree (see
    /// `gossip/lazy.rs`).
    pub lazy: bool,
    /// Lazy push: origins whose gossip goes over this link as announcements only, although
    /// it is in the tree (a duplicate of their gossip came over it, from either end). Sorted,
    /// at most [`MAX_PRUNED_ORIGINS`].
    pub pruned: Vec<Origin>,
    /// The neighbour served this peer's gossip plane since the last link check: it sent a
    /// gossip (first or not), an `IHAVE` or a digest, or answered a digest or a pull. See
    /// `Membership::drop_starving`.
    pub served: bool,
    /// The link has lived through a link check (so the next one may judge it).
    pub judged: bool,
}

/// A gossip's origin as lazy push tells origins apart (`origin_port` 0 when not given).
pub(super) type Origin = (std::net::IpAddr, u16);

/// Origins pruned per link at most; past it a link stays eager for the others (so a liar
/// pruning made-up origins makes a link hold at most 20 KiB).
pub const MAX_PRUNED_ORIGINS: usize = 1_024;

/// Whether a neighbour speaks the gossip repair's messages (`GOSSIP_DIGEST`, `IHAVE`,
/// `GOSSIP_PULL`). A node of the reference implementation answers them `ERROR`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Speaks {
    /// Not known yet: asked like a speaker.
    #[default]
    Unknown,
    /// It sent or answered an extension message.
    Yes,
    /// It answered one with `ERROR`: it is asked nothing more (it still gets every gossip
    /// pushed whole).
    No,
}

impl Link {
    /// Whether gossip goes to this neighbour whole. A link to a node that does not speak the
    /// extension (the reference implementation) always does.
    #[inline]
    pub(super) fn eager(&self) -> bool {
        !self.lazy || self.speaks != Speaks::Yes
    }

    /// Whether gossip from `origin` goes to this neighbour whole.
    #[inline]
    pub(super) fn eager_for(&self, origin: &Origin) -> bool {
        self.speaks != Speaks::Yes
            || (!self.lazy
                && (self.pruned.is_empty() || self.pruned.binary_search(origin).is_err()))
    }

    /// Gossip from `origin` goes over this link as announcements; false if it already did
    /// or the bound is reached.
    pub(super) fn prune(&mut self, origin: Origin) -> bool {
        match self.pruned.binary_search(&origin) {
            Err(i) if self.pruned.len() < MAX_PRUNED_ORIGINS => {
                self.pruned.insert(i, origin);
                true
            }
            _ => false,
        }
    }

    /// Gossip from `origin` goes over this link whole again (if the link is in the tree).
    pub(super) fn unprune(&mut self, origin: &Origin) {
        if let Ok(i) = self.pruned.binary_search(origin) {
            self.pruned.remove(i);
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// Sorted by endpoint, no duplicates.
    links: Vec<(Endpoint, Link)>,
}

impl Overlay {
    fn position(&self, peer: &Endpoint) -> Result<usize, usize> {
        self.links
            .binary_search_by(|(p, _)| super::known::cmp_endpoints(p, peer))
    }

    /// The degree.
    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    pub(super) fn contains(&self, peer: &Endpoint) -> bool {
        self.position(peer).is_ok()
    }

    pub(super) fn link(&self, peer: &Endpoint) -> Option<&Link> {
        let i = self.position(peer).ok()?;
        Some(&self.links[i].1)
    }

    pub(super) fn link_mut(&mut self, peer: &Endpoint) -> Option<&mut Link> {
        let i = self.position(peer).ok()?;
        Some(&mut self.links[i].1)
    }

    /// Adds `peer` with a fresh link (an existing one keeps its state: a re-greeting must not
    /// hide missed probes); true if it is new, and then its `NeighbourAdded` is emitted.
    pub(super) fn add(&mut self, peer: Endpoint, their_degree: u32, out: &mut Vec<Output>) -> bool {
        match self.position(&peer) {
            Ok(_) => false,
            Err(i) => {
                self.links.insert(i, (peer, Link::default()));
                out.push(Output::Event(Event::NeighbourAdded { peer, their_degree }));
                true
            }
        }
    }

    /// Drops the link to `peer`, if there is one, emitting `NeighbourDropped`.
    pub(super) fn drop_link(
        &mut self,
        peer: Endpoint,
        reason: &'static str,
        out: &mut Vec<Output>,
    ) {
        if let Ok(i) = self.position(&peer) {
            self.links.remove(i);
            out.push(Output::Event(Event::NeighbourDropped { peer, reason }));
        }
    }

    /// The `i`-th neighbour (in endpoint order) and its link.
    pub(super) fn get_index(&self, i: usize) -> Option<(&Endpoint, &Link)> {
        self.links.get(i).map(|(p, l)| (p, l))
    }

    /// The `i`-th neighbour (in endpoint order) and its link.
    pub(super) fn get_index_mut(&mut self, i: usize) -> Option<(&Endpoint, &mut Link)> {
        self.links.get_mut(i).map(|(p, l)| (&*p, l))
    }

    /// `peer`, if a neighbour, served this peer's gossip plane (see [`Link::served`]).
    #[inline]
    pub(super) fn served(&mut self, peer: &Endpoint) {
        if let Some(link) = self.link_mut(peer) {
            link.served = true;
        }
    }

    /// The neighbours and their links, in endpoint order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Endpoint, &Link)> + '_ {
        self.links.iter().map(|(p, l)| (p, l))
    }

    /// The neighbours, in endpoint order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.links.iter().map(|(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_are_per_origin_bounded_and_only_on_links_that_speak() {
        let origin = |i: u16| (std::net::IpAddr::from([10, 0, 0, 1]), i);
        let mut link = Link {
            speaks: Speaks::Yes,
            ..Link::default()
        };
        assert!(link.eager_for(&origin(1)));
        assert!(link.prune(origin(1)) && !link.prune(origin(1)));
        assert!(!link.eager_for(&origin(1)) && link.eager_for(&origin(2)));
        link.unprune(&origin(1));
        assert!(link.eager_for(&origin(1)));
        for i in 0..2_000 {
            link.prune(origin(i));
        }
        assert_eq!(link.pruned.len(), MAX_PRUNED_ORIGINS, "bounded");
        assert!(link.eager_for(&origin(1_999)), "past the bound: eager");
        link.lazy = true;
        assert!(!link.eager() && !link.eager_for(&origin(1_999)));
        // A node that does not speak the extension gets everything whole, whatever was set.
        link.speaks = Speaks::No;
        assert!(link.eager() && link.eager_for(&origin(1)));
    }

    #[test]
    fn stays_sorted_and_keeps_links() {
        let ep = |port: u16| Endpoint::from(([127, 0, 0, 1], port));
        let mut n = Overlay::default();
        let mut out = Vec::new();
        for port in [7, 3, 9, 1, 5] {
            assert!(n.add(ep(port), 1, &mut out));
        }
        assert_eq!(out.len(), 5, "one NeighbourAdded each");
        if let Some(l) = n.link_mut(&ep(3)) {
            l.misses = 2;
        }
        assert_eq!(
            n.get_index_mut(1).map(|(p, l)| (*p, l.misses)),
            Some((ep(3), 2))
        );
        assert!(n.get_index_mut(5).is_none());
        assert!(!n.add(ep(3), 1, &mut out), "a re-add must keep the link");
        assert_eq!(n.link_mut(&ep(3)).map(|l| l.misses), Some(2));
        n.drop_link(ep(7), "dead", &mut out);
        n.drop_link(ep(7), "dead", &mut out);
        assert_eq!(out.len(), 6, "one NeighbourDropped");
        let order: Vec<u16> = n.keys().map(|e| e.port()).collect();
        assert_eq!(order, vec![1, 3, 5, 9]);
        assert_eq!(n.len(), 4);
        assert!(n.contains(&ep(9)) && !n.contains(&ep(7)));
    }
}
