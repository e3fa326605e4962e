//! SCHED-1, seeded schedules (`Hub::set_schedule_seed`): the same seed
//! replays the same schedule, other seeds give other ones; and the sync
//! primitives, channels, timers and IO keep their guarantees under 1,000
//! seeds each. Each seed runs on a thread of its own (a fresh hub); a
//! failure names its seed, and `VERDANT_SEED=<seed>` makes every hub start
//! with it, to replay.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::UnixStream;
use verdant::sync::{channel, Condition, Event, Lock, Queue, Semaphore};
use verdant::{joinall, sleep, spawn, yield_now, Hub};

mod common;

/// How many seeds each scenario runs under.
const SEEDS: u64 = 1000;

/// Runs `scenario` under seeds `0..SEEDS`, each on a fresh thread; a
/// failure panics naming the seed.
fn under_seeds(name: &str, scenario: fn()) {
    common::under_seeds(name, SEEDS, None, scenario);
}

/// The order in which 8 greenlets, each yielding 5 times, get their turns.
fn turn_order(seed: Option<u64>) -> Vec<u32> {
    std::thread::spawn(move || {
        Hub::current().set_schedule_seed(seed);
        let log = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let log = log.clone();
                spawn(move || {
                    for _ in 0..5 {
                        log.borrow_mut().push(i);
                        yield_now();
                    }
                })
            })
            .collect();
        joinall(&hs).unwrap();
        let v = log.borrow().clone();
        v
    })
    .join()
    .unwrap()
}

#[test]
fn a_seed_replays_its_schedule_and_other_seeds_give_others() {
    let fifo = turn_order(None);
    let expected: Vec<u32> = (0..5).flat_map(|_| 0..8).collect();
    assert_eq!(fifo, expected, "unseeded: round robin");
    let a = turn_order(Some(1));
    assert_eq!(a, turn_order(Some(1)), "the same seed, the same schedule");
    assert_ne!(a, fifo, "seeded is not round robin");
    let distinct: std::collections::HashSet<Vec<u32>> =
        (0..20).map(|s| turn_order(Some(s))).collect();
    assert!(
        distinct.len() >= 19,
        "{} schedules from 20 seeds",
        distinct.len()
    );
}

#[test]
fn timers_with_equal_deadlines_fire_in_a_seeded_order() {
    fn order(seed: u64) -> Vec<u32> {
        std::thread::spawn(move || {
            Hub::current().set_schedule_seed(Some(seed));
            let at = Instant::now() + Duration::from_millis(5);
            let log = Rc::new(RefCell::new(Vec::new()));
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let log = log.clone();
                    spawn(move || {
                        sleep(at.saturating_duration_since(Instant::now()));
                        assert!(Instant::now() >= at, "woke early");
                        log.borrow_mut().push(i);
                    })
                })
                .collect();
            joinall(&hs).unwrap();
            let v = log.borrow().clone();
            v
        })
        .join()
        .unwrap()
    }
    let orders: std::collections::HashSet<Vec<u32>> = (0..10).map(order).collect();
    assert!(orders.len() >= 5, "{} orders from 10 seeds", orders.len());
}

