//! Channels, queues and locks, side by side with the peers in one run.
//!
//! `cargo bench --bench channel` prints three tables (median of 7 runs):
//!
//! 1. Channel ping-pong round trip between two greenlets (verdant rendezvous
//!    and bounded(1)), may's mpsc between two coroutines on one worker,
//!    tokio's mpsc between two tasks on a current_thread runtime,
//!    crossbeam-channel bounded(0) between two OS threads, and Go's
//!    unbuffered channel between two goroutines (GOMAXPROCS=1) when `go` is
//!    installed. Target: verdant ≤ 60 ns and ahead of every peer.
//! 2. One producer, one consumer through a bounded queue of 128: verdant
//!    `Queue` and channel, tokio mpsc, crossbeam between two threads.
//! 3. `Lock` uncontended (lock + unlock) against std's `Mutex` and tokio's
//!    `Mutex`, and contended by 1,000 greenlets that each hold it across a
//!    yield.
//!
//! `--quick` runs smaller counts (used by CI to check that the bench runs).
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::has_flag;
use common::micro::{may_ping_pong, per_op, verdant_ping_pong};
use verdant::sync::{channel, Lock, Queue};
use verdant::{spawn, yield_now};

const RUNS: usize = 7;

// ---- 1. ping-pong -------------------------------------------------------

fn crossbeam_ping_pong(n: u64) -> Duration {
    let (a_tx, a_rx) = crossbeam_channel::bounded::<u64>(0);
    let (b_tx, b_rx) = crossbeam_channel::bounded::<u64>(0);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..n {
        a_tx.send(i).unwrap();
        black_box(b_rx.recv().unwrap());
    }
    let took = t.elapsed();
    drop(a_tx);
    echo.join().unwrap();
    took
}

const GO_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

func main() {
	runtime.GOMAXPROCS(1)
	n, _ := strconv.Atoi(os.Args[1])
	runs, _ := strconv.Atoi(os.Args[2])
	var res []float64
	for r := 0; r <= runs; r++ {
		a := make(chan int)
		b := make(chan int)
		go func() {
			for v := range a {
				b <- v + 1
			}
		}()
		t := time.Now()
		for i := 0; i < n; i++ {
			a <- i
			<-b
		}
		el := time.Since(t)
		close(a)
		if r > 0 {
			res = append(res, float64(el.Nanoseconds())/float64(n))
		}
	}
	sort.Float64s(res)
	fmt.Println(res[len(res)/2])
}
"#;

/// Go's unbuffered channel round trip, if `go` is installed.
fn go_ping_pong(n: u64) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("verdant-go-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("main.go");
    std::fs::write(&src, GO_PROGRAM).ok()?;
    let out = std::process::Command::new("go")
        .arg("run")
        .arg(&src)
        .arg(n.to_string())
        .arg(RUNS.to_string())
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.ok().filter(|o| o.status.success())?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

// ---- 2. one producer, one consumer --------------------------------------

fn verdant_queue_spsc(n: u64) -> Duration {
    let q = Rc::new(Queue::<u64>::bounded(128));
    let q2 = q.clone();
    let t = Instant::now();
    let producer = spawn(move || {
        for i in 0..n {
            q2.put(i).unwrap();
        }
    });
    for _ in 0..n {
        black_box(q.get().unwrap());
    }
    producer.join().unwrap();
    t.elapsed()
}

fn verdant_channel_spsc(n: u64) -> Duration {
    let (tx, rx) = channel::bounded::<u64>(128);
    let t = Instant::now();
    let producer = spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    for v in rx.iter() {
        black_box(v);
    }
    producer.join().unwrap();
    t.elapsed()
}

fn crossbeam_spsc(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(128);
    let t = Instant::now();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    for v in rx.iter() {
        black_box(v);
    }
    producer.join().unwrap();
    t.elapsed()
}

// ---- 3. locks -----------------------------------------------------------

fn verdant_lock_uncontended(n: u64) -> Duration {
    let l = Lock::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *l.lock().unwrap() += 1;
    }
    black_box(l.into_inner());
    t.elapsed()
}

fn std_mutex_uncontended(n: u64) -> Duration {
    let l = std::sync::Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&l).lock().unwrap() += 1;
    }
    black_box(l.into_inner().unwrap());
    t.elapsed()
}

/// 1,000 greenlets each take the lock `per` times, holding it across a
/// yield: every acquisition is a handoff to a parked waiter.
fn verdant_lock_contended(greenlets: u64, per: u64) -> Duration {
    let l = Rc::new(Lock::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..greenlets)
        .map(|_| {
            let l = l.clone();
            spawn(move || {
                for _ in 0..per {
                    let mut g = l.lock().unwrap();
                    *g += 1;
                    yield_now();
                }
            })
        })
        .collect();
    verdant::joinall(&hs).unwrap();
    let took = t.elapsed();
    assert_eq!(*l.lock().unwrap(), greenlets * per);
    took
}

fn row(name: &str, ns: f64, base: f64) {
    println!("{name:<44} {ns:>10.1} ns {:>8.2}x", ns / base);
}

