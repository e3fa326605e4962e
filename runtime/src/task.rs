//! Spawning greenlets on the hub: [`spawn`], [`JoinHandle`], kills.
//!
//! A spawned greenlet (a *task*, gevent's `Greenlet`) has the hub as its
//! parent. [`spawn`] only schedules it: the spawner keeps running until it
//! waits, exactly as in gevent. A panic inside a task is caught at its root,
//! reported once (with the greenlet's name) by the panic hook, and returned by
//! [`JoinHandle::join`]; it never reaches the hub. A kill
//! ([`JoinHandle::kill`]) raises [`GreenletExit`](crate::GreenletExit) inside the task so that its
//! destructors run, and is not an error for [`joinall`](crate::joinall).

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::greenlet::Greenlet;
use crate::hub::{self, panic_message, Outcome};
use crate::hub::{Stuck, Waiting};
use crate::remote::{PostError, PostOptions, Remote};
use crate::timer::{deadline_after, TimerKey};
use crate::value::{Payload, Value, Wake};

thread_local! {
    /// The start timers of `spawn_later` greenlets not started yet, by
    /// greenlet id, so that a kill before the start cancels the timer
    /// (which would otherwise keep the greenlet's record until it fires).
    static START_TIMERS: RefCell<HashMap<u64, TimerKey>> = RefCell::new(HashMap::new());
}

/// What kind of failure a [`JoinError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinErrorKind {
    /// The greenlet panicked; the payload is in the error.
    Panicked,
    /// The greenlet was killed ([`GreenletExit`](crate::GreenletExit)) before
    /// it returned a value.
    Killed,
    /// The wait could never end: the hub has nothing ready, timed or watched
    /// (gevent's `LoopExit`), or a greenlet tried to join itself.
    LoopExit,
    /// The waiting greenlet is unwinding (a panic, a kill, or its drop) and
    /// may not wait; see the Caveats of [`Greenlet`].
    Cancelled,
}

/// Why [`JoinHandle::join`] (and friends) did not return a value.
///
/// # Examples
///
/// ```
/// use verdant_runtime::{spawn, JoinErrorKind};
/// let h = spawn(|| -> u32 { panic!("boom") });
/// let err = h.join().unwrap_err();
/// assert_eq!(err.kind(), JoinErrorKind::Panicked);
/// assert_eq!(err.panic_message(), Some("boom"));
/// ```
///
/// It is `Send + Sync + 'static` and an `Error`, so `?` turns it into a
/// `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`), and it can cross
/// threads with the panic payload in it:
///
/// ```
/// fn run() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     Ok(verdant_runtime::Builder::new().name("w").spawn(|| -> u32 { panic!("boom") })?.join()?)
/// }
/// let err = run().unwrap_err();
/// assert_eq!(err.to_string(), "greenlet 'w' panicked: boom");
/// let e = std::thread::spawn(move || err).join().unwrap();
/// assert!(e.downcast_ref::<verdant_runtime::JoinError>().unwrap().is_panic());
/// ```
pub struct JoinError {
    kind: JoinErrorKind,
    name: Cow<'static, str>,
    message: Option<String>,
    payload: Option<PanicPayload>,
    /// For a `LoopExit`: the greenlets left waiting.
    stuck: Option<Stuck>,
}

/// A panic payload (`Box<dyn Any + Send>`, not `Sync`) made `Sync`: no
/// shared reference to the payload is ever handed out, it is only moved
/// out by value ([`JoinError::into_panic`]), so sharing a `&JoinError`
/// between threads can never touch it (tokio's `JoinError` does the same).
struct PanicPayload(Payload);

// SAFETY: the payload is only reachable by value (`into_panic`, which
// takes the error by value) and never through `&self`, so `&PanicPayload`
// gives other threads nothing to access concurrently.
unsafe impl Sync for PanicPayload {}

