//! The core: greenlet records, the switch, the scheduler and parking. One
//! component by design, since the scheduler runs inside the switch's
//! trampoline; the public [`Greenlet`] type sits on top
//! of it (the one import cycle the runtime allows). Every layer above uses
//! the core through the functions it exports here, never a record's
//! fields.
//!
//! The hub is one event loop per OS thread, made on first use and never
//! moved. It keeps a FIFO ready queue, a timer queue, a cache of stacks and
//! a mio poll, the one place its thread blocks. A greenlet that waits (in
//! `sleep`, `join`, IO…) parks: it registers a wake-up and switches to the
//! hub, which runs the next ready greenlet, fires due timers and polls IO.
//! When the greenlet waiting on the root (main) can never be woken because
//! nothing is ready, timed or watched, the wait fails with `LoopExit`
//! instead of hanging (gevent's `LoopExit`).
//!
//! * `record.rs`: the greenlet record (`Inner`); how a greenlet ended
//!   (`Completion`, recorded once) and its greenlet-local values.
//! * `switch.rs`: the mailbox, the trampoline that resumes every greenlet,
//!   making and unwinding greenlets.
//! * `sched.rs`: the ready queue, the timers, IO polling and the loop's
//!   decisions.
//! * `park.rs`: the wait protocol below, kills and timeout-scope expiry.
//! * `trace.rs`: the switch-trace hook.
//! * `watch.rs`: the heartbeat and running-greenlet snapshot the blocking
//!   monitor reads.
//! * `info.rs`: the list of live greenlets and what each waits on
//!   (`Hub::run_info`, the stuck greenlets of a `LoopExit`).
//!
//! # Invariants
//!
//! The `SAFETY` comments of the core name the invariant they rely on, as
//! `(current)`, `(runtime)`, `(mailbox)`, `(listed)` or `(one runner)`.
//!
//! * **(current)** `Runtime::current` always names a live record: the
//!   running greenlet's, which the root loop holds a handle to while it
//!   runs, or main's or the hub's, which the runtime owns. Only the switch
//!   and the forced unwind write it, and the forced unwind restores it.
//! * **(runtime)** The runtime outlives every call made on its thread: it
//!   lives in a thread-local at a fixed address from first use to the
//!   thread's teardown. Teardown first unwinds every greenlet it can find
//!   (`ShutdownGuard`, before the runtime's own destructor), and a
//!   greenlet whose last handle goes after that is leaked, never resumed
//!   (`unwind_now`). So a `&Runtime` taken by code running on the thread,
//!   greenlet frames included, is valid for as long as that code can run.
//! * **(mailbox)** Every resume of a greenlet (and every return to main) is
//!   preceded by exactly one `Runtime::post`, and the receiver `collect`s
//!   exactly once, first thing; a greenlet resumed to unwind (`dying`)
//!   collects nothing and posts nothing.
//! * **(listed)** Every address in `Runtime::live` names a live record: a
//!   child is listed when it is made and taken off when it dies (the four
//!   places that set `State::Dead`) or, failing that, when its record is
//!   dropped (`Inner`'s destructor), before its memory goes.
//! * **(one runner)** Only the root loop resumes a live greenlet's
//!   coroutine, and never the running one (a switch to the current greenlet
//!   returns early); the one exception is the forced unwind of a greenlet
//!   that is not running (`unwind_now`).
//!
//! # The wait protocol
//!
//! Every hub wait of a greenlet has a number. `begin_wait` increments the
//! record's `wait_seq` to `s`, clears `woken` and hands out a
//! `WaitToken { g, s }`; whatever will end the wait (a wait list, a timer,
//! the reactor, a join link, a remote wake-up) keeps a clone, and the
//! greenlet then `park`s. A token is *current* while
//! `wait_seq == s && !woken`, and only a current token wakes: a wake sets
//! `woken` and queues a ready entry `Ready { g, s, why }`.
//!
//! | the record | `wait_seq`, `woken` | got there by | a wake with token `s` |
//! |---|---|---|---|
//! | running, not waiting | `s`, `true` | the end of wait `s` (`WaitEnd`, also on unwind) | ignored: over |
//! | waiting | `s`, `false` | `begin_wait` | queues `Ready{s}`; sets `woken` |
//! | woken, queued | `s`, `true` | the first wake of `s` | ignored: one entry per wait |
//! | waiting one turn | `s`, `false`, `Ready{s}` queued | `park_one_turn` | queues a second `Ready{s}`, made stale when the turn ends (`wait_seq` moves to `s + 1`) |
//! | killed, or thrown into | `s + 1`, `true`, payload in `pending_throw` | `throw_later` (a kill, an expired scope) | ignored: `Ready{s + 1, THROW}` is queued |
//! | unstarted | `0` (`1` for `spawn_later`), `false` | creation | `Ready{0, START}` is queued by `spawn`; the start timer wakes token 1 |
//!
//! * **Stale entries.** The ready queue drops, unrun, an entry whose number
//!   is not its record's `wait_seq`: the greenlet was woken twice, killed,
//!   or moved on to a newer wait.
//! * **The hub-wait sentinel.** A child that parks suspends with
//!   `mail_target == HUB_WAIT` and posts nothing; the root loop then runs
//!   the scheduler at once, without a handle to the hub.
//! * **The mailbox.** The entry that resumes a greenlet posts its input:
//!   a wake-up (`Wake::Ready`, `TimedOut`, `LoopExit`), the pending throw,
//!   or nothing for a start.
//! * **`NOTIFIED` and `on_lost`** (the wait lists of `sync`). A waiter on a
//!   wait list lives in the parked greenlet's frame and owns its token. A
//!   notifier pops it, marks it `NOTIFIED`, moves the token into the ready
//!   queue (no handle is cloned) and hands it its value in the same step,
//!   so a newcomer cannot overtake it. A greenlet that then unwinds instead
//!   of taking the value (killed or timed out in the same tick) passes it
//!   on through `on_lost`.

