//! The reactor, for implementors of cooperative IO types: waiting for file
//! descriptors to become ready.
//!
//! **Most programs never use this module**: `verdant::net`'s sockets are
//! built on it. It is the extension point for a new socket or device type
//! (a serial port, an inotify fd, a socket family `net` lacks): a
//! [`Registration`] registers a non-blocking fd with the hub's mio
//! [`Poll`](mio::Poll); then try the operation, and on `WouldBlock` park the
//! greenlet until the fd is ready and retry ([`Registration::io`]).
//!
//! # Design
//!
//! * **Tokens carry a generation.** Each registration owns a slot of a slab
//!   and the mio token is `generation << 32 | slot`. When a registration is
//!   dropped its slot's generation moves on, so an event still in flight for
//!   an fd number that has been closed and reused is recognised as stale and
//!   dropped (tokio's `GENERATION`, Go's `pollDesc.seq`).
//! * **Readiness is remembered.** mio is edge-triggered: an event arrives
//!   once, when the fd *becomes* ready. The slot keeps a readable and a
//!   writable bit, set by events and cleared when an operation returns
//!   `WouldBlock` ([`Registration::clear_ready`]), or, for TCP, when a read
//!   or write moves fewer bytes than asked, which proves the same without
//!   the extra call ([`Registration::io_stream`]); a greenlet parks only
//!   while its bit is clear. Both bits start set, so the first operation is
//!   simply tried. Hang-ups and errors set both bits, so the retried
//!   operation reports them.
//! * **One waiter per direction.** A second greenlet that waits to read (or
//!   to write) the same fd while another already waits gets
//!   `ErrorKind::ResourceBusy` at once, as gevent raises
//!   `ConcurrentObjectUseError`: two readers of one stream would interleave
//!   its bytes unpredictably, and failing fast makes that bug visible.
//! * **Close wakes the waiters.** [`Registration::close`] marks the slot
//!   closed and wakes both waiters, whose operations then fail with
//!   `ErrorKind::NotConnected` ("closed by another greenlet"), at once rather
//!   than never (epoll forgets an fd when it is closed, so a waiter on it
//!   would otherwise hang).
//! * **Deadlines** are hub timers, cancelled as soon as the wait ends; an
//!   expired wait fails with `ErrorKind::TimedOut`.
//!
//! While any greenlet waits on an fd, the hub treats the loop as alive: an
//! idle hub blocks in `epoll_wait` instead of reporting `LoopExit`.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use crate::hub::Waiting;
use crate::hub::{self, Runtime, WaitToken, IO_COST};
pub use crate::reactor::Direction;
use crate::reactor::{token_of, Slot};
use crate::value::Wake;

