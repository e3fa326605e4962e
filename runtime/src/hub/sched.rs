//! The scheduler: the ready queue, the timers, and the decisions of the
//! hub's loop (what runs next; when to fire timers and poll IO; when to
//! block; when nothing can ever happen).
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
//! `Inner::prefetch_if_cold` for the figures).

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::park::WaitToken;
use super::Runtime;
use crate::greenlet::Greenlet;
use crate::sys::{seed_state, xorshift};
use crate::timer::TimerKey;
use crate::value::{Value, Wake};

/// `Hub::DEFAULT_EVENT_INTERVAL`.
pub(super) const DEFAULT_EVENT_INTERVAL: u32 = 61;

/// How late a due timer may be made by the greenlets ready ahead of it
/// before it is moved in front of them: see `Runtime::fire_timers`.
///
/// gevent's switch interval is 5 ms; with 5 ms here a 10 ms sleeper behind
/// 100 bulk transfers woke 5.7 ms late at the median (`hub_fairness`), and
/// 1 ms brings that to 1.7 ms (p99 3.6–3.9 ms in three runs) while still
/// letting a short ready queue run first.
const SWITCH_INTERVAL: Duration = Duration::from_millis(1);

/// Timers and IO are checked at least this often while greenlets keep the
/// hub busy, however long their turns (see `Runtime::next_check_in`).
const CHECK_PERIOD: Duration = Duration::from_millis(1);

/// A greenlet's cooperative budget per turn, in units: an operation that
/// could have waited but did not (see [`Runtime::spend`]) costs
/// [`IO_COST`] if it is a system call, 1 if it is a channel or queue
/// operation or the join of a finished greenlet. Spent, the greenlet
/// yields before its next such operation.
///
/// Measured (the `hub_fairness` tests): 16 socket operations per turn keep
/// a 10 ms sleeper's lateness behind 100 bulk transfers within a few ms,
/// where an unbounded turn (a `write_all` loop whose writes keep
/// succeeding) held the hub for whole socket buffers; 128 channel
/// operations per turn match tokio's budget.
pub(crate) const BUDGET: u32 = 128;

/// What one system call costs of [`BUDGET`]: 16 per turn.
pub(crate) const IO_COST: u32 = 8;

/// A greenlet woken by its timer (see `Runtime::fire_timers`).
pub(super) struct Timed {
    pub(super) entry: Ready,
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

/// What a hub timer does when it fires: two words, so that a node of the
/// timer queue's B-tree stays small (see `timer`).
pub(crate) struct TimerEntry {
    g: Greenlet,
    /// A wait's sequence number (it times out), or [`START`] (the
    /// greenlet starts), or [`SCOPE`] with a `with_timeout` scope's number
    /// (it expires, interrupting whatever the greenlet waits in). Both
    /// numbers count from 0 by one: they never reach bit 62.
    what: u64,
}

const START: u64 = 1 << 62;
const SCOPE: u64 = 1 << 63;

/// A fired [`TimerEntry`], unpacked.
enum Fired {
    Wake(WaitToken, Wake),
    Expire(Greenlet, u64),
}

impl TimerEntry {
    /// Times out the wait `token` names.
    pub(super) fn timeout(token: WaitToken) -> TimerEntry {
        debug_assert!(token.seq < START);
        TimerEntry {
            g: token.g,
            what: token.seq,
        }
    }

    /// Starts `g`, unstarted, waiting with sequence number 1.
    fn start(g: Greenlet) -> TimerEntry {
        TimerEntry { g, what: START }
    }

    /// Expires `g`'s `with_timeout` scope `scope`.
    pub(super) fn scope(g: Greenlet, scope: u64) -> TimerEntry {
        debug_assert!(scope < START);
        TimerEntry {
            g,
            what: SCOPE | scope,
        }
    }

    /// The greenlet it is for.
    pub(super) fn greenlet(&self) -> &Greenlet {
        &self.g
    }

