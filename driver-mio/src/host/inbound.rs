//! Accepted connections: accepting (within the per-node and per-address limits), the reply
//! slots that keep replies in request order on a pipelined connection, sealing replies with
//! the cluster key, and closing a connection once it is finished.

use std::collections::VecDeque;
use std::io;

use gossip_core::msg::Message;
use gossip_core::wire::auth::{self, Stamp};
use gossip_core::wire::{self, LineReader};
use gossip_core::{ConnId, Millis};
use mio::{Interest, Token};

use super::conn::{conn_in, Close, Conn, OutBuf, Side, Socket};
use super::{Host, NodeIdx, Observer};

pub(super) struct Inbound {
    /// One slot per request read, in order; a slot fills when the node replies, and filled
    /// slots at the front are encoded. This keeps replies in request order on a pipelined
    /// connection even when the node answers a later request first.
    pub(super) replies: VecDeque<ReplySlot>,
    /// Reading stopped because of backpressure; resumed when replies drain.
    pub(super) paused: bool,
    /// The remote closed its side (or framing was lost): close once every reply is out.
    pub(super) finishing: bool,
    /// The remote's address, for the per-IP connection count.
    remote: std::net::IpAddr,
    /// Rate limits of this connection's expensive requests.
    pub(super) rate: gossip_core::ratelimit::ConnRate,
    /// Since when (as seen by the idle sweep) part of a line has waited for its end.
    pub(super) partial_since: Option<Millis>,
}

pub(super) struct ReplySlot {
    pub(super) id: u64,
    pub(super) msg: Option<Message>,
    /// With a cluster key: the nonce of the request, which the reply is bound to (`None` for
    /// a request whose MAC did not verify: its `ERROR` is sealed unbound).
    pub(super) bind: Option<u64>,
}

/// Bits of a reply id ([`ConnId`]) that count requests; the bits above name the socket, so
/// a reply finds its connection without a lookup table, and a reply for a connection that
/// was closed (its socket slot maybe reused) finds no matching slot and is dropped.
pub(super) const REPLY_SEQ_BITS: u32 = 40;

impl<O: Observer> Host<O> {
    pub(super) fn accept_all(&mut self, token: Token, node: NodeIdx) {
        loop {
            let accepted = match self.sockets.get(token.0) {
                Some(Some(Socket::Listener { listener, .. })) => listener.accept(),
                _ => return,
            };
            match accepted {
                Ok((mut stream, remote)) => {
                    let Some(slot) = self.nodes.get_mut(node.0) else {
                        return;
                    };
                    if slot.inbound >= self.limits.max_inbound_per_node {
                        log::warn!("{}: connection limit reached, refusing {remote}", slot.me);
                        continue;
                    }
                    let from_ip = self.inbound_by_ip.entry((node.0, remote.ip())).or_insert(0);
                    if *from_ip >= self.limits.max_inbound_per_ip {
                        log::warn!("{}: per-address limit reached, refusing {remote}", slot.me);
                        continue;
                    }
                    *from_ip += 1;
                    slot.inbound += 1;
                    let _ = stream.set_nodelay(true);
                    let t = self.alloc_token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, t, Interest::READABLE)
                    {
                        log::warn!("register accepted connection: {e}");
                        self.free_tokens.push(t.0);
                        if let Some(slot) = self.nodes.get_mut(node.0) {
                            slot.inbound -= 1;
                        }
                        self.release_ip(node.0, remote.ip());
                        continue;
                    }
                    self.stats.accepted += 1;
                    self.sockets[t.0] = Some(Socket::Conn(Box::new(Conn {
                        stream,
                        node,
                        side: Side::Inbound(Inbound {
                            replies: VecDeque::new(),
                            paused: false,
                            finishing: false,
                            remote: remote.ip(),
                            rate: gossip_core::ratelimit::ConnRate::new(
                                self.now,
                                &self.limits.rate,
                            ),
                            partial_since: None,
                        }),
                        reader: LineReader::new(self.line_limit()),
                        wbuf: OutBuf::default(),
                        want_write: false,
                        dirty: false,
                        last_active: self.now,
                    })));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the backlog keeps the connection; a later
                    // readiness retries.
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    pub(super) fn reply(&mut self, idx: NodeIdx, conn: ConnId, msg: Message) {
        let token = Token((conn.0 >> REPLY_SEQ_BITS) as usize);
        let ts = self.wire_ts();
        let ts_ms = self.wall_ms;
        let Some(c) = conn_in(&mut self.sockets, token) else {
            log::debug!("reply on a closed connection dropped: {}", msg.type_name());
            return;
        };
        if c.node != idx {
            log::warn!("node {idx:?} replied on a connection it does not own");
            return;
        }
        let Side::Inbound(ib) = &mut c.side else {
            return;
        };
        match ib.replies.iter_mut().find(|s| s.id == conn.0) {
            Some(slot) => slot.msg = Some(msg),
            None => {
                log::debug!("reply on a closed connection dropped: {}", msg.type_name());
                return;
            }
        }
        while ib.replies.front().is_some_and(|s| s.msg.is_some()) {
            let Some(ReplySlot {
                msg: Some(m), bind, ..
            }) = ib.replies.pop_front()
            else {
                continue;
            };
            let before = c.wbuf.len();
            match &self.keyring {
                None => wire::encode(&m, ts, c.wbuf.append()),
                Some(ring) => {
                    let nonce = self.next_nonce;
                    self.next_nonce = nonce.wrapping_add(1);
                    let stamp = Stamp { ts_ms, nonce, bind };
                    auth::seal_with(ring, stamp, c.wbuf.append(), |out| {
                        wire::encode(&m, ts, out)
                    });
                }
            }
            if let Some(t) = self.traffic.as_deref_mut() {
                t.wrote(&m, c.wbuf.len() - before);
            }
        }
        self.mark_dirty(token);
    }

    pub(super) fn close_if_finished(&mut self, token: Token) {
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        if let Side::Inbound(ib) = &c.side {
            if ib.finishing && ib.replies.is_empty() && c.wbuf.is_empty() {
                self.close(token, Close::Local);
            }
        }
    }

    /// An accepted connection of `node` is gone: it no longer counts against the limits of
    /// the node and of its remote's address.
    pub(super) fn inbound_closed(&mut self, node: NodeIdx, ib: Inbound) {
        if let Some(n) = self.nodes.get_mut(node.0) {
            n.inbound = n.inbound.saturating_sub(1);
        }
        self.release_ip(node.0, ib.remote);
    }

    /// One accepted connection from `ip` to node `node` is gone.
    fn release_ip(&mut self, node: usize, ip: std::net::IpAddr) {
        if let std::collections::hash_map::Entry::Occupied(mut e) =
            self.inbound_by_ip.entry((node, ip))
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}
