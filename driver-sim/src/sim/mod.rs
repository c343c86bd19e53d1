//! The simulator proper: the nodes it hosts, the run loop that pops events and dispatches
//! them, and what it hands the checker. The rest of its state lives in [`World`] (everything
//! but the nodes, so a node's outputs can be carried out while the node is borrowed), and its
//! parts in the submodules: [`calls`] (sends, deliveries, replies, timeouts, the network's
//! latency and loss), [`faults`] (crashes, restarts, partitions, healing, the lying peer),
//! [`adversaries`] (the forger, lying seeds) and [`trace`] (the trace hash).

mod adversaries;
mod calls;
mod faults;
mod sybils;
mod trace;

use std::collections::BTreeMap;
use std::time::Instant;

use gossip_core::hash::{combine, mix64};
use gossip_core::msg::{Endpoint, Message};
use gossip_core::rng::Rng;
use gossip_core::{Event, Input, Millis, Node, NodeInit, Output};

use crate::actor::Actor;
use crate::addr::Addrs;
use crate::checker::{Checker, Violation};
use crate::config::{Fault, NetConfig, NodeRef, SimConfig};
use crate::meter::thread_cpu_seconds;
use crate::queue::Queue;
use crate::report::{Report, RunNumbers};
use crate::tap::{LogTap, Tap};

use calls::{Call, Outcome};
use faults::PartState;

/// Unix time at `Millis(0)` in every simulated node: 2026-01-01T00:00:00Z, fixed so that the
/// texts nodes make (gossip, dead reports) are the same on every run.
pub const UNIX_MS_AT_ZERO: u64 = 1_767_225_600_000;

const NONE: u64 = u64::MAX;
/// The simulator itself as a sender (the lying peer, the forger).
const EXTERNAL: u32 = u32::MAX;
/// An endpoint nobody listens on.
const NOBODY: u32 = u32::MAX - 1;

/// What the queue holds. Small and `Copy`: messages stay in their [`Call`].
#[derive(Copy, Clone, Debug)]
enum Ev {
    /// A node's timer, valid only if the node is still in `epoch` and still wants it now.
    Timer { node: u32, epoch: u32 },
    /// A request reaches its target (`dup`: the injected second copy).
    Deliver { call: u32, gen: u32, dup: bool },
    /// The outcome of a call reaches its sender (the first one to arrive wins).
    Answer {
        call: u32,
        gen: u32,
        outcome: Outcome,
    },
    /// A peer joins for the first time.
    Start(u32),
    /// The fault at this index of the sorted schedule.
    Fault(u32),
    /// Faults stop.
    Heal,
    /// Evaluate promises 6–7 (`last`: the bound is reached; failures are violations).
    Check { last: bool },
    /// A forged request queued for later (`World::later`) is sent.
    Inject(u32),
    /// A lying seed pushes a forged commit sync.
    LiarTick(u32),
    /// A peer publishes an application message (see [`crate::config::Publishing`]).
    Publish(u32),
    /// A node told to leave in `epoch` is stopped now if it has not finished.
    LeaveDeadline { node: u32, epoch: u32 },
}

/// A hosted node and the simulator's bookkeeping for it, which every event for the node
/// reads: kept in front of the node, in the cache line the node starts in.
#[derive(Debug)]
struct Slot<A> {
    /// The deadline the queued timer event is for (`NONE`: none queued).
    timer_at: u64,
    /// Bumped at every crash: events of an earlier epoch are stale.
    epoch: u32,
    /// Starts so far.
    life: u32,
    /// Told to leave: stopped once it is done.
    leaving: bool,
    actor: Option<A>,
}

/// A predicate over node events that stops the run when it holds (for scenario tests).
pub type Watch = Box<dyn FnMut(u64, NodeRef, &Event) -> bool>;

