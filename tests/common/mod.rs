//! Shared by the test files that run crash scenarios in a child process:
//! the test re-executes its own binary for exactly one test, with an
//! environment variable naming the child case (greenlet's `run_script`).

// Shared by several test binaries, each of which uses only some of it.
#![allow(dead_code)]

pub mod clock;
pub mod counting_alloc;
pub mod echo;
pub mod example;

use std::process::{Command, Output};

/// The variable that turns a test function into its child scenario.
pub const CHILD_ENV: &str = "VERDANT_TEST_CHILD";

/// The child case this process must run, if it is a child.
pub fn child_case() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs this test binary for exactly `test`, as child case `case`, with
/// extra environment `env`.
///
/// The child inherits the environment, `VERDANT_SEEDS` included: a test
/// body that is [`seeded`] runs its seeded schedules in the child, one
/// after another (such a body is in a child because it changes something
/// the whole process shares), and the parent's [`seeded`] relays the
/// child's count instead of running the child again under every seed.
pub fn run_child(test: &str, case: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        // `--include-ignored`: an ignored test, when run by hand, must still
        // find its child scenario.
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, case)
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("spawn child test process");
    // With one test thread, libtest prints "test NAME ... " before the test
    // runs, so a line the test prints may start after it.
    let seeded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find("seeded ").map(|at| &l[at..]))
        .filter(|l| l.contains(" seeds in "))
        .map(|l| format!("{l} (in child {case:?})"))
        .collect::<Vec<_>>();
    CHILD_RUNS.with(|c| {
        if let Some(runs) = c.borrow_mut().as_mut() {
            runs.ran = true;
            runs.seeded.extend(seeded);
        }
    });
    out
}

/// What the child processes of a body run as written under [`seeded`]
/// reported.
#[derive(Default)]
struct ChildRuns {
    /// Whether the body ran any.
    ran: bool,
    /// Their `seeded` lines.
    seeded: Vec<String>,
}

thread_local! {
    /// Set while [`seeded`] runs a body as written.
    static CHILD_RUNS: std::cell::RefCell<Option<ChildRuns>> =
        const { std::cell::RefCell::new(None) };
}

/// Asserts that `e` is a socket read or write timeout's expiry as std
/// reports it on Linux: `EAGAIN`, of kind `WouldBlock` (verdant's own
/// deadline APIs say `TimedOut` instead).
#[track_caller]
pub fn assert_socket_timeout(e: &std::io::Error) {
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e:?}");
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e:?}");
}

/// A listening IPv4 loopback socket on port 0 with a backlog of `backlog`
/// (std's `bind` uses 128: a test that queues more connections than that
/// sees SYNs dropped and connections that are never accepted).
pub fn listener_with_backlog(backlog: i32) -> verdant::net::TcpListener {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on a descriptor this function owns until it
    // hands it to OwnedFd; `addr` is a live sockaddr_in of the size passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, backlog), 0, "listen");
        verdant::net::TcpListener::from(owned)
    }
}

/// xorshift64*: deterministic test data and sizes without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            word.copy_from_slice(&x[..word.len()]);
        }
    }
}

/// `len` deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng(seed | 1).fill(&mut v);
    v
}

/// Sets this process's soft `RLIMIT_NOFILE`: lowered to at most `n`, or
/// raised to the hard limit with `None`.
pub fn set_nofile(n: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process's own limits, with a live
    // struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = match n {
            Some(n) => lim.rlim_cur.min(n as libc::rlim_t),
            None => lim.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0, "setrlimit");
    }
}

