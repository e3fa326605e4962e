//! The HTTP servers the network benches compare `examples/hello_http`
//! with: hyper (tokio) and a minimal keep-alive loop for may. Each answers
//! `GET /` with `Hello, world!` and sets `TCP_NODELAY`.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The hyper server: HTTP/1.1 keep-alive, on tokio's current-thread
/// runtime (`threads` `None`) or its multi-thread runtime with that many
/// workers.
pub fn serve_hyper(addr: SocketAddr, threads: Option<usize>) -> io::Result<()> {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response, StatusCode};

    async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let ok = req.uri().path() == "/";
        let (status, body): (StatusCode, &'static [u8]) = if ok {
            (StatusCode::OK, b"Hello, world!")
        } else {
            (StatusCode::NOT_FOUND, b"Not Found\n")
        };
        Ok(Response::builder()
            .status(status)
            .header("server", "hyper")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(body)))
            .expect("valid response"))
    }

    let rt = super::tokio_runtime(threads)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        super::announce(listener.local_addr()?)?;
        loop {
            let (conn, _) = listener.accept().await?;
            let _ = conn.set_nodelay(true);
            let io = hyper_util::rt::TokioIo::new(conn);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, hyper::service::service_fn(hello))
                    .await;
            });
        }
    })
}

/// The answer of [`serve_may_http`] to every request.
const MAY_HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: may\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
/// The same, to a request that says `Connection: close`.
const MAY_HELLO_CLOSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: may\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";

/// may with `workers` worker threads, a coroutine per connection running a
/// minimal HTTP/1.1 keep-alive loop (httparse; pipelined requests answered
/// in one write; no bodies: the benches send only `GET`).
pub fn serve_may_http(addr: SocketAddr, workers: usize) -> io::Result<()> {
    may::config().set_workers(workers).set_worker_pin(false);
    let listener = may::net::TcpListener::bind(addr)?;
    super::announce(listener.local_addr()?)?;
    fn accept_loop(listener: may::net::TcpListener) -> io::Result<()> {
        loop {
            let (mut conn, _) = listener.accept()?;
            let _ = conn.set_nodelay(true);
            // SAFETY: may's spawn is unsafe because a coroutine that uses
            // thread-local storage could observe another thread's; this one
            // touches none.
            unsafe {
                may::coroutine::spawn(move || http_loop(&mut conn));
            }
        }
    }
    // SAFETY: as in accept_loop.
    let acceptor = unsafe { may::coroutine::spawn(move || accept_loop(listener)) };
    acceptor
        .join()
        .map_err(|_| io::Error::other("may acceptor panicked"))?
}

/// Answers every complete request head in the buffer, reads more, until
/// the peer closes, sends what is not HTTP, or asks for `Connection:
/// close` (answered, then closed).
fn http_loop<S: Read + Write>(conn: &mut S) {
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match conn.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let mut at = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[at..have]) {
                Ok(httparse::Status::Complete(len)) => {
                    at += len;
                    let close = req.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    if close {
                        out.extend_from_slice(MAY_HELLO_CLOSE);
                        let _ = conn.write_all(&out);
                        return;
                    }
                    out.extend_from_slice(MAY_HELLO);
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            }
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if have == buf.len() {
            return; // a head over 8 KiB
        }
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// Builds `examples/NAME.rs` (release) and returns its path; where
/// cargo is not to be found (a copy of the built benches on another
/// machine) an example already built next to this bench is used as it is.
pub fn build_example(name: &str) -> io::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "verdant",
            "--example",
            name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(io::Error::other(format!(
                "cargo build --example {name}: {s}"
            )))
        }
        // No cargo here: use what is there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // This bench is <target>/release/deps/hello_http-HASH; the example is
    // <target>/release/examples/hello_http.
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or_else(|| io::Error::other("unexpected bench path"))?;
    let path = release.join("examples").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::other(format!("{} not found", path.display())))
    }
}
