//! The switch: the mailbox that carries values between greenlets, the
//! trampoline (the root loop) that resumes every greenlet, and the making
//! and unwinding of greenlets.
//!
//! corosensei coroutines are asymmetric (`resume`/`suspend`). verdant builds
//! the symmetric switch as a *trampoline* on the thread's own stack, the stack
//! of the *main* greenlet:
//!
//! ```text
//!   main stack (root)                        greenlet stacks
//!   ─────────────────                        ───────────────
//!   main: g1.switch(v) ──► root loop ──resume(v)──► g1 runs
//!                            ▲   │                   │ g1: g2.switch(w)
//!                            │   └◄──suspend(Switch{g2, w})
//!                            │   ──resume(w)──────► g2 runs
//!                            │                       │ g2 returns r
//!                            └◄──return r ───────────┘ → parent of g2
//! ```
//!
//! Every resume happens from the root, so a greenlet's stack never holds
//! another greenlet's frames, and main ↔ child costs one resume and one
//! suspend. The hub is a pseudo-greenlet whose "switch" runs the scheduler
//! inside the same root loop. Only this module touches corosensei's
//! coroutines.

use std::borrow::Cow;
use std::io;
use std::panic::{self, AssertUnwindSafe, Location};
use std::ptr;
use std::rc::Rc;

use corosensei::CoroutineResult;

use super::info::Waiting;
use super::record::{Co, CoSlot, Inner, Kind, MakeCo, Outcome, State, Y};
use super::{abort, try_rt, Runtime, LOOP_EXIT_MESSAGE};
use crate::greenlet::{Greenlet, GreenletExit};
use crate::stack;
use crate::value::{Input, Value, Wake};

impl Runtime {
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
        // SAFETY: (mailbox) the mailbox is empty, so nothing is overwritten;
        // only this thread touches it.
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
        // SAFETY: (mailbox) a value was posted and not collected yet.
        unsafe { (*self.mail.get()).assume_init_read() }
    }

    /// Whether the mailbox holds a throw (it must hold something).
    pub(crate) fn mail_is_thrown(&self) -> bool {
        // SAFETY: (mailbox) as in `collect`; this only reads the value in
        // place.
        unsafe { (*self.mail.get()).assume_init_ref().is_thrown() }
    }
}

/// What a throw into a dead greenlet becomes on its way up the parent
/// chain: a [`GreenletExit`] counts as a normal return of that value.
fn throw_to_parent(p: crate::value::Payload) -> Value {
    if p.is::<GreenletExit>() {
        Value::new(GreenletExit)
    } else {
        Value::thrown(p)
    }
}

/// The hot path of every switch and hub wait, once the value for `target`
/// is in the mailbox: one corosensei suspend (from a child) or resume
/// (from main).
#[inline]
fn switch_posted(rt: &Runtime, target: &Greenlet) -> Option<Value> {
    let cur_ptr = rt.current_ptr();
    let target_ptr = Rc::as_ptr(&target.inner);
    if ptr::eq(cur_ptr, target_ptr) {
        return Some(rt.collect());
    }
    let cur = rt.current_record();
    if cur.kind == Kind::Main {
        Some(rt.run_root(target))
    } else {
        Some(suspend(rt, cur, target_ptr))
    }
}

/// Suspends the running (non-main) greenlet `cur`, asking the root loop to
/// switch to `target` (its input is already in the mailbox); returns what it
/// is resumed with.
///
/// Always inlined, as [`switch_to_hub`] is: idle compaction counts on a
/// hub wait's switch happening in the frame of the function that called
/// `park` (see `Runtime::park_compactable`).
#[inline(always)]
fn suspend(rt: &Runtime, cur: &Inner, target: *const Inner) -> Value {
    cur.note_park(rt.pops());
    // A raw pointer: the caller borrows a handle to `target` for the whole
    // switch, and the root loop takes its own handle before anything runs.
    rt.mail_target.set(target);
    let y = cur.yielder.get();
    debug_assert!(!y.is_null());
    // SAFETY: (current) `cur` is running, so its coroutine is alive and we
    // are on its stack; `yielder` was set when it started and points into
    // that stack.
    unsafe { (*y).suspend(()) };
    if cur.dying.get() {
        dying_exit();
    }
    rt.collect()
}

