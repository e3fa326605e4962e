//! Real crates nobody here wrote, unmodified, cooperate after
//! `monkey::patch_all()`: the `ureq` HTTP client (its own `std::net`
//! sockets), `tungstenite` over a std stream, and `std::process::Command`.
//!
//! Before patching, 10 `ureq` calls against a server that answers after
//! 1 s took 10.04 s on one hub, a heartbeat greenlet got no tick during a
//! call, and with the server on the same hub the program deadlocked.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use verdant::net::TcpListener;
use verdant::{joinall, sleep, spawn, with_timeout};

fn patched() {
    verdant::monkey::patch_all();
}

/// Serves HTTP/1.1 on `l`: each connection's one request is answered
/// after `delay` with a body naming its path. Runs in the calling
/// greenlet; one greenlet per connection.
fn serve_http(l: TcpListener, conns: usize, delay: Duration) {
    let mut hs = Vec::new();
    for _ in 0..conns {
        let (c, _) = l.accept().unwrap();
        hs.push(spawn(move || {
            let mut r = BufReader::new(&c);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            sleep(delay);
            let body = format!("page {path}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            (&c).write_all(resp.as_bytes()).unwrap();
        }));
    }
    joinall(&hs).unwrap();
}

/// 10 `ureq` GETs from 10 greenlets, with a heartbeat: returns the total
/// time and the heartbeat's ticks.
fn ten_gets(addr: std::net::SocketAddr) -> (Duration, u32) {
    let (hb, stop) = common::heartbeat();
    let t = Instant::now();
    let hs: Vec<_> = (0..10)
        .map(|i| {
            spawn(move || {
                let mut resp = ureq::get(format!("http://{addr}/p{i}")).call().unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(
                    resp.body_mut().read_to_string().unwrap(),
                    format!("page /p{i}\n")
                );
            })
        })
        .collect();
    joinall(&hs).unwrap();
    let took = t.elapsed();
    stop.set(true);
    let ticks = hb.join().unwrap();
    eprintln!("10 ureq GETs: {took:?}, {ticks} heartbeat ticks");
    (took, ticks)
}

#[test]
fn ureq_from_ten_greenlets_overlaps_with_the_server_on_another_thread() {
    patched();
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let l = TcpListener::from_std(std_l).unwrap();
        serve_http(l, 10, Duration::from_secs(1));
    });
    let (took, ticks) = ten_gets(addr);
    server.join().unwrap();
    // The bound is 1.2 s; a debug build on a loaded host gets 50%
    // more (release: 1.01 s).
    assert!(took < Duration::from_millis(1800), "10 calls took {took:?}");
    assert!(
        ticks >= 50,
        "the heartbeat ticked {ticks} times in {took:?}"
    );
}

#[test]
fn ureq_with_the_server_on_the_same_hub_completes() {
    patched();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = spawn(move || serve_http(l, 10, Duration::from_millis(300)));
    let r = with_timeout(Duration::from_secs(10), || ten_gets(addr));
    let (took, ticks) = r.expect("deadlocked: the calls never completed");
    server.join().unwrap();
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert!(ticks >= 15, "{ticks}");
}

#[test]
fn tungstenite_over_std_streams_on_one_hub() {
    patched();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut ws = tungstenite::accept(s).unwrap();
        let msg = ws.read().unwrap();
        ws.send(tungstenite::Message::text(format!(
            "echo {}",
            msg.to_text().unwrap()
        )))
        .unwrap();
        ws.flush().unwrap();
    });
    let client = spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), s).unwrap();
        ws.send(tungstenite::Message::text("hi")).unwrap();
        ws.read().unwrap().to_text().unwrap().to_owned()
    });
    let got = with_timeout(Duration::from_secs(10), || client.join().unwrap()).expect("hung");
    assert_eq!(got, "echo hi");
    server.join().unwrap();
}

#[test]
fn command_output_from_ten_greenlets_overlaps() {
    patched();
    let (hb, stop) = common::heartbeat();
    let t = Instant::now();
    let hs: Vec<_> = (0..10)
        .map(|i| {
            spawn(move || {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep 1; echo done {i}"))
                    .output()
                    .unwrap();
                assert!(out.status.success());
                assert_eq!(
                    String::from_utf8(out.stdout).unwrap(),
                    format!("done {i}\n")
                );
            })
        })
        .collect();
    joinall(&hs).unwrap();
    let took = t.elapsed();
    stop.set(true);
    let ticks = hb.join().unwrap();
    assert!(took < Duration::from_millis(1900), "{took:?}");
    assert!(ticks >= 50, "{ticks}");
    // `status()` and `wait()` too (waitpid without pipes).
    let t = Instant::now();
    let hs: Vec<_> = (0..5)
        .map(|_| {
            spawn(|| {
                std::process::Command::new("sleep")
                    .arg("0.3")
                    .status()
                    .unwrap()
            })
        })
        .collect();
    for h in hs {
        assert!(h.join().unwrap().success());
    }
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
}
