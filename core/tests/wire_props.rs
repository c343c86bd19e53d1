//! Property tests of the wire codec: every message survives `encode` → `decode`, `decode`
//! never panics, and `LineReader` frames a stream the same however it is split; with a
//! cluster key, every message survives `seal` → `open` → `decode`, and any edit of a sealed
//! line is refused.
//!
//! proptest prints the failing case and stores its seed under `proptest-regressions/`;
//! commit that file so the case is replayed on every run.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use gossip_core::msg::*;
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache, Stamp};
use gossip_core::wire::{decode, encode, encoded_len, DecodeError, LineReader};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

/// Endpoints as the wire can carry them: a port in 1..=65535, no IPv6 flow info or scope.
fn endpoint() -> impl Strategy<Value = Endpoint> {
    (ip(), 1..=u16::MAX).prop_map(|(ip, port)| match ip {
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
        v4 => SocketAddr::new(v4, port),
    })
}

fn endpoints() -> impl Strategy<Value = Vec<Endpoint>> {
    vec(endpoint(), 0..4)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9]{10}:[0-9.]{7,15}:[0-9]{1,2}"]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Alive), Just(Status::Removed)]
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![Just(Decision::Commit), Just(Decision::Abort)]
}

fn entry() -> impl Strategy<Value = Entry> {
    (endpoint(), any::<u64>(), status(), endpoints()).prop_map(
        |(peer, incarnation, status, votes)| Entry {
            peer,
            incarnation,
            status,
            votes,
        },
    )
}

fn vote_req() -> impl Strategy<Value = VoteReq> {
    (text(), endpoint(), any::<Option<u64>>(), endpoint()).prop_map(
        |(proposal_id, peer, incarnation, proposer)| VoteReq {
            proposal_id,
            peer,
            incarnation,
            proposer,
        },
    )
}

fn vote_resp() -> impl Strategy<Value = VoteResp> {
    (text(), any::<bool>(), endpoint(), any::<Option<u64>>()).prop_map(
        |(proposal_id, vote, voter, known_incarnation)| VoteResp {
            proposal_id,
            vote,
            voter,
            known_incarnation,
        },
    )
}

fn commit_sync() -> impl Strategy<Value = CommitSync> {
    (
        text(),
        decision(),
        endpoint(),
        endpoint(),
        any::<Option<u64>>(),
        endpoints(),
    )
        .prop_map(
            |(proposal_id, decision, peer, source_seed, incarnation, votes)| CommitSync {
                proposal_id,
                decision,
                peer,
                source_seed,
                incarnation,
                votes,
            },
        )
}

fn fact() -> impl Strategy<Value = Fact> {
    (endpoint(), any::<u64>(), status()).prop_map(|(peer, incarnation, status)| Fact {
        peer,
        incarnation,
        status,
    })
}

fn status_resp() -> impl Strategy<Value = Message> {
    let seed = (vec(entry(), 0..3), any::<u32>())
        .prop_map(|(entries, pending)| RoleStatus::Seed(SeedStatus { entries, pending }));
    let peer = (any::<bool>(), any::<u64>(), endpoints(), any::<u32>()).prop_map(
        |(registered, incarnation, neighbours, known_peers)| {
            RoleStatus::Peer(PeerStatus {
                registered,
                incarnation,
                neighbours,
                known_peers,
            })
        },
    );
    (
        endpoint(),
        prop_oneof![seed, peer],
        btree_map(any::<String>(), any::<u64>(), 0..4),
    )
        .prop_map(|(node, role, counters)| {
            Message::StatusResp(Box::new(StatusResp {
                node,
                role,
                counters: counters.into_iter().collect(),
            }))
        })
}

