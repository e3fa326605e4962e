//! verdant in a program built with `panic = "abort"` (issue 24, PAN-8).
//!
//! libtest cannot run under `-C panic=abort` on stable Rust, so this test
//! has no harness: `main` runs each case in a child process of its own
//! (`panic_abort <case>`) and checks its exit status and stderr. Built
//! without `-C panic=abort` it checks nothing and says so; CI builds and
//! runs it with the flag:
//!
//! ```text
//! RUSTFLAGS="-C panic=abort" cargo test --target-dir target/panic-abort --test panic_abort
//! ```
//!
//! The behaviour checked is the one the runtime's crate documentation
//! defines for such a build: kills and drops abandon a suspended greenlet
//! (it never runs again, its destructors do not run, `join` says killed),
//! nothing is handed to it afterwards, the first abandonment warns once,
//! an expired `with_timeout` scope aborts with a message, and everything
//! else works as usual.

#[cfg(panic = "abort")]
mod cases {
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use verdant::net::{StreamServer, TcpListener, TcpStream};
    use verdant::sync::{channel, Event, Lock, Queue};
    use verdant::{
        joinall, killall, sleep, spawn, yield_now, Builder, Greenlet, GreenletExit, Pool,
    };

    /// Counts its drops: whether a greenlet's destructors ran.
    struct Drops(Rc<Cell<u32>>);

    impl Drop for Drops {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// Spawning, joining, the sync primitives, channels and their timed
    /// forms, sockets, and a `with_timeout` scope that ends in time: as in
    /// any build, and without a warning.
    pub fn ordinary() {
        let hs: Vec<_> = (0..1000u64)
            .map(|i| {
                spawn(move || {
                    sleep(Duration::from_millis(i % 7));
                    i * 2
                })
            })
            .collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 999 * 1000);

        let (tx, rx) = channel::bounded::<u32>(4);
        let producer = spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
        let got: u32 = (0..100).map(|_| rx.recv().unwrap()).sum();
        producer.join().unwrap();
        assert_eq!(got, 4950);
        assert!(rx.recv_timeout(Duration::from_millis(5)).is_err());

