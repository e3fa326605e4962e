//! Cooperative Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], shaped like `std::os::unix::net`.
//!
//! They work exactly as the TCP and UDP types do (see [`tcp`](crate::tcp)):
//! each is a std socket in non-blocking mode plus a reactor
//! [`Registration`]; an operation that would block parks only the calling
//! greenlet until the socket is ready, and code outside any spawned greenlet
//! (in `main`, or on a plain thread) waits in the hub, running the other
//! greenlets meanwhile.
//!
//! Differences from `std::os::unix::net`:
//! * Additions, as for TCP: `close` (also on a shared reference) wakes a
//!   greenlet waiting on the socket with `ErrorKind::NotConnected` at once;
//!   a second greenlet waiting to read (or to write, or to accept) on one
//!   socket while another already waits gets `ErrorKind::ResourceBusy`;
//!   `write_all`/`read_exact` apply the timeout to the whole call, as a
//!   deadline; an expired timeout is always `ErrorKind::TimedOut`.
//! * [`UnixStream::connect`] to a listener whose backlog is full does not
//!   fail with `WouldBlock` (as a raw non-blocking connect would) nor block
//!   the thread (as std's does): the kernel sends no readiness event for
//!   that case, so the greenlet retries after a short sleep (1 ms, doubling
//!   up to 100 ms) until the listener accepts.
//! * A datagram send that finds the receiver's queue full
//!   (`net.unix.max_dgram_qlen`) parks. [`UnixDatagram::send`] waits for
//!   readiness (Linux wakes a sender connected to the receiver when its
//!   queue has room). [`UnixDatagram::send_to`] and
//!   [`send_to_addr`](UnixDatagram::send_to_addr) cannot: Linux reports
//!   such a sender writable again at once, so a readiness wait would spin;
//!   they pause and retry instead (1 ms, doubling up to 20 ms), so `close`
//!   reaches them at their next retry rather than at once.
//! * [`UnixListener::accept`] backs off when the process runs out of
//!   descriptors, as [`TcpListener::accept`](crate::TcpListener::accept)
//!   does.
//! * Not provided (unstable in std): `peek`, `peek_from`, credentials and
//!   ancillary data (`peer_cred`, `set_passcred`, `*_with_ancillary`). No
//!   `set_nonblocking`: the descriptors are always non-blocking underneath,
//!   including the one [`IntoRawFd::into_raw_fd`](std::os::fd::IntoRawFd)
//!   hands back.
//! * `read_vectored` really scatters (`readv`); `write_vectored` sends only
//!   the first non-empty buffer (`Write`'s default, as for TCP), because
//!   `writev` cannot be told `MSG_NOSIGNAL`: a process whose `SIGPIPE` is
//!   not ignored would die writing to a closed peer. Plain writes go
//!   through std's `send(…, MSG_NOSIGNAL)` and report `BrokenPipe`.
//!
//! Dropping a listener or a bound datagram socket does not remove its path
//! from the file system (as in std): remove it yourself.
//!
//! ```
//! use std::io::{Read, Write};
//! use verdant_net::unix::{UnixListener, UnixStream};
//!
//! let dir = std::env::temp_dir().join(format!("verdant-doc-unix-mod-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("echo.sock");
//! let listener = UnixListener::bind(&path).unwrap();
//! // One greenlet per connection, plain blocking-style code in each.
//! let server = verdant_runtime::spawn(move || {
//!     for conn in listener.incoming().take(3) {
//!         let mut conn = conn.unwrap();
//!         verdant_runtime::spawn(move || {
//!             let mut buf = [0u8; 64];
//!             let n = conn.read(&mut buf).unwrap();
//!             conn.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
//!         });
//!     }
//! });
//! let clients: Vec<_> = ["a", "b", "c"]
//!     .into_iter()
//!     .map(|word| {
//!         let path = path.clone();
//!         verdant_runtime::spawn(move || {
//!             let mut s = UnixStream::connect(&path).unwrap();
//!             s.write_all(word.as_bytes()).unwrap();
//!             let mut reply = String::new();
//!             s.read_to_string(&mut reply).unwrap();
//!             reply
//!         })
//!     })
//!     .collect();
//! let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
//! assert_eq!(replies, ["A", "B", "C"]);
//! server.join().unwrap();
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use verdant_runtime::io::{Direction, Registration};

