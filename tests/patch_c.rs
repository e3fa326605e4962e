//! `patch_all()` reaches all three kinds of caller: Rust code in the
//! binary, C code compiled into the binary, and a C shared library loaded
//! with `dlopen` (tests/c/vt_client.c, built by build.rs). The C client
//! connects, sleeps with `usleep`, sends, and waits for the reply with
//! `poll` and a timeout: 100 calls at once on one hub take about the time
//! of one.

use std::ffi::{c_char, c_int, c_uint, c_ushort, c_void};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use verdant::net::TcpListener;
use verdant::{joinall, spawn, JoinHandle};

#[link(name = "vt_client", kind = "static")]
extern "C" {
    fn vt_roundtrip(
        port: c_ushort,
        msg: *const c_char,
        out: *mut c_char,
        outlen: c_int,
        sleep_us: c_uint,
        timeout_ms: c_int,
    ) -> c_int;
}

type Roundtrip =
    unsafe extern "C" fn(c_ushort, *const c_char, *mut c_char, c_int, c_uint, c_int) -> c_int;

fn patched() {
    verdant::monkey::patch_all();
}

/// A verdant server: for each connection, reads to EOF and answers
/// `echo:` and what it read. Serves `n` connections.
fn server(n: usize) -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..n {
            let (mut c, _) = l.accept().unwrap();
            conns.push(spawn(move || {
                // A client that gave up has closed: its errors are ignored
                // (the clients check every reply).
                let mut req = Vec::new();
                if c.read_to_end(&mut req).is_ok() {
                    let _ = c.write_all(&[b"echo:", &req[..]].concat());
                }
            }));
        }
        joinall(&conns).unwrap();
    });
    (port, h)
}

/// Runs `calls` C round trips at once, each sleeping 100 ms; returns the
/// time they took together, having checked every reply.
fn concurrent(f: Roundtrip, calls: usize) -> Duration {
    let (port, srv) = server(calls);
    let t = Instant::now();
    let hs: Vec<_> = (0..calls)
        .map(|i| {
            spawn(move || {
                let msg = std::ffi::CString::new(format!("request {i}")).unwrap();
                let mut out = vec![0u8; 256];
                // SAFETY: a NUL-terminated message and a buffer of the
                // length passed.
                let n = unsafe {
                    f(
                        port,
                        msg.as_ptr(),
                        out.as_mut_ptr().cast(),
                        256,
                        100_000,
                        5_000,
                    )
                };
                assert!(n > 0, "call {i}: {}", std::io::Error::from_raw_os_error(-n));
                assert_eq!(&out[..n as usize], format!("echo:request {i}").as_bytes());
            })
        })
        .collect();
    joinall(&hs).unwrap();
    srv.join().unwrap();
    t.elapsed()
}

#[test]
fn rust_code_binds_to_the_patched_functions_which_the_executable_exports() {
    patched();
    let default = |name: &std::ffi::CStr| {
        // SAFETY: a NUL-terminated name; RTLD_DEFAULT is the global scope.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
    };
    // SAFETY: a NUL-terminated library name, already loaded.
    let libc_h =
        unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    assert!(!libc_h.is_null());
    // SAFETY: a live handle and a NUL-terminated name.
    let libc_recv = unsafe { libc::dlsym(libc_h, c"recv".as_ptr()) as usize };
    // The address Rust code calls is the one the global scope (which a
    // shared library's PLT uses) finds, and it is not libc's.
    let ours = libc::recv as *const c_void as usize;
    assert_eq!(ours, default(c"recv"));
    assert_ne!(ours, libc_recv);
    for name in verdant::monkey::ROUTED {
        let c = std::ffi::CString::new(*name).unwrap();
        assert_ne!(default(&c), 0, "{name} is exported");
    }
}

#[test]
fn c_code_in_the_binary_cooperates() {
    patched();
    let took = concurrent(vt_roundtrip, 100);
    // One call takes 100 ms; 100 in sequence, 10 s.
    assert!(took < Duration::from_millis(800), "{took:?}");
}

#[test]
fn a_dlopened_c_library_cooperates() {
    patched();
    let path = concat!(env!("OUT_DIR"), "/libvt_client_dso.so\0");
    // SAFETY: a NUL-terminated path to the library build.rs made.
    let h = unsafe { libc::dlopen(path.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {path}");
    // SAFETY: a live handle and a NUL-terminated name.
    let sym = unsafe { libc::dlsym(h, c"vt_roundtrip_dso".as_ptr()) };
    assert!(!sym.is_null());
    // SAFETY: the symbol is the C function of this prototype.
    let f: Roundtrip = unsafe { std::mem::transmute::<*mut c_void, Roundtrip>(sym) };
    let took = concurrent(f, 100);
    assert!(took < Duration::from_millis(800), "{took:?}");
}

#[test]
fn without_patching_the_c_client_blocks_the_hub() {
    patched();
    let (port, srv) = server(3);
    let t = Instant::now();
    let hs: Vec<_> = (0..3)
        .map(|i| {
            spawn(move || {
                verdant::monkey::blocking(|| {
                    let msg = std::ffi::CString::new(format!("r{i}")).unwrap();
                    let mut out = [0u8; 64];
                    // SAFETY: as in `concurrent`. The reply needs the server
                    // greenlet, which cannot run while this blocks: the
                    // poll times out (50 ms) instead.
                    unsafe {
                        vt_roundtrip(port, msg.as_ptr(), out.as_mut_ptr().cast(), 64, 50_000, 50)
                    }
                })
            })
        })
        .collect();
    let results: Vec<c_int> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    // In sequence: three sleeps and three poll timeouts, 300 ms at least.
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );
    assert!(
        results.iter().all(|&r| r == -libc::ETIMEDOUT),
        "{results:?}"
    );
    srv.kill();
}
