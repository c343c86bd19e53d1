//! Dialled connections and the requests on them: a link per (node, destination) with its
//! queue and pool of connections, the slab of requests in flight, dialling, putting a request
//! on a connection (pipelined only where that is safe), sealing requests with the cluster
//! key, deadlines, and answering the node when a request ends.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::io;

use gossip_core::msg::{Endpoint, Message};
use gossip_core::wire::auth::{self, Stamp};
use gossip_core::wire::{self, LineReader};
use gossip_core::{Failure, Input, Millis};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::conn::{conn_in, Close, Conn, OutBuf, Side, Socket};
use super::{Host, NodeIdx, Observer};

pub(super) struct Outbound {
    pub(super) dest: Endpoint,
    pub(super) connected: bool,
    /// Requests written (or encoded) on this connection, oldest first; replies answer them
    /// in this order.
    pub(super) inflight: VecDeque<u64>,
    /// The newest request in flight may get a deferred reply: nothing is pipelined behind it.
    pub(super) tail_deferrable: bool,
    /// Replies received on this connection.
    pub(super) answered: u64,
}

/// Everything a node keeps towards one destination.
#[derive(Default)]
pub(super) struct Link {
    pub(super) sockets: Vec<Token>,
    /// Requests waiting for a connection that can take them.
    pub(super) unsent: VecDeque<u64>,
    /// A connection answered two requests: the remote keeps connections alive, requests can
    /// be pipelined.
    pub(super) proven: bool,
    /// The remote closed after answering: one request per connection (the reference
    /// implementation's style).
    pub(super) one_shot: bool,
}

pub(super) struct Request {
    pub(super) node: NodeIdx,
    pub(super) to: Endpoint,
    pub(super) msg: Message,
    /// Re-sent once already after its connection went away through no fault of its own (a
    /// collateral close does not count: see `outbound_closed`).
    retried: bool,
    socket: Option<Token>,
    /// With a cluster key: the nonce it was last sent with, which its reply must be bound to.
    pub(super) nonce: u64,
    /// The node wants the outcome back (see `Output::Send`).
    pub(super) wants_response: bool,
    /// When it was last written (the probe round trip of metrics).
    pub(super) sent_at: Millis,
}

/// Requests in flight, in a slab: an id is `slot | generation << 32`, so a stale id (a
/// deadline entry of a request already answered) finds nothing.
#[derive(Default)]
pub(super) struct Requests {
    slots: Vec<(u32, Option<Request>)>,
    free: Vec<usize>,
}

impl Requests {
    /// Requests in flight.
    pub(super) fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn insert(&mut self, req: Request) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.1 = Some(req);
        (index as u64) | (u64::from(slot.0) << 32)
    }

    fn locate(&self, id: u64) -> Option<usize> {
        let index = (id & 0xffff_ffff) as usize;
        let generation = (id >> 32) as u32;
        match self.slots.get(index) {
            Some((g, Some(_))) if *g == generation => Some(index),
            _ => None,
        }
    }

    fn get(&self, id: &u64) -> Option<&Request> {
        let i = self.locate(*id)?;
        self.slots.get(i).and_then(|s| s.1.as_ref())
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Request> {
        let i = self.locate(*id)?;
        self.slots.get_mut(i).and_then(|s| s.1.as_mut())
    }

    pub(super) fn remove(&mut self, id: &u64) -> Option<Request> {
        let i = self.locate(*id)?;
        let slot = self.slots.get_mut(i)?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(i);
        slot.1.take()
    }
}

impl<O: Observer> Host<O> {
    pub(super) fn send(
        &mut self,
        idx: NodeIdx,
        to: Endpoint,
        msg: Message,
        deadline: Millis,
        wants_response: bool,
    ) {
        let key = (idx, to);
        let link = self.links.entry(key).or_default();
        let req = Request {
            node: idx,
            to,
            msg,
            retried: false,
            socket: None,
            nonce: 0,
            wants_response,
            sent_at: self.now,
        };
        if link.unsent.len() >= self.limits.max_queued_per_link {
            log::debug!("queue to {to} full: failing {}", req.msg.type_name());
            self.respond(req, Err(Failure::Timeout));
            return;
        }
        let id = self.requests.insert(req);
        link.unsent.push_back(id);
        self.deadlines.push(Reverse((deadline, id)));
        self.pump_link(key);
    }

