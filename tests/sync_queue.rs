//! Port of gevent's `src/gevent/tests/test__queue.py`, rewritten for
//! [`verdant::sync::Queue`], [`LifoQueue`], [`PriorityQueue`] and
//! [`JoinableQueue`]; gevent's `Channel` is a `Queue::bounded(0)`
//! (rendezvous) here, and its `shutdown()` is [`Queue::close`].
//!
//! Ported: `UsesOnlyOneItemMixin` (`test_put_nowait_simple`,
//! `test_put_nowait_unlock`, `test_send_last`) for `Queue` and the channel,
//! `TestQueue` (`test_get_nowait_simple`, `test_get_nowait_unlock`,
//! `test_send_first`, `test_max_size`, `test_multiple_waiters`,
//! `test_waiters_that_cancel`, `test_senders_that_die`,
//! `test_two_waiters_one_dies`, `test_two_bogus_waiters`), `TestChannel`
//! (`test_get_nowait_unlock_channel`, `test_zero_max_size`, `test_send` and
//! `test_wait`, with verdant's interleaving: see those tests),
//! `TestJoinableQueue` (`test_task_done`, `test_issue_45`,
//! `test_shutdown_all_methods_in_one_thread` as `close`), and
//! `TestGetInterrupt*` / `TestPutInterrupt*` for every kind (a timed
//! get/put gives up after its timeout, `with_timeout` interrupts an untimed
//! one, an outer timeout is not lost).
//!
//! Skipped, and why:
//! * `test_peek_empty`, `test_peek_multi_greenlet`, `test_send_first`'s
//!   `peek`: verdant's queues have no `peek`.
//! * `TestChannel::test_iterable`: queues are not iterators (and verdant has
//!   no `StopIteration` sentinel; `close` ends a consumer loop instead).
//! * `test_init_and_bottleneck_methods`, `test_subclass_assign_queue`,
//!   `test_subscript`, `test_weak_reference`: Python subclassing hooks,
//!   generics syntax and weakrefs.
//! * `test_shutdown_immediate_all_methods_in_one_thread`: `close` has no
//!   "immediate" mode that discards the items.
//! * `TestGetInterruptSimpleQueue`: no `SimpleQueue`.
//!
//! verdant-specific additions: FIFO/LIFO/priority order with waiting
//! putters, putters served in arrival order, rendezvous timeouts giving the
//! item back, `TaskDoneError`, `close` waking every waiter (putters get
//! their items back, getters drain and then see `Closed`), kills of
//! greenlets parked in `get`, `put` (full) and `join` (destructors ran, the
//! waiter is deregistered, an item handed to a getter killed in that same
//! tick goes to the next getter or back to the front of the queue, an item
//! taken from a putter killed in that same tick stays in the queue), and the
//! reliability table's IO-14 `deadlock_detected` (two greenlets each waiting
//! on a queue the other should fill: the root's join fails with `LoopExit`
//! within 10 ms, not a hang).
//!
//! Timing bounds are generous (`SLACK`) except IO-14's; tests that expect
//! `LoopExit` run on a fresh OS thread bounded by `HANG`.

use std::cell::RefCell;
use std::fmt::Debug;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::sync::{
    AsyncResult, JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue, TakeError,
    TaskDoneError, WaitError,
};
use verdant::{
    joinall, sleep, spawn, with_timeout, yield_now, Elapsed, Hub, JoinAllError, JoinErrorKind,
};

mod common;
mod sync_common;
use common::settle;
use common::Rng;
use sync_common::*;

/// Reliability table IO-14: a deadlock is reported within this.
const IO14_BOUND: Duration = Duration::from_millis(10);

/// A queue item whose drops are counted.
struct Tracked {
    id: u32,
    _drop: DropToken,
}

impl Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.id)
    }
}

fn tracked(id: u32, drops: &Drops) -> Tracked {
    Tracked {
        id,
        _drop: drops.token(),
    }
}

/// `check_generic_wait` for `get` on an empty queue, then for `put` on a
/// full one (holding one item), of any queue kind.
macro_rules! check_interrupts {
    ($empty:expr, $full:expr) => {{
        let q = $empty;
        check_generic_wait(
            |t| q.get_timeout(t).map(drop),
            || q.get().map(drop),
            |e| *e == TakeError::Wait(WaitError::TimedOut),
        );
        assert_eq!(q.getters(), 0);
        let q = $full;
        check_generic_wait(
            |t| q.put_timeout(2, t),
            || q.put(3),
            |e| matches!(e, PutError::Wait(WaitError::TimedOut, 2)),
        );
        assert_eq!(q.putters(), 0);
        assert_eq!(q.len(), if q.capacity() == Some(0) { 0 } else { 1 });
    }};
}

