//! The stack pool at scale: stacks carved many to a mapping, memory given
//! back in batches and when the hub goes idle, address space given back when
//! the cache is emptied, and the fallback for kernels before 6.13
//! (`VERDANT_STACK_COMPAT=1`: `mprotect` guards, one `madvise` per range).
//!
//! Each case measures process-wide figures (resident memory, mappings,
//! system calls), so it runs in a child process of its own (see
//! `common::run_child`), away from the other tests' threads.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::rc::Rc;

use verdant::stack::{guard_kind, GuardKind, COMPAT_ENV};
use verdant::sync::Event;
use verdant::{joinall, killall, sleep, yield_now, Builder, Hub};

mod common;
use common::{child_case, output_text, run_child};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn rss_mib() -> u64 {
    status_kib("VmRSS:") / 1024
}

fn maps_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

#[track_caller]
fn assert_child_ok(out: &Output) {
    assert!(out.status.success(), "child failed: {}", output_text(out));
}

/// Touches `N` bytes of the running greenlet's stack.
#[inline(never)]
fn use_stack<const N: usize>() -> u8 {
    let mut buf = [0u8; N];
    black_box(&mut buf);
    buf[N / 2]
}

/// Parks `n` greenlets that each used about `depth` bytes of stack on an
/// event, then lets them all finish.
fn park_then_finish(n: usize, touch: fn() -> u8) -> (u64, u64) {
    let ev = Rc::new(Event::new());
    let rss0 = rss_mib();
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let ev = ev.clone();
            verdant::spawn(move || {
                black_box(touch());
                ev.wait().unwrap();
            })
        })
        .collect();
    yield_now();
    let parked = rss_mib().saturating_sub(rss0);
    ev.set();
    joinall(&hs).unwrap();
    drop(hs);
    (rss0, parked)
}

/// Finished greenlets' stacks give their memory back: past the cache, in
/// batches while the hub is busy, and all of it once the hub goes idle.
#[test]
fn finished_stacks_give_their_memory_back() {
    if child_case().as_deref() == Some("release") {
        let n = 8_000;
        let (rss0, parked) = park_then_finish(n, use_stack::<{ 16 * 1024 }>);
        // 8,000 × (16 KiB used + the first page) ≈ 150 MiB.
        assert!(parked >= 100, "parked greenlets hold only {parked} MiB");
        // Busy (no idle moment yet): what is held past the cache is at most
        // a batch.
        let busy = rss_mib().saturating_sub(rss0);
        let before = Hub::current().stack_stats();
        sleep(std::time::Duration::from_millis(1)); // the hub goes idle
        let after = Hub::current().stack_stats();
        let idle = rss_mib().saturating_sub(rss0);
        println!("parked={parked} MiB busy={busy} MiB idle={idle} MiB {before:?} {after:?}");
        // 8,000 - 1,024 cached = 27 batches of 256, and 64 left over.
        assert_eq!(before.pending, 64, "{before:?}");
        assert_eq!(after.pending, 0, "not released when the hub went idle");
        assert_eq!(after.cached, verdant::stack::DEFAULT_STACK_CACHE);
        // The cache keeps 1,024 scrubbed stacks of about 20 KiB each.
        let cache = (verdant::stack::DEFAULT_STACK_CACHE * 20 / 1024) as u64;
        assert!(busy <= cache + 16, "busy: {busy} MiB still held");
        assert!(idle <= cache + 8, "idle: {idle} MiB still held");
        return;
    }
    assert_child_ok(&run_child(
        "finished_stacks_give_their_memory_back",
        "release",
        &[],
    ));
}

/// Past the first cacheful, a greenlet of a burst gets its stack's memory
/// when it first runs, not when it is spawned: when its greenlets each
/// finish without waiting, the burst runs on the cache's stacks, where a
/// stack committed at spawn would have made 20,000 resident stacks at once.
#[test]
fn a_burst_of_spawns_commits_memory_only_for_greenlets_alive_at_once() {
    if child_case().as_deref() == Some("burst") {
        let hub = Hub::current();
        let hwm0 = status_kib("VmHWM:");
        let n = 20_000;
        let hs: Vec<_> = (0..n)
            .map(|_| verdant::spawn(use_stack::<{ 16 * 1024 }>))
            .collect();
        // Spawned, none run: only address space is reserved.
        let stats = hub.stack_stats();
        assert_eq!((stats.cached, stats.pending), (0, 0), "{stats:?}");
        assert!(stats.reserved >= n * 256 * 1024, "{stats:?}");
        joinall(&hs).unwrap();
        drop(hs);
        let stats = hub.stack_stats();
        let grew = (status_kib("VmHWM:") - hwm0) / 1024;
        println!("peak grew {grew} MiB, {stats:?}");
        // The first 1,024 (the cache's capacity) got a stack each at
        // spawn; each later one started on a stack left in the cache.
        assert_eq!(
            (stats.cached, stats.pending),
            (verdant::stack::DEFAULT_STACK_CACHE, 0),
            "{stats:?}"
        );
        // Committed at spawn: 20,000 × 20 KiB ≈ 400 MiB at the peak. Here:
        // 1,024 × 20 KiB, and the greenlets' records and handles.
        assert!(grew <= 48, "peak resident memory grew by {grew} MiB");
        return;
    }
    assert_child_ok(&run_child(
        "a_burst_of_spawns_commits_memory_only_for_greenlets_alive_at_once",
        "burst",
        &[],
    ));
}

