//! What happens in the awkward cases (issue 24 §4), each in a child
//! process so that its exit status and stderr can be read: the outcome is
//! defined, documented (where the runtime's docs say so) and checked here.
//!
//! * `process::exit` from a greenlet while others are parked: the process
//!   exits with that code at once; nothing is unwound or reported.
//! * A `Drop` that panics while a killed greenlet unwinds: Rust aborts the
//!   process ("panic in a destructor during cleanup"), as for a thread;
//!   verdant's report names the greenlet first.
//! * A panic hook installed by the program after the hub started: it
//!   replaces verdant's wrapper, so it runs for greenlet panics (on the
//!   greenlet's stack, without the line naming the greenlet), and the
//!   `JoinError` still has the message and the greenlet's name.
//! * A `SIGSEGV` handler installed by the program after the hub started:
//!   it replaces verdant's, so a greenlet's stack overflow reaches it (on
//!   the hub thread's alternate stack) instead of verdant's report;
//!   installed before, it is kept and chained to for faults that are not
//!   a greenlet's overflow.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use verdant::{sleep, spawn, Builder};

mod common;
use common::{child_case, run_child};

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn process_exit_from_a_greenlet_exits_at_once_with_its_code() {
    if child_case().as_deref() == Some("exit") {
        for _ in 0..10 {
            spawn(|| sleep(Duration::from_secs(3600)));
        }
        spawn(|| std::process::exit(7)).join().unwrap();
        unreachable!("the process has exited");
    }
    let out = run_child(
        "process_exit_from_a_greenlet_exits_at_once_with_its_code",
        "exit",
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panic"), "{}", text(&out));
}

/// Panics when dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop panicked");
    }
}

#[test]
fn a_drop_that_panics_while_a_killed_greenlet_unwinds_aborts_with_rusts_message() {
    if child_case().as_deref() == Some("drop") {
        let h = Builder::new()
            .name("dropper")
            .spawn(|| {
                let _p = PanicsOnDrop;
                sleep(Duration::from_secs(3600));
            })
            .unwrap();
        sleep(Duration::ZERO);
        h.kill();
        unreachable!("the process has aborted");
    }
    let out = run_child(
        "a_drop_that_panics_while_a_killed_greenlet_unwinds_aborts_with_rusts_message",
        "drop",
        &[],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("panic in greenlet 'dropper'"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("drop panicked"), "{}", text(&out));
    assert!(
        stderr.contains("panic in a destructor during cleanup"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_panic_hook_installed_after_the_hub_started_runs_for_greenlet_panics() {
    if child_case().as_deref() == Some("hook") {
        sleep(Duration::ZERO); // the hub (and verdant's hook) is up
        std::panic::set_hook(Box::new(|info| {
            eprintln!("program hook: {info}");
        }));
        let e = Builder::new()
            .name("panicker")
            .spawn(|| panic!("boom"))
            .unwrap()
            .join()
            .unwrap_err();
        assert_eq!(e.panic_message(), Some("boom"));
        assert!(format!("{e}").contains("panicker"), "{e}");
        println!("joined: {e}");
        return;
    }
    let out = run_child(
        "a_panic_hook_installed_after_the_hub_started_runs_for_greenlet_panics",
        "hook",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("program hook: "), "{}", text(&out));
    assert!(stderr.contains("boom"), "{}", text(&out));
    // The program's hook replaced verdant's wrapper: no naming line.
    assert!(!stderr.contains("panic in greenlet"), "{}", text(&out));
}

/// Recurses without bound (512 bytes a frame, not a loop or tail call).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[(depth % 512) as usize] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(black_box(depth + 1)).wrapping_add(u64::from(frame[(depth % 7) as usize]))
}

extern "C" fn program_handler(_sig: libc::c_int) {
    let msg = b"program handler\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is live.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(42);
    }
}

fn install_program_handler() {
    // SAFETY: a zeroed sigaction is valid to fill in; the handler only makes
    // async-signal-safe calls; SA_ONSTACK runs it on the thread's
    // alternate stack (a greenlet's overflowed stack has no room).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = program_handler as *const () as usize;
        sa.sa_flags = libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
fn a_sigsegv_handler_installed_after_the_hub_started_gets_a_greenlet_overflow() {
    match child_case().as_deref() {
        Some("after") => {
            sleep(Duration::ZERO); // the hub (and verdant's handler) is up
            install_program_handler();
            let h = Builder::new()
                .name("deep")
                .stack_size(64 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = h.join();
            std::process::exit(3);
        }
        Some("before") => {
            install_program_handler();
            let h = Builder::new()
                .name("deep")
                .stack_size(64 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = h.join();
            std::process::exit(3);
        }
        _ => {}
    }
    let name = "a_sigsegv_handler_installed_after_the_hub_started_gets_a_greenlet_overflow";
    let after = run_child(name, "after", &[]);
    assert_eq!(after.status.code(), Some(42), "{}", text(&after));
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("program handler"),
        "{}",
        text(&after)
    );
    // Installed before the first hub: verdant's report comes first (and
    // ends the process), the program's handler is kept for other faults.
    let before = run_child(name, "before", &[]);
    assert_eq!(
        before.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        text(&before)
    );
    assert!(
        String::from_utf8_lossy(&before.stderr)
            .contains("greenlet 'deep' has overflowed its stack"),
        "{}",
        text(&before)
    );
}
