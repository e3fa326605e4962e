//! Port of gevent's `src/gevent/tests/test__semaphore.py`, and of the lock
//! and semaphore cases of `src/gevent/tests/lock_tests.py` (the suite that
//! gevent's `test__threading_2.py` runs against its patched `threading`;
//! `test__lock.py` only holds the multi-thread case skipped below),
//! rewritten for [`verdant::sync::Semaphore`],
//! [`BoundedSemaphore`], [`Lock`] and [`RLock`], with greenlets where
//! `lock_tests.py` uses threads.
//!
//! Ported from `test__semaphore.py`: `TestSemaphore::
//! test_acquire_returns_false_after_timeout` (issue 39), `test_release_twice`
//! (without `rawlink`: the permits and the waiters it wakes),
//! `TestSemaphoreFair::test_fair_or_hangs` (issue 1487).
//! Ported from `lock_tests.py`: `BaseSemaphoreTests` (`test_acquire`,
//! `test_acquire_contended`, `test_try_acquire`, `test_try_acquire_contended`,
//! `test_default_value`, `test_with`), `SemaphoreTests` and
//! `BoundedSemaphoreTests::test_release_unacquired`, `BaseLockTests`
//! (`test_acquire_release`, `test_try_acquire`, `test_try_acquire_contended`,
//! `test_acquire_contended`, `test_with`), `LockTests::test_reacquire` and
//! `test_different_thread` (a guard moved to another greenlet), and
//! `RLockTests::test_reacquire` / `test__is_owned` / `test_different_thread`
//! (another greenlet cannot take an owned `RLock`).
//!
//! Skipped, and why:
//! * `TestSemaphoreMultiThread`, `TestRLockMultiThread` (`test__lock.py`):
//!   verdant's primitives belong to one thread's hub (`!Send`).
//! * `test_semaphore_weakref`, `test_semaphore_in_class_with_del`,
//!   `TestCExt`, `test_thread_leak`: Python object model and C extension.
//! * `test_rawlink_on_unacquired_runs_notifiers`: no `rawlink`/`gevent.wait`.
//! * `BaseSemaphoreTests::test_constructor` (negative values) and
//!   `RLockTests::test_release_unacquired`: ruled out by the types (`usize`
//!   permits; a release is a guard's drop).
//!
//! verdant-specific additions: FIFO handoff (a newcomer never overtakes a
//! woken waiter), `LoopExit` for a lock taken twice by main, a waiter that
//! timed out is skipped by the next release, and kills: a greenlet parked in
//! `acquire`/`lock` is deregistered and its destructors run; a permit or lock
//! handed to a waiter killed in that same tick goes to the next waiter (or
//! back to the count); a greenlet killed while holding a lock releases it and
//! nothing is poisoned.
//!
//! Tests that expect `LoopExit` (or could spin forever) run on a fresh OS
//! thread bounded by `HANG`; timing bounds are generous (`SLACK`).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::sync::{BoundedSemaphore, Lock, LockGuard, OverRelease, RLock, Semaphore, WaitError};
use verdant::{
    joinall, sleep, spawn, with_timeout, yield_now, Elapsed, Hub, JoinAllError, JoinHandle,
};

mod common;
mod sync_common;
use common::settle;
use sync_common::*;

/// A lock that lives for the whole test, so that its guards are `'static`
/// and can move into (and be dropped by) another greenlet.
fn leaked_lock() -> &'static Lock<()> {
    /// The leaked locks' addresses: kept reachable from a static, so that
    /// LeakSanitizer (CI's AddressSanitizer step) does not report them.
    static LEAKED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let lock: &'static Lock<()> = Box::leak(Box::new(Lock::new(())));
    LEAKED
        .lock()
        .unwrap()
        .push(lock as *const Lock<()> as usize);
    lock
}

