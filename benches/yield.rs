//! Hub yield round trip: two greenlets taking turns with `sleep(ZERO)`
//! (one round trip = each yields once), against may's `yield_now` on one
//! worker and tokio's `yield_now` on a current-thread runtime, in one run.
//!
//! `cargo bench --bench yield`. Target: verdant ≤ 40 ns.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

fn yields(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_round_trip");

    group.bench_function("verdant_sleep_zero", |b| {
        b.iter_custom(|iters| {
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
        });
    });

    may::config().set_workers(1);
    group.bench_function("may_yield_now", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    // SAFETY: may requires `unsafe` because its coroutines can
                    // migrate between threads; this one touches no TLS and
                    // stays well within may's default stack.
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
        });
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("tokio_yield_now", |b| {
        b.iter_custom(|iters| {
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
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = yields
}
criterion_main!(benches);
