//! Cooperative TCP: [`TcpListener`] and [`TcpStream`], shaped like `std::net`.
//!
//! Each socket is a `std::net` socket in non-blocking mode plus a reactor
//! [`Registration`]. An operation is tried at once; when it would block, the
//! calling greenlet parks until the socket is ready and the operation is
//! retried, while the hub runs other greenlets. Code that waits outside any
//! spawned greenlet (in `main`) runs the hub meanwhile, so it works too.
//!
//! Differences from `std::net`, all additions:
//! * [`TcpStream::close`] (also on a shared reference) wakes a greenlet
//!   waiting on the stream with `ErrorKind::NotConnected` at once.
//! * Two greenlets waiting to read (or to write) one socket at the same time
//!   is an error, `ErrorKind::ResourceBusy`, for the second (see
//!   [`verdant_runtime::io`]).
//! * `write_all` and `read_exact` apply the write/read timeout to the whole
//!   call, as a deadline (gevent's `sendall`), not to each partial write.
//! * The descriptors are always in non-blocking mode, including the one
//!   [`IntoRawFd::into_raw_fd`](std::os::fd::IntoRawFd::into_raw_fd) hands back.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::buf::RecvBuf;
use crate::dns::Resolve;

use verdant_runtime::io::{Direction, Registration};

/// A TCP socket server, listening for connections.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use verdant_net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = verdant_runtime::spawn(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0u8; 5];
///     conn.read_exact(&mut buf).unwrap();
///     conn.write_all(&buf.to_ascii_uppercase()).unwrap();
/// });
/// let mut c = TcpStream::connect(addr).unwrap();
/// c.write_all(b"hello").unwrap();
/// let mut reply = String::new();
/// c.read_to_string(&mut reply).unwrap();
/// assert_eq!(reply, "HELLO");
/// server.join().unwrap();
/// ```
pub struct TcpListener {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::net::TcpListener,
}

