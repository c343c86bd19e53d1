//! Churn on real sockets: 5 seeds and 20 peers, then a bounded period of random `kill -9`,
//! SIGSTOP/SIGCONT and restarts of peers and of a minority of seeds. Afterwards every live
//! seed holds the same Peer List, every live peer is in it, every killed peer is out, and no
//! node panicked.
//!
//! The schedule is drawn from a seed, printed before it runs; rerun one with
//! `CHURN_SEED=<n> cargo test --release -p gossip-bins --test hardening_churn -- --nocapture`.

mod hardening_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip_core::msg::{Endpoint, Status};
use hardening_support::*;

const SEEDS: usize = 5;
const PEERS: usize = 20;
/// Seeds down (killed or stopped) at once at most: a minority, so a quorum always lives.
const MAX_SEEDS_DOWN: usize = 2;
/// Peer kills in one schedule at most (a dead peer is noticed only by a live neighbour, so
/// the schedule must not kill a whole neighbourhood).
const MAX_PEER_KILLS: usize = 6;
const CHURN: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(45);

/// xorshift64*: the schedule's only randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone, Debug)]
enum Action {
    KillPeer(Endpoint),
    RestartPeer(Endpoint),
    PausePeer(Endpoint, u64),
    KillSeed(Endpoint),
    RestartSeed(Endpoint),
    PauseSeed(Endpoint, u64),
}

/// The schedule as `(ms after the churn starts, action)`, resolved against bookkeeping only
/// (never against what the network did), so one seed always gives the same schedule.
fn schedule(seed: u64, seeds: &[Endpoint], peers: &[Endpoint]) -> Vec<(u64, Action)> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let mut killed: BTreeSet<Endpoint> = BTreeSet::new();
    let mut ever_killed = 0;
    let mut seeds_down: BTreeSet<Endpoint> = BTreeSet::new();
    // Until when a paused node stays paused: it is not picked again before.
    let mut busy_until: std::collections::BTreeMap<Endpoint, u64> = Default::default();
    let mut at = 500u64;
    while at < CHURN.as_millis() as u64 {
        let free = |e: &Endpoint, busy: &std::collections::BTreeMap<Endpoint, u64>| {
            busy.get(e).is_none_or(|&t| t < at)
        };
        let live_peers: Vec<Endpoint> = peers
            .iter()
            .filter(|p| !killed.contains(p) && free(p, &busy_until))
            .copied()
            .collect();
        let paused_seeds = seeds.iter().filter(|s| !free(s, &busy_until)).count();
        let seeds_out = seeds_down.len() + paused_seeds;
        let up_seeds: Vec<Endpoint> = seeds
            .iter()
            .filter(|s| !seeds_down.contains(s) && free(s, &busy_until))
            .copied()
            .collect();
        let action = match rng.below(10) {
            0 | 1 if ever_killed < MAX_PEER_KILLS && live_peers.len() > PEERS / 2 => {
                let p = live_peers[rng.below(live_peers.len())];
                killed.insert(p);
                ever_killed += 1;
                Some(Action::KillPeer(p))
            }
            2 if killed.len() > 1 => {
                let list: Vec<_> = killed.iter().copied().collect();
                let p = list[rng.below(list.len())];
                killed.remove(&p);
                Some(Action::RestartPeer(p))
            }
            3..=5 if !live_peers.is_empty() => {
                let p = live_peers[rng.below(live_peers.len())];
                let ms = 200 + rng.below(1_800) as u64;
                busy_until.insert(p, at + ms);
                Some(Action::PausePeer(p, ms))
            }
            6 if seeds_out < MAX_SEEDS_DOWN && !up_seeds.is_empty() => {
                let s = up_seeds[rng.below(up_seeds.len())];
                seeds_down.insert(s);
                Some(Action::KillSeed(s))
            }
            7 if !seeds_down.is_empty() => {
                let list: Vec<_> = seeds_down.iter().copied().collect();
                let s = list[rng.below(list.len())];
                seeds_down.remove(&s);
                Some(Action::RestartSeed(s))
            }
            8 if seeds_out < MAX_SEEDS_DOWN && !up_seeds.is_empty() => {
                let s = up_seeds[rng.below(up_seeds.len())];
                let ms = 200 + rng.below(1_000) as u64;
                busy_until.insert(s, at + ms);
                // A paused seed counts as down while paused.
                Some(Action::PauseSeed(s, ms))
            }
            _ => None,
        };
        if let Some(a) = action {
            out.push((at, a));
        }
        at += 250 + rng.below(500) as u64;
    }
    // Bring every seed back at the end: the catch-up is part of what is checked.
    for s in seeds_down {
        out.push((CHURN.as_millis() as u64, Action::RestartSeed(s)));
    }
    out
}

