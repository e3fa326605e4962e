//! `monkey::patch_all()`: plain std code cooperates, and sees nothing else
//! change (blocking modes, `MSG_DONTWAIT`, errno, socket timeouts, close,
//! kills and timeouts, threads without a hub).
//!
//! Every test calls `patch_all()` (idempotent, process-wide); the
//! unpatched behaviour is shown inside `monkey::blocking`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use verdant::monkey;
use verdant::{joinall, sleep, spawn, with_timeout, Elapsed};

fn patched() {
    monkey::patch_all();
    // This thread gets its hub now, so `cooperates_here` below is true.
    spawn(|| ()).join().unwrap();
}

#[test]
fn std_sleep_cooperates_and_blocking_sections_do_not() {
    patched();
    assert!(monkey::patched().cooperates_here);
    let t = Instant::now();
    let hs: Vec<_> = (0..10)
        .map(|_| spawn(|| std::thread::sleep(Duration::from_millis(100))))
        .collect();
    joinall(&hs).unwrap();
    let together = t.elapsed();
    assert!(together < Duration::from_millis(190), "{together:?}");

    let t = Instant::now();
    let hs: Vec<_> = (0..3)
        .map(|_| spawn(|| monkey::blocking(|| std::thread::sleep(Duration::from_millis(40)))))
        .collect();
    joinall(&hs).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn libc_sleeps_cooperate() {
    patched();
    let t = Instant::now();
    let (hb, stop) = common::heartbeat();
    let a = spawn(|| {
        // SAFETY: plain libc calls.
        unsafe {
            libc::usleep(60_000);
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 60_000_000,
            };
            assert_eq!(libc::nanosleep(&ts, std::ptr::null_mut()), 0);
        }
    });
    let b = spawn(|| {
        // SAFETY: plain libc calls.
        unsafe {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
            let mut until = now;
            until.tv_nsec += 120_000_000;
            if until.tv_nsec >= 1_000_000_000 {
                until.tv_sec += 1;
                until.tv_nsec -= 1_000_000_000;
            }
            let r = libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &until,
                std::ptr::null_mut(),
            );
            assert_eq!(r, 0);
        }
    });
    joinall([&a, &b]).unwrap();
    stop.set(true);
    let ticks = hb.join().unwrap();
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(119) && e < Duration::from_millis(220),
        "{e:?}"
    );
    assert!(ticks >= 6, "heartbeat ticked {ticks} times in {e:?}");
}

#[test]
fn std_tcp_echo_cooperates() {
    patched();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..20 {
            let (mut c, _) = l.accept().unwrap();
            conns.push(spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    c.write_all(&buf[..n]).unwrap();
                }
            }));
        }
        joinall(&conns).unwrap();
    });
    let t = Instant::now();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                let msg = format!("hello {i}").repeat(1000);
                s.write_all(msg.as_bytes()).unwrap();
                let mut back = vec![0u8; msg.len()];
                s.read_exact(&mut back).unwrap();
                assert_eq!(back, msg.as_bytes());
            })
        })
        .collect();
    joinall(&clients).unwrap();
    server.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn the_program_keeps_its_blocking_mode() {
    patched();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = spawn(move || l.accept().unwrap().0);
    let c = TcpStream::connect(addr).unwrap();
    let s = h.join().unwrap();
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(
        fl & libc::O_NONBLOCK,
        0,
        "a blocking socket stays blocking underneath"
    );

    // O_NONBLOCK set by the program: EAGAIN, at once.
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        (&s).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // SAFETY: as above.
    let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(fl & libc::O_NONBLOCK, 0);
    s.set_nonblocking(false).unwrap();

    // MSG_DONTWAIT on a blocking socket: EAGAIN too.
    // SAFETY: a valid buffer.
    let r = unsafe {
        libc::recv(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            8,
            libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN)
    );

    // ioctl(FIONBIO) is the other way to say it.
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO takes a pointer to an int.
    assert_eq!(unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONBIO, &on) }, 0);
    assert_eq!(
        (&s).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let off: libc::c_int = 0;
    // SAFETY: as above.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONBIO, &off) };
    assert_eq!(r, 0);

    // Blocking again: the read waits (cooperatively) for the write.
    let w = spawn(move || {
        sleep(Duration::from_millis(30));
        (&c).write_all(b"late").unwrap();
        c
    });
    let t = Instant::now();
    let n = (&s).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
    assert!(t.elapsed() >= Duration::from_millis(25));
    drop(w.join().unwrap());
}

#[test]
fn errno_is_what_libc_sets() {
    patched();
    let r = spawn(|| {
        let mut buf = [0u8; 4];
        // SAFETY: a bad fd; libc reports it.
        let n = unsafe { libc::read(987_654, buf.as_mut_ptr().cast(), 4) };
        (n, std::io::Error::last_os_error().raw_os_error())
    })
    .join()
    .unwrap();
    assert_eq!(r, (-1, Some(libc::EBADF)));
    // A refused connection.
    let (_bound, addr) = common::refusing_addr();
    let e = spawn(move || TcpStream::connect(addr).unwrap_err())
        .join()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn so_rcvtimeo_is_honoured_while_others_run() {
    patched();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (hb, stop) = common::heartbeat();
    let g = spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        let _peer = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let t = Instant::now();
        let e = (&s).read(&mut [0u8; 8]).unwrap_err();
        (e.kind(), t.elapsed())
    });
    let (kind, waited) = g.join().unwrap();
    stop.set(true);
    let ticks = hb.join().unwrap();
    assert_eq!(kind, ErrorKind::WouldBlock); // EAGAIN, as the kernel's timeout gives
    assert!(
        waited >= Duration::from_millis(149) && waited < Duration::from_millis(400),
        "{waited:?}"
    );
    assert!(ticks >= 8, "heartbeat ticked {ticks} times");
}

