//! The seed state machine, driven through its public interface on the test network
//! (`support/net.rs`): real seeds, fake peers that answer `PING` until killed, lost links,
//! crashes and empty restarts.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;

use gossip_core::event::{ChangeSource, ProposalKind};
use gossip_core::msg::{
    CommitSync, DeadReport, Decision, PeerListResp, RegisterReq, RoleStatus, SeedSync, Status,
    VoteReq, VoteResp,
};
use gossip_core::wire::DecodeError;
use gossip_core::{
    ConnId, Endpoint, Event, Input, Message, Millis, NodeInit, Output, Seed, Settings,
};

#[path = "support/net.rs"]
mod net;

use net::{counter, peer_ep, seed_ep, Net};

fn report(dead: Endpoint, incarnation: Option<u64>) -> Message {
    Message::DeadReport(Box::new(DeadReport {
        dead,
        self_ip: peer_ep(99).ip(),
        timestamp: 0,
        reporter: peer_ep(99),
        text: None,
        incarnation,
        witnesses: Vec::new(),
    }))
}

fn commit(kind: ProposalKind, peer: Endpoint, inc: Option<u64>, votes: Vec<Endpoint>) -> Message {
    let sync = CommitSync {
        proposal_id: "x#1".into(),
        decision: Decision::Commit,
        peer,
        source_seed: seed_ep(0),
        incarnation: inc,
        votes,
    };
    match kind {
        ProposalKind::Register => Message::RegisterCommit(Box::new(sync)),
        ProposalKind::Removal => Message::DeadCommit(Box::new(sync)),
        ProposalKind::Leave => Message::LeaveCommit(Box::new(sync)),
    }
}

#[test]
fn registration_commits_at_every_seed_with_a_quorum_certificate() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    let conn = net.register(0, p, None);
    let r = net.register_result(conn);
    assert!(r.success, "{r:?}");
    assert_eq!((r.incarnation, r.quorum), (Some(1), 2));
    assert!(r.yes_votes >= 2);
    for i in 0..3 {
        let e = net.entries(i);
        assert_eq!(e.len(), 1, "seed {i}");
        assert_eq!(
            (e[0].peer, e[0].incarnation, e[0].status),
            (p, 1, Status::Alive)
        );
        let distinct: BTreeSet<_> = e[0].votes.iter().collect();
        assert!(distinct.len() >= 2 && distinct.len() == e[0].votes.len());
    }
    net.assert_certificates_real();
    let via_sync = net.count(|e| {
        matches!(
            e,
            Event::EntryChanged {
                via: ChangeSource::CommitSync,
                ..
            }
        )
    });
    assert_eq!(via_sync, 2);
}

#[test]
fn registering_again_is_answered_at_once() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, None);
    let proposals = net.count(|e| matches!(e, Event::Proposed { .. }));
    for i in 0..3 {
        let r = net.register_now(i, p, None);
        assert!(r.success && r.proposal_id.is_empty(), "{r:?}");
        assert_eq!(r.incarnation, Some(1));
    }
    assert_eq!(
        net.count(|e| matches!(e, Event::Proposed { .. })),
        proposals
    );
    // a hint above the known incarnation is a new admission
    let r = net.register_now(1, p, Some(3));
    assert_eq!((r.success, r.incarnation), (true, Some(3)));
    assert_eq!(net.rank(2, p), Some((3, Status::Alive)));
}

#[test]
fn silent_seeds_abort_the_round_at_its_deadline() {
    let settings = Settings {
        request_timeout_ms: 1_500,
        ..Settings::default()
    };
    let mut net = Net::new(3, settings);
    net.cut.insert((seed_ep(0), seed_ep(1)));
    net.cut.insert((seed_ep(0), seed_ep(2)));
    let conn = net.register(0, peer_ep(1), None);
    assert!(net.reply(conn).is_none(), "no quorum yet: the answer waits");
    net.advance(net.settings.vote_timeout_ms);
    let r = net.register_result(conn);
    assert!(!r.success);
    assert_eq!(r.error.as_deref(), Some("deadline"));
    assert!(net.entries(0).is_empty() && net.entries(1).is_empty());
    let status = net.status(0);
    assert!(matches!(status.map(|s| s.role), Some(RoleStatus::Seed(s)) if s.pending == 0));
}

#[test]
fn unreachable_seeds_abort_the_round_at_once() {
    let mut net = Net::new(3, Settings::default());
    net.crash(1);
    net.crash(2);
    let r = net.register_now(0, peer_ep(1), None);
    assert!(!r.success);
    assert_eq!(r.error.as_deref(), Some("seeds unreachable"));
    assert!(net.entries(0).is_empty());
}

#[test]
fn removal_nobody_else_can_confirm_loses_its_quorum_until_they_catch_up() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    // only seed 0 learns of p: its commits are lost
    net.mute(0, "REGISTER_COMMIT");
    net.register(0, p, None);
    net.kill(p);
    assert!(!net.report_now(0, report(p, None)));
    assert_eq!(
        net.count(|e| matches!(
            e,
            Event::Decided {
                reason: "quorum lost",
                decision: Decision::Abort,
                ..
            }
        )),
        1
    );
    assert_eq!(net.rank(0, p), Some((1, Status::Alive)));
    // Anti-entropy brings the admission to the others (its voters vouch for it); then the
    // removal has its quorum.
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    assert_eq!(net.rank(1, p), Some((1, Status::Alive)));
    assert!(net.report_now(0, report(p, None)));
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Removed)), "seed {i}");
    }
    net.assert_certificates_real();
}