#[test]
fn churn_of_peers_and_a_minority_of_seeds_converges() {
    let mut net = Net::start("churn", SEEDS, &[]);
    let seeds = net.seeds.clone();
    let peers: Vec<SocketAddr> = (0..PEERS)
        .map(|i| net.add_peer_on([127, 0, 0, 20 + i as u8]))
        .collect();
    let joined = wait_for(Duration::from_secs(20), || {
        seeds
            .iter()
            .all(|&s| alive(s).is_some_and(|l| peers.iter().all(|p| l.contains(p))))
    });
    assert!(joined, "the 20 peers did not all register");

    let seed = std::env::var("CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let plan = schedule(seed, &seeds, &peers);
    eprintln!("churn: CHURN_SEED={seed}, {} events:", plan.len());
    for (at, a) in &plan {
        eprintln!("  +{at:>5} ms {a:?}");
    }

    // Run it. Pauses end by a SIGCONT at their own time, interleaved with the plan.
    let start = Instant::now();
    let mut resumes: Vec<(u64, Endpoint)> = Vec::new();
    let mut killed: BTreeSet<Endpoint> = BTreeSet::new();
    let mut events = 0;
    for (at, action) in &plan {
        loop {
            resumes.sort();
            let next_resume = resumes.first().copied();
            match next_resume {
                Some((t, who)) if t <= *at => {
                    sleep_until(start, t);
                    net.signal(who, "-CONT");
                    resumes.remove(0);
                    events += 1;
                }
                _ => break,
            }
        }
        sleep_until(start, *at);
        match action {
            Action::KillPeer(p) => {
                net.kill(*p);
                killed.insert(*p);
            }
            Action::RestartPeer(p) => {
                net.spawn(*p, false);
                killed.remove(p);
            }
            Action::KillSeed(s) => net.kill(*s),
            Action::RestartSeed(s) => net.spawn(*s, true),
            Action::PausePeer(e, ms) | Action::PauseSeed(e, ms) => {
                net.signal(*e, "-STOP");
                resumes.push((at + ms, *e));
            }
        }
        events += 1;
    }
    resumes.sort();
    for (t, who) in resumes {
        sleep_until(start, t);
        net.signal(who, "-CONT");
        events += 1;
    }
    let churned = start.elapsed();

    // Settle, then check.
    let live_peers: Vec<Endpoint> = peers
        .iter()
        .filter(|p| !killed.contains(p))
        .copied()
        .collect();
    let settle = Instant::now();
    let mut last = String::new();
    let converged = wait_for(SETTLE, || match verdict(&seeds, &live_peers, &killed) {
        Ok(()) => true,
        Err(why) => {
            last = why;
            false
        }
    });
    eprintln!(
        "churn: {events} events in {churned:?} (seed {seed}); {} live peers, {} killed; \
         converged after {:?}",
        live_peers.len(),
        killed.len(),
        settle.elapsed()
    );
    let panics = net.panics();
    assert!(panics.is_empty(), "CHURN_SEED={seed}: panics: {panics:?}");
    assert!(converged, "CHURN_SEED={seed}: did not converge: {last}");
}

fn sleep_until(start: Instant, ms: u64) {
    let t = start + Duration::from_millis(ms);
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// `Ok` when every seed answers with the same Peer List, every live peer is alive in it and
/// every killed peer is not.
fn verdict(
    seeds: &[Endpoint],
    live_peers: &[Endpoint],
    killed: &BTreeSet<Endpoint>,
) -> Result<(), String> {
    let mut lists = Vec::new();
    for s in seeds {
        match peer_list(*s) {
            Some(l) => lists.push((*s, l)),
            None => return Err(format!("seed {s} does not answer")),
        }
    }
    let (first_seed, first) = &lists[0];
    for (s, l) in &lists[1..] {
        if l != first {
            return Err(format!("seed {s} and seed {first_seed} disagree"));
        }
    }
    let alive: BTreeSet<Endpoint> = first
        .iter()
        .filter(|e| e.2 == Status::Alive)
        .map(|e| e.0)
        .collect();
    for p in live_peers {
        if !alive.contains(p) {
            return Err(format!("live peer {p} is not alive in the PL"));
        }
    }
    for p in killed {
        if alive.contains(p) {
            return Err(format!("killed peer {p} is still alive in the PL"));
        }
    }
    Ok(())
}
