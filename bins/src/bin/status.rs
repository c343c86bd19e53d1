//! `status`: asks nodes for their status (`STATUS_REQ`) and prints it, like `serf members`;
//! with `--dot`, asks every node it can reach and prints the overlay in Graphviz DOT.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gossip_bins::overlay::Overlay;
use gossip_core::msg::{RoleStatus, StatusResp};

/// Prints the status of seeds and peers: a seed's Peer List with incarnations and vote
/// certificates, a peer's neighbours; counters of both.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Nodes to ask (`ip:port`). None: every seed of `--config`.
    nodes: Vec<String>,
    /// Seed list used when no node is named.
    #[arg(long, default_value = "config.txt")]
    config: PathBuf,
    /// Print each raw `STATUS_RESP` JSON line instead of a table.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print the live overlay in Graphviz DOT: ask the nodes named (or the seeds), then every
    /// peer their answers name, and draw peers, links and seeds; nodes that do not answer are
    /// drawn dashed. `status --dot | dot -Tsvg > overlay.svg` makes a picture.
    #[arg(long)]
    dot: bool,
    /// Give up on a node after this long.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Cluster key file of the nodes asked: the request is sealed with its first key and the
    /// reply must verify.
    #[arg(long, value_name = "PATH")]
    cluster_key_file: Option<PathBuf>,
}

fn print_human(status: &StatusResp) {
    match &status.role {
        RoleStatus::Seed(seed) => {
            println!(
                "{}  seed  {}, {} proposals pending",
                status.node,
                gossip_bins::entries_summary(&seed.entries),
                seed.pending
            );
            print!("{}", gossip_bins::peer_list_table(&seed.entries));
        }
        RoleStatus::Peer(peer) => {
            println!(
                "{}  peer  {} (incarnation {}), {} neighbours, {} known peers",
                status.node,
                if peer.registered {
                    "registered"
                } else {
                    "not registered"
                },
                peer.incarnation,
                peer.neighbours.len(),
                peer.known_peers
            );
            let n: Vec<String> = peer.neighbours.iter().map(ToString::to_string).collect();
            println!("  neighbours: {}", n.join(", "));
        }
    }
    let counters: Vec<String> = status
        .counters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !counters.is_empty() {
        println!("  counters: {}", counters.join(" "));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let keyring = match &cli.cluster_key_file {
        Some(path) => match gossip_bins::load_keyring(path) {
            Ok(ring) => Some(ring),
            Err(e) => {
                eprintln!("status: error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let nodes = if cli.nodes.is_empty() {
        match gossip_bins::load_seeds(&cli.config) {
            Ok(seeds) => seeds,
            Err(e) => {
                eprintln!("status: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut v = Vec::new();
        for text in &cli.nodes {
            match gossip_bins::resolve(text) {
                Ok(a) => v.push(a),
                Err(e) => {
                    eprintln!("status: error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        v
    };
    let timeout = Duration::from_millis(cli.timeout_ms);
    if cli.dot {
        let seeds = if cli.nodes.is_empty() {
            nodes.clone()
        } else {
            Vec::new()
        };
        let overlay = Overlay::crawl(&nodes, &seeds, timeout, keyring.as_ref());
        print!("{}", overlay.to_dot());
        if !overlay.any_answered() {
            eprintln!("status: no node answered");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    for addr in nodes {
        match gossip_bins::query_status_with(addr, timeout, keyring.as_ref()) {
            Ok((status, raw)) => {
                if cli.json {
                    println!("{raw}");
                } else {
                    print_human(&status);
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("status: {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
