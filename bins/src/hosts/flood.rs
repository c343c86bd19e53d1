//! A connection flood from one host, for the per-IP limit tests: idle connections held open
//! and reopened as fast as the target closes them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
/// What a flood achieved against one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// The node flooded.
    pub target: Option<SocketAddr>,
    /// Connections attempted.
    pub attempted: u64,
    /// Connections the node still held open after a settling pause (the rest it closed at
    /// once, or refused).
    pub held: u64,
}

impl FloodReport {
    /// One line: `flood <target> attempted=<n> held=<n>`.
    pub fn line(&self) -> String {
        format!(
            "flood {} attempted={} held={}",
            self.target
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
            self.attempted,
            self.held
        )
    }

    /// Parses [`FloodReport::line`].
    pub fn parse(line: &str) -> Option<FloodReport> {
        let mut parts = line.split_whitespace();
        if parts.next()? != "flood" {
            return None;
        }
        let target = parts.next()?.parse().ok();
        let mut r = FloodReport {
            target,
            ..FloodReport::default()
        };
        for p in parts {
            let (k, v) = p.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "attempted" => r.attempted = v,
                "held" => r.held = v,
                _ => {}
            }
        }
        Some(r)
    }
}

/// True while the node has not closed `s` (nothing to read and no EOF).
fn still_open(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let open = match (&*s).read(&mut buf) {
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        Ok(n) => n > 0,
    };
    let _ = s.set_nonblocking(false);
    open
}

/// A connection flood from this host: opens `connections` idle connections to each target
/// and keeps them open, reports (one [`FloodReport::line`] per target on `out`) how many each
/// target held after a pause, then for `duration` keeps reopening every one the target closed
/// (each costs the target an accept), and reports again at the end.
pub fn flood(
    targets: &[SocketAddr],
    connections: usize,
    duration: Duration,
    out: &mut dyn Write,
) -> Result<(), String> {
    let connect = |t: &SocketAddr| TcpStream::connect_timeout(t, Duration::from_millis(500)).ok();
    let mut held: Vec<Vec<Option<TcpStream>>> = Vec::new();
    let mut reports = Vec::new();
    for t in targets {
        let conns: Vec<Option<TcpStream>> = (0..connections).map(|_| connect(t)).collect();
        held.push(conns);
        reports.push(FloodReport {
            target: Some(*t),
            attempted: connections as u64,
            held: 0,
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = |held: &mut Vec<Vec<Option<TcpStream>>>,
                  reports: &mut Vec<FloodReport>,
                  out: &mut dyn Write|
     -> Result<(), String> {
        for (conns, r) in held.iter_mut().zip(reports.iter_mut()) {
            for c in conns.iter_mut() {
                if c.as_ref().is_some_and(|s| !still_open(s)) {
                    *c = None;
                }
            }
            r.held = conns.iter().filter(|c| c.is_some()).count() as u64;
            writeln!(out, "{}", r.line()).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())
    };
    report(&mut held, &mut reports, out)?;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        for (conns, (t, r)) in held.iter_mut().zip(targets.iter().zip(reports.iter_mut())) {
            for c in conns.iter_mut() {
                if c.as_ref().is_some_and(|s| !still_open(s)) {
                    *c = None;
                }
                if c.is_none() {
                    *c = connect(t);
                    r.attempted += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    report(&mut held, &mut reports, out)
}
