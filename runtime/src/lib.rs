//! verdant's runtime: greenlets on guarded, pooled stacks, and a hub per thread
//! that switches between them whenever one waits.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use verdant_runtime::{joinall, sleep, spawn};
//!
//! let t = Instant::now();
//! let eat = spawn(|| { sleep(Duration::from_millis(30)); "ate" });
//! let play = spawn(|| { sleep(Duration::from_millis(20)); "played" });
//! joinall([&eat, &play]).unwrap();
//! assert_eq!((eat.join().unwrap(), play.join().unwrap()), ("ate", "played"));
//! assert!(t.elapsed() < Duration::from_millis(45)); // the longest sleep, not the sum
//! ```
//!
//! # How it works
//!
//! * [`Greenlet`] is greenlet's switching model: functions with their own
//!   stacks that `switch` to each other, passing [`Value`]s both ways.
//! * The [`Hub`] is one event loop per thread. [`spawn`] schedules a
//!   greenlet whose parent is the hub; [`sleep`], [`JoinHandle::join`] and IO
//!   park the current greenlet and switch to the hub, which runs the next ready
//!   one, fires timers and polls mio. Greenlets never move between threads.
//! * Stacks are mmap'd, lazily committed, guarded with `MADV_GUARD_INSTALL`
//!   (one mapping each, so a million fit under `vm.max_map_count`), cached and
//!   scrubbed on reuse ([`stack`] module docs). An overflow prints
//!   `greenlet '<name>' has overflowed its stack` and aborts.
//! * The everyday API is at the root; the [`sync`] primitives, the [`stack`]
//!   constants and the reactor for implementors of new socket types
//!   ([`io`]) have modules of their own.
//!
//! # Caveats
//!
//! * Everything that blocks the OS thread blocks every greenlet on it:
//!   `std::thread::sleep`, std's blocking sockets, a contended `std::sync::Mutex`.
//!   Use verdant's cooperative versions (`verdant::net`, [`sleep`]), or call
//!   [`patch::patch_all`] so that the blocking libc calls of code you did
//!   not write (std, crates, C libraries) cooperate. A contended
//!   `std::sync::Mutex` and pure computation still block.
//! * Destructors must not wait: a switch or hub wait during unwinding returns at
//!   once without switching (see the Caveats of [`Greenlet`]).
//! * Thread-locals are shared by every greenlet of a thread
//!   ([`greenlet_local!`] gives each greenlet its own).
//!
//! # When things go wrong
//!
//! * A greenlet that panics: its [`JoinError`] holds the message and its
//!   name, and stderr gets a line naming it before the panic hook's
//!   report (verdant wraps the hook installed when the first hub starts,
//!   and runs it on a side stack). A hook the program installs *later*
//!   replaces that wrapper: it runs for greenlet panics on the greenlet's
//!   own stack, without the naming line.
//! * A kill unwinds the greenlet (destructors run). One that catches its
//!   kill in a loop yields at each turn; [`JoinHandle::kill_timeout`] gives
//!   up on it. At a thread's exit it is raised again 100 times, then the
//!   greenlet is leaked with a warning.
//! * A destructor that panics while a greenlet unwinds (a kill, a panic)
//!   aborts the process, as it would on a thread ("panic in a destructor
//!   during cleanup"), after the line naming the greenlet.
//! * `std::process::exit` in a greenlet exits at once: nothing is unwound.
//! * A stack overflow prints the greenlet's name and aborts (see [`stack`]).
//!   A `SIGSEGV` handler the program installs before the first hub is kept
//!   and chained to for other faults; one installed *after* replaces
//!   verdant's, and then gets the overflow itself (on the alternate signal
//!   stack verdant gave each hub thread) instead of verdant's report.
//!
//! `tests/outcomes.rs` checks each of these in a child process.
//!
//! # In a `panic = "abort"` build
//!
//! Such a build cannot unwind a stack, and a kill, an expired
//! [`with_timeout`] scope and the drop of a suspended greenlet all end a
//! greenlet by unwinding it. So there (Cargo sets `cfg(panic = "abort")`
//! for every crate of the program):
//!
//! * Spawning, switching, every wait and its timed form, IO, servers and
//!   a greenlet's panic behave as usual (the panic, after the line naming
//!   the greenlet, aborts the process, as any panic there does).
//! * [`JoinHandle::kill`] (and [`killall`], a `Pool`'s or a server's
//!   kills) of an unstarted greenlet works as usual: it never runs. A
//!   suspended greenlet is **abandoned** instead of unwound: it never runs
//!   again, its stack is leaked, the destructors of its frames do not run
//!   (a socket it owns stays open, a lock it holds stays held), and `join`
//!   reports it killed. Nothing is handed to it afterwards: a value sent or
//!   a lock released goes to the next waiter. One that was woken with a
//!   value before the kill came runs on to its next wait, so the value is
//!   not lost. A greenlet that kills itself is abandoned where it stands.
//! * A suspended greenlet dropped (its last [`Greenlet`] handle gone) or
//!   still parked when its thread ends is abandoned the same way.
//! * The first abandonment prints one warning on stderr.
//! * An expired [`with_timeout`] or [`with_deadline`] scope cannot end
//!   without unwinding: the process says so on stderr and aborts. Both
//!   functions are marked deprecated in such a build, so the compiler warns
//!   first; the timed waits (`read_timeout`, `wait_timeout`,
//!   `recv_timeout`, [`JoinHandle::wait_timeout`]) work as usual.
//! * [`Greenlet::throw`] into a suspended greenlet abandons it, and its
//!   parent gets the [`GreenletExit`]; [`Greenlet::throw_panic`] with any
//!   other payload says so and aborts.
//!
//! CI runs `tests/panic_abort.rs`, a program built with `-C panic=abort`
//! that checks each of these in a child process, and the example servers
//! built that way against the hostile-client tests.
//!
//! # Layers
//!
//! The modules form layers, each using only those below it (a test,
//! `tests/runtime_layering.rs`, reads this list and fails on an import
//! that goes up, or on a cycle outside the core):
//!
//! ```text
//! sys, stack, value, fault, panic          (no runtime state)
//! timer, reactor                           (the hub's timer queue and readiness slab)
//! hub, greenlet                            (the core: records, switch, scheduler, park)
//! io, time, timeout, local, remote         (waits, scopes, cross-thread posts)
//! task                                     (spawn, JoinHandle, kill)
//! sync, blocking                           (wait lists, primitives; the blocking pool)
//! wait, pool, remote_ref, monitor          (iwait/joinall, Pool/Group, cross-thread refs, the monitor)
//! hubs                                     (N hub threads, stopped together)
//! patch                                    (patch_all: the libc functions, cooperative)
//! ```
#![warn(missing_docs)]

