//! `wait::iwait`, `wait_any`, `wait_all` (gevent's `iwait` and `wait`) over
//! greenlets, events and async results: completion order (also for objects
//! that become ready while the caller is busy), timeouts, `LoopExit`, kills
//! while waiting, and nothing left registered afterwards.

mod common;
mod sync_common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use sync_common::{on_fresh_thread, SLACK, SMALL};
use verdant::sync::{AsyncResult, Event, WaitError};
use verdant::{iwait, wait_all, wait_any, Waitable};
use verdant::{sleep, spawn, JoinHandle};

fn sleeper(ms: u64) -> JoinHandle<u64> {
    spawn(move || {
        sleep(Duration::from_millis(ms));
        ms
    })
}

common::seeded_tests! {
fn handles_come_out_in_completion_order() {
    on_fresh_thread("order", || {
        let hs: Vec<_> = [40u64, 10, 30, 20].into_iter().map(sleeper).collect();
        let got: Vec<(usize, u64)> = iwait(hs).map(|(i, h)| (i, h.join().unwrap())).collect();
        assert_eq!(got, [(1, 10), (3, 20), (2, 30), (0, 40)]);
    });
}

fn order_is_kept_for_objects_that_finish_while_the_caller_is_busy() {
    on_fresh_thread("busy caller", || {
        // Listed first, finishes last: a scan in list order would get
        // these two the wrong way round.
        let late = sleeper(30);
        let early = sleeper(10);
        let first = sleeper(1);
        let mut it = iwait([&late, &early, &first]);
        assert_eq!(it.next().map(|(i, _)| i), Some(2));
        sleep(Duration::from_millis(60)); // both others end meanwhile
        assert!(late.is_finished() && early.is_finished());
        let rest: Vec<usize> = it.map(|(i, _)| i).collect();
        assert_eq!(rest, [1, 0], "completion order, not list order");
    });
}

fn ready_objects_come_first_in_the_order_given() {
    on_fresh_thread("ready first", || {
        let a = Event::new();
        let b = Event::new();
        let c = Event::new();
        c.set();
        a.set();
        let got: Vec<usize> = iwait([&a, &b, &c]).timeout(SMALL).map(|(i, _)| i).collect();
        assert_eq!(got, [0, 2]);
    });
}

fn mixed_kinds_and_an_event_set_then_cleared() {
    on_fresh_thread("mixed", || {
        let ev = Rc::new(Event::new());
        let res: Rc<AsyncResult<&str>> = Rc::new(AsyncResult::new());
        let (e, r) = (ev.clone(), res.clone());
        let worker = spawn(move || {
            sleep(Duration::from_millis(5));
            r.set("done").unwrap();
            sleep(Duration::from_millis(5));
            e.set();
            e.clear(); // set, then cleared before anyone looks
        });
        let objs: [&dyn Waitable; 3] = [&*ev, &*res, &worker];
        let got: Vec<usize> = iwait(objs).timeout(SLACK).map(|(i, _)| i).collect();
        assert_eq!(got, [1, 0, 2]);
        assert!(!ev.is_set());
    });
}

fn timeout_stops_and_gives_back_the_rest() {
    on_fresh_thread("timeout", || {
        let slow = sleeper(5_000);
        let quick = sleeper(1);
        // The clock starts before the timeout's does: read after it, a
        // moment's preemption in between (a busy CI host, under virtual time
        // where the hub lands exactly on the deadline) made the wait look
        // shorter than SMALL.
        let t = Instant::now();
        let mut it = iwait(vec![slow, quick]).timeout(SMALL);
        let (i, h) = it.next().unwrap();
        assert_eq!((i, h.join().unwrap()), (1, 1));
        assert!(it.next().is_none());
        assert!(t.elapsed() >= SMALL && t.elapsed() < SLACK);
        assert_eq!(it.stopped(), Some(WaitError::TimedOut));
        let rest = it.remaining();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, 0);
        rest[0].1.kill();
    });
}

fn an_object_nothing_can_make_ready_ends_with_loop_exit() {
    on_fresh_thread("loop exit", || {
        let never = Event::new();
        let h = spawn(|| 3);
        let objs: [&dyn Waitable; 2] = [&never, &h];
        let mut it = iwait(objs);
        assert_eq!(it.next().map(|(i, _)| i), Some(1));
        assert!(it.next().is_none());
        assert!(matches!(it.stopped(), Some(WaitError::LoopExit(_))));
        assert!(matches!(
            wait_all([&never], None),
            Err(WaitError::LoopExit(_))
        ));
    });
}

fn wait_any_and_wait_all() {
    on_fresh_thread("any all", || {
        let hs: Vec<_> = [30u64, 5, 15].into_iter().map(sleeper).collect();
        assert_eq!(wait_any(&hs, SLACK), Ok(1));
        assert!(!hs[0].is_finished());
        let t = Instant::now();
        wait_all(&hs, None).unwrap();
        assert!(hs.iter().all(|h| h.is_finished()));
        assert!(t.elapsed() < SLACK);
        let never = Event::new();
        assert_eq!(wait_any([&never], SMALL), Err(WaitError::TimedOut));
        assert_eq!(wait_all([&never], SMALL), Err(WaitError::TimedOut));
        assert_eq!(wait_all(Vec::<&Event>::new(), None), Ok(()));
    });
}
}
#[test]
#[should_panic(expected = "wait_any over no object")]
fn wait_any_over_nothing_panics() {
    let _ = wait_any(Vec::<&Event>::new(), None);
}

common::seeded_tests! {
fn a_kill_while_in_iwait_unwinds_and_leaves_nothing_behind() {
    on_fresh_thread("kill", || {
        let ev = Rc::new(Event::new());
        let target = sleeper(10_000);
        let (e, t) = (ev.clone(), target.greenlet().clone());
        let waiter = spawn(move || {
            let _ = e; // keeps the event alive in here too
            let objs: [&dyn Waitable; 1] = [&*e];
            let _ = wait_any(objs, None);
            drop(t);
            unreachable!("killed while waiting");
        });
        common::settle(); // the waiter parks in wait_any
        waiter.kill();
        assert!(waiter.join().unwrap_err().is_killed());
        // The event still works for others (its registration was dropped:
        // the unit tests in runtime/src/wait.rs count them).
        let e = ev.clone();
        let other = spawn(move || e.wait().is_ok());
        common::settle(); // the other parks in wait
        assert_eq!(ev.set(), 1);
        assert!(other.join().unwrap());
        target.kill();
    });
}
}
