//! Reliability tests STK-1..STK-6 of the reliability plan (§8.1)
//! (stack safety), with the facts of §0 they rest on (1: overflows on a
//! coroutine stack are silent SIGSEGVs without a runtime handler, 2: stack
//! probes, 3: panic hooks need stack, 12: guard pages and map counts).
//!
//! Everything that aborts or segfaults runs in a *child*: the test re-executes
//! its own binary with `VERDANT_STK_CHILD=<case>` and `--exact <test>
//! --include-ignored --nocapture --test-threads=1`, and the same test
//! function, seeing the variable, runs the crash scenario; the parent asserts
//! on the child's exit status and stderr.
//!
//! libtest always runs a test on a thread of its own (named after the test),
//! never on the process's real main thread, so "the main thread" below is that
//! harness thread: a std thread running the program, whose own stack is the
//! main greenlet's.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use verdant_runtime::stack::{guard_kind, MIN_STACK_SIZE};
use verdant_runtime::{killall, sleep, yield_now, Builder, Hub, JoinErrorKind};

mod common;
use common::{child_case, recurse, run_child};

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One frame with a 1 MiB local: stack probes must touch the guard first.
#[inline(never)]
fn big_frame() -> u8 {
    let mut big = [0u8; 1 << 20];
    black_box(&mut big);
    big[black_box(12345)]
}

/// Child: a greenlet named `deep` on a 64 KiB stack runs `f` on this thread's
/// hub; reaching the end is a failure.
fn overflow_in_deep_greenlet(f: fn() -> u64) -> ! {
    let h = Builder::new()
        .name("deep")
        .stack_size(64 * 1024)
        .spawn(f)
        .expect("spawn the deep greenlet");
    let r = h.join();
    println!("UNEXPECTED: the deep greenlet finished: ok={}", r.is_ok());
    std::process::exit(3);
}

fn deep_recursion() -> u64 {
    recurse(0)
}

fn deep_big_frame() -> u64 {
    u64::from(big_frame())
}

/// Parent: asserts that one child run died of SIGABRT with the greenlet's
/// overflow message; returns a failure description instead of panicking so
/// that repeated runs can be counted.
fn check_overflow_report(out: &Output) -> Result<(), String> {
    let err = stderr_of(out);
    if out.status.signal() != Some(libc::SIGABRT) {
        return Err(format!(
            "expected death by SIGABRT (6), got {:?}\nstderr:\n{err}",
            out.status
        ));
    }
    if !err.contains("greenlet 'deep'") || !err.contains("overflowed its stack") {
        return Err(format!(
            "stderr lacks \"greenlet 'deep'\" / \"overflowed its stack\":\n{err}"
        ));
    }
    // The hint names every way to raise the size.
    for way in [
        "Builder::stack_size",
        "Builder::spawn",
        "Builder::post",
        "Pool::with_builder",
        "Group::with_builder",
        "spawn_with",
        "Hub::set_stack_size",
    ] {
        if !err.contains(way) {
            return Err(format!("the hint does not name {way}:\n{err}"));
        }
    }
    Ok(())
}

/// Runs `runs` children of `test`/`case` and requires every one to report
/// the overflow.
/// How many times each crash case runs in its child: the reliability
/// plan's 10/10 (a handler that works only most of the time is caught).
const RUNS: usize = 10;

fn assert_overflow_runs(test: &str, case: &str, runs: usize) {
    let mut ok = 0;
    let mut failures = Vec::new();
    for _ in 0..runs {
        match check_overflow_report(&run_child(test, case, &[])) {
            Ok(()) => ok += 1,
            Err(e) => failures.push(e),
        }
    }
    assert_eq!(
        ok,
        runs,
        "{case}: {ok}/{runs} runs aborted with the overflow message; first failure:\n{}",
        failures.first().map(String::as_str).unwrap_or("")
    );
}

// ---------------------------------------------------------------- STK-1 ---

/// STK-1 on the test's main thread hub: 10/10 runs abort naming the greenlet.
#[test]
fn stk1_overflow_names_greenlet_main_hub() {
    if child_case().as_deref() == Some("stk1_main") {
        overflow_in_deep_greenlet(deep_recursion);
    }
    assert_overflow_runs("stk1_overflow_names_greenlet_main_hub", "stk1_main", RUNS);
}

/// STK-1 on the hub of a `std::thread` spawned by the program.
#[test]
fn stk1_overflow_names_greenlet_std_thread_hub() {
    if child_case().as_deref() == Some("stk1_thread") {
        let t = std::thread::Builder::new()
            .name("worker".into())
            .spawn(|| overflow_in_deep_greenlet(deep_recursion))
            .expect("spawn thread");
        let _ = t.join();
        println!("UNEXPECTED: the worker thread ended");
        std::process::exit(3);
    }
    assert_overflow_runs(
        "stk1_overflow_names_greenlet_std_thread_hub",
        "stk1_thread",
        RUNS,
    );
}

