//! [`RemoteRef`]: a `Send + Sync` reference to a value that lives on one hub's
//! thread, so that other OS threads can set an [`Event`] or an
//! [`AsyncResult`] and wake the hub; and [`RemoteSender`], a channel's
//! sending end for other threads.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::remote::{PostError, Remote};
use crate::sync::channel::{SendError, Sender};
use crate::sync::{AsyncResult, Event};
use crate::Hub;

thread_local! {
    /// The values of this thread's hub that `RemoteRef`s point at.
    static PINNED: RefCell<HashMap<u64, Rc<dyn Any>>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The shared part of a [`RemoteRef`]; its drop takes the value out of the
/// hub's table.
struct Pin {
    remote: Remote,
    id: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let id = self.id;
        let unpin = move || {
            // Dropped outside the table's borrow: the value's own drop may
            // use the runtime.
            let v = PINNED.with(|p| p.borrow_mut().remove(&id));
            drop(v);
        };
        // Posted even from the hub's own thread: it must come after every
        // post sent before it by any clone (a clone's posts happen before
        // its drop, and the channel keeps that order). A gone hub took its
        // table with it.
        let _ = self.remote.post(unpin);
    }
}

/// A `Send + Sync` reference to a hub-local value (an `Rc<T>`), for other
/// OS threads: [`post`](RemoteRef::post) runs a closure with `&T` on the
/// hub's thread, in a new greenlet, and wakes the hub.
///
/// It is how a worker thread sets an [`Event`] or an [`AsyncResult`]
/// ([`set`](RemoteRef::<Event>::set)): the types themselves are `!Send` and
/// stay on their thread (to send on a channel, use its
/// [`RemoteSender`]). Posts from one thread run in the order sent.
/// The value is dropped on its own thread once every clone of the `RemoteRef`
/// is gone (and the posts sent before that have run).
///
/// Like [`Remote`], a live `RemoteRef` keeps its idle hub waiting for posts
/// instead of reporting `LoopExit`.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{sync::Event, RemoteRef};
///
/// let done = Rc::new(Event::new());
/// let remote_done = RemoteRef::new(done.clone());
/// let worker = std::thread::spawn(move || {
///     // ... work on another thread, then:
///     remote_done.set().unwrap();
/// });
/// done.wait().unwrap(); // the hub keeps running other greenlets meanwhile
/// worker.join().unwrap();
/// ```
pub struct RemoteRef<T: 'static> {
    pin: Arc<Pin>,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Clone for RemoteRef<T> {
    fn clone(&self) -> Self {
        RemoteRef {
            pin: self.pin.clone(),
            _value: PhantomData,
        }
    }
}

impl<T: 'static> fmt::Debug for RemoteRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteRef")
            .field("type", &std::any::type_name::<T>())
            .field("remote", &self.pin.remote)
            .finish()
    }
}

impl<T: 'static> RemoteRef<T> {
    /// Pins `value` to the current thread's hub and returns a reference
    /// other threads can use.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = verdant_runtime::RemoteRef::new(std::rc::Rc::new(5u8));
    /// let r2 = r.clone();
    /// std::thread::spawn(move || r2.post(|v| assert_eq!(*v, 5)).unwrap()).join().unwrap();
    /// verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// ```
    pub fn new(value: Rc<T>) -> RemoteRef<T> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        PINNED.with(|p| p.borrow_mut().insert(id, value));
        RemoteRef {
            pin: Arc::new(Pin {
                remote: Hub::current().remote(),
                id,
            }),
            _value: PhantomData,
        }
    }

    /// Runs `f` with the value on its hub's thread, in a new greenlet (so
    /// `f` may wait: a `send` into a full channel waits there, not here).
    ///
    /// # Errors
    ///
    /// [`PostError`] if the hub's thread has exited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let count = Rc::new(Cell::new(0));
    /// let r = verdant_runtime::RemoteRef::new(count.clone());
    /// std::thread::spawn(move || r.post(|c| c.set(c.get() + 1)).unwrap()).join().unwrap();
    /// verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// assert_eq!(count.get(), 1);
    /// ```
    #[track_caller]
    pub fn post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce(&T) + Send + 'static,
    {
        let id = self.pin.id;
        self.pin.remote.post(move || {
            let v = PINNED.with(|p| p.borrow().get(&id).cloned());
            // Present: this post was sent by a live RemoteRef, and the value
            // leaves the table only after the last one's drop, which is
            // posted after it.
            if let Some(v) = v {
                if let Some(v) = v.downcast_ref::<T>() {
                    f(v);
                }
            }
        })
    }

    /// The hub the value lives on.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = verdant_runtime::RemoteRef::new(std::rc::Rc::new(()));
    /// assert!(r.remote().is_alive());
    /// ```
    pub fn remote(&self) -> &Remote {
        &self.pin.remote
    }
}

