//! Counting semaphores and the locks built on them.
//!
//! Permits are handed over in FIFO order: a release with greenlets waiting
//! gives the permit to the first of them directly, so a greenlet that
//! arrives later can never overtake one that waits. A waiter killed after a
//! permit was handed to it passes the permit on. Guards release on drop,
//! also during unwinding: a greenlet killed while holding a lock releases it
//! and nothing is poisoned.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::{WaitError, WaitList};
use crate::hub::Waiting;
use crate::timer::deadline_of;

/// A counting semaphore (gevent's `Semaphore`): [`acquire`](Semaphore::acquire)
/// waits for one of its permits, the guard gives it back.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use verdant_runtime::{joinall, spawn, sync::Semaphore};
///
/// // At most two of the five workers run their critical part at once.
/// let sem = Rc::new(Semaphore::new(2));
/// let hs: Vec<_> = (0..5).map(|_| {
///     let sem = sem.clone();
///     spawn(move || {
///         let _permit = sem.acquire().unwrap();
///         assert!(sem.available() < 2);
///         verdant_runtime::sleep(Duration::from_millis(2));
///     })
/// }).collect();
/// joinall(&hs).unwrap();
/// assert_eq!(sem.available(), 2);
/// ```
pub struct Semaphore {
    permits: Cell<usize>,
    waiters: WaitList<()>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.permits.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Semaphore::new(3).available(), 3);
    /// ```
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            waiters: WaitList::default(),
        }
    }

    /// Permits free now.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(1);
    /// let g = s.acquire().unwrap();
    /// assert_eq!(s.available(), 0);
    /// drop(g);
    /// assert_eq!(s.available(), 1);
    /// ```
    pub fn available(&self) -> usize {
        self.permits.get()
    }

    /// Whether no permit is free (gevent's `locked`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::sync::Semaphore::new(0).is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.permits.get() == 0
    }

    /// How many greenlets wait for a permit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Semaphore::new(1).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Takes a permit if one is free and no greenlet waits for one.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(1);
    /// let g = s.try_acquire().unwrap();
    /// assert!(s.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        // Not `then_some`: that would build (and drop, releasing) a guard
        // for a permit never taken.
        if self.try_take() {
            Some(SemaphoreGuard { sem: self })
        } else {
            None
        }
    }

    /// Waits for a permit.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if no permit could ever come back;
    /// [`WaitError::Cancelled`] while unwinding.
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(1);
    /// let _g = s.acquire().unwrap();
    /// // Nothing will release it: a deadlock, reported.
    /// assert!(s.acquire().is_err());
    /// ```
    #[inline(always)]
    pub fn acquire(&self) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.take_until(None)?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Waits at most `timeout` for a permit.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`acquire`](Semaphore::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verdant_runtime::sync::Semaphore::new(0);
    /// assert!(s.acquire_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.take_until(deadline_of(Some(timeout)))?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Waits until `deadline` at the latest for a permit.
    ///
    /// # Errors
    ///
    /// As for [`acquire_timeout`](Semaphore::acquire_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(1);
    /// assert!(s.acquire_deadline(std::time::Instant::now()).is_ok());
    /// ```
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.take_until(Some(deadline))?;
        Ok(SemaphoreGuard { sem: self })
    }

    /// Adds a permit (gevent-style manual `release`, for permits taken with
    /// [`SemaphoreGuard::forget`]); wakes the first waiter with it.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(0);
    /// s.release();
    /// assert_eq!(s.available(), 1);
    /// ```
    pub fn release(&self) {
        if self.waiters.notify_one(()).is_err() {
            self.permits.set(self.permits.get() + 1);
        }
    }

    fn try_take(&self) -> bool {
        let p = self.permits.get();
        if p > 0 && !self.waiters.has_waiters() {
            self.permits.set(p - 1);
            true
        } else {
            false
        }
    }

    /// Takes a permit, waiting until `deadline`. Always inlined, as are
    /// the untimed `acquire` and `Lock::lock`, so that the wait's switch
    /// happens in the caller's own frame (see `sync::queue::Core::put_inline`
    /// for why a frame spanning a switch is costly).
    #[inline(always)]
    fn take_until(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        if self.try_take() {
            return Ok(());
        }
        // A permit handed to us is ours; one handed to us while we unwind
        // goes to the next waiter.
        self.waiters
            .wait(Waiting::Lock, deadline, None, &|_| self.release())
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// A permit of a [`Semaphore`]; released when dropped.
#[must_use = "the permit is released at once if the guard is not kept"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken (give it back with [`Semaphore::release`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::Semaphore::new(1);
    /// s.acquire().unwrap().forget();
    /// assert_eq!(s.available(), 0);
    /// s.release();
    /// assert_eq!(s.available(), 1);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

/// [`BoundedSemaphore::release`] would raise the permits above the initial
/// count (gevent raises `ValueError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverRelease;

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore released too many times")
    }
}

impl std::error::Error for OverRelease {}

