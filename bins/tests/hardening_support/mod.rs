//! Shared by the hardening suites (`hardening_*.rs`): real `seed` and `peer` processes on
//! loopback with free ports, killed by PID when the test ends; raw-socket clients; status
//! queries; a process's resident memory.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gossip_core::msg::{Endpoint, Message, Status};
use gossip_core::wire;

// The stateless helpers are the end-to-end suites' own: one port picker (below the
// ephemeral range), one set of quick timings, one poll loop.
#[path = "../common/mod.rs"]
mod common;
pub use common::{cluster_dir, free_port_on, peer_list, status, wait_for, FAST};

/// The programs under test, as cargo built them for this package (`GOSSIP_BIN_DIR` overrides,
/// to run the suites against another build).
pub fn binaries() -> (PathBuf, PathBuf) {
    if let Some(dir) = std::env::var_os("GOSSIP_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return (dir.join("seed"), dir.join("peer"));
    }
    (
        env!("CARGO_BIN_EXE_seed").into(),
        env!("CARGO_BIN_EXE_peer").into(),
    )
}

/// One node process.
pub struct Proc {
    /// Its endpoint.
    pub addr: SocketAddr,
    /// A seed (else a peer).
    pub seed: bool,
    /// The running child, `None` once killed.
    pub child: Option<Child>,
    /// Its stderr, captured to a file (scanned for panics).
    pub stderr: PathBuf,
}

impl Proc {
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the child has not exited.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// Seeds and peers of one test, in a temporary directory; kills them all when dropped.
pub struct Net {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub output: PathBuf,
    pub seeds: Vec<SocketAddr>,
    pub procs: Vec<Proc>,
    pub flags: Vec<String>,
    seed_bin: PathBuf,
    peer_bin: PathBuf,
    spawned: usize,
}

impl Net {
    /// Writes a config of `n` seeds on free ports and starts them (with `flags` for every
    /// node).
    pub fn start(name: &str, n: usize, flags: &[&str]) -> Net {
        Net::start_with(name, n, FAST, flags)
    }

    /// Like [`Net::start`], with `timing` flags instead of [`FAST`] (`&[]`: the programs'
    /// defaults, slow enough that a loaded machine never makes a live node look dead).
    pub fn start_with(name: &str, n: usize, timing: &[&str], flags: &[&str]) -> Net {
        let (seed_bin, peer_bin) = binaries();
        let (dir, config, output, seeds) = cluster_dir(name, n);
        let mut net = Net {
            dir,
            config,
            output,
            seeds: seeds.clone(),
            procs: Vec::new(),
            flags: timing.iter().chain(flags).map(|s| s.to_string()).collect(),
            seed_bin,
            peer_bin,
            spawned: 0,
        };
        for s in seeds {
            net.spawn(s, true);
        }
        for s in net.seeds.clone() {
            assert!(
                wait_for(Duration::from_secs(10), || status(s).is_some()),
                "seed {s} did not come up"
            );
        }
        net
    }

    /// Starts the node at `addr` (again).
    pub fn spawn(&mut self, addr: SocketAddr, seed: bool) {
        self.spawned += 1;
        let stderr = self
            .dir
            .join(format!("stderr-{}-{}.txt", addr, self.spawned));
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let bin = if seed { &self.seed_bin } else { &self.peer_bin };
        let child = Command::new(bin)
            .args(gossip_bins::node_args(addr, &self.config, &self.output))
            .arg("--quiet")
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn node");
        self.procs.push(Proc {
            addr,
            seed,
            child: Some(child),
            stderr,
        });
    }

    /// Starts a peer on a free port of `ip` and returns its endpoint.
    pub fn add_peer_on(&mut self, ip: [u8; 4]) -> SocketAddr {
        let addr = SocketAddr::from((ip, free_port_on(ip)));
        self.spawn(addr, false);
        addr
    }

    /// The running process of `addr`.
    pub fn proc(&mut self, addr: SocketAddr) -> Option<&mut Proc> {
        self.procs
            .iter_mut()
            .rev()
            .find(|p| p.addr == addr && p.child.is_some())
    }

    /// `kill -9` of the node at `addr` (by PID); waits for it to be gone.
    pub fn kill(&mut self, addr: SocketAddr) {
        if let Some(p) = self.proc(addr) {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) to the node at `addr` by PID.
    pub fn signal(&mut self, addr: SocketAddr, signal: &str) {
        if let Some(pid) = self.proc(addr).and_then(|p| p.pid()) {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// Every stderr file that mentions a panic, with the line.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.stderr).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("panicked")) {
                found.push(format!("{}: {line}", p.addr));
            }
        }
        let log = std::fs::read_to_string(&self.output).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("panicked")) {
            found.push(format!("output file: {line}"));
        }
        found
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                // A stopped process dies of SIGKILL too; CONT anyway so nothing lingers.
                let _ = Command::new("kill")
                    .args(["-CONT", &c.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

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
