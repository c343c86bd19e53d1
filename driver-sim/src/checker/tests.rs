//! The checker's own tests: each promise fed by hand-made events (votes, entries, witness
//! answers, gossip), held and violated, without a simulator.

use std::sync::Arc;

use super::*;
use gossip_core::event::ChangeSource;
use gossip_core::event::ProposalKind;
use gossip_core::msg::Entry;

/// A checker of 3 seeds and 4 peers, `liars` among the seeds, every node started.
fn with_liars(liars: &[u32]) -> (Checker, Addrs) {
    let a = Addrs { seeds: 3, peers: 4 };
    let mut cfg = SimConfig::new(1, a.seeds, a.peers);
    cfg.lying_seeds = liars.to_vec();
    let mut c = Checker::new(&cfg);
    for n in 0..a.nodes() {
        c.started(0, n);
    }
    (c, a)
}

fn setup() -> (Checker, Addrs) {
    with_liars(&[])
}

#[test]
fn degrees_follow_neighbour_events_crashes_and_restarts() {
    let (mut c, a) = setup();
    let (p, q, r) = (3, 4, 5);
    let link = |c: &mut Checker, from: u32, to: u32, up: bool| {
        let peer = a.endpoint(to);
        let ev = if up {
            Event::NeighbourAdded {
                peer,
                their_degree: 0,
            }
        } else {
            Event::NeighbourDropped {
                peer,
                reason: "test",
            }
        };
        c.on_event(1, from, &ev);
    };
    link(&mut c, p, q, true);
    link(&mut c, p, r, true);
    link(&mut c, p, r, true); // already a neighbour
    assert_eq!(c.degree(0), 2);
    link(&mut c, p, q, false);
    assert_eq!(c.degree(0), 1);
    c.crashed(2, p);
    assert_eq!(c.degree(0), 0, "a crashed peer keeps no links");
    link(&mut c, p, q, true);
    c.started(0, p);
    assert_eq!(c.degree(0), 0, "a restarted peer starts with no links");
    for j in 0..a.peers as usize {
        assert_eq!(c.degree(j), c.peers()[j].adj.len(), "peer {j}");
    }
}

fn vote(c: &mut Checker, a: &Addrs, voter: u32, peer: u32, inc: u64, kind: ProposalKind) {
    c.on_event(
        1,
        voter,
        &Event::VoteCast {
            kind,
            proposal_id: "p".into(),
            peer: a.endpoint(peer),
            incarnation: inc,
            yes: true,
            proposer: a.endpoint(0),
        },
    );
}

fn change(c: &mut Checker, a: &Addrs, seed: u32, peer: u32, inc: u64, st: Status, votes: &[u32]) {
    change_at(2, c, a, seed, (peer, inc, st), votes);
}

fn change_at(
    now: u64,
    c: &mut Checker,
    a: &Addrs,
    seed: u32,
    (peer, inc, st): (u32, u64, Status),
    votes: &[u32],
) {
    c.on_event(
        now,
        seed,
        &Event::EntryChanged {
            entry: Entry {
                peer: a.endpoint(peer),
                incarnation: inc,
                status: st,
                votes: votes.iter().map(|&v| a.endpoint(v)).collect(),
            },
            via: ChangeSource::LocalCommit,
        },
    );
}

#[test]
fn certificates_need_real_votes_for_exactly_that_change() {
    let (mut c, a) = setup();
    vote(&mut c, &a, 0, 3, 1, ProposalKind::Register);
    vote(&mut c, &a, 1, 3, 1, ProposalKind::Register);
    change(&mut c, &a, 0, 3, 1, Status::Alive, &[0, 1]);
    assert_eq!(c.violation_count(), 0);
    // A removal backed by register votes: broken (peer 3 lost messages, so only 1).
    c.link_lost(1, 3, 0);
    change(&mut c, &a, 1, 3, 1, Status::Removed, &[0, 1]);
    assert_eq!(c.violation_count(), 1);
    // One voter listed twice is not a quorum.
    vote(&mut c, &a, 2, 4, 1, ProposalKind::Register);
    change(&mut c, &a, 2, 4, 1, Status::Alive, &[2, 2]);
    assert_eq!(c.violation_count(), 2);
    // Going down is broken even with a good certificate.
    vote(&mut c, &a, 0, 3, 0, ProposalKind::Register);
    vote(&mut c, &a, 2, 3, 0, ProposalKind::Register);
    change(&mut c, &a, 0, 3, 0, Status::Alive, &[0, 2]);
    assert_eq!(c.violation_count(), 3);
    assert!(c.violations().iter().all(|v| v.promise == 1));
}

