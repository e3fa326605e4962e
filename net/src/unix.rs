//! Cooperative Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], shaped like `std::os::unix::net` (the crate docs,
//! "Unix-domain sockets").

use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::buf::RecvBuf;
use crate::socket::{self, Socket};

/// The first pause of a connect or datagram send that the kernel gives no
/// usable readiness event for (see the crate docs); it doubles up to
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
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct UnixListener {
    sock: Socket<std::os::unix::net::UnixListener>,
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
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct UnixStream {
    sock: Socket<std::os::unix::net::UnixStream>,
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
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct UnixDatagram {
    sock: Socket<std::os::unix::net::UnixDatagram>,
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

    socket::common_methods! {
        std: std::os::unix::net::UnixListener,
        addr: SocketAddr,
        from_std: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
let l = verdant_net::UnixListener::from_std(std_listener).unwrap();
// It accepts cooperatively: the client greenlet runs while accept waits.
let p2 = path.clone();
let client = verdant_runtime::spawn(move || verdant_net::UnixStream::connect(&p2).map(|_| ()));
let (_conn, peer) = l.accept().unwrap();
assert!(peer.is_unnamed()); // clients rarely bind
client.join().unwrap().unwrap();
# std::fs::remove_dir_all(&dir).unwrap();",
        try_clone: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
let l2 = l.try_clone().unwrap();
assert_eq!(l2.local_addr().unwrap().as_pathname(), Some(path.as_path()));
// Both handles accept from the same queue.
let c = verdant_net::UnixStream::connect(&path).unwrap();
let (conn, _) = l2.accept().unwrap();
assert_eq!(conn.local_addr().unwrap().as_pathname(), Some(path.as_path()));
# drop(c);
# std::fs::remove_dir_all(&dir).unwrap();",
        local_addr: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();",
        take_error: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let l = verdant_net::UnixListener::bind(dir.join(\"sock\")).unwrap();
assert!(l.take_error().unwrap().is_none());
# std::fs::remove_dir_all(&dir).unwrap();",
        into_std: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-into-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
# let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
let std_listener = l.into_std();
assert_eq!(std_listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();",
    }

    socket::accept_methods! {
        stream: UnixStream,
        addr: SocketAddr,
        accept: "use std::io::{Read, Write};
# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
let p2 = path.clone();
let client = verdant_runtime::spawn(move || {
    let mut c = verdant_net::UnixStream::connect(&p2).unwrap();
    c.write_all(b\"hi\").unwrap();
});
let (mut conn, peer) = l.accept().unwrap(); // parks until the client connects
assert!(peer.is_unnamed());
let mut buf = [0u8; 2];
conn.read_exact(&mut buf).unwrap();
assert_eq!(&buf, b\"hi\");
client.join().unwrap();
# std::fs::remove_dir_all(&dir).unwrap();",
        incoming: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
let p2 = path.clone();
let c = verdant_runtime::spawn(move || verdant_net::UnixStream::connect(&p2).map(|_| ()));
let first = l.incoming().next().unwrap().unwrap();
c.join().unwrap().unwrap();
assert_eq!(first.local_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();",
    }

    socket::close!(
        listener,
        "use std::rc::Rc;
# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let l = Rc::new(verdant_net::UnixListener::bind(dir.join(\"sock\")).unwrap());
let l2 = l.clone();
let waiter = verdant_runtime::spawn(move || l2.accept().map(|_| ()));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
l.close();
let err = waiter.join().unwrap().unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
# std::fs::remove_dir_all(&dir).unwrap();"
    );
}

socket::incoming_type!(UnixIncoming, UnixListener, UnixStream);
/// The name the listener methods' macro uses for this module's iterator.
use self::UnixIncoming as Incoming;

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
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    ///
    /// let name = format!("verdant-doc-connect-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let l = verdant_net::UnixListener::bind_addr(&addr).unwrap();
    /// let mut c = verdant_net::UnixStream::connect_addr(&addr).unwrap();
    /// let (mut conn, _) = l.accept().unwrap();
    /// c.write_all(b"no file").unwrap();
    /// let mut buf = [0u8; 7];
    /// conn.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"no file");
    /// assert_eq!(c.peer_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
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
    /// ```
    /// use std::io::{Read, Write};
    /// let (mut a, mut b) = verdant_net::UnixStream::pair().unwrap();
    /// assert!(a.local_addr().unwrap().is_unnamed());
    /// a.write_all(b"there").unwrap();
    /// b.write_all(b"back").unwrap();
    /// let (mut x, mut y) = ([0u8; 5], [0u8; 4]);
    /// b.read_exact(&mut x).unwrap();
    /// a.read_exact(&mut y).unwrap();
    /// assert_eq!((&x, &y), (b"there", b"back"));
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    socket::common_methods! {
        std: std::os::unix::net::UnixStream,
        addr: SocketAddr,
        from_std: "use std::io::{Read, Write};
let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
let mut a = verdant_net::UnixStream::from_std(a).unwrap();
let mut b = verdant_net::UnixStream::from_std(b).unwrap();
a.write_all(b\"wrapped\").unwrap();
let mut buf = [0u8; 7];
b.read_exact(&mut buf).unwrap();
assert_eq!(&buf, b\"wrapped\");",
        try_clone: "use std::io::{Read, Write};
let (a, mut b) = verdant_net::UnixStream::pair().unwrap();
let mut a2 = a.try_clone().unwrap();
a2.write_all(b\"via the clone\").unwrap();
let mut buf = [0u8; 13];
b.read_exact(&mut buf).unwrap();
assert_eq!(&buf, b\"via the clone\");",
        local_addr: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let l = verdant_net::UnixListener::bind(&path).unwrap();
let c = verdant_net::UnixStream::connect(&path).unwrap();
let (conn, _) = l.accept().unwrap();
assert!(c.local_addr().unwrap().is_unnamed()); // the client did not bind
assert_eq!(conn.local_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();",
        take_error: "use std::io::Write;
let (mut a, b) = verdant_net::UnixStream::pair().unwrap();
assert!(a.take_error().unwrap().is_none());
// The peer closes with bytes unread: the connection is reset.
a.write_all(b\"never read\").unwrap();
drop(b);
let err = a.take_error().unwrap().expect(\"the reset is pending\");
assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
assert!(a.take_error().unwrap().is_none()); // taken",
        into_std: "use std::io::{Read, Write};
let (a, b) = verdant_net::UnixStream::pair().unwrap();
let std_b = b.into_std();
let t = std::thread::spawn(move || {
    let mut b = verdant_net::UnixStream::from_std(std_b).unwrap();
    b.write_all(b\"hi\").unwrap();
});
let mut got = [0u8; 2];
(&a).read_exact(&mut got).unwrap();
assert_eq!(&got, b\"hi\");
t.join().unwrap();",
    }

    socket::peer_addr!(
        SocketAddr,
        "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"sock\");
let _l = verdant_net::UnixListener::bind(&path).unwrap();
let c = verdant_net::UnixStream::connect(&path).unwrap();
assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();"
    );

    socket::shutdown!(
        stream,
        "use std::io::{Read, Write};
use std::net::Shutdown;
let (mut a, mut b) = verdant_net::UnixStream::pair().unwrap();
a.write_all(b\"last words\").unwrap();
a.shutdown(Shutdown::Write).unwrap();
let mut got = String::new();
b.read_to_string(&mut got).unwrap(); // ends at the shutdown
assert_eq!(got, \"last words\");
a.shutdown(Shutdown::Read).unwrap();
assert_eq!(a.read(&mut [0u8; 8]).unwrap(), 0);"
    );

    socket::close!(
        stream,
        "use std::io::Read;
use std::rc::Rc;
let (a, mut b) = verdant_net::UnixStream::pair().unwrap();
let a = Rc::new(a);
let a2 = a.clone();
let reader = verdant_runtime::spawn(move || (&*a2).read(&mut [0u8; 8]));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
a.close();
let err = reader.join().unwrap().unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
assert_eq!(b.read(&mut [0u8; 8]).unwrap(), 0); // the peer sees the end"
    );

    socket::timeouts! {
        stream,
        setup: "use std::io::Read;
    let (s, _peer) = verdant_net::UnixStream::pair().unwrap();",
        read_expiry: "(&s).read(&mut [0u8; 8])",
        write_example: "use std::io::Write;
use std::time::Duration;
let (mut s, _peer) = verdant_net::UnixStream::pair().unwrap(); // the peer never reads
s.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
let err = s.write_all(&vec![0u8; 16 << 20]).unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock); // as std's
let partial = verdant_net::PartialWrite::of(&err).expect(\"some bytes went out\");
assert!(partial.written > 0);
assert_eq!(partial.error.raw_os_error(), Some(libc::EAGAIN));
let zero = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);",
    }

    /// Receives what has arrived, up to `max` bytes, parking until
    /// something has; empty means end of stream. The buffer comes from this
    /// thread's buffer cache only once the socket is readable, as for
    /// [`TcpStream::recv_buf`](crate::TcpStream::recv_buf) (see the crate docs on `recv_buf`).
    ///
    /// # Errors
    ///
    /// As [`read`](io::Read::read).
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
        self.sock.recv_buf(max)
    }
}

socket::stream_io!(UnixStream);

// ---------------------------------------------------------------------------
// UnixDatagram
// ---------------------------------------------------------------------------

impl UnixDatagram {
    /// Creates a datagram socket bound to the file system path `path`
    /// (which must not exist yet).
    ///
    /// # Errors
    ///
    /// What `bind` reports, such as `AddrInUse` when the path exists, or
    /// `InvalidInput` for a path too long for `sockaddr_un`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("verdant-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("rx.sock");
    /// let rx = verdant_net::UnixDatagram::bind(&path).unwrap();
    /// assert_eq!(rx.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// let again = verdant_net::UnixDatagram::bind(&path).unwrap_err();
    /// assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
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
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("verdant-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("rx.sock");
    /// let rx = verdant_net::UnixDatagram::bind(&path).unwrap();
    /// let tx = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert!(tx.local_addr().unwrap().is_unnamed());
    /// tx.send_to(b"anon", &path).unwrap();
    /// let mut buf = [0u8; 8];
    /// let (n, from) = rx.recv_from(&mut buf).unwrap();
    /// assert_eq!((&buf[..n], from.is_unnamed()), (&b"anon"[..], true));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
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

    socket::common_methods! {
        std: std::os::unix::net::UnixDatagram,
        addr: SocketAddr,
        from_std: "let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
let a = verdant_net::UnixDatagram::from_std(a).unwrap();
let b = verdant_net::UnixDatagram::from_std(b).unwrap();
a.send(b\"wrapped\").unwrap();
let mut buf = [0u8; 16];
assert_eq!(b.recv(&mut buf).unwrap(), 7);",
        try_clone: "let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
let a2 = a.try_clone().unwrap();
a2.send(b\"x\").unwrap();
assert_eq!(b.recv(&mut [0u8; 4]).unwrap(), 1);",
        local_addr: "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"rx.sock\");
let rx = verdant_net::UnixDatagram::bind(&path).unwrap();
assert_eq!(rx.local_addr().unwrap().as_pathname(), Some(path.as_path()));
let tx = verdant_net::UnixDatagram::unbound().unwrap();
assert!(tx.local_addr().unwrap().is_unnamed());
# std::fs::remove_dir_all(&dir).unwrap();",
        take_error: "let s = verdant_net::UnixDatagram::unbound().unwrap();
    assert!(s.take_error().unwrap().is_none());",
        into_std: "let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
let std_b = b.into_std();
a.send(b\"x\").unwrap();
let mut buf = [0u8; 1];
std_b.set_nonblocking(false).unwrap();
assert_eq!(std_b.recv(&mut buf).unwrap(), 1);",
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
        self.sock.inner().connect(path)
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
        self.sock.inner().connect_addr(addr)
    }

    socket::peer_addr!(
        SocketAddr,
        "# let dir = std::env::temp_dir().join(format!(\"verdant-doc-{}\", std::process::id()));
# std::fs::create_dir_all(&dir).unwrap();
let path = dir.join(\"rx.sock\");
let _rx = verdant_net::UnixDatagram::bind(&path).unwrap();
let tx = verdant_net::UnixDatagram::unbound().unwrap();
assert_eq!(tx.peer_addr().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
tx.connect(&path).unwrap();
assert_eq!(tx.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
# std::fs::remove_dir_all(&dir).unwrap();"
    );

    /// A send to an address: when the receiver's queue is full Linux fails
    /// it with `EAGAIN` yet reports the socket writable again at once (the
    /// failed send's own buffer release wakes it), so waiting for readiness
    /// would spin. It pauses instead (1 ms, doubling up to 20 ms) and
    /// retries, until the deadline; a [`close`](UnixDatagram::close) is
    /// noticed at the next retry. Its expiry is the reactor's
    /// [`deadline_error`](verdant_runtime::io::deadline_error), made std's
    /// `EAGAIN` by the same mapping as every other socket timeout's.
    fn send_to_op<R>(&self, mut op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        let deadline = self.sock.write_deadline();
        let mut backoff = RETRY_MIN;
        let sent = loop {
            if let Err(closed) = self.sock.reg().check_open() {
                break Err(closed);
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
            let now = Instant::now();
            let pause = match deadline {
                Some(d) if d <= now => break Err(verdant_runtime::io::deadline_error()),
                Some(d) => backoff.min(d - now),
                None => backoff,
            };
            verdant_runtime::sleep(pause);
            backoff = (backoff * 2).min(SEND_TO_RETRY_MAX);
        };
        sent.map_err(socket::std_timeout)
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated.
    ///
    /// # Errors
    ///
    /// `WouldBlock` (`EAGAIN`, as std's) when the read timeout expires,
    /// `NotConnected` when the socket is closed meanwhile, `ResourceBusy`
    /// when another greenlet already waits to receive on it; other errors as
    /// `recvfrom` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("verdant-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let (rx_path, tx_path) = (dir.join("rx.sock"), dir.join("tx.sock"));
    /// let rx = verdant_net::UnixDatagram::bind(&rx_path).unwrap();
    /// let tx = verdant_net::UnixDatagram::bind(&tx_path).unwrap();
    /// // The receiver parks until the datagram arrives; the sender runs.
    /// let receiver = verdant_runtime::spawn(move || {
    ///     let mut buf = [0u8; 4];
    ///     let (n, from) = rx.recv_from(&mut buf).unwrap();
    ///     (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
    /// });
    /// tx.send_to(b"ping!", &rx_path).unwrap();
    /// let (got, from) = receiver.join().unwrap();
    /// assert_eq!(got, b"ping"); // truncated to the buffer
    /// assert_eq!(from.as_deref(), Some(tx_path.as_path()));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.read_op(|| self.sock.inner().recv_from(buf))
    }

    /// Receives one datagram (once connected, from the peer only).
    ///
    /// # Errors
    ///
    /// As for [`recv_from`](UnixDatagram::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
    /// a.send(b"first").unwrap();
    /// a.send(b"second").unwrap();
    /// // One datagram per call, whole and in order.
    /// let mut buf = [0u8; 16];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 5);
    /// assert_eq!(b.recv(&mut buf).unwrap(), 6);
    /// assert_eq!(&buf[..6], b"second");
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read_op(|| self.sock.inner().recv(buf))
    }

    /// Sends one datagram to the socket bound at `path`; returns how many
    /// bytes were sent.
    ///
    /// # Errors
    ///
    /// `WouldBlock` (`EAGAIN`, as std's) when the write timeout expires
    /// while the receiver's queue stays full; `NotConnected` once the
    /// socket is closed; other errors as `sendto` reports (`NotFound`,
    /// `ConnectionRefused`, …).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("verdant-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("rx.sock");
    /// let rx = verdant_net::UnixDatagram::bind(&path).unwrap();
    /// let tx = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert_eq!(tx.send_to(b"hello", &path).unwrap(), 5);
    /// assert_eq!(rx.recv(&mut [0u8; 8]).unwrap(), 5);
    /// let e = tx.send_to(b"hello", dir.join("nobody")).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.send_to_op(|| self.sock.inner().send_to(buf, path))
    }

    /// Sends one datagram to `addr`.
    ///
    /// # Errors
    ///
    /// As for [`send_to`](UnixDatagram::send_to).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    ///
    /// let name = format!("verdant-doc-send-to-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let tx = verdant_net::UnixDatagram::unbound().unwrap();
    /// // Nobody is bound there yet.
    /// let e = tx.send_to_addr(b"early", &addr).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    /// let rx = verdant_net::UnixDatagram::bind_addr(&addr).unwrap();
    /// assert_eq!(tx.send_to_addr(b"on time", &addr).unwrap(), 7);
    /// assert_eq!(rx.recv(&mut [0u8; 16]).unwrap(), 7);
    /// ```
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to_op(|| self.sock.inner().send_to_addr(buf, addr))
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
    /// ```
    /// let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
    /// assert_eq!(a.send(b"one").unwrap(), 3);
    /// assert_eq!(b.recv(&mut [0u8; 8]).unwrap(), 3);
    /// drop(b);
    /// let e = a.send(b"two").unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    /// let lone = verdant_net::UnixDatagram::unbound().unwrap();
    /// assert_eq!(lone.send(b"?").unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        // Linux wakes a sender connected to a receiver when that receiver's
        // queue has room again, so this parks on readiness as every other
        // operation does.
        self.sock.write_op(|| self.sock.inner().send(buf))
    }

    socket::timeouts! {
        datagram,
        setup: "let (s, _peer) = verdant_net::UnixDatagram::pair().unwrap();",
        read_expiry: "s.recv(&mut [0u8; 4])",
        write_example: "use std::time::Duration;
let (s, _peer) = verdant_net::UnixDatagram::pair().unwrap(); // the peer never receives
s.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
// Sends go through until the peer's queue is full; the next one waits,
// then expires.
let err = loop {
    if let Err(e) = s.send(&[0u8; 1024]) {
        break e;
    }
};
assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock); // as std's
assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
let zero = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);",
    }

    socket::shutdown!(
        datagram,
        "use std::net::Shutdown;
let (a, b) = verdant_net::UnixDatagram::pair().unwrap();
a.send(b\"queued\").unwrap();
b.shutdown(Shutdown::Read).unwrap();
// What was queued before the shutdown is still received.
assert_eq!(b.recv(&mut [0u8; 8]).unwrap(), 6);
a.shutdown(Shutdown::Write).unwrap();
let err = a.send(b\"x\").unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);"
    );

    socket::close!(
        datagram,
        "use std::rc::Rc;
let s = Rc::new(verdant_net::UnixDatagram::unbound().unwrap());
let s2 = s.clone();
let rx = verdant_runtime::spawn(move || s2.recv(&mut [0u8; 4]));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
s.close();
assert_eq!(rx.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::NotConnected);"
    );
}

socket::socket_traits!(UnixStream, std::os::unix::net::UnixStream);
socket::socket_traits!(UnixListener, std::os::unix::net::UnixListener);
socket::socket_traits!(UnixDatagram, std::os::unix::net::UnixDatagram);
