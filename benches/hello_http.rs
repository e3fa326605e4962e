//! `examples/hello_http.rs` (verdant, one greenlet per connection) against
//! a hyper 1.x server on tokio's current-thread runtime (same answer,
//! `Hello, world!`, keep-alive, `TCP_NODELAY`), both under
//! `wrk -t1 -c100 -d5s`, side by side in one run. Each server is a child
//! process pinned to CPU 0; `wrk` is pinned to CPU 1.
//!
//! ```sh
//! apt-get install wrk                                  # once
//! cargo bench --bench hello_http                       # 5 s per run
//! cargo bench --bench hello_http -- --quick            # 2 s per run
//! cargo bench --bench hello_http -- --secs 3 --reps 3 --conns 100
//! ```
//!
//! The example binary is built first with
//! `$CARGO build --quiet --release --example hello_http` (cargo sets `$CARGO` when
//! it runs a bench; without it, `cargo` from `PATH`), into the same target
//! directory. hyper runs in this binary, re-executed as `--serve hyper`.
//! Printed per server: req/s and latency percentiles as wrk reports them,
//! the server's CPU time per request (`/proc/<pid>/stat`), and the ratios
//! verdant / hyper. With `--reps R` the runs alternate and medians are
//! printed. Without `wrk` on `PATH` it prints a skip line and exits 0.
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{median, proc_cpu, Server};

/// The hyper server: tokio current-thread, HTTP/1.1 keep-alive.
fn serve_hyper(addr: SocketAddr) -> io::Result<()> {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response, StatusCode};

    async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let ok = req.uri().path() == "/";
        let (status, body): (StatusCode, &'static [u8]) = if ok {
            (StatusCode::OK, b"Hello, world!")
        } else {
            (StatusCode::NOT_FOUND, b"Not Found\n")
        };
        Ok(Response::builder()
            .status(status)
            .header("server", "hyper")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(body)))
            .expect("valid response"))
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        common::announce(listener.local_addr()?)?;
        loop {
            let (conn, _) = listener.accept().await?;
            let _ = conn.set_nodelay(true);
            let io = hyper_util::rt::TokioIo::new(conn);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, hyper::service::service_fn(hello))
                    .await;
            });
        }
    })
}

/// `name` on `PATH`, if there.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Builds `examples/hello_http.rs` (release) and returns its path.
fn build_example() -> io::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "verdant",
            "--example",
            "hello_http",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo build --example hello_http: {status}"
        )));
    }
    // This bench is <target>/release/deps/hello_http-HASH; the example is
    // <target>/release/examples/hello_http.
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or_else(|| io::Error::other("unexpected bench path"))?;
    let path = release.join("examples").join("hello_http");
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::other(format!("{} not found", path.display())))
    }
}

/// One `GET /` on a fresh connection; checks the status line and the body.
fn check(addr: SocketAddr) -> io::Result<()> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    if resp.starts_with("HTTP/1.1 200") && resp.ends_with("\r\n\r\nHello, world!") {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected response {resp:?}")))
    }
}

/// What one wrk run reported, plus the server's CPU time.
#[derive(Clone, Debug, Default)]
struct Run {
    rps: f64,
    reqs: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
    srv_cpu: Duration,
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

fn run_wrk(wrk: &PathBuf, server: &Server, conns: usize, secs: u64) -> io::Result<Run> {
    let cpu0 = proc_cpu(server.pid());
    let out = Command::new(wrk)
        .args([
            "-t1".to_string(),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".to_string(),
            format!("http://{}/", server.addr),
        ])
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

fn main() {
    common::serve_if_asked(&|kind, addr| (kind == "hyper").then(|| serve_hyper(addr)));

    let quick = common::has_flag("--quick");
    let secs: u64 = common::arg_value("--secs")
        .map(|s| s.parse().expect("--secs N (whole seconds)"))
        .unwrap_or(if quick { 2 } else { 5 });
    let reps: usize = common::arg_value("--reps").map_or(1, |s| s.parse().expect("--reps N"));
    let conns: usize = common::arg_value("--conns").map_or(100, |s| s.parse().expect("--conns N"));

    let Some(wrk) = which("wrk") else {
        println!(
            "hello_http: SKIPPED: `wrk` is not installed (on Debian/Ubuntu: `apt-get install wrk`)"
        );
        return;
    };
    common::raise_nofile();
    println!("hello_http: {}", common::pin_client());
    let example = match build_example() {
        Ok(p) => p,
        Err(e) => {
            println!("hello_http: SKIPPED: could not build examples/hello_http.rs: {e}");
            return;
        }
    };
    let verdant = Server::start("verdant", &example, &["--port".into(), "0".into()])
        .expect("start hello_http example");
    let hyper = Server::start(
        "hyper",
        &std::env::current_exe().expect("current_exe"),
        &[
            "--serve".into(),
            "hyper".into(),
            "--port".into(),
            "0".into(),
        ],
    )
    .expect("start hyper server");
    let servers = [verdant, hyper];
    for s in &servers {
        check(s.addr).unwrap_or_else(|e| panic!("{}: {e}", s.name));
    }
    println!(
        "wrk -t1 -c{conns} -d{secs}s --latency, {reps} run(s) per server{}",
        if reps > 1 {
            " alternating (medians printed)"
        } else {
            ""
        }
    );
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(), Vec::new()];
    for rep in 0..reps {
        for k in 0..2 {
            let s = (k + rep) % 2;
            let r = run_wrk(&wrk, &servers[s], conns, secs)
                .unwrap_or_else(|e| panic!("{}: {e}", servers[s].name));
            runs[s].push(r);
        }
    }
    let med = |s: usize, f: &dyn Fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs[s].iter().map(f).collect();
        median(&mut v)
    };
    let cpu_per_req = |r: &Run| r.srv_cpu.as_secs_f64() * 1e6 / r.reqs;
    println!(
        "{:<8} {:>11} {:>9} {:>9} {:>11} {:>9}  errors",
        "server", "req/s", "p50 ms", "p99 ms", "srv µs/req", "srv CPU%"
    );
    for (s, server) in servers.iter().enumerate() {
        let errors: Vec<&str> = runs[s]
            .iter()
            .map(|r| r.errors.as_str())
            .filter(|e| !e.is_empty())
            .collect();
        println!(
            "{:<8} {:>11.0} {:>9.3} {:>9.3} {:>11.2} {:>9.0}  {}",
            server.name,
            med(s, &|r| r.rps),
            med(s, &|r| r.p50_ms),
            med(s, &|r| r.p99_ms),
            med(s, &cpu_per_req),
            med(s, &|r| r.srv_cpu.as_secs_f64() / secs as f64 * 100.0),
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    println!(
        "verdant / hyper: req/s {:.2}, server CPU per request {:.2}",
        med(0, &|r| r.rps) / med(1, &|r| r.rps),
        med(0, &cpu_per_req) / med(1, &cpu_per_req)
    );
}
