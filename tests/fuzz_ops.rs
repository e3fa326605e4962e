//! FUZZ-1 (issue 24): random sequences of hub operations on one hub, shrunk
//! by proptest to a minimal failing sequence.
//!
//! Each case runs on a fresh thread (a fresh hub). The main greenlet plays
//! a random list of operations: spawn a greenlet running a random program,
//! kill it (blocking or not), join it (bounded), put/get on a bounded
//! queue, send/receive on a rendezvous-ish channel, take a lock, set and
//! clear an event, close the queue, write to or close the peer of a socket
//! the greenlets read, sleep, yield, and wrap any of its own steps in a
//! `with_timeout`. The greenlets' programs draw from the same steps, and
//! may panic (the only panic allowed).
//!
//! Checked after every operation: at most one greenlet holds the lock, and
//! the lock says locked while one does; no item is received twice.
//! Checked at the end, once everything is closed, set and killed: every
//! greenlet is finished (`killall_timeout` finds none alive) and ended as
//! it may (a value, killed, or the user panic); the lock is free; every item made was
//! received once (also from what is left queued) or dropped, and none whose
//! put or send returned `Ok` was dropped (lost); the
//! hub's live greenlets, timers and IO registrations are back to where the
//! case began. No panic other than the user one anywhere.
//!
//! The suite runs 64 cases (`PROPTEST_CASES` changes it); CI runs the
//! ignored `fuzz_for_a_while` for 60 s in release (`VERDANT_FUZZ_SECS`).
//! A failure prints the shrunk sequence: keep it as a regression test at
//! the end of this file.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use verdant::net::UnixStream;
use verdant::sync::{channel, Event, Lock, Queue};
use verdant::{killall_timeout, sleep, spawn, with_timeout, yield_now, Hub, JoinHandle};

/// One thing a greenlet (or main) does.
#[derive(Clone, Debug)]
enum Step {
    Sleep(u8),
    Yield,
    Put,
    Get,
    GetTimeout(u8),
    Send,
    Recv,
    RecvTimeout(u8),
    /// Take the lock and hold it across this many sleeps of 1 ms.
    Lock(u8),
    LockTimeout(u8),
    WaitEvent,
    WaitEventTimeout(u8),
    ReadSock,
    /// `with_timeout(ms, step)`.
    Timeout(u8, Box<Step>),
    Panic,
}

/// What main does next.
#[derive(Clone, Debug)]
enum Op {
    Spawn(Vec<Step>),
    Kill(usize),
    KillNowait(usize),
    Join(usize),
    /// Main itself does a step (not `Panic`), within 20 ms.
    Do(Step),
    SetEvent,
    ClearEvent,
    CloseQueue,
    WriteSock(u8),
    ClosePeer,
}

const USER_PANIC: &str = "fuzz: user panic";

fn leaf() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4).prop_map(Step::Sleep),
        Just(Step::Yield),
        Just(Step::Put),
        Just(Step::Get),
        (0u8..4).prop_map(Step::GetTimeout),
        Just(Step::Send),
        Just(Step::Recv),
        (0u8..4).prop_map(Step::RecvTimeout),
        (0u8..3).prop_map(Step::Lock),
        (0u8..4).prop_map(Step::LockTimeout),
        Just(Step::WaitEvent),
        (0u8..4).prop_map(Step::WaitEventTimeout),
        Just(Step::ReadSock),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => leaf(),
        2 => ((0u8..4), leaf()).prop_map(|(ms, s)| Step::Timeout(ms, Box::new(s))),
        1 => Just(Step::Panic),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(step(), 1..5).prop_map(Op::Spawn),
        2 => (0usize..16).prop_map(Op::Kill),
        2 => (0usize..16).prop_map(Op::KillNowait),
        2 => (0usize..16).prop_map(Op::Join),
        4 => leaf().prop_map(Op::Do),
        1 => ((0u8..4), leaf()).prop_map(|(ms, s)| Op::Do(Step::Timeout(ms, Box::new(s)))),
        1 => Just(Op::SetEvent),
        1 => Just(Op::ClearEvent),
        1 => Just(Op::CloseQueue),
        1 => (1u8..8).prop_map(Op::WriteSock),
        1 => Just(Op::ClosePeer),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..40)
}

/// What the greenlets of one case share.
struct World {
    queue: Queue<Item>,
    tx: channel::Sender<Item>,
    rx: channel::Receiver<Item>,
    lock: Lock<()>,
    /// Greenlets inside the lock now (by our own count).
    holders: Cell<u32>,
    event: Event,
    sock: UnixStream,
    peer: RefCell<Option<UnixStream>>,
    ledger: Rc<Ledger>,
    /// A broken invariant seen inside a greenlet (a panic there would only
    /// end that greenlet).
    broken: RefCell<Vec<String>>,
}

