//! The classic lesson on IO models, the step before coroutines:
//! the same upper-casing echo server as `echo_server`, written directly on
//! an IO multiplexer (mio's `Poll`, epoll on Linux) with non-blocking
//! sockets, in one thread and without greenlets.
//!
//! `cargo run --release --example select_echo -- [--addr 127.0.0.1] [--port 0]`
//!
//! It prints `listening on <addr>` first (port 0 picks a free port), then
//! serves until killed; nothing else is printed unless something goes wrong
//! (on stderr).
//!
//! Compare it with `echo_server.rs`: there `talk` is a plain loop
//! (`read`, upper-case, `write_all`) and the hub does everything below for
//! it. Here the program is the event loop, and each connection's progress
//! must live in a struct, because no stack is kept between events:
//!
//! * mio is edge-triggered: an event says "something changed", so each
//!   readable event must drain the socket until `WouldBlock`, or the rest
//!   of the data would never be reported again.
//! * A write may be partial or `WouldBlock` when the peer reads slowly: what
//!   was not written stays in the connection's output buffer, and the
//!   connection asks for `WRITABLE` events until it is flushed.
//! * Back-pressure: while the output buffer is over [`MAX_PENDING`] the
//!   connection stops reading (and asks only for `WRITABLE`); as soon as
//!   writing makes room it reads again at once, rather than counting on a
//!   new readable edge for data that arrived while it was not reading.
//! * A peer that half-closes (read returns 0) still gets every reply before
//!   the connection is closed.
//! * `accept` is repeated until `WouldBlock`; when the process is out of
//!   file descriptors it retries on a timer, as no readiness edge would come
//!   for connections already waiting in the backlog.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listener's token; connections get 1, 2, 3, ...
const LISTENER: Token = Token(0);

/// Stop reading from a connection while this much output is not yet sent.
const MAX_PENDING: usize = 256 * 1024;

/// One connection's state between events.
struct Conn {
    stream: TcpStream,
    /// Upper-cased bytes not yet written.
    out: Vec<u8>,
    /// How much of `out` is already written.
    sent: usize,
    /// The peer has finished sending (read returned 0).
    peer_done: bool,
    /// The interest currently registered.
    interest: Interest,
}

/// What to do with a connection after handling an event.
enum Next {
    Keep,
    Close,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Reads until `WouldBlock` (edge-triggered: drain everything), stopping
    /// early only for back-pressure or at the end of the stream.
    fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<()> {
        while !self.peer_done && self.pending() < MAX_PENDING {
            match self.stream.read(scratch) {
                Ok(0) => self.peer_done = true,
                Ok(n) => {
                    scratch[..n].make_ascii_uppercase();
                    self.out.extend_from_slice(&scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes until the output buffer is empty or the socket would block.
    fn flush_some(&mut self) -> io::Result<()> {
        while self.pending() > 0 {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.pending() == 0 {
            // Everything is out: reuse the buffer from its start.
            self.out.clear();
            self.sent = 0;
        } else if self.sent > MAX_PENDING {
            // Drop the written prefix now and then, not after every write.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Makes all the progress possible now: read, write, and read again
    /// when writing made room (the data already waiting brings no new edge).
    fn progress(&mut self, scratch: &mut [u8]) -> io::Result<Next> {
        loop {
            self.read_some(scratch)?;
            let was_full = self.pending() >= MAX_PENDING;
            self.flush_some()?;
            if self.peer_done && self.pending() == 0 {
                return Ok(Next::Close);
            }
            // Reading stopped for back-pressure and writing freed room:
            // read again instead of waiting for an edge that may not come.
            if !(was_full && self.pending() < MAX_PENDING && !self.peer_done) {
                return Ok(Next::Keep);
            }
        }
    }

    /// The events this connection needs next.
    fn wanted(&self) -> Interest {
        let read = !self.peer_done && self.pending() < MAX_PENDING;
        match (read, self.pending() > 0) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            // Nothing to write and not reading cannot happen (it would be
            // closed); READABLE still reports errors and hang-ups.
            (_, false) => Interest::READABLE,
        }
    }
}

/// Accepts every waiting connection. Returns `true` when it had to stop
/// because the process ran out of descriptors (retry later).
fn accept_all(
    poll: &Poll,
    listener: &TcpListener,
    conns: &mut HashMap<Token, Conn>,
    next_token: &mut usize,
) -> bool {
    loop {
        match listener.accept() {
            Ok((mut stream, _peer)) => {
                let token = Token(*next_token);
                *next_token += 1;
                if let Err(e) = poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                {
                    eprintln!("select_echo: register: {e}");
                    continue; // the stream is dropped, closing it
                }
                let _ = stream.set_nodelay(true);
                conns.insert(
                    token,
                    Conn {
                        stream,
                        out: Vec::new(),
                        sent: 0,
                        peer_done: false,
                        interest: Interest::READABLE,
                    },
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: the backlog stays full and
                // edge-triggered epoll will not report it again by itself.
                eprintln!("select_echo: accept: {e} (retrying shortly)");
                return true;
            }
        }
    }
}

fn server(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = 1usize;
    let mut scratch = vec![0u8; 64 * 1024];
    // Set while accepting is stalled for lack of descriptors.
    let mut retry_accept_at: Option<Instant> = None;
    loop {
        let timeout = retry_accept_at.map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut accept_now = retry_accept_at.is_some_and(|t| t <= Instant::now());
        for event in events.iter() {
            let token = event.token();
            if token == LISTENER {
                accept_now = true;
                continue;
            }
            let Some(conn) = conns.get_mut(&token) else {
                continue; // closed earlier in this batch
            };
            // Readable or writable, try both: progress() only does what the
            // socket allows, and an error shows up as a failed read/write.
            let next = match conn.progress(&mut scratch) {
                Ok(next) => next,
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) {
                        eprintln!("select_echo: connection {}: {e}", token.0);
                    }
                    Next::Close
                }
            };
            match next {
                Next::Close => {
                    if let Some(mut c) = conns.remove(&token) {
                        let _ = poll.registry().deregister(&mut c.stream);
                    } // dropping the stream closes it
                }
                Next::Keep => {
                    let want = conn.wanted();
                    if want != conn.interest {
                        poll.registry().reregister(&mut conn.stream, token, want)?;
                        conn.interest = want;
                    }
                }
            }
        }
        if accept_now {
            let stalled = accept_all(&poll, &listener, &mut conns, &mut next_token);
            retry_accept_at = stalled.then(|| Instant::now() + Duration::from_millis(100));
        }
    }
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port = String::from("0");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--addr", Some(v)) => host = v,
            ("--port", Some(v)) => port = v,
            _ => {
                eprintln!("select_echo: bad arguments (use --addr HOST --port PORT)");
                std::process::exit(2);
            }
        }
    }
    let addr = port
        .parse::<u16>()
        .ok()
        .and_then(|port| (host.as_str(), port).to_socket_addrs().ok()?.next());
    let Some(addr) = addr else {
        eprintln!("select_echo: cannot use {host:?} port {port:?} as an address");
        std::process::exit(2);
    };
    if let Err(e) = server(addr) {
        eprintln!("select_echo: {e}");
        std::process::exit(1);
    }
}
