//! Idle compaction (`Hub::set_idle_compaction`): a greenlet parked long in
//! a sleep or an IO wait has its live frames copied to a buffer and its
//! stack's memory given back; it gets them back, intact, when it runs
//! again, or when it is killed, dropped or torn down with its thread.
//!
//! Every case turns it on with a short period (a few milliseconds) so that
//! compaction happens within the test, and checks data its greenlets keep
//! on their stacks across the wait. (`unsafe`: none of these greenlets
//! lends its stack to another thread, the contract of the setting.)

use std::cell::Cell;
use std::hint::black_box;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdant::net::{TcpListener, TcpStream};
use verdant::sync::Event;
use verdant::{sleep, spawn, Hub};

mod common;
use common::{echo, seeded};

/// The period the cases use.
const PERIOD: Duration = Duration::from_millis(5);

/// A byte of greenlet `i`'s data at offset `j`.
fn byte(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8
}

/// Waits (sleeping, so the hub runs its sweeps) until `done` holds, for at
/// most 10 s; panics with `what` if it never does.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(1));
    }
}

/// Turns compaction on for this thread's hub with `period`; false (and a
/// note) where it cannot work (valgrind, AddressSanitizer), where the
/// cases then have nothing to check.
fn turn_on(period: Duration) -> bool {
    let hub = Hub::current();
    // SAFETY: no greenlet of these tests lends its stack to a thread.
    unsafe { hub.set_idle_compaction(Some(period)) };
    let on = hub.idle_compaction() == Some(period);
    if !on {
        println!("idle compaction is off here (valgrind or AddressSanitizer): nothing to check");
    }
    on
}

fn turn_off() {
    // SAFETY: turning it off is always sound.
    unsafe { Hub::current().set_idle_compaction(None) };
}

fn compacted() -> usize {
    Hub::current().stack_stats().compacted
}

/// Recurses `depth` levels, each with `N` bytes of its own on the stack,
/// then runs `wait`; checks every level's bytes afterwards.
fn deep<const N: usize>(i: usize, depth: usize, wait: &dyn Fn()) -> bool {
    let mut mine = [0u8; N];
    for (j, b) in mine.iter_mut().enumerate() {
        *b = byte(i + depth, j);
    }
    black_box(&mut mine);
    let below = if depth == 0 {
        wait();
        true
    } else {
        deep::<N>(i, depth - 1, wait)
    };
    let intact = black_box(&mine)
        .iter()
        .enumerate()
        .all(|(j, &b)| b == byte(i + depth, j));
    below && intact
}

/// Sleeping greenlets, shallow and deep (a few pages of frames), are
/// compacted and resume with every byte of their frames intact; the
/// count goes back to zero as they run.
#[test]
fn sleeping_greenlets_are_compacted_and_resume_intact() {
    let hub = Hub::current();
    if !turn_on(PERIOD) {
        return;
    }
    let n = 300;
    let hs: Vec<_> = (0..n)
        .map(|i| {
            spawn(move || {
                // Every third one holds about 12 KiB of frames.
                let depth = if i % 3 == 0 { 12 } else { 0 };
                deep::<1000>(i, depth, &|| sleep(Duration::from_millis(400)))
            })
        })
        .collect();
    wait_until("every sleeper to be compacted", || compacted() >= n);
    let stats = hub.stack_stats();
    assert!(
        stats.compacted_bytes >= n * 1000,
        "{stats:?}: each keeps at least its 1000-byte array"
    );
    // What the hub reports of their stacks' use is what they had when
    // compacted (their stacks read as zero now): at least the array.
    let info = hub.run_info();
    let ids: std::collections::HashSet<u64> = hs.iter().map(|h| h.greenlet().id()).collect();
    let shown: Vec<_> = info
        .greenlets()
        .iter()
        .filter(|g| ids.contains(&g.id))
        .collect();
    assert_eq!(shown.len(), n);
    for g in shown {
        let used = g.stack_used.expect("readable outside valgrind");
        assert!(used >= 1000, "{g}: {used} bytes used");
    }
    let intact = hs.into_iter().map(|h| h.join().unwrap());
    assert_eq!(
        intact.filter(|&ok| ok).count(),
        n,
        "every frame came back intact"
    );
    assert_eq!(compacted(), 0, "all of them ran again");
    turn_off();
}

