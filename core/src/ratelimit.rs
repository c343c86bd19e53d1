//! Per-connection rate limits for the requests that make a seed or a peer do expensive work
//! for a stranger: `REGISTER_REQ` (a seed vote round and a new Peer List entry),
//! `DEAD_REPORT` (a removal round, with every seed probing the accused) and `SUSPECT_REQ`
//! (a witness probe).
//!
//! The core never sees connections come and go, so the state lives with the driver: one
//! [`ConnRate`] per accepted connection, dropped with it. Before handing a decoded request to
//! the node, the driver asks [`ConnRate::admit`]; a request over its rate is not given to the
//! node but answered `ERROR` (the driver feeds it as [`crate::Input::Refused`] with
//! [`crate::Refusal::RateLimited`], so the node logs it and replies).
//!
//! Pure and deterministic like the rest of the core: time is the driver's [`Millis`].

use crate::msg::Message;
use crate::Millis;

/// Rates and bursts per connection. A bucket holds `burst` requests and refills at
/// `per_sec` requests per second; an honest node sends a handful of each kind per
/// connection (the reference opens one connection per request), so the defaults only bite
/// on a client that pipelines a storm.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `REGISTER_REQ` per second, sustained.
    pub register_per_sec: u32,
    /// `REGISTER_REQ` in a burst.
    pub register_burst: u32,
    /// `DEAD_REPORT` per second, sustained.
    pub dead_report_per_sec: u32,
    /// `DEAD_REPORT` in a burst.
    pub dead_report_burst: u32,
    /// `SUSPECT_REQ` per second, sustained.
    pub suspect_per_sec: u32,
    /// `SUSPECT_REQ` in a burst.
    pub suspect_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            register_per_sec: 4,
            register_burst: 16,
            dead_report_per_sec: 16,
            dead_report_burst: 64,
            suspect_per_sec: 16,
            suspect_burst: 64,
        }
    }
}

/// The kinds of request that are rate limited.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Limited {
    /// `REGISTER_REQ`
    Register,
    /// `DEAD_REPORT`
    DeadReport,
    /// `SUSPECT_REQ`
    Suspect,
}

impl Limited {
    /// The limited kind of `msg`, if it is one.
    pub fn of(msg: &Message) -> Option<Limited> {
        match msg {
            Message::RegisterReq(_) => Some(Limited::Register),
            Message::DeadReport(_) => Some(Limited::DeadReport),
            Message::SuspectReq(_) => Some(Limited::Suspect),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Limited::Register => 0,
            Limited::DeadReport => 1,
            Limited::Suspect => 2,
        }
    }

    fn rate(self, limits: &RateLimits) -> (u32, u32) {
        match self {
            Limited::Register => (limits.register_per_sec, limits.register_burst),
            Limited::DeadReport => (limits.dead_report_per_sec, limits.dead_report_burst),
            Limited::Suspect => (limits.suspect_per_sec, limits.suspect_burst),
        }
    }
}

/// A token bucket in thousandths of a request, so a rate below one per millisecond refills
/// exactly with integer arithmetic. Also the publish limits of a peer's application
/// messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    milli_tokens: u64,
    last: Millis,
}

impl Bucket {
    /// A full bucket of `burst` at `now`.
    pub fn full(now: Millis, burst: u32) -> Bucket {
        Bucket {
            milli_tokens: u64::from(burst).saturating_mul(1_000),
            last: now,
        }
    }

    /// Refills for the time since the last call, then takes one request if there is one.
    pub fn take(&mut self, now: Millis, per_sec: u32, burst: u32) -> bool {
        let cap = u64::from(burst).saturating_mul(1_000);
        // per_sec requests per 1000 ms = per_sec milli-requests per ms.
        let refill = now.since(self.last).saturating_mul(u64::from(per_sec));
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        self.last = self.last.max(now);
        if self.milli_tokens >= 1_000 {
            self.milli_tokens -= 1_000;
            true
        } else {
            false
        }
    }

