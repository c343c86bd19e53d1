//! Named scenarios: the hard cases of the membership protocol, each staged in the simulator
//! with the real seed and peer state machines, checked against promises 1–4 after every event
//! and, after healing, promises 5–7 within the liveness bound.

use std::cell::RefCell;
use std::rc::Rc;

use gossip_core::config::GossipMode;
use gossip_core::event::ProposalKind;
use gossip_core::msg::{Decision, Endpoint, Status};
use gossip_core::Event;
use gossip_driver_sim::{
    Fault, FaultKind, ForgeKind, NetConfig, NodeRef, Partition, PartitionKind, Sim, SimConfig,
    Split, SybilAttack, Sybils,
};

fn cfg(seed: u64, seeds: u32, peers: u32) -> SimConfig {
    let mut c = SimConfig::new(seed, seeds, peers);
    c.settings.max_gossip = 1_000;
    c
}

fn fault(at_ms: u64, kind: FaultKind) -> Fault {
    Fault { at_ms, kind }
}

fn assert_clean(sim: &Sim, what: &str) {
    assert!(
        sim.violations().is_empty(),
        "{what} (seed {}): {} violation(s):\n{}",
        sim.config().seed,
        sim.checker().violation_count(),
        sim.violations()
            .iter()
            .map(|v| format!("  {v}\n"))
            .collect::<String>()
    );
}

/// Runs to the end of the configured run (through the liveness phase), checks everything.
/// A recording watch (one that never returns true) keeps recording.
fn finish(mut sim: Sim, what: &str) -> Sim {
    let end = sim.config().end_ms();
    sim.run_until(end);
    sim.finish();
    assert_clean(&sim, what);
    if sim.config().liveness {
        assert!(
            sim.liveness_checked(),
            "{what}: the run stopped before the liveness bound"
        );
        assert!(
            sim.converged_ms().is_some(),
            "{what}: promises 6–7 never held"
        );
    }
    sim
}

/// Runs until `pred` matches a node event (or `limit_ms`); true if it matched.
fn run_until_event(
    sim: &mut Sim,
    limit_ms: u64,
    pred: impl FnMut(u64, NodeRef, &Event) -> bool + 'static,
) -> bool {
    sim.set_watch(Some(Box::new(pred)));
    let stopped = !sim.run_until(limit_ms);
    sim.set_watch(None);
    assert_clean(sim, "before the staged fault");
    stopped
}

/// Events recorded by a watch: (time, node, event).
type Log = Rc<RefCell<Vec<(u64, NodeRef, Event)>>>;

/// Records every event matching `keep`, for assertions after the run.
fn recorder(keep: impl Fn(NodeRef, &Event) -> bool + 'static) -> (Log, gossip_driver_sim::Watch) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    (
        log,
        Box::new(move |now, r, ev| {
            if keep(r, ev) {
                l.borrow_mut().push((now, r, ev.clone()));
            }
            false
        }),
    )
}

fn seed_entry(sim: &Sim, seed: u32, peer: Endpoint) -> Option<(u64, Status)> {
    sim.checker().seed_pl(seed).get(&peer).copied()
}

#[test]
fn proposer_crashes_after_its_voters_said_yes() {
    for seed in 0..4 {
        let mut c = cfg(seed, 3, 6);
        c.heal_at_ms = Some(3_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        // Stop as soon as a voter other than the proposer casts a yes for a registration:
        // with 3 seeds that vote is the quorum. Crash the proposer before the vote reaches it.
        let proposer = Rc::new(RefCell::new(None));
        let p = proposer.clone();
        let hit = run_until_event(&mut sim, 2_000, move |_, r, ev| match ev {
            Event::VoteCast {
                kind: ProposalKind::Register,
                yes: true,
                proposer,
                ..
            } if NodeRef::Seed(u32::from(proposer.port() - 5001)) != r => {
                *p.borrow_mut() = Some(u32::from(proposer.port() - 5001));
                true
            }
            _ => false,
        });
        assert!(hit, "seed {seed}: no registration round");
        let victim = proposer.borrow().expect("proposer");
        sim.crash(NodeRef::Seed(victim));
        finish(sim, "proposer crashed with its quorum in flight");
    }
}

#[test]
fn proposer_crashes_right_after_committing() {
    for seed in 0..4 {
        let mut c = cfg(seed, 5, 8);
        c.heal_at_ms = Some(3_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let who = Rc::new(RefCell::new(None));
        let w = who.clone();
        let hit = run_until_event(&mut sim, 2_000, move |_, r, ev| match ev {
            Event::Decided {
                decision: Decision::Commit,
                ..
            } => {
                *w.borrow_mut() = Some(r);
                true
            }
            _ => false,
        });
        assert!(hit);
        let victim = who.borrow().expect("proposer");
        sim.crash(victim);
        finish(sim, "proposer crashed after committing");
    }
}

#[test]
fn concurrent_register_and_remove_of_one_peer() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 8);
        c.faults = vec![fault(5_000, FaultKind::Crash(NodeRef::Peer(3)))];
        c.heal_at_ms = Some(5_001);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let p3 = sim.endpoint(NodeRef::Peer(3));
        // When a seed proposes removing peer 3, peer 3 comes back and registers again.
        let hit = run_until_event(
            &mut sim,
            30_000,
            move |_, _, ev| matches!(ev, Event::Proposed { kind: ProposalKind::Removal, peer, .. } if *peer == p3),
        );
        assert!(
            hit,
            "seed {seed}: the crashed peer was never proposed for removal"
        );
        sim.restart(NodeRef::Peer(3));
        let sim = finish(sim, "register racing a removal");
        // Promise 7 (checked) has it Alive at its current incarnation at every seed.
        for s in 0..3 {
            assert_eq!(seed_entry(&sim, s, p3).map(|e| e.1), Some(Status::Alive));
        }
    }
}

