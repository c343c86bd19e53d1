//! The cluster key: HMAC-SHA256 authentication of every frame between our nodes.
//!
//! Without a key the wire is plain JSON lines ([`super::encode`], [`super::decode`]), byte
//! for byte the reference implementation's. With a [`Keyring`], every line is
//!
//! ```text
//! !<kid>.<ts_ms>.<nonce>.<bind>.<mac> <json>\n
//! ```
//!
//! * `kid`: 8 lowercase hex digits naming the key: the first 4 bytes of
//!   SHA-256(`"gossip-net key id\n"` ‖ key) ([`key_id`]).
//! * `ts_ms`: the sender's unix time in milliseconds, decimal.
//! * `nonce`: 16 lowercase hex digits (64 bits), unique per frame per sender (the driver
//!   starts from a random value and counts up).
//! * `bind`: `-` on a request; on a reply, the `nonce` of the request it answers.
//! * `mac`: 64 lowercase hex digits: HMAC-SHA256(key, `"gossip-net/1\n"` ‖
//!   `<kid>.<ts_ms>.<nonce>.<bind> <json>`), i.e. over every byte of the line as sent but
//!   the `!`, the mac field with its `.`, and the newline.
//! * `<json>`: exactly the unkeyed line's JSON.
//!
//! [`open`] checks, in order: the prefix parses ([`AuthError::Missing`],
//! [`AuthError::Malformed`]); `kid` is in the keyring ([`AuthError::UnknownKey`]); the MAC
//! verifies, in constant time ([`AuthError::BadMac`]); `|ts_ms - now| <= window`
//! ([`AuthError::Stale`]); the nonce was not seen inside the window ([`AuthError::Replayed`],
//! kept by a [`ReplayCache`]); a request carries no `bind` ([`AuthError::BoundRequest`]) and a
//! reply carries its request's nonce ([`AuthError::Unbound`]); the cache has room
//! ([`AuthError::CacheFull`]). A refused frame leaves the cache as it was.
//!
//! This module does no I/O: the caller passes the time and the nonces, and reads key files
//! itself ([`Keyring::parse`] takes their text). The MAC is RustCrypto's `Hmac<Sha256>`,
//! verified with its constant-time `verify_slice`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a frame's `ts_ms` may be from the receiver's clock, either way.
pub const WINDOW_MS: u64 = 30_000;

/// Most nonces a [`ReplayCache`] holds by default; over it new frames are refused
/// ([`AuthError::CacheFull`]) rather than memory growing.
pub const MAX_REPLAY_ENTRIES: usize = 1 << 20;

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

/// Prefix of the hash that names a key.
pub const KEY_ID_CONTEXT: &[u8] = b"gossip-net key id\n";

/// Prefix of every MAC's input (the protocol version of the frame format).
pub const MAC_CONTEXT: &[u8] = b"gossip-net/1\n";

/// Longest cluster-key prefix, `!` to the space before the JSON included (a reader's line
/// limit grows by this much when keyed, so the limit still counts the JSON).
pub const MAX_PREFIX: usize =
    1 + KID_LEN + 1 + MAX_TS_DIGITS + 1 + NONCE_LEN + 1 + NONCE_LEN + 1 + MAC_LEN + 1;

const KID_LEN: usize = 8;
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 64;
/// Digits of the longest `ts_ms` (`u64::MAX` has 20).
const MAX_TS_DIGITS: usize = 20;

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// The 8 lowercase hex digits naming `key`: the first 4 bytes of
/// SHA-256(`"gossip-net key id\n"` ‖ key).
pub fn key_id(key: &[u8]) -> [u8; KID_LEN] {
    let mut h = Sha256::new();
    h.update(KEY_ID_CONTEXT);
    h.update(key);
    let digest = h.finalize();
    let mut kid = [0u8; KID_LEN];
    for (pair, byte) in kid.chunks_exact_mut(2).zip(digest.iter()) {
        pair.copy_from_slice(&hex_pair(*byte));
    }
    kid
}

/// One key: its id and an HMAC already keyed (and fed [`MAC_CONTEXT`]), cloned per frame so
/// the key schedule is computed once.
#[derive(Clone)]
struct Key {
    kid: [u8; KID_LEN],
    mac: HmacSha256,
}

