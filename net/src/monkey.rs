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
//! | `std::net::ToSocketAddrs` | [`net::ToSocketAddrs`]: names resolve on the blocking pool, not the hub's thread |
//! | `std::net::{SocketAddr, Shutdown, …}` | re-exported unchanged |
//! | `std::os::unix::net::{UnixListener, UnixStream, UnixDatagram, Incoming}` | [`os::unix::net::UnixListener`], [`os::unix::net::UnixStream`], [`os::unix::net::UnixDatagram`], [`os::unix::net::Incoming`] |
//! | `std::os::unix::net::SocketAddr` | re-exported unchanged |
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

/// Cooperative stand-ins for `std::net`'s sockets, and its plain types.
pub mod net {
    pub use crate::dns::ToSocketAddrs;
    pub use crate::tcp::{Incoming, TcpListener, TcpStream};
    pub use crate::udp::UdpSocket;
    pub use std::net::{
        AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4,
        SocketAddrV6,
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
            pub use crate::unix::{Incoming, UnixDatagram, UnixListener, UnixStream};
            pub use std::os::unix::net::SocketAddr;
        }
    }
}
