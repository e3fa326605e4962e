//! Ports of gevent's core tests, `src/gevent/tests/test__greenlet.py`,
//! `test__joinall.py`, `test__sleep0.py`, `test__order.py` and `test__api.py`,
//! plus gevent's `LoopExit` behaviour, rewritten for verdant's hub:
//! [`spawn`], [`JoinHandle`], [`joinall`] / [`JoinAll`], [`killall`],
//! [`sleep`], [`yield_now`] and [`spawn_later`].
//!
//! gevent's `Timeout` has no counterpart here, so the "loop must terminate"
//! cases use `spawn_later` to set a flag and a wall-clock bound to fail
//! instead of hanging. Timing asserts are generous: the suite runs on
//! loaded CI machines.

use std::cell::{Cell, OnceCell, RefCell};
use std::panic::catch_unwind;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{
    joinall, killall, sleep, spawn, spawn_later, yield_now, Builder, GreenletExit, Hub, JoinAll,
    JoinAllError, JoinError, JoinErrorKind, JoinHandle,
};

const MS: Duration = Duration::from_millis(1);
/// The upper bound for anything that should be "prompt" on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);
/// Give up on a loop that should terminate, rather than hang the suite.
const HANG: Duration = Duration::from_secs(10);

type Log = Rc<RefCell<Vec<String>>>;

fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// Records its label when dropped: a `finally:` block.
struct Guard {
    log: Log,
    label: &'static str,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.label.to_owned());
    }
}

// ---------------------------------------------------------------------------
// test__greenlet.py
// ---------------------------------------------------------------------------

// test__greenlet.py::TestBasic::test_simple_exit (the state table)
#[test]
fn test_simple_exit() {
    let link_fired = Rc::new(Cell::new(0));
    let h = spawn(|| {
        sleep(5 * MS);
        "value"
    });
    let g = h.greenlet().clone();
    assert!(g.parent().unwrap().is_hub());
    assert!(!h.is_finished());
    assert!(!g.is_started() && !g.is_dead());
    // Let it start: it is now suspended in its sleep.
    yield_now();
    assert!(g.is_started() && !g.is_dead() && !h.is_finished());
    // A second joiner (gevent's link), here a greenlet waiting on it.
    let lf = link_fired.clone();
    let h2 = Rc::new(h);
    let hh = h2.clone();
    let watcher = spawn(move || {
        hh.wait().unwrap();
        lf.set(lf.get() + 1);
    });
    watcher.join().unwrap();
    assert!(h2.is_finished());
    assert!(g.is_dead() && !g.is_started());
    assert_eq!(link_fired.get(), 1);
    let h = Rc::try_unwrap(h2).unwrap();
    assert_eq!(h.join().unwrap(), "value");
    assert_eq!(link_fired.get(), 1, "links fire exactly once");
}

// test__greenlet.py::TestBasic::test_error_exit
#[test]
fn test_error_exit() {
    let h = Builder::new()
        .name("worker-7")
        .spawn(|| -> u32 {
            sleep(MS);
            // A run-time argument, so that the payload is a formatted String.
            panic!("boom {}", std::hint::black_box(7))
        })
        .unwrap();
    // wait() is gevent's join(): the failure is not an error of the wait.
    h.wait().unwrap();
    assert!(h.is_finished());
    let err = h.join().unwrap_err();
    assert_eq!(err.kind(), JoinErrorKind::Panicked);
    assert!(err.is_panic() && !err.is_killed());
    assert_eq!(err.name(), "worker-7");
    assert_eq!(err.panic_message(), Some("boom 7"));
    let shown = err.to_string();
    assert!(
        shown.contains("worker-7") && shown.contains("boom 7"),
        "{shown}"
    );
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 7");
}

// test__greenlet.py::TestBasic::test_error_exit (a custom payload keeps its value)
#[test]
fn test_error_payload_round_trips() {
    #[derive(Debug, PartialEq)]
    struct Custom(u32);
    let h = spawn(|| {
        std::panic::panic_any(Custom(42));
    });
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(*err.into_panic().downcast::<Custom>().unwrap(), Custom(42));
}