/// Where every item went. An item is made by a putter or sender and ends
/// either received (taken from the queue or channel, also in the final
/// drain) or dropped; it may be dropped only if its put or send did not
/// return `Ok` (it failed, or was interrupted before the hand-off). An
/// item in neither set was leaked; one dropped after a successful send was
/// lost.
#[derive(Default)]
struct Ledger {
    next: Cell<u64>,
    made: RefCell<HashSet<u64>>,
    sent_ok: RefCell<HashSet<u64>>,
    got: RefCell<HashSet<u64>>,
    dropped: RefCell<HashSet<u64>>,
}

impl Ledger {
    fn check_end(&self) -> Result<(), String> {
        let (made, ok) = (self.made.borrow(), self.sent_ok.borrow());
        let (got, dropped) = (self.got.borrow(), self.dropped.borrow());
        let lost: Vec<_> = dropped.intersection(&ok).collect();
        if !lost.is_empty() {
            return Err(format!("sent, then dropped unreceived: {lost:?}"));
        }
        let ended: HashSet<u64> = got.union(&dropped).copied().collect();
        if ended != *made {
            let leaked: Vec<_> = made.difference(&ended).collect();
            return Err(format!("neither received nor dropped: {leaked:?}"));
        }
        Ok(())
    }
}

/// A value in flight, which says where it ended.
struct Item {
    id: u64,
    taken: bool,
    ledger: Rc<Ledger>,
}

impl Drop for Item {
    fn drop(&mut self) {
        if !self.taken {
            self.ledger.dropped.borrow_mut().insert(self.id);
        }
    }
}

impl World {
    fn new() -> World {
        let (tx, rx) = channel::bounded(1);
        let (sock, peer) = UnixStream::pair().unwrap();
        World {
            queue: Queue::bounded(2),
            tx,
            rx,
            lock: Lock::new(()),
            holders: Cell::new(0),
            event: Event::new(),
            sock,
            peer: RefCell::new(Some(peer)),
            ledger: Rc::default(),
            broken: RefCell::default(),
        }
    }

    fn fresh(&self) -> Item {
        let l = &self.ledger;
        let id = l.next.get();
        l.next.set(id + 1);
        l.made.borrow_mut().insert(id);
        Item {
            id,
            taken: false,
            ledger: l.clone(),
        }
    }

    fn received(&self, mut item: Item) {
        item.taken = true;
        if !self.ledger.got.borrow_mut().insert(item.id) {
            self.broken
                .borrow_mut()
                .push(format!("{} received twice", item.id));
        }
    }

    fn check(&self) -> Result<(), String> {
        if let Some(b) = self.broken.borrow().first() {
            return Err(b.clone());
        }
        // Held by one at most; and locked while held. (Locked and held by
        // none is a hand-off: a woken waiter owns it and has not run yet.)
        let h = self.holders.get();
        if h > 1 || (h == 1 && !self.lock.is_locked()) {
            return Err(format!(
                "{h} greenlets hold the lock, which says locked = {}",
                self.lock.is_locked()
            ));
        }
        Ok(())
    }

    fn run(&self, s: &Step) {
        let ms = |m: &u8| Duration::from_millis(u64::from(*m));
        match s {
            Step::Sleep(m) => sleep(ms(m)),
            Step::Yield => yield_now(),
            Step::Put => {
                let item = self.fresh();
                let id = item.id;
                if self.queue.put(item).is_ok() {
                    self.ledger.sent_ok.borrow_mut().insert(id);
                }
            }
            Step::Get => {
                if let Ok(v) = self.queue.get() {
                    self.received(v);
                }
            }
            Step::GetTimeout(m) => {
                if let Ok(v) = self.queue.get_timeout(ms(m)) {
                    self.received(v);
                }
            }
            Step::Send => {
                let item = self.fresh();
                let id = item.id;
                if self.tx.send(item).is_ok() {
                    self.ledger.sent_ok.borrow_mut().insert(id);
                }
            }
            Step::Recv => {
                if let Ok(v) = self.rx.recv() {
                    self.received(v);
                }
            }
            Step::RecvTimeout(m) => {
                if let Ok(v) = self.rx.recv_timeout(ms(m)) {
                    self.received(v);
                }
            }
            Step::Lock(n) => {
                if let Ok(g) = self.lock.lock() {
                    self.hold(g, *n);
                }
            }
            Step::LockTimeout(m) => {
                if let Ok(g) = self.lock.lock_timeout(ms(m)) {
                    self.hold(g, 0);
                }
            }
            Step::WaitEvent => {
                let _ = self.event.wait();
            }
            Step::WaitEventTimeout(m) => {
                let _ = self.event.wait_timeout(ms(m));
            }
            Step::ReadSock => {
                let _ = (&self.sock).read(&mut [0; 4]);
            }
            Step::Timeout(m, s) => {
                let _ = with_timeout(ms(m), || self.run(s));
            }
            Step::Panic => panic!("{USER_PANIC}"),
        }
    }

    /// Holds the lock across `n` sleeps, counting itself in (and out, on
    /// every way out: a kill or a timeout unwinds through the guard).
    fn hold(&self, g: verdant::sync::LockGuard<'_, ()>, n: u8) {
        struct Inside<'a>(&'a Cell<u32>);
        impl Drop for Inside<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.holders.set(self.holders.get() + 1);
        let inside = Inside(&self.holders);
        for _ in 0..n {
            sleep(Duration::from_millis(1));
        }
        drop(inside); // before the guard: the lock is free once it is gone
        drop(g);
    }
}

