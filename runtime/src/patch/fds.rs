//! The patched calls that make, close and configure descriptors: they keep
//! the descriptor table true (see `fdtab`), and `close` wakes the
//! descriptor's waiters on this hub.
//!
//! Invariant (pass-through) of `io` holds here: each function hands its
//! arguments unchanged to the real libc function of its name.

use libc::{c_int, c_ulong, c_void, socklen_t};

use super::fdtab::{self, INET, NONBLOCK, POLLABLE, RCVTIMEO, SNDTIMEO, SOCK, STREAM};
use super::{real, wait};

/// Every libc function this module defines.
pub const ROUTED: &[&str] = &[
    "read",
    "__read_chk",
    "readv",
    "recv",
    "__recv_chk",
    "recvfrom",
    "__recvfrom_chk",
    "recvmsg",
    "write",
    "writev",
    "send",
    "sendto",
    "sendmsg",
    "accept",
    "accept4",
    "connect",
    "poll",
    "__poll_chk",
    "ppoll",
    "select",
    "nanosleep",
    "clock_nanosleep",
    "sleep",
    "usleep",
    "getaddrinfo",
    "close",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "ioctl",
    "setsockopt",
    "socket",
    "socketpair",
    "pipe",
    "pipe2",
    "waitpid",
    "wait4",
    "waitid",
    "wait",
];

/// Referred to by `patch_all`, so that the linker keeps this module.
#[inline(never)]
pub(super) fn link() {
    std::hint::black_box(close as *const () as usize);
}

/// `close(2)`: wakes this hub's waiters on `fd` (their calls fail with
/// `EBADF`) and deregisters it before the number can be reused.
///
/// # Safety
///
/// As for libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if super::active() {
        wait::closing(fd);
    }
    fdtab::forget(fd);
    // SAFETY: (pass-through)
    unsafe { real::close()(fd) }
}

/// `dup(2)`: the new number is recorded fresh.
///
/// # Safety
///
/// As for libc's `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::dup()(fd) };
    if r >= 0 {
        fdtab::forget(r);
        shared(fd, r);
    }
    r
}

/// `old` and `new` now share one open file description: its `O_NONBLOCK`
/// may change through either (see `fdtab::SHARED`).
fn shared(old: c_int, new: c_int) {
    if super::active() {
        fdtab::mark_shared(old);
        fdtab::mark_shared(new);
    }
}

/// `dup2(2)`: `new` is closed (as by `close`) and replaced.
///
/// # Safety
///
/// As for libc's `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old != new && super::active() {
        wait::closing(new);
    }
    // SAFETY: (pass-through)
    let r = unsafe { real::dup2()(old, new) };
    if r >= 0 && old != new {
        fdtab::forget(r);
        shared(old, r);
    }
    r
}

/// `dup3(2)`: as `dup2`.
///
/// # Safety
///
/// As for libc's `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old != new && super::active() {
        wait::closing(new);
    }
    // SAFETY: (pass-through)
    let r = unsafe { real::dup3()(old, new, flags) };
    if r >= 0 {
        fdtab::forget(r);
        shared(old, r);
    }
    r
}

/// `fcntl(2)`, defined with its optional argument as one machine word
/// (how x86-64 and AArch64 pass it, whatever its type). `F_SETFL` keeps the
/// table's record of the program's `O_NONBLOCK`; `F_DUPFD` makes a fresh
/// number.
///
/// # Safety
///
/// As for libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::fcntl()(fd, cmd, arg) };
    if r >= 0 {
        match cmd {
            libc::F_SETFL => fdtab::update(fd, NONBLOCK, arg as c_int & libc::O_NONBLOCK != 0),
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                fdtab::forget(r);
                shared(fd, r);
            }
            _ => {}
        }
    }
    r
}

/// glibc's 64-bit-offset name for `fcntl` (the same call on 64-bit
/// targets), which C code built with `_FILE_OFFSET_BITS=64` or new
/// headers calls.
///
/// # Safety
///
/// As for libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: (pass-through)
    unsafe { fcntl(fd, cmd, arg) }
}

/// `ioctl(2)`, its argument as one machine word (see `fcntl`).
/// `FIONBIO` keeps the table's record of the program's `O_NONBLOCK`.
///
/// # Safety
///
/// As for libc's `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::ioctl()(fd, req, arg) };
    if r >= 0 && req == libc::FIONBIO as c_ulong {
        // SAFETY: the call succeeded, so its argument pointed to a
        // readable int (FIONBIO's contract).
        let on = unsafe { *(arg as *const c_int) } != 0;
        fdtab::update(fd, NONBLOCK, on);
    }
    r
}

/// `setsockopt(2)`: notes when `SO_RCVTIMEO` or `SO_SNDTIMEO` may be set,
/// so that a wait asks the kernel for it.
///
/// # Safety
///
/// As for libc's `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::setsockopt()(fd, level, name, val, len) };
    if r == 0 && level == libc::SOL_SOCKET {
        match name {
            libc::SO_RCVTIMEO => fdtab::update(fd, RCVTIMEO, true),
            libc::SO_SNDTIMEO => fdtab::update(fd, SNDTIMEO, true),
            _ => {}
        }
    }
    r
}

/// The table bits of a socket made in `domain` with `ty` (type and flags).
fn socket_bits(domain: c_int, ty: c_int) -> u32 {
    let mut bits = SOCK | POLLABLE;
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        bits |= INET;
    }
    if ty & 0xf == libc::SOCK_STREAM {
        bits |= STREAM;
    }
    if ty & libc::SOCK_NONBLOCK != 0 {
        bits |= NONBLOCK;
    }
    bits
}

/// `socket(2)`: recorded without a probe.
///
/// # Safety
///
/// As for libc's `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::socket()(domain, ty, proto) };
    if r >= 0 {
        fdtab::record(r, socket_bits(domain, ty));
    }
    r
}

/// `socketpair(2)`: both ends recorded without a probe.
///
/// # Safety
///
/// As for libc's `socketpair`.
#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    proto: c_int,
    sv: *mut c_int,
) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::socketpair()(domain, ty, proto, sv) };
    if r == 0 {
        // SAFETY: on success libc filled both ends of the caller's array.
        let (a, b) = unsafe { (*sv, *sv.add(1)) };
        fdtab::record(a, socket_bits(domain, ty));
        fdtab::record(b, socket_bits(domain, ty));
    }
    r
}

/// `pipe(2)`: both ends recorded (a new life for their numbers).
///
/// # Safety
///
/// As for libc's `pipe`.
#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: (pass-through) pipe is pipe2 without flags.
    unsafe { pipe2(fds, 0) }
}

/// `pipe2(2)`: both ends recorded.
///
/// # Safety
///
/// As for libc's `pipe2`.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: (pass-through)
    let r = unsafe { real::pipe2()(fds, flags) };
    if r == 0 && super::active() {
        let bits = if flags & libc::O_NONBLOCK != 0 {
            POLLABLE | NONBLOCK
        } else {
            POLLABLE
        };
        // SAFETY: on success libc filled both ends of the caller's array.
        let (a, b) = unsafe { (*fds, *fds.add(1)) };
        fdtab::record(a, bits);
        fdtab::record(b, bits);
    }
    r
}
