//! The cluster key end to end, with the real `seed` and `peer` programs on loopback: a keyed
//! cluster forms; a client without the key (plain JSON: a registration, a certified-looking
//! removal, a status query), a client with another key, a forged MAC and a replayed sealed
//! frame each get `ERROR` and change no Peer List; and the key rotates (add the new key, make
//! it the sending key, remove the old one) while the cluster keeps working, after which a
//! frame under the old key is refused.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{send_sealed, wait_for, Net};
use gossip_core::msg::{CommitSync, Decision, Endpoint, Message, RegisterReq, RoleStatus, Status};
use gossip_core::wire;
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache, Stamp};
use gossip_driver_mio::{nonce_seed, unix_now_ms};

const STATUS_REQ: &str = r#"{"type":"STATUS_REQ","payload":{}}"#;

/// A 32-byte key in hex, every digit `d`.
fn key(d: char) -> String {
    d.to_string().repeat(64)
}

fn ring(text: &str) -> Keyring {
    Keyring::parse(text).expect("key")
}

/// Every seed's Peer List as (peer, incarnation, status).
fn lists(net: &Net) -> BTreeMap<SocketAddr, Vec<(Endpoint, u64, Status)>> {
    net.seeds
        .iter()
        .map(|s| {
            let entries = match net.status(*s).map(|st| st.role) {
                Some(RoleStatus::Seed(seed)) => seed
                    .entries
                    .iter()
                    .map(|e| (e.peer, e.incarnation, e.status))
                    .collect(),
                _ => panic!("seed {s} did not answer a sealed STATUS_REQ"),
            };
            (*s, entries)
        })
        .collect()
}

/// Every peer of `peers` is alive in every seed's Peer List.
fn all_registered(net: &Net, peers: &[SocketAddr]) -> bool {
    net.seeds
        .iter()
        .all(|s| match net.status(*s).map(|st| st.role) {
            Some(RoleStatus::Seed(seed)) => peers.iter().all(|p| {
                seed.entries
                    .iter()
                    .any(|e| e.peer == *p && e.status == Status::Alive)
            }),
            _ => false,
        })
}

/// Sends `bytes` on a fresh connection; the reply line without its newline.
fn raw_exchange(to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s.write_all(bytes).expect("write");
    let mut reply = Vec::new();
    BufReader::new(s)
        .read_until(b'\n', &mut reply)
        .expect("reply");
    assert_eq!(reply.pop(), Some(b'\n'), "no reply line");
    reply
}

