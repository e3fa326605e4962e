//! Cooperative synchronisation: events, results, semaphores and locks, all
//! built on one waiter primitive of the hub.
//!
//! Every type here belongs to one thread's hub (they are `!Send`, and cheap:
//! no atomics). A greenlet that waits parks in the hub, which runs the others
//! meanwhile; waiters are woken in FIFO order. Every blocking call has
//! `_timeout`/`_deadline` forms and reports why it ended with [`WaitError`]:
//! a timeout, `LoopExit` (the wait could never end: gevent's `LoopExit`, a
//! deadlock caught instead of a hang), or cancellation (the waiter is
//! unwinding and may not wait).
//!
//! A greenlet killed (or interrupted by a [`with_timeout`](crate::with_timeout)
//! scope) while it waits unwinds out of the wait; whatever was handed to it
//! in the same tick (a permit, a lock, a queued item) is passed on, never
//! lost, and its guards release what it held.
//!
//! ```
//! use std::rc::Rc;
//! use verdant_runtime::sync::Event;
//! use verdant_runtime::spawn;
//!
//! let ready = Rc::new(Event::new());
//! let r = ready.clone();
//! let waiter = spawn(move || { r.wait().unwrap(); "saw it" });
//! ready.set();
//! assert_eq!(waiter.join().unwrap(), "saw it");
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use crate::greenlet::Wake;
use crate::hub::{self, Runtime, WaitToken};
use crate::task::TimerGuard;

pub mod channel;
mod condition;
mod event;
mod queue;
mod semaphore;

pub use condition::{Condition, WaitTimeoutResult};
pub use event::{AsyncResult, Event, GetError};
pub use queue::{
    JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue, TakeError, TaskDoneError,
};
pub use semaphore::{
    BoundedSemaphore, Lock, LockGuard, OverRelease, RLock, RLockGuard, Semaphore, SemaphoreGuard,
};

/// Why a blocking wait ended without what it waited for.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::sync::{Event, WaitError};
/// let e = Event::new();
/// assert_eq!(e.wait_timeout(Duration::from_millis(1)), Err(WaitError::TimedOut));
/// // Nothing could ever set it: a deadlock, reported instead of a hang.
/// assert_eq!(e.wait(), Err(WaitError::LoopExit));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout or deadline passed first.
    TimedOut,
    /// The wait could never end: the hub had nothing ready, timed or watched
    /// (gevent's `LoopExit`).
    LoopExit,
    /// The waiting greenlet is unwinding (a panic, a kill, its drop) and may
    /// not wait.
    Cancelled,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitError::TimedOut => "timed out waiting",
            WaitError::LoopExit => {
                "LoopExit: this wait could never end (nothing is ready, timed or watched)"
            }
            WaitError::Cancelled => "cannot wait while the greenlet unwinds",
        })
    }
}

impl std::error::Error for WaitError {}

const WAITING: u8 = 0;
const NOTIFIED: u8 = 1;

/// One parked greenlet in a [`WaitList`], with a slot for a value handed to
/// it (a getter) or offered by it (a putter).
pub(crate) struct Waiter<T> {
    token: WaitToken,
    state: Cell<u8>,
    slot: Cell<Option<T>>,
}

impl<T> Waiter<T> {
    /// Whether a notify reached this waiter (its value, if any, is in the
    /// slot).
    pub(crate) fn is_notified(&self) -> bool {
        self.state.get() == NOTIFIED
    }

    /// Takes the value in the slot.
    pub(crate) fn take(&self) -> Option<T> {
        self.slot.take()
    }
}

/// A FIFO list of parked greenlets: the hub's waiter primitive. Waking one
/// hands it a value (or takes the value it offered) in the same step, so a
/// newcomer can never overtake a woken waiter (FIFO fairness), and a waiter
/// that unwinds after being woken passes what it got on (`on_lost`).
pub(crate) struct WaitList<T> {
    q: RefCell<VecDeque<Rc<Waiter<T>>>>,
    /// The record of the last finished wait, reused by the next one: a
    /// blocking loop (a channel ping-pong) then waits without allocating.
    /// It names the hub, never a greenlet it could keep alive.
    spare: Cell<Option<Rc<Waiter<T>>>>,
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        WaitList {
            q: RefCell::new(VecDeque::new()),
            spare: Cell::new(None),
        }
    }
}