use std::cell::{Cell, OnceCell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::greenlet::Greenlet;
use crate::reactor::{Poller, Slab};
use crate::stack::{self, Stack, StackCache};
use crate::timer::Timers;
use crate::value::{Exit, Value};

mod abort;
mod compact;
mod info;
mod park;
mod record;
mod sched;
mod switch;
mod trace;
mod watch;

pub(crate) use abort::UNWINDS;
pub(crate) use park::{
    deliver_kill, link_drop, link_joiner, link_relay, unlink_relay, unlink_stale, QuietEnd,
    Refused, Relay, Relays, ScopeSignal, TimeoutScope, WaitToken,
};
pub(crate) use record::{panic_message, Inner, Kind, LocalSet, Outcome, State};
pub(crate) use switch::{switch_value, throw_into, unwind_now};

pub use info::{GreenletInfo, RunInfo, RunState, Stuck, Waiting};
pub(crate) use sched::IO_COST;
use sched::{ReadyQueue, Timed, TimerEntry};
pub use trace::{TraceEvent, TraceFn, TraceKind};
pub(crate) use watch::{snapshot, unwatch, watch, Beat, Snapshot};

pub(crate) const LOOP_EXIT_MESSAGE: &str = "verdant: LoopExit: this operation would block forever \
     (the hub has no greenlet ready to run, no timer and no IO to wait for)";

/// The per-thread runtime: main and hub records, the running greenlet, the
/// scheduler.
pub(crate) struct Runtime {
    pub(crate) main: Greenlet,
    pub(crate) hub: Greenlet,
    current: Cell<*const Inner>,
    ready: RefCell<ReadyQueue>,
    /// Greenlets woken by their timers: each runs once the entries queued in
    /// `ready` before it have run (FIFO), or at once when it has waited
    /// `SWITCH_INTERVAL` (see `Runtime::fire_timers`).
    timed: RefCell<VecDeque<Timed>>,
    /// Whether `timed` may hold entries: one test on the hot path.
    any_timed: Cell<bool>,
    /// Entries ever pushed to and popped from `ready`: positions in it.
    pushed: Cell<u64>,
    popped: Cell<u64>,
    /// Entries of `ready` that `pop_ready` found stale: `popped` less
    /// these is the turns taken from the ready queue (`Runtime::turns`).
    stale_popped: Cell<u64>,
    /// `turns` when a timed entry last ran ahead of its turn: the next may
    /// only once a ready entry ran since (see `Runtime::pop_ready`).
    promoted_at: Cell<u64>,
    /// Set while timers fire: wake-ups then go to `timed`, woken at this time.
    firing: Cell<Option<Instant>>,
    timers: RefCell<Timers<TimerEntry>>,
    poller: RefCell<Poller>,
    /// Waits that something outside the ready queue and timers will end (IO,
    /// remote wake-ups): while any exist, an idle hub blocks instead of
    /// raising LoopExit.
    external_waits: Cell<usize>,
    /// The live child greenlets, by record address (see `info.rs` and the
    /// invariant (listed)).
    live: RefCell<Vec<*const Inner>>,
    /// The switch-trace hook (`Hub::set_trace`).
    tracer: trace::Tracer,
    /// Which of the root loop's hooks are on (`watch::HOOK_*`): the one
    /// flag it tests per switch.
    hooks: Cell<u8>,
    /// The heartbeat a blocking monitor reads, while one watches this hub.
    beat: RefCell<Option<std::sync::Arc<Beat>>>,
    /// `beat`'s counter, for the switch path; null when `beat` is `None`.
    beat_turns: Cell<*const std::sync::atomic::AtomicU64>,
    /// The reactor's registrations (see [`crate::io`]).
    pub(crate) io: RefCell<Slab<WaitToken>>,
    /// What other threads send this hub (see [`Inbox`]); set once.
    inbox: OnceCell<Rc<dyn Inbox>>,
    ticks: Cell<u32>,
    /// What is left of the running greenlet's cooperative budget (see
    /// `Runtime::spend`); refilled each time the scheduler resumes one.
    budget: Cell<u32>,
    /// The budget each turn starts with (`Hub::set_budget`).
    budget_limit: Cell<u32>,
    /// Turns given up because the budget was spent (`Hub::budget_yields`).
    yields: Cell<u64>,
    /// The switches in the current check interval (at most `event_interval`,
    /// fewer when greenlets' turns are long), and when it began.
    check_every: Cell<u32>,
    last_check: Cell<Instant>,
    event_interval: Cell<u32>,
    /// Seeded scheduling (`Hub::set_schedule_seed`): the state of the
    /// random source that picks among the ready greenlets, and the seed it
    /// started from; 0 and `None` when off.
    sched_rng: Cell<u64>,
    sched_seed: Cell<Option<u64>>,
    /// Virtual time (`Hub::set_clock_advance`): what an idle hub calls
    /// instead of sleeping until its next timer.
    clock_advance: Cell<Option<fn(Duration)>>,
    stack_size: Cell<usize>,
    stacks: RefCell<StackCache>,
    next_id: Cell<u64>,
    pub(super) switches: Cell<u64>,
    shutdown_registered: Cell<bool>,
    shutting_down: Cell<bool>,
    /// The mailbox: the value on its way to the greenlet being switched to.
    /// The sender posts it, the receiver collects it first thing when it is
    /// resumed; the root loop only looks at it on slow paths (see
    /// [`Runtime::post`]).
    mail: UnsafeCell<MaybeUninit<Value>>,
    /// Whether `mail` holds a value: checked in debug builds only.
    #[cfg(debug_assertions)]
    mail_full: Cell<bool>,
    /// The greenlet a suspending child asks the root loop to switch to
    /// (borrowed from the sender's frame; see `switch::suspend`).
    mail_target: Cell<*const Inner>,
    /// A finished greenlet's exit, left by its root for the root loop.
    mail_exit: Cell<Option<Exit>>,
    /// How often the greenlet being dropped now (`unwind_now`, one at a
    /// time) has caught its `GreenletExit` and tried to wait again.
    dying_catches: Cell<u32>,
    /// Idle compaction (see `compact`).
    compact: compact::Compactor,
}

/// What other threads send a hub: the cross-thread channel (see
/// `crate::remote`) installs itself here on first use, so the core needs
/// nothing from the layers above it.
pub(crate) trait Inbox {
    /// Runs what was sent: posts become greenlets, wake-ups wake their
    /// waiters. Called at every check of timers and IO: cheap when nothing
    /// was sent.
    fn drain(&self);
    /// Whether an idle hub must wait for messages instead of reporting
    /// `LoopExit` (a handle to the inbox exists, or a greenlet waits for a
    /// message).
    fn keeps_alive(&self) -> bool;
    /// Takes the greenlets parked for messages (the hub's shutdown unwinds
    /// them).
    fn take_waiters(&self) -> Vec<WaitToken>;
    /// The inbox itself, for its module to reach its own type.
    fn as_any(&self) -> &dyn std::any::Any;
}

thread_local! {
    static RT: Runtime = Runtime::new();
    static SHUTDOWN: ShutdownGuard = const { ShutdownGuard };
    /// `RT`'s address once it is initialised, null before and after its
    /// life: a `const` thread-local read without the lazy-init check.
    static RT_PTR: Cell<*const Runtime> = const { Cell::new(std::ptr::null()) };
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.beat_turns.set(std::ptr::null());
        if let Some(b) = self.beat.get_mut().take() {
            // A monitor never signals a thread whose runtime is gone.
            *b.alive.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
        RT_PTR.with(|p| p.set(std::ptr::null()));
    }
}

/// Its destructor runs before `RT`'s (registered later, destroyed first), so
/// suspended greenlets are unwound while the runtime is still reachable.
struct ShutdownGuard;

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let _ = RT.try_with(|rt| rt.shutdown());
    }
}