// verdant-specific: panic_message() is None for a non-string payload
#[test]
fn test_error_non_string_payload_has_no_message() {
    let h = spawn(|| {
        std::panic::panic_any(42u32);
    });
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), None);
    // joinall's raise_error reports the same message.
    let h = spawn(|| {
        std::panic::panic_any(42u32);
    });
    match JoinAll::new().raise_error(true).join([&h]) {
        Err(JoinAllError::Failed { error, .. }) => assert_eq!(error.panic_message(), None),
        other => panic!("expected a failure, got {other:?}"),
    }
}

// test__greenlet.py::TestKill (killed before start: the body never runs)
#[test]
fn test_kill_before_start() {
    let ran = Rc::new(Cell::new(false));
    let captured = Rc::new(());
    let (r, c) = (ran.clone(), captured.clone());
    let h = spawn(move || {
        let _c = c;
        r.set(true);
    });
    h.kill();
    assert!(h.is_finished(), "kill() blocks until the greenlet is dead");
    assert!(!ran.get(), "a greenlet killed before it starts never runs");
    assert!(!h.greenlet().is_started());
    assert_eq!(Rc::strong_count(&captured), 1, "its closure was dropped");
    // Nothing left to run it later either.
    sleep(5 * MS);
    assert!(!ran.get());
    assert!(h.join().unwrap_err().is_killed());
}

// test__greenlet.py::TestKillAfterStartLater
#[test]
fn test_kill_before_start_later() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = spawn_later(10 * MS, move || r.set(true));
    h.kill_nowait();
    sleep(40 * MS);
    assert!(!ran.get(), "killed before its delayed start, it never runs");
    assert!(h.is_finished());
    assert!(h.join().unwrap_err().is_killed());
}

// test__greenlet.py::TestKillAfterStartLater (no start timer is left behind)
#[test]
fn test_kill_before_start_later_cancels_timer() {
    let timers_before = Hub::current().timer_count();
    let h = spawn_later(Duration::from_secs(3), || ());
    assert_eq!(Hub::current().timer_count(), timers_before + 1);
    h.kill();
    assert!(h.join().unwrap_err().is_killed());
    assert_eq!(Hub::current().timer_count(), timers_before);
    // So a wait that can never end is reported at once, not in 3 s.
    let parked = spawn(|| {
        let hub = Hub::current().greenlet();
        hub.switch(());
    });
    let t = Instant::now();
    let err = parked.wait().unwrap_err();
    assert_eq!(err.kind(), JoinErrorKind::LoopExit);
    assert!(t.elapsed() < SLACK, "LoopExit took {:?}", t.elapsed());
    parked.kill();
}

// test__greenlet.py::TestKill (kill twice is harmless; TestStart: finished stays finished)
#[test]
fn test_kill_twice_and_after_finish() {
    let h = spawn(|| sleep(Duration::from_secs(60)));
    yield_now();
    h.kill();
    h.kill();
    h.kill_nowait();
    killall([&h]);
    assert!(h.join().unwrap_err().is_killed());

    let done = spawn(|| 5);
    done.wait().unwrap();
    done.kill();
    done.kill_nowait();
    assert_eq!(
        done.join().unwrap(),
        5,
        "a finished greenlet keeps its value"
    );
}

// test__greenlet.py::TestKillWhileRunning / test__api.py::test_killing_dormant
#[test]
fn test_kill_sleeping_runs_destructors() {
    let timers_before = Hub::current().timer_count();
    let log = new_log();
    let l = log.clone();
    let h = spawn(move || {
        let _finally = Guard {
            log: l.clone(),
            label: "finally",
        };
        sleep(Duration::from_secs(60));
        l.borrow_mut().push("after sleep".to_owned());
    });
    yield_now(); // let it start sleeping
    assert!(log.borrow().is_empty());
    assert_eq!(Hub::current().timer_count(), timers_before + 1);
    let t = Instant::now();
    h.kill();
    assert!(t.elapsed() < SLACK, "kill took {:?}", t.elapsed());
    assert_eq!(*log.borrow(), ["finally"]);
    assert_eq!(
        Hub::current().timer_count(),
        timers_before,
        "the sleep's timer was cancelled"
    );
    assert!(h.join().unwrap_err().is_killed());
}

