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

use super::fdtab::{self, Fd, INET, NONBLOCK, POLLABLE, RCVTIMEO, SHARED, SNDTIMEO, SOCK, STREAM};
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
///
/// Standard input, output and error (0, 1, 2) always pass through: std
/// holds its stdio lock and buffer borrow across the call, so a greenlet
/// parked inside it would make another greenlet's `println!` find the
/// buffer borrowed (a panic) or the stdin lock taken (a deadlock).
#[inline]
fn route(fd: RawFd) -> Option<(&'static Runtime, Fd)> {
    if fd <= 2 {
        return None;
    }
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
    let mut tick = Duration::from_millis(1);
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
        if nonblocking_now(fd, st) {
            set_errno(libc::EAGAIN);
            return -1;
        }
        if first {
            deadline = sock_deadline(fd, st, dir);
            first = false;
        }
        // A datagram sent to a full receiver gets EAGAIN, but the sender's
        // own socket may report no writable edge when the receiver drains
        // (an unconnected Unix datagram socket): look again at a
        // backing-off interval as well.
        let mut until = deadline;
        if dir == Direction::Write && !st.has(STREAM) {
            let t = Instant::now() + tick;
            until = Some(until.map_or(t, |d| d.min(t)));
            tick = (tick * 2).min(Duration::from_millis(50));
        }
        match wait::wait_fds(rt, &[(fd, dir.bit())], until) {
            Ok(()) => {}
            Err(Stop::TimedOut) if until != deadline => wait::set_ready(fd, dir),
            Err(stop) => return fail(stop),
        }
    }
}

