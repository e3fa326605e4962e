//! Crossing threads: [`Remote`] handles into a hub, and a pool of OS threads
//! for blocking calls ([`spawn_blocking`]).
//!
//! Greenlets never move between threads, and a hub's own state is
//! single-threaded. Other threads reach a hub only through its [`Remote`]: a
//! `Send + Sync` handle that queues messages on a crossbeam channel and wakes
//! the hub's poll with a [`mio::Waker`] (gevent's
//! `loop.run_callback_threadsafe`). A hub drains the channel whenever it
//! checks timers and IO, so a busy hub sees remote messages within
//! [`event_interval`](crate::Hub::set_event_interval) switches, and an idle
//! one at once.
//!
//! [`spawn_blocking`] runs a closure on a process-wide pool of OS threads and
//! returns a handle that a greenlet waits on cooperatively: the hub keeps
//! switching meanwhile. verdant's name lookups (`verdant::net`) use it.
//!
//! ```
//! use verdant_runtime::{spawn, spawn_blocking, Hub};
//!
//! // A slow blocking call runs on the pool while a greenlet keeps going.
//! let slow = spawn_blocking(|| { std::thread::sleep(std::time::Duration::from_millis(20)); 6 * 7 });
//! let busy = spawn(|| (0..10).map(|_| verdant_runtime::yield_now()).count());
//! assert_eq!(busy.join().unwrap(), 10);
//! assert_eq!(slow.join().unwrap(), 42);
//!
//! // Another thread posts work into this hub.
//! let remote = Hub::current().remote();
//! let (tx, rx) = std::sync::mpsc::channel();
//! std::thread::spawn(move || remote.post(move || tx.send("ran on the hub's thread").unwrap()).unwrap())
//!     .join()
//!     .unwrap();
//! verdant_runtime::sleep(std::time::Duration::from_millis(1)); // let the hub drain it
//! assert_eq!(rx.try_recv().unwrap(), "ran on the hub's thread");
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::hub::{self, with_rt, Runtime, WaitToken};
use crate::task::{JoinError, JoinErrorKind};
use crate::timer::deadline_after;
use crate::value::Wake;

type Job = Box<dyn FnOnce() + Send + 'static>;

enum Msg {
    /// Run this closure in a new greenlet on the hub.
    Run(Job),
    /// Wake the greenlet parked under this key (see [`RemoteHub::register`]).
    Wake(u64),
}

/// The part of a remote handle shared between threads.
struct Shared {
    tx: Sender<Msg>,
    waker: mio::Waker,
    /// Set by a sender that woke the hub, cleared by the hub before it
    /// drains: one `eventfd` write per batch, not per message.
    notified: AtomicBool,
    /// Cleared when the hub's end goes (its thread exits).
    alive: AtomicBool,
    thread: ThreadId,
}

/// A `Send + Sync` handle into one thread's hub, for other OS threads: run a
/// closure there, as a new greenlet ([`post`](Remote::post)).
///
/// Get one with [`Hub::remote`](crate::Hub::remote). Messages from one thread
/// arrive in the order they were sent.
///
/// While any clone of a hub's `Remote` exists, that hub, when idle, waits for
/// remote messages instead of reporting `LoopExit`: a handle is a promise
/// that work may still arrive (Go does not call a goroutine blocked on a
/// channel deadlocked while another thread could send). Drop the handles
/// that will never be used.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use verdant_runtime::Hub;
///
/// let remote = Hub::current().remote();
/// let worker = std::thread::spawn(move || {
///     for i in 0..3 {
///         remote.post(move || println!("job {i} runs in a greenlet")).unwrap();
///     }
/// });
/// worker.join().unwrap();
/// // The jobs run when this thread's hub next gets to run.
/// verdant_runtime::sleep(std::time::Duration::from_millis(1));
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("thread", &self.shared.thread)
            .finish()
    }
}

/// [`Remote::post`] could not deliver: the hub's thread has exited. The
/// closure is handed back.
pub struct PostError(pub Box<dyn FnOnce() + Send + 'static>);

impl fmt::Debug for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostError(..)")
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub's thread has exited")
    }
}

