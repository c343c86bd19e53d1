//! Jepsen-style tests on real sockets between hosts: every seed and peer is a real process
//! on a host of its own (a network namespace with its own address), and faults are made in
//! the bridge between the hosts with nftables: silent drops per host pair and direction (a
//! partition: packets vanish, connections time out), random loss, flapping links, routes that
//! make `connect` fail at once, pauses. See `hosts_support` for the harness and
//! `docs/RUNNING.md` ("Many hosts on one machine") for what each test proves.
//!
//! Every test names its topology, asserts its outcome while the fault holds and after it
//! heals (then: the same Peer List at every seed, every live peer alive, every killed peer
//! removed, gossip made after healing reaching every live peer), and feeds the whole run's
//! log to the simulator's invariant checker (promises 1 to 4).
//!
//! Needs root and network namespaces; without them each test prints why and passes, unless
//! `HOSTS_REQUIRED=1` (as in `.ci/run`). Run with `-- --nocapture` to see the timings.

mod hosts_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip_bins::hosts::{Fault, FloodReport};
use gossip_core::msg::Status;
use hosts_support::{eps, ips, unix_ms, wait_for, HostNet, DEFAULT_TIMING, TIMING};

/// A network of `seeds` seeds and `peers` peers (all started and bootstrapped), plus hosts
/// `extra` with nothing on them yet.
fn network(
    tag: &str,
    seeds: usize,
    peers: usize,
    extra: &[&str],
    timing: &[&str],
    flags: &[&str],
) -> Option<HostNet> {
    network_of(tag, seeds, peers, peers, extra, timing, flags)
}

/// Like [`network`], with only the first `started` of the `peers` peer hosts running.
fn network_of(
    tag: &str,
    seeds: usize,
    peers: usize,
    started: usize,
    extra: &[&str],
    timing: &[&str],
    flags: &[&str],
) -> Option<HostNet> {
    let mut net = HostNet::start(tag, seeds, peers, extra, timing, flags)?;
    let all = net.peers[..started].to_vec();
    net.start_peers(&all);
    net.wait_bootstrapped(&all, Duration::from_secs(20));
    net.say(&format!(
        "{seeds} seeds and {peers} peers up on {} hosts of {}",
        net.lab.hosts.len(),
        net.lab.subnet
    ));
    Some(net)
}

/// A seed's Peer List changed: the COMMIT line every seed logs when it applies a change.
fn is_list_change(text: &str) -> bool {
    text.starts_with("Registration consensus COMMIT for ")
        || text.starts_with("Dead-node consensus COMMIT for ")
}

/// Lines saying a seed removed `peer`, from `since` on.
fn removals_of(net: &HostNet, peer: SocketAddr, since: u64) -> Vec<String> {
    let needle = format!("Dead-node consensus COMMIT for {peer} ");
    net.lines_since(since, |l| l.text.starts_with(&needle))
        .into_iter()
        .map(|l| format!("{} at {}", l.text, l.node))
        .collect()
}

/// Lines saying any seed removed any of `peers`, from `since` on.
fn removals_among(net: &HostNet, peers: &[SocketAddr], since: u64) -> Vec<String> {
    peers
        .iter()
        .flat_map(|p| removals_of(net, *p, since))
        .collect()
}

/// Heals, waits for convergence, checks gossip made after it, runs the log checker, and
/// prints the times. Returns the time from healing to convergence.
fn heal_and_check(net: &mut HostNet, live: &[SocketAddr], removed: &[SocketAddr]) -> Duration {
    let healed = Instant::now();
    net.heal();
    net.say("healed");
    let converged = net.converge(live, removed, Duration::from_secs(40));
    net.say(&format!(
        "converged {:.2}s after healing: the same Peer List at every seed, {} live peers alive with neighbours, {} killed peers removed",
        converged.as_secs_f64(),
        live.len(),
        removed.len()
    ));
    let since = unix_ms();
    let (gossips, took) = net.gossip_reaches_all(since, live, Duration::from_secs(20));
    net.say(&format!(
        "{gossips} gossips made after convergence all reached every live peer ({:.2}s)",
        took.as_secs_f64()
    ));
    let summary = net.check_promises();
    net.say(&summary);
    let panics = net.panics();
    assert!(panics.is_empty(), "[{}] panics: {panics:?}", net.tag);
    net.say(&format!(
        "total {:.1}s (healing to convergence {:.2}s)",
        net.t0.elapsed().as_secs_f64(),
        healed.elapsed().as_secs_f64()
    ));
    converged
}

