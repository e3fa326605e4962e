//! The private core that every socket type of this crate wraps.
//!
//! [`Socket<S>`] is a std socket `S` in non-blocking mode, its reactor
//! [`Registration`] and its read and write timeouts: the part of
//! `TcpListener`, `TcpStream`, `UdpSocket`, `UnixListener`, `UnixStream` and
//! `UnixDatagram` that does not depend on the protocol, as mio's `IoSource`
//! and std's `sys::net::Socket` are for theirs. Written once here: wrapping
//! a std socket, the waits and their deadlines, the stream reads and writes,
//! `close`, the accept loop, `Debug` and the descriptor conversions.
//!
//! The macros at the end generate the public methods that the types share,
//! and the ones that only pass through to the std socket, with their docs
//! (as std generates its integer methods): each type supplies the examples
//! that show the method on that type.

use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use verdant_runtime::io::{is_deadline_error, Direction, Registration};

use crate::buf::RecvBuf;
use crate::tcp::PartialWrite;

/// What the core needs of a std socket type (implemented below for the six
/// that this crate wraps).
pub(crate) trait StdSocket: AsFd + AsRawFd + From<OwnedFd> + Into<OwnedFd> + Sized {
    /// Whether a read or write that moves fewer bytes than asked proves the
    /// socket drained (or full), so that
    /// [`Registration::io_stream`] may clear its readiness at once. True
    /// for TCP only: a Unix stream read also stops short at a message that
    /// carries credentials or descriptors, which a peer may send.
    const SHORT_IO_PROVES_NOT_READY: bool = false;

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;

    fn try_clone(&self) -> io::Result<Self>;

    /// Adds the socket's addresses to its `Debug` output.
    fn debug_addrs(&self, d: &mut fmt::DebugStruct<'_, '_>);
}

macro_rules! std_socket {
    ($Std:ty, short_io: $short:expr, debug: [$($field:literal: $addr:ident),*]) => {
        impl StdSocket for $Std {
            const SHORT_IO_PROVES_NOT_READY: bool = $short;

            fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
                <$Std>::set_nonblocking(self, nonblocking)
            }

            fn try_clone(&self) -> io::Result<Self> {
                <$Std>::try_clone(self)
            }

            fn debug_addrs(&self, d: &mut fmt::DebugStruct<'_, '_>) {
                $(d.field($field, &self.$addr().ok());)*
            }
        }
    };
}

std_socket!(std::net::TcpListener, short_io: false, debug: ["local": local_addr]);
std_socket!(std::net::TcpStream, short_io: true, debug: ["local": local_addr, "peer": peer_addr]);
std_socket!(std::net::UdpSocket, short_io: false, debug: ["local": local_addr, "peer": peer_addr]);
std_socket!(std::os::unix::net::UnixListener, short_io: false, debug: ["local": local_addr]);
std_socket!(
    std::os::unix::net::UnixStream,
    short_io: false,
    debug: ["local": local_addr, "peer": peer_addr]
);
std_socket!(
    std::os::unix::net::UnixDatagram,
    short_io: false,
    debug: ["local": local_addr, "peer": peer_addr]
);

/// A std socket in non-blocking mode, registered with this thread's hub.
pub(crate) struct Socket<S> {
    // Declared first: dropped (deregistered) before the socket closes.
    reg: Registration,
    inner: S,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

/// The deadline `timeout` from now (`None`: no deadline, and no clock read).
#[inline]
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(verdant_runtime::io::deadline_after)
}

/// std's rule for socket timeouts: `Some(Duration::ZERO)` is `InvalidInput`.
pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// The error that a socket's read or write timeout (`set_read_timeout`,
/// `set_write_timeout`) expires with: std's on Linux, where those timeouts
/// are `SO_RCVTIMEO`/`SO_SNDTIMEO` and an expired call fails with `EAGAIN`
/// (kind `WouldBlock`), so that code ported from std sees the same error.
fn timeout_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