/// A hub wait's switch for idle compaction's probe (see `compact`): as
/// [`suspend`] to the hub, but with corosensei's suspend called through a
/// pointer, so its out-of-line body runs (where a switch inlines it
/// instead, it writes less below the stack pointer: the three words it
/// pushes). The stack below this function's stack pointer is filled with
/// a pattern just before the switch and read back just after. Returns
/// what it is resumed with, and how far below the stack pointer the
/// switch wrote (`None`: farther than the fill, or nothing found).
#[inline(never)]
pub(super) fn probe_switch(rt: &Runtime) -> (Value, Option<usize>) {
    let cur = rt.current_record();
    debug_assert!(cur.kind == Kind::Child && may_switch(rt));
    cur.note_park(rt.pops());
    rt.mail_target.set(HUB_WAIT);
    let y = cur.yielder.get();
    debug_assert!(!y.is_null());
    let switch: fn(&Y, ()) = std::hint::black_box(Y::suspend);
    let sp = super::compact::fill_below_sp();
    // SAFETY: (current) as in `suspend`.
    switch(unsafe { &*y }, ());
    let depth = super::compact::first_changed(sp).map(|a| sp - a);
    if cur.dying.get() {
        dying_exit();
    }
    (rt.collect(), depth)
}

/// Resumed by [`unwind_now`]: its last handle is gone, so it unwinds.
#[cold]
#[inline(never)]
fn dying_exit() -> ! {
    abort::raise(Box::new(GreenletExit))
}

/// Turns what a raw switch received into its return value.
#[inline]
fn receive(value: Option<Value>) -> Value {
    match value {
        Some(v) if !v.is_special() => v,
        other => receive_slow(other),
    }
}

#[cold]
#[inline(never)]
fn receive_slow(value: Option<Value>) -> Value {
    let Some(v) = value else {
        return Value::empty();
    };
    match v.into_input() {
        Input::Value(v) => v,
        Input::Throw(p) => abort::raise(p),
        Input::Wake(Wake::LoopExit) => {
            let stuck = try_rt(|rt| rt.stuck()).unwrap_or_default();
            panic!("{LOOP_EXIT_MESSAGE}; {stuck}")
        }
        Input::Wake(w) => panic!(
            "verdant: a hub wake-up ({w:?}) reached a greenlet waiting in a raw switch; \
             greenlets parked in hub waits must not be switched to by hand"
        ),
    }
}

/// A handle to the root loop's `target`: `held` when the loop holds one,
/// else a new one (the first target, which main's caller borrows).
fn owned(held: &mut Option<Greenlet>, target: *const Inner) -> Greenlet {
    match held.take() {
        Some(g) => g,
        // SAFETY: a target without a held handle is the first one, kept
        // alive by the `&Greenlet` main's caller lends for the whole switch.
        None => unsafe { Greenlet::from_borrowed_ptr(target) },
    }
}

