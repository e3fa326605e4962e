//! Seed 5, the client: where the original starts 500 threads, this runs 500
//! greenlets in one thread. Each connects, sends numbered messages, checks
//! every upper-cased reply, and the totals are printed at the end.
//!
//! `cargo run --release --example echo_client -- --addr 127.0.0.1:PORT
//! [--conns 500] [--msgs 100]`
//!
//! Without `--addr` it starts an `echo_server`-style greenlet in the same
//! thread and talks to that.
use std::io::{Read, Write};
use std::time::Instant;

use verdant::net::{TcpListener, TcpStream};

/// One client session: `msgs` round trips, each checked byte for byte.
fn session(addr: std::net::SocketAddr, id: usize, msgs: usize) -> std::io::Result<usize> {
    let mut conn = TcpStream::connect(addr)?;
    let mut reply = Vec::new();
    for i in 0..msgs {
        let msg = format!("hello from client {id}, message {i}");
        conn.write_all(msg.as_bytes())?;
        reply.resize(msg.len(), 0);
        conn.read_exact(&mut reply)?;
        if reply != msg.to_uppercase().as_bytes() {
            return Err(std::io::Error::other(format!(
                "client {id}: bad reply to message {i}: {:?}",
                String::from_utf8_lossy(&reply)
            )));
        }
    }
    Ok(msgs)
}

/// The in-process server used when no `--addr` is given.
fn local_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    verdant::spawn(move || loop {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        verdant::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                buf[..n].make_ascii_uppercase();
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    });
    addr
}

fn main() {
    let (mut addr, mut conns, mut msgs) = (None, 500usize, 100usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        let ok = match (a.as_str(), v.as_deref()) {
            ("--addr", Some(v)) => v.parse().map(|x| addr = Some(x)).is_ok(),
            ("--conns", Some(v)) => v.parse().map(|x| conns = x).is_ok(),
            ("--msgs", Some(v)) => v.parse().map(|x| msgs = x).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!(
                "usage: echo_client [--addr HOST:PORT] [--conns N] [--msgs N] (got {a:?} {:?})",
                v.unwrap_or_default()
            );
            std::process::exit(2);
        }
    }
    let addr = addr.unwrap_or_else(local_server);
    let start = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|id| verdant::spawn(move || session(addr, id, msgs)))
        .collect();
    let (mut ok, mut failed, mut replies) = (0, 0, 0);
    for c in clients {
        match c.join() {
            Ok(Ok(n)) => {
                ok += 1;
                replies += n;
            }
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("{e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("clients: {ok} ok, {failed} failed");
    println!("replies: {replies} checked");
    println!(
        "throughput: {:.0} round trips/s ({secs:.2} s)",
        replies as f64 / secs
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