/// Every variant of [`Message`], with every optional field both absent and present.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (endpoint(), any::<Option<u64>>()).prop_map(|(peer, incarnation)| {
            Message::RegisterReq(Box::new(RegisterReq { peer, incarnation }))
        }),
        (
            text(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<Option<u64>>(),
            proptest::option::of(text())
        )
            .prop_map(
                |(proposal_id, success, yes_votes, quorum, incarnation, error)| {
                    Message::RegisterResult(Box::new(RegisterResult {
                        proposal_id,
                        success,
                        yes_votes,
                        quorum,
                        incarnation,
                        error,
                    }))
                }
            ),
        vote_req().prop_map(|x| Message::RegisterVote(Box::new(x))),
        vote_resp().prop_map(|x| Message::RegisterVoteResp(Box::new(x))),
        commit_sync().prop_map(|x| Message::RegisterCommit(Box::new(x))),
        Just(Message::RegisterCommitAck),
        text().prop_map(|requester| Message::PeerListReq { requester }),
        (
            endpoints(),
            endpoint(),
            btree_map(endpoint(), any::<u64>(), 0..3),
            any::<Option<u64>>(),
            proptest::option::of((any::<u64>(), status()))
        )
            .prop_map(|(peers, seed, incarnations, total, requester_entry)| {
                Message::PeerListResp(Box::new(PeerListResp {
                    peers,
                    seed,
                    incarnations: incarnations.into_iter().collect(),
                    total,
                    requester_entry,
                }))
            }),
        (endpoint(), any::<u32>(), any::<Option<u64>>()).prop_map(|(peer, degree, incarnation)| {
            Message::Hello(Box::new(Hello {
                peer,
                degree,
                incarnation,
            }))
        }),
        (
            any::<bool>(),
            endpoint(),
            any::<u32>(),
            any::<Option<u64>>()
        )
            .prop_map(
                |(accepted, peer, degree, incarnation)| Message::HelloAck(Box::new(HelloAck {
                    accepted,
                    peer,
                    degree,
                    incarnation
                }))
            ),
        (body(), endpoint(), any::<u32>())
            .prop_map(|(body, sender, hops)| { Message::Gossip(Gossip { body, sender, hops }) }),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(accepted, duplicate, prune, app)| {
                Message::GossipAck(GossipAck {
                    accepted,
                    duplicate,
                    prune,
                    app,
                })
            }
        ),
        (endpoint(), endpoint()).prop_map(|(suspect, requester)| Message::SuspectReq(Box::new(
            SuspectReq { suspect, requester }
        ))),
        (endpoint(), any::<bool>(), endpoint()).prop_map(|(suspect, alive, confirmer)| {
            Message::SuspectAck(Box::new(SuspectAck {
                suspect,
                alive,
                confirmer,
            }))
        }),
        (
            endpoint(),
            ip(),
            any::<u64>(),
            endpoint(),
            proptest::option::of(text()),
            any::<Option<u64>>(),
            endpoints()
        )
            .prop_map(
                |(dead, self_ip, timestamp, reporter, text, incarnation, witnesses)| {
                    Message::DeadReport(Box::new(DeadReport {
                        dead,
                        self_ip,
                        timestamp,
                        reporter,
                        text,
                        incarnation,
                        witnesses,
                    }))
                }
            ),
        (text(), any::<bool>(), any::<u32>(), any::<u32>()).prop_map(
            |(proposal_id, success, yes_votes, quorum)| Message::DeadResult(DeadResult {
                proposal_id,
                success,
                yes_votes,
                quorum
            })
        ),
        vote_req().prop_map(|x| Message::DeadVote(Box::new(x))),
        vote_resp().prop_map(|x| Message::DeadVoteResp(Box::new(x))),
        commit_sync().prop_map(|x| Message::DeadCommit(Box::new(x))),
        Just(Message::DeadCommitAck),
        text().prop_map(Message::error),
        endpoint().prop_map(|sender| Message::Ping(Ping {
            sender,
            suspected_by: None
        })),
        (
            endpoint(),
            any::<Option<u16>>(),
            any::<Option<std::num::NonZeroU32>>(),
            any::<bool>()
        )
            .prop_map(
                |(responder, degree, incarnation, leaving)| Message::Pong(Pong {
                    responder,
                    degree,
                    incarnation,
                    leaving,
                })
            ),
        (endpoint(), any::<u64>()).prop_map(|(peer, incarnation)| Message::Leave(Box::new(
            LeaveReq { peer, incarnation }
        ))),
        (endpoint(), vec(fact(), 0..4))
            .prop_map(|(seed, facts)| Message::Confirm(Box::new(ConfirmReq { seed, facts }))),
        (endpoint(), vec(any::<bool>(), 0..4)).prop_map(|(seed, vouched)| {
            Message::ConfirmResp(Box::new(ConfirmResp { seed, vouched }))
        }),
        (
            endpoint(),
            vec(any::<u64>(), 0..70),
            vec(entry(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(seed, buckets, entries, reply)| Message::SeedSync(Box::new(SeedSync {
                    seed,
                    buckets,
                    entries,
                    reply
                }))
            ),
        (
            endpoint(),
            any::<u64>(),
            vec((any::<u32>(), any::<u64>()), 0..=64)
        )
            .prop_map(
                |(sender, first, buckets)| Message::Digest(Box::new(GossipDigest {
                    sender,
                    first,
                    counts: buckets.iter().map(|b| b.0).collect(),
                    hashes: buckets.iter().map(|b| b.1).collect(),
                }))
            ),
        (endpoint(), id_groups()).prop_map(|(responder, ids)| Message::DigestResp(Box::new(
            DigestResp { responder, ids }
        ))),
        (endpoint(), id_groups())
            .prop_map(|(sender, ids)| Message::IHave(Box::new(IHave { sender, ids }))),
        Just(Message::IHaveAck),
        (endpoint(), id_groups(), any::<bool>()).prop_map(|(sender, ids, graft)| {
            Message::Pull(Box::new(GossipPull { sender, ids, graft }))
        }),
        (endpoint(), vec(body(), 0..4)).prop_map(|(responder, bodies)| {
            Message::PullResp(Box::new(PullResp { responder, bodies }))
        }),
        Just(Message::StatusReq),
        status_resp(),
    ]
}

