//! One way to call libc: [`cvt`] turns the C convention for failure (`-1`,
//! or `MAP_FAILED` for `mmap`, with the cause in `errno`) into an
//! `io::Result`, as std's and mio's own helpers do. Every libc call of the
//! runtime that can fail goes through it, and its result is handled where
//! the call is made: returned, reported, or, where nothing can be done
//! (unmapping our own mapping in a destructor), asserted in debug builds.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

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

/// The stack pointer where this is inlined (it always is), within a few
/// bytes: the address of a local.
///
/// Under AddressSanitizer (the `asan` feature) a local whose address is
/// taken may live on a "fake stack" on the heap (its use-after-return
/// check), and the scrub and the prefetch need the real stack, so there the
/// register is read instead. Not everywhere: on the yield bench the `asm!`
/// read cost 2 ns per round trip more than the local (33.4–34.4 ns against
/// 31.7–32.6, alternated runs), `pure` or not.
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    #[cfg(all(feature = "asan", target_arch = "x86_64"))]
    {
        stack_register()
    }
    #[cfg(all(feature = "asan", target_arch = "aarch64"))]
    {
        let sp: usize;
        // SAFETY: as above.
        unsafe {
            core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
        }
        sp
    }
    #[cfg(not(all(feature = "asan", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        let marker = 0u8;
        std::hint::black_box(std::ptr::addr_of!(marker)) as usize
    }
}

/// The stack pointer register itself, where this is inlined (it always
/// is): the exact bottom of the calling function's frame, which stays put
/// for the whole body of the function (x86-64 code moves it only in the
/// prologue and epilogue). Idle compaction measures the switch's depth
/// from it (see `hub::compact`). On other architectures (where compaction
/// is off) a local's address, as [`stack_pointer`].
#[inline(always)]
pub(crate) fn stack_register() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: copies a register into an output register; reads and
        // writes no memory and leaves the flags alone.
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
        }
        sp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        stack_pointer()
    }
}

/// A number naming the calling thread while it lives: the address of a
/// thread-local (no allocation, no system call). Two threads alive at once
/// never share it; a thread that ended may pass it on to a new one. (Used
/// by a debug build's owner check only.)
#[cfg(debug_assertions)]
pub(crate) fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| t as *const u8 as usize)
}

/// The next number of a xorshift64* source whose state is `state` (never
/// 0): the seeded scheduler's and the timers' tie-breaking draws.
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A seed as the non-zero state of a [`xorshift`] source.
pub(crate) fn seed_state(seed: u64) -> u64 {
    match seed ^ 0x9e37_79b9_7f4a_7c15 {
        0 => 1,
        x => x,
    }
}

/// A signal → byte → thread relay. A signal handler may do almost nothing
/// (only async-signal-safe calls: no lock, no allocation), so it only
/// [`notify`](SignalRelay::notify)s: one byte to a pipe. A thread of the
/// relay's own, started by [`start`](SignalRelay::start), reads the bytes
/// and runs the relay's callback, where anything may be done. Signals that
/// arrive while the callback runs are coalesced into one more call (the
/// bytes are read in batches; a full pipe drops the byte).
pub(crate) struct SignalRelay {
    /// The pipe's write end; -1 until started.
    write: AtomicI32,
    started: OnceLock<Result<(), String>>,
}

impl SignalRelay {
    /// A relay not started yet (for a `static`).
    pub(crate) const fn new() -> SignalRelay {
        SignalRelay {
            write: AtomicI32::new(-1),
            started: OnceLock::new(),
        }
    }

    /// Makes the pipe and starts the thread `name`, which calls
    /// `on_signal` after each batch of notifications. Once: later calls
    /// return the first one's result and ignore their arguments.
    ///
    /// # Errors
    ///
    /// What `pipe2`, `fcntl` or the thread's start reported.
    pub(crate) fn start(&'static self, name: &str, on_signal: fn()) -> io::Result<()> {
        self.started
            .get_or_init(|| {
                let mut fds = [0; 2];
                // SAFETY: `fds` has room for the two descriptors.
                cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })
                    .map_err(|e| e.to_string())?;
                let [read, write] = fds;
                // The reader blocks: clear its O_NONBLOCK.
                // SAFETY: a plain fcntl call on our own descriptor.
                cvt(unsafe { libc::fcntl(read, libc::F_SETFL, 0) }).map_err(|e| e.to_string())?;
                self.write.store(write, Ordering::Relaxed);
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn(move || relay_loop(read, on_signal))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(io::Error::other)
    }

    /// From a signal handler: one byte to the relay's pipe, by the raw
    /// system call (async-signal-safe; `errno` is left as it was). Does
    /// nothing before [`start`](Self::start); a full pipe (a batch already
    /// pending) drops the byte.
    pub(crate) fn notify(&self) {
        // SAFETY: errno is this thread's; saved and restored around the call.
        let errno = unsafe { *libc::__errno_location() };
        let fd = self.write.load(Ordering::Relaxed);
        if fd >= 0 {
            raw_write(fd, &[1]);
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }
}

/// The relay's thread: reads batches of bytes, calls `on_signal` per batch.
fn relay_loop(read: libc::c_int, on_signal: fn()) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a live local buffer of the given length.
        let n = unsafe { libc::read(read, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        on_signal();
    }
}

/// Installs `handler` for `signal` (`SA_RESTART`, nothing masked) and
/// returns the action it replaced.
///
/// # Errors
///
/// What `sigaction` reports (`EINVAL` for a signal that cannot be caught).
pub(crate) fn set_signal_handler(
    signal: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as *const () as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: a zeroed sigaction is valid for the old action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `sa` is fully initialised, `old` is writable.
    cvt(unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signal, &sa, &mut old)
    })?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_signal_runs_the_callback_on_the_relay_thread() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Mutex;
        static RELAY: SignalRelay = SignalRelay::new();
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        static THREAD: Mutex<Option<String>> = Mutex::new(None);
        extern "C" fn handler(_: libc::c_int) {
            RELAY.notify();
        }
        fn relayed() {
            *THREAD.lock().unwrap() = std::thread::current().name().map(str::to_owned);
            CALLS.fetch_add(1, Ordering::SeqCst);
        }
        // Before the start, a notification goes nowhere (and must not crash).
        RELAY.notify();
        RELAY.start("relay-test", relayed).unwrap();
        let old = set_signal_handler(libc::SIGWINCH, handler).unwrap();
        // SAFETY: raise sends the signal to this thread; the handler above
        // only writes to a pipe.
        assert_eq!(unsafe { libc::raise(libc::SIGWINCH) }, 0);
        let t = std::time::Instant::now();
        while CALLS.load(Ordering::SeqCst) == 0 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "never relayed"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(THREAD.lock().unwrap().as_deref(), Some("relay-test"));
        // SAFETY: puts back the action set_signal_handler replaced.
        unsafe { libc::sigaction(libc::SIGWINCH, &old, std::ptr::null_mut()) };
    }

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
