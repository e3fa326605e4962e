//! Parking and waking: the wait protocol of the module docs, as functions
//! for the layers above (which never touch a record's wait fields), and
//! the two things that end a wait from outside it: kills and expired
//! `with_timeout` scopes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Instant;

use super::info::Waiting;
use super::record::{Inner, Kind, Link};
use super::sched::{Ready, TimerEntry, TAG_READY};
use super::{abort, rt, switch, Runtime};
use crate::greenlet::{Greenlet, GreenletExit};
use crate::timer::{TimerGuard, TimerKey};
use crate::value::{Input, Payload, Value, Wake};

/// Who to wake, and for which of its waits.
#[derive(Clone)]
pub(crate) struct WaitToken {
    pub(super) g: Greenlet,
    pub(super) seq: u64,
}

impl WaitToken {
    /// Whether the wait it names is still on: neither woken nor ended, and
    /// no newer wait begun.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        let inner = &self.g.inner;
        inner.wait_seq.get() == self.seq && !inner.woken.get()
    }

    /// Whether it may still be woken: [`is_current`](WaitToken::is_current)
    /// under a name for the lists that keep tokens until an event prunes
    /// them (a reactor slot's watchers).
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.is_current()
    }

    /// Whether it names the running greenlet's wait number `seq`.
    pub(crate) fn is_wait_of_current(&self, seq: u64) -> bool {
        self.seq == seq && std::ptr::eq(self.g.as_ptr(), rt().current_ptr())
    }

    /// The number of the wait it names.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// The running greenlet may not wait: it is unwinding (a panic, a kill,
/// its drop), and suspending mid-unwind would leak the thread's panic
/// count into every other greenlet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused;

/// The rare cases of [`Runtime::begin_wait`]: an unwinding greenlet may not wait,
/// and a caught kill or expired timeout scope is raised again.
#[cold]
#[inline(never)]
fn begin_wait_refused(inner: &Inner) -> Result<(), Refused> {
    if std::thread::panicking() {
        return Err(Refused);
    }
    if inner.dying.get() && !inner.has_run() {
        return Err(Refused); // its unstarted function is being dropped
    }
    if inner.quiet.get() {
        // A foreign frame is on the stack (see `Inner::quiet`): an expired
        // scope is absorbed, not raised.
        if inner.timeout_fired.get() != 0 && inner.absorbed_scope.get() == 0 {
            inner.absorbed_scope.set(inner.timeout_fired.get());
        }
        return Err(Refused);
    }
    if inner.dying.get() {
        // A drop that the greenlet caught is raised again, at once: the
        // hub is tearing it down (and gives up on it if it keeps catching).
        super::switch::dying_caught(rt(), inner);
    }
    if inner.killed.get() {
        if !abort::UNWINDS {
            // Killed after it was woken (see `deliver_kill`): it ends here.
            abort::abandon_self(rt());
        }
        // A kill that the greenlet caught is raised again, after one turn
        // of the others: a greenlet that catches its kill in a loop must
        // not freeze the hub (it yields at every turn of its loop instead,
        // and its killer's `kill_timeout` can give up).
        rt().one_turn();
        abort::raise(Box::new(GreenletExit));
    }
    if inner.timeout_fired.get() != 0 {
        // So is an expired `with_timeout` scope the greenlet is still in.
        rt().one_turn();
        raise_scope_again(inner.timeout_fired.get());
    }
    Ok(())
}

/// Ends the wait begun by `begin_wait` when dropped (also on unwind), so no
/// late wake-up can reach a greenlet that moved on.
struct WaitEnd<'a>(&'a Inner);

impl Drop for WaitEnd<'_> {
    fn drop(&mut self) {
        self.0.woken.set(true);
        self.0.waiting.set(Waiting::Nothing);
        self.0.site_sp.set(0);
    }
}