impl std::error::Error for PostError {}

impl Remote {
    /// Runs `f` on the hub's thread, in a new greenlet (so it may block
    /// cooperatively, and a panic in it is that greenlet's alone, reported
    /// like any spawned greenlet's).
    ///
    /// Posts still queued when the hub's thread exits are dropped unrun.
    ///
    /// # Errors
    ///
    /// [`PostError`], with the closure, if the hub's thread has exited.
    ///
    /// # Examples
    ///
    /// ```
    /// let remote = verdant_runtime::Hub::current().remote();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t = std::thread::spawn(move || remote.post(move || tx.send(7).unwrap()).unwrap());
    /// t.join().unwrap();
    /// verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// assert_eq!(rx.try_recv(), Ok(7));
    /// ```
    pub fn post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.send(Msg::Run(Box::new(f))).map_err(|m| match m {
            Msg::Run(job) => PostError(job),
            Msg::Wake(_) => unreachable!("a post sends a Run message"),
        })
    }

    /// Whether the hub's thread is still there to receive posts.
    ///
    /// # Examples
    ///
    /// ```
    /// let remote = std::thread::spawn(|| verdant_runtime::Hub::current().remote())
    ///     .join()
    ///     .unwrap();
    /// assert!(!remote.is_alive());
    /// assert!(verdant_runtime::Hub::current().remote().is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    fn wake(&self, key: u64) {
        // A gone hub has no waiter left to wake.
        let _ = self.send(Msg::Wake(key));
    }

    fn send(&self, msg: Msg) -> Result<(), Msg> {
        self.shared.tx.send(msg).map_err(|e| e.0)?;
        if !self.shared.notified.swap(true, Ordering::AcqRel) {
            // A failed wake-up (the hub's poll is gone) means the hub is
            // exiting; the message is dropped with its channel.
            let _ = self.shared.waker.wake();
        }
        Ok(())
    }
}

/// A hub's end of its remote channel.
pub(crate) struct RemoteHub {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    /// Greenlets parked until a remote `Wake(key)`; keys are never reused.
    waits: HashMap<u64, WaitToken>,
    next_key: u64,
}

impl RemoteHub {
    fn new(rt: &Runtime) -> std::io::Result<RemoteHub> {
        let waker = rt.with_registry(|r| mio::Waker::new(r, crate::reactor::WAKER_TOKEN))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(RemoteHub {
            shared: Arc::new(Shared {
                tx,
                waker,
                notified: AtomicBool::new(false),
                alive: AtomicBool::new(true),
                thread: std::thread::current().id(),
            }),
            rx,
            waits: HashMap::new(),
            next_key: 1,
        })
    }

    /// Whether an idle hub must wait for remote messages: a handle exists
    /// outside the hub, or a greenlet waits for a remote wake-up.
    pub(crate) fn keeps_alive(&self) -> bool {
        Arc::strong_count(&self.shared) > 1 || !self.waits.is_empty()
    }

    /// Takes the greenlets parked for remote wake-ups (thread exit).
    pub(crate) fn take_waiters(&mut self) -> Vec<WaitToken> {
        self.waits.drain().map(|(_, t)| t).collect()
    }
}

impl Drop for RemoteHub {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::Release);
    }
}

impl Runtime {
    /// This hub's remote handle, creating its channel and waker on first use.
    pub(crate) fn remote(&self) -> std::io::Result<Remote> {
        let mut slot = self.remote.borrow_mut();
        if slot.is_none() {
            *slot = Some(RemoteHub::new(self)?);
        }
        let hub = slot.as_ref().expect("just created");
        Ok(Remote {
            shared: hub.shared.clone(),
        })
    }

