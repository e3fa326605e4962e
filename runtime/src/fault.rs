//! Stack-overflow reporting: a SIGSEGV/SIGBUS handler that names the greenlet.
//!
//! Without it an overflow on a greenlet stack is a silent SIGSEGV: std's own
//! handler only knows the *thread's* guard page. The
//! runtime installs one process-wide handler (once, `SA_SIGINFO | SA_ONSTACK`)
//! that checks the faulting address, and the interrupted stack pointer, against
//! the guard range of the greenlet running on this thread, read from a
//! `const` thread-local written on every switch. On a match it writes
//! `greenlet '<name>' has overflowed its stack` with `write(2)` and aborts; on
//! anything else it chains to the previous handler (std's, which still reports
//! the main thread's own overflows), so a null dereference stays a plain
//! segfault.
//!
//! A handler cannot run on an overflowed stack, so every hub thread needs an
//! alternate signal stack. std gives one to the threads it spawns; for others
//! (a thread made with `pthread_create`) the runtime installs its own when the
//! hub starts.

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::OnceLock;

use crate::sys::cvt;

/// What the handler needs to know about the running greenlet. Lives inside
/// the greenlet record; only plain data, read from a signal handler.
#[derive(Debug)]
pub(crate) struct FaultInfo {
    pub(crate) guard_lo: usize,
    pub(crate) guard_hi: usize,
    pub(crate) usable: usize,
    pub(crate) id: u64,
    /// The name's first bytes; 31 and a length byte keep the record of a
    /// greenlet a multiple of 16 bytes smaller (the allocator's step).
    name: [u8; 31],
    name_len: u8,
}

impl FaultInfo {
    pub(crate) fn new(id: u64) -> FaultInfo {
        FaultInfo {
            guard_lo: 0,
            guard_hi: 0,
            usable: 0,
            id,
            name_len: 0,
            name: [0; 31],
        }
    }

    /// The stored name (its first 31 bytes, cut at a character boundary).
    pub(crate) fn name_bytes(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        let mut n = name.len().min(self.name.len());
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        self.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        self.name_len = n as u8; // at most 31
    }
}

static INSTALL: OnceLock<Result<(), i32>> = OnceLock::new();
static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::zeroed();
static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::zeroed();

/// Who runs on this thread: the fault record of the greenlet running
/// there, or null on the thread's own stack. It must be async-signal-safe
/// (read plain memory, initialise nothing, take no lock).
pub(crate) type Lookup = fn() -> *const FaultInfo;

/// The hub's [`Lookup`], handed in by the first `init_thread`: this module
/// sits below the hub and does not name it.
static LOOKUP: OnceLock<Lookup> = OnceLock::new();

/// Installs the handler once per process and makes sure this thread has an
/// alternate signal stack. `lookup` tells the handler which greenlet runs
/// (the first call's is kept: there is one hub implementation).
///
/// # Errors
///
/// What `sigaction` (once per process), or the alternate stack's `mmap`,
/// `mprotect` or `sigaltstack` reports. Greenlets still run; an overflow
/// is then a plain `SIGSEGV` without the greenlet's name.
pub(crate) fn init_thread(lookup: Lookup) -> io::Result<()> {
    let _ = LOOKUP.set(lookup);
    let installed = *INSTALL.get_or_init(|| install().map_err(|e| e.raw_os_error().unwrap_or(0)));
    installed.map_err(io::Error::from_raw_os_error)?;
    ensure_altstack()
}

/// Installs `on_fault` for `SIGSEGV` and `SIGBUS`, keeping the previous
/// handlers to chain to.
fn install() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_fault as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t to clear.
    cvt(unsafe { libc::sigemptyset(&mut sa.sa_mask) })?;
    // SAFETY: runs once (under INSTALL), before any handler of ours can read
    // PREV_*, which sigaction fills in; `sa` is fully initialised. A failed
    // SIGBUS install leaves PREV_BUS zeroed, read as SIG_DFL.
    unsafe {
        cvt(libc::sigaction(
            libc::SIGSEGV,
            &sa,
            (*ptr::addr_of_mut!(PREV_SEGV)).as_mut_ptr(),
        ))?;
        cvt(libc::sigaction(
            libc::SIGBUS,
            &sa,
            (*ptr::addr_of_mut!(PREV_BUS)).as_mut_ptr(),
        ))?;
    }
    Ok(())
}

/// An alternate signal stack the runtime made for its thread.
struct AltStack {
    map: *mut libc::c_void,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: a zeroed stack_t is valid; with SS_DISABLE it asks for no
        // alternate stack.
        let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
        ss.ss_flags = libc::SS_DISABLE;
        // SAFETY: `ss` is a valid stack_t.
        if cvt(unsafe { libc::sigaltstack(&ss, ptr::null_mut()) }).is_err() {
            // Still in use (EPERM: a handler runs on it): unmapping it now
            // would pull the stack from under that handler. Leak it.
            return;
        }
        // SAFETY: the mapping is ours, and no handler can run on it any more.
        let r = cvt(unsafe { libc::munmap(self.map, self.len) });
        debug_assert!(r.is_ok(), "munmap of an alternate signal stack: {r:?}");
    }
}

