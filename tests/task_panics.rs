//! Reliability tests PAN-1..PAN-6 of the reliability plan (§8.2)
//! (panics, kills, unwinding), with the facts of §0 they rest on (4: a Drop
//! that blocks during an unwind must not abort, 5: the panic count is
//! thread-local, so nothing may suspend mid-unwind).
//!
//! Tests that must read stderr (PAN-1) or that could abort (PAN-5) run in a
//! *child*: the test re-executes its own binary with `VERDANT_PAN_CHILD=<case>`
//! and `--exact <test> --include-ignored --nocapture --test-threads=1`, and
//! the same test function, seeing the variable, runs the scenario.
//!
//! PAN-3d and PAN-5d cover thread exit with tasks still parked in hub waits:
//! the hub's shutdown must unwind them (their destructors run).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verdant_runtime::{
    joinall, killall, sleep, spawn, yield_now, Builder, Greenlet, Hub, JoinAll, JoinAllError,
    JoinErrorKind, JoinHandle,
};

mod common;
use common::{child_case, run_child};

/// The child's `PREFIX...` summary lines (libtest prints `test <name> ... `
/// without a newline before the child's own output).
fn summaries<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|l| l.find(prefix).map(|i| &l[i..]))
        .collect()
}

/// Adds one to a shared counter when dropped.
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------- PAN-1, PAN-2 ---

const TASKS: usize = 10_000;
const BAD: usize = 4242;

/// 10,000 tasks; task #4242 panics with "boom 4242", the others yield three
/// times and return their index.
fn spawn_ten_thousand() -> Vec<JoinHandle<usize>> {
    (0..TASKS)
        .map(|i| {
            Builder::new()
                .name(format!("task-{i}"))
                .spawn(move || {
                    if i == BAD {
                        panic!("boom {i}");
                    }
                    for _ in 0..3 {
                        yield_now();
                    }
                    i
                })
                .expect("spawn")
        })
        .collect()
}

/// Joins every handle; checks 9,999 right values and the one panic.
fn check_results(handles: Vec<JoinHandle<usize>>) {
    let mut ok = 0;
    for (i, h) in handles.into_iter().enumerate() {
        let name = h.greenlet().name().into_owned();
        match h.join() {
            Ok(v) => {
                assert_eq!(v, i, "task {i} returned the wrong value");
                ok += 1;
            }
            Err(e) => {
                assert_eq!(i, BAD, "task {i} failed unexpectedly: {e}");
                assert_eq!(e.kind(), JoinErrorKind::Panicked);
                assert_eq!(e.panic_message(), Some("boom 4242"));
                assert_eq!(e.name(), name);
                assert_eq!(e.name(), "task-4242");
            }
        }
    }
    assert_eq!(ok, TASKS - 1);
}

/// PAN-1: one panic among 10,000 tasks is reported once, returned by its
/// join only, and leaves the hub serving.
#[test]
fn pan1_one_panic_in_10k() {
    const TEST: &str = "pan1_one_panic_in_10k";
    if child_case().as_deref() == Some("pan1") {
        check_results(spawn_ten_thousand());
        // The hub still serves new spawns, including ones that wait.
        let more: Vec<_> = (0..100u32)
            .map(|i| {
                spawn(move || {
                    yield_now();
                    i * 2
                })
            })
            .collect();
        let sum: u32 = more.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 99 * 100);
        println!("PAN1 ok={} served=100", TASKS - 1);
        return;
    }
    let out = run_child(TEST, "pan1", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert_eq!(
        summaries(&stdout, "PAN1 "),
        ["PAN1 ok=9999 served=100"],
        "child summary:\n{stdout}"
    );
    assert_eq!(
        stderr.matches("boom 4242").count(),
        1,
        "the panic must be reported exactly once:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("panic in greenlet 'task-4242'").count(),
        1,
        "the report must name the greenlet once:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("panicked at").count(),
        1,
        "no other panic may be reported:\n{stderr}"
    );
}

/// PAN-2a: `raise_error(false)` returns after all 10,000, the panic left in
/// its handle.
#[test]
fn pan2_joinall_keeps_errors_in_handles() {
    let hs = spawn_ten_thousand();
    let done = JoinAll::new().raise_error(false).join(&hs).unwrap();
    assert_eq!(done, (0..TASKS).collect::<Vec<_>>());
    assert!(hs.iter().all(|h| h.is_finished()));
    check_results(hs);
}

