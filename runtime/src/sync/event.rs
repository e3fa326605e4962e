//! [`Event`] and [`AsyncResult`]: wake every waiter at once.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

use super::{WaitError, WaitList};
use crate::hub::Relays;
use crate::hub::Waiting;
use crate::timer::deadline_of;

/// A flag that greenlets wait for: [`set`](Event::set) wakes every waiter
/// (gevent's `Event`). Share it with `Rc`.
///
/// A waiter woken by `set` returns `Ok` even if the flag was cleared again
/// before it ran (as in gevent): it was set while it waited.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use verdant_runtime::{joinall, spawn, sync::Event};
///
/// let go = Rc::new(Event::new());
/// let runners: Vec<_> = (0..3)
///     .map(|i| { let go = go.clone(); spawn(move || { go.wait().unwrap(); i }) })
///     .collect();
/// verdant_runtime::sleep(Duration::from_millis(1)); // all three wait
/// assert!(!go.is_set());
/// go.set();
/// joinall(&runners).unwrap();
/// ```
#[derive(Default)]
pub struct Event {
    flag: Cell<bool>,
    waiters: WaitList<()>,
    relays: Relays,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.flag.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Event {
    /// A new, clear event.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!verdant_runtime::sync::Event::new().is_set());
    /// ```
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every waiter; returns how many it woke.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::sync::Event::new();
    /// assert_eq!(e.set(), 0);
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) -> usize {
        self.flag.set(true);
        self.relays.fire();
        self.waiters.notify_all(|| ())
    }

    pub(crate) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// Clears the flag: later waits block until the next `set`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::sync::Event::new();
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// Whether the flag is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::sync::Event::new();
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// How many greenlets wait.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::Event::new().waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Waits until the flag is set (returns at once if it is).
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if nothing could ever set it;
    /// [`WaitError::Cancelled`] while unwinding.
    ///
    /// # Panics
    ///
    /// Raises a kill or [`with_timeout`](crate::with_timeout) expiry
    /// delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::sync::Event::new();
    /// e.set();
    /// e.wait().unwrap();
    /// ```
    pub fn wait(&self) -> Result<(), WaitError> {
        self.wait_until(None)
    }

    /// Waits at most `timeout` for the flag.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`wait`](Event::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = verdant_runtime::sync::Event::new();
    /// assert!(e.wait_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.wait_until(deadline_of(Some(timeout)))
    }

    /// Waits until `deadline` at the latest for the flag.
    ///
    /// # Errors
    ///
    /// As for [`wait_timeout`](Event::wait_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let e = verdant_runtime::sync::Event::new();
    /// let r = e.wait_deadline(Instant::now() + Duration::from_millis(2));
    /// assert_eq!(r, Err(verdant_runtime::sync::WaitError::TimedOut));
    /// ```
    pub fn wait_deadline(&self, deadline: Instant) -> Result<(), WaitError> {
        self.wait_until(Some(deadline))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        if self.flag.get() {
            return Ok(());
        }
        self.waiters
            .wait(Waiting::Event, deadline, None, &|_| {})
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// Why [`AsyncResult::get`] gave no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError<E> {
    /// The result was set to this error.
    Failed(E),
    /// The wait ended first.
    Wait(WaitError),
}

impl<E: fmt::Display> fmt::Display for GetError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Failed(e) => write!(f, "the result is an error: {e}"),
            GetError::Wait(w) => w.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GetError<E> {}