#[test]
fn a_seed_restarts_empty_mid_round() {
    for seed in 0..4 {
        let mut c = cfg(seed, 5, 10);
        c.heal_at_ms = Some(4_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let proposer = Rc::new(RefCell::new(0u32));
        let p = proposer.clone();
        let hit = run_until_event(&mut sim, 2_000, move |_, r, ev| match (r, ev) {
            (NodeRef::Seed(s), Event::Proposed { .. }) => {
                *p.borrow_mut() = s;
                true
            }
            _ => false,
        });
        assert!(hit);
        let voter = (*proposer.borrow() + 1) % 5;
        sim.crash(NodeRef::Seed(voter));
        sim.restart(NodeRef::Seed(voter));
        finish(sim, "a voter restarted empty mid-round");
    }
}

#[test]
fn a_proposer_on_the_minority_side_of_a_partition_never_commits() {
    for seed in 0..3 {
        let mut c = cfg(seed, 5, 12);
        let minority = vec![
            NodeRef::Seed(0),
            NodeRef::Seed(1),
            NodeRef::Peer(0),
            NodeRef::Peer(1),
            NodeRef::Peer(2),
        ];
        c.faults = vec![
            // Peer 1 restarts inside the minority: it can only ask seeds 0 and 1 to register it.
            fault(1_500, FaultKind::Crash(NodeRef::Peer(1))),
            fault(
                2_000,
                FaultKind::Partition(Partition {
                    split: Split::Nodes(minority),
                    kind: PartitionKind::Symmetric,
                }),
            ),
            fault(2_500, FaultKind::Restart(NodeRef::Peer(1))),
            fault(3_000, FaultKind::Crash(NodeRef::Peer(7))),
        ];
        c.heal_at_ms = Some(15_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let (log, watch) = recorder(|r, ev| {
            matches!(r, NodeRef::Seed(0) | NodeRef::Seed(1))
                && matches!(ev, Event::Proposed { .. } | Event::Decided { .. })
        });
        sim.set_watch(Some(watch));
        sim.run_until(14_999);
        assert_clean(&sim, "during the partition");
        let log = log.borrow();
        let in_partition = |t: u64| (2_000..15_000).contains(&t);
        let proposed = log
            .iter()
            .filter(|(t, _, ev)| in_partition(*t) && matches!(ev, Event::Proposed { .. }))
            .count();
        assert!(
            proposed > 0,
            "seed {seed}: the minority seeds never proposed"
        );
        for (t, r, ev) in log.iter() {
            if let Event::Decided { decision, .. } = ev {
                if in_partition(*t) {
                    assert_eq!(
                        *decision,
                        Decision::Abort,
                        "{r:?} committed at {t} ms without a quorum"
                    );
                }
            }
        }
        drop(log);
        finish(sim, "minority proposer");
    }
}

#[test]
fn stale_and_duplicated_commits_change_nothing_twice() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 12);
        c.net = NetConfig {
            latency_min_ms: 1,
            latency_max_ms: 30,
            jitter_ms: 300,
            dup: 0.5,
            ..NetConfig::default()
        };
        c.faults = vec![
            fault(4_000, FaultKind::Crash(NodeRef::Peer(2))),
            fault(4_000, FaultKind::Crash(NodeRef::Peer(5))),
            fault(9_000, FaultKind::Restart(NodeRef::Peer(5))),
            fault(9_500, FaultKind::Crash(NodeRef::Seed(2))),
            fault(12_000, FaultKind::Restart(NodeRef::Seed(2))),
        ];
        c.heal_at_ms = Some(20_000);
        c.liveness = true;
        let sim: Sim = Sim::new(c).unwrap();
        finish(sim, "duplicated and reordered commits");
    }
}

