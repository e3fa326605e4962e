//! Port of gevent's `src/gevent/tests/test__timeout.py`, rewritten for
//! [`verdant::with_timeout`] / [`verdant::with_deadline`] (gevent's
//! `Timeout` context manager and `gevent.with_timeout`), plus the timeout
//! cases gevent spreads over `gevent.testing.timing` (an outer timeout is not
//! lost) and its primitives' tests: a scope interrupts whatever blocking call
//! its greenlet is in.
//!
//! Ported: `Test::test_expires` (and the restart of `_check_expires`: a new
//! scope after an expired one), `test_context_manager`, `test_cancel` (a
//! scope that ends first leaves nothing armed), `test_with_timeout` (all
//! three cases, `timeout_value` being `unwrap_or`).
//!
//! Skipped, and why:
//! * `TestDirectRaise` (raising a `Timeout` object by hand), and the
//!   `Timeout(seconds, False | 'XXX' | object())` variants
//!   (`test_expires_false`, `test_expires_str`, `test_expires_non_exception`,
//!   `test_context_manager_false`, `test_context_manager_str`): verdant's
//!   scopes always report [`Elapsed`], and there is no timeout object to
//!   raise, start, or give a custom exception.
//!
//! verdant-specific (the `timeout` module's documented behaviour):
//! * a scope interrupts `sleep`, a join, `Lock::lock`, `Queue::get`,
//!   `Event::wait` and a read on a `verdant::net::TcpStream`; the interrupted
//!   wait is deregistered and no timer is left armed; after an interrupted
//!   read the socket still works and the hub still reports `LoopExit`;
//! * nested scopes each fire for their own deadline; an outer one firing
//!   during an inner one passes through it;
//! * an expiry caught inside the scope is raised again at every later wait
//!   in the scope; code that then returns without waiting ends the scope
//!   with its value;
//! * `with_timeout(None, ..)` arms nothing (a deadlock in it is `LoopExit`);
//! * scopes work in main (the test thread) as in spawned greenlets;
//! * `Elapsed` only when the scope's own deadline passed: not for a scope
//!   that ended first, not for code that never waited, not for a panic or a
//!   kill passing through, not for another greenlet's scope;
//! * a scope that fires on a waiter in the very tick a permit, item or lock
//!   was handed to it passes that on (the hub is made to fire timers on
//!   every switch for these).
//!
//! Tests that expect `LoopExit` run on a fresh OS thread bounded by `HANG`;
//! timing bounds are generous (`SLACK`).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::{TcpListener, TcpStream};
use verdant::sync::{Event, Lock, Queue, Semaphore, TakeError, WaitError};
use verdant::{
    sleep, spawn, spawn_later, with_deadline, with_timeout, yield_now, Elapsed, Greenlet, Hub,
};

mod common;
mod sync_common;
use common::settle;
use sync_common::*;

/// test__timeout.py's SHOULD_EXPIRE.
const SHOULD_EXPIRE: Duration = Duration::from_millis(10);
/// test__timeout.py's SHOULD_NOT_EXPIRE (its CI value).
const SHOULD_NOT_EXPIRE: Duration = Duration::from_millis(200);
/// Long enough never to end within a test.
const FOREVER: Duration = Duration::from_secs(60);

/// Asserts `t` elapsed at least `at_least` and not much more.
#[track_caller]
fn assert_took(t: Instant, at_least: Duration) {
    let took = t.elapsed();
    assert!(took >= at_least, "ended early: {took:?} < {at_least:?}");
    assert!(took < at_least + SLACK, "ended late: {took:?}");
}