// test__api.py::test_killing_dormant (the kill is caught, trailing code runs)
#[test]
fn test_kill_caught_runs_trailing_code() {
    let log = new_log();
    let l = log.clone();
    let h = spawn(move || {
        let r = catch_unwind(|| sleep(Duration::from_secs(60)));
        if let Err(p) = r {
            assert!(p.is::<GreenletExit>());
            l.borrow_mut().push("except".to_owned());
        }
        l.borrow_mut().push("trailing".to_owned());
        "returned"
    });
    yield_now();
    let t = Instant::now();
    h.kill();
    assert!(t.elapsed() < SLACK);
    assert_eq!(*log.borrow(), ["except", "trailing"]);
    // It returned a value after catching: gevent counts that as success.
    assert_eq!(h.join().unwrap(), "returned");
}

// verdant-specific: a caught kill is raised again by every later hub wait
#[test]
fn test_caught_kill_is_raised_again_by_later_waits() {
    let log = new_log();
    let l = log.clone();
    let h = spawn(move || {
        let r = catch_unwind(|| sleep(Duration::from_secs(60)));
        l.borrow_mut().push(format!("caught={}", r.is_err()));
        sleep(Duration::from_secs(60)); // raises the kill again, at once
        l.borrow_mut().push("unreachable".to_owned());
    });
    yield_now();
    let t = Instant::now();
    h.kill();
    assert!(t.elapsed() < SLACK, "kill took {:?}", t.elapsed());
    assert_eq!(*log.borrow(), ["caught=true"]);
    assert!(h.join().unwrap_err().is_killed());
}

// test__greenlet.py::TestKill (verdant-specific: a greenlet killing itself)
#[test]
fn test_kill_self_while_running() {
    let log = new_log();
    let me: Rc<OnceCell<JoinHandle<()>>> = Rc::new(OnceCell::new());
    let (l, m) = (log.clone(), me.clone());
    let h = spawn(move || {
        let _finally = Guard {
            log: l.clone(),
            label: "finally",
        };
        l.borrow_mut().push("before".to_owned());
        m.get().unwrap().kill();
        l.borrow_mut().push("after".to_owned());
    });
    me.set(h).unwrap();
    me.get().unwrap().wait().unwrap();
    assert_eq!(*log.borrow(), ["before", "finally"]);
    let h = Rc::try_unwrap(me).unwrap().into_inner().unwrap();
    assert!(h.join().unwrap_err().is_killed());
}

// test__greenlet.py::TestKill::test_non_block
#[test]
fn test_kill_nowait_does_not_block() {
    let log = new_log();
    let l = log.clone();
    let h = spawn(move || {
        let _finally = Guard {
            log: l,
            label: "finally",
        };
        sleep(Duration::from_secs(60));
    });
    yield_now();
    h.kill_nowait();
    assert!(
        !h.is_finished(),
        "kill_nowait returns before the kill lands"
    );
    assert!(log.borrow().is_empty());
    assert!(h.wait_timeout(SLACK).unwrap());
    assert_eq!(*log.borrow(), ["finally"]);
    assert!(h.join().unwrap_err().is_killed());
}

// test__greenlet.py::TestKill::test_block_killal / TestKillAfterStart
#[test]
fn test_killall() {
    let started = Rc::new(Cell::new(0));
    let mk = |s: Rc<Cell<i32>>| {
        move || {
            s.set(s.get() + 1);
            sleep(Duration::from_secs(60));
        }
    };
    let early: Vec<_> = (0..3).map(|_| spawn(mk(started.clone()))).collect();
    yield_now();
    assert_eq!(started.get(), 3);
    let late: Vec<_> = (0..3).map(|_| spawn(mk(started.clone()))).collect();
    let t = Instant::now();
    killall(early.iter().chain(&late));
    assert!(t.elapsed() < SLACK);
    assert_eq!(started.get(), 3, "unstarted ones never ran");
    for h in early.into_iter().chain(late) {
        assert!(h.join().unwrap_err().is_killed());
    }
}

// test__greenlet.py::TestStuff::test_joinall_exception_order
#[test]
fn test_joinall_exception_order() {
    let slow = spawn(|| {
        sleep(300 * MS);
        panic!("slow");
    });
    let fast = spawn(|| {
        sleep(5 * MS);
        panic!("fast");
    });
    let r = JoinAll::new().raise_error(true).join([&slow, &fast]);
    match r {
        Err(JoinAllError::Failed { index, error }) => {
            assert_eq!(index, 1);
            assert!(error.is_panic());
            assert_eq!(error.panic_message(), Some("fast"));
        }
        other => panic!("expected the fast failure, got {other:?}"),
    }
    assert!(!slow.is_finished(), "it stops at the first failure");
    slow.kill();
    assert!(slow.join().unwrap_err().is_killed());
    // The payload stays with the handle.
    let e = fast.join().unwrap_err();
    assert_eq!(*e.into_panic().downcast::<&str>().unwrap(), "fast");
}

