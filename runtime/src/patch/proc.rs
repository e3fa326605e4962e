//! The patched waits for child processes: `waitpid`, `wait4`, `waitid`
//! and `wait` (what `std::process::Child::wait` and `Command::output`
//! call). A wait for one child parks on a pidfd (readable when the child
//! exits); a wait for any child polls with `WNOHANG` at a backing-off
//! interval (1 to 50 ms). `WNOHANG` calls pass through.

use std::time::Duration;

use libc::{c_int, id_t, idtype_t, pid_t, rusage, siginfo_t};

use super::wait::{self, Stop};
use super::{hub_here, real, set_errno};
use crate::hub::Runtime;
use crate::io::Direction;

/// Referred to by `patch_all`, so that the linker keeps this module.
#[inline(never)]
pub(super) fn link() {
    std::hint::black_box(waitpid as *const () as usize);
}

/// `P_PIDFD` (Linux 5.4): `waitid` on a pidfd.
const P_PIDFD: idtype_t = 3;

/// Waits until child `pid` has exited (or stopped: then the caller's
/// `WNOHANG` retry finds it). `Err` when the wait was cut short.
fn wait_child(rt: &Runtime, pid: pid_t, any: impl FnMut() -> c_int) -> Result<(), Stop> {
    if pid > 0 {
        // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or
        // fails.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int;
        if pidfd >= 0 {
            let r = wait_fd(rt, pidfd);
            // SAFETY: the fd was opened just above and is ours.
            unsafe { super::fds::close(pidfd) };
            return r;
        }
    }
    backoff(rt, any)
}

/// Waits for the pidfd `fd` to become readable (its process exited).
fn wait_fd(rt: &Runtime, fd: c_int) -> Result<(), Stop> {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        if unsafe { real::poll()(&mut p, 1, 0) } != 0 {
            return Ok(());
        }
        wait::clear_ready(fd, Direction::Read);
        match wait::wait_fds(rt, &[(fd, Direction::Read.bit())], None) {
            Ok(()) | Err(Stop::TimedOut) => {}
            Err(stop) => return Err(stop),
        }
    }
}

/// Calls `ready` (a `WNOHANG` wait that returns 0 while nothing changed)
/// at a backing-off interval until it returns something else.
fn backoff(rt: &Runtime, mut ready: impl FnMut() -> c_int) -> Result<(), Stop> {
    let mut pause = Duration::from_millis(1);
    loop {
        if ready() != 0 {
            return Ok(());
        }
        wait::sleep_until(rt, crate::timer::deadline_after(pause))?;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// `waitpid(2)`.
///
/// # Safety
///
/// As for libc's `waitpid`.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    // SAFETY: (pass-through) the caller's arguments, unchanged.
    unsafe { wait4(pid, status, options, std::ptr::null_mut()) }
}

/// `wait(2)`.
///
/// # Safety
///
/// As for libc's `wait`.
#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    // SAFETY: (pass-through) `wait(s)` is `waitpid(-1, s, 0)`.
    unsafe { wait4(-1, status, 0, std::ptr::null_mut()) }
}

/// `wait4(2)`.
///
/// # Safety
///
/// As for libc's `wait4`.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut rusage,
) -> pid_t {
    let rt = if options & libc::WNOHANG != 0 {
        None
    } else {
        hub_here()
    };
    if let Some(rt) = rt {
        // A status found while polling is the answer: keep it.
        let mut found: pid_t = 0;
        let r = wait_child(rt, pid, || {
            // SAFETY: (pass-through) with WNOHANG added.
            found = unsafe { real::wait4()(pid, status, options | libc::WNOHANG, ru) };
            found
        });
        if let Err(stop) = r {
            set_errno(stop.errno());
            return -1;
        }
        if found != 0 {
            return found;
        }
    }
    // SAFETY: (pass-through) the caller's arguments; after a wait the child
    // has exited, so this does not block.
    unsafe { real::wait4()(pid, status, options, ru) }
}

/// `waitid(2)`.
///
/// # Safety
///
/// As for libc's `waitid`.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    info: *mut siginfo_t,
    options: c_int,
) -> c_int {
    let rt = if options & libc::WNOHANG != 0 {
        None
    } else {
        hub_here()
    };
    if let Some(rt) = rt {
        let r = if idtype == P_PIDFD {
            wait_fd(rt, id as c_int)
        } else {
            let pid = if idtype == libc::P_PID {
                id as pid_t
            } else {
                -1
            };
            wait_child(rt, pid, || {
                // SAFETY: (pass-through) with WNOHANG added; `info` is the
                // caller's. With WNOHANG and nothing to report, the kernel
                // zeroes si_pid.
                unsafe {
                    if real::waitid()(idtype, id, info, options | libc::WNOHANG) < 0 {
                        return -1;
                    }
                    (*info).si_pid()
                }
            })
        };
        if let Err(stop) = r {
            set_errno(stop.errno());
            return -1;
        }
    }
    // SAFETY: (pass-through) the caller's arguments unchanged.
    unsafe { real::waitid()(idtype, id, info, options) }
}
