//! Encoding: a [`Message`] to one JSON line, written by hand straight into the caller's
//! buffer (`ObjWriter` and `ListWriter` for the structure, small writers for numbers,
//! addresses, strings and the timestamp). Numbers, strings, addresses and the timestamp come
//! out exactly as serde_json and std's `Display` would write them.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::msg::{
    CommitSync, Decision, Endpoint, Entry, GossipBody, IdGroup, Message, RoleStatus, Status,
    VoteReq,
};

/// Appends `msg` as one JSON line (with its `\n`) to `out`; `ts` is the sender's wall clock
/// in unix seconds (informational; a non-finite value is written as `0`).
///
/// Written straight into `out`, with no intermediate `serde_json::Value` and no `fmt`
/// machinery on the hot path: this runs for every gossip copy a real node sends. Strings
/// that need escaping go through serde_json's escaper, so the line never holds a raw newline.
pub fn encode(msg: &Message, ts: f64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(msg.type_name().as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    let mut w = ObjWriter::open(out);
    write_payload(msg, &mut w);
    w.close();
    out.extend_from_slice(b",\"ts\":");
    write_ts(out, ts);
    out.extend_from_slice(b"}\n");
}

/// The length of the line [`encode`] writes for `msg` at `ts`, newline included. The hot
/// messages (a gossip and its ack with an IPv4 origin and sender and a text that needs no
/// escaping) are measured without writing them (a driver that counts the bytes of every
/// line it carries pays little); anything else is encoded into a scratch buffer.
pub fn encoded_len(msg: &Message, ts: f64) -> usize {
    let ts_len = || {
        let ms = (ts * 1000.0).round();
        if (0.0..FAST_TS_LIMIT).contains(&ts) && ms / 1000.0 == ts {
            let ms = ms as u64;
            let frac = match ms % 1000 {
                f if f % 100 == 0 => 1,
                f if f % 10 == 0 => 2,
                _ => 3,
            };
            digits(ms / 1000) + 1 + frac
        } else {
            let mut t = Vec::new();
            write_ts(&mut t, ts);
            t.len()
        }
    };
    match msg {
        Message::Gossip(g) if !g.body.is_app() => {
            let b = &g.body;
            if let (IpAddr::V4(ip), SocketAddr::V4(sender)) = (b.origin_ip, g.sender) {
                if !b.text.bytes().any(needs_escape) {
                    // {"type":"GOSSIP_MSG","payload":{"message":"","origin_ip":"",
                    // "msg_no":,"sender":"","hops":},"ts":}\n
                    let mut n = 98 + b.text.len() + v4_len(ip);
                    n += digits(u64::from(b.msg_no)) + v4_len(*sender.ip()) + 1;
                    n += digits(u64::from(sender.port())) + digits(u64::from(g.hops));
                    if let Some(port) = b.origin_port {
                        n += 15 + digits(u64::from(port)); // ,"origin_port":
                    }
                    return n + ts_len();
                }
            }
        }
        Message::GossipAck(a) => {
            // {"type":"GOSSIP_MSG","payload":{"accepted":,"duplicate":},"ts":}\n
            // (`APP_MSG` is three bytes shorter)
            let word = |v: bool| if v { 4 } else { 5 };
            let prune = if a.prune { 13 } else { 0 }; // ,"prune":true
            let kind = if a.app { 3 } else { 0 };
            return 65 + word(a.accepted) + word(a.duplicate) + prune + ts_len() - kind;
        }
        _ => {}
    }
    let mut out = Vec::new();
    encode(msg, ts, &mut out);
    out.len()
}

/// Decimal digits of `v`.
fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The length of an IPv4 address in dotted decimal.
fn v4_len(ip: std::net::Ipv4Addr) -> usize {
    3 + ip
        .octets()
        .iter()
        .map(|&o| digits(u64::from(o)))
        .sum::<usize>()
}

fn write_payload(msg: &Message, w: &mut ObjWriter<'_>) {
    match msg {
        Message::RegisterReq(m) => {
            w.endpoint_pair("peer_ip", "peer_port", m.peer);
            w.opt_u64("incarnation", m.incarnation);
        }
        Message::RegisterResult(m) => {
            w.str("proposal_id", &m.proposal_id);
            w.bool("success", m.success);
            w.u64("yes_votes", m.yes_votes.into());
            w.u64("quorum", m.quorum.into());
            w.opt_u64("incarnation", m.incarnation);
            if let Some(e) = &m.error {
                w.str("error", e);
            }
        }
        Message::RegisterVote(m) => write_vote_req(w, m, "peer_ip", "peer_port"),
        Message::DeadVote(m) => write_vote_req(w, m, "dead_ip", "dead_port"),
        Message::LeaveVote(m) => write_vote_req(w, m, "peer_ip", "peer_port"),
        Message::RegisterVoteResp(m) | Message::DeadVoteResp(m) | Message::LeaveVoteResp(m) => {
            w.str("action", "RESPONSE");
            w.str("proposal_id", &m.proposal_id);
            w.bool("vote", m.vote);
            w.endpoint("voter", m.voter);
            w.opt_u64("known_incarnation", m.known_incarnation);
        }
        Message::RegisterCommit(m) => write_commit(w, m, "peer_ip", "peer_port"),
        Message::DeadCommit(m) => write_commit(w, m, "dead_ip", "dead_port"),
        Message::LeaveCommit(m) => write_commit(w, m, "peer_ip", "peer_port"),
        Message::RegisterCommitAck | Message::DeadCommitAck | Message::LeaveCommitAck => {
            w.bool("ack", true)
        }
        Message::Leave(m) => {
            w.endpoint_pair("peer_ip", "peer_port", m.peer);
            w.u64("incarnation", m.incarnation);
        }
        Message::PeerListReq { requester } => w.str("requester", requester),
        Message::PeerListResp(m) => {
            w.endpoints("peers", &m.peers);
            w.endpoint("seed", m.seed);
            if !m.incarnations.is_empty() {
                let mut inner = w.object("incarnations");
                for (ep, n) in &m.incarnations {
                    inner.u64_key(*ep, *n);
                }
                inner.close();
            }
            w.opt_u64("total", m.total);
            if let Some((incarnation, status)) = m.requester_entry {
                let mut inner = w.object("requester_entry");
                inner.u64("incarnation", incarnation);
                inner.str("status", status_name(status));
                inner.close();
            }
        }
        Message::Hello(m) => {
            w.endpoint_pair("peer_ip", "peer_port", m.peer);
            w.u64("degree", m.degree.into());
            w.opt_u64("incarnation", m.incarnation);
        }
        Message::HelloAck(m) => {
            w.bool("accepted", m.accepted);
            w.endpoint_pair("peer_ip", "peer_port", m.peer);
            w.u64("degree", m.degree.into());
            w.opt_u64("incarnation", m.incarnation);
        }
        Message::Gossip(m) => {
            write_body(w, &m.body);
            w.endpoint("sender", m.sender);
            w.u64("hops", m.hops.into());
        }
        Message::GossipAck(m) => {
            w.bool("accepted", m.accepted);
            w.bool("duplicate", m.duplicate);
            if m.prune {
                w.bool("prune", true);
            }
        }
        Message::SuspectReq(m) => {
            w.endpoint_pair("dead_ip", "dead_port", m.suspect);
            w.endpoint("requester", m.requester);
        }
        Message::SuspectAck(m) => {
            w.endpoint("suspect", m.suspect);
            w.bool("alive", m.alive);
            w.endpoint("confirmer", m.confirmer);
        }
        Message::DeadReport(m) => {
            w.endpoint_pair("dead_ip", "dead_port", m.dead);
            w.ip("self_ip", m.self_ip);
            w.u64("timestamp", m.timestamp);
            w.endpoint("reporter", m.reporter);
            if let Some(text) = &m.text {
                w.str("text", text);
            }
            w.opt_u64("incarnation", m.incarnation);
            if !m.witnesses.is_empty() {
                w.endpoints("witnesses", &m.witnesses);
            }
        }
        Message::DeadResult(m) | Message::LeaveResult(m) => {
            w.str("proposal_id", &m.proposal_id);
            w.bool("success", m.success);
            w.u64("yes_votes", m.yes_votes.into());
            w.u64("quorum", m.quorum.into());
        }
        Message::Error { reason } => w.str("reason", reason),
        Message::Ping(m) => {
            w.endpoint("sender", m.sender);
            if let Some(detector) = &m.suspected_by {
                w.endpoint("suspected_by", **detector);
            }
        }
        Message::Pong(m) => {
            w.endpoint("responder", m.responder);
            w.opt_u64("degree", m.degree.map(u64::from));
            if m.leaving {
                w.bool("leaving", true);
            }
            w.opt_u64("incarnation", m.incarnation.map(|n| u64::from(n.get())));
        }
        Message::Confirm(m) => {
            w.endpoint("seed", m.seed);
            let mut list = w.list("facts");
            for f in &m.facts {
                list.sep();
                let mut obj = ObjWriter::open(list.out);
                obj.endpoint("peer", f.peer);
                obj.u64("incarnation", f.incarnation);
                obj.str("status", status_name(f.status));
                obj.close();
            }
            list.close();
        }
        Message::ConfirmResp(m) => {
            w.endpoint("seed", m.seed);
            let mut list = w.list("vouched");
            for v in &m.vouched {
                list.sep();
                list.out
                    .extend_from_slice(if *v { b"true" } else { b"false" });
            }
            list.close();
        }
        Message::SeedSync(m) => {
            w.endpoint("seed", m.seed);
            let mut list = w.list("buckets");
            for b in &m.buckets {
                list.u64(*b);
            }
            list.close();
            w.entries("entries", &m.entries);
            w.bool("reply", m.reply);
        }
        Message::Digest(m) => {
            w.endpoint("sender", m.sender);
            w.u64("first", m.first);
            let mut list = w.list("counts");
            for c in &m.counts {
                list.u64(u64::from(*c));
            }
            list.close();
            let mut list = w.list("hashes");
            for h in &m.hashes {
                list.u64(*h);
            }
            list.close();
        }
        Message::DigestResp(m) => {
            w.endpoint("responder", m.responder);
            write_id_groups(w, "ids", &m.ids);
        }
        Message::IHave(m) => {
            w.endpoint("sender", m.sender);
            write_id_groups(w, "ids", &m.ids);
        }
        Message::IHaveAck => w.bool("ack", true),
        Message::Pull(m) => {
            w.endpoint("sender", m.sender);
            write_id_groups(w, "ids", &m.ids);
            if m.graft {
                w.bool("graft", true);
            }
        }
        Message::PullResp(m) => {
            w.endpoint("responder", m.responder);
            let mut list = w.list("bodies");
            for b in &m.bodies {
                list.sep();
                let mut obj = ObjWriter::open(list.out);
                write_body(&mut obj, b);
                obj.close();
            }
            list.close();
        }
        Message::StatusReq => {}
        Message::StatusResp(m) => {
            w.endpoint("node", m.node);
            match &m.role {
                RoleStatus::Seed(s) => {
                    w.str("role", "seed");
                    w.entries("entries", &s.entries);
                    w.u64("pending", s.pending.into());
                }
                RoleStatus::Peer(s) => {
                    w.str("role", "peer");
                    w.bool("registered", s.registered);
                    w.u64("incarnation", s.incarnation);
                    w.endpoints("neighbours", &s.neighbours);
                    w.u64("known_peers", s.known_peers.into());
                }
            }
            let mut inner = w.object("counters");
            for (name, n) in &m.counters {
                inner.counter(name, *n);
            }
            inner.close();
        }
    }
}

/// The fields of a gossip its origin wrote, as in `GOSSIP_MSG` (and `APP_MSG`).
fn write_body(w: &mut ObjWriter<'_>, b: &GossipBody) {
    w.str("message", &b.text);
    w.ip("origin_ip", b.origin_ip);
    w.opt_u64("origin_port", b.origin_port.map(u64::from));
    w.u64("msg_no", b.msg_no.into());
    if let Some(app) = &b.app {
        if let Some(name) = &app.name {
            w.str("name", name);
        }
        w.str("data", &app.data);
        w.u64("published_ms", app.published_ms);
    }
}

/// Gossip ids as `[[second, key, ...], ...]`.
fn write_id_groups(w: &mut ObjWriter<'_>, name: &'static str, groups: &[IdGroup]) {
    let mut list = w.list(name);
    for g in groups {
        list.sep();
        let mut inner = ListWriter::open(list.out);
        inner.u64(g.second);
        for k in &g.keys {
            inner.u64(*k);
        }
        inner.close();
    }
    list.close();
}

fn write_vote_req(w: &mut ObjWriter<'_>, m: &VoteReq, ip: &'static str, port: &'static str) {
    w.str("action", "REQUEST");
    w.str("proposal_id", &m.proposal_id);
    w.endpoint_pair(ip, port, m.peer);
    w.opt_u64("incarnation", m.incarnation);
    w.endpoint("proposer", m.proposer);
}

fn write_commit(w: &mut ObjWriter<'_>, m: &CommitSync, ip: &'static str, port: &'static str) {
    w.str("proposal_id", &m.proposal_id);
    w.str(
        "decision",
        match m.decision {
            Decision::Commit => "COMMIT",
            Decision::Abort => "ABORT",
        },
    );
    w.endpoint_pair(ip, port, m.peer);
    w.endpoint("source_seed", m.source_seed);
    w.opt_u64("incarnation", m.incarnation);
    if !m.votes.is_empty() {
        w.endpoints("votes", &m.votes);
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Alive => "ALIVE",
        Status::Removed => "REMOVED",
        Status::Left => "LEFT",
    }
}

/// Serializes a plain value (string, number) into `out`. Writing into a `Vec` cannot fail and
/// these types always serialize, so the result carries no information.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Writes `s` as a JSON string. Most strings we send (keys, gossip texts, endpoints) need no
/// escaping and are copied as they are; the rest go through serde_json's escaper, which
/// escapes exactly `"`, `\` and the control characters below U+0020.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(needs_escape) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, s);
    }
}