impl Runtime {
    /// The trampoline: runs on the main greenlet's stack until something
    /// switches back to main, and returns what main receives. `target`'s
    /// input is in the mailbox.
    ///
    /// The loop is kept small on purpose: resuming a suspended child and
    /// following it to the next one is the hot path of every switch; the
    /// hub, dead and unstarted-throw targets and a finishing greenlet are
    /// handled out of line.
    pub(crate) fn run_root(&self, first: &Greenlet) -> Value {
        let main_ptr = Rc::as_ptr(&self.main.inner);
        let hub_ptr = Rc::as_ptr(&self.hub.inner);
        self.main.inner.state.set(State::Suspended);
        // The greenlet to run next, and our own handle to it: none for the
        // first, which main's caller borrows for the whole switch (and main
        // cannot be unwound while it waits here). Every later one is named
        // by a suspended greenlet that could be dropped while it runs.
        let mut target: *const Inner = Rc::as_ptr(&first.inner);
        let mut held: Option<Greenlet> = None;
        loop {
            // SAFETY: `target` is kept alive by `first` or `held`.
            let inner = unsafe { &*target };
            let runnable = inner.kind == Kind::Child
                && match inner.state.get() {
                    State::Suspended => true,
                    State::Unstarted => !self.mail_is_thrown(),
                    _ => false,
                };
            if !runnable {
                if inner.kind == Kind::Main {
                    break;
                }
                let next = if inner.kind == Kind::Hub && !self.mail_is_thrown() {
                    // Main's hub wait, or a switch to the hub by hand (its
                    // value is dropped): the scheduler picks who runs next.
                    drop(self.collect());
                    self.next_ready_slow()
                } else {
                    self.route(owned(&mut held, target))
                };
                target = Rc::as_ptr(&next.inner);
                held = Some(next);
                continue;
            }
            #[cfg(debug_assertions)]
            inner.assert_owner();
            // Only the root loop touches a live greenlet's coroutine: the
            // release path cannot run for `target` (we hold a handle).
            // SAFETY: (one runner) and a running greenlet is never resumed
            // again (a switch to the current greenlet returns early).
            let co = match unsafe { &mut *inner.co.get() } {
                CoSlot::Live(co) => co,
                _ => self.make_live(inner),
            };
            if self.hooks.get() != 0 {
                self.on_switch(inner);
            }
            inner.state.set(State::Running);
            self.set_current_child(inner);
            let result = co.resume(());
            self.set_current_main(main_ptr);
            match result {
                CoroutineResult::Yield(()) => {
                    inner.state.set(State::Suspended);
                    let next = self.mail_target.get();
                    debug_assert!(!next.is_null(), "a suspend names its target");
                    if ptr::eq(next, main_ptr) {
                        break; // the common way home: no handle needed
                    }
                    if ptr::eq(next, HUB_WAIT) {
                        // A hub wait or yield (the hot path of every
                        // cooperative block): schedule straight away, without
                        // a handle to the hub or another turn of the loop.
                        let g = self.next_ready();
                        target = Rc::as_ptr(&g.inner);
                        held = Some(g);
                        continue;
                    }
                    if ptr::eq(next, hub_ptr) && !self.mail_is_thrown() {
                        // A switch to the hub by hand: its value is dropped
                        // and the scheduler picks who runs next. (The loop's
                        // top would do the same; leaving it to that measured
                        // 3 ns slower per yield round trip, a code-layout
                        // effect on the HUB_WAIT path above.)
                        drop(self.collect());
                        let g = self.next_ready_slow();
                        target = Rc::as_ptr(&g.inner);
                        held = Some(g);
                        continue;
                    }
                    // We take our own strong count before anything can run
                    // (dropping the old `held` may unwind a greenlet whose
                    // frames own the handle the sender borrows).
                    // SAFETY: the suspended sender borrows a handle to `next`
                    // for its whole switch, so the record is alive.
                    let g = unsafe { Greenlet::from_borrowed_ptr(next) };
                    target = next;
                    held = Some(g);
                }
                CoroutineResult::Return(()) => {
                    let next = self.finished(owned(&mut held, target));
                    target = Rc::as_ptr(&next.inner);
                    held = Some(next);
                }
            }
        }
        drop(held);
        if self.hooks.get() != 0 {
            self.on_switch(&self.main.inner);
        }
        self.main.inner.state.set(State::Running);
        self.set_current_main(main_ptr);
        self.collect()
    }

    /// Where a switch to a target that cannot simply be resumed goes (a
    /// throw into the hub, a dead greenlet, an unstarted one receiving a
    /// throw); leaves the new target's input in the mailbox and returns it.
    #[cold]
    #[inline(never)]
    fn route(&self, target: Greenlet) -> Greenlet {
        match target.inner.kind {
            Kind::Main => unreachable!("main is returned to by the root loop"),
            // A throw into the hub goes to its parent, main (the root loop
            // schedules plain switches to the hub itself).
            Kind::Hub => self.main.clone(),
            Kind::Child => match target.inner.state.get() {
                State::Unstarted => self.finish_unstarted(target),
                State::Dead => {
                    let v = match self.collect().into_input() {
                        Input::Throw(p) => throw_to_parent(p),
                        Input::Wake(_) => {
                            // A stale hub wake for a dead greenlet: ignore it.
                            self.post(Value::empty());
                            return self.hub.clone();
                        }
                        Input::Value(v) => v,
                    };
                    self.post(v);
                    target.inner.parent().unwrap_or_else(|| self.main.clone())
                }
                State::Suspended | State::Running => {
                    unreachable!("only main runs while the root loop does")
                }
            },
        }
    }

