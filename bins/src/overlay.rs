//! The live overlay as a picture: asks every node it can reach for its status (the seeds,
//! then every peer they list alive and every neighbour a peer names), and writes what it
//! learned as a Graphviz DOT graph (`status --dot`, `cluster --dot FILE`).
//!
//! Nodes are asked in parallel, each with its own timeout, wave after wave until no new node
//! turns up; a node that does not answer is drawn dashed and listed in a comment, never
//! waited for beyond its timeout. The output is sorted (seeds, peers, links), so the same
//! cluster state always gives the same text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gossip_core::msg::{Endpoint, RoleStatus, Status, StatusResp};
use gossip_core::wire::auth::Keyring;

/// Nodes asked at the same time.
const PARALLEL: usize = 32;

/// Nodes asked in all, at most (a bound on what a lying node's lists can make us dial).
pub const MAX_NODES: usize = 100_000;

/// What one node said, or why it said nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeView {
    /// A seed answered: its Peer List's alive and removed entries.
    Seed {
        /// Peers listed alive.
        alive: usize,
        /// Peers listed removed.
        removed: usize,
    },
    /// A peer answered.
    Peer {
        /// Registered with a seed quorum.
        registered: bool,
        /// Its neighbours, as it listed them.
        neighbours: BTreeSet<Endpoint>,
    },
    /// No answer within the timeout (or an error): why.
    Unreachable {
        /// Known to be a seed (from the config or a certificate), else taken for a peer.
        seed: bool,
        /// The error, on one line.
        why: String,
    },
}

/// The overlay as learned from the nodes' own status replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Every node asked, by endpoint.
    pub nodes: BTreeMap<Endpoint, NodeView>,
    /// The cluster key id the queries were sealed with, if any.
    pub key_id: Option<String>,
}

/// One undirected link, with what each end said about it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Both ends list each other.
    Both,
    /// One end lists the other, which answered without listing it back (a link being made
    /// or dropped).
    OneSided,
    /// One end lists the other, which did not answer.
    ToUnreachable,
}

impl Overlay {
    /// Asks `start` (and `seeds`, known to be seeds: from the config), then every node their
    /// answers name, until no new node turns up. Each query waits at most `timeout`; with a
    /// keyring the queries are sealed and the replies verified.
    pub fn crawl(
        start: &[Endpoint],
        seeds: &[Endpoint],
        timeout: Duration,
        keyring: Option<&Keyring>,
    ) -> Overlay {
        let mut overlay = Overlay {
            key_id: keyring.and_then(|r| r.key_ids().first().cloned()),
            ..Overlay::default()
        };
        let mut known_seeds: BTreeSet<Endpoint> = seeds.iter().copied().collect();
        let mut asked: BTreeSet<Endpoint> = BTreeSet::new();
        let mut wave: Vec<Endpoint> = start.iter().chain(seeds).copied().collect();
        wave.sort();
        wave.dedup();
        while !wave.is_empty() && asked.len() < MAX_NODES {
            wave.truncate(MAX_NODES - asked.len());
            asked.extend(wave.iter().copied());
            let mut next = BTreeSet::new();
            for (addr, answer) in ask_all(&wave, timeout, keyring) {
                match answer {
                    Ok(status) => {
                        let view = match &status.role {
                            RoleStatus::Seed(s) => {
                                known_seeds.insert(status.node);
                                for e in &s.entries {
                                    // A certificate names seeds only.
                                    next.extend(e.votes.iter().copied());
                                    known_seeds.extend(e.votes.iter().copied());
                                    if e.status == Status::Alive {
                                        next.insert(e.peer);
                                    }
                                }
                                let alive = s.entries.iter().filter(|e| e.status == Status::Alive);
                                let alive = alive.count();
                                NodeView::Seed {
                                    alive,
                                    removed: s.entries.len() - alive,
                                }
                            }
                            RoleStatus::Peer(p) => {
                                next.extend(p.neighbours.iter().copied());
                                NodeView::Peer {
                                    registered: p.registered,
                                    neighbours: p.neighbours.iter().copied().collect(),
                                }
                            }
                        };
                        // A node may answer under another name than the one asked
                        // (`localhost:5001`): it is drawn under its own.
                        asked.insert(status.node);
                        overlay.nodes.insert(status.node, view);
                    }
                    Err(why) => {
                        overlay.nodes.entry(addr).or_insert(NodeView::Unreachable {
                            seed: false,
                            why: why.replace(['\n', '\r'], " "),
                        });
                    }
                }
            }
            wave = next.difference(&asked).copied().collect();
        }
        for (addr, view) in &mut overlay.nodes {
            if let NodeView::Unreachable { seed, .. } = view {
                *seed = known_seeds.contains(addr);
            }
        }
        overlay
    }

    fn is_seed(view: &NodeView) -> bool {
        matches!(
            view,
            NodeView::Seed { .. } | NodeView::Unreachable { seed: true, .. }
        )
    }

