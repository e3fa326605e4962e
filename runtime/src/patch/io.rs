//! The patched data calls: reads, writes, sends, receives, accepts,
//! connects, and the readiness waits `poll`, `ppoll` and `select`.
//!
//! Invariant (pass-through): each function here receives the arguments of
//! the libc function of its name, and hands them (or a copy, or pointers
//! into them) to the real one with the same prototype; whatever validity
//! the caller owed libc, libc receives. Every `unsafe` call of a `real::`
//! function below relies on it.

use std::ffi::c_void;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libc::{
    c_int, fd_set, iovec, msghdr, nfds_t, pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t,
    timespec, timeval,
};

use super::fdtab::{self, Fd, NONBLOCK, POLLABLE, RCVTIMEO, SNDTIMEO, SOCK, STREAM};
use super::wait::{self, Stop};
use super::{errno, hub_here, real, set_errno};
use crate::hub::{Runtime, IO_COST};
use crate::io::Direction;

/// Referred to by `patch_all`, so that the linker keeps this module.
#[inline(never)]
pub(super) fn link() {
    std::hint::black_box(read as *const () as usize);
}

/// How a call on `fd` proceeds: `None` passes it straight to libc.
#[inline]
fn route(fd: RawFd) -> Option<(&'static Runtime, Fd)> {
    let rt = hub_here()?;
    let st = fdtab::lookup(fd)?;
    if st.has(NONBLOCK) || !st.has(POLLABLE) {
        return None;
    }
    Some((rt, st))
}

/// The deadline of a wait for `dir` on socket `fd`, from its
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` (checked only if one may be set).
fn sock_deadline(fd: RawFd, st: Fd, dir: Direction) -> Option<Instant> {
    let (bit, opt) = match dir {
        Direction::Read => (RCVTIMEO, libc::SO_RCVTIMEO),
        Direction::Write => (SNDTIMEO, libc::SO_SNDTIMEO),
    };
    if !st.has(bit) {
        return None;
    }
    fdtab::timeout_of(fd, opt).map(crate::timer::deadline_after)
}

/// Fails a call with the errno of `stop`.
fn fail(stop: Stop) -> isize {
    set_errno(stop.errno());
    -1
}

/// One operation on socket `fd`, which `attempt` makes without blocking
/// (it adds `MSG_DONTWAIT`): tried, and on `EAGAIN` tried again each time
/// the fd reports ready for `dir`, until the socket's timeout. An fd this
/// hub knows to be drained for `dir` (an `EAGAIN`, or a short stream
/// transfer, and no event since) is waited for first, without a try.
fn sock_op(
    rt: &Runtime,
    fd: RawFd,
    st: Fd,
    dir: Direction,
    mut attempt: impl FnMut() -> isize,
) -> isize {
    let mut deadline = None;
    let mut first = true;
    loop {
        if let Some(_q) = rt.enter_quiet() {
            rt.spend(IO_COST);
        }
        if wait::is_ready(fd, dir) {
            let r = attempt();
            if r >= 0 {
                return r;
            }
            let e = errno();
            if e != libc::EAGAIN && e != libc::EWOULDBLOCK {
                return r;
            }
            wait::clear_ready(fd, dir);
        }
        if first {
            deadline = sock_deadline(fd, st, dir);
            first = false;
        }
        if let Err(stop) = wait::wait_fds(rt, &[(fd, dir.bit())], deadline) {
            return fail(stop);
        }
    }
}

/// [`sock_op`] moving bytes on a stream socket: a result shorter than
/// `len` (but not 0) shows the socket drained (or full), so the next call
/// waits for an event instead of first trying (see
/// `Registration::io_stream`, which verdant's own sockets use).
fn stream_op(
    rt: &Runtime,
    fd: RawFd,
    st: Fd,
    dir: Direction,
    len: usize,
    attempt: impl FnMut() -> isize,
) -> isize {
    let r = sock_op(rt, fd, st, dir, attempt);
    if st.has(STREAM) && r > 0 && (r as usize) < len {
        wait::short_transfer(fd, dir);
    }
    r
}

/// The length a short read is measured against: none (0) when the read
/// leaves the data queued (`MSG_PEEK`) or reads urgent data (`MSG_OOB`).
fn peeking(flags: c_int, n: usize) -> usize {
    if flags & (libc::MSG_PEEK | libc::MSG_OOB) != 0 {
        0
    } else {
        n
    }
}

/// Whether `fd` is ready for `dir` now (or in a state the operation will
/// report: a hang-up, an error), by a zero-timeout `poll`.
fn ready_now(fd: RawFd, dir: Direction) -> bool {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut p = pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { real::poll()(&mut p, 1, 0) };
    n != 0 // ready, or poll failed (let the operation report it)
}

/// One blocking operation on a descriptor that has no non-blocking flag
/// per call (a pipe, a terminal, `accept`): waits until a zero-timeout
/// `poll` says it is ready, then makes the blocking call, which then does
/// not block.
fn ready_op(rt: &Runtime, fd: RawFd, st: Fd, dir: Direction, op: impl FnOnce() -> isize) -> isize {
    let mut deadline = None;
    let mut first = true;
    loop {
        if let Some(_q) = rt.enter_quiet() {
            rt.spend(IO_COST);
        }
        if ready_now(fd, dir) {
            return op();
        }
        wait::clear_ready(fd, dir);
        if first {
            deadline = if st.has(SOCK) {
                sock_deadline(fd, st, dir)
            } else {
                None
            };
            first = false;
        }
        if let Err(stop) = wait::wait_fds(rt, &[(fd, dir.bit())], deadline) {
            return fail(stop);
        }
    }
}

/// A send of `total` bytes on a stream socket moves them all before it
/// returns, as a blocking one does: `step(done)` sends what is left after
/// `done` bytes. On an error after some bytes, the count so far.
fn send_all(total: usize, st: Fd, mut step: impl FnMut(usize) -> isize) -> isize {
    let mut done = 0usize;
    loop {
        let r = step(done);
        if r < 0 {
            return if done > 0 { done as isize } else { r };
        }
        done += r as usize;
        if done >= total || r == 0 || !st.has(STREAM) {
            return done as isize;
        }
    }
}

// ---- read / recv ----------------------------------------------------------

/// `read(2)`.
///
/// # Safety
///
/// As for libc's `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let Some((rt, st)) = route(fd) else {
        // SAFETY: (pass-through)
        return unsafe { real::read()(fd, buf, n) };
    };
    if st.has(SOCK) {
        // SAFETY: (pass-through) `recv` with flags 0 is `read` on a socket.
        stream_op(rt, fd, st, Direction::Read, n, || unsafe {
            real::recv()(fd, buf, n, libc::MSG_DONTWAIT)
        })
    } else {
        // SAFETY: (pass-through)
        ready_op(rt, fd, st, Direction::Read, || unsafe {
            real::read()(fd, buf, n)
        })
    }
}

