//! Looking inside a hub: what each greenlet waits on ([`Waiting`], recorded
//! by every hub wait), the list of live greenlets ([`RunInfo`], from
//! [`Hub::run_info`](super::Hub::run_info)), and the greenlets a `LoopExit`
//! leaves stuck ([`Stuck`]).
//!
//! The runtime lists every child greenlet from its creation to its death
//! (`Runtime::live`, a vector of record addresses with each record's index
//! in it: a push at spawn, a swap-remove at death), so a listing walks the
//! live greenlets only, and spawning stays a few stores dearer.

use std::fmt;
use std::os::fd::RawFd;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{Inner, Kind, State, NOT_LISTED};
use super::Runtime;
use crate::greenlet::Greenlet;
use crate::reactor::Direction;
use crate::stack;

/// What a greenlet waits for in the hub: the object of its current wait.
///
/// Part of a [`GreenletInfo`] (from [`Hub::run_info`](crate::Hub::run_info))
/// and of the [`Stuck`] list a `LoopExit` carries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_runtime::{spawn, Hub, RunState, Waiting};
/// let h = spawn(|| verdant_runtime::sleep(Duration::from_millis(20)));
/// verdant_runtime::yield_now(); // let it start and park
/// let info = Hub::current().run_info();
/// let g = info.greenlets().iter().find(|g| g.id == h.id()).unwrap();
/// assert_eq!(g.state, RunState::Waiting(Waiting::Sleep));
/// assert!(g.deadline.is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Waiting {
    /// In no hub wait.
    Nothing,
    /// For a file descriptor (a socket) to become ready in `direction`.
    Io {
        /// The descriptor.
        fd: RawFd,
        /// Readable (`Read`) or writable (`Write`).
        direction: Direction,
    },
    /// In [`sleep`](crate::sleep).
    Sleep,
    /// For its start time ([`spawn_later`](crate::spawn_later)).
    Start,
    /// For the greenlet with this id to end (a join).
    Join {
        /// The id of the greenlet joined.
        id: u64,
    },
    /// For one or all of several things ([`iwait`](crate::iwait),
    /// [`joinall`](crate::joinall), [`wait_any`](crate::wait_any)…).
    Several,
    /// On an [`Event`](crate::sync::Event) or
    /// [`AsyncResult`](crate::sync::AsyncResult).
    Event,
    /// On a [`Semaphore`](crate::sync::Semaphore), a bounded one, a
    /// [`Lock`](crate::sync::Lock) or an [`RLock`](crate::sync::RLock); also
    /// for a free slot of a [`Pool`](crate::Pool) (its slots are a
    /// semaphore).
    Lock,
    /// On a [`Condition`](crate::sync::Condition).
    Condition,
    /// To take from an empty queue or channel.
    Get,
    /// To put into a full queue or channel (or a rendezvous).
    Put,
    /// For a queue's tasks to be done (`join` on a
    /// [`JoinableQueue`](crate::sync::JoinableQueue)).
    QueueJoin,
    /// In a channel [`Select`](crate::sync::channel::Select).
    Select,
    /// For a [`Group`](crate::Group) or [`Pool`](crate::Pool) to empty
    /// (`join`).
    Group,
    /// For a [`spawn_blocking`](crate::spawn_blocking) job.
    Blocking,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Nothing => f.write_str("nothing"),
            Waiting::Io { fd, direction } => {
                let d = match direction {
                    Direction::Read => "readable",
                    Direction::Write => "writable",
                };
                write!(f, "fd {fd} to be {d}")
            }
            Waiting::Sleep => f.write_str("a sleep"),
            Waiting::Start => f.write_str("its start time"),
            Waiting::Join { id } => write!(f, "greenlet #{id} to end"),
            Waiting::Several => f.write_str("several greenlets or waitables"),
            Waiting::Event => f.write_str("an event"),
            Waiting::Lock => f.write_str("a lock or semaphore"),
            Waiting::Condition => f.write_str("a condition"),
            Waiting::Get => f.write_str("a get from a queue or channel"),
            Waiting::Put => f.write_str("a put into a queue or channel"),
            Waiting::QueueJoin => f.write_str("a queue's tasks to be done"),
            Waiting::Select => f.write_str("a channel select"),
            Waiting::Group => f.write_str("a group or pool"),
            Waiting::Blocking => f.write_str("a spawn_blocking job"),
        }
    }
}

