//! The spec's validation checklist, end to end on real processes: every line it names is
//! logged, by the node where the spec expects it, in a run that kills a peer on an overlay
//! with cycles (seven peers wanting three neighbours each), so that duplicates really occur.
//!
//! - peers: `Registration quorum achieved`, `Bootstrap complete`, `Generated gossip`,
//!   `First-time gossip received`, `Duplicate gossip ignored`;
//! - the killed peer's neighbours: `Neighbor suspicion triggered`, then `Peer-level suspicion
//!   result ... consensus=True`, then the `Dead Node:` report;
//! - every seed: `Registration consensus COMMIT` for every peer and `Dead-node consensus
//!   COMMIT` for the killed one, once each, saying how it learned (at least one seed by its
//!   own round);
//! - a duplicate report after the commit: the seed logs `ABORT ..., already removed`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{counter, entry, parse_line, wait_for, LogLine, Net};
use gossip_core::msg::{RoleStatus, Status};

const MAX_GOSSIP: usize = 3;
const PEERS: u8 = 7;

/// The `<ip:port>` after `for ` in a line.
fn subject(text: &str) -> Option<SocketAddr> {
    let rest = &text[text.find(" for ")? + " for ".len()..];
    rest.split([' ', ','])
        .next()?
        .trim_end_matches(':')
        .parse()
        .ok()
}

/// The text of a gossip line (`<phrase>: <text> ...`).
fn gossip_text(text: &str) -> String {
    let rest = text.split_once(": ").map_or("", |(_, r)| r);
    rest.split(' ').next().unwrap_or_default().to_string()
}

fn lines_with<'a>(lines: &'a [LogLine], phrase: &str) -> Vec<&'a LogLine> {
    lines
        .iter()
        .filter(|l| l.text.starts_with(phrase))
        .collect()
}

/// Every line starting with `phrase` was logged by a node of `by`.
fn only_by(lines: &[LogLine], phrase: &str, by: &BTreeSet<SocketAddr>, who: &str) {
    for l in lines_with(lines, phrase) {
        assert!(
            by.contains(&l.node),
            "{phrase:?} logged by {}, not by a {who}: {}",
            l.node,
            l.text
        );
    }
}

