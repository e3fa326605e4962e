//! gevent's queue lesson: FIFO, LIFO and priority queues, and a
//! bounded queue between a fast producer and a slow consumer (the producer
//! waits whenever the queue is full).
//!
//! Output (exact):
//! ```text
//! fifo: 1 2 3
//! lifo: 3 2 1
//! priority: (1, "urgent") (2, "soon") (3, "later")
//! put 0
//! put 1
//! got 0
//! put 2 (waited for room)
//! got 1
//! put 3 (waited for room)
//! got 2
//! got 3
//! ```
use std::rc::Rc;
use std::time::Duration;

use verdant::sync::{LifoQueue, PriorityQueue, Queue};
use verdant::{joinall, sleep, spawn};

fn main() {
    let fifo = Queue::new();
    let lifo = LifoQueue::new();
    for i in 1..=3 {
        fifo.put(i).unwrap();
        lifo.put(i).unwrap();
    }
    let drain = |f: &dyn Fn() -> i32| {
        (0..3)
            .map(|_| f().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("fifo: {}", drain(&|| fifo.get().unwrap()));
    println!("lifo: {}", drain(&|| lifo.get().unwrap()));

    let prio = PriorityQueue::new();
    for item in [(3, "later"), (1, "urgent"), (2, "soon")] {
        prio.put(item).unwrap();
    }
    let order: Vec<String> = (0..3)
        .map(|_| format!("{:?}", prio.get().unwrap()))
        .collect();
    println!("priority: {}", order.join(" "));

    // A maximum size of 2: the producer is ahead by at most two items.
    let q = Rc::new(Queue::bounded(2));
    let q2 = q.clone();
    let producer = spawn(move || {
        for i in 0..4 {
            let full = q2.is_full();
            q2.put(i).unwrap();
            println!("put {i}{}", if full { " (waited for room)" } else { "" });
        }
    });
    let consumer = spawn(move || {
        for _ in 0..4 {
            sleep(Duration::from_millis(10));
            println!("got {}", q.get().unwrap());
        }
    });
    joinall([&producer, &consumer]).unwrap();
}
