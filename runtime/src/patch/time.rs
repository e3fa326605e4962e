//! The patched sleeps: `nanosleep`, `clock_nanosleep` (what
//! `std::thread::sleep` calls), `sleep` and `usleep` park the greenlet on a
//! hub timer.
//!
//! A sleep cut short by a kill or an expired `with_timeout` scope returns
//! as if it had slept (0, no error): std's `thread::sleep` treats any
//! other result as "sleep again", and the kill is raised at the greenlet's
//! next verdant wait (see the module docs of `patch`).

use std::time::Duration;

use libc::{c_int, c_uint, clockid_t, timespec};

use super::{hub_here, real};

/// Referred to by `patch_all`, so that the linker keeps this module.
#[inline(never)]
pub(super) fn link() {
    std::hint::black_box(nanosleep as *const () as usize);
}

/// A valid relative timespec as a duration; `None` if invalid.
fn duration_of(ts: &timespec) -> Option<Duration> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Sleeps cooperatively for `d` (always returns: see the module docs).
fn coop_sleep(rt: &crate::hub::Runtime, d: Duration) {
    if d.is_zero() {
        if let Some(_q) = rt.enter_quiet() {
            // A killed greenlet (or one past an expired scope) may not
            // begin a wait, but must still let the others run: a
            // `while !flag { sleep(ZERO) }` loop would freeze the hub.
            if rt.quiet_check().is_ok() {
                rt.yield_now();
            } else {
                rt.yield_quiet();
            }
        }
        return;
    }
    let _ = super::wait::sleep_until(rt, crate::timer::deadline_after(d));
}

/// `nanosleep(2)`.
///
/// # Safety
///
/// As for libc's `nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    let d = if req.is_null() {
        None
    } else {
        // SAFETY: a non-null request is the caller's valid timespec.
        duration_of(unsafe { &*req })
    };
    let (Some(rt), Some(d)) = (hub_here(), d) else {
        // SAFETY: (pass-through) the caller's arguments, unchanged.
        return unsafe { real::nanosleep()(req, rem) };
    };
    coop_sleep(rt, d);
    0
}

/// `clock_nanosleep(2)`, for the clocks a sleep can be measured on
/// (`CLOCK_REALTIME`, `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME`, `CLOCK_TAI`);
/// `TIMER_ABSTIME` included. Others pass through.
///
/// # Safety
///
/// As for libc's `clock_nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let clocks = [
        libc::CLOCK_REALTIME,
        libc::CLOCK_MONOTONIC,
        libc::CLOCK_BOOTTIME,
        libc::CLOCK_TAI,
    ];
    let r = if req.is_null() {
        None
    } else {
        // SAFETY: a non-null request is the caller's valid timespec.
        Some(unsafe { *req })
    };
    let coop = match (hub_here(), r) {
        (Some(rt), Some(r)) if clocks.contains(&clock) => Some((rt, r)),
        _ => None,
    };
    let Some((rt, r)) = coop else {
        // SAFETY: (pass-through) the caller's arguments, unchanged.
        return unsafe { real::clock_nanosleep()(clock, flags, req, rem) };
    };
    let Some(mut d) = duration_of(&r) else {
        return libc::EINVAL;
    };
    if flags & libc::TIMER_ABSTIME != 0 {
        let mut now = timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-parameter and a clock id from the list.
        unsafe { libc::clock_gettime(clock, &mut now) };
        let now = duration_of(&now).unwrap_or_default();
        d = d.saturating_sub(now);
    }
    coop_sleep(rt, d);
    0
}

/// `sleep(3)`.
///
/// # Safety
///
/// Safe to call; `unsafe` as the other libc definitions are.
#[no_mangle]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    let Some(rt) = hub_here() else {
        // SAFETY: (pass-through)
        return unsafe { real::sleep()(secs) };
    };
    coop_sleep(rt, Duration::from_secs(secs.into()));
    0
}

/// `usleep(3)`.
///
/// # Safety
///
/// Safe to call; `unsafe` as the other libc definitions are.
#[no_mangle]
pub unsafe extern "C" fn usleep(us: libc::useconds_t) -> c_int {
    let Some(rt) = hub_here() else {
        // SAFETY: (pass-through)
        return unsafe { real::usleep()(us) };
    };
    coop_sleep(rt, Duration::from_micros(us.into()));
    0
}