#[test]
fn dead_report_needs_a_real_verdict() {
    let (mut c, a) = setup();
    let (det, wit, sus) = (3, 4, 5);
    let report = Message::DeadReport(Box::new(gossip_core::msg::DeadReport {
        dead: a.endpoint(sus),
        self_ip: a.endpoint(det).ip(),
        timestamp: 0,
        reporter: a.endpoint(det),
        text: None,
        incarnation: None,
        witnesses: vec![],
    }));
    c.on_send(det, &report);
    c.end_step(1);
    assert_eq!(c.violation_count(), 1, "no verdict at all");
    let verdict = Event::SuspicionVerdict {
        suspect: a.endpoint(sus),
        dead_votes: 2,
        alive_votes: 0,
        dead_witnesses: vec![a.endpoint(wit)],
        consensus: true,
    };
    c.on_event(2, det, &verdict);
    assert_eq!(c.violation_count(), 2, "the witness never said dead");
    c.on_send(det, &report);
    c.end_step(3);
    assert_eq!(c.violation_count(), 3);
    c.on_event(
        4,
        wit,
        &Event::SuspectAnswered {
            suspect: a.endpoint(sus),
            requester: a.endpoint(det),
            alive: false,
        },
    );
    c.on_event(5, det, &verdict);
    c.on_send(det, &report);
    c.end_step(6);
    assert_eq!(c.violation_count(), 3, "a real verdict allows the report");
    // A restart forgets the verdict.
    c.crashed(7, det);
    c.started(0, det);
    c.on_send(det, &report);
    c.end_step(8);
    assert_eq!(c.violation_count(), 4);
}

#[test]
fn gossip_once_per_instance_and_only_if_generated() {
    let (mut c, a) = setup();
    let t: Arc<str> = Arc::from("1767225600:127.1.0.0:1");
    let recv = |c: &mut Checker, n: u32| {
        c.on_event(
            1,
            n,
            &Event::GossipFirstReceived {
                text: Arc::from(&*t),
                from: a.endpoint(3),
                hops: 1,
                repaired: false,
            },
        )
    };
    recv(&mut c, 4);
    assert_eq!(c.violation_count(), 1, "never generated");
    c.on_event(
        0,
        3,
        &Event::GossipGenerated {
            text: t.clone(),
            msg_no: 1,
        },
    );
    recv(&mut c, 4);
    assert_eq!(c.violation_count(), 1);
    recv(&mut c, 4);
    assert_eq!(c.violation_count(), 2, "twice");
    c.crashed(3, 4);
    c.started(3, 4);
    recv(&mut c, 4);
    assert_eq!(
        c.violation_count(),
        2,
        "a new instance may receive it again"
    );
    assert_eq!(c.ghost.first_deliveries, 2);
}

#[test]
fn removing_a_clean_live_peer_is_a_violation_but_not_a_crashed_or_lossy_one() {
    let (mut c, a) = setup();
    for p in 3..6 {
        vote(&mut c, &a, 0, p, 1, ProposalKind::Register);
        vote(&mut c, &a, 1, p, 1, ProposalKind::Register);
        change(&mut c, &a, 0, p, 1, Status::Alive, &[0, 1]);
    }
    for s in 0..2 {
        vote(&mut c, &a, s, 3, 1, ProposalKind::Removal);
        vote(&mut c, &a, s, 4, 1, ProposalKind::Removal);
        vote(&mut c, &a, s, 5, 1, ProposalKind::Removal);
    }
    change(&mut c, &a, 0, 3, 1, Status::Removed, &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (1, 1));
    c.link_lost(1, 4, 0);
    change(&mut c, &a, 0, 4, 1, Status::Removed, &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (1, 2));
    c.crashed(10, 5);
    change(&mut c, &a, 0, 5, 1, Status::Removed, &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (1, 2));
    assert_eq!(c.violations()[0].promise, 4);
}

#[test]
fn a_loss_excuses_a_removal_only_within_its_window() {
    let (mut c, a) = setup();
    let window = SimConfig::new(1, a.seeds, a.peers).loss_window_ms();
    for p in [3, 4] {
        vote(&mut c, &a, 0, p, 1, ProposalKind::Register);
        vote(&mut c, &a, 1, p, 1, ProposalKind::Register);
        change(&mut c, &a, 0, p, 1, Status::Alive, &[0, 1]);
        for s in 0..2 {
            vote(&mut c, &a, s, p, 1, ProposalKind::Removal);
        }
    }
    c.link_lost(10, 3, 0);
    c.link_lost(10, 4, 0);
    change_at(10 + window, &mut c, &a, 0, (3, 1, Status::Removed), &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (0, 1));
    change_at(11 + window, &mut c, &a, 0, (4, 1, Status::Removed), &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (1, 2));
    let v = &c.violations()[0];
    assert_eq!(v.promise, 4);
    assert!(
        v.what.contains(&format!(
            "last loss on its links was {} ms before",
            window + 1
        )),
        "{}",
        v.what
    );
}