/// What a hub wait received other than a wake-up: a throw, or a raw switch
/// that should never have reached it.
#[cold]
#[inline(never)]
fn park_unusual(cur: &Inner, v: Value) -> Result<Wake, Refused> {
    match v.into_input() {
        Input::Wake(w) => Ok(w),
        // A quiet wait cannot unwind (see `Inner::quiet`): a kill or an
        // expired scope is recorded in its flags and raised at the next
        // wait that may unwind; any other payload is dropped.
        Input::Throw(p) if cur.quiet.get() => {
            if p.is::<ScopeSignal>() && cur.absorbed_scope.get() == 0 {
                cur.absorbed_scope.set(cur.timeout_fired.get());
            }
            drop(p);
            Err(Refused)
        }
        Input::Throw(p) => abort::raise(p),
        // Nor can it panic: the stray value is dropped, the wait ends.
        Input::Value(v) if cur.quiet.get() => {
            drop(v);
            Err(Refused)
        }
        Input::Value(v) => panic!(
            "verdant: invalid switch into greenlet '{}' while it waits in the hub (it was sent a `{}`); \
             only the hub may resume a parked greenlet",
            cur.display_name(),
            v.type_name()
        ),
    }
}

impl Runtime {
    /// Starts a hub wait for the running greenlet: returns the token to
    /// register with whatever will wake it, then call
    /// [`park`](Runtime::park).
    ///
    /// # Errors
    ///
    /// [`Refused`] while the greenlet unwinds.
    ///
    /// # Panics
    ///
    /// Raises again a kill or an expired timeout scope that the greenlet
    /// caught.
    ///
    /// `what` is what the greenlet will wait for, for `Hub::run_info` and
    /// the stuck list of a `LoopExit`.
    #[inline]
    pub(crate) fn begin_wait(&self, what: Waiting) -> Result<WaitToken, Refused> {
        let inner = self.current_record();
        if std::thread::panicking()
            || inner.dying.get()
            || inner.killed.get()
            || inner.timeout_fired.get() != 0
        {
            begin_wait_refused(inner)?;
        }
        let cur = self.current();
        let seq = inner.wait_seq.get() + 1;
        inner.wait_seq.set(seq);
        inner.woken.set(false);
        inner.waiting.set(what);
        inner.deadline.set(None);
        Ok(WaitToken { g: cur, seq })
    }

    /// Parks the running greenlet in the hub until its wait token is
    /// woken; returns why it was.
    ///
    /// Called after a successful [`begin_wait`](Runtime::begin_wait) in
    /// the same frame, which has checked that the greenlet may switch (it
    /// is neither unwinding nor being dropped), so the switch does not
    /// check again.
    ///
    /// # Errors
    ///
    /// Never today: a greenlet that may not wait was refused by
    /// `begin_wait`. The `Result` keeps every wait's error handling in one
    /// shape.
    ///
    /// # Panics
    ///
    /// Raises a kill delivered meanwhile (as a `GreenletExit` unwind), and
    /// panics on an invalid switch into a parked greenlet.
    ///
    /// Always inlined: in a binary with many waits, the inliner otherwise
    /// left it behind a call on the channel path (measured 20% slower
    /// there).
    #[inline(always)]
    pub(crate) fn park(&self) -> Result<Wake, Refused> {
        // Not a handle: a greenlet must not keep itself alive while it waits
        // (its waker, timer or link holds it, and nothing else need). The
        // record outlives this frame: it owns the coroutine whose stack this
        // frame is on (or it is main, owned by the runtime).
        let cur = self.current_record();
        let _end = WaitEnd(cur);
        let v = switch::switch_to_hub(self);
        match v.into_wake() {
            Ok(w) => Ok(w),
            Err(v) => park_unusual(cur, v),
        }
    }

    /// A [`park`](Runtime::park) that idle compaction may compact while it
    /// lasts (see `compact`): for sleeps and IO waits only, whose wake-ups
    /// never touch the waiting greenlet's stack. It notes the stack
    /// pointer where the switch happens: always inlined, as `park` and the
    /// switch below it are, so this function's stack pointer is the
    /// switch's.
    #[inline(always)]
    pub(crate) fn park_compactable(&self) -> Result<Wake, Refused> {
        let cur = self.current_record();
        cur.site_sp.set(crate::sys::stack_register() as u32);
        self.park()
    }

    /// A [`park`](Runtime::park) through `switch::probe_switch`, for idle
    /// compaction's probe: the wake-up, and how far below its stack
    /// pointer the switch wrote.
    pub(crate) fn park_probe(&self) -> (Result<Wake, Refused>, Option<usize>) {
        let cur = self.current_record();
        let _end = WaitEnd(cur);
        let (v, depth) = switch::probe_switch(self);
        let woke = match v.into_wake() {
            Ok(w) => Ok(w),
            Err(v) => park_unusual(cur, v),
        };
        (woke, depth)
    }

