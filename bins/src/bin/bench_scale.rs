//! `bench_scale`: the network at scale on real processes, printed as a table. Build first:
//! `cargo build --release -p gossip-bins`, then run `target/release/bench_scale` (it starts
//! the `seed` and `peer` programs next to itself). Not part of the test suites: it prints
//! numbers (see `docs/RUNNING.md`, "Scale").
//!
//! For each N of `--peers` (default 200, 500 and 1,000): `--seeds` seed processes and N peer
//! processes on this machine, each peer on a loopback address of its own (127.1.x.y), with
//! the programs' default timings. Every peer is spawned at once; then:
//!
//! * bootstrap: per peer, spawn to its `Bootstrap complete` line (registered with a quorum of
//!   seeds, Peer Lists fetched, neighbours greeted): p50, p99, max;
//! * CPU per node-second (user + system, `/proc/PID/stat`) in a quiet window after every
//!   peer bootstrapped (probes, refreshes, anti-entropy), and in the window where every peer
//!   makes one gossip;
//! * memory per node: PSS (proportional: shared pages divided among the processes that map
//!   them, `/proc/PID/smaps_rollup`) and RSS, median and max, peers and seeds apart;
//! * delivery: each peer makes one gossip only after every peer bootstrapped (its gossip
//!   interval is longer than the bootstrap takes); the share of (gossip, other peer) pairs
//!   with a first-time receipt, and the receipt latency;
//! * removal: `kill -9` of `--kills` peers, then the time until every seed lists each
//!   removed (from the seeds' own log lines);
//! * agreement: whether every seed answers with the same Peer List at the end, and how many
//!   live peers any seed removed.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use gossip_bins::log_line::{parse_line, LogLine};
use gossip_core::msg::{RoleStatus, Status};

/// Starts seeds and N peer processes for each N and prints bootstrap latency, CPU and memory
/// per node, gossip delivery, removal time and agreement.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Peer counts to run, one cluster each.
    #[arg(long, value_delimiter = ',', default_value = "200,500,1000")]
    peers: Vec<usize>,
    /// Seeds (3 to 5 is the intended range).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Peers that make one gossip each, one every `--gossip-spacing-ms` once every peer has
    /// bootstrapped (at most N). Every peer gossiping at once floods a 2-core machine: a
    /// gossip costs about four deliveries per peer.
    #[arg(long, default_value_t = 100)]
    gossipers: usize,
    /// Time between two gossipers' gossip.
    #[arg(long, default_value_t = 100)]
    gossip_spacing_ms: u64,
    /// Peers killed with SIGKILL for the removal measurement.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Seconds of the quiet CPU window after bootstrap.
    #[arg(long, default_value_t = 5)]
    quiet_secs: u64,
    /// Runs of each N (one table row each).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Give up on a bootstrap after this many seconds.
    #[arg(long, default_value_t = 120)]
    bootstrap_limit_secs: u64,
    /// Keep each run's directory (config, output file, stderr) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Extra flags for every node (e.g. `--extra=--probe-interval-ms=500`).
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn free_addr(ip: IpAddr) -> Result<SocketAddr, String> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on {ip}: {e}"))
}

/// Peer `i`'s address: 127.1.x.y, one per peer.
fn peer_ip(i: usize) -> IpAddr {
    let j = i + 1;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (j >> 16) as u8,
        (j >> 8) as u8,
        j as u8,
    ))
}

