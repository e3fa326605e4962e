//! [`StreamServer`]: gevent's `StreamServer(addr, handle)`: a listener, an
//! accept loop, and a greenlet per connection running `handle(conn, peer)`,
//! with the defaults a production server wants and a graceful stop.
//!
//! The plain form of a server is a loop over `accept` that spawns a
//! greenlet per connection, and it stays a fine way to write one:
//!
//! ```
//! use std::io::{Read, Write};
//! use verdant_net::TcpListener;
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = verdant_runtime::spawn(move || {
//!     let (mut conn, _peer) = listener.accept().unwrap(); // in a loop
//!     verdant_runtime::spawn(move || {
//!         let mut buf = [0u8; 1024];
//!         let n = conn.read(&mut buf).unwrap();
//!         conn.write_all(&buf[..n]).unwrap();
//!     });
//! });
//! let mut c = verdant_net::TcpStream::connect(addr).unwrap();
//! c.write_all(b"hi").unwrap();
//! let mut reply = [0u8; 2];
//! c.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply, b"hi");
//! server.join().unwrap();
//! ```
//!
//! `StreamServer` is that loop, plus what the loop leaves out:
//!
//! * **`TCP_NODELAY` on every accepted connection**, as Go does: a server
//!   that answers a request with a small write must not wait for the
//!   client's delayed ACK (Nagle's algorithm against delayed ACKs cost the
//!   seed's echo server 40 ms per round trip).
//! * **A bound on connections** ([`max_connections`](StreamServerBuilder::max_connections),
//!   default [`DEFAULT_MAX_CONNECTIONS`]): at the bound the loop stops
//!   accepting until a handler returns, so the kernel's backlog holds the
//!   rest (gevent's `spawn=Pool(n)`).
//! * **Timeouts on accepted connections** ([`read_timeout`](StreamServerBuilder::read_timeout),
//!   [`write_timeout`](StreamServerBuilder::write_timeout); none by
//!   default, as in std and Go): an idle or stalled client then fails its
//!   handler's read or write with `WouldBlock` instead of holding a
//!   greenlet forever.
//! * **A loop that does not die**: a connection whose greenlet cannot be
//!   made (no stack could be mapped) is refused (closed) with a line on
//!   stderr, and an accept error (descriptors exhausted) is logged and
//!   retried after a pause; the server keeps serving either way.
//! * **A graceful stop**: [`stop(grace)`](StreamServer::stop) closes the
//!   listener, waits up to `grace` for the handlers, then kills the rest
//!   (their destructors run) and says how many it killed.
//! * **Many hubs**: [`bind_hubs`](StreamServerBuilder::bind_hubs) binds
//!   once, before the hub threads start, and gives each hub of a
//!   [`Hubs`](verdant_runtime::Hubs) run a server of its own
//!   ([`HubsListener::server`]). The connections are spread over the hubs
//!   in one of two ways ([`Spread`]): a listener per hub on the same port
//!   (`SO_REUSEPORT`, the kernel picks), or one acceptor on hub 0 handing
//!   them to the hubs in turn.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use verdant_net::{StreamServer, TcpStream};
//! use verdant_runtime::Hubs;
//!
//! let listener = StreamServer::builder().bind_hubs("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr();
//! let hubs = Hubs::new().threads(2);
//! let stopper = hubs.stopper();
//! let client = std::thread::spawn(move || {
//!     let mut c = std::net::TcpStream::connect(addr).unwrap();
//!     c.write_all(b"ping").unwrap();
//!     let mut reply = [0u8; 4];
//!     c.read_exact(&mut reply).unwrap();
//!     stopper.stop();
//!     reply
//! });
//! let exits = hubs
//!     .run(move |hub| -> std::io::Result<usize> {
//!         // On each hub thread: its own server, its own handler.
//!         let server = listener.server(hub, |mut conn: TcpStream, _peer| {
//!             let mut buf = [0u8; 64];
//!             while let Ok(n @ 1..) = conn.read(&mut buf) {
//!                 let _ = conn.write_all(&buf[..n]);
//!             }
//!         })?;
//!         server.start()?;
//!         hub.wait_stop();
//!         Ok(server.stop(Duration::from_secs(1)))
//!     })
//!     .unwrap();
//! assert_eq!(&client.join().unwrap(), b"ping");
//! assert!(exits.iter().all(|e| e.result.as_ref().unwrap().is_ok()));
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use verdant_runtime::hubs::HubContext;
use verdant_runtime::sync::channel::{self, Receiver, Sender};
use verdant_runtime::sync::{Event, Semaphore};
use verdant_runtime::{Builder, Group, JoinHandle, RemoteSender};

use crate::dns::{each_addr, Resolve};
use crate::{TcpListener, TcpStream};

/// The default bound on a server's connections at once
/// ([`StreamServerBuilder::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The default length of the kernel's queue of connections not yet
/// accepted (`listen`'s backlog; Linux caps it at `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// The longest pause after a failed `accept` (it doubles from 5 ms).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

type Handler = dyn Fn(TcpStream, SocketAddr);

/// A TCP server: accepts connections and runs a handler for each in a
/// greenlet of its own (gevent's `StreamServer`). See the
/// [module docs](self) for what it adds to a plain accept loop.
///
/// It belongs to the hub of the thread that made it, like the sockets it
/// serves. To use every core, make one per hub thread with
/// [`reuse_port`](StreamServerBuilder::reuse_port).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use verdant_net::{StreamServer, TcpStream};
///
/// let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
///     let mut buf = [0u8; 1024];
///     while let Ok(n @ 1..) = conn.read(&mut buf) {
///         if conn.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
///             break;
///         }
///     }
/// })
/// .unwrap();
/// server.start().unwrap();
/// let mut c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
/// c.write_all(b"hello").unwrap();
/// let mut reply = [0u8; 5];
/// c.read_exact(&mut reply).unwrap();
/// assert_eq!(&reply, b"HELLO");
/// drop(c); // the handler reads the end of the stream and returns
/// assert_eq!(server.stop(Duration::from_secs(1)), 0); // none had to be killed
/// ```
pub struct StreamServer {
    inner: Rc<Inner>,
}

struct Inner {
    /// Taken (and closed) by `stop`; the accept loop holds a clone while
    /// it waits, so no borrow of the cell is held across a wait. `None`
    /// from the start on a round-robin hub other than the acceptor's.
    listener: RefCell<Option<Rc<TcpListener>>>,
    /// Round-robin ([`Spread::RoundRobin`]): the hubs' shared turn, this
    /// hub's index in it, and the connections handed to this hub.
    share: Option<RrMember>,
    addr: SocketAddr,
    handler: Rc<Handler>,
    config: StreamServerBuilder,
    handlers: Group,
    slots: Rc<Semaphore>,
    /// The accept loop, and in round-robin mode the inbox loop.
    loops: RefCell<Vec<JoinHandle<()>>>,
    stopped: Cell<bool>,
    refused: Cell<u64>,
    /// Set when a loop of the server has ended, however it ended.
    done: Event,
}

/// One hub's part in a round-robin [`HubsListener`].
struct RrMember {
    shared: Arc<RoundRobin>,
    index: usize,
    /// This hub's end of its inbox; the acceptor (on hub 0) sends to it
    /// through `shared`, or through `local` when it is itself the target.
    inbox: RefCell<Option<Rc<Receiver<Handoff>>>>,
    local: Sender<Handoff>,
    /// Connections handed to this hub and not yet finished (shared with
    /// the entry in `shared`, which the acceptor reads).
    load: Arc<AtomicUsize>,
}

/// What the accept loop got: a connection to serve here, or (round-robin)
/// one to hand to a hub.
enum Accepted {
    Here(TcpStream, SocketAddr),
    Away(Handoff),
}

/// A connection on its way to a hub: the std stream, registered nowhere,
/// and the peer.
type Handoff = (std::net::TcpStream, SocketAddr);

/// Options of a [`StreamServer`], then [`bind`](StreamServerBuilder::bind)
/// or [`listener`](StreamServerBuilder::listener) to make it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use verdant_net::StreamServer;
///
/// let server = StreamServer::builder()
///     .max_connections(100)
///     .read_timeout(Some(Duration::from_secs(30)))
///     .bind("127.0.0.1:0", |_conn, _peer| {})
///     .unwrap();
/// assert_ne!(server.local_addr().unwrap().port(), 0);
/// ```
#[derive(Clone)]
pub struct StreamServerBuilder {
    nodelay: bool,
    max_connections: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    reuse_port: bool,
    backlog: u32,
    greenlets: Builder,
    spread: Spread,
}

/// How a server on several hubs ([`StreamServerBuilder::bind_hubs`])
/// spreads its connections over them.
///
/// * **[`ReusePort`](Spread::ReusePort)** (the default): a listener per
///   hub, all on the same port with `SO_REUSEPORT`; the kernel hashes each
///   new connection to one of them. Nothing crosses threads, so it costs
///   nothing per connection and scales with the hubs; but the hash ignores
///   load (a few long connections can land on one hub while another
///   idles), and connections waiting in the queue of a listener that
///   closes are reset, so stop all hubs together.
/// * **[`RoundRobin`](Spread::RoundRobin)**: one listener, on hub 0,
///   whose accept loop hands each connection to the next hub in turn
///   (skipping a hub at its [`max_connections`](StreamServerBuilder::max_connections)),
///   through a cross-thread queue. It balances a few connections exactly
///   and never gives a full hub more, at the price of a hand-off per
///   connection and one thread doing every `accept`: better for long-lived
///   connections (chat, proxies, WebSockets) than for a flood of short
///   ones.
///
/// # Examples
///
/// ```
/// use verdant_net::{Spread, StreamServer};
/// let _b = StreamServer::builder().spread(Spread::RoundRobin);
/// assert_eq!(Spread::default(), Spread::ReusePort);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spread {
    /// A listener per hub, `SO_REUSEPORT`: the kernel spreads.
    #[default]
    ReusePort,
    /// One acceptor, on hub 0, hands connections to the hubs in turn.
    RoundRobin,
}

impl fmt::Debug for StreamServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServerBuilder")
            .field("nodelay", &self.nodelay)
            .field("max_connections", &self.max_connections)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("reuse_port", &self.reuse_port)
            .field("backlog", &self.backlog)
            .field("spread", &self.spread)
            .finish_non_exhaustive()
    }
}

