//! Ports of greenlet's own tests, `src/greenlet/tests/test_greenlet.py`,
//! `test_throw.py`, `test_generator.py`, `test_generator_nested.py` and
//! `test_leaks.py`, rewritten for verdant's [`Greenlet`]: the cases that
//! apply to a Rust API (no kwargs, no frames, no `__dict__`, no cross-thread
//! switches, which the type system already forbids).
//!
//! Python exceptions become panic payloads (`panic_any(SomeError)`), greenlet
//! attributes become methods (`dead` is `is_dead()`, `bool(g)` is
//! `is_started()`), and reference counts are checked with `Rc::strong_count`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{catch_unwind, panic_any, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use verdant::{Greenlet, GreenletExit, Hub, ParentError, Value};

/// greenlet's `SomeError`.
#[derive(Debug)]
struct SomeError;

/// Python's `KeyError`, for `test_send_exception`.
#[derive(Debug)]
struct KeyError;

/// Python's `IndexError`, for `test_throw_goes_to_original_parent`.
#[derive(Debug)]
struct IndexError;

/// Python's `RuntimeError(msg)`, for `test_class` / `test_val`.
#[derive(Debug)]
struct RuntimeError(&'static str);

type Log = Rc<RefCell<Vec<&'static str>>>;

fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// test_throw.py's `switch(*args)`: switch to the current greenlet's parent.
///
/// The handle from `Greenlet::current()` is dropped before switching: kept
/// alive across the switch (as a temporary of the same statement would be),
/// the suspended stack would hold a handle to its own greenlet, a cycle that
/// keeps a dropped greenlet from ever being unwound.
fn parent_switch<T: 'static>(value: T) -> Value {
    let parent = Greenlet::current()
        .parent()
        .expect("a child greenlet has a parent");
    parent.switch(value)
}

/// Names a panic payload the way the Python tests name exception classes.
fn payload_name(p: &(dyn std::any::Any + Send)) -> &'static str {
    if p.is::<SomeError>() {
        "SomeError"
    } else if p.is::<KeyError>() {
        "KeyError"
    } else if p.is::<GreenletExit>() {
        "GreenletExit"
    } else if p.is::<IndexError>() {
        "IndexError"
    } else {
        "other"
    }
}

/// Pushes its label to a log when dropped: a `finally:` block.
struct Guard {
    log: Log,
    label: &'static str,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.label);
    }
}

/// test_greenlet.py's `fmain(seen)`: wait in the parent, record whatever is
/// raised at that switch point and re-raise it; otherwise raise `SomeError`.
fn fmain(seen: Log) {
    let r = catch_unwind(AssertUnwindSafe(|| parent_switch(())));
    if let Err(p) = r {
        seen.borrow_mut().push(payload_name(&*p));
        resume_unwind(p);
    }
    panic_any(SomeError);
}

/// Runs `f`, which must panic; returns the payload's name.
fn panics_with(f: impl FnOnce() -> Value) -> &'static str {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => panic!("expected a panic, got {v:?}"),
        Err(p) => payload_name(&*p),
    }
}

// ---------------------------------------------------------------------------
// test_greenlet.py
// ---------------------------------------------------------------------------

// test_greenlet.py::test_simple
#[test]
fn test_simple() {
    let lst = Rc::new(RefCell::new(Vec::new()));
    let l = lst.clone();
    let g = Greenlet::new(move |()| {
        l.borrow_mut().push(1);
        parent_switch(());
        l.borrow_mut().push(3);
    });
    lst.borrow_mut().push(0);
    g.switch(());
    lst.borrow_mut().push(2);
    g.switch(());
    lst.borrow_mut().push(4);
    assert_eq!(*lst.borrow(), (0..5).collect::<Vec<_>>());
    assert!(g.is_dead());
}

// test_greenlet.py::test_threads (each thread has its own greenlet tree)
#[test]
fn test_threads() {
    let threads: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                let main = Greenlet::current();
                assert!(main.is_main());
                let g = Greenlet::new(move |x: usize| {
                    let y = parent_switch(x + 1).take::<usize>();
                    y * 2
                });
                assert_eq!(g.switch(i).take::<usize>(), i + 1);
                assert_eq!(g.switch(i).take::<usize>(), i * 2);
                assert!(g.is_dead());
                Greenlet::current() == main
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
}