impl JoinError {
    pub(crate) fn new(kind: JoinErrorKind, name: Cow<'static, str>) -> JoinError {
        JoinError {
            kind,
            name,
            message: None,
            payload: None,
            stuck: None,
        }
    }

    /// A `LoopExit` that left `stuck` waiting.
    pub(crate) fn loop_exit(name: Cow<'static, str>, stuck: Stuck) -> JoinError {
        let mut e = JoinError::new(JoinErrorKind::LoopExit, name);
        e.stuck = Some(stuck);
        e
    }

    /// A panic known by its message only (the payload went elsewhere).
    pub(crate) fn from_message(name: Cow<'static, str>, message: Option<String>) -> JoinError {
        JoinError {
            kind: JoinErrorKind::Panicked,
            name,
            message,
            payload: None,
            stuck: None,
        }
    }

    /// A panic caught somewhere other than a greenlet (the blocking pool).
    pub(crate) fn from_panic(name: Cow<'static, str>, payload: Payload) -> JoinError {
        JoinError {
            kind: JoinErrorKind::Panicked,
            name,
            message: panic_message(&*payload),
            payload: Some(PanicPayload(payload)),
            stuck: None,
        }
    }

    /// For a `LoopExit` from a wait (`kind() == LoopExit`), the greenlets it
    /// leaves stuck and what each waits for; `None` for the other kinds,
    /// and for a greenlet that joined itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use verdant_runtime::{spawn, sync::Event, Waiting, RunState};
    /// let e = Rc::new(Event::new());
    /// let e2 = e.clone();
    /// let h = spawn(move || e2.wait());
    /// let id = h.id();
    /// let err = h.join().unwrap_err(); // nothing will ever set `e`
    /// let stuck = err.stuck().unwrap().greenlets();
    /// assert_eq!(stuck[0].id, id);
    /// assert_eq!(stuck[0].state, RunState::Waiting(Waiting::Event));
    /// ```
    pub fn stuck(&self) -> Option<&Stuck> {
        self.stuck.as_ref()
    }

    /// The kind of failure.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// h.kill();
    /// assert!(h.join().unwrap_err().is_killed());
    /// ```
    pub fn kind(&self) -> JoinErrorKind {
        self.kind
    }

    /// Whether the greenlet panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::spawn(|| panic!("x")).join().unwrap_err().is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.kind == JoinErrorKind::Panicked
    }

    /// Whether the greenlet was killed.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// h.kill();
    /// assert!(h.join().unwrap_err().is_killed());
    /// ```
    pub fn is_killed(&self) -> bool {
        self.kind == JoinErrorKind::Killed
    }

    /// The name of the greenlet that failed (or of the waiter, for
    /// `LoopExit` and `Cancelled`).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::Builder::new().name("w").spawn(|| panic!("x")).unwrap();
    /// assert_eq!(h.join().unwrap_err().name(), "w");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The panic message, when the payload was a string.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::spawn(|| panic!("n={}", 3)).join().unwrap_err();
    /// assert_eq!(e.panic_message(), Some("n=3"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The panic payload, to re-raise with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// Panics if the error is not a panic, or if its payload was already
    /// taken (errors returned by [`JoinAll`](crate::JoinAll) carry no
    /// payload).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = verdant_runtime::spawn(|| std::panic::panic_any(7u8)).join().unwrap_err();
    /// assert_eq!(*e.into_panic().downcast::<u8>().unwrap(), 7);
    /// ```
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.payload {
            Some(p) => p.0,
            None => panic!("verdant: this JoinError carries no panic payload ({self})"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinError")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("message", &self.message)
            .field("stuck", &self.stuck)
            .finish()
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            JoinErrorKind::Panicked => write!(
                f,
                "greenlet '{}' panicked: {}",
                self.name,
                self.message.as_deref().unwrap_or("Box<dyn Any>")
            ),
            JoinErrorKind::Killed => write!(f, "greenlet '{}' was killed", self.name),
            JoinErrorKind::LoopExit => {
                write!(
                    f,
                    "LoopExit: greenlet '{}' would wait forever (nothing is ready, timed or watched)",
                    self.name
                )?;
                match &self.stuck {
                    Some(stuck) => write!(f, "; {stuck}"),
                    None => Ok(()),
                }
            }
            JoinErrorKind::Cancelled => write!(
                f,
                "greenlet '{}' cannot wait while it is unwinding",
                self.name
            ),
        }
    }
}