impl RemoteRef<Event> {
    /// Sets the event (and wakes its waiters) from any thread.
    ///
    /// # Errors
    ///
    /// [`PostError`] if the hub's thread has exited.
    ///
    /// # Examples
    ///
    /// See [`RemoteRef`].
    pub fn set(&self) -> Result<(), PostError> {
        self.post(|e| {
            e.set();
        })
    }
}

impl<T, E> RemoteRef<AsyncResult<T, E>>
where
    T: Clone + Send + 'static,
    E: Clone + Send + 'static,
{
    /// Delivers `value` from any thread; a second delivery is ignored, as
    /// [`AsyncResult::set`] would refuse it.
    ///
    /// # Errors
    ///
    /// [`PostError`] if the hub's thread has exited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use verdant_runtime::{sync::AsyncResult, RemoteRef};
    /// let answer: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
    /// let r = RemoteRef::new(answer.clone());
    /// std::thread::spawn(move || r.set(42).unwrap());
    /// assert_eq!(answer.get(), Ok(42));
    /// ```
    pub fn set(&self, value: T) -> Result<(), PostError> {
        self.post(move |r| {
            let _ = r.set(value);
        })
    }

    /// Delivers an error from any thread.
    ///
    /// # Errors
    ///
    /// [`PostError`] if the hub's thread has exited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use verdant_runtime::{sync::{AsyncResult, GetError}, RemoteRef};
    /// let answer: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
    /// let r = RemoteRef::new(answer.clone());
    /// std::thread::spawn(move || r.set_error("no".into()).unwrap());
    /// assert_eq!(answer.get(), Err(GetError::Failed("no".into())));
    /// ```
    pub fn set_error(&self, error: E) -> Result<(), PostError> {
        self.post(move |r| {
            let _ = r.set_error(error);
        })
    }
}

/// The hub's end of a [`RemoteSender`]: messages queued by other threads,
/// forwarded into the channel by one greenlet at a time.
struct Forward<T> {
    tx: Sender<T>,
    rx: crossbeam_channel::Receiver<T>,
    /// Set while a forwarding greenlet is posted or running.
    scheduled: Arc<AtomicBool>,
    /// Every receiver is gone: later sends fail.
    disconnected: Arc<AtomicBool>,
}