impl Key {
    fn new(bytes: &[u8]) -> Option<Key> {
        let mut mac = HmacSha256::new_from_slice(bytes).ok()?;
        mac.update(MAC_CONTEXT);
        Some(Key {
            kid: key_id(bytes),
            mac,
        })
    }
}

/// The keys a node accepts, in order; the first one seals what the node sends. Several keys
/// let a cluster rotate its key without downtime (add the new key everywhere, then make it
/// the first everywhere, then remove the old one). Never empty.
///
/// Its `Debug` shows key ids only, never key material.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// Why a key file (or a list of keys) is not a keyring. Never shows key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// No key at all (only blank lines and comments).
    NoKey,
    /// A character that is not a hex digit.
    NotHex {
        /// 1-based line (or key position for [`Keyring::from_keys`]).
        line: usize,
        /// 1-based column of the character.
        column: usize,
    },
    /// An odd number of hex digits.
    OddLength {
        /// 1-based line.
        line: usize,
        /// Hex digits found.
        digits: usize,
    },
    /// A key shorter than [`MIN_KEY_BYTES`] or longer than [`MAX_KEY_BYTES`].
    Length {
        /// 1-based line.
        line: usize,
        /// Bytes found.
        bytes: usize,
    },
    /// The same key twice.
    Duplicate {
        /// 1-based line of the repeat.
        line: usize,
        /// 1-based line of the first.
        first: usize,
    },
}

impl std::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFileError::NoKey => write!(
                f,
                "no key found (expected one key per line, {} to {} hex digits; `#` starts a comment)",
                2 * MIN_KEY_BYTES,
                2 * MAX_KEY_BYTES
            ),
            KeyFileError::NotHex { line, column } => write!(
                f,
                "line {line}: column {column} is not a hex digit (a key is {} to {} hex digits)",
                2 * MIN_KEY_BYTES,
                2 * MAX_KEY_BYTES
            ),
            KeyFileError::OddLength { line, digits } => {
                write!(f, "line {line}: odd number of hex digits ({digits})")
            }
            KeyFileError::Length { line, bytes } => write!(
                f,
                "line {line}: key of {bytes} bytes; expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES} \
                 bytes ({} to {} hex digits, e.g. `openssl rand -hex 32`)",
                2 * MIN_KEY_BYTES,
                2 * MAX_KEY_BYTES
            ),
            KeyFileError::Duplicate { line, first } => {
                write!(f, "line {line}: the same key as line {first}")
            }
        }
    }
}

impl std::error::Error for KeyFileError {}

impl Keyring {
    /// A keyring of raw keys, the first sending. Errors name the key's 1-based position as
    /// its "line".
    pub fn from_keys<K: AsRef<[u8]>>(keys: &[K]) -> Result<Keyring, KeyFileError> {
        build(
            keys.iter()
                .enumerate()
                .map(|(i, k)| Ok((i + 1, k.as_ref().to_vec()))),
        )
    }

    /// Parses a key file's text: one key per line in hex, 16 to 64 bytes (32 to 128 hex
    /// digits; 64 digits is the usual 32-byte key), either case; `#` starts a comment; blank
    /// lines are ignored. The first key is the sending key. Errors name the line (and never
    /// show key material).
    pub fn parse(text: &str) -> Result<Keyring, KeyFileError> {
        build(text.lines().enumerate().filter_map(|(i, raw_line)| {
            let line = i + 1;
            let content = raw_line.split('#').next().unwrap_or_default();
            let trimmed = content.trim();
            if trimmed.is_empty() {
                return None;
            }
            let lead = content.len() - content.trim_start().len();
            let digits = trimmed.as_bytes();
            if let Some(bad) = digits.iter().position(|b| hex_value(*b).is_none()) {
                let column = raw_line
                    .get(..lead + bad)
                    .map_or(lead + bad, |s| s.chars().count())
                    + 1;
                return Some(Err(KeyFileError::NotHex { line, column }));
            }
            if digits.len() % 2 != 0 {
                return Some(Err(KeyFileError::OddLength {
                    line,
                    digits: digits.len(),
                }));
            }
            let key = digits
                .chunks_exact(2)
                .map(|p| {
                    let hi = p.first().and_then(|b| hex_value(*b)).unwrap_or(0);
                    let lo = p.get(1).and_then(|b| hex_value(*b)).unwrap_or(0);
                    (hi << 4) | lo
                })
                .collect();
            Some(Ok((line, key)))
        }))
    }