/// Everything but the nodes, so a node's outputs can be carried out while it is borrowed.
struct World {
    cfg: SimConfig,
    addrs: Addrs,
    seed_list: Vec<Endpoint>,
    q: Queue<Ev>,
    calls: Vec<Call>,
    free: Vec<u32>,
    /// The endpoint of each live call to an endpoint no node listens on (rare).
    unknown_targets: BTreeMap<u32, Endpoint>,
    rng: Rng,
    link_salt: u64,
    net: NetConfig,
    part: Option<PartState>,
    /// Slow nodes and their most extra delay per message (see [`FaultKind::Slow`]).
    slow: Vec<(u32, u64)>,
    trace: u64,
    events: u64,
    checker: Checker,
    healed: bool,
    watch: Option<Watch>,
    watch_hit: bool,
    /// Observers of the run ([`Sim::add_tap`]): they read, the run never depends on them.
    taps: Vec<Box<dyn Tap>>,
    faults: Vec<Fault>,
    messages_lost: u64,
    /// The adversaries' own random choices, apart from the network's, so that adding
    /// adversaries to a run leaves the network's draws as they were.
    adv_rng: Rng,
    /// Per seed: it is a lying seed (it lies while [`World::lying`] says so).
    liars: Vec<bool>,
    any_liars: bool,
    /// Per node id: a Sybil peer ([`crate::Sybils`]), answered for by the simulator.
    sybil: Vec<bool>,
    any_sybils: bool,
    /// Forged requests to send later, `(seed, request)`, taken when sent.
    later: Vec<Option<(u32, Message)>>,
    /// Forged messages sent (and lies told), by kind.
    forged_sent: BTreeMap<&'static str, u64>,
    /// Numbers the forged proposal ids.
    forged_seq: u64,
    /// Genuine commit syncs seen, for a replay ([`crate::FaultKind::ReplayCommits`]).
    recorded_commits: Vec<Message>,
}

/// A simulated cluster. See the crate documentation for the model.
pub struct Sim<A: Actor = Node> {
    nodes: Vec<Slot<A>>,
    /// The buffer the simulator lends every node for its outputs (see [`Actor::handle`]).
    outputs: Vec<Output>,
    w: World,
    /// The node the next event to dispatch is for (`NOBODY` if none or unknown): see
    /// [`Sim::read_ahead`].
    ahead: u32,
}

impl World {
    /// Carries out one output of `node` (in `epoch`), in the order the node made them.
    #[inline]
    fn output(&mut self, now: u64, node: u32, epoch: u32, o: Output) {
        match o {
            Output::Send {
                to,
                msg,
                deadline,
                wants_response,
            } => self.send(now, node, epoch, to, msg, deadline, wants_response),
            Output::Reply { conn, msg } => self.reply(now, node, conn, msg),
            Output::Event(ev) => self.event(now, node, &ev),
        }
    }

    /// A node event: handed to the checker, the taps and the watch.
    fn event(&mut self, now: u64, node: u32, ev: &Event) {
        if self.cfg.check_safety
            || matches!(
                ev,
                // Statistics need these even when the checks are off.
                Event::GossipFirstReceived { .. }
                    | Event::GossipGenerated { .. }
                    | Event::AppDelivered { .. }
                    | Event::AppPublished { .. }
                    | Event::NeighbourAdded { .. }
                    | Event::NeighbourDropped { .. }
                    | Event::EntryChanged { .. }
                    | Event::EntryReaped { .. }
                    | Event::RegistrationQuorum { .. }
                    | Event::Rejoining { .. }
            )
        {
            self.checker.on_event(now, node, ev);
        }
        if !self.taps.is_empty() {
            let endpoint = self.addrs.endpoint(node);
            for tap in &mut self.taps {
                tap.on_event(now, node, endpoint, ev, &self.checker);
            }
        }
        if let Some(w) = &mut self.watch {
            let r = if self.addrs.is_seed(node) {
                NodeRef::Seed(node)
            } else {
                NodeRef::Peer(node - self.addrs.seeds)
            };
            if w(now, r, ev) {
                self.watch_hit = true;
            }
        }
    }

    fn stopped(&self) -> bool {
        self.watch_hit || (self.cfg.stop_on_violation && self.checker.violation_count() > 0)
    }
}