// ---------------------------------------------------------------------------
// Semaphore: test__semaphore.py
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__semaphore.py::TestSemaphore::test_acquire_returns_false_after_timeout
// (issue 39)
fn semaphore_acquire_timeout_returns_error() {
    let s = Semaphore::new(0);
    let t = Instant::now();
    let r = s.acquire_timeout(10 * MS);
    assert_eq!(r.unwrap_err(), WaitError::TimedOut);
    assert!(
        t.elapsed() >= 10 * MS && t.elapsed() < SLACK,
        "{:?}",
        t.elapsed()
    );
    assert_eq!(s.waiters(), 0);
    assert_eq!(s.available(), 0);
    // The deadline form, and one already passed.
    let t = Instant::now();
    assert_eq!(
        s.acquire_deadline(t + 10 * MS).unwrap_err(),
        WaitError::TimedOut
    );
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(
        s.acquire_deadline(Instant::now()).unwrap_err(),
        WaitError::TimedOut
    );
    // An outer timeout is not lost (timing.py::test_outer_timeout_is_not_lost).
    let r = with_timeout(MS, || s.acquire_timeout(Duration::from_secs(1)).map(|_| ()));
    assert_eq!(r, Err(Elapsed));
    assert_eq!(s.waiters(), 0);
    assert_eq!(Hub::current().timer_count(), 0);
}
}
common::seeded_tests! {
// test__semaphore.py::TestSemaphore::test_release_twice (without rawlink)
fn semaphore_release_twice() {
    let s = Semaphore::new(1);
    s.release();
    s.release();
    assert_eq!(s.available(), 3);
    // With waiters, each release wakes one of them instead.
    let s = Rc::new(Semaphore::new(0));
    let result = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (s, result) = (s.clone(), result.clone());
            let h = spawn(move || {
                s.acquire().unwrap().forget();
                result.borrow_mut().push(name);
            });
            settle(); // in line in spawn order, under any schedule
            h
        })
        .collect();
    assert_eq!(s.waiters(), 2);
    s.release();
    s.release();
    assert_eq!(s.available(), 0, "both permits were handed over");
    sleep(MS);
    result.borrow_mut().sort(); // the order they run in is the schedule's
    assert_eq!(*result.borrow(), ["a", "b"]);
    joinall(&hs).unwrap();
}
}

type Flag = Rc<Cell<bool>>;

fn acquire_then_exit(sem: Rc<Semaphore>, should_quit: Flag) {
    sem.acquire().unwrap().forget();
    should_quit.set(true);
}

fn acquire_then_spawn(sem: Rc<Semaphore>, should_quit: Flag) {
    if should_quit.get() {
        return;
    }
    sem.acquire().unwrap().forget();
    let g = spawn(move || release_then_spawn(sem, should_quit));
    g.join().unwrap();
}

fn release_then_spawn(sem: Rc<Semaphore>, should_quit: Flag) {
    sem.release();
    if should_quit.get() {
        return;
    }
    let g = spawn(move || acquire_then_spawn(sem, should_quit));
    g.join().unwrap();
}

