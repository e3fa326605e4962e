//! Seed 4: ordinary blocking calls cooperate once "patched".
//!
//! gevent's `monkey.patch_all()` becomes a `use`: `thread::sleep` below is
//! `verdant::net::monkey::thread::sleep`, and the code is otherwise the
//! seed's. Variant 3 keeps std's `thread::sleep`, which blocks everything.
//!
//! `cargo run --release --example monkey [-- 1|2|3]` (default: all three)
use std::time::{Duration, Instant};

use verdant::net::monkey::thread; // monkey.patch_all()

fn eat(name: &str, secs: u64) {
    println!("{name} eat 1");
    thread::sleep(Duration::from_secs(secs));
    println!("{name} eat 2");
}

fn play(name: &str, secs: u64) {
    println!("{name} play 1");
    thread::sleep(Duration::from_secs(secs));
    println!("{name} play 2");
}

/// `gevent.joinall([gevent.spawn(eat, 'tom'), gevent.spawn(play, 'tom')])`
fn variant_1() {
    let g1 = verdant::spawn(|| eat("tom", 1));
    let g2 = verdant::spawn(|| play("tom", 2));
    verdant::joinall([&g1, &g2]).unwrap();
}

/// alex and egon, joined one by one: `g1.join(); g2.join()`.
fn variant_2() {
    let g1 = verdant::spawn(|| eat("alex", 2));
    let g2 = verdant::spawn(|| play("egon", 3));
    g1.join().unwrap();
    g2.join().unwrap();
}

/// Unpatched: std's sleep blocks the whole thread; the hub's sleep switches.
fn variant_3() {
    fn func() {
        println!("1");
        verdant::sleep(Duration::from_secs(1)); // gevent.sleep(1)
        println!("2");
    }
    fn func1() {
        println!("3");
        std::thread::sleep(Duration::from_secs(1)); // time.sleep(1), unpatched
        println!("4");
    }
    let _p2 = verdant::spawn(func1);
    let p1 = verdant::spawn(func);
    p1.join().unwrap();
}

fn main() {
    let which = std::env::args().nth(1);
    let variants: [(&str, fn()); 3] = [("1", variant_1), ("2", variant_2), ("3", variant_3)];
    for (name, run) in variants {
        if which.as_deref().is_none_or(|w| w == name) {
            let t = Instant::now();
            run();
            println!("elapsed: {:.1} s", t.elapsed().as_secs_f64());
        }
    }
}
