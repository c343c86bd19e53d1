//! Local interfaces of a node, for programs on its own machine: the control socket
//! (`control.rs`: `gossipctl` and your own programs), the event stream as JSON lines
//! (`events.rs`: to watchers and to `--events FILE`), and metrics in the Prometheus format
//! (`metrics.rs`, served by `http.rs` on `--metrics`). All of it runs on the host's event
//! loop, on tokens of its own ([`LOCAL_TOKENS`] and above), and none of it costs anything
//! when it is not asked for.
//!
//! This file holds what ties them to the host: the configuration, the per-node state, and
//! turning requests and events into lines. Every request is answered from the node (its
//! status, its settings) or carried out as a core input (`publish` is
//! [`gossip_core::Input::Publish`], whose one answering event this file turns into the reply).

pub mod control;
pub mod events;
pub mod http;
pub mod metrics;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use gossip_core::msg::{RoleStatus, Status};
use gossip_core::{Event, Node};
use mio::Registry;
use serde_json::{json, Value};

use control::{ClientId, ControlLimits, ControlServer};
use events::Category;
use http::{HttpLimits, HttpServer};
use metrics::Metrics;

/// Tokens from here on belong to the local interfaces (the host's sockets never get near).
pub const LOCAL_TOKENS: usize = 1 << 40;
/// The metrics server's tokens start here (the control socket's at [`LOCAL_TOKENS`]).
const HTTP_TOKENS: usize = LOCAL_TOKENS + (1 << 20);

/// Which local interfaces a node opens.
#[derive(Clone, Debug, Default)]
pub struct LocalConfig {
    /// The control socket's path (`--control`).
    pub control: Option<PathBuf>,
    /// The file the event stream is appended to (`--events`).
    pub events: Option<PathBuf>,
    /// Where `GET /metrics` is served (`--metrics`).
    pub metrics: Option<SocketAddr>,
}

/// Appends event lines to a file: one `write` per line on an `O_APPEND` file, so lines of
/// several nodes sharing it never tear.
struct EventFile {
    file: File,
    line: Vec<u8>,
}

impl EventFile {
    fn write(&mut self, text: &str) {
        self.line.clear();
        self.line.extend_from_slice(text.as_bytes());
        self.line.push(b'\n');
        match self.file.write(&self.line) {
            Ok(n) if n == self.line.len() => {}
            Ok(n) => log::warn!("events file: short write ({n} of {})", self.line.len()),
            Err(e) => log::warn!("events file: {e}"),
        }
    }
}

/// The local interfaces of one node of a host.
pub(crate) struct Local {
    /// The node they serve.
    pub node: usize,
    pub control: Option<ControlServer>,
    events: Option<EventFile>,
    pub http: Option<HttpServer>,
    pub metrics: Option<Metrics>,
    /// The client whose publish is being handed to the node: the node's answering event
    /// goes to it.
    pending_publish: Option<ClientId>,
    /// Clients that asked the node to leave: answered when it is done.
    leaving: Vec<ClientId>,
    /// Removals this seed applied, and publishes refused here (counted from events).
    pub removals: u64,
    pub publish_refused: u64,
}

impl Local {
    /// Opens what `cfg` asks for, registering sockets with `registry`.
    pub fn open(
        node: usize,
        cfg: &LocalConfig,
        registry: &Registry,
        role: crate::Role,
        traffic: Option<&metrics::Traffic>,
    ) -> io::Result<Local> {
        let context =
            |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        let control = match &cfg.control {
            Some(path) => {
                let server = ControlServer::bind(path, ControlLimits::default())
                    .and_then(|mut s| s.register(registry, LOCAL_TOKENS).map(|()| s))
                    .map_err(context(format!("control socket {}", path.display())))?;
                Some(server)
            }
            None => None,
        };
        let events = match &cfg.events {
            Some(path) => Some(EventFile {
                file: (OpenOptions::new().create(true).append(true).open(path))
                    .map_err(context(format!("events file {}", path.display())))?,
                line: Vec::with_capacity(512),
            }),
            None => None,
        };
        let (http, metrics) = match (cfg.metrics, traffic) {
            (Some(addr), Some(traffic)) => {
                let server = HttpServer::bind(addr, HttpLimits::default())
                    .and_then(|mut s| s.register(registry, HTTP_TOKENS).map(|()| s))
                    .map_err(context(format!("metrics address {addr}")))?;
                (Some(server), Some(Metrics::new(role, traffic)))
            }
            _ => (None, None),
        };
        Ok(Local {
            node,
            control,
            events,
            http,
            metrics,
            pending_publish: None,
            leaving: Vec::new(),
            removals: 0,
            publish_refused: 0,
        })
    }

