//! The wire format of `PROTOCOL.md`: one UTF-8 JSON object per line,
//! `{"type": ..., "payload": {...}, "ts": <unix seconds>}`, plus [`LineReader`], the framing
//! both drivers use.
//!
//! # Decoding rules
//!
//! * The line must be valid UTF-8 and one JSON object with a string `type` and an object
//!   `payload` ([`DecodeError::Syntax`] otherwise). A trailing `\r` and surrounding whitespace
//!   are tolerated; `ts` is optional and ignored whatever its type.
//! * Unknown payload fields are ignored. A JSON `null` counts as an absent field, so a
//!   sender that writes `None` for an optional field is understood.
//! * A required field that is absent gives [`DecodeError::MissingField`]; a field present with
//!   the wrong JSON type or an impossible value gives [`DecodeError::BadField`]. The same holds
//!   for **optional extension fields**: absent means `None` / default, present but wrong is
//!   an error (a node never silently drops a field it was sent).
//! * Ports are JSON integers in `1..=65535`; counts (`degree`, `msg_no`, `yes_votes`,
//!   `quorum`, `incarnation`, `hops`, ...) are non-negative JSON integers that fit their Rust
//!   type (a float such as `3.0` is rejected). Booleans must be JSON booleans.
//! * Endpoints are `"ip:port"` strings (`"[::1]:5000"` for IPv6) or an `*_ip` + `*_port` pair.
//!   An IPv6 scope id (`"[fe80::1%2]:5000"`) survives only the string form; IPv6 flow info
//!   is never sent.
//! * Lists hold at most [`MAX_LIST`] items; JSON nesting deeper than 128 levels is a
//!   [`DecodeError::Syntax`] (serde_json's recursion limit), never a stack overflow.
//!
//! Leniencies for the reference implementation, whose replies are not always complete:
//! `PEER_LIST_REQ.requester` may be any string and defaults to `""`; a `REGISTER_COMMIT` or
//! `SEED_DEAD_COMMIT` result may omit `proposal_id` (→ `""`), `yes_votes` and `quorum` (→ 0);
//! `DEAD_REPORT.timestamp` may be a float (truncated to whole seconds); a gossip ack may omit
//! `duplicate` (→ false) or `accepted` (→ true) as long as one of them is present.
//!
//! # Telling kinds apart that share a `type`
//!
//! | `type` | rule |
//! |---|---|
//! | `REGISTER_COMMIT`, `SEED_DEAD_COMMIT` | `ack` present → the ack; else `decision` present → the commit sync; else the result (`success` required) |
//! | `REGISTER_VOTE`, `SEED_DEAD_VOTE` | `action`: `"REQUEST"` → vote request, `"RESPONSE"` → vote reply |
//! | `GOSSIP_MSG` | `message` present → the gossip; else `accepted` or `duplicate` present → the ack |
//! | `SEED_SYNC` | `reply` (bool, default `false`) |
//! | `SEED_CONFIRM` | `facts` present → the request; else `vouched` present → the reply |
//!
//! # Extensions of this project
//!
//! Message types (a reference node answers them with `ERROR`, which still proves it is up):
//!
//! * `PING` `{"sender": "ip:port"}` → `PONG` `{"responder": "ip:port", "degree": n?,
//!   "incarnation": n?}`: application-level liveness probe; `degree` (optional) feeds
//!   preferential attachment, `incarnation` (optional, peers) is what the responder holds or
//!   registers for.
//! * `SEED_CONFIRM` `{"seed": "ip:port", "facts": [Fact]}` → `SEED_CONFIRM`
//!   `{"seed": "ip:port", "vouched": [bool]}`: a seed asks the voters named in a certificate
//!   whether they vouch for the changes (`Fact` is `{"peer", "incarnation", "status"}`, at
//!   most 256 per request); one answer per fact, in order.
//! * `SEED_SYNC` `{"seed": "ip:port", "buckets": [u64; 64], "entries": [Entry], "reply": bool}`:
//!   seed-to-seed pull anti-entropy of the Peer List. The request carries the sender's bucket
//!   digests and no entries; the reply (`reply: true`) carries the responder's digests and
//!   its entries of the buckets that differ.
//! * `STATUS_REQ` `{}` → `STATUS_RESP`
//!   `{"node": "ip:port", "role": "seed", "entries": [Entry], "pending": n, "counters": {"name": n}}`
//!   or `{"node": .., "role": "peer", "registered": bool, "incarnation": n,
//!   "neighbours": ["ip:port"], "known_peers": n, "counters": {..}}`: read-only view.
//!
//! where `Entry` is `{"peer": "ip:port", "incarnation": n, "status": "ALIVE"|"REMOVED",
//! "votes": ["ip:port"]}`.
//!
//! Optional payload fields on reference messages (a reference node ignores them):
//!
//! * `incarnation` (u64) on `REGISTER_REQ`, `REGISTER_COMMIT` (result and sync),
//!   `REGISTER_VOTE`/`SEED_DEAD_VOTE` requests, `SEED_DEAD_COMMIT` sync, `HELLO`, `HELLO_ACK`,
//!   `DEAD_REPORT`: which incarnation of the peer is meant.
//! * `votes` (`["ip:port"]`) on `REGISTER_COMMIT` / `SEED_DEAD_COMMIT` syncs: the quorum
//!   certificate.
//! * `known_incarnation` (u64) on vote responses: on a no, the higher incarnation the voter
//!   knows.
//! * `origin_port` (port) and `hops` (u32, default 0) on `GOSSIP_MSG`.
//! * `requester_entry` (`{"incarnation": n, "status": "ALIVE"|"REMOVED"}`), `incarnations`
//!   (`{"ip:port": n}`) and `total` (u64) on `PEER_LIST_RESP`.
//! * `witnesses` (`["ip:port"]`) and `text` (string, required by the assignment but optional
//!   here) on `DEAD_REPORT`.
//! * `error` (string) on the `REGISTER_COMMIT` result (the reference sends it on failure).
//!
//! `docs/PROTOCOL-EXTENSIONS.md` shows every message with a JSON example.
//!
//! # Cluster key
//!
//! Optionally every line carries an HMAC-SHA256 prefix, `!<kid>.<ts_ms>.<nonce>.<bind>.<mac>
//! <json>`, where `<json>` is exactly the line above: [`auth`] seals and opens such lines
//! (and its [`auth::AuthError`] becomes [`DecodeError::Auth`]). Without a key nothing
//! changes: [`encode`] and [`decode`] read and write plain JSON lines.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::{Map, Value};

pub mod auth;
mod fast;

use crate::msg::{
    CommitSync, ConfirmReq, ConfirmResp, DeadReport, DeadResult, Decision, Endpoint, Entry, Fact,
    Gossip, GossipAck, GossipBody, Hello, HelloAck, Message, PeerListResp, PeerStatus, Ping, Pong,
    RegisterReq, RegisterResult, RoleStatus, SeedStatus, SeedSync, Status, StatusResp, SuspectAck,
    SuspectReq, VoteReq, VoteResp, MAX_CONFIRM_FACTS,
};

/// Longest line accepted by default, newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Most items accepted in one payload list or map (`peers`, `entries`, `votes`, `buckets`,
/// `counters`, ...). A line is already capped in bytes; this caps the work and memory one
/// message can demand after decoding.
pub const MAX_LIST: usize = 100_000;

/// Why a line is not a valid message. Its `Display` is the `ERROR` reason sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The line is longer than the limit.
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Not UTF-8, not JSON, or not a JSON object with a string `type` and object `payload`.
    Syntax(String),
    /// `type` names no message we know.
    UnknownType(String),
    /// A required payload field is absent.
    MissingField {
        /// The message type.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A payload field has the wrong JSON type or an impossible value (port 0, negative).
    BadField {
        /// The message type.
        kind: &'static str,
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The line failed the cluster-key check ([`auth::open`]): no MAC, an unknown key, a bad
    /// MAC, a stale timestamp, a replay, or a reply not bound to its request.
    Auth(auth::AuthError),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLong { max } => write!(f, "line longer than {max} bytes"),
            DecodeError::Syntax(why) => write!(f, "malformed message: {why}"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t:?}"),
            DecodeError::MissingField { kind, field } => {
                write!(f, "{kind}: missing field {field:?}")
            }
            DecodeError::BadField {
                kind,
                field,
                expected,
            } => {
                write!(f, "{kind}: field {field:?} must be {expected}")
            }
            DecodeError::Auth(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decodes one line (without its `\n`; a trailing `\r` is tolerated).
pub fn decode(line: &[u8]) -> Result<Message, DecodeError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .map_err(|e| DecodeError::Syntax(format!("invalid UTF-8: {e}")))?;
    if let Some(hot) = fast::decode(text) {
        return Ok(hot);
    }
    decode_general(text)
}

/// Decodes any message through a `serde_json::Value` tree.
fn decode_general(text: &str) -> Result<Message, DecodeError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::Syntax(e.to_string()))?;
    let Value::Object(mut envelope) = value else {
        return Err(syntax("not a JSON object"));
    };
    let kind = match envelope.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(syntax("\"type\" is not a string")),
        None => return Err(syntax("no \"type\"")),
    };
    // Resolve the static name first so errors can carry it without borrowing the line.
    let Some(kind) = known_type(kind) else {
        return Err(DecodeError::UnknownType(kind.to_string()));
    };
    let payload = match envelope.remove("payload") {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(syntax("\"payload\" is not an object")),
        None => return Err(syntax("no \"payload\"")),
    };
    decode_payload(
        kind,
        &Payload {
            kind,
            map: &payload,
        },
    )
}

fn syntax(why: &str) -> DecodeError {
    DecodeError::Syntax(why.to_string())
}

/// Every wire `type` we know, as a `'static` name.
const TYPES: &[&str] = &[
    "REGISTER_REQ",
    "REGISTER_COMMIT",
    "REGISTER_VOTE",
    "PEER_LIST_REQ",
    "PEER_LIST_RESP",
    "HELLO",
    "HELLO_ACK",
    "GOSSIP_MSG",
    "SUSPECT_REQ",
    "SUSPECT_ACK",
    "DEAD_REPORT",
    "SEED_DEAD_COMMIT",
    "SEED_DEAD_VOTE",
    "ERROR",
    "PING",
    "PONG",
    "SEED_SYNC",
    "SEED_CONFIRM",
    "STATUS_REQ",
    "STATUS_RESP",
];

fn known_type(name: &str) -> Option<&'static str> {
    TYPES.iter().copied().find(|t| *t == name)
}