// test__greenlet.py::TestStuff::test_wait_noerrors
#[test]
fn test_wait_noerrors() {
    let hs: Vec<_> = (1..=3).map(|i| spawn(move || i)).collect();
    assert_eq!(
        JoinAll::new().raise_error(true).join(&hs).unwrap(),
        [0, 1, 2]
    );
    let values: Vec<i32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, [1, 2, 3]);
}

// test__greenlet.py::TestStuff::test_wait_error
#[test]
fn test_wait_error() {
    let x = spawn(|| {
        sleep(5 * MS);
        1
    });
    let y = spawn(|| -> i32 { panic!("test_wait_error") });
    let r = JoinAll::new().raise_error(true).join([&x, &y]);
    assert!(
        matches!(r, Err(JoinAllError::Failed { index: 1, .. })),
        "{r:?}"
    );
    // Already dead: reported without waiting.
    let r = JoinAll::new().raise_error(true).join([&y]);
    match r {
        Err(JoinAllError::Failed { index: 0, error }) => {
            assert_eq!(error.panic_message(), Some("test_wait_error"));
            assert_eq!(error.name(), y.greenlet().name());
        }
        other => panic!("expected y's failure, got {other:?}"),
    }
    assert_eq!(x.join().unwrap(), 1);
}

// test__greenlet.py::TestKill (a kill is success: not an error for raise_error)
#[test]
fn test_killed_counts_as_success_for_raise_error() {
    let a = spawn(|| sleep(Duration::from_secs(60)));
    let b = spawn(|| {
        sleep(10 * MS);
        2
    });
    let c = spawn(|| 3);
    yield_now();
    a.kill_nowait();
    let done = JoinAll::new()
        .raise_error(true)
        .join([a.greenlet(), b.greenlet(), c.greenlet()])
        .unwrap();
    assert_eq!(done, [0, 1, 2]);
    assert!(a.join().unwrap_err().is_killed());
    assert_eq!(b.join().unwrap() + c.join().unwrap(), 5);
}

// test__greenlet.py::TestStuff::test_joinall_count_raise_error
#[test]
fn test_joinall_count_without_raise_error() {
    let bad = spawn(|| {
        panic!("counted, not raised");
    });
    let slow = spawn(|| sleep(Duration::from_secs(60)));
    let done = JoinAll::new().count(1).join([&bad, &slow]).unwrap();
    assert_eq!(done, [0]);
    assert!(!slow.is_finished());
    slow.kill();
    assert_eq!(
        bad.join().unwrap_err().panic_message(),
        Some("counted, not raised")
    );
}

// test__greenlet.py::TestJoinAll (count and timeout options)
#[test]
fn test_joinall_count_and_timeout() {
    let hs: Vec<_> = [300u32, 5, 5000, 15]
        .into_iter()
        .map(|ms| spawn(move || sleep(ms * MS)))
        .collect();
    let t = Instant::now();
    let done = JoinAll::new().count(2).join(&hs).unwrap();
    // The two quickest (in list order); a third may sneak in on a slow box.
    assert!(
        done.len() >= 2 && done.contains(&1) && done.contains(&3),
        "{done:?}"
    );
    assert!(!done.contains(&2));
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert!(t.elapsed() < SLACK);

    let t = Instant::now();
    let done = JoinAll::new().timeout(500 * MS).join(&hs).unwrap();
    let took = t.elapsed();
    assert_eq!(done, [0, 1, 3], "all but the 5 s sleeper");
    assert!(took >= 500 * MS && took < 500 * MS + SLACK, "{took:?}");
    assert!(!hs[2].is_finished());

    // A timeout that is not reached returns as soon as all are done.
    let quick = spawn(|| sleep(5 * MS));
    let t = Instant::now();
    let done = JoinAll::new()
        .timeout(Duration::from_secs(30))
        .join([&quick])
        .unwrap();
    assert_eq!(done, [0]);
    assert!(t.elapsed() < SLACK);
    killall(&hs);
}

// ---------------------------------------------------------------------------
// test__joinall.py
// ---------------------------------------------------------------------------