/// STK-6's memory figure: a greenlet spawned, run once and parked in
/// `sleep` holds at most 4.5 KiB of resident memory, all told: its stack's
/// top page, its record, its timer and its handle (the page tables that
/// map its stack are kernel memory, outside RSS, as `park_many` reports).
/// Measured over 200,000 greenlets in a release build (20,000 on the
/// `mprotect` fallback); a debug build's deeper frames take a second page,
/// so there it is printed, with 20,000.
#[test]
fn a_parked_greenlet_holds_at_most_4_5_kib() {
    if child_case().as_deref() == Some("park") {
        // The `mprotect` fallback stops near 32,700 (`vm.max_map_count`).
        let n = if cfg!(debug_assertions) || guard_kind() != GuardKind::GuardInstall {
            20_000
        } else {
            200_000
        };
        // No cache: what is counted is held by the parked greenlets alone.
        Hub::current().set_stack_cache_capacity(0);
        let rss0 = status_kib("VmRSS:");
        let mut hs = Vec::with_capacity(n);
        for _ in 0..n {
            hs.push(verdant::spawn(|| {
                sleep(std::time::Duration::from_secs(3600))
            }));
        }
        yield_now(); // each runs once and parks
        let per = status_kib("VmRSS:").saturating_sub(rss0) as f64 / n as f64;
        println!("{n} parked greenlets: {per:.3} KiB each");
        if !cfg!(debug_assertions) {
            assert!(per <= 4.5, "{per:.2} KiB per parked greenlet");
        }
        killall(&hs);
        return;
    }
    let out = run_child("a_parked_greenlet_holds_at_most_4_5_kib", "park", &[]);
    assert_child_ok(&out);
    println!(
        "{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("parked greenlets"))
            .unwrap_or("")
    );
}

/// A greenlet whose stack was reserved at spawn but that starts on another
/// one (left resident by a greenlet that finished first) still has its
/// overflow reported by name: its guard range is that of the stack it runs
/// on.
#[test]
fn a_greenlet_started_on_a_stack_it_was_not_spawned_with_reports_its_overflow() {
    if child_case().as_deref() == Some("swapped") {
        // No cache: every spawn without a free resident stack is deferred.
        Hub::current().set_stack_cache_capacity(0);
        // All spawned while the pool has no resident stack: each reserves
        // one, side by side. `first` finishes and leaves its stack resident
        // (pending release), which `deep` then starts on; the eight between them die
        // unstarted, so `deep`'s own reservation lies 2 MiB above the stack
        // it runs on (farther than the overflow handler's reach below a
        // guard).
        let first = verdant::spawn(|| ());
        let between: Vec<_> = (0..8).map(|_| verdant::spawn(|| ())).collect();
        let deep = Builder::new()
            .name("deep")
            .spawn(use_stack::<{ 1 << 20 }>)
            .unwrap();
        killall(&between);
        first.join().unwrap();
        let _ = deep.join();
        std::process::exit(3);
    }
    let out = run_child(
        "a_greenlet_started_on_a_stack_it_was_not_spawned_with_reports_its_overflow",
        "swapped",
        &[],
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        output_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("greenlet 'deep' has overflowed its stack"),
        "{}",
        output_text(&out)
    );
}

