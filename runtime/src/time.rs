//! Cooperative sleeping: [`sleep`] and [`yield_now`].

use std::time::Duration;

use crate::hub;
use crate::hub::Waiting;
use crate::timer::deadline_after;
use crate::value::Wake;

/// Suspends the current greenlet for at least `duration`, letting the hub run
/// others meanwhile (gevent's `gevent.sleep`). Never wakes early.
///
/// `sleep(Duration::ZERO)` is [`yield_now`]. Called from the main greenlet
/// with nothing else to run, it simply sleeps the thread (in the hub's poll).
///
/// While the current greenlet is unwinding (see the Caveats in
/// [`Greenlet`](crate::Greenlet)) it returns at once without sleeping.
///
/// # Panics
///
/// Raises a kill delivered while sleeping (the sleep unwinds with
/// [`GreenletExit`](crate::GreenletExit)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// let t = Instant::now();
/// verdant_runtime::sleep(Duration::from_millis(15));
/// assert!(t.elapsed() >= Duration::from_millis(15));
/// ```
#[inline]
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        yield_now()
    } else {
        sleep_for(duration)
    }
}

/// [`sleep`] for a non-zero duration: out of line, so `sleep(ZERO)` inlines
/// down to the yield.
#[inline(never)]
fn sleep_for(duration: Duration) {
    let deadline = deadline_after(duration);
    let rt = hub::rt();
    loop {
        let Ok(token) = rt.begin_wait(Waiting::Sleep) else {
            return;
        };
        let timer = rt.arm_timer(deadline, token);
        let woke = rt.park_compactable();
        drop(timer);
        match woke {
            Ok(Wake::TimedOut) | Err(_) | Ok(Wake::LoopExit) => return,
            // Not ours (cannot happen for a plain sleep): keep sleeping.
            Ok(Wake::Ready) => continue,
        }
    }
}

/// Lets every other ready greenlet run once, then continues (gevent's
/// `sleep(0)`): the current greenlet goes to the back of the ready queue.
/// Timers and IO are checked at least every
/// [`event_interval`](crate::Hub::set_event_interval) switches, so a loop of
/// `yield_now` never starves them.
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use verdant_runtime::{joinall, spawn, yield_now};
///
/// let log = Rc::new(RefCell::new(String::new()));
/// let hs: Vec<_> = ["1", "2"].into_iter().map(|n| {
///     let log = log.clone();
///     spawn(move || for s in ["A", "B"] {
///         *log.borrow_mut() += &format!("{n}{s} ");
///         yield_now();
///     })
/// }).collect();
/// joinall(&hs).unwrap();
/// assert_eq!(*log.borrow(), "1A 2A 1B 2B ");
/// ```
#[inline]
pub fn yield_now() {
    hub::rt().yield_now()
}