/// A non-blocking file descriptor registered with this thread's hub.
///
/// It does not own the fd: the owner (a socket) must drop the registration
/// before closing the fd, which deregisters it from epoll.
///
/// # Examples
///
/// A socket read cooperatively: the read parks until the writer greenlet
/// has slept and written.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use verdant_runtime::io::{Direction, Registration};
///
/// let (a, mut b) = UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// let reg = Registration::new(a.as_raw_fd()).unwrap();
/// let writer = verdant_runtime::spawn(move || {
///     verdant_runtime::sleep(Duration::from_millis(10));
///     b.write_all(b"hi").unwrap();
///     b
/// });
/// let mut buf = [0u8; 8];
/// let n = reg.io(Direction::Read, None, || (&a).read(&mut buf)).unwrap();
/// assert_eq!(&buf[..n], b"hi");
/// drop(writer.join().unwrap());
/// drop(reg); // before the fd closes
/// ```
#[derive(Debug)]
pub struct Registration {
    fd: RawFd,
    slot: u32,
    generation: u32,
    /// Handles are `!Send`: the registration belongs to this hub.
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl Registration {
    /// Registers `fd` (which must be in non-blocking mode) with this
    /// thread's hub, for both directions.
    ///
    /// # Errors
    ///
    /// What `epoll_ctl` reports (for example `AlreadyExists` when the same
    /// fd is registered twice), or the failure to create the epoll instance.
    pub fn new(fd: RawFd) -> io::Result<Registration> {
        let rt = hub::rt();
        {
            let (slot, generation) = rt.io.borrow_mut().alloc();
            let token = token_of(slot, generation);
            let res = rt.with_registry(|reg| {
                reg.register(
                    &mut mio::unix::SourceFd(&fd),
                    token,
                    // PRIORITY: only to learn of TCP urgent data, which
                    // turns off the short-read hint of `io_stream`.
                    mio::Interest::READABLE | mio::Interest::WRITABLE | mio::Interest::PRIORITY,
                )
            });
            if let Err(e) = res {
                // A fresh slot has no waiters: nothing to wake or drop.
                rt.io.borrow_mut().release(slot);
                return Err(e);
            }
            Ok(Registration {
                fd,
                slot,
                generation,
                _not_send: std::marker::PhantomData,
            })
        }
    }

    /// The registered fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Whether the fd is believed ready for `dir` (it may still return
    /// `WouldBlock`: readiness is a hint, cleared by [`clear_ready`]).
    ///
    /// [`clear_ready`]: Registration::clear_ready
    pub fn is_ready(&self, dir: Direction) -> bool {
        self.with_slot(|s| s.is_ready(dir)).unwrap_or(true)
    }

    /// Forgets readiness for `dir`: call it when an operation returned
    /// `WouldBlock`, before [`wait`](Registration::wait).
    pub fn clear_ready(&self, dir: Direction) {
        self.with_slot(|s| s.clear_ready(dir));
    }

    /// Whether [`close`](Registration::close) was called.
    pub fn is_closed(&self) -> bool {
        self.with_slot(|s| s.is_closed()).unwrap_or(true)
    }

    /// `Ok` while the registration is open; after [`close`](Registration::close)
    /// the same `NotConnected` error that its waits return, for socket
    /// types that retry an operation in a loop of their own.
    ///
    /// # Errors
    ///
    /// `NotConnected` ("the socket was closed by another greenlet") once
    /// closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.set_nonblocking(true).unwrap();
    /// let reg = verdant_runtime::io::Registration::new(a.as_raw_fd()).unwrap();
    /// assert!(reg.check_open().is_ok());
    /// reg.close();
    /// assert_eq!(reg.check_open().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// ```
    pub fn check_open(&self) -> io::Result<()> {
        if self.is_closed() {
            Err(closed_error())
        } else {
            Ok(())
        }
    }

    /// Marks the registration closed and wakes both of its waiters, whose
    /// waits (and all later ones) fail with `ErrorKind::NotConnected`.
    /// The fd itself stays open until its owner drops it, so its number
    /// cannot be reused under a greenlet still inside an operation.
    pub fn close(&self) {
        let Some((tokens, watchers)) = self.with_slot(|s| s.close()) else {
            return;
        };
        let rt = hub::rt();
        for t in tokens.into_iter().flatten().chain(watchers) {
            rt.wake_owned(t, Wake::Ready);
        }
    }

    /// Takes the fd to be ready for `dir` without an event: its next
    /// operation is tried (for a caller that also looks again on a timer).
    pub(crate) fn set_ready(&self, dir: Direction) {
        self.with_slot(|s| s.set_ready(dir));
    }

    /// A byte-stream transfer for `dir` moved fewer bytes than asked (see
    /// [`io_stream`](Registration::io_stream)): the fd is no longer ready
    /// for `dir`, unless a hang-up or urgent data says otherwise.
    pub(crate) fn short_transfer(&self, dir: Direction) {
        self.with_slot(|s| s.short_transfer(dir));
    }

    /// Adds `token` as a watcher of the fd for the directions in `dirs`
    /// (`Direction::bit`s): woken by the next event for one of them, or by
    /// [`close`](Registration::close). Unlike the single waiter per
    /// direction of [`wait`](Registration::wait), any number may watch.
    /// Returns `false` when the registration is closed or gone.
    pub(crate) fn watch(&self, dirs: u8, token: WaitToken) -> bool {
        let stale = self.with_slot(|s| {
            if s.is_closed() {
                return None;
            }
            Some(s.watch(dirs, token, WaitToken::is_pending))
        });
        // Dropped outside the slab's borrow.
        matches!(stale, Some(Some(_)))
    }

    /// Parks the current greenlet until the fd is ready for `dir` (at once
    /// if it already is), or until `deadline`.
    ///
    /// # Errors
    ///
    /// * `TimedOut` when the deadline passes first;
    /// * `NotConnected` when the registration is (or gets) closed;
    /// * `ResourceBusy` when another greenlet already waits on this fd in the
    ///   same direction (see the module docs);
    /// * `Interrupted` when the greenlet is unwinding and may not wait.
    ///
    /// # Panics
    ///
    /// Raises a kill delivered while waiting (as for every hub wait).
    pub fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        let rt = hub::rt();
        loop {
            {
                let mut slab = rt.io.borrow_mut();
                let Some(s) = slab.get(self.slot, self.generation) else {
                    return Err(closed_error());
                };
                if s.is_closed() {
                    return Err(closed_error());
                }
                if s.is_ready(dir) {
                    return Ok(());
                }
                if s.waiter(dir).as_ref().is_some_and(|t| t.is_current()) {
                    return Err(io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        "this socket is already used by another greenlet in the same direction",
                    ));
                }
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Err(timed_out());
            }
            let token = rt
                .begin_wait(Waiting::Io {
                    fd: self.fd,
                    direction: dir,
                })
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::Interrupted,
                        "cannot wait for IO while the greenlet unwinds",
                    )
                })?;
            let old = self.with_slot(|s| s.waiter(dir).replace(token.clone()));
            drop(old);
            rt.external_wait_begin();
            let guard = WaitGuard {
                rt,
                reg: self,
                dir,
                seq: token.seq(),
            };
            let timer = deadline.map(|d| rt.arm_timer(d, token));
            let woke = rt.park_compactable();
            drop(timer);
            drop(guard);
            match woke {
                Ok(Wake::Ready) => continue,
                Ok(Wake::TimedOut) => {
                    // Readiness may have arrived in the same tick.
                    if self.is_ready(dir) && !self.is_closed() {
                        return Ok(());
                    }
                    return Err(timed_out());
                }
                Ok(Wake::LoopExit) => {
                    return Err(io::Error::other(format!(
                        "{}; {}",
                        crate::hub::LOOP_EXIT_MESSAGE,
                        hub::stuck()
                    )));
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "cannot wait for IO while the greenlet unwinds",
                    ))
                }
            }
        }
    }

    /// Runs `op` until it does not return `WouldBlock`, parking between
    /// tries until the fd is ready for `dir`; `Interrupted` (EINTR) is
    /// retried at once.
    ///
    /// # Errors
    ///
    /// What `op` returns, or what [`wait`](Registration::wait) returns.
    ///
    /// # Panics
    ///
    /// As for [`wait`](Registration::wait).
    pub fn io<R>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        // The thread's runtime may be gone (a socket used at thread exit).
        let _ = hub::try_rt(|rt| rt.spend(IO_COST));
        loop {
            if self.is_closed() {
                return Err(closed_error());
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.clear_ready(dir);
                    self.wait(dir, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// [`io`](Registration::io) for a byte-stream operation on an fd whose
    /// kernel moves as many bytes as it can in one call (a TCP socket). `op`
    /// asks to move `len` bytes; a result of fewer (but not 0) proves that
    /// the fd is no longer ready for `dir`: a read emptied the receive
    /// queue, a write filled the send buffer. Readiness is then cleared at
    /// once, so the next operation parks straight away instead of first
    /// making a call that could only return `WouldBlock`. Any bytes that
    /// arrive (or room that frees) afterwards raise a new edge-triggered
    /// event, so nothing is missed (epoll(7), question 9; tokio and netty
    /// do the same). That saves one system call in three for a
    /// request/response loop.
    ///
    /// Two cases where a short result leaves something to find are
    /// covered. A hang-up or error the fd has already reported is final
    /// (its event will not come again), so the data before an EOF is not
    /// taken as "drained" and the next read returns the EOF. And a TCP read
    /// stops short at urgent data (`MSG_OOB`): once the fd has reported
    /// urgent data (`EPOLLPRI`), short reads no longer clear its readiness.
    /// Do not use this for datagrams, or for Unix stream sockets that pass
    /// credentials or descriptors (their reads stop at message borders).
    ///
    /// Unlike `io`, `op` is not tried while the fd is known not ready.
    ///
    /// # Errors
    ///
    /// As [`io`](Registration::io).
    ///
    /// # Panics
    ///
    /// As [`wait`](Registration::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use verdant_runtime::io::{Direction, Registration};
    ///
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let (b, _) = l.accept().unwrap();
    /// b.set_nonblocking(true).unwrap();
    /// let reg = Registration::new(b.as_raw_fd()).unwrap();
    /// a.write_all(b"hi").unwrap();
    /// let mut buf = [0u8; 8];
    /// let n = reg.io_stream(Direction::Read, None, buf.len(), || (&b).read(&mut buf)).unwrap();
    /// assert_eq!(&buf[..n], b"hi");
    /// // A short read: the receive queue is empty, and the hub knows it.
    /// assert!(!reg.is_ready(Direction::Read));
    /// drop(reg); // before the fd closes
    /// ```
    #[inline]
    pub fn io_stream(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        len: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        // The thread's runtime may be gone (a socket used at thread exit).
        let _ = hub::try_rt(|rt| rt.spend(IO_COST));
        let mut ready = match self.with_slot(|s| (s.is_closed(), s.is_ready(dir))) {
            None | Some((true, _)) => return Err(closed_error()),
            Some((false, ready)) => ready,
        };
        loop {
            if !ready {
                self.wait(dir, deadline)?;
            }
            match op() {
                Ok(n) if n > 0 && n < len => {
                    self.with_slot(|s| s.short_transfer(dir));
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.clear_ready(dir);
                    ready = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => ready = true,
                r => return r,
            }
        }
    }

    /// `None` when the slot is gone, or the thread's hub is (at exit).
    fn with_slot<R>(&self, f: impl FnOnce(&mut Slot<WaitToken>) -> R) -> Option<R> {
        crate::hub::try_rt(|rt| rt.io.borrow_mut().get(self.slot, self.generation).map(f)).flatten()
    }
}

/// Counts the wait as external (keeps an idle hub polling instead of
/// reporting LoopExit) and clears the waiter slot when the wait ends, also
/// on unwind: but only if the slot still holds *this* wait. A waiter that
/// was woken (by its timer, or a kill) but has not run yet no longer counts
/// as waiting, so another greenlet may have taken the slot meanwhile;
/// clearing that one's token would lose its wake-up for good.
struct WaitGuard<'a> {
    rt: &'a Runtime,
    reg: &'a Registration,
    dir: Direction,
    /// The wait's sequence number (with the current greenlet, its identity).
    seq: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.rt.external_wait_end();
        let seq = self.seq;
        let old = self
            .reg
            .with_slot(|s| s.waiter(self.dir).take_if(|t| t.is_wait_of_current(seq)));
        drop(old); // outside the slab's borrow
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = crate::hub::try_rt(|rt| {
            let fd = self.fd;
            let _ = rt.with_registry(|reg| reg.deregister(&mut mio::unix::SourceFd(&fd)));
            let tokens = {
                let mut slab = rt.io.borrow_mut();
                if slab.get(self.slot, self.generation).is_none() {
                    return;
                }
                slab.release(self.slot)
            };
            // A greenlet still waiting (it shares the socket by reference
            // elsewhere) is woken: its slot is gone, so it sees "closed".
            // A stale token is dropped here, outside the slab's borrow.
            let (tokens, watchers) = tokens;
            for t in tokens.into_iter().flatten().chain(watchers) {
                rt.wake_owned(t, Wake::Ready);
            }
        });
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket was closed by another greenlet",
    )
}

fn timed_out() -> io::Error {
    deadline_error()
}

/// The deadline `timeout` from now, as the runtime makes every deadline:
/// a timeout too large for `Instant` (such as `Duration::MAX`) saturates a
/// century from now instead of overflowing, so a socket type's "wait this
/// long" agrees with the runtime's own waits.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use verdant_runtime::io::deadline_after;
/// assert!(deadline_after(Duration::from_secs(1)) > Instant::now());
/// assert!(deadline_after(Duration::MAX) > Instant::now() + Duration::from_secs(3_000_000_000));
/// ```
#[inline]
pub fn deadline_after(timeout: std::time::Duration) -> Instant {
    crate::timer::deadline_after(timeout)
}

/// The error of an IO wait whose deadline passed: `ErrorKind::TimedOut`,
/// carrying [`Elapsed`](crate::Elapsed) as its inner error, so that callers
/// can tell it from a `TimedOut` that the OS reported (a TCP connection
/// that timed out, `ETIMEDOUT`) with [`is_deadline_error`]. Socket types
/// built on this module use it for their own retry loops.
///
/// # Examples
///
/// ```
/// use verdant_runtime::io::{deadline_error, is_deadline_error};
/// let e = deadline_error();
/// assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
/// assert!(is_deadline_error(&e));
/// assert!(!is_deadline_error(&std::io::Error::from_raw_os_error(libc::ETIMEDOUT)));
/// ```
pub fn deadline_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, crate::Elapsed)
}

/// Whether `err` is a deadline expiry made by [`deadline_error`] (what
/// [`Registration::wait`], [`Registration::io`] and
/// [`Registration::io_stream`] return when their deadline passes), rather
/// than an error from the OS.
///
/// # Examples
///
/// See [`deadline_error`].
pub fn is_deadline_error(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::TimedOut
        && err
            .get_ref()
            .is_some_and(|e| e.downcast_ref::<crate::Elapsed>().is_some())
}
