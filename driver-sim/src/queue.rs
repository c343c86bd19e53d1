//! The event queue: a timing wheel of one-millisecond slots with an overflow heap.
//!
//! Events are popped in `(time, sequence)` order, where the sequence is the order in which
//! they were pushed (FoundationDB's Sim2 rule): two events due in the same millisecond run in
//! the order they were scheduled. Within the wheel's horizon ([`HORIZON_MS`] ahead of the
//! current time) a push is an append to the slot of its millisecond; events further ahead wait
//! in a binary heap keyed by `(time, sequence)` and move into their slot as the wheel turns
//! (before any direct push can reach that slot, so FIFO order within a slot is kept). Nothing
//! is allocated per event once the slots have grown to their working size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How far ahead (ms) events go straight into a wheel slot.
pub const HORIZON_MS: u64 = 1 << 14;
const MASK: u64 = HORIZON_MS - 1;

/// An event waiting in the overflow heap, ordered by `(time, seq)` only.
#[derive(Debug)]
struct Far<E> {
    time: u64,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Far<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Far<E> {}
impl<E> PartialOrd for Far<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Far<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// A `(time, sequence)`-ordered queue of `E`, time in whole milliseconds.
#[derive(Debug)]
pub struct Queue<E: Copy> {
    slots: Vec<Vec<E>>,
    /// The millisecond being popped; no event is ever earlier.
    now: u64,
    /// Read position in the current slot (new events for `now` are appended behind it).
    pos: usize,
    /// Events in the wheel not yet popped.
    in_wheel: usize,
    far: BinaryHeap<Reverse<Far<E>>>,
    seq: u64,
    /// Emptied slot buffers kept for reuse, so a busy millisecond does not grow a fresh vector
    /// from nothing every time the wheel turns, and big buffers are not freed and allocated
    /// again: freeing one makes glibc sweep its free lists (`malloc_consolidate`). A busy
    /// millisecond of a large cluster holds thousands of events, so the spares are bounded by
    /// their total capacity, not by the size of each: a cap on each would free the buffers of
    /// every burst.
    spare: Vec<Vec<E>>,
    /// The capacity, in events, of all of `spare` together (at most `SPARE_BUDGET`).
    spare_events: usize,
}

/// Spare buffer capacity kept, in events (at most 32 MiB of the simulator's small events);
/// beyond it an emptied buffer is freed.
const SPARE_BUDGET: usize = 1 << 21;
/// An emptied slot keeps a buffer up to this capacity (most slots only ever hold a few timers).
const KEPT_CAPACITY: usize = 64;

impl<E: Copy> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            slots: (0..HORIZON_MS).map(|_| Vec::new()).collect(),
            now: 0,
            pos: 0,
            in_wheel: 0,
            far: BinaryHeap::new(),
            seq: 0,
            spare: Vec::new(),
            spare_events: 0,
        }
    }
}

