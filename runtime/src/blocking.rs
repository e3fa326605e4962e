//! A pool of OS threads for blocking calls: [`spawn_blocking`] runs a
//! closure on it and returns a handle that a greenlet waits on
//! cooperatively, while the hub keeps switching. verdant's name lookups
//! (`verdant::net`) use it.
//!
//! ```
//! use verdant_runtime::{spawn, spawn_blocking};
//!
//! // A slow blocking call runs on the pool while a greenlet keeps going.
//! let slow = spawn_blocking(|| { std::thread::sleep(std::time::Duration::from_millis(20)); 6 * 7 });
//! let busy = spawn(|| (0..10).map(|_| verdant_runtime::yield_now()).count());
//! assert_eq!(busy.join().unwrap(), 10);
//! assert_eq!(slow.join().unwrap(), 42);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::hub;
use crate::hub::Waiting;
use crate::remote::{self, Remote};
use crate::task::{JoinError, JoinErrorKind};
use crate::timer::deadline_after;
use crate::value::Wake;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Default for [`set_blocking_threads`].
pub const DEFAULT_BLOCKING_THREADS: usize = 128;

/// How long an idle pool thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    max: AtomicUsize,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        work: Condvar::new(),
        max: AtomicUsize::new(DEFAULT_BLOCKING_THREADS),
    })
}

/// Sets the most OS threads the blocking pool runs at once (default
/// [`DEFAULT_BLOCKING_THREADS`]); jobs beyond that queue. The pool is shared
/// by every hub in the process; threads start on demand and exit after 10 s
/// idle.
///
/// # Panics
///
/// Panics if `n` is 0.
///
/// # Examples
///
/// ```
/// verdant_runtime::set_blocking_threads(32);
/// assert_eq!(verdant_runtime::blocking_threads(), 32);
/// # verdant_runtime::set_blocking_threads(verdant_runtime::DEFAULT_BLOCKING_THREADS);
/// ```
pub fn set_blocking_threads(n: usize) {
    assert!(
        n > 0,
        "verdant: the blocking pool needs at least one thread"
    );
    pool().max.store(n, Ordering::Relaxed);
}

/// The blocking pool's thread limit (see [`set_blocking_threads`]).
///
/// # Examples
///
/// ```
/// assert!(verdant_runtime::blocking_threads() > 0);
/// ```
pub fn blocking_threads() -> usize {
    pool().max.load(Ordering::Relaxed)
}

fn submit(job: Job) -> std::io::Result<()> {
    let pool = pool();
    let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    st.queue.push_back(job);
    // One free thread per queued job. `idle` counts the threads that will
    // look at the queue without being handed more work: those waiting (a
    // notified one stays counted until it wakes) and those starting. Not
    // `idle > 0`: a burst of jobs would all "find" the same few idle
    // threads, and run on them one after another.
    if st.queue.len() <= st.idle {
        pool.work.notify_one();
        return Ok(());
    }
    if st.threads >= pool.max.load(Ordering::Relaxed) {
        return Ok(()); // a busy thread takes it when done
    }
    st.threads += 1;
    st.idle += 1; // starting: it takes a job as soon as it runs
    let spawned = std::thread::Builder::new()
        .name("verdant-blocking".into())
        .spawn(worker);
    if let Err(e) = spawned {
        st.threads -= 1;
        st.idle -= 1;
        if st.threads == 0 {
            // No thread will ever run it: hand the error back.
            drop(st.queue.pop_back());
            return Err(e);
        }
    }
    Ok(())
}

thread_local! {
    static ON_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is one of the blocking pool's: calls made here are
/// meant to block (the patched libc functions never cooperate on it).
#[inline]
pub(crate) fn on_pool_thread() -> bool {
    ON_POOL.try_with(|c| c.get()).unwrap_or(false)
}

fn worker() {
    ON_POOL.with(|c| c.set(true));
    let pool = pool();
    let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    st.idle -= 1; // started (counted idle by `submit` until now)
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            // Jobs catch their own panics (see spawn_blocking); this guards
            // the pool against a panicking drop.
            let _ = catch_unwind(AssertUnwindSafe(job));
            st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        st.idle += 1;
        let (guard, timeout) = pool
            .work
            .wait_timeout(st, KEEP_ALIVE)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.queue.is_empty() {
            st.threads -= 1;
            return;
        }
    }
}

