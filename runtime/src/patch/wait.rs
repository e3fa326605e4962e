//! The waits behind the patched calls. All are *quiet* (see the module
//! docs of `patch`): a kill or an expired `with_timeout` scope ends them
//! with a [`Stop`] instead of unwinding through foreign frames.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::time::Instant;

use super::fdtab;
use crate::hub::{QuietEnd, Runtime, Waiting};
use crate::io::{Direction, Registration};
use crate::value::Wake;

/// Why a patched call stopped waiting without its fd becoming ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The greenlet was killed: `ECANCELED`.
    Killed,
    /// Its `with_timeout` scope expired: `ETIMEDOUT`.
    Expired,
    /// The call's own timeout passed (`SO_RCVTIMEO`, a `poll` timeout).
    TimedOut,
    /// Another greenlet closed the descriptor: `EBADF`.
    Closed,
}

impl Stop {
    /// The errno a call that stopped this way reports.
    pub(super) fn errno(self) -> i32 {
        match self {
            Stop::Killed => libc::ECANCELED,
            Stop::Expired => libc::ETIMEDOUT,
            Stop::TimedOut => libc::EAGAIN,
            Stop::Closed => libc::EBADF,
        }
    }
}

fn stop_of(end: QuietEnd) -> Stop {
    match end {
        QuietEnd::Killed | QuietEnd::Unwinding => Stop::Killed,
        QuietEnd::ScopeExpired => Stop::Expired,
    }
}

/// Checks that the running greenlet may wait; when it may not (killed, or
/// past an expired scope) it first lets the others run once, so that code
/// retrying the failed call in a loop does not freeze the hub.
pub(super) fn may_wait(rt: &Runtime) -> Result<(), Stop> {
    match rt.quiet_check() {
        Ok(()) => Ok(()),
        Err(end) => {
            if end == QuietEnd::ScopeExpired {
                rt.absorb_expiry();
            }
            if let Some(_q) = rt.enter_quiet() {
                rt.yield_quiet();
            }
            Err(stop_of(end))
        }
    }
}

