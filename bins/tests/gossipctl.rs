//! `gossipctl` against a fake node: a Unix socket in a temporary directory, served by a thread
//! that records each request line and answers canned lines (`docs/CONTROL.md`), and fake
//! seeds on loopback TCP that answer `STATUS_REQ` for `members` at a peer.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossip_core::msg::{Entry, Message, RoleStatus, SeedStatus, Status, StatusResp};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gossipctl");

/// A directory of its own under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "gossipctl-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("control.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake node: serves `connections` connections on `socket`, one after the other; on each
/// it reads the request line, sends it to the returned receiver and lets `answer` write what
/// it likes before the connection is closed.
fn fake_node(
    socket: &Path,
    connections: usize,
    answer: impl Fn(&Value, &mut UnixStream) + Send + 'static,
) -> mpsc::Receiver<Value> {
    let listener = UnixListener::bind(socket).expect("bind the fake node's socket");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let request: Value = serde_json::from_str(&line).expect("the request is JSON");
            let _ = tx.send(request.clone());
            let mut stream = stream;
            answer(&request, &mut stream);
        }
    });
    rx
}

/// A fake node that answers every request with `reply`.
fn canned(socket: &Path, reply: &'static str) -> mpsc::Receiver<Value> {
    fake_node(socket, 1, move |_, stream| {
        let _ = stream.write_all(format!("{reply}\n").as_bytes());
    })
}

fn gossipctl(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("GOSSIP_CONTROL")
        .arg("--control")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Waits for `child`, killing it (and failing) after 10 s.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("gossipctl did not exit within 10 s");
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn run(mut cmd: Command) -> Output {
    finish(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gossipctl"),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn received(rx: &mpsc::Receiver<Value>) -> Value {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the fake node got a request")
}

const ID: &str = "1767225600:127.0.0.1:6001/5d2f9a01.1";

#[test]
fn publish_prints_the_id_and_sends_the_request() {
    let dir = TempDir::new();
    let rx = canned(
        &dir.socket(),
        r#"{"ok":true,"id":"1767225600:127.0.0.1:6001/5d2f9a01.1"}"#,
    );
    let out = run(gossipctl(
        &dir.socket(),
        &["publish", "--name", "n", "hello"],
    ));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{ID}\n"));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        received(&rx),
        json!({"cmd": "publish", "data": "hello", "name": "n"})
    );
}