        let lock = Rc::new(Lock::new(()));
        let inside = Rc::new(Cell::new(0));
        let hs: Vec<_> = (0..10)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                spawn(move || {
                    let _g = lock.lock().unwrap();
                    inside.set(inside.get() + 1);
                    assert_eq!(inside.get(), 1);
                    sleep(Duration::from_millis(1));
                    inside.set(inside.get() - 1);
                })
            })
            .collect();
        joinall(hs).unwrap();

        let e = Event::new();
        assert!(e.wait_timeout(Duration::from_millis(5)).is_err());
        let q = Queue::new();
        q.put(1).unwrap();
        assert_eq!(q.get().unwrap(), 1);

        let slow = spawn(|| sleep(Duration::from_millis(50)));
        assert!(!slow.wait_timeout(Duration::from_millis(5)).unwrap());
        slow.join().unwrap();

        #[allow(deprecated)]
        let r = verdant::with_timeout(Duration::from_secs(5), || {
            sleep(Duration::from_millis(1));
            7
        });
        assert_eq!(r, Ok(7));

        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf).unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        server.join().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut quiet = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _peer = l.accept().unwrap();
        quiet
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let e = quiet.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e:?}");
        println!("ok");
    }

    /// A kill of an unstarted greenlet: it never runs, and what its
    /// function owned is dropped (no unwinding is needed for that).
    pub fn kill_unstarted() {
        let drops = Rc::new(Cell::new(0));
        let ran = Rc::new(Cell::new(false));
        let (d, r) = (Drops(drops.clone()), ran.clone());
        let h = spawn(move || {
            let _d = d;
            r.set(true);
        });
        h.kill();
        assert!(h.join().unwrap_err().is_killed());
        assert!(!ran.get());
        assert_eq!(drops.get(), 1);
        println!("ok");
    }

    /// Kills of greenlets parked in a sleep, an event, a channel, a lock and
    /// a socket read: each is abandoned (its guard is not dropped) and
    /// reported killed, and what is sent or released afterwards goes to the
    /// next live waiter, not to the abandoned one.
    pub fn kill_parked() {
        let drops = Rc::new(Cell::new(0));
        let ev = Rc::new(Event::new());
        let (tx, rx) = channel::unbounded::<u32>();
        let lock = Rc::new(Lock::new(()));
        let held = lock.try_lock().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (conn, _) = l.accept().unwrap();

        let mut victims = Vec::new();
        let guard = |drops: &Rc<Cell<u32>>| Drops(drops.clone());
        let d = guard(&drops);
        victims.push(spawn(move || {
            let _d = d;
            sleep(Duration::from_secs(3600));
        }));
        let (d, e) = (guard(&drops), ev.clone());
        victims.push(spawn(move || {
            let _d = d;
            e.wait().unwrap();
        }));
        let (d, r) = (guard(&drops), rx.clone());
        victims.push(spawn(move || {
            let _d = d;
            r.recv().unwrap();
            unreachable!("an abandoned receiver got a value");
        }));
        let (d, lk) = (guard(&drops), lock.clone());
        victims.push(spawn(move || {
            let _d = d;
            let _g = lk.lock().unwrap();
            unreachable!("an abandoned waiter got the lock");
        }));
        let d = guard(&drops);
        victims.push(spawn(move || {
            let _d = d;
            let mut conn = conn;
            let _ = conn.read(&mut [0; 16]);
            unreachable!("an abandoned reader read");
        }));
        yield_now(); // every victim parks
        yield_now();

        // Live waiters behind the victims, on the same channel and lock.
        let r2 = rx.clone();
        let receiver = spawn(move || r2.recv().unwrap());
        let lk = lock.clone();
        let locker = spawn(move || drop(lk.lock().unwrap()));
        yield_now();

        killall(victims.iter());
        for v in victims {
            assert!(v.join().unwrap_err().is_killed());
        }
        assert_eq!(drops.get(), 0, "an abandoned greenlet's destructors ran");

        tx.send(41).unwrap();
        assert_eq!(receiver.join().unwrap(), 41);
        drop(held);
        locker.join().unwrap();
        ev.set();
        println!("ok");
    }

    /// A receiver woken with a value and killed before it ran: it runs on
    /// with the value (nothing is lost) and is abandoned at its next wait.
    pub fn kill_woken() {
        let (tx, rx) = channel::unbounded::<u32>();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let r = spawn(move || loop {
            g.set(g.get() + rx.recv().unwrap());
        });
        yield_now(); // it parks in recv
        tx.send(5).unwrap(); // handed over: it is woken, not yet run
        r.kill();
        assert!(r.join().unwrap_err().is_killed());
        assert_eq!(
            got.get(),
            5,
            "the value handed over before the kill was lost"
        );
        println!("ok");
    }

    /// A greenlet that kills itself (with its own `JoinHandle`) stops
    /// there.
    pub fn kill_self() {
        let after = Rc::new(Cell::new(false));
        let cell: Rc<Cell<Option<verdant::JoinHandle<()>>>> = Rc::new(Cell::new(None));
        let (a, c) = (after.clone(), cell.clone());
        let h = Builder::new()
            .name("suicidal")
            .spawn(move || {
                sleep(Duration::from_millis(1));
                let me = c.take().unwrap();
                me.kill();
                a.set(true);
            })
            .unwrap();
        let g = h.greenlet().clone();
        cell.set(Some(h));
        let t0 = Instant::now();
        while !g.is_dead() {
            assert!(t0.elapsed() < Duration::from_secs(10), "it never died");
            sleep(Duration::from_millis(1));
        }
        assert!(!after.get(), "it ran past its own kill");
        println!("ok");
    }

    /// Raw greenlets: `throw` into a suspended one abandons it and hands
    /// its parent the `GreenletExit`; dropping a suspended one abandons it.
    pub fn raw_throw_and_drop() {
        let drops = Rc::new(Cell::new(0));
        let d = Drops(drops.clone());
        let g = Greenlet::new(move |()| {
            let _d = d;
            Greenlet::current().parent().unwrap().switch(1u8);
            unreachable!("resumed after its throw");
        });
        assert_eq!(g.switch(()).take::<u8>(), 1);
        assert!(g.throw().is::<GreenletExit>());
        assert!(g.is_dead());
        assert_eq!(drops.get(), 0);

        let d = Drops(drops.clone());
        let g = Greenlet::new(move |()| {
            let _d = d;
            Greenlet::current().parent().unwrap().switch(());
        });
        g.switch(());
        drop(g);
        assert_eq!(drops.get(), 0);
        println!("ok");
    }

    /// A pool whose members are killed (by the pool, and one by its own
    /// handle) gives their slots back, and its `join` returns.
    pub fn pool_kill() {
        let pool = Pool::new(2);
        let a = pool.spawn(|| sleep(Duration::from_secs(3600))).unwrap();
        pool.spawn(|| sleep(Duration::from_secs(3600))).unwrap();
        yield_now();
        a.kill();
        assert_eq!(pool.len(), 1);
        pool.kill();
        assert_eq!((pool.len(), pool.free_count()), (0, 2));
        let b = pool.spawn(|| 1).unwrap();
        let c = pool.spawn(|| 2).unwrap();
        assert_eq!(b.join().unwrap() + c.join().unwrap(), 3);
        let d = pool.spawn(|| sleep(Duration::from_secs(3600))).unwrap();
        yield_now();
        d.kill_nowait();
        pool.join().unwrap();
        println!("ok");
    }

    /// A server stopped with handlers parked in reads, and a thread whose
    /// hub ends with greenlets parked: both end, and the process exits 0.
    pub fn teardown() {
        let s = StreamServer::bind("127.0.0.1:0", |mut c, _| {
            let _ = c.read(&mut [0; 16]);
        })
        .unwrap();
        s.start().unwrap();
        let clients: Vec<_> = (0..10)
            .map(|_| TcpStream::connect(s.local_addr().unwrap()).unwrap())
            .collect();
        let t0 = Instant::now();
        while s.connections() < 10 {
            assert!(t0.elapsed() < Duration::from_secs(10));
            sleep(Duration::from_millis(1));
        }
        assert_eq!(s.stop(Duration::from_millis(10)), 10);
        assert_eq!(s.connections(), 0);
        drop(clients);

        std::thread::spawn(|| {
            for _ in 0..100 {
                spawn(|| sleep(Duration::from_secs(3600)));
            }
            sleep(Duration::from_millis(1));
        })
        .join()
        .unwrap();
        for _ in 0..100 {
            spawn(|| sleep(Duration::from_secs(3600)));
        }
        sleep(Duration::from_millis(1));
        println!("ok");
    }

    /// An expired `with_timeout` scope: the process says why and aborts.
    pub fn timeout_expires() {
        let _ = Builder::new()
            .name("impatient")
            .spawn(|| {
                #[allow(deprecated)]
                let _ = verdant::with_timeout(Duration::from_millis(5), || {
                    sleep(Duration::from_secs(3600))
                });
            })
            .unwrap()
            .join();
        unreachable!("the process has aborted");
    }

    /// A greenlet's panic: the hook names it, then the process aborts.
    pub fn greenlet_panics() {
        let _ = Builder::new()
            .name("doomed")
            .spawn(|| panic!("boom"))
            .unwrap()
            .join();
        unreachable!("the process has aborted");
    }

    /// `throw_panic` into a suspended greenlet: said, then aborted.
    pub fn throw_panic() {
        let g = Greenlet::new(|()| {
            Greenlet::current().parent().unwrap().switch(());
        });
        g.switch(());
        g.throw_panic("thrown in");
        unreachable!("the process has aborted");
    }
}

