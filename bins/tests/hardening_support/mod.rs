//! Shared by the hardening suites (`hardening_*.rs`): the end-to-end suites' network of real
//! processes (`common`), plus raw-socket clients, the seeds' live peers and a process's
//! resident memory.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use gossip_core::msg::{Endpoint, Message, Status};
use gossip_core::wire;

// One network of processes for every suite: one port picker (below the ephemeral range),
// one set of quick timings, one poll loop, one process guard.
#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports)] // each suite uses its own part, as with `dead_code` above
pub use common::{free_port_on, peer_list, status, wait_for, Net, Proc, FAST};

/// What came back on a connection.
#[derive(Debug)]
pub enum Answer {
    /// One reply line, decoded.
    Reply(Message),
    /// A reply line that did not decode.
    Garbage(String),
    /// The node closed (or reset) the connection without a reply.
    Closed,
    /// Nothing by the deadline.
    Silent,
}

impl Answer {
    pub fn is_error_or_close(&self) -> bool {
        matches!(self, Answer::Closed | Answer::Reply(Message::Error { .. }))
    }
}

/// Reads one line (or the close) from `s` within `limit`.
pub fn read_answer(s: &mut TcpStream, limit: Duration) -> Answer {
    let end = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::Silent;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => {
                return if buf.is_empty() {
                    Answer::Closed
                } else {
                    decode_answer(&buf)
                }
            }
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    return decode_answer(buf.get(..i).unwrap_or_default());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Answer::Silent
            }
            Err(_) => return Answer::Closed,
        }
    }
}

fn decode_answer(line: &[u8]) -> Answer {
    match wire::decode(line) {
        Ok(m) => Answer::Reply(m),
        Err(_) => Answer::Garbage(String::from_utf8_lossy(line).into_owned()),
    }
}

/// Sends `bytes` on a fresh connection (then, if `eof`, closes the write side) and reads the
/// answer within `limit`.
pub fn exchange(to: SocketAddr, bytes: &[u8], eof: bool, limit: Duration) -> Answer {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
        return Answer::Closed;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    if s.write_all(bytes).is_err() {
        return read_answer(&mut s, Duration::from_millis(200));
    }
    if eof {
        let _ = s.shutdown(Shutdown::Write);
    }
    read_answer(&mut s, limit)
}

/// One request, one reply, within `limit`.
pub fn ask(to: SocketAddr, msg: &Message, limit: Duration) -> Option<Message> {
    let mut line = Vec::new();
    wire::encode(msg, 0.0, &mut line);
    match exchange(to, &line, false, limit) {
        Answer::Reply(m) => Some(m),
        _ => None,
    }
}

/// The live members of a seed's Peer List.
pub fn alive(seed: SocketAddr) -> Option<Vec<Endpoint>> {
    Some(
        peer_list(seed)?
            .into_iter()
            .filter(|e| e.2 == Status::Alive)
            .map(|e| e.0)
            .collect(),
    )
}

/// Resident memory of process `pid` in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
