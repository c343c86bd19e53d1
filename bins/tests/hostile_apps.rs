//! Application messages (`APP_MSG`) against hostile senders and beside the reference
//! implementation, on loopback: forged and mismatched ids, oversize payloads, replays of a
//! genuine message, a flood under one origin's name, and a mixed cluster in which a
//! stand-in that behaves as the original does (one connection per request, `ERROR` for any
//! type it does not know) is a neighbour of our peers. Each peer's event stream (`--events`)
//! says what it delivered.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bootstrapped, counter, wait_for, Net, LOCAL};
use serde_json::{json, Value};

/// One line to `to` on a fresh connection, its one reply.
fn one_shot(to: SocketAddr, line: &str) -> Value {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    writeln!(s, "{line}").expect("write");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("read reply");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
}

fn app_line(id: &str, origin: SocketAddr, sender: SocketAddr, data: &str) -> String {
    json!({
        "type": "APP_MSG",
        "payload": {
            "message": id,
            "origin_ip": origin.ip().to_string(),
            "origin_port": origin.port(),
            "msg_no": 1,
            "sender": sender.to_string(),
            "hops": 1,
            "data": data,
            "published_ms": 1_767_225_600_000u64,
        },
        "ts": 1767225600.0,
    })
    .to_string()
}

/// The ids each peer's events file says it delivered, and how many times each.
fn deliveries(net: &Net, peer: SocketAddr) -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(net.events(peer)).unwrap_or_default();
    let mut got = BTreeMap::new();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if e["type"] == "gossip" && e["event"] == "delivered" {
            *got.entry(e["id"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    got
}

fn publish(net: &Net, peer: SocketAddr, data: &str) -> String {
    let mut s = UnixStream::connect(net.control(peer)).expect("control socket");
    writeln!(s, "{}", json!({"cmd": "publish", "data": data})).expect("publish");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("reply");
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["ok"], true, "{v}");
    v["id"].as_str().expect("id").to_string()
}

fn network(name: &str, peers: usize) -> (Net, Vec<SocketAddr>) {
    let mut net = Net::start(name, 3, &[LOCAL, "--max-gossip", "0"]);
    let peers: Vec<SocketAddr> = (0..peers).map(|_| net.add_peer()).collect();
    for &p in &peers {
        assert!(wait_for(Duration::from_secs(20), || bootstrapped(p)));
    }
    (net, peers)
}

/// A stranger's `APP_MSG` whose id names another endpoint than its origin, or whose payload
/// is over the limit, is answered `ERROR` and delivered nowhere; a genuine message replayed
/// is a duplicate everywhere; nothing is delivered twice.
#[test]
fn forged_oversized_and_replayed_application_messages_are_refused_or_ignored() {
    let (net, peers) = network("apps-forged", 4);
    let (a, b) = (peers[0], peers[1]);
    let stranger = SocketAddr::from(([127, 0, 0, 1], 9));
    let mismatched = app_line(&format!("1767225600:{b}/00000001.1"), a, stranger, "x");
    let r = one_shot(a, &mismatched);
    assert_eq!(r["type"], "ERROR", "{r}");
    assert!(r["payload"]["reason"]
        .as_str()
        .is_some_and(|s| s.contains("does not name its origin")));
    let big = "z".repeat(16 * 1024 + 1);
    let r = one_shot(
        a,
        &app_line(&format!("1767225600:{a}/00000001.1"), a, stranger, &big),
    );
    assert_eq!(r["type"], "ERROR", "{r}");
    // A genuine message, then the same line again (a replay), at every peer.
    let id = publish(&net, a, "genuine");
    assert!(wait_for(Duration::from_secs(10), || {
        peers[1..]
            .iter()
            .all(|&p| deliveries(&net, p).contains_key(&id))
    }));
    let replay = app_line(&id, a, stranger, "genuine");
    for &p in &peers {
        let r = one_shot(p, &replay);
        assert_eq!(r["type"], "APP_MSG", "{r}");
        assert_eq!(r["payload"]["duplicate"], true, "{p}: {r}");
    }
    std::thread::sleep(Duration::from_millis(500));
    for &p in &peers[1..] {
        let got = deliveries(&net, p);
        assert_eq!(got.len(), 1, "{p} delivered only the genuine one: {got:?}");
        assert_eq!(got.get(&id), Some(&1), "{p}");
    }
}

/// A flood of distinct messages under one origin's name is cut at that origin's rate at
/// every receiver; other origins' messages still reach everyone, and the peers keep working.
#[test]
fn a_flood_under_one_origins_name_is_bounded_and_others_still_get_through() {
    let (net, peers) = network("apps-flood", 4);
    let (victim, target) = (peers[1], peers[0]);
    let stranger = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut s = TcpStream::connect(target).expect("connect");
    let reader = BufReader::new(s.try_clone().expect("clone"));
    let answers = std::thread::spawn(move || reader.lines().take(20_000).count());
    let mut batch = String::new();
    for n in 0..20_000 {
        let id = format!("1767225600:{victim}/deadbeef.{n}");
        batch.push_str(&app_line(&id, victim, stranger, "flood"));
        batch.push('\n');
        if n % 500 == 499 {
            s.write_all(batch.as_bytes()).expect("flood");
            batch.clear();
        }
    }
    assert_eq!(
        answers.join().expect("answers"),
        20_000,
        "every line answered"
    );
    let limited = counter(target, "app_rate_limited");
    let delivered = counter(target, "app_delivered");
    assert!(limited > 0, "the flood met the limit");
    assert!(
        delivered + limited == 20_000 && delivered < 20_000,
        "{delivered} {limited}"
    );
    let id = publish(&net, peers[2], "honest");
    assert!(wait_for(Duration::from_secs(10), || {
        peers
            .iter()
            .filter(|&&p| p != peers[2])
            .all(|&p| deliveries(&net, p).contains_key(&id))
    }));
    assert!(peers.iter().all(|&p| bootstrapped(p)));
}

/// What a stand-in for the original implementation received.
#[derive(Default)]
struct Seen {
    gossip: AtomicU64,
    app: AtomicU64,
}

/// Serves like the original: every connection on a thread, one reply per line, `ERROR` for
/// any type it does not know (`PING`, `APP_MSG` and every other extension), `HELLO` and
/// `GOSSIP_MSG` answered as the reference does.
fn serve_like_the_original(listener: TcpListener, me: SocketAddr, seen: Arc<Seen>) {
    for stream in listener.incoming().flatten() {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    break;
                };
                let reply = match v["type"].as_str() {
                    Some("HELLO") => {
                        json!({"type": "HELLO_ACK", "payload": {"accepted": true, "peer_ip": me.ip().to_string(), "peer_port": me.port(), "degree": 1}})
                    }
                    Some("GOSSIP_MSG") => {
                        seen.gossip.fetch_add(1, Ordering::SeqCst);
                        json!({"type": "GOSSIP_MSG", "payload": {"accepted": true, "duplicate": false}})
                    }
                    Some("SUSPECT_REQ") => {
                        json!({"type": "SUSPECT_ACK", "payload": {"suspect": "", "alive": true, "confirmer": me.to_string()}})
                    }
                    other => {
                        if other == Some("APP_MSG") {
                            seen.app.fetch_add(1, Ordering::SeqCst);
                        }
                        json!({"type": "ERROR", "payload": {"reason": "unknown type"}})
                    }
                };
                if writeln!(writer, "{reply}").is_err() {
                    break;
                }
            }
        });
    }
}