// ---------------------------------------------------------------------------
// test__timeout.py
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__timeout.py::Test::test_expires / test_context_manager (and the
// restart in _check_expires): a scope interrupts a wait that nothing else
// would end (gevent's `get_hub().switch()`)
fn timeout_expires() {
    for _ in 0..2 {
        let forever = Event::new();
        let t = Instant::now();
        let r = with_timeout(SHOULD_EXPIRE, || forever.wait());
        assert_eq!(
            r,
            Err(Elapsed),
            "the scope's timer keeps the hub alive: no LoopExit"
        );
        assert_took(t, SHOULD_EXPIRE);
        assert_eq!(forever.waiters(), 0);
        assert_eq!(Hub::current().timer_count(), 0);
    }
    assert_eq!(Elapsed.to_string(), "deadline has elapsed");
}

// test__timeout.py::Test::test_cancel: a scope that ended leaves nothing
// armed, and a later wait past its deadline is not interrupted
fn timeout_cancel() {
    let r = with_timeout(SHOULD_EXPIRE, || {
        assert_eq!(Hub::current().timer_count(), 1, "the scope arms one timer");
        5
    });
    assert_eq!(r, Ok(5));
    assert_eq!(
        Hub::current().timer_count(),
        0,
        "the scope's timer was not cancelled"
    );
    let t = Instant::now();
    sleep(SHOULD_EXPIRE * 3);
    assert_took(t, SHOULD_EXPIRE * 3);
    // And a later, longer scope is not cut short by the old deadline.
    let r = with_timeout(SHOULD_NOT_EXPIRE, || sleep(SHOULD_EXPIRE * 2));
    assert_eq!(r, Ok(()));
}

// test__timeout.py::Test::test_with_timeout
fn timeout_with_timeout() {
    let t = Instant::now();
    assert_eq!(
        with_timeout(SHOULD_EXPIRE, || sleep(SHOULD_NOT_EXPIRE)),
        Err(Elapsed)
    );
    assert_took(t, SHOULD_EXPIRE);
    // timeout_value=X
    let r = with_timeout(SHOULD_EXPIRE, || {
        sleep(SHOULD_NOT_EXPIRE);
        "value"
    })
    .unwrap_or("X");
    assert_eq!(r, "X");
    let t = Instant::now();
    let r = with_timeout(SHOULD_NOT_EXPIRE, || {
        sleep(SHOULD_EXPIRE);
        "slept"
    })
    .unwrap_or("X");
    assert_eq!(r, "slept");
    assert_took(t, SHOULD_EXPIRE);
}
}
// ---------------------------------------------------------------------------
// What a scope interrupts
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: sleep
fn interrupts_sleep() {
    let drops = Drops::default();
    let t = Instant::now();
    let tok = drops.token();
    let r = with_timeout(SMALL, move || {
        let _tok = tok;
        sleep(FOREVER);
        unreachable!("the sleep was interrupted");
    });
    assert_eq!(r, Err(Elapsed));
    assert_took(t, SMALL);
    assert_eq!(drops.count(), 1, "the scope's stack unwound");
    assert_eq!(Hub::current().timer_count(), 0, "the sleep's timer leaked");
    // An outer timeout is not lost (timing.py::test_outer_timeout_is_not_lost).
    assert_eq!(
        with_timeout(MS, || sleep(Duration::from_secs(1))),
        Err(Elapsed)
    );
}

// verdant-specific: a join (JoinHandle::wait / wait_timeout)
fn interrupts_join() {
    let h = spawn(|| sleep(FOREVER));
    let t = Instant::now();
    assert!(with_timeout(SMALL, || h.wait()).is_err());
    assert_took(t, SMALL);
    assert_eq!(
        with_timeout(MS, || h.wait_timeout(Duration::from_secs(1)).unwrap()),
        Err(Elapsed)
    );
    assert!(!h.is_finished(), "the joined greenlet is not affected");
    h.kill();
    assert!(h.join().unwrap_err().is_killed());
    assert_eq!(Hub::current().timer_count(), 0);
}
}
// verdant-specific: Lock::lock; the interrupted waiter is deregistered and
// the lock is not handed to it later
common::seeded_tests! {
fn interrupts_lock() {
    let lock = Rc::new(Lock::new(0));
    let l = lock.clone();
    let holder = spawn(move || {
        let mut g = l.lock().unwrap();
        sleep(SMALL * 3);
        *g += 1;
    });
    settle();
    assert!(lock.is_locked());
    let t = Instant::now();
    let r = with_timeout(SMALL, || lock.lock().map(|g| *g));
    assert_eq!(r, Err(Elapsed));
    assert_took(t, SMALL);
    assert_eq!(lock.waiters(), 0);
    holder.join().unwrap();
    assert!(!lock.is_locked(), "the lock went to the interrupted waiter");
    assert_eq!(*lock.lock().unwrap(), 1);
}
}

