//! The multi-host suite's cluster: real `seed` and `peer` processes, each on a host of its
//! own (a network namespace, see `gossip_bins::hosts`), faults in the bridge between them,
//! and the test's eyes on a control host no fault touches.
//!
//! Hosts of a [`HostNet`]: `ctl` (runs the relay through which this process asks nodes for
//! their status), `s1..sN` (seeds), `p1..pM` (peers) and any extra hosts a test asks for.
//! Every node listens on [`PORT`] of its host's address of the network's [`Family`] (with
//! [`Family::V6`] the seed list names the seeds in brackets, `[fd00:..],7000`). Names and
//! subnets are unique per run and per test: namespaces are `gnh-t-<tag>-<pid>-<host>` and
//! each test of a run gets its own `10.x.y.0/24` (and `fd00:a:x:y::/64`). At start,
//! namespaces of earlier runs of the same test whose process is gone are removed; when the
//! test ends (passing or failing) every node is killed by PID and the namespaces are
//! deleted.
//!
//! Without root or network namespaces (or IPv6, for an IPv6 network) the suite does not run:
//! [`HostNet::start`] returns `None` after printing one line saying why, unless
//! `HOSTS_REQUIRED` is set (as `.ci/run` does), when it panics instead.

#![allow(dead_code)]

pub mod check;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use gossip_bins::hosts::{self, Fault, HostInfo, Lab, Subnet};
use gossip_core::msg::{Endpoint, RoleStatus, Status, StatusResp};

/// Every node's port (each host has an address of its own).
pub const PORT: u16 = 7000;

/// Timing flags of the suite: quick probes and refreshes (as the loopback suites'), gossip
/// every second for as long as a test runs.
pub const TIMING: &[&str] = &[
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
    "--gossip-interval-ms",
    "1000",
    "--max-gossip",
    "1000",
];

/// The programs' default timings (probe timeout 500 ms, above TCP's 200 ms minimum
/// retransmission timeout), with the suite's quick refreshes and gossip.
pub const DEFAULT_TIMING: &[&str] = &[
    "--anti-entropy-interval-ms",
    "300",
    "--peer-list-refresh-ms",
    "1000",
    "--gossip-interval-ms",
    "1000",
    "--max-gossip",
    "1000",
];

static CAPABLE: OnceLock<Result<(), String>> = OnceLock::new();
static SKIP_NOTICE: Once = Once::new();
static PANIC_HOOK: Once = Once::new();

thread_local! {
    /// The message of this thread's panic, for the logs a failed test keeps.
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Keeps each panic's message (and where it happened) for [`HostNet`]'s drop, which writes it
/// into the failed test's `FAILED` file: the harness's captured output is easily lost, the
/// kept logs are not.
fn keep_panic_messages() {
    PANIC_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = format!("{info}");
            PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(text));
            default(info);
        }));
    });
}

/// True if labs can be made here (and, for `family` IPv6, the kernel has IPv6). If not:
/// panics when `HOSTS_REQUIRED` is set (to anything but `0`), else prints one line saying why
/// the suite does not run and returns false.
pub fn capable(family: Family) -> bool {
    let result = CAPABLE.get_or_init(hosts::check_capability);
    let why = match (result, family) {
        (Err(why), _) => why.clone(),
        (Ok(()), Family::V6) if !hosts::ipv6_available() => {
            "this kernel has no IPv6 (booted with ipv6.disable=1?)".to_string()
        }
        (Ok(()), _) => return true,
    };
    let required = std::env::var("HOSTS_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "HOSTS_REQUIRED is set but the multi-host suite cannot run: {why}"
    );
    // Written to the process's stderr itself, not through `eprintln!`, which the test harness
    // captures (and shows only for failing tests).
    SKIP_NOTICE.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "hosts suite not run: {why} (HOSTS_REQUIRED=1 makes this a failure)"
        );
    });
    false
}

/// The address family a network's nodes listen on (every host has both addresses).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Family {
    /// `a.b.c.n`.
    V4,
    /// `fd00:a:b:c::n`.
    V6,
}

static NEXT_SUBNET: AtomicU8 = AtomicU8::new(1);

