//! End to end on loopback: a hand-written client in the reference implementation's style
//! (connect, one JSON line, one reply line, close) registers, reads the Peer List and
//! delivers a gossip, which the network then spreads.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{bootstrapped, parse_line, wait_for, Net};
use serde_json::Value;

/// One request on its own connection, as the reference does it.
fn one_shot(to: SocketAddr, line: &str) -> Value {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(line.as_bytes()).expect("write");
    s.write_all(b"\n").expect("write");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("read reply");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
}

/// Serves every connection on a thread of its own (as the reference's threaded server does:
/// every seed probes a registrant, at once) until the test ends, answering each line with
/// `ERROR`.
fn answer_every_line_with_error(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            for line in BufReader::new(stream).lines() {
                if line.is_err() {
                    break;
                }
                let error = r#"{"type": "ERROR", "payload": {"reason": "unknown type"}, "ts": 0}"#;
                if writer.write_all(format!("{error}\n").as_bytes()).is_err() {
                    break;
                }
            }
        });
    }
}

#[test]
fn one_shot_client_registers_reads_the_peer_list_and_delivers_gossip() {
    let mut net = Net::start("oneshot", 3, &["--max-gossip", "0"]);
    let a = net.add_peer();
    let b = net.add_peer();
    assert!(wait_for(Duration::from_secs(10), || bootstrapped(a)
        && bootstrapped(b)));

    // The client's own listener answers every line with ERROR, as the reference answers a
    // PING it does not know: the seeds probe a registrant before admitting it.
    let me = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = me.local_addr().expect("addr").port();
    std::thread::spawn(move || answer_every_line_with_error(me));
    let seed = net.seeds[0];

    let reply = one_shot(
        seed,
        &format!(
            r#"{{"type": "REGISTER_REQ", "payload": {{"peer_ip": "127.0.0.1", "peer_port": {port}}}, "ts": 1767225600.0}}"#
        ),
    );
    assert_eq!(reply["type"], "REGISTER_COMMIT", "{reply}");
    assert_eq!(reply["payload"]["success"], true, "{reply}");

    let reply = one_shot(
        seed,
        r#"{"type": "PEER_LIST_REQ", "payload": {"requester": "127.0.0.1"}, "ts": 1767225600.0}"#,
    );
    assert_eq!(reply["type"], "PEER_LIST_RESP", "{reply}");
    let listed: Vec<String> = reply["payload"]["peers"]
        .as_array()
        .expect("peers list")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for p in [format!("127.0.0.1:{port}"), a.to_string(), b.to_string()] {
        assert!(listed.contains(&p), "{p} missing from {listed:?}");
    }

    let text = format!("1767225600:127.0.0.1:{port}");
    let gossip = format!(
        r#"{{"type": "GOSSIP_MSG", "payload": {{"message": "{text}", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:{port}"}}, "ts": 1767225600.0}}"#
    );
    let reply = one_shot(a, &gossip);
    assert_eq!(reply["type"], "GOSSIP_MSG", "{reply}");
    assert_eq!(reply["payload"]["accepted"], true, "{reply}");
    assert_eq!(reply["payload"]["duplicate"], false, "{reply}");
    let again = one_shot(a, &gossip);
    assert_eq!(again["payload"]["duplicate"], true, "{again}");

    // A malformed line gets ERROR, and the node keeps serving.
    let err = one_shot(a, "{not json");
    assert_eq!(err["type"], "ERROR", "{err}");

    // a logged it first-time from us, and forwarded it: b got it too.
    let got = |node: SocketAddr| {
        net.log().iter().filter_map(|l| parse_line(l)).any(|l| {
            l.node == node
                && l.text
                    .starts_with(&format!("First-time gossip received: {text} from"))
        })
    };
    assert!(
        wait_for(Duration::from_secs(5), || got(a)),
        "{a} did not log the gossip"
    );
    assert!(
        wait_for(Duration::from_secs(5), || got(b)),
        "{b} did not get it forwarded"
    );
}