    /// Parks the running greenlet for one turn of the ready queue: it is
    /// queued behind every greenlet ready now, and may meanwhile also be
    /// woken through `token` (whoever runs first can hand it something: a
    /// rendezvous with a select that waits to send, see `sync::channel`).
    /// Called after [`begin_wait`](Runtime::begin_wait), like
    /// [`park`](Runtime::park).
    ///
    /// # Errors
    ///
    /// As for [`park`](Runtime::park).
    ///
    /// # Panics
    ///
    /// As for [`park`](Runtime::park).
    pub(crate) fn park_one_turn(&self, token: &WaitToken) -> Result<Wake, Refused> {
        // Not marked woken, so the token can still be woken; a wake-up queues
        // a second entry for this wait, made stale below.
        self.push_ready(Ready::new(token.g.clone(), token.seq, TAG_READY));
        let woke = self.park();
        let inner = &token.g.inner;
        inner.wait_seq.set(inner.wait_seq.get() + 1);
        woke
    }

    /// Lets every other ready greenlet run once, then returns (gevent's
    /// `sleep(0)`): the running greenlet goes to the back of the ready
    /// queue. Returns at once while it unwinds.
    #[inline]
    pub(crate) fn yield_now(&self) {
        // Shown as ready (it is woken at once), never as its wait.
        let Ok(token) = self.begin_wait(Waiting::Sleep) else {
            return;
        };
        // The ready queue takes the token: we must not hold ourselves.
        self.wake_live(token);
        let _ = self.park();
    }

    /// [`yield_now`](Runtime::yield_now) for a quiet section (see
    /// `Inner::quiet`) whose greenlet is killed or past an expired scope:
    /// it still lets the others run once, so that foreign code retrying a
    /// failed call in a loop cannot freeze the hub. Does nothing on the
    /// hub's stack, in an unwinding greenlet, or outside a quiet section.
    pub(crate) fn yield_quiet(&self) {
        let inner = self.current_record();
        if !inner.quiet.get()
            || inner.kind() == super::record::Kind::Hub
            || std::thread::panicking()
            || (inner.dying.get() && !inner.has_run())
        {
            return;
        }
        self.one_turn();
    }

    /// Lets every other ready greenlet run once, without the checks of
    /// `begin_wait` (for the callers that have made them: a quiet section,
    /// a caught kill about to be raised again). A throw received meanwhile
    /// is raised.
    fn one_turn(&self) {
        let inner = self.current_record();
        let seq = inner.wait_seq.get() + 1;
        inner.wait_seq.set(seq);
        inner.woken.set(false);
        inner.waiting.set(Waiting::Sleep);
        inner.deadline.set(None);
        self.wake_live(WaitToken {
            g: self.current(),
            seq,
        });
        let _ = self.park();
    }

    /// Queues `token`'s greenlet to be resumed with `wake`, unless that
    /// wait is already over; returns whether it was queued.
    #[inline]
    pub(crate) fn wake(&self, token: &WaitToken, wake: Wake) -> bool {
        token.is_current() && self.wake_owned(token.clone(), wake)
    }

    /// Queues `token`'s greenlet to be resumed with [`Wake::Ready`], for a
    /// caller that knows the wait is current (a wait list's live waiter,
    /// or a wait just begun: `yield_now`). Always inlined: a wait list's
    /// wake-up is a handful of stores, and the inliner otherwise left the
    /// queue push behind a call.
    #[inline(always)]
    pub(crate) fn wake_live(&self, token: WaitToken) {
        debug_assert!(token.is_current());
        token.g.inner.woken.set(true);
        self.push_ready(Ready::new(token.g, token.seq, TAG_READY));
    }

    /// [`wake`](Runtime::wake) for a token the caller gives up (saves a
    /// handle clone).
    #[inline]
    pub(crate) fn wake_owned(&self, token: WaitToken, wake: Wake) -> bool {
        if !token.is_current() {
            return false;
        }
        token.g.inner.woken.set(true);
        self.push_ready(Ready::for_wake(token.g, token.seq, wake));
        true
    }