impl<A: Actor> Sim<A> {
    /// A cluster for `cfg`: seeds start at 0, peers at their join times, faults are queued.
    /// Fails if the settings do not validate.
    pub fn new(cfg: SimConfig) -> Result<Sim<A>, String> {
        cfg.settings.validate().map_err(|e| e.0)?;
        if cfg.seeds == 0 {
            return Err("at least one seed is needed".into());
        }
        if cfg.seeds > 60_000 || cfg.peers > 254 << 16 {
            return Err("too many nodes for the address plan".into());
        }
        let mut liars = cfg.lying_seeds.clone();
        liars.sort_unstable();
        liars.dedup();
        if liars.len() != cfg.lying_seeds.len()
            || liars.iter().any(|&i| i >= cfg.seeds)
            || liars.len() as u32 > (cfg.seeds - 1) / 2
        {
            return Err(format!(
                "lying seeds {:?}: distinct seeds of the config, at most a minority ({})",
                cfg.lying_seeds,
                (cfg.seeds - 1) / 2
            ));
        }
        let addrs = Addrs {
            seeds: cfg.seeds,
            peers: cfg.peers,
        };
        let mut faults = cfg.faults.clone();
        if let Some(h) = cfg.heal_at_ms {
            faults.retain(|f| f.at_ms < h);
        }
        faults.sort_by_key(|f| f.at_ms); // stable: ties keep list order
        let w = World {
            addrs,
            seed_list: addrs.seed_list(),
            q: Queue::default(),
            calls: Vec::new(),
            unknown_targets: BTreeMap::new(),
            free: Vec::new(),
            rng: Rng::new(mix64(cfg.seed ^ 0x7369_6d6e_6574_0001)),
            link_salt: mix64(cfg.seed ^ 0x6c69_6e6b_0002),
            net: cfg.net.clone(),
            part: None,
            slow: Vec::new(),
            trace: mix64(cfg.seed),
            events: 0,
            checker: Checker::new(&cfg),
            healed: false,
            watch: None,
            watch_hit: false,
            taps: Vec::new(),
            faults,
            messages_lost: 0,
            adv_rng: Rng::new(mix64(cfg.seed ^ 0x6164_7665_7273_0003)),
            liars: (0..cfg.seeds).map(|i| cfg.is_lying_seed(i)).collect(),
            any_liars: !cfg.lying_seeds.is_empty(),
            sybil: (0..cfg.seeds + cfg.peers)
                .map(|n| n >= cfg.seeds && cfg.is_sybil(n - cfg.seeds))
                .collect(),
            any_sybils: cfg.sybils.as_ref().is_some_and(|s| !s.peers.is_empty()),
            later: Vec::new(),
            forged_sent: BTreeMap::new(),
            forged_seq: 0,
            recorded_commits: Vec::new(),
            cfg,
        };
        let mut sim = Sim {
            nodes: (0..addrs.nodes())
                .map(|_| Slot {
                    actor: None,
                    epoch: 0,
                    timer_at: NONE,
                    life: 0,
                    leaving: false,
                })
                .collect(),
            outputs: Vec::new(),
            ahead: NOBODY,
            w,
        };
        for j in 0..addrs.peers {
            let at = sim.w.cfg.join_at_ms(j);
            sim.w.q.push(at, Ev::Start(addrs.seeds + j));
        }
        for (i, f) in sim.w.faults.iter().enumerate() {
            sim.w.q.push(f.at_ms, Ev::Fault(i as u32));
        }
        if let Some(p) = &sim.w.cfg.publishing {
            for j in 0..addrs.peers {
                let at = sim.w.cfg.join_at_ms(j) + p.every_ms.max(1);
                sim.w.q.push(at, Ev::Publish(addrs.seeds + j));
            }
        }
        if let Some(h) = sim.w.cfg.heal_at_ms {
            sim.w.q.push(h, Ev::Heal);
            if sim.w.cfg.liveness {
                let bound = sim.w.cfg.liveness_bound_ms();
                let mut t = h + 1_000;
                while t < h + bound {
                    sim.w.q.push(t, Ev::Check { last: false });
                    t += 1_000;
                }
                sim.w.q.push(h + bound, Ev::Check { last: true });
            }
        }
        for s in 0..addrs.seeds {
            sim.start_node(0, s);
        }
        let interval = sim.w.cfg.settings.anti_entropy_interval_ms;
        for &liar in &sim.w.cfg.lying_seeds {
            let at = 1 + sim.w.adv_rng.below(interval);
            sim.w.q.push(at, Ev::LiarTick(liar));
        }
        Ok(sim)
    }