/// PAN-2b: `raise_error(true)` returns the panicker's index before the
/// others have finished.
#[test]
fn pan2_joinall_raise_error_stops_early() {
    let hs = spawn_ten_thousand();
    match JoinAll::new().raise_error(true).join(&hs) {
        Err(JoinAllError::Failed { index, error }) => {
            assert_eq!(index, BAD);
            assert_eq!(error.kind(), JoinErrorKind::Panicked);
            assert_eq!(error.panic_message(), Some("boom 4242"));
            assert_eq!(error.name(), "task-4242");
        }
        other => panic!("expected Failed {{ index: {BAD} }}, got {other:?}"),
    }
    let pending = hs.iter().filter(|h| !h.is_finished()).count();
    assert!(
        pending >= 1,
        "raise_error(true) returned only after every task had finished"
    );
    eprintln!("PAN-2: raise_error(true) returned with {pending} of {TASKS} tasks unfinished");
    // The rest still run to completion, and the payload is still in #4242.
    joinall(&hs).unwrap();
    check_results(hs);
}

// ---------------------------------------------------------------- PAN-3 ---

const SUSPENDED: usize = 1_000;

/// PAN-3a: dropping the last handles of 1,000 suspended raw greenlets unwinds
/// them: 1,000 destructors, their code after the switch never runs, and their
/// stacks return to the pool.
#[test]
fn pan3_drop_suspended_raw_greenlets() {
    let hub = Hub::current();
    let pooled_before = hub.cached_stacks();
    let drops = Arc::new(AtomicUsize::new(0));
    let resumed = Rc::new(Cell::new(0usize));
    let gs: Vec<Greenlet> = (0..SUSPENDED)
        .map(|_| {
            let guard = CountOnDrop(drops.clone());
            let resumed = resumed.clone();
            let g = Greenlet::new(move |()| {
                let _guard = guard;
                // Not `Greenlet::current().parent()...switch(())` in one
                // statement: that temporary handle to itself would live on
                // its own stack across the switch, a cycle that never frees.
                let parent = Greenlet::current().parent().unwrap();
                parent.switch(());
                resumed.set(resumed.get() + 1);
            });
            g.switch(());
            assert!(g.is_started() && !g.is_dead());
            g
        })
        .collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(gs);
    assert_eq!(drops.load(Ordering::SeqCst), SUSPENDED);
    assert_eq!(resumed.get(), 0, "a dropped greenlet ran past its switch");
    assert_eq!(
        hub.cached_stacks(),
        (pooled_before + SUSPENDED).min(verdant_runtime::stack::DEFAULT_STACK_CACHE),
        "the stacks of dropped greenlets did not come back"
    );
}

/// PAN-3b: killing 1,000 tasks parked in `sleep` runs their destructors.
#[test]
fn pan3_kill_parked_tasks() {
    let drops = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..SUSPENDED)
        .map(|_| {
            let guard = CountOnDrop(drops.clone());
            spawn(move || {
                let _guard = guard;
                sleep(Duration::from_secs(3600));
            })
        })
        .collect();
    sleep(Duration::ZERO); // all start and park
    assert_eq!(Hub::current().timer_count(), SUSPENDED);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    killall(&hs);
    assert_eq!(drops.load(Ordering::SeqCst), SUSPENDED);
    for h in hs {
        assert_eq!(h.join().unwrap_err().kind(), JoinErrorKind::Killed);
    }
    assert_eq!(Hub::current().timer_count(), 0);
}

/// PAN-3c: at thread exit, the hub drops the tasks it never started, so the
/// destructors of what their closures captured run.
#[test]
fn pan3_thread_exit_drops_unstarted_tasks() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    std::thread::spawn(move || {
        for _ in 0..SUSPENDED {
            let guard = CountOnDrop(d.clone());
            spawn(move || drop(guard)); // detached, never runs
        }
        assert_eq!(Hub::current().ready_count(), SUSPENDED);
        assert_eq!(d.load(Ordering::SeqCst), 0);
    })
    .join()
    .expect("the hub thread failed");
    assert_eq!(drops.load(Ordering::SeqCst), SUSPENDED);
}

/// PAN-3d: at thread exit, the hub unwinds its tasks parked in `sleep`, so
/// their destructors run.
#[test]

