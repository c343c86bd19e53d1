//! `bench_apps`: application messages on real processes over loopback, printed as numbers.
//! Build first: `cargo build --release -p gossip-bins`, then run `target/release/bench_apps`
//! (it starts the `seed` and `peer` programs next to itself, or those in `--bin-dir`). Not a
//! test: it measures and prints. Scenarios (`--only`, default all), 3 seeds each:
//!
//! * `burst`: 3 peers publish `--messages` each at once; a watcher on every peer; every id
//!   exactly once everywhere, publish → last watcher latency, wall time;
//! * `rate`: 5 publishers at a stepped, paced cluster-wide rate, per gossip mode; delivery
//!   ratio and last-peer latency from the `--events` files, peer CPU per wall second;
//! * `restart`: a peer killed at 1/3 of a paced run and restarted at 1/2: what it gets after
//!   rejoining, and of what it missed, by repair;
//! * `slow-watcher`: a watcher that reads nothing while 20,000 messages go by: the peer's
//!   memory, another watcher's completeness, the `dropped` count;
//! * `scrape`: `/metrics` of a busy peer: size, round trip, CPU per scrape;
//! * `quiet`: CPU and PSS per peer of an idle cluster without and with `--control`,
//!   `--events`, `--metrics`; `--bin-dir OLD --bin-dir NEW` alternates two builds;
//! * `leave`: `--leaves` SIGTERMs, one after another, to the peers of a `--leave-peers`
//!   cluster (each started again, one incarnation up, before the next): SIGTERM → `LEFT` at
//!   every seed (the seeds' own log lines) and → exit, p50 and max; false failures (`Dead
//!   Node` lines, dead-node rounds, suspicions); protocol lines per leave from every node's
//!   `/metrics` (the leave's own types exactly; all types less the quiet rate).
//!
//! Every clock comparison is on one machine: the bench's `Instant` for watchers and
//! publishers it runs itself, the nodes' `at_ms` for events files.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use gossip_bins::control_client::{publish_request, simple_request, watch_request, Control};
use gossip_bins::log_line::parse_line;
use serde_json::Value;

const SCENARIOS: [&str; 7] = [
    "burst",
    "rate",
    "restart",
    "slow-watcher",
    "scrape",
    "quiet",
    "leave",
];
/// Publishers of the paced scenarios (`rate`, `restart`).
const PUBLISHERS: usize = 5;

/// Measures application messages on seed and peer processes over loopback.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Scenarios, comma-separated: burst, rate, restart, slow-watcher, scrape, quiet, all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    only: Vec<String>,
    /// Runs of burst, restart, scrape and quiet (medians printed); rate and slow-watcher run once.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Payload bytes of every message (slow-watcher: always 1,024).
    #[arg(long, default_value_t = 1024)]
    bytes: usize,
    /// burst: peer processes.
    #[arg(long, default_value_t = 20)]
    peers: usize,
    /// burst: messages each of the 3 publishers publishes at once.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// rate: peer processes.
    #[arg(long, default_value_t = 50)]
    rate_peers: usize,
    /// rate: cluster-wide publish rates stepped through, messages per second.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,1000,1500,2000,3000"
    )]
    rates: Vec<u32>,
    /// rate: seconds of publishing per step.
    #[arg(long, default_value_t = 30)]
    rate_secs: u64,
    /// rate: gossip modes, one cluster each.
    #[arg(long, value_delimiter = ',', default_value = "flood,lazy")]
    modes: Vec<String>,
    /// restart: cluster-wide publish rate.
    #[arg(long, default_value_t = 500)]
    restart_rate: u32,
    /// restart: peer processes.
    #[arg(long, default_value_t = 20)]
    restart_peers: usize,
    /// restart: seconds of publishing (kill at 1/3, restart at 1/2).
    #[arg(long, default_value_t = 20)]
    restart_secs: u64,
    /// slow-watcher: messages published while the slow watcher reads nothing.
    #[arg(long, default_value_t = 20_000)]
    slow_messages: u64,
    /// slow-watcher: their rate, messages per second.
    #[arg(long, default_value_t = 2000)]
    slow_rate: u32,
    /// scrape: scrapes while the peer is busy.
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// scrape: peer processes.
    #[arg(long, default_value_t = 10)]
    scrape_peers: usize,
    /// scrape: the busy peer's publish rate.
    #[arg(long, default_value_t = 1000)]
    scrape_rate: u32,
    /// quiet: peer processes.
    #[arg(long, default_value_t = 100)]
    quiet_peers: usize,
    /// quiet: seconds of the measured quiet window.
    #[arg(long, default_value_t = 20)]
    quiet_secs: u64,
    /// leave: peer processes.
    #[arg(long, default_value_t = 20)]
    leave_peers: usize,
    /// leave: leaves, one after another (peer i % n each time).
    #[arg(long, default_value_t = 50)]
    leaves: usize,
    /// Directory of the `seed` and `peer` programs (default: this program's). `quiet` takes
    /// two (old, then new) and alternates them; the other scenarios use the last.
    #[arg(long)]
    bin_dir: Vec<PathBuf>,
    /// Give up on a bootstrap after this many seconds.
    #[arg(long, default_value_t = 120)]
    bootstrap_limit_secs: u64,
    /// Keep each cluster's directory (config, logs, events) instead of removing it.
    #[arg(long)]
    keep: bool,
}

// ---------------------------------------------------------------- small helpers

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

fn free_addr(ip: IpAddr) -> Result<SocketAddr, String> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on {ip}: {e}"))
}

/// Peer `i`'s address: 127.1.x.y, one per peer (seeds are on 127.0.0.1).
fn peer_ip(i: usize) -> IpAddr {
    let j = i + 1;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (j >> 16) as u8,
        (j >> 8) as u8,
        j as u8,
    ))
}

