//! Shared parts of the command-line programs: the node flags of `seed` and `peer`, loading
//! the seed list and the cluster key file, running a node, the client side of the status
//! query (sealed when a cluster key is given), the live overlay drawn from it
//! ([`overlay`]), reading log lines back ([`log_line`]) and the multi-host lab ([`hosts`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod control_client;
pub mod hosts;
pub mod log_line;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use gossip_core::msg::{DeadReport, DeadResult, Endpoint, Message, StatusResp};
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache, Stamp};
use gossip_core::{config, wire, Settings};
use gossip_driver_mio::local::LocalConfig;
use gossip_driver_mio::resolve::{resolve_seed_lines, SeedList};
use gossip_driver_mio::{nonce_seed, unix_now_ms, Exit, Host, Limits, NodeSpec, OutputLog, Role};

pub mod overlay;

/// Flags shared by `seed` and `peer`: the spec's four, then timing and limits.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// IP address to listen on (IPv4 or IPv6; `0.0.0.0` or `::` for every address, then
    /// with --advertise). With the port, the node's identity unless --advertise names another.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// The endpoint others reach this node at, if not --ip and --port (a container address,
    /// a NAT, a node listening on 0.0.0.0): `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` (resolved
    /// at start). It is the node's identity: what it registers, tells and signs; a seed's
    /// must be listed in the config.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Seed list: one `<host>,<port>` per line (an IPv4 address, an IPv6 address bare or in
    /// brackets, or a host name).
    #[arg(long, default_value = "config.txt")]
    pub config: PathBuf,
    /// Log file, appended to (shared by several nodes without torn lines).
    #[arg(long, default_value = "outputfile.txt")]
    pub output: PathBuf,
    /// Do not echo log lines to stdout (the output file still gets them).
    #[arg(long)]
    pub quiet: bool,
    /// Seed of the node's random generator (default: from the clock and the process id).
    #[arg(long)]
    pub rng_seed: Option<u64>,
    /// Peer: generate a gossip message this often [default: 5000].
    #[arg(long)]
    pub gossip_interval_ms: Option<u64>,
    /// Peer: gossip messages generated in all [default: 10].
    #[arg(long)]
    pub max_gossip: Option<u32>,
    /// Peer: probe each neighbour this often [default: 1000].
    #[arg(long)]
    pub probe_interval_ms: Option<u64>,
    /// A probe unanswered by then is a miss [default: 500].
    #[arg(long)]
    pub probe_timeout_ms: Option<u64>,
    /// Peer: consecutive missed probes before suspicion [default: 3].
    #[arg(long)]
    pub probe_misses: Option<u32>,
    /// Peer: witnesses asked to confirm a suspicion [default: 3].
    #[arg(long)]
    pub witnesses: Option<u32>,
    /// Peer: how long to wait for witnesses [default: 1000].
    #[arg(long)]
    pub suspect_timeout_ms: Option<u64>,
    /// Deadline of an ordinary request [default: 1000].
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Seed: deadline of a vote round [default: 1200].
    #[arg(long)]
    pub vote_timeout_ms: Option<u64>,
    /// Peer: how long to wait for a registration answer [default: 1800].
    #[arg(long)]
    pub register_timeout_ms: Option<u64>,
    /// Seed: pull another seed's Peer List this often [default: 2000].
    #[arg(long)]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Peer: refresh the Peer List from a seed this often [default: 10000].
    #[arg(long)]
    pub peer_list_refresh_ms: Option<u64>,
    /// Peer: neighbours to connect to [default: 2].
    #[arg(long)]
    pub min_degree: Option<u32>,
    /// Seed: removed entries for peers it never held admitted it keeps at most before it stops
    /// removing peers it only heard of (a bound on what a lying seed can make it record)
    /// [default: 1024].
    #[arg(long)]
    pub max_hearsay_removals: Option<u32>,
    /// Seed: forget a removed or left entry this long after taking it, so the Peer List holds
    /// the peers of now and not every address that ever registered; at least 10 anti-entropy
    /// intervals [default: 1800000, 30 minutes].
    #[arg(long)]
    pub tombstone_ms: Option<u64>,
    /// Peer: how gossip is passed on: `flood` (whole on every link, the spec's) or `lazy`
    /// (whole along a spanning tree the peers prune from the overlay, announced by id on the
    /// other links; see docs/PROTOCOL-EXTENSIONS.md) [default: flood].
    #[arg(long)]
    pub gossip_mode: Option<config::GossipMode>,
    /// Close accepted connections idle this long [default: 60000].
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Accepted connections at once at most; further ones are closed at once [default: 4096].
    #[arg(long)]
    pub max_inbound: Option<usize>,
    /// Accepted connections at once from one remote IP address at most; further ones from it
    /// are closed at once [default: 2048, so that loopback clusters, where every connection
    /// comes from 127.0.0.1, work; between real hosts use 64 (see docs/HARDENING.md)].
    #[arg(long)]
    pub max_inbound_per_ip: Option<usize>,
    /// Cluster key file: one hex key per line (the first seals what this node sends, every
    /// one is accepted), readable by its owner only. Every frame then carries an HMAC; frames
    /// without a valid one get `ERROR`. Re-read when it changes (key rotation).
    #[arg(long, value_name = "PATH")]
    pub cluster_key_file: Option<PathBuf>,
    /// How often to check the cluster key file for changes, in ms.
    #[arg(long, hide = true, default_value_t = 2000)]
    pub cluster_key_check_ms: u64,
    /// Serve a control socket at this path (mode 0600) for `gossipctl` and other local
    /// programs: publish, watch, members, info (see docs/CONTROL.md).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Append every event, one JSON line each, to this file (the format of
    /// docs/CONTROL.md's event stream).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Serve `GET /metrics` (Prometheus text format) on this address, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics: Option<SocketAddr>,
    /// On SIGTERM, SIGINT or `gossipctl leave`, exit at most this long after starting to
    /// leave (a peer: its seeds certified LEFT and its neighbours dropped the link; a seed:
    /// its rounds in flight ended), even if that is not done: failure detection does the
    /// rest. A second signal exits at once.
    #[arg(long, default_value_t = 3000)]
    pub leave_timeout_ms: u64,
    /// Peer: longest application message payload, in bytes [default: 16384].
    #[arg(long)]
    pub max_app_bytes: Option<u32>,
    /// Peer: application messages it publishes per second at most [default: 2000].
    #[arg(long)]
    pub publish_rate: Option<u32>,
    /// Exit when the process with this id is no longer our parent (used by `cluster`, so
    /// its children never outlive it).
    #[arg(long, hide = true)]
    pub exit_with_parent: Option<u32>,
}

