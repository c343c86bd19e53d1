//! Joining the network: registration with a quorum of seeds, Peer List discovery and
//! refresh (repair, rejoin), and neighbour selection by preferential attachment with the
//! `HELLO` handshake.

use super::{
    choose_neighbours, count, Peer, PingRole, Registration, Selection, Timer, KNOWN_PER_LIST,
    MERGE_EVERY,
};
use crate::msg::{Endpoint, Hello, HelloAck, Message, PeerListResp, RegisterReq, Status};
use crate::{quorum, ConnId, Event, Failure, Millis, Output};

impl Peer {
    // ----- registration ---------------------------------------------------------------------

    pub(super) fn quorum(&self) -> usize {
        quorum(self.seeds.len())
    }

    /// Starts a fresh registration round asking for at least incarnation `hint`.
    pub(super) fn start_registration(&mut self, now: Millis, hint: Option<u64>) {
        self.timers.cancel(&Timer::RegisterRetry);
        self.reg = Registration {
            hint,
            ..Registration::default()
        };
        self.ask_seeds(now);
    }

    /// Asks as many seeds not asked yet as could still complete a quorum: successes plus
    /// answers awaited stay at `q` while fresh seeds remain.
    pub(super) fn ask_seeds(&mut self, now: Millis) {
        let busy = self.reg.successes.len() + self.reg.in_flight.len();
        let need = self.quorum().saturating_sub(busy);
        let fresh: Vec<Endpoint> = self
            .seeds
            .iter()
            .filter(|s| !self.reg.asked.contains(s))
            .copied()
            .collect();
        let deadline = now.after(self.settings.register_timeout_ms);
        for seed in self.rng.sample(&fresh, need) {
            self.reg.asked.insert(seed);
            self.reg.in_flight.insert(seed);
            let msg = Message::RegisterReq(Box::new(RegisterReq {
                peer: self.me,
                incarnation: self.reg.hint,
            }));
            self.send(seed, msg, deadline);
        }
    }

    pub(super) fn on_register_result(
        &mut self,
        now: Millis,
        seed: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if !self.reg.in_flight.remove(&seed) {
            return; // a stale answer from an earlier round
        }
        if let Ok(Message::RegisterResult(r)) = outcome {
            if r.success {
                self.reg.successes.insert(seed);
                self.reg.admitted = self.reg.admitted.max(r.incarnation);
            }
        }
        if self.registered {
            return;
        }
        if self.reg.successes.len() >= self.quorum() {
            self.registration_won(now);
            return;
        }
        self.ask_seeds(now);
        if self.reg.in_flight.is_empty() {
            let retry_at = now.after(self.settings.register_retry_ms);
            self.timers.set(Timer::RegisterRetry, retry_at);
            self.emit(Event::RegistrationFailed {
                successes: count(self.reg.successes.len()),
                needed: count(self.quorum()),
                retry_at,
            });
        }
    }

    /// A retry asks again every seed that has not said success.
    pub(super) fn retry_registration(&mut self, now: Millis) {
        if self.registered {
            return;
        }
        self.reg.asked = self.reg.successes.clone();
        self.ask_seeds(now);
    }

    pub(super) fn registration_won(&mut self, now: Millis) {
        self.registered = true;
        self.incarnation = self.reg.admitted.unwrap_or(self.incarnation);
        self.emit(Event::RegistrationQuorum {
            seeds: self.reg.successes.iter().copied().collect(),
            incarnation: self.incarnation,
        });
        if self.bootstrapped {
            // Rejoined: the links we kept may have been dropped at the other end.
            self.regreet_neighbours(now, true);
        } else if self.pl_awaiting.is_empty() && self.selection.is_none() {
            self.pl_awaiting = self.reg.successes.clone();
            let seeds: Vec<Endpoint> = self.pl_awaiting.iter().copied().collect();
            for seed in seeds {
                self.send_peer_list_req(now, seed);
            }
        }
    }

    // ----- discovery and repair -------------------------------------------------------------

    pub(super) fn send_peer_list_req(&mut self, now: Millis, seed: Endpoint) {
        let msg = Message::PeerListReq {
            requester: self.me.to_string(),
        };
        self.send(seed, msg, now.after(self.settings.request_timeout_ms));
    }

    /// Asks one random seed for its Peer List, to be merged into the known set, unless a
    /// refresh is already in flight (then that one's answer is merged).
    pub(super) fn refresh_peer_list(&mut self, now: Millis) {
        self.request_peer_list(now, true);
    }