/// What a live greenlet is doing, in a [`GreenletInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// It is the running greenlet (the one that asked).
    Running,
    /// In the ready queue: started by `spawn`, woken, or yielding.
    Ready,
    /// Parked in the hub until what it waits for happens.
    Waiting(Waiting),
    /// Switched away from by hand ([`Greenlet::switch`](crate::Greenlet::switch)):
    /// only a switch resumes it.
    SwitchedOut,
    /// Made with [`Greenlet::new`](crate::Greenlet::new) and never switched to.
    NotStarted,
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunState::Running => f.write_str("running"),
            RunState::Ready => f.write_str("ready"),
            RunState::Waiting(w) => write!(f, "waiting for {w}"),
            RunState::SwitchedOut => f.write_str("switched out"),
            RunState::NotStarted => f.write_str("not started"),
        }
    }
}

/// One live greenlet in a [`RunInfo`] or a [`Stuck`] list: a snapshot taken
/// when the list was made.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct GreenletInfo {
    /// Its id (as [`Greenlet::id`](crate::Greenlet::id)).
    pub id: u64,
    /// Its name (as [`Greenlet::name`](crate::Greenlet::name)).
    pub name: String,
    /// Running, ready, or waiting on what.
    pub state: RunState,
    /// When its current wait times out, if it waits with a deadline.
    pub deadline: Option<Instant>,
    /// Where it was spawned: the caller of `spawn`, `Builder::spawn`,
    /// `Pool::spawn`, `Greenlet::new`…
    pub spawned_at: &'static Location<'static>,
    /// How long ago it was made: from the hub's last check of timers before
    /// its spawn (the hub checks about every millisecond while busy and
    /// after every wait in its poll), so it can be overstated by the length
    /// of the turn that spawned it; stamping each spawn with the clock
    /// would cost more than the rest of a spawn's bookkeeping.
    pub age: Duration,
    /// Its stack's usable size.
    pub stack_size: usize,
    /// The deepest its stack has been used so far, in bytes (its high-water
    /// mark: compare with `stack_size` to size stacks). `None` where it
    /// cannot be read (under valgrind) and in a [`Stuck`] list. For a
    /// greenlet whose stack was compacted while it waited
    /// ([`Hub::set_idle_compaction`](crate::Hub::set_idle_compaction)), the
    /// deepest it had been at a switch; compaction gives the stack's memory
    /// back, so use from before it is forgotten once it runs again.
    pub stack_used: Option<usize>,
}

impl fmt::Display for GreenletInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} '{}' {}", self.id, self.name, self.state)?;
        if let Some(d) = self.deadline {
            let now = Instant::now();
            if d > now {
                write!(f, " (times out in {:.3} s)", (d - now).as_secs_f64())?;
            } else {
                f.write_str(" (timed out)")?;
            }
        }
        write!(
            f,
            "; spawned at {}, {:.3} s ago",
            self.spawned_at,
            self.age.as_secs_f64()
        )?;
        match self.stack_used {
            Some(u) => write!(
                f,
                "; stack {} of {} KiB used",
                kib(u),
                self.stack_size / 1024
            ),
            None => write!(f, "; stack {} KiB", self.stack_size / 1024),
        }
    }
}

/// Bytes as KiB, with one decimal below 10 KiB.
fn kib(bytes: usize) -> String {
    if bytes < 10 * 1024 {
        format!("{:.1}", bytes as f64 / 1024.0)
    } else {
        (bytes / 1024).to_string()
    }
}

