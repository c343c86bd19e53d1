//! Hosts in network namespaces: a multi-host network on one Linux machine, for the `hosts`
//! program and the multi-host test suite (`bins/tests/hosts.rs`).
//!
//! A [`Lab`] is one network: a namespace per host, plus one namespace that holds the bridge
//! and nothing else. Each host has one veth pair: `eth0` inside the host, the other end a port
//! of the bridge named after the host. Every host gets its own IPv4 address in a `/24` of its
//! own ([`Subnet`]) and, where the kernel has IPv6, an IPv6 address in a ULA `/64` derived from
//! it (`a.b.c.n` and `fd00:a:b:c::n`, in hex), added without duplicate address detection so it
//! is usable at once. The machine's own (root) namespace is never touched: no address, route,
//! interface or rule is added there, and every `ip` command runs inside a namespace the lab
//! made (`ip -n NS ...`, `ip netns exec NS ...`).
//!
//! Faults live in the bridge namespace, in one nftables table of the `bridge` family whose
//! `forward` chain sees every frame between two hosts ([`Fault`]): silent drops per host pair
//! and direction (a real partition: packets vanish, connections time out) and random loss
//! (`numgen random`), for IPv4 (`ip saddr`) and IPv6 (`ip6 saddr`) alike. The chain's first
//! rule lets ICMPv6 neighbour discovery through, as ARP (not IP) always gets through: a host
//! whose packets to another are dropped must still answer that host's neighbour solicitations,
//! or a one-way cut would stop the other direction too. [`Lab::unreachable`] adds
//! `unreachable` routes inside a host instead, so `connect` fails at once: a different fault.
//! Pauses are SIGSTOP/SIGCONT of a process.
//!
//! Names: every namespace of a lab is `<prefix><host>`, where the prefix starts with
//! [`NAME_PREFIX`]. [`Lab::create`] first removes whatever an earlier lab of the same prefix
//! left behind (an interrupted run skips `Drop`); dropping a lab (or [`Lab::remove`]) kills
//! every process still inside its namespaces, by PID, and deletes the namespaces, which takes
//! the veths, the bridge and the rules with them.
//!
//! The machine's own namespace cannot reach the hosts, so a client that must talk to a node
//! from outside (the test suite's status queries) goes through a relay ([`serve_relay`]): a small server run
//! inside a host namespace that forwards one request line from a Unix socket (a file, which
//! every namespace sees) to a node and returns the reply line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};

mod flood;
mod relay;

pub use flood::{flood, FloodReport};
pub use relay::{relay_connect, serve_relay, RELAY_ERROR};

/// Every namespace a lab makes starts with this.
pub const NAME_PREFIX: &str = "gnh-";

/// The nftables table (family `bridge`, in the bridge namespace) that holds the faults.
pub const FAULT_TABLE: &str = "gossip_faults";

/// Name of the bridge inside the bridge namespace.
const BRIDGE: &str = "br0";

/// The fault chain's first rule: ICMPv6 neighbour solicitations and advertisements always
/// pass (see the module doc). A solicitation's source is the address of the packet that
/// needed it, so the advertisement answering it goes between the two hosts' own addresses,
/// exactly what a drop rule between them matches.
pub const ND_ACCEPT: &str = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept";

/// The longest host name: it names the bridge port, and interface names have at most 15
/// bytes.
pub const MAX_HOST_NAME: usize = 15;

/// Runs `cmd` with `input` on its stdin (if any); its stdout, or an error naming the command
/// and quoting its stderr.
fn run(cmd: &mut Command, input: Option<&str>) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{shown}: writing its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            err.trim(),
            input.map_or(String::new(), |i| format!("; input was:\n{i}"))
        ))
    }
}

/// `ip` with `args`.
fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args), None)
}

/// `ip [-n ns] -batch -` with `script`, one command a line.
fn ip_batch(ns: Option<&str>, script: &str) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    run(&mut cmd, Some(script)).map(drop)
}

/// `nft -f -` with `script`, inside namespace `ns` (one transaction: all or nothing).
fn nft_in(ns: &str, script: &str) -> Result<(), String> {
    run(
        Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
        Some(script),
    )
    .map(drop)
}