    /// Arms a timer that wakes `token`'s wait with [`Wake::TimedOut`] at
    /// `deadline`, until the returned guard is dropped.
    #[inline]
    pub(crate) fn arm_timer(
        &self,
        deadline: Instant,
        token: WaitToken,
    ) -> TimerGuard<'_, TimerEntry> {
        token.g.inner.deadline.set(Some(deadline));
        TimerGuard::arm(&self.timers, deadline, TimerEntry::timeout(token))
    }

    /// Delivers `payload` into `g` (unstarted or suspended) on the next tick,
    /// superseding whatever wait it is in.
    pub(super) fn throw_later(&self, g: &Greenlet, payload: Payload) {
        let inner = &g.inner;
        let seq = inner.wait_seq.get() + 1;
        inner.wait_seq.set(seq);
        inner.woken.set(true);
        // A newer throw supersedes a pending one (its entry goes stale).
        drop(inner.pending_throw.replace(Some(payload)));
        self.push_ready(Ready::throw(g.clone(), seq));
    }

    /// Notifies everything linked to `g`, which has just ended.
    pub(super) fn notify_links(&self, g: &Greenlet) {
        // A throw still queued for it has nothing left to hit.
        drop(g.inner.pending_throw.take());
        let links = g.inner.completion.take_links();
        for link in links {
            match link {
                Link::Wake(t) => {
                    self.wake(&t, Wake::Ready);
                }
                Link::Relay(relay, i) => {
                    if let Some(r) = relay.upgrade() {
                        r.fire(i);
                    }
                }
                Link::Drop(x) => drop(x),
            }
        }
    }
}

/// A section of the running greenlet in which its waits are quiet (see
/// `Inner::quiet`): entered by [`Runtime::enter_quiet`], left on drop.
pub(crate) struct Quiet<'a> {
    inner: &'a Inner,
    was: bool,
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.inner.quiet.set(self.was);
    }
}

/// Why a quiet wait was refused, or ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuietEnd {
    /// The greenlet was killed (or is being dropped).
    Killed,
    /// One of its `with_timeout` scopes expired.
    ScopeExpired,
    /// It unwinds (a panic): it may not wait at all.
    Unwinding,
}

impl Runtime {
    /// Makes the running greenlet's waits quiet until the guard drops.
    /// `None` on the hub's own stack, which never waits.
    pub(crate) fn enter_quiet(&self) -> Option<Quiet<'_>> {
        let inner = self.current_record();
        if inner.kind() == super::record::Kind::Hub {
            return None;
        }
        let was = inner.quiet.replace(true);
        Some(Quiet { inner, was })
    }

    /// Whether a call from foreign code (a patched libc function) may wait
    /// in this hub now: not on the hub's own stack, not while the thread
    /// unwinds or the hub shuts down, and not while the runtime itself is
    /// in the middle of using its state (a runtime call that reached libc
    /// while holding a borrow). Otherwise the call must simply block.
    pub(crate) fn may_wait_for_foreign(&self) -> bool {
        let inner = self.current_record();
        inner.kind() != super::record::Kind::Hub
            && !self.shutting_down.get()
            && !std::thread::panicking()
            && self.io.try_borrow_mut().is_ok()
            && self.poller.try_borrow_mut().is_ok()
            && self.timers.try_borrow_mut().is_ok()
            && self.ready.try_borrow_mut().is_ok()
            && self.timed.try_borrow_mut().is_ok()
    }

    /// A patched call fails because the running greenlet's scope expired
    /// (it cannot raise it): the scope will report `Elapsed` even if its
    /// closure returns (see `TimeoutScope::absorbed`).
    pub(crate) fn absorb_expiry(&self) {
        let inner = self.current_record();
        if inner.timeout_fired.get() != 0 && inner.absorbed_scope.get() == 0 {
            inner.absorbed_scope.set(inner.timeout_fired.get());
        }
    }

    /// Whether the running greenlet could wait now, and if not, why: a
    /// quiet caller checks this before it begins, and again when a wait
    /// was refused or cut short.
    pub(crate) fn quiet_check(&self) -> Result<(), QuietEnd> {
        let inner = self.current_record();
        if std::thread::panicking() {
            Err(QuietEnd::Unwinding)
        } else if inner.killed.get() || inner.dying.get() {
            Err(QuietEnd::Killed)
        } else if inner.timeout_fired.get() != 0 {
            Err(QuietEnd::ScopeExpired)
        } else {
            Ok(())
        }
    }
}

