//! The peers a peer knows of, with the incarnation last heard of: sorted arrays, not a tree.
//!
//! Every Peer List refresh merges a whole `PEER_LIST_RESP` (up to `peer_list_limit` peers)
//! into it and trims it back under its cap, and every re-greeting looks a neighbour up in it.
//! The set is cold in the cache by then (a cluster holds one per peer), so what it costs is
//! the memory it touches: a tree would cost a search and a node allocation per listed peer.
//! Here an IPv4 endpoint is one order-preserving `u64` (address, then port), kept apart from
//! the incarnations: a lookup or a merge walks 8 bytes per peer, not a 32-byte `SocketAddr`
//! and its value. IPv6 endpoints (rare) have their own run. Iteration is in endpoint order
//! (every IPv4 endpoint before every IPv6 one, as `SocketAddr`'s order has it), as a
//! `BTreeMap`'s would be, so the choices drawn from it are deterministic.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::msg::Endpoint;

/// Sorted distinct keys and, at the same positions, their incarnations.
#[derive(Debug)]
struct Run<K> {
    keys: Vec<K>,
    incs: Vec<Option<u64>>,
}

impl<K> Default for Run<K> {
    fn default() -> Self {
        Run {
            keys: Vec::new(),
            incs: Vec::new(),
        }
    }
}

impl<K: Ord + Copy> Run<K> {
    /// A linear scan: the keys are cold when a re-greeting looks one up, and a sequential
    /// scan is prefetched where a binary search's jumps each stall.
    fn position(&self, key: &K) -> Result<usize, usize> {
        let i = self
            .keys
            .iter()
            .position(|k| k >= key)
            .unwrap_or(self.keys.len());
        match self.keys.get(i) {
            Some(k) if k == key => Ok(i),
            _ => Err(i),
        }
    }

    fn get(&self, key: &K) -> Option<Option<u64>> {
        let i = self.position(key).ok()?;
        self.incs.get(i).copied()
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut Option<u64>> {
        let i = self.position(key).ok()?;
        self.incs.get_mut(i)
    }

    fn insert(&mut self, key: K, incarnation: Option<u64>) {
        match self.position(&key) {
            Ok(i) => self.incs[i] = incarnation,
            Err(i) => {
                self.keys.insert(i, key);
                self.incs.insert(i, incarnation);
            }
        }
    }

    fn remove(&mut self, key: &K) -> bool {
        self.position(key).is_ok_and(|i| self.remove_index(i))
    }

    fn remove_index(&mut self, i: usize) -> bool {
        if i < self.keys.len() {
            self.keys.remove(i);
            self.incs.remove(i);
            true
        } else {
            false
        }
    }

    /// Adds the keys of `fresh` (sorted, distinct) not present, with no incarnation, in one
    /// backward pass in place; then raises the incarnations `incs` (sorted) name.
    fn merge(&mut self, fresh: &[K], incs: &[(K, u64)]) {
        let mut at = 0;
        let added: Vec<K> = fresh
            .iter()
            .copied()
            .filter(|k| {
                // A linear walk: the keys are cold, and a sequential scan is prefetched
                // where a binary search's jumps each miss.
                while self.keys.get(at).is_some_and(|old| old < k) {
                    at += 1;
                }
                self.keys.get(at) != Some(k)
            })
            .collect();
        let (n, m) = (self.keys.len(), added.len());
        if m > 0 {
            self.keys.extend_from_slice(&added);
            self.incs.resize(n + m, None);
            let (mut i, mut j) = (n, m);
            while j > 0 {
                let w = i + j - 1;
                if i > 0 && self.keys[i - 1] > added[j - 1] {
                    self.keys[w] = self.keys[i - 1];
                    self.incs[w] = self.incs[i - 1];
                    i -= 1;
                } else {
                    self.keys[w] = added[j - 1];
                    self.incs[w] = None;
                    j -= 1;
                }
            }
        }
        let mut at = 0;
        for &(k, inc) in incs {
            while self.keys.get(at).is_some_and(|old| *old < k) {
                at += 1;
            }
            if self.keys.get(at) == Some(&k) {
                if let Some(slot) = self.incs.get_mut(at) {
                    *slot = (*slot).max(Some(inc));
                }
            }
        }
    }

    /// Keeps the entries whose position `doomed` does not mark.
    fn retain_unmarked(&mut self, doomed: &[bool]) {
        let mut w = 0;
        for r in 0..self.keys.len() {
            if !doomed.get(r).copied().unwrap_or(false) {
                self.keys[w] = self.keys[r];
                self.incs[w] = self.incs[r];
                w += 1;
            }
        }
        self.keys.truncate(w);
        self.incs.truncate(w);
    }
}

/// An IPv4 endpoint as a `u64` in `SocketAddr` order: the address, then the port.
fn v4_key(addr: &SocketAddrV4) -> u64 {
    u64::from(u32::from(*addr.ip())) << 16 | u64::from(addr.port())
}

/// `a.cmp(b)`, cheaper for two IPv4 endpoints (one integer comparison; `SocketAddr`'s own
/// compares the address byte by byte, out of line).
pub(super) fn cmp_endpoints(a: &Endpoint, b: &Endpoint) -> std::cmp::Ordering {
    match (a, b) {
        (SocketAddr::V4(x), SocketAddr::V4(y)) => v4_key(x).cmp(&v4_key(y)),
        _ => a.cmp(b),
    }
}

fn v4_endpoint(key: u64) -> Endpoint {
    let ip = Ipv4Addr::from((key >> 16) as u32);
    SocketAddr::V4(SocketAddrV4::new(ip, key as u16))
}

/// Pushes `offset + i` for every `keys[i]` not in `excluded` (both sorted).
fn walk_except<K: Ord>(keys: &[K], excluded: &[K], offset: usize, out: &mut Vec<usize>) {
    let mut j = 0;
    for (i, k) in keys.iter().enumerate() {
        while excluded.get(j).is_some_and(|e| e < k) {
            j += 1;
        }
        if excluded.get(j) != Some(k) {
            out.push(offset + i);
        }
    }
}

/// Sorted, distinct keys of `items`.
fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    if !items.is_sorted() {
        items.sort_unstable();
    }
    items.dedup();
    items
}

