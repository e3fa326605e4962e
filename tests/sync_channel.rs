//! verdant's own channel tests: what `Select` / `select!` promise beyond
//! crossbeam's shape (the ports of crossbeam-channel's tests are in
//! `channel_port.rs`): a select that waits stands in line as a receiver,
//! sends as arms, two selects meeting on a rendezvous channel, fairness
//! among ready arms, and nothing lost or left registered when a selecting
//! greenlet is killed.

mod sync_common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sync_common::{on_fresh_thread, Drops, SMALL};
use verdant::select;
use verdant::sync::channel::{self, RecvError, Select, SendError};
use verdant::{sleep, spawn};

#[test]
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

#[test]
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

#[test]
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

#[test]
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

#[test]
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

#[test]
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

#[test]
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

#[test]
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
#[test]
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
