//! Gossip: generation on a timer, first-time forwarding, de-duplication, and the repair that
//! sends again what a neighbour lost. It owns the seen set, the retained gossip and the
//! gossip counters; the neighbours it forwards to are the overlay's.
//!
//! - this file: making gossip, taking a pushed copy (`GOSSIP_MSG`), delivering a first-time
//!   copy (whatever brought it) and forwarding it;
//! - `retained.rs`: the bodies kept for repair, with their per-second digest;
//! - `repair.rs`: the exchange with neighbours (`GOSSIP_DIGEST`, `IHAVE`, `GOSSIP_PULL`) and
//!   the gossips announced but not yet received;
//! - `lazy.rs`: lazy push (Plumtree): which links get gossip whole and which only hear of it;
//! - `app.rs`: application messages: publishing, their ids and rate limits.
//!
//! The push path is the busiest of a peer: no formatting, no allocation on a forward (every
//! copy of a gossip shares its origin's body through an `Arc`; only the sender and the hop
//! count are rewritten), and an O(1) seen check.

pub(super) mod app;
mod lazy;
mod repair;
mod retained;

use std::sync::Arc;

use super::overlay::{Overlay, Speaks};
use super::seen::{gossip_key, GossipKey, SeenSet};
use super::{Cx, Timer};
use crate::config::GossipMode;
use crate::msg::{Endpoint, Gossip as GossipMsg, GossipAck, GossipBody, IpText, Message};
use crate::{ConnId, Event, Output};

pub use app::MAX_TRACKED_ORIGINS;

pub use lazy::MAX_OWED_ANNOUNCEMENTS;
pub use repair::{MAX_MISSING, MAX_MISSING_HEARSAY, MAX_PULLS_IN_FLIGHT, MAX_PULL_BYTES};
pub use retained::{BODY_OVERHEAD, MARGIN_SECS, MAX_RETAINED, MAX_RETAINED_BYTES, RETAIN_SECS};

use app::Apps;
use lazy::Lazy;
use repair::{grouped, Repair};
use retained::Retained;

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
    /// The bodies kept for repair.
    retained: Retained,
    /// The exchange with neighbours.
    repair: Repair,
    /// Lazy push's announcements owed and counters.
    lazy: Lazy,
    /// Application messages: publishing and per-origin limits.
    apps: Apps,
}

impl Gossip {
    pub(super) fn new(seen_capacity: u32) -> Gossip {
        Gossip {
            seen: SeenSet::new(usize::try_from(seen_capacity).unwrap_or(usize::MAX)),
            generated: 0,
            first: 0,
            duplicate: 0,
            retained: Retained::new(),
            repair: Repair::default(),
            lazy: Lazy::default(),
            apps: Apps::default(),
        }
    }

    /// First-time deliveries so far, gossip and application messages.
    pub(super) fn delivered_total(&self) -> u64 {
        self.first + self.apps.delivered
    }

    /// Gossip made so far.
    pub(super) fn generated(&self) -> u32 {
        self.generated
    }

    /// The peer bootstrapped: arms the repair rounds (at a random phase, so neighbours do
    /// not all exchange in the same millisecond).
    pub(super) fn start(cx: &mut Cx<'_>) {
        if cx.settings.gossip_repair {
            let interval = cx.settings.repair_interval_ms;
            let phase = interval / 2 + cx.rng.below(interval);
            let at = cx.after(phase);
            cx.timers.set(Timer::Reconcile, at);
        }
    }