    /// The ids of the keys, sending key first (8 lowercase hex digits each).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| String::from_utf8_lossy(&k.kid).into_owned())
            .collect()
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A keyring of the keys found at their lines, in order; the first error (in line order)
/// wins.
fn build(
    entries: impl Iterator<Item = Result<(usize, Vec<u8>), KeyFileError>>,
) -> Result<Keyring, KeyFileError> {
    let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut keys = Vec::new();
    for entry in entries {
        let (line, key) = entry?;
        let length = KeyFileError::Length {
            line,
            bytes: key.len(),
        };
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(length);
        }
        if let Some((first, _)) = seen.iter().find(|(_, k)| *k == key) {
            return Err(KeyFileError::Duplicate {
                line,
                first: *first,
            });
        }
        keys.push(Key::new(&key).ok_or(length)?);
        seen.push((line, key));
    }
    if keys.is_empty() {
        return Err(KeyFileError::NoKey);
    }
    Ok(Keyring { keys })
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// The header fields of one frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The sender's unix time in milliseconds.
    pub ts_ms: u64,
    /// Unique per frame per sender.
    pub nonce: u64,
    /// `None` on a request; on a reply, the nonce of the request it answers.
    pub bind: Option<u64>,
}

/// Appends one sealed line (with its `\n`) to `out`: the header under the keyring's first
/// key, then the JSON that `json` appends (one line; the `\n` it may end with is kept as the
/// line's end, and added if missing). Nothing is allocated beyond `out`'s growth.
pub fn seal_with(ring: &Keyring, stamp: Stamp, out: &mut Vec<u8>, json: impl FnOnce(&mut Vec<u8>)) {
    let Some(key) = ring.keys.first() else {
        // Unreachable: a keyring is never empty. Write the JSON so the stream stays framed;
        // the receiver refuses it as unsealed.
        json(out);
        return;
    };
    let start = out.len();
    out.push(b'!');
    out.extend_from_slice(&key.kid);
    out.push(b'.');
    write_decimal(out, stamp.ts_ms);
    out.push(b'.');
    write_hex64(out, stamp.nonce);
    out.push(b'.');
    match stamp.bind {
        None => out.push(b'-'),
        Some(bind) => write_hex64(out, bind),
    }
    let header_end = out.len();
    out.push(b'.');
    let mac_at = out.len();
    out.extend_from_slice(&[b'0'; MAC_LEN]);
    out.push(b' ');
    let json_at = out.len();
    json(out);
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    let json_end = out.len() - 1;
    let mut mac = key.mac.clone();
    mac.update(out.get(start + 1..header_end).unwrap_or_default());
    mac.update(b" ");
    mac.update(out.get(json_at..json_end).unwrap_or_default());
    let tag = mac.finalize().into_bytes();
    if let Some(field) = out.get_mut(mac_at..mac_at + MAC_LEN) {
        for (pair, byte) in field.chunks_exact_mut(2).zip(tag.iter()) {
            pair.copy_from_slice(&hex_pair(*byte));
        }
    }
}

/// Appends `json` (one line, without a raw newline inside; a final `\n` is optional) sealed
/// under the keyring's first key to `out`, with its `\n`.
pub fn seal(ring: &Keyring, stamp: Stamp, json: &[u8], out: &mut Vec<u8>) {
    let json = json.strip_suffix(b"\n").unwrap_or(json);
    seal_with(ring, stamp, out, |out| {
        out.extend_from_slice(json);
        out.push(b'\n');
    });
}

// ---------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------

/// What the receiver expects of a frame's `bind`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A request: `bind` must be `-`.
    Request,
    /// The reply to the request sent with this nonce: `bind` must be it.
    Reply(u64),
}

/// A frame that passed every check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The JSON, exactly as the unkeyed line would be (for [`super::decode`]).
    pub json: &'a [u8],
    /// The header.
    pub stamp: Stamp,
    /// Which key of the ring verified it (0: the sending key).
    pub key_index: usize,
}

