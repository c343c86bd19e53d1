//! A small HTTP/1.1 server for `GET /metrics`, run on the caller's [`mio::Poll`].
//!
//! It knows nothing of metrics: the caller's closure writes the body. No threads, no async:
//! the caller routes readiness events of the server's tokens to [`HttpServer::on_ready`] and
//! calls [`HttpServer::sweep`] by [`HttpServer::next_deadline`]. Heads are parsed by
//! `httparse`; only `GET` and `HEAD` are served, so a request with a body is refused.
//!
//! Every cost a client can cause is bounded by [`HttpLimits`]: connections (more are closed
//! at once), bytes of a request head, time to send one (slowloris), idle keep-alive time, and
//! bytes of a response held for a client that does not read. Pipelined requests are answered
//! in order; the next one is parsed only once the previous answer is written out, so a client
//! that sends and never reads holds one response in memory, not many.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

/// Bounds of an [`HttpServer`]: what one client, or many, can cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at most; one accepted beyond it is closed at once.
    pub max_conns: usize,
    /// Bytes of a request head (request line and headers); over it: `431`, then close.
    pub max_request_bytes: usize,
    /// A request head must be complete within this after accept, or after its first byte on
    /// a kept-alive connection; otherwise `408` and close (a client trickling bytes).
    pub header_timeout_ms: u64,
    /// A kept-alive connection with nothing to do, or a response the client stopped reading,
    /// is closed after this long without progress.
    pub idle_timeout_ms: u64,
    /// Bytes of a response a connection may hold unwritten; beyond it the connection closes.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_conns: 64,
            max_request_bytes: 8 * 1024,
            header_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Counters of an [`HttpServer`] since it was bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// `GET` or `HEAD /metrics` answered `200`.
    pub scrapes: u64,
    /// Requests answered with a `4xx` other than `408`: malformed, too large, with a body,
    /// another path or another method.
    pub bad_requests: u64,
    /// Connections closed at accept because `max_conns` were open.
    pub refused: u64,
    /// Connections closed by [`HttpServer::sweep`] with a request head still incomplete, or a
    /// response the client stopped reading (not idle keep-alive connections).
    pub timed_out: u64,
    /// Connections closed because a response exceeded `max_response_bytes`.
    pub overflowed: u64,
}

/// Headers of one request parsed at most; more is answered `431`.
const MAX_HEADERS: usize = 64;
/// Bytes read from a socket per `read`.
const READ_CHUNK: usize = 4096;
/// After an error response the write side is shut and what the client still sends is read
/// and dropped for this long at most, so the close does not reset the connection (a reset
/// can destroy the response before the client reads it).
const LINGER_MS: u64 = 1_000;
/// Bytes dropped while lingering at most.
const LINGER_BYTES: usize = 64 * 1024;
/// Output buffers above this capacity are given back once written out.
const KEEP_CAPACITY: usize = 256 * 1024;

/// A status code and its reason phrase.
type Status = (u16, &'static str);
const OK: Status = (200, "OK");
const BAD_REQUEST: Status = (400, "Bad Request");
const NOT_FOUND: Status = (404, "Not Found");
const METHOD_NOT_ALLOWED: Status = (405, "Method Not Allowed");
const REQUEST_TIMEOUT: Status = (408, "Request Timeout");
const CONTENT_TOO_LARGE: Status = (413, "Content Too Large");
const HEAD_TOO_LARGE: Status = (431, "Request Header Fields Too Large");

/// The `/metrics` endpoint: a listener and its connections, all on tokens `base..base + span`.
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    limits: HttpLimits,
    /// The listener's token, once registered; connection slot `i` has token `base + 1 + i`.
    base: Option<usize>,
    conns: Vec<Option<Conn>>,
    /// Slots of `conns` that are `None`.
    free: Vec<usize>,
    /// Where the closure writes a body, kept between scrapes for its capacity.
    scratch: Vec<u8>,
    stats: HttpStats,
}

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet parsed: at most `max_request_bytes`.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_pos: usize,
    /// WRITABLE interest is registered (exactly while `out` holds unwritten bytes).
    want_write: bool,
    /// When the head now awaited began: accept, or its first byte. `None` when idle.
    head_since: Option<u64>,
    /// Last read, write or answer.
    last_active: u64,
    /// Close once `out` is written (an error, or the client asked).
    close_after: bool,
    /// Write side shut, draining the client: until when, and bytes it may still send.
    linger: Option<(u64, usize)>,
}

