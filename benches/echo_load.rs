//! Closed-loop echo load against single-threaded servers, side by side in
//! one run: verdant (one greenlet per connection, `read` into a buffer per
//! connection), `verdant-recv` (the same with gevent's `res = conn.recv(n)`,
//! `recv_buf(n)` in verdant, as `examples/echo_server.rs` does: a pooled buffer, taken once data has
//! arrived), a raw mio event loop (the `examples/select_echo.rs` design, the
//! floor), tokio's current-thread runtime (a buffer per task),
//! `tokio-pool` (tokio written like `verdant-recv`: `readable().await`, then
//! `try_read` into a buffer from a LIFO pool) and may with one worker. Each server is this binary re-executed
//! as a child (`--serve KIND`), pinned to CPU 0; the client is this process,
//! pinned to CPU 1.
//!
//! ```sh
//! cargo bench --bench echo_load                    # 2 s per cell, 1 repetition
//! cargo bench --bench echo_load -- --quick         # 0.5 s per cell
//! cargo bench --bench echo_load -- --secs 1 --reps 3 --conns 1,100 --sizes 64
//! ECHO_LOAD_SECS=1 cargo bench --bench echo_load   # the same as --secs 1
//! ```
//!
//! Other flags: `--servers verdant,verdant-recv,mio,tokio,tokio-pool,may`
//! (the default; `verdant-mon` is `verdant` with the blocking monitor on at
//! a 100 ms threshold, `verdant-nobudget` is `verdant` with the cooperative
//! budget off, and each adds its on/off ratio to the summary;
//! `std-patched` is the same echo server written with plain
//! `std::net::TcpListener`/`TcpStream`, run after `monkey::patch_all()`, and
//! adds its ratio to `verdant`: what patching costs; `verdant-nagle` is
//! `verdant` without `TCP_NODELAY`, std's default, and adds its ratio too), `--buf BYTES` (the servers' read buffer or `recv_buf` size,
//! default 16384).
//!
//! **The client.** One thread drives every connection with mio
//! (edge-triggered epoll), so for 1 connection it adds no thread hand-offs
//! and it cannot be out-scheduled by its own helpers. Each connection sends
//! a message, reads the whole echo and checks every byte against the
//! upper-cased message (26 rotating lower-case patterns, so a stale or
//! misplaced byte is caught), then sends the next one at once. A cell
//! connects N connections, runs a short warm-up, then measures for the
//! cell's duration: round trips completed (req/s), each round trip's latency
//! (send start to last reply byte, in an HDR histogram), the server's CPU
//! time (`utime + stime` from `/proc/<pid>/stat`, in clock ticks of
//! `sysconf(_SC_CLK_TCK)`; the `sched` column is the same from
//! `/proc/<pid>/task/*/schedstat`, in ns, as a cross-check) and the client's
//! own CPU time. `cli CPU%` near 100 means the client, not the server, was
//! the limit: the servers' CPU per request is then still comparable (all
//! saw the same load), but req/s is not a server's maximum.
//!
//! **Fairness.** Same echo semantics everywhere (read what is there,
//! upper-case, `write_all`, `TCP_NODELAY`), one thread each, the same read
//! buffer size (`--buf`, default 16 KiB: a heap buffer per connection for
//! `verdant`, `tokio` and `may`; one shared buffer for the mio loop, which
//! is the raw loop's natural advantage; a buffer from a per-thread LIFO pool,
//! borrowed only while a message is in hand, for `verdant-recv` and
//! `tokio-pool`). With 1,000 connections a buffer per connection is cold by
//! the time its next message arrives, which costs about 1 µs of server CPU
//! per 16 KiB request; the pooled rows show each runtime without that cost. The order of the servers is rotated from
//! one repetition to the next; with `--reps R` every number printed is the
//! median of R, and a ratio between two servers is the median of their R
//! ratios within a repetition (pairs that ran seconds apart share the
//! machine's state, which drifts by 20–30% over an hour on a shared host),
//! with the lowest and highest of the R shown beside it.
//!
//! **Targets** (read the ratios; nothing is asserted): server CPU per
//! request verdant / mio ≤ 1.15, and verdant below both tokio and may. The
//! summary gives both verdant rows against every other server.
use std::time::Duration;

mod common;
use common::client::{run_cell, Cell, Plan, Proto};
use common::{median, proc_cpu, Buf, Server};

/// The servers each verdant row is compared with, in summary order.
const OTHERS: [&str; 4] = ["mio", "tokio", "tokio-pool", "may"];