#[test]
fn a_removed_peer_registers_again_at_a_higher_incarnation() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 8);
        c.faults = vec![fault(
            3_000,
            FaultKind::Partition(Partition {
                split: Split::Nodes(vec![NodeRef::Peer(2)]),
                kind: PartitionKind::Symmetric,
            }),
        )];
        c.heal_at_ms = Some(20_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let p2 = sim.endpoint(NodeRef::Peer(2));
        let (log, watch) = recorder(move |r, ev| match ev {
            Event::EntryChanged { entry, .. } => {
                entry.peer == p2 && entry.status == Status::Removed
            }
            Event::Rejoining { .. } => r == NodeRef::Peer(2),
            _ => false,
        });
        sim.set_watch(Some(watch));
        sim.run_until(19_999);
        let removed_inc = log.borrow().iter().find_map(|(_, _, ev)| match ev {
            Event::EntryChanged { entry, .. } => Some(entry.incarnation),
            _ => None,
        });
        let removed_inc = removed_inc
            .unwrap_or_else(|| panic!("seed {seed}: the isolated peer was never removed"));
        let sim = finish(sim, "removed peer rejoining");
        assert!(
            log.borrow()
                .iter()
                .any(|(_, _, ev)| matches!(ev, Event::Rejoining { .. })),
            "seed {seed}: the peer never learned it was removed"
        );
        for s in 0..3 {
            let (inc, st) = seed_entry(&sim, s, p2).expect("entry");
            assert_eq!(st, Status::Alive);
            assert!(
                inc > removed_inc,
                "seed {s}: incarnation {inc} not above {removed_inc}"
            );
        }
    }
}

/// Promise 4 is judged per loss window: a peer cut off for a while is excused while its
/// losses are recent and guarded again once they are old, and the report says how many peers
/// and how much of their time up the promise guarded (all of it without faults).
#[test]
fn promise_4_guards_every_peer_outside_its_loss_windows() {
    for seed in 0..3 {
        let calm = adversarial_free_run(cfg(seed, 3, 8));
        assert_eq!(calm.promise4_peers, 8, "{}", calm.human());
        assert!(calm.promise4_share > 0.999, "{}", calm.human());

        let mut c = cfg(seed, 3, 8);
        c.faults = vec![fault(
            3_000,
            FaultKind::Partition(Partition {
                split: Split::Nodes(vec![NodeRef::Peer(2)]),
                kind: PartitionKind::Symmetric,
            }),
        )];
        let heal = 20_000;
        c.heal_at_ms = Some(heal);
        c.liveness = true;
        let window = c.loss_window_ms();
        let r = adversarial_free_run(c);
        assert!(
            r.false_removals >= 1,
            "seed {seed}: the cut-off peer was not removed\n{}",
            r.human()
        );
        assert_eq!(r.promise4_peers, 8, "{}", r.human());
        // Every peer is guarded at least from the loss window after healing to the end.
        let end = (r.sim_time_s * 1000.0) as u64;
        let floor = end.saturating_sub(heal + window) as f64 / end as f64;
        assert!(
            r.promise4_share >= floor && r.promise4_share < 1.0,
            "seed {seed}: promise 4 guarded {:.3} of the time, expected {floor:.3} to 1\n{}",
            r.promise4_share,
            r.human()
        );
    }
}

/// A merely slow peer: its host is saturated from 5 s to 65 s, so every message to or from it
/// waits up to 400 ms more each way, and about 30 % of the probes of it (neighbours',
/// witnesses', the seeds') come back after the 500 ms probe timeout. Its late answers are not
/// deaths: it is suspected now and then, but never removed, and it still has neighbours at
/// the end. (At 450 ms, 41 % late, one run in three removed it: docs/SIMULATOR.md.)
#[test]
fn a_slow_peer_is_not_removed_and_keeps_its_links() {
    let mut suspected = 0;
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 12);
        let slow = NodeRef::Peer(3);
        c.faults = vec![
            fault(
                5_000,
                FaultKind::Slow {
                    node: slow,
                    extra_ms: 400,
                },
            ),
            fault(
                65_000,
                FaultKind::Slow {
                    node: slow,
                    extra_ms: 0,
                },
            ),
        ];
        c.heal_at_ms = Some(65_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let p3 = sim.endpoint(slow);
        let (log, watch) = recorder(move |_, ev| match ev {
            Event::EntryChanged { entry, .. } => {
                entry.peer == p3 && entry.status == Status::Removed
            }
            Event::SuspicionVerdict { suspect, .. } => *suspect == p3,
            _ => false,
        });
        sim.set_watch(Some(watch));
        let sim = finish(sim, "slow peer");
        let events = log.borrow();
        let removals = (events.iter())
            .filter(|(_, _, e)| matches!(e, Event::EntryChanged { .. }))
            .count();
        assert_eq!(removals, 0, "seed {seed}: the slow peer was removed");
        assert!(
            sim.checker().degree(3) >= 1,
            "seed {seed}: the slow peer has no neighbour left"
        );
        suspected += events.len() - removals;
    }
    assert!(
        suspected > 0,
        "the slow host never delayed a probe past its timeout"
    );
}

/// Runs a configuration to its end and requires every promise to hold.
fn adversarial_free_run(c: SimConfig) -> gossip_driver_sim::Report {
    let mut sim: Sim = Sim::new(c).unwrap();
    let r = sim.run();
    assert_eq!(r.invariant_violations, 0, "{}", r.human());
    r
}

#[test]
fn a_lying_peer_never_gets_a_live_peer_removed() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 8);
        c.faults = (0..9)
            .map(|k| {
                fault(
                    3_000 + 700 * k,
                    FaultKind::Lie {
                        peer: 3,
                        seed: (k % 3) as u32,
                    },
                )
            })
            .collect();
        c.heal_at_ms = Some(10_000);
        c.liveness = true;
        let mut sim: Sim = Sim::new(c).unwrap();
        let p3 = sim.endpoint(NodeRef::Peer(3));
        let (log, watch) = recorder(
            move |_, ev| matches!(ev, Event::EntryChanged { entry, .. } if entry.peer == p3 && entry.status == Status::Removed),
        );
        sim.set_watch(Some(watch));
        sim.run_until(9_999);
        let sim = finish(sim, "lying reports");
        assert!(
            log.borrow().is_empty(),
            "seed {seed}: the accused peer was removed"
        );
        assert_eq!(sim.checker().false_removals(), 0);
    }
}