/// Delivers a kill to `g` (see `JoinHandle::kill`): [`GreenletExit`] is
/// raised where it waits, or it dies unstarted. Returns whether it was
/// alive (and is now being killed).
///
/// # Panics
///
/// Unwinds at once if `g` is the running greenlet; panics for the main
/// greenlet and the hub, which cannot be killed.
pub(crate) fn deliver_kill(g: &Greenlet) -> bool {
    if g.is_dead() {
        return false;
    }
    if g.is_current() {
        if !abort::UNWINDS && g.inner.kind == Kind::Child {
            abort::abandon_self(rt());
        }
        abort::raise(Box::new(GreenletExit));
    }
    if g.is_main() || g.is_hub() {
        panic!("verdant: the main greenlet and the hub cannot be killed");
    }
    g.inner.killed.set(true);
    if !abort::UNWINDS
        && g.inner.has_run()
        && g.inner.woken.get()
        && g.inner.waiting.get() != Waiting::Nothing
    {
        // Woken, and queued to run with what it was handed (a value, a
        // lock): it cannot unwind to pass that on, so it runs, and is
        // abandoned at its next wait (`begin_wait_refused`).
        return true;
    }
    rt().throw_later(g, Box::new(GreenletExit));
    true
}

/// Makes `token` a joiner of `g`: woken when `g` ends.
pub(crate) fn link_joiner(g: &Greenlet, token: WaitToken) {
    g.inner.completion.with_links(|l| l.push(Link::Wake(token)));
}

/// Drops `x` when `g` ends (at once if it has), however it ends: for what a
/// guard in its frames cannot be trusted with where a kill does not unwind
/// them (see `abort`).
pub(crate) fn link_drop(g: &Greenlet, x: Box<dyn std::any::Any>) {
    if g.is_dead() {
        drop(x);
    } else {
        g.inner.completion.with_links(|l| l.push(Link::Drop(x)));
    }
}

/// Drops the links of `g` whose waits are over (joiners that timed out or
/// were killed, iwaits dropped), so that repeated waits on a long-lived
/// greenlet leave nothing behind.
pub(crate) fn unlink_stale(g: &Greenlet) {
    let stale: Vec<Link> = g.inner.completion.with_links(|links| {
        let (keep, stale): (Vec<Link>, Vec<Link>) = links.drain(..).partition(|l| match l {
            Link::Wake(t) => t.is_current(),
            Link::Relay(w, _) => w.strong_count() > 0,
            Link::Drop(_) => true,
        });
        *links = keep;
        stale
    });
    drop(stale); // once the links are back: a drop may reach them
}

/// Has `relay` fire with `index` when `g` ends.
pub(crate) fn link_relay(g: &Greenlet, relay: &Rc<Relay>, index: usize) {
    g.inner.completion.with_links(|links| {
        // Dropping a dead relay's `Weak` runs no other code.
        links.retain(|l| !matches!(l, Link::Relay(w, _) if w.strong_count() == 0));
        links.push(Link::Relay(Rc::downgrade(relay), index));
    });
}

/// Forgets `relay`'s link to `g` (an iwait dropped before `g` ended).
pub(crate) fn unlink_relay(g: &Greenlet, relay: &Rc<Relay>) {
    let me = Rc::downgrade(relay);
    let gone: Vec<Link> = g.inner.completion.with_links(|links| {
        let (keep, gone) = links.drain(..).partition(
            |l| !matches!(l, Link::Relay(w, _) if w.ptr_eq(&me) || w.strong_count() == 0),
        );
        *links = keep;
        gone
    });
    drop(gone); // once the links are back
}

/// Collects which of an `iwait`'s objects became ready, in order, and
/// wakes the waiting greenlet. (`pub` only because the sealed `Waitable`
/// trait names it; nothing outside the crate can reach it.)
#[derive(Default)]
pub struct Relay {
    fired: RefCell<VecDeque<usize>>,
    token: RefCell<Option<WaitToken>>,
}

impl Relay {
    /// Object `index` is ready.
    pub(crate) fn fire(&self, index: usize) {
        self.fired.borrow_mut().push_back(index);
        let token = self.token.borrow().clone();
        if let Some(t) = token {
            rt().wake(&t, Wake::Ready);
        }
    }

    /// The first object that fired and was not taken yet.
    pub(crate) fn take_fired(&self) -> Option<usize> {
        self.fired.borrow_mut().pop_front()
    }

