//! Crossing threads: [`Remote`], a `Send + Sync` handle into a hub.
//!
//! Greenlets never move between threads, and a hub's own state is
//! single-threaded. Other threads reach a hub only through its [`Remote`]: a
//! `Send + Sync` handle that queues messages on a crossbeam channel and wakes
//! the hub's poll with a [`mio::Waker`] (gevent's
//! `loop.run_callback_threadsafe`). The hub's end of the channel is its
//! inbox, which the hub drains whenever it checks timers and IO, so a busy
//! hub sees remote messages within
//! [`event_interval`](crate::Hub::set_event_interval) switches, and an idle
//! one at once.
//!
//! ```
//! use verdant_runtime::Hub;
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

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use crossbeam_channel::{Receiver, Sender};

use crate::hub::{self, Hub, Inbox, WaitToken};
use crate::value::Wake;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The name and stack size of a posted greenlet (from a `Builder`).
pub(crate) struct PostOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) stack_size: Option<usize>,
    /// Where it was posted from: the new greenlet's spawn site.
    pub(crate) site: &'static Location<'static>,
}

enum Msg {
    /// Run this closure in a new greenlet on the hub.
    Run(Job, PostOptions),
    /// Wake the greenlet parked under this key (see [`register_wait`]).
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
    /// The [`Remote`] handles alive: while any is, an idle hub waits for
    /// messages instead of reporting `LoopExit`. (Not the `Arc`'s count:
    /// the runtime's own [`QuietRemote`] must not keep the hub waiting.)
    users: AtomicUsize,
    thread: ThreadId,
}

/// A `Send + Sync` handle into one thread's hub, for other OS threads: run a
/// closure there, as a new greenlet ([`post`](Remote::post)).
///
/// Get one with [`Hub::remote`](crate::Hub::remote). Messages from one thread
/// arrive in the order they were sent.
///
/// Greenlets never move between threads, and a hub's own state is
/// single-threaded: other threads reach a hub only through this handle,
/// which queues messages on a crossbeam channel and wakes the hub's poll
/// with a `mio::Waker` (gevent's `loop.run_callback_threadsafe`). The hub
/// drains the channel whenever it checks timers and IO, so a busy hub sees
/// remote messages within [`event_interval`](crate::Hub::set_event_interval)
/// switches, and an idle one at once. To set an `Event` or send on a
/// channel from another thread, see [`RemoteRef`](crate::RemoteRef) and
/// [`RemoteSender`](crate::RemoteSender), the rest of this family.
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
pub struct Remote {
    shared: Arc<Shared>,
}

impl Remote {
    /// A new handle onto `shared`, counted in `users`.
    fn counted(shared: Arc<Shared>) -> Remote {
        shared.users.fetch_add(1, Ordering::Relaxed);
        Remote { shared }
    }
}