/// Why a frame was refused. Its `Display` is the `ERROR` reason sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The line does not start with a cluster-key prefix (a plain JSON line, say).
    Missing,
    /// The prefix is there but not well formed.
    Malformed,
    /// `kid` names no key of the keyring.
    UnknownKey,
    /// The MAC does not verify.
    BadMac,
    /// `ts_ms` is further than the window from the receiver's clock.
    Stale {
        /// The window, in milliseconds.
        window_ms: u64,
    },
    /// The nonce was seen inside the window.
    Replayed,
    /// The replay cache is full: the frame cannot be remembered, so it is refused.
    CacheFull,
    /// A reply whose `bind` is not the nonce of the request it answers.
    Unbound,
    /// A request that carries a `bind` (a reply sent back as a request).
    BoundRequest,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => f.write_str("frame without a cluster-key MAC"),
            AuthError::Malformed => f.write_str("malformed cluster-key prefix"),
            AuthError::UnknownKey => f.write_str("unknown key id"),
            AuthError::BadMac => f.write_str("bad MAC"),
            AuthError::Stale { window_ms } if window_ms % 1000 == 0 => {
                write!(f, "timestamp outside the {} s window", window_ms / 1000)
            }
            AuthError::Stale { window_ms } => {
                write!(f, "timestamp outside the {window_ms} ms window")
            }
            AuthError::Replayed => f.write_str("replayed nonce"),
            AuthError::CacheFull => f.write_str("replay cache full"),
            AuthError::Unbound => f.write_str("reply not bound to its request"),
            AuthError::BoundRequest => f.write_str("request bound to another frame"),
        }
    }
}

impl std::error::Error for AuthError {}

/// A refused frame: why, and its nonce if its MAC verified (the frame is a member's, so an
/// `ERROR` may be bound to it; a stranger's frame gets an unbound one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub error: AuthError,
    /// The frame's nonce, if the MAC verified.
    pub nonce: Option<u64>,
}

/// The parsed prefix of a sealed line.
struct Header<'a> {
    kid: &'a [u8],
    /// `<kid>.<ts_ms>.<nonce>.<bind>`: what the MAC covers before the JSON.
    covered: &'a [u8],
    ts_ms: u64,
    nonce: u64,
    bind: Option<u64>,
    mac: [u8; 32],
    json: &'a [u8],
}

fn parse_header(line: &[u8]) -> Result<Header<'_>, AuthError> {
    let Some(rest) = line.strip_prefix(b"!") else {
        return Err(AuthError::Missing);
    };
    let bad = AuthError::Malformed;
    let (kid, rest) = split_field(rest, KID_LEN).ok_or(bad.clone())?;
    if !kid.iter().all(|b| is_lower_hex(*b)) {
        return Err(bad);
    }
    let digits = rest
        .iter()
        .take(MAX_TS_DIGITS + 1)
        .position(|b| *b == b'.')
        .ok_or(bad.clone())?;
    let (ts, rest) = split_field(rest, digits).ok_or(bad.clone())?;
    let ts_ms = parse_decimal(ts).ok_or(bad.clone())?;
    let (nonce, rest) = split_field(rest, NONCE_LEN).ok_or(bad.clone())?;
    let nonce = parse_hex64(nonce).ok_or(bad.clone())?;
    let (bind, rest) = if rest.first() == Some(&b'-') {
        let (_, rest) = split_field(rest, 1).ok_or(bad.clone())?;
        (None, rest)
    } else {
        let (bind, rest) = split_field(rest, NONCE_LEN).ok_or(bad.clone())?;
        (Some(parse_hex64(bind).ok_or(bad.clone())?), rest)
    };
    // `rest` starts after the `.` that ends `bind`; the MAC covers up to before that `.`.
    let covered_len = line.len() - 1 - rest.len() - 1;
    let covered = line.get(1..1 + covered_len).ok_or(bad.clone())?;
    let mac_hex = rest.get(..MAC_LEN).ok_or(bad.clone())?;
    if rest.get(MAC_LEN) != Some(&b' ') {
        return Err(bad);
    }
    let json = rest.get(MAC_LEN + 1..).ok_or(bad.clone())?;
    let mut mac = [0u8; 32];
    for (byte, pair) in mac.iter_mut().zip(mac_hex.chunks_exact(2)) {
        let hi = pair.first().copied().and_then(lower_hex_value);
        let lo = pair.get(1).copied().and_then(lower_hex_value);
        match (hi, lo) {
            (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
            _ => return Err(bad),
        }
    }
    Ok(Header {
        kid,
        covered,
        ts_ms,
        nonce,
        bind,
        mac,
        json,
    })
}

