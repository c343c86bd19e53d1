//! A test actor: a tiny stand-in node the simulator hosts in its own tests, so that its
//! machinery (queue, calls, network, crashes, partitions) is tested apart from the real seed
//! and peer. Peers sit on a line (`j−1`, `j+1`), flood gossip, ping their neighbours and
//! answer `SUSPECT_REQ` late (a deferred reply); seeds answer pings. It counts what the
//! driver did to it, so tests can check the driver's contract: exactly one response per
//! send, nothing from nowhere. Compiled for tests only.

use std::net::IpAddr;
use std::sync::Arc;

use gossip_core::config::SettingsError;
use gossip_core::msg::{
    Endpoint, Gossip, GossipAck, GossipBody, PeerStatus, Ping, Pong, RoleStatus, StatusResp,
    SuspectAck,
};
use gossip_core::{ConnId, Event, Failure, Input, Message, Millis, NodeInit, Output, Settings};

use crate::actor::Actor;
use crate::addr::{Addrs, PEER_PORT};

/// Peers on the line.
pub const LINE_PEERS: u32 = 8;
/// TestActor seeds.
pub const LINE_SEEDS: u32 = 1;
/// A test actor stops sending anything new after this.
pub const QUIET_AFTER_MS: u64 = 20_000;
/// A test actor answers `SUSPECT_REQ` this late.
pub const DEFER_MS: u64 = 50;

/// What the driver did to one test actor.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sends: u64,
    pub responses: u64,
    pub ok: u64,
    pub unreachable: u64,
    pub timeouts: u64,
    pub requests: u64,
    pub stray: u64,
}

/// A seed or a peer of the line.
#[derive(Debug)]
pub struct TestActor {
    me: Endpoint,
    seed: bool,
    settings: Settings,
    unix0: u64,
    neighbours: Vec<Endpoint>,
    outputs: Vec<Output>,
    next_gossip: u64,
    next_probe: u64,
    made: u32,
    seen: Vec<Arc<str>>,
    deferred: Vec<(u64, ConnId, Endpoint)>,
    outstanding: Vec<(Endpoint, &'static str)>,
    pub counts: Counts,
    started: u64,
}

fn addrs() -> Addrs {
    Addrs {
        seeds: LINE_SEEDS,
        peers: LINE_PEERS,
    }
}

impl TestActor {
    fn send(&mut self, to: Endpoint, msg: Message, now: u64) {
        self.counts.sends += 1;
        self.outstanding.push((to, msg.type_name()));
        let deadline = Millis(now + self.settings.request_timeout_ms);
        self.outputs.push(Output::Send {
            to,
            msg,
            deadline,
            wants_response: true,
        });
    }

    fn gossip_out(&mut self, g: &Gossip, except: Option<Endpoint>, now: u64) {
        for n in self.neighbours.clone() {
            if Some(n) != except {
                let mut g = g.clone();
                g.sender = self.me;
                g.hops += 1;
                self.send(n, Message::Gossip(g), now);
            }
        }
    }

