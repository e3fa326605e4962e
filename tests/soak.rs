//! SOAK-1: `echo_server` (a child process) holds 10,000 connections for
//! 60 s while this process echoes 16 bytes on each of them every second
//! (10,000 greenlets on one hub): 600,000 round trips, 0 bytes lost or
//! corrupted, 0 disconnects, the server's RSS grows by less than 5% from
//! t = 10 s to the end, and its descriptors are back to the baseline once
//! the connections close.
//!
//! Too long for the normal suite (it is `#[ignore]`d): `.ci/soak` runs it
//! (`cargo test --release --test soak -- --ignored --nocapture`).
//! `SOAK_SECS` and `SOAK_CONNS` scale it down for a quick try.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::TcpStream;
use verdant::{sleep, spawn};

mod common;
use common::example::start_server_io;
use common::{fd_count, set_nofile, vm_rss_kib};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 16 bytes connection `id` sends in round `round`.
fn message(id: u64, round: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    let text = format!("c{id:06}r{round:07}x");
    m.copy_from_slice(&text.as_bytes()[..16]);
    m
}

#[test]
#[ignore = "70 s: run by .ci/soak"]
fn soak_10k_connections_echo_every_second_for_60s() {
    let secs = env("SOAK_SECS", 60);
    let conns = env("SOAK_CONNS", 10_000);
    set_nofile(None);
    let (mut server, addr) = start_server_io(
        "echo_server",
        &["--max-connections", "20000"],
        std::process::Stdio::inherit(),
    );
    let pid = server.0.id();
    sleep(Duration::from_millis(100));
    let fds0 = fd_count(pid);
    let t0 = Instant::now();
    let streams: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(addr.as_str()).expect("connect"))
        .collect();
    eprintln!("soak: {conns} connected in {:?}", t0.elapsed());

    let trips = Rc::new(Cell::new(0u64));
    let bad = Rc::new(Cell::new(0u64));
    let lost = Rc::new(Cell::new(0u64));
    let start = Instant::now() + Duration::from_millis(200);
    let hs: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(id, mut s)| {
            let (trips, bad, lost) = (trips.clone(), bad.clone(), lost.clone());
            let id = id as u64;
            spawn(move || {
                // Spread over the second: connection `id` speaks at its
                // own offset in each.
                let offset = Duration::from_micros(id * 1_000_000 / conns.max(1));
                for round in 0..secs {
                    let at = start + Duration::from_secs(round) + offset;
                    sleep(at.saturating_duration_since(Instant::now()));
                    let m = message(id, round);
                    let mut reply = [0u8; 16];
                    let ok = s.write_all(&m).and_then(|()| s.read_exact(&mut reply));
                    if ok.is_err() {
                        lost.set(lost.get() + 1);
                        return;
                    }
                    if reply[..] != m.to_ascii_uppercase()[..] {
                        bad.set(bad.get() + 1);
                    }
                    trips.set(trips.get() + 1);
                }
            })
        })
        .collect();
    // The server's memory at t = 10 s and at the end.
    sleep(
        (start + Duration::from_secs(10.min(secs / 2))).saturating_duration_since(Instant::now()),
    );
    let rss_early = vm_rss_kib(pid);
    for h in &hs {
        h.wait().unwrap();
    }
    let rss_end = vm_rss_kib(pid);
    let took = start.elapsed();
    drop(hs);
    let t = Instant::now();
    while fd_count(pid) > fds0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "server fds {} (was {fds0})",
            fd_count(pid)
        );
        sleep(Duration::from_millis(50));
    }
    eprintln!(
        "soak: {} round trips in {took:?}, {} wrong, {} connections lost; \
         server RSS {rss_early} KiB at t = 10 s (or half way), {rss_end} KiB at the end; fds back to {}",
        trips.get(),
        bad.get(),
        lost.get(),
        fd_count(pid)
    );
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
    assert_eq!(lost.get(), 0, "disconnects");
    assert_eq!(bad.get(), 0, "corrupted echoes");
    assert_eq!(trips.get(), conns * secs, "round trips");
    assert!(
        rss_end * 100 < rss_early * 105,
        "server RSS grew by 5% or more: {rss_early} -> {rss_end} KiB"
    );
}