/// Splits `len` bytes off `bytes`, which must be followed by a `.` (skipped).
fn split_field(bytes: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    let field = bytes.get(..len)?;
    if bytes.get(len) != Some(&b'.') {
        return None;
    }
    Some((field, bytes.get(len + 1..)?))
}

/// Checks a received line (without its `\n`) against the keyring, at `now_unix_ms` on the
/// receiver's wall clock, and records its nonce in `replay`. See the module documentation
/// for the order of the checks. A refused frame leaves `replay` unchanged.
pub fn open<'a>(
    ring: &Keyring,
    line: &'a [u8],
    now_unix_ms: u64,
    expect: Expect,
    replay: &mut ReplayCache,
) -> Result<Opened<'a>, Refused> {
    let refuse = |error, nonce| Refused { error, nonce };
    let h = parse_header(line).map_err(|e| refuse(e, None))?;
    let Some(key_index) = ring.keys.iter().position(|k| k.kid == h.kid) else {
        return Err(refuse(AuthError::UnknownKey, None));
    };
    let Some(key) = ring.keys.get(key_index) else {
        return Err(refuse(AuthError::UnknownKey, None));
    };
    let mut mac = key.mac.clone();
    mac.update(h.covered);
    mac.update(b" ");
    mac.update(h.json);
    if mac.verify_slice(&h.mac).is_err() {
        return Err(refuse(AuthError::BadMac, None));
    }
    let authentic = Some(h.nonce);
    let window_ms = replay.window_ms();
    if h.ts_ms.abs_diff(now_unix_ms) > window_ms {
        return Err(refuse(AuthError::Stale { window_ms }, authentic));
    }
    replay.expire(now_unix_ms);
    if replay.contains(h.ts_ms, h.nonce) {
        return Err(refuse(AuthError::Replayed, authentic));
    }
    match (expect, h.bind) {
        (Expect::Request, None) => {}
        (Expect::Request, Some(_)) => return Err(refuse(AuthError::BoundRequest, authentic)),
        (Expect::Reply(n), Some(b)) if n == b => {}
        (Expect::Reply(_), _) => return Err(refuse(AuthError::Unbound, authentic)),
    }
    if !replay.insert(h.ts_ms, h.nonce, now_unix_ms) {
        return Err(refuse(AuthError::CacheFull, authentic));
    }
    Ok(Opened {
        json: h.json,
        stamp: Stamp {
            ts_ms: h.ts_ms,
            nonce: h.nonce,
            bind: h.bind,
        },
        key_index,
    })
}

// ---------------------------------------------------------------------------------------
// Replay cache
// ---------------------------------------------------------------------------------------

/// Time slots per window: a nonce is kept until its frame's `ts_ms` is at most one slot
/// (an eighth of the window) past the window, after which the timestamp check refuses a
/// replay anyway.
const SLOTS_PER_WINDOW: u64 = 8;

/// A hasher for nonces: one SplitMix64 scramble (deterministic: no random state; only frames
/// whose MAC verified reach the cache, so no stranger chooses the keys).
#[derive(Default)]
struct NonceHasher(u64);