/// `VERDANT_SEED`, read once per process: the schedule seed every hub
/// starts with (see `Hub::set_schedule_seed`).
fn env_seed() -> Option<u64> {
    static SEED: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::env::var("VERDANT_SEED").ok()?.trim().parse().ok())
}

/// Makes this thread's runtime (on first use) and runs `f` with it.
///
/// # Panics
///
/// Panics if called while the thread's runtime is being destroyed.
#[cold]
fn with_rt_slow<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    RT.with(|rt| {
        if !rt.shutdown_registered.get() {
            rt.shutdown_registered.set(true);
            SHUTDOWN.with(|_| {});
            RT_PTR.with(|p| p.set(rt as *const Runtime));
            if let Some(seed) = env_seed() {
                rt.set_schedule_seed(Some(seed));
            }
        }
        f(rt)
    })
}

/// This thread's runtime, made on first use: the one way to reach it.
///
/// `'static` by invariant (runtime): the reference stays valid on this
/// thread for as long as any code that holds it can run, greenlet frames
/// included, so it may be kept across switches. It cannot leave the thread
/// (`Runtime` is `!Sync`); the one rule for the crate's code is not to
/// store it where the thread's teardown could reach it after the runtime
/// is gone (a `static`, or another thread-local's value).
///
/// # Panics
///
/// Panics if called while the thread's runtime is being destroyed (from
/// another thread-local's destructor).
#[inline(always)]
pub(crate) fn rt() -> &'static Runtime {
    let p = RT_PTR.with(|p| p.get());
    if p.is_null() {
        return rt_slow();
    }
    // SAFETY: (runtime) RT_PTR is non-null only between RT's initialisation
    // and the start of its destructor, and the runtime outlives every call
    // made on its thread.
    unsafe { &*p }
}

#[cold]
#[inline(never)]
fn rt_slow() -> &'static Runtime {
    let p = with_rt_slow(|rt| rt as *const Runtime);
    // SAFETY: (runtime) as in `rt`: `with_rt_slow` has just published the
    // address.
    unsafe { &*p }
}

/// For the overflow handler: the fault record of the greenlet running on
/// this thread, or null on the thread's own stack (main, the hub, or no
/// runtime). Async-signal-safe: it reads two cells and initialises nothing
/// (`RT_PTR` is `const`-initialised and has no destructor).
fn current_fault_info() -> *const crate::fault::FaultInfo {
    match signal_current() {
        Some(cur) if cur.kind == Kind::Child => cur.fault_ptr(),
        _ => std::ptr::null(),
    }
}

/// The running greenlet's record, for a signal handler on this thread
/// (the overflow handler, the monitor's sampler): async-signal-safe, as
/// [`current_fault_info`] says. `None` when the thread has no runtime.
fn signal_current() -> Option<&'static Inner> {
    let rt = RT_PTR.with(|p| p.get());
    if rt.is_null() {
        return None;
    }
    // The interrupted code cannot be half-way through storing the pointer
    // (an aligned word).
    // SAFETY: (runtime) RT_PTR is non-null only while RT lives, and
    // (current) `current` always names a live record.
    Some(unsafe { &*(*rt).current.get() })
}

/// For the panic hook: the running greenlet's name and id, or `None` on
/// main (or with no runtime).
fn running_greenlet() -> Option<(std::borrow::Cow<'static, str>, u64)> {
    try_rt(|rt| {
        let cur = rt.current_record();
        (cur.kind() != Kind::Main).then(|| (cur.display_name(), cur.id()))
    })
    .flatten()
}

/// This thread's runtime if it has one now; never makes one. For code
/// that foreign callers reach (the patched libc functions): a thread that
/// has never used verdant has no hub to cooperate with.
#[inline(always)]
pub(crate) fn existing_rt() -> Option<&'static Runtime> {
    let p = RT_PTR.try_with(|p| p.get()).ok()?;
    // SAFETY: (runtime) as in `rt`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Runs `f` with this thread's runtime, like [`rt`], or returns `None`
/// during the thread's teardown.
pub(crate) fn try_rt<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    let p = RT_PTR.with(|p| p.get());
    if !p.is_null() {
        // SAFETY: (runtime) as in `rt`.
        return Some(f(unsafe { &*p }));
    }
    RT.try_with(f).ok()
}