/// Whether the page-sized guard below the running greenlet's stack is in
/// place, read from `/proc/self/pagemap` (bit 58 marks a guard region,
/// Linux 6.15): the first guard page found going down from the stack
/// pointer, within the stack's size and its guard.
fn own_guard_in_place(stack_size: usize) -> bool {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    let here = 0u8;
    let sp = black_box(&here) as *const u8 as usize;
    let pages = (stack_size + 4 * PAGE) / PAGE;
    let top_page = sp / PAGE;
    let lo_page = top_page - pages;
    let mut buf = vec![0u8; pages * 8];
    let f = std::fs::File::open("/proc/self/pagemap").expect("open pagemap");
    f.read_exact_at(&mut buf, (lo_page * 8) as u64)
        .expect("read pagemap");
    buf.chunks_exact(8)
        .any(|e| u64::from_ne_bytes(e.try_into().unwrap()) >> 58 & 1 == 1)
}

/// Every greenlet runs with its guard in place, including one whose stack
/// comes from a slab none of whose stacks had been run on: a slab's guards
/// go in when its first stack is about to be run on (at the spawn, or at
/// the first run of a greenlet whose start was deferred), not when it is
/// mapped, because the stacks a burst reserves are mostly never run on.
/// Checked for greenlets over several slabs, started at once and deferred
/// (no stack cache: every spawn defers).
#[test]
fn stk1_every_stack_run_on_has_its_guard() {
    if guard_kind() != verdant_runtime::stack::GuardKind::GuardInstall {
        println!(
            "guards are made with mprotect here, each as its stack is carved: nothing to check"
        );
        return;
    }
    const SIZE: usize = 64 * 1024;
    let hub = Hub::current();
    let mut checked = 0;
    for (deferred, n) in [(false, 40), (true, 40)] {
        hub.set_stack_cache_capacity(if deferred { 0 } else { 1024 });
        let hs: Vec<_> = (0..n)
            .map(|_| {
                Builder::new()
                    .stack_size(SIZE)
                    .spawn(|| {
                        let ok = own_guard_in_place(SIZE);
                        // Parked, so the next greenlet gets a stack of its
                        // own, and so on through several slabs.
                        sleep(Duration::from_millis(50));
                        ok
                    })
                    .unwrap()
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert!(
                h.join().unwrap(),
                "greenlet {i} (deferred start: {deferred}) ran with no guard below its stack"
            );
            checked += 1;
        }
    }
    hub.set_stack_cache_capacity(verdant_runtime::stack::DEFAULT_STACK_CACHE);
    assert_eq!(checked, 80);
}

// ---------------------------------------------------------------- STK-2 ---

/// STK-2: a single 1 MiB local on a 64 KiB stack hits the guard (probes).
#[test]
fn stk2_big_frame_hits_guard() {
    if child_case().as_deref() == Some("stk2") {
        overflow_in_deep_greenlet(deep_big_frame);
    }
    assert_overflow_runs("stk2_big_frame_hits_guard", "stk2", RUNS);
}

// ---------------------------------------------------------------- STK-3 ---

/// STK-3a: a null-pointer read inside a greenlet stays a plain
/// SIGSEGV and is not misreported as an overflow.
#[test]
fn stk3_real_segv_not_misreported() {
    if child_case().as_deref() == Some("stk3_segv") {
        let h = Builder::new()
            .name("wild")
            .spawn(|| {
                let p = black_box(std::ptr::null::<u8>());
                // SAFETY: not safe at all, and deliberately so: this child
                // process exists to read through a null pointer and die by
                // SIGSEGV (volatile, so the read is not optimised away).
                unsafe { std::ptr::read_volatile(p) }
            })
            .expect("spawn");
        let r = h.join();
        println!("UNEXPECTED: the null read returned: ok={}", r.is_ok());
        std::process::exit(3);
    }
    for run in 0..RUNS {
        let out = run_child("stk3_real_segv_not_misreported", "stk3_segv", &[]);
        let err = stderr_of(&out);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "run {run}: expected SIGSEGV (11), got {:?}\nstderr:\n{err}",
            out.status
        );
        assert!(
            !err.contains("overflowed"),
            "run {run}: a null read was reported as an overflow:\n{err}"
        );
    }
}