/// How to answer the head at the front of a connection's buffer.
struct Answer {
    /// Bytes the head takes; all that is buffered if it is rejected.
    len: usize,
    status: Status,
    /// `HEAD`: the headers of the answer, no body.
    head_only: bool,
    /// False: close once answered (asked, or the rest of the stream cannot be framed).
    keep_alive: bool,
}

impl HttpServer {
    /// Binds a non-blocking listener.
    pub fn bind(addr: SocketAddr, limits: HttpLimits) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        Ok(HttpServer {
            addr: listener.local_addr()?,
            listener,
            limits,
            base: None,
            conns: Vec::new(),
            free: Vec::new(),
            scratch: Vec::new(),
            stats: HttpStats::default(),
        })
    }

    /// The bound address (with the port chosen, if bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers the listener; every token this server uses is in `base..base + span()`, so
    /// the caller can route readiness events by token range.
    pub fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        if base.checked_add(self.span()).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "token range overflows",
            ));
        }
        registry.register(&mut self.listener, Token(base), Interest::READABLE)?;
        self.base = Some(base);
        Ok(())
    }

    /// Tokens this server uses: its listener and one per connection (`1 + max_conns`).
    pub fn span(&self) -> usize {
        self.limits.max_conns.saturating_add(1)
    }

    /// Whether `token` is one of this server's (always false before [`Self::register`]).
    pub fn owns(&self, token: Token) -> bool {
        self.base
            .is_some_and(|b| token.0.checked_sub(b).is_some_and(|i| i < self.span()))
    }

    /// Serves a readiness event of one of its tokens, whatever its kind: the server tries
    /// what is pending in both directions, so spurious, error and hang-up events are all
    /// fine. `now_ms` is a monotonic clock the caller owns. `body` writes the metrics text of
    /// a `GET /metrics` into an empty buffer and returns the Content-Type to send.
    pub fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now_ms: u64,
        body: &mut dyn FnMut(&mut Vec<u8>) -> &'static str,
    ) {
        let Some(i) = self.base.and_then(|b| token.0.checked_sub(b)) else {
            return;
        };
        if i == 0 {
            self.accept(registry, now_ms);
            return;
        }
        let slot = i - 1;
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        let keep = conn.drive(
            now_ms,
            &self.limits,
            &mut self.stats,
            &mut self.scratch,
            body,
        ) && conn.set_interest(registry, token);
        if !keep {
            self.close(registry, slot);
        }
    }

    /// Closes connections past their deadline: an incomplete head (with a `408`), an idle
    /// keep-alive, a response the client stopped reading, the end of a linger.
    pub fn sweep(&mut self, registry: &Registry, now_ms: u64) {
        for slot in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(slot) else {
                continue;
            };
            if conn.deadline(&self.limits) > now_ms {
                continue;
            }
            if conn.linger.is_none() && (conn.pending() > 0 || conn.head_since.is_some()) {
                self.stats.timed_out += 1;
                if conn.pending() == 0 {
                    // Best effort: one write, and the connection closes whatever it does.
                    let mut msg = Vec::new();
                    put_status(&mut msg, REQUEST_TIMEOUT, false, false);
                    let _ = conn.stream.write(&msg);
                }
            }
            self.close(registry, slot);
        }
    }

    /// The earliest deadline of any connection, so the caller's poll wakes for the sweep.
    pub fn next_deadline(&self) -> Option<u64> {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.deadline(&self.limits))
            .min()
    }

    /// Counters since the server was bound.
    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    /// Open connections.
    pub fn open_conns(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    fn accept(&mut self, registry: &Registry, now: u64) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(registry, stream, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors, most likely: the backlog waits for the next event.
                    log::warn!("metrics: accept: {e}");
                    break;
                }
            }
        }
    }

    fn admit(&mut self, registry: &Registry, mut stream: TcpStream, now: u64) {
        let Some(base) = self.base else {
            return;
        };
        if self.open_conns() >= self.limits.max_conns {
            self.stats.refused += 1;
            return; // dropping the stream closes it
        }
        let slot = self.free.pop().unwrap_or(self.conns.len());
        if let Err(e) = registry.register(&mut stream, Token(base + 1 + slot), Interest::READABLE) {
            log::debug!("metrics: register: {e}");
            if slot < self.conns.len() {
                self.free.push(slot);
            }
            return;
        }
        let _ = stream.set_nodelay(true);
        let conn = Some(Conn::new(stream, now));
        match self.conns.get_mut(slot) {
            Some(s) => *s = conn,
            None => self.conns.push(conn),
        }
    }

    fn close(&mut self, registry: &Registry, slot: usize) {
        if let Some(Some(mut conn)) = self.conns.get_mut(slot).map(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            self.free.push(slot);
        }
    }
}

