//! Groups of greenlets: [`Group`] (unbounded), [`Pool`] (at most `n` at
//! once: gevent's `Pool`), and the structured [`scope`].
//!
//! ```
//! use std::time::Duration;
//! use verdant_runtime::{sleep, Pool};
//!
//! // Ten slow jobs, at most three at a time, results in input order.
//! let pool = Pool::new(3);
//! let squares = pool.map(0..10u64, |i| { sleep(Duration::from_millis(1)); i * i });
//! assert_eq!(squares.unwrap(), (0..10).map(|i| i * i).collect::<Vec<_>>());
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use crate::greenlet::Greenlet;
use crate::hub::Waiting;
use crate::sync::{channel, Semaphore, WaitError, WaitList};
use crate::task::{JoinError, JoinErrorKind, JoinHandle};
use crate::Builder;

struct GroupInner {
    members: RefCell<BTreeMap<u64, Greenlet>>,
    next: Cell<u64>,
    empty: WaitList<()>,
    /// A pool's slots; `None` for an unbounded group.
    slots: Option<Semaphore>,
    /// The options of members spawned without their own.
    builder: Builder,
}

/// Takes a member out of its group when its greenlet ends (also when it
/// panics or is killed), freeing its pool slot.
struct Leave {
    group: Rc<GroupInner>,
    key: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let g = self.group.members.borrow_mut().remove(&self.key);
        drop(g);
        if let Some(s) = &self.group.slots {
            s.release();
        }
        if self.group.members.borrow().is_empty() {
            self.group.empty.notify_all(|| ());
        }
    }
}

impl GroupInner {
    fn new(slots: Option<usize>, builder: Builder) -> Rc<GroupInner> {
        Rc::new(GroupInner {
            members: RefCell::new(BTreeMap::new()),
            next: Cell::new(0),
            empty: WaitList::default(),
            slots: slots.map(Semaphore::new),
            builder,
        })
    }

    /// Spawns `f` as a member with the group's options.
    #[track_caller]
    fn spawn<F, T>(self: &Rc<Self>, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_with(self.builder.clone(), f)
    }

    /// Spawns `f` as a member; the caller already holds its slot.
    #[track_caller]
    fn spawn_with<F, T>(self: &Rc<Self>, builder: Builder, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        match self.try_spawn_with(builder, f) {
            Ok(h) => h,
            Err(e) => panic!("verdant: failed to spawn a greenlet: {e}"),
        }
    }

    /// Spawns `f` as a member, or says why no greenlet could be made.
    #[track_caller]
    fn try_spawn_with<F, T>(self: &Rc<Self>, builder: Builder, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let key = self.next.get();
        self.next.set(key + 1);
        let leave = Leave {
            group: self.clone(),
            key,
        };
        let h = if crate::hub::UNWINDS {
            builder.spawn(move || {
                let _leave = leave;
                f()
            })?
        } else {
            // A kill abandons a greenlet instead of unwinding it (see
            // `hub::abort`): its frames' guards never run, so it leaves
            // the group when it ends, from the hub.
            let h = builder.spawn(f)?;
            crate::hub::link_drop(h.greenlet(), Box::new(leave));
            h
        };
        self.members.borrow_mut().insert(key, h.greenlet().clone());
        Ok(h)
    }

    fn len(&self) -> usize {
        self.members.borrow().len()
    }

    fn join(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let deadline = crate::timer::deadline_of(timeout);
        while !self.members.borrow().is_empty() {
            self.empty
                .wait(Waiting::Group, deadline, None, &|_| {})
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    }

    fn kill(&self) {
        let members: Vec<Greenlet> = self.members.borrow().values().cloned().collect();
        for g in &members {
            crate::task::kill(g, false);
        }
        for g in &members {
            crate::task::kill(g, true);
        }
    }
}

/// An unbounded set of greenlets to join or kill together (gevent's
/// `Group`). Members leave when they finish.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let group = verdant_runtime::Group::new();
/// for ms in [3, 1, 2] {
///     group.spawn(move || verdant_runtime::sleep(Duration::from_millis(ms)));
/// }
/// assert_eq!(group.len(), 3);
/// group.join().unwrap();
/// assert!(group.is_empty());
/// ```
pub struct Group {
    inner: Rc<GroupInner>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Group::new().is_empty());
    /// ```
    pub fn new() -> Group {
        Group::with_builder(Builder::new())
    }

