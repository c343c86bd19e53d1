//! Drives a [`Peer`] with hand-made inputs and checks what it asks for.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::*;
use crate::msg::{
    DeadResult, Gossip, GossipAck, GossipBody, Hello, HelloAck, PeerListResp, Ping, RegisterReq,
    RegisterResult, Status, SuspectAck, SuspectReq,
};
use crate::wire::DecodeError;

const UNIX_MS: u64 = 1_767_225_600_000;

/// `127.0.0.1:port` (shared with the unit tests of the peer's submodules).
pub(super) fn ep(port: u16) -> Endpoint {
    Endpoint::from(([127, 0, 0, 1], port))
}

fn seeds3() -> Vec<Endpoint> {
    vec![ep(5001), ep(5002), ep(5003)]
}

const ME: u16 = 6000;

fn settings() -> Settings {
    Settings {
        max_gossip: 3,
        ..Settings::default()
    }
}

fn init_with(settings: Settings, seed: u64) -> NodeInit {
    NodeInit {
        me: ep(ME),
        seeds: seeds3(),
        settings,
        rng_seed: seed,
        unix_ms_at_zero: UNIX_MS,
    }
}

/// A peer with its outputs collected for inspection.
struct Harness {
    peer: Peer,
    out: Vec<Output>,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let mut peer = Peer::new(init_with(settings, 7), Millis(0)).expect("valid settings");
        let out = peer.drain_outputs().collect();
        Harness { peer, out }
    }

    fn input(&mut self, now: Millis, input: Input) {
        self.peer.handle(now, input);
        self.out = self.peer.drain_outputs().collect();
    }

    fn respond(
        &mut self,
        now: Millis,
        to: Endpoint,
        request: Message,
        outcome: Result<Message, Failure>,
    ) {
        self.input(
            now,
            Input::Response {
                to,
                request,
                outcome,
            },
        );
    }

    fn request(&mut self, now: Millis, conn: u64, msg: Message) {
        self.input(
            now,
            Input::Request {
                conn: ConnId(conn),
                msg,
            },
        );
    }

    fn tick(&mut self, now: Millis) {
        self.input(now, Input::Tick);
    }

    fn sends(&self) -> Vec<(Endpoint, Message)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, msg, .. } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    fn sends_of(&self, type_name: &str) -> Vec<(Endpoint, Message)> {
        self.sends()
            .into_iter()
            .filter(|(_, m)| m.type_name() == type_name)
            .collect()
    }

    fn replies(&self) -> Vec<(ConnId, Message)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Reply { conn, msg } => Some((*conn, msg.clone())),
                _ => None,
            })
            .collect()
    }

    fn events(&self) -> Vec<Event> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn peer_status(&self) -> PeerStatus {
        match self.peer.status().role {
            RoleStatus::Peer(p) => p,
            RoleStatus::Seed(_) => panic!("a peer reported a seed status"),
        }
    }

    /// Answers every `REGISTER_REQ` in the last outputs with success.
    fn admit_all(&mut self, now: Millis, incarnation: Option<u64>) {
        for (to, req) in self.sends_of("REGISTER_REQ") {
            self.respond(now, to, req, Ok(register_ok(true, incarnation)));
        }
    }

    /// Registers, then answers every Peer List request with `peers`; returns the seeds asked.
    fn register_and_list(&mut self, now: Millis, peers: &[Endpoint]) -> Vec<Endpoint> {
        let mut asked = Vec::new();
        let mut pending = self.sends_of("REGISTER_REQ");
        while let Some((to, req)) = pending.pop() {
            self.respond(now, to, req, Ok(register_ok(true, Some(1))));
            let pls = self.sends_of("PEER_LIST_REQ");
            if !pls.is_empty() {
                for (seed, req) in pls {
                    asked.push(seed);
                    self.respond(now, seed, req, Ok(peer_list(seed, peers, None)));
                }
                break;
            }
        }
        asked
    }

    /// Bootstrapped with an empty Peer List and `neighbours` linked by their `HELLO`.
    fn bootstrapped(settings: Settings, neighbours: &[Endpoint]) -> Harness {
        let mut h = Harness::new(settings);
        h.register_and_list(Millis(0), &[]);
        assert!(h
            .events()
            .iter()
            .any(|e| matches!(e, Event::BootstrapComplete { .. })));
        for (i, &n) in neighbours.iter().enumerate() {
            h.request(Millis(0), 100 + i as u64, hello(n));
        }
        h
    }
}

fn register_ok(success: bool, incarnation: Option<u64>) -> Message {
    Message::RegisterResult(Box::new(RegisterResult {
        proposal_id: String::new(),
        success,
        yes_votes: 2,
        quorum: 2,
        incarnation,
        error: None,
    }))
}

fn peer_list(seed: Endpoint, peers: &[Endpoint], entry: Option<(u64, Status)>) -> Message {
    Message::PeerListResp(Box::new(PeerListResp {
        peers: peers.to_vec(),
        seed,
        incarnations: peers.iter().map(|p| (*p, 4)).collect(),
        total: None,
        requester_entry: entry,
    }))
}

fn hello(from: Endpoint) -> Message {
    Message::Hello(Box::new(Hello {
        peer: from,
        degree: 1,
        incarnation: Some(1),
    }))
}

fn gossip(text: &str, origin_port: u16, sender: Endpoint, hops: u32) -> Message {
    Message::Gossip(Gossip {
        body: Arc::new(GossipBody {
            text: Arc::from(text),
            origin_ip: ep(origin_port).ip(),
            origin_port: Some(origin_port),
            msg_no: 1,
        }),
        sender,
        hops,
    })
}

fn ping() -> Message {
    Message::Ping(Ping { sender: ep(ME) })
}

fn pong(degree: Option<u32>) -> Message {
    Message::Pong(Pong {
        responder: ep(1),
        degree,
        incarnation: None,
    })
}

// ----- construction and registration ---------------------------------------------------------

#[test]
fn rejects_bad_settings_and_seed_identity() {
    let bad = Settings {
        probe_misses: 0,
        ..Settings::default()
    };
    assert!(Peer::new(init_with(bad, 1), Millis(0)).is_err());
    let mut init = init_with(settings(), 1);
    init.me = ep(5002);
    assert!(Peer::new(init, Millis(0)).is_err());
    let mut init = init_with(settings(), 1);
    init.seeds.clear();
    assert!(Peer::new(init, Millis(0)).is_err());
}

#[test]
fn registers_with_a_quorum_of_seeds() {
    let mut h = Harness::new(settings());
    let reqs = h.sends_of("REGISTER_REQ");
    assert_eq!(reqs.len(), 2, "quorum(3) seeds asked at once: {reqs:?}");
    assert_ne!(reqs[0].0, reqs[1].0);
    let (a, b) = (reqs[0].clone(), reqs[1].clone());
    h.respond(Millis(10), a.0, a.1, Ok(register_ok(true, Some(3))));
    assert!(h.events().is_empty(), "one success is no quorum");
    assert!(!h.peer_status().registered);
    h.respond(Millis(20), b.0, b.1, Ok(register_ok(true, Some(5))));
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::RegistrationQuorum { seeds, incarnation: 5 }] if seeds.len() == 2),
        "{ev:?}"
    );
    assert!(h.peer_status().registered);
    let pl: BTreeSet<Endpoint> = h.sends_of("PEER_LIST_REQ").iter().map(|s| s.0).collect();
    assert_eq!(
        pl,
        [a.0, b.0].into_iter().collect(),
        "PL asked of the admitting seeds"
    );
}

#[test]
fn too_few_successes_fail_then_retry_the_others() {
    let mut h = Harness::new(settings());
    let reqs = h.sends_of("REGISTER_REQ");
    let (a, b) = (reqs[0].clone(), reqs[1].clone());
    // a fails: the third seed is asked instead.
    h.respond(Millis(5), a.0, a.1, Err(Failure::Unreachable));
    let c = h.sends_of("REGISTER_REQ");
    assert_eq!(c.len(), 1);
    let c = c[0].clone();
    assert!(c.0 != a.0 && c.0 != b.0);
    // c refuses: nobody left to ask, b still pending: wait.
    h.respond(Millis(6), c.0, c.1, Ok(register_ok(false, None)));
    assert!(h.sends().is_empty() && h.events().is_empty());
    // b says yes: 1 < 2 and nothing in flight: failed, retry later.
    h.respond(Millis(7), b.0, b.1, Ok(register_ok(true, None)));
    let ev = h.events();
    assert_eq!(
        ev,
        vec![Event::RegistrationFailed {
            successes: 1,
            needed: 2,
            retry_at: Millis(1_007)
        }]
    );
    assert_eq!(h.peer.next_deadline(), Some(Millis(1_007)));
    h.tick(Millis(1_000));
    assert!(h.sends().is_empty(), "retried too early");
    h.tick(Millis(1_007));
    let retry = h.sends_of("REGISTER_REQ");
    assert_eq!(retry.len(), 1, "one more success is enough: {retry:?}");
    assert_ne!(retry[0].0, b.0, "re-asked a seed that already said success");
    let r = retry[0].clone();
    h.respond(Millis(1_010), r.0, r.1, Ok(register_ok(true, None)));
    assert!(matches!(
        &h.events()[..],
        [Event::RegistrationQuorum { incarnation: 0, .. }]
    ));
}

