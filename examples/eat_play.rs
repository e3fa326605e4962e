//! Seed 3 (gevent): the hub switches whenever a greenlet sleeps, so two
//! sleeps of 3 s and 2 s take about 3 s together, not 5.
//!
//! `cargo run --release --example eat_play`
use std::time::{Duration, Instant};
use verdant::prelude::*;

fn eat(name: &str) {
    println!("{name} eat 1");
    sleep(Duration::from_secs(3));
    println!("{name} eat 2");
}

fn play(name: &str) {
    println!("{name} play 1");
    sleep(Duration::from_secs(2));
    println!("{name} play 2");
}

fn main() {
    let start = Instant::now();
    let g1 = spawn(|| eat("tom"));
    let g2 = spawn(|| play("tom"));
    joinall([&g1, &g2]).unwrap();
    println!("elapsed: {:.1} s", start.elapsed().as_secs_f64());
}
