//! verdant: gevent and greenlet, done right, in Rust.
//!
//! Write one plain function per connection or job, with ordinary loops and
//! blocking-looking calls, and run thousands of them on one thread: every
//! waiting point switches to another greenlet.
//!
//! ```
//! use std::time::Duration;
//! use verdant::prelude::*;
//!
//! let g1 = spawn(|| { sleep(Duration::from_millis(20)); 1 });
//! let g2 = spawn(|| { sleep(Duration::from_millis(10)); 2 });
//! joinall([&g1, &g2]).unwrap();
//! assert_eq!(g1.join().unwrap() + g2.join().unwrap(), 3);
//! ```
//!
//! The crate re-exports [`verdant_runtime`] (greenlets, the hub, tasks, the
//! `sync` primitives) at its root and [`verdant_net`] (std-shaped
//! cooperative sockets) as [`net`]; [`prelude`] holds what most programs
//! use.
#![warn(missing_docs)]

pub use verdant_net as net;

// `with_timeout` and `with_deadline` are deprecated in a `panic = "abort"`
// build only: re-exported as they are.
#[allow(deprecated)]
pub use verdant_runtime::{
    blocking_threads, greenlet_local, hubs, io, iwait, join_thread, joinall, killall,
    killall_timeout, monitor, scope, select, set_blocking_threads, sleep, spawn, spawn_blocking,
    spawn_later, stack, sync, wait_all, wait_any, with_deadline, with_timeout, yield_now,
    BlockingHandle, Builder, Elapsed, Greenlet, GreenletExit, GreenletLocal, Group, Hub, Hubs,
    IWait, JoinAll, JoinAllError, JoinError, JoinErrorKind, JoinHandle, ParentError, Pool,
    PostError, Remote, RemoteRef, RemoteSender, Scope, ScopeError, Value, Waitable,
    DEFAULT_BLOCKING_THREADS,
};
pub use verdant_runtime::{
    GreenletInfo, RunInfo, RunState, Stuck, TraceEvent, TraceFn, TraceKind, Waiting,
};

/// The names most programs need: `use verdant::prelude::*;`.
///
/// Spawning, joining and killing greenlets, sleeping and timeouts, pools
/// and groups, the blocking pool, and the [`sync`]
/// primitives with the channel module. Everything else is one path away
/// at the crate root.
///
/// ```
/// use std::time::Duration;
/// use verdant::prelude::*;
///
/// let pool = Pool::new(2);
/// let done = Event::new();
/// let (tx, rx) = channel::bounded(1);
/// pool.spawn(move || tx.send(spawn_blocking(|| 6 * 7).join().unwrap()).unwrap());
/// assert_eq!(with_timeout(Duration::from_secs(5), || rx.recv().unwrap()), Ok(42));
/// done.set();
/// assert!(done.is_set());
/// ```
pub mod prelude {
    pub use verdant_runtime::sync::{
        channel, AsyncResult, BoundedSemaphore, Condition, Event, JoinableQueue, LifoQueue, Lock,
        PriorityQueue, Queue, RLock, Semaphore,
    };
    #[allow(deprecated)] // as at the root
    pub use verdant_runtime::{
        joinall, killall, sleep, spawn, spawn_blocking, spawn_later, with_deadline, with_timeout,
        yield_now, Builder, Greenlet, GreenletExit, Group, Hub, JoinAll, JoinHandle, Pool, Value,
    };
}

/// gevent's `monkey`: make blocking code cooperate.
///
/// Two ways, both from here:
///
/// * **[`patch_all`](crate::monkey::patch_all)**, for code you did not write: after it, the blocking
///   libc calls that std, Rust crates and C libraries make inside a
///   greenlet (socket reads and writes, `connect`, `poll`, sleeps,
///   `waitpid`, `getaddrinfo`…) park only that greenlet. See
///   [`verdant_runtime::patch`] for how and when.
/// * **the `use`-level swap**, for code you are writing: import `thread`,
///   `net` and `os::unix::net` from here instead of std, and every blocking
///   call is a verdant one (see [`verdant_net::monkey`]).
///
/// ```
/// use std::time::{Duration, Instant};
/// use verdant::prelude::*;
///
/// verdant::monkey::patch_all();
/// let t = Instant::now();
/// let a = spawn(|| std::thread::sleep(Duration::from_millis(40)));
/// let b = spawn(|| std::thread::sleep(Duration::from_millis(40)));
/// joinall([&a, &b]).unwrap();
/// assert!(t.elapsed() < Duration::from_millis(75));
/// ```
pub mod monkey {
    pub use verdant_net::monkey::*;
    #[cfg(all(target_os = "linux", target_env = "gnu", feature = "patch"))]
    pub use verdant_runtime::patch::{blocking, is_patched, patch_all, patched, Patched, ROUTED};
}
