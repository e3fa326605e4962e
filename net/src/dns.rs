//! Name resolution off the hub's thread.
//!
//! std's [`ToSocketAddrs`](std::net::ToSocketAddrs) calls `getaddrinfo`,
//! which blocks the OS thread, and with it every greenlet of the hub, for as
//! long as a DNS server takes to answer (seconds, when one is down). verdant's
//! own [`ToSocketAddrs`] parses literal addresses at once and sends host
//! names to the blocking pool
//! ([`spawn_blocking`](verdant_runtime::spawn_blocking)); the asking
//! greenlet parks meanwhile and the hub keeps running the others. Every
//! address-taking call of `verdant::net` (`connect`, `bind`, `send_to`…)
//! takes this trait; it is implemented for the same types as std's, so
//! `TcpStream::connect("localhost:80")` reads the same.
//!
//! ```
//! use verdant_net::{lookup_host, ToSocketAddrs};
//!
//! let addrs = lookup_host("localhost:8080").unwrap();
//! assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
//! // Literals never leave the thread.
//! assert_eq!(("127.0.0.1", 80).resolve().unwrap(), ["127.0.0.1:80".parse().unwrap()]);
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses; the cooperative
/// counterpart of [`std::net::ToSocketAddrs`], implemented for the same
/// types. Host names are looked up on the blocking pool (see the
/// [module docs](self)); implement it for your own types to pass them to
/// `verdant::net`'s calls.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use verdant_net::ToSocketAddrs;
///
/// let a: SocketAddr = "[::1]:7".parse().unwrap();
/// assert_eq!(a.resolve().unwrap(), [a]);
/// assert_eq!("[::1]:7".resolve().unwrap(), [a]);
/// ```
pub trait ToSocketAddrs {
    /// The addresses, in the resolver's order.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a malformed address or port; the resolver's error
    /// for a name it cannot resolve.
    fn resolve(&self) -> io::Result<Vec<SocketAddr>>;
}

/// Resolves `addr` (a `"host:port"` string, a `(host, port)` pair, or any
/// other [`ToSocketAddrs`]) without blocking the hub: tokio's `lookup_host`.
///
/// # Errors
///
/// As for [`ToSocketAddrs::resolve`].
///
/// # Examples
///
/// ```
/// let addrs = verdant_net::lookup_host(("localhost", 443)).unwrap();
/// assert!(!addrs.is_empty());
/// assert!(verdant_net::lookup_host("no port here").is_err());
/// ```
pub fn lookup_host<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    addr.resolve()
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

impl ToSocketAddrs for str {
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

impl ToSocketAddrs for String {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        host_port(&self.0, self.1)
    }
}

impl ToSocketAddrs for SocketAddr {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.clone())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
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
