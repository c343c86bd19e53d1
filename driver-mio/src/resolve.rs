//! Host names: the driver resolves what `config.txt` and the flags name to the addresses the
//! core takes (the core never resolves), and re-resolves a seed's name when the seed stops
//! answering.
//!
//! A name resolves to one address, the same on every node: the lowest of those the resolver
//! returns (IPv4 before IPv6), not the first, whose order depends on each host's address
//! selection policy. A node knows a seed by the address its name had when the node started:
//! that is what votes and certificates name. When the seed stops answering, the name is
//! resolved again (at most every [`RETRY_EVERY`], on a thread of its own so the loop never
//! waits for DNS) and, if it moved, the node dials the new address for it.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gossip_core::config::{parse_host, SeedHost, SeedLine};
use gossip_core::msg::Endpoint;

/// Re-resolve one seed's name at most this often.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Resolves `host` with `port` to one address (see the module documentation for which).
pub fn resolve(host: &SeedHost, port: u16) -> io::Result<SocketAddr> {
    match host {
        SeedHost::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        SeedHost::Name(name) => lowest((name.as_str(), port).to_socket_addrs()?)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no address")),
    }
}

fn lowest(addrs: impl Iterator<Item = SocketAddr>) -> Option<SocketAddr> {
    addrs.min()
}

/// Parses `host:port`: `1.2.3.4:5000`, `[::1]:5000` or `name:5000` (a bare IPv6 address
/// with a port is ambiguous and refused).
pub fn parse_host_port(text: &str) -> Result<(SeedHost, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: expected <host>:<port>"))?;
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "{text:?}: an IPv6 address with a port goes in brackets, e.g. [::1]:5000"
        ));
    }
    let host = parse_host(host).map_err(|e| format!("{text:?}: {e}"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{text:?}: port must be an integer in 1..=65535"))?;
    Ok((host, port))
}

/// Parses and resolves `host:port`; the error says which and why.
pub fn resolve_host_port(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = parse_host_port(text)?;
    resolve(&host, port).map_err(|e| format!("cannot resolve {host}: {e}"))
}

/// A seed the config names by a host name, and the address it had at start (its identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedName {
    /// The address the name resolved to at start: what this node knows the seed as.
    pub endpoint: Endpoint,
    /// The name as the config writes it (lower-cased).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// A resolved seed list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedList {
    /// Every seed's address, in config order.
    pub seeds: Vec<Endpoint>,
    /// The seeds named by host name, to re-resolve when they stop answering.
    pub names: Vec<SeedName>,
}

/// Resolves every line of a seed list. An unresolvable name, or two lines that reach the
/// same address, is an error naming the line.
pub fn resolve_seed_lines(lines: &[SeedLine]) -> Result<SeedList, String> {
    let mut list = SeedList::default();
    let mut line_of: HashMap<Endpoint, usize> = HashMap::new();
    for l in lines {
        let endpoint = resolve(&l.host, l.port)
            .map_err(|e| format!("line {}: cannot resolve seed {}: {e}", l.line, l.host))?;
        if let Some(first) = line_of.insert(endpoint, l.line) {
            return Err(format!(
                "line {}: seed {},{} is {endpoint}, which line {first} lists already",
                l.line, l.host, l.port
            ));
        }
        if let SeedHost::Name(host) = &l.host {
            list.names.push(SeedName {
                endpoint,
                host: host.clone(),
                port: l.port,
            });
        }
        list.seeds.push(endpoint);
    }
    Ok(list)
}

/// Where the host dials each seed known by name, re-resolved when it stops answering.
pub(crate) struct Renamer {
    names: HashMap<Endpoint, SeedName>,
    /// Seeds whose name now resolves elsewhere than their identity.
    dial: HashMap<Endpoint, SocketAddr>,
    last_try: HashMap<Endpoint, Instant>,
    /// Resolutions in flight (answered by their threads on `rx`).
    pending: usize,
    tx: mpsc::Sender<(Endpoint, io::Result<SocketAddr>)>,
    rx: mpsc::Receiver<(Endpoint, io::Result<SocketAddr>)>,
}

impl Default for Renamer {
    fn default() -> Renamer {
        let (tx, rx) = mpsc::channel();
        Renamer {
            names: HashMap::new(),
            dial: HashMap::new(),
            last_try: HashMap::new(),
            pending: 0,
            tx,
            rx,
        }
    }
}

impl Renamer {
    pub(crate) fn set_names(&mut self, names: Vec<SeedName>) {
        self.names = names.into_iter().map(|n| (n.endpoint, n)).collect();
        self.dial.retain(|ep, _| self.names.contains_key(ep));
    }

    /// Where to dial `to`.
    pub(crate) fn dial_addr(&self, to: Endpoint) -> SocketAddr {
        self.dial.get(&to).copied().unwrap_or(to)
    }

