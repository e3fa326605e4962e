//! Greenlet stacks: mmap'd, lazily committed, guard-protected, cached, scrubbed.
//!
//! ```text
//!   high addresses
//!   +---------------------------+ <- top (corosensei's `base`)
//!   |  used part (grows down)   |   memset to zero when the stack is reused
//!   |  ... untouched pages ...  |   never committed: cost no memory
//!   +---------------------------+ <- usable_lo
//!   |  guard (GUARD bytes)      |   MADV_GUARD_INSTALL, or PROT_NONE
//!   +---------------------------+ <- map_lo (corosensei's `limit`)
//!   low addresses
//! ```
//!
//! * **Guards without extra mappings.** Linux 6.13 added `MADV_GUARD_INSTALL`:
//!   the guard pages are page-table markers, so the stack stays one mapping and
//!   adjacent stacks merge into one VMA. A million guarded stacks then fit under
//!   the default `vm.max_map_count` of 65,530. On older kernels the guard is an
//!   `mprotect(PROT_NONE)` region, which costs a second mapping per stack; when
//!   the map count runs out, allocation fails with an [`io::Error`] of kind
//!   `OutOfMemory` that names `vm.max_map_count` (never a panic or abort).
//! * **Caching.** A finished greenlet's stack goes back to its hub's cache
//!   (through `Coroutine::into_stack`, so a stack is never reused while a
//!   coroutine could still live on it). The cache keeps up to
//!   [`DEFAULT_STACK_CACHE`] stacks per thread; beyond that they are unmapped.
//! * **Scrubbing.** A cached stack still holds the previous greenlet's data
//!   (keys, request bodies). Before reuse the runtime zeroes the part the
//!   previous greenlet used, from the lowest stack address seen at any of its
//!   switches (minus [`SCRUB_MARGIN`]) up to the top; a greenlet that went deeper
//!   than [`DEEP_SCRUB`] has its whole stack dropped with `MADV_DONTNEED`
//!   instead, which also gives the memory back. A system call per reuse
//!   costs ten times more than the memset of the few KiB a typical greenlet
//!   uses, which is why the common case is a memset. The limit of this
//!   scheme: data written by a call that returned *between* two switches, deeper
//!   than the margin below the deepest switch point, is not scrubbed. Safe Rust
//!   cannot read it either way; it matters only to unsafe code that reads
//!   uninitialised stack memory.
//! * **Valgrind.** Each stack is registered with `VALGRIND_STACK_REGISTER`
//!   (without it, memcheck takes every switch for a wild stack change);
//!   outside valgrind that is a few no-op instructions.
//!   Memcheck marks a stack's memory below its stack pointer unaddressable as
//!   the coroutine returns, so the scrub first declares the range writable
//!   again (`VALGRIND_MAKE_MEM_UNDEFINED`); without that every reuse of a
//!   stack reported invalid writes and CI's memcheck step could not pass.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use corosensei::stack::valgrind::ValgrindStackRegistration;

use crate::sys::cvt;
use corosensei::stack::StackPointer;

/// Default usable stack size of a greenlet: 256 KiB.
///
/// Memory is committed only as pages are touched, so an idle greenlet costs
/// about one page whatever the reserved size: parked greenlets use the same
/// resident memory on 64 KiB and 256 KiB stacks (4.4 KiB each in the
/// `park_many` bench). What a larger reservation does cost is page table:
/// about 0.5 KiB per greenlet at this size, against 0.16 KiB at 64 KiB.
///
/// The size is chosen for ordinary crates in debug builds, where frames are
/// several times larger than in release: an HTTP client such as `ureq` needs
/// about 96 KiB there. Raise it per greenlet with
/// [`Builder::stack_size`](crate::Builder::stack_size), or for every greenlet
/// a hub spawns with [`Hub::set_stack_size`](crate::Hub::set_stack_size).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest usable stack size accepted; smaller requests are rounded up.
///
/// A panic with `RUST_BACKTRACE=1` on this size survives because verdant runs
/// the panic hook on a side stack (std's hook, with a backtrace, needs
/// more than that).
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest usable stack size accepted (1 GiB); larger requests are an error.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// How many free stacks a hub keeps for reuse by default.
pub const DEFAULT_STACK_CACHE: usize = 1024;

/// Bytes zeroed below the deepest stack address seen at a switch.
pub const SCRUB_MARGIN: usize = 4096;

/// Used depth beyond which a stack is released with `MADV_DONTNEED` instead of
/// being zeroed with memset.
pub const DEEP_SCRUB: usize = 32 * 1024;

/// Size of the guard region below each stack.
const GUARD: usize = 16 * 1024;

