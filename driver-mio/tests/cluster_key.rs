//! The cluster key on real loopback sockets: two keyed hosts talk; a client without the key
//! (plain JSON), a client with another key and a verbatim replay of a sealed line each get a
//! sealed `ERROR` and change nothing; an unkeyed node cannot register with a keyed seed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gossip_core::msg::{Endpoint, Ping, RegisterReq, RoleStatus};
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache, Stamp};
use gossip_core::{wire, Event, Message, Millis};
use gossip_driver_mio::{nonce_seed, unix_now_ms, Limits, Observer, Role};

mod support;
use support::{line, run_keyed_node};

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
    fn wait_for(&self, limit: Duration, f: impl Fn(&Event) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.0.lock().map(|v| v.iter().any(&f)).unwrap_or(false) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn keyring(byte: u8) -> Keyring {
    Keyring::from_keys(&[[byte; 32]]).expect("key")
}

static NONCES: AtomicU64 = AtomicU64::new(0);

/// `msg` sealed as a request under `ring`'s sending key, and its nonce.
fn sealed(ring: &Keyring, msg: &Message) -> (Vec<u8>, u64) {
    let nonce = nonce_seed() ^ NONCES.fetch_add(1, Ordering::SeqCst);
    let stamp = Stamp {
        ts_ms: unix_now_ms(),
        nonce,
        bind: None,
    };
    let mut out = Vec::new();
    auth::seal(ring, stamp, &line(msg), &mut out);
    (out, nonce)
}

/// Sends `bytes` on a fresh connection and returns the reply line (without its newline).
fn exchange(to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(bytes).expect("write");
    let mut reply = Vec::new();
    BufReader::new(s)
        .read_until(b'\n', &mut reply)
        .expect("reply");
    assert_eq!(reply.pop(), Some(b'\n'), "no reply line");
    reply
}

/// Opens a reply under `ring` (bound to `bind`, or unbound) and decodes it.
fn open_reply(ring: &Keyring, reply: &[u8], bind: Option<u64>) -> Message {
    let expect = match bind {
        Some(n) => Expect::Reply(n),
        None => Expect::Request,
    };
    let mut cache = ReplayCache::default();
    let opened = auth::open(ring, reply, unix_now_ms(), expect, &mut cache)
        .unwrap_or_else(|e| panic!("reply {:?}: {e:?}", String::from_utf8_lossy(reply)));
    wire::decode(opened.json).expect("reply decodes")
}

fn error_reason(msg: &Message) -> String {
    match msg {
        Message::Error { reason } => reason.clone(),
        other => panic!("expected ERROR, got {other:?}"),
    }
}

/// The seed's Peer List, asked with a sealed `STATUS_REQ`.
fn peers_of(seed: SocketAddr, ring: &Keyring) -> Vec<Endpoint> {
    let (req, nonce) = sealed(ring, &Message::StatusReq);
    match open_reply(ring, &exchange(seed, &req), Some(nonce)) {
        Message::StatusResp(s) => match s.role {
            RoleStatus::Seed(seed) => seed.entries.iter().map(|e| e.peer).collect(),
            RoleStatus::Peer(_) => panic!("not a seed"),
        },
        other => panic!("expected STATUS_RESP, got {other:?}"),
    }
}

fn register(port: u16) -> Message {
    Message::RegisterReq(Box::new(RegisterReq {
        peer: SocketAddr::from(([127, 0, 0, 1], port)),
        incarnation: None,
    }))
}

#[test]
fn keyed_hosts_talk_and_unkeyed_wrong_key_and_replayed_frames_get_error() {
    let ring = keyring(0x5a);
    let seed_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let seed = seed_listener.local_addr().expect("addr");
    let _seed = run_keyed_node(
        Role::Seed,
        seed_listener,
        None,
        Limits::default(),
        Recorder::default(),
        Some(ring.clone()),
    );
    let peer_events = Recorder::default();
    let peer_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = peer_listener.local_addr().expect("addr");
    let _peer = run_keyed_node(
        Role::Peer,
        peer_listener,
        Some(vec![seed]),
        Limits::default(),
        peer_events.clone(),
        Some(ring.clone()),
    );
    assert!(
        peer_events.wait_for(Duration::from_secs(5), |e| matches!(
            e,
            Event::BootstrapComplete { .. }
        )),
        "the keyed peer did not bootstrap with the keyed seed"
    );
    assert_eq!(peers_of(seed, &ring), vec![peer]);

    // A client without the key: plain JSON gets ERROR (sealed, unbound) and changes nothing.
    let reply = exchange(seed, &line(&register(6001)));
    assert_eq!(reply.first(), Some(&b'!'), "the ERROR is sealed");
    let err = open_reply(&ring, &reply, None);
    assert_eq!(error_reason(&err), "frame without a cluster-key MAC");
    // A client with another key.
    let (wrong, _) = sealed(&keyring(0x77), &register(6002));
    let err = open_reply(&ring, &exchange(seed, &wrong), None);
    assert_eq!(error_reason(&err), "unknown key id");
    // A sealed line with one byte of its JSON changed.
    let (mut forged, _) = sealed(&ring, &register(6003));
    let at = forged.len() - 10;
    forged[at] ^= 0x01;
    let err = open_reply(&ring, &exchange(seed, &forged), None);
    assert_eq!(error_reason(&err), "bad MAC");
    // A stale frame.
    let mut stale = Vec::new();
    let stamp = Stamp {
        ts_ms: unix_now_ms() - 60_000,
        nonce: 1,
        bind: None,
    };
    auth::seal(&ring, stamp, &line(&register(6004)), &mut stale);
    let err = open_reply(&ring, &exchange(seed, &stale), Some(1));
    assert_eq!(error_reason(&err), "timestamp outside the 30 s window");
    assert_eq!(peers_of(seed, &ring), vec![peer], "nothing registered");

    // A sealed request is answered, bound to its nonce; replayed verbatim it gets ERROR.
    let ping = Message::Ping(Ping {
        sender: "127.0.0.1:9".parse().expect("addr"),
        suspected_by: None,
    });
    let (req, nonce) = sealed(&ring, &ping);
    let pong = open_reply(&ring, &exchange(seed, &req), Some(nonce));
    assert!(matches!(pong, Message::Pong(_)), "{pong:?}");
    let err = open_reply(&ring, &exchange(seed, &req), Some(nonce));
    assert_eq!(error_reason(&err), "replayed nonce");
    // The same for a registration (of the keyed peer, which answers the seed's probe): the
    // first is answered, the replay refused.
    let (req, nonce) = sealed(&ring, &register(peer.port()));
    let ok = open_reply(&ring, &exchange(seed, &req), Some(nonce));
    assert!(
        matches!(&ok, Message::RegisterResult(r) if r.success),
        "{ok:?}"
    );
    let err = open_reply(&ring, &exchange(seed, &req), Some(nonce));
    assert_eq!(error_reason(&err), "replayed nonce");
    assert_eq!(peers_of(seed, &ring), vec![peer]);

    // A node without the key cannot register with the keyed seed.
    let stranger_events = Recorder::default();
    let stranger_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let stranger = stranger_listener.local_addr().expect("addr");
    let _stranger = run_keyed_node(
        Role::Peer,
        stranger_listener,
        Some(vec![seed]),
        Limits::default(),
        stranger_events.clone(),
        None,
    );
    assert!(
        stranger_events.wait_for(Duration::from_secs(5), |e| matches!(
            e,
            Event::RegistrationFailed { .. }
        )),
        "an unkeyed peer's registration must fail"
    );
    assert!(!peers_of(seed, &ring).contains(&stranger));
}
