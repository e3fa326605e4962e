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
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

mod common;
use common::{median, proc_cpu, proc_sched_ns, Buf, Server};

/// The servers each verdant row is compared with, in summary order.
const OTHERS: [&str; 4] = ["mio", "tokio", "tokio-pool", "may"];

/// Distinct message patterns (each request uses the next one).
const PATTERNS: usize = 26;

/// What one cell measured for one server.
#[derive(Clone, Debug)]
struct Cell {
    reqs: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    srv_cpu: Duration,
    srv_sched_ns: Option<u64>,
    cli_cpu: Duration,
}

impl Cell {
    fn rps(&self) -> f64 {
        self.reqs as f64 / self.secs
    }
    fn srv_us_per_req(&self) -> f64 {
        self.srv_cpu.as_secs_f64() * 1e6 / self.reqs as f64
    }
    fn sched_us_per_req(&self) -> f64 {
        self.srv_sched_ns
            .map_or(f64::NAN, |ns| ns as f64 / 1e3 / self.reqs as f64)
    }
    fn srv_pct(&self) -> f64 {
        self.srv_cpu.as_secs_f64() / self.secs * 100.0
    }
    fn cli_pct(&self) -> f64 {
        self.cli_cpu.as_secs_f64() / self.secs * 100.0
    }
}

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

/// One client connection's state.
struct Conn {
    stream: TcpStream,
    /// Which pattern the current request uses.
    pat: usize,
    wrote: usize,
    got: usize,
    reply: Vec<u8>,
    started: Instant,
    /// A request is in flight.
    busy: bool,
    /// WRITABLE is registered.
    writable: bool,
}

struct Load<'a> {
    msgs: &'a [Vec<u8>],
    expect: &'a [Vec<u8>],
    size: usize,
}

impl Load<'_> {
    /// Starts the next request on `c` and sends what the socket takes.
    fn start(&self, c: &mut Conn) -> io::Result<()> {
        c.pat = (c.pat + 1) % PATTERNS;
        c.wrote = 0;
        c.got = 0;
        c.busy = true;
        c.started = Instant::now();
        self.send(c)
    }

    /// Makes all the progress possible on `c`. Returns `Some(latency)` when
    /// a round trip completed (and was checked).
    fn progress(&self, c: &mut Conn, id: usize) -> io::Result<Option<Duration>> {
        if !c.busy {
            return Ok(None);
        }
        self.send(c)?;
        while c.got < self.size {
            match c.stream.read(&mut c.reply[c.got..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection {id}: server closed mid-reply"),
                    ))
                }
                Ok(n) => c.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if c.got < self.size {
            return Ok(None);
        }
        let expect = &self.expect[c.pat];
        if c.reply != *expect {
            let at = c.reply.iter().zip(expect).position(|(a, b)| a != b);
            return Err(io::Error::other(format!(
                "connection {id}: wrong echo (first bad byte at {at:?} of {})",
                self.size
            )));
        }
        c.busy = false;
        Ok(Some(c.started.elapsed()))
    }

    /// Sends as much of the current request as the socket takes now.
    fn send(&self, c: &mut Conn) -> io::Result<()> {
        let msg = &self.msgs[c.pat];
        while c.wrote < self.size {
            match c.stream.write(&msg[c.wrote..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.wrote += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn set_interest(poll: &Poll, c: &mut Conn, i: usize, size: usize) -> io::Result<()> {
    let want = c.busy && c.wrote < size;
    common::want_writable(poll, &mut c.stream, Token(i), &mut c.writable, want)
}

/// Runs one cell against `server`: `conns` connections, `size`-byte
/// messages, `warmup` then `measure`.
fn run_cell(
    server: &Server,
    conns: usize,
    size: usize,
    warmup: Duration,
    measure: Duration,
) -> io::Result<Cell> {
    let msgs: Vec<Vec<u8>> = (0..PATTERNS)
        .map(|p| (0..size).map(|i| b'a' + ((i + p) % 26) as u8).collect())
        .collect();
    let expect: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_ascii_uppercase()).collect();
    let load = Load {
        msgs: &msgs,
        expect: &expect,
        size,
    };

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut cs = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = std::net::TcpStream::connect(server.addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        cs.push(Conn {
            stream,
            pat: i % PATTERNS,
            wrote: 0,
            got: 0,
            reply: vec![0; size],
            started: Instant::now(),
            busy: false,
            writable: false,
        });
    }
    for (i, c) in cs.iter_mut().enumerate() {
        load.start(c)?;
        set_interest(&poll, c, i, size)?;
    }

    let pid = server.pid();
    let me = std::process::id();
    // 1 ns to 60 s at 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let measure_to = measure_from + measure;
    let mut measuring = false;
    let mut stopping = false;
    let mut reqs = 0u64;
    let mut in_flight = conns;
    let (mut srv0, mut sched0, mut cli0) = (Duration::ZERO, None, Duration::ZERO);
    let mut cell = None;
    let drain_deadline = measure_to + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if !measuring && !stopping && now >= measure_from {
            measuring = true;
            srv0 = proc_cpu(pid);
            sched0 = proc_sched_ns(pid);
            cli0 = proc_cpu(me);
            reqs = 0;
        }
        if measuring && now >= measure_to {
            measuring = false;
            stopping = true;
            let srv_cpu = proc_cpu(pid) - srv0;
            let srv_sched_ns = proc_sched_ns(pid).zip(sched0).map(|(b, a)| b - a);
            let cli_cpu = proc_cpu(me) - cli0;
            let secs = (now - measure_from).as_secs_f64();
            cell = Some(Cell {
                reqs,
                secs,
                p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
                p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
                srv_cpu,
                srv_sched_ns,
                cli_cpu,
            });
        }
        if stopping && in_flight == 0 {
            break;
        }
        if now >= drain_deadline {
            return Err(io::Error::other(format!(
                "{}: {in_flight} replies still missing 10 s after the cell ended",
                server.name
            )));
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut cs[i];
            if let Some(lat) = load.progress(c, i)? {
                if measuring {
                    reqs += 1;
                    hist.saturating_record(lat.as_nanos() as u64);
                }
                if stopping {
                    in_flight -= 1;
                } else {
                    load.start(c)?;
                }
            }
            set_interest(&poll, c, i, size)?;
        }
    }
    let cell = cell.expect("measured");
    if cell.reqs == 0 {
        return Err(io::Error::other(format!(
            "{}: no round trip completed",
            server.name
        )));
    }
    Ok(cell)
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
                    let cell =
                        run_cell(&servers[s], conns, size, warmup, measure).unwrap_or_else(|e| {
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
