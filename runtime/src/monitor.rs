//! Watching hubs from outside: the blocking monitor ([`Monitor`], gevent's
//! `monitor_thread` with `max_blocking_time`) and the run-info dump on a
//! signal ([`dump_on_signal`]).
//!
//! # The blocking monitor
//!
//! A greenlet that never waits (a long computation, `std::thread::sleep`, a
//! blocking call of a library that does not cooperate) holds its whole hub:
//! no other greenlet runs, timers and sockets wait. The monitor makes that
//! visible. A watched hub publishes a heartbeat at every switch and around
//! its poll; one monitor thread per process checks the heartbeats every
//! quarter threshold (at most every 50 ms). When a hub that is not idle has
//! not switched for longer than its threshold, the monitor reports it, once
//! per stall: the hub's thread, the greenlet that holds it (id, name, spawn
//! site), how long so far, and a backtrace of the hub's thread taken at that
//! moment.
//!
//! The backtrace is taken in the hub's thread itself: the monitor sends it
//! `SIGURG` (the signal Go uses for the same purpose: ignored by default,
//! and rarely used, since it only reports out-of-band socket data), whose
//! handler records the raw return addresses of the interrupted stack into a
//! buffer set aside beforehand, without allocating or locking (glibc's
//! `_dl_find_object` makes the unwinder's lookups async-signal-safe).
//! Another thread of the monitor then turns the addresses into names and
//! lines (slow the first time: it reads the debug information) and
//! delivers the report, while the checks go on. A
//! `SIGURG` not sent by the monitor goes on to the handler installed
//! before (or is ignored, as by default).
//!
//! The signal interrupts whatever the stalled code is doing: a blocking
//! system call that `SA_RESTART` does not restart (`poll`, `epoll_wait`,
//! `nanosleep`, a socket read with a timeout…) returns `EINTR` once per
//! report. std's `sleep` and most libraries retry; one that does not sees
//! the error. The monitor samples once per stall.
//!
//! Watching costs a watched hub one call per switch that stores a counter;
//! an unwatched hub tests one flag per switch, shared with
//! [`Hub::set_trace`](crate::Hub::set_trace).

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::hub::{self, Beat};
use crate::remote::{self, QuietRemote};
use crate::sys::{cvt, set_signal_handler, SignalRelay};

/// What a report sends: see [`Monitor::report`].
type ReportFn = Arc<dyn Fn(&Blocked) + Send + Sync>;

