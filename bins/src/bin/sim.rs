//! `sim`: runs a whole cluster in memory, in virtual time, from one seed, with injected faults,
//! checking the promises after every event; prints a summary (or one JSON object with
//! `--json`) and, if a promise broke, the line that replays the run. `--html FILE` and
//! `--json FILE` write the run over time (a page with plots; the numbers behind them), and a
//! long run shows its progress on stderr unless `--quiet`. See `docs/SIMULATOR.md`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use gossip_core::config::GossipMode;
use gossip_core::hash::mix64;
use gossip_core::rng::Rng;
use gossip_driver_sim::schedule::Schedule;
use gossip_driver_sim::Report;
use gossip_driver_sim::{
    Fault, FaultKind, ForgeKind, NetConfig, NodeRef, Partition, PartitionKind, Publishing, Sim,
    SimConfig, Split, SybilAttack, Sybils,
};
use gossip_sim_report::series::Recorder;

/// Simulate a gossip cluster in virtual time and check its promises.
#[derive(Parser, Debug)]
#[command(name = "sim", version)]
struct Args {
    /// Seeds in the config.
    #[arg(long, default_value_t = 5)]
    seeds: u32,
    /// Peers that join (staggered over --join-window).
    #[arg(long, default_value_t = 1000)]
    peers: u32,
    /// Gossip messages each peer generates (the spec's 10).
    #[arg(long, default_value_t = 10)]
    max_gossip: u32,
    /// Simulated seconds; default: long enough for every gossip to be made and spread (and
    /// for the liveness phase when there are faults).
    #[arg(long)]
    duration: Option<f64>,
    /// The run seed: every random choice derives from it.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Chance that a message is lost, while faults last.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Chance that a request is delivered twice, while faults last.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// Extra per-message delay, uniform in 0..=JITTER ms (reorders), while faults last.
    #[arg(long, default_value_t = 0)]
    jitter: u64,
    /// Per-link latency in ms: `N` or `MIN..MAX` (each link drawn from the range by the seed).
    #[arg(long, default_value = "5")]
    latency: String,
    /// Let the seed choose the network's latency distribution (constant, uniform, long tail).
    #[arg(long)]
    random_net: bool,
    /// Share of peers that crash (and stay down) after joining; their detection is measured.
    #[arg(long, default_value_t = 0.0)]
    crash_peers: f64,
    /// Share of peers that crash and restart later with fresh state.
    #[arg(long, default_value_t = 0.0)]
    restart_peers: f64,
    /// Seeds that crash and restart at healing (a minority: at most (n−1)/2).
    #[arg(long, default_value_t = 0)]
    crash_seeds: u32,
    /// A partition: `KIND:FRACTION:START-END` in seconds, KIND one of sym, oneway, bridge;
    /// e.g. `sym:0.3:20-40`. Repeatable.
    #[arg(long)]
    partition: Vec<String>,
    /// Lying DEAD_REPORTs (the simulator accuses random live peers to random seeds).
    #[arg(long, default_value_t = 0)]
    liars: u32,
    /// Forgers: each sends one seed every kind of forged message (commit syncs, SEED_SYNCs
    /// with entries, solicited votes, REGISTER_REQs) at random times, about random peers.
    #[arg(long, default_value_t = 0)]
    forgers: u32,
    /// Seeds that lie (a minority): yes to every vote, vouching for anything, forged entries
    /// in their anti-entropy replies, forged commit syncs pushed. They stop at healing.
    #[arg(long, default_value_t = 0)]
    lying_seeds: u32,
    /// Lying seeds keep lying after healing (promises 6–7 then hold among honest seeds).
    #[arg(long)]
    keep_lying: bool,
    /// This share of the peers (0 to 1) are Sybils, spread over the join order: admitted
    /// like any peer, attacking the overlay as --sybil-attack says. Delivery is then judged
    /// among honest peers only (`honest_delivered_ratio`).
    #[arg(long, default_value_t = 0.0)]
    sybils: f64,
    /// The Sybils' attack: `degree` (claim degree 65,535, accept every link, ack every gossip
    /// and forward nothing, refuse the repair as the original does).
    #[arg(long, default_value = "degree")]
    sybil_attack: String,
    /// Seconds over which peers join (default: 10 ms per peer, at most 100 s).
    #[arg(long)]
    join_window: Option<f64>,
    /// Gossip interval in ms (the spec's 5000).
    #[arg(long)]
    gossip_interval: Option<u64>,
    /// Turn gossip repair off (neighbours no longer reconcile what they hold, so a copy lost
    /// to a fault is lost for good).
    #[arg(long)]
    no_repair: bool,
    /// How peers pass gossip on: `flood` (whole on every link, the spec's) or `lazy`
    /// (whole along a spanning tree, announced on the other links; needs the repair).
    #[arg(long, default_value_t = GossipMode::Flood)]
    gossip_mode: GossipMode,
    /// Every peer publishes an application message this often, in ms (0: none). They travel
    /// like the spec's gossip and every promise about gossip covers them.
    #[arg(long, default_value_t = 0)]
    publish_every_ms: u64,
    /// Payload size of each application message published.
    #[arg(long, default_value_t = 1024)]
    publish_bytes: u32,
    /// When faults stop, in seconds (default: just after the last fault).
    #[arg(long)]
    heal: Option<f64>,
    /// Skip the per-event invariant checks (pure speed measurement; statistics still kept).
    #[arg(long)]
    no_check: bool,
    /// Print every node event (time, node, event) to stderr.
    #[arg(long)]
    log: bool,
    /// Alone: the report as one JSON object on stdout instead of the summary. With FILE: the
    /// report plus the per-second series, fault timeline, detections and promises written to
    /// FILE (the summary is still printed).
    #[arg(long, value_name = "FILE")]
    json: Option<Option<PathBuf>>,
    /// Write a self-contained HTML report (summary, promises, plots over time) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Wall seconds before the first progress line (a run that ends sooner prints none). On a
    /// terminal the line then updates in place 4 times a second; otherwise one line is
    /// printed every 10 seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    progress_after: f64,
    /// Soak: run N random fault schedules (every fault kind and adversary, the property
    /// tests' generator) on --jobs threads, each judged on every promise after healing;
    /// print progress, and for a broken promise the line that replays it. Exit 1 if any
    /// broke. The other run flags are ignored.
    #[arg(long, value_name = "N")]
    soak: Option<u64>,
    /// Soak: the first schedule's seed (schedule i is seed + i); default from the clock.
    #[arg(long, value_name = "SEED")]
    soak_seed: Option<u64>,
    /// Soak: peers per schedule at most (5 at least; seeds are 3 to 7).
    #[arg(long, value_name = "N", default_value_t = 30)]
    soak_peers: u32,
    /// Soak: the peers' gossip mode: flood, lazy, or both (by the schedule seed's lowest bit).
    #[arg(long, value_name = "MODE", default_value = "both")]
    soak_mode: String,
    /// Soak: threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run the one soak schedule of this seed (with --soak-peers and --soak-mode as the soak
    /// had them) instead of the run the other flags describe: the replay of a broken one.
    #[arg(long, value_name = "SEED")]
    schedule: Option<u64>,
}

