//! Hostile and broken clients against the example servers, which are what
//! people copy (issue 24 §3): slowloris (SEC-3), bursts of connection
//! attempts (SEC-2), clients that send and never read, silent clients, and
//! malformed requests (FUZZ-2). Each server runs as a child process; a
//! legitimate client measures its latency while the attack goes on.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::example::{start_server_io, start_server_with};
use common::{fd_count, set_nofile, setsockopt_int, vm_rss_kib, Rng};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// The tests here run one at a time: each loads a server hard, and the
/// latency each measures must not be another test's load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// A legitimate keep-alive client: a `GET /` every 10 ms until `stop`;
/// returns each request's latency.
fn probe(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut lat = Vec::new();
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            c.write_all(GET).unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"Hello, world!") {
                let n = c.read(&mut buf).expect("the probe's reply");
                assert!(n > 0, "the server closed the probe's connection");
                got.extend_from_slice(&buf[..n]);
            }
            lat.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        lat
    })
}

fn p99(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty());
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Sets `SO_LINGER` to 0: `close` then resets the connection instead of
/// leaving it in `TIME_WAIT` (100,000 of those would use up the ports).
fn reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a live socket with a valid linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// SEC-3: 5,000 connections each trickle a request head (a byte a second:
/// a per-read timeout would never fire). Each is answered `408` when the
/// head timeout (2 s here) is up, within a second of it, and closed; the
/// server's descriptors go back to what they were; a legitimate client's
/// p99 stays under 50 ms throughout (see `SLOWLORIS_P99` for a debug
/// build).
#[test]
fn slowloris_heads_get_408_at_the_header_timeout_and_others_are_served() {
    let _serial = one_at_a_time();
    set_nofile(None);
    let (server, addr) = start_server_with("hello_http", &["--header-timeout", "2"]);
    let pid = server.0.id();
    let stop = Arc::new(AtomicBool::new(false));
    let legit = probe(addr.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(50)); // the probe is connected
    let fds0 = fd_count(pid);
    let head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ".repeat(4);
    let t0 = Instant::now();
    let mut slow: Vec<TcpStream> = (0..5000)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let connected = t0.elapsed();
    // Each sends its first byte now, then one a second until answered;
    // every 100 ms, each unanswered one is polled for its answer (often
    // enough to time the answers, rarely enough to leave the server and
    // the legitimate client the CPU).
    let mut first = Vec::with_capacity(slow.len());
    for s in &mut slow {
        s.write_all(&head[..1]).unwrap();
        first.push(Instant::now());
    }
    let mut answered: Vec<Option<(Duration, Vec<u8>)>> = vec![None; slow.len()];
    let mut sent = 1;
    let mut next_byte = Instant::now() + Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while answered.iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "slow connections still unanswered at 10 s"
        );
        let trickle = Instant::now() >= next_byte;
        for (i, s) in slow.iter_mut().enumerate() {
            if answered[i].is_some() {
                continue;
            }
            match s.read(&mut buf) {
                Ok(n) => answered[i] = Some((first[i].elapsed(), buf[..n].to_vec())),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if trickle {
                        // A connection the server is closing may refuse it.
                        let _ = s.write(&head[sent..=sent]);
                    }
                }
                Err(e) => answered[i] = Some((first[i].elapsed(), format!("{e}").into_bytes())),
            }
        }
        if trickle {
            sent += 1;
            next_byte += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answers: Vec<(Duration, Vec<u8>)> = answered.into_iter().map(Option::unwrap).collect();
    let timed_out = answers
        .iter()
        .filter(|(_, r)| r.starts_with(b"HTTP/1.1 408 "))
        .count();
    let earliest = answers.iter().map(|(t, _)| *t).min().unwrap();
    let latest = answers.iter().map(|(t, _)| *t).max().unwrap();
    drop(slow);
    // The server closes them all: its descriptors come back.
    let t = Instant::now();
    while fd_count(pid) > fds0 + 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "server fds {} (was {fds0})",
            fd_count(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let lat = legit.join().unwrap();
    let n = lat.len();
    let p = p99(lat);
    eprintln!(
        "slowloris: 5,000 connected in {connected:?}; {timed_out} answered 408, \
         {earliest:?} to {latest:?} after their first byte; server fds back to {}; \
         legitimate client: {n} requests, p99 {p:?}",
        fd_count(pid)
    );
    assert_eq!(timed_out, 5000, "every slow head gets its 408");
    assert!(
        earliest >= Duration::from_millis(1900),
        "answered early: {earliest:?}"
    );
    assert!(
        latest <= Duration::from_millis(3000),
        "answered late: {latest:?}"
    );
    assert!(p < SLOWLORIS_P99, "legitimate p99 {p:?}");
    drop(server);
}

/// The legitimate client's p99 bound while 5,000 slow heads time out at
/// once: the plan's 50 ms in a release build (measured 6 ms); twice that
/// in a debug build, whose server is 10-20 times slower at the 5,000
/// answers that come due together (measured 13-27 ms, 51 ms once while
/// another build ran beside it).
const SLOWLORIS_P99: Duration = if cfg!(debug_assertions) {
    Duration::from_millis(100)
} else {
    Duration::from_millis(50)
};

/// SEC-2: 100,000 connection attempts (20,000 in a debug build) in bursts
/// of 1,000 (each sends half a request and resets), against a bound of
/// 1,000 connections: the server never exits, its memory stays within what
/// the bound implies and stops growing, and a legitimate client's p99
/// stays under 50 ms.
/// Bursts of 1,000: 100 in the release run of the suite (about 10 s), 20
/// in the debug run (each costs about 0.4 s there).
const BURSTS: usize = if cfg!(debug_assertions) { 20 } else { 100 };

#[test]
fn bursts_of_100_000_connection_attempts_leave_the_server_serving() {
    let _serial = one_at_a_time();
    set_nofile(None);
    let (mut server, addr) = start_server_io(
        "hello_http",
        &["--max-connections", "1000", "--header-timeout", "1"],
        Stdio::null(),
    );
    let pid = server.0.id();
    let stop = Arc::new(AtomicBool::new(false));
    let legit = probe(addr.clone(), stop.clone());
    let mut rss = Vec::new(); // KiB, after every tenth of the bursts
    let t0 = Instant::now();
    let burst = |n: usize| {
        let conns: Vec<TcpStream> = (0..1000)
            .filter_map(|_| {
                let s = TcpStream::connect(&addr).ok()?;
                reset_on_close(&s);
                let _ = (&s).write(b"GET / HT");
                Some(s)
            })
            .collect();
        assert!(conns.len() >= 900, "burst {n}: {} connected", conns.len());
    };
    // Growth by 512 KiB or more in each of the last three tenths (gevent's
    // leak rule, with a floor for noise).
    let growing = |rss: &[u64]| rss.windows(2).rev().take(3).all(|w| w[1] >= w[0] + 512);
    let mut n = 0;
    // The planned ten tenths, then (see below) up to ten more while the
    // last three keep growing.
    while rss.len() < 10 || (rss.len() < 20 && growing(&rss)) {
        for _ in 0..BURSTS / 10 {
            burst(n);
            n += 1;
        }
        rss.push(vm_rss_kib(pid));
    }
    let took = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let lat = legit.join().unwrap();
    let p = p99(lat);
    eprintln!(
        "bursts: {n},000 attempts in {took:?}; server RSS every tenth (KiB) {rss:?}; \
         legitimate p99 {p:?}"
    );
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
    // The bound: 1,000 connections at once (a stack's used pages, an 8 KiB
    // head buffer and an output buffer each) and the stack cache (1,024
    // stacks of about 20 KiB): under 64 MiB; 96 MiB leaves room.
    let max = *rss.iter().max().unwrap();
    assert!(max <= 96 * 1024, "server RSS reached {max} KiB: {rss:?}");
    // A leak grows at every step; the caches fill in steps, when a burst
    // meets more connections at once than any before it, which can be late
    // in the run on a busy machine (one step of 7.5 MiB at the sixth tenth
    // was seen, and in a debug run a fill spread over the last four tenths,
    // 19.8 to 30.3 MiB, where other runs level off at 32 MiB). So the run
    // goes on, a tenth at a time up to ten more, while its last three tenths
    // grew: a fill levels off, a leak does not. It fails if they still grew
    // at the end, or if the second half of the planned run grew by more
    // than the stack cache can still take (1,024 stacks of about 20 KiB).
    assert!(
        !growing(&rss),
        "server memory grew at each of the last three tenths, {} tenths in: {rss:?}",
        rss.len()
    );
    let (mid, end) = (rss[4], rss[9]);
    assert!(
        end <= mid + 24 * 1024,
        "server memory grew by more than its caches hold in the second half: {rss:?}"
    );
    assert!(p < Duration::from_millis(50), "legitimate p99 {p:?}");
}

/// Writes `chunk` again and again without ever reading, until a write
/// fails; returns the error and how long it took.
fn write_never_read(addr: &str, chunk: &[u8]) -> (std::io::Error, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    // Small buffers, so that the server's writes block soon.
    setsockopt_int(c.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    loop {
        if let Err(e) = c.write_all(chunk) {
            return (e, t.elapsed());
        }
    }
}

/// A client that sends requests and never reads the answers: the server's
/// write times out (1 s here) and it closes the connection, which the
/// client sees as a reset, not as its own 20 s write timeout.
#[test]
fn a_client_that_never_reads_is_cut_off_by_the_write_timeout() {
    let _serial = one_at_a_time();
    for (name, chunk) in [
        ("hello_http", GET.repeat(64)),
        ("echo_server", vec![b'x'; 64 * 1024]),
    ] {
        let (server, addr) = start_server_with(name, &["--write-timeout", "1"]);
        let (e, took) = write_never_read(&addr, &chunk);
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{name}: {e:?} after {took:?}"
        );
        assert!(
            took < Duration::from_secs(15),
            "{name}: cut off after {took:?}"
        );
        // And it still serves others.
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut first = [0u8; 3];
        c.read_exact(&mut first).unwrap();
        assert_eq!(
            &first,
            if name == "echo_server" {
                b"GET"
            } else {
                b"HTT"
            }
        );
        drop(server);
    }
}

/// `echo_server --idle-timeout`: a silent connection is closed, one that
/// keeps talking is not.
#[test]
fn echo_server_closes_a_silent_connection_at_the_idle_timeout() {
    let _serial = one_at_a_time();
    let (_server, addr) = start_server_with("echo_server", &["--idle-timeout", "0.5"]);
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut talker = TcpStream::connect(&addr).unwrap();
    talker
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    for _ in 0..15 {
        talker.write_all(b"ping").unwrap();
        let mut reply = [0u8; 4];
        talker.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"PING");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450), "closed after {took:?}");
}