    fn fired(self) -> Fired {
        match self.what {
            w if w & SCOPE != 0 => Fired::Expire(self.g, w & !SCOPE),
            START => Fired::Wake(WaitToken { g: self.g, seq: 1 }, Wake::Ready),
            seq => Fired::Wake(WaitToken { g: self.g, seq }, Wake::TimedOut),
        }
    }
}

/// A ready-queue entry: two words, so it is built and copied in registers
/// (a wider entry assembled field by field and then copied into the queue
/// stalled on store-to-load forwarding). `tag` packs the wait sequence
/// number it answers with what to resume the greenlet with; a throw's
/// payload waits in the greenlet's record.
pub(super) struct Ready {
    pub(super) g: Greenlet,
    tag: u64,
}

const TAG_BITS: u32 = 3;
const TAG_START: u64 = 0;
const TAG_THROW: u64 = 1;
pub(super) const TAG_READY: u64 = 2;
const TAG_TIMED_OUT: u64 = 3;
const TAG_LOOP_EXIT: u64 = 4;

impl Ready {
    #[inline(always)]
    pub(super) fn new(g: Greenlet, seq: u64, what: u64) -> Ready {
        Ready {
            g,
            tag: (seq << TAG_BITS) | what,
        }
    }

    /// An entry that resumes wait `seq` of `g` with `wake`.
    #[inline]
    pub(super) fn for_wake(g: Greenlet, seq: u64, wake: Wake) -> Ready {
        let what = match wake {
            Wake::Ready => TAG_READY,
            Wake::TimedOut => TAG_TIMED_OUT,
            Wake::LoopExit => TAG_LOOP_EXIT,
        };
        Ready::new(g, seq, what)
    }

    /// An entry that throws `g`'s pending payload in (wait `seq`).
    pub(super) fn throw(g: Greenlet, seq: u64) -> Ready {
        Ready::new(g, seq, TAG_THROW)
    }

    /// Whether it throws the pending payload in.
    fn is_throw(&self) -> bool {
        self.tag & ((1 << TAG_BITS) - 1) == TAG_THROW
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
pub(super) struct ReadyQueue {
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

    /// Takes entry `r % len` (seeded scheduling): it is swapped to the
    /// front and taken from there.
    fn pop_random(&mut self, r: u64, now: u64) -> Option<Ready> {
        let i = (r % self.len().max(1) as u64) as usize;
        if i > 0 {
            if let (Some(first), Some(other)) = (self.first.as_mut(), self.rest.get_mut(i - 1)) {
                std::mem::swap(first, other);
            }
        }
        self.pop_front(now)
    }

    pub(super) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Takes every entry, in order.
    pub(super) fn drain(&mut self) -> Vec<Ready> {
        self.first
            .take()
            .into_iter()
            .chain(self.rest.drain(..))
            .collect()
    }
}

impl Runtime {
    /// How many entries of the ready queue have been popped so far: the
    /// clock by which a parked greenlet's stack counts as cold.
    #[inline(always)]
    pub(crate) fn pops(&self) -> u64 {
        self.popped.get()
    }

    /// Queues a greenlet that has never run, to start on the next tick.
    pub(super) fn schedule_start(&self, g: Greenlet) {
        let seq = g.inner.wait_seq.get();
        self.push_ready(Ready::new(g, seq, TAG_START));
    }

    /// Queues `entry` at the back of the ready queue, or of the timed queue
    /// while timers fire.
    #[inline(always)]
    pub(super) fn push_ready(&self, entry: Ready) {
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
                    return Self::pop_timed(&mut timed, self.popped.get());
                }
                // Promoted (a clock read only while a woken timer waits
                // behind others, and only between turns).
                Some(t)
                    if turns > t.turns_then
                        && turns > self.promoted_at.get()
                        && t.woke.elapsed() >= SWITCH_INTERVAL =>
                {
                    self.promoted_at.set(turns);
                    return Self::pop_timed(&mut timed, self.popped.get());
                }
                Some(_) => {}
                None => self.any_timed.set(false),
            }
        }
        let entry = if self.sched_rng.get() == 0 {
            self.ready.borrow_mut().pop_front(self.popped.get())
        } else {
            let r = self.next_random();
            self.ready.borrow_mut().pop_random(r, self.popped.get())
        };
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

    /// Takes the first timed entry. The one after it, likely to run soon
    /// (woken sleepers run in a row once late), has its stack prefetched
    /// if cold, as the ready queue does for its next entry: a sleeper that
    /// parked long ago is out of cache.
    #[inline(always)]
    fn pop_timed(timed: &mut VecDeque<Timed>, now: u64) -> Option<Ready> {
        let t = timed.pop_front()?;
        if let Some(next) = timed.front() {
            next.entry.g.inner.prefetch_if_cold(now);
        }
        Some(t.entry)
    }