    /// With `on`, prints every node event to stderr as it happens (`time node event`; a
    /// [`LogTap`]).
    pub fn set_log(&mut self, on: bool) {
        if on {
            self.add_tap(Box::new(LogTap));
        }
    }

    /// Adds an observer of the run from now on (see [`Tap`]).
    pub fn add_tap(&mut self, tap: Box<dyn Tap>) {
        self.w.taps.push(tap);
    }

    /// Stops [`Sim::run_until`] right after the step in which `watch` returns true.
    pub fn set_watch(&mut self, watch: Option<Watch>) {
        self.w.watch = watch;
        self.w.watch_hit = false;
    }

    /// The config this run follows.
    pub fn config(&self) -> &SimConfig {
        &self.w.cfg
    }

    /// The address plan.
    pub fn addrs(&self) -> Addrs {
        self.w.addrs
    }

    /// Current simulated time (ms).
    pub fn now(&self) -> u64 {
        self.w.q.now()
    }

    /// Events so far: messages delivered to nodes and timers fired at them.
    pub fn events(&self) -> u64 {
        self.w.events
    }

    /// Messages lost so far (dropped, stopped by a partition, or to a node that is down).
    pub fn messages_lost(&self) -> u64 {
        self.w.messages_lost
    }

    /// Hash of everything delivered so far, in order: same seed and config, same hash.
    pub fn trace_hash(&self) -> u64 {
        self.w.trace
    }

    /// Violations found so far (the first few in full).
    pub fn violations(&self) -> &[Violation] {
        self.w.checker.violations()
    }

    /// The ghost state and statistics.
    pub fn checker(&self) -> &Checker {
        &self.w.checker
    }

    /// The node `r`, if it is up.
    pub fn node(&self, r: NodeRef) -> Option<&A> {
        self.nodes.get(self.id(r) as usize)?.actor.as_ref()
    }

    /// The endpoint of `r`.
    pub fn endpoint(&self, r: NodeRef) -> Endpoint {
        self.w.addrs.endpoint(self.id(r))
    }

    /// Time from healing until promises 6–7 first held (checked every second), if they did.
    pub fn converged_ms(&self) -> Option<u64> {
        self.w.checker.converged_ms()
    }

    fn id(&self, r: NodeRef) -> u32 {
        match r {
            NodeRef::Seed(i) => i,
            NodeRef::Peer(j) => self.w.addrs.seeds + j,
        }
    }

    /// Runs until simulated time `until_ms` (or a stop). Returns false if it stopped early on
    /// a violation or the watch.
    pub fn run_until(&mut self, until_ms: u64) -> bool {
        while let Some((now, ev)) = self.w.q.pop_until(until_ms) {
            self.read_ahead();
            self.dispatch(now, ev);
            if self.w.stopped() {
                return false;
            }
        }
        true
    }

    /// Runs the whole configured run and reports.
    pub fn run(&mut self) -> Report {
        self.run_observed(u64::MAX, |_| {})
    }

    /// Runs the whole configured run like [`Sim::run`], and lets `observe` look at the
    /// simulator every `every_ms` of simulated time (after every event up to that time) and at
    /// the end, before the end-of-run checks. The run is the same as without observing: the
    /// queue is only drained in steps.
    pub fn run_observed(&mut self, every_ms: u64, mut observe: impl FnMut(&Self)) -> Report {
        let start = Instant::now();
        let cpu_start = thread_cpu_seconds();
        let end = self.w.cfg.end_ms();
        let every = every_ms.max(1);
        let mut until = self.now();
        loop {
            until = until.saturating_add(every).min(end);
            let go_on = self.run_until(until);
            observe(self);
            if !go_on || until >= end {
                break;
            }
        }
        self.finish();
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_start
            .zip(thread_cpu_seconds())
            .map(|(a, b)| (b - a).max(0.0));
        self.report(wall, cpu)
    }

