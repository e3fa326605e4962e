//! Pools, groups and scopes. Partly a port of gevent's
//! src/gevent/tests/test__pool.py (`test_apply`, `test_map`, `test_imap`,
//! `test_imap_unordered`, the pool-full cases, `test_kill`); skipped: the
//! `apply_async`/callback API (verdant returns handles instead), and the
//! thread-pool cases (see tests/remote.rs for spawn_blocking).
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::net::{TcpListener, TcpStream};
use verdant::{scope, sleep, spawn, Group, JoinErrorKind, Pool};

#[test]
fn pool_never_runs_more_than_its_size() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let hs: Vec<_> = (0..20)
        .map(|i| {
            let (r, p) = (running.clone(), peak.clone());
            pool.spawn(move || {
                r.set(r.get() + 1);
                p.set(p.get().max(r.get()));
                sleep(Duration::from_millis(1 + i % 3));
                r.set(r.get() - 1);
                i
            })
            .unwrap()
        })
        .collect();
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..20).sum());
    assert_eq!(peak.get(), 3);
    assert_eq!(pool.free_count(), 3);
}

#[test]
fn map_keeps_order_and_reports_the_first_failure() {
    let pool = Pool::new(4);
    let out = pool
        .map(0..50u64, |i| {
            sleep(Duration::from_micros(50 * (50 - i)));
            i * 2
        })
        .unwrap();
    assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    let err = pool
        .map(0..10u32, |i| {
            if i == 6 {
                panic!("item {i}");
            }
            i
        })
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("item 6"));
    pool.join().unwrap();
    assert_eq!(pool.free_count(), 4);
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    let pool = Pool::new(10);
    let got: Vec<u64> = pool
        .imap_unordered([40u64, 10, 30, 20], |ms| {
            sleep(Duration::from_millis(ms));
            ms
        })
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [10, 20, 30, 40]);
}

#[test]
fn try_spawn_gives_the_closure_back_when_full() {
    let pool = Pool::new(1);
    let _busy = pool.spawn(|| sleep(Duration::from_millis(20))).unwrap();
    let Err(f) = pool.try_spawn(|| 5) else {
        panic!("the pool of 1 is busy")
    };
    pool.join().unwrap();
    let Ok(h) = pool.try_spawn(f) else {
        panic!("the pool is free again")
    };
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn killing_a_greenlet_waiting_for_a_slot_frees_nothing_it_did_not_take() {
    let pool = Rc::new(Pool::new(1));
    let holder = pool.spawn(|| sleep(Duration::from_millis(50))).unwrap();
    let p2 = pool.clone();
    let waiter = spawn(move || p2.spawn(|| ()).map(|_| ()));
    sleep(Duration::from_millis(5));
    waiter.kill();
    assert_eq!(waiter.join().unwrap_err().kind(), JoinErrorKind::Killed);
    holder.join().unwrap();
    assert_eq!(pool.free_count(), 1);
    assert!(pool.is_empty());
}

#[test]
fn pool_and_group_kill_everything() {
    let pool = Pool::new(5);
    let group = Group::new();
    for _ in 0..5 {
        pool.spawn(|| sleep(Duration::from_secs(60))).unwrap();
        group.spawn(|| sleep(Duration::from_secs(60)));
    }
    sleep(Duration::from_millis(1));
    let t = Instant::now();
    pool.kill();
    group.kill();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(pool.is_empty() && group.is_empty());
    assert_eq!(pool.free_count(), 5);
}

#[test]
fn a_pool_server_holds_its_bound_under_a_flood() {
    // Issue 5 §3: accept loop spawns each connection into a Pool of 8; 200
    // clients connect at once; never more than 8 handlers, all served.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let active = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let (a, p) = (active.clone(), peak.clone());
    let server = spawn(move || {
        let pool = Pool::new(8);
        for conn in listener.incoming().take(200) {
            let mut conn = conn.unwrap();
            let (a, p) = (a.clone(), p.clone());
            pool.spawn(move || {
                a.set(a.get() + 1);
                p.set(p.get().max(a.get()));
                let mut buf = [0u8; 16];
                let n = conn.read(&mut buf).unwrap();
                sleep(Duration::from_millis(1));
                conn.write_all(&buf[..n]).unwrap();
                a.set(a.get() - 1);
            })
            .unwrap();
        }
        pool.join().unwrap();
    });
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&i.to_le_bytes()).unwrap();
                let mut back = [0u8; 4];
                s.read_exact(&mut back).unwrap();
                u32::from_le_bytes(back)
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), i as u32);
    }
    server.join().unwrap();
    assert_eq!(
        peak.get(),
        8,
        "the pool's bound is 8 and the flood fills it"
    );
    assert_eq!(active.get(), 0);
}