/// Whether soak schedule `seed` runs lazy push, by `--soak-mode`.
fn soak_lazy(mode: &str, seed: u64) -> Result<bool, String> {
    match mode {
        "flood" => Ok(false),
        "lazy" => Ok(true),
        "both" => Ok(seed & 1 == 1),
        other => Err(format!(
            "--soak-mode {other:?}: expected flood, lazy or both"
        )),
    }
}

/// The line that replays soak schedule `seed`.
fn replay_line(args: &Args, seed: u64) -> String {
    format!(
        "sim --schedule {seed} --soak-peers {} --soak-mode {}",
        args.soak_peers, args.soak_mode
    )
}

/// `--soak N`: random schedules on all cores until N ran; the broken ones' replay lines.
fn soak(args: &Args, n: u64) -> ExitCode {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    if let Err(e) = soak_lazy(&args.soak_mode, 0) {
        eprintln!("sim: {e}");
        return ExitCode::from(2);
    }
    let base = args.soak_seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        mix64(t.map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id()))
    });
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    println!(
        "soak: {n} schedules from seed {base} on {jobs} threads, up to {} peers, mode {}",
        args.soak_peers, args.soak_mode
    );
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<(u64, Result<Report, String>)>();
    let started = Instant::now();
    let (mut done, mut broken, mut events, mut simulated_s) = (0u64, 0u64, 0u64, 0.0);
    let mut next_progress = started + Duration::from_secs(10);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let seed = base.wrapping_add(i);
                let outcome = soak_lazy(&args.soak_mode, seed).and_then(|lazy| {
                    let cfg = Schedule::random(seed, args.soak_peers, lazy).config(true);
                    let mut sim: Sim = Sim::new(cfg)?;
                    Ok(sim.run())
                });
                if tx.send((seed, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (seed, outcome) in rx {
            done += 1;
            match outcome {
                Ok(r) => {
                    events += r.events;
                    simulated_s += r.sim_time_s;
                    if r.invariant_violations > 0 || r.forged_changes > 0 {
                        broken += 1;
                        println!(
                            "BROKEN: schedule {seed}: {} promise(s) broken, first: {}\n  replay: {}",
                            r.invariant_violations,
                            r.violations.first().map_or("(a forged change)", String::as_str),
                            replay_line(args, seed)
                        );
                    }
                }
                Err(e) => {
                    broken += 1;
                    println!(
                        "BROKEN: schedule {seed}: {e}\n  replay: {}",
                        replay_line(args, seed)
                    );
                }
            }
            if Instant::now() >= next_progress || done == n {
                next_progress = Instant::now() + Duration::from_secs(10);
                let wall = started.elapsed().as_secs_f64().max(1e-9);
                let rate = done as f64 / wall;
                eprintln!(
                    "soak: {done}/{n} schedules · {broken} broken · {:.0} per hour · {:.0} s left",
                    rate * 3600.0,
                    (n - done) as f64 / rate.max(1e-9)
                );
            }
        }
    });
    let wall = started.elapsed().as_secs_f64();
    println!(
        "soak: {done} schedules in {:.0} s ({:.0} per hour on {jobs} threads), {:.0} s simulated, {:.1} M events; {broken} broken",
        wall,
        done as f64 * 3600.0 / wall.max(1e-9),
        simulated_s,
        events as f64 / 1e6
    );
    if broken > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The progress line on stderr for long runs: simulated time, events, rate, ETA.
