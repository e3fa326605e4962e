//! Reliability IO-7 `emfile_storm` (the reliability plan, table
//! 8.4; libuv's `uv__emfile_trick`): a server at `EMFILE` with 1,000
//! connections queued by another process. Pass: **no busy loop (server CPU
//! < 10% while at EMFILE); every queued connection accepted within 200 ms
//! of descriptors freeing, with no new arrivals.** (The baseline it guards
//! against, an edge-triggered server that waits for a readiness event,
//! sees 0 events and stalls.)
//!
//! The server is a child process (this test binary re-run for one case)
//! with `RLIMIT_NOFILE` = 256; this process is the client. The listener's
//! backlog is 1,024 (std's `bind` uses 128), set up through libc and handed
//! to `verdant::net::TcpListener` as an `OwnedFd`, so all 1,000 connections
//! complete their handshakes and wait in the queue.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{sleep, spawn};

mod common;
use common::{hog_descriptors, listener_with_backlog, set_nofile};

const CONNECTIONS: usize = 1000;
const CHILD_ENV: &str = "VERDANT_IO7_CHILD";
/// How long the server stays at EMFILE with the connections queued.
const AT_EMFILE: Duration = Duration::from_secs(2);

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the live struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The server: reports its port, waits for "go", goes to EMFILE, then
/// frees descriptors and accepts everything queued.
fn server() {
    set_nofile(Some(256));
    let l = listener_with_backlog(1024);
    println!("port {}", l.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "go", "the client connects, then says go");

    let hog = hog_descriptors();
    let accepted = Rc::new(Cell::new(0usize));
    let last = Rc::new(Cell::new(None::<Instant>));
    let (a, la) = (accepted.clone(), last.clone());
    let acceptor = spawn(move || {
        while a.get() < CONNECTIONS {
            let (s, _) = l.accept().expect("accept");
            drop(s); // one descriptor at a time is enough
            a.set(a.get() + 1);
            la.set(Some(Instant::now()));
        }
    });
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    sleep(AT_EMFILE);
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    assert_eq!(accepted.get(), 0, "accepted while no descriptor was free");
    let freed_at = Instant::now();
    drop(hog);
    acceptor.join().expect("acceptor");
    let all_in = last.get().unwrap() - freed_at;
    println!(
        "cpu_at_emfile_us {} wall_at_emfile_us {} all_accepted_after_us {}",
        cpu.as_micros(),
        wall.as_micros(),
        all_in.as_micros()
    );
    println!("io7-child-ok");
}

#[test]
fn io7_emfile_storm() {
    if std::env::var(CHILD_ENV).is_ok() {
        server();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "io7_emfile_storm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let port: u16 = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the server exited");
        // libtest may print "test io7_emfile_storm ... " on the same line.
        if let Some(i) = line.find("port ") {
            break line[i + 5..].trim().parse().unwrap();
        }
    };
    // The storm: 1,000 connections, all queued in the listener's backlog.
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    writeln!(stdin, "go").unwrap();
    let mut report = String::new();
    let mut ok = false;
    for line in out.lines() {
        let line = line.unwrap();
        if line.contains("cpu_at_emfile_us") {
            report = line[line.find("cpu_at_emfile_us").unwrap()..].to_string();
        }
        ok |= line.contains("io7-child-ok");
    }
    let status = child.wait().unwrap();
    drop(clients);
    assert!(status.success() && ok, "server failed: {status:?} {report}");
    let field = |name: &str| -> u64 {
        let mut it = report.split_whitespace();
        while let Some(k) = it.next() {
            if k == name {
                return it.next().unwrap().parse().unwrap();
            }
        }
        panic!("no {name} in {report:?}")
    };
    let cpu = Duration::from_micros(field("cpu_at_emfile_us"));
    let wall = Duration::from_micros(field("wall_at_emfile_us"));
    let all_in = Duration::from_micros(field("all_accepted_after_us"));
    eprintln!(
        "IO-7: at EMFILE for {wall:?} with {CONNECTIONS} queued: server CPU {cpu:?} ({:.2}%); \
         all accepted {all_in:?} after descriptors were freed",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
    assert!(
        cpu.as_secs_f64() < 0.10 * wall.as_secs_f64(),
        "busy loop at EMFILE: {cpu:?} of CPU in {wall:?}"
    );
    assert!(
        all_in <= Duration::from_millis(200),
        "the queued connections took {all_in:?} to be accepted once descriptors were free"
    );
}