/// `e`, unless it is the expiry of a socket timeout's deadline (the
/// runtime's [`deadline_error`](verdant_runtime::io::deadline_error)),
/// which becomes [`timeout_error`]. Any other error, an OS `ETIMEDOUT`
/// among them, passes unchanged. Only ever called on the error path.
#[cold]
#[inline(never)]
pub(crate) fn std_timeout(e: io::Error) -> io::Error {
    if is_deadline_error(&e) {
        timeout_error()
    } else {
        e
    }
}

/// The first pause of `accept` once the process runs out of descriptors;
/// it doubles up to [`ACCEPT_RETRY_MAX`].
const ACCEPT_RETRY_MIN: Duration = Duration::from_millis(10);

/// The longest pause between two accepts while the process is out of
/// descriptors: queued connections are taken within about this long of
/// descriptors coming free, at a cost of 20 failed `accept` calls a second
/// while it lasts.
const ACCEPT_RETRY_MAX: Duration = Duration::from_millis(50);

/// Errors after which `accept` backs off and retries instead of waiting for
/// readiness: with edge-triggered epoll, a listener whose backlog stays
/// full is never reported readable again, so a wait would last forever.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl<S: StdSocket> Socket<S> {
    /// Switches `inner` to non-blocking mode and registers it; no timeouts.
    pub(crate) fn from_std(inner: S) -> io::Result<Socket<S>> {
        inner.set_nonblocking(true)?;
        let reg = Registration::new(inner.as_raw_fd())?;
        Ok(Socket {
            reg,
            inner,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// The std socket (in non-blocking mode: call only what never waits, or
    /// wrap it in [`Registration::io`]).
    #[inline]
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    #[inline]
    pub(crate) fn reg(&self) -> &Registration {
        &self.reg
    }

    /// A duplicated descriptor with a registration of its own; no timeouts.
    pub(crate) fn try_clone(&self) -> io::Result<Socket<S>> {
        Socket::from_std(self.inner.try_clone()?)
    }

    /// Deregisters the socket and hands back the std socket (still in
    /// non-blocking mode).
    pub(crate) fn into_std(self) -> S {
        let Socket { reg, inner, .. } = self;
        drop(reg);
        inner
    }

    /// Wakes every waiter with `NotConnected`; later operations fail the
    /// same way. The descriptor stays open until the socket is dropped.
    pub(crate) fn close(&self) {
        self.reg.close();
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.write_timeout.set(timeout);
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// The deadline of a read that starts now.
    #[inline]
    pub(crate) fn read_deadline(&self) -> Option<Instant> {
        deadline(self.read_timeout.get())
    }

    /// The deadline of a write that starts now.
    #[inline]
    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        deadline(self.write_timeout.get())
    }

    /// Runs `op` (on `WouldBlock`, parks until readable) against the read
    /// timeout, which expires as std's does ([`timeout_error`]).
    #[inline]
    pub(crate) fn read_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Read, self.read_deadline(), op)
            .map_err(std_timeout)
    }

    /// Runs `op` (on `WouldBlock`, parks until writable) against the write
    /// timeout, which expires as std's does ([`timeout_error`]).
    #[inline]
    pub(crate) fn write_op<R>(&self, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io(Direction::Write, self.write_deadline(), op)
            .map_err(std_timeout)
    }

    /// Accepts a connection with `accept` and wraps it. When the process
    /// runs out of descriptors (or kernel memory) it backs off (10 ms,
    /// doubling up to 50 ms) and tries again, rather than wait for a
    /// readiness event that edge-triggered epoll will not send again;
    /// `ECONNABORTED` (a connection reset while queued) is skipped.
    pub(crate) fn accept<T: StdSocket, A>(
        &self,
        accept: impl Fn(&S) -> io::Result<(T, A)>,
    ) -> io::Result<(Socket<T>, A)> {
        let (s, addr) = self.accept_std(accept)?;
        Ok((Socket::from_std(s)?, addr))
    }

    /// [`accept`](Self::accept) without the wrapping: the std socket,
    /// registered nowhere yet, for a hand-off to another hub.
    pub(crate) fn accept_std<T, A>(
        &self,
        accept: impl Fn(&S) -> io::Result<(T, A)>,
    ) -> io::Result<(T, A)> {
        let mut backoff = ACCEPT_RETRY_MIN;
        loop {
            match self.reg.io(Direction::Read, None, || accept(&self.inner)) {
                Ok(accepted) => return Ok(accepted),
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) if is_resource_exhaustion(&e) => {
                    verdant_runtime::sleep(backoff);
                    backoff = (backoff * 2).min(ACCEPT_RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `Debug` for the socket type `name`: its descriptor and addresses.
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(name);
        d.field("fd", &self.inner.as_raw_fd());
        self.inner.debug_addrs(&mut d);
        d.finish()
    }
}

/// Byte streams (TCP and Unix stream sockets).
impl<S: StdSocket> Socket<S>
where
    for<'a> &'a S: Read + Write,
{
    /// Runs `op`, which asks to move `len` bytes, until it does not return
    /// `WouldBlock`: through [`Registration::io_stream`] where a short result
    /// proves the socket no longer ready, else through
    /// [`Registration::io`]. A `deadline` (from a socket timeout) expires
    /// as std's timeouts do ([`timeout_error`]).
    ///
    /// A call of no bytes always goes through `io`, which tries it at once
    /// (`io_stream` would first wait for a readiness it has cleared): the
    /// kernel completes an empty write at once even on a full socket, as
    /// std's does, and fails an empty read with `EAGAIN` until data is
    /// queued, so that one still waits, as std's blocking read does.
    #[inline]
    fn stream_io(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let r = if S::SHORT_IO_PROVES_NOT_READY && len != 0 {
            self.reg.io_stream(dir, deadline, len, op)
        } else {
            self.reg.io(dir, deadline, op)
        };
        r.map_err(std_timeout)
    }

    /// A read that waits until `deadline` at most.
    #[inline]
    fn read_until(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.stream_io(Direction::Read, deadline, buf.len(), || {
            (&self.inner).read(buf)
        })
    }

    /// A write that waits until `deadline` at most. std writes with
    /// `send(MSG_NOSIGNAL)`: a closed peer is `EPIPE`, not `SIGPIPE`.
    #[inline]
    fn write_until(&self, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.stream_io(Direction::Write, deadline, buf.len(), || {
            (&self.inner).write(buf)
        })
    }

    /// `Read::read`, against the read timeout.
    #[inline]
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_until(buf, self.read_deadline())
    }

    /// `Write::write`, against the write timeout.
    #[inline]
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_until(buf, self.write_deadline())
    }

    /// `Read::read_vectored` (`readv`), against the read timeout.
    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        // `readv` takes the first UIO_MAXIOV buffers (std passes no more):
        // filling those, and no more, is not proof that the socket drained.
        let len = iov_len(bufs.iter().map(|b| b.len()));
        self.stream_io(Direction::Read, self.read_deadline(), len, || {
            (&self.inner).read_vectored(bufs)
        })
    }

    /// `Write::write_vectored`, against the write timeout: one `sendmsg`
    /// with `MSG_NOSIGNAL` over the first `UIO_MAXIOV` buffers (std's
    /// `writev` cannot be told `MSG_NOSIGNAL`, and raises `SIGPIPE` at a
    /// closed peer in a process that does not ignore it).
    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // More would be EMSGSIZE; std's `writev` passes no more either.
        let bufs = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
        let len = iov_len(bufs.iter().map(|b| b.len()));
        let sock = socket2::SockRef::from(&self.inner);
        self.stream_io(Direction::Write, self.write_deadline(), len, || {
            sock.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    /// `Read::read_exact`, the read timeout a deadline for the whole call
    /// (its expiry std's `EAGAIN`).
    pub(crate) fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let deadline = self.read_deadline();
        read_exact_with(buf, |b| self.read_until(b, deadline))
    }

    /// `Write::write_all`, the write timeout a deadline for the whole call.
    /// Its expiry is std's `EAGAIN`; after part of the buffer went out, the
    /// error (of kind `WouldBlock`) carries a [`PartialWrite`] whose `error`
    /// is that `EAGAIN`.
    pub(crate) fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let deadline = self.write_deadline();
        write_all_with(buf, |b| self.write_until(b, deadline))
    }

    /// Up to `max` bytes in a buffer lent by this thread's buffer cache, taken only
    /// once the socket is readable (see the crate docs on `recv_buf`).
    #[inline]
    pub(crate) fn recv_buf(&self, max: usize) -> io::Result<RecvBuf> {
        let Some(len) = RecvBuf::size_for(max) else {
            return Ok(RecvBuf::new());
        };
        let mut got = RecvBuf::new();
        self.stream_io(Direction::Read, self.read_deadline(), len, || {
            got = RecvBuf::fill(len, |b| (&self.inner).read(b))?;
            Ok(got.len())
        })?;
        Ok(got)
    }
}

