//! `cluster`: the one-command local demo. Starts the seeds of the config and K peers on
//! localhost as child processes, shows bootstrap and gossip, kills one peer with SIGKILL,
//! shows its detection, the peer-level verdict and the seed-quorum removal, prints a summary
//! and leaves no process behind.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use gossip_bins::NodeArgs;
use gossip_core::msg::{Endpoint, RoleStatus, Status, StatusResp};
use gossip_core::wire::auth::Keyring;
use gossip_driver_mio::Role;

/// Runs a local demo cluster: the seeds of the config plus K peers, then kills one peer and
/// shows the network detect it and remove it by quorum.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    node: Option<NodeCmd>,
    /// Seed list; its seeds are started on this machine.
    #[arg(long, default_value = "config.txt")]
    config: PathBuf,
    /// Peers to start.
    #[arg(long, default_value_t = 6)]
    peers: usize,
    /// Start the seeds on ports BASE, BASE+1, ... instead of the config's (a copy of the
    /// config with those ports is written to the temp directory).
    #[arg(long)]
    base_port: Option<u16>,
    /// Shared log file of all nodes (truncated at start unless --append).
    #[arg(long, default_value = "outputfile.txt")]
    output: PathBuf,
    /// Append to the output file instead of truncating it.
    #[arg(long)]
    append: bool,
    /// Gossip messages per peer.
    #[arg(long, default_value_t = 3)]
    max_gossip: u32,
    /// Show every line the nodes log (votes, duplicates, ...), not just the checklist.
    #[arg(long)]
    verbose: bool,
    /// Cluster key file (one hex key per line, mode 600) given to every node, and used for
    /// the demo's own status queries.
    #[arg(long, value_name = "PATH")]
    cluster_key_file: Option<PathBuf>,
}

/// The cluster runs its nodes by starting itself again in node mode, so `cargo run --bin
/// cluster` needs no other binary built.
#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Run a seed (as the `seed` program).
    #[command(hide = true)]
    Seed(NodeArgs),
    /// Run a peer (as the `peer` program).
    #[command(hide = true)]
    Peer(NodeArgs),
}

/// Timing of the demo: short, so it ends well within a minute.
const GOSSIP_INTERVAL_MS: u64 = 1_000;
const PROBE_INTERVAL_MS: u64 = 500;
const PROBE_TIMEOUT_MS: u64 = 300;
const PROBE_MISSES: u32 = 3;

struct NodeProc {
    name: String,
    role: Role,
    addr: SocketAddr,
    child: Child,
}

/// Kills every child it holds when dropped: on success, on error and on panic.
struct Children(Vec<NodeProc>);

impl Drop for Children {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

struct Line {
    node: usize,
    text: String,
    at: Instant,
}

fn pump_stdout(node: usize, child: &mut Child, tx: &Sender<Line>) {
    let Some(out) = child.stdout.take() else {
        return;
    };
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(text) = line else { break };
            if tx
                .send(Line {
                    node,
                    text,
                    at: Instant::now(),
                })
                .is_err()
            {
                break;
            }
        }
    });
}

/// The line without its trailing `[role ip:port t=...]` tag.
fn strip_tag(text: &str) -> &str {
    match text.rfind(" [") {
        Some(i) if text.ends_with(']') => &text[..i],
        _ => text,
    }
}

fn shown(text: &str, verbose: bool) -> bool {
    const PHRASES: [&str; 9] = [
        "Registration quorum achieved",
        "Bootstrap complete",
        "Generated gossip",
        "First-time gossip received",
        "Neighbor suspicion triggered",
        "Peer-level suspicion result",
        "Dead Node:",
        "Dead-node consensus",
        "Neighbor dropped",
    ];
    verbose || PHRASES.iter().any(|p| text.starts_with(p))
}

