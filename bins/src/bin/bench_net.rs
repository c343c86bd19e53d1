//! `bench_net`: speed and memory of the real network, printed as numbers (medians of
//! several runs). Build first: `cargo build --release -p gossip-bins`, then run
//! `target/release/bench_net` (it starts the `seed` and `peer` programs next to itself).
//!
//! * bootstrap: 3 seeds and N peer processes started at once; per peer, the time from its
//!   spawn to its `Bootstrap complete` line (registered, Peer Lists fetched, neighbours
//!   greeted);
//! * memory: VmRSS and VmHWM of every node process after bootstrap and some gossip;
//! * removal: `kill -9` of a peer → time until every seed lists it removed, against the bound
//!   misses x probe interval + 200 ms, at default timings and with 500 ms probes;
//! * throughput: 3 seeds and 100 peers hosted by one process (one mio loop); gossip
//!   messages delivered per second (every `GOSSIP_MSG` a peer received and processed).
//!
//! With `--cluster-key-file PATH` every node (and every status query) uses that cluster key,
//! so the same runs measure its cost.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use gossip_core::config::GossipMode;
use gossip_core::msg::{RoleStatus, Status};
use gossip_core::wire::auth::Keyring;
use gossip_core::{config, Event, Millis, Settings};
use gossip_driver_mio::{Host, Limits, NodeSpec, Observer, Role};

/// Measures bootstrap latency, memory per node, removal time and gossip throughput.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Which measurements: bootstrap (includes memory), removal, throughput, or all.
    #[arg(long, default_value = "all")]
    only: String,
    /// Peers started for the bootstrap and memory runs.
    #[arg(long, default_value_t = 20)]
    peers: usize,
    /// Peers hosted in one process for the throughput runs.
    #[arg(long, default_value_t = 100)]
    hosted_peers: usize,
    /// Gossip messages each hosted peer generates in a throughput run.
    #[arg(long, default_value_t = 40)]
    gossip_per_peer: u32,
    /// Cluster key file (one hex key per line, mode 600): every node seals and verifies
    /// every frame.
    #[arg(long, value_name = "PATH")]
    cluster_key_file: Option<PathBuf>,
    /// How the throughput runs' peers pass gossip on: `flood` or `lazy`.
    #[arg(long, default_value_t = GossipMode::Flood)]
    gossip_mode: GossipMode,
}

/// The cluster key of a run: the file the node programs get, and its keyring.
struct Key {
    file: PathBuf,
    ring: Keyring,
}

/// The node flags that give a node the key.
fn key_flags(key: Option<&Key>) -> Vec<String> {
    key.map_or_else(Vec::new, |k| {
        vec![
            "--cluster-key-file".to_string(),
            k.file.display().to_string(),
        ]
    })
}

fn status_of(
    addr: SocketAddr,
    key: Option<&Key>,
) -> Result<(gossip_core::msg::StatusResp, String), String> {
    gossip_bins::query_status_with(addr, Duration::from_millis(200), key.map(|k| &k.ring))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn free_addr(ip: IpAddr) -> Result<SocketAddr, String> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on {ip}: {e}"))
}

/// Node processes of one run; killed by PID when dropped.
struct Procs {
    dir: PathBuf,
    children: Vec<(SocketAddr, Child)>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Bins {
    seed: PathBuf,
    peer: PathBuf,
}

fn bins() -> Result<Bins, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no executable directory")?;
    let b = Bins {
        seed: dir.join("seed"),
        peer: dir.join("peer"),
    };
    for p in [&b.seed, &b.peer] {
        if !p.exists() {
            return Err(format!(
                "{} not found: build with `cargo build --release -p gossip-bins`",
                p.display()
            ));
        }
    }
    Ok(b)
}

