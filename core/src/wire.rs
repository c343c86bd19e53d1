//! The wire format of `PROTOCOL.md`: one JSON object per line,
//! `{"type": ..., "payload": {...}, "ts": <unix seconds>}`. (Being built: issue #2.)

use crate::msg::Message;

/// Longest line accepted by default, newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

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
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one line (without its `\n`; a trailing `\r` is tolerated).
pub fn decode(line: &[u8]) -> Result<Message, DecodeError> {
    let _ = line;
    todo!("issue #2: wire codec")
}

/// Appends `msg` as one JSON line (with its `\n`) to `out`; `ts` is the sender's wall clock
/// in unix seconds (informational).
pub fn encode(msg: &Message, ts: f64, out: &mut Vec<u8>) {
    let _ = (msg, ts, out);
    todo!("issue #2: wire codec")
}
