//! The simulator's invariant checker (`gossip_driver_sim::checker`) over a real run: every
//! line of the shared output file is parsed back into the node's [`Event`], its endpoints
//! mapped onto the simulator's address plan (seed `i` → seed `i`, peer host `p<j+1>` → peer
//! `j`), and fed to the checker in the order the lines were appended, with each node's
//! starts, kills and exits interleaved by time. So promises 1 to 4 are checked after every
//! event of the whole run, not only at its end:
//!
//! 1. every Peer List change (admission, removal, leave) carries a quorum of distinct seeds
//!    that each voted yes for exactly it (or held it), and entries only move up;
//! 2. a `DEAD_REPORT` follows the reporter's own consensus verdict, whose dead witnesses
//!    really answered dead;
//! 3. no peer instance receives a gossip first-time twice, and every gossip received was
//!    generated;
//! 4. no peer that was never killed, never paused and whose host's links were never faulted
//!    is removed, and no peer is certified `LEFT` at an incarnation it never left from (its
//!    own `Leaving the network` line tells the checker).
//!
//! Endpoints and gossip texts are read in both families: `10.0.0.1:7000` and
//! `[fd00::1]:7000`, `Dead Node:[fd00::1]:7000:...`.
//!
//! File order is causal for what the checker relates: a node appends an event's line before
//! it sends the messages of the same step (votes before the proposer's commit, a generated
//! gossip before its receipt).

use std::net::SocketAddr;
use std::sync::Arc;

use gossip_core::event::{ChangeSource, ProposalKind};
use gossip_core::msg::{DeadReport, Endpoint, Entry, Status};
use gossip_core::{Event, Message};
use gossip_driver_sim::addr::Addrs;
use gossip_driver_sim::checker::Checker;
use gossip_driver_sim::config::SimConfig;

use super::HostNet;

/// What the checker found.
pub struct CheckReport {
    /// Every broken promise, as the checker words it (in simulator endpoints, mapped back).
    pub violations: Vec<String>,
    /// Lines fed, events by kind, and what they add up to.
    pub summary: String,
}

struct Map {
    seeds: Vec<SocketAddr>,
    peers: Vec<SocketAddr>,
    addrs: Addrs,
}

impl Map {
    fn node(&self, real: &SocketAddr) -> Option<u32> {
        if let Some(i) = self.seeds.iter().position(|s| s == real) {
            return Some(i as u32);
        }
        self.peers
            .iter()
            .position(|p| p == real)
            .map(|j| self.addrs.seeds + j as u32)
    }

    /// The simulator endpoint of a real one (unknown endpoints stay as they are, and the
    /// checker treats them as strangers).
    fn ep(&self, real: &SocketAddr) -> Endpoint {
        self.node(real).map_or(*real, |n| self.addrs.endpoint(n))
    }

    fn list(&self, text: &str) -> Option<Vec<Endpoint>> {
        if text == "none" {
            return Some(Vec::new());
        }
        text.split(", ")
            .map(|e| e.parse::<SocketAddr>().ok().map(|a| self.ep(&a)))
            .collect()
    }

