//! Multi-producer, multi-consumer channels between greenlets of one hub,
//! shaped like crossbeam-channel: [`bounded`] (0 is a rendezvous),
//! [`unbounded`], [`Sender`]/[`Receiver`] that clone, disconnection when
//! the other side is gone, iteration, and [`Select`] / [`select!`] over
//! several receivers and a timeout.
//!
//! Messages are handed from a sender to a waiting receiver directly, FIFO.
//! When every `Sender` is gone, receivers drain what is left and then get
//! `Disconnected`; when every `Receiver` is gone, sends fail and give the
//! message back.
//!
//! These channels park greenlets, never OS threads; to reach a hub from
//! another thread use [`Remote`](crate::Remote).
//!
//! [`select!`]: crate::select
//!
//! ```
//! use verdant_runtime::{spawn, sync::channel};
//!
//! let (tx, rx) = channel::bounded(0); // rendezvous
//! let producer = spawn(move || for i in 0..3 { tx.send(i).unwrap(); });
//! // Iteration ends when the sender is gone.
//! assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
//! producer.join().unwrap();
//! ```

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::queue::{Core, Fifo, PutError, TakeError};
use super::WaitError;
use crate::hub::Waiting;
use crate::hub::{self, WaitToken};
use crate::timer::deadline_of;
use crate::value::Wake;

struct Chan<T> {
    core: Core<Fifo<T>>,
    senders: Cell<usize>,
    receivers: Cell<usize>,
}

/// Creates a channel holding at most `cap` messages; 0 makes a rendezvous
/// (`send` waits for a receiver).
///
/// # Examples
///
/// ```
/// let (tx, rx) = verdant_runtime::sync::channel::bounded(1);
/// tx.send(1).unwrap();
/// assert!(tx.try_send(2).is_err()); // full
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    make(Some(cap))
}

/// Creates a channel with no size limit.
///
/// # Examples
///
/// ```
/// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
/// for i in 0..1000 { tx.send(i).unwrap(); }
/// assert_eq!(rx.len(), 1000);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

fn make<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Rc::new(Chan {
        core: Core::new(cap),
        senders: Cell::new(1),
        receivers: Cell::new(1),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// Why `send`, `send_timeout` or `send_deadline` failed; the message comes
/// back.
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// Every receiver is gone.
    Disconnected(T),
    /// The wait ended first: timed out, `LoopExit`, or cancelled.
    Wait(WaitError, T),
}

/// Why `try_send` failed; the message comes back.
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full (or, for a rendezvous, no receiver waits).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why `recv`, `recv_timeout` or `recv_deadline` gave no message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and the channel is empty.
    Disconnected,
    /// The wait ended first: timed out, `LoopExit`, or cancelled.
    Wait(WaitError),
}

/// Why `try_recv` gave no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

impl<T> SendError<T> {
    /// The message that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
    /// drop(rx);
    /// assert_eq!(tx.send(5).unwrap_err().into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(t) | SendError::Wait(_, t) => t,
        }
    }
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = verdant_runtime::sync::channel::bounded(0);
    /// assert_eq!(tx.try_send(5).unwrap_err().into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => t,
        }
    }
}

macro_rules! error_impls {
    ($t:ident, $($variant:ident => $msg:literal),*) => {
        impl<T> fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($t::$variant(..) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                }
            }
        }
        impl<T> fmt::Display for $t<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($t::$variant(..) => f.write_str($msg),)*
                }
            }
        }
        impl<T> std::error::Error for $t<T> {}
    };
}

error_impls!(SendError, Disconnected => "sending on a channel with no receiver", Wait => "the send's wait ended first");
error_impls!(TrySendError, Full => "sending on a full channel", Disconnected => "sending on a channel with no receiver");

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("receiving on an empty channel with no sender"),
            RecvError::Wait(w) => w.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty channel with no sender")
            }
        }
    }
}

impl std::error::Error for TryRecvError {}

fn send_err<T>(e: PutError<T>) -> SendError<T> {
    match e {
        PutError::Wait(w, t) => SendError::Wait(w, t),
        PutError::Full(t) | PutError::Closed(t) => SendError::Disconnected(t),
    }
}

fn recv_err(e: TakeError) -> RecvError {
    match e {
        TakeError::Wait(w) => RecvError::Wait(w),
        TakeError::Empty | TakeError::Closed => RecvError::Disconnected,
    }
}

/// The sending side of a channel; clone it for more producers.
pub struct Sender<T> {
    chan: Rc<Chan<T>>,
}