// test__joinall.py (duplicate greenlets in joinall are fine)
#[test]
fn test_joinall_duplicates() {
    let a = spawn(|| sleep(10 * MS));
    let b = spawn(|| 2);
    joinall([a.greenlet(), a.greenlet(), b.greenlet(), a.greenlet()]).unwrap();
    assert!(a.is_finished() && b.is_finished());

    // Counted once per listing, whether finished already or not.
    let c = spawn(|| sleep(10 * MS));
    let done = JoinAll::new().join([&c, &c, &c]).unwrap();
    assert_eq!(done, [0, 1, 2]);
    let done = JoinAll::new().join([&c, &c]).unwrap();
    assert_eq!(done, [0, 1]);
    assert_eq!(b.join().unwrap(), 2);
}

// test__greenlet.py::TestJoinAll0 (empty or finished lists return at once)
#[test]
fn test_joinall_empty_and_finished() {
    let none: [&JoinHandle<()>; 0] = [];
    joinall(none).unwrap();
    assert_eq!(JoinAll::new().join(none).unwrap(), Vec::<usize>::new());
    let a = spawn(|| ());
    a.wait().unwrap();
    let t = Instant::now();
    assert_eq!(JoinAll::new().join([&a]).unwrap(), [0]);
    assert!(t.elapsed() < SLACK);
}

// ---------------------------------------------------------------------------
// test__sleep0.py
// ---------------------------------------------------------------------------

// test__sleep0.py (`while True: sleep(0)` does not starve timers)
#[test]
fn test_sleep0_does_not_starve_timers_yield_now() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t = Instant::now();
    let _timer = spawn_later(10 * MS, move || f.set(true));
    let mut spins = 0u64;
    while !fired.get() {
        yield_now();
        spins += 1;
        assert!(t.elapsed() < HANG, "timer starved after {spins} yields");
    }
    assert!(t.elapsed() >= 10 * MS);
}

// test__sleep0.py (the same with sleep(Duration::ZERO))
#[test]
fn test_sleep0_does_not_starve_timers_sleep_zero() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t = Instant::now();
    let _timer = spawn_later(10 * MS, move || f.set(true));
    while !fired.get() {
        sleep(Duration::ZERO);
        assert!(t.elapsed() < HANG, "timer starved");
    }
    assert!(t.elapsed() >= 10 * MS);
}

// test__sleep0.py (busy yielding greenlets do not starve a sleeper)
#[test]
fn test_sleep0_busy_greenlets_do_not_starve_sleeper() {
    let woke = Rc::new(Cell::new(false));
    let w = woke.clone();
    let sleeper = spawn(move || {
        let t = Instant::now();
        sleep(20 * MS);
        w.set(true);
        t.elapsed()
    });
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let w = woke.clone();
            spawn(move || {
                let t = Instant::now();
                let mut n = 0u64;
                while !w.get() {
                    yield_now();
                    n += 1;
                    assert!(t.elapsed() < HANG, "sleeper starved");
                }
                n
            })
        })
        .collect();
    let slept = sleeper.join().unwrap();
    assert!(slept >= 20 * MS, "{slept:?}");
    for s in spinners {
        assert!(s.join().unwrap() > 0);
    }
}

// ---------------------------------------------------------------------------
// test__order.py
// ---------------------------------------------------------------------------