// test__semaphore.py::TestSemaphoreFair::test_fair_or_hangs (issue 1487):
// if the semaphore is not fair, this spins forever between the last two
// greenlets
#[test]
fn semaphore_fair_or_hangs() {
    on_fresh_thread("fair_or_hangs", || {
        let sem = Rc::new(Semaphore::new(1));
        let should_quit: Flag = Rc::new(Cell::new(false));
        let (s, q) = (sem.clone(), should_quit.clone());
        let keep_going1 = spawn(move || acquire_then_spawn(s, q));
        let (s, q) = (sem.clone(), should_quit.clone());
        let keep_going2 = spawn(move || acquire_then_spawn(s, q));
        let (s, q) = (sem.clone(), should_quit.clone());
        let exiting = spawn(move || acquire_then_exit(s, q));
        let r = joinall([&keep_going1, &keep_going2, &exiting]);
        assert!(matches!(r, Err(JoinAllError::LoopExit(_))), "{r:?}");
        assert!(exiting.is_finished());
        assert!(keep_going2.is_finished());
        assert!(!keep_going1.is_finished());
        // One more release lets the chain under keep_going1 finish.
        sem.release();
        joinall([&keep_going1]).unwrap();
        for h in [keep_going1, keep_going2, exiting] {
            h.join().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------
// Semaphore: lock_tests.py BaseSemaphoreTests / SemaphoreTests
// ---------------------------------------------------------------------------

common::seeded_tests! {
// lock_tests.py::BaseSemaphoreTests::test_acquire
fn semaphore_acquire() {
    let sem = Semaphore::new(1);
    drop(sem.acquire().unwrap());
    let sem = Semaphore::new(2);
    let a = sem.acquire().unwrap();
    let b = sem.acquire().unwrap();
    assert!(sem.is_locked());
    drop(a);
    drop(b);
    assert_eq!(sem.available(), 2);
}

// lock_tests.py::BaseSemaphoreTests::test_acquire_contended
fn semaphore_acquire_contended() {
    let sem = Rc::new(Semaphore::new(7));
    sem.acquire().unwrap().forget();
    let results1 = Rc::new(RefCell::new(Vec::new()));
    let results2 = Rc::new(RefCell::new(Vec::new()));
    let phase_num = Rc::new(Cell::new(0));
    let all = |r1: &RefCell<Vec<i32>>, r2: &RefCell<Vec<i32>>| {
        let mut v: Vec<i32> = r1
            .borrow()
            .iter()
            .chain(r2.borrow().iter())
            .copied()
            .collect();
        v.sort_unstable();
        v
    };
    let hs: Vec<_> = (0..10)
        .map(|_| {
            let (sem, r1, r2, phase) = (
                sem.clone(),
                results1.clone(),
                results2.clone(),
                phase_num.clone(),
            );
            spawn(move || {
                sem.acquire().unwrap().forget();
                r1.borrow_mut().push(phase.get());
                sem.acquire().unwrap().forget();
                r2.borrow_mut().push(phase.get());
            })
        })
        .collect();
    sleep(MS);
    assert_eq!(all(&results1, &results2), [0; 6]);
    assert_eq!(sem.waiters(), 7);
    phase_num.set(1);
    for _ in 0..7 {
        sem.release();
    }
    sleep(MS);
    let mut want = vec![0; 6];
    want.extend([1; 7]);
    assert_eq!(all(&results1, &results2), want);
    phase_num.set(2);
    for _ in 0..6 {
        sem.release();
    }
    sleep(MS);
    want.extend([2; 6]);
    assert_eq!(all(&results1, &results2), want);
    // The semaphore is still locked (`acquire(False)`; a zero timeout here,
    // see `semaphore_try_acquire` for try_acquire).
    assert_eq!(
        sem.acquire_timeout(Duration::ZERO).unwrap_err(),
        WaitError::TimedOut
    );
    assert_eq!((sem.available(), sem.waiters()), (0, 1));
    // Final release, to let the last greenlet finish.
    sem.release();
    joinall(&hs).unwrap();
    assert_eq!(results1.borrow().len() + results2.borrow().len(), 20);
    assert_eq!(sem.available(), 0, "every permit was taken and kept");
}

// lock_tests.py::BaseSemaphoreTests::test_try_acquire
fn semaphore_try_acquire() {
    let sem = Semaphore::new(2);
    let a = sem.try_acquire();
    let b = sem.try_acquire();
    assert!(a.is_some() && b.is_some());
    assert!(sem.try_acquire().is_none());
    assert_eq!(sem.available(), 0, "a failed try_acquire added a permit");
    drop(a);
    assert_eq!(sem.available(), 1);
    assert!(sem.try_acquire().is_some());
    drop(b);
    assert_eq!(sem.available(), 2);
}

// lock_tests.py::BaseSemaphoreTests::test_try_acquire_contended
fn semaphore_try_acquire_contended() {
    let sem = Rc::new(Semaphore::new(4));
    sem.acquire().unwrap().forget();
    let results = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..5)
        .map(|_| {
            let (sem, results) = (sem.clone(), results.clone());
            spawn(move || {
                for _ in 0..2 {
                    let g = sem.try_acquire();
                    results.borrow_mut().push(g.is_some());
                    if let Some(g) = g {
                        g.forget();
                    }
                }
            })
        })
        .collect();
    joinall(&hs).unwrap();
    let mut r = results.borrow().clone();
    r.sort_unstable();
    let mut want = vec![false; 7];
    want.extend([true; 3]);
    assert_eq!(r, want);
}

// lock_tests.py::BaseSemaphoreTests::test_default_value (gevent's default
// value is 1)
fn semaphore_one_permit_blocks_second_acquirer() {
    let sem = Rc::new(Semaphore::new(1));
    let g = sem.acquire().unwrap();
    let finished = Rc::new(Cell::new(false));
    let (s, f) = (sem.clone(), finished.clone());
    let b = spawn(move || {
        drop(s.acquire().unwrap());
        f.set(true);
    });
    sleep(5 * MS);
    assert!(!finished.get());
    drop(g);
    b.join().unwrap();
    assert!(finished.get());
    assert_eq!(sem.available(), 1);
}

// lock_tests.py::BaseSemaphoreTests::test_with: guards release, also when
// the code they guard panics
fn semaphore_guards_release_on_panic() {
    let sem = Semaphore::new(2);
    let with = |err: bool| {
        let _g = sem.acquire().unwrap();
        assert!(sem.try_acquire().is_some());
        let _g2 = sem.acquire().unwrap();
        assert!(sem.try_acquire().is_none());
        if err {
            panic!("TypeError");
        }
    };
    with(false);
    assert!(sem.try_acquire().is_some());
    assert!(catch_unwind(AssertUnwindSafe(|| with(true))).is_err());
    assert!(sem.try_acquire().is_some());
    assert_eq!(sem.available(), 2);
}

// lock_tests.py::SemaphoreTests::test_release_unacquired: unbounded
// releases are allowed and add permits
fn semaphore_release_unacquired() {
    let sem = Semaphore::new(1);
    sem.release();
    let a = sem.acquire().unwrap();
    let b = sem.acquire().unwrap();
    drop((a, b));
    assert_eq!(sem.available(), 2);
}
}
common::seeded_tests! {
// lock_tests.py::BoundedSemaphoreTests::test_release_unacquired: cannot go
// past the initial value
fn bounded_semaphore_over_release() {
    let sem = BoundedSemaphore::new(1);
    assert_eq!(sem.release(), Err(OverRelease));
    assert_eq!(sem.available(), 1);
    sem.acquire().unwrap().forget();
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.release(), Err(OverRelease));
    assert_eq!(sem.available(), 1);
    assert!(OverRelease.to_string().contains("too many"));

    // With a waiter: the release hands the permit over, and the waiter's
    // permit may be released once more, not twice.
    let sem = Rc::new(BoundedSemaphore::new(1));
    sem.acquire().unwrap().forget();
    let s = sem.clone();
    let w = spawn(move || s.acquire().unwrap().forget());
    settle();
    assert_eq!(sem.waiters(), 1);
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.available(), 0, "handed to the waiter");
    w.join().unwrap();
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.release(), Err(OverRelease));
    assert_eq!(sem.available(), 1);
}
}

