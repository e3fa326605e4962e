//! Memory per idle connection: the verdant echo server (one greenlet per
//! connection) runs as a child process (this binary re-executed with
//! `--serve KIND`, pinned to CPU 0); this process opens 10,000 connections
//! to it and does one small echo round trip on each (so its greenlet exists
//! and has read once), then reads the server's `VmRSS` from
//! `/proc/<pid>/status`. Three verdant rows: `verdant-recv` is
//! `examples/echo_server.rs`'s loop (`conn.recv_buf(1024)`: no buffer is held
//! while the connection waits) spawned by a plain accept loop,
//! `verdant-server` the same loop under a `StreamServer`, as the example
//! runs it, and `verdant` the loop in its `read` form with a 1 KiB buffer on
//! the greenlet's stack. The same for tokio's
//! current-thread runtime (`tokio`: the 1 KiB buffer in the task's future;
//! `tokio-pool`: a buffer borrowed only once the socket is readable, like
//! `recv_buf`), may (one worker, the buffer on the coroutine's stack) and the
//! raw mio loop (one shared buffer).
//!
//! ```sh
//! cargo bench --bench idle_conns                       # 10,000 connections
//! cargo bench --bench idle_conns -- --quick            # 2,000
//! cargo bench --bench idle_conns -- --conns 5000 --servers verdant,tokio
//! ```
//!
//! `RLIMIT_NOFILE` is raised to its hard limit in both processes. Kernel
//! socket memory is not part of a process's RSS, so it is not counted.
//! Printed: RSS before (after start-up), after the first tenth of the
//! connections and after all of them; per connection over all of them and
//! over the last nine tenths (the marginal cost, once one-off growth such as
//! the first stack-pool chunk or table is paid).
//!
//! Then the connections stay idle for 2.5 s and RSS is read once more
//! (`RSS idle`, `per conn idle`): verdant compacts a greenlet that has
//! waited for a second (`Hub::set_idle_compaction`), keeping its live
//! frames and giving its stack page back.
//!
//! Targets (read them; nothing is asserted): verdant ≤ 5 KiB per
//! connection, ≤ 2 KiB once idle (issue 22 §2; tokio's is about 1.8).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
use common::{vm_rss, Buf, Server};

/// The numbers for one server.
struct Row {
    rss0: u64,
    rss_warm: u64,
    rss1: u64,
    rss_idle: u64,
    warm: usize,
    n: usize,
    secs: f64,
}

/// One small round trip on `s`, checked.
fn ping(s: &mut TcpStream, id: usize) -> std::io::Result<()> {
    let msg = format!("ping {id}\n");
    s.write_all(msg.as_bytes())?;
    let mut reply = vec![0u8; msg.len()];
    s.read_exact(&mut reply)?;
    if reply != msg.to_ascii_uppercase().as_bytes() {
        return Err(std::io::Error::other(format!(
            "connection {id}: wrong echo {:?}",
            String::from_utf8_lossy(&reply)
        )));
    }
    Ok(())
}

/// How long the connections stay idle before the last reading.
const IDLE: Duration = Duration::from_millis(2500);

fn measure(kind: &str, n: usize) -> std::io::Result<Row> {
    let server = Server::start_self(kind, Buf::Stack1K)?;
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = vm_rss(pid);
    let warm = n / 10;
    let mut rss_warm = rss0;
    let mut conns = Vec::with_capacity(n);
    let t = Instant::now();
    for id in 0..n {
        let mut s = TcpStream::connect(server.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        ping(&mut s, id)?;
        conns.push(s);
        if id + 1 == warm {
            std::thread::sleep(Duration::from_millis(100));
            rss_warm = vm_rss(pid);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let rss1 = vm_rss(pid);
    // Idle for a while: verdant compacts greenlets that waited a second
    // (`Hub::set_idle_compaction`); the peers stay as they are.
    std::thread::sleep(IDLE);
    let rss_idle = vm_rss(pid);
    // Every 100th connection still answers: the greenlets are all alive.
    for (id, s) in conns.iter_mut().enumerate().step_by(100) {
        ping(s, id)?;
    }
    // The server closes first, so the TIME_WAIT sockets are on its side and
    // do not use up client ports for the next server.
    drop(server);
    drop(conns);
    Ok(Row {
        rss0,
        rss_warm,
        rss1,
        rss_idle,
        warm,
        n,
        secs,
    })
}

fn main() {
    common::serve_if_asked(&|_, _| None);

    let quick = common::has_flag("--quick");
    let mut n: usize = common::arg_value("--conns")
        .map(|s| s.parse().expect("--conns N"))
        .unwrap_or(if quick { 2_000 } else { 10_000 });
    let kinds: Vec<String> = common::arg_value("--servers").map_or_else(
        || {
            [
                "verdant-recv",
                "verdant-server",
                "verdant",
                "tokio",
                "tokio-pool",
                "may",
                "mio",
            ]
            .map(String::from)
            .to_vec()
        },
        |s| s.split(',').map(String::from).collect(),
    );
    let nofile = common::raise_nofile() as usize;
    println!("idle_conns: {}", common::pin_client());
    if nofile < n + 64 {
        println!(
            "RLIMIT_NOFILE is {nofile}: using {} connections",
            nofile - 64
        );
        n = nofile - 64;
    }
    println!(
        "{n} idle connections per server (one checked echo round trip each), RLIMIT_NOFILE {nofile}, server buffer: 1 KiB"
    );
    println!(
        "{:<14} {:>11} {:>13} {:>11} {:>14} {:>14} {:>10} {:>11} {:>14}",
        "server",
        "RSS before",
        "RSS at 1/10",
        "RSS after",
        "per conn",
        "marginal",
        "connect",
        "RSS idle",
        "per conn idle"
    );
    for kind in &kinds {
        match measure(kind, n) {
            Ok(r) => {
                let mib = |b: u64| b as f64 / (1 << 20) as f64;
                let per = r.rss1.saturating_sub(r.rss0) as f64 / r.n as f64 / 1024.0;
                let marginal =
                    r.rss1.saturating_sub(r.rss_warm) as f64 / (r.n - r.warm) as f64 / 1024.0;
                let idle = r.rss_idle.saturating_sub(r.rss0) as f64 / r.n as f64 / 1024.0;
                println!(
                    "{:<14} {:>7.1} MiB {:>9.1} MiB {:>7.1} MiB {:>10.2} KiB {:>10.2} KiB {:>8.2} s {:>7.1} MiB {:>10.2} KiB",
                    kind,
                    mib(r.rss0),
                    mib(r.rss_warm),
                    mib(r.rss1),
                    per,
                    marginal,
                    r.secs,
                    mib(r.rss_idle),
                    idle
                );
            }
            Err(e) => println!("{kind:<12} failed: {e}"),
        }
    }
    println!(
        "targets: verdant ≤ 5 KiB per connection; ≤ 2 KiB once idle for {:.1} s \
         (idle compaction); kernel socket memory is not in RSS",
        IDLE.as_secs_f64()
    );
}
