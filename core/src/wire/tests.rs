//! Tests of the codec: round trips, the reference's spellings, every decoding rule and error
//! of the module doc; the fast path and the address readers are in `fast_path.rs`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use super::decode::decode_general;
use super::encode::{write_endpoint, write_ip, write_str, write_ts, write_u64};
use super::*;
use crate::msg::*;

mod fast_path;

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn dec(s: &str) -> Result<Message, DecodeError> {
    decode(s.as_bytes())
}

fn line(kind: &str, payload: &str) -> String {
    format!(r#"{{"type": "{kind}", "payload": {payload}, "ts": 1767225600.25}}"#)
}

fn roundtrip(m: &Message) {
    let mut out = Vec::new();
    encode(m, 1767225600.25, &mut out);
    assert_eq!(out.last(), Some(&b'\n'));
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    let body = out.strip_suffix(b"\n").unwrap();
    assert_eq!(
        decode(body).as_ref(),
        Ok(m),
        "{}",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn protocol_md_example_decodes() {
    let l = r#"{"type": "REGISTER_REQ", "payload": {"peer_ip": "127.0.0.1", "peer_port": 6001}, "ts": 1767225600.25}"#;
    let m = Message::RegisterReq(Box::new(RegisterReq {
        peer: ep("127.0.0.1:6001"),
        incarnation: None,
    }));
    assert_eq!(dec(l), Ok(m.clone()));
    assert_eq!(dec(&format!("  {l} \r")), Ok(m.clone()));
    roundtrip(&m);
}

#[test]
fn reference_style_lines_decode() {
    let cases: Vec<(String, Message)> = vec![
        (
            line(
                "REGISTER_COMMIT",
                r#"{"proposal_id": "p1", "success": true, "yes_votes": 2, "quorum": 2}"#,
            ),
            Message::RegisterResult(Box::new(RegisterResult {
                proposal_id: "p1".into(),
                success: true,
                yes_votes: 2,
                quorum: 2,
                incarnation: None,
                error: None,
            })),
        ),
        (
            line(
                "REGISTER_COMMIT",
                r#"{"success": false, "error": "no quorum"}"#,
            ),
            Message::RegisterResult(Box::new(RegisterResult {
                proposal_id: String::new(),
                success: false,
                yes_votes: 0,
                quorum: 0,
                incarnation: None,
                error: Some("no quorum".into()),
            })),
        ),
        (
            line(
                "REGISTER_VOTE",
                r#"{"action": "REQUEST", "proposal_id": "p", "peer_ip": "10.0.0.1", "peer_port": 6001, "proposer": "10.0.0.2:5000"}"#,
            ),
            Message::RegisterVote(Box::new(VoteReq {
                proposal_id: "p".into(),
                peer: ep("10.0.0.1:6001"),
                incarnation: None,
                proposer: ep("10.0.0.2:5000"),
            })),
        ),
        (
            line(
                "REGISTER_VOTE",
                r#"{"action": "RESPONSE", "proposal_id": "p", "vote": false, "voter": "10.0.0.3:5000"}"#,
            ),
            Message::RegisterVoteResp(Box::new(VoteResp {
                proposal_id: "p".into(),
                vote: false,
                voter: ep("10.0.0.3:5000"),
                known_incarnation: None,
            })),
        ),
        (
            line(
                "REGISTER_COMMIT",
                r#"{"proposal_id": "p", "decision": "ABORT", "peer_ip": "10.0.0.1", "peer_port": 6001, "source_seed": "10.0.0.2:5000"}"#,
            ),
            Message::RegisterCommit(Box::new(CommitSync {
                proposal_id: "p".into(),
                decision: Decision::Abort,
                peer: ep("10.0.0.1:6001"),
                source_seed: ep("10.0.0.2:5000"),
                incarnation: None,
                votes: vec![],
            })),
        ),
        (
            line("REGISTER_COMMIT", r#"{"ack": true}"#),
            Message::RegisterCommitAck,
        ),
        (
            line("PEER_LIST_REQ", r#"{"requester": "127.0.0.1"}"#),
            Message::PeerListReq {
                requester: "127.0.0.1".into(),
            },
        ),
        (
            line("PEER_LIST_REQ", "{}"),
            Message::PeerListReq {
                requester: String::new(),
            },
        ),
        (
            line(
                "PEER_LIST_RESP",
                r#"{"peers": ["127.0.0.1:6001", "[::1]:6002"], "seed": "127.0.0.1:5000"}"#,
            ),
            Message::PeerListResp(Box::new(PeerListResp {
                peers: vec![ep("127.0.0.1:6001"), ep("[::1]:6002")],
                seed: ep("127.0.0.1:5000"),
                incarnations: vec![],
                total: None,
                requester_entry: None,
            })),
        ),
        (
            line(
                "HELLO",
                r#"{"peer_ip": "127.0.0.1", "peer_port": 6001, "degree": 3}"#,
            ),
            Message::Hello(Box::new(Hello {
                peer: ep("127.0.0.1:6001"),
                degree: 3,
                incarnation: None,
            })),
        ),
        (
            line(
                "HELLO_ACK",
                r#"{"accepted": true, "peer_ip": "::1", "peer_port": 6002, "degree": 0}"#,
            ),
            Message::HelloAck(Box::new(HelloAck {
                accepted: true,
                peer: ep("[::1]:6002"),
                degree: 0,
                incarnation: None,
            })),
        ),
        (
            line(
                "GOSSIP_MSG",
                r#"{"message": "1767225600:127.0.0.1:1", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:6001"}"#,
            ),
            Message::Gossip(Gossip {
                body: Arc::new(GossipBody {
                    text: "1767225600:127.0.0.1:1".into(),
                    origin_ip: "127.0.0.1".parse().unwrap(),
                    origin_port: None,
                    msg_no: 1,
                    app: None,
                }),
                sender: ep("127.0.0.1:6001"),
                hops: 0,
            }),
        ),
        (
            line("GOSSIP_MSG", r#"{"accepted": true, "duplicate": true}"#),
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: true,
                prune: false,
                app: false,
            }),
        ),
        (
            line("GOSSIP_MSG", r#"{"accepted": false}"#),
            Message::GossipAck(GossipAck {
                accepted: false,
                duplicate: false,
                prune: false,
                app: false,
            }),
        ),
        (
            line(
                "GOSSIP_MSG",
                r#"{"accepted": true, "duplicate": true, "prune": true}"#,
            ),
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: true,
                prune: true,
                app: false,
            }),
        ),
        (
            line(
                "GOSSIP_DIGEST",
                r#"{"sender": "127.0.0.1:6001", "first": 1767225580, "counts": [0, 2], "hashes": [0, 17]}"#,
            ),
            Message::Digest(Box::new(GossipDigest {
                sender: ep("127.0.0.1:6001"),
                first: 1_767_225_580,
                counts: vec![0, 2],
                hashes: vec![0, 17],
            })),
        ),
        (
            line(
                "GOSSIP_DIGEST",
                r#"{"responder": "127.0.0.1:6002", "ids": [[1767225581, 9, 8], [1767225582]]}"#,
            ),
            Message::DigestResp(Box::new(DigestResp {
                responder: ep("127.0.0.1:6002"),
                ids: vec![
                    IdGroup {
                        second: 1_767_225_581,
                        keys: vec![9, 8],
                    },
                    IdGroup {
                        second: 1_767_225_582,
                        keys: vec![],
                    },
                ],
            })),
        ),
        (
            line("IHAVE", r#"{"sender": "127.0.0.1:6001", "ids": []}"#),
            Message::IHave(Box::new(IHave {
                sender: ep("127.0.0.1:6001"),
                ids: vec![],
            })),
        ),
        (line("IHAVE", r#"{"ack": true}"#), Message::IHaveAck),
        (
            line(
                "GOSSIP_PULL",
                r#"{"sender": "127.0.0.1:6001", "ids": [[1767225581, 9]], "graft": true}"#,
            ),
            Message::Pull(Box::new(GossipPull {
                sender: ep("127.0.0.1:6001"),
                ids: vec![IdGroup {
                    second: 1_767_225_581,
                    keys: vec![9],
                }],
                graft: true,
            })),
        ),
        (
            line(
                "GOSSIP_PULL",
                r#"{"responder": "127.0.0.1:6002", "bodies": [{"message": "1767225581:127.0.0.1:1", "origin_ip": "127.0.0.1", "msg_no": 1}]}"#,
            ),
            Message::PullResp(Box::new(PullResp {
                responder: ep("127.0.0.1:6002"),
                bodies: vec![Arc::new(GossipBody {
                    text: "1767225581:127.0.0.1:1".into(),
                    origin_ip: "127.0.0.1".parse().unwrap(),
                    origin_port: None,
                    msg_no: 1,
                    app: None,
                })],
            })),
        ),
        (
            line(
                "SUSPECT_REQ",
                r#"{"dead_ip": "127.0.0.1", "dead_port": 6003, "requester": "127.0.0.1:6001"}"#,
            ),
            Message::SuspectReq(Box::new(SuspectReq {
                suspect: ep("127.0.0.1:6003"),
                requester: ep("127.0.0.1:6001"),
            })),
        ),
        (
            line(
                "SUSPECT_ACK",
                r#"{"suspect": "127.0.0.1:6003", "alive": false, "confirmer": "127.0.0.1:6002"}"#,
            ),
            Message::SuspectAck(Box::new(SuspectAck {
                suspect: ep("127.0.0.1:6003"),
                alive: false,
                confirmer: ep("127.0.0.1:6002"),
            })),
        ),
        (
            line(
                "DEAD_REPORT",
                r#"{"dead_ip": "127.0.0.1", "dead_port": 6003, "self_ip": "127.0.0.1", "timestamp": 1767225600.9, "reporter": "127.0.0.1:6001", "text": "Dead Node:127.0.0.1:6003:1767225600:127.0.0.1"}"#,
            ),
            Message::DeadReport(Box::new(DeadReport {
                dead: ep("127.0.0.1:6003"),
                self_ip: "127.0.0.1".parse().unwrap(),
                timestamp: 1767225600,
                reporter: ep("127.0.0.1:6001"),
                text: Some("Dead Node:127.0.0.1:6003:1767225600:127.0.0.1".into()),
                incarnation: None,
                witnesses: vec![],
            })),
        ),
        (
            line(
                "SEED_DEAD_COMMIT",
                r#"{"proposal_id": "d", "success": true, "yes_votes": 3, "quorum": 2}"#,
            ),
            Message::DeadResult(DeadResult {
                proposal_id: "d".into(),
                success: true,
                yes_votes: 3,
                quorum: 2,
            }),
        ),
        (
            line(
                "SEED_DEAD_VOTE",
                r#"{"action": "REQUEST", "proposal_id": "d", "dead_ip": "127.0.0.1", "dead_port": 6003, "proposer": "127.0.0.1:5000"}"#,
            ),
            Message::DeadVote(Box::new(VoteReq {
                proposal_id: "d".into(),
                peer: ep("127.0.0.1:6003"),
                incarnation: None,
                proposer: ep("127.0.0.1:5000"),
            })),
        ),
        (
            line(
                "SEED_DEAD_VOTE",
                r#"{"action": "RESPONSE", "proposal_id": "d", "vote": true, "voter": "127.0.0.1:5001", "known_incarnation": null}"#,
            ),
            Message::DeadVoteResp(Box::new(VoteResp {
                proposal_id: "d".into(),
                vote: true,
                voter: ep("127.0.0.1:5001"),
                known_incarnation: None,
            })),
        ),
        (
            line(
                "SEED_DEAD_COMMIT",
                r#"{"proposal_id": "d", "decision": "COMMIT", "dead_ip": "127.0.0.1", "dead_port": 6003, "source_seed": "127.0.0.1:5000", "votes": ["127.0.0.1:5000", "127.0.0.1:5001"]}"#,
            ),
            Message::DeadCommit(Box::new(CommitSync {
                proposal_id: "d".into(),
                decision: Decision::Commit,
                peer: ep("127.0.0.1:6003"),
                source_seed: ep("127.0.0.1:5000"),
                incarnation: None,
                votes: vec![ep("127.0.0.1:5000"), ep("127.0.0.1:5001")],
            })),
        ),
        (
            line("SEED_DEAD_COMMIT", r#"{"ack": true}"#),
            Message::DeadCommitAck,
        ),
        (
            line("ERROR", r#"{"reason": "unknown type"}"#),
            Message::error("unknown type"),
        ),
        (
            line("PING", r#"{"sender": "127.0.0.1:6001"}"#),
            Message::Ping(Ping {
                sender: ep("127.0.0.1:6001"),
                suspected_by: None,
            }),
        ),
        (
            line("PONG", r#"{"responder": "127.0.0.1:6002", "degree": 4}"#),
            Message::Pong(Pong {
                responder: ep("127.0.0.1:6002"),
                degree: Some(4),
                incarnation: None,
                leaving: false,
            }),
        ),
        (
            line(
                "PONG",
                r#"{"responder": "127.0.0.1:6002", "degree": 4, "incarnation": 7}"#,
            ),
            Message::Pong(Pong {
                responder: ep("127.0.0.1:6002"),
                degree: Some(4),
                incarnation: NonZeroU32::new(7),
                leaving: false,
            }),
        ),
        (
            line(
                "SEED_CONFIRM",
                r#"{"seed": "127.0.0.1:5000", "facts": [{"peer": "127.0.0.1:6001", "incarnation": 2, "status": "REMOVED"}]}"#,
            ),
            Message::Confirm(Box::new(ConfirmReq {
                seed: ep("127.0.0.1:5000"),
                facts: vec![Fact {
                    peer: ep("127.0.0.1:6001"),
                    incarnation: 2,
                    status: Status::Removed,
                }],
            })),
        ),
        (
            line(
                "SEED_CONFIRM",
                r#"{"seed": "127.0.0.1:5001", "vouched": [true, false]}"#,
            ),
            Message::ConfirmResp(Box::new(ConfirmResp {
                seed: ep("127.0.0.1:5001"),
                vouched: vec![true, false],
            })),
        ),
        (
            line(
                "SEED_SYNC",
                r#"{"seed": "127.0.0.1:5000", "buckets": [1, 18446744073709551615], "entries": []}"#,
            ),
            Message::SeedSync(Box::new(SeedSync {
                seed: ep("127.0.0.1:5000"),
                buckets: vec![1, u64::MAX],
                entries: vec![],
                reply: false,
            })),
        ),
        (line("STATUS_REQ", "{}"), Message::StatusReq),
    ];
    for (l, want) in cases {
        assert_eq!(dec(&l), Ok(want.clone()), "{l}");
        roundtrip(&want);
    }
}

#[test]
fn status_resp_round_trips_fully() {
    let entry = Entry {
        peer: ep("127.0.0.1:6001"),
        incarnation: 2,
        status: Status::Removed,
        votes: vec![ep("127.0.0.1:5000"), ep("127.0.0.1:5001")],
    };
    let counters = vec![
        ("gossip_in".to_string(), 7),
        ("z \"quoted\"\n".to_string(), 1),
    ];
    let seed = Message::StatusResp(Box::new(StatusResp {
        node: ep("127.0.0.1:5000"),
        role: RoleStatus::Seed(SeedStatus {
            entries: vec![entry],
            pending: 1,
        }),
        counters: counters.clone(),
    }));
    let peer = Message::StatusResp(Box::new(StatusResp {
        node: ep("127.0.0.1:6001"),
        role: RoleStatus::Peer(PeerStatus {
            registered: true,
            incarnation: 3,
            neighbours: vec![ep("[::1]:6002")],
            known_peers: 9,
        }),
        counters,
    }));
    roundtrip(&seed);
    roundtrip(&peer);
}

#[test]
fn extension_fields_round_trip() {
    roundtrip(&Message::PeerListResp(Box::new(PeerListResp {
        peers: vec![ep("127.0.0.1:6001")],
        seed: ep("127.0.0.1:5000"),
        incarnations: vec![(ep("127.0.0.1:6001"), 4), (ep("[::1]:6001"), 1)],
        total: Some(10),
        requester_entry: Some((2, Status::Removed)),
    })));
    roundtrip(&Message::DeadReport(Box::new(DeadReport {
        dead: ep("[::1]:6003"),
        self_ip: "::1".parse().unwrap(),
        timestamp: 5,
        reporter: ep("[::1]:6001"),
        text: None,
        incarnation: Some(3),
        witnesses: vec![ep("[::1]:6002")],
    })));
    roundtrip(&Message::Gossip(Gossip {
        body: Arc::new(GossipBody {
            text: "line\nbreak \"and\" \u{0} nul".into(),
            origin_ip: "::1".parse().unwrap(),
            origin_port: Some(65535),
            msg_no: u32::MAX,
            app: None,
        }),
        sender: ep("[::1]:1"),
        hops: 7,
    }));
}

#[test]
fn gossip_line_is_compact_and_exact() {
    let mut out = Vec::new();
    let m = Message::Gossip(Gossip {
        body: Arc::new(GossipBody {
            text: "1:127.0.0.1:1".into(),
            origin_ip: "127.0.0.1".parse().unwrap(),
            origin_port: Some(6001),
            msg_no: 1,
            app: None,
        }),
        sender: ep("127.0.0.1:6002"),
        hops: 1,
    });
    encode(&m, 2.5, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"type\":\"GOSSIP_MSG\",\"payload\":{\"message\":\"1:127.0.0.1:1\",\"origin_ip\":\"127.0.0.1\",\"origin_port\":6001,\"msg_no\":1,\"sender\":\"127.0.0.1:6002\",\"hops\":1},\"ts\":2.5}\n"
    );
    let mut out = Vec::new();
    encode(&Message::StatusReq, f64::NAN, &mut out);
    assert_eq!(out, b"{\"type\":\"STATUS_REQ\",\"payload\":{},\"ts\":0}\n");
}

#[test]
fn hand_written_numbers_and_addresses_match_std_and_serde() {
    let mut out = Vec::new();
    for v in [
        0,
        1,
        9,
        10,
        99,
        100,
        65535,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ] {
        out.clear();
        write_u64(&mut out, v);
        assert_eq!(out, v.to_string().into_bytes());
    }
    for s in [
        "0.0.0.0:1",
        "127.0.0.1:6001",
        "255.255.255.255:65535",
        "10.0.20.3:80",
    ] {
        let e = ep(s);
        out.clear();
        write_endpoint(&mut out, e);
        assert_eq!(out, format!("\"{e}\"").into_bytes());
        out.clear();
        write_ip(&mut out, e.ip());
        assert_eq!(out, e.ip().to_string().into_bytes());
    }
    let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
        "fe80::1".parse().unwrap(),
        5000,
        0,
        2,
    ));
    out.clear();
    write_endpoint(&mut out, scoped);
    assert_eq!(out, b"\"[fe80::1%2]:5000\"");
    // Timestamps: whole milliseconds are written as serde_json writes the f64, and
    // anything else goes through serde_json itself.
    let mut ms_values: Vec<u64> = vec![0, 1, 10, 100, 999, 1000, 1001, 1_767_225_600_250];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms_values.push(x % 8_589_934_592_000);
        ms_values.push(1_767_225_600_000 + x % 1_000_000_000);
    }
    for ms in ms_values {
        let ts = ms as f64 / 1000.0;
        out.clear();
        write_ts(&mut out, ts);
        assert_eq!(out, serde_json::to_vec(&ts).unwrap(), "{ms} ms");
    }
    for ts in [-1.5, 1e-7, 0.0005, 1.0 / 3.0, 8_589_934_592.0, 1e300] {
        out.clear();
        write_ts(&mut out, ts);
        assert_eq!(out, serde_json::to_vec(&ts).unwrap(), "{ts}");
    }
    for ts in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        out.clear();
        write_ts(&mut out, ts);
        assert_eq!(out, b"0");
    }
}

#[test]
fn strings_are_escaped_only_when_needed() {
    for s in [
        "",
        "plain 1:127.0.0.1:1",
        "caf\u{e9} \u{1f600}",
        "a\"b",
        "a\\b",
        "nl\n",
        "\u{0}",
        "\u{1f}",
        "\u{7f}",
    ] {
        let mut out = Vec::new();
        write_str(&mut out, s);
        assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
    }
}

fn bad(l: &str) -> (&'static str, &'static str) {
    match dec(l) {
        Err(DecodeError::BadField { kind, field, .. }) => (kind, field),
        other => panic!("expected BadField for {l}, got {other:?}"),
    }
}

fn missing(l: &str) -> (&'static str, &'static str) {
    match dec(l) {
        Err(DecodeError::MissingField { kind, field }) => (kind, field),
        other => panic!("expected MissingField for {l}, got {other:?}"),
    }
}

fn hello(port: &str) -> String {
    line(
        "HELLO",
        &format!(r#"{{"peer_ip": "127.0.0.1", "peer_port": {port}, "degree": 1}}"#),
    )
}

#[test]
fn ports_must_be_integers_in_range() {
    for port in [
        "0", "70000", "65536", "-1", "6001.0", "6001.5", "\"6001\"", "true", "[]",
    ] {
        assert_eq!(bad(&hello(port)), ("HELLO", "peer_port"), "{port}");
    }
    for port in ["1", "65535"] {
        assert!(dec(&hello(port)).is_ok(), "{port}");
    }
    let ping = |s: &str| line("PING", &format!(r#"{{"sender": "{s}"}}"#));
    for s in [
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "127.0.0.1",
        "host:5000",
        "::1:5000",
        "",
    ] {
        assert_eq!(bad(&ping(s)), ("PING", "sender"), "{s}");
    }
    assert!(dec(&ping("[::1]:5000")).is_ok());
}

#[test]
fn counts_must_fit_their_type() {
    let h = |d: &str| {
        line(
            "HELLO",
            &format!(r#"{{"peer_ip": "127.0.0.1", "peer_port": 1, "degree": {d}}}"#),
        )
    };
    for d in ["-1", "4294967296", "1.0", "\"1\"", "1e3"] {
        assert_eq!(bad(&h(d)), ("HELLO", "degree"), "{d}");
    }
    assert!(dec(&h("4294967295")).is_ok());
    let inc = line(
        "REGISTER_REQ",
        r#"{"peer_ip": "127.0.0.1", "peer_port": 1, "incarnation": 18446744073709551616}"#,
    );
    assert_eq!(bad(&inc), ("REGISTER_REQ", "incarnation"));
    let ts = |t: &str| {
        line(
            "DEAD_REPORT",
            &format!(
                r#"{{"dead_ip": "127.0.0.1", "dead_port": 1, "self_ip": "127.0.0.1", "timestamp": {t}, "reporter": "127.0.0.1:2"}}"#
            ),
        )
    };
    assert_eq!(bad(&ts("-1.5")), ("DEAD_REPORT", "timestamp"));
    assert_eq!(bad(&ts("1e30")), ("DEAD_REPORT", "timestamp"));
    assert_eq!(bad(&ts("\"5\"")), ("DEAD_REPORT", "timestamp"));
}

#[test]
fn enums_and_bools_are_strict() {
    let commit = |d: &str| {
        line(
            "REGISTER_COMMIT",
            &format!(
                r#"{{"proposal_id": "p", "decision": {d}, "peer_ip": "127.0.0.1", "peer_port": 1, "source_seed": "127.0.0.1:2"}}"#
            ),
        )
    };
    for d in ["\"commit\"", "\"YES\"", "1", "true"] {
        assert_eq!(bad(&commit(d)), ("REGISTER_COMMIT", "decision"), "{d}");
    }
    let ack = |a: &str| {
        line(
            "SUSPECT_ACK",
            &format!(r#"{{"suspect": "127.0.0.1:1", "alive": {a}, "confirmer": "127.0.0.1:2"}}"#),
        )
    };
    for a in ["1", "\"true\"", "0"] {
        assert_eq!(bad(&ack(a)), ("SUSPECT_ACK", "alive"), "{a}");
    }
    let entry = |s: &str| {
        line(
            "SEED_SYNC",
            &format!(
                r#"{{"seed": "127.0.0.1:1", "buckets": [], "entries": [{{"peer": "127.0.0.1:2", "incarnation": 0, "status": {s}, "votes": []}}]}}"#
            ),
        )
    };
    assert!(dec(&entry("\"ALIVE\"")).is_ok());
    assert_eq!(bad(&entry("\"DEAD\"")), ("SEED_SYNC", "entries"));
    let vote = line(
        "REGISTER_VOTE",
        r#"{"action": "MAYBE", "proposal_id": "p"}"#,
    );
    assert_eq!(bad(&vote), ("REGISTER_VOTE", "action"));
    let role = line(
        "STATUS_RESP",
        r#"{"node": "127.0.0.1:1", "role": "king", "counters": {}}"#,
    );
    assert_eq!(bad(&role), ("STATUS_RESP", "role"));
}

#[test]
fn optional_fields_present_with_wrong_type_are_rejected() {
    let g = |extra: &str| {
        line(
            "GOSSIP_MSG",
            &format!(
                r#"{{"message": "m", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:2"{extra}}}"#
            ),
        )
    };
    assert!(dec(&g(r#", "hops": null, "origin_port": null, "extra": [1]"#)).is_ok());
    assert_eq!(bad(&g(r#", "hops": -1"#)), ("GOSSIP_MSG", "hops"));
    assert_eq!(
        bad(&g(r#", "origin_port": 0"#)),
        ("GOSSIP_MSG", "origin_port")
    );
    let r = |extra: &str| {
        line(
            "PEER_LIST_RESP",
            &format!(r#"{{"peers": [], "seed": "127.0.0.1:1"{extra}}}"#),
        )
    };
    assert_eq!(
        bad(&r(r#", "incarnations": {"x": 1}"#)),
        ("PEER_LIST_RESP", "incarnations")
    );
    assert_eq!(
        bad(&r(r#", "incarnations": []"#)),
        ("PEER_LIST_RESP", "incarnations")
    );
    assert_eq!(
        bad(&r(r#", "requester_entry": {"incarnation": 1}"#)),
        ("PEER_LIST_RESP", "requester_entry")
    );
    assert_eq!(bad(&r(r#", "total": "many""#)), ("PEER_LIST_RESP", "total"));
    assert_eq!(
        bad(&r(r#", "peers": ["127.0.0.1:1", 5]"#)),
        ("PEER_LIST_RESP", "peers")
    );
    assert_eq!(
        bad(&line("PEER_LIST_REQ", r#"{"requester": 5}"#)),
        ("PEER_LIST_REQ", "requester")
    );
}

#[test]
fn missing_required_fields_are_named() {
    assert_eq!(
        missing(&line("HELLO", r#"{"peer_ip": "127.0.0.1", "degree": 1}"#)),
        ("HELLO", "peer_port")
    );
    assert_eq!(
        missing(&line(
            "HELLO",
            r#"{"peer_ip": "127.0.0.1", "peer_port": 1}"#
        )),
        ("HELLO", "degree")
    );
    assert_eq!(
        missing(&line("REGISTER_COMMIT", r#"{"proposal_id": "p"}"#)),
        ("REGISTER_COMMIT", "success")
    );
    assert_eq!(
        missing(&line("GOSSIP_MSG", r#"{"sender": "127.0.0.1:1"}"#)),
        ("GOSSIP_MSG", "message")
    );
    assert_eq!(
        missing(&line("REGISTER_VOTE", r#"{"proposal_id": "p"}"#)),
        ("REGISTER_VOTE", "action")
    );
    assert_eq!(
        missing(&line("ERROR", r#"{"reason": null}"#)),
        ("ERROR", "reason")
    );
    assert_eq!(
        missing(&line("SEED_SYNC", r#"{"seed": "127.0.0.1:1"}"#)),
        ("SEED_SYNC", "buckets")
    );
}

#[test]
fn disambiguation_follows_the_fields() {
    let ack_wins = line(
        "REGISTER_COMMIT",
        r#"{"ack": true, "decision": "COMMIT", "success": true}"#,
    );
    assert_eq!(dec(&ack_wins), Ok(Message::RegisterCommitAck));
    let sync = line(
        "SEED_SYNC",
        r#"{"seed": "127.0.0.1:1", "buckets": [], "entries": [], "reply": true}"#,
    );
    assert!(matches!(
        dec(&sync),
        Ok(Message::SeedSync(s)) if s.reply
    ));
    let gossip_wins = line("GOSSIP_MSG", r#"{"accepted": true, "message": 5}"#);
    assert_eq!(bad(&gossip_wins), ("GOSSIP_MSG", "message"));
    let dead_result = line("SEED_DEAD_COMMIT", r#"{"success": false}"#);
    assert!(matches!(
        dec(&dead_result),
        Ok(Message::DeadResult(DeadResult { success: false, .. }))
    ));
}

#[test]
fn syntax_and_unknown_type_errors() {
    let syntax = [
        &b""[..],
        b"not json",
        b"[1,2]",
        b"\"str\"",
        b"{\"payload\": {}}",
        b"{\"type\": 5, \"payload\": {}}",
        b"{\"type\": \"PING\"}",
        b"{\"type\": \"PING\", \"payload\": []}",
        b"{\"type\": \"PING\", \"payload\": {}} trailing",
        b"{\"type\": \"PI\xffNG\", \"payload\": {}}",
        b"{\"type\": \"PING\", \"payload\": {\"sender\": \"\\ud800\"}}",
    ];
    for l in syntax {
        assert!(
            matches!(decode(l), Err(DecodeError::Syntax(_))),
            "{:?} gave {:?}",
            String::from_utf8_lossy(l),
            decode(l)
        );
    }
    assert_eq!(
        dec(&line("NOPE", "{}")),
        Err(DecodeError::UnknownType("NOPE".into()))
    );
    assert_eq!(
        dec(&line("ping", "{}")),
        Err(DecodeError::UnknownType("ping".into()))
    );
    // An escaped NUL is valid JSON and a valid string.
    assert!(dec(&line("ERROR", r#"{"reason": "a\u0000b"}"#)).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for depth in [127, 129, 100_000] {
        let l = format!(
            r#"{{"type": "PING", "payload": {{"sender": "127.0.0.1:1", "x": {}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r = dec(&l);
        if depth < 126 {
            assert!(r.is_ok(), "{depth}");
        } else if depth > 128 {
            assert!(matches!(r, Err(DecodeError::Syntax(_))), "{depth}: {r:?}");
        }
    }
}

#[test]
fn lists_longer_than_the_cap_are_rejected() {
    let peers = vec!["\"127.0.0.1:1\""; MAX_LIST + 1].join(",");
    let l = line(
        "PEER_LIST_RESP",
        &format!(r#"{{"peers": [{peers}], "seed": "127.0.0.1:1"}}"#),
    );
    assert_eq!(bad(&l), ("PEER_LIST_RESP", "peers"));
    let ok = vec!["\"127.0.0.1:1\""; MAX_LIST].join(",");
    let l = line(
        "PEER_LIST_RESP",
        &format!(r#"{{"peers": [{ok}], "seed": "127.0.0.1:1"}}"#),
    );
    assert!(dec(&l).is_ok());
}

#[test]
fn repair_messages_are_bounded_and_strict() {
    let digest = |counts: &str, hashes: &str| {
        line(
            "GOSSIP_DIGEST",
            &format!(
                r#"{{"sender": "127.0.0.1:1", "first": 5, "counts": {counts}, "hashes": {hashes}}}"#
            ),
        )
    };
    let n = |k: usize, v: &str| format!("[{}]", vec![v; k].join(","));
    assert!(dec(&digest(&n(64, "1"), &n(64, "2"))).is_ok());
    assert_eq!(
        bad(&digest(&n(65, "1"), &n(65, "2"))),
        ("GOSSIP_DIGEST", "counts")
    );
    assert_eq!(bad(&digest("[1]", "[]")), ("GOSSIP_DIGEST", "hashes"));
    assert_eq!(bad(&digest("[-1]", "[0]")), ("GOSSIP_DIGEST", "counts"));
    assert_eq!(
        bad(&digest("[4294967296]", "[0]")),
        ("GOSSIP_DIGEST", "counts")
    );
    assert_eq!(
        missing(&line("GOSSIP_DIGEST", r#"{"sender": "127.0.0.1:1"}"#)),
        ("GOSSIP_DIGEST", "counts")
    );
    let pull = |ids: &str| {
        line(
            "GOSSIP_PULL",
            &format!(r#"{{"sender": "127.0.0.1:1", "ids": {ids}}}"#),
        )
    };
    // 1,024 keys in all, however they are grouped.
    let keys = |k: usize| vec!["7"; k].join(",");
    assert!(dec(&pull(&format!("[[1,{}],[2,{}]]", keys(512), keys(512)))).is_ok());
    assert_eq!(
        bad(&pull(&format!("[[1,{}],[2,{}]]", keys(512), keys(513)))),
        ("GOSSIP_PULL", "ids")
    );
    for ids in ["[[]]", "[1]", "[[1, -2]]", "[[\"1\", 2]]", "{}", "[[1.5]]"] {
        assert_eq!(bad(&pull(ids)), ("GOSSIP_PULL", "ids"), "{ids}");
    }
    let graft = line(
        "GOSSIP_PULL",
        r#"{"sender": "127.0.0.1:1", "ids": [], "graft": 1}"#,
    );
    assert_eq!(bad(&graft), ("GOSSIP_PULL", "graft"));
    let body = r#"{"message": "1:1.2.3.4:1", "origin_ip": "1.2.3.4", "msg_no": 1}"#;
    let bodies = |k: usize| {
        line(
            "GOSSIP_PULL",
            &format!(
                r#"{{"responder": "127.0.0.1:1", "bodies": [{}]}}"#,
                vec![body; k].join(",")
            ),
        )
    };
    assert!(dec(&bodies(256)).is_ok());
    assert_eq!(bad(&bodies(257)), ("GOSSIP_PULL", "bodies"));
    let bad_body = line(
        "GOSSIP_PULL",
        r#"{"responder": "127.0.0.1:1", "bodies": [{"message": "x", "origin_ip": "1.2.3.4", "origin_port": 0, "msg_no": 1}]}"#,
    );
    assert_eq!(bad(&bad_body), ("GOSSIP_PULL", "bodies"));
    let ihave = line("IHAVE", r#"{"sender": "127.0.0.1:1"}"#);
    assert_eq!(missing(&ihave), ("IHAVE", "ids"));
}
