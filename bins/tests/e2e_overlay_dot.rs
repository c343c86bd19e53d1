//! `status --dot` against a live keyed cluster: the Graphviz graph it prints, parsed loosely,
//! has every live peer as a node labelled with its degree, every link as one edge, the seeds
//! in a group of their own with no link, and the peers that do not answer (one killed, one
//! stopped) drawn dashed and listed; a stopped peer costs one per-node timeout, not more.
//! Without the key every node is unreachable and the exit status says so. If Graphviz's
//! `dot` is installed, the graph is also rendered to SVG (skipped otherwise).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, write_key_file, Net};
use gossip_core::msg::RoleStatus;

const KEY: &str = "8c4f0d6e2a9b1c3d5e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

/// Probes slow enough that the killed and the stopped peer are still everyone's neighbours
/// when the graph is drawn.
const SLOW_PROBES: &[&str] = &[
    "--probe-interval-ms",
    "1000",
    "--probe-timeout-ms",
    "500",
    "--probe-misses",
    "3",
    "--suspect-timeout-ms",
    "1000",
    "--anti-entropy-interval-ms",
    "300",
    "--peer-list-refresh-ms",
    "1000",
];

/// What the DOT text says, read loosely: node statements with their attributes (and whether
/// they sit in the seeds' subgraph), edge statements, and `//` comments.
#[derive(Default)]
struct Dot {
    nodes: BTreeMap<String, (String, bool)>,
    edges: Vec<(String, String, String)>,
    comments: Vec<String>,
}

/// The quoted names at the start of `s` and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    Some((&s[..end], &s[end + 1..]))
}

fn parse_dot(text: &str) -> Dot {
    let mut dot = Dot::default();
    let mut in_seeds = false;
    let mut depth = 0;
    for line in text.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("//") {
            dot.comments.push(c.trim().to_string());
            continue;
        }
        if line.starts_with("graph overlay {") {
            depth += 1;
            continue;
        }
        if line.starts_with("subgraph cluster_seeds") {
            in_seeds = true;
            depth += 1;
            continue;
        }
        if line == "}" {
            depth -= 1;
            in_seeds = false;
            continue;
        }
        let Some((a, rest)) = quoted(line) else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        if let Some(rest) = rest.strip_prefix(" -- ") {
            let (b, attrs) = quoted(rest).expect("edge head");
            dot.edges
                .push((a.to_string(), b.to_string(), attrs.trim().to_string()));
        } else {
            let attrs = rest.trim().to_string();
            assert!(
                dot.nodes.insert(a.to_string(), (attrs, in_seeds)).is_none(),
                "node {a} declared twice"
            );
        }
    }
    assert_eq!(depth, 0, "unbalanced braces:\n{text}");
    dot
}

fn neighbours(net: &Net, peer: SocketAddr) -> Option<BTreeSet<SocketAddr>> {
    match net.status(peer)?.role {
        RoleStatus::Peer(p) if p.registered => Some(p.neighbours.into_iter().collect()),
        _ => None,
    }
}

fn snapshot(net: &Net, peers: &[SocketAddr]) -> BTreeMap<SocketAddr, BTreeSet<SocketAddr>> {
    peers
        .iter()
        .filter_map(|p| Some((*p, neighbours(net, *p)?)))
        .collect()
}

fn status_dot(net: &Net, key_file: Option<&std::path::Path>) -> (bool, String, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_status"));
    cmd.arg("--dot")
        .arg("--config")
        .arg(&net.config)
        .args(["--timeout-ms", "500"]);
    if let Some(k) = key_file {
        cmd.arg("--cluster-key-file").arg(k);
    }
    let started = Instant::now();
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("run status --dot");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8"),
        started.elapsed(),
    )
}

