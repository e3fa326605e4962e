//! A minimal HTTP/1.1 keep-alive server, for benchmarking (`wrk`, `oha`,
//! `ab -k`): one greenlet per connection, requests parsed with `httparse`.
//!
//! `cargo run --release --example hello_http -- [--addr 127.0.0.1] [--port 0] [--threads 1] [--spread reuseport|rr]
//! [--header-timeout 10] [--idle-timeout 60] [--write-timeout 10] [--max-connections 10000]`
//!
//! It prints `listening on <addr>` first (port 0 picks a free port), then
//! serves, on a `StreamServer` per hub thread (`--threads`), until SIGINT or
//! SIGTERM, printing nothing else; a stop gives open connections 5 s to
//! finish. Its answers:
//!
//! * `GET /` (or `HEAD /`) → `200 OK`, `Content-Length: 13`, body
//!   `Hello, world!`; other methods on `/` → `405`.
//! * any other path → `404 Not Found`.
//! * a request that is not HTTP/1.x → `400 Bad Request`, then the
//!   connection is closed; a request head over 8 KiB (or with more than 64
//!   header lines) → `431`, then closed; `Transfer-Encoding` → `501`, then
//!   closed.
//!
//! **Limits**, for clients that are slow or hostile (timeouts in seconds,
//! fractions allowed):
//!
//! * a request head must arrive whole within `--header-timeout` (10 s) of
//!   its first byte, or the client gets `408 Request Timeout` and the
//!   connection is closed: a client sending a byte every few seconds
//!   ("slowloris") holds a connection that long, no longer;
//! * a connection with no request under way is closed after
//!   `--idle-timeout` (60 s) of silence;
//! * a response that the client does not read within `--write-timeout`
//!   (10 s) ends the connection (a client that sends and never reads);
//! * at most `--max-connections` (10,000) per hub at once; the kernel
//!   queues the rest.
//!
//! Connections are kept alive (HTTP/1.1) unless the request says
//! `Connection: close`; an HTTP/1.0 request closes the connection unless it
//! says `Connection: keep-alive`. Pipelined requests are answered in order,
//! with one write per batch read; a request split over several reads is
//! put back together; a `Content-Length` body is read and ignored. Each
//! connection owns one 8 KiB read buffer and one output buffer for its whole
//! life, and the responses are constant byte strings, so a request costs no
//! allocation.
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use verdant::net::{Spread, StreamServer, TcpStream};
use verdant::Hubs;

mod requests;
use requests::{Next, Requests, TIMED_OUT, TOO_LARGE};

/// How long a stop (SIGINT, SIGTERM) waits for open connections.
const GRACE: Duration = Duration::from_secs(5);

/// How long a closing connection waits for the client to finish sending.
const LINGER: Duration = Duration::from_secs(1);