/// A `/24` no other test of this run uses: `10.(100 + pid % 100).n.0/24`.
fn subnet() -> Subnet {
    let n = NEXT_SUBNET.fetch_add(1, Ordering::SeqCst);
    Subnet([10, 100 + (std::process::id() % 100) as u8, n])
}

/// Unix time in ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

/// Marks the directory of a failed test: its logs are kept until removed by hand.
const FAILED_MARK: &str = "FAILED";

/// Removes the temporary directories of earlier runs of test `tag` whose process is gone (an
/// interrupted run's), except those of failed tests (marked [`FAILED_MARK`]).
fn remove_stale_dirs(tag: &str) {
    let start = format!("gossip-hosts-{tag}-");
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&start)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let failed = e.path().join(FAILED_MARK).exists();
        if pid != std::process::id() && !hosts::process_running(pid) && !failed {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// One node process.
pub struct Proc {
    pub addr: SocketAddr,
    pub seed: bool,
    pub child: Option<Child>,
    pub stderr: PathBuf,
}

pub use gossip_bins::log_line::LogLine;

pub use gossip_bins::log_line::parse_line;

/// A cluster of seeds and peers on hosts of their own (see the module doc).
pub struct HostNet {
    /// The test's short name.
    pub tag: String,
    pub lab: Lab,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub output: PathBuf,
    pub seeds: Vec<SocketAddr>,
    /// Every peer host's endpoint (`p1..pM`), started or not.
    pub peers: Vec<SocketAddr>,
    pub procs: Vec<Proc>,
    relay: Option<Child>,
    pub relay_socket: PathBuf,
    flags: Vec<String>,
    seed_bin: PathBuf,
    peer_bin: PathBuf,
    pub hosts_bin: PathBuf,
    spawned: usize,
    /// When the network was made.
    pub t0: Instant,
    /// Ever killed (for the log checker).
    pub killed: BTreeSet<SocketAddr>,
    /// The family of the nodes' addresses.
    pub family: Family,
    /// Addresses of hosts whose links were ever faulted, and of nodes ever paused (for the
    /// log checker).
    pub lossy: BTreeSet<IpAddr>,
    /// Starts (`true`), and kills and exits after SIGTERM (`false`), of nodes, with when
    /// (unix ms).
    pub life: Vec<(u64, SocketAddr, bool)>,
}

/// The address of `host` in `family`.
fn address(host: &HostInfo, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(host.ip),
        Family::V6 => IpAddr::V6(
            host.ip6
                .unwrap_or_else(|| panic!("host {} has no IPv6 address", host.name)),
        ),
    }
}