impl Conn {
    fn new(stream: TcpStream, now: u64) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            want_write: false,
            head_since: Some(now),
            last_active: now,
            close_after: false,
            linger: None,
        }
    }

    fn pending(&self) -> usize {
        self.out.len().saturating_sub(self.out_pos)
    }

    fn deadline(&self, limits: &HttpLimits) -> u64 {
        match (self.linger, self.head_since) {
            (Some((until, _)), _) => until,
            (None, Some(since)) if self.pending() == 0 => {
                since.saturating_add(limits.header_timeout_ms)
            }
            _ => self.last_active.saturating_add(limits.idle_timeout_ms),
        }
    }

    /// Writes, answers and reads until the socket would block either way. False: close it.
    fn drive(
        &mut self,
        now: u64,
        limits: &HttpLimits,
        stats: &mut HttpStats,
        scratch: &mut Vec<u8>,
        body: &mut dyn FnMut(&mut Vec<u8>) -> &'static str,
    ) -> bool {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if !self.flush(now) {
                return false;
            }
            if self.pending() > 0 {
                return true; // the rest when WRITABLE
            }
            if self.linger.is_some() {
                return self.drain(&mut chunk);
            }
            if self.close_after {
                if self.stream.shutdown(Shutdown::Write).is_err() {
                    return false;
                }
                self.linger = Some((now.saturating_add(LINGER_MS), LINGER_BYTES));
                continue;
            }
            if let Some(answer) = parse_head(&self.inbuf, limits.max_request_bytes) {
                if !self.answer(answer, now, limits, stats, scratch, body) {
                    return false;
                }
                continue;
            }
            // A partial head, with room left (`parse_head` rejects a full buffer).
            let room = limits.max_request_bytes.saturating_sub(self.inbuf.len());
            let want = room.min(chunk.len());
            match self.stream.read(chunk.get_mut(..want).unwrap_or_default()) {
                Ok(0) => return false, // end of stream, nothing left to answer
                Ok(n) => {
                    self.head_since.get_or_insert(now);
                    self.last_active = now;
                    self.inbuf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("metrics: read: {e}");
                    return false;
                }
            }
        }
    }

    /// Queues the answer to the head at the front of `inbuf`. False: close the connection.
    fn answer(
        &mut self,
        answer: Answer,
        now: u64,
        limits: &HttpLimits,
        stats: &mut HttpStats,
        scratch: &mut Vec<u8>,
        body: &mut dyn FnMut(&mut Vec<u8>) -> &'static str,
    ) -> bool {
        let Answer {
            len,
            status,
            head_only,
            keep_alive,
        } = answer;
        self.inbuf.drain(..len.min(self.inbuf.len()));
        self.head_since = (!self.inbuf.is_empty()).then_some(now);
        self.last_active = now;
        self.close_after = !keep_alive;
        if status != OK {
            stats.bad_requests += 1;
            put_status(&mut self.out, status, head_only, keep_alive);
            return true;
        }
        stats.scrapes += 1;
        scratch.clear();
        let content_type = body(scratch);
        put_head(
            &mut self.out,
            status,
            content_type,
            scratch.len(),
            keep_alive,
        );
        if !head_only {
            self.out.extend_from_slice(scratch);
        }
        if self.pending() > limits.max_response_bytes {
            log::warn!("metrics: response over max_response_bytes: closing");
            stats.overflowed += 1;
            return false;
        }
        true
    }

    /// Writes until `out` is empty or the socket would block. False on a write error.
    fn flush(&mut self, now: u64) -> bool {
        while self.pending() > 0 {
            let unwritten = self.out.get(self.out_pos..).unwrap_or_default();
            match self.stream.write(unwritten) {
                Ok(0) => return false,
                Ok(n) => {
                    self.out_pos += n;
                    self.last_active = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("metrics: write: {e}");
                    return false;
                }
            }
        }
        self.out_pos = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        true
    }

    /// Reads and drops what a client sends after its error response. False: close it.
    fn drain(&mut self, chunk: &mut [u8]) -> bool {
        loop {
            let Some((_, left)) = &mut self.linger else {
                return false;
            };
            match self.stream.read(chunk) {
                Ok(0) => return false,
                Ok(n) if n >= *left => return false,
                Ok(n) => *left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Registers WRITABLE interest exactly while output is pending. False on failure.
    fn set_interest(&mut self, registry: &Registry, token: Token) -> bool {
        let want_write = self.pending() > 0;
        if want_write == self.want_write {
            return true;
        }
        let interest = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.want_write = want_write;
        registry
            .reregister(&mut self.stream, token, interest)
            .is_ok()
    }
}

/// Parses the head at the front of `buf` and decides its answer; `None` while incomplete.
fn parse_head(buf: &[u8], max: usize) -> Option<Answer> {
    let reject = |status| {
        Some(Answer {
            len: buf.len(),
            status,
            head_only: false,
            keep_alive: false,
        })
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max => return reject(HEAD_TOO_LARGE),
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => return reject(HEAD_TOO_LARGE),
        Err(_) => return reject(BAD_REQUEST),
    };
    let (mut close, mut keep_alive) = (false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).map(|v| v.trim().parse::<u64>()) {
                Ok(Ok(0)) => {}
                Ok(Ok(_)) => return reject(CONTENT_TOO_LARGE),
                _ => return reject(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return reject(CONTENT_TOO_LARGE);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let status = match (method, path) {
        ("GET" | "HEAD", "/metrics") => OK,
        ("GET" | "HEAD", _) => NOT_FOUND,
        _ => METHOD_NOT_ALLOWED,
    };
    Some(Answer {
        len,
        status,
        head_only: method == "HEAD",
        keep_alive: !close && (req.version == Some(1) || keep_alive),
    })
}

/// Appends a response head.
fn put_head(out: &mut Vec<u8>, status: Status, content_type: &str, len: usize, keep_alive: bool) {
    let ((code, reason), connection) = (status, if keep_alive { "keep-alive" } else { "close" });
    let allow = if status == METHOD_NOT_ALLOWED {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {code} {reason}\r\n{allow}Content-Type: {content_type}\r\n\
             Content-Length: {len}\r\nConnection: {connection}\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Appends a response whose body is its reason phrase.
fn put_status(out: &mut Vec<u8>, status: Status, head_only: bool, keep_alive: bool) {
    let text = format!("{}\n", status.1);
    put_head(
        out,
        status,
        "text/plain; charset=utf-8",
        text.len(),
        keep_alive,
    );
    if !head_only {
        out.extend_from_slice(text.as_bytes());
    }
}
