//! Waiting for any or all of several things at once: [`iwait`],
//! [`wait_any`], [`wait_all`] (gevent's `iwait` and `wait`), and
//! [`joinall`] / [`killall`] on top of them.

use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::hub::Outcome;
use crate::hub::{self, Relay};
use crate::hub::{Stuck, Waiting};
use crate::sync::{AsyncResult, Event, WaitError};
use crate::task::{kill, wait_dead, JoinError, JoinHandle};
use crate::timer::deadline_after;
use crate::value::Wake;
use crate::Greenlet;

/// Something [`iwait`], [`wait_any`] and [`wait_all`] can wait for:
/// [`JoinHandle`] and [`Greenlet`] (it finished, however it ended), [`Event`]
/// (set) and [`AsyncResult`] (delivered), and references or `Rc`s to them.
/// Use `&dyn Waitable` to mix kinds.
///
/// Sealed: implemented by verdant's types only.
///
/// # Examples
///
/// ```
/// use verdant_runtime::{spawn, sync::Event, wait_any, Waitable};
/// let ev = Event::new();
/// let h = spawn(|| ());
/// assert!(!ev.is_ready());
/// // Mixed kinds, as trait objects.
/// let objs: [&dyn Waitable; 2] = [&ev, &h];
/// assert_eq!(wait_any(objs, None), Ok(1));
/// ```
pub trait Waitable: sealed::Sealed {
    /// Whether waiting for it would return at once.
    fn is_ready(&self) -> bool;
}

pub(crate) mod sealed {
    use std::rc::Rc;

    use crate::hub::Relay;

    /// Registration with a waited-for object.
    pub trait Sealed {
        /// Calls `relay.fire(index)` once, when the object becomes ready.
        fn watch(&self, relay: &Rc<Relay>, index: usize);
        /// Forgets a `watch` that has not fired.
        fn unwatch(&self, relay: &Rc<Relay>);
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
}
impl<W: Waitable + ?Sized> sealed::Sealed for &W {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        (**self).watch(relay, index)
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        (**self).unwatch(relay)
    }
}

impl<W: Waitable + ?Sized> Waitable for Rc<W> {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
}
impl<W: Waitable + ?Sized> sealed::Sealed for Rc<W> {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        (**self).watch(relay, index)
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        (**self).unwatch(relay)
    }
}

impl Waitable for Greenlet {
    fn is_ready(&self) -> bool {
        self.is_dead()
    }
}
impl sealed::Sealed for Greenlet {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        hub::link_relay(self, relay, index);
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        hub::unlink_relay(self, relay);
    }
}

impl<T: 'static> Waitable for JoinHandle<T> {
    fn is_ready(&self) -> bool {
        self.greenlet().is_ready()
    }
}
impl<T: 'static> sealed::Sealed for JoinHandle<T> {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        self.greenlet().watch(relay, index)
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        self.greenlet().unwatch(relay)
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }
}
impl sealed::Sealed for Event {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        self.relays().add(relay, index);
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        self.relays().remove(relay);
    }
}

impl<T: Clone, E: Clone> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
}
impl<T: Clone, E: Clone> sealed::Sealed for AsyncResult<T, E> {
    fn watch(&self, relay: &Rc<Relay>, index: usize) {
        self.relays().add(relay, index);
    }
    fn unwatch(&self, relay: &Rc<Relay>) {
        self.relays().remove(relay);
    }
}

/// Yields waited-for objects as they become ready: see [`iwait`].
pub struct IWait<W: Waitable> {
    objects: Vec<Option<W>>,
    relay: Rc<Relay>,
    remaining: usize,
    deadline: Option<Instant>,
    stopped: Option<WaitError>,
}

