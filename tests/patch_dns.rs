//! Name lookups never stall the hub after `monkey::patch_all()`: neither
//! std's `ToSocketAddrs` nor C's `getaddrinfo` (tests/c/vt_client.c), while
//! the resolver takes 300 ms to answer.
//!
//! The resolver is a stub DNS server on 127.0.0.1:53 that this test runs.
//! So that it owns port 53 and `/etc/resolv.conf` points at it, the lookups
//! run in a child process in namespaces of its own: a network namespace
//! (a private loopback), a mount namespace (`/etc/resolv.conf` is a bind
//! mount of a file naming 127.0.0.1), and, when not root, a user namespace
//! to be allowed those.

mod common;

use std::cell::Cell;
use std::ffi::{c_char, c_int, CString};
use std::net::{Ipv4Addr, ToSocketAddrs, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{joinall, sleep, spawn};

#[link(name = "vt_client", kind = "static")]
extern "C" {
    fn vt_lookup(name: *const c_char, out: *mut c_char, outlen: c_int) -> c_int;
}

const CASE: &str = "slow-resolver";
const TEST: &str = "lookups_wait_for_a_slow_resolver_without_stalling_the_hub";
const NAME: &str = "slow.verdant.test";
const ANSWER: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
const DELAY: Duration = Duration::from_millis(300);

#[test]
fn lookups_wait_for_a_slow_resolver_without_stalling_the_hub() {
    if common::child_case().as_deref() == Some(CASE) {
        lookups_in_namespace();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(common::CHILD_ENV, CASE);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only system calls (unshare, open/write/close of /proc files).
    unsafe { cmd.pre_exec(enter_namespaces) };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let ok = stdout
        .lines()
        .find_map(|l| l.split_once("lookups ok").map(|(_, r)| r));
    let ok = ok.unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    eprintln!("lookups ok{ok}");
}

/// In the forked child: new network and mount namespaces (and a user
/// namespace that maps this user to root, unless already root).
fn enter_namespaces() -> std::io::Result<()> {
    // SAFETY: getuid/getgid/unshare have no memory preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWNET;
    if uid != 0 {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: as above.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if uid != 0 {
        write_proc(c"/proc/self/setgroups", b"deny")?;
        write_proc(c"/proc/self/uid_map", format!("0 {uid} 1").as_bytes())?;
        write_proc(c"/proc/self/gid_map", format!("0 {gid} 1").as_bytes())?;
    }
    Ok(())
}

fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path; the buffer is valid for its length;
    // the fd is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if n != data.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The child: loopback up, resolv.conf pointing at the stub, the stub
/// running, then the lookups from greenlets next to a heartbeat.
fn lookups_in_namespace() {
    loopback_up();
    let conf = std::env::temp_dir().join(format!("verdant-resolv-{}", std::process::id()));
    std::fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
    )
    .unwrap();
    bind_mount(&conf, "/etc/resolv.conf");
    let stub = UdpSocket::bind("127.0.0.1:53").expect("bind the stub resolver");
    std::thread::spawn(move || stub_resolver(stub));

    verdant::monkey::patch_all();
    let ticks = Rc::new(Cell::new(0u32));
    let stop = Rc::new(Cell::new(false));
    let (t2, s2) = (ticks.clone(), stop.clone());
    let heartbeat = spawn(move || {
        while !s2.get() {
            sleep(Duration::from_millis(10));
            t2.set(t2.get() + 1);
        }
    });
    let t = Instant::now();
    let std_lookups: Vec<_> = (0..5)
        .map(|_| {
            spawn(|| {
                let addrs: Vec<_> = (NAME, 80).to_socket_addrs().unwrap().collect();
                assert!(addrs.iter().any(|a| a.ip() == ANSWER), "{addrs:?}");
            })
        })
        .collect();
    let c_lookups: Vec<_> = (0..5)
        .map(|_| {
            spawn(|| {
                let name = CString::new(NAME).unwrap();
                let mut out = [0u8; 64];
                // SAFETY: a NUL-terminated name and a buffer of the length
                // passed.
                let r = unsafe { vt_lookup(name.as_ptr(), out.as_mut_ptr().cast(), 64) };
                assert_eq!(r, 0, "getaddrinfo failed");
                let text = std::ffi::CStr::from_bytes_until_nul(&out).unwrap();
                assert_eq!(text.to_str().unwrap(), ANSWER.to_string());
            })
        })
        .collect();
    joinall(&std_lookups).unwrap();
    joinall(&c_lookups).unwrap();
    let took = t.elapsed();
    stop.set(true);
    heartbeat.join().unwrap();
    let _ = std::fs::remove_file(&conf);
    // Ten lookups of 300 ms each, side by side (the blocking pool), and the
    // hub ran meanwhile.
    assert!(took >= DELAY, "{took:?}: did the stub answer at once?");
    assert!(took < DELAY * 3, "{took:?}");
    assert!(
        ticks.get() >= 15,
        "the heartbeat ticked {} times in {took:?}",
        ticks.get()
    );
    println!(
        "lookups ok: 10 in {took:?}, {} heartbeat ticks",
        ticks.get()
    );
}

/// Brings up `lo` in this (new) network namespace.
fn loopback_up() {
    // SAFETY: an ifreq for "lo" on a fresh datagram socket, read then
    // written back with IFF_UP; the socket is closed after.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(s >= 0);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *c as c_char;
        }
        assert_eq!(
            libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req),
            0,
            "SIOCGIFFLAGS"
        );
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(s, libc::SIOCSIFFLAGS, &req), 0, "SIOCSIFFLAGS");
        libc::close(s);
    }
}

/// Bind-mounts `src` over `dst`, in this (new, made private) mount
/// namespace only.
fn bind_mount(src: &std::path::Path, dst: &str) {
    let src = CString::new(src.to_str().unwrap()).unwrap();
    let dst = CString::new(dst).unwrap();
    // SAFETY: NUL-terminated paths; null type and data are allowed for
    // these flags.
    unsafe {
        let none = std::ptr::null();
        let r = libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        assert_eq!(r, 0, "make / private: {}", std::io::Error::last_os_error());
        let r = libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            none,
            libc::MS_BIND,
            std::ptr::null(),
        );
        assert_eq!(r, 0, "bind mount: {}", std::io::Error::last_os_error());
    }
}

/// A stub DNS server: answers each query after [`DELAY`], on a thread of
/// its own (a plain thread: no hub, so its calls block as usual). An `A`
/// query for [`NAME`] gets [`ANSWER`]; anything else an empty NOERROR.
fn stub_resolver(sock: UdpSocket) {
    let sock = std::sync::Arc::new(sock);
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            return;
        };
        let query = buf[..n].to_vec();
        let sock = sock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(DELAY);
            if let Some(reply) = answer(&query) {
                let _ = sock.send_to(&reply, peer);
            }
        });
    }
}

/// The reply to a DNS query (RFC 1035): the header and question copied,
/// one A record when the question is `A` for [`NAME`].
fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < q.len() && q[i] != 0 {
        let len = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).into_owned());
        i += 1 + len;
    }
    let end = i + 5; // root byte, type (2), class (2)
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let hit = qtype == 1 && labels.join(".").eq_ignore_ascii_case(NAME);
    let mut r = q[..end].to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80; // RA, NOERROR
    r[6] = 0;
    r[7] = u8::from(hit); // ANCOUNT
    r[8..12].fill(0); // NSCOUNT, ARCOUNT
    if hit {
        // Name (a pointer to the question), A, IN, TTL 60, 4 bytes.
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ANSWER.octets());
    }
    Some(r)
}
