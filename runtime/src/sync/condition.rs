//! A condition variable for greenlets, used with a [`Lock`].

use std::fmt;
use std::time::{Duration, Instant};

use super::{Lock, LockGuard, WaitError, WaitList};
use crate::hub::Waiting;
use crate::timer::deadline_of;

/// Waits for a condition guarded by a [`Lock`] (Python's
/// `threading.Condition`, shaped like `std::sync::Condvar`): `wait`
/// releases the lock, parks until notified, and takes the lock back before
/// returning.
///
/// Between releasing the lock and parking no other greenlet runs (the hub
/// is single-threaded), so a notify can never slip in between and be lost.
/// Waiters are woken in FIFO order; a waiter killed after it was notified
/// passes the notification on to the next one. As with any condition
/// variable, check the condition in a loop (or use
/// [`wait_while`](Condition::wait_while)): another greenlet may change it
/// between the notify and the waiter taking the lock back.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{spawn, sync::{Condition, Lock}};
///
/// let state = Rc::new((Lock::new(Vec::new()), Condition::new()));
/// let s = state.clone();
/// let consumer = spawn(move || {
///     let (lock, cond) = &*s;
///     let mut items = cond.wait_while(lock.lock().unwrap(), |v| v.is_empty()).unwrap();
///     items.pop().unwrap()
/// });
/// verdant_runtime::sleep(std::time::Duration::ZERO); // the consumer waits
/// let (lock, cond) = &*state;
/// lock.lock().unwrap().push("job");
/// cond.notify_one();
/// assert_eq!(consumer.join().unwrap(), "job");
/// ```
#[derive(Default)]
pub struct Condition {
    waiters: WaitList<()>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

/// Whether a timed [`Condition`] wait ran out of time (std's
/// `WaitTimeoutResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because its time was up (not notified, or the
    /// condition still false).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::sync::{Condition, Lock};
    /// let (lock, cond) = (Lock::new(()), Condition::new());
    /// let (_g, r) = cond.wait_timeout(lock.lock().unwrap(), Duration::from_millis(1)).unwrap();
    /// assert!(r.timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condition {
    /// A condition with no waiters.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Condition::new().waiters(), 0);
    /// ```
    pub fn new() -> Condition {
        Condition::default()
    }

    /// How many greenlets wait.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Condition::new().waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Wakes the first waiting greenlet; returns whether there was one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!verdant_runtime::sync::Condition::new().notify_one());
    /// ```
    pub fn notify_one(&self) -> bool {
        self.waiters.notify_one(()).is_ok()
    }

    /// Wakes every waiting greenlet; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Condition::new().notify_all(), 0);
    /// ```
    pub fn notify_all(&self) -> usize {
        self.waiters.notify_all(|| ())
    }

    /// Releases the lock, waits to be notified, and takes the lock back.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if nothing could ever notify (or the lock
    /// could never be had back), [`WaitError::Cancelled`] while unwinding;
    /// the lock is not held then.
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting (the
    /// lock is not held as it unwinds).
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub fn wait<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
    ) -> Result<LockGuard<'a, T>, WaitError> {
        let (guard, timed_out) = self.wait_until(guard, None)?;
        debug_assert!(!timed_out.0);
        Ok(guard)
    }

    /// Waits (as [`wait`](Condition::wait)) while `condition` holds.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Condition::wait).
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: LockGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> Result<LockGuard<'a, T>, WaitError> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits at most `timeout` to be notified; the lock is held again on
    /// return either way.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Condition::wait).
    ///
    /// # Examples
    ///
    /// See [`WaitTimeoutResult::timed_out`].
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(LockGuard<'a, T>, WaitTimeoutResult), WaitError> {
        self.wait_until(guard, deadline_of(Some(timeout)))
    }

    /// Waits until `deadline` at the latest to be notified.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Condition::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use verdant_runtime::sync::{Condition, Lock};
    /// let (lock, cond) = (Lock::new(()), Condition::new());
    /// let (_g, r) = cond.wait_deadline(lock.lock().unwrap(), Instant::now()).unwrap();
    /// assert!(r.timed_out());
    /// ```
    pub fn wait_deadline<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
        deadline: Instant,
    ) -> Result<(LockGuard<'a, T>, WaitTimeoutResult), WaitError> {
        self.wait_until(guard, Some(deadline))
    }

    /// Waits while `condition` holds, at most `timeout` in all; the result
    /// says whether time ran out with the condition still holding.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Condition::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::sync::{Condition, Lock};
    /// let (lock, cond) = (Lock::new(0), Condition::new());
    /// let (g, r) = cond
    ///     .wait_timeout_while(lock.lock().unwrap(), Duration::from_millis(2), |n| *n == 0)
    ///     .unwrap();
    /// assert!(r.timed_out());
    /// assert_eq!(*g, 0);
    /// ```
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: LockGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> Result<(LockGuard<'a, T>, WaitTimeoutResult), WaitError> {
        let deadline = deadline_of(Some(timeout));
        while condition(&mut guard) {
            let (g, r) = self.wait_until(guard, deadline)?;
            guard = g;
            if r.timed_out() {
                let still = condition(&mut guard);
                return Ok((guard, WaitTimeoutResult(still)));
            }
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: LockGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> Result<(LockGuard<'a, T>, WaitTimeoutResult), WaitError> {
        let lock: &'a Lock<T> = guard.lock;
        // Releasing hands the lock to its next waiter without running it:
        // nothing can notify before this greenlet is in line.
        drop(guard);
        let pass_on = |got: Option<()>| {
            if got.is_some() {
                let _ = self.waiters.notify_one(());
            }
        };
        let waited = self
            .waiters
            .wait(Waiting::Condition, deadline, None, &pass_on);
        let timed_out = match waited {
            Ok(_) => false,
            Err((WaitError::TimedOut, _)) => true,
            Err((why, _)) => return Err(why),
        };
        Ok((lock.lock()?, WaitTimeoutResult(timed_out)))
    }
}
