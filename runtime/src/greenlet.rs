//! Greenlets: functions with their own stacks that switch to each other by hand.
//!
//! This is greenlet's model in Rust. A [`Greenlet`] is created without running;
//! the first [`switch`](Greenlet::switch) starts it with the value passed.
//! `switch(value)` is symmetric: it suspends the current greenlet and returns
//! whatever the *next* greenlet to switch back here sends. What a greenlet's
//! function returns goes to its [parent](Greenlet::parent) (by default the
//! greenlet that created it), and switching to a dead greenlet goes up the
//! parent chain. [`throw`](Greenlet::throw) raises [`GreenletExit`] inside a
//! suspended greenlet, unwinding its stack so that destructors run; dropping the
//! last handle of a suspended greenlet does the same.
//!
//! Values travel as [`Value`]: see its docs for why a checked dynamic value.
//!
//! # How it works
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
//! suspend. The hub (the event loop, see [`crate::hub`]) is a pseudo-greenlet
//! whose "switch" runs the scheduler inside the same root loop.
//!
//! Invariants:
//! * Only the root loop calls `Coroutine::resume` (except the forced unwind of a
//!   dropped greenlet, which runs nested and may not switch).
//! * A running greenlet's coroutine is taken out of its record while it runs,
//!   so it cannot be resumed re-entrantly.
//! * Greenlet handles are `!Send`: a greenlet never moves to another thread,
//!   so thread-locals stay sound inside greenlets (reliability §0 fact 6).
//!
//! ```compile_fail
//! // Greenlet handles cannot cross threads.
//! let g = verdant_runtime::Greenlet::current();
//! std::thread::spawn(move || drop(g));
//! ```
//!
//! ```compile_fail
//! // Not even by reference.
//! fn assert_sync<T: Sync>(_: &T) {}
//! assert_sync(&verdant_runtime::Greenlet::current());
//! ```
//!
//! # Caveats
//!
//! * **Drop must not switch.** While a greenlet unwinds (a panic, a kill, or
//!   the drop of its last handle) a switch or a hub wait inside a destructor
//!   returns at once without switching: suspending mid-unwind would leak the
//!   thread's panic count into every other greenlet (reliability §0 fact 5).
//! * **Cycles leak.** Handles are reference counted; a greenlet whose stack
//!   holds the last handle to itself is never freed until its thread's hub
//!   shuts down.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::fault::FaultInfo;
use crate::hub::{with_rt, Runtime};
use crate::stack::{self, Stack};
use crate::task::Completion;
use crate::value::{Exit, Input, Payload, Value, Wake};

// Values do not travel through corosensei: the runtime's mailbox carries
// them (see `Runtime::post`), so every resume/suspend moves `()`, the
// cheapest path (4.2 ns per round trip here, against 9.5 ns for a 40-byte
// payload).
type Co = Coroutine<(), (), (), Stack>;
type Y = Yielder<(), ()>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Unstarted,
    Suspended,
    Running,
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Hub,
    Child,
}

/// The payload of a kill: raised inside a greenlet by [`Greenlet::throw`] or a
/// hub kill, it unwinds the greenlet's stack and counts as a normal exit (its
/// parent receives a `GreenletExit` value, and a killed task is not reported
/// as a panic). Like Python's `GreenletExit`, user code that catches it with
/// `catch_unwind` should re-raise it.
///
/// # Examples
///
/// ```
/// use verdant_runtime::{Greenlet, GreenletExit};
///
/// let g = Greenlet::new(|()| {
///     Greenlet::current().parent().unwrap().switch("started");
///     unreachable!("killed while suspended");
/// });
/// g.switch(());
/// let v = g.throw();
/// assert!(v.is::<GreenletExit>() && g.is_dead());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreenletExit;

impl fmt::Display for GreenletExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GreenletExit")
    }
}

impl std::error::Error for GreenletExit {}

/// The error returned by [`Greenlet::set_parent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParentError {
    /// The new parent chain would loop back to this greenlet.
    Cycle,
    /// The main greenlet and the hub have fixed parents.
    Fixed,
}

impl fmt::Display for ParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParentError::Cycle => f.write_str("cyclic parent chain"),
            ParentError::Fixed => {
                f.write_str("the parent of the main greenlet or the hub cannot be set")
            }
        }
    }
}

impl std::error::Error for ParentError {}

