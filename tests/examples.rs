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

/// Kills the child when dropped, so a failed assertion leaves no server.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn echo_server_and_client_500_greenlets() {
    use std::io::BufRead;
    let mut server = Reap(
        Command::new(example("echo_server"))
            .args(["--addr", "127.0.0.1", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let (lines, _) = run(
        "echo_client",
        &["--addr", &addr, "--conns", "500", "--msgs", "20"],
    );
    assert_eq!(lines[0], "clients: 500 ok, 0 failed");
    assert_eq!(lines[1], "replies: 10000 checked");
    assert!(lines[2].starts_with("throughput: "), "{lines:?}");
    // The server is still serving after 500 clients came and went.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut s, b"still up").unwrap();
    let mut buf = [0u8; 8];
    std::io::Read::read_exact(&mut s, &mut buf).unwrap();
    assert_eq!(&buf, b"STILL UP");
}

#[test]
fn echo_client_with_its_own_server() {
    let (lines, _) = run("echo_client", &["--conns", "50", "--msgs", "10"]);
    assert_eq!(lines[0], "clients: 50 ok, 0 failed");
    assert_eq!(lines[1], "replies: 500 checked");
}

/// Drops the trailing `elapsed: …` line, returning it separately.
fn split_elapsed(mut lines: Vec<String>) -> (Vec<String>, String) {
    let last = lines.pop().unwrap_or_default();
    assert!(last.starts_with("elapsed: "), "{last:?}");
    (lines, last)
}

#[test]
fn monkey_variant_1_tom_patched_sleeps_overlap() {
    let (lines, took) = run("monkey", &["1"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["tom eat 1", "tom play 1", "tom eat 2", "tom play 2"]
    );
    // 1 s and 2 s side by side: about 2 s, not 3.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(2800), "{took:?}");
}

#[test]
fn monkey_variant_2_joined_one_by_one() {
    let (lines, took) = run("monkey", &["2"]);
    let (lines, _) = split_elapsed(lines);
    assert_eq!(
        lines,
        ["alex eat 1", "egon play 1", "alex eat 2", "egon play 2"]
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_millis(3800), "{took:?}");
}

#[test]
fn monkey_variant_3_unpatched_sleep_blocks() {
    let (lines, took) = run("monkey", &["3"]);
    let (lines, _) = split_elapsed(lines);
    // First spawned runs first; std's sleep does not switch.
    assert_eq!(lines, ["3", "4", "1", "2"]);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(2800), "{took:?}");
}