// ---------------------------------------------------------------------------
// Semaphore: verdant-specific (FIFO handoff, timeouts, kills)
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: waiters get permits in arrival order, and a newcomer
// cannot overtake a waiter that was handed a permit but has not run yet
fn semaphore_fifo_handoff() {
    let sem = Rc::new(Semaphore::new(0));
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut hs = Vec::new();
    for i in [2, 0, 3, 1, 4] {
        let (sem, order) = (sem.clone(), order.clone());
        hs.push(spawn(move || {
            let _p = sem.acquire().unwrap();
            order.borrow_mut().push(i);
        }));
        settle();
    }
    assert_eq!(sem.waiters(), 5);
    sem.release();
    // The permit is the first waiter's now, though it has not run.
    assert_eq!(sem.available(), 0);
    assert_eq!(sem.waiters(), 4);
    assert_eq!(
        sem.acquire_timeout(Duration::ZERO).unwrap_err(),
        WaitError::TimedOut
    );
    joinall(&hs).unwrap();
    assert_eq!(*order.borrow(), [2, 0, 3, 1, 4]);
    assert_eq!(sem.available(), 1);
    assert_eq!(sem.waiters(), 0);
}
}

// verdant-specific: a waiter whose timeout fired (but that has not run yet)
// is skipped by a release: the permit goes back to the count
#[test]
fn semaphore_timed_out_waiter_skipped_by_release() {
    maintain_every_tick();
    let sem = Rc::new(Semaphore::new(0));
    let s = sem.clone();
    let h = spawn(move || s.acquire_timeout(10 * MS).map(SemaphoreGuardExt::keep));
    yield_now();
    assert_eq!(sem.waiters(), 1);
    // Let the deadline pass without running the hub, then let it fire the
    // timer: the waiter is woken (timed out) but runs after us.
    std::thread::sleep(15 * MS);
    yield_now();
    assert!(!h.is_finished());
    assert_eq!(sem.waiters(), 0, "a timed-out waiter still counts");
    sem.release();
    assert_eq!(sem.available(), 1, "the permit went to a timed-out waiter");
    assert_eq!(h.join().unwrap(), Err(WaitError::TimedOut));
    assert_eq!(sem.available(), 1);
}

/// `forget` for a guard inside a `map`.
trait SemaphoreGuardExt {
    fn keep(self);
}

impl SemaphoreGuardExt for verdant::sync::SemaphoreGuard<'_> {
    fn keep(self) {
        self.forget();
    }
}

common::seeded_tests! {
// verdant-specific (gevent's LoopExit): an acquire nothing could satisfy
fn semaphore_deadlock_is_loop_exit() {
    on_fresh_thread("semaphore deadlock", || {
        let sem = Semaphore::new(1);
        let _held = sem.acquire().unwrap();
        let t = Instant::now();
        assert!(matches!(sem.acquire().unwrap_err(), WaitError::LoopExit(_)));
        assert!(t.elapsed() < SLACK);
        assert_eq!(sem.waiters(), 0);
    });
}
}
common::seeded_tests! {
// verdant-specific: kill a greenlet parked in Semaphore::acquire
fn semaphore_kill_parked_waiter() {
    let sem = Rc::new(Semaphore::new(1));
    let held = sem.acquire().unwrap();
    let drops = Drops::default();
    let (s, tok) = (sem.clone(), drops.token());
    let h = spawn(move || {
        let _tok = tok;
        let _p = s.acquire().unwrap();
        unreachable!("the waiter was killed");
    });
    settle();
    assert_eq!(sem.waiters(), 1);
    h.kill();
    assert_eq!(drops.count(), 1, "destructors ran");
    assert_eq!(sem.waiters(), 0, "the killed waiter is deregistered");
    assert!(h.join().unwrap_err().is_killed());
    drop(held);
    assert_eq!(sem.available(), 1, "the permit went to a dead waiter");
    assert!(sem.try_acquire().is_some());
}
}

/// Spawns `n` greenlets that each wait for a permit of `sem`, record their
/// index in `got` and keep the permit until `hold` is set.
fn permit_waiters(
    sem: &Rc<Semaphore>,
    n: usize,
    got: &Rc<RefCell<Vec<usize>>>,
    drops: &Drops,
) -> Vec<JoinHandle<()>> {
    // One at a time, each parked before the next starts: waiter `i` is
    // `i`th in line under any schedule.
    (0..n)
        .map(|i| {
            let (sem, got, tok) = (sem.clone(), got.clone(), drops.token());
            let h = spawn(move || {
                let _tok = tok;
                let _p = sem.acquire().unwrap();
                got.borrow_mut().push(i);
            });
            settle();
            h
        })
        .collect()
}