    /// The periodic refresh: every one checks this peer's own entry (rejoin) and the
    /// accusations it follows, but while the degree is at least the minimum only one in
    /// [`MERGE_EVERY`] merges the listed peers into the known set. Merging (and trimming
    /// back to the cap) walks the whole known set, the costliest thing a settled peer did;
    /// a healthy peer does not need fresh candidates every period, and any repair merges.
    pub(super) fn periodic_refresh(&mut self, now: Millis) {
        let merge = self.neighbours.len() < self.settings.min_degree as usize
            || self.periodic_refreshes.is_multiple_of(MERGE_EVERY);
        self.periodic_refreshes = self.periodic_refreshes.wrapping_add(1);
        self.request_peer_list(now, merge);
    }

    fn request_peer_list(&mut self, now: Millis, merge: bool) {
        if self.refreshing {
            self.refresh_merge |= merge;
            return;
        }
        let i = self.rng.below(self.seeds.len() as u64) as usize;
        if let Some(&seed) = self.seeds.get(i) {
            self.refreshing = true;
            self.refresh_merge = merge;
            self.send_peer_list_req(now, seed);
        }
    }

    pub(super) fn on_peer_list(
        &mut self,
        now: Millis,
        seed: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if let Ok(Message::PeerListResp(resp)) = outcome {
            let merge = self.pl_awaiting.contains(&seed) || !self.refreshing || self.refresh_merge;
            self.merge_peer_list(now, *resp, merge);
        }
        if self.pl_awaiting.remove(&seed) {
            if self.pl_awaiting.is_empty() && !self.bootstrapped {
                self.start_selection(now);
            }
        } else {
            self.refreshing = false;
            if self.bootstrapped {
                self.repair(now);
            }
        }
    }

    /// Takes a Peer List in: the accusations it settles, this peer's own entry (rejoin),
    /// and, if `merge`, the listed peers into the known set.
    pub(super) fn merge_peer_list(&mut self, now: Millis, resp: PeerListResp, merge: bool) {
        let complete = resp.total.is_some_and(|t| t <= resp.peers.len() as u64);
        self.note_listed(&resp.peers, complete);
        if merge {
            let (me, seeds) = (self.me, &self.seeds);
            self.known.merge(
                resp.peers
                    .iter()
                    .copied()
                    .filter(|p| *p != me && !seeds.contains(p)),
                &resp.incarnations,
            );
            self.trim_known();
        }
        match resp.requester_entry {
            Some((removed, Status::Removed)) if self.registered && removed >= self.incarnation => {
                self.rejoin(now, removed);
            }
            // Admitted one above the incarnation held: that one was removed and the seeds
            // readmitted this peer (it answered their probes) before it heard of the removal.
            // Register at the new one, which they answer at once, so this peer holds and
            // claims what they list.
            Some((admitted, Status::Alive))
                if self.registered && admitted == self.incarnation.saturating_add(1) =>
            {
                self.rejoin(now, self.incarnation);
            }
            _ => {}
        }
    }

    /// The seeds removed this peer's incarnation: register again above it, keeping the links
    /// (neighbours that still talk to it prove it is alive).
    pub(super) fn rejoin(&mut self, now: Millis, removed: u64) {
        self.emit(Event::Rejoining {
            removed_incarnation: removed,
        });
        self.registered = false;
        self.start_registration(now, Some(removed.saturating_add(1)));
    }

    /// Reconnects while below the minimum degree.
    pub(super) fn repair(&mut self, now: Millis) {
        if self.neighbours.len() < self.settings.min_degree as usize {
            self.start_selection(now);
        }
    }

    /// Adds `peer` to the known set (bounded: a random non-neighbour is evicted when full).
    pub(super) fn remember(&mut self, peer: Endpoint, incarnation: Option<u64>) {
        if peer == self.me || self.seeds.contains(&peer) {
            return;
        }
        if let Some(slot) = self.known.get_mut(&peer) {
            *slot = (*slot).max(incarnation);
            return;
        }
        if self.known.len() >= self.known_cap() && !self.evict_known() {
            return;
        }
        self.known.insert(peer, incarnation);
    }

    /// The most known peers kept.
    fn known_cap(&self) -> usize {
        KNOWN_PER_LIST.saturating_mul(self.settings.peer_list_limit as usize)
    }