    /// Every link between peers, once (smaller endpoint first), sorted, with what its ends
    /// said about it.
    pub fn links(&self) -> BTreeMap<(Endpoint, Endpoint), Link> {
        let mut links = BTreeMap::new();
        for (a, view) in &self.nodes {
            let NodeView::Peer { neighbours, .. } = view else {
                continue;
            };
            for b in neighbours.iter().filter(|b| *b != a) {
                let link = match self.nodes.get(b) {
                    Some(NodeView::Peer { neighbours, .. }) if neighbours.contains(a) => Link::Both,
                    Some(NodeView::Unreachable { .. }) | None => Link::ToUnreachable,
                    Some(_) => Link::OneSided,
                };
                links.insert((*a.min(b), *a.max(b)), link);
            }
        }
        links
    }

    /// The overlay in Graphviz DOT: an undirected graph whose seeds sit apart, in a box of
    /// their own on one rank (boxes, held in endpoint order by invisible edges), and whose
    /// peers are labelled with endpoint and degree. A link both ends list is a plain edge; one
    /// only one end lists is dotted; one to a node that did not answer is dashed red, as is
    /// that node, which is also listed with why in a comment at the top.
    pub fn to_dot(&self) -> String {
        let seeds: Vec<(&Endpoint, &NodeView)> = self
            .nodes
            .iter()
            .filter(|(_, v)| Self::is_seed(v))
            .collect();
        let peers: Vec<(&Endpoint, &NodeView)> = self
            .nodes
            .iter()
            .filter(|(_, v)| !Self::is_seed(v))
            .collect();
        let links = self.links();
        let unreachable: Vec<(&Endpoint, &String)> = self
            .nodes
            .iter()
            .filter_map(|(a, v)| match v {
                NodeView::Unreachable { why, .. } => Some((a, why)),
                _ => None,
            })
            .collect();
        let title = format!(
            "gossip overlay: {} seeds, {} peers, {} links{}",
            seeds.len(),
            peers.len(),
            links.len(),
            match unreachable.len() {
                0 => String::new(),
                n => format!(", {n} unreachable"),
            }
        );

        let mut out = String::new();
        let _ = writeln!(out, "// {title}");
        let _ = writeln!(
            out,
            "// asked node by node with STATUS_REQ{}; render: dot -Tsvg FILE > overlay.svg",
            self.key_id
                .as_ref()
                .map_or(String::new(), |k| format!(" sealed with cluster key {k}"))
        );
        for (addr, why) in &unreachable {
            let _ = writeln!(out, "// unreachable: {addr}: {why}");
        }
        out.push_str("graph overlay {\n");
        let _ = writeln!(
            out,
            "  graph [label={}, labelloc=t, fontname=\"Helvetica\", newrank=true];",
            quote(&title)
        );
        out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
        out.push_str("  subgraph cluster_seeds {\n");
        out.push_str("    label=\"seeds (membership, no gossip)\";\n");
        out.push_str("    style=rounded;\n    color=gray60;\n    rank=same;\n");
        out.push_str("    node [shape=box, style=filled, fillcolor=\"#dce6f2\"];\n");
        for (addr, view) in &seeds {
            let attrs = match view {
                NodeView::Seed { alive, removed } => format!(
                    "label={}",
                    quote(&format!("seed {addr}\\n{alive} alive, {removed} removed"))
                ),
                _ => unreachable_attrs(&format!("seed {addr}")),
            };
            let _ = writeln!(out, "    {} [{attrs}];", quote(&addr.to_string()));
        }
        // Layout only: keeps the seeds in endpoint order, left to right.
        for pair in seeds.windows(2) {
            let _ = writeln!(
                out,
                "    {} -- {} [style=invis];",
                quote(&pair[0].0.to_string()),
                quote(&pair[1].0.to_string())
            );
        }
        out.push_str("  }\n");
        out.push_str("  node [shape=ellipse];\n");
        for (addr, view) in &peers {
            let attrs = match view {
                NodeView::Peer {
                    registered,
                    neighbours,
                } => {
                    let unregistered = if *registered { "" } else { ", not registered" };
                    format!(
                        "label={}",
                        quote(&format!(
                            "{addr}\\ndegree {}{unregistered}",
                            neighbours.len()
                        ))
                    )
                }
                _ => unreachable_attrs(&addr.to_string()),
            };
            let _ = writeln!(out, "  {} [{attrs}];", quote(&addr.to_string()));
        }
        for ((a, b), link) in &links {
            let style = match link {
                Link::Both => "",
                Link::OneSided => " [style=dotted]",
                Link::ToUnreachable => " [style=dashed, color=red]",
            };
            let _ = writeln!(
                out,
                "  {} -- {}{style};",
                quote(&a.to_string()),
                quote(&b.to_string())
            );
        }
        out.push_str("}\n");
        out
    }