struct Progress {
    on: bool,
    tty: bool,
    started: Instant,
    after: Duration,
    next: Instant,
    shown: bool,
}

impl Progress {
    fn new(on: bool, after_s: f64) -> Progress {
        let started = Instant::now();
        let after = Duration::try_from_secs_f64(after_s.max(0.0)).unwrap_or(Duration::MAX);
        Progress {
            on,
            tty: std::io::stderr().is_terminal(),
            started,
            after,
            next: started.checked_add(after).unwrap_or(started),
            shown: false,
        }
    }

    fn show(&mut self, now_ms: u64, end_ms: u64, events: u64) {
        if !self.on || self.after == Duration::MAX {
            return;
        }
        let t = Instant::now();
        if t < self.next {
            return;
        }
        self.next = t + if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        let wall = t.duration_since(self.started).as_secs_f64().max(1e-9);
        let mut line = format!(
            "sim: {:.1} of {:.1} s simulated ({:.0} %) · {:.2} M events · {:.2} M events/s",
            now_ms as f64 / 1000.0,
            end_ms as f64 / 1000.0,
            100.0 * now_ms as f64 / end_ms.max(1) as f64,
            events as f64 / 1e6,
            events as f64 / 1e6 / wall
        );
        if now_ms > 0 && end_ms > now_ms {
            let eta = wall * (end_ms - now_ms) as f64 / now_ms as f64;
            line.push_str(&format!(" · ETA {eta:.0} s"));
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.shown = true;
    }

    /// Clears the in-place line at the end of the run.
    fn done(&self) {
        if self.shown && self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// The command line as the HTML report shows it: without the options that only choose
/// where output goes, so the page is the same wherever it is written.
fn shown_command() -> String {
    shown_command_of(std::env::args().skip(1))
}

fn shown_command_of(args: impl Iterator<Item = String>) -> String {
    let mut shown = vec!["sim".to_string()];
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let name = a.split('=').next().unwrap_or("");
        let inline = a.contains('=');
        match name {
            "--quiet" => {}
            "--html" | "--progress-after" => {
                if !inline {
                    args.next();
                }
            }
            // `--json` alone writes to stdout; `--json FILE` names a file.
            "--json" => {
                if !inline && args.peek().is_some_and(|n| !n.starts_with("--")) {
                    args.next();
                }
            }
            _ => shown.push(a),
        }
    }
    shown.join(" ")
}

fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--latency {s:?}: expected N or MIN..MAX (ms)");
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let a = s.trim().parse().map_err(|_| bad())?;
            Ok((a, a))
        }
    }
}