// test_greenlet.py::test_two_children
#[test]
fn test_two_children() {
    let lst = Rc::new(RefCell::new(Vec::<i32>::new()));
    let f = |l: Rc<RefCell<Vec<i32>>>| {
        move |()| {
            l.borrow_mut().push(1);
            parent_switch(());
            l.borrow_mut().extend([1, 1]);
        }
    };
    let g = Greenlet::new(f(lst.clone()));
    let h = Greenlet::new(f(lst.clone()));
    g.switch(());
    assert_eq!(lst.borrow().len(), 1);
    h.switch(());
    assert_eq!(lst.borrow().len(), 2);
    h.switch(());
    assert_eq!(lst.borrow().len(), 4);
    assert!(h.is_dead());
    assert!(!g.is_dead());
    g.switch(());
    assert_eq!(lst.borrow().len(), 6);
    assert!(g.is_dead());
}

// test_greenlet.py::test_two_recursive_children
#[test]
fn test_two_recursive_children() {
    let lst = new_log();
    let l = lst.clone();
    let outer = Greenlet::new(move |()| {
        l.borrow_mut().push("a");
        let l2 = l.clone();
        let inner = Greenlet::new(move |()| {
            l2.borrow_mut().push("b");
            parent_switch(());
        });
        assert_eq!(inner.parent(), Some(Greenlet::current()));
        inner.switch(());
        l.borrow_mut().push("c");
    });
    outer.switch(());
    assert_eq!(*lst.borrow(), ["a", "b", "c"]);
    assert!(outer.is_dead());
}

// test_greenlet.py::test_exception
#[test]
fn test_exception() {
    let seen = new_log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let g1 = Greenlet::new(move |()| fmain(s1));
    let g2 = Greenlet::new(move |()| fmain(s2));
    g1.switch(());
    g2.switch(());
    g2.set_parent(&g1).unwrap();
    assert!(seen.borrow().is_empty());

    // g2 raises SomeError; it goes to its (new) parent g1 at g1's switch
    // point, g1 records it and re-raises, and main gets it from g1.
    assert_eq!(panics_with(|| g2.switch(())), "SomeError");
    assert_eq!(*seen.borrow(), ["SomeError"]);
    assert!(g1.is_dead() && g2.is_dead());

    // Switching to the dead g2 goes up its parent chain back to main.
    let value = g2.switch(());
    assert!(value.is_empty());
    assert_eq!(*seen.borrow(), ["SomeError"]);

    let value = g2.switch(25);
    assert_eq!(value.take::<i32>(), 25);
    assert_eq!(*seen.borrow(), ["SomeError"]);
}

// test_greenlet.py::test_send_exception
#[test]
fn test_send_exception() {
    // send_exception(g, exc): a crasher greenlet whose parent is g raises exc.
    fn send_exception(g: &Greenlet) -> Value {
        let crasher = Greenlet::new(|()| {
            panic_any(KeyError);
        });
        crasher.set_parent(g).unwrap();
        crasher.switch(())
    }
    let seen = new_log();
    let s = seen.clone();
    let g1 = Greenlet::new(move |()| fmain(s));
    g1.switch(());
    assert_eq!(panics_with(|| send_exception(&g1)), "KeyError");
    assert_eq!(*seen.borrow(), ["KeyError"]);
    assert!(g1.is_dead());
}

// test_greenlet.py::test_dealloc (unwinding: the `finally` blocks run)
#[test]
fn test_dealloc() {
    let seen = new_log();
    let body = |label: &'static str, seen: Log| {
        move |()| {
            let _finally = Guard {
                log: seen.clone(),
                label,
            };
            parent_switch(());
            seen.borrow_mut().push("resumed normally");
        }
    };
    let g1 = Greenlet::new(body("g1 unwound", seen.clone()));
    let g2 = Greenlet::new(body("g2 unwound", seen.clone()));
    g1.switch(());
    g2.switch(());
    assert!(seen.borrow().is_empty());
    drop(g1);
    assert_eq!(*seen.borrow(), ["g1 unwound"]);
    drop(g2);
    assert_eq!(*seen.borrow(), ["g1 unwound", "g2 unwound"]);
    // Main is still current and can switch on after the nested unwinds.
    assert!(Greenlet::current().is_main());
    assert_eq!(Greenlet::new(|x: i32| x + 1).switch(1).take::<i32>(), 2);
}

// test_greenlet.py::test_dealloc (the dropped greenlet sees GreenletExit)
#[test]
fn test_dealloc_raises_greenlet_exit() {
    let seen = new_log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let g1 = Greenlet::new(move |()| fmain(s1));
    let g2 = Greenlet::new(move |()| fmain(s2));
    g1.switch(());
    g2.switch(());
    assert!(seen.borrow().is_empty());
    drop(g1);
    assert_eq!(*seen.borrow(), ["GreenletExit"]);
    drop(g2);
    assert_eq!(*seen.borrow(), ["GreenletExit", "GreenletExit"]);
}