#[test]
fn a_dead_peer_only_a_minority_still_lists_is_removed_after_a_majority_restarts() {
    // 3 seeds: two crash and restart empty. The one left lists a peer that died meanwhile;
    // nobody can vouch for its admission any more, so the others cannot learn it, but they
    // hear of it and, probing it themselves, agree to remove it.
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    let q = peer_ep(2);
    assert!(net.register_now(0, p, None).success);
    assert!(net.register_now(1, q, Some(3)).success);
    net.kill(p);
    for i in [0, 1] {
        net.crash(i);
        net.restart_empty(i);
    }
    net.advance(20 * net.settings.anti_entropy_interval_ms);
    for i in 0..3 {
        assert_eq!(
            net.ranks(i),
            vec![(p, 1, Status::Removed), (q, 3, Status::Alive)],
            "seed {i}"
        );
    }
    net.assert_certificates_real();
}

#[test]
fn registration_retries_above_an_incarnation_a_voter_knows() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    // Seeds 1 and 2 admit and remove p while seed 0 hears nothing.
    net.isolate(0);
    assert!(net.register_now(1, p, None).success);
    net.kill(p);
    assert!(net.report_now(1, report(p, None)));
    net.revive_all();
    net.cut.clear();
    let r = net.register_now(0, p, None);
    assert_eq!((r.success, r.incarnation), (true, Some(2)), "{r:?}");
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((2, Status::Alive)));
    }
    net.assert_certificates_real();
}

#[test]
fn a_crashed_proposer_blocks_nobody_and_anti_entropy_converges() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.mute(0, "REGISTER_COMMIT");
    assert!(net.register_now(0, p, None).success);
    assert_eq!(net.rank(1, p), None, "the commits were lost");
    net.crash(0);
    let r = net.register_now(1, p, None);
    assert_eq!((r.success, r.incarnation), (true, Some(1)));
    net.restart_empty(0);
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    for i in 0..3 {
        assert_eq!(net.ranks(i), vec![(p, 1, Status::Alive)], "seed {i}");
    }
    net.assert_certificates_real();
}

#[test]
fn a_seed_restarted_empty_catches_up_through_seed_sync() {
    // Replies carry 5 entries at most: catching up on 20 takes several rounds.
    let settings = Settings {
        sync_entry_limit: 5,
        ..Settings::default()
    };
    let mut net = Net::new(3, settings);
    for k in 0..20 {
        net.register(k % 3, peer_ep(k), None);
    }
    net.kill(peer_ep(3));
    assert!(net.report_now(1, report(peer_ep(3), None)));
    net.crash(2);
    net.restart_empty(2);
    let restarted = net.events.len();
    assert!(net.entries(2).is_empty());
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    assert_eq!(net.ranks(2), net.ranks(0));
    assert_eq!(net.ranks(2).len(), 20);
    assert_eq!(net.rank(2, peer_ep(3)), Some((1, Status::Removed)));
    // Each entry arrived once: confirmed by the seeds that hold it, or, where the
    // certificate named seed 2 itself (which forgot its votes), certified again by a round
    // in which the others vouched and seed 2 probed the peer anew.
    let since = &net.events[restarted..];
    let at_2 = |pred: fn(&Event) -> bool| {
        (since.iter())
            .filter(|(who, e)| *who == seed_ep(2) && pred(e))
            .count()
    };
    assert_eq!(at_2(|e| matches!(e, Event::EntryChanged { .. })), 20);
    let recertified = at_2(|e| {
        matches!(
            e,
            Event::Decided {
                reason: "re-certified",
                ..
            }
        )
    });
    assert!(
        recertified > 0 && recertified < 20,
        "{recertified} re-certified"
    );
    net.assert_certificates_real();
}

#[test]
fn stale_commits_change_nothing() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, Some(2));
    let before = net.entries(1);
    let cert = vec![seed_ep(0), seed_ep(2)];
    for msg in [
        commit(ProposalKind::Register, p, Some(1), cert.clone()),
        commit(ProposalKind::Removal, p, Some(1), cert.clone()),
        commit(ProposalKind::Register, p, Some(2), cert.clone()),
    ] {
        let conn = net.request(1, msg);
        assert!(matches!(
            net.reply(conn),
            Some(Message::RegisterCommitAck | Message::DeadCommitAck)
        ));
    }
    assert_eq!(net.entries(1), before);
}

#[test]
fn commits_without_a_valid_certificate_are_refused() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    let stranger = peer_ep(50);
    for (inc, votes) in [
        (Some(1), vec![]),
        (Some(1), vec![seed_ep(0)]),
        (Some(1), vec![seed_ep(0), seed_ep(0)]),
        (Some(1), vec![seed_ep(0), stranger]),
        (None, vec![seed_ep(0), seed_ep(1)]),
    ] {
        for kind in [ProposalKind::Register, ProposalKind::Removal] {
            let conn = net.request(1, commit(kind, p, inc, votes.clone()));
            assert!(
                matches!(net.reply(conn), Some(Message::Error { .. })),
                "{votes:?}"
            );
        }
    }
    assert!(net.entries(1).is_empty());
    assert_eq!(net.count(|e| matches!(e, Event::BadInput { .. })), 10);
    assert_eq!(net.count(|e| matches!(e, Event::EntryChanged { .. })), 0);
}