thread_local! {
    /// This hub's registrations of the descriptors patched calls waited
    /// on, indexed by descriptor number, with the generation of the
    /// number when registered (a number closed and reused since, even on
    /// another thread, is registered again).
    static REGS: RefCell<Vec<Option<(u32, Registration)>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this hub's registration of `fd` if it has a current one.
fn with_existing<R>(fd: RawFd, f: impl FnOnce(&Registration) -> R) -> Option<R> {
    let i = usize::try_from(fd).ok()?;
    REGS.try_with(|regs| {
        let regs = regs.try_borrow().ok()?;
        match regs.get(i) {
            Some(Some((g, reg))) if *g == fdtab::generation(fd) => Some(f(reg)),
            _ => None,
        }
    })
    .ok()
    .flatten()
}

/// Runs `f` with this hub's registration of `fd`, made on first use;
/// `None` if epoll refuses it (a regular file; or an fd that verdant's own
/// sockets already registered with this hub).
fn with_reg<R>(fd: RawFd, f: impl FnOnce(&Registration) -> R) -> Option<R> {
    let i = usize::try_from(fd).ok()?;
    let generation = fdtab::generation(fd);
    REGS.try_with(|regs| {
        let mut regs = regs.try_borrow_mut().ok()?;
        if regs.len() <= i {
            regs.resize_with(i + 1, || None);
        }
        match &regs[i] {
            Some((g, reg)) if *g == generation => return Some(f(reg)),
            Some(_) => {
                // Stale: the number was closed and reused.
                if let Some((_, old)) = regs[i].take() {
                    old.close();
                }
            }
            None => {}
        }
        let reg = Registration::new(fd).ok()?;
        let r = f(&reg);
        regs[i] = Some((generation, reg));
        Some(r)
    })
    .ok()
    .flatten()
}

/// Whether `fd` is believed ready for `dir`: false only when this hub has
/// seen it drained (an `EAGAIN`, or a short stream read) and no event
/// since.
pub(super) fn is_ready(fd: RawFd, dir: Direction) -> bool {
    with_existing(fd, |reg| reg.is_ready(dir)).unwrap_or(true)
}

/// Forgets `fd`'s readiness for `dir` if it is registered: an operation
/// came back with `EAGAIN`.
pub(super) fn clear_ready(fd: RawFd, dir: Direction) {
    with_existing(fd, |reg| reg.clear_ready(dir));
}

/// Takes `fd` to be ready for `dir` again: a caller looking again on a
/// timer tries its operation next.
pub(super) fn set_ready(fd: RawFd, dir: Direction) {
    with_existing(fd, |reg| reg.set_ready(dir));
}

/// A stream transfer on `fd` moved fewer bytes than asked: it is drained
/// for `dir` (see `Registration::io_stream`), if this hub watches it.
pub(super) fn short_transfer(fd: RawFd, dir: Direction) {
    with_existing(fd, |reg| reg.short_transfer(dir));
}

/// `fd` is being closed on this thread: its waiters here wake and fail
/// with `EBADF`, and its registration goes (before the number can be
/// reused).
pub(super) fn closing(fd: RawFd) {
    let Ok(i) = usize::try_from(fd) else { return };
    let old = REGS.try_with(|regs| {
        regs.try_borrow_mut()
            .ok()
            .and_then(|mut r| r.get_mut(i).and_then(Option::take))
    });
    if let Ok(Some((_, reg))) = old {
        reg.close();
        drop(reg);
    }
}

/// Parks the running greenlet until one of `fds` (each with a set of
/// `Direction::bit`s) reports an event, or `deadline` passes. A spurious
/// return is possible: callers look again.
pub(super) fn wait_fds(
    rt: &Runtime,
    fds: &[(RawFd, u8)],
    deadline: Option<Instant>,
) -> Result<(), Stop> {
    may_wait(rt)?;
    let Some(_quiet) = rt.enter_quiet() else {
        return Err(Stop::Killed); // not reached: `hub_here` refuses the hub
    };
    // Register first (nothing to undo if epoll refuses one).
    let mut deadline = deadline;
    for &(fd, _) in fds {
        if with_reg(fd, |_| ()).is_none() {
            // Cannot be watched: look again in a millisecond.
            let tick = Instant::now() + std::time::Duration::from_millis(1);
            deadline = Some(deadline.map_or(tick, |d| d.min(tick)));
        }
    }
    // Closed by another greenlet meanwhile: nothing will ever wake us.
    if fds
        .iter()
        .any(|&(fd, _)| with_existing(fd, Registration::is_closed) == Some(true))
    {
        return Err(Stop::Closed);
    }
    let first = fds.first().map_or(-1, |f| f.0);
    let direction = match fds.first() {
        Some(&(_, d)) if d & Direction::Read.bit() == 0 => Direction::Write,
        _ => Direction::Read,
    };
    let token = rt
        .begin_wait(Waiting::Io {
            fd: first,
            direction,
        })
        .map_err(|_| rt.quiet_check().err().map_or(Stop::Killed, stop_of))?;
    for &(fd, dirs) in fds {
        // Open (checked above, and nothing ran since): the watch holds.
        let _ = with_existing(fd, |reg| reg.watch(dirs, token.clone()));
    }
    rt.external_wait_begin();
    let _end = ExternalEnd(rt);
    let timer = deadline.map(|d| rt.arm_timer(d, token));
    let woke = rt.park();
    drop(timer);
    match woke {
        Ok(Wake::Ready) => Ok(()),
        Ok(Wake::TimedOut) => {
            if deadline.is_some_and(|d| d <= Instant::now()) {
                Err(Stop::TimedOut)
            } else {
                Ok(())
            }
        }
        Ok(Wake::LoopExit) => Ok(()),
        Err(_) => Err(rt.quiet_check().err().map_or(Stop::Killed, stop_of)),
    }
}

struct ExternalEnd<'a>(&'a Runtime);

impl Drop for ExternalEnd<'_> {
    fn drop(&mut self) {
        self.0.external_wait_end();
    }
}

/// Parks the running greenlet until `deadline`.
pub(super) fn sleep_until(rt: &Runtime, deadline: Instant) -> Result<(), Stop> {
    may_wait(rt)?;
    let Some(_quiet) = rt.enter_quiet() else {
        return Err(Stop::Killed);
    };
    loop {
        let token = rt
            .begin_wait(Waiting::Sleep)
            .map_err(|_| rt.quiet_check().err().map_or(Stop::Killed, stop_of))?;
        let timer = rt.arm_timer(deadline, token);
        let woke = rt.park();
        drop(timer);
        match woke {
            Ok(Wake::TimedOut) | Ok(Wake::LoopExit) => return Ok(()),
            Ok(Wake::Ready) if Instant::now() >= deadline => return Ok(()),
            Ok(Wake::Ready) => continue,
            Err(_) => return Err(rt.quiet_check().err().map_or(Stop::Killed, stop_of)),
        }
    }
}

/// Runs `f` on the blocking pool and waits for it quietly; `Err` when the
/// wait was cut short (the job still runs to its end, and its result is
/// dropped there).
pub(super) fn on_pool<T: Send + 'static>(
    rt: &Runtime,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stop> {
    may_wait(rt)?;
    let Some(_quiet) = rt.enter_quiet() else {
        return Err(Stop::Killed);
    };
    let h = crate::blocking::spawn_blocking(f);
    match h.wait() {
        Ok(()) => h.join().map_err(|_| Stop::Killed),
        Err(_) => Err(rt.quiet_check().err().map_or(Stop::Killed, stop_of)),
    }
}