/// `setsockopt(fd, level, name, &value)` for an integer option.
pub fn setsockopt_int(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of
    // the call; the option value is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Opens `/dev/null` until the process is out of descriptors (`EMFILE`);
/// dropping what it returns frees them.
pub fn hog_descriptors() -> Vec<std::fs::File> {
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return hog,
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A 10 ms heartbeat greenlet: its result is the number of ticks it made
/// until the flag was set (the patch tests: the hub kept running).
pub fn heartbeat() -> (verdant::JoinHandle<u32>, std::rc::Rc<std::cell::Cell<bool>>) {
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let s = stop.clone();
    let h = verdant::spawn(move || {
        let mut ticks = 0;
        while !s.get() {
            verdant::sleep(std::time::Duration::from_millis(10));
            ticks += 1;
        }
        ticks
    });
    (h, stop)
}

/// A child's exit status, stdout and stderr, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Process `pid`'s resident memory in KiB (`VmRSS`).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Process `pid`'s open descriptors.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Recurses without bound, 512 bytes of live local per frame, and uses the
/// frame after the call so LLVM can turn it neither into a loop nor a tail
/// call: a stack overflow.
#[inline(never)]
pub fn recurse(depth: u64) -> u64 {
    use std::hint::black_box;
    let mut frame = [0u8; 512];
    frame[(depth % 512) as usize] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(black_box(depth + 1)).wrapping_add(u64::from(frame[(depth % 7) as usize]))
}

/// Lets every other ready greenlet run until none is ready (each has
/// parked or ended): what one `yield_now` does under the default first-in,
/// first-out schedule, for any schedule (under a seeded one a yield may
/// come straight back). Gives up after 1,000 yields (a greenlet that
/// yields forever).
pub fn settle() {
    let hub = verdant::Hub::current();
    for _ in 0..1_000 {
        verdant::yield_now();
        if hub.ready_count() == 0 {
            return;
        }
    }
}

/// Runs a test body as written, then (SCHED-1) under seeded schedules:
/// with `VERDANT_SEEDS=N` set (CI), under seeds `0..N` (see
/// [`under_seeds`]), for at most `VERDANT_SEED_BUDGET_MS` (default 1,000;
/// 0: no limit) in all. Prints how many seeds ran. With
/// `VERDANT_CLOCK=virtual` (a replay of a seeded run), the run as written
/// is on virtual time too.
///
/// A body that runs its scenario in a child process ([`run_child`]) has
/// its seeds run there, one at a time (the child exists because the body
/// changes something the process shares: a limit, a signal disposition,
/// the descriptor count); the parent prints the child's count.
pub fn seeded(name: &str, body: fn()) {
    let as_written = move || {
        CHILD_RUNS.with(|c| *c.borrow_mut() = Some(ChildRuns::default()));
        body();
        CHILD_RUNS
            .with(|c| c.borrow_mut().take())
            .unwrap_or_default()
    };
    let children = if std::env::var("VERDANT_CLOCK").is_ok_and(|v| v == "virtual") {
        std::thread::spawn(move || {
            clock::virtual_time();
            as_written()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    } else {
        as_written()
    };
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds = var("VERDANT_SEEDS").unwrap_or(0);
    if seeds == 0 {
        return;
    }
    if children.ran {
        // A child that ends before returning from its case (an `exit(0)`)
        // never reaches its seeded runs: that must not pass for 0 seeds.
        assert!(
            !children.seeded.is_empty(),
            "{name}: VERDANT_SEEDS is set but no child process it ran \
             ran seeded schedules (does the child case exit instead of returning?)"
        );
        for l in children.seeded {
            println!("{l}");
        }
        return;
    }
    let budget = match var("VERDANT_SEED_BUDGET_MS").unwrap_or(1000) {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    };
    let t0 = std::time::Instant::now();
    let ran = under_seeds(name, seeds, budget, body);
    println!("seeded {name}: {ran} seeds in {:.0?}", t0.elapsed());
}

/// The most seeds [`under_seeds`] runs at once.
pub const MAX_SEED_THREADS: usize = 64;

/// How long a seed must take before [`under_seeds`] runs seeds side by
/// side. A short body gains little from it, and its own thread's CPU time
/// is then small beside the cost of starting and ending the thread, which
/// would make it look idle: 64 such seeds at once delayed some by
/// milliseconds, enough to fire a 1 ms timer that a body counted on not
/// firing yet.
pub const SIDE_BY_SIDE_FROM: std::time::Duration = std::time::Duration::from_millis(10);

/// This thread's CPU time (user and system).
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `body` under seeds `0..seeds`, each on a fresh thread (a fresh
/// hub) on virtual time ([`clock::virtual_time`]: an idle hub skips to its
/// next timer; a body that waits in real time for another thread calls
/// [`clock::real_time`] first), stopping early once `budget` has passed
/// (after 3 at least); a failure panics naming its seed
/// (`VERDANT_SEED=<seed> VERDANT_CLOCK=virtual` replays it). Returns how
/// many seeds ran.
///
/// Seeds run side by side when their bodies take a while
/// ([`SIDE_BY_SIDE_FROM`]) and mostly wait (on the kernel's timers, a SYN
/// retransmit, another thread): half as many at once as
/// recent seeds took wall time per CPU time of their own thread, up to
/// [`MAX_SEED_THREADS`]. A body that keeps its thread busy runs one seed
/// at a time (and when the machine is loaded, wall time per CPU time
/// grows with the number running, so halving it settles back), so timing
/// bounds in it see the load they always did. In a child process
/// ([`run_child`]) seeds always run one at a time.
pub fn under_seeds(name: &str, seeds: u64, budget: Option<std::time::Duration>, body: fn()) -> u64 {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    type Outcome = Result<(), Box<dyn std::any::Any + Send>>;
    let t0 = Instant::now();
    let most = if child_case().is_some() {
        1
    } else {
        MAX_SEED_THREADS
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Duration)>();
    let mut running: HashMap<u64, (std::thread::JoinHandle<()>, Instant)> = HashMap::new();
    // Moving averages of a seed's wall time and CPU time, in seconds.
    let (mut wall, mut cpu) = (0.0f64, 0.0f64);
    let mut failures: Vec<(u64, Outcome)> = Vec::new();
    let (mut next, mut ran) = (0u64, 0u64);
    loop {
        let over = ran >= 3 && budget.is_some_and(|b| t0.elapsed() >= b);
        let width = if cpu > 0.0 && wall >= SIDE_BY_SIDE_FROM.as_secs_f64() {
            ((wall / cpu / 2.0) as usize).clamp(1, most)
        } else {
            1
        };
        if next < seeds && !over && failures.is_empty() && running.len() < width {
            let seed = next;
            next += 1;
            let tx = done_tx.clone();
            let h = std::thread::spawn(move || {
                let c0 = thread_cpu_time();
                verdant::Hub::current().set_schedule_seed(Some(seed));
                clock::virtual_time();
                body();
                let _ = tx.send((seed, thread_cpu_time() - c0));
            });
            running.insert(seed, (h, Instant::now()));
            continue;
        }
        if running.is_empty() {
            break;
        }
        // Wait for a seed to end: it reports its CPU time, or (a panic)
        // its thread finishes without a report.
        let ended = match done_rx.recv_timeout(Duration::from_millis(20)) {
            // A report can come after its thread was already reaped below
            // (it sent just after a timeout, then finished): that seed has
            // been joined and counted, so only its timing sample is lost.
            Ok((seed, used)) => {
                let Some((_, started)) = running.get(&seed) else {
                    continue;
                };
                let (w, c) = (started.elapsed(), used.max(Duration::from_micros(1)));
                let first = cpu == 0.0;
                let mix = |avg: f64, x: Duration| {
                    if first {
                        x.as_secs_f64()
                    } else {
                        0.8 * avg + 0.2 * x.as_secs_f64()
                    }
                };
                (wall, cpu) = (mix(wall, w), mix(cpu, c));
                Some(seed)
            }
            Err(_) => running
                .iter()
                .find(|(_, (h, _))| h.is_finished())
                .map(|(s, _)| *s),
        };
        let Some(seed) = ended else { continue };
        let (h, _) = running.remove(&seed).expect("a running seed");
        let r: Outcome = h.join();
        if r.is_err() {
            failures.push((seed, r));
        } else {
            ran += 1;
        }
    }
    if let Some((seed, Err(p))) = failures.into_iter().min_by_key(|(s, _)| *s) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "{name} failed under seed {seed} \
             (replay: VERDANT_SEED={seed} VERDANT_CLOCK=virtual): {msg}"
        );
    }
    ran
}

/// What std's own call gives, found once per process by `f` under `key`
/// and then remembered (its kind and OS error code, rebuilt into an
/// `io::Error`): the reference a test body compares verdant with. It does
/// not depend on the hub's schedule, so measuring it again under every
/// seed (a real wait in the kernel each time) would prove nothing more.
pub fn std_reference(key: &'static str, f: impl FnOnce() -> std::io::Error) -> std::io::Error {
    use std::collections::HashMap;
    use std::io::{Error, ErrorKind};
    use std::sync::Mutex;
    type Seen = HashMap<&'static str, (ErrorKind, Option<i32>)>;
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
    let known = SEEN
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(key).copied());
    let (kind, code) = known.unwrap_or_else(|| {
        let e = f();
        let r = (e.kind(), e.raw_os_error());
        SEEN.lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(key, r);
        r
    });
    match code {
        Some(c) => Error::from_raw_os_error(c),
        None => Error::from(kind),
    }
}

/// A loopback address that refuses connections, and what keeps it so: a
/// TCP socket bound to it that does not listen. A listener bound and
/// dropped would free the port for any other test (or seed) to bind and
/// accept on meanwhile.
pub fn refusing_addr() -> (std::os::fd::OwnedFd, std::net::SocketAddr) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: a plain socket(2) call; the descriptor is owned from here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid sockaddr_in (plain integers).
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
    let mut got_len = len;
    // SAFETY: `sin` has room for `got_len` bytes, which getsockname fills.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sin as *mut libc::sockaddr_in).cast(),
            &mut got_len,
        )
    };
    assert_eq!(r, 0, "getsockname: {}", std::io::Error::last_os_error());
    let port = u16::from_be(sin.sin_port);
    (
        fd,
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
    )
}

