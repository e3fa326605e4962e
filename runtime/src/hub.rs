//! The hub: one event loop per OS thread, switching greenlets on waits.
//!
//! The hub is created on first use in each thread and never moves. It keeps
//! a FIFO ready queue, a timer queue, a pool of stacks, and a mio [`Poll`],
//! the one place its thread blocks. A greenlet that waits (in [`sleep`],
//! [`JoinHandle::join`], IO…) parks: it registers a wake-up and switches to
//! the hub, which runs the next ready greenlet, fires due timers, and polls IO.
//!
//! ```text
//!  next ready greenlet ──► resume it ──► it parks / yields / dies
//!        ▲                                        │
//!        └── every `event_interval` ticks, and whenever nothing is ready:
//!            fire due timers, poll IO (blocking only when nothing is ready)
//! ```
//!
//! The queue also hides memory latency: when the greenlet whose turn comes
//! next parked long ago (its stack has left the caches), its stack lines
//! are prefetched while the current greenlet runs (see
//! `Inner::prefetch_if_cold` in `greenlet.rs` for the figures).
//!
//! When the greenlet waiting on the root (main) can never be woken because
//! nothing is ready, timed or watched, the wait fails with
//! [`JoinErrorKind::LoopExit`](crate::JoinErrorKind::LoopExit) instead of
//! hanging: gevent's `LoopExit`.
//!
//! [`sleep`]: crate::sleep
//! [`JoinHandle::join`]: crate::JoinHandle::join
//! [`Poll`]: mio::Poll

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::greenlet::{self, Greenlet, Inner};
use crate::reactor::{Poller, Slab};
use crate::stack::{self, Stack, StackPool};
use crate::timer::{TimerGuard, TimerKey, Timers};
use crate::value::{Exit, Input, Payload, Value, Wake};

pub(crate) const LOOP_EXIT_MESSAGE: &str = "verdant: LoopExit: this operation would block forever \
     (the hub has no greenlet ready to run, no timer and no IO to wait for)";

/// Default for [`Hub::set_event_interval`]: IO and timers are checked at
/// least every this many switches, even when greenlets are always ready.
pub const DEFAULT_EVENT_INTERVAL: u32 = 61;

/// How late a due timer may be made by the greenlets ready ahead of it
/// before it is moved in front of them (gevent's default switch interval,
/// `sys.getswitchinterval()`): see `Runtime::fire_timers`.
const SWITCH_INTERVAL: Duration = Duration::from_millis(5);

/// Timers and IO are checked at least this often while greenlets keep the
/// hub busy, however long their turns (see `Runtime::next_check_in`).
const CHECK_PERIOD: Duration = Duration::from_millis(1);

/// A greenlet woken by its timer (see `Runtime::fire_timers`).
struct Timed {
    entry: Ready,
    /// It runs once this many entries of the ready queue have been popped,
    /// or earlier once it has waited `SWITCH_INTERVAL` since `woke` (see
    /// `Runtime::pop_ready` for the rest of that rule).
    after: u64,
    woke: Instant,
    /// `Runtime::turns` when it woke.
    turns_then: u64,
}

/// Ends a timer-firing pass, even if a timer's wake-up unwinds.
struct FiringEnd<'a>(&'a Runtime);

impl Drop for FiringEnd<'_> {
    fn drop(&mut self) {
        self.0.firing.set(None);
    }
}

/// The per-thread runtime: main and hub records, the running greenlet, the
/// scheduler.
pub(crate) struct Runtime {
    pub(crate) main: Greenlet,
    pub(crate) hub: Greenlet,
    pub(crate) current: Cell<*const Inner>,
    ready: RefCell<ReadyQueue>,
    /// Greenlets woken by their timers: each runs once the entries queued in
    /// `ready` before it have run (FIFO), or at once when it has waited
    /// [`SWITCH_INTERVAL`] (see `Runtime::fire_timers`).
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
    /// The reactor's registrations (see [`crate::io`]).
    pub(crate) io: RefCell<Slab<WaitToken>>,
    /// The channel other threads post into, once a [`Remote`] was asked for.
    ///
    /// [`Remote`]: crate::Remote
    pub(crate) remote: RefCell<Option<crate::remote::RemoteHub>>,
    ticks: Cell<u32>,
    /// The switches in the current check interval (at most `event_interval`,
    /// fewer when greenlets' turns are long), and when it began.
    check_every: Cell<u32>,
    last_check: Cell<Instant>,
    event_interval: Cell<u32>,
    stack_size: Cell<usize>,
    pool: RefCell<StackPool>,
    next_id: Cell<u64>,
    switches: Cell<u64>,
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
    /// (borrowed from the sender's frame; see `greenlet::suspend`).
    pub(crate) mail_target: Cell<*const Inner>,
    /// A finished greenlet's exit, left by its root for the root loop.
    pub(crate) mail_exit: Cell<Option<Exit>>,
    /// Start timers of `spawn_later` greenlets not yet started, by id, so a
    /// kill before the start cancels the timer.
    pub(crate) start_timers: RefCell<std::collections::HashMap<u64, TimerKey>>,
}

