//! The client side of the control socket (`docs/CONTROL.md`): a connection that sends
//! request lines built with serde_json and reads bounded reply and event lines, and the human
//! forms of replies and events that `gossipctl` prints. Kept out of the binary so later
//! subcommands and other tools share one reading of the protocol.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gossip_core::msg::{Endpoint, Entry, RoleStatus, Status, StatusResp};
use serde_json::{json, Map, Value};

/// Longest reply or event line read: a seed's whole Peer List fits.
pub const MAX_REPLY_LINE: u64 = 64 * 1024 * 1024;

/// Longest request line a node reads; a longer one is refused and closes the connection, so
/// it is caught here with a clearer message.
pub const MAX_REQUEST_LINE: usize = 1024 * 1024;

/// One connection to a node's control socket.
pub struct Control {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Option<Duration>,
}

/// A reply line: the raw text (for `--json`) and its fields.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The line as the node sent it, without its newline.
    pub line: String,
    /// The reply's fields, `ok` included.
    pub fields: Map<String, Value>,
}

impl Reply {
    /// The node's reason when it refused (`"ok": false`), `None` when it accepted.
    pub fn refusal(&self) -> Option<String> {
        match self.fields.get("ok") {
            Some(Value::Bool(true)) => None,
            _ => Some(
                self.str("error")
                    .map_or_else(|| "(no reason given)".to_string(), printable),
            ),
        }
    }

    /// The string field `key`, if there is one.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }
}

impl Control {
    /// Connects to the socket at `path`; `timeout` bounds every later read and write (`None`:
    /// wait forever). A Unix connect does not block, so it needs no timeout of its own.
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Control, String> {
        let shown = path.display();
        let stream = UnixStream::connect(path).map_err(|e| {
            format!("cannot connect to {shown}: {e} (is the node running with --control {shown}?)")
        })?;
        let writer = stream.try_clone().map_err(|e| format!("{shown}: {e}"))?;
        let control = Control {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            timeout,
        };
        control.set_timeout(timeout)?;
        Ok(control)
    }

    /// Changes how long reads and writes may wait (`None`: forever), e.g. once `watch` is
    /// acknowledged and events may be minutes apart.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), String> {
        self.writer
            .set_read_timeout(timeout)
            .and_then(|()| self.writer.set_write_timeout(timeout))
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Sends `request` as one line.
    pub fn send(&mut self, request: &Value) -> Result<(), String> {
        let mut line = request.to_string();
        if line.len() > MAX_REQUEST_LINE {
            return Err(format!(
                "the request is {} bytes, over the {MAX_REQUEST_LINE} a node reads",
                line.len()
            ));
        }
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.io_error("send", &e))
    }

    /// The next line (without its newline), or `None` when the node closed the connection.
    pub fn read_line(&mut self) -> Result<Option<String>, String> {
        let mut buf = Vec::new();
        (&mut self.reader)
            .take(MAX_REPLY_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io_error("read", &e))?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() as u64 > MAX_REPLY_LINE {
            return Err(format!(
                "{}: a line over {} MiB, the most this client reads",
                self.path.display(),
                MAX_REPLY_LINE >> 20
            ));
        } else if buf.is_empty() {
            return Ok(None);
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| format!("{}: a line that is not UTF-8", self.path.display()))
    }

    /// Sends `request` and reads its reply, which must be a JSON object with `ok`.
    pub fn request(&mut self, request: &Value) -> Result<Reply, String> {
        self.send(request)?;
        let line = self
            .read_line()?
            .ok_or_else(|| format!("{} closed without a reply", self.path.display()))?;
        let fields = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(fields)) if fields.get("ok").is_some_and(Value::is_boolean) => fields,
            Ok(_) => {
                return Err(format!(
                    "{}: a reply without \"ok\": {}",
                    self.path.display(),
                    excerpt(&line)
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{}: a reply that is not JSON ({e}): {}",
                    self.path.display(),
                    excerpt(&line)
                ))
            }
        };
        Ok(Reply { line, fields })
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> String {
        let shown = self.path.display();
        match (e.kind(), self.timeout) {
            (ErrorKind::WouldBlock | ErrorKind::TimedOut, Some(t)) => {
                format!("{shown}: {what}: nothing within {} ms", t.as_millis())
            }
            _ => format!("{shown}: {what}: {e}"),
        }
    }
}

