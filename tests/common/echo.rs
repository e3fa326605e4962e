//! An echo service served two ways, for the tests that compare what a
//! `StreamServer` connection costs with the seed's hand-written accept loop
//! (its kept frames, its heap blocks).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use verdant::net::{StreamServer, TcpListener, TcpStream};

/// The seed's echo loop, on a small buffer.
pub fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 64];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// What stops a service started by [`by_hand`] or [`by_stream_server`].
pub type Stop = Box<dyn FnOnce()>;

/// Serves `listener` with [`echo`] from an accept loop that spawns a
/// greenlet per connection (the seed's form).
pub fn by_hand(listener: TcpListener) -> Stop {
    let accept = verdant::spawn(move || loop {
        let Ok((conn, _)) = listener.accept() else {
            return;
        };
        verdant::spawn(move || echo(conn));
    });
    Box::new(move || accept.kill())
}

/// Serves `listener` with [`echo`] under a `StreamServer`; stopping it
/// asserts that no connection had to be cut off.
pub fn by_stream_server(listener: TcpListener) -> Stop {
    let server = StreamServer::builder().listener(listener, |conn, _| echo(conn));
    server.start().unwrap();
    Box::new(move || assert_eq!(server.stop(Duration::from_secs(5)), 0))
}

/// A new connection to `addr` after one checked round trip of 8 bytes.
pub fn round_trip(addr: SocketAddr, tag: u8) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(&[tag; 8]).unwrap();
    let mut back = [0u8; 8];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, [tag; 8]);
    c
}