    /// `to` did not answer (a failed connect, a timeout): if it is a seed known by name,
    /// resolve the name again, unless that was tried within [`RETRY_EVERY`].
    pub(crate) fn unanswered(&mut self, to: Endpoint, now: Instant) {
        let Some(name) = self.names.get(&to) else {
            return;
        };
        if self
            .last_try
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < RETRY_EVERY)
        {
            return;
        }
        self.last_try.insert(to, now);
        let (host, port, tx) = (
            SeedHost::Name(name.host.clone()),
            name.port,
            self.tx.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let _ = tx.send((to, resolve(&host, port)));
            });
        match spawned {
            Ok(_) => self.pending += 1,
            Err(e) => log::warn!("cannot start a thread to resolve {}: {e}", name.host),
        }
    }

    /// Takes the answers of finished resolutions: a seed whose name moved is dialled at its
    /// new address from now on; a failure is logged (and retried when it next fails).
    pub(crate) fn poll(&mut self) {
        if self.pending == 0 {
            return;
        }
        while let Ok((to, answer)) = self.rx.try_recv() {
            self.pending -= 1;
            let Some(name) = self.names.get(&to) else {
                continue;
            };
            match answer {
                Ok(addr) if addr == self.dial_addr(to) => {}
                Ok(addr) => {
                    log::warn!(
                        "seed {}:{} now resolves to {addr} (known as {to}): dialling it there",
                        name.host,
                        name.port
                    );
                    if addr == to {
                        self.dial.remove(&to);
                    } else {
                        self.dial.insert(to, addr);
                    }
                }
                Err(e) => log::warn!(
                    "seed {}:{} (known as {to}) does not answer and its name does not resolve: {e}; retrying in {} s",
                    name.host,
                    name.port,
                    RETRY_EVERY.as_secs()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let ok = |t: &str| parse_host_port(t).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(ok("127.0.0.1:5000"), Ok("127.0.0.1 5000".into()));
        assert_eq!(ok("[::1]:5000"), Ok("[::1] 5000".into()));
        assert_eq!(ok("Seed-0.example:7"), Ok("seed-0.example 7".into()));
        for bad in [
            "::1:5000",
            "localhost",
            "localhost:0",
            "[::1:5000",
            "a_b:1",
            ":5",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_resolves_to_its_lowest_address() {
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let v4b: SocketAddr = "10.0.0.1:5".parse().unwrap();
        assert_eq!(lowest([v6, v4, v4b].into_iter()), Some(v4b));
        assert_eq!(
            resolve(&SeedHost::Name("localhost".into()), 5).ok(),
            Some(v4),
            "localhost is 127.0.0.1 (and maybe ::1): the lowest is IPv4"
        );
    }

    #[test]
    fn a_seed_list_resolves_and_refuses_two_lines_at_one_address() {
        let lines =
            gossip_core::config::parse_seed_lines("127.0.0.1,5001\nlocalhost,5002\n[::1],5003\n")
                .unwrap();
        let list = resolve_seed_lines(&lines).unwrap();
        let want: Vec<SocketAddr> = ["127.0.0.1:5001", "127.0.0.1:5002", "[::1]:5003"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(list.seeds, want);
        assert_eq!(
            list.names,
            [SeedName {
                endpoint: want[1],
                host: "localhost".into(),
                port: 5002
            }]
        );
        let twice =
            gossip_core::config::parse_seed_lines("127.0.0.1,5001\nlocalhost,5001\n").unwrap();
        let e = resolve_seed_lines(&twice).unwrap_err();
        assert!(e.starts_with("line 2:") && e.contains("line 1"), "{e}");
        let nowhere = gossip_core::config::parse_seed_lines("no-such-host.invalid,5001\n").unwrap();
        let e = resolve_seed_lines(&nowhere).unwrap_err();
        assert!(
            e.contains("cannot resolve seed no-such-host.invalid"),
            "{e}"
        );
    }

    #[test]
    fn a_moved_seed_is_dialled_at_its_new_address() {
        let mut r = Renamer::default();
        let identity: SocketAddr = "127.0.0.9:5002".parse().unwrap();
        r.set_names(vec![SeedName {
            endpoint: identity,
            host: "localhost".into(),
            port: 5002,
        }]);
        assert_eq!(r.dial_addr(identity), identity);
        let now = Instant::now();
        r.unanswered(identity, now);
        r.unanswered(identity, now + Duration::from_secs(1)); // throttled
        assert_eq!(r.pending, 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.pending > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            r.poll();
        }
        assert_eq!(r.dial_addr(identity), "127.0.0.1:5002".parse().unwrap());
        // an endpoint not known by name is never resolved
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        r.unanswered(other, now);
        assert_eq!((r.pending, r.dial_addr(other)), (0, other));
    }
}