    /// After a refused [`Bucket::take`]: how long until one request would pass (`per_sec`
    /// of 0: never, `u64::MAX`).
    pub fn wait_ms(&self, per_sec: u32) -> u64 {
        let missing = 1_000u64.saturating_sub(self.milli_tokens);
        match u64::from(per_sec) {
            0 => u64::MAX,
            rate => missing.div_ceil(rate),
        }
    }

    /// When it was last taken from or refilled.
    pub fn last(&self) -> Millis {
        self.last
    }
}

/// The rate state of one connection: one bucket per [`Limited`] kind, full at the start.
#[derive(Clone, Debug)]
pub struct ConnRate {
    buckets: [Bucket; 3],
}

impl ConnRate {
    /// Full buckets at `now` (a new connection may send a burst at once).
    pub fn new(now: Millis, limits: &RateLimits) -> ConnRate {
        let full = |burst: u32| Bucket::full(now, burst);
        ConnRate {
            buckets: [
                full(limits.register_burst),
                full(limits.dead_report_burst),
                full(limits.suspect_burst),
            ],
        }
    }

    /// True if `msg` may go to the node now; false if it is over its rate (answer `ERROR`).
    /// Messages of other kinds always pass and cost nothing.
    pub fn admit(&mut self, now: Millis, limits: &RateLimits, msg: &Message) -> bool {
        let Some(kind) = Limited::of(msg) else {
            return true;
        };
        let (per_sec, burst) = kind.rate(limits);
        match self.buckets.get_mut(kind.index()) {
            Some(bucket) => bucket.take(now, per_sec, burst),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Ping, RegisterReq, SuspectReq};

    fn reg() -> Message {
        Message::RegisterReq(Box::new(RegisterReq {
            peer: "127.0.0.1:7000".parse().expect("addr"),
            incarnation: None,
        }))
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limits = RateLimits::default();
        let mut r = ConnRate::new(Millis(0), &limits);
        let burst = (0..100)
            .filter(|_| r.admit(Millis(0), &limits, &reg()))
            .count();
        assert_eq!(burst, limits.register_burst as usize);
        // One second later: exactly `register_per_sec` more.
        let more = (0..100)
            .filter(|_| r.admit(Millis(1_000), &limits, &reg()))
            .count();
        assert_eq!(more, limits.register_per_sec as usize);
        // 250 ms at 4/s is one more, and not two.
        assert!(r.admit(Millis(1_250), &limits, &reg()));
        assert!(!r.admit(Millis(1_250), &limits, &reg()));
    }

    #[test]
    fn kinds_have_separate_buckets_and_others_pass() {
        let limits = RateLimits {
            register_burst: 1,
            register_per_sec: 0,
            ..RateLimits::default()
        };
        let mut r = ConnRate::new(Millis(5), &limits);
        assert!(r.admit(Millis(5), &limits, &reg()));
        assert!(
            !r.admit(Millis(10_000), &limits, &reg()),
            "rate 0 never refills"
        );
        let suspect = Message::SuspectReq(Box::new(SuspectReq {
            suspect: "127.0.0.1:1".parse().expect("addr"),
            requester: "127.0.0.1:2".parse().expect("addr"),
        }));
        assert!(r.admit(Millis(10_000), &limits, &suspect));
        let ping = Message::Ping(Ping {
            sender: "127.0.0.1:2".parse().expect("addr"),
            suspected_by: None,
        });
        assert!((0..10_000).all(|_| r.admit(Millis(10_000), &limits, &ping)));
    }

    #[test]
    fn refill_caps_at_the_burst_and_survives_extreme_times() {
        let limits = RateLimits::default();
        let mut r = ConnRate::new(Millis(0), &limits);
        let far = Millis(u64::MAX);
        let n = (0..1_000).filter(|_| r.admit(far, &limits, &reg())).count();
        assert_eq!(n, limits.register_burst as usize);
        // Time that goes backwards refills nothing.
        assert!(!r.admit(Millis(3), &limits, &reg()));
    }
}
