//! `hosts`: a multi-host network on one Linux machine, in network namespaces, for running a
//! cluster by hand and injecting network faults (see `docs/RUNNING.md`, "Many hosts on one
//! machine"). Needs root, iproute2 and nftables. The test suite `bins/tests/hosts.rs` uses the
//! same code (`gossip_bins::hosts`).

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gossip_bins::hosts::{self, Fault, Lab, Subnet, NAME_PREFIX};

/// Hosts in network namespaces: one namespace per host, joined by a bridge in a namespace of
/// its own; faults with nftables in the bridge. The machine's own namespace is not touched.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make a lab: hosts h1..hN (or the names given), each with its own IPv4 address (and
    /// IPv6 address, if the kernel has IPv6).
    Up {
        /// The lab's name: its namespaces are `gnh-<name>-<host>`. An earlier lab of this name
        /// is removed first.
        #[arg(long, default_value = "demo")]
        name: String,
        /// Hosts h1..hN.
        #[arg(long, default_value_t = 6)]
        hosts: u8,
        /// Host names instead (comma-separated, at most 15 characters each).
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// The hosts' /24: host i gets a.b.c.i (and fd00:a:b:c::i, each byte in hex).
        #[arg(long, default_value = "10.250.0")]
        subnet: String,
    },
    /// Remove a lab: kill every process inside it (by PID) and delete its namespaces.
    Down {
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Show a lab's hosts, addresses, processes and faults.
    List {
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Run a command inside a host (its PID is the command's).
    Exec {
        #[arg(long, default_value = "demo")]
        name: String,
        /// The host.
        host: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Drop every packet (IPv4 and IPv6) between two groups of hosts (both ways unless
    /// --oneway): packets vanish, connections time out.
    Cut {
        #[arg(long, default_value = "demo")]
        name: String,
        /// Hosts on one side (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<String>,
        /// Hosts on the other side (comma-separated; default: every other host).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Only packets from --from to --to.
        #[arg(long)]
        oneway: bool,
    },
    /// Drop packets between two groups of hosts at random.
    Loss {
        #[arg(long, default_value = "demo")]
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<String>,
        /// Default: every other host.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Percentage of packets dropped (0.1 steps).
        #[arg(long)]
        percent: f64,
        #[arg(long)]
        oneway: bool,
    },
    /// Add `unreachable` routes inside --from hosts to the --to hosts' addresses (IPv4 and
    /// IPv6): their connects fail at once (a different fault from a silent drop).
    Unreachable {
        #[arg(long, default_value = "demo")]
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<String>,
        /// Default: every other host.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// Remove every fault rule and every `unreachable` route.
    Heal {
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Internal: forward request lines from a Unix socket to nodes, from the namespace it runs
    /// in (the test suite's status queries).
    #[command(hide = true)]
    Relay {
        #[arg(long)]
        socket: PathBuf,
    },
    /// Internal: a connection flood from the host it runs in (the per-IP limit test).
    #[command(hide = true)]
    Flood {
        #[arg(long, required = true)]
        target: Vec<SocketAddr>,
        #[arg(long, default_value_t = 500)]
        connections: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

fn prefix(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(format!("lab name {name:?}: 1 to 24 letters, digits or '_'"));
    }
    Ok(format!("{NAME_PREFIX}{name}-"))
}

/// A host of an existing lab, as its namespace shows it.
struct LabHost {
    name: String,
    ns: String,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
}

impl LabHost {
    /// Its addresses, IPv4 then IPv6.
    fn addrs(&self) -> impl Iterator<Item = IpAddr> {
        (self.ip.map(IpAddr::V4).into_iter()).chain(self.ip6.map(IpAddr::V6))
    }
}

/// The lab's hosts, from the namespaces that exist.
fn lab_hosts(name: &str) -> Result<Vec<LabHost>, String> {
    let p = prefix(name)?;
    let mut hosts: Vec<LabHost> = hosts::namespaces()?
        .into_iter()
        .filter_map(|ns| {
            let host = ns.strip_prefix(&p)?.to_string();
            (host != "br").then(|| LabHost {
                ip: hosts::address_in(&ns),
                ip6: hosts::address6_in(&ns),
                name: host,
                ns,
            })
        })
        .collect();
    hosts.sort_by_key(|h| (h.ip, h.name.clone()));
    if hosts.is_empty() {
        return Err(format!(
            "no lab named {name:?} (make one with `hosts up --name {name}`)"
        ));
    }
    Ok(hosts)
}

/// Every address (IPv4 and IPv6) of the hosts `names`, or of every host but `except` if
/// `names` is empty: a fault between hosts holds for both families.
fn ips(hosts: &[LabHost], names: &[String], except: &[String]) -> Result<Vec<IpAddr>, String> {
    if names.is_empty() {
        return Ok(hosts
            .iter()
            .filter(|h| !except.contains(&h.name))
            .flat_map(LabHost::addrs)
            .collect());
    }
    let mut all = Vec::new();
    for n in names {
        let host = hosts
            .iter()
            .find(|h| h.name == *n)
            .ok_or_else(|| format!("no host {n:?} in this lab"))?;
        let before = all.len();
        all.extend(host.addrs());
        if all.len() == before {
            return Err(format!("host {n:?} has no address"));
        }
    }
    Ok(all)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Up {
            name,
            hosts: n,
            names,
            subnet,
        } => {
            let p = prefix(&name)?;
            let subnet = Subnet::parse(&subnet)?;
            let names: Vec<String> = if names.is_empty() {
                (1..=n).map(|i| format!("h{i}")).collect()
            } else {
                names
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let lab = Lab::create(&p, subnet, &refs)?;
            let v6 = if hosts::ipv6_available() {
                format!(" and {}", subnet.prefix6())
            } else {
                " (no IPv6 on this kernel)".to_string()
            };
            println!(
                "lab {name}: bridge in namespace {}, subnet {subnet}{v6}",
                lab.bridge_ns
            );
            for h in &lab.hosts {
                let ip6 = h.ip6.map_or_else(|| "-".to_string(), |i| i.to_string());
                println!(
                    "  {:<8} {:<16} {:<24} namespace {}",
                    h.name, h.ip, ip6, h.ns
                );
            }
            println!("run a node:  hosts exec --name {name} <host> target/release/seed --ip <address> ...");
            println!("remove it:   hosts down --name {name}");
            lab.keep();
            Ok(())
        }
        Cmd::Down { name } => {
            let p = prefix(&name)?;
            let gone = hosts::remove_prefix(&p)?;
            println!("removed {} namespaces of lab {name}", gone.len());
            Ok(())
        }
        Cmd::List { name } => {
            let hosts = lab_hosts(&name)?;
            for h in &hosts {
                let ip = h.ip.map_or_else(|| "-".to_string(), |i| i.to_string());
                let ip6 = h.ip6.map_or_else(|| "-".to_string(), |i| i.to_string());
                let pids = hosts::processes_in(&h.ns);
                println!(
                    "  {:<8} {ip:<16} {ip6:<24} {}  processes: {pids:?}",
                    h.name, h.ns
                );
            }
            let br = format!("{}br", prefix(&name)?);
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &br, "nft", "list", "chain", "bridge"])
                .args([hosts::FAULT_TABLE, "forward"])
                .output()
                .map_err(|e| e.to_string())?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            Ok(())
        }
        Cmd::Exec {
            name,
            host,
            command,
        } => {
            let ns = format!("{}{host}", prefix(&name)?);
            if !hosts::namespaces()?.contains(&ns) {
                return Err(format!("no host {host:?} in lab {name:?}"));
            }
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&command)
                .exec();
            Err(format!("cannot run ip netns exec: {err}"))
        }
        Cmd::Cut {
            name,
            from,
            to,
            oneway,
        } => {
            let hosts = lab_hosts(&name)?;
            let (a, b) = (ips(&hosts, &from, &[])?, ips(&hosts, &to, &from)?);
            let faults = if oneway {
                vec![Fault::Drop { from: a, to: b }]
            } else {
                Fault::cut(&a, &b)
            };
            hosts::add_fault_rules(&format!("{}br", prefix(&name)?), &faults)
        }
        Cmd::Loss {
            name,
            from,
            to,
            percent,
            oneway,
        } => {
            if !(0.0..=100.0).contains(&percent) {
                return Err("--percent must be between 0 and 100".into());
            }
            let per_mille = (percent * 10.0).round() as u32;
            let hosts = lab_hosts(&name)?;
            let (a, b) = (ips(&hosts, &from, &[])?, ips(&hosts, &to, &from)?);
            let faults = if oneway {
                vec![Fault::Loss {
                    from: a,
                    to: b,
                    per_mille,
                }]
            } else {
                Fault::lossy(&a, &b, per_mille)
            };
            hosts::add_fault_rules(&format!("{}br", prefix(&name)?), &faults)
        }
        Cmd::Unreachable { name, from, to } => {
            let hosts = lab_hosts(&name)?;
            let dsts = ips(&hosts, &to, &from)?;
            for f in &from {
                let ns = &hosts
                    .iter()
                    .find(|h| h.name == *f)
                    .ok_or_else(|| format!("no host {f:?} in this lab"))?
                    .ns;
                hosts::add_unreachable_in(ns, &dsts)?;
            }
            Ok(())
        }
        Cmd::Heal { name } => {
            let hosts = lab_hosts(&name)?;
            hosts::flush_faults(&format!("{}br", prefix(&name)?))?;
            let mut routes = 0;
            for h in &hosts {
                routes += hosts::clear_unreachable_in(&h.ns)?;
            }
            println!("lab {name}: fault rules flushed, {routes} unreachable routes deleted");
            Ok(())
        }
        Cmd::Relay { socket } => hosts::serve_relay(&socket, 64 * 1024 * 1024),
        Cmd::Flood {
            target,
            connections,
            seconds,
        } => {
            let mut out = std::io::stdout();
            hosts::flood(
                &target,
                connections,
                Duration::from_secs_f64(seconds.max(0.0)),
                &mut out,
            )
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hosts: error: {e}");
            ExitCode::FAILURE
        }
    }
}