common::seeded_tests! {
// verdant-specific: a permit handed to a waiter killed in the same tick goes
// to the next waiter
fn semaphore_kill_waiter_handed_a_permit_passes_it_on() {
    let sem = Rc::new(Semaphore::new(0));
    let got = Rc::new(RefCell::new(Vec::new()));
    let drops = Drops::default();
    let hs = permit_waiters(&sem, 2, &got, &drops);
    assert_eq!(sem.waiters(), 2);
    sem.release(); // handed to waiter 0, which has not run yet
    assert_eq!((sem.available(), sem.waiters()), (0, 1));
    hs[0].kill();
    assert!(hs[0].is_finished());
    joinall(&hs).unwrap();
    assert_eq!(
        *got.borrow(),
        [1],
        "the permit was lost with the killed waiter"
    );
    assert_eq!(drops.count(), 2);
    assert_eq!(sem.available(), 1);
    assert_eq!(sem.waiters(), 0);
}
}

common::seeded_tests! {
// verdant-specific: ... and back to the count when no one else waits (also
// with kill_nowait: the kill lands before the waiter runs)
fn semaphore_kill_waiter_handed_a_permit_restores_count() {
    for blocking in [true, false] {
        let sem = Rc::new(Semaphore::new(0));
        let got = Rc::new(RefCell::new(Vec::new()));
        let drops = Drops::default();
        let hs = permit_waiters(&sem, 1, &got, &drops);
        sem.release();
        if blocking {
            hs[0].kill();
        } else {
            hs[0].kill_nowait();
        }
        joinall(&hs).unwrap();
        assert!(got.borrow().is_empty());
        assert_eq!(drops.count(), 1);
        assert_eq!(
            sem.available(),
            1,
            "kill(block = {blocking}) lost the permit"
        );
        assert!(sem.try_acquire().is_some());
    }
}
}
common::seeded_tests! {
// verdant-specific: a greenlet killed while it holds permits gives them back
fn semaphore_kill_holder_releases() {
    let sem = Rc::new(Semaphore::new(2));
    let s = sem.clone();
    let h = spawn(move || {
        let _a = s.acquire().unwrap();
        let _b = s.acquire().unwrap();
        sleep(Duration::from_secs(60));
    });
    settle();
    assert_eq!(sem.available(), 0);
    // A waiter behind it gets a permit when it dies.
    let s = sem.clone();
    let w = spawn(move || drop(s.acquire().unwrap()));
    settle();
    h.kill();
    w.join().unwrap();
    assert_eq!(sem.available(), 2);
    assert!(h.join().unwrap_err().is_killed());
}
}

common::seeded_tests! {
// verdant-specific: a BoundedSemaphore's permit handed to a waiter killed in
// the same tick comes back to the count; the bound still holds
fn bounded_semaphore_kill_waiter_handed_a_permit() {
    let sem = Rc::new(BoundedSemaphore::new(1));
    sem.acquire().unwrap().forget();
    let drops = Drops::default();
    let (s, tok) = (sem.clone(), drops.token());
    let w = spawn(move || {
        let _tok = tok;
        s.acquire().unwrap().forget();
    });
    settle();
    assert_eq!(sem.waiters(), 1);
    assert_eq!(sem.release(), Ok(())); // handed to `w`
    w.kill();
    assert_eq!(drops.count(), 1);
    assert!(w.join().unwrap_err().is_killed());
    assert_eq!(sem.available(), 1, "the permit died with the killed waiter");
    assert_eq!(sem.release(), Err(OverRelease));
}
}

common::seeded_tests! {
// verdant-specific (the reliability plan's deadlock row: greenlets deadlocked on
// locks): two greenlets take two locks in opposite orders; the root's join
// fails with LoopExit; killing one lets the other finish
fn lock_abba_deadlock_is_loop_exit() {
    on_fresh_thread("ABBA", || {
        let a = Rc::new(Lock::new(0));
        let b = Rc::new(Lock::new(0));
        let (a1, b1) = (a.clone(), b.clone());
        let first = spawn(move || {
            let _ga = a1.lock().unwrap();
            sleep(MS);
            *b1.lock().unwrap() += 1;
        });
        let (a2, b2) = (a.clone(), b.clone());
        let second = spawn(move || {
            let _gb = b2.lock().unwrap();
            sleep(MS);
            *a2.lock().unwrap() += 1;
        });
        let t = Instant::now();
        let r = joinall([&first, &second]);
        assert!(matches!(r, Err(JoinAllError::LoopExit(_))), "{r:?}");
        assert!(t.elapsed() < SLACK);
        assert_eq!((a.waiters(), b.waiters()), (1, 1));
        first.kill();
        second.join().unwrap();
        assert!(!a.is_locked() && !b.is_locked());
        assert_eq!((*a.lock().unwrap(), *b.lock().unwrap()), (1, 0));
    });
}
}
// ---------------------------------------------------------------------------
// Lock: lock_tests.py BaseLockTests / LockTests
// ---------------------------------------------------------------------------