#[test]
fn a_killed_peer_is_removed_at_every_live_seed() {
    for seed in 0..3 {
        let mut c = cfg(seed, 5, 20);
        c.faults = vec![fault(5_000, FaultKind::Crash(NodeRef::Peer(7)))];
        c.heal_at_ms = Some(5_001);
        c.liveness = true;
        let sim: Sim = Sim::new(c).unwrap();
        let sim = finish(sim, "killed peer");
        let p7 = sim.endpoint(NodeRef::Peer(7));
        let rec = &sim.checker().crashes()[0];
        let took = rec.removed_at.expect("removed") - rec.at_ms;
        assert!(
            took < sim.config().liveness_bound_ms(),
            "detection took {took} ms"
        );
        // Removed, and by the end of the run (more than a tombstone period later) forgotten.
        for s in 0..5 {
            let entry = seed_entry(&sim, s, p7).map(|e| e.1);
            let reaped = sim.now()
                >= rec.removed_at.unwrap_or(0) + sim.config().settings.tombstone_ms + 5_000;
            let want = if reaped { None } else { Some(Status::Removed) };
            assert_eq!(entry, want, "seed {s}");
        }
    }
}

#[test]
fn every_gossip_of_a_live_peer_reaches_every_live_peer_connected_to_it() {
    // Without faults: a perfect flood.
    let mut c = SimConfig::new(11, 3, 30);
    c.settings.max_gossip = 10;
    let mut sim: Sim = Sim::new(c).unwrap();
    let r = sim.run();
    assert_eq!(r.invariant_violations, 0, "{}", r.human());
    assert_eq!(r.gossip_generated, 300);
    assert_eq!(r.delivered, r.owed);
    assert!(r.owed >= 300 * 25, "{}", r.human());
    assert_eq!(r.overhead_ratio, 1.0, "{}", r.human());
    assert!(r.hops_max <= r.eccentricity_max, "{}", r.human());
    // After crashes heal: gossips made after the bound reach everyone connected (promise 5,
    // checked at the end of the run).
    let mut c = cfg(12, 3, 30);
    c.faults = vec![
        fault(4_000, FaultKind::Crash(NodeRef::Peer(4))),
        fault(4_000, FaultKind::Crash(NodeRef::Peer(17))),
        fault(6_000, FaultKind::Crash(NodeRef::Peer(23))),
    ];
    c.heal_at_ms = Some(6_001);
    c.liveness = true;
    let sim: Sim = Sim::new(c).unwrap();
    let sim = finish(sim, "gossip after crashes");
    assert!(sim
        .checker()
        .crashes()
        .iter()
        .all(|c| c.removed_at.is_some()));
}

/// Lazy push: without faults every gossip reaches every peer once along the tree (payload
/// within 5 % of `N - 1` copies per broadcast), for fewer lines and bytes than the flood of
/// the same run; after crashes, drops and a partition heal, every gossip owed still arrives
/// (promise 5).
#[test]
fn lazy_push_delivers_everything_along_a_tree() {
    let run = |mode: GossipMode| {
        let mut c = SimConfig::new(21, 3, 200);
        c.settings.max_gossip = 10;
        c.settings.gossip_mode = mode;
        let mut sim: Sim = Sim::new(c).unwrap();
        sim.run()
    };
    let (flood, lazy) = (run(GossipMode::Flood), run(GossipMode::Lazy));
    assert_eq!(lazy.invariant_violations, 0, "{}", lazy.human());
    assert_eq!(lazy.delivered, lazy.owed, "{}", lazy.human());
    assert_eq!(lazy.owed, flood.owed);
    assert!(lazy.payload_per_broadcast <= 1.05, "{}", lazy.human());
    assert!(flood.payload_per_broadcast > 2.0, "{}", flood.human());
    assert!(lazy.lines_per_broadcast < flood.lines_per_broadcast);
    assert!(lazy.bytes_per_broadcast < flood.bytes_per_broadcast);
    let mut c = cfg(22, 3, 40);
    c.settings.gossip_mode = GossipMode::Lazy;
    c.net.drop = 0.05;
    c.faults = vec![
        fault(4_000, FaultKind::Crash(NodeRef::Peer(4))),
        fault(4_500, FaultKind::Crash(NodeRef::Peer(17))),
        fault(
            5_000,
            FaultKind::Partition(Partition {
                kind: PartitionKind::Symmetric,
                split: Split::Random {
                    fraction: 0.3,
                    salt: 5,
                },
            }),
        ),
        fault(9_000, FaultKind::HealPartition),
    ];
    c.heal_at_ms = Some(9_001);
    c.liveness = true;
    let sim: Sim = Sim::new(c).unwrap();
    let sim = finish(sim, "lazy push after crashes, drops and a partition");
    let r = sim.report(0.0, None);
    assert!(r.repaired > 0, "the partition cost copies: {}", r.human());
}