/// glibc's checked `read` (`_FORTIFY_SOURCE`).
///
/// # Safety
///
/// As for libc's `read`, with `buflen` the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if n > buflen {
        chk_fail();
    }
    // SAFETY: (pass-through), the length checked as glibc does.
    unsafe { read(fd, buf, n) }
}

/// What glibc's `__chk_fail` does: the program wrote past a buffer.
fn chk_fail() -> ! {
    crate::sys::raw_write(2, b"*** buffer overflow detected ***: terminated\n");
    std::process::abort()
}

/// `recv(2)`.
///
/// # Safety
///
/// As for libc's `recv`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::recv()(fd, buf, n, flags) };
    };
    if flags & libc::MSG_WAITALL != 0 && st.has(STREAM) {
        return recv_all(rt, fd, st, buf, n, flags);
    }
    // SAFETY: (pass-through)
    stream_op(rt, fd, st, Direction::Read, peeking(flags, n), || unsafe {
        real::recv()(fd, buf, n, flags | libc::MSG_DONTWAIT)
    })
}

/// `recv` with `MSG_WAITALL` on a stream: fills the buffer, unless the
/// peer closes or an error comes first (then what was received so far).
fn recv_all(rt: &Runtime, fd: RawFd, st: Fd, buf: *mut c_void, n: size_t, flags: c_int) -> isize {
    let mut done = 0usize;
    let flags = (flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    while done < n {
        let r = sock_op(rt, fd, st, Direction::Read, || {
            // SAFETY: (pass-through) the rest of the caller's buffer.
            unsafe { real::recv()(fd, buf.cast::<u8>().add(done).cast(), n - done, flags) }
        });
        if r < 0 {
            return if done > 0 { done as isize } else { r };
        }
        if r == 0 {
            break;
        }
        done += r as usize;
    }
    done as isize
}

/// glibc's checked `recv`.
///
/// # Safety
///
/// As for libc's `recv`, with `buflen` the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if n > buflen {
        chk_fail();
    }
    // SAFETY: (pass-through)
    unsafe { recv(fd, buf, n, flags) }
}