impl Default for StreamServerBuilder {
    fn default() -> Self {
        StreamServerBuilder {
            nodelay: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            read_timeout: None,
            write_timeout: None,
            reuse_port: false,
            backlog: DEFAULT_BACKLOG,
            greenlets: Builder::new().name("connection"),
            spread: Spread::ReusePort,
        }
    }
}

impl StreamServerBuilder {
    /// The defaults: `TCP_NODELAY` on, at most [`DEFAULT_MAX_CONNECTIONS`]
    /// at once, no timeouts, no `SO_REUSEPORT`, a backlog of
    /// [`DEFAULT_BACKLOG`], handler greenlets named `connection` on the
    /// hub's default stack size.
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServerBuilder::new().nodelay(false);
    /// ```
    pub fn new() -> StreamServerBuilder {
        StreamServerBuilder::default()
    }

    /// Whether accepted connections get `TCP_NODELAY` (default: yes).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServer::builder().nodelay(false);
    /// ```
    pub fn nodelay(mut self, on: bool) -> StreamServerBuilder {
        self.nodelay = on;
        self
    }

    /// The most connections handled at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]). At the bound the server stops
    /// accepting until a handler returns; the kernel queues the newcomers
    /// meanwhile (up to the backlog).
    ///
    /// # Panics
    ///
    /// When `n` is 0 (nothing could ever be served).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServer::builder().max_connections(64);
    /// ```
    pub fn max_connections(mut self, n: usize) -> StreamServerBuilder {
        assert!(n > 0, "verdant: a server needs room for one connection");
        self.max_connections = n;
        self
    }

