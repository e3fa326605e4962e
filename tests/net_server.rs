//! `StreamServer`: a greenlet per connection, `TCP_NODELAY`, the connection
//! bound, timeouts on accepted sockets, `stop(grace)`, `serve_forever`,
//! `SO_REUSEPORT`, and a refused spawn that leaves the server serving.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::{StreamServer, TcpStream};
use verdant::sync::Event;
use verdant::{joinall, sleep, spawn, with_timeout, Builder};

mod common;
use common::{child_case, run_child};

/// Yields until `f()` holds, for at most 5 s.
fn until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "timed out waiting: {what}"
        );
        sleep(Duration::from_millis(1));
    }
}

fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn each_connection_gets_a_greenlet_and_tcp_nodelay() {
    let nodelay = Rc::new(Cell::new(0u32));
    let seen = nodelay.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |conn, peer| {
        assert!(peer.ip().is_loopback());
        if conn.nodelay().unwrap() {
            seen.set(seen.get() + 1);
        }
        echo(conn);
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..50u32)
        .map(|i| {
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let msg = format!("message {i}");
                c.write_all(msg.as_bytes()).unwrap();
                let mut back = vec![0u8; msg.len()];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg.as_bytes());
            })
        })
        .collect();
    with_timeout(Duration::from_secs(10), || joinall(&clients).unwrap()).expect("hung");
    assert_eq!(nodelay.get(), 50);
    until("handlers to end", || server.connections() == 0);
    assert_eq!(server.stop(Duration::from_secs(1)), 0);

    // Off when asked.
    let off = Rc::new(Cell::new(None));
    let seen = off.clone();
    let server = StreamServer::builder()
        .nodelay(false)
        .bind("127.0.0.1:0", move |conn, _| {
            seen.set(Some(conn.nodelay().unwrap()))
        })
        .unwrap();
    server.start().unwrap();
    let _c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    until("the handler", || off.get().is_some());
    assert_eq!(off.get(), Some(false));
}

#[test]
fn at_the_connection_bound_newcomers_wait_for_a_handler_to_return() {
    let go = Rc::new(Event::new());
    let handled = Rc::new(Cell::new(0u32));
    let (g, h) = (go.clone(), handled.clone());
    let server = StreamServer::builder()
        .max_connections(2)
        .bind("127.0.0.1:0", move |mut conn, _| {
            h.set(h.get() + 1);
            g.wait().unwrap();
            conn.write_all(b"done").unwrap();
        })
        .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut reply = Vec::new();
                c.read_to_end(&mut reply).unwrap();
                reply
            })
        })
        .collect();
    until("two handlers", || handled.get() == 2);
    // The third is connected (the kernel's backlog) but not accepted.
    sleep(Duration::from_millis(50));
    assert_eq!((handled.get(), server.connections()), (2, 2));
    go.set();
    for c in clients {
        assert_eq!(c.join().unwrap(), b"done");
    }
    assert_eq!(handled.get(), 3);
}

#[test]
fn accepted_connections_get_the_configured_timeouts() {
    let result = Rc::new(Cell::new(None));
    let r = result.clone();
    let server = StreamServer::builder()
        .read_timeout(Some(Duration::from_millis(30)))
        .write_timeout(Some(Duration::from_millis(40)))
        .bind("127.0.0.1:0", move |mut conn, _| {
            assert_eq!(
                conn.write_timeout().unwrap(),
                Some(Duration::from_millis(40))
            );
            // An idle client: the read gives up instead of waiting forever.
            let e = conn.read(&mut [0u8; 16]).unwrap_err();
            r.set(Some(e.kind()));
        })
        .unwrap();
    server.start().unwrap();
    let _idle = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    until("the idle read to time out", || result.get().is_some());
    assert_eq!(result.get(), Some(ErrorKind::WouldBlock));
}

#[test]
fn stop_waits_for_handlers_up_to_the_grace_then_kills_the_rest() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let unwound = Rc::new(Cell::new(false));
    let finished = Rc::new(Cell::new(false));
    let (u, f) = (unwound.clone(), finished.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut conn, _| {
        let mut first = [0u8; 1];
        conn.read_exact(&mut first).unwrap();
        if first[0] == b'q' {
            sleep(Duration::from_millis(20)); // done within the grace
            f.set(true);
        } else {
            let _flag = Flag(u.clone());
            sleep(Duration::from_secs(3600)); // never done
        }
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let mut quick = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    quick.write_all(b"q").unwrap();
    slow.write_all(b"s").unwrap();
    until("both handlers", || server.connections() == 2);
    let t = Instant::now();
    assert_eq!(server.stop(Duration::from_millis(200)), 1);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(190), "stopped after {took:?}");
    assert!(finished.get(), "the quick handler was not given its grace");
    assert!(
        unwound.get(),
        "the killed handler's destructors did not run"
    );
    assert_eq!(server.connections(), 0);
    assert!(!server.is_serving());
    // The listener is closed: the kernel refuses newcomers.
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    // A stopped server stays stopped.
    assert_eq!(server.stop(Duration::ZERO), 0);
    assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
}

