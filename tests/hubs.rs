//! `Hubs`: N hub threads running one closure, stopped together (by a
//! `Stopper`, a panic, or SIGTERM in a child process), greenlets left over
//! unwound and counted, a server per hub on one port (`SO_REUSEPORT`), and
//! a connection handed from one hub to another as an `OwnedFd`.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use verdant::net::{StreamServer, TcpListener, TcpStream};
use verdant::{sleep, spawn, Hub, Hubs, Remote};

mod common;
use common::{child_case, run_child};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

#[test]
fn each_hub_runs_the_closure_on_a_thread_of_its_own() {
    let exits = Hubs::new()
        .threads(3)
        .name("worker")
        .run(|hub| (hub.index(), thread_name()))
        .unwrap();
    let got: Vec<_> = exits.into_iter().map(|e| e.result.unwrap()).collect();
    assert_eq!(
        got,
        [
            (0, "worker-0".to_owned()),
            (1, "worker-1".to_owned()),
            (2, "worker-2".to_owned())
        ]
    );
}

#[test]
fn a_stop_from_another_thread_ends_every_wait_and_leftovers_are_unwound() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let hubs = Hubs::new().threads(2);
    let stopper = hubs.stopper();
    let waiting = Arc::new(AtomicUsize::new(0));
    let w = waiting.clone();
    let d = dropped.clone();
    let t = std::thread::spawn(move || {
        while waiting.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        stopper.stop();
    });
    let exits = hubs
        .run(move |hub| {
            // Left parked: unwound (its destructor runs) once `run`'s
            // closure returns.
            let c = Counted(d.clone());
            spawn(move || {
                let _c = c;
                sleep(Duration::from_secs(3600));
            });
            w.fetch_add(1, Ordering::SeqCst);
            hub.wait_stop();
            hub.stop_requested()
        })
        .unwrap();
    t.join().unwrap();
    for e in &exits {
        assert!(
            e.result.as_ref().unwrap(),
            "hub {} returned before the stop",
            e.index
        );
        assert_eq!(e.unwound, 1);
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panic_on_one_hub_stops_the_others() {
    let exits = Hubs::new()
        .threads(2)
        .run(|hub| {
            if hub.index() == 0 {
                sleep(Duration::from_millis(10));
                panic!("hub 0 fails");
            }
            hub.wait_stop();
        })
        .unwrap();
    assert!(exits[0].result.is_err());
    assert!(exits[1].result.is_ok());
}

#[test]
fn a_server_per_hub_shares_one_port_and_stops_gracefully() {
    // Hub 0 binds port 0; hub 1 binds the port it got.
    let bound: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::new(Mutex::new(None));
    let b = bound.clone();
    let hubs = Hubs::new().threads(2);
    let stopper = hubs.stopper();
    let served = Arc::new(Mutex::new(Vec::new()));
    let listening = Arc::new(AtomicUsize::new(0));
    let (s, l) = (served.clone(), listening.clone());
    let client = std::thread::spawn(move || {
        while l.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let addr = b.lock().unwrap().unwrap();
        for i in 0..64 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(format!("{i}\n").as_bytes()).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert!(reply.starts_with("hub "), "{reply:?}");
        }
        stopper.stop();
    });
    let exits = hubs
        .run(move |hub| {
            let s = s.clone();
            let index = hub.index();
            let addr = if index == 0 {
                "127.0.0.1:0".parse().unwrap()
            } else {
                loop {
                    if let Some(a) = *bound.lock().unwrap() {
                        break a;
                    }
                    sleep(Duration::from_millis(1));
                }
            };
            let server = StreamServer::builder()
                .reuse_port(true)
                .bind(addr, move |mut conn, _| {
                    let mut line = [0u8; 8];
                    let _ = conn.read(&mut line);
                    s.lock().unwrap().push(index);
                    let _ = conn.write_all(format!("hub {index}").as_bytes());
                })
                .unwrap();
            server.start().unwrap();
            *bound.lock().unwrap() = Some(server.local_addr().unwrap());
            listening.fetch_add(1, Ordering::SeqCst);
            hub.wait_stop();
            server.stop(Duration::from_secs(1))
        })
        .unwrap();
    client.join().unwrap();
    for e in &exits {
        assert_eq!(e.result.as_ref().unwrap(), &0, "handlers killed at stop");
    }
    let served = served.lock().unwrap();
    assert_eq!(served.len(), 64);
    // The kernel spread them: both hubs served some (all 64 on one side
    // has probability 2^-63).
    assert!(served.contains(&0) && served.contains(&1), "{served:?}");
}