/// The bytes that one `readv` or `sendmsg` can move into or out of buffers
/// of lengths `lens`: Linux takes the first `UIO_MAXIOV` of them at most.
fn iov_len(lens: impl Iterator<Item = usize>) -> usize {
    lens.take(libc::UIO_MAXIOV as usize)
        .fold(0, usize::saturating_add)
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

// ---------------------------------------------------------------------------
// The generated parts of the public types. Each type is a struct with one
// field, `sock: Socket<Std>`; the macros are invoked inside its `impl` (or,
// for trait impls, beside it). Examples are `&'static str` literals joined
// with `concat!`: lines that start with `# ` are compiled but not shown.
// ---------------------------------------------------------------------------

/// `Debug` and the descriptor traits (`AsFd`, `AsRawFd`, `IntoRawFd`,
/// `From<OwnedFd>`, `From<$T> for OwnedFd`) of the socket type `$T`, which
/// wraps a `$Std`.
macro_rules! socket_traits {
    ($T:ident, $Std:ty) => {
        impl ::std::fmt::Debug for $T {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.sock.fmt_debug(stringify!($T), f)
            }
        }

        impl ::std::os::fd::AsFd for $T {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                ::std::os::fd::AsFd::as_fd(self.sock.inner())
            }
        }

        impl ::std::os::fd::AsRawFd for $T {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                ::std::os::fd::AsRawFd::as_raw_fd(self.sock.inner())
            }
        }

        impl ::std::os::fd::IntoRawFd for $T {
            /// Deregisters the socket and hands back its descriptor (still
            /// in non-blocking mode).
            fn into_raw_fd(self) -> ::std::os::fd::RawFd {
                ::std::os::fd::IntoRawFd::into_raw_fd(::std::os::fd::OwnedFd::from(self))
            }
        }

        impl From<::std::os::fd::OwnedFd> for $T {
            /// Adopts a socket descriptor.
            ///
            /// # Panics
            ///
            /// Panics when the descriptor cannot be made non-blocking or
            /// registered with the hub (use `from_std` to handle that).
            fn from(fd: ::std::os::fd::OwnedFd) -> $T {
                match $T::from_std(<$Std>::from(fd)) {
                    Ok(s) => s,
                    Err(e) => panic!("verdant: cannot adopt the socket: {e}"),
                }
            }
        }

        impl From<$T> for ::std::os::fd::OwnedFd {
            /// Deregisters the socket and hands back its descriptor (still
            /// in non-blocking mode).
            fn from(s: $T) -> ::std::os::fd::OwnedFd {
                s.sock.into_std().into()
            }
        }
    };
}