/// The `publish` request; `name` is left out when not given.
pub fn publish_request(data: &str, name: Option<&str>) -> Value {
    let mut request = json!({"cmd": "publish", "data": data});
    if let (Some(name), Some(fields)) = (name, request.as_object_mut()) {
        fields.insert("name".into(), Value::from(name));
    }
    request
}

/// The `watch` request; no `types` means all, no `name` means every name.
pub fn watch_request(types: &[String], name: Option<&str>) -> Value {
    let mut request = json!({"cmd": "watch"});
    if let Some(fields) = request.as_object_mut() {
        if !types.is_empty() {
            fields.insert("types".into(), Value::from(types.to_vec()));
        }
        if let Some(name) = name {
            fields.insert("name".into(), Value::from(name));
        }
    }
    request
}

/// A request with no fields but its command (`members`, `info`).
pub fn simple_request(cmd: &str) -> Value {
    json!({ "cmd": cmd })
}

/// What a human sees of one event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventView {
    /// An event, as one line for stdout.
    Line(String),
    /// The watcher fell behind and missed this many events (the count as the node wrote it).
    Dropped(String),
}

/// The human form of an event line: `HH:MM:SS.mmm type event ...` (UTC, from `at_ms`), a
/// compact form for the events people watch most, `key=value` for every other field. A line
/// that is not a JSON object is shown as it is.
pub fn event_view(line: &str) -> EventView {
    let Ok(Value::Object(ev)) = serde_json::from_str::<Value>(line) else {
        return EventView::Line(printable(line));
    };
    let kind = ev.get("type").and_then(Value::as_str).unwrap_or("?");
    if kind == "dropped" {
        return EventView::Dropped(ev.get("count").map_or("?".into(), show));
    }
    let name = ev.get("event").and_then(Value::as_str).unwrap_or("?");
    let mut used = vec!["type", "event", "node", "at_ms"];
    let mut out = format!(
        "{} {} {}",
        ev.get("at_ms")
            .and_then(Value::as_u64)
            .map_or("--:--:--.---".into(), clock),
        printable(kind),
        printable(name)
    );
    let mut tail = None;
    let s = |key: &str| ev.get(key).and_then(Value::as_str).map(printable);
    match (kind, name) {
        ("gossip", "delivered" | "published") if ev.contains_key("id") => {
            out.push(' ');
            out.push_str(&ev.get("id").map_or(String::new(), show));
            used.push("id");
            match ev.get("name") {
                Some(n @ Value::String(_)) => {
                    out.push_str(&format!(" name={}", show(n)));
                    used.push("name");
                }
                Some(Value::Null) => used.push("name"),
                _ => {}
            }
            if let Some(origin) = s("origin") {
                out.push_str(&format!(" from origin {origin}"));
                used.push("origin");
            }
            // The neighbour it came through, when that is not the origin itself.
            if let Some(via) = s("from") {
                if s("origin").as_ref() != Some(&via) {
                    out.push_str(&format!(" via {via}"));
                }
                used.push("from");
            }
            if ev.get("by_repair") == Some(&Value::Bool(true)) {
                out.push_str(" by repair");
                used.extend(["by_repair", "hops"]);
            } else if let Some(hops) = ev.get("hops").and_then(Value::as_u64) {
                out.push_str(&format!(" hops={hops}"));
                used.extend(["by_repair", "hops"]);
            }
            if let Some(age) = ev.get("age_ms").and_then(Value::as_i64) {
                out.push_str(&format!(" age={age}ms"));
                used.push("age_ms");
            }
            if let Some(bytes) = ev.get("bytes").and_then(Value::as_u64) {
                out.push_str(&format!(" ({bytes} bytes)"));
                used.push("bytes");
            }
            if let Some(data) = s("data") {
                tail = Some(data);
                used.push("data");
            }
        }
        ("link", _) if ev.contains_key("peer") => {
            out.push(' ');
            out.push_str(&ev.get("peer").map_or(String::new(), show));
            used.push("peer");
            if let Some(d) = ev.get("their_degree").and_then(Value::as_u64) {
                out.push_str(&format!(" (their degree {d})"));
                used.push("their_degree");
            }
        }
        _ => {}
    }
    for (key, value) in &ev {
        if !used.contains(&key.as_str()) {
            out.push_str(&format!(" {}={}", printable(key), show(value)));
        }
    }
    if let Some(tail) = tail {
        out.push_str(": ");
        out.push_str(&tail);
    }
    EventView::Line(out)
}