fn decode_payload(kind: &'static str, p: &Payload<'_>) -> Result<Message, DecodeError> {
    Ok(match kind {
        "REGISTER_REQ" => Message::RegisterReq(Box::new(RegisterReq {
            peer: p.endpoint_pair("peer_ip", "peer_port")?,
            incarnation: p.opt_u64("incarnation")?,
        })),
        "REGISTER_COMMIT" => {
            if p.has("ack") {
                Message::RegisterCommitAck
            } else if p.has("decision") {
                Message::RegisterCommit(Box::new(p.commit_sync("peer_ip", "peer_port")?))
            } else {
                Message::RegisterResult(Box::new(RegisterResult {
                    proposal_id: p.opt_str("proposal_id")?.unwrap_or_default(),
                    success: p.bool("success")?,
                    yes_votes: p.opt_u32("yes_votes")?.unwrap_or(0),
                    quorum: p.opt_u32("quorum")?.unwrap_or(0),
                    incarnation: p.opt_u64("incarnation")?,
                    error: p.opt_str("error")?,
                }))
            }
        }
        "REGISTER_VOTE" => match p.action()? {
            Action::Request => Message::RegisterVote(Box::new(p.vote_req("peer_ip", "peer_port")?)),
            Action::Response => Message::RegisterVoteResp(Box::new(p.vote_resp()?)),
        },
        "SEED_DEAD_VOTE" => match p.action()? {
            Action::Request => Message::DeadVote(Box::new(p.vote_req("dead_ip", "dead_port")?)),
            Action::Response => Message::DeadVoteResp(Box::new(p.vote_resp()?)),
        },
        "SEED_DEAD_COMMIT" => {
            if p.has("ack") {
                Message::DeadCommitAck
            } else if p.has("decision") {
                Message::DeadCommit(Box::new(p.commit_sync("dead_ip", "dead_port")?))
            } else {
                Message::DeadResult(DeadResult {
                    proposal_id: p.opt_str("proposal_id")?.unwrap_or_default(),
                    success: p.bool("success")?,
                    yes_votes: p.opt_u32("yes_votes")?.unwrap_or(0),
                    quorum: p.opt_u32("quorum")?.unwrap_or(0),
                })
            }
        }
        "PEER_LIST_REQ" => Message::PeerListReq {
            requester: p.opt_str("requester")?.unwrap_or_default(),
        },
        "PEER_LIST_RESP" => Message::PeerListResp(Box::new(PeerListResp {
            peers: p.endpoints("peers")?,
            seed: p.endpoint("seed")?,
            incarnations: p.incarnations("incarnations")?,
            total: p.opt_u64("total")?,
            requester_entry: p.requester_entry("requester_entry")?,
        })),
        "HELLO" => Message::Hello(Box::new(Hello {
            peer: p.endpoint_pair("peer_ip", "peer_port")?,
            degree: p.u32("degree")?,
            incarnation: p.opt_u64("incarnation")?,
        })),
        "HELLO_ACK" => Message::HelloAck(Box::new(HelloAck {
            accepted: p.bool("accepted")?,
            peer: p.endpoint_pair("peer_ip", "peer_port")?,
            degree: p.u32("degree")?,
            incarnation: p.opt_u64("incarnation")?,
        })),
        "GOSSIP_MSG" => {
            if p.has("message") {
                Message::Gossip(Gossip {
                    body: Arc::new(GossipBody {
                        text: Arc::from(p.str_ref("message")?),
                        origin_ip: p.ip("origin_ip")?,
                        origin_port: p.opt_port("origin_port")?,
                        msg_no: p.u32("msg_no")?,
                    }),
                    sender: p.endpoint("sender")?,
                    hops: p.opt_u32("hops")?.unwrap_or(0),
                })
            } else if p.has("accepted") || p.has("duplicate") {
                Message::GossipAck(GossipAck {
                    accepted: p.opt_bool("accepted")?.unwrap_or(true),
                    duplicate: p.opt_bool("duplicate")?.unwrap_or(false),
                })
            } else {
                return Err(p.missing("message"));
            }
        }
        "SUSPECT_REQ" => Message::SuspectReq(Box::new(SuspectReq {
            suspect: p.endpoint_pair("dead_ip", "dead_port")?,
            requester: p.endpoint("requester")?,
        })),
        "SUSPECT_ACK" => Message::SuspectAck(Box::new(SuspectAck {
            suspect: p.endpoint("suspect")?,
            alive: p.bool("alive")?,
            confirmer: p.endpoint("confirmer")?,
        })),
        "DEAD_REPORT" => Message::DeadReport(Box::new(DeadReport {
            dead: p.endpoint_pair("dead_ip", "dead_port")?,
            self_ip: p.ip("self_ip")?,
            timestamp: p.seconds("timestamp")?,
            reporter: p.endpoint("reporter")?,
            text: p.opt_str("text")?,
            incarnation: p.opt_u64("incarnation")?,
            witnesses: p.opt_endpoints("witnesses")?,
        })),
        "ERROR" => Message::Error {
            reason: p.string("reason")?,
        },
        "PING" => Message::Ping(Ping {
            sender: p.endpoint("sender")?,
        }),
        "PONG" => Message::Pong(Pong {
            responder: p.endpoint("responder")?,
            degree: p.opt_u32("degree")?,
            incarnation: p.claim("incarnation")?,
        }),
        "SEED_CONFIRM" => {
            if p.has("facts") {
                let facts = p.facts("facts")?;
                if facts.len() > MAX_CONFIRM_FACTS {
                    return Err(p.bad("facts", "at most 256 facts"));
                }
                Message::Confirm(Box::new(ConfirmReq {
                    seed: p.endpoint("seed")?,
                    facts,
                }))
            } else if p.has("vouched") {
                Message::ConfirmResp(Box::new(ConfirmResp {
                    seed: p.endpoint("seed")?,
                    vouched: p.bools("vouched")?,
                }))
            } else {
                return Err(p.missing("facts"));
            }
        }
        "SEED_SYNC" => Message::SeedSync(Box::new(SeedSync {
            seed: p.endpoint("seed")?,
            buckets: p.u64_list("buckets")?,
            entries: p.entries("entries")?,
            reply: p.opt_bool("reply")?.unwrap_or(false),
        })),
        "STATUS_REQ" => Message::StatusReq,
        "STATUS_RESP" => Message::StatusResp(Box::new(StatusResp {
            node: p.endpoint("node")?,
            role: match p.str_ref("role")? {
                "seed" => RoleStatus::Seed(SeedStatus {
                    entries: p.entries("entries")?,
                    pending: p.u32("pending")?,
                }),
                "peer" => RoleStatus::Peer(PeerStatus {
                    registered: p.bool("registered")?,
                    incarnation: p.u64("incarnation")?,
                    neighbours: p.endpoints("neighbours")?,
                    known_peers: p.u32("known_peers")?,
                }),
                _ => return Err(p.bad("role", "\"seed\" or \"peer\"")),
            },
            counters: p.counters("counters")?,
        })),
        other => return Err(DecodeError::UnknownType(other.to_string())),
    })
}

enum Action {
    Request,
    Response,
}

