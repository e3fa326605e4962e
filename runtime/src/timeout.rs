//! Timeout scopes: [`with_timeout`] and [`with_deadline`] (gevent's
//! `Timeout` and `with_timeout`); their expiry is the core's (`hub`).

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::hub;
use crate::timer::deadline_after;

/// A [`with_timeout`] scope's deadline passed before its closure finished.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{sleep, with_timeout, Elapsed};
/// assert_eq!(with_timeout(Duration::from_millis(5), || sleep(Duration::from_secs(5))), Err(Elapsed));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `f`, interrupting it if it still waits when `timeout` has passed;
/// `None` means no timeout (gevent's `Timeout` and `with_timeout`).
///
/// When the deadline passes, the hub throws a private signal into the
/// greenlet wherever it waits (a `sleep`, a join, a lock, IO); the stack
/// unwinds, running destructors and guards, up to the scope, which returns
/// [`Elapsed`]. Scopes nest: each fires for its own deadline, and when an
/// outer one expires while an inner one runs, the inner scope lets the
/// signal through to the outer one.
///
/// A timeout is never lost silently: if code inside the scope catches the
/// unwind (with `catch_unwind`) and carries on, every later hub wait inside
/// the scope raises it again, until the scope ends. If that code then
/// returns normally, the scope returns its value: it ran to the end.
///
/// Code that never waits cannot be interrupted (there is no preemption):
/// the scope then ends when the code does, with its value.
///
/// # Errors
///
/// [`Elapsed`] if the deadline passed while `f` waited.
///
/// # Panics
///
/// Panics and kills inside `f` pass through unchanged.
///
/// # In a `panic = "abort"` build
///
/// Ending the scope early needs the stack to unwind, which such a build
/// cannot do: when the deadline passes while `f` waits, the process prints
/// why and aborts. The function is marked deprecated in such a build, so
/// the compiler says so first; use the timed forms of the waits instead
/// (socket read and write timeouts, `wait_timeout`, `recv_timeout`,
/// `JoinHandle::wait_timeout`). A scope whose closure ends in time works as usual.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{sleep, with_timeout};
///
/// assert_eq!(with_timeout(Duration::from_secs(5), || 7), Ok(7));
/// assert!(with_timeout(Duration::from_millis(10), || sleep(Duration::from_secs(10))).is_err());
/// assert_eq!(with_timeout(None, || "no limit"), Ok("no limit"));
///
/// // Nested scopes each fire for their own deadline.
/// let outer = with_timeout(Duration::from_millis(10), || {
///     let inner = with_timeout(Duration::from_secs(10), || sleep(Duration::from_secs(10)));
///     unreachable!("the outer scope interrupts the inner sleep: {inner:?}")
/// });
/// assert!(outer.is_err());
/// ```
#[cfg_attr(
    panic = "abort",
    deprecated(
        note = "a panic = \"abort\" build cannot unwind: an expired scope aborts the process; use a timed wait"
    )
)]
pub fn with_timeout<T>(
    timeout: impl Into<Option<Duration>>,
    f: impl FnOnce() -> T,
) -> Result<T, Elapsed> {
    scope(timeout.into().map(deadline_after), f)
}

/// Runs `f`, interrupting it if it still waits at `deadline`.
///
/// # Errors
///
/// [`Elapsed`] if the deadline passed while `f` waited.
///
/// # In a `panic = "abort"` build
///
/// As for [`with_timeout`]: an expiry aborts the process.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// let d = Instant::now() + Duration::from_millis(5);
/// let r = verdant_runtime::with_deadline(d, || verdant_runtime::sleep(Duration::from_secs(5)));
/// assert!(r.is_err());
/// assert!(Instant::now() >= d);
/// ```
#[cfg_attr(
    panic = "abort",
    deprecated(
        note = "a panic = \"abort\" build cannot unwind: an expired scope aborts the process; use a timed wait"
    )
)]
pub fn with_deadline<T>(deadline: Instant, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    scope(Some(deadline), f)
}

fn scope<T>(deadline: Option<Instant>, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let Some(deadline) = deadline else {
        return Ok(f());
    };
    let scope = hub::TimeoutScope::enter(deadline);
    let id = scope.id();
    let r = catch_unwind(AssertUnwindSafe(f));
    // Expired while `f` was inside foreign code (a patched libc call), which
    // cannot unwind: the call failed instead, and `f` returned.
    let absorbed = scope.absorbed();
    drop(scope);
    match r {
        Ok(_) if absorbed => Err(Elapsed),
        Ok(v) => Ok(v),
        Err(p) => match p.downcast_ref::<hub::ScopeSignal>() {
            Some(s) if s.scope == id => Err(Elapsed),
            _ => resume_unwind(p),
        },
    }
}
