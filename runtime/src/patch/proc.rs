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

/// Calls `probe` (the caller's wait with `WNOHANG` added: 0 while there is
/// nothing to report) until it reports something, which it returns (a
/// pid, a status, or -1 with errno: `ECHILD` at once for a pid that is not
/// a child). In between it waits: on a pidfd for `pid` when only its exit
/// can end the wait (`exit_only`; a pidfd reports nothing else), otherwise
/// at a backing-off interval (1 to 50 ms).
fn wait_child(
    rt: &Runtime,
    pid: pid_t,
    exit_only: bool,
    mut probe: impl FnMut() -> c_int,
) -> Result<c_int, Stop> {
    let mut pidfd = -1;
    let mut pause = Duration::from_millis(1);
    let r = loop {
        let found = probe();
        if found != 0 {
            break Ok(found);
        }
        if pidfd < 0 && pid > 0 && exit_only {
            // SAFETY: pidfd_open takes a pid and flags; it returns a new fd
            // or fails (then the interval is used).
            pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int;
        }
        let waited = if pidfd >= 0 {
            wait_fd(rt, pidfd)
        } else {
            let w = wait::sleep_until(rt, crate::timer::deadline_after(pause));
            pause = (pause * 2).min(Duration::from_millis(50));
            w
        };
        if let Err(stop) = waited {
            break Err(stop);
        }
    };
    if pidfd >= 0 {
        // SAFETY: the fd was opened above and is ours.
        unsafe { super::fds::close(pidfd) };
    }
    r
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
    let Some(rt) = rt else {
        // SAFETY: (pass-through) the caller's arguments, unchanged.
        return unsafe { real::wait4()(pid, status, options, ru) };
    };
    let exit_only = options & (libc::WUNTRACED | libc::WCONTINUED) == 0;
    let r = wait_child(rt, pid, exit_only, || {
        // SAFETY: (pass-through) with WNOHANG added.
        unsafe { real::wait4()(pid, status, options | libc::WNOHANG, ru) }
    });
    match r {
        Ok(found) => found,
        Err(stop) => {
            set_errno(stop.errno());
            -1
        }
    }
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
    let Some(rt) = rt else {
        // SAFETY: (pass-through) the caller's arguments, unchanged.
        return unsafe { real::waitid()(idtype, id, info, options) };
    };
    // Linux allows a null `info`; the probe needs one to tell "nothing yet"
    // (si_pid 0) from a child reaped.
    // SAFETY: a zeroed siginfo_t is valid.
    let mut own: siginfo_t = unsafe { std::mem::zeroed() };
    let out = if info.is_null() { &raw mut own } else { info };
    let exit_only = options & (libc::WSTOPPED | libc::WCONTINUED) == 0;
    let probe = || {
        // SAFETY: (pass-through) with WNOHANG added, into the caller's
        // `info` (or ours); it is zeroed first, as POSIX asks of a caller
        // that looks at si_pid after WNOHANG.
        unsafe {
            std::ptr::write_bytes(out, 0, 1);
            if real::waitid()(idtype, id, out, options | libc::WNOHANG) < 0 {
                return -1;
            }
            // Something reported: waitid's own result is 0.
            if (*out).si_pid() != 0 {
                return 1;
            }
            0
        }
    };
    let r = if idtype == P_PIDFD {
        // The pidfd is the caller's: wait on it (exits only), then probe.
        loop {
            match probe() {
                0 if exit_only => {
                    if let Err(stop) = wait_fd(rt, id as c_int) {
                        break Err(stop);
                    }
                }
                0 => {
                    if let Err(stop) = wait::sleep_until(
                        rt,
                        crate::timer::deadline_after(Duration::from_millis(10)),
                    ) {
                        break Err(stop);
                    }
                }
                found => break Ok(found),
            }
        }
    } else {
        let pid = if idtype == libc::P_PID {
            id as pid_t
        } else {
            -1
        };
        wait_child(rt, pid, exit_only, probe)
    };
    match r {
        Ok(-1) => -1,
        Ok(_) => 0,
        Err(stop) => {
            set_errno(stop.errno());
            -1
        }
    }
}