    /// Seeded scheduling on (`Some`) or off; see `Hub::set_schedule_seed`.
    pub(super) fn set_schedule_seed(&self, seed: Option<u64>) {
        self.sched_seed.set(seed);
        self.sched_rng.set(seed.map_or(0, seed_state));
        self.timers
            .borrow_mut()
            .set_tie_seed(seed.map(|s| seed_state(s.rotate_left(32))));
        if seed.is_some() {
            self.ticks.set(1); // the next pick goes through `pop_ready`
        }
    }

    /// The next number of the seeded source.
    fn next_random(&self) -> u64 {
        let mut x = self.sched_rng.get();
        let r = xorshift(&mut x);
        self.sched_rng.set(x);
        r
    }

    /// Turns taken from the ready queue: entries popped, less the stale
    /// ones `pop_ready` saw. Exact while timed entries wait (every pop then
    /// goes through `pop_ready`), which is when the timer rule reads it.
    fn turns(&self) -> u64 {
        self.popped.get() - self.stale_popped.get()
    }

    /// How many entries are queued to run (stale ones included).
    pub(super) fn ready_len(&self) -> usize {
        self.ready.borrow().len() + self.timed.borrow().len()
    }

    /// Whether anything is queued to run.
    fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty() || !self.timed.borrow().is_empty()
    }

    /// Queues a greenlet that has never run, to start at `deadline`
    /// (`spawn_later`); the timer's key cancels the start.
    pub(super) fn schedule_start_at(&self, g: Greenlet, deadline: Instant) -> TimerKey {
        // An unstarted greenlet "waits" with sequence 1 for its start.
        g.inner.wait_seq.set(1);
        g.inner.waiting.set(super::info::Waiting::Start);
        g.inner.deadline.set(Some(deadline));
        self.timers
            .borrow_mut()
            .insert(deadline, TimerEntry::start(g))
    }

    /// Cancels a timer (nothing happens if it fired or was cancelled).
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
        if !super::abort::UNWINDS && e.is_throw() && super::abort::take_throw(self, &e.g) {
            return None; // abandoned instead (a `panic = "abort"` build)
        }
        self.budget.set(self.budget_limit.get());
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

    /// Spends `cost` of the running greenlet's budget before an operation
    /// that may complete without waiting (a socket call, a channel or
    /// queue operation). Once the budget is spent the greenlet yields
    /// first: it goes to the back of the ready queue, and the hub gets to
    /// fire timers and poll IO, so that a loop whose operations keep
    /// succeeding cannot hold the hub. A turn ends (and the budget is
    /// refilled) whenever the greenlet waits.
    ///
    /// Called before the operation, never after: the yield may raise a
    /// kill or an expired `with_timeout` scope, and an operation that had
    /// already moved data would then lose it.
    #[inline(always)]
    pub(crate) fn spend(&self, cost: u32) {
        let b = self.budget.get();
        if b > cost {
            self.budget.set(b - cost);
        } else {
            self.budget_spent();
        }
    }

    #[cold]
    #[inline(never)]
    fn budget_spent(&self) {
        self.budget.set(self.budget_limit.get());
        // The hub's own code (drops, timer callbacks) never yields, and a
        // greenlet that is unwinding may not switch (`yield_now` returns).
        if self.current_record().kind() == super::record::Kind::Hub {
            return;
        }
        self.yields.set(self.yields.get() + 1);
        self.yield_now();
    }

