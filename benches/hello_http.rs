//! `examples/hello_http` (verdant, one greenlet per connection) against
//! a hyper 1.x server on tokio's current-thread runtime (same answer,
//! `Hello, world!`, keep-alive, `TCP_NODELAY`), both under
//! `wrk -t1 -c100 -d5s`, side by side in one run. Each server is a child
//! process pinned to CPU 0; `wrk` is pinned to CPU 1.
//!
//! ```sh
//! apt-get install wrk                                  # once
//! cargo bench --bench hello_http                       # 5 s per run
//! cargo bench --bench hello_http -- --quick            # 2 s per run
//! cargo bench --bench hello_http -- --secs 3 --reps 3 --conns 100
//! ```
//!
//! The example binary is built first with
//! `$CARGO build --quiet --release --example hello_http` (cargo sets `$CARGO` when
//! it runs a bench; without it, `cargo` from `PATH`), into the same target
//! directory. hyper runs in this binary, re-executed as `--serve hyper`.
//! Printed per server: req/s and latency percentiles as wrk reports them,
//! the server's CPU time per request (`/proc/<pid>/stat`), and the ratios
//! verdant / hyper. With `--reps R` the runs alternate and medians are
//! printed. Without `wrk` on `PATH` it prints a skip line and exits 0.
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use std::time::Duration;

mod common;
use common::wrk::{run_wrk, which, Run};
use common::{median, Server};

/// One `GET /` on a fresh connection; checks the status line and the body.
fn check(addr: SocketAddr) -> io::Result<()> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    if resp.starts_with("HTTP/1.1 200") && resp.ends_with("\r\n\r\nHello, world!") {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected response {resp:?}")))
    }
}

fn main() {
    common::serve_if_asked(&|_, _| None);

    let quick = common::has_flag("--quick");
    let secs: u64 = common::arg_value("--secs")
        .map(|s| s.parse().expect("--secs N (whole seconds)"))
        .unwrap_or(if quick { 2 } else { 5 });
    let reps: usize = common::arg_value("--reps").map_or(1, |s| s.parse().expect("--reps N"));
    let conns: usize = common::arg_value("--conns").map_or(100, |s| s.parse().expect("--conns N"));

    let Some(wrk) = which("wrk") else {
        println!(
            "hello_http: SKIPPED: `wrk` is not installed (on Debian/Ubuntu: `apt-get install wrk`)"
        );
        return;
    };
    common::raise_nofile();
    println!("hello_http: {}", common::pin_client());
    let example = match common::http::build_example("hello_http") {
        Ok(p) => p,
        Err(e) => {
            println!("hello_http: SKIPPED: could not build examples/hello_http: {e}");
            return;
        }
    };
    let verdant = Server::start("verdant", &example, &["--port".into(), "0".into()])
        .expect("start hello_http example");
    let hyper = Server::start(
        "hyper",
        &std::env::current_exe().expect("current_exe"),
        &[
            "--serve".into(),
            "hyper".into(),
            "--port".into(),
            "0".into(),
        ],
    )
    .expect("start hyper server");
    let servers = [verdant, hyper];
    for s in &servers {
        check(s.addr).unwrap_or_else(|e| panic!("{}: {e}", s.name));
    }
    println!(
        "wrk -t1 -c{conns} -d{secs}s --latency, {reps} run(s) per server{}",
        if reps > 1 {
            " alternating (medians printed)"
        } else {
            ""
        }
    );
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(), Vec::new()];
    for rep in 0..reps {
        for k in 0..2 {
            let s = (k + rep) % 2;
            let r = run_wrk(&wrk, &servers[s], 1, conns, secs, Vec::new(), false)
                .unwrap_or_else(|e| panic!("{}: {e}", servers[s].name));
            runs[s].push(r);
        }
    }
    let med = |s: usize, f: &dyn Fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs[s].iter().map(f).collect();
        median(&mut v)
    };
    let cpu_per_req = |r: &Run| r.srv_cpu.as_secs_f64() * 1e6 / r.reqs;
    println!(
        "{:<8} {:>11} {:>9} {:>9} {:>11} {:>9}  errors",
        "server", "req/s", "p50 ms", "p99 ms", "srv µs/req", "srv CPU%"
    );
    for (s, server) in servers.iter().enumerate() {
        let errors: Vec<&str> = runs[s]
            .iter()
            .map(|r| r.errors.as_str())
            .filter(|e| !e.is_empty())
            .collect();
        println!(
            "{:<8} {:>11.0} {:>9.3} {:>9.3} {:>11.2} {:>9.0}  {}",
            server.name,
            med(s, &|r| r.rps),
            med(s, &|r| r.p50_ms),
            med(s, &|r| r.p99_ms),
            med(s, &cpu_per_req),
            med(s, &|r| r.srv_cpu.as_secs_f64() / secs as f64 * 100.0),
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    println!(
        "verdant / hyper: req/s {:.2}, server CPU per request {:.2}",
        med(0, &|r| r.rps) / med(1, &|r| r.rps),
        med(0, &cpu_per_req) / med(1, &cpu_per_req)
    );
}