/// `madvise` advice values from Linux 6.13 (`include/uapi/asm-generic/mman-common.h`).
const MADV_GUARD_INSTALL: libc::c_int = 102;

const MODE_UNKNOWN: u8 = 0;
const MODE_GUARD_INSTALL: u8 = 1;
const MODE_MPROTECT: u8 = 2;
static GUARD_MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);

/// How stack guard pages are made on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)`: no extra mapping per stack (Linux ≥ 6.13).
    GuardInstall,
    /// `mprotect(PROT_NONE)`: one extra mapping per stack.
    Mprotect,
}

/// Reports how guard pages are made here, allocating a probe stack if no
/// stack has been made yet.
///
/// # Examples
///
/// ```
/// let kind = verdant_runtime::stack::guard_kind();
/// println!("{kind:?}");
/// ```
pub fn guard_kind() -> GuardKind {
    if GUARD_MODE.load(Ordering::Relaxed) == MODE_UNKNOWN {
        drop(Stack::new(MIN_STACK_SIZE));
    }
    match GUARD_MODE.load(Ordering::Relaxed) {
        MODE_GUARD_INSTALL => GuardKind::GuardInstall,
        _ => GuardKind::Mprotect,
    }
}

pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as usize
        } else {
            4096
        }
    })
}

/// Rounds a requested usable size to whole pages within the accepted range.
pub(crate) fn round_size(size: usize) -> io::Result<usize> {
    if size > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("greenlet stack size {size} exceeds the maximum of {MAX_STACK_SIZE} bytes"),
        ));
    }
    let page = page_size();
    Ok(size.max(MIN_STACK_SIZE).div_ceil(page) * page)
}

/// One greenlet stack. Unmapped on drop.
pub(crate) struct Stack {
    map_lo: usize,
    map_len: usize,
    guard: usize,
    _valgrind: ValgrindStackRegistration,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("usable_lo", &format_args!("{:#x}", self.usable_lo()))
            .field("top", &format_args!("{:#x}", self.top()))
            .finish()
    }
}

fn map_error(err: io::Error, what: &str) -> io::Error {
    if err.raw_os_error() == Some(libc::ENOMEM) {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "cannot {what} a greenlet stack: out of memory mappings \
                 (vm.max_map_count is {}) or address space",
                std::fs::read_to_string("/proc/sys/vm/max_map_count")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".to_owned())
            ),
        )
    } else {
        err
    }
}

impl Stack {
    /// Maps a new stack with `usable` bytes (already rounded by `round_size`).
    pub(crate) fn new(usable: usize) -> io::Result<Stack> {
        let guard = GUARD.max(page_size());
        let map_len = usable + guard;
        // SAFETY: an anonymous private mapping at a kernel-chosen address; no
        // existing memory is affected.
        let p = cvt(unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        })
        .map_err(|e| map_error(e, "map"))?;
        let map_lo = p as usize;
        if let Err(e) = install_guard(map_lo, guard) {
            // SAFETY: we own this fresh mapping and nothing else refers to it.
            let r = cvt(unsafe { libc::munmap(p, map_len) });
            debug_assert!(r.is_ok(), "munmap of a fresh stack mapping: {r:?}");
            return Err(map_error(e, "guard"));
        }
        Ok(Stack {
            map_lo,
            map_len,
            guard,
            _valgrind: ValgrindStackRegistration::new((map_lo + guard) as *mut u8, usable),
        })
    }

    /// Highest address (exclusive): where the stack starts growing down.
    pub(crate) fn top(&self) -> usize {
        self.map_lo + self.map_len
    }

    /// Lowest usable address (the guard lies just below).
    pub(crate) fn usable_lo(&self) -> usize {
        self.map_lo + self.guard
    }

    /// The guard region `[lo, hi)`.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        (self.map_lo, self.map_lo + self.guard)
    }

    /// Usable bytes.
    pub(crate) fn usable(&self) -> usize {
        self.map_len - self.guard
    }

    /// Erases what the previous greenlet left: see the module docs.
    /// `low_water` is the lowest stack address seen while it ran.
    pub(crate) fn scrub(&mut self, low_water: usize) {
        let top = self.top();
        let lo = self.usable_lo();
        // Rounded down to a cache line; `lo` is page aligned, so still >= lo.
        let from = low_water.saturating_sub(SCRUB_MARGIN).clamp(lo, top) & !63;
        if top - from > DEEP_SCRUB {
            // SAFETY: the range is this stack's own usable part, and no
            // coroutine runs on it (the caller got it from `into_stack`).
            let r = cvt(unsafe {
                libc::madvise(lo as *mut libc::c_void, top - lo, libc::MADV_DONTNEED)
            });
            if r.is_ok() {
                return;
            }
            // Refused (it should not be, on our own private mapping): zero
            // the used part with memset instead, below.
        }
        valgrind_make_mem_undefined(from, top - from);
        // SAFETY: [from, top) lies inside this stack's usable, writable part,
        // and no coroutine runs on the stack while it is being scrubbed.
        unsafe { std::ptr::write_bytes(from as *mut u8, 0, top - from) };
    }
}