#[test]
fn every_checklist_line_is_logged_where_the_spec_expects_it() {
    let started = Instant::now();
    let mut net = Net::start(
        "checklist",
        3,
        &[
            "--gossip-interval-ms",
            "300",
            "--max-gossip",
            "3",
            "--min-degree",
            "3",
        ],
    );
    let peers: Vec<SocketAddr> = (0..PEERS)
        .map(|i| net.add_peer_on([127, 0, 0, 60 + i]))
        .collect();
    let seeds: BTreeSet<SocketAddr> = net.seeds.iter().copied().collect();
    let peer_set: BTreeSet<SocketAddr> = peers.iter().copied().collect();

    // Every peer registered with two or more neighbours: the overlay has cycles.
    let neighbours = |net: &Net, p: SocketAddr| match net.status(p).map(|s| s.role) {
        Some(RoleStatus::Peer(ps)) if ps.registered => Some(ps.neighbours),
        _ => None,
    };
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || neighbours(&net, *p)
                .is_some_and(|n| n.len() >= 2)),
            "peer {p} did not get two neighbours: {:?}",
            neighbours(&net, *p)
        );
    }
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || counter(*p, "gossip_generated")
                >= MAX_GOSSIP as u64),
            "peer {p} did not generate its gossip"
        );
    }
    // Let the last messages spread.
    std::thread::sleep(Duration::from_millis(500));

    // Kill the best-linked peer; remember who held it as a neighbour.
    let mut lists: BTreeMap<SocketAddr, Vec<SocketAddr>> = BTreeMap::new();
    for p in &peers {
        lists.insert(*p, neighbours(&net, *p).unwrap_or_default());
    }
    let victim = *peers.iter().max_by_key(|p| lists[*p].len()).expect("peers");
    let mut held_by: BTreeSet<SocketAddr> = lists[&victim].iter().copied().collect();
    held_by.extend(
        lists
            .iter()
            .filter(|(_, n)| n.contains(&victim))
            .map(|(p, _)| *p),
    );
    net.kill(victim);
    for s in &net.seeds {
        assert!(
            wait_for(Duration::from_secs(10), || entry(*s, victim)
                == Some(Status::Removed)),
            "seed {s} did not remove the killed peer {victim}"
        );
    }

    // A duplicate report after the commit, as a detector that noticed late sends it.
    let late_seed = net.seeds[0];
    let reporter = *held_by.iter().find(|p| **p != victim).expect("a neighbour");
    let answer =
        gossip_bins::report_dead(late_seed, victim, reporter, Duration::from_secs(2), None)
            .expect("the seed answers a late DEAD_REPORT");
    assert!(
        !answer.success,
        "a late duplicate report committed again: {answer:?}"
    );
    let abort_at_late_seed = |net: &Net| {
        net.log().iter().filter_map(|l| parse_line(l)).any(|l| {
            l.node == late_seed
                && l.text.starts_with("Dead-node consensus ABORT for ")
                && subject(&l.text) == Some(victim)
                && l.text.contains("already removed")
        })
    };
    assert!(
        wait_for(Duration::from_secs(3), || abort_at_late_seed(&net)),
        "{late_seed} logged no `Dead-node consensus ABORT ..., already removed` for the late report"
    );
    // Every seed has logged its COMMIT line (the log is written before the status changes).
    std::thread::sleep(Duration::from_millis(200));

    let lines: Vec<LogLine> = net.log().iter().filter_map(|l| parse_line(l)).collect();
    let live: BTreeSet<SocketAddr> = peer_set.iter().copied().filter(|p| *p != victim).collect();

    // Registration and bootstrap: every peer, by itself.
    for phrase in ["Registration quorum achieved", "Bootstrap complete"] {
        only_by(&lines, phrase, &peer_set, "peer");
        for p in &peers {
            assert!(
                lines_with(&lines, phrase).iter().any(|l| l.node == *p),
                "{p} never logged {phrase:?}"
            );
        }
    }
    // Every seed applied every admission, once, and said how it learned.
    only_by(&lines, "Registration consensus COMMIT", &seeds, "seed");
    for s in &seeds {
        for p in &peers {
            let commits: Vec<_> = lines_with(&lines, "Registration consensus COMMIT")
                .into_iter()
                .filter(|l| l.node == *s && subject(&l.text) == Some(*p))
                .collect();
            assert_eq!(
                commits.len(),
                1,
                "seed {s} logged {} admissions of {p}",
                commits.len()
            );
            let how = &commits[0].text;
            assert!(
                ["via own round:", "via commit sync:", "via anti-entropy:"]
                    .iter()
                    .any(|v| how.contains(v)),
                "no source in {how}"
            );
        }
    }

    // Gossip: generated by each peer, received first-time by peers, duplicates occur.
    only_by(&lines, "Generated gossip", &peer_set, "peer");
    only_by(&lines, "First-time gossip received", &peer_set, "peer");
    only_by(&lines, "Duplicate gossip ignored", &peer_set, "peer");
    let mut origin: BTreeMap<String, SocketAddr> = BTreeMap::new();
    for l in lines_with(&lines, "Generated gossip: ") {
        origin.insert(gossip_text(&l.text), l.node);
    }
    for p in &peers {
        let made = origin.values().filter(|o| *o == p).count();
        assert_eq!(made, MAX_GOSSIP, "{p} generated {made} gossip messages");
    }
    let mut first: BTreeSet<(String, SocketAddr)> = BTreeSet::new();
    for l in lines_with(&lines, "First-time gossip received: ") {
        let text = gossip_text(&l.text);
        assert!(origin.contains_key(&text), "{text} was never generated");
        assert_ne!(
            origin[&text], l.node,
            "{} took its own {text} as new",
            l.node
        );
        assert!(
            first.insert((text.clone(), l.node)),
            "{} received {text} first-time twice",
            l.node
        );
    }
    for p in &peers {
        assert!(
            first.iter().any(|(_, n)| n == p),
            "{p} never received a gossip"
        );
    }
    let duplicates = lines_with(&lines, "Duplicate gossip ignored: ");
    assert!(
        !duplicates.is_empty(),
        "no duplicate on an overlay with cycles"
    );
    for l in duplicates {
        let text = gossip_text(&l.text);
        assert!(
            origin.get(&text) == Some(&l.node) || first.contains(&(text.clone(), l.node)),
            "{} ignored {text} as a duplicate without having it",
            l.node
        );
    }

    // Liveness: the killed peer's neighbours suspect it, agree with their witnesses, report.
    only_by(&lines, "Neighbor suspicion triggered", &live, "live peer");
    only_by(&lines, "Peer-level suspicion result", &live, "live peer");
    let suspected: Vec<_> = lines_with(&lines, "Neighbor suspicion triggered for ")
        .into_iter()
        .filter(|l| subject(&l.text) == Some(victim))
        .collect();
    assert!(!suspected.is_empty(), "nobody suspected {victim}");
    for l in &suspected {
        assert!(
            held_by.contains(&l.node),
            "{} suspected {victim} without being its neighbour",
            l.node
        );
    }
    let verdicts: Vec<_> = lines_with(&lines, "Peer-level suspicion result for ")
        .into_iter()
        .filter(|l| l.text.contains("consensus=True"))
        .collect();
    for l in &verdicts {
        assert_eq!(
            subject(&l.text),
            Some(victim),
            "a live peer was found dead: {}",
            l.text
        );
    }
    let report_prefix = gossip_core::msg::DeadReport::text_prefix(victim);
    let detectors: BTreeSet<SocketAddr> = verdicts
        .iter()
        .map(|l| l.node)
        .filter(|d| suspected.iter().any(|s| s.node == *d))
        .filter(|d| {
            lines_with(&lines, &report_prefix).iter().any(|l| {
                let report = l.text.split(" (").next().unwrap_or_default();
                l.node == *d && report.ends_with(&format!(":{}", d.ip()))
            })
        })
        .collect();
    assert!(
        !detectors.is_empty(),
        "no peer logged suspicion, consensus=True and the Dead Node report for {victim}"
    );
    only_by(&lines, "Dead Node:", &live, "live peer");

    // Removal: every seed applied it once, saying how it learned; one by its own round.
    only_by(&lines, "Dead-node consensus", &seeds, "seed");
    let commits: Vec<_> = lines_with(&lines, "Dead-node consensus COMMIT for ");
    for l in &commits {
        assert_eq!(
            subject(&l.text),
            Some(victim),
            "a live peer was removed: {}",
            l.text
        );
    }
    for s in &seeds {
        let n = commits.iter().filter(|l| l.node == *s).count();
        assert_eq!(n, 1, "seed {s} logged {n} Dead-node consensus COMMIT lines");
    }
    assert!(
        commits.iter().any(|l| l.text.contains(" via own round: ")),
        "no seed committed the removal by its own round"
    );
    // The proposer's round is closed by a line of its own, never a second COMMIT.
    assert!(
        lines_with(&lines, "Dead-node proposal ")
            .iter()
            .any(|l| l.text.contains(" won: ")),
        "no removal round was logged as won"
    );
    assert!(net.panics().is_empty(), "{:?}", net.panics());
    eprintln!(
        "checklist run: {:.1} s, {} lines, {} duplicates",
        started.elapsed().as_secs_f64(),
        lines.len(),
        lines_with(&lines, "Duplicate gossip ignored").len()
    );
}