#[test]
fn status_dot_draws_the_live_overlay() {
    let mut net = Net::start_keyed_with(
        "dot",
        3,
        SLOW_PROBES,
        &["--max-gossip", "0", "--min-degree", "3"],
        &format!("{KEY}\n"),
    );
    let peers: Vec<SocketAddr> = (0..6)
        .map(|i| net.add_peer_on([127, 0, 0, 80 + i]))
        .collect();
    for p in &peers {
        assert!(
            wait_for(Duration::from_secs(10), || neighbours(&net, *p)
                .is_some_and(|n| n.len() >= 2)),
            "peer {p} did not get two neighbours"
        );
    }
    // Wait for links to settle (two equal snapshots in a row).
    let mut last = snapshot(&net, &peers);
    wait_for(Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(200));
        let now = snapshot(&net, &peers);
        let same = now == last;
        last = now;
        same
    });
    let (killed, stopped) = (peers[1], peers[4]);
    let before = snapshot(&net, &peers);
    net.kill(killed);
    net.signal(stopped, "-STOP");
    let key_file = net.dir.join("status.key");
    write_key_file(&key_file, &format!("{KEY}\n"));
    let (ok, text, took) = status_dot(&net, Some(&key_file));
    let answering: Vec<SocketAddr> = peers
        .iter()
        .copied()
        .filter(|p| *p != killed && *p != stopped)
        .collect();
    let after = snapshot(&net, &answering);
    assert!(ok, "status --dot failed:\n{text}");
    assert!(
        took < Duration::from_millis(2500),
        "status --dot took {took:?} with a 500 ms timeout per node"
    );
    let dot = parse_dot(&text);

    // The key it sealed with is named; the unreachable are listed with why.
    assert!(
        dot.comments
            .iter()
            .any(|c| c.contains("sealed with cluster key")),
        "{text}"
    );
    for gone in [killed, stopped] {
        let (attrs, in_seeds) = dot
            .nodes
            .get(&gone.to_string())
            .unwrap_or_else(|| panic!("{gone} is not drawn:\n{text}"));
        assert!(!in_seeds);
        assert!(
            attrs.contains("style=dashed") && attrs.contains("unreachable"),
            "{gone} not marked unreachable: {attrs}"
        );
        assert!(
            dot.comments
                .iter()
                .any(|c| c.starts_with(&format!("unreachable: {gone}: "))),
            "{gone} not listed as unreachable:\n{text}"
        );
    }
    // Seeds: apart (in their subgraph), boxes of their own, never linked.
    for s in &net.seeds {
        let (attrs, in_seeds) = dot
            .nodes
            .get(&s.to_string())
            .unwrap_or_else(|| panic!("seed {s} is not drawn:\n{text}"));
        assert!(in_seeds, "seed {s} is not in the seeds' subgraph");
        assert!(attrs.contains("label=\"seed "), "{attrs}");
    }
    assert_eq!(
        dot.nodes.values().filter(|(_, in_seeds)| *in_seeds).count(),
        net.seeds.len()
    );
    // Every live peer: a node with its degree.
    for p in &answering {
        let (attrs, in_seeds) = dot
            .nodes
            .get(&p.to_string())
            .unwrap_or_else(|| panic!("live peer {p} is not drawn:\n{text}"));
        assert!(!in_seeds);
        let degrees: BTreeSet<String> = [before.get(p), after.get(p)]
            .into_iter()
            .flatten()
            .map(|n| format!("\\ndegree {}\"", n.len()))
            .collect();
        assert!(
            degrees.iter().any(|d| attrs.contains(d.as_str())),
            "{p}'s label {attrs} shows none of its degrees {degrees:?}"
        );
    }
    assert_eq!(dot.nodes.len(), net.seeds.len() + peers.len(), "{text}");

    // Links: each once, between drawn peers; those both ends listed throughout are plain;
    // those to the killed or stopped peer dashed.
    let seeds: BTreeSet<String> = net.seeds.iter().map(ToString::to_string).collect();
    let mut seen = BTreeSet::new();
    for (a, b, attrs) in &dot.edges {
        if attrs.contains("style=invis") {
            assert!(
                seeds.contains(a) && seeds.contains(b),
                "invisible {a} -- {b}"
            );
            continue;
        }
        assert!(
            !seeds.contains(a) && !seeds.contains(b),
            "a seed is linked: {a} -- {b}"
        );
        assert!(dot.nodes.contains_key(a) && dot.nodes.contains_key(b));
        let pair = if a < b { (a, b) } else { (b, a) };
        assert!(seen.insert(pair), "link {a} -- {b} drawn twice:\n{text}");
        let (pa, pb): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
        let listed = |x: &SocketAddr, y: &SocketAddr| {
            [&before, &after]
                .iter()
                .any(|snap| snap.get(x).is_some_and(|n| n.contains(y)))
        };
        assert!(
            listed(&pa, &pb) || listed(&pb, &pa),
            "{a} -- {b} drawn, but neither end ever listed the other"
        );
        if [killed, stopped].contains(&pa) || [killed, stopped].contains(&pb) {
            assert!(attrs.contains("style=dashed"), "{a} -- {b} [{attrs}]");
        }
    }
    for a in &answering {
        for b in &answering {
            let both = |snap: &BTreeMap<SocketAddr, BTreeSet<SocketAddr>>| {
                snap.get(a).is_some_and(|n| n.contains(b))
                    && snap.get(b).is_some_and(|n| n.contains(a))
            };
            if a < b && both(&before) && both(&after) {
                let edge = dot.edges.iter().find(|(x, y, _)| {
                    (x, y) == (&a.to_string(), &b.to_string())
                        || (x, y) == (&b.to_string(), &a.to_string())
                });
                let edge = edge.unwrap_or_else(|| panic!("link {a} -- {b} missing:\n{text}"));
                assert_eq!(edge.2, "", "{a} -- {b} is not drawn plain");
            }
        }
    }
    for gone in [killed, stopped] {
        for p in &answering {
            let lists = |snap: &BTreeMap<SocketAddr, BTreeSet<SocketAddr>>| {
                snap.get(p).is_some_and(|n| n.contains(&gone))
            };
            if lists(&before) && lists(&after) {
                assert!(
                    dot.edges.iter().any(|(a, b, attrs)| {
                        let ends = [a.as_str(), b.as_str()];
                        ends.contains(&p.to_string().as_str())
                            && ends.contains(&gone.to_string().as_str())
                            && attrs.contains("style=dashed")
                    }),
                    "no dashed link {p} -- {gone}:\n{text}"
                );
            }
        }
    }

    // Without the key, nothing answers: every seed is drawn unreachable, and the exit
    // status says so.
    let (ok, unkeyed, _) = status_dot(&net, None);
    assert!(!ok, "status --dot without the key succeeded:\n{unkeyed}");
    let plain = parse_dot(&unkeyed);
    for s in &net.seeds {
        assert!(
            plain.nodes[&s.to_string()].0.contains("unreachable"),
            "{unkeyed}"
        );
        assert!(
            plain
                .comments
                .iter()
                .any(|c| c.starts_with(&format!("unreachable: {s}: "))
                    && c.contains("requires a cluster key")),
            "{unkeyed}"
        );
    }

    // Graphviz, where installed, takes the graph as it is.
    let rendered = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match rendered {
        Ok(mut child) => {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write to dot");
            let out = child.wait_with_output().expect("dot");
            assert!(
                out.status.success(),
                "dot refused the graph: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
        }
        Err(e) => eprintln!("graphviz not installed ({e}): rendering skipped"),
    }
}
