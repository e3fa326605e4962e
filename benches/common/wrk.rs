//! Running `wrk` (the HTTP load generator) against a bench server and
//! reading its report.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{pin_to_cpus, proc_cpu, Server};

/// `name` on `PATH`, if there.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// What one wrk run reported, plus the server's CPU time.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Requests per second, as wrk reports it.
    pub rps: f64,
    /// Requests completed.
    pub reqs: f64,
    /// Latency percentiles, in ms.
    pub p50_ms: f64,
    /// Latency percentiles, in ms.
    pub p99_ms: f64,
    /// wrk's socket errors and non-2xx count, if any.
    pub errors: String,
    /// The server's CPU time during the run.
    pub srv_cpu: Duration,
}

/// Parses a wrk latency such as `85.00us`, `1.20ms` or `2.01s` into ms.
fn parse_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1e3,
        "ms" => v,
        "s" => v * 1e3,
        "m" => v * 60e3,
        _ => f64::NAN,
    }
}

/// Runs `wrk -tTHREADS -cCONNS -dSECSs --latency` against `server`
/// (pinned to `cpus` unless empty) and reads its report. With `close`,
/// every request says `Connection: close`: a new connection per request.
pub fn run_wrk(
    wrk: &Path,
    server: &Server,
    threads: usize,
    conns: usize,
    secs: u64,
    cpus: Vec<usize>,
    close: bool,
) -> io::Result<Run> {
    let cpu0 = proc_cpu(server.pid());
    let mut cmd = Command::new(wrk);
    if !cpus.is_empty() {
        // SAFETY: the closure only makes one system call
        // (sched_setaffinity), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || pin_to_cpus(&cpus));
        }
    }
    let out = cmd
        .args([
            format!("-t{threads}"),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".to_string(),
            format!("http://{}/", server.addr),
        ])
        .args(if close {
            &["-H", "Connection: close"][..]
        } else {
            &[]
        })
        .stdin(Stdio::null())
        .output()?;
    let srv_cpu = proc_cpu(server.pid()) - cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut run = Run {
        srv_cpu,
        ..Run::default()
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().unwrap_or(f64::NAN),
            ["50%", v] => run.p50_ms = parse_ms(v),
            ["99%", v] => run.p99_ms = parse_ms(v),
            [n, "requests", "in", ..] => run.reqs = n.parse().unwrap_or(f64::NAN),
            ["Socket", "errors:", rest @ ..] => run.errors = rest.join(" "),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                run.errors = format!("{} non-2xx: {n}", run.errors)
            }
            _ => {}
        }
    }
    if run.reqs.is_nan() || run.reqs == 0.0 {
        return Err(io::Error::other(format!(
            "no requests in wrk output: {text}"
        )));
    }
    Ok(run)
}