    /// Back under the cap after a whole Peer List was merged: forgets random non-neighbours
    /// in one pass (evicting one per insert made every refresh quadratic in the cap).
    fn trim_known(&mut self) {
        let excess = self.known.len().saturating_sub(self.known_cap());
        if excess == 0 {
            return;
        }
        // Positions rather than endpoints: the same draws, without copying the endpoints.
        let candidates = self.known.positions_except(self.neighbours.keys());
        let victims = self.rng.sample(&candidates, excess);
        self.known.remove_at(&victims);
    }

    /// Forgets one random known peer that is not a neighbour; false if there is none.
    pub(super) fn evict_known(&mut self) -> bool {
        let len = self.known.len();
        let start = self.rng.below(len as u64) as usize;
        let victim = (0..len).map(|off| (start + off) % len).find(|&i| {
            self.known
                .key_at(i)
                .is_some_and(|p| !self.neighbours.contains_key(&p))
        });
        victim.is_some_and(|i| self.known.remove_index(i))
    }

    // ----- neighbour selection --------------------------------------------------------------

    pub(super) fn degree(&self) -> u32 {
        count(self.neighbours.len())
    }

    /// Starts a selection round (never two at once): ping a sample of known non-neighbours.
    pub(super) fn start_selection(&mut self, now: Millis) {
        if self.selection.is_some() {
            return;
        }
        let want = (self.settings.min_degree as usize).saturating_sub(self.neighbours.len());
        let pool: Vec<Endpoint> = self
            .known
            .keys()
            .filter(|p| !self.neighbours.contains_key(p))
            .collect();
        let sample = self
            .rng
            .sample(&pool, self.settings.candidate_sample as usize);
        if want == 0 || sample.is_empty() {
            self.selection_done(now);
            return;
        }
        self.selection = Some(Selection {
            probing: sample.iter().copied().collect(),
            ..Selection::default()
        });
        for candidate in sample {
            self.ping(now, candidate, PingRole::Candidate);
        }
    }