#[test]
fn a_connection_is_handed_to_another_hub_as_an_owned_fd() {
    let remotes: Arc<Mutex<Vec<Option<Remote>>>> = Arc::new(Mutex::new(vec![None, None]));
    let hubs = Hubs::new().threads(2);
    let stopper = hubs.stopper();
    let exits = hubs
        .run(move |hub| {
            remotes.lock().unwrap()[hub.index()] = Some(Hub::current().remote());
            if hub.index() == 1 {
                hub.wait_stop();
                return String::new();
            }
            // Hub 0 accepts and hands the connection over.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(b"ping").unwrap();
                let mut reply = String::new();
                c.read_to_string(&mut reply).unwrap();
                reply
            });
            let (conn, _) = listener.accept().unwrap();
            let fd = OwnedFd::from(conn); // Send: plain data now
            let other = loop {
                if let Some(r) = remotes.lock().unwrap()[1].clone() {
                    break r;
                }
                sleep(Duration::from_millis(1));
            };
            other
                .post(move || {
                    let mut conn = TcpStream::from(fd); // adopted by hub 1
                    let mut buf = [0u8; 4];
                    conn.read_exact(&mut buf).unwrap();
                    let reply = format!("{} on {}", String::from_utf8_lossy(&buf), thread_name());
                    conn.write_all(reply.as_bytes()).unwrap();
                })
                .unwrap();
            let reply = verdant::spawn_blocking(move || client.join().unwrap())
                .join()
                .unwrap();
            stopper.stop();
            reply
        })
        .unwrap();
    assert_eq!(exits[0].result.as_ref().unwrap(), "ping on verdant-hub-1");
}

/// SIGTERM requests the stop; the signals' previous actions are back at
/// once (a second SIGTERM acts as before) and after the run. (The previous
/// action of SIGINT is SIG_IGN in a background job of a shell without job
/// control, as CI runs it: restored as it was, not to the default.)
#[test]
fn sigterm_stops_the_hubs_when_asked() {
    fn disposition(sig: libc::c_int) -> usize {
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: queries the action only.
        let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
        assert_eq!(r, 0);
        old.sa_sigaction
    }
    if child_case().as_deref() == Some("sigterm") {
        let (term0, int0) = (disposition(libc::SIGTERM), disposition(libc::SIGINT));
        let waiting = Arc::new(AtomicUsize::new(0));
        let w = waiting.clone();
        std::thread::spawn(move || {
            while w.load(Ordering::SeqCst) < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            // SAFETY: signals our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        });
        let exits = Hubs::new()
            .threads(2)
            .stop_on_signals(true)
            .run(move |hub| {
                // The run's handler is in place.
                assert_ne!(disposition(libc::SIGTERM), term0);
                assert_ne!(disposition(libc::SIGINT), int0);
                waiting.fetch_add(1, Ordering::SeqCst);
                hub.wait_stop();
                // The first signal gave the old actions back.
                (disposition(libc::SIGTERM), disposition(libc::SIGINT)) == (term0, int0)
            })
            .unwrap();
        assert!(exits.iter().all(|e| *e.result.as_ref().unwrap()));
        assert_eq!(disposition(libc::SIGTERM), term0);
        assert_eq!(disposition(libc::SIGINT), int0);
        println!("child ok");
        return;
    }
    let out = run_child("sigterm_stops_the_hubs_when_asked", "sigterm", &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("child ok"),
        "{out:?}"
    );
}