/// `from_std`, `try_clone`, `local_addr` and `take_error`: every socket
/// type has them. `$Std` is the std type wrapped, `$Addr` its address type;
/// the rest are each method's example.
macro_rules! common_methods {
    (
        std: $Std:ty,
        addr: $Addr:ty,
        from_std: $from_std:literal,
        try_clone: $try_clone:literal,
        local_addr: $local_addr:literal,
        take_error: $take_error:literal,
        into_std: $into_std:literal $(,)?
    ) => {
        /// Deregisters the socket from this hub and hands back the std
        /// socket, still in non-blocking mode (`set_nonblocking(false)`
        /// makes it blocking again). The std socket is `Send`: this is how
        /// a socket moves to another hub's thread, to be adopted there with
        /// `from_std` (see [Threads](crate#threads)). Data already queued
        /// in the kernel stays queued.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $into_std, "\n```")]
        pub fn into_std(self) -> $Std {
            self.sock.into_std()
        }

        /// Wraps a std socket: switches it to non-blocking mode (verdant's
        /// sockets always are, underneath) and registers it with this
        /// thread's hub.
        ///
        /// # Errors
        ///
        /// When the socket cannot be made non-blocking or registered with
        /// the hub (`fcntl` or `epoll_ctl` fails).
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $from_std, "\n```")]
        pub fn from_std(inner: $Std) -> ::std::io::Result<Self> {
            Ok(Self {
                sock: $crate::socket::Socket::from_std(inner)?,
            })
        }

        /// A second handle to the same socket: a duplicated descriptor with
        /// a registration of its own (and timeouts of its own, unset).
        ///
        /// # Errors
        ///
        /// As `dup` or the registration report (`EMFILE` when the process
        /// is out of descriptors).
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $try_clone, "\n```")]
        pub fn try_clone(&self) -> ::std::io::Result<Self> {
            Ok(Self {
                sock: self.sock.try_clone()?,
            })
        }

        /// The address this socket is bound to.
        ///
        /// # Errors
        ///
        /// As `getsockname` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $local_addr, "\n```")]
        pub fn local_addr(&self) -> ::std::io::Result<$Addr> {
            self.sock.inner().local_addr()
        }

        /// Takes the pending socket error (`SO_ERROR`), if any, clearing it.
        ///
        /// # Errors
        ///
        /// As `getsockopt` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $take_error, "\n```")]
        pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
            self.sock.inner().take_error()
        }
    };
}