#[test]
fn a_late_duplicate_report_aborts_without_change() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, None);
    net.kill(p);
    assert!(net.report_now(0, report(p, Some(1))));
    let changes = net.count(|e| matches!(e, Event::EntryChanged { .. }));
    for (i, inc) in [(0, Some(1)), (1, None), (2, Some(1))] {
        assert!(!net.report_now(i, report(p, inc)));
    }
    assert!(!net.report_now(0, report(peer_ep(2), None)));
    assert_eq!(
        net.count(|e| matches!(e, Event::EntryChanged { .. })),
        changes
    );
    assert_eq!(
        net.count(|e| matches!(
            e,
            Event::Decided {
                reason: "already removed",
                ..
            }
        )),
        3
    );
    assert_eq!(
        net.count(|e| matches!(
            e,
            Event::Decided {
                reason: "unknown peer",
                ..
            }
        )),
        1
    );
}

#[test]
fn reports_at_two_seeds_end_in_one_removal() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, None);
    net.kill(p);
    // both reports are queued before either round runs
    let a = net.enqueue(0, report(p, None));
    let b = net.enqueue(1, report(p, None));
    net.run();
    assert!(net.dead_success(a) || net.dead_success(b));
    for i in 0..3 {
        assert_eq!(net.ranks(i), vec![(p, 1, Status::Removed)]);
        let removals = net.changes_at(i, |e| e.status == Status::Removed);
        assert_eq!(removals, 1, "seed {i} applies the removal once");
    }
    net.assert_certificates_real();
}

#[test]
fn a_register_racing_a_removal_converges_to_the_higher() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, None);
    // p goes down and is removed, but seed 1 does not hear of it; p restarts, learns of its
    // removal elsewhere and rejoins at seed 1, which still holds it alive.
    net.kill(p);
    net.cut.insert((seed_ep(0), seed_ep(1)));
    net.cut.insert((seed_ep(2), seed_ep(1)));
    assert!(net.report_now(0, report(p, Some(1))));
    assert_eq!(net.rank(1, p), Some((1, Status::Alive)));
    net.revive_all();
    net.cut.clear();
    let b = net.register(1, p, Some(2));
    assert!(net.register_result(b).success);
    net.advance(5 * net.settings.anti_entropy_interval_ms);
    for i in 0..3 {
        assert_eq!(net.ranks(i), vec![(p, 2, Status::Alive)], "seed {i}");
    }
    net.assert_certificates_real();
}

#[test]
fn an_accused_peer_that_answers_the_seeds_is_not_removed() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    net.register(0, p, None);
    assert!(!net.report_now(0, report(p, None)));
    assert_eq!(net.rank(1, p), Some((1, Status::Alive)));
    assert_eq!(
        net.count(|e| matches!(
            e,
            Event::VoteCast {
                kind: ProposalKind::Removal,
                yes: true,
                ..
            }
        )),
        0
    );

    net.kill(p);
    assert!(net.report_now(0, report(p, None)));
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Removed)));
    }
    net.assert_certificates_real();
}

#[test]
fn peer_list_is_bounded_and_tells_the_requester_its_entry() {
    let settings = Settings {
        peer_list_limit: 3,
        ..Settings::default()
    };
    let mut net = Net::new(3, settings);
    for k in 0..6 {
        net.register(0, peer_ep(k), None);
    }
    net.kill(peer_ep(5));
    net.request(0, report(peer_ep(5), None));
    let ask = |requester: String| Message::PeerListReq { requester };
    let conn = net.request(1, ask(peer_ep(5).to_string()));
    let Some(Message::PeerListResp(resp)) = net.reply(conn).cloned() else {
        panic!("expected a peer list");
    };
    let PeerListResp {
        peers,
        seed,
        incarnations,
        total,
        requester_entry,
    } = *resp;
    assert_eq!(peers.len(), 3);
    assert!(peers.windows(2).all(|w| w[0] < w[1]), "sorted: {peers:?}");
    assert!(!peers.contains(&peer_ep(5)), "removed peers are not listed");
    assert_eq!(seed, seed_ep(1));
    assert_eq!(total, Some(5));
    assert_eq!(
        incarnations,
        peers.iter().map(|p| (*p, 1)).collect::<Vec<_>>()
    );
    assert_eq!(requester_entry, Some((1, Status::Removed)));
    let conn = net.request(1, ask("not an endpoint".into()));
    assert!(
        matches!(net.reply(conn), Some(Message::PeerListResp(r)) if r.requester_entry.is_none())
    );
}

/// A removal whose certificate names a seed that can no longer vouch for it (here one that
/// restarted before applying it; a lying seed's yes is the same) cannot spread by
/// confirmation, and a fresh round refutes it once the peer answers again. A seed that holds
/// the peer alive but heard of that removal tells the peer, which then registers one above
/// (as it would on hearing it from the seed that holds the removal), so the seeds do not stay
/// split until the peer happens to ask that one.
#[test]
fn a_peer_hears_of_a_removal_its_seed_could_not_confirm() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    net.advance(2 * net.settings.request_timeout_ms);
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Alive)), "seed {i}");
    }
    // Seed 2 hears nothing from seed 0: seeds 0 and 1 remove p (it is down), then seed 1
    // restarts empty, forgetting its vote.
    net.cut.insert((seed_ep(0), seed_ep(2)));
    net.cut.insert((seed_ep(2), seed_ep(0)));
    net.kill(p);
    assert!(net.report_now(0, report(p, None)));
    net.crash(1);
    net.restart_empty(1);
    net.revive(p);
    net.cut.clear();
    net.advance(20 * net.settings.anti_entropy_interval_ms);
    assert_eq!(net.rank(0, p), Some((1, Status::Removed)));
    assert_eq!(
        net.rank(2, p),
        Some((1, Status::Alive)),
        "unconfirmed, refuted"
    );
    let conn = net.request(
        2,
        Message::PeerListReq {
            requester: p.to_string(),
        },
    );
    assert!(matches!(
        net.reply(conn),
        Some(Message::PeerListResp(r)) if r.requester_entry == Some((1, Status::Removed))
    ));
    // p registers one above, as a real peer does: every seed admits it there.
    assert!(net.register_now(2, p, Some(2)).success);
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((2, Status::Alive)), "seed {i}");
    }
    net.assert_certificates_real();
}

