//! The real libc functions behind the patched names.
//!
//! Each is looked up once with `dlsym(RTLD_NEXT, name)`, the next
//! definition after the object that defines the patched one (libc's), and
//! cached in an atomic pointer; when that finds nothing (this code in a
//! library loaded after libc), libc's own handle is asked.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Finds libc's `name` (NUL-terminated) and caches it in `slot`.
///
/// Aborts with a message if libc lacks it: every caller names a function
/// glibc has had for decades, so this is a broken installation, and the
/// patched function cannot do what it was asked.
#[cold]
#[inline(never)]
pub(super) fn resolve(name: &'static [u8], slot: &AtomicPtr<c_void>) -> *mut c_void {
    debug_assert_eq!(name.last(), Some(&0));
    let sym = name.as_ptr().cast::<c_char>();
    // SAFETY: `sym` is NUL-terminated; RTLD_NEXT is a pseudo-handle dlsym
    // accepts.
    let mut p = unsafe { libc::dlsym(libc::RTLD_NEXT, sym) };
    if p.is_null() {
        // SAFETY: a NUL-terminated name; RTLD_NOLOAD only finds an object
        // already loaded (it is: we are linked against it).
        let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if !h.is_null() {
            // SAFETY: a live handle and a NUL-terminated name.
            p = unsafe { libc::dlsym(h, sym) };
        }
    }
    if p.is_null() {
        let msg = b"verdant: patch: libc lacks a function it patches; aborting\n";
        crate::sys::raw_write(2, msg);
        std::process::abort();
    }
    slot.store(p, Ordering::Relaxed);
    p
}

/// Declares `name` as a function returning the real libc function of
/// that name, with the given signature.
macro_rules! real_fns {
    ($( fn $name:ident ( $($arg:ty),* ) -> $ret:ty; )*) => {
        $(
            #[inline(always)]
            pub(super) fn $name() -> unsafe extern "C" fn($($arg),*) -> $ret {
                static SLOT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
                let mut p = SLOT.load(Ordering::Relaxed);
                if p.is_null() {
                    p = resolve(concat!(stringify!($name), "\0").as_bytes(), &SLOT);
                }
                // SAFETY: `p` is libc's function of this name, whose C
                // prototype is the one written here.
                unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> $ret>(p) }
            }
        )*
        /// Looks every one up now, so that no call does it later (`dlsym`
        /// may allocate: not allowed in a signal handler or a forked child).
        /// Run before `main` (see [`INIT`]), and by `patch_all`.
        pub(super) fn prime() {
            $( let _ = $name(); )*
        }
    };
}

use libc::{
    addrinfo, c_int, c_uint, c_ulong, clockid_t, fd_set, iovec, msghdr, nfds_t, pid_t, pollfd,
    rusage, sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

real_fns! {
    fn read(c_int, *mut c_void, size_t) -> ssize_t;
    fn write(c_int, *const c_void, size_t) -> ssize_t;
    fn readv(c_int, *const iovec, c_int) -> ssize_t;
    fn writev(c_int, *const iovec, c_int) -> ssize_t;
    fn recv(c_int, *mut c_void, size_t, c_int) -> ssize_t;
    fn send(c_int, *const c_void, size_t, c_int) -> ssize_t;
    fn recvfrom(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    fn sendto(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
    fn recvmsg(c_int, *mut msghdr, c_int) -> ssize_t;
    fn sendmsg(c_int, *const msghdr, c_int) -> ssize_t;
    fn accept(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    fn accept4(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    fn connect(c_int, *const sockaddr, socklen_t) -> c_int;
    fn poll(*mut pollfd, nfds_t, c_int) -> c_int;
    fn ppoll(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int;
    fn select(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int;
    fn nanosleep(*const timespec, *mut timespec) -> c_int;
    fn clock_nanosleep(clockid_t, c_int, *const timespec, *mut timespec) -> c_int;
    fn sleep(c_uint) -> c_uint;
    fn usleep(libc::useconds_t) -> c_int;
    fn getaddrinfo(*const c_char, *const c_char, *const addrinfo, *mut *mut addrinfo) -> c_int;
    fn close(c_int) -> c_int;
    fn dup(c_int) -> c_int;
    fn dup2(c_int, c_int) -> c_int;
    fn dup3(c_int, c_int, c_int) -> c_int;
    fn fcntl(c_int, c_int, c_ulong) -> c_int;
    fn ioctl(c_int, c_ulong, c_ulong) -> c_int;
    fn setsockopt(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
    fn socket(c_int, c_int, c_int) -> c_int;
    fn socketpair(c_int, c_int, c_int, *mut c_int) -> c_int;
    fn pipe2(*mut c_int, c_int) -> c_int;
    fn waitpid(pid_t, *mut c_int, c_int) -> pid_t;
    fn wait4(pid_t, *mut c_int, c_int, *mut rusage) -> pid_t;
    fn waitid(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;
    fn wait(*mut c_int) -> pid_t;
}

/// Runs [`prime`] as the program starts, before `main` and before any
/// other thread: the ELF initialisers run then (as a C constructor does).
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn init() {
        prime();
    }
    init
};