/// What a hub timer does when it fires.
pub(crate) struct TimerEntry {
    pub(crate) token: WaitToken,
    pub(crate) wake: Wake,
    /// Non-zero: the timer of `with_timeout` scope `scope` of `token.g`
    /// (it interrupts whatever the greenlet waits in; `token.seq` unused).
    pub(crate) scope: u64,
}

/// A ready-queue entry: two words, so it is built and copied in registers
/// (a wider entry assembled field by field and then copied into the queue
/// stalled on store-to-load forwarding). `tag` packs the wait sequence
/// number it answers with what to resume the greenlet with; a throw's
/// payload waits in the greenlet's record.
struct Ready {
    g: Greenlet,
    tag: u64,
}

const TAG_BITS: u32 = 3;
const TAG_START: u64 = 0;
const TAG_THROW: u64 = 1;
const TAG_READY: u64 = 2;
const TAG_TIMED_OUT: u64 = 3;
const TAG_LOOP_EXIT: u64 = 4;

impl Ready {
    fn new(g: Greenlet, seq: u64, what: u64) -> Ready {
        Ready {
            g,
            tag: (seq << TAG_BITS) | what,
        }
    }

    fn seq(&self) -> u64 {
        self.tag >> TAG_BITS
    }

    /// Its greenlet has moved on to another wait (woken twice, killed…):
    /// the entry is dropped, not run.
    #[inline(always)]
    fn is_stale(&self) -> bool {
        self.seq() != self.g.inner.wait_seq.get()
    }

    /// The value the greenlet is resumed with.
    #[inline(always)]
    fn input(&self) -> Value {
        // The common entry (a wait list's or a yield's wake-up) gets a
        // branch of its own: the `match` below compiles to a jump table,
        // an indirect jump on every switch.
        if self.tag & ((1 << TAG_BITS) - 1) == TAG_READY {
            return Value::wake(Wake::Ready);
        }
        self.input_other()
    }

    #[inline(never)]
    fn input_other(&self) -> Value {
        match self.tag & ((1 << TAG_BITS) - 1) {
            TAG_START => Value::empty(),
            TAG_READY => Value::wake(Wake::Ready),
            TAG_TIMED_OUT => Value::wake(Wake::TimedOut),
            TAG_LOOP_EXIT => Value::wake(Wake::LoopExit),
            _ => match self.g.inner.pending_throw.take() {
                Some(p) => Value::thrown(p),
                // Cannot happen: a throw entry is current only while its
                // payload waits. Resume it as a plain wake-up, not a hang.
                None => Value::wake(Wake::Ready),
            },
        }
    }
}

/// The FIFO ready queue, with its first entry kept apart: two greenlets
/// that take turns (a ping-pong, a request and its reply) keep at most one
/// entry queued, which then never touches the ring buffer.
///
/// Invariant: `first` is empty only when `rest` is.
#[derive(Default)]
struct ReadyQueue {
    first: Option<Ready>,
    rest: VecDeque<Ready>,
}

impl ReadyQueue {
    /// Queues `e` last. An entry that will run next (the queue was empty)
    /// has its stack prefetched if cold (`now`: the pops so far; see
    /// `Inner::prefetch_if_cold`).
    #[inline(always)]
    fn push_back(&mut self, e: Ready, now: u64) {
        if self.first.is_none() {
            e.g.inner.prefetch_if_cold(now);
            self.first = Some(e);
        } else {
            self.rest.push_back(e);
        }
    }

    /// Takes the first entry. The one that then comes next has its stack
    /// prefetched if cold, to overlap the miss with the coming turn.
    #[inline(always)]
    fn pop_front(&mut self, now: u64) -> Option<Ready> {
        let e = self.first.take()?;
        if !self.rest.is_empty() {
            self.first = self.rest.pop_front();
            if let Some(next) = &self.first {
                next.g.inner.prefetch_if_cold(now);
            }
        }
        Some(e)
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Takes every entry, in order.
    fn drain(&mut self) -> Vec<Ready> {
        self.first
            .take()
            .into_iter()
            .chain(self.rest.drain(..))
            .collect()
    }
}

fn wake_tag(wake: Wake) -> u64 {
    match wake {
        Wake::Ready => TAG_READY,
        Wake::TimedOut => TAG_TIMED_OUT,
        Wake::LoopExit => TAG_LOOP_EXIT,
    }
}

/// Who to wake, and for which of its waits.
#[derive(Clone)]
pub(crate) struct WaitToken {
    pub(crate) g: Greenlet,
    pub(crate) seq: u64,
}

impl WaitToken {
    pub(crate) fn is_current(&self) -> bool {
        self.g.inner.wait_seq.get() == self.seq && !self.g.inner.woken.get()
    }
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

/// Runs `f` with this thread's runtime, creating it on first use.
///
/// # Panics
///
/// Panics if called while the thread's runtime is being destroyed.
#[inline]
pub(crate) fn with_rt<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    let p = RT_PTR.with(|p| p.get());
    if p.is_null() {
        return with_rt_slow(f);
    }
    // SAFETY: RT_PTR is non-null only between RT's initialisation and the
    // start of its destructor, during which RT lives at that address.
    f(unsafe { &*p })
}

/// The address of this thread's runtime, creating it on first use: for
/// the blocking paths compiled whole into their callers (see
/// `sync::queue::Core::put_inline`), where [`with_rt`]'s closure, left
/// behind a call by the inliner, would hold a frame across the switch.
///
/// The runtime stays at that address until the thread's teardown, which
/// cannot begin while a greenlet of the thread runs: dereferencing it for
/// the length of a call made by a greenlet is sound.
///
/// # Panics
///
/// As [`with_rt`].
#[inline(always)]
pub(crate) fn rt_ptr() -> *const Runtime {
    let p = RT_PTR.with(|p| p.get());
    if p.is_null() {
        return with_rt_slow(|rt| rt as *const Runtime);
    }
    p
}

/// `with_rt(|rt| rt.wake_live(token))`, always inlined: a wait list's
/// wake-up is a handful of stores, and the inliner otherwise left the
/// thread-local lookup and the queue push behind two calls.
#[inline(always)]
pub(crate) fn wake_live(token: WaitToken) {
    // SAFETY: the runtime outlives this call (see `rt_ptr`).
    unsafe { &*rt_ptr() }.wake_live(token)
}

#[cold]
fn with_rt_slow<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    RT.with(|rt| {
        if !rt.shutdown_registered.get() {
            rt.shutdown_registered.set(true);
            SHUTDOWN.with(|_| {});
            RT_PTR.with(|p| p.set(rt as *const Runtime));
        }
        f(rt)
    })
}