    /// An empty group whose members are spawned with `builder`'s name and
    /// stack size (unless [`spawn_with`](Group::spawn_with) gives others).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet, Group};
    /// let group = Group::with_builder(Builder::new().name("worker").stack_size(1 << 20));
    /// let h = group.spawn(|| (Greenlet::current().name(), Greenlet::current().stack_size()));
    /// assert_eq!(h.join().unwrap(), ("worker".into(), Some(1 << 20)));
    /// ```
    pub fn with_builder(builder: Builder) -> Group {
        Group {
            inner: GroupInner::new(None, builder),
        }
    }

    /// Spawns `f` into the group.
    ///
    /// # Panics
    ///
    /// As for [`spawn`](crate::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = verdant_runtime::Group::new();
    /// assert_eq!(g.spawn(|| 2).join().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.inner.spawn(f)
    }

    /// Spawns `f` into the group with `builder`'s name and stack size.
    ///
    /// # Panics
    ///
    /// As for [`spawn`](crate::spawn): when no stack can be mapped, or
    /// when the builder's stack size is over
    /// [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet, Group};
    /// let g = Group::new();
    /// let h = g.spawn_with(Builder::new().name("conn-7"), || Greenlet::current().name());
    /// assert_eq!(h.join().unwrap(), "conn-7");
    /// ```
    #[track_caller]
    pub fn spawn_with<F, T>(&self, builder: Builder, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.inner.spawn_with(builder, f)
    }

    /// Spawns `f` into the group with `builder`'s name and stack size, or
    /// returns why no greenlet could be made, where
    /// [`spawn_with`](Group::spawn_with) panics: for a loop that must keep
    /// going when one spawn fails, such as a server's accept loop.
    ///
    /// # Errors
    ///
    /// As for [`Builder::spawn`]: `OutOfMemory` when no stack can be
    /// mapped, `InvalidInput` for a stack size over
    /// [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Group};
    /// let g = Group::new();
    /// let h = g.try_spawn_with(Builder::new(), || 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 7);
    /// ```
    #[track_caller]
    pub fn try_spawn_with<F, T>(&self, builder: Builder, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.inner.try_spawn_with(builder, f)
    }

    /// Members still running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Group::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether every member has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Group::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every member has finished (however it ended).
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] if some member could never finish;
    /// `Cancelled` while unwinding.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = verdant_runtime::Group::new();
    /// g.spawn(|| panic!("a member's panic is its own"));
    /// g.join().unwrap();
    /// ```
    pub fn join(&self) -> Result<(), WaitError> {
        self.inner.join(None)
    }

    /// Waits at most `timeout` for every member to finish.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`], or as for [`join`](Group::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let g = verdant_runtime::Group::new();
    /// g.spawn(|| verdant_runtime::sleep(Duration::from_secs(5)));
    /// assert!(g.join_timeout(Duration::from_millis(1)).is_err());
    /// g.kill();
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.inner.join(Some(timeout))
    }

    /// Kills every member and waits until they are dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let g = verdant_runtime::Group::new();
    /// for _ in 0..3 { g.spawn(|| verdant_runtime::sleep(Duration::from_secs(60))); }
    /// g.kill();
    /// assert!(g.is_empty());
    /// ```
    pub fn kill(&self) {
        self.inner.kill()
    }
}

/// At most `size` greenlets running at once (gevent's `Pool`):
/// [`spawn`](Pool::spawn) waits for a free slot, [`try_spawn`](Pool::try_spawn)
/// does not. A server that spawns each connection into a pool holds its
/// bound under any flood: the accept loop waits for a slot.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let pool = verdant_runtime::Pool::new(2);
/// for _ in 0..5 {
///     pool.spawn(|| verdant_runtime::sleep(Duration::from_millis(2))).unwrap();
///     assert!(pool.len() <= 2);
/// }
/// pool.join().unwrap();
/// ```
pub struct Pool {
    group: Group,
    size: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("len", &self.len())
            .field("size", &self.size)
            .finish()
    }
}

impl Pool {
    /// A pool of `size` slots.
    ///
    /// # Panics
    ///
    /// Panics if `size` is 0 (nothing could ever run).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Pool::new(4).free_count(), 4);
    /// ```
    pub fn new(size: usize) -> Pool {
        Pool::with_builder(size, Builder::new())
    }