/// An opt-in watch on this thread's hub: reports every stall longer than
/// `threshold` (see the [module docs](self)).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use verdant_runtime::monitor::Monitor;
///
/// let reports = Arc::new(Mutex::new(Vec::new()));
/// let r = reports.clone();
/// Monitor::new(Duration::from_millis(50))
///     .report(move |b| r.lock().unwrap().push(b.greenlet.clone()))
///     .start()
///     .unwrap();
/// let h = verdant_runtime::Builder::new()
///     .name("sleeper")
///     .spawn(|| std::thread::sleep(Duration::from_millis(300))) // blocks the hub
///     .unwrap();
/// h.join().unwrap();
/// // Reports arrive from the monitor's thread, once their frames are named.
/// while reports.lock().unwrap().is_empty() {
///     verdant_runtime::sleep(Duration::from_millis(10));
/// }
/// verdant_runtime::monitor::stop();
/// assert_eq!(*reports.lock().unwrap(), ["sleeper"]);
/// ```
#[derive(Clone)]
pub struct Monitor {
    threshold: Duration,
    report: Option<ReportFn>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("threshold", &self.threshold)
            .field("report", &self.report.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl Monitor {
    /// A monitor that reports stalls longer than `threshold` (gevent's
    /// `max_blocking_time`, 0.1 s by default there), to stderr unless
    /// [`report`](Monitor::report) says otherwise.
    ///
    /// # Panics
    ///
    /// Panics if `threshold` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = verdant_runtime::monitor::Monitor::new(std::time::Duration::from_millis(100));
    /// # let _ = m;
    /// ```
    pub fn new(threshold: Duration) -> Monitor {
        assert!(
            !threshold.is_zero(),
            "verdant: a monitor's threshold must be above zero"
        );
        Monitor {
            threshold,
            report: None,
        }
    }

    /// Sends each report to `f` (on the monitor's thread) instead of
    /// stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _m = verdant_runtime::monitor::Monitor::new(Duration::from_millis(100))
    ///     .report(|b| eprintln!("stall: {} for {:?}", b.greenlet, b.blocked_for));
    /// ```
    pub fn report(mut self, f: impl Fn(&Blocked) + Send + Sync + 'static) -> Monitor {
        self.report = Some(Arc::new(f));
        self
    }

    /// Starts watching this thread's hub (until [`stop`] on this thread, or
    /// its exit); a monitor started before on this thread is replaced.
    /// Starts the process's monitor thread on first use.
    ///
    /// # Errors
    ///
    /// When the `SIGURG` handler cannot be installed or the monitor thread
    /// cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// verdant_runtime::monitor::Monitor::new(Duration::from_millis(100)).start().unwrap();
    /// verdant_runtime::monitor::stop();
    /// ```
    pub fn start(self) -> io::Result<()> {
        install_sampler()?;
        let monitor = monitor_thread()?;
        let beat = hub::watch();
        let thread = std::thread::current();
        let watched = Watched {
            beat,
            threshold: self.threshold,
            report: self.report,
            // SAFETY: gettid has no preconditions.
            tid: unsafe { libc::gettid() },
            thread: thread
                .name()
                .map_or_else(|| format!("{:?}", thread.id()), str::to_owned),
            seen: Mutex::new(Seen {
                turns: u64::MAX,
                since: Instant::now(),
                reported: false,
            }),
        };
        let mut list = lock(&monitor.watched);
        list.retain(|w| w.tid != watched.tid);
        list.push(Arc::new(watched));
        drop(list);
        monitor.changed.notify_all();
        Ok(())
    }
}

/// Stops watching this thread's hub (nothing happens if it was not).
///
/// # Examples
///
/// ```
/// verdant_runtime::monitor::stop();
/// ```
pub fn stop() {
    hub::unwatch();
    if let Some(m) = MONITOR.get() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        lock(&m.watched).retain(|w| w.tid != tid);
    }
}

/// A stall the monitor found: a hub that has not switched for longer than
/// its threshold. `Display` gives the report the monitor prints to stderr.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Blocked {
    /// The hub's thread (its name, or its id).
    pub thread: String,
    /// The running greenlet's id.
    pub greenlet_id: u64,
    /// The running greenlet's name (`main`, `Hub`, or a child's: its first
    /// 31 bytes).
    pub greenlet: String,
    /// Where the running greenlet was spawned (`None` for main and the hub).
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long the hub had not switched when the monitor saw the stall
    /// (at least: the monitor checks every quarter threshold).
    pub blocked_for: Duration,
    /// When the monitor saw the stall (the backtrace was taken right
    /// after; naming its frames takes longer).
    pub at: Instant,
    /// The hub thread's stack when the stall was seen, innermost first:
    /// one line per frame (`function at file:line` where known). Empty when
    /// the thread could not be sampled.
    pub backtrace: Vec<String>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verdant: the hub of thread '{}' has not switched for {} ms: greenlet #{} '{}'",
            self.thread,
            self.blocked_for.as_millis(),
            self.greenlet_id,
            self.greenlet
        )?;
        if let Some(site) = self.spawned_at {
            write!(f, " (spawned at {site})")?;
        }
        f.write_str(" holds it without waiting")?;
        if self.backtrace.is_empty() {
            return f.write_str("; no backtrace (the thread could not be sampled)");
        }
        f.write_str("; backtrace of the hub's thread:")?;
        for (i, line) in self.backtrace.iter().enumerate() {
            write!(f, "\n  {i:3}: {line}")?;
        }
        Ok(())
    }
}

