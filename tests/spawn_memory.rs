//! What a spawned greenlet costs in heap blocks, counted by a global
//! allocator: a burst of spawns defers each greenlet's coroutine to its first
//! run (see `Hub::stack_stats`), and the function that makes it is kept in
//! the greenlet's record when it is small, so such a spawn allocates only
//! the record. One test, so that no other test's allocations are counted.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use verdant::{joinall, killall, Hub};

mod common;
use common::counting_alloc::{live, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Spawns `n` greenlets, each made by `make(i)`, with no stack free for
/// them, and returns the live blocks each added.
fn blocks_per_spawn<F: FnOnce() + 'static>(
    n: usize,
    mut make: impl FnMut(usize) -> F,
) -> (f64, Vec<verdant::JoinHandle<()>>) {
    // No stack free: with the cache off, the stacks of greenlets that ended
    // are given back (pending ones once the hub goes idle), so every spawn
    // below is deferred.
    let hub = Hub::current();
    hub.set_stack_cache_capacity(0);
    verdant::sleep(Duration::from_millis(1));
    let stats = hub.stack_stats();
    assert_eq!((stats.cached, stats.pending), (0, 0), "{stats:?}");
    let mut hs = Vec::with_capacity(n);
    let before = live();
    for i in 0..n {
        hs.push(verdant::spawn(make(i)));
    }
    let added = live() - before;
    (added as f64 / n as f64, hs)
}

#[test]
fn a_deferred_spawn_allocates_its_record_alone_when_its_function_is_small() {
    let hub = Hub::current();
    hub.set_stack_cache_capacity(0);
    let n = 2_000;
    let dropped = Rc::new(Cell::new(0usize));
    let ran = Rc::new(Cell::new(0usize));

    struct Count(Rc<Cell<usize>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    // A closure of 16 bytes (a duration): kept in place.
    let (small, hs) = blocks_per_spawn(n, |i| {
        let d = Duration::from_micros(i as u64 % 7);
        move || verdant::sleep(d)
    });
    assert_eq!(hub.stack_stats().cached, 0);
    joinall(&hs).unwrap();
    drop(hs);

    // A closure of 40 bytes: boxed.
    let big = [7u64; 5];
    let (large, hs) = blocks_per_spawn(n, |_| move || assert_eq!(std::hint::black_box(big)[4], 7));
    joinall(&hs).unwrap();
    drop(hs);
    println!("live blocks per deferred spawn: {small:.3} (16-byte closure), {large:.3} (40-byte closure)");
    // One block per greenlet: its record (the handles' vector was made
    // beforehand). A boxed function is the second.
    assert!(
        small < 1.05,
        "{small} blocks per spawn of a 16-byte closure"
    );
    assert!(
        (1.95..2.05).contains(&large),
        "{large} blocks per spawn of a 40-byte closure"
    );

    // Whether kept in place or boxed, a function runs once, and its
    // captures are dropped once, whether it ran or was killed unstarted.
    for boxed in [false, true] {
        let (_, hs) = blocks_per_spawn(10, |_| {
            let (c, ran, pad) = (Count(dropped.clone()), ran.clone(), [0u64; 4]);
            move || {
                if boxed {
                    std::hint::black_box(pad);
                }
                ran.set(ran.get() + 1);
                drop(c);
            }
        });
        killall(&hs[..5]);
        joinall(&hs[5..]).unwrap();
    }
    assert_eq!(ran.get(), 10, "five of each kind ran");
    assert_eq!(dropped.get(), 20, "every capture dropped once");
}
