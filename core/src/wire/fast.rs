//! The decoding hot path: the lines a busy node reads most (`GOSSIP_MSG`, `APP_MSG` and
//! their acks, `PING`, `PONG`) read by a small scanner straight from the line, with no `serde_json::Value` tree
//! and no allocation but the gossip text (an ack or a probe costs a third of the
//! instructions of the general path).
//!
//! The scanner accepts a strict subset of JSON, the shape our encoder writes and the
//! reference's spaced variant of it: an object starting with `type` and `payload`, whose
//! other members are scalars, and a payload of scalars; strings without escapes;
//! non-negative numbers without exponent. Anything else, or any doubt (another type, a
//! nested value, an escape, a field named twice, a field missing, of the wrong type or out of
//! range), returns `None` and the general path decides. So a line decodes to the same
//! message, or the same error, either way; `wire`'s tests check that on hand-picked lines, on
//! generated payloads and on randomly edited lines.

use std::num::NonZeroU32;
use std::sync::Arc;

use super::decode::{parse_endpoint, parse_ip, saturate_u16};
use crate::msg::{
    AppPart, Endpoint, Gossip, GossipAck, GossipBody, Message, Ping, Pong, MAX_APP_NAME,
};

/// Decodes `text` if it is one of the hot messages in the scanner's subset of JSON.
pub(super) fn decode(text: &str) -> Option<Message> {
    let mut s = Scanner { text, pos: 0 };
    s.expect(b'{')?;
    s.key("type")?;
    let kind = s.string()?;
    s.expect(b',')?;
    s.key("payload")?;
    match kind {
        "GOSSIP_MSG" | "APP_MSG" => {
            let app = kind == "APP_MSG";
            let [message, origin_ip, origin_port, msg_no, name, data, published_ms, sender, hops, accepted, duplicate, prune] =
                s.payload([
                    "message",
                    "origin_ip",
                    "origin_port",
                    "msg_no",
                    "name",
                    "data",
                    "published_ms",
                    "sender",
                    "hops",
                    "accepted",
                    "duplicate",
                    "prune",
                ])?;
            s.rest_of_envelope()?;
            // The general path's rule: `message` present → the gossip; else `accepted` or
            // `duplicate` present → the ack.
            if message.is_some() {
                let app = if app {
                    let name = opt(name, as_str)?;
                    if name.is_some_and(|n| n.len() > MAX_APP_NAME) {
                        return None; // the general path reports it
                    }
                    Some(Box::new(AppPart {
                        name: name.map(Into::into),
                        data: as_str(data?)?.into(),
                        published_ms: as_u64(published_ms?)?,
                    }))
                } else {
                    None
                };
                Some(Message::Gossip(Gossip {
                    body: Arc::new(GossipBody {
                        text: Arc::from(as_str(message?)?),
                        origin_ip: parse_ip(as_str(origin_ip?)?)?,
                        origin_port: opt(origin_port, as_port)?,
                        msg_no: as_u32(msg_no?)?,
                        app,
                    }),
                    sender: as_endpoint(sender?)?,
                    hops: opt(hops, as_u32)?.unwrap_or(0),
                }))
            } else if accepted.is_some() || duplicate.is_some() {
                Some(Message::GossipAck(GossipAck {
                    accepted: opt(accepted, as_bool)?.unwrap_or(true),
                    duplicate: opt(duplicate, as_bool)?.unwrap_or(false),
                    prune: opt(prune, as_bool)?.unwrap_or(false),
                    app,
                }))
            } else {
                None
            }
        }
        "PING" => {
            let [sender, suspected_by] = s.payload(["sender", "suspected_by"])?;
            s.rest_of_envelope()?;
            Some(Message::Ping(Ping {
                sender: as_endpoint(sender?)?,
                suspected_by: opt(suspected_by, as_endpoint)?.map(Box::new),
            }))
        }
        "PONG" => {
            let [responder, degree, leaving, incarnation] =
                s.payload(["responder", "degree", "leaving", "incarnation"])?;
            s.rest_of_envelope()?;
            Some(Message::Pong(Pong {
                responder: as_endpoint(responder?)?,
                degree: opt(degree, as_u32)?.map(saturate_u16),
                leaving: opt(leaving, as_bool)?.unwrap_or(false),
                incarnation: opt(incarnation, as_claim)?.flatten(),
            }))
        }
        _ => None,
    }
}

/// Digits read at most in either part of a number, so a number of the subset always fits
/// the general path's `u64` / `f64` without rounding to infinity.
const MAX_DIGITS: usize = 19;

/// One JSON scalar, borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar<'a> {
    /// A string without escapes (so its text is the line's bytes).
    Str(&'a str),
    Bool(bool),
    Null,
    /// Digits only: a non-negative integer.
    Int(u64),
    /// Digits with a fraction (such as the `ts`): valid JSON, but no field we read.
    Fraction,
}

/// An optional field: `Some(None)` if absent, `None` (leave the line) if unreadable.
fn opt<'a, T>(v: Option<Scalar<'a>>, parse: fn(Scalar<'a>) -> Option<T>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => parse(v).map(Some),
    }
}