use crate::buf::RecvBuf;
use crate::tcp::{
    check_timeout, deadline, is_resource_exhaustion, read_exact_with, write_all_with,
    ACCEPT_RETRY_MAX,
};

/// The first pause of a connect or datagram send that the kernel gives no
/// usable readiness event for (see the module docs); it doubles up to
/// [`RETRY_MAX`] for a connect, [`SEND_TO_RETRY_MAX`] for a send.
const RETRY_MIN: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(100);
/// Small, so that a `close` from another greenlet is noticed promptly.
const SEND_TO_RETRY_MAX: Duration = Duration::from_millis(20);

/// A Unix-domain socket server, listening for connections.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use verdant_net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// let listener = UnixListener::bind(&path).unwrap();
/// let server = verdant_runtime::spawn(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0u8; 5];
///     conn.read_exact(&mut buf).unwrap();
///     conn.write_all(&buf.to_ascii_uppercase()).unwrap();
/// });
/// let mut c = UnixStream::connect(&path).unwrap();
/// c.write_all(b"hello").unwrap();
/// let mut reply = String::new();
/// c.read_to_string(&mut reply).unwrap();
/// assert_eq!(reply, "HELLO");
/// server.join().unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::os::unix::net::UnixListener,
}

/// A Unix-domain stream socket: a connection.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use verdant_net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// // The reader parks; the writer runs while it waits.
/// let reader = verdant_runtime::spawn(move || {
///     let mut got = String::new();
///     b.read_to_string(&mut got).unwrap();
///     got
/// });
/// a.write_all(b"over the socket").unwrap();
/// drop(a); // EOF for the reader
/// assert_eq!(reader.join().unwrap(), "over the socket");
/// ```
pub struct UnixStream {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::os::unix::net::UnixStream,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

/// A Unix-domain datagram socket.
///
/// # Examples
///
/// ```
/// use verdant_net::UnixDatagram;
///
/// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-datagram-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("rx.sock");
/// let rx = UnixDatagram::bind(&path).unwrap();
/// // The receiver parks first; the sender runs while it waits.
/// let receiver = verdant_runtime::spawn(move || {
///     let mut buf = [0u8; 16];
///     let (n, from) = rx.recv_from(&mut buf).unwrap();
///     (buf[..n].to_vec(), from.is_unnamed())
/// });
/// let tx = UnixDatagram::unbound().unwrap();
/// tx.send_to(b"ping", &path).unwrap();
/// assert_eq!(receiver.join().unwrap(), (b"ping".to_vec(), true));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixDatagram {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::os::unix::net::UnixDatagram,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

// ---------------------------------------------------------------------------
// UnixListener
// ---------------------------------------------------------------------------

impl UnixListener {
    /// Creates a listener bound to the file system path `path` (which must
    /// not exist yet).
    ///
    /// # Errors
    ///
    /// What `bind`/`listen` report, such as `AddrInUse` when the path
    /// exists, or `InvalidInput` for a path too long for `sockaddr_un`.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("sock");
    /// let l = verdant_net::UnixListener::bind(&path).unwrap();
    /// assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Creates a listener bound to `addr`, such as an abstract-namespace
    /// address on Linux.
    ///
    /// # Errors
    ///
    /// As for [`bind`](UnixListener::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    ///
    /// let name = format!("verdant-doc-bind-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let l = verdant_net::UnixListener::bind_addr(&addr).unwrap();
    /// let c = verdant_net::UnixStream::connect_addr(&addr).unwrap();
    /// let (_conn, _) = l.accept().unwrap();
    /// assert_eq!(c.peer_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind_addr(addr)?)
    }

    /// Wraps a std listener (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// When the socket cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-lfromstd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let std = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    /// let l = verdant_net::UnixListener::from_std(std).unwrap();
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn from_std(inner: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(UnixListener { reg, inner })
    }

