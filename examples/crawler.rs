//! Seed 6: fetch several pages at once, one greenlet per URL.
//!
//! ```python
//! gevent.joinall([gevent.spawn(get_page, url) for url in urls])
//! ```
//!
//! No internet needed: the example first starts its own HTTP server in the
//! same thread (a verdant `TcpListener` on `127.0.0.1:0`, a greenlet per
//! connection). Each page answers after its own delay:
//!
//! | page      | delay   | body          |
//! |-----------|---------|---------------|
//! | `/a`      | 300 ms  | 1,500 bytes   |
//! | `/b`      | 600 ms  | 12,000 bytes  |
//! | `/c`      | 900 ms  | 48,000 bytes  |
//! | `/d`      | 1200 ms | 200,000 bytes |
//! | `/broken` | 100 ms  | promises 1,000 bytes, sends 10, hangs up |
//!
//! `get_page` is an ordinary blocking-style HTTP/1.1 GET written over
//! `verdant::net::TcpStream`: write the request, read until the header is
//! complete (parsed with `httparse`), then read the body by
//! `Content-Length`. Every read parks only its own greenlet, so the four
//! fetches wait side by side and the whole crawl takes about as long as the
//! slowest page, not the sum.
//!
//! `cargo run --release --example crawler -- [--serial] [--patched] [PATH ...]`
//! (default paths: `/a /b /c /d`)
//!
//! `--patched` is the seed exactly as written: `monkey.patch_all()`, then
//! `requests.get(url)`. It calls [`verdant::monkey::patch_all`] first and
//! fetches with the `ureq` crate (Rust's `requests`), unmodified: ureq
//! opens its own `std::net` sockets and blocks in them, and patching makes
//! those calls cooperate, so the output is the same.
//!
//! Expected output (only the timings vary), one line per page in the order
//! the pages complete, then the total and, for contrast, the sum of the
//! page times:
//!
//! ```text
//! crawling 4 pages concurrently
//! GET /a -> 200, 1500 bytes, 0.30 s
//! GET /b -> 200, 12000 bytes, 0.60 s
//! GET /c -> 200, 48000 bytes, 0.90 s
//! GET /d -> 200, 200000 bytes, 1.20 s
//! total: 1.20 s (sum of page times: 3.00 s)
//! ```
//!
//! With `--serial` the first line says `one by one` and the pages are
//! fetched in turn, so the total is about the sum (3.0 s). A fetch that
//! fails prints `GET <path> -> error: <why>` (try `/broken`), a page that
//! is not `200` counts as failed too (try `/nope` for a 404), and the exit
//! code is then 1.
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::{TcpListener, TcpStream};

/// The pages the local server knows: path, delay before answering, body size.
const PAGES: &[(&str, u64, usize)] = &[
    ("/a", 300, 1_500),
    ("/b", 600, 12_000),
    ("/c", 900, 48_000),
    ("/d", 1200, 200_000),
];

/// The largest response header the client accepts.
const MAX_HEAD: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// The server: one greenlet per connection, one request per connection.
// ---------------------------------------------------------------------------

/// A deterministic page body of exactly `len` bytes.
fn body(path: &str, len: usize) -> Vec<u8> {
    let mut b = format!("<html><title>{path}</title><body>\n").into_bytes();
    let mut line = 0;
    while b.len() < len {
        b.extend_from_slice(format!("line {line} of {path}\n").as_bytes());
        line += 1;
    }
    b.truncate(len);
    b
}

/// Reads one request head; returns its path (`None` when the peer left or
/// sent something that is not HTTP).
fn read_request_path(conn: &mut TcpStream) -> io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return Ok(req.path.map(str::to_owned)),
            Ok(httparse::Status::Partial) if buf.len() < 8192 => continue,
            Ok(httparse::Status::Partial) | Err(_) => return Ok(None),
        }
    }
}

fn serve(mut conn: TcpStream) -> io::Result<()> {
    let Some(path) = read_request_path(&mut conn)? else {
        return conn.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    if path == "/broken" {
        verdant::sleep(Duration::from_millis(100));
        // Promises more than it sends, then hangs up.
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n0123456789",
        )?;
        return Ok(());
    }
    let Some(&(_, delay, len)) = PAGES.iter().find(|p| p.0 == path) else {
        let body = b"not found\n";
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        return conn.write_all(body);
    };
    verdant::sleep(Duration::from_millis(delay)); // the page is "slow"
    let body = body(&path, len);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&body)
}

