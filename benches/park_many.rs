//! Parks 100,000 and then 1,000,000 greenlets, each in `sleep`, and prints
//! the resident memory per parked greenlet (from /proc/self/statm), the time
//! to spawn and park them, and the memory mappings used.
//!
//! `cargo bench --bench park_many` (add `-- --quick` for 100,000 only, and
//! `-- --stack-size BYTES` to park them on stacks of another size than the
//! default). Targets: 1,000,000 succeed at the default `vm.max_map_count`,
//! ≤ 4.5 KiB each, spawned and parked in ≤ 3 s; teardown (killing them all)
//! in ≤ 2 s is out of reach while a kill unwinds the greenlet's stack with
//! the system unwinder: on this 2-core host one
//! `catch_unwind(|| resume_unwind(..))` takes 1.5 µs with no frame between
//! them and 2.6 µs with six, and a kill of a greenlet parked in `sleep`
//! makes 38 frame-table lookups (`_Unwind_Find_FDE`, counted with uprobes)
//! through its seven frames and two landing pads, searched then unwound.
//!
//! Spawning is bound by the kernel here: each parked greenlet's first
//! stack page is a page fault (zeroed memory that this VM's host must back:
//! touching a fresh page takes 1.5 µs, and 7 µs on memory the host has not
//! lent the guest recently).
//!
//! The user/sys columns split each phase's CPU time. Spawning is mostly the
//! kernel's, faulting in each greenlet's first stack page; teardown is
//! mostly the unwinder's (user), then giving the stacks back (sys).
//!
//! The page-table column is the kernel memory a larger *virtual* stack costs:
//! RSS counts only touched pages, but every 2 MiB of address space holding a
//! touched page needs one 4 KiB page of page table (`VmPTE`).
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn page_table_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPTE:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// User and system CPU time so far, in seconds.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

fn usage() -> ! {
    eprintln!("usage: park_many [--quick] [--stack-size BYTES]");
    std::process::exit(2)
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn main() {
    let mut quick = false;
    let mut stack_size = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--stack-size" => match args.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(v) => stack_size = Some(v),
                None => usage(),
            },
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            _ => usage(),
        }
    }
    let sizes: &[usize] = if quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let hub = verdant::Hub::current();
    if let Some(size) = stack_size {
        if let Err(e) = hub.set_stack_size(size) {
            eprintln!("park_many: --stack-size {size}: {e}");
            std::process::exit(2);
        }
    }
    println!(
        "guard pages: {:?}; stack size {} KiB",
        verdant::stack::guard_kind(),
        hub.stack_size() / 1024
    );
    println!(
        "{:>10} {:>12} {:>12} {:>14} {:>12} {:>14} {:>8} {:>10} {:>12}",
        "greenlets",
        "spawn+park",
        "(user/sys)",
        "RSS growth",
        "per greenlet",
        "page tables",
        "maps",
        "teardown",
        "(user/sys)"
    );
    for &n in sizes {
        hub.set_stack_cache_capacity(0);
        let (rss0, pte0, maps0) = (rss_bytes(), page_table_bytes(), maps());
        let t = Instant::now();
        let cpu0 = cpu_times();
        let mut hs = Vec::with_capacity(n);
        for _ in 0..n {
            match verdant::Builder::new().spawn(|| verdant::sleep(Duration::from_secs(3600))) {
                Ok(h) => hs.push(h),
                Err(e) => {
                    println!("spawn failed after {} greenlets: {e}", hs.len());
                    break;
                }
            }
        }
        verdant::yield_now(); // every greenlet runs once and parks in sleep
        let parked = t.elapsed();
        let cpu1 = cpu_times();
        let grown = rss_bytes().saturating_sub(rss0);
        let pte = page_table_bytes().saturating_sub(pte0);
        let maps1 = maps();
        let t = Instant::now();
        let cpu2 = cpu_times();
        verdant::killall(&hs);
        drop(hs);
        let teardown = t.elapsed();
        let cpu3 = cpu_times();
        println!(
            "{:>10} {:>10.2} s {:>5.2}/{:<5.2} {:>10.1} MiB {:>9.2} KiB {:>7.2} KiB each {:>8} {:>8.2} s {:>5.2}/{:<5.2}",
            n,
            parked.as_secs_f64(),
            cpu1.0 - cpu0.0,
            cpu1.1 - cpu0.1,
            grown as f64 / (1 << 20) as f64,
            grown as f64 / n as f64 / 1024.0,
            pte as f64 / n as f64 / 1024.0,
            maps1.saturating_sub(maps0),
            teardown.as_secs_f64(),
            cpu3.0 - cpu2.0,
            cpu3.1 - cpu2.1,
        );
    }
}