/// The namespaces that exist, by name.
pub fn namespaces() -> Result<Vec<String>, String> {
    let out = ip(&["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The processes inside namespace `ns`.
fn pids_in(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sends `signal` (`-KILL`, `-STOP`, `-CONT`) to process `pid`.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes the namespaces named in `names`: kills (SIGKILL, by PID) every process inside
/// them, then deletes them, which removes their interfaces, routes and rules too. Returns
/// how many processes were killed.
pub fn remove_namespaces(names: &[String]) -> Result<usize, String> {
    let mut killed = 0;
    for ns in names {
        for pid in pids_in(ns) {
            // A stopped process dies of SIGKILL too.
            if signal(pid, "-KILL") {
                killed += 1;
            }
        }
    }
    if names.is_empty() {
        return Ok(killed);
    }
    let script: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
    // `-force` goes on past a namespace that is already gone.
    run(
        Command::new("ip").args(["-force", "-batch", "-"]),
        Some(&script),
    )
    .map(|_| killed)
}

/// Removes every namespace whose name starts with `prefix` (it must start with
/// [`NAME_PREFIX`], so nothing a lab did not make can match). Returns the names removed.
pub fn remove_prefix(prefix: &str) -> Result<Vec<String>, String> {
    if !prefix.starts_with(NAME_PREFIX) || prefix.len() <= NAME_PREFIX.len() {
        return Err(format!(
            "refusing to remove namespaces by prefix {prefix:?}: it must start with {NAME_PREFIX:?} and name a lab"
        ));
    }
    let mine: Vec<String> = namespaces()?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    remove_namespaces(&mine)?;
    Ok(mine)
}

/// Removes the namespaces of earlier runs whose names start with `base` followed by a process
/// id and `-` (`<base><pid>-...`, as the test suite names its labs) when that process no
/// longer runs: what interrupted runs left behind, never a lab of a run still going. Returns
/// the names removed.
pub fn remove_stale(base: &str) -> Result<Vec<String>, String> {
    if !base.starts_with(NAME_PREFIX) || base.len() <= NAME_PREFIX.len() {
        return Err(format!("refusing to remove namespaces by prefix {base:?}"));
    }
    let stale: Vec<String> = namespaces()?
        .into_iter()
        .filter(|n| {
            let Some(rest) = n.strip_prefix(base) else {
                return false;
            };
            let Some((pid, _)) = rest.split_once('-') else {
                return false;
            };
            pid.parse::<u32>()
                .is_ok_and(|pid| pid != std::process::id() && !process_running(pid))
        })
        .collect();
    remove_namespaces(&stale)?;
    Ok(stale)
}

/// True while process `pid` runs (exists and is not a zombie waiting to be reaped).
pub fn process_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

/// A `/24` for the hosts of one lab: `a.b.c.1` and up; and its IPv6 twin, the ULA `/64`
/// `fd00:a:b:c::/64` (each byte one 16-bit group, so `10.250.0` is `fd00:a:fa::/64`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Subnet(pub [u8; 3]);

impl Subnet {
    /// Host number `n` (1..=254) of the subnet.
    pub fn host(&self, n: u8) -> Ipv4Addr {
        let [a, b, c] = self.0;
        Ipv4Addr::new(a, b, c, n)
    }

    /// Host number `n`'s IPv6 address: `fd00:a:b:c::n`.
    pub fn host6(&self, n: u8) -> Ipv6Addr {
        let [a, b, c] = self.0.map(u16::from);
        Ipv6Addr::new(0xfd00, a, b, c, 0, 0, 0, u16::from(n))
    }

    /// The IPv6 prefix, `fd00:a:b:c::/64`.
    pub fn prefix6(&self) -> String {
        format!("{}/64", self.host6(0))
    }

    /// Parses `a.b.c` (or `a.b.c.0`, `a.b.c.0/24`).
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let base = text.trim_end_matches("/24");
        let parts: Vec<&str> = base.split('.').collect();
        let octets: Vec<u8> = parts
            .iter()
            .take(3)
            .map(|p| p.parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("subnet {text:?}: expected a.b.c (a /24)"))?;
        let ok_tail = parts.len() == 3 || (parts.len() == 4 && parts[3] == "0");
        match octets[..] {
            [a, b, c] if ok_tail => Ok(Subnet([a, b, c])),
            _ => Err(format!("subnet {text:?}: expected a.b.c (a /24)")),
        }
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}.0/24")
    }
}

/// One host of a lab.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// Its short name (also its bridge port's name).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address (`None`: the kernel has no IPv6).
    pub ip6: Option<Ipv6Addr>,
}

impl HostInfo {
    /// True if `ip` is one of its addresses.
    pub fn has(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4 == self.ip,
            IpAddr::V6(v6) => self.ip6 == Some(v6),
        }
    }

    /// Its addresses: IPv4, then IPv6 if it has one.
    pub fn addrs(&self) -> Vec<IpAddr> {
        std::iter::once(IpAddr::V4(self.ip))
            .chain(self.ip6.map(IpAddr::V6))
            .collect()
    }
}