/// Tells valgrind's memcheck that `[lo, lo + len)` is addressable again
/// (its contents undefined): `VALGRIND_MAKE_MEM_UNDEFINED` from
/// `memcheck.h`. Outside valgrind it does nothing.
#[inline]
fn valgrind_make_mem_undefined(lo: usize, len: usize) {
    // VG_USERREQ_TOOL_BASE('M', 'C') + 1.
    const MAKE_MEM_UNDEFINED: u64 = 0x4d43_0001;
    valgrind_request(0, [MAKE_MEM_UNDEFINED, lo as u64, len as u64, 0, 0, 0]);
}

/// Whether the process runs under valgrind (`RUNNING_ON_VALGRIND`).
fn running_on_valgrind() -> bool {
    const RUNNING_ON_VALGRIND: u64 = 0x1001;
    valgrind_request(0, [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0
}

/// A valgrind client request: `args[0]` is the request code, the rest its
/// arguments; returns valgrind's answer, or `default` outside valgrind (and
/// on other architectures). On x86-64 the request is six instructions that
/// change no register but rdx and no memory. corosensei issues its stack
/// registrations the same way but keeps that function private.
#[inline]
fn valgrind_request(default: u64, args: [u64; 6]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let result: u64;
        // Valgrind's client-request sequence. On hardware the four rotations
        // of rdi add up to 128 bits (rdi is left unchanged) and `xchg rbx,
        // rbx` is a no-op, so rdx keeps `default`. It uses no stack and
        // writes no memory.
        // SAFETY: a no-op outside valgrind; under it, it reads the six words
        // of `args` (alive across the asm) and writes rdx (declared).
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") default => result,
                in("rax") args.as_ptr(),
                options(nostack),
            );
        }
        result
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = args;
        default
    }
}

/// How deep the stack whose usable part is `[lo, top)` has been used: the
/// distance from `top` down to its lowest non-zero word. A fresh stack is
/// zero (untouched pages are not even committed) and a reused one is zeroed
/// up to its previous greenlet's depth (see the module docs), so this is
/// the greenlet's deepest use so far, at word granularity, or more where an
/// earlier greenlet's data outlived the scrub (its limit, above). Only
/// resident pages are read (`mincore`): a deep, untouched stack costs one
/// system call and a scan of the pages in use.
///
/// `None` when it cannot tell: `mincore` failed, or under valgrind, whose
/// memcheck counts reads below a stack pointer as errors.
pub(crate) fn used_depth(lo: usize, top: usize) -> Option<usize> {
    let ps = page_size();
    if !lo.is_multiple_of(ps)
        || top <= lo
        || !(top - lo).is_multiple_of(ps)
        || running_on_valgrind()
    {
        return None;
    }
    let mut resident = vec![0u8; (top - lo) / ps];
    // SAFETY: [lo, top) is a whole number of pages of one of our stack
    // mappings (the caller's), and `resident` has a byte per page.
    cvt(unsafe { libc::mincore(lo as *mut libc::c_void, top - lo, resident.as_mut_ptr()) }).ok()?;
    for (i, r) in resident.iter().enumerate() {
        if r & 1 == 0 {
            continue; // never touched, or released: reads as zero
        }
        let page = lo + i * ps;
        for w in (page..page + ps).step_by(8) {
            // The caller's record holds the stack, so it stays mapped; only
            // this thread writes it, and not while we read.
            // SAFETY: `w` is an aligned word of a resident usable page.
            if unsafe { std::ptr::read_volatile(w as *const u64) } != 0 {
                return Some(top - w);
            }
        }
    }
    Some(0)
}

