//! What the patched calls remember about each file descriptor: its kind,
//! the blocking mode *the program* gave it, whether it may have socket
//! timeouts, and a generation that every close moves on.
//!
//! One atomic word per descriptor number, in chunks allocated on first
//! use (all threads share it: a descriptor belongs to the process). A
//! descriptor the table does not know is probed once (`fcntl(F_GETFL)`,
//! `fstat`, and for a socket its type and timeouts); the patched calls that
//! create descriptors (`socket`, `accept4`, `socketpair`) record them
//! without a probe, and `fcntl`, `ioctl(FIONBIO)`, `setsockopt`, `close`
//! and `dup2`/`dup3` keep the record true.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use super::real;

/// The record has been filled (by a probe or a creating call).
pub(super) const KNOWN: u32 = 1;
/// A socket.
pub(super) const SOCK: u32 = 2;
/// A byte-stream socket (`SOCK_STREAM`): sends move everything.
pub(super) const STREAM: u32 = 4;
/// Can wait for readiness (a socket, pipe, FIFO, terminal, eventfd…):
/// not a regular file, directory or block device.
pub(super) const POLLABLE: u32 = 8;
/// The program made it non-blocking (`O_NONBLOCK`): pass every call
/// through.
pub(super) const NONBLOCK: u32 = 16;
/// `SO_RCVTIMEO` may be set: ask the kernel before a read waits.
pub(super) const RCVTIMEO: u32 = 32;
/// `SO_SNDTIMEO` may be set: ask the kernel before a write waits.
pub(super) const SNDTIMEO: u32 = 64;
/// An Internet socket (`AF_INET`, `AF_INET6`): a short stream read proves
/// it drained. (A Unix stream read also stops short at passed descriptors
/// or credentials, with data still queued.)
pub(super) const INET: u32 = 128;
/// The number shares its open file description with another (made by
/// `dup`, `dup2`, `dup3`, `F_DUPFD`): `O_NONBLOCK` set through the other
/// number changes this one too, so the kernel is asked before a wait.
/// Kept in bit 8, below the generation's 23 bits.
pub(super) const SHARED: u32 = 256;
/// The flag bits of a record (the rest is the generation).
const FLAG_BITS: u32 = 0x1ff;
/// The generation: the high 23 bits, moved on by each close.
const GEN_ONE: u32 = 0x200;

const CHUNK: usize = 4096;
const CHUNKS: usize = 256;

/// The table: descriptors `0..CHUNK * CHUNKS` (a million); larger ones are
/// probed on every call.
static TABLE: [AtomicPtr<AtomicU32>; CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

/// The cell of `fd` if its chunk exists: never allocates (for `close`,
/// `dup2` and `fcntl`, which may run in a forked child or a signal
/// handler, where allocating is not allowed).
fn existing_cell(fd: i32) -> Option<&'static AtomicU32> {
    let fd = usize::try_from(fd).ok()?;
    let p = TABLE.get(fd / CHUNK)?.load(Ordering::Acquire);
    // SAFETY: as in `cell`.
    (!p.is_null()).then(|| unsafe { &*p.add(fd % CHUNK) })
}

/// The cell of `fd`, allocating its chunk on first use; `None` for a
/// negative or very large fd.
fn cell(fd: i32) -> Option<&'static AtomicU32> {
    let fd = usize::try_from(fd).ok()?;
    let (c, i) = (fd / CHUNK, fd % CHUNK);
    let slot = TABLE.get(c)?;
    let mut p = slot.load(Ordering::Acquire);
    if p.is_null() {
        let fresh: Box<[AtomicU32]> = (0..CHUNK).map(|_| AtomicU32::new(0)).collect();
        let fresh = Box::into_raw(fresh).cast::<AtomicU32>();
        match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => p = fresh,
            Err(won) => {
                // SAFETY: `fresh` came from `Box::into_raw` of a CHUNK-long
                // slice just above and was never published.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, CHUNK)) });
                p = won;
            }
        }
    }
    // SAFETY: a published chunk is CHUNK cells long and never freed (it
    // lives for the process), and `i < CHUNK`.
    Some(unsafe { &*p.add(i) })
}

/// What the table knows of a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fd {
    pub(super) bits: u32,
}

impl Fd {
    pub(super) fn has(self, bit: u32) -> bool {
        self.bits & bit != 0
    }
}

