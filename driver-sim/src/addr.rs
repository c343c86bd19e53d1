//! Simulated addresses: node index ↔ endpoint by arithmetic, no map on the hot path.
//!
//! Node ids are dense `u32`s: seeds `0..seeds`, peers `seeds..seeds+peers`. Seed `i` listens
//! on `127.0.0.1:(5001+i)`; peer `j` on `127.(1 + j/65536).(j/256 % 256).(j % 256):6000`, so
//! every peer has its own IP (gossip texts name the origin's IP) and up to 16 M peers fit.
//! Nothing is ever sent on a real network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use gossip_core::Endpoint;

/// First seed port.
pub const SEED_PORT: u16 = 5001;
/// Every peer's port.
pub const PEER_PORT: u16 = 6000;
/// The endpoint the simulator itself speaks from when it plays the lying peer.
pub const LIAR: Endpoint = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 4999);
/// The endpoint the simulator speaks from when it plays the forger (a stranger, not a seed).
pub const FORGER: Endpoint = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 4998);
/// How many endpoints [`nowhere`] names.
pub const NOWHERE_COUNT: u32 = 8;

/// Endpoint `k % NOWHERE_COUNT` of a few where nothing listens (`127.0.1.k:7000`): what
/// forgers ask seeds to admit. A small fixed set, so what they leave behind stays bounded.
pub fn nowhere(k: u32) -> Endpoint {
    let ip = Ipv4Addr::new(127, 0, 1, (k % NOWHERE_COUNT) as u8);
    SocketAddr::new(IpAddr::V4(ip), 7000)
}

/// The address plan of one cluster.
#[derive(Copy, Clone, Debug)]
pub struct Addrs {
    /// Seeds in the cluster.
    pub seeds: u32,
    /// Peers in the cluster.
    pub peers: u32,
}

impl Addrs {
    /// All nodes.
    pub fn nodes(&self) -> u32 {
        self.seeds + self.peers
    }

    /// True for a seed's node id.
    pub fn is_seed(&self, node: u32) -> bool {
        node < self.seeds
    }

    /// The endpoint of node `node`.
    pub fn endpoint(&self, node: u32) -> Endpoint {
        if node < self.seeds {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), SEED_PORT + node as u16)
        } else {
            let j = node - self.seeds;
            let ip = Ipv4Addr::new(127, 1 + (j >> 16) as u8, (j >> 8) as u8, j as u8);
            SocketAddr::new(IpAddr::V4(ip), PEER_PORT)
        }
    }

    /// The node listening on `ep`, if any.
    pub fn node(&self, ep: &Endpoint) -> Option<u32> {
        let IpAddr::V4(ip) = ep.ip() else {
            return None;
        };
        let [a, b, c, d] = ip.octets();
        if a != 127 {
            return None;
        }
        if b == 0 {
            if [c, d] != [0, 1] || ep.port() < SEED_PORT {
                return None;
            }
            let i = u32::from(ep.port() - SEED_PORT);
            return (i < self.seeds).then_some(i);
        }
        if ep.port() != PEER_PORT {
            return None;
        }
        let j = (u32::from(b - 1) << 16) | (u32::from(c) << 8) | u32::from(d);
        (j < self.peers).then_some(self.seeds + j)
    }

    /// The configured seed list, in order.
    pub fn seed_list(&self) -> Vec<Endpoint> {
        (0..self.seeds).map(|i| self.endpoint(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_node_and_rejects_strangers() {
        let a = Addrs {
            seeds: 7,
            peers: 70_000,
        };
        for n in (0..a.nodes())
            .step_by(97)
            .chain([0, 6, 7, 8, a.nodes() - 1])
        {
            assert_eq!(a.node(&a.endpoint(n)), Some(n), "node {n}");
        }
        assert_eq!(a.node(&LIAR), None);
        assert_eq!(a.node(&FORGER), None);
        for k in 0..NOWHERE_COUNT {
            assert_eq!(a.node(&nowhere(k)), None);
        }
        assert_eq!(a.node(&"127.0.0.1:5008".parse().unwrap()), None); // seed 7 of 7
        assert_eq!(a.node(&"127.0.0.1:6000".parse().unwrap()), None);
        assert_eq!(a.node(&"127.1.0.3:6001".parse().unwrap()), None);
        assert_eq!(a.node(&"10.1.0.3:6000".parse().unwrap()), None);
        assert_eq!(a.node(&"127.9.0.0:6000".parse().unwrap()), None); // beyond the peers
        assert_eq!(a.endpoint(8).to_string(), "127.1.0.1:6000");
        assert_eq!(a.endpoint(7 + 65_536 + 258).to_string(), "127.2.1.2:6000");
    }
}
