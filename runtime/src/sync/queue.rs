//! Cooperative queues (gevent's `gevent.queue`): FIFO [`Queue`],
//! [`LifoQueue`], [`PriorityQueue`] and [`JoinableQueue`], each unbounded or
//! with a maximum size.
//!
//! `put` waits while the queue is full, `get` while it is empty; both have
//! `try_`, `_timeout` and `_deadline` forms. Waiters are served in FIFO
//! order, and an item is handed from a putter to a waiting getter directly.
//! A maximum size of 0 makes a rendezvous: `put` returns once a getter took
//! the item. [`close`](Queue::close) wakes every waiter: putters get their
//! item back, getters drain what is left and then learn it is closed.
//!
//! A getter killed after an item was handed to it puts the item back at the
//! front; a putter killed while it waits drops its item (the put did not
//! happen).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::mem;
use std::time::{Duration, Instant};

use super::{Enqueued, WaitError, WaitList};
use crate::hub::WaitToken;
use crate::hub::Waiting;
use crate::timer::deadline_of;

/// Why a `put` did not happen; the item comes back.
#[derive(Clone, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue is full (`try_put` only).
    Full(T),
    /// The queue was closed.
    Closed(T),
    /// The wait ended first: timed out, `LoopExit`, or cancelled.
    Wait(WaitError, T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::Queue::bounded(1);
    /// q.put(1).unwrap();
    /// assert_eq!(q.try_put(2).unwrap_err().into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::Closed(t) | PutError::Wait(_, t) => t,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Wait(w, _) => write!(f, "Wait({w:?}, ..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Wait(w, _) => w.fmt(f),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a `get` gave no item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeError {
    /// The queue is empty (`try_get` only).
    Empty,
    /// The queue was closed and is empty.
    Closed,
    /// The wait ended first: timed out, `LoopExit`, or cancelled.
    Wait(WaitError),
}

impl fmt::Display for TakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeError::Empty => f.write_str("the queue is empty"),
            TakeError::Closed => f.write_str("the queue is closed and empty"),
            TakeError::Wait(w) => w.fmt(f),
        }
    }
}

impl std::error::Error for TakeError {}

/// [`JoinableQueue::task_done`] was called more times than items were put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

/// The order a queue keeps its items in.
pub(crate) trait Store: Default {
    type Item;
    fn push(&mut self, item: Self::Item);
    /// Puts back an item taken out of order (a killed getter's).
    fn push_back_first(&mut self, item: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn len(&self) -> usize;
}

pub(crate) struct Fifo<T>(VecDeque<T>);
struct Lifo<T>(Vec<T>);
struct Prio<T>(BinaryHeap<Reverse<T>>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}
impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}
impl<T: Ord> Default for Prio<T> {
    fn default() -> Self {
        Prio(BinaryHeap::new())
    }
}