// ---------------------------------------------------------------------------
// TestQueue / UsesOnlyOneItemMixin
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_simple (Queue(1)
// and Channel)
fn queue_put_nowait_simple() {
    let q = Queue::bounded(1);
    assert_eq!(q.try_put(2), Ok(()));
    assert_eq!(q.try_put(3), Err(PutError::Full(3)));
    assert_eq!(q.len(), 1);
    let ch = Queue::bounded(0);
    assert_eq!(ch.try_put(2), Err(PutError::Full(2)));
    assert_eq!(ch.try_put(3), Err(PutError::Full(3)));
    assert!(ch.is_empty() && ch.is_full());
    assert_eq!(format!("{:?}", PutError::Full(1)), "Full(..)");
    assert_eq!(PutError::Closed(5).into_inner(), 5);
}

// test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_unlock: put_nowait
// hands the item to a waiting getter (Queue and Channel)
fn queue_put_nowait_unlock() {
    for q in [Queue::new(), Queue::bounded(0)] {
        let rendezvous = q.capacity() == Some(0);
        let q = Rc::new(q);
        let q2 = q.clone();
        let p = spawn(move || q2.get());
        assert!(q.is_empty());
        assert_eq!(q.is_full(), rendezvous);
        sleep(MS);
        assert_eq!(q.getters(), 1);
        assert_eq!(q.try_put(10), Ok(()));
        assert!(!p.is_finished());
        sleep(MS);
        assert!(p.is_finished());
        assert_eq!(p.join().unwrap(), Ok(10));
        assert!(q.is_empty());
        assert_eq!(q.is_full(), rendezvous);
    }
}

// test__queue.py::UsesOnlyOneItemMixin::test_send_last
fn queue_send_last() {
    for q in [Queue::new(), Queue::bounded(0)] {
        let q = Rc::new(q);
        let q2 = q.clone();
        let p = spawn(move || {
            assert_eq!(with_timeout(100 * MS, || q2.get()), Ok(Ok("hi2")));
            "OK"
        });
        sleep(10 * MS);
        q.put("hi2").unwrap();
        sleep(10 * MS);
        assert!(p.is_finished());
        assert_eq!(p.join().unwrap(), "OK");
    }
}

// test__queue.py::TestQueue::test_get_nowait_simple
fn queue_get_nowait_simple() {
    let q = Queue::bounded(1);
    q.put(4).unwrap();
    assert_eq!(q.try_get(), Ok(4));
    assert_eq!(q.try_get(), Err(TakeError::Empty));
}
}
common::seeded_tests! {
// test__queue.py::TestQueue::test_get_nowait_unlock: get_nowait lets a
// waiting putter in
fn queue_get_nowait_unlock() {
    let q = Rc::new(Queue::bounded(1));
    let q2 = q.clone();
    let p = spawn(move || q2.put(5));
    assert!(q.is_empty());
    settle();
    assert!(q.is_full());
    assert_eq!(q.try_get(), Ok(5));
    settle();
    assert!(q.is_empty());
    assert!(p.is_finished());
    assert_eq!(p.join().unwrap(), Ok(()));

    // With a putter waiting behind a full queue: it moves in at once.
    let q = Rc::new(Queue::bounded(1));
    q.put(1).unwrap();
    let q2 = q.clone();
    let p = spawn(move || q2.put(2));
    settle();
    assert_eq!(q.putters(), 1);
    assert_eq!(q.try_get(), Ok(1));
    assert_eq!(q.putters(), 0);
    assert_eq!(q.len(), 1, "the waiting putter's item moved in");
    assert_eq!(p.join().unwrap(), Ok(()));
    assert_eq!(q.try_get(), Ok(2));
}
}

common::seeded_tests! {
// test__queue.py::TestQueue::test_send_first
fn queue_send_first() {
    let q = Queue::new();
    let switches = Hub::current().switch_count();
    q.put("hi").unwrap();
    assert_eq!(q.get(), Ok("hi"));
    assert_eq!(
        Hub::current().switch_count(),
        switches,
        "no switch expected"
    );
}
}
common::seeded_tests! {
// test__queue.py::TestQueue::test_max_size
fn queue_max_size() {
    let q = Rc::new(Queue::bounded(2));
    let results = Rc::new(RefCell::new(Vec::new()));
    let (q2, r) = (q.clone(), results.clone());
    let p = spawn(move || {
        for item in ["a", "b", "c"] {
            q2.put(item).unwrap();
            r.borrow_mut().push(item);
        }
        "OK"
    });
    settle();
    assert_eq!(*results.borrow(), ["a", "b"]);
    assert_eq!(q.get(), Ok("a"));
    settle();
    assert_eq!(*results.borrow(), ["a", "b", "c"]);
    assert_eq!(q.get(), Ok("b"));
    assert_eq!(q.get(), Ok("c"));
    assert!(p.is_finished());
    assert_eq!(p.join().unwrap(), "OK");
}
}

common::seeded_tests! {
// test__queue.py::TestQueue::test_multiple_waiters: each put wakes one
// getter, in the order they came
fn queue_multiple_waiters() {
    let q = Rc::new(Queue::new());
    let sendings = ["1", "2", "3", "4"];
    let evts: Vec<Rc<AsyncResult<&str>>> = sendings.iter().map(|_| Rc::default()).collect();
    let hs: Vec<_> = evts
        .iter()
        .map(|evt| {
            let (q, evt) = (q.clone(), evt.clone());
            let h = spawn(move || evt.set(q.get().unwrap()).unwrap());
            common::settle(); // it waits in get before the next arrives
            h
        })
        .collect();
    sleep(10 * MS);
    assert_eq!(q.getters(), 4);
    let collect_pending = || evts.iter().filter(|e| e.ready()).count();
    q.put(sendings[0]).unwrap();
    common::settle();
    assert_eq!(collect_pending(), 1);
    q.put(sendings[1]).unwrap();
    common::settle();
    assert_eq!(collect_pending(), 2);
    q.put(sendings[2]).unwrap();
    q.put(sendings[3]).unwrap();
    joinall(&hs).unwrap();
    assert_eq!(collect_pending(), 4);
    let got: Vec<_> = evts.iter().map(|e| e.get().unwrap()).collect();
    assert_eq!(got, sendings, "getters are served in arrival order");
}
}