/// Requests that a fuzzer would send: broken request lines, bad versions,
/// header syntax errors, conflicting lengths, control bytes, huge fields.
fn corpus() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b"\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\n\n",
        b"GET http://example.com/ HTTP/1.1\r\n\r\n",
        b"\xff\xfe\xfd\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close, close, keep-alive\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n\r\n",
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    let mut long_header = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long_header.extend(std::iter::repeat_n(b'a', 9000));
    long_header.extend_from_slice(b"\r\n\r\n");
    v.push(long_header);
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    v.push(many);
    v
}

/// A mutation of `base`: bytes flipped, inserted, deleted or duplicated.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..rng.range(1, 8) {
        let at = rng.range(0, m.len());
        match rng.range(0, 3) {
            0 if at < m.len() => m[at] = rng.next_u64() as u8,
            1 => m.insert(at, rng.next_u64() as u8),
            2 if at < m.len() => {
                m.remove(at);
            }
            _ => {
                let end = rng.range(at, m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
        }
    }
    m
}

/// The statuses `hello_http` may answer with.
const STATUSES: [&[u8]; 7] = [b"200", b"400", b"404", b"405", b"408", b"431", b"501"];

/// FUZZ-2: the corpus above and 1,000 seeded mutations of valid and
/// malformed requests, each on a connection of its own (then shut for
/// writing): every one is answered with a known status or closed within
/// the read timeout, never a hang, and the server still answers a valid
/// request at the end. A failure names the case's bytes.
#[test]
fn hello_http_answers_or_closes_on_every_malformed_request() {
    let _serial = one_at_a_time();
    let (mut server, addr) =
        start_server_io("hello_http", &["--header-timeout", "2"], Stdio::null());
    let valid: [&[u8]; 3] = [
        GET,
        b"POST /x?y=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
    ];
    let mut cases = corpus();
    let malformed = cases.len();
    let mut rng = Rng(0x5eed_1e55);
    for i in 0..1000 {
        let base = if i % 2 == 0 {
            valid[i % valid.len()].to_vec()
        } else {
            cases[i % malformed].clone()
        };
        let m = mutate(&mut rng, &base);
        cases.push(m);
    }
    for (i, case) in cases.iter().enumerate() {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may close before reading it all: a failed write is an
        // answer too.
        let _ = c.write_all(case);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        match c.read_to_end(&mut reply) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "case {i} {:?}: no answer, no close: {e}",
                String::from_utf8_lossy(case)
            ),
        }
        let mut rest = &reply[..];
        while !rest.is_empty() {
            assert!(
                rest.starts_with(b"HTTP/1.1 ") && STATUSES.iter().any(|s| rest[9..].starts_with(s)),
                "case {i} {:?}: answered {:?}",
                String::from_utf8_lossy(case),
                String::from_utf8_lossy(&reply)
            );
            // The next response of a pipeline, if any.
            rest = match rest[1..].windows(9).position(|w| w == b"HTTP/1.1 ") {
                Some(p) => &rest[p + 1..],
                None => &[],
            };
        }
    }
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(GET).unwrap();
    let mut first = [0u8; 12];
    c.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
}