    /// Fires due timers and polls IO. With `idle`, the ready queue is empty:
    /// block until the next timer or IO event. Returns `false` when idle and
    /// nothing could ever make a greenlet ready.
    #[inline(never)]
    fn maintain(&self, idle: bool) -> bool {
        let now = Instant::now();
        self.ticks.set(self.next_check_in(now));
        self.fire_timers(now);
        self.drain_inbox();
        self.compact_step(now, idle && !self.has_ready());
        // After the step: it may have queued its probe greenlet.
        let has_ready = self.has_ready();
        if !idle || has_ready {
            if self.external_waits.get() > 0 {
                self.poll_io(Some(Duration::ZERO));
            }
            return true;
        }
        let next = self.timers.borrow().next_deadline();
        if next.is_none() && self.external_waits.get() == 0 && !self.inbox_keeps_alive() {
            return false;
        }
        let mut timeout = next.map(|d| d.saturating_duration_since(now));
        if let (Some(at), None) = (self.compact_deadline(), self.clock_advance.get()) {
            // Idle compaction's next step (see `compact`); it does not
            // keep the hub alive by itself (checked above). Under virtual
            // time its steps wait for the timers instead.
            let d = at.saturating_duration_since(now);
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        // About to block: a good moment to give back the memory of the
        // stacks that finished since (no greenlet waits for it).
        self.release_stacks();
        if let (Some(advance), Some(d)) = (self.clock_advance.get(), timeout) {
            timeout = self.advance_clock(advance, d, next);
        }
        self.poll_io(timeout);
        let now = Instant::now();
        // Time spent blocked is not greenlets' work (see `next_check_in`).
        self.last_check.set(now);
        self.fire_timers(now);
        self.drain_inbox();
        true
    }

    /// Virtual time (`Hub::set_clock_advance`): the idle hub's next timer
    /// is `d` away, at `next`. Unless IO is ready or another thread may
    /// wake a greenlet, asks `advance` to move the clock by `d`. Returns how
    /// long the poll that follows still blocks: what is left until `next`
    /// (zero once the clock has moved; all of `d` when it may not).
    #[cold]
    fn advance_clock(
        &self,
        advance: fn(Duration),
        d: Duration,
        next: Option<Instant>,
    ) -> Option<Duration> {
        if d.is_zero() || self.inbox_keeps_alive() {
            return Some(d);
        }
        self.poll_io(Some(Duration::ZERO));
        if self.has_ready() {
            return Some(Duration::ZERO);
        }
        advance(d);
        next.map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// How many switches until the next check of timers and IO:
    /// `event_interval`, scaled down when the last interval's switches took
    /// longer than [`CHECK_PERIOD`] in all (long turns: a timer or an IO
    /// event would otherwise wait for `event_interval` of them).
    fn next_check_in(&self, now: Instant) -> u32 {
        if self.sched_rng.get() != 0 {
            // Seeded: every pick goes through `pop_ready`.
            return 1;
        }
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
            match due.map(TimerEntry::fired) {
                Some(Fired::Expire(g, scope)) => self.expire_scope(&g, scope),
                Some(Fired::Wake(token, wake)) => {
                    self.wake(&token, wake);
                }
                None => break,
            }
        }
    }

    /// Waits for IO up to `timeout` (`None`: until an event) and wakes the
    /// greenlets whose fds became ready.
    fn poll_io(&self, timeout: Option<Duration>) {
        let blocks = timeout != Some(Duration::ZERO);
        if blocks {
            self.beat_idle(true);
        }
        // The watchers an event wakes pass through one reused vector.
        let mut watchers = Vec::new();
        let polled = self.poller.borrow_mut().poll(timeout, |event| {
            // Applying an event only touches the slab and the ready queue
            // (never user code), so it may run under the poll's borrow.
            let waiters = self.io.borrow_mut().apply(event, &mut watchers);
            for t in waiters.into_iter().flatten().chain(watchers.drain(..)) {
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
        if blocks {
            self.beat_idle(false);
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
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::hub::rt;

    /// Spawns a greenlet that logs `name` when it runs. While `woke` is
    /// set, its start goes to the timed queue as if its timer had fired
    /// then (the way `fire_timers` queues a sleeper).
    fn spawn_logged(
        log: &Rc<RefCell<Vec<&'static str>>>,
        name: &'static str,
        woke: Option<Instant>,
    ) -> crate::JoinHandle<()> {
        rt().firing.set(woke);
        let log = log.clone();
        let h = crate::spawn(move || log.borrow_mut().push(name));
        rt().firing.set(None);
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

    #[test]
    fn a_timer_entry_unpacks_to_what_it_was_made_for() {
        let g = rt().current();
        let same = |a: &Greenlet| Rc::ptr_eq(&a.inner, &g.inner);
        assert_eq!(std::mem::size_of::<TimerEntry>(), 16);
        let big = START - 1; // the largest number either kind may carry
        for seq in [0, 7, big] {
            let token = WaitToken { g: g.clone(), seq };
            match TimerEntry::timeout(token).fired() {
                Fired::Wake(t, Wake::TimedOut) => assert!(same(&t.g) && t.seq == seq),
                _ => panic!("a timeout of wait {seq} unpacked to something else"),
            }
            match TimerEntry::scope(g.clone(), seq).fired() {
                Fired::Expire(h, scope) => assert!(same(&h) && scope == seq),
                Fired::Wake(..) => panic!("scope {seq} unpacked to a wake"),
            }
        }
        match TimerEntry::start(g.clone()).fired() {
            Fired::Wake(t, Wake::Ready) => assert!(same(&t.g) && t.seq == 1),
            _ => panic!("a start unpacked to something else"),
        }
    }
}