/// A payload object being read, with the message type for error reports.
struct Payload<'a> {
    kind: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Payload<'a> {
    /// The field's value; `null` counts as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    fn missing(&self, field: &'static str) -> DecodeError {
        DecodeError::MissingField {
            kind: self.kind,
            field,
        }
    }

    fn bad(&self, field: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::BadField {
            kind: self.kind,
            field,
            expected,
        }
    }

    /// Reads an optional field with `parse`, which returns `None` for a bad value.
    fn opt<T>(
        &self,
        field: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or_else(|| self.bad(field, expected)),
        }
    }

    /// Reads a required field with `parse`.
    fn req<T>(
        &self,
        field: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, DecodeError> {
        self.opt(field, expected, parse)?
            .ok_or_else(|| self.missing(field))
    }

    fn str_ref(&self, field: &'static str) -> Result<&'a str, DecodeError> {
        self.req(field, "a string", Value::as_str)
    }

    fn string(&self, field: &'static str) -> Result<String, DecodeError> {
        self.str_ref(field).map(str::to_string)
    }

    fn opt_str(&self, field: &'static str) -> Result<Option<String>, DecodeError> {
        self.opt(field, "a string", |v| v.as_str().map(str::to_string))
    }

    fn bool(&self, field: &'static str) -> Result<bool, DecodeError> {
        self.req(field, "a boolean", Value::as_bool)
    }

    fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, DecodeError> {
        self.opt(field, "a boolean", Value::as_bool)
    }

    fn u64(&self, field: &'static str) -> Result<u64, DecodeError> {
        self.req(field, "a non-negative integer", Value::as_u64)
    }

    fn opt_u64(&self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        self.opt(field, "a non-negative integer", Value::as_u64)
    }

    fn u32(&self, field: &'static str) -> Result<u32, DecodeError> {
        self.req(field, U32, as_u32)
    }

    fn opt_u32(&self, field: &'static str) -> Result<Option<u32>, DecodeError> {
        self.opt(field, U32, as_u32)
    }

    fn opt_port(&self, field: &'static str) -> Result<Option<u16>, DecodeError> {
        self.opt(field, PORT, as_port)
    }

    /// Whole unix seconds; the reference sends a float, truncated here.
    fn seconds(&self, field: &'static str) -> Result<u64, DecodeError> {
        self.req(field, "a non-negative number", |v| {
            v.as_u64().or_else(|| {
                let f = v.as_f64()?;
                // `as` saturates; the range check keeps 1e300 from becoming u64::MAX silently.
                (0.0..18_446_744_073_709_551_616.0)
                    .contains(&f)
                    .then_some(f as u64)
            })
        })
    }

    fn ip(&self, field: &'static str) -> Result<IpAddr, DecodeError> {
        self.req(field, "an IP address", |v| parse_ip(v.as_str()?))
    }

    fn endpoint(&self, field: &'static str) -> Result<Endpoint, DecodeError> {
        self.req(field, ENDPOINT, as_endpoint)
    }

    /// An endpoint sent as an `*_ip` + `*_port` pair.
    fn endpoint_pair(
        &self,
        ip_field: &'static str,
        port_field: &'static str,
    ) -> Result<Endpoint, DecodeError> {
        let ip = self.ip(ip_field)?;
        let port = self.req(port_field, PORT, as_port)?;
        Ok(SocketAddr::new(ip, port))
    }

    /// Reads a list of at most [`MAX_LIST`] items, each parsed by `item`.
    fn opt_list<T>(
        &self,
        field: &'static str,
        expected: &'static str,
        item: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() <= MAX_LIST => items
                .iter()
                .map(|v| item(v).ok_or_else(|| self.bad(field, expected)))
                .collect::<Result<Vec<T>, _>>()
                .map(Some),
            Some(_) => Err(self.bad(field, expected)),
        }
    }

    fn endpoints(&self, field: &'static str) -> Result<Vec<Endpoint>, DecodeError> {
        self.opt_list(field, ENDPOINT_LIST, as_endpoint)?
            .ok_or_else(|| self.missing(field))
    }

    fn opt_endpoints(&self, field: &'static str) -> Result<Vec<Endpoint>, DecodeError> {
        Ok(self
            .opt_list(field, ENDPOINT_LIST, as_endpoint)?
            .unwrap_or_default())
    }

    fn u64_list(&self, field: &'static str) -> Result<Vec<u64>, DecodeError> {
        self.opt_list(field, "a list of non-negative integers", Value::as_u64)?
            .ok_or_else(|| self.missing(field))
    }

    fn entries(&self, field: &'static str) -> Result<Vec<Entry>, DecodeError> {
        self.opt_list(field, ENTRY_LIST, as_entry)?
            .ok_or_else(|| self.missing(field))
    }

    fn facts(&self, field: &'static str) -> Result<Vec<Fact>, DecodeError> {
        self.opt_list(field, FACT_LIST, as_fact)?
            .ok_or_else(|| self.missing(field))
    }

    /// An optional incarnation claim: `1..=u32::MAX`, `0` read as no claim.
    fn claim(&self, field: &'static str) -> Result<Option<NonZeroU32>, DecodeError> {
        match self.opt_u64(field)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(NonZeroU32::new)
                .map_err(|_| self.bad(field, "an integer in 0..=4294967295")),
        }
    }

    fn bools(&self, field: &'static str) -> Result<Vec<bool>, DecodeError> {
        self.opt_list(field, "a list of booleans", Value::as_bool)?
            .ok_or_else(|| self.missing(field))
    }

    /// `{"ip:port": n}`, returned sorted by endpoint (JSON object order carries no meaning).
    fn incarnations(&self, field: &'static str) -> Result<Vec<(Endpoint, u64)>, DecodeError> {
        let expected = "an object of \"ip:port\": non-negative integer";
        let Some(v) = self.get(field) else {
            return Ok(Vec::new());
        };
        let map = v
            .as_object()
            .filter(|m| m.len() <= MAX_LIST)
            .ok_or_else(|| self.bad(field, expected))?;
        let mut out = map
            .iter()
            .map(|(k, n)| {
                let ep = parse_endpoint(k);
                ep.zip(n.as_u64()).ok_or_else(|| self.bad(field, expected))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        // Two spellings of one endpoint: keep one, deterministically.
        out.dedup_by_key(|(ep, _)| *ep);
        Ok(out)
    }

    fn requester_entry(&self, field: &'static str) -> Result<Option<(u64, Status)>, DecodeError> {
        self.opt(
            field,
            "{\"incarnation\": n, \"status\": \"ALIVE\"|\"REMOVED\"}",
            |v| {
                let m = v.as_object()?;
                Some((
                    m.get("incarnation")?.as_u64()?,
                    as_status(m.get("status")?)?,
                ))
            },
        )
    }

    /// `{"name": n}` counters, returned sorted by name.
    fn counters(&self, field: &'static str) -> Result<Vec<(String, u64)>, DecodeError> {
        let expected = "an object of name: non-negative integer";
        let map = self.req(field, expected, |v| {
            v.as_object().filter(|m| m.len() <= MAX_LIST)
        })?;
        let mut out = map
            .iter()
            .map(|(k, n)| {
                n.as_u64()
                    .map(|n| (k.clone(), n))
                    .ok_or_else(|| self.bad(field, expected))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        Ok(out)
    }

    fn action(&self) -> Result<Action, DecodeError> {
        match self.str_ref("action")? {
            "REQUEST" => Ok(Action::Request),
            "RESPONSE" => Ok(Action::Response),
            _ => Err(self.bad("action", "\"REQUEST\" or \"RESPONSE\"")),
        }
    }

    fn vote_req(
        &self,
        ip_field: &'static str,
        port_field: &'static str,
    ) -> Result<VoteReq, DecodeError> {
        Ok(VoteReq {
            proposal_id: self.string("proposal_id")?,
            peer: self.endpoint_pair(ip_field, port_field)?,
            incarnation: self.opt_u64("incarnation")?,
            proposer: self.endpoint("proposer")?,
        })
    }

    fn vote_resp(&self) -> Result<VoteResp, DecodeError> {
        Ok(VoteResp {
            proposal_id: self.string("proposal_id")?,
            vote: self.bool("vote")?,
            voter: self.endpoint("voter")?,
            known_incarnation: self.opt_u64("known_incarnation")?,
        })
    }

    fn commit_sync(
        &self,
        ip_field: &'static str,
        port_field: &'static str,
    ) -> Result<CommitSync, DecodeError> {
        Ok(CommitSync {
            proposal_id: self.string("proposal_id")?,
            decision: self.req("decision", "\"COMMIT\" or \"ABORT\"", |v| {
                match v.as_str()? {
                    "COMMIT" => Some(Decision::Commit),
                    "ABORT" => Some(Decision::Abort),
                    _ => None,
                }
            })?,
            peer: self.endpoint_pair(ip_field, port_field)?,
            source_seed: self.endpoint("source_seed")?,
            incarnation: self.opt_u64("incarnation")?,
            votes: self.opt_endpoints("votes")?,
        })
    }
}

const U32: &str = "a non-negative 32-bit integer";
const PORT: &str = "an integer port in 1..=65535";
const ENDPOINT: &str = "an \"ip:port\" string with a port in 1..=65535";
const ENDPOINT_LIST: &str = "a list of \"ip:port\" strings";
const ENTRY_LIST: &str = "a list of {\"peer\", \"incarnation\", \"status\", \"votes\"} objects";
const FACT_LIST: &str = "a list of {\"peer\", \"incarnation\", \"status\"} objects";

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn as_port(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p != 0)
}

/// `"ip:port"` with a port in `1..=65535`, in std's syntax.
fn parse_endpoint(s: &str) -> Option<Endpoint> {
    parse_v4_endpoint(s)
        .or_else(|| s.parse::<SocketAddr>().ok())
        .filter(|a| a.port() != 0)
}

/// An IP address in std's syntax.
fn parse_ip(s: &str) -> Option<IpAddr> {
    match parse_v4_prefix(s.as_bytes()) {
        Some((ip, [])) => Some(IpAddr::V4(ip)),
        _ => s.parse().ok(),
    }
}

/// The common `a.b.c.d:port`, read by hand (std's parser is general and several times
/// slower). It accepts a subset of std's syntax with the same meaning, so `None` leaves the
/// string to std's parser and the result never differs from std's.
fn parse_v4_endpoint(s: &str) -> Option<SocketAddr> {
    let (ip, rest) = parse_v4_prefix(s.as_bytes())?;
    let digits = rest.strip_prefix(b":")?;
    let (port, len) = leading_number(digits, 5)?;
    if len != digits.len() {
        return None;
    }
    Some(SocketAddr::new(IpAddr::V4(ip), u16::try_from(port).ok()?))
}

/// A dotted-quad IPv4 address at the start of `s`, as std reads it (1 to 3 digits per
/// octet, no leading zero, at most 255), and the bytes after it.
fn parse_v4_prefix(s: &[u8]) -> Option<(std::net::Ipv4Addr, &[u8])> {
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            (s.get(at) == Some(&b'.')).then_some(())?;
            at += 1;
        }
        let (value, len) = leading_number(s.get(at..)?, 3)?;
        *octet = u8::try_from(value).ok()?;
        at += len;
    }
    Some((octets.into(), s.get(at..)?))
}