// test_greenlet.py::test_frame (gr_frame and bool(g) become is_started/is_dead)
#[test]
fn test_frame() {
    let g = Greenlet::new(|()| {
        let me = Greenlet::current();
        assert!(me.is_current() && me.is_started() && !me.is_dead());
        parent_switch("suspended");
        "meaning of life"
    });
    assert!(!g.is_started() && !g.is_dead() && !g.is_current());
    assert_eq!(g.switch(()).take::<&str>(), "suspended");
    assert!(g.is_started(), "a suspended greenlet is started (bool(g))");
    assert!(!g.is_dead() && !g.is_current());
    let from_g = g.switch(());
    assert!(!g.is_started(), "a dead greenlet is no longer started");
    assert!(g.is_dead());
    assert_eq!(from_g.take::<&str>(), "meaning of life");
}

// test_greenlet.py::test_running_greenlet_has_no_run (captures freed on return)
#[test]
fn test_running_greenlet_has_no_run() {
    let captured = Rc::new(());
    let c = captured.clone();
    let g = Greenlet::new(move |()| {
        let _c = c;
        parent_switch(());
    });
    assert_eq!(Rc::strong_count(&captured), 2);
    g.switch(());
    assert_eq!(
        Rc::strong_count(&captured),
        2,
        "held on the suspended stack"
    );
    g.switch(());
    assert!(g.is_dead());
    assert_eq!(
        Rc::strong_count(&captured),
        1,
        "freed when the function ends"
    );
}

// test_greenlet.py::test_parent_equals_None (the default parent is current)
#[test]
fn test_parent_equals_current() {
    let main = Greenlet::current();
    let g = Greenlet::new(|()| {
        let me = Greenlet::current();
        let child = Greenlet::new(|()| ());
        child.parent() == Some(me)
    });
    assert_eq!(g.parent(), Some(main.clone()));
    assert!(g.switch(()).take::<bool>());
    assert_eq!(main.parent(), None);
}

// test_greenlet.py::test_exception (tail: switch(25) to a dead greenlet returns 25)
#[test]
fn test_switch_to_dead_greenlet() {
    let g = Greenlet::new(|x: i32| x * 2);
    assert_eq!(g.switch(4).take::<i32>(), 8);
    assert!(g.is_dead());
    assert_eq!(g.switch(25).take::<i32>(), 25);
    assert!(g.switch(()).is_empty());
    assert_eq!(g.switch(String::from("x")).take::<String>(), "x");
    assert!(g.is_dead());
}

// test_greenlet.py::test_switch_to_dead_greenlet_reparent
#[test]
fn test_switch_to_dead_greenlet_reparent() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let parent_never_started = Greenlet::new(move |()| s.borrow_mut().push(24));
    let s = seen.clone();
    let child = Greenlet::new(move |()| s.borrow_mut().push(42));
    child.switch(());
    assert_eq!(*seen.borrow(), [42]);
    child.set_parent(&parent_never_started).unwrap();
    // The same as switching to the parent: it starts and returns to main.
    let result = child.switch(());
    assert!(result.is_empty());
    assert_eq!(*seen.borrow(), [42, 24]);
    assert!(parent_never_started.is_dead());
}

// test_greenlet.py::test_falling_off_end_switches_to_unstarted_parent_works
#[test]
fn test_falling_off_end_switches_to_unstarted_parent_works() {
    let parent_never_started = Greenlet::new(|x: i32| (x, 24));
    let child = Greenlet::new(|()| 42);
    child.set_parent(&parent_never_started).unwrap();
    let result = child.switch(());
    assert_eq!(result.take::<(i32, i32)>(), (42, 24));
    assert!(child.is_dead() && parent_never_started.is_dead());
}

// test_greenlet.py::test_falling_off_end_switches_to_unstarted_parent_raises_error
#[test]
fn test_falling_off_end_switches_to_unstarted_parent_raises_error() {
    let parent_never_started = Greenlet::new(|()| 13);
    let child = Greenlet::new(|()| 42);
    child.set_parent(&parent_never_started).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| child.switch(()))).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(msg.contains("i32") && msg.contains("()"), "{msg}");
    assert!(child.is_dead() && parent_never_started.is_dead());
}