    /// The read timeout of every accepted connection (default none): a
    /// handler's read that waits longer fails with `WouldBlock`, which
    /// ends an idle client's connection in the usual handler loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _b = verdant_net::StreamServer::builder().read_timeout(Some(Duration::from_secs(60)));
    /// ```
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> StreamServerBuilder {
        self.read_timeout = timeout;
        self
    }

    /// The write timeout of every accepted connection (default none): a
    /// client that never reads cannot hold its handler's `write_all`
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let _b = verdant_net::StreamServer::builder().write_timeout(Some(Duration::from_secs(10)));
    /// ```
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> StreamServerBuilder {
        self.write_timeout = timeout;
        self
    }

    /// Binds with `SO_REUSEPORT` (default no), so that a server on each
    /// hub thread can bind the same address and the kernel spreads new
    /// connections over them.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_net::StreamServer;
    /// let a = StreamServer::builder().reuse_port(true).bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// let addr = a.local_addr().unwrap();
    /// // A second server on the same port (on another hub, typically).
    /// let b = StreamServer::builder().reuse_port(true).bind(addr, |_, _| {}).unwrap();
    /// assert_eq!(b.local_addr().unwrap(), addr);
    /// ```
    pub fn reuse_port(mut self, on: bool) -> StreamServerBuilder {
        self.reuse_port = on;
        self
    }

