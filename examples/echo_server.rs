//! Seed 5, the server: one greenlet per connection, upper-casing what it
//! reads, exactly like the gevent original, on a `StreamServer` (one per
//! hub thread with `--threads N`).
//!
//! `cargo run --release --example echo_server -- [--addr 127.0.0.1] [--port 0] [--threads 1] [--buf 1024] [--spread reuseport]
//! [--idle-timeout SECS] [--write-timeout 10] [--max-connections 10000] [--compact-idle 1|off]`
//!
//! It prints `listening on <addr>` first (port 0 picks a free port), then
//! serves until SIGINT or SIGTERM, when it stops accepting, gives the
//! connections still open 5 s to finish, and exits. `--buf` is the most
//! each `recv` reads (the seed's 1,024; 16,384 moves large messages in
//! fewer calls). `--spread rr` hands the connections to the hubs from one
//! acceptor in turn instead of a listener per hub (`SO_REUSEPORT`).
//!
//! Hostile or broken clients: `--idle-timeout` closes a connection silent
//! that long (none by default, as in the seed); an echo the client does not
//! read within `--write-timeout` (10 s) ends the connection, so a client
//! that sends and never reads cannot hold a greenlet forever; at most
//! `--max-connections` (10,000) per hub at once, the kernel queueing the
//! rest.
//!
//! Idle connections: a connection's greenlet that has waited a second
//! (`--compact-idle SECS`, or `off`) keeps only its live frames, about a
//! KiB, and gives its stack page back until data arrives
//! (`Hub::set_idle_compaction`): 10,000 idle connections take about 1.8 KiB
//! each instead of 4.5.
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

/// How the server treats its connections (the command line's options).
struct Options {
    threads: usize,
    buf: usize,
    spread: Spread,
    /// Close a connection silent this long (default: never, as the seed).
    idle: Option<Duration>,
    /// Close a connection whose echo is not read this long (a client that
    /// sends and never reads would otherwise hold its greenlet forever).
    write: Duration,
    max_connections: usize,
    /// Idle compaction's period (`None`: off).
    compact: Option<Duration>,
}

fn server(addr: &str, o: Options) -> std::io::Result<()> {
    let (threads, buf) = (o.threads, o.buf);
    // TCP_NODELAY on every connection (the server's default). Bound here,
    // so that a bad address fails before any thread starts and port 0's
    // pick is known; with several hubs, the connections are spread over
    // them as `--spread` says (a listener each, or one acceptor).
    let listener = StreamServer::builder()
        .spread(o.spread)
        .read_timeout(o.idle)
        .write_timeout(Some(o.write))
        .max_connections(o.max_connections)
        .bind_hubs(addr)?;
    println!("listening on {}", listener.local_addr());
    let exits = Hubs::new().threads(threads).stop_on_signals(true).run(
        move |hub| -> std::io::Result<usize> {
            // SAFETY: `talk` lends its greenlet's stack to no other thread
            // (the contract of idle compaction).
            unsafe { verdant::Hub::current().set_idle_compaction(o.compact) };
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
        "usage: echo_server [--addr HOST] [--port PORT] [--threads N] [--buf BYTES] [--spread reuseport|rr] \
         [--idle-timeout SECS] [--write-timeout SECS] [--max-connections N] [--compact-idle SECS|off] (got {arg:?})"
    );
    std::process::exit(2);
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port = String::from("0");
    let mut o = Options {
        threads: 1,
        buf: 1024,
        spread: Spread::ReusePort,
        idle: None,
        write: Duration::from_secs(10),
        max_connections: 10_000,
        compact: Some(Duration::from_secs(1)),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else { usage(&a) };
        let count = || v.parse::<usize>().ok().filter(|&n| n > 0);
        let secs = || {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
        };
        match a.as_str() {
            "--addr" => host = v,
            "--port" => port = v,
            "--threads" => o.threads = count().unwrap_or_else(|| usage(&v)),
            "--buf" => o.buf = count().unwrap_or_else(|| usage(&v)),
            "--max-connections" => o.max_connections = count().unwrap_or_else(|| usage(&v)),
            "--idle-timeout" => o.idle = Some(secs().unwrap_or_else(|| usage(&v))),
            "--write-timeout" => o.write = secs().unwrap_or_else(|| usage(&v)),
            "--compact-idle" if v == "off" => o.compact = None,
            "--compact-idle" => o.compact = Some(secs().unwrap_or_else(|| usage(&v))),
            "--spread" => match v.as_str() {
                "reuseport" => o.spread = Spread::ReusePort,
                "rr" => o.spread = Spread::RoundRobin,
                _ => usage(&v),
            },
            _ => usage(&a),
        }
    }
    if let Err(e) = server(&format!("{host}:{port}"), o) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