/// The decimal number at the start of `s` (1 to `max_digits` digits, no leading zero) and
/// its length.
fn leading_number(s: &[u8], max_digits: usize) -> Option<(u32, usize)> {
    let mut value = 0u32;
    let mut len = 0;
    while let Some(&d @ b'0'..=b'9') = s.get(len) {
        if len == max_digits || (len == 1 && value == 0) {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
        len += 1;
    }
    (len > 0).then_some((value, len))
}

fn as_endpoint(v: &Value) -> Option<Endpoint> {
    parse_endpoint(v.as_str()?)
}

fn as_status(v: &Value) -> Option<Status> {
    match v.as_str()? {
        "ALIVE" => Some(Status::Alive),
        "REMOVED" => Some(Status::Removed),
        _ => None,
    }
}

fn as_fact(v: &Value) -> Option<Fact> {
    let m = v.as_object()?;
    Some(Fact {
        peer: as_endpoint(m.get("peer")?)?,
        incarnation: m.get("incarnation")?.as_u64()?,
        status: as_status(m.get("status")?)?,
    })
}

fn as_entry(v: &Value) -> Option<Entry> {
    let m = v.as_object()?;
    let votes = m.get("votes")?.as_array().filter(|a| a.len() <= MAX_LIST)?;
    Some(Entry {
        peer: as_endpoint(m.get("peer")?)?,
        incarnation: m.get("incarnation")?.as_u64()?,
        status: as_status(m.get("status")?)?,
        votes: votes.iter().map(as_endpoint).collect::<Option<Vec<_>>>()?,
    })
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

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
        Message::RegisterVoteResp(m) | Message::DeadVoteResp(m) => {
            w.str("action", "RESPONSE");
            w.str("proposal_id", &m.proposal_id);
            w.bool("vote", m.vote);
            w.endpoint("voter", m.voter);
            w.opt_u64("known_incarnation", m.known_incarnation);
        }
        Message::RegisterCommit(m) => write_commit(w, m, "peer_ip", "peer_port"),
        Message::DeadCommit(m) => write_commit(w, m, "dead_ip", "dead_port"),
        Message::RegisterCommitAck | Message::DeadCommitAck => w.bool("ack", true),
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
            w.str("message", &m.body.text);
            w.ip("origin_ip", m.body.origin_ip);
            w.opt_u64("origin_port", m.body.origin_port.map(u64::from));
            w.u64("msg_no", m.body.msg_no.into());
            w.endpoint("sender", m.sender);
            w.u64("hops", m.hops.into());
        }
        Message::GossipAck(m) => {
            w.bool("accepted", m.accepted);
            w.bool("duplicate", m.duplicate);
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
        Message::DeadResult(m) => {
            w.str("proposal_id", &m.proposal_id);
            w.bool("success", m.success);
            w.u64("yes_votes", m.yes_votes.into());
            w.u64("quorum", m.quorum.into());
        }
        Message::Error { reason } => w.str("reason", reason),
        Message::Ping(m) => w.endpoint("sender", m.sender),
        Message::Pong(m) => {
            w.endpoint("responder", m.responder);
            w.opt_u64("degree", m.degree.map(u64::from));
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
fn write_str(out: &mut Vec<u8>, s: &str) {
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
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
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
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
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
fn write_endpoint(out: &mut Vec<u8>, ep: Endpoint) {
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
fn write_ts(out: &mut Vec<u8>, ts: f64) {
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

// ---------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------

/// Splits a byte stream into lines, with bounded memory.
///
/// Feed it whatever the socket gave ([`LineReader::push`]), then take lines until
/// [`LineReader::next_line`] returns `None`. Lines come without their `\n`; a trailing `\r`
/// is left for [`decode`], which tolerates it. Blank lines (only spaces, tabs or `\r`) are
/// skipped: they are not requests and get no reply.
///
/// A line longer than `max` yields one [`DecodeError::TooLong`] in its place, blank or not
/// (its content is never buffered to look); its bytes are dropped as they arrive, so a peer sending 100 MB without a newline costs at most `max`
/// bytes of buffer plus one chunk. Each pushed byte is scanned for `\n` once.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    head: usize,
    /// `buf[head..scanned]` holds no `\n` (already searched).
    scanned: usize,
    /// Start of the last, unterminated line in `buf`.
    tail: usize,
    /// Where in `buf` an over-long line was cut out; its `TooLong` is still owed.
    too_long_at: Option<usize>,
    /// The current line is over-long: drop bytes until its `\n`.
    discarding: bool,
    max: usize,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new(DEFAULT_MAX_LINE)
    }
}

impl LineReader {
    /// A reader that accepts lines of at most `max` bytes, newline excluded.
    pub fn new(max: usize) -> Self {
        LineReader {
            buf: Vec::new(),
            head: 0,
            scanned: 0,
            tail: 0,
            too_long_at: None,
            discarding: false,
            max,
        }
    }

    /// Bytes received but not yet returned as lines.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Appends bytes as they came from the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.discarding {
            match find_newline(bytes) {
                None => return,
                Some(i) => {
                    self.discarding = false;
                    bytes = bytes.get(i + 1..).unwrap_or_default();
                }
            }
        }
        if bytes.is_empty() {
            return;
        }
        self.compact();
        let old_len = self.buf.len();
        self.buf.extend_from_slice(bytes);
        if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
            self.tail = old_len + last + 1;
        }
        if self.buf.len() - self.tail > self.max {
            // The unterminated line is already too long: cut it out, owe one TooLong.
            self.buf.truncate(self.tail);
            self.too_long_at = Some(self.tail);
            self.discarding = true;
        }
    }

    /// Moves the unreturned bytes to the front, so the buffer never grows with what was
    /// already consumed.
    fn compact(&mut self) {
        if self.head == 0 {
            return;
        }
        self.buf.drain(..self.head);
        self.scanned = self.scanned.saturating_sub(self.head);
        self.tail = self.tail.saturating_sub(self.head);
        self.too_long_at = self.too_long_at.map(|at| at.saturating_sub(self.head));
        self.head = 0;
    }

    /// The next complete line, `Err(TooLong)` in place of an over-long one, or `None` until
    /// more bytes arrive.
    pub fn next_line(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let (start, end) = match self.locate(false)? {
            Ok(range) => range,
            Err(e) => return Some(Err(e)),
        };
        self.buf.get(start..end).map(Ok)
    }

    /// At end of stream: like [`LineReader::next_line`], but a final line without `\n` is
    /// returned too (a sender may close right after writing). Call until `None`.
    pub fn finish(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let (start, end) = match self.locate(true)? {
            Ok(range) => range,
            Err(e) => return Some(Err(e)),
        };
        self.buf.get(start..end).map(Ok)
    }

    /// Finds the next line and consumes it, returning its range in `buf`.
    fn locate(&mut self, at_eof: bool) -> Option<Result<(usize, usize), DecodeError>> {
        loop {
            if self.too_long_at == Some(self.head) {
                self.too_long_at = None;
                return Some(Err(DecodeError::TooLong { max: self.max }));
            }
            let limit = self
                .too_long_at
                .filter(|&at| at >= self.head)
                .unwrap_or(self.buf.len());
            let from = self.scanned.max(self.head);
            let found = match self
                .buf
                .get(from..limit)
                .and_then(find_newline)
                .map(|i| from + i)
            {
                Some(newline) => {
                    let start = self.head;
                    self.head = newline + 1;
                    self.scanned = self.head;
                    (start, newline, newline - start)
                }
                None if at_eof && (self.head < limit) => {
                    let start = self.head;
                    self.head = limit;
                    self.scanned = limit;
                    if self.too_long_at.is_none() {
                        self.tail = limit;
                    }
                    (start, limit, limit - start)
                }
                None => {
                    self.scanned = limit;
                    return None;
                }
            };
            let (start, end, len) = found;
            if len > self.max {
                return Some(Err(DecodeError::TooLong { max: self.max }));
            }
            let line = self.buf.get(start..end).unwrap_or_default();
            if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                continue;
            }
            return Some(Ok((start, end)));
        }
    }
}