impl<W: Waitable> fmt::Debug for IWait<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IWait")
            .field("remaining", &self.remaining)
            .field("ready", &self.relay.fired_len())
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// Waits for `objects`, yielding each `(position, object)` as it becomes
/// ready, in that order (gevent's `iwait`): greenlets' ends
/// ([`JoinHandle`]), [`Event`]s being set and [`AsyncResult`]s being
/// delivered, in any mix. The iteration ends when every object was
/// yielded, at the timeout, or when no object could ever become ready
/// (`LoopExit`); [`stopped`](IWait::stopped) tells which, and
/// [`remaining`](IWait::remaining) gives back the objects not yielded.
///
/// It registers with every object at the start (gevent's `rawlink`), so the
/// order is kept even for objects that become ready while the caller is
/// busy with an earlier one. Objects already ready at the start come
/// first, in the order given. An [`Event`] counts as ready once it was set,
/// even if it is cleared again before the caller looks. Channels have
/// [`Select`](crate::sync::channel::Select) instead.
///
/// The hub runs other greenlets while the iterator waits; it never waits
/// between the objects already ready.
///
/// # Examples
///
/// Completion order:
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{iwait, sleep, spawn};
///
/// let hs: Vec<_> = [30u64, 10, 20]
///     .into_iter()
///     .map(|ms| spawn(move || { sleep(Duration::from_millis(ms)); ms }))
///     .collect();
/// let order: Vec<u64> = iwait(hs).map(|(_i, h)| h.join().unwrap()).collect();
/// assert_eq!(order, [10, 20, 30]);
/// ```
///
/// Mixed kinds, with a timeout:
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{iwait, spawn, sync::Event, Waitable};
///
/// let ev = Event::new();
/// let h = spawn(|| 5);
/// let objs: [&dyn Waitable; 2] = [&ev, &h];
/// let mut it = iwait(objs).timeout(Duration::from_millis(10));
/// assert_eq!(it.next().map(|(i, _)| i), Some(1)); // the greenlet ends
/// assert!(it.next().is_none()); // nobody sets the event
/// assert_eq!(it.stopped(), Some(verdant_runtime::sync::WaitError::TimedOut));
/// assert_eq!(it.remaining().len(), 1);
/// ```
pub fn iwait<W, I>(objects: I) -> IWait<W>
where
    W: Waitable,
    I: IntoIterator<Item = W>,
{
    let relay = Rc::new(Relay::default());
    let objects: Vec<Option<W>> = objects.into_iter().map(Some).collect();
    for (i, o) in objects.iter().enumerate() {
        let o = o.as_ref().expect("all present at the start");
        if o.is_ready() {
            relay.fire(i);
        } else {
            o.watch(&relay, i);
        }
    }
    IWait {
        remaining: objects.len(),
        objects,
        relay,
        deadline: None,
        stopped: None,
    }
}

impl<W: Waitable> IWait<W> {
    /// Stops waiting `timeout` from now (objects already ready are still
    /// yielded).
    ///
    /// # Examples
    ///
    /// See [`iwait`].
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.deadline = timeout.into().map(deadline_after);
        self
    }

    /// Stops waiting at `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use verdant_runtime::{iwait, sync::Event};
    /// let ev = Event::new();
    /// assert_eq!(iwait([&ev]).deadline(Instant::now()).count(), 0);
    /// ```
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Why the iteration ended early: `TimedOut`, `LoopExit` (nothing could
    /// make the rest ready) or `Cancelled` (the caller is unwinding); `None`
    /// while it goes on or once every object was yielded.
    ///
    /// # Examples
    ///
    /// See [`iwait`].
    pub fn stopped(&self) -> Option<WaitError> {
        self.stopped.clone()
    }

    /// The objects not yielded yet, with their positions.
    ///
    /// # Examples
    ///
    /// See [`iwait`].
    pub fn remaining(&mut self) -> Vec<(usize, W)> {
        let relay = self.relay.clone();
        self.relay.clear_fired();
        self.remaining = 0;
        self.objects
            .iter_mut()
            .enumerate()
            .filter_map(|(i, o)| o.take().map(|o| (i, o)))
            .inspect(|(_, o)| o.unwatch(&relay))
            .collect()
    }

    /// Parks until an object fires, the deadline passes, or nothing can
    /// happen any more.
    fn park(&mut self) -> Result<(), WaitError> {
        if self.deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(WaitError::TimedOut);
        }
        let rt = hub::rt();
        let token = rt
            .begin_wait(Waiting::Several)
            .map_err(|_| WaitError::Cancelled)?;
        self.relay.set_token(Some(token.clone()));
        /// Takes the token back (also on unwind).
        struct Clear<'a>(&'a Relay);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.set_token(None);
            }
        }
        let _clear = Clear(&self.relay);
        let timer = self.deadline.map(|d| rt.arm_timer(d, token));
        let woke = rt.park();
        drop(timer);
        match woke {
            Ok(Wake::Ready) => Ok(()),
            Ok(Wake::TimedOut) => Err(WaitError::TimedOut),
            Ok(Wake::LoopExit) => Err(WaitError::loop_exit()),
            Err(_) => Err(WaitError::Cancelled),
        }
    }
}