    /// Runs what other threads sent: posts become greenlets, wake-ups wake
    /// their waiters. Cheap when nothing was sent (one atomic load).
    pub(crate) fn drain_remote(&self) {
        let msgs: Vec<Msg> = {
            let slot = self.remote.borrow();
            let Some(hub) = slot.as_ref() else {
                return;
            };
            if !hub.shared.notified.load(Ordering::Acquire) {
                return;
            }
            // Cleared before draining: a message sent after the drain finds
            // the flag clear and wakes the poll again.
            hub.shared.notified.store(false, Ordering::SeqCst);
            hub.rx.try_iter().collect()
        };
        // In the order sent, so a post queued before a wake-up runs before
        // the woken greenlet; outside the borrow (a job's drop is user code).
        for msg in msgs {
            match msg {
                Msg::Run(job) => {
                    if let Err(e) = crate::Builder::new().name("remote").spawn(job) {
                        eprintln!(
                            "verdant: a remote post was dropped: cannot spawn a greenlet: {e}"
                        );
                    }
                }
                Msg::Wake(key) => {
                    let token = self
                        .remote
                        .borrow_mut()
                        .as_mut()
                        .and_then(|h| h.waits.remove(&key));
                    if let Some(token) = token {
                        self.wake_owned(token, Wake::Ready);
                    }
                }
            }
        }
    }

    /// Whether remote handles or remote waits keep an idle hub waiting.
    pub(crate) fn remote_keeps_alive(&self) -> bool {
        self.remote
            .borrow()
            .as_ref()
            .is_some_and(RemoteHub::keeps_alive)
    }

    /// Parks `token`'s greenlet until a remote `Wake` with the returned key.
    fn register_remote_wait(&self, token: WaitToken) -> std::io::Result<(Remote, u64)> {
        let remote = self.remote()?;
        let mut slot = self.remote.borrow_mut();
        let hub = slot.as_mut().expect("created by remote()");
        let key = hub.next_key;
        hub.next_key += 1;
        hub.waits.insert(key, token);
        Ok((remote, key))
    }

    fn unregister_remote_wait(&self, key: u64) {
        let token = self
            .remote
            .borrow_mut()
            .as_mut()
            .and_then(|h| h.waits.remove(&key));
        drop(token); // outside the borrow
    }
}

// ---------------------------------------------------------------------------
// The blocking pool.

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

fn worker() {
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
        with_rt(|rt| loop {
            let cancelled =
                || JoinError::new(JoinErrorKind::Cancelled, rt.current().inner.display_name());
            if self.lock().done {
                return Ok(true);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(false);
            }
            let Ok(token) = hub::begin_wait(rt) else {
                return Err(cancelled());
            };
            let (remote, key) = match rt.register_remote_wait(token.clone()) {
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
                    rt.unregister_remote_wait(key);
                    return Ok(true);
                }
                s.waiter = Some((remote, key));
            }
            let _guard = RemoteWaitGuard {
                rt,
                key,
                slot: &self.slot,
            };
            let timer = deadline.map(|d| rt.arm_timer(d, token));
            let woke = hub::wait(rt);
            drop(timer);
            match woke {
                Ok(Wake::Ready) | Ok(Wake::TimedOut) => continue,
                // Cannot happen while the wait is registered (it keeps the
                // hub polling); treat it as another look.
                Ok(Wake::LoopExit) => continue,
                Err(_) => return Err(cancelled()),
            }
        })
    }
}

/// Ends a remote wait (also on unwind): forgets the key on both sides.
struct RemoteWaitGuard<'a, T> {
    rt: &'a Runtime,
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
        self.rt.unregister_remote_wait(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_for_an_unknown_key_is_ignored() {
        let remote = crate::Hub::current().remote();
        remote.wake(123_456);
        crate::sleep(Duration::from_millis(2));
        with_rt(|rt| assert!(rt.remote.borrow().as_ref().unwrap().waits.is_empty()));
    }

    #[test]
    fn pool_runs_more_jobs_than_threads() {
        set_blocking_threads(4);
        let hs: Vec<_> = (0..300).map(|i| spawn_blocking(move || i * 2)).collect();
        let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        set_blocking_threads(DEFAULT_BLOCKING_THREADS);
        assert_eq!(sum, (0..300).map(|i| i * 2).sum());
    }
}
