//! The overlay adjacency: a sorted vector, not a tree. A peer has a handful of neighbours
//! (at most `max_degree`) and walks all of them for every gossip it forwards; a contiguous
//! array makes that walk a few cache lines, and binary search keeps lookups O(log d).
//! Iteration is in endpoint order, as a `BTreeMap`'s would be.

use super::Link;
use crate::msg::Endpoint;

#[derive(Debug, Default)]
pub(super) struct Neighbours {
    /// Sorted by endpoint, no duplicates.
    links: Vec<(Endpoint, Link)>,
}

impl Neighbours {
    fn position(&self, peer: &Endpoint) -> Result<usize, usize> {
        self.links
            .binary_search_by(|(p, _)| super::known::cmp_endpoints(p, peer))
    }

    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    pub(super) fn contains_key(&self, peer: &Endpoint) -> bool {
        self.position(peer).is_ok()
    }

    pub(super) fn get_mut(&mut self, peer: &Endpoint) -> Option<&mut Link> {
        let i = self.position(peer).ok()?;
        Some(&mut self.links[i].1)
    }

    /// Adds `peer` with a fresh link; false (and the old link kept) if it is already one.
    pub(super) fn insert_new(&mut self, peer: Endpoint) -> bool {
        match self.position(&peer) {
            Ok(_) => false,
            Err(i) => {
                self.links.insert(i, (peer, Link::default()));
                true
            }
        }
    }

    /// Removes `peer`; true if it was a neighbour.
    pub(super) fn remove(&mut self, peer: &Endpoint) -> bool {
        match self.position(peer) {
            Ok(i) => {
                self.links.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// The `i`-th neighbour (in endpoint order) and its link.
    pub(super) fn get_index_mut(&mut self, i: usize) -> Option<(&Endpoint, &mut Link)> {
        self.links.get_mut(i).map(|(p, l)| (&*p, l))
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
    fn stays_sorted_and_keeps_links() {
        let ep = |port: u16| Endpoint::from(([127, 0, 0, 1], port));
        let mut n = Neighbours::default();
        for port in [7, 3, 9, 1, 5] {
            assert!(n.insert_new(ep(port)));
        }
        if let Some(l) = n.get_mut(&ep(3)) {
            l.misses = 2;
        }
        assert_eq!(
            n.get_index_mut(1).map(|(p, l)| (*p, l.misses)),
            Some((ep(3), 2))
        );
        assert!(n.get_index_mut(5).is_none());
        assert!(!n.insert_new(ep(3)), "a re-insert must keep the link");
        assert_eq!(n.get_mut(&ep(3)).map(|l| l.misses), Some(2));
        assert!(n.remove(&ep(7)));
        assert!(!n.remove(&ep(7)));
        let order: Vec<u16> = n.keys().map(|e| e.port()).collect();
        assert_eq!(order, vec![1, 3, 5, 9]);
        assert_eq!(n.len(), 4);
        assert!(n.contains_key(&ep(9)) && !n.contains_key(&ep(7)));
    }
}
