//! Seed 5, the server: one greenlet per connection, upper-casing what it
//! reads, exactly like the gevent original, on a `StreamServer` (one per
//! hub thread with `--threads N`).
//!
//! `cargo run --release --example echo_server -- [--addr 127.0.0.1] [--port 0] [--threads 1] [--buf 1024] [--spread reuseport]`
//!
//! It prints `listening on <addr>` first (port 0 picks a free port), then
//! serves until SIGINT or SIGTERM, when it stops accepting, gives the
//! connections still open 5 s to finish, and exits. `--buf` is the most
//! each `recv` reads (the seed's 1,024; 16,384 moves large messages in
//! fewer calls). `--spread rr` hands the connections to the hubs from one
//! acceptor in turn instead of a listener per hub (`SO_REUSEPORT`).
//!
//! The seed's plain form, without the server helper, is an accept loop:
//!
//! ```text
//! let listener = TcpListener::bind(addr)?;
//! loop {
//!     let (conn, _peer) = listener.accept()?;
//!     verdant::spawn(move || talk(conn, 1024));
//! }
//! ```
use std::time::Duration;

use verdant::net::{Spread, StreamServer, TcpStream};
use verdant::Hubs;

/// How long a stop waits for open connections before cutting them off.
const GRACE: Duration = Duration::from_secs(5);

fn talk(conn: TcpStream, buf: usize) {
    let mut conn = conn;
    loop {
        // gevent's `res = conn.recv(1024)`: the buffer is lent by this
        // thread's pool once data has arrived, so a waiting connection
        // holds none.
        let mut res = match conn.recv_buf(buf) {
            Ok(res) if !res.is_empty() => res,
            _ => break, // the peer is done (or gone)
        };
        res.make_ascii_uppercase();
        if std::io::Write::write_all(&mut conn, &res).is_err() {
            break;
        }
    }
    // conn closes here, as in the seed's `finally: conn.close()`.
}

fn server(addr: &str, threads: usize, buf: usize, spread: Spread) -> std::io::Result<()> {
    // TCP_NODELAY on every connection (the server's default). Bound here,
    // so that a bad address fails before any thread starts and port 0's
    // pick is known; with several hubs, the connections are spread over
    // them as `--spread` says (a listener each, or one acceptor).
    let listener = StreamServer::builder().spread(spread).bind_hubs(addr)?;
    println!("listening on {}", listener.local_addr());
    let exits = Hubs::new().threads(threads).stop_on_signals(true).run(
        move |hub| -> std::io::Result<usize> {
            let server = listener.server(hub, move |conn, _peer| talk(conn, buf))?;
            server.start()?;
            hub.wait_stop();
            Ok(server.stop(GRACE))
        },
    )?;
    let mut cut = 0;
    for e in exits {
        match e.result {
            Ok(Ok(n)) => cut += n,
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(std::io::Error::other("a hub thread panicked")),
        }
    }
    eprintln!("echo_server: stopped ({cut} connections cut off after {GRACE:?})");
    Ok(())
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "usage: echo_server [--addr HOST] [--port PORT] [--threads N] [--buf BYTES] [--spread reuseport|rr] (got {arg:?})"
    );
    std::process::exit(2);
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port = String::from("0");
    let (mut threads, mut buf) = (1usize, 1024usize);
    let mut spread = Spread::ReusePort;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--addr", Some(v)) => host = v,
            ("--port", Some(v)) => port = v,
            ("--threads", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => threads = n,
                _ => usage(&v),
            },
            ("--buf", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => buf = n,
                _ => usage(&v),
            },
            ("--spread", Some(v)) => match v.as_str() {
                "reuseport" => spread = Spread::ReusePort,
                "rr" => spread = Spread::RoundRobin,
                _ => usage(&v),
            },
            _ => usage(&a),
        }
    }
    if let Err(e) = server(&format!("{host}:{port}"), threads, buf, spread) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
