//! Pieces shared by the benches: the micro workloads ([`micro`]), and for
//! the network benches (`echo_load`, `idle_conns`, `hello_http`): the echo servers each bench runs as a child process (the
//! bench binary re-executes itself with `--serve KIND`), CPU pinning, and
//! reading a process's CPU time and resident memory from `/proc`.
//!
//! Every echo server here has the same semantics as
//! `examples/echo_server.rs`: read what is there, upper-case it, write it
//! all back, close on end of stream or error. Each runs on one thread
//! (verdant's hub, a raw mio loop, tokio's current-thread runtime, may with
//! one worker) and sets `TCP_NODELAY` on every accepted connection.
#![allow(dead_code)] // each bench uses a different part of this module

pub mod client;
pub mod http;
pub mod micro;
pub mod wrk;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use verdant::net::Spread;

/// The CPU the servers are pinned to.
pub const SERVER_CPU: usize = 0;
/// The CPU the client (the bench process itself, or `wrk`) is pinned to.
pub const CLIENT_CPU: usize = 1;

/// The per-connection read buffer of the servers.
#[derive(Clone, Copy, Debug)]
pub enum Buf {
    /// `[0u8; 1024]` on the greenlet's / coroutine's stack (in tokio: in
    /// the task's future): `examples/echo_server.rs`'s loop written with
    /// `read` (the example itself uses `recv_buf(1024)`).
    Stack1K,
    /// A heap `Vec` of this many bytes per connection (the mio loop uses
    /// one shared buffer of this size instead).
    Heap(usize),
}

impl Buf {
    fn parse(s: &str) -> Buf {
        if s == "stack1k" {
            Buf::Stack1K
        } else {
            Buf::Heap(s.parse().expect("--buf stack1k|BYTES"))
        }
    }

    /// The `--buf` argument that selects this buffer.
    pub fn arg(self) -> String {
        match self {
            Buf::Stack1K => "stack1k".into(),
            Buf::Heap(n) => n.to_string(),
        }
    }

    fn len(self) -> usize {
        match self {
            Buf::Stack1K => 1024,
            Buf::Heap(n) => n,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft
/// limit.
pub fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising soft up to hard is allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur
}

/// Pins the calling thread (and the threads and processes it creates from
/// now on) to `cpu`. Async-signal-safe (one system call): usable in
/// `pre_exec`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    pin_to_cpus(&[cpu])
}

/// [`pin_to_cpu`] for a set of CPUs (any of them). Async-signal-safe.
pub fn pin_to_cpus(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read/write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpus(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().expect("CPU"), b.parse().expect("CPU"));
                v.extend(a..=b);
            }
            None => v.push(part.parse().expect("CPU")),
        }
    }
    v
}

/// Whether this machine has at least two online CPUs to pin client and
/// server apart. (Not `available_parallelism`: that follows this process's
/// own affinity, which is one CPU once the client is pinned.)
pub fn have_two_cpus() -> bool {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) >= 2 }
}