impl Runtime {
    fn new() -> Runtime {
        if let Err(e) = crate::fault::init_thread(current_fault_info) {
            eprintln!(
                "verdant: a stack overflow on this thread will be a plain SIGSEGV \
                 (its handler could not be set up: {e})"
            );
        }
        crate::panic::install_hook(running_greenlet);
        let (main, hub) = switch::new_root_records();
        let current = Cell::new(Rc::as_ptr(&main.inner));
        Runtime {
            main,
            hub,
            current,
            ready: RefCell::new(ReadyQueue::default()),
            timed: RefCell::new(VecDeque::new()),
            any_timed: Cell::new(false),
            pushed: Cell::new(0),
            popped: Cell::new(0),
            stale_popped: Cell::new(0),
            promoted_at: Cell::new(0),
            firing: Cell::new(None),
            timers: RefCell::new(Timers::default()),
            poller: RefCell::new(Poller::default()),
            external_waits: Cell::new(0),
            io: RefCell::new(Slab::default()),
            live: RefCell::new(Vec::new()),
            tracer: trace::Tracer::default(),
            hooks: Cell::new(0),
            beat: RefCell::new(None),
            beat_turns: Cell::new(std::ptr::null()),
            inbox: OnceCell::new(),
            ticks: Cell::new(0),
            budget: Cell::new(sched::BUDGET),
            budget_limit: Cell::new(sched::BUDGET),
            yields: Cell::new(0),
            check_every: Cell::new(sched::DEFAULT_EVENT_INTERVAL),
            sched_rng: Cell::new(0),
            sched_seed: Cell::new(None),
            clock_advance: Cell::new(None),
            last_check: Cell::new(Instant::now()),
            event_interval: Cell::new(sched::DEFAULT_EVENT_INTERVAL),
            stack_size: Cell::new(stack::DEFAULT_STACK_SIZE),
            stacks: RefCell::new(StackCache::new()),
            next_id: Cell::new(2),
            switches: Cell::new(0),
            shutdown_registered: Cell::new(false),
            shutting_down: Cell::new(false),
            mail: UnsafeCell::new(MaybeUninit::uninit()),
            #[cfg(debug_assertions)]
            mail_full: Cell::new(false),
            mail_target: Cell::new(std::ptr::null()),
            mail_exit: Cell::new(None),
            dying_catches: Cell::new(0),
            compact: compact::Compactor::new(),
        }
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    fn default_stack_size(&self) -> usize {
        self.stack_size.get()
    }

    /// A free stack already in memory, if the pool has one.
    #[inline]
    fn take_resident_stack(&self, usable: usize) -> Option<Stack> {
        self.stacks.borrow_mut().take_resident(usable)
    }

    /// A stack that holds no memory yet (see `StackCache::reserve`), and
    /// whether the greenlet it is for should start on it only if no
    /// resident stack is free by then: when more greenlets wait to run
    /// than the cache keeps stacks for (see `switch::create`).
    fn reserve_stack(&self, usable: usize) -> io::Result<(Stack, bool)> {
        let mut stacks = self.stacks.borrow_mut();
        let defer = self.ready_len() >= stacks.capacity();
        let stack = stacks.reserve(usable)?;
        if !defer {
            // Run on from now (its first frame is written at once).
            if let Err(e) = stacks.arm(&stack) {
                stacks.unreserve(stack);
                return Err(e);
            }
        }
        Ok((stack, defer))
    }

    /// Readies the stack reserved for a greenlet whose start was deferred,
    /// as it is about to run on it (see `StackCache::arm`).
    ///
    /// The reservation made the address space sure at the spawn; what can
    /// still fail here is memory for the kernel's page tables, as the
    /// greenlet's first frame can fault for memory. As when an allocation
    /// fails, the process cannot go on: it aborts with the reason.
    fn arm_reserved_stack(&self, stack: &Stack) {
        if let Err(e) = self.stacks.borrow_mut().arm(stack) {
            eprintln!("verdant: cannot install the guard pages of a greenlet's stack: {e}");
            std::process::abort();
        }
    }

    fn recycle_stack(&self, stack: Stack, low_water: usize) {
        if !self.shutting_down.get() {
            self.stacks.borrow_mut().put(stack, low_water);
        }
    }

    /// Releases the memory of the stacks waiting for it (see `StackCache`).
    fn release_stacks(&self) {
        let mut stacks = self.stacks.borrow_mut();
        if stacks.has_dirty() {
            stacks.release();
        }
    }

    /// This hub's inbox for other threads, once one was installed.
    pub(crate) fn inbox(&self) -> Option<&Rc<dyn Inbox>> {
        self.inbox.get()
    }

    /// Installs this hub's inbox; returns the one installed (the first,
    /// if one already was).
    pub(crate) fn install_inbox(&self, inbox: Rc<dyn Inbox>) -> &Rc<dyn Inbox> {
        self.inbox.get_or_init(|| inbox)
    }

    fn drain_inbox(&self) {
        if let Some(inbox) = self.inbox() {
            inbox.drain();
        }
    }

    fn inbox_keeps_alive(&self) -> bool {
        self.inbox().is_some_and(|i| i.keeps_alive())
    }

    /// Unwinds what is left at thread exit: greenlets still queued, timed or
    /// waiting for IO, then those switched out or never started (raw
    /// greenlets held by cycles).
    ///
    /// Each greenlet found queued or timed is unwound explicitly (not by
    /// dropping handles: a greenlet can be kept alive by a cycle, such as a
    /// joiner that holds its own wait token through the join's state). The
    /// joiners their completion wakes land in the ready queue and are
    /// unwound in the next round.
    fn shutdown(&self) {
        self.shutting_down.set(true);
        // The trace function may hold anything; drop it while the runtime
        // is still reachable.
        drop(self.set_trace(None));
        for _ in 0..64 {
            let mut ready = self.ready.borrow_mut().drain();
            self.popped.set(self.pushed.get());
            ready.extend(self.timed.borrow_mut().drain(..).map(|t| t.entry));
            let timers = self.timers.borrow_mut().drain();
            let mut io_waiters = self.io.borrow_mut().take_waiters();
            if let Some(inbox) = self.inbox() {
                io_waiters.extend(inbox.take_waiters());
            }
            let mut found: Vec<Greenlet> = ready
                .iter()
                .map(|r| r.g.clone())
                .chain(timers.iter().map(|t| t.greenlet().clone()))
                .chain(io_waiters.iter().map(|t| t.g.clone()))
                .collect();
            drop(ready);
            drop(timers);
            drop(io_waiters);
            if found.is_empty() {
                // Nothing queued, timed or waiting for IO. What is left is
                // switched out or never started: raw greenlets that nothing
                // will switch to again, kept alive by a handle to themselves
                // on their own stacks (the cycles that `Greenlet`'s docs say
                // last until here), and waiters of primitives kept alive
                // the same way.
                found = self.live_greenlets(|r| {
                    r.kind == Kind::Child
                        && matches!(r.state.get(), State::Suspended | State::Unstarted)
                });
                if found.is_empty() {
                    break;
                }
            }
            for g in &found {
                unwind_now(g);
            }
        }
    }
}

/// Unwinds every greenlet of this thread's hub (their destructors run, as
/// for a kill) and returns how many there were: for the end of a hub
/// thread's work, where the thread's own teardown would unwind them
/// silently. Called from the thread's main code.
pub(crate) fn unwind_all() -> usize {
    let rt = rt();
    debug_assert!(
        rt.current_record().kind == Kind::Main,
        "unwind_all from main"
    );
    let mut n = 0;
    // Unwinding one may wake or spawn others (its destructors run): go
    // round until none is left, as the thread's teardown does.
    for _ in 0..64 {
        let found = rt.live_greenlets(|_| true);
        if found.is_empty() {
            break;
        }
        for g in &found {
            if !g.is_dead() {
                n += 1;
                unwind_now(g);
            }
        }
    }
    n
}

/// The running greenlet's id.
pub(crate) fn current_id() -> u64 {
    rt().current_id()
}

/// A handle to the running greenlet.
pub(crate) fn current() -> Greenlet {
    rt().current()
}

/// Whether `g` is the running greenlet.
pub(crate) fn is_current(g: &Greenlet) -> bool {
    std::ptr::eq(rt().current_ptr(), g.as_ptr())
}

/// The greenlets a `LoopExit` just delivered to the running greenlet
/// leaves stuck.
pub(crate) fn stuck() -> Stuck {
    rt().stuck()
}

/// The running greenlet's name.
pub(crate) fn current_name() -> std::borrow::Cow<'static, str> {
    rt().current_record().display_name()
}