impl<T> Store for Fifo<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn push_back_first(&mut self, item: T) {
        self.0.push_front(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Store for Lifo<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn push_back_first(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Store for Prio<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn push_back_first(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|r| r.0)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The largest item (in bytes) whose blocking `put` and `get` are compiled
/// into the call site (see [`Core::put_inline`]). A larger one goes through
/// one out-of-line copy: each inlined copy moves the item several times,
/// and for big items LLVM's scalar replacement grows quadratic in those
/// moves (a 32 KiB message sent in a test took the build from seconds to
/// many minutes).
const INLINE_ITEM_MAX: usize = 32;

/// The queue machinery, for any item order; channels use it too.
pub(crate) struct Core<S: Store> {
    items: RefCell<S>,
    pub(crate) max: Option<usize>,
    /// No more puts (a closed queue; a channel whose senders are gone).
    pub(crate) closed: Cell<bool>,
    /// No more gets (a channel whose receivers are gone): puts fail.
    pub(crate) no_getters: Cell<bool>,
    pub(crate) getters: WaitList<S::Item>,
    pub(crate) putters: WaitList<S::Item>,
    /// Selects waiting to send: woken (nothing handed) when a put could
    /// go ahead: room was made, a getter arrived, or the gets ended.
    pub(crate) send_watchers: WaitList<()>,
    unfinished: Cell<usize>,
    joiners: WaitList<()>,
}

impl<S: Store> Core<S> {
    pub(crate) fn new(max: Option<usize>) -> Self {
        Core {
            items: RefCell::new(S::default()),
            max,
            closed: Cell::new(false),
            no_getters: Cell::new(false),
            getters: WaitList::default(),
            putters: WaitList::default(),
            send_watchers: WaitList::default(),
            unfinished: Cell::new(0),
            joiners: WaitList::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.borrow().len()
    }

    fn is_full(&self) -> bool {
        self.max.is_some_and(|m| self.len() >= m)
    }

    /// Puts without waiting; gives the item back when it would wait.
    #[inline(always)]
    pub(crate) fn try_put_now(&self, item: S::Item) -> Result<(), PutError<S::Item>> {
        if self.closed.get() || self.no_getters.get() {
            return Err(PutError::Closed(item));
        }
        // A getter waits only while the queue is empty: hand it over.
        let item = match self.getters.notify_one(item) {
            Ok(()) => {
                self.unfinished.set(self.unfinished.get() + 1);
                return Ok(());
            }
            Err(item) => item,
        };
        if self.is_full() || self.putters.has_waiters() {
            return Err(PutError::Full(item));
        }
        self.items.borrow_mut().push(item);
        self.unfinished.set(self.unfinished.get() + 1);
        Ok(())
    }

    /// Puts, waiting as long as it takes: compiled whole into the call
    /// site (see [`Core::put_inline`]).
    #[inline(always)]
    pub(crate) fn put(&self, item: S::Item) -> Result<(), PutError<S::Item>> {
        if const { mem::size_of::<S::Item>() <= INLINE_ITEM_MAX } {
            self.put_inline(item, None)
        } else {
            self.put_until(item, None)
        }
    }

    /// Puts, waiting until `deadline` at most: one out-of-line copy per
    /// item type (timed waits are the rarer kind; see [`Core::put_inline`]
    /// for what the call costs).
    #[inline(never)]
    pub(crate) fn put_until(
        &self,
        item: S::Item,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<S::Item>> {
        self.put_inline(item, deadline)
    }

    /// The whole put: the try, the wait list and the hub switch, compiled
    /// as one piece into its caller.
    ///
    /// Why inlined: a function whose frame is live across a switch returns
    /// after the greenlet is resumed, when the CPU's return-stack predictor
    /// holds the other greenlet's return addresses, so every such frame
    /// costs a mispredicted return per park. With the wait behind one
    /// out-of-line call, a rendezvous round trip took 65 ns instead of
    /// 44 ns in a two-greenlet ping-pong. The non-switching parts
    /// (`try_put_now`, `try_get_now`) are inlined too: behind calls that
    /// return their `Result`s through memory they cost 5 ns each per round
    /// trip. The price is code size: about 2 KB per call site of a blocking
    /// `put`/`get`/`send`/`recv` (the `channel_port` test binary, with
    /// hundreds of them, grew 26%; the examples by under 2%).
    #[inline(always)]
    fn put_inline(
        &self,
        mut item: S::Item,
        deadline: Option<Instant>,
    ) -> Result<(), PutError<S::Item>> {
        crate::hub::rt().spend(1);
        loop {
            item = match self.try_put_now(item) {
                Err(PutError::Full(item)) => item,
                other => return other,
            };
            let waited = self.putters.wait(Waiting::Put, deadline, Some(item), &drop);
            match waited {
                // A getter took it (and counted it).
                Ok(None) => return Ok(()),
                // Woken without a taker: the queue closed; look again.
                Ok(Some(back)) => item = back,
                Err((why, back)) => {
                    return Err(PutError::Wait(why, back.expect("a putter keeps its offer")))
                }
            }
        }
    }

    /// Takes without waiting.
    #[inline(always)]
    pub(crate) fn try_get_now(&self) -> Result<S::Item, TakeError> {
        let popped = self.items.borrow_mut().pop();
        if let Some(item) = popped {
            // Room for the first waiting putter's item (unless a killed
            // getter's item, put back, still holds the queue over its bound).
            if !self.is_full() {
                match self.putters.take_one() {
                    Some(next) => {
                        self.items.borrow_mut().push(next);
                        self.unfinished.set(self.unfinished.get() + 1);
                    }
                    // Room for a select waiting to send.
                    None => self.send_watchers.wake_all_empty(),
                }
            }
            return Ok(item);
        }
        // Empty, with a putter waiting: a rendezvous queue (max 0).
        if let Some(item) = self.putters.take_one() {
            self.unfinished.set(self.unfinished.get() + 1);
            return Ok(item);
        }
        Err(if self.closed.get() {
            TakeError::Closed
        } else {
            TakeError::Empty
        })
    }

    /// Takes without waiting for anything but a select that waits to send
    /// into this queue (a rendezvous channel): such a select offers no
    /// message until its send is chosen, so the getter stands in line for
    /// one turn of the ready queue to let it hand one over (crossbeam's
    /// receiver likewise waits for a selected sender to write its message).
    pub(crate) fn try_get(&self) -> Result<S::Item, TakeError> {
        match self.try_get_now() {
            Err(TakeError::Empty) if self.send_watchers.has_waiters() => self.get_one_turn(),
            other => other,
        }
    }

    #[cold]
    #[inline(never)]
    fn get_one_turn(&self) -> Result<S::Item, TakeError> {
        let got = self.getters.wait_one_turn(
            Waiting::Get,
            || self.send_watchers.wake_all_empty(),
            &|lost| self.pass_on(lost),
        );
        match got {
            Some(item) => Ok(item),
            // Nothing handed over (the select chose another operation, or
            // the queue closed): look once more, without waiting.
            None => self.try_get_now(),
        }
    }

    /// Takes, waiting as long as it takes: compiled whole into the call
    /// site, like [`Core::put`].
    #[inline(always)]
    pub(crate) fn get(&self) -> Result<S::Item, TakeError> {
        if const { mem::size_of::<S::Item>() <= INLINE_ITEM_MAX } {
            self.get_inline(None)
        } else {
            self.get_until(None)
        }
    }

    /// Takes, waiting until `deadline` at most: one out-of-line copy per
    /// item type, like [`Core::put_until`].
    #[inline(never)]
    pub(crate) fn get_until(&self, deadline: Option<Instant>) -> Result<S::Item, TakeError> {
        self.get_inline(deadline)
    }

    /// The whole get, compiled as one piece into its caller (see
    /// [`Core::put_inline`] for why).
    #[inline(always)]
    fn get_inline(&self, deadline: Option<Instant>) -> Result<S::Item, TakeError> {
        crate::hub::rt().spend(1);
        loop {
            match self.try_get_now() {
                Err(TakeError::Empty) => {}
                other => return other,
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                // No time to wait, except one turn for a select waiting to
                // send (see `try_get`).
                if !self.send_watchers.has_waiters() {
                    return Err(TakeError::Wait(WaitError::TimedOut));
                }
                return match self.get_one_turn() {
                    Err(TakeError::Empty) => Err(TakeError::Wait(WaitError::TimedOut)),
                    other => other,
                };
            }
            // A select waiting to send into a rendezvous can now hand over.
            self.send_watchers.wake_all_empty();
            let pass_on = |lost| self.pass_on(lost);
            match self.getters.wait(Waiting::Get, deadline, None, &pass_on) {
                Ok(Some(item)) => return Ok(item),
                Ok(None) => continue, // closed: drain or report it
                Err((why, _)) => return Err(TakeError::Wait(why)),
            }
        }
    }

    /// Puts a waiting getter for `token` in line without parking (a select's
    /// receive); a select waiting to send into a rendezvous can then hand
    /// over to it.
    pub(crate) fn enqueue_getter(&self, token: &WaitToken) -> Enqueued<'_, S::Item> {
        let w = self.getters.enqueue(token, None);
        self.send_watchers.wake_all_empty();
        w
    }

    /// Holds an item handed to a select at the front of the queue, for the
    /// select's caller to take at once (even beyond the bound: it is
    /// already out of its sender's hands).
    pub(crate) fn hold_first(&self, item: S::Item) {
        self.items.borrow_mut().push_back_first(item);
    }

    /// Whether a put would not wait: room, a waiting getter, or no gets
    /// any more (the put fails at once).
    pub(crate) fn is_put_ready(&self) -> bool {
        self.closed.get()
            || self.no_getters.get()
            || self.getters.has_waiters()
            || (!self.is_full() && !self.putters.has_waiters())
    }

    /// An item handed to a getter that unwound goes to the next getter, or
    /// back to the front of the queue.
    pub(crate) fn requeue(&self, item: S::Item) {
        if let Err(item) = self.getters.notify_one(item) {
            self.items.borrow_mut().push_back_first(item);
        }
    }

    /// A getter's `on_lost`: what it was handed, if anything, is requeued.
    fn pass_on(&self, lost: Option<S::Item>) {
        if let Some(item) = lost {
            self.requeue(item);
        }
    }

    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.getters.wake_all_empty();
        self.putters.wake_all_empty();
        self.send_watchers.wake_all_empty();
    }

    /// Every getter is gone: puts fail from now on, waiting putters get
    /// their items back, and the items left are dropped (nothing can take
    /// them; they may hold other channels' ends).
    pub(crate) fn close_gets(&self) {
        self.no_getters.set(true);
        let left = std::mem::take(&mut *self.items.borrow_mut());
        drop(left); // outside the borrow: an item's drop may use this queue
        self.putters.wake_all_empty();
        self.send_watchers.wake_all_empty();
    }

    /// Whether a get would not wait: an item, a waiting putter, or closed.
    pub(crate) fn is_ready(&self) -> bool {
        self.len() > 0 || self.closed.get() || self.putters.has_waiters()
    }

    fn task_done(&self) -> Result<(), TaskDoneError> {
        let n = self.unfinished.get();
        if n == 0 {
            return Err(TaskDoneError);
        }
        self.unfinished.set(n - 1);
        if n == 1 {
            self.joiners.notify_all(|| ());
        }
        Ok(())
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        while self.unfinished.get() > 0 {
            self.joiners
                .wait(Waiting::QueueJoin, deadline, None, &|_| {})
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}

macro_rules! queue_api {
    ($(#[$doc:meta])* $name:ident, $store:ident, [$($bound:tt)*], $example:literal) => {
        $(#[$doc])*
        pub struct $name<T: $($bound)*> {
            core: Core<$store<T>>,
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("len", &self.core.len())
                    .field("max", &self.core.max)
                    .field("closed", &self.core.closed.get())
                    .finish()
            }
        }

        impl<T: $($bound)*> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T: $($bound)*> $name<T> {
            /// An unbounded queue.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::new();\nq.put(", $example, ").unwrap();\nassert_eq!(q.len(), 1);\n```")]
            pub fn new() -> Self {
                $name { core: Core::new(None) }
            }

            /// A queue holding at most `max` items (`put` waits while it is
            /// full); 0 makes a rendezvous: `put` waits for a getter.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::bounded(1);\nq.put(", $example, ").unwrap();\nassert!(q.is_full());\nassert!(q.try_put(", $example, ").is_err());\n```")]
            pub fn bounded(max: usize) -> Self {
                $name { core: Core::new(Some(max)) }
            }

            /// Items in the queue now.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert_eq!(verdant_runtime::sync::", stringify!($name), "::<u8>::new().len(), 0);\n```")]
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// Whether the queue holds no item.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert!(verdant_runtime::sync::", stringify!($name), "::<u8>::new().is_empty());\n```")]
            pub fn is_empty(&self) -> bool {
                self.core.len() == 0
            }

            /// Whether `put` would wait.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert!(verdant_runtime::sync::", stringify!($name), "::<u8>::bounded(0).is_full());\n```")]
            pub fn is_full(&self) -> bool {
                self.core.is_full()
            }

            /// The maximum size (`None`: unbounded).
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert_eq!(verdant_runtime::sync::", stringify!($name), "::<u8>::bounded(3).capacity(), Some(3));\n```")]
            pub fn capacity(&self) -> Option<usize> {
                self.core.max
            }

            /// How many greenlets wait in `get`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert_eq!(verdant_runtime::sync::", stringify!($name), "::<u8>::new().getters(), 0);\n```")]
            pub fn getters(&self) -> usize {
                self.core.getters.len()
            }

            /// How many greenlets wait in `put`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nassert_eq!(verdant_runtime::sync::", stringify!($name), "::<u8>::new().putters(), 0);\n```")]
            pub fn putters(&self) -> usize {
                self.core.putters.len()
            }

            /// Puts `item`, waiting while the queue is full.
            ///
            /// # Errors
            ///
            /// [`PutError::Closed`], or [`PutError::Wait`] (`LoopExit`,
            /// `Cancelled`), with the item.
            ///
            /// # Panics
            ///
            /// Raises a kill or timeout-scope expiry delivered while waiting.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::new();\nq.put(", $example, ").unwrap();\nassert_eq!(q.get().unwrap(), ", $example, ");\n```")]
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item)
            }

            /// Puts `item` if there is room now.
            ///
            /// # Errors
            ///
            /// [`PutError::Full`] or [`PutError::Closed`], with the item.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::bounded(0);\nassert!(q.try_put(", $example, ").is_err()); // no getter waits\n```")]
            pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.try_put_now(item)
            }

            /// Puts `item`, waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// [`PutError::Wait`] with [`WaitError::TimedOut`], or as for
            /// `put`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse std::time::Duration;\nlet q = verdant_runtime::sync::", stringify!($name), "::bounded(0);\nassert!(q.put_timeout(", $example, ", Duration::from_millis(1)).is_err());\n```")]
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                self.core.put_until(item, deadline_of(Some(timeout)))
            }

            /// Puts `item`, waiting until `deadline` at the latest.
            ///
            /// # Errors
            ///
            /// As for `put_timeout`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::new();\nq.put_deadline(", $example, ", std::time::Instant::now()).unwrap(); // room: no wait\n```")]
            pub fn put_deadline(&self, item: T, deadline: Instant) -> Result<(), PutError<T>> {
                self.core.put_until(item, Some(deadline))
            }

            /// Takes an item, waiting while the queue is empty.
            ///
            /// # Errors
            ///
            /// [`TakeError::Closed`] once closed and drained;
            /// [`TakeError::Wait`] (`LoopExit`, `Cancelled`).
            ///
            /// # Panics
            ///
            /// Raises a kill or timeout-scope expiry delivered while waiting.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::<u8>::new();\n// Nothing could ever put: a deadlock, reported.\nassert!(q.get().is_err());\n```")]
            pub fn get(&self) -> Result<T, TakeError> {
                self.core.get()
            }

            /// Takes an item if there is one.
            ///
            /// # Errors
            ///
            /// [`TakeError::Empty`] or [`TakeError::Closed`].
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse verdant_runtime::sync::TakeError;\nlet q = verdant_runtime::sync::", stringify!($name), "::<u8>::new();\nassert_eq!(q.try_get(), Err(TakeError::Empty));\n```")]
            pub fn try_get(&self) -> Result<T, TakeError> {
                self.core.try_get_now()
            }

            /// Takes an item, waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// [`TakeError::Wait`] with [`WaitError::TimedOut`], or as for
            /// `get`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse std::time::Duration;\nlet q = verdant_runtime::sync::", stringify!($name), "::<u8>::new();\nassert!(q.get_timeout(Duration::from_millis(1)).is_err());\n```")]
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, TakeError> {
                self.core.get_until(deadline_of(Some(timeout)))
            }

            /// Takes an item, waiting until `deadline` at the latest.
            ///
            /// # Errors
            ///
            /// As for `get_timeout`.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::<u8>::new();\nassert!(q.get_deadline(std::time::Instant::now()).is_err());\n```")]
            pub fn get_deadline(&self, deadline: Instant) -> Result<T, TakeError> {
                self.core.get_until(Some(deadline))
            }

            /// Closes the queue: later puts fail, waiting putters get their
            /// items back, getters drain what is left and then get
            /// [`TakeError::Closed`].
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nuse verdant_runtime::sync::TakeError;\nlet q = verdant_runtime::sync::", stringify!($name), "::new();\nq.put(", $example, ").unwrap();\nq.close();\nassert!(q.put(", $example, ").is_err());\nassert!(q.get().is_ok());\nassert_eq!(q.get(), Err(TakeError::Closed));\n```")]
            pub fn close(&self) {
                self.core.close()
            }

            /// Whether [`close`](Self::close) was called.
            ///
            /// # Examples
            ///
            #[doc = concat!("```\nlet q = verdant_runtime::sync::", stringify!($name), "::<u8>::new();\nq.close();\nassert!(q.is_closed());\n```")]
            pub fn is_closed(&self) -> bool {
                self.core.closed.get()
            }
        }
    };
}

queue_api!(
    /// A FIFO queue (gevent's `Queue`). Share it with `Rc`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use verdant_runtime::{spawn, sync::Queue};
    ///
    /// let q = Rc::new(Queue::bounded(2));
    /// let q2 = q.clone();
    /// let producer = spawn(move || for i in 0..5 { q2.put(i).unwrap(); });
    /// let got: Vec<i32> = (0..5).map(|_| q.get().unwrap()).collect();
    /// assert_eq!(got, [0, 1, 2, 3, 4]);
    /// producer.join().unwrap();
    /// ```
    Queue, Fifo, [Sized], "1"
);

queue_api!(
    /// A last-in, first-out queue (gevent's `LifoQueue`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::LifoQueue::new();
    /// for i in 1..=3 { q.put(i).unwrap(); }
    /// assert_eq!(q.get().unwrap(), 3);
    /// ```
    LifoQueue, Lifo, [Sized], "1"
);

queue_api!(
    /// A queue that gives the smallest item first (gevent's
    /// `PriorityQueue`; use `(priority, item)` pairs or `Reverse`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::PriorityQueue::new();
    /// for p in [3, 1, 2] { q.put(p).unwrap(); }
    /// assert_eq!(q.get().unwrap(), 1);
    /// ```
    PriorityQueue, Prio, [Ord], "1"
);

/// A FIFO [`Queue`] that also counts unfinished work (gevent's
/// `JoinableQueue`): every `put` adds a task, [`task_done`] ends one, and
/// [`join`] waits until none is left.
///
/// [`task_done`]: JoinableQueue::task_done
/// [`join`]: JoinableQueue::join
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{spawn, sync::JoinableQueue};
///
/// let q = Rc::new(JoinableQueue::new());
/// for job in 0..10 { q.put(job).unwrap(); }
/// let worker = { let q = q.clone(); spawn(move || while let Ok(_job) = q.get() { q.task_done().unwrap(); }) };
/// q.join().unwrap(); // every job was done
/// q.close();
/// worker.join().unwrap();
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Default for JoinableQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::JoinableQueue::<u8>::new().unfinished(), 0);
    /// ```
    pub fn new() -> Self {
        JoinableQueue {
            queue: Queue::new(),
        }
    }

    /// A joinable queue of at most `max` items.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::sync::JoinableQueue::<u8>::bounded(4).capacity(), Some(4));
    /// ```
    pub fn bounded(max: usize) -> Self {
        JoinableQueue {
            queue: Queue::bounded(max),
        }
    }

    /// Tasks put and not yet marked done.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::JoinableQueue::new();
    /// q.put(1).unwrap();
    /// assert_eq!(q.unfinished(), 1);
    /// ```
    pub fn unfinished(&self) -> usize {
        self.queue.core.unfinished.get()
    }

    /// Marks one task done; wakes the joiners when none is left.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if no task is unfinished.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::JoinableQueue::new();
    /// q.put(1).unwrap();
    /// q.task_done().unwrap();
    /// assert!(q.task_done().is_err());
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.queue.core.task_done()
    }

    /// Waits until every task put was marked done.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if no greenlet could finish them;
    /// [`WaitError::Cancelled`] while unwinding.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::JoinableQueue::new();
    /// q.put(1).unwrap();
    /// assert!(q.join().is_err()); // no one will do it
    /// ```
    pub fn join(&self) -> Result<(), WaitError> {
        self.queue.core.join_until(None)
    }

    /// Waits at most `timeout` for every task to be done.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`join`](JoinableQueue::join).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = verdant_runtime::sync::JoinableQueue::<u8>::new();
    /// q.join_timeout(std::time::Duration::from_millis(1)).unwrap(); // nothing to do
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.queue.core.join_until(deadline_of(Some(timeout)))
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}