fn start_seeds(
    bins: &Bins,
    tag: &str,
    flags: &[String],
    key: Option<&Key>,
) -> Result<(Procs, Vec<SocketAddr>), String> {
    let dir = std::env::temp_dir().join(format!("gossip-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let seeds: Vec<SocketAddr> = (0..3)
        .map(|_| free_addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .collect::<Result<_, _>>()?;
    std::fs::write(dir.join("config.txt"), config::seeds_text(&seeds))
        .map_err(|e| e.to_string())?;
    let mut procs = Procs {
        dir,
        children: Vec::new(),
    };
    for s in &seeds {
        let child = node_cmd(&bins.seed, &procs.dir, *s, flags)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        procs.children.push((*s, child));
    }
    for s in &seeds {
        let up = wait_for(Duration::from_secs(5), || status_of(*s, key).is_ok());
        if !up {
            return Err(format!("seed {s} did not come up"));
        }
    }
    Ok((procs, seeds))
}

fn node_cmd(bin: &Path, dir: &Path, addr: SocketAddr, flags: &[String]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(gossip_bins::node_args(
        addr,
        &dir.join("config.txt"),
        &dir.join("outputfile.txt"),
    ))
    .args(flags)
    .stdin(Stdio::null())
    .stderr(Stdio::inherit());
    cmd
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// (VmRSS, VmHWM) of a process, in kB.
type MemoryKb = (u64, u64);

/// (VmRSS, VmHWM) of a process, in kB.
fn memory_kb(pid: u32) -> Option<MemoryKb> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// One bootstrap run: per-peer spawn-to-bootstrap times (ms) and node memory (kB).
fn bootstrap_run(
    bins: &Bins,
    peers: usize,
    run: usize,
    key: Option<&Key>,
) -> Result<(Vec<f64>, Vec<MemoryKb>), String> {
    let mut flags: Vec<String> = ["--gossip-interval-ms", "200", "--max-gossip", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    flags.extend(key_flags(key));
    let (mut procs, _) = start_seeds(bins, &format!("boot{run}"), &flags, key)?;
    let (tx, rx) = mpsc::channel();
    let mut started = Vec::new();
    for i in 0..peers {
        let host = u8::try_from(10 + i).map_err(|_| "too many peers")?;
        let addr = free_addr(IpAddr::V4(Ipv4Addr::new(127, 0, 1, host)))?;
        let at = Instant::now();
        let mut child = node_cmd(&bins.peer, &procs.dir, addr, &flags)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("Bootstrap complete") {
                        let _ = tx.send((i, Instant::now()));
                    }
                }
            });
        }
        started.push(at);
        procs.children.push((addr, child));
    }
    let mut times = vec![None; peers];
    let end = Instant::now() + Duration::from_secs(10);
    while times.iter().any(Option::is_none) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, at)) => {
                if let (Some(slot), Some(t0)) = (times.get_mut(i), started.get(i)) {
                    slot.get_or_insert(at.duration_since(*t0).as_secs_f64() * 1000.0);
                }
            }
            Err(_) => return Err("not every peer bootstrapped within 10 s".into()),
        }
    }
    // Let gossip flow a little before reading memory.
    std::thread::sleep(Duration::from_millis(1000));
    let mem = procs
        .children
        .iter()
        .filter_map(|(_, c)| memory_kb(c.id()))
        .collect();
    Ok((times.into_iter().flatten().collect(), mem))
}

/// One removal run: ms from `kill -9` to the peer being removed at every seed.
fn removal_run(bins: &Bins, probe_ms: u64, run: usize, key: Option<&Key>) -> Result<f64, String> {
    let mut flags: Vec<String> = [
        "--max-gossip",
        "0",
        "--probe-interval-ms",
        &probe_ms.to_string(),
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(key_flags(key));
    let (mut procs, seeds) = start_seeds(bins, &format!("kill{probe_ms}-{run}"), &flags, key)?;
    let mut peers = Vec::new();
    for i in 0..6u8 {
        let addr = free_addr(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 10 + i)))?;
        let child = node_cmd(&bins.peer, &procs.dir, addr, &flags)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        procs.children.push((addr, child));
        peers.push(addr);
    }
    let all_up = wait_for(Duration::from_secs(10), || {
        peers.iter().all(|p| {
            status_of(*p, key).is_ok_and(|(s, _)| {
                matches!(s.role, RoleStatus::Peer(ps) if ps.registered && !ps.neighbours.is_empty())
            })
        })
    });
    if !all_up {
        return Err("peers did not bootstrap".into());
    }
    // Steady state: several probe rounds done.
    std::thread::sleep(Duration::from_millis(3 * probe_ms));
    let victim = peers[3];
    let killed = {
        let (_, child) = procs
            .children
            .iter_mut()
            .find(|(a, _)| *a == victim)
            .ok_or("victim not found")?;
        child.kill().map_err(|e| e.to_string())?;
        let t = Instant::now();
        let _ = child.wait();
        t
    };
    let removed = |s: &SocketAddr| {
        status_of(*s, key).is_ok_and(|(st, _)| match st.role {
            RoleStatus::Seed(ss) => ss
                .entries
                .iter()
                .any(|e| e.peer == victim && e.status == Status::Removed),
            RoleStatus::Peer(_) => false,
        })
    };
    let mut pending: Vec<SocketAddr> = seeds.clone();
    let end = killed + Duration::from_secs(30);
    while !pending.is_empty() {
        if Instant::now() > end {
            return Err("kill not detected within 30 s".into());
        }
        pending.retain(|s| !removed(s));
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(killed.elapsed().as_secs_f64() * 1000.0)
}