fn parse_partition(s: &str, i: usize, seed: u64) -> Result<(u64, u64, Partition), String> {
    let bad = || format!("--partition {s:?}: expected KIND:FRACTION:START-END, e.g. sym:0.3:20-40");
    let mut it = s.split(':');
    let (Some(kind), Some(frac), Some(span), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(bad());
    };
    let fraction: f64 = frac.parse().map_err(|_| bad())?;
    let (a, b) = span.split_once('-').ok_or_else(bad)?;
    let (a, b): (f64, f64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    let kind = match kind {
        "sym" => PartitionKind::Symmetric,
        "oneway" => PartitionKind::OneWay,
        "bridge" => PartitionKind::Bridge { bridge: 0.05 },
        _ => return Err(bad()),
    };
    if !(0.0..=1.0).contains(&fraction) || a >= b || a < 0.0 {
        return Err(bad());
    }
    Ok((
        (a * 1000.0) as u64,
        (b * 1000.0) as u64,
        Partition {
            split: Split::Random {
                fraction,
                salt: mix64(seed ^ i as u64),
            },
            kind,
        },
    ))
}

fn build(args: &Args) -> Result<SimConfig, String> {
    let mut c = SimConfig::new(args.seed, args.seeds, args.peers);
    c.settings.max_gossip = args.max_gossip;
    c.settings.gossip_repair = !args.no_repair;
    c.settings.gossip_mode = args.gossip_mode;
    if let Some(g) = args.gossip_interval {
        c.settings.gossip_interval_ms = g;
    }
    if let Some(w) = args.join_window {
        c.join_window_ms = (w * 1000.0) as u64;
    } else if let Some(d) = args.duration {
        // Everyone joins within the first half of a run of fixed length.
        c.join_window_ms = c.join_window_ms.min((d * 500.0) as u64);
    }
    let (lo, hi) = parse_latency(&args.latency)?;
    c.net = if args.random_net {
        NetConfig::chosen_by(args.seed)
    } else {
        NetConfig {
            latency_min_ms: lo,
            latency_max_ms: hi,
            ..NetConfig::default()
        }
    };
    c.duration_ms = args.duration.map(|d| (d * 1000.0) as u64);
    c.check_safety = !args.no_check;
    if args.publish_every_ms > 0 {
        if args.publish_bytes > c.settings.max_app_bytes {
            return Err(format!(
                "--publish-bytes {}: over the limit of {} bytes",
                args.publish_bytes, c.settings.max_app_bytes
            ));
        }
        // Publishing goes on for as long as the peers make the spec's gossip.
        let until =
            c.joins_end_ms() + u64::from(c.settings.max_gossip) * c.settings.gossip_interval_ms;
        c.publishing = Some(Publishing {
            every_ms: args.publish_every_ms,
            bytes: args.publish_bytes,
            until_ms: args.duration.map_or(until, |d| (d * 1000.0) as u64),
        });
    }
    if args.crash_seeds > 0 && args.crash_seeds > args.seeds.saturating_sub(1) / 2 {
        return Err(format!(
            "--crash-seeds {}: at most a minority ({})",
            args.crash_seeds,
            args.seeds.saturating_sub(1) / 2
        ));
    }
    // Faults happen at random times in the 30 s after the joins.
    let mut rng = Rng::new(mix64(args.seed ^ 0x6661_756c_7473));
    let start = c.joins_end_ms() + 2_000;
    let span = 30_000;
    let mut faults = Vec::new();
    let at = |rng: &mut Rng| start + rng.below(span);
    let net_faults = args.drop > 0.0 || args.dup > 0.0 || args.jitter > 0;
    if net_faults {
        faults.push(Fault {
            at_ms: start,
            kind: FaultKind::SetDrop(args.drop),
        });
        faults.push(Fault {
            at_ms: start,
            kind: FaultKind::SetDup(args.dup),
        });
        faults.push(Fault {
            at_ms: start,
            kind: FaultKind::SetJitter(args.jitter),
        });
    }
    let peers: Vec<u32> = (0..args.peers).collect();
    let crash = (args.crash_peers * f64::from(args.peers)).round() as usize;
    let restart = (args.restart_peers * f64::from(args.peers)).round() as usize;
    let chosen = rng.sample(&peers, (crash + restart).min(peers.len()));
    for (k, &j) in chosen.iter().enumerate() {
        let t = at(&mut rng);
        faults.push(Fault {
            at_ms: t,
            kind: FaultKind::Crash(NodeRef::Peer(j)),
        });
        if k >= crash {
            faults.push(Fault {
                at_ms: t + 1_000 + rng.below(10_000),
                kind: FaultKind::Restart(NodeRef::Peer(j)),
            });
        }
    }
    let seeds: Vec<u32> = (0..args.seeds).collect();
    for s in rng.sample(&seeds, args.crash_seeds as usize) {
        let t = at(&mut rng);
        faults.push(Fault {
            at_ms: t,
            kind: FaultKind::Crash(NodeRef::Seed(s)),
        });
    }
    for _ in 0..args.liars {
        let t = at(&mut rng);
        let (peer, seed) = (
            rng.below(u64::from(args.peers.max(1))) as u32,
            rng.below(u64::from(args.seeds)) as u32,
        );
        faults.push(Fault {
            at_ms: t,
            kind: FaultKind::Lie { peer, seed },
        });
    }
    let minority = args.seeds.saturating_sub(1) / 2;
    if args.lying_seeds > minority {
        return Err(format!(
            "--lying-seeds {}: at most a minority ({minority})",
            args.lying_seeds
        ));
    }
    c.lying_seeds = rng.sample(&seeds, args.lying_seeds as usize);
    if !(0.0..=1.0).contains(&args.sybils) {
        return Err(format!("--sybils {}: a share from 0 to 1", args.sybils));
    }
    if args.sybils > 0.0 {
        let attack = SybilAttack::parse(&args.sybil_attack)
            .ok_or_else(|| format!("--sybil-attack {}: unknown (degree)", args.sybil_attack))?;
        c.sybils = Some(Sybils::share(args.peers, args.sybils, attack));
    }
    c.liars_stop_at_heal = !args.keep_lying;
    for _ in 0..args.forgers {
        let seed = rng.below(u64::from(args.seeds)) as u32;
        for kind in ForgeKind::ALL {
            let t = at(&mut rng);
            let peer = rng.below(u64::from(args.peers.max(1))) as u32;
            faults.push(Fault {
                at_ms: t,
                kind: FaultKind::Forge { kind, seed, peer },
            });
        }
    }
    for (i, p) in args.partition.iter().enumerate() {
        let (a, b, part) = parse_partition(p, i, args.seed)?;
        faults.push(Fault {
            at_ms: a,
            kind: FaultKind::Partition(part),
        });
        faults.push(Fault {
            at_ms: b,
            kind: FaultKind::HealPartition,
        });
    }
    if !faults.is_empty() || args.heal.is_some() || !c.lying_seeds.is_empty() {
        let mut last = faults.iter().map(|f| f.at_ms).max().unwrap_or(0);
        if !c.lying_seeds.is_empty() {
            last = last.max(start + span); // lying seeds lie through the fault window
        }
        let heal = args.heal.map_or(last + 1, |h| (h * 1000.0) as u64);
        c.heal_at_ms = Some(heal);
        c.faults = faults;
        c.liveness = true;
        // With an explicit duration too short for the liveness phase, skip it.
        if let Some(d) = c.duration_ms {
            if c.liveness_end_ms().is_some_and(|e| e > d) {
                c.liveness = false;
            }
        }
    }
    Ok(c)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.soak {
        return soak(&args, n);
    }
    let cfg = match args.schedule {
        Some(seed) => soak_lazy(&args.soak_mode, seed)
            .map(|lazy| Schedule::random(seed, args.soak_peers, lazy).config(true)),
        None => build(&args),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sim: Sim = match Sim::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    sim.set_log(args.log);
    let json_file = args.json.clone().flatten();
    let recording = args.html.is_some() || json_file.is_some();
    let mut recorder = recording.then(|| Recorder::attach(&mut sim));
    let mut progress = Progress::new(!args.quiet, args.progress_after);
    let end_ms = sim.config().end_ms();
    let step = if recording || progress.on {
        Recorder::EVERY_MS / 10
    } else {
        u64::MAX
    };
    let mut report = sim.run_observed(step, |s| {
        if let Some(r) = recorder.as_mut() {
            r.observe(s);
        }
        progress.show(s.now(), end_ms, s.events());
    });
    progress.done();
    report.peak_rss_kib = peak_rss_kib();
    if let Some(r) = recorder {
        let rec = r.finish(&sim, &report, &shown_command());
        if let Some(path) = &args.html {
            let page = gossip_sim_report::html::render(&rec);
            if let Err(e) = std::fs::write(path, page) {
                eprintln!("sim: writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if let Some(path) = &json_file {
            let written = serde_json::to_string(&rec)
                .map_err(|e| e.to_string())
                .and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("sim: writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if args.json == Some(None) {
        match serde_json::to_string(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("sim: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.human());
    }
    if report.invariant_violations > 0 {
        let mut line: Vec<String> = std::env::args().skip(1).collect();
        if !line
            .iter()
            .any(|a| a == "--seed" || a.starts_with("--seed="))
        {
            line.insert(0, format!("--seed {}", args.seed));
        }
        eprintln!(
            "reproduce with: cargo run --release --bin sim -- {}",
            line.join(" ")
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_command_leaves_out_where_output_goes() {
        let args = |s: &str| {
            s.split(' ')
                .map(String::from)
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            shown_command_of(args(
                "--peers 50 --html /tmp/a.html --json /tmp/a.json --quiet --seed 3"
            )),
            "sim --peers 50 --seed 3"
        );
        assert_eq!(
            shown_command_of(args("--json --html=x.html --progress-after 0 --drop 0.1")),
            "sim --drop 0.1"
        );
    }
}