/// For the overflow handler: the fault record of the greenlet running on
/// this thread, or null on the thread's own stack (main, the hub, or no
/// runtime). Async-signal-safe: it reads two cells and initialises nothing
/// (`RT_PTR` is `const`-initialised and has no destructor).
pub(crate) fn current_fault_info() -> *const crate::fault::FaultInfo {
    let rt = RT_PTR.with(|p| p.get());
    if rt.is_null() {
        return std::ptr::null();
    }
    // SAFETY: RT_PTR is non-null only while RT lives (see `with_rt`), and
    // `current` always names a live record; the interrupted code cannot be
    // half-way through storing the pointer (an aligned word).
    let cur = unsafe { &*(*rt).current.get() };
    if cur.kind == greenlet::Kind::Child {
        cur.fault_ptr()
    } else {
        std::ptr::null()
    }
}

/// Like [`with_rt`], but `None` during thread teardown.
pub(crate) fn try_rt<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    let p = RT_PTR.with(|p| p.get());
    if !p.is_null() {
        // SAFETY: as in `with_rt`.
        return Some(f(unsafe { &*p }));
    }
    RT.try_with(f).ok()
}

impl Runtime {
    fn new() -> Runtime {
        if let Err(e) = crate::fault::init_thread() {
            eprintln!(
                "verdant: a stack overflow on this thread will be a plain SIGSEGV \
                 (its handler could not be set up: {e})"
            );
        }
        crate::panic::install_hook();
        let (main, hub) = greenlet::new_root_records();
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
            remote: RefCell::new(None),
            ticks: Cell::new(0),
            check_every: Cell::new(DEFAULT_EVENT_INTERVAL),
            last_check: Cell::new(Instant::now()),
            event_interval: Cell::new(DEFAULT_EVENT_INTERVAL),
            stack_size: Cell::new(stack::DEFAULT_STACK_SIZE),
            pool: RefCell::new(StackPool::new()),
            next_id: Cell::new(2),
            switches: Cell::new(0),
            shutdown_registered: Cell::new(false),
            shutting_down: Cell::new(false),
            mail: UnsafeCell::new(MaybeUninit::uninit()),
            #[cfg(debug_assertions)]
            mail_full: Cell::new(false),
            mail_target: Cell::new(std::ptr::null()),
            mail_exit: Cell::new(None),
            start_timers: RefCell::new(std::collections::HashMap::new()),
        }
    }

    /// Puts the value for the next greenlet to be resumed in the mailbox.
    ///
    /// The protocol: every resume of a greenlet (and every return to main)
    /// is preceded by exactly one `post`, and the receiver `collect`s exactly
    /// once, first thing; a dying greenlet resumed to unwind collects nothing
    /// and posts nothing. The value stays in one place from sender to
    /// receiver, however many suspended greenlets it passes through.
    #[inline(always)]
    pub(crate) fn post(&self, value: Value) {
        #[cfg(debug_assertions)]
        assert!(
            !self.mail_full.replace(true),
            "verdant: mailbox posted twice"
        );
        // SAFETY: the mailbox is empty (the protocol above), so nothing is
        // overwritten; only this thread touches it.
        unsafe { (*self.mail.get()).write(value) };
    }

    /// Takes the value out of the mailbox (see [`Runtime::post`]).
    #[inline(always)]
    pub(crate) fn collect(&self) -> Value {
        #[cfg(debug_assertions)]
        assert!(
            self.mail_full.replace(false),
            "verdant: empty mailbox collected"
        );
        // SAFETY: the protocol guarantees a posted, not yet collected value.
        unsafe { (*self.mail.get()).assume_init_read() }
    }

    /// Whether the mailbox holds a throw (it must hold something).
    pub(crate) fn mail_is_thrown(&self) -> bool {
        // SAFETY: as in `collect`; this only reads the value in place.
        unsafe { (*self.mail.get()).assume_init_ref().is_thrown() }
    }

    pub(crate) fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    pub(crate) fn default_stack_size(&self) -> usize {
        self.stack_size.get()
    }

    pub(crate) fn take_stack(&self, usable: usize) -> io::Result<Stack> {
        self.pool.borrow_mut().get(usable)
    }

    pub(crate) fn recycle_stack(&self, stack: Stack, low_water: usize) {
        if !self.shutting_down.get() {
            self.pool.borrow_mut().put(stack, low_water);
        }
    }

    /// Queues `token`'s greenlet to be resumed with `wake`, unless that wait
    /// is already over (woken, timed out, killed, or a newer wait).
    pub(crate) fn wake(&self, token: &WaitToken, wake: Wake) -> bool {
        token.is_current() && self.wake_owned(token.clone(), wake)
    }

    /// Queues `token`'s greenlet to be resumed with [`Wake::Ready`] once the
    /// entries ahead of it have run. The caller knows the wait is current
    /// (a wait list's live waiter, or a wait just begun: `yield_now`), so
    /// this skips [`wake`](Runtime::wake)'s test.
    #[inline(always)]
    pub(crate) fn wake_live(&self, token: WaitToken) {
        debug_assert!(token.is_current());
        token.g.inner.woken.set(true);
        self.push_ready(Ready::new(token.g, token.seq, TAG_READY));
    }

    /// [`wake`](Runtime::wake) for a token the caller gives up: saves a
    /// handle clone on the `yield_now` path.
    #[inline]
    pub(crate) fn wake_owned(&self, token: WaitToken, wake: Wake) -> bool {
        if !token.is_current() {
            return false;
        }
        token.g.inner.woken.set(true);
        self.push_ready(Ready::new(token.g, token.seq, wake_tag(wake)));
        true
    }

    /// How many entries of the ready queue have been popped so far: the
    /// clock by which a parked greenlet's stack counts as cold.
    #[inline(always)]
    pub(crate) fn pops(&self) -> u64 {
        self.popped.get()
    }

    /// Queues a greenlet that has never run, to start on the next tick.
    pub(crate) fn schedule_start(&self, g: Greenlet) {
        let seq = g.inner.wait_seq.get();
        self.push_ready(Ready::new(g, seq, TAG_START));
    }

    /// Queues `entry` at the back of the ready queue, or of the timed queue
    /// while timers fire.
    #[inline(always)]
    fn push_ready(&self, entry: Ready) {
        if let Some(woke) = self.firing.get() {
            return self.push_timed(entry, woke);
        }
        self.pushed.set(self.pushed.get() + 1);
        self.ready.borrow_mut().push_back(entry, self.popped.get());
    }

    /// [`push_ready`](Runtime::push_ready) while timers fire (out of line:
    /// every wake-up inlines the common case).
    #[cold]
    #[inline(never)]
    fn push_timed(&self, entry: Ready, woke: Instant) {
        self.timed.borrow_mut().push_back(Timed {
            entry,
            after: self.pushed.get(),
            woke,
            turns_then: self.turns(),
        });
        self.any_timed.set(true);
    }

    /// The next entry to run: the first timed one whose turn has come (or
    /// that is promoted), else the first ready one.
    ///
    /// A timed entry is promoted (runs before the ready entries queued ahead
    /// of it) once it has waited [`SWITCH_INTERVAL`], but only between turns
    /// of the ready queue: a ready entry must have run since it woke, and
    /// since the last promotion. So a hub that is itself slow (a long
    /// timer pass, a preempted thread, valgrind) never lets a sleeper
    /// overtake greenlets that had no turn at all, and a burst of late
    /// timers takes every other turn instead of all of them.
    #[inline]
    fn pop_ready(&self) -> Option<Ready> {
        if self.any_timed.get() {
            let mut timed = self.timed.borrow_mut();
            let turns = self.turns();
            match timed.front() {
                // Its turn has come.
                Some(t) if t.after <= self.popped.get() => {
                    return timed.pop_front().map(|t| t.entry);
                }
                // Promoted (a clock read only while a woken timer waits
                // behind others, and only between turns).
                Some(t)
                    if turns > t.turns_then
                        && turns > self.promoted_at.get()
                        && t.woke.elapsed() >= SWITCH_INTERVAL =>
                {
                    self.promoted_at.set(turns);
                    return timed.pop_front().map(|t| t.entry);
                }
                Some(_) => {}
                None => self.any_timed.set(false),
            }
        }
        let entry = self.ready.borrow_mut().pop_front(self.popped.get());
        match entry {
            Some(e) => {
                self.popped.set(self.popped.get() + 1);
                if e.is_stale() {
                    // Not a turn: `take_entry` drops it.
                    self.stale_popped.set(self.stale_popped.get() + 1);
                }
                Some(e)
            }
            // Nothing ahead of the timed ones any more.
            None => self.timed.borrow_mut().pop_front().map(|t| t.entry),
        }
    }

    /// Turns taken from the ready queue: entries popped, less the stale
    /// ones `pop_ready` saw. Exact while timed entries wait (every pop then
    /// goes through `pop_ready`), which is when the timer rule reads it.
    fn turns(&self) -> u64 {
        self.popped.get() - self.stale_popped.get()
    }

    /// How many entries are queued to run (stale ones included).
    fn ready_len(&self) -> usize {
        self.ready.borrow().len() + self.timed.borrow().len()
    }

    /// Whether anything is queued to run.
    fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty() || !self.timed.borrow().is_empty()
    }

    /// Delivers `payload` into `g` (unstarted or suspended) on the next tick,
    /// superseding whatever wait it is in.
    pub(crate) fn throw_later(&self, g: &Greenlet, payload: Payload) {
        let seq = g.inner.wait_seq.get() + 1;
        g.inner.wait_seq.set(seq);
        g.inner.woken.set(true);
        // A newer throw supersedes a pending one (its entry goes stale).
        drop(g.inner.pending_throw.replace(Some(payload)));
        self.push_ready(Ready::new(g.clone(), seq, TAG_THROW));
    }

    pub(crate) fn add_timer(&self, deadline: Instant, token: WaitToken, wake: Wake) -> TimerKey {
        self.timers.borrow_mut().insert(
            deadline,
            TimerEntry {
                token,
                wake,
                scope: 0,
            },
        )
    }

    /// Arms the timer of `with_timeout` scope `scope` of greenlet `g`.
    pub(crate) fn add_scope_timer(&self, deadline: Instant, g: Greenlet, scope: u64) -> TimerKey {
        let token = WaitToken { g, seq: 0 };
        self.timers.borrow_mut().insert(
            deadline,
            TimerEntry {
                token,
                wake: Wake::TimedOut,
                scope,
            },
        )
    }

    /// Arms a timer that wakes `token`'s wait with [`Wake::TimedOut`] at
    /// `deadline`, until the returned guard is dropped.
    #[inline]
    pub(crate) fn arm_timer(
        &self,
        deadline: Instant,
        token: WaitToken,
    ) -> TimerGuard<'_, TimerEntry> {
        TimerGuard::arm(
            &self.timers,
            deadline,
            TimerEntry {
                token,
                wake: Wake::TimedOut,
                scope: 0,
            },
        )
    }

    pub(crate) fn cancel_timer(&self, key: &TimerKey) {
        let entry = self.timers.borrow_mut().remove(key);
        drop(entry); // outside the borrow: may drop a greenlet's last handle
    }

    /// Picks what the root loop runs next and posts its input. Blocks in
    /// `poll` when nothing is ready; returns main with `LoopExit` when
    /// nothing ever could be.
    ///
    /// The common case (no check of timers and IO due, no woken timer
    /// waiting, a current entry at the front of the ready queue) is inlined
    /// into the root loop; everything else goes to [`Runtime::next_ready_slow`].
    #[inline(always)]
    pub(crate) fn next_ready(&self) -> Greenlet {
        let t = self.ticks.get();
        if t > 1 && !self.any_timed.get() {
            let entry = match self.ready.try_borrow_mut() {
                Ok(mut ready) => ready.pop_front(self.popped.get()),
                Err(_) => None,
            };
            if let Some(e) = entry {
                // A turn of `next_ready_slow`'s loop, without its checks.
                self.ticks.set(t - 1);
                self.popped.set(self.popped.get() + 1);
                if let Some(g) = self.take_entry(e) {
                    return g;
                }
            }
        }
        self.next_ready_slow()
    }

    /// The greenlet of a popped entry, its input posted; `None` (the entry
    /// dropped) when the entry is stale: its greenlet moved on.
    #[inline(always)]
    fn take_entry(&self, e: Ready) -> Option<Greenlet> {
        if e.is_stale() {
            return None;
        }
        self.switches.set(self.switches.get() + 1);
        self.post(e.input());
        Some(e.g)
    }

    /// [`Runtime::next_ready`] in general: checks timers and IO when due,
    /// skips stale entries, and blocks or reports `LoopExit` when idle.
    #[inline(never)]
    pub(crate) fn next_ready_slow(&self) -> Greenlet {
        loop {
            // A countdown rather than a modulo: a division per switch costs
            // more than the rest of the scheduling decision.
            let t = self.ticks.get();
            if t <= 1 {
                self.maintain(false);
            } else {
                self.ticks.set(t - 1);
            }
            match self.pop_ready() {
                Some(e) => {
                    if let Some(g) = self.take_entry(e) {
                        return g;
                    }
                }
                None => {
                    if !self.maintain(true) {
                        let m = &self.main.inner;
                        m.wait_seq.set(m.wait_seq.get() + 1);
                        self.post(Value::wake(Wake::LoopExit));
                        return self.main.clone();
                    }
                }
            }
        }
    }

    /// Fires due timers and polls IO. With `idle`, the ready queue is empty:
    /// block until the next timer or IO event. Returns `false` when idle and
    /// nothing could ever make a greenlet ready.
    #[inline(never)]
    fn maintain(&self, idle: bool) -> bool {
        let now = Instant::now();
        self.ticks.set(self.next_check_in(now));
        self.fire_timers(now);
        self.drain_remote();
        let has_ready = self.has_ready();
        if !idle || has_ready {
            if self.external_waits.get() > 0 {
                self.poll_io(Some(Duration::ZERO));
            }
            return true;
        }
        let next = self.timers.borrow().next_deadline();
        if next.is_none() && self.external_waits.get() == 0 && !self.remote_keeps_alive() {
            return false;
        }
        let timeout = next.map(|d| d.saturating_duration_since(now));
        self.poll_io(timeout);
        let now = Instant::now();
        // Time spent blocked is not greenlets' work (see `next_check_in`).
        self.last_check.set(now);
        self.fire_timers(now);
        self.drain_remote();
        true
    }

    /// How many switches until the next check of timers and IO:
    /// `event_interval`, scaled down when the last interval's switches took
    /// longer than [`CHECK_PERIOD`] in all (long turns: a timer or an IO
    /// event would otherwise wait for `event_interval` of them).
    fn next_check_in(&self, now: Instant) -> u32 {
        let max = self.event_interval.get();
        let took = now.saturating_duration_since(self.last_check.replace(now));
        let n = self.check_every.get().min(max);
        let next = if took > CHECK_PERIOD {
            // Keep about CHECK_PERIOD of switches per interval.
            let scaled = u128::from(n) * CHECK_PERIOD.as_nanos() / took.as_nanos();
            (scaled as u32).max(1)
        } else {
            // Quick turns: grow back towards the maximum.
            n.saturating_mul(2).min(max)
        };
        self.check_every.set(next);
        next
    }

    /// Wakes the greenlets whose timers are due, in deadline order.
    ///
    /// They queue behind the greenlets already ready (FIFO: `sleep(short)`
    /// lets those run first), in a queue of their own, so that one that has
    /// waited [`SWITCH_INTERVAL`] there (a long ready queue under load) can
    /// run ahead of them (`pop_ready`): a deadline (a sleep, a timeout) is
    /// then late by about one switch interval plus one other greenlet's turn
    /// (and up to one `event_interval` of turns before its timer is looked
    /// at), not by a whole turn of the queue. gevent bounds its callback
    /// batches by its switch interval the same way, and Go readies a
    /// timer's goroutine into `runnext`. Promoted entries alternate with
    /// ready ones (see `pop_ready`), so a burst of them cannot starve the
    /// rest.
    fn fire_timers(&self, now: Instant) {
        self.firing.set(Some(now));
        let _end = FiringEnd(self);
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            match due {
                Some(e) if e.scope != 0 => crate::timeout::expire(self, &e.token.g, e.scope),
                Some(e) => {
                    self.wake(&e.token, e.wake);
                }
                None => break,
            }
        }
    }

    /// Waits for IO up to `timeout` (`None`: until an event) and wakes the
    /// greenlets whose fds became ready.
    fn poll_io(&self, timeout: Option<Duration>) {
        let polled = self.poller.borrow_mut().poll(timeout, |event| {
            // Applying an event only touches the slab and the ready queue
            // (never user code), so it may run under the poll's borrow.
            let waiters = self.io.borrow_mut().apply(event);
            for t in waiters.into_iter().flatten() {
                self.wake_owned(t, Wake::Ready);
            }
        });
        if polled.is_err() {
            // No epoll instance (fd exhaustion): sleep instead, so that
            // timers still fire.
            if let Some(t) = timeout {
                std::thread::sleep(t);
            }
        }
    }

    /// Runs `f` with the poll's registry, creating the poll on first use.
    pub(crate) fn with_registry<R>(
        &self,
        f: impl FnOnce(&mio::Registry) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut poller = self.poller.borrow_mut();
        f(poller.registry()?)
    }

    /// A greenlet starts waiting on something outside the ready queue and
    /// the timers (IO): an idle hub must block in poll, not report LoopExit.
    pub(crate) fn external_wait_begin(&self) {
        self.external_waits.set(self.external_waits.get() + 1);
    }

    /// The end of [`external_wait_begin`](Runtime::external_wait_begin)'s wait.
    pub(crate) fn external_wait_end(&self) {
        self.external_waits
            .set(self.external_waits.get().saturating_sub(1));
    }

    /// Unwinds what is left at thread exit: greenlets still queued, timed or
    /// waiting for IO.
    ///
    /// Each greenlet found queued or timed is unwound explicitly (not by
    /// dropping handles: a greenlet can be kept alive by a cycle, such as a
    /// joiner that holds its own wait token through the join's state). The
    /// joiners their completion wakes land in the ready queue and are
    /// unwound in the next round.
    fn shutdown(&self) {
        self.shutting_down.set(true);
        for _ in 0..64 {
            let mut ready: Vec<Ready> = self.ready.borrow_mut().drain();
            self.popped.set(self.pushed.get());
            ready.extend(self.timed.borrow_mut().drain(..).map(|t| t.entry));
            let timers = self.timers.borrow_mut().drain();
            let mut io_waiters = self.io.borrow_mut().take_waiters();
            if let Some(r) = self.remote.borrow_mut().as_mut() {
                io_waiters.extend(r.take_waiters());
            }
            if ready.is_empty() && timers.is_empty() && io_waiters.is_empty() {
                break;
            }
            let found: Vec<Greenlet> = ready
                .iter()
                .map(|r| r.g.clone())
                .chain(timers.iter().map(|t| t.token.g.clone()))
                .chain(io_waiters.iter().map(|t| t.g.clone()))
                .collect();
            drop(ready);
            drop(timers);
            drop(io_waiters);
            for g in &found {
                greenlet::unwind_now(g);
            }
        }
    }
}