/// `recvfrom(2)`.
///
/// # Safety
///
/// As for libc's `recvfrom`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::recvfrom()(fd, buf, n, flags, addr, len) };
    };
    // SAFETY: (pass-through)
    sock_op(rt, fd, st, Direction::Read, || unsafe {
        real::recvfrom()(fd, buf, n, flags | libc::MSG_DONTWAIT, addr, len)
    })
}

/// glibc's checked `recvfrom`.
///
/// # Safety
///
/// As for libc's `recvfrom`, with `buflen` the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if n > buflen {
        chk_fail();
    }
    // SAFETY: (pass-through)
    unsafe { recvfrom(fd, buf, n, flags, addr, len) }
}

/// `recvmsg(2)`.
///
/// # Safety
///
/// As for libc's `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::recvmsg()(fd, msg, flags) };
    };
    // SAFETY: (pass-through)
    sock_op(rt, fd, st, Direction::Read, || unsafe {
        real::recvmsg()(fd, msg, flags | libc::MSG_DONTWAIT)
    })
}

/// `readv(2)`.
///
/// # Safety
///
/// As for libc's `readv`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    let Some((rt, st)) = route(fd) else {
        // SAFETY: (pass-through)
        return unsafe { real::readv()(fd, iov, cnt) };
    };
    if st.has(SOCK) {
        // SAFETY: (pass-through) a msghdr that only names the caller's
        // iovecs; recvmsg only writes through them.
        sock_op(rt, fd, st, Direction::Read, || unsafe {
            let mut m: msghdr = std::mem::zeroed();
            m.msg_iov = iov.cast_mut();
            m.msg_iovlen = cnt.max(0) as _;
            if cnt < 0 {
                return real::readv()(fd, iov, cnt); // EINVAL, from libc
            }
            real::recvmsg()(fd, &mut m, libc::MSG_DONTWAIT)
        })
    } else {
        // SAFETY: (pass-through)
        ready_op(rt, fd, st, Direction::Read, || unsafe {
            real::readv()(fd, iov, cnt)
        })
    }
}

// ---- write / send ---------------------------------------------------------

/// `write(2)`.
///
/// # Safety
///
/// As for libc's `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let Some((rt, st)) = route(fd) else {
        // SAFETY: (pass-through)
        return unsafe { real::write()(fd, buf, n) };
    };
    if st.has(SOCK) {
        send_all(n, st, |done| {
            stream_op(rt, fd, st, Direction::Write, n - done, || {
                // SAFETY: (pass-through) the rest of the caller's buffer;
                // `send` with flags 0 is `write` on a socket (SIGPIPE
                // included).
                unsafe {
                    real::send()(
                        fd,
                        buf.cast::<u8>().add(done).cast(),
                        n - done,
                        libc::MSG_DONTWAIT,
                    )
                }
            })
        })
    } else {
        // SAFETY: (pass-through)
        ready_op(rt, fd, st, Direction::Write, || unsafe {
            real::write()(fd, buf, n)
        })
    }
}

/// `send(2)`.
///
/// # Safety
///
/// As for libc's `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::send()(fd, buf, n, flags) };
    };
    send_all(n, st, |done| {
        stream_op(rt, fd, st, Direction::Write, n - done, || {
            // SAFETY: (pass-through) the rest of the caller's buffer.
            unsafe {
                real::send()(
                    fd,
                    buf.cast::<u8>().add(done).cast(),
                    n - done,
                    flags | libc::MSG_DONTWAIT,
                )
            }
        })
    })
}

/// `sendto(2)`.
///
/// # Safety
///
/// As for libc's `sendto`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::sendto()(fd, buf, n, flags, addr, len) };
    };
    send_all(n, st, |done| {
        stream_op(rt, fd, st, Direction::Write, n - done, || {
            // SAFETY: (pass-through) the rest of the caller's buffer.
            unsafe {
                real::sendto()(
                    fd,
                    buf.cast::<u8>().add(done).cast(),
                    n - done,
                    flags | libc::MSG_DONTWAIT,
                    addr,
                    len,
                )
            }
        })
    })
}