impl std::error::Error for JoinError {}

/// Options for spawning a greenlet: name and stack size.
///
/// # Examples
///
/// ```
/// let h = verdant_runtime::Builder::new()
///     .name("worker")
///     .stack_size(256 * 1024)
///     .spawn(|| verdant_runtime::Greenlet::current().name())
///     .unwrap();
/// assert_eq!(h.join().unwrap(), "worker");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<Cow<'static, str>>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Default options: an automatic name, the hub's stack size.
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_runtime::Builder::new();
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (panic reports and overflow messages use it).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_runtime::Builder::new().name(format!("conn-{}", 7));
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the usable stack size (rounded up to whole pages and to
    /// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE)).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_runtime::Builder::new().stack_size(32 * 1024);
    /// ```
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns `f` on this thread's hub; it starts when the spawner next waits.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an oversized stack; `OutOfMemory` when no stack can
    /// be mapped (for example at the `vm.max_map_count` limit on kernels
    /// without `MADV_GUARD_INSTALL`).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::Builder::new().spawn(|| 1 + 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.build(None, f)
    }

    /// Spawns `f` to start after `delay` (gevent's `spawn_later`).
    ///
    /// # Errors
    ///
    /// As for [`Builder::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let t = Instant::now();
    /// let h = verdant_runtime::Builder::new()
    ///     .spawn_later(Duration::from_millis(20), move || t.elapsed())
    ///     .unwrap();
    /// assert!(h.join().unwrap() >= Duration::from_millis(20));
    /// ```
    #[track_caller]
    pub fn spawn_later<F, T>(self, delay: Duration, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.build(Some(deadline_after(delay)), f)
    }

    /// Runs `f` on `remote`'s hub in a new greenlet with this builder's
    /// name (else `remote`) and stack size: [`Remote::post`] with options.
    ///
    /// # Errors
    ///
    /// [`PostError`], with the closure, if the hub's thread has exited.
    ///
    /// # Panics
    ///
    /// When the stack size is over
    /// [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE) (checked here, on the
    /// posting thread, rather than dropping the post on the hub).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet, Hub};
    /// let remote = Hub::current().remote();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// std::thread::spawn(move || {
    ///     Builder::new()
    ///         .name("from-worker")
    ///         .stack_size(1 << 20)
    ///         .post(&remote, move || {
    ///             let me = Greenlet::current();
    ///             tx.send((me.name(), me.stack_size())).unwrap();
    ///         })
    ///         .unwrap();
    /// })
    /// .join()
    /// .unwrap();
    /// verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// assert_eq!(rx.try_recv().unwrap(), ("from-worker".into(), Some(1 << 20)));
    /// ```
    #[track_caller]
    pub fn post<F>(self, remote: &Remote, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        if let Some(size) = self.stack_size {
            if let Err(e) = crate::stack::round_size(size) {
                panic!("verdant: Builder::post: {e}");
            }
        }
        let options = PostOptions {
            name: self.name,
            stack_size: self.stack_size,
            site: std::panic::Location::caller(),
        };
        remote.post_options(options, f)
    }

    #[track_caller]
    fn build<F, T>(self, start_at: Option<Instant>, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let site = std::panic::Location::caller();
        // Two closures rather than one with a flag: a closure no larger
        // than the user's own is kept in the greenlet's record until its
        // first run, with no allocation of its own.
        let (greenlet, key) = match start_at {
            None => hub::spawn_task(self.stack_size, self.name, None, site, move || {
                Value::new(f())
            })?,
            Some(_) => hub::spawn_task(self.stack_size, self.name, start_at, site, move || {
                // Started by its spawn_later timer: forget the key.
                let me = hub::current_id();
                START_TIMERS.with(|t| t.borrow_mut().remove(&me));
                Value::new(f())
            })?,
        };
        if let Some(key) = key {
            START_TIMERS.with(|t| t.borrow_mut().insert(greenlet.id(), key));
        }
        Ok(JoinHandle {
            greenlet,
            _result: PhantomData,
        })
    }
}

