//! `patch_all()`: blocking calls made by code you did not write — std,
//! Rust crates, C libraries — cooperate with the hub.
//!
//! gevent's `monkey.patch_all()` replaces Python's blocking functions. This
//! module does the same one level down, for the C library's: after
//! [`patch_all`], a `read`, `recv`, `connect`, `poll`, `nanosleep`,
//! `waitpid`, `getaddrinfo`… made inside a greenlet parks only that
//! greenlet, and the hub runs the others meanwhile. An HTTP client crate
//! that opens its own `std::net::TcpStream`, a database driver, a C
//! library's `poll` loop, `std::process::Command::output`: all of them
//! start to cooperate without a change.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! verdant_runtime::patch::patch_all();
//! let t = Instant::now();
//! // Plain std code: each would block the thread for 50 ms.
//! let a = verdant_runtime::spawn(|| std::thread::sleep(Duration::from_millis(50)));
//! let b = verdant_runtime::spawn(|| std::thread::sleep(Duration::from_millis(50)));
//! verdant_runtime::joinall([&a, &b]).unwrap();
//! assert!(t.elapsed() < Duration::from_millis(95)); // side by side
//! ```
//!
//! # How it reaches every caller
//!
//! This crate *defines* the libc entry points (`read`, `write`, `poll`, …,
//! the list is [`ROUTED`]) as ordinary exported functions. Three kinds of
//! caller end up in them, each for its own reason, and a test proves each:
//!
//! * **Rust code in the binary** (std, every crate): its calls are
//!   undefined references to `read` & co. that the static linker resolves;
//!   a definition in an object file wins over the shared libc's, so they
//!   bind to these functions. The linker pulls these definitions in
//!   because std (and [`patch_all`], which refers to each group of them)
//!   references them.
//! * **C code compiled into the binary** (a `cc`-crate build): the same
//!   static resolution.
//! * **Shared libraries** (linked, or loaded with `dlopen`): their calls go
//!   through their PLT, which the dynamic linker resolves in the global
//!   scope, where the executable comes first. Both GNU ld and lld export
//!   from an executable every symbol that a shared library in the link also
//!   defines (libc defines all of these), so these functions are in the
//!   executable's dynamic symbol table and win.
//!
//! Each function reaches the real libc one through `dlsym(RTLD_NEXT, …)`
//! (found once, then cached). Libraries loaded with `RTLD_DEEPBIND`, and
//! libc's calls to itself (stdio's `fread` on a socket, `getaddrinfo`'s own
//! sockets) do not come here.
//!
//! # When a call cooperates
//!
//! A call cooperates only if all of these hold; otherwise it goes straight
//! to libc and blocks as it always did:
//!
//! * [`patch_all`] was called, and this thread is not inside
//!   [`blocking`] (nor on the blocking pool, whose threads are meant to
//!   block);
//! * the thread has a hub (it has used verdant), and the call is made by a
//!   greenlet or by the thread's main code, not by the hub itself, not
//!   while the runtime is using its own state, not during a panic;
//! * the file descriptor is one that can wait: a socket, a pipe, a FIFO, a
//!   terminal. **Regular files never wait** (the kernel reports them always
//!   ready), so their reads block; use `spawn_blocking` for slow disks.
//! * the program sees the descriptor as blocking: if it set `O_NONBLOCK`
//!   itself, or passes `MSG_DONTWAIT`, it gets `EAGAIN` as it asked
//!   (verdant's own sockets are of this kind, and pass straight through).
//!
//! # What the program sees
//!
//! Nothing new. A descriptor keeps the mode the program gave it: a socket
//! the program believes blocking *is* blocking (the cooperative path asks
//! the kernel for one non-blocking attempt per call, with `MSG_DONTWAIT`,
//! or first checks readiness with a zero-timeout `poll`), so `fcntl`
//! reports what the program set, and another thread using it blocks as
//! usual. A blocking send on a stream socket sends everything before it
//! returns, as the kernel's would. `SO_RCVTIMEO` and `SO_SNDTIMEO` are
//! honoured: the call fails with `EAGAIN` (`EINPROGRESS` for `connect`)
//! when they pass. `errno` is what libc would set.
//!
//! A greenlet that waits in a patched call and is **killed**, or whose
//! `with_timeout` scope expires, cannot unwind there: the frames between
//! it and the greenlet's function include foreign ones (declared
//! `extern "C"`), which no unwind may cross. The call fails instead, with
//! `ECANCELED` for a kill and `ETIMEDOUT` for an expired scope (a sleep
//! returns early), and the kill or timeout is raised at the greenlet's next
//! verdant wait (`with_timeout` returns `Err(Elapsed)` even if its closure
//! returned). Code that retries such a failure forever without reaching a
//! verdant wait keeps running: each retry yields to the hub, so the others
//! still run.
//!
//! # Limits
//!
//! * Linux with glibc, x86-64 and AArch64 (the variadic `fcntl` and
//!   `ioctl` are defined with their third argument as a plain word, which
//!   is how those two ABIs pass it).
//! * A descriptor closed by libc itself (`fclose`, `closedir`) bypasses
//!   the patched `close`; if its number was used by a patched call before,
//!   its remembered mode may be stale until the number is next closed
//!   through `close`.
//! * Calls on one descriptor from several threads' hubs each register it
//!   with their own hub; a `close` wakes the waiters of the hub it is
//!   called on (the kernel wakes no one in that case either).
//! * Not routed: `epoll_wait` made by foreign code, `sendfile`, `splice`
//!   (which `std::io::copy` uses between a file or pipe and a socket),
//!   `recvmmsg`/`sendmmsg` and `pselect`: they block as before.
//! * Standard input, output and error (descriptors 0 to 2) are never made
//!   to wait cooperatively: std holds its stdio lock across the call, and
//!   another greenlet's `println!` would then find it taken.
//! * A `std::sync::Mutex` (or any lock of another thread's kind) held
//!   across a patched call by one greenlet and taken by another greenlet of
//!   the same thread deadlocks that thread: patching reaches system calls,
//!   not futexes.
//! * A blocking `accept`, and a read from a pipe or terminal, first check
//!   readiness with a zero-timeout `poll`; if another process or thread
//!   takes the connection or data between the check and the call, the call
//!   blocks the hub until the next one comes. Give a listener shared across
//!   processes `O_NONBLOCK` (or use `verdant::net`).
//! * No patched wait returns `EINTR`: a signal does not end it (the hub's
//!   own wait absorbs the interruption).
//! * A signal handler that calls a patched function on a hub's thread
//!   while a greenlet runs may switch greenlets inside the handler if the
//!   call would block; handlers should only make async-signal-safe calls
//!   on non-blocking descriptors (the usual self-pipe is).
//! * A greenlet still parked in a patched call when its hub shuts down
//!   (its thread exits) cannot be unwound: its stack is leaked, and locks
//!   it holds stay held.