impl HostNet {
    /// Makes the hosts (`ctl`, `s1..s<seeds>`, `p1..p<peers>`, then `extra`), starts the
    /// relay and the seeds (with `timing` and `flags`) on their hosts' addresses of `family`
    /// and waits until every seed answers. Peers are started by the test. `None`: the suite
    /// cannot run here (see [`capable`]).
    pub fn start(
        family: Family,
        tag: &str,
        seeds: usize,
        peers: usize,
        extra: &[&str],
        timing: &[&str],
        flags: &[&str],
    ) -> Option<HostNet> {
        if !capable(family) {
            return None;
        }
        keep_panic_messages();
        let base = format!("{}t-{tag}-", hosts::NAME_PREFIX);
        match hosts::remove_stale(&base) {
            Ok(gone) if !gone.is_empty() => {
                eprintln!(
                    "[{tag}] removed {} namespaces an earlier run left: {gone:?}",
                    gone.len()
                );
            }
            Ok(_) => {}
            Err(e) => panic!("[{tag}] removing leftovers: {e}"),
        }
        remove_stale_dirs(tag);
        let prefix = format!("{base}{}-", std::process::id());
        let mut names: Vec<String> = vec!["ctl".into()];
        names.extend((1..=seeds).map(|i| format!("s{i}")));
        names.extend((1..=peers).map(|i| format!("p{i}")));
        names.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let lab = Lab::create(&prefix, subnet(), &refs)
            .unwrap_or_else(|e| panic!("[{tag}] cannot make the hosts: {e}"));
        let dir = std::env::temp_dir().join(format!(
            "gossip-hosts-{tag}-{}-{}",
            std::process::id(),
            lab.subnet.0[2]
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ep_of = |name: String| {
            let host = lab.host(&name).expect("host");
            SocketAddr::new(address(host, family), PORT)
        };
        let seed_eps: Vec<SocketAddr> = (1..=seeds).map(|i| ep_of(format!("s{i}"))).collect();
        let peer_eps: Vec<SocketAddr> = (1..=peers).map(|i| ep_of(format!("p{i}"))).collect();
        let config = dir.join("config.txt");
        std::fs::write(&config, gossip_core::config::seeds_text(&seed_eps)).expect("config");
        let mut net = HostNet {
            tag: tag.to_string(),
            lab,
            output: dir.join("outputfile.txt"),
            relay_socket: dir.join("relay.sock"),
            config,
            dir,
            seeds: seed_eps.clone(),
            peers: peer_eps,
            procs: Vec::new(),
            relay: None,
            flags: timing.iter().chain(flags).map(|s| s.to_string()).collect(),
            seed_bin: env!("CARGO_BIN_EXE_seed").into(),
            peer_bin: env!("CARGO_BIN_EXE_peer").into(),
            hosts_bin: env!("CARGO_BIN_EXE_hosts").into(),
            spawned: 0,
            t0: Instant::now(),
            killed: BTreeSet::new(),
            family,
            lossy: BTreeSet::new(),
            life: Vec::new(),
        };
        let ctl = net.lab.host("ctl").expect("ctl").clone();
        let relay_err = std::fs::File::create(net.dir.join("stderr-relay.txt")).expect("stderr");
        let relay = net
            .lab
            .command(&ctl, &net.hosts_bin)
            .args(["relay", "--socket"])
            .arg(&net.relay_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(relay_err)
            .spawn()
            .expect("start the relay");
        net.relay = Some(relay);
        assert!(
            wait_for(Duration::from_secs(5), || net.relay_socket.exists()),
            "[{tag}] the relay did not start"
        );
        for s in seed_eps {
            net.spawn(s, true);
        }
        for s in net.seeds.clone() {
            assert!(
                wait_for(Duration::from_secs(10), || net.status(s).is_some()),
                "[{tag}] seed {s} did not come up"
            );
        }
        Some(net)
    }

    /// Prints `[tag] +secs message`.
    pub fn say(&self, what: &str) {
        eprintln!(
            "[{}] +{:.1}s {what}",
            self.tag,
            self.t0.elapsed().as_secs_f64()
        );
    }

    /// The host of a node.
    pub fn host_of(&self, addr: SocketAddr) -> HostInfo {
        self.lab
            .host_of(addr.ip())
            .cloned()
            .unwrap_or_else(|| panic!("no host has {}", addr.ip()))
    }

    /// The address of host `name` (`s1`, `p3`, `ctl`, an extra host) in the network's
    /// family.
    pub fn ip(&self, name: &str) -> IpAddr {
        address(self.lab.host(name).expect("no such host"), self.family)
    }

    /// Starts the node at `addr` (again) on its host.
    pub fn spawn(&mut self, addr: SocketAddr, seed: bool) {
        self.spawned += 1;
        let stderr = self
            .dir
            .join(format!("stderr-{}-{}.txt", addr.ip(), self.spawned));
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let bin = if seed { &self.seed_bin } else { &self.peer_bin };
        let host = self.host_of(addr);
        let child = self
            .lab
            .command(&host, bin)
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
        self.life.push((unix_ms(), addr, true));
    }

    /// Starts every peer of `peers`.
    pub fn start_peers(&mut self, peers: &[SocketAddr]) {
        for p in peers {
            self.spawn(*p, false);
        }
    }

    /// Waits until every peer of `peers` is registered with neighbours; panics after `limit`.
    pub fn wait_bootstrapped(&self, peers: &[SocketAddr], limit: Duration) {
        for p in peers {
            assert!(
                wait_for(limit, || self.neighbours(*p).is_some_and(|n| !n.is_empty())),
                "[{}] peer {p} did not bootstrap; its status: {:?}",
                self.tag,
                self.status(*p).map(|s| s.role)
            );
        }
    }

    /// The running process of `addr`.
    pub fn proc(&mut self, addr: SocketAddr) -> Option<&mut Proc> {
        self.procs
            .iter_mut()
            .rev()
            .find(|p| p.addr == addr && p.child.is_some())
    }

    /// `kill -9` of the node at `addr` (by PID).
    pub fn kill(&mut self, addr: SocketAddr) {
        if let Some(p) = self.proc(addr) {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.killed.insert(addr);
        self.life.push((unix_ms(), addr, false));
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to the node at `addr`, by PID.
    pub fn pause(&mut self, addr: SocketAddr, stop: bool) {
        if let Some(pid) = self
            .proc(addr)
            .and_then(|p| p.child.as_ref().map(Child::id))
        {
            hosts::signal(pid, if stop { "-STOP" } else { "-CONT" });
        }
        self.lossy.insert(addr.ip());
    }

    /// Tells the node at `addr` to stop (SIGTERM, by PID) and waits up to `limit` for its
    /// process to exit: its exit code (`None`: killed by a signal) and how long it took from
    /// the signal. Panics if it is still running after `limit` (then kills it).
    pub fn stop(&mut self, addr: SocketAddr, limit: Duration) -> (Option<i32>, Duration) {
        let tag = self.tag.clone();
        let mut child = self
            .proc(addr)
            .and_then(|p| p.child.take())
            .unwrap_or_else(|| panic!("[{tag}] {addr} is not running"));
        let start = Instant::now();
        hosts::signal(child.id(), "-TERM");
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if start.elapsed() >= limit {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        self.life.push((unix_ms(), addr, false));
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("[{tag}] {addr} still ran {limit:?} after SIGTERM");
        };
        (status.code(), took)
    }

    /// Replaces the faults in force (and marks their hosts for the log checker).
    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        for f in &faults {
            let (Fault::Drop { from, to } | Fault::Loss { from, to, .. }) = f;
            self.lossy.extend(from.iter().chain(to).copied());
        }
        self.lab
            .set_faults(faults)
            .unwrap_or_else(|e| panic!("[{}] nft: {e}", self.tag));
    }

    /// `unreachable` routes from `from` to each of `to`, inside `from`'s host.
    pub fn unreachable(&mut self, from: IpAddr, to: &[IpAddr]) {
        self.lossy.insert(from);
        self.lossy.extend(to.iter().copied());
        self.lab
            .unreachable(from, to)
            .unwrap_or_else(|e| panic!("[{}] ip route: {e}", self.tag));
    }

    /// Removes every fault and route: the network is whole.
    pub fn heal(&mut self) {
        self.lab
            .heal()
            .unwrap_or_else(|e| panic!("[{}] healing: {e}", self.tag));
    }

    // ----- looking -----

    /// The node's status, asked from the control host, if it answers within 1 s.
    pub fn status(&self, addr: SocketAddr) -> Option<StatusResp> {
        gossip_bins::query_status_via(
            addr,
            Duration::from_millis(1000),
            None,
            Some(&self.relay_socket),
        )
        .ok()
        .map(|(s, _)| s)
    }

    /// A seed's Peer List: (peer, incarnation, status), sorted.
    pub fn peer_list(&self, seed: SocketAddr) -> Option<Vec<(Endpoint, u64, Status)>> {
        match self.status(seed)?.role {
            RoleStatus::Seed(s) => Some(
                s.entries
                    .iter()
                    .map(|e| (e.peer, e.incarnation, e.status))
                    .collect(),
            ),
            RoleStatus::Peer(_) => None,
        }
    }

    /// A seed's entry for `peer`.
    pub fn entry(&self, seed: SocketAddr, peer: SocketAddr) -> Option<(u64, Status)> {
        self.peer_list(seed)?
            .into_iter()
            .find(|e| e.0 == peer)
            .map(|e| (e.1, e.2))
    }

    /// A peer's neighbours (None: not answering, or not registered).
    pub fn neighbours(&self, peer: SocketAddr) -> Option<Vec<Endpoint>> {
        match self.status(peer)?.role {
            RoleStatus::Peer(p) if p.registered => Some(p.neighbours),
            _ => None,
        }
    }

    /// A peer's incarnation, if registered.
    pub fn incarnation(&self, peer: SocketAddr) -> Option<u64> {
        match self.status(peer)?.role {
            RoleStatus::Peer(p) if p.registered => Some(p.incarnation),
            _ => None,
        }
    }

    /// A node's counter.
    pub fn counter(&self, addr: SocketAddr, name: &str) -> u64 {
        self.status(addr).map_or(0, |s| {
            s.counters
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        })
    }

    /// Every line of the output file, parsed.
    pub fn log(&self) -> Vec<LogLine> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter_map(parse_line)
            .collect()
    }

    /// Every stderr or output line that mentions a panic.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.stderr).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("panicked")) {
                found.push(format!("{}: {line}", p.addr));
            }
        }
        found
    }