    /// The kernel's queue of connections not yet accepted (default
    /// [`DEFAULT_BACKLOG`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServer::builder().backlog(4096);
    /// ```
    pub fn backlog(mut self, n: u32) -> StreamServerBuilder {
        self.backlog = n;
        self
    }

    /// The name and stack size of the handler greenlets.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Builder;
    /// let _b = verdant_net::StreamServer::builder()
    ///     .greenlets(Builder::new().name("http").stack_size(64 * 1024));
    /// ```
    pub fn greenlets(mut self, builder: Builder) -> StreamServerBuilder {
        self.greenlets = builder;
        self
    }

    /// How [`bind_hubs`](Self::bind_hubs) spreads connections over the
    /// hubs (default [`Spread::ReusePort`]; see [`Spread`] for when each is
    /// better). A server on one hub ignores it.
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServer::builder().spread(verdant_net::Spread::RoundRobin);
    /// ```
    pub fn spread(mut self, spread: Spread) -> StreamServerBuilder {
        self.spread = spread;
        self
    }

    /// Binds `addr` for a server on every hub of a
    /// [`Hubs`](verdant_runtime::Hubs) run: call it before the run (a bad
    /// address fails here, and the port that 0 picked is known), then
    /// [`HubsListener::server`] on each hub thread. The connections are
    /// spread as [`spread`](Self::spread) says; with
    /// [`Spread::ReusePort`] the listener gets `SO_REUSEPORT` whatever
    /// [`reuse_port`](Self::reuse_port) says.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn bind_hubs<A: Resolve>(mut self, addr: A) -> io::Result<HubsListener> {
        if self.spread == Spread::ReusePort {
            self.reuse_port = true;
        }
        let first = self.bind_std(addr)?;
        let addr = first.local_addr()?;
        let round_robin = (self.spread == Spread::RoundRobin).then(Arc::default);
        Ok(HubsListener {
            addr,
            config: self,
            first: Mutex::new(Some(first)),
            round_robin,
        })
    }

    /// Binds a listener to `addr` (the first of its addresses that binds,
    /// with `SO_REUSEADDR`) and makes the server; it serves once
    /// [`start`](StreamServer::start)ed.
    ///
    /// # Errors
    ///
    /// As for [`TcpListener::bind`] (`AddrInUse`, a name that does not
    /// resolve…).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::builder().bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// assert!(!s.is_serving());
    /// ```
    pub fn bind<A, H>(self, addr: A, handler: H) -> io::Result<StreamServer>
    where
        A: Resolve,
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        let std = self.bind_std(addr)?;
        Ok(self.listener(TcpListener::from_std(std)?, handler))
    }

    /// Binds a `std` listener to `addr` with these options, without making
    /// a server: it is `Send`, so a program can bind on its main thread
    /// (to learn the port that 0 picked, and fail early) and hand the
    /// listener to a hub thread, which makes the server on it with
    /// [`listener`](Self::listener) after `TcpListener::from_std`; with
    /// [`reuse_port`](Self::reuse_port), the other hubs then bind the same
    /// address.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_net::{StreamServer, TcpListener};
    /// let opts = StreamServer::builder().reuse_port(true);
    /// let std_listener = opts.bind_std("127.0.0.1:0").unwrap();
    /// let addr = std_listener.local_addr().unwrap();
    /// let handle = std::thread::spawn(move || {
    ///     // On another thread (a hub of its own): adopt it.
    ///     let l = TcpListener::from_std(std_listener).unwrap();
    ///     let s = StreamServer::builder().listener(l, |_, _| {});
    ///     s.local_addr().unwrap()
    /// });
    /// assert_eq!(handle.join().unwrap(), addr);
    /// ```
    pub fn bind_std<A: Resolve>(&self, addr: A) -> io::Result<std::net::TcpListener> {
        each_addr(addr, |a| bind_std(a, self.reuse_port, self.backlog))
    }

    /// Makes the server on a listener of the caller's (for example one
    /// made from a `std` listener handed over from another thread).
    ///
    /// # Panics
    ///
    /// When the listener has no local address (it always has, once bound).
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let s = verdant_net::StreamServer::builder().listener(l, |_, _| {});
    /// assert_eq!(s.local_addr().unwrap(), addr);
    /// ```
    pub fn listener<H>(self, listener: TcpListener, handler: H) -> StreamServer
    where
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        let addr = listener
            .local_addr()
            .expect("verdant: a bound listener has a local address");
        self.make(Some(listener), None, addr, Rc::new(handler))
    }

    fn make(
        self,
        listener: Option<TcpListener>,
        share: Option<RrMember>,
        addr: SocketAddr,
        handler: Rc<Handler>,
    ) -> StreamServer {
        StreamServer {
            inner: Rc::new(Inner {
                listener: RefCell::new(listener.map(Rc::new)),
                share,
                addr,
                handler,
                handlers: Group::new(),
                slots: Rc::new(Semaphore::new(self.max_connections)),
                config: self,
                loops: RefCell::new(Vec::new()),
                stopped: Cell::new(false),
                refused: Cell::new(0),
                done: Event::new(),
            }),
        }
    }
}

