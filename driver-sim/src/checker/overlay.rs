//! The overlay among live peers as the ghost state holds it: undirected (a link counts if
//! either side holds it), its components and eccentricities. Promise 5 asks delivery within a
//! component; the report shows its shape.

use std::collections::VecDeque;

use super::ghost::Ghost;

/// The overlay among live peers, at the time it was built.
pub(super) struct Overlay {
    /// Peer index → neighbours (peer indices), sorted, deduplicated; empty for a dead peer.
    pub(super) adj: Vec<Vec<u32>>,
    /// Peer index → component id (`u32::MAX` for a dead peer).
    pub(super) comp: Vec<u32>,
    /// Component sizes.
    pub(super) comp_size: Vec<u32>,
}

impl Overlay {
    pub(super) fn build(ghost: &Ghost) -> Overlay {
        let seeds = ghost.addrs.seeds;
        let peers = &ghost.peers;
        let n = peers.len();
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (j, p) in peers.iter().enumerate() {
            if !p.alive {
                continue;
            }
            for &m in &p.adj {
                let k = (m - seeds) as usize;
                if k != j && peers[k].alive {
                    adj[j].push(k as u32);
                    adj[k].push(j as u32);
                }
            }
        }
        for l in &mut adj {
            l.sort_unstable();
            l.dedup();
        }
        let mut comp = vec![u32::MAX; n];
        let mut comp_size = Vec::new();
        let mut queue = VecDeque::new();
        for s in 0..n {
            if comp[s] != u32::MAX || !peers[s].alive {
                continue;
            }
            let id = comp_size.len() as u32;
            comp[s] = id;
            let mut size = 0;
            queue.push_back(s as u32);
            while let Some(x) = queue.pop_front() {
                size += 1;
                for &y in &adj[x as usize] {
                    if comp[y as usize] == u32::MAX {
                        comp[y as usize] = id;
                        queue.push_back(y);
                    }
                }
            }
            comp_size.push(size);
        }
        Overlay {
            adj,
            comp,
            comp_size,
        }
    }

    /// True if peer `j` is alive (it is in a component).
    pub(super) fn live(&self, j: usize) -> bool {
        self.comp[j] != u32::MAX
    }

    /// The degrees of the live peers, in peer order.
    pub(super) fn degrees(&self) -> Vec<u32> {
        (0..self.adj.len())
            .filter(|&j| self.live(j))
            .map(|j| self.adj[j].len() as u32)
            .collect()
    }

    fn eccentricity(&self, s: usize, dist: &mut [u32], queue: &mut VecDeque<u32>) -> u32 {
        dist.iter_mut().for_each(|d| *d = u32::MAX);
        dist[s] = 0;
        queue.clear();
        queue.push_back(s as u32);
        let mut ecc = 0;
        while let Some(x) = queue.pop_front() {
            let d = dist[x as usize];
            ecc = ecc.max(d);
            for &y in &self.adj[x as usize] {
                if dist[y as usize] == u32::MAX {
                    dist[y as usize] = d + 1;
                    queue.push_back(y);
                }
            }
        }
        ecc
    }

    /// The largest eccentricity: exact (BFS from every node) up to 3 000 live peers, else the
    /// largest found from 64 evenly spread starting nodes (a lower bound).
    pub(super) fn max_eccentricity(&self) -> (u32, bool) {
        let live: Vec<usize> = (0..self.adj.len()).filter(|&i| self.live(i)).collect();
        let mut dist = vec![u32::MAX; self.adj.len()];
        let mut queue = VecDeque::new();
        let exact = live.len() <= 3_000;
        let step = if exact { 1 } else { live.len() / 64 };
        let ecc = live
            .iter()
            .step_by(step.max(1))
            .map(|&s| self.eccentricity(s, &mut dist, &mut queue))
            .max()
            .unwrap_or(0);
        (ecc, exact)
    }
}