/// Node processes of one run, killed by PID when dropped.
struct Nodes {
    dir: PathBuf,
    keep: bool,
    procs: Vec<(SocketAddr, bool, Child)>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, _, c) in &mut self.procs {
            let _ = c.kill();
        }
        for (_, _, c) in &mut self.procs {
            let _ = c.wait();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// (PSS, RSS) of a process in kB, from `/proc/PID/smaps_rollup`.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// What the output file said so far, read incrementally.
#[derive(Default)]
struct Log {
    offset: u64,
    partial: String,
    lines: u64,
    /// Per node: when its `Bootstrap complete` line was written.
    boot: HashMap<SocketAddr, u64>,
    /// Gossip text → (origin, when generated).
    made: HashMap<String, (SocketAddr, u64)>,
    /// Gossip text → first-time receipt latencies (ms).
    got: HashMap<String, Vec<u64>>,
    /// (seed, peer) → when the seed listed the peer removed.
    removed: HashMap<(SocketAddr, SocketAddr), u64>,
    registration_failures: u64,
    rejoins: u64,
    suspicions: u64,
}

impl Log {
    fn read(&mut self, path: &Path) {
        let Ok(mut f) = File::open(path) else { return };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut line = std::mem::take(&mut self.partial);
        loop {
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    if !line.ends_with('\n') {
                        break; // a line being written: finish it next time
                    }
                    self.take(line.trim_end());
                    line.clear();
                }
            }
        }
        self.partial = line;
    }

    fn take(&mut self, line: &str) {
        self.lines += 1;
        let Some(LogLine {
            text,
            node,
            unix_ms: ms,
        }) = parse_line(line)
        else {
            return;
        };
        if let Some(rest) = text.strip_prefix("First-time gossip received: ") {
            if let Some((g, _)) = rest.rsplit_once(" from ") {
                if let Some((_, at)) = self.made.get(g) {
                    let lat = ms.saturating_sub(*at);
                    self.got.entry(g.to_string()).or_default().push(lat);
                }
            }
        } else if text.starts_with("Duplicate gossip") {
        } else if text.starts_with("Bootstrap complete") {
            self.boot.entry(node).or_insert(ms);
        } else if let Some(rest) = text.strip_prefix("Generated gossip: ") {
            if let Some((g, _)) = rest.rsplit_once(" (#") {
                self.made.insert(g.to_string(), (node, ms));
            }
        } else if let Some(rest) = text.strip_prefix("Dead-node consensus COMMIT for ") {
            if let Some(peer) = rest.split(' ').next().and_then(|p| p.parse().ok()) {
                self.removed.entry((node, peer)).or_insert(ms);
            }
        } else if text.starts_with("Registration failed") {
            self.registration_failures += 1;
        } else if text.starts_with("Removed from the Peer List") {
            self.rejoins += 1;
        } else if text.starts_with("Neighbor suspicion triggered") {
            self.suspicions += 1;
        }
    }
}

