//! PAN-4 for the sockets: a greenlet killed, or whose `with_timeout` scope
//! expires, while it is parked in `accept`, `connect`, a `write_all` part
//! way through, a UDP receive or a Unix stream or datagram receive. Each
//! time: the greenlet unwinds (its destructors run), `join` says `Killed`
//! (or the scope gives `Elapsed`), no waiter is left on the socket (another
//! greenlet then waits on the same direction and is served, where a
//! leftover waiter would make it `ResourceBusy`), and once the socket is
//! dropped its registration is gone (`Hub::io_registrations` back to the
//! baseline).

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use verdant::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};
use verdant::{spawn, with_timeout, yield_now, Hub, JoinHandle};

mod common;

/// Sets its flag when dropped: the killed greenlet's destructors ran.
struct Dropped(Rc<Cell<bool>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Spawns `park` (which waits on a socket) holding a `Dropped`, lets it
/// park, kills it, and checks it unwound.
fn kill_parked<T: 'static>(park: impl FnOnce() -> T + 'static) {
    let dropped = Rc::new(Cell::new(false));
    let d = Dropped(dropped.clone());
    let h: JoinHandle<T> = spawn(move || {
        let _d = d;
        park()
    });
    yield_now();
    yield_now();
    assert!(!h.is_finished(), "it should be parked");
    h.kill();
    assert!(dropped.get(), "its destructors ran");
    match h.join() {
        Err(e) => assert!(e.is_killed(), "{e:?}"),
        Ok(_) => panic!("it finished instead of being killed"),
    }
}

/// Runs `park` in a 30 ms `with_timeout` scope: it must end by `Elapsed`.
fn time_out_parked<T>(park: impl FnOnce() -> T) {
    let r = with_timeout(Duration::from_millis(30), park);
    assert!(r.is_err(), "the scope should have expired");
}

#[test]
fn accept_killed_or_timed_out_leaves_no_waiter_and_no_registration() {
    let base = Hub::current().io_registrations();
    let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = l.local_addr().unwrap();
    let l2 = l.clone();
    kill_parked(move || l2.accept().map(|_| ()));
    time_out_parked(|| l.accept());
    // The next accept is served, not `ResourceBusy`.
    let _c = std::net::TcpStream::connect(addr).unwrap();
    let (conn, _) = l.accept().unwrap();
    drop(conn);
    drop(l);
    assert_eq!(Hub::current().io_registrations(), base);
}

#[test]
fn connect_killed_or_timed_out_closes_its_socket() {
    let hub = Hub::current();
    // A listen(1) backlog with two connections queued: a third connect's
    // SYNs are dropped, so it waits.
    let l = common::listener_with_backlog(1);
    let addr = l.local_addr().unwrap();
    let mut queued = Vec::new();
    let base = hub.io_registrations();
    loop {
        match with_timeout(Duration::from_millis(100), || TcpStream::connect(addr)) {
            Ok(Ok(s)) => queued.push(s),
            Ok(Err(e)) => panic!("connect failed: {e}"),
            Err(_) => break, // this one waited: the backlog is full
        }
        assert!(queued.len() < 16, "the backlog never filled");
    }
    let registered = base + queued.len();
    assert_eq!(
        hub.io_registrations(),
        registered,
        "the timed-out connect left its socket"
    );
    kill_parked(move || TcpStream::connect(addr).map(|_| ()));
    assert_eq!(
        hub.io_registrations(),
        registered,
        "the killed connect left its socket"
    );
    time_out_parked(|| TcpStream::connect(addr));
    assert_eq!(hub.io_registrations(), registered);
    drop(queued);
    drop(l);
}

/// A stream pair whose reading end does not read: a `write_all` of 8 MiB
/// fills the buffers and waits part way through.
fn stuck_pair() -> (Rc<TcpStream>, TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let w = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (r, _) = l.accept().unwrap();
    common::setsockopt_int(w.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 16 * 1024);
    common::setsockopt_int(r.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 16 * 1024);
    // The reader is cooperative too: it waits in the hub, so the writers
    // run while it waits.
    (Rc::new(w), TcpStream::from_std(r).unwrap())
}

#[test]
fn write_all_killed_part_way_leaves_the_stream_usable() {
    let base = Hub::current().io_registrations();
    let (w, mut r) = stuck_pair();
    let big = vec![b'a'; 8 << 20];
    let w2 = w.clone();
    let b2 = big.clone();
    kill_parked(move || (&*w2).write_all(&b2));
    // Part of it went out; the rest never will. Another greenlet writing
    // on the same stream is not refused as a second writer.
    let w3 = w.clone();
    let tail = spawn(move || (&*w3).write_all(b"END"));
    yield_now();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while !got.ends_with(b"END") {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    tail.join().unwrap().unwrap();
    let sent = got.len() - 3;
    assert!(
        sent > 0 && sent < big.len(),
        "{sent} bytes went out before the kill"
    );
    assert!(got[..sent].iter().all(|&b| b == b'a'));
    // The same with a scope's expiry.
    let w4 = w.clone();
    time_out_parked(move || (&*w4).write_all(&big));
    drop(w);
    drop(r);
    assert_eq!(Hub::current().io_registrations(), base);
}

#[test]
fn udp_receive_killed_or_timed_out_leaves_no_waiter() {
    let base = Hub::current().io_registrations();
    let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let s2 = s.clone();
    kill_parked(move || {
        let mut b = [0u8; 8];
        s2.recv_from(&mut b).map(|_| ())
    });
    time_out_parked(|| {
        let mut b = [0u8; 8];
        s.recv_from(&mut b)
    });
    // The next receive is served.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"hi", s.local_addr().unwrap()).unwrap();
    let mut b = [0u8; 8];
    let (n, _) = s.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"hi");
    drop(s);
    assert_eq!(Hub::current().io_registrations(), base);
}

#[test]
fn unix_receives_killed_or_timed_out_leave_no_waiter() {
    let base = Hub::current().io_registrations();
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let a2 = a.clone();
    kill_parked(move || {
        let mut buf = [0u8; 8];
        (&*a2).read(&mut buf)
    });
    time_out_parked(|| {
        let mut buf = [0u8; 8];
        (&*a).read(&mut buf)
    });
    b.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    (&*a).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");

    let (d1, d2) = UnixDatagram::pair().unwrap();
    let d1 = Rc::new(d1);
    let d = d1.clone();
    kill_parked(move || {
        let mut buf = [0u8; 8];
        d.recv(&mut buf)
    });
    time_out_parked(|| {
        let mut buf = [0u8; 8];
        d1.recv(&mut buf)
    });
    d2.send(b"hi").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(d1.recv(&mut buf).unwrap(), 2);
    drop((a, b, d1, d2));
    assert_eq!(Hub::current().io_registrations(), base);
}

#[test]
fn a_second_waiter_is_refused_while_the_first_waits_and_served_after_its_kill() {
    // The control for "no waiter left": while one greenlet waits, a
    // second on the same direction is refused; after the first's kill it
    // is not.
    let s = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let s2 = s.clone();
    let first = spawn(move || {
        let mut b = [0u8; 8];
        s2.recv_from(&mut b).map(|_| ())
    });
    yield_now();
    let mut b = [0u8; 8];
    let e = s.recv_from(&mut b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceBusy);
    first.kill();
    time_out_parked(|| s.recv_from(&mut b)); // waits, not refused
}