common::seeded_tests! {
// lock_tests.py::BaseLockTests::test_acquire_release / test_try_acquire
fn lock_acquire_release_try() {
    let lock = Lock::new(5);
    {
        let mut g = lock.lock().unwrap();
        *g += 1;
        assert!(lock.is_locked());
        assert_eq!(
            lock.lock_timeout(Duration::ZERO).unwrap_err(),
            WaitError::TimedOut
        );
    }
    assert!(!lock.is_locked());
    let g = lock.try_lock().expect("free");
    assert_eq!(*g, 6);
    drop(g);
    assert_eq!(lock.into_inner(), 6);
    let mut lock = Lock::new(vec![1]);
    lock.get_mut().push(2);
    assert_eq!(*lock.lock().unwrap(), [1, 2]);
    assert!(format!("{:?}", lock.lock().unwrap()).contains("[1, 2]"));
}

// lock_tests.py::BaseLockTests::test_try_acquire_contended
fn lock_try_acquire_contended() {
    let lock = Rc::new(Lock::new(()));
    let g = lock.lock().unwrap();
    let l = lock.clone();
    let h = spawn(move || l.try_lock().is_some());
    assert!(!h.join().unwrap());
    assert!(
        lock.is_locked(),
        "a failed try_lock unlocked the holder's lock"
    );
    drop(g);
    // Exactly one guard at a time.
    let a = lock.lock_timeout(Duration::ZERO);
    assert!(a.is_ok());
    assert_eq!(
        lock.lock_timeout(Duration::ZERO).unwrap_err(),
        WaitError::TimedOut
    );
}

// lock_tests.py::BaseLockTests::test_acquire_contended
fn lock_acquire_contended() {
    const N: usize = 5;
    let lock = Rc::new(Lock::new(0));
    let g = lock.lock().unwrap();
    let finished = Rc::new(Cell::new(0));
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let (lock, finished) = (lock.clone(), finished.clone());
            spawn(move || {
                *lock.lock().unwrap() += 1;
                finished.set(finished.get() + 1);
            })
        })
        .collect();
    sleep(5 * MS);
    assert_eq!(finished.get(), 0);
    assert_eq!(lock.waiters(), N);
    drop(g);
    joinall(&hs).unwrap();
    assert_eq!(finished.get(), N);
    assert_eq!(*lock.lock().unwrap(), N);
}

// lock_tests.py::BaseLockTests::test_with: released also when the guarded
// code panics; never poisoned
fn lock_guard_releases_on_panic() {
    let lock = Rc::new(Lock::new(Vec::new()));
    let with = |err: bool| {
        let mut g = lock.lock().unwrap();
        g.push(err);
        if err {
            panic!("TypeError");
        }
    };
    with(false);
    let l = lock.clone();
    spawn(move || drop(l.lock().unwrap())).join().unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| with(true))).is_err());
    assert!(!lock.is_locked());
    let l = lock.clone();
    spawn(move || drop(l.lock().unwrap())).join().unwrap();
    assert_eq!(*lock.lock().unwrap(), [false, true]);
}

// lock_tests.py::LockTests::test_reacquire and test_different_thread: a
// Lock must be released before it is taken again, and another greenlet may
// release it (by dropping the guard it was given)
fn lock_reacquire_waits_and_other_greenlet_releases() {
    let lock = leaked_lock();
    let phase = Rc::new(Cell::new(0));
    let handed: Rc<RefCell<Option<LockGuard<'static, ()>>>> = Rc::new(RefCell::new(None));
    let (p, hd) = (phase.clone(), handed.clone());
    let f = spawn(move || {
        let g = lock.lock().unwrap();
        p.set(1);
        *hd.borrow_mut() = Some(g);
        let _g2 = lock.lock().unwrap();
        p.set(2);
    });
    sleep(5 * MS);
    assert_eq!(phase.get(), 1, "the second lock must wait");
    assert!(lock.is_locked());
    // Release from here, the root greenlet.
    drop(handed.borrow_mut().take());
    f.join().unwrap();
    assert_eq!(phase.get(), 2);
    assert!(!lock.is_locked());
}

// verdant-specific (gevent's LoopExit): main locking twice is told it
// deadlocked itself
fn lock_twice_in_main_is_loop_exit() {
    on_fresh_thread("lock twice", || {
        let lock = Lock::new(());
        let _g = lock.lock().unwrap();
        let t = Instant::now();
        assert!(matches!(lock.lock().unwrap_err(), WaitError::LoopExit(_)));
        assert!(t.elapsed() < SLACK);
        assert_eq!(lock.waiters(), 0);
        assert_eq!(
            lock.lock_timeout(MS).unwrap_err(),
            WaitError::TimedOut,
            "a timed lock is not a deadlock"
        );
    });
}

