//! A port of rust-lang/rust's `library/std/src/net/tcp/tests.rs` and
//! `library/std/src/net/udp/tests.rs`, run against plain `std::net` types
//! with greenlets after `verdant::monkey::patch_all()`.
//!
//! Everything runs on the test's one OS thread: `thread::spawn` became
//! `verdant::spawn`, `mpsc::channel` became `verdant::sync::channel`
//! (unbounded, like std's), and `thread::yield_now` became
//! `verdant::yield_now`. Where the originals' calls block until another
//! thread acts (an `accept` before the peer connects, a `read` before the
//! peer writes, a `recv` before a send), the same plain std calls must now
//! park only their greenlet (or the test's main code) while the hub runs
//! the others. The originals detach their threads; here every greenlet is
//! joined at the end, so an assertion that fails inside one fails the test.
//!
//! Changes from the originals, all forced by running outside std:
//!
//! * `next_test_ip4()` / `next_test_ip6()` (fixed test ports) became
//!   binding to port 0 and reading `local_addr()`; `bind_error` binds
//!   `1.1.1.1:0` instead of `1.1.1.1:9999` and `connect_error` connects to
//!   `0.0.0.0:0` (port 0: never listened on) instead of `0.0.0.0:1`.
//! * The IPv6 half of `each_ip` runs only when `[::1]` can be bound here;
//!   otherwise it is skipped, with a line on stderr.
//! * `ErrorKind::Uncategorized` (unstable) is matched by its `Debug` name.
//! * std's `compare_ignore_zoneid` and the UDP `debug` test's
//!   `udpsock.0.socket().as_raw()` are rewritten with public API
//!   (`AsRawFd`), and UDP's `ZeroedMmap` with `libc::mmap`.
//! * A few bare `write` calls whose count the original ignored assert the
//!   count (clippy's `unused_io_amount`); they write one or four bytes to a
//!   fresh loopback connection.
//! * `close_read_wakes_up` yields once before its `shutdown`, and checks
//!   the reader is still waiting: a greenlet runs only when the code that
//!   spawned it waits, and the test is about waking a parked reader.
//! * `tcp_clone_two_write` closes its accepted stream before joining the
//!   client, whose second read may wait for EOF (the original never joins).
//!
//! Not ported: TCP `linger` (`TcpStream::set_linger` is unstable, feature
//! `tcp_linger`) and UDP `hop_limit` (`UdpSocket::set_hop_limit_v6` is
//! unstable, feature `ipv6_hop_limit`, and not in this toolchain's std).
//! The older revision's UDP `socket_name` and `socket_peer` are covered by
//! `socket_and_peer_name`, which replaced them upstream.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};

use verdant::JoinHandle;

macro_rules! t {
    ($e:expr) => {
        match $e {
            Ok(t) => t,
            Err(e) => panic!("received error for `{}`: {}", stringify!($e), e),
        }
    };
}

/// Patching on, and this thread given its hub, so that blocking calls made
/// by the test's own code cooperate as well as its greenlets'.
fn patched() {
    verdant::monkey::patch_all();
    verdant::spawn(|| ()).join().unwrap();
    assert!(verdant::monkey::patched().cooperates_here);
}

/// Joins a greenlet, failing the test with its panic if it panicked.
#[track_caller]
fn join<T: 'static>(h: JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Whether `[::1]` can be bound here (the IPv6 halves of `each_ip`).
fn ipv6_available() -> bool {
    let ok = TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("IPv6 loopback unavailable: skipping the IPv6 half");
    }
    ok
}

/// The loopback addresses to bind, port 0: the kernel picks the port.
fn loopbacks() -> Vec<SocketAddr> {
    let mut v = vec!["127.0.0.1:0".parse().unwrap()];
    if ipv6_available() {
        v.push("[::1]:0".parse().unwrap());
    }
    v
}

/// Whether an error kind is the unstable `ErrorKind::Uncategorized`.
fn is_uncategorized(kind: ErrorKind) -> bool {
    format!("{kind:?}") == "Uncategorized"
}

mod tcp {
    use std::fmt;
    use std::io::prelude::*;
    use std::io::{ErrorKind, IoSlice, IoSliceMut};
    use std::net::*;
    use std::time::{Duration, Instant};

    use verdant::sync::channel;
    use verdant::{spawn, yield_now, JoinHandle};

    use super::{is_uncategorized, join, loopbacks, patched};

    /// std's `each_ip`, with port 0: `f` gets an address to bind, and reads
    /// the real one back with `local_addr()`.
    fn each_ip(f: &mut dyn FnMut(SocketAddr)) {
        patched();
        for addr in loopbacks() {
            f(addr);
        }
    }

