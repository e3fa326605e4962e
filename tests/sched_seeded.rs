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