/// Spawns `f` as a new greenlet on this thread's hub and returns its handle.
///
/// The greenlet (a *task*, gevent's `Greenlet`) has the hub as its parent.
/// It only starts when the caller next waits (a `sleep`, a `join`, IO):
/// spawning never switches, exactly as in gevent. Dropping the handle
/// detaches the greenlet; it keeps running.
///
/// A panic inside it is caught at its root, reported once (with the
/// greenlet's name) by the panic hook, and returned by
/// [`JoinHandle::join`]; it never reaches the hub. A kill
/// ([`JoinHandle::kill`]) raises [`GreenletExit`](crate::GreenletExit)
/// inside it so that its destructors run, and is not an error for
/// [`joinall`](crate::joinall).
///
/// # Panics
///
/// Panics if no stack can be mapped; use [`Builder::spawn`] to get the error.
///
/// # Examples
///
/// ```
/// use verdant_runtime::{spawn, sleep};
/// use std::time::Duration;
///
/// let h = spawn(|| {
///     sleep(Duration::from_millis(10));
///     "done"
/// });
/// assert_eq!(h.join().unwrap(), "done");
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("verdant: failed to spawn a greenlet: {e}"),
    }
}

/// Spawns `f` to start after `delay`.
///
/// # Panics
///
/// As for [`spawn`].
///
/// # Examples
///
/// ```
/// let h = verdant_runtime::spawn_later(std::time::Duration::from_millis(5), || 3);
/// assert_eq!(h.join().unwrap(), 3);
/// ```
#[track_caller]
pub fn spawn_later<F, T>(delay: Duration, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn_later(delay, f) {
        Ok(h) => h,
        Err(e) => panic!("verdant: failed to spawn a greenlet: {e}"),
    }
}

/// An owned handle to a spawned greenlet: join it for its value, or kill it.
///
/// # Examples
///
/// ```
/// let h = verdant_runtime::spawn(|| 6 * 7);
/// assert!(!h.is_finished());
/// assert_eq!(h.join().unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    greenlet: Greenlet,
    /// The result's type; the value itself waits in the greenlet's record.
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("greenlet", &self.greenlet)
            .finish()
    }
}

impl<T> AsRef<Greenlet> for JoinHandle<T> {
    fn as_ref(&self) -> &Greenlet {
        &self.greenlet
    }
}

