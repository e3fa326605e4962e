//! Integration tests of the cooperative Unix-domain sockets,
//! `verdant::net::{UnixListener, UnixStream, UnixDatagram}`, with greenlets
//! (`spawn`) where the originals use threads.
//!
//! Sources:
//! * rust-lang/rust `library/std/src/os/unix/net/tests.rs`, rewritten with
//!   `spawn`: `basic`, `vectored`, `pair`, `try_clone`, `iter`, `long_path`,
//!   `timeouts`, `test_read_timeout`, `test_read_with_timeout`,
//!   `test_unix_stream_timeout_zero_duration`, `test_unix_datagram`,
//!   `test_unnamed_unix_datagram`, `test_unix_datagram_connect_to_recv_addr`,
//!   `test_connect_unix_datagram`, `test_unix_datagram_recv`,
//!   `datagram_pair`, `test_unix_datagram_timeout_zero_duration`,
//!   `abstract_namespace_not_allowed_connect`,
//!   `test_abstract_stream_connect`, `test_abstract_stream_iter`,
//!   `test_abstract_datagram_bind_send_to_addr`,
//!   `test_abstract_datagram_connect_addr`, `test_unix_datagram_max_path`.
//!   `test_read_timeout`/`test_read_with_timeout` accept only what std
//!   gives on Linux, `EAGAIN` (kind `WouldBlock`; std's test also allows
//!   `TimedOut`, which other platforms give), and `vectored` requires the write to
//!   gather and the read to scatter, where std's allows the write to send
//!   only its first buffer (verdant's `write_vectored` is a `sendmsg` with
//!   `MSG_NOSIGNAL`, its `read_vectored` a `readv`).
//!   Not ported:
//!   - `sock_addr_from_pathname`, `sock_addr_without_trailing_nul`,
//!     `sock_addr_pathname_fills_sun_path`, `abstract_socket_addr_debug`,
//!     `test_abstract_name_too_long`,
//!     `test_abstract_no_pathname_and_not_unnamed`: they test std's
//!     `SocketAddr`, which verdant re-exports unchanged (nothing of
//!     verdant's runs), and some use std-internal helpers.
//!   - `test_unix_stream_peek`, `test_unix_datagram_peek`,
//!     `test_unix_datagram_peek_from`: `peek`/`peek_from` are unstable in
//!     std (`unix_socket_peek`), so verdant has none; the stream one also
//!     needs `set_nonblocking`, which verdant sockets do not have (always
//!     non-blocking underneath, as for TCP).
//!   - `test_send_vectored_fds_unix_stream`,
//!     `test_send_vectored_with_ancillary_to_unix_datagram`,
//!     `test_send_vectored_with_ancillary_unix_datagram`: ancillary data and
//!     `set_passcred` are unstable in std and not provided.
//! * verdant's own, after the TCP suite (`tests/net_tcp.rs`) and gevent's
//!   `test__socket_close.py`: many echoing pairs in one thread, `close`
//!   waking a blocked reader / acceptor / receiver / writer within 100 ms,
//!   a second concurrent reader / acceptor / receiver getting
//!   `ResourceBusy`, read and write timeouts (`EAGAIN`, never early, the
//!   hub running others meanwhile; `write_all` as a whole-call deadline),
//!   writes to a closed peer (`BrokenPipe`, also in a child whose `SIGPIPE`
//!   is `SIG_DFL`), a large `write_all` through a small send buffer without
//!   loss, a connect to a full backlog and a datagram send to a full queue
//!   (both waiting cooperatively), `accept` under `EMFILE`, blocking-style
//!   calls outside any greenlet, fd conversions, and the process's open
//!   descriptors (`/proc/self/fd`) back to the baseline after dropping.
//!
//! Tests run in parallel: each gets its own directory under
//! `std::env::temp_dir()` (process id, test tag and a counter in the name;
//! removed on drop) and its own abstract names. Test bodies that could hang
//! on a reactor regression run in a greenlet joined with a bound, so they
//! fail instead. The descriptor-count and `EMFILE` tests run in a child
//! process of their own, where no other test opens descriptors meanwhile.

use std::cell::Cell;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use verdant::net::{UnixDatagram, UnixListener, UnixStream};
use verdant::{sleep, spawn, yield_now, Hub, JoinHandle};

mod common;
use common::{assert_socket_timeout, child_case, random_bytes, run_child, setsockopt_int, Rng};

const MS: Duration = Duration::from_millis(1);
/// The upper bound for anything that should be "prompt" on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);
/// Give up on something that should finish, rather than hang the suite.
const HANG: Duration = Duration::from_secs(10);
/// gevent's bound for `close()` waking a blocked greenlet.
const WAKE_BOUND: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (nor a concurrent run of this binary) uses.
fn unique(tag: &str) -> String {
    format!(
        "verdant-unix-{}-{tag}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system temp dir, removed (with the socket
/// files in it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An abstract-namespace address unique to this call.
fn abstract_addr(tag: &str) -> (SocketAddr, Vec<u8>) {
    let name = unique(tag).into_bytes();
    let addr = SocketAddr::from_abstract_name(&name).expect("abstract name");
    (addr, name)
}

/// Joins `h`, failing the test instead of hanging if it does not finish
/// within `limit`.
fn join_within<T: 'static>(h: JoinHandle<T>, limit: Duration, what: &str) -> T {
    assert!(
        h.wait_timeout(limit).expect("wait_timeout"),
        "{what}: did not finish within {limit:?} (stalled)"
    );
    h.join().expect(what)
}

/// A test body, run in a greenlet and bounded by [`HANG`].
fn bounded<T: 'static>(f: impl FnOnce() -> T + 'static) -> T {
    within(HANG, "test body", f)
}

/// Runs `f` in a greenlet and joins it within `limit`.
fn within<T: 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + 'static) -> T {
    join_within(spawn(f), limit, what)
}

/// Runs `f` on a fresh OS thread and fails the test if it does not finish
/// within `limit`: for scenarios where a regression would block the whole
/// thread (a greenlet bound cannot fire then). A stuck thread is leaked.
fn on_thread_within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: the thread did not finish within {limit:?} (blocked)")
        }
        // The thread panicked: report its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, streaming: lost, duplicated or reordered bytes change it.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A small send buffer (16 KiB, doubled by the kernel): a Unix stream's
/// data in flight is charged to the sender's buffer.
fn small_sndbuf(fd: RawFd) {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 16 * 1024);
}

/// The process's open descriptors.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Writes one byte at a time until the write fails and returns the error.
fn write_until_error(mut s: &UnixStream) -> io::Error {
    for _ in 0..100_000 {
        if let Err(e) = s.write(&[0]) {
            return e;
        }
    }
    panic!("100,000 writes to a closed peer all succeeded");
}

/// Asserts that every one of `lat` is within WAKE_BOUND.
fn assert_all_prompt(what: &str, lat: &[Duration]) {
    let late: Vec<_> = lat.iter().filter(|d| **d > WAKE_BOUND).collect();
    let max = lat.iter().max().copied().unwrap_or_default();
    eprintln!("{what}: {} wake-ups, max {max:?}", lat.len());
    assert!(
        late.is_empty(),
        "{what}: {}/{} waiters woke later than {WAKE_BOUND:?} (max {max:?})",
        late.len(),
        lat.len()
    );
}

/// Fills `rx`'s receive queue (`net.unix.max_dgram_qlen`) from std
/// non-blocking senders, until a fresh sender is refused with `WouldBlock`:
/// then the queue itself is full, not just one sender's buffer. Returns
/// the fillers (their queued datagrams are `b'f'`).
fn fill_datagram_queue(rx: &Path) -> Vec<std::os::unix::net::UnixDatagram> {
    let mut fillers = Vec::new();
    for _ in 0..64 {
        let f = std::os::unix::net::UnixDatagram::unbound().unwrap();
        f.set_nonblocking(true).unwrap();
        let mut sent = 0;
        loop {
            match f.send_to(b"f", rx) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("filler: {e:?}"),
            }
        }
        fillers.push(f);
        if sent == 0 {
            return fillers; // a fresh sender could not send one datagram
        }
    }
    panic!("could not fill the receiver's queue");
}

// ---------------------------------------------------------------------------
// rust-lang/rust library/std/src/os/unix/net/tests.rs, with greenlets
// ---------------------------------------------------------------------------