    /// A greenlet's function has returned (or unwound): recycles its stack,
    /// records how it ended (once: see `Completion::record`), notifies its
    /// links, and posts its exit to its parent, which it returns.
    #[inline(never)]
    fn finished(&self, g: Greenlet) -> Greenlet {
        let inner = &*g.inner;
        inner.state.set(State::Dead);
        self.unlist(inner);
        // SAFETY: (one runner) only the root loop touches a live greenlet's
        // coroutine, and this one has just finished.
        let CoSlot::Live(co) = (unsafe { (*inner.co.get()).take() }) else {
            unreachable!("a finished greenlet's coroutine is live")
        };
        self.recycle_stack(co.into_stack(), inner.low_water.get());
        let exit = self
            .mail_exit
            .take()
            .expect("verdant: a finished greenlet leaves its exit");
        let to_parent = inner.completion.record(exit, inner.task);
        self.notify_links(&g);
        self.post(to_parent);
        inner.parent().unwrap_or_else(|| self.main.clone())
    }

    /// Kills an unstarted greenlet whose input (in the mailbox) is a throw:
    /// it dies without running and the throw goes on to its parent, which
    /// this returns.
    fn finish_unstarted(&self, g: Greenlet) -> Greenlet {
        let payload = match self.collect().into_input() {
            Input::Throw(p) => p,
            _ => unreachable!("finish_unstarted is called for a throw"),
        };
        // SAFETY: (one runner) the greenlet is unstarted, so no one else
        // uses its slot.
        let co = unsafe { (*g.inner.co.get()).take() };
        g.inner.state.set(State::Dead);
        self.unlist(&g.inner);
        match co {
            CoSlot::Live(mut co) => {
                co.force_unwind(); // drops the never-run function
                self.recycle_stack(co.into_stack(), g.inner.low_water.get());
            }
            CoSlot::Deferred(stack, make) => {
                drop(make); // the never-run function
                self.unreserve_stack(stack);
            }
            // Only a parked greenlet, which has run, is ever compacted.
            CoSlot::Empty | CoSlot::Compacted(..) => {}
        }
        let to_parent = g.inner.completion.record(Err(payload), g.inner.task);
        self.notify_links(&g);
        self.post(to_parent);
        g.inner.parent().unwrap_or_else(|| self.main.clone())
    }

    /// Readies the coroutine of a greenlet about to be resumed whose slot
    /// does not hold it ready: a compacted one gets its frames back on its
    /// stack; an unstarted one that was created without a resident stack
    /// (see `create`) is made, on a resident stack if the pool has one by
    /// now (a greenlet that finished since left it), else on the stack
    /// reserved for it. Returns the coroutine, now in its slot.
    #[cold]
    #[inline(never)]
    #[allow(clippy::mut_from_ref)] // the slot is an UnsafeCell: (one runner)
    fn make_live<'a>(&self, inner: &'a Inner) -> &'a mut Co {
        // SAFETY: (one runner) only the root loop resumes a greenlet, and
        // this one is not running, so nothing else uses its slots.
        let slot = unsafe { &mut *inner.co.get() };
        let (stack, make) = match slot.take() {
            CoSlot::Deferred(stack, make) => (stack, make),
            CoSlot::Compacted(parked) => {
                *slot = CoSlot::Live((*parked).into_live());
                let CoSlot::Live(co) = slot else {
                    unreachable!("just stored")
                };
                return co;
            }
            _ => unreachable!("verdant: a live greenlet always has its coroutine"),
        };
        let stack = match self.take_resident_stack(stack.usable()) {
            Some(resident) => {
                self.unreserve_stack(stack);
                resident
            }
            None => {
                self.arm_reserved_stack(&stack);
                stack
            }
        };
        // SAFETY: the fault record is written only while its greenlet does
        // not run (the overflow handler reads it while it does).
        let fi = unsafe { &mut *inner.fault.get() };
        (fi.guard_lo, fi.guard_hi) = stack.guard_range();
        inner.low_water.set(stack.top());
        *slot = CoSlot::Live(make.call(stack));
        let CoSlot::Live(co) = slot else {
            unreachable!("just stored")
        };
        co
    }

    /// Gives back a stack reserved for a greenlet that never ran on it.
    fn unreserve_stack(&self, stack: stack::Stack) {
        if !self.shutting_down.get() {
            self.stacks.borrow_mut().unreserve(stack);
        }
    }

    // The overflow handler finds the running greenlet's guard range through
    // `current` (see `hub::current_fault_info`), so a switch updates one
    // pointer and nothing else.
    #[inline(always)]
    pub(crate) fn set_current_child(&self, inner: &Inner) {
        self.current.set(inner as *const Inner);
    }

    #[inline(always)]
    fn set_current_main(&self, main: *const Inner) {
        self.current.set(main);
    }

    /// Makes `inner` current for a nested forced unwind; returns the previous.
    fn swap_current(&self, inner: &Inner) -> *const Inner {
        self.current.replace(inner as *const Inner)
    }

    fn restore_current(&self, prev: *const Inner) {
        self.current.set(prev);
    }

    /// The running greenlet's record.
    #[inline(always)]
    pub(crate) fn current_record(&self) -> &Inner {
        // The running greenlet's record is held by the root loop; main's
        // and the hub's by the runtime (invariant (runtime)).
        // SAFETY: (current) `current` always names a live record, which
        // outlives the running greenlet's frames.
        unsafe { &*self.current.get() }
    }

    /// The running greenlet's id.
    pub(crate) fn current_id(&self) -> u64 {
        self.current_record().id
    }

    /// The running greenlet's record's address, for identity checks.
    #[inline(always)]
    pub(crate) fn current_ptr(&self) -> *const Inner {
        self.current.get()
    }

    /// A handle to the running greenlet.
    #[inline]
    pub(crate) fn current(&self) -> Greenlet {
        // SAFETY: (current) `current` names a live record owned by an Rc.
        unsafe { Greenlet::from_borrowed_ptr(self.current.get()) }
    }
}

