//! verdant's own channel tests: what `Select` / `select!` promise beyond
//! crossbeam's shape (the ports of crossbeam-channel's tests are in
//! `sync_channel_port.rs`): a select that waits stands in line as a receiver,
//! sends as arms, two selects meeting on a rendezvous channel, fairness
//! among ready arms, nothing lost or left registered when a selecting
//! greenlet is killed, and receives that do not wait (`try_recv`,
//! `recv_timeout(0)`, `try_select`) meeting a select that waits to send.

mod common;
mod sync_common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sync_common::{on_fresh_thread, Drops, SMALL};
use verdant::select;
use verdant::sync::channel::{self, RecvError, Select, SendError};
use verdant::{sleep, spawn};

common::seeded_tests! {
fn select_send_and_select_recv_meet_on_a_rendezvous() {
    on_fresh_thread("rendezvous", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let (_q_tx, quiet) = channel::bounded::<u32>(0);
        let (q2_tx, _q2_rx) = channel::bounded::<u32>(0);
        // Neither side is a plain blocking call: both are selects.
        let receiver = spawn(move || {
            select! {
                recv(rx) -> m => m.unwrap(),
                recv(quiet) -> _m => unreachable!(),
            }
        });
        sleep(Duration::ZERO); // the receiving select now waits
        let sent = select! {
            send(q2_tx, 1) -> _r => unreachable!("nobody receives on q2"),
            send(tx, 42) -> r => r.is_ok(),
            timeout(Duration::from_secs(5)) => false,
        };
        assert!(sent, "the send arm should meet the waiting receive arm");
        assert_eq!(receiver.join().unwrap(), 42);
    });
}

fn a_waiting_select_send_meets_a_later_receiver() {
    on_fresh_thread("later receiver", || {
        let (tx, rx) = channel::bounded::<&str>(0);
        let sender = spawn(move || {
            select! {
                send(tx, "late") -> r => r.map_err(|e| e.into_inner()),
            }
        });
        sleep(SMALL);
        assert!(!sender.is_finished(), "nobody received yet");
        assert_eq!(rx.recv(), Ok("late"));
        assert_eq!(sender.join().unwrap(), Ok(()));
    });
}