/// `do_receive` of the gevent tests: a get under a zero timeout.
fn do_receive(q: Rc<Queue<&'static str>>, evt: Rc<AsyncResult<&'static str>>) {
    match with_timeout(Duration::ZERO, || q.get()) {
        Ok(r) => evt.set(r.unwrap()).unwrap(),
        Err(Elapsed) => evt.set("timed out").unwrap(),
    }
}

common::seeded_tests! {
// test__queue.py::TestQueue::test_waiters_that_cancel
fn queue_waiters_that_cancel() {
    let q = Rc::new(Queue::new());
    let evt = Rc::new(AsyncResult::new());
    let (q2, e2) = (q.clone(), evt.clone());
    let _h = spawn(move || do_receive(q2, e2));
    assert_eq!(evt.get(), Ok("timed out"));
    q.put("hi").unwrap();
    assert_eq!(q.get(), Ok("hi"));
}

// test__queue.py::TestQueue::test_senders_that_die
fn queue_senders_that_die() {
    let q = Rc::new(Queue::new());
    let q2 = q.clone();
    let _h = spawn(move || q2.put("sent").unwrap());
    assert_eq!(q.get(), Ok("sent"));
}

// test__queue.py::TestQueue::test_two_waiters_one_dies
fn queue_two_waiters_one_dies() {
    let q = Rc::new(Queue::new());
    let dying_evt: Rc<AsyncResult<&str>> = Rc::new(AsyncResult::new());
    let waiting_evt: Rc<AsyncResult<&str>> = Rc::new(AsyncResult::new());
    let (q2, e2) = (q.clone(), dying_evt.clone());
    let _d = spawn(move || do_receive(q2, e2));
    let (q2, e2) = (q.clone(), waiting_evt.clone());
    let _w = spawn(move || e2.set(q2.get().unwrap()).unwrap());
    sleep(10 * MS);
    q.put("hi").unwrap();
    assert_eq!(dying_evt.get(), Ok("timed out"));
    assert_eq!(waiting_evt.get(), Ok("hi"));
}

// test__queue.py::TestQueue::test_two_bogus_waiters
fn queue_two_bogus_waiters() {
    let q = Rc::new(Queue::new());
    let e1 = Rc::new(AsyncResult::new());
    let e2 = Rc::new(AsyncResult::new());
    let (qa, ea) = (q.clone(), e1.clone());
    let _a = spawn(move || do_receive(qa, ea));
    let (qb, eb) = (q.clone(), e2.clone());
    let _b = spawn(move || do_receive(qb, eb));
    sleep(10 * MS);
    q.put("sent").unwrap();
    assert_eq!(e1.get(), Ok("timed out"));
    assert_eq!(e2.get(), Ok("timed out"));
    assert_eq!(q.get(), Ok("sent"));
    assert_eq!(q.getters(), 0);
}

// test__queue.py::TestGetInterrupt* / TestPutInterrupt* (Queue, Joinable,
// Lifo, Priority, Channel)
fn queue_get_and_put_interrupts() {
    check_interrupts!(Queue::<i32>::new(), {
        let q = Queue::bounded(1);
        q.put(1).unwrap();
        q
    });
    check_interrupts!(JoinableQueue::<i32>::new(), {
        let q = JoinableQueue::bounded(1);
        q.put(1).unwrap();
        q
    });
    check_interrupts!(LifoQueue::<i32>::new(), {
        let q = LifoQueue::bounded(1);
        q.put(1).unwrap();
        q
    });
    check_interrupts!(PriorityQueue::<i32>::new(), {
        let q = PriorityQueue::bounded(1);
        q.put(1).unwrap();
        q
    });
    check_interrupts!(Queue::<i32>::bounded(0), Queue::<i32>::bounded(0));
}
}
// ---------------------------------------------------------------------------
// TestChannel: Queue::bounded(0), a rendezvous
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__queue.py::TestChannel::test_get_nowait_unlock_channel
fn channel_get_nowait_unlock() {
    let q = Rc::new(Queue::bounded(0));
    let q2 = q.clone();
    let p = spawn(move || q2.put(5));
    assert!(q.is_empty() && q.is_full());
    sleep(MS);
    assert!(q.is_empty() && q.is_full());
    assert_eq!(q.putters(), 1);
    assert_eq!(q.try_get(), Ok(5));
    sleep(MS);
    assert!(q.is_empty() && q.is_full());
    assert!(p.is_finished());
    assert_eq!(p.join().unwrap(), Ok(()));
}

