//! The cooperative budget: a greenlet whose socket, channel or queue
//! operations, or joins, keep completing without a wait gives up its turn, so other
//! greenlets, timers and timeouts get theirs; the yield comes before an
//! operation, so an interruption there loses nothing. Each test here fails
//! without the budget (the loops under test never wait).

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use verdant::net::TcpStream;
use verdant::sync::{channel, Queue};
use verdant::{spawn, with_timeout, Hub};

/// A socket pair whose far end is drained by an OS thread, so that writes
/// on the near end keep succeeding.
fn drained_socket() -> (TcpStream, std::thread::JoinHandle<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    (TcpStream::connect(addr).unwrap(), t)
}

#[test]
fn budget_a_writer_whose_writes_succeed_lets_others_run() {
    let (mut s, drain) = drained_socket();
    let ticks = Rc::new(Cell::new(0u32));
    let t2 = ticks.clone();
    let ticker = spawn(move || loop {
        t2.set(t2.get() + 1);
        verdant::yield_now();
    });
    let seen_during = spawn(move || {
        let mut seen = 0;
        for _ in 0..2000 {
            // 100-byte writes: the drained socket never fills, so no write
            // waits.
            s.write_all(&[1u8; 100]).unwrap();
            seen = seen.max(ticks.get());
        }
        drop(s);
        seen
    })
    .join()
    .unwrap();
    ticker.kill();
    assert_eq!(drain.join().unwrap(), 200_000);
    // 2000 writes are 125 budgets of 16: the ticker ran between them.
    assert!(
        seen_during >= 50,
        "the ticker ran {seen_during} times during the writes"
    );
}

#[test]
fn budget_a_channel_loop_lets_a_timeout_fire_and_loses_nothing() {
    const N: usize = 200_000;
    let (tx, rx) = channel::unbounded::<usize>();
    for i in 0..N {
        tx.send(i).unwrap();
    }
    let got = Rc::new(Cell::new(0usize));
    let g2 = got.clone();
    // Each receive finds a message, so the loop never waits; only a budget
    // yield lets the 2 ms timeout take effect.
    let r = with_timeout(Duration::from_millis(2), || {
        while let Ok(i) = rx.recv() {
            assert_eq!(i, g2.get(), "messages out of order or lost");
            g2.set(g2.get() + 1);
            // A little work per message, so the loop outlasts the timeout
            // in any build.
            let mut x = 0usize;
            for k in 0..200 {
                x = std::hint::black_box(x + k);
            }
            if g2.get() == N {
                break;
            }
        }
    });
    assert!(
        r.is_err(),
        "the loop ran to the end: the timeout never fired"
    );
    let got = got.get();
    assert!(got < N);
    // The timeout struck between receives: none was taken and dropped.
    assert_eq!(got + rx.len(), N, "messages lost at the timeout");
    assert_eq!(rx.recv().unwrap(), got);
}

#[test]
fn budget_queue_puts_that_never_wait_yield() {
    let q: Queue<u32> = Queue::new();
    let other_ran = Rc::new(Cell::new(false));
    let o2 = other_ran.clone();
    let other = spawn(move || o2.set(true));
    let before = Hub::current().budget_yields();
    let mut ran_at = None;
    for i in 0..1000 {
        q.put(i).unwrap();
        if ran_at.is_none() && other_ran.get() {
            ran_at = Some(i);
        }
    }
    other.join().unwrap();
    assert!(Hub::current().budget_yields() > before);
    // The spawned greenlet got a turn within the first budget of 128 puts.
    let at = ran_at.expect("the other greenlet never ran during the puts");
    assert!(at <= 128, "it ran only after {at} puts");
    assert_eq!(q.len(), 1000);
}

/// Joining greenlets that have already finished never waits, so each join
/// spends budget: a loop joining many lets a sleeper's timer through
/// (joining 100,000 finished greenlets held the hub 20 ms in one turn),
/// and every value still arrives, in order.
#[test]
fn budget_joins_of_finished_greenlets_yield() {
    const N: usize = 1000;
    let hs: Vec<_> = (0..N).map(|i| spawn(move || i)).collect();
    verdant::sleep(Duration::ZERO); // they all run and finish
    assert!(hs.iter().all(|h| h.is_finished()));
    let other_ran = Rc::new(Cell::new(false));
    let o2 = other_ran.clone();
    let other = spawn(move || o2.set(true));
    let before = Hub::current().budget_yields();
    let mut ran_at = None;
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
        if ran_at.is_none() && other_ran.get() {
            ran_at = Some(i);
        }
    }
    assert!(Hub::current().budget_yields() > before);
    // The spawned greenlet got a turn within the first budget of 128 joins.
    let at = ran_at.expect("the other greenlet never ran during the joins");
    assert!(at <= 128, "it ran only after {at} joins");
    other.join().unwrap();
}
