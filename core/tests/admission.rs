//! Admission: a seed `PING`s a registrant before proposing its admission, so endpoints where
//! nothing listens never enter the Peer List, and a refusal costs one probe and no round.

use gossip_core::msg::{Message, Ping, Pong, RegisterReq, RoleStatus, Status};
use gossip_core::{ConnId, Failure, Input, Millis, NodeInit, Output, Seed, Settings};

fn ep(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn seed() -> Seed {
    let init = NodeInit {
        me: ep(9001),
        seeds: vec![ep(9001)],
        settings: Settings::default(),
        rng_seed: 1,
        unix_ms_at_zero: 0,
    };
    let mut s = Seed::new(init).expect("valid");
    s.handle(Millis(0), Input::Start, &mut Vec::new());
    s
}

fn register(s: &mut Seed, conn: u64, port: u16) -> Vec<Output> {
    let mut out = Vec::new();
    s.handle(
        Millis(10),
        Input::Request {
            conn: ConnId(conn),
            msg: Message::RegisterReq(Box::new(RegisterReq {
                peer: ep(port),
                incarnation: None,
            })),
        },
        &mut out,
    );
    out
}

fn pings(outs: &[Output]) -> Vec<std::net::SocketAddr> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: Message::Ping(_),
                ..
            } => Some(*to),
            _ => None,
        })
        .collect()
}

/// `(conn, success, error)` of every registration result among `outs`.
fn results(outs: &[Output]) -> Vec<(u64, bool, Option<String>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Reply {
                conn,
                msg: Message::RegisterResult(r),
            } => Some((conn.0, r.success, r.error.clone())),
            _ => None,
        })
        .collect()
}

fn answer_ping(s: &mut Seed, port: u16, outcome: Result<Message, Failure>) -> Vec<Output> {
    let mut out = Vec::new();
    s.handle(
        Millis(20),
        Input::Response {
            to: ep(port),
            request: Message::Ping(Ping {
                sender: ep(9001),
                suspected_by: None,
            }),
            outcome,
        },
        &mut out,
    );
    out
}

fn alive(s: &Seed) -> Vec<std::net::SocketAddr> {
    match s.status().role {
        RoleStatus::Seed(st) => st
            .entries
            .iter()
            .filter(|e| e.status == Status::Alive)
            .map(|e| e.peer)
            .collect(),
        RoleStatus::Peer(_) => Vec::new(),
    }
}

#[test]
fn a_registrant_that_answers_is_admitted() {
    let mut s = seed();
    let outs = register(&mut s, 1, 7001);
    // Two PINGs at once: one lost message does not decide.
    assert_eq!(pings(&outs), vec![ep(7001), ep(7001)]);
    assert!(results(&outs).is_empty(), "answered before the probe");
    let pong = Message::Pong(Pong {
        responder: ep(7001),
        degree: None,
        incarnation: None,
        leaving: false,
    });
    // One PING lost, the other answered: admitted.
    let outs = answer_ping(&mut s, 7001, Err(Failure::Timeout));
    assert!(results(&outs).is_empty(), "one silence does not decide");
    let outs = answer_ping(&mut s, 7001, Ok(pong));
    assert_eq!(results(&outs), vec![(1, true, None)]);
    assert_eq!(alive(&s), vec![ep(7001)]);
}

#[test]
fn a_reference_peer_answering_error_is_admitted() {
    let mut s = seed();
    let _ = register(&mut s, 1, 7001);
    let outs = answer_ping(&mut s, 7001, Ok(Message::error("unknown type PING")));
    assert_eq!(results(&outs), vec![(1, true, None)]);
}

#[test]
fn a_silent_endpoint_is_refused_and_one_probe_serves_every_request() {
    let mut s = seed();
    let first = register(&mut s, 1, 7002);
    let second = register(&mut s, 2, 7002);
    assert_eq!(pings(&first), vec![ep(7002), ep(7002)]);
    assert!(
        pings(&second).is_empty(),
        "a second probe of the same endpoint"
    );
    let outs = answer_ping(&mut s, 7002, Err(Failure::Timeout));
    assert!(results(&outs).is_empty(), "one silence does not decide");
    let outs = answer_ping(&mut s, 7002, Err(Failure::Timeout));
    let got = results(&outs);
    assert_eq!(got.len(), 2, "{got:?}");
    for (_, success, error) in got {
        assert!(!success);
        assert!(error.is_some_and(|e| e.contains("did not answer")));
    }
    assert!(alive(&s).is_empty());
    // It may try again once it listens.
    let outs = register(&mut s, 3, 7002);
    assert_eq!(pings(&outs), vec![ep(7002), ep(7002)]);
}

#[test]
fn a_refused_registration_costs_one_probe_and_no_round() {
    let mut s = seed();
    let _ = register(&mut s, 1, 7003);
    let _ = answer_ping(&mut s, 7003, Err(Failure::Unreachable));
    let outs = answer_ping(&mut s, 7003, Err(Failure::Unreachable));
    assert_eq!(results(&outs).len(), 1);
    let sends = outs
        .iter()
        .filter(|o| matches!(o, Output::Send { .. }))
        .count();
    assert_eq!(
        sends, 0,
        "no vote requested for a registrant that did not answer"
    );
    let proposals = s
        .status()
        .counters
        .iter()
        .find(|(n, _)| n == "proposals")
        .map(|(_, v)| *v);
    assert_eq!(proposals, Some(0));
}