    /// True if at least one node answered.
    pub fn any_answered(&self) -> bool {
        self.nodes
            .values()
            .any(|v| !matches!(v, NodeView::Unreachable { .. }))
    }
}

fn unreachable_attrs(name: &str) -> String {
    format!(
        "label={}, style=dashed, color=red, fontcolor=red",
        quote(&format!("{name}\\nunreachable"))
    )
}

/// A DOT string literal: `"` and stray backslashes escaped (`\n` in labels is kept as the
/// line break it means).
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' if chars.peek() == Some(&'n') => q.push('\\'),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Asks every node of `nodes` for its status, `PARALLEL` at a time.
fn ask_all(
    nodes: &[Endpoint],
    timeout: Duration,
    keyring: Option<&Keyring>,
) -> Vec<(Endpoint, Result<StatusResp, String>)> {
    let next = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::with_capacity(nodes.len()));
    std::thread::scope(|scope| {
        for _ in 0..nodes.len().min(PARALLEL) {
            scope.spawn(|| {
                while let Some(&addr) = nodes.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let answer =
                        crate::query_status_with(addr, timeout, keyring).map(|(status, _)| status);
                    answers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((addr, answer));
                }
            });
        }
    });
    let mut answers = answers.into_inner().unwrap_or_else(|e| e.into_inner());
    answers.sort_by_key(|(addr, _)| *addr);
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().expect("endpoint")
    }

    fn peer(neighbours: &[&str]) -> NodeView {
        NodeView::Peer {
            registered: true,
            neighbours: neighbours.iter().map(|n| ep(n)).collect(),
        }
    }

    #[test]
    fn dot_sorts_puts_seeds_apart_draws_each_link_once_and_marks_the_unreachable() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ep("127.0.0.1:5002"),
            NodeView::Seed {
                alive: 4,
                removed: 1,
            },
        );
        nodes.insert(
            ep("127.0.0.1:5001"),
            NodeView::Unreachable {
                seed: true,
                why: "cannot connect".into(),
            },
        );
        nodes.insert(
            ep("127.0.0.3:6000"),
            peer(&["127.0.0.2:6000", "127.0.0.4:6000"]),
        );
        nodes.insert(
            ep("127.0.0.2:6000"),
            peer(&["127.0.0.3:6000", "127.0.0.9:6000"]),
        );
        nodes.insert(ep("127.0.0.4:6000"), peer(&[]));
        nodes.insert(
            ep("127.0.0.9:6000"),
            NodeView::Unreachable {
                seed: false,
                why: "cannot connect to 127.0.0.9:6000: Connection refused".into(),
            },
        );
        let overlay = Overlay {
            nodes,
            key_id: Some("5c2e0a1d".into()),
        };
        let want = r##"// gossip overlay: 2 seeds, 4 peers, 3 links, 2 unreachable
// asked node by node with STATUS_REQ sealed with cluster key 5c2e0a1d; render: dot -Tsvg FILE > overlay.svg
// unreachable: 127.0.0.1:5001: cannot connect
// unreachable: 127.0.0.9:6000: cannot connect to 127.0.0.9:6000: Connection refused
graph overlay {
  graph [label="gossip overlay: 2 seeds, 4 peers, 3 links, 2 unreachable", labelloc=t, fontname="Helvetica", newrank=true];
  node [fontname="Helvetica", fontsize=10];
  subgraph cluster_seeds {
    label="seeds (membership, no gossip)";
    style=rounded;
    color=gray60;
    rank=same;
    node [shape=box, style=filled, fillcolor="#dce6f2"];
    "127.0.0.1:5001" [label="seed 127.0.0.1:5001\nunreachable", style=dashed, color=red, fontcolor=red];
    "127.0.0.1:5002" [label="seed 127.0.0.1:5002\n4 alive, 1 removed"];
    "127.0.0.1:5001" -- "127.0.0.1:5002" [style=invis];
  }
  node [shape=ellipse];
  "127.0.0.2:6000" [label="127.0.0.2:6000\ndegree 2"];
  "127.0.0.3:6000" [label="127.0.0.3:6000\ndegree 2"];
  "127.0.0.4:6000" [label="127.0.0.4:6000\ndegree 0"];
  "127.0.0.9:6000" [label="127.0.0.9:6000\nunreachable", style=dashed, color=red, fontcolor=red];
  "127.0.0.2:6000" -- "127.0.0.3:6000";
  "127.0.0.2:6000" -- "127.0.0.9:6000" [style=dashed, color=red];
  "127.0.0.3:6000" -- "127.0.0.4:6000" [style=dotted];
}
"##;
        assert_eq!(overlay.to_dot(), want);
    }

    #[test]
    fn quote_escapes_quotes_and_backslashes_but_keeps_label_breaks() {
        assert_eq!(quote(r#"a"b\c\nd"#), r#""a\"b\\c\nd""#);
        assert_eq!(quote("[::1]:5000"), "\"[::1]:5000\"");
    }
}
