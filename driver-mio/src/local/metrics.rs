//! A node's metrics in the Prometheus text format (`--metrics`), built with the
//! `prometheus-client` registry and its encoder.
//!
//! Nothing on the hot path touches the registry: the host counts lines in and out in plain
//! arrays ([`Traffic`], only while metrics are on), the core keeps its own counters, and a
//! scrape copies both into the registry and encodes it. So the price of metrics is paid per
//! scrape, not per message; only the probe round trips go into a histogram as they happen.

use gossip_core::msg::{Message, RoleStatus, Status, StatusResp};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::render::Role;

/// The wire types, as counted ([`wire_type`] gives the index).
pub use gossip_core::wire::TYPES as WIRE_TYPES;

/// The index of `msg`'s wire type in [`WIRE_TYPES`] (every type's name is listed there: a
/// test checks it).
pub fn wire_type(msg: &Message) -> usize {
    let name = msg.type_name();
    WIRE_TYPES.iter().position(|t| *t == name).unwrap_or(0)
}

/// How many wire types are counted.
const KINDS: usize = WIRE_TYPES.len();

/// Lines and bytes in and out by wire type, and probe round trips: what the host counts
/// while metrics are on.
#[derive(Debug)]
pub struct Traffic {
    /// Lines read (requests and replies), by wire type.
    pub lines_in: [u64; KINDS],
    /// Bytes read, by wire type (newline included).
    pub bytes_in: [u64; KINDS],
    /// Lines written, by wire type.
    pub lines_out: [u64; KINDS],
    /// Bytes written, by wire type (newline and cluster-key prefix included).
    pub bytes_out: [u64; KINDS],
    /// Lines read that did not decode.
    pub undecodable_in: u64,
    /// Time from writing a `PING` to reading its reply.
    pub probe_rtt: Histogram,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            lines_in: [0; KINDS],
            bytes_in: [0; KINDS],
            lines_out: [0; KINDS],
            bytes_out: [0; KINDS],
            undecodable_in: 0,
            // 0.1 ms to about 3.3 s.
            probe_rtt: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
        }
    }
}

impl Traffic {
    /// A line read.
    #[inline]
    pub fn read(&mut self, msg: Option<&Message>, bytes: usize) {
        let t = msg.map(wire_type);
        match t.and_then(|t| self.lines_in.get_mut(t).zip(self.bytes_in.get_mut(t))) {
            Some((lines, b)) => {
                *lines += 1;
                *b += bytes as u64;
            }
            None => self.undecodable_in += 1,
        }
    }

    /// A line written.
    #[inline]
    pub fn wrote(&mut self, msg: &Message, bytes: usize) {
        let t = wire_type(msg);
        if let (Some(lines), Some(b)) = (self.lines_out.get_mut(t), self.bytes_out.get_mut(t)) {
            *lines += 1;
            *b += bytes as u64;
        }
    }
}

/// What the host knows at a scrape, besides the node's own status.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    /// Accepted connections open.
    pub inbound: usize,
    /// Dialled connections open.
    pub outbound: usize,
    /// Bytes waiting in write buffers.
    pub write_queue_bytes: usize,
    /// Requests waiting for a connection.
    pub queued_requests: usize,
    /// Requests in flight (written or queued, reply awaited).
    pub in_flight: usize,
    /// Sends that failed (unreachable, timeout, bad reply).
    pub send_failures: u64,
    /// Requests refused by the per-connection rate limits.
    pub rate_limited: u64,
    /// Lines refused by the cluster key.
    pub auth_refused: u64,
    /// Control socket clients connected.
    pub control_clients: usize,
    /// Events watchers missed for being behind.
    pub watch_missed: u64,
    /// Peer List removals this seed applied (events counted since start).
    pub removals: u64,
    /// Application messages published / refused here (events counted since start).
    pub publish_refused: u64,
}

type Labels = Vec<(&'static str, &'static str)>;

/// Whether a metric only goes up or is a level.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric fed from the node's status counters: its name (after the `gossip_` prefix),
/// help, kind, and which status counter gives it under which labels.
struct Def {
    metric: &'static str,
    help: &'static str,
    kind: Kind,
    from: &'static [(&'static str, &'static [(&'static str, &'static str)])],
}

