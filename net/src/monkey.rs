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
//! | `std::net::{SocketAddr, Shutdown, …}` | re-exported unchanged |
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
    pub use crate::tcp::{Incoming, TcpListener, TcpStream};
    pub use crate::udp::UdpSocket;
    pub use std::net::{
        AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4,
        SocketAddrV6, ToSocketAddrs,
    };
}