    fn tick(&mut self, now: u64) {
        if self.seed {
            return;
        }
        while let Some(i) = self.deferred.iter().position(|d| d.0 <= now) {
            let (_, conn, suspect) = self.deferred.remove(i);
            self.outputs.push(Output::Reply {
                conn,
                msg: Message::SuspectAck(Box::new(SuspectAck {
                    suspect,
                    alive: true,
                    confirmer: self.me,
                })),
            });
        }
        if now >= self.started + QUIET_AFTER_MS {
            return;
        }
        if now >= self.next_gossip && self.made < self.settings.max_gossip {
            self.made += 1;
            self.next_gossip = now + self.settings.gossip_interval_ms;
            let text: Arc<str> = Arc::from(format!(
                "{}:{}:{}",
                (self.unix0 + now) / 1000,
                self.me.ip(),
                self.made
            ));
            self.seen.push(text.clone());
            self.outputs.push(Output::Event(Event::GossipGenerated {
                text: text.clone(),
                msg_no: self.made,
            }));
            let g = Gossip {
                body: Arc::new(GossipBody {
                    text,
                    origin_ip: self.me.ip(),
                    origin_port: Some(PEER_PORT),
                    msg_no: self.made,
                    app: None,
                }),
                sender: self.me,
                hops: 0,
            };
            self.gossip_out(&g, None, now);
        }
        if now >= self.next_probe {
            self.next_probe = now + self.settings.probe_interval_ms;
            for n in self.neighbours.clone() {
                self.send(
                    n,
                    Message::Ping(Ping {
                        sender: self.me,
                        suspected_by: None,
                    }),
                    now,
                );
            }
        }
    }
}

impl TestActor {
    /// One input; its outputs queue in `self.outputs`.
    fn take(&mut self, now: u64, input: Input) {
        match input {
            Input::Start => {
                self.started = now;
                self.next_gossip = now + self.settings.gossip_interval_ms;
                self.next_probe = now + self.settings.probe_interval_ms;
                for &peer in &self.neighbours {
                    self.outputs.push(Output::Event(Event::NeighbourAdded {
                        peer,
                        their_degree: 2,
                    }));
                }
            }
            Input::Tick => self.tick(now),
            Input::Leave => {}
            Input::Publish { .. } => self.outputs.push(Output::Event(Event::PublishRefused {
                reason: "a test actor does not publish".into(),
                retry_after_ms: None,
            })),
            Input::Request { conn, msg } => {
                self.counts.requests += 1;
                match msg {
                    Message::Ping(_) => self.outputs.push(Output::Reply {
                        conn,
                        msg: Message::Pong(Pong {
                            responder: self.me,
                            degree: Some(self.neighbours.len() as u16),
                            incarnation: None,
                            leaving: false,
                        }),
                    }),
                    Message::Gossip(g) => {
                        let dup = self.seen.contains(&g.body.text);
                        self.outputs.push(Output::Reply {
                            conn,
                            msg: Message::GossipAck(GossipAck {
                                accepted: true,
                                duplicate: dup,
                                prune: false,
                                app: false,
                            }),
                        });
                        if !dup {
                            self.seen.push(g.body.text.clone());
                            self.outputs.push(Output::Event(Event::GossipFirstReceived {
                                text: g.body.text.clone(),
                                from: g.sender,
                                hops: g.hops,
                                repaired: false,
                            }));
                            self.gossip_out(&g, Some(g.sender), now);
                        }
                    }
                    Message::SuspectReq(r) => self.deferred.push((now + DEFER_MS, conn, r.suspect)),
                    _ => self.outputs.push(Output::Reply {
                        conn,
                        msg: Message::error("test actor"),
                    }),
                }
            }
            Input::Response {
                to,
                request,
                outcome,
            } => {
                self.counts.responses += 1;
                match self
                    .outstanding
                    .iter()
                    .position(|&(t, k)| t == to && k == request.type_name())
                {
                    Some(i) => {
                        self.outstanding.swap_remove(i);
                    }
                    None => self.counts.stray += 1,
                }
                match outcome {
                    Ok(_) => self.counts.ok += 1,
                    Err(Failure::Unreachable) => self.counts.unreachable += 1,
                    Err(_) => self.counts.timeouts += 1,
                }
            }
            Input::Refused { conn, .. } => self.outputs.push(Output::Reply {
                conn,
                msg: Message::error("bad"),
            }),
        }
    }
}

impl Actor for TestActor {
    fn start(seed: bool, init: NodeInit) -> Result<Self, SettingsError> {
        let a = addrs();
        let me_id = a
            .node(&init.me)
            .ok_or_else(|| SettingsError("not an address of the line".into()))?;
        let mut neighbours = Vec::new();
        if !seed {
            let j = me_id - a.seeds;
            for k in [j.wrapping_sub(1), j + 1] {
                if k < a.peers {
                    neighbours.push(a.endpoint(a.seeds + k));
                }
            }
        }
        Ok(TestActor {
            me: init.me,
            seed,
            unix0: init.unix_ms_at_zero,
            neighbours,
            outputs: Vec::new(),
            next_gossip: u64::MAX,
            next_probe: u64::MAX,
            settings: init.settings,
            made: 0,
            seen: Vec::new(),
            deferred: Vec::new(),
            outstanding: Vec::new(),
            counts: Counts::default(),
            started: 0,
        })
    }

    fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        self.take(now.0, input);
        out.append(&mut self.outputs);
    }

    fn next_deadline(&self) -> Option<Millis> {
        let mut d = self.deferred.iter().map(|x| x.0).min().unwrap_or(u64::MAX);
        if !self.seed && self.started + QUIET_AFTER_MS > d.min(self.next_probe) {
            d = d
                .min(self.next_probe)
                .min(if self.made < self.settings.max_gossip {
                    self.next_gossip
                } else {
                    u64::MAX
                });
        }
        (d != u64::MAX).then_some(Millis(d))
    }