/// Sends the iovecs of `msg` with `flags | MSG_DONTWAIT` after skipping
/// `skip` bytes of them (a copy of the iovec array; the caller's is not
/// changed).
///
/// # Safety
///
/// `msg` is valid, as `sendmsg` requires.
unsafe fn sendmsg_from(fd: RawFd, msg: *const msghdr, flags: c_int, skip: usize) -> isize {
    // SAFETY: the caller's msghdr, valid as sendmsg requires.
    let m = unsafe { &*msg };
    if skip == 0 {
        // SAFETY: (pass-through)
        return unsafe { real::sendmsg()(fd, msg, flags | libc::MSG_DONTWAIT) };
    }
    // SAFETY: msg_iov points to msg_iovlen iovecs (sendmsg's contract).
    let iovs = unsafe { std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen) };
    let mut rest = Vec::with_capacity(iovs.len());
    let mut left = skip;
    for v in iovs {
        if left >= v.iov_len {
            left -= v.iov_len;
            continue;
        }
        rest.push(iovec {
            // SAFETY: `left < iov_len`: inside the caller's buffer.
            iov_base: unsafe { v.iov_base.cast::<u8>().add(left).cast() },
            iov_len: v.iov_len - left,
        });
        left = 0;
    }
    let mut copy = *m;
    copy.msg_iov = rest.as_mut_ptr();
    copy.msg_iovlen = rest.len() as _;
    // Ancillary data went with the first bytes.
    copy.msg_control = std::ptr::null_mut();
    copy.msg_controllen = 0;
    // SAFETY: (pass-through) the caller's buffers, through a copied header.
    unsafe { real::sendmsg()(fd, &copy, flags | libc::MSG_DONTWAIT) }
}

/// The total length of `cnt` iovecs.
///
/// # Safety
///
/// `iov` points to `cnt` iovecs (or `cnt` is not positive).
unsafe fn iov_total(iov: *const iovec, cnt: usize) -> usize {
    if cnt == 0 || iov.is_null() {
        return 0;
    }
    // SAFETY: the caller's `cnt` iovecs.
    unsafe { std::slice::from_raw_parts(iov, cnt) }
        .iter()
        .fold(0usize, |a, v| a.saturating_add(v.iov_len))
}

/// `sendmsg(2)`.
///
/// # Safety
///
/// As for libc's `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let route = if flags & libc::MSG_DONTWAIT != 0 || msg.is_null() {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::sendmsg()(fd, msg, flags) };
    };
    // SAFETY: a valid msghdr (sendmsg's contract).
    let total = unsafe { iov_total((*msg).msg_iov, (*msg).msg_iovlen) };
    send_all(total, st, |done| {
        // SAFETY: (pass-through)
        stream_op(rt, fd, st, Direction::Write, total - done, || unsafe {
            sendmsg_from(fd, msg, flags, done)
        })
    })
}

/// `writev(2)`.
///
/// # Safety
///
/// As for libc's `writev`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    let route = if cnt <= 0 || iov.is_null() {
        None
    } else {
        route(fd)
    };
    let Some((rt, st)) = route else {
        // SAFETY: (pass-through)
        return unsafe { real::writev()(fd, iov, cnt) };
    };
    if st.has(SOCK) {
        // SAFETY: a zeroed msghdr is valid; it names the caller's iovecs.
        let mut m: msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = iov.cast_mut();
        m.msg_iovlen = cnt as _;
        // SAFETY: the caller's `cnt` iovecs.
        let total = unsafe { iov_total(iov, cnt as usize) };
        send_all(total, st, |done| {
            // SAFETY: (pass-through) `m` names the caller's iovecs.
            stream_op(rt, fd, st, Direction::Write, total - done, || unsafe {
                sendmsg_from(fd, &m, 0, done)
            })
        })
    } else {
        // SAFETY: (pass-through)
        ready_op(rt, fd, st, Direction::Write, || unsafe {
            real::writev()(fd, iov, cnt)
        })
    }
}

// ---- accept / connect -----------------------------------------------------

/// `accept(2)`.
///
/// # Safety
///
/// As for libc's `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: (pass-through) accept is accept4 without flags.
    unsafe { accept4(fd, addr, len, 0) }
}

/// `accept4(2)`.
///
/// # Safety
///
/// As for libc's `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let r = match route(fd) {
        // SAFETY: (pass-through)
        None => unsafe { real::accept4()(fd, addr, len, flags) },
        // SAFETY: (pass-through)
        Some((rt, st)) => ready_op(rt, fd, st, Direction::Read, || unsafe {
            real::accept4()(fd, addr, len, flags) as isize
        }) as c_int,
    };
    if r >= 0 {
        // A listener's accepted sockets are streams; their timeouts are
        // inherited, so a possibly-set one is looked up on first use.
        let mut bits = fdtab::SOCK | POLLABLE | STREAM;
        if flags & libc::SOCK_NONBLOCK != 0 {
            bits |= NONBLOCK;
        }
        if let Some(l) = fdtab::lookup(fd) {
            bits |= l.bits & (RCVTIMEO | SNDTIMEO);
            if !l.has(STREAM) {
                bits &= !STREAM;
            }
        }
        fdtab::record(r, bits);
    }
    r
}