// test__queue.py::TestChannel::test_zero_max_size: put returns once a
// getter took the item
fn channel_zero_max_size() {
    let q = Rc::new(Queue::bounded(0));
    let e1: Rc<AsyncResult<&str>> = Rc::new(AsyncResult::new());
    let e2: Rc<AsyncResult<&str>> = Rc::new(AsyncResult::new());
    let (q1, ev1) = (q.clone(), e1.clone());
    let p1 = spawn(move || {
        q1.put("hi").unwrap();
        ev1.set("done").unwrap();
    });
    sleep(MS);
    assert!(!e1.ready());
    assert_eq!(q.len(), 0, "a rendezvous holds nothing");
    let (q2, ev2) = (q.clone(), e2.clone());
    let p2 = spawn(move || ev2.set(q2.get().unwrap()).unwrap());
    assert_eq!(e2.get(), Ok("hi"));
    assert_eq!(e1.get(), Ok("done"));
    let r = with_timeout(Duration::ZERO, || joinall([&p1, &p2]));
    assert!(matches!(r, Ok(Ok(()))), "{r:?}");
}

// test__queue.py::TestChannel::test_send, with verdant's interleaving: a
// put to a waiting getter hands the item over and returns without
// switching, so "sent world" comes before the getter logs "world" (gevent
// switches to the getter first)
fn channel_send() {
    let channel = Rc::new(Queue::bounded(0));
    let events = Rc::new(RefCell::new(Vec::new()));
    let (ch, ev) = (channel.clone(), events.clone());
    let g = spawn(move || {
        let a = ch.get().unwrap();
        ev.borrow_mut().push(a);
        let b = ch.get().unwrap();
        ev.borrow_mut().push(b);
    });
    events.borrow_mut().push("sending");
    channel.put("hello").unwrap();
    events.borrow_mut().push("sent hello");
    channel.put("world").unwrap();
    events.borrow_mut().push("sent world");
    g.join().unwrap();
    assert_eq!(
        *events.borrow(),
        ["sending", "hello", "sent hello", "sent world", "world"]
    );
}
}
// test__queue.py::TestChannel::test_wait, with verdant's interleaving (the
// putter is not switched away from when a waiting getter takes its item)
#[test]
fn channel_wait() {
    let channel = Rc::new(Queue::bounded(0));
    let events = Rc::new(RefCell::new(Vec::new()));
    let (ch, ev) = (channel.clone(), events.clone());
    let g = spawn(move || {
        ev.borrow_mut().push("sending hello");
        ch.put("hello").unwrap();
        ev.borrow_mut().push("sending world");
        ch.put("world").unwrap();
        ev.borrow_mut().push("sent world");
    });
    events.borrow_mut().push("waiting");
    let a = channel.get().unwrap();
    events.borrow_mut().push(a);
    let b = channel.get().unwrap();
    events.borrow_mut().push(b);
    assert_eq!(
        *events.borrow(),
        [
            "waiting",
            "sending hello",
            "sending world",
            "hello",
            "world"
        ]
    );
    sleep(Duration::ZERO);
    assert_eq!(events.borrow().last(), Some(&"sent world"));
    g.join().unwrap();
}