struct Demo {
    cli: Cli,
    exe: PathBuf,
    config: PathBuf,
    start: Instant,
    rx: Receiver<Line>,
    tx: Sender<Line>,
    procs: Children,
    keyring: Option<Keyring>,
    counts: BTreeMap<&'static str, u64>,
    first_seen: BTreeMap<&'static str, Instant>,
}

impl Demo {
    fn elapsed(&self, at: Instant) -> f64 {
        at.duration_since(self.start).as_secs_f64()
    }

    fn spawn(&mut self, role: Role, addr: SocketAddr, name: String) -> Result<(), String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(role.to_string())
            .args(gossip_bins::node_args(addr, &self.config, &self.cli.output))
            .arg("--exit-with-parent")
            .arg(std::process::id().to_string())
            .args(["--gossip-interval-ms", &GOSSIP_INTERVAL_MS.to_string()])
            .args(["--max-gossip", &self.cli.max_gossip.to_string()])
            .args(["--probe-interval-ms", &PROBE_INTERVAL_MS.to_string()])
            .args(["--probe-timeout-ms", &PROBE_TIMEOUT_MS.to_string()])
            .args(["--probe-misses", &PROBE_MISSES.to_string()])
            .args(["--suspect-timeout-ms", "800"])
            .args(["--anti-entropy-interval-ms", "1000"])
            .args(["--peer-list-refresh-ms", "3000"])
            .args(
                self.cli
                    .cluster_key_file
                    .iter()
                    .flat_map(|p| [std::ffi::OsStr::new("--cluster-key-file"), p.as_os_str()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let idx = self.procs.0.len();
        pump_stdout(idx, &mut child, &self.tx);
        self.procs.0.push(NodeProc {
            name,
            role,
            addr,
            child,
        });
        Ok(())
    }

    /// Prints the lines logged so far (the checklist subset) and counts them.
    fn drain_lines(&mut self, wait: Duration) {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Ok(line) = self.rx.recv_timeout(left) else {
                return;
            };
            let text = strip_tag(&line.text);
            for key in [
                "Registration quorum achieved",
                "Bootstrap complete",
                "Generated gossip",
                "First-time gossip received",
                "Duplicate gossip ignored",
                "Neighbor suspicion triggered",
                "Peer-level suspicion result",
                "Dead Node:",
                "Dead-node consensus COMMIT",
                "Dead-node consensus ABORT",
            ] {
                if text.starts_with(key) {
                    *self.counts.entry(key).or_default() += 1;
                    self.first_seen.entry(key).or_insert(line.at);
                }
            }
            if shown(text, self.cli.verbose) {
                let who = self
                    .procs
                    .0
                    .get(line.node)
                    .map(|p| format!("{:<6} {:<16}", p.name, p.addr.to_string()))
                    .unwrap_or_default();
                println!("{:>7.3}s {who} | {text}", self.elapsed(line.at));
            }
        }
    }

    fn status(&self, addr: SocketAddr) -> Option<StatusResp> {
        gossip_bins::query_status_with(addr, Duration::from_millis(500), self.keyring.as_ref())
            .ok()
            .map(|(s, _)| s)
    }

    /// Waits (printing lines) until `done` holds or `limit` passes.
    fn wait_until(&mut self, limit: Duration, mut done: impl FnMut(&Demo) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if done(self) {
                return true;
            }
            self.drain_lines(Duration::from_millis(200));
        }
        done(self)
    }

    fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        self.procs
            .0
            .iter()
            .filter(|p| p.role == role)
            .map(|p| p.addr)
            .collect()
    }
}

fn port_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// A free port on `ip` (bound, then released for the child to take).
fn free_port(ip: IpAddr) -> Option<u16> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .ok()
        .map(|a| a.port())
}

fn entry_status(status: &StatusResp, peer: Endpoint) -> Option<Status> {
    match &status.role {
        RoleStatus::Seed(s) => s.entries.iter().find(|e| e.peer == peer).map(|e| e.status),
        RoleStatus::Peer(_) => None,
    }
}