/// A compacted greenlet's stack memory is given back: its pages are no
/// longer resident (`mincore`), and come back when it runs.
#[test]
fn a_compacted_stack_holds_no_memory() {
    if !turn_on(PERIOD) {
        return;
    }
    let addr = Rc::new(Cell::new(0usize));
    let ev = Rc::new(Event::new());
    let (a, e) = (addr.clone(), ev.clone());
    let h = spawn(move || {
        let mine = [0x5au8; 2048];
        a.set(black_box(&mine).as_ptr() as usize);
        sleep(Duration::from_millis(300));
        let ok = black_box(&mine).iter().all(|&b| b == 0x5a);
        // Resident again, now that it runs.
        let back = resident(black_box(&mine).as_ptr() as usize);
        e.set();
        ok && back
    });
    wait_until("the sleeper to start", || addr.get() != 0);
    assert!(
        resident(addr.get()),
        "its frames are in memory while it is fresh"
    );
    wait_until("the sleeper to be compacted", || compacted() == 1);
    assert!(
        !resident(addr.get()),
        "the page of its frames was given back"
    );
    assert!(h.join().unwrap(), "intact and resident once it ran");
    assert!(ev.is_set());
    turn_off();
}

/// Whether the page holding `addr` is resident.
fn resident(addr: usize) -> bool {
    let page = addr & !4095;
    let mut v = 0u8;
    // SAFETY: `page` is a page of a greenlet stack mapping, alive for the
    // test's duration; `v` receives one byte.
    let r = unsafe { libc::mincore(page as *mut libc::c_void, 4096, &mut v) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    v & 1 == 1
}

/// A greenlet blocked in a socket read is compacted; the data that wakes
/// it arrives whole, and its frames are intact. A greenlet waiting on an
/// event keeps its stack (its wait list's node lives there).
#[test]
fn io_waits_are_compacted_and_event_waits_are_not() {
    if !turn_on(PERIOD) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mine = [0xc3u8; 1500];
        let mut buf = [0u8; 16];
        conn.read_exact(&mut buf).unwrap(); // parks here
        conn.write_all(&buf).unwrap();
        black_box(&mine).iter().all(|&b| b == 0xc3)
    });
    let ev = Rc::new(Event::new());
    let e = ev.clone();
    let waiter = spawn(move || {
        let mine = [0x3cu8; 700];
        e.wait().unwrap();
        black_box(&mine).iter().all(|&b| b == 0x3c)
    });
    let mut client = TcpStream::connect(addr).unwrap();
    wait_until("the reader to be compacted", || compacted() == 1);
    // Several more periods: the event waiter stays as it is.
    sleep(PERIOD * 8);
    assert_eq!(
        compacted(),
        1,
        "only the reader: the event waiter keeps its stack"
    );
    client.write_all(b"hello, compacted").unwrap();
    let mut back = [0u8; 16];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello, compacted");
    assert!(server.join().unwrap());
    ev.set();
    assert!(waiter.join().unwrap());
    turn_off();
}

/// The bytes one compacted connection handler keeps: `serve` starts
/// serving `listener` with [`echo::echo`] (an accept loop, which parks in
/// `accept` and is compacted too, at its one depth) and returns what
/// stops it. Several connections, each after one round trip.
fn kept_per_handler(serve: fn(TcpListener) -> echo::Stop) -> usize {
    const CONNS: usize = 4;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = serve(listener);
    wait_until("the accept loop to be compacted", || compacted() == 1);
    let accept_loop = Hub::current().stack_stats().compacted_bytes;
    let clients: Vec<TcpStream> = (0..CONNS)
        .map(|i| echo::round_trip(addr, i as u8))
        .collect();
    wait_until("the handlers and the accept loop to be compacted", || {
        compacted() == CONNS + 1
    });
    let handlers = Hub::current().stack_stats().compacted_bytes - accept_loop;
    drop(clients);
    stop();
    wait_until("every greenlet to have ended", || compacted() == 0);
    handlers / CONNS
}

/// A `StreamServer`'s connection handler parks about as shallow as the
/// same loop spawned by hand from an accept loop: the server moves one
/// pointer through the spawn's layers, not the connection and its state
/// (which kept 480 bytes more frames per idle connection, a release
/// build's figure, 1,649 bytes against 1,170).
#[test]
fn stream_server_handlers_park_as_shallow_as_plain_spawns() {
    if !turn_on(PERIOD) {
        return;
    }
    let plain = kept_per_handler(echo::by_hand);
    let served = kept_per_handler(echo::by_stream_server);
    println!("kept per handler: {plain} bytes spawned by hand, {served} under StreamServer");
    assert!(
        served <= plain + 160,
        "a StreamServer handler keeps {served} bytes of frames, one spawned by hand {plain}"
    );
    turn_off();
}