/// What a blocking job and its waiter share.
struct Slot<T> {
    result: Option<std::thread::Result<T>>,
    /// The hub and key to wake when the result lands.
    waiter: Option<(Remote, u64)>,
    done: bool,
}

/// Runs `f` on the blocking pool (an OS thread) and returns a handle to wait
/// for its result cooperatively: the waiting greenlet parks, and the hub runs
/// others meanwhile. Use it for calls that would block the hub's thread:
/// name lookups, file IO, CPU-heavy work, C libraries.
///
/// A greenlet killed while it waits stops waiting at once; the call itself
/// runs to the end on its thread (an OS thread cannot be interrupted) and
/// its result is dropped there.
///
/// # Panics
///
/// Panics if the pool has no thread and cannot start one (the error is in
/// the message).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use verdant_runtime::{joinall, spawn, spawn_blocking};
///
/// let t = Instant::now();
/// // Two greenlets each wait for a 50 ms blocking call: 50 ms in all.
/// let hs: Vec<_> = (0..2)
///     .map(|i| spawn(move || spawn_blocking(move || { std::thread::sleep(Duration::from_millis(50)); i }).join().unwrap()))
///     .collect();
/// joinall(&hs).unwrap();
/// assert!(t.elapsed() < Duration::from_millis(95));
/// ```
pub fn spawn_blocking<F, T>(f: F) -> BlockingHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        result: None,
        waiter: None,
        done: false,
    }));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        let waiter = {
            let mut s = theirs.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(result);
            s.done = true;
            s.waiter.take()
        };
        if let Some((remote, key)) = waiter {
            remote.wake(key);
        }
    });
    if let Err(e) = submit(job) {
        panic!("verdant: cannot start a blocking-pool thread: {e}");
    }
    BlockingHandle { slot }
}