/// One server's CPU per request relative to another's, over repetitions.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    median: f64,
    low: f64,
    high: f64,
}

impl Ratio {
    fn of(v: &mut [f64]) -> Ratio {
        let median = median(v);
        // `median` sorted `v`.
        Ratio {
            median,
            low: v.first().copied().unwrap_or(f64::NAN),
            high: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    s.split(',').map(|x| x.trim().parse().unwrap()).collect()
}

fn main() {
    common::serve_if_asked(&|_, _| None);

    let quick = common::has_flag("--quick");
    let secs: f64 = common::arg_value("--secs")
        .or_else(|| std::env::var("ECHO_LOAD_SECS").ok())
        .map(|s| s.parse().expect("--secs SECONDS"))
        .unwrap_or(if quick { 0.5 } else { 2.0 });
    let reps: usize = common::arg_value("--reps").map_or(1, |s| s.parse().expect("--reps N"));
    let conn_counts: Vec<usize> =
        common::arg_value("--conns").map_or(vec![1, 10, 100, 1000], |s| list(&s));
    let sizes: Vec<usize> = common::arg_value("--sizes").map_or(vec![64, 16 * 1024], |s| list(&s));
    let kinds: Vec<String> = common::arg_value("--servers").map_or_else(
        || {
            [
                "verdant",
                "verdant-recv",
                "mio",
                "tokio",
                "tokio-pool",
                "may",
            ]
            .map(String::from)
            .to_vec()
        },
        |s| list(&s),
    );
    let buf_len: usize = common::arg_value("--buf").map_or(16 * 1024, |s| s.parse().unwrap());
    let warmup = Duration::from_secs_f64((secs * 0.2).clamp(0.05, 0.3));
    let measure = Duration::from_secs_f64(secs);

    let nofile = common::raise_nofile();
    println!("echo_load: {}", common::pin_client());
    println!(
        "{secs} s per cell (+{:.2} s warm-up), {reps} repetition(s){}, server read buffer {buf_len} B, RLIMIT_NOFILE {nofile}, clock tick {} Hz",
        warmup.as_secs_f64(),
        if reps > 1 { " (medians printed)" } else { "" },
        common::clk_tck()
    );

    let servers: Vec<Server> = kinds
        .iter()
        .map(|k| Server::start_self(k, Buf::Heap(buf_len)).expect("start server"))
        .collect();
    for s in &servers {
        println!("  {:<12} pid {:<7} {}", s.name, s.pid(), s.addr);
    }
    // Idle CPU: a server that burns CPU while idle would steal from the
    // others on the shared server CPU.
    let idle0: Vec<Duration> = servers.iter().map(|s| proc_cpu(s.pid())).collect();
    std::thread::sleep(Duration::from_millis(500));
    let idle: Vec<String> = servers
        .iter()
        .zip(&idle0)
        .map(|(s, a)| format!("{} {} ms", s.name, (proc_cpu(s.pid()) - *a).as_millis()))
        .collect();
    println!("idle CPU over 0.5 s: {}", idle.join(", "));
    println!();

    println!(
        "{:>6} {:>6} {:<12} {:>10} {:>9} {:>9} {:>11} {:>9} {:>8} {:>8} {:>7}",
        "conns",
        "size",
        "server",
        "req/s",
        "p50 µs",
        "p99 µs",
        "srv µs/req",
        "(sched)",
        "srv CPU%",
        "cli CPU%",
        "vs mio"
    );
    let mut summary = Vec::new();
    let mut monitored = Vec::new();
    for &size in &sizes {
        for &conns in &conn_counts {
            // results[server] = one Cell per repetition
            let mut results: Vec<Vec<Cell>> = vec![Vec::new(); servers.len()];
            for rep in 0..reps {
                for k in 0..servers.len() {
                    let s = (k + rep) % servers.len();
                    let plan = Plan {
                        name: servers[s].name.clone(),
                        addr: servers[s].addr,
                        pid: servers[s].pid(),
                        conns,
                        proto: Proto::Echo(size),
                        // One client thread (this one, pinned above).
                        threads: 1,
                        cpus: Vec::new(),
                        warmup,
                        measure,
                    };
                    let cell = run_cell(&plan).unwrap_or_else(|e| {
                        panic!("{} conns={conns} size={size}: {e}", servers[s].name)
                    });
                    results[s].push(cell);
                    // Let the closed connections settle before the next server.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let med = |s: usize, f: &dyn Fn(&Cell) -> f64| {
                let mut v: Vec<f64> = results[s].iter().map(f).collect();
                median(&mut v)
            };
            let cpu: Vec<f64> = (0..servers.len())
                .map(|s| med(s, &Cell::srv_us_per_req))
                .collect();
            // A ratio between two servers is the median of their ratios in
            // each repetition: the two ran seconds apart, in the same
            // machine state, so the pairs cancel most of its drift.
            let paired = |a: usize, b: usize| {
                let mut v: Vec<f64> = results[a]
                    .iter()
                    .zip(&results[b])
                    .map(|(x, y)| x.srv_us_per_req() / y.srv_us_per_req())
                    .collect();
                Ratio::of(&mut v)
            };
            let mio = kinds.iter().position(|k| k == "mio");
            for (s, server) in servers.iter().enumerate() {
                let vs_mio =
                    mio.map_or(String::from("-"), |m| format!("{:.2}", paired(s, m).median));
                println!(
                    "{:>6} {:>6} {:<12} {:>10.0} {:>9.1} {:>9.1} {:>11.2} {:>9.2} {:>8.0} {:>8.0} {:>7}",
                    conns,
                    size,
                    server.name,
                    med(s, &Cell::rps),
                    med(s, &|c| c.p50_us),
                    med(s, &|c| c.p99_us),
                    cpu[s],
                    med(s, &Cell::sched_us_per_req),
                    med(s, &Cell::srv_pct),
                    med(s, &Cell::cli_pct),
                    vs_mio
                );
            }
            let ratio = |a: &str, b: &str| {
                let ia = kinds.iter().position(|k| k == a)?;
                let ib = kinds.iter().position(|k| k == b)?;
                Some(paired(ia, ib))
            };
            if let Some(r) = ratio("verdant-mon", "verdant") {
                monitored.push((conns, size, "verdant-mon / verdant", r));
            }
            if let Some(r) = ratio("verdant", "verdant-nobudget") {
                monitored.push((conns, size, "verdant / verdant-nobudget", r));
            }
            if let Some(r) = ratio("verdant-nagle", "verdant") {
                monitored.push((conns, size, "verdant-nagle / verdant", r));
            }
            if let Some(r) = ratio("std-patched", "verdant") {
                monitored.push((conns, size, "std-patched / verdant", r));
            }
            for v in ["verdant", "verdant-recv"] {
                if kinds.iter().any(|k| k == v) {
                    summary.push((conns, size, v, OTHERS.map(|o| ratio(v, o))));
                }
            }
        }
    }

    println!();
    println!("server CPU per request, verdant relative to the others (targets: vs mio ≤ 1.15, vs the others < 1)");
    if reps > 1 {
        println!(
            "each ratio is the median of the {reps} repetitions' ratios, [lowest–highest] after it"
        );
    }
    let w = if reps > 1 { 24 } else { 12 };
    println!(
        "{:>6} {:>6} {:<13} {:>w$} {:>w$} {:>w$} {:>w$}",
        "conns", "size", "verdant row", "/ mio", "/ tokio", "/ tokio-pool", "/ may"
    );
    let show = |r: Option<Ratio>, limit: f64, strict: bool| match r {
        None => String::from("-"),
        Some(r) => {
            let ok = if strict {
                r.median < limit
            } else {
                r.median <= limit
            };
            let verdict = if ok { "ok  " } else { "MISS" };
            if reps > 1 {
                format!("{:.2} {verdict} [{:.2}–{:.2}]", r.median, r.low, r.high)
            } else {
                format!("{:.2} {verdict}", r.median)
            }
        }
    };
    for (conns, size, v, [m, t, tp, y]) in summary {
        println!(
            "{:>6} {:>6} {:<13} {:>w$} {:>w$} {:>w$} {:>w$}",
            conns,
            size,
            v,
            show(m, 1.15, false),
            show(t, 1.0, true),
            show(tp, 1.0, true),
            show(y, 1.0, true)
        );
    }
    if !monitored.is_empty() {
        println!();
        println!("server CPU per request: the blocking monitor on (100 ms threshold) against off, the cooperative budget on against off (targets ≤ 1.01; a stall report would be printed above by the server)");
        for (conns, size, what, r) in monitored {
            println!(
                "{conns:>6} {size:>6} {what:<27} {:.3} [{:.3}–{:.3}]",
                r.median, r.low, r.high
            );
        }
    }
}
