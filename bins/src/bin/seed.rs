//! `seed`: a membership authority. See `docs/RUNNING.md`.

#![forbid(unsafe_code)]

use clap::Parser;
use gossip_bins::NodeArgs;
use gossip_driver_mio::Role;

/// A seed node: keeps the Peer List; admits and removes peers by quorum vote with the other
/// seeds of the config.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> std::process::ExitCode {
    gossip_bins::node_main(Role::Seed, Cli::parse().node)
}
