//! End to end on loopback: applications use a running network through a node's local
//! interfaces. The control socket (`--control`: publish, watch, members, info), the event
//! stream it shares with `--events FILE`, the `gossipctl` client, and `--metrics` checked by
//! curl and Prometheus's own `promtool` (see docs/CONTROL.md).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bootstrapped, free_port, wait_for, Net, LOCAL};
use serde_json::{json, Value};

fn connect(sock: &Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// One request on a fresh connection, its one reply.
fn request(sock: &Path, req: &Value) -> Value {
    let mut s = connect(sock);
    writeln!(s, "{req}").expect("write request");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("reply");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}"))
}

/// A watcher: the connection after its `ok`.
struct Watch(BufReader<UnixStream>);

impl Watch {
    fn open(sock: &Path, types: &[&str]) -> Watch {
        let mut s = connect(sock);
        writeln!(s, "{}", json!({"cmd": "watch", "types": types})).expect("watch");
        let mut w = Watch(BufReader::new(s));
        let ok = w.next().expect("watch reply");
        assert_eq!(ok["ok"], true, "{ok}");
        w
    }

    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.0.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    }

    /// Events until `done` says so or `limit` passes.
    fn until(&mut self, limit: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while Instant::now() < end && !done(&seen) {
            match self.next() {
                Some(v) => seen.push(v),
                None => break,
            }
        }
        seen
    }
}

fn started(name: &str, peers: usize, flags: &[&str]) -> (Net, Vec<SocketAddr>) {
    let mut all = vec![LOCAL, "--max-gossip", "0"];
    all.extend_from_slice(flags);
    let mut net = Net::start(name, 3, &all);
    let peers: Vec<SocketAddr> = (0..peers).map(|_| net.add_peer()).collect();
    for &p in &peers {
        assert!(
            wait_for(Duration::from_secs(20), || bootstrapped(p)),
            "{p} did not bootstrap"
        );
    }
    for &p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || net.control(p).exists()),
            "{p}: no control socket"
        );
    }
    (net, peers)
}

/// Three publishers, every peer watching: each peer's stream shows every message exactly
/// once (delivered, or published by it), and its events file says the same.
#[test]
fn application_messages_reach_every_peer_exactly_once() {
    let (net, peers) = started("control-publish", 6, &[]);
    let mut watches: Vec<Watch> = (peers.iter())
        .map(|&p| Watch::open(&net.control(p), &["gossip"]))
        .collect();
    let mut ids: BTreeMap<String, SocketAddr> = BTreeMap::new();
    for round in 0..10 {
        for &publisher in &peers[..3] {
            let data = format!("round {round} from {publisher}: \"quoted\"\nand a second line");
            let reply = request(
                &net.control(publisher),
                &json!({"cmd": "publish", "name": "test", "data": data}),
            );
            assert_eq!(reply["ok"], true, "{reply}");
            let id = reply["id"].as_str().expect("id").to_string();
            assert!(id.contains(&publisher.to_string()), "{id}");
            assert!(ids.insert(id, publisher).is_none(), "ids are unique");
        }
    }
    for (w, &p) in watches.iter_mut().zip(&peers) {
        let events = w.until(Duration::from_secs(20), |seen| seen.len() >= ids.len());
        let mut got: BTreeMap<String, String> = BTreeMap::new();
        for e in &events {
            let id = e["id"].as_str().expect("id").to_string();
            let what = e["event"].as_str().expect("event").to_string();
            assert!(got.insert(id.clone(), what).is_none(), "{p} saw {id} twice");
        }
        for (id, publisher) in &ids {
            let want = if *publisher == p {
                "published"
            } else {
                "delivered"
            };
            assert_eq!(got.get(id).map(String::as_str), Some(want), "{p}: {id}");
        }
        let delivered = events.iter().find(|e| e["event"] == "delivered");
        let d = delivered.expect("a delivery");
        assert_eq!(d["name"], "test");
        assert!(d["data"]
            .as_str()
            .is_some_and(|s| s.contains("\"quoted\"\nand")));
        assert!(d["age_ms"].as_u64().is_some() && d["origin"].is_string());
    }
    // The events files carry the same deliveries, one line each.
    for &p in &peers {
        let text = std::fs::read_to_string(net.events(p)).expect("events file");
        let delivered = (text.lines())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "gossip" && e["event"] == "delivered")
            .count();
        let own = ids.values().filter(|&&o| o == p).count();
        assert_eq!(delivered, ids.len() - own, "{p}'s events file");
        assert!(text.contains("\"event\":\"bootstrapped\""), "{p}: {text}");
    }
    let refused = request(
        &net.control(net.seeds[0]),
        &json!({"cmd": "publish", "data": "x"}),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("seed")),
        "{refused}"
    );
}