/// The record behind a [`Greenlet`] handle.
pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) state: Cell<State>,
    /// The coroutine; `None` while it runs (taken by the root loop) and once dead.
    co: UnsafeCell<Option<Co>>,
    /// Set when the coroutine starts; valid while it is alive.
    yielder: Cell<*const Y>,
    /// Lowest stack address seen at a switch: how much of the stack to scrub.
    low_water: Cell<usize>,
    parent: RefCell<Option<Greenlet>>,
    /// Boxed: most greenlets keep their default name.
    name: RefCell<Option<Box<Cow<'static, str>>>>,
    /// Read by the overflow handler; written only while not running.
    fault: UnsafeCell<FaultInfo>,
    /// Hub waits: the sequence number of the current wait.
    pub(crate) wait_seq: Cell<u64>,
    /// The stack address (within a few bytes of the stack pointer) at the
    /// last switch out; 0 until the first. See [`Inner::prefetch_if_cold`].
    park_sp: Cell<usize>,
    /// The hub's count of ready-queue pops at the last switch out.
    parked_at: Cell<u64>,
    /// Hub waits: the current wait was already woken.
    pub(crate) woken: Cell<bool>,
    /// A kill was delivered: every later hub wait raises it again.
    pub(crate) killed: Cell<bool>,
    /// Being unwound by the drop of its last handle: it may not switch.
    pub(crate) dying: Cell<bool>,
    /// A payload the hub will throw in (see `Runtime::throw_later`).
    pub(crate) pending_throw: Cell<Option<Payload>>,
    /// The outermost `with_timeout` scope of this greenlet that expired and
    /// has not ended yet (0: none): every later hub wait raises it again.
    pub(crate) timeout_fired: Cell<u64>,
    /// Greenlet-local values (`greenlet_local!`), by key; boxed so an empty
    /// set costs one word.
    pub(crate) locals: crate::local::Locals,
    pub(crate) completion: Completion,
}

/// A handle to a greenlet: a function with its own stack, switched to by hand.
///
/// Handles are cheap to clone (reference counted) and compare equal when they
/// name the same greenlet. They are neither `Send` nor `Sync`: a greenlet
/// belongs to the thread that created it.
///
/// # Examples
///
/// Greenlet's `test_simple`, switching back and forth with the parent:
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use verdant_runtime::Greenlet;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// let g = Greenlet::new(move |()| {
///     l.borrow_mut().push(1);
///     Greenlet::current().parent().unwrap().switch(());
///     l.borrow_mut().push(3);
/// });
/// log.borrow_mut().push(0);
/// g.switch(());
/// log.borrow_mut().push(2);
/// g.switch(());
/// log.borrow_mut().push(4);
/// assert_eq!(*log.borrow(), [0, 1, 2, 3, 4]);
/// assert!(g.is_dead());
/// ```
#[derive(Clone)]
pub struct Greenlet {
    pub(crate) inner: Rc<Inner>,
}

impl PartialEq for Greenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Greenlet {}

impl AsRef<Greenlet> for Greenlet {
    fn as_ref(&self) -> &Greenlet {
        self
    }
}

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.state.get() {
            State::Unstarted => "pending",
            State::Suspended => "suspended",
            State::Running => "current",
            State::Dead => "dead",
        };
        f.debug_struct("Greenlet")
            .field("id", &self.inner.id)
            .field("name", &self.name())
            .field("state", &state)
            .finish()
    }
}

impl Inner {
    fn new(id: u64, kind: Kind, state: State, parent: Option<Greenlet>) -> Inner {
        Inner {
            id,
            kind,
            state: Cell::new(state),
            co: UnsafeCell::new(None),
            yielder: Cell::new(ptr::null()),
            low_water: Cell::new(usize::MAX),
            parent: RefCell::new(parent),
            name: RefCell::new(None),
            fault: UnsafeCell::new(FaultInfo::new(id)),
            wait_seq: Cell::new(0),
            park_sp: Cell::new(0),
            parked_at: Cell::new(0),
            woken: Cell::new(false),
            killed: Cell::new(false),
            dying: Cell::new(false),
            pending_throw: Cell::new(None),
            timeout_fired: Cell::new(0),
            locals: Default::default(),
            completion: Completion::default(),
        }
    }

    /// Whether its function ever started (its stack holds frames).
    pub(crate) fn has_run(&self) -> bool {
        !self.yielder.get().is_null()
    }

    pub(crate) fn fault_ptr(&self) -> *const FaultInfo {
        self.fault.get()
    }