const PEER_METRICS: &[Def] = &[
    Def {
        metric: "delivered",
        help: "Messages delivered here for the first time, by kind (the spec's gossip, application messages)",
        kind: Kind::Counter,
        from: &[("gossip_first", &[("message", "gossip")]), ("app_delivered", &[("message", "app")])],
    },
    Def {
        metric: "duplicates",
        help: "Copies received of messages already delivered, by kind",
        kind: Kind::Counter,
        from: &[("gossip_duplicate", &[("message", "gossip")]), ("app_duplicate", &[("message", "app")])],
    },
    Def {
        metric: "repaired",
        help: "First-time deliveries that came by repair (a pull), of either kind",
        kind: Kind::Counter,
        from: &[("gossip_repaired", &[])],
    },
    Def {
        metric: "generated",
        help: "The spec's gossip messages this peer made",
        kind: Kind::Counter,
        from: &[("gossip_generated", &[])],
    },
    Def {
        metric: "app_published",
        help: "Application messages this peer published",
        kind: Kind::Counter,
        from: &[("app_published", &[])],
    },
    Def {
        metric: "app_rate_limited",
        help: "Application messages refused unseen because their origin was over its rate",
        kind: Kind::Counter,
        from: &[("app_rate_limited", &[])],
    },
    Def {
        metric: "suspicions",
        help: "Suspicions this peer raised about a neighbour",
        kind: Kind::Counter,
        from: &[("suspicions", &[])],
    },
    Def {
        metric: "dead_reports",
        help: "DEAD_REPORTs this peer sent after a peer-level consensus",
        kind: Kind::Counter,
        from: &[("dead_reports", &[])],
    },
    Def {
        metric: "refutations",
        help: "Suspicions of this peer it refuted",
        kind: Kind::Counter,
        from: &[("refutations", &[])],
    },
    Def {
        metric: "probes",
        help: "Probes of neighbours, by outcome",
        kind: Kind::Counter,
        from: &[("probes_sent", &[("outcome", "sent")]), ("probes_missed", &[("outcome", "missed")])],
    },
    Def {
        metric: "repair_requests",
        help: "Repair and lazy-push requests this peer sent, by type",
        kind: Kind::Counter,
        from: &[
            ("repair_digests", &[("type", "digest")]),
            ("repair_pulls", &[("type", "pull")]),
            ("lazy_ihave_sent", &[("type", "ihave")]),
        ],
    },
    Def {
        metric: "lazy_tree_changes",
        help: "Lazy push: links this peer grafted into or pruned from the tree",
        kind: Kind::Counter,
        from: &[("lazy_grafts_sent", &[("change", "graft")]), ("lazy_prunes_sent", &[("change", "prune")])],
    },
    Def {
        metric: "bad_input",
        help: "Requests answered ERROR",
        kind: Kind::Counter,
        from: &[("bad_input", &[])],
    },
    Def {
        metric: "local_health",
        help: "How far this peer distrusts its own probes (0: fully)",
        kind: Kind::Gauge,
        from: &[("local_health", &[])],
    },
    Def {
        metric: "retained",
        help: "Messages kept for repair",
        kind: Kind::Gauge,
        from: &[("gossip_retained", &[])],
    },
    Def {
        metric: "retained_bytes",
        help: "Bytes of messages kept for repair",
        kind: Kind::Gauge,
        from: &[("gossip_retained_bytes", &[])],
    },
];

const SEED_METRICS: &[Def] = &[
    Def {
        metric: "seed_proposals",
        help: "Vote rounds this seed started",
        kind: Kind::Counter,
        from: &[("proposals", &[])],
    },
    Def {
        metric: "seed_votes",
        help: "Votes this seed cast, by vote",
        kind: Kind::Counter,
        from: &[
            ("votes_yes", &[("vote", "yes")]),
            ("votes_no", &[("vote", "no")]),
        ],
    },
    Def {
        metric: "seed_rounds",
        help: "Rounds this seed proposed that ended, by decision",
        kind: Kind::Counter,
        from: &[
            ("commits", &[("decision", "commit")]),
            ("aborts", &[("decision", "abort")]),
        ],
    },
    Def {
        metric: "seed_confirmations",
        help: "Changes carried to this seed, by whether their voters confirmed them",
        kind: Kind::Counter,
        from: &[
            ("confirmed", &[("outcome", "confirmed")]),
            ("unconfirmed", &[("outcome", "unconfirmed")]),
        ],
    },
    Def {
        metric: "seed_peer_lists_served",
        help: "PEER_LIST_REQs answered",
        kind: Kind::Counter,
        from: &[("peer_lists_served", &[])],
    },
    Def {
        metric: "seed_sync_rounds",
        help: "Anti-entropy rounds with another seed",
        kind: Kind::Counter,
        from: &[("sync_rounds", &[])],
    },
    Def {
        metric: "bad_input",
        help: "Requests answered ERROR",
        kind: Kind::Counter,
        from: &[("bad_input", &[])],
    },
    Def {
        metric: "seed_confirmations_pending",
        help: "Carried changes waiting for their voters' confirmation",
        kind: Kind::Gauge,
        from: &[("confirmations_pending", &[])],
    },
];