mod dns;
mod fds;
mod fdtab;
mod io;
mod proc;
mod real;
mod time;
mod wait;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::hub::{self, Runtime};

pub use self::fds::ROUTED;

static ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Depth of [`blocking`] sections on this thread.
    static OFF: Cell<u32> = const { Cell::new(0) };
}

/// Turns patching on for the whole process: from now on, the libc calls in
/// [`ROUTED`] that a greenlet makes cooperate (see the
/// [module docs](self) for when exactly). Idempotent; there is no way back
/// for the process, as in gevent, but [`blocking`] turns it off for a
/// section of one thread. The child of a `fork` starts unpatched (it
/// shares the parent's epoll instances, and only the forking thread lives
/// on in it); `exec` starts afresh anyway.
///
/// # Examples
///
/// ```
/// verdant_runtime::patch::patch_all();
/// assert!(verdant_runtime::patch::is_patched());
/// ```
pub fn patch_all() {
    // Each group of entry points is referred to here, so that a linker that
    // pulls archive members on demand (GNU ld) takes them all.
    io::link();
    fds::link();
    time::link();
    proc::link();
    dns::link();
    real::prime();
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a child handler that only stores an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    ACTIVE.store(true, Ordering::Release);
}

/// Whether [`patch_all`] has been called.
///
/// # Examples
///
/// ```
/// verdant_runtime::patch::patch_all();
/// assert!(verdant_runtime::patch::is_patched());
/// ```
pub fn is_patched() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// What is routed, and whether a call made here and now would cooperate.
///
/// # Examples
///
/// ```
/// let p = verdant_runtime::patch::patched();
/// assert!(p.routed.contains(&"recv"));
/// assert!(!p.cooperates_here || p.active);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Patched {
    /// Whether [`patch_all`] was called.
    pub active: bool,
    /// The libc functions defined by this module ([`ROUTED`]).
    pub routed: &'static [&'static str],
    /// Whether a blocking call on a socket made at this point would
    /// cooperate (patching is on, this thread has a hub, it is not in a
    /// [`blocking`] section…).
    pub cooperates_here: bool,
}