/// A server's address bound once for every hub of a
/// [`Hubs`](verdant_runtime::Hubs) run, from
/// [`StreamServerBuilder::bind_hubs`]: `Send + Sync`, so the run's closure
/// can hold it, and each hub makes its own [`StreamServer`] from it with
/// [`server`](Self::server). See the [module docs](self) for an example.
pub struct HubsListener {
    addr: SocketAddr,
    config: StreamServerBuilder,
    /// The listener bound by `bind_hubs`, until hub 0 adopts it.
    first: Mutex<Option<std::net::TcpListener>>,
    /// `Some` for [`Spread::RoundRobin`].
    round_robin: Option<Arc<RoundRobin>>,
}

/// The hubs a round-robin acceptor hands connections to, by hub index.
#[derive(Default)]
struct RoundRobin {
    hubs: Mutex<Vec<Option<RrTarget>>>,
    /// The index the next turn starts at.
    turn: AtomicUsize,
}

struct RrTarget {
    inbox: RemoteSender<Handoff>,
    load: Arc<AtomicUsize>,
    max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl fmt::Debug for HubsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubsListener")
            .field("addr", &self.addr)
            .field("spread", &self.config.spread)
            .finish_non_exhaustive()
    }
}

impl HubsListener {
    /// The address the servers listen on (with the port that 0 picked).
    ///
    /// # Examples
    ///
    /// ```
    /// let l = verdant_net::StreamServer::builder().bind_hubs("127.0.0.1:0").unwrap();
    /// assert_ne!(l.local_addr().port(), 0);
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// This hub's server (not yet started), running `handler` for the
    /// connections that come to this hub. Call it once on each hub thread
    /// of the run, from the closure given to
    /// [`Hubs::run`](verdant_runtime::Hubs::run).
    ///
    /// With [`Spread::ReusePort`], hub 0 adopts the listener that
    /// [`bind_hubs`](StreamServerBuilder::bind_hubs) bound and the other
    /// hubs bind the same address. With [`Spread::RoundRobin`], hub 0's
    /// server holds the one listener and hands connections out; the other
    /// hubs' servers take theirs from it (so hub 0's must be started for
    /// any hub to get one). [`stop`](StreamServer::stop) on any hub's
    /// server stops that server; stop them all at once (after
    /// [`HubContext::wait_stop`], say).
    ///
    /// # Errors
    ///
    /// What binding reports (`SO_REUSEPORT` on a hub other than 0), or
    /// adopting the listener.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn server<H>(&self, hub: &HubContext, handler: H) -> io::Result<StreamServer>
    where
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        let index = hub.index();
        let config = self.config.clone();
        let handler: Rc<Handler> = Rc::new(handler);
        let first = if index == 0 {
            lock(&self.first).take()
        } else {
            None
        };
        let Some(rr) = &self.round_robin else {
            let listener = match first {
                Some(l) => l,
                None => config.bind_std(self.addr)?,
            };
            let listener = TcpListener::from_std(listener)?;
            return Ok(config.make(Some(listener), None, self.addr, handler));
        };
        let listener = match first {
            Some(l) => Some(TcpListener::from_std(l)?),
            None if index == 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "verdant: hub 0 already made its round-robin server",
                ))
            }
            None => None,
        };
        let (local, inbox) = channel::unbounded();
        let load = Arc::new(AtomicUsize::new(0));
        {
            let mut hubs = lock(&rr.hubs);
            if hubs.len() <= index {
                hubs.resize_with(index + 1, || None);
            }
            hubs[index] = Some(RrTarget {
                inbox: local.remote(),
                load: load.clone(),
                max: config.max_connections,
            });
        }
        let share = RrMember {
            shared: rr.clone(),
            index,
            inbox: RefCell::new(Some(Rc::new(inbox))),
            local,
            load,
        };
        Ok(config.make(listener, Some(share), self.addr, handler))
    }
}