/// `connect(2)`: on a blocking socket, a non-blocking connect, then a wait
/// for writable and the outcome from `SO_ERROR`.
///
/// # Safety
///
/// As for libc's `connect`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some((rt, st)) = route(fd).filter(|(_, st)| st.has(SOCK)) else {
        // SAFETY: (pass-through)
        return unsafe { real::connect()(fd, addr, len) };
    };
    // Non-blocking for the one call, then back (the program's mode is
    // blocking, or `route` would have passed the call through).
    // SAFETY: F_GETFL/F_SETFL on the caller's fd.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    // SAFETY: as above.
    if fl < 0 || unsafe { real::fcntl()(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as _) } < 0 {
        // SAFETY: (pass-through)
        return unsafe { real::connect()(fd, addr, len) };
    }
    // SAFETY: (pass-through)
    let r = unsafe { real::connect()(fd, addr, len) };
    let e = errno();
    // SAFETY: restores the flags read above.
    unsafe { real::fcntl()(fd, libc::F_SETFL, fl as _) };
    set_errno(e);
    if r == 0 || e != libc::EINPROGRESS {
        return r;
    }
    wait::clear_ready(fd, Direction::Write);
    let deadline = sock_deadline(fd, st, Direction::Write);
    loop {
        if ready_now(fd, Direction::Write) {
            break;
        }
        match wait::wait_fds(rt, &[(fd, Direction::Write.bit())], deadline) {
            Ok(()) => {}
            // The kernel's blocking connect reports its SO_SNDTIMEO so.
            Err(Stop::TimedOut) => {
                set_errno(libc::EINPROGRESS);
                return -1;
            }
            Err(stop) => return fail(stop) as c_int,
        }
    }
    let mut err: c_int = 0;
    let mut l = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: valid out-parameters of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut l,
        )
    };
    if r < 0 {
        return -1;
    }
    if err != 0 {
        set_errno(err);
        return -1;
    }
    0
}

// ---- poll / ppoll / select ------------------------------------------------

/// The directions a pollfd's `events` wait for.
fn dirs_of(events: i16) -> u8 {
    let mut d = 0;
    if events & (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) != 0 {
        d |= Direction::Read.bit();
    }
    if events & libc::POLLOUT != 0 {
        d |= Direction::Write.bit();
    }
    // Only hang-ups and errors asked for (always reported): any event.
    if d == 0 {
        d = Direction::Read.bit();
    }
    d
}

/// The cooperative `poll`: looks with a zero timeout, and until something
/// is ready or `deadline` passes, waits for an event on one of the fds and
/// looks again.
///
/// # Safety
///
/// `fds` points to `n` pollfds (poll's contract).
unsafe fn coop_poll(rt: &Runtime, fds: *mut pollfd, n: nfds_t, deadline: Option<Instant>) -> c_int {
    loop {
        // SAFETY: (pass-through) the caller's pollfds, zero timeout.
        let r = unsafe { real::poll()(fds, n, 0) };
        if r != 0 {
            return r;
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return 0;
        }
        let list: Vec<(RawFd, u8)> = if n == 0 {
            Vec::new()
        } else {
            // SAFETY: the caller's `n` pollfds.
            unsafe { std::slice::from_raw_parts(fds, n as usize) }
                .iter()
                .filter(|p| p.fd >= 0)
                .map(|p| (p.fd, dirs_of(p.events)))
                .collect()
        };
        for &(fd, dirs) in &list {
            if dirs & Direction::Read.bit() != 0 {
                wait::clear_ready(fd, Direction::Read);
            }
            if dirs & Direction::Write.bit() != 0 {
                wait::clear_ready(fd, Direction::Write);
            }
        }
        match wait::wait_fds(rt, &list, deadline) {
            Ok(()) => {}
            Err(Stop::TimedOut) => {} // looked at once more above
            Err(Stop::Closed) => {}   // poll reports POLLNVAL for it
            Err(stop) => return fail(stop) as c_int,
        }
    }
}