fn pan3_thread_exit_unwinds_parked_tasks() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    std::thread::spawn(move || {
        for _ in 0..SUSPENDED {
            let guard = CountOnDrop(d.clone());
            // Detached: the handle is dropped at once.
            spawn(move || {
                let _guard = guard;
                sleep(Duration::from_secs(3600));
            });
        }
        sleep(Duration::ZERO); // all park in their sleep
        assert_eq!(Hub::current().timer_count(), SUSPENDED);
        assert_eq!(d.load(Ordering::SeqCst), 0);
    })
    .join()
    .expect("the hub thread failed");
    assert_eq!(drops.load(Ordering::SeqCst), SUSPENDED);
}

// ---------------------------------------------------------------- PAN-4 ---

/// PAN-4: kills reach greenlets blocked in `sleep`, `join`, and `wait_timeout`:
/// destructors run, `join` says `Killed`, every timer is deregistered, and
/// the greenlets they waited for are unharmed.
#[test]
fn pan4_kill_blocked_in_sleep_and_join() {
    const N: usize = 10;
    let hub = Hub::current();
    let baseline = hub.timer_count();
    let drops = Arc::new(AtomicUsize::new(0));
    let target_drops = Arc::new(AtomicUsize::new(0));
    let guarded_sleep = |drops: &Arc<AtomicUsize>| {
        let guard = CountOnDrop(drops.clone());
        spawn(move || {
            let _guard = guard;
            sleep(Duration::from_secs(3600));
        })
    };
    // Blocked in sleep.
    let sleepers: Vec<_> = (0..N).map(|_| guarded_sleep(&drops)).collect();
    // Blocked in join of a long task (which itself waits, timer-free, for
    // `gate`, so that it can be finished at the end).
    let gate = Rc::new(spawn(|| sleep(Duration::from_secs(3600))));
    let joiners: Vec<_> = (0..N)
        .map(|_| {
            let g = gate.clone();
            let guard = CountOnDrop(target_drops.clone());
            let target = spawn(move || {
                let _guard = guard;
                let _ = g.wait();
            });
            let guard = CountOnDrop(drops.clone());
            spawn(move || {
                let _guard = guard;
                let _ = target.join();
                unreachable!("the target finishes only after this is killed");
            })
        })
        .collect();
    // Blocked in a join with a timeout (a link and a timer).
    let shared_target = Rc::new(guarded_sleep(&target_drops));
    let timed: Vec<_> = (0..N)
        .map(|_| {
            let target = shared_target.clone();
            let guard = CountOnDrop(drops.clone());
            spawn(move || {
                let _guard = guard;
                let _ = target.wait_timeout(Duration::from_secs(3600));
            })
        })
        .collect();
    sleep(Duration::ZERO); // everyone starts and blocks
                           // Sleepers, the gate, the shared target, the timed waits.
    assert_eq!(hub.timer_count(), baseline + 2 * N + 2);

    killall(&sleepers);
    killall(&joiners);
    killall(&timed);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3 * N,
        "destructors of the killed"
    );
    assert_eq!(
        target_drops.load(Ordering::SeqCst),
        0,
        "targets were hit too"
    );
    for h in sleepers.into_iter().chain(joiners).chain(timed) {
        assert_eq!(h.join().unwrap_err().kind(), JoinErrorKind::Killed);
    }
    // Only the gate's and the shared target's sleeps are left.
    assert_eq!(hub.timer_count(), baseline + 2);
    let shared_target = Rc::try_unwrap(shared_target).expect("waiters released the handle");
    shared_target.kill();
    assert_eq!(
        shared_target.join().unwrap_err().kind(),
        JoinErrorKind::Killed
    );
    // Opening the gate lets the joiners' targets finish normally.
    gate.kill();
    sleep(Duration::ZERO);
    assert_eq!(target_drops.load(Ordering::SeqCst), N + 1);
    assert_eq!(hub.timer_count(), baseline, "timers left behind");
    // A fresh task still runs and times normally.
    let t = Instant::now();
    let h = spawn(|| {
        sleep(Duration::from_millis(5));
        7
    });
    assert_eq!(h.join().unwrap(), 7);
    assert!(t.elapsed() >= Duration::from_millis(5));
    assert_eq!(hub.timer_count(), baseline);
}

// ---------------------------------------------------------------- PAN-5 ---

const ROUNDS: usize = 100;

static DROPS: AtomicUsize = AtomicUsize::new(0);
static MAX_ELAPSED_US: AtomicU64 = AtomicU64::new(0);
static CANCELLED_WAITS: AtomicUsize = AtomicUsize::new(0);

/// A destructor that tries to block: a 10 ms cooperative sleep, and (when
/// given one) a wait for an unfinished task.
struct BlockingDrop(Option<Rc<JoinHandle<()>>>);