/// True if this kernel has IPv6 (it was not booted with `ipv6.disable=1`).
pub fn ipv6_available() -> bool {
    Path::new("/proc/sys/net/ipv6").exists()
}

/// A network fault, carried out by the bridge: it applies to packets between two hosts'
/// addresses, of either family (an nftables set holds one family, so a fault whose groups mix
/// both is one rule per family; see [`Fault::rules`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every packet from any of `from` to any of `to` vanishes (one direction).
    Drop {
        /// Senders.
        from: Vec<IpAddr>,
        /// Receivers.
        to: Vec<IpAddr>,
    },
    /// Each packet from any of `from` to any of `to` is dropped with probability
    /// `per_mille` / 1000, independently (`numgen random`).
    Loss {
        /// Senders.
        from: Vec<IpAddr>,
        /// Receivers.
        to: Vec<IpAddr>,
        /// Drop probability in thousandths.
        per_mille: u32,
    },
}

impl Fault {
    /// Both directions between the groups `a` and `b` dropped: a partition.
    pub fn cut(a: &[IpAddr], b: &[IpAddr]) -> Vec<Fault> {
        vec![
            Fault::Drop {
                from: a.to_vec(),
                to: b.to_vec(),
            },
            Fault::Drop {
                from: b.to_vec(),
                to: a.to_vec(),
            },
        ]
    }

    /// Random loss of `per_mille` / 1000 both ways between `a` and `b`.
    pub fn lossy(a: &[IpAddr], b: &[IpAddr], per_mille: u32) -> Vec<Fault> {
        vec![
            Fault::Loss {
                from: a.to_vec(),
                to: b.to_vec(),
                per_mille,
            },
            Fault::Loss {
                from: b.to_vec(),
                to: a.to_vec(),
                per_mille,
            },
        ]
    }

    /// The nftables rules (for the bridge's `forward` chain): one for the IPv4 addresses of
    /// the groups and one for their IPv6 addresses, each only if both of its groups have
    /// addresses of that family (none if a group is empty).
    pub fn rules(&self) -> Vec<String> {
        let (from, to, action) = match self {
            Fault::Drop { from, to } => (from, to, "counter drop".to_string()),
            Fault::Loss {
                from,
                to,
                per_mille,
            } => (
                from,
                to,
                format!("numgen random mod 1000 < {per_mille} counter drop"),
            ),
        };
        let set = |ips: &[IpAddr], v6: bool| {
            let items: Vec<String> = ips
                .iter()
                .filter(|ip| ip.is_ipv6() == v6)
                .map(ToString::to_string)
                .collect();
            (!items.is_empty()).then(|| format!("{{ {} }}", items.join(", ")))
        };
        [("ip", false), ("ip6", true)]
            .into_iter()
            .filter_map(|(family, v6)| {
                let (src, dst) = (set(from, v6)?, set(to, v6)?);
                Some(format!(
                    "{family} saddr {src} {family} daddr {dst} {action}"
                ))
            })
            .collect()
    }
}

/// The nftables script that replaces the fault rules with `faults`, in one transaction (the
/// chain starts with [`ND_ACCEPT`] again).
pub fn fault_script(bridge_ns_table: &str, faults: &[Fault]) -> String {
    let mut s = format!("flush chain bridge {bridge_ns_table} forward\n");
    let _ = writeln!(s, "add rule bridge {bridge_ns_table} forward {ND_ACCEPT}");
    for rule in faults.iter().flat_map(Fault::rules) {
        let _ = writeln!(s, "add rule bridge {bridge_ns_table} forward {rule}");
    }
    s
}

