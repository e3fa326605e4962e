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
use std::mem::{self, ManuallyDrop};
use std::ptr::{self, NonNull};
use std::time::Instant;

use crate::hub::{self, Runtime, WaitToken};
use crate::hub::{Stuck, Waiting};
use crate::value::Wake;

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
/// assert!(matches!(e.wait(), Err(WaitError::LoopExit(_))));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout or deadline passed first.
    TimedOut,
    /// The wait could never end: the hub had nothing ready, timed or watched
    /// (gevent's `LoopExit`). The [`Stuck`] list names the greenlets left
    /// waiting too, and what each waits for: the other side of the deadlock.
    LoopExit(Stuck),
    /// The waiting greenlet is unwinding (a panic, a kill, its drop) and may
    /// not wait.
    Cancelled,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TimedOut => f.write_str("timed out waiting"),
            WaitError::LoopExit(stuck) => write!(
                f,
                "LoopExit: this wait could never end (nothing is ready, timed or watched); {stuck}"
            ),
            WaitError::Cancelled => f.write_str("cannot wait while the greenlet unwinds"),
        }
    }
}

impl WaitError {
    /// A `LoopExit` just delivered to the running greenlet, naming the
    /// greenlets it leaves stuck.
    pub(crate) fn loop_exit() -> WaitError {
        WaitError::LoopExit(hub::stuck())
    }
}

impl std::error::Error for WaitError {}

const WAITING: u8 = 0;
const NOTIFIED: u8 = 1;

/// One parked greenlet in a [`WaitList`], with a slot for a value handed to
/// it (a getter) or offered by it (a putter).
///
/// A waiter lives where its owner keeps it: in the frame of
/// [`WaitList::wait`] on the parked greenlet's own stack (which stays put
/// while the greenlet is suspended), or boxed in an [`Enqueued`] for a
/// select. The list holds only its address, so a blocking call allocates
/// nothing and counts no references. The owner takes it off the list before
/// it goes (a guard does so on every way out, unwinding included); a waiter
/// that the list dropped as stale is simply not found.
pub(crate) struct Waiter<T> {
    /// Who waits. Owned until the waiter is notified, when the notifier
    /// moves it into the hub's ready queue (no handle is cloned or dropped
    /// for a wake-up): `state == NOTIFIED` means it is gone.
    token: ManuallyDrop<WaitToken>,
    state: Cell<u8>,
    slot: Cell<Option<T>>,
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        if self.state.get() != NOTIFIED {
            // SAFETY: not notified, so the token was never moved out, and
            // this is its only drop.
            unsafe { ManuallyDrop::drop(&mut self.token) }
        }
    }
}

impl<T> Waiter<T> {
    fn new(token: WaitToken, offer: Option<T>) -> Waiter<T> {
        Waiter {
            token: ManuallyDrop::new(token),
            state: Cell::new(WAITING),
            slot: Cell::new(offer),
        }
    }

    /// Whether the waiter is still waiting for this list (neither notified
    /// nor woken otherwise: timed out, killed, another of a select's
    /// operations).
    #[inline]
    fn is_live(&self) -> bool {
        self.state.get() == WAITING && self.token.is_current()
    }
}

/// A FIFO list of parked greenlets: the hub's waiter primitive. Waking one
/// hands it a value (or takes the value it offered) in the same step, so a
/// newcomer can never overtake a woken waiter (FIFO fairness), and a waiter
/// that unwinds after being woken passes what it got on (`on_lost`).
pub(crate) struct WaitList<T> {
    /// Waiters in arrival order, by address (see [`Waiter`]): every entry
    /// is alive, since its owner removes it before the waiter goes.
    q: Waiters<T>,
}

/// A FIFO of waiter addresses, with the first kept apart: a list that
/// rarely holds more than one waiter (a channel between two greenlets, a
/// lock taken in turns) never touches the ring buffer.
///
/// Invariant: `first` is empty only when `rest` is.
struct Waiters<T> {
    first: Cell<Option<NonNull<Waiter<T>>>>,
    rest: RefCell<VecDeque<NonNull<Waiter<T>>>>,
}

impl<T> Waiters<T> {
    #[inline(always)]
    fn push_back(&self, p: NonNull<Waiter<T>>) {
        if self.first.get().is_none() {
            self.first.set(Some(p));
        } else {
            self.rest.borrow_mut().push_back(p);
        }
    }

    #[inline(always)]
    fn front(&self) -> Option<NonNull<Waiter<T>>> {
        self.first.get()
    }

