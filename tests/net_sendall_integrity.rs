//! Reliability IO-2 `sendall_integrity` (the reliability plan,
//! table 8.4; gevent's `_sendall`): many concurrent sessions, each sending
//! 16 MiB with `write_all` in random chunk sizes to a deliberately slow
//! reader (small `SO_RCVBUF`, random read sizes, random sleeps). Pass:
//! **0 bytes lost or reordered (SHA-256 match on every session)**; partial
//! writes observed (> 0: proves the path ran); a `write_all` deadline
//! honoured within +20 ms.
//!
//! * `io2_sendall_integrity_scaled`: 32 sessions of 2 MiB, in every run.
//! * `io2_sendall_integrity_full`: the table's 1,000 sessions of 16 MiB
//!   (16 GiB through loopback, hashed on both ends). Ignored by default;
//!   `.ci/run` runs it in release:
//!   `cargo test --release --test net_sendall_integrity -- --ignored --nocapture`.
//!
//! A partial write is observed from outside: the reader sees bytes of a
//! chunk whose `write_all` has not returned yet. One hub thread runs both
//! ends, so while the reader runs the writer is parked; if part of its
//! chunk already arrived, `write_all` wrote part of it and waited.
//!
//! While the sessions run, a probe greenlet repeatedly gives a `write_all`
//! to a peer that never reads a 50 ms write timeout and records how late
//! its expiry (std's `EAGAIN`, kind `WouldBlock`) came back (the "+20 ms"
//! figure, under the load).
//!
//! The bound is on the runtime's lateness, not the hypervisor's: on a
//! shared virtual machine the host takes CPUs away ("steal" time, in
//! `/proc/stat`; 9% of this project's 2-core VM over a run, with seconds at
//! 27%, measured 2026-12-02), and a probe whose CPU was taken away for 30 ms
//! comes back 30 ms late whatever the runtime does. Each probe's lateness
//! is therefore reduced by the steal the busiest CPU saw during it (at the
//! kernel's tick granularity); both figures are printed.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use verdant::net::{PartialWrite, TcpListener, TcpStream};
use verdant::{sleep, spawn};

mod common;
use common::{listener_with_backlog, set_nofile, setsockopt_int, Rng};

/// What one session's two ends saw.
struct Session {
    sent: [u8; 32],
    received: [u8; 32],
    bytes: u64,
}

#[derive(Default)]
struct Stats {
    partial_writes_seen: Cell<u64>,
    probe_worst_late: Cell<Duration>,
    /// The worst lateness less the CPU time the hypervisor stole meanwhile.
    probe_worst_late_own: Cell<Duration>,
    probe_runs: Cell<u32>,
}

/// The chunk a writer is inside `write_all` with: stream offsets
/// `start..end`, or `None` between calls.
type InFlight = Rc<Cell<Option<(u64, u64)>>>;

fn run(sessions: usize, len: u64, max_chunk: usize) {
    set_nofile(None); // 2 descriptors per session
                      // 1,000 connections at once: std's backlog of 128 would drop SYNs.
    let l = listener_with_backlog(2048);
    // Inherited by every accepted socket: the slow readers' small window.
    setsockopt_int(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 16 * 1024);
    let addr = l.local_addr().unwrap();
    let stats = Rc::new(Stats::default());
    let done = Rc::new(Cell::new(false));
    let probe = spawn_probe(stats.clone(), done.clone());
    let t = Instant::now();

    let acceptor = spawn(move || {
        (0..sessions)
            .map(|_| l.accept().expect("accept").0)
            .collect::<Vec<_>>()
    });
    let clients: Vec<_> = (0..sessions)
        .map(|_| spawn(move || TcpStream::connect(addr).expect("connect")))
        .collect();
    let clients: Vec<TcpStream> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    for c in &clients {
        // A small, fixed send buffer (no autotuning): the writers' chunks
        // (up to 256 KiB) then go out in many partial writes.
        setsockopt_int(c.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 16 * 1024);
    }
    let servers = acceptor.join().unwrap();
    // Accept order may differ from connect order: pair by address.
    let mut servers: std::collections::HashMap<_, _> = servers
        .into_iter()
        .map(|s| (s.peer_addr().unwrap(), s))
        .collect();

    let mut handles = Vec::with_capacity(sessions);
    for (k, c) in clients.into_iter().enumerate() {
        let s = servers
            .remove(&c.local_addr().unwrap())
            .expect("its server end");
        let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((k as u64 + 1) << 17) | 1;
        let in_flight: InFlight = Rc::new(Cell::new(None));
        let writer = spawn_writer(c, seed, len, max_chunk, in_flight.clone());
        let reader = spawn_reader(s, seed, in_flight, stats.clone());
        handles.push((writer, reader));
    }
    let mut lost = Vec::new();
    for (k, (writer, reader)) in handles.into_iter().enumerate() {
        let sent = writer.join().expect("writer");
        let (received, bytes) = reader.join().expect("reader");
        let s = Session {
            sent,
            received,
            bytes,
        };
        if s.bytes != len || s.sent != s.received {
            lost.push((k, s.bytes));
        }
    }
    done.set(true);
    probe.join().unwrap();
    let took = t.elapsed();
    eprintln!(
        "IO-2: {sessions} sessions x {} KiB in {took:?} ({:.0} MiB/s); {} partial writes seen; \
         write_all deadline probe: {} runs, worst {:?} late ({:?} less the CPU time stolen by the host)",
        len >> 10,
        (sessions as f64 * len as f64) / (1 << 20) as f64 / took.as_secs_f64(),
        stats.partial_writes_seen.get(),
        stats.probe_runs.get(),
        stats.probe_worst_late.get(),
        stats.probe_worst_late_own.get(),
    );
    assert!(
        lost.is_empty(),
        "{} of {sessions} sessions lost or reordered bytes (session, bytes received): {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        stats.partial_writes_seen.get() > 0,
        "no partial write seen: this run did not exercise write_all's partial path"
    );
    assert!(stats.probe_runs.get() > 0, "the deadline probe never ran");
    assert!(
        stats.probe_worst_late_own.get() <= Duration::from_millis(20),
        "a write_all deadline came back {:?} late, {:?} of it not stolen by the host (bound: 20 ms)",
        stats.probe_worst_late.get(),
        stats.probe_worst_late_own.get()
    );
}

