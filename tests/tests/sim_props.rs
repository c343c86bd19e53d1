//! Property tests: generated fault schedules over 3–7 seeds and 5–50 peers, run in the
//! simulator with the real seed and peer state machines; proptest shrinks a failure to a
//! minimal schedule (committed in `proptest-regressions/`).
//!
//! * `safety_holds_under_any_fault_schedule`: promises 1–4 and 8–9 after every event,
//!   whatever the faults (drops, duplicates, jitter, partitions of all kinds, crashes and
//!   restarts of peers and of a minority of seeds, lying reports, a forger's forged commits,
//!   syncs, solicited votes and registrations, and a minority of lying seeds), and no forged
//!   fact ever changes an honest seed's Peer List; graceful leaves (and restarts after them),
//!   and replays of every genuine commit sync so far.
//! * `liveness_after_healing`: the same schedules, then promises 5–7 within the bound after
//!   the faults stop (among the honest seeds if the lying seeds keep lying).
//!
//! Every peer also publishes an application message every 10 s: promises 3 and 5 cover them
//! as they cover the spec's gossip.
//!
//! Half the schedules (odd seeds) run the peers in lazy-push mode, half in flood mode
//! (`SIM_MODE=lazy` or `SIM_MODE=flood`: all of them).
//!
//! `SIM_SEED=random` explores new schedules (CI runs a fixed set).
//! `SIM_LOG=1` prints every node event (replay a saved failure with it).
//! `SIM_CASES=n` sets the number of cases of each property (default 32 for safety and 16 for
//! liveness, about a minute together in release mode).

use gossip_driver_sim::schedule::{Gen, Schedule, WINDOW_MS};
use gossip_driver_sim::Sim;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

/// The generator's seed: fixed by default so CI runs the same schedules every time;
/// `SIM_SEED=random` explores new ones, `SIM_SEED=n` picks another fixed set.
fn rng_seed() -> RngSeed {
    match std::env::var("SIM_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => n.parse().map_or(RngSeed::Random, RngSeed::Fixed),
        None => RngSeed::Fixed(20_261_125),
    }
}

fn cases(default: u32) -> u32 {
    std::env::var("SIM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn gen_fault() -> impl Strategy<Value = Gen> {
    let at = 0..WINDOW_MS;
    let len = 500u64..15_000;
    prop_oneof![
        3 => (any::<u32>(), at.clone(), prop::option::of(500u64..10_000))
            .prop_map(|(peer, at, restart_after)| Gen::CrashPeer { peer, at, restart_after }),
        1 => (any::<u32>(), at.clone(), prop::option::of(500u64..10_000))
            .prop_map(|(seed, at, restart_after)| Gen::CrashSeed { seed, at, restart_after }),
        2 => (0u8..3, 0.05f64..0.6, any::<u64>(), at.clone(), len.clone())
            .prop_map(|(kind, fraction, salt, at, len)| Gen::Partition { kind, fraction, salt, at, len }),
        1 => (0.01f64..0.3, at.clone(), len.clone()).prop_map(|(rate, at, len)| Gen::Drop { rate, at, len }),
        1 => (0.01f64..0.5, at.clone(), len.clone()).prop_map(|(rate, at, len)| Gen::Dup { rate, at, len }),
        1 => (1u64..400, at.clone(), len.clone()).prop_map(|(ms, at, len)| Gen::Jitter { ms, at, len }),
        1 => (any::<u32>(), any::<u32>(), at.clone()).prop_map(|(peer, seed, at)| Gen::Lie { peer, seed, at }),
        2 => (any::<u8>(), any::<u32>(), any::<u32>(), at.clone())
            .prop_map(|(kind, peer, seed, at)| Gen::Forge { kind, peer, seed, at }),
        1 => (any::<u32>(), at.clone()).prop_map(|(seed, at)| Gen::Replay { seed, at }),
        1 => (any::<u32>(), at, prop::option::of(500u64..10_000))
            .prop_map(|(peer, at, restart_after)| Gen::Leave { peer, at, restart_after }),
    ]
}

/// Whether a schedule runs the peers in lazy mode: by the seed's lowest bit, or all of them
/// in one mode with `SIM_MODE=lazy` or `SIM_MODE=flood`.
fn lazy_mode(seed: u64) -> bool {
    match std::env::var("SIM_MODE").ok().as_deref() {
        Some("lazy") => true,
        Some("flood") => false,
        _ => seed & 1 == 1,
    }
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        any::<u64>(),
        3u32..=7,
        5u32..=50,
        prop::collection::vec(gen_fault(), 0..8),
        prop_oneof![2 => Just(0u32), 1 => 1u32..=3],
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(seed, seeds, peers, faults, liars, first_liar, keep_lying)| Schedule {
                seed,
                seeds,
                peers,
                faults,
                liars,
                first_liar,
                keep_lying,
                lazy: lazy_mode(seed),
            },
        )
}

