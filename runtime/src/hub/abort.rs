//! What the hub does in a program built with `panic = "abort"`, where no
//! stack can unwind.
//!
//! A kill, an expired `with_timeout` scope and the drop of a suspended
//! greenlet all end a greenlet by unwinding its stack to its root, which
//! runs the destructors of its frames. A `panic = "abort"` build has no
//! unwinding: `resume_unwind` there ends the process with SIGABRT and no
//! message. So, in such a build (`cfg(panic = "abort")`, which Cargo sets
//! for every crate of the program):
//!
//! * A kill of a suspended greenlet **abandons** it: it never runs again,
//!   its stack is leaked (kept mapped, so nothing that points into it
//!   dangles), the destructors of its frames never run, and it is completed
//!   as killed, so `join` and `kill` return. Every wait it was in is made
//!   stale first (its wait number moves on), so no wait list, timer or
//!   reactor hands it anything afterwards. A greenlet that was already
//!   woken (handed a value or a lock) and not yet run is abandoned at its
//!   next wait instead, so what it was handed is not lost with it. A
//!   greenlet that kills itself is abandoned where it stands.
//! * The drop of a suspended greenlet (its last handle gone, or the
//!   thread's teardown finding it parked) abandons it the same way.
//! * The first abandonment of the process prints one warning on stderr.
//! * An expired `with_timeout` scope cannot be abandoned (the greenlet
//!   must go on after the scope): the process prints why and aborts. The
//!   functions are marked deprecated in such a build, so the compiler says
//!   so first.
//! * Anything else that would be re-raised (a payload thrown with
//!   `Greenlet::throw_panic`) prints what it was and aborts, never silently.
//!
//! In a build that unwinds, [`raise`] is `resume_unwind` and nothing else
//! here is used.

use std::panic::resume_unwind;

use super::park::ScopeSignal;
use super::record::{Inner, Kind, Outcome, State};
use super::Runtime;
use crate::greenlet::Greenlet;
use crate::value::{Payload, Value};
use crate::GreenletExit;

/// Whether this build unwinds panics (`panic = "unwind"`, the default).
pub(crate) const UNWINDS: bool = cfg!(panic = "unwind");

/// Raises `p` in the running greenlet, as `resume_unwind` (no panic hook).
/// In a `panic = "abort"` build, says what would have unwound, and where,
/// and aborts.
#[cold]
#[inline(never)]
pub(crate) fn raise(p: Payload) -> ! {
    if UNWINDS {
        resume_unwind(p)
    }
    let what = if p.is::<GreenletExit>() {
        "a kill (GreenletExit)".to_string()
    } else if p.is::<ScopeSignal>() {
        "an expired with_timeout scope".to_string()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        format!("a panic ({s:?})")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("a panic ({s:?})")
    } else {
        "a panic payload".to_string()
    };
    abort_with(&format!("{what} would unwind greenlet '{}'", who()))
}

/// Prints `why` with the reason it ends the process, and aborts.
#[cold]
pub(crate) fn abort_with(why: &str) -> ! {
    eprintln!(
        "verdant: {why}, but this program is built with panic = \"abort\", which cannot unwind \
         a stack: aborting"
    );
    std::process::abort()
}

/// The running greenlet's name, or `main` outside the runtime.
fn who() -> String {
    super::try_rt(|rt| rt.current_record().display_name().to_string())
        .unwrap_or_else(|| "main".to_string())
}

/// The timer of a `with_timeout` scope of `g` fired (`panic = "abort"`).
#[cold]
pub(crate) fn scope_expired(g: &Greenlet) -> ! {
    abort_with(&format!(
        "a with_timeout scope of greenlet '{}' expired while it waited; ending the scope needs \
         its stack to unwind (use a timed wait instead: read and write timeouts, wait_timeout, \
         recv_timeout, JoinHandle::wait_timeout)",
        g.inner.display_name()
    ))
}

/// Ends `g`, suspended (not running) and started, without running it
/// again: makes every wait it is in stale, leaks its coroutine (stack and
/// all; see `switch::leak`), completes it as killed and wakes its joiners.
/// `warn` prints the process's one warning about it (not for the greenlets
/// that the unwinding build abandons too: those parked in foreign code).
pub(crate) fn abandon(rt: Option<&Runtime>, g: &Greenlet, warn: bool) {
    let inner = &g.inner;
    debug_assert!(inner.has_run() && inner.state.get() != State::Running);
    inner.wait_seq.set(inner.wait_seq.get() + 1);
    inner.woken.set(true);
    inner.state.set(State::Dead);
    // SAFETY: (one runner) `g` is not running (asserted above).
    unsafe { super::switch::leak_slot(inner) };
    inner.completion.mark(Outcome::Killed);
    if let Some(rt) = rt {
        rt.unlist(inner);
        rt.notify_links(g);
    }
    if warn {
        warn_once(inner);
    }
}

fn warn_once(inner: &Inner) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "verdant: greenlet '{}' was killed or dropped while suspended; this program is built \
             with panic = \"abort\", so its stack cannot unwind: it is abandoned where it waits, \
             its stack is leaked and the destructors of its frames do not run (what it owns stays \
             open, what it holds stays held). Later abandonments are not reported.",
            inner.display_name()
        );
    });
}

/// A kill reached the running greenlet, or a greenlet woken before its
/// kill came to its next wait (`panic = "abort"`): queues the kill for
/// itself and parks; the scheduler abandons it when it takes that entry
/// (see [`take_throw`]), so this never returns.
#[cold]
pub(crate) fn abandon_self(rt: &Runtime) -> ! {
    let me = rt.current();
    me.inner.killed.set(true);
    rt.throw_later(&me, Box::new(GreenletExit));
    drop(me);
    loop {
        super::switch::switch_to_hub(rt);
    }
}

/// The scheduler took a throw entry for `g` (`panic = "abort"`): a started
/// greenlet is abandoned instead of resumed to unwind; returns whether it
/// was. An unstarted one is resumed as usual: it dies without running.
pub(crate) fn take_throw(rt: &Runtime, g: &Greenlet) -> bool {
    if !g.inner.has_run() || g.inner.state.get() != State::Suspended {
        return false;
    }
    match g.inner.pending_throw.take() {
        Some(p) if p.is::<GreenletExit>() => {
            drop(p);
            abandon(Some(rt), g, true);
            true
        }
        Some(p) => {
            g.inner.pending_throw.set(Some(p));
            false
        }
        None => false,
    }
}

/// A raw throw into `target` (`Greenlet::throw`, `throw_panic`) in a
/// `panic = "abort"` build. A started, suspended child given a
/// [`GreenletExit`] is abandoned, and its parent receives the
/// `GreenletExit` as its exit value, as if it had unwound; any other
/// payload into a started greenlet aborts with a message. Gives the payload
/// back when the throw can go ahead as usual (nothing of `target` unwinds:
/// it is unstarted or dead, or the hub or main).
pub(crate) fn throw_into(rt: &Runtime, target: &Greenlet, p: Payload) -> Result<Value, Payload> {
    let inner = &target.inner;
    if inner.kind != Kind::Child || !inner.has_run() || inner.state.get() == State::Dead {
        return Err(p);
    }
    if !p.is::<GreenletExit>() || inner.state.get() == State::Running {
        raise(p);
    }
    drop(p);
    abandon(Some(rt), target, true);
    let parent = target.parent().unwrap_or_else(|| rt.main.clone());
    Ok(super::switch::switch_value(&parent, GreenletExit))
}
