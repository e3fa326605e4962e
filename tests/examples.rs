//! Runs every seed example and checks its exact output and order
//! (`../shared/SEEDS.md`). `cargo test` builds the examples next to the test
//! binary, in `target/<profile>/examples/`.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "example {name} was not built at {}",
        path.display()
    );
    path
}

/// Runs an example; returns its stdout lines and how long it took.
fn run(name: &str, args: &[&str]) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let out = Command::new(example(name)).args(args).output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{name} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    (stdout.lines().map(str::to_owned).collect(), took)
}

#[test]
fn greenlet_switch_variant_1_tom() {
    let (lines, took) = run("greenlet_switch", &["1"]);
    assert_eq!(
        lines,
        ["tom eat 1", "tom play 1", "tom eat 2", "tom play 2"]
    );
    // The plain thread::sleep(1 s) blocks everything.
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

#[test]
fn greenlet_switch_variant_2_numbers() {
    let (lines, _) = run("greenlet_switch", &["2"]);
    assert_eq!(lines, ["11", "33", "22", "44"]);
}

#[test]
fn greenlet_switch_variant_3_first_value() {
    let (lines, took) = run("greenlet_switch", &["3"]);
    assert_eq!(
        lines,
        ["小雪吃炸鸡", "小雪2喝啤酒", "小雪吃雪糕", "小雪2喝可乐"]
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[test]
fn producer_consumer_delivers_every_value() {
    let (lines, _) = run("producer_consumer", &["200000"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("time: ") && lines[0].contains("for 200000 sends"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("consumed 200000 values, sum {}", 199_999u64 * 200_000 / 2)
    );
}

#[test]
fn eat_play_takes_the_longest_sleep_not_the_sum() {
    let (lines, took) = run("eat_play", &[]);
    assert_eq!(
        lines[..4],
        ["tom eat 1", "tom play 1", "tom play 2", "tom eat 2"]
    );
    assert!(lines[4].starts_with("elapsed: "), "{lines:?}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(
        took < Duration::from_millis(4500),
        "about 3 s, not 5: {took:?}"
    );
}