impl<E: Copy> Queue<E> {
    /// The current time: that of the last popped event (or where the wheel stands).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.in_wheel + self.far.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Schedules `ev` at `time`; a time in the past is clamped to now (time never goes back).
    pub fn push(&mut self, time: u64, ev: E) {
        let time = time.max(self.now);
        self.seq += 1;
        if time - self.now < HORIZON_MS {
            let slot = &mut self.slots[(time & MASK) as usize];
            // A slot starting to fill takes a spare buffer rather than growing its own from
            // small (a slot keeps a small buffer when it is emptied): growing reallocates, and
            // the spares it leaves unused would pile up and be freed, which is what costs.
            if slot.is_empty() && slot.capacity() <= KEPT_CAPACITY {
                if let Some(buffer) = self.spare.pop() {
                    self.spare_events -= buffer.capacity();
                    *slot = buffer;
                }
            }
            slot.push(ev);
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse(Far {
                time,
                seq: self.seq,
                ev,
            }));
        }
    }

    /// The `k`-th event still to pop (0: the next one), if it is due at the current time
    /// (the simulator reads ahead to start its cache misses early).
    pub fn peek_now(&self, k: usize) -> Option<&E> {
        self.slots[(self.now & MASK) as usize].get(self.pos + k)
    }

    /// The next event due at or before `until`, with its time; `None` when none is.
    pub fn pop_until(&mut self, until: u64) -> Option<(u64, E)> {
        loop {
            let slot = &mut self.slots[(self.now & MASK) as usize];
            if self.pos < slot.len() {
                let ev = slot[self.pos];
                self.pos += 1;
                self.in_wheel -= 1;
                return Some((self.now, ev));
            }
            if self.now >= until {
                return None;
            }
            // A slot that held a burst hands its buffer to the spares: slots are reused every
            // `HORIZON_MS`, and keeping every burst's capacity in its slot would hold gigabytes.
            slot.clear();
            if slot.capacity() > KEPT_CAPACITY {
                let buffer = std::mem::take(slot);
                if self.spare_events + buffer.capacity() <= SPARE_BUDGET {
                    self.spare_events += buffer.capacity();
                    self.spare.push(buffer);
                }
            }
            self.pos = 0;
            if self.in_wheel == 0 {
                // Nothing in the wheel: jump straight to the next far event (or to `until`).
                match self.far.peek() {
                    Some(Reverse(f)) if f.time <= until => self.now = f.time,
                    _ => {
                        self.now = until;
                        return None;
                    }
                }
            } else {
                self.now += 1;
            }
            self.migrate();
        }
    }

    /// Moves far events that came within the horizon into their slots, in `(time, seq)` order.
    fn migrate(&mut self) {
        while let Some(Reverse(f)) = self.far.peek() {
            if f.time - self.now >= HORIZON_MS {
                break;
            }
            if let Some(Reverse(f)) = self.far.pop() {
                self.slots[(f.time & MASK) as usize].push(f.ev);
                self.in_wheel += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain sorted reference: (time, seq) order.
    fn reference(pushes: &[(u64, u32)]) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, usize, u32)> = pushes
            .iter()
            .enumerate()
            .map(|(i, &(t, e))| (t, i, e))
            .collect();
        v.sort();
        v.into_iter().map(|(t, _, e)| (t, e)).collect()
    }

    #[test]
    fn pops_in_time_then_push_order_across_wheel_and_heap() {
        let mut q = Queue::default();
        let pushes = [
            (5, 1),
            (HORIZON_MS * 3 + 7, 2),
            (5, 3),
            (0, 4),
            (HORIZON_MS + 5, 5),
            (HORIZON_MS * 3 + 7, 6),
            (HORIZON_MS - 1, 7),
            (HORIZON_MS, 8),
        ];
        for &(t, e) in &pushes {
            q.push(t, e);
        }
        let mut got = Vec::new();
        while let Some(x) = q.pop_until(u64::MAX) {
            got.push(x);
        }
        assert_eq!(got, reference(&pushes));
        assert!(q.is_empty());
    }

    #[test]
    fn far_event_keeps_fifo_against_later_direct_pushes_at_the_same_ms() {
        let mut q = Queue::default();
        let t = HORIZON_MS + 100;
        q.push(t, 1); // far: goes to the heap
        q.push(200, 0);
        assert_eq!(q.pop_until(u64::MAX), Some((200, 0)));
        // Now t is within the horizon: a direct push lands in t's slot after the migrated one.
        q.push(t, 2);
        assert_eq!(q.pop_until(u64::MAX), Some((t, 1)));
        assert_eq!(q.pop_until(u64::MAX), Some((t, 2)));
    }

    #[test]
    fn events_pushed_for_now_while_popping_run_in_the_same_ms() {
        let mut q = Queue::default();
        q.push(10, 1);
        assert_eq!(q.pop_until(u64::MAX), Some((10, 1)));
        q.push(10, 2);
        q.push(3, 3); // in the past: clamped to now, after 2
        assert_eq!(q.pop_until(u64::MAX), Some((10, 2)));
        assert_eq!(q.pop_until(u64::MAX), Some((10, 3)));
        assert_eq!(q.pop_until(u64::MAX), None);
    }

    #[test]
    fn peek_now_sees_the_events_still_to_pop_at_the_current_time_only() {
        let mut q = Queue::default();
        for (t, e) in [(5, 1), (5, 2), (5, 3), (6, 4)] {
            q.push(t, e);
        }
        assert_eq!(q.pop_until(u64::MAX), Some((5, 1)));
        assert_eq!(q.peek_now(0), Some(&2));
        assert_eq!(q.peek_now(1), Some(&3));
        assert_eq!(q.peek_now(2), None, "a later millisecond is not read ahead");
        assert_eq!(q.pop_until(u64::MAX), Some((5, 2)));
        assert_eq!(q.peek_now(0), Some(&3));
        assert_eq!(q.peek_now(1), None);
    }

    #[test]
    fn pop_until_stops_at_the_limit_and_resumes() {
        let mut q = Queue::default();
        q.push(50, 1);
        q.push(5_000_000, 2);
        assert_eq!(q.pop_until(40), None);
        assert_eq!(q.now(), 40);
        assert_eq!(q.pop_until(1_000), Some((50, 1)));
        assert_eq!(q.pop_until(1_000), None);
        assert_eq!(q.now(), 1_000);
        assert_eq!(q.pop_until(u64::MAX), Some((5_000_000, 2)));
    }

    #[test]
    fn matches_reference_on_pseudo_random_pushes_interleaved_with_pops() {
        let mut q = Queue::default();
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Model: a sorted list of (time, seq, id).
        let mut model: Vec<(u64, u64, u32)> = Vec::new();
        let mut seq = 0;
        for id in 0..5_000u32 {
            let r = next();
            if r % 3 == 0 && !model.is_empty() {
                let got = q.pop_until(u64::MAX);
                model.sort();
                let want = if model.is_empty() {
                    None
                } else {
                    let (t, _, e) = model.remove(0);
                    Some((t, e))
                };
                assert_eq!(got, want);
            } else {
                let ahead = match r % 7 {
                    0 => next() % (HORIZON_MS * 4),
                    1 => 0,
                    _ => next() % 50,
                };
                let t = q.now() + ahead;
                seq += 1;
                model.push((t, seq, id));
                q.push(t, id);
            }
        }
    }

    #[test]
    fn spare_buffers_stay_within_the_budget_and_are_reused() {
        let mut q = Queue::default();
        // Bursts of 10,000 events in each of 400 milliseconds: far more buffer capacity than
        // the budget if every emptied buffer were kept.
        for round in 0..2u32 {
            for ms in 0..400u64 {
                for i in 0..10_000u32 {
                    q.push(q.now() + ms, i);
                }
            }
            let mut popped = 0;
            while q.pop_until(q.now() + 400).is_some() {
                popped += 1;
            }
            assert_eq!(popped, 4_000_000, "round {round}");
            let held: usize = q.spare.iter().map(Vec::capacity).sum();
            assert_eq!(held, q.spare_events, "round {round}: accounting drifted");
            assert!(
                held <= SPARE_BUDGET,
                "round {round}: {held} events of spares"
            );
            assert!(!q.spare.is_empty(), "round {round}: nothing kept for reuse");
        }
    }
}
