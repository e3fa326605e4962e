//! The public [`Greenlet`] type, on top of the core (`hub`): the one
//! module allowed an import cycle with it. How switching works is in the
//! core's `switch.rs`; what a user sees is in `Greenlet`'s docs.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::rc::Rc;

use crate::hub::{self, Inner, Kind, State};
use crate::value::Value;

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

/// A handle to a greenlet: a function with its own stack, switched to by hand.
///
/// This is greenlet's model in Rust. A greenlet is created without running;
/// the first [`switch`](Greenlet::switch) starts it with the value passed.
/// `switch(value)` is symmetric: it suspends the current greenlet and
/// returns whatever the *next* greenlet to switch back here sends. What a
/// greenlet's function returns goes to its [parent](Greenlet::parent) (by
/// default the greenlet that created it), and switching to a dead greenlet
/// goes up the parent chain. [`throw`](Greenlet::throw) raises
/// [`GreenletExit`] inside a suspended greenlet, unwinding its stack so
/// that destructors run; dropping the last handle of a suspended greenlet
/// does the same. Values travel as [`Value`]: see its docs for why a
/// checked dynamic value.
///
/// Handles are cheap to clone (reference counted) and compare equal when they
/// name the same greenlet.
///
/// # How it works
///
/// corosensei coroutines are asymmetric (`resume`/`suspend`); verdant
/// builds the symmetric switch as a trampoline on the thread's own stack
/// (the *main* greenlet's): every greenlet is resumed from there, so a
/// greenlet's stack never holds another greenlet's frames, and a switch
/// between main and a child costs one resume and one suspend. The
/// [hub](crate::Hub) is a pseudo-greenlet whose "switch" runs the
/// scheduler inside the same loop, and the parent of every
/// [spawned](crate::spawn) greenlet.
///
/// Handles are neither `Send` nor `Sync`: a greenlet belongs to the thread
/// that created it and never moves, so thread-locals stay sound inside
/// greenlets.
///
/// ```compile_fail
/// // Greenlet handles cannot cross threads.
/// let g = verdant_runtime::Greenlet::current();
/// std::thread::spawn(move || drop(g));
/// ```
///
/// ```compile_fail
/// // Not even by reference.
/// fn assert_sync<T: Sync>(_: &T) {}
/// assert_sync(&verdant_runtime::Greenlet::current());
/// ```
///
/// # Caveats
///
/// * **Drop must not switch.** While a greenlet unwinds (a panic, a kill, or
///   the drop of its last handle) a switch or a hub wait inside a destructor
///   returns at once without switching: suspending mid-unwind would leak the
///   thread's panic count (which is per thread, not per greenlet) into
///   every other greenlet.
/// * **Cycles leak.** Handles are reference counted; a greenlet whose stack
///   holds the last handle to itself is never freed until its thread exits,
///   when the hub's shutdown unwinds it (its destructors run, as for a
///   kill). A parent link is a handle too: a suspended greenlet whose
///   frames hold a child it is the parent of (the default for a greenlet
///   made there) stays alive through that child when its other handles go;
///   drop the child, or [`set_parent`](Greenlet::set_parent) it elsewhere,
///   to let it go.
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
        let state = match self.inner.state() {
            State::Unstarted => "pending",
            State::Suspended => "suspended",
            State::Running => "current",
            State::Dead => "dead",
        };
        f.debug_struct("Greenlet")
            .field("id", &self.inner.id())
            .field("name", &self.name())
            .field("state", &state)
            .finish()
    }
}

impl Greenlet {
    /// A new handle to the record at `p`.
    ///
    /// # Safety
    /// `p` must come from `Rc::as_ptr` of a record that is still alive.
    #[inline]
    pub(crate) unsafe fn from_borrowed_ptr(p: *const Inner) -> Greenlet {
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
    #[track_caller]
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
    #[track_caller]
    pub fn try_new<F, A, R>(stack_size: Option<usize>, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        hub::create(
            stack_size,
            std::panic::Location::caller(),
            move |v: Value| {
                let arg = match v.downcast::<A>() {
                    Ok(a) => a,
                    Err(v) => panic!(
                        "verdant: greenlet started with a value of type `{}`, but its function takes `{}`",
                        v.type_name(),
                        std::any::type_name::<A>()
                    ),
                };
                Value::new(f(arg))
            },
        )
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
        hub::current()
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
    /// While the current greenlet is unwinding (see the Caveats in
    /// [`Greenlet`]) it
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
        hub::switch_value(self, value)
    }

    /// Raises [`GreenletExit`] inside this greenlet: its stack unwinds
    /// (destructors run) and it dies, and its parent receives a
    /// `GreenletExit` value, which is usually what this call returns.
    ///
    /// An unstarted greenlet dies without running; a dead one passes the
    /// `GreenletExit` straight to its parent.
    ///
    /// In a `panic = "abort"` build, which cannot unwind, a suspended
    /// greenlet is abandoned instead (never run again, its stack leaked,
    /// its destructors not run) and its parent gets the `GreenletExit`;
    /// [`throw_panic`](Greenlet::throw_panic) with any other payload prints
    /// why and aborts.
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
        hub::throw_into(self, Box::new(payload))
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
        if self.inner.kind() != Kind::Child {
            return Err(ParentError::Fixed);
        }
        let mut p = Some(parent.clone());
        while let Some(g) = p {
            if g == *self {
                return Err(ParentError::Cycle);
            }
            p = g.parent();
        }
        self.inner.replace_parent(parent.clone());
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
        matches!(self.inner.state(), State::Suspended | State::Running)
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
        self.inner.state() == State::Dead
    }

    /// Whether this is the greenlet running now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Greenlet::current().is_current());
    /// ```
    pub fn is_current(&self) -> bool {
        hub::is_current(self)
    }

    /// Whether this is its thread's main greenlet (the thread's own stack).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Greenlet::current().is_main());
    /// ```
    pub fn is_main(&self) -> bool {
        self.inner.kind() == Kind::Main
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
        self.inner.kind() == Kind::Hub
    }

    /// A number unique among the greenlets of this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Greenlet::current().id(), 0);
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id()
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

    /// Usable size of the greenlet's own stack, as rounded when it was made
    /// (whole pages, at least [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE));
    /// `None` for the main greenlet and the hub, which run on the thread's
    /// own stack.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet};
    /// let h = Builder::new()
    ///     .stack_size(512 * 1024)
    ///     .spawn(|| Greenlet::current().stack_size())
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), Some(512 * 1024));
    /// assert_eq!(Greenlet::current().stack_size(), None);
    /// ```
    pub fn stack_size(&self) -> Option<usize> {
        self.inner.stack_size()
    }

    /// Names the greenlet (used in panic reports and the overflow message).
    ///
    /// # Examples
    ///
    /// ```
    /// verdant_runtime::Greenlet::current().set_name("main loop");
    /// ```
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        self.inner.set_name(name.into());
    }
}

impl Drop for Greenlet {
    #[inline]
    fn drop(&mut self) {
        if Rc::strong_count(&self.inner) == 1 && self.inner.kind() == Kind::Child {
            hub::unwind_now(self);
        }
    }
}