/// STK-3b: once the hub (and its signal handler) exists, an overflow of the
/// thread's own stack is still std's report, naming the thread.
#[test]
fn stk3_main_stack_overflow_still_std() {
    const TEST: &str = "stk3_main_stack_overflow_still_std";
    if child_case().as_deref() == Some("stk3_main") {
        let h = Builder::new().name("warm-up").spawn(|| 1).expect("spawn");
        assert_eq!(h.join().unwrap(), 1);
        let r = recurse(0);
        println!("UNEXPECTED: recursion returned {r}");
        std::process::exit(3);
    }
    for run in 0..RUNS {
        let out = run_child(TEST, "stk3_main", &[]);
        let err = stderr_of(&out);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "run {run}: expected SIGABRT (6), got {:?}\nstderr:\n{err}",
            out.status
        );
        assert!(
            err.contains(&format!("thread '{TEST}'")) && err.contains("has overflowed its stack"),
            "run {run}: std's thread overflow message missing:\n{err}"
        );
        assert!(
            !err.contains("greenlet '"),
            "run {run}: a thread-stack overflow was blamed on a greenlet:\n{err}"
        );
    }
}

// ---------------------------------------------------------------- STK-4 ---

extern "C" fn pthread_hub_main(_arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: querying this thread's alternate signal stack has no
    // preconditions; `old` is a valid out-pointer.
    let disabled = unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        old.ss_flags & libc::SS_DISABLE != 0
    };
    eprintln!(
        "altstack before hub: {}",
        if disabled { "disabled" } else { "enabled" }
    );
    overflow_in_deep_greenlet(deep_recursion)
}

/// STK-4: a hub on a thread made by `pthread_create` (no std altstack) still
/// reports the overflow: the runtime gave the thread an altstack.
#[test]
fn stk4_hub_thread_has_altstack() {
    if child_case().as_deref() == Some("stk4") {
        let mut tid: libc::pthread_t = 0;
        // SAFETY: `tid` is a valid out-pointer, null attributes mean the
        // defaults, and the start routine ignores its (null) argument.
        let rc = unsafe {
            libc::pthread_create(
                &mut tid,
                std::ptr::null(),
                pthread_hub_main,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "pthread_create failed");
        // SAFETY: `tid` is a joinable thread we created; its result is ignored.
        unsafe { libc::pthread_join(tid, std::ptr::null_mut()) };
        println!("UNEXPECTED: the pthread ended");
        std::process::exit(3);
    }
    for run in 0..RUNS {
        let out = run_child("stk4_hub_thread_has_altstack", "stk4", &[]);
        if let Err(e) = check_overflow_report(&out) {
            panic!("run {run}: {e}");
        }
        let err = stderr_of(&out);
        assert!(
            err.contains("altstack before hub: disabled"),
            "run {run}: the pthread already had an altstack, so the test proves nothing:\n{err}"
        );
    }
}

// ---------------------------------------------------------------- STK-5 ---

const STK5_PANICS: usize = 3;

/// STK-5: a greenlet on the minimum stack size panics with a backtrace
/// requested; the report (run on the side stack) names it and the process
/// lives.
#[test]
fn stk5_panic_backtrace_small_stack() {
    const TEST: &str = "stk5_panic_backtrace_small_stack";
    if child_case().as_deref() == Some("stk5") {
        for i in 0..STK5_PANICS {
            let h = Builder::new()
                .name("tiny")
                .stack_size(MIN_STACK_SIZE)
                .spawn(move || -> u32 {
                    // Use a little of the stack first, as real code would.
                    let mut pad = [0u8; 2048];
                    black_box(&mut pad);
                    panic!("tiny panic {i}")
                })
                .expect("spawn");
            let e = h.join().expect_err("the tiny greenlet must fail");
            assert_eq!(e.kind(), JoinErrorKind::Panicked);
            assert_eq!(e.name(), "tiny");
            assert_eq!(e.panic_message(), Some(format!("tiny panic {i}").as_str()));
        }
        println!("STK5 survived={STK5_PANICS}");
        return;
    }
    for mode in ["1", "full"] {
        for run in 0..RUNS {
            let out = run_child(TEST, "stk5", &[("RUST_BACKTRACE", mode)]);
            let err = stderr_of(&out);
            assert!(
                out.status.success(),
                "RUST_BACKTRACE={mode} run {run}: child failed: {:?}\nstderr:\n{err}",
                out.status
            );
            assert!(
                stdout_of(&out).contains(&format!("STK5 survived={STK5_PANICS}")),
                "RUST_BACKTRACE={mode} run {run}: child did not finish its panics:\n{}",
                stdout_of(&out)
            );
            assert_eq!(
                err.matches("panic in greenlet 'tiny'").count(),
                STK5_PANICS,
                "RUST_BACKTRACE={mode} run {run}: reports naming the greenlet:\n{err}"
            );
            assert!(
                err.contains("stack backtrace:"),
                "RUST_BACKTRACE={mode} run {run}: no backtrace was printed:\n{err}"
            );
        }
    }
}

// ---------------------------------------------------------------- STK-6 ---

fn maps_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

fn vm_size_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("VmSize value");
    kib * 1024
}