    /// `Ok` when every seed answers with the same Peer List, every peer of `live` is alive in
    /// it and every peer of `removed` is gone from it: removed, or `LEFT` (a peer that left
    /// where no quorum heard it is removed by failure detection, unless its `LEAVE`, held up
    /// in the partition, reaches a seed once it heals: then the seeds that heard it leaving and
    /// those that removed it certify its `LEFT`; the invariant checker refuses a `LEFT` for a
    /// peer that never said it leaves).
    pub fn verdict(&self, live: &[SocketAddr], removed: &[SocketAddr]) -> Result<(), String> {
        let mut lists = Vec::new();
        for s in &self.seeds {
            match self.peer_list(*s) {
                Some(l) => lists.push((*s, l)),
                None => return Err(format!("seed {s} does not answer")),
            }
        }
        let (first_seed, first) = &lists[0];
        for (s, l) in &lists[1..] {
            if l != first {
                return Err(format!(
                    "seed {s} and seed {first_seed} disagree: {l:?} vs {first:?}"
                ));
            }
        }
        let status: BTreeMap<Endpoint, (u64, Status)> =
            first.iter().map(|e| (e.0, (e.1, e.2))).collect();
        for p in live {
            if !matches!(status.get(p), Some((_, Status::Alive))) {
                return Err(format!("live peer {p} is {:?}", status.get(p)));
            }
        }
        for p in removed {
            if !matches!(status.get(p), Some((_, Status::Removed | Status::Left))) {
                return Err(format!("killed peer {p} is {:?}", status.get(p)));
            }
        }
        Ok(())
    }