#[test]
fn serve_forever_returns_once_stopped_from_another_greenlet() {
    let server = Rc::new(StreamServer::bind("127.0.0.1:0", |conn, _| echo(conn)).unwrap());
    let addr = server.local_addr().unwrap();
    let s = server.clone();
    let client = spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).unwrap();
        drop(c);
        s.stop(Duration::from_secs(1));
        back
    });
    with_timeout(Duration::from_secs(10), || server.serve_forever().unwrap()).expect("hung");
    assert_eq!(&client.join().unwrap(), b"ping");
    assert!(!server.is_serving());
}

#[test]
fn servers_with_reuse_port_share_an_address_and_its_connections() {
    let counts = [Rc::new(Cell::new(0u32)), Rc::new(Cell::new(0u32))];
    let a_count = counts[0].clone();
    let a = StreamServer::builder()
        .reuse_port(true)
        .bind("127.0.0.1:0", move |_, _| a_count.set(a_count.get() + 1))
        .unwrap();
    let addr = a.local_addr().unwrap();
    let b_count = counts[1].clone();
    let b = StreamServer::builder()
        .reuse_port(true)
        .bind(addr, move |_, _| b_count.set(b_count.get() + 1))
        .unwrap();
    // Without the option the address is taken.
    let e = StreamServer::bind(addr, |_, _| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    a.start().unwrap();
    b.start().unwrap();
    let conns: Vec<_> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    until("all 64 handled", || counts[0].get() + counts[1].get() == 64);
    // The kernel hashes each connection to one of the two: both get some
    // (all 64 on one side has probability 2^-63).
    assert!(counts[0].get() > 0 && counts[1].get() > 0, "{counts:?}");
    drop(conns);
}

#[test]
fn dropping_the_server_closes_the_listener() {
    let server = StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    drop(server);
    sleep(Duration::from_millis(10)); // the accept loop ends
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

/// When no greenlet can be made for a connection (here: no address space
/// for its stack), the connection is closed with a line on stderr and the
/// server goes on serving: never a panic in the accept loop.
#[test]
fn a_connection_whose_greenlet_cannot_be_made_is_refused_and_serving_goes_on() {
    if child_case().as_deref() == Some("refuse") {
        let server = StreamServer::builder()
            .greenlets(Builder::new().stack_size(512 << 20))
            .bind("127.0.0.1:0", |conn, _| echo(conn))
            .unwrap();
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        sleep(Duration::from_millis(1)); // the accept loop is running
        let vm = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:").map(|v| v.trim().to_owned()))
            .unwrap();
        let vm_kib: u64 = vm.trim_end_matches(" kB").trim().parse().unwrap();
        // Room for 128 MiB more: not for a 512 MiB stack.
        let limit = (vm_kib + 128 * 1024) * 1024;
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit with a valid rlimit value.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
        for i in 1..=3 {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 8];
            // Closed by the server: the end of the stream (or a reset).
            match c.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("expected the connection closed, got {other:?}"),
            }
            assert_eq!(server.refused(), i);
            assert!(server.is_serving());
        }
        println!("child ok");
        return;
    }
    let out = run_child(
        "a_connection_whose_greenlet_cannot_be_made_is_refused_and_serving_goes_on",
        "refuse",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("child ok"),
        "child failed: {out:?}\n{stderr}"
    );
    assert_eq!(
        stderr
            .matches("refused a connection from 127.0.0.1:")
            .count(),
        3,
        "{stderr}"
    );
}

/// Out of descriptors, the accept loop waits (the listener backs off) and
/// serves the queued connections once descriptors are free again: it never
/// ends or panics.
#[test]
fn out_of_descriptors_the_server_waits_and_then_serves() {
    if child_case().as_deref() == Some("emfile") {
        common::set_nofile(Some(256));
        let server = StreamServer::bind("127.0.0.1:0", |conn, _| echo(conn)).unwrap();
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        sleep(Duration::from_millis(1)); // the accept loop waits in accept
                                         // Five clients connect (the kernel's backlog completes them) before
                                         // the process runs out of descriptors.
        let clients: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let hog = common::hog_descriptors();
        sleep(Duration::from_millis(100)); // accept fails with EMFILE meanwhile
        assert!(server.is_serving());
        assert_eq!(server.connections(), 0);
        drop(hog);
        let t = std::thread::spawn(move || {
            for mut c in clients {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.write_all(b"back").unwrap();
                let mut reply = [0u8; 4];
                c.read_exact(&mut reply).unwrap();
                assert_eq!(&reply, b"back");
            }
        });
        verdant::join_thread(t).unwrap();
        assert!(server.is_serving());
        println!("child ok");
        return;
    }
    let out = run_child(
        "out_of_descriptors_the_server_waits_and_then_serves",
        "emfile",
        &[],
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("child ok"),
        "{out:?}"
    );
}