/// Ends a greenlet that is not running, here and now: a suspended one is
/// unwound on its own stack (its destructors run, as for a kill), an
/// unstarted one has its function dropped; its stack is recycled and it is
/// completed as killed. Used when its last handle goes away, and by the
/// hub's shutdown for greenlets still parked at thread exit.
#[cold]
pub(crate) fn unwind_now(g: &Greenlet) {
    let inner = &g.inner;
    if inner.kind != Kind::Child || matches!(inner.state.get(), State::Running | State::Dead) {
        return;
    }
    if inner.has_run() && (inner.quiet.get() || !abort::UNWINDS) {
        // Parked inside a patched libc call: a foreign frame is on its
        // stack, which no unwind may cross (see `Inner::quiet`); or the
        // program cannot unwind at all (see `abort`). It can neither unwind
        // nor run on, so it is abandoned: leaked, stack and all, its
        // destructors not run, and completed as killed.
        inner.dying.set(true);
        let warn = !inner.quiet.get();
        if try_rt(|rt| abort::abandon(Some(rt), g, warn)).is_none() {
            abort::abandon(None, g, warn); // the runtime (and its list) is gone
        }
        return;
    }
    // SAFETY: (one runner) the greenlet is neither running nor dead, so the
    // root loop is not resuming it and nothing else borrows its coroutine
    // slot.
    let mut co = match unsafe { (*inner.co.get()).take() } {
        CoSlot::Live(co) => co,
        // Its frames back before it unwinds or leaks.
        CoSlot::Compacted(parked) => (*parked).into_live(),
        CoSlot::Empty => return,
        CoSlot::Deferred(stack, make) => {
            // Unstarted, with no coroutine yet: its function is dropped as
            // the eager path's `force_unwind` drops it, as the current
            // greenlet and unable to switch.
            inner.dying.set(true);
            let prev = try_rt(|rt| rt.swap_current(inner));
            inner.state.set(State::Running);
            drop(make);
            inner.state.set(State::Dead);
            if let Some(prev) = prev {
                try_rt(|rt| rt.restore_current(prev));
            }
            inner.completion.mark(Outcome::Killed);
            try_rt(|rt| {
                rt.unlist(inner);
                rt.unreserve_stack(stack);
                rt.notify_links(g);
            });
            return;
        }
    };
    inner.dying.set(true);
    let prev = try_rt(|rt| rt.swap_current(inner));
    if prev.is_none() && inner.has_run() {
        // The runtime is gone (this is the thread's teardown, after the
        // hub's shutdown): the greenlet's frames may hold references to it
        // (invariant (runtime)), so it must never run again. It is leaked,
        // stack and all, instead of unwound.
        inner.state.set(State::Dead);
        // No runtime to take it off its list: the list is gone too.
        leak(co);
        return;
    }
    inner.state.set(State::Running);
    if inner.has_run() {
        // Resumed with `dying` set, its pending switch raises GreenletExit
        // (see `suspend`), so its destructors run on its own stack; any
        // switch it attempts meanwhile is refused. The mailbox is not
        // touched: it may hold a value in transit to another greenlet.
        // Its root catches the unwind and leaves an exit: discard it.
        try_rt(|rt| rt.dying_catches.set(0));
        if let CoroutineResult::Yield(()) = co.resume(()) {
            // It caught its exit over and over (`dying_caught`): it can
            // neither finish nor run on, so it is leaked as it stands.
            eprintln!(
                "verdant: greenlet '{}' caught its GreenletExit {DYING_CATCH_LIMIT} times while being dropped; \
                 it is leaked, stack and all, and its remaining destructors do not run",
                inner.display_name()
            );
            try_rt(|rt| drop(rt.mail_exit.take()));
            inner.state.set(State::Dead);
            leak(co);
            inner.completion.mark(Outcome::Killed);
            try_rt(|rt| rt.unlist(inner));
            if let Some(prev) = prev {
                try_rt(|rt| rt.restore_current(prev));
            }
            try_rt(|rt| rt.notify_links(g));
            return;
        }
    } else {
        co.force_unwind(); // drops the never-run function
    }
    try_rt(|rt| drop(rt.mail_exit.take()));
    inner.state.set(State::Dead);
    try_rt(|rt| rt.unlist(inner));
    if let Some(prev) = prev {
        try_rt(|rt| rt.restore_current(prev));
    }
    let stack = co.into_stack();
    let low = inner.low_water.get();
    inner.completion.mark(Outcome::Killed);
    try_rt(|rt| {
        rt.recycle_stack(stack, low);
        rt.notify_links(g);
    });
}