/// `gossipctl` end to end: a watcher in JSON, a publish with a name, members and info.
#[test]
fn gossipctl_publishes_watches_and_lists_members() {
    let (net, peers) = started("control-gossipctl", 3, &[]);
    let bin = env!("CARGO_BIN_EXE_gossipctl");
    let mut watch = Command::new(bin)
        .args(["watch", "--type", "gossip", "--json", "--control"])
        .arg(net.control(peers[1]))
        .stdout(Stdio::piped())
        .spawn()
        .expect("gossipctl watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(bin)
        .args(["publish", "--name", "deploy", "--control"])
        .arg(net.control(peers[0]))
        .arg("version 2")
        .output()
        .expect("gossipctl publish");
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let line = lines.next().expect("an event").expect("a line");
    let _ = watch.kill();
    let _ = watch.wait();
    let e: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(e["id"], id.as_str());
    assert_eq!(
        (e["event"].as_str(), e["name"].as_str()),
        (Some("delivered"), Some("deploy"))
    );
    assert_eq!(e["data"], "version 2");
    let members = Command::new(bin)
        .args(["members", "--control"])
        .arg(net.control(peers[2]))
        .output()
        .expect("gossipctl members");
    let text = String::from_utf8_lossy(&members.stdout);
    assert!(members.status.success(), "{members:?}");
    for p in &peers {
        assert!(text.contains(&p.to_string()), "{p} not listed: {text}");
    }
    let info = request(&net.control(peers[0]), &json!({"cmd": "info"}));
    assert_eq!(info["role"], "peer");
    assert_eq!(info["counters"]["app_published"], 1);
    assert_eq!(info["settings"]["max_app_bytes"], 16384);
}

/// Over the limit, or before the peer joined: a clear error, and nothing is sent.
#[test]
fn an_oversized_publish_is_refused_and_nothing_is_sent() {
    let (net, peers) = started("control-limit", 2, &["--max-app-bytes", "100"]);
    let mut w = Watch::open(&net.control(peers[1]), &["gossip"]);
    let big = "x".repeat(101);
    let r = request(
        &net.control(peers[0]),
        &json!({"cmd": "publish", "data": big}),
    );
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the limit of 100")),
        "{r}"
    );
    let ok = request(
        &net.control(peers[0]),
        &json!({"cmd": "publish", "data": "fits"}),
    );
    assert_eq!(ok["ok"], true, "{ok}");
    let first = w.next().expect("an event");
    assert_eq!(
        first["data"], "fits",
        "the refused one never arrived first: {first}"
    );
}