/// A seed's yes to remove a peer is earned by a silent probe; when the peer answers a later
/// probe of the same seed, that yes no longer holds, and the seed takes it back from its own
/// round. Otherwise a yes arriving late (a slow voter's, or a lying seed's, which says yes to
/// anything) completes the round and removes a peer that is up.
#[test]
fn a_removal_yes_is_withdrawn_when_the_peer_answers_the_seeds_probe() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    net.advance(2 * net.settings.request_timeout_ms);
    // Seed 0's removal round: its own probe finds p silent (yes); its vote requests are held.
    net.mute(0, "SEED_DEAD_VOTE");
    net.kill(p);
    let report_conn = net.request(0, report(p, None));
    let held: Vec<_> = (net.held(0).into_iter())
        .filter(|(_, _, m)| matches!(m, Message::DeadVote(_)))
        .collect();
    assert_eq!(held.len(), 2);
    // p comes back and answers seed 0's probe (made for a vote on it at another incarnation).
    net.revive(p);
    net.request(
        0,
        Message::RegisterVote(Box::new(VoteReq {
            proposal_id: "s#1".into(),
            peer: p,
            incarnation: Some(2),
            proposer: seed_ep(1),
        })),
    );
    // A yes from seed 1 arrives late; seed 2 never answers.
    let Message::DeadVote(req) = &held[0].2 else {
        unreachable!("filtered")
    };
    let yes = Message::DeadVoteResp(Box::new(VoteResp {
        proposal_id: req.proposal_id.clone(),
        vote: true,
        voter: seed_ep(1),
        known_incarnation: None,
    }));
    let (from_1, from_2) = if held[0].1 == seed_ep(1) {
        (held[0].0, held[1].0)
    } else {
        (held[1].0, held[0].0)
    };
    net.answer_held(0, from_1, Ok(yes));
    net.answer_held(0, from_2, Err(gossip_core::Failure::Timeout));
    net.run();
    assert_eq!(net.rank(0, p), Some((1, Status::Alive)), "p answered: kept");
    assert!(!net.dead_success(report_conn));
}

#[test]
fn bad_requests_get_error() {
    let mut net = Net::new(3, Settings::default());
    let conn = net.refuse(
        0,
        gossip_core::Refusal::Undecodable(DecodeError::Syntax("not json".into())),
    );
    assert!(
        matches!(net.reply(conn), Some(Message::Error { reason }) if reason.contains("not json"))
    );
    let bad = [
        Message::RegisterVoteResp(Box::new(VoteResp {
            proposal_id: "a".into(),
            vote: true,
            voter: seed_ep(1),
            known_incarnation: None,
        })),
        Message::RegisterCommitAck,
        Message::SeedSync(Box::new(SeedSync {
            seed: seed_ep(1),
            buckets: vec![0; 3],
            entries: vec![],
            reply: false,
        })),
        Message::SeedSync(Box::new(SeedSync {
            seed: seed_ep(1),
            buckets: vec![],
            entries: vec![],
            reply: true,
        })),
        Message::RegisterReq(Box::new(RegisterReq {
            peer: seed_ep(2),
            incarnation: None,
        })),
        Message::RegisterVote(Box::new(VoteReq {
            proposal_id: "a".into(),
            peer: peer_ep(1),
            incarnation: None,
            proposer: peer_ep(2),
        })),
        Message::SuspectReq(Box::new(gossip_core::msg::SuspectReq {
            suspect: peer_ep(1),
            requester: peer_ep(2),
        })),
    ];
    for msg in bad {
        let conn = net.request(0, msg.clone());
        assert!(
            matches!(net.reply(conn), Some(Message::Error { .. })),
            "{msg:?}"
        );
    }
    assert_eq!(net.count(|e| matches!(e, Event::BadInput { .. })), 8);
    assert!(net.entries(0).is_empty());
    let conn = net.request(
        0,
        Message::Ping(gossip_core::msg::Ping {
            sender: peer_ep(1),
            suspected_by: None,
        }),
    );
    assert!(matches!(net.reply(conn), Some(Message::Pong(p)) if p.responder == seed_ep(0)));
}

