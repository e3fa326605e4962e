//! Greenlet-local storage versus thread-locals. Partly a port of gevent's
//! src/gevent/tests/test__local.py (`test_local_is_per_greenlet`,
//! `test_local_dicts_for_greenlets`, the cleanup-on-exit cases); skipped:
//! subclassing `local` and `__slots__` cases (Python object model).
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use verdant::{greenlet_local, joinall, spawn, yield_now};

greenlet_local!(static NAME: RefCell<String> = RefCell::new(String::from("unset")));
thread_local!(static SHARED_NAME: RefCell<String> = RefCell::new(String::from("unset")));

#[test]
fn greenlet_locals_are_per_greenlet_and_thread_locals_are_not() {
    let hs: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|n| {
            spawn(move || {
                NAME.with(|v| *v.borrow_mut() = n.to_owned());
                SHARED_NAME.with(|v| *v.borrow_mut() = n.to_owned());
                yield_now(); // the others write meanwhile
                (
                    NAME.with(|v| v.borrow().clone()),
                    SHARED_NAME.with(|v| v.borrow().clone()),
                )
            })
        })
        .collect();
    joinall(&hs).unwrap();
    let got: Vec<(String, String)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    // Each greenlet kept its own value...
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    // ...while the thread-local holds whatever the last writer put: the hazard.
    assert!(got.iter().all(|g| g.1 == "c"), "{got:?}");
    // Main has its own value, untouched by the spawned ones.
    assert_eq!(NAME.with(|v| v.borrow().clone()), "unset");
}

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

greenlet_local!(static HELD: RefCell<Option<Counted>> = RefCell::new(None));

#[test]
fn locals_are_dropped_when_the_greenlet_ends_even_if_its_handle_lives() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let h = spawn(move || HELD.with(|v| *v.borrow_mut() = Some(Counted(d))));
    h.wait().unwrap();
    assert_eq!(
        drops.get(),
        1,
        "dropped at the greenlet's end, not at the handle's"
    );
    drop(h);
    // Killed while parked: dropped as it unwinds.
    let d = drops.clone();
    let k = spawn(move || {
        HELD.with(|v| *v.borrow_mut() = Some(Counted(d)));
        verdant::sleep(std::time::Duration::from_secs(60));
    });
    verdant::sleep(std::time::Duration::from_millis(1));
    k.kill();
    assert_eq!(drops.get(), 2);
}

greenlet_local!(static DEPTH: Cell<u32> = Cell::new(0));

#[test]
fn using_a_key_inside_its_own_with_panics_clearly() {
    let h = spawn(|| DEPTH.with(|_| DEPTH.with(|d| d.get())));
    let e = h.join().unwrap_err();
    assert!(e.panic_message().unwrap().contains("in use"), "{e}");
    // The key still works afterwards (the lent value came back on unwind).
    assert_eq!(
        spawn(|| {
            DEPTH.with(|d| d.set(4));
            DEPTH.with(Cell::get)
        })
        .join()
        .unwrap(),
        4
    );
}

/// Records, when dropped, which greenlet dropped it.
struct DropWitness(Rc<RefCell<Vec<u64>>>);

impl Drop for DropWitness {
    fn drop(&mut self) {
        self.0.borrow_mut().push(verdant::Greenlet::current().id());
    }
}

greenlet_local!(static WITNESS: RefCell<Option<DropWitness>> = RefCell::new(None));

#[test]
fn a_raw_greenlets_locals_are_dropped_inside_it_when_it_ends() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let g = verdant::Greenlet::new(move |()| {
        WITNESS.with(|w| *w.borrow_mut() = Some(DropWitness(l)));
        verdant::Greenlet::current().id()
    });
    let id = g.switch(()).take::<u64>();
    assert!(g.is_dead());
    // Dropped at its end, while it still ran (not later, with the record,
    // on whichever greenlet drops the last handle).
    assert_eq!(*log.borrow(), [id]);
    drop(g);
    assert_eq!(log.borrow().len(), 1, "dropped once");
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a greenlet-local's destructor panicked");
    }
}

greenlet_local!(static BOMB: RefCell<Option<PanicsOnDrop>> = RefCell::new(None));

#[test]
fn a_panicking_local_destructor_is_the_greenlets_own_panic() {
    let h = spawn(|| {
        BOMB.with(|b| *b.borrow_mut() = Some(PanicsOnDrop));
        7
    });
    // The task's panic, reported by its join; it never reaches the hub or
    // main.
    let err = h.join().unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(
        err.panic_message(),
        Some("a greenlet-local's destructor panicked")
    );
    // And the hub goes on.
    assert_eq!(spawn(|| 1).join().unwrap(), 1);
}

greenlet_local!(static ID: Cell<usize> = Cell::new(usize::MAX));
thread_local!(static SHARED_ID: Cell<usize> = const { Cell::new(usize::MAX) });

/// THR-4 at scale: 1,000 greenlets each write their id to a greenlet-local
/// and read it back after each of 100 switches: 0 mismatches; the same
/// through a `thread_local!` is overwritten by the others almost every
/// time (the hazard the greenlet-local exists for).
#[test]
fn a_thousand_greenlets_keep_their_locals_across_a_hundred_switches() {
    let hs: Vec<_> = (0..1000)
        .map(|id| {
            spawn(move || {
                let (mut mismatched, mut shared_mismatched) = (0, 0);
                for _ in 0..100 {
                    ID.with(|v| v.set(id));
                    SHARED_ID.with(|v| v.set(id));
                    yield_now(); // the other 999 write meanwhile
                    mismatched += usize::from(ID.with(Cell::get) != id);
                    shared_mismatched += usize::from(SHARED_ID.with(Cell::get) != id);
                }
                (mismatched, shared_mismatched)
            })
        })
        .collect();
    let (mut bad, mut shared_bad) = (0, 0);
    for h in hs {
        let (m, s) = h.join().unwrap();
        bad += m;
        shared_bad += s;
    }
    assert_eq!(bad, 0, "greenlet-local mismatches in 100,000 reads");
    assert!(
        shared_bad > 90_000,
        "thread-local mismatches: {shared_bad} of 100,000"
    );
}
