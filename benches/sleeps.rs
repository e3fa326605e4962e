//! N concurrent tasks each sleeping a random 0–100 ms, side by side: verdant,
//! tokio's current-thread runtime, may with one worker, and Go with
//! `GOMAXPROCS=1` when `go` is installed. The ideal wall time is 100 ms.
//!
//! `cargo bench --bench sleeps` (add `-- --n N` for another count, default
//! 100,000, and `-- --rounds R` for more rounds, default 5). Each run is a
//! child process, so one runtime's memory never helps or hinders the next,
//! and a peer that crashes loses only its own cell. The runtimes take turns
//! within each round, so a noisy moment of the machine falls on all of them.
//! may is tried at N and then at smaller counts until it survives (it
//! overflows at 100,000 on this machine); its row says which count it ran.
//!
//! Per run: wall time (first spawn to last join), the spawn loop alone, CPU
//! time, peak RSS, how many tasks woke early (must be 0), and the p50/p99/max
//! lateness of the wake-ups. Every runtime sleeps the same durations (one
//! seeded generator, reimplemented in the Go program). The summary gives each
//! runtime's median and verdant's paired median ratio against each peer.
//!
//! Targets (issue 22): verdant's wall time ≤ Go's, aim ≤ 250 ms; 0 early
//! wake-ups; p99 lateness ≤ 5 ms.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::median;

/// The generator every runtime uses: xorshift64, one step per task.
fn durations(n: usize, seed: u64) -> Vec<Duration> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(x % 100_000)
        })
        .collect()
}

/// One run's figures, as a child prints them on its last line.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    wall_ms: f64,
    spawn_ms: f64,
    cpu_ms: f64,
    hwm_mib: f64,
    early: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Run {
    fn parse(line: &str) -> Option<Run> {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        let [wall_ms, spawn_ms, cpu_ms, hwm_mib, early, p50_ms, p99_ms, max_ms] = v[..] else {
            return None;
        };
        Some(Run {
            wall_ms,
            spawn_ms,
            cpu_ms,
            hwm_mib,
            early: early as u64,
            p50_ms,
            p99_ms,
            max_ms,
        })
    }
}

/// What a child prints: wall and spawn time, CPU time, peak RSS, and the
/// lateness figures of `late` (nanoseconds, negative when early).
fn report(wall: Duration, spawn: Duration, mut late: Vec<i64>) {
    late.sort_unstable();
    let early = late.iter().filter(|&&l| l < 0).count();
    let pct = |p: f64| late[((late.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    println!(
        "{:.3} {:.3} {:.3} {:.3} {} {:.3} {:.3} {:.3}",
        wall.as_secs_f64() * 1e3,
        spawn.as_secs_f64() * 1e3,
        cpu_ms(),
        hwm_mib(),
        early,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
}

fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn lateness(start: Instant, d: Duration) -> i64 {
    let now = Instant::now();
    let target = start + d;
    if now >= target {
        (now - target).as_nanos() as i64
    } else {
        -((target - now).as_nanos() as i64)
    }
}

fn child_verdant(ds: Vec<Duration>) {
    let t = Instant::now();
    let hs: Vec<_> = ds
        .into_iter()
        .map(|d| {
            verdant::spawn(move || {
                let start = Instant::now();
                verdant::sleep(d);
                lateness(start, d)
            })
        })
        .collect();
    let spawn = t.elapsed();
    let late = hs.into_iter().map(|h| h.join().unwrap()).collect();
    report(t.elapsed(), spawn, late);
}

fn child_tokio(ds: Vec<Duration>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let t = Instant::now();
        let hs: Vec<_> = ds
            .into_iter()
            .map(|d| {
                tokio::spawn(async move {
                    let start = Instant::now();
                    tokio::time::sleep(d).await;
                    lateness(start, d)
                })
            })
            .collect();
        let spawn = t.elapsed();
        let mut late = Vec::with_capacity(hs.len());
        for h in hs {
            late.push(h.await.unwrap());
        }
        report(t.elapsed(), spawn, late);
    });
}

fn child_may(ds: Vec<Duration>) {
    may::config().set_workers(1);
    let t = Instant::now();
    let hs: Vec<_> = ds
        .into_iter()
        .map(|d| {
            // SAFETY: may requires `unsafe` because its coroutines can
            // migrate between threads; these touch no thread-local state.
            unsafe {
                may::coroutine::spawn(move || {
                    let start = Instant::now();
                    may::coroutine::sleep(d);
                    lateness(start, d)
                })
            }
        })
        .collect();
    let spawn = t.elapsed();
    let late = hs.into_iter().map(|h| h.join().unwrap()).collect();
    report(t.elapsed(), spawn, late);
}

/// The Go program: the same generator, goroutines, a WaitGroup.
const GO_SRC: &str = r#"package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	seed, _ := strconv.ParseUint(os.Args[2], 10, 64)
	x := seed | 1
	ds := make([]time.Duration, n)
	for i := range ds {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		ds[i] = time.Duration(x%100000) * time.Microsecond
	}
	late := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	t := time.Now()
	for i := 0; i < n; i++ {
		go func(i int) {
			start := time.Now()
			time.Sleep(ds[i])
			late[i] = int64(time.Since(start) - ds[i])
			wg.Done()
		}(i)
	}
	spawn := time.Since(t)
	wg.Wait()
	wall := time.Since(t)
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	early := 0
	for _, l := range late {
		if l < 0 {
			early++
		}
	}
	pct := func(p float64) float64 { return float64(late[int(float64(n-1)*p)]) / 1e6 }
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec)*1e3 + float64(ru.Utime.Usec+ru.Stime.Usec)/1e3
	hwm := 0.0
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				f := strings.Fields(l)
				k, _ := strconv.ParseFloat(f[1], 64)
				hwm = k / 1024
			}
		}
	}
	fmt.Printf("%.3f %.3f %.3f %.3f %d %.3f %.3f %.3f\n",
		float64(wall)/1e6, float64(spawn)/1e6, cpu, hwm, early, pct(0.5), pct(0.99), pct(1.0))
}
"#;