/// The receiving side of a channel; clone it for more consumers.
pub struct Receiver<T> {
    chan: Rc<Chan<T>>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.set(self.chan.senders.get() + 1);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.set(self.chan.receivers.get() + 1);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let n = self.chan.senders.get() - 1;
        self.chan.senders.set(n);
        if n == 0 {
            self.chan.core.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let n = self.chan.receivers.get() - 1;
        self.chan.receivers.set(n);
        if n == 0 {
            self.chan.core.close_gets();
        }
    }
}

impl<T> Sender<T> {
    /// Sends `msg`, waiting while the channel is full (for a rendezvous:
    /// until a receiver takes it).
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when every receiver is gone;
    /// [`SendError::Wait`] (`LoopExit`, `Cancelled`); with the message.
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
    /// tx.send("hi").unwrap();
    /// assert_eq!(rx.recv(), Ok("hi"));
    /// ```
    #[inline]
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.chan.core.put(msg).map_err(send_err)
    }

    /// Sends `msg` if that needs no wait.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::bounded(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert!(tx.try_send(2).is_err());
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.core.try_put_now(msg).map_err(|e| match e {
            PutError::Full(t) => TrySendError::Full(t),
            PutError::Closed(t) | PutError::Wait(_, t) => TrySendError::Disconnected(t),
        })
    }

    /// Sends `msg`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`SendError::Wait`] with [`WaitError::TimedOut`], or as for `send`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = verdant_runtime::sync::channel::bounded(0);
    /// assert!(tx.send_timeout(1, Duration::from_millis(1)).is_err());
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.chan
            .core
            .put_until(msg, deadline_of(Some(timeout)))
            .map_err(send_err)
    }

    /// Sends `msg`, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As for `send_timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = verdant_runtime::sync::channel::unbounded();
    /// tx.send_deadline(1, std::time::Instant::now()).unwrap(); // room: no wait
    /// ```
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendError<T>> {
        self.chan
            .core
            .put_until(msg, Some(deadline))
            .map_err(send_err)
    }

    /// The channel's capacity: `None` for an unbounded one, `Some(0)` for
    /// a rendezvous.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::bounded::<u8>(3);
    /// assert_eq!(tx.capacity(), Some(3));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.core.max
    }

    /// Messages waiting in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = verdant_runtime::sync::channel::unbounded();
    /// tx.send(()).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.core.len()
    }

    /// Whether no message waits in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every receiver is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.chan.receivers.get() == 0
    }
}

impl<T> Receiver<T> {
    /// Receives a message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once every sender is gone and the channel
    /// is drained; [`RecvError::Wait`] (`LoopExit`, `Cancelled`).
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::sync::channel::{self, RecvError};
    /// let (tx, rx) = channel::unbounded();
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    /// ```
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.core.get().map_err(recv_err)
    }

    /// Receives a message if one is there, or if a [`Select`] waits to send
    /// one into this channel: then, and only then, it runs the ready
    /// greenlets for one turn so that the select can hand it over (see
    /// [`Select`]).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::sync::channel::{self, TryRecvError};
    /// let (_tx, rx) = channel::unbounded::<u8>();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.core.try_get().map_err(|e| match e {
            TakeError::Empty | TakeError::Wait(_) => TryRecvError::Empty,
            TakeError::Closed => TryRecvError::Disconnected,
        })
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Wait`] with [`WaitError::TimedOut`], or as for `recv`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.chan
            .core
            .get_until(deadline_of(Some(timeout)))
            .map_err(recv_err)
    }

    /// Receives a message, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As for `recv_timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// assert!(rx.recv_deadline(std::time::Instant::now()).is_err());
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvError> {
        self.chan.core.get_until(Some(deadline)).map_err(recv_err)
    }

    /// A blocking iterator: yields messages until every sender is gone (or
    /// a wait fails).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().sum::<i32>(), 3);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages there now, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_iter().count(), 1);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// The channel's capacity: `None` for an unbounded one, `Some(0)` for
    /// a rendezvous.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::bounded::<u8>(3);
    /// assert_eq!(rx.capacity(), Some(3));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.core.max
    }

    /// Messages waiting in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// assert_eq!(rx.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.core.len()
    }

    /// Whether no message waits in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every sender is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// drop(tx);
    /// assert!(rx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.chan.senders.get() == 0
    }
}