/// The bytes serde_json escapes in a string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes the decimal digits of `v`, as `Display` would.
pub(super) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        start -= 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Writes an IP address as `Display` would (dotted decimal for IPv4; IPv6 is rare here and
/// keeps std's formatting of its compressed form).
pub(super) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Byte by byte: a dozen pushes cost less than as many tiny copies.
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Writes `"ip:port"` as `Display` would (`"[v6]:port"` for IPv6, with its scope id). The
/// result never needs JSON escaping (digits, hex, `.:[]%`).
pub(super) fn write_endpoint(out: &mut Vec<u8>, ep: Endpoint) {
    out.push(b'"');
    match ep {
        SocketAddr::V4(v4) => {
            write_ip(out, IpAddr::V4(*v4.ip()));
            out.push(b':');
            write_u64(out, v4.port().into());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{ep}");
        }
    }
    out.push(b'"');
}

/// Timestamps below this many seconds (the year 2242) that are whole milliseconds are
/// written digit by digit; there an `f64` is precise to far below a millisecond, so the
/// digits are exactly serde_json's shortest round-trip form.
const FAST_TS_LIMIT: f64 = 8_589_934_592.0;

/// Writes the `ts` value: serde_json's form of `ts`, or `0` if it is not finite. Our drivers
/// send whole milliseconds (`1767225600.25`), written without float formatting.
pub(super) fn write_ts(out: &mut Vec<u8>, ts: f64) {
    let ms = (ts * 1000.0).round();
    if (0.0..FAST_TS_LIMIT).contains(&ts) && ms / 1000.0 == ts {
        let ms = ms as u64;
        write_u64(out, ms / 1000);
        out.push(b'.');
        let frac = ms % 1000;
        let digits = [frac / 100, frac / 10 % 10, frac % 10].map(|d| b'0' + d as u8);
        // Trailing zeros dropped, but one digit always stays: `2.5`, `2.0`.
        let keep = match frac {
            f if f % 100 == 0 => 1,
            f if f % 10 == 0 => 2,
            _ => 3,
        };
        out.extend_from_slice(digits.get(..keep).unwrap_or_default());
    } else if ts.is_finite() {
        write_json(out, &ts);
    } else {
        out.push(b'0');
    }
}

/// Writes the members of one JSON object; keys are our own constants (no escaping needed)
/// except the counter names (escaped) and endpoints (escape-free).
struct ObjWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjWriter<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjWriter { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A member's key: one of our field names, which never need escaping.
    fn key(&mut self, key: &'static str) {
        debug_assert!(!key.bytes().any(needs_escape), "{key}");
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &'static str, v: &str) {
        self.key(key);
        write_str(self.out, v);
    }

    fn ip(&mut self, key: &'static str, ip: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        write_ip(self.out, ip);
        self.out.push(b'"');
    }

    fn endpoint(&mut self, key: &'static str, ep: Endpoint) {
        self.key(key);
        write_endpoint(self.out, ep);
    }

    fn endpoint_pair(&mut self, ip_key: &'static str, port_key: &'static str, ep: Endpoint) {
        self.ip(ip_key, ep.ip());
        self.u64(port_key, ep.port().into());
    }

    fn bool(&mut self, key: &'static str, v: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    fn u64(&mut self, key: &'static str, v: u64) {
        self.key(key);
        write_u64(self.out, v);
    }

    /// A member keyed by a counter's name (escaped as needed).
    fn counter(&mut self, name: &str, v: u64) {
        self.sep();
        write_str(self.out, name);
        self.out.push(b':');
        write_u64(self.out, v);
    }

    /// A member keyed by an endpoint (`incarnations`).
    fn u64_key(&mut self, key: Endpoint, v: u64) {
        self.sep();
        write_endpoint(self.out, key);
        self.out.push(b':');
        write_u64(self.out, v);
    }

    fn opt_u64(&mut self, key: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.u64(key, v);
        }
    }

    fn object(&mut self, key: &'static str) -> ObjWriter<'_> {
        self.key(key);
        ObjWriter::open(self.out)
    }

    fn list(&mut self, key: &'static str) -> ListWriter<'_> {
        self.key(key);
        self.out.push(b'[');
        ListWriter {
            out: self.out,
            first: true,
        }
    }

    fn endpoints(&mut self, key: &'static str, eps: &[Endpoint]) {
        let mut list = self.list(key);
        for ep in eps {
            list.endpoint(*ep);
        }
        list.close();
    }

    fn entries(&mut self, key: &'static str, entries: &[Entry]) {
        let mut list = self.list(key);
        for e in entries {
            list.sep();
            let mut obj = ObjWriter::open(list.out);
            obj.endpoint("peer", e.peer);
            obj.u64("incarnation", e.incarnation);
            obj.str("status", status_name(e.status));
            obj.endpoints("votes", &e.votes);
            obj.close();
        }
        list.close();
    }
}

/// Writes the items of one JSON array.
struct ListWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl ListWriter<'_> {
    /// A list nested in another: `[` now, `]` at `close`.
    fn open(out: &mut Vec<u8>) -> ListWriter<'_> {
        out.push(b'[');
        ListWriter { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn u64(&mut self, v: u64) {
        self.sep();
        write_u64(self.out, v);
    }

    fn endpoint(&mut self, ep: Endpoint) {
        self.sep();
        write_endpoint(self.out, ep);
    }

    fn close(self) {
        self.out.push(b']');
    }
}
