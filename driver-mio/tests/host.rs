//! The driver on real loopback sockets, against hand-written clients and servers: replies in
//! request order on a pipelined connection (a deferred reply included), `ERROR` for bad
//! lines, close after an over-long line, and a reference-style remote that closes after
//! every reply.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gossip_core::{Event, Message, Millis};
use gossip_driver_mio::{Limits, Observer, Role};
use serde_json::Value;

mod support;
use support::{line, run_node};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Observer for Recorder {
    fn on_event(&mut self, _: Role, _: SocketAddr, _: u64, _: Millis, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}

impl Recorder {
    fn any(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.0.lock().map(|v| v.iter().any(f)).unwrap_or(false)
    }
}

fn read_json(reader: &mut BufReader<TcpStream>) -> Value {
    let mut s = String::new();
    reader.read_line(&mut s).expect("read a reply line");
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("reply {s:?}: {e}"))
}

fn ping() -> Message {
    Message::Ping(gossip_core::msg::Ping {
        sender: "127.0.0.1:9".parse().expect("addr"),
        suspected_by: None,
    })
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bad_lines_get_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let limits = Limits {
        max_line: 2_000,
        ..Limits::default()
    };
    let node = run_node(Role::Seed, listener, None, limits, Recorder::default());

    let stream = TcpStream::connect(node.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    // Four requests in one write: the driver must answer each, in order.
    let mut burst = line(&ping());
    burst.extend(line(&Message::StatusReq));
    burst.extend(b"{\"type\": \"PING\", \"payload\": [}\n");
    burst.extend(line(&ping()));
    writer.write_all(&burst).expect("write");
    assert_eq!(read_json(&mut reader)["type"], "PONG");
    assert_eq!(read_json(&mut reader)["type"], "STATUS_RESP");
    assert_eq!(read_json(&mut reader)["type"], "ERROR");
    assert_eq!(read_json(&mut reader)["type"], "PONG");

    // Another client is served while this one stays open.
    let mut other = TcpStream::connect(node.addr).expect("connect");
    other.write_all(&line(&ping())).expect("write");
    let mut other = BufReader::new(other);
    assert_eq!(read_json(&mut other)["type"], "PONG");

    // A line over the limit: ERROR, then the connection is closed (framing is lost).
    let mut long = vec![b'x'; 2_500];
    long.push(b'\n');
    writer.write_all(&long).expect("write");
    let err = read_json(&mut reader);
    assert_eq!(err["type"], "ERROR", "{err}");
    let mut rest = String::new();
    assert_eq!(reader.read_line(&mut rest).expect("eof"), 0, "got {rest:?}");
}

#[test]
fn a_deferred_reply_holds_back_later_replies_on_the_same_connection() {
    // A seed whose two fellow seeds do not exist: its registration round can only fail, and
    // only after its vote requests fail, so the REGISTER_COMMIT reply is deferred while the
    // PING behind it is answered at once.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let me = listener.local_addr().expect("addr");
    let ghosts: Vec<SocketAddr> = (0..2)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        })
        .collect();
    let seeds = vec![me, ghosts[0], ghosts[1]];
    let node = run_node(
        Role::Seed,
        listener,
        Some(seeds),
        Limits::default(),
        Recorder::default(),
    );

    let stream = TcpStream::connect(node.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let register = Message::RegisterReq(Box::new(gossip_core::msg::RegisterReq {
        peer: "127.0.0.1:6001".parse().expect("addr"),
        incarnation: None,
    }));
    let mut burst = line(&register);
    burst.extend(line(&ping()));
    writer.write_all(&burst).expect("write");
    let first = read_json(&mut reader);
    assert_eq!(first["type"], "REGISTER_COMMIT", "{first}");
    assert_eq!(first["payload"]["success"], false, "{first}");
    assert_eq!(read_json(&mut reader)["type"], "PONG");
}

/// A seed in the reference implementation's style: one connection per request, one reply,
/// then close. Answers registration and Peer List requests; anything else gets `ERROR`.
fn reference_seed(listener: TcpListener, served: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).expect("nonblocking");
    let me = listener.local_addr().expect("addr");
    while !stop.load(Ordering::SeqCst) {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut req = String::new();
        if reader.read_line(&mut req).unwrap_or(0) == 0 {
            continue;
        }
        let v: Value = serde_json::from_str(&req).unwrap_or(Value::Null);
        let reply = match v["type"].as_str() {
            Some("REGISTER_REQ") => r#"{"type": "REGISTER_COMMIT", "payload": {"proposal_id": "p1", "success": true, "yes_votes": 1, "quorum": 1}, "ts": 1.0}"#.to_string(),
            Some("PEER_LIST_REQ") => format!(
                r#"{{"type": "PEER_LIST_RESP", "payload": {{"peers": [], "seed": "{me}"}}, "ts": 1.0}}"#
            ),
            _ => r#"{"type": "ERROR", "payload": {"reason": "unknown"}, "ts": 1.0}"#.to_string(),
        };
        let mut w = stream;
        let _ = w.write_all(reply.as_bytes());
        let _ = w.write_all(b"\n");
        served.fetch_add(1, Ordering::SeqCst);
        // Dropping the stream closes it: one request per connection.
    }
}

#[test]
fn a_peer_bootstraps_against_a_seed_that_closes_after_every_reply() {
    let seed_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let seed = seed_listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (served, stop) = (served.clone(), stop.clone());
        std::thread::spawn(move || reference_seed(seed_listener, served, stop))
    };

    let recorder = Recorder::default();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = run_node(
        Role::Peer,
        listener,
        Some(vec![seed]),
        Limits::default(),
        recorder.clone(),
    );
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && !recorder.any(|e| matches!(e, Event::BootstrapComplete { .. })) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(recorder.any(|e| matches!(e, Event::RegistrationQuorum { .. })));
    assert!(
        recorder.any(|e| matches!(e, Event::BootstrapComplete { .. })),
        "no bootstrap against a one-shot seed"
    );
    assert!(served.load(Ordering::SeqCst) >= 2);
    drop(peer);
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
}