#[derive(Debug, Default)]
pub(super) struct Known {
    v4: Run<u64>,
    v6: Run<SocketAddrV6>,
}

impl Known {
    pub(super) fn len(&self) -> usize {
        self.v4.keys.len() + self.v6.keys.len()
    }

    /// The incarnation last heard of for `peer`, if it is known.
    pub(super) fn get(&self, peer: &Endpoint) -> Option<Option<u64>> {
        match peer {
            SocketAddr::V4(a) => self.v4.get(&v4_key(a)),
            SocketAddr::V6(a) => self.v6.get(a),
        }
    }

    pub(super) fn get_mut(&mut self, peer: &Endpoint) -> Option<&mut Option<u64>> {
        match peer {
            SocketAddr::V4(a) => self.v4.get_mut(&v4_key(a)),
            SocketAddr::V6(a) => self.v6.get_mut(a),
        }
    }

    /// Adds or replaces `peer`'s entry.
    pub(super) fn insert(&mut self, peer: Endpoint, incarnation: Option<u64>) {
        match peer {
            SocketAddr::V4(a) => self.v4.insert(v4_key(&a), incarnation),
            SocketAddr::V6(a) => self.v6.insert(a, incarnation),
        }
    }

    /// Forgets `peer`; true if it was known.
    pub(super) fn remove(&mut self, peer: &Endpoint) -> bool {
        match peer {
            SocketAddr::V4(a) => self.v4.remove(&v4_key(a)),
            SocketAddr::V6(a) => self.v6.remove(a),
        }
    }

    /// Merges a Peer List: adds every peer of `listed` not known yet (with no incarnation),
    /// then raises every known peer's incarnation to the one `incarnations` gives for it.
    /// Linear in the known set; a seed sends both sorted, anything else is sorted first.
    pub(super) fn merge(
        &mut self,
        listed: impl Iterator<Item = Endpoint>,
        incarnations: &[(Endpoint, u64)],
    ) {
        let (mut fresh4, mut fresh6) = (Vec::new(), Vec::new());
        for peer in listed {
            match peer {
                SocketAddr::V4(a) => fresh4.push(v4_key(&a)),
                SocketAddr::V6(a) => fresh6.push(a),
            }
        }
        let (mut incs4, mut incs6) = (Vec::new(), Vec::new());
        for &(peer, inc) in incarnations {
            match peer {
                SocketAddr::V4(a) => incs4.push((v4_key(&a), inc)),
                SocketAddr::V6(a) => incs6.push((a, inc)),
            }
        }
        self.v4.merge(&sorted(fresh4), &sorted(incs4));
        self.v6.merge(&sorted(fresh6), &sorted(incs6));
    }