fn install_guard(map_lo: usize, guard: usize) -> io::Result<()> {
    let mode = GUARD_MODE.load(Ordering::Relaxed);
    if mode != MODE_MPROTECT {
        // SAFETY: the range is the start of a mapping we just made.
        let r =
            cvt(unsafe { libc::madvise(map_lo as *mut libc::c_void, guard, MADV_GUARD_INSTALL) });
        let Err(err) = r else {
            GUARD_MODE.store(MODE_GUARD_INSTALL, Ordering::Relaxed);
            return Ok(());
        };
        if err.raw_os_error() != Some(libc::EINVAL) || mode == MODE_GUARD_INSTALL {
            return Err(err);
        }
        // EINVAL on first use: the kernel predates MADV_GUARD_INSTALL.
        GUARD_MODE.store(MODE_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: as above; PROT_NONE on our own fresh mapping.
    cvt(unsafe { libc::mprotect(map_lo as *mut libc::c_void, guard, libc::PROT_NONE) }).map(drop)
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; the stack is dropped only after its
        // coroutine finished (into_stack) or was dropped, so nothing runs on it.
        let r = cvt(unsafe { libc::munmap(self.map_lo as *mut libc::c_void, self.map_len) });
        // Unmapping our own whole mapping cannot fail; if it did, the
        // memory would only leak.
        debug_assert!(r.is_ok(), "munmap of a greenlet stack: {r:?}");
    }
}

// `base` is the top of a mapping of `usable + guard` bytes whose lowest
// `guard` bytes are a guard region (MADV_GUARD_INSTALL or PROT_NONE).
// SAFETY: so an overflow faults; usable >= MIN_STACK_SIZE > corosensei's
// minimum; page alignment satisfies STACK_ALIGNMENT.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top()).expect("stack top is non-zero")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.map_lo).expect("stack limit is non-zero")
    }
}

/// A hub's free stacks, by usable size.
#[derive(Debug)]
pub(crate) struct StackCache {
    free: Vec<(usize, Vec<Stack>)>,
    len: usize,
    capacity: usize,
}

impl StackCache {
    pub(crate) fn new() -> StackCache {
        StackCache {
            free: Vec::new(),
            len: 0,
            capacity: DEFAULT_STACK_CACHE,
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.len > capacity {
            let Some((_, v)) = self.free.iter_mut().find(|(_, v)| !v.is_empty()) else {
                break;
            };
            v.pop();
            self.len -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A clean stack of `usable` bytes (rounded), from the cache or new.
    pub(crate) fn get(&mut self, usable: usize) -> io::Result<Stack> {
        if let Some((_, v)) = self.free.iter_mut().find(|(s, _)| *s == usable) {
            if let Some(s) = v.pop() {
                self.len -= 1;
                return Ok(s);
            }
        }
        Stack::new(usable)
    }

    /// Takes back a stack whose coroutine has finished; scrubs it first.
    pub(crate) fn put(&mut self, mut stack: Stack, low_water: usize) {
        if self.len >= self.capacity {
            return; // dropped: unmapped
        }
        stack.scrub(low_water);
        let usable = stack.usable();
        self.len += 1;
        match self.free.iter_mut().find(|(s, _)| *s == usable) {
            Some((_, v)) => v.push(stack),
            None => self.free.push((usable, vec![stack])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_and_are_bounded() {
        assert_eq!(round_size(1).unwrap(), MIN_STACK_SIZE);
        assert_eq!(
            round_size(MIN_STACK_SIZE + 1).unwrap(),
            MIN_STACK_SIZE + page_size()
        );
        let err = round_size(MAX_STACK_SIZE + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn scrub_erases_used_part() {
        let mut s = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let top = s.top();
        // Plant a marker 1 KiB below the top, as a greenlet's frame would.
        let marker = (top - 1024) as *mut u64;
        // SAFETY: inside the usable part of a stack we own.
        unsafe { marker.write(0xDEAD_BEEF_F00D_CAFE) };
        s.scrub(top - 512);
        // SAFETY: as above.
        assert_eq!(unsafe { marker.read() }, 0);
    }

    #[test]
    fn deep_scrub_releases_pages() {
        let mut s = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let deep = (s.usable_lo() + 64) as *mut u64;
        // SAFETY: inside the usable part of a stack we own.
        unsafe { deep.write(42) };
        s.scrub(s.usable_lo() + 128);
        // SAFETY: as above; MADV_DONTNEED pages read back as zero.
        assert_eq!(unsafe { deep.read() }, 0);
    }

    #[test]
    fn the_cache_reuses_stacks_and_respects_its_capacity() {
        let mut cache = StackCache::new();
        cache.set_capacity(1);
        let a = cache.get(DEFAULT_STACK_SIZE).unwrap();
        let b = cache.get(DEFAULT_STACK_SIZE).unwrap();
        let a_top = a.top();
        cache.put(a, a_top);
        cache.put(b, a_top); // over capacity: unmapped
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(DEFAULT_STACK_SIZE).unwrap().top(), a_top);
    }
}