    /// An event of its node: the answer to a publish in progress, counted for metrics,
    /// and rendered once for the events file and the watchers that want it.
    pub fn on_event(&mut self, registry: &Registry, me: SocketAddr, unix_ms: u64, event: &Event) {
        match event {
            Event::AppPublished { body } => {
                if let (Some(client), Some(c)) = (self.pending_publish.take(), &mut self.control) {
                    c.reply(
                        registry,
                        client,
                        &json!({"ok": true, "id": &*body.text}).to_string(),
                    );
                }
            }
            Event::PublishRefused {
                reason,
                retry_after_ms,
            } => {
                self.publish_refused += 1;
                if let (Some(client), Some(c)) = (self.pending_publish.take(), &mut self.control) {
                    let mut reply = json!({"ok": false, "error": reason});
                    if let (Some(ms), Value::Object(m)) = (retry_after_ms, &mut reply) {
                        m.insert("retry_after_ms".into(), (*ms).into());
                    }
                    c.reply(registry, client, &reply.to_string());
                }
            }
            Event::EntryChanged { entry, .. } if entry.status == Status::Removed => {
                self.removals += 1;
            }
            Event::Left { seeds, neighbours } => {
                let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
                let reply = json!({
                    "ok": true,
                    "certified": !seeds.is_empty(),
                    "certified_by": seeds,
                    "neighbours": neighbours,
                });
                self.answer_leave(registry, &reply.to_string());
            }
            Event::Stopped => self.answer_leave(registry, &json!({"ok": true}).to_string()),
            _ => {}
        }
        let Some((category, _)) = events::classify(event) else {
            return;
        };
        let watched = self.control.as_ref().is_some_and(|c| c.wants(category));
        if !watched && self.events.is_none() {
            return;
        }
        let Some(line) = events::to_line(me, unix_ms, event) else {
            return;
        };
        if let Some(file) = &mut self.events {
            file.write(&line);
        }
        if let (true, Some(c)) = (watched, &mut self.control) {
            c.broadcast(registry, category, events::app_name(event), &line);
        }
    }

    /// Notes that `client` asked the node to leave: it is answered when the node is done.
    pub fn leave_asked(&mut self, client: ClientId) {
        self.leaving.push(client);
    }

    fn answer_leave(&mut self, registry: &Registry, line: &str) {
        if let Some(c) = &mut self.control {
            for client in self.leaving.drain(..) {
                c.reply(registry, client, line);
            }
        }
    }

    /// Notes that `client`'s publish is about to be handed to the node.
    pub fn publishing(&mut self, client: ClientId) {
        self.pending_publish = Some(client);
    }

    /// After the publish was handed over: if the node said nothing (it always answers, but
    /// a client must never wait forever), the client hears so.
    pub fn published(&mut self, registry: &Registry) {
        if let (Some(client), Some(c)) = (self.pending_publish.take(), &mut self.control) {
            c.error(registry, client, "the node did not answer the publish");
        }
    }
}

/// The reply to `members`: a seed's Peer List, or what a peer knows and its seeds.
pub fn members_reply(node: &Node) -> Value {
    let status = node.status();
    match (&status.role, node) {
        (RoleStatus::Seed(s), _) => {
            let members: Vec<Value> = (s.entries.iter())
                .map(|e| {
                    json!({
                        "peer": e.peer.to_string(),
                        "incarnation": e.incarnation,
                        "status": status_name(e.status),
                        "votes": e.votes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"ok": true, "role": "seed", "node": status.node.to_string(), "members": members})
        }
        (RoleStatus::Peer(_), Node::Peer(p)) => {
            let members: Vec<Value> = (p.known_peers().into_iter())
                .map(|(peer, incarnation)| {
                    json!({"peer": peer.to_string(), "incarnation": incarnation, "status": "alive"})
                })
                .collect();
            json!({
                "ok": true,
                "role": "peer",
                "node": status.node.to_string(),
                "seeds": seeds_of(node),
                "members": members,
            })
        }
        _ => json!({"ok": false, "error": "a node whose status does not match its role"}),
    }
}

/// The reply to `info`: settings, standing and counters.
pub fn info_reply(node: &Node) -> Value {
    let status = node.status();
    let counters: serde_json::Map<String, Value> = (status.counters.iter())
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    let settings = serde_json::to_value(node.settings()).unwrap_or(Value::Null);
    let mut reply = json!({
        "ok": true,
        "node": status.node.to_string(),
        "seeds": seeds_of(node),
        "settings": settings,
        "counters": counters,
    });
    let Value::Object(m) = &mut reply else {
        return reply;
    };
    match &status.role {
        RoleStatus::Peer(p) => {
            m.insert("role".into(), "peer".into());
            m.insert("registered".into(), p.registered.into());
            m.insert("incarnation".into(), p.incarnation.into());
            let neighbours: Vec<String> = p.neighbours.iter().map(ToString::to_string).collect();
            m.insert("neighbours".into(), neighbours.into());
            m.insert("known_peers".into(), p.known_peers.into());
        }
        RoleStatus::Seed(s) => {
            m.insert("role".into(), "seed".into());
            let by = |st: Status| s.entries.iter().filter(|e| e.status == st).count();
            let entries = json!({
                "alive": by(Status::Alive),
                "removed": by(Status::Removed),
                "left": by(Status::Left),
            });
            m.insert("entries".into(), entries);
            m.insert("pending".into(), s.pending.into());
        }
    }
    reply
}

fn seeds_of(node: &Node) -> Vec<String> {
    node.seeds().iter().map(ToString::to_string).collect()
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Alive => "alive",
        Status::Removed => "removed",
        Status::Left => "left",
    }
}

/// The `ok` reply to a `watch`, naming the categories.
pub(crate) fn watching_reply(mask: u16) -> String {
    let names: Vec<&str> = (Category::ALL.iter())
        .filter(|c| mask & c.bit() != 0)
        .map(|c| c.name())
        .collect();
    json!({"ok": true, "watching": names}).to_string()
}
