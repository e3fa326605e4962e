//! `Condition` (a condition variable used with `Lock`): the lock is
//! released while waiting and held again on return, notify wakes in FIFO
//! order, timeouts, and kills while waiting.

mod common;
mod sync_common;
use common::settle;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sync_common::{on_fresh_thread, SLACK, SMALL};
use verdant::sync::{Condition, Lock, WaitError};
use verdant::{joinall, sleep, spawn};

type Shared<T> = Rc<(Lock<T>, Condition)>;

fn shared<T>(v: T) -> Shared<T> {
    Rc::new((Lock::new(v), Condition::new()))
}

common::seeded_tests! {
fn wait_releases_the_lock_and_takes_it_back() {
    on_fresh_thread("release", || {
        let s = shared(0u32);
        let s2 = s.clone();
        let waiter = spawn(move || {
            let (lock, cond) = &*s2;
            let g = lock.lock().unwrap();
            let g = cond.wait(g).unwrap();
            assert!(lock.is_locked(), "held again on return");
            *g
        });
        settle();
        let (lock, cond) = &*s;
        assert_eq!(cond.waiters(), 1);
        // The waiter does not hold the lock while it waits.
        let mut g = lock.try_lock().expect("the lock is free while waiting");
        *g = 7;
        assert!(cond.notify_one());
        // Notified, but it cannot return before the lock is free again.
        sleep(SMALL);
        assert!(!waiter.is_finished());
        drop(g);
        assert_eq!(waiter.join().unwrap(), 7);
        assert!(!lock.is_locked());
    });
}
}

common::seeded_tests! {
fn notify_one_wakes_in_fifo_order_and_notify_all_wakes_every_waiter() {
    on_fresh_thread("fifo", || {
        let s = shared(());
        let order = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let (s, order) = (s.clone(), order.clone());
                let h = spawn(move || {
                    let (lock, cond) = &*s;
                    let g = cond.wait(lock.lock().unwrap()).unwrap();
                    order.borrow_mut().push(i);
                    drop(g);
                });
                settle(); // in line in spawn order, under any schedule
                h
            })
            .collect();
        let (_, cond) = &*s;
        assert_eq!(cond.waiters(), 5);
        assert!(cond.notify_one());
        assert!(cond.notify_one());
        settle();
        // The first two in line were woken; the order they then run in
        // is the schedule's.
        order.borrow_mut().sort();
        assert_eq!(*order.borrow(), [0, 1]);
        assert_eq!(cond.notify_all(), 3);
        joinall(&hs).unwrap();
        order.borrow_mut()[2..].sort();
        assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
        assert!(!cond.notify_one(), "nobody left: a notify is not stored");
    });
}
}

common::seeded_tests! {
fn wait_while_sees_every_item_of_a_producer() {
    on_fresh_thread("producer", || {
        let s = shared(Vec::<u32>::new());
        let c = s.clone();
        let consumer = spawn(move || {
            let (lock, cond) = &*c;
            let mut got = Vec::new();
            loop {
                let mut g = cond
                    .wait_while(lock.lock().unwrap(), |q| q.is_empty())
                    .unwrap();
                let v = g.remove(0);
                drop(g);
                if v == u32::MAX {
                    return got;
                }
                got.push(v);
            }
        });
        for i in 0..100 {
            let (lock, cond) = &*s;
            lock.lock().unwrap().push(i);
            cond.notify_one();
            if i % 7 == 0 {
                sleep(Duration::ZERO); // sometimes let it drain
            }
        }
        let (lock, cond) = &*s;
        lock.lock().unwrap().push(u32::MAX);
        cond.notify_one();
        assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
    });
}

fn timed_wait_gives_up_with_the_lock_held() {
    on_fresh_thread("timeout", || {
        let (lock, cond) = (Lock::new(1), Condition::new());
        let t = Instant::now();
        let (g, r) = cond.wait_timeout(lock.lock().unwrap(), SMALL).unwrap();
        assert!(r.timed_out());
        assert!(t.elapsed() >= SMALL && t.elapsed() < SLACK);
        assert!(lock.is_locked());
        assert_eq!(*g, 1);
        drop(g);
        assert_eq!(cond.waiters(), 0, "the timed-out waiter left the line");
    });
}

fn timed_wait_while_returns_early_once_the_condition_is_false() {
    on_fresh_thread("timeout while", || {
        let s = shared(false);
        let s2 = s.clone();
        spawn(move || {
            sleep(SMALL);
            let (lock, cond) = &*s2;
            *lock.lock().unwrap() = true;
            cond.notify_all();
        });
        let (lock, cond) = &*s;
        let t = Instant::now();
        let (g, r) = cond
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(5), |ready| {
                !*ready
            })
            .unwrap();
        assert!(!r.timed_out());
        assert!(*g);
        assert!(t.elapsed() < SLACK);
    });
}

fn a_kill_while_waiting_leaves_the_lock_free_and_the_line_empty() {
    on_fresh_thread("kill", || {
        let s = shared(0);
        let s2 = s.clone();
        let h = spawn(move || {
            let (lock, cond) = &*s2;
            let _g = cond.wait(lock.lock().unwrap()).unwrap();
            unreachable!("killed while waiting");
        });
        sleep(Duration::ZERO);
        h.kill();
        assert!(h.join().unwrap_err().is_killed());
        let (lock, cond) = &*s;
        assert!(!lock.is_locked());
        assert_eq!(cond.waiters(), 0);
        assert!(!cond.notify_one());
    });
}
}
common::seeded_tests! {
fn a_notified_waiter_killed_before_it_runs_passes_the_notify_on() {
    on_fresh_thread("pass on", || {
        let s = shared(());
        let waiter = |s: Shared<()>| {
            spawn(move || {
                let (lock, cond) = &*s;
                drop(cond.wait(lock.lock().unwrap()).unwrap());
            })
        };
        let first = waiter(s.clone());
        settle(); // `first` is first in line, under any schedule
        let second = waiter(s.clone());
        settle();
        let (_, cond) = &*s;
        assert!(cond.notify_one()); // reaches `first` ...
        first.kill(); // ... which dies before it runs
        second
            .wait_timeout(SLACK)
            .map(|done| assert!(done, "the notify should pass to the second waiter"))
            .unwrap();
    });
}
}

common::seeded_tests! {
fn a_wait_nothing_can_end_reports_loop_exit_without_the_lock() {
    on_fresh_thread("loop exit", || {
        let (lock, cond) = (Lock::new(()), Condition::new());
        assert!(matches!(
            cond.wait(lock.lock().unwrap()).unwrap_err(),
            WaitError::LoopExit(_)
        ));
        assert!(!lock.is_locked());
    });
}
}
