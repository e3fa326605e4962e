//! One way to call libc: [`cvt`] turns the C convention for failure (`-1`,
//! or `MAP_FAILED` for `mmap`, with the cause in `errno`) into an
//! `io::Result`, as std's and mio's own helpers do. Every libc call of the
//! runtime that can fail goes through it, and its result is handled where
//! the call is made: returned, reported, or, where nothing can be done
//! (unmapping our own mapping in a destructor), asserted in debug builds.

use std::io;

/// A libc return value with a failure sentinel.
pub(crate) trait Sentinel: Copy {
    /// Whether this value reports a failure (the cause is in `errno`).
    fn is_failure(self) -> bool;
}

impl Sentinel for libc::c_int {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl Sentinel for libc::c_long {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl Sentinel for *mut libc::c_void {
    /// `MAP_FAILED`.
    fn is_failure(self) -> bool {
        self == libc::MAP_FAILED
    }
}

/// `Ok(ret)`, or the `errno` error when `ret` is the failure sentinel.
/// Read `errno` right after the call: pass the libc call itself, as in
/// `cvt(libc::f(..))` written inside the caller's unsafe block.
///
/// # Errors
///
/// The OS error left in `errno` by the call that returned `ret`.
#[inline]
pub(crate) fn cvt<T: Sentinel>(ret: T) -> io::Result<T> {
    if ret.is_failure() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `write(2)` as the system call itself, for signal handlers: the libc
/// name may be the patched one (see `patch`), which is not
/// async-signal-safe. Returns what the call returns (errno set on -1).
pub(crate) fn raw_write(fd: libc::c_int, bytes: &[u8]) -> isize {
    // SAFETY: write(2) with a buffer valid for its length; the system call
    // is async-signal-safe.
    unsafe { libc::syscall(libc::SYS_write, fd, bytes.as_ptr(), bytes.len()) as isize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_errno_and_successes_their_value() {
        // SAFETY: close(-1) touches no descriptor; it fails with EBADF.
        let err = cvt(unsafe { libc::close(-1) }).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        // SAFETY: getpid has no preconditions and cannot fail.
        assert!(cvt(unsafe { libc::getpid() }).unwrap() > 0);
        // SAFETY: a zero-length mmap is invalid; it fails with EINVAL and
        // maps nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                0,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_eq!(cvt(p).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