common::seeded_tests! {
// verdant-specific: Queue::get
fn interrupts_queue_get() {
    let q: Queue<u32> = Queue::new();
    let t = Instant::now();
    assert_eq!(with_timeout(SMALL, || q.get()), Err(Elapsed));
    assert_took(t, SMALL);
    assert_eq!(q.getters(), 0);
    // The next item stays in the queue.
    q.put(1).unwrap();
    assert_eq!(q.len(), 1);
    // A full queue's put, too; the item is dropped with the unwound frame.
    let q = Queue::bounded(1);
    q.put(1).unwrap();
    assert_eq!(with_timeout(SMALL, || q.put(2)), Err(Elapsed));
    assert_eq!(q.putters(), 0);
    assert_eq!(q.try_get(), Ok(1));
    assert_eq!(q.try_get(), Err(TakeError::Empty));
}

// verdant-specific: Event::wait
fn interrupts_event_wait() {
    let e = Event::new();
    let t = Instant::now();
    assert_eq!(with_timeout(SMALL, || e.wait()), Err(Elapsed));
    assert_took(t, SMALL);
    assert_eq!(e.waiters(), 0);
    assert_eq!(e.set(), 0, "the interrupted waiter was still registered");
    assert_eq!(with_timeout(SMALL, || e.wait()), Ok(Ok(())), "set: no wait");
}

// verdant-specific: a read on a verdant::net::TcpStream; afterwards the
// socket still works, and the hub is not kept alive by the interrupted wait
fn interrupts_tcp_read() {
    on_fresh_thread("tcp read", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        let t = Instant::now();
        let r = with_timeout(SMALL, || (&server).read(&mut buf).map_err(|e| e.kind()));
        assert_eq!(r, Err(Elapsed));
        assert_took(t, SMALL);
        assert_eq!(Hub::current().timer_count(), 0);
        // The socket still works, from another greenlet too (the waiter slot
        // was cleared: no "already used by another greenlet").
        let server = Rc::new(server);
        let s = server.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 16];
            let n = (&*s).read(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        yield_now();
        client.write_all(b"ping").unwrap();
        assert_eq!(reader.join().unwrap(), b"ping");
        // A second interrupted read, then a read in the same greenlet.
        assert_eq!(
            with_timeout(SMALL, || (&*server).read(&mut buf).is_ok()),
            Err(Elapsed)
        );
        client.write_all(b"pong").unwrap();
        let n = with_timeout(SLACK, || (&*server).read(&mut buf).unwrap()).unwrap();
        assert_eq!(&buf[..n], b"pong");
        // Nothing waits for IO now (the sockets are open but idle): a wait
        // nothing could end is LoopExit, not a hang in poll.
        assert!(matches!(Event::new().wait(), Err(WaitError::LoopExit(_))));
        drop(client);
    });
}
}
// ---------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: the inner scope fires for its own deadline; the outer
// one goes on
fn nested_inner_fires_first() {
    let t = Instant::now();
    let outer = with_timeout(SHOULD_NOT_EXPIRE * 5, || {
        let inner = with_timeout(SMALL, || sleep(FOREVER));
        assert_eq!(inner, Err(Elapsed));
        sleep(MS); // the outer scope is still usable
        "outer finished"
    });
    assert_eq!(outer, Ok("outer finished"));
    assert_took(t, SMALL);
    assert_eq!(Hub::current().timer_count(), 0);
}

// verdant-specific: the outer scope fires while the inner one runs: the
// signal passes through the inner scope (which does not return), and only
// the outer reports Elapsed
fn nested_outer_fires_through_inner() {
    let after_inner = Rc::new(Cell::new(false));
    let inner_drops = Drops::default();
    let t = Instant::now();
    let (ai, tok) = (after_inner.clone(), inner_drops.token());
    let outer = with_timeout(SMALL, move || {
        let inner = with_timeout(SHOULD_NOT_EXPIRE * 5, move || {
            let _tok = tok;
            sleep(FOREVER)
        });
        ai.set(true);
        inner
    });
    assert_eq!(outer, Err(Elapsed));
    assert_took(t, SMALL);
    assert!(
        !after_inner.get(),
        "the inner scope returned instead of passing it on"
    );
    assert_eq!(inner_drops.count(), 1);
    assert_eq!(
        Hub::current().timer_count(),
        0,
        "the inner scope's timer leaked"
    );

    // Three levels: the middle one fires; the innermost passes it through,
    // the outermost goes on.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let r = with_timeout(SHOULD_NOT_EXPIRE * 5, move || {
        let middle = with_timeout(SMALL, || {
            let inner = with_timeout(SHOULD_NOT_EXPIRE * 5, || sleep(FOREVER));
            l.borrow_mut().push(format!("inner returned {inner:?}"));
        });
        l.borrow_mut().push(format!("middle: {middle:?}"));
        "outer ok"
    });
    assert_eq!(r, Ok("outer ok"));
    assert_eq!(*log.borrow(), ["middle: Err(Elapsed)"]);
}

