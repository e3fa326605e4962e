//! Runs every teaching example and checks its exact output and order (the
//! output of the greenlet and gevent programs they port). `cargo test`
//! builds the examples next to the test binary, in
//! `target/<profile>/examples/`.
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::example::{example, start_server_io, start_server_with, Reap};

/// No example run by these tests takes longer than this; one that does has
/// hung, and fails its test instead of stalling the suite.
const HANG: Duration = Duration::from_secs(60);

/// `cmd.output()`, but the child is killed, and the test fails, if it has
/// not exited within [`HANG`].
fn output_within_limit(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not exit within {HANG:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs an example; returns its stdout lines and how long it took.
fn run(name: &str, args: &[&str]) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let out = output_within_limit(Command::new(example(name)).args(args));
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{name} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    (stdout.lines().map(str::to_owned).collect(), took)
}

#[test]
fn greenlet_switch_variant_1_tom() {
    let (lines, took) = run("greenlet_switch", &["1"]);
    assert_eq!(
        lines,
        ["tom eat 1", "tom play 1", "tom eat 2", "tom play 2"]
    );
    // The plain thread::sleep(1 s) blocks everything.
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

#[test]
fn greenlet_switch_variant_2_numbers() {
    let (lines, _) = run("greenlet_switch", &["2"]);
    assert_eq!(lines, ["11", "33", "22", "44"]);
}

#[test]
fn greenlet_switch_variant_3_first_value() {
    let (lines, took) = run("greenlet_switch", &["3"]);
    assert_eq!(
        lines,
        ["小雪吃炸鸡", "小雪2喝啤酒", "小雪吃雪糕", "小雪2喝可乐"]
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[test]
fn producer_consumer_delivers_every_value() {
    let (lines, _) = run("producer_consumer", &["200000"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("time: ") && lines[0].contains("for 200000 sends"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("consumed 200000 values, sum {}", 199_999u64 * 200_000 / 2)
    );
}

#[test]
fn eat_play_takes_the_longest_sleep_not_the_sum() {
    let (lines, took) = run("eat_play", &[]);
    assert_eq!(
        lines[..4],
        ["tom eat 1", "tom play 1", "tom play 2", "tom eat 2"]
    );
    assert!(lines[4].starts_with("elapsed: "), "{lines:?}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(
        took < Duration::from_millis(4500),
        "about 3 s, not 5: {took:?}"
    );
}

#[test]
fn echo_server_and_client_500_greenlets() {
    let (_server, addr) = start_server_io("echo_server", &[], Stdio::inherit());
    let (lines, _) = run(
        "echo_client",
        &["--addr", &addr, "--conns", "500", "--msgs", "20"],
    );
    assert_eq!(lines[0], "clients: 500 ok, 0 failed");
    assert_eq!(lines[1], "replies: 10000 checked");
    assert!(lines[2].starts_with("throughput: "), "{lines:?}");
    // The server is still serving after 500 clients came and went.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut s, b"still up").unwrap();
    let mut buf = [0u8; 8];
    std::io::Read::read_exact(&mut s, &mut buf).unwrap();
    assert_eq!(&buf, b"STILL UP");
}

#[test]
fn echo_client_with_its_own_server() {
    let (lines, _) = run("echo_client", &["--conns", "50", "--msgs", "10"]);
    assert_eq!(lines[0], "clients: 50 ok, 0 failed");
    assert_eq!(lines[1], "replies: 500 checked");
}

/// Drops the trailing `elapsed: …` line, returning it separately.
fn split_elapsed(mut lines: Vec<String>) -> (Vec<String>, String) {
    let last = lines.pop().unwrap_or_default();
    assert!(last.starts_with("elapsed: "), "{last:?}");
    (lines, last)
}

#[test]
fn monkey_variant_1_tom_patched_sleeps_overlap() {
    let (lines, took) = run("monkey", &["1"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["tom eat 1", "tom play 1", "tom eat 2", "tom play 2"]
    );
    // 1 s and 2 s side by side: about 2 s, not 3.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(2800), "{took:?}");
}

#[test]
fn monkey_variant_2_joined_one_by_one() {
    let (lines, took) = run("monkey", &["2"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["alex eat 1", "egon play 1", "alex eat 2", "egon play 2"]
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_millis(3800), "{took:?}");
}

#[test]
fn monkey_variant_3_unpatched_sleep_blocks() {
    let (lines, took) = run("monkey", &["3"]);
    let (lines, _) = split_elapsed(lines);
    // First spawned runs first; std's sleep does not switch.
    assert_eq!(lines, ["3", "4", "1", "2"]);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(2800), "{took:?}");
}

/// The seed's monkey program in plain std after `monkey::patch_all()`:
/// the output and timing of `monkey`'s patched variants.
#[test]
fn monkey_std_patch_all_makes_std_sleep_cooperate() {
    let (lines, took) = run("monkey_std", &["1"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["tom eat 1", "tom play 1", "tom eat 2", "tom play 2"]
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(2800), "{took:?}");
    let (lines, took) = run("monkey_std", &["2"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["alex eat 1", "egon play 1", "alex eat 2", "egon play 2"]
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_millis(3800), "{took:?}");
}

/// Examples are what people copy: a bad argument gets a usage line and
/// exit status 2, not a panic.
#[test]
fn echo_examples_reject_bad_arguments_with_usage() {
    for (name, args) in [
        ("echo_server", &["--bogus"][..]),
        ("echo_server", &["--port"][..]),
        ("echo_server", &["--threads", "0"][..]),
        ("echo_server", &["--buf", "lots"][..]),
        ("echo_server", &["--spread", "sideways"][..]),
        ("echo_server", &["--compact-idle", "never"][..]),
        ("hello_http", &["--threads", "none"][..]),
        ("hello_http", &["--spread", "sideways"][..]),
        ("echo_client", &["--conns", "many"][..]),
        ("echo_client", &["--addr"][..]),
    ] {
        let (status, _, stderr) = run_status(name, args);
        assert_eq!(status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.starts_with(&format!("usage: {name}")), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// With `--threads 2` both hubs serve the port; SIGTERM stops the server:
/// an open connection gets the 5 s grace, then is cut off, and the process
/// exits with status 0 and says so.
#[test]
fn echo_server_on_two_hubs_stops_gracefully_on_sigterm() {
    let (mut server, addr) =
        start_server_with("echo_server", &["--threads", "2", "--buf", "16384"]);
    for _ in 0..20 {
        let mut c = connect(&addr);
        c.write_all(b"hello").unwrap();
        let mut reply = [0u8; 5];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HELLO");
    }
    let mut open = connect(&addr);
    open.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).unwrap();
    let pid = server.0.id() as libc::pid_t;
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let t = Instant::now();
    // Still served during the grace, then closed.
    open.write_all(b"y").unwrap();
    open.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"Y");
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(4), "cut off after {took:?}");
    let status = server.0.wait().unwrap();
    let mut stderr = String::new();
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(
        stderr.contains("stopped (1 connections cut off"),
        "{stderr}"
    );
    // New connections are refused once it is gone.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[test]
fn monkey_std_unpatched_runs_in_sequence() {
    let (lines, took) = run("monkey_std", &["1", "--unpatched"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["tom eat 1", "tom eat 2", "tom play 1", "tom play 2"]
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let (status, _, stderr) = run_status("monkey_std", &["3"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.starts_with("usage: monkey_std"), "{stderr}");
}

/// Runs an example that may fail; returns its exit status, stdout lines
/// and stderr.
fn run_status(name: &str, args: &[&str]) -> (std::process::ExitStatus, Vec<String>, String) {
    let out = output_within_limit(Command::new(example(name)).args(args));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout.lines().map(str::to_owned).collect();
    (
        out.status,
        lines,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The crawler's pages: path, delay (s), body size; as in the example.
const CRAWLER_PAGES: [(&str, f64, usize); 4] = [
    ("/a", 0.3, 1_500),
    ("/b", 0.6, 12_000),
    ("/c", 0.9, 48_000),
    ("/d", 1.2, 200_000),
];

/// Splits `GET /a -> 200, 1500 bytes, 0.30 s` into the fixed part and the
/// seconds.
fn split_seconds(line: &str) -> (&str, f64) {
    let (fixed, secs) = line
        .rsplit_once(", ")
        .unwrap_or_else(|| panic!("no timing in {line:?}"));
    let secs = secs
        .strip_suffix(" s")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad timing in {line:?}"));
    (fixed, secs)
}

/// Parses `total: 1.20 s (sum of page times: 3.00 s)`.
fn crawler_totals(line: &str) -> (f64, f64) {
    let rest = line
        .strip_prefix("total: ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (total, rest) = rest.split_once(" s (sum of page times: ").unwrap();
    let sum = rest.strip_suffix(" s)").unwrap();
    (total.parse().unwrap(), sum.parse().unwrap())
}

#[test]
fn crawler_fetches_every_page_at_once() {
    crawler_concurrent(&[]);
}

/// The seed as written: `monkey.patch_all()`, then `requests.get` (the
/// `ureq` crate, unmodified) in spawned greenlets. Same output, same time.
#[test]
fn crawler_patched_ureq_fetches_every_page_at_once() {
    crawler_concurrent(&["--patched"]);
}

fn crawler_concurrent(args: &[&str]) {
    let (lines, took) = run("crawler", args);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0], "crawling 4 pages concurrently");
    // Completion order is the order of the delays.
    for ((path, delay, len), line) in CRAWLER_PAGES.iter().zip(&lines[1..5]) {
        let (fixed, secs) = split_seconds(line);
        assert_eq!(fixed, format!("GET {path} -> 200, {len} bytes"));
        assert!(secs >= delay - 0.01, "{line:?}");
        assert!(secs < delay + 0.5, "{line:?}");
    }
    let (total, sum) = crawler_totals(&lines[5]);
    let slowest = 1.2;
    let sum_of_delays: f64 = CRAWLER_PAGES.iter().map(|p| p.1).sum();
    // About the slowest page, not the sum.
    assert!(total >= slowest - 0.01, "{lines:?}");
    assert!(total < sum_of_delays, "{lines:?}");
    assert!(total < slowest + 0.6, "{lines:?}");
    assert!(sum >= sum_of_delays - 0.04, "{lines:?}");
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn crawler_serial_takes_the_sum() {
    let (lines, took) = run("crawler", &["--serial", "/a", "/c"]);
    assert_eq!(lines[0], "crawling 2 pages one by one");
    assert_eq!(split_seconds(&lines[1]).0, "GET /a -> 200, 1500 bytes");
    assert_eq!(split_seconds(&lines[2]).0, "GET /c -> 200, 48000 bytes");
    let (total, sum) = crawler_totals(&lines[3]);
    assert!(total >= 1.19, "{lines:?}");
    assert!(total >= sum - 0.01, "{lines:?}");
    assert!(took >= Duration::from_millis(1200), "{took:?}");
}

#[test]
fn crawler_reports_failed_fetches() {
    let (status, lines, stderr) = run_status("crawler", &["/a", "/broken", "/nope"]);
    assert_eq!(status.code(), Some(1), "{lines:?}\n{stderr}");
    assert_eq!(lines[0], "crawling 3 pages concurrently");
    // /nope answers at once, /broken after 100 ms, /a after 300 ms.
    assert_eq!(split_seconds(&lines[1]).0, "GET /nope -> 404, 10 bytes");
    assert!(
        lines[2].starts_with("GET /broken -> error: ") && lines[2].contains("Content-Length 1000"),
        "{lines:?}"
    );
    assert_eq!(split_seconds(&lines[3]).0, "GET /a -> 200, 1500 bytes");
    assert!(lines[4].starts_with("total: "), "{lines:?}");
    assert!(stderr.contains("2 of 3 pages failed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Starts a server example on port 0; returns it (killed when dropped) and
/// the address from its `listening on` line.
fn start_server(name: &str) -> (Reap, String) {
    start_server_with(name, &[])
}

/// A std connection with a generous read timeout, so a broken server fails
/// the test instead of hanging it.
fn connect(addr: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn select_echo_many_connections_at_once() {
    use std::io::{Read, Write};
    let (_server, addr) = start_server("select_echo");
    const CONNS: usize = 64;
    let barrier = std::sync::Barrier::new(CONNS);
    std::thread::scope(|scope| {
        for id in 0..CONNS {
            let (addr, barrier) = (&addr, &barrier);
            scope.spawn(move || {
                let mut s = connect(addr);
                barrier.wait(); // every connection is open at once
                for i in 0..50 {
                    let msg = format!(
                        "hello from client {id}, message {i}: {}",
                        "x".repeat(i * 37)
                    );
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut reply = vec![0u8; msg.len()];
                    s.read_exact(&mut reply).unwrap();
                    assert_eq!(reply, msg.to_uppercase().as_bytes(), "client {id}");
                }
                // A half-close gets a clean end of stream back.
                s.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0, "client {id}");
            });
        }
    });
    // Still serving.
    let mut s = connect(&addr);
    s.write_all(b"still up").unwrap();
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"STILL UP");
}

#[test]
fn select_echo_large_message_and_slow_reader() {
    use std::io::{Read, Write};
    let (_server, addr) = start_server("select_echo");
    // 1 MiB (then 8 MiB) written in one go while the reply is read only
    // later: the server hits WouldBlock on its writes, keeps the rest, stops
    // reading past its limit, and must still deliver every byte in order.
    for (size, wait) in [(1usize << 20, 0u64), (8 << 20, 300)] {
        let msg: Vec<u8> = (0..size)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz "[i % 27])
            .collect();
        let mut s = connect(&addr);
        let mut w = s.try_clone().unwrap();
        let expected = msg.to_ascii_uppercase();
        let writer = std::thread::spawn(move || {
            w.write_all(&msg).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        std::thread::sleep(Duration::from_millis(wait));
        let mut reply = Vec::with_capacity(size);
        s.read_to_end(&mut reply).unwrap(); // the server closes after the echo
        writer.join().unwrap();
        assert_eq!(reply.len(), size);
        assert!(reply == expected, "the {size}-byte echo differs");
    }
}

/// One HTTP response read from `r`: status, headers (names lower-cased),
/// body; `None` at a clean end of stream.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn read_response(r: &mut impl std::io::BufRead, head_request: bool) -> Option<Response> {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap() == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{line:?}");
    let status = parts.next().unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        assert!(r.read_line(&mut h).unwrap() > 0, "end of stream in a head");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|h| h.0 == "content-length")
        .expect("every response has a Content-Length")
        .1
        .parse()
        .unwrap();
    let mut body = vec![0u8; if head_request { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    Some((status, headers, body))
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.1.iter().find(|h| h.0 == name).map(|h| h.1.as_str())
}

/// Asserts the server has closed the connection (after its last response).
fn assert_closed(r: &mut impl std::io::Read) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn hello_http_keep_alive_pipelining_and_errors() {
    use std::io::{BufReader, Write};
    let (_server, addr) = start_server("hello_http");
    let get = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

    // Several requests, one after the other, on one connection.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..5 {
        s.write_all(get.as_bytes()).unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.0, 200);
        assert_eq!(resp.2, b"Hello, world!");
        assert_eq!(header(&resp, "content-length"), Some("13"));
        assert_eq!(header(&resp, "connection"), None);
    }
    // A pipelined batch in one write, answered in order.
    let batch = [
        ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 200, false),
        ("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n", 404, false),
        ("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", 200, true),
        (
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
            405,
            false,
        ),
        ("GET /?q=1 HTTP/1.1\r\nHost: t\r\n\r\n", 200, false),
    ];
    let mut all = String::new();
    for _ in 0..20 {
        for (req, ..) in &batch {
            all.push_str(req);
        }
    }
    s.write_all(all.as_bytes()).unwrap();
    for _ in 0..20 {
        for (req, status, head) in &batch {
            let resp = read_response(&mut r, *head).unwrap();
            assert_eq!(resp.0, *status, "{req:?}");
            if *status == 200 && !head {
                assert_eq!(resp.2, b"Hello, world!");
            }
        }
    }
    // A 404 on its own, and the connection is still usable.
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 404);
    // `Connection: close` is honoured: answered, then closed.
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!((resp.0, resp.2.as_slice()), (200, &b"Hello, world!"[..]));
    assert_eq!(header(&resp, "connection"), Some("close"));
    assert_closed(&mut r);
}

/// `--threads 2`, both ways of spreading connections (`--spread rr`, one
/// acceptor handing connections over; `reuseport`, a listener per hub):
/// every keep-alive connection is answered, and SIGTERM ends the process
/// with status 0. (Which hub served what is `tests/net_server_hubs.rs`'s
/// business.)
#[test]
fn hello_http_on_two_hubs_serves_every_connection_either_way() {
    use std::io::{BufReader, Write};
    for spread in ["rr", "reuseport"] {
        let (mut server, addr) =
            start_server_with("hello_http", &["--threads", "2", "--spread", spread]);
        let mut open = Vec::new();
        for _ in 0..8 {
            let mut s = connect(&addr);
            let mut r = BufReader::new(s.try_clone().unwrap());
            for _ in 0..3 {
                s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let resp = read_response(&mut r, false).unwrap();
                assert_eq!((resp.0, resp.2.as_slice()), (200, &b"Hello, world!"[..]));
            }
            open.push(s);
        }
        drop(open);
        let pid = server.0.id() as libc::pid_t;
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = server.0.wait().unwrap();
        assert!(status.success(), "{spread}: {status:?}");
    }
}

#[test]
fn hello_http_split_requests_http10_and_bad_input() {
    use std::io::{BufReader, Write};
    let (_server, addr) = start_server("hello_http");
    let pause = || std::thread::sleep(Duration::from_millis(30));

    // A request split across several writes (and reads).
    let mut s = connect(&addr);
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for piece in ["GE", "T / HT", "TP/1.1\r\nHo", "st: t\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).unwrap();
        pause();
    }
    assert_eq!(read_response(&mut r, false).unwrap().2, b"Hello, world!");
    // A pipeline whose second request is cut in two, and a body split
    // from its head.
    s.write_all(b"GET / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nHo")
        .unwrap();
    pause();
    s.write_all(b"st: t\r\n\r\nPUT / HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    pause();
    s.write_all(b"defGET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 200);
    assert_eq!(read_response(&mut r, false).unwrap().0, 404);
    assert_eq!(read_response(&mut r, false).unwrap().0, 405);
    assert_eq!(read_response(&mut r, false).unwrap().0, 200);
    drop((s, r));

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 200);
    assert_closed(&mut r);
    // HTTP/1.0 with keep-alive stays open.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.0, 200);
        assert_eq!(header(&resp, "connection"), Some("keep-alive"));
    }

    // Garbage: 400, then closed (even with more bytes sent after it).
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"this is not http\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.0, 400);
    assert_eq!(header(&resp, "connection"), Some("close"));
    assert_closed(&mut r);
    // A request head over 8 KiB: 431, then closed.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "y".repeat(10_000));
    s.write_all(big.as_bytes()).unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 431);
    assert_closed(&mut r);
    // A bad Content-Length: 400, then closed.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 400);
    assert_closed(&mut r);

    // The server survived all of it.
    let mut s = connect(&addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().0, 200);
}

#[test]
fn event_example_wakes_every_waiter_after_the_timeout() {
    let (lines, took) = run("event", &[]);
    assert_eq!(
        lines,
        [
            "waiter 1 waits",
            "waiter 2 waits",
            "impatient waits at most 50 ms",
            "impatient gave up: timed out waiting",
            "setter sets the event after 100 ms",
            "waiter 1 saw the event",
            "waiter 2 saw the event",
            "is_set = true",
        ]
    );
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[test]
fn queues_example_orders_and_bounds() {
    let (lines, _) = run("queues", &[]);
    assert_eq!(
        lines,
        [
            "fifo: 1 2 3",
            "lifo: 3 2 1",
            "priority: (1, \"urgent\") (2, \"soon\") (3, \"later\")",
            "put 0",
            "put 1",
            "got 0",
            "put 2 (waited for room)",
            "got 1",
            "put 3 (waited for room)",
            "got 2",
            "got 3",
        ]
    );
}

#[test]
fn pool_example_maps_three_at_a_time() {
    let (lines, took) = run("pool", &[]);
    assert_eq!(lines[0], "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    assert_eq!(lines[1], "at most 3 ran at once");
    assert!(lines[2].starts_with("took "), "{lines:?}");
    // Four rounds of 50 ms, not ten.
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}"); // one by one: 500 ms
}