/// Builds the Go program; `None` when `go` is missing or the build fails.
fn build_go() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("verdant-sleeps-go-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("main.go"), GO_SRC).ok()?;
    let bin = dir.join("sleeps");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(&dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "sleeps: go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(bin)
}

const KINDS: [&str; 4] = ["verdant", "tokio", "may", "go"];

/// Runs one child; `None` if it failed (a crash, or output it cannot read).
fn run_child(kind: &str, n: usize, seed: u64, go: Option<&std::path::Path>) -> Option<Run> {
    let mut cmd = match kind {
        "go" => {
            let mut c = Command::new(go?);
            c.env("GOMAXPROCS", "1");
            c
        }
        _ => {
            let mut c = Command::new(std::env::current_exe().ok()?);
            c.args(["--child", kind]);
            c
        }
    };
    let mut child = cmd
        .arg(n.to_string())
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A peer that hangs (may does at 100,000) counts as failed.
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    if !status.success() {
        return None;
    }
    Run::parse(text.lines().last()?)
}

/// How long a child may run before it counts as hung.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The next argument as a positive count, else the usage line.
fn positive(args: &mut impl Iterator<Item = String>) -> usize {
    args.next()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or_else(|| usage())
}

fn usage() -> ! {
    eprintln!("usage: sleeps [--n N] [--rounds R]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 100_000usize;
    let mut rounds = 5usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--child" => {
                let kind = args.next().unwrap_or_else(|| usage());
                let n: usize = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                let seed: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                let ds = durations(n, seed);
                match kind.as_str() {
                    "verdant" => child_verdant(ds),
                    "tokio" => child_tokio(ds),
                    "may" => child_may(ds),
                    _ => usage(),
                }
                return;
            }
            "--n" => n = positive(&mut args),
            "--rounds" => rounds = positive(&mut args),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            _ => usage(),
        }
    }
    let go = build_go();
    if go.is_none() {
        println!("(go not installed or not buildable: its row is skipped)");
    }
    // may's count: the largest of n, n/2, n/5, n/10 that survives once.
    let may_n = [n, n / 2, n / 5, n / 10]
        .into_iter()
        .filter(|&m| m > 0)
        .find(|&m| run_child("may", m, 1, None).is_some());
    println!("{n} tasks, each sleeping a random 0–100 ms (ideal wall: 100 ms); {rounds} rounds");
    match may_n {
        Some(m) if m != n => println!("may fails at {n}: it runs {m} tasks"),
        Some(_) => {}
        None => println!("may fails even at {}: its row is skipped", n / 10),
    }
    println!(
        "{:>5} {:>8} {:>7} {:>9} {:>9} {:>8} {:>9} {:>6} {:>7} {:>7} {:>7}",
        "round",
        "runtime",
        "tasks",
        "wall ms",
        "spawn ms",
        "cpu ms",
        "peak MiB",
        "early",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let mut all: Vec<Vec<Option<Run>>> = vec![Vec::new(); KINDS.len()];
    for round in 0..rounds {
        let seed = 0x9E37_79B9_7F4A_7C15 ^ round as u64;
        for (k, kind) in KINDS.iter().enumerate() {
            let count = match *kind {
                "may" => may_n,
                "go" => go.as_ref().map(|_| n),
                _ => Some(n),
            };
            let run = count.and_then(|c| {
                let t = Instant::now();
                let r = run_child(kind, c, seed, go.as_deref());
                if r.is_none() {
                    println!("{round:>5} {kind:>8} {c:>7} failed after {:?}", t.elapsed());
                }
                r.map(|r| (c, r))
            });
            if let Some((c, r)) = run {
                println!(
                    "{:>5} {:>8} {:>7} {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>6} {:>7.2} {:>7.2} {:>7.2}",
                    round,
                    kind,
                    c,
                    r.wall_ms,
                    r.spawn_ms,
                    r.cpu_ms,
                    r.hwm_mib,
                    r.early,
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms
                );
            }
            all[k].push(run.map(|(_, r)| r));
        }
    }
    println!("\nmedians over {rounds} rounds");
    println!(
        "{:>8} {:>9} {:>9} {:>8} {:>9} {:>6} {:>7} {:>22}",
        "runtime",
        "wall ms",
        "spawn ms",
        "cpu ms",
        "peak MiB",
        "early",
        "p99 ms",
        "verdant/it (wall, cpu)"
    );
    for (k, kind) in KINDS.iter().enumerate() {
        let runs: Vec<Run> = all[k].iter().flatten().copied().collect();
        if runs.is_empty() {
            continue;
        }
        let med = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        // Paired: verdant's run and this runtime's run of the same round.
        let ratio = |f: fn(&Run) -> f64| {
            median(
                &mut all[0]
                    .iter()
                    .zip(&all[k])
                    .filter_map(|(v, p)| Some(f(v.as_ref()?) / f(p.as_ref()?)))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "{:>8} {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>6} {:>7.2} {:>12.3} {:>9.3}",
            kind,
            med(|r| r.wall_ms),
            med(|r| r.spawn_ms),
            med(|r| r.cpu_ms),
            med(|r| r.hwm_mib),
            runs.iter().map(|r| r.early).sum::<u64>(),
            med(|r| r.p99_ms),
            ratio(|r| r.wall_ms),
            ratio(|r| r.cpu_ms),
        );
    }
}