#[test]
fn channels_lose_and_duplicate_nothing_under_1000_seeds() {
    under_seeds("channel", || {
        let (tx, rx) = channel::bounded::<u32>(2);
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let tx = tx.clone();
                spawn(move || {
                    for i in 0..20 {
                        tx.send(p * 100 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let got = Rc::new(RefCell::new(Vec::new()));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (rx, got) = (rx.clone(), got.clone());
                spawn(move || {
                    while let Ok(v) = rx.recv() {
                        got.borrow_mut().push(v);
                    }
                })
            })
            .collect();
        joinall(&producers).unwrap();
        joinall(&consumers).unwrap();
        let mut got = got.borrow().clone();
        got.sort_unstable();
        let mut want: Vec<u32> = (0..3)
            .flat_map(|p| (0..20).map(move |i| p * 100 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

#[test]
fn locks_and_semaphores_keep_their_bounds_under_1000_seeds() {
    under_seeds("lock+semaphore", || {
        let lock = Rc::new(Lock::new(0u32));
        let sem = Rc::new(Semaphore::new(3));
        let inside = Rc::new(Cell::new(0u32));
        let most = Rc::new(Cell::new(0u32));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (lock, sem, inside, most) =
                    (lock.clone(), sem.clone(), inside.clone(), most.clone());
                spawn(move || {
                    for _ in 0..5 {
                        {
                            let mut g = lock.lock().unwrap();
                            let v = *g;
                            yield_now(); // holding it across a switch
                            *g = v + 1;
                        }
                        let _p = sem.acquire().unwrap();
                        inside.set(inside.get() + 1);
                        most.set(most.get().max(inside.get()));
                        yield_now();
                        inside.set(inside.get() - 1);
                    }
                })
            })
            .collect();
        joinall(&hs).unwrap();
        assert_eq!(*lock.lock().unwrap(), 40, "no increment lost");
        assert!(most.get() <= 3, "{} inside a semaphore of 3", most.get());
    });
}

#[test]
fn events_conditions_and_queues_wake_everyone_under_1000_seeds() {
    under_seeds("event+condition+queue", || {
        let ev = Rc::new(Event::new());
        let cond = Rc::new(Condition::new());
        let ready = Rc::new(Lock::new(false));
        let q = Rc::new(Queue::bounded(1));
        let woke = Rc::new(Cell::new(0));
        let mut hs = Vec::new();
        for _ in 0..4 {
            let (e, w) = (ev.clone(), woke.clone());
            hs.push(spawn(move || {
                e.wait().unwrap();
                w.set(w.get() + 1);
            }));
            let (c, r, w) = (cond.clone(), ready.clone(), woke.clone());
            hs.push(spawn(move || {
                let g = r.lock().unwrap();
                let _g = c.wait_while(g, |ready| !*ready).unwrap();
                w.set(w.get() + 1);
            }));
            let (qq, w) = (q.clone(), woke.clone());
            hs.push(spawn(move || {
                let v: u32 = qq.get().unwrap();
                w.set(w.get() + v);
            }));
        }
        let (q2, ev2, cond2, ready2) = (q.clone(), ev.clone(), cond.clone(), ready.clone());
        hs.push(spawn(move || {
            yield_now();
            ev2.set();
            *ready2.lock().unwrap() = true;
            cond2.notify_all();
            for _ in 0..4 {
                q2.put(1).unwrap();
            }
        }));
        joinall(&hs).unwrap();
        assert_eq!(woke.get(), 12);
    });
}

#[test]
fn stream_io_delivers_every_byte_in_order_under_1000_seeds() {
    under_seeds("unix stream io", || {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = spawn(move || {
            let mut a = a;
            for i in 0..50u8 {
                a.write_all(&[i; 7]).unwrap();
                if i % 7 == 0 {
                    yield_now();
                }
            }
        });
        let reader = spawn(move || {
            let mut b = b;
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        writer.join().unwrap();
        let all = reader.join().unwrap();
        let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 7]).collect();
        assert_eq!(all, want);
    });
}

/// Runs `f` on a fresh thread whose hub is on virtual time.
fn on_virtual_time<T: Send + 'static>(f: fn() -> T) -> T {
    std::thread::spawn(move || {
        common::clock::virtual_time();
        f()
    })
    .join()
    .unwrap()
}

/// Virtual time (`Hub::set_clock_advance`): an idle hub skips to its next
/// timer instead of sleeping, and timers fire in deadline order. Without it
/// nothing is skipped.
#[test]
fn virtual_time_skips_idle_waits_in_deadline_order() {
    let (order, took, skipped) = on_virtual_time(|| {
        let t = Instant::now();
        let log = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|n| {
                let log = log.clone();
                spawn(move || {
                    for _ in 0..100 {
                        sleep(Duration::from_millis(n * 100));
                    }
                    log.borrow_mut().push(n);
                })
            })
            .collect();
        joinall(&hs).unwrap();
        let order = log.borrow().clone();
        (order, t.elapsed(), common::clock::skipped())
    });
    assert_eq!(order, [1, 2, 3]);
    assert!(
        took >= Duration::from_secs(30),
        "the hub's clock read {took:?}"
    );
    // All but the hub's own work was skipped (a real 30 s otherwise).
    assert!(skipped >= Duration::from_secs(25), "skipped {skipped:?}");
}

/// Virtual time does not skip while another thread may still wake a
/// greenlet (a `blocking` call in flight), nor past IO that is ready: a
/// 50 ms blocking call finishes well inside a 5 s timeout, and data written
/// by a greenlet after a virtual second arrives before a 5 s read timeout.
#[test]
fn virtual_time_waits_for_other_threads_and_ready_io() {
    let (blocking, read) = on_virtual_time(|| {
        let blocking = verdant::with_timeout(Duration::from_secs(5), || {
            verdant::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                .join()
                .is_ok()
        });
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (
            UnixStream::from_std(a).unwrap(),
            UnixStream::from_std(b).unwrap(),
        );
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let w = spawn(move || {
            sleep(Duration::from_secs(1));
            b.write_all(b"late").unwrap();
            b
        });
        let mut buf = [0u8; 4];
        let read = a.read_exact(&mut buf).map(|()| buf);
        drop(w.join().unwrap());
        (blocking, read.map_err(|e| e.kind()))
    });
    assert_eq!(blocking, Ok(true), "timed out while a blocking call ran");
    assert_eq!(read, Ok(*b"late"));
}

/// An `advance` that leaves the clock where it was: the hub sleeps for what
/// is left, as without it, and does not spin calling `advance`.
#[test]
fn an_advance_that_does_not_move_the_clock_falls_back_to_sleeping() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    fn stuck(_: Duration) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
    let took = std::thread::spawn(|| {
        Hub::current().set_clock_advance(Some(stuck));
        let t = Instant::now();
        sleep(Duration::from_millis(30));
        t.elapsed()
    })
    .join()
    .unwrap();
    assert!(took >= Duration::from_millis(30), "woke early: {took:?}");
    let calls = CALLS.load(Ordering::Relaxed);
    assert!((1..=3).contains(&calls), "advance called {calls} times");
}

// ---------------------------------------------------------------------------
// The harness itself (tests/common/mod.rs: seeded, under_seeds)
// ---------------------------------------------------------------------------

/// Seeds whose bodies mostly wait run side by side, and each seed runs
/// exactly once, on a hub of its own with that seed.
#[test]
fn seeds_that_wait_run_side_by_side_each_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    static NOW: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    static SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    fn body() {
        let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(n, Ordering::SeqCst);
        SEEN.lock()
            .unwrap()
            .push(Hub::current().schedule_seed().expect("a seeded hub"));
        std::thread::sleep(Duration::from_millis(30)); // a wait in the kernel
        NOW.fetch_sub(1, Ordering::SeqCst);
    }
    assert_eq!(common::under_seeds("waiting", 40, None, body), 40);
    let mut seen = SEEN.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(peak > 1, "40 waiting seeds ran one at a time");
    assert!(peak <= common::MAX_SEED_THREADS, "{peak} at once");
}

/// A failure names the lowest seed that failed and how to replay it, with
/// the body's own message.
#[test]
fn a_failure_names_the_lowest_failing_seed() {
    fn body() {
        let seed = Hub::current().schedule_seed().unwrap();
        if seed == 9 || seed == 5 {
            panic!("boom under {seed}");
        }
    }
    let p = std::panic::catch_unwind(|| common::under_seeds("failing", 20, None, body))
        .expect_err("two seeds failed");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("failing failed under seed 5 ")
            && msg.contains("VERDANT_SEED=5 VERDANT_CLOCK=virtual")
            && msg.contains("boom under 5"),
        "{msg}"
    );
}