#[test]
fn only_the_asked_seed_votes_once() {
    // n = 5, q = 3: the self-vote plus two distinct others.
    let seeds: Vec<Endpoint> = (0..5).map(seed_ep).collect();
    let init = NodeInit {
        me: seeds[0],
        seeds: seeds.clone(),
        settings: Settings::default(),
        rng_seed: 1,
        unix_ms_at_zero: 0,
    };
    let mut seed = Seed::new(init).expect("valid");
    let mut out = Vec::new();
    seed.handle(Millis(0), Input::Start, &mut out);
    out.clear();
    let p = peer_ep(1);
    seed.handle(
        Millis(1),
        Input::Request {
            conn: ConnId(1),
            msg: Message::RegisterReq(Box::new(RegisterReq {
                peer: p,
                incarnation: None,
            })),
        },
        &mut out,
    );
    let sends = |out: &mut Vec<Output>| -> Vec<(Endpoint, Message)> {
        (out.drain(..))
            .filter_map(|o| match o {
                Output::Send { to, msg, .. } => Some((to, msg)),
                _ => None,
            })
            .collect()
    };
    // First the seed probes the registrant itself; nobody is asked to vote before it answers.
    // Two PINGs, so that one lost exchange does not cost the registrant a vote; the first
    // PONG settles the probe.
    let probe = sends(&mut out);
    assert!(
        matches!(probe.as_slice(), [(a, Message::Ping(_)), (b, Message::Ping(_))] if *a == p && *b == p)
    );
    let pong = Message::Pong(gossip_core::msg::Pong {
        responder: p,
        degree: None,
        incarnation: None,
        leaving: false,
    });
    seed.handle(
        Millis(1),
        Input::Response {
            to: p,
            request: probe[0].1.clone(),
            outcome: Ok(pong),
        },
        &mut out,
    );
    let asks = sends(&mut out);
    assert_eq!(asks.len(), 4);
    let yes = |req: &Message, voter: Endpoint| match req {
        Message::RegisterVote(v) => Message::RegisterVoteResp(Box::new(VoteResp {
            proposal_id: v.proposal_id.clone(),
            vote: true,
            voter,
            known_incarnation: None,
        })),
        other => panic!("expected a vote request, got {other:?}"),
    };
    let answer = |seed: &mut Seed, to: Endpoint, req: &Message, voter: Endpoint| {
        let mut out = Vec::new();
        seed.handle(
            Millis(2),
            Input::Response {
                to,
                request: req.clone(),
                outcome: Ok(yes(req, voter)),
            },
            &mut out,
        );
        out.into_iter().any(|o| {
            matches!(
                o,
                Output::Reply {
                    conn: ConnId(1),
                    ..
                }
            )
        })
    };
    let (to1, req1) = asks[0].clone();
    let (to2, req2) = asks[1].clone();
    let (to3, req3) = asks[2].clone();
    assert!(!answer(&mut seed, to1, &req1, to1));
    assert!(
        !answer(&mut seed, to1, &req1, to1),
        "a duplicate counts once"
    );
    assert!(
        !answer(&mut seed, to2, &req2, seeds[4]),
        "a vote in another seed's name is ignored"
    );
    assert!(
        !answer(&mut seed, to2, &req2, to2),
        "the one answer on that request was the bad one"
    );
    assert!(
        answer(&mut seed, to3, &req3, to3),
        "the third distinct yes wins"
    );
    assert!(seed
        .status()
        .counters
        .iter()
        .any(|(n, v)| n == "bad_input" && *v == 1));
}

#[test]
fn pending_rounds_are_bounded() {
    let mut net = Net::new(3, Settings::default());
    net.cut.insert((seed_ep(0), seed_ep(1)));
    net.cut.insert((seed_ep(0), seed_ep(2)));
    for k in 0..gossip_core::seed::MAX_PENDING {
        net.register(0, peer_ep(k), None);
    }
    let r = net.register_now(0, peer_ep(5000), None);
    assert_eq!((r.success, r.error.as_deref()), (false, Some("busy")));
    net.advance(net.settings.vote_timeout_ms);
    let aborted = net.count(|e| {
        matches!(
            e,
            Event::Decided {
                decision: Decision::Abort,
                ..
            }
        )
    });
    assert_eq!(aborted, gossip_core::seed::MAX_PENDING);
}

#[test]
fn seeds_in_sync_exchange_digests_only() {
    let mut net = Net::new(3, Settings::default());
    // Entries carried by every SEED_SYNC reply.
    let synced_entries = Rc::new(Cell::new(0));
    let count = Rc::clone(&synced_entries);
    net.tap(move |_, _, msg| {
        if let Message::SeedSync(sync) = msg {
            if sync.reply {
                count.set(count.get() + sync.entries.len());
            }
        }
    });
    for k in 0..10 {
        net.register(k % 3, peer_ep(k), None);
    }
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    let rounds: u64 = (0..3).map(|i| counter(&net, i, "sync_rounds")).sum();
    assert!(rounds >= 10, "anti-entropy ran: {rounds} rounds");
    assert_eq!(synced_entries.get(), 0);
}

#[test]
fn same_inputs_same_outputs() {
    let run = || {
        let mut net = Net::new(3, Settings::default());
        for k in 0..8 {
            net.register(k % 3, peer_ep(k), None);
        }
        net.request(1, report(peer_ep(2), None));
        net.crash(2);
        net.restart_empty(2);
        net.advance(20_000);
        format!("{:?}", net.events)
    };
    assert_eq!(run(), run());
}

