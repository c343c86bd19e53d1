//! Connections: the socket table (a listener or a connection per token), a connection's
//! line reader and write buffer, and what happens to any connection: reading until
//! `WouldBlock` and handing each line to its node (a request on an accepted connection, a
//! reply on a dialled one), flushing its writes, closing it, and closing it when idle.

use std::io::{self, Read, Write};

use gossip_core::wire::auth::{self, Expect};
use gossip_core::wire::{self, DecodeError, LineReader};
use gossip_core::{ConnId, Failure, Input, Millis, Refusal};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::cluster_key::open_line;
use super::inbound::{Inbound, ReplySlot, REPLY_SEQ_BITS};
use super::outbound::Outbound;
use super::{Host, NodeIdx, Observer};

pub(super) enum Socket {
    Listener {
        node: NodeIdx,
        listener: TcpListener,
    },
    Conn(Box<Conn>),
}

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) node: NodeIdx,
    pub(super) side: Side,
    pub(super) reader: LineReader,
    /// Bytes encoded and not yet written. Written bytes are removed at once, so the front
    /// is always the next byte to write.
    pub(super) wbuf: OutBuf,
    /// WRITABLE interest is registered (only while `wbuf` holds bytes, or while connecting).
    pub(super) want_write: bool,
    /// In the host's `dirty` list, to be flushed at the end of this turn.
    pub(super) dirty: bool,
    pub(super) last_active: Millis,
}

pub(super) enum Side {
    /// Accepted: requests come in, replies go out in request order.
    Inbound(Inbound),
    /// Dialled by `node` to a destination: requests go out, replies come back in order.
    Outbound(Outbound),
}

