//! Gossip: generation on a timer, first-time forwarding to every neighbour but the sender,
//! and de-duplication. It owns the seen set and the gossip counters; the neighbours it
//! forwards to are the overlay's.
//!
//! This is the busiest path of a peer: no formatting, no allocation on a forward (every copy
//! of a gossip shares its origin's body through an `Arc`; only the sender and the hop count
//! are rewritten), and an O(1) seen check.

use std::sync::Arc;

use super::overlay::Overlay;
use super::seen::{gossip_key, SeenSet};
use super::{Cx, Timer};
use crate::msg::{Endpoint, Gossip as GossipMsg, GossipAck, GossipBody, Message};
use crate::{ConnId, Event, Output};

/// The gossip a peer made and saw.
#[derive(Debug)]
pub(super) struct Gossip {
    /// Keys of the gossip seen (made here or received), bounded.
    seen: SeenSet,
    /// Gossip made so far (1-based numbers up to `max_gossip`).
    generated: u32,
    /// First-time deliveries.
    pub first: u64,
    /// Repeats dropped.
    pub duplicate: u64,
}

impl Gossip {
    pub(super) fn new(seen_capacity: u32) -> Gossip {
        Gossip {
            seen: SeenSet::new(usize::try_from(seen_capacity).unwrap_or(usize::MAX)),
            generated: 0,
            first: 0,
            duplicate: 0,
        }
    }

    /// Gossip made so far.
    pub(super) fn generated(&self) -> u32 {
        self.generated
    }

    /// Makes the next gossip `<timestamp>:<IP>:<Msg#>` and sends it to every neighbour;
    /// arms the next one until `max_gossip` are made.
    pub(super) fn generate(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        if self.generated >= cx.settings.max_gossip {
            return;
        }
        self.generated += 1;
        let msg_no = self.generated;
        let now_secs = cx.unix_secs();
        let text: Arc<str> = Arc::from(format!("{}:{}:{}", now_secs, cx.me.ip(), msg_no));
        let key = gossip_key(&text, Some(cx.me.port()));
        self.seen.insert(key, now_secs);
        cx.emit(Event::GossipGenerated {
            text: Arc::clone(&text),
            msg_no,
        });
        let gossip = GossipMsg {
            body: Arc::new(GossipBody {
                text,
                origin_ip: cx.me.ip(),
                origin_port: Some(cx.me.port()),
                msg_no,
            }),
            sender: cx.me,
            hops: 1,
        };
        forward(cx, overlay, &gossip, None);
        if self.generated < cx.settings.max_gossip {
            let at = cx.after(cx.settings.gossip_interval_ms);
            cx.timers.set(Timer::Gossip, at);
        }
    }

    /// Incoming gossip, from a neighbour or not (the reference may gossip before `HELLO`):
    /// acknowledged; forwarded if it is the first copy, dropped (and noted) if not.
    pub(super) fn on_gossip(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        conn: ConnId,
        gossip: &GossipMsg,
    ) {
        let body = &gossip.body;
        let key = gossip_key(&body.text, body.origin_port);
        let first = self.seen.insert(key, cx.unix_secs());
        cx.reply(
            conn,
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: !first,
            }),
        );
        let from = gossip.sender;
        if !first {
            self.duplicate += 1;
            cx.emit(Event::GossipDuplicate {
                text: Arc::clone(&body.text),
                from,
            });
            return;
        }
        self.first += 1;
        cx.emit(Event::GossipFirstReceived {
            text: Arc::clone(&body.text),
            from,
            hops: gossip.hops,
        });
        let onward = GossipMsg {
            body: Arc::clone(body),
            sender: cx.me,
            hops: gossip.hops.saturating_add(1),
        };
        forward(cx, overlay, &onward, Some(from));
    }
}

/// Sends `gossip` to every neighbour but `except`. Every copy shares its body. The acks are
/// not wanted: liveness comes from probes, and a lost copy is a duplicate's business.
fn forward(cx: &mut Cx<'_>, overlay: &Overlay, gossip: &GossipMsg, except: Option<Endpoint>) {
    let deadline = cx.after(cx.settings.request_timeout_ms);
    cx.out.reserve(overlay.len());
    cx.out.extend(
        overlay
            .keys()
            .filter(|&&to| Some(to) != except)
            .map(|&to| Output::Send {
                to,
                msg: Message::Gossip(gossip.clone()),
                deadline,
                wants_response: false,
            }),
    );
}
