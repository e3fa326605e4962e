//! Greenlet switch round trip (main → greenlet → main, two switches) against
//! raw corosensei resume/suspend and generator-rs resume/yield, in one run.
//!
//! `cargo bench --bench switch`. Target: verdant ≤ 2× raw corosensei.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use verdant::Greenlet;

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch_round_trip");

    group.bench_function("verdant_greenlet", |b| {
        let main = Greenlet::current();
        let g = Greenlet::new(move |()| loop {
            main.switch(());
        });
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(g.switch(()));
            }
            t.elapsed()
        });
    });

    group.bench_function("raw_corosensei", |b| {
        let mut co: corosensei::Coroutine<(), (), ()> = corosensei::Coroutine::new(|y, ()| loop {
            y.suspend(());
        });
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(co.resume(()));
            }
            t.elapsed()
        });
    });

    group.bench_function("generator_rs", |b| {
        let mut g = generator::Gn::<()>::new_scoped(|mut s| loop {
            s.yield_(());
        });
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(g.resume());
            }
            t.elapsed()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = round_trips
}
criterion_main!(benches);
