//! Virtual time for the seeded runs (SCHED-1): a thread's monotonic clock
//! can be moved forward, so that a hub with nothing to do skips to its next
//! timer (`Hub::set_clock_advance`) instead of sleeping. A test body full
//! of timeouts then runs in microseconds, which is what lets it run under
//! a thousand seeds.
//!
//! std's `Instant::now` (and every other caller in the binary) reads the
//! clock through the C library's `clock_gettime`. This module defines that
//! symbol in the test binary, which wins over the C library's at link time
//! (the way `verdant::patch` routes `read` & co.), forwards to the real one
//! and adds this thread's offset to `CLOCK_MONOTONIC` readings. The offset
//! is per thread and starts at zero, so threads that never turn virtual
//! time on (the test harness, helper threads) read the real clock; an
//! `Instant` must not cross from a virtual thread to another one.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

thread_local! {
    /// How far this thread's `CLOCK_MONOTONIC` is ahead of the real one.
    static OFFSET_NS: Cell<u64> = const { Cell::new(0) };
}

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// The C library's `clock_gettime`, found once (0: not yet).
static REAL: AtomicUsize = AtomicUsize::new(0);

fn real() -> ClockGettime {
    let mut f = REAL.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: `dlsym` with `RTLD_NEXT` and a NUL-terminated name only
        // looks the symbol up in the objects loaded after this binary.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"clock_gettime".as_ptr()) } as usize;
        assert!(f != 0, "the C library has no clock_gettime");
        REAL.store(f, Ordering::Release);
    }
    // SAFETY: `f` is the address of the C library's `clock_gettime`, whose
    // signature is `ClockGettime`.
    unsafe { std::mem::transmute::<usize, ClockGettime>(f) }
}

/// The C library's `clock_gettime`, with this thread's offset added to
/// `CLOCK_MONOTONIC` (what `Instant` reads).
///
/// # Safety
///
/// As the C function: `ts` points to a writable `timespec`.
#[no_mangle]
pub unsafe extern "C" fn clock_gettime(
    clock: libc::clockid_t,
    ts: *mut libc::timespec,
) -> libc::c_int {
    // SAFETY: the caller's contract is the C function's.
    let r = unsafe { real()(clock, ts) };
    if r == 0 && clock == libc::CLOCK_MONOTONIC {
        let off = OFFSET_NS.with(Cell::get);
        if off != 0 {
            // SAFETY: `ts` is valid (the real call just wrote it).
            let ts = unsafe { &mut *ts };
            let ns = ts.tv_nsec as u64 + off % 1_000_000_000;
            ts.tv_sec += (off / 1_000_000_000 + ns / 1_000_000_000) as libc::time_t;
            ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
        }
    }
    r
}

/// The longest gap an idle hub skips. Longer ones are waited for in real
/// time: the suite's guards ("should not take a second", the 10 s stall
/// watchdogs) are that long, and a TCP connection on loopback is not a
/// closed world — its kernel timers (delayed ACKs, window probes, SYN
/// retransmits) run in real time, so a transfer can be idle for a while
/// with data still to come, and only a real wait lets it arrive.
pub const MAX_SKIP: Duration = Duration::from_millis(900);

/// The hub's `advance`: moves this thread's clock forward by `d`, unless
/// `d` is longer than [`MAX_SKIP`] (then the hub sleeps for it).
fn skip(d: Duration) {
    if d <= MAX_SKIP {
        advance(d);
    }
}

/// Moves this thread's clock forward by `d`.
pub fn advance(d: Duration) {
    let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4);
    OFFSET_NS.with(|o| o.set(o.get().saturating_add(d)));
}

/// Turns virtual time on for this thread's hub: when idle, it moves the
/// clock to its next timer (if at most [`MAX_SKIP`] away) instead of
/// sleeping.
pub fn virtual_time() {
    verdant::Hub::current().set_clock_advance(Some(skip));
}

/// Turns virtual time off for this thread's hub (a body that waits for
/// another thread or process in real time calls this first). The clock
/// keeps what it skipped.
pub fn real_time() {
    verdant::Hub::current().set_clock_advance(None);
}

/// The thread is busy for `d` without the hub noticing (a deadline passes
/// meanwhile): on virtual time the clock moves by `d`, on real time the
/// thread sleeps for it.
pub fn pass(d: Duration) {
    if verdant::Hub::current().clock_advance().is_some() {
        advance(d);
    } else {
        std::thread::sleep(d);
    }
}

/// How far this thread's clock is ahead of the real one.
pub fn skipped() -> Duration {
    Duration::from_nanos(OFFSET_NS.with(Cell::get))
}