    /// A pool of `size` slots whose greenlets (also those of
    /// [`apply`](Pool::apply), [`map`](Pool::map) and the `imap`s) are
    /// spawned with `builder`'s name and stack size.
    ///
    /// # Panics
    ///
    /// Panics if `size` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet, Pool};
    /// let pool = Pool::with_builder(2, Builder::new().name("fetch").stack_size(1 << 20));
    /// let sizes = pool.map(0..3, |_| Greenlet::current().stack_size()).unwrap();
    /// assert_eq!(sizes, vec![Some(1 << 20); 3]);
    /// ```
    pub fn with_builder(size: usize, builder: Builder) -> Pool {
        assert!(size > 0, "verdant: a pool needs at least one slot");
        Pool {
            group: Group {
                inner: GroupInner::new(Some(size), builder),
            },
            size,
        }
    }

    fn slots(&self) -> &Semaphore {
        self.group.inner.slots.as_ref().expect("a pool has slots")
    }

    /// Slots free now.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(1);
    /// p.spawn(|| ()).unwrap();
    /// assert_eq!(p.free_count(), 0);
    /// ```
    pub fn free_count(&self) -> usize {
        self.slots().available()
    }

    /// Greenlets running (or started and not finished).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Pool::new(1).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// Whether no greenlet of the pool is running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Pool::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// Waits for a free slot, then spawns `f` in it.
    ///
    /// # Errors
    ///
    /// The wait for a slot failed (`LoopExit`: no slot could ever free up;
    /// `Cancelled`).
    ///
    /// # Panics
    ///
    /// Raises a kill or timeout-scope expiry delivered while waiting; panics
    /// as [`spawn`](crate::spawn) does if no stack can be mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(1);
    /// let a = p.spawn(|| 1).unwrap();
    /// let b = p.spawn(|| 2).unwrap(); // waits until `a` is done
    /// assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.slots().acquire()?.forget();
        Ok(self.group.inner.spawn(f))
    }

    /// Waits for a free slot, then spawns `f` in it with `builder`'s name
    /// and stack size.
    ///
    /// # Errors
    ///
    /// As for [`Pool::spawn`].
    ///
    /// # Panics
    ///
    /// As for [`Pool::spawn`], and when the builder's stack size is over
    /// [`MAX_STACK_SIZE`](crate::stack::MAX_STACK_SIZE).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{Builder, Greenlet, Pool};
    /// let p = Pool::new(1);
    /// let h = p.spawn_with(Builder::new().name("job-1"), || Greenlet::current().name());
    /// assert_eq!(h.unwrap().join().unwrap(), "job-1");
    /// ```
    #[track_caller]
    pub fn spawn_with<F, T>(&self, builder: Builder, f: F) -> Result<JoinHandle<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.slots().acquire()?.forget();
        Ok(self.group.inner.spawn_with(builder, f))
    }

    /// Spawns `f` if a slot is free now; gives `f` back otherwise.
    ///
    /// # Errors
    ///
    /// `Err(f)` when the pool is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(1);
    /// assert!(p.try_spawn(|| ()).is_ok());
    /// assert!(p.try_spawn(|| ()).is_err());
    /// ```
    #[track_caller]
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, F>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        match self.slots().try_acquire() {
            Some(permit) => {
                permit.forget();
                Ok(self.group.inner.spawn(f))
            }
            None => Err(f),
        }
    }

    /// Runs `f` in the pool and waits for its value (gevent's `apply`).
    ///
    /// # Errors
    ///
    /// The greenlet's [`JoinError`] (its panic, a kill), or a failed wait
    /// for a slot (as `JoinErrorKind::LoopExit`/`Cancelled`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Pool::new(2).apply(|| 6 * 7).unwrap(), 42);
    /// ```
    pub fn apply<F, T>(&self, f: F) -> Result<T, JoinError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn(f).map_err(wait_to_join)?.join()
    }

    /// Applies `f` to every item, at most `size` at once, and returns the
    /// results in input order.
    ///
    /// # Errors
    ///
    /// The first failure in input order (a panic in `f`, a kill).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::{sleep, Pool};
    ///
    /// // Ten slow jobs, at most three at a time, results in input order.
    /// let pool = Pool::new(3);
    /// let squares = pool.map(0..10u64, |i| { sleep(Duration::from_millis(1)); i * i });
    /// assert_eq!(squares.unwrap(), (0..10).map(|i| i * i).collect::<Vec<_>>());
    /// ```
    pub fn map<I, F, T>(&self, items: I, f: F) -> Result<Vec<T>, JoinError>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        self.imap(items, f).collect()
    }

    /// Like [`map`](Pool::map), lazily: an iterator of the results in input
    /// order, spawning ahead as slots allow.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(2);
    /// let firsts: Vec<_> = p.imap(1..=100, |i| i * 10).take(3).map(Result::unwrap).collect();
    /// assert_eq!(firsts, [10, 20, 30]);
    /// ```
    pub fn imap<'a, I, F, T>(
        &'a self,
        items: I,
        f: F,
    ) -> impl Iterator<Item = Result<T, JoinError>> + 'a
    where
        I: IntoIterator,
        I::IntoIter: 'a,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        let f = Rc::new(f);
        let mut items = items.into_iter().fuse();
        let mut pending: std::collections::VecDeque<JoinHandle<T>> = Default::default();
        std::iter::from_fn(move || {
            // Keep every free slot busy, but at least one job in flight.
            while pending.is_empty() || self.free_count() > 0 {
                let Some(item) = items.next() else { break };
                let f = f.clone();
                match self.spawn(move || f(item)) {
                    Ok(h) => pending.push_back(h),
                    Err(e) => return Some(Err(wait_to_join(e))),
                }
            }
            pending.pop_front().map(JoinHandle::join)
        })
    }

    /// Applies `f` to every item, at most `size` at once, yielding results
    /// in completion order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = verdant_runtime::Pool::new(3);
    /// let order: Vec<u64> = p
    ///     .imap_unordered([30u64, 10, 20], |ms| { verdant_runtime::sleep(Duration::from_millis(ms)); ms })
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(order, [10, 20, 30]);
    /// ```
    pub fn imap_unordered<'a, I, F, T>(
        &'a self,
        items: I,
        f: F,
    ) -> impl Iterator<Item = Result<T, JoinError>> + 'a
    where
        I: IntoIterator,
        I::IntoIter: 'a,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        let f = Rc::new(f);
        let mut items = items.into_iter().fuse();
        let (tx, rx) = channel::unbounded::<Result<T, JoinError>>();
        let mut in_flight = 0usize;
        std::iter::from_fn(move || {
            while in_flight == 0 || self.free_count() > 0 {
                let Some(item) = items.next() else { break };
                let (f, tx) = (f.clone(), tx.clone());
                let job = self.spawn(move || f(item));
                match job {
                    Ok(h) => {
                        in_flight += 1;
                        // A watcher reports the job's outcome, panic included.
                        Builder::new()
                            .spawn(move || {
                                let _ = tx.send(h.join());
                            })
                            .expect("verdant: cannot spawn a pool watcher");
                    }
                    Err(e) => return Some(Err(wait_to_join(e))),
                }
            }
            if in_flight == 0 {
                return None;
            }
            in_flight -= 1;
            Some(rx.recv().unwrap_or_else(|e| {
                Err(JoinError::new(
                    JoinErrorKind::Cancelled,
                    format!("imap_unordered: {e}").into(),
                ))
            }))
        })
    }

    /// Waits until every greenlet of the pool has finished.
    ///
    /// # Errors
    ///
    /// As for [`Group::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(1);
    /// p.spawn(|| ()).unwrap();
    /// p.join().unwrap();
    /// assert_eq!(p.free_count(), 1);
    /// ```
    pub fn join(&self) -> Result<(), WaitError> {
        self.group.join()
    }

    /// Kills every greenlet of the pool and waits until they are dead.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = verdant_runtime::Pool::new(2);
    /// p.spawn(|| verdant_runtime::sleep(std::time::Duration::from_secs(60))).unwrap();
    /// p.kill();
    /// assert_eq!(p.free_count(), 2);
    /// ```
    pub fn kill(&self) {
        self.group.kill()
    }
}

