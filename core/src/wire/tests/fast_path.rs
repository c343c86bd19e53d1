//! Tests of the decoding hot path against the general path (hand-picked lines, generated
//! payloads, randomly edited lines) and of the hand-written address readers against std.

use super::*;
use crate::wire::decode::{parse_endpoint, parse_ip, parse_v4_endpoint};
use crate::wire::fast;

fn gossip_line(payload_extra: &str) -> String {
    line(
        "GOSSIP_MSG",
        &format!(
            r#"{{"message": "1:127.0.0.1:1", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:6002"{payload_extra}}}"#
        ),
    )
}

/// The fast path answers only where the general path gives the same message; `decode`
/// gives what the general path gives either way.
fn check_fast(l: &str) -> Option<Message> {
    let fast = fast::decode(l);
    let general = decode_general(l);
    if let Some(m) = &fast {
        assert_eq!(Ok(m), general.as_ref(), "fast path disagrees on {l}");
    }
    assert_eq!(dec(l), general, "{l}");
    fast
}

#[test]
fn fast_path_takes_the_hot_lines_in_both_spellings() {
    let hot = [
        gossip_line(""),
        gossip_line(r#", "hops": 2, "origin_port": 6001, "x": 1.5, "z": "s""#),
        gossip_line(r#", "hops": null, "origin_port": null"#),
        line("GOSSIP_MSG", r#"{"accepted": true, "duplicate": false}"#),
        line("GOSSIP_MSG", r#"{"accepted": false}"#),
        line("GOSSIP_MSG", r#"{"duplicate": true, "accepted": null}"#),
        line("PING", r#"{"sender": "127.0.0.1:6001"}"#),
        line("PING", r#"{"sender": "[::1]:6001", "extra": 0}"#),
        line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": 3}"#),
        line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": null}"#),
        line("PONG", r#"{"responder": "127.0.0.1:6001"}"#),
        line("PONG", r#"{"responder": "127.0.0.1:6001", "incarnation": 3}"#),
        line("PING", r#"{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "sender": "127.0.0.1:2"}"#),
        " \t{ \"type\" :\"PING\" , \"payload\" : { \"sender\" : \"127.0.0.1:1\" } , \"ts\" : 0 }\r\n ".to_string(),
        r#"{"type":"PING","payload":{"sender":"127.0.0.1:1"},"ts":1767225600.25,"v":true}"#.to_string(),
        r#"{"type":"PING","payload":{"sender":"127.0.0.1:1"},"ts":"late"}"#.to_string(),
    ];
    for l in &hot {
        assert!(check_fast(l).is_some(), "fast path declined {l}");
    }
    // What our encoder writes for them, too.
    let sender = ep("127.0.0.1:6002");
    for m in [
        Message::GossipAck(GossipAck {
            accepted: true,
            duplicate: true,
            prune: false,
            app: false,
        }),
        Message::GossipAck(GossipAck {
            accepted: true,
            duplicate: true,
            prune: true,
            app: false,
        }),
        Message::Ping(Ping {
            sender,
            suspected_by: None,
        }),
        Message::Pong(Pong {
            responder: sender,
            degree: Some(u16::MAX),
            incarnation: NonZeroU32::new(u32::MAX),
            leaving: true,
        }),
    ] {
        let mut out = Vec::new();
        encode(&m, 1_767_225_600.25, &mut out);
        let l = String::from_utf8(out).unwrap();
        assert_eq!(check_fast(l.trim_end()), Some(m));
    }
}

#[test]
fn fast_path_leaves_everything_else_to_the_general_path() {
    // Each line with what the general path makes of it: `Ok` with the type name, or the
    // error's kind (and field).
    let general: &[(String, &str)] = &[
        // Not a flat object, or not one of the hot types.
        (r#"["GOSSIP_MSG", {"message": "m", "origin_ip": "127.0.0.1", "origin_port": null, "msg_no": 1, "sender": "127.0.0.1:2", "hops": null}]"#.into(), "syntax"),
        (line("GOSSIP_MSG", r#"["m", "127.0.0.1", null, 1, "127.0.0.1:2", null]"#), "syntax"),
        (line("HELLO", r#"{"peer_ip": "127.0.0.1", "peer_port": 1, "degree": 1}"#), "HELLO"),
        (line("STATUS_REQ", "{}"), "STATUS_REQ"),
        (line("PING", "{}"), "missing PING.sender"),
        (gossip_line(r#", "x": {"y": [1]}"#), "GOSSIP_MSG"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": [1]}"#.into(), "PING"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}} trailing"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"},}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2",}}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}"#.into(), "syntax"),
        (r#"{"type": "PING"}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": null}"#.into(), "syntax"),
        (r#"{"type": null, "payload": {"sender": "127.0.0.1:2"}}"#.into(), "syntax"),
        // Members in another order than ours and the reference's.
        (r#"{"payload": {"sender": "127.0.0.1:1"}, "type": "PING"}"#.into(), "PING"),
        (r#"{"ts": 1, "type": "PING", "payload": {"sender": "127.0.0.1:1"}}"#.into(), "PING"),
        // A key twice: the general path keeps the last.
        (gossip_line(r#", "msg_no": 2"#), "GOSSIP_MSG"),
        (r#"{"type": "GOSSIP_MSG", "type": "PING", "payload": {"sender": "127.0.0.1:2"}}"#.into(), "PING"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:1"}, "payload": {"sender": 1}}"#.into(), "bad PING.sender"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:1"}, "type": "PONG"}"#.into(), "missing PONG.responder"),
        (line("GOSSIP_MSG", r#"{"accepted": true, "accepted": 1}"#), "bad GOSSIP_MSG.accepted"),
        // Escapes and control characters in strings and keys.
        (line("GOSSIP_MSG", r#"{"message": "esc\"aped", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:2"}"#), "GOSSIP_MSG"),
        (line("PING", r#"{"sen\u0064er": "127.0.0.1:2"}"#), "PING"),
        (r#"{"typ\u0065": "PING", "payload": {"sender": "127.0.0.1:2"}}"#.into(), "PING"),
        (line("PING", "{\"sender\": \"127.0.0.1:2\u{1}\"}"), "syntax"),
        // Numbers outside the subset or out of range.
        (gossip_line(r#", "origin_port": 0"#), "bad GOSSIP_MSG.origin_port"),
        (gossip_line(r#", "origin_port": 65536"#), "bad GOSSIP_MSG.origin_port"),
        (gossip_line(r#", "hops": 1.0"#), "bad GOSSIP_MSG.hops"),
        (gossip_line(r#", "hops": -1"#), "bad GOSSIP_MSG.hops"),
        (gossip_line(r#", "hops": 1e2"#), "bad GOSSIP_MSG.hops"),
        (gossip_line(r#", "hops": 01"#), "syntax"),
        (gossip_line(r#", "hops": 4294967296"#), "bad GOSSIP_MSG.hops"),
        (gossip_line(r#", "hops": 99999999999999999999"#), "bad GOSSIP_MSG.hops"),
        (gossip_line(r#", "x": 1."#), "syntax"),
        (gossip_line(r#", "x": .5"#), "syntax"),
        (line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": "3"}"#), "bad PONG.degree"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": 1e400}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": 123456789012345678901234567890}"#.into(), "PING"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": -1}"#.into(), "PING"),
        // Fields of the wrong type, missing, or impossible.
        (line("GOSSIP_MSG", r#"{"accepted": 1}"#), "bad GOSSIP_MSG.accepted"),
        (line("GOSSIP_MSG", r#"{"accepted": null, "duplicate": null}"#), "missing GOSSIP_MSG.message"),
        (line("GOSSIP_MSG", r#"{"message": null, "accepted": "yes"}"#), "bad GOSSIP_MSG.accepted"),
        (line("GOSSIP_MSG", r#"{"accepted": true, "message": 5}"#), "bad GOSSIP_MSG.message"),
        (gossip_line(r#", "sender": "127.0.0.1:0""#), "bad GOSSIP_MSG.sender"),
        (line("GOSSIP_MSG", r#"{"message": "m", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:0"}"#), "bad GOSSIP_MSG.sender"),
        (line("GOSSIP_MSG", r#"{"message": "m", "origin_ip": "1.2.3", "msg_no": 1, "sender": "127.0.0.1:2"}"#), "bad GOSSIP_MSG.origin_ip"),
        (line("PING", r#"{"sender": "127.0.0.1"}"#), "bad PING.sender"),
        (line("PING", r#"{"sender": "127.0.0.1:0"}"#), "bad PING.sender"),
        (line("PING", r#"{"sender": true}"#), "bad PING.sender"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": tru}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": nul}"#.into(), "syntax"),
        (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": truex}"#.into(), "syntax"),
    ];
    for (l, want) in general {
        assert_eq!(check_fast(l), None, "{l}");
        let got = match dec(l) {
            Ok(m) => m.type_name().to_string(),
            Err(DecodeError::Syntax(_)) => "syntax".to_string(),
            Err(DecodeError::BadField { kind, field, .. }) => format!("bad {kind}.{field}"),
            Err(DecodeError::MissingField { kind, field }) => {
                format!("missing {kind}.{field}")
            }
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(&got, want, "{l}");
    }
}

/// What std makes of an address: the hand-written IPv4 reader must never differ.
fn check_address(s: &str) {
    let std_ep = s.parse::<SocketAddr>().ok().filter(|a| a.port() != 0);
    assert_eq!(parse_endpoint(s), std_ep, "{s:?}");
    if let Some(fast) = parse_v4_endpoint(s) {
        assert_eq!(Ok(fast), s.parse::<SocketAddr>(), "{s:?}");
    }
    assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{s:?}");
}

#[test]
fn addresses_are_read_as_std_reads_them() {
    for s in [
        "127.0.0.1:6001",
        "0.0.0.0:1",
        "255.255.255.255:65535",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "256.1.1.1:1",
        "01.2.3.4:5",
        "1.2.3.4:05",
        "1.2.3.4:0005",
        "1.2.3:4",
        "1.2.3.4.5:6",
        "1.2.3.4:",
        ":1",
        "1.2.3.4:1 ",
        " 1.2.3.4:1",
        "1.2.3.4",
        "1.2.3.4:99999999999",
        "[::1]:1",
        "[::ffff:1.2.3.4]:1",
        "::1",
        "1..2.3:4",
        "1.2.3.4::5",
        "1234.1.1.1:1",
        "",
    ] {
        check_address(s);
    }
}

proptest::proptest! {
    /// Strings over the address alphabet, mostly near dotted quads.
    #[test]
    fn addresses_agree_with_std(s in "([0-9]{1,4}[.:]){0,5}[0-9]{0,6}|[0-9.:\\[\\]a-f]{0,24}") {
        check_address(&s);
    }
}

/// Hot lines in our spelling and the reference's, to be edited at random.
fn hot_lines() -> Vec<String> {
    vec![
        gossip_line(r#", "hops": 2, "origin_port": 6001"#),
        r#"{"type":"GOSSIP_MSG","payload":{"message":"1:127.0.0.1:1","origin_ip":"127.0.0.1","origin_port":6001,"msg_no":1,"sender":"127.0.0.1:6002","hops":1},"ts":1767225600.25}"#.to_string(),
        r#"{"type":"GOSSIP_MSG","payload":{"accepted":true,"duplicate":false},"ts":1767225600.25}"#.to_string(),
        line("GOSSIP_MSG", r#"{"accepted": false, "duplicate": true}"#),
        r#"{"type":"PING","payload":{"sender":"127.0.0.1:6002"},"ts":1767225600.0}"#.to_string(),
        line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": 10}"#),
    ]
}

/// Well-formed values of the hot fields (often chosen, so repeated keys with different
/// readable values come up).
const COMMON_VALUES: &[&str] = &[
    "1",
    "2",
    "true",
    "false",
    "null",
    "\"127.0.0.1:1\"",
    "\"127.0.0.1:2\"",
    "\"127.0.0.1\"",
    "\"m\"",
];

/// Scalars the fast path must judge like the general path, in and out of its subset.
const TRICKY_VALUES: &[&str] = &[
    "0",
    "1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "01",
    "-0",
    "-1",
    "1.5",
    "1.",
    "1e3",
    "1E-3",
    "true",
    "false",
    "null",
    "nul",
    "\"\"",
    "\"127.0.0.1:1\"",
    "\"[::1]:1\"",
    "\"127.0.0.1:0\"",
    "\"127.0.0.1\"",
    "\"a\\\"b\"",
    "[]",
    "{}",
    "\"\u{e9}\"",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 2048, ..proptest::prelude::ProptestConfig::default()
    })]

    /// Randomly edited hot lines: whenever the fast path answers, the general path gives
    /// the same message.
    #[test]
    fn fast_path_never_disagrees(
        which in 0..6usize,
        edits in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), b' '..=b'~', 0..3u8), 1..4),
    ) {
        let mut l = hot_lines().swap_remove(which).into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(l.len());
            match op {
                0 => l[i] = byte,
                1 => { l.remove(i); }
                _ => l.insert(i, byte),
            }
            if l.is_empty() { break; }
        }
        if let Ok(text) = std::str::from_utf8(&l) {
            if let Some(fast) = fast::decode(text) {
                proptest::prop_assert_eq!(Ok(fast), decode_general(text));
            }
        }
    }

    /// Payloads built from the hot fields (repeats included) and tricky values, with or
    /// without spaces: the fast path agrees with the general path wherever it answers.
    #[test]
    fn fast_path_agrees_on_generated_payloads(
        kind in proptest::sample::select(&["GOSSIP_MSG", "PING", "PONG", "HELLO"][..]),
        members in proptest::collection::vec((
            proptest::sample::select(&[
                "message", "origin_ip", "origin_port", "msg_no", "sender", "hops",
                "accepted", "duplicate", "responder", "degree", "other",
            ][..]),
            proptest::prop_oneof![
                3 => proptest::sample::select(COMMON_VALUES),
                1 => proptest::sample::select(TRICKY_VALUES),
            ],
        ), 0..8),
        ts in proptest::sample::select(TRICKY_VALUES),
        spaced in proptest::prelude::any::<bool>(),
    ) {
        let sep = if spaced { ", " } else { "," };
        let payload = members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect::<Vec<_>>()
            .join(sep);
        let l = format!(r#"{{"type":"{kind}","payload":{{{payload}}},"ts":{ts}}}"#);
        if let Some(fast) = fast::decode(&l) {
            proptest::prop_assert_eq!(Ok(fast), decode_general(&l), "{}", l);
        }
    }
}