/// `peer_addr`: the sockets that connect.
macro_rules! peer_addr {
    ($Addr:ty, $example:literal) => {
        /// The address of the connected peer.
        ///
        /// # Errors
        ///
        /// `NotConnected` when there is none; as `getpeername` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn peer_addr(&self) -> ::std::io::Result<$Addr> {
            self.sock.inner().peer_addr()
        }
    };
}

/// `shutdown`: the sockets std gives one (streams, Unix datagrams).
macro_rules! shutdown {
    (stream, $example:literal) => {
        /// Shuts down the read half, the write half or both. Shutting down
        /// writing makes the peer read the end of the stream once it has
        /// read what came before; shutting down reading makes reads return
        /// `Ok(0)`, and wakes a greenlet blocked in one with it.
        ///
        /// # Errors
        ///
        /// As `shutdown` reports (`NotConnected` once the peer is gone).
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn shutdown(&self, how: ::std::net::Shutdown) -> ::std::io::Result<()> {
            self.sock.inner().shutdown(how)
        }
    };
    (datagram, $example:literal) => {
        /// Shuts down the read half, the write half or both: later sends
        /// fail with `BrokenPipe` once writing is shut down.
        ///
        /// Shutting down reading does not end a receive: Linux reports the
        /// end of data only to a receive that blocks its thread, and this
        /// socket's receives park the greenlet instead, so one keeps
        /// waiting for a datagram that cannot come. Use
        /// [`close`](Self::close) (or a read timeout) to end it.
        ///
        /// # Errors
        ///
        /// As `shutdown` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn shutdown(&self, how: ::std::net::Shutdown) -> ::std::io::Result<()> {
            self.sock.inner().shutdown(how)
        }
    };
}

/// `close`, in the three forms of listeners, streams and datagram sockets.
macro_rules! close {
    (listener, $example:literal) => {
        /// Wakes a greenlet blocked in `accept` on this listener with
        /// `ErrorKind::NotConnected`; later accepts fail the same way. The
        /// descriptor itself closes when the listener is dropped.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn close(&self) {
            self.sock.close();
        }
    };
    (stream, $example:literal) => {
        /// Wakes any greenlet blocked on this stream with
        /// `ErrorKind::NotConnected` and makes every later operation fail
        /// the same way; the peer sees the connection end (both halves are
        /// shut down). The descriptor closes when the stream is dropped, so
        /// its number cannot be reused under an operation still in flight.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn close(&self) {
            let _ = self.sock.inner().shutdown(::std::net::Shutdown::Both);
            self.sock.close();
        }
    };
    (datagram, $example:literal) => {
        /// Wakes any greenlet blocked on this socket with
        /// `ErrorKind::NotConnected` and makes every later operation fail
        /// the same way. The descriptor closes when the socket is dropped.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $example, "\n```")]
        pub fn close(&self) {
            self.sock.close();
        }
    };
}