impl Drop for BlockingDrop {
    fn drop(&mut self) {
        let t = Instant::now();
        sleep(Duration::from_millis(10));
        let us = t.elapsed().as_micros() as u64;
        MAX_ELAPSED_US.fetch_max(us, Ordering::SeqCst);
        if let Some(h) = &self.0 {
            if let Err(e) = h.wait() {
                if e.kind() == JoinErrorKind::Cancelled {
                    CANCELLED_WAITS.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task that never finishes by itself, to be waited on from destructors.
fn forever() -> Rc<JoinHandle<()>> {
    Rc::new(spawn(|| sleep(Duration::from_secs(3600))))
}

fn pan5_report(case: &str, expect_waits: usize) {
    println!(
        "PAN5 case={case} drops={} cancelled_waits={} max_elapsed_us={}",
        DROPS.load(Ordering::SeqCst),
        CANCELLED_WAITS.load(Ordering::SeqCst),
        MAX_ELAPSED_US.load(Ordering::SeqCst)
    );
    assert_eq!(DROPS.load(Ordering::SeqCst), ROUNDS);
    assert_eq!(CANCELLED_WAITS.load(Ordering::SeqCst), expect_waits);
}

/// Parent side of PAN-5: the child exited 0, did every round, and no sleep in
/// a destructor took 5 ms.
fn pan5_parent(test: &str, case: &str) {
    let out = run_child(test, case, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{case}: child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panic in a destructor during cleanup"),
        "{case}:\n{stderr}"
    );
    let lines = summaries(&stdout, "PAN5 ");
    assert_eq!(lines.len(), 1, "{case}: child summary:\n{stdout}");
    let max_us: u64 = lines[0]
        .rsplit("max_elapsed_us=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .expect("max_elapsed_us");
    assert!(
        max_us < 5_000,
        "{case}: a sleep inside Drop blocked for {max_us} us: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!("drops={ROUNDS} ")),
        "{case}: {}",
        lines[0]
    );
}

/// PAN-5a: a destructor that sleeps while its greenlet panics.
#[test]
fn pan5_blocking_drop_during_panic() {
    const TEST: &str = "pan5_blocking_drop_during_panic";
    if child_case().as_deref() == Some("pan5_panic") {
        let other = forever();
        for i in 0..ROUNDS {
            let d = BlockingDrop(Some(other.clone()));
            let h = spawn(move || {
                let _d = d;
                panic!("pan5 {i}");
            });
            assert_eq!(h.join().unwrap_err().kind(), JoinErrorKind::Panicked);
        }
        assert!(!other.is_finished());
        pan5_report("panic", ROUNDS);
        return;
    }
    pan5_parent(TEST, "pan5_panic");
}

/// PAN-5b: a destructor that sleeps while its greenlet is killed.
#[test]
fn pan5_blocking_drop_during_kill() {
    const TEST: &str = "pan5_blocking_drop_during_kill";
    if child_case().as_deref() == Some("pan5_kill") {
        let other = forever();
        for _ in 0..ROUNDS {
            let d = BlockingDrop(Some(other.clone()));
            let h = spawn(move || {
                let _d = d;
                sleep(Duration::from_secs(3600));
            });
            yield_now(); // let it park
            h.kill();
            assert_eq!(h.join().unwrap_err().kind(), JoinErrorKind::Killed);
        }
        pan5_report("kill", ROUNDS);
        return;
    }
    pan5_parent(TEST, "pan5_kill");
}

/// PAN-5c: a destructor that sleeps while its suspended raw greenlet is
/// dropped.
#[test]
fn pan5_blocking_drop_during_drop() {
    const TEST: &str = "pan5_blocking_drop_during_drop";
    if child_case().as_deref() == Some("pan5_drop") {
        let other = forever();
        for _ in 0..ROUNDS {
            let d = BlockingDrop(Some(other.clone()));
            let g = Greenlet::new(move |()| {
                let _d = d;
                let parent = Greenlet::current().parent().unwrap();
                parent.switch(());
            });
            g.switch(());
            drop(g);
        }
        pan5_report("drop", ROUNDS);
        return;
    }
    pan5_parent(TEST, "pan5_drop");
}

/// PAN-5d: a destructor that sleeps while the hub unwinds its parked task at
/// thread exit.
#[test]

fn pan5_blocking_drop_at_shutdown() {
    const TEST: &str = "pan5_blocking_drop_at_shutdown";
    if child_case().as_deref() == Some("pan5_shutdown") {
        for _ in 0..ROUNDS {
            std::thread::spawn(|| {
                spawn(|| {
                    let _d = BlockingDrop(None);
                    sleep(Duration::from_secs(3600));
                });
                yield_now(); // it parks; the thread then exits
            })
            .join()
            .expect("hub thread");
        }
        pan5_report("shutdown", 0);
        return;
    }
    pan5_parent(TEST, "pan5_shutdown");
}

/// PAN-5e: a destructor that sleeps while the hub drops, at thread exit, the
/// closure of a task that never started.
#[test]
fn pan5_blocking_drop_at_shutdown_unstarted() {
    const TEST: &str = "pan5_blocking_drop_at_shutdown_unstarted";
    if child_case().as_deref() == Some("pan5_shutdown_unstarted") {
        for _ in 0..ROUNDS {
            std::thread::spawn(|| {
                let d = BlockingDrop(None);
                spawn(move || drop(d)); // never runs: the thread exits first
            })
            .join()
            .expect("hub thread");
        }
        pan5_report("shutdown-unstarted", 0);
        return;
    }
    pan5_parent(TEST, "pan5_shutdown_unstarted");
}

// ---------------------------------------------------------------- PAN-6 ---

/// PAN-6: a greenlet that panics with a blocking destructor does not leak
/// its panicking state: a healthy greenlet holding a std `Mutex` across a
/// switch does not poison it, and the thread is not left panicking.
#[test]
fn pan6_panicking_flag_isolated() {
    struct SleepyDrop;
    impl Drop for SleepyDrop {
        fn drop(&mut self) {
            sleep(Duration::from_millis(10));
        }
    }
    for round in 0..20 {
        let m = Arc::new(Mutex::new(0u32));
        let b_saw_panicking = Rc::new(Cell::new(false));
        let mb = m.clone();
        let seen = b_saw_panicking.clone();
        let b = spawn(move || {
            let mut guard = mb.lock().unwrap();
            *guard += 1;
            yield_now(); // A runs and panics while B holds the guard
            yield_now();
            seen.set(std::thread::panicking());
            *guard += 1;
            drop(guard);
        });
        let a = spawn(|| {
            let _d = SleepyDrop;
            yield_now();
            panic!("A panics with a blocking destructor");
        });
        let a_err = a.join().unwrap_err();
        assert_eq!(a_err.kind(), JoinErrorKind::Panicked, "round {round}");
        b.join().unwrap();
        assert!(
            !std::thread::panicking(),
            "round {round}: main is panicking"
        );
        assert!(
            !b_saw_panicking.get(),
            "round {round}: B ran while the thread counted as panicking"
        );
        assert!(!m.is_poisoned(), "round {round}: B's mutex was poisoned");
        assert_eq!(*m.lock().unwrap(), 2);
    }
}

/// PAN-7: a greenlet that catches its kill in a loop cannot freeze the hub.
/// The kill is raised again at its every wait, each time after the other
/// greenlets have had a turn, so a ticker keeps ticking; `kill_timeout`
/// and `killall_timeout` give up at their timeouts and say it is alive;
/// once it stops catching, it ends.
#[test]
fn a_greenlet_catching_its_kill_in_a_loop_yields_and_kill_timeout_gives_up() {
    use std::cell::Cell;
    use std::panic::catch_unwind;
    use std::rc::Rc;
    use std::time::{Duration, Instant};
    let caught = Rc::new(Cell::new(0u64));
    let give_in = Rc::new(Cell::new(false));
    let (c, g) = (caught.clone(), give_in.clone());
    let stubborn = verdant::spawn(move || {
        while !g.get() {
            let _ = catch_unwind(|| verdant::sleep(Duration::from_secs(3600)));
            c.set(c.get() + 1);
        }
    });
    verdant::yield_now();
    let ticks = Rc::new(Cell::new(0));
    let t2 = ticks.clone();
    let ticker = verdant::spawn(move || {
        for _ in 0..20 {
            verdant::sleep(Duration::from_millis(1));
            t2.set(t2.get() + 1);
        }
    });
    let t = Instant::now();
    assert!(!stubborn.kill_timeout(Duration::from_millis(100)));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(caught.get() > 1, "caught {} times", caught.get());
    ticker.join().unwrap();
    assert_eq!(ticks.get(), 20);
    assert_eq!(
        verdant::killall_timeout([&stubborn], Duration::from_millis(10)),
        1
    );
    give_in.set(true);
    stubborn.join().unwrap(); // it returned after catching: a success, as in gevent
}