/// A value (or error) delivered once, that any number of greenlets wait for
/// (gevent's `AsyncResult`; a one-shot future). Every waiter gets a clone.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{spawn, sync::AsyncResult};
///
/// let answer: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
/// let a = answer.clone();
/// let reader = spawn(move || a.get().unwrap());
/// answer.set(42).unwrap();
/// assert_eq!(reader.join().unwrap(), 42);
/// assert_eq!(answer.get(), Ok(42)); // it stays available
/// ```
pub struct AsyncResult<T, E = String> {
    value: RefCell<Option<Result<T, E>>>,
    waiters: WaitList<()>,
    relays: Relays,
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult {
            value: RefCell::new(None),
            waiters: WaitList::default(),
            relays: Relays::default(),
        }
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("value", &self.value.borrow())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl<T: Clone, E: Clone> AsyncResult<T, E> {
    /// A new, empty result.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// assert!(!r.ready());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers `value` and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Hands `value` back if the result was already delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// assert_eq!(r.set(1), Ok(()));
    /// assert_eq!(r.set(2), Err(2));
    /// assert_eq!(r.get(), Ok(1));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        self.deliver(Ok(value)).map_err(|r| match r {
            Ok(v) => v,
            Err(_) => unreachable!("handed back what was given"),
        })
    }

    /// Delivers an error and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Hands `error` back if the result was already delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::sync::{AsyncResult, GetError};
    /// let r: AsyncResult<u8, &str> = AsyncResult::new();
    /// r.set_error("no").unwrap();
    /// assert_eq!(r.get(), Err(GetError::Failed("no")));
    /// ```
    pub fn set_error(&self, error: E) -> Result<(), E> {
        self.deliver(Err(error)).map_err(|r| match r {
            Err(e) => e,
            Ok(_) => unreachable!("handed back what was given"),
        })
    }

    fn deliver(&self, r: Result<T, E>) -> Result<(), Result<T, E>> {
        {
            let mut v = self.value.borrow_mut();
            if v.is_some() {
                return Err(r);
            }
            *v = Some(r);
        }
        self.relays.fire();
        self.waiters.notify_all(|| ());
        Ok(())
    }

    pub(crate) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// How many greenlets wait in `get`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// assert_eq!(r.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Whether a value or error was delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// r.set(0).unwrap();
    /// assert!(r.ready());
    /// ```
    pub fn ready(&self) -> bool {
        self.value.borrow().is_some()
    }

    /// The delivered value or error, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// assert_eq!(r.try_get(), None);
    /// r.set(3).unwrap();
    /// assert_eq!(r.try_get(), Some(Ok(3)));
    /// ```
    pub fn try_get(&self) -> Option<Result<T, E>> {
        self.value.borrow().clone()
    }

    /// Waits for the result and returns a clone of it.
    ///
    /// # Errors
    ///
    /// [`GetError::Failed`] with the delivered error;
    /// [`GetError::Wait`] if the wait ended first (`LoopExit`, `Cancelled`).
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let r: verdant_runtime::sync::AsyncResult<&str> = verdant_runtime::sync::AsyncResult::new();
    /// r.set("x").unwrap();
    /// assert_eq!(r.get(), Ok("x"));
    /// ```
    pub fn get(&self) -> Result<T, GetError<E>> {
        self.get_until(None)
    }

    /// Waits at most `timeout` for the result.
    ///
    /// # Errors
    ///
    /// As for [`get`](AsyncResult::get), with `Wait(TimedOut)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::sync::{AsyncResult, GetError, WaitError};
    /// let r: AsyncResult<u8> = AsyncResult::new();
    /// assert_eq!(r.get_timeout(Duration::from_millis(1)), Err(GetError::Wait(WaitError::TimedOut)));
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError<E>> {
        self.get_until(deadline_of(Some(timeout)))
    }

    /// Waits until `deadline` at the latest for the result.
    ///
    /// # Errors
    ///
    /// As for [`get_timeout`](AsyncResult::get_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// let r: verdant_runtime::sync::AsyncResult<u8> = verdant_runtime::sync::AsyncResult::new();
    /// assert!(r.get_deadline(Instant::now()).is_err());
    /// ```
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError<E>> {
        self.get_until(Some(deadline))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<T, GetError<E>> {
        loop {
            if let Some(r) = self.try_get() {
                return r.map_err(GetError::Failed);
            }
            self.waiters
                .wait(Waiting::Event, deadline, None, &|_| {})
                .map_err(|(e, _)| GetError::Wait(e))?;
        }
    }
}