#[test]
fn error_reply_counts_as_a_failure() {
    let mut h = Harness::new(settings());
    let reqs = h.sends_of("REGISTER_REQ");
    h.respond(
        Millis(1),
        reqs[0].0,
        reqs[0].1.clone(),
        Ok(Message::error("nope")),
    );
    assert_eq!(
        h.sends_of("REGISTER_REQ").len(),
        1,
        "an ERROR moves on to another seed"
    );
}

// ----- discovery and selection ----------------------------------------------------------------

#[test]
fn peer_list_union_then_candidates_pinged() {
    let mut h = Harness::new(settings());
    let reqs = h.sends_of("REGISTER_REQ");
    h.admit_all(Millis(1), Some(1));
    let _ = reqs;
    let pls = h.sends_of("PEER_LIST_REQ");
    assert_eq!(pls.len(), 2);
    let (s1, s2) = (pls[0].clone(), pls[1].clone());
    h.respond(
        Millis(2),
        s1.0,
        s1.1,
        Ok(peer_list(s1.0, &[ep(7001), ep(7002), ep(ME)], None)),
    );
    assert!(
        h.sends_of("PING").is_empty(),
        "selection before every PL answered"
    );
    h.respond(
        Millis(3),
        s2.0,
        s2.1,
        Ok(peer_list(s2.0, &[ep(7002), ep(7003)], None)),
    );
    assert_eq!(h.peer_status().known_peers, 3, "union minus me");
    let pinged: BTreeSet<Endpoint> = h.sends_of("PING").iter().map(|s| s.0).collect();
    assert_eq!(pinged, [ep(7001), ep(7002), ep(7003)].into_iter().collect());
}

#[test]
fn first_peer_completes_bootstrap_alone() {
    let mut h = Harness::new(settings());
    h.register_and_list(Millis(0), &[]);
    let ev = h.events();
    assert!(
        ev.contains(&Event::BootstrapComplete {
            neighbours: vec![],
            known_peers: 0
        }),
        "{ev:?}"
    );
    assert!(h.peer.next_deadline().is_some(), "periodic work scheduled");
}

#[test]
fn selection_greets_weighted_candidates_and_falls_back() {
    let mut h = Harness::new(settings()); // min_degree 2
    h.register_and_list(Millis(0), &[ep(7001), ep(7002), ep(7003)]);
    let pings = h.sends_of("PING");
    assert_eq!(pings.len(), 3);
    for (to, req) in pings {
        let outcome = match to.port() {
            7001 => Ok(pong(Some(5))),
            7002 => Err(Failure::Timeout),
            _ => Ok(Message::error("unknown type")),
        };
        h.respond(Millis(1), to, req, outcome);
    }
    let hellos: BTreeSet<Endpoint> = h.sends_of("HELLO").iter().map(|s| s.0).collect();
    assert_eq!(
        hellos,
        [ep(7001), ep(7003)].into_iter().collect(),
        "failed candidate greeted"
    );
    for (to, req) in h.sends_of("HELLO") {
        let accepted = to == ep(7001);
        let ack = Message::HelloAck(Box::new(HelloAck {
            accepted,
            peer: to,
            degree: 1,
            incarnation: None,
        }));
        h.respond(Millis(2), to, req, Ok(ack));
        if accepted {
            assert!(h.events().contains(&Event::NeighbourAdded {
                peer: to,
                their_degree: 1
            }));
        }
    }
    assert!(
        h.events().contains(&Event::BootstrapComplete {
            neighbours: vec![ep(7001)],
            known_peers: 3
        }),
        "{:?}",
        h.events()
    );
}

// ----- HELLO -----------------------------------------------------------------------------------

#[test]
fn hello_accepted_until_max_degree() {
    let s = Settings {
        min_degree: 1,
        max_degree: 2,
        ..settings()
    };
    let mut h = Harness::new(s);
    let mut accepted = Vec::new();
    for (i, port) in [7001u16, 7002, 7003].into_iter().enumerate() {
        h.request(Millis(1), i as u64, hello(ep(port)));
        match &h.replies()[..] {
            [(_, Message::HelloAck(a))] => {
                assert_eq!(a.peer, ep(ME));
                accepted.push(a.accepted);
                if a.accepted {
                    assert_eq!(a.degree, i as u32 + 1);
                }
            }
            other => panic!("unexpected replies {other:?}"),
        }
    }
    assert_eq!(accepted, vec![true, true, false]);
    assert_eq!(h.peer_status().neighbours, vec![ep(7001), ep(7002)]);
    h.request(Millis(1), 9, hello(ep(ME)));
    assert!(matches!(
        &h.replies()[..],
        [(_, Message::HelloAck(ack))] if !ack.accepted
    ));
}

// ----- gossip ---------------------------------------------------------------------------------

#[test]
fn generates_up_to_max_gossip_at_the_interval() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001)]);
    let mut texts = Vec::new();
    while let Some(now) = h.peer.next_deadline() {
        if now.0 > 60_000 {
            break;
        }
        h.tick(now);
        for e in h.events() {
            if let Event::GossipGenerated { text, msg_no } = e {
                assert_eq!(now.0 % 5_000, 0, "generated off the interval at {now:?}");
                texts.push((text.to_string(), msg_no, now));
                let sent = h.sends_of("GOSSIP_MSG");
                assert_eq!(sent.len(), 1);
                match &sent[0] {
                    (to, Message::Gossip(g)) => {
                        assert_eq!(*to, ep(7001));
                        assert_eq!(
                            (g.hops, g.sender, g.body.origin_port),
                            (1, ep(ME), Some(ME))
                        );
                        assert_eq!(&*g.body.text, text.as_ref());
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    let want: Vec<(String, u32, Millis)> = (1..=3u32)
        .map(|i| {
            let t = Millis(5_000 * u64::from(i));
            let secs = (UNIX_MS + t.0) / 1000;
            (format!("{secs}:127.0.0.1:{i}"), i, t)
        })
        .collect();
    assert_eq!(texts, want);
}

#[test]
fn outputs_go_to_a_lent_buffer_and_the_own_one_comes_back() {
    let (a, b) = (ep(7001), ep(7002));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    let mut lent = Vec::with_capacity(16);
    let lent_at = lent.as_ptr();
    h.peer.swap_outputs(&mut lent);
    h.peer.handle(
        Millis(10),
        Input::Request {
            conn: ConnId(1),
            msg: gossip("1767225600:127.0.0.1:1", 7009, a, 1),
        },
    );
    h.peer.swap_outputs(&mut lent);
    assert_eq!(
        lent.as_ptr(),
        lent_at,
        "the lent buffer was not handed back"
    );
    let kinds: Vec<&str> = lent
        .iter()
        .map(|o| match o {
            Output::Send { .. } => "send",
            Output::Reply { .. } => "reply",
            Output::Event(_) => "event",
        })
        .collect();
    assert_eq!(
        kinds,
        ["reply", "event", "send"],
        "ack, first receipt, forward to b"
    );
    assert_eq!(
        h.peer.drain_outputs().count(),
        0,
        "outputs left in the own buffer"
    );
}

/// Forwarding also rewrites only the sender and hop count: every copy shares the body that
/// arrived, so a first receipt allocates nothing.
#[test]
fn first_time_forwards_to_all_but_sender_and_duplicate_is_dropped() {
    let (a, b, c) = (ep(7001), ep(7002), ep(7003));
    let mut h = Harness::bootstrapped(settings(), &[a, b, c]);
    let incoming = gossip("1767225600:127.0.0.1:1", 7009, a, 2);
    let Message::Gossip(g) = &incoming else {
        unreachable!("gossip() builds a gossip")
    };
    let body = Arc::clone(&g.body);
    h.request(Millis(10), 1, incoming);
    assert!(h.events().contains(&Event::GossipFirstReceived {
        text: Arc::from("1767225600:127.0.0.1:1"),
        from: a,
        hops: 2
    }));
    let fwd = h.sends_of("GOSSIP_MSG");
    let to: Vec<Endpoint> = fwd.iter().map(|s| s.0).collect();
    assert_eq!(
        to,
        vec![b, c],
        "forwarded to the sender or missed a neighbour"
    );
    for (_, m) in &fwd {
        assert!(matches!(m, Message::Gossip(g) if g.hops == 3 && g.sender == ep(ME)));
        assert!(
            matches!(m, Message::Gossip(g) if Arc::ptr_eq(&g.body, &body)),
            "a copy got its own body"
        );
    }
    assert_eq!(
        h.replies(),
        vec![(
            ConnId(1),
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: false
            })
        )]
    );
    h.request(Millis(11), 2, gossip("1767225600:127.0.0.1:1", 7009, b, 3));
    assert!(h.sends().is_empty(), "a duplicate was forwarded");
    assert!(matches!(&h.events()[..], [Event::GossipDuplicate { from, .. }] if *from == b));
    assert_eq!(
        h.replies(),
        vec![(
            ConnId(2),
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: true
            })
        )]
    );
}

