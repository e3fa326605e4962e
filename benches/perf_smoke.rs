//! CI's performance smoke: verdant against an in-run peer on the hot paths
//! (yield against may, a channel ping-pong against may, spawn+join against
//! tokio), as ratios. CI machines are noisy, and absolute times with them;
//! the ratio of two runtimes measured side by side in one process is not.
//!
//! ```text
//! cargo bench --bench perf_smoke              # print the table
//! cargo bench --bench perf_smoke -- --check   # also fail (exit 1) when a ratio is
//!                                             # more than 1.5x worse than recorded
//! cargo bench --bench perf_smoke -- --record  # write the ratios measured now
//! ```
//!
//! The recorded ratios are in `benches/perf_ratios.txt`. Each row is the
//! median over paired rounds (verdant then the peer, or the other way, in
//! turn) of verdant's time divided by the peer's; about ten seconds in all.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use common::micro;
use common::{has_flag, median};

/// Paired rounds per row.
const ROUNDS: usize = 11;

/// A ratio more than this many times its recorded value fails `--check`.
const TOLERANCE: f64 = 1.5;

const RATIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/perf_ratios.txt");

/// One comparison: verdant's workload and the peer's, each given its size.
struct Row {
    name: &'static str,
    what: &'static str,
    ops: u64,
    verdant: Box<dyn Fn(u64) -> Duration>,
    peer: Box<dyn Fn(u64) -> Duration>,
}

/// The median over paired rounds of verdant's time over the peer's, with
/// the medians of each side's ns per op.
fn measure(row: &Row) -> (f64, f64, f64) {
    // Warm-up: stacks, caches, the peers' worker threads.
    (row.verdant)(row.ops / 10);
    (row.peer)(row.ops / 10);
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut v, mut p) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = (row.verdant)(row.ops);
            (a, (row.peer)(row.ops))
        } else {
            let b = (row.peer)(row.ops);
            ((row.verdant)(row.ops), b)
        };
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
        v.push(a.as_nanos() as f64 / row.ops as f64);
        p.push(b.as_nanos() as f64 / row.ops as f64);
    }
    (median(&mut ratios), median(&mut v), median(&mut p))
}

/// `name ratio` lines; `#` starts a comment.
fn read_ratios(path: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(ratio), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "{}:{}: expected `name ratio`",
                path.display(),
                i + 1
            ));
        };
        let ratio: f64 = ratio
            .parse()
            .map_err(|e| format!("{}:{}: {ratio}: {e}", path.display(), i + 1))?;
        out.insert(name.to_owned(), ratio);
    }
    Ok(out)
}

fn main() -> ExitCode {
    if has_flag("--list") {
        return ExitCode::SUCCESS; // `cargo test --benches` asks benches to list themselves
    }
    let (check, record) = (has_flag("--check"), has_flag("--record"));
    may::config().set_workers(1);
    let rt = std::rc::Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime"),
    );
    let rt2 = rt.clone();
    let rows = [
        Row {
            name: "yield_vs_may",
            what: "yield round trip, may yield_now (1 worker)",
            ops: 100_000,
            verdant: Box::new(micro::verdant_yield),
            peer: Box::new(micro::may_yield),
        },
        Row {
            name: "channel_vs_may",
            what: "channel ping-pong, may mpsc (1 worker)",
            ops: 20_000,
            verdant: Box::new(|n| micro::verdant_ping_pong(n, 0)),
            peer: Box::new(micro::may_ping_pong),
        },
        Row {
            name: "spawn_join_vs_tokio",
            what: "spawn+join (batches of 100), tokio current_thread",
            ops: 300,
            verdant: Box::new(micro::verdant_spawn_join),
            peer: Box::new(move |n| micro::tokio_spawn_join(&rt2, n)),
        },
    ];
    let recorded = if check {
        match read_ratios(Path::new(RATIOS)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("perf_smoke: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        BTreeMap::new()
    };
    println!("# verdant / peer, median of {ROUNDS} paired rounds");
    println!(
        "{:<21} {:<50} {:>10} {:>10} {:>7} {:>9}",
        "row", "against", "verdant ns", "peer ns", "ratio", "recorded"
    );
    let mut measured = Vec::new();
    let mut failed = Vec::new();
    for row in &rows {
        let (ratio, v, p) = measure(row);
        let unit = if row.name.starts_with("spawn") {
            micro::BATCH as f64
        } else {
            1.0
        };
        let rec = recorded.get(row.name).copied();
        println!(
            "{:<21} {:<50} {:>10.1} {:>10.1} {:>7.3} {:>9}",
            row.name,
            row.what,
            v / unit,
            p / unit,
            ratio,
            rec.map_or("-".to_owned(), |r| format!("{r:.3}"))
        );
        if check {
            match rec {
                None => failed.push(format!("{}: no recorded ratio", row.name)),
                Some(r) if ratio > r * TOLERANCE => failed.push(format!(
                    "{}: {ratio:.3} is more than {TOLERANCE}x the recorded {r:.3}",
                    row.name
                )),
                Some(_) => {}
            }
        }
        measured.push((row.name, ratio));
    }
    drop(rows);
    drop(rt);
    if record {
        let mut text = String::from(
            "# verdant's time / the peer's, median of paired rounds, written by\n\
             # `cargo bench --bench perf_smoke -- --record`; CI fails when a ratio\n\
             # is more than 1.5x these.\n",
        );
        for (name, ratio) in &measured {
            text.push_str(&format!("{name} {ratio:.3}\n"));
        }
        if let Err(e) = std::fs::write(RATIOS, text) {
            eprintln!("perf_smoke: {RATIOS}: {e}");
            return ExitCode::FAILURE;
        }
        println!("recorded in {RATIOS}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failed {
            eprintln!("perf_smoke: FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}