    /// Moves queued requests of a link onto connections that can take them, dialling new
    /// connections up to the per-link limit.
    pub(super) fn pump_link(&mut self, key: (NodeIdx, Endpoint)) {
        loop {
            let Some(link) = self.links.get(&key) else {
                return;
            };
            let Some(&id) = link.unsent.front() else {
                return;
            };
            let Some(req) = self.requests.get(&id) else {
                if let Some(link) = self.links.get_mut(&key) {
                    link.unsent.pop_front();
                }
                continue;
            };
            // Nothing is pipelined behind a request whose reply may come late, so a quick
            // request (a probe, a gossip) never waits behind a slow reply.
            let deferrable = req.msg.may_defer();
            let mut empty = None;
            let mut pipelined = None;
            for &t in &link.sockets {
                let Some(Some(Socket::Conn(c))) = self.sockets.get(t.0) else {
                    continue;
                };
                let Side::Outbound(ob) = &c.side else {
                    continue;
                };
                if c.wbuf.len() >= self.limits.write_high_water {
                    continue;
                }
                if ob.inflight.is_empty() {
                    if !(link.one_shot && ob.answered > 0) && empty.is_none() {
                        empty = Some(t);
                    }
                } else if link.proven
                    && !link.one_shot
                    && !ob.tail_deferrable
                    && pipelined.is_none()
                {
                    pipelined = Some(t);
                }
            }
            let room = link.sockets.len() < self.limits.sockets_per_link;
            let pick = if deferrable {
                empty.or(if room { None } else { pipelined })
            } else {
                pipelined.or(empty)
            };
            let token = match pick {
                Some(t) => t,
                None if room => match self.dial(key) {
                    Some(t) => t,
                    None => {
                        if let Some(link) = self.links.get_mut(&key) {
                            link.unsent.pop_front();
                        }
                        if let Some(req) = self.requests.remove(&id) {
                            self.respond(req, Err(Failure::Unreachable));
                        }
                        continue;
                    }
                },
                None => return,
            };
            self.assign(key, token, id, deferrable);
        }
    }

    fn assign(&mut self, key: (NodeIdx, Endpoint), token: Token, id: u64, deferrable: bool) {
        if let Some(link) = self.links.get_mut(&key) {
            link.unsent.pop_front();
        }
        let ts = self.wire_ts();
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.socket = Some(token);
        let Some(Some(Socket::Conn(c))) = self.sockets.get_mut(token.0) else {
            return;
        };
        req.sent_at = self.now;
        let before = c.wbuf.len();
        match &self.keyring {
            None => wire::encode(&req.msg, ts, c.wbuf.append()),
            Some(ring) => {
                let nonce = self.next_nonce;
                self.next_nonce = nonce.wrapping_add(1);
                req.nonce = nonce;
                let stamp = Stamp {
                    ts_ms: self.wall_ms,
                    nonce,
                    bind: None,
                };
                let msg = &req.msg;
                auth::seal_with(ring, stamp, c.wbuf.append(), |out| {
                    wire::encode(msg, ts, out)
                });
            }
        }
        if let Some(t) = self.traffic.as_deref_mut() {
            t.wrote(&req.msg, c.wbuf.len() - before);
        }
        if let Side::Outbound(ob) = &mut c.side {
            ob.inflight.push_back(id);
            ob.tail_deferrable = deferrable;
        }
        self.mark_dirty(token);
    }

