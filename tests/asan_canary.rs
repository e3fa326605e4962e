//! Reliability test LEAK-3's canaries (§8.5 of the reliability plan): the
//! AddressSanitizer build must *report* memory errors made inside greenlets,
//! or its clean run of the suite proves nothing.
//!
//! Built only with `--cfg verdant_asan`, which CI's LEAK-3 step passes along
//! with `-Zsanitizer=address` (see `.ci/run`); an ordinary build has no tests
//! here. Each error is made in a child process (this binary re-run with
//! `VERDANT_STK_CHILD=<case>`), on a greenlet's stack, and the parent asserts
//! that ASan named it and ended the child with an error.
#![cfg(verdant_asan)]

use std::hint::black_box;

use verdant_runtime::{sleep, spawn, yield_now};

mod common;
use common::{child_case, output_text, run_child};

/// Runs `case` in a child and returns its stderr, asserting that it failed
/// and that ASan reported `what`.
fn expect_report(test: &str, case: &str, what: &str) -> String {
    let out = run_child(test, case, &[]);
    let text = output_text(&out);
    assert!(!out.status.success(), "the child succeeded:\n{text}");
    assert!(
        text.contains(&format!("ERROR: AddressSanitizer: {what}")),
        "no '{what}' report:\n{text}"
    );
    assert!(
        !text.contains("REACHED"),
        "the child ran past its error:\n{text}"
    );
    text
}

#[inline(never)]
fn freed_read() -> u8 {
    let b = Box::new([7u8; 64]);
    let p: *const u8 = b.as_ptr();
    drop(black_box(b));
    // SAFETY: none; this is the planted use after free ASan must catch.
    unsafe { std::ptr::read_volatile(p.add(black_box(3))) }
}

/// A heap use-after-free in a greenlet that has switched out and back in
/// (so the switch annotations have run both ways).
#[test]
fn heap_use_after_free_in_a_greenlet_is_reported() {
    const TEST: &str = "heap_use_after_free_in_a_greenlet_is_reported";
    if child_case().is_some() {
        let h = spawn(|| {
            yield_now();
            sleep(std::time::Duration::from_millis(1));
            freed_read()
        });
        let v = h.join();
        println!("REACHED {v:?}");
        return;
    }
    let text = expect_report(TEST, "uaf", "heap-use-after-free");
    // The report's stack names the greenlet's function, unwound across the
    // greenlet's own stack.
    assert!(text.contains("freed_read"), "{text}");
}

#[inline(never)]
fn overrun(i: usize) -> u8 {
    let local = [1u8; 32];
    let p = black_box(local.as_ptr());
    // SAFETY: none; reads past the end of a stack array on purpose.
    unsafe { std::ptr::read_volatile(p.add(i)) }
}

/// A stack buffer overflow on a greenlet's (pooled, mmap'ed) stack: ASan's
/// red zones work there as on a thread's stack.
#[test]
fn stack_overflow_of_a_local_in_a_greenlet_is_reported() {
    const TEST: &str = "stack_overflow_of_a_local_in_a_greenlet_is_reported";
    if child_case().is_some() {
        // A few greenlets first, so the stack used is a recycled one.
        for _ in 0..4 {
            spawn(|| overrun(black_box(5))).join().unwrap();
        }
        let v = spawn(|| overrun(black_box(40))).join();
        println!("REACHED {v:?}");
        return;
    }
    expect_report(TEST, "overrun", "stack-buffer-overflow");
}

/// The control: the same greenlets without the planted errors run clean
/// under ASan (reads in bounds, a killed greenlet's stack reused).
#[test]
fn the_same_greenlets_without_the_errors_run_clean() {
    let a = spawn(|| overrun(black_box(31)));
    let b = spawn(|| {
        let v = Box::new([1u8; 64]); // on the heap
        yield_now();
        v[63]
    });
    assert_eq!(a.join().unwrap(), 1);
    assert_eq!(b.join().unwrap(), 1);
    let sleeper = spawn(|| {
        let local = [9u8; 256];
        sleep(std::time::Duration::from_secs(60));
        black_box(local)[0]
    });
    yield_now();
    sleeper.kill();
    // A greenlet that catches a panic of its own, one that catches its kill
    // at each wait, and one that panics: each unwinds frames whose red
    // zones ASan must be told are gone. That is corosensei's `sanitizer`
    // feature (through `verdant-runtime/asan`); built without it, the
    // suite's `task_panics` trips over such a red zone in the scrub of a
    // recycled stack (a false "stack-buffer-underflow").
    let caught = spawn(|| {
        let r = std::panic::catch_unwind(|| {
            let local = [3u8; 512];
            if black_box(true) {
                panic!("caught inside");
            }
            black_box(local)[0]
        });
        r.is_err()
    });
    assert!(caught.join().unwrap());
    let give_in = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = give_in.clone();
    let stubborn = spawn(move || {
        while !g.get() {
            let _ = std::panic::catch_unwind(|| sleep(std::time::Duration::from_secs(60)));
        }
    });
    yield_now();
    // Raised again at each of its waits, caught each time: still alive.
    assert!(!stubborn.kill_timeout(std::time::Duration::from_millis(20)));
    give_in.set(true);
    stubborn.join().unwrap();
    assert!(spawn(|| panic!("uncaught")).join().is_err());
    // The stacks, red zones and all, serve the next greenlets.
    for _ in 0..8 {
        assert_eq!(spawn(|| overrun(black_box(0))).join().unwrap(), 1);
    }
}