/// Pins this process to [`CLIENT_CPU`] (when there are two CPUs) and
/// returns a line saying what was done.
pub fn pin_client() -> String {
    if !have_two_cpus() {
        return "only one CPU: client and server are not pinned".into();
    }
    match pin_to_cpu(CLIENT_CPU) {
        Ok(()) => format!("client pinned to CPU {CLIENT_CPU}, servers to CPU {SERVER_CPU}"),
        Err(e) => format!("pinning failed ({e}): client and server share CPUs"),
    }
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat` times.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A process's CPU time so far (user + system), from `/proc/<pid>/stat`.
/// Resolution: one clock tick (usually 10 ms).
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_nanos(ticks * 1_000_000_000 / clk_tck())
}

/// A process's CPU time so far in nanoseconds, summed over its threads
/// from `/proc/<pid>/task/*/schedstat` (exact; a cross-check of
/// [`proc_cpu`]). `None` where schedstat is unavailable.
pub fn proc_sched_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = t.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(path).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// A process's resident set size in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn vm_rss(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A server running as a child process; killed when dropped.
pub struct Server {
    /// What runs there (`verdant`, `mio`, ...).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    // Kept open so that the child never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `program args...` pinned to [`SERVER_CPU`] (when there are
    /// two CPUs) and waits for its `listening on ADDR` line.
    pub fn start(name: &str, program: &std::path::Path, args: &[String]) -> io::Result<Server> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let cpus = if have_two_cpus() {
            vec![SERVER_CPU]
        } else {
            Vec::new()
        };
        Server::start_cmd(name, cmd, cpus)
    }

    /// Starts `cmd` pinned to `cpus` (not pinned when empty) and waits for
    /// its `listening on ADDR` line.
    pub fn start_cmd(name: &str, mut cmd: Command, cpus: Vec<usize>) -> io::Result<Server> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if !cpus.is_empty() {
            // SAFETY: the closure only makes one system call
            // (sched_setaffinity), which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || pin_to_cpus(&cpus));
            }
        }
        let mut child = cmd.spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{name}: expected `listening on ADDR`, got {line:?}"
            )));
        };
        let addr = addr.parse().map_err(io::Error::other)?;
        Ok(Server {
            name: name.into(),
            addr,
            child,
            _stdout: stdout,
        })
    }

    /// Starts this bench binary again as `--serve KIND --buf BUF`.
    pub fn start_self(kind: &str, buf: Buf) -> io::Result<Server> {
        let exe = std::env::current_exe()?;
        let args = [
            "--serve".into(),
            kind.into(),
            "--port".into(),
            "0".into(),
            "--buf".into(),
            buf.arg(),
        ];
        Server::start(kind, &exe, &args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// If this process was started as a server (`--serve KIND [--port P]
/// [--buf stack1k|BYTES]`), runs that server and never returns; otherwise
/// returns. `extra` serves kinds that only one bench has (hyper).
pub fn serve_if_asked(extra: &dyn Fn(&str, SocketAddr) -> Option<io::Result<()>>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(i) = args.iter().position(|a| a == "--serve") else {
        return;
    };
    let kind = args.get(i + 1).expect("--serve KIND").clone();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|j| args.get(j + 1))
            .cloned()
    };
    let port = value("--port").unwrap_or_else(|| "0".into());
    let buf = Buf::parse(&value("--buf").unwrap_or_else(|| "stack1k".into()));
    // The multi-threaded servers' thread count (the others ignore it).
    let threads: usize = value("--threads").map_or(1, |t| t.parse().expect("--threads N"));
    raise_nofile();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("--port PORT");
    let result = match kind.as_str() {
        "verdant" => serve_verdant(addr, buf),
        // TCP_NODELAY left off (std's default): what Nagle's algorithm
        // costs this echo, for the default of `TcpStream`.
        "verdant-nagle" => serve_verdant_with(addr, buf, false),
        "verdant-nobudget" => {
            // The cooperative budget off: what the budget costs, in one run.
            verdant::Hub::current().set_budget(None);
            serve_verdant(addr, buf)
        }
        "verdant-mon" => {
            // Reports (none expected) go to stderr, which the parent shows.
            let threshold = std::time::Duration::from_millis(100);
            verdant::monitor::Monitor::new(threshold)
                .start()
                .and_then(|()| serve_verdant(addr, buf))
        }
        "verdant-recv" => serve_verdant_recv(addr, buf.len()),
        "verdant-server" => serve_verdant_server(addr, buf.len()),
        "std-patched" => serve_std_patched(addr, buf),
        "mio" => serve_mio(addr, buf.len()),
        "tokio" => serve_tokio(addr, buf),
        "tokio-pool" => serve_tokio_pool(addr, buf.len()),
        "may" => serve_may(addr, buf, 1),
        "verdant-hubs" => serve_verdant_hubs(addr, buf, threads, Spread::ReusePort),
        "verdant-rr" => serve_verdant_hubs(addr, buf, threads, Spread::RoundRobin),
        "tokio-mt" => serve_tokio_mt(addr, buf, threads),
        "may-mt" => serve_may(addr, buf, threads),
        "hyper" => http::serve_hyper(addr, None),
        "hyper-mt" => http::serve_hyper(addr, Some(threads)),
        "may-http" => http::serve_may_http(addr, threads),
        other => extra(other, addr).unwrap_or_else(|| panic!("unknown server kind {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("{kind} server: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// Prints the address line the parent waits for.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

/// The echo loop of `examples/echo_server.rs` written with `read` into a
/// buffer per connection, for blocking-looking streams (verdant, may).
fn echo<S: Read + Write>(conn: &mut S, buf: &mut [u8]) {
    loop {
        let n = match conn.read(buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf[..n].make_ascii_uppercase();
        if conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Idle compaction on for this thread's hub, with a one-second period
/// (`Hub::set_idle_compaction`): the single-hub verdant servers run with it
/// (`idle_conns` reads its effect; `echo_load`'s connections are never
/// idle that long, so there it costs only its sweeps).
fn compact_idle() {
    // SAFETY: the servers' connection greenlets lend their stacks to no
    // other thread.
    unsafe { verdant::Hub::current().set_idle_compaction(Some(Duration::from_secs(1))) };
}

/// verdant: one greenlet per connection on the main thread's hub (the
/// echo_server example's loop with `read`, with `TCP_NODELAY`).
fn serve_verdant(addr: SocketAddr, buf: Buf) -> io::Result<()> {
    serve_verdant_with(addr, buf, true)
}

/// [`serve_verdant`], with `TCP_NODELAY` on or off.
fn serve_verdant_with(addr: SocketAddr, buf: Buf, nodelay: bool) -> io::Result<()> {
    compact_idle();
    let listener = verdant::net::TcpListener::bind(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        let (mut conn, _) = listener.accept()?;
        let _ = conn.set_nodelay(nodelay);
        verdant::spawn(move || match buf {
            Buf::Stack1K => echo(&mut conn, &mut [0u8; 1024]),
            Buf::Heap(n) => echo(&mut conn, &mut vec![0u8; n]),
        });
    }
}

/// An unmodified std echo server (`std::net`, `thread::spawn` become
/// `verdant::spawn`) after `monkey::patch_all()`: the patched libc calls
/// make it cooperate.
fn serve_std_patched(addr: SocketAddr, buf: Buf) -> io::Result<()> {
    verdant::monkey::patch_all();
    let listener = std::net::TcpListener::bind(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        let (mut conn, _) = listener.accept()?;
        let _ = conn.set_nodelay(true);
        verdant::spawn(move || match buf {
            Buf::Stack1K => echo(&mut conn, &mut [0u8; 1024]),
            Buf::Heap(n) => echo(&mut conn, &mut vec![0u8; n]),
        });
    }
}

/// verdant with gevent's `res = conn.recv(n)` (`recv_buf(n)`): no buffer
/// per connection;
/// each read borrows one from the thread's pool once data has arrived
/// (the one given back last, still in cache) and gives it back when the
/// echo is written.
fn serve_verdant_recv(addr: SocketAddr, max: usize) -> io::Result<()> {
    compact_idle();
    let listener = verdant::net::TcpListener::bind(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        let (conn, _) = listener.accept()?;
        let _ = conn.set_nodelay(true);
        verdant::spawn(move || recv_echo(conn, max));
    }
}

/// The echo_server example's loop: `recv_buf(max)` lends a buffer only
/// once data has arrived.
fn recv_echo(conn: verdant::net::TcpStream, max: usize) {
    loop {
        let mut res = match conn.recv_buf(max) {
            Ok(res) if !res.is_empty() => res,
            _ => break,
        };
        res.make_ascii_uppercase();
        if (&conn).write_all(&res).is_err() {
            break;
        }
    }
}

/// `examples/echo_server.rs` on one hub: a `StreamServer` (`TCP_NODELAY`
/// by default) whose handler is [`recv_echo`], idle compaction on.
fn serve_verdant_server(addr: SocketAddr, max: usize) -> io::Result<()> {
    compact_idle();
    let server = verdant::net::StreamServer::builder()
        .max_connections(1 << 20)
        .bind(addr, move |conn, _| recv_echo(conn, max))?;
    announce(server.local_addr()?)?;
    server.serve_forever()
}

/// verdant on `threads` hubs (`verdant::Hubs`), a `StreamServer` each,
/// the connections spread as `spread` says; the handler is
/// [`serve_verdant`]'s loop.
fn serve_verdant_hubs(
    addr: SocketAddr,
    buf: Buf,
    threads: usize,
    spread: Spread,
) -> io::Result<()> {
    let listener = verdant::net::StreamServer::builder()
        .spread(spread)
        .bind_hubs(addr)?;
    announce(listener.local_addr())?;
    let exits = verdant::Hubs::new()
        .threads(threads)
        .run(move |hub| -> io::Result<()> {
            let server = listener.server(hub, move |mut conn, _| match buf {
                Buf::Stack1K => echo(&mut conn, &mut [0u8; 1024]),
                Buf::Heap(n) => echo(&mut conn, &mut vec![0u8; n]),
            })?;
            server.start()?;
            hub.wait_stop(); // killed with the process
            Ok(())
        })?;
    for e in exits {
        e.result.map_err(|_| io::Error::other("a hub panicked"))??;
    }
    Ok(())
}

/// tokio's multi-thread runtime with `threads` workers: one task per
/// connection, [`serve_tokio`]'s loop.
fn serve_tokio_mt(addr: SocketAddr, buf: Buf, threads: usize) -> io::Result<()> {
    serve_tokio_on(addr, Some(threads), move |mut conn| async move {
        match buf {
            Buf::Stack1K => echo_async(&mut conn, &mut [0u8; 1024]).await,
            Buf::Heap(n) => echo_async(&mut conn, &mut vec![0u8; n]).await,
        }
    })
}

/// may: one coroutine per connection, `workers` worker threads (pinned
/// with the whole process; may's own pinning is turned off).
fn serve_may(addr: SocketAddr, buf: Buf, workers: usize) -> io::Result<()> {
    may::config().set_workers(workers).set_worker_pin(false);
    let listener = may::net::TcpListener::bind(addr)?;
    announce(listener.local_addr()?)?;
    fn accept_loop(listener: may::net::TcpListener, buf: Buf) -> io::Result<()> {
        loop {
            let (mut conn, _) = listener.accept()?;
            let _ = conn.set_nodelay(true);
            // SAFETY: may's spawn is unsafe because a coroutine that uses
            // thread-local storage could observe another thread's; this one
            // touches none (and there is one worker).
            unsafe {
                may::coroutine::spawn(move || match buf {
                    Buf::Stack1K => echo(&mut conn, &mut [0u8; 1024]),
                    Buf::Heap(n) => echo(&mut conn, &mut vec![0u8; n]),
                });
            }
        }
    }
    // SAFETY: as in accept_loop.
    let acceptor = unsafe { may::coroutine::spawn(move || accept_loop(listener, buf)) };
    acceptor
        .join()
        .map_err(|_| io::Error::other("may acceptor panicked"))?
}

/// tokio's current-thread runtime: one task per connection.
fn serve_tokio(addr: SocketAddr, buf: Buf) -> io::Result<()> {
    serve_tokio_with(addr, move |mut conn| async move {
        match buf {
            Buf::Stack1K => echo_async(&mut conn, &mut [0u8; 1024]).await,
            Buf::Heap(n) => echo_async(&mut conn, &mut vec![0u8; n]).await,
        }
    })
}

/// The echo loop for a tokio stream.
async fn echo_async(conn: &mut tokio::net::TcpStream, buf: &mut [u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let n = match conn.read(buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf[..n].make_ascii_uppercase();
        if conn.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A tokio current-thread server on `addr` that runs `task(conn)` as one
/// task per accepted connection (with `TCP_NODELAY`).
fn serve_tokio_with<F, Fut>(addr: SocketAddr, task: F) -> io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    serve_tokio_on(addr, None, task)
}

/// tokio's current-thread runtime (`threads` `None`) or its multi-thread
/// runtime with that many workers, IO enabled.
pub fn tokio_runtime(threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    match threads {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_io()
            .build(),
    }
}

/// [`serve_tokio_with`] on the current-thread runtime (`threads` `None`)
/// or the multi-thread one with that many workers.
fn serve_tokio_on<F, Fut>(addr: SocketAddr, threads: Option<usize>, task: F) -> io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio_runtime(threads)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        announce(listener.local_addr()?)?;
        loop {
            let (conn, _) = listener.accept().await?;
            let _ = conn.set_nodelay(true);
            tokio::spawn(task(conn));
        }
    })
}

/// tokio written the way `verdant-recv` works, for a like-for-like row:
/// wait until readable, then `try_read` into a buffer borrowed from a
/// thread-local LIFO pool, given back once the echo is written.
fn serve_tokio_pool(addr: SocketAddr, len: usize) -> io::Result<()> {
    use std::cell::RefCell;
    use tokio::io::AsyncWriteExt;

    thread_local! {
        static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }
    fn take(len: usize) -> Vec<u8> {
        POOL.with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; len])
    }
    fn give(b: Vec<u8>) {
        POOL.with(|p| p.borrow_mut().push(b));
    }

    async fn echo_pooled(conn: &mut tokio::net::TcpStream, len: usize) {
        loop {
            if conn.readable().await.is_err() {
                break;
            }
            let mut b = take(len);
            let n = match conn.try_read(&mut b) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    give(b);
                    continue;
                }
                Err(_) => break,
            };
            b[..n].make_ascii_uppercase();
            if conn.write_all(&b[..n]).await.is_err() {
                break;
            }
            give(b);
        }
    }

    serve_tokio_with(addr, move |mut conn| async move {
        echo_pooled(&mut conn, len).await
    })
}

/// The raw mio loop: like `examples/select_echo.rs` (edge-triggered, each
/// readable event drained until `WouldBlock`, output buffered per
/// connection only when the socket would block, reading paused over 256 KiB
/// of pending output), with one shared read buffer of `buf_len` bytes and a
/// slab instead of a hash map.
fn serve_mio(addr: SocketAddr, buf_len: usize) -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};

    const LISTENER: Token = Token(usize::MAX);
    const MAX_PENDING: usize = 256 * 1024;

    struct Conn {
        stream: TcpStream,
        out: Vec<u8>,
        sent: usize,
        writable: bool, // WRITABLE is registered
    }

    /// Writes `out[sent..]`; `Ok(true)` when all is written.
    fn flush(c: &mut Conn) -> io::Result<bool> {
        while c.sent < c.out.len() {
            match c.stream.write(&c.out[c.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        c.out.clear();
        c.sent = 0;
        Ok(true)
    }

    /// Reads until `WouldBlock`, echoing straight from `scratch` while
    /// nothing is pending. `Ok(false)`: close the connection.
    fn progress(c: &mut Conn, scratch: &mut [u8]) -> io::Result<bool> {
        if !flush(c)? {
            return Ok(true);
        }
        loop {
            if c.out.len() - c.sent >= MAX_PENDING {
                return Ok(true);
            }
            let n = match c.stream.read(scratch) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let data = &mut scratch[..n];
            data.make_ascii_uppercase();
            let mut done = 0;
            while c.out.is_empty() && done < n {
                match c.stream.write(&data[done..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(w) => done += w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            c.out.extend_from_slice(&data[done..]);
        }
    }

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?)?;
    let mut slab: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut scratch = vec![0u8; buf_len];
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let i = free.pop().unwrap_or_else(|| {
                                slab.push(None);
                                slab.len() - 1
                            });
                            poll.registry()
                                .register(&mut stream, Token(i), Interest::READABLE)?;
                            slab[i] = Some(Conn {
                                stream,
                                out: Vec::new(),
                                sent: 0,
                                writable: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = slab.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            match progress(c, &mut scratch) {
                Ok(true) => {
                    let want = c.sent < c.out.len();
                    want_writable(&poll, &mut c.stream, Token(i), &mut c.writable, want)?;
                }
                Ok(false) | Err(_) => {
                    if let Some(mut c) = slab[i].take() {
                        let _ = poll.registry().deregister(&mut c.stream);
                    }
                    free.push(i);
                }
            }
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count).
/// Registers `stream` for writability too while `want` (and only then),
/// re-registering only when that changes.
pub fn want_writable(
    poll: &mio::Poll,
    stream: &mut mio::net::TcpStream,
    token: mio::Token,
    writable: &mut bool,
    want: bool,
) -> io::Result<()> {
    if want != *writable {
        let interest = if want {
            mio::Interest::READABLE | mio::Interest::WRITABLE
        } else {
            mio::Interest::READABLE
        };
        poll.registry().reregister(stream, token, interest)?;
        *writable = want;
    }
    Ok(())
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The value after `name` in this process's arguments.
pub fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// Whether `flag` is among this process's arguments.
pub fn has_flag(flag: &str) -> bool {
    std::env::args().any(|a| a == flag)
}