impl RoundRobin {
    /// Hands `conn` to the next hub in turn with room for it: through
    /// `me.local` when that is the acceptor's own hub. `Err(conn)` when no
    /// hub has room now.
    fn dispatch(&self, me: &RrMember, conn: Handoff) -> Result<(), Handoff> {
        let mut hubs = lock(&self.hubs);
        let n = hubs.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut conn = conn;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(t) = &hubs[i] else { continue };
            if t.load.load(Ordering::Acquire) >= t.max {
                continue;
            }
            t.load.fetch_add(1, Ordering::AcqRel);
            let sent = if i == me.index {
                me.local.send(conn).map_err(|e| e.into_inner())
            } else {
                t.inbox.send(conn).map_err(|e| e.into_inner())
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(back) => {
                    // That hub's server is gone: never again.
                    t.load.fetch_sub(1, Ordering::AcqRel);
                    hubs[i] = None;
                    conn = back;
                }
            }
        }
        Err(conn)
    }

    /// Takes hub `index` out of the turn (its server stopped).
    fn leave(&self, index: usize) {
        if let Some(t) = lock(&self.hubs).get_mut(index) {
            *t = None;
        }
    }
}

/// A listening socket for `addr`: `SO_REUSEADDR` (as std's `bind`), and
/// `SO_REUSEPORT` when asked.
fn bind_std(
    addr: &SocketAddr,
    reuse_port: bool,
    backlog: u32,
) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.bind(&(*addr).into())?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(s.into())
}

impl StreamServer {
    /// A server on `addr` with the default options (see
    /// [`StreamServerBuilder::new`]); `handler` runs in a greenlet of its
    /// own for each connection, which is closed when the handler returns
    /// (unless it kept the stream).
    ///
    /// # Errors
    ///
    /// As for [`StreamServerBuilder::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_conn, _peer| {}).unwrap();
    /// assert!(s.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn bind<A, H>(addr: A, handler: H) -> io::Result<StreamServer>
    where
        A: Resolve,
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        StreamServerBuilder::new().bind(addr, handler)
    }

    /// The options, to change before [`bind`](StreamServerBuilder::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// let _b = verdant_net::StreamServer::builder().max_connections(10);
    /// ```
    pub fn builder() -> StreamServerBuilder {
        StreamServerBuilder::new()
    }

    /// The address it listens on (with the port the system picked for 0).
    ///
    /// # Errors
    ///
    /// None today; the `Result` is std's shape for `local_addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0);
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.addr)
    }

    /// Starts accepting, in a greenlet named `accept` (gevent's `start`):
    /// returns at once.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if it was started before; `NotConnected` once it
    /// was stopped; as for [`Builder::spawn`] if the accept greenlet
    /// cannot be made.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// s.start().unwrap();
    /// assert!(s.is_serving());
    /// assert_eq!(s.start().unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    /// ```
    pub fn start(&self) -> io::Result<()> {
        let inner = &self.inner;
        if inner.stopped.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server was stopped",
            ));
        }
        if !inner.loops.borrow().is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the server is already started",
            ));
        }
        let mut loops = Vec::with_capacity(2);
        if inner.share.is_some() {
            let me = inner.clone();
            loops.push(
                Builder::new()
                    .name("inbox")
                    .spawn(move || me.inbox_loop())?,
            );
        }
        if inner.listener.borrow().is_some() {
            let me = inner.clone();
            let started = Builder::new()
                .name("accept")
                .spawn(move || me.accept_loop());
            match started {
                Ok(h) => loops.push(h),
                Err(e) => {
                    for h in loops {
                        h.kill_nowait();
                    }
                    return Err(e);
                }
            }
        }
        *inner.loops.borrow_mut() = loops;
        Ok(())
    }

    /// Starts it if it was not, then waits until it is stopped (gevent's
    /// `serve_forever`): call [`stop`](Self::stop) from another greenlet,
    /// or from a signal handler's greenlet.
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start) (but not `AlreadyExists`); the wait's
    /// error as `Other` (a `LoopExit` cannot happen while it listens).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// let s = Rc::new(verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap());
    /// let s2 = s.clone();
    /// verdant_runtime::spawn(move || {
    ///     verdant_runtime::sleep(Duration::from_millis(10));
    ///     s2.stop(Duration::ZERO);
    /// });
    /// s.serve_forever().unwrap(); // returns once stopped
    /// ```
    pub fn serve_forever(&self) -> io::Result<()> {
        match self.start() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.inner
            .done
            .wait()
            .map_err(|e| io::Error::other(format!("waiting for the accept loop: {e}")))
    }

    /// Stops it (gevent's `stop(timeout)`): closes the listener at once
    /// (new connections are refused by the kernel), waits up to `grace` for
    /// the handlers still running, then kills the rest, running their
    /// destructors. Returns how many were killed. Stopping again returns 0.
    ///
    /// Call it from outside the server's handlers: a handler that stops its
    /// own server is one of the handlers it waits for, and is killed with
    /// the rest when the grace ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use verdant_net::{StreamServer, TcpStream};
    /// let s = StreamServer::bind("127.0.0.1:0", |_conn, _peer| {
    ///     verdant_runtime::sleep(Duration::from_secs(3600)); // never done
    /// })
    /// .unwrap();
    /// s.start().unwrap();
    /// let _c = TcpStream::connect(s.local_addr().unwrap()).unwrap();
    /// while s.connections() == 0 {
    ///     verdant_runtime::yield_now();
    /// }
    /// assert_eq!(s.stop(Duration::from_millis(10)), 1);
    /// assert_eq!(s.connections(), 0);
    /// ```
    pub fn stop(&self, grace: Duration) -> usize {
        let inner = &self.inner;
        if inner.stopped.replace(true) {
            return 0;
        }
        inner.close();
        // The accept loop may wait for a connection slot rather than in
        // accept; the inbox loop waits in its channel.
        let loops = std::mem::take(&mut *inner.loops.borrow_mut());
        for h in loops {
            h.kill();
        }
        if inner.handlers.join_timeout(grace).is_ok() {
            return 0;
        }
        let left = inner.handlers.len();
        inner.handlers.kill();
        left
    }

    /// Connections being handled now.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// assert_eq!(s.connections(), 0);
    /// ```
    pub fn connections(&self) -> usize {
        self.inner.handlers.len()
    }

    /// Connections refused so far because their greenlet could not be made.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// assert_eq!(s.refused(), 0);
    /// ```
    pub fn refused(&self) -> u64 {
        self.inner.refused.get()
    }

    /// Whether it was started and not stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = verdant_net::StreamServer::bind("127.0.0.1:0", |_, _| {}).unwrap();
    /// assert!(!s.is_serving());
    /// s.start().unwrap();
    /// assert!(s.is_serving());
    /// s.stop(std::time::Duration::ZERO);
    /// assert!(!s.is_serving());
    /// ```
    pub fn is_serving(&self) -> bool {
        !self.inner.stopped.get() && !self.inner.loops.borrow().is_empty()
    }
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("addr", &self.inner.addr)
            .field("serving", &self.is_serving())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Drop for StreamServer {
    /// Stops accepting and closes the listener; handlers still running go
    /// on to their end (use [`stop`](StreamServer::stop) to bound that).
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.stopped.set(true);
        inner.close();
        let loops = std::mem::take(&mut *inner.loops.borrow_mut());
        for h in loops {
            h.kill_nowait();
        }
    }
}