/// Dropped when its greenlet unwinds: counts itself if its bytes are
/// intact.
struct Guard {
    bytes: [u8; 600],
    tag: u8,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        assert!(
            self.bytes.iter().all(|&b| b == self.tag),
            "a guard's bytes changed"
        );
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Killing a compacted greenlet unwinds it on its restored frames: its
/// destructors run and see their data.
#[test]
fn a_compacted_greenlet_is_killed_with_its_destructors() {
    if !turn_on(PERIOD) {
        return;
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..20u8)
        .map(|tag| {
            let dropped = dropped.clone();
            spawn(move || {
                let g = Guard {
                    bytes: [tag; 600],
                    tag,
                    dropped,
                };
                sleep(Duration::from_secs(3600));
                drop(g);
            })
        })
        .collect();
    wait_until("the sleepers to be compacted", || compacted() == 20);
    for h in &hs {
        h.kill();
    }
    for h in hs {
        assert!(h.join().is_err(), "killed");
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        20,
        "every destructor ran, on intact frames"
    );
    assert_eq!(compacted(), 0);
    turn_off();
}

/// A thread that ends with compacted greenlets still parked: its hub's
/// teardown unwinds them, and their destructors run on intact frames.
#[test]
fn thread_exit_unwinds_compacted_greenlets() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        if !turn_on(PERIOD) {
            d.fetch_add(30, Ordering::SeqCst); // nothing to check
            return;
        }
        for tag in 0..30u8 {
            let dropped = d.clone();
            spawn(move || {
                let _g = Guard {
                    bytes: [tag; 600],
                    tag,
                    dropped,
                };
                sleep(Duration::from_secs(3600));
            });
        }
        wait_until("the sleepers to be compacted", || compacted() == 30);
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 30);
}

/// One greenlet compacted over and over (a connection that goes idle
/// between requests): each round it finds its data as it left it.
#[test]
fn compacted_again_and_again() {
    if !turn_on(PERIOD) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut intact = 0;
        for round in 0..6u8 {
            let mine = [round ^ 0x77; 900];
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap(); // compacted while it waits
            if b[0] == round && black_box(&mine).iter().all(|&x| x == round ^ 0x77) {
                intact += 1;
            }
            conn.write_all(&b).unwrap();
        }
        intact
    });
    let mut client = TcpStream::connect(addr).unwrap();
    for round in 0..6u8 {
        wait_until("the reader to be compacted", || compacted() == 1);
        client.write_all(&[round]).unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).unwrap();
        assert_eq!(b[0], round);
    }
    assert_eq!(h.join().unwrap(), 6);
    turn_off();
}

/// Turned off again, nothing more is compacted however long the wait; and
/// off is the default.
#[test]
fn off_by_default_and_off_means_never() {
    std::thread::spawn(|| {
        assert_eq!(Hub::current().idle_compaction(), None, "off by default");
        if !turn_on(PERIOD) {
            return;
        }
        let a = spawn(|| sleep(Duration::from_millis(400)));
        wait_until("the first sleeper to be compacted", || compacted() == 1);
        turn_off();
        assert_eq!(Hub::current().idle_compaction(), None);
        let b = spawn(|| sleep(Duration::from_millis(200)));
        sleep(PERIOD * 20);
        assert_eq!(compacted(), 1, "the second sleeper keeps its stack");
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(compacted(), 0);
    })
    .join()
    .unwrap();
}

/// Under seeded schedules (SCHED-1): sleepers with data on their stacks,
/// a socket reader and an event waiter, compacted and woken in every
/// order the seeds give.
#[test]
fn seeded_compaction() {
    seeded("seeded_compaction", || {
        // Off (valgrind, AddressSanitizer), the body still runs, as plain
        // waits.
        turn_on(Duration::from_millis(1));
        let sleepers: Vec<_> = (0..8)
            .map(|i| {
                spawn(move || {
                    deep::<300>(i, i % 3, &|| {
                        for _ in 0..3 {
                            sleep(Duration::from_millis(4 + i as u64));
                        }
                    })
                })
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let conn = std::cell::RefCell::new(conn);
            deep::<200>(99, 2, &|| {
                let mut buf = [0u8; 4];
                conn.borrow_mut().read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
            })
        });
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let waiter = spawn(move || deep::<200>(7, 1, &|| e.wait().unwrap()));
        let mut client = TcpStream::connect(addr).unwrap();
        // Off (valgrind, AddressSanitizer), nothing is compacted.
        let on = Hub::current().idle_compaction().is_some();
        wait_until("a compaction", || !on || compacted() > 0);
        client.write_all(b"ping").unwrap();
        ev.set();
        for h in sleepers {
            assert!(h.join().unwrap());
        }
        assert!(reader.join().unwrap());
        assert!(waiter.join().unwrap());
        turn_off();
    });
}
