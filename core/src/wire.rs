//! The wire format of `docs/PROTOCOL.md`: one UTF-8 JSON object per line,
//! `{"type": ..., "payload": {...}, "ts": <unix seconds>}`, plus [`LineReader`], the framing
//! both drivers use.
//!
//! The decoder is in `decode.rs` (with its hot path in `fast.rs`), the encoder in
//! `encode.rs`, the framing in `reader.rs` and the cluster key in [`auth`]; this file holds
//! the rules they share, the limits and [`DecodeError`].
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

pub mod auth;
mod decode;
mod encode;
mod fast;
mod reader;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{encode, encoded_len};
pub use reader::LineReader;

/// Every wire `type` this codec knows, as `'static` names ([`crate::Message::type_name`]
/// gives one of them for every message).
pub const TYPES: [&str; 27] = [
    "REGISTER_REQ",
    "REGISTER_COMMIT",
    "REGISTER_VOTE",
    "PEER_LIST_REQ",
    "PEER_LIST_RESP",
    "HELLO",
    "HELLO_ACK",
    "GOSSIP_MSG",
    "APP_MSG",
    "SUSPECT_REQ",
    "SUSPECT_ACK",
    "DEAD_REPORT",
    "SEED_DEAD_COMMIT",
    "SEED_DEAD_VOTE",
    "LEAVE",
    "LEAVE_VOTE",
    "LEAVE_COMMIT",
    "ERROR",
    "PING",
    "PONG",
    "SEED_SYNC",
    "SEED_CONFIRM",
    "GOSSIP_DIGEST",
    "IHAVE",
    "GOSSIP_PULL",
    "STATUS_REQ",
    "STATUS_RESP",
];

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
