//! Shared by the gevent sync ports (tests/sync_*.rs): timing constants,
//! drop counters, and a fresh-thread runner that turns a hang into a
//! failure.
#![allow(dead_code)] // each test file uses a different subset

use std::cell::Cell;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{with_timeout, Elapsed, Hub};

pub const MS: Duration = Duration::from_millis(1);
/// A timeout that is expected to expire (gevent's `SMALL_TICK`, doubled).
pub const SMALL: Duration = Duration::from_millis(20);
/// The upper bound for anything that should be "prompt" on a loaded machine.
pub const SLACK: Duration = Duration::from_secs(1);
/// Give up on a scenario that should end (with `LoopExit`), rather than hang.
pub const HANG: Duration = Duration::from_secs(10);

/// Counts drops of its tokens: a `finally:` that must run, or an item that
/// must not be lost (or dropped twice).
#[derive(Clone, Default)]
pub struct Drops(Rc<Cell<usize>>);

pub struct DropToken(Rc<Cell<usize>>);

impl Drops {
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.get()
    }
}

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Runs `f` on a new OS thread (a hub of its own, with the calling hub's
/// schedule seed and virtual time) and waits at most `HANG` for it: a wait that should end
/// in `LoopExit` but hangs fails the test.
pub fn on_fresh_thread<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let seed = verdant::Hub::current().schedule_seed();
    let advance = verdant::Hub::current().clock_advance();
    std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            verdant::Hub::current().set_schedule_seed(seed);
            verdant::Hub::current().set_clock_advance(advance);
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn a test thread");
    match rx.recv_timeout(HANG) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("{what}: still waiting after {HANG:?} (a hang, not LoopExit)"),
    }
}

/// Makes the hub fire timers on every switch (not every 61st), so that a
/// timer can fire between two steps of the root.
pub fn maintain_every_tick() {
    verdant::Hub::current().set_event_interval(1);
}

/// `AbstractGenericWaitTestCase` / `AbstractGenericGetTestCase`: `wait(t)`
/// must give up after `t` (not before, not much later) with `TimedOut`, an
/// enclosing `with_timeout` must interrupt a wait without a timeout, and an
/// outer timeout shorter than the wait's own must not be lost.
pub fn check_generic_wait<E: Debug>(
    timed: impl Fn(Duration) -> Result<(), E>,
    untimed: impl Fn() -> Result<(), E>,
    is_timed_out: impl Fn(&E) -> bool,
) {
    // test_returns_none_after_timeout / test_raises_timeout_number
    let t = Instant::now();
    let r = timed(SMALL);
    let took = t.elapsed();
    assert!(
        r.as_ref().is_err_and(&is_timed_out),
        "expected a timeout: {r:?}"
    );
    assert!(took >= SMALL, "gave up early: {took:?}");
    assert!(took < SMALL + SLACK, "gave up late: {took:?}");

    // test_raises_timeout_Timeout: a Timeout around a wait without one.
    let t = Instant::now();
    let r = with_timeout(SMALL, &untimed);
    assert!(r.is_err(), "the scope must interrupt the wait: {r:?}");
    assert!(t.elapsed() >= SMALL && t.elapsed() < SMALL + SLACK);

    // test_outer_timeout_is_not_lost: the outer (1 ms) fires, not the
    // wait's own (1 s).
    let t = Instant::now();
    let r = with_timeout(MS, || timed(Duration::from_secs(1)));
    assert!(
        matches!(r, Err(Elapsed)),
        "the outer timeout was lost: {r:?}"
    );
    assert!(t.elapsed() < SLACK, "{:?}", t.elapsed());
    assert_eq!(Hub::current().timer_count(), 0, "a timer leaked");
}

/// The killer of the stress tests: for `turns` turns it lets the others run
/// (a yield, or a sleep under 300 µs), then kills a random one of `workers`
/// with probability 1 in `one_in`. `rand` is the random source. Returns
/// how many it killed.
pub fn kill_at_random(
    workers: &[verdant::JoinHandle<()>],
    rand: &mut impl FnMut() -> u64,
    turns: usize,
    one_in: u64,
) -> usize {
    let mut killed = 0;
    for _ in 0..turns {
        match rand() % 3 {
            0 => verdant::sleep(Duration::from_micros(rand() % 300)),
            _ => verdant::yield_now(),
        }
        let victim = &workers[(rand() % workers.len() as u64) as usize];
        if rand().is_multiple_of(one_in) && !victim.is_finished() {
            victim.kill();
            killed += 1;
        }
    }
    assert!(killed > 0, "the killer killed no one");
    killed
}

/// Joins the stress tests' `workers`: exactly `killed` of them failed.
pub fn join_expecting_kills(workers: Vec<verdant::JoinHandle<()>>, killed: usize) {
    let failed = workers
        .into_iter()
        .map(|h| h.join())
        .filter(|r| r.is_err())
        .count();
    assert_eq!(failed, killed, "a worker failed other than by its kill");
}

/// The stress tests' accounting of items sent and received, shared by the
/// greenlets (clone it).
#[derive(Clone, Default)]
pub struct Ledger(Rc<LedgerInner>);

#[derive(Default)]
pub struct LedgerInner {
    /// Items whose send returned `Ok`.
    sent: std::cell::RefCell<Vec<u64>>,
    /// Items inside a send: those left at the end belong to a sender killed
    /// there (after its offer was maybe taken).
    in_flight: std::cell::RefCell<std::collections::HashSet<u64>>,
    received: std::cell::RefCell<Vec<u64>>,
}

impl Ledger {
    /// Sends `item` with `send` (which may switch, and may be killed
    /// inside), recording it as sent if `send` says it went.
    pub fn send(&self, item: u64, send: impl FnOnce() -> bool) {
        self.0.in_flight.borrow_mut().insert(item);
        let went = send();
        self.0.in_flight.borrow_mut().remove(&item);
        if went {
            self.0.sent.borrow_mut().push(item);
        }
    }

    /// Records what a receive got, if anything (call it after the receive:
    /// no borrow may be held across a switch).
    pub fn received(&self, item: Option<u64>) {
        self.0.received.borrow_mut().extend(item);
    }

    /// With `left` the items still queued: every item sent is received (or
    /// left) exactly once; anything else is an item of a sender killed
    /// inside its send, and is there once.
    pub fn check(&self, left: impl IntoIterator<Item = u64>) {
        let mut times = std::collections::HashMap::<u64, usize>::new();
        for item in self.0.received.borrow().iter().copied().chain(left) {
            *times.entry(item).or_default() += 1;
        }
        for item in self.0.sent.borrow().iter() {
            assert_eq!(
                times.remove(item),
                Some(1),
                "item {item}, sent, seen so often"
            );
        }
        for (item, n) in times {
            assert!(
                self.0.in_flight.borrow().contains(&item),
                "item {item} was never sent"
            );
            assert_eq!(n, 1, "item {item} of a killed sender seen {n} times");
        }
    }
}
