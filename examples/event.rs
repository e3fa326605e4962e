//! gevent's Event lesson: one greenlet sets an event that
//! several others wait for, one of them with a timeout that expires first.
//!
//! Output (exact):
//! ```text
//! waiter 1 waits
//! waiter 2 waits
//! impatient waits at most 50 ms
//! impatient gave up: timed out waiting
//! setter sets the event after 100 ms
//! waiter 1 saw the event
//! waiter 2 saw the event
//! is_set = true
//! ```
use std::rc::Rc;
use std::time::Duration;

use verdant::sync::Event;
use verdant::{joinall, sleep, spawn};

fn main() {
    let event = Rc::new(Event::new());
    let mut hs = Vec::new();
    for i in 1..=2 {
        let e = event.clone();
        hs.push(spawn(move || {
            println!("waiter {i} waits");
            e.wait().unwrap();
            println!("waiter {i} saw the event");
        }));
    }
    let e = event.clone();
    hs.push(spawn(move || {
        println!("impatient waits at most 50 ms");
        if let Err(err) = e.wait_timeout(Duration::from_millis(50)) {
            println!("impatient gave up: {err}");
        }
    }));
    let e = event.clone();
    hs.push(spawn(move || {
        sleep(Duration::from_millis(100));
        println!("setter sets the event after 100 ms");
        e.set();
    }));
    joinall(&hs).unwrap();
    println!("is_set = {}", event.is_set());
}
