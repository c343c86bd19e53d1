//! # gossip-driver-sim: whole clusters in memory, in virtual time, from one seed
//!
//! Runs `n` seeds and `m` peers of the unchanged [`gossip_core`] state machines in one
//! thread, in simulated milliseconds, with injected faults, and checks the promises of
//! `docs/SIMULATOR.md` ("The promises") after every event. There is no `if simulated` anywhere in the core: the
//! simulator is just another driver of the same contract (handle, drain, deadline).
//!
//! ## The model
//!
//! * **Nodes.** Dense `u32` ids: seeds `0..n` on `127.0.0.1:5001..`, peers after them on
//!   `127.x.y.z:6000` ([`addr`]). Seeds start at 0 ms; peer `j` joins at
//!   `join_start + j·join_window/m` (staggered, so preferential attachment sees earlier
//!   peers' degrees). Node `i`'s random seed is derived from (run seed, `i`, its restart count)
//!   and every node's wall clock starts at [`UNIX_MS_AT_ZERO`], so texts replay exactly.
//! * **Events.** One queue ordered by `(time, sequence)` ([`queue`]: a timing wheel of 1 ms
//!   slots, FIFO within a slot, with an overflow heap). An event is a node's timer, a request
//!   reaching its target, or a call's outcome reaching its sender. After each `handle` the
//!   simulator drains the node's outputs and queues its timer at `next_deadline()`; a timer
//!   event whose node crashed since (epoch) or whose deadline moved is stale and skipped.
//! * **Calls.** Every `Output::Send` is a call that ends in exactly one `Input::Response` to
//!   its sender: the reply (after the return latency), `Failure::Unreachable` (nobody listens
//!   there, the target is down when the request arrives, or it crashes before replying), or
//!   `Failure::Timeout` at the send's deadline (request or reply lost, stopped by a partition,
//!   late, or never answered). A request the target does not answer during the `handle` that
//!   received it is pending there (a deferred reply). An injected duplicate is delivered on a
//!   second connection; the sender sees only the first reply. A late request is still
//!   delivered (the target sees it; the sender has already timed out).
//! * **Network** ([`NetConfig`]): per-link base latency drawn from the run seed, per-message
//!   jitter (reordering) and a long tail, drop and duplicate rates, and partitions
//!   ([`Partition`]: symmetric, one-way, or with bridge nodes) that start and heal. Messages
//!   are typed values moved in memory; a gossip's text is one `Arc<str>` shared by all copies.
//! * **Faults** ([`FaultKind`]) at scheduled times: crash (state and queued events lost,
//!   connects refused, pending requests fail), restart (fresh state from config), partitions,
//!   rate changes, and a lying peer (the simulator sends a `DEAD_REPORT` about a live peer).
//!   At `heal_at_ms` faults stop: partitions heal, the base network returns, crashed seeds
//!   restart; crashed peers stay down so their removal can be checked.
//! * **Checks** ([`checker`]): promises 1–4 (and 8–9 with adversaries) after every event,
//!   from ghost state (every vote cast, every witness answer, every gossip generated); after
//!   healing, promises 6–7 are evaluated every second and must hold by the bound
//!   [`config::liveness_bound_ms`]; promise 5 (every gossip made after the bound reaches every
//!   live peer connected to its origin) at the end. A live seed's Peer List must also equal
//!   what its `EntryChanged` events said.
//!
//! ## Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | what a run is: cluster, network, fault schedule, phases, the liveness bound |
//! | [`addr`] | the address plan: node id ↔ endpoint |
//! | [`queue`] | the event queue, ordered by `(time, sequence)` |
//! | [`actor`] | the contract a hosted node meets ([`gossip_core::Node`] in every real run) |
//! | `sim` | [`Sim`]: the run loop and dispatch (`sim/mod.rs`); calls, deliveries, replies, timeouts and the network's latency and loss (`calls.rs`); crashes, restarts, partitions, healing, the lying peer (`faults.rs`); the forger and lying seeds (`adversaries.rs`); the trace hash (`trace.rs`) |
//! | [`checker`] | every promise and the ghost state it is judged against: `ghost.rs`, `safety.rs` (1–4, 8–9), `liveness.rs` (6–7), `delivery.rs` (5), and the overlay and measurements a report shows |
//! | [`report`] | the [`Report`]: assembles the simulator's and the checker's numbers, formats them |
//! | [`schedule`] | fault schedules, drawn by the property tests and by `sim --soak` |
//! | [`tap`] | observers of a run (a log; the report crate's recorder): they read, the run never depends on them |
//! | [`stats`] | percentiles and the power-law fit |
//! | [`meter`] | the CPU time a run costs |
//!
//! Drawing a run (per-second series, the HTML page) is the `gossip-sim-report` crate's
//! (`driver-sim/report`), fed by a [`Tap`].
//!
//! A new promise goes into the checker file of its group (or a new one beside them), fed by
//! what the simulator already hands the checker; a new number in the report is measured in
//! the checker (or counted by the simulator) and only copied and formatted in [`report`].
//! The simulator's own tests run on a tiny stand-in node (`test_actor.rs`).
//!
//! ## Replay
//!
//! A run is a pure function of its [`SimConfig`]: the same config gives the same events in
//! the same order and the same [`Sim::trace_hash`] (a hash of every delivery and timer: time,
//! node, message digest). So a failing run is its seed plus its options, and the `sim`
//! command prints the line that replays it:
//!
//! ```text
//! reproduce with: cargo run --release --bin sim -- --seed 7 --seeds 5 --peers 40 --drop 0.05
//! ```
//!
//! Add `--log` to that line to print every node event of the replay.
//!
//! ## Use
//!
//! ```no_run
//! use gossip_driver_sim::{Sim, SimConfig};
//! let mut sim: Sim = Sim::new(SimConfig::new(42, 3, 20)).expect("valid settings");
//! let report = sim.run();
//! assert_eq!(report.invariant_violations, 0, "{}", report.human());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actor;
pub mod addr;
pub mod checker;
pub mod config;
pub mod meter;
pub mod queue;
pub mod report;
pub mod schedule;
mod sim;
pub mod stats;
pub mod tap;

#[cfg(test)]
mod test_actor;

pub use actor::Actor;
pub use checker::Violation;
pub use config::{
    liveness_bound_ms, Fault, FaultKind, ForgeKind, NetConfig, NodeRef, Partition, PartitionKind,
    Publishing, SimConfig, Split, SybilAttack, Sybils, LEAVE_DEADLINE_MS,
};
pub use report::Report;
pub use sim::{Sim, Watch, UNIX_MS_AT_ZERO};
pub use tap::{LogTap, Tap};