/// A listening socket with a backlog of 0, never accepting: once its
/// queue is full, further connections hang in SYN_SENT.
fn full_listener() -> (std::os::fd::OwnedFd, std::net::SocketAddr) {
    use std::os::fd::FromRawFd;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // SAFETY: listen(2) on an open socket; the fd is moved into OwnedFd.
    unsafe {
        assert_eq!(libc::listen(l.as_raw_fd(), 0), 0);
        let fd = std::os::fd::IntoRawFd::into_raw_fd(l);
        (std::os::fd::OwnedFd::from_raw_fd(fd), addr)
    }
}

#[test]
fn connect_timeout_works_as_std_expects() {
    patched();
    let (_l, addr) = full_listener();
    let (hb, stop) = common::heartbeat();
    let t = Instant::now();
    let tries: Vec<_> = (0..6)
        .map(|_| {
            spawn(move || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(150))
                    .map(|_| ())
                    .map_err(|e| e.kind())
            })
        })
        .collect();
    let results: Vec<_> = tries.into_iter().map(|h| h.join().unwrap()).collect();
    stop.set(true);
    let took = t.elapsed();
    assert!(results.iter().any(|r| r.is_ok()), "{results:?}");
    assert!(results.contains(&Err(ErrorKind::TimedOut)), "{results:?}");
    // The timeouts ran side by side, and the hub kept running.
    assert!(took < Duration::from_millis(600), "{took:?}");
    assert!(hb.join().unwrap() >= 8);
}

#[test]
fn close_wakes_a_waiter_with_ebadf() {
    patched();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let reader = spawn(move || {
        let mut buf = [0u8; 4];
        // SAFETY: a valid buffer; the fd is closed meanwhile.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 4) };
        (n, std::io::Error::last_os_error().raw_os_error())
    });
    sleep(Duration::from_millis(20));
    assert!(!reader.is_finished());
    drop(a); // close(2)
    let (n, e) = with_timeout(Duration::from_secs(2), || reader.join().unwrap()).unwrap();
    assert_eq!((n, e), (-1, Some(libc::EBADF)));
}

#[test]
fn a_killed_reader_gets_ecanceled_then_exits() {
    patched();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen2 = seen.clone();
    let reader = spawn(move || {
        // No unwind can cross the read (a foreign frame): it fails instead.
        let e = (&a).read(&mut [0u8; 4]).unwrap_err();
        seen2.set(e.raw_os_error());
        // The kill is raised at the next verdant wait.
        sleep(Duration::from_secs(5));
        unreachable!("the kill ends the greenlet at its next wait");
    });
    sleep(Duration::from_millis(20));
    let t = Instant::now();
    reader.kill();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(seen.get(), Some(libc::ECANCELED));
    assert!(reader.join().unwrap_err().is_killed());
}

#[test]
fn with_timeout_cuts_a_patched_read_short() {
    patched();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let g = spawn(move || {
        let t = Instant::now();
        let r = with_timeout(Duration::from_millis(50), || (&a).read(&mut [0u8; 4]));
        (r.map(|_| ()), t.elapsed())
    });
    let (r, took) = g.join().unwrap();
    assert_eq!(r, Err(Elapsed));
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[test]
fn a_thread_without_a_hub_blocks_as_usual() {
    patched();
    let h = std::thread::spawn(|| {
        assert!(!monkey::patched().cooperates_here);
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let w = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.write_all(b"x").unwrap();
        });
        let mut buf = [0u8; 1];
        (&a).read_exact(&mut buf).unwrap();
        w.join().unwrap();
        buf[0]
    });
    assert_eq!(h.join().unwrap(), b'x');
}

#[test]
fn udp_and_poll_cooperate() {
    patched();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_addr = a.local_addr().unwrap();
    let (hb, stop) = common::heartbeat();
    let rx = spawn(move || {
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    let tx = spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        b.send_to(b"dgram", a_addr).unwrap();
        b.local_addr().unwrap()
    });
    let (got, from) = rx.join().unwrap();
    assert_eq!(got, b"dgram");
    assert_eq!(from, tx.join().unwrap());

    // poll(2) on a pipe-like pair, with a timeout that passes.
    let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = Instant::now();
    let n = spawn(move || {
        let mut p = libc::pollfd {
            fd: x.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 80) }
    })
    .join()
    .unwrap();
    assert_eq!(n, 0);
    assert!(t.elapsed() >= Duration::from_millis(79));
    stop.set(true);
    assert!(hb.join().unwrap() >= 10);
}

#[test]
fn shutdown_of_a_peer_ends_a_blocking_read() {
    patched();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let c = spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    let (mut s, _) = l.accept().unwrap();
    s.write_all(b"bye").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.join().unwrap(), b"bye");
}
