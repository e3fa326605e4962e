//! Cooperative UDP: [`UdpSocket`], shaped like `std::net::UdpSocket` (the
//! crate docs, "UDP").

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::dns::{each_addr, Resolve};
use crate::socket::{self, Socket};

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
///
/// It belongs to this thread's hub (`!Send`): to move it to another
/// hub, hand over [`into_std`](Self::into_std) (see
/// [Threads](crate#threads)).
pub struct UdpSocket {
    sock: Socket<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (port 0 picks a free port), trying
    /// each address it resolves to in turn.
    ///
    /// # Errors
    ///
    /// What `bind` reports for the last address, such as `AddrInUse`;
    /// `InvalidInput` when `addr` names no address.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0);
    /// let e = verdant_net::UdpSocket::bind(s.local_addr().unwrap()).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    /// ```
    pub fn bind<A: Resolve>(addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(each_addr(addr, |a| std::net::UdpSocket::bind(*a))?)
    }

    socket::common_methods! {
        std: std::net::UdpSocket,
        addr: SocketAddr,
        from_std: "\
let std_socket = std::net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
let s = verdant_net::UdpSocket::from_std(std_socket).unwrap();
let me = s.local_addr().unwrap();
s.send_to(b\"self\", me).unwrap();
let mut buf = [0u8; 8];
assert_eq!(s.recv_from(&mut buf).unwrap(), (4, me));",
        try_clone: "\
let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
let s2 = s.try_clone().unwrap();
s.send_to(b\"x\", s.local_addr().unwrap()).unwrap();
// The clone receives from the same queue.
assert_eq!(s2.recv_from(&mut [0u8; 4]).unwrap(), (1, s.local_addr().unwrap()));",
        local_addr: "\
use std::net::Ipv4Addr;
let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
let addr = s.local_addr().unwrap();
assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
assert_ne!(addr.port(), 0); // port 0 picked a free one",
        take_error: "\
use std::time::Duration;
let closed = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap().local_addr().unwrap();
let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
s.connect(closed).unwrap();
assert!(s.take_error().unwrap().is_none());
s.send(b\"anyone?\").unwrap();
// The ICMP \"port unreachable\" comes back and is kept as the socket's error.
verdant_runtime::sleep(Duration::from_millis(20));
let err = s.take_error().unwrap().expect(\"the refusal is pending\");
assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
assert!(s.take_error().unwrap().is_none()); // taken",
        into_std: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
let addr = s.local_addr().unwrap();
let std_socket = s.into_std();
assert_eq!(std_socket.local_addr().unwrap(), addr);",
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated.
    ///
    /// # Errors
    ///
    /// `WouldBlock` (`EAGAIN`, as std's) when the read timeout expires,
    /// `NotConnected` once the socket is closed, `ResourceBusy` while another
    /// greenlet receives on it; other errors as `recvfrom` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b_addr = b.local_addr().unwrap();
    /// // The receiver parks until the datagram arrives; the sender runs.
    /// let rx = verdant_runtime::spawn(move || {
    ///     let mut buf = [0u8; 4];
    ///     let (n, from) = b.recv_from(&mut buf).unwrap();
    ///     (buf, n, from)
    /// });
    /// a.send_to(b"ping!", b_addr).unwrap();
    /// let (buf, n, from) = rx.join().unwrap();
    /// assert_eq!(&buf[..n], b"ping"); // truncated to the buffer
    /// assert_eq!(from, a.local_addr().unwrap());
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.read_op(|| self.sock.inner().recv_from(buf))
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
        self.sock.read_op(|| self.sock.inner().peek_from(buf))
    }

    /// Sends one datagram to `addr` (the first address it resolves to);
    /// returns how many bytes were sent.
    ///
    /// # Errors
    ///
    /// `WouldBlock` (`EAGAIN`, as std's) when the write timeout expires
    /// while the send buffer is full; `InvalidInput` when `addr` names no
    /// address; other errors as `sendto` reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let port = b.local_addr().unwrap().port();
    /// assert_eq!(a.send_to(b"hello", format!("127.0.0.1:{port}")).unwrap(), 5);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv_from(&mut buf).unwrap(), (5, a.local_addr().unwrap()));
    /// let nowhere: &[SocketAddr] = &[];
    /// let e = a.send_to(b"hello", nowhere).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn send_to<A: Resolve>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.resolve()?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.sock.write_op(|| self.sock.inner().send_to(buf, addr))
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
        each_addr(addr, |a| self.sock.inner().connect(a))
    }

    /// Sends one datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// Without a peer, the OS's `EDESTADDRREQ` ("destination address
    /// required"); `ConnectionRefused` when an earlier datagram to the peer
    /// bounced (ICMP port unreachable); otherwise as for
    /// [`send_to`](UdpSocket::send_to).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let e = a.send(b"to whom?").unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::EDESTADDRREQ));
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.send(b"hi").unwrap(), 2);
    /// let mut buf = [0u8; 4];
    /// assert_eq!(b.recv_from(&mut buf).unwrap(), (2, a.local_addr().unwrap()));
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write_op(|| self.sock.inner().send(buf))
    }

    /// Receives one datagram (once connected, from the peer only: the
    /// kernel drops datagrams from anyone else).
    ///
    /// # Errors
    ///
    /// As for [`recv_from`](UdpSocket::recv_from); `ConnectionRefused` when
    /// an earlier datagram to the peer bounced (ICMP port unreachable).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let stranger = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// stranger.send_to(b"noise", b.local_addr().unwrap()).unwrap(); // dropped
    /// a.send_to(b"signal", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0u8; 8];
    /// let n = b.recv(&mut buf).unwrap();
    /// assert_eq!(&buf[..n], b"signal");
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read_op(|| self.sock.inner().recv(buf))
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
        self.sock.read_op(|| self.sock.inner().peek(buf))
    }

