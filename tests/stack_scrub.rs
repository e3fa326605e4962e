//! SEC-1, the scrub end to end: a greenlet's stack data (a key, a request
//! body) does not reach the next greenlets that run on its stack. Each
//! round, a greenlet fills 8 KiB of its stack with a marker, switches while
//! the buffer is live (so the runtime sees how deep it went), and ends; the
//! next greenlet, on the same stack from the cache, scans the 64 KiB below
//! its own frame for the marker. A control shows that the same scan finds
//! a marker that a returned frame of the same greenlet left.

use std::hint::black_box;
use std::time::Duration;

use verdant::{spawn, yield_now};

const MARK: u64 = 0x5EC2_E7ED_0DDB_A11E;

/// Fills an 8 KiB buffer on the stack with the marker and switches while
/// it is live; returns its address.
#[inline(never)]
fn plant() -> usize {
    let buf = [MARK; 1024];
    let at = black_box(&buf).as_ptr() as usize;
    yield_now();
    black_box(&buf);
    at
}

/// Counts the marker's words in the `len` bytes below this frame.
#[inline(never)]
fn scan_below(len: usize) -> usize {
    let here = 0u64;
    let top = black_box(&here) as *const u64 as usize & !7;
    let mut found = 0;
    let mut a = top - len;
    while a < top {
        // SAFETY: the 64 KiB below this frame are the greenlet's own stack
        // (256 KiB usable, the guard further down), mapped and readable;
        // read as plain words, never as Rust values.
        if unsafe { std::ptr::read_volatile(a as *const u64) } == MARK {
            found += 1;
        }
        a += 8;
    }
    found
}

/// Fills an 8 KiB buffer on the stack with the marker and returns without
/// switching: the marker stays below the caller's frame.
#[inline(never)]
fn plant_and_return() -> usize {
    let buf = [MARK; 1024];
    black_box(&buf).as_ptr() as usize
}

/// The control: within one greenlet (no reuse, no scrub in between), the
/// scan finds the marker a returned frame left below it.
#[test]
fn the_scan_finds_a_marker_left_below_it() {
    let found = spawn(|| {
        black_box(plant_and_return());
        scan_below(64 * 1024)
    })
    .join()
    .unwrap();
    assert!(found >= 1000, "found {found} words");
}

#[test]
fn a_thousand_later_greenlets_never_find_an_earlier_ones_stack_data() {
    let mut planted_at = std::collections::HashSet::new();
    for round in 0..1000 {
        let a = spawn(plant);
        let at = a.join().unwrap();
        planted_at.insert(at & !0xffff);
        let found = spawn(|| scan_below(64 * 1024)).join().unwrap();
        assert_eq!(
            found, 0,
            "round {round}: the marker survived on a reused stack"
        );
    }
    // The stacks were reused (the cache gives back the same few), so the
    // scans looked where the markers had been.
    assert!(
        planted_at.len() <= 8,
        "{} distinct stacks",
        planted_at.len()
    );
    // And nothing is left on the stacks in the cache either.
    verdant::sleep(Duration::ZERO);
}
