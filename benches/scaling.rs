//! Servers on several cores, side by side in one run: verdant on N hubs
//! (`verdant::Hubs`, a `StreamServer` each, `SO_REUSEPORT`; `verdant-rr`:
//! one round-robin acceptor instead) against tokio's multi-thread runtime,
//! Go and may with as many threads, under the same load generator.
//!
//! ```sh
//! cargo bench --bench scaling                          # this machine's defaults
//! cargo bench --bench scaling -- --quick               # 0.5 s per cell
//! cargo bench --bench scaling -- --servers verdant:1,verdant:2,verdant:4 \
//!     --server-cpus 0-7 --client-cpus 8-15 --client-threads 8
//! ```
//!
//! **Servers** (`--servers KIND:THREADS,...`; default `verdant:1,verdant:2,
//! verdant-rr:2,tokio:2,go:2,may:2`):
//!
//! | kind | echo | HTTP |
//! |---|---|---|
//! | `verdant` | `Hubs` of THREADS hubs, `StreamServer` per hub (`SO_REUSEPORT`) | `examples/hello_http --threads THREADS` |
//! | `verdant-rr` | the same, `Spread::RoundRobin` | `hello_http --spread rr` |
//! | `tokio` | multi-thread runtime, THREADS workers, a task per connection | hyper on the same runtime |
//! | `go` | a goroutine per connection, `GOMAXPROCS=THREADS` | `net/http` |
//! | `may` | THREADS workers, a coroutine per connection | a minimal httparse loop |
//!
//! Every echo server reads into a heap buffer of `--buf` bytes per
//! connection (default 16 KiB), upper-cases, writes it all back, and sets
//! `TCP_NODELAY`. The Go servers are built from the sources below with
//! `go build` when `go` is on `PATH` (or taken from `--go-dir DIR`, as
//! `go-echo` and `go-http`); without either, the Go rows are skipped.
//!
//! **Load**: echo cells (`--conns`, default 100,1000 × `--sizes`, default
//! 64,16384) and HTTP keep-alive `GET /` cells (`--http-conns`, default
//! 100,1000) from the closed-loop client of `echo_load`, spread over
//! `--client-threads` threads (default 2), or for HTTP `wrk` with as many
//! threads when `--http-client wrk` (the default when `wrk` is on `PATH`).
//! With wrk, `HTTP close` cells (`--churn-conns`, default 100; `''` for
//! none) send `Connection: close`: a new connection per request, the load
//! where one round-robin acceptor does every `accept`.
//! `--server-cpus LIST` pins a THREADS-thread server to the first THREADS
//! CPUs of LIST, `--client-cpus LIST` the client; by default nothing is
//! pinned (on a 2-core machine client and servers share both cores: the
//! same load generator on the same cores for every server).
//!
//! **Printed**: per cell and server, req/s, latency p50/p99, server CPU µs
//! per request and CPU%; then, with `--reps R` as medians of R (the order
//! of servers rotated each time) and ratios as the median of the
//! repetitions' paired ratios:
//! * each verdant row's req/s over each peer's with the same THREADS
//!   (target ≥ 1);
//! * verdant's server CPU per request at THREADS over at 1 (target
//!   ≤ 1.05: more hubs must not cost more per request);
//! * verdant's req/s at THREADS over at 1, and that over THREADS (the
//!   scaling efficiency; target 0.8 with the client on other cores).
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::client::{run_cell, Cell, Plan, Proto};
use common::wrk::{run_wrk, which};
use common::{arg_value, has_flag, median, parse_cpus, Server};

/// Go's echo server: a goroutine per connection, a heap buffer each.
const GO_ECHO: &str = r#"package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	size := 16384
	if len(os.Args) > 1 {
		size, _ = strconv.Atoi(os.Args[1])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, size)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					if buf[i] >= 'a' && buf[i] <= 'z' {
						buf[i] -= 32
					}
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}(c)
	}
}
"#;

/// Go's HTTP server: `net/http`, `Hello, world!` on `/`.
const GO_HTTP: &str = r#"package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	hello := []byte("Hello, world!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, nil))
	os.Exit(1)
}
"#;

/// One server of the comparison.
#[derive(Clone, Debug)]
struct Spec {
    /// `kind:threads`, as given.
    label: String,
    kind: String,
    threads: usize,
}