#[test]
fn same_text_from_two_ports_on_one_ip_are_two_messages() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001)]);
    for (conn, port) in [(1, 7005u16), (2, 7006)] {
        h.request(
            Millis(1),
            conn,
            gossip("1767225600:127.0.0.1:1", port, ep(7001), 1),
        );
        assert!(
            matches!(&h.events()[..], [Event::GossipFirstReceived { .. }]),
            "port {port}: {:?}",
            h.events()
        );
    }
}

#[test]
fn seen_set_stays_bounded_in_a_peer() {
    let s = Settings {
        seen_capacity: 64,
        ..settings()
    };
    let mut h = Harness::bootstrapped(s, &[]);
    for i in 0..1_000u32 {
        h.request(
            Millis(1),
            1,
            gossip(&format!("1:127.0.0.1:{i}"), 7001, ep(7001), 1),
        );
    }
    assert!(
        h.peer.seen.len() <= 64,
        "seen-set grew to {}",
        h.peer.seen.len()
    );
}

// ----- liveness -------------------------------------------------------------------------------

/// Ticks to the next probe round and answers the PINGs: `dead` fail, others pong.
fn probe_round(h: &mut Harness, dead: Endpoint) -> Millis {
    let now = h.peer.timers.get(&Timer::Probe).expect("probe timer set");
    h.tick(now);
    let pings = h.sends_of("PING");
    assert!(!pings.is_empty(), "no probe at {now:?}");
    let mut all = Vec::new();
    for (to, req) in pings {
        let outcome = if to == dead {
            Err(Failure::Timeout)
        } else {
            Ok(pong(Some(2)))
        };
        h.respond(now.after(100), to, req, outcome);
        all.extend(h.out.clone());
    }
    h.out = all;
    now.after(100)
}

/// Who the next probe round pings, each answered `PONG`; the time after the answers.
fn probed_in_next_round(h: &mut Harness) -> (Vec<Endpoint>, Millis) {
    let now = h.peer.timers.get(&Timer::Probe).expect("probe timer set");
    h.tick(now);
    let pings = h.sends_of("PING");
    let probed = pings.iter().map(|(to, _)| *to).collect();
    for (to, req) in pings {
        h.respond(now.after(100), to, req, Ok(pong(Some(2))));
    }
    (probed, now.after(100))
}

#[test]
fn a_neighbours_own_ping_spares_it_one_probe_round() {
    let (a, b, c) = (ep(7001), ep(7002), ep(7003));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    let (probed, now) = probed_in_next_round(&mut h);
    assert_eq!(probed, vec![a, b]);
    // a pings us (it is up); so does c, who is no neighbour.
    h.request(now, 1, Message::Ping(Ping { sender: a }));
    h.request(now, 2, Message::Ping(Ping { sender: c }));
    assert!(matches!(&h.replies()[..], [(_, Message::Pong(_))]));
    let (probed, _) = probed_in_next_round(&mut h);
    assert_eq!(probed, vec![b], "a was heard from since the last round");
    let (probed, _) = probed_in_next_round(&mut h);
    assert_eq!(probed, vec![a, b], "silent since: probed again");
    // A neighbour that missed a probe is probed every round, heard from or not.
    let t = h.peer.timers.get(&Timer::Probe).expect("probe timer set");
    h.tick(t);
    for (to, req) in h.sends_of("PING") {
        let outcome = if to == a {
            Err(Failure::Timeout)
        } else {
            Ok(pong(Some(2)))
        };
        h.respond(t.after(100), to, req, outcome);
    }
    h.request(t.after(100), 3, Message::Ping(Ping { sender: a }));
    let (probed, _) = probed_in_next_round(&mut h);
    assert_eq!(probed, vec![a, b], "a missed a probe: no round skips it");
}

fn suspected(dead: Endpoint, others: &[Endpoint]) -> (Harness, Millis, Vec<(Endpoint, Message)>) {
    let mut all = vec![dead];
    all.extend_from_slice(others);
    let mut h = Harness::bootstrapped(settings(), &all);
    let mut now = None;
    for round in 1..=3 {
        now = Some(probe_round(&mut h, dead));
        let raised = h
            .events()
            .iter()
            .any(|e| matches!(e, Event::SuspicionRaised { .. }));
        assert_eq!(raised, round == 3, "suspicion at round {round}");
    }
    let asks = h.sends_of("SUSPECT_REQ");
    (h, now.expect("three rounds ran"), asks)
}

#[test]
fn misses_raise_suspicion_and_ask_other_neighbours() {
    let (dead, b, c) = (ep(7001), ep(7002), ep(7003));
    let (h, _, asks) = suspected(dead, &[b, c]);
    let asked: Vec<Endpoint> = asks.iter().map(|s| s.0).collect();
    let mut sorted = asked.clone();
    sorted.sort();
    assert_eq!(sorted, vec![b, c]);
    for (_, m) in &asks {
        assert_eq!(
            m,
            &Message::SuspectReq(Box::new(SuspectReq {
                suspect: dead,
                requester: ep(ME)
            }))
        );
    }
    assert!(h.events().contains(&Event::SuspicionRaised {
        suspect: dead,
        misses: 3,
        witnesses: asked
    }));
    assert!(h.sends_of("DEAD_REPORT").is_empty());
}

fn ack(suspect: Endpoint, alive: bool, confirmer: Endpoint) -> Message {
    Message::SuspectAck(Box::new(SuspectAck {
        suspect,
        alive,
        confirmer,
    }))
}

#[test]
fn dead_report_only_after_peer_majority() {
    let (dead, b, c) = (ep(7001), ep(7002), ep(7003));
    let (mut h, now, asks) = suspected(dead, &[b, c]);
    let (w1, w2) = (asks[0].clone(), asks[1].clone());
    h.respond(now, w1.0, w1.1, Ok(ack(dead, false, w1.0)));
    assert!(
        h.sends_of("DEAD_REPORT").is_empty(),
        "reported before every witness answered"
    );
    h.respond(now, w2.0, w2.1, Ok(ack(dead, true, w2.0)));
    assert!(h.events().contains(&Event::SuspicionVerdict {
        suspect: dead,
        dead_votes: 2,
        alive_votes: 1,
        dead_witnesses: vec![w1.0],
        consensus: true
    }));
    let reports = h.sends_of("DEAD_REPORT");
    assert_eq!(reports.len(), 2, "quorum(3) seeds");
    let secs = (UNIX_MS + now.0) / 1000;
    for (to, m) in &reports {
        assert!(seeds3().contains(to));
        let Message::DeadReport(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            r.text.as_deref(),
            Some(&*format!("Dead Node:127.0.0.1:7001:{secs}:127.0.0.1"))
        );
        assert_eq!((r.dead, r.reporter, r.timestamp), (dead, ep(ME), secs));
        assert_eq!(r.incarnation, Some(1), "incarnation learned from HELLO");
        assert_eq!(r.witnesses, vec![w1.0]);
    }
    assert!(h.events().contains(&Event::NeighbourDropped {
        peer: dead,
        reason: "dead"
    }));
    assert!(!h.peer_status().neighbours.contains(&dead));
    // Repair: the Peer List is refreshed at once.
    let pl = h.sends_of("PEER_LIST_REQ");
    assert_eq!(pl.len(), 1);
    // A seed's answer is reported.
    let (seed, req) = reports[0].clone();
    let res = Message::DeadResult(DeadResult {
        proposal_id: "p".into(),
        success: true,
        yes_votes: 2,
        quorum: 2,
    });
    h.respond(now, seed, req, Ok(res));
    assert_eq!(
        h.events(),
        vec![Event::DeadReportOutcome {
            suspect: dead,
            seed,
            success: true
        }]
    );
}