/// The read and write timeouts, for streams (`stream`: a timeout also
/// bounds `read_exact` and `write_all` as a whole) and datagram sockets.
/// `$setup` makes a socket `s`; `$read_expiry` is an expression that waits
/// for data that never comes, `$write_example` a whole example of the write
/// timeout.
macro_rules! timeouts {
    (
        $kind:ident,
        setup: $setup:literal,
        read_expiry: $read_expiry:literal,
        write_example: $write_example:literal $(,)?
    ) => {
        #[doc = concat!(
                    "Sets how long a ",
                    $crate::socket::timeouts!(@read_word $kind),
                    " may wait (`None`: forever).",
                    $crate::socket::timeouts!(@read_note $kind),
                    $crate::socket::timeouts!(@expiry),
                )]
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        ///
        /// # Examples
        ///
        #[doc = concat!(
                    "```\nuse std::time::Duration;\n",
                    $setup,
                    "\ns.set_read_timeout(Some(Duration::from_millis(10))).unwrap();\n",
                    "let err = ", $read_expiry, ".unwrap_err();\n",
                    "// As std's on Linux: EAGAIN, of kind WouldBlock.\n",
                    "assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);\n",
                    "assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));\n",
                    "let zero = s.set_read_timeout(Some(Duration::ZERO)).unwrap_err();\n",
                    "assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);\n```",
                )]
        pub fn set_read_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.sock.set_read_timeout(timeout)
        }

        #[doc = concat!(
                    "Sets how long a ",
                    $crate::socket::timeouts!(@write_word $kind),
                    " may wait for room (`None`: forever).",
                    $crate::socket::timeouts!(@write_note $kind),
                    $crate::socket::timeouts!(@expiry),
                )]
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $write_example, "\n```")]
        pub fn set_write_timeout(
            &self,
            timeout: Option<::std::time::Duration>,
        ) -> ::std::io::Result<()> {
            self.sock.set_write_timeout(timeout)
        }

        /// The read timeout (see `set_read_timeout`).
        ///
        /// # Errors
        ///
        /// Never (the `Result` mirrors std).
        ///
        /// # Examples
        ///
        #[doc = concat!(
                    "```\nuse std::time::Duration;\n",
                    $setup,
                    "\nassert_eq!(s.read_timeout().unwrap(), None);\n",
                    "s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();\n",
                    "assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(1500)));\n",
                    "// A clone starts with no timeouts of its own.\n",
                    "assert_eq!(s.try_clone().unwrap().read_timeout().unwrap(), None);\n```",
                )]
        pub fn read_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            Ok(self.sock.read_timeout())
        }

        /// The write timeout (see `set_write_timeout`).
        ///
        /// # Errors
        ///
        /// Never (the `Result` mirrors std).
        ///
        /// # Examples
        ///
        #[doc = concat!(
                    "```\nuse std::time::Duration;\n",
                    $setup,
                    "\nassert_eq!(s.write_timeout().unwrap(), None);\n",
                    "s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();\n",
                    "assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(3)));\n",
                    "s.set_write_timeout(None).unwrap();\n",
                    "assert_eq!(s.write_timeout().unwrap(), None);\n```",
                )]
        pub fn write_timeout(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
            Ok(self.sock.write_timeout())
        }
    };
    (@read_word stream) => {
        "read"
    };
    (@read_word datagram) => {
        "receive"
    };
    (@write_word stream) => {
        "write"
    };
    (@write_word datagram) => {
        "send"
    };
    (@expiry) => {
        "\n\nAn expired wait fails as std's does on Linux, with \
         `io::Error::from_raw_os_error(libc::EAGAIN)`: its kind is \
         `ErrorKind::WouldBlock`, not `TimedOut`, so code ported from std \
         that checks for it behaves the same. Only the expiry of this \
         timeout is reported so: an error the OS reports (a connection that \
         timed out, `ETIMEDOUT`) comes back as the OS gave it, and verdant's \
         own deadline APIs keep `ErrorKind::TimedOut` \
         (`TcpStream::connect_timeout`, as in std, and the waits of \
         [`Registration`](verdant_runtime::io::Registration))."
    };
    (@read_note stream) => {
        "\n\nFor `read_exact` the timeout is a deadline for the whole call."
    };
    (@read_note datagram) => {
        ""
    };
    (@write_note stream) => {
        "\n\nFor `write_all` the timeout is a deadline for the whole call; one \
         that expires part-way fails with the same kind, `WouldBlock`, and \
         says how much it wrote (see [`PartialWrite`](crate::PartialWrite), \
         whose `error` is the `EAGAIN`)."
    };
    (@write_note datagram) => {
        ""
    };
}