/// Leaks the coroutine in `inner`'s slot (see [`leak`]), if it has one.
///
/// # Safety
///
/// (one runner) `inner`'s greenlet is not running, so nothing else uses its
/// slot.
pub(super) unsafe fn leak_slot(inner: &Inner) {
    // SAFETY: the caller's promise.
    match unsafe { (*inner.co.get()).take() } {
        CoSlot::Live(co) => leak(co),
        // Its frames go back first, though it never runs again.
        CoSlot::Compacted(parked) => leak((*parked).into_live()),
        _ => {}
    }
}

/// Leaks a coroutine that must never run again, stack and all (see the
/// callers). Its address is kept in a process-wide list, so that a leak
/// checker (valgrind's memcheck) counts it, and the stack slab its `Stack`
/// holds, as still reachable rather than lost: it is kept on purpose.
fn leak(co: Co) {
    static LEAKED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let p = Box::into_raw(Box::new(co)) as usize;
    if let Ok(mut leaked) = LEAKED.lock() {
        leaked.push(p);
    }
}

/// Makes a child greenlet running `f` (already type-erased to `Value`s),
/// unstarted. A `task`'s exit is kept for its `JoinHandle` rather than
/// switched to its parent (see `Completion::record`).
pub(super) fn create<F>(
    rt: &Runtime,
    parent: Greenlet,
    stack_size: Option<usize>,
    name: Option<Cow<'static, str>>,
    task: bool,
    site: &'static Location<'static>,
    f: F,
) -> io::Result<Greenlet>
where
    F: FnOnce(Value) -> Value + 'static,
{
    let usable = stack::round_size(stack_size.unwrap_or_else(|| rt.default_stack_size()))?;
    // With a resident stack free, the coroutine is made now, its first
    // frame written on it. Without one, a stack is reserved (address space,
    // so that running out of it is still this call's error). While fewer
    // greenlets wait to run than the cache keeps stacks for, the coroutine
    // is made on it now too: the stacks of so few would stay resident in
    // the cache anyway, and a deferred start costs an allocation. Past
    // that (a burst), the coroutine is made when the greenlet first runs,
    // by which time one of the greenlets that finish meanwhile may have
    // left a resident stack: a burst of spawns then commits memory only
    // for the greenlets alive at once, not for every one spawned.
    let (stack, deferred) = match rt.take_resident_stack(usable) {
        Some(s) => (s, false),
        None => rt.reserve_stack(usable)?,
    };
    let born = rt.last_check.get();
    // Allocated first and built in place: a record built on the stack and
    // then moved into its `Rc` was copied twice (360 bytes each time, a
    // tenth of a pooled spawn and join).
    let mut record = Rc::<Inner>::new_uninit();
    let inner = Rc::get_mut(&mut record)
        .expect("a new Rc is unique")
        .write(Inner::new(
            rt.next_id(),
            Kind::Child,
            State::Unstarted,
            Some(parent),
            born,
        ));
    inner.task = task;
    inner.site = site;
    {
        let fi = inner.fault.get_mut();
        (fi.guard_lo, fi.guard_hi) = stack.guard_range();
        fi.usable = stack.usable();
        if let Some(n) = &name {
            fi.set_name(n);
        }
    }
    inner.low_water.set(stack.top());
    // SAFETY: written just above.
    let inner = unsafe { record.assume_init() };
    if let Some(n) = name {
        inner.set_name(n);
    }
    let body = move |y: &Y, ()| {
        // The record is found through the runtime rather than captured, so
        // that the closure stays small enough for a deferred start to keep
        // it in place (`MakeCo`). The root loop makes a greenlet current
        // before it resumes it, and holds a handle to its record meanwhile.
        let me = super::rt().current_record();
        me.yielder.set(y);
        // A `spawn_later` start leaves `Waiting::Start`.
        me.waiting.set(Waiting::Nothing);
        // A start, like any resume, leaves this greenlet's input in the
        // mailbox. The root loop never starts a greenlet with a throw (it
        // dies unstarted instead), and a hub start carries no value.
        let v = try_rt(|rt| rt.collect()).unwrap_or_default();
        let exit = panic::catch_unwind(AssertUnwindSafe(move || f(v)));
        // Greenlet-locals die with the greenlet, dropped while it still runs
        // (their destructors may use the runtime); a panic in one is the
        // greenlet's own.
        let locals = try_rt(|rt| rt.current_record().locals.take()).flatten();
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(locals)));
        let exit = match (exit, dropped) {
            (Ok(_), Err(p)) => Err(p),
            (exit, _) => exit,
        };
        try_rt(|rt| rt.mail_exit.set(Some(exit)));
    };
    let slot = if deferred {
        CoSlot::Deferred(stack, MakeCo::new(move |stack| Co::with_stack(stack, body)))
    } else {
        CoSlot::Live(Co::with_stack(stack, body))
    };
    // SAFETY: (one runner) the record was just made; nothing else can see
    // its slot yet.
    unsafe { *inner.co.get() = slot };
    rt.list(&inner);
    Ok(Greenlet { inner })
}

