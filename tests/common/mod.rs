//! Shared by the test files that run crash scenarios in a child process:
//! the test re-executes its own binary for exactly one test, with an
//! environment variable naming the child case (greenlet's `run_script`).

// Shared by several test binaries, each of which uses only some of it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The variable that turns a test function into its child scenario.
pub const CHILD_ENV: &str = "VERDANT_TEST_CHILD";

/// The child case this process must run, if it is a child.
pub fn child_case() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs this test binary for exactly `test`, as child case `case`, with
/// extra environment `env`.
pub fn run_child(test: &str, case: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
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
        .expect("spawn child test process")
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
