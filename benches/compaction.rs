//! What idle compaction (`Hub::set_idle_compaction`) saves and costs.
//!
//! N greenlets each keep `--bytes` bytes on their stacks and sleep until a
//! common moment 1.5 s away; then they all wake, check their bytes and
//! finish. With compaction on (a 200 ms period, so all of them are
//! compacted well before they wake) and off, alternating, in one process
//! per run (RSS is per process). Per greenlet: the resident memory while
//! parked, the CPU time the hub spent while they slept (the sweeps and the
//! compaction itself), and the CPU time it spent waking them and seeing
//! them finish (the timers, the switches, the finish, and with compaction
//! the copy back and the page fault of each stack's top page). Medians of
//! `--rounds` runs.
//!
//! ```sh
//! cargo bench --bench compaction                 # 10,000 greenlets, 512 bytes, 5 rounds
//! cargo bench --bench compaction -- --n 2000 --bytes 64 --rounds 3
//! ```
//!
//! Issue 22 §2 asks for the cost per wake-up; the memory target is read
//! from `idle_conns`.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use verdant::{sleep, spawn, Hub};

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One run in this process: prints `rss_per cpu_asleep_us cpu_wake_us
/// compacted` (per greenlet).
fn child<const B: usize>(n: usize, on: bool) {
    let hub = Hub::current();
    // SAFETY: these greenlets lend their stacks to no other thread.
    unsafe { hub.set_idle_compaction(on.then_some(Duration::from_millis(200))) };
    let rss0 = rss_bytes();
    let wake_at = Instant::now() + Duration::from_millis(1500);
    let hs: Vec<_> = (0..n)
        .map(|i| {
            spawn(move || {
                let mut mine = [0u8; B];
                for (j, b) in mine.iter_mut().enumerate() {
                    *b = (i ^ j) as u8;
                }
                black_box(&mut mine);
                sleep(wake_at.saturating_duration_since(Instant::now()));
                black_box(&mine)
                    .iter()
                    .enumerate()
                    .all(|(j, &b)| b == (i ^ j) as u8)
            })
        })
        .collect();
    // Let them all start and park, then measure the wait.
    sleep(Duration::from_millis(100));
    let cpu0 = cpu_secs();
    sleep(wake_at.saturating_duration_since(Instant::now()) - Duration::from_millis(50));
    let cpu_wait = cpu_secs() - cpu0;
    let compacted = hub.stack_stats().compacted;
    let rss = rss_bytes() - rss0;
    // From here on the hub does nothing but wake them and finish them.
    let cpu1 = cpu_secs();
    let ok = hs
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&b| b)
        .count();
    let cpu_wake = cpu_secs() - cpu1;
    assert_eq!(ok, n, "every greenlet found its bytes intact");
    println!(
        "{:.1} {:.3} {:.3} {}",
        rss / n as f64,
        cpu_wait * 1e6 / n as f64,
        cpu_wake * 1e6 / n as f64,
        compacted
    );
}

fn usage() -> ! {
    eprintln!("usage: compaction [--n N] [--bytes 64|512|2048] [--rounds R]");
    std::process::exit(2)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut n, mut bytes, mut rounds) = (10_000usize, 512usize, 5usize);
    let mut child_mode: Option<bool> = None;
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--n" => n = num(),
            "--bytes" => bytes = num(),
            "--rounds" => rounds = num(),
            "--child-on" => child_mode = Some(true),
            "--child-off" => child_mode = Some(false),
            "--bench" => {}
            _ => usage(),
        }
    }
    if let Some(on) = child_mode {
        match bytes {
            64 => child::<64>(n, on),
            512 => child::<512>(n, on),
            2048 => child::<2048>(n, on),
            _ => usage(),
        }
        return;
    }
    if ![64, 512, 2048].contains(&bytes) {
        usage();
    }
    println!(
        "{n} greenlets, {bytes} bytes each on the stack, sleeping 1.5 s; {rounds} rounds (medians)"
    );
    println!(
        "{:<11} {:>17} {:>22} {:>22} {:>10}",
        "compaction", "RSS per greenlet", "CPU while asleep", "CPU to wake, finish", "compacted"
    );
    let exe = std::env::current_exe().expect("current_exe");
    let mut rows: [Vec<[f64; 4]>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (k, flag) in ["--child-off", "--child-on"].iter().enumerate() {
            let out = Command::new(&exe)
                .args([*flag, "--n", &n.to_string(), "--bytes", &bytes.to_string()])
                .output()
                .expect("run a child");
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<f64> = text
                .lines()
                .last()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if !out.status.success() || v.len() != 4 {
                eprintln!("a child failed: {}", String::from_utf8_lossy(&out.stderr));
                std::process::exit(1);
            }
            rows[k].push([v[0], v[1], v[2], v[3]]);
        }
    }
    for (k, name) in ["off", "on (200 ms)"].iter().enumerate() {
        let col = |c: usize| median(rows[k].iter().map(|r| r[c]).collect());
        println!(
            "{:<11} {:>13.2} KiB {:>15.3} µs each {:>15.3} µs each {:>10.0}",
            name,
            col(0) / 1024.0,
            col(1),
            col(2),
            col(3)
        );
    }
}