/// Adds the rules of `faults` to the fault chain of the bridge namespace `bridge_ns` (after
/// those in force, so after [`ND_ACCEPT`]).
pub fn add_fault_rules(bridge_ns: &str, faults: &[Fault]) -> Result<(), String> {
    let script: String = faults
        .iter()
        .flat_map(Fault::rules)
        .map(|r| format!("add rule bridge {FAULT_TABLE} forward {r}\n"))
        .collect();
    if script.is_empty() {
        return Ok(());
    }
    nft_in(bridge_ns, &script)
}

/// Removes every fault rule in the bridge namespace `bridge_ns`.
pub fn flush_faults(bridge_ns: &str) -> Result<(), String> {
    nft_in(bridge_ns, &fault_script(FAULT_TABLE, &[]))
}

/// The IPv4 address of `eth0` inside namespace `ns`.
pub fn address_in(ns: &str) -> Option<Ipv4Addr> {
    let out = ip(&["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"]).ok()?;
    let word = out.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
    word.split('/').next()?.parse().ok()
}

/// The global IPv6 address of `eth0` inside namespace `ns` (not its link-local one).
pub fn address6_in(ns: &str) -> Option<Ipv6Addr> {
    let out = ip(&[
        "-n", ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
    ])
    .ok()?;
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)?;
    word.split('/').next()?.parse().ok()
}

/// The host route to `ip`: `a.b.c.d/32` or `x::y/128`.
fn host_route(ip: IpAddr) -> String {
    let len = if ip.is_ipv6() { 128 } else { 32 };
    format!("{ip}/{len}")
}

/// Adds an `unreachable` route to each of `dsts` inside namespace `ns`.
pub fn add_unreachable_in(ns: &str, dsts: &[IpAddr]) -> Result<(), String> {
    let script: String = dsts
        .iter()
        .map(|d| format!("route add unreachable {}\n", host_route(*d)))
        .collect();
    if script.is_empty() {
        return Ok(());
    }
    ip_batch(Some(ns), &script)
}

/// Deletes every `unreachable` route (IPv4 and IPv6) inside namespace `ns`; returns how many
/// there were.
pub fn clear_unreachable_in(ns: &str) -> Result<usize, String> {
    let mut out = ip(&["-n", ns, "-4", "route", "show", "type", "unreachable"])?;
    if ipv6_available() {
        out += &ip(&["-n", ns, "-6", "route", "show", "type", "unreachable"])?;
    }
    let dsts: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let script: String = dsts
        .iter()
        .map(|d| format!("route del unreachable {d}\n"))
        .collect();
    if !script.is_empty() {
        ip_batch(Some(ns), &script)?;
    }
    Ok(dsts.len())
}

/// The processes inside namespace `ns`.
pub fn processes_in(ns: &str) -> Vec<u32> {
    pids_in(ns)
}

/// One multi-host network in namespaces (see the module doc). Dropping it removes everything
/// it made, unless [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    /// Every namespace of the lab is named `<prefix><host>`.
    pub prefix: String,
    /// The hosts' subnet.
    pub subnet: Subnet,
    /// The hosts, in the order given.
    pub hosts: Vec<HostInfo>,
    /// The namespace holding the bridge and the fault rules.
    pub bridge_ns: String,
    faults: Vec<Fault>,
    /// Packets dropped by fault rules since replaced.
    dropped_before: u64,
    /// `unreachable` routes added: (host index, destination).
    routes: Vec<(usize, IpAddr)>,
    keep: bool,
}