fn send_arm_reports_disconnection_with_the_message() {
    on_fresh_thread("disconnected send", || {
        let (tx, rx) = channel::bounded::<String>(0);
        let waiting = spawn(move || {
            select! {
                send(tx, String::from("kept")) -> r => r,
            }
        });
        sleep(Duration::ZERO);
        drop(rx); // wakes the select: the send is now "ready" (it fails)
        match waiting.join().unwrap() {
            Err(SendError::Disconnected(m)) => assert_eq!(m, "kept"),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    });
}

fn ready_arms_are_picked_fairly() {
    on_fresh_thread("fair", || {
        let (tx1, rx1) = channel::unbounded::<u8>();
        let (tx2, rx2) = channel::unbounded::<u8>();
        let mut counts = [0u32; 2];
        for _ in 0..2000 {
            tx1.send(1).unwrap();
            tx2.send(2).unwrap();
            let which = select! {
                recv(rx1) -> _m => 0,
                recv(rx2) -> _m => 1,
            };
            counts[which] += 1;
            // Drain the other, so both are ready again next round.
            let _ = rx1.try_recv();
            let _ = rx2.try_recv();
        }
        // Always picking the first would give [2000, 0].
        assert!(
            counts.iter().all(|&c| c > 700),
            "both ready arms should be chosen about equally: {counts:?}"
        );
    });
}

fn a_message_handed_to_a_killed_select_is_not_lost() {
    on_fresh_thread("kill handed", || {
        let drops = Drops::default();
        let (tx, rx) = channel::unbounded();
        let rx = Rc::new(rx);
        let r = rx.clone();
        let selector = spawn(move || {
            select! { recv(r) -> m => m.map(|_t| ()) }
        });
        sleep(Duration::ZERO); // it waits, in line as a receiver
        tx.send(drops.token()).unwrap(); // handed to it ...
        selector.kill(); // ... but it dies before it runs
        assert!(selector.join().unwrap_err().is_killed());
        assert_eq!(drops.count(), 0, "the message must not be dropped");
        assert_eq!(rx.len(), 1, "it goes back into the channel");
        drop(rx.try_recv().unwrap());
        assert_eq!(drops.count(), 1);
    });
}

fn a_message_handed_to_a_killed_select_goes_to_the_next_receiver() {
    on_fresh_thread("kill handed next", || {
        let (tx, rx) = channel::unbounded::<u32>();
        let rx = Rc::new(rx);
        let r1 = rx.clone();
        let selector = spawn(move || select! { recv(r1) -> m => m.unwrap() });
        let r2 = rx.clone();
        let plain = spawn(move || r2.recv().unwrap());
        sleep(Duration::ZERO); // both wait: the select first
        tx.send(9).unwrap();
        selector.kill();
        assert_eq!(plain.join().unwrap(), 9);
    });
}

fn select_leaves_no_registration_behind() {
    on_fresh_thread("no leftovers", || {
        let (tx1, rx1) = channel::bounded::<u32>(0);
        let (tx2, rx2) = channel::bounded::<u32>(0);
        for _ in 0..1000 {
            let t = Instant::now();
            let r = select! {
                recv(rx1) -> _m => 1,
                send(tx2, 5) -> _r => 2,
                timeout(Duration::from_micros(10)) => 0,
            };
            assert_eq!(r, 0);
            assert!(t.elapsed() < Duration::from_secs(1));
        }
        // Had the timed-out selects stayed in line as receivers on rx1, a
        // send would be "handed" to a dead waiter and lost; it must find
        // nobody and fail.
        assert!(tx1.try_send(1).is_err());
        // Nor may they count as waiting senders on tx2.
        assert!(rx2.try_recv().is_err());
    });
}

fn selects_on_both_ends_ping_pong() {
    on_fresh_thread("ping pong", || {
        let (a_tx, a_rx) = channel::bounded::<u32>(0);
        let (b_tx, b_rx) = channel::bounded::<u32>(0);
        let (stop_tx, stop_rx) = channel::bounded::<()>(0);
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let echo = spawn(move || loop {
            select! {
                recv(a_rx) -> m => {
                    let v = m.unwrap();
                    l.borrow_mut().push(v);
                    b_tx.send(v + 1).unwrap();
                },
                recv(stop_rx) -> _m => break,
            }
        });
        for i in 0..100u32 {
            let mut sel = Select::new();
            let s = sel.send(&a_tx);
            assert_eq!(sel.select(), Ok(s));
            a_tx.try_send(i * 2).unwrap();
            assert_eq!(b_rx.recv(), Ok(i * 2 + 1));
        }
        stop_tx.send(()).unwrap();
        echo.join().unwrap();
        assert_eq!(log.borrow().len(), 100);
        drop(a_tx);
        assert_eq!(b_rx.recv(), Err(RecvError::Disconnected));
    });
}

/// A finished wait leaves its record for the next wait on the same list to
/// reuse (no allocation per blocking call); that record must not keep the
/// greenlet that waited alive: dropping the last handle of a greenlet parked
/// elsewhere still unwinds it.
fn reused_wait_record_keeps_no_greenlet_alive() {
    on_fresh_thread("spare", || {
        let drops = Drops::default();
        let (tx, rx) = channel::bounded::<u32>(0);
        let main = verdant::Greenlet::current();
        let token = drops.token();
        let g = verdant::Greenlet::new(move |()| {
            let _token = token;
            assert_eq!(rx.recv(), Ok(7)); // a hub wait on rx's getter list
            main.switch(()); // parked outside the hub: only `g` holds it
            unreachable!("dropped while suspended");
        });
        spawn(move || tx.send(7).unwrap());
        g.switch(());
        assert_eq!(drops.count(), 0);
        drop(g);
        assert_eq!(drops.count(), 1, "the greenlet was not unwound");
    });
}
}
/// Counts how often a send arm's message expression was evaluated.
fn counted(n: &Rc<std::cell::Cell<u32>>, v: u32) -> u32 {
    n.set(n.get() + 1);
    v
}

/// Spawns a greenlet whose select waits to send `v` into `tx` (its only
/// arm) and returns its handle and how often its message was evaluated.
fn waiting_select_send(
    tx: channel::Sender<u32>,
    v: u32,
) -> (verdant::JoinHandle<bool>, Rc<std::cell::Cell<u32>>) {
    let evaluated = Rc::new(std::cell::Cell::new(0));
    let n = evaluated.clone();
    let h = spawn(move || {
        select! {
            send(tx, counted(&n, v)) -> r => r.is_ok(),
        }
    });
    sleep(Duration::ZERO); // it now waits, watching tx
    (h, evaluated)
}

