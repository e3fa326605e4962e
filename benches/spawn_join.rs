//! Spawn + join per greenlet (batches of 100, pooled stacks) against tokio's
//! current-thread runtime and may with one worker, in one run.
//!
//! `cargo bench --bench spawn_join`. Target: verdant ≤ 300 ns per greenlet.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: u64 = 100;

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_per_task");
    group.throughput(Throughput::Elements(BATCH));

    group.bench_function("verdant", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let hs: Vec<_> = (0..BATCH).map(|i| verdant::spawn(move || i)).collect();
                for h in hs {
                    black_box(h.join().unwrap());
                }
            }
            t.elapsed()
        });
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let t = Instant::now();
                for _ in 0..iters {
                    let hs: Vec<_> = (0..BATCH).map(|i| tokio::spawn(async move { i })).collect();
                    for h in hs {
                        black_box(h.await.unwrap());
                    }
                }
                t.elapsed()
            })
        });
    });

    may::config().set_workers(1);
    group.bench_function("may_one_worker", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let hs: Vec<_> = (0..BATCH)
                    // SAFETY: may's spawn is unsafe because coroutines may
                    // migrate threads; this closure touches no TLS.
                    .map(|i| unsafe { may::coroutine::spawn(move || i) })
                    .collect();
                for h in hs {
                    black_box(h.join().unwrap());
                }
            }
            t.elapsed()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = spawn_join
}
criterion_main!(benches);