/// The cases (name, what it must end with, what stderr must contain).
#[cfg(panic = "abort")]
const CASES: &[(&str, fn(), End, &[&str])] = &[
    ("ordinary", cases::ordinary, End::Ok { warns: false }, &[]),
    (
        "kill_unstarted",
        cases::kill_unstarted,
        End::Ok { warns: false },
        &[],
    ),
    (
        "kill_parked",
        cases::kill_parked,
        End::Ok { warns: true },
        &[],
    ),
    (
        "kill_woken",
        cases::kill_woken,
        End::Ok { warns: true },
        &[],
    ),
    (
        "kill_self",
        cases::kill_self,
        End::Ok { warns: true },
        &["suicidal"],
    ),
    (
        "raw_throw_and_drop",
        cases::raw_throw_and_drop,
        End::Ok { warns: true },
        &[],
    ),
    ("pool_kill", cases::pool_kill, End::Ok { warns: true }, &[]),
    ("teardown", cases::teardown, End::Ok { warns: true }, &[]),
    (
        "timeout_expires",
        cases::timeout_expires,
        End::Abort,
        &["with_timeout", "impatient", "panic = \"abort\"", "aborting"],
    ),
    (
        "greenlet_panics",
        cases::greenlet_panics,
        End::Abort,
        &["boom", "doomed"],
    ),
    (
        "throw_panic",
        cases::throw_panic,
        End::Abort,
        &["thrown in", "panic = \"abort\"", "aborting"],
    ),
];

