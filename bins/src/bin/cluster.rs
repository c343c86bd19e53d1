//! `cluster`: the one-command local demo. Starts the seeds of the config and K peers on
//! localhost as child processes, shows bootstrap and gossip, one application message
//! published through a peer's control socket and delivered everywhere, kills one peer with SIGKILL,
//! shows its detection, the peer-level verdict and the seed-quorum removal (and a late
//! duplicate report's ABORT), prints a summary with every phrase of the spec's checklist
//! counted, optionally writes the overlay as a Graphviz graph, and leaves no process behind.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use gossip_bins::overlay::Overlay;
use gossip_bins::NodeArgs;
use gossip_core::msg::{Endpoint, RoleStatus, Status, StatusResp};
use gossip_core::wire::auth::Keyring;
use gossip_core::Settings;
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
    /// At the end, write the live overlay (as `status --dot` draws it) to this file, in
    /// Graphviz DOT (`dot -Tsvg FILE > overlay.svg`).
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Keep the cluster running after it is up instead of the demo, until interrupted
    /// (Ctrl-C): every peer's control socket is `DIR/peerN.sock`, for `gossipctl`.
    #[arg(long, value_name = "DIR")]
    serve: Option<PathBuf>,
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
const SUSPECT_TIMEOUT_MS: u64 = 800;
const ANTI_ENTROPY_INTERVAL_MS: u64 = 1_000;
const PEER_LIST_REFRESH_MS: u64 = 3_000;

/// The key counting `Peer-level suspicion result` lines with `consensus=True`.
const CONSENSUS: &str = "consensus=True";

/// `Duplicate gossip ignored` lines shown per peer; the rest are counted.
const DUPLICATES_SHOWN: u64 = 2;

/// The phrases of the spec's validation checklist (and the seeds' admission line), counted
/// as the nodes log them; the summary says how often each was seen.
const CHECKLIST: [&str; 11] = [
    "Registration quorum achieved",
    "Bootstrap complete",
    "Registration consensus COMMIT",
    "Generated gossip",
    "First-time gossip received",
    "Duplicate gossip ignored",
    "Neighbor suspicion triggered",
    "Peer-level suspicion result",
    "Dead Node:",
    "Dead-node consensus COMMIT",
    "Dead-node consensus ABORT",
];

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

