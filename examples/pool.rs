//! gevent's Pool lesson: map a slow function over ten inputs with at most
//! three greenlets at once. The results come back in input order, and the
//! run takes about ceil(10 / 3) = 4 rounds of the slow call, not 10.
//!
//! Output (the last line's timing varies):
//! ```text
//! squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
//! at most 3 ran at once
//! took 0.20 s (10 calls of 50 ms, 3 at a time)
//! ```
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{sleep, Pool};

fn main() {
    let pool = Pool::new(3);
    let running = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let t = Instant::now();
    let squares = pool
        .map(0..10u64, move |i| {
            r.set(r.get() + 1);
            p.set(p.get().max(r.get()));
            sleep(Duration::from_millis(50)); // the slow call
            r.set(r.get() - 1);
            i * i
        })
        .unwrap();
    println!("squares: {squares:?}");
    println!("at most {} ran at once", peak.get());
    println!(
        "took {:.2} s (10 calls of 50 ms, 3 at a time)",
        t.elapsed().as_secs_f64()
    );
}