    /// Waits for a connection and returns it with the peer's address
    /// (usually unnamed: clients rarely bind).
    ///
    /// When the process runs out of file descriptors (or kernel memory) it
    /// backs off (10 ms, doubling up to 50 ms) and tries again, rather than
    /// waiting for a readiness event that edge-triggered epoll will not send
    /// again; `ECONNABORTED` is skipped.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the listener is closed meanwhile, `ResourceBusy`
    /// if another greenlet already waits in `accept` on it, other accept
    /// errors as the OS reports them.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.reg.io(Direction::Read, None, || self.inner.accept()) {
                Ok((s, addr)) => return Ok((UnixStream::from_std(s)?, addr)),
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) if is_resource_exhaustion(&e) => {
                    verdant_runtime::sleep(backoff);
                    backoff = (backoff * 2).min(ACCEPT_RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An iterator over incoming connections (never ends by itself).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-incoming-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("sock");
    /// let l = verdant_net::UnixListener::bind(&path).unwrap();
    /// let p2 = path.clone();
    /// let c = verdant_runtime::spawn(move || verdant_net::UnixStream::connect(&p2).map(|_| ()));
    /// let first = l.incoming().next().unwrap().unwrap();
    /// c.join().unwrap().unwrap();
    /// assert_eq!(first.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports.
    ///
    /// # Examples
    ///
    /// See [`UnixListener::bind`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-ltakeerr-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let l = verdant_net::UnixListener::bind(dir.join("sock")).unwrap();
    /// assert!(l.take_error().unwrap().is_none());
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// A second handle to the same socket (a duplicated descriptor with its
    /// own registration).
    ///
    /// # Errors
    ///
    /// As `dup` or the registration report.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-lclone-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let l = verdant_net::UnixListener::bind(dir.join("sock")).unwrap();
    /// let l2 = l.try_clone().unwrap();
    /// assert_eq!(
    ///     l.local_addr().unwrap().as_pathname(),
    ///     l2.local_addr().unwrap().as_pathname()
    /// );
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        UnixListener::from_std(self.inner.try_clone()?)
    }

    /// Wakes a greenlet blocked in [`accept`](UnixListener::accept) on this
    /// listener with `ErrorKind::NotConnected`; later accepts fail the same
    /// way. The descriptor itself closes when the listener is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-lclose-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let l = Rc::new(verdant_net::UnixListener::bind(dir.join("sock")).unwrap());
    /// let l2 = l.clone();
    /// let waiter = verdant_runtime::spawn(move || l2.accept().map(|_| ()));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// l.close();
    /// let err = waiter.join().unwrap().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn close(&self) {
        self.reg.close();
    }
}

/// The iterator returned by [`UnixListener::incoming`] (and by iterating
/// over `&UnixListener`).
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl<'a> IntoIterator for &'a UnixListener {
    type Item = io::Result<UnixStream>;
    type IntoIter = Incoming<'a>;

    /// Same as [`UnixListener::incoming`], as in std.
    fn into_iter(self) -> Incoming<'a> {
        self.incoming()
    }
}

// ---------------------------------------------------------------------------
// UnixStream
// ---------------------------------------------------------------------------

