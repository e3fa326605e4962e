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

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use verdant::{sleep, spawn, Builder};

mod common;
use common::{child_case, output_text, recurse, run_child};

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
    assert_eq!(out.status.code(), Some(7), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panic"), "{}", output_text(&out));
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
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        output_text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("panic in greenlet 'dropper'"),
        "{}",
        output_text(&out)
    );
    assert!(stderr.contains("drop panicked"), "{}", output_text(&out));
    assert!(
        stderr.contains("panic in a destructor during cleanup"),
        "{}",
        output_text(&out)
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
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("program hook: "), "{}", output_text(&out));
    assert!(stderr.contains("boom"), "{}", output_text(&out));
    // The program's hook replaced verdant's wrapper: no naming line.
    assert!(
        !stderr.contains("panic in greenlet"),
        "{}",
        output_text(&out)
    );
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
    if let Some(case) = child_case() {
        if case == "after" {
            sleep(Duration::ZERO); // the hub (and verdant's handler) is up
        }
        install_program_handler();
        let h = Builder::new()
            .name("deep")
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = h.join();
        std::process::exit(3);
    }
    let name = "a_sigsegv_handler_installed_after_the_hub_started_gets_a_greenlet_overflow";
    let after = run_child(name, "after", &[]);
    assert_eq!(after.status.code(), Some(42), "{}", output_text(&after));
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("program handler"),
        "{}",
        output_text(&after)
    );
    // Installed before the first hub: verdant's report comes first (and
    // ends the process), the program's handler is kept for other faults.
    let before = run_child(name, "before", &[]);
    assert_eq!(
        before.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        output_text(&before)
    );
    assert!(
        String::from_utf8_lossy(&before.stderr)
            .contains("greenlet 'deep' has overflowed its stack"),
        "{}",
        output_text(&before)
    );
}