/// Starts the page server; returns its address and the listener (closing
/// it stops the accept loop).
fn start_server() -> io::Result<(SocketAddr, Rc<TcpListener>)> {
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let l = listener.clone();
    verdant::spawn(move || {
        while let Ok((conn, _)) = l.accept() {
            verdant::spawn(move || {
                if let Err(e) = serve(conn) {
                    eprintln!("crawler server: {e}");
                }
            });
        }
    });
    Ok((addr, listener))
}

// ---------------------------------------------------------------------------
// The client: a blocking-style GET.
// ---------------------------------------------------------------------------

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `GET path` from `addr`: returns the status code and the body.
fn get_page(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(addr)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: verdant-crawler\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes())?;

    // Read until the response head is complete.
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let (status, head_len, content_length) = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response header",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = resp.code.unwrap_or(0);
                let mut content_length = None;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| bad_data("bad Content-Length"))?;
                        content_length = Some(v);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(bad_data("Transfer-Encoding is not supported"));
                    }
                }
                break (status, head_len, content_length);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err(bad_data("response header too large")),
            Err(e) => return Err(bad_data(format!("bad response: {e}"))),
        }
    };

    // The body: by Content-Length, or (without one) until the server closes.
    let mut body = buf.split_off(head_len);
    match content_length {
        Some(len) => {
            if body.len() > len {
                body.truncate(len); // ignore anything after the response
            }
            let have = body.len();
            body.resize(len, 0);
            conn.read_exact(&mut body[have..]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        e.kind(),
                        format!("connection closed in the body (Content-Length {len})"),
                    )
                } else {
                    e
                }
            })?;
        }
        None => {
            conn.read_to_end(&mut body)?;
        }
    }
    Ok((status, body))
}

/// One page's result, printed as soon as it is known.
struct Fetched {
    ok: bool,
    took: Duration,
}

/// `requests.get(url)`: the `ureq` crate, which knows nothing of verdant.
fn get_page_ureq(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(format!("http://{addr}{path}"))
        .call()
        .map_err(io::Error::other)?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(io::Error::other)?;
    Ok((status, body))
}

fn fetch_and_report(addr: SocketAddr, path: &str, patched: bool) -> Fetched {
    let start = Instant::now();
    let result = if patched {
        get_page_ureq(addr, path)
    } else {
        get_page(addr, path)
    };
    let took = start.elapsed();
    let secs = took.as_secs_f64();
    let ok = match result {
        Ok((status, body)) => {
            println!("GET {path} -> {status}, {} bytes, {secs:.2} s", body.len());
            status == 200
        }
        Err(e) => {
            println!("GET {path} -> error: {e} ({secs:.2} s)");
            false
        }
    };
    Fetched { ok, took }
}

fn main() {
    let mut serial = false;
    let mut patched = false;
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--serial" => serial = true,
            "--patched" => patched = true,
            p if p.starts_with('/') => paths.push(p.to_owned()),
            other => {
                eprintln!(
                    "crawler: unknown argument {other:?} (use [--serial] [--patched] [/PATH ...])"
                );
                std::process::exit(2);
            }
        }
    }
    if paths.is_empty() {
        paths = PAGES.iter().map(|p| p.0.to_owned()).collect();
    }
    if patched {
        verdant::monkey::patch_all(); // monkey.patch_all()
    }

    let (addr, listener) = match start_server() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crawler: cannot start the local server: {e}");
            std::process::exit(1);
        }
    };

    let how = if serial { "one by one" } else { "concurrently" };
    println!("crawling {} pages {how}", paths.len());
    let start = Instant::now();
    let results: Rc<RefCell<Vec<Fetched>>> = Rc::default();
    if serial {
        for path in &paths {
            let f = fetch_and_report(addr, path, patched);
            results.borrow_mut().push(f);
        }
    } else {
        let greenlets: Vec<_> = paths
            .iter()
            .cloned()
            .map(|path| {
                let results = results.clone();
                verdant::spawn(move || {
                    let f = fetch_and_report(addr, &path, patched);
                    results.borrow_mut().push(f);
                })
            })
            .collect();
        if let Err(e) = verdant::joinall(&greenlets) {
            eprintln!("crawler: {e}");
            std::process::exit(1);
        }
        for g in greenlets {
            if let Err(e) = g.join() {
                eprintln!("crawler: a fetch greenlet failed: {e}");
                results.borrow_mut().push(Fetched {
                    ok: false,
                    took: Duration::ZERO,
                });
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    listener.close();

    let results = results.borrow();
    let sum: f64 = results.iter().map(|f| f.took.as_secs_f64()).sum();
    println!("total: {total:.2} s (sum of page times: {sum:.2} s)");
    let failed = results.iter().filter(|f| !f.ok).count();
    if failed > 0 {
        eprintln!("crawler: {failed} of {} pages failed", paths.len());
        std::process::exit(1);
    }
}