/// Gives a connection's room back when its handler ends, however it ends:
/// a slot of the hub's own bound, or (round-robin) a unit of the load the
/// acceptor reads.
enum Slot {
    Own(Rc<Semaphore>),
    Shared(Arc<AtomicUsize>),
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self {
            Slot::Own(sem) => sem.release(),
            Slot::Shared(load) => {
                load.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A connection's handler greenlet: what it needs, boxed.
///
/// Boxed so that the spawn's layers (the group's guard, the greenlet's
/// start and its `catch_unwind`) move one pointer, not the connection: a
/// parked handler's frames, which idle compaction keeps, were 480 bytes
/// deeper than a plain spawn's with the state moved through them by value.
struct Job {
    handler: Rc<Handler>,
    conn: TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

impl Job {
    /// Runs the handler; the slot is given back when it ends, however.
    #[inline(never)]
    fn run(self: Box<Self>) {
        // Moved out in a block of its own, so that the box is freed now
        // rather than at the end of this function, when the connection is
        // done: 128 bytes a connection otherwise.
        let Job {
            handler,
            conn,
            peer,
            slot,
        } = {
            let job = self;
            *job
        };
        let _slot = slot;
        handler(conn, peer);
    }
}

/// Sets the accept loop's `done` event when it ends, also by a kill.
struct Done(Rc<Inner>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done.set();
    }
}

impl Inner {
    /// Closes the listener (which wakes the accept loop: it sees
    /// `stopped`) and leaves the round-robin turn.
    fn close(&self) {
        let listener = self.listener.borrow_mut().take();
        if let Some(l) = listener {
            l.close();
        }
        if let Some(rr) = &self.share {
            rr.shared.leave(rr.index);
            // Connections queued for this hub are closed with the inbox.
            drop(rr.inbox.borrow_mut().take());
        }
    }

    fn accept_loop(self: Rc<Self>) {
        let _done = Done(self.clone());
        let mut pause = Duration::ZERO;
        loop {
            // Round-robin: the hubs' loads bound the connections instead,
            // and each hub's inbox loop spawns the handlers.
            let slot = if self.share.is_none() {
                // A slot first: at the bound, stop accepting (the kernel
                // queues).
                match self.slots.acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                Some(Slot::Own(self.slots.clone()))
            } else {
                None
            };
            let listener = self.listener.borrow().clone();
            let Some(listener) = listener else { return };
            let accepted = match &self.share {
                None => listener.accept().map(|(c, p)| Accepted::Here(c, p)),
                Some(_) => listener.accept_std().map(Accepted::Away),
            };
            drop(listener);
            if self.stopped.get() {
                return;
            }
            let accepted = match accepted {
                Ok(c) => {
                    pause = Duration::ZERO;
                    c
                }
                Err(e) => {
                    // The listener already backs off on EMFILE and skips
                    // aborted handshakes; anything else is logged, and the
                    // loop pauses (5 ms, doubling up to 1 s) and goes on.
                    drop(slot);
                    pause = (pause * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_PAUSE);
                    eprintln!(
                        "verdant: StreamServer on {}: accept failed: {e}; retrying in {pause:?}",
                        self.addr
                    );
                    verdant_runtime::sleep(pause);
                    continue;
                }
            };
            match (accepted, slot) {
                (Accepted::Here(conn, peer), Some(slot)) => self.serve(conn, peer, slot),
                (Accepted::Away(handoff), _) => self.hand_off(handoff),
                (Accepted::Here(..), None) => unreachable!("a slot is taken unless round-robin"),
            }
        }
    }

    /// The round-robin acceptor's turn: gives `conn` to the next hub with
    /// room, waiting (1 ms at a time) while every hub is at its bound.
    fn hand_off(&self, conn: Handoff) {
        let Some(me) = &self.share else { return };
        let mut conn = conn;
        loop {
            match me.shared.dispatch(me, conn) {
                Ok(()) => return,
                Err(back) if !self.stopped.get() => {
                    conn = back;
                    verdant_runtime::sleep(Duration::from_millis(1));
                }
                Err(_) => return, // stopping: the connection is closed
            }
        }
    }

    /// Round-robin: serves the connections the acceptor handed this hub.
    fn inbox_loop(self: Rc<Self>) {
        let _done = Done(self.clone());
        let Some(me) = &self.share else { return };
        let inbox = me.inbox.borrow().clone();
        let Some(inbox) = inbox else { return };
        while let Ok((std, peer)) = inbox.recv() {
            // Counted in `load` by the acceptor; given back when done.
            let slot = Slot::Shared(me.load.clone());
            match TcpStream::from_std(std) {
                Ok(conn) => self.serve(conn, peer, slot),
                Err(e) => {
                    self.refused.set(self.refused.get() + 1);
                    eprintln!(
                        "verdant: StreamServer on {}: refused a connection from {peer}: {e}",
                        self.addr
                    );
                }
            }
        }
    }

    /// Spawns the handler for `conn`; the greenlet holds `slot`.
    fn serve(&self, conn: TcpStream, peer: SocketAddr, slot: Slot) {
        self.configure(&conn);
        let job = Box::new(Job {
            handler: self.handler.clone(),
            conn,
            peer,
            slot,
        });
        let spawned = self
            .handlers
            .try_spawn_with(self.config.greenlets.clone(), move || job.run());
        if let Err(e) = spawned {
            // The closure (the connection and its slot) was dropped: the
            // client sees the connection closed.
            self.refused.set(self.refused.get() + 1);
            eprintln!(
                "verdant: StreamServer on {}: refused a connection from {peer}: {e}",
                self.addr
            );
        }
    }

    fn configure(&self, conn: &TcpStream) {
        let c = &self.config;
        // Failures here (a connection already reset) surface at its first
        // read or write instead.
        if c.nodelay {
            let _ = conn.set_nodelay(true);
        }
        if c.read_timeout.is_some() {
            let _ = conn.set_read_timeout(c.read_timeout);
        }
        if c.write_timeout.is_some() {
            let _ = conn.set_write_timeout(c.write_timeout);
        }
    }
}