thread_local! {
    static OWN_ALTSTACK: Cell<Option<AltStack>> = const { Cell::new(None) };
}

fn ensure_altstack() -> io::Result<()> {
    // SAFETY: a zeroed stack_t is a valid out-value.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid out-pointer; a null new stack only queries.
    cvt(unsafe { libc::sigaltstack(ptr::null(), &mut old) })?;
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(()); // std (or the embedder) already gave this thread one
    }
    let page = crate::stack::page_size();
    // SAFETY: getauxval has no preconditions; 0 means "unknown".
    let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    let size = (min.max(libc::SIGSTKSZ) + 64 * 1024).div_ceil(page) * page;
    let len = size + page;
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let map = cvt(unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    })?;
    let unmap = |e: io::Error| {
        // SAFETY: the fresh mapping is ours and nothing uses it yet.
        let r = cvt(unsafe { libc::munmap(map, len) });
        debug_assert!(r.is_ok(), "munmap of a fresh mapping: {r:?}");
        e
    };
    // SAFETY: the lowest page of our own fresh mapping becomes the guard.
    cvt(unsafe { libc::mprotect(map, page, libc::PROT_NONE) }).map_err(unmap)?;
    let ss = libc::stack_t {
        // SAFETY: `page` bytes into a mapping of `page + size` bytes.
        ss_sp: unsafe { map.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `ss` describes the usable part of our mapping, which lives
    // until `AltStack`'s drop disables it again.
    cvt(unsafe { libc::sigaltstack(&ss, ptr::null_mut()) }).map_err(unmap)?;
    OWN_ALTSTACK.with(|c| c.set(Some(AltStack { map, len })));
    Ok(())
}

fn write_stderr(bytes: &[u8]) {
    // The result is not looked at: inside a signal handler about to abort,
    // a failed report has no one left to tell.
    // The raw system call: async-signal-safe, and never the patched name.
    let _ = crate::sys::raw_write(2, bytes);
}

fn write_dec(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn interrupted_sp(ctx: *mut libc::c_void) -> usize {
    // SAFETY: for an SA_SIGINFO handler the third argument is a ucontext_t.
    unsafe {
        (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RSP as usize] as usize
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn interrupted_sp(_ctx: *mut libc::c_void) -> usize {
    usize::MAX
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    // Set before the handler was installed, so present; `get` is one
    // atomic load.
    let cur = LOOKUP.get().map_or(ptr::null(), |lookup| lookup());
    if !cur.is_null() {
        // SAFETY: it points into the record of the greenlet that is running
        // on this thread; the record outlives its run.
        let fi = unsafe { &*cur };
        let sp = interrupted_sp(ctx);
        let in_guard = addr >= fi.guard_lo && addr < fi.guard_hi;
        // A frame that skipped the guard (C code without stack-clash
        // protection) still leaves SP at or below the guard's top.
        let sp_below = sp < fi.guard_hi && sp >= fi.guard_lo.saturating_sub(1 << 20);
        if fi.guard_hi != 0 && (in_guard || sp_below) {
            write_stderr(b"\ngreenlet '");
            write_stderr(fi.name_bytes());
            if fi.name_len == 0 {
                write_stderr(b"Greenlet-");
                write_dec(fi.id);
            }
            write_stderr(b"' has overflowed its stack (usable size ");
            write_dec(fi.usable as u64);
            write_stderr(
                b" bytes; raise it with Builder::stack_size, given to Builder::spawn or Builder::post, Pool::with_builder, Group::with_builder or spawn_with on a Pool, Group or Scope; or for every greenlet of this thread with Hub::set_stack_size)\nfatal runtime error: stack overflow, aborting\n",
            );
            // SAFETY: abort is async-signal-safe.
            unsafe { libc::abort() };
        }
    }
    // Not ours: hand it to whoever was installed before us.
    // SAFETY: PREV_* were written once by `init_thread` before this handler
    // could run, and are never written again.
    unsafe {
        let prev = if sig == libc::SIGBUS {
            (*ptr::addr_of!(PREV_BUS)).assume_init()
        } else {
            (*ptr::addr_of!(PREV_SEGV)).assume_init()
        };
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore the default action and return: the access faults again
            // and the process dies with the plain signal.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            if libc::sigaction(sig, &dfl, ptr::null_mut()) != 0 {
                // The default action cannot be restored: returning would
                // fault again into this handler forever. Abort instead.
                libc::abort();
            }
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}