// test_greenlet.py::test_falling_off_end (return value goes to a started parent)
#[test]
fn test_falling_off_end_returns_to_started_parent() {
    let main = Greenlet::current();
    let g1 = Greenlet::new(move |()| {
        // Suspend in main; whoever resumes us next passes the value.
        let got = main.switch("g1 waiting").take::<i32>();
        got + 1
    });
    assert_eq!(g1.switch(()).take::<&str>(), "g1 waiting");
    let child = Greenlet::new(|x: i32| x * 10);
    child.set_parent(&g1).unwrap();
    // child returns 50 to g1 (not to main, the switcher); g1 returns 51 to main.
    assert_eq!(child.switch(5).take::<i32>(), 51);
    assert!(child.is_dead() && g1.is_dead());
}

// test_greenlet.py::TestGreenletSetParentErrors (cycle and main's parent)
#[test]
fn test_set_parent_errors() {
    let a = Greenlet::new(|()| ());
    let b = Greenlet::new(|()| ());
    let c = Greenlet::new(|()| ());
    b.set_parent(&a).unwrap();
    c.set_parent(&b).unwrap();
    assert_eq!(a.set_parent(&a), Err(ParentError::Cycle));
    assert_eq!(a.set_parent(&c), Err(ParentError::Cycle));
    assert_eq!(b.set_parent(&c), Err(ParentError::Cycle));
    // A failed set_parent leaves the old parent.
    assert_eq!(a.parent(), Some(Greenlet::current()));
    assert_eq!(b.parent(), Some(a.clone()));
    let main = Greenlet::current();
    assert_eq!(main.set_parent(&a), Err(ParentError::Fixed));
    assert_eq!(main.parent(), None);
    let hub = Hub::current().greenlet();
    assert_eq!(hub.set_parent(&a), Err(ParentError::Fixed));
    assert_eq!(hub.parent(), Some(main));
    // Re-parenting away from a chain is fine.
    c.set_parent(&a).unwrap();
    b.set_parent(&c).unwrap();
    assert_eq!(b.parent(), Some(c));
}

// test_greenlet.py (switching to the running greenlet returns the value at once)
#[test]
fn test_switch_to_self() {
    let main = Greenlet::current();
    assert_eq!(main.switch(7).take::<i32>(), 7);
    assert!(main.switch(()).is_empty());
    let g = Greenlet::new(|x: i32| {
        let me = Greenlet::current();
        let echoed = me.switch(x + 1).take::<i32>();
        assert!(me.is_current());
        echoed * 2
    });
    assert_eq!(g.switch(1).take::<i32>(), 4);
    assert!(g.is_dead());
}

// ---------------------------------------------------------------------------
// test_throw.py
// ---------------------------------------------------------------------------

// test_throw.py::test_kill
#[test]
fn test_kill() {
    let log = new_log();
    let l = log.clone();
    let g = Greenlet::new(move |()| {
        let _finally = Guard {
            log: l,
            label: "unwound",
        };
        parent_switch("ok");
        parent_switch("fail");
    });
    assert_eq!(g.switch(()).take::<&str>(), "ok");
    let res = g.throw();
    assert!(res.is::<GreenletExit>(), "got {res:?}");
    assert!(g.is_dead());
    assert_eq!(*log.borrow(), ["unwound"]);
    // Immediately eaten by the already-dead greenlet.
    let res = g.throw();
    assert!(res.is::<GreenletExit>(), "got {res:?}");
    assert_eq!(*log.borrow(), ["unwound"]);
}

// test_throw.py::test_kill (throw into an unstarted greenlet: it dies unrun)
#[test]
fn test_throw_unstarted() {
    let ran = Rc::new(Cell::new(false));
    let captured = Rc::new(());
    let (r, c) = (ran.clone(), captured.clone());
    let g = Greenlet::new(move |()| {
        let _c = c;
        r.set(true);
    });
    assert_eq!(Rc::strong_count(&captured), 2);
    assert!(g.throw().is::<GreenletExit>());
    assert!(!ran.get(), "a greenlet killed before it started never runs");
    assert!(g.is_dead() && !g.is_started());
    assert_eq!(Rc::strong_count(&captured), 1, "its function was dropped");
    // Switching to it now goes to the parent.
    assert_eq!(g.switch(3).take::<i32>(), 3);
    assert!(!ran.get());
}

