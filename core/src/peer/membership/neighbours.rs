//! Choosing and greeting neighbours: selection rounds by preferential attachment (`PING` a
//! sample of known peers, weight each by the degree its `PONG` carries, draw by weight,
//! `HELLO` the drawn ones), the answers to this peer's `HELLO`s, periodic re-greetings, and
//! checking a new neighbour's `HELLO` before accepting it. Dropping neighbours that starve
//! this peer is in `starving.rs`.

use std::collections::{BTreeSet, VecDeque};

use super::super::decide::choose_neighbours;
use super::super::gossip::Gossip;
use super::super::overlay::{Overlay, Speaks};
use super::super::pings::{PingRole, Pings};
use super::super::{count, Cx, Timer};
use super::Membership;
use crate::config::GossipMode;
use crate::msg::{Endpoint, Hello, HelloAck, Message, Status};
use crate::{ConnId, Event, Failure};

/// New neighbours' `HELLO`s a peer keeps waiting for their checks at most (see [`Greeting`]);
/// beyond, a new `HELLO` is refused at once.
pub const MAX_PENDING_GREETINGS: usize = 64;

/// One round of neighbour selection.
#[derive(Debug, Default)]
pub(super) struct Selection {
    /// Candidates pinged, `PONG` awaited.
    probing: BTreeSet<Endpoint>,
    /// Candidates that answered, with their weight (degree, at least 1).
    answered: Vec<(Endpoint, u32)>,
    /// Answered candidates in weighted-draw order, not greeted yet.
    reserve: VecDeque<Endpoint>,
    /// `HELLO`s awaiting their `HELLO_ACK`.
    greeting: BTreeSet<Endpoint>,
    /// Draw uniformly, not by claimed degree (replacing starving links).
    uniform: bool,
}

/// A `HELLO` from a peer that is not a neighbour yet, answered once it is checked: it must
/// answer this peer's own `PING` at the endpoint it claims, and be admitted in a seed's Peer
/// List (known from one, or confirmed by asking one). So nobody can plant a neighbour that
/// the seeds never admitted, or one that does not listen where it says.
#[derive(Debug)]
pub(super) struct Greeting {
    /// The `HELLO` (the first, if it came more than once) and every connection to answer.
    hello: Hello,
    conns: Vec<ConnId>,
    /// The `PING` answered (`None`: not yet).
    answered: Option<bool>,
    /// A seed lists it as admitted (`None`: asked, no answer yet).
    admitted: Option<bool>,
}

impl Membership {
    // ----- selection ------------------------------------------------------------------------

    /// Starts a selection round (never two at once): ping a sample of known non-neighbours.
    pub(in crate::peer) fn start_selection(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
    ) {
        if self.selection.is_some() {
            return;
        }
        let want = (cx.settings.min_degree as usize).saturating_sub(overlay.len());
        let pool: Vec<Endpoint> = (self.known.keys())
            .filter(|p| !overlay.contains(p) && !self.shunned(cx, p))
            .collect();
        let sample = cx.rng.sample(&pool, cx.settings.candidate_sample as usize);
        if want == 0 || sample.is_empty() {
            self.selection_done(cx, overlay);
            return;
        }
        self.selection = Some(Selection {
            probing: sample.iter().copied().collect(),
            uniform: std::mem::take(&mut self.uniform_next),
            ..Selection::default()
        });
        let deadline = cx.after(cx.settings.probe_timeout_ms);
        for candidate in sample {
            pings.ping(cx.me, candidate, PingRole::Candidate, deadline, cx.out);
        }
    }

