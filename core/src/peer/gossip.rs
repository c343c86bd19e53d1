//! Gossip: generation on a timer and first-time forwarding. This is the simulator's hot
//! path: no formatting, no allocation (every copy of a gossip shares its origin's body through
//! an `Arc`; only the sender and hop count are rewritten), and an O(1) seen check.

use std::sync::Arc;

use super::{gossip_key, Peer, Timer};
use crate::msg::{Endpoint, Gossip, GossipAck, GossipBody, Message};
use crate::{ConnId, Event, Millis, Output};

impl Peer {
    // ----- gossip (hot path) ----------------------------------------------------------------

    pub(super) fn unix_secs(&self, now: Millis) -> u64 {
        self.unix_ms_at_zero.saturating_add(now.0) / 1000
    }

    pub(super) fn generate_gossip(&mut self, now: Millis) {
        if self.generated >= self.settings.max_gossip {
            return;
        }
        self.generated += 1;
        let msg_no = self.generated;
        let text: Arc<str> = Arc::from(format!(
            "{}:{}:{}",
            self.unix_secs(now),
            self.me.ip(),
            msg_no
        ));
        let key = gossip_key(&text, Some(self.me.port()));
        self.seen.insert(key, self.unix_secs(now));
        self.counters.gossip_generated += 1;
        self.emit(Event::GossipGenerated {
            text: Arc::clone(&text),
            msg_no,
        });
        let gossip = Gossip {
            body: Arc::new(GossipBody {
                text,
                origin_ip: self.me.ip(),
                origin_port: Some(self.me.port()),
                msg_no,
            }),
            sender: self.me,
            hops: 1,
        };
        self.forward(now, &gossip, None);
        if self.generated < self.settings.max_gossip {
            self.timers
                .set(Timer::Gossip, now.after(self.settings.gossip_interval_ms));
        }
    }

    /// Sends `gossip` to every neighbour but `except`. Every copy shares its body.
    pub(super) fn forward(&mut self, now: Millis, gossip: &Gossip, except: Option<Endpoint>) {
        let deadline = now.after(self.request_timeout_ms);
        self.outputs.reserve(self.neighbours.len());
        self.outputs.extend(
            self.neighbours
                .keys()
                .filter(|&&to| Some(to) != except)
                .map(|&to| Output::Send {
                    to,
                    msg: Message::Gossip(gossip.clone()),
                    deadline,
                }),
        );
    }

    /// Incoming gossip, from a neighbour or not (the reference may gossip before `HELLO`).
    pub(super) fn on_gossip(&mut self, now: Millis, conn: ConnId, gossip: &Gossip) {
        let body = &gossip.body;
        let key = gossip_key(&body.text, body.origin_port);
        let first = self.seen.insert(key, self.unix_secs(now));
        self.reply(
            conn,
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: !first,
            }),
        );
        let from = gossip.sender;
        if !first {
            self.gossip_counts.duplicate += 1;
            self.emit(Event::GossipDuplicate {
                text: Arc::clone(&body.text),
                from,
            });
            return;
        }
        self.gossip_counts.first += 1;
        self.emit(Event::GossipFirstReceived {
            text: Arc::clone(&body.text),
            from,
            hops: gossip.hops,
        });
        let onward = Gossip {
            body: Arc::clone(body),
            sender: self.me,
            hops: gossip.hops.saturating_add(1),
        };
        self.forward(now, &onward, Some(from));
    }
}