/// Lends the running greenlet's locals out (put them back with
/// [`put_locals`]).
pub(crate) fn take_locals() -> Option<Box<LocalSet>> {
    rt().current_record().locals.take()
}

/// Gives the running greenlet's locals back.
pub(crate) fn put_locals(set: Box<LocalSet>) {
    rt().current_record().locals.put(set)
}

/// Makes a greenlet that runs `f` when first switched to, with the running
/// greenlet as its parent (`Greenlet::new`).
///
/// # Errors
///
/// As `stack::round_size` and the stack cache report.
pub(crate) fn create<F>(
    stack_size: Option<usize>,
    site: &'static std::panic::Location<'static>,
    f: F,
) -> io::Result<Greenlet>
where
    F: FnOnce(Value) -> Value + 'static,
{
    let rt = rt();
    switch::create(rt, rt.current(), stack_size, None, false, site, f)
}

/// Makes a task: a greenlet whose parent is the hub and whose exit is kept
/// for its `JoinHandle`; it starts on the next turn of the ready queue, or
/// at `start_at` (then the start timer's key is returned, to cancel it).
///
/// # Errors
///
/// As for [`create`].
pub(crate) fn spawn_task<F>(
    stack_size: Option<usize>,
    name: Option<std::borrow::Cow<'static, str>>,
    start_at: Option<Instant>,
    site: &'static std::panic::Location<'static>,
    f: F,
) -> io::Result<(Greenlet, Option<crate::timer::TimerKey>)>
where
    F: FnOnce() -> Value + 'static,
{
    let rt = rt();
    let g = switch::create(
        rt,
        rt.hub.clone(),
        stack_size,
        name,
        true,
        site,
        move |_| f(),
    )?;
    let key = match start_at {
        None => {
            rt.schedule_start(g.clone());
            None
        }
        Some(at) => Some(rt.schedule_start_at(g.clone(), at)),
    };
    Ok((g, key))
}

/// Cancels a timer armed by the core (a `spawn_later` start).
pub(crate) fn cancel_timer(key: &crate::timer::TimerKey) {
    rt().cancel_timer(key)
}

/// A handle to this thread's hub, for settings and statistics.
///
/// The hub is one event loop per OS thread, made on first use and never
/// moved. It keeps a FIFO ready queue, a timer queue, a cache of stacks and
/// a mio poll, the one place its thread blocks. A greenlet that waits (in
/// [`sleep`](crate::sleep), [`JoinHandle::join`](crate::JoinHandle::join),
/// IO…) parks: it registers a wake-up and switches to the hub, which runs
/// the next ready greenlet, fires due timers and polls IO.
///
/// * **Fair to IO and timers.** Timers and IO are checked at least every
///   [`event_interval`](Hub::set_event_interval) switches, and about every
///   millisecond of greenlets' work, even while greenlets are always ready.
///   A greenlet woken by its timer queues behind those already ready, but
///   for at most 1 ms; late timers then take every other turn.
/// * **A turn has a budget.** A greenlet whose socket, channel or queue
///   operations (or joins of finished greenlets) keep completing without
///   a wait gives up its turn after 16 socket calls or 128 channel and
///   queue operations or joins, like tokio's cooperative budget, so that a
///   bulk transfer cannot hold the hub while timers come due and other
///   sockets become ready
///   ([`budget_yields`](Hub::budget_yields) counts those yields). What
///   stays unfair is a loop with no such operation at all (pure
///   computation, or a blocking call of another library): it holds the
///   hub until it returns or calls [`yield_now`](crate::yield_now). The
///   opt-in [blocking monitor](crate::monitor::Monitor) reports such a
///   stall with the greenlet's name, spawn site and a backtrace.
/// * **You can look inside.** [`run_info`](Hub::run_info) lists every
///   live greenlet and what it waits for; a `LoopExit` names the greenlets
///   it leaves stuck; [`set_trace`](Hub::set_trace) sees every switch.
/// * **Deadlocks are errors.** When the greenlet waiting on the thread's
///   own stack (main) can never be woken because nothing is ready, timed or
///   watched, the wait fails with `LoopExit` instead of hanging (gevent's
///   `LoopExit`).
/// * **Cold stacks are prefetched.** When the greenlet whose turn comes
///   next parked long ago (its stack has left the caches), its stack lines
///   are loaded while the current greenlet runs.
///
/// # Examples
///
/// ```
/// use verdant_runtime::Hub;
/// let hub = Hub::current();
/// hub.set_stack_size(128 * 1024).unwrap();
/// assert_eq!(hub.stack_size(), 128 * 1024);
/// ```
#[derive(Clone)]
pub struct Hub {
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rt = rt();
        f.debug_struct("Hub")
            .field("ready", &rt.ready_len())
            .field("timers", &rt.timers.borrow().len())
            .field("cached_stacks", &rt.stacks.borrow().len())
            .finish()
    }
}

