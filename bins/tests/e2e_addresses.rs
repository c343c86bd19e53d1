//! End to end on loopback: the addresses real deployments use. A cluster on IPv6 (`::1`,
//! `[::1],PORT` in the config) forms, gossips and removes a dead peer, and its texts put the
//! address in brackets; seeds named by host name in the config; a node that listens on
//! every address and advertises the one others reach. Each prints its boot and removal
//! times, to compare with an IPv4 cluster on the same machine (`ipv4_reference`).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bootstrapped, entry, free_port_on, wait_for, Net};
use gossip_core::msg::{DeadReport, IpText, Status};

const PEERS: usize = 4;

/// Boots `PEERS` peers on `ip`, waits for every one to bootstrap, checks that gossip made by
/// each reaches the others, kills one, waits until every seed lists it removed, and returns
/// (boot time of the slowest peer, removal time).
fn boot_gossip_and_remove(net: &mut Net, ip: IpAddr) -> (Duration, Duration) {
    let start = Instant::now();
    let peers: Vec<SocketAddr> = (0..PEERS).map(|_| net.add_peer_on(ip)).collect();
    for &p in &peers {
        assert!(
            wait_for(Duration::from_secs(20), || bootstrapped(p)),
            "{p} did not bootstrap"
        );
    }
    let booted = start.elapsed();
    // Every peer makes gossip `<ts>:<IP>:<n>`, the IP in brackets for IPv6.
    let made = format!(":{}:1 ", IpText(ip));
    assert!(
        wait_for(Duration::from_secs(10), || {
            let log = net.log();
            let generated = log
                .iter()
                .filter(|l| l.starts_with("Generated gossip:") && l.contains(&made))
                .count();
            let received = log
                .iter()
                .filter(|l| l.starts_with("First-time gossip received:") && l.contains(&made))
                .count();
            generated >= PEERS && received >= PEERS
        }),
        "no gossip named {made:?} made and received:\n{}",
        net.log().join("\n")
    );
    let victim = peers[1];
    let killed = Instant::now();
    net.kill(victim);
    for &s in &net.seeds.clone() {
        assert!(
            wait_for(Duration::from_secs(20), || entry(s, victim)
                == Some(Status::Removed)),
            "{s} does not list {victim} removed"
        );
    }
    let removed = killed.elapsed();
    let dead = DeadReport::text_prefix(victim);
    assert!(
        net.log().iter().any(|l| l.starts_with(&dead)),
        "no {dead:?} line"
    );
    assert!(net.panics().is_empty(), "{:?}", net.panics());
    (booted, removed)
}

/// Starts a peer with `args` and `config` that must refuse to start: its stderr.
fn refused(net: &Net, args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--output")
        .arg(net.dir.join("refused-out.txt"))
        .output()
        .expect("peer");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    said
}

fn gossip_flags() -> [&'static str; 4] {
    ["--gossip-interval-ms", "300", "--max-gossip", "2"]
}

#[test]
fn ipv6_cluster_on_loopback_forms_gossips_and_removes_a_dead_peer() {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    // `[::1],PORT`, the bracket form
    let config = |seeds: &[SocketAddr]| -> String {
        seeds
            .iter()
            .map(|s| format!("[::1],{}\n", s.port()))
            .collect()
    };
    let mut net = Net::start_on("v6", 3, ip, &gossip_flags(), &config);
    let (booted, removed) = boot_gossip_and_remove(&mut net, ip);
    println!("ipv6: {PEERS} peers bootstrapped in {booted:?}; a killed peer removed at every seed in {removed:?}");
    // status takes the bracket form and prints it
    let out = Command::new(env!("CARGO_BIN_EXE_status"))
        .arg(net.seeds[0].to_string())
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.starts_with(&format!("{}  seed", net.seeds[0])),
        "{text}"
    );
    assert!(text.contains("removed  [::1]:"), "{text}");
}

#[test]
fn ipv4_reference() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut net = Net::start("v4", 3, &gossip_flags());
    let (booted, removed) = boot_gossip_and_remove(&mut net, ip);
    println!("ipv4: {PEERS} peers bootstrapped in {booted:?}; a killed peer removed at every seed in {removed:?}");
}

#[test]
fn seeds_named_by_host_name() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = |seeds: &[SocketAddr]| -> String {
        let mut text = String::from("# seeds by name\n");
        for s in seeds {
            text.push_str(&format!("localhost,{}\n", s.port()));
        }
        text
    };
    let mut net = Net::start_on("names", 3, ip, &gossip_flags(), &config);
    let (booted, removed) = boot_gossip_and_remove(&mut net, ip);
    println!("host names: {PEERS} peers bootstrapped in {booted:?}; a killed peer removed at every seed in {removed:?}");
    // status and gossipctl-style `host:port` arguments resolve too
    let out = Command::new(env!("CARGO_BIN_EXE_status"))
        .arg(format!("localhost:{}", net.seeds[0].port()))
        .output()
        .expect("status");
    assert!(out.status.success(), "{out:?}");
    // a name that does not resolve is a clear error at start
    let bad = net.dir.join("bad.txt");
    std::fs::write(&bad, "127.0.0.1,5001\nno-such-host.invalid,5002\n").expect("write");
    let port = free_port_on(ip).to_string();
    let said = refused(&net, &["--port", &port], &bad);
    assert!(
        said.contains("line 2: cannot resolve seed no-such-host.invalid"),
        "{said}"
    );
}

/// A seed and a peer listen on 0.0.0.0 and advertise a loopback address of their own:
/// that address is their identity everywhere (the Peer List, gossip ids, neighbours).
#[test]
fn a_node_listening_on_every_address_is_known_by_the_one_it_advertises() {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut net = Net::start("advertise", 3, &gossip_flags());
    // A seed restarts listening on every address, advertising its listed one.
    let seed = net.seeds[2];
    net.kill(seed);
    net.listen.insert(seed, SocketAddr::new(any, seed.port()));
    net.restart_seed(seed);
    assert!(wait_for(Duration::from_secs(10), || net
        .status(seed)
        .is_some()));
    // A peer listens on 0.0.0.0:P and advertises 127.0.0.7:P.
    let port = free_port_on(any);
    let advertised = SocketAddr::from(([127, 0, 0, 7], port));
    net.listen.insert(advertised, SocketAddr::new(any, port));
    net.spawn(advertised, false);
    let others: Vec<SocketAddr> = (0..3).map(|_| net.add_peer()).collect();
    for &p in others.iter().chain([&advertised]) {
        assert!(
            wait_for(Duration::from_secs(20), || bootstrapped(p)),
            "{p} did not bootstrap"
        );
    }
    for &s in &net.seeds {
        assert!(
            wait_for(Duration::from_secs(5), || entry(s, advertised)
                == Some(Status::Alive)),
            "{s} does not list {advertised}"
        );
    }
    assert!(
        wait_for(Duration::from_secs(10), || net.log().iter().any(|l| l
            .starts_with("First-time gossip received:")
            && l.contains(":127.0.0.7:1 "))),
        "gossip of the advertised peer reached nobody"
    );
    // Without --advertise, listening on every address is refused.
    let port = free_port_on(any).to_string();
    let said = refused(&net, &["--ip", "0.0.0.0", "--port", &port], &net.config);
    assert!(said.contains("--advertise"), "{said}");
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}
