//! # gossip-sim-report: a simulator run, for people
//!
//! The simulator ([`gossip_driver_sim`]) simulates and checks; this crate records what a run
//! looked like and draws it. It sees the run through a [`gossip_driver_sim::Tap`] (requests
//! by kind, when gossip spread) and, between steps, the checker's ghost state: the run never
//! depends on it.
//!
//! | module | what |
//! |---|---|
//! | [`series`] | a run over time for `sim --html` / `--json FILE`: per-second samples taken between steps of [`gossip_driver_sim::Sim::run_observed`], the fault timeline, detections, the promises' outcome |
//! | [`html`], [`svg`] | the HTML report of a recording and the SVG line plots it is drawn with |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod html;
pub mod series;
pub mod svg;