/// CPU seconds of a process so far: the nanoseconds on CPU of each of its threads
/// (`/proc/PID/task/*/schedstat`), as an idle peer uses less than the 10 ms ticks of
/// `/proc/PID/stat`, which are used when schedstat is missing.
fn cpu_secs(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let ns = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<Option<u64>>();
    if let Some(ns) = ns.filter(|&ns| ns > 0) {
        return Some(ns as f64 / 1e9);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A `kB` field of a `/proc/PID/` file: `("status", "VmRSS:")`, `("smaps_rollup", "Pss:")`.
fn proc_kb(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile of a sorted slice (NaN when empty).
fn pct(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[(((n - 1) as f64 * p).round() as usize).min(n - 1)],
    }
}

fn median(v: &[f64]) -> f64 {
    let s = sorted(v.to_vec());
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Milliseconds, `never` for a message some receiver never got.
fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "never".into()
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------- programs and clusters

/// The `seed` and `peer` programs of one build.
struct Bins {
    dir: PathBuf,
    seed: PathBuf,
    peer: PathBuf,
    /// Whether this `peer` knows `--control`, `--events` and `--metrics` (older builds do not).
    apps: bool,
}

impl Bins {
    fn at(dir: &Path) -> Result<Bins, String> {
        let (seed, peer) = (dir.join("seed"), dir.join("peer"));
        for b in [&seed, &peer] {
            if !b.exists() {
                return Err(format!(
                    "{} not found: build with `cargo build --release -p gossip-bins`",
                    b.display()
                ));
            }
        }
        let help = Command::new(&peer)
            .arg("--help")
            .output()
            .map_err(|e| format!("{} --help: {e}", peer.display()))?;
        let apps = String::from_utf8_lossy(&help.stdout).contains("--control");
        Ok(Bins {
            dir: dir.to_path_buf(),
            seed,
            peer,
            apps,
        })
    }
}

/// What the peers of a cluster are started with, beyond `--quiet --max-gossip 0`.
#[derive(Clone, Default)]
struct Opts {
    /// `--gossip-mode` (left out when `None`, for builds that may not know it).
    mode: Option<String>,
    /// `--control` on every peer.
    control: bool,
    /// `--events` on every peer, a file each.
    events: bool,
    /// `--metrics` on the first this many peers.
    metrics: usize,
    /// `--metrics` on every seed too.
    seed_metrics: bool,
}

/// One node process and what it was started with, so it can be started again.
struct Node {
    addr: SocketAddr,
    flags: Vec<String>,
    control: Option<PathBuf>,
    events: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    child: Option<Child>,
}

impl Node {
    fn new(addr: SocketAddr, flags: &[&str]) -> Node {
        Node {
            addr,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            control: None,
            events: None,
            metrics: None,
            child: None,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn control(&self) -> Result<&Path, String> {
        self.control.as_deref().ok_or("no control socket".into())
    }
}

/// Seeds and peers of one measurement; every process is killed by PID and the directory
/// removed when dropped, panics included.
struct Cluster {
    dir: PathBuf,
    keep: bool,
    config: PathBuf,
    output: PathBuf,
    stderr: File,
    seed_bin: PathBuf,
    peer_bin: PathBuf,
    seeds: Vec<Node>,
    peers: Vec<Node>,
}

impl Cluster {
    /// Starts 3 seeds, then `n` peers at once, and waits until every peer bootstrapped.
    fn start(cli: &Cli, bins: &Bins, label: &str, n: usize, opts: &Opts) -> Result<Self, String> {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let name = format!("gossip-apps-{}-{k}-{label}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let stderr = File::create(dir.join("stderr.txt")).map_err(|e| e.to_string())?;
        let mut c = Cluster {
            config: dir.join("config.txt"),
            output: dir.join("output.txt"),
            dir,
            keep: cli.keep,
            stderr,
            seed_bin: bins.seed.clone(),
            peer_bin: bins.peer.clone(),
            seeds: Vec::new(),
            peers: Vec::new(),
        };
        let seeds: Vec<SocketAddr> = (0..3)
            .map(|_| free_addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .collect::<Result<_, _>>()?;
        std::fs::write(&c.config, gossip_core::config::seeds_text(&seeds))
            .map_err(|e| e.to_string())?;
        for addr in seeds {
            let mut node = Node::new(addr, &["--quiet"]);
            if opts.seed_metrics {
                node.metrics = Some(free_addr(addr.ip())?);
            }
            node.child = Some(c.spawn(&c.seed_bin, &node)?);
            c.seeds.push(node);
        }
        for s in &c.seeds {
            let end = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect_timeout(&s.addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > end {
                    return Err(format!("seed {} did not come up", s.addr));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        for i in 0..n {
            let mut node = Node::new(free_addr(peer_ip(i))?, &["--quiet", "--max-gossip", "0"]);
            if let Some(mode) = &opts.mode {
                node.flags.extend(["--gossip-mode".into(), mode.clone()]);
            }
            node.control = opts.control.then(|| c.dir.join(format!("p{i}.sock")));
            node.events = opts.events.then(|| c.dir.join(format!("p{i}.events")));
            if i < opts.metrics {
                // Not the port just picked for the node: free again until the node binds it.
                let mut m = free_addr(node.addr.ip())?;
                while m.port() == node.addr.port() {
                    m = free_addr(node.addr.ip())?;
                }
                node.metrics = Some(m);
            }
            node.child = Some(c.spawn(&c.peer_bin, &node)?);
            c.peers.push(node);
        }
        let limit = Duration::from_secs(cli.bootstrap_limit_secs);
        c.wait_bootstrapped(limit)?;
        if opts.control {
            c.wait_joined(limit)?;
        }
        Ok(c)
    }

    /// Waits until every peer has a neighbour (its `info`): the first to bootstrap has none
    /// until another greets it, and is owed nothing published before (`not joined yet`).
    fn wait_joined(&self, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        let joined = |p: &Node| -> Option<bool> {
            let mut c =
                Control::connect(p.control.as_deref()?, Some(Duration::from_secs(5))).ok()?;
            let info = c.request(&simple_request("info")).ok()?;
            Some(!info.fields.get("neighbours")?.as_array()?.is_empty())
        };
        while let Some(p) = self.peers.iter().find(|p| joined(p) != Some(true)) {
            if Instant::now() > end {
                return Err(format!(
                    "{} has no neighbour after {} s",
                    p.addr,
                    limit.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn spawn(&self, bin: &Path, node: &Node) -> Result<Child, String> {
        let mut cmd = Command::new(bin);
        cmd.args(gossip_bins::node_args(
            node.addr,
            &self.config,
            &self.output,
        ))
        .args(&node.flags);
        if let Some(p) = &node.control {
            cmd.arg("--control").arg(p);
        }
        if let Some(p) = &node.events {
            cmd.arg("--events").arg(p);
        }
        if let Some(a) = node.metrics {
            cmd.arg("--metrics").arg(a.to_string());
        }
        let err = self.stderr.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))
    }

    /// Waits for every peer's `Bootstrap complete` line in the shared log (older builds have
    /// no events to ask).
    fn wait_bootstrapped(&self, limit: Duration) -> Result<(), String> {
        let (end, mut offset, mut booted) = (Instant::now() + limit, 0, HashSet::new());
        let mut line = String::new();
        while booted.len() < self.peers.len() {
            if Instant::now() > end {
                let dir = self.dir.display();
                let missing = self.peers.len() - booted.len();
                return Err(format!(
                    "{missing} peers did not bootstrap within {limit:?} (--keep keeps {dir})"
                ));
            }
            thread::sleep(Duration::from_millis(100));
            let Ok(mut f) = File::open(&self.output) else {
                continue;
            };
            if f.seek(SeekFrom::Start(offset)).is_err() {
                continue;
            }
            let mut r = BufReader::with_capacity(1 << 20, f);
            line.clear();
            while let Ok(n @ 1..) = r.read_line(&mut line) {
                if !line.ends_with('\n') {
                    break; // being written: read it again next time
                }
                offset += n as u64;
                let l = parse_line(line.trim_end());
                if let Some(l) = l.filter(|l| l.text.starts_with("Bootstrap complete")) {
                    booted.insert(l.node);
                }
                line.clear();
            }
        }
        Ok(())
    }

    /// Empties the shared log and every events file (the nodes append, so they carry on at
    /// the new end): each `rate` step reads only its own, and the disk does not fill.
    fn truncate_logs(&self) {
        for p in self.events_files().iter().chain([&self.output]) {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(p) {
                let _ = f.set_len(0);
            }
        }
    }

    fn events_files(&self) -> Vec<PathBuf> {
        self.peers.iter().filter_map(|p| p.events.clone()).collect()
    }

    /// SIGKILL, by PID.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.peers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts peer `i` again: same address and flags, a new events file.
    fn restart(&mut self, i: usize, events: PathBuf) -> Result<(), String> {
        self.kill(i);
        self.peers[i].events = Some(events);
        let child = self.spawn(&self.peer_bin, &self.peers[i])?;
        self.peers[i].child = Some(child);
        Ok(())
    }

    fn peer_cpu(&self) -> f64 {
        self.peers.iter().filter_map(|p| cpu_secs(p.pid()?)).sum()
    }

    /// Node panics so far, from the shared stderr: worth a line in any report.
    fn panics(&self) -> usize {
        std::fs::read_to_string(self.dir.join("stderr.txt"))
            .unwrap_or_default()
            .matches("panicked")
            .count()
    }

    fn controls(&self, range: std::ops::Range<usize>) -> Result<Vec<PathBuf>, String> {
        self.peers[range]
            .iter()
            .map(|p| p.control().map(Path::to_path_buf))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A node panic is a finding: said with the results, its stderr kept.
        let panics = self.panics();
        if panics > 0 {
            let dir = self.dir.join("stderr.txt");
            println!("  !! {panics} node panics: see {}", dir.display());
        }
        for n in self.seeds.iter_mut().chain(self.peers.iter_mut()) {
            if let Some(c) = &mut n.child {
                let _ = c.kill();
            }
        }
        for n in self.seeds.iter_mut().chain(self.peers.iter_mut()) {
            if let Some(c) = &mut n.child {
                let _ = c.wait();
            }
        }
        if !self.keep && panics == 0 {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------- events (files and watchers)

/// The event lines the benchmarks use.
enum Ev {
    Published { id: String, at: u64 },
    Delivered { id: String, at: u64, repair: bool },
    Bootstrapped { at: u64 },
    Dropped { count: u64 },
}

fn parse_event(line: &str) -> Option<Ev> {
    // Most lines of a busy file are deliveries; skip the rest before parsing.
    if !["\"gossip\"", "\"bootstrapped\"", "\"dropped\""]
        .iter()
        .any(|k| line.contains(k))
    {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let str_of = |k: &str| v.get(k).and_then(Value::as_str);
    let at = v.get("at_ms").and_then(Value::as_u64).unwrap_or(0);
    let id = || str_of("id").map(str::to_owned);
    match (str_of("type")?, str_of("event").unwrap_or("")) {
        ("dropped", _) => Some(Ev::Dropped {
            count: v.get("count").and_then(Value::as_u64).unwrap_or(0),
        }),
        ("gossip", "published") => Some(Ev::Published { id: id()?, at }),
        ("gossip", "delivered") => Some(Ev::Delivered {
            id: id()?,
            at,
            repair: v.get("by_repair").and_then(Value::as_bool).unwrap_or(false),
        }),
        ("member", "bootstrapped") => Some(Ev::Bootstrapped { at }),
        _ => None,
    }
}

fn read_events(path: &Path, mut f: impl FnMut(Ev)) {
    let Ok(file) = File::open(path) else { return };
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let Ok(line) = line else { break };
        if let Some(ev) = parse_event(&line) {
            f(ev);
        }
    }
}

/// Waits until the files stop growing for `quiet` (at most `limit`): deliveries drained.
fn wait_quiet(files: &[PathBuf], quiet: Duration, limit: Duration) {
    let size = || -> u64 {
        let len = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        files.iter().map(len).sum()
    };
    let (end, mut last, mut since) = (Instant::now() + limit, size(), Instant::now());
    while Instant::now() < end && since.elapsed() < quiet {
        thread::sleep(Duration::from_millis(200));
        let now = size();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// One application message across the events files of a cluster.
#[derive(Default)]
struct Msg {
    published: Option<u64>,
    deliveries: u32,
    last: u64,
    repaired: u32,
}

fn tally(files: &[PathBuf]) -> HashMap<String, Msg> {
    let mut msgs: HashMap<String, Msg> = HashMap::new();
    for f in files {
        read_events(f, |ev| match ev {
            Ev::Published { id, at } => msgs.entry(id).or_default().published = Some(at),
            Ev::Delivered { id, at, repair } => {
                let m = msgs.entry(id).or_default();
                m.deliveries += 1;
                m.last = m.last.max(at);
                m.repaired += u32::from(repair);
            }
            _ => {}
        });
    }
    msgs
}

/// Delivery of the messages published in the files, each owed to `receivers` peers.
struct Delivery {
    ratio: f64,
    extra: u64,
    repaired: u64,
    /// Publish → last receiver, ms, sorted; infinite for a message someone never got.
    last: Vec<f64>,
}

fn delivery(msgs: &HashMap<String, Msg>, receivers: u32) -> Delivery {
    let mut d = Delivery {
        ratio: 0.0,
        extra: 0,
        repaired: 0,
        last: Vec::new(),
    };
    let (mut published, mut got) = (0u64, 0u64);
    for m in msgs.values() {
        let Some(at) = m.published else { continue };
        published += 1;
        got += u64::from(m.deliveries.min(receivers));
        d.extra += u64::from(m.deliveries.saturating_sub(receivers));
        d.repaired += u64::from(m.repaired);
        d.last.push(match m.deliveries >= receivers {
            true => m.last.saturating_sub(at) as f64,
            false => f64::INFINITY,
        });
    }
    d.ratio = got as f64 / (published as f64 * f64::from(receivers)).max(1.0);
    d.last = sorted(std::mem::take(&mut d.last));
    d
}

/// Connects to a control socket and starts a `watch` of application messages.
fn open_watch(path: &Path) -> Result<(BufReader<UnixStream>, UnixStream), String> {
    let conn = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let line = watch_request(&["gossip".into()], None).to_string() + "\n";
    (&conn)
        .write_all(line.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    reader.read_line(&mut reply).map_err(|e| e.to_string())?;
    if !reply.contains("\"ok\":true") {
        return Err(format!("watch refused: {}", reply.trim()));
    }
    Ok((reader, conn))
}

/// What a watcher was told: each id with when this process read it.
#[derive(Default)]
struct Seen {
    ids: Vec<(String, Instant)>,
    dropped: u64,
}

/// A `watch` connection read on a thread of its own.
struct Watcher {
    conn: UnixStream,
    count: Arc<AtomicU64>,
    thread: JoinHandle<Seen>,
}

impl Watcher {
    fn start(path: &Path) -> Result<Watcher, String> {
        let (reader, conn) = open_watch(path)?;
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        let thread = thread::spawn(move || {
            let mut seen = Seen::default();
            for line in reader.lines() {
                let Ok(line) = line else { break };
                match parse_event(&line) {
                    Some(Ev::Published { id, .. } | Ev::Delivered { id, .. }) => {
                        seen.ids.push((id, Instant::now()));
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ev::Dropped { count }) => seen.dropped += count,
                    _ => {}
                }
            }
            seen
        });
        Ok(Watcher {
            conn,
            count,
            thread,
        })
    }

    /// Closes the connection (which ends the thread's read) and returns what it saw.
    fn finish(self) -> Seen {
        let _ = self.conn.shutdown(Shutdown::Both);
        self.thread.join().unwrap_or_default()
    }
}

/// Waits until `counted` reaches `want`, or nothing new came for `stall`.
fn wait_count(counted: impl Fn() -> u64, want: u64, stall: Duration) {
    let (mut last, mut since) = (counted(), Instant::now());
    while last < want && since.elapsed() < stall {
        thread::sleep(Duration::from_millis(20));
        let now = counted();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

// ---------------------------------------------------------------- publishing

/// What publishers did.
#[derive(Default)]
struct Sent {
    /// Ids and when their request was written (burst only).
    ids: Vec<(String, Instant)>,
    ok: u64,
    refused: u64,
    /// Publishes retried after a refusal for rate.
    rate_retries: u64,
    why: Option<String>,
}

impl Sent {
    fn add(&mut self, o: Sent) {
        self.ids.extend(o.ids);
        self.ok += o.ok;
        self.refused += o.refused;
        self.rate_retries += o.rate_retries;
        self.why = self.why.take().or(o.why);
    }
}

fn payload(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// Back to back on one connection, each after the previous reply; a refusal for rate waits
/// `retry_after_ms` and tries again.
fn publish_burst(path: &Path, count: usize, data: &str) -> Result<Sent, String> {
    let mut c = Control::connect(path, Some(Duration::from_secs(30)))?;
    let request = publish_request(data, Some("bench"));
    let mut sent = Sent::default();
    for _ in 0..count {
        let mut not_joined = 0;
        loop {
            let at = Instant::now();
            let reply = c.request(&request)?;
            let Some(why) = reply.refusal() else {
                let id = reply.str("id").ok_or("a publish reply without id")?;
                sent.ids.push((id.to_string(), at));
                sent.ok += 1;
                break;
            };
            let retry = reply.fields.get("retry_after_ms").and_then(Value::as_u64);
            if let Some(wait) = retry {
                sent.rate_retries += 1;
                thread::sleep(Duration::from_millis(wait.max(1)));
            } else if why.starts_with("not joined") && not_joined < 50 {
                not_joined += 1;
                thread::sleep(Duration::from_millis(100));
            } else {
                sent.refused += 1;
                sent.why.get_or_insert(why);
                break;
            }
        }
    }
    Ok(sent)
}

/// `count` publishes at `rate` a second on a fixed schedule from `start`, pipelined: a
/// thread reads the replies, so a slow reply never shifts the schedule.
fn publish_paced(
    path: &Path,
    count: u64,
    rate: f64,
    line: &str,
    start: Instant,
) -> Result<Sent, String> {
    let conn = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let clone = conn.try_clone().map_err(|e| e.to_string())?;
    let _ = clone.set_read_timeout(Some(Duration::from_secs(30)));
    let replies = thread::spawn(move || {
        let (mut sent, mut r, mut line) = (Sent::default(), BufReader::new(clone), String::new());
        while sent.ok + sent.refused < count {
            line.clear();
            if !matches!(r.read_line(&mut line), Ok(1..)) {
                break;
            }
            let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if reply.get("ok") == Some(&Value::Bool(true)) {
                sent.ok += 1;
            } else {
                sent.refused += 1;
                let why = reply.get("error").and_then(Value::as_str).unwrap_or("?");
                sent.why.get_or_insert_with(|| why.to_string());
            }
        }
        sent
    });
    for k in 0..count {
        sleep_until(start + Duration::from_secs_f64(k as f64 / rate));
        if (&conn).write_all(line.as_bytes()).is_err() {
            let _ = conn.shutdown(Shutdown::Both);
            break;
        }
    }
    replies
        .join()
        .map_err(|_| "the reply reader panicked".to_string())
}

/// `total` messages from `paths` together at `rate` a second, an equal share each on
/// staggered schedules. Returns what was sent and the seconds it took.
fn publish_all(
    paths: &[PathBuf],
    rate: f64,
    total: u64,
    data: &str,
) -> Result<(Sent, f64), String> {
    let n = paths.len() as u64;
    let line = publish_request(data, Some("bench")).to_string() + "\n";
    let start = Instant::now() + Duration::from_millis(20);
    let results: Vec<Result<Sent, String>> = thread::scope(|s| {
        let handles: Vec<_> = (paths.iter().enumerate())
            .map(|(k, p)| {
                let count = total / n + u64::from((k as u64) < total % n);
                let at = start + Duration::from_secs_f64(k as f64 / rate);
                let line = &line;
                s.spawn(move || publish_paced(p, count, rate / n as f64, line, at))
            })
            .collect();
        let join = |h: thread::ScopedJoinHandle<'_, _>| h.join().unwrap_or(Err("panic".into()));
        handles.into_iter().map(join).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut all = Sent::default();
    for r in results {
        all.add(r?);
    }
    Ok((all, secs))
}

// ---------------------------------------------------------------- scenarios

fn burst(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let n = cli.peers.max(3);
    println!(
        "\n## burst: {n} peers, 3 publishers x {} messages of {} bytes at once, a watcher on every peer",
        cli.messages, cli.bytes
    );
    let data = payload(cli.bytes);
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for run in 1..=cli.runs.max(1) {
        eprintln!("burst run {run}: starting {n} peers");
        let opts = Opts {
            control: true,
            ..Opts::default()
        };
        let c = Cluster::start(cli, bins, "burst", n, &opts)?;
        let watchers: Vec<Watcher> = (c.peers.iter())
            .map(|p| Watcher::start(p.control()?))
            .collect::<Result<_, _>>()?;
        let pubs = c.controls(0..3)?;
        let t0 = Instant::now();
        let sent = thread::scope(|s| {
            let hs: Vec<_> = (pubs.iter())
                .map(|p| s.spawn(|| publish_burst(p, cli.messages, &data)))
                .collect();
            let mut all = Sent::default();
            for h in hs {
                all.add(h.join().unwrap_or(Err("panic".into()))?);
            }
            Ok::<_, String>(all)
        })?;
        let publish_s = t0.elapsed().as_secs_f64();
        let want = sent.ok * n as u64;
        let counted = || {
            watchers
                .iter()
                .map(|w| w.count.load(Ordering::Relaxed))
                .sum()
        };
        wait_count(counted, want, Duration::from_secs(10));
        let seen: Vec<Seen> = watchers.into_iter().map(Watcher::finish).collect();
        let sent_at: HashMap<&str, Instant> =
            sent.ids.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        let mut last: HashMap<&str, (Instant, usize)> = HashMap::new();
        let mut shortfalls = Vec::new();
        for (p, s) in seen.iter().enumerate() {
            let mut distinct = HashSet::new();
            for (id, t) in &s.ids {
                if sent_at.contains_key(id.as_str()) && distinct.insert(id.as_str()) {
                    let e = last.entry(id.as_str()).or_insert((*t, 0));
                    e.0 = e.0.max(*t);
                    e.1 += 1;
                }
            }
            let dups = s.ids.len() - distinct.len();
            if distinct.len() as u64 != sent.ok || dups > 0 || s.dropped > 0 {
                shortfalls.push(format!(
                    "  peer {} ({}): {} of {} ids, {dups} duplicates or unknown, {} dropped",
                    p,
                    c.peers[p].addr,
                    distinct.len(),
                    sent.ok,
                    s.dropped
                ));
            }
        }
        let complete: Vec<(&str, Instant)> = (last.iter())
            .filter(|(_, (_, k))| *k == n)
            .map(|(id, (t, _))| (*id, *t))
            .collect();
        let lat = sorted(
            (complete.iter())
                .map(|(id, t)| t.duration_since(sent_at[id]).as_secs_f64() * 1000.0)
                .collect(),
        );
        let wall = (complete.iter().map(|(_, t)| *t).max())
            .map_or(f64::NAN, |t| t.duration_since(t0).as_secs_f64());
        println!(
            "run {run}: published {} ({} refused, {} retries after a rate refusal) in {publish_s:.2} s; \
             every id exactly once at every peer: {}; latency to the last peer p50 / p99 / max {:.0} / {:.0} / {:.0} ms; \
             last delivery {wall:.2} s after the first publish",
            sent.ok,
            sent.refused,
            sent.rate_retries,
            if shortfalls.is_empty() { "OK".to_string() } else { format!("NO ({} peers short)", shortfalls.len()) },
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
        );
        for s in &shortfalls {
            println!("{s}");
        }
        if let Some(why) = &sent.why {
            println!("  a refusal: {why}");
        }
        rows.push([pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 1.0), wall]);
    }
    let col = |k: usize| median(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
    println!(
        "median of {} runs: latency p50 / p99 / max {:.0} / {:.0} / {:.0} ms, wall {:.2} s",
        rows.len(),
        col(0),
        col(1),
        col(2),
        col(3)
    );
    Ok(())
}

fn rate(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let n = cli.rate_peers.max(PUBLISHERS + 1);
    println!(
        "\n## rate: {n} peers, {PUBLISHERS} publishers, {} s per step, {} bytes; delivery from the events files \
         (undelivered 60 s after the step: never)",
        cli.rate_secs, cli.bytes
    );
    println!("| mode | offered msg/s | achieved msg/s | refused | delivery | extra copies | by repair | last peer p50 / p99 ms | peer CPU s per s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let data = payload(cli.bytes);
    let (mut best, mut notes) = (Vec::new(), Vec::new());
    for mode in &cli.modes {
        eprintln!("rate {mode}: starting {n} peers");
        let opts = Opts {
            mode: Some(mode.clone()),
            control: true,
            events: true,
            ..Opts::default()
        };
        let c = Cluster::start(cli, bins, &format!("rate-{mode}"), n, &opts)?;
        let pubs = c.controls(0..PUBLISHERS)?;
        let mut passed = None;
        // A warm-up at the first rate, shown but not judged: a fresh lazy cluster's tree is
        // a forest at first, and its first seconds of traffic come by graft.
        let warm_up = cli
            .rates
            .first()
            .map(|&r| (r, cli.rate_secs.min(5), " (warm-up)"));
        let steps = cli.rates.iter().map(|&r| (r, cli.rate_secs, ""));
        for (r, secs, label) in warm_up.into_iter().chain(steps) {
            eprintln!("rate {mode}: {r} msg/s for {secs} s{label}");
            c.truncate_logs();
            let cpu0 = c.peer_cpu();
            let total = u64::from(r) * secs;
            let (sent, secs) = publish_all(&pubs, f64::from(r), total, &data)?;
            let cpu = (c.peer_cpu() - cpu0) / secs;
            let files = c.events_files();
            wait_quiet(&files, Duration::from_secs(3), Duration::from_secs(60));
            let d = delivery(&tally(&files), n as u32 - 1);
            println!(
                "| {mode}{label} | {r} | {:.0} | {} | {:.6} | {} | {} | {} / {} | {cpu:.2} |",
                sent.ok as f64 / secs,
                sent.refused,
                d.ratio,
                d.extra,
                d.repaired,
                ms(pct(&d.last, 0.5)),
                ms(pct(&d.last, 0.99)),
            );
            if let Some(why) = sent.why {
                notes.push(format!("{mode} at {r} msg/s, a refusal: {why}"));
            }
            if !label.is_empty() {
                continue;
            }
            if d.ratio >= 1.0 && pct(&d.last, 0.99) <= 250.0 {
                passed = passed.max(Some(r));
            }
            if d.ratio < 0.99 {
                break;
            }
        }
        best.push((mode.clone(), passed));
    }
    for note in notes {
        println!("{note}");
    }
    for (mode, r) in best {
        let shown = r.map_or("none of the steps".to_string(), |r| format!("{r} msg/s"));
        println!("{mode}: highest rate with delivery 1.0 and p99 <= 250 ms: {shown}");
    }
    Ok(())
}

fn restart(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let n = cli.restart_peers.max(PUBLISHERS + 2);
    let secs = cli.restart_secs as f64;
    println!(
        "\n## restart: {n} peers, {} msg/s from {PUBLISHERS} publishers for {secs} s; the last peer killed (SIGKILL) at {:.1} s, restarted at {:.1} s",
        cli.restart_rate, secs / 3.0, secs / 2.0
    );
    let data = payload(cli.bytes);
    for run in 1..=cli.runs.max(1) {
        eprintln!("restart run {run}: starting {n} peers");
        let opts = Opts {
            control: true,
            events: true,
            ..Opts::default()
        };
        let mut c = Cluster::start(cli, bins, "restart", n, &opts)?;
        let pubs = c.controls(0..PUBLISHERS)?;
        let victim = n - 1;
        let old_events = c.events_files()[victim].clone();
        let new_events = c.dir.join("victim-restarted.events");
        let total = (f64::from(cli.restart_rate) * secs) as u64;
        let t0 = Instant::now();
        let (sent, kill_ms) = thread::scope(|s| {
            let h = s.spawn(|| publish_all(&pubs, f64::from(cli.restart_rate), total, &data));
            sleep_until(t0 + Duration::from_secs_f64(secs / 3.0));
            let kill_ms = unix_ms();
            c.kill(victim);
            eprintln!("restart run {run}: killed {}", c.peers[victim].addr);
            sleep_until(t0 + Duration::from_secs_f64(secs / 2.0));
            let started = c.restart(victim, new_events.clone());
            eprintln!("restart run {run}: restarted {}", c.peers[victim].addr);
            let sent = h.join().unwrap_or(Err("panic".into()));
            started.and(sent).map(|(s, _)| (s, kill_ms))
        })?;
        let mut others = c.events_files();
        others.retain(|f| *f != new_events && *f != old_events);
        let mut files = others.clone();
        files.push(new_events.clone());
        wait_quiet(&files, Duration::from_secs(3), Duration::from_secs(60));
        let msgs = tally(&others);
        let d = delivery(&msgs, n as u32 - 2);
        let (mut rejoin, mut got) = (None, HashMap::new());
        read_events(&new_events, |ev| match ev {
            Ev::Bootstrapped { at } => rejoin = rejoin.or(Some(at)),
            Ev::Delivered { id, repair, .. } => {
                got.insert(id, repair);
            }
            _ => {}
        });
        let Some(rejoin) = rejoin else {
            println!(
                "run {run}: the restarted peer never bootstrapped (see {}; use --keep)",
                c.dir.display()
            );
            continue;
        };
        let (mut after, mut after_got, mut down, mut down_got, mut down_repair) = (0, 0, 0, 0, 0);
        for (id, m) in &msgs {
            let Some(at) = m.published else { continue };
            if at >= rejoin {
                after += 1;
                after_got += u32::from(got.contains_key(id));
            } else if at >= kill_ms {
                down += 1;
                down_got += u32::from(got.contains_key(id));
                down_repair += u32::from(got.get(id) == Some(&true));
            }
        }
        let verdict = |ok: bool| if ok { "OK" } else { "SHORT" };
        println!(
            "run {run}: published {} ({} refused); down {:.1} s (kill to bootstrapped); after rejoining: {after} published, \
             {after_got} delivered to it ({}); during its downtime: {down} published, it got {down_got}, {down_repair} by repair; \
             every other peer: delivery {:.6} ({}), {} by repair",
            sent.ok,
            sent.refused,
            rejoin.saturating_sub(kill_ms) as f64 / 1000.0,
            verdict(after_got == after),
            d.ratio,
            verdict(d.ratio >= 1.0),
            d.repaired,
        );
    }
    Ok(())
}

fn slow_watcher(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let total = cli.slow_messages;
    println!(
        "\n## slow-watcher: 5 peers; a watcher on the last reads nothing while the other 4 publish {total} messages of 1 KiB at {} msg/s",
        cli.slow_rate
    );
    let opts = Opts {
        control: true,
        ..Opts::default()
    };
    let c = Cluster::start(cli, bins, "slow", 5, &opts)?;
    let target = &c.peers[4];
    let pid = target.pid().ok_or("the target peer is not running")?;
    // A publisher with no watcher, for reference: every peer keeps the bodies for repair.
    let other = c.peers[3].pid().ok_or("peer 3 is not running")?;
    let rss_of =
        |pid: u32| proc_kb(pid, "status", "VmRSS:").map_or(f64::NAN, |kb| kb as f64 / 1024.0);
    let rss = || rss_of(pid);
    let reading = Watcher::start(target.control()?)?;
    let (slow, _slow_conn) = open_watch(target.control()?)?;
    let before = rss();
    let pubs = c.controls(0..4)?;
    let data = payload(1024);
    let stop = AtomicBool::new(false);
    let (sent, (during, other_max)) = thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut max = (before, rss_of(other));
            while !stop.load(Ordering::Relaxed) {
                max = (max.0.max(rss()), max.1.max(rss_of(other)));
                thread::sleep(Duration::from_millis(200));
            }
            max
        });
        let sent = publish_all(&pubs, f64::from(cli.slow_rate), total, &data);
        let counted = || reading.count.load(Ordering::Relaxed);
        if let Ok((s, _)) = &sent {
            wait_count(counted, s.ok, Duration::from_secs(10));
        }
        stop.store(true, Ordering::Relaxed);
        (sent, sampler.join().unwrap_or((f64::NAN, f64::NAN)))
    });
    let (sent, secs) = sent?;
    let after_publish = rss();
    let seen = reading.finish();
    let distinct: HashSet<&str> = seen.ids.iter().map(|(id, _)| id.as_str()).collect();
    // The backlog: what the node queued, then (the `dropped` line only comes before the next
    // event) one more message and everything up to it.
    let mut backlog = Backlog {
        conn: Some(slow),
        ..Backlog::default()
    };
    backlog.drain(None, Duration::from_secs(2));
    let queued = backlog.read;
    let tail = publish_burst(&pubs[0], 1, &data)?;
    let tail_id = tail.ids.first().map(|(id, _)| id.clone());
    backlog.drain(tail_id.as_deref(), Duration::from_secs(10));
    let (read, dropped) = (backlog.read, backlog.dropped);
    thread::sleep(Duration::from_secs(1));
    println!(
        "published {} in {secs:.1} s ({} refused); target peer VmRSS before {before:.1} MB, during (max, every 200 ms) {during:.1} MB, \
         after publishing {after_publish:.1} MB, after the backlog was read {:.1} MB; a publisher without watchers: max {other_max:.1} MB",
        sent.ok, sent.refused, rss()
    );
    println!(
        "reading watcher on the same peer: {} of {} ids ({}), {} dropped",
        distinct.len(),
        sent.ok,
        if distinct.len() as u64 == sent.ok {
            "OK"
        } else {
            "SHORT"
        },
        seen.dropped
    );
    println!(
        "slow watcher: backlog {queued} events, then {} more with the one extra message; told dropped {dropped}; \
         read + dropped = {} of {} ({})",
        read - queued,
        read + dropped,
        sent.ok + tail.ok,
        if read + dropped == sent.ok + tail.ok { "OK" } else { "MISMATCH" }
    );
    Ok(())
}

/// The slow watcher's connection, read at last.
#[derive(Default)]
struct Backlog {
    conn: Option<BufReader<UnixStream>>,
    read: u64,
    dropped: u64,
    /// A line cut by a read timeout, finished by the next read.
    line: String,
}

impl Backlog {
    /// Reads events until `until` is delivered, or nothing comes for `idle`.
    fn drain(&mut self, until: Option<&str>, idle: Duration) {
        let Some(conn) = &mut self.conn else { return };
        let _ = conn.get_ref().set_read_timeout(Some(idle));
        while let Ok(1..) = conn.read_line(&mut self.line) {
            match parse_event(&self.line) {
                Some(Ev::Dropped { count }) => self.dropped += count,
                Some(Ev::Delivered { id, .. }) => {
                    self.read += 1;
                    if until == Some(id.as_str()) {
                        self.line.clear();
                        return;
                    }
                }
                _ => {}
            }
            self.line.clear();
        }
    }
}

/// A keep-alive HTTP/1.1 client for `GET /metrics`.
struct Scraper {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Scraper {
    fn new(addr: SocketAddr) -> Scraper {
        Scraper { addr, conn: None }
    }

    /// One scrape: (body bytes, response bytes).
    fn get(&mut self) -> Result<(usize, usize), String> {
        self.get_body()
            .map(|(body, head)| (body.len(), head + body.len()))
    }

    /// One scrape: (body, header bytes); a kept connection that fails (the node restarted)
    /// is replaced once.
    fn get_body(&mut self) -> Result<(String, usize), String> {
        let kept = self.conn.is_some();
        match self.get_once() {
            Err(_) if kept => self.get_once(),
            other => other,
        }
    }

    fn get_once(&mut self) -> Result<(String, usize), String> {
        let mut r = match self.conn.take() {
            Some(r) => r,
            None => {
                let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                    .map_err(|e| format!("metrics {}: {e}", self.addr))?;
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.set_nodelay(true);
                BufReader::new(s)
            }
        };
        (r.get_ref())
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let (mut head, mut line, mut length, mut close) = (0, String::new(), None, false);
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return Err("metrics: closed mid-response".into()),
                Ok(n) => head += n,
                Err(e) => return Err(format!("metrics: {e}")),
            }
            if head == line.len() && !line.contains(" 200 ") {
                return Err(format!("metrics: {}", line.trim()));
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            close |= lower.starts_with("connection:") && lower.contains("close");
            if line == "\r\n" {
                break;
            }
        }
        let length = length.ok_or("metrics: no Content-Length")?;
        let mut body = vec![0; length];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        if !close {
            self.conn = Some(r);
        }
        Ok((String::from_utf8_lossy(&body).into_owned(), head))
    }

    /// Protocol lines this node wrote (`direction` `out`) or read (`in`) so far, by type.
    fn lines(&mut self, direction: &str) -> Result<HashMap<String, f64>, String> {
        let direction = format!("direction=\"{direction}\"");
        let (body, _) = self.get_body()?;
        let mut by_type = HashMap::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("gossip_messages_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            if !labels.contains(&direction) {
                continue;
            }
            let kind = labels
                .split(',')
                .find_map(|l| l.strip_prefix("type=\""))
                .map(|t| t.trim_end_matches('"').to_string());
            if let (Some(kind), Ok(v)) = (kind, value.trim().parse::<f64>()) {
                *by_type.entry(kind).or_insert(0.0) += v;
            }
        }
        Ok(by_type)
    }
}

/// The shared log, read as it grows: each call returns the whole lines added since.
struct LogTail {
    path: PathBuf,
    offset: u64,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        LogTail {
            path: path.to_path_buf(),
            offset,
        }
    }

    fn read(&mut self) -> Vec<gossip_bins::log_line::LogLine> {
        let mut out = Vec::new();
        let Ok(mut f) = File::open(&self.path) else {
            return out;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut r = BufReader::new(f);
        let mut line = String::new();
        while let Ok(n @ 1..) = r.read_line(&mut line) {
            if !line.ends_with('\n') {
                break; // being written: read it again next time
            }
            self.offset += n as u64;
            out.extend(parse_line(line.trim_end()));
            line.clear();
        }
        out
    }
}

fn scrape(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let n = cli.scrape_peers.max(2);
    println!(
        "\n## scrape: {n} peers; peer 0 serves /metrics and publishes {} msg/s of {} bytes; {} scrapes on one keep-alive connection",
        cli.scrape_rate, cli.bytes, cli.scrapes
    );
    let data = payload(cli.bytes);
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for run in 1..=cli.runs.max(1) {
        eprintln!("scrape run {run}: starting {n} peers");
        let opts = Opts {
            control: true,
            metrics: 1,
            ..Opts::default()
        };
        let c = Cluster::start(cli, bins, "scrape", n, &opts)?;
        let busy = &c.peers[0];
        let pid = busy.pid().ok_or("the busy peer is not running")?;
        let addr = busy.metrics.ok_or("no metrics address")?;
        let mut scraper = Scraper { addr, conn: None };
        let pubs = c.controls(0..1)?;
        let rate = f64::from(cli.scrape_rate);
        // Busy: scrapes back to back from 1 s into 5 s of publishing.
        let (busy_rtt, size, sent) = thread::scope(|s| {
            let h = s.spawn(|| publish_all(&pubs, rate, 5 * u64::from(cli.scrape_rate), &data));
            thread::sleep(Duration::from_secs(1));
            let (mut rtt, mut size) = (Vec::new(), (0, 0));
            for _ in 0..cli.scrapes {
                let t = Instant::now();
                size = scraper.get()?;
                rtt.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let sent = h.join().unwrap_or(Err("panic".into()))?;
            Ok::<_, String>((sorted(rtt), size, sent.0))
        })?;
        // CPU per scrape, publishing over: scrapes back to back for 3 s (at least as many as
        // above) against 3 s of nothing; long windows, so the idle peer's timers even out.
        thread::sleep(Duration::from_secs(2));
        let window = Duration::from_secs(3);
        let (c0, t0) = (cpu_secs(pid).unwrap_or(0.0), Instant::now());
        thread::sleep(window);
        let idle = (cpu_secs(pid).unwrap_or(0.0) - c0) / t0.elapsed().as_secs_f64();
        let (c1, t1, mut k, mut idle_rtt) =
            (cpu_secs(pid).unwrap_or(0.0), Instant::now(), 0, Vec::new());
        while k < cli.scrapes || t1.elapsed() < window {
            let t = Instant::now();
            scraper.get()?;
            idle_rtt.push(t.elapsed().as_secs_f64() * 1e6);
            k += 1;
        }
        let spent = cpu_secs(pid).unwrap_or(0.0) - c1 - idle * t1.elapsed().as_secs_f64();
        let per_scrape = spent / k as f64 * 1e6;
        let idle_rtt = sorted(idle_rtt);
        println!(
            "run {run}: response {} bytes ({} of body); round trip while publishing ({} published) p50 / p99 {:.0} / {:.0} us, \
             idle p50 / p99 {:.0} / {:.0} us; peer CPU {per_scrape:.0} us per scrape ({k} scrapes, idle CPU {:.2} ms/s subtracted)",
            size.1,
            size.0,
            sent.ok,
            pct(&busy_rtt, 0.5),
            pct(&busy_rtt, 0.99),
            pct(&idle_rtt, 0.5),
            pct(&idle_rtt, 0.99),
            idle * 1000.0
        );
        rows.push([
            size.0 as f64,
            pct(&busy_rtt, 0.5),
            pct(&busy_rtt, 0.99),
            per_scrape,
        ]);
    }
    let col = |k: usize| median(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
    println!(
        "median of {} runs: {:.0} bytes of body, busy round trip p50 / p99 {:.0} / {:.0} us, {:.0} us CPU per scrape",
        rows.len(),
        col(0),
        col(1),
        col(2),
        col(3)
    );
    Ok(())
}

/// One quiet cluster: (ms CPU per peer-second, PSS median MB, PSS max MB).
fn quiet_once(cli: &Cli, bins: &Bins, apps: bool) -> Result<[f64; 3], String> {
    let n = cli.quiet_peers;
    let opts = Opts {
        control: apps,
        events: apps,
        metrics: if apps { n } else { 0 },
        ..Opts::default()
    };
    let c = Cluster::start(cli, bins, "quiet", n, &opts)?;
    thread::sleep(Duration::from_secs(2)); // let the bootstrap's greetings settle
    let (c0, t0) = (c.peer_cpu(), Instant::now());
    thread::sleep(Duration::from_secs(cli.quiet_secs));
    let cpu = (c.peer_cpu() - c0) * 1000.0 / (n as f64 * t0.elapsed().as_secs_f64());
    let pss = sorted(
        (c.peers.iter())
            .filter_map(|p| proc_kb(p.pid()?, "smaps_rollup", "Pss:"))
            .map(|kb| kb as f64 / 1024.0)
            .collect(),
    );
    Ok([cpu, median(&pss), pct(&pss, 1.0)])
}

fn quiet(cli: &Cli, builds: &[Bins]) -> Result<(), String> {
    println!(
        "\n## quiet: 3 seeds + {} peers at default timings, nothing published; CPU over {} s after bootstrap, PSS per peer",
        cli.quiet_peers, cli.quiet_secs
    );
    println!("plain: no --control/--events/--metrics; apps: all three on every peer");
    let mut results: Vec<[Vec<[f64; 3]>; 2]> = builds.iter().map(|_| [vec![], vec![]]).collect();
    for run in 1..=cli.runs.max(1) {
        for (b, bins) in builds.iter().enumerate() {
            for (v, apps) in [false, true].into_iter().enumerate() {
                let what = if apps { "apps" } else { "plain" };
                if apps && !bins.apps {
                    if run == 1 {
                        println!(
                            "{}: apps skipped: its peer has no --control",
                            bins.dir.display()
                        );
                    }
                    continue;
                }
                eprintln!("quiet run {run}: {} {what}", bins.dir.display());
                let r = quiet_once(cli, bins, apps)?;
                println!(
                    "run {run} {} {what}: CPU {:.3} ms per peer-second; PSS median {:.2} MB, max {:.2} MB",
                    bins.dir.display(),
                    r[0],
                    r[1],
                    r[2]
                );
                results[b][v].push(r);
            }
        }
    }
    let med = |rs: &[[f64; 3]], k: usize| median(&rs.iter().map(|r| r[k]).collect::<Vec<_>>());
    println!("\n| build | plain CPU ms/peer-s | plain PSS median / max MB | apps CPU ms/peer-s | apps PSS median / max MB | apps / plain CPU, PSS |");
    println!("|---|---|---|---|---|---|");
    // A skipped variant's medians are NaN: shown as `-`.
    let f = |v: f64, digits: usize| match v.is_nan() {
        true => "-".to_string(),
        false => format!("{v:.digits$}"),
    };
    for (bins, [plain, apps]) in builds.iter().zip(&results) {
        let (pc, pm) = (med(plain, 0), med(plain, 1));
        let (ac, am) = (med(apps, 0), med(apps, 1));
        println!(
            "| {} | {} | {} / {} | {} | {} / {} | {}, {} |",
            bins.dir.display(),
            f(pc, 3),
            f(pm, 2),
            f(med(plain, 2), 2),
            f(ac, 3),
            f(am, 2),
            f(med(apps, 2), 2),
            f(ac / pc, 2),
            f(am / pm, 2)
        );
    }
    if let [old, .., new] = &results[..] {
        println!(
            "new / old, plain: CPU {:.2}, PSS median {:.2}; new apps / old plain: CPU {:.2}, PSS median {:.2}",
            med(&new[0], 0) / med(&old[0], 0),
            med(&new[0], 1) / med(&old[0], 1),
            med(&new[1], 0) / med(&old[0], 0),
            med(&new[1], 1) / med(&old[0], 1),
        );
    }
    Ok(())
}

/// Protocol lines every node but `except` wrote (`out`) or read (`in`) so far, by type.
fn lines_of(
    scrapers: &mut [(SocketAddr, Scraper)],
    direction: &str,
    except: Option<SocketAddr>,
) -> Result<HashMap<String, f64>, String> {
    let mut total = HashMap::new();
    for (_, s) in scrapers
        .iter_mut()
        .filter(|(node, _)| Some(*node) != except)
    {
        for (k, v) in s.lines(direction)? {
            *total.entry(k).or_insert(0.0) += v;
        }
    }
    Ok(total)
}

fn leave(cli: &Cli, bins: &Bins) -> Result<(), String> {
    let n = cli.leave_peers.max(2);
    println!(
        "\n## leave: 3 seeds + {n} peers at default timings; {} SIGTERMs one after another, each peer started again (one incarnation up) before the next",
        cli.leaves
    );
    let opts = Opts {
        events: true,
        metrics: n,
        seed_metrics: true,
        ..Opts::default()
    };
    let mut c = Cluster::start(cli, bins, "leave", n, &opts)?;
    let mut scrapers: Vec<(SocketAddr, Scraper)> = (c.seeds.iter().chain(&c.peers))
        .filter_map(|node| Some((node.addr, Scraper::new(node.metrics?))))
        .collect();
    thread::sleep(Duration::from_secs(3)); // the bootstrap's greetings settle
    let (before, t0) = (lines_of(&mut scrapers, "out", None)?, Instant::now());
    thread::sleep(Duration::from_secs(5));
    let quiet_per_ms = (lines_of(&mut scrapers, "out", None)?.values().sum::<f64>()
        - before.values().sum::<f64>())
        / t0.elapsed().as_millis() as f64
        * (n + 2) as f64
        / (n + 3) as f64; // one node fewer is counted during a leave
    let leave_types = ["LEAVE", "LEAVE_VOTE", "LEAVE_COMMIT"];
    let mut tail = LogTail::new(&c.output);
    let (mut to_left, mut to_exit, mut own, mut all) = (vec![], vec![], vec![], vec![]);
    let mut uncertified = 0;
    let seeds: HashSet<SocketAddr> = c.seeds.iter().map(|s| s.addr).collect();
    for k in 0..cli.leaves {
        let i = k % n;
        let addr = c.peers[i].addr;
        let pid = c.peers[i].pid().ok_or("peer not running")?;
        let before_out = lines_of(&mut scrapers, "out", Some(addr))?;
        let before_in = lines_of(&mut scrapers, "in", Some(addr))?;
        tail.read();
        let (sent_at, sent_ms) = (Instant::now(), unix_ms());
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !killed.success() {
            return Err(format!("kill -TERM {pid} failed"));
        }
        let (mut exited, mut left_at) = (None, HashMap::new());
        let end = sent_at + Duration::from_secs(10);
        while (exited.is_none() || left_at.len() < seeds.len()) && Instant::now() < end {
            if exited.is_none() {
                let child = c.peers[i].child.as_mut().ok_or("no child")?;
                if let Ok(Some(status)) = child.try_wait() {
                    if !status.success() {
                        return Err(format!("{addr} exited {status} on SIGTERM"));
                    }
                    exited = Some(sent_at.elapsed());
                }
            }
            let left = format!("Leave consensus COMMIT for {addr} ");
            for l in tail.read() {
                if seeds.contains(&l.node) && l.text.starts_with(&left) {
                    left_at.entry(l.node).or_insert(l.unix_ms);
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
        let exited = exited.ok_or_else(|| format!("{addr} did not exit within 10 s"))?;
        to_exit.push(exited.as_secs_f64() * 1000.0);
        match left_at.values().max() {
            Some(&last) if left_at.len() == seeds.len() => {
                to_left.push(last.saturating_sub(sent_ms) as f64)
            }
            _ => uncertified += 1,
        }
        let after_out = lines_of(&mut scrapers, "out", Some(addr))?;
        let after_in = lines_of(&mut scrapers, "in", Some(addr))?;
        let window = sent_at.elapsed().as_millis() as f64;
        let delta = |a: &HashMap<String, f64>, b: &HashMap<String, f64>, k: &str| {
            a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0)
        };
        own.push(
            (leave_types.iter())
                .map(|k| delta(&after_in, &before_in, k))
                .sum::<f64>(),
        );
        let total: f64 = after_out
            .keys()
            .map(|k| delta(&after_out, &before_out, k))
            .sum();
        all.push(total - quiet_per_ms * window);
        // Back, one incarnation up; the next leave waits for its bootstrap.
        c.restart(i, c.dir.join(format!("p{i}-{k}.events")))?;
        let booted = Instant::now() + Duration::from_secs(20);
        let mut back = false;
        while !back && Instant::now() < booted {
            thread::sleep(Duration::from_millis(20));
            back = tail
                .read()
                .iter()
                .any(|l| l.node == addr && l.text.starts_with("Bootstrap complete"));
        }
        if !back {
            return Err(format!("{addr} did not bootstrap again"));
        }
        thread::sleep(Duration::from_millis(300));
    }
    thread::sleep(Duration::from_secs(3));
    let log = std::fs::read_to_string(&c.output).unwrap_or_default();
    let dead_lines = log.lines().filter(|l| l.starts_with("Dead Node:")).count();
    let dead_rounds = log
        .lines()
        .filter(|l| l.starts_with("Dead-node proposal"))
        .count();
    let mut suspicions = 0;
    for entry in std::fs::read_dir(&c.dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.path().extension().is_some_and(|x| x == "events") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            suspicions += text.matches("\"suspicion_raised\"").count();
        }
    }
    let show = |name: &str, v: Vec<f64>| {
        let v = sorted(v);
        if v.is_empty() {
            println!("{name}: none");
        } else {
            println!(
                "{name}: p50 {} ms · max {} ms (n={})",
                ms(pct(&v, 0.5)),
                ms(pct(&v, 1.0)),
                v.len()
            );
        }
    };
    show("SIGTERM → LEFT at every seed", to_left);
    show("SIGTERM → exit", to_exit);
    println!("leaves not certified at every seed within 10 s: {uncertified}");
    let own = sorted(own);
    let all = sorted(all);
    println!(
        "lines per leave: LEAVE, LEAVE_VOTE and LEAVE_COMMIT lines the other nodes read, median {:.0} (max {:.0}); every line the other nodes wrote, less the quiet rate ({:.2} lines/ms), median {:.0}",
        pct(&own, 0.5),
        pct(&own, 1.0),
        quiet_per_ms,
        pct(&all, 0.5)
    );
    println!(
        "false failures: {dead_lines} Dead Node lines, {dead_rounds} dead-node rounds, {suspicions} suspicions raised"
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let only: Vec<&str> = match cli.only.iter().any(|s| s == "all") {
        true => SCENARIOS.to_vec(),
        false => cli.only.iter().map(String::as_str).collect(),
    };
    if let Some(bad) = only.iter().find(|s| !SCENARIOS.contains(s)) {
        eprintln!(
            "bench_apps: unknown scenario {bad:?}; known: {}",
            SCENARIOS.join(", ")
        );
        return ExitCode::from(2);
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let dirs = match cli.bin_dir.is_empty() {
        true => vec![exe_dir],
        false => cli.bin_dir.clone(),
    };
    let builds: Vec<Bins> = match dirs.iter().map(|d| Bins::at(d)).collect() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench_apps: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (soft, _) = gossip_bins::raise_open_files_limit();
    if soft.is_some_and(|s| s < 4096) {
        eprintln!("bench_apps: open-files limit {soft:?}; large clusters may fail");
    }
    if let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) {
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let note = if dirty {
            " (working tree modified)"
        } else {
            ""
        };
        println!("commit {commit}{note}");
    }
    if let Ok(exe) = std::env::current_exe() {
        println!("bench: {}", exe.display());
    }
    for b in &builds {
        let apps = if b.apps {
            ""
        } else {
            " (no --control: an older build)"
        };
        println!(
            "programs: {} and {}{apps}",
            b.seed.display(),
            b.peer.display()
        );
    }
    let main_bins = builds.last().expect("at least one build");
    if !main_bins.apps && only.iter().any(|s| *s != "quiet") {
        eprintln!(
            "bench_apps: {} has no --control: only `quiet` can run it",
            main_bins.peer.display()
        );
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    for s in only {
        let result = match s {
            "burst" => burst(&cli, main_bins),
            "rate" => rate(&cli, main_bins),
            "restart" => restart(&cli, main_bins),
            "slow-watcher" => slow_watcher(&cli, main_bins),
            "scrape" => scrape(&cli, main_bins),
            "leave" => leave(&cli, main_bins),
            _ => quiet(&cli, &builds),
        };
        if let Err(e) = result {
            println!("{s}: failed: {e}");
            eprintln!("bench_apps: {s}: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
