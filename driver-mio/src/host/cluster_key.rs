//! The cluster key's part in the host: opening a keyed line read from a connection, the
//! wall clock for frame timestamps, and the random start of the nonces. Sealing is done
//! where lines are written (`inbound.rs` for replies, `outbound.rs` for requests).

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use gossip_core::msg::Message;
use gossip_core::wire::auth::{self, Expect, Keyring, ReplayCache};
use gossip_core::wire::{self, DecodeError};

use super::Stats;

/// Opens a line read under the cluster key and decodes its JSON; on a refusal, counts it
/// and returns the reason with the nonce an `ERROR` may be bound to (a member's frame only).
pub(super) fn open_line(
    ring: &Keyring,
    replay: Option<&mut ReplayCache>,
    line: &[u8],
    (expect, now_unix_ms): (Expect, u64),
    stats: &mut Stats,
) -> (Result<Message, DecodeError>, Option<u64>) {
    let refused = match replay {
        Some(replay) => match auth::open(ring, line, now_unix_ms, expect, replay) {
            Ok(opened) => return (wire::decode(opened.json), Some(opened.stamp.nonce)),
            Err(refused) => refused,
        },
        None => auth::Refused {
            error: auth::AuthError::Missing,
            nonce: None,
        },
    };
    stats.auth_refused += 1;
    log::debug!("cluster key: refused a line: {}", refused.error);
    (Err(DecodeError::Auth(refused.error)), refused.nonce)
}

/// Unix time in milliseconds on the wall clock (cluster-key timestamps).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A random 64-bit start for cluster-key nonces: 8 bytes of `/dev/urandom`, or (if that
/// cannot be read) a hash of the wall clock and the process id. Nonces
/// then count up from it, so they are unique per sender.
pub fn nonce_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if random {
        return u64::from_le_bytes(bytes);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    gossip_core::hash::combine(nanos, u64::from(std::process::id()))
}