mod blocking;
mod fault;
mod greenlet;
mod hub;
pub mod hubs;
pub mod io;
mod local;
pub mod monitor;
mod panic;
#[cfg(all(target_os = "linux", target_env = "gnu", feature = "patch"))]
pub mod patch;
mod pool;
mod reactor;
mod remote;
mod remote_ref;
pub mod stack;
pub mod sync;
mod sys;
mod task;
mod time;
mod timeout;
mod timer;
mod value;
mod wait;

pub use blocking::{
    blocking_threads, join_thread, set_blocking_threads, spawn_blocking, BlockingHandle,
    DEFAULT_BLOCKING_THREADS,
};
pub use greenlet::{Greenlet, GreenletExit, ParentError};
pub use hub::{
    GreenletInfo, Hub, RunInfo, RunState, Stuck, TraceEvent, TraceFn, TraceKind, Waiting,
};
pub use hubs::Hubs;
pub use local::GreenletLocal;
pub use pool::{scope, Group, Pool, Scope, ScopeError};
pub use remote::{PostError, Remote};
pub use remote_ref::{RemoteRef, RemoteSender};
pub use task::{spawn, spawn_later, Builder, JoinError, JoinErrorKind, JoinHandle};
pub use time::{sleep, yield_now};
// Deprecated in a `panic = "abort"` build only (see above); re-exported as is.
#[allow(deprecated)]
pub use timeout::{with_deadline, with_timeout, Elapsed};
pub use value::Value;
pub use wait::{
    iwait, joinall, killall, killall_timeout, wait_all, wait_any, IWait, JoinAll, JoinAllError,
    Waitable,
};