/// Drives a suspicion of `dead` to a consensus report whose seeds all fail to commit.
fn unsettled_report(dead: Endpoint, witness: Endpoint) -> (Harness, Millis) {
    let (mut h, now, asks) = suspected(dead, &[witness]);
    let (w, req) = asks[0].clone();
    h.respond(now, w, req, Ok(ack(dead, false, w)));
    let reports = h.sends_of("DEAD_REPORT");
    assert_eq!(reports.len(), 2);
    let aborted = Message::DeadResult(DeadResult {
        proposal_id: "p".into(),
        success: false,
        yes_votes: 1,
        quorum: 2,
    });
    let (s1, r1) = reports[0].clone();
    let (s2, r2) = reports[1].clone();
    h.respond(now, s1, r1, Ok(aborted));
    h.respond(now, s2, r2, Err(Failure::Unreachable));
    (h, now)
}

#[test]
fn an_uncommitted_report_is_rechecked_and_sent_again() {
    let (dead, w) = (ep(7001), ep(7002));
    let (mut h, _) = unsettled_report(dead, w);
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let pings: Vec<Endpoint> = h.sends_of("PING").into_iter().map(|(to, _)| to).collect();
    assert!(
        pings.contains(&dead),
        "the accused is probed again: {pings:?}"
    );
    assert!(
        h.sends_of("SUSPECT_REQ").is_empty(),
        "witnesses only after the probe fails"
    );
    let ping = Message::Ping(Ping { sender: ep(ME) });
    h.respond(at, dead, ping, Err(Failure::Unreachable));
    let asks = h.sends_of("SUSPECT_REQ");
    assert_eq!(asks.len(), 1, "a fresh witness round");
    let (w, req) = asks[0].clone();
    h.respond(at, w, req, Ok(ack(dead, false, w)));
    let again = h.sends_of("DEAD_REPORT");
    assert_eq!(again.len(), 2, "reported again after a new consensus");
    let Message::DeadReport(r) = &again[0].1 else {
        panic!("{:?}", again[0])
    };
    assert_eq!(
        r.incarnation,
        Some(1),
        "still names the accused incarnation"
    );
    // A commit settles it: no more re-checks.
    let committed = Message::DeadResult(DeadResult {
        proposal_id: "q".into(),
        success: true,
        yes_votes: 2,
        quorum: 2,
    });
    h.respond(at, again[0].0, again[0].1.clone(), Ok(committed));
    assert!(h.peer.accusations.is_empty());
}

#[test]
fn an_accused_peer_that_answers_the_recheck_is_left_alone() {
    let (dead, w) = (ep(7001), ep(7002));
    let (mut h, _) = unsettled_report(dead, w);
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let ping = Message::Ping(Ping { sender: ep(ME) });
    h.respond(at, dead, ping, Ok(pong(Some(1))));
    assert!(h.sends_of("SUSPECT_REQ").is_empty());
    assert!(h.peer.accusations.is_empty());
    let later = at.after(h.peer.settings.peer_list_refresh_ms);
    h.tick(later);
    assert!(!h.sends_of("PING").iter().any(|(to, _)| *to == dead));
}

#[test]
fn retries_of_an_accusation_run_out_unless_the_seeds_still_list_it() {
    let (dead, w) = (ep(7001), ep(7002));
    let (mut h, _) = unsettled_report(dead, w);
    assert_eq!(
        h.peer.accusations.get(&dead).map(|a| a.retries_left),
        Some(3)
    );
    h.peer.note_listed(&[dead], false);
    assert_eq!(
        h.peer.accusations.get(&dead).map(|a| a.retries_left),
        Some(3)
    );
    for _ in 0..3 {
        h.peer.recheck_accusations(Millis(1));
    }
    assert_eq!(
        h.peer.accusations.get(&dead).map(|a| a.retries_left),
        Some(0)
    );
    h.peer.recheck_accusations(Millis(1));
    assert!(h.peer.accusations.is_empty(), "given up after its retries");
    // A complete Peer List without the accused settles an accusation at once.
    let (mut h, _) = unsettled_report(dead, w);
    h.peer.note_listed(&[w], true);
    assert!(h.peer.accusations.is_empty());
}

#[test]
fn no_consensus_keeps_the_neighbour() {
    let (dead, b, c) = (ep(7001), ep(7002), ep(7003));
    let (mut h, now, asks) = suspected(dead, &[b, c]);
    h.respond(
        now,
        asks[0].0,
        asks[0].1.clone(),
        Ok(ack(dead, true, asks[0].0)),
    );
    h.respond(now, asks[1].0, asks[1].1.clone(), Err(Failure::Timeout));
    assert!(matches!(
        &h.events()[..],
        [Event::SuspicionVerdict {
            consensus: false,
            dead_votes: 1,
            alive_votes: 1,
            ..
        }]
    ));
    assert!(h.sends_of("DEAD_REPORT").is_empty());
    assert!(h.peer_status().neighbours.contains(&dead));
    assert_eq!(h.peer.neighbours.get(&dead).map(|l| l.misses), Some(0));
}

#[test]
fn suspect_answering_the_detector_withdraws_the_suspicion() {
    let (dead, b, c) = (ep(7001), ep(7002), ep(7003));
    let (mut h, _, asks) = suspected(dead, &[b, c]);
    // The next probe round: everyone answers, the suspect included.
    let now = probe_round(&mut h, ep(1));
    assert!(h.events().contains(&Event::SuspicionVerdict {
        suspect: dead,
        dead_votes: 0,
        alive_votes: 1,
        dead_witnesses: vec![],
        consensus: false
    }));
    for (to, req) in asks {
        h.respond(now, to, req, Ok(ack(dead, false, to)));
        assert!(
            h.out.is_empty(),
            "a withdrawn round still acted: {:?}",
            h.out
        );
    }
    assert!(h.peer_status().neighbours.contains(&dead));
}

#[test]
fn no_witness_means_no_report() {
    let dead = ep(7001);
    let (h, _, asks) = suspected(dead, &[]);
    assert!(asks.is_empty());
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::SuspicionVerdict {
            consensus: false,
            ..
        }
    )));
    assert!(h.sends_of("DEAD_REPORT").is_empty());
}

#[test]
fn witness_answers_after_its_own_probe() {
    let mut h = Harness::bootstrapped(settings(), &[]);
    let (suspect, requester) = (ep(7001), ep(7002));
    let req = Message::SuspectReq(Box::new(SuspectReq { suspect, requester }));
    h.request(Millis(5), 42, req.clone());
    assert!(h.replies().is_empty(), "answered before probing");
    let pings = h.sends_of("PING");
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].0, suspect);
    // A second detector asking about the same suspect shares the probe.
    h.request(Millis(6), 43, req);
    assert!(h.sends().is_empty());
    h.respond(Millis(100), suspect, ping(), Err(Failure::Unreachable));
    assert_eq!(
        h.replies(),
        vec![
            (ConnId(42), ack(suspect, false, ep(ME))),
            (ConnId(43), ack(suspect, false, ep(ME)))
        ]
    );
    assert!(h.events().contains(&Event::SuspectAnswered {
        suspect,
        requester,
        alive: false
    }));
}

#[test]
fn witness_backlog_is_bounded() {
    let mut h = Harness::bootstrapped(settings(), &[]);
    for i in 0..MAX_PENDING_WITNESS as u64 {
        let req = SuspectReq {
            suspect: ep(7001),
            requester: ep(7002),
        };
        h.request(Millis(1), i, Message::SuspectReq(Box::new(req)));
    }
    let req = SuspectReq {
        suspect: ep(7001),
        requester: ep(7002),
    };
    h.request(Millis(1), 999, Message::SuspectReq(Box::new(req)));
    assert!(matches!(
        &h.replies()[..],
        [(ConnId(999), Message::Error { .. })]
    ));
}

