//! Port of gevent's `src/gevent/tests/test__event.py` (`Event` and
//! `AsyncResult`), plus the `EventTests` of `src/gevent/tests/lock_tests.py`
//! that gevent runs against its `Event`, rewritten for
//! [`verdant::sync::Event`] and [`verdant::sync::AsyncResult`], with
//! greenlets (`spawn`) where `lock_tests.py` uses threads.
//!
//! Ported: `TestEventWait` / `TestAsyncResultWait` / `TestAsyncResultGet`
//! (the `AbstractGeneric*TestCase` cases: a timed wait returns after its
//! timeout, a `Timeout` interrupts it, an outer timeout is not lost),
//! `TestEventWait::test_cover`, `TestGeventWaitOnEvent::test_set_during_wait`
//! (issue 771), `TestAsyncResult::test_set_exc`, `test_set`,
//! `test_set_with_timeout`, `test_nonblocking_get`, `TestEvent_SetThenClear`
//! (N = 1, 100, 1000), `TestEventBasics::test_wait_while_notifying` (issue
//! 1520, adapted: see the test), and `lock_tests.EventTests` `test_is_set`,
//! `test_notify`, `test_timeout`.
//!
//! Skipped, and why:
//! * `TestGeventWaitOnEvent` / `TestWaitAsyncResult` / `TestWait*`
//!   (`gevent.wait([objects], count=..)`): verdant has no wait-for-any over
//!   several objects.
//! * `TestAsyncResult::test_link` (`rawlink`/`unlink`) and
//!   `TestAsyncResultAsLinkTarget` (`Greenlet.link(async_result)`): no link
//!   callbacks in verdant.
//! * `TestEventBasics::test_weakref` and the `Timeout(exception=...)`
//!   customisation: Python object model; `with_timeout` always reports
//!   [`Elapsed`].
//!
//! verdant-specific additions: FIFO wake order, `LoopExit` for a wait that
//! nothing could end, `Cancelled` for a wait during unwinding, set-once
//! semantics and "every waiter gets a clone" for `AsyncResult`, and kills of
//! parked waiters (destructors ran, the waiter is deregistered, a waiter
//! killed in the very tick it was woken does not stop the others).
//!
//! Timing asserts are generous (`SLACK`): the suite runs on loaded machines.
//! Tests that expect `LoopExit` run on a fresh OS thread bounded by `HANG`,
//! so a regression fails the test instead of hanging the suite.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::sync::{AsyncResult, Event, GetError, WaitError};
use verdant::{joinall, sleep, spawn, spawn_later, with_timeout, Elapsed, Hub, JoinHandle};

mod common;
mod sync_common;
use common::settle;
use sync_common::*;

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