/// Makes the records of a thread's main greenlet and hub.
pub(super) fn new_root_records() -> (Greenlet, Greenlet) {
    let now = std::time::Instant::now();
    let main = Greenlet {
        inner: Rc::new(Inner::new(0, Kind::Main, State::Running, None, now)),
    };
    let hub = Greenlet {
        inner: Rc::new(Inner::new(
            1,
            Kind::Hub,
            State::Suspended,
            Some(main.clone()),
            now,
        )),
    };
    (main, hub)
}

/// `target.switch(value)` (see `Greenlet::switch`).
#[inline]
pub(crate) fn switch_value<T: 'static>(target: &Greenlet, value: T) -> Value {
    let rt = super::rt();
    if !may_switch(rt) {
        drop(value);
        return receive(refuse_switch(rt));
    }
    // Built in place in the mailbox, so the receiver reads it back the way
    // it was written (a value assembled field by field and then copied
    // whole stalls on store-to-load forwarding).
    rt.post(Value::new(value));
    receive(switch_posted(rt, target))
}

/// `target.throw_panic(payload)` (see `Greenlet::throw_panic`).
pub(crate) fn throw_into(target: &Greenlet, payload: crate::value::Payload) -> Value {
    let payload = if abort::UNWINDS {
        payload
    } else {
        match abort::throw_into(super::rt(), target, payload) {
            Ok(v) => return v,
            Err(p) => p,
        }
    };
    receive(switch_to(target, Value::thrown(payload)))
}