// verdant-specific: equal deadlines: the outermost scope wins
fn nested_same_deadline_outer_wins() {
    let d = Instant::now() + SMALL;
    let reached = Rc::new(Cell::new(false));
    let r2 = reached.clone();
    let r = with_deadline(d, move || {
        let inner = with_deadline(d, || sleep(FOREVER));
        r2.set(true);
        inner
    });
    assert_eq!(r, Err(Elapsed));
    assert!(!reached.get());
}
}
// ---------------------------------------------------------------------------
// Caught expiries
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: an expiry caught inside the scope is raised again at
// every later wait in the scope
fn caught_expiry_raised_again() {
    let caught = Rc::new(Cell::new(0));
    let c = caught.clone();
    let lock = Lock::new(());
    let held = lock.lock().unwrap();
    let q: Queue<u8> = Queue::new();
    let e = Event::new();
    let t = Instant::now();
    let r = with_timeout(SMALL, || {
        let waits: [&dyn Fn(); 5] = [
            &|| sleep(FOREVER),
            &|| sleep(SHOULD_NOT_EXPIRE), // would end by itself: raised at once
            &|| {
                let _ = q.get();
            },
            &|| {
                let _ = e.wait();
            },
            &|| drop(lock.lock()),
        ];
        for wait in waits {
            assert!(catch_unwind(AssertUnwindSafe(wait)).is_err());
            c.set(c.get() + 1);
        }
        yield_now();
        unreachable!("the expiry was not raised again by yield_now");
    });
    assert_eq!(r, Err(Elapsed));
    assert_eq!(caught.get(), 5);
    assert!(
        t.elapsed() < SHOULD_NOT_EXPIRE,
        "a wait after the expiry was not interrupted"
    );
    assert_eq!((q.getters(), e.waiters(), lock.waiters()), (0, 0, 0));
    drop(held);
    // Outside the scope, waits are not interrupted any more.
    sleep(MS);
    assert_eq!(Hub::current().timer_count(), 0);
}

// verdant-specific: code that catches the expiry and returns without
// waiting again ends the scope with its value; the expiry is then forgotten
fn caught_expiry_then_return_is_ok() {
    let r = with_timeout(SMALL, || {
        let caught = catch_unwind(AssertUnwindSafe(|| sleep(FOREVER))).is_err();
        if caught {
            "caught it"
        } else {
            "not interrupted"
        }
    });
    assert_eq!(r, Ok("caught it"));
    let t = Instant::now();
    sleep(SMALL);
    assert_took(t, SMALL);
    // A later scope starts afresh.
    assert_eq!(with_timeout(SHOULD_NOT_EXPIRE, || sleep(MS)), Ok(()));
}

// verdant-specific: the outer scope's expiry caught inside an inner scope is
// raised again there and passes through the inner scope to the outer one
fn caught_outer_expiry_inside_inner_scope() {
    let inner_returned = Rc::new(Cell::new(false));
    let ir = inner_returned.clone();
    let r = with_timeout(SMALL, move || {
        let inner = with_timeout(SHOULD_NOT_EXPIRE * 5, || {
            assert!(catch_unwind(AssertUnwindSafe(|| sleep(FOREVER))).is_err());
            sleep(FOREVER); // raised again: the outer's, passing through
        });
        ir.set(true);
        inner
    });
    assert_eq!(r, Err(Elapsed));
    assert!(!inner_returned.get());
    assert_eq!(Hub::current().timer_count(), 0);
}
}
// ---------------------------------------------------------------------------
// None, main, and whose Elapsed it is
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: with_timeout(None, ..) runs without a deadline
fn none_means_forever() {
    let r = with_timeout(None, || {
        assert_eq!(Hub::current().timer_count(), 0, "None armed a timer");
        let e = Rc::new(Event::new());
        let e2 = e.clone();
        let _setter = spawn_later(SMALL * 2, move || {
            e2.set();
        });
        e.wait()
    });
    assert_eq!(r, Ok(Ok(())));
    assert_eq!(with_timeout(None, || 3), Ok(3));
    // Option<Duration> goes through as well.
    let no_limit: Option<Duration> = None;
    assert_eq!(with_timeout(no_limit, || sleep(MS)), Ok(()));
    let limit: Option<Duration> = Some(MS);
    assert_eq!(with_timeout(limit, || sleep(FOREVER)), Err(Elapsed));
}