common::seeded_tests! {
// verdant-specific: a rendezvous put that times out gives its item back
fn channel_put_timeout_gives_item_back() {
    let drops = Drops::default();
    let q = Queue::bounded(0);
    let t = Instant::now();
    let err = q.put_timeout(tracked(1, &drops), SMALL).unwrap_err();
    assert!(t.elapsed() >= SMALL);
    assert!(
        matches!(err, PutError::Wait(WaitError::TimedOut, _)),
        "{err:?}"
    );
    let item = err.into_inner();
    assert_eq!(item.id, 1);
    assert_eq!(drops.count(), 0, "the item came back, not dropped");
    assert_eq!(q.putters(), 0);
    assert_eq!(q.try_get().unwrap_err(), TakeError::Empty);
}
}
// ---------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__queue.py::TestQueue / TestLifoQueue / TestPriorityQueue: each kind
// keeps its order, also for items that waited in put
fn queue_orders() {
    let q = Queue::new();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    assert_eq!(
        (0..5).map(|_| q.get().unwrap()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    let q = LifoQueue::new();
    for i in 1..=3 {
        q.put(i).unwrap();
    }
    assert_eq!(
        (0..3).map(|_| q.get().unwrap()).collect::<Vec<_>>(),
        [3, 2, 1]
    );

    let q = PriorityQueue::new();
    for p in [5, 1, 4, 2, 3] {
        q.put((p, format!("job{p}"))).unwrap();
    }
    let got: Vec<_> = (0..5).map(|_| q.get().unwrap().0).collect();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    let q = PriorityQueue::new();
    for p in [2, 3, 1] {
        q.put(std::cmp::Reverse(p)).unwrap();
    }
    assert_eq!(q.get().unwrap().0, 3, "Reverse gives the largest first");
}
}
common::seeded_tests! {
// verdant-specific: putters waiting on a full queue are served in arrival
// order, and their items keep the queue's order
fn queue_putters_fifo_when_full() {
    let q = Rc::new(Queue::bounded(1));
    q.put(0).unwrap();
    let hs: Vec<_> = (1..=4)
        .map(|i| {
            let q = q.clone();
            let h = spawn(move || q.put(i));
            settle();
            h
        })
        .collect();
    assert_eq!(q.putters(), 4);
    assert_eq!(
        q.try_put(99),
        Err(PutError::Full(99)),
        "a newcomer overtook the putters"
    );
    let got: Vec<_> = (0..5).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    for h in hs {
        assert_eq!(h.join().unwrap(), Ok(()));
    }

    let q = Rc::new(PriorityQueue::bounded(2));
    q.put(5).unwrap();
    q.put(6).unwrap();
    let p = {
        let q = q.clone();
        spawn(move || q.put(1))
    };
    settle();
    assert_eq!(q.get(), Ok(5));
    assert_eq!(
        q.get(),
        Ok(1),
        "the waiting putter's item took its place by priority"
    );
    assert_eq!(q.get(), Ok(6));
    p.join().unwrap().unwrap();
}
}

// ---------------------------------------------------------------------------
// JoinableQueue
// ---------------------------------------------------------------------------

common::seeded_tests! {
// test__queue.py::TestJoinableQueue::test_task_done
fn joinable_task_done() {
    let channel = Rc::new(JoinableQueue::new());
    let ch = channel.clone();
    let _p = spawn(move || ch.put("X").unwrap());
    assert_eq!(channel.get(), Ok("X"));
    assert_eq!(channel.unfinished(), 1);
    channel.task_done().unwrap();
    assert_eq!(channel.unfinished(), 0);
    assert_eq!(channel.task_done(), Err(TaskDoneError));
    assert!(TaskDoneError.to_string().contains("too many"));
}

// test__queue.py::TestJoinableQueue::test_issue_45: join returns at once
// (without a switch) if nothing was put
fn joinable_join_without_jobs() {
    let q: JoinableQueue<u8> = JoinableQueue::new();
    let switches = Hub::current().switch_count();
    q.join().unwrap();
    q.join_timeout(Duration::ZERO).unwrap();
    assert_eq!(Hub::current().switch_count(), switches);
}
}
common::seeded_tests! {
// verdant-specific: join waits until every task is done; items handed
// straight to a getter count too
fn joinable_join_waits_for_task_done() {
    let q = Rc::new(JoinableQueue::new());
    let done = Rc::new(RefCell::new(Vec::new()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            spawn(move || {
                while let Ok(job) = q.get() {
                    sleep(MS);
                    done.borrow_mut().push(job);
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    settle();
    assert_eq!(q.getters(), 2);
    for job in 0..6 {
        q.put(job).unwrap();
    }
    assert_eq!(
        q.unfinished(),
        6,
        "jobs handed straight to a getter are counted"
    );
    assert_eq!(q.join_timeout(Duration::ZERO), Err(WaitError::TimedOut));
    q.join().unwrap();
    assert_eq!(q.unfinished(), 0);
    let mut d = done.borrow().clone();
    d.sort_unstable();
    assert_eq!(d, [0, 1, 2, 3, 4, 5]);
    q.close();
    joinall(&workers).unwrap();
}
}

common::seeded_tests! {
// verdant-specific (gevent's LoopExit): joining tasks no one will finish
fn joinable_join_deadlock_is_loop_exit() {
    on_fresh_thread("join deadlock", || {
        let q = JoinableQueue::new();
        q.put(1).unwrap();
        let t = Instant::now();
        assert!(matches!(q.join(), Err(WaitError::LoopExit(_))));
        assert!(t.elapsed() < SLACK);
        q.get().unwrap();
        q.task_done().unwrap();
        q.join().unwrap();
    });
}

// test__queue.py::TestJoinableQueue::test_shutdown_all_methods_in_one_thread
// (immediate=False), as close: puts fail, gets drain, then Closed
fn joinable_close_drains_then_closed() {
    let q = JoinableQueue::new();
    q.put("L").unwrap();
    q.try_put("O").unwrap();
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.put("E"), Err(PutError::Closed("E")));
    assert_eq!(q.try_put("W"), Err(PutError::Closed("W")));
    assert_eq!(q.get(), Ok("L"));
    q.task_done().unwrap();
    assert_eq!(q.get(), Ok("O"));
    q.task_done().unwrap();
    q.join().unwrap();
    assert_eq!(q.get(), Err(TakeError::Closed));
    assert_eq!(q.try_get(), Err(TakeError::Closed));
    assert_eq!(
        q.get_timeout(Duration::from_secs(1)),
        Err(TakeError::Closed)
    );
    assert!(TakeError::Closed.to_string().contains("closed"));
}
}
// ---------------------------------------------------------------------------
// close
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: close wakes every putter waiting on a full queue with
// its own item back, and getters then drain what is left
fn close_wakes_putters_with_their_items() {
    let drops = Drops::default();
    let q = Rc::new(Queue::bounded(1));
    q.put(tracked(0, &drops)).unwrap();
    let putters: Vec<_> = (1..=2)
        .map(|i| {
            let (q, item) = (q.clone(), tracked(i, &drops));
            spawn(move || match q.put(item) {
                Err(PutError::Closed(back)) => back.id,
                other => panic!("expected Closed with the item, got {other:?}"),
            })
        })
        .collect();
    settle();
    assert_eq!(q.putters(), 2);
    q.close();
    assert_eq!(q.putters(), 0);
    let got: Vec<_> = putters.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, [1, 2], "each putter got its own item back");
    assert_eq!(
        drops.count(),
        2,
        "the returned items were dropped by their putters"
    );
    assert_eq!(q.get().unwrap().id, 0);
    assert_eq!(q.get().unwrap_err(), TakeError::Closed);
    assert_eq!(drops.count(), 3);

    // A rendezvous putter too.
    let ch = Rc::new(Queue::bounded(0));
    let c = ch.clone();
    let p = spawn(move || c.put(7));
    settle();
    ch.close();
    assert_eq!(p.join().unwrap(), Err(PutError::Closed(7)));
}
}

common::seeded_tests! {
// verdant-specific: close wakes every getter; they see Closed (after
// draining anything left)
fn close_wakes_getters() {
    let q: Rc<Queue<u32>> = Rc::new(Queue::new());
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            spawn(move || q.get())
        })
        .collect();
    settle();
    assert_eq!(q.getters(), 3);
    q.close();
    assert_eq!(q.getters(), 0);
    for h in getters {
        assert_eq!(h.join().unwrap(), Err(TakeError::Closed));
    }
    // Items put before the close are drained first, by blocking gets too.
    let q = Rc::new(Queue::new());
    for i in 0..3 {
        q.put(i).unwrap();
    }
    q.close();
    let q2 = q.clone();
    let drained = spawn(move || {
        let mut v = Vec::new();
        while let Ok(i) = q2.get() {
            v.push(i);
        }
        (v, q2.get())
    });
    assert_eq!(
        drained.join().unwrap(),
        (vec![0, 1, 2], Err(TakeError::Closed))
    );
}
}

// ---------------------------------------------------------------------------
// Kills
// ---------------------------------------------------------------------------

common::seeded_tests! {
// verdant-specific: kill a greenlet parked in Queue::get
fn kill_parked_getter() {
    let q: Rc<Queue<Tracked>> = Rc::new(Queue::new());
    let drops = Drops::default();
    let (q2, tok) = (q.clone(), drops.token());
    let h = spawn(move || {
        let _tok = tok;
        q2.get()
    });
    settle();
    assert_eq!(q.getters(), 1);
    h.kill();
    assert_eq!(drops.count(), 1, "destructors ran");
    assert_eq!(q.getters(), 0, "the killed getter is deregistered");
    assert!(h.join().unwrap_err().is_killed());
    // The next item goes into the queue, not to the dead getter.
    q.put(tracked(1, &drops)).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_get().unwrap().id, 1);
    assert_eq!(drops.count(), 2);
}
}

