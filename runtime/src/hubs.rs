//! [`Hubs`]: a runtime of N hubs, one per OS thread, each running the same
//! closure, stopped together on request or on `SIGINT`/`SIGTERM`.
//!
//! A hub never moves its greenlets to another thread, and that stays so:
//! a server uses N cores by running N hubs, each with its own reactor,
//! timers and stack pool, and by spreading the *connections* over them,
//! never a greenlet. Two ways to spread them:
//!
//! * **A listener per hub**, bound with `SO_REUSEPORT`
//!   (`verdant_net::StreamServer::builder().reuse_port(true)`): the kernel
//!   hashes each new connection to one of the listeners. No hand-off at
//!   all, so it scales best; a busy hub keeps getting its share, though.
//! * **One acceptor handing sockets over**: a socket that no greenlet has
//!   waited on yet is plain data. Turn it into a `std` socket or an
//!   `OwnedFd` (`From<TcpStream> for OwnedFd`), send that to another hub
//!   with [`Remote::post`](crate::Remote::post), and adopt it there with
//!   `from_std`. The acceptor chooses the hub (round-robin, least loaded).
//!
//! `verdant_net::StreamServerBuilder::bind_hubs` does either for a server
//! (its `Spread` option), binding once before the run and giving each hub
//! its own `StreamServer`.
//!
//! Sockets, channels and events are `!Send` (they belong to their hub);
//! what crosses threads is a [`Remote`](crate::Remote), a
//! [`RemoteRef`] (set an `Event` or an `AsyncResult` of
//! another hub), a [`RemoteSender`](crate::RemoteSender) (send on another
//! hub's channel), a [`Stopper`], or plain `Send` data.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use verdant_runtime::Hubs;
//!
//! let started = Arc::new(AtomicUsize::new(0));
//! let s = started.clone();
//! let hubs = Hubs::new().threads(2);
//! let stopper = hubs.stopper();
//! let exits = hubs
//!     .run(move |hub| {
//!         // Each hub thread: start its servers, then wait for the stop.
//!         if s.fetch_add(1, Ordering::SeqCst) == 1 {
//!             stopper.stop(); // the last to start stops them all
//!         }
//!         hub.wait_stop();
//!         hub.index()
//!     })
//!     .unwrap();
//! let mut indices: Vec<usize> = exits.into_iter().map(|e| e.result.unwrap()).collect();
//! indices.sort();
//! assert_eq!(indices, [0, 1]);
//! ```

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sync::Event;
use crate::sys::{set_signal_handler, SignalRelay};
use crate::RemoteRef;

/// Starts N hub threads that each run the same closure (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct Hubs {
    threads: usize,
    on_signals: bool,
    name: String,
    stop: Arc<StopState>,
}

/// What a hub thread's closure is given: its index, and the shared stop.
#[derive(Debug)]
pub struct HubContext {
    index: usize,
    event: Rc<Event>,
    stop: Arc<StopState>,
}

/// Asks every hub of a [`Hubs`] run to stop: `Send + Sync`, cheap to clone.
/// Each hub's [`HubContext::wait_stop`] returns; what the hub does then
/// (stop its servers with a grace period, say) is its closure's business.
#[derive(Clone, Debug)]
pub struct Stopper {
    stop: Arc<StopState>,
}

/// How one hub thread ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct HubExit<T> {
    /// The hub's index, `0..threads`.
    pub index: usize,
    /// The closure's value, or its panic.
    pub result: std::thread::Result<T>,
    /// Greenlets still alive when the closure returned, unwound then
    /// (their destructors ran, as for a kill).
    pub unwound: usize,
}

#[derive(Debug, Default)]
struct StopState {
    requested: AtomicBool,
    /// Each running hub's stop event.
    hubs: Mutex<Vec<Option<RemoteRef<Event>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StopState {
    fn request(&self) {
        if self.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        for r in lock(&self.hubs).iter().flatten() {
            // A hub that has already ended needs no telling.
            let _ = r.set();
        }
    }
}

impl Default for Hubs {
    fn default() -> Self {
        Hubs::new()
    }
}

impl Hubs {
    /// One hub per available core (`std::thread::available_parallelism`,
    /// 1 if unknown), threads named `verdant-hub-<index>`, signals left
    /// alone.
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = verdant_runtime::Hubs::new();
    /// ```
    pub fn new() -> Hubs {
        Hubs {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            on_signals: false,
            name: "verdant-hub".to_owned(),
            stop: Arc::default(),
        }
    }