#[test]
fn same_seed_same_trace_hash() {
    let run = |seed| {
        let mut c = cfg(seed, 5, 25);
        c.net = NetConfig::chosen_by(seed);
        c.net.drop = 0.02;
        c.net.dup = 0.05;
        c.net.jitter_ms = 40;
        c.faults = vec![
            fault(3_000, FaultKind::Crash(NodeRef::Peer(3))),
            fault(4_000, FaultKind::Crash(NodeRef::Seed(1))),
            fault(6_000, FaultKind::Restart(NodeRef::Seed(1))),
        ];
        c.duration_ms = Some(20_000);
        let mut sim: Sim = Sim::new(c).unwrap();
        let r = sim.run();
        (r.trace_hash, r.events, r.gossip_generated)
    };
    let a = run(99);
    assert_eq!(a, run(99));
    assert_ne!(a.0, run(100).0);
}

/// On Linux a run's report carries the CPU time of the span its wall time covers: never more
/// than that wall time (give or take the kernel's accounting tick).
#[cfg(target_os = "linux")]
#[test]
fn the_report_counts_the_runs_cpu_time() {
    let mut sim: Sim = Sim::new(cfg(7, 3, 10)).unwrap();
    let r = sim.run();
    let cpu = r.cpu_s.expect("Linux reports CPU time");
    assert!(
        (0.0..=r.wall_s + 0.01).contains(&cpu),
        "cpu {cpu} s, wall {} s",
        r.wall_s
    );
    assert!(r.events > 0 && r.events_per_cpu_sec.is_some_and(|e| e > 0.0));
}

/// A detector whose first `DEAD_REPORT` rounds all abort (here: a majority of seeds is down
/// while it reports) must follow up until a seed commits, or the crashed peer stays Alive in
/// the Peer List forever (promise 6). Found by the simulator, fixed in the peer.
#[test]
fn a_crashed_peer_is_removed_even_if_the_first_reports_fail() {
    let mut c = cfg(3, 3, 10);
    c.faults = vec![
        fault(5_000, FaultKind::Crash(NodeRef::Seed(0))),
        fault(5_000, FaultKind::Crash(NodeRef::Seed(1))),
        fault(5_000, FaultKind::Crash(NodeRef::Peer(4))),
    ];
    c.heal_at_ms = Some(15_000); // seeds restart here, long after the detectors gave up
    c.liveness = true;
    let sim: Sim = Sim::new(c).unwrap();
    finish(sim, "crashed peer whose first reports all failed");
}

/// Runs `c` to its end, checks everything, and that the adversaries sent something and
/// changed nothing.
fn adversarial_run(mut c: SimConfig, what: &str) -> gossip_driver_sim::Report {
    if c.duration_ms.is_none() {
        // To the end of the liveness phase (promise 5 included), not of every gossip.
        c.duration_ms = c.liveness_end_ms().map(|end| end + 1_000);
    }
    let mut sim: Sim = Sim::new(c).unwrap();
    let r = sim.run();
    assert_eq!(
        r.invariant_violations,
        0,
        "{what} (seed {}):\n{}",
        r.seed,
        r.human()
    );
    assert!(r.forged_sent > 0, "{what}: nothing forged\n{}", r.human());
    assert_eq!(r.forged_changes, 0, "{what}:\n{}", r.human());
    if sim.config().liveness {
        assert!(
            r.converged_ms.is_some(),
            "{what}: promises 6–7 never held\n{}",
            r.human()
        );
    }
    r
}

#[test]
fn a_forger_hammering_one_seed_with_every_kind_changes_nothing() {
    for seed in 0..3 {
        for seeds in [3, 5] {
            let mut c = cfg(seed, seeds, 10);
            // Every kind of forgery, every 250 ms for 20 s, at seed 0, about every peer in
            // turn: removals of live peers (at their incarnation, the next, a huge one),
            // admissions of endpoints where nothing listens and of live peers one above,
            // SEED_SYNCs carrying all of these, solicited votes and the commits naming
            // exactly the seeds asked, REGISTER_REQs at a huge incarnation and for nobody.
            c.faults = (0..80u32)
                .map(|i| {
                    let kind = ForgeKind::ALL[i as usize % ForgeKind::ALL.len()];
                    let peer = i / ForgeKind::ALL.len() as u32;
                    fault(
                        2_000 + 250 * u64::from(i),
                        FaultKind::Forge {
                            kind,
                            seed: 0,
                            peer,
                        },
                    )
                })
                .collect();
            c.heal_at_ms = Some(23_000);
            c.liveness = true;
            let r = adversarial_run(c, "forger at seed 0");
            assert_eq!(r.false_removals, 0, "{}", r.human());
            assert!(r.forged_by_kind.len() >= 4, "{}", r.human());
        }
    }
}