impl<T> Forward<T> {
    fn drain(&self) {
        loop {
            while let Ok(msg) = self.rx.try_recv() {
                if self.tx.send(msg).is_err() {
                    // Receivers gone (or this greenlet is being killed):
                    // the rest can never be delivered.
                    self.disconnected.store(true, Ordering::Release);
                    while self.rx.try_recv().is_ok() {}
                    self.scheduled.store(false, Ordering::Release);
                    return;
                }
            }
            self.scheduled.store(false, Ordering::SeqCst);
            // A sender that queued after the last `try_recv` saw the flag
            // still set and posted nothing: look once more.
            if self.rx.is_empty() || self.scheduled.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// A `Send + Sync` sending end of a hub's [`channel`](crate::sync::channel)
/// for other OS threads (get one with [`Sender::remote`]): Go's view of a
/// channel that any thread may send on.
///
/// Messages go through a thread-safe queue that one greenlet on the hub
/// drains into the channel (one wake-up per batch, not per message), in the
/// order each thread sent them. The queue holds at most the channel's
/// capacity (at least 1) for a bounded channel, so a sending thread blocks
/// while the hub is behind: backpressure, as in Go. For an unbounded
/// channel it is unbounded.
///
/// A live `RemoteSender` counts as a sender of the channel (receivers see
/// the disconnection once every one is dropped and its messages are
/// delivered), and keeps its idle hub waiting like [`Remote`].
///
/// # Examples
///
/// ```
/// use verdant_runtime::sync::channel;
/// let (tx, rx) = channel::bounded(4);
/// let remote_tx = tx.remote();
/// drop(tx);
/// let worker = std::thread::spawn(move || {
///     for i in 0..100 { remote_tx.send(i).unwrap(); } // blocks while the hub is behind
/// });
/// assert_eq!(rx.iter().sum::<i32>(), 4950); // ends when the worker's sender is gone
/// worker.join().unwrap();
/// ```
pub struct RemoteSender<T: Send + 'static> {
    q: crossbeam_channel::Sender<T>,
    fwd: RemoteRef<Forward<T>>,
    scheduled: Arc<AtomicBool>,
    disconnected: Arc<AtomicBool>,
}

impl<T: Send + 'static> Clone for RemoteSender<T> {
    fn clone(&self) -> Self {
        RemoteSender {
            q: self.q.clone(),
            fwd: self.fwd.clone(),
            scheduled: self.scheduled.clone(),
            disconnected: self.disconnected.clone(),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for RemoteSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSender")
            .field("queued", &self.q.len())
            .finish()
    }
}

impl<T: Send + 'static> Sender<T> {
    /// A sending end for other OS threads: see [`RemoteSender`].
    ///
    /// # Examples
    ///
    /// See [`RemoteSender`].
    pub fn remote(&self) -> RemoteSender<T> {
        let (q, rx) = match self.capacity() {
            Some(cap) => crossbeam_channel::bounded(cap.max(1)),
            None => crossbeam_channel::unbounded(),
        };
        let scheduled = Arc::new(AtomicBool::new(false));
        let disconnected = Arc::new(AtomicBool::new(false));
        let fwd = RemoteRef::new(Rc::new(Forward {
            tx: self.clone(),
            rx,
            scheduled: scheduled.clone(),
            disconnected: disconnected.clone(),
        }));
        RemoteSender {
            q,
            fwd,
            scheduled,
            disconnected,
        }
    }
}

impl<T: Send + 'static> RemoteSender<T> {
    /// Sends `msg` from any thread; blocks this OS thread while the queue
    /// to the hub is full (bounded channels only).
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] with the message, once every receiver is
    /// gone or the hub's thread has exited. A message queued just before
    /// the receivers went is dropped on the hub.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::sync::channel::{self, SendError};
    /// let (tx, rx) = channel::unbounded::<u8>();
    /// let remote_tx = tx.remote();
    /// drop(rx);
    /// verdant_runtime::sleep(std::time::Duration::ZERO);
    /// # remote_tx.send(1).ok(); verdant_runtime::sleep(std::time::Duration::from_millis(1));
    /// assert!(matches!(remote_tx.send(2), Err(SendError::Disconnected(2))));
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        if self.disconnected.load(Ordering::Acquire) {
            return Err(SendError::Disconnected(msg));
        }
        if let Err(e) = self.q.send(msg) {
            return Err(SendError::Disconnected(e.into_inner())); // the hub is gone
        }
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            // Nothing to hand back: the message waits in the queue, which
            // went with the hub.
            let _ = self.fwd.post(|f| f.drain());
        }
        Ok(())
    }
}