    /// How many hub threads to start.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = verdant_runtime::Hubs::new().threads(4);
    /// ```
    pub fn threads(mut self, n: usize) -> Hubs {
        assert!(n > 0, "verdant: Hubs needs at least one thread");
        self.threads = n;
        self
    }

    /// The threads' name prefix (`<prefix>-<index>`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = verdant_runtime::Hubs::new().name("web");
    /// ```
    pub fn name(mut self, prefix: impl Into<String>) -> Hubs {
        self.name = prefix.into();
        self
    }

    /// Whether `SIGINT` and `SIGTERM` stop the hubs (default: no). The
    /// first such signal during [`run`](Hubs::run) requests the stop and
    /// restores the signals' previous actions, so that a second one ends
    /// the process the usual way (a second Ctrl-C for an impatient user).
    /// The previous actions are restored when `run` returns, too.
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = verdant_runtime::Hubs::new().stop_on_signals(true);
    /// ```
    pub fn stop_on_signals(mut self, on: bool) -> Hubs {
        self.on_signals = on;
        self
    }

    /// A handle that stops this run's hubs, for another thread (or a hub's
    /// greenlet) to use.
    ///
    /// # Examples
    ///
    /// ```
    /// let hubs = verdant_runtime::Hubs::new().threads(1);
    /// let stopper = hubs.stopper();
    /// stopper.stop(); // before the run: its hubs stop at once
    /// let exits = hubs.run(|hub| hub.wait_stop()).unwrap();
    /// assert_eq!(exits.len(), 1);
    /// ```
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
        }
    }

    /// Starts the hub threads, runs `f` on each (in its main greenlet),
    /// and waits for all of them. When `f` returns on a hub, the greenlets
    /// still alive there are unwound and counted ([`HubExit::unwound`]).
    /// Returns one [`HubExit`] per hub, by index; a panic in `f` is that
    /// hub's `result`, and the other hubs are asked to stop.
    ///
    /// # Errors
    ///
    /// What starting a thread reports, or installing the signal handlers
    /// (the threads already started are asked to stop and joined first).
    ///
    /// # Examples
    ///
    /// ```
    /// let exits = verdant_runtime::Hubs::new()
    ///     .threads(2)
    ///     .run(|hub| {
    ///         // Left running when the closure returns: unwound, counted.
    ///         verdant_runtime::spawn(|| verdant_runtime::sleep(std::time::Duration::from_secs(60)));
    ///         hub.index() * 10
    ///     })
    ///     .unwrap();
    /// assert_eq!(exits[1].result.as_ref().unwrap(), &10);
    /// assert!(exits.iter().all(|e| e.unwound == 1));
    /// ```
    pub fn run<F, T>(self, f: F) -> io::Result<Vec<HubExit<T>>>
    where
        F: Fn(&HubContext) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let _signals = if self.on_signals {
            Some(SignalWatch::install(&self.stop)?)
        } else {
            None
        };
        *lock(&self.stop.hubs) = (0..self.threads).map(|_| None).collect();
        let f = Arc::new(f);
        let mut threads = Vec::with_capacity(self.threads);
        for index in 0..self.threads {
            let (f, stop) = (f.clone(), self.stop.clone());
            let started = std::thread::Builder::new()
                .name(format!("{}-{index}", self.name))
                .spawn(move || hub_thread(index, &*f, stop));
            match started {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.stop.request();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(threads
            .into_iter()
            .enumerate()
            .map(|(index, t)| {
                t.join().unwrap_or_else(|p| HubExit {
                    index,
                    result: Err(p),
                    unwound: 0,
                })
            })
            .collect())
    }
}

fn hub_thread<F, T>(index: usize, f: &F, stop: Arc<StopState>) -> HubExit<T>
where
    F: Fn(&HubContext) -> T,
{
    let event = Rc::new(Event::new());
    lock(&stop.hubs)[index] = Some(RemoteRef::new(event.clone()));
    if stop.requested.load(Ordering::SeqCst) {
        event.set();
    }
    let ctx = HubContext {
        index,
        event,
        stop: stop.clone(),
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&ctx)));
    if result.is_err() {
        stop.request();
    }
    // Off the list before the hub ends (dropped here, on its own thread).
    let me = lock(&stop.hubs)[index].take();
    drop(me);
    let unwound = crate::hub::unwind_all();
    HubExit {
        index,
        result,
        unwound,
    }
}