// test__order.py::TestSleep0 (two greenlets doing sleep(0) interleave)
#[test]
fn test_order_sleep0_interleaves() {
    let log = new_log();
    let hs: Vec<_> = ["1", "2"]
        .into_iter()
        .map(|n| {
            let log = log.clone();
            spawn(move || {
                for s in ["A", "B"] {
                    log.borrow_mut().push(format!("{n}{s}"));
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    joinall(&hs).unwrap();
    assert_eq!(log.borrow().join(" "), "1A 2A 1B 2B");
}

// test__order.py::Test::test_greenlet_link (here: spawns start in spawn order)
#[test]
fn test_order_spawn_is_fifo() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..50)
        .map(|i| {
            let log = log.clone();
            spawn(move || log.borrow_mut().push(i))
        })
        .collect();
    // Greenlets spawned from greenlets go to the back of the queue too.
    let l = log.clone();
    let nested = spawn(move || {
        let l2 = l.clone();
        let inner = spawn(move || l2.borrow_mut().push(1000));
        l.borrow_mut().push(999);
        inner.join().unwrap();
    });
    joinall(&hs).unwrap();
    nested.join().unwrap();
    let expect: Vec<i32> = (0..50).chain([999, 1000]).collect();
    assert_eq!(*log.borrow(), expect);
}

// test__order.py (verdant-specific: spawn_later runs in deadline order)
#[test]
fn test_order_spawn_later_by_deadline() {
    let log = new_log();
    let hs: Vec<_> = [(30u32, "c"), (10, "a"), (20, "b")]
        .into_iter()
        .map(|(ms, name)| {
            let log = log.clone();
            spawn_later(ms * MS, move || log.borrow_mut().push(name.to_owned()))
        })
        .collect();
    joinall(&hs).unwrap();
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
}

// ---------------------------------------------------------------------------
// LoopExit (test__hub.py, test__greenlet.py's join of a never-ending greenlet)
// ---------------------------------------------------------------------------

type Slot = Rc<OnceCell<JoinHandle<Result<(), JoinError>>>>;

// verdant-specific (gevent's LoopExit): two greenlets joining each other
#[test]
fn test_loop_exit_mutual_join() {
    let slot_a: Slot = Rc::new(OnceCell::new());
    let slot_b: Slot = Rc::new(OnceCell::new());
    let (sb, sa) = (slot_b.clone(), slot_a.clone());
    let a = spawn(move || sb.get().unwrap().wait());
    let b = spawn(move || sa.get().unwrap().wait());
    slot_a.set(a).unwrap();
    slot_b.set(b).unwrap();
    let t = Instant::now();
    let err = slot_a.get().unwrap().wait().unwrap_err();
    assert_eq!(err.kind(), JoinErrorKind::LoopExit);
    assert!(err.to_string().contains("LoopExit"), "{err}");
    assert!(t.elapsed() < SLACK, "LoopExit must not hang");
    // joinall sees it too.
    let r = joinall([slot_a.get().unwrap(), slot_b.get().unwrap()]);
    assert!(matches!(r, Err(JoinAllError::LoopExit(_))), "{r:?}");

    // The hub still works afterwards: kill a, which lets b finish.
    slot_a.get().unwrap().kill();
    let b = Rc::try_unwrap(slot_b).unwrap().into_inner().unwrap();
    assert_eq!(b.join().unwrap().map_err(|e| e.kind()), Ok(()));
    let a = Rc::try_unwrap(slot_a).unwrap().into_inner().unwrap();
    assert!(a.join().unwrap_err().is_killed());
    assert_eq!(spawn(|| 7).join().unwrap(), 7);
}

// verdant-specific (gevent's LoopExit): a greenlet that joins itself
#[test]
fn test_loop_exit_join_self() {
    let me: Slot = Rc::new(OnceCell::new());
    let m = me.clone();
    let h = spawn(move || m.get().unwrap().wait());
    me.set(h).unwrap();
    let t = Instant::now();
    me.get().unwrap().wait().unwrap();
    assert!(t.elapsed() < SLACK);
    let h = Rc::try_unwrap(me).unwrap().into_inner().unwrap();
    let inner = h.join().unwrap();
    assert_eq!(inner.unwrap_err().kind(), JoinErrorKind::LoopExit);
}

// verdant-specific (gevent's LoopExit): joinall listing the waiter itself
#[test]
fn test_loop_exit_joinall_self() {
    type SelfJoin = JoinHandle<Result<Vec<usize>, String>>;
    let me: Rc<OnceCell<SelfJoin>> = Rc::new(OnceCell::new());
    let m = me.clone();
    let other = spawn(|| sleep(5 * MS));
    let other_g = other.greenlet().clone();
    let h = spawn(move || {
        JoinAll::new()
            .join([m.get().unwrap().greenlet(), &other_g])
            .map_err(|e| e.to_string())
    });
    me.set(h).unwrap();
    me.get().unwrap().wait().unwrap();
    let h = Rc::try_unwrap(me).unwrap().into_inner().unwrap();
    let msg = h.join().unwrap().unwrap_err();
    assert!(msg.contains("LoopExit"), "{msg}");
    other.join().unwrap();
}

// verdant-specific (gevent's LoopExit): main joins a greenlet parked forever
#[test]
fn test_loop_exit_parked_forever() {
    let main = verdant::Greenlet::current();
    let h = spawn(move || {
        // Switch to the hub by hand: nothing will ever switch back here.
        let hub = Hub::current().greenlet();
        assert_ne!(hub, main);
        hub.switch(());
    });
    let err = h.wait().unwrap_err();
    assert_eq!(err.kind(), JoinErrorKind::LoopExit);
    assert_eq!(err.name(), "main", "LoopExit names the waiter");
    h.kill();
    assert!(h.join().unwrap_err().is_killed());
}

// ---------------------------------------------------------------------------
// test__api.py / spawn semantics
// ---------------------------------------------------------------------------

// test__greenlet.py::TestStart (spawn only schedules; the spawner keeps running)
#[test]
fn test_spawn_only_schedules() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let ready_before = Hub::current().ready_count();
    let h = spawn(move || r.set(true));
    assert_eq!(Hub::current().ready_count(), ready_before + 1);
    // Work that does not wait never lets it run.
    let mut x = 0u64;
    for i in 0..100_000u64 {
        x = x.wrapping_add(i * i);
    }
    std::hint::black_box(x);
    assert!(!ran.get());
    assert!(!h.greenlet().is_started());
    yield_now();
    assert!(ran.get());
    assert!(h.is_finished());
}

// test__api.py::test_spawn_is_not_cancelled
#[test]
fn test_spawn_is_not_cancelled() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let inner: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::new(RefCell::new(None));
    let i = inner.clone();
    let outer = spawn(move || {
        *i.borrow_mut() = Some(spawn(move || {
            sleep(5 * MS);
            r.set(true);
        }));
    });
    outer.join().unwrap();
    assert!(!ran.get());
    let h = inner.borrow_mut().take().unwrap();
    h.join().unwrap();
    assert!(ran.get());
}

// test__greenlet.py::TestBasic::test_add_spawn_callback (spawn_later; never early)
#[test]
fn test_spawn_later_never_early() {
    let t = Instant::now();
    let h = spawn_later(20 * MS, move || t.elapsed());
    let at = h.join().unwrap();
    assert!(at >= 20 * MS, "started after {at:?}");
    assert!(at < 20 * MS + SLACK, "started after {at:?}");
    // Not started before the delay even when the spawner yields a lot.
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    let t = Instant::now();
    let h = spawn_later(30 * MS, move || s.set(true));
    while t.elapsed() < 20 * MS {
        yield_now();
        assert!(!started.get() || t.elapsed() >= 30 * MS);
    }
    h.join().unwrap();
    assert!(started.get());
    assert!(t.elapsed() >= 30 * MS);
}

// test__api.py (verdant-specific: sleep is never early; sleepers run concurrently)
#[test]
fn test_sleep_timing() {
    let t = Instant::now();
    sleep(20 * MS);
    let took = t.elapsed();
    assert!(took >= 20 * MS && took < SLACK, "{took:?}");

    let t = Instant::now();
    let hs: Vec<_> = (0..5).map(|_| spawn(|| sleep(200 * MS))).collect();
    joinall(&hs).unwrap();
    let took = t.elapsed();
    // One sleep, not five in a row (which would be 1 s).
    assert!(took >= 200 * MS && took < 900 * MS, "{took:?}");
}

// test__greenlet.py::TestJoin (wait with a timeout)
#[test]
fn test_wait_timeout() {
    let h = spawn(|| {
        sleep(50 * MS);
        1
    });
    let t = Instant::now();
    assert!(!h.wait_timeout(10 * MS).unwrap());
    assert!(t.elapsed() >= 10 * MS);
    assert!(!h.is_finished());
    assert!(h.wait_timeout(HANG).unwrap());
    assert!(t.elapsed() < SLACK);
    assert_eq!(h.join().unwrap(), 1);
}

// test__api.py::test_sleep_invalid_switch
#[test]
fn test_sleep_invalid_switch() {
    let p = spawn(|| {
        let r = catch_unwind(|| sleep(Duration::from_secs(2)));
        match r {
            Ok(()) => String::from("slept"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "non-string panic".to_owned()),
        }
    });
    sleep(Duration::ZERO); // let p start sleeping
    let pg = p.greenlet().clone();
    let switcher = spawn(move || {
        pg.switch(());
    });
    let t = Instant::now();
    let result = p.join().unwrap();
    assert!(t.elapsed() < SLACK, "the invalid switch woke it at once");
    assert!(result.contains("invalid switch"), "{result}");
    switcher.kill();
    assert!(switcher.join().unwrap_err().is_killed());
}