/// One watched hub.
struct Watched {
    beat: Arc<Beat>,
    threshold: Duration,
    report: Option<ReportFn>,
    /// The hub thread's kernel id, for `tgkill`.
    tid: libc::pid_t,
    thread: String,
    seen: Mutex<Seen>,
}

/// What the monitor last saw of a hub.
struct Seen {
    turns: u64,
    /// When `turns` was first seen at its value.
    since: Instant,
    /// The current stall was reported.
    reported: bool,
}

/// The process's monitor thread and its list of watched hubs.
struct MonitorThread {
    watched: Mutex<Vec<Arc<Watched>>>,
    changed: Condvar,
}

static MONITOR: OnceLock<MonitorThread> = OnceLock::new();

/// A lock that a panic elsewhere does not poison for the monitor.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `start` once per process (the first caller's), and gives every
/// caller its outcome: how the monitor's threads are started.
fn once(
    cell: &'static OnceLock<Result<(), String>>,
    start: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    cell.get_or_init(|| start().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// Starts a named thread of the monitor running `f`.
fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
}

/// The monitor thread, started on first use.
fn monitor_thread() -> io::Result<&'static MonitorThread> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let m = MONITOR.get_or_init(|| MonitorThread {
        watched: Mutex::new(Vec::new()),
        changed: Condvar::new(),
    });
    once(&STARTED, || spawn_named("verdant-monitor", move || run(m)))?;
    Ok(m)
}

/// The monitor thread's loop.
fn run(m: &'static MonitorThread) {
    // The unwinder sets itself up on its first use (it may allocate then):
    // do that here, not in the first signal handler.
    backtrace::trace(|_| true);
    loop {
        let watched: Vec<Arc<Watched>> = {
            let mut list = lock(&m.watched);
            list.retain(|w| *lock(&w.beat.alive));
            while list.is_empty() {
                list = m.changed.wait(list).unwrap_or_else(|e| e.into_inner());
            }
            list.clone()
        };
        let period = watched
            .iter()
            .map(|w| w.threshold / 4)
            .min()
            .unwrap_or_default()
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        std::thread::sleep(period);
        for w in &watched {
            check(w);
        }
    }
}

/// Looks at one hub's heartbeat; reports a stall once.
fn check(w: &Watched) {
    let now = Instant::now();
    let turns = w.beat.turns.load(Ordering::Relaxed);
    let idle = w.beat.idle.load(Ordering::Relaxed);
    let mut seen = lock(&w.seen);
    if idle || turns != seen.turns {
        *seen = Seen {
            turns,
            since: now,
            reported: false,
        };
        return;
    }
    let blocked_for = now - seen.since;
    if seen.reported || blocked_for < w.threshold {
        return;
    }
    seen.reported = true;
    drop(seen);
    let sample = {
        let alive = lock(&w.beat.alive);
        if !*alive {
            return;
        }
        // Under the lock: the thread cannot finish exiting meanwhile.
        take_sample(w.tid)
    };
    let (snap, frames) = match sample {
        Some((snap, frames)) => (snap, frames),
        None => (None, Vec::new()),
    };
    let report = Blocked {
        thread: w.thread.clone(),
        greenlet_id: snap.map_or(0, |s| s.id),
        greenlet: snap.map_or_else(
            || "?".to_owned(),
            |s| match &s.name[..s.name_len] {
                [] => format!("Greenlet-{}", s.id),
                n => String::from_utf8_lossy(n).into_owned(),
            },
        ),
        spawned_at: snap.and_then(|s| s.site),
        blocked_for,
        at: now,
        backtrace: Vec::new(),
    };
    // Naming the frames can take long (the first time, reading the debug
    // information): a thread of its own does it, so that the checks of
    // every hub go on meanwhile.
    let _ = reporter().send((report, frames, w.report.clone()));
}

/// What the reporter thread receives: a report without its backtrace, the
/// raw frames, and where the report goes.
type Pending = (Blocked, Vec<usize>, Option<ReportFn>);