// test_throw.py::test_class / test_val (a custom payload is caught inside)
#[test]
fn test_class_and_val() {
    let f = |()| {
        let r = catch_unwind(|| parent_switch("ok"));
        match r {
            Err(p) => match p.downcast::<RuntimeError>() {
                Ok(e) if e.0 == "ciao" => {
                    parent_switch("ok");
                }
                _ => {
                    parent_switch("fail");
                }
            },
            Ok(_) => {
                parent_switch("fail");
            }
        }
    };
    let g = Greenlet::new(f);
    assert_eq!(g.switch(()).take::<&str>(), "ok");
    assert_eq!(g.throw_panic(RuntimeError("ciao")).take::<&str>(), "ok");
    assert!(!g.is_dead());
    g.switch(());
    assert!(g.is_dead());

    let g = Greenlet::new(f);
    assert_eq!(g.switch(()).take::<&str>(), "ok");
    assert_eq!(g.throw_panic(RuntimeError("other")).take::<&str>(), "fail");

    let g = Greenlet::new(f);
    assert_eq!(g.switch(()).take::<&str>(), "ok");
    assert_eq!(g.throw_panic(7u32).take::<&str>(), "fail");
}

// test_throw.py::test_throw_goes_to_original_parent
#[test]
fn test_throw_goes_to_original_parent() {
    let main = Greenlet::current();
    let f1 = {
        let main = main.clone();
        move |()| {
            let r = catch_unwind(AssertUnwindSafe(|| main.switch("f1 ready to catch")));
            match r {
                Err(p) if p.is::<IndexError>() => "caught",
                Err(p) => resume_unwind(p),
                Ok(_) => "normal exit",
            }
        }
    };
    let f2 = {
        let main = main.clone();
        move |()| {
            main.switch("from f2");
        }
    };

    // Neither started: g2 and then g1 die unrun, and the error reaches the
    // thrower through g1's parent chain.
    let g1 = Greenlet::new(f1.clone());
    let g2 = Greenlet::new(f2.clone());
    g2.set_parent(&g1).unwrap();
    assert_eq!(panics_with(|| g2.throw_panic(IndexError)), "IndexError");
    assert!(g2.is_dead());
    assert!(g1.is_dead());

    // g1 waiting to catch, g2 unstarted: g1 catches and returns normally.
    let g1 = Greenlet::new(f1.clone());
    let g2 = Greenlet::new(f2.clone());
    g2.set_parent(&g1).unwrap();
    assert_eq!(g1.switch(()).take::<&str>(), "f1 ready to catch");
    assert_eq!(g2.throw_panic(IndexError).take::<&str>(), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());

    // Both suspended: the error raised in g2 goes to g1, not the thrower.
    let g1 = Greenlet::new(f1);
    let g2 = Greenlet::new(f2);
    g2.set_parent(&g1).unwrap();
    assert_eq!(g1.switch(()).take::<&str>(), "f1 ready to catch");
    assert_eq!(g2.switch(()).take::<&str>(), "from f2");
    assert_eq!(g2.throw_panic(IndexError).take::<&str>(), "caught");
    assert!(g2.is_dead());
    assert!(g1.is_dead());
}

// test_throw.py::test_kill (the GreenletExit value goes to a parent greenlet)
#[test]
fn test_throw_kill_goes_to_parent_greenlet() {
    let main = Greenlet::current();
    let m = main.clone();
    let parent = Greenlet::new(move |()| {
        let got = m.switch("parent ready");
        got.is::<GreenletExit>()
    });
    assert_eq!(parent.switch(()).take::<&str>(), "parent ready");
    let child = Greenlet::new(move |()| {
        main.switch("child ready");
    });
    child.set_parent(&parent).unwrap();
    assert_eq!(child.switch(()).take::<&str>(), "child ready");
    // The GreenletExit goes to `parent` (not to us, the thrower); `parent`
    // then returns `true` to its own parent, main.
    assert!(
        child.throw().take::<bool>(),
        "parent got a GreenletExit value"
    );
    assert!(child.is_dead() && parent.is_dead());
}

// ---------------------------------------------------------------------------
// test_generator.py / test_generator_nested.py
// ---------------------------------------------------------------------------

thread_local! {
    /// Every live genlet (by greenlet id) and the child that a multi-level
    /// yield left in it (greenlet's `genlet.child`).
    static GENLETS: RefCell<HashMap<u64, Option<Greenlet>>> = RefCell::new(HashMap::new());
}

fn is_genlet(g: &Greenlet) -> bool {
    GENLETS.with(|m| m.borrow().contains_key(&g.id()))
}

fn child_of(g: &Greenlet) -> Option<Greenlet> {
    GENLETS.with(|m| m.borrow().get(&g.id()).cloned().flatten())
}