/// One step of a random fault schedule.
#[derive(Clone, Debug)]
enum Op {
    Register {
        seed: usize,
        peer: usize,
        hint: Option<u64>,
    },
    Report {
        seed: usize,
        peer: usize,
        inc: Option<u64>,
    },
    Cut {
        from: usize,
        to: usize,
    },
    Heal,
    Crash {
        seed: usize,
    },
    Restart {
        seed: usize,
    },
    Advance {
        ms: u64,
    },
    Kill {
        peer: usize,
    },
    Revive {
        peer: usize,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let seed = 0..5usize;
    let peer = 0..4usize;
    prop_oneof![
        4 => (seed.clone(), peer.clone(), proptest::option::of(1..4u64))
            .prop_map(|(seed, peer, hint)| Op::Register { seed, peer, hint }),
        3 => (seed.clone(), peer, proptest::option::of(1..4u64))
            .prop_map(|(seed, peer, inc)| Op::Report { seed, peer, inc }),
        2 => (seed.clone(), seed.clone()).prop_map(|(from, to)| Op::Cut { from, to }),
        1 => Just(Op::Heal),
        1 => seed.clone().prop_map(|seed| Op::Crash { seed }),
        1 => seed.prop_map(|seed| Op::Restart { seed }),
        2 => (1..3_000u64).prop_map(|ms| Op::Advance { ms }),
        2 => (0..4usize).prop_map(|peer| Op::Kill { peer }),
        1 => (0..4usize).prop_map(|peer| Op::Revive { peer }),
    ]
}

impl Net {
    fn apply(&mut self, op: &Op) {
        match *op {
            // A fake peer asks for what a real one could: at most one above the highest
            // incarnation a live seed lists for it (a real peer learns its hints from the seeds).
            Op::Register { seed, peer, hint } => {
                let peer = peer_ep(peer);
                let top = (0..self.seeds().len())
                    .filter(|&i| self.is_up(i))
                    .filter_map(|i| self.rank(i, peer))
                    .map(|(inc, _)| inc)
                    .max()
                    .unwrap_or(0);
                self.register(seed, peer, hint.map(|h| h.min(top + 1)));
            }
            Op::Report { seed, peer, inc } => {
                self.request(seed, report(peer_ep(peer), inc));
            }
            Op::Cut { from, to } => {
                self.cut.insert((seed_ep(from), seed_ep(to)));
            }
            Op::Heal => self.cut.clear(),
            // Only a minority of the seeds ever crash (the design's fault model, as in the
            // simulator's suites). Were a majority to restart empty, a dead peer that only
            // a minority still lists, at an incarnation above any the others hold, would
            // stay listed there: hearsay counts only within the range of incarnations a seed
            // holds (`round::removal_check`), since it may come from a lying seed.
            Op::Crash { seed } => self.crash(seed % ((self.seeds().len() - 1) / 2)),
            Op::Restart { seed } => {
                if !self.is_up(seed) {
                    self.restart_empty(seed);
                }
            }
            Op::Advance { ms } => self.advance(ms),
            Op::Kill { peer } => self.kill(peer_ep(peer)),
            Op::Revive { peer } => {
                self.revive(peer_ep(peer));
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 256, ..Default::default() })]

    /// Under any schedule of cuts, crashes, restarts and peer deaths every entry stays
    /// certified by seeds that really vouched for it, and once faults stop (and the peers do
    /// what real ones would: the dead are reported by their neighbours, a live peer removed
    /// somewhere registers again above its removal) every seed holds the same Peer List.
    #[test]
    fn random_faults_keep_certificates_and_converge(ops in proptest::collection::vec(op(), 1..40)) {
        let mut net = Net::new(5, Settings::default());
        for op in &ops {
            net.apply(op);
            net.assert_certificates_real();
        }
        net.cut.clear();
        for i in 0..5 {
            if !net.is_up(i) {
                net.restart_empty(i);
            }
        }
        net.advance(40 * net.settings.anti_entropy_interval_ms);
        for peer in net.dead() {
            for i in 0..5 {
                net.request(i, report(peer, None));
            }
        }
        for k in 0..4 {
            let peer = peer_ep(k);
            let top = (0..5).filter_map(|i| net.rank(i, peer)).max();
            if let (Some((inc, Status::Removed)), false) = (top, net.is_dead(peer)) {
                net.register(k % 5, peer, Some(inc + 1));
            }
        }
        net.advance(40 * net.settings.anti_entropy_interval_ms);
        net.assert_certificates_real();
        for i in 1..5 {
            proptest::prop_assert_eq!(net.ranks(i), net.ranks(0), "seed {} differs", i);
        }
    }
}

// ----- trust: certificates certify checked facts, and are checked before they are believed --

#[test]
fn a_forged_commit_naming_real_seeds_changes_nothing_and_costs_little() {
    let mut net = Net::new(5, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    let before: Vec<_> = (0..5).map(|i| net.ranks(i)).collect();
    let others: Vec<Endpoint> = (0..4).map(seed_ep).collect();
    let ghost = peer_ep(77);
    net.kill(ghost);
    let (requests, confirmed) = (
        counter(&net, 4, "confirm_requests"),
        counter(&net, 4, "confirmed"),
    );
    let forged = [
        // remove a live peer at its incarnation, at the next, at the largest
        commit(ProposalKind::Removal, p, Some(1), others.clone()),
        commit(ProposalKind::Removal, p, Some(2), others.clone()),
        commit(ProposalKind::Removal, p, Some(u64::MAX), others.clone()),
        // admit an endpoint where nothing listens, and bump a live peer
        commit(ProposalKind::Register, ghost, Some(1), others.clone()),
        commit(ProposalKind::Register, p, Some(9), others.clone()),
    ];
    for msg in forged.iter().cloned() {
        let conn = net.request(4, msg);
        assert!(matches!(
            net.reply(conn),
            Some(Message::RegisterCommitAck | Message::DeadCommitAck)
        ));
        net.advance(100);
    }
    net.advance(10 * net.settings.anti_entropy_interval_ms);
    for (i, ranks) in before.iter().enumerate() {
        assert_eq!(&net.ranks(i), ranks, "seed {i}");
    }
    // Each forged line cost seed 4 at most q = 3 requests, and confirmed nothing.
    let cost = counter(&net, 4, "confirm_requests") - requests;
    assert!(cost <= 3 * forged.len() as u64, "{cost} requests");
    assert_eq!(counter(&net, 4, "unconfirmed"), forged.len() as u64);
    assert_eq!(counter(&net, 4, "confirmed"), confirmed);
    assert_eq!(counter(&net, 4, "confirmations_pending"), 0);
    net.assert_certificates_real();
}

#[test]
fn solicited_votes_certify_only_what_each_voter_checked() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    let ghost = peer_ep(77);
    net.kill(ghost);
    let ask = |kind: ProposalKind, peer: Endpoint, inc: u64| {
        let req = VoteReq {
            proposal_id: "forger#1".into(),
            peer,
            incarnation: Some(inc),
            proposer: seed_ep(0), // a real seed's name, claimed by a stranger
        };
        match kind {
            ProposalKind::Register => Message::RegisterVote(Box::new(req)),
            ProposalKind::Removal => Message::DeadVote(Box::new(req)),
            ProposalKind::Leave => Message::LeaveVote(Box::new(req)),
        }
    };
    let vote_of = |net: &Net, conn: ConnId| match net.reply(conn) {
        Some(Message::RegisterVoteResp(v) | Message::DeadVoteResp(v)) => v.vote,
        other => panic!("expected a vote, got {other:?}"),
    };
    for i in [1, 2] {
        // nothing listens at the ghost; the live peer answers; the bump is not p's own claim
        for (kind, peer, inc) in [
            (ProposalKind::Register, ghost, 1),
            (ProposalKind::Removal, p, 1),
            (ProposalKind::Register, p, 2),
            (ProposalKind::Register, p, 1 << 40),
        ] {
            let conn = net.request(i, ask(kind, peer, inc));
            assert!(!vote_of(&net, conn), "seed {i}: {kind:?} {peer} {inc}");
        }
    }
    // The carried commits name the very seeds asked: they confirm nothing.
    let cert = vec![seed_ep(1), seed_ep(2)];
    net.request(
        0,
        commit(ProposalKind::Register, ghost, Some(1), cert.clone()),
    );
    net.request(0, commit(ProposalKind::Removal, p, Some(1), cert.clone()));
    for i in 0..3 {
        assert_eq!(net.ranks(i), vec![(p, 1, Status::Alive)], "seed {i}");
    }
    // A true fact, solicited the same way, is certified: p really is dead now.
    net.kill(p);
    for i in [1, 2] {
        let conn = net.request(i, ask(ProposalKind::Removal, p, 1));
        assert!(vote_of(&net, conn));
    }
    net.request(0, commit(ProposalKind::Removal, p, Some(1), cert));
    assert_eq!(net.rank(0, p), Some((1, Status::Removed)));
    net.assert_certificates_real();
}

#[test]
fn incarnations_move_up_one_step_unless_the_peer_itself_claims_more() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    // A stranger asks for p at a higher incarnation: p answers the probe, but claims 1.
    for hint in [2, 1000, u64::MAX] {
        let conn = net.request(
            1,
            Message::RegisterReq(Box::new(RegisterReq {
                peer: p,
                incarnation: Some(hint),
            })),
        );
        let r = net.register_result(conn);
        assert!(!r.success, "hint {hint}: {r:?}");
    }
    assert_eq!(net.rank(1, p), Some((1, Status::Alive)));
    // p itself rejoining above a removal the seeds have not heard of claims it: admitted.
    let r = net.register_now(2, p, Some(3));
    assert_eq!((r.success, r.incarnation), (true, Some(3)), "{r:?}");
    // A fresh endpoint starts at 1, whatever a stranger asks.
    let q = peer_ep(2);
    let conn = net.request(
        0,
        Message::RegisterReq(Box::new(RegisterReq {
            peer: q,
            incarnation: Some(50),
        })),
    );
    assert!(!net.register_result(conn).success);
    assert!(net.register_now(0, q, None).success);
    assert_eq!(net.rank(0, q), Some((1, Status::Alive)));
}

