//! [`RecvBuf`]: the bytes a `recv_buf` returned, in a buffer lent by this
//! thread's buffer cache (the crate docs, "`recv_buf` and `RecvBuf`").

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};

/// Idle buffers (each fully initialized: its `len` is its usable size) and
/// their total size.
struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bufs: Vec::new(),
            bytes: 0,
        })
    };
}

/// Bytes received by a `recv_buf`, in a buffer lent by the thread's buffer cache.
///
/// Dereferences to the bytes received (`&[u8]`, and `&mut [u8]` to edit
/// them in place); empty means end of stream. Dropping it gives the buffer
/// back to the buffer cache of the thread that drops it; [`into_vec`] keeps the
/// bytes instead.
///
/// [`into_vec`]: RecvBuf::into_vec
///
/// # Examples
///
/// ```
/// use std::io::Write;
///
/// let l = verdant_net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut a = verdant_net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (b, _) = l.accept().unwrap();
/// a.write_all(b"hello").unwrap();
/// let mut data = b.recv_buf(1024).unwrap();
/// data.make_ascii_uppercase();
/// assert_eq!(&data[..], b"HELLO");
/// assert_eq!(data.into_vec(), b"HELLO".to_vec());
/// ```
pub struct RecvBuf {
    /// Initialized up to its `len`, which is at least `filled`.
    buf: Vec<u8>,
    filled: usize,
}

impl RecvBuf {
    /// The most bytes one `recv_buf` returns, whatever it asks for (like
    /// any read, a `recv_buf` may return fewer bytes than asked).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_net::RecvBuf::MAX_LEN, 1 << 20);
    /// ```
    pub const MAX_LEN: usize = 1 << 20;

    /// The most bytes of idle buffers each thread's buffer cache keeps;
    /// buffers given back beyond that are freed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_net::RecvBuf::CACHE_BYTES >= verdant_net::RecvBuf::MAX_LEN);
    /// ```
    pub const CACHE_BYTES: usize = 1 << 20;

    /// An empty `RecvBuf` (what `recv_buf` returns at end of stream), holding
    /// no buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = verdant_net::RecvBuf::new();
    /// assert!(b.is_empty());
    /// ```
    pub const fn new() -> RecvBuf {
        RecvBuf {
            buf: Vec::new(),
            filled: 0,
        }
    }

    /// The bytes received, as a `Vec` of exactly that length; the buffer
    /// does not go back to the cache.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_net::RecvBuf::new().into_vec().is_empty());
    /// ```
    pub fn into_vec(mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.buf);
        v.truncate(self.filled);
        v
    }

    /// Borrows a buffer of at least `len` initialized bytes from the cache
    /// (the one given back last), or makes one.
    pub(crate) fn lend(len: usize) -> RecvBuf {
        let mut buf = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                let b = p.bufs.pop()?;
                p.bytes -= b.len();
                Some(b)
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        RecvBuf { buf, filled: 0 }
    }

    /// The size of buffer a `recv_buf(max)` reads into: `max` capped at
    /// [`RecvBuf::MAX_LEN`]; `None` for 0 (`recv_buf(0)` returns empty at once).
    pub(crate) fn size_for(max: usize) -> Option<usize> {
        Some(max.min(RecvBuf::MAX_LEN)).filter(|&n| n > 0)
    }

    /// Fills the first `len` bytes with `read` (which returns how many it
    /// wrote); on an error the buffer goes back to the cache.
    pub(crate) fn fill(
        len: usize,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<RecvBuf> {
        let mut b = RecvBuf::lend(len);
        let n = read(&mut b.buf[..len])?;
        b.filled = n.min(len);
        Ok(b)
    }
}

impl Default for RecvBuf {
    fn default() -> RecvBuf {
        RecvBuf::new()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        if len == 0 || len > RecvBuf::CACHE_BYTES {
            return;
        }
        // At thread exit the cache may be gone: the buffer is then freed.
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.bytes + len <= RecvBuf::CACHE_BYTES {
                    p.bytes += len;
                    p.bufs.push(buf);
                }
            }
        });
    }
}

impl Deref for RecvBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl DerefMut for RecvBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.filled]
    }
}

impl AsRef<[u8]> for RecvBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for RecvBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBuf")
            .field("len", &self.filled)
            .finish_non_exhaustive()
    }
}

/// How many idle buffers this thread's buffer cache holds, and their total size
/// (for tests).
#[cfg(test)]
pub(crate) fn cache_stats() -> (usize, usize) {
    POOL.with(|p| {
        let p = p.borrow();
        (p.bufs.len(), p.bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_lent_again_first() {
        let (n0, _) = cache_stats();
        let a = RecvBuf::fill(100, |b| {
            b[..3].copy_from_slice(b"abc");
            Ok(3)
        })
        .unwrap();
        assert_eq!(&a[..], b"abc");
        let addr = a.buf.as_ptr();
        drop(a);
        assert_eq!(cache_stats().0, n0 + 1);
        let b = RecvBuf::lend(50);
        assert_eq!(b.buf.as_ptr(), addr, "LIFO: the buffer given back last");
        assert!(b.is_empty(), "a lent buffer shows none of its old bytes");
    }

    #[test]
    fn a_failed_read_gives_the_buffer_back() {
        assert_eq!(cache_stats(), (0, 0), "each test runs on a fresh thread");
        let r = RecvBuf::fill(64, |_| Err(io::ErrorKind::WouldBlock.into()));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(cache_stats(), (1, 64));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_limit() {
        let bufs: Vec<RecvBuf> = (0..40).map(|_| RecvBuf::lend(64 * 1024)).collect();
        drop(bufs);
        let (n, bytes) = cache_stats();
        assert!(bytes <= RecvBuf::CACHE_BYTES, "{bytes} bytes cached");
        assert_eq!(n, RecvBuf::CACHE_BYTES / (64 * 1024));
        // Too big to cache at all.
        drop(RecvBuf {
            buf: vec![0; RecvBuf::CACHE_BYTES + 1],
            filled: 0,
        });
        assert_eq!(cache_stats(), (n, bytes));
    }

    #[test]
    fn into_vec_keeps_exactly_the_bytes_received() {
        let b = RecvBuf::fill(10, |b| {
            b[..2].copy_from_slice(b"hi");
            Ok(2)
        })
        .unwrap();
        let (n0, _) = cache_stats();
        assert_eq!(b.into_vec(), b"hi");
        assert_eq!(cache_stats().0, n0, "a kept buffer is not cached");
    }
}