// ----- repair and rejoin ----------------------------------------------------------------------

#[test]
fn an_isolated_peer_refreshes_after_one_probe_interval() {
    let mut h = Harness::new(settings());
    h.register_and_list(Millis(0), &[]);
    let repair = h.peer.timers.get(&Timer::Repair).expect("repair timer set");
    assert_eq!(repair, Millis(settings().probe_interval_ms));
    assert!(repair < h.peer.timers.get(&Timer::Refresh).expect("refresh timer"));
    h.tick(repair);
    let pl = h.sends_of("PEER_LIST_REQ");
    assert_eq!(pl.len(), 1, "an early refresh");
    let (seed, req) = pl[0].clone();
    h.respond(repair, seed, req, Ok(peer_list(seed, &[ep(7001)], None)));
    assert_eq!(h.sends_of("PING").len(), 1, "the new candidate is probed");
}

#[test]
fn a_linked_peer_skips_the_early_refresh() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001), ep(7002)]);
    let repair = h.peer.timers.get(&Timer::Repair).expect("repair timer set");
    h.tick(repair);
    assert!(h.sends_of("PEER_LIST_REQ").is_empty());
}

#[test]
fn repair_reconnects_after_a_drop() {
    let (dead, b, c) = (ep(7001), ep(7002), ep(7003));
    let s = Settings {
        min_degree: 3,
        ..settings()
    };
    let mut h = Harness::bootstrapped(s, &[dead, b, c]);
    for _ in 0..3 {
        probe_round(&mut h, dead);
    }
    let now = Millis(10_000);
    for (to, req) in h.sends_of("SUSPECT_REQ") {
        h.respond(now, to, req, Ok(ack(dead, false, to)));
    }
    let pl = h.sends_of("PEER_LIST_REQ");
    assert_eq!(pl.len(), 1);
    let (seed, req) = pl[0].clone();
    h.respond(
        now,
        seed,
        req,
        Ok(peer_list(seed, &[b, c, ep(7004), dead], None)),
    );
    let pinged: Vec<Endpoint> = h.sends_of("PING").iter().map(|s| s.0).collect();
    assert!(
        pinged.contains(&ep(7004)),
        "no new candidate probed: {pinged:?}"
    );
    assert!(
        !pinged.contains(&b) && !pinged.contains(&c),
        "neighbours are not candidates"
    );
}

/// Removed while cut off and readmitted one above before it heard of the removal (the seeds
/// may admit a peer that answers their probe one above a removal, whoever asks): the peer
/// registers at the incarnation the seeds list, never at one further above.
#[test]
fn takes_the_incarnation_it_was_readmitted_at() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001)]);
    assert_eq!(h.peer_status().incarnation, 1);
    for (entry, rejoins) in [
        (Some((1, Status::Alive)), false),
        (Some((3, Status::Alive)), false),
        (Some((2, Status::Alive)), true),
    ] {
        let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
        h.tick(at);
        let (seed, req) = h.sends_of("PEER_LIST_REQ")[0].clone();
        h.respond(at, seed, req, Ok(peer_list(seed, &[], entry)));
        if !rejoins {
            assert!(h.events().is_empty(), "{entry:?}: {:?}", h.events());
            continue;
        }
        assert_eq!(
            h.events(),
            vec![Event::Rejoining {
                removed_incarnation: 1
            }]
        );
        let regs = h.sends_of("REGISTER_REQ");
        assert!(!regs.is_empty());
        for (_, m) in &regs {
            assert!(matches!(m, Message::RegisterReq(r) if r.incarnation == Some(2)));
        }
        h.admit_all(at, Some(2));
        assert!(h.peer_status().registered);
        assert_eq!(h.peer_status().incarnation, 2);
    }
}

#[test]
fn rejoins_when_the_seeds_removed_it() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001)]);
    assert_eq!(h.peer_status().incarnation, 1);
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let pl = h.sends_of("PEER_LIST_REQ");
    assert_eq!(pl.len(), 1);
    let (seed, req) = pl[0].clone();
    // Removal of an older incarnation is stale: nothing happens.
    h.respond(
        at,
        seed,
        req.clone(),
        Ok(peer_list(seed, &[], Some((0, Status::Removed)))),
    );
    assert!(h.events().is_empty(), "{:?}", h.events());
    h.tick(h.peer.timers.get(&Timer::Refresh).expect("refresh timer"));
    let (seed, req) = h.sends_of("PEER_LIST_REQ")[0].clone();
    h.respond(
        at,
        seed,
        req,
        Ok(peer_list(seed, &[], Some((1, Status::Removed)))),
    );
    assert_eq!(
        h.events(),
        vec![Event::Rejoining {
            removed_incarnation: 1
        }]
    );
    assert!(!h.peer_status().registered);
    let regs = h.sends_of("REGISTER_REQ");
    assert_eq!(regs.len(), 2);
    for (_, m) in &regs {
        assert!(matches!(m, Message::RegisterReq(r) if r.incarnation == Some(2)));
    }
    h.admit_all(at, Some(2));
    assert!(h.peer_status().registered);
    assert_eq!(h.peer_status().incarnation, 2);
    assert_eq!(h.peer_status().neighbours, vec![ep(7001)], "links kept");
    let regreet: Vec<Endpoint> = h.sends_of("HELLO").iter().map(|s| s.0).collect();
    assert_eq!(
        regreet,
        vec![ep(7001)],
        "kept links not re-greeted after rejoin"
    );
}

#[test]
fn regreet_on_refresh_drops_a_refused_link() {
    let (a, b) = (ep(7001), ep(7002));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let hellos = h.sends_of("HELLO");
    assert_eq!(hellos.iter().map(|s| s.0).collect::<Vec<_>>(), vec![a, b]);
    let refuse = |peer| {
        Ok(Message::HelloAck(Box::new(HelloAck {
            accepted: false,
            peer,
            degree: 9,
            incarnation: None,
        })))
    };
    h.respond(at, a, hellos[0].1.clone(), refuse(a));
    assert!(h.events().contains(&Event::NeighbourDropped {
        peer: a,
        reason: "refused"
    }));
    assert_eq!(h.peer_status().neighbours, vec![b]);
}

#[test]
fn a_healthy_peer_merges_one_periodic_refresh_in_four() {
    let (a, b) = (ep(7001), ep(7002));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    // Answers the next periodic refresh listing `listed`; whether it was merged.
    let refresh = |h: &mut Harness, listed: Endpoint| {
        let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
        h.tick(at);
        let (seed, req) = h.sends_of("PEER_LIST_REQ")[0].clone();
        h.respond(at, seed, req, Ok(peer_list(seed, &[listed], None)));
        h.peer.known.get(&listed).is_some()
    };
    let merged: Vec<bool> = (0..6).map(|i| refresh(&mut h, ep(7100 + i))).collect();
    assert_eq!(merged, vec![true, false, false, false, true, false]);
    // A repair asked for while a non-merging refresh is in flight has its answer merged.
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let (seed, req) = h.sends_of("PEER_LIST_REQ")[0].clone();
    h.peer.refresh_peer_list(at);
    assert!(
        h.peer.drain_outputs().next().is_none(),
        "one refresh in flight"
    );
    h.respond(at, seed, req, Ok(peer_list(seed, &[ep(7200)], None)));
    assert!(h.peer.known.get(&ep(7200)).is_some());
    // A refresh that merges nothing still tells a removed peer to rejoin.
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let (seed, req) = h.sends_of("PEER_LIST_REQ")[0].clone();
    let removed = peer_list(seed, &[ep(7300)], Some((1, Status::Removed)));
    h.respond(at, seed, req, Ok(removed));
    assert!(h.peer.known.get(&ep(7300)).is_none());
    assert!(h.events().contains(&Event::Rejoining {
        removed_incarnation: 1
    }));
}

#[test]
fn a_neighbours_own_hello_spares_it_one_regreeting() {
    let (a, b) = (ep(7001), ep(7002));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    let hello = Message::Hello(Box::new(Hello {
        peer: a,
        degree: 1,
        incarnation: Some(1),
    }));
    h.request(Millis(1), 1, hello);
    assert!(matches!(&h.replies()[..], [(_, Message::HelloAck(ack))] if ack.accepted));
    let greeted = |h: &mut Harness| {
        let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
        h.tick(at);
        h.sends_of("HELLO").iter().map(|s| s.0).collect::<Vec<_>>()
    };
    assert_eq!(
        greeted(&mut h),
        vec![b],
        "a greeted us since the last refresh"
    );
    assert_eq!(greeted(&mut h), vec![a, b], "silent since: greeted again");
}