/// Emptying the cache gives the address space back too; so does the
/// hub's own bound on released stacks, 4,096 of them, after a burst.
#[test]
fn emptying_the_cache_unmaps_the_slabs() {
    if child_case().as_deref() == Some("trim") {
        let hub = Hub::current();
        let vm0 = status_kib("VmSize:");
        let hs: Vec<_> = (0..10_000)
            .map(|_| verdant::spawn(|| sleep(std::time::Duration::from_secs(3600))))
            .collect();
        yield_now();
        let vm_peak = status_kib("VmSize:") - vm0;
        killall(&hs);
        drop(hs);
        sleep(std::time::Duration::from_millis(1));
        let vm_idle = status_kib("VmSize:") - vm0;
        hub.set_stack_cache_capacity(0);
        let vm_empty = status_kib("VmSize:").saturating_sub(vm0);
        let stats = hub.stack_stats();
        assert_eq!(
            (stats.cached, stats.pending, stats.slabs),
            (0, 0, 0),
            "{stats:?}"
        );
        println!("VmSize growth: peak={vm_peak} KiB idle={vm_idle} KiB empty={vm_empty} KiB");
        // 10,000 stacks of 256 KiB + 16 KiB guard: 2.6 GiB reserved.
        assert!(vm_peak >= 2_500_000, "peak {vm_peak} KiB");
        // Idle: the cache (1,024 stacks) and at most 8,192 released ones,
        // the slabs left whole.
        assert!(vm_idle < vm_peak, "nothing unmapped after the burst");
        // Emptied: only slabs still holding some other stack remain (none).
        assert!(vm_empty <= 64 * 1024, "still {vm_empty} KiB reserved");
        return;
    }
    assert_child_ok(&run_child(
        "emptying_the_cache_unmaps_the_slabs",
        "trim",
        &[],
    ));
}