impl<T> WaitList<T> {
    /// Pops the first waiter still waiting (dropping those whose wait ended
    /// otherwise: timed out, killed), marks it notified and wakes it.
    fn pop_live(&self) -> Option<Rc<Waiter<T>>> {
        loop {
            let w = self.q.borrow_mut().pop_front()?;
            if w.state.get() == WAITING && w.token.is_current() {
                hub::with_rt(|rt| rt.wake(&w.token, Wake::Ready));
                w.state.set(NOTIFIED);
                return Some(w);
            }
        }
    }

    /// Wakes the first waiter, handing it `value`; gives `value` back when
    /// no one waits.
    pub(crate) fn notify_one(&self, value: T) -> Result<(), T> {
        match self.pop_live() {
            Some(w) => {
                w.slot.set(Some(value));
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Wakes the first waiter and takes the value it offered.
    pub(crate) fn take_one(&self) -> Option<T> {
        let w = self.pop_live()?;
        w.slot.take()
    }

    /// Wakes every waiter, each with a value from `f`.
    pub(crate) fn notify_all(&self, mut f: impl FnMut() -> T) -> usize {
        let mut n = 0;
        while self.notify_one(f()).is_ok() {
            n += 1;
        }
        n
    }

    /// Wakes every waiter without handing anything over: each finds its
    /// offer still in place (a putter) or nothing (a getter), and looks at
    /// the state again (a queue that closed).
    pub(crate) fn wake_all_empty(&self) {
        while self.pop_live().is_some() {}
    }

    /// Whether a greenlet waits (waits that ended otherwise are pruned).
    pub(crate) fn has_waiters(&self) -> bool {
        let mut q = self.q.borrow_mut();
        while let Some(w) = q.front() {
            if w.state.get() == WAITING && w.token.is_current() {
                return true;
            }
            q.pop_front();
        }
        false
    }

    /// How many greenlets wait.
    pub(crate) fn len(&self) -> usize {
        self.q
            .borrow()
            .iter()
            .filter(|w| w.state.get() == WAITING && w.token.is_current())
            .count()
    }

    /// Parks the current greenlet at the back of the list until it is
    /// notified, `deadline` passes, or the wait can never end. `offer` is the
    /// value a putter hands over. On success, gives the value it was handed
    /// (or `None` once its offer was taken); on failure, the offer back.
    ///
    /// If the greenlet unwinds (a kill, a timeout scope) after being
    /// notified, `on_lost` gets what was handed to it, to pass on.
    #[inline]
    pub(crate) fn wait(
        &self,
        rt: &Runtime,
        deadline: Option<Instant>,
        offer: Option<T>,
        on_lost: &dyn Fn(Option<T>),
    ) -> Result<Option<T>, (WaitError, Option<T>)> {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err((WaitError::TimedOut, offer));
        }
        let token = match hub::begin_wait(rt) {
            Ok(t) => t,
            Err(_) => return Err((WaitError::Cancelled, offer)),
        };
        let w = self.new_waiter(token.clone(), offer);
        self.q.borrow_mut().push_back(w.clone());
        let mut guard = Unwinding {
            list: self,
            w: &w,
            on_lost,
            armed: true,
        };
        let timer = deadline.map(|d| TimerGuard::new(rt, d, token));
        let woke = hub::wait(rt);
        drop(timer);
        guard.armed = false;
        drop(guard);
        if w.state.get() == NOTIFIED {
            let got = w.slot.take();
            self.keep_spare(rt, w);
            return Ok(got);
        }
        self.remove(&w);
        let why = match woke {
            Ok(Wake::TimedOut) => WaitError::TimedOut,
            Ok(Wake::LoopExit) => WaitError::LoopExit,
            // Not notified yet woken Ready: cannot happen; report a
            // cancellation rather than loop.
            Ok(Wake::Ready) | Err(_) => WaitError::Cancelled,
        };
        let back = w.slot.take();
        self.keep_spare(rt, w);
        Err((why, back))
    }

    /// Stands in line as a waiter (with nothing to offer) for one turn of
    /// the ready queue (see [`hub::wait_one_turn`]), so that the greenlets
    /// ready now can hand it a value; `before` runs once it is in line, to
    /// wake those that could. Returns what it was handed, if anything;
    /// `on_lost` as for [`wait`](WaitList::wait).
    pub(crate) fn wait_one_turn(
        &self,
        rt: &Runtime,
        before: impl FnOnce(),
        on_lost: &dyn Fn(Option<T>),
    ) -> Option<T> {
        let token = hub::begin_wait(rt).ok()?;
        let w = self.new_waiter(token.clone(), None);
        self.q.borrow_mut().push_back(w.clone());
        before();
        let mut guard = Unwinding {
            list: self,
            w: &w,
            on_lost,
            armed: true,
        };
        let _ = hub::wait_one_turn(rt, &token);
        drop(token);
        guard.armed = false;
        drop(guard);
        let got = if w.state.get() == NOTIFIED {
            w.slot.take()
        } else {
            self.remove(&w);
            None
        };
        self.keep_spare(rt, w);
        got
    }

    /// A waiter record for `token`: the spare one if there is one.
    #[inline]
    fn new_waiter(&self, token: WaitToken, offer: Option<T>) -> Rc<Waiter<T>> {
        if let Some(mut w) = self.spare.take() {
            if let Some(m) = Rc::get_mut(&mut w) {
                m.token = token;
                *m.state.get_mut() = WAITING;
                *m.slot.get_mut() = offer;
                return w;
            }
        }
        Rc::new(Waiter {
            token,
            state: Cell::new(WAITING),
            slot: Cell::new(offer),
        })
    }

    /// Keeps the record of a finished wait for the next one, if nothing
    /// else holds it; its token is pointed at the hub so that it keeps no
    /// greenlet alive (a greenlet whose last handle goes must still unwind).
    #[inline]
    fn keep_spare(&self, rt: &Runtime, mut w: Rc<Waiter<T>>) {
        if let Some(m) = Rc::get_mut(&mut w) {
            *m.slot.get_mut() = None;
            m.token = WaitToken {
                g: rt.hub.clone(),
                seq: 0,
            };
            self.spare.set(Some(w));
        }
    }

    /// Puts a waiter for `token` at the back of the list, without parking:
    /// for waits on several things at once (a select), which park once
    /// with one token for all. The caller removes it with
    /// [`remove`](WaitList::remove) unless it was notified.
    pub(crate) fn enqueue(&self, token: &WaitToken, offer: Option<T>) -> Rc<Waiter<T>> {
        let w = Rc::new(Waiter {
            token: token.clone(),
            state: Cell::new(WAITING),
            slot: Cell::new(offer),
        });
        self.q.borrow_mut().push_back(w.clone());
        w
    }

    /// Takes `w` off the list (nothing happens if it was popped already).
    pub(crate) fn remove(&self, w: &Rc<Waiter<T>>) {
        let removed = {
            let mut q = self.q.borrow_mut();
            q.iter()
                .position(|x| Rc::ptr_eq(x, w))
                .and_then(|i| q.remove(i))
        };
        drop(removed);
    }
}

/// Cleans up a wait left by unwinding: dequeues the waiter, or passes on
/// what it was handed.
struct Unwinding<'a, T> {
    list: &'a WaitList<T>,
    w: &'a Rc<Waiter<T>>,
    on_lost: &'a dyn Fn(Option<T>),
    armed: bool,
}

impl<T> Drop for Unwinding<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.w.state.get() == NOTIFIED {
            (self.on_lost)(self.w.slot.take());
        } else {
            self.list.remove(self.w);
        }
    }
}

/// The deadline of an optional timeout.
pub(crate) fn deadline_of(timeout: Option<std::time::Duration>) -> Option<Instant> {
    timeout.map(crate::task::deadline_after)
}