/// A connection's outgoing bytes: appended at the end, written from `pos`. Written bytes are
/// dropped lazily (all at once when everything is out, or by one move when they are most of
/// the buffer), so a partial write does not move the rest of a large buffer every time.
#[derive(Default)]
pub(super) struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where to encode more.
    pub(super) fn append(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn unwritten(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// After a flush: drop written bytes once they dominate, and give back a burst's capacity.
    fn settle(&mut self) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

/// Write buffers above this capacity are given back once empty, so a burst does not pin
/// memory for the life of a connection.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Why a connection is being closed; decides what happens to requests in flight on it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Close {
    /// Reset, refused, or end of stream from the remote.
    Remote,
    /// Closed because of another request (its timeout, an over-long reply): the rest is
    /// re-sent on a new connection.
    Collateral,
    /// Nothing in flight and idle, or the host decided (limits, protocol violation).
    Local,
}

/// The connection at `token`, borrowing only the socket table (so other fields of the host
/// stay usable).
pub(super) fn conn_in(sockets: &mut [Option<Socket>], token: Token) -> Option<&mut Conn> {
    match sockets.get_mut(token.0) {
        Some(Some(Socket::Conn(c))) => Some(c),
        _ => None,
    }
}

impl<O: Observer> Host<O> {
    pub(super) fn alloc_token(&mut self) -> Token {
        match self.free_tokens.pop() {
            Some(i) => Token(i),
            None => {
                self.sockets.push(None);
                Token(self.sockets.len() - 1)
            }
        }
    }

    pub(super) fn conn_mut(&mut self, token: Token) -> Option<&mut Conn> {
        conn_in(&mut self.sockets, token)
    }

    pub(super) fn mark_dirty(&mut self, token: Token) {
        if let Some(c) = self.conn_mut(token) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    /// Reads until `WouldBlock`, handing every complete line on as it goes.
    ///
    /// With `stop_when_short`, a read that did not fill the buffer ends it early: it drained
    /// the socket, and readiness is edge-triggered, so any later byte (or end of stream)
    /// comes with a new event; this saves the `read` that would only say `WouldBlock`, about
    /// one in two. Not after a pause (bytes may have waited through several events), nor when
    /// the event already reported end of stream (the `read` that returns 0 must happen).
    pub(super) fn read_ready(&mut self, token: Token, stop_when_short: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        loop {
            if !self.take_lines(token, false) {
                break;
            }
            let Some(c) = conn_in(&mut self.sockets, token) else {
                break;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.on_eof(token);
                    break;
                }
                Ok(n) => {
                    c.last_active = self.now;
                    c.reader.push(buf.get(..n).unwrap_or_default());
                    if stop_when_short && n < buf.len() {
                        self.take_lines(token, false);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("read: {e}");
                    self.close(token, Close::Remote);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    fn on_eof(&mut self, token: Token) {
        if !self.take_lines(token, true) {
            // Paused with lines left: those requests are dropped with the connection.
            if let Some(c) = self.conn_mut(token) {
                if let Side::Inbound(ib) = &mut c.side {
                    ib.finishing = true;
                }
            }
        }
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        match &mut c.side {
            Side::Inbound(ib) => {
                ib.finishing = true;
                self.close_if_finished(token);
            }
            Side::Outbound(_) => self.close(token, Close::Remote),
        }
    }

    /// Hands every complete line buffered on `token` to its node. Returns false when the
    /// connection is gone or must not be read further for now.
    fn take_lines(&mut self, token: Token, at_eof: bool) -> bool {
        loop {
            let max_pending = self.limits.max_pending_replies;
            let high_water = self.limits.write_high_water;
            let rate_limits = self.limits.rate;
            let now = self.now;
            let Some(Some(Socket::Conn(c))) = self.sockets.get_mut(token.0) else {
                return false;
            };
            let conn = &mut **c;
            if let Side::Inbound(ib) = &mut conn.side {
                if ib.finishing {
                    return false;
                }
                if ib.replies.len() >= max_pending || conn.wbuf.len() >= high_water {
                    ib.paused = true;
                    return false;
                }
            }
            let line = if at_eof {
                conn.reader.finish()
            } else {
                conn.reader.next_line()
            };
            let line = match line {
                None => return true,
                Some(line) => line,
            };
            let framing_lost = matches!(line, Err(DecodeError::TooLong { .. }));
            let line_bytes = line.as_ref().map_or(0, |l| l.len() + 1);
            let node = conn.node;
            match &mut conn.side {
                Side::Inbound(ib) => {
                    let (decoded, bind) = match (line, &self.keyring) {
                        (Err(e), _) => (Err(e), None),
                        (Ok(bytes), None) => (wire::decode(bytes), None),
                        (Ok(bytes), Some(ring)) => open_line(
                            ring,
                            self.nodes.get_mut(node.0).map(|n| &mut n.replay),
                            bytes,
                            (Expect::Request, self.wall_ms),
                            &mut self.stats,
                        ),
                    };
                    let seq = self.next_reply_seq & ((1 << REPLY_SEQ_BITS) - 1);
                    self.next_reply_seq += 1;
                    let id = ((token.0 as u64) << REPLY_SEQ_BITS) | seq;
                    ib.replies.push_back(ReplySlot {
                        id,
                        msg: None,
                        bind,
                    });
                    if framing_lost {
                        ib.finishing = true;
                    }
                    self.stats.requests_in += 1;
                    if let Some(t) = self.traffic.as_deref_mut() {
                        t.read(decoded.as_ref().ok(), line_bytes);
                    }
                    let conn = ConnId(id);
                    let input = match decoded {
                        // Over its rate: the node never sees it, and answers `ERROR`.
                        Ok(msg) if !ib.rate.admit(now, &rate_limits, &msg) => {
                            self.stats.rate_limited += 1;
                            Input::Refused {
                                conn,
                                why: Refusal::RateLimited(msg.type_name()),
                            }
                        }
                        Ok(msg) => Input::Request { conn, msg },
                        Err(error) => Input::Refused {
                            conn,
                            why: Refusal::Undecodable(error),
                        },
                    };
                    self.feed(node, input);
                }
                Side::Outbound(ob) => {
                    let Some(id) = ob.inflight.pop_front() else {
                        log::debug!("unsolicited reply from {}: closing", ob.dest);
                        self.close(token, Close::Local);
                        return false;
                    };
                    if ob.inflight.is_empty() {
                        ob.tail_deferrable = false;
                    }
                    ob.answered += 1;
                    let (dest, answered) = (ob.dest, ob.answered);
                    let key = (node, dest);
                    let one_shot = match self.links.get_mut(&key) {
                        Some(link) => {
                            if answered >= 2 {
                                link.proven = true;
                            }
                            link.one_shot
                        }
                        None => false,
                    };
                    // A reply nobody waits for (its node declined it, or its request was
                    // already failed) is read off the connection and dropped unread.
                    let req = self.requests.remove(&id).filter(|r| r.wants_response);
                    let decoded = match (line, &self.keyring, &req) {
                        (Err(e), _, _) => Err(e),
                        (Ok(bytes), None, _) => wire::decode(bytes),
                        (Ok(bytes), Some(ring), Some(req)) => {
                            open_line(
                                ring,
                                self.nodes.get_mut(node.0).map(|n| &mut n.replay),
                                bytes,
                                (Expect::Reply(req.nonce), self.wall_ms),
                                &mut self.stats,
                            )
                            .0
                        }
                        // Nobody waits for it: not worth a MAC check.
                        (Ok(_), Some(_), None) => Err(DecodeError::Auth(auth::AuthError::Unbound)),
                    };
                    if framing_lost || one_shot {
                        self.close(token, Close::Collateral);
                    }
                    if let Some(t) = self.traffic.as_deref_mut() {
                        t.read(decoded.as_ref().ok(), line_bytes);
                        if let (Some(r), Ok(_)) = (&req, &decoded) {
                            if matches!(r.msg, gossip_core::Message::Ping(_)) {
                                let ms = self.now.since(r.sent_at) as f64;
                                t.probe_rtt.observe(ms / 1000.0);
                            }
                        }
                    }
                    if let Some(req) = req {
                        self.stats.replies_in += 1;
                        let outcome = decoded.map_err(|e| {
                            log::debug!("bad reply from {dest}: {e}");
                            self.stats.send_failures += 1;
                            Failure::BadReply
                        });
                        let input = Input::Response {
                            to: req.to,
                            request: req.msg,
                            outcome,
                        };
                        self.feed(req.node, input);
                    } else {
                        self.run_inputs();
                    }
                    if framing_lost || one_shot {
                        return false;
                    }
                    self.pump_link(key);
                }
            }
        }
    }

    pub(super) fn flush_all(&mut self) {
        loop {
            while let Some(token) = self.dirty.pop() {
                self.flush(token);
            }
            let resume = std::mem::take(&mut self.resume);
            for &token in &resume {
                self.read_ready(token, false);
            }
            self.run_inputs();
            if self.dirty.is_empty() && self.resume.is_empty() && self.inputs.is_empty() {
                break;
            }
        }
    }

    /// Writes until the buffer is empty or the socket would block; keeps WRITABLE interest
    /// registered exactly while bytes remain.
    pub(super) fn flush(&mut self, token: Token) {
        let limits = self.limits.clone();
        let Some(c) = self.conn_mut(token) else {
            return;
        };
        c.dirty = false;
        if let Side::Outbound(ob) = &c.side {
            if !ob.connected {
                return;
            }
        }
        let mut written = 0;
        let mut failed = None;
        let mut writes = 0;
        while !c.wbuf.is_empty() {
            match c.stream.write(c.wbuf.unwritten()) {
                Ok(0) => {
                    failed = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => {
                    c.wbuf.consume(n);
                    written += n;
                    writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.stats.writes += writes;
        let Some(c) = conn_in(&mut self.sockets, token) else {
            return;
        };
        if let Some(e) = failed {
            log::debug!("write: {e}");
            self.close(token, Close::Remote);
            return;
        }
        if written > 0 {
            c.last_active = self.now;
        }
        c.wbuf.settle();
        let want_write = !c.wbuf.is_empty();
        if want_write != c.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest)
            {
                log::warn!("reregister: {e}");
                self.close(token, Close::Local);
                return;
            }
            c.want_write = want_write;
        }
        let below_high_water = c.wbuf.len() < limits.write_high_water;
        match &mut c.side {
            Side::Inbound(ib) => {
                if c.wbuf.len() > limits.write_hard_limit {
                    log::debug!("slow reader: dropping connection");
                    self.close(token, Close::Local);
                    return;
                }
                if ib.paused && below_high_water && ib.replies.len() < limits.max_pending_replies {
                    ib.paused = false;
                    self.resume.push(token);
                }
                self.close_if_finished(token);
            }
            Side::Outbound(ob) => {
                if below_high_water {
                    let key = (c.node, ob.dest);
                    self.pump_link(key);
                }
            }
        }
    }

    /// Takes the connection at `token` out of the socket table; its side then settles what
    /// it leaves behind.
    pub(super) fn close(&mut self, token: Token, why: Close) {
        let Some(slot) = self.sockets.get_mut(token.0) else {
            return;
        };
        let Some(Socket::Conn(mut c)) = slot.take() else {
            return;
        };
        self.free_tokens.push(token.0);
        let _ = self.poll.registry().deregister(&mut c.stream);
        match c.side {
            Side::Inbound(ib) => self.inbound_closed(c.node, ib),
            Side::Outbound(ob) => self.outbound_closed(token, why, c.node, ob),
        }
    }

    /// Closes connections idle past their limit; forgets links with nothing left.
    pub(super) fn sweep_idle(&mut self) {
        let now = self.now;
        let mut idle = Vec::new();
        for (i, s) in self.sockets.iter_mut().enumerate() {
            let Some(Socket::Conn(c)) = s else {
                continue;
            };
            let quiet = now.since(c.last_active);
            let partial = c.reader.pending_bytes() > 0;
            let expired = match &mut c.side {
                Side::Inbound(ib) => {
                    // Part of a line with nothing outstanding: a trickle, timed from when
                    // the sweep first saw it.
                    let trickle = partial && ib.replies.is_empty();
                    let since = match (trickle, ib.partial_since) {
                        (false, _) => None,
                        (true, None) => Some(now),
                        (true, Some(t)) => Some(t),
                    };
                    ib.partial_since = since;
                    let too_slow =
                        since.is_some_and(|t| now.since(t) >= self.limits.line_timeout_ms);
                    too_slow || (ib.replies.is_empty() && quiet >= self.limits.inbound_idle_ms)
                }
                Side::Outbound(ob) => {
                    ob.inflight.is_empty() && quiet >= self.limits.outbound_idle_ms
                }
            };
            if expired {
                idle.push(Token(i));
            }
        }
        for token in idle {
            self.close(token, Close::Local);
        }
        self.links
            .retain(|_, l| !(l.sockets.is_empty() && l.unsent.is_empty()));
    }
}