fn wait_to_join(e: WaitError) -> JoinError {
    match e {
        WaitError::Cancelled => JoinError::new(JoinErrorKind::Cancelled, "pool".into()),
        WaitError::LoopExit(stuck) => JoinError::loop_exit("pool".into(), stuck),
        _ => JoinError::new(JoinErrorKind::LoopExit, "pool".into()),
    }
}

/// Every failure of a [`scope`]: the children that panicked (in the order
/// they did), and the scope body's own panic, if any.
#[derive(Debug)]
pub struct ScopeError {
    /// The children's panics, first first (without payloads).
    pub errors: Vec<JoinError>,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} greenlet(s) of the scope failed", self.errors.len())?;
        if let Some(first) = self.errors.first() {
            write!(f, "; first: {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScopeError {}

/// Spawns the children of a [`scope`].
pub struct Scope {
    group: Group,
    errors: Rc<RefCell<Vec<JoinError>>>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.group.len())
            .finish()
    }
}

impl Drop for Scope {
    /// The caller unwinds out of `scope` (it was killed while waiting for
    /// the children): the children are killed too, never left behind.
    fn drop(&mut self) {
        let members: Vec<Greenlet> = self
            .group
            .inner
            .members
            .borrow()
            .values()
            .cloned()
            .collect();
        for g in &members {
            crate::task::kill(g, false);
        }
    }
}