/// The first `\n` in `bytes`. Eight bytes are tested at a time (a word holds a `\n` when
/// `word ^ 0x0a0a..` has a zero byte): every byte read passes through here once.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'\n'));
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    let rest = bytes.get(offset..).unwrap_or_default();
    rest.iter().position(|&b| b == b'\n').map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Result<Message, DecodeError> {
        decode(s.as_bytes())
    }

    fn line(kind: &str, payload: &str) -> String {
        format!(r#"{{"type": "{kind}", "payload": {payload}, "ts": 1767225600.25}}"#)
    }

    fn roundtrip(m: &Message) {
        let mut out = Vec::new();
        encode(m, 1767225600.25, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let body = out.strip_suffix(b"\n").unwrap();
        assert_eq!(
            decode(body).as_ref(),
            Ok(m),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn protocol_md_example_decodes() {
        let l = r#"{"type": "REGISTER_REQ", "payload": {"peer_ip": "127.0.0.1", "peer_port": 6001}, "ts": 1767225600.25}"#;
        let m = Message::RegisterReq(Box::new(RegisterReq {
            peer: ep("127.0.0.1:6001"),
            incarnation: None,
        }));
        assert_eq!(dec(l), Ok(m.clone()));
        assert_eq!(dec(&format!("  {l} \r")), Ok(m.clone()));
        roundtrip(&m);
    }

    #[test]
    fn reference_style_lines_decode() {
        let cases: Vec<(String, Message)> = vec![
            (
                line(
                    "REGISTER_COMMIT",
                    r#"{"proposal_id": "p1", "success": true, "yes_votes": 2, "quorum": 2}"#,
                ),
                Message::RegisterResult(Box::new(RegisterResult {
                    proposal_id: "p1".into(),
                    success: true,
                    yes_votes: 2,
                    quorum: 2,
                    incarnation: None,
                    error: None,
                })),
            ),
            (
                line(
                    "REGISTER_COMMIT",
                    r#"{"success": false, "error": "no quorum"}"#,
                ),
                Message::RegisterResult(Box::new(RegisterResult {
                    proposal_id: String::new(),
                    success: false,
                    yes_votes: 0,
                    quorum: 0,
                    incarnation: None,
                    error: Some("no quorum".into()),
                })),
            ),
            (
                line(
                    "REGISTER_VOTE",
                    r#"{"action": "REQUEST", "proposal_id": "p", "peer_ip": "10.0.0.1", "peer_port": 6001, "proposer": "10.0.0.2:5000"}"#,
                ),
                Message::RegisterVote(Box::new(VoteReq {
                    proposal_id: "p".into(),
                    peer: ep("10.0.0.1:6001"),
                    incarnation: None,
                    proposer: ep("10.0.0.2:5000"),
                })),
            ),
            (
                line(
                    "REGISTER_VOTE",
                    r#"{"action": "RESPONSE", "proposal_id": "p", "vote": false, "voter": "10.0.0.3:5000"}"#,
                ),
                Message::RegisterVoteResp(Box::new(VoteResp {
                    proposal_id: "p".into(),
                    vote: false,
                    voter: ep("10.0.0.3:5000"),
                    known_incarnation: None,
                })),
            ),
            (
                line(
                    "REGISTER_COMMIT",
                    r#"{"proposal_id": "p", "decision": "ABORT", "peer_ip": "10.0.0.1", "peer_port": 6001, "source_seed": "10.0.0.2:5000"}"#,
                ),
                Message::RegisterCommit(Box::new(CommitSync {
                    proposal_id: "p".into(),
                    decision: Decision::Abort,
                    peer: ep("10.0.0.1:6001"),
                    source_seed: ep("10.0.0.2:5000"),
                    incarnation: None,
                    votes: vec![],
                })),
            ),
            (
                line("REGISTER_COMMIT", r#"{"ack": true}"#),
                Message::RegisterCommitAck,
            ),
            (
                line("PEER_LIST_REQ", r#"{"requester": "127.0.0.1"}"#),
                Message::PeerListReq {
                    requester: "127.0.0.1".into(),
                },
            ),
            (
                line("PEER_LIST_REQ", "{}"),
                Message::PeerListReq {
                    requester: String::new(),
                },
            ),
            (
                line(
                    "PEER_LIST_RESP",
                    r#"{"peers": ["127.0.0.1:6001", "[::1]:6002"], "seed": "127.0.0.1:5000"}"#,
                ),
                Message::PeerListResp(Box::new(PeerListResp {
                    peers: vec![ep("127.0.0.1:6001"), ep("[::1]:6002")],
                    seed: ep("127.0.0.1:5000"),
                    incarnations: vec![],
                    total: None,
                    requester_entry: None,
                })),
            ),
            (
                line(
                    "HELLO",
                    r#"{"peer_ip": "127.0.0.1", "peer_port": 6001, "degree": 3}"#,
                ),
                Message::Hello(Box::new(Hello {
                    peer: ep("127.0.0.1:6001"),
                    degree: 3,
                    incarnation: None,
                })),
            ),
            (
                line(
                    "HELLO_ACK",
                    r#"{"accepted": true, "peer_ip": "::1", "peer_port": 6002, "degree": 0}"#,
                ),
                Message::HelloAck(Box::new(HelloAck {
                    accepted: true,
                    peer: ep("[::1]:6002"),
                    degree: 0,
                    incarnation: None,
                })),
            ),
            (
                line(
                    "GOSSIP_MSG",
                    r#"{"message": "1767225600:127.0.0.1:1", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:6001"}"#,
                ),
                Message::Gossip(Gossip {
                    body: Arc::new(GossipBody {
                        text: "1767225600:127.0.0.1:1".into(),
                        origin_ip: "127.0.0.1".parse().unwrap(),
                        origin_port: None,
                        msg_no: 1,
                    }),
                    sender: ep("127.0.0.1:6001"),
                    hops: 0,
                }),
            ),
            (
                line("GOSSIP_MSG", r#"{"accepted": true, "duplicate": true}"#),
                Message::GossipAck(GossipAck {
                    accepted: true,
                    duplicate: true,
                }),
            ),
            (
                line("GOSSIP_MSG", r#"{"accepted": false}"#),
                Message::GossipAck(GossipAck {
                    accepted: false,
                    duplicate: false,
                }),
            ),
            (
                line(
                    "SUSPECT_REQ",
                    r#"{"dead_ip": "127.0.0.1", "dead_port": 6003, "requester": "127.0.0.1:6001"}"#,
                ),
                Message::SuspectReq(Box::new(SuspectReq {
                    suspect: ep("127.0.0.1:6003"),
                    requester: ep("127.0.0.1:6001"),
                })),
            ),
            (
                line(
                    "SUSPECT_ACK",
                    r#"{"suspect": "127.0.0.1:6003", "alive": false, "confirmer": "127.0.0.1:6002"}"#,
                ),
                Message::SuspectAck(Box::new(SuspectAck {
                    suspect: ep("127.0.0.1:6003"),
                    alive: false,
                    confirmer: ep("127.0.0.1:6002"),
                })),
            ),
            (
                line(
                    "DEAD_REPORT",
                    r#"{"dead_ip": "127.0.0.1", "dead_port": 6003, "self_ip": "127.0.0.1", "timestamp": 1767225600.9, "reporter": "127.0.0.1:6001", "text": "Dead Node:127.0.0.1:6003:1767225600:127.0.0.1"}"#,
                ),
                Message::DeadReport(Box::new(DeadReport {
                    dead: ep("127.0.0.1:6003"),
                    self_ip: "127.0.0.1".parse().unwrap(),
                    timestamp: 1767225600,
                    reporter: ep("127.0.0.1:6001"),
                    text: Some("Dead Node:127.0.0.1:6003:1767225600:127.0.0.1".into()),
                    incarnation: None,
                    witnesses: vec![],
                })),
            ),
            (
                line(
                    "SEED_DEAD_COMMIT",
                    r#"{"proposal_id": "d", "success": true, "yes_votes": 3, "quorum": 2}"#,
                ),
                Message::DeadResult(DeadResult {
                    proposal_id: "d".into(),
                    success: true,
                    yes_votes: 3,
                    quorum: 2,
                }),
            ),
            (
                line(
                    "SEED_DEAD_VOTE",
                    r#"{"action": "REQUEST", "proposal_id": "d", "dead_ip": "127.0.0.1", "dead_port": 6003, "proposer": "127.0.0.1:5000"}"#,
                ),
                Message::DeadVote(Box::new(VoteReq {
                    proposal_id: "d".into(),
                    peer: ep("127.0.0.1:6003"),
                    incarnation: None,
                    proposer: ep("127.0.0.1:5000"),
                })),
            ),
            (
                line(
                    "SEED_DEAD_VOTE",
                    r#"{"action": "RESPONSE", "proposal_id": "d", "vote": true, "voter": "127.0.0.1:5001", "known_incarnation": null}"#,
                ),
                Message::DeadVoteResp(Box::new(VoteResp {
                    proposal_id: "d".into(),
                    vote: true,
                    voter: ep("127.0.0.1:5001"),
                    known_incarnation: None,
                })),
            ),
            (
                line(
                    "SEED_DEAD_COMMIT",
                    r#"{"proposal_id": "d", "decision": "COMMIT", "dead_ip": "127.0.0.1", "dead_port": 6003, "source_seed": "127.0.0.1:5000", "votes": ["127.0.0.1:5000", "127.0.0.1:5001"]}"#,
                ),
                Message::DeadCommit(Box::new(CommitSync {
                    proposal_id: "d".into(),
                    decision: Decision::Commit,
                    peer: ep("127.0.0.1:6003"),
                    source_seed: ep("127.0.0.1:5000"),
                    incarnation: None,
                    votes: vec![ep("127.0.0.1:5000"), ep("127.0.0.1:5001")],
                })),
            ),
            (
                line("SEED_DEAD_COMMIT", r#"{"ack": true}"#),
                Message::DeadCommitAck,
            ),
            (
                line("ERROR", r#"{"reason": "unknown type"}"#),
                Message::error("unknown type"),
            ),
            (
                line("PING", r#"{"sender": "127.0.0.1:6001"}"#),
                Message::Ping(Ping {
                    sender: ep("127.0.0.1:6001"),
                }),
            ),
            (
                line("PONG", r#"{"responder": "127.0.0.1:6002", "degree": 4}"#),
                Message::Pong(Pong {
                    responder: ep("127.0.0.1:6002"),
                    degree: Some(4),
                    incarnation: None,
                }),
            ),
            (
                line(
                    "PONG",
                    r#"{"responder": "127.0.0.1:6002", "degree": 4, "incarnation": 7}"#,
                ),
                Message::Pong(Pong {
                    responder: ep("127.0.0.1:6002"),
                    degree: Some(4),
                    incarnation: NonZeroU32::new(7),
                }),
            ),
            (
                line(
                    "SEED_CONFIRM",
                    r#"{"seed": "127.0.0.1:5000", "facts": [{"peer": "127.0.0.1:6001", "incarnation": 2, "status": "REMOVED"}]}"#,
                ),
                Message::Confirm(Box::new(ConfirmReq {
                    seed: ep("127.0.0.1:5000"),
                    facts: vec![Fact {
                        peer: ep("127.0.0.1:6001"),
                        incarnation: 2,
                        status: Status::Removed,
                    }],
                })),
            ),
            (
                line(
                    "SEED_CONFIRM",
                    r#"{"seed": "127.0.0.1:5001", "vouched": [true, false]}"#,
                ),
                Message::ConfirmResp(Box::new(ConfirmResp {
                    seed: ep("127.0.0.1:5001"),
                    vouched: vec![true, false],
                })),
            ),
            (
                line(
                    "SEED_SYNC",
                    r#"{"seed": "127.0.0.1:5000", "buckets": [1, 18446744073709551615], "entries": []}"#,
                ),
                Message::SeedSync(Box::new(SeedSync {
                    seed: ep("127.0.0.1:5000"),
                    buckets: vec![1, u64::MAX],
                    entries: vec![],
                    reply: false,
                })),
            ),
            (line("STATUS_REQ", "{}"), Message::StatusReq),
        ];
        for (l, want) in cases {
            assert_eq!(dec(&l), Ok(want.clone()), "{l}");
            roundtrip(&want);
        }
    }

    #[test]
    fn status_resp_round_trips_fully() {
        let entry = Entry {
            peer: ep("127.0.0.1:6001"),
            incarnation: 2,
            status: Status::Removed,
            votes: vec![ep("127.0.0.1:5000"), ep("127.0.0.1:5001")],
        };
        let counters = vec![
            ("gossip_in".to_string(), 7),
            ("z \"quoted\"\n".to_string(), 1),
        ];
        let seed = Message::StatusResp(Box::new(StatusResp {
            node: ep("127.0.0.1:5000"),
            role: RoleStatus::Seed(SeedStatus {
                entries: vec![entry],
                pending: 1,
            }),
            counters: counters.clone(),
        }));
        let peer = Message::StatusResp(Box::new(StatusResp {
            node: ep("127.0.0.1:6001"),
            role: RoleStatus::Peer(PeerStatus {
                registered: true,
                incarnation: 3,
                neighbours: vec![ep("[::1]:6002")],
                known_peers: 9,
            }),
            counters,
        }));
        roundtrip(&seed);
        roundtrip(&peer);
    }

    #[test]
    fn extension_fields_round_trip() {
        roundtrip(&Message::PeerListResp(Box::new(PeerListResp {
            peers: vec![ep("127.0.0.1:6001")],
            seed: ep("127.0.0.1:5000"),
            incarnations: vec![(ep("127.0.0.1:6001"), 4), (ep("[::1]:6001"), 1)],
            total: Some(10),
            requester_entry: Some((2, Status::Removed)),
        })));
        roundtrip(&Message::DeadReport(Box::new(DeadReport {
            dead: ep("[::1]:6003"),
            self_ip: "::1".parse().unwrap(),
            timestamp: 5,
            reporter: ep("[::1]:6001"),
            text: None,
            incarnation: Some(3),
            witnesses: vec![ep("[::1]:6002")],
        })));
        roundtrip(&Message::Gossip(Gossip {
            body: Arc::new(GossipBody {
                text: "line\nbreak \"and\" \u{0} nul".into(),
                origin_ip: "::1".parse().unwrap(),
                origin_port: Some(65535),
                msg_no: u32::MAX,
            }),
            sender: ep("[::1]:1"),
            hops: 7,
        }));
    }

    #[test]
    fn gossip_line_is_compact_and_exact() {
        let mut out = Vec::new();
        let m = Message::Gossip(Gossip {
            body: Arc::new(GossipBody {
                text: "1:127.0.0.1:1".into(),
                origin_ip: "127.0.0.1".parse().unwrap(),
                origin_port: Some(6001),
                msg_no: 1,
            }),
            sender: ep("127.0.0.1:6002"),
            hops: 1,
        });
        encode(&m, 2.5, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"GOSSIP_MSG\",\"payload\":{\"message\":\"1:127.0.0.1:1\",\"origin_ip\":\"127.0.0.1\",\"origin_port\":6001,\"msg_no\":1,\"sender\":\"127.0.0.1:6002\",\"hops\":1},\"ts\":2.5}\n"
        );
        let mut out = Vec::new();
        encode(&Message::StatusReq, f64::NAN, &mut out);
        assert_eq!(out, b"{\"type\":\"STATUS_REQ\",\"payload\":{},\"ts\":0}\n");
    }

    #[test]
    fn hand_written_numbers_and_addresses_match_std_and_serde() {
        let mut out = Vec::new();
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            65535,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            out.clear();
            write_u64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
        for s in [
            "0.0.0.0:1",
            "127.0.0.1:6001",
            "255.255.255.255:65535",
            "10.0.20.3:80",
        ] {
            let e = ep(s);
            out.clear();
            write_endpoint(&mut out, e);
            assert_eq!(out, format!("\"{e}\"").into_bytes());
            out.clear();
            write_ip(&mut out, e.ip());
            assert_eq!(out, e.ip().to_string().into_bytes());
        }
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            5000,
            0,
            2,
        ));
        out.clear();
        write_endpoint(&mut out, scoped);
        assert_eq!(out, b"\"[fe80::1%2]:5000\"");
        // Timestamps: whole milliseconds are written as serde_json writes the f64, and
        // anything else goes through serde_json itself.
        let mut ms_values: Vec<u64> = vec![0, 1, 10, 100, 999, 1000, 1001, 1_767_225_600_250];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms_values.push(x % 8_589_934_592_000);
            ms_values.push(1_767_225_600_000 + x % 1_000_000_000);
        }
        for ms in ms_values {
            let ts = ms as f64 / 1000.0;
            out.clear();
            write_ts(&mut out, ts);
            assert_eq!(out, serde_json::to_vec(&ts).unwrap(), "{ms} ms");
        }
        for ts in [-1.5, 1e-7, 0.0005, 1.0 / 3.0, 8_589_934_592.0, 1e300] {
            out.clear();
            write_ts(&mut out, ts);
            assert_eq!(out, serde_json::to_vec(&ts).unwrap(), "{ts}");
        }
        for ts in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            out.clear();
            write_ts(&mut out, ts);
            assert_eq!(out, b"0");
        }
    }

    #[test]
    fn strings_are_escaped_only_when_needed() {
        for s in [
            "",
            "plain 1:127.0.0.1:1",
            "caf\u{e9} \u{1f600}",
            "a\"b",
            "a\\b",
            "nl\n",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    fn bad(l: &str) -> (&'static str, &'static str) {
        match dec(l) {
            Err(DecodeError::BadField { kind, field, .. }) => (kind, field),
            other => panic!("expected BadField for {l}, got {other:?}"),
        }
    }

    fn missing(l: &str) -> (&'static str, &'static str) {
        match dec(l) {
            Err(DecodeError::MissingField { kind, field }) => (kind, field),
            other => panic!("expected MissingField for {l}, got {other:?}"),
        }
    }

    fn hello(port: &str) -> String {
        line(
            "HELLO",
            &format!(r#"{{"peer_ip": "127.0.0.1", "peer_port": {port}, "degree": 1}}"#),
        )
    }

    #[test]
    fn ports_must_be_integers_in_range() {
        for port in [
            "0", "70000", "65536", "-1", "6001.0", "6001.5", "\"6001\"", "true", "[]",
        ] {
            assert_eq!(bad(&hello(port)), ("HELLO", "peer_port"), "{port}");
        }
        for port in ["1", "65535"] {
            assert!(dec(&hello(port)).is_ok(), "{port}");
        }
        let ping = |s: &str| line("PING", &format!(r#"{{"sender": "{s}"}}"#));
        for s in [
            "127.0.0.1:0",
            "127.0.0.1:70000",
            "127.0.0.1",
            "host:5000",
            "::1:5000",
            "",
        ] {
            assert_eq!(bad(&ping(s)), ("PING", "sender"), "{s}");
        }
        assert!(dec(&ping("[::1]:5000")).is_ok());
    }

    #[test]
    fn counts_must_fit_their_type() {
        let h = |d: &str| {
            line(
                "HELLO",
                &format!(r#"{{"peer_ip": "127.0.0.1", "peer_port": 1, "degree": {d}}}"#),
            )
        };
        for d in ["-1", "4294967296", "1.0", "\"1\"", "1e3"] {
            assert_eq!(bad(&h(d)), ("HELLO", "degree"), "{d}");
        }
        assert!(dec(&h("4294967295")).is_ok());
        let inc = line(
            "REGISTER_REQ",
            r#"{"peer_ip": "127.0.0.1", "peer_port": 1, "incarnation": 18446744073709551616}"#,
        );
        assert_eq!(bad(&inc), ("REGISTER_REQ", "incarnation"));
        let ts = |t: &str| {
            line(
                "DEAD_REPORT",
                &format!(
                    r#"{{"dead_ip": "127.0.0.1", "dead_port": 1, "self_ip": "127.0.0.1", "timestamp": {t}, "reporter": "127.0.0.1:2"}}"#
                ),
            )
        };
        assert_eq!(bad(&ts("-1.5")), ("DEAD_REPORT", "timestamp"));
        assert_eq!(bad(&ts("1e30")), ("DEAD_REPORT", "timestamp"));
        assert_eq!(bad(&ts("\"5\"")), ("DEAD_REPORT", "timestamp"));
    }

    #[test]
    fn enums_and_bools_are_strict() {
        let commit = |d: &str| {
            line(
                "REGISTER_COMMIT",
                &format!(
                    r#"{{"proposal_id": "p", "decision": {d}, "peer_ip": "127.0.0.1", "peer_port": 1, "source_seed": "127.0.0.1:2"}}"#
                ),
            )
        };
        for d in ["\"commit\"", "\"YES\"", "1", "true"] {
            assert_eq!(bad(&commit(d)), ("REGISTER_COMMIT", "decision"), "{d}");
        }
        let ack = |a: &str| {
            line(
                "SUSPECT_ACK",
                &format!(
                    r#"{{"suspect": "127.0.0.1:1", "alive": {a}, "confirmer": "127.0.0.1:2"}}"#
                ),
            )
        };
        for a in ["1", "\"true\"", "0"] {
            assert_eq!(bad(&ack(a)), ("SUSPECT_ACK", "alive"), "{a}");
        }
        let entry = |s: &str| {
            line(
                "SEED_SYNC",
                &format!(
                    r#"{{"seed": "127.0.0.1:1", "buckets": [], "entries": [{{"peer": "127.0.0.1:2", "incarnation": 0, "status": {s}, "votes": []}}]}}"#
                ),
            )
        };
        assert!(dec(&entry("\"ALIVE\"")).is_ok());
        assert_eq!(bad(&entry("\"DEAD\"")), ("SEED_SYNC", "entries"));
        let vote = line(
            "REGISTER_VOTE",
            r#"{"action": "MAYBE", "proposal_id": "p"}"#,
        );
        assert_eq!(bad(&vote), ("REGISTER_VOTE", "action"));
        let role = line(
            "STATUS_RESP",
            r#"{"node": "127.0.0.1:1", "role": "king", "counters": {}}"#,
        );
        assert_eq!(bad(&role), ("STATUS_RESP", "role"));
    }

    #[test]
    fn optional_fields_present_with_wrong_type_are_rejected() {
        let g = |extra: &str| {
            line(
                "GOSSIP_MSG",
                &format!(
                    r#"{{"message": "m", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:2"{extra}}}"#
                ),
            )
        };
        assert!(dec(&g(r#", "hops": null, "origin_port": null, "extra": [1]"#)).is_ok());
        assert_eq!(bad(&g(r#", "hops": -1"#)), ("GOSSIP_MSG", "hops"));
        assert_eq!(
            bad(&g(r#", "origin_port": 0"#)),
            ("GOSSIP_MSG", "origin_port")
        );
        let r = |extra: &str| {
            line(
                "PEER_LIST_RESP",
                &format!(r#"{{"peers": [], "seed": "127.0.0.1:1"{extra}}}"#),
            )
        };
        assert_eq!(
            bad(&r(r#", "incarnations": {"x": 1}"#)),
            ("PEER_LIST_RESP", "incarnations")
        );
        assert_eq!(
            bad(&r(r#", "incarnations": []"#)),
            ("PEER_LIST_RESP", "incarnations")
        );
        assert_eq!(
            bad(&r(r#", "requester_entry": {"incarnation": 1}"#)),
            ("PEER_LIST_RESP", "requester_entry")
        );
        assert_eq!(bad(&r(r#", "total": "many""#)), ("PEER_LIST_RESP", "total"));
        assert_eq!(
            bad(&r(r#", "peers": ["127.0.0.1:1", 5]"#)),
            ("PEER_LIST_RESP", "peers")
        );
        assert_eq!(
            bad(&line("PEER_LIST_REQ", r#"{"requester": 5}"#)),
            ("PEER_LIST_REQ", "requester")
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        assert_eq!(
            missing(&line("HELLO", r#"{"peer_ip": "127.0.0.1", "degree": 1}"#)),
            ("HELLO", "peer_port")
        );
        assert_eq!(
            missing(&line(
                "HELLO",
                r#"{"peer_ip": "127.0.0.1", "peer_port": 1}"#
            )),
            ("HELLO", "degree")
        );
        assert_eq!(
            missing(&line("REGISTER_COMMIT", r#"{"proposal_id": "p"}"#)),
            ("REGISTER_COMMIT", "success")
        );
        assert_eq!(
            missing(&line("GOSSIP_MSG", r#"{"sender": "127.0.0.1:1"}"#)),
            ("GOSSIP_MSG", "message")
        );
        assert_eq!(
            missing(&line("REGISTER_VOTE", r#"{"proposal_id": "p"}"#)),
            ("REGISTER_VOTE", "action")
        );
        assert_eq!(
            missing(&line("ERROR", r#"{"reason": null}"#)),
            ("ERROR", "reason")
        );
        assert_eq!(
            missing(&line("SEED_SYNC", r#"{"seed": "127.0.0.1:1"}"#)),
            ("SEED_SYNC", "buckets")
        );
    }

    #[test]
    fn disambiguation_follows_the_fields() {
        let ack_wins = line(
            "REGISTER_COMMIT",
            r#"{"ack": true, "decision": "COMMIT", "success": true}"#,
        );
        assert_eq!(dec(&ack_wins), Ok(Message::RegisterCommitAck));
        let sync = line(
            "SEED_SYNC",
            r#"{"seed": "127.0.0.1:1", "buckets": [], "entries": [], "reply": true}"#,
        );
        assert!(matches!(
            dec(&sync),
            Ok(Message::SeedSync(s)) if s.reply
        ));
        let gossip_wins = line("GOSSIP_MSG", r#"{"accepted": true, "message": 5}"#);
        assert_eq!(bad(&gossip_wins), ("GOSSIP_MSG", "message"));
        let dead_result = line("SEED_DEAD_COMMIT", r#"{"success": false}"#);
        assert!(matches!(
            dec(&dead_result),
            Ok(Message::DeadResult(DeadResult { success: false, .. }))
        ));
    }

    #[test]
    fn syntax_and_unknown_type_errors() {
        let syntax = [
            &b""[..],
            b"not json",
            b"[1,2]",
            b"\"str\"",
            b"{\"payload\": {}}",
            b"{\"type\": 5, \"payload\": {}}",
            b"{\"type\": \"PING\"}",
            b"{\"type\": \"PING\", \"payload\": []}",
            b"{\"type\": \"PING\", \"payload\": {}} trailing",
            b"{\"type\": \"PI\xffNG\", \"payload\": {}}",
            b"{\"type\": \"PING\", \"payload\": {\"sender\": \"\\ud800\"}}",
        ];
        for l in syntax {
            assert!(
                matches!(decode(l), Err(DecodeError::Syntax(_))),
                "{:?} gave {:?}",
                String::from_utf8_lossy(l),
                decode(l)
            );
        }
        assert_eq!(
            dec(&line("NOPE", "{}")),
            Err(DecodeError::UnknownType("NOPE".into()))
        );
        assert_eq!(
            dec(&line("ping", "{}")),
            Err(DecodeError::UnknownType("ping".into()))
        );
        // An escaped NUL is valid JSON and a valid string.
        assert!(dec(&line("ERROR", r#"{"reason": "a\u0000b"}"#)).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for depth in [127, 129, 100_000] {
            let l = format!(
                r#"{{"type": "PING", "payload": {{"sender": "127.0.0.1:1", "x": {}{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let r = dec(&l);
            if depth < 126 {
                assert!(r.is_ok(), "{depth}");
            } else if depth > 128 {
                assert!(matches!(r, Err(DecodeError::Syntax(_))), "{depth}: {r:?}");
            }
        }
    }

    #[test]
    fn lists_longer_than_the_cap_are_rejected() {
        let peers = vec!["\"127.0.0.1:1\""; MAX_LIST + 1].join(",");
        let l = line(
            "PEER_LIST_RESP",
            &format!(r#"{{"peers": [{peers}], "seed": "127.0.0.1:1"}}"#),
        );
        assert_eq!(bad(&l), ("PEER_LIST_RESP", "peers"));
        let ok = vec!["\"127.0.0.1:1\""; MAX_LIST].join(",");
        let l = line(
            "PEER_LIST_RESP",
            &format!(r#"{{"peers": [{ok}], "seed": "127.0.0.1:1"}}"#),
        );
        assert!(dec(&l).is_ok());
    }

    fn gossip_line(payload_extra: &str) -> String {
        line(
            "GOSSIP_MSG",
            &format!(
                r#"{{"message": "1:127.0.0.1:1", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:6002"{payload_extra}}}"#
            ),
        )
    }

    /// The fast path answers only where the general path gives the same message; `decode`
    /// gives what the general path gives either way.
    fn check_fast(l: &str) -> Option<Message> {
        let fast = fast::decode(l);
        let general = decode_general(l);
        if let Some(m) = &fast {
            assert_eq!(Ok(m), general.as_ref(), "fast path disagrees on {l}");
        }
        assert_eq!(dec(l), general, "{l}");
        fast
    }

    #[test]
    fn fast_path_takes_the_hot_lines_in_both_spellings() {
        let hot = [
            gossip_line(""),
            gossip_line(r#", "hops": 2, "origin_port": 6001, "x": 1.5, "z": "s""#),
            gossip_line(r#", "hops": null, "origin_port": null"#),
            line("GOSSIP_MSG", r#"{"accepted": true, "duplicate": false}"#),
            line("GOSSIP_MSG", r#"{"accepted": false}"#),
            line("GOSSIP_MSG", r#"{"duplicate": true, "accepted": null}"#),
            line("PING", r#"{"sender": "127.0.0.1:6001"}"#),
            line("PING", r#"{"sender": "[::1]:6001", "extra": 0}"#),
            line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": 3}"#),
            line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": null}"#),
            line("PONG", r#"{"responder": "127.0.0.1:6001"}"#),
            line("PONG", r#"{"responder": "127.0.0.1:6001", "incarnation": 3}"#),
            line("PING", r#"{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "sender": "127.0.0.1:2"}"#),
            " \t{ \"type\" :\"PING\" , \"payload\" : { \"sender\" : \"127.0.0.1:1\" } , \"ts\" : 0 }\r\n ".to_string(),
            r#"{"type":"PING","payload":{"sender":"127.0.0.1:1"},"ts":1767225600.25,"v":true}"#.to_string(),
            r#"{"type":"PING","payload":{"sender":"127.0.0.1:1"},"ts":"late"}"#.to_string(),
        ];
        for l in &hot {
            assert!(check_fast(l).is_some(), "fast path declined {l}");
        }
        // What our encoder writes for them, too.
        let sender = ep("127.0.0.1:6002");
        for m in [
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: true,
            }),
            Message::Ping(Ping { sender }),
            Message::Pong(Pong {
                responder: sender,
                degree: Some(u32::MAX),
                incarnation: NonZeroU32::new(u32::MAX),
            }),
        ] {
            let mut out = Vec::new();
            encode(&m, 1_767_225_600.25, &mut out);
            let l = String::from_utf8(out).unwrap();
            assert_eq!(check_fast(l.trim_end()), Some(m));
        }
    }

    #[test]
    fn fast_path_leaves_everything_else_to_the_general_path() {
        // Each line with what the general path makes of it: `Ok` with the type name, or the
        // error's kind (and field).
        let general: &[(String, &str)] = &[
            // Not a flat object, or not one of the hot types.
            (r#"["GOSSIP_MSG", {"message": "m", "origin_ip": "127.0.0.1", "origin_port": null, "msg_no": 1, "sender": "127.0.0.1:2", "hops": null}]"#.into(), "syntax"),
            (line("GOSSIP_MSG", r#"["m", "127.0.0.1", null, 1, "127.0.0.1:2", null]"#), "syntax"),
            (line("HELLO", r#"{"peer_ip": "127.0.0.1", "peer_port": 1, "degree": 1}"#), "HELLO"),
            (line("STATUS_REQ", "{}"), "STATUS_REQ"),
            (line("PING", "{}"), "missing PING.sender"),
            (gossip_line(r#", "x": {"y": [1]}"#), "GOSSIP_MSG"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": [1]}"#.into(), "PING"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}} trailing"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"},}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2",}}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}"#.into(), "syntax"),
            (r#"{"type": "PING"}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": null}"#.into(), "syntax"),
            (r#"{"type": null, "payload": {"sender": "127.0.0.1:2"}}"#.into(), "syntax"),
            // Members in another order than ours and the reference's.
            (r#"{"payload": {"sender": "127.0.0.1:1"}, "type": "PING"}"#.into(), "PING"),
            (r#"{"ts": 1, "type": "PING", "payload": {"sender": "127.0.0.1:1"}}"#.into(), "PING"),
            // A key twice: the general path keeps the last.
            (gossip_line(r#", "msg_no": 2"#), "GOSSIP_MSG"),
            (r#"{"type": "GOSSIP_MSG", "type": "PING", "payload": {"sender": "127.0.0.1:2"}}"#.into(), "PING"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:1"}, "payload": {"sender": 1}}"#.into(), "bad PING.sender"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:1"}, "type": "PONG"}"#.into(), "missing PONG.responder"),
            (line("GOSSIP_MSG", r#"{"accepted": true, "accepted": 1}"#), "bad GOSSIP_MSG.accepted"),
            // Escapes and control characters in strings and keys.
            (line("GOSSIP_MSG", r#"{"message": "esc\"aped", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:2"}"#), "GOSSIP_MSG"),
            (line("PING", r#"{"sen\u0064er": "127.0.0.1:2"}"#), "PING"),
            (r#"{"typ\u0065": "PING", "payload": {"sender": "127.0.0.1:2"}}"#.into(), "PING"),
            (line("PING", "{\"sender\": \"127.0.0.1:2\u{1}\"}"), "syntax"),
            // Numbers outside the subset or out of range.
            (gossip_line(r#", "origin_port": 0"#), "bad GOSSIP_MSG.origin_port"),
            (gossip_line(r#", "origin_port": 65536"#), "bad GOSSIP_MSG.origin_port"),
            (gossip_line(r#", "hops": 1.0"#), "bad GOSSIP_MSG.hops"),
            (gossip_line(r#", "hops": -1"#), "bad GOSSIP_MSG.hops"),
            (gossip_line(r#", "hops": 1e2"#), "bad GOSSIP_MSG.hops"),
            (gossip_line(r#", "hops": 01"#), "syntax"),
            (gossip_line(r#", "hops": 4294967296"#), "bad GOSSIP_MSG.hops"),
            (gossip_line(r#", "hops": 99999999999999999999"#), "bad GOSSIP_MSG.hops"),
            (gossip_line(r#", "x": 1."#), "syntax"),
            (gossip_line(r#", "x": .5"#), "syntax"),
            (line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": "3"}"#), "bad PONG.degree"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": 1e400}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": 123456789012345678901234567890}"#.into(), "PING"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": -1}"#.into(), "PING"),
            // Fields of the wrong type, missing, or impossible.
            (line("GOSSIP_MSG", r#"{"accepted": 1}"#), "bad GOSSIP_MSG.accepted"),
            (line("GOSSIP_MSG", r#"{"accepted": null, "duplicate": null}"#), "missing GOSSIP_MSG.message"),
            (line("GOSSIP_MSG", r#"{"message": null, "accepted": "yes"}"#), "bad GOSSIP_MSG.accepted"),
            (line("GOSSIP_MSG", r#"{"accepted": true, "message": 5}"#), "bad GOSSIP_MSG.message"),
            (gossip_line(r#", "sender": "127.0.0.1:0""#), "bad GOSSIP_MSG.sender"),
            (line("GOSSIP_MSG", r#"{"message": "m", "origin_ip": "127.0.0.1", "msg_no": 1, "sender": "127.0.0.1:0"}"#), "bad GOSSIP_MSG.sender"),
            (line("GOSSIP_MSG", r#"{"message": "m", "origin_ip": "1.2.3", "msg_no": 1, "sender": "127.0.0.1:2"}"#), "bad GOSSIP_MSG.origin_ip"),
            (line("PING", r#"{"sender": "127.0.0.1"}"#), "bad PING.sender"),
            (line("PING", r#"{"sender": "127.0.0.1:0"}"#), "bad PING.sender"),
            (line("PING", r#"{"sender": true}"#), "bad PING.sender"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": tru}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": nul}"#.into(), "syntax"),
            (r#"{"type": "PING", "payload": {"sender": "127.0.0.1:2"}, "ts": truex}"#.into(), "syntax"),
        ];
        for (l, want) in general {
            assert_eq!(check_fast(l), None, "{l}");
            let got = match dec(l) {
                Ok(m) => m.type_name().to_string(),
                Err(DecodeError::Syntax(_)) => "syntax".to_string(),
                Err(DecodeError::BadField { kind, field, .. }) => format!("bad {kind}.{field}"),
                Err(DecodeError::MissingField { kind, field }) => {
                    format!("missing {kind}.{field}")
                }
                Err(e) => format!("{e:?}"),
            };
            assert_eq!(&got, want, "{l}");
        }
    }

    /// What std makes of an address: the hand-written IPv4 reader must never differ.
    fn check_address(s: &str) {
        let std_ep = s.parse::<SocketAddr>().ok().filter(|a| a.port() != 0);
        assert_eq!(parse_endpoint(s), std_ep, "{s:?}");
        if let Some(fast) = parse_v4_endpoint(s) {
            assert_eq!(Ok(fast), s.parse::<SocketAddr>(), "{s:?}");
        }
        assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{s:?}");
    }

    #[test]
    fn addresses_are_read_as_std_reads_them() {
        for s in [
            "127.0.0.1:6001",
            "0.0.0.0:1",
            "255.255.255.255:65535",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "256.1.1.1:1",
            "01.2.3.4:5",
            "1.2.3.4:05",
            "1.2.3.4:0005",
            "1.2.3:4",
            "1.2.3.4.5:6",
            "1.2.3.4:",
            ":1",
            "1.2.3.4:1 ",
            " 1.2.3.4:1",
            "1.2.3.4",
            "1.2.3.4:99999999999",
            "[::1]:1",
            "[::ffff:1.2.3.4]:1",
            "::1",
            "1..2.3:4",
            "1.2.3.4::5",
            "1234.1.1.1:1",
            "",
        ] {
            check_address(s);
        }
    }

    proptest::proptest! {
        /// Strings over the address alphabet, mostly near dotted quads.
        #[test]
        fn addresses_agree_with_std(s in "([0-9]{1,4}[.:]){0,5}[0-9]{0,6}|[0-9.:\\[\\]a-f]{0,24}") {
            check_address(&s);
        }
    }

    /// Hot lines in our spelling and the reference's, to be edited at random.
    fn hot_lines() -> Vec<String> {
        vec![
            gossip_line(r#", "hops": 2, "origin_port": 6001"#),
            r#"{"type":"GOSSIP_MSG","payload":{"message":"1:127.0.0.1:1","origin_ip":"127.0.0.1","origin_port":6001,"msg_no":1,"sender":"127.0.0.1:6002","hops":1},"ts":1767225600.25}"#.to_string(),
            r#"{"type":"GOSSIP_MSG","payload":{"accepted":true,"duplicate":false},"ts":1767225600.25}"#.to_string(),
            line("GOSSIP_MSG", r#"{"accepted": false, "duplicate": true}"#),
            r#"{"type":"PING","payload":{"sender":"127.0.0.1:6002"},"ts":1767225600.0}"#.to_string(),
            line("PONG", r#"{"responder": "127.0.0.1:6001", "degree": 10}"#),
        ]
    }

    /// Well-formed values of the hot fields (often chosen, so repeated keys with different
    /// readable values come up).
    const COMMON_VALUES: &[&str] = &[
        "1",
        "2",
        "true",
        "false",
        "null",
        "\"127.0.0.1:1\"",
        "\"127.0.0.1:2\"",
        "\"127.0.0.1\"",
        "\"m\"",
    ];

    /// Scalars the fast path must judge like the general path, in and out of its subset.
    const TRICKY_VALUES: &[&str] = &[
        "0",
        "1",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "01",
        "-0",
        "-1",
        "1.5",
        "1.",
        "1e3",
        "1E-3",
        "true",
        "false",
        "null",
        "nul",
        "\"\"",
        "\"127.0.0.1:1\"",
        "\"[::1]:1\"",
        "\"127.0.0.1:0\"",
        "\"127.0.0.1\"",
        "\"a\\\"b\"",
        "[]",
        "{}",
        "\"\u{e9}\"",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2048, ..proptest::prelude::ProptestConfig::default()
        })]

        /// Randomly edited hot lines: whenever the fast path answers, the general path gives
        /// the same message.
        #[test]
        fn fast_path_never_disagrees(
            which in 0..6usize,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), b' '..=b'~', 0..3u8), 1..4),
        ) {
            let mut l = hot_lines().swap_remove(which).into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(l.len());
                match op {
                    0 => l[i] = byte,
                    1 => { l.remove(i); }
                    _ => l.insert(i, byte),
                }
                if l.is_empty() { break; }
            }
            if let Ok(text) = std::str::from_utf8(&l) {
                if let Some(fast) = fast::decode(text) {
                    proptest::prop_assert_eq!(Ok(fast), decode_general(text));
                }
            }
        }

        /// Payloads built from the hot fields (repeats included) and tricky values, with or
        /// without spaces: the fast path agrees with the general path wherever it answers.
        #[test]
        fn fast_path_agrees_on_generated_payloads(
            kind in proptest::sample::select(&["GOSSIP_MSG", "PING", "PONG", "HELLO"][..]),
            members in proptest::collection::vec((
                proptest::sample::select(&[
                    "message", "origin_ip", "origin_port", "msg_no", "sender", "hops",
                    "accepted", "duplicate", "responder", "degree", "other",
                ][..]),
                proptest::prop_oneof![
                    3 => proptest::sample::select(COMMON_VALUES),
                    1 => proptest::sample::select(TRICKY_VALUES),
                ],
            ), 0..8),
            ts in proptest::sample::select(TRICKY_VALUES),
            spaced in proptest::prelude::any::<bool>(),
        ) {
            let sep = if spaced { ", " } else { "," };
            let payload = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(sep);
            let l = format!(r#"{{"type":"{kind}","payload":{{{payload}}},"ts":{ts}}}"#);
            if let Some(fast) = fast::decode(&l) {
                proptest::prop_assert_eq!(Ok(fast), decode_general(&l), "{}", l);
            }
        }
    }

    #[test]
    fn find_newline_finds_the_first_one_anywhere() {
        for len in 0..40 {
            let mut bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(find_newline(&bytes), None);
            for at in 0..len {
                bytes[at] = b'\n';
                assert_eq!(find_newline(&bytes), Some(at), "len {len}");
                if at + 3 < len {
                    bytes[at + 3] = b'\n';
                    assert_eq!(find_newline(&bytes), Some(at), "len {len}");
                    bytes[at + 3] = b'x';
                }
                bytes[at] = 0x8a;
                assert_eq!(find_newline(&bytes), None, "len {len}");
                bytes[at] = b'x';
            }
        }
    }

    fn lines_of(r: &mut LineReader) -> Vec<Result<Vec<u8>, DecodeError>> {
        let mut v = Vec::new();
        while let Some(l) = r.next_line() {
            v.push(l.map(<[u8]>::to_vec));
        }
        v
    }

    #[test]
    fn line_reader_handles_any_split() {
        let stream = b"one\r\ntwo\n\n  \r\nthree\nfour";
        for chunk in 1..=stream.len() {
            let mut r = LineReader::new(16);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.push(piece);
                got.extend(lines_of(&mut r));
            }
            assert_eq!(r.pending_bytes(), 4);
            while let Some(l) = r.finish() {
                got.push(l.map(<[u8]>::to_vec));
            }
            let want: Vec<Result<Vec<u8>, DecodeError>> = vec![
                Ok(b"one\r".to_vec()),
                Ok(b"two".to_vec()),
                Ok(b"three".to_vec()),
                Ok(b"four".to_vec()),
            ];
            assert_eq!(got, want, "chunk {chunk}");
            assert_eq!(r.finish(), None);
            assert_eq!(r.pending_bytes(), 0);
        }
    }

    #[test]
    fn line_reader_reports_a_long_line_once_and_recovers() {
        let max = 8;
        let stream = b"short\n0123456789abcdef\nok\n012345678\nlast\n";
        for chunk in 1..=stream.len() {
            let mut r = LineReader::new(max);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.push(piece);
                got.extend(lines_of(&mut r));
                assert!(r.pending_bytes() <= max + chunk, "chunk {chunk}");
            }
            let too_long = Err(DecodeError::TooLong { max });
            let want = vec![
                Ok(b"short".to_vec()),
                too_long.clone(),
                Ok(b"ok".to_vec()),
                too_long,
                Ok(b"last".to_vec()),
            ];
            assert_eq!(got, want, "chunk {chunk}");
        }
        // Exactly `max` bytes is fine.
        let mut r = LineReader::new(max);
        r.push(b"12345678\n");
        assert_eq!(lines_of(&mut r), vec![Ok(b"12345678".to_vec())]);
    }

    #[test]
    fn line_reader_memory_stays_bounded_without_newline() {
        let max = 1024;
        let mut r = LineReader::new(max);
        r.push(b"first\n");
        let chunk = vec![b'x'; 64 * 1024];
        let mut got = lines_of(&mut r);
        for _ in 0..(100 << 20) / chunk.len() {
            r.push(&chunk);
            got.extend(lines_of(&mut r));
            assert!(r.pending_bytes() <= max);
            assert!(r.buf.capacity() <= max + 2 * chunk.len());
        }
        r.push(b"tail\nnext\n");
        got.extend(lines_of(&mut r));
        assert_eq!(
            got,
            vec![
                Ok(b"first".to_vec()),
                Err(DecodeError::TooLong { max }),
                Ok(b"next".to_vec())
            ]
        );
        // An over-long final line without newline gives TooLong once at the end.
        let mut r = LineReader::new(4);
        r.push(b"abcdefgh");
        assert_eq!(r.next_line(), Some(Err(DecodeError::TooLong { max: 4 })));
        assert_eq!(r.next_line(), None);
        assert_eq!(r.finish(), None);
    }
}