    /// `Ok` when every peer of `live` has a neighbour, only live peers are neighbours, every
    /// link is held at both ends, and the links make one overlay (no islands).
    pub fn overlay_verdict(&self, live: &[SocketAddr]) -> Result<(), String> {
        let mut adj: BTreeMap<SocketAddr, Vec<Endpoint>> = BTreeMap::new();
        for p in live {
            match self.neighbours(*p) {
                Some(n) if !n.is_empty() => {
                    adj.insert(*p, n);
                }
                other => return Err(format!("peer {p} has no neighbour ({other:?})")),
            }
        }
        for (p, ns) in &adj {
            for n in ns {
                match adj.get(n) {
                    None => return Err(format!("peer {p} links to {n}, which is not live")),
                    Some(back) if !back.contains(p) => {
                        return Err(format!("link {p} -> {n} is one-sided"))
                    }
                    Some(_) => {}
                }
            }
        }
        // One overlay, not islands: every live peer reachable from the first.
        let mut seen: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut todo: Vec<SocketAddr> = live.iter().take(1).copied().collect();
        while let Some(p) = todo.pop() {
            if seen.insert(p) {
                todo.extend(adj.get(&p).into_iter().flatten().copied());
            }
        }
        if let Some(p) = live.iter().find(|p| !seen.contains(p)) {
            return Err(format!(
                "the overlay is split: {p} cannot be reached from {}",
                live[0]
            ));
        }
        Ok(())
    }

    /// Waits until [`HostNet::verdict`] and [`HostNet::overlay_verdict`] hold; returns how
    /// long that took; panics after `limit` with the last reason.
    pub fn converge(
        &self,
        live: &[SocketAddr],
        removed: &[SocketAddr],
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        let mut last = String::new();
        let ok = wait_for(limit, || {
            match self
                .verdict(live, removed)
                .and_then(|()| self.overlay_verdict(live))
            {
                Ok(()) => true,
                Err(why) => {
                    last = why;
                    false
                }
            }
        });
        assert!(ok, "[{}] no convergence within {limit:?}: {last}", self.tag);
        start.elapsed()
    }