    #[inline(always)]
    fn pop_front(&self) -> Option<NonNull<Waiter<T>>> {
        let p = self.first.get()?;
        self.first.set(self.rest.borrow_mut().pop_front());
        Some(p)
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.first.get().is_none()
    }

    /// Takes `p` out, wherever it is (nothing happens if it is not here).
    fn remove(&self, p: NonNull<Waiter<T>>) {
        if self.first.get() == Some(p) {
            self.pop_front();
            return;
        }
        let mut rest = self.rest.borrow_mut();
        if let Some(i) = rest.iter().position(|x| *x == p) {
            rest.remove(i);
        }
    }
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        WaitList {
            q: Waiters {
                first: Cell::new(None),
                rest: RefCell::new(VecDeque::new()),
            },
        }
    }
}

impl<T> WaitList<T> {
    /// Pops the first waiter still waiting (dropping the entries of waits
    /// that ended otherwise: timed out, killed), marks it notified and wakes
    /// it. The waiter stays valid until the caller next switches: only its
    /// greenlet, which is parked, can end it.
    #[inline(always)]
    fn pop_live(&self) -> Option<NonNull<Waiter<T>>> {
        loop {
            let p = self.q.pop_front()?;
            // SAFETY: a listed waiter is alive (see `q`).
            let w = unsafe { p.as_ref() };
            if w.is_live() {
                w.state.set(NOTIFIED);
                // SAFETY: NOTIFIED marks the token as moved out: the waiter
                // is off the list, nothing reads its token again, and its
                // drop skips it. This is the one read that moves it.
                let token = unsafe { ptr::read(&*w.token) };
                hub::rt().wake_live(token);
                return Some(p);
            }
        }
    }