// verdant-specific: a spawned greenlet that locks twice deadlocks; main,
// joining it, is the one told (LoopExit is raised in main, as in gevent)
fn lock_twice_in_greenlet_main_join_is_loop_exit() {
    on_fresh_thread("lock twice in a greenlet", || {
        let lock = Rc::new(Lock::new(()));
        let l = lock.clone();
        let h = spawn(move || {
            let _a = l.lock().unwrap();
            let _b = l.lock();
            unreachable!("the second lock never returns");
        });
        let err = h.wait().unwrap_err();
        assert_eq!(err.kind(), verdant::JoinErrorKind::LoopExit);
        h.kill();
        assert!(!lock.is_locked(), "the kill released the first lock");
        assert_eq!(lock.waiters(), 0);
    });
}
}
common::seeded_tests! {
// verdant-specific: the Lock docs' example, FIFO across a wait. The
// greenlets line up one at a time (each parks, holding the lock or waiting
// for it, before the next starts), so the order holds for any schedule.
fn lock_fifo_across_waits() {
    let log = Rc::new(Lock::new(Vec::new()));
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let log = log.clone();
            let h = spawn(move || {
                let mut g = log.lock().unwrap();
                g.push(i);
                sleep(MS);
                g.push(i);
            });
            settle();
            h
        })
        .collect();
    assert_eq!(log.waiters(), 2);
    joinall(&hs).unwrap();
    assert_eq!(*log.lock().unwrap(), [0, 0, 1, 1, 2, 2]);
}
}

common::seeded_tests! {
// verdant-specific: lock_timeout gives up, deregisters, and an outer
// timeout is not lost
fn lock_timeout() {
    let lock = Rc::new(Lock::new(()));
    let g = lock.lock().unwrap();
    let t = Instant::now();
    assert_eq!(lock.lock_timeout(SMALL).unwrap_err(), WaitError::TimedOut);
    assert!(t.elapsed() >= SMALL && t.elapsed() < SMALL + SLACK);
    assert_eq!(lock.waiters(), 0);
    let r = with_timeout(MS, || lock.lock_timeout(Duration::from_secs(1)).map(drop));
    assert_eq!(r, Err(Elapsed));
    assert_eq!(lock.waiters(), 0);
    drop(g);
    assert!(!lock.is_locked());
}
}
common::seeded_tests! {
// verdant-specific: kill a greenlet parked in Lock::lock
fn lock_kill_parked_waiter() {
    let lock = Rc::new(Lock::new(0));
    let g = lock.lock().unwrap();
    let drops = Drops::default();
    let (l, tok) = (lock.clone(), drops.token());
    let h = spawn(move || {
        let _tok = tok;
        *l.lock().unwrap() += 100;
    });
    settle();
    assert_eq!(lock.waiters(), 1);
    h.kill();
    assert_eq!(drops.count(), 1);
    assert_eq!(lock.waiters(), 0, "the killed waiter is deregistered");
    drop(g);
    assert!(!lock.is_locked(), "the lock went to a dead waiter");
    assert_eq!(*lock.lock().unwrap(), 0);
    assert!(h.join().unwrap_err().is_killed());
}
}

common::seeded_tests! {
// verdant-specific: the lock handed to a waiter killed in the same tick goes
// to the next waiter
fn lock_kill_waiter_handed_the_lock_passes_it_on() {
    let lock = Rc::new(Lock::new(Vec::new()));
    let g = lock.lock().unwrap();
    let drops = Drops::default();
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let (lock, tok) = (lock.clone(), drops.token());
            let h = spawn(move || {
                let _tok = tok;
                lock.lock().unwrap().push(i);
            });
            settle(); // in line in spawn order, under any schedule
            h
        })
        .collect();
    assert_eq!(lock.waiters(), 3);
    drop(g); // handed to waiter 0
    hs[0].kill();
    joinall(&hs).unwrap();
    assert_eq!(drops.count(), 3);
    assert!(!lock.is_locked());
    assert_eq!(*lock.lock().unwrap(), [1, 2]);
    assert!(hs[0].greenlet().is_dead());
}
}

common::seeded_tests! {
// verdant-specific: a greenlet killed while holding the lock releases it;
// the lock is not poisoned and keeps what the holder wrote
fn lock_not_poisoned_after_holder_killed() {
    let lock = Rc::new(Lock::new(0));
    let drops = Drops::default();
    let (l, tok) = (lock.clone(), drops.token());
    let holder = spawn(move || {
        let _tok = tok;
        let mut g = l.lock().unwrap();
        *g = 7;
        sleep(Duration::from_secs(60));
        *g = 8;
    });
    settle();
    assert!(lock.is_locked());
    // A waiter queued behind the holder gets the lock when it dies.
    let l = lock.clone();
    let waiter = spawn(move || {
        let mut g = l.lock().unwrap();
        *g += 1;
        *g
    });
    settle();
    holder.kill();
    assert_eq!(drops.count(), 1);
    assert_eq!(waiter.join().unwrap(), 8);
    assert!(!lock.is_locked());
    assert_eq!(*lock.lock().unwrap(), 8);
    assert!(holder.join().unwrap_err().is_killed());
}
}