fn set_child(g: &Greenlet, child: Option<Greenlet>) {
    let old = GENLETS.with(|m| m.borrow_mut().insert(g.id(), child));
    drop(old); // outside the borrow: it may be a greenlet's last handle
}

/// greenlet's `genlet`: a generator built from nothing but `switch` and
/// `parent`. Iterating switches into it; `gen_yield` switches back out.
struct Genlet<T> {
    g: Greenlet,
    _item: PhantomData<fn() -> T>,
}

impl<T: 'static> Genlet<T> {
    fn new(body: impl FnOnce() + 'static) -> Genlet<T> {
        let g = Greenlet::new(move |()| body());
        set_child(&g, None);
        Genlet {
            g,
            _item: PhantomData,
        }
    }
}

impl<T: 'static> Iterator for Genlet<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.g.is_dead() {
            return None;
        }
        let result = match child_of(&self.g) {
            Some(mut child) => {
                while let Some(grandchild) = child_of(&child) {
                    set_child(&child, None);
                    child = grandchild;
                }
                child.switch(())
            }
            None => {
                self.g.set_parent(&Greenlet::current()).unwrap();
                self.g.switch(())
            }
        };
        if self.g.is_dead() {
            None
        } else {
            Some(result.take::<T>())
        }
    }
}

impl<T> Drop for Genlet<T> {
    fn drop(&mut self) {
        // Python closes an abandoned generator. Here it also breaks the cycle
        // between a suspended genlet's stack and the children it iterates
        // (whose parent it is): unwinding it drops them.
        if self.g.is_started() && !self.g.is_dead() {
            let _ = self.g.set_parent(&Greenlet::current());
            self.g.throw();
        }
        let id = self.g.id();
        let old = GENLETS.try_with(|m| m.borrow_mut().remove(&id)).ok();
        drop(old);
    }
}

/// greenlet's `Yield(value, level)`: hand `value` to the consumer `level`
/// genlets up.
fn gen_yield<T: 'static>(value: T, level: usize) {
    let mut g = Greenlet::current();
    for l in (1..=level).rev() {
        assert!(is_genlet(&g), "yield outside a genlet");
        let parent = g.parent().unwrap();
        if l > 1 {
            set_child(&parent, Some(g.clone()));
        }
        g = parent;
    }
    g.switch(value);
}

type Seen = Rc<RefCell<Vec<i32>>>;

fn g2(n: i32, seen: Seen) -> Genlet<i32> {
    Genlet::new(move || {
        for i in 0..n {
            seen.borrow_mut().push(i + 1);
            gen_yield(i, 1);
        }
    })
}

fn g3(n: i32, seen: Seen) -> Genlet<i32> {
    fn nested(i: i32) {
        gen_yield(i, 1);
    }
    Genlet::new(move || {
        for i in 0..n {
            seen.borrow_mut().push(i + 1);
            nested(i);
        }
    })
}

fn ax(n: i32) -> Genlet<i32> {
    Genlet::new(move || {
        if n == 0 {
            return;
        }
        for ii in ax(n - 1) {
            gen_yield(ii, 1);
        }
        gen_yield(n, 1);
    })
}

fn perms(l: Vec<i32>) -> Genlet<Vec<i32>> {
    Genlet::new(move || {
        if l.len() > 1 {
            for &e in &l {
                let rest: Vec<i32> = l.iter().copied().filter(|&x| x != e).collect();
                let mut n = 0;
                for p in perms(rest) {
                    let mut v = vec![e];
                    v.extend(p);
                    gen_yield(v, 1);
                    n += 1;
                }
                assert!(n > 0);
            }
        } else {
            gen_yield(l, 1);
        }
    })
}

fn gr1(n: i32) -> Genlet<i32> {
    Genlet::new(move || {
        for ii in 1..n {
            gen_yield(ii, 1);
            gen_yield(ii * ii, 2);
        }
    })
}

fn gr2(n: i32, seen: Seen) -> Genlet<i32> {
    Genlet::new(move || {
        for ii in gr1(n) {
            seen.borrow_mut().push(ii);
        }
    })
}

// test_generator.py::test_generator / test_generator_nested.py::test_genlet_simple
#[test]
fn test_genlet_simple() {
    let makers: [fn(i32, Seen) -> Genlet<i32>; 2] = [g2, g3];
    for make in makers {
        let seen: Seen = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..3 {
            for j in make(5, seen.clone()) {
                seen.borrow_mut().push(j);
            }
        }
        assert_eq!(*seen.borrow(), [1, 0, 2, 1, 3, 2, 4, 3, 5, 4].repeat(3));
    }
    assert!(GENLETS.with(|m| m.borrow().is_empty()));
}