    /// Wakes the first waiter, handing it `value`; gives `value` back when
    /// no one waits.
    #[inline(always)]
    pub(crate) fn notify_one(&self, value: T) -> Result<(), T> {
        match self.pop_live() {
            Some(p) => {
                // SAFETY: `pop_live`'s waiter is valid until we switch, and
                // nothing here switches (its slot is empty: a getter's).
                unsafe { p.as_ref() }.slot.set(Some(value));
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Wakes the first waiter and takes the value it offered.
    #[inline]
    pub(crate) fn take_one(&self) -> Option<T> {
        let p = self.pop_live()?;
        // SAFETY: as in `notify_one`.
        unsafe { p.as_ref() }.slot.take()
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
    #[inline]
    pub(crate) fn wake_all_empty(&self) {
        if !self.q.is_empty() {
            self.wake_all_empty_slow();
        }
    }

    #[inline(never)]
    fn wake_all_empty_slow(&self) {
        while self.pop_live().is_some() {}
    }

    /// Whether a greenlet waits (waits that ended otherwise are pruned).
    pub(crate) fn has_waiters(&self) -> bool {
        while let Some(p) = self.q.front() {
            // SAFETY: a listed waiter is alive (see `q`).
            if unsafe { p.as_ref() }.is_live() {
                return true;
            }
            self.q.pop_front();
        }
        false
    }

    /// How many greenlets wait.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: a listed waiter is alive (see `q`).
        let live = |p: &NonNull<Waiter<T>>| unsafe { p.as_ref() }.is_live();
        let rest = self.q.rest.borrow().iter().filter(|p| live(p)).count();
        rest + usize::from(self.q.first.get().is_some_and(|p| live(&p)))
    }

    /// Parks the current greenlet at the back of the list until it is
    /// notified, `deadline` passes, or the wait can never end. `offer` is the
    /// value a putter hands over. On success, gives the value it was handed
    /// (or `None` once its offer was taken); on failure, the offer back.
    ///
    /// If the greenlet unwinds (a kill, a timeout scope) after being
    /// notified, `on_lost` gets what was handed to it, to pass on.
    #[inline(always)]
    pub(crate) fn wait(
        &self,
        what: Waiting,
        deadline: Option<Instant>,
        offer: Option<T>,
        on_lost: &dyn Fn(Option<T>),
    ) -> Result<Option<T>, (WaitError, Option<T>)> {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err((WaitError::TimedOut, offer));
        }
        let rt = hub::rt();
        let token = match rt.begin_wait(what) {
            Ok(t) => t,
            Err(_) => return Err((WaitError::Cancelled, offer)),
        };
        let w = Waiter::new(token, offer);
        let listed = Listed {
            list: self,
            w: &w,
            on_lost,
        };
        self.q.push_back(NonNull::from(&w));
        let woke = match deadline {
            None => rt.park(),
            Some(d) => park_until(rt, d, &w.token),
        };
        if w.state.get() == NOTIFIED {
            mem::forget(listed); // done: nothing to remove or pass on
            return Ok(w.slot.take());
        }
        drop(listed); // off the list
        let why = match woke {
            Ok(Wake::TimedOut) => WaitError::TimedOut,
            Ok(Wake::LoopExit) => WaitError::loop_exit(),
            // Not notified yet woken Ready: cannot happen; report a
            // cancellation rather than loop.
            Ok(Wake::Ready) | Err(_) => WaitError::Cancelled,
        };
        Err((why, w.slot.take()))
    }

    /// Stands in line as a waiter (with nothing to offer) for one turn of
    /// the ready queue (see `Runtime::park_one_turn`), so that the greenlets
    /// ready now can hand it a value; `before` runs once it is in line, to
    /// wake those that could. Returns what it was handed, if anything;
    /// `what` and `on_lost` as for [`wait`](WaitList::wait).
    pub(crate) fn wait_one_turn(
        &self,
        what: Waiting,
        before: impl FnOnce(),
        on_lost: &dyn Fn(Option<T>),
    ) -> Option<T> {
        let rt = hub::rt();
        let token = rt.begin_wait(what).ok()?;
        let w = Waiter::new(token.clone(), None);
        let listed = Listed {
            list: self,
            w: &w,
            on_lost,
        };
        self.q.push_back(NonNull::from(&w));
        before();
        let _ = rt.park_one_turn(&token);
        if w.state.get() == NOTIFIED {
            mem::forget(listed);
            return w.slot.take();
        }
        None // `listed` takes it off the list
    }

    /// Puts a waiter for `token` at the back of the list, without parking:
    /// for waits on several things at once (a select), which park once
    /// with one token for all. The waiter leaves the list when the returned
    /// handle is dropped, unless it was notified.
    pub(crate) fn enqueue(&self, token: &WaitToken, offer: Option<T>) -> Enqueued<'_, T> {
        let w = Box::new(Waiter::new(token.clone(), offer));
        self.q.push_back(NonNull::from(&*w));
        Enqueued { list: self, w }
    }

    /// Takes the waiter at `p` off the list (nothing happens if it was
    /// popped already).
    fn remove(&self, p: NonNull<Waiter<T>>) {
        self.q.remove(p);
    }
}

/// A hub wait (begun by the caller) that `deadline` ends, out of line: the
/// untimed path then carries no timer (the test of an empty `Option` of
/// one, copied across the switch, was the hottest instruction of the wait
/// in a profile; without it a channel round trip takes 1-2 ns less).
#[inline(never)]
fn park_until(rt: &Runtime, deadline: Instant, token: &WaitToken) -> Result<Wake, hub::Refused> {
    let _timer = rt.arm_timer(deadline, token.clone());
    rt.park()
}

/// A select's waiter in a [`WaitList`] (see [`WaitList::enqueue`]); it
/// leaves the list when dropped.
pub(crate) struct Enqueued<'a, T> {
    list: &'a WaitList<T>,
    /// Boxed, so its address (listed) stays put while the handle moves.
    w: Box<Waiter<T>>,
}

impl<T> Enqueued<'_, T> {
    /// Whether a notify reached this waiter (its value, if any, is in the
    /// slot).
    pub(crate) fn is_notified(&self) -> bool {
        self.w.state.get() == NOTIFIED
    }

    /// Takes the value in the slot.
    pub(crate) fn take(&self) -> Option<T> {
        self.w.slot.take()
    }
}

impl<T> Drop for Enqueued<'_, T> {
    fn drop(&mut self) {
        if !self.is_notified() {
            self.list.remove(NonNull::from(&*self.w));
        }
    }
}

/// Takes a waiting frame's waiter off its list on every way out but a
/// notify that the frame took (it forgets the guard then), unwinding
/// included; if it was notified (the greenlet unwinds after being handed
/// something), passes what it got on.
struct Listed<'a, T> {
    list: &'a WaitList<T>,
    w: &'a Waiter<T>,
    on_lost: &'a dyn Fn(Option<T>),
}

impl<T> Drop for Listed<'_, T> {
    fn drop(&mut self) {
        if self.w.state.get() != NOTIFIED {
            self.list.remove(NonNull::from(self.w));
        } else {
            (self.on_lost)(self.w.slot.take());
        }
    }
}