/// Why a hub wait ended without its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// The current greenlet is unwinding and may not switch.
    Cancelled,
}

/// Starts a hub wait for the current greenlet: returns the token to register
/// with whatever will wake it, then call [`wait`].
///
/// Raises the pending kill again if the greenlet was killed and caught it.
#[inline]
pub(crate) fn begin_wait(rt: &Runtime) -> Result<WaitToken, WaitError> {
    // SAFETY: `current_ptr` always names a live record (see `Runtime::current`).
    let inner = unsafe { &*rt.current_ptr() };
    if std::thread::panicking()
        || inner.dying.get()
        || inner.killed.get()
        || inner.timeout_fired.get() != 0
    {
        begin_wait_refused(inner)?;
    }
    let cur = rt.current();
    let seq = inner.wait_seq.get() + 1;
    inner.wait_seq.set(seq);
    inner.woken.set(false);
    Ok(WaitToken { g: cur, seq })
}

/// The rare cases of [`begin_wait`]: an unwinding greenlet may not wait,
/// and a caught kill or expired timeout scope is raised again.
#[cold]
#[inline(never)]
fn begin_wait_refused(inner: &Inner) -> Result<(), WaitError> {
    if std::thread::panicking() {
        return Err(WaitError::Cancelled);
    }
    if inner.dying.get() && !inner.has_run() {
        return Err(WaitError::Cancelled); // its unstarted function is being dropped
    }
    if inner.killed.get() || inner.dying.get() {
        // A kill (or drop) that the greenlet caught is raised again.
        std::panic::resume_unwind(Box::new(crate::GreenletExit));
    }
    if inner.timeout_fired.get() != 0 {
        // So is an expired `with_timeout` scope the greenlet is still in.
        crate::timeout::raise_again(inner.timeout_fired.get());
    }
    Ok(())
}

