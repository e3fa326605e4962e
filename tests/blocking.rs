//! The blocking pool under a burst: alone in its own test binary (the pool
//! is process-wide), so the thread counts it sees are its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use verdant::{joinall, spawn, spawn_blocking};

fn burst(n: usize, ms: u64) -> usize {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (r, p) = (running.clone(), peak.clone());
            spawn(move || {
                spawn_blocking(move || {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(ms));
                    r.fetch_sub(1, Ordering::SeqCst);
                })
                .join()
                .unwrap()
            })
        })
        .collect();
    joinall(&hs).unwrap();
    peak.load(Ordering::SeqCst)
}

/// A burst of jobs arriving while a few pool threads sit idle must start
/// more threads, not queue every job behind the idle few (a bug that ran
/// 50 calls of 100 ms three at a time).
#[test]
fn a_burst_gets_a_thread_per_job_even_with_idle_threads_around() {
    // Two threads, now idle (they wait 10 s for work before exiting).
    assert_eq!(burst(2, 50), 2);
    let peak = burst(30, 100);
    assert!(peak >= 25, "only {peak} of 30 jobs ran at once");
}

/// `join_thread` waits for an OS thread without blocking the hub, and gives
/// the thread's panic payload back as std's `join` does.
#[test]
fn join_thread_waits_cooperatively_and_returns_the_panic() {
    let t = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        "done"
    });
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let k = ticks.clone();
    let ticker = verdant::spawn(move || loop {
        k.set(k.get() + 1);
        verdant::sleep(std::time::Duration::from_millis(5));
    });
    assert_eq!(verdant::join_thread(t).unwrap(), "done");
    assert!(
        ticks.get() >= 3,
        "the hub was blocked: {} ticks",
        ticks.get()
    );
    ticker.kill();
    let t = std::thread::spawn(|| -> u8 { panic!("thread failed") });
    let payload = verdant::join_thread(t).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"thread failed"));
}