/// A blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// An iterator over the messages a [`Receiver`] holds now.
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// One operation of a [`Select`]: a receive (on a [`Receiver`]) or a send
/// (on a [`Sender`]).
trait Op {
    /// Whether the operation would go ahead without waiting.
    fn ready(&self) -> bool;
    /// Registers the waiting greenlet's token with the channel.
    fn register<'s>(&'s self, token: &WaitToken) -> Registration<'s>;
    fn is_send(&self) -> bool;
    /// A receive into which a select waits to send (see `Core::try_get`).
    fn senders_watch(&self) -> bool;
}

/// A select's registration with one channel; leaves it when dropped.
enum Registration<'s> {
    /// A waiting getter, handed a message like any other.
    Recv(Box<dyn Held + 's>),
    /// A watcher woken when a send could go ahead (held for its drop,
    /// which leaves the list).
    Send { _watch: super::Enqueued<'s, ()> },
}

/// A receive registration, erased over the message type.
trait Held {
    /// On a normal wake-up: a message handed to the select is held at the
    /// front of its channel for the caller to take at once; returns whether
    /// there was one.
    fn settle(&mut self) -> bool;
}

struct RecvReg<'s, T> {
    core: &'s Core<Fifo<T>>,
    w: super::Enqueued<'s, T>,
    settled: bool,
}

impl<T> Held for RecvReg<'_, T> {
    fn settle(&mut self) -> bool {
        self.settled = true;
        match self.w.take() {
            Some(msg) => {
                self.core.hold_first(msg);
                true
            }
            None => false,
        }
    }
}

impl<T> Drop for RecvReg<'_, T> {
    fn drop(&mut self) {
        // A waiter not notified leaves the list as `w` drops.
        if self.w.is_notified() && !self.settled {
            // Unwinding (a kill) after a message was handed over: pass it on.
            if let Some(msg) = self.w.take() {
                self.core.requeue(msg);
            }
        }
    }
}

impl<T> Op for Receiver<T> {
    fn ready(&self) -> bool {
        self.chan.core.is_ready()
    }
    fn register<'s>(&'s self, token: &WaitToken) -> Registration<'s> {
        let core = &self.chan.core;
        Registration::Recv(Box::new(RecvReg {
            core,
            w: core.enqueue_getter(token),
            settled: false,
        }))
    }
    fn is_send(&self) -> bool {
        false
    }
    fn senders_watch(&self) -> bool {
        self.chan.core.send_watchers.has_waiters()
    }
}

impl<T> Op for Sender<T> {
    fn ready(&self) -> bool {
        self.chan.core.is_put_ready()
    }
    fn register<'s>(&'s self, token: &WaitToken) -> Registration<'s> {
        let list = &self.chan.core.send_watchers;
        Registration::Send {
            _watch: list.enqueue(token, None),
        }
    }
    fn is_send(&self) -> bool {
        true
    }
    fn senders_watch(&self) -> bool {
        false
    }
}

thread_local! {
    /// xorshift state for picking among ready operations.
    static PICK: Cell<u32> = const { Cell::new(0x9E37_79B9) };
}

/// A pseudo-random start in `0..n`, so that no ready operation starves.
fn pick_start(n: usize) -> usize {
    PICK.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        (x as usize) % n
    })
}

/// Waits until one of several channel operations can go ahead:
/// crossbeam's `Select`, for sends and receives, with a timeout.
///
/// A receive is ready when a message waits, a sender waits (a rendezvous),
/// or every sender is gone; a send, when there is room, a receiver waits,
/// or every receiver is gone. When several are ready, one is picked at
/// random, so none starves. [`select`](Select::select) returns the
/// operation's index; complete it at once (before any other wait) with
/// `try_recv` / `try_send` (or `recv` / `send`, which then do not wait):
/// the hub is single-threaded, so it is still ready.
///
/// While a select waits, each of its receives stands in line with the
/// channel's other receivers and a message is handed to it directly (held
/// for the caller at the front of the channel). So two selects, one
/// sending and one receiving on the same rendezvous channel, meet as in
/// Go. A waiting select's *send* only watches, since its message is
/// evaluated once the send is chosen (as in crossbeam). A receive that does
/// not wait (`try_recv`, `recv_timeout(0)`, [`try_select`], a `default`
/// select) still meets it, as in Go and crossbeam: finding a select that
/// waits to send into the channel, it wakes it and stands in line for one
/// turn of the ready queue, which lets the select hand its message over.
/// Only then is such a receive a switch point; if the select chooses
/// another operation (or dies) first, the receive finds nothing.
///
/// [`try_select`]: Select::try_select
///
/// # Examples
///
/// ```
/// use verdant_runtime::sync::channel::{self, Select};
/// let (tx1, rx1) = channel::unbounded::<u8>();
/// let (tx2, rx2) = channel::unbounded::<&str>();
/// tx2.send("two").unwrap();
/// let mut sel = Select::new();
/// let i1 = sel.recv(&rx1);
/// let i2 = sel.recv(&rx2);
/// let ready = sel.select().unwrap();
/// assert_eq!(ready, i2);
/// assert_eq!(rx2.try_recv(), Ok("two"));
/// # let _ = (tx1, i1);
/// ```
#[derive(Default)]
pub struct Select<'a> {
    ops: Vec<&'a dyn Op>,
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("ops", &self.ops.len())
            .finish()
    }
}