/// Ends the wait begun by `begin_wait` when dropped (also on unwind), so no
/// late wake-up can reach a greenlet that moved on.
struct WaitEnd<'a>(&'a Inner);

impl Drop for WaitEnd<'_> {
    fn drop(&mut self) {
        self.0.woken.set(true);
    }
}

/// Parks the current greenlet in the hub until its wait token is woken.
///
/// Called after a successful [`begin_wait`] in the same frame, which has
/// checked that the greenlet may switch (it is neither unwinding nor being
/// dropped), so the switch does not check again.
///
/// # Panics
///
/// Raises a kill delivered meanwhile (as a `GreenletExit` unwind), and panics
/// on an invalid switch into a parked greenlet.
///
/// Always inlined: in a binary with many waits, the inliner otherwise left
/// it behind a call on the channel path (measured 20% slower there).
#[inline(always)]
pub(crate) fn wait(rt: &Runtime) -> Result<Wake, WaitError> {
    // Not a handle: a greenlet must not keep itself alive while it waits
    // (its waker, timer or link holds it, and nothing else need).
    // SAFETY: the current record outlives this frame: it owns the coroutine
    // whose stack this frame is on (or it is main, owned by the runtime).
    let cur: &Inner = unsafe { &*rt.current_ptr() };
    let _end = WaitEnd(cur);
    let v = greenlet::switch_to_hub(rt);
    match v.into_wake() {
        Ok(w) => Ok(w),
        Err(v) => wait_unusual(cur, v),
    }
}