fn main() {
    if has_flag("--list") {
        return; // `cargo test --benches` asks benches to list themselves
    }
    let quick = has_flag("--quick");
    let scale = if quick { 1 } else { 20 };
    let runs = if quick { 3 } else { RUNS };
    may::config().set_workers(1);
    let local = tokio::task::LocalSet::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let n = 10_000 * scale;
    println!("# 1. channel ping-pong round trip (median of {runs}, {n} round trips)");
    println!("{:<44} {:>13} {:>9}", "", "per trip", "vs verdant");
    let v0 = per_op(runs, n, || verdant_ping_pong(n, 0));
    row("verdant greenlets, bounded(0) rendezvous", v0, v0);
    let v1 = per_op(runs, n, || verdant_ping_pong(n, 1));
    row("verdant greenlets, bounded(1)", v1, v0);
    row(
        "may coroutines (1 worker), mpsc",
        per_op(runs, n, || may_ping_pong(n)),
        v0,
    );
    let tk = per_op(runs, n, || local.block_on(&rt, tokio_ping_pong_inner(n)));
    row("tokio tasks (current_thread), mpsc(1)", tk, v0);
    row(
        "crossbeam bounded(0), two OS threads",
        per_op(runs, n, || crossbeam_ping_pong(n)),
        v0,
    );
    match go_ping_pong(n) {
        Some(ns) => row("Go unbuffered chan, GOMAXPROCS=1", ns, v0),
        None => println!("{:<44} {:>13}", "Go unbuffered chan", "(no `go`)"),
    }

    let n = 50_000 * scale;
    println!();
    println!("# 2. one producer, one consumer, bounded 128 (median of {runs}, {n} items)");
    println!("{:<44} {:>13} {:>9}", "", "per item", "vs verdant");
    let q = per_op(runs, n, || verdant_queue_spsc(n));
    row("verdant Queue::bounded(128)", q, q);
    row(
        "verdant channel::bounded(128)",
        per_op(runs, n, || verdant_channel_spsc(n)),
        q,
    );
    row(
        "tokio mpsc(128), current_thread",
        per_op(runs, n, || local.block_on(&rt, tokio_spsc_inner(n))),
        q,
    );
    row(
        "crossbeam bounded(128), two OS threads",
        per_op(runs, n, || crossbeam_spsc(n)),
        q,
    );

    let n = 100_000 * scale;
    println!();
    println!("# 3. locks (median of {runs})");
    println!("{:<44} {:>13} {:>9}", "", "per lock", "vs verdant");
    let l = per_op(runs, n, || verdant_lock_uncontended(n));
    row("verdant Lock, uncontended", l, l);
    row(
        "std Mutex, uncontended",
        per_op(runs, n, || std_mutex_uncontended(n)),
        l,
    );
    row(
        "tokio Mutex, uncontended",
        per_op(runs, n, || {
            local.block_on(&rt, tokio_mutex_uncontended_inner(n))
        }),
        l,
    );
    let (g, per) = (1_000u64, if quick { 5 } else { 50 });
    let c = per_op(runs, g * per, || verdant_lock_contended(g, per));
    row("verdant Lock, 1,000 greenlets, held over a yield", c, c);
    row(
        "tokio Mutex, 1,000 tasks, held over a yield",
        per_op(runs, g * per, || {
            local.block_on(&rt, tokio_mutex_contended_inner(g, per))
        }),
        c,
    );
}

// The tokio cases run inside a LocalSet (spawn_local), on the current
// thread, like verdant's hub.
async fn tokio_ping_pong_inner(n: u64) -> Duration {
    use tokio::sync::mpsc;
    let (a_tx, mut a_rx) = mpsc::channel::<u64>(1);
    let (b_tx, mut b_rx) = mpsc::channel::<u64>(1);
    let echo = tokio::task::spawn_local(async move {
        while let Some(v) = a_rx.recv().await {
            if b_tx.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..n {
        a_tx.send(i).await.unwrap();
        black_box(b_rx.recv().await.unwrap());
    }
    let took = t.elapsed();
    drop(a_tx);
    echo.await.unwrap();
    took
}

async fn tokio_spsc_inner(n: u64) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(128);
    let t = Instant::now();
    let producer = tokio::task::spawn_local(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    });
    while let Some(v) = rx.recv().await {
        black_box(v);
    }
    producer.await.unwrap();
    t.elapsed()
}

async fn tokio_mutex_uncontended_inner(n: u64) -> Duration {
    let l = tokio::sync::Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&l).lock().await += 1;
    }
    black_box(l.into_inner());
    t.elapsed()
}

async fn tokio_mutex_contended_inner(tasks: u64, per: u64) -> Duration {
    let l = Rc::new(tokio::sync::Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..tasks)
        .map(|_| {
            let l = l.clone();
            tokio::task::spawn_local(async move {
                for _ in 0..per {
                    let mut g = l.lock().await;
                    *g += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    let took = t.elapsed();
    assert_eq!(*l.lock().await, tasks * per);
    took
}