/// The reporter thread's channel, started on first use.
fn reporter() -> &'static std::sync::mpsc::Sender<Pending> {
    static TX: OnceLock<std::sync::mpsc::Sender<Pending>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Pending>();
        let started = spawn_named("verdant-monitor-report", move || {
            for (mut report, frames, to) in rx {
                // A panicking callback must not end every later report.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    report.backtrace = symbolize(&frames);
                    match &to {
                        Some(f) => f(&report),
                        None => eprintln!("{report}"),
                    }
                }));
                if r.is_err() {
                    eprintln!("verdant: a monitor report callback panicked");
                }
            }
        });
        if let Err(e) = started {
            // Reports then go nowhere; say so once.
            eprintln!("verdant: the monitor cannot report stalls: {e}");
        }
        tx
    })
}

/// Names the frames, innermost first, leaving out the signal handler's
/// own: the unwinder's, the handler's, and the kernel's signal trampoline
/// just after them (`__restore_rt`, which often has no symbol).
fn symbolize(frames: &[usize]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::with_capacity(frames.len());
    let mut handler = None;
    for &ip in frames {
        let mut line = None;
        backtrace::resolve(ip as *mut libc::c_void, |sym| {
            if line.is_some() {
                return; // inlined frames: the first name is the innermost
            }
            let name = sym
                .name()
                .map_or_else(|| format!("{ip:#x}"), |n| format!("{n:#}"));
            line = Some(match (sym.filename(), sym.lineno()) {
                (Some(file), Some(l)) => format!("{name} at {}:{l}", file.display()),
                _ => name,
            });
        });
        let line = line.unwrap_or_else(|| format!("{ip:#x}"));
        if handler.is_none() && line.contains("monitor::on_sample") {
            handler = Some(lines.len());
        }
        lines.push(line);
    }
    let Some(h) = handler else {
        return lines;
    };
    let mut rest = lines.split_off(h + 1);
    if rest
        .first()
        .is_some_and(|l| l.starts_with("0x") || l.starts_with("__restore_rt"))
    {
        rest.remove(0);
    }
    rest
}

// ---- Sampling a hub thread's stack from a signal handler ----

/// The signal that asks a hub thread for its stack.
const SAMPLE_SIGNAL: libc::c_int = libc::SIGURG;
/// Frames kept per sample.
const MAX_FRAMES: usize = 64;

const IDLE: u64 = 0;
const REQUESTED: u64 = 1;
const CAPTURING: u64 = 2;
const DONE: u64 = 3;

/// The request protocol, in one word: the thread asked (its kernel id, in
/// the high half) and the step (the low half). The monitor moves it from
/// `IDLE` to `(tid, REQUESTED)` and signals the thread; the handler, on
/// that thread, moves it to `(tid, CAPTURING)` (one compare-and-swap, so a
/// late or foreign signal on another thread cannot take the request),
/// fills `SAMPLE`, and publishes it with `(tid, DONE)`; the monitor reads
/// it and goes back to `IDLE`. One monitor thread, so one request at a
/// time.
static STATE: AtomicU64 = AtomicU64::new(IDLE);

/// The protocol word for thread `tid` at `step`.
fn word(tid: libc::pid_t, step: u64) -> u64 {
    (u64::from(tid as u32) << 32) | step
}

struct Sample {
    frames: [usize; MAX_FRAMES],
    len: usize,
    snap: Option<hub::Snapshot>,
}

/// `SAMPLE`'s cell: written only by the handler between `CAPTURING` and
/// `DONE`, read only by the monitor after it saw `DONE`.
struct SampleCell(UnsafeCell<Sample>);

// SAFETY: access follows the `STATE` protocol above, whose acquire/release
// pairs order the handler's writes before the monitor's reads.
unsafe impl Sync for SampleCell {}

static SAMPLE: SampleCell = SampleCell(UnsafeCell::new(Sample {
    frames: [0; MAX_FRAMES],
    len: 0,
    snap: None,
}));