    /// Starts two cache misses of the coming events while this one is handled: the first line
    /// of the next event's node, and the call of the event after it (which names that event's
    /// node for the next step). The simulator visits a node or a call only now and then, so
    /// each is a miss to main memory; loaded early, it overlaps with this event's own misses
    /// instead of following them. Safe Rust has no prefetch instruction, so these are plain
    /// loads whose values are discarded.
    #[inline]
    fn read_ahead(&mut self) {
        if let Some(slot) = self.nodes.get(self.ahead as usize) {
            std::hint::black_box(slot.timer_at);
        }
        let call_node = |call: u32, pick: fn(&Call) -> u32| {
            self.w.calls.get(call as usize).map_or(NOBODY, pick)
        };
        self.ahead = match self.w.q.peek_now(1) {
            Some(&Ev::Timer { node, .. }) => node,
            Some(&Ev::Deliver { call, .. }) => call_node(call, |c| c.to),
            Some(&Ev::Answer { call, .. }) => call_node(call, |c| c.from),
            _ => NOBODY,
        };
    }

    fn dispatch(&mut self, now: u64, ev: Ev) {
        match ev {
            Ev::Timer { node, epoch } => {
                let slot = &mut self.nodes[node as usize];
                if slot.epoch != epoch || slot.timer_at != now {
                    return;
                }
                slot.timer_at = NONE;
                let Some(actor) = slot.actor.as_mut() else {
                    return;
                };
                self.w.hash_event(now, node, 0x7469_636b);
                actor.handle(Millis(now), Input::Tick, &mut self.outputs);
                self.after(now, node, true);
            }
            Ev::Deliver { call, gen, dup } => self.deliver(now, call, gen, dup),
            Ev::Answer { call, gen, outcome } => self.answer(now, call, gen, outcome),
            Ev::Start(node) => self.start_node(now, node),
            Ev::Fault(i) => {
                if let Some(f) = self.w.faults.get(i as usize) {
                    let kind = f.kind.clone();
                    self.apply(now, kind);
                }
            }
            Ev::Heal => self.heal(now),
            Ev::Check { last } => self.w.checker.check_liveness(now, last),
            Ev::Inject(i) => {
                if let Some((to, msg)) = self.w.later.get_mut(i as usize).and_then(Option::take) {
                    self.w.send_forged(now, to, msg, "commit");
                }
            }
            Ev::LiarTick(liar) => self.liar_tick(now, liar),
            Ev::Publish(node) => self.publish(now, node),
            Ev::LeaveDeadline { node, epoch } => {
                if self
                    .nodes
                    .get(node as usize)
                    .is_some_and(|s| s.epoch == epoch)
                {
                    self.crash_node(now, node);
                }
            }
        }
    }

    /// Node `node` is told to leave ([`crate::FaultKind::Leave`]): it is stopped when done,
    /// or at the deadline.
    pub(super) fn leave_node(&mut self, now: u64, node: u32) {
        let Some(slot) = self.nodes.get_mut(node as usize) else {
            return;
        };
        let Some(actor) = slot.actor.as_mut() else {
            return;
        };
        slot.leaving = true;
        let epoch = slot.epoch;
        self.w.checker.leaving(now, node);
        self.w.hash_event(now, node, 0x6c65_6176);
        actor.handle(Millis(now), Input::Leave, &mut self.outputs);
        self.after(now, node, false);
        let deadline = now + crate::config::LEAVE_DEADLINE_MS;
        self.w.q.push(deadline, Ev::LeaveDeadline { node, epoch });
    }

    /// Peer `node` publishes an application message if it is up (it refuses if it has not
    /// joined yet), then again one interval later.
    fn publish(&mut self, now: u64, node: u32) {
        let Some(p) = self.w.cfg.publishing.clone() else {
            return;
        };
        if now >= p.until_ms {
            return;
        }
        self.w.q.push(now + p.every_ms.max(1), Ev::Publish(node));
        let Some(actor) = self.nodes[node as usize].actor.as_mut() else {
            return;
        };
        self.w.hash_event(now, node, 0x7075_626c);
        let input = Input::Publish {
            name: Some("sim".into()),
            data: "m".repeat(p.bytes as usize),
        };
        actor.handle(Millis(now), input, &mut self.outputs);
        self.after(now, node, false);
    }