/// A body whose scenario is in a child process has its seeds run in the
/// child, and the parent reports the child's count; a child case that
/// exits instead of returning (and so never reaches its seeds) fails the
/// test instead of passing for no seeds at all.
#[test]
fn a_body_in_a_child_runs_its_seeds_there_and_one_that_exits_first_is_caught() {
    const TEST: &str = "a_body_in_a_child_runs_its_seeds_there_and_one_that_exits_first_is_caught";
    fn body() {
        match common::child_case().as_deref() {
            Some("outer-returns") => drop(common::run_child(TEST, "returns", &[])),
            Some("outer-exits") => drop(common::run_child(TEST, "exits", &[])),
            Some("returns") => {}
            Some("exits") => std::process::exit(0),
            other => unreachable!("child case {other:?}"),
        }
    }
    if common::child_case().is_some() {
        common::seeded("child_body", body);
        return;
    }
    let ok = common::run_child(TEST, "outer-returns", &[("VERDANT_SEEDS", "3")]);
    let text = common::output_text(&ok);
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains("seeded child_body: 3 seeds in") && text.contains("(in child \"returns\")"),
        "{text}"
    );
    let bad = common::run_child(TEST, "outer-exits", &[("VERDANT_SEEDS", "3")]);
    let text = common::output_text(&bad);
    assert!(!bad.status.success(), "{text}");
    assert!(
        text.contains("no child process it ran ran seeded schedules"),
        "{text}"
    );
}
