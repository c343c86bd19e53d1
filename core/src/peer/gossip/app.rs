//! Application messages (`APP_MSG`): what an application on a peer's machine publishes
//! ([`crate::Input::Publish`]). This file checks a publish, names it and limits its rate,
//! and bounds what any one origin can make its receivers deliver. From there on an
//! application message is a gossip like the spec's: pushed (flood or lazy), de-duplicated,
//! kept and repaired by the same code, so every promise about gossip covers it.
//!
//! Only nodes of this implementation speak `APP_MSG` (the reference answers `ERROR`), so it
//! is pushed only over links known to speak the extensions, and never sent whole to a
//! neighbour that refused the repair's messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Settings;
use crate::msg::{AppPart, GossipBody, MAX_APP_NAME};
use crate::peer::overlay::Origin;
use crate::peer::Cx;
use crate::ratelimit::Bucket;
use crate::Millis;

/// Origins whose receive rate a peer tracks at most; past it the one idle longest is
/// forgotten (it starts again with a full bucket).
pub const MAX_TRACKED_ORIGINS: usize = 1_024;

/// A publish refused: why, and when one would pass if it is the rate.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused {
    pub reason: String,
    pub retry_after_ms: Option<u64>,
}

/// A peer's application messages: its own publishing and what it accepts from each origin.
#[derive(Debug, Default)]
pub(super) struct Apps {
    /// Drawn at the first publish: keeps the ids of a restarted publisher apart from those
    /// it made before.
    boot: Option<u32>,
    /// Messages published (the last one's number).
    pub published: u64,
    /// The publish rate (created full at the first publish).
    publish_bucket: Option<Bucket>,
    /// Receive rate per origin.
    origins: BTreeMap<Origin, Bucket>,
    /// First-time copies delivered.
    pub delivered: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// First-time copies refused over their origin's rate.
    pub rate_limited: u64,
}

impl Apps {
    /// Checks a publish and, if it may go, names it: the body to broadcast.
    pub(super) fn publish(
        &mut self,
        cx: &mut Cx<'_>,
        joined: bool,
        name: Option<String>,
        data: String,
    ) -> Result<Arc<GossipBody>, Refused> {
        let refuse = |reason: String| Refused {
            reason,
            retry_after_ms: None,
        };
        let limit = cx.settings.max_app_bytes;
        if data.len() > limit as usize {
            return Err(refuse(format!(
                "data is {} bytes, over the limit of {limit}",
                data.len()
            )));
        }
        if name.as_ref().is_some_and(|n| n.len() > MAX_APP_NAME) {
            return Err(refuse(format!("name is over {MAX_APP_NAME} bytes")));
        }
        if !joined {
            return Err(refuse(
                "not joined yet: this peer has no neighbour to send it to".into(),
            ));
        }
        let rate = cx.settings.publish_rate;
        let bucket = self
            .publish_bucket
            .get_or_insert_with(|| Bucket::full(cx.now, rate));
        if !bucket.take(cx.now, rate, rate) {
            let wait = bucket.wait_ms(rate);
            return Err(Refused {
                reason: format!(
                    "publish queue full: over {rate} messages per second; retry in {wait} ms"
                ),
                retry_after_ms: Some(wait),
            });
        }
        let boot = *self
            .boot
            .get_or_insert_with(|| cx.rng.below(1 << 32) as u32);
        self.published += 1;
        let n = self.published;
        let unix_ms = cx.unix_ms();
        Ok(Arc::new(GossipBody {
            text: Arc::from(format!("{}:{}/{boot:08x}.{n}", unix_ms / 1000, cx.me)),
            origin_ip: cx.me.ip(),
            origin_port: Some(cx.me.port()),
            msg_no: u32::try_from(n).unwrap_or(u32::MAX),
            app: Some(Box::new(AppPart {
                name: name.map(String::into_boxed_str),
                data: data.into_boxed_str(),
                published_ms: unix_ms,
            })),
        }))
    }

    /// A first-time copy from `origin`: false (refuse it, unseen) if that origin is over
    /// [`Settings::app_rate_per_origin`].
    pub(super) fn admit(&mut self, settings: &Settings, origin: Origin, now: Millis) -> bool {
        let rate = settings.app_rate_per_origin;
        if !self.origins.contains_key(&origin) && self.origins.len() >= MAX_TRACKED_ORIGINS {
            let idle = (self.origins.iter())
                .min_by_key(|(_, b)| b.last())
                .map(|(o, _)| *o);
            if let Some(idle) = idle {
                self.origins.remove(&idle);
            }
        }
        let bucket = (self.origins)
            .entry(origin)
            .or_insert_with(|| Bucket::full(now, rate));
        let admitted = bucket.take(now, rate, rate);
        self.rate_limited += u64::from(!admitted);
        admitted
    }
}

/// Why an application message cannot be taken, if it cannot: a payload over the limit, or
/// an id that does not name its origin (`<timestamp>:<origin ip:port>/...`).
pub(in crate::peer) fn invalid(settings: &Settings, body: &GossipBody) -> Option<String> {
    let app = body.app.as_ref()?;
    let limit = settings.max_app_bytes as usize;
    if app.data.len() > limit {
        return Some(format!(
            "APP_MSG: data is {} bytes, over the limit of {limit}",
            app.data.len()
        ));
    }
    let Some(port) = body.origin_port else {
        return Some("APP_MSG: no origin_port".into());
    };
    let origin = std::net::SocketAddr::new(body.origin_ip, port);
    let named = (body.text.split_once(':'))
        .filter(|(secs, _)| !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, rest)| rest.rsplit_once('/'))
        .is_some_and(|(endpoint, _)| endpoint.parse() == Ok(origin));
    if !named {
        return Some(format!(
            "APP_MSG: id {:?} does not name its origin {origin}",
            body.text
        ));
    }
    None
}