impl Lab {
    /// Makes a lab: removes what an earlier lab with `prefix` left behind, then creates the
    /// bridge namespace and one namespace per host of `names`, host `i` at address `i + 1` of
    /// `subnet` (and of its IPv6 twin, if the kernel has IPv6), with an empty fault table. On
    /// failure, whatever was made is removed.
    pub fn create(prefix: &str, subnet: Subnet, names: &[&str]) -> Result<Lab, String> {
        if !prefix.starts_with(NAME_PREFIX) {
            return Err(format!(
                "lab prefix {prefix:?} must start with {NAME_PREFIX:?}"
            ));
        }
        if names.is_empty() || names.len() > 253 {
            return Err(format!("a lab has 1 to 253 hosts, not {}", names.len()));
        }
        for (i, n) in names.iter().enumerate() {
            let ok = !n.is_empty()
                && n.len() <= MAX_HOST_NAME
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && *n != BRIDGE
                && *n != "br"
                && *n != "lo";
            if !ok {
                return Err(format!(
                    "host name {n:?}: 1 to {MAX_HOST_NAME} letters, digits, '-' or '_' (not br, br0 or lo)"
                ));
            }
            if names[..i].contains(n) {
                return Err(format!("host name {n:?} is given twice"));
            }
        }
        remove_prefix(prefix)?;
        let v6 = ipv6_available();
        let hosts: Vec<HostInfo> = names
            .iter()
            .enumerate()
            .map(|(i, n)| HostInfo {
                name: n.to_string(),
                ns: format!("{prefix}{n}"),
                ip: subnet.host(i as u8 + 1),
                ip6: v6.then(|| subnet.host6(i as u8 + 1)),
            })
            .collect();
        let mut lab = Lab {
            prefix: prefix.to_string(),
            subnet,
            bridge_ns: format!("{prefix}br"),
            hosts,
            faults: Vec::new(),
            dropped_before: 0,
            routes: Vec::new(),
            keep: false,
        };
        // On an error, `lab` is dropped here and removes what was made.
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<(), String> {
        let mut script = format!("netns add {}\n", self.bridge_ns);
        for h in &self.hosts {
            let _ = writeln!(script, "netns add {}", h.ns);
        }
        ip_batch(None, &script)?;
        // The bridge and every veth pair, made from inside the bridge namespace: one end stays
        // there as a bridge port, the other is created directly inside the host. Without
        // multicast snooping the bridge floods every multicast frame (neighbour solicitations
        // included) to every port, whatever group memberships it saw or missed.
        let mut script = format!(
            "link add name {BRIDGE} type bridge mcast_snooping 0\nlink set dev {BRIDGE} up\n"
        );
        for h in &self.hosts {
            let _ = writeln!(
                script,
                "link add name {} type veth peer name eth0 netns {}",
                h.name, h.ns
            );
            let _ = writeln!(script, "link set dev {} master {BRIDGE}", h.name);
            let _ = writeln!(script, "link set dev {} up", h.name);
        }
        ip_batch(Some(&self.bridge_ns), &script)?;
        for h in &self.hosts {
            let mut script = format!("link set dev lo up\naddr add {}/24 dev eth0\n", h.ip);
            if let Some(ip6) = h.ip6 {
                // `nodad`: usable at once, not "tentative" for a second or two.
                let _ = writeln!(script, "addr add {ip6}/64 dev eth0 nodad");
            }
            script.push_str("link set dev eth0 up\n");
            ip_batch(Some(&h.ns), &script)?;
        }
        nft_in(
            &self.bridge_ns,
            &format!(
                "table bridge {FAULT_TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    {ND_ACCEPT}\n  }}\n}}\n"
            ),
        )
    }

    /// Every namespace of the lab.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.bridge_ns.clone())
            .chain(self.hosts.iter().map(|h| h.ns.clone()))
            .collect()
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&HostInfo> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The host with address `ip` (of either family).
    pub fn host_of(&self, ip: IpAddr) -> Option<&HostInfo> {
        self.hosts.iter().find(|h| h.has(ip))
    }

    fn host_index(&self, ip: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.has(ip))
    }