impl<W: Waitable> Iterator for IWait<W> {
    type Item = (usize, W);

    fn next(&mut self) -> Option<(usize, W)> {
        loop {
            let first = self.relay.take_fired();
            if let Some(i) = first {
                if let Some(o) = self.objects[i].take() {
                    self.remaining -= 1;
                    return Some((i, o));
                }
                continue;
            }
            if self.remaining == 0 || self.stopped.is_some() {
                return None;
            }
            if let Err(why) = self.park() {
                // What fired meanwhile is still yielded; then it stops.
                if self.relay.fired_len() == 0 {
                    self.stopped = Some(why);
                    return None;
                }
                self.stopped = Some(why);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.relay.fired_len(), Some(self.remaining))
    }
}

impl<W: Waitable> Drop for IWait<W> {
    fn drop(&mut self) {
        for o in self.objects.iter().flatten() {
            o.unwatch(&self.relay);
        }
    }
}

/// Waits until one of `objects` is ready; returns its position (gevent's
/// `wait(objects, count=1)`). `timeout: None` waits for ever.
///
/// # Errors
///
/// [`WaitError::TimedOut`], [`WaitError::LoopExit`] (nothing could make one
/// ready), [`WaitError::Cancelled`] (the caller is unwinding).
///
/// # Panics
///
/// Panics if `objects` is empty (the wait could never end). Raises a kill
/// or timeout-scope expiry delivered while waiting.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{sleep, spawn, wait_any};
/// let slow = spawn(|| sleep(Duration::from_secs(5)));
/// let quick = spawn(|| sleep(Duration::from_millis(1)));
/// assert_eq!(wait_any([&slow, &quick], Duration::from_secs(1)), Ok(1));
/// slow.kill();
/// ```
pub fn wait_any<W, I>(objects: I, timeout: impl Into<Option<Duration>>) -> Result<usize, WaitError>
where
    W: Waitable,
    I: IntoIterator<Item = W>,
{
    let mut it = iwait(objects).timeout(timeout);
    assert!(
        it.remaining > 0,
        "verdant: wait_any over no object would wait forever"
    );
    match it.next() {
        Some((i, _)) => Ok(i),
        None => Err(it.stopped().unwrap_or_else(WaitError::loop_exit)),
    }
}

/// Waits until every one of `objects` is ready (gevent's `wait(objects)`).
/// `timeout: None` waits for ever.
///
/// # Errors
///
/// As for [`wait_any`]; on an error, some objects may be ready.
///
/// # Panics
///
/// Raises a kill or timeout-scope expiry delivered while waiting.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{spawn, sync::{AsyncResult, Event}, wait_all, Waitable};
/// let ev = Rc::new(Event::new());
/// let res: Rc<AsyncResult<u8>> = Rc::new(AsyncResult::new());
/// let (e, r) = (ev.clone(), res.clone());
/// spawn(move || { e.set(); r.set(1).unwrap(); });
/// let objs: [&dyn Waitable; 2] = [&*ev, &*res];
/// wait_all(objs, None).unwrap();
/// assert_eq!(res.get(), Ok(1));
/// ```
pub fn wait_all<W, I>(objects: I, timeout: impl Into<Option<Duration>>) -> Result<(), WaitError>
where
    W: Waitable,
    I: IntoIterator<Item = W>,
{
    let mut it = iwait(objects).timeout(timeout);
    for _ in it.by_ref() {}
    match it.stopped() {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

/// Why [`JoinAll::join`] stopped early.
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinAllError {
    /// With [`JoinAll::raise_error`]: the first greenlet (in time) to panic.
    Failed {
        /// Its position among the handles given.
        index: usize,
        /// What happened (the payload stays with its handle's `join`).
        error: JoinError,
    },
    /// The wait could never end (gevent's `LoopExit`); the [`Stuck`] list
    /// names the greenlets left waiting (empty when the caller itself was
    /// among those it had to wait for).
    LoopExit(Stuck),
    /// The waiting greenlet is unwinding and may not wait.
    Cancelled,
}

impl fmt::Display for JoinAllError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinAllError::Failed { index, error } => write!(f, "greenlet #{index} failed: {error}"),
            JoinAllError::LoopExit(stuck) => write!(
                f,
                "LoopExit: joinall would wait forever (nothing is ready, timed or watched); {stuck}",
            ),
            JoinAllError::Cancelled => f.write_str("cannot wait while unwinding"),
        }
    }
}