/// Gossip ids as the repair and lazy-push messages carry them (a second with no key too).
fn id_groups() -> impl Strategy<Value = Vec<IdGroup>> {
    vec(
        (any::<u64>(), vec(any::<u64>(), 0..5)).prop_map(|(second, keys)| IdGroup { second, keys }),
        0..4,
    )
}

/// A gossip body: the spec's gossip, or an application message half the time.
fn body() -> impl Strategy<Value = Arc<GossipBody>> {
    (
        text(),
        ip(),
        proptest::option::of(1..=u16::MAX),
        any::<u32>(),
        proptest::option::of(app_part()),
    )
        .prop_map(|(text, origin_ip, origin_port, msg_no, app)| {
            Arc::new(GossipBody {
                text: Arc::from(text),
                origin_ip,
                origin_port,
                msg_no,
                app: app.map(Box::new),
            })
        })
}

/// An application message's own part: any name within the limit, any text.
fn app_part() -> impl Strategy<Value = AppPart> {
    (
        proptest::option::of(
            any::<String>().prop_filter("name limit", |n| n.len() <= MAX_APP_NAME),
        ),
        any::<String>(),
        any::<u64>(),
    )
        .prop_map(|(name, data, published_ms)| AppPart {
            name: name.map(String::into_boxed_str),
            data: data.into_boxed_str(),
            published_ms,
        })
}