impl<'a> Select<'a> {
    /// An empty selection.
    ///
    /// # Examples
    ///
    /// ```
    /// let sel = verdant_runtime::sync::channel::Select::new();
    /// assert!(sel.try_select().is_none());
    /// ```
    pub fn new() -> Select<'a> {
        Select { ops: Vec::new() }
    }

    /// Adds a receive on `rx`; returns its index.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// let mut sel = verdant_runtime::sync::channel::Select::new();
    /// assert_eq!(sel.recv(&rx), 0);
    /// ```
    pub fn recv<T>(&mut self, rx: &'a Receiver<T>) -> usize {
        self.ops.push(rx);
        self.ops.len() - 1
    }

    /// Adds a send on `tx`; returns its index. The message is given when
    /// the send is selected (`tx.try_send(msg)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::bounded::<u8>(1);
    /// let mut sel = verdant_runtime::sync::channel::Select::new();
    /// let i = sel.send(&tx);
    /// assert_eq!(sel.select(), Ok(i)); // room for one
    /// tx.try_send(7).unwrap();
    /// assert_eq!(sel.try_select(), None); // full now
    /// # drop(rx);
    /// ```
    pub fn send<T>(&mut self, tx: &'a Sender<T>) -> usize {
        self.ops.push(tx);
        self.ops.len() - 1
    }

    /// The index of a ready operation (picked at random among the ready
    /// ones), without waiting; except that a receive into which another
    /// select waits to send is given one turn of the ready queue to meet it
    /// (see [`Select`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = verdant_runtime::sync::channel::unbounded();
    /// let mut sel = verdant_runtime::sync::channel::Select::new();
    /// sel.recv(&rx);
    /// assert_eq!(sel.try_select(), None);
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_select(), Some(0));
    /// ```
    pub fn try_select(&self) -> Option<usize> {
        if let Some(i) = self.ready_now() {
            return Some(i);
        }
        if !self.ops.iter().any(|op| op.senders_watch()) {
            return None;
        }
        // A select waits to send into one of these receives' channels, and
        // its message exists only once its send is chosen: stand in line
        // for one turn so that it can hand it over.
        match self.park(None, true) {
            Ok(Some(i)) => Some(i),
            _ => self.ready_now(),
        }
    }

    /// A ready operation (picked at random among the ready ones), by a
    /// look at each: never a switch.
    fn ready_now(&self) -> Option<usize> {
        let n = self.ops.len();
        if n == 0 {
            return None;
        }
        let start = pick_start(n);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.ops[i].ready())
    }

    /// Waits until an operation is ready; returns its index.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if none could ever be; `Cancelled` while
    /// unwinding.
    ///
    /// # Panics
    ///
    /// Panics if the selection is empty: it could never end. Raises a kill
    /// or timeout-scope expiry delivered while waiting.
    ///
    /// # Examples
    ///
    /// See [`Select`].
    pub fn select(&self) -> Result<usize, WaitError> {
        self.select_until(None)
    }

    /// Waits at most `timeout` for an operation to be ready.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`select`](Select::select).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// let mut sel = verdant_runtime::sync::channel::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn select_timeout(&self, timeout: Duration) -> Result<usize, WaitError> {
        self.select_until(deadline_of(Some(timeout)))
    }

    /// Waits until `deadline` at the latest for an operation to be ready.
    ///
    /// # Errors
    ///
    /// As for [`select_timeout`](Select::select_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = verdant_runtime::sync::channel::unbounded::<u8>();
    /// let mut sel = verdant_runtime::sync::channel::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select_deadline(std::time::Instant::now()).is_err());
    /// ```
    pub fn select_deadline(&self, deadline: Instant) -> Result<usize, WaitError> {
        self.select_until(Some(deadline))
    }

    fn select_until(&self, deadline: Option<Instant>) -> Result<usize, WaitError> {
        assert!(
            !self.ops.is_empty(),
            "verdant: select over no operation would wait forever"
        );
        loop {
            if let Some(i) = self.ready_now() {
                return Ok(i);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                // No time to wait, except one turn for a select waiting to
                // send (see `try_select`).
                return self.try_select().ok_or(WaitError::TimedOut);
            }
            // A receive that was handed a message must be the one reported:
            // the message waits for it at the front of its channel (picking
            // again could strand it there, past the channel's bound).
            if let Some(i) = self.park(deadline, false)? {
                return Ok(i);
            }
        }
    }

    /// Registers every operation under one token and parks once; whichever
    /// channel wakes it first claims the whole select (the others find the
    /// token spent and pass it by). With `one_turn`, parks only for one
    /// turn of the ready queue (see `Runtime::park_one_turn`).
    fn park(&self, deadline: Option<Instant>, one_turn: bool) -> Result<Option<usize>, WaitError> {
        let rt = hub::rt();
        let token = rt
            .begin_wait(Waiting::Select)
            .map_err(|_| WaitError::Cancelled)?;
        // Receives first: registering one wakes selects waiting to send into
        // that channel, which must not include this one.
        // In a random rotation: several receives on one channel stand in
        // its line in that order, and the first in line gets the message.
        let n = self.ops.len();
        let start = pick_start(n);
        let mut regs: Vec<(usize, Registration<'_>)> = Vec::with_capacity(n);
        for send in [false, true] {
            for i in (0..n).map(|k| (start + k) % n) {
                let op = self.ops[i];
                if op.is_send() == send {
                    regs.push((i, op.register(&token)));
                }
            }
        }
        let woke = if one_turn {
            rt.park_one_turn(&token)
        } else {
            let timer = deadline.map(|d| rt.arm_timer(d, token));
            let woke = rt.park();
            drop(timer);
            woke
        };
        let mut handed = None;
        for (i, reg) in &mut regs {
            if let Registration::Recv(held) = reg {
                if held.settle() {
                    handed = Some(*i);
                }
            }
        }
        drop(regs);
        if handed.is_some() {
            return Ok(handed);
        }
        match woke {
            Ok(Wake::Ready) | Ok(Wake::TimedOut) => Ok(None),
            Ok(Wake::LoopExit) => Err(WaitError::loop_exit()),
            Err(_) => Err(WaitError::Cancelled),
        }
    }
}

