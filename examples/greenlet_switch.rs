//! Seed 1 (greenlet): two functions switching by hand.
//!
//! `cargo run --example greenlet_switch` runs the three variants in order;
//! `cargo run --example greenlet_switch -- 2` runs one.
//!
//! As in the Python, each function needs the other's greenlet, so the two
//! greenlets are thread-local "globals", created by `main` (their parent).
use std::time::Duration;
use verdant::Greenlet;

/// Variant 1: eat and play pass `tom` along; a plain `thread::sleep` does not switch.
mod tom {
    use super::*;
    thread_local! {
        static G1: Greenlet = Greenlet::new(eat);
        static G2: Greenlet = Greenlet::new(play);
    }
    fn g1() -> Greenlet {
        G1.with(Greenlet::clone)
    }
    fn g2() -> Greenlet {
        G2.with(Greenlet::clone)
    }

    fn eat(name: &'static str) {
        println!("{name} eat 1");
        g2().switch(name); // pause eat, start play with an argument
        println!("{name} eat 2");
        g2().switch(());
    }

    fn play(name: &'static str) {
        println!("{name} play 1");
        std::thread::sleep(Duration::from_secs(1)); // plain sleep does NOT switch: everything waits
        g1().switch(()); // resume eat where it paused
        println!("{name} play 2");
    }

    pub fn main() {
        let (g1, _g2) = (g1(), g2()); // created here, so main is their parent
        g1.switch("tom");
    }
}

/// Variant 2: f1/f2 with no arguments; f2's return goes to main, f1 stays suspended.
mod numbers {
    use super::*;
    thread_local! {
        static G1: Greenlet = Greenlet::new(f1);
        static G2: Greenlet = Greenlet::new(f2);
    }
    fn g1() -> Greenlet {
        G1.with(Greenlet::clone)
    }
    fn g2() -> Greenlet {
        G2.with(Greenlet::clone)
    }

    fn f1(_: ()) {
        println!("11");
        g2().switch(());
        println!("22");
        g2().switch(());
    }

    fn f2(_: ()) {
        println!("33");
        g1().switch(());
        println!("44");
    }

    pub fn main() {
        let (g1, _g2) = (g1(), g2());
        g1.switch(());
        assert!(g1.is_started() && !g1.is_dead(), "f1 is left suspended");
    }
}

/// Variant 3: a different value on the first switch into drink.
mod xiaoxue {
    use super::*;
    thread_local! {
        static F1: Greenlet = Greenlet::new(eat);
        static F2: Greenlet = Greenlet::new(drink);
    }
    fn f1() -> Greenlet {
        F1.with(Greenlet::clone)
    }
    fn f2() -> Greenlet {
        F2.with(Greenlet::clone)
    }

    fn eat(name: &'static str) {
        println!("{name}吃炸鸡");
        std::thread::sleep(Duration::from_secs(2)); // blocking: nothing else runs
        f2().switch("小雪2");
        println!("{name}吃雪糕");
        f2().switch(());
    }

    fn drink(name: &'static str) {
        println!("{name}喝啤酒");
        f1().switch(());
        println!("{name}喝可乐");
    }

    pub fn main() {
        let (f1, _f2) = (f1(), f2());
        f1.switch("小雪");
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("1") => tom::main(),
        Some("2") => numbers::main(),
        Some("3") => xiaoxue::main(),
        None => {
            tom::main();
            numbers::main();
            xiaoxue::main();
        }
        Some(other) => {
            eprintln!("usage: greenlet_switch [1|2|3] (got {other:?})");
            std::process::exit(2);
        }
    }
}