#[test]
fn changes_whose_voters_restarted_are_certified_again() {
    // 5 seeds, q = 3. p is admitted with a certificate naming seeds 0, 1 and 2; seeds 3 and
    // 4 miss it. Then 1 and 2 crash and restart empty: they cannot vouch for their votes.
    let mut net = Net::new(5, Settings::default());
    let p = peer_ep(1);
    for i in [3, 4] {
        net.isolate(i);
    }
    assert!(net.register_now(0, p, Some(2)).success);
    let cert = net.entries(0)[0].votes.clone();
    assert_eq!(cert, vec![seed_ep(0), seed_ep(1), seed_ep(2)]);
    net.cut.clear();
    for i in [1, 2] {
        net.crash(i);
        net.restart_empty(i);
    }
    net.advance(20 * net.settings.anti_entropy_interval_ms);
    for i in 0..5 {
        assert_eq!(net.ranks(i), vec![(p, 2, Status::Alive)], "seed {i}");
    }
    assert!(
        net.count(|e| matches!(
            e,
            Event::Decided {
                reason: "re-certified",
                ..
            }
        )) >= 1
    );
    net.assert_certificates_real();
    // The same for a removal of a peer that is gone: the seeds that lost it probe it anew.
    net.kill(p);
    net.isolate(3);
    net.isolate(4);
    assert!(net.report_now(0, report(p, None)));
    net.cut.clear();
    for i in [1, 2] {
        net.crash(i);
        net.restart_empty(i);
    }
    net.advance(20 * net.settings.anti_entropy_interval_ms);
    for i in 0..5 {
        assert_eq!(net.ranks(i), vec![(p, 2, Status::Removed)], "seed {i}");
    }
    net.assert_certificates_real();
}