impl Scope {
    /// Spawns a child of the scope. If it panics, its siblings are killed
    /// and the scope reports the panic.
    ///
    /// # Examples
    ///
    /// See [`scope`].
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_with(self.group.inner.builder.clone(), f)
    }

    /// Spawns a child of the scope with `builder`'s name and stack size;
    /// otherwise as [`Scope::spawn`].
    ///
    /// # Panics
    ///
    /// As for [`Group::spawn_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::{scope, Builder, Greenlet};
    /// let size = scope(|s| {
    ///     let h = s.spawn_with(Builder::new().name("parser").stack_size(2 << 20), || {
    ///         Greenlet::current().stack_size()
    ///     });
    ///     h.join().unwrap()
    /// });
    /// assert_eq!(size.unwrap(), Some(2 << 20));
    /// ```
    #[track_caller]
    pub fn spawn_with<F, T>(&self, builder: Builder, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let errors = self.errors.clone();
        let group = self.group.inner.clone();
        self.group
            .spawn_with(builder, move || match catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => v,
                Err(p) => {
                    if !p.is::<crate::GreenletExit>() {
                        let name = crate::Greenlet::current().name();
                        let message = crate::hub::panic_message(&*p);
                        errors
                            .borrow_mut()
                            .push(JoinError::from_message(name, message));
                        // Kill the siblings (not ourselves: we are unwinding).
                        let me = crate::hub::current_id();
                        let others: Vec<Greenlet> = group
                            .members
                            .borrow()
                            .values()
                            .filter(|g| g.id() != me)
                            .cloned()
                            .collect();
                        for g in &others {
                            crate::task::kill(g, false);
                        }
                    }
                    resume_unwind(p)
                }
            })
    }
}

/// Runs `f` with a [`Scope`] to spawn children into, and returns only when
/// every child has finished (structured concurrency). On the first panic of
/// a child, its siblings are killed; the scope then returns every child's
/// panic. A panic of `f` itself kills the children, waits for them, and
/// goes on unwinding.
///
/// Children are `'static`, like every greenlet: share data with `Rc`.
///
/// # Errors
///
/// [`ScopeError`] if a child panicked.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{scope, sleep};
///
/// let r = scope(|s| {
///     s.spawn(|| sleep(Duration::from_secs(60))); // killed when its sibling fails
///     s.spawn(|| -> () { panic!("bad input") });
///     "body done"
/// });
/// let err = r.unwrap_err();
/// assert_eq!(err.errors.len(), 1);
/// assert_eq!(err.errors[0].panic_message(), Some("bad input"));
/// ```
pub fn scope<R>(f: impl FnOnce(&Scope) -> R) -> Result<R, ScopeError> {
    let s = Scope {
        group: Group::new(),
        errors: Rc::new(RefCell::new(Vec::new())),
    };
    let body = catch_unwind(AssertUnwindSafe(|| f(&s)));
    if body.is_err() {
        s.group.kill();
    }
    // Children are never left behind: wait for every one, killing them all
    // if the wait itself cannot go on (LoopExit, a kill of the caller).
    if s.group.join().is_err() {
        s.group.kill();
    }
    let errors = std::mem::take(&mut *s.errors.borrow_mut());
    match body {
        Err(p) => resume_unwind(p),
        Ok(_) if !errors.is_empty() => Err(ScopeError { errors }),
        Ok(v) => Ok(v),
    }
}