/// One run's figures.
struct Row {
    peers: usize,
    seeds: usize,
    spawn_s: f64,
    boot: Vec<f64>,
    cpu_quiet: f64,
    cpu_gossip: f64,
    pss_peer: Vec<f64>,
    rss_peer: Vec<f64>,
    pss_seed: Vec<f64>,
    rss_seed: Vec<f64>,
    delivered: f64,
    gossips: usize,
    latency: Vec<f64>,
    removal: Vec<f64>,
    same_list: bool,
    false_removals: usize,
    registration_failures: u64,
    suspicions: u64,
    max_fds_seed: usize,
    max_fds_peer: usize,
    seed_cpu_per_peer_ms: f64,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn cpu_of(nodes: &Nodes) -> f64 {
    nodes
        .procs
        .iter()
        .filter_map(|(_, _, c)| cpu_secs(c.id()))
        .sum()
}

fn run_one(cli: &Cli, bins: &(PathBuf, PathBuf), n: usize) -> Result<Row, String> {
    let dir = std::env::temp_dir().join(format!("gossip-scale-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut nodes = Nodes {
        dir: dir.clone(),
        keep: cli.keep,
        procs: Vec::new(),
    };
    let config = dir.join("config.txt");
    let output = dir.join("outputfile.txt");
    let stderr = File::create(dir.join("stderr.txt")).map_err(|e| e.to_string())?;
    let seeds: Vec<SocketAddr> = (0..cli.seeds)
        .map(|_| free_addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .collect::<Result<_, _>>()?;
    std::fs::write(&config, gossip_core::config::seeds_text(&seeds)).map_err(|e| e.to_string())?;
    // Every gossip after every peer bootstrapped: the first gossiper's interval exceeds the
    // bootstrap's spread, and each next one waits `gossip_spacing_ms` more.
    let gossip_interval_ms = 20_000 + 20 * n as u64;
    let gossipers = cli.gossipers.min(n);
    let mut flags: Vec<String> = vec!["--quiet".into()];
    flags.extend(cli.extra.iter().cloned());
    let spawn = |bin: &Path, addr: SocketAddr, gossip: Option<usize>| -> Result<Child, String> {
        let err = stderr.try_clone().map_err(|e| e.to_string())?;
        let (count, interval) = match gossip {
            Some(g) => (1, gossip_interval_ms + g as u64 * cli.gossip_spacing_ms),
            None => (0, gossip_interval_ms),
        };
        Command::new(bin)
            .args(gossip_bins::node_args(addr, &config, &output))
            .args(&flags)
            .args(["--max-gossip", &count.to_string()])
            .args(["--gossip-interval-ms", &interval.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))
    };
    for s in &seeds {
        let c = spawn(&bins.0, *s, None)?;
        nodes.procs.push((*s, true, c));
    }
    for s in &seeds {
        let up = wait(Duration::from_secs(10), || {
            gossip_bins::query_status(*s, Duration::from_millis(500)).is_ok()
        });
        if !up {
            return Err(format!("seed {s} did not come up"));
        }
    }
    let peers: Vec<SocketAddr> = (0..n)
        .map(|i| free_addr(peer_ip(i)))
        .collect::<Result<_, _>>()?;
    let seed_cpu = |nodes: &Nodes| -> f64 {
        (nodes.procs.iter())
            .filter(|(_, seed, _)| *seed)
            .filter_map(|(_, _, c)| cpu_secs(c.id()))
            .sum()
    };
    let seed_cpu_before = seed_cpu(&nodes);
    let mut spawned_at = HashMap::new();
    let t_spawn = Instant::now();
    // Gossipers spread over the list (peers start in list order).
    let gossiper = |i: usize| (i * gossipers % n.max(1) < gossipers).then(|| i * gossipers / n);
    for (i, p) in peers.iter().enumerate() {
        spawned_at.insert(*p, unix_ms());
        let c = spawn(&bins.1, *p, gossiper(i))?;
        nodes.procs.push((*p, false, c));
    }
    let spawn_s = t_spawn.elapsed().as_secs_f64();
    eprintln!("  {n} peers spawned in {spawn_s:.2} s");
    let mut log = Log::default();
    let limit = Instant::now() + Duration::from_secs(cli.bootstrap_limit_secs);
    let mut max_fds_seed = 0;
    let mut max_fds_peer = 0;
    let sample_fds = |nodes: &Nodes, seeds_only: bool, s: &mut usize, p: &mut usize| {
        for (_, seed, c) in &nodes.procs {
            if *seed {
                *s = (*s).max(fds(c.id()));
            } else if !seeds_only {
                *p = (*p).max(fds(c.id()));
            }
        }
    };
    loop {
        sample_fds(&nodes, true, &mut max_fds_seed, &mut max_fds_peer);
        log.read(&output);
        let booted = peers.iter().filter(|p| log.boot.contains_key(p)).count();
        if booted == n {
            break;
        }
        if Instant::now() > limit {
            return Err(format!(
                "only {booted} of {n} peers bootstrapped within {} s ({} registration failures logged; see {})",
                cli.bootstrap_limit_secs,
                log.registration_failures,
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seed_cpu_per_peer_ms = (seed_cpu(&nodes) - seed_cpu_before) * 1000.0 / n as f64;
    let boot: Vec<f64> = peers
        .iter()
        .map(|p| log.boot[p].saturating_sub(spawned_at[p]) as f64)
        .collect();
    let all_booted = peers.iter().map(|p| log.boot[p]).max().unwrap_or(0);
    let first_gossip = peers.iter().map(|p| log.boot[p]).min().unwrap_or(0) + gossip_interval_ms;
    eprintln!(
        "  every peer bootstrapped {:.2} s after the first spawn; first gossip due in {:.1} s",
        (all_booted - spawned_at.values().min().copied().unwrap_or(0)) as f64 / 1000.0,
        first_gossip.saturating_sub(unix_ms()) as f64 / 1000.0
    );
    // Quiet window: no gossip yet, every peer probing, refreshing; seeds syncing.
    std::thread::sleep(Duration::from_secs(1));
    sample_fds(&nodes, false, &mut max_fds_seed, &mut max_fds_peer);
    let (c0, t0) = (cpu_of(&nodes), Instant::now());
    std::thread::sleep(Duration::from_secs(cli.quiet_secs));
    let cpu_quiet = (cpu_of(&nodes) - c0) / (nodes.procs.len() as f64 * t0.elapsed().as_secs_f64());
    if unix_ms() > first_gossip {
        eprintln!("  (the quiet window ran into the first gossip)");
    }
    // Gossip window: from just before the first gossip to the last delivery.
    let last_gossip = peers.iter().map(|p| log.boot[p]).max().unwrap_or(0)
        + gossip_interval_ms
        + gossipers as u64 * cli.gossip_spacing_ms;
    while unix_ms() + 500 < first_gossip {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (c1, t1) = (cpu_of(&nodes), Instant::now());
    let mut quiet_since = Instant::now();
    let mut seen = 0;
    loop {
        log.read(&output);
        if log.lines != seen {
            seen = log.lines;
            quiet_since = Instant::now();
        }
        let done = unix_ms() > last_gossip + 1000 && quiet_since.elapsed() > Duration::from_secs(2);
        if done || unix_ms() > last_gossip + 60_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu_gossip =
        (cpu_of(&nodes) - c1) / (nodes.procs.len() as f64 * t1.elapsed().as_secs_f64());
    // Memory after the gossip.
    let mut pss_peer = Vec::new();
    let mut rss_peer = Vec::new();
    let mut pss_seed = Vec::new();
    let mut rss_seed = Vec::new();
    sample_fds(&nodes, false, &mut max_fds_seed, &mut max_fds_peer);
    for (_, seed, c) in &nodes.procs {
        if let Some((pss, rss)) = memory_kb(c.id()) {
            let (p, r) = if *seed {
                (&mut pss_seed, &mut rss_seed)
            } else {
                (&mut pss_peer, &mut rss_peer)
            };
            p.push(pss as f64 / 1024.0);
            r.push(rss as f64 / 1024.0);
        }
    }
    // Delivery of the gossip made after every peer bootstrapped.
    let after: Vec<String> = log
        .made
        .iter()
        .filter(|(_, (_, at))| *at > all_booted)
        .map(|(g, _)| g.clone())
        .collect();
    let receipts: usize = after
        .iter()
        .map(|g| log.got.get(g).map_or(0, Vec::len))
        .sum();
    let owed = after.len() * (n - 1);
    let delivered = receipts as f64 / owed.max(1) as f64;
    let latency: Vec<f64> = after
        .iter()
        .flat_map(|g| log.got.get(g).into_iter().flatten())
        .map(|l| *l as f64)
        .collect();
    // Removal: kill -9 of a few peers, spread over the list.
    let victims: Vec<SocketAddr> = (0..cli.kills.min(n))
        .map(|k| peers[(k * n / cli.kills.max(1) + n / 7) % n])
        .collect();
    let mut killed_at = HashMap::new();
    for v in &victims {
        if let Some((_, _, c)) = nodes.procs.iter_mut().find(|(a, _, _)| a == v) {
            let _ = c.kill();
            killed_at.insert(*v, unix_ms());
            let _ = c.wait();
        }
    }
    let limit = Instant::now() + Duration::from_secs(60);
    loop {
        log.read(&output);
        let all = victims
            .iter()
            .all(|v| seeds.iter().all(|s| log.removed.contains_key(&(*s, *v))));
        if all || Instant::now() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let removal: Vec<f64> = victims
        .iter()
        .map(|v| {
            let at = seeds
                .iter()
                .map(|s| log.removed.get(&(*s, *v)).copied())
                .collect::<Option<Vec<u64>>>();
            at.map_or(f64::INFINITY, |t| {
                t.into_iter()
                    .max()
                    .unwrap_or(0)
                    .saturating_sub(killed_at[v]) as f64
            })
        })
        .collect();
    // Agreement: every seed's Peer List, after anti-entropy had a few rounds.
    let mut same_list = false;
    let agree_limit = Instant::now() + Duration::from_secs(20);
    while Instant::now() < agree_limit {
        let lists: Vec<Option<Vec<(SocketAddr, u64, Status)>>> = seeds
            .iter()
            .map(|s| {
                let (st, _) = gossip_bins::query_status(*s, Duration::from_secs(5)).ok()?;
                match st.role {
                    RoleStatus::Seed(ss) => Some(
                        ss.entries
                            .iter()
                            .map(|e| (e.peer, e.incarnation, e.status))
                            .collect(),
                    ),
                    RoleStatus::Peer(_) => None,
                }
            })
            .collect();
        if lists.iter().all(Option::is_some) && lists.windows(2).all(|w| w[0] == w[1]) {
            same_list = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    log.read(&output);
    let false_removals = log
        .removed
        .keys()
        .filter(|(_, p)| !victims.contains(p))
        .map(|(_, p)| *p)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let panics = std::fs::read_to_string(dir.join("stderr.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("panicked"))
        .count();
    if panics > 0 {
        return Err(format!("{panics} node panics; see {}", dir.display()));
    }
    Ok(Row {
        peers: n,
        seeds: cli.seeds,
        spawn_s,
        boot: sorted(boot),
        cpu_quiet,
        cpu_gossip,
        pss_peer: sorted(pss_peer),
        rss_peer: sorted(rss_peer),
        pss_seed: sorted(pss_seed),
        rss_seed: sorted(rss_seed),
        delivered,
        gossips: after.len(),
        latency: sorted(latency),
        removal: sorted(removal),
        same_list,
        false_removals,
        registration_failures: log.registration_failures,
        suspicions: log.suspicions,
        max_fds_seed,
        max_fds_peer,
        seed_cpu_per_peer_ms,
    })
}

fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn bins() -> Result<(PathBuf, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no executable directory")?;
    let (s, p) = (dir.join("seed"), dir.join("peer"));
    for b in [&s, &p] {
        if !b.exists() {
            return Err(format!(
                "{} not found: build with `cargo build --release -p gossip-bins`",
                b.display()
            ));
        }
    }
    Ok((s, p))
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| peers | seeds | bootstrap p50 / p99 / max | CPU ms per node-second, quiet / gossip | peer PSS (RSS), median / max | seed PSS (RSS), max | delivered (gossips) | receipt p50 / p99 | kill -9 → removed at every seed | same list | live peers removed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let pct = |v: &[f64], p: f64| percentile(v, p);
        let max = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {:.0} / {:.0} / {:.0} ms | {:.3} / {:.3} | {:.2} ({:.2}) / {:.2} ({:.2}) MB | {:.2} ({:.2}) MB | {:.4} ({}) | {:.0} / {:.0} ms | {} ms | {} | {} |",
            r.peers,
            r.seeds,
            pct(&r.boot, 0.5),
            pct(&r.boot, 0.99),
            max(&r.boot),
            r.cpu_quiet * 1000.0,
            r.cpu_gossip * 1000.0,
            pct(&r.pss_peer, 0.5),
            pct(&r.rss_peer, 0.5),
            max(&r.pss_peer),
            max(&r.rss_peer),
            max(&r.pss_seed),
            max(&r.rss_seed),
            r.delivered,
            r.gossips,
            pct(&r.latency, 0.5),
            pct(&r.latency, 0.99),
            r.removal
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            if r.same_list { "yes" } else { "NO" },
            r.false_removals,
        );
    }
    println!();
    for r in rows {
        println!(
            "N={}: spawned in {:.2} s; seed CPU during the bootstrap {:.2} ms per peer admitted (all seeds); {} registration failures, {} suspicions logged; open files at most {} in a seed, {} in a peer",
            r.peers,
            r.spawn_s,
            r.seed_cpu_per_peer_ms,
            r.registration_failures,
            r.suspicions,
            r.max_fds_seed,
            r.max_fds_peer
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bins = match bins() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench_scale: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for &n in &cli.peers {
        for run in 0..cli.runs.max(1) {
            eprintln!(
                "N = {n} (run {run}): {} seeds and {n} peer processes",
                cli.seeds
            );
            match run_one(&cli, &bins, n) {
                Ok(r) => rows.push(r),
                Err(e) => {
                    eprintln!("bench_scale: N = {n}: {e}");
                    failed = true;
                }
            }
        }
    }
    print_table(&rows);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
