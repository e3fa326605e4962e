//! verdant's std-shaped cooperative networking layer and the `sleep` shim.
//!
//! This crate grows into cooperative sockets (`TcpStream`, `TcpListener`,
//! `UdpSocket`, Unix sockets), DNS off the hub thread, and the `monkey` layer.
//! Today it offers the sleep shim that the monkey layer is built around.
//!
//! ```
//! use std::time::Duration;
//! verdant_net::sleep(Duration::from_millis(1));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use verdant_runtime::sleep;