#[cfg(panic = "abort")]
#[derive(Clone, Copy, Debug)]
enum End {
    /// Exit status 0, "ok" printed; with `warns`, exactly one abandonment
    /// warning on stderr, else none.
    Ok { warns: bool },
    /// Killed by SIGABRT.
    Abort,
}

#[cfg(panic = "abort")]
fn main() {
    use std::os::unix::process::ExitStatusExt;

    let args: Vec<String> = std::env::args().collect();
    if let Some(case) = args.get(1).filter(|a| !a.starts_with('-')) {
        if let Some((_, f, ..)) = CASES.iter().find(|c| c.0 == case) {
            f();
            return;
        }
        if CASES.iter().all(|c| !c.0.contains(case.as_str())) {
            eprintln!("usage: panic_abort [CASE]; cases: {}", names());
            std::process::exit(2);
        }
    }
    let filter = args.get(1).filter(|a| !a.starts_with('-'));
    let exe = std::env::current_exe().unwrap();
    let mut failed = Vec::new();
    for &(name, _, end, needles) in CASES {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .arg(name)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let warnings = stderr.matches("cannot unwind: it is abandoned").count();
        let mut why = Vec::new();
        match end {
            End::Ok { warns } => {
                if !out.status.success() || stdout.trim() != "ok" {
                    why.push(format!("ended with {:?}", out.status));
                }
                if warnings != usize::from(warns) {
                    why.push(format!(
                        "{warnings} abandonment warnings, wanted {}",
                        u8::from(warns)
                    ));
                }
            }
            End::Abort => {
                if out.status.signal() != Some(libc::SIGABRT) {
                    why.push(format!("ended with {:?}, not SIGABRT", out.status));
                }
            }
        }
        for n in needles {
            if !stderr.contains(n) {
                why.push(format!("stderr lacks {n:?}"));
            }
        }
        if why.is_empty() {
            println!("case {name} ... ok");
        } else {
            println!(
                "case {name} ... FAILED: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                why.join("; ")
            );
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}

#[cfg(panic = "abort")]
fn names() -> String {
    CASES.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
}

#[cfg(not(panic = "abort"))]
fn main() {
    println!(
        "panic_abort: built with panic = \"unwind\"; nothing to check here. CI runs it as \
         RUSTFLAGS=\"-C panic=abort\" cargo test --target-dir target/panic-abort --test panic_abort"
    );
}