/// A handle to a [`spawn_blocking`] call: wait for its result from any
/// greenlet, on any thread. Dropping it detaches the call.
///
/// # Examples
///
/// ```
/// let h = verdant_runtime::spawn_blocking(|| std::fs::metadata("/").is_ok());
/// assert!(h.join().unwrap());
/// ```
pub struct BlockingHandle<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> fmt::Debug for BlockingHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> BlockingHandle<T> {
    /// Whether the call has returned (or panicked).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn_blocking(|| ());
    /// h.wait().unwrap();
    /// assert!(h.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.lock().done
    }

    /// Waits for the call to return and gives its value.
    ///
    /// # Errors
    ///
    /// [`JoinErrorKind::Panicked`] (with the payload) if the call panicked;
    /// [`JoinErrorKind::Cancelled`] if the waiting greenlet is unwinding.
    ///
    /// # Panics
    ///
    /// Raises a kill delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn_blocking(|| -> u8 { panic!("in the pool") });
    /// let e = h.join().unwrap_err();
    /// assert_eq!(e.panic_message(), Some("in the pool"));
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        self.wait()?;
        let result = self.lock().result.take();
        match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(payload)) => Err(JoinError::from_panic("blocking".into(), payload)),
            None => unreachable!("a finished call leaves its result"),
        }
    }

    /// Waits for the call to return, leaving the value for
    /// [`join`](BlockingHandle::join).
    ///
    /// # Errors
    ///
    /// [`JoinErrorKind::Cancelled`] if the waiting greenlet is unwinding.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn_blocking(|| 5);
    /// h.wait().unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    pub fn wait(&self) -> Result<(), JoinError> {
        self.wait_until(None).map(|_| ())
    }

    /// Waits at most `timeout`; returns whether the call has returned.
    ///
    /// # Errors
    ///
    /// As for [`wait`](BlockingHandle::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = verdant_runtime::spawn_blocking(|| std::thread::sleep(Duration::from_millis(200)));
    /// assert!(!h.wait_timeout(Duration::from_millis(10)).unwrap());
    /// assert!(h.wait_timeout(Duration::from_secs(5)).unwrap());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, JoinError> {
        self.wait_until(Some(deadline_after(timeout)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool, JoinError> {
        let cancelled = || JoinError::new(JoinErrorKind::Cancelled, hub::current_name());
        loop {
            if self.lock().done {
                return Ok(true);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(false);
            }
            let rt = hub::rt();
            let Ok(token) = rt.begin_wait(Waiting::Blocking) else {
                return Err(cancelled());
            };
            let (remote, key) = match remote::register_wait(token.clone()) {
                Ok(r) => r,
                // No waker (fd exhaustion): poll for the result instead.
                Err(_) => {
                    drop(token);
                    crate::sleep(Duration::from_millis(1));
                    continue;
                }
            };
            {
                let mut s = self.lock();
                if s.done {
                    drop(s);
                    remote::unregister_wait(key);
                    return Ok(true);
                }
                s.waiter = Some((remote, key));
            }
            let _guard = RemoteWaitGuard {
                key,
                slot: &self.slot,
            };
            let timer = deadline.map(|d| rt.arm_timer(d, token));
            let woke = rt.park();
            drop(timer);
            match woke {
                Ok(Wake::Ready) | Ok(Wake::TimedOut) => continue,
                // Cannot happen while the wait is registered (it keeps the
                // hub polling); treat it as another look.
                Ok(Wake::LoopExit) => continue,
                Err(_) => return Err(cancelled()),
            }
        }
    }
}

/// Ends a remote wait (also on unwind): forgets the key on both sides.
struct RemoteWaitGuard<'a, T> {
    key: u64,
    slot: &'a Mutex<Slot<T>>,
}

impl<T> Drop for RemoteWaitGuard<'_, T> {
    fn drop(&mut self) {
        let old = {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if s.waiter.as_ref().is_some_and(|(_, k)| *k == self.key) {
                s.waiter.take()
            } else {
                None
            }
        };
        drop(old);
        remote::unregister_wait(self.key);
    }
}

/// Waits cooperatively for an OS thread to finish, as
/// `std::thread::JoinHandle::join` does without blocking the hub: the
/// calling greenlet parks and the hub runs the others meanwhile. The wait
/// itself occupies a thread of the blocking pool (a std `JoinHandle` offers
/// no other way to learn that its thread ended); a thread that signals its
/// end itself can instead set a [`RemoteRef`](crate::RemoteRef) of an
/// `Event` or an `AsyncResult`.
///
/// # Errors
///
/// The thread's panic payload, as std's `join` gives it; a wait cancelled
/// because the calling greenlet is unwinding gives its `JoinError` as the
/// payload.
///
/// # Panics
///
/// Raises a kill delivered while waiting.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let t = std::thread::spawn(|| {
///     std::thread::sleep(Duration::from_millis(20));
///     6 * 7
/// });
/// let ticker = verdant_runtime::spawn(|| verdant_runtime::yield_now()); // runs meanwhile
/// assert_eq!(verdant_runtime::join_thread(t).unwrap(), 42);
/// assert!(ticker.is_finished());
/// ```
pub fn join_thread<T: Send + 'static>(
    handle: std::thread::JoinHandle<T>,
) -> std::thread::Result<T> {
    match spawn_blocking(move || handle.join()).join() {
        Ok(result) => result,
        Err(e) => Err(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_runs_more_jobs_than_threads() {
        set_blocking_threads(4);
        let hs: Vec<_> = (0..300).map(|i| spawn_blocking(move || i * 2)).collect();
        let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        set_blocking_threads(DEFAULT_BLOCKING_THREADS);
        assert_eq!(sum, (0..300).map(|i| i * 2).sum());
    }
}