#[test]
fn a_hoarded_removal_vote_no_longer_vouches_once_the_peer_answers_again() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    // While p is briefly silent, a stranger collects real removal votes from seeds 1 and 2.
    net.kill(p);
    for i in [1, 2] {
        let ask = Message::DeadVote(Box::new(VoteReq {
            proposal_id: "hoard#1".into(),
            peer: p,
            incarnation: Some(1),
            proposer: seed_ep(0),
        }));
        let conn = net.request(i, ask);
        assert!(matches!(net.reply(conn), Some(Message::DeadVoteResp(v)) if v.vote));
    }
    // p answers again; long after the votes the stranger carries a commit naming them.
    net.revive_all();
    let lifetime = gossip_core::seed::vote_lifetime_ms(&net.settings);
    net.advance(lifetime + 1);
    let cert = vec![seed_ep(1), seed_ep(2)];
    net.request(0, commit(ProposalKind::Removal, p, Some(1), cert));
    net.advance(5 * net.settings.anti_entropy_interval_ms);
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Alive)), "seed {i}");
    }
}

// ----- leave ------------------------------------------------------------------------------------

fn leave(peer: Endpoint, incarnation: u64) -> Message {
    Message::Leave(Box::new(gossip_core::msg::LeaveReq { peer, incarnation }))
}

fn leave_success(net: &Net, conn: ConnId) -> bool {
    match net.reply(conn) {
        Some(Message::LeaveResult(r)) => r.success,
        other => panic!("expected a leave result, got {other:?}"),
    }
}

/// A `LEAVE` is certified only on the peer's own word: every voter probes the peer itself
/// and votes yes only if its `PONG` says it is leaving. So a `LEAVE` in a live peer's name
/// changes nothing; a real one ends `LEFT` at every seed, a late report about the peer is
/// refused (`already left`: no false failure), and the peer may come back one incarnation up.
#[test]
fn a_leave_is_certified_only_on_the_peers_own_word_and_it_may_come_back_above() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    net.run();
    let forged = net.request(0, leave(p, 1));
    net.run();
    assert!(
        !leave_success(&net, forged),
        "a live peer was made to leave"
    );
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Alive)), "seed {i}");
    }
    net.set_leaving(p, true);
    let conn = net.request(1, leave(p, 1));
    net.run();
    assert!(leave_success(&net, conn));
    for i in 0..3 {
        assert_eq!(net.rank(i, p), Some((1, Status::Left)), "seed {i}");
    }
    net.assert_certificates_real();
    assert!(
        net.count(|e| matches!(
            e,
            Event::Decided {
                kind: ProposalKind::Leave,
                decision: Decision::Commit,
                ..
            }
        )) >= 1
    );
    // Asked again: already left, success at once.
    let again = net.request(2, leave(p, 1));
    net.run();
    assert!(leave_success(&net, again));
    // A late report of its death: nothing to remove.
    net.kill(p);
    assert!(!net.report_now(0, report(p, Some(1))));
    assert_eq!(net.rank(0, p), Some((1, Status::Left)));
    // It comes back: one incarnation up.
    net.revive(p);
    net.set_leaving(p, false);
    let back = net.register_now(2, p, None);
    assert!(back.success, "{back:?}");
    assert_eq!(back.incarnation, Some(2));
}

/// A seed told to stop starts no new round, finishes those in flight, and is done when none
/// is left.
#[test]
fn a_stopping_seed_finishes_its_rounds_and_starts_none() {
    let mut net = Net::new(3, Settings::default());
    let p = peer_ep(1);
    let conn = net.enqueue(
        0,
        Message::RegisterReq(Box::new(RegisterReq {
            peer: p,
            incarnation: None,
        })),
    );
    let stop = net.driven(0).map(|d| d.node().done());
    assert_eq!(stop, Some(false));
    net.enqueue_input(0, Input::Leave);
    net.run();
    assert!(net
        .events_of(0)
        .any(|e| matches!(e, Event::Stopping { .. })));
    assert!(
        net.register_result(conn).success,
        "the request in flight finished"
    );
    assert!(net.node(0).is_some_and(gossip_core::Node::done));
    assert!(net.events_of(0).any(|e| *e == Event::Stopped));
    let refused = net.register(0, peer_ep(3), None);
    net.run();
    let r = net.register_result(refused);
    assert!(!r.success);
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("shutting down")),
        "{r:?}"
    );
}

/// A leave certified at one seed only (its commit syncs lost, the seed then cut off), by a
/// leaver that exited at once: once the seed is back, the others cannot re-certify the `LEFT`
/// they pull from it (no voter hears the leaver say so any more, and the votes no longer
/// vouch). They used to keep it listed alive for good, and the seeds disagreed for ever
/// (found by `sim --soak`). Now a seed that holds it alive removes it instead, each voter
/// probing it, and then takes the `LEFT`, which a seed holding that incarnation removed
/// votes for: every seed lists it `LEFT`, with certificates of real votes.
#[test]
fn a_leave_certified_at_one_seed_reaches_the_others_after_the_leaver_exited() {
    let mut net = Net::new(4, Settings::default());
    let p = peer_ep(1);
    assert!(net.register_now(0, p, None).success);
    net.run();
    net.mute(0, "LEAVE_COMMIT");
    net.set_leaving(p, true);
    let conn = net.request(0, leave(p, 1));
    net.run();
    assert!(leave_success(&net, conn));
    net.kill(p);
    net.isolate(0);
    assert_eq!(net.rank(0, p), Some((1, Status::Left)));
    for i in 1..4 {
        assert_eq!(net.rank(i, p), Some((1, Status::Alive)), "seed {i}");
    }
    // Long enough that no vote vouches any more.
    net.advance(10_000);
    net.heal();
    net.advance(40 * net.settings.anti_entropy_interval_ms);
    for i in 0..4 {
        assert_eq!(net.rank(i, p), Some((1, Status::Left)), "seed {i}");
    }
    net.assert_certificates_real();
}