fn run(s: &Schedule, liveness: bool) -> Result<(), TestCaseError> {
    let c = s.config(liveness);
    let mut sim: Sim = Sim::new(c).map_err(TestCaseError::fail)?;
    // SIM_LOG=1 prints every node event of the run (use with a saved failing case).
    sim.set_log(std::env::var_os("SIM_LOG").is_some());
    let report = sim.run();
    if report.invariant_violations > 0 || report.forged_changes > 0 {
        return Err(TestCaseError::fail(format!(
            "{} promise(s) broken; replay this schedule (seed {}):\n{}",
            report.invariant_violations,
            s.seed,
            report.human()
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: cases(32),
        max_shrink_iters: 200,
        rng_seed: rng_seed(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/sim_props.txt"))),
        ..Config::default()
    })]

    #[test]
    fn safety_holds_under_any_fault_schedule(s in schedule()) {
        run(&s, false)?;
    }
}

proptest! {
    #![proptest_config(Config {
        cases: cases(16),
        max_shrink_iters: 200,
        rng_seed: rng_seed(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/sim_props.txt"))),
        ..Config::default()
    })]

    #[test]
    fn liveness_after_healing(s in schedule()) {
        run(&s, true)?;
    }
}

/// Found by `liveness_after_healing` (the shrunk schedule): a peer crashes as a 4.3 s
/// partition starts; its detectors' `DEAD_REPORT` rounds abort while the partition lasts.
/// Detectors that sent their report once and gave up left it Alive in the Peer List forever
/// (promise 6); fixed by "peer: follow a dead report until a seed commits it".
#[test]
fn found_crash_during_a_partition_is_removed_after_healing() {
    let s = Schedule {
        seed: 2720672543238271742,
        seeds: 3,
        peers: 17,
        faults: vec![
            Gen::CrashPeer {
                peer: 2138086409,
                at: 0,
                restart_after: None,
            },
            Gen::Partition {
                kind: 0,
                fraction: 0.33396661737749483,
                salt: 9283962204110853942,
                at: 0,
                len: 4326,
            },
        ],
        liars: 0,
        first_liar: 0,
        keep_lying: false,
        lazy: false,
    };
    if let Err(e) = run(&s, true) {
        panic!("{e}");
    }
}

/// Found by `liveness_after_healing` with lying seeds (the shrunk schedule): two of five
/// seeds lie; a peer cut off by a partition is removed with a lying seed's yes in the
/// certificate (promise 4 allows it: its links lost messages). After healing the lying seed
/// cannot vouch for that yes, so the removal never spreads by confirmation, and fresh rounds
/// refute it while the peer answers: two seeds listed the peer removed, three alive, until it
/// happened to ask one of the two for its Peer List (promise 7). Fixed in the seed: one that
/// holds a peer alive and heard of its removal at that incarnation tells the peer, which
/// registers one above.
#[test]
fn found_a_removal_a_lying_seed_voted_for_reaches_the_peer() {
    let s = Schedule {
        seed: 11528994261594464245,
        seeds: 5,
        peers: 18,
        faults: vec![
            Gen::Partition {
                kind: 2,
                fraction: 0.42802733641096324,
                salt: 15571656894166679172,
                at: 26281,
                len: 4716,
            },
            Gen::CrashSeed {
                seed: 39845552,
                at: 19407,
                restart_after: None,
            },
            Gen::CrashSeed {
                seed: 3650685563,
                at: 26190,
                restart_after: None,
            },
        ],
        liars: 2,
        first_liar: 1577541771,
        keep_lying: false,
        lazy: false,
    };
    if let Err(e) = run(&s, true) {
        panic!("{e}");
    }
}