    /// The known peers, in endpoint order.
    pub(super) fn keys(&self) -> impl Iterator<Item = Endpoint> + '_ {
        let v4 = self.v4.keys.iter().map(|&k| v4_endpoint(k));
        v4.chain(self.v6.keys.iter().map(|&a| SocketAddr::V6(a)))
    }

    /// The `i`-th known peer in endpoint order.
    pub(super) fn key_at(&self, i: usize) -> Option<Endpoint> {
        match i.checked_sub(self.v4.keys.len()) {
            None => self.v4.keys.get(i).map(|&k| v4_endpoint(k)),
            Some(j) => self.v6.keys.get(j).map(|&a| SocketAddr::V6(a)),
        }
    }

    /// The positions (in endpoint order) of the known peers not in `excluded`, which must be
    /// sorted (the neighbours are). One walk, comparing keys rather than endpoints.
    pub(super) fn positions_except<'a>(
        &self,
        excluded: impl Iterator<Item = &'a Endpoint>,
    ) -> Vec<usize> {
        let (mut ex4, mut ex6) = (Vec::new(), Vec::new());
        for peer in excluded {
            match peer {
                SocketAddr::V4(a) => ex4.push(v4_key(a)),
                SocketAddr::V6(a) => ex6.push(*a),
            }
        }
        let mut out = Vec::with_capacity(self.len());
        walk_except(&self.v4.keys, &ex4, 0, &mut out);
        walk_except(&self.v6.keys, &ex6, self.v4.keys.len(), &mut out);
        out
    }

    /// Forgets the peer at position `i`; false if there is none.
    pub(super) fn remove_index(&mut self, i: usize) -> bool {
        match i.checked_sub(self.v4.keys.len()) {
            None => self.v4.remove_index(i),
            Some(j) => self.v6.remove_index(j),
        }
    }

    /// Forgets the peers at the positions `victims` (in any order; out-of-range ignored).
    pub(super) fn remove_at(&mut self, victims: &[usize]) {
        if victims.is_empty() {
            return;
        }
        let mut doomed = vec![false; self.len()];
        for &v in victims {
            if let Some(d) = doomed.get_mut(v) {
                *d = true;
            }
        }
        let (doomed4, doomed6) = doomed.split_at(self.v4.keys.len());
        self.v4.retain_unmarked(doomed4);
        self.v6.retain_unmarked(doomed6);
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
            "an incarnation never goes down"
        );
        assert_eq!(k.get(&ep(1)), Some(Some(6)), "raised though not listed");
        assert_eq!(k.get(&ep(9)), Some(Some(4)));
        assert_eq!(k.get(&ep(3)), None, "an incarnation alone adds nothing");
        assert_eq!(k.get(&ep(7)), Some(None));
        k.merge(
            [ep(2), ep(7)].into_iter(),
            &[(ep(2), 1), (ep(2), 5), (ep(7), 2)],
        );
        assert_eq!(k.get(&ep(2)), Some(Some(5)), "duplicates: the highest wins");
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
        assert_eq!(k.key_at(1), Some(ep(7)));
        assert_eq!(k.len(), 2);
        assert!(k.get(&ep(2)).is_some() && k.get(&ep(1)).is_none());
    }

    #[test]
    fn iterates_in_socket_addr_order_across_families() {
        let v6 = |port: u16| Endpoint::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port));
        let all = [
            v6(2),
            Endpoint::from(([10, 0, 0, 1], 1)),
            ep(9),
            v6(1),
            Endpoint::from(([127, 0, 0, 0], 65535)),
            Endpoint::from(([255, 255, 255, 255], 65535)),
            Endpoint::from(([0, 0, 0, 0], 0)),
        ];
        let mut k = Known::default();
        k.merge(all[..4].iter().copied(), &[(v6(1), 3)]);
        for &p in &all[4..] {
            k.insert(p, Some(1));
        }
        let mut want = all.to_vec();
        want.sort();
        for a in &want {
            for b in &want {
                assert_eq!(cmp_endpoints(a, b), a.cmp(b), "{a} {b}");
            }
        }
        assert_eq!(k.keys().collect::<Vec<_>>(), want);
        let at: Vec<Endpoint> = (0..k.len()).filter_map(|i| k.key_at(i)).collect();
        assert_eq!(at, want);
        assert_eq!(k.get(&v6(1)), Some(Some(3)));
        let except = [want[0], want[2], want[5]];
        let kept: Vec<usize> = (0..want.len()).filter(|i| ![0, 2, 5].contains(i)).collect();
        assert_eq!(k.positions_except(except.iter()), kept);
        let last = want.len() - 1;
        k.remove_at(&[0, last]);
        assert_eq!(k.keys().collect::<Vec<_>>(), want[1..last].to_vec());
        assert!(k.remove(&v6(1)) && k.get(&v6(1)).is_none());
    }
}