common::seeded_tests! {
// std basic: bind, accept in a greenlet, connect, both addresses name the path.
fn std_basic() {
    bounded(|| {
        let dir = TempDir::new("basic");
        let socket_path = dir.join("sock");
        let (msg1, msg2) = (b"hello", b"world!");
        let listener = UnixListener::bind(&socket_path).unwrap();
        assert_eq!(
            Some(&*socket_path),
            listener.local_addr().unwrap().as_pathname()
        );
        let server = spawn(move || {
            let mut stream = listener.accept().unwrap().0;
            let mut buf = [0; 5];
            stream.read_exact(&mut buf).unwrap();
            assert_eq!(&msg1[..], &buf[..]);
            stream.write_all(msg2).unwrap();
        });
        let mut stream = UnixStream::connect(&socket_path).unwrap();
        assert_eq!(
            Some(&*socket_path),
            stream.peer_addr().unwrap().as_pathname()
        );
        stream.write_all(msg1).unwrap();
        let mut buf = vec![];
        stream.read_to_end(&mut buf).unwrap();
        assert_eq!(&msg2[..], &buf[..]);
        drop(stream);
        join_within(server, SLACK, "server");
    });
}

// std vectored, stricter: std allows the write to send only its first
// buffer (`Write`'s default); verdant's gathers (sendmsg) and its read
// scatters (readv).
fn std_vectored() {
    let (mut s1, mut s2) = UnixStream::pair().unwrap();
    let len = s1
        .write_vectored(&[
            IoSlice::new(b"hello"),
            IoSlice::new(b" "),
            IoSlice::new(b"world!"),
        ])
        .unwrap();
    assert_eq!(len, 12, "write_vectored sent only the first buffer");
    let mut buf1 = [0; 6];
    let mut buf2 = [0; 7];
    let len = s2
        .read_vectored(&mut [IoSliceMut::new(&mut buf1), IoSliceMut::new(&mut buf2)])
        .unwrap();
    assert_eq!(len, 12);
    assert_eq!(&buf1, b"hello ");
    assert_eq!(&buf2, b"world!\0");
    // Through shared references too.
    assert_eq!(
        (&s2)
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c")])
            .unwrap(),
        3
    );
    let (mut x, mut y) = ([0u8; 1], [0u8; 4]);
    let n = (&s1)
        .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
        .unwrap();
    assert_eq!((n, &x, &y[..2]), (3, b"a", &b"bc"[..]));
}

// std pair.
fn std_pair() {
    bounded(|| {
        let (msg1, msg2) = (b"hello", b"world!");
        let (mut s1, mut s2) = UnixStream::pair().unwrap();
        assert!(s1.local_addr().unwrap().is_unnamed());
        assert!(s2.peer_addr().unwrap().is_unnamed());
        let g = spawn(move || {
            // s1 must be moved in or the test will hang!
            let mut buf = [0; 5];
            s1.read_exact(&mut buf).unwrap();
            assert_eq!(&msg1[..], &buf[..]);
            s1.write_all(msg2).unwrap();
        });
        s2.write_all(msg1).unwrap();
        let mut buf = vec![];
        s2.read_to_end(&mut buf).unwrap();
        assert_eq!(&msg2[..], &buf[..]);
        drop(s2);
        join_within(g, SLACK, "peer");
    });
}

// std try_clone: two handles read one stream in turn.
fn std_try_clone() {
    bounded(|| {
        let dir = TempDir::new("try-clone");
        let socket_path = dir.join("sock");
        let (msg1, msg2) = (b"hello", b"world");
        let listener = UnixListener::bind(&socket_path).unwrap();
        let server = spawn(move || {
            let mut stream = listener.accept().unwrap().0;
            stream.write_all(msg1).unwrap();
            sleep(5 * MS); // keep the two messages apart
            stream.write_all(msg2).unwrap();
        });
        let mut stream = UnixStream::connect(&socket_path).unwrap();
        let mut stream2 = stream.try_clone().unwrap();
        let mut buf = [0; 5];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&msg1[..], &buf[..]);
        stream2.read_exact(&mut buf).unwrap();
        assert_eq!(&msg2[..], &buf[..]);
        join_within(server, SLACK, "server");
    });
}

// std iter: incoming().take(2); also `for s in &listener`.
fn std_iter() {
    bounded(|| {
        let dir = TempDir::new("iter");
        let socket_path = dir.join("sock");
        let listener = UnixListener::bind(&socket_path).unwrap();
        let server = spawn(move || {
            let mut got = Vec::new();
            for stream in listener.incoming().take(2) {
                let mut buf = [0];
                stream.unwrap().read_exact(&mut buf).unwrap();
                got.push(buf[0]);
            }
            for stream in (&listener).into_iter().take(1) {
                let mut buf = [0];
                stream.unwrap().read_exact(&mut buf).unwrap();
                got.push(buf[0]);
            }
            got
        });
        for i in 0..3u8 {
            let mut stream = UnixStream::connect(&socket_path).unwrap();
            stream.write_all(&[i]).unwrap();
        }
        assert_eq!(join_within(server, SLACK, "server"), [0, 1, 2]);
    });
}