fn as_endpoint(v: Scalar<'_>) -> Option<Endpoint> {
    parse_endpoint(as_str(v)?)
}

fn as_str(v: Scalar<'_>) -> Option<&str> {
    match v {
        Scalar::Str(s) => Some(s),
        _ => None,
    }
}

fn as_bool(v: Scalar<'_>) -> Option<bool> {
    match v {
        Scalar::Bool(b) => Some(b),
        _ => None,
    }
}

fn as_u64(v: Scalar<'_>) -> Option<u64> {
    match v {
        Scalar::Int(n) => Some(n),
        _ => None,
    }
}

fn as_u32(v: Scalar<'_>) -> Option<u32> {
    match v {
        Scalar::Int(n) => u32::try_from(n).ok(),
        _ => None,
    }
}

/// An incarnation claim: `0` reads as none (`Some(None)`); above 32 bits, unreadable.
fn as_claim(v: Scalar<'_>) -> Option<Option<NonZeroU32>> {
    match v {
        Scalar::Int(n) => u32::try_from(n).ok().map(NonZeroU32::new),
        _ => None,
    }
}

/// A port in `1..=65535`.
fn as_port(v: Scalar<'_>) -> Option<u16> {
    match v {
        Scalar::Int(n) => u16::try_from(n).ok().filter(|&p| p != 0),
        _ => None,
    }
}

/// A cursor over the line's bytes. Every method returns `None` when the line leaves the
/// subset, and only ever stops on ASCII bytes, so slices of `text` stay on char boundaries.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// JSON whitespace, as serde_json skips it.
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then consumes `byte`.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// After a member: `true` on `,` (another member follows), `false` on `}`.
    fn comma_or_close(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let more = match self.peek()? {
            b',' => true,
            b'}' => false,
            _ => return None,
        };
        self.pos += 1;
        Some(more)
    }

    /// A string without escapes or control characters (both rejected by JSON or needing
    /// the general path's unescaping).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return self.text.get(start..self.pos - 1);
                }
                b'\\' | 0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        None
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b't' => self.word("true", Scalar::Bool(true)),
            b'f' => self.word("false", Scalar::Bool(false)),
            b'n' => self.word("null", Scalar::Null),
            b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, word: &str, value: Scalar<'a>) -> Option<Scalar<'a>> {
        self.text.get(self.pos..)?.starts_with(word).then(|| {
            self.pos += word.len();
            value
        })
    }

    /// `0` or digits not starting with `0`, then maybe `.` and digits. An exponent or a
    /// sign leaves the subset (the caller finds no `,` or `}` after the number).
    fn number(&mut self) -> Option<Scalar<'a>> {
        let leading_zero = self.peek() == Some(b'0');
        let (value, digits) = self.digits()?;
        if leading_zero && digits > 1 {
            return None;
        }
        if self.peek() != Some(b'.') {
            return Some(Scalar::Int(value));
        }
        self.pos += 1;
        match self.digits()? {
            (_, 0) => None,
            _ => Some(Scalar::Fraction),
        }
    }

    /// Consumes a run of digits: its value and length; `None` past [`MAX_DIGITS`].
    fn digits(&mut self) -> Option<(u64, usize)> {
        let start = self.pos;
        let mut value = 0u64;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.pos += 1;
        }
        let digits = self.pos - start;
        (digits <= MAX_DIGITS).then_some((value, digits))
    }

    /// A member's key, which must be `name`, and its `:`.
    fn key(&mut self, name: &str) -> Option<()> {
        (self.string()? == name).then_some(())?;
        self.expect(b':')
    }

    /// The payload: an object of scalars. Returns the values of the members named in
    /// `names`, in that order, `null` as absent; other members are skipped. A name present
    /// twice leaves the line (the general path keeps the last).
    fn payload<const N: usize>(&mut self, names: [&str; N]) -> Option<[Option<Scalar<'a>>; N]> {
        let mut values = [None; N];
        let mut seen = [false; N];
        // Our encoder writes the fields in `names` order: the name after the last one found
        // is tried first.
        let mut next = 0;
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(values);
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.scalar()?;
            let found = match names.get(next) {
                Some(name) if *name == key => Some(next),
                _ => names.iter().position(|n| *n == key),
            };
            if let Some(i) = found {
                next = i + 1;
                if std::mem::replace(seen.get_mut(i)?, true) {
                    return None;
                }
                *values.get_mut(i)? = Some(value).filter(|v| *v != Scalar::Null);
            }
            if !self.comma_or_close()? {
                return Some(values);
            }
        }
    }

    /// After the payload: other members of the envelope (`ts`), ignored whatever their
    /// scalar value, then the end of the line. A second `type` or `payload` leaves the line.
    fn rest_of_envelope(&mut self) -> Option<()> {
        while self.comma_or_close()? {
            let key = self.string()?;
            if key == "type" || key == "payload" {
                return None;
            }
            self.expect(b':')?;
            self.scalar()?;
        }
        self.skip_whitespace();
        (self.pos == self.text.len()).then_some(())
    }
}
