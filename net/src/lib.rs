//! verdant's std-shaped cooperative networking layer and the `sleep` shim.
//!
//! Change `use std::net::TcpStream` to `use verdant::net::TcpStream` and the
//! same blocking-style code parks only its own greenlet while it waits: the
//! hub runs the others meanwhile.
//!
//! * [`TcpListener`], [`TcpStream`]: see [`tcp`] for how they work and what
//!   they add to std's (a `close` that wakes waiters, whole-call deadlines
//!   for `write_all`/`read_exact`).
//! * [`TcpStream::recv_buf`] and [`UnixStream::recv_buf`]: gevent's
//!   `data = conn.recv(n)`, in a buffer taken from a per-thread pool only
//!   once data has arrived ([`RecvBuf`], see [`buf`]).
//! * [`UdpSocket`]: see [`udp`].
//! * [`UnixListener`], [`UnixStream`], [`UnixDatagram`]: Unix-domain sockets
//!   shaped like `std::os::unix::net`, see [`unix`] (its `Incoming` stays
//!   there, as [`unix::Incoming`], since [`Incoming`] is TCP's).
//! * [`Resolve`], [`lookup_host`]: name resolution on the blocking pool, so
//!   a slow DNS server never stalls the hub ([`dns`]). std's
//!   `ToSocketAddrs` is left as it is.
//! * [`sleep`]: the cooperative `std::thread::sleep`.
//! * [`monkey`]: all of these under std's module names, so a program
//!   "patched" at the `use` level reads like its std original.
//!
//! ```
//! use std::io::{Read, Write};
//! use verdant_net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
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
//!         verdant_runtime::spawn(move || {
//!             let mut s = TcpStream::connect(addr).unwrap();
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
//! ```
//!
//! # Timeouts
//!
//! A socket's read and write timeouts (`set_read_timeout`,
//! `set_write_timeout`) expire as std's do on Linux: with
//! `io::Error::from_raw_os_error(libc::EAGAIN)`, of kind
//! `ErrorKind::WouldBlock`, so that code ported by swapping its `use` lines
//! handles them unchanged. `read_exact` and `write_all` take the timeout as
//! a deadline for the whole call (gevent's `sendall`); a `write_all` that
//! expires part-way fails with kind `WouldBlock` too and says how much it
//! wrote ([`PartialWrite`], whose `error` is the `EAGAIN`).
//!
//! Only those expiries are reported so. An error the OS reports, such as
//! `ETIMEDOUT` for a connection that timed out, comes back as the OS gave
//! it; and verdant's own deadline APIs keep `ErrorKind::TimedOut`:
//! [`TcpStream::connect_timeout`] (as std's) and the waits of the reactor's
//! [`Registration`](verdant_runtime::io::Registration).
//!
//! ```
//! use std::io::{ErrorKind, Read};
//! use std::time::Duration;
//! use verdant_net::{TcpListener, TcpStream};
//!
//! let l = TcpListener::bind("127.0.0.1:0").unwrap();
//! let mut s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
//! s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
//! let err = s.read(&mut [0u8; 8]).unwrap_err(); // nothing was sent
//! assert_eq!(err.kind(), ErrorKind::WouldBlock);
//! assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod buf;
pub mod dns;
pub mod monkey;
mod socket;
pub mod tcp;
pub mod udp;
pub mod unix;

pub use buf::RecvBuf;
pub use dns::{lookup_host, Resolve};
pub use tcp::{Incoming, PartialWrite, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
pub use verdant_runtime::sleep;
