//! The monkey layer: std-shaped cooperative replacements, in one place.
//!
//! gevent's `monkey.patch_all()` swaps blocking functions for cooperative
//! ones at run time. Rust binds names at compile time, so verdant "patches"
//! at the `use` level instead: import `thread` and `net` from here, and the
//! rest of the program reads exactly like its std original while every
//! blocking point switches greenlets.
//!
//! | std | here |
//! |---|---|
//! | `std::thread::sleep` | [`thread::sleep`] (cooperative) |
//! | `std::thread::yield_now` | [`thread::yield_now`] (lets other greenlets run) |
//! | `std::net::{TcpListener, TcpStream, UdpSocket}` | [`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`] |
//! | `std::net::{SocketAddr, Shutdown, ToSocketAddrs, …}` | re-exported unchanged |
//! | `std::os::unix::net::{UnixListener, UnixStream, UnixDatagram, Incoming}` | [`os::unix::net::UnixListener`], [`os::unix::net::UnixStream`], [`os::unix::net::UnixDatagram`], [`os::unix::net::Incoming`] |
//! | `std::os::unix::net::SocketAddr` | re-exported unchanged |
//!
//! `net::ToSocketAddrs` is std's own trait, so code that implements it or
//! calls `to_socket_addrs` compiles unchanged (a host name is then looked up
//! on the calling thread, as in std). The sockets' address-taking calls
//! take verdant's [`Resolve`](crate::Resolve) instead, implemented for the
//! same types, which looks host names up on the blocking pool. The one
//! edit a port may need: a value of a type that implements only std's
//! trait (a generic `A: ToSocketAddrs`, or a type of your own) is passed as
//! `addr.to_socket_addrs()?.collect::<Vec<_>>()`.
//!
//! The Unix-domain sockets keep std's path, `os::unix::net`, rather than
//! joining `net`: a `use std::os::unix::net::UnixStream;` becomes
//! `use verdant::net::monkey::os::unix::net::UnixStream;` and nothing else
//! changes.
//!
//! Called outside any spawned greenlet these still work: from `main` they
//! wait in the hub (running other greenlets meanwhile), exactly as gevent's
//! patched calls do in the main greenlet.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use verdant_net::monkey::thread; // was: use std::thread;
//!
//! let t = Instant::now();
//! let a = verdant_runtime::spawn(|| thread::sleep(Duration::from_millis(30)));
//! let b = verdant_runtime::spawn(|| thread::sleep(Duration::from_millis(30)));
//! verdant_runtime::joinall([&a, &b]).unwrap();
//! assert!(t.elapsed() < Duration::from_millis(55)); // slept side by side
//! ```

/// Cooperative stand-ins for `std::thread`'s blocking functions.
pub mod thread {
    pub use verdant_runtime::{sleep, yield_now};
}

/// Cooperative stand-ins for `std::net`'s sockets, and its plain types
/// (`ToSocketAddrs` among them: std's own trait, see the
/// [module docs](super)).
///
/// ```
/// use std::io::{Read, Write};
/// // was: use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
/// use verdant_net::monkey::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
///
/// let l = TcpListener::bind("127.0.0.1:0").unwrap();
/// let port = l.local_addr().unwrap().port();
/// // std's trait, as before the swap.
/// let addr: SocketAddr = ("127.0.0.1", port).to_socket_addrs().unwrap().next().unwrap();
/// let server = verdant_runtime::spawn(move || {
///     let (mut conn, _) = l.accept().unwrap();
///     conn.write_all(b"hi").unwrap();
/// });
/// let mut s = TcpStream::connect(addr).unwrap();
/// let mut got = String::new();
/// s.read_to_string(&mut got).unwrap();
/// assert_eq!(got, "hi");
/// server.join().unwrap();
/// ```
pub mod net {
    pub use crate::tcp::{Incoming, TcpListener, TcpStream};
    pub use crate::udp::UdpSocket;
    pub use std::net::{
        AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4,
        SocketAddrV6, ToSocketAddrs,
    };
}

/// Cooperative stand-ins for `std::os`'s platform-specific sockets.
pub mod os {
    /// Unix-specific parts of `std::os`.
    pub mod unix {
        /// Cooperative stand-ins for `std::os::unix::net`'s sockets, and its
        /// plain address type.
        ///
        /// ```
        /// use std::io::{Read, Write};
        /// use verdant_net::monkey::os::unix::net::UnixStream; // was: std::os::unix::net
        ///
        /// let (mut a, mut b) = UnixStream::pair().unwrap();
        /// let echo = verdant_runtime::spawn(move || {
        ///     let mut buf = [0u8; 4];
        ///     b.read_exact(&mut buf).unwrap();
        ///     b.write_all(&buf).unwrap();
        /// });
        /// a.write_all(b"ping").unwrap();
        /// let mut reply = [0u8; 4];
        /// a.read_exact(&mut reply).unwrap();
        /// assert_eq!(&reply, b"ping");
        /// echo.join().unwrap();
        /// ```
        pub mod net {
            pub use crate::unix::{
                UnixDatagram, UnixIncoming as Incoming, UnixListener, UnixStream,
            };
            pub use std::os::unix::net::SocketAddr;
        }
    }
}