    /// `127.0.0.1:0`, std's `next_test_ip4()` with the kernel's port.
    fn ip4() -> SocketAddr {
        patched();
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn bind_error() {
        patched();
        match TcpListener::bind("1.1.1.1:0") {
            Ok(..) => panic!(),
            Err(e) => assert_eq!(e.kind(), ErrorKind::AddrNotAvailable),
        }
    }

    #[test]
    fn connect_error() {
        patched();
        match TcpStream::connect("0.0.0.0:0") {
            Ok(..) => panic!(),
            Err(e) => assert!(
                e.kind() == ErrorKind::ConnectionRefused
                    || e.kind() == ErrorKind::InvalidInput
                    || e.kind() == ErrorKind::AddrInUse
                    || e.kind() == ErrorKind::AddrNotAvailable,
                "bad error: {} {:?}",
                e,
                e.kind()
            ),
        }
    }

    #[test]
    fn listen_localhost() {
        let listener = t!(TcpListener::bind(ip4()));
        let socket_addr = t!(listener.local_addr());

        let t = spawn(move || {
            let mut stream = t!(TcpStream::connect(("localhost", socket_addr.port())));
            assert_eq!(t!(stream.write(&[144])), 1);
        });

        let mut stream = t!(listener.accept()).0;
        let mut buf = [0];
        t!(stream.read(&mut buf));
        assert!(buf[0] == 144);
        join(t);
    }

    #[test]
    fn connect_loopback() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t = spawn(move || {
                let host = match addr {
                    SocketAddr::V4(..) => "127.0.0.1",
                    SocketAddr::V6(..) => "::1",
                };
                let mut stream = t!(TcpStream::connect((host, addr.port())));
                assert_eq!(t!(stream.write(&[66])), 1);
            });

            let mut stream = t!(acceptor.accept()).0;
            let mut buf = [0];
            t!(stream.read(&mut buf));
            assert!(buf[0] == 66);
            join(t);
        })
    }

    #[test]
    fn smoke_test() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let (tx, rx) = channel::unbounded();
            let t = spawn(move || {
                let mut stream = t!(TcpStream::connect(addr));
                assert_eq!(t!(stream.write(&[99])), 1);
                tx.send(t!(stream.local_addr())).unwrap();
            });

            let (mut stream, addr) = t!(acceptor.accept());
            let mut buf = [0];
            t!(stream.read(&mut buf));
            assert!(buf[0] == 99);
            assert_eq!(addr, t!(rx.recv()));
            join(t);
        })
    }

    #[test]
    fn read_eof() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t = spawn(move || {
                let _stream = t!(TcpStream::connect(addr));
                // Close
            });

            let mut stream = t!(acceptor.accept()).0;
            let mut buf = [0];
            let nread = t!(stream.read(&mut buf));
            assert_eq!(nread, 0);
            let nread = t!(stream.read(&mut buf));
            assert_eq!(nread, 0);
            join(t);
        })
    }

    #[test]
    fn write_close() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let (tx, rx) = channel::unbounded();
            let t = spawn(move || {
                drop(t!(TcpStream::connect(addr)));
                tx.send(()).unwrap();
            });

            let mut stream = t!(acceptor.accept()).0;
            rx.recv().unwrap();
            let buf = [0];
            match stream.write(&buf) {
                Ok(..) => {}
                Err(e) => {
                    assert!(
                        e.kind() == ErrorKind::ConnectionReset
                            || e.kind() == ErrorKind::BrokenPipe
                            || e.kind() == ErrorKind::ConnectionAborted,
                        "unknown error: {}",
                        e
                    );
                }
            }
            join(t);
        })
    }

    #[test]
    fn multiple_connect_serial() {
        each_ip(&mut |addr| {
            let max = 10;
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t = spawn(move || {
                for _ in 0..max {
                    let mut stream = t!(TcpStream::connect(addr));
                    assert_eq!(t!(stream.write(&[99])), 1);
                }
            });

            for stream in acceptor.incoming().take(max) {
                let mut stream = t!(stream);
                let mut buf = [0];
                t!(stream.read(&mut buf));
                assert_eq!(buf[0], 99);
            }
            join(t);
        })
    }

    #[test]
    fn multiple_connect_interleaved_greedy_schedule() {
        const MAX: usize = 10;
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t = spawn(move || {
                let acceptor = acceptor;
                let mut handlers = Vec::new();
                for (i, stream) in acceptor.incoming().enumerate().take(MAX) {
                    // Start another greenlet to handle the connection
                    handlers.push(spawn(move || {
                        let mut stream = t!(stream);
                        let mut buf = [0];
                        t!(stream.read(&mut buf));
                        assert!(buf[0] == i as u8);
                    }));
                }
                handlers
            });

            connect(0, addr);
            for h in join(t) {
                join(h);
            }
        });

        fn connect(i: usize, addr: SocketAddr) {
            if i == MAX {
                return;
            }

            let t = spawn(move || {
                let mut stream = t!(TcpStream::connect(addr));
                // Connect again before writing
                connect(i + 1, addr);
                assert_eq!(t!(stream.write(&[i as u8])), 1);
            });
            t.join().expect("greenlet panicked");
        }
    }

    #[test]
    fn multiple_connect_interleaved_lazy_schedule() {
        const MAX: usize = 10;
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t = spawn(move || {
                let mut handlers = Vec::new();
                for stream in acceptor.incoming().take(MAX) {
                    // Start another greenlet to handle the connection
                    handlers.push(spawn(move || {
                        let mut stream = t!(stream);
                        let mut buf = [0];
                        t!(stream.read(&mut buf));
                        assert!(buf[0] == 99);
                    }));
                }
                handlers
            });

            connect(0, addr);
            for h in join(t) {
                join(h);
            }
        });

        fn connect(i: usize, addr: SocketAddr) {
            if i == MAX {
                return;
            }

            let t = spawn(move || {
                let mut stream = t!(TcpStream::connect(addr));
                connect(i + 1, addr);
                assert_eq!(t!(stream.write(&[99])), 1);
            });
            t.join().expect("greenlet panicked");
        }
    }

    #[test]
    fn socket_and_peer_name() {
        each_ip(&mut |addr| {
            let listener = t!(TcpListener::bind(addr));
            let so_name = t!(listener.local_addr());
            // Port 0 asked the kernel for a port: the address is the same
            // but for the port it chose.
            assert_eq!(addr.ip(), so_name.ip());
            assert_ne!(so_name.port(), 0);
            let addr = so_name;
            let t = spawn(move || {
                t!(listener.accept());
            });

            let stream = t!(TcpStream::connect(addr));
            assert_eq!(addr, t!(stream.peer_addr()));
            join(t);
        })
    }

    #[test]
    fn partial_read() {
        each_ip(&mut |addr| {
            let (tx, rx) = channel::unbounded();
            let srv = t!(TcpListener::bind(addr));
            let addr = t!(srv.local_addr());
            let t = spawn(move || {
                let mut cl = t!(srv.accept()).0;
                assert_eq!(cl.write(&[10]).unwrap(), 1);
                let mut b = [0];
                t!(cl.read(&mut b));
                tx.send(()).unwrap();
            });

            let mut c = t!(TcpStream::connect(addr));
            let mut b = [0; 10];
            assert_eq!(c.read(&mut b).unwrap(), 1);
            assert_eq!(t!(c.write(&[1])), 1);
            rx.recv().unwrap();
            join(t);
        })
    }

    #[test]
    fn read_vectored() {
        each_ip(&mut |addr| {
            let srv = t!(TcpListener::bind(addr));
            let addr = t!(srv.local_addr());
            let mut s1 = t!(TcpStream::connect(addr));
            let mut s2 = t!(srv.accept()).0;

            let len = s1.write(&[10, 11, 12]).unwrap();
            assert_eq!(len, 3);

            let mut a = [];
            let mut b = [0];
            let mut c = [0; 3];
            let len = t!(s2.read_vectored(&mut [
                IoSliceMut::new(&mut a),
                IoSliceMut::new(&mut b),
                IoSliceMut::new(&mut c)
            ],));
            assert!(len > 0);
            assert_eq!(b, [10]);
            // some implementations don't support readv, so we may only fill the first buffer
            assert!(len == 1 || c == [11, 12, 0]);
        })
    }

    #[test]
    fn write_vectored() {
        each_ip(&mut |addr| {
            let srv = t!(TcpListener::bind(addr));
            let addr = t!(srv.local_addr());
            let mut s1 = t!(TcpStream::connect(addr));
            let mut s2 = t!(srv.accept()).0;

            let a = [];
            let b = [10];
            let c = [11, 12];
            t!(s1.write_vectored(&[IoSlice::new(&a), IoSlice::new(&b), IoSlice::new(&c)]));

            let mut buf = [0; 4];
            let len = t!(s2.read(&mut buf));
            // some implementations don't support writev, so we may only write the first buffer
            if len == 1 {
                assert_eq!(buf, [10, 0, 0, 0]);
            } else {
                assert_eq!(len, 3);
                assert_eq!(buf, [10, 11, 12, 0]);
            }
        })
    }

    #[test]
    fn double_bind() {
        each_ip(&mut |addr| {
            let listener1 = t!(TcpListener::bind(addr));
            let addr = t!(listener1.local_addr());
            match TcpListener::bind(addr) {
                Ok(listener2) => panic!(
                    "This system (perhaps due to options set by TcpListener::bind) \
                     permits double binding: {:?} and {:?}",
                    listener1, listener2
                ),
                Err(e) => {
                    assert!(
                        e.kind() == ErrorKind::ConnectionRefused
                            || is_uncategorized(e.kind())
                            || e.kind() == ErrorKind::AddrInUse,
                        "unknown error: {} {:?}",
                        e,
                        e.kind()
                    );
                }
            }
        })
    }

    #[test]
    fn tcp_clone_smoke() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t1 = spawn(move || {
                let mut s = t!(TcpStream::connect(addr));
                let mut buf = [0, 0];
                assert_eq!(s.read(&mut buf).unwrap(), 1);
                assert_eq!(buf[0], 1);
                assert_eq!(t!(s.write(&[2])), 1);
            });

            let mut s1 = t!(acceptor.accept()).0;
            let s2 = t!(s1.try_clone());

            let (tx1, rx1) = channel::unbounded();
            let (tx2, rx2) = channel::unbounded();
            let t2 = spawn(move || {
                let mut s2 = s2;
                rx1.recv().unwrap();
                assert_eq!(t!(s2.write(&[1])), 1);
                tx2.send(()).unwrap();
            });
            tx1.send(()).unwrap();
            let mut buf = [0, 0];
            assert_eq!(s1.read(&mut buf).unwrap(), 1);
            rx2.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn tcp_clone_two_read() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());
            let (tx1, rx) = channel::unbounded();
            let tx2 = tx1.clone();

            let t1 = spawn(move || {
                let mut s = t!(TcpStream::connect(addr));
                assert_eq!(t!(s.write(&[1])), 1);
                rx.recv().unwrap();
                assert_eq!(t!(s.write(&[2])), 1);
                rx.recv().unwrap();
            });

            let mut s1 = t!(acceptor.accept()).0;
            let s2 = t!(s1.try_clone());

            let (done, rx) = channel::unbounded();
            let t2 = spawn(move || {
                let mut s2 = s2;
                let mut buf = [0, 0];
                t!(s2.read(&mut buf));
                tx2.send(()).unwrap();
                done.send(()).unwrap();
            });
            let mut buf = [0, 0];
            t!(s1.read(&mut buf));
            tx1.send(()).unwrap();

            rx.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn tcp_clone_two_write() {
        each_ip(&mut |addr| {
            let acceptor = t!(TcpListener::bind(addr));
            let addr = t!(acceptor.local_addr());

            let t1 = spawn(move || {
                let mut s = t!(TcpStream::connect(addr));
                let mut buf = [0, 1];
                t!(s.read(&mut buf));
                t!(s.read(&mut buf));
            });

            let mut s1 = t!(acceptor.accept()).0;
            let s2 = t!(s1.try_clone());

            let (done, rx) = channel::unbounded();
            let t2 = spawn(move || {
                let mut s2 = s2;
                assert_eq!(t!(s2.write(&[1])), 1);
                done.send(()).unwrap();
            });
            assert_eq!(t!(s1.write(&[2])), 1);

            rx.recv().unwrap();
            // The client's first read may take both bytes; its second then
            // waits for EOF, which comes when `s1` (the last handle, `s2`
            // went with its greenlet) closes. The original's threads are
            // detached and the closure's end closes `s1`; here the join
            // comes first, so close it before.
            drop(s1);
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn shutdown_smoke() {
        each_ip(&mut |addr| {
            let a = t!(TcpListener::bind(addr));
            let addr = t!(a.local_addr());
            let t = spawn(move || {
                let mut c = t!(a.accept()).0;
                let mut b = [0];
                assert_eq!(c.read(&mut b).unwrap(), 0);
                assert_eq!(t!(c.write(&[1])), 1);
            });

            let mut s = t!(TcpStream::connect(addr));
            t!(s.shutdown(Shutdown::Write));
            assert!(s.write(&[1]).is_err());
            let mut b = [0, 0];
            assert_eq!(t!(s.read(&mut b)), 1);
            assert_eq!(b[0], 1);
            join(t);
        })
    }

    #[test]
    fn close_readwrite_smoke() {
        each_ip(&mut |addr| {
            let a = t!(TcpListener::bind(addr));
            let addr = t!(a.local_addr());
            let (tx, rx) = channel::unbounded::<()>();
            let t = spawn(move || {
                let _s = t!(a.accept());
                let _ = rx.recv();
            });

            let mut b = [0];
            let mut s = t!(TcpStream::connect(addr));
            let mut s2 = t!(s.try_clone());

            // closing should prevent reads/writes
            t!(s.shutdown(Shutdown::Write));
            assert!(s.write(&[0]).is_err());
            t!(s.shutdown(Shutdown::Read));
            assert_eq!(s.read(&mut b).unwrap(), 0);

            // closing should affect previous handles
            assert!(s2.write(&[0]).is_err());
            assert_eq!(s2.read(&mut b).unwrap(), 0);

            // closing should affect new handles
            let mut s3 = t!(s.try_clone());
            assert!(s3.write(&[0]).is_err());
            assert_eq!(s3.read(&mut b).unwrap(), 0);

            // make sure these don't die
            let _ = s2.shutdown(Shutdown::Read);
            let _ = s2.shutdown(Shutdown::Write);
            let _ = s3.shutdown(Shutdown::Read);
            let _ = s3.shutdown(Shutdown::Write);
            drop(tx);
            join(t);
        })
    }

    #[test]
    fn close_read_wakes_up() {
        each_ip(&mut |addr| {
            let a = t!(TcpListener::bind(addr));
            let addr = t!(a.local_addr());
            let (tx1, rx) = channel::unbounded::<()>();
            let t1 = spawn(move || {
                let _s = t!(a.accept());
                let _ = rx.recv();
            });

            let s = t!(TcpStream::connect(addr));
            let s2 = t!(s.try_clone());
            let (tx, rx) = channel::unbounded();
            let t2 = spawn(move || {
                let mut s2 = s2;
                assert_eq!(t!(s2.read(&mut [0])), 0);
                tx.send(()).unwrap();
            });
            // Unlike a thread, the greenlet runs only once this code waits:
            // let it start its read, so that the shutdown below has a
            // parked reader to wake.
            yield_now();
            assert!(!t2.is_finished());
            // this should wake up the child greenlet
            t!(s.shutdown(Shutdown::Read));

            // this test will never finish if the child doesn't wake up
            rx.recv().unwrap();
            drop(tx1);
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn clone_while_reading() {
        each_ip(&mut |addr| {
            let accept = t!(TcpListener::bind(addr));
            let addr = t!(accept.local_addr());

            // Enqueue a greenlet to write to a socket
            let (tx, rx) = channel::unbounded();
            let (txdone, rxdone) = channel::unbounded();
            let txdone2 = txdone.clone();
            let t1 = spawn(move || {
                let mut tcp = t!(TcpStream::connect(addr));
                rx.recv().unwrap();
                assert_eq!(t!(tcp.write(&[0])), 1);
                txdone2.send(()).unwrap();
            });

            // Spawn off a reading clone
            let tcp = t!(accept.accept()).0;
            let tcp2 = t!(tcp.try_clone());
            let txdone3 = txdone.clone();
            let t2 = spawn(move || {
                let mut tcp2 = tcp2;
                t!(tcp2.read(&mut [0]));
                txdone3.send(()).unwrap();
            });

            // Try to ensure that the reading clone is indeed reading
            for _ in 0..50 {
                yield_now();
            }

            // clone the handle again while it's reading, then let it finish the
            // read.
            let _ = t!(tcp.try_clone());
            tx.send(()).unwrap();
            rxdone.recv().unwrap();
            rxdone.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn clone_accept_smoke() {
        each_ip(&mut |addr| {
            let a = t!(TcpListener::bind(addr));
            let addr = t!(a.local_addr());
            let a2 = t!(a.try_clone());

            let t1 = spawn(move || {
                let _ = TcpStream::connect(addr);
            });
            let t2 = spawn(move || {
                let _ = TcpStream::connect(addr);
            });

            t!(a.accept());
            t!(a2.accept());
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn clone_accept_concurrent() {
        each_ip(&mut |addr| {
            let a = t!(TcpListener::bind(addr));
            let addr = t!(a.local_addr());
            let a2 = t!(a.try_clone());

            let (tx, rx) = channel::unbounded();
            let tx2 = tx.clone();

            let mut ts: Vec<JoinHandle<()>> = Vec::new();
            ts.push(spawn(move || {
                tx.send(t!(a.accept())).unwrap();
            }));
            ts.push(spawn(move || {
                tx2.send(t!(a2.accept())).unwrap();
            }));

            ts.push(spawn(move || {
                let _ = TcpStream::connect(addr);
            }));
            ts.push(spawn(move || {
                let _ = TcpStream::connect(addr);
            }));

            rx.recv().unwrap();
            rx.recv().unwrap();
            for t in ts {
                join(t);
            }
        })
    }

    #[test]
    fn debug() {
        fn render_socket_addr<'a>(addr: &'a SocketAddr) -> impl fmt::Debug + 'a {
            addr
        }

        use std::os::unix::io::AsRawFd;
        fn render_inner(addr: &dyn AsRawFd) -> impl fmt::Debug {
            addr.as_raw_fd()
        }

        let inner_name = "fd";

        let listener = t!(TcpListener::bind(ip4()));
        let socket_addr = t!(listener.local_addr());
        let compare = format!(
            "TcpListener {{ addr: {:?}, {}: {:?} }}",
            render_socket_addr(&socket_addr),
            inner_name,
            render_inner(&listener)
        );
        assert_eq!(format!("{:?}", listener), compare);

        let stream = t!(TcpStream::connect(("localhost", socket_addr.port())));
        let compare = format!(
            "TcpStream {{ addr: {:?}, peer: {:?}, {}: {:?} }}",
            render_socket_addr(&stream.local_addr().unwrap()),
            render_socket_addr(&stream.peer_addr().unwrap()),
            inner_name,
            render_inner(&stream)
        );
        assert_eq!(format!("{:?}", stream), compare);
    }

    #[test]
    fn timeouts() {
        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());

        let stream = t!(TcpStream::connect(("localhost", addr.port())));
        let dur = Duration::new(15410, 0);

        assert_eq!(None, t!(stream.read_timeout()));

        t!(stream.set_read_timeout(Some(dur)));
        assert_eq!(Some(dur), t!(stream.read_timeout()));

        assert_eq!(None, t!(stream.write_timeout()));

        t!(stream.set_write_timeout(Some(dur)));
        assert_eq!(Some(dur), t!(stream.write_timeout()));

        t!(stream.set_read_timeout(None));
        assert_eq!(None, t!(stream.read_timeout()));

        t!(stream.set_write_timeout(None));
        assert_eq!(None, t!(stream.write_timeout()));
        drop(listener);
    }

    #[test]
    fn test_read_timeout() {
        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());

        let mut stream = t!(TcpStream::connect(("localhost", addr.port())));
        t!(stream.set_read_timeout(Some(Duration::from_millis(1000))));

        let mut buf = [0; 10];
        let start = Instant::now();
        let kind = stream
            .read_exact(&mut buf)
            .expect_err("expected error")
            .kind();
        assert!(
            kind == ErrorKind::WouldBlock || kind == ErrorKind::TimedOut,
            "unexpected_error: {:?}",
            kind
        );
        assert!(start.elapsed() > Duration::from_millis(400));
        drop(listener);
    }

    #[test]
    fn test_read_with_timeout() {
        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());

        let mut stream = t!(TcpStream::connect(("localhost", addr.port())));
        t!(stream.set_read_timeout(Some(Duration::from_millis(1000))));

        let mut other_end = t!(listener.accept()).0;
        t!(other_end.write_all(b"hello world"));

        let mut buf = [0; 11];
        t!(stream.read(&mut buf));
        assert_eq!(b"hello world", &buf[..]);

        let start = Instant::now();
        let kind = stream
            .read_exact(&mut buf)
            .expect_err("expected error")
            .kind();
        assert!(
            kind == ErrorKind::WouldBlock || kind == ErrorKind::TimedOut,
            "unexpected_error: {:?}",
            kind
        );
        assert!(start.elapsed() > Duration::from_millis(400));
        drop(listener);
    }

    // Ensure the `set_read_timeout` and `set_write_timeout` calls return errors
    // when passed zero Durations
    #[test]
    fn test_timeout_zero_duration() {
        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());
        let stream = t!(TcpStream::connect(addr));

        let result = stream.set_write_timeout(Some(Duration::new(0, 0)));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        let result = stream.set_read_timeout(Some(Duration::new(0, 0)));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        drop(listener);
    }

    // linger: not ported, `TcpStream::set_linger` is unstable (feature
    // `tcp_linger`).

    #[test]
    fn nodelay() {
        let _listener = t!(TcpListener::bind(ip4()));
        let addr = t!(_listener.local_addr());

        let stream = t!(TcpStream::connect(("localhost", addr.port())));

        assert!(!t!(stream.nodelay()));
        t!(stream.set_nodelay(true));
        assert!(t!(stream.nodelay()));
        t!(stream.set_nodelay(false));
        assert!(!t!(stream.nodelay()));
    }

    #[test]
    fn ttl() {
        let ttl = 100;

        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());

        t!(listener.set_ttl(ttl));
        assert_eq!(ttl, t!(listener.ttl()));

        let stream = t!(TcpStream::connect(("localhost", addr.port())));

        t!(stream.set_ttl(ttl));
        assert_eq!(ttl, t!(stream.ttl()));
    }

    #[test]
    fn set_nonblocking() {
        let listener = t!(TcpListener::bind(ip4()));
        let addr = t!(listener.local_addr());

        t!(listener.set_nonblocking(true));
        t!(listener.set_nonblocking(false));

        let mut stream = t!(TcpStream::connect(("localhost", addr.port())));

        t!(stream.set_nonblocking(false));
        t!(stream.set_nonblocking(true));

        let mut buf = [0];
        match stream.read(&mut buf) {
            Ok(_) => panic!("expected error"),
            Err(ref e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("unexpected error {}", e),
        }
    }

    #[test]
    fn peek() {
        each_ip(&mut |addr| {
            let (txdone, rxdone) = channel::unbounded();

            let srv = t!(TcpListener::bind(addr));
            let addr = t!(srv.local_addr());
            let t = spawn(move || {
                let mut cl = t!(srv.accept()).0;
                assert_eq!(cl.write(&[1, 3, 3, 7]).unwrap(), 4);
                t!(rxdone.recv());
            });

            let mut c = t!(TcpStream::connect(addr));
            let mut b = [0; 10];
            for _ in 1..3 {
                let len = c.peek(&mut b).unwrap();
                assert_eq!(len, 4);
            }
            let len = c.read(&mut b).unwrap();
            assert_eq!(len, 4);

            t!(c.set_nonblocking(true));
            match c.peek(&mut b) {
                Ok(_) => panic!("expected error"),
                Err(ref e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("unexpected error {}", e),
            }
            t!(txdone.send(()));
            join(t);
        })
    }

    #[test]
    fn connect_timeout_valid() {
        patched();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    }
}

mod udp {
    use std::io::ErrorKind;
    use std::net::*;
    use std::time::{Duration, Instant};

    use verdant::spawn;
    use verdant::sync::channel;

    use super::{join, loopbacks, patched};

    const LOCALHOST_IP4: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 0));
    const LOCALHOST_IP6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1),
        0,
        0,
        0,
    ));

    /// std's `compare_ignore_zoneid` (library/std/src/net/test.rs).
    fn compare_ignore_zoneid(a: &SocketAddr, b: &SocketAddr) -> bool {
        match (a, b) {
            (SocketAddr::V6(a), SocketAddr::V6(b)) => {
                a.ip().segments() == b.ip().segments()
                    && a.flowinfo() == b.flowinfo()
                    && a.port() == b.port()
            }
            _ => a == b,
        }
    }

    /// std's `each_ip`: two sockets bound to the same loopback, port 0.
    fn each_ip(f: &mut dyn FnMut(UdpSocket, UdpSocket)) {
        patched();
        for addr in loopbacks() {
            f(t!(UdpSocket::bind(addr)), t!(UdpSocket::bind(addr)));
        }
    }

    #[test]
    fn bind_error() {
        patched();
        match UdpSocket::bind("1.1.1.1:0") {
            Ok(..) => panic!(),
            Err(e) => assert_eq!(e.kind(), ErrorKind::AddrNotAvailable),
        }
    }

    #[test]
    fn socket_smoke_test_ip4() {
        each_ip(&mut |server, client| {
            let server_ip = t!(server.local_addr());
            let client_ip = t!(client.local_addr());

            let (tx1, rx1) = channel::unbounded();
            let (tx2, rx2) = channel::unbounded();

            let t = spawn(move || {
                rx1.recv().unwrap();
                t!(client.send_to(&[99], server_ip));
                tx2.send(()).unwrap();
            });

            tx1.send(()).unwrap();
            let mut buf = [0];
            let (nread, src) = t!(server.recv_from(&mut buf));
            assert_eq!(nread, 1);
            assert_eq!(buf[0], 99);
            assert!(compare_ignore_zoneid(&src, &client_ip));
            rx2.recv().unwrap();
            join(t);
        })
    }

    #[test]
    fn socket_and_peer_name() {
        each_ip(&mut |sock1, sock2| {
            let addr1 = t!(sock1.local_addr());
            let addr2 = t!(sock2.local_addr());

            assert_eq!(
                sock1.peer_addr().unwrap_err().kind(),
                ErrorKind::NotConnected
            );
            assert!(addr1.ip() == LOCALHOST_IP4.ip() || addr1.ip() == LOCALHOST_IP6.ip());

            t!(sock1.connect(addr2));
            t!(sock2.connect(addr1));

            assert_eq!(addr2, t!(sock1.peer_addr()));
            assert_eq!(addr1, t!(sock2.peer_addr()));
        })
    }

    #[test]
    fn udp_clone_smoke() {
        each_ip(&mut |sock1, sock2| {
            let addr1 = t!(sock1.local_addr());
            let addr2 = t!(sock2.local_addr());

            let t1 = spawn(move || {
                let mut buf = [0, 0];
                let res = sock2.recv_from(&mut buf).unwrap();
                assert_eq!(res.0, 1);
                assert!(compare_ignore_zoneid(&res.1, &addr1));
                assert_eq!(buf[0], 1);
                t!(sock2.send_to(&[2], addr1));
            });

            let sock3 = t!(sock1.try_clone());

            let (tx1, rx1) = channel::unbounded();
            let (tx2, rx2) = channel::unbounded();
            let t2 = spawn(move || {
                rx1.recv().unwrap();
                t!(sock3.send_to(&[1], addr2));
                tx2.send(()).unwrap();
            });
            tx1.send(()).unwrap();
            let mut buf = [0, 0];
            let res = sock1.recv_from(&mut buf).unwrap();
            assert_eq!(res.0, 1);
            assert!(compare_ignore_zoneid(&res.1, &addr2));
            rx2.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn udp_clone_two_read() {
        each_ip(&mut |sock1, sock2| {
            let addr1 = t!(sock1.local_addr());

            let (tx1, rx) = channel::unbounded();
            let tx2 = tx1.clone();

            let t1 = spawn(move || {
                t!(sock2.send_to(&[1], addr1));
                rx.recv().unwrap();
                t!(sock2.send_to(&[2], addr1));
                rx.recv().unwrap();
            });

            let sock3 = t!(sock1.try_clone());

            let (done, rx) = channel::unbounded();
            let t2 = spawn(move || {
                let mut buf = [0, 0];
                t!(sock3.recv_from(&mut buf));
                tx2.send(()).unwrap();
                done.send(()).unwrap();
            });
            let mut buf = [0, 0];
            t!(sock1.recv_from(&mut buf));
            tx1.send(()).unwrap();

            rx.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn udp_clone_two_write() {
        each_ip(&mut |sock1, sock2| {
            let addr2 = t!(sock2.local_addr());

            let (tx, rx) = channel::unbounded();
            let (serv_tx, serv_rx) = channel::unbounded();

            let t1 = spawn(move || {
                let mut buf = [0, 1];
                rx.recv().unwrap();
                t!(sock2.recv_from(&mut buf));
                serv_tx.send(()).unwrap();
            });

            let sock3 = t!(sock1.try_clone());

            let (done, rx) = channel::unbounded();
            let tx2 = tx.clone();
            let t2 = spawn(move || {
                if sock3.send_to(&[1], addr2).is_ok() {
                    let _ = tx2.send(());
                }
                done.send(()).unwrap();
            });
            if sock1.send_to(&[2], addr2).is_ok() {
                let _ = tx.send(());
            }
            drop(tx);

            rx.recv().unwrap();
            serv_rx.recv().unwrap();
            join(t1);
            join(t2);
        })
    }

    #[test]
    fn debug() {
        use std::os::unix::io::AsRawFd;
        patched();
        let name = "fd";

        let udpsock = t!(UdpSocket::bind(LOCALHOST_IP4));
        let socket_addr = t!(udpsock.local_addr());
        let udpsock_inner = udpsock.as_raw_fd();
        let compare = format!("UdpSocket {{ addr: {socket_addr:?}, {name}: {udpsock_inner:?} }}");
        assert_eq!(format!("{udpsock:?}"), compare);
    }

    #[test]
    fn timeouts() {
        patched();
        let stream = t!(UdpSocket::bind(LOCALHOST_IP4));
        let dur = Duration::new(15410, 0);

        assert_eq!(None, t!(stream.read_timeout()));

        t!(stream.set_read_timeout(Some(dur)));
        assert_eq!(Some(dur), t!(stream.read_timeout()));

        assert_eq!(None, t!(stream.write_timeout()));

        t!(stream.set_write_timeout(Some(dur)));
        assert_eq!(Some(dur), t!(stream.write_timeout()));

        t!(stream.set_read_timeout(None));
        assert_eq!(None, t!(stream.read_timeout()));

        t!(stream.set_write_timeout(None));
        assert_eq!(None, t!(stream.write_timeout()));
    }

    #[test]
    fn test_read_timeout() {
        patched();
        let stream = t!(UdpSocket::bind(LOCALHOST_IP4));
        t!(stream.set_read_timeout(Some(Duration::from_millis(1000))));

        let mut buf = [0; 10];

        let start = Instant::now();
        loop {
            let kind = stream
                .recv_from(&mut buf)
                .expect_err("expected error")
                .kind();
            if kind != ErrorKind::Interrupted {
                assert!(
                    kind == ErrorKind::WouldBlock || kind == ErrorKind::TimedOut,
                    "unexpected_error: {:?}",
                    kind
                );
                break;
            }
        }
        assert!(start.elapsed() > Duration::from_millis(400));
    }

    #[test]
    fn test_read_with_timeout() {
        patched();
        let stream = t!(UdpSocket::bind(LOCALHOST_IP4));
        let addr = t!(stream.local_addr());
        t!(stream.set_read_timeout(Some(Duration::from_millis(1000))));

        t!(stream.send_to(b"hello world", addr));

        let mut buf = [0; 11];
        t!(stream.recv_from(&mut buf));
        assert_eq!(b"hello world", &buf[..]);

        let start = Instant::now();
        loop {
            let kind = stream
                .recv_from(&mut buf)
                .expect_err("expected error")
                .kind();
            if kind != ErrorKind::Interrupted {
                assert!(
                    kind == ErrorKind::WouldBlock || kind == ErrorKind::TimedOut,
                    "unexpected_error: {:?}",
                    kind
                );
                break;
            }
        }
        assert!(start.elapsed() > Duration::from_millis(400));
    }

    // Ensure the `set_read_timeout` and `set_write_timeout` calls return errors
    // when passed zero Durations
    #[test]
    fn test_timeout_zero_duration() {
        patched();
        let socket = t!(UdpSocket::bind(LOCALHOST_IP4));

        let result = socket.set_write_timeout(Some(Duration::new(0, 0)));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        let result = socket.set_read_timeout(Some(Duration::new(0, 0)));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn connect_send_recv() {
        patched();
        let socket = t!(UdpSocket::bind(LOCALHOST_IP4));
        let addr = t!(socket.local_addr());
        t!(socket.connect(addr));

        t!(socket.send(b"hello world"));

        let mut buf = [0; 11];
        t!(socket.recv(&mut buf));
        assert_eq!(b"hello world", &buf[..]);
    }

    #[test]
    fn connect_send_peek_recv() {
        each_ip(&mut |socket, _| {
            let addr = t!(socket.local_addr());
            t!(socket.connect(addr));

            t!(socket.send(b"hello world"));

            for _ in 1..3 {
                let mut buf = [0; 11];
                let size = t!(socket.peek(&mut buf));
                assert_eq!(b"hello world", &buf[..]);
                assert_eq!(size, 11);
            }

            let mut buf = [0; 11];
            let size = t!(socket.recv(&mut buf));
            assert_eq!(b"hello world", &buf[..]);
            assert_eq!(size, 11);
        })
    }

    #[test]
    fn peek_from() {
        each_ip(&mut |socket, _| {
            let addr = t!(socket.local_addr());
            t!(socket.send_to(b"hello world", addr));

            for _ in 1..3 {
                let mut buf = [0; 11];
                let (size, _) = t!(socket.peek_from(&mut buf));
                assert_eq!(b"hello world", &buf[..]);
                assert_eq!(size, 11);
            }

            let mut buf = [0; 11];
            let (size, _) = t!(socket.recv_from(&mut buf));
            assert_eq!(b"hello world", &buf[..]);
            assert_eq!(size, 11);
        })
    }

    #[test]
    fn ttl() {
        patched();
        let ttl = 100;

        let stream = t!(UdpSocket::bind(LOCALHOST_IP4));

        t!(stream.set_ttl(ttl));
        assert_eq!(ttl, t!(stream.ttl()));
    }

    // hop_limit: not ported, `UdpSocket::set_hop_limit_v6` is unstable
    // (feature `ipv6_hop_limit`) and not in this toolchain's std.

    #[test]
    fn set_nonblocking() {
        each_ip(&mut |socket, _| {
            let addr = t!(socket.local_addr());

            t!(socket.set_nonblocking(true));
            t!(socket.set_nonblocking(false));

            t!(socket.connect(addr));

            t!(socket.set_nonblocking(false));
            t!(socket.set_nonblocking(true));

            let mut buf = [0];
            match socket.recv(&mut buf) {
                Ok(_) => panic!("expected error"),
                Err(ref e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        })
    }

    /// std's `ZeroedMmap` (library/std/src/net/tests.rs): a read-only
    /// anonymous mapping of zeroes, which costs no memory until read.
    struct ZeroedMmap {
        ptr: *mut libc::c_void,
        len: usize,
    }

    impl ZeroedMmap {
        fn new(len: usize) -> ZeroedMmap {
            // SAFETY: a fresh anonymous mapping; no existing memory is
            // touched, and the result is checked before use.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert_ne!(ptr, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
            ZeroedMmap { ptr, len }
        }
    }

    impl std::ops::Deref for ZeroedMmap {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            // SAFETY: `ptr` is a live, readable mapping of `len` bytes
            // (zero-filled), unmapped only when `self` drops.
            unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
        }
    }

    impl Drop for ZeroedMmap {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, unmapped once; no slice
            // of it outlives `self`.
            unsafe {
                libc::munmap(self.ptr, self.len);
            }
        }
    }

    // #115325: a datagram larger than `c_int::MAX` bytes can't be sent atomically
    // and must be rejected rather than truncated.
    #[test]
    fn send_datagram_larger_than_c_int_max() {
        patched();
        // A read-only anonymous mapping rather than a 2 GiB `Vec`: the datagram is
        // rejected before the kernel ever reads the pages, so this costs no
        // physical memory.
        let data = ZeroedMmap::new(libc::c_int::MAX as usize + 1);

        let socket = t!(UdpSocket::bind("127.0.0.1:0"));
        let addr = t!(socket.local_addr());
        assert!(socket.send_to(&data, addr).is_err());
        t!(socket.connect(addr));
        assert!(socket.send(&data).is_err());
    }
}