common::seeded_tests! {
// verdant-specific: kill a greenlet parked in Queue::put on a full queue:
// its item is dropped (the put did not happen), the queue is unchanged
fn kill_parked_putter() {
    let drops = Drops::default();
    let item_drops = Drops::default();
    let q = Rc::new(Queue::bounded(1));
    q.put(tracked(0, &item_drops)).unwrap();
    let (q2, tok, item) = (q.clone(), drops.token(), tracked(1, &item_drops));
    let h = spawn(move || {
        let _tok = tok;
        q2.put(item)
    });
    settle();
    assert_eq!(q.putters(), 1);
    h.kill();
    assert_eq!(drops.count(), 1, "destructors ran");
    assert_eq!(q.putters(), 0, "the killed putter is deregistered");
    assert_eq!(
        item_drops.count(),
        1,
        "the killed putter's item was dropped once"
    );
    assert_eq!(q.len(), 1);
    assert_eq!(q.get().unwrap().id, 0);
    assert_eq!(q.try_get().unwrap_err(), TakeError::Empty);
    assert_eq!(item_drops.count(), 2);
    assert!(h.join().unwrap_err().is_killed());
}
}

/// Spawns `n` getters of `q` that record `(index, item id)` in `got`.
fn getters(
    q: &Rc<Queue<Tracked>>,
    n: u32,
    got: &Rc<RefCell<Vec<(u32, u32)>>>,
    drops: &Drops,
) -> Vec<verdant::JoinHandle<()>> {
    // One at a time, each parked before the next starts: getter `i` is
    // `i`th in line under any schedule.
    (0..n)
        .map(|i| {
            let (q, got, tok) = (q.clone(), got.clone(), drops.token());
            let h = spawn(move || {
                let _tok = tok;
                let item = q.get().unwrap();
                got.borrow_mut().push((i, item.id));
            });
            settle();
            h
        })
        .collect()
}

common::seeded_tests! {
// verdant-specific: an item handed to a getter killed in the same tick goes
// to the next getter
fn kill_getter_handed_an_item_passes_it_on() {
    let q: Rc<Queue<Tracked>> = Rc::new(Queue::new());
    let (drops, item_drops) = (Drops::default(), Drops::default());
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs = getters(&q, 2, &got, &drops);
    assert_eq!(q.getters(), 2);
    q.put(tracked(7, &item_drops)).unwrap(); // handed to getter 0
    assert_eq!(q.getters(), 1);
    hs[0].kill();
    joinall(&hs).unwrap();
    assert_eq!(
        *got.borrow(),
        [(1, 7)],
        "the item died with the killed getter"
    );
    assert_eq!(item_drops.count(), 1, "dropped once, by getter 1");
    assert_eq!(drops.count(), 2);
    assert_eq!(q.getters(), 0);
    assert!(q.is_empty());
}
}