impl UnixStream {
    /// Connects to the socket bound at `path`.
    ///
    /// A Unix-domain connect completes at once; when the listener's backlog
    /// is full the greenlet retries after short sleeps (see the module
    /// docs) instead of blocking the thread.
    ///
    /// # Errors
    ///
    /// `NotFound` when nothing is bound at `path`, `ConnectionRefused` when
    /// the socket there does not listen, `InvalidInput` for a path that does
    /// not fit `sockaddr_un` or contains a NUL byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-connect-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("sock");
    /// let l = verdant_net::UnixListener::bind(&path).unwrap();
    /// let s = verdant_net::UnixStream::connect(&path).unwrap();
    /// assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// assert!(s.local_addr().unwrap().is_unnamed());
    /// let missing = verdant_net::UnixStream::connect(dir.join("nobody")).unwrap_err();
    /// assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Connects to the socket at `addr`, such as an abstract-namespace
    /// address on Linux.
    ///
    /// # Errors
    ///
    /// As for [`connect`](UnixStream::connect).
    ///
    /// # Examples
    ///
    /// See [`UnixListener::bind_addr`].
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let mut backoff = RETRY_MIN;
        loop {
            // mio connects a socket created non-blocking: EAGAIN (the
            // backlog is full) comes back as WouldBlock instead of blocking.
            match mio::net::UnixStream::connect_addr(addr) {
                Ok(s) => return UnixStream::from_std(s.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    verdant_runtime::sleep(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a connected pair of unnamed sockets (`socketpair`).
    ///
    /// # Errors
    ///
    /// As `socketpair` or the registration report.
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a std stream (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// When the socket cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let s = verdant_net::UnixStream::from_std(a).unwrap();
    /// ```
    pub fn from_std(inner: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(UnixStream {
            reg,
            inner,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// The local address (unnamed unless the socket was bound).
    ///
    /// # Errors
    ///
    /// As `getsockname` reports.
    ///
    /// # Examples
    ///
    /// See [`UnixStream::connect`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// As `getpeername` reports (`NotConnected` once shut down).
    ///
    /// # Examples
    ///
    /// See [`UnixStream::connect`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Shuts down the read half, the write half or both. Shutting down
    /// reading wakes a greenlet blocked in `read` with `Ok(0)`; shutting
    /// down writing makes the peer read EOF.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let (mut a, mut b) = verdant_net::UnixStream::pair().unwrap();
    /// a.write_all(b"last words").unwrap();
    /// a.shutdown(std::net::Shutdown::Write).unwrap();
    /// let mut got = String::new();
    /// b.read_to_string(&mut got).unwrap(); // ends at the shutdown
    /// assert_eq!(got, "last words");
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Wakes any greenlet blocked on this stream with
    /// `ErrorKind::NotConnected` and makes every later operation fail the
    /// same way; the peer sees the connection end (both halves are shut
    /// down). The descriptor closes when the stream is dropped, so its
    /// number cannot be reused under an operation still in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::rc::Rc;
    /// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// let a2 = a.clone();
    /// let reader = verdant_runtime::spawn(move || (&*a2).read(&mut [0u8; 8]));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// a.close();
    /// let err = reader.join().unwrap().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn close(&self) {
        let _ = self.inner.shutdown(Shutdown::Both);
        self.reg.close();
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// assert!(a.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Sets how long a read may wait (`None`: forever). An expired read
    /// fails with `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// let (mut a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    /// let err = a.read(&mut [0u8; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long a write may wait for buffer space (`None`: forever).
    /// An expired write fails with `ErrorKind::TimedOut`.
    /// For `write_all` the timeout is a deadline for the whole call; one that
    /// expires part-way says how much it wrote (see
    /// [`PartialWrite`](crate::PartialWrite)).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// assert!(a.set_write_timeout(Some(std::time::Duration::ZERO)).is_err());
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// Never (the `Result` mirrors std).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// assert_eq!(a.read_timeout().unwrap(), None);
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The write timeout.
    ///
    /// # Errors
    ///
    /// Never (the `Result` mirrors std).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
    /// a.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Receives what has arrived, up to `max` bytes, parking until
    /// something has; empty means end of stream. The buffer comes from this
    /// thread's pool only once the socket is readable, as for
    /// [`TcpStream::recv_buf`](crate::TcpStream::recv_buf) (see [`crate::buf`]).
    ///
    /// # Errors
    ///
    /// As [`read`](Read::read).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// let (mut a, b) = verdant_net::UnixStream::pair().unwrap();
    /// a.write_all(b"hi").unwrap();
    /// assert_eq!(&b.recv_buf(16).unwrap()[..], b"hi");
    /// drop(a);
    /// assert!(b.recv_buf(16).unwrap().is_empty());
    /// ```
    pub fn recv_buf(&self, max: usize) -> io::Result<RecvBuf> {
        let Some(len) = RecvBuf::size_for(max) else {
            return Ok(RecvBuf::new());
        };
        let mut got = RecvBuf::new();
        let deadline = deadline(self.read_timeout.get());
        self.reg.io(Direction::Read, deadline, || {
            got = RecvBuf::fill(len, |b| (&self.inner).read(b))?;
            Ok(())
        })?;
        Ok(got)
    }

    /// A second handle to the same connection (a duplicated descriptor with
    /// its own registration and timeouts).
    ///
    /// # Errors
    ///
    /// As `dup` or the registration report.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let (a, mut b) = verdant_net::UnixStream::pair().unwrap();
    /// let mut a2 = a.try_clone().unwrap();
    /// a2.write_all(b"via the clone").unwrap();
    /// let mut buf = [0u8; 13];
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"via the clone");
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        UnixStream::from_std(self.inner.try_clone()?)
    }

    fn read_with(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.reg
            .io(Direction::Read, deadline, || (&self.inner).read(buf))
    }

    fn write_with(&self, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        // std writes with send(MSG_NOSIGNAL): a closed peer is EPIPE, not
        // SIGPIPE (its writev has no such flag; see the module docs).
        self.reg
            .io(Direction::Write, deadline, || (&self.inner).write(buf))
    }

    fn read_vectored_impl(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let deadline = deadline(self.read_timeout.get());
        self.reg.io(Direction::Read, deadline, || {
            (&self.inner).read_vectored(bufs)
        })
    }

    fn write_all_impl(&self, buf: &[u8]) -> io::Result<()> {
        let deadline = deadline(self.write_timeout.get());
        write_all_with(buf, |b| self.write_with(b, deadline))
    }

    fn read_exact_impl(&self, buf: &mut [u8]) -> io::Result<()> {
        let deadline = deadline(self.read_timeout.get());
        read_exact_with(buf, |b| self.read_with(b, deadline))
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_impl(buf)
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf, deadline(self.read_timeout.get()))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_impl(buf)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all_impl(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(buf, deadline(self.write_timeout.get()))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all_impl(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// UnixDatagram
// ---------------------------------------------------------------------------

impl UnixDatagram {
    /// Creates a datagram socket bound to the file system path `path`
    /// (which must not exist yet).
    ///
    /// # Errors
    ///
    /// What `bind` reports, such as `AddrInUse` when the path exists.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// Creates a datagram socket bound to `addr`, such as an
    /// abstract-namespace address on Linux.
    ///
    /// # Errors
    ///
    /// As for [`bind`](UnixDatagram::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    ///
    /// let name = format!("verdant-doc-dgram-bind-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let rx = verdant_net::UnixDatagram::bind_addr(&addr).unwrap();
    /// let tx = verdant_net::UnixDatagram::unbound().unwrap();
    /// tx.send_to_addr(b"abstract", &addr).unwrap();
    /// let mut buf = [0u8; 16];
    /// assert_eq!(rx.recv(&mut buf).unwrap(), 8);
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind_addr(addr)?)
    }

    /// Creates a datagram socket bound to no address: it can send, and
    /// receive replies once connected or after sending from a bound socket.
    ///
    /// # Errors
    ///
    /// As `socket` or the registration report.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// Creates a pair of unnamed datagram sockets connected to each other.
    ///
    /// # Errors
    ///
    /// As `socketpair` or the registration report.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
    /// let rx = verdant_runtime::spawn(move || {
    ///     let mut buf = [0u8; 8];
    ///     let n = b.recv(&mut buf).unwrap();
    ///     buf[..n].to_vec()
    /// });
    /// a.send(b"one").unwrap();
    /// assert_eq!(rx.join().unwrap(), b"one");
    /// ```
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// When the socket cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// let std = std::os::unix::net::UnixDatagram::unbound().unwrap();
    /// let s = verdant_net::UnixDatagram::from_std(std).unwrap();
    /// ```
    pub fn from_std(inner: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(UnixDatagram {
            reg,
            inner,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// Sets the default peer to the socket bound at `path`: `send` and
    /// `recv` then talk to it only.
    ///
    /// # Errors
    ///
    /// As `connect` reports (`NotFound`, `ConnectionRefused`, …).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("verdant-doc-unix-dconnect-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("rx.sock");
    /// let rx = verdant_net::UnixDatagram::bind(&path).unwrap();
    /// let tx = verdant_net::UnixDatagram::unbound().unwrap();
    /// tx.connect(&path).unwrap();
    /// assert_eq!(tx.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// tx.send(b"hi").unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sets the default peer to `addr` (see
    /// [`connect`](UnixDatagram::connect)).
    ///
    /// # Errors
    ///
    /// As `connect` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let rx = verdant_net::UnixDatagram::unbound().unwrap();
    /// let (a, _b) = verdant_net::UnixDatagram::pair().unwrap();
    /// // An unnamed address cannot be connected to.
    /// assert!(rx.connect_addr(&a.local_addr().unwrap()).is_err());
    /// ```
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.inner.connect_addr(addr)
    }

    /// The local address (unnamed unless bound).
    ///
    /// # Errors
    ///
    /// As `getsockname` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert!(s.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a peer.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::connect`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    fn read_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Read, deadline(self.read_timeout.get()), op)
    }

    /// A send to the connected peer: Linux wakes a sender connected to a
    /// receiver when that receiver's queue has room again, so this parks on
    /// readiness as every other operation does.
    fn send_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Write, deadline(self.write_timeout.get()), op)
    }

    /// A send to an address: when the receiver's queue is full Linux fails
    /// it with `EAGAIN` yet reports the socket writable again at once (the
    /// failed send's own buffer release wakes it), so waiting for readiness
    /// would spin. It pauses instead (1 ms, doubling up to 20 ms) and
    /// retries, until the deadline; a [`close`](UnixDatagram::close) is
    /// noticed at the next retry.
    fn send_to_op<R>(&self, mut op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        let deadline = deadline(self.write_timeout.get());
        let mut backoff = RETRY_MIN;
        loop {
            if self.reg.is_closed() {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the socket was closed by another greenlet",
                ));
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            let now = Instant::now();
            let pause = match deadline {
                Some(d) if d <= now => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the operation timed out",
                    ))
                }
                Some(d) => backoff.min(d - now),
                None => backoff,
            };
            verdant_runtime::sleep(pause);
            backoff = (backoff * 2).min(SEND_TO_RETRY_MAX);
        }
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the read timeout expires, `NotConnected` when the
    /// socket is closed meanwhile, `ResourceBusy` when another greenlet
    /// already waits to receive on it; other errors as `recvfrom` reports.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.read_op(|| self.inner.recv_from(buf))
    }

    /// Receives one datagram (from the connected peer, if connected).
    ///
    /// # Errors
    ///
    /// As for [`recv_from`](UnixDatagram::recv_from).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::pair`].
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_op(|| self.inner.recv(buf))
    }

    /// Sends one datagram to the socket bound at `path`; returns how many
    /// bytes were sent.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the write timeout expires while the receiver's queue
    /// stays full; other errors as `sendto` reports (`NotFound`,
    /// `ConnectionRefused`, …).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.send_to_op(|| self.inner.send_to(buf, path))
    }

