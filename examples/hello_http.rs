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

/// How long a stop (SIGINT, SIGTERM) waits for open connections.
const GRACE: Duration = Duration::from_secs(5);

/// The largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 64;
/// How long a closing connection waits for the client to finish sending.
const LINGER: Duration = Duration::from_secs(1);
/// Flush the output buffer once this much is queued (a long pipeline).
const FLUSH_AT: usize = 32 * 1024;

const HELLO_KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
const HELLO_KEEP_10: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, world!";
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";
const NOT_FOUND_KEEP: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n";
const NOT_FOUND_KEEP_10: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\nNot Found\n";
const NOT_FOUND_CLOSE: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot Found\n";
const NOT_ALLOWED_KEEP: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\r\n";
const NOT_ALLOWED_KEEP_10: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
const NOT_ALLOWED_CLOSE: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Picks the keep-alive, HTTP/1.0 keep-alive or closing variant.
fn pick(
    keep: bool,
    http10: bool,
    variants: (&'static [u8], &'static [u8], &'static [u8]),
) -> &'static [u8] {
    match (keep, http10) {
        (true, false) => variants.0,
        (true, true) => variants.1,
        (false, _) => variants.2,
    }
}

/// Whether a `Connection` header value lists `token` (case-insensitive,
/// comma-separated).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// What one parsed request asks of the connection.
struct Answer {
    response: &'static [u8],
    /// Request body bytes to read and ignore before the next request.
    body: usize,
    /// Close the connection after this response.
    close: bool,
}

impl Answer {
    fn fatal(response: &'static [u8]) -> Answer {
        Answer {
            response,
            body: 0,
            close: true,
        }
    }
}

/// Answers a complete request head.
fn answer(req: &httparse::Request<'_, '_>) -> Answer {
    let http10 = req.version == Some(0);
    let mut keep = !http10;
    let mut body: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep = false;
            } else if http10 && has_token(h.value, "keep-alive") {
                keep = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (len, body) {
                (None, _) => return Answer::fatal(BAD_REQUEST),
                // Two different lengths: the framing is ambiguous.
                (Some(l), Some(prev)) if l != prev => return Answer::fatal(BAD_REQUEST),
                (Some(l), _) => body = Some(l),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Answer::fatal(NOT_IMPLEMENTED);
        }
    }
    let path = req.path.unwrap_or("");
    // Ignore a query string; accept the absolute form's path only.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let response = if path == "/" {
        match req.method {
            Some("GET") => pick(keep, http10, (HELLO_KEEP, HELLO_KEEP_10, HELLO_CLOSE)),
            Some("HEAD") => {
                // Same head, no body (the body is the last 13 bytes).
                let r = pick(keep, http10, (HELLO_KEEP, HELLO_KEEP_10, HELLO_CLOSE));
                &r[..r.len() - 13]
            }
            _ => pick(
                keep,
                http10,
                (NOT_ALLOWED_KEEP, NOT_ALLOWED_KEEP_10, NOT_ALLOWED_CLOSE),
            ),
        }
    } else {
        pick(
            keep,
            http10,
            (NOT_FOUND_KEEP, NOT_FOUND_KEEP_10, NOT_FOUND_CLOSE),
        )
    };
    Answer {
        response,
        body: body.unwrap_or(0),
        close: !keep,
    }
}

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
    let mut buf = vec![0u8; MAX_HEAD].into_boxed_slice();
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    let (mut start, mut end) = (0usize, 0usize); // unparsed bytes: buf[start..end]
    let mut skip = 0usize; // request body bytes still to discard
    loop {
        // Answer every complete request already buffered (a pipeline).
        loop {
            if skip > 0 {
                let n = skip.min(end - start);
                skip -= n;
                start += n;
                if skip > 0 {
                    break; // the body goes on in the next read
                }
            }
            if start == end {
                break;
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let a = match req.parse(&buf[start..end]) {
                Ok(httparse::Status::Complete(n)) => {
                    start += n;
                    head_due = None; // a pipelined next head gets its own clock
                    answer(&req)
                }
                Ok(httparse::Status::Partial) => break, // read more
                Err(httparse::Error::TooManyHeaders) => Answer::fatal(TOO_LARGE),
                Err(_) => Answer::fatal(BAD_REQUEST),
            };
            out.extend_from_slice(a.response);
            if a.close {
                conn.write_all(&out)?;
                linger_close(conn);
                return Ok(());
            }
            skip = a.body;
            if out.len() >= FLUSH_AT {
                conn.write_all(&out)?;
                out.clear();
            }
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
        }
        // Keep the unparsed tail at the front of the buffer.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        if end == buf.len() {
            // A request head that fills the whole buffer and is not done.
            conn.write_all(TOO_LARGE)?;
            linger_close(conn);
            return Ok(());
        }
        // A head under way has until its deadline; between requests (or
        // in a body) each read may wait the idle timeout.
        let head = start < end && skip == 0;
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
        let n = match conn.read(&mut buf[end..]) {
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
        if start == end && skip == 0 {
            // The first bytes of a new request head: its clock starts.
            head_due = Some(Instant::now() + limits.header);
        }
        end += n;
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