common::seeded_tests! {
// lock_tests.py::EventTests::test_is_set
fn event_is_set() {
    let e = Event::new();
    assert!(!e.is_set());
    e.set();
    assert!(e.is_set());
    e.set();
    assert!(e.is_set());
    e.clear();
    assert!(!e.is_set());
    e.clear();
    assert!(!e.is_set());
}

// test__event.py::TestEventWait (AbstractGenericWaitTestCase)
fn event_wait_timeout() {
    let e = Event::new();
    check_generic_wait(
        |t| e.wait_timeout(t),
        || e.wait(),
        |err| *err == WaitError::TimedOut,
    );
    // The deadline form.
    let t = Instant::now();
    assert_eq!(e.wait_deadline(t + SMALL), Err(WaitError::TimedOut));
    assert!(t.elapsed() >= SMALL);
    // A deadline already passed does not wait at all.
    assert_eq!(e.wait_deadline(Instant::now()), Err(WaitError::TimedOut));
    assert_eq!(e.waiters(), 0);
    // A set event never times out, even with a zero timeout.
    e.set();
    assert_eq!(e.wait_timeout(Duration::ZERO), Ok(()));
}

// test__event.py::TestEventWait::test_cover (str(Event()))
fn event_debug_and_errors_display() {
    let e = Rc::new(Event::new());
    let shown = format!("{e:?}");
    assert!(
        shown.contains("set: false") && shown.contains("waiters: 0"),
        "{shown}"
    );
    let e2 = e.clone();
    let h = spawn(move || e2.wait());
    settle();
    assert!(format!("{e:?}").contains("waiters: 1"), "{e:?}");
    e.set();
    assert_eq!(h.join().unwrap(), Ok(()));
    assert!(format!("{e:?}").contains("set: true"), "{e:?}");
    assert!(WaitError::LoopExit(Default::default())
        .to_string()
        .contains("LoopExit"));
    assert!(WaitError::TimedOut.to_string().contains("timed out"));
}

// lock_tests.py::EventTests::test_notify (_check_notify, twice)
fn event_set_wakes_every_waiter() {
    fn check_notify(evt: &Rc<Event>) {
        const N: usize = 5;
        let results1 = Rc::new(RefCell::new(Vec::new()));
        let results2 = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let (evt, r1, r2) = (evt.clone(), results1.clone(), results2.clone());
                spawn(move || {
                    evt.wait().unwrap();
                    r1.borrow_mut().push(evt.is_set());
                    evt.wait().unwrap();
                    r2.borrow_mut().push(evt.is_set());
                })
            })
            .collect();
        sleep(5 * MS);
        assert!(results1.borrow().is_empty());
        assert_eq!(evt.waiters(), N);
        assert_eq!(evt.set(), N, "set reports how many it woke");
        joinall(&hs).unwrap();
        assert_eq!(*results1.borrow(), [true; N]);
        assert_eq!(*results2.borrow(), [true; N]);
        assert_eq!(evt.waiters(), 0);
    }
    let evt = Rc::new(Event::new());
    check_notify(&evt);
    // Another time, after an explicit clear().
    evt.set();
    evt.clear();
    check_notify(&evt);
}

// lock_tests.py::EventTests::test_timeout
fn event_timeout_many_waiters() {
    const N: usize = 5;
    let evt = Rc::new(Event::new());
    let run = |evt: &Rc<Event>| {
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let evt = evt.clone();
                spawn(move || {
                    let r0 = evt.wait_timeout(Duration::ZERO).is_ok();
                    let t1 = Instant::now();
                    let r = evt.wait_timeout(SMALL).is_ok();
                    (r0, r, t1.elapsed())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    };
    let t = Instant::now();
    for (r0, r, dt) in run(&evt) {
        assert!(!r0 && !r);
        assert!(dt >= SMALL && dt < SMALL + SLACK, "{dt:?}");
    }
    // The five waits ran side by side, not one after the other.
    assert!(t.elapsed() < N as u32 * SMALL, "{:?}", t.elapsed());
    // The event is set.
    evt.set();
    for (r0, r, dt) in run(&evt) {
        assert!(r0 && r);
        assert!(dt < SLACK);
    }
}

// test__event.py::TestGeventWaitOnEvent::test_set_during_wait (issue 771)
fn event_set_during_wait_then_clear_waits_again() {
    let event = Rc::new(Event::new());
    let ev = event.clone();
    let waiter = spawn(move || {
        let ev2 = ev.clone();
        let setter = spawn(move || {
            ev2.set();
        });
        ev.wait().unwrap();
        assert!(ev.is_set());
        setter.join().unwrap();
        // Clear it: a wait now needs another set.
        ev.clear();
        assert!(!ev.is_set());
        let t = Instant::now();
        let r = ev.wait_timeout(10 * MS);
        (r, t.elapsed())
    });
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r, Err(WaitError::TimedOut), "returned at once after clear");
    assert!(took >= 10 * MS, "{took:?}");
    assert!(!event.is_set());
}
}
/// test__event.py::TestEvent_SetThenClear: waiters woken by `set` return
/// even though the event is cleared again before they run.
fn set_then_clear(n: usize) {
    let e = Rc::new(Event::new());
    let done = Rc::new(Cell::new(0));
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let (e, done) = (e.clone(), done.clone());
            spawn(move || {
                let r = e.wait();
                done.set(done.get() + 1);
                r
            })
        })
        .collect();
    // gevent sleeps 1 ms here; a sleep may end before all have started
    // (timers are not held back by a long ready queue), so sleep until they
    // all wait.
    for _ in 0..1000 {
        if e.waiters() == n {
            break;
        }
        sleep(MS);
    }
    assert_eq!(e.waiters(), n);
    assert_eq!(e.set(), n);
    e.clear();
    assert_eq!(done.get(), 0, "set must not switch");
    let t = Instant::now();
    for h in waiters {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
    assert_eq!(done.get(), n);
    assert!(t.elapsed() < SLACK);
    assert!(!e.is_set());
    assert_eq!(e.waiters(), 0);
}