/// Waits on several channel operations and an optional timeout, like
/// crossbeam's (and Go's) `select`.
///
/// Arms:
/// - `recv(rx) -> res => body` runs with `res: Result<T, RecvError>` when
///   `rx` is ready (a message, or disconnected);
/// - `send(tx, msg) -> res => body` runs with `res: Result<(), SendError<T>>`
///   when `tx` is ready (room, a waiting receiver, or disconnected); `msg`
///   is evaluated only if this send is chosen;
/// - a last `timeout(duration) => body` runs if none is ready in time, or
///   `default => body` if none is ready now. Without either, it waits
///   until one is.
///
/// When several operations are ready, one is picked at random.
///
/// # Panics
///
/// Without a `timeout` or `default` arm, panics if the wait fails
/// (`LoopExit`: no other greenlet could ever make an operation ready;
/// `Cancelled`). Raises a kill or timeout-scope expiry delivered while
/// waiting.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{select, spawn, sync::channel};
///
/// let (tx, rx) = channel::unbounded();
/// let (_quiet_tx, quiet) = channel::unbounded::<()>();
/// spawn(move || tx.send(7).unwrap());
/// let got = select! {
///     recv(quiet) -> _msg => unreachable!(),
///     recv(rx) -> msg => msg.unwrap(),
///     timeout(Duration::from_secs(1)) => panic!("timed out"),
/// };
/// assert_eq!(got, 7);
///
/// // Sending: a rendezvous send meets a receiver.
/// let (tx, rx) = channel::bounded(0);
/// let receiver = spawn(move || rx.recv().unwrap());
/// select! {
///     send(tx, "hello") -> res => res.unwrap(),
///     recv(quiet) -> _msg => unreachable!(),
/// }
/// assert_eq!(receiver.join().unwrap(), "hello");
///
/// let nothing = select! {
///     recv(quiet) -> _msg => 1,
///     default => 0,
/// };
/// assert_eq!(nothing, 0);
/// ```
#[macro_export]
macro_rules! select {
    // Munch the arms into a list of `(kind, channel, msg, res, body)`.
    (@arms [$($done:tt)*] recv($rx:expr) -> $res:pat => $body:expr, $($rest:tt)*) => {
        $crate::select!(@arms [$($done)* (recv, $rx, (), $res, $body)] $($rest)*)
    };
    (@arms [$($done:tt)*] recv($rx:expr) -> $res:pat => $body:expr) => {
        $crate::select!(@arms [$($done)* (recv, $rx, (), $res, $body)])
    };
    (@arms [$($done:tt)*] send($tx:expr, $msg:expr) -> $res:pat => $body:expr, $($rest:tt)*) => {
        $crate::select!(@arms [$($done)* (send, $tx, $msg, $res, $body)] $($rest)*)
    };
    (@arms [$($done:tt)*] send($tx:expr, $msg:expr) -> $res:pat => $body:expr) => {
        $crate::select!(@arms [$($done)* (send, $tx, $msg, $res, $body)])
    };
    (@arms [$($done:tt)*] timeout($d:expr) => $tbody:expr $(,)?) => {
        $crate::select!(@run [$($done)*] (timeout $d) $tbody)
    };
    (@arms [$($done:tt)*] default => $dbody:expr $(,)?) => {
        $crate::select!(@run [$($done)*] (default) $dbody)
    };
    (@arms [$($done:tt)*]) => {
        $crate::select!(@run [$($done)*] (block) ::std::unreachable!())
    };
    // Evaluate each channel expression once, in order, into a binding of
    // its own (each expansion's `__ch` is a distinct name).
    (@run [$($arms:tt)+] ($($how:tt)*) $other:expr) => {
        $crate::select!(@bind [] [$($arms)+] ($($how)*) $other)
    };
    (@bind [$($bound:tt)*] [($kind:ident, $ch:expr, $msg:expr, $res:pat, $body:expr) $($rest:tt)*] ($($how:tt)*) $other:expr) => {{
        let __ch = &$ch;
        $crate::select!(@bind [$($bound)* ($kind, __ch, $msg, $res, $body)] [$($rest)*] ($($how)*) $other)
    }};
    (@bind [$(($kind:ident, $c:ident, $msg:expr, $res:pat, $body:expr))+] [] ($($how:tt)*) $other:expr) => {{
        let mut __sel = $crate::sync::channel::Select::new();
        $( $crate::select!(@add __sel, $kind, $c); )+
        match $crate::select!(@wait __sel, $($how)*) {
            ::std::option::Option::Some(__i) => {
                $crate::select!(@dispatch __i, 0usize, $(($kind, $c, $msg, $res, $body))+)
            }
            ::std::option::Option::None => $other,
        }
    }};
    (@add $sel:ident, recv, $c:ident) => { let _ = $sel.recv($c); };
    (@add $sel:ident, send, $c:ident) => { let _ = $sel.send($c); };
    (@wait $sel:ident, timeout $d:expr) => { $sel.select_timeout($d).ok() };
    (@wait $sel:ident, default) => { $sel.try_select() };
    (@wait $sel:ident, block) => {
        match $sel.select() {
            ::std::result::Result::Ok(__i) => ::std::option::Option::Some(__i),
            ::std::result::Result::Err(e) => panic!("verdant: select! could not wait: {e}"),
        }
    };
    (@dispatch $i:ident, $n:expr, ($kind:ident, $c:ident, $msg:expr, $res:pat, $body:expr) $($rest:tt)*) => {
        if $i == $n {
            let $res = $crate::select!(@complete $kind, $c, $msg);
            $body
        } else {
            $crate::select!(@dispatch $i, $n + 1usize, $($rest)*)
        }
    };
    (@dispatch $i:ident, $n:expr,) => {
        unreachable!("select! index out of range")
    };
    // Ready, so neither waits (the hub runs nothing in between).
    (@complete recv, $c:ident, $msg:expr) => { $c.recv() };
    (@complete send, $c:ident, $msg:expr) => { $c.send($msg) };
    (recv $($arms:tt)+) => {
        $crate::select!(@arms [] recv $($arms)+)
    };
    (send $($arms:tt)+) => {
        $crate::select!(@arms [] send $($arms)+)
    };
}