/// `HH:MM:SS.mmm` of a unix time in milliseconds, in UTC (the node's `at_ms`; no time zone
/// database is needed, and nodes on several machines line up).
pub fn clock(at_ms: u64) -> String {
    let ms = at_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Text from the node made safe for one terminal line: as it is unless it holds control
/// characters (a newline would split an event, an escape sequence would drive the
/// terminal), then quoted and escaped as JSON.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        Value::from(text).to_string()
    } else {
        text.to_string()
    }
}

/// A field's value for `key=value`: a plain word as it is, anything else as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// The start of a long line, for an error message.
fn excerpt(line: &str) -> String {
    let cut: String = line.chars().take(200).collect();
    let more = if cut.len() < line.len() { "..." } else { "" };
    format!("{}{more}", printable(&cut))
}

/// The human summary of an `info` reply: role and node, standing, neighbours, then settings
/// and counters one per line, sorted; fields this client does not know are listed last.
pub fn info_text(reply: &Map<String, Value>) -> String {
    let s = |key: &str| reply.get(key).and_then(Value::as_str).map(printable);
    let mut out = format!(
        "{} {}\n",
        s("role").unwrap_or_else(|| "node".into()),
        s("node").unwrap_or_else(|| "?".into())
    );
    let mut used = vec!["ok", "role", "node"];
    if let Some(registered) = reply.get("registered").and_then(Value::as_bool) {
        let inc = reply.get("incarnation").map_or("?".into(), show);
        let word = if registered {
            "registered"
        } else {
            "not registered"
        };
        out.push_str(&format!("  {word} (incarnation {inc})\n"));
        used.extend(["registered", "incarnation"]);
    }
    for (key, label) in [("seeds", "seeds"), ("neighbours", "neighbours")] {
        if let Some(list) = reply.get(key).and_then(Value::as_array) {
            let names: Vec<String> = list.iter().map(show).collect();
            out.push_str(&format!(
                "  {label} ({}): {}\n",
                names.len(),
                names.join(", ")
            ));
            used.push(key);
        }
    }
    if let Some(n) = reply.get("known_peers") {
        out.push_str(&format!("  known peers: {}\n", show(n)));
        used.push("known_peers");
    }
    if let Some(entries) = reply.get("entries") {
        let text = match entries {
            Value::Object(by_status) => by_status
                .iter()
                .map(|(k, v)| format!("{}={}", printable(k), show(v)))
                .collect::<Vec<_>>()
                .join(" "),
            other => show(other),
        };
        out.push_str(&format!("  entries: {text}\n"));
        used.push("entries");
    }
    for key in ["settings", "counters"] {
        if let Some(Value::Object(map)) = reply.get(key) {
            out.push_str(&format!("  {key}:\n"));
            let mut rows: Vec<(&String, &Value)> = map.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                out.push_str(&format!("    {:<width$}  {}\n", printable(k), show(v)));
            }
            used.push(key);
        }
    }
    for (key, value) in reply {
        if !used.contains(&key.as_str()) {
            out.push_str(&format!("  {}: {}\n", printable(key), show(value)));
        }
    }
    out
}

