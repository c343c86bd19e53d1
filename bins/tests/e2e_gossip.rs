//! End to end on loopback: registration quorum, bootstrap, and gossip delivered exactly once
//! to every peer that had joined the overlay before it was made.
//!
//! A peer has joined once it is bootstrapped and linked: a peer can finish its bootstrap
//! with no neighbour (the first one knows nobody, and later ones may happen not to pick it)
//! and is linked a little later, by repair or by another peer's `HELLO`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{bootstrapped, counter, entry, parse_line, wait_for, Net};
use gossip_core::msg::Status;

const MAX_GOSSIP: u64 = 3;
const LINK_SETTLE_MS: u64 = 50;

#[test]
fn peers_register_bootstrap_and_get_every_gossip_exactly_once() {
    let mut net = Net::start(
        "gossip",
        3,
        &["--gossip-interval-ms", "400", "--max-gossip", "3"],
    );
    let peers: Vec<SocketAddr> = (0..5)
        .map(|i| net.add_peer_on([127, 0, 0, 10 + i]))
        .collect();

    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || bootstrapped(*p)),
            "peer {p} did not bootstrap"
        );
    }
    for s in &net.seeds {
        for p in &peers {
            assert!(
                wait_for(Duration::from_secs(5), || entry(*s, *p)
                    == Some(Status::Alive)),
                "seed {s} does not list {p} alive"
            );
        }
    }
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || counter(*p, "gossip_generated")
                >= MAX_GOSSIP),
            "peer {p} did not generate its gossip"
        );
    }
    // Let the last messages spread.
    std::thread::sleep(Duration::from_millis(800));

    let lines: Vec<_> = net.log().iter().filter_map(|l| parse_line(l)).collect();
    let mut registered_at = BTreeMap::new();
    let mut bootstrapped_at = BTreeMap::new();
    let mut linked_at = BTreeMap::new();
    let mut generated = BTreeMap::new(); // text -> (origin, unix ms)
    let mut first: BTreeMap<(String, SocketAddr), u32> = BTreeMap::new();
    for l in &lines {
        if l.text.starts_with("Registration quorum achieved") {
            registered_at.entry(l.node).or_insert(l.unix_ms);
        } else if l.text.starts_with("Bootstrap complete") {
            bootstrapped_at.entry(l.node).or_insert(l.unix_ms);
        } else if l.text.starts_with("Neighbor added") {
            linked_at.entry(l.node).or_insert(l.unix_ms);
        } else if let Some(rest) = l.text.strip_prefix("Generated gossip: ") {
            let text = rest.split(' ').next().unwrap_or_default().to_string();
            assert!(
                generated
                    .insert(text.clone(), (l.node, l.unix_ms))
                    .is_none(),
                "gossip {text} generated twice"
            );
        } else if let Some(rest) = l.text.strip_prefix("First-time gossip received: ") {
            let text = rest.split(' ').next().unwrap_or_default().to_string();
            *first.entry((text, l.node)).or_default() += 1;
        }
    }
    for p in &peers {
        assert!(
            registered_at.contains_key(p),
            "no registration line for {p}"
        );
        assert!(bootstrapped_at.contains_key(p), "no bootstrap line for {p}");
    }
    assert_eq!(generated.len() as u64, MAX_GOSSIP * peers.len() as u64);
    let gossip_texts: BTreeSet<&String> = generated.keys().collect();
    for ((text, node), n) in &first {
        assert_eq!(*n, 1, "{node} received {text} first-time {n} times");
        assert!(
            gossip_texts.contains(text),
            "{node} received {text}, never generated"
        );
    }
    for (text, (origin, made_at)) in &generated {
        for p in &peers {
            let joined = match (bootstrapped_at.get(p), linked_at.get(p)) {
                (Some(b), Some(l)) => *b.max(l),
                _ => continue,
            };
            // A link is made in two steps (HELLO, then HELLO_ACK): allow the far side a
            // moment to record it before counting the peer as reachable.
            if p == origin || joined + LINK_SETTLE_MS >= *made_at {
                continue;
            }
            assert_eq!(
                first.get(&(text.clone(), *p)),
                Some(&1),
                "{p} (joined before it was made) never received {text} from {origin}"
            );
        }
    }
    // The origin never takes its own gossip as new.
    for (text, (origin, _)) in &generated {
        assert!(!first.contains_key(&(text.clone(), *origin)));
    }
}