static SAMPLER: OnceLock<Result<(), i32>> = OnceLock::new();
/// Whether the handler may unwind: glibc 2.35 made the unwinder's lookups
/// (`_dl_find_object`) async-signal-safe; before, they take a lock the
/// interrupted code may hold, so reports come without a backtrace.
static CAN_UNWIND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The `SIGURG` action before ours, to chain to.
static mut PREV_URG: MaybeUninit<libc::sigaction> = MaybeUninit::zeroed();
/// Frames captured so far in the handler (`trace_unsynchronized`'s
/// callback cannot borrow the sample mutably twice).
static CAPTURED: AtomicUsize = AtomicUsize::new(0);

/// Whether this glibc is 2.35 or later (see [`CAN_UNWIND`]).
fn glibc_unwinds_safely() -> bool {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut parts = v.to_str().unwrap_or("").split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (2, 35)
}

fn install_sampler() -> io::Result<()> {
    let r = *SAMPLER.get_or_init(|| {
        CAN_UNWIND.store(glibc_unwinds_safely(), Ordering::Relaxed);
        // The previous action first, so that the handler never reads it
        // half-written.
        // SAFETY: PREV_URG is written only here, once (under SAMPLER),
        // before our handler is installed.
        let r = unsafe {
            libc::sigaction(
                SAMPLE_SIGNAL,
                ptr::null(),
                (*ptr::addr_of_mut!(PREV_URG)).as_mut_ptr(),
            )
        };
        cvt(r).map_err(|e| e.raw_os_error().unwrap_or(0))?;
        // SAFETY: a zeroed sigaction is a valid value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_sample as *const () as usize;
        // Not SA_ONSTACK: an alternate stack that std made is a few KiB,
        // too little for the signal frame and the unwinder; the greenlet's
        // own stack (or the thread's) has room.
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `sa_mask` is a valid sigset_t to clear; `sa` is then
        // fully initialised.
        let r = unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(SAMPLE_SIGNAL, &sa, ptr::null_mut())
        };
        cvt(r).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// The `SIGURG` handler: async-signal-safe (no allocation, no lock).
extern "C" fn on_sample(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is this thread's; saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    // Ours only if sent by tgkill from this process (a kernel SIGURG for
    // out-of-band data, or another process's, is passed on).
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo.
    let from_us = !info.is_null()
        && unsafe { (*info).si_code == libc::SI_TKILL && (*info).si_pid() == libc::getpid() };
    if from_us
        && STATE
            .compare_exchange(
                word(me, REQUESTED),
                word(me, CAPTURING),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        // SAFETY: the STATE protocol gives this handler sole access to the
        // sample until it stores DONE.
        let sample = unsafe { &mut *SAMPLE.0.get() };
        sample.snap = hub::snapshot();
        CAPTURED.store(0, Ordering::Relaxed);
        let frames = sample.frames.as_mut_ptr();
        if CAN_UNWIND.load(Ordering::Relaxed) {
            // The unwinder's lookups are async-signal-safe on this glibc
            // (CAN_UNWIND); the callback only stores addresses, in bounds.
            // SAFETY: one capture at a time (the STATE protocol).
            unsafe {
                backtrace::trace_unsynchronized(|frame| {
                    let n = CAPTURED.load(Ordering::Relaxed);
                    if n >= MAX_FRAMES {
                        return false;
                    }
                    *frames.add(n) = frame.ip() as usize;
                    CAPTURED.store(n + 1, Ordering::Relaxed);
                    true
                });
            }
        }
        sample.len = CAPTURED.load(Ordering::Relaxed);
        STATE.store(word(me, DONE), Ordering::Release);
    } else {
        chain(sig, info, ctx);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Passes a `SIGURG` that was not the monitor's to the handler installed
/// before ours; the default action (and `SIG_IGN`) ignore it.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREV_URG was filled in by `sigaction` before our handler
    // could run, and is never written again.
    let prev = unsafe { (*ptr::addr_of!(PREV_URG)).assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed as an SA_SIGINFO
        // handler with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous handler was installed as a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// Asks thread `tid` for its stack; `None` when it did not answer within
/// 200 ms (it blocks the signal, or is stopped).
fn take_sample(tid: libc::pid_t) -> Option<(Option<hub::Snapshot>, Vec<usize>)> {
    STATE.store(word(tid, REQUESTED), Ordering::Release);
    // SAFETY: tgkill takes plain integers; the caller holds the thread's
    // `alive` lock, so `tid` still names the hub's thread.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid,
            SAMPLE_SIGNAL as libc::c_long,
        )
    };
    let give_up = Instant::now() + Duration::from_millis(200);
    loop {
        let s = STATE.load(Ordering::Acquire);
        if s == word(tid, DONE) {
            break;
        }
        if s == word(tid, REQUESTED)
            && (sent != 0 || Instant::now() >= give_up)
            && STATE
                .compare_exchange(s, IDLE, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // SAFETY: STATE is DONE: the handler is finished with the sample.
    let sample = unsafe { &*SAMPLE.0.get() };
    let out = (sample.snap, sample.frames[..sample.len].to_vec());
    STATE.store(IDLE, Ordering::Release);
    Some(out)
}

// ---- The run-info dump on a signal ----

/// The dump signal's relay: the handler writes a byte, the relay's thread
/// posts the dumps.
static DUMP: SignalRelay = SignalRelay::new();

/// The hubs to dump, by a handle that does not keep them from `LoopExit`.
static DUMPED: Mutex<Vec<QuietRemote>> = Mutex::new(Vec::new());

/// Prints this thread's [`Hub::run_info`](crate::Hub::run_info) to stderr
/// each time the process receives `signal` (`libc::SIGUSR1` is the usual
/// choice), like gevent's `print_run_info` on demand: `kill -USR1 <pid>`
/// shows what every greenlet of every registered hub is doing. The handler
/// only writes a byte to a pipe; a thread of the monitor formats nothing
/// itself but posts a greenlet to each registered hub, which prints the
/// listing (the dump greenlet appears in it, running). Registering does not
/// keep the hub from reporting `LoopExit`, and registering a hub twice
/// dumps it once. The signal's previous action is replaced.
///
/// # Errors
///
/// `InvalidInput` for a signal that cannot be caught or that the runtime
/// uses (`SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGBUS`, `SIGURG`); what
/// `pipe2`, `sigaction` or the thread's start report.
///
/// # Examples
///
/// ```
/// verdant_runtime::monitor::dump_on_signal(libc::SIGUSR1).unwrap();
/// assert!(verdant_runtime::monitor::dump_on_signal(libc::SIGKILL).is_err());
/// ```
pub fn dump_on_signal(signal: libc::c_int) -> io::Result<()> {
    if [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        SAMPLE_SIGNAL,
    ]
    .contains(&signal)
        || !(1..=libc::SIGRTMAX()).contains(&signal)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("verdant: signal {signal} cannot carry the run-info dump"),
        ));
    }
    DUMP.start("verdant-dump", dump_all)?;
    let me = remote::quiet_remote()?;
    {
        let mut hubs = lock(&DUMPED);
        if !hubs.iter().any(|h| h.same_hub(&me)) {
            hubs.push(me);
        }
    }
    set_signal_handler(signal, on_dump_signal)?;
    Ok(())
}

/// The dump signal's handler: one `write(2)`, which is async-signal-safe.
extern "C" fn on_dump_signal(_sig: libc::c_int) {
    DUMP.notify();
}

/// On the relay's thread, after a dump signal: a dump greenlet posted to
/// each registered hub.
fn dump_all() {
    let mut hubs = lock(&DUMPED);
    hubs.retain(|h| {
        // Gone (its thread exited): dropped from the list.
        h.is_alive()
            && h.post("run-info dump", || {
                eprintln!("{}", crate::Hub::current().run_info());
            })
            .is_ok()
    });
}