fn have_strace() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs child `case` of `test` under `strace -c -f`, returns the calls per
/// system call name.
fn syscall_counts(test: &str, case: &str, env: &[(&str, &str)]) -> Vec<(String, u64)> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("strace")
        .args([
            "-f",
            "-c",
            "-U",
            "name,calls",
            "-e",
            "trace=%memory,process_madvise",
        ])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(common::CHILD_ENV, case)
        .envs(env.iter().copied())
        .output()
        .expect("run strace");
    assert_child_ok(&out);
    // strace -c writes its table to stderr: name, calls.
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, calls) = (w.next()?, w.next()?.parse().ok()?);
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn calls(table: &[(String, u64)], name: &str) -> u64 {
    table.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

/// The child both strace cases trace: 10,000 greenlets spawned, parked and
/// finished, twice.
fn ten_thousand_twice() {
    for _ in 0..2 {
        let (_, parked) = park_then_finish(10_000, use_stack::<64>);
        assert!(parked >= 30, "{parked} MiB for 10,000 parked greenlets");
        sleep(std::time::Duration::from_millis(1));
    }
}

/// 10,000 fresh stacks cost a few hundred system calls, not 30,000: one
/// mapping per slab of up to 64 stacks, the guards and releases of many
/// stacks per call.
#[test]
fn spawning_many_costs_few_system_calls() {
    if child_case().as_deref() == Some("count") {
        assert_eq!(guard_kind(), GuardKind::GuardInstall);
        ten_thousand_twice();
        return;
    }
    if guard_kind() != GuardKind::GuardInstall {
        // The per-stack fallback is the next test's subject.
        println!("kernel before 6.13: no batched guards to count");
        return;
    }
    assert!(
        have_strace(),
        "strace is needed (CI installs it: .ci/run); apt-get install strace"
    );
    let t = syscall_counts("spawning_many_costs_few_system_calls", "count", &[]);
    println!("{t:?}");
    let (mmap, madvise, batched) = (
        calls(&t, "mmap"),
        calls(&t, "madvise"),
        calls(&t, "process_madvise"),
    );
    // 10,000 stacks: 157 slabs of 64 (the first few smaller), plus the
    // test harness's and malloc's own mappings.
    assert!(mmap <= 400, "{mmap} mmap calls: {t:?}");
    assert!(madvise <= 200, "{madvise} madvise calls: {t:?}");
    // Guards and prefaults per slab, releases per batch of 256.
    assert!(
        (100..=1_500).contains(&batched),
        "{batched} process_madvise calls: {t:?}"
    );
}

/// `VERDANT_STACK_COMPAT=1`: guards by `mprotect` (one mapping more per
/// live stack), a system call per range, and the same results.
#[test]
fn the_pre_6_13_fallback_works_the_same() {
    match child_case().as_deref() {
        Some("compat") => {
            assert_eq!(guard_kind(), GuardKind::Mprotect);
            let maps0 = maps_count();
            let hs: Vec<_> = (0..2_000)
                .map(|_| verdant::spawn(|| sleep(std::time::Duration::from_secs(3600))))
                .collect();
            yield_now();
            let grown = maps_count() - maps0;
            println!("maps grown by {grown} for 2,000 stacks");
            assert!(
                (2_000..=4_100).contains(&grown),
                "{grown} more mappings for 2,000 guarded stacks"
            );
            killall(&hs);
            drop(hs);
            Hub::current().set_stack_cache_capacity(0);
            let left = maps_count().saturating_sub(maps0);
            assert!(left <= 16, "{left} mappings left after emptying the cache");
            ten_thousand_twice();
            return;
        }
        Some("compat_overflow") => {
            assert_eq!(guard_kind(), GuardKind::Mprotect);
            // A few stacks first, so the deep one is carved from a slab.
            let hs: Vec<_> = (0..5).map(|_| verdant::spawn(yield_now)).collect();
            joinall(&hs).unwrap();
            let h = Builder::new()
                .name("deep")
                .stack_size(64 * 1024)
                .spawn(use_stack::<{ 1 << 20 }>)
                .unwrap();
            let _ = h.join();
            std::process::exit(3);
        }
        _ => {}
    }
    let env = [(COMPAT_ENV, "1")];
    assert_child_ok(&run_child(
        "the_pre_6_13_fallback_works_the_same",
        "compat",
        &env,
    ));
    let out = run_child(
        "the_pre_6_13_fallback_works_the_same",
        "compat_overflow",
        &env,
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        output_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("greenlet 'deep' has overflowed its stack"),
        "{}",
        output_text(&out)
    );
    if have_strace() {
        let t = syscall_counts("the_pre_6_13_fallback_works_the_same", "compat", &env);
        assert_eq!(calls(&t, "process_madvise"), 0, "{t:?}");
        // One guard per stack carved.
        assert!(calls(&t, "mprotect") >= 10_000, "{t:?}");
    }
}

/// `VERDANT_STACK_COMPAT=1` at the `vm.max_map_count` ceiling (65,530
/// here): every guarded stack is a mapping more, so spawning stops at about
/// 32,700 greenlets, with an error that says why, never a panic; a
/// `StreamServer` refuses the connections it cannot give a greenlet (a log
/// line each), and serves again once greenlets have ended.
#[test]
fn at_the_map_count_ceiling_spawn_fails_with_an_error_and_a_server_refuses() {
    use std::io::{Read, Write};
    use verdant::net::{StreamServer, TcpStream};
    if child_case().as_deref() == Some("ceiling") {
        assert_eq!(guard_kind(), GuardKind::Mprotect);
        let maps_zero = maps_count(); // no stack yet
        let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
            let _ = conn.write_all(b"hi");
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        yield_now(); // the accept loop waits in accept
        let maps_before = maps_count();
        let mut parked = Vec::new();
        let err = loop {
            match Builder::new().spawn(|| sleep(std::time::Duration::from_secs(3600))) {
                Ok(h) => parked.push(h),
                Err(e) => break e,
            }
            assert!(parked.len() < 100_000, "no ceiling met");
            if parked.len() % 1024 == 0 {
                yield_now(); // let them start (and take their stacks)
            }
        };
        println!(
            "ceiling: {} greenlets, then {err} ({:?}); {} mappings",
            parked.len(),
            err.kind(),
            maps_count()
        );
        assert!(
            (20_000..=40_000).contains(&parked.len()),
            "{} greenlets",
            parked.len()
        );
        assert!(err.to_string().contains("max_map_count"), "{err}");
        // The server cannot make a greenlet for a new connection: refused.
        let mut c = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 2];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
        assert!(server.refused() >= 1);
        assert!(server.is_serving());
        // Room again: served.
        killall(&parked[..2_000]);
        drop(parked.drain(..2_000));
        let mut c = TcpStream::connect(addr).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        killall(&parked);
        drop(parked);
        // Every stack back: with no stack kept for reuse, the 65,000
        // mappings are gone. While the server still runs, a few stay (7
        // here): the slab that holds its accept loop's stack keeps the
        // mprotect guards of its released ones (on this fallback a guard is
        // its own mapping).
        let hub = Hub::current();
        hub.set_stack_cache_capacity(0);
        sleep(std::time::Duration::from_millis(1));
        let serving = maps_count();
        assert!(
            serving <= maps_before + 16,
            "{maps_before} mappings before, {serving} after"
        );
        // Once the server stops too, and the cache is emptied again, no
        // slab is left: the plan's baseline ±5 (what stays is the
        // allocator's: this thread's malloc arena, a large chunk).
        server.stop(std::time::Duration::from_secs(1));
        drop(server);
        hub.set_stack_cache_capacity(0);
        let after = maps_count();
        println!(
            "ceiling: {maps_zero} mappings with no stack, {maps_before} serving; \
             {serving} once the greenlets ended, {after} once the server stopped ({:?})",
            hub.stack_stats()
        );
        assert_eq!(hub.stack_stats().slabs, 0, "{:?}", hub.stack_stats());
        assert!(
            after.abs_diff(maps_zero) <= 5,
            "{maps_zero} mappings with no stack, {after} after"
        );
        return;
    }
    let out = run_child(
        "at_the_map_count_ceiling_spawn_fails_with_an_error_and_a_server_refuses",
        "ceiling",
        &[(COMPAT_ENV, "1")],
    );
    assert_child_ok(&out);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused a connection from 127.0.0.1:"),
        "{}",
        output_text(&out)
    );
    assert!(!stderr.contains("panicked"), "{}", output_text(&out));
}