    fn status(&self) -> StatusResp {
        StatusResp {
            node: self.me,
            role: RoleStatus::Peer(PeerStatus {
                registered: true,
                incarnation: 1,
                neighbours: self.neighbours.clone(),
                known_peers: 0,
            }),
            counters: vec![
                ("outstanding".into(), self.outstanding.len() as u64),
                ("stray".into(), self.counts.stray),
            ],
        }
    }
}

impl TestActor {
    /// Sends made so far that got no response.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Its IP.
    #[allow(dead_code)]
    pub fn ip(&self) -> IpAddr {
        self.me.ip()
    }

    /// Sends a `SUSPECT_REQ` to `to` now (for deferred-reply tests): returns the output to
    /// feed through the simulator via `Sim::inject_send`.
    pub fn suspect_req(&mut self, to: Endpoint, now: u64) {
        let msg = Message::SuspectReq(Box::new(gossip_core::msg::SuspectReq {
            suspect: to,
            requester: self.me,
        }));
        self.send(to, msg, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        FaultKind, NetConfig, NodeRef, Partition, PartitionKind, SimConfig, Split,
    };
    use crate::Sim;

    fn cfg(seed: u64) -> SimConfig {
        let mut c = SimConfig::new(seed, LINE_SEEDS, LINE_PEERS);
        c.settings.gossip_interval_ms = 1_000;
        c.settings.max_gossip = 3;
        c.join_window_ms = 80;
        c.duration_ms = Some(QUIET_AFTER_MS + 5_000);
        c
    }

    fn actor(sim: &Sim<TestActor>, j: u32) -> &TestActor {
        sim.node(NodeRef::Peer(j)).expect("up")
    }

    #[test]
    fn flood_on_a_line_reaches_everyone_once_with_a_perfect_overhead() {
        let mut sim: Sim<TestActor> = Sim::new(cfg(1)).unwrap();
        let r = sim.run();
        assert_eq!(r.invariant_violations, 0, "{}", r.human());
        assert_eq!(r.gossip_generated, u64::from(LINE_PEERS) * 3);
        assert_eq!(r.delivered_ratio, 1.0);
        assert_eq!(r.owed, u64::from(LINE_PEERS * (LINE_PEERS - 1)) * 3);
        assert_eq!(r.overhead_ratio, 1.0);
        assert_eq!(r.hops_max, LINE_PEERS - 1);
        assert_eq!(r.eccentricity_max, LINE_PEERS - 1);
        assert_eq!(r.degree_max, 2);
        for j in 0..LINE_PEERS {
            let t = actor(&sim, j);
            assert_eq!(t.outstanding(), 0, "peer {j}");
            assert_eq!(t.counts.sends, t.counts.responses);
            assert_eq!(t.counts.sends, t.counts.ok);
        }
    }

    #[test]
    fn same_seed_same_trace_and_another_seed_another() {
        let run = |seed| {
            let mut c = cfg(seed);
            c.net = NetConfig {
                latency_min_ms: 1,
                latency_max_ms: 30,
                jitter_ms: 20,
                drop: 0.05,
                dup: 0.05,
                ..NetConfig::default()
            };
            let mut sim: Sim<TestActor> = Sim::new(c).unwrap();
            let r = sim.run();
            (r.trace_hash, r.events)
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5).0, run(6).0);
    }

    #[test]
    fn every_send_gets_exactly_one_response_under_drop_dup_jitter_and_crashes() {
        for seed in 0..20 {
            let mut c = cfg(seed);
            c.net = NetConfig {
                latency_min_ms: 1,
                latency_max_ms: 40,
                jitter_ms: 300,
                tail: 0.05,
                tail_ms: 2_000,
                drop: 0.1,
                dup: 0.2,
            };
            let mut sim: Sim<TestActor> = Sim::new(c).unwrap();
            sim.run_until(3_000);
            sim.crash(NodeRef::Peer(3));
            sim.run_until(6_000);
            sim.restart(NodeRef::Peer(3));
            // Quiet 20 s after the restart; every deadline long past by 40 s.
            sim.run_until(40_000);
            for j in 0..LINE_PEERS {
                let t = actor(&sim, j);
                assert_eq!(
                    t.outstanding(),
                    0,
                    "seed {seed} peer {j}: a send without response"
                );
                assert_eq!(
                    t.counts.stray, 0,
                    "seed {seed} peer {j}: a response for no send"
                );
                assert_eq!(
                    t.counts.sends,
                    t.counts.ok + t.counts.unreachable + t.counts.timeouts
                );
            }
            assert!(sim.violations().is_empty(), "{:?}", sim.violations());
        }
    }