/// The record of `fd`, probing it if unknown. `None` when `fd` is not an
/// open descriptor (the caller passes the call through, and libc reports
/// `EBADF`).
pub(super) fn lookup(fd: i32) -> Option<Fd> {
    let c = cell(fd);
    if let Some(c) = c {
        let v = c.load(Ordering::Acquire);
        if v & KNOWN != 0 {
            return Some(Fd { bits: v });
        }
    }
    let bits = probe(fd)?;
    Some(Fd {
        bits: match c {
            Some(c) => set_flags(c, bits),
            None => bits,
        },
    })
}

/// The generation of `fd`'s number now (without probing).
pub(super) fn generation(fd: i32) -> u32 {
    existing_cell(fd).map_or(0, |c| c.load(Ordering::Acquire) >> 9)
}

/// Replaces the flags of `c` (but a `SHARED` mark stays), keeping its
/// generation; returns the word.
fn set_flags(c: &AtomicU32, flags: u32) -> u32 {
    let mut cur = c.load(Ordering::Acquire);
    loop {
        let new = (cur & !FLAG_BITS) | (cur & SHARED) | (flags & FLAG_BITS) | KNOWN;
        match c.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return new,
            Err(now) => cur = now,
        }
    }
}

/// Records a descriptor just made by a patched call, with what that call
/// told: no probe needed. A new life for the number: its generation moves
/// on (it may have been closed behind the patch's back, by libc itself).
pub(super) fn record(fd: i32, flags: u32) {
    if let Some(c) = cell(fd) {
        forget(fd);
        set_flags(c, flags | KNOWN);
    }
}

/// Marks `fd` as sharing its open file description (see [`SHARED`]),
/// known or not.
pub(super) fn mark_shared(fd: i32) {
    if let Some(c) = existing_cell(fd).or_else(|| cell(fd)) {
        c.fetch_or(SHARED, Ordering::AcqRel);
    }
}

/// Sets or clears `bit` in a known record (`fcntl`, `ioctl`,
/// `setsockopt`); an unknown one stays unknown (its probe will see it).
pub(super) fn update(fd: i32, bit: u32, on: bool) {
    let Some(c) = existing_cell(fd) else { return };
    let mut cur = c.load(Ordering::Acquire);
    while cur & KNOWN != 0 {
        let new = if on { cur | bit } else { cur & !bit };
        match c.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
}

/// The number `fd` was closed (or replaced by `dup2`): forget it, and
/// move its generation on.
pub(super) fn forget(fd: i32) {
    if let Some(c) = existing_cell(fd) {
        let mut cur = c.load(Ordering::Acquire);
        loop {
            let new = (cur & !FLAG_BITS).wrapping_add(GEN_ONE);
            match c.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

/// Asks the kernel what `fd` is; `None` if it is not open.
fn probe(fd: i32) -> Option<u32> {
    // SAFETY: fcntl(F_GETFL) takes no third argument; a bad fd fails.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    if fl < 0 {
        return None;
    }
    let mut bits = KNOWN;
    if fl & libc::O_NONBLOCK != 0 {
        bits |= NONBLOCK;
    }
    // SAFETY: `st` is a valid out-parameter for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return None;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK => {}
        libc::S_IFSOCK => {
            bits |= SOCK | POLLABLE;
            if matches!(
                sock_int(fd, libc::SO_DOMAIN),
                Some(libc::AF_INET | libc::AF_INET6)
            ) {
                bits |= INET;
            }
            if sock_int(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM) {
                bits |= STREAM;
            }
            if timeout_of(fd, libc::SO_RCVTIMEO).is_some() {
                bits |= RCVTIMEO;
            }
            if timeout_of(fd, libc::SO_SNDTIMEO).is_some() {
                bits |= SNDTIMEO;
            }
        }
        // FIFOs, terminals and other character devices, and the anonymous
        // inodes (eventfd, timerfd, signalfd, inotify) that have no type.
        _ => bits |= POLLABLE,
    }
    Some(bits)
}

/// An `int` socket option of `fd`.
fn sock_int(fd: i32, opt: i32) -> Option<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-parameters of the right size.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
    (r == 0).then_some(v)
}

/// The socket timeout `opt` (`SO_RCVTIMEO`/`SO_SNDTIMEO`) of `fd`, if set.
pub(super) fn timeout_of(fd: i32, opt: i32) -> Option<std::time::Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are valid out-parameters of the right size.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut tv).cast(), &mut len) };
    if r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(std::time::Duration::new(
        tv.tv_sec as u64,
        tv.tv_usec as u32 * 1000,
    ))
}