impl<T: 'static> JoinHandle<T> {
    /// The spawned greenlet's id (its [`Greenlet::id`]), as listed by
    /// [`Hub::run_info`](crate::Hub::run_info).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// assert_eq!(h.id(), h.greenlet().id());
    /// ```
    pub fn id(&self) -> u64 {
        self.greenlet.id()
    }

    /// The spawned greenlet.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// assert!(h.greenlet().parent().unwrap().is_hub());
    /// ```
    pub fn greenlet(&self) -> &Greenlet {
        &self.greenlet
    }

    /// Whether the greenlet has finished (returned, panicked or was killed).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// h.wait().unwrap();
    /// assert!(h.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.greenlet.is_dead()
    }

    /// Waits for the greenlet to finish and returns its value.
    ///
    /// # Errors
    ///
    /// [`JoinErrorKind::Panicked`] (with the payload and the greenlet's name),
    /// [`JoinErrorKind::Killed`], [`JoinErrorKind::LoopExit`] when the wait
    /// could never end, [`JoinErrorKind::Cancelled`] when called while the
    /// caller unwinds.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| String::from("hi"));
    /// assert_eq!(h.join().unwrap(), "hi");
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        self.wait()?;
        let c = self.greenlet.inner.completion();
        let name = || self.greenlet.name();
        match c.outcome() {
            Outcome::Success | Outcome::Pending => match c.take_result() {
                Some(v) => Ok(v.take::<T>()),
                None => Err(JoinError::new(JoinErrorKind::Killed, name())),
            },
            Outcome::Killed => Err(JoinError::new(JoinErrorKind::Killed, name())),
            Outcome::Panicked => Err(JoinError {
                kind: JoinErrorKind::Panicked,
                name: name(),
                message: c.panic_message(),
                payload: c.take_panic_payload().map(PanicPayload),
                stuck: None,
            }),
        }
    }

    /// Waits for the greenlet to finish, without taking its value (gevent's
    /// `join()`). Its own failure is not an error here: see
    /// [`join`](JoinHandle::join).
    ///
    /// # Errors
    ///
    /// [`JoinErrorKind::LoopExit`] or [`JoinErrorKind::Cancelled`], as for
    /// `join`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| panic!("not an error for wait"));
    /// h.wait().unwrap();
    /// assert!(h.is_finished());
    /// ```
    pub fn wait(&self) -> Result<(), JoinError> {
        wait_dead(&self.greenlet, None).map(|_| ())
    }

    /// Waits at most `timeout` for the greenlet to finish; returns whether it
    /// did.
    ///
    /// # Errors
    ///
    /// As for [`wait`](JoinHandle::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = verdant_runtime::spawn(|| verdant_runtime::sleep(Duration::from_secs(5)));
    /// assert!(!h.wait_timeout(Duration::from_millis(10)).unwrap());
    /// h.kill();
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, JoinError> {
        wait_dead(&self.greenlet, Some(deadline_after(timeout)))
    }

    /// Kills the greenlet and waits until it is dead:
    /// [`GreenletExit`](crate::GreenletExit) is
    /// raised where it waits, its stack unwinds (destructors run), and
    /// `join` then reports [`JoinErrorKind::Killed`]. A greenlet that has not
    /// started never runs. Killing a finished greenlet does nothing; killing
    /// the current one unwinds it at once.
    ///
    /// If the greenlet catches the kill, every later hub wait it makes
    /// raises it again, after letting the other greenlets run once: one
    /// that catches its kill in a loop keeps yielding and never dies, so
    /// this waits forever for it; [`kill_timeout`](Self::kill_timeout)
    /// gives up after a while.
    ///
    /// # In a `panic = "abort"` build
    ///
    /// A suspended greenlet cannot unwind there: it is abandoned (never run
    /// again, its stack leaked, its destructors not run) and reported
    /// killed. See the crate documentation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = verdant_runtime::spawn(|| verdant_runtime::sleep(Duration::from_secs(60)));
    /// verdant_runtime::sleep(Duration::ZERO); // let it start sleeping
    /// h.kill();
    /// assert!(h.is_finished());
    /// ```
    pub fn kill(&self) {
        kill(&self.greenlet, true);
    }

    /// Kills the greenlet (as [`kill`](Self::kill)) and waits at most
    /// `timeout` for it to die (gevent's `kill(timeout=...)`); returns
    /// whether it is dead. A greenlet that catches its kill in a loop is
    /// still alive then: it is raised again at its every wait, and it
    /// yields to the others each time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = verdant_runtime::spawn(|| verdant_runtime::sleep(Duration::from_secs(60)));
    /// verdant_runtime::sleep(Duration::ZERO);
    /// assert!(h.kill_timeout(Duration::from_secs(1)));
    /// ```
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        kill(&self.greenlet, false);
        wait_dead(&self.greenlet, Some(deadline_after(timeout))).unwrap_or(false)
    }

    /// Delivers the kill without waiting for the greenlet to die (gevent's
    /// `kill(block=False)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| ());
    /// h.kill_nowait();
    /// assert!(h.join().unwrap_err().is_killed());
    /// ```
    pub fn kill_nowait(&self) {
        kill(&self.greenlet, false);
    }
}