    /// Real endpoints written in the checker's words, for the report.
    fn unmap(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in 0..self.addrs.nodes() {
            let sim = self.addrs.endpoint(n).to_string();
            let real = if n < self.addrs.seeds {
                self.seeds[n as usize]
            } else {
                self.peers[(n - self.addrs.seeds) as usize]
            };
            out = out.replace(&format!("{sim} "), &format!("{real} "));
            out = out.replace(&format!("{sim},"), &format!("{real},"));
            out = out.replace(&format!("{sim})"), &format!("{real})"));
            out = out.replace(&format!("{sim}:"), &format!("{real}:"));
        }
        out
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = s.find(a)? + a.len();
    let rest = &s[start..];
    Some(&rest[..rest.find(b)?])
}

fn ep_at(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// The endpoint at the start of `s` (`10.0.0.1:7000...` or `[fd00::1]:7000...`), where
/// fields after it are joined with `:` too, and the rest after it.
fn ep_prefix(s: &str) -> Option<(SocketAddr, &str)> {
    let host_end = if s.starts_with('[') {
        s.find("]:")? + 1
    } else {
        s.find(':')?
    };
    let port_len = s[host_end + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(s.len() - host_end - 1);
    let end = host_end + 1 + port_len;
    Some((ep_at(&s[..end])?, &s[end..]))
}

/// One parsed line: an event, a sent `DEAD_REPORT` about an endpoint, or the node starting
/// to leave.
enum Parsed {
    Event(Event),
    DeadReport(Endpoint),
    Leaving,
}

/// Every line starting with one of these is an event the checker relies on: one it cannot
/// parse (a changed log format) is reported, not skipped.
const MUST_PARSE: &[&str] = &[
    "Vote ",
    "Registration consensus COMMIT for ",
    "Dead-node consensus COMMIT for ",
    "Leave consensus COMMIT for ",
    "Leaving the network: ",
    "Registration quorum achieved: ",
    "Neighbor added: ",
    "Neighbor dropped: ",
    "Generated gossip: ",
    "First-time gossip received: ",
    "Suspicion check for ",
    "Peer-level suspicion result for ",
    "Dead Node:",
    "Removed from the Peer List (incarnation ",
];

fn parse(map: &Map, text: &str) -> Option<Parsed> {
    use Parsed::Event as E;
    if let Some(rest) = text.strip_prefix("Vote ") {
        // Vote YES on registration proposal <id> for <peer> (incarnation N) from <proposer>
        let yes = rest.starts_with("YES ");
        let kind = if rest.contains(" registration proposal ") {
            ProposalKind::Register
        } else if rest.contains(" leave proposal ") {
            ProposalKind::Leave
        } else {
            ProposalKind::Removal
        };
        let id = between(rest, "proposal ", " for ")?;
        let peer = ep_at(between(rest, " for ", " (incarnation ")?)?;
        let inc = between(rest, "(incarnation ", ")")?.parse().ok()?;
        let proposer = ep_at(rest.rsplit_once(" from ")?.1)?;
        return Some(E(Event::VoteCast {
            kind,
            proposal_id: id.to_string(),
            peer: map.ep(&peer),
            incarnation: inc,
            yes,
            proposer: map.ep(&proposer),
        }));
    }
    let commit = text
        .strip_prefix("Registration consensus COMMIT for ")
        .map(|rest| (Status::Alive, rest))
        .or_else(|| {
            text.strip_prefix("Dead-node consensus COMMIT for ")
                .map(|rest| (Status::Removed, rest))
        })
        .or_else(|| {
            text.strip_prefix("Leave consensus COMMIT for ")
                .map(|rest| (Status::Left, rest))
        });
    if let Some((status, rest)) = commit {
        // <peer> (incarnation N) via <own round|commit sync|anti-entropy>: ... (votes: a, b)
        let peer = ep_at(rest.split(' ').next()?)?;
        let inc = between(rest, "(incarnation ", ")")?.parse().ok()?;
        let via = match between(rest, ") via ", ": ")? {
            "own round" => ChangeSource::LocalCommit,
            "commit sync" => ChangeSource::CommitSync,
            "anti-entropy" => ChangeSource::AntiEntropy,
            _ => return None,
        };
        let votes = map.list(between(rest, "(votes: ", ")")?)?;
        return Some(E(Event::EntryChanged {
            entry: Entry {
                peer: map.ep(&peer),
                incarnation: inc,
                status,
                votes,
            },
            via,
        }));
    }
    if let Some(rest) = text.strip_prefix("Registration quorum achieved: ") {
        let seeds = map.list(between(rest, "accepted (", "), incarnation")?)?;
        let inc = rest.rsplit_once("incarnation ")?.1.parse().ok()?;
        return Some(E(Event::RegistrationQuorum {
            seeds,
            incarnation: inc,
        }));
    }
    if let Some(rest) = text.strip_prefix("Neighbor added: ") {
        let peer = ep_at(rest.split(' ').next()?)?;
        let deg = between(rest, "(its degree ", ")")?.parse().ok()?;
        return Some(E(Event::NeighbourAdded {
            peer: map.ep(&peer),
            their_degree: deg,
        }));
    }
    if let Some(rest) = text.strip_prefix("Neighbor dropped: ") {
        let peer = ep_at(rest.split(' ').next()?)?;
        return Some(E(Event::NeighbourDropped {
            peer: map.ep(&peer),
            reason: "logged",
        }));
    }
    if let Some(rest) = text.strip_prefix("Generated gossip: ") {
        let (t, n) = rest.rsplit_once(" (#")?;
        return Some(E(Event::GossipGenerated {
            text: Arc::from(t),
            msg_no: n.strip_suffix(')')?.parse().ok()?,
        }));
    }
    if let Some(rest) = text.strip_prefix("First-time gossip received: ") {
        let (t, tail) = rest.rsplit_once(" from ")?;
        if let Some(from) = tail.strip_suffix(" (by repair)") {
            return Some(E(Event::GossipFirstReceived {
                text: Arc::from(t),
                from: map.ep(&ep_at(from)?),
                hops: 0,
                repaired: true,
            }));
        }
        let (from, hops) = tail.split_once(" (hops=")?;
        return Some(E(Event::GossipFirstReceived {
            text: Arc::from(t),
            from: map.ep(&ep_at(from)?),
            hops: hops.strip_suffix(')')?.parse().ok()?,
            repaired: false,
        }));
    }
    if let Some(rest) = text.strip_prefix("Suspicion check for ") {
        // <suspect> asked by <requester>: alive=True
        let suspect = ep_at(rest.split(' ').next()?)?;
        let requester = ep_at(between(rest, " asked by ", ": alive=")?)?;
        let alive = rest.ends_with("alive=True");
        return Some(E(Event::SuspectAnswered {
            suspect: map.ep(&suspect),
            requester: map.ep(&requester),
            alive,
        }));
    }
    if let Some(rest) = text.strip_prefix("Peer-level suspicion result for ") {
        // <ip:port>: dead=3 alive=0 consensus=True (witnesses saying dead: a, b)
        let (suspect, _) = ep_prefix(rest)?;
        let dead = between(rest, " dead=", " ")?.parse().ok()?;
        let alive = between(rest, " alive=", " ")?.parse().ok()?;
        let consensus = rest.contains("consensus=True");
        let witnesses = map.list(between(rest, "(witnesses saying dead: ", ")")?)?;
        return Some(E(Event::SuspicionVerdict {
            suspect: map.ep(&suspect),
            dead_votes: dead,
            alive_votes: alive,
            dead_witnesses: witnesses,
            consensus,
        }));
    }
    if let Some(rest) = text.strip_prefix("Dead Node:") {
        // <ip>:<port>:<time>:<self ip> (DEAD_REPORT sent to ...), an IPv6 <ip> in brackets
        let (dead, tail) = ep_prefix(rest)?;
        tail.starts_with(':').then_some(())?;
        return Some(Parsed::DeadReport(map.ep(&dead)));
    }
    if text.starts_with("Leaving the network: incarnation ") {
        return Some(Parsed::Leaving);
    }
    if let Some(rest) = text.strip_prefix("Removed from the Peer List (incarnation ") {
        return Some(E(Event::Rejoining {
            removed_incarnation: rest.split(')').next()?.parse().ok()?,
        }));
    }
    None
}

/// Runs the checker over the network's whole output file (see the module doc).
pub fn check_log(net: &HostNet) -> CheckReport {
    let map = Map {
        seeds: net.seeds.clone(),
        peers: net.peers.clone(),
        addrs: Addrs {
            seeds: net.seeds.len() as u32,
            peers: net.peers.len() as u32,
        },
    };
    let mut checker = Checker::new(&SimConfig::new(0, map.addrs.seeds, map.addrs.peers));
    // The log does not say when packets were dropped: promise 4 never judges a peer of a
    // faulted host (or a paused node).
    for (j, p) in map.peers.iter().enumerate() {
        if net.lossy.contains(&p.ip()) {
            let n = map.addrs.seeds + j as u32;
            checker.excuse(n);
        }
    }
    let log = net.log();
    let t0 = log
        .first()
        .map_or(0, |l| l.unix_ms)
        .min(net.life.first().map_or(u64::MAX, |l| l.0));
    let mut life = net.life.iter().peekable();
    let (mut lines, mut events) = (0u64, 0u64);
    let mut unreadable = Vec::new();
    let mut last = 0;
    for line in &log {
        lines += 1;
        // Lines are appended in real time order; clocks are one (the machine's), so a start
        // or kill at time T precedes every line stamped after T.
        while let Some((t, addr, up)) = life.peek() {
            if *t > line.unix_ms {
                break;
            }
            if let Some(n) = map.node(addr) {
                let now = t.saturating_sub(t0).max(last);
                if *up {
                    checker.started(now, n);
                } else {
                    checker.crashed(now, n);
                }
            }
            life.next();
        }
        let Some(node) = map.node(&line.node) else {
            continue;
        };
        let now = line.unix_ms.saturating_sub(t0).max(last);
        last = now;
        match parse(&map, &line.text) {
            Some(Parsed::Event(ev)) => {
                events += 1;
                checker.on_event(now, node, &ev);
            }
            Some(Parsed::DeadReport(dead)) => {
                events += 1;
                let report = DeadReport {
                    dead,
                    self_ip: map.ep(&line.node).ip(),
                    timestamp: 0,
                    reporter: map.ep(&line.node),
                    text: None,
                    incarnation: None,
                    witnesses: Vec::new(),
                };
                checker.on_send(node, &Message::DeadReport(Box::new(report)));
                checker.end_step(now);
            }
            Some(Parsed::Leaving) => {
                events += 1;
                checker.leaving(now, node);
            }
            None if MUST_PARSE.iter().any(|p| line.text.starts_with(p)) => {
                unreadable.push(line.text.clone());
            }
            None => {}
        }
    }
    let mut violations: Vec<String> = checker
        .violations()
        .iter()
        .map(|v| map.unmap(&v.to_string()))
        .collect();
    // A line the checker must see but cannot read would make its promises pass unchecked.
    violations.extend(
        unreadable
            .iter()
            .map(|l| format!("the checker cannot read this line: {l}")),
    );
    let summary = format!(
        "checker: {lines} lines, {events} events, {} gossips, {} first-time deliveries, \
         {} removals of never-killed peers (allowed: their links were faulted), {} violations",
        checker.gossips().len(),
        checker.first_deliveries(),
        checker.false_removals(),
        checker.violation_count(),
    );
    CheckReport {
        violations,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::ep_prefix;

    #[test]
    fn endpoints_at_the_start_of_colon_joined_fields_parse_in_both_families() {
        let (ep, rest) = ep_prefix("10.0.0.5:7000:1767225600:10.0.0.2 (x)").expect("v4");
        assert_eq!(ep.to_string(), "10.0.0.5:7000");
        assert_eq!(rest, ":1767225600:10.0.0.2 (x)");
        let (ep, rest) = ep_prefix("[fd00:a:1::5]:7000:1767225600:[fd00:a:1::2]").expect("v6");
        assert_eq!(ep.to_string(), "[fd00:a:1::5]:7000");
        assert_eq!(rest, ":1767225600:[fd00:a:1::2]");
        let (ep, rest) = ep_prefix("[fd00::5]:7000: dead=3").expect("v6, then text");
        assert_eq!((ep.port(), rest), (7000, ": dead=3"));
        assert_eq!(
            ep_prefix("[fd00::5]:7000").map(|(e, r)| (e.port(), r)),
            Some((7000, ""))
        );
        assert!(ep_prefix("fd00::5:7000").is_none());
        assert!(ep_prefix("[fd00::5]7000").is_none());
        assert!(ep_prefix("nonsense").is_none());
    }
}
