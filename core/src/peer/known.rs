//! The peers a peer knows of, with the incarnation last heard of: a sorted vector, not a
//! tree. Every Peer List refresh merges a whole `PEER_LIST_RESP` (up to `peer_list_limit`
//! peers) into it and trims it back under its cap; as a tree that was one search and one
//! node allocation per listed peer, the peer's costliest step in a steady cluster. The list a
//! seed sends is sorted, so appending the new peers and a stable sort (which merges two sorted
//! runs in one linear pass) does the whole merge in a few contiguous passes.
//! Iteration is in endpoint order, as a `BTreeMap`'s would be, so every choice drawn from it
//! is the same as before.

use crate::msg::Endpoint;

#[derive(Debug, Default)]
pub(super) struct Known {
    /// Sorted by endpoint, no duplicates.
    entries: Vec<(Endpoint, Option<u64>)>,
}

impl Known {
    fn position(&self, peer: &Endpoint) -> Result<usize, usize> {
        self.entries.binary_search_by(|(p, _)| p.cmp(peer))
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The incarnation last heard of for `peer`, if it is known.
    pub(super) fn get(&self, peer: &Endpoint) -> Option<Option<u64>> {
        let i = self.position(peer).ok()?;
        self.entries.get(i).map(|(_, inc)| *inc)
    }

    pub(super) fn get_mut(&mut self, peer: &Endpoint) -> Option<&mut Option<u64>> {
        let i = self.position(peer).ok()?;
        self.entries.get_mut(i).map(|(_, inc)| inc)
    }

    /// Adds or replaces `peer`'s entry.
    pub(super) fn insert(&mut self, peer: Endpoint, incarnation: Option<u64>) {
        match self.position(&peer) {
            Ok(i) => self.entries[i].1 = incarnation,
            Err(i) => self.entries.insert(i, (peer, incarnation)),
        }
    }

    /// Forgets `peer`; true if it was known.
    pub(super) fn remove(&mut self, peer: &Endpoint) -> bool {
        self.position(peer).is_ok_and(|i| self.remove_index(i))
    }

    /// Merges a Peer List: adds every peer of `listed` not known yet (with no incarnation),
    /// then raises every known peer's incarnation to the one `incarnations` gives for it.
    /// Both are walked against the known set in one linear pass each; a seed sends them
    /// sorted, and anything else is sorted first.
    pub(super) fn merge(
        &mut self,
        listed: impl Iterator<Item = Endpoint>,
        incarnations: &[(Endpoint, u64)],
    ) {
        let mut fresh: Vec<Endpoint> = listed.collect();
        if !fresh.is_sorted() {
            fresh.sort_unstable();
        }
        fresh.dedup();
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for entry in old {
            while let Some(peer) = fresh.next_if(|p| *p < entry.0) {
                merged.push((peer, None));
            }
            fresh.next_if_eq(&entry.0);
            merged.push(entry);
        }
        merged.extend(fresh.map(|peer| (peer, None)));
        self.entries = merged;

        let sorted;
        let incarnations = if incarnations.is_sorted_by_key(|&(p, _)| p) {
            incarnations
        } else {
            let mut copy = incarnations.to_vec();
            copy.sort_unstable();
            sorted = copy;
            &sorted
        };
        let mut slots = self.entries.iter_mut().peekable();
        for &(peer, inc) in incarnations {
            while slots.next_if(|(p, _)| *p < peer).is_some() {}
            if let Some((p, slot)) = slots.peek_mut() {
                if *p == peer {
                    *slot = (*slot).max(Some(inc));
                }
            }
        }
    }

    /// The known peers, in endpoint order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The `i`-th known peer in endpoint order.
    pub(super) fn key_at(&self, i: usize) -> Option<&Endpoint> {
        self.entries.get(i).map(|(p, _)| p)
    }

    /// Forgets the peer at position `i`; false if there is none.
    pub(super) fn remove_index(&mut self, i: usize) -> bool {
        if i < self.entries.len() {
            self.entries.remove(i);
            true
        } else {
            false
        }
    }

    /// Forgets the peers at the positions `victims` (in any order; out-of-range ignored).
    pub(super) fn remove_at(&mut self, victims: &[usize]) {
        if victims.is_empty() {
            return;
        }
        let mut doomed = vec![false; self.entries.len()];
        for &v in victims {
            if let Some(d) = doomed.get_mut(v) {
                *d = true;
            }
        }
        let mut i = 0;
        self.entries.retain(|_| {
            let keep = !doomed[i];
            i += 1;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn merges_in_order_without_duplicates() {
        let mut k = Known::default();
        k.insert(ep(5), Some(3));
        k.insert(ep(1), None);
        // unsorted input with a duplicate and an already known peer
        let incs = [(ep(9), 4), (ep(5), 1), (ep(1), 6), (ep(5), 2), (ep(3), 8)];
        k.merge([ep(9), ep(2), ep(5), ep(2), ep(7)].into_iter(), &incs);
        let order: Vec<u16> = k.keys().map(|e| e.port()).collect();
        assert_eq!(order, vec![1, 2, 5, 7, 9]);
        assert_eq!(
            k.get(&ep(5)),
            Some(Some(3)),
            "a known peer keeps its incarnation"
        );
        assert_eq!(k.get(&ep(7)), Some(None));
        assert_eq!(k.get(&ep(4)), None);
        if let Some(slot) = k.get_mut(&ep(7)) {
            *slot = Some(2);
        }
        assert_eq!(k.get(&ep(7)), Some(Some(2)));
        k.remove_at(&[4, 0, 99]);
        let order: Vec<u16> = k.keys().map(|e| e.port()).collect();
        assert_eq!(order, vec![2, 5, 7]);
        k.insert(ep(8), None);
        assert!(k.remove(&ep(5)) && !k.remove(&ep(5)));
        assert!(k.remove_index(2) && !k.remove_index(2));
        assert_eq!(k.key_at(1), Some(&ep(7)));
        assert_eq!(k.len(), 2);
        assert!(k.get(&ep(2)).is_some() && k.get(&ep(1)).is_none());
    }
}