/// Parks the current greenlet for one turn of the ready queue: it is queued
/// behind every greenlet ready now, and may meanwhile also be woken through
/// `token` (whoever runs first can hand it something: a rendezvous with a
/// select that waits to send, see `sync::channel`). Called after
/// [`begin_wait`], like [`wait`].
///
/// # Panics
///
/// As for [`wait`].
pub(crate) fn wait_one_turn(rt: &Runtime, token: &WaitToken) -> Result<Wake, WaitError> {
    // Not marked woken, so the token can still be woken; a wake-up queues
    // a second entry for this wait, made stale below.
    rt.push_ready(Ready::new(token.g.clone(), token.seq, TAG_READY));
    let woke = wait(rt);
    let inner = &token.g.inner;
    inner.wait_seq.set(inner.wait_seq.get() + 1);
    woke
}

/// What a hub wait received other than a wake-up: a throw, or a raw switch
/// that should never have reached it.
#[cold]
#[inline(never)]
fn wait_unusual(cur: &Inner, v: Value) -> Result<Wake, WaitError> {
    match v.into_input() {
        Input::Wake(w) => Ok(w),
        Input::Throw(p) => std::panic::resume_unwind(p),
        Input::Value(v) => panic!(
            "verdant: invalid switch into greenlet '{}' while it waits in the hub (it was sent a `{}`); \
             only the hub may resume a parked greenlet",
            cur.display_name(),
            v.type_name()
        ),
    }
}

