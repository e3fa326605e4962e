//! THR-2: a loom model of the protocol by which other threads wake a hub
//! (`Remote`, `RemoteRef`, `RemoteSender`: `runtime/src/remote.rs`).
//!
//! A sender pushes its message on the hub's channel, then sets the
//! `notified` flag with a swap, and writes the hub's `mio::Waker` (an
//! eventfd) only if the flag was clear. The hub, after each poll, drains:
//! if the flag is set it clears it with a swap and then takes every queued
//! message. The property: no message is ever left queued with the hub
//! asleep and nothing to wake it.
//!
//! loom cannot run crossbeam's channel, mio or the hub, so this is a
//! replica of the protocol with the same operations and orderings: a
//! mutex-guarded queue for the channel (crossbeam's is linearizable), an
//! atomic counter for the eventfd (a poll takes what is pending), and the
//! flag as in `remote.rs`. Keep the two in step. Two senders race the hub's
//! poll and drain; once they are done, the hub blocks in its poll and drains
//! only if a wake-up is pending. loom explores every interleaving (and the
//! weak-memory outcomes it models); the two broken variants below show that
//! the model catches a lost wake-up when the protocol has one.
//!
//! Not part of the normal build: loom is a dependency only under the
//! `verdant_loom` cfg. CI runs
//! `RUSTFLAGS="--cfg verdant_loom" cargo test --test thr2_loom`
//! (with a target directory of its own, as the flag rebuilds everything).
#![cfg(verdant_loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Where a variant puts the flag's operations.
#[derive(Clone, Copy)]
enum Protocol {
    /// `remote.rs`: push, then set; clear, then take.
    AsBuilt,
    /// Broken: the sender sets the flag before it pushes its message.
    FlagFirst,
    /// Broken: the hub clears the flag after it has taken the messages.
    ClearLast,
}

struct Shared {
    queue: Mutex<Vec<u32>>,
    notified: AtomicBool,
    /// The eventfd: wake-ups written and not yet read by a poll.
    pending: AtomicUsize,
    protocol: Protocol,
}

impl Shared {
    fn new(protocol: Protocol) -> Shared {
        Shared {
            queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            protocol,
        }
    }

    /// `Shared::send`.
    fn send(&self, msg: u32) {
        let set_flag = || {
            if !self.notified.swap(true, Ordering::AcqRel) {
                self.pending.fetch_add(1, Ordering::Release); // waker.wake()
            }
        };
        if let Protocol::FlagFirst = self.protocol {
            set_flag();
            self.queue.lock().unwrap().push(msg);
        } else {
            self.queue.lock().unwrap().push(msg);
            set_flag();
        }
    }

    /// `RemoteHub::drain`.
    fn drain(&self, got: &mut Vec<u32>) {
        if !self.notified.load(Ordering::Acquire) {
            return;
        }
        if let Protocol::ClearLast = self.protocol {
            got.append(&mut self.queue.lock().unwrap());
            self.notified.swap(false, Ordering::AcqRel);
        } else {
            self.notified.swap(false, Ordering::AcqRel);
            got.append(&mut self.queue.lock().unwrap());
        }
    }

    /// The hub's poll: whether a wake-up was pending (it reads them all).
    fn poll(&self) -> bool {
        self.pending.swap(0, Ordering::Acquire) > 0
    }
}

fn check(protocol: Protocol) {
    // Executions explored (a std counter: it lives outside the model).
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    loom::model(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::new(Shared::new(protocol));
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let shared = shared.clone();
                thread::spawn(move || shared.send(i))
            })
            .collect();
        // The hub, meanwhile: a poll that returned (for a timer, say) and
        // the drain that follows it.
        let mut got = Vec::new();
        shared.poll();
        shared.drain(&mut got);
        for s in senders {
            s.join().unwrap();
        }
        // Then it is idle: it blocks in its poll, and drains again only if
        // a wake-up is pending. Whatever is still queued otherwise is lost.
        if shared.poll() {
            shared.drain(&mut got);
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1], "a message was left with no wake-up pending");
    });
    println!(
        "every interleaving: {} executions, no message lost",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn no_message_is_left_without_a_wake_up() {
    check(Protocol::AsBuilt);
}

#[test]
#[should_panic(expected = "a message was left with no wake-up pending")]
fn the_model_catches_a_flag_set_before_the_message() {
    check(Protocol::FlagFirst);
}

#[test]
#[should_panic(expected = "a message was left with no wake-up pending")]
fn the_model_catches_a_flag_cleared_after_the_drain() {
    check(Protocol::ClearLast);
}