/// Where the non-Rust servers are.
struct Tools {
    go_echo: Option<PathBuf>,
    go_http: Option<PathBuf>,
    hello_http: Option<PathBuf>,
    wrk: Option<PathBuf>,
}

/// Builds the Go servers into `dir` (when `go` is there); returns the
/// paths of those that exist.
fn go_servers(dir: &Path, build: bool) -> (Option<PathBuf>, Option<PathBuf>) {
    let mut out = [None, None];
    for (k, (name, src)) in [("go-echo", GO_ECHO), ("go-http", GO_HTTP)]
        .into_iter()
        .enumerate()
    {
        let exe = dir.join(name);
        if build {
            let srcdir = dir.join(format!("{name}-src"));
            let file = srcdir.join("main.go");
            let fresh = std::fs::read_to_string(&file).is_ok_and(|s| s == src) && exe.is_file();
            if !fresh {
                let built = std::fs::create_dir_all(&srcdir)
                    .and_then(|()| std::fs::write(&file, src))
                    .and_then(|()| {
                        Command::new("go")
                            .arg("build")
                            .arg("-o")
                            .arg(&exe)
                            .arg(&file)
                            .env("GOFLAGS", "-mod=mod")
                            .env("GO111MODULE", "off")
                            .status()
                    });
                match built {
                    Ok(s) if s.success() => {}
                    Ok(s) => println!("scaling: go build {name}: {s}"),
                    Err(e) => println!("scaling: go build {name}: {e}"),
                }
            }
        }
        if exe.is_file() {
            out[k] = Some(exe);
        }
    }
    let [echo, http] = out;
    (echo, http)
}

/// The CPUs a `threads`-thread server is pinned to: the first `threads`
/// of `cpus` (all of them if fewer), none if `cpus` is empty.
fn server_cpus(cpus: &[usize], threads: usize) -> Vec<usize> {
    cpus.iter().copied().take(threads.max(1)).collect()
}

fn start_echo(spec: &Spec, buf: usize, cpus: &[usize], tools: &Tools) -> io::Result<Server> {
    let exe = std::env::current_exe()?;
    let cpus = server_cpus(cpus, spec.threads);
    let serve = |kind: &str| {
        let mut c = Command::new(&exe);
        c.args(["--serve", kind, "--port", "0", "--buf"])
            .arg(buf.to_string())
            .arg("--threads")
            .arg(spec.threads.to_string());
        c
    };
    let cmd = match spec.kind.as_str() {
        "verdant" => serve("verdant-hubs"),
        "verdant-rr" => serve("verdant-rr"),
        "tokio" => serve("tokio-mt"),
        "may" => serve("may-mt"),
        "go" => {
            let go = tools.go_echo.as_ref().ok_or_else(no_go)?;
            let mut c = Command::new(go);
            c.arg(buf.to_string())
                .env("GOMAXPROCS", spec.threads.to_string());
            c
        }
        other => return Err(unknown(other)),
    };
    Server::start_cmd(&spec.label, cmd, cpus)
}

fn start_http(spec: &Spec, cpus: &[usize], tools: &Tools) -> io::Result<Server> {
    let exe = std::env::current_exe()?;
    let cpus = server_cpus(cpus, spec.threads);
    let threads = spec.threads.to_string();
    let cmd = match spec.kind.as_str() {
        "verdant" | "verdant-rr" => {
            let ex = tools
                .hello_http
                .as_ref()
                .ok_or_else(|| io::Error::other("examples/hello_http could not be built"))?;
            let mut c = Command::new(ex);
            c.args(["--port", "0", "--threads", &threads]);
            if spec.kind == "verdant-rr" {
                c.args(["--spread", "rr"]);
            }
            c
        }
        "tokio" | "may" => {
            let kind = if spec.kind == "tokio" {
                "hyper-mt"
            } else {
                "may-http"
            };
            let mut c = Command::new(&exe);
            c.args(["--serve", kind, "--port", "0", "--threads", &threads]);
            c
        }
        "go" => {
            let go = tools.go_http.as_ref().ok_or_else(no_go)?;
            let mut c = Command::new(go);
            c.env("GOMAXPROCS", &threads);
            c
        }
        other => return Err(unknown(other)),
    };
    Server::start_cmd(&spec.label, cmd, cpus)
}