impl NodeArgs {
    /// The endpoint it listens on.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The endpoint it tells others: --advertise (resolved), or the one it listens on.
    pub fn identity(&self) -> Result<SocketAddr, String> {
        match &self.advertise {
            Some(text) => gossip_driver_mio::resolve::resolve_host_port(text)
                .map_err(|e| format!("--advertise {e}")),
            None => Ok(self.listen()),
        }
    }

    /// The defaults with every flag given applied.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { s.$field = v; } )* };
        }
        set!(
            gossip_interval_ms,
            max_gossip,
            probe_interval_ms,
            probe_timeout_ms,
            probe_misses,
            witnesses,
            suspect_timeout_ms,
            request_timeout_ms,
            vote_timeout_ms,
            register_timeout_ms,
            anti_entropy_interval_ms,
            peer_list_refresh_ms,
            min_degree,
            max_hearsay_removals,
            tombstone_ms,
            gossip_mode,
            max_app_bytes,
            publish_rate
        );
        s
    }

    /// The driver limits with the flags given applied.
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if let Some(v) = self.idle_timeout_ms {
            l.inbound_idle_ms = v;
        }
        if let Some(v) = self.max_inbound {
            l.max_inbound_per_node = v;
        }
        if let Some(v) = self.max_inbound_per_ip {
            l.max_inbound_per_ip = v;
        }
        l
    }
}

/// Reads, parses and resolves a seed list; the error names the file (and the line, if
/// malformed or unresolvable).
pub fn load_seed_list(path: &Path) -> Result<SeedList, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    let lines =
        config::parse_seed_lines(&text).map_err(|e| format!("config {}: {e}", path.display()))?;
    resolve_seed_lines(&lines).map_err(|e| format!("config {}: {e}", path.display()))
}

/// The seeds' addresses of a seed list (see [`load_seed_list`]).
pub fn load_seeds(path: &Path) -> Result<Vec<Endpoint>, String> {
    Ok(load_seed_list(path)?.seeds)
}