#[test]
fn publish_json_prints_the_reply_and_leaves_out_an_absent_name() {
    let dir = TempDir::new();
    let reply = r#"{"ok":true,"id":"1767225600:127.0.0.1:6001/5d2f9a01.1"}"#;
    let rx = canned(&dir.socket(), reply);
    let out = run(gossipctl(&dir.socket(), &["publish", "--json", "hi"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{reply}\n"));
    assert_eq!(received(&rx), json!({"cmd": "publish", "data": "hi"}));
}

#[test]
fn publish_refused_exits_1_with_the_error() {
    let dir = TempDir::new();
    let _rx = canned(&dir.socket(), r#"{"ok":false,"error":"not joined yet"}"#);
    let out = run(gossipctl(&dir.socket(), &["publish", "x"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "gossipctl: publish refused: not joined yet\n"
    );
}

#[test]
fn publish_stdin_sends_all_of_it() {
    let dir = TempDir::new();
    let rx = canned(&dir.socket(), r#"{"ok":true,"id":"a"}"#);
    let mut cmd = gossipctl(&dir.socket(), &["publish", "--stdin"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gossipctl");
    let data = "line one\nline \"two\" é\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data.as_bytes())
        .expect("write stdin");
    let out = finish(child);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\n");
    assert_eq!(received(&rx), json!({"cmd": "publish", "data": data}));
}

#[test]
fn publish_stdin_that_is_not_utf8_is_refused_before_connecting() {
    let dir = TempDir::new();
    let mut child = gossipctl(&dir.socket(), &["publish", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gossipctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"ok \xff\xfe")
        .expect("write stdin");
    let out = finish(child);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("gossipctl: stdin is not UTF-8"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn publish_needs_exactly_one_of_text_and_stdin() {
    let dir = TempDir::new();
    for args in [&["publish"][..], &["publish", "--stdin", "x"][..]] {
        let out = run(gossipctl(&dir.socket(), args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

fn watch_events() -> Vec<Value> {
    vec![
        json!({"type": "gossip", "event": "delivered", "node": "127.0.0.1:6003",
               "at_ms": 1767225600123u64, "id": ID, "origin": "127.0.0.1:6001",
               "name": "deploy", "data": "v2", "hops": 2, "by_repair": false, "age_ms": 3}),
        json!({"type": "gossip", "event": "published", "node": "127.0.0.1:6003",
               "at_ms": 1767225600120u64, "id": ID, "name": "deploy", "bytes": 2}),
        json!({"type": "link", "event": "neighbour_added", "node": "127.0.0.1:6003",
               "at_ms": 1767225600001u64, "peer": "127.0.0.1:6001", "their_degree": 2}),
        json!({"type": "dropped", "count": 7}),
        json!({"type": "member", "event": "entry_changed", "node": "127.0.0.1:5000",
               "at_ms": 1767225661002u64, "peer": "127.0.0.1:6001", "incarnation": 2,
               "status": "removed"}),
        json!({"type": "gossip", "event": "delivered", "node": "127.0.0.1:6003",
               "at_ms": 1767225600500u64, "id": ID, "origin": "127.0.0.1:6001",
               "data": "two\nlines", "hops": null, "by_repair": true, "age_ms": 40}),
    ]
}

/// A fake node that acknowledges `watch` and sends [`watch_events`], then closes.
fn watch_node(socket: &Path) -> mpsc::Receiver<Value> {
    fake_node(socket, 1, |request, stream| {
        let types = request.get("types").cloned().unwrap_or(json!([]));
        let mut lines = format!("{}\n", json!({"ok": true, "watching": types}));
        for event in watch_events() {
            lines.push_str(&format!("{event}\n"));
        }
        let _ = stream.write_all(lines.as_bytes());
    })
}

#[test]
fn watch_prints_events_until_the_node_closes() {
    let dir = TempDir::new();
    let rx = watch_node(&dir.socket());
    let out = run(gossipctl(
        &dir.socket(),
        &["watch", "--type", "gossip,link,member", "--name", "deploy"],
    ));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        received(&rx),
        json!({"cmd": "watch", "types": ["gossip", "link", "member"], "name": "deploy"})
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("00:00:00.123 gossip delivered {ID} name=deploy from origin 127.0.0.1:6001 hops=2 age=3ms: v2"),
            format!("00:00:00.120 gossip published {ID} name=deploy (2 bytes)"),
            "00:00:00.001 link neighbour_added 127.0.0.1:6001 (their degree 2)".to_string(),
            "00:01:01.002 member entry_changed incarnation=2 peer=127.0.0.1:6001 status=removed".to_string(),
            format!("00:00:00.500 gossip delivered {ID} from origin 127.0.0.1:6001 by repair age=40ms: \"two\\nlines\""),
        ]
    );
    assert_eq!(
        text(&out.stderr),
        "(dropped 7 events: this watcher fell behind)\n"
    );
}

#[test]
fn watch_json_prints_each_event_verbatim() {
    let dir = TempDir::new();
    let rx = watch_node(&dir.socket());
    let out = run(gossipctl(&dir.socket(), &["watch", "--json"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(received(&rx), json!({"cmd": "watch"}));
    let expected: String = watch_events().iter().map(|e| format!("{e}\n")).collect();
    assert_eq!(text(&out.stdout), expected);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn watch_refused_exits_1() {
    let dir = TempDir::new();
    let _rx = canned(
        &dir.socket(),
        r#"{"ok":false,"error":"unknown event type \"gosip\""}"#,
    );
    let out = run(gossipctl(&dir.socket(), &["watch", "--type", "gosip"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "gossipctl: watch refused: unknown event type \"gosip\"\n"
    );
}

/// A fake node that acknowledges `watch` and sends events until the client goes away.
fn endless_node(socket: &Path) {
    let _rx = fake_node(socket, 1, |_, stream| {
        let _ = stream.write_all(b"{\"ok\":true,\"watching\":[]}\n");
        for n in 0..10_000_000u64 {
            let event = json!({"type": "gossip", "event": "delivered", "node": "127.0.0.1:6003",
                               "at_ms": 1767225600000u64 + n, "id": n, "data": "x"});
            if stream.write_all(format!("{event}\n").as_bytes()).is_err() {
                return;
            }
        }
    });
}

#[test]
fn watch_exits_quietly_when_stdout_is_closed() {
    let dir = TempDir::new();
    endless_node(&dir.socket());
    let mut child = gossipctl(&dir.socket(), &["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gossipctl");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first event");
    let first: Value = serde_json::from_str(&first).expect("a JSON event");
    assert_eq!(first["event"], "delivered");
    drop(stdout);
    let out = finish(child);
    assert!(out.status.success(), "status {:?}", out.status);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn watch_piped_into_head() {
    let dir = TempDir::new();
    endless_node(&dir.socket());
    let status = dir.0.join("status");
    let stderr = dir.0.join("stderr");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"{ "$0" --control "$1" watch 2>"$3"; echo $? >"$2"; } | head -3"#)
        .arg(BIN)
        .arg(dir.socket())
        .arg(&status)
        .arg(&stderr)
        .env_remove("GOSSIP_CONTROL")
        .output()
        .expect("run sh");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "00:00:00.000 gossip delivered 0: x\n\
         00:00:00.001 gossip delivered 1: x\n\
         00:00:00.002 gossip delivered 2: x\n"
    );
    let code = std::fs::read_to_string(&status).expect("gossipctl's exit status");
    assert_eq!(code.trim(), "0");
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr file"), "");
}

#[test]
fn missing_socket_is_a_clear_error() {
    let dir = TempDir::new();
    let sock = dir.socket();
    let out = run(gossipctl(&sock, &["info"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let shown = sock.display();
    assert!(
        err.starts_with(&format!("gossipctl: cannot connect to {shown}: ")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!("(is the node running with --control {shown}?)\n")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn no_control_socket_is_a_usage_error() {
    let out = Command::new(BIN)
        .env_remove("GOSSIP_CONTROL")
        .arg("info")
        .output()
        .expect("run gossipctl");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "gossipctl: no control socket: give --control PATH or set GOSSIP_CONTROL\n"
    );
}

#[test]
fn a_silent_node_times_out() {
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, |_, _| {
        thread::sleep(Duration::from_secs(3))
    });
    let started = Instant::now();
    let out = run(gossipctl(&dir.socket(), &["--timeout-ms", "200", "info"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        text(&out.stderr).contains("nothing within 200 ms"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_reply_that_is_not_json_is_an_error() {
    let dir = TempDir::new();
    let _rx = canned(&dir.socket(), "hello?");
    let out = run(gossipctl(&dir.socket(), &["info"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not JSON"),
        "{}",
        text(&out.stderr)
    );
}

const SEED_MEMBERS: &str = r#"{"ok":true,"role":"seed","node":"127.0.0.1:5000","members":[{"peer":"127.0.0.1:6001","incarnation":1,"status":"alive","votes":["127.0.0.1:5000","127.0.0.1:5001"]},{"peer":"127.0.0.1:6002","incarnation":3,"status":"removed","votes":["127.0.0.1:5000","127.0.0.1:5001"]}]}"#;

#[test]
fn members_at_a_seed() {
    let dir = TempDir::new();
    let rx = canned(&dir.socket(), SEED_MEMBERS);
    let out = run(gossipctl(&dir.socket(), &["members"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(received(&rx), json!({"cmd": "members"}));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "127.0.0.1:5000  seed  1 alive, 1 removed");
    assert!(lines[1].contains("PEER") && lines[1].contains("VOTES"));
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "127.0.0.1:6001",
            "1",
            "alive",
            "127.0.0.1:5000,127.0.0.1:5001"
        ]
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(row[..3], ["127.0.0.1:6002", "3", "removed"]);
    assert_eq!(lines.len(), 4);

    let dir = TempDir::new();
    let _rx = canned(&dir.socket(), SEED_MEMBERS);
    let out = run(gossipctl(&dir.socket(), &["members", "--json"]));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{SEED_MEMBERS}\n"));
}

/// A fake seed on loopback that answers one `STATUS_REQ` with a Peer List of `entries`.
fn fake_seed(entries: Vec<(u16, u64, Status)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake seed");
    let addr = listener.local_addr().expect("its address");
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().expect("clone")).read_line(&mut line);
        assert!(line.contains("STATUS_REQ"), "{line}");
        let status = StatusResp {
            node: addr,
            role: RoleStatus::Seed(SeedStatus {
                entries: entries
                    .into_iter()
                    .map(|(port, incarnation, status)| Entry {
                        peer: SocketAddr::from(([127, 0, 0, 1], port)),
                        incarnation,
                        status,
                        votes: vec![addr],
                    })
                    .collect(),
                pending: 0,
            }),
            counters: Vec::new(),
        };
        let mut reply = Vec::new();
        gossip_core::wire::encode(&Message::StatusResp(Box::new(status)), 0.0, &mut reply);
        let mut stream = stream;
        let _ = stream.write_all(&reply);
    });
    addr
}

/// An address nobody listens on.
fn dead_seed() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("its address")
}

fn peer_members(seeds: &[SocketAddr]) -> String {
    json!({"ok": true, "role": "peer", "node": "127.0.0.1:6001",
           "seeds": seeds.iter().map(ToString::to_string).collect::<Vec<_>>(),
           "members": [{"peer": "127.0.0.1:6002", "incarnation": 1, "status": "alive"}]})
    .to_string()
}

#[test]
fn members_at_a_peer_shows_its_seeds_view() {
    let a = fake_seed(vec![(6001, 1, Status::Alive), (6002, 2, Status::Removed)]);
    let b = fake_seed(vec![(6001, 1, Status::Alive), (6002, 2, Status::Alive)]);
    let dead = dead_seed();
    let reply = peer_members(&[a, dead, b]);
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, move |_, stream| {
        let _ = stream.write_all(format!("{reply}\n").as_bytes());
    });
    let out = run(gossipctl(
        &dir.socket(),
        &["members", "--timeout-ms", "2000"],
    ));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "seeds' view (2 of 3 seeds answered): 1 alive, 1 removed"
    );
    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["127.0.0.1:6001", "1", "alive", "2/2"],
            ["127.0.0.1:6002", "2", "removed", "1/2"],
            ["127.0.0.1:6002", "2", "alive", "1/2"],
        ]
    );
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("gossipctl: seed {dead} did not answer: ")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn members_at_a_peer_fails_when_no_seed_answers() {
    let reply = peer_members(&[dead_seed(), dead_seed()]);
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, move |_, stream| {
        let _ = stream.write_all(format!("{reply}\n").as_bytes());
    });
    let out = run(gossipctl(&dir.socket(), &["members"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(
        err.ends_with("gossipctl: none of the 2 seeds of 127.0.0.1:6001 answered\n"),
        "{err}"
    );
}

#[test]
fn members_local_at_a_peer_prints_what_it_knows() {
    let reply = peer_members(&[dead_seed()]);
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, move |_, stream| {
        let _ = stream.write_all(format!("{reply}\n").as_bytes());
    });
    let out = run(gossipctl(&dir.socket(), &["members", "--local"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("127.0.0.1:6001  peer  knows 1 peers"),
        "{stdout}"
    );
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row, ["127.0.0.1:6002", "1", "alive"]);
}

const INFO: &str = r#"{"ok":true,"role":"peer","node":"127.0.0.1:6001","seeds":["127.0.0.1:5000"],"registered":true,"incarnation":1,"neighbours":["127.0.0.1:6002","127.0.0.1:6003"],"known_peers":12,"settings":{"gossip_mode":"flood","max_app_bytes":16384},"counters":{"gossip_first":10,"app_published":2}}"#;

#[test]
fn info_summary_and_json() {
    let dir = TempDir::new();
    let rx = canned(&dir.socket(), INFO);
    // The socket from the environment this time.
    let out = run({
        let mut cmd = Command::new(BIN);
        cmd.env("GOSSIP_CONTROL", dir.socket()).arg("info");
        cmd
    });
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(received(&rx), json!({"cmd": "info"}));
    assert_eq!(
        text(&out.stdout),
        "peer 127.0.0.1:6001\n\
         \x20 registered (incarnation 1)\n\
         \x20 seeds (1): 127.0.0.1:5000\n\
         \x20 neighbours (2): 127.0.0.1:6002, 127.0.0.1:6003\n\
         \x20 known peers: 12\n\
         \x20 settings:\n\
         \x20   gossip_mode    flood\n\
         \x20   max_app_bytes  16384\n\
         \x20 counters:\n\
         \x20   app_published  2\n\
         \x20   gossip_first   10\n"
    );

    let dir = TempDir::new();
    let _rx = canned(&dir.socket(), INFO);
    let out = run(gossipctl(&dir.socket(), &["info", "--json"]));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{INFO}\n"));
}

#[test]
fn a_reply_line_over_64_mib_is_refused_without_waiting_for_its_end() {
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, |_, stream| {
        let _ = stream.write_all(&vec![b'x'; (64 << 20) + 16]);
        // Keep the connection open: only the bound can end the read.
        thread::sleep(Duration::from_secs(5));
    });
    let started = Instant::now();
    let out = run(gossipctl(&dir.socket(), &["--timeout-ms", "4000", "info"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = text(&out.stderr);
    assert!(err.contains("a line over 64 MiB"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_unterminated_reply_is_an_error() {
    let dir = TempDir::new();
    let _rx = fake_node(&dir.socket(), 1, |_, stream| {
        let _ = stream.write_all(br#"{"ok":true,"role":"pe"#);
    });
    let out = run(gossipctl(&dir.socket(), &["info"]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("not JSON"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