// ---------------------------------------------------------------------------
// RLock: lock_tests.py RLockTests
// ---------------------------------------------------------------------------

common::seeded_tests! {
// lock_tests.py::RLockTests::test_reacquire
fn rlock_reacquire() {
    let lock = RLock::new(Cell::new(0));
    let a = lock.lock().unwrap();
    let b = lock.lock().unwrap();
    assert_eq!(lock.count(), 2);
    drop(b);
    let c = lock.lock().unwrap();
    c.set(c.get() + 1);
    assert_eq!(lock.count(), 2);
    drop(c);
    drop(a);
    assert_eq!(lock.count(), 0);
    assert_eq!(lock.lock().unwrap().get(), 1);
}

// lock_tests.py::RLockTests::test__is_owned
fn rlock_is_owned() {
    let lock = Rc::new(RLock::new(()));
    assert!(!lock.is_owned());
    let a = lock.lock().unwrap();
    assert!(lock.is_owned());
    let b = lock.lock().unwrap();
    assert!(lock.is_owned());
    let l = lock.clone();
    let other = spawn(move || (l.is_owned(), l.count()));
    assert_eq!(other.join().unwrap(), (false, 2));
    drop(b);
    assert!(lock.is_owned());
    drop(a);
    assert!(!lock.is_owned());
}

// lock_tests.py::RLockTests::test_different_thread, adapted: the owner's
// RLock cannot be taken by another greenlet, which waits for it; the owner
// re-enters without waiting, even with that greenlet queued
fn rlock_owned_by_greenlet() {
    let lock = Rc::new(RLock::new(RefCell::new(Vec::new())));
    let a = lock.lock().unwrap();
    let l = lock.clone();
    let timed = spawn(move || l.lock_timeout(5 * MS).map(|_| ()));
    assert_eq!(timed.join().unwrap(), Err(WaitError::TimedOut));
    let l = lock.clone();
    let other = spawn(move || {
        let g = l.lock().unwrap();
        g.borrow_mut().push("other");
        (l.is_owned(), l.count())
    });
    yield_now();
    assert!(format!("{lock:?}").contains("count: 1"), "{lock:?}");
    // Re-entering does not queue behind `other`.
    let t = Instant::now();
    let b = lock.lock().unwrap();
    assert!(t.elapsed() < SLACK);
    assert_eq!(lock.count(), 2);
    b.borrow_mut().push("owner");
    drop(b);
    yield_now();
    assert!(
        !other.is_finished(),
        "released while the owner still holds it"
    );
    drop(a);
    assert_eq!(other.join().unwrap(), (true, 1));
    assert_eq!(lock.count(), 0);
    assert!(!lock.is_owned());
    assert_eq!(*lock.lock().unwrap().borrow(), ["owner", "other"]);
}

// verdant-specific: kill a greenlet parked in RLock::lock, and one handed
// the lock in the same tick
fn rlock_kill_waiters() {
    let lock = Rc::new(RLock::new(RefCell::new(Vec::new())));
    let owner = lock.lock().unwrap();
    let drops = Drops::default();
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let (lock, tok) = (lock.clone(), drops.token());
            spawn(move || {
                let _tok = tok;
                let g = lock.lock().unwrap();
                g.borrow_mut().push((i, lock.is_owned(), lock.count()));
            })
        })
        .collect();
    yield_now();
    // Waiter 2 is killed while parked; waiter 0 right after it was handed
    // the lock.
    hs[2].kill();
    assert_eq!(drops.count(), 1);
    drop(owner);
    hs[0].kill();
    joinall(&hs).unwrap();
    assert_eq!(drops.count(), 3);
    assert_eq!(lock.count(), 0);
    assert!(
        lock.lock_timeout(Duration::ZERO).is_ok(),
        "the lock is not free"
    );
    assert_eq!(*lock.lock().unwrap().borrow(), [(1, true, 1)]);
}
}
common::seeded_tests! {
// verdant-specific: a greenlet killed while holding an RLock twice frees it
fn rlock_kill_holder_releases() {
    let lock = Rc::new(RLock::new(()));
    let l = lock.clone();
    let holder = spawn(move || {
        let _a = l.lock().unwrap();
        let _b = l.lock().unwrap();
        sleep(Duration::from_secs(60));
    });
    settle();
    assert_eq!(lock.count(), 2);
    assert!(!lock.is_owned());
    holder.kill();
    assert_eq!(lock.count(), 0);
    let g = lock.lock_timeout(Duration::ZERO).expect("the lock is free");
    assert!(lock.is_owned());
    drop(g);
}
}