/// The live greenlets of a hub and what each is doing: gevent's
/// `format_run_info`, from [`Hub::run_info`](crate::Hub::run_info).
/// `Display` prints one line per greenlet, oldest first.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{sync::Event, Builder, Hub};
/// let e = Rc::new(Event::new());
/// let e2 = e.clone();
/// let h = Builder::new().name("waiter").spawn(move || e2.wait()).unwrap();
/// verdant_runtime::yield_now();
/// let text = Hub::current().run_info().to_string();
/// assert!(text.contains("'waiter' waiting for an event"), "{text}");
/// e.set();
/// h.join().unwrap().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct RunInfo {
    thread: String,
    greenlets: Vec<GreenletInfo>,
}

impl RunInfo {
    /// The live greenlets (the main greenlet and the hub are not listed),
    /// oldest first.
    pub fn greenlets(&self) -> &[GreenletInfo] {
        &self.greenlets
    }

    /// The name of the hub's thread (or its id, if it has no name).
    pub fn thread(&self) -> &str {
        &self.thread
    }
}

impl fmt::Display for RunInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.greenlets.len();
        write!(
            f,
            "verdant hub of thread '{}': {n} live greenlet{}",
            self.thread,
            if n == 1 { "" } else { "s" }
        )?;
        for g in &self.greenlets {
            write!(f, "\n  {g}")?;
        }
        Ok(())
    }
}

/// The greenlets that a `LoopExit` leaves waiting for something that can no
/// longer happen, and what each waits for: the cause of the deadlock.
/// Carried by [`WaitError::LoopExit`](crate::sync::WaitError::LoopExit(_))
/// and the other `LoopExit` errors; `Display` names them.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use verdant_runtime::{sync::Event, Builder};
/// let never = Rc::new(Event::new());
/// let n = never.clone();
/// let stuck = Builder::new().name("stuck").spawn(move || n.wait()).unwrap();
/// match stuck.join() {
///     Err(e) => {
///         let who = e.stuck().unwrap();
///         assert_eq!(who.greenlets()[0].name, "stuck");
///         assert!(e.to_string().contains("'stuck' waiting for an event"), "{e}");
///     }
///     Ok(_) => unreachable!(),
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stuck {
    greenlets: Arc<[GreenletInfo]>,
}