    pub(crate) fn display_name(&self) -> Cow<'static, str> {
        match &*self.name.borrow() {
            Some(n) => Cow::clone(n),
            None => match self.kind {
                Kind::Main => Cow::Borrowed("main"),
                Kind::Hub => Cow::Borrowed("Hub"),
                Kind::Child => Cow::Owned(format!("Greenlet-{}", self.id)),
            },
        }
    }

    /// Records where the stack is now and when (`now`: the hub's count of
    /// ready-queue pops); called at every switch out. Keeps how deep the
    /// stack has been, for the scrub.
    #[inline(always)]
    fn note_park(&self, now: u64) {
        let marker = 0u8;
        // The address of a local is (within a few bytes) the stack pointer.
        let sp = std::hint::black_box(ptr::addr_of!(marker)) as usize;
        self.park_sp.set(sp);
        self.parked_at.set(now);
        if sp < self.low_water.get() {
            self.low_water.set(sp);
        }
    }

    /// Asks the CPU to start loading the stack lines this greenlet touches
    /// first when it resumes (the registers its switch saved, the frame that
    /// parked), when at least [`COLD_AFTER`] other turns have run since it
    /// parked (`now` as in [`note_park`](Inner::note_park)). The hub calls
    /// it for the greenlet whose turn comes next, while the current one runs.
    ///
    /// Why: with many connections a parked greenlet's stack has left the
    /// caches and the TLB by its next turn, and resuming it stalled on that
    /// miss: about 0.3–0.4 µs per request at 1,000 echo connections
    /// (`perf` samples on the first instruction after the switch back in).
    /// Issued a turn ahead, the miss overlaps the current turn's work.
    /// Prefetching every woken greenlet when its IO event arrives was slower
    /// instead: with a long batch the lines are evicted again before their
    /// turn. A greenlet that parked a few turns ago is still in cache, and
    /// the prefetch would only cost time (about 4 ns per switch when two
    /// greenlets take turns); hence the age test.
    #[inline(always)]
    pub(crate) fn prefetch_if_cold(&self, now: u64) {
        if now.wrapping_sub(self.parked_at.get()) < COLD_AFTER {
            return;
        }
        let sp = self.park_sp.get();
        if sp == 0 {
            return; // never ran: no frames to load
        }
        let mut line = sp.saturating_sub(PREFETCH_BELOW) & !63;
        let end = sp.saturating_add(PREFETCH_ABOVE);
        while line < end {
            prefetch(line);
            line += 64;
        }
    }

    fn parent(&self) -> Option<Greenlet> {
        self.parent.borrow().clone()
    }
}

/// Converts how a greenlet ended into what its parent receives: a
/// [`GreenletExit`] counts as a normal return of that value.
pub(crate) fn exit_to_value(exit: Exit) -> Value {
    match exit {
        Ok(v) => v,
        Err(p) if p.is::<GreenletExit>() => Value::new(GreenletExit),
        Err(p) => Value::thrown(p),
    }
}

impl Greenlet {
    /// A new handle to the record at `p`.
    ///
    /// # Safety
    /// `p` must come from `Rc::as_ptr` of a record that is still alive.
    #[inline]
    unsafe fn from_borrowed_ptr(p: *const Inner) -> Greenlet {
        // SAFETY: the caller guarantees `p` names a live Rc allocation; the
        // new handle gets a strong count of its own.
        unsafe {
            Rc::increment_strong_count(p);
            Greenlet {
                inner: Rc::from_raw(p),
            }
        }
    }

    /// The address of the record, for identity checks without a handle.
    pub(crate) fn as_ptr(&self) -> *const Inner {
        Rc::as_ptr(&self.inner)
    }

