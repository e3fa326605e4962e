//! The hub's timer queue: an ordered map keyed by (deadline, sequence).
//!
//! Insert and cancel are O(log n) and a cancelled timer leaves nothing behind,
//! so a server doing `recv(timeout)` a million times does not grow the queue
//! (reliability §7, "cancelled timeouts must be removed"). The sequence number
//! keeps timers with equal deadlines in FIFO order.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::hub::WaitToken;
use crate::value::Wake;

/// Identifies a timer for cancellation.
pub(crate) type TimerKey = (Instant, u64);

pub(crate) struct TimerEntry {
    pub(crate) token: WaitToken,
    pub(crate) wake: Wake,
    /// Non-zero: the timer of `with_timeout` scope `scope` of `token.g`
    /// (it interrupts whatever the greenlet waits in; `token.seq` unused).
    pub(crate) scope: u64,
}

#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, TimerEntry>,
    seq: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, entry: TimerEntry) -> TimerKey {
        self.seq += 1;
        let key = (deadline, self.seq);
        self.map.insert(key, entry);
        key
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<TimerEntry> {
        self.map.remove(key)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|(k, _)| k.0)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.map.first_entry() {
            Some(e) if e.key().0 <= now => Some(e.remove()),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn drain(&mut self) -> Vec<TimerEntry> {
        std::mem::take(&mut self.map).into_values().collect()
    }
}
