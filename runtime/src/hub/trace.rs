//! The switch-trace hook (greenlet's `settrace`): a function the root loop
//! calls before it resumes a greenlet, with where the switch comes from and
//! where it goes. Unset, it costs the root loop one test of a flag per
//! switch (`Runtime::hooks`, shared with the monitor's heartbeat).

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

use super::record::Inner;
use super::{rt, Runtime};
use crate::greenlet::Greenlet;

/// What a [`TraceEvent`] reports (greenlet's `"switch"` and `"throw"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceKind {
    /// A switch that carries a value or a wake-up.
    Switch,
    /// A switch that raises something in its target: a kill, an expired
    /// `with_timeout`, [`Greenlet::throw`](crate::Greenlet::throw).
    Throw,
}

/// One switch, as a trace function set with
/// [`Hub::set_trace`](crate::Hub::set_trace) sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct TraceEvent<'a> {
    /// A plain switch or a throw.
    pub kind: TraceKind,
    /// The greenlet that ran until now.
    pub origin: &'a Greenlet,
    /// The greenlet about to run.
    pub target: &'a Greenlet,
}

/// A trace function (see [`Hub::set_trace`](crate::Hub::set_trace)).
pub type TraceFn = Box<dyn FnMut(&TraceEvent<'_>)>;

/// The hook's state in the runtime.
#[derive(Default)]
pub(super) struct Tracer {
    f: RefCell<Option<TraceFn>>,
    /// Bumped by every `set`, so a call that replaces the function from
    /// inside it is not undone when the call returns.
    generation: Cell<u64>,
    /// The greenlet the last reported switch went to: the next one's origin.
    last: RefCell<Option<Greenlet>>,
}

impl Runtime {
    /// Sets (or with `None` removes) the trace function; returns the one it
    /// replaces.
    pub(super) fn set_trace(&self, f: Option<TraceFn>) -> Option<TraceFn> {
        let t = &self.tracer;
        t.generation.set(t.generation.get() + 1);
        self.set_hook(super::watch::HOOK_TRACE, f.is_some());
        if f.is_none() {
            drop(t.last.take());
        } else if t.last.borrow().is_none() {
            // Turned on now: the running greenlet is the next origin. (Set
            // from inside the trace function, the origin is kept.)
            *t.last.borrow_mut() = Some(self.current());
        }
        t.f.replace(f)
    }

    /// Reports the switch to `target`, which is about to run; its input is
    /// in the mailbox. Called by the root loop when the hook is on.
    #[cold]
    #[inline(never)]
    pub(super) fn trace_switch(&self, target: &Inner) {
        let t = &self.tracer;
        // SAFETY: (current) the root loop holds a handle to `target` (or it
        // is main, owned by the runtime) for the whole call.
        let target = unsafe { Greenlet::from_borrowed_ptr(target) };
        let origin = t.last.replace(Some(target.clone()));
        let Some(origin) = origin else { return };
        if std::ptr::eq(origin.as_ptr(), target.as_ptr()) {
            return;
        }
        let Some(mut f) = t.f.borrow_mut().take() else {
            return;
        };
        let kind = if self.mail_is_thrown() {
            TraceKind::Throw
        } else {
            TraceKind::Switch
        };
        let generation = t.generation.get();
        let event = TraceEvent {
            kind,
            origin: &origin,
            target: &target,
        };
        // The function runs on the root loop, between two greenlets, where
        // nothing may switch: main (the current record here) is marked as
        // it is in a destructor, so that a switch or wait returns at once.
        let cur = self.current_record();
        let was_dying = cur.dying.replace(true);
        let r = panic::catch_unwind(AssertUnwindSafe(|| f(&event)));
        cur.dying.set(was_dying);
        if r.is_err() {
            eprintln!("verdant: the trace function panicked; it is removed");
            if t.generation.get() == generation {
                self.set_hook(super::watch::HOOK_TRACE, false);
                drop(t.last.take());
            }
            return;
        }
        if t.generation.get() == generation {
            *t.f.borrow_mut() = Some(f);
        }
    }
}

/// Sets the hub's trace function; see [`Hub::set_trace`](crate::Hub::set_trace).
pub(super) fn set(f: Option<TraceFn>) -> Option<TraceFn> {
    rt().set_trace(f)
}