#[test]
fn try_recv_meets_a_select_waiting_to_send() {
    on_fresh_thread("try_recv meets select", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let (sender, evaluated) = waiting_select_send(tx, 7);
        assert_eq!(
            evaluated.get(),
            0,
            "the message waits until the send is chosen"
        );
        assert_eq!(rx.try_recv(), Ok(7));
        assert_eq!(evaluated.get(), 1);
        assert!(sender.join().unwrap());
        assert_eq!(rx.try_recv(), Err(channel::TryRecvError::Disconnected));
    });
}

#[test]
fn recv_timeout_zero_and_a_default_select_meet_a_select_waiting_to_send() {
    on_fresh_thread("zero timeout meets select", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let tx2 = tx.clone();
        let (first, _) = waiting_select_send(tx, 1);
        assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(1));
        assert!(first.join().unwrap());
        let (second, _) = waiting_select_send(tx2, 2);
        let got = select! {
            recv(rx) -> m => m.ok(),
            default => None,
        };
        assert_eq!(got, Some(2), "a default select must see the waiting send");
        assert!(second.join().unwrap());
    });
}

#[test]
fn try_select_reports_a_receive_that_a_waiting_select_sent_into() {
    on_fresh_thread("try_select meets select", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let (_idle_tx, idle_rx) = channel::bounded::<u32>(0);
        let (sender, _) = waiting_select_send(tx, 9);
        let mut sel = Select::new();
        let _ = sel.recv(&idle_rx);
        let i = sel.recv(&rx);
        assert_eq!(sel.try_select(), Some(i));
        // Handed over already: held for this receive, which does not wait.
        assert_eq!(rx.try_recv(), Ok(9));
        assert!(sender.join().unwrap());
    });
}

#[test]
fn try_recv_finds_nothing_when_the_waiting_select_dies_first() {
    on_fresh_thread("select dies", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let (sender, evaluated) = waiting_select_send(tx, 3);
        // Queued before the select is woken, so it runs first and kills it.
        let s = Rc::new(sender);
        let s2 = s.clone();
        let killer = spawn(move || s2.kill());
        let t = Instant::now();
        // The kill is delivered after this turn: the channel is still open.
        assert_eq!(rx.try_recv(), Err(channel::TryRecvError::Empty));
        assert!(t.elapsed() < SMALL, "one turn, not a wait");
        assert_eq!(evaluated.get(), 0, "its send was never chosen");
        killer.join().unwrap();
        let Ok(s) = Rc::try_unwrap(s) else {
            panic!("the killer still holds the handle");
        };
        assert!(s.join().unwrap_err().is_killed());
    });
}

#[test]
fn a_message_handed_in_a_try_recv_turn_survives_a_kill() {
    on_fresh_thread("kill in the turn", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let rx = Rc::new(rx);
        let r = rx.clone();
        // The receiver's try_recv stands in line for one turn; the select
        // hands it the message and then kills it before it runs again.
        let receiver: Rc<RefCell<Option<verdant::JoinHandle<()>>>> = Rc::default();
        let recv_slot = receiver.clone();
        let evaluated = Rc::new(std::cell::Cell::new(0));
        let n = evaluated.clone();
        let sender = spawn(move || {
            select! {
                send(tx, counted(&n, 5)) -> r => {
                    r.unwrap();
                    recv_slot.borrow().as_ref().unwrap().kill_nowait();
                },
            }
        });
        sleep(Duration::ZERO);
        *receiver.borrow_mut() = Some(spawn(move || {
            let _ = r.try_recv();
            unreachable!("killed before its try_recv returned");
        }));
        sender.join().unwrap();
        let h = receiver.borrow_mut().take().unwrap();
        assert!(h.join().unwrap_err().is_killed());
        assert_eq!(evaluated.get(), 1);
        assert_eq!(rx.try_recv(), Ok(5), "the handed message was passed on");
    });
}

