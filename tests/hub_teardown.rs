//! What a thread's exit does to the greenlets it leaves behind.
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use verdant::Greenlet;

/// Sets its flag when dropped.
struct Flag(Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn greenlets_parked_in_the_hub_are_unwound_at_thread_exit() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    std::thread::spawn(move || {
        let flag = Flag(d);
        verdant::spawn(move || {
            let _flag = flag;
            verdant::sleep(Duration::from_secs(3600));
        });
        verdant::sleep(Duration::ZERO); // it starts, and parks in its sleep
    })
    .join()
    .unwrap();
    assert!(dropped.load(Ordering::SeqCst), "its destructors ran");
}

/// A raw greenlet whose own stack holds the last handle to it (here the
/// `Greenlet::current()` temporary, alive across its switch) is a cycle:
/// no handle drop ever ends it. The thread's exit unwinds it all the same,
/// with its destructors, as it does for greenlets parked in the hub; and a
/// greenlet never started whose function holds its last handle has that
/// function dropped. (Found by the AddressSanitizer job's leak check: both
/// were leaked, record, stack and captures.)
#[test]
fn a_switched_out_greenlet_kept_alive_by_its_own_stack_is_unwound_at_thread_exit() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let never = Arc::new(AtomicBool::new(false));
    let n = never.clone();
    std::thread::spawn(move || {
        let flag = Flag(d);
        let never_run = Flag(n);
        let g = Greenlet::new(move |()| {
            let _flag = flag;
            Greenlet::current().parent().unwrap().switch(());
            unreachable!("switched back to after its thread's exit");
        });
        g.switch(());
        drop(g);
        // Made and never switched to, its function holding the last handle
        // to itself (through `slot`): a cycle as well.
        let slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let unstarted = Greenlet::new(move |()| {
            let _n = never_run;
            drop(s);
        });
        *slot.borrow_mut() = Some(unstarted);
    })
    .join()
    .unwrap();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the switched-out greenlet's destructors ran"
    );
    assert!(
        never.load(Ordering::SeqCst),
        "the unstarted greenlet's function was dropped"
    );
}

thread_local! {
    /// Registered before the thread's runtime, so destroyed after it.
    static KEPT: RefCell<Option<Greenlet>> = const { RefCell::new(None) };
}

/// A greenlet whose last handle goes after its thread's runtime (kept in
/// a thread-local destroyed later) is unwound by the runtime's shutdown,
/// while the runtime is still there, like any greenlet left switched out;
/// the late drop of its handle finds it dead and does nothing (it is never
/// resumed once the runtime is gone: its frames may hold references to the
/// runtime). The thread exits cleanly.
#[test]
fn a_greenlet_held_past_its_runtime_is_unwound_by_the_shutdown_not_later() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    std::thread::spawn(move || {
        KEPT.with(|_| {}); // registered first: destroyed last
        let main = Greenlet::current(); // the runtime starts here
        let flag = Flag(d);
        let g = Greenlet::new(move |()| {
            let _flag = flag;
            main.switch(()); // suspended for good: no hub wait finds it
        });
        g.switch(());
        KEPT.with(|k| *k.borrow_mut() = Some(g));
    })
    .join()
    .expect("the thread exits cleanly");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the shutdown unwound the switched-out greenlet"
    );
}

/// PAN-7 at teardown: a greenlet that catches its `GreenletExit` in a loop
/// (and waits again each time) cannot hold the thread's exit: after 100
/// catches it is leaked, with a warning on stderr, and the thread ends.
/// Destructors that ran before the loop ran; the thread's other greenlets
/// are unwound as usual.
#[test]
fn a_greenlet_that_keeps_catching_its_exit_at_thread_exit_is_leaked_with_a_warning() {
    use std::panic::catch_unwind;
    let other_dropped = Arc::new(AtomicBool::new(false));
    let o = other_dropped.clone();
    let catches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = catches.clone();
    let t = std::time::Instant::now();
    std::thread::spawn(move || {
        verdant::spawn(move || loop {
            let _ = catch_unwind(|| verdant::sleep(Duration::from_secs(3600)));
            c.fetch_add(1, Ordering::SeqCst);
        });
        let flag = Flag(o);
        verdant::spawn(move || {
            let _flag = flag;
            verdant::sleep(Duration::from_secs(3600));
        });
        verdant::sleep(Duration::ZERO); // both start and park
    })
    .join()
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The first unwind, then 100 more raised at its waits; the last one
    // it catches is not raised again: it is suspended for good.
    assert_eq!(catches.load(Ordering::SeqCst), 101);
    assert!(
        other_dropped.load(Ordering::SeqCst),
        "the other was unwound"
    );
}