/// A mixed cluster: the stand-in registers with the seeds as the original does and our
/// peers take it as a neighbour. The spec's gossip flows to it; application messages never
/// do (it would answer `ERROR`), and they still reach every one of our peers.
#[test]
fn a_mixed_cluster_with_the_original_keeps_working_and_never_sends_it_app_messages() {
    let mut net = Net::start(
        "apps-mixed",
        3,
        &[LOCAL, "--max-gossip", "3", "--gossip-interval-ms", "300"],
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let original = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let serving = Arc::clone(&seen);
    std::thread::spawn(move || serve_like_the_original(listener, original, serving));
    for &seed in &net.seeds[..2] {
        let r = one_shot(
            seed,
            &json!({"type": "REGISTER_REQ", "payload": {"peer_ip": "127.0.0.1", "peer_port": original.port()}}).to_string(),
        );
        assert_eq!(r["payload"]["success"], true, "{r}");
    }
    let peers: Vec<SocketAddr> = (0..5).map(|_| net.add_peer()).collect();
    for &p in &peers {
        assert!(wait_for(Duration::from_secs(20), || bootstrapped(p)));
    }
    let linked = |p: SocketAddr| {
        common::status(p).is_some_and(|s| match s.role {
            gossip_core::msg::RoleStatus::Peer(ps) => ps.neighbours.contains(&original),
            _ => false,
        })
    };
    assert!(
        wait_for(Duration::from_secs(20), || peers.iter().any(|&p| linked(p))),
        "no peer of ours took the stand-in as a neighbour"
    );
    let ids: Vec<String> = (0..5)
        .map(|i| publish(&net, peers[i % 5], "mixed"))
        .collect();
    for &p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || {
                let got = deliveries(&net, p);
                ids.iter()
                    .filter(|id| !id.contains(&p.to_string()))
                    .all(|id| got.get(id) == Some(&1))
            }),
            "{p} did not get every application message"
        );
    }
    assert!(
        wait_for(Duration::from_secs(10), || seen
            .gossip
            .load(Ordering::SeqCst)
            > 0),
        "the spec's gossip reaches the stand-in"
    );
    assert_eq!(
        seen.app.load(Ordering::SeqCst),
        0,
        "an APP_MSG was sent to the original"
    );
}