    /// Sends one datagram to `addr`.
    ///
    /// # Errors
    ///
    /// As for [`send_to`](UnixDatagram::send_to).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::bind_addr`].
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to_op(|| self.inner.send_to_addr(buf, addr))
    }

    /// Sends one datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a peer, `ConnectionRefused` once the peer is
    /// gone; as for [`send_to`](UnixDatagram::send_to).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::pair`].
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_op(|| self.inner.send(buf))
    }

    /// Sets how long a receive may wait (`None`: forever). An expired
    /// receive fails with `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verdant_net::UnixDatagram::unbound().unwrap();
    /// s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    /// let err = s.recv(&mut [0u8; 4]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(10)));
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long a send may wait for room (`None`: forever). An expired
    /// send fails with `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert!(s.set_write_timeout(Some(std::time::Duration::ZERO)).is_err());
    /// assert_eq!(s.write_timeout().unwrap(), None);
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// Never (the `Result` mirrors std).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::set_read_timeout`].
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The write timeout.
    ///
    /// # Errors
    ///
    /// Never (the `Result` mirrors std).
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram::set_write_timeout`].
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert!(s.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Shuts down the read half, the write half or both. Shutting down
    /// reading wakes a greenlet blocked in `recv` with `Ok(0)`.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = verdant_net::UnixDatagram::pair().unwrap();
    /// a.shutdown(std::net::Shutdown::Write).unwrap();
    /// let err = a.send(b"x").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// A second handle to the same socket (a duplicated descriptor with its
    /// own registration and timeouts).
    ///
    /// # Errors
    ///
    /// As `dup` or the registration report.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
    /// let a2 = a.try_clone().unwrap();
    /// a2.send(b"x").unwrap();
    /// assert_eq!(b.recv(&mut [0u8; 4]).unwrap(), 1);
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(self.inner.try_clone()?)
    }

    /// Wakes any greenlet blocked on this socket with
    /// `ErrorKind::NotConnected` and makes every later operation fail the
    /// same way. The descriptor closes when the socket is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let s = Rc::new(verdant_net::UnixDatagram::unbound().unwrap());
    /// let s2 = s.clone();
    /// let rx = verdant_runtime::spawn(move || s2.recv(&mut [0u8; 4]));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// s.close();
    /// assert_eq!(rx.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn close(&self) {
        self.reg.close();
    }
}

// ---------------------------------------------------------------------------
// Debug, descriptors
// ---------------------------------------------------------------------------

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

crate::tcp::fd_impls!(UnixStream, std::os::unix::net::UnixStream);
crate::tcp::fd_impls!(UnixListener, std::os::unix::net::UnixListener);
crate::tcp::fd_impls!(UnixDatagram, std::os::unix::net::UnixDatagram);