/// A [`Semaphore`] whose manual [`release`](BoundedSemaphore::release) may
/// not raise the permits above the initial count.
///
/// # Examples
///
/// ```
/// use verdant_runtime::sync::{BoundedSemaphore, OverRelease};
/// let s = BoundedSemaphore::new(1);
/// assert_eq!(s.release(), Err(OverRelease));
/// s.acquire().unwrap().forget();
/// assert_eq!(s.release(), Ok(()));
/// ```
///
/// It is not a `Semaphore` (no `Deref` to one), so the unchecked
/// [`Semaphore::release`] cannot be reached through it:
///
/// ```compile_fail
/// use verdant_runtime::sync::{BoundedSemaphore, Semaphore};
/// let b = BoundedSemaphore::new(1);
/// let s: &Semaphore = &b;
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    max: usize,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.sem.available())
            .field("max", &self.max)
            .finish()
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, at most.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::BoundedSemaphore::new(2).available(), 2);
    /// ```
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::new(permits),
            max: permits,
        }
    }

    /// Gives a permit back.
    ///
    /// # Errors
    ///
    /// [`OverRelease`] if every permit is already free.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(0);
    /// assert!(s.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), OverRelease> {
        // Permits held = max - free - (handed to waiters, already counted
        // out of `free`): a release with waiters always has a holder.
        if self.sem.available() >= self.max && !self.sem.waiters.has_waiters() {
            return Err(OverRelease);
        }
        self.sem.release();
        Ok(())
    }
}

// No `Deref<Target = Semaphore>`: it would hand out `Semaphore::release`,
// which does not check the bound. The rest is forwarded one by one.
impl BoundedSemaphore {
    /// Permits free now (at most the initial count).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(2);
    /// let g = s.acquire().unwrap();
    /// assert_eq!(s.available(), 1);
    /// drop(g);
    /// assert_eq!(s.available(), 2);
    /// ```
    pub fn available(&self) -> usize {
        self.sem.available()
    }

    /// Whether no permit is free (gevent's `locked`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::sync::BoundedSemaphore::new(0).is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }

    /// How many greenlets wait for a permit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::BoundedSemaphore::new(1).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.sem.waiters()
    }

    /// As [`Semaphore::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(1);
    /// let g = s.try_acquire().unwrap();
    /// assert!(s.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.sem.try_acquire()
    }

    /// As [`Semaphore::acquire`]. The guard gives its permit back when
    /// dropped; that release never exceeds the bound, since the permit was
    /// taken.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(1);
    /// let g = s.acquire().unwrap();
    /// assert!(s.is_locked());
    /// ```
    pub fn acquire(&self) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.sem.acquire()
    }

    /// As [`Semaphore::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(0);
    /// assert!(s.acquire_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.sem.acquire_timeout(timeout)
    }

    /// As [`Semaphore::acquire_deadline`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire_deadline`].
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let s = verdant_runtime::sync::BoundedSemaphore::new(0);
    /// let t = Instant::now() + Duration::from_millis(1);
    /// assert!(s.acquire_deadline(t).is_err());
    /// ```
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<SemaphoreGuard<'_>, WaitError> {
        self.sem.acquire_deadline(deadline)
    }
}

/// A cooperative mutex around a `T` (gevent's `Lock`, shaped like
/// `std::sync::Mutex`): [`lock`](Lock::lock) parks until the lock is free,
/// FIFO. Never poisoned: a greenlet killed while it holds the lock releases
/// it as its stack unwinds.
///
/// Holding a lock across a wait is what it is for: other greenlets that want
/// it park meanwhile.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use verdant_runtime::{joinall, spawn, sync::Lock};
///
/// let log = Rc::new(Lock::new(Vec::new()));
/// let hs: Vec<_> = (0..3).map(|i| {
///     let log = log.clone();
///     spawn(move || {
///         let mut g = log.lock().unwrap();
///         g.push(i);
///         verdant_runtime::sleep(Duration::from_millis(1)); // others wait meanwhile
///         g.push(i);
///     })
/// }).collect();
/// joinall(&hs).unwrap();
/// assert_eq!(*log.lock().unwrap(), [0, 0, 1, 1, 2, 2]);
/// ```
pub struct Lock<T: ?Sized = ()> {
    sem: Semaphore,
    value: UnsafeCell<T>,
}

impl<T: ?Sized> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.sem.is_locked())
            .field("waiters", &self.sem.waiters())
            .finish()
    }
}

impl<T: Default> Default for Lock<T> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

impl<T> Lock<T> {
    /// A new, unlocked lock holding `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::Lock::new(5);
    /// assert_eq!(*l.lock().unwrap(), 5);
    /// ```
    pub fn new(value: T) -> Lock<T> {
        Lock {
            sem: Semaphore::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Lock::new(1).into_inner(), 1);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Lock<T> {
    /// Whether a greenlet holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::Lock::new(());
    /// let g = l.lock().unwrap();
    /// assert!(l.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }

    /// How many greenlets wait for the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Lock::new(()).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.sem.waiters()
    }

    /// Waits for the lock.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if it could never be released (a greenlet
    /// locking twice deadlocks itself, and is told so); [`WaitError::Cancelled`]
    /// while unwinding.
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::Lock::new(0);
    /// *l.lock().unwrap() += 1;
    /// assert_eq!(*l.lock().unwrap(), 1);
    /// ```
    #[inline(always)]
    pub fn lock(&self) -> Result<LockGuard<'_, T>, WaitError> {
        self.sem.take_until(None)?;
        Ok(LockGuard { lock: self })
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`lock`](Lock::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = verdant_runtime::sync::Lock::new(());
    /// let _g = l.lock().unwrap();
    /// assert!(l.lock_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_, T>, WaitError> {
        self.sem.take_until(deadline_of(Some(timeout)))?;
        Ok(LockGuard { lock: self })
    }