/// A TCP connection.
///
/// # Examples
///
/// See [`TcpListener`].
pub struct TcpStream {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::net::TcpStream,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// Resolves `addr` (names on the blocking pool) and tries `f` on each
/// address in turn, like std: the first success wins, else the last error.
pub(crate) fn each_addr<A: Resolve, T>(
    addr: A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.resolve()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// The longest pause between two accepts while the process is out of
/// descriptors: queued connections are taken within about this long of
/// descriptors coming free (reliability IO-7 asks for 200 ms), at a cost of
/// 20 failed `accept` calls a second while it lasts.
pub(crate) const ACCEPT_RETRY_MAX: Duration = Duration::from_millis(50);

/// Errors after which `accept` backs off and retries instead of waiting for
/// readiness: with edge-triggered epoll, a listener whose backlog stays
/// full would never be reported readable again (reliability §5).
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl TcpListener {
    /// Creates a listener bound to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// What `bind`/`listen` report, such as `AddrInUse`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(l.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: Resolve>(addr: A) -> io::Result<TcpListener> {
        TcpListener::from_std(each_addr(addr, |a| std::net::TcpListener::bind(*a))?)
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
    /// let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let l = verdant_net::TcpListener::from_std(std).unwrap();
    /// ```
    pub fn from_std(inner: std::net::TcpListener) -> io::Result<TcpListener> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(TcpListener { reg, inner })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// When the process runs out of file descriptors (or kernel memory) it
    /// backs off (10 ms, doubling up to 50 ms) and tries again, rather than
    /// waiting for a readiness event that edge-triggered epoll will not send
    /// again; `ECONNABORTED` is skipped.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the listener is closed meanwhile, other accept
    /// errors as the OS reports them.
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.reg.io(Direction::Read, None, || self.inner.accept()) {
                Ok((s, addr)) => return Ok((TcpStream::from_std(s)?, addr)),
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let c = verdant_runtime::spawn(move || verdant_net::TcpStream::connect(addr).map(|_| ()));
    /// let first = l.incoming().next().unwrap().unwrap();
    /// c.join().unwrap().unwrap();
    /// assert_eq!(first.local_addr().unwrap(), addr);
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
    /// See [`TcpListener::bind`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// l.set_ttl(100).unwrap();
    /// assert_eq!(l.ttl().unwrap(), 100);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// See [`TcpListener::set_ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(l.take_error().unwrap().is_none());
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let l2 = l.try_clone().unwrap();
    /// assert_eq!(l.local_addr().unwrap(), l2.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        TcpListener::from_std(self.inner.try_clone()?)
    }

    /// Wakes a greenlet blocked in [`accept`](TcpListener::accept) on this
    /// listener with `ErrorKind::NotConnected`; later accepts fail the same
    /// way. The descriptor itself closes when the listener is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let l = Rc::new(verdant_net::TcpListener::bind("127.0.0.1:0").unwrap());
    /// let l2 = l.clone();
    /// let waiter = verdant_runtime::spawn(move || l2.accept().map(|_| ()));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// l.close();
    /// let err = waiter.join().unwrap().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn close(&self) {
        self.reg.close();
    }
}

/// The iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    /// Connects to `addr`, trying each resolved address in turn; the
    /// greenlet parks while the connection is in progress.
    ///
    /// Name resolution itself still runs on the calling thread (a lookup
    /// off the hub thread is not built yet); IP literals never block.
    ///
    /// # Errors
    ///
    /// The last address's error, such as `ConnectionRefused`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
    /// ```
    pub fn connect<A: Resolve>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_addr(a, None))
    }

    /// Connects to `addr`, failing with `ErrorKind::TimedOut` when the
    /// connection is not established within `timeout` (the socket is closed
    /// then).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero timeout (as std), `TimedOut`, or the
    /// connect error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = l.local_addr().unwrap();
    /// assert!(verdant_net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        TcpStream::connect_addr(addr, deadline(Some(timeout)))
    }

    fn connect_addr(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        // mio starts a non-blocking connect (EINPROGRESS is not an error).
        let stream = TcpStream::from_std(mio::net::TcpStream::connect(*addr)?.into())?;
        loop {
            if let Some(e) = stream.inner.take_error()? {
                return Err(e);
            }
            match stream.inner.peer_addr() {
                // Connected, with the write readiness that told us so still
                // set: the first write is tried at once (writes trust the
                // bit, see `Registration::io_stream`).
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
            // Writable means connected or failed. Cleared only now, so the
            // bit cannot be left clear on a connected socket; a completion
            // since the check above has queued an event that sets it again.
            stream.reg.clear_ready(Direction::Write);
            stream.reg.wait(Direction::Write, deadline)?;
        }
        Ok(stream)
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
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let std = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let s = verdant_net::TcpStream::from_std(std).unwrap();
    /// ```
    pub fn from_std(inner: std::net::TcpStream) -> io::Result<TcpStream> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(TcpStream {
            reg,
            inner,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` when it is not connected.
    ///
    /// # Examples
    ///
    /// See [`TcpStream::connect`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As `getsockname` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert!(s.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read half, the write half or both. Shutting down
    /// reading wakes a greenlet blocked in `read` with `Ok(0)`.
    ///
    /// # Errors
    ///
    /// As `shutdown` reports (`NotConnected` once the peer is gone).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// s.shutdown(std::net::Shutdown::Read).unwrap();
    /// assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = Rc::new(verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap());
    /// let s2 = s.clone();
    /// let reader = verdant_runtime::spawn(move || (&*s2).read(&mut [0u8; 8]));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// s.close();
    /// let err = reader.join().unwrap().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn close(&self) {
        let _ = self.inner.shutdown(Shutdown::Both);
        self.reg.close();
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// s.set_nodelay(true).unwrap();
    /// assert!(s.nodelay().unwrap());
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// See [`TcpStream::set_nodelay`].
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// s.set_ttl(42).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 42);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// See [`TcpStream::set_ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert!(s.take_error().unwrap().is_none());
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    /// let err = s.read(&mut [0u8; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long a write may wait (`None`: forever). An expired write
    /// fails with `ErrorKind::TimedOut`.
    /// For `write_all` the timeout is a deadline for the whole call; one that
    /// expires part-way says how much it wrote (see [`PartialWrite`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert!(s.set_write_timeout(Some(std::time::Duration::ZERO)).is_err());
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.read_timeout().unwrap(), None);
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), None);
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Reads without removing the data from the queue.
    ///
    /// # Errors
    ///
    /// As `read`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut a = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let (mut b, _) = l.accept().unwrap();
    /// a.write_all(b"xy").unwrap();
    /// let mut buf = [0u8; 2];
    /// assert_eq!(b.peek(&mut buf).unwrap(), 2);
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"xy");
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.reg
            .io(Direction::Read, deadline(self.read_timeout.get()), || {
                self.inner.peek(buf)
            })
    }

    /// Receives what has arrived, up to `max` bytes (gevent's
    /// `conn.recv(max)`), parking until something has; an empty result
    /// means the peer has closed its side.
    ///
    /// Unlike [`read`](Read::read), the caller lends no buffer: one is
    /// taken from this thread's pool only once the socket is readable, and
    /// goes back to it when the [`RecvBuf`] is dropped. A connection that
    /// waits holds no buffer, and the pool hands out the buffer given back
    /// last, which is still in the CPU cache (see [`crate::buf`]). At most
    /// [`RECV_MAX`](crate::buf::RECV_MAX) bytes are returned at a time.
    /// `recv_buf(0)` returns an empty buffer at once. (The name keeps
    /// `recv(&mut buf)` for what it means in std and socket2: a receive
    /// into the caller's buffer.)
    ///
    /// # Errors
    ///
    /// As [`read`](Read::read): `TimedOut` once the read timeout passes,
    /// `NotConnected` after [`close`](TcpStream::close), what the socket
    /// reports.
    ///
    /// # Examples
    ///
    /// The seed's echo loop, as gevent writes it:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use verdant_net::{TcpListener, TcpStream};
    ///
    /// let l = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let server = verdant_runtime::spawn(move || {
    ///     let (mut conn, _) = l.accept().unwrap();
    ///     loop {
    ///         let mut res = conn.recv_buf(1024).unwrap();
    ///         if res.is_empty() {
    ///             break;
    ///         }
    ///         res.make_ascii_uppercase();
    ///         conn.write_all(&res).unwrap();
    ///     }
    /// });
    /// c.write_all(b"ping").unwrap();
    /// c.shutdown(std::net::Shutdown::Write).unwrap();
    /// let mut reply = String::new();
    /// c.read_to_string(&mut reply).unwrap();
    /// assert_eq!(reply, "PING");
    /// server.join().unwrap();
    /// ```
    pub fn recv_buf(&self, max: usize) -> io::Result<RecvBuf> {
        let Some(len) = RecvBuf::size_for(max) else {
            return Ok(RecvBuf::new());
        };
        let mut got = RecvBuf::new();
        let deadline = deadline(self.read_timeout.get());
        // TCP: a short read proves the socket drained (see `read_with`).
        self.reg.io_stream(Direction::Read, deadline, len, || {
            got = RecvBuf::fill(len, |b| (&self.inner).read(b))?;
            Ok(got.len())
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
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let s2 = s.try_clone().unwrap();
    /// assert_eq!(s.local_addr().unwrap(), s2.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        TcpStream::from_std(self.inner.try_clone()?)
    }

    fn read_with(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        // TCP: a short read or write proves the socket drained or full.
        self.reg
            .io_stream(Direction::Read, deadline, buf.len(), || {
                (&self.inner).read(buf)
            })
    }

    fn write_with(&self, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        // std writes with MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
        self.reg
            .io_stream(Direction::Write, deadline, buf.len(), || {
                (&self.inner).write(buf)
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

/// How much of its buffer a `write_all` wrote before it failed: the inner
/// error of an `io::Error` from a verdant socket's `write_all` that failed
/// part-way (gevent's `sendall` cannot tell you this).
///
/// The `io::Error` keeps the kind of the failure (`TimedOut` for an
/// expired write timeout, `BrokenPipe`, ...); the original error, with its
/// OS error code, is [`PartialWrite::error`]. A `write_all` that fails
/// before writing anything returns the original error unwrapped.
///
/// # Examples
///
/// A write timeout expires while the peer reads nothing; the caller learns
/// how many bytes went out, so it can resume or account for them:
///
/// ```
/// use std::io::{ErrorKind, Write};
/// use std::time::Duration;
/// use verdant_net::tcp::PartialWrite;
///
/// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (_peer, _) = l.accept().unwrap(); // never reads
/// s.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
/// let big = vec![7u8; 64 << 20];
/// let err = s.write_all(&big).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// let partial = PartialWrite::of(&err).expect("some bytes went out");
/// assert!(partial.written > 0 && partial.written < big.len());
/// ```
#[derive(Debug)]
pub struct PartialWrite {
    /// Bytes of the buffer written (and handed to the kernel) before the
    /// failure.
    pub written: usize,
    /// The failure itself.
    pub error: io::Error,
}

impl PartialWrite {
    /// The `PartialWrite` inside `err`, if `err` came from a `write_all`
    /// that failed after writing part of its buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
    /// assert!(verdant_net::tcp::PartialWrite::of(&e).is_none());
    /// ```
    pub fn of(err: &io::Error) -> Option<&PartialWrite> {
        err.get_ref()?.downcast_ref::<PartialWrite>()
    }
}

impl fmt::Display for PartialWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after writing {} bytes", self.error, self.written)
    }
}

impl std::error::Error for PartialWrite {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// `write_all` over `write`, which waits against one deadline for the whole
/// call (std's loop, minus retrying `Interrupted`: a cancelled wait must
/// end). A failure after part of the buffer went out carries the count (a
/// [`PartialWrite`]).
pub(crate) fn write_all_with(
    buf: &[u8],
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut written = 0;
    while written < buf.len() {
        let error = match write(&buf[written..]) {
            Ok(0) => io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer"),
            Ok(n) => {
                written += n;
                continue;
            }
            Err(e) => e,
        };
        if written == 0 {
            return Err(error);
        }
        return Err(io::Error::new(
            error.kind(),
            PartialWrite { written, error },
        ));
    }
    Ok(())
}

/// `read_exact` over `read`, as [`write_all_with`].
pub(crate) fn read_exact_with(
    mut buf: &mut [u8],
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read(buf)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_impl(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf, deadline(self.read_timeout.get()))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_impl(buf)
    }
}

impl Write for TcpStream {
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

impl Write for &TcpStream {
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

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .finish()
    }
}

/// `AsFd`, `AsRawFd`, `IntoRawFd`, `From<OwnedFd>` and `From<$t> for
/// OwnedFd` for a socket type with `reg` and `inner: $std` fields.
macro_rules! fd_impls {
    ($t:ident, $std:ty) => {
        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(&self.inner)
            }
        }

        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                ::std::os::fd::AsRawFd::as_raw_fd(&self.inner)
            }
        }

        impl ::std::os::fd::IntoRawFd for $t {
            /// Deregisters the socket and hands back its descriptor (still
            /// in non-blocking mode).
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                let $t { reg, inner, .. } = self;
                drop(reg);
                ::std::os::fd::IntoRawFd::into_raw_fd(inner)
            }
        }

        impl From<::std::os::fd::OwnedFd> for $t {
            /// Adopts a socket descriptor.
            ///
            /// # Panics
            ///
            /// Panics when the descriptor cannot be made non-blocking or
            /// registered with the hub (use `from_std` to handle that).
            fn from(fd: ::std::os::fd::OwnedFd) -> $t {
                match $t::from_std(<$std>::from(fd)) {
                    Ok(s) => s,
                    Err(e) => panic!("verdant: cannot adopt the socket: {e}"),
                }
            }
        }

        impl From<$t> for ::std::os::fd::OwnedFd {
            /// Deregisters the socket and hands back its descriptor (still
            /// in non-blocking mode).
            fn from(s: $t) -> ::std::os::fd::OwnedFd {
                let $t { reg, inner, .. } = s;
                drop(reg);
                inner.into()
            }
        }
    };
}

