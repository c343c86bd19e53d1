//! Tests of the cluster key: the documented frame, sealing and opening, every refusal, key
//! files and the replay cache.

use super::*;

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];
const NOW: u64 = 1_767_225_600_000;
const JSON: &[u8] = br#"{"type":"PING","payload":{"sender":"127.0.0.1:6001"},"ts":1767225600.0}"#;

fn ring(keys: &[&[u8]]) -> Keyring {
    Keyring::from_keys(keys).expect("valid keys")
}

fn stamp(nonce: u64, bind: Option<u64>) -> Stamp {
    Stamp {
        ts_ms: NOW,
        nonce,
        bind,
    }
}

/// A sealed line without its newline.
fn sealed(ring: &Keyring, stamp: Stamp) -> Vec<u8> {
    let mut out = Vec::new();
    seal(ring, stamp, JSON, &mut out);
    assert_eq!(out.pop(), Some(b'\n'));
    out
}

fn open_req(ring: &Keyring, line: &[u8], now: u64) -> Result<Stamp, AuthError> {
    open(
        ring,
        line,
        now,
        Expect::Request,
        &mut ReplayCache::default(),
    )
    .map(|o| o.stamp)
    .map_err(|r| r.error)
}

#[test]
fn key_id_is_the_hash_prefix_in_hex() {
    let mut h = Sha256::new();
    h.update(b"gossip-net key id\n");
    h.update(K1);
    let d = h.finalize();
    let want: String = d.iter().take(4).map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_id(&K1).as_slice(), want.as_bytes());
    assert_eq!(ring(&[&K1, &K2]).key_ids()[0], want);
}

#[test]
fn seal_writes_the_documented_frame() {
    let r = ring(&[&K1]);
    let line = sealed(&r, stamp(0x0123_4567_89ab_cdef, None));
    let text = String::from_utf8(line.clone()).expect("ascii");
    let kid = String::from_utf8(key_id(&K1).to_vec()).expect("ascii");
    let head = format!("{kid}.{NOW}.0123456789abcdef.-");
    assert!(text.starts_with(&format!("!{head}.")), "{text}");
    let (prefix, json) = text.split_once(' ').expect("space");
    assert_eq!(json.as_bytes(), JSON);
    let mac_hex = prefix.rsplit('.').next().expect("mac");
    assert_eq!(mac_hex.len(), 64);
    // The MAC, recomputed from its definition.
    let mut m = HmacSha256::new_from_slice(&K1).expect("key");
    m.update(b"gossip-net/1\n");
    m.update(head.as_bytes());
    m.update(b" ");
    m.update(JSON);
    let want: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(mac_hex, want);
    // A reply is bound to its request's nonce.
    let reply = sealed(&r, stamp(2, Some(0xff)));
    assert!(reply
        .windows(34)
        .any(|w| w == b"0000000000000002.00000000000000ff.".as_slice()));
}

#[test]
fn the_documented_example_is_what_seal_writes() {
    // docs/PROTOCOL-EXTENSIONS.md, "Cluster key" (checked there against Python's hmac).
    let key: Vec<u8> = (0..32).collect();
    let r = ring(&[&key]);
    let mut out = Vec::new();
    let ping = br#"{"type":"PING","payload":{"sender":"127.0.0.1:6001"},"ts":1767225600.0}"#;
    let request = Stamp {
        ts_ms: 1_767_225_600_000,
        nonce: 0x0123_4567_89ab_cdef,
        bind: None,
    };
    seal(&r, request, ping, &mut out);
    let pong = br#"{"type":"PONG","payload":{"responder":"127.0.0.1:6002","degree":3},"ts":1767225600.004}"#;
    let reply = Stamp {
        ts_ms: 1_767_225_600_004,
        nonce: 0xfedc_ba98_7654_3210,
        bind: Some(request.nonce),
    };
    seal(&r, reply, pong, &mut out);
    let want = concat!(
        "!1a6f8aa0.1767225600000.0123456789abcdef.-.",
        "d194fc84f246768255683c7dfb306fdeaa07477e9555495e0a1fd5c1452d94d8 ",
        r#"{"type":"PING","payload":{"sender":"127.0.0.1:6001"},"ts":1767225600.0}"#,
        "\n",
        "!1a6f8aa0.1767225600004.fedcba9876543210.0123456789abcdef.",
        "871524e45d9029967106426c819f41a8d592dc1982317d6d959574dbd40f3005 ",
        r#"{"type":"PONG","payload":{"responder":"127.0.0.1:6002","degree":3},"ts":1767225600.004}"#,
        "\n",
    );
    assert_eq!(String::from_utf8_lossy(&out), want);
}