/// Bad requests get errors and the connection stays; an endless line is refused and closed;
/// clients over the limit are closed; a watcher that reads nothing costs the node nothing
/// else: the others get every event and the publisher every answer.
#[test]
fn bad_and_slow_control_clients_never_stall_the_node() {
    let (net, peers) = started("control-hostile", 2, &[]);
    let sock = net.control(peers[0]);
    let mut s = connect(&sock);
    let mut replies = BufReader::new(s.try_clone().expect("clone"));
    for bad in [
        "not json",
        "[1,2]",
        "{\"cmd\": 3}",
        "{\"cmd\": \"explode\"}",
        "{\"cmd\": \"publish\"}",
        "{\"cmd\": \"publish\", \"data\": 5}",
        "{\"cmd\": \"watch\", \"types\": [\"nonsense\"]}",
    ] {
        writeln!(s, "{bad}").expect("write");
        let mut line = String::new();
        replies.read_line(&mut line).expect("reply");
        let v: Value = serde_json::from_str(&line).expect("json reply");
        assert_eq!(v["ok"], false, "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {v}"
        );
    }
    writeln!(s, "{}", json!({"cmd": "info"})).expect("write");
    let mut line = String::new();
    replies.read_line(&mut line).expect("reply");
    assert!(line.contains("\"ok\":true"), "still served: {line}");
    // A line longer than 1 MiB: an error, then the connection closes.
    let mut long = connect(&sock);
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..20 {
        if long.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = long.write_all(b"\n");
    let mut rest = String::new();
    let _ = long.read_to_string(&mut rest);
    assert!(rest.contains("\"ok\":false"), "{rest:?}");
    // Clients over the limit (64) are closed at once; the node still answers.
    let mut held: Vec<BufReader<UnixStream>> = (0..100)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .map(BufReader::new)
        .collect();
    let mut refused = 0;
    for c in &mut held {
        let _ = c
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(500)));
        let _ = writeln!(c.get_mut(), "{}", json!({"cmd": "info"}));
        let mut line = String::new();
        if !matches!(c.read_line(&mut line), Ok(n) if n > 0) {
            refused += 1;
        }
    }
    // The first client (`s`) holds a slot too.
    assert_eq!(refused, 100 - 63, "clients past 64 are closed at once");
    drop(held);
    // Once the node saw them go, there is room again.
    let served = |sock: &Path| {
        let Ok(mut c) = UnixStream::connect(sock) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = writeln!(c, "{}", json!({"cmd": "info"}));
        let mut line = String::new();
        matches!(BufReader::new(c).read_line(&mut line), Ok(n) if n > 0)
    };
    assert!(wait_for(Duration::from_secs(5), || (0..4).all(|_| served(&sock))));
    // One watcher that never reads, one that reads as it comes, and a burst of publishes
    // on one connection, each answered before the next.
    let _stuck = {
        let mut s = connect(&sock);
        writeln!(s, "{}", json!({"cmd": "watch", "types": ["gossip"]})).expect("watch");
        s
    };
    let mut reader = Watch::open(&net.control(peers[1]), &["gossip"]);
    let reading = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut dropped = 0u64;
        while let Some(e) = reader.next() {
            match e["type"].as_str() {
                Some("dropped") => dropped += e["count"].as_u64().unwrap_or(0),
                _ => n += 1,
            }
            if n >= 2_000 {
                break;
            }
        }
        (n, dropped)
    });
    let data = "y".repeat(1024);
    let mut publisher = connect(&sock);
    let mut answers = BufReader::new(publisher.try_clone().expect("clone"));
    let mut published = 0u64;
    for _ in 0..2_000 {
        writeln!(publisher, "{}", json!({"cmd": "publish", "data": data})).expect("publish");
        let mut line = String::new();
        answers
            .read_line(&mut line)
            .expect("an answer to every publish");
        let r: Value = serde_json::from_str(&line).expect("json");
        if r["ok"] == true {
            published += 1;
        } else {
            assert!(
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("publish queue full")),
                "{r}"
            );
        }
    }
    assert_eq!(
        published, 2_000,
        "within the default rate and burst of 2,000"
    );
    let (got, dropped) = reading.join().expect("reader");
    assert_eq!(
        (got, dropped),
        (published, 0),
        "the reading watcher got every message"
    );
    let info = request(&sock, &json!({"cmd": "info"}));
    assert_eq!(info["counters"]["app_published"], published);
}

/// Scrapes `addr` with curl.
fn curl(addr: SocketAddr) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--fail", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl (apt-get install curl)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `promtool check metrics` on `text`, if promtool is installed (required with
/// `PROMTOOL_REQUIRED`, as in CI).
fn promtool_check(text: &str) {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("PROMTOOL_REQUIRED").is_none(),
            "PROMTOOL_REQUIRED is set but promtool is not installed (apt-get install prometheus)"
        );
        eprintln!("promtool not installed: the format check did not run");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("feed promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check metrics: {said}");
}

/// Scrapes with curl of a busy peer and of a seed: valid by `promtool check metrics`, and
/// what they say matches what happened.
#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let (mut net, peers) = started("control-metrics", 2, &[]);
    let peer_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let seed_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let with = |net: &mut Net, addr: SocketAddr| {
        net.flags
            .extend(["--metrics".to_string(), addr.to_string()]);
    };
    with(&mut net, peer_metrics);
    let scraped = net.add_peer();
    net.flags.truncate(net.flags.len() - 2);
    let seed = net.seeds[0];
    net.kill(seed);
    with(&mut net, seed_metrics);
    net.restart_seed(seed);
    net.flags.truncate(net.flags.len() - 2);
    assert!(wait_for(Duration::from_secs(20), || bootstrapped(scraped)));
    for _ in 0..20 {
        let r = request(
            &net.control(peers[0]),
            &json!({"cmd": "publish", "data": "m"}),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    assert!(wait_for(Duration::from_secs(10), || {
        common::counter(scraped, "app_delivered") == 20
    }));
    let text = curl(peer_metrics);
    assert!(
        text.contains("gossip_delivered_total{message=\"app\"} 20"),
        "{text}"
    );
    assert!(text.contains("gossip_messages_total{direction=\"in\",type=\"APP_MSG\"}"));
    assert!(text.contains("gossip_probe_rtt_seconds_bucket"), "{text}");
    assert!(
        text.contains("gossip_connections{side=\"inbound\"}"),
        "{text}"
    );
    promtool_check(&text);
    assert!(wait_for(Duration::from_secs(10), || {
        curl(seed_metrics).contains("gossip_peer_list{status=\"alive\"} 3")
    }));
    let text = curl(seed_metrics);
    assert!(
        text.contains("gossip_seed_votes_total{vote=\"yes\"}"),
        "{text}"
    );
    promtool_check(&text);
}