pub(crate) use fd_impls;

fd_impls!(TcpStream, std::net::TcpStream);
fd_impls!(TcpListener, std::net::TcpListener);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Fifty connections served by `recv_buf` echo loops, one request at a
    /// time: a parked `recv_buf` holds no buffer, and every request borrows the
    /// same pooled one (the one given back last).
    #[test]
    fn parked_recvs_hold_no_buffer_and_share_the_hot_one() {
        use crate::buf::pool_stats;
        assert_eq!(pool_stats(), (0, 0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..50 {
            let c = TcpStream::connect(addr).unwrap();
            let (conn, _) = listener.accept().unwrap();
            verdant_runtime::spawn(move || loop {
                let mut got = conn.recv_buf(1024).unwrap();
                if got.is_empty() {
                    break;
                }
                got.make_ascii_uppercase();
                (&conn).write_all(&got).unwrap();
            });
            clients.push(c);
        }
        // Let all fifty park in recv_buf. A fresh socket counts as readable,
        // so each first recv_buf tried a read (which would block) in a lent buffer,
        // and gave it back. Had the parked greenlets kept their buffers, the
        // pool would be empty and fifty would be out.
        verdant_runtime::sleep(Duration::from_millis(5));
        assert_eq!(pool_stats(), (1, 1024), "a parked recv_buf kept its buffer");
        for round in 0..3 {
            for (i, c) in clients.iter_mut().enumerate() {
                let msg = format!("round {round} conn {i}");
                c.write_all(msg.as_bytes()).unwrap();
                let mut reply = vec![0u8; msg.len()];
                c.read_exact(&mut reply).unwrap();
                assert_eq!(reply, msg.to_ascii_uppercase().into_bytes());
            }
        }
        verdant_runtime::sleep(Duration::from_millis(5)); // all park again
        assert_eq!(pool_stats(), (1, 1024), "150 requests, one buffer");
    }

    /// A greenlet parked in IO when its thread exits is unwound while the
    /// hub still exists (its destructors run, and the process does not
    /// abort on a thread-local accessed after destruction).
    #[test]
    fn greenlet_parked_in_accept_is_unwound_at_thread_exit() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        std::thread::spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let flag = Flag(d);
            verdant_runtime::spawn(move || {
                let _flag = flag;
                let _ = listener.accept();
            });
            verdant_runtime::sleep(Duration::from_millis(2)); // it parks in accept
            assert_eq!(verdant_runtime::Hub::current().io_registrations(), 1);
        })
        .join()
        .unwrap();
        assert!(dropped.load(Ordering::SeqCst));
    }
}