/// Switches from the current greenlet to `target`. Returns what the current
/// greenlet receives when it is resumed, or `None` when it may not switch
/// (it is unwinding).
#[inline]
pub(crate) fn switch_to(target: &Greenlet, value: Value) -> Option<Value> {
    switch_in(super::rt(), target, value)
}

/// [`switch_to`] with the runtime at hand.
#[inline]
pub(crate) fn switch_in(rt: &Runtime, target: &Greenlet, value: Value) -> Option<Value> {
    if !may_switch(rt) {
        drop(value);
        return refuse_switch(rt);
    }
    rt.post(value);
    switch_posted(rt, target)
}

/// The `mail_target` of a greenlet suspended into a hub wait (see
/// [`switch_to_hub`]): never the address of a record (they are aligned).
const HUB_WAIT: *const Inner = ptr::without_provenance(1);

/// Parks the current greenlet in the hub: a switch to the hub with an empty
/// value, except that a child posts nothing (the root loop would only drop
/// it) and marks its suspend [`HUB_WAIT`], so the root loop goes straight to
/// the scheduler. Returns what it is resumed with.
///
/// The caller has checked that the greenlet may switch (see
/// [`park`](super::park)).
#[inline(always)]
pub(super) fn switch_to_hub(rt: &Runtime) -> Value {
    debug_assert!(may_switch(rt), "a hub wait begins with begin_wait");
    let cur = rt.current_record();
    if cur.kind == Kind::Main {
        return main_hub_wait(rt);
    }
    // The hub itself never runs (the root loop schedules in its place), so
    // `cur` is a child.
    suspend(rt, cur, HUB_WAIT)
}

/// Main's hub wait, out of line (it runs the root loop on main's stack):
/// the scheduler picks who runs next and posts its input; main itself, if
/// already woken, just collects its own.
#[inline(never)]
fn main_hub_wait(rt: &Runtime) -> Value {
    rt.main.inner.state.set(State::Suspended);
    let next = rt.next_ready();
    rt.run_root(&next)
}

/// Whether the current greenlet may switch now: not while it unwinds
/// (suspending mid-unwind would leak the thread's panic count, which is per
/// thread, into other greenlets), nor while it is being dropped.
/// Checked before anything is posted, because a greenlet unwound by
/// [`unwind_now`] may run while the mailbox holds a value in transit.
#[inline(always)]
fn may_switch(rt: &Runtime) -> bool {
    let cur = rt.current_record();
    !(std::thread::panicking() || cur.dying.get())
}

/// The answer to a switch that [`may_switch`] refused.
#[cold]
#[inline(never)]
fn refuse_switch(rt: &Runtime) -> Option<Value> {
    let cur = rt.current_record();
    if !std::thread::panicking() && cur.has_run() {
        // Being dropped, and it caught the GreenletExit: raise it again.
        dying_caught(rt, cur);
    }
    // Mid-unwind, or an unstarted greenlet's function being dropped.
    None
}

/// How many times a greenlet being dropped may catch its `GreenletExit`
/// and try to wait again before it is given up on (leaked).
pub(crate) const DYING_CATCH_LIMIT: u32 = 100;

/// A greenlet being dropped (`unwind_now`) caught its `GreenletExit` and
/// tries to wait: raises it again, up to [`DYING_CATCH_LIMIT`] times; then
/// hands control back to `unwind_now` for good (a suspension it never
/// resumes), which leaks the greenlet: one that catches its exit in a loop
/// would otherwise hold the thread's teardown forever.
#[cold]
#[inline(never)]
pub(crate) fn dying_caught(rt: &Runtime, cur: &Inner) -> ! {
    let n = rt.dying_catches.get() + 1;
    rt.dying_catches.set(n);
    if n <= DYING_CATCH_LIMIT {
        panic::resume_unwind(Box::new(GreenletExit));
    }
    let y = cur.yielder.get();
    debug_assert!(!y.is_null());
    // `unwind_now` resumed it, receives this suspension and never resumes
    // the coroutine again (it leaks it).
    loop {
        // SAFETY: (current) `cur` runs, so its coroutine lives and we are
        // on its stack; `yielder` was set when it started.
        unsafe { (*y).suspend(()) };
    }
}