fn counter(status: &StatusResp, name: &str) -> u64 {
    status
        .counters
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| *v)
}

fn run(cli: Cli) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    // Checked here, so a bad key file is one clear error rather than every child's.
    let keyring = match &cli.cluster_key_file {
        Some(path) => Some(gossip_bins::load_keyring(path)?),
        None => None,
    };
    let mut seeds = gossip_bins::load_seeds(&cli.config)?;
    let mut config = cli.config.clone();
    if let Some(base) = cli.base_port {
        for (i, s) in seeds.iter_mut().enumerate() {
            let port = u16::try_from(usize::from(base) + i)
                .map_err(|_| format!("--base-port {base} leaves no room for the seeds"))?;
            s.set_port(port);
        }
        let dir = std::env::temp_dir().join(format!("gossip-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        config = dir.join("config.txt");
        std::fs::write(&config, gossip_core::config::seeds_text(&seeds))
            .map_err(|e| format!("{}: {e}", config.display()))?;
    }
    for s in &seeds {
        if !port_free(*s) {
            return Err(format!(
                "seed address {s} is in use (another cluster or node running?); \
                 stop it, or pick other ports with --base-port"
            ));
        }
    }
    if !cli.append {
        std::fs::write(&cli.output, b"")
            .map_err(|e| format!("cannot truncate {}: {e}", cli.output.display()))?;
    }
    let (tx, rx) = mpsc::channel();
    let mut demo = Demo {
        cli,
        exe,
        config,
        start: Instant::now(),
        rx,
        tx,
        procs: Children(Vec::new()),
        keyring,
        counts: BTreeMap::new(),
        first_seen: BTreeMap::new(),
    };

    println!(
        "== starting {} seeds and {} peers (log: {}{})",
        seeds.len(),
        demo.cli.peers,
        demo.cli.output.display(),
        demo.keyring.as_ref().map_or(String::new(), |r| format!(
            "; cluster key {}",
            r.key_ids().first().map_or("", String::as_str)
        ))
    );
    for (i, s) in seeds.iter().enumerate() {
        demo.spawn(Role::Seed, *s, format!("seed{}", i + 1))?;
    }
    let seed_addrs = seeds.clone();
    if !demo.wait_until(Duration::from_secs(5), |d| {
        seed_addrs.iter().all(|s| d.status(*s).is_some())
    }) {
        return Err("the seeds did not come up within 5 s".into());
    }

    // Each peer on its own loopback address, so gossip texts show distinct IPs. Systems
    // that only route 127.0.0.1 (macOS) get distinct ports on 127.0.0.1 instead.
    let own_ips = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).is_ok();
    for i in 0..demo.cli.peers {
        let ip = if own_ips {
            let host = u8::try_from(i + 2).map_err(|_| "at most 250 peers".to_string())?;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host))
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let port = free_port(ip).ok_or_else(|| format!("no free port on {ip}"))?;
        demo.spawn(
            Role::Peer,
            SocketAddr::new(ip, port),
            format!("peer{}", i + 1),
        )?;
        demo.drain_lines(Duration::from_millis(100));
    }
    let peers = demo.addrs(Role::Peer);
    let all_up = demo.wait_until(Duration::from_secs(15), |d| {
        peers.iter().all(|p| {
            d.status(*p).is_some_and(|s| match &s.role {
                RoleStatus::Peer(ps) => ps.registered && !ps.neighbours.is_empty(),
                RoleStatus::Seed(_) => false,
            })
        })
    });
    if !all_up {
        return Err("not every peer bootstrapped within 15 s".into());
    }
    println!("== every peer registered and has neighbours; gossip spreading");
    let max = u64::from(demo.cli.max_gossip);
    let spread_limit = Duration::from_millis(GOSSIP_INTERVAL_MS * (max + 3));
    demo.wait_until(spread_limit, |d| {
        peers.iter().all(|p| {
            d.status(*p)
                .is_some_and(|s| counter(&s, "gossip_generated") >= max)
        })
    });
    demo.drain_lines(Duration::from_millis(500));

    let victim_idx = demo
        .procs
        .0
        .iter()
        .position(|p| p.role == Role::Peer && p.addr == peers[peers.len() / 2])
        .ok_or("no peer to kill")?;
    let (victim, victim_name) = {
        let p = &mut demo.procs.0[victim_idx];
        let pid = p.child.id();
        p.child
            .kill()
            .map_err(|e| format!("cannot kill {}: {e}", p.name))?;
        let _ = p.child.wait();
        println!(
            "== killed {} ({}, pid {pid}) with SIGKILL; bound for removal: {} misses x {} ms probes + suspicion",
            p.name, p.addr, PROBE_MISSES, PROBE_INTERVAL_MS
        );
        (p.addr, p.name.clone())
    };
    let killed_at = Instant::now();
    let mut removed_at: BTreeMap<SocketAddr, f64> = BTreeMap::new();
    let removed = demo.wait_until(Duration::from_secs(20), |d| {
        for s in &seed_addrs {
            if removed_at.contains_key(s) {
                continue;
            }
            if let Some(st) = d.status(*s) {
                if entry_status(&st, victim) != Some(Status::Alive) {
                    removed_at.insert(*s, killed_at.elapsed().as_secs_f64());
                }
            }
        }
        removed_at.len() == seed_addrs.len()
    });
    demo.drain_lines(Duration::from_millis(300));

    // Summary, from the seeds' and peers' own status.
    let live: Vec<SocketAddr> = peers.iter().copied().filter(|p| *p != victim).collect();
    let mut wrongly_removed = Vec::new();
    for s in &seed_addrs {
        if let Some(st) = demo.status(*s) {
            for p in &live {
                if entry_status(&st, *p) != Some(Status::Alive) {
                    wrongly_removed.push(format!("{p} at {s}"));
                }
            }
        }
    }
    let (mut generated, mut first, mut dup) = (0, 0, 0);
    for p in &live {
        if let Some(st) = demo.status(*p) {
            generated += counter(&st, "gossip_generated");
            first += counter(&st, "gossip_first");
            dup += counter(&st, "gossip_duplicate");
        }
    }
    println!("== summary");
    println!(
        "  peers: {} started, all registered with a seed quorum and bootstrapped",
        peers.len()
    );
    println!(
        "  gossip (live peers): {generated} generated, {first} first-time deliveries, {dup} duplicates ignored"
    );
    let since_kill = |key: &str| {
        demo.first_seen
            .get(key)
            .filter(|at| **at >= killed_at)
            .map_or("-".to_string(), |at| {
                format!("{:.2} s", at.duration_since(killed_at).as_secs_f64())
            })
    };
    println!(
        "  {victim_name} ({victim}) killed: suspicion after {}, peer-level verdict after {}, DEAD_REPORT after {}",
        since_kill("Neighbor suspicion triggered"),
        since_kill("Peer-level suspicion result"),
        since_kill("Dead Node:")
    );
    for s in &seed_addrs {
        match removed_at.get(s) {
            Some(t) => println!("  removed from {s}'s Peer List after {t:.2} s"),
            None => println!("  STILL listed alive at {s}"),
        }
    }
    if wrongly_removed.is_empty() {
        println!("  no live peer was removed");
    } else {
        println!("  live peers removed: {}", wrongly_removed.join(", "));
    }
    println!("  full log: {}", demo.cli.output.display());
    if !removed || !wrongly_removed.is_empty() {
        return Err("the demo did not end as expected (see above)".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.node {
        Some(NodeCmd::Seed(args)) => gossip_bins::node_main(Role::Seed, args),
        Some(NodeCmd::Peer(args)) => gossip_bins::node_main(Role::Peer, args),
        None => match run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cluster: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