    /// Creates a greenlet that will run `f` when first switched to, with the
    /// current greenlet as its parent and the hub's default stack size.
    ///
    /// `f` receives the value of the first [`switch`](Greenlet::switch),
    /// taken out as an `A` (`()` for none; use [`Value`] to accept anything).
    /// What it returns is switched to its parent.
    ///
    /// # Panics
    ///
    /// Panics if no stack can be mapped (see [`Greenlet::try_new`] for the
    /// fallible form).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Greenlet;
    /// let g = Greenlet::new(|x: i32| x * 2);
    /// assert_eq!(g.switch(21).take::<i32>(), 42);
    /// ```
    pub fn new<F, A, R>(f: F) -> Greenlet
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        match Greenlet::try_new(None, f) {
            Ok(g) => g,
            Err(e) => panic!("verdant: cannot create a greenlet: {e}"),
        }
    }

    /// Like [`Greenlet::new`], with an explicit usable stack size (rounded up
    /// to whole pages and to [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE)),
    /// or `None` for the hub's default.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a size above [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE);
    /// `OutOfMemory` when no stack can be mapped (for example when the process
    /// has reached `vm.max_map_count`).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Greenlet;
    /// let g = Greenlet::try_new(Some(256 * 1024), |()| "deep").unwrap();
    /// assert_eq!(g.switch(()).take::<&str>(), "deep");
    /// assert!(Greenlet::try_new(Some(usize::MAX), |()| ()).is_err());
    /// ```
    pub fn try_new<F, A, R>(stack_size: Option<usize>, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        with_rt(|rt| {
            let parent = rt.current();
            create(rt, parent, stack_size, None, move |v: Value| {
                let arg = match v.downcast::<A>() {
                    Ok(a) => a,
                    Err(v) => panic!(
                        "verdant: greenlet started with a value of type `{}`, but its function takes `{}`",
                        v.type_name(),
                        std::any::type_name::<A>()
                    ),
                };
                Value::new(f(arg))
            })
        })
    }

    /// The greenlet running now (the thread's main greenlet outside any other).
    ///
    /// The handle is a strong reference: a greenlet that keeps a handle to
    /// itself across a switch keeps itself alive, so dropping its other
    /// handles no longer unwinds it. Write
    /// `let p = Greenlet::current().parent().unwrap(); p.switch(x);` rather
    /// than holding `current()` itself while switching.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Greenlet;
    /// assert!(Greenlet::current().is_main());
    /// let g = Greenlet::new(|()| Greenlet::current().is_main());
    /// assert_eq!(g.switch(()).take::<bool>(), false);
    /// ```
    pub fn current() -> Greenlet {
        with_rt(|rt| rt.current())
    }

    /// Switches to this greenlet, passing `value`; returns what the next
    /// greenlet to switch back here sends.
    ///
    /// * Unstarted: it starts, receiving `value` as its argument.
    /// * Suspended: its pending `switch` returns `value`.
    /// * Dead: the switch goes to its parent (and up the chain).
    /// * Current: returns `value` at once.
    ///
    /// If the greenlet panics without catching, the panic is raised here, in
    /// its parent, when the parent is resumed (greenlet's rule: an uncaught
    /// exception goes to the parent).
    ///
    /// # Panics
    ///
    /// * Propagates a child's uncaught panic, as described above.
    /// * Panics with a `LoopExit` message when main waits in a switch and the
    ///   hub finds nothing that could ever switch back (a deadlock).
    /// * Panics when a hub wake-up arrives in a raw switch: a greenlet parked
    ///   in a hub wait must be resumed by the hub, not switched to.
    ///
    /// While the current greenlet is unwinding (see the module's Caveats) it
    /// does not switch and returns [`Value::empty`].
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Greenlet;
    /// let main = Greenlet::current();
    /// let g = Greenlet::new(move |name: String| {
    ///     let reply = main.switch(format!("hi {name}"));
    ///     reply.take::<i32>() + 1
    /// });
    /// assert_eq!(g.switch(String::from("tom")).take::<String>(), "hi tom");
    /// assert_eq!(g.switch(41).take::<i32>(), 42);
    /// ```
    #[inline]
    pub fn switch<T: 'static>(&self, value: T) -> Value {
        receive(with_rt(|rt| {
            if !may_switch(rt) {
                drop(value);
                return refuse_switch(rt);
            }
            // Built in place in the mailbox, so the receiver reads it back
            // the way it was written (a value assembled field by field and
            // then copied whole stalls on store-to-load forwarding).
            rt.post(Value::new(value));
            switch_posted(rt, self)
        }))
    }

    /// Raises [`GreenletExit`] inside this greenlet: its stack unwinds
    /// (destructors run) and it dies, and its parent receives a
    /// `GreenletExit` value, which is usually what this call returns.
    ///
    /// An unstarted greenlet dies without running; a dead one passes the
    /// `GreenletExit` straight to its parent.
    ///
    /// # Panics
    ///
    /// As for [`switch`](Greenlet::switch).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Greenlet, GreenletExit};
    /// let g = Greenlet::new(|()| unreachable!());
    /// assert!(g.throw().is::<GreenletExit>());
    /// assert!(g.is_dead() && !g.is_started());
    /// ```
    pub fn throw(&self) -> Value {
        self.throw_panic(GreenletExit)
    }

    /// Raises `payload` inside this greenlet as a panic (without running the
    /// panic hook). If the greenlet does not catch it, it dies and the panic
    /// goes on to its parent; a [`GreenletExit`] payload counts as a normal
    /// exit instead.
    ///
    /// # Panics
    ///
    /// As for [`switch`](Greenlet::switch); and the payload itself, when it
    /// reaches this greenlet through the parent chain.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// use verdant_runtime::Greenlet;
    /// let g = Greenlet::new(|()| {
    ///     let r = catch_unwind(|| Greenlet::current().parent().unwrap().switch(()));
    ///     *r.unwrap_err().downcast::<&str>().unwrap()
    /// });
    /// g.switch(());
    /// assert_eq!(g.throw_panic("oops").take::<&str>(), "oops");
    /// ```
    pub fn throw_panic<P: Any + Send + 'static>(&self, payload: P) -> Value {
        receive(switch_to(self, Value::thrown(Box::new(payload))))
    }

    /// The greenlet that receives this one's return value. `None` only for
    /// the main greenlet.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Greenlet;
    /// let g = Greenlet::new(|()| ());
    /// assert_eq!(g.parent(), Some(Greenlet::current()));
    /// assert_eq!(Greenlet::current().parent(), None);
    /// ```
    pub fn parent(&self) -> Option<Greenlet> {
        self.inner.parent()
    }

    /// Re-parents this greenlet.
    ///
    /// # Errors
    ///
    /// [`ParentError::Cycle`] if `parent` is this greenlet or one of its
    /// descendants; [`ParentError::Fixed`] for the main greenlet or the hub.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Greenlet, ParentError};
    /// let a = Greenlet::new(|()| ());
    /// let b = Greenlet::new(|()| ());
    /// b.set_parent(&a).unwrap();
    /// assert_eq!(a.set_parent(&b), Err(ParentError::Cycle));
    /// ```
    pub fn set_parent(&self, parent: &Greenlet) -> Result<(), ParentError> {
        if self.inner.kind != Kind::Child {
            return Err(ParentError::Fixed);
        }
        let mut p = Some(parent.clone());
        while let Some(g) = p {
            if g == *self {
                return Err(ParentError::Cycle);
            }
            p = g.parent();
        }
        *self.inner.parent.borrow_mut() = Some(parent.clone());
        Ok(())
    }

    /// Whether the greenlet has started running (and not yet died).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = verdant_runtime::Greenlet::new(|()| ());
    /// assert!(!g.is_started());
    /// ```
    pub fn is_started(&self) -> bool {
        matches!(self.inner.state.get(), State::Suspended | State::Running)
    }

    /// Whether the greenlet has finished (returned, panicked or was killed).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = verdant_runtime::Greenlet::new(|()| ());
    /// g.switch(());
    /// assert!(g.is_dead());
    /// ```
    pub fn is_dead(&self) -> bool {
        self.inner.state.get() == State::Dead
    }

    /// Whether this is the greenlet running now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Greenlet::current().is_current());
    /// ```
    pub fn is_current(&self) -> bool {
        with_rt(|rt| ptr::eq(rt.current_ptr(), Rc::as_ptr(&self.inner)))
    }

    /// Whether this is its thread's main greenlet (the thread's own stack).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Greenlet::current().is_main());
    /// ```
    pub fn is_main(&self) -> bool {
        self.inner.kind == Kind::Main
    }

    /// Whether this is the hub's greenlet (the parent of spawned greenlets).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = verdant_runtime::spawn(|| verdant_runtime::Greenlet::current().parent());
    /// assert!(h.join().unwrap().unwrap().is_hub());
    /// ```
    pub fn is_hub(&self) -> bool {
        self.inner.kind == Kind::Hub
    }

    /// A number unique among the greenlets of this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Greenlet::current().id(), 0);
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The greenlet's name: as set, else `main`, `Hub` or `Greenlet-<id>`.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = verdant_runtime::Greenlet::new(|()| ());
    /// g.set_name("worker");
    /// assert_eq!(g.name(), "worker");
    /// ```
    pub fn name(&self) -> Cow<'static, str> {
        self.inner.display_name()
    }

    /// Names the greenlet (used in panic reports and the overflow message).
    ///
    /// # Examples
    ///
    /// ```
    /// verdant_runtime::Greenlet::current().set_name("main loop");
    /// ```
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        let name = name.into();
        // SAFETY: the fault record is only read by the signal handler of this
        // thread, which interrupts nothing that writes it except this store;
        // a torn name in a crash report is harmless.
        unsafe { (*self.inner.fault.get()).set_name(&name) };
        *self.inner.name.borrow_mut() = Some(Box::new(name));
    }
}