enum Handle {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge>),
}

impl Handle {
    fn set(&self, labels: &Labels, v: u64) {
        match self {
            Handle::Counter(f) => f.get_or_create(labels).inner().store(v, RELAXED),
            Handle::Gauge(f) => {
                f.get_or_create(labels)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The registry and the handles a scrape sets.
pub struct Metrics {
    registry: Registry,
    role: Role,
    messages: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    /// One per [`Def`] of the role, in order.
    node: Vec<Handle>,
    /// The peer's standing, or the seed's Peer List: set from the status itself.
    state: Family<Labels, Gauge>,
    connections: Family<Labels, Gauge>,
    queues: Family<Labels, Gauge>,
    control_clients: Gauge,
    host_events: Family<Labels, Counter>,
}

impl Metrics {
    /// The metrics of a node of `role`; `traffic` is where the host counts.
    pub fn new(role: Role, traffic: &Traffic) -> Metrics {
        let mut registry = Registry::with_prefix("gossip");
        let messages = Family::<Labels, Counter>::default();
        let bytes = Family::<Labels, Counter>::default();
        registry.register(
            "messages",
            "Protocol lines read and written, by direction and wire type",
            messages.clone(),
        );
        registry.register(
            "message_bytes",
            "Bytes of protocol lines read and written, by direction and wire type",
            bytes.clone(),
        );
        let defs = match role {
            Role::Peer => PEER_METRICS,
            Role::Seed => SEED_METRICS,
        };
        let node = defs
            .iter()
            .map(|d| match d.kind {
                Kind::Counter => {
                    let f = Family::<Labels, Counter>::default();
                    registry.register(d.metric, d.help, f.clone());
                    Handle::Counter(f)
                }
                Kind::Gauge => {
                    let f = Family::<Labels, Gauge>::default();
                    registry.register(d.metric, d.help, f.clone());
                    Handle::Gauge(f)
                }
            })
            .collect();
        let state = Family::<Labels, Gauge>::default();
        let (name, help) = match role {
            Role::Peer => (
                "peer",
                "This peer's standing, by field (neighbours, known_peers, registered, incarnation)",
            ),
            Role::Seed => (
                "peer_list",
                "Entries of this seed's Peer List, by status (and rounds pending)",
            ),
        };
        registry.register(name, help, state.clone());
        let connections = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Open connections, by side",
            connections.clone(),
        );
        let queues = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_depth",
            "What waits in the event loop, by queue (write bytes, requests waiting, in flight)",
            queues.clone(),
        );
        let control_clients = Gauge::default();
        registry.register(
            "control_clients",
            "Clients of the control socket",
            control_clients.clone(),
        );
        let host_events = Family::<Labels, Counter>::default();
        registry.register(
            "host_events",
            "The event loop's failures and refusals, by event",
            host_events.clone(),
        );
        registry.register(
            "probe_rtt_seconds",
            "Time from writing a PING to reading its reply",
            traffic.probe_rtt.clone(),
        );
        Metrics {
            registry,
            role,
            messages,
            bytes,
            node,
            state,
            connections,
            queues,
            control_clients,
            host_events,
        }
    }

    /// Sets every value from the node's status, the host's counts and view, then encodes the
    /// registry into `out`. Returns the content type.
    pub fn scrape(
        &self,
        status: &StatusResp,
        traffic: &Traffic,
        view: &HostView,
        out: &mut String,
    ) -> &'static str {
        let at = |a: &[u64; KINDS], t: usize| a.get(t).copied().unwrap_or(0);
        for (t, name) in WIRE_TYPES.iter().enumerate() {
            let pairs = [
                ("in", at(&traffic.lines_in, t), at(&traffic.bytes_in, t)),
                ("out", at(&traffic.lines_out, t), at(&traffic.bytes_out, t)),
            ];
            for (direction, lines, bytes) in pairs {
                if lines == 0 {
                    continue;
                }
                let l: Labels = vec![("direction", direction), ("type", name)];
                self.messages
                    .get_or_create(&l)
                    .inner()
                    .store(lines, RELAXED);
                self.bytes.get_or_create(&l).inner().store(bytes, RELAXED);
            }
        }
        if traffic.undecodable_in > 0 {
            let l: Labels = vec![("direction", "in"), ("type", "undecodable")];
            (self.messages.get_or_create(&l).inner()).store(traffic.undecodable_in, RELAXED);
        }
        let counter = |name: &str| {
            let found = status.counters.iter().find(|(n, _)| n == name);
            found.map_or(0, |(_, v)| *v)
        };
        let defs = match self.role {
            Role::Peer => PEER_METRICS,
            Role::Seed => SEED_METRICS,
        };
        for (def, handle) in defs.iter().zip(&self.node) {
            for (name, extra) in def.from {
                handle.set(&extra.to_vec(), counter(name));
            }
        }
        let state = |field: &'static str, v: u64| {
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            self.state.get_or_create(&vec![("field", field)]).set(v);
        };
        match &status.role {
            RoleStatus::Peer(p) => {
                state("neighbours", p.neighbours.len() as u64);
                state("known_peers", u64::from(p.known_peers));
                state("registered", u64::from(p.registered));
                state("incarnation", p.incarnation);
            }
            RoleStatus::Seed(s) => {
                let alive = s
                    .entries
                    .iter()
                    .filter(|e| e.status == Status::Alive)
                    .count();
                let removed = s.entries.len() - alive;
                let by = |status: &'static str, v: usize| {
                    self.state
                        .get_or_create(&vec![("status", status)])
                        .set(v as i64);
                };
                by("alive", alive);
                by("removed", removed);
                by("pending_rounds", s.pending as usize);
                let l: Labels = vec![("event", "removal_applied")];
                self.host_events
                    .get_or_create(&l)
                    .inner()
                    .store(view.removals, RELAXED);
            }
        }
        let side = |s: &'static str, v: usize| {
            self.connections
                .get_or_create(&vec![("side", s)])
                .set(v as i64);
        };
        side("inbound", view.inbound);
        side("outbound", view.outbound);
        let queue = |q: &'static str, v: usize| {
            self.queues.get_or_create(&vec![("queue", q)]).set(v as i64);
        };
        queue("write_bytes", view.write_queue_bytes);
        queue("requests_waiting", view.queued_requests);
        queue("requests_in_flight", view.in_flight);
        self.control_clients.set(view.control_clients as i64);
        let events = [
            ("send_failure", view.send_failures),
            ("rate_limited", view.rate_limited),
            ("auth_refused", view.auth_refused),
            ("watch_event_missed", view.watch_missed),
            ("publish_refused", view.publish_refused),
        ];
        for (event, v) in events {
            let l: Labels = vec![("event", event)];
            self.host_events.get_or_create(&l).inner().store(v, RELAXED);
        }
        if let Err(e) = prometheus_text::encode(out, &self.registry) {
            log::warn!("metrics: encoding failed: {e}");
        }
        CONTENT_TYPE
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// The Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message type the core can make has its own counter slot.
    #[test]
    fn every_wire_type_is_counted() {
        for (i, name) in WIRE_TYPES.iter().enumerate() {
            assert_eq!(WIRE_TYPES.iter().position(|t| t == name), Some(i), "{name}");
        }
        let mut t = Traffic::default();
        let leave = Message::LeaveCommitAck;
        t.wrote(&leave, 10);
        let i = WIRE_TYPES
            .iter()
            .position(|n| *n == "LEAVE_COMMIT")
            .expect("listed");
        assert_eq!((t.lines_out[i], t.bytes_out[i]), (1, 10));
        t.read(Some(&leave), 7);
        assert_eq!(t.lines_in[i], 1);
    }
}
