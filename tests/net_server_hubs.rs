//! `StreamServerBuilder::bind_hubs`: one address served by every hub of a
//! `Hubs` run, the connections spread by `SO_REUSEPORT` (a listener per
//! hub) or by one round-robin acceptor on hub 0 (exact turns, a full hub
//! skipped, a stopped hub left out).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verdant::net::{Spread, StreamServer, StreamServerBuilder, TcpStream};
use verdant::{sleep, Hubs};

/// What the client side of a test sees of the run.
struct Run {
    addr: SocketAddr,
    /// Servers started so far.
    started: Arc<AtomicUsize>,
    /// Hub 1 stops its server (and only its) once this is set.
    stop_hub_1: Arc<AtomicBool>,
    hub_1_stopped: Arc<AtomicBool>,
}

impl Run {
    fn wait_started(&self, n: usize) {
        let t = Instant::now();
        while self.started.load(Ordering::SeqCst) < n {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "servers never started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Connects, says hello, and returns the connection with the index of
    /// the hub that answered.
    fn hello(&self) -> (BufReader<std::net::TcpStream>, usize) {
        let mut c = std::net::TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"hello\n").unwrap();
        let mut r = BufReader::new(c);
        let hub = read_hub(&mut r);
        (r, hub)
    }
}

fn read_hub(r: &mut BufReader<std::net::TcpStream>) -> usize {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("hub ")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {line:?}"))
}

/// Runs `threads` hubs serving with `opts` (each handler answers `hub I`
/// to a line, then holds the connection until the client closes it) while
/// `client` runs on a thread of its own; returns how many connections each
/// hub served.
fn serve(
    threads: usize,
    opts: StreamServerBuilder,
    client: impl FnOnce(&Run) + Send + 'static,
) -> Vec<usize> {
    let listener = opts.bind_hubs("127.0.0.1:0").unwrap();
    let run = Run {
        addr: listener.local_addr(),
        started: Arc::default(),
        stop_hub_1: Arc::default(),
        hub_1_stopped: Arc::default(),
    };
    let (started, stop_hub_1, hub_1_stopped) = (
        run.started.clone(),
        run.stop_hub_1.clone(),
        run.hub_1_stopped.clone(),
    );
    let served = Arc::new(Mutex::new(vec![0usize; threads]));
    let hubs = Hubs::new().threads(threads);
    let stopper = hubs.stopper();
    let client = std::thread::spawn(move || {
        client(&run);
        stopper.stop();
    });
    let s = served.clone();
    let exits = hubs
        .run(move |hub| {
            let index = hub.index();
            let s = s.clone();
            let server = listener
                .server(hub, move |conn: TcpStream, _peer| {
                    let mut r = BufReader::new(&conn);
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    s.lock().unwrap()[index] += 1;
                    let _ = (&conn).write_all(format!("hub {index}\n").as_bytes());
                    let mut rest = Vec::new();
                    let _ = r.read_to_end(&mut rest);
                })
                .unwrap();
            server.start().unwrap();
            started.fetch_add(1, Ordering::SeqCst);
            if index == 1 {
                while !stop_hub_1.load(Ordering::SeqCst) && !hub.stop_requested() {
                    sleep(Duration::from_millis(1));
                }
                server.stop(Duration::from_secs(1));
                hub_1_stopped.store(true, Ordering::SeqCst);
            }
            hub.wait_stop();
            server.stop(Duration::from_secs(1))
        })
        .unwrap();
    client.join().unwrap();
    for e in &exits {
        assert_eq!(e.result.as_ref().unwrap(), &0, "handlers killed at stop");
    }
    let served = served.lock().unwrap().clone();
    served
}

#[test]
fn round_robin_gives_every_hub_its_turn_in_order() {
    let opts = StreamServer::builder().spread(Spread::RoundRobin);
    let served = serve(3, opts, |run| {
        run.wait_started(3);
        let mut order = Vec::new();
        for _ in 0..30 {
            let (_c, hub) = run.hello();
            order.push(hub);
        }
        // Consecutive connections go to consecutive hubs.
        for w in order.windows(2) {
            assert_eq!(w[1], (w[0] + 1) % 3, "{order:?}");
        }
    });
    assert_eq!(served, [10, 10, 10]);
}

#[test]
fn round_robin_skips_a_full_hub_and_holds_a_connection_while_all_are_full() {
    let opts = StreamServer::builder()
        .spread(Spread::RoundRobin)
        .max_connections(1);
    let served = serve(2, opts, |run| {
        run.wait_started(2);
        let (first, a) = run.hello();
        let (_second, b) = run.hello();
        assert_ne!(a, b, "one connection each");
        // Both hubs are full: the third is accepted but not served...
        let mut third = std::net::TcpStream::connect(run.addr).unwrap();
        third.write_all(b"hello\n").unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        let e = third.read(&mut byte).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e:?}"
        );
        // ...until a hub has room again: the one whose connection ended.
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(third);
        assert_eq!(read_hub(&mut r), a);
    });
    assert_eq!(served.iter().sum::<usize>(), 3);
}

#[test]
fn round_robin_leaves_a_stopped_hub_out() {
    let opts = StreamServer::builder().spread(Spread::RoundRobin);
    let served = serve(2, opts, |run| {
        run.wait_started(2);
        let mut hubs: Vec<usize> = (0..2).map(|_| run.hello().1).collect();
        hubs.sort();
        assert_eq!(hubs, [0, 1]);
        run.stop_hub_1.store(true, Ordering::SeqCst);
        while !run.hub_1_stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..6 {
            assert_eq!(run.hello().1, 0, "only hub 0 is left");
        }
    });
    assert_eq!(served, [7, 1]);
}

#[test]
fn reuse_port_gives_every_hub_a_listener_on_the_one_port() {
    let served = serve(2, StreamServer::builder(), |run| {
        run.wait_started(2);
        for _ in 0..64 {
            run.hello();
        }
    });
    assert_eq!(served.iter().sum::<usize>(), 64);
    // The kernel spread them: both hubs served some (all 64 on one side
    // has probability 2^-63).
    assert!(served.iter().all(|&n| n > 0), "{served:?}");
}

#[test]
fn a_bad_address_fails_before_any_hub_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = StreamServer::builder()
        .spread(Spread::RoundRobin)
        .bind_hubs(taken.local_addr().unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
}
