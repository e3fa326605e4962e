//! Integration tests of `verdant::net::UdpSocket` on IPv4 loopback, with
//! greenlets (`spawn`) where the originals use threads.
//!
//! Sources: rust-lang/rust `library/std/src/net/udp/tests.rs`, rewritten:
//! `socket_smoke_test_ip4`, `socket_name`, `socket_peer`,
//! `udp_clone_smoke`, `udp_clone_two_read`, `udp_clone_two_write`, `debug`,
//! `timeouts`, `test_read_timeout`, `test_read_with_timeout`,
//! `test_timeout_zero_duration`, `connect_send_recv`,
//! `connect_send_peek_recv`, `peek_from`, `ttl`. Not ported:
//! `set_nonblocking` (verdant sockets are always non-blocking underneath
//! and have no such setter), the IPv6 halves, `udp_double_bind` (SO_REUSEADDR
//! semantics, not verdant's). Plus verdant's own cases: close wakes a
//! blocked receiver, a second concurrent receiver is `ResourceBusy`, timers
//! do not leak, every receive's timeout expires with std's error (`EAGAIN`),
//! and many senders to one receiving greenlet.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::UdpSocket;
use verdant::{sleep, spawn, Hub};

/// A read timeout's expiry as std's on Linux: `EAGAIN`, kind `WouldBlock`.
#[track_caller]
fn assert_std_timeout(e: &std::io::Error) {
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e:?}");
}

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