/// Found by `safety_holds_under_any_fault_schedule` with lying seeds (the shrunk schedule):
/// on a lying seed's word (a forged entry admitting a peer that had not started yet) an
/// honest seed probed that peer, silent, and voted in its own round to remove it one above
/// the incarnation it was about to get; the peer then started, answered that seed's probe and
/// was admitted; the two lying seeds' yes-votes came in late and completed the round, which
/// removed a live peer (promise 4). Fixed in the seed: a peer answering its probe takes back
/// its earlier yes to remove it.
#[test]
fn found_a_removal_yes_is_taken_back_when_the_peer_answers() {
    let s = Schedule {
        seed: 13470022490119929288,
        seeds: 5,
        peers: 30,
        faults: vec![],
        liars: 2,
        first_liar: 571724861,
        keep_lying: false,
        lazy: false,
    };
    if let Err(e) = run(&s, false) {
        panic!("{e}");
    }
}

/// Found by `liveness_after_healing` with fresh random schedules (the shrunk schedule): three
/// peers cut off by a 14.5 s partition form an island, and both sides drop every link across
/// it as dead. Lost links were greeted again only at each Peer List refresh (every 10 s), so
/// the island rejoined the overlay 6 s after healing; gossip made early in the partition was
/// then 20 s old, out of the repair window, before lazy push's announcements had carried it
/// to every peer (four copies lost; flood mode, on its own trajectory, was lucky). Fixed in
/// the peer: a lost neighbour is greeted one probe interval after the drop, then after an
/// eighth of the time since, so the island rejoined 0.2 s after healing. Run in both modes.
#[test]
fn found_gossip_made_in_a_partition_reaches_the_other_side_in_time() {
    for lazy in [true, false] {
        let s = partition_island(lazy);
        if let Err(e) = run(&s, true) {
            panic!("lazy {lazy}: {e}");
        }
    }
}

fn partition_island(lazy: bool) -> Schedule {
    Schedule {
        seed: 11208061945656182617,
        seeds: 4,
        peers: 32,
        faults: vec![
            Gen::Partition {
                kind: 1,
                fraction: 0.21259042931148744,
                salt: 17434162871520634716,
                at: 9352,
                len: 13179,
            },
            Gen::Partition {
                kind: 0,
                fraction: 0.05,
                salt: 220788373942136568,
                at: 28620,
                len: 14452,
            },
            Gen::CrashPeer {
                peer: 2090313407,
                at: 1033,
                restart_after: None,
            },
            Gen::Jitter {
                ms: 225,
                at: 8979,
                len: 13211,
            },
            Gen::Forge {
                kind: 206,
                peer: 3988254089,
                seed: 4085861536,
                at: 12642,
            },
        ],
        liars: 0,
        first_liar: 1457228730,
        keep_lying: true,
        lazy,
    }
}

/// Found by `liveness_after_healing` in a random sweep of `1a72883` (2,092 schedules passed
/// before it): a peer restarts, links to neighbours before its registration completes (so
/// they know it at incarnation 0), registers at 2 and crashes again; its detectors' reports
/// named the incarnation of their first accusation (0 or 1), every seed refused them as stale
/// at every retry, and one seed listed it alive past the bound (promise 6). Fixed: a report
/// names the highest incarnation heard of since. Today's peers take another trajectory here
/// (they publish application messages), so the rule is pinned by the core's
/// `a_report_sent_again_names_the_incarnation_heard_of_since`; this schedule stays as a case.
#[test]
fn found_crash_near_a_bridge_partition_is_removed_at_every_seed() {
    let s = Schedule {
        seed: 3137936838302311028,
        seeds: 5,
        peers: 19,
        faults: vec![
            Gen::CrashPeer {
                peer: 1839617328,
                at: 25042,
                restart_after: None,
            },
            Gen::CrashPeer {
                peer: 4117783885,
                at: 12176,
                restart_after: Some(3912),
            },
            Gen::Partition {
                kind: 2,
                fraction: 0.5024746153206845,
                salt: 5185559126791300422,
                at: 16112,
                len: 8023,
            },
        ],
        liars: 0,
        first_liar: 2576392652,
        keep_lying: false,
        lazy: false,
    };
    if let Err(e) = run(&s, true) {
        panic!("{e}");
    }
}