// ----- other requests -------------------------------------------------------------------------

#[test]
fn malformed_and_misdirected_requests_get_error() {
    let mut h = Harness::new(settings());
    h.input(
        Millis(1),
        Input::Malformed {
            conn: ConnId(1),
            error: DecodeError::Syntax("not json".into()),
        },
    );
    assert!(matches!(
        &h.replies()[..],
        [(ConnId(1), Message::Error { .. })]
    ));
    assert!(matches!(&h.events()[..], [Event::BadInput { .. }]));
    h.request(
        Millis(1),
        2,
        Message::PeerListReq {
            requester: "x".into(),
        },
    );
    assert!(
        matches!(&h.replies()[..], [(ConnId(2), Message::Error { reason })] if reason.contains("not a seed"))
    );
    h.request(Millis(1), 3, pong(None));
    assert!(matches!(
        &h.replies()[..],
        [(ConnId(3), Message::Error { .. })]
    ));
    let counters = h.peer.status().counters;
    assert!(counters.contains(&("bad_input".to_string(), 3)));
    let mut names: Vec<&String> = counters.iter().map(|(n, _)| n).collect();
    let before = names.clone();
    names.sort();
    assert_eq!(names, before, "counters not sorted by name");
}

#[test]
fn ping_is_answered_with_degree() {
    let mut h = Harness::bootstrapped(settings(), &[ep(7001), ep(7002)]);
    h.request(Millis(1), 5, ping());
    assert_eq!(
        h.replies(),
        vec![(
            ConnId(5),
            Message::Pong(Pong {
                responder: ep(ME),
                degree: Some(2),
                incarnation: std::num::NonZeroU32::new(1),
            })
        )]
    );
}

#[test]
fn same_inputs_same_outputs() {
    let run = || {
        let mut h = Harness::new(settings());
        let mut log = format!("{:?}", h.out);
        h.register_and_list(Millis(0), &[ep(7001), ep(7002), ep(7003), ep(7004)]);
        log.push_str(&format!("{:?}", h.out));
        log
    };
    assert_eq!(run(), run());
}

/// Hot-path throughput: `cargo test -p gossip-core --release -- --ignored --nocapture gossip_throughput`.
/// Each text arrives from all 4 neighbours (1 first-time + 3 duplicates, as in a real
/// overlay); best of 5 runs, since the machine is shared.
#[test]
#[ignore = "benchmark"]
fn gossip_throughput() {
    let neighbours: Vec<Endpoint> = (0..4).map(|i| ep(7001 + i)).collect();
    let texts: Vec<Arc<str>> = (0..250_000u32)
        .map(|i| Arc::from(format!("1767225600:127.0.0.1:{i}")))
        .collect();
    let mut best = std::time::Duration::MAX;
    let mut inputs = 0usize;
    let mut outs = 0usize;
    for _ in 0..5 {
        let mut h = Harness::bootstrapped(settings(), &neighbours);
        (inputs, outs) = (0, 0);
        let start = std::time::Instant::now();
        for text in &texts {
            for &sender in &neighbours {
                let msg = Message::Gossip(Gossip {
                    body: Arc::new(GossipBody {
                        text: Arc::clone(text),
                        origin_ip: sender.ip(),
                        origin_port: Some(7001),
                        msg_no: 1,
                    }),
                    sender,
                    hops: 1,
                });
                h.peer.handle(
                    Millis(1),
                    Input::Request {
                        conn: ConnId(1),
                        msg,
                    },
                );
                outs += h.peer.drain_outputs().count();
                inputs += 1;
            }
        }
        best = best.min(start.elapsed());
    }
    eprintln!(
        "{inputs} gossip inputs ({outs} outputs) in {best:?}: {:.0} ns/input, {:.1} M inputs/s",
        best.as_nanos() as f64 / inputs as f64,
        inputs as f64 / best.as_secs_f64() / 1e6
    );
}

// ----- randomised totality --------------------------------------------------------------------

/// A plausible answer (or failure) to a request the peer sent.
fn random_outcome(
    rng: &mut Rng,
    to: Endpoint,
    req: &Message,
    pool: &[Endpoint],
) -> Result<Message, Failure> {
    if rng.chance(0.2) {
        return Err(Failure::Timeout);
    }
    if rng.chance(0.05) {
        return Ok(Message::error("random"));
    }
    Ok(match req {
        Message::RegisterReq(_) => register_ok(rng.chance(0.7), Some(rng.below(3))),
        Message::PeerListReq { .. } => {
            let k = rng.below(pool.len() as u64 + 1) as usize;
            let mut peers = rng.sample(pool, k);
            if rng.chance(0.1) {
                peers.push(ep(ME));
            }
            let entry = rng.chance(0.1).then(|| (rng.below(3), Status::Removed));
            peer_list(to, &peers, entry)
        }
        Message::Ping(_) => pong(Some(rng.below(6) as u32)),
        Message::Hello(_) => Message::HelloAck(Box::new(HelloAck {
            accepted: rng.chance(0.7),
            peer: to,
            degree: rng.below(4) as u32,
            incarnation: Some(rng.below(3)),
        })),
        Message::SuspectReq(r) => ack(r.suspect, rng.chance(0.5), to),
        Message::DeadReport(_) => Message::DeadResult(DeadResult {
            proposal_id: "p".into(),
            success: rng.chance(0.5),
            yes_votes: 1,
            quorum: 2,
        }),
        Message::Gossip(_) => Message::GossipAck(GossipAck {
            accepted: true,
            duplicate: false,
        }),
        other => panic!("peer sent an unexpected request {other:?}"),
    })
}

/// A random request from the outside world, valid or not.
fn random_request(rng: &mut Rng, pool: &[Endpoint]) -> Input {
    let who = pool[rng.below(pool.len() as u64) as usize];
    let msg = match rng.below(9) {
        0 => hello(if rng.chance(0.1) { ep(ME) } else { who }),
        1 | 2 => gossip(
            &format!("1767225600:127.0.0.1:{}", rng.below(20)),
            7001 + rng.below(3) as u16,
            who,
            1 + rng.below(5) as u32,
        ),
        3 => ping(),
        4 => Message::SuspectReq(Box::new(SuspectReq {
            suspect: pool[rng.below(pool.len() as u64) as usize],
            requester: who,
        })),
        5 => Message::StatusReq,
        6 => Message::RegisterReq(Box::new(RegisterReq {
            peer: who,
            incarnation: None,
        })),
        7 => pong(None),
        _ => {
            return Input::Malformed {
                conn: ConnId(0),
                error: DecodeError::Syntax("junk".into()),
            }
        }
    };
    Input::Request {
        conn: ConnId(0),
        msg,
    }
}

/// Drains the peer's outputs and checks them: sends are requests, not to itself; a
/// `DEAD_REPORT` goes out only with a consensus verdict; each request is answered once.
/// Returns how many first-time gossip deliveries it saw.
fn check_outputs(
    seed: u64,
    peer: &mut Peer,
    pending: &mut Vec<(Endpoint, Message)>,
    open: &mut BTreeSet<u64>,
) -> usize {
    let outs: Vec<Output> = peer.drain_outputs().collect();
    let consensus: Vec<Endpoint> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::SuspicionVerdict {
                suspect,
                consensus: true,
                ..
            }) => Some(*suspect),
            _ => None,
        })
        .collect();
    let mut first = 0;
    for o in outs {
        match o {
            Output::Send { to, msg, .. } => {
                assert!(msg.is_request(), "seed={seed}: sent a reply {msg:?}");
                assert_ne!(to, ep(ME), "seed={seed}: sent to itself");
                if let Message::DeadReport(r) = &msg {
                    assert!(
                        consensus.contains(&r.dead),
                        "seed={seed}: report without consensus"
                    );
                }
                pending.push((to, msg));
            }
            Output::Reply { conn, .. } => {
                assert!(
                    open.remove(&conn.0),
                    "seed={seed}: second reply on {conn:?}"
                );
            }
            Output::Event(Event::GossipFirstReceived { .. }) => first += 1,
            Output::Event(_) => {}
        }
    }
    assert!(peer.known.len() <= 4 * 256 && peer.witness_pending <= MAX_PENDING_WITNESS);
    assert!(
        peer.neighbours.len() <= 5 + 3,
        "seed={seed}: degree {}",
        peer.neighbours.len()
    );
    first
}

