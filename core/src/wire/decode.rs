//! Decoding: one line to a [`Message`], by the rules of the module doc of [`crate::wire`].
//!
//! The hot lines go through the scanner of `fast.rs` first; everything else (and anything the
//! scanner doubts) is read here through a `serde_json::Value` tree, field by field, by a
//! `Payload` that names the message type and field in every error. The address parsers at the
//! end are shared by both paths, so both read an endpoint exactly as std does.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{fast, DecodeError, MAX_LIST};
use crate::msg::{
    AppPart, CommitSync, ConfirmReq, ConfirmResp, DeadReport, DeadResult, Decision, DigestResp,
    Endpoint, Entry, Fact, Gossip, GossipAck, GossipBody, GossipDigest, GossipPull, Hello,
    HelloAck, IHave, IdGroup, LeaveReq, Message, PeerListResp, PeerStatus, Ping, Pong, PullResp,
    RegisterReq, RegisterResult, RoleStatus, SeedStatus, SeedSync, Status, StatusResp, SuspectAck,
    SuspectReq, VoteReq, VoteResp, MAX_APP_NAME, MAX_BODIES, MAX_CONFIRM_FACTS, MAX_DIGEST_BUCKETS,
    MAX_IDS,
};

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
pub(super) fn decode_general(text: &str) -> Result<Message, DecodeError> {
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

/// `v`, or `u16::MAX` if it is larger.
pub(super) fn saturate_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn syntax(why: &str) -> DecodeError {
    DecodeError::Syntax(why.to_string())
}

fn known_type(name: &str) -> Option<&'static str> {
    super::TYPES.iter().copied().find(|t| *t == name)
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
        "GOSSIP_MSG" | "APP_MSG" => {
            let app = kind == "APP_MSG";
            if p.has("message") {
                Message::Gossip(Gossip {
                    body: Arc::new(GossipBody {
                        text: Arc::from(p.str_ref("message")?),
                        origin_ip: p.ip("origin_ip")?,
                        origin_port: p.opt_port("origin_port")?,
                        msg_no: p.u32("msg_no")?,
                        app: if app {
                            Some(Box::new(p.app_part()?))
                        } else {
                            None
                        },
                    }),
                    sender: p.endpoint("sender")?,
                    hops: p.opt_u32("hops")?.unwrap_or(0),
                })
            } else if p.has("accepted") || p.has("duplicate") {
                Message::GossipAck(GossipAck {
                    accepted: p.opt_bool("accepted")?.unwrap_or(true),
                    duplicate: p.opt_bool("duplicate")?.unwrap_or(false),
                    prune: p.opt_bool("prune")?.unwrap_or(false),
                    app,
                })
            } else {
                return Err(p.missing("message"));
            }
        }
        "LEAVE" => {
            if p.has("success") {
                Message::LeaveResult(DeadResult {
                    proposal_id: p.opt_str("proposal_id")?.unwrap_or_default(),
                    success: p.bool("success")?,
                    yes_votes: p.opt_u32("yes_votes")?.unwrap_or(0),
                    quorum: p.opt_u32("quorum")?.unwrap_or(0),
                })
            } else {
                Message::Leave(Box::new(LeaveReq {
                    peer: p.endpoint_pair("peer_ip", "peer_port")?,
                    incarnation: p.u64("incarnation")?,
                }))
            }
        }
        "LEAVE_VOTE" => match p.action()? {
            Action::Request => Message::LeaveVote(Box::new(p.vote_req("peer_ip", "peer_port")?)),
            Action::Response => Message::LeaveVoteResp(Box::new(p.vote_resp()?)),
        },
        "LEAVE_COMMIT" => {
            if p.has("ack") {
                Message::LeaveCommitAck
            } else {
                Message::LeaveCommit(Box::new(p.commit_sync("peer_ip", "peer_port")?))
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
            suspected_by: p.opt_endpoint("suspected_by")?.map(Box::new),
        }),
        "PONG" => Message::Pong(Pong {
            responder: p.endpoint("responder")?,
            degree: p.opt_u32("degree")?.map(saturate_u16),
            leaving: p.opt_bool("leaving")?.unwrap_or(false),
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
        "GOSSIP_DIGEST" => {
            if p.has("counts") {
                let counts = p.u32_list("counts")?;
                let hashes = p.u64_list("hashes")?;
                if counts.len() > MAX_DIGEST_BUCKETS {
                    return Err(p.bad("counts", "at most 64 buckets"));
                }
                if hashes.len() != counts.len() {
                    return Err(p.bad("hashes", "as many hashes as counts"));
                }
                Message::Digest(Box::new(GossipDigest {
                    sender: p.endpoint("sender")?,
                    first: p.u64("first")?,
                    counts,
                    hashes,
                }))
            } else if p.has("ids") {
                Message::DigestResp(Box::new(DigestResp {
                    responder: p.endpoint("responder")?,
                    ids: p.id_groups("ids")?,
                }))
            } else {
                return Err(p.missing("counts"));
            }
        }
        "IHAVE" => {
            if p.has("ids") {
                Message::IHave(Box::new(IHave {
                    sender: p.endpoint("sender")?,
                    ids: p.id_groups("ids")?,
                }))
            } else if p.has("ack") {
                Message::IHaveAck
            } else {
                return Err(p.missing("ids"));
            }
        }
        "GOSSIP_PULL" => {
            if p.has("ids") {
                Message::Pull(Box::new(GossipPull {
                    sender: p.endpoint("sender")?,
                    ids: p.id_groups("ids")?,
                    graft: p.opt_bool("graft")?.unwrap_or(false),
                }))
            } else if p.has("bodies") {
                let bodies = p.bodies("bodies")?;
                if bodies.len() > MAX_BODIES {
                    return Err(p.bad("bodies", "at most 256 bodies"));
                }
                Message::PullResp(Box::new(PullResp {
                    responder: p.endpoint("responder")?,
                    bodies,
                }))
            } else {
                return Err(p.missing("ids"));
            }
        }
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

    fn opt_endpoint(&self, field: &'static str) -> Result<Option<Endpoint>, DecodeError> {
        self.opt(field, ENDPOINT, as_endpoint)
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

    fn u32_list(&self, field: &'static str) -> Result<Vec<u32>, DecodeError> {
        self.opt_list(field, "a list of non-negative 32-bit integers", as_u32)?
            .ok_or_else(|| self.missing(field))
    }

    /// Gossip ids: `[[second, key, ...], ...]`, at most [`MAX_IDS`] keys in all.
    fn id_groups(&self, field: &'static str) -> Result<Vec<IdGroup>, DecodeError> {
        let groups = self
            .opt_list(field, ID_GROUPS, as_id_group)?
            .ok_or_else(|| self.missing(field))?;
        if groups.iter().map(|g| g.keys.len()).sum::<usize>() > MAX_IDS {
            return Err(self.bad(field, "at most 1024 keys in all"));
        }
        Ok(groups)
    }

    /// An application message's own fields (`APP_MSG`).
    fn app_part(&self) -> Result<AppPart, DecodeError> {
        let name = self.opt_str("name")?;
        if name.as_ref().is_some_and(|n| n.len() > MAX_APP_NAME) {
            return Err(self.bad("name", "at most 128 bytes"));
        }
        Ok(AppPart {
            name: name.map(String::into_boxed_str),
            data: self.str_ref("data")?.into(),
            published_ms: self.u64("published_ms")?,
        })
    }

    fn bodies(&self, field: &'static str) -> Result<Vec<Arc<GossipBody>>, DecodeError> {
        self.opt_list(field, BODY_LIST, as_body)?
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
const ID_GROUPS: &str = "a list of [second, key, ...] lists of non-negative integers";
const BODY_LIST: &str =
    "a list of {\"message\", \"origin_ip\", \"origin_port\", \"msg_no\"} objects";

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn as_port(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p != 0)
}

/// `"ip:port"` with a port in `1..=65535`, in std's syntax.
pub(super) fn parse_endpoint(s: &str) -> Option<Endpoint> {
    parse_v4_endpoint(s)
        .or_else(|| s.parse::<SocketAddr>().ok())
        .filter(|a| a.port() != 0)
}

/// An IP address in std's syntax.
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    match parse_v4_prefix(s.as_bytes()) {
        Some((ip, [])) => Some(IpAddr::V4(ip)),
        _ => s.parse().ok(),
    }
}

/// The common `a.b.c.d:port`, read by hand (std's parser is general and several times
/// slower). It accepts a subset of std's syntax with the same meaning, so `None` leaves the
/// string to std's parser and the result never differs from std's.
pub(super) fn parse_v4_endpoint(s: &str) -> Option<SocketAddr> {
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
        "LEFT" => Some(Status::Left),
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

fn as_id_group(v: &Value) -> Option<IdGroup> {
    let items = v.as_array().filter(|a| a.len() <= MAX_IDS + 1)?;
    let (second, keys) = items.split_first()?;
    Some(IdGroup {
        second: second.as_u64()?,
        keys: keys.iter().map(Value::as_u64).collect::<Option<Vec<_>>>()?,
    })
}

/// A gossip body: the fields of a `GOSSIP_MSG` its origin wrote (`origin_port` optional).
fn as_body(v: &Value) -> Option<Arc<GossipBody>> {
    let m = v.as_object()?;
    let origin_port = match m.get("origin_port").filter(|p| !p.is_null()) {
        None => None,
        Some(p) => Some(as_port(p)?),
    };
    // An application message's body has `data` (and `published_ms`, and maybe `name`).
    let app = match m.get("data").filter(|d| !d.is_null()) {
        None => None,
        Some(data) => {
            let name = match m.get("name").filter(|n| !n.is_null()) {
                None => None,
                Some(n) => Some(n.as_str().filter(|n| n.len() <= MAX_APP_NAME)?.into()),
            };
            Some(Box::new(AppPart {
                name,
                data: data.as_str()?.into(),
                published_ms: m.get("published_ms")?.as_u64()?,
            }))
        }
    };
    Some(Arc::new(GossipBody {
        text: Arc::from(m.get("message")?.as_str()?),
        origin_ip: parse_ip(m.get("origin_ip")?.as_str()?)?,
        origin_port,
        msg_no: as_u32(m.get("msg_no")?)?,
        app,
    }))
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
