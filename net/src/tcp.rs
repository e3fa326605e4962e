//! Cooperative TCP: [`TcpListener`] and [`TcpStream`], shaped like
//! `std::net` (how they work: the crate docs, "TCP").

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use verdant_runtime::io::Direction;

use crate::buf::RecvBuf;
use crate::dns::{each_addr, Resolve};
use crate::socket::{self, deadline, Socket};

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
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct TcpListener {
    sock: Socket<std::net::TcpListener>,
}

/// A TCP connection: [`Read`](std::io::Read) and
/// [`Write`](std::io::Write), also through a shared reference, so that one
/// greenlet can read while another writes.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use verdant_net::{TcpListener, TcpStream};
///
/// let l = TcpListener::bind("127.0.0.1:0").unwrap();
/// let s = std::rc::Rc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
/// let (mut peer, _) = l.accept().unwrap();
/// // One greenlet reads the stream while this one writes to it.
/// let s2 = s.clone();
/// let reader = verdant_runtime::spawn(move || {
///     let mut got = [0u8; 4];
///     (&*s2).read_exact(&mut got).unwrap();
///     got
/// });
/// (&*s).write_all(b"ping").unwrap();
/// let mut buf = [0u8; 4];
/// peer.read_exact(&mut buf).unwrap();
/// peer.write_all(b"pong").unwrap();
/// assert_eq!(&reader.join().unwrap(), b"pong");
/// ```
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct TcpStream {
    sock: Socket<std::net::TcpStream>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (port 0 picks a free port),
    /// trying each address it resolves to in turn.
    ///
    /// # Errors
    ///
    /// What `bind`/`listen` report for the last address, such as
    /// `AddrInUse`; `InvalidInput` when `addr` names no address.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(l.local_addr().unwrap().port(), 0);
    /// let taken = l.local_addr().unwrap();
    /// let e = verdant_net::TcpListener::bind(taken).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    /// ```
    pub fn bind<A: Resolve>(addr: A) -> io::Result<TcpListener> {
        TcpListener::from_std(each_addr(addr, |a| std::net::TcpListener::bind(*a))?)
    }

    /// [`accept`](Self::accept), but the connection comes back as a std
    /// stream (non-blocking, registered with no hub): what a round-robin
    /// acceptor hands to another hub without registering it here first.
    pub(crate) fn accept_std(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        self.sock.accept_std(|l| l.accept())
    }

    socket::common_methods! {
        std: std::net::TcpListener,
        addr: SocketAddr,
        from_std: "\
let std_listener = std::net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let l = verdant_net::TcpListener::from_std(std_listener).unwrap();
let addr = l.local_addr().unwrap();
// It accepts cooperatively: the client greenlet runs while accept waits.
let client = verdant_runtime::spawn(move || verdant_net::TcpStream::connect(addr).map(|_| ()));
let (_conn, peer) = l.accept().unwrap();
assert!(peer.ip().is_loopback());
client.join().unwrap().unwrap();",
        try_clone: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let l2 = l.try_clone().unwrap();
assert_eq!(l2.local_addr().unwrap(), l.local_addr().unwrap());
// Both handles accept from the same queue.
let c = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (conn, _) = l2.accept().unwrap();
assert_eq!(conn.peer_addr().unwrap(), c.local_addr().unwrap());",
        local_addr: "\
use std::net::Ipv4Addr;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let addr = l.local_addr().unwrap();
assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
assert_ne!(addr.port(), 0); // port 0 picked a free one",
        take_error: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
assert!(l.take_error().unwrap().is_none());",
        into_std: "let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let addr = l.local_addr().unwrap();
let std_listener = l.into_std(); // Send: off to another hub's thread
let t = std::thread::spawn(move || {
    let l = verdant_net::TcpListener::from_std(std_listener).unwrap();
    l.local_addr().unwrap()
});
assert_eq!(t.join().unwrap(), addr);",
    }

    socket::accept_methods! {
        stream: TcpStream,
        addr: SocketAddr,
        accept: "\
use std::io::{Read, Write};
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let addr = l.local_addr().unwrap();
let client = verdant_runtime::spawn(move || {
    let mut c = verdant_net::TcpStream::connect(addr).unwrap();
    c.write_all(b\"hi\").unwrap();
    c.local_addr().unwrap()
});
let (mut conn, peer) = l.accept().unwrap(); // parks until the client connects
let mut buf = [0u8; 2];
conn.read_exact(&mut buf).unwrap();
assert_eq!(&buf, b\"hi\");
assert_eq!(peer, client.join().unwrap());",
        incoming: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let addr = l.local_addr().unwrap();
let c = verdant_runtime::spawn(move || verdant_net::TcpStream::connect(addr).map(|_| ()));
let first = l.incoming().next().unwrap().unwrap();
c.join().unwrap().unwrap();
assert_eq!(first.local_addr().unwrap(), addr);",
    }

    socket::sockopt! {
        set_ttl, ttl: u32,
        "IP_TTL", "the time-to-live of the packets sent from the accepted connections",
        setup: "let s = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();",
        value: "100",
    }

    socket::close!(
        listener,
        "\
use std::rc::Rc;
let l = Rc::new(verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap());
let l2 = l.clone();
let waiter = verdant_runtime::spawn(move || l2.accept().map(|_| ()));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
l.close();
let err = waiter.join().unwrap().unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);"
    );
}

socket::incoming_type!(Incoming, TcpListener, TcpStream);

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to in turn; the
    /// greenlet parks while the connection is in progress.
    ///
    /// A host name is looked up on the blocking pool, so that a slow DNS
    /// server parks only this greenlet (see [`Resolve`]); IP literals are
    /// parsed at once.
    ///
    /// # Errors
    ///
    /// The last address's error, such as `ConnectionRefused`;
    /// `InvalidInput` when `addr` names no address; the resolver's error
    /// for a name it cannot resolve.
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
    /// then), as std's does. (A read or write timeout expires with
    /// `WouldBlock` instead, also as std's: see
    /// [`set_read_timeout`](TcpStream::set_read_timeout).)
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
        socket::check_timeout(Some(timeout))?;
        TcpStream::connect_addr(addr, deadline(Some(timeout)))
    }

    fn connect_addr(
        addr: &SocketAddr,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<TcpStream> {
        // mio starts a non-blocking connect (EINPROGRESS is not an error).
        let stream = TcpStream::from_std(mio::net::TcpStream::connect(*addr)?.into())?;
        let (inner, reg) = (stream.sock.inner(), stream.sock.reg());
        loop {
            if let Some(e) = inner.take_error()? {
                return Err(e);
            }
            match inner.peer_addr() {
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
            reg.clear_ready(Direction::Write);
            reg.wait(Direction::Write, deadline)?;
        }
        Ok(stream)
    }

    socket::common_methods! {
        std: std::net::TcpStream,
        addr: SocketAddr,
        from_std: "\
let l = std::net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let std_stream = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let s = verdant_net::TcpStream::from_std(std_stream).unwrap();
assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());",
        try_clone: "\
use std::io::{Read, Write};
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (mut peer, _) = l.accept().unwrap();
let mut s2 = s.try_clone().unwrap();
s2.write_all(b\"via the clone\").unwrap();
let mut buf = [0u8; 13];
peer.read_exact(&mut buf).unwrap();
assert_eq!(&buf, b\"via the clone\");",
        local_addr: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (peer, _) = l.accept().unwrap();
assert!(s.local_addr().unwrap().ip().is_loopback());
assert_eq!(s.local_addr().unwrap(), peer.peer_addr().unwrap());",
        take_error: "\
use std::io::Write;
use std::time::Duration;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (peer, _) = l.accept().unwrap();
assert!(s.take_error().unwrap().is_none());
// The peer closes with bytes unread: its kernel resets the connection.
s.write_all(b\"never read\").unwrap();
verdant_runtime::sleep(Duration::from_millis(20));
drop(peer);
verdant_runtime::sleep(Duration::from_millis(20));
let err = s.take_error().unwrap().expect(\"the reset is pending\");
assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
assert!(s.take_error().unwrap().is_none()); // taken",
        into_std: "use std::io::{Read, Write};
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let mut c = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (conn, _) = l.accept().unwrap();
let std_conn = conn.into_std();
// Served by another thread's hub.
let t = std::thread::spawn(move || {
    let mut conn = verdant_net::TcpStream::from_std(std_conn).unwrap();
    conn.write_all(b\"from another hub\").unwrap();
});
let mut got = String::new();
c.read_to_string(&mut got).unwrap();
assert_eq!(got, \"from another hub\");
t.join().unwrap();",
    }

    socket::peer_addr!(
        SocketAddr,
        "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());"
    );

    socket::shutdown!(
        stream,
        "\
use std::io::{Read, Write};
use std::net::Shutdown;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (mut peer, _) = l.accept().unwrap();
s.write_all(b\"last words\").unwrap();
s.shutdown(Shutdown::Write).unwrap();
let mut got = String::new();
peer.read_to_string(&mut got).unwrap(); // ends at the shutdown
assert_eq!(got, \"last words\");
s.shutdown(Shutdown::Read).unwrap();
assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);"
    );

    socket::close!(
        stream,
        "\
use std::io::Read;
use std::rc::Rc;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = Rc::new(verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap());
let (mut peer, _) = l.accept().unwrap();
let s2 = s.clone();
let reader = verdant_runtime::spawn(move || (&*s2).read(&mut [0u8; 8]));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
s.close();
let err = reader.join().unwrap().unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
assert_eq!(peer.read(&mut [0u8; 8]).unwrap(), 0); // the peer sees the end"
    );

    socket::sockopt! {
        set_nodelay, nodelay: bool,
        "TCP_NODELAY", "whether small writes go out at once instead of being coalesced \
            (Nagle's algorithm off)",
        setup: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();",
        value: "true",
    }

    socket::sockopt! {
        set_ttl, ttl: u32,
        "IP_TTL", "the time-to-live of the packets sent",
        setup: "\
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();",
        value: "42",
    }

    socket::timeouts! {
        stream,
        setup: "\
use std::io::Read;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (_peer, _) = l.accept().unwrap();",
        read_expiry: "(&s).read(&mut [0u8; 8])",
        write_example: "\
use std::io::Write;
use std::time::Duration;
let l = verdant_net::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
let (_peer, _) = l.accept().unwrap(); // never reads
s.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
let err = s.write_all(&vec![0u8; 64 << 20]).unwrap_err();
assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
let partial = verdant_net::PartialWrite::of(&err).expect(\"some bytes went out\");
assert!(partial.written > 0);
assert_eq!(partial.error.raw_os_error(), Some(libc::EAGAIN)); // as std's
// A single write gets the same error once the socket is full.
let err = s.write(b\"more\").unwrap_err();
assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
let zero = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);",
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
        self.sock.read_op(|| self.sock.inner().peek(buf))
    }

    /// Receives what has arrived, up to `max` bytes (gevent's
    /// `conn.recv(max)`), parking until something has; an empty result
    /// means the peer has closed its side.
    ///
    /// Unlike [`read`](io::Read::read), the caller lends no buffer: one is
    /// taken from this thread's buffer cache only once the socket is readable, and
    /// goes back to it when the [`RecvBuf`] is dropped. A connection that
    /// waits holds no buffer, and the cache hands out the buffer given back
    /// last, which is still in the CPU cache (see the crate docs on `recv_buf`). At most
    /// [`RecvBuf::MAX_LEN`] bytes are returned at a time.
    /// `recv_buf(0)` returns an empty buffer at once. (The name keeps
    /// `recv(&mut buf)` for what it means in std and socket2: a receive
    /// into the caller's buffer.)
    ///
    /// # Errors
    ///
    /// As [`read`](io::Read::read): `WouldBlock` (`EAGAIN`, as std's)
    /// once the read timeout passes, `NotConnected` after
    /// [`close`](TcpStream::close), `ResourceBusy` while another greenlet
    /// reads the stream, what the socket reports.
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
    #[inline]
    pub fn recv_buf(&self, max: usize) -> io::Result<RecvBuf> {
        self.sock.recv_buf(max)
    }
}

/// How much of its buffer a `write_all` wrote before it failed: the inner
/// error of an `io::Error` from a verdant socket's `write_all` that failed
/// part-way (gevent's `sendall` cannot tell you this).
///
/// The `io::Error` keeps the kind of the failure (`WouldBlock` for an
/// expired write timeout, as std's `EAGAIN`; `BrokenPipe`, ...); the
/// original error, with its OS error code, is [`PartialWrite::error`]. A `write_all` that fails
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
/// use verdant_net::PartialWrite;
///
/// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (_peer, _) = l.accept().unwrap(); // never reads
/// s.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
/// let big = vec![7u8; 64 << 20];
/// let err = s.write_all(&big).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::WouldBlock); // the timeout, as std's
/// let partial = PartialWrite::of(&err).expect("some bytes went out");
/// assert!(partial.written > 0 && partial.written < big.len());
/// assert_eq!(partial.error.raw_os_error(), Some(libc::EAGAIN));
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
    /// let e = std::io::Error::from_raw_os_error(libc::EAGAIN);
    /// assert!(verdant_net::PartialWrite::of(&e).is_none());
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

socket::stream_io!(TcpStream);
socket::socket_traits!(TcpStream, std::net::TcpStream);
socket::socket_traits!(TcpListener, std::net::TcpListener);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Fifty connections served by `recv_buf` echo loops, one request at a
    /// time: a parked `recv_buf` holds no buffer, and every request borrows the
    /// same cached one (the one given back last).
    #[test]
    fn parked_recvs_hold_no_buffer_and_share_the_hot_one() {
        use crate::buf::cache_stats;
        assert_eq!(cache_stats(), (0, 0));
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
        // cache would be empty and fifty would be out.
        verdant_runtime::sleep(Duration::from_millis(5));
        assert_eq!(
            cache_stats(),
            (1, 1024),
            "a parked recv_buf kept its buffer"
        );
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
        assert_eq!(cache_stats(), (1, 1024), "150 requests, one buffer");
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