impl Hasher for NonceHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = crate::hash::combine(self.0, u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = crate::hash::mix64(self.0 ^ n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NonceSet = HashSet<u64, BuildHasherDefault<NonceHasher>>;

struct Slot {
    /// `ts_ms / slot_ms` of every frame in it.
    index: u64,
    nonces: NonceSet,
}

/// The nonces of the frames accepted inside the window, bounded in time and in count, driven
/// by the time the caller gives (no clock of its own).
///
/// Frames are filed by their own `ts_ms` (a replay carries the same timestamp, since the MAC
/// covers it) in slots of an eighth of the window; a slot is dropped once every timestamp in
/// it is older than the window, when the timestamp check refuses its frames anyway. At
/// `cap` nonces, new frames are refused ([`AuthError::CacheFull`]) until slots expire.
pub struct ReplayCache {
    window_ms: u64,
    slot_ms: u64,
    cap: usize,
    len: usize,
    slots: Vec<Slot>,
    /// No slot expires before this (unix ms).
    next_expiry: u64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("window_ms", &self.window_ms)
            .field("cap", &self.cap)
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(WINDOW_MS, MAX_REPLAY_ENTRIES)
    }
}

impl ReplayCache {
    /// An empty cache for frames within `window_ms` of the clock, holding at most `cap`
    /// nonces. Allocates nothing until the first nonce.
    pub fn new(window_ms: u64, cap: usize) -> ReplayCache {
        ReplayCache {
            window_ms,
            slot_ms: (window_ms / SLOTS_PER_WINDOW).max(1),
            cap,
            len: 0,
            slots: Vec::new(),
            next_expiry: u64::MAX,
        }
    }

    /// The window, in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Nonces held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most nonces held at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether the frame stamped `ts_ms` with `nonce` was recorded.
    pub fn contains(&self, ts_ms: u64, nonce: u64) -> bool {
        let index = ts_ms / self.slot_ms;
        self.slots
            .iter()
            .find(|s| s.index == index)
            .is_some_and(|s| s.nonces.contains(&nonce))
    }

    /// Records a frame; false (and nothing recorded) if the cache is full. Expires old slots
    /// first.
    pub fn insert(&mut self, ts_ms: u64, nonce: u64, now_unix_ms: u64) -> bool {
        self.expire(now_unix_ms);
        if self.len >= self.cap {
            return false;
        }
        let index = ts_ms / self.slot_ms;
        let slot = match self.slots.iter().position(|s| s.index == index) {
            Some(i) => self.slots.get_mut(i),
            None => {
                self.slots.push(Slot {
                    index,
                    nonces: NonceSet::default(),
                });
                self.next_expiry = self.next_expiry.min(self.expiry_of(index));
                self.slots.last_mut()
            }
        };
        if let Some(slot) = slot {
            if slot.nonces.insert(nonce) {
                self.len += 1;
            }
        }
        true
    }

    /// When every timestamp of slot `index` is older than the window.
    fn expiry_of(&self, index: u64) -> u64 {
        index
            .saturating_add(1)
            .saturating_mul(self.slot_ms)
            .saturating_add(self.window_ms)
    }

    /// Drops the slots whose timestamps are all older than the window at `now_unix_ms`.
    pub fn expire(&mut self, now_unix_ms: u64) {
        if now_unix_ms <= self.next_expiry {
            return;
        }
        let (slot_ms, window_ms) = (self.slot_ms, self.window_ms);
        let expiry = |index: u64| {
            index
                .saturating_add(1)
                .saturating_mul(slot_ms)
                .saturating_add(window_ms)
        };
        let mut dropped = 0;
        self.slots.retain(|s| {
            let keep = expiry(s.index) >= now_unix_ms;
            if !keep {
                dropped += s.nonces.len();
            }
            keep
        });
        self.len -= dropped;
        self.next_expiry = self
            .slots
            .iter()
            .map(|s| expiry(s.index))
            .min()
            .unwrap_or(u64::MAX);
    }
}

// ---------------------------------------------------------------------------------------
// Digits
// ---------------------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_pair(byte: u8) -> [u8; 2] {
    [
        HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'),
        HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0'),
    ]
}

fn write_hex64(out: &mut Vec<u8>, n: u64) {
    for byte in n.to_be_bytes() {
        out.extend_from_slice(&hex_pair(byte));
    }
}

fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; MAX_TS_DIGITS];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

fn is_lower_hex(b: u8) -> bool {
    lower_hex_value(b).is_some()
}

/// Value of each byte as a lowercase hex digit, `0xff` if it is none (a table: this runs
/// for the 80 hex digits of every frame opened).
const LOWER_HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn lower_hex_value(b: u8) -> Option<u8> {
    match LOWER_HEX_VALUE.get(usize::from(b)).copied() {
        Some(v) if v < 16 => Some(v),
        _ => None,
    }
}

/// A hex digit of either case (key files).
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => lower_hex_value(b),
    }
}

fn parse_hex64(field: &[u8]) -> Option<u64> {
    if field.len() != NONCE_LEN {
        return None;
    }
    field.iter().try_fold(0u64, |n, b| {
        Some((n << 4) | u64::from(lower_hex_value(*b)?))
    })
}

/// A decimal without sign or leading zero (but `0` itself), fitting a u64.
fn parse_decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() || (field.len() > 1 && field.first() == Some(&b'0')) {
        return None;
    }
    field.iter().try_fold(0u64, |n, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests;
