//! The micro workloads, verdant's and the peers', shared by the criterion
//! benches (`yield`, `spawn_join`), the `channel` tables and the CI smoke
//! (`perf_smoke`). Each returns the time its measured part took.
//!
//! The peers run on one thread as verdant does: may with one worker,
//! tokio's current-thread runtime.

use std::hint::black_box;
use std::time::{Duration, Instant};

use verdant::sync::channel;

/// Greenlets per spawn+join batch.
pub const BATCH: u64 = 100;

/// Two greenlets taking turns with `sleep(ZERO)`, `iters` yields each
/// (`iters` round trips).
pub fn verdant_yield(iters: u64) -> Duration {
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            verdant::spawn(move || {
                for _ in 0..iters {
                    verdant::sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    verdant::joinall(&hs).unwrap();
    t.elapsed()
}

/// [`verdant_yield`] with may's `yield_now` (call `may::config()
/// .set_workers(1)` first).
pub fn may_yield(iters: u64) -> Duration {
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            // SAFETY: may requires `unsafe` because its coroutines can
            // migrate between threads; this one touches no TLS and stays
            // well within may's default stack.
            unsafe {
                may::coroutine::spawn(move || {
                    for _ in 0..iters {
                        may::coroutine::yield_now();
                    }
                })
            }
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    t.elapsed()
}

/// [`verdant_yield`] with tokio's `yield_now` on `rt`.
pub fn tokio_yield(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let t = Instant::now();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        t.elapsed()
    })
}

/// `batches` batches of [`BATCH`] greenlets spawned, then joined.
pub fn verdant_spawn_join(batches: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..BATCH).map(|i| verdant::spawn(move || i)).collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
    }
    t.elapsed()
}

/// [`verdant_spawn_join`] with greenlets that each switch once (a yield)
/// with `DEPTH` bytes of stack in use: the stack is scrubbed from that
/// depth before its next reuse, so `DEPTH` 16 KiB against 0 gives the
/// scrub's cost per reuse.
pub fn verdant_spawn_yield_join<const DEPTH: usize>(batches: u64) -> Duration {
    #[inline(never)]
    fn deep<const DEPTH: usize>(i: u64) -> u64 {
        let buf = [i as u8; DEPTH];
        black_box(&buf);
        verdant::yield_now();
        black_box(&buf);
        i
    }
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..BATCH)
            .map(|i| verdant::spawn(move || deep::<DEPTH>(i)))
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
    }
    t.elapsed()
}

/// [`verdant_spawn_join`] with tokio tasks on `rt`.
pub fn tokio_spawn_join(rt: &tokio::runtime::Runtime, batches: u64) -> Duration {
    rt.block_on(async move {
        let t = Instant::now();
        for _ in 0..batches {
            let hs: Vec<_> = (0..BATCH).map(|i| tokio::spawn(async move { i })).collect();
            for h in hs {
                black_box(h.await.unwrap());
            }
        }
        t.elapsed()
    })
}

/// [`verdant_spawn_join`] with may coroutines (one worker).
pub fn may_spawn_join(batches: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..BATCH)
            // SAFETY: may's spawn is unsafe because coroutines may migrate
            // threads; this closure touches no TLS.
            .map(|i| unsafe { may::coroutine::spawn(move || i) })
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
    }
    t.elapsed()
}

/// `n` round trips between main and an echo greenlet over two channels of
/// capacity `cap` (0: rendezvous).
pub fn verdant_ping_pong(n: u64, cap: usize) -> Duration {
    let (a_tx, a_rx) = channel::bounded::<u64>(cap);
    let (b_tx, b_rx) = channel::bounded::<u64>(cap);
    let echo = verdant::spawn(move || {
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

/// [`verdant_ping_pong`] between two may coroutines over may's mpsc.
pub fn may_ping_pong(n: u64) -> Duration {
    use may::sync::mpsc;
    let (a_tx, a_rx) = mpsc::channel::<u64>();
    let (b_tx, b_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // SAFETY: may's `go!` is unsafe because a coroutine must not use
    // thread-local storage or block its worker thread; these two only use
    // may's own channels.
    unsafe {
        may::coroutine::spawn(move || {
            while let Ok(v) = a_rx.recv() {
                if b_tx.send(v + 1).is_err() {
                    break;
                }
            }
        });
        may::coroutine::spawn(move || {
            let t = Instant::now();
            for i in 0..n {
                a_tx.send(i).unwrap();
                black_box(b_rx.recv().unwrap());
            }
            done_tx.send(t.elapsed()).unwrap();
        });
    }
    done_rx.recv().unwrap()
}

/// Runs `f` once to warm up, then `runs` times; the median time per op.
pub fn per_op(runs: usize, ops: u64, mut f: impl FnMut() -> Duration) -> f64 {
    let _ = f(); // warm-up: stacks, pools, caches
    let mut v: Vec<f64> = (0..runs)
        .map(|_| f().as_nanos() as f64 / ops as f64)
        .collect();
    super::median(&mut v)
}