    /// A command that runs `program` inside host `host`'s namespace (`ip netns exec`, which
    /// execs the program: the child's PID is the program's).
    pub fn command(&self, host: &HostInfo, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns]).arg(program);
        cmd
    }

    /// The faults in force.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Replaces the faults in force with `faults` (one nftables transaction: no packet sees
    /// a mix of the old and the new rules).
    pub fn set_faults(&mut self, faults: Vec<Fault>) -> Result<(), String> {
        if !self.faults.is_empty() {
            self.dropped_before += self.dropped_by_rules();
        }
        nft_in(&self.bridge_ns, &fault_script(FAULT_TABLE, &faults))?;
        self.faults = faults;
        Ok(())
    }

    /// Adds `faults` to those in force.
    pub fn add_faults(&mut self, faults: Vec<Fault>) -> Result<(), String> {
        let mut all = self.faults.clone();
        all.extend(faults);
        self.set_faults(all)
    }

    /// Removes every fault rule and every `unreachable` route: the network is whole again.
    pub fn heal(&mut self) -> Result<(), String> {
        self.set_faults(Vec::new())?;
        self.clear_routes()
    }

    /// The fault chain as nftables lists it, with each rule's packet counter.
    pub fn fault_listing(&self) -> Result<String, String> {
        run(
            Command::new("ip").args([
                "netns",
                "exec",
                &self.bridge_ns,
                "nft",
                "list",
                "chain",
                "bridge",
                FAULT_TABLE,
                "forward",
            ]),
            None,
        )
    }

    /// Packets the fault rules dropped so far, in all (rules replaced since included).
    pub fn dropped_packets(&self) -> u64 {
        self.dropped_before + self.dropped_by_rules()
    }

    /// Packets the rules in force dropped.
    fn dropped_by_rules(&self) -> u64 {
        self.fault_listing()
            .unwrap_or_default()
            .split("packets ")
            .skip(1)
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Inside host `from`, an `unreachable` route to each of `to`: connecting from `from` to
    /// them fails at once ("No route to host"), and what `from` sends them on open connections
    /// is not sent. One direction; the other needs routes in the other hosts. Each address
    /// is routed in its own family: `from`'s host is found by either of its addresses.
    pub fn unreachable(&mut self, from: IpAddr, to: &[IpAddr]) -> Result<(), String> {
        let i = self
            .host_index(from)
            .ok_or_else(|| format!("{from} is not a host of this lab"))?;
        let new: Vec<IpAddr> = to
            .iter()
            .filter(|d| !self.routes.contains(&(i, **d)))
            .copied()
            .collect();
        add_unreachable_in(&self.hosts[i].ns, &new)?;
        self.routes.extend(new.into_iter().map(|d| (i, d)));
        Ok(())
    }

    /// Deletes every `unreachable` route added.
    pub fn clear_routes(&mut self) -> Result<(), String> {
        let mut by_host: BTreeMap<usize, String> = BTreeMap::new();
        for (i, dst) in &self.routes {
            let _ = writeln!(
                by_host.entry(*i).or_default(),
                "route del unreachable {}",
                host_route(*dst)
            );
        }
        for (i, script) in by_host {
            ip_batch(Some(&self.hosts[i].ns), &script)?;
        }
        self.routes.clear();
        Ok(())
    }

    /// Leaves the lab in place when dropped (the `hosts up` command).
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// Kills every process still inside the lab's namespaces (by PID) and deletes them.
    pub fn remove(mut self) -> Result<(), String> {
        self.keep = true;
        remove_namespaces(&self.namespaces()).map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = remove_namespaces(&self.namespaces()) {
                eprintln!("hosts: cleaning up {}: {e}", self.prefix);
            }
        }
    }
}

