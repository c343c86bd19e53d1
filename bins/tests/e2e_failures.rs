//! End to end on loopback: a killed peer is removed by every seed and no live peer is; with
//! one of three seeds down new peers still register, and the seed catches up on restart.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bootstrapped, entry, peer_list, registered, wait_for, Net};
use gossip_core::msg::Status;

#[test]
fn killed_peer_is_removed_everywhere_and_no_live_peer_is() {
    let mut net = Net::start("failures", 3, &["--max-gossip", "0"]);
    let peers: Vec<SocketAddr> = (0..5).map(|_| net.add_peer()).collect();
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || bootstrapped(*p)),
            "peer {p} did not bootstrap"
        );
    }
    // Give the overlay a moment: every peer probing its neighbours.
    std::thread::sleep(Duration::from_millis(500));
    let victim = peers[2];
    net.kill(victim);
    for s in &net.seeds {
        assert!(
            wait_for(Duration::from_secs(10), || entry(*s, victim)
                == Some(Status::Removed)),
            "seed {s} did not remove the killed peer {victim}"
        );
    }
    // Probes, suspicions and anti-entropy go on: no live peer is ever removed.
    std::thread::sleep(Duration::from_millis(1500));
    for s in &net.seeds {
        for p in peers.iter().filter(|p| **p != victim) {
            assert_eq!(entry(*s, *p), Some(Status::Alive), "{s} lost live peer {p}");
        }
    }
}

#[test]
fn with_a_seed_down_peers_register_and_the_seed_catches_up_on_restart() {
    let mut net = Net::start("failures", 3, &["--max-gossip", "0"]);
    let early = net.add_peer();
    assert!(wait_for(Duration::from_secs(10), || registered(early)));

    let down = net.seeds[2];
    net.kill(down);
    let late: Vec<SocketAddr> = (0..2).map(|_| net.add_peer()).collect();
    for p in &late {
        assert!(
            wait_for(Duration::from_secs(10), || bootstrapped(*p)),
            "peer {p} did not register with two of three seeds"
        );
        for s in &net.seeds[..2] {
            assert!(
                wait_for(Duration::from_secs(5), || entry(*s, *p)
                    == Some(Status::Alive)),
                "seed {s} does not list {p}"
            );
        }
    }

    net.restart_seed(down);
    let reference = net.seeds[0];
    assert!(
        wait_for(Duration::from_secs(10), || {
            let (Some(a), Some(b)) = (peer_list(reference), peer_list(down)) else {
                return false;
            };
            a == b && a.len() == 3
        }),
        "restarted seed {down} did not catch up: {:?} vs {:?}",
        peer_list(down),
        peer_list(reference)
    );
}
