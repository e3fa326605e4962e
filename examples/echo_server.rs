//! Seed 5, the server: one greenlet per connection, upper-casing what it
//! reads, exactly like the gevent original.
//!
//! `cargo run --release --example echo_server -- [--addr 127.0.0.1] [--port 0]`
//!
//! It prints `listening on <addr>` first (port 0 picks a free port), then
//! serves until killed.
use std::io::Write;

use verdant::net::{TcpListener, TcpStream};

fn talk(mut conn: TcpStream) {
    loop {
        // gevent's `res = conn.recv(1024)`: the buffer is lent by this
        // thread's pool once data has arrived, so a waiting connection
        // holds none.
        let mut res = match conn.recv_buf(1024) {
            Ok(res) if !res.is_empty() => res,
            _ => break, // the peer is done (or gone)
        };
        res.make_ascii_uppercase();
        if conn.write_all(&res).is_err() {
            break;
        }
    }
    // conn closes here, as in the seed's `finally: conn.close()`.
}

fn server(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (conn, _peer) = listener.accept()?;
        verdant::spawn(move || talk(conn));
    }
}

fn usage(arg: &str) -> ! {
    eprintln!("usage: echo_server [--addr HOST] [--port PORT] (got {arg:?})");
    std::process::exit(2);
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port = String::from("0");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--addr", Some(v)) => host = v,
            ("--port", Some(v)) => port = v,
            _ => usage(&a),
        }
    }
    if let Err(e) = server(&format!("{host}:{port}")) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
