//! `peer`: a gossip peer. See `docs/RUNNING.md`.

#![forbid(unsafe_code)]

use clap::Parser;
use gossip_bins::NodeArgs;
use gossip_driver_mio::Role;

/// A peer node: registers with a quorum of seeds, joins the overlay, generates and forwards
/// gossip, and watches its neighbours.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> std::process::ExitCode {
    gossip_bins::node_main(Role::Peer, Cli::parse().node)
}