    socket::peer_addr!(
        SocketAddr,
        "\
let a = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
let b = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
assert_eq!(a.peer_addr().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
a.connect(b.local_addr().unwrap()).unwrap();
assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());"
    );

    socket::timeouts! {
        datagram,
        setup: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();",
        read_expiry: "s.recv_from(&mut [0u8; 4])",
        write_example: "\
use std::time::Duration;
let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();
// A UDP send waits only while the socket's send buffer is full, which
// loopback empties at once: this one goes out.
s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_millis(100)));
assert_eq!(s.send_to(b\"x\", s.local_addr().unwrap()).unwrap(), 1);
let zero = s.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);",
    }

    socket::sockopt! {
        set_broadcast, broadcast: bool,
        "SO_BROADCAST", "whether datagrams may be sent to a broadcast address",
        setup: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();",
        value: "true",
    }

    socket::sockopt! {
        set_ttl, ttl: u32,
        "IP_TTL", "the time-to-live of the packets sent",
        setup: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();",
        value: "7",
    }

    socket::sockopt! {
        set_multicast_loop_v4, multicast_loop_v4: bool,
        "IP_MULTICAST_LOOP", "whether IPv4 multicast datagrams sent from this socket \
            are looped back to this host's members of the group",
        setup: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();",
        value: "false",
    }

    socket::sockopt! {
        set_multicast_ttl_v4, multicast_ttl_v4: u32,
        "IP_MULTICAST_TTL", "the time-to-live of the IPv4 multicast datagrams sent \
            (1, the default, keeps them on the local network)",
        setup: "let s = verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();",
        value: "8",
    }

    socket::sockopt! {
        set_multicast_loop_v6, multicast_loop_v6: bool,
        "IPV6_MULTICAST_LOOP", "whether IPv6 multicast datagrams sent from this socket \
            are looped back to this host's members of the group",
        setup: "let s = verdant_net::UdpSocket::bind(\"[::1]:0\").unwrap();",
        value: "false",
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface whose
    /// address is `interface` (`IP_ADD_MEMBERSHIP`; `0.0.0.0` lets the
    /// kernel choose): the socket then receives the group's datagrams.
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports: `InvalidInput` when `multiaddr` is not a
    /// multicast address, `AddrNotAvailable` when no interface has the
    /// address `interface`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let s = verdant_net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// let group = Ipv4Addr::new(224, 0, 0, 123);
    /// s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// let e = s.join_multicast_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::LOCALHOST).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput); // not a group
    /// ```
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.inner().join_multicast_v4(multiaddr, interface)
    }

    /// Leaves the IPv4 multicast group `multiaddr` on the interface whose
    /// address is `interface` (`IP_DROP_MEMBERSHIP`).
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports: `AddrNotAvailable` when the socket is not a
    /// member of that group there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let s = verdant_net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// let group = Ipv4Addr::new(224, 0, 0, 123);
    /// s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// let e = s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable); // left already
    /// ```
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.inner().leave_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface numbered
    /// `interface` (`IPV6_ADD_MEMBERSHIP`; 0 lets the kernel choose).
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports: `InvalidInput` when `multiaddr` is not a
    /// multicast address; `ENODEV` when the interface does not exist, or
    /// when the kernel has no route to choose one by.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// let s = verdant_net::UdpSocket::bind("[::1]:0").unwrap();
    /// let e = s.join_multicast_v6(&Ipv6Addr::LOCALHOST, 0).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput); // not a group
    /// ```
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.inner().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves the IPv6 multicast group `multiaddr` on the interface
    /// numbered `interface` (`IPV6_DROP_MEMBERSHIP`).
    ///
    /// # Errors
    ///
    /// As `setsockopt` reports: `AddrNotAvailable` when the socket is not a
    /// member of that group there.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::UdpSocket::bind("[::1]:0").unwrap();
    /// let group = "ff02::123".parse().unwrap();
    /// let e = s.leave_multicast_v6(&group, 0).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable); // never joined
    /// ```
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.inner().leave_multicast_v6(multiaddr, interface)
    }

    socket::close!(
        datagram,
        "\
use std::rc::Rc;
let s = Rc::new(verdant_net::UdpSocket::bind(\"127.0.0.1:0\").unwrap());
let s2 = s.clone();
let rx = verdant_runtime::spawn(move || s2.recv_from(&mut [0u8; 4]).map(|_| ()));
verdant_runtime::sleep(std::time::Duration::from_millis(5));
s.close();
assert_eq!(rx.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::NotConnected);"
    );
}

socket::socket_traits!(UdpSocket, std::net::UdpSocket);