common::seeded_tests! {
// verdant-specific: ... or back to the front of the queue when no other
// getter waits (with kill and kill_nowait)
fn kill_getter_handed_an_item_requeues_it_first() {
    for blocking in [true, false] {
        let q: Rc<Queue<Tracked>> = Rc::new(Queue::new());
        let (drops, item_drops) = (Drops::default(), Drops::default());
        let got = Rc::new(RefCell::new(Vec::new()));
        let hs = getters(&q, 1, &got, &drops);
        q.put(tracked(1, &item_drops)).unwrap(); // handed to the getter
        q.put(tracked(2, &item_drops)).unwrap(); // queued
        assert_eq!(q.len(), 1);
        if blocking {
            hs[0].kill();
        } else {
            hs[0].kill_nowait();
        }
        joinall(&hs).unwrap();
        assert!(got.borrow().is_empty());
        assert_eq!(
            item_drops.count(),
            0,
            "kill(block = {blocking}) lost the item"
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().unwrap().id, 1, "the requeued item goes first");
        assert_eq!(q.get().unwrap().id, 2);
        assert_eq!(item_drops.count(), 2);
    }
}
}

common::seeded_tests! {
// verdant-specific: a killed getter's item requeued into a full bounded
// queue may overflow it (it must not be lost), but the queue must not take
// a waiting putter's item in while it is still at (or over) its bound
fn kill_getter_requeue_into_full_queue_keeps_bound() {
    let q: Rc<Queue<Tracked>> = Rc::new(Queue::bounded(1));
    let (drops, item_drops) = (Drops::default(), Drops::default());
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs = getters(&q, 1, &got, &drops);
    q.put(tracked(1, &item_drops)).unwrap(); // handed to the getter
    q.put(tracked(2, &item_drops)).unwrap(); // fills the queue
                                             // The kill lands before the getter runs; then a putter comes.
    hs[0].kill_nowait();
    let (q2, item) = (q.clone(), tracked(3, &item_drops));
    let putter = spawn(move || q2.put(item).map_err(|e| e.into_inner().id));
    settle();
    assert!(hs[0].is_finished());
    assert!(got.borrow().is_empty());
    assert_eq!(q.putters(), 1);
    assert_eq!(q.len(), 2, "the requeued item is kept, over the bound");
    assert_eq!(q.get().unwrap().id, 1);
    // One item left, the bound is 1: the putter must still wait.
    assert_eq!(q.len(), 1, "the queue took a putter's item while full");
    assert_eq!(q.putters(), 1);
    assert!(!putter.is_finished());
    assert_eq!(q.get().unwrap().id, 2);
    assert_eq!(putter.join().unwrap(), Ok(()));
    assert_eq!(q.get().unwrap().id, 3);
    assert_eq!(item_drops.count(), 3);
}
}

common::seeded_tests! {
// verdant-specific: an item taken from a putter killed in the same tick
// stays in the queue (the put happened)
fn kill_putter_whose_item_was_taken_keeps_it() {
    let (drops, item_drops) = (Drops::default(), Drops::default());
    let q = Rc::new(JoinableQueue::bounded(1));
    q.put(tracked(0, &item_drops)).unwrap();
    let (q2, tok, item) = (q.clone(), drops.token(), tracked(1, &item_drops));
    let h = spawn(move || {
        let _tok = tok;
        q2.put(item).unwrap();
    });
    settle();
    assert_eq!(q.putters(), 1);
    // The get makes room: the putter's item moves in and it is woken...
    assert_eq!(q.get().unwrap().id, 0);
    assert_eq!(q.len(), 1);
    // ... and killed before it runs.
    h.kill();
    assert_eq!(drops.count(), 1);
    assert_eq!(item_drops.count(), 1, "only the item we got is gone");
    assert_eq!(q.unfinished(), 2, "both puts happened");
    assert_eq!(q.get().unwrap().id, 1);
    assert_eq!(item_drops.count(), 2);

    // A rendezvous: the getter took the item from the putter's hands.
    let ch = Rc::new(Queue::bounded(0));
    let c = ch.clone();
    let item = tracked(3, &item_drops);
    let p = spawn(move || c.put(item).unwrap());
    settle();
    let got = ch.try_get().unwrap();
    p.kill();
    assert_eq!(got.id, 3);
    assert_eq!(item_drops.count(), 2);
    assert!(ch.is_empty());
}
}