/// The hub's live greenlets, timers and IO registrations.
fn hub_counts() -> (usize, usize, usize) {
    let hub = Hub::current();
    (
        hub.run_info().greenlets().len(),
        hub.timer_count(),
        hub.io_registrations(),
    )
}

/// Plays `ops` on this thread's hub; says what broke.
fn play(ops: &[Op]) -> Result<(), String> {
    let before = hub_counts();
    let w = Rc::new(World::new());
    let mut hs: Vec<JoinHandle<()>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let pick = |k: &usize| (!hs.is_empty()).then(|| k % hs.len());
        match op {
            Op::Spawn(steps) => {
                let (w2, steps) = (w.clone(), steps.clone());
                hs.push(spawn(move || steps.iter().for_each(|s| w2.run(s))));
            }
            Op::Kill(k) => {
                if let Some(k) = pick(k) {
                    hs[k].kill();
                    if !hs[k].is_finished() {
                        return Err(format!("op {i}: killed greenlet {k} is not finished"));
                    }
                }
            }
            Op::KillNowait(k) => {
                if let Some(k) = pick(k) {
                    hs[k].kill_nowait();
                }
            }
            Op::Join(k) => {
                if let Some(k) = pick(k) {
                    // Bounded: it may wait for something nobody will do.
                    let _ = hs[k].wait_timeout(Duration::from_millis(5));
                }
            }
            // Bounded: main must not wait for what nobody will do (a read
            // with the peer open keeps the hub from seeing a deadlock).
            Op::Do(s) => {
                let _ = with_timeout(Duration::from_millis(20), || w.run(s));
            }
            Op::SetEvent => {
                w.event.set();
            }
            Op::ClearEvent => w.event.clear(),
            Op::CloseQueue => w.queue.close(),
            Op::WriteSock(n) => {
                if let Some(p) = w.peer.borrow_mut().as_mut() {
                    p.write_all(&vec![b'x'; usize::from(*n)]).unwrap();
                }
            }
            Op::ClosePeer => drop(w.peer.borrow_mut().take()),
        }
        w.check()
            .map_err(|e| format!("after op {i} ({op:?}): {e}"))?;
    }
    // Wind down: nothing left to wait for, then kill what still runs.
    w.queue.close();
    w.event.set();
    drop(w.peer.borrow_mut().take());
    let alive = killall_timeout(&hs, Duration::from_secs(5));
    if alive != 0 {
        return Err(format!("{alive} greenlets outlived killall_timeout"));
    }
    for (k, h) in hs.into_iter().enumerate() {
        if let Err(e) = h.join() {
            if !e.is_killed() && e.panic_message() != Some(USER_PANIC) {
                return Err(format!("greenlet {k} ended with {e}"));
            }
        }
    }
    w.check()?;
    if w.lock.is_locked() || w.holders.get() != 0 {
        return Err("the lock is still held with every greenlet finished".into());
    }
    // What is left in the queue and the channel was sent and never taken.
    while let Ok(v) = w.queue.try_get() {
        w.received(v);
    }
    while let Ok(v) = w.rx.try_recv() {
        w.received(v);
    }
    w.check()?;
    let ledger = w.ledger.clone();
    drop(w);
    yield_now(); // let the hub drop what the dead greenlets left
    ledger.check_end()?;
    let after = hub_counts();
    if after != before {
        return Err(format!(
            "(greenlets, timers, registrations) were {before:?}, now {after:?}"
        ));
    }
    Ok(())
}

/// Plays `ops` on a fresh thread, with panics (other than the user one,
/// which stays inside its greenlet) turned into failures.
fn play_on_a_thread(ops: Vec<Op>) -> Result<(), String> {
    std::thread::spawn(move || play(&ops))
        .join()
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("a panic outside user code: {msg}"))
        })
}

fn quiet_user_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let user =
                info.payload().downcast_ref::<String>().map(String::as_str) == Some(USER_PANIC);
            if !user {
                prev(info);
            }
        }));
    });
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn run_cases(runner: &mut TestRunner) {
    quiet_user_panics();
    let r = runner.run(&ops(), |ops| {
        play_on_a_thread(ops).map_err(proptest::test_runner::TestCaseError::fail)
    });
    if let Err(e) = r {
        panic!("{e}\n(keep the minimal sequence above as a regression test in this file)");
    }
}

#[test]
fn random_operation_sequences_keep_the_invariants() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    run_cases(&mut runner(cases));
}

/// CI's 60 s run (release): batches of 256 cases until the time is up.
#[test]
#[ignore = "long: CI runs it (VERDANT_FUZZ_SECS, 60 by default)"]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("VERDANT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < Duration::from_secs(secs) {
        run_cases(&mut runner(256));
        n += 256;
    }
    println!("FUZZ-1: {n} sequences in {:.0?}, no failure", t0.elapsed());
}