common::seeded_tests! {
// test__event.py::TestEvent_SetThenClear
fn event_set_then_clear_1() {
    set_then_clear(1);
}

// test__event.py::TestEvent_SetThenClear100
fn event_set_then_clear_100() {
    set_then_clear(common::scaled(100));
}

// test__event.py::TestEvent_SetThenClear1000
fn event_set_then_clear_1000() {
    set_then_clear(common::scaled(1000));
}

// test__event.py::TestEventBasics::test_wait_while_notifying (issue 1520),
// adapted: in gevent a wait on a set event made while the event notifies
// its waiters runs after them; in verdant `set` only queues the waiters
// and a wait on a set event returns at once, without a switch.
fn event_wait_while_notifying_does_not_switch() {
    let event = Rc::new(Event::new());
    let results = Rc::new(RefCell::new(Vec::new()));
    let wait_then_append = |event: &Event, results: &RefCell<Vec<i32>>, arg| {
        event.wait().unwrap();
        results.borrow_mut().push(arg);
    };
    let hs: Vec<_> = [1, 2]
        .into_iter()
        .map(|arg| {
            let (event, results) = (event.clone(), results.clone());
            spawn(move || wait_then_append(&event, &results, arg))
        })
        .collect();
    settle();
    assert_eq!(event.waiters(), 2);
    event.set();
    let switches = Hub::current().switch_count();
    wait_then_append(&event, &results, 3);
    assert_eq!(
        Hub::current().switch_count(),
        switches,
        "waited on a set event"
    );
    assert_eq!(*results.borrow(), [3]);
    joinall(&hs).unwrap();
    results.borrow_mut()[1..].sort(); // the order they run in is the schedule's
    assert_eq!(*results.borrow(), [3, 1, 2]);
}


// verdant-specific (gevent's LoopExit): a wait nothing could end
fn event_wait_deadlock_is_loop_exit() {
    on_fresh_thread("event deadlock", || {
        let e = Event::new();
        let t = Instant::now();
        assert!(matches!(e.wait(), Err(WaitError::LoopExit(_))));
        assert!(t.elapsed() < SLACK);
        assert_eq!(e.waiters(), 0, "the failed waiter is deregistered");
        // A greenlet that will set it later keeps the hub alive: no LoopExit.
        let e = Rc::new(e);
        let e2 = e.clone();
        let _setter = spawn_later(SMALL, move || {
            e2.set();
        });
        assert_eq!(e.wait(), Ok(()));
    });
}

// verdant-specific: a wait while the greenlet unwinds is refused
fn event_wait_while_unwinding_is_cancelled() {
    struct WaitsInDrop {
        e: Rc<Event>,
        ar: Rc<AsyncResult<u8>>,
        seen: Rc<RefCell<Vec<String>>>,
    }
    impl Drop for WaitsInDrop {
        fn drop(&mut self) {
            let r = self.e.wait();
            self.seen.borrow_mut().push(format!("{r:?}"));
            let r = self.ar.get();
            self.seen.borrow_mut().push(format!("{r:?}"));
        }
    }
    let e = Rc::new(Event::new());
    let ar = Rc::new(AsyncResult::new());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let guard = WaitsInDrop {
        e: e.clone(),
        ar: ar.clone(),
        seen: seen.clone(),
    };
    let h = spawn(move || {
        let _g = guard;
        sleep(Duration::from_secs(60));
    });
    settle();
    h.kill();
    assert!(h.join().unwrap_err().is_killed());
    assert_eq!(
        *seen.borrow(),
        [
            "Err(Cancelled)".to_owned(),
            "Err(Wait(Cancelled))".to_owned()
        ]
    );
    assert_eq!(e.waiters(), 0);
    assert_eq!(ar.waiters(), 0);
}

// verdant-specific: kill a greenlet parked in Event::wait
fn event_kill_parked_waiter() {
    let e = Rc::new(Event::new());
    let drops = Drops::default();
    let after_wait = Rc::new(Cell::new(false));
    let (e2, tok, aw) = (e.clone(), drops.token(), after_wait.clone());
    let h = spawn(move || {
        let _tok = tok;
        let r = e2.wait();
        aw.set(true);
        r
    });
    settle();
    assert_eq!(e.waiters(), 1);
    h.kill();
    assert!(h.is_finished());
    assert_eq!(drops.count(), 1, "the killed waiter's destructors ran");
    assert_eq!(e.waiters(), 0, "the killed waiter is deregistered");
    assert!(!after_wait.get());
    // Nobody is left to wake.
    assert_eq!(e.set(), 0);
    assert!(h.join().unwrap_err().is_killed());
}

// verdant-specific: a waiter killed in the tick it was woken does not keep
// the others from waking
fn event_kill_waiter_woken_in_same_tick() {
    let e = Rc::new(Event::new());
    let drops = Drops::default();
    let woke = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let (e, tok, woke) = (e.clone(), drops.token(), woke.clone());
            spawn(move || {
                let _tok = tok;
                e.wait().unwrap();
                woke.borrow_mut().push(i);
            })
        })
        .collect();
    settle();
    assert_eq!(e.waiters(), 3);
    assert_eq!(e.set(), 3);
    // All three are queued to run; kill the first before it does.
    hs[0].kill();
    assert!(hs[0].is_finished());
    joinall(&hs).unwrap();
    woke.borrow_mut().sort(); // the order they run in is the schedule's
    assert_eq!(*woke.borrow(), [1, 2]);
    assert_eq!(drops.count(), 3);
    assert_eq!(e.waiters(), 0);
    let mut hs = hs.into_iter();
    assert!(hs.next().unwrap().join().unwrap_err().is_killed());
    for h in hs {
        h.join().unwrap();
    }
}