/// A try_recv turn that was handed a message was also woken through its
/// token: that second wake-up must go stale, not resume the greenlet later
/// while it is parked in a raw switch.
#[test]
fn a_try_recv_turn_leaves_no_wake_up_behind() {
    on_fresh_thread("no stray wake", || {
        let (tx, rx) = channel::bounded::<u32>(0);
        let (sender, _) = waiting_select_send(tx, 11);
        let main = verdant::Greenlet::current();
        let g = verdant::Greenlet::new(move |()| {
            let got = rx.try_recv();
            main.switch(got); // parked outside the hub
            "done"
        });
        assert_eq!(
            g.switch(()).take::<Result<u32, channel::TryRecvError>>(),
            Ok(11)
        );
        // Let the hub run whatever is queued: nothing may resume `g`.
        for _ in 0..10 {
            sleep(Duration::ZERO);
        }
        assert!(sender.join().unwrap());
        assert_eq!(g.switch(()).take::<&str>(), "done");
    });
}

common::seeded_tests! {
// verdant-specific: a randomized stress of selects (whose waiters are boxed
// and listed by address) and plain sends and receives, under timeouts and
// kills. Forty greenlets each pick, at random, a select over two receives
// and a timeout, a select over two sends and a timeout, or a plain
// `send_timeout` / `recv_timeout`, on a rendezvous channel and a channel
// bounded at 2; a killer kills random ones. Every message whose send
// returned `Ok` is received exactly once (or is still in a channel), one
// whose sender was killed inside the send at most once, nothing else.
fn stress_selects_under_timeouts_and_kills_lose_and_duplicate_nothing() {
    use common::Rng;
    use sync_common::{join_expecting_kills, kill_at_random, Ledger};
    use verdant::yield_now;

    const WORKERS: u64 = 40;
    const ROUNDS: u64 = 120;
    let (a_tx, a_rx) = channel::bounded::<u64>(0);
    let (b_tx, b_rx) = channel::bounded::<u64>(2);
    let ledger = Ledger::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (a_tx, a_rx, b_tx, b_rx) = (a_tx.clone(), a_rx.clone(), b_tx.clone(), b_rx.clone());
            let ledger = ledger.clone();
            spawn(move || {
                let mut rng = Rng(0x51_7CC1_B727_220A ^ (w + 1));
                for round in 0..ROUNDS {
                    let r = rng.next_u64();
                    let t = Duration::from_micros(r % 300);
                    let item = w * ROUNDS + round;
                    let (tx, rx) = if r & 4 == 0 {
                        (&a_tx, &a_rx)
                    } else {
                        (&b_tx, &b_rx)
                    };
                    match r % 4 {
                        0 => ledger.received(select! {
                            recv(a_rx) -> m => m.ok(),
                            recv(b_rx) -> m => m.ok(),
                            timeout(t) => None,
                        }),
                        // A select's message is evaluated only when its arm
                        // is chosen, and then sent at once.
                        1 => ledger.send(item, || {
                            select! {
                                send(a_tx, item) -> r => r.is_ok(),
                                send(b_tx, item) -> r => r.is_ok(),
                                timeout(t) => false,
                            }
                        }),
                        2 => ledger.send(item, || tx.send_timeout(item, t).is_ok()),
                        _ => ledger.received(rx.recv_timeout(t).ok()),
                    }
                    if r.is_multiple_of(5) {
                        yield_now();
                    }
                }
            })
        })
        .collect();
    let mut rng = Rng(7);
    let killed = kill_at_random(&workers, &mut || rng.next_u64(), 300, 6);
    join_expecting_kills(workers, killed);
    ledger.check(a_rx.try_iter().chain(b_rx.try_iter()));
}

/// Items larger than the inlined path's limit (32 bytes) block and hand
/// over through the out-of-line path; small ones through the inlined one.
/// Both must deliver every item, in order, across waits on either side.
fn large_and_small_items_both_wait_and_arrive_in_order() {
    on_fresh_thread("sizes", || {
        fn run<T: Clone + PartialEq + std::fmt::Debug + 'static>(cap: usize, make: fn(u32) -> T) {
            let (tx, rx) = channel::bounded::<T>(cap);
            let (back_tx, back_rx) = channel::bounded::<T>(cap);
            let echo = spawn(move || {
                while let Ok(v) = rx.recv() {
                    if back_tx.send(v).is_err() {
                        break;
                    }
                }
            });
            for i in 0..200 {
                tx.send(make(i)).unwrap();
                assert_eq!(back_rx.recv().unwrap(), make(i));
            }
            drop(tx);
            echo.join().unwrap();
            assert_eq!(back_rx.recv(), Err(RecvError::Disconnected));
        }
        for cap in [0, 1, 4] {
            run(cap, |i| i as u64);
            run(cap, |i| [i as u8; 300]);
            run(cap, |i| vec![i; 3]);
        }
    });
}
}