// std long_path: a path that does not fit sun_path is InvalidInput.
fn std_long_path() {
    let dir = TempDir::new("long");
    let dir_len = dir.path().as_os_str().len() + 1;
    let sock = format!("sock{}", "a".repeat(108usize.saturating_sub(dir_len)));
    let socket_path = dir.path().join(sock);
    let e = UnixStream::connect(&socket_path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = UnixListener::bind(&socket_path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let e = UnixDatagram::bind(&socket_path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
}

// std timeouts: the getters return what was set.
fn std_timeouts() {
    let dir = TempDir::new("timeouts");
    let socket_path = dir.join("sock");
    let _listener = UnixListener::bind(&socket_path).unwrap();
    let stream = UnixStream::connect(&socket_path).unwrap();
    let dur = Duration::new(15410, 0);
    assert_eq!(None, stream.read_timeout().unwrap());
    stream.set_read_timeout(Some(dur)).unwrap();
    assert_eq!(Some(dur), stream.read_timeout().unwrap());
    assert_eq!(None, stream.write_timeout().unwrap());
    stream.set_write_timeout(Some(dur)).unwrap();
    assert_eq!(Some(dur), stream.write_timeout().unwrap());
    stream.set_read_timeout(None).unwrap();
    assert_eq!(None, stream.read_timeout().unwrap());
    stream.set_write_timeout(None).unwrap();
    assert_eq!(None, stream.write_timeout().unwrap());
}

// std test_read_timeout (1 s there, 100 ms here): EAGAIN, as std's on
// Linux, never early.
fn std_test_read_timeout() {
    bounded(|| {
        let dir = TempDir::new("read-timeout");
        let socket_path = dir.join("sock");
        let _listener = UnixListener::bind(&socket_path).unwrap();
        let mut stream = UnixStream::connect(&socket_path).unwrap();
        stream.set_read_timeout(Some(100 * MS)).unwrap();
        let t = Instant::now();
        let mut buf = [0; 10];
        let e = stream.read_exact(&mut buf).unwrap_err();
        let dt = t.elapsed();
        assert_socket_timeout(&e);
        assert!(dt >= 100 * MS, "timed out early: {dt:?}");
        assert!(dt < 100 * MS + SLACK, "timed out late: {dt:?}");
    });
}

// std test_read_with_timeout: data in time is read; then the timeout applies.
fn std_test_read_with_timeout() {
    bounded(|| {
        let dir = TempDir::new("read-with-timeout");
        let socket_path = dir.join("sock");
        let listener = UnixListener::bind(&socket_path).unwrap();
        let mut stream = UnixStream::connect(&socket_path).unwrap();
        stream.set_read_timeout(Some(100 * MS)).unwrap();
        let mut other_end = listener.accept().unwrap().0;
        other_end.write_all(b"hello world").unwrap();
        let mut buf = [0; 11];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(b"hello world", &buf[..]);
        let e = stream.read_exact(&mut buf).unwrap_err();
        assert_socket_timeout(&e);
    });
}

// std test_unix_stream_timeout_zero_duration.
fn std_stream_timeout_zero_duration() {
    let dir = TempDir::new("zero");
    let socket_path = dir.join("sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let stream = UnixStream::connect(&socket_path).unwrap();
    let err = stream.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = stream.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    drop(listener);
}

// std test_unix_datagram: the receiver parks in a greenlet first.
fn std_unix_datagram() {
    bounded(|| {
        let dir = TempDir::new("dgram");
        let (path1, path2) = (dir.join("sock1"), dir.join("sock2"));
        let sock1 = UnixDatagram::bind(&path1).unwrap();
        let sock2 = UnixDatagram::bind(&path2).unwrap();
        let rx = spawn(move || {
            let mut buf = [0; 11];
            let (n, from) = sock2.recv_from(&mut buf).unwrap();
            (n, buf, from.as_pathname().map(Path::to_path_buf))
        });
        yield_now();
        assert!(!rx.is_finished(), "the receiver did not park");
        let msg = b"hello world";
        assert_eq!(sock1.send_to(msg, &path2).unwrap(), 11);
        let (n, buf, from) = join_within(rx, SLACK, "receiver");
        assert_eq!((n, &buf), (11, msg));
        assert_eq!(from.as_deref(), Some(&*path1));
    });
}

// std test_unnamed_unix_datagram.
fn std_unnamed_unix_datagram() {
    let dir = TempDir::new("unnamed");
    let path1 = dir.join("sock1");
    let sock1 = UnixDatagram::bind(&path1).unwrap();
    let sock2 = UnixDatagram::unbound().unwrap();
    let msg = b"hello world";
    sock2.send_to(msg, &path1).unwrap();
    let mut buf = [0; 11];
    let (n, addr) = sock1.recv_from(&mut buf).unwrap();
    assert_eq!(n, 11);
    assert!(addr.is_unnamed());
    assert_eq!(msg, &buf[..]);
}

// std test_unix_datagram_connect_to_recv_addr.
fn std_datagram_connect_to_recv_addr() {
    let dir = TempDir::new("recv-addr");
    let (path1, path2) = (dir.join("sock1"), dir.join("sock2"));
    let sock1 = UnixDatagram::bind(&path1).unwrap();
    let sock2 = UnixDatagram::bind(&path2).unwrap();
    let msg = b"hello world";
    let sock1_addr = sock1.local_addr().unwrap();
    sock2.send_to_addr(msg, &sock1_addr).unwrap();
    let mut buf = [0; 11];
    let (_, addr) = sock1.recv_from(&mut buf).unwrap();
    let new_msg = b"hello back";
    let mut new_buf = [0; 10];
    sock2.connect_addr(&addr).unwrap();
    sock2.send(new_msg).unwrap(); // set by connect_addr
    let n = sock2.recv(&mut new_buf).unwrap();
    assert_eq!(n, 10);
    assert_eq!(new_msg, &new_buf[..]);
}

// std test_connect_unix_datagram.
fn std_connect_unix_datagram() {
    let dir = TempDir::new("dconnect");
    let (path1, path2) = (dir.join("sock1"), dir.join("sock2"));
    let bsock1 = UnixDatagram::bind(&path1).unwrap();
    let bsock2 = UnixDatagram::bind(&path2).unwrap();
    let sock = UnixDatagram::unbound().unwrap();
    sock.connect(&path1).unwrap();
    let msg = b"hello there";
    sock.send(msg).unwrap();
    let mut buf = [0; 11];
    let (n, addr) = bsock1.recv_from(&mut buf).unwrap();
    assert_eq!(n, 11);
    assert!(addr.is_unnamed());
    assert_eq!(msg, &buf[..]);
    // Changing the default peer works too.
    sock.connect(&path2).unwrap();
    sock.send(msg).unwrap();
    bsock2.recv_from(&mut buf).unwrap();
    assert_eq!(msg, &buf[..]);
}

// std test_unix_datagram_recv.
fn std_unix_datagram_recv() {
    let dir = TempDir::new("drecv");
    let path1 = dir.join("sock1");
    let sock1 = UnixDatagram::bind(&path1).unwrap();
    let sock2 = UnixDatagram::unbound().unwrap();
    sock2.connect(&path1).unwrap();
    let msg = b"hello world";
    sock2.send(msg).unwrap();
    let mut buf = [0; 11];
    assert_eq!(sock1.recv(&mut buf).unwrap(), 11);
    assert_eq!(msg, &buf[..]);
}

// std datagram_pair.
fn std_datagram_pair() {
    bounded(|| {
        let (msg1, msg2) = (b"hello", b"world!");
        let (s1, s2) = UnixDatagram::pair().unwrap();
        let g = spawn(move || {
            let mut buf = [0; 5];
            s1.recv(&mut buf).unwrap();
            assert_eq!(&msg1[..], &buf[..]);
            s1.send(msg2).unwrap();
        });
        s2.send(msg1).unwrap();
        let mut buf = [0; 6];
        s2.recv(&mut buf).unwrap();
        assert_eq!(&msg2[..], &buf[..]);
        drop(s2);
        join_within(g, SLACK, "peer");
    });
}

// std test_unix_datagram_timeout_zero_duration.
fn std_datagram_timeout_zero_duration() {
    let dir = TempDir::new("dzero");
    let datagram = UnixDatagram::bind(dir.join("sock")).unwrap();
    let err = datagram
        .set_write_timeout(Some(Duration::ZERO))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = datagram.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

// std abstract_namespace_not_allowed_connect: a path with a NUL is refused.
fn std_abstract_namespace_not_allowed_connect() {
    let e = UnixStream::connect("\0asdf").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
}

// std test_abstract_stream_connect.
fn std_abstract_stream_connect() {
    bounded(|| {
        let (msg1, msg2) = (b"hello", b"world");
        let (socket_addr, name) = abstract_addr("astream");
        let listener = UnixListener::bind_addr(&socket_addr).unwrap();
        let server = spawn(move || {
            let mut stream = listener.accept().unwrap().0;
            let mut buf = [0; 5];
            stream.read_exact(&mut buf).unwrap();
            assert_eq!(&msg1[..], &buf[..]);
            stream.write_all(msg2).unwrap();
        });
        let mut stream = UnixStream::connect_addr(&socket_addr).unwrap();
        let peer = stream.peer_addr().unwrap();
        assert_eq!(peer.as_abstract_name().unwrap(), &name[..]);
        stream.write_all(msg1).unwrap();
        let mut buf = vec![];
        stream.read_to_end(&mut buf).unwrap();
        assert_eq!(&msg2[..], &buf[..]);
        drop(stream);
        join_within(server, SLACK, "server");
    });
}

// std test_abstract_stream_iter.
fn std_abstract_stream_iter() {
    bounded(|| {
        let (addr, _) = abstract_addr("aiter");
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let server = spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut buf = [0];
                stream.unwrap().read_exact(&mut buf).unwrap();
            }
        });
        for _ in 0..2 {
            let mut stream = UnixStream::connect_addr(&addr).unwrap();
            stream.write_all(&[0]).unwrap();
        }
        join_within(server, SLACK, "server");
    });
}

// std test_abstract_datagram_bind_send_to_addr.
fn std_abstract_datagram_bind_send_to_addr() {
    let (addr1, name1) = abstract_addr("ns1");
    let sock1 = UnixDatagram::bind_addr(&addr1).unwrap();
    let local = sock1.local_addr().unwrap();
    assert_eq!(local.as_abstract_name().unwrap(), &name1[..]);
    let (addr2, _) = abstract_addr("ns2");
    let sock2 = UnixDatagram::bind_addr(&addr2).unwrap();
    let msg = b"hello world";
    sock1.send_to_addr(msg, &addr2).unwrap();
    let mut buf = [0; 11];
    let (len, addr) = sock2.recv_from(&mut buf).unwrap();
    assert_eq!(msg, &buf[..]);
    assert_eq!(len, 11);
    assert_eq!(addr.as_abstract_name().unwrap(), &name1[..]);
}

// std test_abstract_datagram_connect_addr.
fn std_abstract_datagram_connect_addr() {
    let (addr1, _) = abstract_addr("ns3");
    let bsock1 = UnixDatagram::bind_addr(&addr1).unwrap();
    let sock = UnixDatagram::unbound().unwrap();
    sock.connect_addr(&addr1).unwrap();
    let msg = b"hello world";
    sock.send(msg).unwrap();
    let mut buf = [0; 11];
    let (len, addr) = bsock1.recv_from(&mut buf).unwrap();
    assert_eq!(len, 11);
    assert!(addr.is_unnamed());
    assert_eq!(msg, &buf[..]);
    let (addr2, _) = abstract_addr("ns4");
    let bsock2 = UnixDatagram::bind_addr(&addr2).unwrap();
    sock.connect_addr(&addr2).unwrap();
    sock.send(msg).unwrap();
    bsock2.recv_from(&mut buf).unwrap();
}

// std test_unix_datagram_max_path: the longest path that fits still works.
fn std_unix_datagram_max_path() {
    let dir = TempDir::new("maxpath");
    let dir_len = dir.path().as_os_str().len() + 1;
    let n = 108usize.saturating_sub(5 + dir_len);
    let path1 = dir.path().join(format!("sock{}", "a".repeat(n)));
    let path2 = dir.path().join(format!("sock{}", "b".repeat(n)));
    let sock1 = UnixDatagram::bind(&path1).unwrap();
    let sock2 = UnixDatagram::bind(&path2).unwrap();
    let msg = b"hello world";
    sock1.send_to(msg, &path2).unwrap();
    let mut buf = [0; 11];
    sock2.recv_from(&mut buf).unwrap();
    assert_eq!(msg, &buf[..]);
}
}
// ---------------------------------------------------------------------------
// verdant: addresses, errors, conversions
// ---------------------------------------------------------------------------

common::seeded_tests! {
fn connect_errors_are_prompt() {
    bounded(|| {
        let dir = TempDir::new("connect-errors");
        let e = UnixStream::connect(dir.join("nobody")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        // A listener that is gone leaves its file behind: refused, at once.
        let path = dir.join("stale");
        drop(UnixListener::bind(&path).unwrap());
        let t = Instant::now();
        let e = UnixStream::connect(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
        assert!(t.elapsed() < WAKE_BOUND, "refused after {:?}", t.elapsed());
        // std double_bind: the path is taken.
        let e = UnixListener::bind(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
    });
}

fn accepted_stream_addresses_and_debug() {
    let dir = TempDir::new("addrs");
    let path = dir.join("sock");
    let l = UnixListener::bind(&path).unwrap();
    let c = UnixStream::connect(&path).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert!(peer.is_unnamed());
    assert_eq!(s.local_addr().unwrap().as_pathname(), Some(&*path));
    assert!(s.peer_addr().unwrap().is_unnamed());
    assert!(c.take_error().unwrap().is_none() && l.take_error().unwrap().is_none());
    let l2 = l.try_clone().unwrap();
    assert_eq!(l2.local_addr().unwrap().as_pathname(), Some(&*path));
    for d in [format!("{l:?}"), format!("{s:?}")] {
        assert!(d.contains(path.to_str().unwrap()), "{d}");
    }
    assert!(format!("{c:?}").starts_with("UnixStream"));
    let dg = UnixDatagram::bind(dir.join("dg")).unwrap();
    assert!(format!("{dg:?}").contains("dg"), "{dg:?}");
    assert_eq!(dg.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    assert!(dg.take_error().unwrap().is_none());
}

/// into_raw_fd and `From<_> for OwnedFd` deregister; `From<OwnedFd>`
/// registers again, and the socket still works cooperatively.
fn fd_conversions_round_trip() {
    bounded(|| {
        let hub = Hub::current();
        let base = hub.io_registrations();
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(hub.io_registrations(), base + 2);
        let raw = a.as_raw_fd();
        assert_eq!(a.as_fd().as_raw_fd(), raw);
        let fd = a.into_raw_fd();
        assert_eq!(fd, raw);
        assert_eq!(hub.io_registrations(), base + 1);
        // SAFETY: `fd` was just released by `into_raw_fd`; nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let a = UnixStream::from(owned);
        let owned_b: OwnedFd = b.into();
        assert_eq!(hub.io_registrations(), base + 1);
        let b = UnixStream::from(owned_b);
        let reader = spawn(move || {
            let mut buf = [0u8; 3];
            (&b).read_exact(&mut buf).unwrap();
            buf
        });
        yield_now();
        assert!(!reader.is_finished(), "the adopted socket did not park");
        (&a).write_all(b"abc").unwrap();
        assert_eq!(&join_within(reader, SLACK, "reader"), b"abc");
        drop(a);
        // Listener and datagram conversions.
        let dir = TempDir::new("fdconv");
        let l = UnixListener::bind(dir.join("sock")).unwrap();
        let l = UnixListener::from(OwnedFd::from(l));
        let c = UnixStream::connect(dir.join("sock")).unwrap();
        let _ = l.accept().unwrap();
        let (d1, d2) = UnixDatagram::pair().unwrap();
        let d1 = UnixDatagram::from(OwnedFd::from(d1));
        d1.send(b"x").unwrap();
        assert_eq!(d2.recv(&mut [0u8; 2]).unwrap(), 1);
        drop((l, c, d1, d2));
        assert_eq!(hub.io_registrations(), base);
    });
}
}
// ---------------------------------------------------------------------------
// verdant: many connections, one thread
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// 300 socket pairs, each echoed by a server greenlet, each driven by a
/// client greenlet sending 20 random-sized messages: all in this thread,
/// all interleaved, every reply checked.
fn echo_many_pairs_in_one_thread() {
    bounded(|| {
        let pairs = common::scaled(300);
        const ROUNDS: usize = 20;
        let me = std::thread::current().id();
        let hub = Hub::current();
        let base = hub.io_registrations();
        let in_flight = Rc::new(Cell::new(0usize));
        let max_in_flight = Rc::new(Cell::new(0usize));
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        for k in 0..pairs {
            let (c, s) = UnixStream::pair().unwrap();
            servers.push(spawn(move || {
                assert_eq!(std::thread::current().id(), me);
                let mut buf = [0u8; 4096];
                let mut total = 0;
                loop {
                    let n = (&s).read(&mut buf).unwrap();
                    if n == 0 {
                        return total;
                    }
                    (&s).write_all(&buf[..n]).unwrap();
                    total += n;
                }
            }));
            let (f, m) = (in_flight.clone(), max_in_flight.clone());
            clients.push((c, f, m, k));
        }
        yield_now();
        assert!(
            servers.iter().all(|s| !s.is_finished()),
            "a server did not park in read"
        );
        let clients: Vec<_> = clients
            .into_iter()
            .map(|(mut c, f, m, k)| {
                spawn(move || {
                    assert_eq!(std::thread::current().id(), me);
                    let mut rng = Rng(k as u64 * 7919 + 1);
                    let mut sent = 0;
                    for r in 0..ROUNDS {
                        let msg = random_bytes(rng.range(1, 4096), (k * ROUNDS + r) as u64);
                        f.set(f.get() + 1);
                        m.set(m.get().max(f.get()));
                        c.write_all(&msg).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        c.read_exact(&mut back).unwrap();
                        f.set(f.get() - 1);
                        assert!(back == msg, "pair {k} round {r}: echo differs");
                        sent += msg.len();
                    }
                    sent
                })
            })
            .collect();
        let sent: Vec<usize> = clients
            .into_iter()
            .map(|c| join_within(c, HANG, "client"))
            .collect();
        let echoed: Vec<usize> = servers
            .into_iter()
            .map(|s| join_within(s, SLACK, "server"))
            .collect();
        assert_eq!(sent, echoed);
        eprintln!("echo: max {} round trips in flight", max_in_flight.get());
        assert!(
            max_in_flight.get() > pairs / 2,
            "the clients did not interleave: max {} in flight",
            max_in_flight.get()
        );
        assert_eq!(hub.io_registrations(), base, "registrations leaked");
    });
}

/// One listener, a greenlet per accepted connection, 200 clients at once.
fn listener_serves_many_clients_concurrently() {
    bounded(|| {
        let clients_n = common::scaled(200);
        let dir = TempDir::new("many");
        let path = dir.join("sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = spawn(move || {
            let mut conns = Vec::new();
            for conn in listener.incoming().take(clients_n) {
                let mut conn = conn.unwrap();
                conns.push(spawn(move || {
                    let mut req = Vec::new();
                    conn.read_to_end(&mut req).unwrap(); // until shutdown(Write)
                    req.reverse();
                    conn.write_all(&req).unwrap();
                }));
            }
            for c in conns {
                c.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..clients_n)
            .map(|i| {
                let path = path.clone();
                spawn(move || {
                    let mut c = UnixStream::connect(&path).unwrap();
                    let req = format!("request number {i}");
                    c.write_all(req.as_bytes()).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut reply = Vec::new();
                    c.read_to_end(&mut reply).unwrap();
                    let mut want = req.into_bytes();
                    want.reverse();
                    assert_eq!(reply, want, "client {i}");
                })
            })
            .collect();
        for c in clients {
            join_within(c, HANG, "client");
        }
        join_within(server, HANG, "server");
    });
}
}
// ---------------------------------------------------------------------------
// verdant: close wakes waiters (gevent test_recv_closed), within 100 ms
// ---------------------------------------------------------------------------

common::seeded_tests! {
fn close_wakes_reader() {
    bounded(|| {
        let hub = Hub::current();
        let base = hub.io_registrations();
        let mut lat = Vec::with_capacity(300);
        for i in 0..common::scaled(300) {
            let (mut c, s) = UnixStream::pair().unwrap();
            c.set_read_timeout(Some(SLACK)).unwrap();
            let s = Rc::new(s);
            let (s2, keep) = (s.clone(), s.clone());
            let a = spawn(move || {
                let r = (&*s2).read(&mut [0u8; 16]).map_err(|e| e.kind());
                (r, Instant::now())
            });
            yield_now();
            assert!(!a.is_finished(), "iteration {i}: the reader did not park");
            let b = spawn(move || {
                let t = Instant::now();
                s.close();
                t
            });
            let closed_at = b.join().unwrap();
            let (r, woke_at) = join_within(a, SLACK, "reader");
            assert_eq!(r, Err(ErrorKind::NotConnected), "iteration {i}");
            lat.push(woke_at.saturating_duration_since(closed_at));
            // The peer sees the end while the stream is still alive...
            assert_eq!(c.read(&mut [0u8; 4]).unwrap(), 0, "iteration {i}");
            // ...and every later operation fails the same way.
            let e = (&*keep).write(b"x").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotConnected, "iteration {i}");
        }
        assert_all_prompt("close wakes reader", &lat);
        assert_eq!(hub.io_registrations(), base, "registrations leaked");
    });
}

fn close_wakes_acceptor() {
    bounded(|| {
        let hub = Hub::current();
        let base = hub.io_registrations();
        let dir = TempDir::new("close-accept");
        let mut lat = Vec::with_capacity(300);
        for i in 0..common::scaled(300) {
            let l = Rc::new(UnixListener::bind(dir.join(&format!("s{i}"))).unwrap());
            let l2 = l.clone();
            let a = spawn(move || {
                (
                    l2.accept().map(|_| ()).map_err(|e| e.kind()),
                    Instant::now(),
                )
            });
            yield_now();
            assert!(!a.is_finished(), "iteration {i}: A did not park in accept");
            let closed_at = Instant::now();
            l.close();
            let (r, woke_at) = join_within(a, SLACK, "acceptor");
            assert_eq!(r, Err(ErrorKind::NotConnected), "iteration {i}");
            lat.push(woke_at.saturating_duration_since(closed_at));
            assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::NotConnected);
        }
        assert_all_prompt("close wakes acceptor", &lat);
        assert_eq!(hub.io_registrations(), base, "registrations leaked");
    });
}

fn close_wakes_datagram_receiver() {
    bounded(|| {
        let hub = Hub::current();
        let base = hub.io_registrations();
        let mut lat = Vec::with_capacity(300);
        for i in 0..common::scaled(300) {
            let (s, _peer) = UnixDatagram::pair().unwrap();
            let s = Rc::new(s);
            let s2 = s.clone();
            let a = spawn(move || (s2.recv(&mut [0u8; 8]).map_err(|e| e.kind()), Instant::now()));
            yield_now();
            assert!(!a.is_finished(), "iteration {i}: the receiver did not park");
            let closed_at = Instant::now();
            s.close();
            let (r, woke_at) = join_within(a, SLACK, "receiver");
            assert_eq!(r, Err(ErrorKind::NotConnected), "iteration {i}");
            lat.push(woke_at.saturating_duration_since(closed_at));
            assert_eq!(s.send(b"x").unwrap_err().kind(), ErrorKind::NotConnected);
        }
        assert_all_prompt("close wakes datagram receiver", &lat);
        assert_eq!(hub.io_registrations(), base, "registrations leaked");
    });
}

fn close_wakes_writer_on_full_buffer() {
    bounded(|| {
        let data = Rc::new(vec![0x5au8; 4 << 20]);
        let mut lat = Vec::with_capacity(50);
        for i in 0..50 {
            let (c, _s) = UnixStream::pair().unwrap();
            small_sndbuf(c.as_raw_fd());
            let c = Rc::new(c);
            let (c2, d) = (c.clone(), data.clone());
            let a = spawn(move || ((&*c2).write_all(&d).map_err(|e| e.kind()), Instant::now()));
            yield_now();
            assert!(!a.is_finished(), "iteration {i}: the writer did not block");
            let closed_at = Instant::now();
            c.close();
            let (r, woke_at) = join_within(a, SLACK, "writer");
            assert_eq!(r, Err(ErrorKind::NotConnected), "iteration {i}");
            lat.push(woke_at.saturating_duration_since(closed_at));
        }
        assert_all_prompt("close wakes writer", &lat);
    });
}

// std close_read_wakes_up: shutdown(Read) makes a parked read return Ok(0),
// through a clone (its own registration) and through the same handle.
fn shutdown_read_wakes_reader() {
    bounded(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let clone = a.try_clone().unwrap();
        let a2 = a.clone();
        let r1 = spawn(move || (&clone).read(&mut [0u8; 8]).unwrap());
        yield_now();
        assert!(!r1.is_finished());
        a.shutdown(Shutdown::Read).unwrap();
        assert_eq!(join_within(r1, SLACK, "reader on the clone"), 0);
        let r2 = spawn(move || (&*a2).read(&mut [0u8; 8]).unwrap());
        assert_eq!(join_within(r2, SLACK, "reader"), 0);
    });
}
}
// ---------------------------------------------------------------------------
// verdant: one waiter per direction (gevent test_recv_twice)
// ---------------------------------------------------------------------------

common::seeded_tests! {
fn second_reader_is_resource_busy() {
    bounded(|| {
        for i in 0..common::scaled(100) {
            let (mut c, s) = UnixStream::pair().unwrap();
            let s = Rc::new(s);
            let s1 = s.clone();
            let first = spawn(move || {
                let mut buf = [0u8; 16];
                let n = (&*s1).read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            common::settle(); // the first reader parks
            assert!(!first.is_finished());
            let s2 = s.clone();
            let second = spawn(move || {
                let t = Instant::now();
                (
                    (&*s2).read(&mut [0u8; 16]).map_err(|e| e.kind()),
                    t.elapsed(),
                )
            });
            let (r, dt) = join_within(second, SLACK, "second reader");
            assert_eq!(r, Err(ErrorKind::ResourceBusy), "iteration {i}");
            assert!(dt < WAKE_BOUND, "iteration {i}: ResourceBusy took {dt:?}");
            assert!(
                !first.is_finished(),
                "iteration {i}: first reader disturbed"
            );
            c.write_all(b"for the first").unwrap();
            assert_eq!(join_within(first, SLACK, "first"), b"for the first");
        }
    });
}
}

common::seeded_tests! {
fn second_acceptor_and_receiver_are_resource_busy() {
    bounded(|| {
        let dir = TempDir::new("busy");
        let path = dir.join("sock");
        let l = Rc::new(UnixListener::bind(&path).unwrap());
        let l1 = l.clone();
        let first = spawn(move || l1.accept().map(|(s, _)| s));
        common::settle(); // the first acceptor parks
        let l2 = l.clone();
        let second = spawn(move || l2.accept().map(|_| ()).map_err(|e| e.kind()));
        assert_eq!(
            join_within(second, SLACK, "second acceptor"),
            Err(ErrorKind::ResourceBusy)
        );
        let c = UnixStream::connect(&path).unwrap();
        let s = join_within(first, SLACK, "first acceptor").unwrap();
        assert!(s.peer_addr().is_ok());
        drop(c);

        let (tx, rx) = UnixDatagram::pair().unwrap();
        let rx = Rc::new(rx);
        let r1 = rx.clone();
        let first = spawn(move || {
            let mut buf = [0u8; 8];
            let n = r1.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        common::settle(); // the first receiver parks
        let r2 = rx.clone();
        let second = spawn(move || r2.recv(&mut [0u8; 8]).map_err(|e| e.kind()));
        assert_eq!(
            join_within(second, SLACK, "second receiver"),
            Err(ErrorKind::ResourceBusy)
        );
        tx.send(b"dgram").unwrap();
        assert_eq!(join_within(first, SLACK, "first receiver"), b"dgram");
    });
}
}

// ---------------------------------------------------------------------------
// verdant: timeouts
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// gevent test_recv_timeout: EAGAIN (std's error), never early, the hub running other
/// greenlets meanwhile, and no timer left behind.
fn read_timeout_expires_while_others_run() {
    bounded(|| {
        let hub = Hub::current();
        let timers = hub.timer_count(); // the bound's own timer
        let (mut a, _b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(150 * MS)).unwrap();
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = spawn(move || {
            for _ in 0..10 {
                sleep(5 * MS);
                t2.set(t2.get() + 1);
            }
        });
        let t = Instant::now();
        let e = a.read(&mut [0u8; 8]).unwrap_err();
        let dt = t.elapsed();
        assert_socket_timeout(&e);
        assert!(dt >= 150 * MS, "timed out early: {dt:?}");
        assert!(dt < 150 * MS + SLACK, "timed out late: {dt:?}");
        assert_eq!(ticks.get(), 10, "other greenlets did not run meanwhile");
        join_within(ticker, SLACK, "ticker");
        assert_eq!(hub.timer_count(), timers, "timers left behind");
    });
}

/// Read and write timeouts expire with the error std's give on Linux, for
/// the stream and the datagram socket alike: std's own sockets (blocking,
/// with SO_RCVTIMEO/SO_SNDTIMEO) are the reference.
fn timeouts_expire_as_std_does() {
    fn same(verdant: &io::Error, std: &io::Error) {
        assert_eq!(verdant.kind(), std.kind(), "{verdant:?} vs std {std:?}");
        assert_eq!(verdant.raw_os_error(), std.raw_os_error(), "{verdant:?}");
    }
    let t = Some(20 * MS);
    // Streams: a read with nothing to read; a write to a full socket.
    let (std_a, _std_b) = std::os::unix::net::UnixStream::pair().unwrap();
    std_a.set_read_timeout(t).unwrap();
    std_a.set_write_timeout(t).unwrap();
    let std_read = common::std_reference("unix stream read", || {
        (&std_a).read(&mut [0u8; 8]).unwrap_err()
    });
    let std_write = common::std_reference("unix stream write", || {
        (0..10_000)
            .find_map(|_| (&std_a).write(&[0u8; 65536]).err())
            .expect("std's writes never filled the socket")
    });
    assert_socket_timeout(&std_read);
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(t).unwrap();
    a.set_write_timeout(t).unwrap();
    same(&(&a).read(&mut [0u8; 8]).unwrap_err(), &std_read);
    let e = (0..10_000)
        .find_map(|_| (&a).write(&[0u8; 65536]).err())
        .expect("the writes never filled the socket");
    same(&e, &std_write);
    // Datagrams: a receive with nothing queued; a send to a full queue.
    let (std_d, _std_e) = std::os::unix::net::UnixDatagram::pair().unwrap();
    std_d.set_read_timeout(t).unwrap();
    std_d.set_write_timeout(t).unwrap();
    let std_recv = common::std_reference("unix datagram recv", || std_d.recv(&mut [0u8; 8]).unwrap_err());
    let std_send = common::std_reference("unix datagram send", || {
        (0..100_000)
            .find_map(|_| std_d.send(&[0u8; 1024]).err())
            .expect("std's sends never filled the queue")
    });
    let (d, _e) = UnixDatagram::pair().unwrap();
    d.set_read_timeout(t).unwrap();
    d.set_write_timeout(t).unwrap();
    same(&d.recv(&mut [0u8; 8]).unwrap_err(), &std_recv);
    same(&d.recv_from(&mut [0u8; 8]).unwrap_err(), &std_recv);
    let e = (0..100_000)
        .find_map(|_| d.send(&[0u8; 1024]).err())
        .expect("the sends never filled the queue");
    same(&e, &std_send);
}

/// The write timeout is a deadline for the whole write_all (gevent's
/// sendall): the reader drains steadily, so each partial write waits only
/// a few ms and a per-write timeout would never fire.
fn write_all_timeout_is_a_whole_call_deadline() {
    bounded(|| {
        let (w, r) = UnixStream::pair().unwrap();
        small_sndbuf(w.as_raw_fd());
        w.set_write_timeout(Some(200 * MS)).unwrap();
        let drained = Rc::new(Cell::new(0usize));
        let d2 = drained.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match (&r).read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => d2.set(d2.get() + n),
                }
                sleep(2 * MS);
            }
        });
        let t = Instant::now();
        // More than 200 ms can move at 4 KiB per 2 ms; zeroed, so the pages
        // that never go out are never touched (a 64 MiB fill cost 40 ms
        // per seeded run).
        let e = (&w).write_all(&vec![0u8; 64 << 20]).unwrap_err();
        let dt = t.elapsed();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
        let partial = verdant::net::PartialWrite::of(&e).expect("part went out");
        assert_socket_timeout(&partial.error);
        assert!(dt >= 200 * MS, "early: {dt:?}");
        assert!(dt < 200 * MS + SLACK, "late: {dt:?}");
        assert!(drained.get() > 0, "the reader never ran");
        drop(w);
        join_within(reader, SLACK, "reader");
    });
}

fn datagram_read_timeout() {
    bounded(|| {
        let hub = Hub::current();
        let timers = hub.timer_count(); // the bound's own timer
        let (a, _b) = UnixDatagram::pair().unwrap();
        a.set_read_timeout(Some(100 * MS)).unwrap();
        assert_eq!(a.read_timeout().unwrap(), Some(100 * MS));
        let t = Instant::now();
        let e = a.recv(&mut [0u8; 8]).unwrap_err();
        let dt = t.elapsed();
        assert_socket_timeout(&e);
        assert!(dt >= 100 * MS && dt < 100 * MS + SLACK, "{dt:?}");
        let e = a.recv_from(&mut [0u8; 8]).unwrap_err();
        assert_socket_timeout(&e);
        assert_eq!(hub.timer_count(), timers, "timers left behind");
    });
}

/// A connected sender to a receiver whose queue is full: the send waits,
/// then expires with EAGAIN (std's error), never early.
fn datagram_write_timeout_on_full_queue() {
    bounded(|| {
        let dir = TempDir::new("dwt");
        let path = dir.join("rx");
        let _rx = UnixDatagram::bind(&path).unwrap();
        let _fillers = fill_datagram_queue(&path);
        let tx = UnixDatagram::unbound().unwrap();
        tx.connect(&path).unwrap();
        tx.set_write_timeout(Some(150 * MS)).unwrap();
        assert_eq!(tx.write_timeout().unwrap(), Some(150 * MS));
        let t = Instant::now();
        let e = tx.send(b"late").unwrap_err();
        let dt = t.elapsed();
        assert_socket_timeout(&e);
        assert!(dt >= 150 * MS, "early: {dt:?}");
        assert!(dt < 150 * MS + SLACK, "late: {dt:?}");
        // send_to (which pauses and retries) keeps the deadline too, from
        // a connected socket and from an unconnected one, and expires with
        // the same error.
        let un = UnixDatagram::unbound().unwrap();
        un.set_write_timeout(Some(150 * MS)).unwrap();
        for s in [&tx, &un] {
            let t = Instant::now();
            let e = s.send_to(b"late", &path).unwrap_err();
            let dt = t.elapsed();
            assert_socket_timeout(&e);
            assert!(dt >= 150 * MS, "early: {dt:?}");
            assert!(dt < 150 * MS + SLACK, "late: {dt:?}");
        }
    });
}

/// A send_to parked on a full queue (pausing between tries) is woken by
/// close() within gevent's 100 ms, with NotConnected.
fn close_wakes_sender_on_full_datagram_queue() {
    bounded(|| {
        let dir = TempDir::new("dclose");
        let path = dir.join("rx");
        let _rx = UnixDatagram::bind(&path).unwrap();
        let _fillers = fill_datagram_queue(&path);
        let mut lat = Vec::new();
        for i in 0..20 {
            let tx = Rc::new(UnixDatagram::unbound().unwrap());
            let (tx2, p2) = (tx.clone(), path.clone());
            let a = spawn(move || (tx2.send_to(b"v", &p2).map_err(|e| e.kind()), Instant::now()));
            sleep(Duration::from_millis(i % 7 * 10)); // at various points of its backoff
            assert!(!a.is_finished(), "iteration {i}: the sender did not wait");
            let closed_at = Instant::now();
            tx.close();
            let (r, woke_at) = join_within(a, SLACK, "sender");
            assert_eq!(r, Err(ErrorKind::NotConnected), "iteration {i}");
            lat.push(woke_at.saturating_duration_since(closed_at));
        }
        assert_all_prompt("close wakes datagram sender", &lat);
    });
}

/// A send that found the receiver's queue full parks quietly, and goes
/// through once the receiver drains it: `send` on a connected socket (the
/// kernel wakes it) and `send_to` on an unconnected one (the kernel reports
/// it writable at once after every failed try, so a readiness wait would
/// spin: the hub's switch count while it waits tells the two apart).
fn datagram_send_to_full_queue_waits_then_succeeds() {
    for connected in [true, false] {
        bounded(move || {
            let hub = Hub::current();
            let dir = TempDir::new("dfull");
            let path = dir.join("rx");
            let rx = UnixDatagram::bind(&path).unwrap();
            let fillers = fill_datagram_queue(&path);
            let tx = UnixDatagram::unbound().unwrap();
            if connected {
                tx.connect(&path).unwrap();
            }
            let p2 = path.clone();
            let sender = spawn(move || {
                if connected {
                    tx.send(b"v")
                } else {
                    tx.send_to(b"v", &p2)
                }
            });
            yield_now(); // the sender tries, and parks
            let switches = hub.switch_count();
            sleep(50 * MS);
            let switches = hub.switch_count() - switches;
            assert!(
                !sender.is_finished(),
                "connected={connected}: the send did not wait for room"
            );
            assert!(
                switches < 50,
                "connected={connected}: the waiting sender spun ({switches} switches in 50 ms)"
            );
            let t = Instant::now();
            let mut skipped = 0;
            loop {
                let mut buf = [0u8; 4];
                let n = rx.recv(&mut buf).unwrap();
                if &buf[..n] == b"v" {
                    break;
                }
                assert_eq!(&buf[..n], b"f");
                skipped += 1;
            }
            assert_eq!(join_within(sender, SLACK, "sender").unwrap(), 1);
            eprintln!(
                "connected={connected}: {switches} switches while parked, through after {:?} \
                 ({skipped} queued before it)",
                t.elapsed()
            );
            assert!(skipped >= 1);
            drop(fillers);
        });
    }
}
}
// ---------------------------------------------------------------------------
// verdant: peers that go away (BrokenPipe, no SIGPIPE death)
// ---------------------------------------------------------------------------

fn closed_peer_scenarios() {
    // The peer dropped cleanly (nothing unread): EPIPE at once.
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let e = write_until_error(&a);
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
    // The peer closed with verdant's close() (both halves shut down).
    let (a, b) = UnixStream::pair().unwrap();
    b.close();
    let e = write_until_error(&a);
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
    // A vectored write, too.
    let (mut a, b) = UnixStream::pair().unwrap();
    drop(b);
    let e = a
        .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
    // A write_all parked on a full buffer when the peer goes (it had unread
    // data, so Linux may report a reset).
    let (a, b) = UnixStream::pair().unwrap();
    small_sndbuf(a.as_raw_fd());
    let w = spawn(move || (&a).write_all(&vec![1u8; 8 << 20]).map_err(|e| e.kind()));
    yield_now();
    assert!(!w.is_finished(), "the writer did not park");
    drop(b);
    let r = join_within(w, HANG, "writer");
    assert!(
        matches!(
            r,
            Err(ErrorKind::BrokenPipe) | Err(ErrorKind::ConnectionReset)
        ),
        "{r:?}"
    );
    // Datagrams: a write-shut socket is EPIPE, a gone peer is refused.
    let (a, b) = UnixDatagram::pair().unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    assert_eq!(a.send(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    drop(b);
    let (a, b) = UnixDatagram::pair().unwrap();
    drop(b);
    assert_eq!(
        a.send(b"x").unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
}

common::seeded_tests! {
fn write_to_closed_peer_is_broken_pipe() {
    bounded(closed_peer_scenarios);
}

// The same writes in a child whose SIGPIPE disposition is SIG_DFL (the
// embedding case; Rust's main sets SIG_IGN): it must exit 0. A second child
// does a raw writev(2) to a closed peer under the same setting and must die
// of SIGPIPE: that proves the setting took effect, and is why verdant's
// write_vectored is a sendmsg with MSG_NOSIGNAL, not a writev.
fn sigpipe_default_disposition_survives() {
    const TEST: &str = "sigpipe_default_disposition_survives";
    if let Some(case) = child_case() {
        // SAFETY: restoring the default disposition of SIGPIPE in this
        // child process, which runs only this test.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        match case.as_str() {
            "verdant" => {
                bounded(closed_peer_scenarios);
                println!("sigpipe-child-ok");
                return;
            }
            "raw" => {
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                drop(b);
                let iov = [libc::iovec {
                    iov_base: b"x".as_ptr() as *mut libc::c_void,
                    iov_len: 1,
                }];
                // SAFETY: a writev of one live one-byte buffer to a socket
                // this child owns.
                unsafe { libc::writev(a.as_raw_fd(), iov.as_ptr(), 1) };
                println!("UNEXPECTED: a raw writev survived SIG_DFL");
                std::process::exit(3);
            }
            other => panic!("unknown child case {other}"),
        }
    }
    let out = run_child(TEST, "verdant", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sigpipe-child-ok"),
        "verdant child: {:?} (signal {:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = run_child(TEST, "raw", &[]);
    assert_eq!(
        raw.status.signal(),
        Some(libc::SIGPIPE),
        "baseline: a raw writev under SIG_DFL should die of SIGPIPE: {:?}",
        raw.status
    );
}
}
// ---------------------------------------------------------------------------
// verdant: large transfers
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// Three sessions, each one 8 MiB write_all through a 32 KiB send buffer
/// (so it is many partial writes with parks in between), read back in
/// random-sized chunks: byte count and an order-sensitive checksum match.
fn large_write_all_partial_writes_no_loss() {
    bounded(|| {
        const SESSIONS: usize = 3;
        let len = common::scaled(8 << 20);
        let t = Instant::now();
        let mut handles = Vec::new();
        for k in 0..SESSIONS {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1);
            let data = random_bytes(len, seed);
            let want = fnv1a(FNV_OFFSET, &data);
            let (mut c, mut s) = UnixStream::pair().unwrap();
            small_sndbuf(c.as_raw_fd());
            let writer = spawn(move || c.write_all(&data).unwrap()); // one call
            yield_now();
            assert!(
                !writer.is_finished(),
                "session {k}: 8 MiB went through a 32 KiB buffer without a partial write"
            );
            let reader = spawn(move || {
                let mut rng = Rng(seed.rotate_left(13) | 1);
                let mut buf = vec![0u8; 256 * 1024];
                let (mut h, mut total) = (FNV_OFFSET, 0usize);
                loop {
                    let want_n = rng.range(1, buf.len());
                    let n = s.read(&mut buf[..want_n]).unwrap();
                    if n == 0 {
                        break;
                    }
                    h = fnv1a(h, &buf[..n]);
                    total += n;
                }
                (total, h)
            });
            handles.push((writer, reader, want));
        }
        for (k, (writer, reader, want)) in handles.into_iter().enumerate() {
            let (total, h) = join_within(reader, Duration::from_secs(60), "reader");
            writer.join().unwrap();
            assert_eq!(total, len, "session {k}: byte count");
            assert_eq!(h, want, "session {k}: checksum (bytes lost or reordered)");
        }
        eprintln!(
            "large unix transfer: {SESSIONS} x {len} bytes in {:?}",
            t.elapsed()
        );
    });
}
}
// ---------------------------------------------------------------------------
// verdant: waits the kernel sends no event for
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// `listen(0)` admits one pending connection; the next connect finds the
/// backlog full (EAGAIN on a non-blocking socket, no readiness event ever).
/// verdant's connect must wait cooperatively and get through once the
/// listener accepts. Run on its own thread: a connect that blocked the
/// thread would otherwise hang the test instead of failing it.
fn connect_to_full_backlog_waits_cooperatively() {
    on_thread_within(HANG, "full-backlog scenario", || {
        let dir = TempDir::new("backlog");
        let path = dir.join("sock");
        let l = UnixListener::bind(&path).unwrap();
        // SAFETY: listen(2) again on our own listening socket only changes
        // its backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let mut queued = Vec::new();
        let mut waiting = None;
        for _ in 0..5 {
            let p = path.clone();
            let g = spawn(move || UnixStream::connect(&p));
            sleep(20 * MS);
            if g.is_finished() {
                queued.push(g.join().unwrap().expect("a queued connect"));
            } else {
                waiting = Some(g);
                break;
            }
        }
        let waiting = waiting.expect("5 connects to a listen(0) backlog all went through");
        assert!(!queued.is_empty(), "not even one connection was queued");
        // The thread is free meanwhile: other greenlets run.
        let ticker = spawn(|| {
            for _ in 0..5 {
                sleep(2 * MS);
            }
        });
        join_within(ticker, SLACK, "ticker");
        assert!(!waiting.is_finished(), "the connect did not wait for room");
        let t = Instant::now();
        let (_first, _) = l.accept().unwrap();
        let s = join_within(waiting, SLACK, "waiting connect").expect("connect after accept");
        eprintln!(
            "backlog: {} queued; the waiting connect got through {:?} after accept",
            queued.len(),
            t.elapsed()
        );
        assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(&*path));
    });
}

/// Under `EMFILE` accept backs off and retries instead of failing or
/// waiting for an event that will not come. In a child process, since it
/// lowers `RLIMIT_NOFILE` and uses up every descriptor.
fn accept_backs_off_on_emfile() {
    const TEST: &str = "accept_backs_off_on_emfile";
    if child_case().as_deref() == Some("emfile") {
        bounded(|| {
            let dir = TempDir::new("emfile");
            let path = dir.join("sock");
            let l = UnixListener::bind(&path).unwrap();
            let _c = UnixStream::connect(&path).unwrap(); // queued
            common::set_nofile(Some(256));
            let mut hog = common::hog_descriptors();
            let acceptor = spawn(move || l.accept().map(|(s, _)| s));
            sleep(100 * MS);
            assert!(
                !acceptor.is_finished(),
                "accept returned while no descriptor was free"
            );
            let freed_at = Instant::now();
            hog.truncate(hog.len().saturating_sub(8));
            let s = join_within(acceptor, Duration::from_secs(3), "acceptor")
                .expect("accept once descriptors are free");
            eprintln!("emfile: accepted {:?} after freeing", freed_at.elapsed());
            drop(s);
            println!("emfile-child-ok");
        });
        return;
    }
    common::run_child_expecting(TEST, "emfile", &[], "emfile-child-ok");
}
}
// ---------------------------------------------------------------------------
// verdant: outside any greenlet
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// On a plain thread that never spawned a greenlet, blocking-style calls
/// still block and return, as std's do: read, accept and recv wait (in the
/// hub) for another OS thread.
fn blocking_calls_outside_any_greenlet() {
    on_thread_within(HANG, "plain thread", || {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = UnixStream::from_std(a).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            (&b).write_all(b"from another thread").unwrap();
        });
        let t = Instant::now();
        let mut buf = [0u8; 19];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"from another thread");
        assert!(t.elapsed() >= 40 * MS, "read returned before the write");
        writer.join().unwrap();

        let dir = TempDir::new("plain");
        let path = dir.join("sock");
        let l = UnixListener::bind(&path).unwrap();
        let p2 = path.clone();
        let client = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            let mut c = std::os::unix::net::UnixStream::connect(p2).unwrap();
            c.write_all(b"hi").unwrap();
        });
        let (mut s, _) = l.accept().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi");
        client.join().unwrap();

        let rx = UnixDatagram::bind(dir.join("dg")).unwrap();
        let p3 = dir.join("dg");
        let sender = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
            tx.send_to(b"dgram", p3).unwrap();
        });
        let mut buf = [0u8; 8];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"dgram");
        sender.join().unwrap();
        // And a timeout outside any greenlet.
        rx.set_read_timeout(Some(30 * MS)).unwrap();
        assert_socket_timeout(&rx.recv(&mut buf).unwrap_err());
    });
}
}
// ---------------------------------------------------------------------------
// verdant: descriptors back to the baseline
// ---------------------------------------------------------------------------