/// How many of something a test body makes (connections, rounds, bytes):
/// `n` as written, a tenth of it (at least 1) under a schedule seed. The
/// seeded runs are there for orders, not volume: a thousand seeds of a
/// tenth cover more schedules than a hundred of the whole.
pub fn scaled(n: usize) -> usize {
    if verdant::Hub::current().schedule_seed().is_some() {
        (n / 10).max(1)
    } else {
        n
    }
}

/// Re-runs this test binary for `test` as child case `case` (see
/// [`run_child`], with `env`) and asserts that the child succeeded and
/// printed `marker` (so it ran the case, not just nothing).
pub fn run_child_expecting(test: &str, case: &str, env: &[(&str, &str)], marker: &str) {
    let out = run_child(test, case, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(marker),
        "child: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Re-runs this test binary for `test` as child case `case` (see
/// [`run_child`]) and asserts that the child ended by SIGABRT; returns its
/// stderr.
pub fn run_child_expecting_abort(test: &str, case: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child(test, case, &[]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Defines `#[test]`s whose bodies also run under seeded schedules (see
/// [`seeded`]). A body must keep its guarantees under any order of the
/// ready greenlets: "let the others park" is [`settle`], not one yield.
#[allow(unused_macros)]
macro_rules! seeded_tests {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        #[test]
        fn $name() {
            $crate::common::seeded(stringify!($name), || $body);
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use seeded_tests;