    fn dial(&mut self, key: (NodeIdx, Endpoint)) -> Option<Token> {
        let (node, dest) = key;
        let mut stream = match TcpStream::connect(self.renamer.dial_addr(dest)) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("connect to {dest}: {e}");
                self.renamer.unanswered(dest, std::time::Instant::now());
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let token = self.alloc_token();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("register dialled connection: {e}");
            self.free_tokens.push(token.0);
            return None;
        }
        self.stats.dialled += 1;
        self.sockets[token.0] = Some(Socket::Conn(Box::new(Conn {
            stream,
            node,
            side: Side::Outbound(Outbound {
                dest,
                connected: false,
                inflight: VecDeque::new(),
                tail_deferrable: false,
                answered: 0,
            }),
            reader: LineReader::new(self.line_limit()),
            wbuf: OutBuf::default(),
            want_write: true,
            dirty: false,
            last_active: self.now,
        })));
        self.links.entry(key).or_default().sockets.push(token);
        Some(token)
    }

    /// A dialled connection became ready before it was known to be connected. Returns true
    /// once connected; closes it (failing its requests) when the connect failed.
    pub(super) fn finish_connect(&mut self, token: Token) -> bool {
        let Some(c) = conn_in(&mut self.sockets, token) else {
            return false;
        };
        let state = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        };
        match state {
            Ok(true) => {
                if let Side::Outbound(ob) = &mut c.side {
                    ob.connected = true;
                }
                c.last_active = self.now;
                true
            }
            Ok(false) => false,
            Err(e) => {
                log::debug!("connect failed: {e}");
                if let Side::Outbound(ob) = &c.side {
                    let dest = ob.dest;
                    self.renamer.unanswered(dest, std::time::Instant::now());
                }
                self.close(token, Close::Remote);
                false
            }
        }
    }

    pub(super) fn expire_requests(&mut self) {
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > self.now {
                break;
            }
            self.deadlines.pop();
            let Some(req) = self.requests.remove(&id) else {
                continue;
            };
            match req.socket {
                Some(token) => {
                    if let Some(c) = self.conn_mut(token) {
                        if let Side::Outbound(ob) = &mut c.side {
                            ob.inflight.retain(|&r| r != id);
                        }
                    }
                    // Replies on this connection would now be misaligned: close it; the
                    // other requests on it are re-sent.
                    self.close(token, Close::Collateral);
                }
                None => {
                    if let Some(link) = self.links.get_mut(&(req.node, req.to)) {
                        link.unsent.retain(|&r| r != id);
                    }
                }
            }
            self.renamer.unanswered(req.to, std::time::Instant::now());
            self.respond(req, Err(Failure::Timeout));
        }
    }

    fn respond(&mut self, req: Request, outcome: Result<Message, Failure>) {
        if outcome.is_err() {
            self.stats.send_failures += 1;
        }
        if !req.wants_response {
            return;
        }
        self.inputs.push_back((
            req.node,
            Input::Response {
                to: req.to,
                request: req.msg,
                outcome,
            },
        ));
    }

    /// A dialled connection of `node` is gone (`token` is already out of the socket table),
    /// closed for `why`: each request in flight on it is sent again once if the close was not
    /// its fault, else failed `Unreachable`; a remote that answered, then closed, is marked
    /// one-shot.
    pub(super) fn outbound_closed(
        &mut self,
        token: Token,
        why: Close,
        node: NodeIdx,
        ob: Outbound,
    ) {
        let key = (node, ob.dest);
        let answered = ob.answered > 0;
        let mut retry = Vec::new();
        if let Some(link) = self.links.get_mut(&key) {
            link.sockets.retain(|&t| t != token);
            if why == Close::Remote && answered && !link.proven {
                // It answered, then closed: it serves one request per connection.
                link.one_shot = true;
            }
        }
        for id in ob.inflight {
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            req.socket = None;
            let innocent = why != Close::Remote || answered;
            // A collateral close is this host's own doing (another request on the connection
            // timed out): it costs the request no retry, its own deadline still bounds it.
            // After a partition heals, connections dialled during it time out one after the
            // other, and a gossip moved twice was dropped although the link was up again.
            if innocent && (why == Close::Collateral || !req.retried) {
                req.retried |= why != Close::Collateral;
                retry.push(id);
            } else if let Some(req) = self.requests.remove(&id) {
                self.respond(req, Err(Failure::Unreachable));
            }
        }
        match self.links.get_mut(&key) {
            Some(link) => {
                for id in retry.into_iter().rev() {
                    link.unsent.push_front(id);
                }
                if link.sockets.is_empty() && link.unsent.is_empty() && !link.proven {
                    self.links.remove(&key);
                } else {
                    self.pump_link(key);
                }
            }
            None => {
                for id in retry {
                    if let Some(req) = self.requests.remove(&id) {
                        self.respond(req, Err(Failure::Unreachable));
                    }
                }
            }
        }
    }
}
