//! Parks 100,000 and then 1,000,000 greenlets, each in `sleep`, and prints
//! the resident memory per parked greenlet (from /proc/self/statm), the time
//! to spawn and park them, and the memory mappings used.
//!
//! `cargo bench --bench park_many` (add `-- --quick` for 100,000 only).
//! Target: 1,000,000 succeed at the default `vm.max_map_count`, ≤ 4.5 KiB each.
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    println!("guard pages: {:?}", verdant::stack::guard_kind());
    println!(
        "{:>10} {:>12} {:>14} {:>12} {:>10} {:>10}",
        "greenlets", "spawn+park", "RSS growth", "per greenlet", "maps", "teardown"
    );
    for &n in sizes {
        let hub = verdant::Hub::current();
        hub.set_stack_cache_capacity(0);
        let (rss0, maps0) = (rss_bytes(), maps());
        let t = Instant::now();
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
        let grown = rss_bytes().saturating_sub(rss0);
        let maps1 = maps();
        let t = Instant::now();
        verdant::killall(&hs);
        drop(hs);
        let teardown = t.elapsed();
        println!(
            "{:>10} {:>10.2} s {:>10.1} MiB {:>9.2} KiB {:>10} {:>8.2} s",
            n,
            parked.as_secs_f64(),
            grown as f64 / (1 << 20) as f64,
            grown as f64 / n as f64 / 1024.0,
            maps1.saturating_sub(maps0),
            teardown.as_secs_f64()
        );
    }
}