#[test]
fn one_lying_seed_out_of_three() {
    for seed in 0..3 {
        for keep_lying in [false, true] {
            let mut c = cfg(seed, 3, 12);
            c.lying_seeds = vec![2];
            c.liars_stop_at_heal = !keep_lying;
            c.faults = vec![
                fault(4_000, FaultKind::Crash(NodeRef::Peer(3))),
                fault(6_000, FaultKind::Crash(NodeRef::Peer(8))),
                fault(9_000, FaultKind::Restart(NodeRef::Peer(8))),
            ];
            c.heal_at_ms = Some(30_000);
            c.liveness = true;
            let r = adversarial_run(c, "one lying seed of three");
            assert!(
                r.forged_by_kind.contains_key("vote_lie")
                    && r.forged_by_kind.contains_key("sync_reply")
                    && r.forged_by_kind.contains_key("liar_commit"),
                "{}",
                r.human()
            );
        }
    }
}

#[test]
fn two_lying_seeds_out_of_five_with_crashes_and_a_partition() {
    for seed in 0..3 {
        for keep_lying in [false, true] {
            let mut c = cfg(seed, 5, 20);
            c.lying_seeds = vec![1, 3];
            c.liars_stop_at_heal = !keep_lying;
            c.faults = vec![
                fault(3_000, FaultKind::Crash(NodeRef::Peer(2))),
                fault(4_000, FaultKind::Crash(NodeRef::Seed(0))),
                fault(
                    5_000,
                    FaultKind::Partition(Partition {
                        split: Split::Random {
                            fraction: 0.3,
                            salt: seed,
                        },
                        kind: PartitionKind::Symmetric,
                    }),
                ),
                fault(7_000, FaultKind::Crash(NodeRef::Peer(11))),
                fault(9_000, FaultKind::Restart(NodeRef::Peer(11))),
                fault(12_000, FaultKind::HealPartition),
                fault(14_000, FaultKind::Restart(NodeRef::Seed(0))),
                fault(15_000, FaultKind::Crash(NodeRef::Peer(17))),
            ];
            c.heal_at_ms = Some(35_000);
            c.liveness = true;
            adversarial_run(c, "two lying seeds of five");
        }
    }
}

/// Found with the lying seeds: a lying seed's anti-entropy reply says it holds a crashed peer
/// removed at `MAX_INCARNATION - 1`. The honest seed that pulled it cannot confirm it, keeps
/// it as hearsay and certifies it again by a fresh round, in which hearsay at exactly that
/// incarnation made every voter probe the peer: silent (it crashed), so yes, and the lying
/// seed's yes completed the quorum. The peer, back up, would rejoin at `MAX_INCARNATION`, an
/// incarnation it could never be removed at. Fixed in `round::removal_check`: hearsay counts
/// only one step above what the voter knows (promise 9 checks every entry).
#[test]
fn a_lying_seed_cannot_make_a_removal_at_an_incarnation_nobody_held() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 12);
        c.lying_seeds = vec![2];
        c.liars_stop_at_heal = false;
        // Most peers crash and stay down: the lying seed's forged removals of them, at any
        // incarnation, meet peers that do not answer.
        c.faults = (1..8)
            .map(|j| {
                fault(
                    3_000 + 100 * u64::from(j),
                    FaultKind::Crash(NodeRef::Peer(j)),
                )
            })
            .collect();
        c.duration_ms = Some(60_000);
        adversarial_run(c, "lying seed and crashed peers");
    }
}

/// Found with the forger and the lying seeds: a peer removed while it was cut off (promise 4
/// allows it: its links lost messages) is readmitted one step above its removal by an
/// admission it never asked for (a forged `REGISTER_REQ` or solicited votes, or a lying
/// seed's forged entry certified again): the seeds' rule allows it, since the peer answers
/// at its address. The peer, holding its old incarnation and never told it was removed, did
/// not rejoin, so every seed listed it one above what it holds (promise 7). Fixed in the
/// peer: its own entry one above what it holds means it was removed and readmitted, and it
/// registers at that incarnation (answered at once).
#[test]
fn a_peer_readmitted_above_a_removal_it_missed_learns_its_incarnation() {
    for seed in 0..3 {
        let mut c = cfg(seed, 3, 10);
        c.faults = vec![
            fault(
                3_000,
                FaultKind::Partition(Partition {
                    split: Split::Nodes(vec![NodeRef::Peer(4)]),
                    kind: PartitionKind::Symmetric,
                }),
            ),
            fault(12_000, FaultKind::HealPartition),
        ];
        // Right after the partition heals, before the peer's next Peer List refresh:
        // solicited votes (among them, admitting peer 4 one above the incarnation it holds)
        // at every seed, and the commits naming the seeds asked.
        c.faults.extend((0..3).map(|s| {
            fault(
                12_050,
                FaultKind::Forge {
                    kind: ForgeKind::SolicitVotes,
                    seed: s,
                    peer: 4,
                },
            )
        }));
        c.heal_at_ms = Some(12_100);
        c.liveness = true;
        let sim: Sim = Sim::new(c).unwrap();
        let sim = finish(sim, "readmitted above a missed removal");
        let p4 = sim.endpoint(NodeRef::Peer(4));
        let inc = sim.checker().peers()[4].incarnation;
        for s in 0..3 {
            assert_eq!(
                seed_entry(&sim, s, p4),
                inc.map(|i| (i, Status::Alive)),
                "seed {seed}: seed {s} and the peer disagree"
            );
        }
    }
}