/// 5 seeds; 2 of them (s4, s5) cut off from the other 3 and from every peer, both ways. While
/// the cut holds, two new peers join and a peer is killed: the 3 admit both and remove the
/// dead one; the 2 change nothing. After healing the 2 catch up.
#[test]
fn seeds_cut_off_from_the_majority_change_nothing_and_catch_up() {
    // p7 and p8 start during the cut.
    let Some(mut net) = network_of("seedcut", 5, 8, 6, &[], TIMING, &[]) else {
        return;
    };
    let (majority, minority) = (net.seeds[..3].to_vec(), net.seeds[3..].to_vec());
    let newcomers = eps(&net, &["p7", "p8"]);
    // Let anti-entropy settle: every seed holds the same list before the cut.
    let started = net.peers[..6].to_vec();
    net.converge(&started, &[], Duration::from_secs(10));
    let before: Vec<_> = minority.iter().map(|s| net.peer_list(*s)).collect();
    let others: Vec<_> = ips(&majority).into_iter().chain(ips(&net.peers)).collect();
    let cut_at = unix_ms();
    net.set_faults(Fault::cut(&ips(&minority), &others));
    net.say("cut s4, s5 off from s1-s3 and from every peer");

    let victim = eps(&net, &["p3"])[0];
    net.kill(victim);
    for p in &newcomers {
        net.spawn(*p, false);
    }
    let t = Instant::now();
    let done = wait_for(Duration::from_secs(20), || {
        majority.iter().all(|s| {
            net.peer_list(*s).is_some_and(|l| {
                l.iter().any(|e| e.0 == victim && e.2 == Status::Removed)
                    && newcomers
                        .iter()
                        .all(|p| l.iter().any(|e| e.0 == *p && e.2 == Status::Alive))
            })
        })
    });
    assert!(
        done,
        "the 3 seeds did not admit the newcomers and remove {victim}"
    );
    net.say(&format!(
        "during the cut: s1-s3 admitted p7, p8 and removed p3 within {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    // Hold the cut a little longer: the 2 still change nothing.
    std::thread::sleep(Duration::from_secs(2));
    for (s, old) in minority.iter().zip(&before) {
        assert_eq!(
            &net.peer_list(*s),
            old,
            "cut-off seed {s} changed its Peer List"
        );
        let changed = net.lines_since(cut_at, |l| l.node == *s && is_list_change(&l.text));
        assert!(
            changed.is_empty(),
            "cut-off seed {s} changed entries: {changed:?}"
        );
    }
    net.say("during the cut: s4 and s5 admitted and removed nothing");

    let live: Vec<SocketAddr> = net
        .peers
        .iter()
        .filter(|p| **p != victim)
        .copied()
        .collect();
    heal_and_check(&mut net, &live, &[victim]);
}

/// 3 seeds, 6 peers; p1 cut off from every other peer, both ways, but not from the seeds.
/// Its neighbours stop hearing it and may drop their links, but every seed's own probe reaches
/// it, so it is never removed; after healing it has neighbours again.
#[test]
fn a_peer_cut_off_from_its_neighbours_but_not_the_seeds_is_never_removed() {
    let Some(mut net) = network("nbrcut", 3, 6, &[], TIMING, &[]) else {
        return;
    };
    let p1 = net.peers[0];
    let others: Vec<SocketAddr> = net.peers[1..].to_vec();
    let since = unix_ms();
    net.set_faults(Fault::cut(&ips(&[p1]), &ips(&others)));
    net.say("cut p1 off from every other peer (not from the seeds)");
    std::thread::sleep(Duration::from_secs(6));
    let reports = net.lines_since(since, |l| {
        l.text.starts_with(&format!("Dead Node:{}:", p1.ip()))
    });
    let drops = net.lines_since(since, |l| {
        l.text.starts_with(&format!("Neighbor dropped: {p1} "))
    });
    net.say(&format!(
        "during the cut: {} dead reports about p1, {} neighbours dropped their link; p1 {:?} at every seed",
        reports.len(),
        drops.len(),
        net.entry(net.seeds[0], p1)
    ));
    let gone = removals_of(&net, p1, 0);
    assert!(gone.is_empty(), "p1 was removed: {gone:?}");
    for s in &net.seeds {
        assert_eq!(net.entry(*s, p1).map(|e| e.1), Some(Status::Alive));
    }
    let live = net.peers.clone();
    heal_and_check(&mut net, &live, &[]);
    let gone = removals_among(&net, &live, 0);
    assert!(gone.is_empty(), "a live peer was removed: {gone:?}");
}

/// 3 seeds, 6 peers; p1 cut off from everyone (seeds and peers), both ways. It is removed
/// (correct: nobody can tell it from a dead peer); once the cut heals it learns it was removed
/// and rejoins at a higher incarnation.
#[test]
fn a_peer_cut_off_from_everyone_is_removed_and_rejoins_higher() {
    let Some(mut net) = network("isolate", 3, 6, &[], TIMING, &[]) else {
        return;
    };
    let p1 = net.peers[0];
    let inc = net.incarnation(p1).expect("p1 registered");
    let everyone: Vec<SocketAddr> = net.seeds.iter().chain(&net.peers[1..]).copied().collect();
    net.set_faults(Fault::cut(&ips(&[p1]), &ips(&everyone)));
    let t = Instant::now();
    net.say("cut p1 off from every seed and peer");
    let removed = wait_for(Duration::from_secs(15), || {
        net.seeds
            .iter()
            .all(|s| net.entry(*s, p1) == Some((inc, Status::Removed)))
    });
    assert!(removed, "isolated p1 was not removed at every seed");
    net.say(&format!(
        "during the cut: p1 (incarnation {inc}) removed at every seed {:.2}s after the cut",
        t.elapsed().as_secs_f64()
    ));
    let live = net.peers.clone();
    heal_and_check(&mut net, &live, &[]);
    let now = net.incarnation(p1).expect("p1 registered again");
    assert!(
        now > inc,
        "p1 rejoined at incarnation {now}, not above {inc}"
    );
    for s in &net.seeds {
        assert_eq!(net.entry(*s, p1), Some((now, Status::Alive)));
    }
    net.say(&format!("p1 rejoined at incarnation {now} (was {inc})"));
}

/// 5 seeds, 7 peers; two halves cut from each other, both ways: {s1, s2, p1-p3} and
/// {s4, s5, p5-p7}; s3 and p4 see both (a bridge). Neither half holds a quorum of seeds, and
/// the bridge seed's own probe reaches every peer, so no live peer is removed.
#[test]
fn a_bridge_partition_removes_no_live_peer() {
    let Some(mut net) = network("bridge", 5, 7, &[], TIMING, &[]) else {
        return;
    };
    let a = eps(&net, &["s1", "s2", "p1", "p2", "p3"]);
    let b = eps(&net, &["s4", "s5", "p5", "p6", "p7"]);
    let since = unix_ms();
    net.set_faults(Fault::cut(&ips(&a), &ips(&b)));
    net.say("bridge partition: {s1,s2,p1-p3} | {s4,s5,p5-p7}, s3 and p4 see both");
    std::thread::sleep(Duration::from_secs(8));
    let reports = net.lines_since(since, |l| l.text.starts_with("Dead Node:"));
    let aborts = net.lines_since(since, |l| l.text.starts_with("Dead-node consensus ABORT"));
    net.say(&format!(
        "during the partition: {} dead reports, {} removal rounds aborted, 0 removals",
        reports.len(),
        aborts.len()
    ));
    let live = net.peers.clone();
    let gone = removals_among(&net, &live, 0);
    assert!(
        gone.is_empty(),
        "a live peer was removed during the partition: {gone:?}"
    );
    heal_and_check(&mut net, &live, &[]);
    let gone = removals_among(&net, &live, 0);
    assert!(gone.is_empty(), "a live peer was removed: {gone:?}");
}

/// 5 seeds, 8 peers; partition {s1-s3, p1-p4} | {s4, s5, p5-p8}. Once it settles, a peer of
/// each side is killed. The majority side's victim is removed while the partition holds (a
/// quorum of seeds and a witness see the truth); the minority's seeds cannot remove theirs
/// (2 of 5), and it is removed everywhere once the partition heals. (Peers of the minority
/// that a majority peer had linked to may be removed too, being unreachable; they rejoin at a
/// higher incarnation after healing.)
#[test]
fn a_peer_killed_during_a_partition_is_removed_where_a_quorum_sees_it_then_everywhere() {
    let Some(mut net) = network("killcut", 5, 8, &[], TIMING, &[]) else {
        return;
    };
    let big = eps(&net, &["s1", "s2", "s3", "p1", "p2", "p3", "p4"]);
    let small = eps(&net, &["s4", "s5", "p5", "p6", "p7", "p8"]);
    let cut_at = unix_ms();
    net.set_faults(Fault::cut(&ips(&big), &ips(&small)));
    net.say("partition {s1-s3,p1-p4} | {s4,s5,p5-p8}");
    // Let it settle: cross links are suspected and dropped, unreachable peers removed by the
    // majority.
    std::thread::sleep(Duration::from_secs(4));
    let cut_off: Vec<String> = removals_among(&net, &net.peers.clone(), cut_at);
    net.say(&format!(
        "after settling: the majority removed {} unreachable minority peers",
        cut_off.len()
    ));
    let (victim_big, victim_small) = (eps(&net, &["p2"])[0], eps(&net, &["p6"])[0]);
    let killed_at = unix_ms();
    net.kill(victim_big);
    net.kill(victim_small);
    net.say("killed p2 (majority side) and p6 (minority side)");
    let t = Instant::now();
    let removed = wait_for(Duration::from_secs(15), || {
        net.seeds[..3].iter().all(|s| {
            net.entry(*s, victim_big)
                .is_some_and(|e| e.1 == Status::Removed)
        })
    });
    assert!(
        removed,
        "the majority did not remove its killed peer p2 during the partition"
    );
    net.say(&format!(
        "during the partition: p2 removed at s1-s3 {:.2}s after the kill",
        t.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(2));
    for s in &net.seeds[3..] {
        let l = net.lines_since(cut_at, |l| l.node == *s && is_list_change(&l.text));
        assert!(l.is_empty(), "minority seed {s} changed entries: {l:?}");
    }
    let small_removed_early = !removals_of(&net, victim_small, killed_at).is_empty()
        || !removals_of(&net, victim_small, cut_at).is_empty();
    net.say(&format!(
        "during the partition: s4, s5 changed nothing; p6 {}",
        if small_removed_early {
            "was removed by the majority (a majority peer had linked to it)"
        } else {
            "stays listed alive: only the minority can see it, and it has no quorum"
        }
    ));
    let live: Vec<SocketAddr> = net
        .peers
        .iter()
        .filter(|p| **p != victim_big && **p != victim_small)
        .copied()
        .collect();
    heal_and_check(&mut net, &live, &[victim_big, victim_small]);
    let gone = removals_among(&net, &eps(&net, &["p1", "p3", "p4"]), 0);
    assert!(
        gone.is_empty(),
        "a live majority peer was removed: {gone:?}"
    );
}

/// 4 seeds (a quorum is 3), 6 peers; partition {s1, s2, p1-p3} | {s3, s4, p4-p6}: neither
/// side holds a quorum, so nothing is admitted or removed anywhere while it holds. p2 is
/// killed once it settles: its detectors' reports abort (2 of 4 seeds at most), and they keep
/// following them; once the partition heals the next recheck reports it to seeds that can
/// all see it is dead, and it is removed everywhere.
#[test]
fn a_peer_killed_where_no_quorum_sees_it_is_removed_once_the_partition_heals() {
    let Some(mut net) = network("noquorum", 4, 6, &[], TIMING, &[]) else {
        return;
    };
    let a = eps(&net, &["s1", "s2", "p1", "p2", "p3"]);
    let b = eps(&net, &["s3", "s4", "p4", "p5", "p6"]);
    let cut_at = unix_ms();
    net.set_faults(Fault::cut(&ips(&a), &ips(&b)));
    net.say("partition {s1,s2,p1-p3} | {s3,s4,p4-p6}: no side has a quorum of the 4 seeds");
    std::thread::sleep(Duration::from_secs(3));
    let victim = eps(&net, &["p2"])[0];
    net.kill(victim);
    net.say("killed p2");
    std::thread::sleep(Duration::from_secs(5));
    let changes = net.lines_since(cut_at, |l| is_list_change(&l.text));
    assert!(
        changes.is_empty(),
        "a Peer List changed without a quorum: {changes:?}"
    );
    let reports = net.lines_since(cut_at, |l| {
        l.text.starts_with(&format!("Dead Node:{}:", victim.ip()))
    });
    net.say(&format!(
        "during the partition: {} dead reports about p2, no Peer List changed anywhere",
        reports.len()
    ));
    let live: Vec<SocketAddr> = net
        .peers
        .iter()
        .filter(|p| **p != victim)
        .copied()
        .collect();
    let healed = unix_ms();
    heal_and_check(&mut net, &live, &[victim]);
    let removed_at = removals_of(&net, victim, 0);
    assert!(!removed_at.is_empty());
    let first = net
        .lines_since(healed, |l| {
            l.text
                .starts_with(&format!("Dead-node consensus COMMIT for {victim} "))
        })
        .iter()
        .map(|l| l.unix_ms)
        .max()
        .unwrap_or(0);
    net.say(&format!(
        "p2 removed at every seed {:.2}s after healing",
        first.saturating_sub(healed) as f64 / 1000.0
    ));
    let gone = removals_among(&net, &live, 0);
    assert!(gone.is_empty(), "a live peer was removed: {gone:?}");
}

/// Request deadline on a lossy link: above Linux's 1 s initial SYN retransmission timeout, so
/// a request that must open a connection survives one lost SYN or SYN-ACK (with the default
/// 1 s, about one new connection in five fails at 10 % loss, and a gossip whose every send
/// needed one was lost in about one run in twenty).
const LOSSY_REQUEST_TIMEOUT: &[&str] = &["--request-timeout-ms", "2500"];

/// 3 seeds, 6 peers; p1's link (to every other host) drops 10 % of packets, both ways, for
/// 10 s, with the programs' default probe timings (500 ms probe timeout, above TCP's 200 ms
/// minimum retransmission timeout) and a request deadline above TCP's 1 s SYN retransmission
/// timeout. No live peer is removed, and every gossip made while the link is lossy reaches
/// every peer.
#[test]
fn ten_percent_loss_on_a_link_removes_no_live_peer_and_delivers_every_gossip() {
    let Some(mut net) = network("loss", 3, 6, &[], DEFAULT_TIMING, LOSSY_REQUEST_TIMEOUT) else {
        return;
    };
    let p1 = net.peers[0];
    let others: Vec<SocketAddr> = net.seeds.iter().chain(&net.peers[1..]).copied().collect();
    let since = unix_ms();
    net.set_faults(Fault::lossy(&ips(&[p1]), &ips(&others), 100));
    net.say("p1's link drops 10% of packets both ways");
    std::thread::sleep(Duration::from_secs(10));
    let until = unix_ms();
    let dropped = net.lab.dropped_packets();
    let live = net.peers.clone();
    let gone = removals_among(&net, &live, 0);
    assert!(
        gone.is_empty(),
        "a live peer was removed on a lossy link: {gone:?}"
    );
    let suspicions = net.lines_since(since, |l| {
        l.text.starts_with("Neighbor suspicion triggered")
    });
    net.say(&format!(
        "during the loss: {dropped} packets dropped, {} suspicions, no removal",
        suspicions.len()
    ));
    // Every gossip made during the loss must arrive: give the last ones a moment.
    let lossy_gossip = check_gossip_window(&net, since, until, &live);
    net.say(&format!(
        "{lossy_gossip} gossips made during the loss all reached every peer"
    ));
    heal_and_check(&mut net, &live, &[]);
}

/// Gossip made between `since` and `until` by the peers `live` reached every other live peer
/// (waiting up to 10 s for stragglers). Returns how many gossips that was.
fn check_gossip_window(net: &HostNet, since: u64, until: u64, live: &[SocketAddr]) -> usize {
    let mut last = String::new();
    let mut count = 0;
    let ok = wait_for(Duration::from_secs(10), || {
        let log = net.log();
        let made: Vec<(String, SocketAddr)> = log
            .iter()
            .filter(|l| l.unix_ms >= since && l.unix_ms <= until && live.contains(&l.node))
            .filter_map(|l| {
                let rest = l.text.strip_prefix("Generated gossip: ")?;
                Some((rest.rsplit_once(" (#")?.0.to_string(), l.node))
            })
            .collect();
        count = made.len();
        for (text, origin) in &made {
            let needle = format!("First-time gossip received: {text} from ");
            for p in live.iter().filter(|p| *p != origin) {
                if !log
                    .iter()
                    .any(|l| l.node == *p && l.text.starts_with(&needle))
                {
                    last = format!("{text} (from {origin}) did not reach {p}");
                    return false;
                }
            }
        }
        true
    });
    assert!(ok, "[{}] gossip lost: {last}", net.tag);
    count
}

/// 3 seeds, 6 peers; for 8 s, p1's link (to every other host) and the link between p2 and
/// {p3, p4} go down for 300 ms and up for 300 ms, over and over. Peers whose links flap may be
/// suspected and even removed (the seeds' own probes can land in a down phase); once the
/// links settle, the network converges: every peer alive (a removed one at a higher
/// incarnation), and gossip reaches everyone.
#[test]
fn flapping_links_settle_into_one_network() {
    let Some(mut net) = network("flap", 3, 6, &[], TIMING, &[]) else {
        return;
    };
    let (p1, p2) = (net.peers[0], net.peers[1]);
    let p34 = eps(&net, &["p3", "p4"]);
    let everyone: Vec<SocketAddr> = net.seeds.iter().chain(&net.peers[1..]).copied().collect();
    let mut faults = Fault::cut(&ips(&[p1]), &ips(&everyone));
    faults.extend(Fault::cut(&ips(&[p2]), &ips(&p34)));
    let since = unix_ms();
    let end = Instant::now() + Duration::from_secs(8);
    let mut flaps = 0;
    while Instant::now() < end {
        net.set_faults(faults.clone());
        std::thread::sleep(Duration::from_millis(300));
        net.set_faults(Vec::new());
        std::thread::sleep(Duration::from_millis(300));
        flaps += 1;
    }
    let live = net.peers.clone();
    let removed = removals_among(&net, &live, since);
    let rejoins = net.lines_since(since, |l| l.text.starts_with("Removed from the Peer List"));
    let suspicions = net.lines_since(since, |l| {
        l.text.starts_with("Neighbor suspicion triggered")
    });
    let reports = net.lines_since(since, |l| l.text.starts_with("Dead Node:"));
    net.say(&format!(
        "{flaps} flaps of p1's link and p2-{{p3,p4}}: {} packets dropped, {} suspicions, {} dead reports, {} removals of flapping peers, {} rejoins",
        net.lab.dropped_packets(),
        suspicions.len(),
        reports.len(),
        removed.len(),
        rejoins.len()
    ));
    let steady = eps(&net, &["p5", "p6"]);
    let gone = removals_among(&net, &steady, 0);
    assert!(
        gone.is_empty(),
        "a peer on steady links was removed: {gone:?}"
    );
    heal_and_check(&mut net, &live, &[]);
}

/// 3 seeds, 6 peers; `unreachable` routes between p1 and every other peer, in both hosts:
/// `connect` fails at once ("No route to host") rather than timing out. The seeds still reach
/// p1, so it is never removed; its neighbours notice within the probe rounds (no timeouts to
/// wait for) and drop their links; after healing p1 has neighbours again.
#[test]
fn unreachable_routes_fail_at_once_and_remove_no_live_peer() {
    let Some(mut net) = network("noroute", 3, 6, &[], TIMING, &[]) else {
        return;
    };
    let p1 = net.peers[0];
    let others = ips(&net.peers[1..]);
    let since = unix_ms();
    net.unreachable(ips(&[p1])[0], &others);
    for o in &others {
        net.unreachable(*o, &ips(&[p1]));
    }
    net.say("unreachable routes between p1 and every other peer");
    std::thread::sleep(Duration::from_secs(5));
    let first_suspicion = net
        .lines_since(since, |l| {
            l.text
                .starts_with(&format!("Neighbor suspicion triggered for {p1}:"))
        })
        .first()
        .map(|l| l.unix_ms - since);
    net.say(&format!(
        "during the fault: first suspicion of p1 after {first_suspicion:?} ms"
    ));
    let live = net.peers.clone();
    let gone = removals_among(&net, &live, 0);
    assert!(gone.is_empty(), "a live peer was removed: {gone:?}");
    heal_and_check(&mut net, &live, &[]);
    let gone = removals_among(&net, &live, 0);
    assert!(gone.is_empty(), "a live peer was removed: {gone:?}");
}

/// Seed limits between real hosts: at most 256 accepted connections, 32 from one address.
const HOST_LIMITS: &[&str] = &["--max-inbound", "256", "--max-inbound-per-ip", "32"];

/// 3 seeds with the per-IP limit of real hosts (32 of 256 slots from one address); a host
/// `atk` opens 400 idle connections to every seed and keeps reopening those closed. Each seed
/// holds at most 32 of them, and 4 honest peers on other hosts register and bootstrap while
/// the flood goes on.
#[test]
fn a_flood_from_one_host_does_not_keep_honest_peers_on_other_hosts_out() {
    flood_case("flood", HOST_LIMITS, true);
}

/// The control: the same flood against seeds whose per-IP limit is as high as their whole
/// limit (256) holds every slot, and honest peers cannot register until it stops.
#[test]
fn without_the_per_ip_limit_the_same_flood_shuts_honest_peers_out() {
    flood_case(
        "floodctl",
        &["--max-inbound", "256", "--max-inbound-per-ip", "256"],
        false,
    );
}

fn flood_case(tag: &str, limits: &[&str], limited: bool) {
    let Some(mut net) = HostNet::start(tag, 3, 4, &["atk"], TIMING, limits) else {
        return;
    };
    let atk = net.lab.host("atk").expect("atk").clone();
    let mut cmd = net.lab.command(&atk, &net.hosts_bin.clone());
    cmd.arg("flood");
    for s in &net.seeds {
        cmd.args(["--target", &s.to_string()]);
    }
    let mut flood = cmd
        .args(["--connections", "400", "--seconds", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the flood");
    let mut out = std::io::BufReader::new(flood.stdout.take().expect("stdout"));
    let mut reports = Vec::new();
    for _ in 0..net.seeds.len() {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("flood report");
        reports.push(FloodReport::parse(line.trim()).expect("flood line"));
    }
    net.say(&format!(
        "flood from {}: {}",
        atk.ip,
        reports
            .iter()
            .map(FloodReport::line)
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let peers = net.peers.clone();
    net.start_peers(&peers);
    let t = Instant::now();
    if limited {
        for r in &reports {
            assert!(
                r.held <= 32,
                "a seed held {} flood connections from one host",
                r.held
            );
        }
        net.wait_bootstrapped(&peers, Duration::from_secs(15));
        net.say(&format!(
            "4 honest peers registered and bootstrapped during the flood within {:.2}s",
            t.elapsed().as_secs_f64()
        ));
        assert!(
            matches!(flood.try_wait(), Ok(None)),
            "the flood ended early"
        );
    } else {
        for r in &reports {
            assert!(r.held >= 250, "the flood held only {} connections", r.held);
        }
        std::thread::sleep(Duration::from_secs(5));
        let registered: Vec<_> = peers
            .iter()
            .filter(|p| net.incarnation(**p).is_some())
            .collect();
        assert!(
            registered.is_empty(),
            "peers registered although the flood held every slot: {registered:?}"
        );
        net.say("no honest peer could register in 5 s while the flood held every slot");
    }
    let _ = flood.kill();
    let _ = flood.wait();
    if !limited {
        let t = Instant::now();
        net.wait_bootstrapped(&peers, Duration::from_secs(20));
        net.say(&format!(
            "flood stopped: the 4 peers bootstrapped {:.2}s later",
            t.elapsed().as_secs_f64()
        ));
    }
    let live = peers.clone();
    heal_and_check(&mut net, &live, &[]);
}
