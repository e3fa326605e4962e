//! The closed-loop load client of the network benches (`echo_load`,
//! `scaling`): N connections, each sending a request, reading the whole
//! reply and checking it, then sending the next at once; driven by one or
//! more client threads with mio (edge-triggered epoll), each thread owning
//! a share of the connections.
//!
//! A cell connects every connection, runs a warm-up, then measures for the
//! cell's duration: round trips completed, each one's latency (send start
//! to last reply byte, in an HDR histogram), the server's CPU time
//! (`/proc/<pid>/stat`, with the exact `schedstat` sum as a cross-check)
//! and the client's. Thread 0 is the calling thread, and it alone samples
//! the CPU times at the measurement's edges; every thread counts only the
//! round trips that end between those same two instants. With one thread
//! nothing is spawned, so a 1-connection cell has no thread hand-off on the
//! client side.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{proc_cpu, proc_sched_ns, want_writable};

/// Distinct echo message patterns (each request uses the next one).
pub const PATTERNS: usize = 26;

/// The `GET` every HTTP request sends.
const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
/// The body every HTTP reply must carry.
const HTTP_BODY: &[u8] = b"Hello, world!";

/// What the connections say.
#[derive(Clone, Copy, Debug)]
pub enum Proto {
    /// Echo `size`-byte messages; the reply must be the message
    /// upper-cased (26 rotating lower-case patterns, so a stale or
    /// misplaced byte is caught).
    Echo(usize),
    /// HTTP/1.1 keep-alive `GET /`; the reply must be `200` with the body
    /// `Hello, world!` (and a `Content-Length`).
    Http,
}

/// What one cell measured.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Round trips completed while measuring.
    pub reqs: u64,
    /// The measurement's length.
    pub secs: f64,
    /// Latency percentiles.
    pub p50_us: f64,
    /// Latency percentiles.
    pub p99_us: f64,
    /// The server's CPU time while measuring.
    pub srv_cpu: Duration,
    /// The same from schedstat, in ns (exact), where available.
    pub srv_sched_ns: Option<u64>,
    /// The client's CPU time (every thread) while measuring.
    pub cli_cpu: Duration,
}

impl Cell {
    /// Round trips per second.
    pub fn rps(&self) -> f64 {
        self.reqs as f64 / self.secs
    }
    /// Server CPU µs per round trip.
    pub fn srv_us_per_req(&self) -> f64 {
        self.srv_cpu.as_secs_f64() * 1e6 / self.reqs as f64
    }
    /// [`srv_us_per_req`](Self::srv_us_per_req) from schedstat.
    pub fn sched_us_per_req(&self) -> f64 {
        self.srv_sched_ns
            .map_or(f64::NAN, |ns| ns as f64 / 1e3 / self.reqs as f64)
    }
    /// The server's CPU use, in % of one core.
    pub fn srv_pct(&self) -> f64 {
        self.srv_cpu.as_secs_f64() / self.secs * 100.0
    }
    /// The client's CPU use, in % of one core.
    pub fn cli_pct(&self) -> f64 {
        self.cli_cpu.as_secs_f64() / self.secs * 100.0
    }
}

/// One client connection's state.
struct Conn {
    stream: TcpStream,
    /// Which pattern the current echo request uses.
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

/// The requests and expected replies of one cell.
struct Load {
    proto: Proto,
    msgs: Vec<Vec<u8>>,
    expect: Vec<Vec<u8>>,
}

impl Load {
    fn new(proto: Proto) -> Load {
        let (msgs, expect) = match proto {
            Proto::Echo(size) => {
                let msgs: Vec<Vec<u8>> = (0..PATTERNS)
                    .map(|p| (0..size).map(|i| b'a' + ((i + p) % 26) as u8).collect())
                    .collect();
                let expect = msgs.iter().map(|m| m.to_ascii_uppercase()).collect();
                (msgs, expect)
            }
            Proto::Http => (vec![HTTP_GET.to_vec()], Vec::new()),
        };
        Load {
            proto,
            msgs,
            expect,
        }
    }

    fn request(&self, c: &Conn) -> &[u8] {
        &self.msgs[c.pat % self.msgs.len()]
    }

    /// The reply buffer a connection needs.
    fn reply_len(&self) -> usize {
        match self.proto {
            Proto::Echo(size) => size,
            Proto::Http => 4096,
        }
    }

    /// Starts the next request on `c` and sends what the socket takes.
    fn start(&self, c: &mut Conn) -> io::Result<()> {
        c.pat = (c.pat + 1) % PATTERNS;
        c.wrote = 0;
        c.got = 0;
        c.busy = true;
        c.started = Instant::now();
        self.send(c)
    }