/// A rolling restart with graceful leaves, in flood and lazy mode: every peer in turn leaves
/// (as on SIGTERM) and starts again a second later. Each leave is certified `LEFT` at every
/// live seed before the peer exits, nobody suspects or reports it (no false failure), each
/// comes back one incarnation up, and every promise holds through it (promise 4 now also
/// fails a `LEFT` the peer never asked for).
#[test]
fn a_rolling_restart_with_leaves_raises_no_false_failure() {
    for mode in [GossipMode::Flood, GossipMode::Lazy] {
        let peers = 12;
        let mut c = cfg(11, 3, peers);
        c.settings.gossip_mode = mode;
        let t0 = c.joins_end_ms() + 5_000;
        let step = 4_000;
        let mut faults = Vec::new();
        for j in 0..peers {
            let at = t0 + u64::from(j) * step;
            faults.push(fault(at, FaultKind::Leave(NodeRef::Peer(j))));
            faults.push(fault(at + 1_000, FaultKind::Restart(NodeRef::Peer(j))));
        }
        c.faults = faults;
        let end = t0 + u64::from(peers) * step;
        c.heal_at_ms = Some(end);
        c.liveness = true;
        let mut sim = Sim::new(c).expect("config");
        let (log, watch) = recorder(|_, e| {
            matches!(
                e,
                Event::Left { .. }
                    | Event::DeadReported { .. }
                    | Event::SuspicionRaised { .. }
                    | Event::EntryChanged { .. }
                    | Event::RegistrationQuorum { .. }
            )
        });
        sim.set_watch(Some(watch));
        let sim = finish(sim, &format!("rolling restart ({mode})"));
        let log = log.borrow();
        let left: Vec<&Event> = (log.iter())
            .filter(|(_, _, e)| matches!(e, Event::Left { seeds, .. } if !seeds.is_empty()))
            .map(|(_, _, e)| e)
            .collect();
        assert_eq!(left.len(), peers as usize, "every leave certified ({mode})");
        let false_alarms = (log.iter())
            .filter(|(_, _, e)| {
                matches!(
                    e,
                    Event::DeadReported { .. } | Event::SuspicionRaised { .. }
                )
            })
            .count();
        assert_eq!(
            false_alarms, 0,
            "suspicions or reports after leaves ({mode})"
        );
        for j in 0..peers {
            let ep = sim.endpoint(NodeRef::Peer(j));
            let lefts = (log.iter())
                .filter(|(_, n, e)| {
                    matches!(n, NodeRef::Seed(_))
                        && matches!(e, Event::EntryChanged { entry, .. }
                            if entry.peer == ep && entry.status == Status::Left && entry.incarnation == 1)
                })
                .count();
            assert_eq!(lefts, 3, "{ep} LEFT at every seed ({mode})");
            let back = (log.iter()).any(|(_, n, e)| {
                *n == NodeRef::Peer(j)
                    && matches!(e, Event::RegistrationQuorum { incarnation: 2, .. })
            });
            assert!(back, "{ep} came back one incarnation up ({mode})");
        }
    }
}

/// Reaping, and the replay it must survive. With a 20 s tombstone: a crashed peer (removed)
/// and a peer that left (`LEFT`) are forgotten by every seed; one that restarts while its
/// reaped incarnation is still remembered registers above it; one that restarts after that
/// reuses incarnation 1. Then an on-path attacker replays every genuine commit sync the seeds
/// ever sent (the admissions, the removal, the leave) to every seed: the checker fails the
/// run if any removes the live peer that reused its incarnation (promise 4) or brings back
/// the peer that left (promise 6), or if any seed re-takes a change it reaped.
#[test]
fn a_replayed_certificate_after_reaping_removes_and_resurrects_nobody() {
    let mut c = cfg(5, 3, 8);
    c.settings.max_gossip = 0;
    c.settings.tombstone_ms = 20_000;
    let t = c.joins_end_ms() + 3_000;
    let tomb = c.settings.tombstone_ms;
    let (crashed, left, early) = (NodeRef::Peer(1), NodeRef::Peer(2), NodeRef::Peer(3));
    let mut faults = vec![
        fault(t, FaultKind::Crash(crashed)),
        fault(t, FaultKind::Leave(left)),
        fault(t, FaultKind::Crash(early)),
        // Reaped at about t + 5 s + tomb, remembered until about t + 5 s + 2 tomb.
        fault(t + tomb + tomb / 2 + 10_000, FaultKind::Restart(early)),
        fault(t + 2 * tomb + 15_000, FaultKind::Restart(crashed)),
    ];
    let replay_at = t + 2 * tomb + 25_000;
    for s in 0..3 {
        faults.push(fault(
            replay_at + u64::from(s) * 500,
            FaultKind::ReplayCommits { seed: s },
        ));
    }
    c.faults = faults;
    c.heal_at_ms = Some(replay_at + 3_000);
    c.liveness = true;
    let mut sim = Sim::new(c).expect("config");
    let (log, watch) = recorder(|_, e| {
        matches!(
            e,
            Event::EntryReaped { .. }
                | Event::RegistrationQuorum { .. }
                | Event::EntryChanged { .. }
        )
    });
    sim.set_watch(Some(watch));
    let sim = finish(sim, "replay after reaping");
    let log = log.borrow();
    for (who, what) in [(crashed, Status::Removed), (left, Status::Left)] {
        let ep = sim.endpoint(who);
        let reaped = (log.iter())
            .filter(|(_, n, e)| {
                matches!(n, NodeRef::Seed(_))
                    && matches!(e, Event::EntryReaped { entry } if entry.peer == ep && entry.status == what)
            })
            .count();
        assert_eq!(reaped, 3, "{ep} ({what:?}) reaped at every seed");
    }
    let incarnation_of = |r: NodeRef| {
        (log.iter()).rev().find_map(|(_, n, e)| match e {
            Event::RegistrationQuorum { incarnation, .. } if *n == r => Some(*incarnation),
            _ => None,
        })
    };
    assert_eq!(
        incarnation_of(early),
        Some(2),
        "above the remembered reaped incarnation"
    );
    assert_eq!(
        incarnation_of(crashed),
        Some(1),
        "forgotten: incarnation 1 again"
    );
    let left_ep = sim.endpoint(left);
    for s in 0..3 {
        assert_eq!(
            seed_entry(&sim, s, left_ep),
            None,
            "the peer that left stays forgotten"
        );
    }
    let back = sim.endpoint(crashed);
    for s in 0..3 {
        assert_eq!(seed_entry(&sim, s, back), Some((1, Status::Alive)));
    }
}