/// Counts gossip events of a hosted cluster.
/// The measured window starts once every peer has bootstrapped (so every gossip can reach
/// every peer) and ends at the last delivery.
#[derive(Default)]
struct Counter {
    peers: usize,
    bootstrapped: usize,
    generated: u64,
    delivered: u64,
    first: u64,
    window_start: Option<Instant>,
    cpu_at_start: f64,
    in_window: u64,
    /// First-time deliveries in the window: what a mode that sends fewer duplicates
    /// (lazy push) is compared on.
    first_in_window: u64,
    last_delivered: Option<Instant>,
}

impl Counter {
    fn delivery(&mut self, first: bool) {
        self.delivered += 1;
        if self.window_start.is_some() {
            self.in_window += 1;
            self.first_in_window += u64::from(first);
            self.last_delivered = Some(Instant::now());
        }
    }
}

impl Observer for Counter {
    fn on_event(&mut self, _: Role, _: SocketAddr, _: u64, _: Millis, event: &Event) {
        match event {
            Event::BootstrapComplete { .. } => {
                self.bootstrapped += 1;
                if self.bootstrapped == self.peers {
                    self.window_start = Some(Instant::now());
                    self.cpu_at_start = cpu_seconds();
                }
            }
            Event::GossipGenerated { .. } => self.generated += 1,
            Event::GossipFirstReceived { .. } => {
                self.first += 1;
                self.delivery(true);
            }
            Event::GossipDuplicate { .. } => self.delivery(false),
            _ => {}
        }
    }
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat` (clock ticks
/// at the usual 100 Hz).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What one throughput run measured, over the window from "every peer bootstrapped" to the
/// last delivery.
struct Throughput {
    /// Deliveries (first-time and duplicate) per wall-clock second.
    rate: f64,
    /// Deliveries over the whole run, and the first-time ones.
    delivered: u64,
    first: u64,
    /// The window's length.
    secs: f64,
    /// Deliveries, and first-time deliveries, per CPU second.
    per_cpu: f64,
    first_per_cpu: f64,
    /// CPU seconds of the window.
    cpu: f64,
}

/// One throughput run.
fn throughput_run(
    peers: usize,
    per_peer: u32,
    run: usize,
    key: Option<&Key>,
    gossip_mode: GossipMode,
) -> Result<Throughput, String> {
    let counter = Counter {
        peers,
        ..Counter::default()
    };
    let mut host = Host::new(Limits::default(), counter).map_err(|e| e.to_string())?;
    host.set_keyring(key.map(|k| k.ring.clone()));
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let seeds: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let settings = Settings {
        // Faster than the loop can deliver: the loop, not the timer, sets the pace.
        gossip_interval_ms: 25,
        max_gossip: per_peer,
        // Deliveries queue behind the burst; do not let them time out.
        request_timeout_ms: 30_000,
        seen_capacity: 1 << 20,
        // The data plane is measured here; liveness has its own runs (removal). An
        // overloaded loop answers probes late, which would start suspicions mid-run.
        probe_interval_ms: 60_000,
        gossip_mode,
        ..Settings::default()
    };
    for (i, l) in listeners.into_iter().enumerate() {
        let spec = NodeSpec {
            role: Role::Seed,
            seeds: seeds.clone(),
            settings: settings.clone(),
            rng_seed: (run * 1000 + i) as u64,
            advertise: None,
        };
        host.add_node_on(l, spec).map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    for i in 0..peers {
        let spec = NodeSpec {
            role: Role::Peer,
            seeds: seeds.clone(),
            settings: settings.clone(),
            rng_seed: (run * 1000 + 100 + i) as u64,
            advertise: None,
        };
        host.add_node("127.0.0.1:0".parse().map_err(|_| "addr")?, spec)
            .map_err(|e| e.to_string())?;
    }
    let total = peers as u64 * u64::from(per_peer);
    let limit = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut last_count = 0;
    host.run_until(|h| {
        let c = h.observer();
        if c.delivered != last_count {
            last_count = c.delivered;
            quiet_since = Instant::now();
        }
        let done = c.generated >= total && quiet_since.elapsed() > Duration::from_millis(500);
        done || Instant::now() > limit
    })
    .map_err(|e| e.to_string())?;
    let c = host.observer();
    if c.bootstrapped < peers {
        return Err(format!(
            "only {} of {peers} peers bootstrapped",
            c.bootstrapped
        ));
    }
    let (Some(a), Some(b)) = (c.window_start, c.last_delivered) else {
        return Err("no gossip delivered after bootstrap".into());
    };
    let secs = b.duration_since(a).as_secs_f64();
    let cpu = cpu_seconds() - c.cpu_at_start;
    log_stats(&host, t0);
    Ok(Throughput {
        rate: c.in_window as f64 / secs,
        delivered: c.delivered,
        first: c.first,
        secs,
        per_cpu: c.in_window as f64 / cpu.max(0.01),
        first_per_cpu: c.first_in_window as f64 / cpu.max(0.01),
        cpu,
    })
}

fn log_stats(host: &Host<Counter>, t0: Instant) {
    let s = host.stats();
    log::info!(
        "{:.1}s: requests_in={} replies_in={} failures={} accepted={} dialled={} writes={} auth_refused={}",
        t0.elapsed().as_secs_f64(),
        s.requests_in,
        s.replies_in,
        s.send_failures,
        s.accepted,
        s.dialled,
        s.writes,
        s.auth_refused
    );
}

fn run(cli: &Cli) -> Result<(), String> {
    let want = |what: &str| cli.only == "all" || cli.only == what;
    let key = match &cli.cluster_key_file {
        Some(file) => Some(Key {
            file: file.clone(),
            ring: gossip_bins::load_keyring(file)?,
        }),
        None => None,
    };
    let key = key.as_ref();
    if want("bootstrap") || want("removal") {
        let bins = bins()?;
        if want("bootstrap") {
            let mut medians = Vec::new();
            let mut worst_rss = 0;
            let mut worst_hwm = 0;
            for run in 0..cli.runs {
                let (mut times, mem) = bootstrap_run(&bins, cli.peers, run, key)?;
                let m = median(&mut times);
                let max = times.iter().copied().fold(0.0, f64::max);
                let rss = mem.iter().map(|m| m.0).max().unwrap_or(0);
                let hwm = mem.iter().map(|m| m.1).max().unwrap_or(0);
                worst_rss = worst_rss.max(rss);
                worst_hwm = worst_hwm.max(hwm);
                println!(
                    "bootstrap run {run}: {} peers, median {m:.1} ms, max {max:.1} ms from spawn; \
                     node memory max VmRSS {rss} kB, VmHWM {hwm} kB",
                    times.len()
                );
                medians.push(m);
            }
            println!(
                "BOOTSTRAP median of run medians: {:.1} ms (target <= 50 ms); MEMORY worst VmRSS {:.2} MB, VmHWM {:.2} MB (target <= 4 MB)",
                median(&mut medians),
                worst_rss as f64 / 1024.0,
                worst_hwm as f64 / 1024.0
            );
        }
        if want("removal") {
            let misses = u64::from(Settings::default().probe_misses);
            for probe in [Settings::default().probe_interval_ms, 500] {
                let bound = misses * probe + 200;
                let mut times = Vec::new();
                for run in 0..cli.runs {
                    let t = removal_run(&bins, probe, run, key)?;
                    println!("removal run {run} ({probe} ms probes): {t:.0} ms");
                    times.push(t);
                }
                let max = times.iter().copied().fold(0.0, f64::max);
                println!(
                    "REMOVAL at {probe} ms probes: median {:.0} ms, max {max:.0} ms (bound {misses} x {probe} + 200 = {bound} ms)",
                    median(&mut times)
                );
            }
        }
    }
    if want("throughput") {
        let mut rates = Vec::new();
        let mut per_cpu = Vec::new();
        let mut first_per_cpu = Vec::new();
        for run in 0..cli.runs {
            let Throughput {
                rate,
                delivered,
                first,
                secs,
                per_cpu: cpu_rate,
                first_per_cpu: first_rate,
                cpu,
            } = throughput_run(
                cli.hosted_peers,
                cli.gossip_per_peer,
                run,
                key,
                cli.gossip_mode,
            )?;
            println!(
                "throughput run {run}: {delivered} gossip messages delivered ({first} first-time); \
                 after all bootstrapped {rate:.0} msg/s over {secs:.2} s ({cpu_rate:.0} per CPU second, \
                 {first_rate:.0} first-time per CPU second, {cpu:.2} CPU s)"
            );
            rates.push(rate);
            per_cpu.push(cpu_rate);
            first_per_cpu.push(first_rate);
        }
        println!(
            "THROUGHPUT median: {:.0} delivered gossip msg/s wall clock, {:.0} per CPU second \
             ({:.0} first-time per CPU second), with {} peers in one process, gossip mode {}{} (target >= 250000)",
            median(&mut rates),
            median(&mut per_cpu),
            median(&mut first_per_cpu),
            cli.hosted_peers,
            cli.gossip_mode,
            if key.is_some() { ", cluster key on" } else { "" }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_net: error: {e}");
            ExitCode::FAILURE
        }
    }
}
