//! The control socket: a Unix domain socket on the node's own event loop, for programs on
//! the same machine (`gossipctl`). Newline-delimited JSON requests and replies; `watch` turns a
//! connection into an event stream. The protocol is `docs/CONTROL.md`.
//!
//! This file owns the socket and its clients: framing, parsing requests, bounded output,
//! watchers' filters and what they missed. What a request does to the node is the host's
//! (`local/mod.rs`): [`ControlServer::on_ready`] hands it the requests it read.
//!
//! Nothing a client does stalls the node: every client has an output buffer of
//! [`ControlLimits::max_output`]; a watcher that cannot take an event misses it (counted, and
//! told once it has room), a request-reply client that stops reading is closed.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gossip_core::wire::{DecodeError, LineReader};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde_json::{Map, Value};

use super::events::{dropped_line, Category};

/// Bounds of a [`ControlServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlLimits {
    /// Clients at once; one more is closed at once.
    pub max_clients: usize,
    /// Longest request line (a publish of the largest payload, escaped, fits).
    pub max_line: usize,
    /// Bytes a client may have waiting to be written; see the module doc.
    pub max_output: usize,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_clients: 64,
            max_line: 1 << 20,
            max_output: 1 << 20,
        }
    }
}

/// A request read from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Broadcast an application message.
    Publish {
        /// Optional name.
        name: Option<String>,
        /// The payload.
        data: String,
    },
    /// Stream events of these categories (a mask of [`Category::bit`]), of this
    /// application message name if given.
    Watch {
        /// Categories wanted.
        mask: u16,
        /// Only application messages of this name.
        name: Option<String>,
    },
    /// The Peer List (seed) or what this peer knows.
    Members,
    /// Settings, standing, counters.
    Info,
    /// Leave the network (a peer) or stop (a seed), then exit: answered when done.
    Leave,
}

/// A client's number, to answer it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClientId(usize);

struct Watch {
    mask: u16,
    name: Option<String>,
    /// Events it could not take since its last line.
    missed: u64,
}

struct Client {
    stream: UnixStream,
    reader: LineReader,
    out: Vec<u8>,
    out_pos: usize,
    want_write: bool,
    watch: Option<Watch>,
    /// Close once `out` is written.
    close_after: bool,
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

/// Counters of a [`ControlServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Requests read (malformed ones included).
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Clients refused (over `max_clients`) or dropped (a reply that did not fit).
    pub dropped_clients: u64,
    /// Events watchers missed for being behind.
    pub missed_events: u64,
}

/// The control socket and its clients, on tokens `base..base + span`.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    limits: ControlLimits,
    base: Option<usize>,
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    /// Clients that are watching (so an event visits only them).
    watchers: Vec<usize>,
    stats: ControlStats,
}