impl Stuck {
    /// The stuck greenlets, oldest first (empty when none is: the waiter
    /// itself waited on something nothing else could end).
    pub fn greenlets(&self) -> &[GreenletInfo] {
        &self.greenlets
    }
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.greenlets.is_empty() {
            return f.write_str("no other greenlet is waiting");
        }
        let n = self.greenlets.len();
        write!(
            f,
            "{n} greenlet{} can never be woken:",
            if n == 1 { "" } else { "s" }
        )?;
        // A deadlock among thousands should not print thousands of lines.
        const SHOWN: usize = 16;
        for g in self.greenlets.iter().take(SHOWN) {
            write!(
                f,
                "\n  #{} '{}' {} (spawned at {})",
                g.id, g.name, g.state, g.spawned_at
            )?;
        }
        if n > SHOWN {
            write!(f, "\n  … and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

impl Runtime {
    /// Adds a new child record to the live list.
    pub(super) fn list(&self, inner: &Inner) {
        let mut live = self.live.borrow_mut();
        inner.listed_at.set(live.len() as u32);
        live.push(inner as *const Inner);
    }

    /// Takes a record off the live list (it died, or is being dropped);
    /// nothing happens if it is not there.
    pub(super) fn unlist(&self, inner: &Inner) {
        let i = inner.listed_at.replace(NOT_LISTED);
        if i == NOT_LISTED {
            return;
        }
        let mut live = self.live.borrow_mut();
        live.swap_remove(i as usize);
        if let Some(&moved) = live.get(i as usize) {
            // SAFETY: (listed) every address in `live` names a live record.
            unsafe { (*moved).listed_at.set(i) };
        }
    }

    /// What `inner` (a listed record) is doing.
    fn run_state(&self, inner: &Inner) -> RunState {
        match inner.state.get() {
            State::Running => RunState::Running,
            State::Unstarted if inner.waiting.get() == Waiting::Start && !inner.woken.get() => {
                RunState::Waiting(Waiting::Start)
            }
            State::Unstarted if inner.task => RunState::Ready,
            State::Unstarted => RunState::NotStarted,
            State::Suspended if self.has_pending_throw(inner) => RunState::Ready,
            State::Suspended => match inner.waiting.get() {
                Waiting::Nothing => RunState::SwitchedOut,
                _ if inner.woken.get() => RunState::Ready,
                w => RunState::Waiting(w),
            },
            // Not listed; kept total for a record caught mid-death.
            State::Dead => RunState::SwitchedOut,
        }
    }

    /// Whether a kill or an expired timeout scope is queued for `inner`
    /// (then it is in the ready queue, whatever it waited for).
    fn has_pending_throw(&self, inner: &Inner) -> bool {
        let p = inner.pending_throw.take();
        let has = p.is_some();
        inner.pending_throw.set(p);
        has
    }

    fn info_of(&self, inner: &Inner, now: Instant, stack_used: bool) -> GreenletInfo {
        let state = self.run_state(inner);
        let fault = inner.fault_ptr();
        // SAFETY: the fault record's stack fields are written once, at
        // creation, before the record is shared.
        let (lo, usable) = unsafe { ((*fault).guard_hi, (*fault).usable) };
        let used = if !stack_used {
            None
        } else if let Some(d) = (inner.state.get() != State::Running)
            .then(|| Runtime::compacted_depth(inner))
            .flatten()
        {
            Some(d) // compacted: its stack reads as zero
        } else if inner.has_run() {
            stack::used_depth(lo, lo + usable)
        } else {
            Some(0)
        };
        GreenletInfo {
            id: inner.id,
            name: inner.display_name().into_owned(),
            state,
            deadline: match state {
                RunState::Waiting(_) => inner.deadline.get(),
                _ => None,
            },
            spawned_at: inner.site,
            age: now.saturating_duration_since(inner.born),
            stack_size: usable,
            stack_used: used,
        }
    }

    /// The live records, oldest first.
    pub(super) fn live_records(&self) -> Vec<&Inner> {
        let live = self.live.borrow();
        // SAFETY: (listed) every address in `live` names a live record; the
        // references do not outlive this call's caller, which runs nothing
        // that could end a greenlet while it holds them.
        let mut v: Vec<&Inner> = live.iter().map(|&p| unsafe { &*p }).collect();
        v.sort_unstable_by_key(|i| i.id);
        v
    }

    /// Handles to the live greenlets that `keep` selects, oldest first: for
    /// the teardown passes that unwind them one by one (a handle keeps each
    /// alive while an earlier one's destructors run).
    pub(super) fn live_greenlets(&self, keep: impl Fn(&Inner) -> bool) -> Vec<Greenlet> {
        self.live_records()
            .into_iter()
            .filter(|r| keep(r))
            // SAFETY: (listed) a listed record is alive while it is listed,
            // and every handle is made before anything runs.
            .map(|r| unsafe { Greenlet::from_borrowed_ptr(r) })
            .collect()
    }

    /// A snapshot of the live greenlets (see [`RunInfo`]).
    pub(crate) fn run_info(&self) -> RunInfo {
        let now = Instant::now();
        let greenlets = self
            .live_records()
            .into_iter()
            .map(|i| self.info_of(i, now, true))
            .collect();
        let t = std::thread::current();
        RunInfo {
            thread: t
                .name()
                .map_or_else(|| format!("{:?}", t.id()), str::to_owned),
            greenlets,
        }
    }

    /// The greenlets parked in hub waits that nothing can end, for a
    /// `LoopExit` just delivered to the running greenlet (which is left
    /// out).
    pub(crate) fn stuck(&self) -> Stuck {
        let now = Instant::now();
        let me = self.current_ptr();
        let greenlets: Vec<GreenletInfo> = self
            .live_records()
            .into_iter()
            .filter(|i| !std::ptr::eq(*i, me) && i.kind == Kind::Child)
            .map(|i| self.info_of(i, now, false))
            .filter(|g| matches!(g.state, RunState::Waiting(_)))
            .collect();
        Stuck {
            greenlets: greenlets.into(),
        }
    }
}