    /// How many fired and were not taken yet.
    pub(crate) fn fired_len(&self) -> usize {
        self.fired.borrow().len()
    }

    /// Forgets what fired (the rest is being given back).
    pub(crate) fn clear_fired(&self) {
        self.fired.borrow_mut().clear();
    }

    /// The token to wake while its greenlet waits (`None` when it is done).
    pub(crate) fn set_token(&self, token: Option<WaitToken>) {
        let old = self.token.replace(token);
        drop(old);
    }
}

/// The relays watching one object (an `Event`, an `AsyncResult`); fired
/// (and emptied) when it becomes ready.
#[derive(Default)]
pub(crate) struct Relays(RefCell<Vec<(Weak<Relay>, usize)>>);

impl Relays {
    pub(crate) fn add(&self, relay: &Rc<Relay>, index: usize) {
        let mut v = self.0.borrow_mut();
        v.retain(|(w, _)| w.strong_count() > 0); // iwaits dropped undone
        v.push((Rc::downgrade(relay), index));
    }

    pub(crate) fn remove(&self, relay: &Rc<Relay>) {
        let me = Rc::downgrade(relay);
        self.0
            .borrow_mut()
            .retain(|(w, _)| w.strong_count() > 0 && !w.ptr_eq(&me));
    }

    /// Fires every watching relay (cheap when there is none).
    pub(crate) fn fire(&self) {
        if self.0.borrow().is_empty() {
            return;
        }
        let all = std::mem::take(&mut *self.0.borrow_mut());
        for (w, i) in all {
            if let Some(r) = w.upgrade() {
                r.fire(i);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// The payload thrown into a greenlet whose `with_timeout` scope expired.
pub(crate) struct ScopeSignal {
    /// The scope it ends.
    pub(crate) scope: u64,
}

/// A `with_timeout` scope of the running greenlet: its timer throws a
/// [`ScopeSignal`] in at the deadline. Dropping it (also on unwind) ends
/// the scope: cancels the timer and forgets its expiry.
pub(crate) struct TimeoutScope {
    key: TimerKey,
    id: u64,
    g: Greenlet,
}

impl TimeoutScope {
    /// Opens a scope for the running greenlet, expiring at `deadline`.
    pub(crate) fn enter(deadline: Instant) -> TimeoutScope {
        let rt = rt();
        let id = rt.next_id();
        let g = rt.current();
        let key = rt
            .timers
            .borrow_mut()
            .insert(deadline, TimerEntry::scope(g.clone(), id));
        TimeoutScope { key, id, g }
    }

    /// The scope's number, which its [`ScopeSignal`] carries.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether this scope expired inside a quiet wait, which absorbed its
    /// signal instead of raising it (see `Inner::quiet`): the scope then
    /// ends in `Elapsed` even if its closure returns.
    pub(crate) fn absorbed(&self) -> bool {
        self.g.inner.absorbed_scope.get() == self.id
    }
}

impl Drop for TimeoutScope {
    fn drop(&mut self) {
        rt().cancel_timer(&self.key);
        let fired = &self.g.inner.timeout_fired;
        if fired.get() == self.id {
            fired.set(0);
        }
        let absorbed = &self.g.inner.absorbed_scope;
        if absorbed.get() == self.id {
            absorbed.set(0);
        }
    }
}

impl Runtime {
    /// The timer of scope `id` of `g` fired: throw the signal in.
    pub(super) fn expire_scope(&self, g: &Greenlet, id: u64) {
        // A kill already on its way wins: replacing its payload would let the
        // scope catch the signal and the greenlet finish as if never killed.
        if g.is_dead() || g.inner.killed.get() {
            return;
        }
        let fired = &g.inner.timeout_fired;
        // The outermost expired scope wins (scopes nest, so it has the lowest
        // id): its signal passes through the inner ones.
        if !abort::UNWINDS {
            abort::scope_expired(g);
        }
        if fired.get() == 0 || id < fired.get() {
            fired.set(id);
        }
        self.throw_later(g, Box::new(ScopeSignal { scope: fired.get() }));
    }
}

/// Raises an expired scope's signal again (a hub wait inside that scope).
fn raise_scope_again(id: u64) -> ! {
    abort::raise(Box::new(ScopeSignal { scope: id }))
}