/// Whether `fd`, which shares its open file description with another
/// number (see `fdtab::SHARED`), has been made non-blocking through that
/// other number: then the program asked for `EAGAIN`, not a wait.
fn nonblocking_now(fd: RawFd, st: Fd) -> bool {
    if !st.has(SHARED) {
        return false;
    }
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
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
    if st.has(STREAM) && st.has(INET) && r > 0 && (r as usize) < len {
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
fn ready_op(
    rt: &Runtime,
    fd: RawFd,
    st: Fd,
    dir: Direction,
    mut op: impl FnMut() -> isize,
) -> isize {
    let mut deadline = None;
    let mut first = true;
    loop {
        if let Some(_q) = rt.enter_quiet() {
            rt.spend(IO_COST);
        }
        if ready_now(fd, dir) {
            return op();
        }
        if nonblocking_now(fd, st) {
            set_errno(libc::EAGAIN);
            return -1;
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
fn send_all(total: impl Fn() -> usize, st: Fd, mut step: impl FnMut(usize) -> isize) -> isize {
    let mut done = 0usize;
    // Known only once a step succeeded (the kernel has then checked the
    // caller's buffers: iovecs are read no earlier).
    let mut total_len = None;
    loop {
        let r = step(done);
        if r < 0 {
            return if done > 0 { done as isize } else { r };
        }
        done += r as usize;
        let total = *total_len.get_or_insert_with(&total);
        if done >= total || r == 0 || !st.has(STREAM) {
            return done as isize;
        }
    }
}

/// A blocking `write` to a pipe, FIFO or terminal, cooperatively: at most
/// `PIPE_BUF` bytes per step, each once a zero-timeout `poll` says there is
/// room (a pipe reports writable with one free page; a larger write would
/// block the thread until a reader drains it), until all `n` are written.
fn write_in_steps(rt: &Runtime, fd: RawFd, st: Fd, buf: *const c_void, n: usize) -> isize {
    let mut done = 0usize;
    loop {
        let step = (n - done).min(libc::PIPE_BUF);
        let r = ready_op(rt, fd, st, Direction::Write, || {
            // SAFETY: (pass-through) the rest of the caller's buffer.
            unsafe { real::write()(fd, buf.cast::<u8>().add(done).cast(), step) }
        });
        if r < 0 {
            return if done > 0 { done as isize } else { r };
        }
        done += r as usize;
        if done >= n || r == 0 {
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
    // SAFETY: (pass-through) `recv` is `recvfrom` without an address.
    unsafe {
        recvfrom(
            fd,
            buf,
            n,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// `recv` with `MSG_WAITALL` on a stream: fills the buffer, unless the
/// peer closes or an error comes first (then what was received so far).
fn recv_all(rt: &Runtime, fd: RawFd, st: Fd, buf: *mut c_void, n: size_t, flags: c_int) -> isize {
    if flags & libc::MSG_PEEK != 0 {
        return peek_all(rt, fd, st, buf, n, flags);
    }
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

/// `recv` with `MSG_PEEK | MSG_WAITALL` on a stream: peeks the whole
/// length again after each wait until it is all there (or the peer
/// closed), leaving the data queued.
fn peek_all(rt: &Runtime, fd: RawFd, st: Fd, buf: *mut c_void, n: size_t, flags: c_int) -> isize {
    let flags = (flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    let deadline = sock_deadline(fd, st, Direction::Read);
    loop {
        // SAFETY: (pass-through) the caller's buffer.
        let r = sock_op(rt, fd, st, Direction::Read, || unsafe {
            real::recv()(fd, buf, n, flags)
        });
        if r <= 0 || r as usize >= n {
            return r;
        }
        // Part of it is there: wait for more, then peek it all again.
        wait::clear_ready(fd, Direction::Read);
        match wait::wait_fds(rt, &[(fd, Direction::Read.bit())], deadline) {
            Ok(()) => {}
            Err(Stop::TimedOut) => return r,
            Err(stop) => return fail(stop),
        }
    }
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
    if flags & libc::MSG_WAITALL != 0 && st.has(STREAM) {
        // A stream's source address is its peer's; filled in as the
        // kernel would.
        if !addr.is_null() && !len.is_null() {
            // SAFETY: the caller's address buffer and its length.
            unsafe { libc::getpeername(fd, addr, len) };
        }
        return recv_all(rt, fd, st, buf, n, flags);
    }
    // SAFETY: (pass-through)
    stream_op(rt, fd, st, Direction::Read, peeking(flags, n), || unsafe {
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
        send_all(
            || n,
            st,
            |done| {
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
            },
        )
    } else {
        write_in_steps(rt, fd, st, buf, n)
    }
}

/// `send(2)`.
///
/// # Safety
///
/// As for libc's `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: (pass-through) `send` is `sendto` without an address.
    unsafe { sendto(fd, buf, n, flags, std::ptr::null(), 0) }
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
    send_all(
        || n,
        st,
        |done| {
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
        },
    )
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
    // SAFETY: read once a send succeeded, so the kernel found the msghdr
    // and its iovecs valid.
    let total = || unsafe { iov_total((*msg).msg_iov, (*msg).msg_iovlen) };
    send_all(total, st, |done| {
        // SAFETY: (pass-through)
        sock_op(rt, fd, st, Direction::Write, || unsafe {
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
        // SAFETY: read once a send succeeded, so the kernel found the
        // caller's `cnt` iovecs valid.
        let total = || unsafe { iov_total(iov, cnt as usize) };
        send_all(total, st, |done| {
            // SAFETY: (pass-through) `m` names the caller's iovecs.
            sock_op(rt, fd, st, Direction::Write, || unsafe {
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
            bits |= l.bits & (RCVTIMEO | SNDTIMEO | INET);
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
    if fl < 0 || fl & libc::O_NONBLOCK != 0 {
        // Non-blocking after all (set through another number): as asked.
        // SAFETY: (pass-through)
        return unsafe { real::connect()(fd, addr, len) };
    }
    let mut pause = Duration::from_millis(1);
    let (r, e) = loop {
        // SAFETY: F_SETFL on the caller's fd.
        if unsafe { real::fcntl()(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as _) } < 0 {
            // SAFETY: (pass-through)
            return unsafe { real::connect()(fd, addr, len) };
        }
        // SAFETY: (pass-through)
        let r = unsafe { real::connect()(fd, addr, len) };
        let e = errno();
        // SAFETY: restores the flags read above.
        unsafe { real::fcntl()(fd, libc::F_SETFL, fl as _) };
        // A Unix listener with a full backlog answers EAGAIN to a
        // non-blocking connect, where a blocking one waits: try again,
        // backing off.
        if r < 0 && e == libc::EAGAIN {
            if let Err(stop) = wait::sleep_until(rt, crate::timer::deadline_after(pause)) {
                return fail(stop) as c_int;
            }
            pause = (pause * 2).min(Duration::from_millis(50));
            continue;
        }
        break (r, e);
    };
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
        let pfds: &[pollfd] = if n == 0 {
            &[]
        } else {
            // SAFETY: the caller's `n` pollfds.
            unsafe { std::slice::from_raw_parts(fds, n as usize) }
        };
        let list: Vec<(RawFd, u8)> = pfds
            .iter()
            .filter(|p| p.fd >= 0)
            .map(|p| (p.fd, dirs_of(p.events)))
            .collect();
        // The zero-timeout look found nothing: a direction it looked at
        // with POLLIN or POLLOUT is not ready. One asked only through
        // POLLPRI or POLLRDHUP says nothing about ordinary data: left.
        for p in pfds.iter().filter(|p| p.fd >= 0) {
            if p.events & libc::POLLIN != 0 {
                wait::clear_ready(p.fd, Direction::Read);
            }
            if p.events & libc::POLLOUT != 0 {
                wait::clear_ready(p.fd, Direction::Write);
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
    let t = (!ts.is_null()).then(|| unsafe { *ts });
    // A zero or invalid timeout: libc's (an invalid one fails with EINVAL).
    let plain = t.is_some_and(|t| {
        (t.tv_sec == 0 && t.tv_nsec == 0)
            || t.tv_sec < 0
            || !(0..1_000_000_000).contains(&t.tv_nsec)
    });
    let rt = if plain || !mask.is_null() {
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
    let t = (!tv.is_null()).then(|| unsafe { *tv });
    // A zero or invalid timeout: libc's (an invalid one fails with EINVAL).
    let plain = t.is_some_and(|t| {
        (t.tv_sec == 0 && t.tv_usec == 0) || t.tv_sec < 0 || !(0..1_000_000).contains(&t.tv_usec)
    });
    let rt = if plain || !(0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
        None
    } else {
        hub_here()
    };
    let Some(rt) = rt else {
        // SAFETY: (pass-through)
        return unsafe { real::select()(nfds, r, w, e, tv) };
    };
    let deadline = t.map(|t| {
        crate::timer::deadline_after(
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64),
        )
    });
    // The caller's sets may be only as long as `nfds` needs (whole words):
    // only that much is read and written.
    let bytes = (nfds as usize).div_ceil(64) * 8;
    let copy = |s: *mut fd_set| {
        if s.is_null() {
            return None;
        }
        // SAFETY: a zeroed fd_set is valid (plain bits).
        let mut c: fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: the caller's set holds at least `bytes` (nfds bits,
        // rounded up to words, as the kernel reads it); `c` holds 128.
        unsafe { std::ptr::copy_nonoverlapping(s.cast::<u8>(), (&raw mut c).cast::<u8>(), bytes) };
        Some(c)
    };
    let restore = |s: *mut fd_set, c: &Option<fd_set>| {
        if let Some(c) = c {
            // SAFETY: as in `copy`, the other way.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    (c as *const fd_set).cast::<u8>(),
                    s.cast::<u8>(),
                    bytes,
                )
            };
        }
    };
    let (r0, w0, e0) = (copy(r), copy(w), copy(e));
    // SAFETY: fd < nfds <= FD_SETSIZE, inside each copy.
    let has = |s: &Option<fd_set>, fd| s.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) });
    let mut list = Vec::new();
    for fd in 0..nfds {
        let mut d = 0;
        if has(&r0, fd) || has(&e0, fd) {
            d |= Direction::Read.bit();
        }
        if has(&w0, fd) {
            d |= Direction::Write.bit();
        }
        if d != 0 {
            list.push((fd, d));
        }
    }
    let ret = loop {
        let mut zero = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // The caller's sets again before each look.
        restore(r, &r0);
        restore(w, &w0);
        restore(e, &e0);
        // SAFETY: (pass-through) the caller's sets, zero timeout.
        let n = unsafe { real::select()(nfds, r, w, e, &mut zero) };
        if n != 0 {
            break n;
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            break 0;
        }
        // Nothing ready: clear what was looked at for data (an fd only in
        // the exception set says nothing about its data).
        for &(fd, _) in &list {
            if has(&r0, fd) {
                wait::clear_ready(fd, Direction::Read);
            }
            if has(&w0, fd) {
                wait::clear_ready(fd, Direction::Write);
            }
        }
        match wait::wait_fds(rt, &list, deadline) {
            Ok(()) | Err(Stop::TimedOut) | Err(Stop::Closed) => {}
            Err(stop) => break fail(stop) as c_int,
        }
    };
    // Linux's select leaves the time not slept in the timeout.
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        // SAFETY: the caller's timeval, read above.
        unsafe {
            (*tv).tv_sec = left.as_secs() as _;
            (*tv).tv_usec = left.subsec_micros() as _;
        }
    }
    ret
}