fn set_soft_as_limit(limit: libc::rlim_t) -> libc::rlim_t {
    // SAFETY: `lim` is a valid in/out struct for getrlimit/setrlimit.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = limit.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &lim), 0, "setrlimit");
        old
    }
}

/// Address space left for stacks in the STK-6 child.
const STK6_HEADROOM: u64 = 512 << 20;

/// Child of STK-6: spawns sleeping greenlets under a lowered `RLIMIT_AS`
/// until `spawn` fails.
fn stk6_child() {
    // Keep every heap allocation below 16 MiB inside the malloc arena, and
    // never give arena memory back, so that only stack mmaps can hit the
    // limit (a failed heap allocation would abort, which is not what is
    // under test here).
    // SAFETY: mallopt only tunes glibc's allocator and is thread-safe.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    let warm: Vec<Box<[u8; 1024]>> = (0..32 * 1024).map(|_| Box::new([0u8; 1024])).collect();
    drop(black_box(warm));

    let hub = Hub::current();
    // The headroom below is sized for 64 KiB stacks, whatever the default.
    hub.set_stack_size(64 * 1024).unwrap();
    let guard = guard_kind();
    let baseline_maps = maps_count();
    let mut handles = Vec::with_capacity(200_000);
    let old_limit = set_soft_as_limit(vm_size_bytes() + STK6_HEADROOM);
    let err = loop {
        match Builder::new().spawn(|| sleep(Duration::from_secs(3600))) {
            Ok(h) => {
                handles.push(h);
                if handles.len() % 256 == 0 {
                    yield_now(); // let the batch start and park
                }
                assert!(handles.len() < 200_000, "spawn never failed");
            }
            Err(e) => break e,
        }
    };
    yield_now();
    let count = handles.len();
    let peak_maps = maps_count();
    println!(
        "STK6 spawned={count} kind={:?} guard={guard:?} error=\"{err}\"",
        err.kind()
    );

    // Still under the limit: kill a few, and the hub serves a new task.
    for h in handles.drain(..8) {
        h.kill();
        assert_eq!(h.join().unwrap_err().kind(), JoinErrorKind::Killed);
    }
    let fresh = Builder::new()
        .spawn(|| {
            yield_now();
            40 + 2
        })
        .expect("a new task after killing a few");
    assert_eq!(fresh.join().unwrap(), 42);
    println!("STK6 served=1");

    set_soft_as_limit(old_limit);
    killall(&handles);
    let killed = handles
        .into_iter()
        .map(|h| h.join().unwrap_err().kind())
        .filter(|k| *k == JoinErrorKind::Killed)
        .count();
    assert_eq!(killed, count - 8);
    assert_eq!(hub.timer_count(), 0);
    hub.set_stack_cache_capacity(0); // pooled stacks are intentional; drop them
    let after_maps = maps_count();
    println!("STK6 maps baseline={baseline_maps} peak={peak_maps} after={after_maps}");
    // The plan's bound (37 before and after here, with either guard kind).
    assert!(
        after_maps.abs_diff(baseline_maps) <= 5,
        "maps not back to baseline: {baseline_maps} -> {after_maps}"
    );
    println!("STK6 done");
}

/// STK-6: spawning until the address space runs out fails with an error of
/// kind `OutOfMemory`, never a panic or abort, and everything recovers.
#[test]
fn stk6_spawn_until_enomem() {
    if child_case().as_deref() == Some("stk6") {
        stk6_child();
        return;
    }
    let out = run_child("stk6_spawn_until_enomem", "stk6", &[]);
    let stdout = stdout_of(&out);
    let stderr = stderr_of(&out);
    // libtest prints `test <name> ... ` without a newline before the child's
    // own output, so take each summary from where it starts.
    let summary: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("STK6 ").map(|i| &l[i..]))
        .collect();
    println!("{}", summary.join("; "));
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let spawned: usize = summary
        .iter()
        .find_map(|l| l.strip_prefix("STK6 spawned="))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no spawn count in child output:\n{stdout}"));
    assert!(
        summary.iter().any(|l| l.contains("kind=OutOfMemory")),
        "spawn failed with another error kind: {summary:?}"
    );
    // 512 MiB of headroom over 80 KiB per stack (64 KiB usable + 16 KiB
    // guard) is about 6,500 greenlets; anything far below is a leak.
    assert!(
        spawned >= 3_000,
        "only {spawned} greenlets before spawn failed: {summary:?}"
    );
    assert!(
        summary.contains(&"STK6 served=1") && summary.contains(&"STK6 done"),
        "recovery steps missing (spawned {spawned}): {summary:?}"
    );
}