// verdant-specific: a wait list holds its waiters by address (each lives in
// its waiting frame), so a wait that ends otherwise (a timeout) must leave
// the list. The same greenlet's next wait, at the same stack depth, reuses
// that address: a left-over entry would let the first event wake it.
fn event_timed_out_waiter_leaves_no_entry_behind() {
    let first = Rc::new(Event::new());
    let second = Rc::new(Event::new());
    let done = Rc::new(Cell::new(false));
    let (f, s, d) = (first.clone(), second.clone(), done.clone());
    let h = spawn(move || {
        assert_eq!(
            f.wait_timeout(Duration::from_millis(1)),
            Err(WaitError::TimedOut)
        );
        s.wait_timeout(Duration::from_secs(60)).unwrap();
        d.set(true);
    });
    sleep(Duration::from_millis(20));
    assert_eq!(first.waiters(), 0);
    assert_only_second_wakes(&first, &second, &done, h);
}

// verdant-specific: the same for a waiter killed while parked; the next
// greenlet gets the killed one's pooled stack, and parks at the same depth.
fn event_killed_waiter_leaves_no_entry_behind() {
    // The same function for both greenlets: their waits sit at the same
    // place on the same (pooled) stack.
    fn park(e: Rc<Event>, done: Rc<Cell<bool>>) -> impl FnOnce() {
        move || {
            e.wait().unwrap();
            done.set(true);
        }
    }
    let first = Rc::new(Event::new());
    let second = Rc::new(Event::new());
    let killed = spawn(park(first.clone(), Rc::default()));
    settle();
    killed.kill();
    assert!(killed.join().unwrap_err().is_killed());
    let done = Rc::new(Cell::new(false));
    let h = spawn(park(second.clone(), done.clone()));
    settle();
    assert_only_second_wakes(&first, &second, &done, h);
}
}
/// The end of the two tests above: `h` (which sets `done` when it returns)
/// waits on `second` alone; setting `first` wakes no one, setting `second`
/// wakes it.
fn assert_only_second_wakes(first: &Event, second: &Event, done: &Cell<bool>, h: JoinHandle<()>) {
    assert_eq!(second.waiters(), 1);
    assert_eq!(first.set(), 0, "no one waits on the first event any more");
    settle();
    settle();
    assert!(!done.get(), "the first event woke a wait on the second");
    assert_eq!(second.set(), 1);
    h.join().unwrap();
    assert!(done.get());
}

