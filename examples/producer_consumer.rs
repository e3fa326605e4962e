//! Seed 2: generator-style switching. Switching alone buys no concurrency,
//! only cost: this measures what 10,000,000 sends cost.
//!
//! `cargo run --release --example producer_consumer [-- N]`
use std::time::Instant;
use verdant::Greenlet;

/// `while True: x = yield`, as a greenlet: each switch back to the producer
/// suspends the consumer until the next value arrives.
fn consumer(first: u64) -> (u64, u64) {
    let producer = Greenlet::current().parent().unwrap();
    let (mut count, mut sum) = (1, first);
    loop {
        match producer.switch(()).downcast::<u64>() {
            Ok(x) => {
                count += 1;
                sum += x;
            }
            Err(_) => return (count, sum), // the producer is done
        }
    }
}

fn producer(n: u64) -> (u64, u64) {
    let g = Greenlet::new(consumer);
    let start = Instant::now();
    for i in 0..n {
        g.switch(i); // g.send(i)
    }
    let elapsed = start.elapsed();
    let (count, sum) = g.switch("done").take::<(u64, u64)>();
    println!(
        "time: {:.3} s for {n} sends ({:.1} ns per send)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n.max(1) as f64
    );
    (count, sum)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N must be a number"))
        .unwrap_or(10_000_000);
    let (count, sum) = producer(n);
    println!("consumed {count} values, sum {sum}");
}