impl Drop for Greenlet {
    #[inline]
    fn drop(&mut self) {
        if Rc::strong_count(&self.inner) == 1 && self.inner.kind == Kind::Child {
            unwind_now(self);
        }
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
    // SAFETY: the greenlet is neither running nor dead, so the root loop is
    // not resuming it and nothing else borrows its coroutine slot.
    let Some(mut co) = (unsafe { (*inner.co.get()).take() }) else {
        return;
    };
    inner.dying.set(true);
    let prev = crate::hub::try_rt(|rt| rt.swap_current(inner));
    inner.state.set(State::Running);
    if inner.has_run() {
        // Resumed with `dying` set, its pending switch raises GreenletExit
        // (see `suspend`), so its destructors run on its own stack; any
        // switch it attempts meanwhile is refused. The mailbox is not
        // touched: it may hold a value in transit to another greenlet.
        // Its root catches the unwind and leaves an exit: discard it.
        let r = co.resume(());
        debug_assert!(matches!(r, CoroutineResult::Return(())));
    } else {
        co.force_unwind(); // drops the never-run function
    }
    crate::hub::try_rt(|rt| drop(rt.mail_exit.take()));
    inner.state.set(State::Dead);
    if let Some(prev) = prev {
        crate::hub::try_rt(|rt| rt.restore_current(prev));
    }
    let stack = co.into_stack();
    let low = inner.low_water.get();
    crate::hub::try_rt(|rt| {
        rt.recycle_stack(stack, low);
        crate::task::complete(rt, g, crate::task::Outcome::Killed);
    });
}

/// Makes a child greenlet running `f` (already type-erased to `Value`s).
pub(crate) fn create<F>(
    rt: &Runtime,
    parent: Greenlet,
    stack_size: Option<usize>,
    name: Option<Cow<'static, str>>,
    f: F,
) -> io::Result<Greenlet>
where
    F: FnOnce(Value) -> Value + 'static,
{
    let usable = stack::round_size(stack_size.unwrap_or_else(|| rt.default_stack_size()))?;
    let stack = rt.take_stack(usable)?;
    let mut inner = Inner::new(rt.next_id(), Kind::Child, State::Unstarted, Some(parent));
    {
        let fi = inner.fault.get_mut();
        (fi.guard_lo, fi.guard_hi) = stack.guard_range();
        fi.usable = stack.usable();
        if let Some(n) = &name {
            fi.set_name(n);
        }
    }
    *inner.name.get_mut() = name.map(Box::new);
    inner.low_water.set(stack.top());
    let inner = Rc::new(inner);
    let record: *const Inner = Rc::as_ptr(&inner);
    let co = Co::with_stack(stack, move |y: &Y, ()| {
        // SAFETY: the record owns this coroutine (or the root loop holds a
        // handle while it runs), so it outlives every run of this closure.
        unsafe { (*record).yielder.set(y) };
        // A start, like any resume, leaves this greenlet's input in the
        // mailbox. The root loop never starts a greenlet with a throw (it
        // dies unstarted instead), and a hub start carries no value.
        let v = crate::hub::try_rt(|rt| rt.collect()).unwrap_or_default();
        let exit = panic::catch_unwind(AssertUnwindSafe(move || f(v)));
        crate::hub::try_rt(|rt| rt.mail_exit.set(Some(exit)));
    });
    // SAFETY: the record was just made; nothing else can see its slot yet.
    unsafe { *inner.co.get() = Some(co) };
    Ok(Greenlet { inner })
}

/// Makes the records of a thread's main greenlet and hub.
pub(crate) fn new_root_records() -> (Greenlet, Greenlet) {
    let main = Greenlet {
        inner: Rc::new(Inner::new(0, Kind::Main, State::Running, None)),
    };
    let hub = Greenlet {
        inner: Rc::new(Inner::new(
            1,
            Kind::Hub,
            State::Suspended,
            Some(main.clone()),
        )),
    };
    (main, hub)
}

/// Switches from the current greenlet to `target`. Returns what the current
/// greenlet receives when it is resumed, or `None` when it may not switch
/// (it is unwinding).
#[inline]
pub(crate) fn switch_to(target: &Greenlet, value: Value) -> Option<Value> {
    with_rt(|rt| switch_in(rt, target, value))
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
/// [`crate::hub::wait`]).
#[inline]
pub(crate) fn switch_to_hub(rt: &Runtime) -> Value {
    debug_assert!(may_switch(rt), "a hub wait begins with begin_wait");
    // SAFETY: `current_ptr` always names a live record (see `may_switch`).
    let cur = unsafe { &*rt.current_ptr() };
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
/// (reliability §0 fact 5: suspending mid-unwind would leak the thread's
/// panic count into other greenlets), nor while it is being dropped.
/// Checked before anything is posted, because a greenlet unwound by
/// [`unwind_now`] may run while the mailbox holds a value in transit.
#[inline(always)]
fn may_switch(rt: &Runtime) -> bool {
    // SAFETY: `current_ptr` always names a live record: the running
    // greenlet is held by the root loop, main and hub by the runtime.
    let cur = unsafe { &*rt.current_ptr() };
    !(std::thread::panicking() || cur.dying.get())
}

/// The answer to a switch that [`may_switch`] refused.
#[cold]
#[inline(never)]
fn refuse_switch(rt: &Runtime) -> Option<Value> {
    // SAFETY: as in `may_switch`.
    let cur = unsafe { &*rt.current_ptr() };
    if !std::thread::panicking() && cur.has_run() {
        // Being dropped, and it caught the GreenletExit: raise it again.
        panic::resume_unwind(Box::new(GreenletExit));
    }
    // Mid-unwind, or an unstarted greenlet's function being dropped.
    None
}

/// How many ready-queue pops after a greenlet parked its stack counts as
/// cold (see [`Inner::prefetch_if_cold`]). Chosen, not tuned: greenlets
/// taking turns in twos or threes stay below it, and a hub serving 100 or
/// more connections resumes each one well above it.
const COLD_AFTER: u64 = 32;

/// Bytes below the park address that [`Inner::prefetch_if_cold`] loads: the
/// switch's saved registers and return address.
const PREFETCH_BELOW: usize = 192;

/// Bytes above the park address that [`Inner::prefetch_if_cold`] loads: the
/// rest of the parking frame. More (up to 4 KiB) measured the same.
const PREFETCH_ABOVE: usize = 128;

/// A hint to load the cache line at `addr`; a no-op where Rust has no
/// stable prefetch instruction.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults (whatever the
    // address, mapped or not), never writes, and SSE, which it needs, is
    // part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ptr::without_provenance(addr));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
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
    // SAFETY: `current_ptr` always names a live record (see `may_switch`).
    let cur = unsafe { &*cur_ptr };
    if cur.kind == Kind::Main {
        Some(rt.run_root(target))
    } else {
        Some(suspend(rt, cur, target_ptr))
    }
}

/// Suspends the running (non-main) greenlet `cur`, asking the root loop to
/// switch to `target` (its input is already in the mailbox); returns what it
/// is resumed with.
#[inline]
fn suspend(rt: &Runtime, cur: &Inner, target: *const Inner) -> Value {
    cur.note_park(rt.pops());
    // A raw pointer: the caller borrows a handle to `target` for the whole
    // switch, and the root loop takes its own handle before anything runs.
    rt.mail_target.set(target);
    let y = cur.yielder.get();
    debug_assert!(!y.is_null());
    // SAFETY: `cur` is running, so its coroutine is alive and we are on its
    // stack; `yielder` was set when it started and points into that stack.
    unsafe { (*y).suspend(()) };
    if cur.dying.get() {
        dying_exit();
    }
    rt.collect()
}

/// Resumed by [`unwind_now`]: its last handle is gone, so it unwinds.
#[cold]
#[inline(never)]
fn dying_exit() -> ! {
    panic::resume_unwind(Box::new(GreenletExit))
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
        Input::Throw(p) => panic::resume_unwind(p),
        Input::Wake(Wake::LoopExit) => panic!("{}", crate::hub::LOOP_EXIT_MESSAGE),
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
            // Only the root loop touches a live greenlet's coroutine: the
            // release path cannot run for `target` (we hold a handle).
            // SAFETY: and a running greenlet is never resumed again (a
            // switch to the current greenlet returns early).
            let co = unsafe { (*inner.co.get()).as_mut() }
                .expect("verdant: a live greenlet always has its coroutine");
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
                        Input::Throw(p) => exit_to_value(Err(p)),
                        Input::Wake(_) => {
                            // A stale hub wake for a dead greenlet: ignore it.
                            self.post(Value::empty());
                            return self.hub.clone();
                        }
                        Input::Value(v) => v,
                    };
                    self.post(v);
                    target.parent().unwrap_or_else(|| self.main.clone())
                }
                State::Suspended | State::Running => {
                    unreachable!("only main runs while the root loop does")
                }
            },
        }
    }

    /// A greenlet's function has returned (or unwound): recycles its stack,
    /// completes its task, and posts its exit to its parent, which it
    /// returns.
    #[inline(never)]
    fn finished(&self, g: Greenlet) -> Greenlet {
        let inner = &*g.inner;
        inner.state.set(State::Dead);
        // SAFETY: only the root loop touches a live greenlet's coroutine,
        // and this one has just finished.
        let co = unsafe { (*inner.co.get()).take() }.expect("finished coroutine");
        self.recycle_stack(co.into_stack(), inner.low_water.get());
        let exit = self
            .mail_exit
            .take()
            .expect("verdant: a finished greenlet leaves its exit");
        crate::task::complete(self, &g, crate::task::Outcome::from_exit(&exit));
        self.post(exit_to_value(exit));
        g.parent().unwrap_or_else(|| self.main.clone())
    }

    /// Kills an unstarted greenlet whose input (in the mailbox) is a throw:
    /// it dies without running and the throw goes on to its parent, which
    /// this returns.
    fn finish_unstarted(&self, g: Greenlet) -> Greenlet {
        let payload = match self.collect().into_input() {
            Input::Throw(p) => p,
            _ => unreachable!("finish_unstarted is called for a throw"),
        };
        // SAFETY: the greenlet is unstarted, so no one else uses its slot.
        let co = unsafe { (*g.inner.co.get()).take() };
        g.inner.state.set(State::Dead);
        if let Some(mut co) = co {
            co.force_unwind(); // drops the never-run function
            self.recycle_stack(co.into_stack(), g.inner.low_water.get());
        }
        let outcome = if payload.is::<GreenletExit>() {
            crate::task::Outcome::Killed
        } else {
            crate::task::Outcome::Panicked
        };
        crate::task::complete(self, &g, outcome);
        self.post(exit_to_value(Err(payload)));
        g.parent().unwrap_or_else(|| self.main.clone())
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

    pub(crate) fn current_id(&self) -> u64 {
        // SAFETY: see `current_ptr`.
        unsafe { (*self.current.get()).id }
    }

    #[inline(always)]
    pub(crate) fn current_ptr(&self) -> *const Inner {
        self.current.get()
    }

    /// A handle to the running greenlet.
    #[inline]
    pub(crate) fn current(&self) -> Greenlet {
        // SAFETY: `current` always points at a live record owned by an Rc
        // (see `current_ptr`).
        unsafe { Greenlet::from_borrowed_ptr(self.current.get()) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// What `Inner::prefetch_if_cold` relies on: a parked greenlet's park
    /// address lies in its own stack, and its park time is the hub's count
    /// of pops then.
    #[test]
    fn a_parked_greenlet_records_where_its_stack_is() {
        let h = crate::spawn(|| crate::sleep(Duration::from_secs(60)));
        crate::sleep(Duration::ZERO); // it starts, and parks in its sleep
        let inner = &h.greenlet().inner;
        // SAFETY: the fault record is written only while its greenlet does
        // not run, and this one is parked.
        let (lo, usable) = unsafe { ((*inner.fault_ptr()).guard_hi, (*inner.fault_ptr()).usable) };
        let sp = inner.park_sp.get();
        assert!(
            sp >= lo && sp < lo + usable,
            "park address {sp:#x} outside the stack {lo:#x}..{:#x}",
            lo + usable
        );
        let at = inner.parked_at.get();
        let now = crate::hub::with_rt(|rt| rt.pops());
        assert!(at >= 1 && at <= now, "parked at pop {at}, now {now}");
        for _ in 0..3 {
            crate::sleep(Duration::ZERO);
        }
        assert_eq!(inner.parked_at.get(), at, "it did not run again");
        assert!(crate::hub::with_rt(|rt| rt.pops()) > now);
        h.kill();
    }
}
