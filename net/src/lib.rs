//! verdant's std-shaped cooperative networking layer and the `sleep` shim.
//!
//! Change `use std::net::TcpStream` to `use verdant::net::TcpStream` and the
//! same blocking-style code parks only its own greenlet while it waits: the
//! hub runs the others meanwhile.
//!
//! * [`TcpListener`], [`TcpStream`]: see [TCP](#tcp) for how they work and
//!   what they add to std's (a `close` that wakes waiters, whole-call deadlines
//!   for `write_all`/`read_exact`).
//! * [`TcpStream::recv_buf`] and [`UnixStream::recv_buf`]: gevent's
//!   `data = conn.recv(n)`, in a buffer taken from a per-thread cache only
//!   once data has arrived ([`RecvBuf`], see [below](#recv_buf-and-recvbuf)).
//! * [`StreamServer`]: gevent's `StreamServer`: an accept loop that runs a
//!   handler per connection in a greenlet of its own, with `TCP_NODELAY`,
//!   a connection bound, timeouts, `SO_REUSEPORT` for a server per hub, and
//!   a graceful [`stop`](StreamServer::stop).
//! * [`UdpSocket`]: see [UDP](#udp).
//! * [`UnixListener`], [`UnixStream`], [`UnixDatagram`]: Unix-domain sockets
//!   shaped like `std::os::unix::net`, see
//!   [Unix-domain sockets](#unix-domain-sockets) (their `incoming()`
//!   iterator is [`UnixIncoming`], since [`Incoming`] is TCP's).
//! * [`Resolve`], [`lookup_host`]: name resolution on the blocking pool, so
//!   a slow DNS server never stalls the hub ([below](#name-resolution)). std's
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
//! # Threads
//!
//! A socket belongs to the hub of the thread that made it: its readiness is
//! watched by that hub's reactor, and the greenlets waiting on it are that
//! hub's. So every socket type is `!Send` and `!Sync`, and moving one into
//! `std::thread::spawn` fails to compile with "`*mut ()` cannot be sent
//! between threads safely" (the marker in its registration). To move a
//! socket to another hub, hand over the plain socket instead:
//! `into_std()` (or `OwnedFd::from`) here, send it, `from_std()` (or
//! `From<OwnedFd>`) on the other hub's thread, through
//! [`Remote::post`](verdant_runtime::Remote::post) or any channel. Only the
//! handle moves; a greenlet never does. To use every core with a server,
//! run a [`StreamServer`] per hub with `reuse_port` (see
//! [`verdant_runtime::hubs`]).
//!
//! ```compile_fail
//! let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
//! std::thread::spawn(move || l.accept()); // `*mut ()` cannot be sent
//! ```
//!
//! ```
//! let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let std_listener = l.into_std(); // plain data: Send
//! std::thread::spawn(move || {
//!     let l = verdant_net::TcpListener::from_std(std_listener).unwrap();
//!     assert!(l.local_addr().is_ok()); // this thread's hub watches it now
//! })
//! .join()
//! .unwrap();
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
//!
//! # TCP
//!
//! Each socket is a `std::net` socket in non-blocking mode plus a reactor
//! [`Registration`](verdant_runtime::io::Registration). An operation is
//! tried at once; when it would block, the calling greenlet parks until the
//! socket is ready and the operation is retried, while the hub runs other
//! greenlets. Code that waits outside any
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
//!   A timeout expires as std's does, with `EAGAIN`
//!   (`ErrorKind::WouldBlock`; see [the crate docs](crate#timeouts)), and
//!   a `write_all` that expires part-way says how much it wrote.
//! * The descriptors are always in non-blocking mode, including the one
//!   [`IntoRawFd::into_raw_fd`](std::os::fd::IntoRawFd::into_raw_fd) hands back.
//! * `write_vectored` gathers with `sendmsg(…, MSG_NOSIGNAL)`, where std's
//!   uses `writev`, which raises `SIGPIPE` at a closed peer in a process
//!   that does not ignore it; like every write here, it reports
//!   `BrokenPipe` instead. `read_vectored` scatters (`readv`), as std's.
//!
//! **`TCP_NODELAY`.** [`TcpStream::connect`] and [`TcpListener::accept`]
//! leave Nagle's algorithm on, as std (and gevent's sockets) do, so that
//! code ported by swapping its `use` lines sends the same segments; a
//! [`StreamServer`] turns it off on the connections it accepts, as Go does
//! for every connection. Measured with the `echo_load` bench (100
//! connections, a verdant echo server with and without it, 3 repetitions):
//! 64-byte messages 64,131 against 43,289 requests/s (p99 5.9 against
//! 9.1 ms); 16 KiB messages read 16 KiB at a time, even (24,106 against
//! 23,183); 16 KiB messages read 1 KiB at a time, as the seed's echo
//! server does, 5,767 against 2,236, with a 44 ms median against 16 ms:
//! each partial write waits for the client's delayed ACK. Request/response
//! protocols want it off: call `set_nodelay(true)` or use `StreamServer`.
//!
//! # UDP
//!
//! Receiving parks the calling greenlet until a datagram arrives; sending
//! parks only while the socket's send buffer is full. As for TCP, read and
//! write timeouts expire as std's do on Linux, with `EAGAIN`
//! (`ErrorKind::WouldBlock`, see [the crate docs](crate#timeouts)),
//! [`UdpSocket::close`]
//! wakes a blocked greenlet with `ErrorKind::NotConnected`, and a second
//! greenlet receiving on the same socket while one already waits gets
//! `ErrorKind::ResourceBusy` (see [`verdant_runtime::io`]).
//!
//! # Unix-domain sockets
//!
//! [`UnixDatagram`], shaped like `std::os::unix::net`.
//!
//! They work exactly as the TCP and UDP types do (see [TCP](#tcp)):
//! each is a std socket in non-blocking mode plus a reactor
//! [`Registration`](verdant_runtime::io::Registration); an operation that
//! would block parks only the calling greenlet until the socket is ready,
//! and code outside any spawned greenlet (in `main`, or on a plain thread)
//! waits in the hub, running the other greenlets meanwhile.
//!
//! Differences from `std::os::unix::net`:
//! * Additions, as for TCP: `close` (also on a shared reference) wakes a
//!   greenlet waiting on the socket with `ErrorKind::NotConnected` at once;
//!   a second greenlet waiting to read (or to write, or to accept) on one
//!   socket while another already waits gets `ErrorKind::ResourceBusy`;
//!   `write_all`/`read_exact` apply the timeout to the whole call, as a
//!   deadline. Timeouts expire as std's do on Linux, with `EAGAIN`
//!   (`ErrorKind::WouldBlock`; see [the crate docs](crate#timeouts)),
//!   `send_to` (which pauses and retries, below) included.
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
//! * `read_vectored` scatters (`readv`) and `write_vectored` gathers, as
//!   std's do, but the write is a `sendmsg(…, MSG_NOSIGNAL)` rather than
//!   std's `writev`, which cannot be told `MSG_NOSIGNAL`: a process whose
//!   `SIGPIPE` is not ignored would die writing to a closed peer. Plain
//!   writes go through std's `send(…, MSG_NOSIGNAL)`; all report
//!   `BrokenPipe` instead.
//!
//! Dropping a listener or a bound datagram socket does not remove its path
//! from the file system (as in std): remove it yourself.
//!
//! ```
//! use std::io::{Read, Write};
//! use verdant_net::{UnixListener, UnixStream};
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
//!
//! # `recv_buf` and `RecvBuf`
//!
//! thread's buffer cache.
//!
//! gevent's `data = conn.recv(1024)` hands back a fresh bytes object, so a
//! connection holds no buffer while it waits for its peer. verdant's
//! [`TcpStream::recv_buf`](crate::TcpStream::recv_buf) and
//! [`UnixStream::recv_buf`](crate::UnixStream::recv_buf) do the same: the buffer is
//! taken only once the socket is readable, and goes back to a per-thread
//! cache when the [`RecvBuf`] is dropped. The cache hands out the buffer
//! returned last (LIFO), so with many connections the few buffers in use
//! stay in the CPU cache. A buffer per connection, read into while the
//! connection sleeps, is cold by the time its data arrives: with 1,000
//! connections and 16 KiB messages that costs about 1 µs of server CPU per
//! request (`cargo bench --bench echo_load`, the `verdant` row against
//! `verdant-recv`).
//!
//! The cache keeps at most [`RecvBuf::CACHE_BYTES`] bytes of idle buffers; a `recv_buf`
//! reads at most [`RecvBuf::MAX_LEN`] bytes at a time.
//!
//! # Name resolution
//!
//! std's [`ToSocketAddrs`](std::net::ToSocketAddrs) calls `getaddrinfo`,
//! which blocks the OS thread, and with it every greenlet of the hub, for as
//! long as a DNS server takes to answer (seconds, when one is down). verdant's
//! [`Resolve`] parses literal addresses at once and sends host names to the
//! blocking pool ([`spawn_blocking`](verdant_runtime::spawn_blocking)); the
//! asking greenlet parks meanwhile and the hub keeps running the others.
//! Every address-taking call of `verdant::net` (`connect`, `bind`,
//! `send_to`…) takes this trait; it is implemented for the same types as
//! std's, so `TcpStream::connect("localhost:80")` reads the same.
//!
//! std's trait itself is left alone: `std::net::ToSocketAddrs` (also
//! re-exported, unchanged, as `monkey::net::ToSocketAddrs`) still works, and
//! code that implements or calls it compiles as before. Its
//! `to_socket_addrs` is std's: a host name blocks the calling thread there.
//! To pass a type that implements only std's trait to a `verdant::net`
//! call, collect its addresses into a `Vec<SocketAddr>` (see [`Resolve`]).
//!
//! ```
//! use verdant_net::{lookup_host, Resolve};
//!
//! let addrs = lookup_host("localhost:8080").unwrap();
//! assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
//! // Literals never leave the thread.
//! assert_eq!(("127.0.0.1", 80).resolve().unwrap(), ["127.0.0.1:80".parse().unwrap()]);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod buf;
mod dns;
pub mod monkey;
pub mod server;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use buf::RecvBuf;
pub use dns::{lookup_host, Resolve};
pub use server::{
    HubsListener, Spread, StreamServer, StreamServerBuilder, DEFAULT_BACKLOG,
    DEFAULT_MAX_CONNECTIONS,
};
pub use tcp::{Incoming, PartialWrite, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};
pub use verdant_runtime::sleep;
