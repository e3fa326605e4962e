//! Cooperative UDP: [`UdpSocket`], shaped like `std::net::UdpSocket`.
//!
//! Receiving parks the calling greenlet until a datagram arrives; sending
//! parks only while the socket's send buffer is full. As for TCP, read and
//! write timeouts expire as `ErrorKind::TimedOut`, [`UdpSocket::close`]
//! wakes a blocked greenlet with `ErrorKind::NotConnected`, and a second
//! greenlet receiving on the same socket while one already waits gets
//! `ErrorKind::ResourceBusy` (see [`verdant_runtime::io`]).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::dns::Resolve;

use verdant_runtime::io::{Direction, Registration};

use crate::tcp::{check_timeout, deadline, each_addr};

/// A UDP socket.
///
/// # Examples
///
/// ```
/// use verdant_net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b_addr = b.local_addr().unwrap();
/// // The receiver parks first; the sender runs while it waits.
/// let rx = verdant_runtime::spawn(move || {
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     (buf[..n].to_vec(), from)
/// });
/// a.send_to(b"ping", b_addr).unwrap();
/// let (data, from) = rx.join().unwrap();
/// assert_eq!(data, b"ping");
/// assert_eq!(from, a.local_addr().unwrap());
/// ```
pub struct UdpSocket {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: std::net::UdpSocket,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// What `bind` reports, such as `AddrInUse`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: Resolve>(addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(each_addr(addr, |a| std::net::UdpSocket::bind(*a))?)
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
    /// let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let s = verdant_net::UdpSocket::from_std(std).unwrap();
    /// ```
    pub fn from_std(inner: std::net::UdpSocket) -> io::Result<UdpSocket> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(UdpSocket {
            reg,
            inner,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    fn read_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Read, deadline(self.read_timeout.get()), op)
    }

    fn write_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Write, deadline(self.write_timeout.get()), op)
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the read timeout expires; other errors as `recvfrom`
    /// reports.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.read_op(|| self.inner.recv_from(buf))
    }

    /// Like [`recv_from`](UdpSocket::recv_from), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As `recv_from`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.send_to(b"x", a.local_addr().unwrap()).unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(a.peek_from(&mut buf).unwrap().0, 1);
    /// assert_eq!(a.recv_from(&mut buf).unwrap().0, 1);
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.read_op(|| self.inner.peek_from(buf))
    }

    /// Sends one datagram to `addr` (the first address it resolves to);
    /// returns how many bytes were sent.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the write timeout expires while the send buffer is
    /// full; other errors as `sendto` reports.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn send_to<A: Resolve>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.resolve()?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.write_op(|| self.inner.send_to(buf, addr))
    }

    /// Sets the default peer: `send` and `recv` then talk to it only.
    ///
    /// # Errors
    ///
    /// As `connect` reports for every resolved address.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// a.send(b"hi").unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn connect<A: Resolve>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.inner.connect(a))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a peer; as for [`send_to`](UdpSocket::send_to).
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::connect`].
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_op(|| self.inner.send(buf))
    }

    /// Receives from the connected peer.
    ///
    /// # Errors
    ///
    /// As for [`recv_from`](UdpSocket::recv_from); `ConnectionRefused` when
    /// an earlier datagram to the peer bounced (ICMP port unreachable).
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::connect`].
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_op(|| self.inner.recv(buf))
    }

    /// Like [`recv`](UdpSocket::recv), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As `recv`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(a.local_addr().unwrap()).unwrap();
    /// a.send(b"abc").unwrap();
    /// let mut buf = [0u8; 8];
    /// assert_eq!(a.peek(&mut buf).unwrap(), 3);
    /// assert_eq!(a.recv(&mut buf).unwrap(), 3);
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_op(|| self.inner.peek(buf))
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a peer.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::connect`].
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
    /// See [`UdpSocket::bind`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets how long a receive may wait (`None`: forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    /// let err = s.recv_from(&mut [0u8; 4]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(10)));
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long a send may wait for buffer space (`None`: forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
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
    /// See [`UdpSocket::set_read_timeout`].
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
    /// See [`UdpSocket::set_write_timeout`].
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_broadcast(true).unwrap();
    /// assert!(s.broadcast().unwrap());
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As `getsockopt` reports.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::set_broadcast`].
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
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
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_ttl(7).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 7);
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
    /// See [`UdpSocket::set_ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Joins an IPv4 multicast group.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::net::Ipv4Addr;
    /// let s = verdant_net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// s.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 123), &Ipv4Addr::UNSPECIFIED).unwrap();
    /// ```
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group on interface number `interface`.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = verdant_net::UdpSocket::bind("[::]:0").unwrap();
    /// s.join_multicast_v6(&"ff02::123".parse().unwrap(), 0).unwrap();
    /// ```
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(group, interface)
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
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
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
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let s2 = s.try_clone().unwrap();
    /// assert_eq!(s.local_addr().unwrap(), s2.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.inner.try_clone()?)
    }

    /// Wakes any greenlet blocked on this socket with
    /// `ErrorKind::NotConnected` and makes every later operation fail the
    /// same way. The descriptor closes when the socket is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let s = Rc::new(verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap());
    /// let s2 = s.clone();
    /// let rx = verdant_runtime::spawn(move || s2.recv_from(&mut [0u8; 4]).map(|_| ()));
    /// verdant_runtime::sleep(std::time::Duration::from_millis(5));
    /// s.close();
    /// assert_eq!(rx.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn close(&self) {
        self.reg.close();
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.inner.as_raw_fd())
            .field("local", &self.inner.local_addr().ok())
            .finish()
    }
}

crate::tcp::fd_impls!(UdpSocket, std::net::UdpSocket);