#[test]
fn seal_then_open_round_trips() {
    let r = ring(&[&K1]);
    let mut out = Vec::new();
    seal_with(&r, stamp(7, None), &mut out, |o| {
        o.extend_from_slice(JSON);
        o.push(b'\n');
    });
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    let line = out.strip_suffix(b"\n").expect("newline");
    let mut cache = ReplayCache::default();
    let o = open(&r, line, NOW + 5, Expect::Request, &mut cache).expect("opens");
    assert_eq!(o.json, JSON);
    assert_eq!(o.stamp, stamp(7, None));
    assert_eq!(o.key_index, 0);
    assert_eq!(cache.len(), 1);
    // A reply opens only against its request's nonce.
    let reply = sealed(&r, stamp(8, Some(7)));
    let o = open(&r, &reply, NOW, Expect::Reply(7), &mut cache).expect("bound reply");
    assert_eq!(o.stamp.bind, Some(7));
    // Every ts_ms digit count, 0 included.
    for ts in [0, 9, 10, 1_000, u64::MAX] {
        let line = sealed(
            &r,
            Stamp {
                ts_ms: ts,
                nonce: 1,
                bind: None,
            },
        );
        let got = open(&r, &line, ts, Expect::Request, &mut ReplayCache::default());
        assert_eq!(got.map(|o| o.stamp.ts_ms), Ok(ts));
    }
}

#[test]
fn any_single_byte_changed_is_refused() {
    let r = ring(&[&K1]);
    for bind in [None, Some(0xabcd)] {
        let line = sealed(&r, stamp(0x5555, bind));
        let expect = match bind {
            None => Expect::Request,
            Some(b) => Expect::Reply(b),
        };
        assert!(open(&r, &line, NOW, expect, &mut ReplayCache::default()).is_ok());
        for i in 0..line.len() {
            for flip in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
                let mut bad = line.clone();
                bad[i] ^= flip;
                let got = open(&r, &bad, NOW, expect, &mut ReplayCache::default());
                assert!(got.is_err(), "byte {i} ^ {flip:#x} accepted: {:?}", bad);
            }
        }
        // Cut short, or extended, anywhere.
        for cut in 0..line.len() {
            assert!(open_req(&r, &line[..cut], NOW).is_err(), "cut at {cut}");
        }
        let mut longer = line.clone();
        longer.push(b' ');
        assert!(open(&r, &longer, NOW, expect, &mut ReplayCache::default()).is_err());
    }
}