/// Why labs cannot be made on this machine, if they cannot: the tools, root, network
/// namespaces, veth pairs, a bridge and nftables' bridge family are each tried (in a
/// namespace made for the check and removed after it).
pub fn check_capability() -> Result<(), String> {
    if Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err("iproute2's `ip` is not installed (apt-get install iproute2)".into());
    }
    if Command::new("nft")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err("`nft` is not installed (apt-get install nftables)".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse::<u32>().ok())
        });
    if uid != Some(0) {
        return Err(
            "it needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to make network namespaces".into(),
        );
    }
    let prefix = format!("{NAME_PREFIX}check-{}-", std::process::id());
    let lab = Lab::create(&prefix, Subnet([10, 254, 254]), &["a", "b"]).map_err(|e| {
        format!("cannot make network namespaces, veths, a bridge and an nftables bridge table: {e}")
    })?;
    lab.remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ips: &[[u8; 4]]) -> Vec<IpAddr> {
        ips.iter().map(|o| IpAddr::from(*o)).collect()
    }

    #[test]
    fn fault_rules_name_both_groups_and_skip_empty_ones() {
        let a = v4(&[[10, 1, 2, 1], [10, 1, 2, 2]]);
        let b = v4(&[[10, 1, 2, 3]]);
        let cut = Fault::cut(&a, &b);
        assert_eq!(
            cut[0].rules(),
            ["ip saddr { 10.1.2.1, 10.1.2.2 } ip daddr { 10.1.2.3 } counter drop"]
        );
        assert_eq!(
            cut[1].rules(),
            ["ip saddr { 10.1.2.3 } ip daddr { 10.1.2.1, 10.1.2.2 } counter drop"]
        );
        let loss = Fault::lossy(&a[..1], &b, 100);
        assert_eq!(
            loss[0].rules(),
            ["ip saddr { 10.1.2.1 } ip daddr { 10.1.2.3 } numgen random mod 1000 < 100 counter drop"]
        );
        assert!(Fault::cut(&a, &[])[0].rules().is_empty());
        let script = fault_script("t", &cut);
        assert!(script.starts_with("flush chain bridge t forward\n"));
        // Neighbour discovery first, then the two drops.
        assert_eq!(
            script.lines().nth(1),
            Some(format!("add rule bridge t forward {ND_ACCEPT}").as_str())
        );
        assert_eq!(script.lines().count(), 4);
    }

    #[test]
    fn a_fault_between_mixed_groups_is_one_rule_per_family() {
        let s = Subnet([10, 1, 2]);
        let (h1, h2, h3) = (s.host6(1), s.host6(2), s.host6(3));
        assert_eq!(h1.to_string(), "fd00:a:1:2::1");
        // Hosts with both addresses: a v4 rule and a v6 rule, never a mixed set.
        let a = [IpAddr::V4(s.host(1)), IpAddr::V6(h1)];
        let b = [IpAddr::V4(s.host(2)), IpAddr::V6(h2), IpAddr::V6(h3)];
        assert_eq!(
            Fault::cut(&a, &b)[0].rules(),
            [
                "ip saddr { 10.1.2.1 } ip daddr { 10.1.2.2 } counter drop",
                "ip6 saddr { fd00:a:1:2::1 } ip6 daddr { fd00:a:1:2::2, fd00:a:1:2::3 } counter drop",
            ]
        );
        // A family one group lacks gives no rule.
        let only6 = [IpAddr::V6(h3)];
        assert_eq!(
            Fault::lossy(&a, &only6, 5)[1].rules(),
            ["ip6 saddr { fd00:a:1:2::3 } ip6 daddr { fd00:a:1:2::1 } numgen random mod 1000 < 5 counter drop"]
        );
        assert_eq!(host_route(IpAddr::V6(h2)), "fd00:a:1:2::2/128");
        assert_eq!(host_route(IpAddr::V4(s.host(2))), "10.1.2.2/32");
        let host = HostInfo {
            name: "a".into(),
            ns: "gnh-x-a".into(),
            ip: s.host(1),
            ip6: Some(h1),
        };
        assert!(host.has(IpAddr::V6(h1)) && host.has(IpAddr::V4(s.host(1))));
        assert!(!host.has(IpAddr::V6(h2)));
        assert_eq!(host.addrs().len(), 2);
    }

    #[test]
    fn subnets_and_flood_lines_parse() {
        assert_eq!(Subnet::parse("10.9.8").unwrap(), Subnet([10, 9, 8]));
        assert_eq!(Subnet::parse("10.9.8.0/24").unwrap(), Subnet([10, 9, 8]));
        assert!(Subnet::parse("10.9").is_err());
        assert!(Subnet::parse("10.9.8.7").is_err());
        assert_eq!(Subnet([10, 9, 8]).host(3), Ipv4Addr::new(10, 9, 8, 3));
        assert_eq!(Subnet([10, 250, 0]).host6(3).to_string(), "fd00:a:fa::3");
        assert_eq!(Subnet([10, 250, 0]).prefix6(), "fd00:a:fa::/64");
        let r = FloodReport {
            target: Some("10.0.0.1:7000".parse().unwrap()),
            attempted: 500,
            held: 32,
        };
        assert_eq!(FloodReport::parse(&r.line()), Some(r));
    }

    #[test]
    fn removal_by_prefix_refuses_prefixes_a_lab_does_not_make() {
        assert!(remove_prefix("").is_err());
        assert!(remove_prefix("gnh-").is_err());
        assert!(remove_prefix("netns").is_err());
    }
}