/// Largest cluster key file read (a few hundred keys).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Reads a cluster key file: it must be readable and writable by its owner only (on Unix,
/// `mode & 0o077 == 0`), hold at most 64 KiB, and parse ([`Keyring::parse`]: one hex key per
/// line, `#` comments). The error is one line naming the file (and the line), never a key.
pub fn load_keyring(path: &Path) -> Result<Keyring, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read cluster key file {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read cluster key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cluster key file {shown} is not a regular file"));
    }
    check_key_file_mode(path, &meta)?;
    let mut text = String::new();
    (&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read cluster key file {shown}: {e}"))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "cluster key file {shown} is larger than {MAX_KEY_FILE} bytes"
        ));
    }
    Keyring::parse(&text).map_err(|e| format!("cluster key file {shown}: {e}"))
}

#[cfg(unix)]
fn check_key_file_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    let open = mode & 0o077;
    if open == 0 {
        return Ok(());
    }
    let what = if open & 0o044 != 0 {
        "readable"
    } else if open & 0o022 != 0 {
        "writable"
    } else {
        "executable"
    };
    let who = if open & 0o007 != 0 {
        "others"
    } else {
        "its group"
    };
    let shown = path.display();
    Err(format!(
        "cluster key file {shown} is {what} by {who} (mode {mode:04o}): run chmod 600 {shown}"
    ))
}

#[cfg(not(unix))]
fn check_key_file_mode(_: &Path, _: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// What identifies one version of a file: a rewrite changes the modification time, an
/// atomic replace (write, then rename over it) the inode.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// A cluster key file watched for changes (key rotation without restarting): checked at
/// most every `every`; when its modification time (or size, or inode) changed, it is read
/// again.
#[derive(Debug)]
pub struct KeyFileWatch {
    path: PathBuf,
    stamp: Option<FileStamp>,
    every: Duration,
    next: Instant,
}

impl KeyFileWatch {
    /// Loads the file ([`load_keyring`]) and starts watching it.
    pub fn open(path: &Path, every: Duration) -> Result<(KeyFileWatch, Keyring), String> {
        // The stamp before the read: a change in between is seen again at the next check.
        let stamp = file_stamp(path);
        let ring = load_keyring(path)?;
        let watch = KeyFileWatch {
            path: path.to_path_buf(),
            stamp,
            every,
            next: Instant::now() + every,
        };
        Ok((watch, ring))
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `None` if it is not time to check or the file did not change; else the new keyring,
    /// or why the changed file cannot be used (reported once per change; the caller keeps
    /// its keyring).
    pub fn poll(&mut self) -> Option<Result<Keyring, String>> {
        let now = Instant::now();
        if now < self.next {
            return None;
        }
        self.next = now + self.every;
        let stamp = file_stamp(&self.path);
        if stamp == self.stamp {
            return None;
        }
        self.stamp = stamp;
        Some(load_keyring(&self.path))
    }
}

/// The arguments every launcher (`cluster`, `bench_net`, the test suites) gives a node
/// program: where it listens, its seed list and the shared output file.
pub fn node_args(addr: SocketAddr, config: &Path, output: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--ip".into(),
        addr.ip().to_string().into(),
        "--port".into(),
        addr.port().to_string().into(),
        "--config".into(),
        config.into(),
        "--output".into(),
        output.into(),
    ]
}

fn default_rng_seed(me: SocketAddr) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = gossip_core::hash::combine(nanos, u64::from(std::process::id()));
    h = gossip_core::hash::combine(h, u64::from(me.port()));
    h
}

/// Where the kernel caps the open-files limit when the hard limit is unlimited.
const NR_OPEN_FALLBACK: u64 = 1 << 20;

/// Raises this process's soft limit on open files (`ulimit -n`) to its hard limit (capped by
/// `/proc/sys/fs/nr_open`), as servers do: every connection is a file, a seed holds about two
/// per peer it serves (the peer's and its own probes' link), and the usual default soft limit
/// of 1,024 stopped a seed of 1,000 peers from accepting (`Too many open files`). Returns the
/// soft limit before and after (`None`: unlimited).
pub fn raise_open_files_limit() -> (Option<u64>, Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let cap = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(NR_OPEN_FALLBACK);
    let target = now.maximum.unwrap_or(cap).min(cap);
    match now.current {
        Some(soft) if soft < target => {
            let raised = Rlimit {
                current: Some(target),
                maximum: now.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => (Some(soft), Some(target)),
                Err(_) => (Some(soft), Some(soft)),
            }
        }
        other => (other, other),
    }
}

/// Open files below which a node warns at start: a seed needs about two per peer.
const FEW_OPEN_FILES: u64 = 4096;