#[test]
fn promise_4_counts_the_peers_and_the_time_it_guarded() {
    let (mut c, a) = setup(); // every node up at 0
    let window = SimConfig::new(1, a.seeds, a.peers).loss_window_ms();
    let end = 100 + window + 1_000;
    c.link_lost(100, 3, 0); // peer 0: guarded 0..100 and from 100 + window on
    c.crashed(500, 4); // peer 1: guarded until its crash, never after its restart
    c.started(600, 4);
    c.link_lost(50, 5, 6); // peers 2 and 3: guarded 0..50; a second loss inside the
    c.link_lost(40 + window, 5, 6); // window starts another, which runs past the end
    let m = c.measure(end, 2);
    assert_eq!(m.promise4_peers, 4, "every peer was guarded for some time");
    let up = 4 * end - 100; // peer 1 was down 500..600
    let guarded = (100 + 1_000) + 500 + 2 * 50;
    assert!(
        (m.promise4_share - guarded as f64 / up as f64).abs() < 1e-9,
        "{} vs {guarded}/{up}",
        m.promise4_share
    );
    c.excuse(3);
    let m = c.measure(end, 2);
    assert_eq!(m.promise4_peers, 3, "an excused peer is never guarded");
}

#[test]
fn a_peer_no_seed_listed_is_no_member_to_remove() {
    let (mut c, a) = setup();
    vote(&mut c, &a, 0, 3, 1, ProposalKind::Removal);
    vote(&mut c, &a, 1, 3, 1, ProposalKind::Removal);
    change(&mut c, &a, 0, 3, 1, Status::Removed, &[0, 1]);
    assert_eq!((c.violation_count(), c.false_removals()), (0, 0));
}

#[test]
fn a_liars_name_counts_but_honest_voters_must_have_voted() {
    let (mut c, a) = with_liars(&[2]); // 3 seeds, quorum 2
    vote(&mut c, &a, 0, 3, 1, ProposalKind::Register);
    change(&mut c, &a, 0, 3, 1, Status::Alive, &[0, 2]);
    assert_eq!(c.violation_count(), 0, "{:?}", c.violations());
    // An honest seed named that never voted is still a violation.
    change(&mut c, &a, 1, 4, 1, Status::Alive, &[1, 2]);
    assert_eq!(c.violation_count(), 1);
    // The liar's own list is not checked.
    change(&mut c, &a, 2, 5, 1, Status::Alive, &[1, 2]);
    assert_eq!(c.violation_count(), 1);
    assert!(c.violations().iter().all(|v| v.promise == 1));
}

#[test]
fn admissions_need_a_peer_that_answered_and_no_incarnation_jump() {
    let (mut c, a) = setup();
    let votes = |c: &mut Checker, p: u32, inc: u64, kind: ProposalKind| {
        vote(c, &a, 0, p, inc, kind);
        vote(c, &a, 1, p, inc, kind);
    };
    // Endpoints nothing listens at (a stranger, a peer that never started) are promise 8.
    let nowhere: Endpoint = "127.0.1.1:7000".parse().unwrap();
    for inc in [1, 2] {
        c.on_event(
            1,
            0,
            &Event::VoteCast {
                kind: ProposalKind::Register,
                proposal_id: "p".into(),
                peer: nowhere,
                incarnation: inc,
                yes: true,
                proposer: a.endpoint(0),
            },
        );
    }
    c.on_event(
        2,
        0,
        &Event::EntryChanged {
            entry: Entry {
                peer: nowhere,
                incarnation: 1,
                status: Status::Alive,
                votes: vec![a.endpoint(0)],
            },
            via: ChangeSource::LocalCommit,
        },
    );
    assert_eq!(c.violations().last().map(|v| v.promise), Some(8));
    let n = c.violation_count();
    // Peer 3 (node 3) asked for 1: 2 is one step above, 4 a jump.
    c.on_send(
        3,
        &Message::RegisterReq(Box::new(gossip_core::msg::RegisterReq {
            peer: a.endpoint(3),
            incarnation: Some(1),
        })),
    );
    votes(&mut c, 3, 2, ProposalKind::Register);
    change(&mut c, &a, 0, 3, 2, Status::Alive, &[0, 1]);
    assert_eq!(c.violation_count(), n);
    votes(&mut c, 3, 4, ProposalKind::Register);
    change(&mut c, &a, 1, 3, 4, Status::Alive, &[0, 1]);
    assert_eq!(c.violation_count(), n + 1);
    assert_eq!(c.violations().last().map(|v| v.promise), Some(9));
    // A removal far above anything held (a peer pushed towards MAX_INCARNATION) is one too.
    c.crashed(5, 4);
    votes(&mut c, 4, 1_000, ProposalKind::Removal);
    change(&mut c, &a, 2, 4, 1_000, Status::Removed, &[0, 1]);
    assert_eq!(c.violations().last().map(|v| v.promise), Some(9));
    // A forged fact applied while false is counted.
    c.forged(a.endpoint(5), 7, Status::Alive);
    votes(&mut c, 5, 7, ProposalKind::Register);
    change(&mut c, &a, 0, 5, 7, Status::Alive, &[0, 1]);
    assert_eq!(c.forged_changes(), 1);
}
