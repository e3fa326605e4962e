//! Name resolution off the hub's thread (the crate docs, "Name
//! resolution").

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses, resolved without
/// blocking the hub: the trait every address-taking call of `verdant::net`
/// takes.
///
/// It is implemented for the same types as [`std::net::ToSocketAddrs`]
/// (`"host:port"` strings, `(host, port)` pairs, `SocketAddr` and its
/// parts, slices of addresses, and references to any of them), plus arrays
/// and `Vec`s of `SocketAddr`. Literal addresses are parsed at once; host
/// names are looked up on the blocking pool (see [Name resolution](crate#name-resolution)).
///
/// A type that implements only std's `ToSocketAddrs` (your own, or one from
/// another crate) is passed by collecting its addresses into a
/// `Vec<SocketAddr>`, which implements `Resolve`. Its `to_socket_addrs` runs
/// on the calling thread, as in std: for a host name, prefer handing the
/// name itself (a `&str` or `(&str, u16)`) to verdant.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use verdant_net::Resolve;
///
/// let a: SocketAddr = "[::1]:7".parse().unwrap();
/// assert_eq!(a.resolve().unwrap(), [a]);
/// assert_eq!("[::1]:7".resolve().unwrap(), [a]);
/// ```
///
/// A type that implements only std's trait reaches `connect` through a
/// `Vec`:
///
/// ```
/// use std::net::{SocketAddr, ToSocketAddrs};
/// use verdant_net::{TcpListener, TcpStream};
///
/// /// Someone else's type: it implements std's trait only.
/// struct Backend(u16);
/// impl ToSocketAddrs for Backend {
///     type Iter = std::option::IntoIter<SocketAddr>;
///     fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
///         Ok(Some(SocketAddr::from(([127, 0, 0, 1], self.0))).into_iter())
///     }
/// }
///
/// let l = TcpListener::bind("127.0.0.1:0").unwrap();
/// let backend = Backend(l.local_addr().unwrap().port());
/// let addrs: Vec<SocketAddr> = backend.to_socket_addrs().unwrap().collect();
/// let s = TcpStream::connect(addrs).unwrap();
/// assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
/// ```
pub trait Resolve {
    /// The addresses, in the resolver's order.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a malformed address or port; the resolver's error
    /// for a name it cannot resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_net::Resolve;
    /// assert_eq!(("::1", 9).resolve().unwrap(), ["[::1]:9".parse().unwrap()]);
    /// let e = "no-port-here".resolve().unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    fn resolve(&self) -> io::Result<Vec<SocketAddr>>;
}

/// Resolves `addr` (a `"host:port"` string, a `(host, port)` pair, or any
/// other [`Resolve`]) without blocking the hub: tokio's `lookup_host`.
///
/// # Errors
///
/// As for [`Resolve::resolve`].
///
/// # Examples
///
/// ```
/// let addrs = verdant_net::lookup_host(("localhost", 443)).unwrap();
/// assert!(!addrs.is_empty());
/// assert!(verdant_net::lookup_host("no port here").is_err());
/// ```
pub fn lookup_host<A: Resolve>(addr: A) -> io::Result<Vec<SocketAddr>> {
    addr.resolve()
}

/// Resolves `addr` (names on the blocking pool) and tries `f` on each
/// address in turn, like std: the first success wins, else the last error
/// (`InvalidInput` when `addr` names no address at all).
pub(crate) fn each_addr<A: Resolve, T>(
    addr: A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.resolve()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// Looks `host` up with `lookup` on the blocking pool; the calling greenlet
/// parks until it answers.
fn resolve_on_pool(
    host: &str,
    port: u16,
    lookup: fn(String, u16) -> io::Result<Vec<SocketAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    let host = host.to_owned();
    match verdant_runtime::spawn_blocking(move || lookup(host, port)).join() {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(io::Error::other(format!("name lookup panicked: {e}"))),
        Err(e) => Err(io::Error::new(io::ErrorKind::Interrupted, e.to_string())),
    }
}

/// The system resolver (`getaddrinfo`, through std): blocks its thread.
fn system_lookup(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Iterator::collect)
}

fn host_port(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    // A literal IP (v6 without brackets, as std accepts) needs no lookup.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    resolve_on_pool(host, port, system_lookup)
}

impl Resolve for str {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(vec![a]);
        }
        let invalid = |msg| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("invalid socket address"))?;
        let port: u16 = port.parse().map_err(|_| invalid("invalid port value"))?;
        host_port(host, port)
    }
}

impl Resolve for String {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().resolve()
    }
}

impl Resolve for (&str, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(self.0, self.1)
    }
}

impl Resolve for (String, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(&self.0, self.1)
    }
}

impl Resolve for SocketAddr {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}

impl Resolve for SocketAddrV4 {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V4(*self)])
    }
}

impl Resolve for SocketAddrV6 {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V6(*self)])
    }
}

impl Resolve for (IpAddr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl Resolve for (Ipv4Addr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl Resolve for (Ipv6Addr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl Resolve for [SocketAddr] {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> Resolve for [SocketAddr; N] {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl Resolve for Vec<SocketAddr> {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.clone())
    }
}

impl<T: Resolve + ?Sized> Resolve for &T {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    fn slow_lookup(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(host, "slow.example");
        Ok(vec![SocketAddr::new(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            port,
        )])
    }

    /// The point of the module: a slow lookup parks only its greenlet.
    #[test]
    fn a_slow_lookup_does_not_stall_the_hub() {
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = verdant_runtime::spawn(move || {
            for _ in 0..30 {
                verdant_runtime::sleep(Duration::from_millis(5));
                t2.set(t2.get() + 1);
            }
        });
        let t = Instant::now();
        let addrs = resolve_on_pool("slow.example", 9, slow_lookup).unwrap();
        assert_eq!(addrs, ["10.0.0.1:9".parse().unwrap()]);
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(ticks.get() >= 15, "the hub stalled: {} ticks", ticks.get());
        ticker.join().unwrap();
    }

    #[test]
    fn literals_and_errors() {
        assert_eq!(
            "1.2.3.4:5".resolve().unwrap(),
            ["1.2.3.4:5".parse().unwrap()]
        );
        assert_eq!(("::1", 5).resolve().unwrap(), ["[::1]:5".parse().unwrap()]);
        for bad in ["nope", "host:99999", "host:x", ""] {
            let e = bad.resolve().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        let list: Vec<SocketAddr> = vec!["1.1.1.1:1".parse().unwrap(), "[::2]:2".parse().unwrap()];
        assert_eq!(list.resolve().unwrap(), list);
        assert_eq!(list[..].resolve().unwrap(), list);
    }

    #[test]
    fn localhost_resolves_through_the_pool_in_and_out_of_greenlets() {
        let direct = "localhost:1".resolve().unwrap();
        assert!(!direct.is_empty());
        assert!(direct.iter().all(|a| a.ip().is_loopback() && a.port() == 1));
        let in_greenlet = verdant_runtime::spawn(|| ("localhost".to_string(), 2).resolve())
            .join()
            .unwrap()
            .unwrap();
        assert!(in_greenlet
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 2));
    }
}
