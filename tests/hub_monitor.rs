//! The blocking monitor (a greenlet that holds its hub is reported once,
//! within the threshold plus 100 ms, with its name, spawn site and a
//! backtrace; a busy or idle hub that keeps switching is never reported),
//! and the run-info dump on a signal (in a child process: the signal is
//! process-wide).
//!
//! Each test watches its own thread's hub; the monitor thread and the
//! `SIGURG` handler are shared by the whole process, as in a real program.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verdant::monitor::{self, Blocked, Monitor};
use verdant::sync::{channel, Event, WaitError};
use verdant::{sleep, spawn, Builder};

/// Starts a monitor on this thread's hub that collects its reports.
fn collect(threshold: Duration) -> Arc<Mutex<Vec<Blocked>>> {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    Monitor::new(threshold)
        .report(move |b| r.lock().unwrap().push(b.clone()))
        .start()
        .unwrap();
    reports
}

/// Waits (without blocking the hub) until `n` reports came, or 5 s.
fn wait_for(reports: &Mutex<Vec<Blocked>>, n: usize) -> Vec<Blocked> {
    let t = Instant::now();
    while reports.lock().unwrap().len() < n && t.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(10));
    }
    reports.lock().unwrap().clone()
}

#[test]
fn a_blocking_sleep_is_reported_once_with_name_site_and_backtrace() {
    let threshold = Duration::from_millis(100);
    let reports = collect(threshold);
    let started = Arc::new(Mutex::new(None));
    let s = started.clone();
    let b = Builder::new().name("blocker");
    let f = move || {
        *s.lock().unwrap() = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(500));
    };
    let line = line!() + 1;
    let h = b.spawn(f).unwrap();
    h.join().unwrap();
    let seen = wait_for(&reports, 1);
    sleep(Duration::from_millis(100)); // no second report comes
    monitor::stop();
    assert_eq!(reports.lock().unwrap().len(), 1, "once per stall: {seen:?}");
    let r = &seen[0];
    assert_eq!(r.greenlet, "blocker");
    let site = r.spawned_at.expect("a child has a spawn site");
    assert_eq!((site.file(), site.line()), (file!(), line));
    let start = started.lock().unwrap().unwrap();
    let late = r.at - start;
    assert!(
        late >= threshold && late <= threshold + Duration::from_millis(100),
        "seen {late:?} after the block began"
    );
    eprintln!("{r}"); // shown with --nocapture: what a user sees
    let bt = r.backtrace.join("\n");
    assert!(bt.contains("sleep"), "{bt}");
    assert!(r.to_string().contains("'blocker'"), "{r}");
    assert_eq!(
        r.thread,
        "a_blocking_sleep_is_reported_once_with_name_site_and_backtrace"
    );
}

#[inline(never)]
fn spin_for(d: Duration) -> u64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < d {
        n = std::hint::black_box(n + 1);
    }
    n
}

#[test]
fn a_busy_loop_is_reported_with_its_function_in_the_backtrace() {
    let reports = collect(Duration::from_millis(100));
    let h = Builder::new()
        .name("spinner")
        .spawn(|| spin_for(Duration::from_millis(400)))
        .unwrap();
    h.join().unwrap();
    let seen = wait_for(&reports, 1);
    monitor::stop();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let bt = seen[0].backtrace.join("\n");
    assert!(bt.contains("spin_for"), "{bt}");
    assert_eq!(seen[0].greenlet, "spinner");
}

#[test]
fn main_holding_the_hub_is_reported_too() {
    let reports = collect(Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(250));
    let seen = wait_for(&reports, 1);
    monitor::stop();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].greenlet, "main");
    assert!(seen[0].spawned_at.is_none());
}

#[test]
fn a_hub_that_keeps_switching_or_idles_is_never_reported() {
    let reports = collect(Duration::from_millis(100));
    // Busy: ping-pong between greenlets for a second, each turn short.
    let (tx, rx) = channel::bounded::<u64>(0);
    let (back_tx, back_rx) = channel::bounded::<u64>(0);
    let ponger = spawn(move || {
        while let Ok(v) = rx.recv() {
            spin_for(Duration::from_micros(200));
            if back_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    let mut v = 0;
    while t.elapsed() < Duration::from_secs(1) {
        tx.send(v).unwrap();
        v = back_rx.recv().unwrap();
    }
    drop(tx);
    ponger.join().unwrap();
    // Idle: blocked in the poll for a while.
    let e = Event::new();
    assert!(e.wait_timeout(Duration::from_millis(500)).is_err());
    monitor::stop();
    assert!(v > 100);
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

#[test]
fn a_panicking_report_callback_does_not_end_later_reports() {
    let count = Arc::new(Mutex::new(0));
    let c = count.clone();
    Monitor::new(Duration::from_millis(50))
        .report(move |_| {
            let mut n = c.lock().unwrap();
            *n += 1;
            if *n == 1 {
                drop(n);
                panic!("a buggy report callback");
            }
        })
        .start()
        .unwrap();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(200)); // a stall
        let t = Instant::now();
        let before = *count.lock().unwrap();
        while *count.lock().unwrap() == before && t.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(10));
        }
    }
    monitor::stop();
    assert_eq!(*count.lock().unwrap(), 2);
}

#[test]
fn stop_ends_the_reports() {
    let reports = collect(Duration::from_millis(50));
    monitor::stop();
    std::thread::sleep(Duration::from_millis(250));
    sleep(Duration::from_millis(100));
    assert!(reports.lock().unwrap().is_empty());
}