    /// Whether `c.reply[..c.got]` is a whole reply, checked; `Ok(None)`
    /// while more is to come.
    fn complete(&self, c: &Conn, id: usize) -> io::Result<Option<()>> {
        match self.proto {
            Proto::Echo(size) => {
                if c.got < size {
                    return Ok(None);
                }
                let expect = &self.expect[c.pat];
                if c.reply != *expect {
                    let at = c.reply.iter().zip(expect).position(|(a, b)| a != b);
                    return Err(io::Error::other(format!(
                        "connection {id}: wrong echo (first bad byte at {at:?} of {size})"
                    )));
                }
                Ok(Some(()))
            }
            Proto::Http => {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut resp = httparse::Response::new(&mut headers);
                let head = match resp.parse(&c.reply[..c.got]) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(e) => {
                        return Err(io::Error::other(format!(
                            "connection {id}: bad HTTP reply: {e}"
                        )))
                    }
                };
                let len: Option<usize> = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok());
                let Some(len) = len else {
                    return Err(io::Error::other(format!(
                        "connection {id}: reply without Content-Length"
                    )));
                };
                if c.got < head + len {
                    return Ok(None);
                }
                if resp.code != Some(200) || &c.reply[head..head + len] != HTTP_BODY {
                    return Err(io::Error::other(format!(
                        "connection {id}: unexpected reply {:?}",
                        String::from_utf8_lossy(&c.reply[..c.got])
                    )));
                }
                if c.got > head + len {
                    return Err(io::Error::other(format!(
                        "connection {id}: bytes after the reply"
                    )));
                }
                Ok(Some(()))
            }
        }
    }

    /// Makes all the progress possible on `c`. Returns `Some(latency)` when
    /// a round trip completed (and was checked).
    fn progress(&self, c: &mut Conn, id: usize) -> io::Result<Option<Duration>> {
        if !c.busy {
            return Ok(None);
        }
        self.send(c)?;
        loop {
            if c.got == c.reply.len() {
                if self.complete(c, id)?.is_some() {
                    break;
                }
                return Err(io::Error::other(format!(
                    "connection {id}: reply longer than {} bytes",
                    c.reply.len()
                )));
            }
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
        if self.complete(c, id)?.is_none() {
            return Ok(None);
        }
        c.busy = false;
        Ok(Some(c.started.elapsed()))
    }

    /// Sends as much of the current request as the socket takes now.
    fn send(&self, c: &mut Conn) -> io::Result<()> {
        let len = self.request(c).len();
        while c.wrote < len {
            match c.stream.write(&self.request(c)[c.wrote..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.wrote += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_interest(&self, poll: &Poll, c: &mut Conn, i: usize) -> io::Result<()> {
        let want = c.busy && c.wrote < self.request(c).len();
        want_writable(poll, &mut c.stream, Token(i), &mut c.writable, want)
    }
}

/// One cell's parameters.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server's name (for errors), address and process.
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    pub conns: usize,
    pub proto: Proto,
    /// Client threads (at least 1; at most `conns` are used).
    pub threads: usize,
    /// CPUs to pin the client threads to, in turn (none: not pinned).
    pub cpus: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one client thread counted.
struct Share {
    reqs: u64,
    hist: Histogram<u64>,
}

/// Runs one cell (see the module docs).
pub fn run_cell(plan: &Plan) -> io::Result<Cell> {
    let threads = plan.threads.clamp(1, plan.conns.max(1));
    // Connection i goes to thread i % threads.
    let share = |t: usize| (t..plan.conns).step_by(threads).collect::<Vec<_>>();
    // The clock starts once every thread has connected all its
    // connections (the first thread past the barrier reads it).
    let connected = Barrier::new(threads);
    let t0 = OnceLock::new();
    let start = Start {
        connected: &connected,
        t0: &t0,
        warmup: plan.warmup,
        measure: plan.measure,
    };
    let mut cell = None;
    let shares = std::thread::scope(|s| {
        let others: Vec<_> = (1..threads)
            .map(|t| {
                let ids = share(t);
                let cpu = (!plan.cpus.is_empty()).then(|| plan.cpus[t % plan.cpus.len()]);
                s.spawn(move || {
                    if let Some(cpu) = cpu {
                        let _ = super::pin_to_cpu(cpu);
                    }
                    drive(plan, &ids, start, None)
                })
            })
            .collect();
        let mine = drive(plan, &share(0), start, Some(&mut cell));
        let mut all = vec![mine];
        for h in others {
            all.push(
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("client panicked"))),
            );
        }
        all
    });
    let mut reqs = 0;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for s in shares {
        let s = s?;
        reqs += s.reqs;
        hist.add(&s.hist).expect("same bounds");
    }
    let mut cell: Cell = cell.expect("thread 0 measured");
    cell.reqs = reqs;
    cell.p50_us = hist.value_at_quantile(0.5) as f64 / 1e3;
    cell.p99_us = hist.value_at_quantile(0.99) as f64 / 1e3;
    if cell.reqs == 0 {
        return Err(io::Error::other(format!(
            "{}: no round trip completed",
            plan.name
        )));
    }
    Ok(cell)
}

/// Connects `ids` and registers them with `poll`, in `cs`.
fn connect_all(
    plan: &Plan,
    ids: &[usize],
    poll: &Poll,
    load: &Load,
    cs: &mut Vec<Conn>,
) -> io::Result<()> {
    for (i, &id) in ids.iter().enumerate() {
        let s = std::net::TcpStream::connect(plan.addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        cs.push(Conn {
            stream,
            pat: id % PATTERNS,
            wrote: 0,
            got: 0,
            reply: vec![0; load.reply_len()],
            started: Instant::now(),
            busy: false,
            writable: false,
        });
    }
    Ok(())
}

/// When the client threads start measuring: all together, once each has
/// connected.
#[derive(Clone, Copy)]
struct Start<'a> {
    connected: &'a Barrier,
    t0: &'a OnceLock<Instant>,
    warmup: Duration,
    measure: Duration,
}

impl Start<'_> {
    /// Waits for the other threads; returns when to start and stop
    /// measuring.
    fn wait(&self) -> (Instant, Instant) {
        self.connected.wait();
        let t0 = *self.t0.get_or_init(Instant::now);
        let from = t0 + self.warmup;
        (from, from + self.measure)
    }
}

/// One client thread: connections `ids`, until the measurement ends and
/// then until every reply is in. Thread 0 (`cell` given) samples the CPU
/// times at the measurement's edges into `cell`.
fn drive(
    plan: &Plan,
    ids: &[usize],
    start: Start<'_>,
    mut cell: Option<&mut Option<Cell>>,
) -> io::Result<Share> {
    let load = Load::new(plan.proto);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut cs = Vec::with_capacity(ids.len());
    // A failed connect must still reach the barrier, or the other threads
    // would wait forever.
    let connected = connect_all(plan, ids, &poll, &load, &mut cs);
    let (measure_from, measure_to) = start.wait();
    connected?;
    for (i, c) in cs.iter_mut().enumerate() {
        load.start(c)?;
        load.set_interest(&poll, c, i)?;
    }

    let pid = plan.pid;
    let me = std::process::id();
    // 1 ns to 60 s at 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut measuring = false;
    let mut stopping = false;
    let mut reqs = 0u64;
    let mut in_flight = cs.len();
    let (mut srv0, mut sched0, mut cli0) = (Duration::ZERO, None, Duration::ZERO);
    let drain_deadline = measure_to + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if !measuring && !stopping && now >= measure_from {
            measuring = true;
            if cell.is_some() {
                srv0 = proc_cpu(pid);
                sched0 = proc_sched_ns(pid);
                cli0 = proc_cpu(me);
            }
            reqs = 0;
        }
        if measuring && now >= measure_to {
            measuring = false;
            stopping = true;
            if let Some(cell) = cell.take() {
                let srv_cpu = proc_cpu(pid) - srv0;
                let srv_sched_ns = proc_sched_ns(pid).zip(sched0).map(|(b, a)| b - a);
                let cli_cpu = proc_cpu(me) - cli0;
                *cell = Some(Cell {
                    reqs: 0,
                    secs: (now - measure_from).as_secs_f64(),
                    p50_us: 0.0,
                    p99_us: 0.0,
                    srv_cpu,
                    srv_sched_ns,
                    cli_cpu,
                });
            }
        }
        if stopping && in_flight == 0 {
            break;
        }
        if now >= drain_deadline {
            return Err(io::Error::other(format!(
                "{}: {in_flight} replies still missing 10 s after the cell ended",
                plan.name
            )));
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut cs[i];
            if let Some(lat) = load.progress(c, ids[i])? {
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
            load.set_interest(&poll, c, i)?;
        }
    }
    Ok(Share { reqs, hist })
}
