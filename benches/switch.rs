//! Greenlet switch round trip (main → greenlet → main, two switches) against
//! raw corosensei resume/suspend and generator-rs resume/yield, in one run.
//!
//! `cargo bench --bench switch`. Target: verdant ≤ 2× raw corosensei.
//!
//! Two more rows measure *floors*: the least a greenlet switch built on
//! corosensei can cost once it carries a value (see [`floor`]). They show
//! where the 2× target stands against what any implementation must pay:
//! raw corosensei moves nothing, while a greenlet's `switch(value)` hands a
//! value to whichever greenlet resumes, so the value goes through memory.
//!
//! Measured here (2026-11-24): raw 2.82 ns; one-word floor 5.5 ns (1.95×);
//! two-word floor 10.4 ns (3.7×); verdant 12.8 ns; generator-rs 11.9–13.9
//! ns. The two-word floor moves with code layout (7.5 ns in a standalone
//! binary with the same loop; 11.6 ns with the main side out of line);
//! the one-word floor does not. Each word read back after a switch costs
//! 1–2 ns per round trip, even when the store forwards (a single 16-byte
//! store and load measured no better).
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use verdant::Greenlet;

/// The floor: a main ↔ child switch with nothing but what every greenlet
/// switch needs, on the same corosensei coroutine as the raw row.
///
/// * the running greenlet is recorded (one store each way: `current()` and
///   the overflow handler need it);
/// * the value travels in a mailbox of `W` words: the sender writes it,
///   the receiver reads it after the switch (`W = 2` is verdant's
///   [`Value`](verdant::Value): a type tag and a data word; each word is
///   read on its own, as verdant reads it).
///
/// No state, no parent, no panic or kill checks, no hub: verdant does all
/// of those on top.
mod floor {
    use std::cell::{Cell, UnsafeCell};
    use std::hint::black_box;

    use corosensei::{Coroutine, Yielder};

    pub struct Floor<const W: usize> {
        co: UnsafeCell<Coroutine<(), (), ()>>,
        yielder: Cell<*const Yielder<(), ()>>,
        in_child: Cell<bool>,
        mail: [Cell<usize>; W],
    }

    impl<const W: usize> Floor<W> {
        /// A child that switches back to main with `[1; W]` for ever.
        pub fn new() -> Box<Floor<W>> {
            let f = Box::new(Floor {
                co: UnsafeCell::new(Coroutine::new(|_, ()| {})),
                yielder: Cell::new(std::ptr::null()),
                in_child: Cell::new(false),
                mail: std::array::from_fn(|_| Cell::new(0)),
            });
            let me: *const Floor<W> = &*f;
            let co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
                // SAFETY: the box outlives its coroutine (a field of it),
                // and its address does not move.
                let me = unsafe { &*me };
                me.yielder.set(y);
                loop {
                    black_box(me.child_switch([1; W]));
                }
            });
            // SAFETY: nothing runs the placeholder coroutine; this is the
            // only reference to the cell.
            unsafe { *f.co.get() = co };
            f
        }

        fn post(&self, v: [usize; W]) {
            for (m, x) in self.mail.iter().zip(v) {
                m.set(x);
            }
        }

        fn collect(&self) -> [usize; W] {
            std::array::from_fn(|i| black_box(self.mail[i].get()))
        }

        /// Main switches to the child with `v`; returns what it sends back.
        /// Inlined into the timing loop, as raw corosensei's `resume` is.
        #[inline(always)]
        pub fn main_switch(&self, v: [usize; W]) -> [usize; W] {
            self.post(v);
            self.in_child.set(true);
            // SAFETY: only main resumes, never re-entrantly (the child
            // suspends before main runs again).
            black_box(unsafe { &mut *self.co.get() }.resume(()));
            self.in_child.set(false);
            self.collect()
        }

        fn child_switch(&self, v: [usize; W]) -> [usize; W] {
            self.post(v);
            // SAFETY: called on the child's stack, where the yielder lives.
            unsafe { &*self.yielder.get() }.suspend(());
            self.collect()
        }
    }

    impl<const W: usize> Drop for Floor<W> {
        fn drop(&mut self) {
            // The child never returns: unwind its stack before it goes.
            self.co.get_mut().force_unwind();
        }
    }
}

fn floor_row<const W: usize>(b: &mut criterion::Bencher<'_>) {
    let f = floor::Floor::<W>::new();
    b.iter_custom(|iters| {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f.main_switch([2; W]));
        }
        t.elapsed()
    });
}

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

    group.bench_function("floor_one_word_value", floor_row::<1>);
    group.bench_function("floor_two_word_value", floor_row::<2>);

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