// ---------------------------------------------------------------------------
// AsyncResult
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__event.py::TestAsyncResultGet / TestAsyncResultWait
// (AbstractGenericGetTestCase)
fn async_result_get_timeout() {
    let ar: AsyncResult<u32> = AsyncResult::new();
    check_generic_wait(
        |t| ar.get_timeout(t).map(|_| ()),
        || ar.get().map(|_| ()),
        |err| *err == GetError::Wait(WaitError::TimedOut),
    );
    let t = Instant::now();
    assert_eq!(
        ar.get_deadline(t + SMALL),
        Err(GetError::Wait(WaitError::TimedOut))
    );
    assert!(t.elapsed() >= SMALL);
    assert_eq!(ar.waiters(), 0);
    assert!(!ar.ready());
}

// test__event.py::TestAsyncResult::test_set_exc
fn async_result_set_error_reaches_waiter() {
    #[derive(Clone, Debug, PartialEq)]
    struct MyException(u32);
    let e: Rc<AsyncResult<(), MyException>> = Rc::new(AsyncResult::new());
    assert_eq!(e.try_get(), None);
    let log = Rc::new(RefCell::new(Vec::new()));
    let (e2, log2) = (e.clone(), log.clone());
    let _waiter = spawn(move || {
        let r = e2.get();
        log2.borrow_mut().push(("caught", r));
    });
    settle();
    e.set_error(MyException(7)).unwrap();
    settle();
    assert_eq!(
        *log.borrow(),
        [("caught", Err(GetError::Failed(MyException(7))))]
    );
    assert_eq!(e.try_get(), Some(Err(MyException(7))));
    assert!(e.ready());
}

// test__event.py::TestAsyncResult::test_set: a zero timeout interrupts the
// get before the value arrives
fn async_result_zero_timeout_interrupts_get() {
    let event1: Rc<AsyncResult<&'static str>> = Rc::new(AsyncResult::new());
    let e = event1.clone();
    let g = spawn_later(SMALL, move || e.set("hello event1").unwrap());
    assert_eq!(with_timeout(Duration::ZERO, || event1.get()), Err(Elapsed));
    assert_eq!(event1.waiters(), 0);
    // The value still arrives afterwards.
    assert_eq!(event1.get(), Ok("hello event1"));
    g.join().unwrap();
}

// test__event.py::TestAsyncResult::test_set_with_timeout
fn async_result_with_timeout_nothing_sent() {
    let event2: AsyncResult<u8> = AsyncResult::new();
    let t = Instant::now();
    let result = with_timeout(SMALL, || event2.get());
    assert_eq!(
        result,
        Err(Elapsed),
        "nobody sent anything yet it received {result:?}"
    );
    assert!(t.elapsed() >= SMALL);
}

// test__event.py::TestAsyncResult::test_nonblocking_get
fn async_result_nonblocking_get() {
    let ar: AsyncResult<u8> = AsyncResult::new();
    assert_eq!(ar.try_get(), None);
    assert_eq!(
        ar.get_timeout(Duration::ZERO),
        Err(GetError::Wait(WaitError::TimedOut))
    );
    ar.set(5).unwrap();
    assert_eq!(ar.try_get(), Some(Ok(5)));
}

// verdant-specific: a result is delivered once; later sets hand their value
// back
fn async_result_set_once() {
    let ar: AsyncResult<String, String> = AsyncResult::new();
    assert!(!ar.ready());
    assert_eq!(ar.set("first".into()), Ok(()));
    assert_eq!(ar.set("second".into()), Err("second".to_owned()));
    assert_eq!(ar.set_error("late".into()), Err("late".to_owned()));
    assert_eq!(ar.get(), Ok("first".to_owned()));
    assert_eq!(ar.get(), Ok("first".to_owned()), "it stays available");

    let ar: AsyncResult<String, String> = AsyncResult::new();
    assert_eq!(ar.set_error("bad".into()), Ok(()));
    assert_eq!(ar.set("ok".into()), Err("ok".to_owned()));
    assert_eq!(ar.get(), Err(GetError::Failed("bad".to_owned())));
    assert_eq!(ar.try_get(), Some(Err("bad".to_owned())));
}

