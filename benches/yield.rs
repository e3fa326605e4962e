//! Hub yield round trip: two greenlets taking turns with `sleep(ZERO)`
//! (one round trip = each yields once), against may's `yield_now` on one
//! worker and tokio's `yield_now` on a current-thread runtime, in one run.
//! `verdant_sleep_zero_monitored` is verdant with the blocking monitor
//! watching the hub (its heartbeat at every switch).
//!
//! `cargo bench --bench yield`. Target: verdant ≤ 40 ns.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::micro;

fn yields(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_round_trip");
    group.bench_function("verdant_sleep_zero", |b| {
        b.iter_custom(micro::verdant_yield)
    });
    // The same with the blocking monitor watching this hub (a threshold it
    // never reaches): what the heartbeat costs per switch.
    verdant::monitor::Monitor::new(Duration::from_secs(10))
        .start()
        .unwrap();
    group.bench_function("verdant_sleep_zero_monitored", |b| {
        b.iter_custom(micro::verdant_yield)
    });
    verdant::monitor::stop();
    may::config().set_workers(1);
    group.bench_function("may_yield_now", |b| b.iter_custom(micro::may_yield));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("tokio_yield_now", |b| {
        b.iter_custom(|iters| micro::tokio_yield(&rt, iters))
    });
    group.finish();
}
criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = yields
}
criterion_main!(benches);