common::seeded_tests! {
fn socket_smoke_test_ip4() {
    let (server, client) = (bind(), bind());
    let (server_addr, client_addr) = (addr(&server), addr(&client));
    let rx = spawn(move || {
        let mut buf = [0u8; 1];
        let (n, src) = server.recv_from(&mut buf).unwrap();
        (n, buf[0], src)
    });
    let tx = spawn(move || client.send_to(&[99], server_addr).unwrap());
    assert_eq!(tx.join().unwrap(), 1);
    assert_eq!(rx.join().unwrap(), (1, 99, client_addr));
}

fn socket_name_and_peer() {
    let s = bind();
    let local = addr(&s);
    assert!(local.ip().is_loopback() && local.port() != 0);
    assert_eq!(s.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    let other = bind();
    s.connect(addr(&other)).unwrap();
    assert_eq!(s.peer_addr().unwrap(), addr(&other));
}

fn udp_clone_smoke() {
    let (sock1, sock2) = (bind(), bind());
    let (addr1, addr2) = (addr(&sock1), addr(&sock2));
    let echo = spawn(move || {
        let mut buf = [0u8; 1];
        assert_eq!(sock2.recv_from(&mut buf).unwrap(), (1, addr1));
        assert_eq!(buf[0], 1);
        sock2.send_to(&[2], addr1).unwrap();
    });
    let sock3 = sock1.try_clone().unwrap();
    // One greenlet sends on the clone while this one receives.
    let sender = spawn(move || sock3.send_to(&[1], addr2).unwrap());
    let mut buf = [0u8; 1];
    assert_eq!(sock1.recv_from(&mut buf).unwrap(), (1, addr2));
    assert_eq!(buf[0], 2);
    sender.join().unwrap();
    echo.join().unwrap();
}

fn udp_clone_two_read() {
    let (sock1, sock2) = (bind(), bind());
    let addr1 = addr(&sock1);
    let sender = spawn(move || {
        sock2.send_to(&[1], addr1).unwrap();
        sock2.send_to(&[2], addr1).unwrap();
    });
    let sock3 = sock1.try_clone().unwrap();
    // Each handle has its own registration, so both may wait at once.
    let a = spawn(move || sock3.recv_from(&mut [0u8; 1]).unwrap().0);
    let b = spawn(move || sock1.recv_from(&mut [0u8; 1]).unwrap().0);
    sender.join().unwrap();
    assert_eq!(a.join().unwrap() + b.join().unwrap(), 2);
}

fn udp_clone_two_write() {
    let (sock1, sock2) = (bind(), bind());
    let addr2 = addr(&sock2);
    let sock3 = sock1.try_clone().unwrap();
    let a = spawn(move || sock3.send_to(&[1], addr2).unwrap());
    let b = spawn(move || sock1.send_to(&[2], addr2).unwrap());
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut buf = [0u8; 1];
        sock2.recv_from(&mut buf).unwrap();
        got.push(buf[0]);
    }
    a.join().unwrap();
    b.join().unwrap();
    got.sort();
    assert_eq!(got, [1, 2]);
}

fn debug_names_the_socket() {
    let s = bind();
    let d = format!("{s:?}");
    assert!(
        d.contains("UdpSocket") && d.contains(&addr(&s).to_string()),
        "{d}"
    );
    assert!(d.contains("peer: None"), "{d}");
    // A connected socket names its peer, as UnixDatagram's Debug does.
    let peer = bind();
    s.connect(addr(&peer)).unwrap();
    let d = format!("{s:?}");
    assert!(d.contains(&format!("peer: Some({})", addr(&peer))), "{d}");
}

fn timeouts_round_trip_and_zero_is_invalid() {
    let s = bind();
    let t = Duration::new(1, 0);
    assert_eq!(s.read_timeout().unwrap(), None);
    s.set_read_timeout(Some(t)).unwrap();
    assert_eq!(s.read_timeout().unwrap(), Some(t));
    s.set_write_timeout(Some(t)).unwrap();
    assert_eq!(s.write_timeout().unwrap(), Some(t));
    s.set_read_timeout(None).unwrap();
    assert_eq!(s.read_timeout().unwrap(), None);
    let e = s.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn read_timeout_expires_and_others_run_meanwhile() {
    let s = bind();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let ticks = Rc::new(std::cell::Cell::new(0));
    let t2 = ticks.clone();
    let ticker = spawn(move || {
        for _ in 0..5 {
            sleep(Duration::from_millis(5));
            t2.set(t2.get() + 1);
        }
    });
    let start = Instant::now();
    let err = s.recv_from(&mut [0u8; 8]).unwrap_err();
    let took = start.elapsed();
    assert_std_timeout(&err);
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(
        ticks.get(),
        5,
        "the hub ran other greenlets while it waited"
    );
    ticker.join().unwrap();
    assert_eq!(Hub::current().timer_count(), 0);
}

/// Every receive expires as std's UdpSocket does (blocking, SO_RCVTIMEO):
/// the same kind and OS error, connected or not.
fn every_receive_expires_as_std_does() {
    let t = Some(Duration::from_millis(20));
    let want = common::std_reference("udp recv_from", || {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_socket.set_read_timeout(t).unwrap();
        std_socket.recv_from(&mut [0u8; 8]).unwrap_err()
    });
    assert_std_timeout(&want);
    let s = bind();
    s.set_read_timeout(t).unwrap();
    let mut got = vec![
        s.recv_from(&mut [0u8; 8]).unwrap_err(),
        s.peek_from(&mut [0u8; 8]).unwrap_err(),
    ];
    let peer = bind();
    s.connect(addr(&peer)).unwrap();
    got.push(s.recv(&mut [0u8; 8]).unwrap_err());
    got.push(s.peek(&mut [0u8; 8]).unwrap_err());
    for e in &got {
        assert_eq!(e.kind(), want.kind(), "{e:?} vs std {want:?}");
        assert_eq!(e.raw_os_error(), want.raw_os_error(), "{e:?}");
    }
    assert_eq!(Hub::current().timer_count(), 0, "a timer was left behind");
}

fn read_with_timeout_gets_data_that_arrives_first() {
    let (a, b) = (bind(), bind());
    let b_addr = addr(&b);
    b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let tx = spawn(move || {
        sleep(Duration::from_millis(10));
        a.send_to(b"hello", b_addr).unwrap();
    });
    let mut buf = [0u8; 8];
    let (n, _) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    tx.join().unwrap();
    assert_eq!(
        Hub::current().timer_count(),
        0,
        "the expired wait's timer is gone"
    );
}

fn connect_send_recv_and_peek() {
    let s = bind();
    s.connect(addr(&s)).unwrap();
    s.send(b"hello world").unwrap();
    let mut buf = [0u8; 11];
    assert_eq!(s.peek(&mut buf).unwrap(), 11);
    assert_eq!(&buf, b"hello world");
    let mut buf = [0u8; 11];
    assert_eq!(s.recv(&mut buf).unwrap(), 11);
    assert_eq!(&buf, b"hello world");
}

fn peek_from_leaves_the_datagram() {
    let s = bind();
    let me = addr(&s);
    s.send_to(b"hello world", me).unwrap();
    for _ in 0..2 {
        let mut buf = [0u8; 11];
        assert_eq!(s.peek_from(&mut buf).unwrap(), (11, me));
        assert_eq!(&buf, b"hello world");
    }
    let mut buf = [0u8; 11];
    assert_eq!(s.recv_from(&mut buf).unwrap(), (11, me));
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert_std_timeout(&s.recv_from(&mut buf).unwrap_err()); // consumed once
}

fn ttl_round_trips() {
    let s = bind();
    s.set_ttl(100).unwrap();
    assert_eq!(s.ttl().unwrap(), 100);
}

fn close_wakes_a_blocked_receiver_at_once() {
    for _ in 0..100 {
        let s = Rc::new(bind());
        let s2 = s.clone();
        let rx = spawn(move || s2.recv_from(&mut [0u8; 4]).map(|_| ()));
        sleep(Duration::from_millis(1)); // it parks
        let start = Instant::now();
        s.close();
        let err = rx.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(
            s.send_to(b"x", addr(&s)).unwrap_err().kind(),
            ErrorKind::NotConnected
        );
    }
    assert_eq!(Hub::current().io_registrations(), 0);
}

fn second_concurrent_receiver_is_resource_busy() {
    let (a, b) = (bind(), Rc::new(bind()));
    let b_addr = addr(&b);
    let b1 = b.clone();
    let first = spawn(move || {
        let mut buf = [0u8; 8];
        let (n, _) = b1.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    sleep(Duration::from_millis(1)); // the first parks
    let err = b.recv_from(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResourceBusy);
    a.send_to(b"mine", b_addr).unwrap();
    assert_eq!(first.join().unwrap(), b"mine");
}

fn many_senders_one_receiver_no_datagram_lost() {
    const SENDERS: usize = 10;
    let each = common::scaled(200);
    let rx = bind();
    let rx_addr = addr(&rx);
    // A lost datagram fails the test instead of hanging it.
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            spawn(move || {
                let s = bind();
                for j in 0..each {
                    s.send_to(&[i as u8, (j % 256) as u8], rx_addr).unwrap();
                    if j % 8 == 7 {
                        // UDP drops what the receive buffer cannot hold:
                        // pause so at most 10 x 8 datagrams are in flight.
                        sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    let mut per_sender = [0usize; SENDERS];
    for _ in 0..SENDERS * each {
        let mut buf = [0u8; 2];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(n, 2);
        per_sender[buf[0] as usize] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    // Paced as above, every sender's datagrams all arrive: the receiver is
    // woken for each batch while the senders sleep.
    assert_eq!(per_sender, [each; SENDERS]);
}
}
