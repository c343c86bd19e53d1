//! A local network of real `seed` and `peer` processes for the end-to-end and hardening
//! suites: free loopback ports, a temporary config, output file and per-process stderr files
//! (kept when a test fails), status queries, and a guard that kills every child by PID when
//! the test ends (passing, failing or panicking). A network may run with a cluster key (one
//! key file per node, rewritten in place for rotation); its status queries are then sealed.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gossip_core::msg::{Endpoint, RoleStatus, Status, StatusResp};
use gossip_core::wire::auth::Keyring;

/// Timing flags that make a test cluster quick.
pub const FAST: &[&str] = &[
    "--probe-interval-ms",
    "200",
    "--probe-timeout-ms",
    "150",
    "--probe-misses",
    "3",
    "--suspect-timeout-ms",
    "400",
    "--anti-entropy-interval-ms",
    "300",
    "--peer-list-refresh-ms",
    "1000",
];

/// Ports tests pick from: below Linux's ephemeral range (32768-60999), so an outgoing
/// connection's local port never takes a node's port between the pick and the bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

static PICKS: AtomicUsize = AtomicUsize::new(0);

/// Every port this process has handed out. A picked port is released before its node binds
/// it, so without this two picks (two seeds of one config, or two tests running in
/// parallel) could get the same port.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port free on `ip` right now (bound, then released) and never handed out before by this
/// process, from [`PORTS`], starting at a point that differs per process and per call so
/// parallel test processes rarely probe the same ports.
pub fn free_port_on(ip: impl Into<IpAddr>) -> u16 {
    let ip = ip.into();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    let span = usize::from(PORTS.end - PORTS.start);
    let mut at = nanos
        .wrapping_mul(31)
        .wrapping_add(std::process::id() as usize * 7919)
        .wrapping_add(PICKS.fetch_add(1, Ordering::SeqCst) * 104_729);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..span {
        let port = PORTS.start + (at % span) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(SocketAddr::from((ip, port))).is_ok() {
            handed_out.insert(port);
            return port;
        }
        at = at.wrapping_add(1);
    }
    panic!("no free port in {PORTS:?}");
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    free_port_on([127, 0, 0, 1])
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory for one test's cluster, with a config of `n` seeds on free
/// ports of 127.0.0.1: `(dir, config, output file, seeds)`.
pub fn cluster_dir(name: &str, n: usize) -> (PathBuf, PathBuf, PathBuf, Vec<SocketAddr>) {
    cluster_dir_on(name, n, Ipv4Addr::LOCALHOST.into(), &seeds_text)
}

fn seeds_text(seeds: &[SocketAddr]) -> String {
    gossip_core::config::seeds_text(seeds)
}

/// Like [`cluster_dir`], the seeds on `ip`, the config written by `config_text`.
pub fn cluster_dir_on(
    name: &str,
    n: usize,
    ip: IpAddr,
    config_text: &dyn Fn(&[SocketAddr]) -> String,
) -> (PathBuf, PathBuf, PathBuf, Vec<SocketAddr>) {
    let dir = std::env::temp_dir().join(format!(
        "gossip-{name}-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let seeds: Vec<SocketAddr> = (0..n)
        .map(|_| SocketAddr::new(ip, free_port_on(ip)))
        .collect();
    let config = dir.join("config.txt");
    std::fs::write(&config, config_text(&seeds)).expect("write config");
    (dir.clone(), config, dir.join("outputfile.txt"), seeds)
}

/// Given among a [`Net`]'s flags: every node also gets a control socket and an events file.
pub const LOCAL: &str = "<local>";

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
    /// With a cluster key: the key files' text (new nodes get it too), and the keyring this
    /// test's status queries seal with.
    pub key_text: Option<String>,
    pub keyring: Option<Keyring>,
    seed_bin: PathBuf,
    peer_bin: PathBuf,
    spawned: usize,
    /// Every node gets a control socket ([`Net::control`]) and an events file
    /// ([`Net::events`]).
    pub local: bool,
    /// Nodes that listen elsewhere than the endpoint they advertise: identity → listen.
    pub listen: HashMap<SocketAddr, SocketAddr>,
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
        Net::launch(name, n, timing, flags, None)
    }

    /// Like [`Net::start`], every node with a cluster key file of its own holding `key_text`
    /// (one hex key per line), checked for changes every 500 ms.
    pub fn start_keyed(name: &str, n: usize, flags: &[&str], key_text: &str) -> Net {
        Net::launch(name, n, FAST, flags, Some(key_text))
    }

    /// Like [`Net::start_keyed`], with `timing` flags instead of [`FAST`].
    pub fn start_keyed_with(
        name: &str,
        n: usize,
        timing: &[&str],
        flags: &[&str],
        key_text: &str,
    ) -> Net {
        Net::launch(name, n, timing, flags, Some(key_text))
    }

    /// Like [`Net::start`], the seeds on `ip` (IPv4 or IPv6) and the config written by
    /// `config_text` (e.g. with host names).
    pub fn start_on(
        name: &str,
        n: usize,
        ip: IpAddr,
        flags: &[&str],
        config_text: &dyn Fn(&[SocketAddr]) -> String,
    ) -> Net {
        Net::launch_on(name, n, ip, FAST, flags, None, config_text)
    }

    fn launch(
        name: &str,
        n: usize,
        timing: &[&str],
        flags: &[&str],
        key_text: Option<&str>,
    ) -> Net {
        let ip = Ipv4Addr::LOCALHOST.into();
        Net::launch_on(name, n, ip, timing, flags, key_text, &seeds_text)
    }

    fn launch_on(
        name: &str,
        n: usize,
        ip: IpAddr,
        timing: &[&str],
        flags: &[&str],
        key_text: Option<&str>,
        config_text: &dyn Fn(&[SocketAddr]) -> String,
    ) -> Net {
        let (seed_bin, peer_bin) = binaries();
        let (dir, config, output, seeds) = cluster_dir_on(name, n, ip, config_text);
        let mut net = Net {
            dir,
            config,
            output,
            seeds: seeds.clone(),
            procs: Vec::new(),
            flags: timing.iter().chain(flags).map(|s| s.to_string()).collect(),
            key_text: key_text.map(str::to_string),
            keyring: key_text.map(|t| Keyring::parse(t).expect("test key text")),
            seed_bin,
            peer_bin,
            spawned: 0,
            local: flags.contains(&LOCAL),
            listen: HashMap::new(),
        };
        net.flags.retain(|f| f != LOCAL);
        for s in seeds {
            net.spawn(s, true);
        }
        for s in net.seeds.clone() {
            if !wait_for(Duration::from_secs(10), || net.status(s).is_some()) {
                let stderr = net.proc(s).map(|p| p.stderr.clone()).unwrap_or_default();
                let said = std::fs::read_to_string(stderr).unwrap_or_default();
                panic!("seed {s} did not come up; its stderr: {said:?}");
            }
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
        let mut key_flags = Vec::new();
        if let Some(text) = &self.key_text {
            let file = self.key_file(addr);
            if !file.exists() {
                write_key_file(&file, text);
            }
            key_flags.push("--cluster-key-file".to_string());
            key_flags.push(file.display().to_string());
            key_flags.push("--cluster-key-check-ms".to_string());
            key_flags.push("500".to_string());
        }
        if self.local {
            key_flags.push("--control".to_string());
            key_flags.push(self.control(addr).display().to_string());
            key_flags.push("--events".to_string());
            key_flags.push(self.events(addr).display().to_string());
        }
        let listen = self.listen.get(&addr).copied().unwrap_or(addr);
        if listen != addr {
            key_flags.push("--advertise".to_string());
            key_flags.push(addr.to_string());
        }
        let child = Command::new(bin)
            .args(gossip_bins::node_args(listen, &self.config, &self.output))
            .arg("--quiet")
            .args(&self.flags)
            .args(&key_flags)
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

    /// The control socket of the node at `addr` (with [`LOCAL`]).
    pub fn control(&self, addr: SocketAddr) -> PathBuf {
        self.dir
            .join(format!("ctl-{}-{}.sock", addr.ip(), addr.port()))
    }

    /// The events file of the node at `addr` (with [`LOCAL`]).
    pub fn events(&self, addr: SocketAddr) -> PathBuf {
        self.dir
            .join(format!("events-{}-{}.jsonl", addr.ip(), addr.port()))
    }

    /// The cluster key file of the node at `addr`.
    pub fn key_file(&self, addr: SocketAddr) -> PathBuf {
        self.dir
            .join(format!("key-{}-{}.txt", addr.ip(), addr.port()))
    }

    /// The node's `STATUS_RESP` (sealed with this network's keyring, if any), if it answers
    /// within 2 s.
    pub fn status(&self, addr: SocketAddr) -> Option<StatusResp> {
        status_with(addr, self.keyring.as_ref())
    }

    /// Rewrites every node's key file with `text` (atomically, mode 600), makes it the key
    /// of nodes started later and of this test's queries, and waits until every running node
    /// has reloaded it (its stderr says so).
    pub fn write_keys(&mut self, text: &str) {
        let ring = Keyring::parse(text).expect("test key text");
        let before: Vec<(PathBuf, usize)> = self
            .procs
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| (p.stderr.clone(), reloads(&p.stderr)))
            .collect();
        let mut files: Vec<PathBuf> = self.procs.iter().map(|p| self.key_file(p.addr)).collect();
        files.sort();
        files.dedup();
        for f in files {
            write_key_file(&f, text);
        }
        self.key_text = Some(text.to_string());
        self.keyring = Some(ring);
        for (stderr, n) in before {
            assert!(
                wait_for(Duration::from_secs(5), || reloads(&stderr) > n),
                "a node did not reload its key file: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
    }

    /// Starts a peer on a free port of `ip` (a 127.0.0.x address of its own, so its gossip
    /// texts `<time>:<ip>:<n>` are told apart from other peers') and returns its endpoint.
    pub fn add_peer_on(&mut self, ip: impl Into<IpAddr>) -> SocketAddr {
        let ip = ip.into();
        let addr = SocketAddr::new(ip, free_port_on(ip));
        self.spawn(addr, false);
        addr
    }

    /// Starts a peer on a free port of 127.0.0.1 and returns its endpoint.
    pub fn add_peer(&mut self) -> SocketAddr {
        self.add_peer_on([127, 0, 0, 1])
    }

    /// Starts (again) the seed at `addr`.
    pub fn restart_seed(&mut self, addr: SocketAddr) {
        self.spawn(addr, true);
    }

    /// The peers still running.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.procs
            .iter()
            .filter(|p| !p.seed && p.child.is_some())
            .map(|p| p.addr)
            .collect()
    }

    /// Every line of the shared output file.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
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

/// How many times a node's stderr says it reloaded its cluster key file.
fn reloads(stderr: &std::path::Path) -> usize {
    std::fs::read_to_string(stderr)
        .unwrap_or_default()
        .matches("reloaded: key ids")
        .count()
}

/// Writes a key file the way an operator should: a temporary file of mode 600 renamed over
/// the old one, so a node never reads half a file.
pub fn write_key_file(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .expect("key file");
    f.write_all(text.as_bytes()).expect("write key file");
    drop(f);
    std::fs::rename(&tmp, path).expect("rename key file");
}

/// Sends the JSON line `json` to `addr` sealed under `keyring` (a fresh nonce, unbound) and
/// returns the reply's JSON, verified and bound to the request; an error says why not.
pub fn send_sealed(addr: SocketAddr, json: &str, keyring: &Keyring) -> Result<String, String> {
    gossip_bins::exchange_line(
        addr,
        json.as_bytes(),
        Duration::from_secs(2),
        Some(keyring),
        gossip_bins::MAX_REPLY_LINE,
    )
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node's `STATUS_RESP`, if it answers within 2 s.
pub fn status(addr: SocketAddr) -> Option<StatusResp> {
    status_with(addr, None)
}

/// The node's `STATUS_RESP`, asked sealed under `keyring` if given, if it answers within 2 s.
pub fn status_with(addr: SocketAddr, keyring: Option<&Keyring>) -> Option<StatusResp> {
    gossip_bins::query_status_with(addr, Duration::from_secs(2), keyring)
        .ok()
        .map(|(s, _)| s)
}

/// The seed's entry status for `peer` (None: not listed, or not a seed / not answering).
pub fn entry(seed: SocketAddr, peer: Endpoint) -> Option<Status> {
    match status(seed)?.role {
        RoleStatus::Seed(s) => s.entries.iter().find(|e| e.peer == peer).map(|e| e.status),
        RoleStatus::Peer(_) => None,
    }
}

/// The seed's Peer List as (peer, incarnation, status), sorted.
pub fn peer_list(seed: SocketAddr) -> Option<Vec<(Endpoint, u64, Status)>> {
    match status(seed)?.role {
        RoleStatus::Seed(s) => Some(
            s.entries
                .iter()
                .map(|e| (e.peer, e.incarnation, e.status))
                .collect(),
        ),
        RoleStatus::Peer(_) => None,
    }
}

/// Registered with neighbours (bootstrap complete, as far as the status shows).
pub fn bootstrapped(peer: SocketAddr) -> bool {
    status(peer).is_some_and(|s| match s.role {
        RoleStatus::Peer(p) => p.registered && !p.neighbours.is_empty(),
        RoleStatus::Seed(_) => false,
    })
}

pub fn counter(addr: SocketAddr, name: &str) -> u64 {
    status(addr).map_or(0, |s| {
        s.counters
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| *v)
    })
}

#[allow(unused_imports)] // each suite uses its own part
pub use gossip_bins::log_line::{parse_line, LogLine};

/// Registered with a quorum of seeds (a lone peer has no neighbours to greet).
pub fn registered(peer: SocketAddr) -> bool {
    status(peer).is_some_and(|s| match s.role {
        RoleStatus::Peer(p) => p.registered,
        RoleStatus::Seed(_) => false,
    })
}