impl Hub {
    /// Default for [`Hub::set_event_interval`]: IO and timers are checked at
    /// least every this many switches, even when greenlets are always
    /// ready.
    pub const DEFAULT_EVENT_INTERVAL: u32 = sched::DEFAULT_EVENT_INTERVAL;

    /// This thread's hub (created on first use).
    ///
    /// # Examples
    ///
    /// ```
    /// let _hub = verdant_runtime::Hub::current();
    /// ```
    pub fn current() -> Hub {
        rt();
        Hub {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The hub's greenlet: the parent of every spawned greenlet.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Hub::current().greenlet().is_hub());
    /// ```
    pub fn greenlet(&self) -> Greenlet {
        rt().hub.clone()
    }

    /// Default usable stack size of new greenlets on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Hub::current().stack_size() >= verdant_runtime::stack::MIN_STACK_SIZE);
    /// ```
    pub fn stack_size(&self) -> usize {
        rt().stack_size.get()
    }

    /// Sets the default usable stack size (rounded up to whole pages and to
    /// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE)).
    ///
    /// # Errors
    ///
    /// `InvalidInput` above [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Hub::current().set_stack_size(usize::MAX).is_err());
    /// ```
    pub fn set_stack_size(&self, size: usize) -> io::Result<()> {
        let size = stack::round_size(size)?;
        rt().stack_size.set(size);
        Ok(())
    }

    /// Sets how many switches may pass between two checks of timers and IO
    /// while greenlets are always ready (default [`Hub::DEFAULT_EVENT_INTERVAL`]).
    /// Lower values favour IO latency, higher ones switch throughput. The
    /// new interval applies from the next switch. It is a maximum: when
    /// greenlets' turns are long the hub checks after fewer switches, about
    /// once per millisecond of their work.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// verdant_runtime::Hub::current().set_event_interval(31);
    /// ```
    pub fn set_event_interval(&self, n: u32) {
        assert!(n > 0, "verdant: the event interval must be at least 1");
        let rt = rt();
        rt.event_interval.set(n);
        // Restart the countdown, so a shorter interval is not delayed by
        // what is left of the longer one.
        rt.ticks.set(rt.ticks.get().min(n));
    }

    /// Seeded scheduling, for tests (Go's `synctest`, tokio's loom and
    /// turmoil have the same aim): with `Some(seed)`, each time the hub
    /// picks the next greenlet to run it takes one of the ready greenlets at
    /// random, drawn from `seed`, instead of the oldest, and timers with
    /// equal deadlines fire in a seeded order instead of the order they
    /// were set. The same seed makes the same choices, so a schedule that
    /// broke a test replays exactly, as long as the test's own events (IO,
    /// the clock) come in the same order. `None` (the default) restores
    /// first-in, first-out.
    ///
    /// A hub reads the environment variable `VERDANT_SEED` when it starts
    /// (a decimal `u64`): set it to replay a seed a test printed.
    ///
    /// Seeded, the hub checks timers and IO at every switch (the fast path
    /// of the scheduler is off): slower, and meant for tests.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use verdant_runtime::{joinall, spawn, yield_now, Hub};
    ///
    /// fn order(seed: Option<u64>) -> Vec<u32> {
    ///     Hub::current().set_schedule_seed(seed);
    ///     let log = Rc::new(RefCell::new(Vec::new()));
    ///     let hs: Vec<_> = (0..4)
    ///         .map(|i| {
    ///             let log = log.clone();
    ///             spawn(move || for _ in 0..3 { log.borrow_mut().push(i); yield_now(); })
    ///         })
    ///         .collect();
    ///     joinall(&hs).unwrap();
    ///     Hub::current().set_schedule_seed(None);
    ///     let v = log.borrow().clone();
    ///     v
    /// }
    /// assert_eq!(order(None), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]); // round robin
    /// assert_eq!(order(Some(42)), order(Some(42))); // replays
    /// ```
    pub fn set_schedule_seed(&self, seed: Option<u64>) {
        rt().set_schedule_seed(seed);
    }

    /// Virtual time, for tests (tokio's `time::pause` with auto-advance and
    /// Go's `synctest` bubbles have the same aim): with `Some(advance)`,
    /// when this hub is idle — no greenlet ready, an IO poll finds nothing,
    /// no wake-up awaited from another thread (no [`Remote`](crate::Remote)
    /// handle alive, no [`spawn_blocking`](crate::spawn_blocking) job in
    /// flight) — and its next timer is `d` away, it calls `advance(d)`
    /// instead of sleeping for `d`. A test that runs timeouts of seconds
    /// then takes microseconds, and the timers fire in the same order as in
    /// real time.
    ///
    /// verdant does not own the clock (deadlines are
    /// [`std::time::Instant`]s), so `advance` must move it: after
    /// `advance(d)` returns, `Instant::now()` on this thread must read at
    /// least `d` later. A test harness does this by defining the C library's
    /// `clock_gettime` and adding an offset that `advance` increases (the
    /// suite's seeded runs do). If `advance` leaves the clock behind, the
    /// hub sleeps for what is left, as without it. `None` (the default):
    /// an idle hub sleeps.
    ///
    /// The world must be closed for virtual time to be right: data that
    /// another thread or process sends after a real delay reaches a hub
    /// whose timers have already jumped ahead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use verdant_runtime::{sleep, Hub};
    ///
    /// static ASKED_NS: AtomicU64 = AtomicU64::new(0);
    /// fn advance(d: Duration) {
    ///     ASKED_NS.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    ///     std::thread::sleep(d); // a real clock: move it by waiting
    /// }
    /// Hub::current().set_clock_advance(Some(advance));
    /// sleep(Duration::from_millis(20));
    /// Hub::current().set_clock_advance(None);
    /// // The idle hub asked to skip the sleep rather than block in its poll.
    /// assert!(ASKED_NS.load(Ordering::Relaxed) >= 15_000_000);
    /// ```
    pub fn set_clock_advance(&self, advance: Option<fn(Duration)>) {
        rt().clock_advance.set(advance);
    }

    /// The function an idle hub calls to skip time, if virtual time is on
    /// (see [`set_clock_advance`](Self::set_clock_advance)): a test that
    /// starts a thread of its own passes it on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::Hub;
    ///
    /// fn advance(d: Duration) { std::thread::sleep(d) }
    /// assert!(Hub::current().clock_advance().is_none());
    /// Hub::current().set_clock_advance(Some(advance));
    /// let inherited = Hub::current().clock_advance();
    /// std::thread::spawn(move || Hub::current().set_clock_advance(inherited)).join().unwrap();
    /// Hub::current().set_clock_advance(None);
    /// ```
    pub fn clock_advance(&self) -> Option<fn(Duration)> {
        rt().clock_advance.get()
    }

    /// The seed of seeded scheduling, if on (see
    /// [`set_schedule_seed`](Self::set_schedule_seed)).
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// hub.set_schedule_seed(Some(7));
    /// assert_eq!(hub.schedule_seed(), Some(7));
    /// hub.set_schedule_seed(None);
    /// ```
    pub fn schedule_seed(&self) -> Option<u64> {
        rt().sched_seed.get()
    }

    /// Sets how many free stacks the hub keeps for reuse (default
    /// [`DEFAULT_STACK_CACHE`](crate::stack::DEFAULT_STACK_CACHE)). Extra
    /// ones give their memory back at once, and every stack mapping left
    /// without a stack in use is unmapped (see [`stack_stats`](Self::stack_stats)).
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// hub.set_stack_cache_capacity(0);
    /// assert_eq!(hub.cached_stacks(), 0);
    /// ```
    pub fn set_stack_cache_capacity(&self, n: usize) {
        rt().stacks.borrow_mut().set_capacity(n);
    }

    /// What this hub's stack pool holds: the cache, the stacks whose memory
    /// is about to be released, the released ones kept for reuse, and the
    /// mappings they are all carved from.
    ///
    /// Finished greenlets' stacks go to the cache (up to
    /// [`set_stack_cache_capacity`](Self::set_stack_cache_capacity)); past
    /// it, their memory goes back to the kernel in batches, and at the
    /// latest when the hub next waits for timers or IO.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{spawn, joinall, sleep, yield_now, Hub};
    /// let hub = Hub::current();
    /// hub.set_stack_cache_capacity(2);
    /// // Ten alive at once (each yields once): ten stacks in use.
    /// let hs: Vec<_> = (0..10).map(|_| spawn(yield_now)).collect();
    /// joinall(&hs).unwrap();
    /// assert_eq!(hub.stack_stats().cached, 2);
    /// sleep(std::time::Duration::from_millis(1)); // the hub waits: released
    /// let stats = hub.stack_stats();
    /// assert_eq!(stats.pending, 0);
    /// assert!(stats.released >= 8);
    /// assert!(stats.slabs >= 1 && stats.reserved > 0);
    /// ```
    pub fn stack_stats(&self) -> crate::stack::StackStats {
        let rt = rt();
        let mut stats = rt.stacks.borrow().stats();
        (stats.compacted, stats.compacted_bytes) = rt.compacted();
        stats
    }

    /// Turns idle compaction on for this thread's hub (`Some(period)`) or
    /// off (`None`, the default). A greenlet that has waited in a
    /// [`sleep`](crate::sleep) or for IO for about `period` (between one
    /// and two) is *compacted*: its live frames (about a KiB for a
    /// connection's read loop) are copied to a buffer and its stack's
    /// memory is given back to the kernel, until the greenlet runs again,
    /// when they are copied back to the same addresses.
    ///
    /// An idle connection then costs well under half of what it does with
    /// its stack page resident (10,000 idle echo connections: 1.7 KiB each
    /// instead of 4.5); its next wake-up pays for the copy and for the page
    /// it faults in again (1.4 to 1.9 µs on the machine of the README's
    /// figures), once per idle period. Greenlets waiting on anything else
    /// (a lock, an event, a queue, a join) keep their stacks: those waits
    /// keep a list node on the waiting greenlet's stack. The hub looks for
    /// idle greenlets a few hundred at a time, a step a millisecond at
    /// most; [`stack_stats`](Self::stack_stats) counts the compacted ones.
    ///
    /// The first time a greenlet is due for compaction in a process, a
    /// greenlet named `verdant-compaction-probe` runs for three turns: it
    /// measures how far below its stack pointer a switch writes, which the
    /// compaction keeps. It shows in [`run_info`](Self::run_info) while it
    /// lives.
    ///
    /// It stays off, whatever is set, under valgrind and AddressSanitizer
    /// (which cannot tell a copied frame from a stray read) and on other
    /// architectures than x86-64: check with
    /// [`idle_compaction`](Self::idle_compaction).
    ///
    /// # Safety
    ///
    /// While it is on, no greenlet of this hub may let another thread (or
    /// a signal handler) use memory on its stack while it waits in a sleep
    /// or for IO: that memory is copied away, released and written back
    /// meanwhile. Safe code can do so: a greenlet that starts a
    /// [`std::thread::scope`] thread borrowing one of its locals and then
    /// sleeps, or waits on a socket, before the scope ends. Turn it on for
    /// hubs whose greenlets never lend their stacks to threads (no scoped
    /// threads, no rayon or crossbeam scopes around a wait): a typical
    /// server's connection handlers. Other greenlets of the same thread
    /// cannot reach a greenlet's stack without `unsafe` (greenlets are
    /// `'static`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::{sleep, spawn, Hub};
    ///
    /// let hub = Hub::current();
    /// assert_eq!(hub.idle_compaction(), None); // off by default
    /// // SAFETY: no greenlet here lends its stack to another thread.
    /// unsafe { hub.set_idle_compaction(Some(Duration::from_millis(5))) };
    /// let h = spawn(|| {
    ///     let frames = [7u8; 512]; // on this greenlet's stack
    ///     sleep(Duration::from_millis(100));
    ///     frames.iter().map(|&b| u32::from(b)).sum::<u32>()
    /// });
    /// assert_eq!(h.join().unwrap(), 7 * 512); // intact, compacted or not
    /// // SAFETY: turning it off is always sound.
    /// unsafe { hub.set_idle_compaction(None) };
    /// ```
    pub unsafe fn set_idle_compaction(&self, period: Option<Duration>) {
        rt().compact_set_period(period);
    }

    /// The period of idle compaction, `None` when it is off (see
    /// [`set_idle_compaction`](Self::set_idle_compaction)).
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// assert_eq!(hub.idle_compaction(), None);
    /// ```
    pub fn idle_compaction(&self) -> Option<Duration> {
        rt().compact.period()
    }

    /// Free stacks now held for reuse.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// verdant_runtime::spawn(|| ()).join().unwrap();
    /// assert!(hub.cached_stacks() >= 1);
    /// ```
    pub fn cached_stacks(&self) -> usize {
        rt().stacks.borrow().len()
    }

    /// Timers now pending (sleeps, timeouts, delayed spawns).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Hub::current().timer_count(), 0);
    /// ```
    pub fn timer_count(&self) -> usize {
        rt().timers.borrow().len()
    }

    /// Entries now in the ready queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let _h = verdant_runtime::spawn(|| ());
    /// assert_eq!(verdant_runtime::Hub::current().ready_count(), 1);
    /// ```
    pub fn ready_count(&self) -> usize {
        rt().ready_len()
    }

    /// File descriptors now registered with this hub's reactor (see
    /// [`crate::io::Registration`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Hub::current().io_registrations(), 0);
    /// ```
    pub fn io_registrations(&self) -> usize {
        rt().io.borrow().len()
    }

    /// How many times the hub has resumed a greenlet so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// let before = hub.switch_count();
    /// verdant_runtime::sleep(std::time::Duration::ZERO);
    /// assert!(hub.switch_count() > before);
    /// ```
    pub fn switch_count(&self) -> u64 {
        rt().switches.get()
    }

    /// How many times a greenlet gave up its turn because it had spent its
    /// cooperative budget: its socket, channel or queue operations (or
    /// joins of finished greenlets) kept completing without a wait (16
    /// socket calls or 128 channel and queue operations or joins in one
    /// turn). A count that grows fast means greenlets that would otherwise
    /// have held the hub.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{sync::channel, Hub};
    /// let hub = Hub::current();
    /// let before = hub.budget_yields();
    /// let (tx, rx) = channel::unbounded();
    /// for i in 0..1000 {
    ///     tx.send(i).unwrap(); // never waits: the budget runs out
    /// }
    /// assert!(hub.budget_yields() > before);
    /// assert_eq!(rx.try_iter().count(), 1000);
    /// ```
    pub fn budget_yields(&self) -> u64 {
        rt().yields.get()
    }

    /// Default for [`Hub::set_budget`]: 128 units per turn, where a socket
    /// call costs 8 and a channel or queue operation or a join 1.
    pub const DEFAULT_BUDGET: u32 = sched::BUDGET;

    /// Sets the cooperative budget a greenlet's turn starts with, in units
    /// (a socket call costs 8, a channel or queue operation or a join of a
    /// finished greenlet 1; default [`Hub::DEFAULT_BUDGET`]), from now on;
    /// `None` turns it off (tokio's `unconstrained`): operations that
    /// complete without a wait then never yield. For measurements, and for a thread whose
    /// greenlets must run in long turns; off, a bulk transfer can hold the
    /// hub while timers come due.
    ///
    /// # Panics
    ///
    /// Panics on `Some(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{sync::channel, Hub};
    /// let hub = Hub::current();
    /// hub.set_budget(None);
    /// let before = hub.budget_yields();
    /// let (tx, rx) = channel::unbounded();
    /// for i in 0..1000 {
    ///     tx.send(i).unwrap();
    /// }
    /// assert_eq!(hub.budget_yields(), before); // never gave up its turn
    /// hub.set_budget(Some(Hub::DEFAULT_BUDGET));
    /// # drop(rx);
    /// ```
    pub fn set_budget(&self, units: Option<u32>) {
        assert!(
            units != Some(0),
            "verdant: a budget must be at least 1 unit"
        );
        let rt = rt();
        let limit = units.unwrap_or(u32::MAX);
        rt.budget_limit.set(limit);
        rt.budget.set(limit); // the running turn too
    }

    /// The live greenlets of this hub and what each is doing: id, name,
    /// state (running, ready, or waiting for what: a socket and direction,
    /// a timer, an event, a join…), deadline, spawn site, age and the
    /// deepest its stack has been used. Print it (`Display`, one line per
    /// greenlet, like gevent's `format_run_info`) to see why a program
    /// hangs or what a server is doing; see also
    /// [`dump_on_signal`](crate::monitor::dump_on_signal).
    ///
    /// Reading each stack's high-water mark costs a system call per
    /// greenlet (`mincore`) and a scan of its pages in use: fine on demand,
    /// not for a hot loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Hub, RunState};
    /// let h = Builder::new().name("worker").spawn(|| ()).unwrap();
    /// let info = Hub::current().run_info();
    /// let g = &info.greenlets()[0];
    /// assert_eq!((g.id, g.name.as_str(), g.state), (h.id(), "worker", RunState::Ready));
    /// assert!(g.spawned_at.file().ends_with(".rs"));
    /// println!("{info}");
    /// ```
    pub fn run_info(&self) -> RunInfo {
        rt().run_info()
    }

    /// Sets a function called at every switch between greenlets of this
    /// thread, with its origin, its target and whether it is a throw
    /// (greenlet's `settrace`); `None` removes it. Returns the function it
    /// replaces. For logging, profiling and tests of scheduling order.
    ///
    /// The root loop calls it just before the target runs. A hub wait
    /// shows as one switch, from the greenlet that waits to the one the
    /// hub runs next: the scheduler runs between them without a greenlet
    /// of its own. A panic in the function removes it (and is reported on
    /// stderr); the switch goes on. With no function set the hook costs a
    /// test of one flag per switch.
    ///
    /// The function must not switch or wait: it runs inside the switch,
    /// where a `sleep`, `join`, IO wait or raw switch returns at once
    /// without switching, as in a destructor (see the Caveats of
    /// [`Greenlet`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use verdant_runtime::{spawn, Hub, TraceKind};
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let s = seen.clone();
    /// let hub = Hub::current();
    /// hub.set_trace(Some(Box::new(move |e| {
    ///     s.borrow_mut().push((e.origin.name(), e.target.name(), e.kind));
    /// })));
    /// let h = verdant_runtime::Builder::new().name("child").spawn(|| ()).unwrap();
    /// h.join().unwrap();
    /// hub.set_trace(None);
    /// let seen = seen.borrow();
    /// assert_eq!(seen[0], ("main".into(), "child".into(), TraceKind::Switch));
    /// assert_eq!(seen[1], ("child".into(), "main".into(), TraceKind::Switch));
    /// ```
    pub fn set_trace(&self, f: Option<TraceFn>) -> Option<TraceFn> {
        trace::set(f)
    }
}