/// A handle to this thread's hub, for settings and statistics.
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
        with_rt(|rt| {
            f.debug_struct("Hub")
                .field("ready", &rt.ready_len())
                .field("timers", &rt.timers.borrow().len())
                .field("pooled_stacks", &rt.pool.borrow().len())
                .finish()
        })
    }
}

impl Hub {
    /// This thread's hub (created on first use).
    ///
    /// # Examples
    ///
    /// ```
    /// let _hub = verdant_runtime::Hub::current();
    /// ```
    pub fn current() -> Hub {
        with_rt(|_| ());
        Hub {
            _not_send: std::marker::PhantomData,
        }
    }

    /// A `Send + Sync` handle into this hub, for other OS threads (see
    /// [`Remote`](crate::Remote)). Every call returns a handle to the same
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
        match with_rt(|rt| rt.remote()) {
            Ok(r) => r,
            Err(e) => panic!("verdant: cannot create the hub's remote waker: {e}"),
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
        with_rt(|rt| rt.hub.clone())
    }

    /// Default usable stack size of new greenlets on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Hub::current().stack_size() >= verdant_runtime::stack::MIN_STACK_SIZE);
    /// ```
    pub fn stack_size(&self) -> usize {
        with_rt(|rt| rt.stack_size.get())
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
        with_rt(|rt| rt.stack_size.set(size));
        Ok(())
    }

