//! The hub's timer queue, deadlines, and the guard that cancels a timer.
//!
//! [`Timers`] is an ordered map keyed by (deadline, sequence): insert and
//! cancel are O(log n) and a cancelled timer leaves nothing behind, so a
//! server doing `recv` with a timeout a million times does not grow the
//! queue. The sequence number keeps timers with equal deadlines in FIFO
//! order. What a timer does when it fires is the hub's business: the queue
//! holds entries of any type `E`.
//!
//! A deadline is kept as nanoseconds since the queue was made, not as an
//! `Instant` (16 bytes): with the hub's two-word entries, a B-tree node of
//! 11 timers then takes 368 bytes instead of 624, and a parked greenlet's
//! share of the queue about 50 bytes instead of 90.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Identifies a timer for cancellation: its deadline (nanoseconds since
/// the queue's `base`) and its order among equal deadlines.
pub(crate) type TimerKey = (u64, u64);

/// Pending timers, earliest first.
pub(crate) struct Timers<E> {
    map: BTreeMap<TimerKey, E>,
    /// Deadlines are counted from here (the queue's creation; an earlier
    /// deadline counts as this one: due at once, as it was).
    base: Instant,
    seq: u64,
    /// Seeded scheduling: the state of a xorshift source whose numbers
    /// order timers with equal deadlines (0: in the order they were set).
    tie: u64,
}

impl<E> Default for Timers<E> {
    fn default() -> Self {
        Timers {
            map: BTreeMap::new(),
            base: Instant::now(),
            seq: 0,
            tie: 0,
        }
    }
}

impl<E> Timers<E> {
    pub(crate) fn insert(&mut self, deadline: Instant, entry: E) -> TimerKey {
        self.seq += 1;
        let order = if self.tie == 0 {
            self.seq
        } else {
            // A random high half orders equal deadlines; the sequence in
            // the low half keeps every key unique.
            (crate::sys::xorshift(&mut self.tie) & !0xffff_ffff) | (self.seq & 0xffff_ffff)
        };
        let key = (self.since_base(deadline), order);
        self.map.insert(key, entry);
        key
    }

    /// `t` in nanoseconds since `base` (saturating at both ends: 584 years
    /// fit, past the century a "forever" deadline is put at).
    #[inline]
    fn since_base(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
    }

    /// Orders timers with equal deadlines by a source seeded with `state`
    /// (non-zero), or, with `None`, in the order they are set.
    pub(crate) fn set_tie_seed(&mut self, state: Option<u64>) {
        self.tie = state.unwrap_or(0);
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<E> {
        self.map.remove(key)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map
            .first_key_value()
            .map(|(k, _)| self.base + Duration::from_nanos(k.0))
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<E> {
        let now = self.since_base(now);
        match self.map.first_entry() {
            Some(e) if e.key().0 <= now => Some(e.remove()),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn drain(&mut self) -> Vec<E> {
        std::mem::take(&mut self.map).into_values().collect()
    }
}

/// How far away a deadline that would overflow `Instant` is put: a century.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The deadline `timeout` from now: the one conversion of the runtime. A
/// timeout too large for `Instant` (such as `Duration::MAX`) saturates to a
/// century from now: a wait that long is a wait forever, and it still has
/// a timer, so an idle hub blocks in its poll instead of reporting that
/// nothing can ever happen.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// The deadline of an optional timeout (`None`: no deadline).
pub(crate) fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(deadline_after)
}

/// A timer that is cancelled when dropped (also on unwind).
pub(crate) struct TimerGuard<'a, E> {
    timers: &'a RefCell<Timers<E>>,
    key: TimerKey,
}

impl<'a, E> TimerGuard<'a, E> {
    /// Adds `entry` to fire at `deadline`, until the guard is dropped.
    pub(crate) fn arm(timers: &'a RefCell<Timers<E>>, deadline: Instant, entry: E) -> Self {
        let key = timers.borrow_mut().insert(deadline, entry);
        TimerGuard { timers, key }
    }
}

impl<E> Drop for TimerGuard<'_, E> {
    fn drop(&mut self) {
        let entry = self.timers.borrow_mut().remove(&self.key);
        drop(entry); // outside the borrow: it may own a greenlet's last handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_deadlines_fire_in_insertion_order_and_cancelled_ones_never() {
        let timers = RefCell::new(Timers::default());
        let t = Instant::now();
        timers.borrow_mut().insert(t, "a");
        let guard = TimerGuard::arm(&timers, t, "cancelled");
        timers.borrow_mut().insert(t, "b");
        drop(guard);
        assert_eq!(timers.borrow().len(), 2);
        let mut fired = Vec::new();
        while let Some(e) = timers.borrow_mut().pop_due(t) {
            fired.push(e);
        }
        assert_eq!(fired, ["a", "b"]);
    }

    #[test]
    fn a_huge_timeout_saturates_instead_of_overflowing() {
        let d = deadline_after(Duration::MAX);
        assert!(d > Instant::now() + Duration::from_secs(50 * 365 * 24 * 3600));
        assert_eq!(deadline_of(None), None);
    }

    #[test]
    fn deadlines_keep_their_order_and_value_to_the_nanosecond() {
        let mut timers = Timers::default();
        let t = Instant::now();
        let past = t.checked_sub(Duration::from_secs(5)).unwrap_or(t);
        let forever = deadline_after(Duration::MAX);
        // Inserted out of order: 1 ns apart, a past deadline, a century.
        timers.insert(t + Duration::from_nanos(2), "c");
        timers.insert(forever, "forever");
        timers.insert(t + Duration::from_nanos(1), "b");
        timers.insert(past, "past");
        assert!(
            timers.next_deadline().unwrap() <= t,
            "a past deadline is due at once"
        );
        assert_eq!(timers.pop_due(t), Some("past"));
        assert_eq!(timers.next_deadline(), Some(t + Duration::from_nanos(1)));
        assert_eq!(timers.pop_due(t), None, "not due 1 ns early");
        assert_eq!(timers.pop_due(t + Duration::from_nanos(1)), Some("b"));
        assert_eq!(timers.pop_due(t + Duration::from_secs(3600)), Some("c"));
        assert_eq!(timers.next_deadline(), Some(forever));
        assert_eq!(timers.pop_due(t + Duration::from_secs(3600)), None);
    }
}