/// `poll(2)`.
///
/// # Safety
///
/// As for libc's `poll`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    let rt = if timeout == 0 { None } else { hub_here() };
    let Some(rt) = rt else {
        // SAFETY: (pass-through)
        return unsafe { real::poll()(fds, n, timeout) };
    };
    let deadline =
        (timeout > 0).then(|| crate::timer::deadline_after(Duration::from_millis(timeout as u64)));
    // SAFETY: (pass-through)
    unsafe { coop_poll(rt, fds, n, deadline) }
}

/// glibc's checked `poll`.
///
/// # Safety
///
/// As for libc's `poll`, with `fdslen` the size of `fds` in bytes.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if (fdslen / std::mem::size_of::<pollfd>()) < n as usize {
        chk_fail();
    }
    // SAFETY: (pass-through)
    unsafe { poll(fds, n, timeout) }
}

/// `ppoll(2)`. With a signal mask, passed through (the mask would have to
/// hold for the whole wait, across other greenlets' code).
///
/// # Safety
///
/// As for libc's `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: a non-null timeout is the caller's valid timespec.
    let zero = !ts.is_null() && unsafe { (*ts).tv_sec == 0 && (*ts).tv_nsec == 0 };
    let rt = if zero || !mask.is_null() {
        None
    } else {
        hub_here()
    };
    let Some(rt) = rt else {
        // SAFETY: (pass-through)
        return unsafe { real::ppoll()(fds, n, ts, mask) };
    };
    // SAFETY: as above.
    let deadline = (!ts.is_null()).then(|| unsafe { timespec_after(&*ts) });
    // SAFETY: (pass-through)
    unsafe { coop_poll(rt, fds, n, deadline) }
}

/// The deadline `ts` from now (a negative or invalid one: now).
fn timespec_after(ts: &timespec) -> Instant {
    let d = if ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1_000_000_000 {
        Duration::ZERO
    } else {
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    crate::timer::deadline_after(d)
}

/// `select(2)`: as `poll` on the same descriptors, then one zero-timeout
/// `select` on the caller's sets to fill them in.
///
/// # Safety
///
/// As for libc's `select`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    // SAFETY: a non-null timeout is the caller's valid timeval.
    let zero = !tv.is_null() && unsafe { (*tv).tv_sec == 0 && (*tv).tv_usec == 0 };
    let rt = if zero || !(0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
        None
    } else {
        hub_here()
    };
    let Some(rt) = rt else {
        // SAFETY: (pass-through)
        return unsafe { real::select()(nfds, r, w, e, tv) };
    };
    let deadline = (!tv.is_null()).then(|| {
        // SAFETY: as above.
        let t = unsafe { &*tv };
        let d = if t.tv_sec < 0 || t.tv_usec < 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        crate::timer::deadline_after(d)
    });
    // The caller's sets, kept to be asked again after each wait.
    let copy = |s: *mut fd_set| {
        if s.is_null() {
            None
        } else {
            // SAFETY: a non-null set is the caller's valid fd_set (plain
            // bits, copied).
            Some(unsafe { *s })
        }
    };
    let (r0, w0, e0) = (copy(r), copy(w), copy(e));
    let mut list = Vec::new();
    for fd in 0..nfds {
        // SAFETY: fd < nfds <= FD_SETSIZE, inside each set.
        let has = |s: &Option<fd_set>| s.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) });
        let mut d = 0;
        if has(&r0) || has(&e0) {
            d |= Direction::Read.bit();
        }
        if has(&w0) {
            d |= Direction::Write.bit();
        }
        if d != 0 {
            list.push((fd, d));
        }
    }
    loop {
        let mut zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: restores the caller's sets before each look.
        unsafe {
            if let Some(s) = r0 {
                *r = s;
            }
            if let Some(s) = w0 {
                *w = s;
            }
            if let Some(s) = e0 {
                *e = s;
            }
        }
        // SAFETY: (pass-through) the caller's sets, zero timeout.
        let n = unsafe { real::select()(nfds, r, w, e, &mut zero) };
        if n != 0 {
            return n;
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return 0;
        }
        for &(fd, d) in &list {
            if d & Direction::Read.bit() != 0 {
                wait::clear_ready(fd, Direction::Read);
            }
            if d & Direction::Write.bit() != 0 {
                wait::clear_ready(fd, Direction::Write);
            }
        }
        match wait::wait_fds(rt, &list, deadline) {
            Ok(()) | Err(Stop::TimedOut) | Err(Stop::Closed) => {}
            Err(stop) => return fail(stop) as c_int,
        }
    }
}