    /// Sets how many switches may pass between two checks of timers and IO
    /// while greenlets are always ready (default [`DEFAULT_EVENT_INTERVAL`]).
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
        with_rt(|rt| {
            rt.event_interval.set(n);
            // Restart the countdown, so a shorter interval is not delayed by
            // what is left of the longer one.
            rt.ticks.set(rt.ticks.get().min(n));
        });
    }

    /// Sets how many free stacks the hub keeps for reuse (default
    /// [`DEFAULT_POOL_CAPACITY`](crate::stack::DEFAULT_POOL_CAPACITY));
    /// extra ones are unmapped at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// hub.set_pool_capacity(0);
    /// assert_eq!(hub.pooled_stacks(), 0);
    /// ```
    pub fn set_pool_capacity(&self, n: usize) {
        with_rt(|rt| rt.pool.borrow_mut().set_capacity(n));
    }

    /// Free stacks now held for reuse.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = verdant_runtime::Hub::current();
    /// verdant_runtime::spawn(|| ()).join().unwrap();
    /// assert!(hub.pooled_stacks() >= 1);
    /// ```
    pub fn pooled_stacks(&self) -> usize {
        with_rt(|rt| rt.pool.borrow().len())
    }

    /// Timers now pending (sleeps, timeouts, delayed spawns).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Hub::current().timer_count(), 0);
    /// ```
    pub fn timer_count(&self) -> usize {
        with_rt(|rt| rt.timers.borrow().len())
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
        with_rt(|rt| rt.ready_len())
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
        with_rt(|rt| rt.io.borrow().len())
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
        with_rt(|rt| rt.switches.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spawns a greenlet that logs `name` when it runs. While `woke` is
    /// set, its start goes to the timed queue as if its timer had fired
    /// then (the way `fire_timers` queues a sleeper).
    fn spawn_logged(
        log: &Rc<RefCell<Vec<&'static str>>>,
        name: &'static str,
        woke: Option<Instant>,
    ) -> crate::JoinHandle<()> {
        with_rt(|rt| rt.firing.set(woke));
        let log = log.clone();
        let h = crate::spawn(move || log.borrow_mut().push(name));
        with_rt(|rt| rt.firing.set(None));
        h
    }

    #[test]
    fn late_timers_take_every_other_turn_and_never_the_first() {
        let log = Rc::new(RefCell::new(Vec::new()));
        // Four greenlets ready, then two woken by timers that fired long
        // enough ago to be promoted: as after a timer pass (or a stall of
        // the hub's thread) that took longer than the switch interval.
        let mut hs: Vec<_> = ["a", "c", "d", "e"]
            .into_iter()
            .map(|n| spawn_logged(&log, n, None))
            .collect();
        let long_ago = Instant::now()
            .checked_sub(SWITCH_INTERVAL * 2)
            .expect("the clock is past twice the switch interval");
        for n in ["b1", "b2"] {
            hs.push(spawn_logged(&log, n, Some(long_ago)));
        }
        crate::joinall(&hs).unwrap();
        // A greenlet ready before the timers fired runs first; the late
        // ones then alternate with the rest of the ready queue instead of
        // all going first (b1 b2 a c d e), and FIFO would be a c d e b1 b2.
        assert_eq!(*log.borrow(), ["a", "b1", "c", "b2", "d", "e"]);
    }

    #[test]
    fn a_stale_entry_is_not_a_turn_for_a_late_timer() {
        let log = Rc::new(RefCell::new(Vec::new()));
        // `x`'s start entry goes stale when it is killed before it runs
        // (the kill queues a new entry at the back): ready = [x (stale), a,
        // x's kill], then `b` is woken by a timer that fired long ago.
        let x = spawn_logged(&log, "x", None);
        let a = spawn_logged(&log, "a", None);
        x.kill_nowait();
        let long_ago = Instant::now()
            .checked_sub(SWITCH_INTERVAL * 2)
            .expect("the clock is past twice the switch interval");
        let b = spawn_logged(&log, "b", Some(long_ago));
        crate::joinall([&a, &b]).unwrap();
        assert!(x.join().is_err(), "x was killed before it started");
        // Popping x's stale entry gave nobody a turn: `a` still goes first.
        assert_eq!(*log.borrow(), ["a", "b"]);
    }
}