common::seeded_tests! {
// verdant-specific: kill a greenlet parked in JoinableQueue::join, and one
// woken by the last task_done in the same tick
fn kill_joiners() {
    let q: Rc<JoinableQueue<u8>> = Rc::new(JoinableQueue::new());
    q.put(1).unwrap();
    let drops = Drops::default();
    let finished = Rc::new(RefCell::new(Vec::new()));
    let joiners: Vec<_> = (0..3)
        .map(|i| {
            let (q, tok, fin) = (q.clone(), drops.token(), finished.clone());
            spawn(move || {
                let _tok = tok;
                q.join().unwrap();
                fin.borrow_mut().push(i);
            })
        })
        .collect();
    yield_now();
    joiners[2].kill(); // parked
    assert_eq!(drops.count(), 1);
    q.get().unwrap();
    q.task_done().unwrap(); // wakes joiners 0 and 1
    joiners[0].kill(); // woken, not yet run
    joinall(&joiners).unwrap();
    assert_eq!(*finished.borrow(), [1]);
    assert_eq!(drops.count(), 3);
    assert!(format!("{q:?}").contains("unfinished: 0"), "{q:?}");
    // join still works for later joiners.
    q.put(2).unwrap();
    let q2 = q.clone();
    let j = spawn(move || q2.join());
    yield_now();
    q.get().unwrap();
    q.task_done().unwrap();
    assert_eq!(j.join().unwrap(), Ok(()));
}
}
// ---------------------------------------------------------------------------
// Deadlock detection
// ---------------------------------------------------------------------------

common::seeded_tests! {
// The reliability plan's IO-14 `deadlock_detected`: two greenlets
// each wait on a queue the other should fill; the root joins: LoopExit
// within 10 ms, not a hang (the best of three runs, against scheduling
// noise on a loaded machine)
fn io14_deadlock_detected() {
    let best = on_fresh_thread("IO-14", || {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let q1: Rc<Queue<u32>> = Rc::new(Queue::new());
            let q2: Rc<Queue<u32>> = Rc::new(Queue::new());
            let (a1, a2) = (q1.clone(), q2.clone());
            let a = spawn(move || {
                let v = a1.get()?; // b should fill q1 ...
                a2.put(v + 1).map_err(|_| TakeError::Closed)
            });
            let (b1, b2) = (q1.clone(), q2.clone());
            let b = spawn(move || {
                let v = b2.get()?; // ... and a should fill q2
                b1.put(v + 1).map_err(|_| TakeError::Closed)
            });
            let t = Instant::now();
            let err = a.wait().unwrap_err();
            best = best.min(t.elapsed());
            assert_eq!(err.kind(), JoinErrorKind::LoopExit);
            assert!(err.to_string().contains("LoopExit"), "{err}");
            assert!(matches!(joinall([&a, &b]), Err(JoinAllError::LoopExit(_))));
            assert_eq!((q1.getters(), q2.getters()), (1, 1));
            // The hub still works: kill one side; the other stays parked
            // until it is killed too.
            a.kill();
            assert_eq!(q1.getters(), 0);
            b.kill();
            assert_eq!(q2.getters(), 0);
            assert!(a.join().unwrap_err().is_killed());
            assert!(b.join().unwrap_err().is_killed());
        }
        assert_eq!(spawn(|| 7).join().unwrap(), 7);
        best
    });
    assert!(best < IO14_BOUND, "LoopExit took {best:?} (IO-14: 10 ms)");
}

// verdant-specific (gevent's LoopExit): get/put that nothing could end
fn queue_get_put_deadlock_is_loop_exit() {
    on_fresh_thread("queue deadlock", || {
        let q: Queue<u8> = Queue::new();
        assert!(matches!(
            q.get(),
            Err(TakeError::Wait(WaitError::LoopExit(_)))
        ));
        assert_eq!(q.getters(), 0);
        let q = Queue::bounded(1);
        q.put(1).unwrap();
        assert!(matches!(
            q.put(2),
            Err(PutError::Wait(WaitError::LoopExit(_), 2))
        ));
        assert_eq!(q.putters(), 0);
        let ch: Queue<u8> = Queue::bounded(0);
        assert!(matches!(
            ch.put(3),
            Err(PutError::Wait(WaitError::LoopExit(_), 3))
        ));
    });
}

// verdant-specific: a randomized stress of the wait lists (whose waiters
// live in the parked greenlets' frames). Sixty greenlets put and get on one
// small queue with random short timeouts, while a killer kills random ones
// at random moments (parked in `put`, in `get`, or handed an item in the
// tick they die). Afterwards every item whose `put` returned `Ok` is found
// exactly once (taken by a getter, or still in the queue); an item whose
// putter was killed inside `put` at most once (its offer may have been
// taken in the tick it died); nothing else appears, and no waiter is left
// registered.
fn stress_timeouts_and_kills_lose_and_duplicate_nothing() {
    const WORKERS: u64 = 60;
    const ROUNDS: u64 = 150;
    let q: Rc<Queue<u64>> = Rc::new(Queue::bounded(3));
    let ledger = Ledger::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (q, ledger) = (q.clone(), ledger.clone());
            spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
                for round in 0..ROUNDS {
                    let r = rng.next_u64();
                    let timeout = Duration::from_micros(r % 400);
                    if r.is_multiple_of(2) {
                        let item = w * ROUNDS + round;
                        ledger.send(item, || q.put_timeout(item, timeout).is_ok());
                    } else {
                        ledger.received(q.get_timeout(timeout).ok());
                    }
                    if r.is_multiple_of(7) {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    let mut rng = Rng(42);
    let killed = kill_at_random(&workers, &mut || rng.next_u64(), 400, 8);
    join_expecting_kills(workers, killed);
    assert_eq!(q.getters(), 0, "a waiter is left in the getters' list");
    assert_eq!(q.putters(), 0, "a waiter is left in the putters' list");
    ledger.check(std::iter::from_fn(|| q.try_get().ok()));
}
}