fn spawn_writer(
    mut c: TcpStream,
    seed: u64,
    len: u64,
    max_chunk: usize,
    in_flight: InFlight,
) -> verdant::JoinHandle<[u8; 32]> {
    spawn(move || {
        let mut data = Rng(seed);
        let mut sizes = Rng(seed.rotate_left(7) | 1);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; max_chunk];
        let mut pos = 0u64;
        while pos < len {
            let n = (sizes.range(1, max_chunk) as u64).min(len - pos) as usize;
            data.fill(&mut buf[..n]);
            hash.update(&buf[..n]);
            in_flight.set(Some((pos, pos + n as u64)));
            c.write_all(&buf[..n]).expect("write_all");
            in_flight.set(None);
            pos += n as u64;
        }
        hash.finalize().into()
    })
}

fn spawn_reader(
    mut s: TcpStream,
    seed: u64,
    in_flight: InFlight,
    stats: Rc<Stats>,
) -> verdant::JoinHandle<([u8; 32], u64)> {
    spawn(move || {
        let mut rng = Rng(seed.rotate_left(13) | 1);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let want = rng.range(1, buf.len());
            let n = s.read(&mut buf[..want]).expect("read");
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n as u64;
            if let Some((start, _end)) = in_flight.get() {
                if total > start {
                    // Part of a chunk whose write_all has not returned.
                    stats
                        .partial_writes_seen
                        .set(stats.partial_writes_seen.get() + 1);
                }
            }
            // Slow: now and then sleep a little (1 read in 32, 0-2 ms).
            if rng.next_u64().is_multiple_of(32) {
                sleep(Duration::from_micros(rng.next_u64() % 2000));
            }
        }
        (hash.finalize().into(), total)
    })
}

/// Until `done`: a `write_all` of 8 MiB to a peer that never reads, with
/// a 50 ms write timeout; records the worst lateness of its expiry.
fn spawn_probe(stats: Rc<Stats>, done: Rc<Cell<bool>>) -> verdant::JoinHandle<()> {
    spawn(move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_silent, _) = l.accept().unwrap();
        let timeout = Duration::from_millis(50);
        c.set_write_timeout(Some(timeout)).unwrap();
        let big = vec![0u8; 8 << 20];
        // First fill the socket so every probe write waits from its start.
        let _ = c.write_all(&big);
        while !done.get() {
            let stolen_before = steal_ticks();
            let t = Instant::now();
            let e = c.write_all(&big).expect_err("nobody reads");
            let took = t.elapsed();
            let stolen = stolen_since(&stolen_before);
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
            assert!(took >= timeout, "the deadline fired early: {took:?}");
            // The kernel may still take a little (autotuning grows the
            // buffers); whatever went out is reported, and is below 8 MiB.
            if let Some(p) = PartialWrite::of(&e) {
                assert!(p.written < big.len());
            }
            let late = took - timeout;
            if late > stats.probe_worst_late.get() {
                stats.probe_worst_late.set(late);
            }
            let own = late.saturating_sub(stolen);
            if own > stats.probe_worst_late_own.get() {
                stats.probe_worst_late_own.set(own);
            }
            stats.probe_runs.set(stats.probe_runs.get() + 1);
            sleep(Duration::from_millis(20));
        }
    })
}

/// Each CPU's steal time so far (`/proc/stat`, in clock ticks); empty
/// where it cannot be read (then nothing counts as stolen).
fn steal_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            l.split_whitespace()
                .nth(8)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// The most CPU time the host stole from any one CPU since `before`.
fn stolen_since(before: &[u64]) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = steal_ticks()
        .iter()
        .zip(before)
        .map(|(now, then)| now.saturating_sub(*then))
        .max()
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn the_steal_reader_sees_every_cpu() {
    let before = steal_ticks();
    assert!(!before.is_empty(), "no per-CPU line in /proc/stat");
    assert!(stolen_since(&before) < Duration::from_secs(1));
}

#[test]
fn io2_sendall_integrity_scaled() {
    run(32, 2 << 20, 256 * 1024);
}

#[test]
#[ignore = "full scale (16 GiB through loopback): .ci/run runs it in release with --ignored"]
fn io2_sendall_integrity_full() {
    run(1000, 16 << 20, 256 * 1024);
}