/// Random schedules of requests, responses (in any order, any outcome) and ticks: the peer
/// never panics, answers every request exactly once, reports a death only on a peer-level
/// consensus, delivers each gossip at most once, and stays within its bounds.
#[test]
fn random_schedules_keep_the_promises() {
    let pool: Vec<Endpoint> = (7001..7013).map(ep).collect();
    let (mut suspicions, mut reports, mut bootstrapped, mut firsts) = (0, 0, 0, 0);
    for seed in 0..200u64 {
        let s = Settings {
            min_degree: 3,
            max_degree: 5,
            probe_misses: 2,
            ..settings()
        };
        let mut peer = Peer::new(init_with(s, seed), Millis(0)).expect("valid settings");
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut now = Millis(0);
        let mut pending: Vec<(Endpoint, Message)> = Vec::new();
        let mut open: BTreeSet<u64> = BTreeSet::new();
        let mut delivered: BTreeSet<u64> = BTreeSet::new();
        check_outputs(seed, &mut peer, &mut pending, &mut open);
        for conn in 1..=400u64 {
            match rng.below(4) {
                0 if !pending.is_empty() => {
                    let i = rng.below(pending.len() as u64) as usize;
                    let (to, request) = pending.swap_remove(i);
                    let outcome = random_outcome(&mut rng, to, &request, &pool);
                    let input = Input::Response {
                        to,
                        request,
                        outcome,
                    };
                    peer.handle(now, input);
                }
                1 => {
                    let mut input = random_request(&mut rng, &pool);
                    let mut key = None;
                    match &mut input {
                        Input::Request { conn: c, msg } => {
                            *c = ConnId(conn);
                            if let Message::Gossip(g) = msg {
                                key = Some(gossip_key(&g.body.text, g.body.origin_port).hash);
                            }
                        }
                        Input::Malformed { conn: c, .. } => *c = ConnId(conn),
                        _ => {}
                    }
                    open.insert(conn);
                    peer.handle(now, input);
                    let first = check_outputs(seed, &mut peer, &mut pending, &mut open);
                    if let Some(k) = key {
                        assert!(first <= 1, "seed={seed}");
                        if first == 1 {
                            assert!(delivered.insert(k), "seed={seed}: delivered twice");
                        }
                    }
                }
                _ => {
                    if let Some(at) = peer.next_deadline() {
                        now = now.max(at);
                    }
                    now = now.after(rng.below(300));
                    peer.handle(now, Input::Tick);
                }
            }
            check_outputs(seed, &mut peer, &mut pending, &mut open);
        }
        // Quiesce: answer everything outstanding (no new requests, no ticks).
        for _ in 0..10_000 {
            let Some((to, request)) = pending.pop() else {
                break;
            };
            let outcome = random_outcome(&mut rng, to, &request, &pool);
            peer.handle(
                now,
                Input::Response {
                    to,
                    request,
                    outcome,
                },
            );
            check_outputs(seed, &mut peer, &mut pending, &mut open);
        }
        assert!(pending.is_empty(), "seed={seed}: never quiesced");
        assert!(
            open.is_empty(),
            "seed={seed}: requests never answered: {open:?}"
        );
        assert!(
            peer.pings.is_empty() && peer.suspicions.is_empty() && peer.selection.is_none(),
            "seed={seed}: leaked rounds"
        );
        suspicions += peer.counters.suspicions;
        reports += peer.counters.dead_reports;
        firsts += peer.gossip_counts.first;
        bootstrapped += u32::from(peer.bootstrapped);
    }
    // The schedules must reach the interesting states, or the checks above prove nothing.
    eprintln!(
        "suspicions={suspicions} reports={reports} bootstrapped={bootstrapped} firsts={firsts}"
    );
    assert!(suspicions > 10 && reports > 5 && bootstrapped > 50 && firsts > 100);
}

#[test]
fn accepted_regreet_keeps_probe_misses() {
    let (a, b) = (ep(7001), ep(7002));
    let mut h = Harness::bootstrapped(settings(), &[a, b]);
    probe_round(&mut h, a);
    probe_round(&mut h, a);
    assert_eq!(h.peer.neighbours.get(&a).map(|l| l.misses), Some(2));
    let at = h.peer.timers.get(&Timer::Refresh).expect("refresh timer");
    h.tick(at);
    let (to, req) = h.sends_of("HELLO")[0].clone();
    assert_eq!(to, a);
    let accept = HelloAck {
        accepted: true,
        peer: a,
        degree: 2,
        incarnation: None,
    };
    h.respond(at, a, req, Ok(Message::HelloAck(Box::new(accept))));
    assert!(
        h.events().is_empty(),
        "re-added an existing neighbour: {:?}",
        h.events()
    );
    assert_eq!(h.peer.neighbours.get(&a).map(|l| l.misses), Some(2));
}

// ----- a small network -------------------------------------------------------------------------

/// Peers wired together in memory with one idealised seed authority: every message is
/// delivered at once, in order, unless its target is down. Good enough to check that the
/// pieces of the peer fit (the real simulator lives in `driver-sim`).
struct MiniNet {
    peers: BTreeMap<Endpoint, Peer>,
    /// Crashed: runs nothing.
    down: BTreeSet<Endpoint>,
    /// Partitioned: runs, but every message to or from it fails.
    cut: BTreeSet<Endpoint>,
    /// The seeds' Peer List, with each peer's incarnation.
    pl: BTreeMap<Endpoint, u64>,
    removed: BTreeSet<Endpoint>,
    /// Requests delivered to a peer and not answered yet: conn -> (asker, target, request).
    conns: BTreeMap<u64, (Endpoint, Endpoint, Message)>,
    next_conn: u64,
    queue: VecDeque<(Endpoint, Input)>,
    events: Vec<(Endpoint, Event)>,
    now: Millis,
}

impl MiniNet {
    fn new() -> MiniNet {
        MiniNet {
            peers: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            pl: BTreeMap::new(),
            removed: BTreeSet::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            queue: VecDeque::new(),
            events: Vec::new(),
            now: Millis(0),
        }
    }

    fn join(&mut self, port: u16, settings: Settings) {
        let mut init = init_with(settings, u64::from(port));
        init.me = ep(port);
        let peer = Peer::new(init, self.now).expect("valid settings");
        self.peers.insert(ep(port), peer);
        self.collect(ep(port));
    }

    /// The seeds' answer to a request, as one ideal authority.
    fn seed_answer(&mut self, req: &Message) -> Message {
        match req {
            Message::RegisterReq(r) => {
                let inc = r
                    .incarnation
                    .unwrap_or(0)
                    .max(self.pl.get(&r.peer).copied().unwrap_or(0));
                self.pl.insert(r.peer, inc);
                self.removed.remove(&r.peer);
                register_ok(true, Some(inc))
            }
            Message::PeerListReq { requester } => {
                let me: Option<Endpoint> = requester.parse().ok();
                let peers: Vec<Endpoint> =
                    self.pl.keys().copied().filter(|p| Some(*p) != me).collect();
                let entry = me
                    .filter(|m| self.removed.contains(m))
                    .map(|m| (self.pl.get(&m).copied().unwrap_or(0), Status::Removed));
                let mut resp = peer_list(seeds3()[0], &peers, entry);
                if let Message::PeerListResp(r) = &mut resp {
                    r.incarnations = peers.iter().map(|p| (*p, self.pl[p])).collect();
                }
                resp
            }
            Message::DeadReport(r) => {
                // The ideal authority removes only what really is down (seeds probe too).
                let success = self.down.contains(&r.dead) || self.cut.contains(&r.dead);
                if success {
                    self.pl.remove(&r.dead);
                    self.removed.insert(r.dead);
                }
                Message::DeadResult(DeadResult {
                    proposal_id: String::new(),
                    success,
                    yes_votes: 2,
                    quorum: 2,
                })
            }
            other => Message::error(format!("seed got {}", other.type_name())),
        }
    }

