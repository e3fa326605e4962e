//! THR-5 (issue 24): a greenlet resumes only on the thread that made it.
//!
//! Greenlet handles are `!Send` (THR-1's compile-fail checks), so only
//! `unsafe` code can move one across threads. A debug build checks the
//! owner before every resume (`Inner::assert_owner` in the hub's root
//! loop): under a 4-hub stress with cross-hub posts it never fires, and a
//! greenlet smuggled to another thread is refused with a message before
//! anything of it runs there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use verdant::{sleep, spawn, yield_now, Hub, Hubs, Remote};

mod common;

const HUBS: usize = 4;
const PER_HUB: usize = 250;
const SWITCHES: usize = 100;

/// Yields `SWITCHES` times, checking at every resume that it is still on
/// the thread it started on (the runtime's own check runs in the root loop
/// at the same moments, in a debug build).
fn churn() {
    let me = thread::current().id();
    for _ in 0..SWITCHES {
        yield_now();
        assert_eq!(
            thread::current().id(),
            me,
            "a greenlet resumed on another thread"
        );
    }
}

#[test]
fn four_hubs_switch_and_post_and_every_greenlet_resumes_where_it_was_made() {
    let remotes: Arc<Mutex<Vec<Option<Remote>>>> = Arc::new(Mutex::new(vec![None; HUBS]));
    let done = Arc::new(AtomicUsize::new(0));
    let total = 2 * HUBS * PER_HUB;
    let exits = Hubs::new()
        .threads(HUBS)
        .run(move |hub| {
            remotes.lock().unwrap()[hub.index()] = Some(Hub::current().remote());
            let next = loop {
                if let Some(r) = remotes.lock().unwrap()[(hub.index() + 1) % HUBS].clone() {
                    break r;
                }
                sleep(Duration::from_millis(1));
            };
            // Greenlets of this hub, and as many posted to the next hub,
            // which makes them there.
            let local: Vec<_> = (0..PER_HUB)
                .map(|_| {
                    let d = done.clone();
                    spawn(move || {
                        churn();
                        d.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for _ in 0..PER_HUB {
                let d = done.clone();
                next.post(move || {
                    churn();
                    d.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            for h in local {
                h.join().unwrap();
            }
            // Stay up until every hub's posted greenlets have run here.
            let t0 = Instant::now();
            while done.load(Ordering::Relaxed) < total {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "the stress never finished"
                );
                sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    for e in exits {
        e.result.unwrap();
    }
}

/// In a child process: a greenlet moved to another thread with `unsafe`
/// and switched to there ends the process with the check's message. (In a
/// release build there is no check, and this would be undefined
/// behaviour: the test is debug only.)
#[cfg(debug_assertions)]
#[test]
fn a_greenlet_smuggled_to_another_thread_is_refused_before_it_runs() {
    use common::{child_case, run_child_expecting_abort};
    use verdant::Greenlet;

    if child_case().as_deref() == Some("smuggle") {
        struct Smuggled(Greenlet);
        // SAFETY: not safe, on purpose: the test checks that a debug build
        // catches exactly this misuse. The owner thread only waits in
        // `join` meanwhile, touching nothing of the greenlet.
        unsafe impl Send for Smuggled {}
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let g = Greenlet::new(move |()| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        g.set_name("smuggled");
        let s = Smuggled(g);
        let _ = thread::spawn(move || {
            let s = s;
            s.0.switch(());
        })
        .join();
        unreachable!(
            "ran {} times on the wrong thread",
            ran.load(Ordering::SeqCst)
        );
    }
    let stderr = run_child_expecting_abort(
        "a_greenlet_smuggled_to_another_thread_is_refused_before_it_runs",
        "smuggle",
    );
    assert!(
        stderr.contains("greenlet 'smuggled'") && stderr.contains("made on another thread"),
        "{stderr}"
    );
}
