//! What a patched libc call costs when it does not cooperate: the time a
//! call takes through verdant's definition against libc's own function,
//! called side by side in one run.
//!
//! ```sh
//! cargo bench --bench patch
//! ```
//!
//! Each row times `read(fd, buf, 0)` on a pipe (a system call that returns
//! at once) both ways, in alternating rounds of 200,000 calls, and prints
//! the medians per call and the median of the paired differences: the
//! routing cost. Rows:
//!
//! * `inactive`: before `patch_all()`, what every verdant program pays
//!   for having the definitions linked in;
//! * `no hub`: after `patch_all()`, on a thread that has no hub (what the
//!   issue calls a call outside any greenlet);
//! * `greenlet, O_NONBLOCK`: inside a greenlet, on a descriptor the program
//!   made non-blocking, which passes through after a look at the table.
//!
//! Target: the `no hub` difference ≤ 5 ns.
#![allow(missing_docs)]

use std::ffi::c_void;
use std::os::fd::AsRawFd;
use std::time::Instant;

type ReadFn = unsafe extern "C" fn(libc::c_int, *mut c_void, libc::size_t) -> libc::ssize_t;

const CALLS: u32 = 200_000;
const ROUNDS: usize = 31;

/// libc's own `read`, found in libc's handle (not the executable's).
fn libc_read() -> ReadFn {
    // SAFETY: a NUL-terminated name of a library already loaded.
    let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    assert!(!h.is_null());
    // SAFETY: a live handle and a NUL-terminated name.
    let p = unsafe { libc::dlsym(h, c"read".as_ptr()) };
    assert!(!p.is_null());
    // SAFETY: libc's `read`, of this prototype.
    unsafe { std::mem::transmute::<*mut c_void, ReadFn>(p) }
}

/// Nanoseconds per call of `f` on `fd`.
fn time(f: ReadFn, fd: libc::c_int) -> f64 {
    let mut b = 0u8;
    let t = Instant::now();
    for _ in 0..CALLS {
        // SAFETY: a zero-length read into a valid buffer.
        let r = unsafe { f(std::hint::black_box(fd), (&raw mut b).cast(), 0) };
        std::hint::black_box(r);
    }
    t.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One row: the medians of both ways, and of their paired differences.
fn row(name: &str, fd: libc::c_int) {
    let direct = libc_read();
    let routed: ReadFn = libc::read; // binds to verdant's definition
    let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let (x, y) = if i % 2 == 0 {
            let y = time(direct, fd);
            (time(routed, fd), y)
        } else {
            let x = time(routed, fd);
            (x, time(direct, fd))
        };
        a.push(x);
        b.push(y);
        d.push(x - y);
    }
    println!(
        "{name:<22} {:>9.1} {:>9.1} {:>+9.1}",
        median(&mut a),
        median(&mut b),
        median(&mut d)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // what `cargo bench -- --list` asks of a bench binary
    }
    let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = r.as_raw_fd();
    println!("read(fd, buf, 0), ns per call; {ROUNDS} paired rounds of {CALLS} calls, medians");
    println!("{:<22} {:>9} {:>9} {:>9}", "row", "routed", "libc", "diff");
    row("inactive", fd);
    verdant::monkey::patch_all();
    std::thread::spawn(move || row("no hub", fd))
        .join()
        .unwrap();
    r.set_nonblocking(true).unwrap();
    verdant::spawn(move || row("greenlet, O_NONBLOCK", fd))
        .join()
        .unwrap();
}