    fn collect(&mut self, from: Endpoint) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let outs: Vec<Output> = peer.drain_outputs().collect();
        for out in outs {
            match out {
                Output::Send { to, msg, .. } => {
                    if self.cut.contains(&from) || self.cut.contains(&to) {
                        let outcome = Err(Failure::Timeout);
                        self.queue.push_back((
                            from,
                            Input::Response {
                                to,
                                request: msg,
                                outcome,
                            },
                        ));
                    } else if seeds3().contains(&to) {
                        let reply = self.seed_answer(&msg);
                        let input = Input::Response {
                            to,
                            request: msg,
                            outcome: Ok(reply),
                        };
                        self.queue.push_back((from, input));
                    } else if self.down.contains(&to) || !self.peers.contains_key(&to) {
                        let outcome = Err(Failure::Unreachable);
                        self.queue.push_back((
                            from,
                            Input::Response {
                                to,
                                request: msg,
                                outcome,
                            },
                        ));
                    } else {
                        let conn = self.next_conn;
                        self.next_conn += 1;
                        self.conns.insert(conn, (from, to, msg.clone()));
                        self.queue.push_back((
                            to,
                            Input::Request {
                                conn: ConnId(conn),
                                msg,
                            },
                        ));
                    }
                }
                Output::Reply { conn, msg } => {
                    if let Some((asker, target, request)) = self.conns.remove(&conn.0) {
                        let input = Input::Response {
                            to: target,
                            request,
                            outcome: Ok(msg),
                        };
                        self.queue.push_back((asker, input));
                    }
                }
                Output::Event(e) => self.events.push((from, e)),
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((to, input)) = self.queue.pop_front() {
            if self.down.contains(&to) {
                continue;
            }
            if let Some(peer) = self.peers.get_mut(&to) {
                peer.handle(self.now, input);
                self.collect(to);
            }
        }
    }

    /// Runs until `until`, ticking peers at their deadlines.
    fn run_until(&mut self, until: Millis) {
        loop {
            self.deliver_all();
            let next = self
                .peers
                .iter()
                .filter(|(p, _)| !self.down.contains(p))
                .filter_map(|(_, peer)| peer.next_deadline())
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    let due: Vec<Endpoint> = self
                        .peers
                        .iter()
                        .filter(|(p, peer)| {
                            !self.down.contains(p) && peer.next_deadline() <= Some(self.now)
                        })
                        .map(|(p, _)| *p)
                        .collect();
                    for p in due {
                        if let Some(peer) = self.peers.get_mut(&p) {
                            peer.handle(self.now, Input::Tick);
                        }
                        self.collect(p);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }
}

fn net_settings() -> Settings {
    Settings {
        max_gossip: 3,
        min_degree: 2,
        ..Settings::default()
    }
}

/// Eight peers on ports 8001–8008 joining 300 ms apart, with [`net_settings`].
fn staggered_net() -> (MiniNet, Vec<u16>) {
    let mut net = MiniNet::new();
    let ports: Vec<u16> = (8001..8009).collect();
    for (i, &port) in ports.iter().enumerate() {
        net.run_until(Millis(i as u64 * 300));
        net.join(port, net_settings());
    }
    (net, ports)
}

#[test]
fn small_network_delivers_every_gossip_once_to_everyone() {
    let (mut net, ports) = staggered_net();
    net.run_until(Millis(40_000));
    for &port in &ports {
        let me = ep(port);
        // All peers share one IP, so texts coincide across origins (the port tells them
        // apart): count first deliveries against the messages the others generated. Equal
        // means none missed and none delivered twice.
        let generated: usize = net
            .events
            .iter()
            .filter(|(p, e)| *p != me && matches!(e, Event::GossipGenerated { .. }))
            .count();
        assert_eq!(generated, 3 * (ports.len() - 1));
        let received = net
            .events
            .iter()
            .filter(|(p, e)| *p == me && matches!(e, Event::GossipFirstReceived { .. }))
            .count();
        assert_eq!(received, generated, "{me} missed gossip");
        let degree = net.peers[&me].neighbours.len();
        assert!(degree >= 2, "{me} has degree {degree}");
    }
}

#[test]
fn small_network_removes_a_crashed_peer_and_repairs() {
    let (mut net, _) = staggered_net();
    net.run_until(Millis(3_000));
    let victim = ep(8004);
    net.down.insert(victim);
    net.run_until(Millis(30_000));
    assert!(net.removed.contains(&victim), "crashed peer never removed");
    assert_eq!(
        net.removed.len(),
        1,
        "a live peer was removed: {:?}",
        net.removed
    );
    for (&p, peer) in &net.peers {
        if p == victim {
            continue;
        }
        assert!(
            !peer.neighbours.contains_key(&victim),
            "{p} still linked to the dead"
        );
        assert!(
            peer.neighbours.len() >= 2,
            "{p} not repaired: {:?}",
            peer.neighbours.keys().collect::<Vec<_>>()
        );
    }
    let reported = net
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::DeadReported { suspect, .. } if *suspect == victim));
    assert!(reported);
}

/// Every link is known at both ends.
fn assert_symmetric(net: &MiniNet) {
    for (&p, peer) in &net.peers {
        for &n in peer.neighbours.keys() {
            let back = net
                .peers
                .get(&n)
                .is_some_and(|q| q.neighbours.contains_key(&p));
            assert!(back, "{p} -> {n} is one-sided");
        }
    }
}

#[test]
fn small_network_partitioned_peer_is_removed_then_rejoins() {
    let (mut net, _) = staggered_net();
    net.run_until(Millis(3_000));
    assert_symmetric(&net);
    let victim = ep(8004);
    net.cut.insert(victim);
    net.run_until(Millis(15_000));
    assert!(
        net.removed.contains(&victim),
        "partitioned peer never removed"
    );
    net.cut.remove(&victim);
    net.run_until(Millis(60_000));
    let rejoined = net
        .events
        .iter()
        .any(|(p, e)| *p == victim && matches!(e, Event::Rejoining { .. }));
    assert!(rejoined, "victim never learned it was removed");
    assert!(!net.removed.contains(&victim), "victim not admitted again");
    let status = net.peers[&victim].status();
    let RoleStatus::Peer(st) = status.role else {
        panic!("not a peer")
    };
    assert!(st.registered && st.incarnation >= 1, "{st:?}");
    assert!(st.neighbours.len() >= 2, "victim not reconnected: {st:?}");
    assert_symmetric(&net);
}

/// Preferential attachment should grow hubs: with peers joining one by one, the best-linked
/// peer ends far above the minimum degree while most stay near it.
#[test]
fn small_network_grows_hubs() {
    let mut net = MiniNet::new();
    let settings = Settings {
        max_gossip: 0,
        ..net_settings()
    };
    let n = 200u16;
    for i in 0..n {
        net.run_until(Millis(u64::from(i) * 200));
        net.join(9000 + i, settings.clone());
    }
    net.run_until(Millis(u64::from(n) * 200 + 5_000));
    let mut degrees: Vec<usize> = net.peers.values().map(|p| p.neighbours.len()).collect();
    degrees.sort_unstable();
    let max = degrees.last().copied().unwrap_or(0);
    let median = degrees[degrees.len() / 2];
    eprintln!("degrees: min {} median {median} max {max}", degrees[0]);
    assert!(degrees[0] >= 1, "an isolated peer");
    assert!(max >= 5 * median, "no hub: median {median}, max {max}");
    assert_symmetric(&net);
}

/// The layout [`Peer`]'s doc describes: with the simulator's 16 bytes in front, lines start
/// at peer offsets 48, 112, 176 and 240.
#[test]
fn a_gossip_delivery_reads_three_lines_of_the_peer_and_its_answer_one() {
    use std::mem::{offset_of, size_of};
    let line = |offset: usize| (offset + 16) / 64;
    let end = |offset: usize, size: usize| line(offset + size - 1);
    // Every input: the outputs and the earliest timer share the simulator's line.
    assert_eq!(line(offset_of!(Peer, outputs)), 0);
    assert_eq!(end(offset_of!(Peer, timers), 16), 0, "FewTimers::earliest");
    // Every gossip: the clock, the counters and the neighbours.
    assert_eq!(line(offset_of!(Peer, unix_ms_at_zero)), 1);
    assert_eq!(line(offset_of!(Peer, gossip_counts)), 1);
    assert_eq!(
        end(offset_of!(Peer, neighbours), size_of::<Neighbours>()),
        1
    );
    // The seen set's first 64 bytes (recent cache and table pointer) are one line.
    assert_eq!(line(offset_of!(Peer, seen)), 2);
    assert_eq!(end(offset_of!(Peer, seen), 64), 2);
    // A first receipt forwards with `me` and the request deadline.
    assert_eq!(line(offset_of!(Peer, me)), 4);
    assert_eq!(end(offset_of!(Peer, request_timeout_ms), 8), 4);
}