    /// Counters for `STATUS_RESP`, by name.
    pub(super) fn counters(&self) -> [(&'static str, u64); 18] {
        let r = &self.repair;
        let l = &self.lazy;
        let a = &self.apps;
        [
            ("app_delivered", a.delivered),
            ("app_duplicate", a.duplicates),
            ("app_published", a.published),
            ("app_rate_limited", a.rate_limited),
            ("lazy_grafts_heard", l.grafts_heard),
            ("lazy_grafts_sent", l.grafts_sent),
            ("lazy_ids_announced", l.ids_announced),
            ("lazy_ihave_sent", l.ihave_sent),
            ("lazy_prunes_heard", l.prunes_heard),
            ("lazy_prunes_sent", l.prunes_sent),
            ("gossip_repaired", r.repaired),
            ("gossip_retained", self.retained.len() as u64),
            ("gossip_retained_bytes", self.retained.bytes() as u64),
            ("repair_digests", r.digests_sent),
            ("repair_pulls", r.pulls_sent),
            ("repair_bodies_served", r.bodies_served),
            ("repair_refused", r.refused),
            ("repair_unasked", r.unasked),
        ]
    }

    /// Once the peer has a neighbour, it keeps and reconciles the gossip stamped from that
    /// second on: a gossip made while it had a neighbour is owed to it (it may have missed
    /// it), one made before is not. Called after every input (an O(1) check once open).
    #[inline]
    pub(super) fn note_links(&mut self, cx: &Cx<'_>, overlay: &Overlay) {
        if self.retained.closed() && overlay.len() > 0 {
            self.retained.open(cx.unix_secs());
        }
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
        let text: Arc<str> = Arc::from(format!("{}:{}:{}", now_secs, IpText(cx.me.ip()), msg_no));
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
                app: None,
            }),
            sender: cx.me,
            hops: 1,
        };
        if cx.settings.gossip_repair {
            self.note_links(cx, overlay);
            // Its own gossip is kept even before its first link, for the first digests to
            // hand on: a peer that bootstrapped with no neighbour (its candidates were slow
            // to answer) lost what it made until it had one, though every linked peer was
            // owed it (promise 5; found by `sim --soak`).
            self.retained.open(now_secs);
            self.retained.insert(now_secs, key, &gossip.body);
        }
        self.forward(cx, overlay, &gossip, key, None);
        if self.generated < cx.settings.max_gossip {
            let at = cx.after(cx.settings.gossip_interval_ms);
            cx.timers.set(Timer::Gossip, at);
        }
    }

    /// An application's publish: refused (one `PublishRefused` event), or broadcast like a
    /// gossip made here (one `AppPublished` event).
    pub(super) fn publish(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        name: Option<String>,
        data: String,
    ) {
        // Joined: it has a neighbour, or had one and the repair will bring it to the next.
        let joined = overlay.len() > 0 || !self.retained.closed();
        let body = match self.apps.publish(cx, joined, name, data) {
            Ok(body) => body,
            Err(refused) => {
                return cx.emit(Event::PublishRefused {
                    reason: refused.reason,
                    retry_after_ms: refused.retry_after_ms,
                })
            }
        };
        let key = gossip_key(&body.text, body.origin_port);
        let now_secs = cx.unix_secs();
        self.seen.insert(key, now_secs);
        cx.emit(Event::AppPublished {
            body: Arc::clone(&body),
        });
        if cx.settings.gossip_repair {
            self.note_links(cx, overlay);
            self.retained.insert(now_secs, key, &body);
        }
        let gossip = GossipMsg {
            body,
            sender: cx.me,
            hops: 1,
        };
        self.forward(cx, overlay, &gossip, key, None);
    }

    /// Incoming gossip, from a neighbour or not (the reference may gossip before `HELLO`):
    /// acknowledged; forwarded if it is the first copy, dropped (and noted) if not. In lazy
    /// mode a duplicate prunes the link it came on for its origin, and a first copy makes the
    /// link eager for it.
    pub(super) fn on_gossip(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        conn: ConnId,
        gossip: &GossipMsg,
    ) {
        let body = &gossip.body;
        let key = gossip_key(&body.text, body.origin_port);
        if body.is_app()
            && !self.seen.contains(key)
            && !(self.apps).admit(cx.settings, lazy::origin(body), cx.now)
        {
            // Over its origin's rate: refused unseen (a later copy, or the repair, may bring
            // it once the origin is back under its rate).
            let ack = GossipAck {
                accepted: false,
                duplicate: false,
                prune: false,
                app: true,
            };
            return cx.reply(conn, Message::GossipAck(ack));
        }
        let first = self.seen.insert(key, cx.unix_secs());
        let from = gossip.sender;
        if let Some(link) = overlay.link_mut(&from) {
            link.served = true;
            link.holds_link = true;
        }
        let lazy_mode = cx.settings.gossip_mode == GossipMode::Lazy;
        let prune = lazy_mode && !first && self.lazy.prune(overlay, &from, body);
        if lazy_mode && first {
            self.lazy.came_over(overlay, &from, body);
        }
        cx.reply(
            conn,
            Message::GossipAck(GossipAck {
                accepted: true,
                duplicate: !first,
                prune,
                app: body.is_app(),
            }),
        );
        if !first {
            if body.is_app() {
                self.apps.duplicates += 1;
            } else {
                self.duplicate += 1;
                cx.emit(Event::GossipDuplicate {
                    text: Arc::clone(&body.text),
                    from,
                });
            }
            return;
        }
        if self.retained.closed() {
            self.note_links(cx, overlay);
        }
        self.delivered(cx, key, body, from, gossip.hops, false);
        let onward = GossipMsg {
            body: Arc::clone(body),
            sender: cx.me,
            hops: gossip.hops.saturating_add(1),
        };
        self.forward(cx, overlay, &onward, key, Some(from));
    }

    /// Passes a first-time gossip on to every neighbour but `except`: whole to all in flood
    /// mode; in lazy mode whole to the eager links and announced to the lazy ones.
    fn forward(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &Overlay,
        gossip: &GossipMsg,
        key: GossipKey,
        except: Option<Endpoint>,
    ) {
        match cx.settings.gossip_mode {
            GossipMode::Flood => flood(cx, overlay, gossip, except),
            GossipMode::Lazy => self.lazy.forward(cx, overlay, gossip, key, except),
        }
    }

    /// A first-time delivery (already in the seen set), pushed or pulled: counted, logged,
    /// kept for repair, and no longer awaited.
    fn delivered(
        &mut self,
        cx: &mut Cx<'_>,
        key: GossipKey,
        body: &Arc<GossipBody>,
        from: Endpoint,
        hops: u32,
        repaired: bool,
    ) {
        if body.is_app() {
            self.apps.delivered += 1;
            cx.emit(Event::AppDelivered {
                body: Arc::clone(body),
                from,
                hops,
                repaired,
            });
        } else {
            self.first += 1;
            cx.emit(Event::GossipFirstReceived {
                text: Arc::clone(&body.text),
                from,
                hops,
                repaired,
            });
        }
        if cx.settings.gossip_repair {
            self.retained.insert(cx.unix_secs(), key, body);
            self.repair.arrived(key);
        }
    }
}

/// Sends `gossip` to every neighbour but `except` (an application message only to those that
/// speak the extensions). Every copy shares its body. The acks are not wanted: liveness comes
/// from probes, and a lost copy is the repair's business.
fn flood(cx: &mut Cx<'_>, overlay: &Overlay, gossip: &GossipMsg, except: Option<Endpoint>) {
    let deadline = cx.after(cx.settings.request_timeout_ms);
    let app = gossip.body.is_app();
    cx.out.reserve(overlay.len());
    cx.out.extend(
        overlay
            .iter()
            .filter(|(&to, link)| Some(to) != except && (!app || link.speaks == Speaks::Yes))
            .map(|(&to, _)| Output::Send {
                to,
                msg: Message::Gossip(gossip.clone()),
                deadline,
                wants_response: false,
            }),
    );
}
