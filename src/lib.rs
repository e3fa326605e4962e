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
//! The crate re-exports [`verdant_runtime`] (greenlets, the hub, tasks) at its
//! root and [`verdant_net`] as [`net`].
#![warn(missing_docs)]

pub use verdant_net as net;
pub use verdant_runtime::*;

/// The names most programs need: `use verdant::prelude::*;`.
pub mod prelude {
    pub use verdant_runtime::{
        joinall, killall, sleep, spawn, spawn_later, yield_now, Builder, Greenlet, GreenletExit,
        Hub, JoinAll, JoinHandle, Value,
    };
}
