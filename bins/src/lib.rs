//! Shared parts of the command-line programs: the node flags of `seed` and `peer`, loading
//! the seed list, running a node, and the client side of the status query.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use gossip_core::msg::{Endpoint, Message, StatusResp};
use gossip_core::{config, wire, Settings};
use gossip_driver_mio::{Host, Limits, NodeSpec, OutputLog, Role};

/// Flags shared by `seed` and `peer`: the spec's four, then timing and limits.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// IP address to listen on (the node's identity with the port).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Seed list: one `<ip>,<port>` per line.
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
    /// Close accepted connections idle this long [default: 60000].
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Exit when the process with this id is no longer our parent (used by `cluster`, so
    /// its children never outlive it).
    #[arg(long, hide = true)]
    pub exit_with_parent: Option<u32>,
}

impl NodeArgs {
    /// The listening endpoint.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
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
            min_degree
        );
        s
    }

    /// The driver limits with the flags given applied.
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if let Some(v) = self.idle_timeout_ms {
            l.inbound_idle_ms = v;
        }
        l
    }
}

/// Reads and parses a seed list; the error names the file (and the line, if malformed).
pub fn load_seeds(path: &Path) -> Result<Vec<Endpoint>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    config::parse_seeds(&text).map_err(|e| format!("config {}: {e}", path.display()))
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

/// Runs a `seed` or `peer` program until it is killed. Returns the one-line error that
/// stops it from starting.
pub fn run_node(role: Role, args: &NodeArgs) -> Result<(), String> {
    let me = args.endpoint();
    let seeds = load_seeds(&args.config)?;
    if role == Role::Seed && !seeds.contains(&me) {
        return Err(format!(
            "seed address {me} is not listed in config {} (it lists {})",
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
    let log = OutputLog::open(&args.output, !args.quiet)
        .map_err(|e| format!("cannot open output file {}: {e}", args.output.display()))?;
    let mut host = Host::new(args.limits(), log).map_err(|e| format!("event loop: {e}"))?;
    let spec = NodeSpec {
        role,
        seeds,
        settings,
        rng_seed: args.rng_seed.unwrap_or_else(|| default_rng_seed(me)),
    };
    host.add_node(me, spec).map_err(|e| e.to_string())?;
    log::info!("{role} listening on {me}");
    let parent = args.exit_with_parent;
    let mut next_check = Instant::now();
    host.run_until(|_| {
        let Some(pid) = parent else {
            return false;
        };
        if Instant::now() < next_check {
            return false;
        }
        next_check = Instant::now() + Duration::from_millis(200);
        std::os::unix::process::parent_id() != pid
    })
    .map_err(|e| format!("event loop failed: {e}"))
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

/// Longest status reply read (a seed's whole Peer List).
const MAX_STATUS_LINE: u64 = 64 * 1024 * 1024;

/// Asks `addr` for its status: connect, one `STATUS_REQ` line, one reply line, close.
/// Returns the decoded reply and the raw JSON line.
pub fn query_status(addr: SocketAddr, timeout: Duration) -> Result<(StatusResp, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut line = Vec::new();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    wire::encode(&Message::StatusReq, ts, &mut line);
    stream
        .write_all(&line)
        .map_err(|e| format!("{addr}: send: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_STATUS_LINE))
        .read_line(&mut reply)
        .map_err(|e| format!("{addr}: no reply: {e}"))?;
    match wire::decode(reply.trim_end().as_bytes()) {
        Ok(Message::StatusResp(status)) => Ok((*status, reply.trim_end().to_string())),
        Ok(Message::Error { reason }) => Err(format!("{addr} answered ERROR: {reason}")),
        Ok(other) => Err(format!("{addr} answered {}", other.type_name())),
        Err(e) if reply.is_empty() => Err(format!("{addr} closed without a reply ({e})")),
        Err(e) => Err(format!("{addr}: bad reply: {e}")),
    }
}

/// Resolves `host:port` text to one address.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text}: no address"))
}