fn no_go() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no Go servers (go not on PATH)")
}

fn unknown(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("unknown server kind {kind:?} (verdant, verdant-rr, tokio, go, may)"),
    )
}

/// One cell's load.
#[derive(Clone, Copy, Debug)]
struct Load {
    proto: Proto,
    conns: usize,
    /// HTTP with `Connection: close`: a new connection per request (wrk).
    close: bool,
}

impl Load {
    fn label(&self) -> String {
        match (self.proto, self.close) {
            (Proto::Echo(size), _) => format!("echo {size} B"),
            (Proto::Http, false) => "HTTP GET /".to_owned(),
            (Proto::Http, true) => "HTTP close".to_owned(),
        }
    }
}

/// Options shared by every cell.
struct Opts {
    warmup: Duration,
    measure: Duration,
    client_threads: usize,
    client_cpus: Vec<usize>,
    use_wrk: bool,
}

fn measure(server: &Server, load: Load, opts: &Opts, tools: &Tools) -> io::Result<Cell> {
    if load.close && (!opts.use_wrk || tools.wrk.is_none()) {
        return Err(io::Error::other("a connection per request needs wrk"));
    }
    if let (Proto::Http, true, Some(wrk)) = (load.proto, opts.use_wrk, &tools.wrk) {
        let secs = opts.measure.as_secs().max(1);
        let r = run_wrk(
            wrk,
            server,
            opts.client_threads.min(load.conns),
            load.conns,
            secs,
            opts.client_cpus.clone(),
            load.close,
        )?;
        if !r.errors.is_empty() {
            return Err(io::Error::other(format!("wrk errors: {}", r.errors)));
        }
        return Ok(Cell {
            reqs: r.reqs as u64,
            secs: secs as f64,
            p50_us: r.p50_ms * 1e3,
            p99_us: r.p99_ms * 1e3,
            srv_cpu: r.srv_cpu,
            srv_sched_ns: None,
            cli_cpu: Duration::ZERO,
        });
    }
    run_cell(&Plan {
        name: server.name.clone(),
        addr: server.addr,
        pid: server.pid(),
        conns: load.conns,
        proto: load.proto,
        threads: opts.client_threads,
        cpus: opts.client_cpus.clone(),
        warmup: opts.warmup,
        measure: opts.measure,
    })
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    s.split(',').map(|x| x.trim().parse().unwrap()).collect()
}

