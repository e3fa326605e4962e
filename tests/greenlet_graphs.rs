//! THR-3 at scale (issue 24): random switch graphs of raw greenlets, with
//! the misuses greenlet's own tests try one at a time (switching to a dead
//! greenlet or to oneself, throwing into oneself or into a dead greenlet,
//! re-parenting into a cycle) mixed at random, under proptest.
//!
//! A case makes up to 5 greenlets and a shared program; whoever runs (a
//! greenlet or main) takes the next instruction and does it: switch to
//! greenlet `j` (or main), throw a `GreenletExit` into `j`, or set the
//! parent of `a` to `b`. A greenlet whose program is used up returns.
//! Checked: no panic reaches anyone (every misuse ends in a value or an
//! error); `set_parent` refuses exactly the changes that would close a
//! loop, and every parent chain stays finite; main gets control back and
//! the program runs to its end; dropping the greenlets (their parents
//! pointed at main first: a parent link is a handle, and a cycle through
//! one is not collected) then leaves the hub's live greenlets where the
//! case began. 10,000 cases
//! (`PROPTEST_CASES` changes it). Greenlet-local isolation across 1,000
//! greenlets × 100 switches is in `tests/local.rs` (THR-4).
//!
//! Joining from a foreign hub cannot be written: a `JoinHandle` is not
//! `Send` (THR-1's compile-fail checks).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use verdant::{Greenlet, Hub, ParentError, Value};

/// The greenlets a case makes.
const N: usize = 5;

/// One instruction; an index `N` means main.
#[derive(Clone, Copy, Debug)]
enum Ins {
    Switch(usize),
    Throw(usize),
    SetParent(usize, usize),
}

fn ins() -> impl Strategy<Value = Ins> {
    prop_oneof![
        5 => (0..=N).prop_map(Ins::Switch),
        2 => (0..N).prop_map(Ins::Throw),
        2 => ((0..N), (0..=N)).prop_map(|(a, b)| Ins::SetParent(a, b)),
    ]
}

struct Case {
    program: RefCell<VecDeque<Ins>>,
    greenlets: RefCell<Vec<Greenlet>>,
    main: Greenlet,
    broken: RefCell<Vec<String>>,
}

impl Case {
    fn who(&self, j: usize) -> Greenlet {
        if j == N {
            self.main.clone()
        } else {
            self.greenlets.borrow()[j].clone()
        }
    }

    /// Runs the program from here until it is used up.
    fn run(&self) {
        loop {
            let Some(i) = self.program.borrow_mut().pop_front() else {
                return;
            };
            match i {
                Ins::Switch(j) => {
                    let g = self.who(j);
                    let _: Value = g.switch(());
                }
                Ins::Throw(j) => {
                    let g = self.who(j);
                    let _: Value = g.throw();
                }
                Ins::SetParent(a, b) => self.set_parent(a, b),
            }
        }
    }

    fn set_parent(&self, a: usize, b: usize) {
        let (ga, gb) = (self.who(a), self.who(b));
        // Would `a` be its own ancestor through `b`?
        let mut loops = false;
        let mut p = Some(gb.clone());
        for _ in 0..=N + 1 {
            match p {
                Some(x) if x == ga => {
                    loops = true;
                    break;
                }
                Some(x) => p = x.parent(),
                None => break,
            }
        }
        match (ga.set_parent(&gb), loops) {
            (Ok(()), false) | (Err(ParentError::Cycle), true) => {}
            (r, loops) => self
                .broken
                .borrow_mut()
                .push(format!("set_parent({a}, {b}) gave {r:?}; a loop: {loops}")),
        }
        for (k, g) in self.greenlets.borrow().iter().enumerate() {
            let mut p = g.parent();
            let mut steps = 0;
            while let Some(x) = p {
                steps += 1;
                if steps > N + 1 {
                    self.broken
                        .borrow_mut()
                        .push(format!("greenlet {k}'s parent chain loops"));
                    return;
                }
                p = x.parent();
            }
        }
    }
}

fn play(program: Vec<Ins>) -> Result<(), String> {
    let before = Hub::current().run_info().greenlets().len();
    let case = Rc::new(Case {
        program: RefCell::new(program.into()),
        greenlets: RefCell::default(),
        main: Greenlet::current(),
        broken: RefCell::default(),
    });
    for _ in 0..N {
        let c = case.clone();
        let g = Greenlet::new(move |_: Value| c.run());
        case.greenlets.borrow_mut().push(g);
    }
    case.run();
    if !case.program.borrow().is_empty() {
        return Err("main returned with the program unfinished".into());
    }
    if let Some(b) = case.broken.borrow().first() {
        return Err(b.clone());
    }
    // Drop every greenlet (the suspended ones unwind), and the cycle
    // through `Case` with them. Parent links are handles: a suspended
    // greenlet whose frame holds a greenlet it is the parent of would keep
    // itself alive through it (documented under the Caveats of
    // `Greenlet`), so they are pointed at main first, which always works.
    let gs = std::mem::take(&mut *case.greenlets.borrow_mut());
    for g in &gs {
        g.set_parent(&case.main)
            .map_err(|e| format!("set_parent(main): {e}"))?;
    }
    drop(gs);
    drop(case);
    let after = Hub::current().run_info().greenlets().len();
    if after != before {
        return Err(format!("live greenlets were {before}, now {after}"));
    }
    Ok(())
}

#[test]
fn random_switch_graphs_with_misuse_end_in_values_or_errors() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let r = runner.run(&prop::collection::vec(ins(), 0..30), |program| {
        // A fresh thread, so a case starts on a fresh hub and a panic is a
        // failure of this case alone.
        std::thread::spawn(move || play(program))
            .join()
            .unwrap_or_else(|_| Err("a panic reached main".into()))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = r {
        panic!("{e}\n(keep the minimal program above as a regression test in this file)");
    }
}