/// Lines shown as they come (without `--verbose`); `Duplicate gossip ignored` and
/// `Registration consensus COMMIT` are shown in part (see `Demo::shown`).
const SHOWN: [&str; 11] = [
    "Published application message",
    "Application message received",
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

/// The `<ip:port>` after `for ` in a line.
fn subject(text: &str) -> Option<&str> {
    let rest = &text[text.find(" for ")? + " for ".len()..];
    rest.split(' ').next()
}

struct Demo {
    cli: Cli,
    exe: PathBuf,
    config: PathBuf,
    /// Where the peers' control sockets are.
    sockets: PathBuf,
    start: Instant,
    rx: Receiver<Line>,
    tx: Sender<Line>,
    procs: Children,
    keyring: Option<Keyring>,
    counts: BTreeMap<&'static str, u64>,
    first_seen: BTreeMap<&'static str, Instant>,
    /// Lines per (node, phrase), for the phrases shown in part.
    per_node: BTreeMap<(usize, &'static str), u64>,
    /// The first peer whose admission a seed logged: its admission is shown at every seed.
    first_admitted: Option<String>,
    /// The node that logged the first `Dead Node:` report.
    detector: Option<usize>,
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
            .args(["--suspect-timeout-ms", &SUSPECT_TIMEOUT_MS.to_string()])
            .args([
                "--anti-entropy-interval-ms",
                &ANTI_ENTROPY_INTERVAL_MS.to_string(),
            ])
            .args(["--peer-list-refresh-ms", &PEER_LIST_REFRESH_MS.to_string()])
            .args(match role {
                Role::Peer => vec!["--control".into(), self.socket(&name).into_os_string()],
                Role::Seed => Vec::new(),
            })
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

    /// The control socket of the node called `name`.
    fn socket(&self, name: &str) -> PathBuf {
        self.sockets.join(format!("{name}.sock"))
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
            let mut key = None;
            for k in CHECKLIST {
                if text.starts_with(k) {
                    *self.counts.entry(k).or_default() += 1;
                    self.first_seen.entry(k).or_insert(line.at);
                    *self.per_node.entry((line.node, k)).or_default() += 1;
                    key = Some(k);
                }
            }
            if key == Some("Peer-level suspicion result") && text.contains(CONSENSUS) {
                *self.counts.entry(CONSENSUS).or_default() += 1;
            }
            if key == Some("Dead Node:") && self.detector.is_none() {
                self.detector = Some(line.node);
            }
            if self.shown(text, line.node, key) {
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

    /// Whether a line is printed as it comes: every line with `--verbose`; else the
    /// checklist's, but only the first `DUPLICATES_SHOWN` duplicates of each peer (the rest
    /// are counted) and only the first admitted peer's `Registration consensus COMMIT`
    /// lines (one per seed).
    fn shown(&mut self, text: &str, node: usize, key: Option<&'static str>) -> bool {
        if self.cli.verbose {
            return true;
        }
        match key {
            Some("Duplicate gossip ignored") => {
                let n = self.per_node.get(&(node, "Duplicate gossip ignored"));
                n.copied().unwrap_or(0) <= DUPLICATES_SHOWN
            }
            Some("Registration consensus COMMIT") => {
                let peer = subject(text).unwrap_or_default();
                let first = self.first_admitted.get_or_insert_with(|| peer.to_string());
                first == peer
            }
            _ => SHOWN.iter().any(|p| text.starts_with(p)),
        }
    }

    fn name(&self, node: usize) -> &str {
        self.procs.0.get(node).map_or("?", |p| p.name.as_str())
    }

    fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
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

/// `--serve`: says where the control sockets are, then shows what the nodes log until the
/// process is interrupted (the nodes exit with it).
fn serve(demo: &mut Demo) -> Result<(), String> {
    let peers: Vec<String> = (demo.procs.0.iter())
        .filter(|p| p.role == Role::Peer)
        .map(|p| p.name.clone())
        .collect();
    println!("== the cluster is up; control sockets:");
    for name in &peers {
        println!("   {name}: {}", demo.socket(name).display());
    }
    let first = demo.socket("peer1");
    println!(
        "== try: gossipctl watch --control {}   and   gossipctl publish --control {} hello",
        demo.socket(peers.last().map_or("peer1", String::as_str))
            .display(),
        first.display()
    );
    println!("== Ctrl-C stops it");
    loop {
        demo.drain_lines(Duration::from_secs(1));
    }
}

/// Removes a directory when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Publishes `data` named `name` through the control socket at `sock`; the message's id.
fn publish(sock: &std::path::Path, name: &str, data: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| format!("control socket {}: {e}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let req = serde_json::json!({"cmd": "publish", "name": name, "data": data});
    writeln!(s, "{req}").map_err(|e| format!("publish: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("publish: {e}"))?;
    let reply: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("publish reply {line:?}: {e}"))?;
    match reply["id"].as_str() {
        Some(id) => Ok(id.to_string()),
        None => Err(format!("publish refused: {}", reply["error"])),
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
    let sockets = match &cli.serve {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("gossip-cluster-ctl-{}", std::process::id())),
    };
    std::fs::create_dir_all(&sockets).map_err(|e| format!("{}: {e}", sockets.display()))?;
    let _cleanup = cli.serve.is_none().then(|| RemoveDir(sockets.clone()));
    let mut demo = Demo {
        cli,
        exe,
        config,
        sockets,
        start: Instant::now(),
        rx,
        tx,
        procs: Children(Vec::new()),
        keyring,
        counts: BTreeMap::new(),
        first_seen: BTreeMap::new(),
        per_node: BTreeMap::new(),
        first_admitted: None,
        detector: None,
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
    let defaults = Settings::default();
    println!(
        "== timings: gossip every {GOSSIP_INTERVAL_MS} ms, {} messages per peer; \
         probes every {PROBE_INTERVAL_MS} ms (a miss after {PROBE_TIMEOUT_MS} ms), \
         suspicion after {PROBE_MISSES} misses, {} witnesses answering within \
         {SUSPECT_TIMEOUT_MS} ms; seed vote rounds {} ms, anti-entropy every \
         {ANTI_ENTROPY_INTERVAL_MS} ms; peers want {} neighbours and refresh their Peer List \
         every {PEER_LIST_REFRESH_MS} ms",
        demo.cli.max_gossip, defaults.witnesses, defaults.vote_timeout_ms, defaults.min_degree
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
    demo.drain_lines(Duration::from_millis(300));
    if demo.cli.serve.is_some() {
        return serve(&mut demo);
    }
    println!(
        "== every peer registered and has neighbours ({} Registration consensus COMMIT lines \
         at the seeds, {}'s shown); gossip spreading",
        demo.count("Registration consensus COMMIT"),
        demo.first_admitted.as_deref().unwrap_or("none")
    );
    let max = u64::from(demo.cli.max_gossip);
    let spread_limit = Duration::from_millis(GOSSIP_INTERVAL_MS * (max + 3));
    demo.wait_until(spread_limit, |d| {
        peers.iter().all(|p| {
            d.status(*p)
                .is_some_and(|s| counter(&s, "gossip_generated") >= max)
        })
    });
    demo.drain_lines(Duration::from_millis(500));
    let duplicates: Vec<String> = demo
        .procs
        .0
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == Role::Peer)
        .map(|(i, p)| {
            let n = demo.per_node.get(&(i, "Duplicate gossip ignored"));
            format!("{} {}", p.name, n.copied().unwrap_or(0))
        })
        .collect();
    println!(
        "== Duplicate gossip ignored: {} lines ({}; the first {DUPLICATES_SHOWN} of each peer \
         shown)",
        demo.count("Duplicate gossip ignored"),
        duplicates.join(", ")
    );

    // An application message: peer1 publishes through its control socket (as `gossipctl
    // publish` does), and every peer delivers it once.
    let id = publish(
        &demo.socket("peer1"),
        "demo",
        "hello from peer1's application",
    )?;
    println!("== peer1 published an application message ({id}) through its control socket");
    let delivered = demo.wait_until(Duration::from_secs(5), |d| {
        peers[1..].iter().all(|p| {
            d.status(*p)
                .is_some_and(|s| counter(&s, "app_delivered") >= 1)
        })
    });
    demo.drain_lines(Duration::from_millis(300));
    println!(
        "== the application message reached {} of {} other peers",
        if delivered { peers.len() - 1 } else { 0 },
        peers.len() - 1
    );

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

    // A detector that noticed late reports what the seeds already removed: the seed answers
    // ABORT. Shown by re-sending the first detector's report, unless one came on its own.
    if removed && demo.count("Dead-node consensus ABORT") == 0 {
        let reporter = demo
            .detector
            .and_then(|i| demo.procs.0.get(i))
            .map_or(peers[0], |p| p.addr);
        let reporter_name = demo.detector.map_or("peer1", |i| demo.name(i)).to_string();
        let seed = seed_addrs[0];
        println!(
            "== a late duplicate DEAD_REPORT for {victim_name}: {reporter_name}'s report sent \
             again to {seed}, as a detector that noticed late would"
        );
        match gossip_bins::report_dead(
            seed,
            victim,
            reporter,
            Duration::from_secs(2),
            demo.keyring.as_ref(),
        ) {
            Ok(r) => println!(
                "   {seed} answered success={} (yes_votes={} quorum={})",
                r.success, r.yes_votes, r.quorum
            ),
            Err(e) => println!("   {e}"),
        }
        demo.drain_lines(Duration::from_millis(300));
    }

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
    println!("  checklist phrases: lines logged, by how many nodes");
    for key in CHECKLIST {
        let (mut seeds, mut peers) = (0, 0);
        for (node, k) in demo.per_node.keys() {
            if *k == key {
                match demo.procs.0.get(*node).map(|p| p.role) {
                    Some(Role::Seed) => seeds += 1,
                    _ => peers += 1,
                }
            }
        }
        let mut by = Vec::new();
        if peers > 0 {
            by.push(format!("{peers} peers"));
        }
        if seeds > 0 {
            by.push(format!("{seeds} seeds"));
        }
        let consensus = if key == "Peer-level suspicion result" {
            format!(" ({} with consensus=True)", demo.count(CONSENSUS))
        } else {
            String::new()
        };
        println!(
            "    {key:<30} {:>5}  {}{consensus}",
            demo.count(key),
            by.join(", ")
        );
    }
    let missing: Vec<&str> = CHECKLIST
        .iter()
        .copied()
        .filter(|k| demo.count(k) == 0)
        .collect();
    if !missing.is_empty() {
        println!("  checklist phrases not seen: {}", missing.join(", "));
    }
    if let Some(path) = &demo.cli.dot {
        let overlay = Overlay::crawl(
            &seed_addrs,
            &seed_addrs,
            Duration::from_millis(500),
            demo.keyring.as_ref(),
        );
        std::fs::write(path, overlay.to_dot())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "  overlay: {} (render: dot -Tsvg {} > overlay.svg)",
            path.display(),
            path.display()
        );
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
