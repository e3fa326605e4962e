//! Spawn + join per greenlet (batches of 100, cached stacks) against tokio's
//! current-thread runtime and may with one worker, in one run.
//!
//! `cargo bench --bench spawn_join`. Target: verdant ≤ 300 ns per greenlet.
//! `verdant_yield_16k_deep` against `verdant_yield_shallow` is the cost of
//! scrubbing 16 KiB of a stack before its reuse (SEC-1).
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use common::micro::{self, BATCH};

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_per_task");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("verdant", |b| b.iter_custom(micro::verdant_spawn_join));
    // The scrub's cost per stack reuse: the same with a yield each, at a
    // depth of 16 bytes and of 16 KiB (zeroed before the stack's reuse).
    group.bench_function("verdant_yield_shallow", |b| {
        b.iter_custom(micro::verdant_spawn_yield_join::<16>)
    });
    group.bench_function("verdant_yield_16k_deep", |b| {
        b.iter_custom(micro::verdant_spawn_yield_join::<{ 16 * 1024 }>)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("tokio_current_thread", |b| {
        b.iter_custom(|iters| micro::tokio_spawn_join(&rt, iters))
    });
    may::config().set_workers(1);
    group.bench_function("may_one_worker", |b| b.iter_custom(micro::may_spawn_join));
    group.finish();
}
criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = spawn_join
}
criterion_main!(benches);
