//! PAN-3 with its allocation baseline: 1,000 suspended greenlets, each
//! holding a value with a destructor, are dropped (raw greenlets), killed
//! (parked tasks) or left at thread exit (parked and unstarted tasks).
//! Every destructor runs, and the live heap allocations (a counting global
//! allocator) come back to what they were before the round: nothing of a
//! greenlet, its record, its closure or its wait outlives it.
//!
//! One test in this binary, so that no other test allocates meanwhile.
//! Each scenario runs a first round that fills the caches (the hub's
//! queues, lists and stack pool grow to their working size) and is then
//! measured on a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use verdant::{killall, sleep, spawn, yield_now, Greenlet, Hub};

mod common;

#[global_allocator]
static ALLOC: common::counting_alloc::Counting = common::counting_alloc::Counting;

const SUSPENDED: usize = 1_000;

/// A scenario: one round of it, counting its destructors in the counter.
type Round = dyn Fn(&Arc<AtomicUsize>);

/// Counts its own drop.
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `round` twice (the first fills the caches) and returns the change
/// in live allocations over the second, with the drops it counted.
fn measured(round: impl Fn(&Arc<AtomicUsize>)) -> (isize, usize) {
    round(&Arc::new(AtomicUsize::new(0)));
    let drops = Arc::new(AtomicUsize::new(0));
    let before = common::counting_alloc::live();
    round(&drops);
    let after = common::counting_alloc::live();
    (after - before, drops.load(Ordering::Relaxed))
}

/// Raw greenlets switched into once, suspended with a guard on their
/// stacks, then dropped.
fn drop_suspended_raw_greenlets(drops: &Arc<AtomicUsize>) {
    let gs: Vec<Greenlet> = (0..SUSPENDED)
        .map(|_| {
            let guard = CountOnDrop(drops.clone());
            let g = Greenlet::new(move |()| {
                let _guard = guard;
                // Not in one statement: a temporary handle to itself would
                // live on its own stack across the switch (a cycle).
                let parent = Greenlet::current().parent().unwrap();
                parent.switch(());
                unreachable!("resumed after being dropped");
            });
            g.switch(());
            g
        })
        .collect();
    drop(gs);
}

/// Tasks parked in a long sleep with a guard, killed together.
fn kill_parked_tasks(drops: &Arc<AtomicUsize>) {
    let hs: Vec<_> = (0..SUSPENDED)
        .map(|_| {
            let guard = CountOnDrop(drops.clone());
            spawn(move || {
                let _guard = guard;
                sleep(Duration::from_secs(3600));
            })
        })
        .collect();
    yield_now(); // each parks in its sleep
    killall(&hs);
    for h in hs {
        assert!(h.join().unwrap_err().is_killed());
    }
}

/// A thread that ends with tasks parked (and, with `unstarted`, tasks that
/// never ran) under its hub.
fn thread_exit(drops: &Arc<AtomicUsize>, unstarted: bool) {
    let d = drops.clone();
    std::thread::spawn(move || {
        for _ in 0..SUSPENDED {
            let guard = CountOnDrop(d.clone());
            // The handles are dropped: only the hub holds the tasks.
            drop(spawn(move || {
                let _guard = guard;
                sleep(Duration::from_secs(3600));
            }));
        }
        if !unstarted {
            yield_now(); // each parks in its sleep
        }
    })
    .join()
    .unwrap();
}

#[test]
fn suspended_greenlets_leave_no_allocation_behind() {
    // The hub of this thread exists before anything is counted.
    Hub::current();
    yield_now();
    let cases: [(&str, &Round); 4] = [
        (
            "drop 1,000 suspended raw greenlets",
            &drop_suspended_raw_greenlets,
        ),
        ("kill 1,000 parked tasks", &kill_parked_tasks),
        ("thread exit, 1,000 parked tasks", &|d| {
            thread_exit(d, false)
        }),
        ("thread exit, 1,000 unstarted tasks", &|d| {
            thread_exit(d, true)
        }),
    ];
    for (what, round) in cases {
        let (grew, dropped) = measured(round);
        eprintln!("{what}: {dropped} drops, live allocations {grew:+}");
        assert_eq!(dropped, SUSPENDED, "{what}: destructors not run");
        assert_eq!(grew, 0, "{what}: live allocations did not come back");
    }
}