impl std::error::Error for JoinAllError {}

/// Waits for many greenlets at once: gevent's `joinall` with its options.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{spawn, sleep, JoinAll};
///
/// let hs: Vec<_> = (0..3u64)
///     .map(|i| spawn(move || sleep(Duration::from_millis(10 * i))))
///     .collect();
/// let done = JoinAll::new().count(2).join(&hs).unwrap();
/// assert_eq!(done, [0, 1]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct JoinAll {
    timeout: Option<Duration>,
    raise_error: bool,
    count: Option<usize>,
}

impl JoinAll {
    /// Wait for all, no timeout, failures left in the handles.
    ///
    /// # Examples
    ///
    /// ```
    /// let _j = verdant_runtime::JoinAll::new();
    /// ```
    pub fn new() -> JoinAll {
        JoinAll::default()
    }

    /// Gives up after `timeout`, returning what finished by then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = verdant_runtime::spawn(|| verdant_runtime::sleep(Duration::from_secs(9)));
    /// let done = verdant_runtime::JoinAll::new()
    ///     .timeout(Duration::from_millis(5))
    ///     .join([&h])
    ///     .unwrap();
    /// assert!(done.is_empty());
    /// h.kill();
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> JoinAll {
        self.timeout = Some(timeout);
        self
    }

    /// Stops at the first greenlet to panic (first in time, not in list
    /// order) and returns it as [`JoinAllError::Failed`]. Kills are not
    /// failures.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_runtime::{spawn, sleep, JoinAll, JoinAllError};
    /// let slow = spawn(|| sleep(Duration::from_millis(50)));
    /// let bad = spawn(|| panic!("bad"));
    /// let r = JoinAll::new().raise_error(true).join([&slow, &bad]);
    /// assert!(matches!(r, Err(JoinAllError::Failed { index: 1, .. })));
    /// assert!(!slow.is_finished());
    /// ```
    pub fn raise_error(mut self, yes: bool) -> JoinAll {
        self.raise_error = yes;
        self
    }

    /// Returns once `n` greenlets have finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = verdant_runtime::spawn(|| ());
    /// assert_eq!(verdant_runtime::JoinAll::new().count(1).join([&a]).unwrap(), [0]);
    /// ```
    pub fn count(mut self, n: usize) -> JoinAll {
        self.count = Some(n);
        self
    }

    /// Waits as configured; returns the positions of the greenlets that
    /// finished, in the order given (a greenlet listed twice counts twice).
    ///
    /// # Errors
    ///
    /// See [`JoinAllError`].
    ///
    /// # Examples
    ///
    /// ```
    /// let hs = vec![verdant_runtime::spawn(|| 1), verdant_runtime::spawn(|| 2)];
    /// assert_eq!(verdant_runtime::JoinAll::new().join(&hs).unwrap(), [0, 1]);
    /// ```
    pub fn join<I>(&self, handles: I) -> Result<Vec<usize>, JoinAllError>
    where
        I: IntoIterator,
        I::Item: AsRef<Greenlet>,
    {
        let gs: Vec<Greenlet> = handles.into_iter().map(|h| h.as_ref().clone()).collect();
        let needed = self.count.unwrap_or(gs.len()).min(gs.len());
        // The caller cannot finish while it waits: wait for the others, and
        // if the count needs the caller too, the wait could never end.
        let others: Vec<usize> = (0..gs.len()).filter(|&i| !gs[i].is_current()).collect();
        if needed > others.len() {
            return Err(JoinAllError::LoopExit(Stuck::default()));
        }
        let mut it = iwait(others.iter().map(|&i| &gs[i]));
        if let Some(t) = self.timeout {
            it = it.timeout(t);
        }
        let mut done = Vec::with_capacity(needed);
        while done.len() < needed {
            let Some((k, g)) = it.next() else { break };
            let i = others[k];
            done.push(i);
            let c = g.inner.completion();
            if self.raise_error && c.outcome() == Outcome::Panicked {
                // No payload: it stays with the handle, for its `join`.
                let error = JoinError::from_message(g.name(), c.panic_message());
                return Err(JoinAllError::Failed { index: i, error });
            }
        }
        match it.stopped() {
            Some(WaitError::LoopExit(stuck)) => return Err(JoinAllError::LoopExit(stuck)),
            Some(WaitError::Cancelled) => return Err(JoinAllError::Cancelled),
            _ => {} // all done, or timed out: what finished by then
        }
        done.sort_unstable();
        Ok(done)
    }
}