common::seeded_tests! {
/// Every kind of socket, cloned, closed, timed out, converted, with
/// greenlets parked on them: after dropping them all, the process has
/// exactly the descriptors it had before and the hub no registration left.
/// In a child process, where no other test opens descriptors meanwhile.
fn fd_count_back_to_baseline() {
    const TEST: &str = "fd_count_back_to_baseline";
    if child_case().as_deref() == Some("fds") {
        bounded(|| {
            let hub = Hub::current();
            // Warm up: the hub's own descriptors exist from here on.
            drop(UnixStream::pair().unwrap());
            sleep(MS);
            let (fds, regs) = (fd_count(), hub.io_registrations());
            let dir = TempDir::new("fds");
            for round in 0..3 {
                let path = dir.join(&format!("sock{round}"));
                let l = Rc::new(UnixListener::bind(&path).unwrap());
                let l2 = l.clone();
                let server = spawn(move || {
                    let mut n = 0;
                    for s in l2.incoming() {
                        let Ok(mut s) = s else { break };
                        let mut buf = [0u8; 8];
                        let k = s.read(&mut buf).unwrap();
                        s.write_all(&buf[..k]).unwrap();
                        n += 1;
                    }
                    n
                });
                let clients: Vec<_> = (0..50)
                    .map(|_| {
                        let p = path.clone();
                        spawn(move || {
                            let mut c = UnixStream::connect(&p).unwrap();
                            let c2 = c.try_clone().unwrap();
                            c.write_all(b"ping").unwrap();
                            let mut buf = [0u8; 4];
                            (&c2).read_exact(&mut buf).unwrap();
                            c2.set_read_timeout(Some(MS)).unwrap();
                            let _ = (&c2).read(&mut [0u8; 1]); // EOF or timeout
                        })
                    })
                    .collect();
                for c in clients {
                    join_within(c, HANG, "client");
                }
                sleep(5 * MS);
                l.close(); // wakes the server's accept
                assert_eq!(join_within(server, SLACK, "server"), 50);
                drop(l);
                // Pairs with parked readers, closed under them.
                let mut pairs = Vec::new();
                for _ in 0..50 {
                    let (a, b) = UnixStream::pair().unwrap();
                    let a = Rc::new(a);
                    let a2 = a.clone();
                    let r = spawn(move || (&*a2).read(&mut [0u8; 4]).map(|_| ()));
                    pairs.push((a, b, r));
                }
                yield_now();
                for (a, b, r) in pairs {
                    a.close();
                    assert!(join_within(r, SLACK, "reader").is_err());
                    drop(b);
                }
                // Datagrams of every kind.
                let d = UnixDatagram::bind(dir.join(&format!("dg{round}"))).unwrap();
                let u = UnixDatagram::unbound().unwrap();
                let (p, q) = UnixDatagram::pair().unwrap();
                u.send_to(b"x", dir.join(&format!("dg{round}"))).unwrap();
                d.recv(&mut [0u8; 2]).unwrap();
                p.send(b"y").unwrap();
                q.try_clone().unwrap().recv(&mut [0u8; 2]).unwrap();
                // Conversions.
                let (x, y) = UnixStream::pair().unwrap();
                let x = UnixStream::from(OwnedFd::from(x));
                let raw = y.into_raw_fd();
                // SAFETY: `raw` was just released by `into_raw_fd`.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                drop((d, u, p, q, x));
            }
            let (after, after_regs) = (fd_count(), hub.io_registrations());
            eprintln!("fds: {fds} before, {after} after");
            assert_eq!(after, fds, "descriptors leaked");
            assert_eq!(after_regs, regs, "registrations leaked");
            println!("fds-child-ok");
        });
        return;
    }
    common::run_child_expecting(TEST, "fds", &[], "fds-child-ok");
}
}
