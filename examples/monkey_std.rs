//! Seed 4 as gevent users write it: `monkey.patch_all()` first, then plain
//! blocking code. Here the code is plain std (`std::thread::sleep`), and
//! [`verdant::monkey::patch_all`] makes it cooperate, with no change to a
//! `use` line. The output and timing are the `monkey` example's: tom eats
//! and plays side by side (2 s, not 3), alex and egon too (3 s, not 5).
//!
//! With `--unpatched` the call is left out, and the same code runs in
//! sequence, as std's sleep blocks the thread.
//!
//! `cargo run --release --example monkey_std [-- 1|2] [--unpatched]`
//! (default: both variants)
use std::thread;
use std::time::{Duration, Instant};

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

fn usage() -> ! {
    eprintln!("usage: monkey_std [1|2] [--unpatched]");
    std::process::exit(2);
}

fn main() {
    let mut which = None;
    let mut patch = true;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "1" | "2" if which.is_none() => which = Some(a),
            "--unpatched" => patch = false,
            _ => usage(),
        }
    }
    if patch {
        verdant::monkey::patch_all(); // from gevent import monkey; monkey.patch_all()
    }
    let variants: [(&str, fn()); 2] = [("1", variant_1), ("2", variant_2)];
    for (name, run) in variants {
        if which.as_deref().is_none_or(|w| w == name) {
            let t = Instant::now();
            run();
            println!("elapsed: {:.1} s", t.elapsed().as_secs_f64());
        }
    }
}