#[test]
fn scope_waits_for_every_child() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let r = scope(|s| {
        for ms in [5, 1, 3] {
            let d = d.clone();
            s.spawn(move || {
                sleep(Duration::from_millis(ms));
                d.set(d.get() + 1);
            });
        }
        "body"
    });
    assert_eq!(r.unwrap(), "body");
    assert_eq!(done.get(), 3);
}

#[test]
fn scope_kills_siblings_on_the_first_panic_and_reports_all_panics() {
    struct Dropped(Rc<Cell<u32>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let t = Instant::now();
    let d = drops.clone();
    let err = scope(|s| {
        for _ in 0..3 {
            let d = d.clone();
            s.spawn(move || {
                let _x = Dropped(d);
                sleep(Duration::from_secs(60));
            });
        }
        s.spawn(|| {
            sleep(Duration::from_millis(2));
            panic!("first")
        });
    })
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(drops.get(), 3, "every sibling unwound");
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].panic_message(), Some("first"));
}

#[test]
fn a_panicking_scope_body_kills_its_children_and_unwinds() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scope(|s| {
            s.spawn(move || {
                sleep(Duration::from_secs(60));
                f.set(true);
            });
            panic!("body");
        })
    }));
    assert!(r.is_err());
    assert!(!finished.get());
}

/// Uses about `kib` KiB of stack and returns a value that depends on it.
#[inline(never)]
fn use_stack(kib: usize) -> u64 {
    let mut buf = [0u8; 64 * 1024];
    std::hint::black_box(&mut buf);
    buf[kib % 1000] = kib as u8;
    let below = if kib > 64 { use_stack(kib - 64) } else { 0 };
    std::hint::black_box(buf[kib % 1000] as u64 + below)
}

#[test]
fn pool_with_builder_names_and_sizes_every_member() {
    use verdant::{Builder, Greenlet};
    let pool = Pool::with_builder(2, Builder::new().name("fetch").stack_size(2 << 20));
    let me = || (Greenlet::current().name(), Greenlet::current().stack_size());
    let want = ("fetch".into(), Some(2 << 20));
    assert_eq!(pool.spawn(me).unwrap().join().unwrap(), want);
    assert_eq!(pool.apply(me).unwrap(), want);
    assert_eq!(
        pool.map(0..3, move |_| me()).unwrap(),
        vec![want.clone(); 3]
    );
    let imapped: Vec<_> = pool.imap(0..3, move |_| me()).map(|r| r.unwrap()).collect();
    assert_eq!(imapped, vec![want.clone(); 3]);
    // 1.5 MiB of frames: past the default stack, inside the pool's.
    assert!(pool.apply(|| use_stack(1536)).unwrap() > 0);
    // spawn_with overrides the pool's options for one member.
    let h = pool
        .spawn_with(Builder::new().name("one-off").stack_size(64 * 1024), me)
        .unwrap();
    assert_eq!(h.join().unwrap(), ("one-off".into(), Some(64 * 1024)));
    pool.join().unwrap();
}

#[test]
fn pool_spawn_with_waits_for_a_slot_like_spawn() {
    use verdant::Builder;
    let pool = Pool::new(1);
    let t = Instant::now();
    let a = pool.spawn(|| sleep(Duration::from_millis(30))).unwrap();
    let b = pool
        .spawn_with(Builder::new().name("second"), move || t.elapsed())
        .unwrap();
    a.join().unwrap();
    assert!(b.join().unwrap() >= Duration::from_millis(30));
}

#[test]
fn group_with_builder_and_spawn_with() {
    use verdant::{Builder, Greenlet};
    let group = Group::with_builder(Builder::new().name("worker"));
    let a = group.spawn(|| Greenlet::current().name());
    let b = group.spawn_with(Builder::new().stack_size(3 << 20), || {
        (Greenlet::current().name(), Greenlet::current().stack_size())
    });
    assert_eq!(a.join().unwrap(), "worker");
    // A builder without a name gives the automatic one, not the group's.
    let (name, size) = b.join().unwrap();
    assert!(name.starts_with("Greenlet-"), "{name}");
    assert_eq!(size, Some(3 << 20));
    group.join().unwrap();
}

#[test]
fn scope_spawn_with_sizes_the_child_and_keeps_scope_rules() {
    use verdant::Builder;
    let r = scope(|s| {
        let big = s.spawn_with(Builder::new().name("deep").stack_size(2 << 20), || {
            use_stack(1536)
        });
        s.spawn_with(Builder::new().name("bad"), || -> () { panic!("bad input") });
        big.join()
    });
    // The panicking child is reported under its builder's name.
    let err = r.unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].name(), "bad");
}
