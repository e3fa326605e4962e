//! IO-15's hook-list check. Every C library function that this test binary
//! imports and that can block its thread is accounted for: either
//! `patch_all` routes it (the binary then defines it, so it is not
//! imported at all), or it is on a short list of calls left blocking on
//! purpose, each with its reason. The blocking functions are POSIX's
//! cancellation points (pthreads(7): the calls that may wait) with their
//! Linux relatives, and the resolver's. A new blocking import (a new std, a
//! new dependency, a new feature of verdant) fails here until it is routed
//! or listed.
//!
//! The imports are read with binutils' `nm -D --undefined-only` (CI
//! installs binutils if missing).

use std::collections::BTreeSet;
use std::process::Command;

/// The calls that may block: POSIX's cancellation points, their Linux and
/// large-file variants, and name resolution.
const MAY_BLOCK: &[&str] = &[
    "accept",
    "accept4",
    "aio_suspend",
    "clock_nanosleep",
    "close",
    "connect",
    "creat",
    "creat64",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fsync",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyname_r",
    "getnameinfo",
    "lockf",
    "lockf64",
    "mq_receive",
    "mq_send",
    "mq_timedreceive",
    "mq_timedsend",
    "msgrcv",
    "msgsnd",
    "msync",
    "nanosleep",
    "open",
    "open64",
    "openat",
    "openat64",
    "pause",
    "poll",
    "ppoll",
    "pread",
    "pread64",
    "preadv",
    "preadv2",
    "pselect",
    "pthread_cond_timedwait",
    "pthread_cond_wait",
    "pthread_join",
    "pwrite",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "select",
    "sem_timedwait",
    "sem_wait",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "sigpause",
    "sigsuspend",
    "sigtimedwait",
    "sigwait",
    "sigwaitinfo",
    "sleep",
    "splice",
    "system",
    "tcdrain",
    "usleep",
    "wait",
    "wait3",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Imported and left blocking on purpose: why each is not routed. Only
/// what the binary imports today; a new entry needs its own reason.
const LEFT_BLOCKING: &[(&str, &str)] = &[
    (
        "epoll_wait",
        "the hub's own poll: the one place a hub thread is meant to wait",
    ),
    (
        "pthread_join",
        "joining an OS thread (std::thread::JoinHandle::join); verdant::join_thread is the \
         cooperative form",
    ),
    (
        "open64",
        "opening a file: a regular file never waits for readiness (gevent leaves file IO \
         blocking too); a FIFO's open is the exception",
    ),
    (
        "pause",
        "std's own: a second thread calling exit() while one is exiting waits there for the \
         process to end (std::sys::exit), never on a live hub",
    ),
];

/// The dynamic symbols `exe` imports, without their version suffixes.
fn imports(exe: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only", "--format=posix"])
        .arg(exe)
        .output()
        .expect("nm (binutils) must be installed: CI installs it");
    assert!(
        out.status.success(),
        "nm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|s| s.split('@').next().unwrap_or(s).to_owned())
        .collect()
}

#[test]
fn every_blocking_import_is_routed_or_left_with_a_reason() {
    // Referring to patch_all links the routing into this binary, as in a
    // program that calls it.
    let _ = verdant::monkey::patch_all as fn();
    let exe = std::env::current_exe().unwrap();
    let imported = imports(&exe);
    assert!(
        imported.contains("malloc") || imported.contains("calloc"),
        "nm listed no imports: {imported:?}"
    );
    let left: BTreeSet<&str> = LEFT_BLOCKING.iter().map(|(name, _)| *name).collect();
    let blocking: Vec<&str> = MAY_BLOCK
        .iter()
        .copied()
        .filter(|name| imported.contains(*name))
        .collect();
    let unaccounted: Vec<&str> = blocking
        .iter()
        .copied()
        .filter(|name| !left.contains(name))
        .collect();
    eprintln!("blocking imports left on purpose: {blocking:?}");
    assert!(
        unaccounted.is_empty(),
        "imported, may block the hub's thread, and neither routed nor listed: {unaccounted:?}"
    );
    // What patch_all routes is defined here, so never imported.
    let routed_but_imported: Vec<&str> = verdant::monkey::ROUTED
        .iter()
        .copied()
        .filter(|name| imported.contains(*name))
        .collect();
    assert!(
        routed_but_imported.is_empty(),
        "routed, yet imported from the C library: {routed_but_imported:?}"
    );
}

/// The calls a std program with TCP, sleeps and name resolution imports
/// (the reliability plan's E13, from `nm -D` and `strace` of such a
/// program) are all routed.
#[test]
fn the_hook_list_covers_a_std_network_program() {
    const STD_NET_PROGRAM: &[&str] = &[
        "recv",
        "send",
        "accept4",
        "connect",
        "poll",
        "ioctl",
        "setsockopt",
        "clock_nanosleep",
        "getaddrinfo",
        "writev",
    ];
    for name in STD_NET_PROGRAM {
        assert!(
            verdant::monkey::ROUTED.contains(name),
            "{name} is not routed by patch_all"
        );
    }
}