/// Waits until every greenlet in `handles` has finished (gevent's
/// `joinall`). Failures stay in the handles, to be read with `join`.
///
/// # Errors
///
/// [`JoinAllError::LoopExit`] when some greenlet can never finish and nothing
/// else can happen; [`JoinAllError::Cancelled`] when called while unwinding.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use verdant_runtime::{joinall, sleep, spawn};
///
/// let t = Instant::now();
/// let a = spawn(|| sleep(Duration::from_millis(30)));
/// let b = spawn(|| sleep(Duration::from_millis(20)));
/// joinall([&a, &b]).unwrap();
/// assert!(t.elapsed() < Duration::from_millis(45)); // concurrent, not 50 ms
/// ```
pub fn joinall<I>(handles: I) -> Result<(), JoinAllError>
where
    I: IntoIterator,
    I::Item: AsRef<Greenlet>,
{
    JoinAll::new().join(handles).map(|_| ())
}

/// Kills every greenlet in `handles` and waits until all are dead.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{killall, sleep, spawn};
/// let hs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// sleep(Duration::ZERO);
/// killall(&hs);
/// assert!(hs.iter().all(|h| h.is_finished()));
/// ```
pub fn killall<I>(handles: I)
where
    I: IntoIterator,
    I::Item: AsRef<Greenlet>,
{
    kill_and_wait(handles, None);
}

/// Kills every greenlet of `handles`, then waits for each to die until
/// `deadline`; returns the greenlets.
fn kill_and_wait<I>(handles: I, deadline: Option<Instant>) -> Vec<Greenlet>
where
    I: IntoIterator,
    I::Item: AsRef<Greenlet>,
{
    let gs: Vec<Greenlet> = handles.into_iter().map(|h| h.as_ref().clone()).collect();
    for g in &gs {
        kill(g, false);
    }
    for g in &gs {
        let _ = wait_dead(g, deadline);
    }
    gs
}

/// Kills every greenlet in `handles` and waits at most `timeout` for all
/// of them to die (gevent's `killall(timeout=...)`); returns how many are
/// still alive then (greenlets that catch their kill, see
/// [`JoinHandle::kill_timeout`](crate::JoinHandle::kill_timeout)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{killall_timeout, sleep, spawn};
/// let hs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// sleep(Duration::ZERO);
/// assert_eq!(killall_timeout(&hs, Duration::from_secs(1)), 0);
/// ```
pub fn killall_timeout<I>(handles: I, timeout: Duration) -> usize
where
    I: IntoIterator,
    I::Item: AsRef<Greenlet>,
{
    let deadline = crate::timer::deadline_after(timeout);
    let gs = kill_and_wait(handles, Some(deadline));
    gs.iter().filter(|g| !g.is_dead()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn;

    fn links(h: &JoinHandle<()>) -> usize {
        h.greenlet().inner.completion().links_len()
    }

    #[test]
    fn registrations_are_dropped_with_the_iwait() {
        let long = spawn(|| crate::sleep(Duration::from_secs(60)));
        let ev = Event::new();
        for _ in 0..1000 {
            let objs: [&dyn Waitable; 2] = [&long, &ev];
            assert_eq!(wait_any(objs, Duration::ZERO), Err(WaitError::TimedOut));
        }
        assert_eq!(links(&long), 0);
        assert!(ev.relays().len() == 0);
        // Half consumed, then dropped.
        let quick = spawn(|| ());
        let mut it = iwait([&quick, &long]);
        assert_eq!(it.next().map(|(i, _)| i), Some(0));
        assert_eq!(links(&long), 1);
        drop(it);
        assert_eq!(links(&long), 0);
        long.kill();
    }

    #[test]
    fn a_killed_waiter_leaves_no_registration() {
        let ev = std::rc::Rc::new(Event::new());
        let e = ev.clone();
        let waiter = spawn(move || {
            let _ = wait_any([&*e], None);
        });
        crate::sleep(Duration::ZERO);
        assert_eq!(ev.relays().len(), 1);
        waiter.kill();
        assert!(ev.relays().len() == 0);
    }
}