#[test]
fn a_foreign_sigurg_still_reaches_nobody_harmfully() {
    // The monitor's handler is installed; a SIGURG it did not ask for (a
    // socket's out-of-band data) is passed on, and the default ignores it.
    let _reports = collect(Duration::from_secs(10));
    // SAFETY: raise has no preconditions; SIGURG is ignored by default.
    assert_eq!(unsafe { libc::raise(libc::SIGURG) }, 0);
    monitor::stop();
}

/// The child half of `sigusr1_dumps_the_run_info`: registers the dump,
/// parks a named greenlet, signals itself, lets the dump run.
#[test]
fn dump_child() {
    if std::env::var_os("VERDANT_DUMP_CHILD").is_none() {
        return;
    }
    monitor::dump_on_signal(libc::SIGUSR1).unwrap();
    let e = std::rc::Rc::new(Event::new());
    let e2 = e.clone();
    let _h = Builder::new()
        .name("parked-one")
        .spawn(move || e2.wait())
        .unwrap();
    sleep(Duration::from_millis(10));
    // SAFETY: kill with our own pid and a signal we handle.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
    sleep(Duration::from_millis(300));
    e.set();
    sleep(Duration::from_millis(10));
    // Registered for dumps, the hub still reports a deadlock (the dump's
    // handle does not keep it waiting for messages).
    let never = Event::new();
    assert!(matches!(never.wait(), Err(WaitError::LoopExit(_))));
    eprintln!("dump child: LoopExit seen");
}

#[test]
fn sigusr1_dumps_the_run_info() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dump_child", "--nocapture", "--test-threads=1"])
        .env("VERDANT_DUMP_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("verdant hub of thread 'dump_child'"), "{err}");
    assert!(err.contains("'parked-one' waiting for an event"), "{err}");
    assert!(err.contains("'run-info dump' running"), "{err}");
    assert!(err.contains("dump child: LoopExit seen"), "{err}");
}

#[test]
fn dump_on_signal_refuses_signals_it_cannot_use() {
    for sig in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGURG,
        0,
        9999,
    ] {
        let e = monitor::dump_on_signal(sig).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}");
    }
}

/// IO-13 at the plan's scale (CI runs it alone, in release: `cargo test
/// --release --test hub_monitor -- --ignored`): ten greenlets in a row each
/// block the hub with `std::thread::sleep(500 ms)`; each is reported once,
/// by name, within 200 ms of the block's start (a 100 ms threshold).
#[test]
#[ignore = "5 s; CI runs it on its own"]
fn io13_ten_stalls_in_a_row_each_reported_once_within_200_ms() {
    let threshold = Duration::from_millis(100);
    let reports = collect(threshold);
    let mut lateness = Vec::new();
    for i in 0..10 {
        let started = Arc::new(Mutex::new(None));
        let s = started.clone();
        let h = Builder::new()
            .name(format!("blocker-{i}"))
            .spawn(move || {
                *s.lock().unwrap() = Some(Instant::now());
                std::thread::sleep(Duration::from_millis(500));
            })
            .unwrap();
        h.join().unwrap();
        let seen = wait_for(&reports, i + 1);
        assert_eq!(seen.len(), i + 1, "stall {i}: {seen:?}");
        let r = &seen[i];
        assert_eq!(r.greenlet, format!("blocker-{i}"));
        let late = r.at - started.lock().unwrap().unwrap();
        assert!(
            late >= threshold && late <= Duration::from_millis(200),
            "stall {i} seen {late:?} after it began"
        );
        lateness.push(late);
    }
    sleep(Duration::from_millis(100)); // no extra report comes
    monitor::stop();
    assert_eq!(reports.lock().unwrap().len(), 10, "once per stall");
    eprintln!("io13: 10/10 stalls reported, {lateness:?} after they began");
}

/// IO-13's other half at the plan's scale (CI runs it alone, in release):
/// 10 s of a normal echo workload on one hub (100 clients, 64-byte round
/// trips through loopback TCP) under a 100 ms monitor: no report at all.
#[test]
#[ignore = "10 s; CI runs it on its own"]
fn io13_ten_seconds_of_echo_are_never_reported() {
    use std::io::{Read, Write};
    use verdant::net::{TcpListener, TcpStream};
    let reports = collect(Duration::from_millis(100));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..100 {
            let (mut s, _) = l.accept().unwrap();
            conns.push(spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }));
        }
        for c in conns {
            c.join().unwrap();
        }
    });
    let end = Instant::now() + Duration::from_secs(10);
    let clients: Vec<_> = (0..100)
        .map(|_| {
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut trips = 0u64;
                let mut buf = [0u8; 64];
                while Instant::now() < end {
                    c.write_all(&[7u8; 64]).unwrap();
                    c.read_exact(&mut buf).unwrap();
                    trips += 1;
                }
                trips
            })
        })
        .collect();
    let trips: u64 = clients.into_iter().map(|h| h.join().unwrap()).sum();
    server.join().unwrap();
    monitor::stop();
    eprintln!(
        "io13: {trips} echo round trips in 10 s, {} reports",
        reports.lock().unwrap().len()
    );
    assert!(
        trips > 10_000,
        "the workload did not run: {trips} round trips"
    );
    assert!(
        reports.lock().unwrap().is_empty(),
        "a normal workload was reported: {:?}",
        reports.lock().unwrap()
    );
}