/// Churn with fresh endpoints: 1,500 peers join one after another and each leaves 15 s after
/// it started. With a 20 s tombstone every seed's Peer List stays near the peers of the last
/// minute (not every peer that ever was), and every promise holds.
#[test]
fn churn_of_fresh_endpoints_keeps_the_peer_list_bounded() {
    // 10^4 peers, each at an address never used again, join at 100 a second, stay 5 s and
    // leave (bench_churn runs 10^5 and compares with reaping off).
    let (peers, per_sec, stay_ms, tombstone_ms) = (10_000u32, 100u64, 5_000, 20_000);
    let mut c = cfg(9, 3, peers);
    c.settings.max_gossip = 0;
    c.settings.tombstone_ms = tombstone_ms;
    c.join_window_ms = u64::from(peers) * 1_000 / per_sec;
    c.faults = (0..peers)
        .map(|j| {
            fault(
                c.join_at_ms(j) + stay_ms,
                FaultKind::Leave(NodeRef::Peer(j)),
            )
        })
        .collect();
    let end = c.joins_end_ms() + stay_ms + 10_000;
    c.duration_ms = Some(end);
    let mut sim = Sim::new(c).expect("config");
    let mut largest = 0;
    let mut t = 10_000;
    while t < end {
        assert!(sim.run_until(t), "stopped early");
        for s in 0..3 {
            largest = largest.max(sim.checker().seed_pl(s).len());
        }
        t += 5_000;
    }
    sim.run_until(end);
    sim.finish();
    assert_clean(&sim, "churn");
    // Live peers (5 s of joins) and tombstones (20 s of leaves), and a few seconds of each
    // more while a leave or a reap is under way; without reaping it would end at 10^4.
    let bound = per_sec * (stay_ms + tombstone_ms + 8_000) / 1_000;
    assert!(
        largest < bound as usize,
        "a seed held {largest} entries (bound {bound})"
    );
    assert!(largest > 2_000, "{largest}: the churn did not happen");
    let reaped = sim
        .node(NodeRef::Seed(0))
        .map(|n| n.status().counters)
        .and_then(|c| c.into_iter().find(|(k, _)| k == "entries_reaped"))
        .map_or(0, |(_, v)| v);
    assert!(reaped > 8_000, "seed 0 reaped only {reaped} entries");
}

/// Sybils that claim a huge degree, take every link offered, ack every gossip and pass
/// nothing on (and refuse the repair, as a node of the original would) win every link by
/// preferential attachment: before the defences, 20 % of them left the honest peers 0.16 %
/// of the deliveries owed (1,000 peers). Now every honest peer still gets every honest
/// peer's gossip, in both modes, with 20 % and with 50 % Sybils: the repair asks admitted
/// strangers too, and neighbours that pass nothing on while gossip flows are replaced.
#[test]
fn sybils_claiming_a_huge_degree_starve_no_honest_peer() {
    for mode in [GossipMode::Flood, GossipMode::Lazy] {
        for share in [0.2, 0.5] {
            let mut c = SimConfig::new(5, 3, 300);
            c.settings.max_gossip = 3;
            c.settings.gossip_mode = mode;
            c.sybils = Some(Sybils::share(300, share, SybilAttack::Degree));
            let mut sim: Sim = Sim::new(c).unwrap();
            let r = sim.run();
            let what = format!("{mode} with {share} Sybils");
            assert_eq!(r.invariant_violations, 0, "{what}: {}", r.human());
            assert_eq!(r.sybils, (300.0 * share) as u32, "{what}");
            assert_eq!(r.honest_delivered_ratio, Some(1.0), "{what}: {}", r.human());
            assert!(r.owed > 0, "{what}: {}", r.human());
        }
    }
}