/// The median of `a[i] / b[i]` over the repetitions.
fn paired(a: &[Cell], b: &[Cell], f: &dyn Fn(&Cell) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect();
    let m = median(&mut v);
    (
        m,
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

fn main() {
    common::serve_if_asked(&|_, _| None);

    let quick = has_flag("--quick");
    let secs: f64 = arg_value("--secs")
        .map(|s| s.parse().expect("--secs SECONDS"))
        .unwrap_or(if quick { 0.5 } else { 2.0 });
    let reps: usize = arg_value("--reps").map_or(1, |s| s.parse().expect("--reps N"));
    let conns: Vec<usize> = arg_value("--conns").map_or(vec![100, 1000], |s| list(&s));
    let sizes: Vec<usize> = arg_value("--sizes").map_or(vec![64, 16384], |s| list(&s));
    let http_conns: Vec<usize> = arg_value("--http-conns").map_or(vec![100, 1000], |s| list(&s));
    let churn_conns: Vec<usize> = arg_value("--churn-conns").map_or(vec![100], |s| {
        if s.is_empty() {
            Vec::new()
        } else {
            list(&s)
        }
    });
    let buf: usize = arg_value("--buf").map_or(16384, |s| s.parse().expect("--buf BYTES"));
    let specs: Vec<Spec> = arg_value("--servers")
        .unwrap_or_else(|| "verdant:1,verdant:2,verdant-rr:2,tokio:2,go:2,may:2".into())
        .split(',')
        .map(|s| {
            let (kind, threads) = s.trim().split_once(':').unwrap_or((s.trim(), "1"));
            Spec {
                label: format!("{kind}:{threads}"),
                kind: kind.to_owned(),
                threads: threads.parse().expect("--servers KIND:THREADS,..."),
            }
        })
        .collect();
    let server_cpus_list = arg_value("--server-cpus").map_or_else(Vec::new, |s| parse_cpus(&s));
    let client_cpus = arg_value("--client-cpus").map_or_else(Vec::new, |s| parse_cpus(&s));
    let client_threads: usize =
        arg_value("--client-threads").map_or(2, |s| s.parse().expect("--client-threads N"));
    let no_echo = has_flag("--no-echo");
    let no_http = has_flag("--no-http");

    common::raise_nofile();
    if !client_cpus.is_empty() {
        // The main client thread too (wrk is pinned at its start).
        common::pin_to_cpus(&client_cpus).expect("pin the client");
    }
    let exe = std::env::current_exe().expect("current_exe");
    let release = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("bench path")
        .to_path_buf();
    let (go_echo, go_http) = match arg_value("--go-dir") {
        Some(dir) => go_servers(Path::new(&dir), false),
        None => go_servers(&release.join("scaling-go"), which("go").is_some()),
    };
    let hello_http = if no_http {
        None
    } else {
        common::http::build_example("hello_http")
            .map_err(|e| println!("scaling: no hello_http example: {e}"))
            .ok()
    };
    let tools = Tools {
        go_echo,
        go_http,
        hello_http,
        wrk: which("wrk"),
    };
    let use_wrk = match arg_value("--http-client").as_deref() {
        Some("own") => false,
        Some("wrk") => {
            assert!(tools.wrk.is_some(), "--http-client wrk: wrk is not on PATH");
            true
        }
        Some(other) => panic!("--http-client own|wrk, not {other:?}"),
        None => tools.wrk.is_some(),
    };
    let opts = Opts {
        warmup: Duration::from_secs_f64((secs * 0.2).clamp(0.05, 0.3)),
        measure: Duration::from_secs_f64(secs),
        client_threads,
        client_cpus: client_cpus.clone(),
        use_wrk,
    };
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    println!(
        "scaling: {online} CPUs online; servers pinned to {}; client ({} thread(s)) pinned to {}; HTTP client {}",
        if server_cpus_list.is_empty() {
            "nothing".to_owned()
        } else {
            format!("the first THREADS of {server_cpus_list:?}")
        },
        client_threads,
        if client_cpus.is_empty() {
            "nothing".to_owned()
        } else {
            format!("{client_cpus:?}")
        },
        if use_wrk { "wrk" } else { "the echo_load client" }
    );
    println!(
        "{secs} s per cell (+{:.2} s warm-up), {reps} repetition(s){}, echo buffer {buf} B",
        opts.warmup.as_secs_f64(),
        if reps > 1 { " (medians printed)" } else { "" }
    );
    let specs: Vec<Spec> = specs
        .into_iter()
        .filter(|s| {
            let ok = s.kind != "go" || (tools.go_echo.is_some() && tools.go_http.is_some());
            if !ok {
                println!("scaling: {} skipped: {}", s.label, no_go());
            }
            ok
        })
        .collect();

    let mut loads = Vec::new();
    if !no_echo {
        for &size in &sizes {
            for &c in &conns {
                loads.push(Load {
                    proto: Proto::Echo(size),
                    conns: c,
                    close: false,
                });
            }
        }
    }
    if !no_http {
        for &c in &http_conns {
            loads.push(Load {
                proto: Proto::Http,
                conns: c,
                close: false,
            });
        }
        if use_wrk {
            for &c in &churn_conns {
                loads.push(Load {
                    proto: Proto::Http,
                    conns: c,
                    close: true,
                });
            }
        } else if !churn_conns.is_empty() {
            println!("scaling: HTTP close cells skipped: they need wrk");
        }
    }

    println!();
    println!(
        "{:<14} {:>6} {:<13} {:>10} {:>9} {:>9} {:>11} {:>8} {:>8}",
        "load",
        "conns",
        "server",
        "req/s",
        "p50 µs",
        "p99 µs",
        "srv µs/req",
        "srv CPU%",
        "cli CPU%"
    );
    // (load, results[spec][rep])
    let mut all: Vec<(Load, Vec<Vec<Cell>>)> = Vec::new();
    let mut servers: Vec<Option<Server>> = Vec::new();
    let mut current_proto = None;
    for load in &loads {
        // Servers are started once per protocol (and buffer) and serve
        // every cell of it.
        let kind = matches!(load.proto, Proto::Http);
        if current_proto != Some(kind) {
            servers.clear();
            servers = specs
                .iter()
                .map(|s| {
                    let started = if kind {
                        start_http(s, &server_cpus_list, &tools)
                    } else {
                        start_echo(s, buf, &server_cpus_list, &tools)
                    };
                    match started {
                        Ok(srv) => Some(srv),
                        Err(e) => {
                            println!("scaling: {} not started: {e}", s.label);
                            None
                        }
                    }
                })
                .collect();
            current_proto = Some(kind);
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut results: Vec<Vec<Cell>> = vec![Vec::new(); specs.len()];
        for rep in 0..reps {
            for k in 0..specs.len() {
                let i = (k + rep) % specs.len();
                let Some(server) = &servers[i] else { continue };
                match measure(server, *load, &opts, &tools) {
                    Ok(cell) => results[i].push(cell),
                    Err(e) => println!("scaling: {} {}: {e}", specs[i].label, load.label()),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            let r = &results[i];
            if r.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Cell) -> f64| median(&mut r.iter().map(f).collect::<Vec<_>>());
            let cli = if matches!(load.proto, Proto::Http) && opts.use_wrk {
                "-".to_owned()
            } else {
                format!("{:.0}", med(&Cell::cli_pct))
            };
            println!(
                "{:<14} {:>6} {:<13} {:>10.0} {:>9.1} {:>9.1} {:>11.2} {:>8.0} {:>8}",
                load.label(),
                load.conns,
                spec.label,
                med(&Cell::rps),
                med(&|c| c.p50_us),
                med(&|c| c.p99_us),
                med(&Cell::srv_us_per_req),
                med(&Cell::srv_pct),
                cli
            );
        }
        all.push((*load, results));
    }
    drop(servers);

    let show = |(m, lo, hi): (f64, f64, f64), target: &str, ok: bool| {
        let verdict = if ok { "ok  " } else { "MISS" };
        if reps > 1 {
            format!("{m:.2} {verdict} [{lo:.2}–{hi:.2}] ({target})")
        } else {
            format!("{m:.2} {verdict} ({target})")
        }
    };
    println!();
    println!("verdant against the peers with as many threads: req/s ratio (target ≥ 1)");
    for (load, results) in &all {
        for (v, vs) in specs.iter().enumerate() {
            if !vs.kind.starts_with("verdant") || results[v].is_empty() {
                continue;
            }
            for (p, ps) in specs.iter().enumerate() {
                if ps.kind.starts_with("verdant")
                    || ps.threads != vs.threads
                    || results[p].is_empty()
                {
                    continue;
                }
                let n = results[v].len().min(results[p].len());
                let r = paired(&results[v][..n], &results[p][..n], &Cell::rps);
                println!(
                    "  {:<14} {:>6}  {:<13} / {:<9} {}",
                    load.label(),
                    load.conns,
                    vs.label,
                    ps.label,
                    show(r, "≥ 1", r.0 >= 1.0)
                );
            }
        }
    }
    println!();
    println!("each kind at THREADS against itself at 1: server CPU per request (target ≤ 1.05 for verdant), req/s, req/s per thread (scaling efficiency)");
    for (load, results) in &all {
        for (n, ns) in specs.iter().enumerate() {
            let Some(one) = specs
                .iter()
                .position(|s| s.kind == ns.kind && s.threads == 1)
            else {
                continue;
            };
            if ns.threads == 1 || results[n].is_empty() || results[one].is_empty() {
                continue;
            }
            let k = results[n].len().min(results[one].len());
            let cpu = paired(&results[n][..k], &results[one][..k], &Cell::srv_us_per_req);
            let rps = paired(&results[n][..k], &results[one][..k], &Cell::rps);
            println!(
                "  {:<14} {:>6}  {:<13} CPU/req {}  req/s ×{:.2}  efficiency {:.2}",
                load.label(),
                load.conns,
                ns.label,
                show(cpu, "≤ 1.05", cpu.0 <= 1.05),
                rps.0,
                rps.0 / ns.threads as f64
            );
        }
    }
}