    /// A candidate's `PONG` (or any reply) gives its weight; a failure drops it.
    pub(in crate::peer) fn on_candidate_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        peer: Endpoint,
        outcome: &Result<Message, Failure>,
    ) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        if !sel.probing.remove(&peer) {
            return;
        }
        // A claim above `max_degree` is one no peer of ours can hold: it counts as that.
        let cap = cx.settings.max_degree.max(1);
        let weight = match outcome {
            Ok(_) if sel.uniform => Some(1),
            Ok(Message::Pong(p)) => Some(u32::from(p.degree.unwrap_or(1)).clamp(1, cap)),
            Ok(_) => Some(1),
            Err(_) => None,
        };
        if let Some(w) = weight {
            sel.answered.push((peer, w));
        }
        if sel.probing.is_empty() {
            let order = choose_neighbours(&sel.answered, sel.answered.len(), cx.rng);
            sel.reserve = order.into();
            self.greet_more(cx, overlay);
        }
    }

    /// Sends `HELLO` to the next drawn candidates until enough are in flight to reach the
    /// minimum degree; ends the round when nothing is left in flight.
    fn greet_more(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        let want = (cx.settings.min_degree as usize).saturating_sub(overlay.len());
        let deadline = cx.after(cx.settings.request_timeout_ms);
        while sel.greeting.len() < want {
            let Some(next) = sel.reserve.pop_front() else {
                break;
            };
            if overlay.contains(&next) {
                continue;
            }
            sel.greeting.insert(next);
            let hello = Hello {
                peer: cx.me,
                degree: count(overlay.len()),
                incarnation: Some(self.incarnation),
            };
            cx.send(next, Message::Hello(Box::new(hello)), deadline);
        }
        if sel.probing.is_empty() && sel.greeting.is_empty() {
            self.selection_done(cx, overlay);
        }
    }

    /// The answer to one of this peer's `HELLO`s (a selection's or a re-greeting).
    pub(in crate::peer) fn on_hello_ack(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        peer: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if let Ok(Message::HelloAck(ack)) = outcome {
            let full = overlay.len() >= cx.settings.max_degree as usize;
            if ack.accepted && cx.seeds.contains(&peer) {
                // A seed is never a neighbour (a Peer List that lists one is wrong).
            } else if ack.accepted && full && !overlay.contains(&peer) {
                // A late acceptance while full (the greeting outlived the need for it):
                // `max_degree` stays a hard cap. The other end drops its half of the link
                // when it next re-greets this peer and is refused.
                self.remember(cx, overlay, peer, ack.incarnation);
            } else if ack.accepted {
                self.add_neighbour(cx, overlay, peer, ack.degree, ack.incarnation);
            } else if overlay.contains(&peer) {
                // A re-greeted neighbour no longer keeps the link: drop our half of it.
                overlay.drop_link(peer, "refused", cx.out);
                self.repair(cx, overlay, pings);
            }
        }
        if let Some(sel) = self.selection.as_mut() {
            if sel.greeting.remove(&peer) {
                self.greet_more(cx, overlay);
            }
        }
    }

    /// Ends a selection round; the first one ends the bootstrap and starts the periodic work.
    fn selection_done(&mut self, cx: &mut Cx<'_>, overlay: &Overlay) {
        self.selection = None;
        if self.bootstrapped {
            hurry_repair(cx, overlay);
            return;
        }
        self.bootstrapped = true;
        cx.emit(Event::BootstrapComplete {
            neighbours: overlay.keys().copied().collect(),
            known_peers: count(self.known.len()),
        });
        if cx.settings.max_gossip > 0 {
            let at = cx.after(cx.settings.gossip_interval_ms);
            cx.timers.set(Timer::Gossip, at);
        }
        let probe = cx.after(cx.settings.probe_interval_ms);
        cx.timers.set(Timer::Probe, probe);
        let refresh = cx.after(cx.settings.peer_list_refresh_ms);
        cx.timers.set(Timer::Refresh, refresh);
        Gossip::start(cx);
        hurry_repair(cx, overlay);
    }

    /// `HELLO` again to every neighbour. A link can become one-sided (the other end dropped
    /// us on a suspicion the seeds then rejected, or removed us before we rejoined); greeting
    /// again makes the other end add us back, or tells us to drop our half. Unless `all`, a
    /// neighbour that showed since the last time that it holds the link (it re-greeted us,
    /// probed us or pushed us a gossip: `Link::holds_link`) is skipped: in a quiet cluster
    /// both ends probe each other every second, and greeting them anyway was a fifth of a
    /// peer's requests. A link it drops since is greeted at the following refresh.
    pub(in crate::peer) fn regreet_neighbours(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        all: bool,
    ) {
        let hello = Hello {
            peer: cx.me,
            degree: count(overlay.len()),
            incarnation: Some(self.incarnation),
        };
        let deadline = cx.after(cx.settings.request_timeout_ms);
        for i in 0..overlay.len() {
            let Some((&to, link)) = overlay.get_index_mut(i) else {
                break;
            };
            if std::mem::take(&mut link.holds_link) && !all {
                continue;
            }
            cx.send(to, Message::Hello(Box::new(hello.clone())), deadline);
        }
    }

    fn add_neighbour(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        peer: Endpoint,
        their_degree: u32,
        incarnation: Option<u64>,
    ) {
        if peer == cx.me {
            return;
        }
        self.remember(cx, overlay, peer, incarnation);
        let new = overlay.add(peer, their_degree, cx.out);
        // Only this implementation greets with an incarnation: the link speaks the
        // extension (until an `ERROR` says otherwise). In lazy mode a new link to such a
        // node starts out of the tree; a graft takes it in (see `gossip/lazy.rs`).
        if let Some(link) = overlay.link_mut(&peer) {
            if incarnation.is_some() && link.speaks == Speaks::Unknown {
                link.speaks = Speaks::Yes;
            }
            link.lazy |= new && cx.settings.gossip_mode == GossipMode::Lazy;
        }
    }

    // ----- a new neighbour's HELLO ----------------------------------------------------------

    /// Incoming `HELLO`. A neighbour's re-greeting is accepted at once. A new neighbour is
    /// refused if full (or if it claims to be this peer, or a seed: a seed answers probes
    /// forever, so a spoofed link to one would never be noticed or repaired); otherwise it is
    /// checked first (see [`Greeting`]) and answered when the checks are in.
    pub(in crate::peer) fn on_hello(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        pings: &mut Pings,
        conn: ConnId,
        hello: Hello,
    ) {
        let peer = hello.peer;
        if let Some(link) = overlay.link_mut(&peer) {
            // A re-greeting: the other end holds the link (see `regreet_neighbours`).
            link.holds_link = true;
            self.remember(cx, overlay, peer, hello.incarnation);
            return self.answer_hello(cx, overlay, conn, true);
        }
        if let Some(greeting) = self.greetings.get_mut(&peer) {
            return greeting.conns.push(conn);
        }
        let refused = peer == cx.me
            || cx.seeds.contains(&peer)
            || self.shunned(cx, &peer)
            || overlay.len() >= cx.settings.max_degree as usize
            || self.greetings.len() >= MAX_PENDING_GREETINGS;
        if refused {
            return self.answer_hello(cx, overlay, conn, false);
        }
        // Known from a seed's Peer List: admitted. Else ask a seed, naming the greeter as
        // the requester: ours answer its entry (`requester_entry`), the reference's list every
        // admitted peer.
        let admitted = self.known.get(&peer).is_some().then_some(true);
        if admitted.is_none() {
            let i = cx.rng.below(cx.seeds.len() as u64) as usize;
            if let Some(&seed) = cx.seeds.get(i) {
                let ask = Message::PeerListReq {
                    requester: peer.to_string(),
                };
                let deadline = cx.after(cx.settings.probe_timeout_ms);
                cx.send(seed, ask, deadline);
            }
        }
        self.greetings.insert(
            peer,
            Greeting {
                hello,
                conns: vec![conn],
                answered: None,
                admitted,
            },
        );
        let deadline = cx.after(cx.settings.probe_timeout_ms);
        pings.ping(cx.me, peer, PingRole::Greeter, deadline, cx.out);
    }

    /// The greeter answered this peer's `PING`, or did not.
    pub(in crate::peer) fn on_greeter_probed(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        greeter: Endpoint,
        answered: bool,
    ) {
        if let Some(greeting) = self.greetings.get_mut(&greeter) {
            greeting.answered = Some(answered);
            self.conclude_greeting(cx, overlay, greeter);
        }
    }

    /// A seed answered whether the greeter is admitted (or could not).
    pub(in crate::peer) fn on_greeter_listed(
        &mut self,
        cx: &mut Cx<'_>,
        overlay: &mut Overlay,
        greeter: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        let admitted = match outcome {
            Ok(Message::PeerListResp(resp)) => {
                matches!(resp.requester_entry, Some((_, Status::Alive)))
                    || (resp.requester_entry.is_none() && resp.peers.contains(&greeter))
            }
            _ => false,
        };
        if let Some(greeting) = self.greetings.get_mut(&greeter) {
            greeting.admitted = Some(admitted);
            self.conclude_greeting(cx, overlay, greeter);
        }
    }

    /// Answers a greeting once its checks are in: accepted if it passed both and there is
    /// still room.
    fn conclude_greeting(&mut self, cx: &mut Cx<'_>, overlay: &mut Overlay, greeter: Endpoint) {
        let Some(greeting) = self.greetings.get(&greeter) else {
            return;
        };
        let passed = match (greeting.answered, greeting.admitted) {
            (Some(true), Some(true)) => true,
            (Some(false), _) | (_, Some(false)) => false,
            _ => return,
        };
        let Some(greeting) = self.greetings.remove(&greeter) else {
            return;
        };
        let room = overlay.len() < cx.settings.max_degree as usize;
        let accepted = passed && (room || overlay.contains(&greeter));
        if accepted {
            let hello = &greeting.hello;
            self.add_neighbour(cx, overlay, greeter, hello.degree, hello.incarnation);
        }
        for conn in greeting.conns {
            self.answer_hello(cx, overlay, conn, accepted);
        }
    }

    /// Refuses a `HELLO` (this peer is leaving).
    pub(in crate::peer) fn refuse_hello(&self, cx: &mut Cx<'_>, overlay: &Overlay, conn: ConnId) {
        self.answer_hello(cx, overlay, conn, false);
    }

    fn answer_hello(&self, cx: &mut Cx<'_>, overlay: &Overlay, conn: ConnId, accepted: bool) {
        let ack = HelloAck {
            accepted,
            peer: cx.me,
            degree: count(overlay.len()),
            incarnation: Some(self.incarnation),
        };
        cx.reply(conn, Message::HelloAck(Box::new(ack)));
    }
}

/// Below the minimum degree after a selection round (peers that joined together saw empty
/// Peer Lists): refresh after one probe interval rather than a whole refresh period, so no
/// peer stays isolated for long.
fn hurry_repair(cx: &mut Cx<'_>, overlay: &Overlay) {
    if overlay.len() >= cx.settings.min_degree as usize {
        return;
    }
    if cx.timers.get(&Timer::Repair).is_none() {
        let soon = cx.after(cx.settings.probe_interval_ms);
        cx.timers.set(Timer::Repair, soon);
    }
}