#[test]
fn each_failure_has_its_own_error() {
    let r1 = ring(&[&K1]);
    let line = sealed(&r1, stamp(1, None));
    // Plain JSON at a keyed node.
    assert_eq!(open_req(&r1, JSON, NOW), Err(AuthError::Missing));
    assert_eq!(
        AuthError::Missing.to_string(),
        "frame without a cluster-key MAC"
    );
    assert_eq!(open_req(&r1, b"!junk {}", NOW), Err(AuthError::Malformed));
    // Unknown kid: a ring without the key.
    assert_eq!(
        open_req(&ring(&[&K2]), &line, NOW),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(AuthError::UnknownKey.to_string(), "unknown key id");
    // The right kid but another key's MAC: a forger who copied the id.
    let other = sealed(&ring(&[&K2]), stamp(1, None));
    let mut forged = line[..10].to_vec();
    forged.extend_from_slice(&other[10..]);
    let kid_len = 1 + KID_LEN;
    assert_eq!(&forged[..kid_len], &line[..kid_len]);
    assert_eq!(open_req(&r1, &forged, NOW), Err(AuthError::BadMac));
    assert_eq!(AuthError::BadMac.to_string(), "bad MAC");
    // Outside the window, either side; at its edges, accepted.
    for (now, ok) in [
        (NOW + WINDOW_MS, true),
        (NOW - WINDOW_MS, true),
        (NOW + WINDOW_MS + 1, false),
        (NOW - WINDOW_MS - 1, false),
    ] {
        let got = open_req(&r1, &line, now);
        if ok {
            assert!(got.is_ok(), "{now}");
        } else {
            assert_eq!(
                got,
                Err(AuthError::Stale {
                    window_ms: WINDOW_MS
                })
            );
        }
    }
    assert_eq!(
        AuthError::Stale {
            window_ms: WINDOW_MS
        }
        .to_string(),
        "timestamp outside the 30 s window"
    );
    assert_eq!(AuthError::Replayed.to_string(), "replayed nonce");
    assert_eq!(
        AuthError::Unbound.to_string(),
        "reply not bound to its request"
    );
}

#[test]
fn a_replay_inside_the_window_is_refused_and_after_it_the_clock_refuses_it() {
    let r = ring(&[&K1]);
    let line = sealed(&r, stamp(42, None));
    let mut cache = ReplayCache::default();
    assert!(open(&r, &line, NOW, Expect::Request, &mut cache).is_ok());
    for later in [0, 1, 10_000, WINDOW_MS] {
        let got = open(&r, &line, NOW + later, Expect::Request, &mut cache);
        assert_eq!(
            got.map_err(|e| e.error),
            Err(AuthError::Replayed),
            "{later}"
        );
    }
    // Past the window the nonce may be forgotten, but the timestamp check refuses it.
    let later = NOW + WINDOW_MS + WINDOW_MS / SLOTS_PER_WINDOW + 1;
    let got = open(&r, &line, later, Expect::Request, &mut cache);
    assert_eq!(
        got.map_err(|e| e.error),
        Err(AuthError::Stale {
            window_ms: WINDOW_MS
        })
    );
    // A fresh nonce is accepted.
    let fresh = sealed(&r, stamp(43, None));
    assert!(open(&r, &fresh, NOW, Expect::Request, &mut cache).is_ok());
}

#[test]
fn reply_binding_is_checked_and_a_refused_frame_changes_nothing() {
    let r = ring(&[&K1]);
    let mut cache = ReplayCache::default();
    let reply = sealed(&r, stamp(9, Some(100)));
    let got = open(&r, &reply, NOW, Expect::Reply(101), &mut cache);
    assert_eq!(
        got,
        Err(Refused {
            error: AuthError::Unbound,
            nonce: Some(9)
        })
    );
    // A request where a reply is expected, and a reply sent as a request.
    let request = sealed(&r, stamp(10, None));
    let got = open(&r, &request, NOW, Expect::Reply(10), &mut cache);
    assert_eq!(got.map_err(|e| e.error), Err(AuthError::Unbound));
    let got = open(&r, &reply, NOW, Expect::Request, &mut cache);
    assert_eq!(got.map_err(|e| e.error), Err(AuthError::BoundRequest));
    assert!(cache.is_empty(), "refused frames are not remembered");
    assert!(open(&r, &reply, NOW, Expect::Reply(100), &mut cache).is_ok());
    // A stranger's frame carries no nonce to bind an answer to.
    let got = open(&ring(&[&K2]), &reply, NOW, Expect::Reply(100), &mut cache);
    assert_eq!(got.map(|_| ()).map_err(|e| e.nonce), Err(None));
}

#[test]
fn a_two_key_ring_accepts_both_and_seals_with_the_first() {
    let old = ring(&[&K1]);
    let new = ring(&[&K2]);
    let both = ring(&[&K2, &K1]);
    let mut cache = ReplayCache::default();
    let by_old = sealed(&old, stamp(1, None));
    let by_new = sealed(&new, stamp(2, None));
    let o = open(&both, &by_old, NOW, Expect::Request, &mut cache).expect("old key");
    assert_eq!(o.key_index, 1);
    let o = open(&both, &by_new, NOW, Expect::Request, &mut cache).expect("new key");
    assert_eq!(o.key_index, 0);
    let by_both = sealed(&both, stamp(3, None));
    assert_eq!(by_both, sealed(&new, stamp(3, None)));
    assert!(open_req(&new, &by_both, NOW).is_ok());
    assert_eq!(open_req(&old, &by_both, NOW), Err(AuthError::UnknownKey));
    assert_eq!(both.len(), 2);
    assert_eq!(
        both.key_ids(),
        [new.key_ids()[0].clone(), old.key_ids()[0].clone()]
    );
    // Debug shows ids, not keys.
    let shown = format!("{both:?}");
    assert!(
        shown.contains(&old.key_ids()[0]) && !shown.contains("1111"),
        "{shown}"
    );
}

#[test]
fn key_files_parse_with_comments_and_errors_name_the_line() {
    let k1 = "11".repeat(32);
    let k2 = "AbCd".repeat(8);
    let text = format!("# cluster key\n\n  {k1}  # sending\n{k2}\n");
    let r = Keyring::parse(&text).expect("parses");
    assert_eq!(r.len(), 2);
    assert_eq!(r.key_ids()[0], ring(&[&K1]).key_ids()[0]);
    let cases: [(String, KeyFileError); 6] = [
        ("# nothing\n\n".into(), KeyFileError::NoKey),
        (
            format!("{k1}\n  {}xyz\n", &k1[..10]),
            KeyFileError::NotHex {
                line: 2,
                column: 13,
            },
        ),
        (
            format!("\n{k1}0\n"),
            KeyFileError::OddLength {
                line: 2,
                digits: 65,
            },
        ),
        ("00".repeat(15), KeyFileError::Length { line: 1, bytes: 15 }),
        (
            format!("{k1}\n{}\n", "ab".repeat(65)),
            KeyFileError::Length { line: 2, bytes: 65 },
        ),
        (
            format!("{k1}\n#\n{}\n", k1.to_uppercase()),
            KeyFileError::Duplicate { line: 3, first: 1 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Keyring::parse(&text).map(|_| ()), Err(want), "{text:?}");
    }
    // The edges of the length range.
    assert!(Keyring::parse(&"00".repeat(16)).is_ok());
    assert!(Keyring::parse(&"00".repeat(64)).is_ok());
    let e = Keyring::parse(&format!("{k1}\n{}\n", "zz".repeat(32))).expect_err("not hex");
    assert_eq!(
        e.to_string(),
        "line 2: column 1 is not a hex digit (a key is 32 to 128 hex digits)"
    );
    assert!(!e.to_string().contains(&k1), "errors never show keys");
    assert_eq!(
        Keyring::from_keys::<&[u8]>(&[]).map(|_| ()),
        Err(KeyFileError::NoKey)
    );
}

#[test]
fn the_replay_cache_is_bounded_and_expires_by_timestamp() {
    let window = 8_000;
    let mut cache = ReplayCache::new(window, 100);
    for n in 0..100 {
        assert!(cache.insert(NOW, n, NOW));
    }
    assert_eq!(cache.len(), 100);
    // Full: a new nonce is refused, nothing grows.
    assert!(!cache.insert(NOW, 1_000, NOW));
    assert_eq!(cache.len(), 100);
    assert!(cache.contains(NOW, 5) && !cache.contains(NOW, 1_000));
    // Through `open`, the refusal is CacheFull and the frame leaves nothing behind.
    let r = ring(&[&K1]);
    let line = sealed(&r, stamp(5_000, None));
    let got = open(&r, &line, NOW, Expect::Request, &mut cache);
    assert_eq!(got.map_err(|e| e.error), Err(AuthError::CacheFull));
    assert_eq!(cache.len(), 100);
    // Still inside the window: kept.
    cache.expire(NOW + window);
    assert_eq!(cache.len(), 100);
    // Once every timestamp of their slot is out of the window, they go.
    cache.expire(NOW + window + window / SLOTS_PER_WINDOW + 1);
    assert!(cache.is_empty());
    assert!(cache.insert(NOW + 2 * window, 1_000, NOW + 2 * window));
    // Many timestamps: at most a window and a slot of them are held at a time.
    let mut cache = ReplayCache::new(window, usize::MAX);
    for t in 0..100_000u64 {
        let now = NOW + t;
        assert!(cache.insert(now, t, now));
        assert!(cache.len() as u64 <= window + window / SLOTS_PER_WINDOW + 1);
        assert!(cache.slots.len() as u64 <= SLOTS_PER_WINDOW + 2);
    }
}