fn ts() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), 0.0..2e9]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(msg in message(), ts in ts()) {
        let mut out = b"previous\n".to_vec();
        encode(&msg, ts, &mut out);
        let line = out.strip_prefix(b"previous\n").unwrap();
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        prop_assert!(!body.contains(&b'\n'));
        prop_assert_eq!(decode(body), Ok(msg.clone()));
        prop_assert_eq!(encoded_len(&msg, ts), line.len(), "encoded_len of {:?}", msg);
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_mutated_lines(
        msg in message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut line = Vec::new();
        encode(&msg, 1.0, &mut line);
        line.pop();
        for (at, byte, op) in edits {
            if line.is_empty() {
                break;
            }
            let i = at.index(line.len());
            match op {
                0 => line[i] = byte,
                1 => { line.remove(i); }
                _ => line.insert(i, byte),
            }
        }
        // Whatever comes out, a success must re-encode to a decodable line.
        if let Ok(m) = decode(&line) {
            let mut again = Vec::new();
            encode(&m, 1.0, &mut again);
            again.pop();
            prop_assert_eq!(decode(&again), Ok(m));
        }
    }

    #[test]
    fn line_reader_is_split_independent(
        lines in vec(vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..12),
        cuts in vec(any::<prop::sample::Index>(), 0..10),
        max in 1..32usize,
        terminated in any::<bool>(),
    ) {
        let mut stream = lines.join(&b'\n');
        if terminated {
            stream.push(b'\n');
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        at.push(0);
        at.push(stream.len());
        at.sort_unstable();
        let mut reader = LineReader::new(max);
        let mut got = Vec::new();
        for w in at.windows(2) {
            reader.push(&stream[w[0]..w[1]]);
            while let Some(l) = reader.next_line() {
                got.push(l.map(<[u8]>::to_vec));
            }
            // Only the unfinished last line stays buffered, cut at `max`.
            prop_assert!(reader.pending_bytes() <= max);
        }
        while let Some(l) = reader.finish() {
            got.push(l.map(<[u8]>::to_vec));
        }
        // An over-long line is TooLong whatever it holds (the reader cannot buffer it to
        // look); a blank line within the limit is skipped.
        let want: Vec<Result<Vec<u8>, DecodeError>> = lines
            .iter()
            .filter_map(|l| {
                if l.len() > max {
                    Some(Err(DecodeError::TooLong { max }))
                } else if l.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                    None
                } else {
                    Some(Ok(l.clone()))
                }
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}

fn keyring() -> Keyring {
    Keyring::from_keys(&[[0x42u8; 32], [0x24u8; 32]]).unwrap()
}

fn expect_of(bind: Option<u64>) -> Expect {
    bind.map_or(Expect::Request, Expect::Reply)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sealed_messages_open_and_decode_to_themselves(
        msg in message(),
        ts_ms in 0..u64::MAX / 2,
        nonce in any::<u64>(),
        bind in any::<Option<u64>>(),
    ) {
        let ring = keyring();
        let stamp = Stamp { ts_ms, nonce, bind };
        let mut out = Vec::new();
        auth::seal_with(&ring, stamp, &mut out, |o| encode(&msg, 1.0, o));
        prop_assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let line = &out[..out.len() - 1];
        let mut cache = ReplayCache::default();
        let opened = auth::open(&ring, line, ts_ms, expect_of(bind), &mut cache).unwrap();
        prop_assert_eq!(opened.stamp, stamp);
        prop_assert_eq!(decode(opened.json), Ok(msg));
    }

    #[test]
    fn any_edit_of_a_sealed_line_is_refused(
        msg in message(),
        nonce in any::<u64>(),
        bind in any::<Option<u64>>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let ring = keyring();
        let now = 1_767_225_600_000;
        let stamp = Stamp { ts_ms: now, nonce, bind };
        let mut line = Vec::new();
        auth::seal_with(&ring, stamp, &mut line, |o| encode(&msg, 1.0, o));
        line.pop();
        let original = line.clone();
        for (at, byte, op) in edits {
            let i = at.index(line.len().max(1));
            match op {
                0 if i < line.len() => line[i] = byte,
                1 if i < line.len() => { line.remove(i); }
                _ => line.insert(i.min(line.len()), byte),
            }
        }
        let got = auth::open(&ring, &line, now, expect_of(bind), &mut ReplayCache::default());
        prop_assert_eq!(got.is_ok(), line == original);
    }

    #[test]
    fn open_never_panics_on_bytes(
        prefix in prop_oneof![Just(Vec::new()), Just(b"!".to_vec())],
        bytes in vec(any::<u8>(), 0..256),
    ) {
        let line = [prefix, bytes].concat();
        let got = auth::open(&keyring(), &line, 0, Expect::Request, &mut ReplayCache::default());
        prop_assert!(got.is_err());
    }
}

#[test]
fn ipv6_endpoint_on_the_wire() {
    let ep = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 5000, 0, 0));
    let mut out = Vec::new();
    encode(
        &Message::Ping(Ping {
            sender: ep,
            suspected_by: None,
        }),
        0.0,
        &mut out,
    );
    assert!(String::from_utf8_lossy(&out).contains("\"[::1]:5000\""));
}