    /// Takes the lock if it is free and no greenlet waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::Lock::new(());
    /// let g = l.try_lock().unwrap();
    /// assert!(l.try_lock().is_none());
    /// ```
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        if self.sem.try_take() {
            Some(LockGuard { lock: self })
        } else {
            None
        }
    }

    /// The value, through a unique borrow (no locking needed).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = verdant_runtime::sync::Lock::new(1);
    /// *l.get_mut() = 2;
    /// assert_eq!(*l.lock().unwrap(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// Holds a [`Lock`]; releases it when dropped (also on unwind).
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct LockGuard<'a, T: ?Sized> {
    pub(super) lock: &'a Lock<T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock's only permit, so no other guard
        // exists; `Lock` is `!Sync` (its semaphore's cells), so no other
        // thread can reach the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release();
    }
}

/// A reentrant lock owned by a greenlet (gevent's `RLock`): the owner may
/// lock it again without deadlocking; it is free when every guard is gone.
/// Gives shared access only (`&T`), since the owner may hold several guards.
///
/// # Examples
///
/// ```
/// let l = verdant_runtime::sync::RLock::new(std::cell::Cell::new(0));
/// let a = l.lock().unwrap();
/// let b = l.lock().unwrap(); // the same greenlet: no deadlock
/// b.set(a.get() + 1);
/// assert_eq!(l.count(), 2);
/// ```
pub struct RLock<T: ?Sized = ()> {
    sem: Semaphore,
    owner: Cell<u64>,
    count: Cell<usize>,
    value: T,
}

impl<T: ?Sized> fmt::Debug for RLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner.get())
            .field("count", &self.count.get())
            .finish()
    }
}

impl<T> RLock<T> {
    /// A new, free reentrant lock around `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::RLock::new(()).count(), 0);
    /// ```
    pub fn new(value: T) -> RLock<T> {
        RLock {
            sem: Semaphore::new(1),
            owner: Cell::new(0),
            count: Cell::new(0),
            value,
        }
    }
}

fn current_id() -> u64 {
    crate::hub::current_id()
}

impl<T: ?Sized> RLock<T> {
    /// How many guards the owner holds (0: free).
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::RLock::new(());
    /// let _g = l.lock().unwrap();
    /// assert_eq!(l.count(), 1);
    /// ```
    pub fn count(&self) -> usize {
        self.count.get()
    }

    /// How many other greenlets wait for the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::RLock::new(()).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.sem.waiters()
    }

    /// Whether the running greenlet holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::RLock::new(());
    /// let _g = l.lock().unwrap();
    /// assert!(l.is_owned());
    /// ```
    pub fn is_owned(&self) -> bool {
        self.count.get() > 0 && self.owner.get() == current_id()
    }

    /// Takes the lock, or takes it again if the running greenlet owns it.
    ///
    /// # Errors
    ///
    /// As for [`Lock::lock`].
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_runtime::sync::RLock::new(());
    /// let _a = l.lock().unwrap();
    /// let _b = l.lock().unwrap();
    /// ```
    pub fn lock(&self) -> Result<RLockGuard<'_, T>, WaitError> {
        self.lock_until(None)
    }

    /// As [`lock`](RLock::lock), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`lock`](RLock::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = verdant_runtime::sync::RLock::new(());
    /// assert!(l.lock_timeout(Duration::from_millis(1)).is_ok());
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_, T>, WaitError> {
        self.lock_until(deadline_of(Some(timeout)))
    }

    fn lock_until(&self, deadline: Option<Instant>) -> Result<RLockGuard<'_, T>, WaitError> {
        let me = current_id();
        if self.count.get() > 0 && self.owner.get() == me {
            self.count.set(self.count.get() + 1);
            return Ok(RLockGuard { lock: self });
        }
        self.sem.take_until(deadline)?;
        self.owner.set(me);
        self.count.set(1);
        Ok(RLockGuard { lock: self })
    }
}

/// Holds an [`RLock`] once; the lock is free when the owner's last guard
/// goes.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RLockGuard<'a, T: ?Sized> {
    lock: &'a RLock<T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> Deref for RLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.value
    }
}

impl<T: ?Sized> Drop for RLockGuard<'_, T> {
    fn drop(&mut self) {
        let n = self.lock.count.get() - 1;
        self.lock.count.set(n);
        if n == 0 {
            self.lock.owner.set(0);
            self.lock.sem.release();
        }
    }
}