/// Reports what is routed and whether calls made here cooperate.
///
/// # Examples
///
/// ```
/// verdant_runtime::patch::patch_all();
/// verdant_runtime::spawn(|| ()).join().unwrap(); // this thread has a hub
/// assert!(verdant_runtime::patch::patched().cooperates_here);
/// verdant_runtime::patch::blocking(|| {
///     assert!(!verdant_runtime::patch::patched().cooperates_here);
/// });
/// ```
pub fn patched() -> Patched {
    Patched {
        active: is_patched(),
        routed: ROUTED,
        cooperates_here: hub_here().is_some(),
    }
}

/// Runs `f` with patching off on this thread: its libc calls block the
/// thread, as without [`patch_all`]. For code that must not switch (a
/// section that holds a `std::sync::Mutex` other greenlets of this thread
/// would take, a test of the unpatched behaviour). Sections nest.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// verdant_runtime::patch::patch_all();
/// let other = verdant_runtime::spawn(|| ());
/// verdant_runtime::patch::blocking(|| std::thread::sleep(Duration::from_millis(5)));
/// assert!(!other.is_finished()); // the hub did not run meanwhile
/// other.join().unwrap();
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    struct On;
    impl Drop for On {
        fn drop(&mut self) {
            OFF.with(|c| c.set(c.get() - 1));
        }
    }
    OFF.with(|c| c.set(c.get() + 1));
    let _on = On;
    f()
}

/// Whether [`patch_all`] was called in this process (a forked child starts
/// unpatched: see [`patch_all`]).
#[inline(always)]
fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// In the child of a `fork`: patching off. Only the forking thread lives
/// on there, its hub's state is a copy whose epoll instance the parent
/// still uses, and such a child is about to `exec` (or should only make
/// async-signal-safe calls).
extern "C" fn forked_child() {
    ACTIVE.store(false, Ordering::Relaxed);
}

/// The hub a patched call made here should cooperate with, or `None`:
/// pass the call through to libc.
#[inline(always)]
fn hub_here() -> Option<&'static Runtime> {
    if !active() {
        return None;
    }
    hub_here_slow()
}

#[inline(never)]
fn hub_here_slow() -> Option<&'static Runtime> {
    // At thread exit the thread-local may be gone: block, as std would.
    if OFF.try_with(|c| c.get()).unwrap_or(1) != 0 {
        return None;
    }
    let rt = hub::existing_rt()?;
    if crate::blocking::on_pool_thread() || !rt.may_wait_for_foreign() {
        return None;
    }
    Some(rt)
}

/// The calling thread's `errno`.
#[inline]
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid
    // for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
#[inline]
fn set_errno(e: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}