// verdant-specific: a deadlock inside with_timeout(None, ..) is LoopExit
// (nothing is armed that could end it)
fn none_deadlock_is_loop_exit() {
    on_fresh_thread("None deadlock", || {
        let e = Event::new();
        assert!(matches!(
            with_timeout(None, || e.wait()),
            Ok(Err(WaitError::LoopExit(_)))
        ));
    });
}

// verdant-specific: scopes in main (the test thread's root greenlet) and in
// a spawned greenlet
fn timeout_in_main_and_in_greenlet() {
    assert!(Greenlet::current().is_main());
    let t = Instant::now();
    assert_eq!(with_timeout(SMALL, || sleep(FOREVER)), Err(Elapsed));
    assert_took(t, SMALL);
    // Main waiting on a greenlet's result.
    let q = Rc::new(Queue::new());
    let q2 = q.clone();
    let late = spawn_later(SMALL * 3, move || q2.put(1).unwrap());
    assert_eq!(with_timeout(SMALL, || q.get()), Err(Elapsed));
    assert_eq!(with_timeout(SLACK, || q.get()), Ok(Ok(1)));
    late.join().unwrap();
    // A spawned greenlet.
    let h = spawn(|| {
        assert!(!Greenlet::current().is_main());
        let t = Instant::now();
        (with_timeout(SMALL, || sleep(FOREVER)), t.elapsed())
    });
    let (r, took) = h.join().unwrap();
    assert_eq!(r, Err(Elapsed));
    assert!(took >= SMALL && took < SMALL + SLACK, "{took:?}");
}

// verdant-specific: one greenlet's scope does not touch another's waits
fn scope_belongs_to_its_greenlet() {
    let short = spawn(|| with_timeout(SMALL, || sleep(FOREVER)));
    let long = spawn(|| with_timeout(SHOULD_NOT_EXPIRE * 5, || sleep(SMALL * 3)));
    let plain = spawn(|| sleep(SMALL * 3));
    let t = Instant::now();
    assert_eq!(short.join().unwrap(), Err(Elapsed));
    assert_eq!(long.join().unwrap(), Ok(()));
    plain.join().unwrap();
    assert_took(t, SMALL * 3);
}

// verdant-specific: code that never waits cannot be interrupted; the scope
// ends with its value even past the deadline, and the deadline does not
// leak into later waits
fn no_wait_no_elapsed() {
    let r = with_timeout(SMALL, || {
        common::clock::pass(SMALL * 2); // blocks the thread, never the hub
        "ran to the end"
    });
    assert_eq!(r, Ok("ran to the end"));
    assert_eq!(Hub::current().timer_count(), 0);
    let t = Instant::now();
    sleep(SMALL);
    assert_took(t, SMALL);
    // A deadline already passed: the first wait is interrupted; none, none.
    let past = Instant::now();
    sleep(MS);
    assert_eq!(with_deadline(past, || 1), Ok(1));
    assert_eq!(with_deadline(past, || sleep(FOREVER)), Err(Elapsed));
    assert_eq!(
        with_timeout(Duration::ZERO, || sleep(FOREVER)),
        Err(Elapsed)
    );
}

// verdant-specific: an inner scope's Elapsed is a value to the outer scope,
// not its own expiry; a panic or a kill passes through a scope unchanged
fn elapsed_only_for_own_deadline() {
    let r = with_timeout(SLACK, || with_timeout(MS, || sleep(FOREVER)));
    assert_eq!(r, Ok(Err(Elapsed)));

    let p = catch_unwind(AssertUnwindSafe(|| {
        with_timeout(SLACK, || -> () {
            panic!("boom {}", std::hint::black_box(1))
        })
    }))
    .unwrap_err();
    assert_eq!(
        p.downcast_ref::<String>().map(String::as_str),
        Some("boom 1")
    );
    assert_eq!(
        Hub::current().timer_count(),
        0,
        "the panicking scope's timer leaked"
    );

    let drops = Drops::default();
    let tok = drops.token();
    let h = spawn(move || {
        with_timeout(FOREVER, move || {
            let _tok = tok;
            sleep(FOREVER)
        })
    });
    yield_now();
    h.kill();
    assert_eq!(drops.count(), 1);
    let err = h.join().unwrap_err();
    assert!(err.is_killed(), "the kill became something else: {err}");
    assert_eq!(
        Hub::current().timer_count(),
        0,
        "the killed scope's timer leaked"
    );
}
}
// ---------------------------------------------------------------------------
// A scope firing in the tick something was handed over
// ---------------------------------------------------------------------------