/// A socket option's setter and getter that pass through to the std
/// socket: `$set`/`$get` of type `$Ty`, the option `$opt` (what it is:
/// `$what`). The example sets `$value` on the socket that `$setup` makes
/// (`s`) and reads it back.
macro_rules! sockopt {
    (
        $set:ident, $get:ident: $Ty:ty,
        $opt:literal, $what:literal,
        setup: $setup:literal,
        value: $value:literal $(,)?
    ) => {
        #[doc = concat!("Sets ", $what, " (`", $opt, "`).")]
        ///
        /// # Errors
        ///
        /// As `setsockopt` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!(
                    "```\n", $setup, "\n",
                    "s.", stringify!($set), "(", $value, ").unwrap();\n",
                    "assert_eq!(s.", stringify!($get), "().unwrap(), ", $value, ");\n```",
                )]
        pub fn $set(&self, value: $Ty) -> ::std::io::Result<()> {
            self.sock.inner().$set(value)
        }

        #[doc = concat!(
                    "Reads ", $what, " (`", $opt, "`): see [`", stringify!($set), "`](Self::",
                    stringify!($set), ")."
                )]
        ///
        /// # Errors
        ///
        /// As `getsockopt` reports.
        ///
        /// # Examples
        ///
        #[doc = concat!(
                    "```\n", $setup, "\n",
                    "s.", stringify!($set), "(", $value, ").unwrap();\n",
                    "assert_eq!(s.", stringify!($get), "().unwrap(), ", $value, ");\n```",
                )]
        pub fn $get(&self) -> ::std::io::Result<$Ty> {
            self.sock.inner().$get()
        }
    };
}

/// `accept` and `incoming` of the listener that accepts `$Stream`s with
/// peer addresses of type `$Addr`, and the `Incoming` iterator's type.
macro_rules! accept_methods {
    (
        stream: $Stream:ident,
        addr: $Addr:ty,
        accept: $accept:literal,
        incoming: $incoming:literal $(,)?
    ) => {
        /// Waits for a connection and returns it with the peer's address;
        /// only the calling greenlet parks meanwhile.
        ///
        /// When the process runs out of file descriptors (or kernel memory)
        /// it backs off (10 ms, doubling up to 50 ms) and tries again,
        /// rather than wait for a readiness event that edge-triggered epoll
        /// will not send again; a connection reset while it was queued
        /// (`ECONNABORTED`) is skipped.
        ///
        /// # Errors
        ///
        /// `NotConnected` if the listener is closed meanwhile,
        /// `ResourceBusy` if another greenlet already waits in `accept` on
        /// it, other accept errors as the OS reports them.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $accept, "\n```")]
        pub fn accept(&self) -> ::std::io::Result<($Stream, $Addr)> {
            let (sock, addr) = self.sock.accept(|l| l.accept())?;
            Ok(($Stream { sock }, addr))
        }

        /// An iterator over incoming connections: [`accept`](Self::accept)
        /// in a loop, without the peer addresses. It never ends by itself.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $incoming, "\n```")]
        pub fn incoming(&self) -> Incoming<'_> {
            Incoming { listener: self }
        }
    };
}