/// The reason of a sealed, unbound `ERROR` (checked under `ring`).
fn sealed_error(reply: &[u8], ring: &Keyring) -> String {
    let opened = auth::open(
        ring,
        reply,
        unix_now_ms(),
        Expect::Request,
        &mut ReplayCache::default(),
    )
    .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(reply)));
    match wire::decode(opened.json) {
        Ok(Message::Error { reason }) => reason,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

fn json(msg: &Message) -> String {
    let mut out = Vec::new();
    wire::encode(msg, 0.0, &mut out);
    String::from_utf8(out).expect("utf-8")
}

/// A plain JSON request from a client without the key: the reply is a sealed `ERROR`.
fn plain(to: SocketAddr, json: &str) -> String {
    match gossip_bins::exchange_line(
        to,
        json.as_bytes(),
        Duration::from_secs(2),
        None,
        gossip_bins::MAX_REPLY_LINE,
    ) {
        Ok(reply) => panic!("{to} answered a plain request: {reply}"),
        Err(e) => e,
    }
}

#[test]
fn a_keyed_cluster_forms_and_refuses_frames_without_the_key() {
    let k1 = key('1');
    let mut net = Net::start_keyed("key", 3, &[], &format!("# test key\n{k1}\n"));
    let ring1 = net.keyring.clone().expect("keyed");
    let peers: Vec<SocketAddr> = (0..2).map(|_| net.add_peer()).collect();
    assert!(
        wait_for(Duration::from_secs(10), || all_registered(&net, &peers)),
        "the keyed peers did not register at every seed: {:?}",
        lists(&net)
    );
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(5), || net.status(*p).is_some_and(
                |s| matches!(s.role, RoleStatus::Peer(ps) if ps.registered)
            )),
            "peer {p} does not see itself registered"
        );
    }
    let before = lists(&net);
    let seed = net.seeds[0];

    // A client without the key: plain JSON gets a sealed ERROR and changes nothing.
    let stranger: SocketAddr = "127.0.0.1:6001".parse().expect("addr");
    let register = json(&Message::RegisterReq(Box::new(RegisterReq {
        peer: stranger,
        incarnation: None,
    })));
    let want = "requires a cluster key (--cluster-key-file); it answered ERROR: frame without a cluster-key MAC";
    for s in &net.seeds {
        let e = plain(*s, &register);
        assert!(e.contains(want), "{e}");
    }
    // A removal whose certificate names every seed: accepted from anyone without a key (the
    // certificate is names, not signatures); with one, refused.
    let (victim, incarnation, _) = before[&seed][0];
    let forged = json(&Message::DeadCommit(Box::new(CommitSync {
        proposal_id: "forged#1".into(),
        decision: Decision::Commit,
        peer: victim,
        source_seed: seed,
        incarnation: Some(incarnation),
        votes: net.seeds.clone(),
    })));
    for s in &net.seeds {
        let e = plain(*s, &forged);
        assert!(e.contains(want), "{e}");
    }
    let e = plain(seed, STATUS_REQ);
    assert!(e.contains(want), "{e}");
    // The ERROR is sealed with the cluster's key (unbound: the request was no member's).
    let reply = raw_exchange(seed, format!("{STATUS_REQ}\n").as_bytes());
    assert_eq!(
        sealed_error(&reply, &ring1),
        "frame without a cluster-key MAC"
    );

    // A client with another key.
    let other = ring(&key('9'));
    let e = send_sealed(seed, &register, &other).expect_err("refused");
    assert!(
        e.contains("reply refused (unknown key id); unverified, it says: ERROR: unknown key id"),
        "{e}"
    );
    // Another key's MAC under the cluster's key id: bad MAC.
    let mut sealed = Vec::new();
    let stamp = Stamp {
        ts_ms: unix_now_ms(),
        nonce: nonce_seed(),
        bind: None,
    };
    auth::seal(&other, stamp, forged.as_bytes(), &mut sealed);
    let kid = ring1.key_ids()[0].clone();
    sealed.splice(1..9, kid.bytes());
    assert_eq!(
        sealed_error(&raw_exchange(seed, &sealed), &ring1),
        "bad MAC"
    );
    // A sealed request replayed verbatim.
    let mut req = Vec::new();
    let nonce = nonce_seed();
    let stamp = Stamp {
        ts_ms: unix_now_ms(),
        nonce,
        bind: None,
    };
    auth::seal(&ring1, stamp, STATUS_REQ.as_bytes(), &mut req);
    let first = raw_exchange(seed, &req);
    let opened = auth::open(
        &ring1,
        &first,
        unix_now_ms(),
        Expect::Reply(nonce),
        &mut ReplayCache::default(),
    )
    .expect("the first is answered, bound to its nonce");
    assert!(opened.json.starts_with(br#"{"type":"STATUS_RESP""#));
    let replayed = raw_exchange(seed, &req);
    let opened = auth::open(
        &ring1,
        &replayed,
        unix_now_ms(),
        Expect::Reply(nonce),
        &mut ReplayCache::default(),
    )
    .expect("a member's replayed frame gets a bound ERROR");
    assert_eq!(
        wire::decode(opened.json),
        Ok(Message::Error {
            reason: "replayed nonce".into()
        })
    );

    // Nothing changed anywhere; every node still runs.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lists(&net), before, "a Peer List changed");
    assert!(net.panics().is_empty(), "{:?}", net.panics());
    // The refusals were counted as bad input by the nodes that got them.
    assert!(net
        .status(seed)
        .is_some_and(|s| s.counters.iter().any(|(k, v)| k == "bad_input" && *v >= 5)));
}

/// Asks `node` for its status sealed under each of `keys` alone: every one must be accepted,
/// and every reply sealed under the first (the node's sending key).
fn check_keys(node: SocketAddr, keys: &[&str], step: usize) {
    let all = ring(&keys.join("\n"));
    for k in keys {
        let mut req = Vec::new();
        let nonce = nonce_seed();
        let stamp = Stamp {
            ts_ms: unix_now_ms(),
            nonce,
            bind: None,
        };
        auth::seal(&ring(k), stamp, STATUS_REQ.as_bytes(), &mut req);
        let reply = raw_exchange(node, &req);
        let opened = auth::open(
            &all,
            &reply,
            unix_now_ms(),
            Expect::Reply(nonce),
            &mut ReplayCache::default(),
        )
        .unwrap_or_else(|e| panic!("step {step}: {node}: {e:?}"));
        assert!(
            opened.json.starts_with(br#"{"type":"STATUS_RESP""#),
            "step {step}: {node} refused a key of the ring: {}",
            String::from_utf8_lossy(opened.json)
        );
        assert_eq!(
            opened.key_index, 0,
            "step {step}: {node} seals with the wrong key"
        );
    }
}

#[test]
fn the_cluster_key_rotates_without_downtime() {
    let (k1, k2) = (key('1'), key('2'));
    let mut net = Net::start_keyed("rotate", 3, &[], &format!("{k1}\n"));
    let mut peers: Vec<SocketAddr> = (0..2).map(|_| net.add_peer()).collect();
    assert!(
        wait_for(Duration::from_secs(10), || all_registered(&net, &peers)),
        "the cluster did not form under k1"
    );
    let steps: [(String, Vec<&str>); 3] = [
        // 1. Every node accepts both keys; the old one still seals.
        (format!("{k1}\n{k2}\n"), vec![&k1, &k2]),
        // 2. The new key seals everywhere; the old one is still accepted.
        (format!("# rotated\n{k2}\n{k1}\n"), vec![&k2, &k1]),
        // 3. The old key is gone.
        (format!("{k2}\n"), vec![&k2]),
    ];
    for (i, (text, keys)) in steps.iter().enumerate() {
        let step = i + 1;
        net.write_keys(text);
        // The cluster keeps working: a new peer (started with this step's file) registers
        // at every seed, the others stay, every node takes every key of the step and seals
        // with its first, and no node refused a frame from another. (The nodes check their
        // files 500 ms apart at random phases, so a skipped step, say [k1] straight to
        // [k2, k1], shows up here as refused input.)
        peers.push(net.add_peer());
        assert!(
            wait_for(Duration::from_secs(10), || all_registered(&net, &peers)),
            "step {step}: not every peer is registered: {:?}",
            lists(&net)
        );
        let everyone: Vec<SocketAddr> = net.seeds.iter().chain(&peers).copied().collect();
        for node in &everyone {
            check_keys(*node, keys, step);
            assert_eq!(
                bad_input(&net, *node),
                Some(0),
                "step {step}: {node} refused input"
            );
        }
    }
    // A frame under the old key alone is refused everywhere.
    let old = ring(&k1);
    let everyone: Vec<SocketAddr> = net.seeds.iter().chain(&peers).copied().collect();
    for node in everyone {
        let e = send_sealed(node, STATUS_REQ, &old).expect_err("old key refused");
        assert!(e.contains("it says: ERROR: unknown key id"), "{node}: {e}");
        assert_eq!(bad_input(&net, node), Some(1), "{node} counted the refusal");
    }
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}

/// The node's `bad_input` counter (sealed status query).
fn bad_input(net: &Net, node: SocketAddr) -> Option<u64> {
    net.status(node).map(|s| {
        s.counters
            .iter()
            .find(|(k, _)| k == "bad_input")
            .map_or(0, |(_, v)| *v)
    })
}