// verdant-specific: a permit handed to a waiter whose scope fires before it
// runs goes to the next waiter
common::seeded_tests! {
fn expiry_after_permit_handoff_passes_it_on() {
    maintain_every_tick();
    let sem = Rc::new(Semaphore::new(0));
    let s = sem.clone();
    let timed = spawn(move || with_timeout(SMALL, || s.acquire().map(|g| g.forget())));
    let s = sem.clone();
    let patient = spawn(move || s.acquire().map(|g| g.forget()));
    settle();
    assert_eq!(sem.waiters(), 2);
    common::clock::pass(SMALL + 5 * MS); // the deadline passes, unnoticed
    sem.release(); // handed to `timed`, whose scope fires at the next switch
    settle();
    assert_eq!(timed.join().unwrap(), Err(Elapsed));
    assert_eq!(patient.join().unwrap(), Ok(()), "the permit was lost");
    assert_eq!((sem.available(), sem.waiters()), (0, 0));
}
}

// verdant-specific: the same for a queue item: it goes back to the queue
common::seeded_tests! {
fn expiry_after_item_handoff_requeues_it() {
    maintain_every_tick();
    let q = Rc::new(Queue::new());
    let q2 = q.clone();
    let timed = spawn(move || with_timeout(SMALL, || q2.get()));
    settle();
    assert_eq!(q.getters(), 1);
    common::clock::pass(SMALL + 5 * MS);
    q.put("item").unwrap(); // handed to `timed`
    assert!(q.is_empty());
    settle();
    assert_eq!(timed.join().unwrap(), Err(Elapsed));
    assert_eq!(q.try_get(), Ok("item"), "the item was lost");
}
}

// verdant-specific: the same for a lock
common::seeded_tests! {
fn expiry_after_lock_handoff_passes_it_on() {
    maintain_every_tick();
    let lock = Rc::new(Lock::new(Vec::new()));
    let g = lock.lock().unwrap();
    let l = lock.clone();
    let timed = spawn(move || with_timeout(SMALL, || l.lock().unwrap().push("timed")));
    let l = lock.clone();
    let patient = spawn(move || l.lock().unwrap().push("patient"));
    settle();
    assert_eq!(lock.waiters(), 2);
    common::clock::pass(SMALL + 5 * MS);
    drop(g); // handed to `timed`
    settle();
    assert_eq!(timed.join().unwrap(), Err(Elapsed));
    patient.join().unwrap();
    assert!(!lock.is_locked());
    assert_eq!(*lock.lock().unwrap(), ["patient"]);
}
}

common::seeded_tests! {
// verdant-specific: a kill delivered in the same tick as a scope's expiry
// is not lost: whichever lands second, the greenlet ends killed (the kill
// must not be replaced by the scope's signal, which the scope would then
// swallow as Elapsed and let the greenlet finish normally)
fn kill_not_lost_to_expiry_in_same_tick() {
    maintain_every_tick();
    let drops = Drops::default();
    let tok = drops.token();
    let h = spawn(move || {
        let _tok = tok;
        let r = with_timeout(SMALL, || sleep(FOREVER));
        // No further wait: a kill that was swallowed is never raised again.
        format!("finished normally after {r:?}")
    });
    yield_now();
    common::clock::pass(SMALL + 5 * MS); // the scope's deadline passes, unnoticed
    h.kill(); // GreenletExit is queued; the hub then fires the scope's timer
    assert!(h.is_finished());
    assert_eq!(drops.count(), 1);
    match h.join() {
        Err(e) => assert!(e.is_killed(), "{e}"),
        Ok(v) => panic!("the kill was lost: the greenlet {v}"),
    }
}

// verdant-specific: the other order (expiry first, then the kill, in one
// tick): the kill wins, and the scope passes it through
fn kill_after_expiry_in_same_tick_wins() {
    maintain_every_tick();
    let h = spawn(move || {
        let r = with_timeout(SMALL, || sleep(FOREVER));
        format!("finished normally after {r:?}")
    });
    yield_now();
    common::clock::pass(SMALL + 5 * MS);
    // Let the hub fire the scope's timer (the signal is queued for `h`),
    // then kill `h` before it runs.
    let hub_ticks = Hub::current().switch_count();
    yield_now();
    assert!(Hub::current().switch_count() > hub_ticks);
    assert!(!h.is_finished());
    h.kill();
    match h.join() {
        Err(e) => assert!(e.is_killed(), "{e}"),
        Ok(v) => panic!("the kill was lost: the greenlet {v}"),
    }
}
}