    /// Gossip made from `since` (unix ms) on: waits until every peer of `live` made some, then
    /// until every gossip a live peer made from `since` up to then reached every other live
    /// peer (a first-time receipt). Returns (gossips checked, time it took); panics after
    /// `limit` naming a gossip and a peer it did not reach.
    pub fn gossip_reaches_all(
        &self,
        since: u64,
        live: &[SocketAddr],
        limit: Duration,
    ) -> (usize, Duration) {
        let start = Instant::now();
        let live_set: BTreeSet<SocketAddr> = live.iter().copied().collect();
        let made_by_all = wait_for(limit, || {
            let log = self.log();
            live_set.iter().all(|p| {
                log.iter().any(|l| {
                    l.node == *p && l.unix_ms >= since && l.text.starts_with("Generated gossip: ")
                })
            })
        });
        assert!(
            made_by_all,
            "[{}] not every live peer made gossip since healing",
            self.tag
        );
        let until = unix_ms();
        let mut last = String::new();
        let mut checked = 0;
        let ok = wait_for(
            limit
                .saturating_sub(start.elapsed())
                .max(Duration::from_secs(3)),
            || {
                let log = self.log();
                let mut made: BTreeMap<String, SocketAddr> = BTreeMap::new();
                let mut got: BTreeMap<&str, BTreeSet<SocketAddr>> = BTreeMap::new();
                for l in &log {
                    if let Some(rest) = l.text.strip_prefix("Generated gossip: ") {
                        if l.unix_ms >= since && l.unix_ms <= until && live_set.contains(&l.node) {
                            let text = rest.rsplit_once(" (#").map_or(rest, |(t, _)| t);
                            made.insert(text.to_string(), l.node);
                        }
                    } else if let Some(rest) = l.text.strip_prefix("First-time gossip received: ") {
                        if let Some((text, _)) = rest.split_once(" from ") {
                            got.entry(text).or_default().insert(l.node);
                        }
                    }
                }
                checked = made.len();
                for (text, origin) in &made {
                    let receivers = got.get(text.as_str());
                    for p in &live_set {
                        if p != origin && !receivers.is_some_and(|r| r.contains(p)) {
                            last = format!("gossip {text} (from {origin}) has not reached {p}");
                            return false;
                        }
                    }
                }
                true
            },
        );
        assert!(
            ok,
            "[{}] gossip made after healing was not delivered: {last}",
            self.tag
        );
        (checked, start.elapsed())
    }

    /// Lines of the log matching `pred`, from `since` (unix ms).
    pub fn lines_since(&self, since: u64, pred: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        self.log()
            .into_iter()
            .filter(|l| l.unix_ms >= since && pred(l))
            .collect()
    }

    /// Feeds the whole output file to the simulator's invariant checker (promises 1 to 4,
    /// see `check`) and panics on a broken promise. Returns a summary for the test's output.
    pub fn check_promises(&self) -> String {
        let report = check::check_log(self);
        assert!(
            report.violations.is_empty(),
            "[{}] promises broken over the run: {:#?}",
            self.tag,
            report.violations
        );
        report.summary
    }
}

impl Drop for HostNet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                hosts::signal(c.id(), "-CONT");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut r) = self.relay.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
        // The lab (a field) is dropped after this: it removes the namespaces.
        if std::thread::panicking() {
            let message = PANIC_MESSAGE
                .with(|m| m.borrow_mut().take())
                .unwrap_or_default();
            let _ = std::fs::write(self.dir.join(FAILED_MARK), message);
            eprintln!("[{}] logs kept in {}", self.tag, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Endpoints of hosts `names` of `net`.
pub fn eps(net: &HostNet, names: &[&str]) -> Vec<SocketAddr> {
    names
        .iter()
        .map(|n| SocketAddr::new(net.ip(n), PORT))
        .collect()
}

/// Addresses of the nodes `addrs` (a fault between them holds for the family they use).
pub fn ips(addrs: &[SocketAddr]) -> Vec<IpAddr> {
    addrs.iter().map(SocketAddr::ip).collect()
}