    /// A candidate's `PONG` (or any reply) gives its weight; a failure drops it.
    pub(super) fn on_candidate_outcome(
        &mut self,
        now: Millis,
        peer: Endpoint,
        outcome: &Result<Message, Failure>,
    ) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        if !sel.probing.remove(&peer) {
            return;
        }
        let weight = match outcome {
            Ok(Message::Pong(p)) => Some(p.degree.unwrap_or(1).max(1)),
            Ok(_) => Some(1),
            Err(_) => None,
        };
        if let Some(w) = weight {
            sel.answered.push((peer, w));
        }
        if sel.probing.is_empty() {
            let order = choose_neighbours(&sel.answered, sel.answered.len(), &mut self.rng);
            sel.reserve = order.into();
            self.greet_more(now);
        }
    }

    /// Sends `HELLO` to the next drawn candidates until enough are in flight to reach the
    /// minimum degree; ends the round when nothing is left in flight.
    pub(super) fn greet_more(&mut self, now: Millis) {
        let Some(sel) = self.selection.as_mut() else {
            return;
        };
        let want = (self.settings.min_degree as usize).saturating_sub(self.neighbours.len());
        let deadline = now.after(self.settings.request_timeout_ms);
        while sel.greeting.len() < want {
            let Some(next) = sel.reserve.pop_front() else {
                break;
            };
            if self.neighbours.contains_key(&next) {
                continue;
            }
            sel.greeting.insert(next);
            let hello = Hello {
                peer: self.me,
                degree: count(self.neighbours.len()),
                incarnation: Some(self.incarnation),
            };
            self.outputs.push(Output::Send {
                to: next,
                msg: Message::Hello(Box::new(hello)),
                deadline,
            });
        }
        if sel.probing.is_empty() && sel.greeting.is_empty() {
            self.selection_done(now);
        }
    }

    pub(super) fn on_hello_ack(
        &mut self,
        now: Millis,
        peer: Endpoint,
        outcome: Result<Message, Failure>,
    ) {
        if let Ok(Message::HelloAck(ack)) = outcome {
            let full = self.neighbours.len() >= self.settings.max_degree as usize;
            if ack.accepted && self.seeds.contains(&peer) {
                // A seed is never a neighbour (a Peer List that lists one is wrong).
            } else if ack.accepted && full && !self.neighbours.contains_key(&peer) {
                // A late acceptance while full (the greeting outlived the need for it):
                // `max_degree` stays a hard cap. The other end drops its half of the link
                // when it next re-greets this peer and is refused.
                self.remember(peer, ack.incarnation);
            } else if ack.accepted {
                self.add_neighbour(peer, ack.degree, ack.incarnation);
            } else if self.neighbours.contains_key(&peer) {
                // A re-greeted neighbour no longer keeps the link: drop our half of it.
                self.drop_neighbour(peer, "refused");
                self.repair(now);
            }
        }
        if let Some(sel) = self.selection.as_mut() {
            if sel.greeting.remove(&peer) {
                self.greet_more(now);
            }
        }
    }

    /// Ends a selection round; the first one ends the bootstrap and starts the periodic work.
    pub(super) fn selection_done(&mut self, now: Millis) {
        self.selection = None;
        if self.bootstrapped {
            self.hurry_repair(now);
            return;
        }
        self.bootstrapped = true;
        self.emit(Event::BootstrapComplete {
            neighbours: self.neighbours.keys().copied().collect(),
            known_peers: count(self.known.len()),
        });
        if self.settings.max_gossip > 0 {
            self.timers
                .set(Timer::Gossip, now.after(self.settings.gossip_interval_ms));
        }
        self.timers
            .set(Timer::Probe, now.after(self.settings.probe_interval_ms));
        self.timers.set(
            Timer::Refresh,
            now.after(self.settings.peer_list_refresh_ms),
        );
        self.hurry_repair(now);
    }

    /// Below the minimum degree after a selection round (peers that joined together saw
    /// empty Peer Lists): refresh after one probe interval rather than a whole refresh
    /// period, so no peer stays isolated for long.
    fn hurry_repair(&mut self, now: Millis) {
        if self.neighbours.len() >= self.settings.min_degree as usize {
            return;
        }
        if self.timers.get(&Timer::Repair).is_none() {
            let soon = now.after(self.settings.probe_interval_ms);
            self.timers.set(Timer::Repair, soon);
        }
    }

    /// `HELLO` again to every neighbour. A link can become one-sided (the other end dropped
    /// us on a suspicion the seeds then rejected, or removed us before we rejoined); greeting
    /// again makes the other end add us back, or tells us to drop our half. Unless `all`, a
    /// neighbour whose own re-greeting we accepted since the last time is skipped: it held the
    /// link a moment ago, and both ends re-greeting each other doubled the traffic for
    /// nothing. A link it drops since is greeted at the following refresh.
    pub(super) fn regreet_neighbours(&mut self, now: Millis, all: bool) {
        let hello = Hello {
            peer: self.me,
            degree: self.degree(),
            incarnation: Some(self.incarnation),
        };
        let deadline = now.after(self.settings.request_timeout_ms);
        for i in 0..self.neighbours.len() {
            let Some((&to, link)) = self.neighbours.get_index_mut(i) else {
                break;
            };
            if std::mem::take(&mut link.greeted) && !all {
                continue;
            }
            self.outputs.push(Output::Send {
                to,
                msg: Message::Hello(Box::new(hello.clone())),
                deadline,
            });
        }
    }

    pub(super) fn add_neighbour(
        &mut self,
        peer: Endpoint,
        their_degree: u32,
        incarnation: Option<u64>,
    ) {
        if peer == self.me {
            return;
        }
        self.remember(peer, incarnation);
        // An existing link keeps its probe state: a re-greeting must not hide misses.
        if self.neighbours.insert_new(peer) {
            self.emit(Event::NeighbourAdded { peer, their_degree });
        }
    }

    pub(super) fn drop_neighbour(&mut self, peer: Endpoint, reason: &'static str) {
        if self.neighbours.remove(&peer) {
            self.emit(Event::NeighbourDropped { peer, reason });
        }
    }

    /// Incoming `HELLO`: accept unless full (or it claims to be this peer, or a seed: a seed
    /// answers probes forever, so a spoofed link to one would never be noticed or repaired).
    pub(super) fn on_hello(&mut self, conn: ConnId, hello: Hello) {
        let accepted = if hello.peer == self.me || self.seeds.contains(&hello.peer) {
            false
        } else if let Some(link) = self.neighbours.get_mut(&hello.peer) {
            // A re-greeting: the other end holds the link (see `regreet_neighbours`).
            link.greeted = true;
            self.remember(hello.peer, hello.incarnation);
            true
        } else if self.neighbours.len() >= self.settings.max_degree as usize {
            self.remember(hello.peer, hello.incarnation);
            false
        } else {
            self.add_neighbour(hello.peer, hello.degree, hello.incarnation);
            true
        };

        let ack = HelloAck {
            accepted,
            peer: self.me,
            degree: self.degree(),
            incarnation: Some(self.incarnation),
        };
        self.reply(conn, Message::HelloAck(Box::new(ack)));
    }
}