/// The entries of a `members` reply (`votes` only at a seed). Statuses are read in either
/// case: the control socket writes `alive`, the peer protocol `ALIVE`.
pub fn parse_members(reply: &Map<String, Value>) -> Result<Vec<Entry>, String> {
    let Some(list) = reply.get("members").and_then(Value::as_array) else {
        return Err("the members reply has no \"members\" list".into());
    };
    let mut entries = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let bad = |why: &str| format!("members[{i}]: {why}");
        let peer = endpoint(item.get("peer")).ok_or_else(|| bad("no valid \"peer\""))?;
        let incarnation = item
            .get("incarnation")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no valid \"incarnation\""))?;
        let status = match item.get("status").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("alive") => Status::Alive,
            Some(s) if s.eq_ignore_ascii_case("removed") => Status::Removed,
            _ => return Err(bad("no valid \"status\"")),
        };
        let votes = match item.get("votes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(votes)) => votes
                .iter()
                .map(|v| endpoint(Some(v)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("a vote that is not ip:port"))?,
            Some(_) => return Err(bad("\"votes\" is not a list")),
        };
        entries.push(Entry {
            peer,
            incarnation,
            status,
            votes,
        });
    }
    Ok(entries)
}

/// The seeds a peer's `members` reply names, as text (resolved by the caller, which names a
/// bad one).
pub fn reply_seeds(reply: &Map<String, Value>) -> Vec<String> {
    string_list(reply, "seeds")
}

/// The items of the list `field` of a reply, as shown to people (none if absent).
pub fn string_list(reply: &Map<String, Value>, field: &str) -> Vec<String> {
    reply
        .get(field)
        .and_then(Value::as_array)
        .map(|list| list.iter().map(show).collect())
        .unwrap_or_default()
}

fn endpoint(value: Option<&Value>) -> Option<Endpoint> {
    value.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// One row of the seeds' view: a Peer List entry and how many seeds hold exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRow {
    /// The peer.
    pub peer: Endpoint,
    /// Its incarnation in these seeds' lists.
    pub incarnation: u64,
    /// Its status there.
    pub status: Status,
    /// How many of the seeds that answered list it so.
    pub seeds: usize,
}

/// Tallies the Peer Lists of the seeds that answered: one row per distinct
/// `(peer, incarnation, status)`, by peer, the highest entry first (the one every seed
/// converges to). Answers from nodes that are not seeds are not counted.
pub fn seeds_view(answers: &[StatusResp]) -> Vec<ViewRow> {
    let mut tally: std::collections::BTreeMap<(Endpoint, std::cmp::Reverse<(u64, Status)>), usize> =
        std::collections::BTreeMap::new();
    for answer in answers {
        if let RoleStatus::Seed(seed) = &answer.role {
            for e in &seed.entries {
                *tally
                    .entry((e.peer, std::cmp::Reverse((e.incarnation, e.status))))
                    .or_default() += 1;
            }
        }
    }
    tally
        .into_iter()
        .map(
            |((peer, std::cmp::Reverse((incarnation, status))), seeds)| ViewRow {
                peer,
                incarnation,
                status,
                seeds,
            },
        )
        .collect()
}

/// The seeds' view as a table: a summary line (peers by their highest entry), then one row
/// per entry with `seeds listing it/seeds that answered`.
pub fn seeds_view_text(rows: &[ViewRow], answered: usize, asked: usize) -> String {
    let mut alive = 0;
    let mut removed = 0;
    let mut left = 0;
    let mut last = None;
    for row in rows {
        if last != Some(row.peer) {
            match row.status {
                Status::Alive => alive += 1,
                Status::Removed => removed += 1,
                Status::Left => left += 1,
            }
            last = Some(row.peer);
        }
    }
    let left = if left > 0 {
        format!(", {left} left")
    } else {
        String::new()
    };
    let mut out = format!(
        "seeds' view ({answered} of {asked} seeds answered): {alive} alive, {removed} removed{left}\n"
    );
    if !rows.is_empty() {
        out.push_str(&format!(
            "  {:<22} {:>11}  {:<8} SEEDS\n",
            "PEER", "INCARNATION", "STATUS"
        ));
    }
    for row in rows {
        out.push_str(&format!(
            "  {:<22} {:>11}  {:<8} {}/{answered}\n",
            row.peer.to_string(),
            row.incarnation,
            crate::status_word(row.status),
            row.seeds
        ));
    }
    out
}
