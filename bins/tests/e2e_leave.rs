//! End to end on loopback: stopping a node is not a failure. SIGTERM (what systemd and
//! Kubernetes send), SIGINT (Ctrl-C) and `gossipctl leave` make a peer leave: every seed
//! lists it `LEFT` (certified by quorum), no neighbour suspects or reports it, and the process
//! exits 0 within the bound. A seed told to stop finishes its rounds and exits 0. A second
//! signal exits at once. The nodes' event streams (`--events`) say what happened.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{bootstrapped, entry, wait_for, Net, LOCAL};
use gossip_core::msg::{DeadReport, Status};
use serde_json::Value;

/// Every event line of `node`'s events file.
fn events(net: &Net, node: SocketAddr) -> Vec<Value> {
    let text = std::fs::read_to_string(net.events(node)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn network(name: &str, peers: usize) -> (Net, Vec<SocketAddr>) {
    let mut net = Net::start(name, 3, &[LOCAL, "--max-gossip", "0"]);
    let peers: Vec<SocketAddr> = (0..peers).map(|_| net.add_peer()).collect();
    for &p in &peers {
        assert!(wait_for(Duration::from_secs(20), || bootstrapped(p)));
    }
    (net, peers)
}

/// Waits for the process of `node` to exit; its exit status and how long it took.
fn exit_of(net: &mut Net, node: SocketAddr, limit: Duration) -> (Option<i32>, Duration) {
    let start = Instant::now();
    let proc = net.proc(node).expect("a process");
    let child = proc.child.as_mut().expect("running");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (status.code(), start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "{node} did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn no_false_failure(net: &Net, left: SocketAddr) {
    for p in net.peers() {
        for e in events(net, p) {
            let about = e["suspect"].as_str() == Some(&left.to_string());
            let alarm = e["event"] == "suspicion_raised" || e["event"] == "dead_reported";
            assert!(
                !(about && alarm),
                "{p} raised an alarm about {left}, which left: {e}"
            );
        }
    }
    let log = net.log().join("\n");
    assert!(
        !log.contains(&DeadReport::text_prefix(left)),
        "a Dead Node line about {left}"
    );
}

#[test]
fn sigterm_makes_a_peer_leave_and_exit_0_with_no_false_failure() {
    let (mut net, peers) = network("leave-term", 5);
    let victim = peers[2];
    net.signal(victim, "-TERM");
    let (code, took) = exit_of(&mut net, victim, Duration::from_secs(5));
    assert_eq!(code, Some(0), "exit status");
    assert!(took < Duration::from_secs(3), "exited after {took:?}");
    for &s in &net.seeds.clone() {
        assert!(
            wait_for(Duration::from_secs(5), || entry(s, victim)
                == Some(Status::Left)),
            "{s} does not list {victim} LEFT: {:?}",
            entry(s, victim)
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    no_false_failure(&net, victim);
    let own = events(&net, victim);
    let left = own
        .iter()
        .find(|e| e["event"] == "left")
        .expect("a left event");
    assert_eq!(left["certified"], true, "{left}");
    let dropped: usize = (peers.iter())
        .map(|&p| {
            events(&net, p)
                .iter()
                .filter(|e| e["event"] == "neighbour_dropped" && e["peer"] == victim.to_string())
                .filter(|e| e["reason"] == "left")
                .count()
        })
        .sum();
    assert!(dropped >= 1, "its neighbours dropped the link as left");
    // It comes back one incarnation up.
    net.spawn(victim, false);
    assert!(wait_for(Duration::from_secs(20), || bootstrapped(victim)));
    let s = net.seeds[0];
    assert!(wait_for(Duration::from_secs(5), || {
        common::peer_list(s).is_some_and(|l| l.contains(&(victim, 2, Status::Alive)))
    }));
}

#[test]
fn gossipctl_leave_answers_when_the_peer_has_left_then_it_exits() {
    let (mut net, peers) = network("leave-ctl", 3);
    let victim = peers[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gossipctl"))
        .args(["leave", "--control"])
        .arg(net.control(victim))
        .output()
        .expect("gossipctl leave");
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("LEFT certified"), "{said}");
    let (code, _) = exit_of(&mut net, victim, Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(
        !net.control(victim).exists(),
        "the control socket is removed at exit"
    );
    for &s in &net.seeds.clone() {
        assert!(wait_for(Duration::from_secs(5), || entry(s, victim)
            == Some(Status::Left)));
    }
}

/// With every seed stopped, a leave cannot be certified: the peer still exits 0 within the
/// bound (its neighbours heard it leave; the seeds' failure detection does the rest).
#[test]
fn a_peer_leaves_within_the_bound_when_no_seed_answers() {
    let (mut net, peers) = network("leave-noseeds", 3);
    for s in net.seeds.clone() {
        net.kill(s);
    }
    let victim = peers[1];
    net.signal(victim, "-TERM");
    let (code, took) = exit_of(&mut net, victim, Duration::from_secs(6));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_millis(3_500), "{took:?}");
    let left = events(&net, victim)
        .into_iter()
        .find(|e| e["event"] == "left");
    assert_eq!(
        left.map(|e| e["certified"].clone()),
        Some(Value::Bool(false))
    );
}

#[test]
fn a_seed_stops_on_sigint_and_a_second_signal_exits_at_once() {
    let (mut net, _peers) = network("leave-seed", 2);
    let seed = net.seeds[0];
    net.signal(seed, "-INT");
    let (code, took) = exit_of(&mut net, seed, Duration::from_secs(5));
    assert_eq!(code, Some(0), "a stopped seed exits 0");
    assert!(took < Duration::from_secs(3));
    let stopped = events(&net, seed).iter().any(|e| e["event"] == "stopped");
    assert!(stopped, "the seed said it stopped");
    // A peer whose seeds hang (stopped: they accept and never answer) cannot finish its
    // leave for a while: a second signal ends it at once.
    for s in net.seeds.clone() {
        net.signal(s, "-STOP");
    }
    let p = net.peers()[0];
    net.signal(p, "-TERM");
    std::thread::sleep(Duration::from_millis(100));
    net.signal(p, "-TERM");
    let (code, took) = exit_of(&mut net, p, Duration::from_secs(5));
    assert_eq!(
        code,
        Some(1),
        "a second signal exits at once, not as a clean leave"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
}
