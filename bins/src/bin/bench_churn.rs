//! `bench_churn`: what reaping buys under churn of fresh addresses, in the simulator. Run
//! `target/release/bench_churn` (not part of the test suites: it prints numbers, see
//! `docs/RUNNING.md`, "Tests and measurements").
//!
//! `--cycles` peers, each at an address of its own that is never used again (containers,
//! autoscaling), join at `--rate` a second, stay `--stay-s` seconds and leave; the seeds run
//! once with `--tombstone-ms` and once with reaping out of reach (a tombstone longer than
//! the run). For each it prints the largest and the final Peer List any seed held, the
//! reaped incarnations still remembered, the seeds' share of the process's peak memory (the
//! difference between the two runs), the promises the checker found broken (none expected),
//! and the commit and trace hash that reproduce the figure.

#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use gossip_core::node::Node;
use gossip_driver_sim::{Fault, FaultKind, NodeRef, Sim, SimConfig};

/// Churns fresh peers through a simulated cluster with and without reaping and prints the
/// Peer List size and memory of each.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Peers that join and leave, each at a fresh address.
    #[arg(long, default_value_t = 100_000)]
    cycles: u32,
    /// Joins per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Seconds each peer stays before it leaves.
    #[arg(long, default_value_t = 15)]
    stay_s: u64,
    /// Seeds.
    #[arg(long, default_value_t = 3)]
    seeds: u32,
    /// The tombstone period of the reaping run.
    #[arg(long, default_value_t = 60_000)]
    tombstone_ms: u64,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only one of the two: `reap` or `keep` (peak memory is per process: run each in a
    /// process of its own for a clean memory figure; the default runs both, `keep` first).
    #[arg(long)]
    only: Option<String>,
}

struct Outcome {
    largest: usize,
    last: usize,
    remembered: u64,
    reaped: u64,
    broken: usize,
    trace: u64,
    sim_s: f64,
    wall_s: f64,
    peak_kb: Option<u64>,
}

fn counter(sim: &Sim<Node>, seed: u32, name: &str) -> u64 {
    sim.node(NodeRef::Seed(seed))
        .map(|n| n.status().counters)
        .and_then(|c| c.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
        .unwrap_or(0)
}

/// Peak resident memory of this process so far (`VmHWM`), in KiB.
fn peak_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run(cli: &Cli, tombstone_ms: u64) -> Result<Outcome, String> {
    let mut c = SimConfig::new(cli.seed, cli.seeds, cli.cycles);
    c.settings.max_gossip = 0;
    c.settings.tombstone_ms = tombstone_ms;
    c.join_window_ms = u64::from(cli.cycles) * 1_000 / u64::from(cli.rate.max(1));
    let stay = cli.stay_s * 1_000;
    c.faults = (0..cli.cycles)
        .map(|j| Fault {
            at_ms: c.join_at_ms(j) + stay,
            kind: FaultKind::Leave(NodeRef::Peer(j)),
        })
        .collect();
    let end = c.joins_end_ms() + stay + 10_000;
    c.duration_ms = Some(end);
    let wall = Instant::now();
    let mut sim: Sim<Node> = Sim::new(c)?;
    let mut largest = 0;
    let mut t = 5_000;
    while t < end {
        if !sim.run_until(t) {
            break;
        }
        for s in 0..cli.seeds {
            largest = largest.max(sim.checker().seed_pl(s).len());
        }
        t += 5_000;
    }
    sim.run_until(end);
    sim.finish();
    let last = (0..cli.seeds)
        .map(|s| sim.checker().seed_pl(s).len())
        .max()
        .unwrap_or(0);
    Ok(Outcome {
        largest,
        last,
        remembered: (0..cli.seeds)
            .map(|s| counter(&sim, s, "reaped_remembered"))
            .max()
            .unwrap_or(0),
        reaped: counter(&sim, 0, "entries_reaped"),
        broken: sim.violations().len(),
        trace: sim.trace_hash(),
        sim_s: sim.now() as f64 / 1_000.0,
        wall_s: wall.elapsed().as_secs_f64(),
        peak_kb: peak_kb(),
    })
}

fn commit() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(c)
            if out(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()) =>
        {
            format!("{c} (working tree modified)")
        }
        Some(c) => c,
        None => "unknown (not in a git checkout)".into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    println!(
        "commit {} · {} peers at fresh addresses, {} joins/s, each stays {} s · {} seeds · sim seed {}",
        commit(),
        cli.cycles,
        cli.rate,
        cli.stay_s,
        cli.seeds,
        cli.seed
    );
    let runs: Vec<(&str, u64)> = [("keep", u64::MAX / 4), ("reap", cli.tombstone_ms)]
        .into_iter()
        .filter(|(name, _)| cli.only.as_deref().is_none_or(|o| o == *name))
        .collect();
    if runs.is_empty() {
        eprintln!("bench_churn: --only takes reap or keep");
        return ExitCode::FAILURE;
    }
    println!(
        "{:<5} {:>12} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8}  trace",
        "run",
        "tombstone",
        "largest",
        "final",
        "remembered",
        "reaped",
        "peak MiB",
        "broken",
        "wall s"
    );
    let mut failed = false;
    for (name, tombstone) in runs {
        match run(&cli, tombstone) {
            Ok(o) => {
                let shown = if name == "keep" {
                    "never".to_string()
                } else {
                    format!("{tombstone} ms")
                };
                println!(
                    "{:<5} {:>12} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8.1}  {:016x} ({:.0} s simulated)",
                    name,
                    shown,
                    o.largest,
                    o.last,
                    o.remembered,
                    o.reaped,
                    o.peak_kb
                        .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
                    o.broken,
                    o.wall_s,
                    o.trace,
                    o.sim_s
                );
                failed |= o.broken > 0;
            }
            Err(e) => {
                eprintln!("bench_churn: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if failed {
        eprintln!(
            "bench_churn: the checker found promises broken (replay with the sim seed above)"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
