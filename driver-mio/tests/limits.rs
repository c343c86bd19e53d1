//! The driver's defences against one hostile remote, on real loopback sockets: the per-IP
//! connection cap, the deadline of a trickled line, and the per-connection rate limits of
//! the requests that cost a node real work.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use gossip_core::msg::{Message, RegisterReq};
use gossip_core::ratelimit::RateLimits;
use gossip_core::{wire, Event, Millis};
use gossip_driver_mio::{Limits, Observer, Role};

mod support;
use support::{line, run_node, Running};

struct Quiet;

impl Observer for Quiet {
    fn on_event(&mut self, _: Role, _: SocketAddr, _: u64, _: Millis, _: &Event) {}
}

fn run_seed(limits: Limits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    run_node(Role::Seed, listener, None, limits, Quiet)
}

fn register(port: u16) -> Vec<u8> {
    line(&Message::RegisterReq(Box::new(RegisterReq {
        peer: SocketAddr::from(([127, 0, 0, 1], port)),
        incarnation: None,
    })))
}

/// One reply's `type` and the full line, or `None` if the connection closed.
fn read_reply(r: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut s = String::new();
    match r.read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let msg = wire::decode(s.trim_end().as_bytes()).ok()?;
            Some((msg.type_name().to_string(), s))
        }
    }
}

fn served(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(&line(&Message::StatusReq)).is_err() {
        return false;
    }
    matches!(read_reply(&mut BufReader::new(s)), Some((t, _)) if t == "STATUS_RESP")
}

/// True if the server closed `s` within `limit` (reads return end of stream or an error).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut b = [0u8; 64];
    while Instant::now() < end {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn one_address_gets_at_most_its_share_of_connections() {
    let node = run_seed(Limits {
        max_inbound_per_ip: 4,
        ..Limits::default()
    });
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(node.addr).expect("connect"))
        .collect();
    // Let the host accept them, then the fifth from the same address is closed at once.
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = TcpStream::connect(node.addr).expect("connect");
    assert!(
        closed_within(&mut fifth, Duration::from_secs(2)),
        "a fifth connection from one address was kept"
    );
    // One of the four goes: a new one is served again.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    assert!(served(node.addr), "a freed slot was not given back");
}

#[test]
fn a_trickled_line_is_cut_off_at_its_deadline() {
    let node = run_seed(Limits {
        line_timeout_ms: 300,
        ..Limits::default()
    });
    let mut s = TcpStream::connect(node.addr).expect("connect");
    let start = Instant::now();
    // One byte every 100 ms: never idle, never a whole line.
    let mut cut = false;
    for b in b"{\"type\":\"STATUS_REQ\",\"payload\":{}"
        .iter()
        .cycle()
        .take(60)
    {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut s, Duration::from_millis(100)) {
            cut = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(cut, "a trickling client was kept for {took:?}");
    // The deadline plus one sweep period, with slack for a loaded machine.
    assert!(
        took < Duration::from_millis(300 + 1_000 + 1_500),
        "cut after {took:?}"
    );
    assert!(served(node.addr));
}

#[test]
fn registrations_over_the_rate_are_refused_on_that_connection_only() {
    let node = run_seed(Limits {
        rate: RateLimits {
            register_burst: 3,
            register_per_sec: 0,
            ..RateLimits::default()
        },
        ..Limits::default()
    });
    let s = TcpStream::connect(node.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut burst = Vec::new();
    for port in 7001..7006 {
        burst.extend(register(port));
    }
    w.write_all(&burst).expect("write");
    let replies: Vec<(String, String)> = (0..5).filter_map(|_| read_reply(&mut r)).collect();
    let kinds: Vec<&str> = replies.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "REGISTER_COMMIT",
            "REGISTER_COMMIT",
            "REGISTER_COMMIT",
            "ERROR",
            "ERROR"
        ],
        "{replies:?}"
    );
    assert!(replies[3].1.contains("rate limited"), "{:?}", replies[3]);
    // Other requests on the same connection still pass; a new connection has its own budget.
    w.write_all(&line(&Message::StatusReq)).expect("write");
    assert_eq!(
        read_reply(&mut r).map(|(t, _)| t).as_deref(),
        Some("STATUS_RESP")
    );
    let mut other = TcpStream::connect(node.addr).expect("connect");
    other.write_all(&register(7009)).expect("write");
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let reply = read_reply(&mut BufReader::new(other));
    assert_eq!(reply.map(|(t, _)| t).as_deref(), Some("REGISTER_COMMIT"));
}