/// Runs a `seed` or `peer` program until it is killed. Returns the one-line error that
/// stops it from starting.
pub fn run_node(role: Role, args: &NodeArgs) -> Result<(), String> {
    let listen = args.listen();
    let me = args.identity()?;
    let SeedList { seeds, names } = load_seed_list(&args.config)?;
    if role == Role::Seed && !seeds.contains(&me) {
        return Err(format!(
            "seed address {me} is not listed in config {} (it lists {}; a seed behind another address names its listed one with --advertise)",
            args.config.display(),
            seeds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let settings = args.settings();
    settings
        .validate()
        .map_err(|e| format!("invalid timing flags: {e}"))?;
    let (before, after) = raise_open_files_limit();
    if before != after {
        log::info!("open files limit raised from {before:?} to {after:?}");
    }
    if let Some(n) = after.filter(|n| *n < FEW_OPEN_FILES) {
        log::warn!(
            "{role} {me}: at most {n} open files (the hard limit, ulimit -Hn): a seed needs about two per peer, every node one per connection; raise it (ulimit -Hn, systemd LimitNOFILE=)"
        );
    }
    let log = OutputLog::open(&args.output, !args.quiet)
        .map_err(|e| format!("cannot open output file {}: {e}", args.output.display()))?;
    let mut watch = None;
    let keyring = match &args.cluster_key_file {
        Some(path) => {
            let every = Duration::from_millis(args.cluster_key_check_ms.max(1));
            let (w, ring) = KeyFileWatch::open(path, every)?;
            watch = Some(w);
            Some(ring)
        }
        None => None,
    };
    let mut host = Host::new(args.limits(), log).map_err(|e| format!("event loop: {e}"))?;
    host.set_keyring(keyring);
    let spec = NodeSpec {
        role,
        seeds,
        settings,
        rng_seed: args.rng_seed.unwrap_or_else(|| default_rng_seed(me)),
        advertise: args.advertise.is_some().then_some(me),
    };
    host.set_seed_names(names);
    let idx = host.add_node(listen, spec).map_err(|e| e.to_string())?;
    log::info!("{role} {me} listening on {listen}");
    let local = LocalConfig {
        control: args.control.clone(),
        events: args.events.clone(),
        metrics: args.metrics,
    };
    let metrics = host.attach_local(idx, &local).map_err(|e| e.to_string())?;
    if let Some(addr) = metrics {
        log::info!("{role} {me}: metrics on http://{addr}/metrics");
    }
    host.catch_signals()
        .map_err(|e| format!("cannot catch SIGTERM and SIGINT: {e}"))?;
    let leave_timeout = args.leave_timeout_ms;
    let parent = args.exit_with_parent;
    let mut next_check = Instant::now();
    let mut exit = None;
    host.run_until(|host| {
        exit = host.exit(leave_timeout);
        if exit.is_some() {
            return true;
        }
        if let Some(watch) = &mut watch {
            match watch.poll() {
                None => {}
                Some(Ok(ring)) => {
                    eprintln!(
                        "{role} {me}: cluster key file {} reloaded: key ids {} ({} seals)",
                        watch.path().display(),
                        ring.key_ids().join(", "),
                        ring.key_ids().first().map_or("", String::as_str)
                    );
                    host.set_keyring(Some(ring));
                }
                Some(Err(e)) => {
                    eprintln!("{role} {me}: {e}; keeping the current keys");
                }
            }
        }
        let Some(pid) = parent else {
            return false;
        };
        if Instant::now() < next_check {
            return false;
        }
        next_check = Instant::now() + Duration::from_millis(200);
        if std::os::unix::process::parent_id() != pid {
            // The launcher is gone: leave as on a signal.
            host.leave();
        }
        false
    })
    .map_err(|e| format!("event loop failed: {e}"))?;
    match exit {
        Some(Exit::Aborted) => Err("interrupted twice: exited without finishing the leave".into()),
        Some(Exit::Deadline) => {
            log::warn!("{role} {me}: left after {leave_timeout} ms without finishing the leave");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Entry point shared by `seed` and `peer`: logging, flags, one-line error and exit code.
pub fn node_main(role: Role, args: NodeArgs) -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run_node(role, &args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{role}: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A Peer List's entries counted by status, as people read them: `3 alive, 1 removed` (and
/// `, 2 left` when some left).
pub fn entries_summary(entries: &[gossip_core::msg::Entry]) -> String {
    use gossip_core::msg::Status;
    let count = |s: Status| entries.iter().filter(|e| e.status == s).count();
    let mut text = format!(
        "{} alive, {} removed",
        count(Status::Alive),
        count(Status::Removed)
    );
    let left = count(Status::Left);
    if left > 0 {
        text.push_str(&format!(", {left} left"));
    }
    text
}

/// How people are shown a Peer List entry's status (`status`, `gossipctl members`).
pub fn status_word(status: gossip_core::msg::Status) -> &'static str {
    match status {
        gossip_core::msg::Status::Alive => "alive",
        gossip_core::msg::Status::Removed => "removed",
        gossip_core::msg::Status::Left => "left",
    }
}

/// A seed's Peer List as `status` and `gossipctl members` print it: a header, then one
/// indented row per entry with its incarnation, status and certificate; nothing when empty.
pub fn peer_list_table(entries: &[gossip_core::msg::Entry]) -> String {
    let mut table = String::new();
    if !entries.is_empty() {
        table.push_str(&format!(
            "  {:<22} {:>11}  {:<8} VOTES\n",
            "PEER", "INCARNATION", "STATUS"
        ));
    }
    for e in entries {
        let votes: Vec<String> = e.votes.iter().map(ToString::to_string).collect();
        table.push_str(&format!(
            "  {:<22} {:>11}  {:<8} {}\n",
            e.peer.to_string(),
            e.incarnation,
            status_word(e.status),
            votes.join(",")
        ));
    }
    table
}

/// Longest status reply read (a seed's whole Peer List).
const MAX_STATUS_LINE: u64 = 64 * 1024 * 1024;

/// Asks `addr` for its status: connect, one `STATUS_REQ` line, one reply line, close.
/// Returns the decoded reply and the raw JSON line.
pub fn query_status(addr: SocketAddr, timeout: Duration) -> Result<(StatusResp, String), String> {
    query_status_with(addr, timeout, None)
}

/// [`query_status`], sealed under `keyring` (the reply must verify and be bound to the
/// request) when one is given.
pub fn query_status_with(
    addr: SocketAddr,
    timeout: Duration,
    keyring: Option<&Keyring>,
) -> Result<(StatusResp, String), String> {
    query_status_via(addr, timeout, keyring, None)
}

/// [`query_status_with`], through the relay listening on the Unix socket `relay` if one is
/// given (a node in a network namespace this process cannot reach; see
/// [`hosts::serve_relay`]).
pub fn query_status_via(
    addr: SocketAddr,
    timeout: Duration,
    keyring: Option<&Keyring>,
    relay: Option<&Path>,
) -> Result<(StatusResp, String), String> {
    let mut line = Vec::new();
    wire::encode(
        &Message::StatusReq,
        unix_now_ms() as f64 / 1000.0,
        &mut line,
    );
    let reply = exchange_line_via(addr, &line, timeout, keyring, MAX_STATUS_LINE, relay)?;
    match wire::decode(reply.as_bytes()) {
        Ok(Message::StatusResp(status)) => Ok((*status, reply)),
        Ok(Message::Error { reason }) => Err(format!("{addr} answered ERROR: {reason}")),
        Ok(other) => Err(format!("{addr} answered {}", other.type_name())),
        Err(e) => Err(format!("{addr}: bad reply: {e}")),
    }
}

/// Sends `seed` a `DEAD_REPORT` accusing `dead` in `reporter`'s name, on a connection of its
/// own (one line, one reply, as a reference node sends it; sealed under `keyring` if given),
/// and returns the seed's answer. The `cluster` demo and the end-to-end tests use it to show a
/// late duplicate report: after the removal is committed, the seed answers `success: false`
/// and logs `Dead-node consensus ABORT ..., already removed`.
pub fn report_dead(
    seed: SocketAddr,
    dead: Endpoint,
    reporter: Endpoint,
    timeout: Duration,
    keyring: Option<&Keyring>,
) -> Result<DeadResult, String> {
    let now_ms = unix_now_ms();
    let timestamp = now_ms / 1000;
    let report = DeadReport::new(dead, reporter, timestamp, None, Vec::new());
    let mut line = Vec::new();
    wire::encode(
        &Message::DeadReport(Box::new(report)),
        now_ms as f64 / 1000.0,
        &mut line,
    );
    let reply = exchange_line(seed, &line, timeout, keyring, MAX_REPLY_LINE)?;
    match wire::decode(reply.as_bytes()) {
        Ok(Message::DeadResult(result)) => Ok(result),
        Ok(Message::Error { reason }) => Err(format!("{seed} answered ERROR: {reason}")),
        Ok(other) => Err(format!("{seed} answered {}", other.type_name())),
        Err(e) => Err(format!("{seed}: bad reply: {e}")),
    }
}

/// Longest reply read by [`exchange_line`] callers that expect an ordinary message.
pub const MAX_REPLY_LINE: u64 = 1 << 20;

/// One request, one reply, on a fresh connection: sends the JSON line `json` (sealed under
/// `keyring`'s sending key with a fresh nonce, if given), reads one reply line of at most
/// `max` bytes and returns its JSON (opened and checked to be bound to the request, if
/// keyed). A sealed reply to an unkeyed client, or a keyed reply that does not verify, is an
/// error that says what the node answered, marked unverified.
pub fn exchange_line(
    addr: SocketAddr,
    json: &[u8],
    timeout: Duration,
    keyring: Option<&Keyring>,
    max: u64,
) -> Result<String, String> {
    exchange_line_via(addr, json, timeout, keyring, max, None)
}

/// A connection [`exchange_line_via`] speaks on: TCP, or a relay's Unix socket.
trait Line: Read + Write {}
impl<T: Read + Write> Line for T {}

/// [`exchange_line`], through the relay listening on the Unix socket `relay` if one is given
/// (see [`hosts::serve_relay`]); the relay's own failures come back as errors.
pub fn exchange_line_via(
    addr: SocketAddr,
    json: &[u8],
    timeout: Duration,
    keyring: Option<&Keyring>,
    max: u64,
    relay: Option<&Path>,
) -> Result<String, String> {
    let mut stream: Box<dyn Line> = match relay {
        Some(socket) => Box::new(hosts::relay_connect(socket, addr, timeout)?),
        None => {
            let stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .map_err(|e| format!("{addr}: {e}"))?;
            Box::new(stream)
        }
    };
    let mut line = Vec::new();
    let mut nonce = 0;
    match keyring {
        None => {
            line.extend_from_slice(json);
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
        }
        Some(ring) => {
            nonce = nonce_seed();
            let stamp = Stamp {
                ts_ms: unix_now_ms(),
                nonce,
                bind: None,
            };
            auth::seal(ring, stamp, json, &mut line);
        }
    }
    stream
        .write_all(&line)
        .map_err(|e| format!("{addr}: send: {e}"))?;
    let mut reply = Vec::new();
    BufReader::new(stream.take(max))
        .read_until(b'\n', &mut reply)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("{addr}: no reply within {} ms", timeout.as_millis())
            }
            _ => format!("{addr}: no reply: {e}"),
        })?;
    if reply.is_empty() {
        return Err(format!("{addr} closed without a reply"));
    }
    if let Some(why) = reply.strip_prefix(hosts::RELAY_ERROR.as_bytes()) {
        return Err(String::from_utf8_lossy(why).trim_end().to_string());
    }
    let reply = reply.strip_suffix(b"\n").unwrap_or(&reply);
    let reply = reply.strip_suffix(b"\r").unwrap_or(reply);
    let json = match keyring {
        None if reply.first() == Some(&b'!') => {
            return Err(format!(
                "{addr} requires a cluster key (--cluster-key-file); it answered {}",
                unverified(reply)
            ));
        }
        None => reply,
        Some(ring) => {
            let mut cache = ReplayCache::default();
            match auth::open(ring, reply, unix_now_ms(), Expect::Reply(nonce), &mut cache) {
                Ok(opened) => opened.json,
                Err(refused) => {
                    return Err(format!(
                        "{addr}: reply refused ({}); unverified, it says: {}",
                        refused.error,
                        unverified(reply)
                    ));
                }
            }
        }
    };
    Ok(String::from_utf8_lossy(json).into_owned())
}

/// What a reply that could not be verified says, for an error message: the reason of an
/// `ERROR`, else its type.
fn unverified(reply: &[u8]) -> String {
    let json = match reply.first() {
        Some(b'!') => reply
            .iter()
            .position(|b| *b == b' ')
            .and_then(|i| reply.get(i + 1..))
            .unwrap_or_default(),
        _ => reply,
    };
    match wire::decode(json) {
        Ok(Message::Error { reason }) => format!("ERROR: {reason}"),
        Ok(other) => other.type_name().to_string(),
        Err(e) => format!("an undecodable line ({e})"),
    }
}

/// Resolves `host:port` text to one address.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text}: no address"))
}