    /// After a node handled an input: carry out its outputs and queue its next timer (or,
    /// when it is done leaving, stop it).
    #[inline]
    fn after(&mut self, now: u64, node: u32, ticked: bool) {
        let slot = &mut self.nodes[node as usize];
        let Some(actor) = slot.actor.as_mut() else {
            self.outputs.clear();
            return;
        };
        let epoch = slot.epoch;
        let w = &mut self.w;
        for o in self.outputs.drain(..) {
            w.output(now, node, epoch, o);
        }
        w.checker.end_step(now);
        if slot.leaving && actor.done() {
            // Done leaving: it exits, as the driver would (what it sent is on its way).
            self.crash_node(now, node);
            return;
        }
        if let Some(d) = actor.next_deadline() {
            // After a tick a deadline that is still due would spin: move it on by 1 ms.
            let at = if ticked {
                d.0.max(now + 1)
            } else {
                d.0.max(now)
            };
            if slot.timer_at != at {
                slot.timer_at = at;
                self.w.q.push(at, Ev::Timer { node, epoch });
            }
        }
    }

    /// Starts node `node` (a first start or a restart) with fresh state, unless it is up.
    fn start_node(&mut self, now: u64, node: u32) {
        let slot = &mut self.nodes[node as usize];
        if slot.actor.is_some() {
            return;
        }
        slot.life += 1;
        let rng_seed = mix64(combine(
            combine(self.w.cfg.seed, u64::from(node)),
            u64::from(slot.life),
        ));
        let init = NodeInit {
            me: self.w.addrs.endpoint(node),
            seeds: self.w.seed_list.clone(),
            settings: self.w.cfg.settings.clone(),
            rng_seed,
            unix_ms_at_zero: UNIX_MS_AT_ZERO,
        };
        self.w.checker.started(now, node);
        match A::start(self.w.addrs.is_seed(node), init) {
            Ok(a) => {
                let actor = slot.actor.insert(a);
                slot.timer_at = NONE;
                actor.handle(Millis(now), Input::Start, &mut self.outputs);
                self.after(now, node, false);
            }
            Err(e) => {
                let what = format!("{} failed to start: {e}", self.w.addrs.endpoint(node));
                self.w.checker.violation(now, 0, what);
            }
        }
    }

    /// Lets `f` act on node `r` (if up) as if it were handling an input now, with its outputs
    /// going to `f`'s second argument; they are then carried out. For tests that need a node
    /// to do something on cue.
    pub fn with_node<R>(
        &mut self,
        r: NodeRef,
        f: impl FnOnce(&mut A, &mut Vec<Output>) -> R,
    ) -> Option<R> {
        let now = self.now();
        let node = self.id(r);
        let actor = self.nodes.get_mut(node as usize)?.actor.as_mut()?;
        let res = f(actor, &mut self.outputs);
        self.after(now, node, false);
        Some(res)
    }

    /// End-of-run checks: promise 5 for the gossips of the check window, and each live seed's
    /// own Peer List against the ghost built from its events (promise 1).
    pub fn finish(&mut self) {
        let now = self.now();
        self.w.checker.check_delivery(now);
        for s in 0..self.w.addrs.seeds {
            let Some(actor) = self.nodes[s as usize].actor.as_ref() else {
                continue;
            };
            if let gossip_core::msg::RoleStatus::Seed(st) = actor.status().role {
                self.w.checker.check_seed_list(now, s, &st.entries);
            }
        }
    }

    /// The report of the run so far, given the wall and CPU seconds it took.
    pub fn report(&self, wall_s: f64, cpu_s: Option<f64>) -> Report {
        let cfg = &self.w.cfg;
        let run = RunNumbers {
            seed: cfg.seed,
            seeds: cfg.seeds,
            peers: cfg.peers,
            gossip_mode: cfg.settings.gossip_mode,
            sim_ms: self.now(),
            wall_s,
            cpu_s,
            events: self.w.events,
            trace_hash: self.w.trace,
            messages_lost: self.w.messages_lost,
            liveness_bound_ms: (cfg.liveness && cfg.heal_at_ms.is_some())
                .then(|| cfg.liveness_bound_ms()),
            forged_sent: self.w.forged_sent.clone(),
            sybils: (cfg.sybils.as_ref())
                .filter(|s| !s.peers.is_empty())
                .map(|s| (s.peers.len() as u32, s.attack.name())),
        };
        Report::new(
            run,
            self.w.checker.measure(self.now(), cfg.settings.min_degree),
        )
    }

    /// Whether the run reached the liveness bound (so promises 6–7 were checked).
    pub fn liveness_checked(&self) -> bool {
        self.w.checker.liveness_checked()
    }
}