    #[test]
    fn a_crashed_node_refuses_and_its_neighbours_see_unreachable_then_restart_is_fresh() {
        let mut sim: Sim<TestActor> = Sim::new(cfg(2)).unwrap();
        sim.run_until(1_500);
        sim.crash(NodeRef::Peer(4));
        assert!(sim.node(NodeRef::Peer(4)).is_none());
        sim.run_until(4_000);
        let n3 = &actor(&sim, 3).counts;
        assert!(n3.unreachable >= 2, "{n3:?}");
        assert_eq!(n3.timeouts, 0);
        sim.restart(NodeRef::Peer(4));
        assert_eq!(actor(&sim, 4).counts.requests, 0, "fresh state");
        sim.run_until(6_000);
        assert!(actor(&sim, 4).counts.requests > 0);
        assert_eq!(sim.checker().peers()[4].life, 2);
    }

    #[test]
    fn a_symmetric_partition_times_out_across_it_and_heals() {
        let mut sim: Sim<TestActor> = Sim::new(cfg(3)).unwrap();
        sim.run_until(500);
        let side_a = (0..4).map(NodeRef::Peer).collect();
        sim.inject(FaultKind::Partition(Partition {
            split: Split::Nodes(side_a),
            kind: PartitionKind::Symmetric,
        }));
        sim.run_until(5_000);
        let before = actor(&sim, 3).counts.clone();
        assert!(before.timeouts >= 3, "{before:?}");
        assert_eq!(
            actor(&sim, 2).counts.timeouts,
            0,
            "inside side A all is well"
        );
        sim.inject(FaultKind::HealPartition);
        sim.run_until(9_000);
        let after = actor(&sim, 3).counts.clone();
        assert!(after.timeouts - before.timeouts <= 1, "{after:?}");
        assert!(after.ok > before.ok + 3);
        assert!(sim.checker().peers()[3].last_loss_ms.is_some());
        assert!(sim.checker().peers()[4].last_loss_ms.is_some());
        assert!(sim.checker().peers()[0].last_loss_ms.is_none());
    }

    #[test]
    fn a_one_way_partition_stops_requests_one_way_only() {
        let mut sim: Sim<TestActor> = Sim::new(cfg(4)).unwrap();
        sim.run_until(500);
        sim.inject(FaultKind::Partition(Partition {
            split: Split::Nodes(vec![
                NodeRef::Peer(0),
                NodeRef::Peer(1),
                NodeRef::Peer(2),
                NodeRef::Peer(3),
            ]),
            kind: PartitionKind::OneWay,
        }));
        sim.run_until(5_000);
        assert!(actor(&sim, 3).counts.timeouts >= 3, "A→B requests are lost");
        assert_eq!(
            actor(&sim, 4).counts.timeouts,
            0,
            "B→A requests and their replies pass"
        );
    }

    #[test]
    fn a_deferred_reply_is_answered_unreachable_when_the_target_crashes() {
        let mut c = cfg(5);
        c.settings.request_timeout_ms = 1_000;
        let mut sim: Sim<TestActor> = Sim::new(c).unwrap();
        sim.run_until(200);
        let target = sim.endpoint(NodeRef::Peer(6));
        let now = sim.now();
        sim.with_node(NodeRef::Peer(5), |t: &mut TestActor, out| {
            t.suspect_req(target, now);
            out.append(&mut t.outputs);
        });
        sim.run_until(now + 20); // delivered (5 ms), reply deferred by 50 ms
        let before = actor(&sim, 5).counts.unreachable;
        sim.crash(NodeRef::Peer(6));
        sim.run_until(now + 40);
        assert_eq!(actor(&sim, 5).counts.unreachable, before + 1);
        assert_eq!(actor(&sim, 5).outstanding(), 0);
    }

    #[test]
    fn requests_in_flight_reach_whichever_instance_is_up_when_they_arrive() {
        let mut c = cfg(6);
        c.net.latency_min_ms = 100;
        c.net.latency_max_ms = 100;
        let mut sim: Sim<TestActor> = Sim::new(c).unwrap();
        sim.run_until(1_001); // pings sent at ~1000 ms, arriving at ~1100 ms
        sim.crash(NodeRef::Peer(2));
        sim.run_until(1_050);
        sim.restart(NodeRef::Peer(2));
        sim.run_until(1_099);
        assert_eq!(actor(&sim, 2).counts.requests, 0);
        sim.run_until(1_200);
        // The pings of 1000 ms arrive at the new instance (connect happens on arrival).
        assert!(actor(&sim, 2).counts.requests >= 2);
    }
}