impl ControlServer {
    /// Binds the socket at `path`, mode 0600: it is bound in a fresh directory only this
    /// user can enter, made 0600, then renamed into place, so nobody else can connect in
    /// between. A stale socket at `path` that nobody listens on is replaced; anything else
    /// there is an error.
    pub fn bind(path: &Path, limits: ControlLimits) -> io::Result<ControlServer> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{}: another node listens on it", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists and is not a socket", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let private = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&private)?;
        let staged = private.join("socket");
        let bound = (|| {
            let listener = std::os::unix::net::UnixListener::bind(&staged)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staged, path)?;
            Ok::<_, io::Error>(listener)
        })();
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&private);
        let listener = bound?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener: UnixListener::from_std(listener),
            path: path.to_path_buf(),
            limits,
            base: None,
            clients: Vec::new(),
            free: Vec::new(),
            watchers: Vec::new(),
            stats: ControlStats::default(),
        })
    }

    /// Registers the listener; its tokens are `base..base + span()`.
    pub fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        registry.register(&mut self.listener, Token(base), Interest::READABLE)?;
        self.base = Some(base);
        Ok(())
    }

    /// Tokens used.
    pub fn span(&self) -> usize {
        1 + self.limits.max_clients
    }

    /// True if `token` is one of this server's.
    pub fn owns(&self, token: Token) -> bool {
        self.base
            .is_some_and(|b| (b..b + self.span()).contains(&token.0))
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Its counters.
    pub fn stats(&self) -> ControlStats {
        self.stats
    }

    /// True if some watcher wants events of `category` (so the caller renders only then).
    pub fn wants(&self, category: Category) -> bool {
        self.watchers.iter().any(|&i| {
            (self.clients.get(i))
                .and_then(Option::as_ref)
                .and_then(|c| c.watch.as_ref())
                .is_some_and(|w| w.mask & category.bit() != 0)
        })
    }

    /// A readiness event for one of its tokens: accepts, writes what waits, reads requests.
    /// Returns the requests read, in order, to be carried out by the caller.
    pub fn on_ready(&mut self, registry: &Registry, token: Token) -> Vec<(ClientId, Request)> {
        let Some(base) = self.base else {
            return Vec::new();
        };
        if token.0 == base {
            self.accept(registry, base);
            return Vec::new();
        }
        let i = token.0 - base - 1;
        self.flush(registry, i);
        let mut requests = Vec::new();
        self.read(registry, i, &mut requests);
        requests
    }

    fn accept(&mut self, registry: &Registry, base: usize) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("control socket {}: accept: {e}", self.path.display());
                    return;
                }
            };
            let slot = match self.free.pop() {
                Some(i) => i,
                None if self.clients.len() < self.limits.max_clients => {
                    self.clients.push(None);
                    self.clients.len() - 1
                }
                None => {
                    self.stats.dropped_clients += 1;
                    continue; // dropped: closed
                }
            };
            let token = Token(base + 1 + slot);
            if registry
                .register(&mut stream, token, Interest::READABLE)
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.clients[slot] = Some(Client {
                stream,
                reader: LineReader::new(self.limits.max_line),
                out: Vec::new(),
                out_pos: 0,
                want_write: false,
                watch: None,
                close_after: false,
            });
        }
    }

    /// Reads what client `i` sent and parses its requests; a watcher's further lines are
    /// read and dropped (it asked for a stream, not replies).
    fn read(&mut self, registry: &Registry, i: usize, requests: &mut Vec<(ClientId, Request)>) {
        let mut buf = [0u8; 16 * 1024];
        let mut eof = false;
        loop {
            let Some(Some(c)) = self.clients.get_mut(i) else {
                return;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => c.reader.push(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
            // Parse as we go, so a long stream of requests never piles up unread.
            self.parse(registry, i, requests);
        }
        self.parse(registry, i, requests);
        if eof {
            // What it asked before closing is still answered (a one-shot client shuts its
            // write side after the request); the connection closes once that is written.
            match self.clients.get_mut(i) {
                Some(Some(c)) if c.pending() > 0 || !requests.is_empty() => c.close_after = true,
                _ => self.close(registry, i),
            }
        }
    }

    fn parse(&mut self, registry: &Registry, i: usize, requests: &mut Vec<(ClientId, Request)>) {
        loop {
            let Some(Some(c)) = self.clients.get_mut(i) else {
                return;
            };
            let line = match c.reader.next_line() {
                None => return,
                Some(line) => line.map(<[u8]>::to_vec),
            };
            if c.watch.is_some() || c.close_after {
                continue;
            }
            self.stats.requests += 1;
            match line.map_err(|e| match e {
                DecodeError::TooLong { max } => format!("request over {max} bytes"),
                other => other.to_string(),
            }) {
                Ok(bytes) => match parse_request(&bytes) {
                    Ok(req) => requests.push((ClientId(i), req)),
                    Err(why) => self.error(registry, ClientId(i), &why),
                },
                Err(why) => {
                    // Framing is lost: answer, then close once the answer is written.
                    if let Some(Some(c)) = self.clients.get_mut(i) {
                        c.close_after = true;
                    }
                    self.error(registry, ClientId(i), &why);
                }
            }
        }
    }

    /// Answers `client` with `{"ok": false, "error": why}`.
    pub fn error(&mut self, registry: &Registry, client: ClientId, why: &str) {
        self.stats.errors += 1;
        let line = serde_json::json!({ "ok": false, "error": why }).to_string();
        self.reply(registry, client, &line);
    }

    /// Answers `client` with one line (`{"ok": ...}`). A client whose output is full is a
    /// reader too slow to serve: it is closed.
    pub fn reply(&mut self, registry: &Registry, client: ClientId, line: &str) {
        let i = client.0;
        let max = self.limits.max_output;
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        if c.pending() + line.len() + 1 > max.max(line.len() + 1) {
            self.stats.dropped_clients += 1;
            return self.close(registry, i);
        }
        push_line(c, line);
        self.flush(registry, i);
    }

    /// Makes `client` a watcher (after its `ok` reply).
    pub fn start_watch(&mut self, client: ClientId, mask: u16, name: Option<String>) {
        if let Some(Some(c)) = self.clients.get_mut(client.0) {
            c.watch = Some(Watch {
                mask,
                name,
                missed: 0,
            });
            self.watchers.push(client.0);
        }
    }

    /// One event for the watchers that want it: `line` is rendered only once, by the
    /// caller, and `name` is its application message name if it has one.
    pub fn broadcast(
        &mut self,
        registry: &Registry,
        category: Category,
        name: Option<&str>,
        line: &str,
    ) {
        let max = self.limits.max_output;
        for k in 0..self.watchers.len() {
            let Some(&i) = self.watchers.get(k) else {
                break;
            };
            let Some(Some(c)) = self.clients.get_mut(i) else {
                continue;
            };
            let pending = c.pending();
            let Some(w) = c.watch.as_mut() else {
                continue;
            };
            if w.mask & category.bit() == 0 || w.name.as_deref().is_some_and(|n| Some(n) != name) {
                continue;
            }
            let missed = w.missed;
            let notice = (missed > 0).then(|| dropped_line(missed));
            let need = line.len() + 1 + notice.as_ref().map_or(0, |n| n.len() + 1);
            if pending + need > max {
                w.missed += 1;
                self.stats.missed_events += 1;
                continue;
            }
            w.missed = 0;
            if let Some(n) = notice {
                push_line(c, &n);
            }
            push_line(c, line);
            self.flush(registry, i);
        }
    }

    /// Writes what client `i` has waiting, until done or `WouldBlock`.
    fn flush(&mut self, registry: &Registry, i: usize) {
        let Some(base) = self.base else {
            return;
        };
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        while c.out_pos < c.out.len() {
            match c.stream.write(c.out.get(c.out_pos..).unwrap_or_default()) {
                Ok(0) => return self.close(registry, i),
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(registry, i),
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
            if c.out.capacity() > 64 * 1024 {
                c.out.shrink_to(64 * 1024);
            }
            if c.close_after {
                return self.close(registry, i);
            }
        }
        let want = c.out_pos < c.out.len();
        if want != c.want_write {
            c.want_write = want;
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = registry.reregister(&mut c.stream, Token(base + 1 + i), interest);
        }
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(slot) = self.clients.get_mut(i) {
            if let Some(mut c) = slot.take() {
                let _ = registry.deregister(&mut c.stream);
                self.free.push(i);
            }
        }
        self.watchers.retain(|&w| w != i);
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn push_line(c: &mut Client, line: &str) {
    c.out.extend_from_slice(line.as_bytes());
    c.out.push(b'\n');
}

/// One request line, or why it is not one.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let Value::Object(m) = value else {
        return Err("not a JSON object".into());
    };
    let cmd = match m.get("cmd") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("\"cmd\" is not a string".into()),
        None => return Err("no \"cmd\"".into()),
    };
    Ok(match cmd {
        "publish" => Request::Publish {
            name: opt_string(&m, "name")?,
            data: opt_string(&m, "data")?.ok_or("publish needs \"data\" (a string)")?,
        },
        "watch" => {
            let mut mask = 0;
            match m.get("types") {
                None | Some(Value::Null) => {}
                Some(Value::Array(types)) => {
                    for t in types {
                        let name = t.as_str().ok_or("\"types\" holds a non-string")?;
                        let c = Category::parse(name).ok_or_else(|| {
                            let known: Vec<_> = Category::ALL.iter().map(|c| c.name()).collect();
                            format!("unknown type {name:?}: one of {}", known.join(", "))
                        })?;
                        mask |= c.bit();
                    }
                }
                Some(_) => return Err("\"types\" is not a list of strings".into()),
            }
            if mask == 0 {
                mask = Category::ALL.iter().fold(0, |m, c| m | c.bit());
            }
            Request::Watch {
                mask,
                name: opt_string(&m, "name")?,
            }
        }
        "members" => Request::Members,
        "info" => Request::Info,
        "leave" => Request::Leave,
        other => {
            return Err(format!(
                "unknown cmd {other:?}: one of publish, watch, members, info, leave"
            ))
        }
    })
}

fn opt_string(m: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{field}\" is not a string")),
    }
}