// test_generator_nested.py::test_nested_genlets
#[test]
fn test_nested_genlets() {
    let seen: Vec<i32> = ax(5).collect();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert!(GENLETS.with(|m| m.borrow().is_empty()));
}

// test_generator_nested.py::test_layered_genlets (a yield that skips a level)
#[test]
fn test_layered_genlets() {
    let seen: Seen = Rc::new(RefCell::new(Vec::new()));
    for ii in gr2(5, seen.clone()) {
        seen.borrow_mut().push(ii);
    }
    assert_eq!(*seen.borrow(), [1, 1, 2, 4, 3, 9, 4, 16]);
    assert!(GENLETS.with(|m| m.borrow().is_empty()));
}

// test_generator_nested.py::test_permutations
#[test]
fn test_permutations() {
    let permutations: Vec<Vec<i32>> = perms((0..4).collect()).collect();
    assert_eq!(permutations.len(), 4 * 3 * 2);
    assert!(permutations.contains(&vec![0, 1, 2, 3]));
    assert!(permutations.contains(&vec![3, 2, 1, 0]));
    let mut unique = permutations.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 24);
    assert!(GENLETS.with(|m| m.borrow().is_empty()), "all finished");

    // zip stops when the shorter one ends, abandoning the longer one while
    // it and its nested genlets are suspended. greenlet marks this test
    // `@fails_leakcheck`: the nested genlets form reference cycles (a child's
    // parent is the genlet whose stack holds it), which greenlet's gc cannot
    // always free and which verdant's reference counts never free (see
    // "Cycles leak" in verdant's greenlet docs). Only the values are checked.
    let res: Vec<(Vec<i32>, Vec<i32>)> = perms((0..4).collect())
        .zip(perms((0..3).collect()))
        .collect();
    let expect = [
        (vec![0, 1, 2, 3], vec![0, 1, 2]),
        (vec![0, 1, 3, 2], vec![0, 2, 1]),
        (vec![0, 2, 1, 3], vec![1, 0, 2]),
        (vec![0, 2, 3, 1], vec![1, 2, 0]),
        (vec![0, 3, 1, 2], vec![2, 0, 1]),
        (vec![0, 3, 2, 1], vec![2, 1, 0]),
    ];
    assert_eq!(res, expect);
}

// test_generator.py (verdant-specific: an abandoned genlet unwinds)
#[test]
fn test_genlet_dropped_half_way() {
    let log = new_log();
    let l = log.clone();
    let mut gen: Genlet<i32> = Genlet::new(move || {
        let _finally = Guard {
            log: l.clone(),
            label: "generator finally",
        };
        for i in 0.. {
            gen_yield(i, 1);
        }
    });
    assert_eq!(gen.next(), Some(0));
    assert_eq!(gen.next(), Some(1));
    assert!(log.borrow().is_empty());
    drop(gen);
    assert_eq!(*log.borrow(), ["generator finally"]);
}

// ---------------------------------------------------------------------------
// test_leaks.py
// ---------------------------------------------------------------------------

// test_leaks.py::test_arg_refs
#[test]
fn test_arg_refs() {
    let token = Rc::new(());
    let g = Greenlet::new(|t: Rc<()>| {
        let back = parent_switch(t);
        drop(back);
        parent_switch(());
    });
    // Sent in, handed straight back: the value is now ours.
    let r = g.switch(token.clone());
    assert_eq!(Rc::strong_count(&token), 2);
    drop(r);
    assert_eq!(Rc::strong_count(&token), 1);
    // Sent in and dropped inside.
    assert!(g.switch(token.clone()).is_empty());
    assert_eq!(Rc::strong_count(&token), 1);
    g.switch(());
    assert!(g.is_dead());
    // Through a dead greenlet to its parent (us).
    let r = g.switch(token.clone());
    assert_eq!(Rc::strong_count(&token), 2);
    drop(r);
    assert_eq!(Rc::strong_count(&token), 1);
    // Returned as the greenlet's result.
    let g = Greenlet::new(|t: Rc<()>| t);
    let r = g.switch(token.clone()).take::<Rc<()>>();
    assert!(Rc::ptr_eq(&r, &token));
    drop(r);
    assert_eq!(Rc::strong_count(&token), 1);
    // A large (boxed) value as well as a small (inline) one.
    let g = Greenlet::new(|t: (Rc<()>, [u64; 8])| drop(t));
    assert!(g.switch((token.clone(), [0u64; 8])).is_empty());
    assert_eq!(Rc::strong_count(&token), 1);
}

