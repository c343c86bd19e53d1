//! The driver's resource limits: what bounds memory and file descriptors per node.

use gossip_core::wire;

/// Limits of a [`crate::Host`]. Every buffer and queue the driver keeps is bounded by one of
/// these, so a slow, silent or hostile remote costs a fixed amount at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, newline excluded. Over it an inbound connection gets `ERROR`
    /// and is closed after the flush; a reply over it fails its request with `BadReply`.
    pub max_line: usize,
    /// A connection's write buffer above this stops taking more: outbound requests wait in
    /// the link's queue, an inbound connection stops reading new requests.
    pub write_high_water: usize,
    /// An inbound connection whose unread replies exceed this is a reader too slow to
    /// serve: it is dropped rather than buffered for.
    pub write_hard_limit: usize,
    /// Requests read from one inbound connection and not yet answered; at this many the
    /// driver stops reading from it until replies go out (pipelining backpressure).
    pub max_pending_replies: usize,
    /// Accepted connections per node; further ones are closed at once.
    pub max_inbound_per_node: usize,
    /// Accepted connections per node from one remote IP address; further ones from it are
    /// closed at once, so one host cannot take every slot of `max_inbound_per_node`.
    pub max_inbound_per_ip: usize,
    /// An accepted connection that has held part of a line (and nothing else outstanding) for
    /// this long is closed: a client that trickles bytes to stay under the idle timeout.
    pub line_timeout_ms: u64,
    /// Per-connection rate limits of `REGISTER_REQ`, `DEAD_REPORT` and `SUSPECT_REQ`; a
    /// request over its rate is answered `ERROR` and never reaches the node.
    pub rate: gossip_core::ratelimit::RateLimits,
    /// An accepted connection with nothing outstanding is closed after this long idle
    /// (a client that connects and says nothing, or stops half-way through a line).
    pub inbound_idle_ms: u64,
    /// A dialled connection with nothing in flight is closed after this long idle.
    pub outbound_idle_ms: u64,
    /// Connections a node keeps to one destination at most (one pipelined, the rest for
    /// requests whose reply may be deferred, or for a remote that closes after each reply).
    pub sockets_per_link: usize,
    /// Requests waiting for a connection to one destination; beyond it a send fails at once
    /// with `Timeout` (the destination is not keeping up).
    pub max_queued_per_link: usize,
    /// With a cluster key: nonces each node remembers to refuse replays (those of the frames
    /// it accepted inside the window); at this many, new frames are refused (`ERROR`) until
    /// old ones expire, rather than memory growing (about 16 to 32 bytes each).
    pub max_replay_entries: usize,
    /// Longest single wait in `poll`, so housekeeping (idle sweeps) runs even when idle.
    pub max_poll_wait_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: wire::DEFAULT_MAX_LINE,
            write_high_water: 256 * 1024,
            write_hard_limit: 8 * 1024 * 1024,
            max_pending_replies: 1024,
            max_inbound_per_node: 4096,
            max_inbound_per_ip: 2048,
            line_timeout_ms: 10_000,
            rate: gossip_core::ratelimit::RateLimits::default(),
            inbound_idle_ms: 60_000,
            outbound_idle_ms: 30_000,
            sockets_per_link: 8,
            max_queued_per_link: 16 * 1024,
            max_replay_entries: wire::auth::MAX_REPLAY_ENTRIES,
            max_poll_wait_ms: 250,
        }
    }
}