/// Kills `g` (see [`JoinHandle::kill`]); with `block`, waits until it is dead.
pub(crate) fn kill(g: &Greenlet, block: bool) {
    let unstarted = !g.is_started();
    if !hub::deliver_kill(g) {
        return; // dead already
    }
    if unstarted {
        let key = START_TIMERS.with(|t| t.borrow_mut().remove(&g.id()));
        if let Some(key) = key {
            hub::cancel_timer(&key); // it will never start
        }
    }
    if block {
        let _ = wait_dead(g, None);
    }
}

/// Waits until `g` is dead or `deadline` passes; returns whether it died.
pub(crate) fn wait_dead(g: &Greenlet, deadline: Option<Instant>) -> Result<bool, JoinError> {
    if g.is_dead() {
        // Done without a wait, so it spends budget as a channel receive
        // does (see `Runtime::spend`): a loop joining thousands of
        // finished greenlets would otherwise hold the hub while timers
        // come due (joining 100,000 held it 20 ms in one turn). tokio's
        // join handles take part in its budget the same way.
        let _ = hub::try_rt(|rt| rt.spend(1));
        return Ok(true);
    }
    loop {
        if g.is_dead() {
            return Ok(true);
        }
        // Compared, not held: holding a handle to ourselves across the wait
        // would keep us alive forever.
        if hub::is_current(g) {
            return Err(JoinError::new(JoinErrorKind::LoopExit, hub::current_name()));
        }
        let rt = hub::rt();
        let token = match rt.begin_wait(Waiting::Join { id: g.id() }) {
            Ok(t) => t,
            Err(_) => {
                return Err(JoinError::new(
                    JoinErrorKind::Cancelled,
                    hub::current_name(),
                ))
            }
        };
        hub::link_joiner(g, token.clone());
        /// Drops this joiner's link once its wait is over without the
        /// greenlet's death (a timeout, a kill, a timeout scope), so that
        /// repeated waits on a long-lived greenlet leave nothing behind.
        struct Unlink<'a>(&'a Greenlet);
        impl Drop for Unlink<'_> {
            fn drop(&mut self) {
                if !self.0.is_dead() {
                    hub::unlink_stale(self.0);
                }
            }
        }
        let _unlink = Unlink(g);
        let timer = deadline.map(|d| rt.arm_timer(d, token));
        let woke = rt.park();
        drop(timer);
        let why = match woke {
            Ok(Wake::Ready) => continue,
            Ok(Wake::TimedOut) => return Ok(g.is_dead()),
            Ok(Wake::LoopExit) => {
                return Err(JoinError::loop_exit(hub::current_name(), hub::stuck()));
            }
            Err(_) => JoinErrorKind::Cancelled,
        };
        return Err(JoinError::new(why, hub::current_name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_waits_leave_no_link_on_a_long_lived_greenlet() {
        let long = spawn(|| crate::sleep(Duration::from_secs(60)));
        for _ in 0..100 {
            assert!(!long.wait_timeout(Duration::from_micros(1)).unwrap());
        }
        assert_eq!(long.greenlet().inner.completion().links_len(), 0);
        // A joiner killed while it waits.
        let target = long.greenlet().clone();
        let joiner = spawn(move || {
            let _ = wait_dead(&target, None);
        });
        crate::sleep(Duration::ZERO);
        assert_eq!(long.greenlet().inner.completion().links_len(), 1);
        joiner.kill();
        assert_eq!(long.greenlet().inner.completion().links_len(), 0);
        long.kill();
    }
}