// test_leaks.py::test_kwarg_refs (values on a dropped or killed stack are freed)
#[test]
fn test_values_held_by_suspended_greenlets_are_freed() {
    let token = Rc::new(());
    let holder = |()| {
        let v = parent_switch(());
        parent_switch(());
        drop(v);
    };
    let g = Greenlet::new(holder);
    g.switch(());
    g.switch(token.clone());
    assert_eq!(Rc::strong_count(&token), 2);
    drop(g);
    assert_eq!(Rc::strong_count(&token), 1);

    let g = Greenlet::new(holder);
    g.switch(());
    g.switch(token.clone());
    assert_eq!(Rc::strong_count(&token), 2);
    assert!(g.throw().is::<GreenletExit>());
    assert_eq!(Rc::strong_count(&token), 1);

    // A thrown payload that nobody catches comes back to the thrower and is
    // freed with it.
    let payload = Arc::new(());
    let g = Greenlet::new(|()| {
        parent_switch(());
    });
    g.switch(());
    let err = catch_unwind(AssertUnwindSafe(|| g.throw_panic(payload.clone()))).unwrap_err();
    assert!(err.is::<Arc<()>>());
    assert_eq!(Arc::strong_count(&payload), 2);
    drop(err);
    assert_eq!(Arc::strong_count(&payload), 1);
}

// test_leaks.py::test_issue251_killing_cross_thread_leaks_list (same thread)
#[test]
fn test_killed_and_dropped_greenlets_do_not_leak() {
    let token = Rc::new(());
    for i in 0..300 {
        let t = token.clone();
        let g = Greenlet::new(move |()| {
            let _t = t;
            parent_switch(());
        });
        match i % 3 {
            0 => drop(g), // unstarted, dropped
            1 => {
                g.switch(());
                drop(g); // suspended, dropped
            }
            _ => {
                g.switch(());
                assert!(g.throw().is::<GreenletExit>()); // suspended, killed
                assert!(g.is_dead());
            }
        }
        assert_eq!(Rc::strong_count(&token), 1, "iteration {i}");
    }
    // A greenlet that panicked releases its captures too.
    let t = token.clone();
    let g = Greenlet::new(move |()| {
        let _t = t;
        resume_unwind(Box::new(SomeError));
    });
    assert_eq!(panics_with(|| g.switch(())), "SomeError");
    assert_eq!(Rc::strong_count(&token), 1);
}

/// Resident set size in pages, from `/proc/self/statm`.
fn rss_pages() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

// test_leaks.py::TestLeaks::test_untracked_memory_doesnt_increase
#[test]
#[cfg_attr(
    verdant_asan,
    ignore = "AddressSanitizer holds freed memory in its quarantine: RSS grows by design"
)]
fn test_memory_does_not_grow() {
    fn churn(n: u64) {
        for i in 0..n {
            let g = Greenlet::new(|x: u64| {
                let y = parent_switch(x + 1).take::<u64>();
                vec![y; 4]
            });
            assert_eq!(g.switch(i).take::<u64>(), i + 1);
            assert_eq!(g.switch(i).take::<Vec<u64>>(), [i; 4]);
            assert!(g.is_dead());
            // A suspended one, dropped; and a killed one.
            let s = Greenlet::new(|()| {
                parent_switch(String::from("suspended"));
            });
            assert_eq!(s.switch(()).take::<String>(), "suspended");
            match i % 2 {
                0 => drop(s),
                _ => assert!(s.throw().is::<GreenletExit>()),
            }
        }
    }
    if rss_pages().is_none() {
        eprintln!("no /proc/self/statm: skipping the RSS check");
        churn(10_000);
        return;
    }
    churn(1_000); // warm up: stack pool, allocator arenas
    let before = rss_pages().unwrap();
    churn(10_000);
    let after = rss_pages().unwrap();
    let grown = after.saturating_sub(before);
    // 10,000 leaked stacks would be tens of MiB; allow 32 MiB of noise from
    // tests running on other threads (4 KiB pages assumed; larger pages only
    // make the bound more generous in pages).
    assert!(
        grown < 32 * 1024 * 1024 / 4096,
        "RSS grew by {grown} pages over 10,000 iterations"
    );
    assert!(Hub::current().cached_stacks() <= verdant::stack::DEFAULT_STACK_CACHE);
}
