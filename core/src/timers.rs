//! Named deadlines. A node keeps one [`Timers`] table; its earliest entry is the node's
//! `next_deadline()`. Setting a timer again replaces it, so a stale deadline never fires.
//! Drivers ask for the earliest deadline after every input, so it is cached rather than looked
//! up in the tree each time.

use std::collections::{BTreeMap, BTreeSet};

use crate::Millis;

/// A set of deadlines keyed by `K`, at most one per key.
#[derive(Clone, Debug)]
pub struct Timers<K: Ord + Clone> {
    by_key: BTreeMap<K, Millis>,
    by_time: BTreeSet<(Millis, K)>,
    /// The first key of `by_time`, kept in step by every change.
    earliest: Option<Millis>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_key: BTreeMap::new(),
            by_time: BTreeSet::new(),
            earliest: None,
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    /// Sets (or moves) the timer `key` to `at`.
    pub fn set(&mut self, key: K, at: Millis) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
        self.note_earliest();
    }

    fn note_earliest(&mut self) {
        self.earliest = self.by_time.first().map(|(at, _)| *at);
    }

    /// Cancels the timer `key`, if set.
    pub fn cancel(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
            self.note_earliest();
        }
    }

    /// When `key` fires, if set.
    pub fn get(&self, key: &K) -> Option<Millis> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    #[inline]
    pub fn next_deadline(&self) -> Option<Millis> {
        self.earliest
    }

    /// Removes and returns the earliest timer due at `now`, if any. Call until `None`.
    pub fn pop_due(&mut self, now: Millis) -> Option<K> {
        if self.earliest? > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        self.note_earliest();
        Some(key)
    }

    /// How many timers are set.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when none is set.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// [`Timers`] for a node with a handful of distinct keys (a peer has ten): an unsorted array
/// scanned linearly. At that size a scan of a cache line or two beats two trees, and a peer
/// sets or fires a timer on most of its inputs. Same semantics, same firing order (earliest
/// first, ties by key). The earliest deadline is kept apart, since a driver asks for it after
/// every input.
#[derive(Clone, Debug)]
pub struct FewTimers<K: Ord + Clone> {
    /// The earliest deadline of `slots`.
    earliest: Option<Millis>,
    slots: Vec<(Millis, K)>,
}

impl<K: Ord + Clone> Default for FewTimers<K> {
    fn default() -> Self {
        FewTimers {
            slots: Vec::new(),
            earliest: None,
        }
    }
}

impl<K: Ord + Clone> FewTimers<K> {
    /// Cancels every timer.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.earliest = None;
    }

    /// Sets (or moves) the timer `key` to `at`.
    pub fn set(&mut self, key: K, at: Millis) {
        match self.slots.iter_mut().find(|(_, k)| *k == key) {
            Some(slot) => slot.0 = at,
            None => self.slots.push((at, key)),
        }
        self.note_earliest();
    }

    fn note_earliest(&mut self) {
        self.earliest = self.slots.iter().map(|(at, _)| *at).min();
    }

    /// Cancels the timer `key`, if set.
    pub fn cancel(&mut self, key: &K) {
        if let Some(i) = self.slots.iter().position(|(_, k)| k == key) {
            self.slots.swap_remove(i);
            self.note_earliest();
        }
    }

    /// When `key` fires, if set.
    pub fn get(&self, key: &K) -> Option<Millis> {
        self.slots.iter().find(|(_, k)| k == key).map(|(at, _)| *at)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.earliest
    }

    /// Removes and returns the earliest timer due at `now` (ties: the least key), if any.
    /// Call until `None`.
    pub fn pop_due(&mut self, now: Millis) -> Option<K> {
        if self.earliest? > now {
            return None;
        }
        let i = (0..self.slots.len()).min_by(|&a, &b| self.slots[a].cmp(&self.slots[b]))?;
        let (_, key) = self.slots.swap_remove(i);
        self.note_earliest();
        Some(key)
    }

    /// How many timers are set.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when none is set.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_replaces() {
        let mut t = Timers::default();
        t.set("a", Millis(30));
        t.set("b", Millis(10));
        t.set("a", Millis(5)); // moved earlier: the old 30 must not fire
        assert_eq!(t.next_deadline(), Some(Millis(5)));
        assert_eq!(t.pop_due(Millis(20)), Some("a"));
        assert_eq!(t.pop_due(Millis(20)), Some("b"));
        assert_eq!(t.pop_due(Millis(100)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn cancel_removes() {
        let mut t = Timers::default();
        t.set(1, Millis(1));
        t.cancel(&1);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn few_timers_behave_as_timers() {
        let (mut few, mut tree) = (FewTimers::default(), Timers::default());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 0;
        for _ in 0..5_000 {
            x = crate::hash::mix64(x);
            let key = (x % 6) as u8;
            let at = Millis(now + (x >> 8) % 40);
            match (x >> 4) % 4 {
                0 | 1 => {
                    few.set(key, at);
                    tree.set(key, at);
                }
                2 => {
                    few.cancel(&key);
                    tree.cancel(&key);
                }
                _ => {
                    now += (x >> 16) % 30;
                    loop {
                        let (a, b) = (few.pop_due(Millis(now)), tree.pop_due(Millis(now)));
                        assert_eq!(a, b, "at {now}");
                        if a.is_none() {
                            break;
                        }
                    }
                }
            }
            assert_eq!(few.next_deadline(), tree.next_deadline());
            assert_eq!(few.get(&key), tree.get(&key));
            assert_eq!((few.len(), few.is_empty()), (tree.len(), tree.is_empty()));
        }
    }
}