impl Clone for Remote {
    fn clone(&self) -> Remote {
        Remote::counted(self.shared.clone())
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.shared.users.fetch_sub(1, Ordering::Release);
    }
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
    /// The greenlet is named `remote` and has the hub's default stack size;
    /// [`Builder::post`](crate::Builder::post) gives it others.
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
    #[track_caller]
    pub fn post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        let options = PostOptions {
            name: None,
            stack_size: None,
            site: Location::caller(),
        };
        self.post_options(options, f)
    }

    /// [`Remote::post`] with a name and stack size (see `Remote::post_with`).
    pub(crate) fn post_options<F>(&self, options: PostOptions, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.send(Msg::Run(Box::new(f), options))
            .map_err(|m| match m {
                Msg::Run(job, _) => PostError(job),
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

    /// Wakes the greenlet parked under `key` (see [`register_wait`]).
    pub(crate) fn wake(&self, key: u64) {
        // A gone hub has no waiter left to wake.
        let _ = self.send(Msg::Wake(key));
    }

    fn send(&self, msg: Msg) -> Result<(), Msg> {
        self.shared.send(msg)
    }
}

// The wake-up protocol (`Shared::send` and `RemoteHub::drain`: push, then
// set `notified`; clear it with a swap, then take the messages) has a loom
// model in the repository's `tests/thr2_loom.rs`, a replica with the same
// operations and orderings: change the two together.
impl Shared {
    fn send(&self, msg: Msg) -> Result<(), Msg> {
        self.tx.send(msg).map_err(|e| e.0)?;
        if !self.notified.swap(true, Ordering::AcqRel) {
            // A failed wake-up (the hub's poll is gone) means the hub is
            // exiting; the message is dropped with its channel.
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

/// A hub's end of its remote channel: its [`Inbox`].
struct RemoteHub {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    /// Greenlets parked until a remote `Wake(key)`; keys are never reused.
    waits: RefCell<HashMap<u64, WaitToken>>,
    next_key: Cell<u64>,
}

impl RemoteHub {
    fn new() -> io::Result<RemoteHub> {
        let waker = hub::rt().with_registry(|r| mio::Waker::new(r, crate::reactor::WAKER_TOKEN))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(RemoteHub {
            shared: Arc::new(Shared {
                tx,
                waker,
                notified: AtomicBool::new(false),
                alive: AtomicBool::new(true),
                users: AtomicUsize::new(0),
                thread: std::thread::current().id(),
            }),
            rx,
            waits: RefCell::new(HashMap::new()),
            next_key: Cell::new(1),
        })
    }
}

impl Inbox for RemoteHub {
    fn drain(&self) {
        if !self.shared.notified.load(Ordering::Acquire) {
            return; // one atomic load when nothing was sent
        }
        // Cleared before draining: a message sent after the drain finds
        // the flag clear and wakes the poll again. A swap, not a store: it
        // reads the last sender's `true` (that sender's own swap, which
        // woke nobody because the flag was still set) and so acquires that
        // sender's message, which this drain must then take. A store does
        // not synchronise with it: under the C11 model the sender's write
        // to the channel and this drain's read of it form a store-buffering
        // pair, and the message could sit unseen with no wake-up pending.
        // (x86 forbids that outcome either way; both compile to `xchg`.)
        self.shared.notified.swap(false, Ordering::AcqRel);
        let msgs: Vec<Msg> = self.rx.try_iter().collect();
        // In the order sent, so a post queued before a wake-up runs before
        // the woken greenlet.
        for msg in msgs {
            match msg {
                Msg::Run(job, options) => {
                    let name = options.name.unwrap_or(Cow::Borrowed("remote"));
                    let spawned = hub::spawn_task(
                        options.stack_size,
                        Some(name),
                        None,
                        options.site,
                        move || {
                            job();
                            crate::value::Value::empty()
                        },
                    );
                    if let Err(e) = spawned {
                        eprintln!(
                            "verdant: a remote post was dropped: cannot spawn a greenlet: {e}"
                        );
                    }
                }
                Msg::Wake(key) => {
                    let token = self.waits.borrow_mut().remove(&key);
                    if let Some(token) = token {
                        hub::rt().wake_owned(token, Wake::Ready);
                    }
                }
            }
        }
    }

    /// A handle exists outside the hub, or a greenlet waits for a remote
    /// wake-up.
    fn keeps_alive(&self) -> bool {
        self.shared.users.load(Ordering::Acquire) > 0 || !self.waits.borrow().is_empty()
    }

    fn take_waiters(&self) -> Vec<WaitToken> {
        let waits = std::mem::take(&mut *self.waits.borrow_mut());
        waits.into_values().collect()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for RemoteHub {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::Release);
    }
}

/// Runs `f` with this hub's end of its remote channel, making it (and its
/// waker) on first use.
fn with_hub_side<R>(f: impl FnOnce(&RemoteHub) -> R) -> io::Result<R> {
    let rt = hub::rt();
    let inbox = match rt.inbox() {
        Some(inbox) => inbox,
        None => rt.install_inbox(Rc::new(RemoteHub::new()?)),
    };
    let hub_side = inbox
        .as_any()
        .downcast_ref::<RemoteHub>()
        .expect("a hub's inbox is its remote channel");
    Ok(f(hub_side))
}

/// This hub's remote handle, making its channel and waker on first use.
fn remote() -> io::Result<Remote> {
    with_hub_side(|h| Remote::counted(h.shared.clone()))
}

/// A handle to a hub's channel that does not keep the hub from reporting
/// `LoopExit` (a [`Remote`] does: see `Inbox::keeps_alive`), for the
/// runtime's own threads that post to a hub now and then (the run-info
/// dump on a signal).
pub(crate) struct QuietRemote(Arc<Shared>);

impl QuietRemote {
    /// Whether both name the same hub.
    pub(crate) fn same_hub(&self, other: &QuietRemote) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether the hub's thread still runs.
    pub(crate) fn is_alive(&self) -> bool {
        self.0.alive.load(Ordering::Acquire)
    }

    /// Runs `f` in a new greenlet named `name` on the hub.
    ///
    /// # Errors
    ///
    /// The hub's thread has exited.
    #[track_caller]
    pub(crate) fn post(
        &self,
        name: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), PostError> {
        let options = PostOptions {
            name: Some(Cow::Borrowed(name)),
            stack_size: None,
            site: Location::caller(),
        };
        self.0
            .send(Msg::Run(Box::new(f), options))
            .map_err(|m| match m {
                Msg::Run(job, _) => PostError(job),
                Msg::Wake(_) => unreachable!("a post sends a Run message"),
            })
    }
}

/// This hub's [`QuietRemote`], making its channel and waker on first use.
///
/// # Errors
///
/// When the hub's waker cannot be made (no file descriptor left).
pub(crate) fn quiet_remote() -> io::Result<QuietRemote> {
    with_hub_side(|h| QuietRemote(h.shared.clone()))
}

/// Parks `token`'s greenlet until a remote wake with the returned key
/// ([`Remote::wake`]): a blocking job's completion, from its thread.
///
/// # Errors
///
/// When the hub's waker cannot be made (no file descriptor left).
pub(crate) fn register_wait(token: WaitToken) -> io::Result<(Remote, u64)> {
    let remote = remote()?;
    let key = with_hub_side(|h| {
        let key = h.next_key.get();
        h.next_key.set(key + 1);
        h.waits.borrow_mut().insert(key, token);
        key
    })?;
    Ok((remote, key))
}

/// Forgets the wait registered under `key`, if it is still there.
pub(crate) fn unregister_wait(key: u64) {
    let h = hub::rt()
        .inbox()
        .and_then(|i| i.as_any().downcast_ref::<RemoteHub>());
    if let Some(h) = h {
        let token = h.waits.borrow_mut().remove(&key);
        drop(token); // outside the borrow
    }
}

impl Hub {
    /// A `Send + Sync` handle into this hub, for other OS threads (see
    /// [`Remote`]). Every call returns a handle to the same
    /// channel.
    ///
    /// # Panics
    ///
    /// Panics if the hub's waker cannot be created (no file descriptor
    /// left for the poll or its eventfd).
    ///
    /// # Examples
    ///
    /// ```
    /// let remote = verdant_runtime::Hub::current().remote();
    /// std::thread::spawn(move || remote.post(|| println!("hello from the hub")).unwrap())
    ///     .join()
    ///     .unwrap();
    /// verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// ```
    pub fn remote(&self) -> crate::Remote {
        match remote() {
            Ok(r) => r,
            Err(e) => panic!("verdant: cannot create the hub's remote waker: {e}"),
        }
    }
}

/// What belongs to a hub cannot cross threads: each example below must
/// fail to compile with `E0277` (not `Send`), the compiler's guard against
/// a greenlet, a wait list or a channel end being touched from another
/// thread. The `Send` ways across are [`Remote`], `RemoteRef` and
/// `RemoteSender` (checked to be `Send + Sync` in `tests/remote.rs`).
///
/// A join handle:
///
/// ```compile_fail,E0277
/// let h = verdant_runtime::spawn(|| ());
/// std::thread::spawn(move || drop(h));
/// ```
///
/// An event:
///
/// ```compile_fail,E0277
/// let e = verdant_runtime::sync::Event::new();
/// std::thread::spawn(move || e.set());
/// ```
///
/// A channel's sending end:
///
/// ```compile_fail,E0277
/// let (tx, _rx) = verdant_runtime::sync::channel::unbounded::<u8>();
/// std::thread::spawn(move || drop(tx));
/// ```
///
/// A channel's receiving end:
///
/// ```compile_fail,E0277
/// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
/// std::thread::spawn(move || drop(rx));
/// ```
///
/// A queue:
///
/// ```compile_fail,E0277
/// let q = verdant_runtime::sync::Queue::<u8>::new();
/// std::thread::spawn(move || drop(q));
/// ```
///
/// A lock:
///
/// ```compile_fail,E0277
/// let l = verdant_runtime::sync::Lock::new(0u8);
/// std::thread::spawn(move || drop(l));
/// ```
///
/// The hub:
///
/// ```compile_fail,E0277
/// let hub = verdant_runtime::Hub::current();
/// std::thread::spawn(move || drop(hub));
/// ```
#[allow(dead_code)]
const NOT_SEND: () = ();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_for_an_unknown_key_is_ignored() {
        let remote = crate::Hub::current().remote();
        remote.wake(123_456);
        crate::sleep(std::time::Duration::from_millis(2));
        with_hub_side(|h| assert!(h.waits.borrow().is_empty())).unwrap();
    }
}