/// Closes a connection the server decided to end: first the sending half,
/// then whatever the client still sends is read and dropped for a moment.
/// Closing a socket with unread input makes the kernel send a reset, which
/// can destroy the last response before the client has read it.
fn linger_close(mut conn: TcpStream) {
    let _ = conn.shutdown(Shutdown::Write);
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < 64 * 1024 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The per-connection time limits (see the module docs).
#[derive(Clone, Copy, Debug)]
struct Limits {
    header: Duration,
    idle: Duration,
    write: Duration,
    max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Whether `e` is a read or write timeout (`WouldBlock` or `TimedOut`, as
/// std's timeouts report them).
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Serves one connection until it closes, fails, or must be closed.
fn serve(mut conn: TcpStream, limits: Limits) -> io::Result<()> {
    conn.set_nodelay(true)?;
    // When the request head under way must be complete (None: none is).
    let mut head_due: Option<Instant> = None;
    let mut requests = Requests::default();
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    let mut answered = 0; // requests answered when the head clock was last set
    loop {
        // Answer every complete request already buffered (a pipeline).
        match requests.next(&mut out) {
            Next::Flush => {
                conn.write_all(&out)?;
                out.clear();
                continue;
            }
            Next::Close => {
                conn.write_all(&out)?;
                linger_close(conn);
                return Ok(());
            }
            Next::Read => {}
        }
        if requests.answered() != answered {
            answered = requests.answered();
            head_due = None; // a pipelined next head gets its own clock
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
        }
        let head = requests.head_under_way();
        let fresh = requests.between_requests();
        let Some(space) = requests.space() else {
            // A request head that fills the whole buffer and is not done.
            conn.write_all(TOO_LARGE)?;
            linger_close(conn);
            return Ok(());
        };
        // A head under way has until its deadline; between requests (or
        // in a body) each read may wait the idle timeout.
        let wait = if head {
            let due = *head_due.get_or_insert_with(|| Instant::now() + limits.header);
            due.saturating_duration_since(Instant::now())
        } else {
            head_due = None;
            limits.idle
        };
        if wait.is_zero() {
            conn.write_all(TIMED_OUT)?;
            linger_close(conn);
            return Ok(());
        }
        conn.set_read_timeout(Some(wait))?;
        let n = match conn.read(space) {
            Ok(n) => n,
            Err(e) if timed_out(&e) && head => {
                conn.write_all(TIMED_OUT)?;
                linger_close(conn);
                return Ok(());
            }
            Err(e) => return Err(e), // idle too long, or the connection failed
        };
        if n == 0 {
            return Ok(()); // the client is done
        }
        if fresh {
            // The first bytes of a new request head: its clock starts.
            head_due = Some(Instant::now() + limits.header);
        }
        requests.filled(n);
    }
}

fn server(addr: &str, threads: usize, spread: Spread, limits: Limits) -> io::Result<()> {
    // A StreamServer per hub thread, bound here first so that port 0's
    // pick is printed before any thread starts; `--spread` says how the
    // connections reach the hubs (a listener each, or one acceptor).
    let listener = StreamServer::builder()
        .spread(spread)
        .write_timeout(Some(limits.write))
        .max_connections(limits.max_connections)
        .bind_hubs(addr)?;
    println!("listening on {}", listener.local_addr());
    io::stdout().flush()?;
    let exits =
        Hubs::new()
            .threads(threads)
            .stop_on_signals(true)
            .run(move |hub| -> io::Result<()> {
                // Errors only end that connection (a reset, a broken pipe).
                let server = listener.server(hub, move |conn, _peer| drop(serve(conn, limits)))?;
                server.start()?;
                hub.wait_stop();
                server.stop(GRACE);
                Ok(())
            })?;
    for e in exits {
        e.result
            .map_err(|_| io::Error::other("a hub thread panicked"))??;
    }
    Ok(())
}

/// Seconds (fractions allowed) as a positive duration.
fn secs(v: &str) -> Option<Duration> {
    let s: f64 = v.parse().ok()?;
    (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s))
}

fn usage() -> ! {
    eprintln!(
        "usage: hello_http [--addr HOST] [--port PORT] [--threads N] [--spread reuseport|rr] \
         [--header-timeout SECS] [--idle-timeout SECS] [--write-timeout SECS] [--max-connections N]"
    );
    std::process::exit(2);
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port = String::from("0");
    let mut threads = 1usize;
    let mut spread = Spread::ReusePort;
    let mut limits = Limits::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else { usage() };
        let count = || v.parse::<usize>().ok().filter(|&n| n > 0);
        match a.as_str() {
            "--addr" => host = v,
            "--port" => port = v,
            "--threads" => threads = count().unwrap_or_else(|| usage()),
            "--max-connections" => limits.max_connections = count().unwrap_or_else(|| usage()),
            "--spread" if v == "reuseport" => spread = Spread::ReusePort,
            "--spread" if v == "rr" => spread = Spread::RoundRobin,
            "--header-timeout" => limits.header = secs(&v).unwrap_or_else(|| usage()),
            "--idle-timeout" => limits.idle = secs(&v).unwrap_or_else(|| usage()),
            "--write-timeout" => limits.write = secs(&v).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    if let Err(e) = server(&format!("{host}:{port}"), threads, spread, limits) {
        eprintln!("hello_http: {e}");
        std::process::exit(1);
    }
}