// verdant-specific: every waiter gets its own clone of the value
fn async_result_many_waiters_each_get_a_clone() {
    const N: usize = 50;
    #[derive(Debug)]
    struct Payload {
        v: u32,
        clones: Rc<Cell<usize>>,
    }
    impl Clone for Payload {
        fn clone(&self) -> Self {
            self.clones.set(self.clones.get() + 1);
            Payload {
                v: self.v,
                clones: self.clones.clone(),
            }
        }
    }
    let clones = Rc::new(Cell::new(0));
    let ar: Rc<AsyncResult<Payload, ()>> = Rc::new(AsyncResult::new());
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let ar = ar.clone();
            spawn(move || ar.get().map(|p| p.v))
        })
        .collect();
    settle();
    assert_eq!(ar.waiters(), N);
    ar.set(Payload {
        v: 42,
        clones: clones.clone(),
    })
    .unwrap();
    assert_eq!(clones.get(), 0, "set hands nothing out by itself");
    for h in hs {
        assert_eq!(h.join().unwrap(), Ok(42));
    }
    assert_eq!(clones.get(), N, "one clone per waiter");
    assert_eq!(ar.waiters(), 0);
    assert_eq!(ar.get().unwrap().v, 42);
    assert_eq!(clones.get(), N + 1);
}

// verdant-specific (gevent's LoopExit): a get nothing could end
fn async_result_get_deadlock_is_loop_exit() {
    on_fresh_thread("async result deadlock", || {
        let ar: AsyncResult<u8> = AsyncResult::new();
        let t = Instant::now();
        assert!(matches!(
            ar.get(),
            Err(GetError::Wait(WaitError::LoopExit(_)))
        ));
        assert!(t.elapsed() < SLACK);
        assert_eq!(ar.waiters(), 0);
        assert_eq!(ar.set(1), Ok(()));
    });
}

// verdant-specific: kill a greenlet parked in AsyncResult::get
fn async_result_kill_parked_getter() {
    let ar: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
    let drops = Drops::default();
    let (a, tok) = (ar.clone(), drops.token());
    let h = spawn(move || {
        let _tok = tok;
        a.get()
    });
    settle();
    assert_eq!(ar.waiters(), 1);
    h.kill();
    assert_eq!(drops.count(), 1);
    assert_eq!(ar.waiters(), 0, "the killed getter is deregistered");
    assert!(h.join().unwrap_err().is_killed());
    // The result still works for others.
    let a = ar.clone();
    let h = spawn(move || a.get());
    settle();
    ar.set(9).unwrap();
    assert_eq!(h.join().unwrap(), Ok(9));
}

// verdant-specific: a getter killed in the tick it was woken does not keep
// the others from their value
fn async_result_kill_getter_woken_in_same_tick() {
    let ar: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
    let drops = Drops::default();
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let (ar, tok, got) = (ar.clone(), drops.token(), got.clone());
            spawn(move || {
                let _tok = tok;
                let v = ar.get().unwrap();
                got.borrow_mut().push((i, v));
            })
        })
        .collect();
    settle();
    ar.set(11).unwrap();
    hs[1].kill();
    joinall(&hs).unwrap();
    got.borrow_mut().sort(); // the order they run in is the schedule's
    assert_eq!(*got.borrow(), [(0, 11), (2, 11)]);
    assert_eq!(drops.count(), 3);
    assert_eq!(ar.waiters(), 0);
    assert!(hs[1].greenlet().is_dead());
}
}

// Under the default schedule only: the order in which woken greenlets run is
// the schedule's (a seeded one picks at random), and this reads it.
// verdant-specific: waiters are woken in the order they started waiting
#[test]
fn event_set_wakes_in_fifo_order() {
    let e = Rc::new(Event::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    // Start them in a scrambled order, one at a time.
    let mut hs = Vec::new();
    for i in [3, 0, 4, 1, 2] {
        let (e, order) = (e.clone(), order.clone());
        hs.push(spawn(move || {
            e.wait().unwrap();
            order.borrow_mut().push(i);
        }));
        settle();
    }
    e.set();
    joinall(&hs).unwrap();
    assert_eq!(*order.borrow(), [3, 0, 4, 1, 2]);
}