impl HubContext {
    /// This hub's index, `0..threads`.
    ///
    /// # Examples
    ///
    /// ```
    /// let exits = verdant_runtime::Hubs::new().threads(1).run(|hub| hub.index()).unwrap();
    /// assert_eq!(exits[0].result.as_ref().unwrap(), &0);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Waits cooperatively (other greenlets of the hub run) until the stop
    /// is requested: by a [`Stopper`], a signal (with
    /// [`stop_on_signals`](Hubs::stop_on_signals)), or a panic on another
    /// hub.
    ///
    /// # Examples
    ///
    /// ```
    /// let hubs = verdant_runtime::Hubs::new().threads(1);
    /// let stopper = hubs.stopper();
    /// hubs.run(move |hub| {
    ///     let s = stopper.clone();
    ///     verdant_runtime::spawn(move || s.stop());
    ///     hub.wait_stop(); // the greenlet above runs meanwhile
    ///     assert!(hub.stop_requested());
    /// })
    /// .unwrap();
    /// ```
    pub fn wait_stop(&self) {
        // The event is kept alive by its `RemoteRef` until this hub ends,
        // so the wait cannot end in `LoopExit`; a kill of the waiter ends
        // it early, which is the caller's own doing.
        let _ = self.event.wait();
    }

    /// Whether the stop was requested.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::Hubs::new().threads(1).run(|hub| hub.stop_requested()).unwrap();
    /// assert_eq!(e[0].result.as_ref().unwrap(), &false);
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.stop.requested.load(Ordering::SeqCst)
    }

    /// A handle that stops every hub of the run.
    ///
    /// # Examples
    ///
    /// ```
    /// verdant_runtime::Hubs::new().threads(2).run(|hub| {
    ///     hub.stopper().stop(); // each stops all; the second is a no-op
    ///     hub.wait_stop();
    /// })
    /// .unwrap();
    /// ```
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
        }
    }
}

impl Stopper {
    /// Requests the stop: every hub's [`HubContext::wait_stop`] returns.
    /// Later calls do nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let hubs = verdant_runtime::Hubs::new().threads(1);
    /// let s = hubs.stopper();
    /// std::thread::spawn(move || s.stop());
    /// hubs.run(|hub| hub.wait_stop()).unwrap();
    /// ```
    pub fn stop(&self) {
        self.stop.request();
    }

    /// Whether the stop was requested.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_runtime::Hubs::new().stopper();
    /// assert!(!s.is_stopped());
    /// s.stop();
    /// assert!(s.is_stopped());
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.stop.requested.load(Ordering::SeqCst)
    }
}

/// The stop signals' relay: the handler writes a byte, the relay's thread
/// requests the stop.
static STOP_RELAY: SignalRelay = SignalRelay::new();

/// The stop the signals request, while a run watches them.
static WATCHED: Mutex<Option<Arc<StopState>>> = Mutex::new(None);

/// The signals' actions before the run installed its own.
static PREVIOUS: Mutex<Vec<(libc::c_int, libc::sigaction)>> = Mutex::new(Vec::new());

const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// `SIGINT`/`SIGTERM` → the stop of one run, while it lasts.
struct SignalWatch;

impl SignalWatch {
    fn install(stop: &Arc<StopState>) -> io::Result<SignalWatch> {
        STOP_RELAY.start("verdant-signals", on_stop_relayed)?;
        {
            let mut watched = lock(&WATCHED);
            if watched.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "verdant: another Hubs run already stops on signals",
                ));
            }
            *watched = Some(stop.clone());
        }
        let mut previous = lock(&PREVIOUS);
        previous.clear();
        for sig in STOP_SIGNALS {
            match set_signal_handler(sig, on_stop_signal) {
                Ok(old) => previous.push((sig, old)),
                Err(e) => {
                    drop(previous);
                    restore_signals();
                    *lock(&WATCHED) = None;
                    return Err(e);
                }
            }
        }
        Ok(SignalWatch)
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        restore_signals();
        *lock(&WATCHED) = None;
    }
}

/// Puts back the actions `SignalWatch::install` replaced (once).
fn restore_signals() {
    for (sig, old) in lock(&PREVIOUS).drain(..) {
        // SAFETY: `old` is the action sigaction gave us for `sig`.
        unsafe { libc::sigaction(sig, &old, ptr::null_mut()) };
    }
}

/// The handler: one `write(2)`, which is async-signal-safe.
extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP_RELAY.notify();
}

/// On the relay's thread: the first signal asks for the stop, and puts
/// the previous actions back so that the next one acts as before.
fn on_stop_relayed() {
    restore_signals();
    let watched = lock(&WATCHED).clone();
    if let Some(stop) = watched {
        stop.request();
    }
}