/// The `$Incoming` iterator of the listener `$Listener` (of `$Stream`s).
macro_rules! incoming_type {
    ($Incoming:ident, $Listener:ident, $Stream:ident) => {
        #[doc = concat!(
                            "The iterator returned by [`", stringify!($Listener), "::incoming`]: ",
                            "each item is the next connection, or the error of that `accept`."
                        )]
        #[derive(Debug)]
        pub struct $Incoming<'a> {
            listener: &'a $Listener,
        }

        impl Iterator for $Incoming<'_> {
            type Item = ::std::io::Result<$Stream>;

            fn next(&mut self) -> Option<::std::io::Result<$Stream>> {
                Some(self.listener.accept().map(|(s, _)| s))
            }
        }
    };
}

/// `Read` and `Write` for the stream type `$T` and for `&$T`, through the
/// core (a timeout bounds `read_exact` and `write_all` as a whole).
macro_rules! stream_io {
    ($T:ident) => {
        $crate::socket::stream_io!(@impl $T);
        $crate::socket::stream_io!(@impl &$T);
    };
    (@impl $($T:tt)+) => {
        impl ::std::io::Read for $($T)+ {
            #[inline]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock.read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.sock.read_vectored(bufs)
            }

            fn read_exact(&mut self, buf: &mut [u8]) -> ::std::io::Result<()> {
                self.sock.read_exact(buf)
            }
        }

        impl ::std::io::Write for $($T)+ {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock.write(buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.sock.write_vectored(bufs)
            }

            fn write_all(&mut self, buf: &[u8]) -> ::std::io::Result<()> {
                self.sock.write_all(buf)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}

pub(crate) use {
    accept_methods, close, common_methods, incoming_type, peer_addr, shutdown, socket_traits,
    sockopt, stream_io, timeouts,
};

/// The socket types belong to their hub and cannot cross threads: each
/// example must fail to compile with `E0277` (not `Send`). The way across
/// is `into_std()` (see [Threads](crate#threads)).
///
/// ```compile_fail,E0277
/// let s = verdant_net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// std::thread::spawn(move || drop(s));
/// ```
///
/// ```compile_fail,E0277
/// let (a, _b) = verdant_net::UnixStream::pair().unwrap();
/// std::thread::spawn(move || drop(a));
/// ```
///
/// ```compile_fail,E0277
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let s = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// std::thread::spawn(move || drop(s));
/// ```
///
/// ```compile_fail,E0277
/// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
/// std::thread::spawn(move || drop(s));
/// ```
#[allow(dead_code)]
const NOT_SEND: () = ();

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the runtime's deadline expiry becomes std's `EAGAIN`; a
    /// `TimedOut` from anywhere else (the OS's `ETIMEDOUT`, or one made by
    /// hand) is left as it is.
    #[test]
    fn only_deadline_expiries_become_eagain() {
        let e = std_timeout(verdant_runtime::io::deadline_error());
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
        let os = std_timeout(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        assert_eq!(os.kind(), io::ErrorKind::TimedOut);
        assert_eq!(os.raw_os_error(), Some(libc::ETIMEDOUT));
        let plain = std_timeout(io::ErrorKind::TimedOut.into());
        assert_eq!(plain.kind(), io::ErrorKind::TimedOut);
        assert_eq!(plain.raw_os_error(), None);
        let other = std_timeout(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert_eq!(other.raw_os_error(), Some(libc::ECONNRESET));
    }

    /// A `write_all` that expires part-way keeps its `PartialWrite`, whose
    /// error is the `EAGAIN`, under an error of kind `WouldBlock`.
    #[test]
    fn a_partial_write_all_expires_as_would_block() {
        let mut calls = 0;
        let e = write_all_with(&[0u8; 10], |b| {
            calls += 1;
            if calls == 1 {
                Ok(b.len() - 6)
            } else {
                Err(std_timeout(verdant_runtime::io::deadline_error()))
            }
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let p = PartialWrite::of(&e).expect("a PartialWrite");
        assert_eq!(p.written, 4);
        assert_eq!(p.error.raw_os_error(), Some(libc::EAGAIN));
    }
}
