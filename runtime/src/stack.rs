//! Greenlet stacks: mmap'd, lazily committed, guard-protected, cached, scrubbed.
//!
//! ```text
//!   high addresses
//!   +---------------------------+ <- top (corosensei's `base`)
//!   |  used part (grows down)   |   memset to zero when the stack is reused
//!   |  ... untouched pages ...  |   never committed: cost no memory
//!   +---------------------------+ <- usable_lo
//!   |  guard (GUARD bytes)      |   MADV_GUARD_INSTALL, or PROT_NONE
//!   +---------------------------+ <- the slot's start (corosensei's `limit`)
//!   low addresses
//! ```
//!
//! * **Guards without extra mappings.** Linux 6.13 added `MADV_GUARD_INSTALL`:
//!   the guard pages are page-table markers, so a slab of stacks stays one
//!   mapping and adjacent slabs merge into one VMA. A million guarded stacks then fit under
//!   the default `vm.max_map_count` of 65,530. On older kernels the guard is an
//!   `mprotect(PROT_NONE)` region, which costs a second mapping per stack; when
//!   the map count runs out, allocation fails with an [`io::Error`] of kind
//!   `OutOfMemory` that names `vm.max_map_count` (never a panic or abort).
//! * **Many stacks per mapping.** A hub carves its stacks from *slabs*: one
//!   `mmap` reserves up to 64 stacks side by side (4 at first, doubling),
//!   each with its guard below it. Where the kernel takes
//!   `process_madvise(PIDFD_SELF, …)` with any advice (Linux 6.15), all of a
//!   slab's guards go in with one call, made when the first of its stacks
//!   is about to be run on: the stacks a burst of spawns reserves are
//!   mostly never run on (see below), and their guards would cost 0.5 µs
//!   each for nothing. A fresh greenlet then costs no
//!   system call of its own: 10,000 greenlets that each sleep once and
//!   finish make 179 `mmap`, 228 `process_madvise` and 168 `munmap` calls
//!   in all (`strace -c` of a copy of the `sleeps` bench's child; 538
//!   `process_madvise` when every slab was armed as it was mapped), where
//!   one stack per mapping made 10,000 of each of `mmap`, `madvise` and
//!   `munmap`.
//!   Elsewhere each guard is a `madvise` (or an `mprotect`) of its own.
//!   [`COMPAT_ENV`] selects the older kernels' paths.
//! * **Memory when a greenlet first runs.** A spawn takes a stack from the
//!   cache when one is there (resident, its first frame written at once).
//!   Otherwise it reserves one (address space: a released stack or a fresh
//!   slot, so that running out is still the spawn's error). In a burst
//!   (more greenlets waiting to run than the cache keeps stacks for) the
//!   greenlet's coroutine is then made when it first runs, on a cached
//!   stack if a greenlet that finished meanwhile left one (the reservation
//!   goes back at no cost), else on the reserved stack, whose slab's guards
//!   go in then if none of its stacks was run on yet, and whose top page
//!   the first frame faults in (both memory the kernel gives at the first
//!   run: without it the process aborts, as when an allocation fails). A
//!   burst of 100,000 spawns whose greenlets come and go thus commits
//!   memory for those alive at once, not for all: the `sleeps` bench's
//!   peak went from 441 to about 160 MiB.
//! * **Caching and giving memory back.** A finished greenlet's stack goes
//!   back to its hub's pool (through `Coroutine::into_stack`, so a stack is
//!   never reused while a coroutine could still live on it). The pool's
//!   cache keeps up to [`DEFAULT_STACK_CACHE`] stacks per thread, scrubbed
//!   and resident, for the next spawns. Past that, stacks wait as they are
//!   until a batch of them (256, or 8 MiB used) has its memory released in
//!   one call (`MADV_DONTNEED`), and at the latest until the hub next waits
//!   for timers or IO; they are then kept, as address space only, for reuse
//!   before any fresh slot. So the pool's resident memory is bounded by the
//!   cache and one batch. When more than 4,096 such released stacks pile up
//!   (after a burst), slabs none of whose stacks is in use are unmapped, and
//!   [`Hub::set_stack_cache_capacity`](crate::Hub::set_stack_cache_capacity)
//!   unmaps every such slab at once. [`Hub::stack_stats`](crate::Hub::stack_stats)
//!   shows what the pool holds.
//! * **Idle greenlets.** Where a hub turns it on
//!   ([`Hub::set_idle_compaction`](crate::Hub::set_idle_compaction), off
//!   by default and `unsafe` to turn on), a greenlet that has waited in a
//!   sleep or for IO for the period set there is *compacted*: its live
//!   frames (about a KiB for a connection's read loop) are copied to a
//!   heap buffer and its stack's memory is released, until it runs again
//!   and they are copied back to the same addresses. 10,000 idle echo
//!   connections then take well under half the memory.
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

use std::cell::Cell;
use std::io;
use std::rc::Rc;
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

/// The slabs a pool has mapped and not yet unmapped, and their bytes.
#[derive(Debug, Default)]
struct Tally {
    slabs: Cell<usize>,
    bytes: Cell<usize>,
}

/// One reservation holding `slots` stacks side by side, each `stride`
/// bytes: its guard, then its usable part. Unmapped when the last of its
/// stacks (and the pool's claim on its uncarved slots) is dropped.
#[derive(Debug)]
struct Slab {
    lo: usize,
    len: usize,
    stride: usize,
    slots: usize,
    /// Whether its slots' guards go in all at once (`MADV_GUARD_INSTALL`),
    /// when the first of its stacks is about to be run on
    /// ([`StackCache::arm`]); else each slot's is made as it is carved
    /// (`mprotect`), or at once (a stack of its own).
    batch_guards: bool,
    /// Whether every slot's guard is in place. Invariant: a coroutine runs
    /// on a slot of a slab only once this holds (`StackCache::arm` is
    /// called before every coroutine is made on a reserved stack; a stack
    /// from the cache was run on before, so its slab's guards are in).
    armed: Cell<bool>,
    /// The pool's count of slabs (`None`: a stack of its own, `Stack::new`).
    tally: Option<Rc<Tally>>,
    /// Slots holding no memory: uncarved, or released by the pool (cold).
    /// When it equals `slots`, the whole slab can go back to the kernel.
    idle: Cell<usize>,
}

impl Slab {
    /// Reserves `slots` stacks of `stride` bytes; no guard is made yet.
    fn map(stride: usize, slots: usize) -> io::Result<Slab> {
        let len = stride * slots;
        // SAFETY: an anonymous private mapping at a kernel-chosen address; no
        // existing memory is affected.
        let p = cvt(unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        })
        .map_err(|e| map_error(e, "map"))?;
        Ok(Slab {
            lo: p as usize,
            len,
            stride,
            slots,
            batch_guards: false,
            armed: Cell::new(true),
            tally: None,
            idle: Cell::new(slots),
        })
    }

    /// The guard range of slot `i`: the start of its stride.
    fn guard_of(&self, i: usize, guard: usize) -> (usize, usize) {
        let lo = self.lo + i * self.stride;
        (lo, lo + guard)
    }

    fn all_idle(&self) -> bool {
        self.idle.get() == self.slots
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(t) = &self.tally {
            t.slabs.set(t.slabs.get() - 1);
            t.bytes.set(t.bytes.get() - self.len);
        }
        // The mapping is ours, and each of its stacks holds the slab (`Rc`),
        // so none is alive; a stack is dropped only after its coroutine.
        // SAFETY: nothing runs on, or refers to, any part of the mapping.
        let r = cvt(unsafe { libc::munmap(self.lo as *mut libc::c_void, self.len) });
        // Unmapping our own whole mapping cannot fail; if it did, the
        // memory would only leak.
        debug_assert!(r.is_ok(), "munmap of a stack slab: {r:?}");
    }
}

/// One greenlet stack: a slot of a [`Slab`]. Four words, as small as a
/// stack of its own mapping was: it sits inside every greenlet's record,
/// next to the fields each switch reads.
pub(crate) struct Stack {
    slab: Rc<Slab>,
    usable_lo: usize,
    top: usize,
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
    /// Maps a stack of its own with `usable` bytes (already rounded by
    /// `round_size`): a slab of one slot. The pool carves its stacks from
    /// larger slabs instead (`StackCache::get`).
    pub(crate) fn new(usable: usize) -> io::Result<Stack> {
        let guard = guard_size();
        let slab = Rc::new(Slab::map(usable + guard, 1)?);
        install_guards(&[slab.guard_of(0, guard)], &mut Vec::new())
            .map_err(|e| map_error(e, "guard"))?;
        Ok(Stack::carve(slab, 0, guard))
    }

    /// Slot `i` of `slab`, whose guard is already installed.
    fn carve(slab: Rc<Slab>, i: usize, guard: usize) -> Stack {
        let (guard_lo, usable_lo) = slab.guard_of(i, guard);
        let top = guard_lo + slab.stride;
        slab.idle.set(slab.idle.get() - 1);
        Stack {
            slab,
            usable_lo,
            top,
            _valgrind: ValgrindStackRegistration::new(usable_lo as *mut u8, top - usable_lo),
        }
    }

    /// Highest address (exclusive): where the stack starts growing down.
    pub(crate) fn top(&self) -> usize {
        self.top
    }

    /// Lowest usable address (the guard lies just below).
    pub(crate) fn usable_lo(&self) -> usize {
        self.usable_lo
    }

    /// The guard region `[lo, hi)`.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        (self.top - self.slab.stride, self.usable_lo)
    }

    /// Usable bytes.
    pub(crate) fn usable(&self) -> usize {
        self.top - self.usable_lo
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
pub(crate) fn running_on_valgrind() -> bool {
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

/// The environment variable that makes stacks as on a kernel before 6.13:
/// `VERDANT_STACK_COMPAT=1` gives `mprotect` guards (one extra mapping per
/// stack) and a `madvise` call per range instead of batches. It is read
/// once, when the process makes its first stack. It exists so that the
/// fallback paths are tested on new kernels, and to rule them in or out
/// when a stack problem is reported.
pub const COMPAT_ENV: &str = "VERDANT_STACK_COMPAT";

fn compat_requested() -> bool {
    std::env::var_os(COMPAT_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Size of the guard region below a stack of its own: [`GUARD`], at least
/// a page.
fn guard_size() -> usize {
    GUARD.max(page_size())
}

/// Size of the guard region below a stack carved from a slab (see
/// `StackCache::carve`).
fn slab_guard_size() -> usize {
    guard_size() + page_size()
}

/// Makes each `[lo, hi)` of `ranges` (the start of a stack's stride, in a
/// mapping of ours that nothing runs on) a guard region: with
/// `MADV_GUARD_INSTALL` where the kernel has it, in as few calls as it
/// allows (`advise_all`), else with `mprotect(PROT_NONE)`, one call and one
/// extra mapping each. The first call finds out which (`GUARD_MODE`).
fn install_guards(ranges: &[(usize, usize)], iov: &mut Vec<libc::iovec>) -> io::Result<()> {
    let Some(&(lo, hi)) = ranges.first() else {
        return Ok(());
    };
    let mut mode = GUARD_MODE.load(Ordering::Relaxed);
    if mode == MODE_UNKNOWN && compat_requested() {
        // As on a kernel before 6.13 (see `COMPAT_ENV`).
        BATCH_MODE.store(BATCH_NO, Ordering::Relaxed);
        mode = MODE_MPROTECT;
        GUARD_MODE.store(mode, Ordering::Relaxed);
    }
    if mode == MODE_UNKNOWN {
        // SAFETY: the range is the start of a mapping of ours that nothing
        // runs on (this function's contract).
        let r = cvt(unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, MADV_GUARD_INSTALL) });
        mode = match r {
            Ok(_) => MODE_GUARD_INSTALL,
            // EINVAL on first use: the kernel predates MADV_GUARD_INSTALL.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => MODE_MPROTECT,
            Err(e) => return Err(e),
        };
        GUARD_MODE.store(mode, Ordering::Relaxed);
    }
    if mode == MODE_GUARD_INSTALL {
        return advise_all(ranges, MADV_GUARD_INSTALL, iov);
    }
    for &(lo, hi) in ranges {
        // SAFETY: as above; PROT_NONE on a range of our own mapping.
        cvt(unsafe { libc::mprotect(lo as *mut libc::c_void, hi - lo, libc::PROT_NONE) })?;
    }
    Ok(())
}

/// Gives back the memory of every `[lo, hi)` of `ranges` (`MADV_DONTNEED`),
/// in as few system calls as the kernel allows: parts of our own stacks
/// that no coroutine runs on and whose contents nobody needs (idle
/// compaction has copied out what it keeps). They read as zero afterwards.
pub(crate) fn release_ranges(
    ranges: &[(usize, usize)],
    iov: &mut Vec<libc::iovec>,
) -> io::Result<()> {
    advise_all(ranges, libc::MADV_DONTNEED, iov)
}

/// `process_madvise(2)`'s name for the calling process (`PIDFD_SELF`,
/// Linux 6.15): no descriptor to open or to keep.
const PIDFD_SELF: libc::c_long = -10000;

/// The most ranges one `process_madvise` call takes (`UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

const BATCH_UNKNOWN: u8 = 0;
const BATCH_YES: u8 = 1;
const BATCH_NO: u8 = 2;
/// Whether `process_madvise(PIDFD_SELF, …)` takes any advice here: Linux
/// 6.13 opened it to every advice on the caller's own memory, 6.15 added
/// `PIDFD_SELF`. Older kernels, and sandboxes that filter the call, answer
/// with an error, and each range then gets a `madvise` of its own.
static BATCH_MODE: AtomicU8 = AtomicU8::new(BATCH_UNKNOWN);

/// Applies `advice` to every `[lo, hi)` of `ranges`, ranges of our own
/// stack mappings that no coroutine runs on: up to [`IOV_MAX`] ranges per
/// `process_madvise` call where the kernel takes it, else a `madvise` each.
/// `iov` is scratch space the caller keeps (no allocation per call).
fn advise_all(
    ranges: &[(usize, usize)],
    advice: libc::c_int,
    iov: &mut Vec<libc::iovec>,
) -> io::Result<()> {
    let mut rest = ranges;
    // Valgrind does not know the call (it would warn and fail it).
    if BATCH_MODE.load(Ordering::Relaxed) != BATCH_NO && !running_on_valgrind() {
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(IOV_MAX));
            iov.clear();
            iov.extend(chunk.iter().map(|&(lo, hi)| libc::iovec {
                iov_base: lo as *mut libc::c_void,
                iov_len: hi - lo,
            }));
            let total: usize = chunk.iter().map(|&(lo, hi)| hi - lo).sum();
            // SAFETY: `iov` holds `iov.len()` ranges of our own mappings
            // (this function's contract); the kernel only reads the array.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    PIDFD_SELF,
                    iov.as_ptr(),
                    iov.len(),
                    advice as libc::c_long,
                    0 as libc::c_long,
                )
            };
            if r >= 0 && r as usize == total {
                BATCH_MODE.store(BATCH_YES, Ordering::Relaxed);
                rest = tail;
                continue;
            }
            if r < 0 && BATCH_MODE.load(Ordering::Relaxed) == BATCH_UNKNOWN {
                // The first call failed: no batching here (an older kernel,
                // or a filter); every call from now on goes range by range.
                BATCH_MODE.store(BATCH_NO, Ordering::Relaxed);
            }
            // A failure or a partial answer: this chunk range by range (the
            // advice is idempotent), which reports the error, if any.
            break;
        }
    }
    for &(lo, hi) in rest {
        // SAFETY: a range of our own stack mappings (this function's
        // contract).
        cvt(unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, advice) })?;
    }
    Ok(())
}

// `base` is the top of a slot of a slab (`stride` bytes, ours until the
// slab is unmapped, which the `Rc` in the stack prevents) whose lowest
// bytes, down to `limit`, are a guard region (MADV_GUARD_INSTALL or
// PROT_NONE, installed before the slot is handed out).
// SAFETY: so an overflow faults; usable >= MIN_STACK_SIZE > corosensei's
// minimum; page alignment satisfies STACK_ALIGNMENT.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top()).expect("stack top is non-zero")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.top - self.slab.stride).expect("stack limit is non-zero")
    }
}

/// Most slots in one slab.
const SLAB_SLOTS: usize = 64;

/// Most bytes in one slab: large stacks come fewer to a slab.
const SLAB_BYTES: usize = 32 << 20;

/// Stacks past the cache wait for their memory to be released together:
/// at most this many ...
const RELEASE_BATCH: usize = 256;

/// ... or this many bytes of them in use (the part below the deepest
/// switch point is counted at one page).
const RELEASE_BYTES: usize = 8 << 20;

/// Released stacks (address space only, no memory) kept for reuse; past
/// this many, slabs all of whose stacks are released are unmapped.
const COLD_KEEP: usize = 4096;

/// What a hub's stack pool holds (see [`Hub::stack_stats`](crate::Hub::stack_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackStats {
    /// Stacks in the cache: scrubbed and resident, for the next spawns
    /// ([`Hub::cached_stacks`](crate::Hub::cached_stacks)).
    pub cached: usize,
    /// Stacks past the cache whose memory is released with the next batch,
    /// or when the hub next goes idle.
    pub pending: usize,
    /// Released stacks: address space only, reused before fresh slots.
    pub released: usize,
    /// Memory mappings (slabs) the stacks are carved from, and their bytes.
    pub slabs: usize,
    /// Bytes of address space the slabs reserve (committed only as used).
    pub reserved: usize,
    /// Greenlets parked long enough that their stacks' memory was given
    /// back, their live frames kept in a buffer until they run again
    /// ([`Hub::set_idle_compaction`](crate::Hub::set_idle_compaction)).
    pub compacted: usize,
    /// The bytes those buffers hold.
    pub compacted_bytes: usize,
}

/// The free stacks of one usable size.
#[derive(Debug, Default)]
struct Class {
    usable: usize,
    /// Scrubbed and resident: the cache proper.
    warm: Vec<Stack>,
    /// Past the cache, resident and not yet scrubbed, with their low water:
    /// their memory is released with the next batch.
    dirty: Vec<(Stack, usize)>,
    /// Released: zero, and holding no memory.
    cold: Vec<Stack>,
    /// The slab new stacks are carved from, and its next slot.
    carving: Option<(Rc<Slab>, usize)>,
    /// Slabs made so far: each new one is twice as large, up to [`SLAB_SLOTS`].
    slabs: u32,
}

/// A hub's free stacks, by usable size, and the slabs they are carved from.
///
/// A stack goes through four states: carved from a slab (a fresh slot, which
/// holds no memory), in use by a greenlet, then back here either scrubbed in
/// the cache (up to its capacity, for the next spawn to reuse at once) or,
/// past the capacity, *dirty*: kept as it is until a batch of them has its
/// memory released in one call, after which they are *cold* (zero, no
/// memory, reused before any fresh slot). A batch is released when it
/// reaches [`RELEASE_BATCH`] stacks or [`RELEASE_BYTES`] in use, and whenever
/// the hub is about to block ([`StackCache::release`]); the resident memory
/// the pool holds is therefore bounded by its capacity and one batch.
/// Cold stacks past [`COLD_KEEP`] give their address space back too: slabs
/// all of whose slots are cold are unmapped.
#[derive(Debug)]
pub(crate) struct StackCache {
    classes: Vec<Class>,
    /// Warm stacks in all classes, and the most there may be.
    len: usize,
    capacity: usize,
    /// Dirty stacks in all classes, and the bytes they have used.
    dirty: usize,
    dirty_bytes: usize,
    /// Cold stacks in all classes, and the count that triggers a trim.
    cold: usize,
    trim_at: usize,
    /// The slabs mapped and not yet unmapped.
    tally: Rc<Tally>,
    /// Scratch for batched system calls.
    ranges: Vec<(usize, usize)>,
    iov: Vec<libc::iovec>,
}

impl StackCache {
    pub(crate) fn new() -> StackCache {
        StackCache {
            classes: Vec::new(),
            len: 0,
            capacity: DEFAULT_STACK_CACHE,
            dirty: 0,
            dirty_bytes: 0,
            cold: 0,
            trim_at: 2 * COLD_KEEP,
            tally: Rc::default(),
            ranges: Vec::new(),
            iov: Vec::new(),
        }
    }

    /// Sets the cache's capacity: warm stacks beyond it, and every dirty
    /// one, are released at once, and every slab left without a stack in
    /// use is unmapped.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        for c in &mut self.classes {
            while self.len > capacity {
                let Some(s) = c.warm.pop() else { break };
                self.len -= 1;
                let low = s.top();
                c.dirty.push((s, low));
                self.dirty += 1;
            }
        }
        self.release();
        self.trim(0);
    }

    /// What the pool holds.
    pub(crate) fn stats(&self) -> StackStats {
        StackStats {
            cached: self.len,
            pending: self.dirty,
            released: self.cold,
            slabs: self.tally.slabs.get(),
            reserved: self.tally.bytes.get(),
            compacted: 0,
            compacted_bytes: 0,
        }
    }

    /// The most warm stacks the cache keeps.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Warm stacks: scrubbed, resident, ready for the next spawn.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn class(&mut self, usable: usize) -> &mut Class {
        let i = match self.classes.iter().position(|c| c.usable == usable) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    usable,
                    ..Class::default()
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }

    /// A clean stack of `usable` bytes (rounded): resident if one is free
    /// (see [`take_resident`](Self::take_resident)), else a reserved one
    /// (see [`reserve`](Self::reserve)).
    #[cfg(test)]
    pub(crate) fn get(&mut self, usable: usize) -> io::Result<Stack> {
        match self.take_resident(usable) {
            Some(s) => Ok(s),
            None => self.reserve(usable),
        }
    }

    /// A clean stack of `usable` bytes whose top is already in memory: a
    /// warm one, else a dirty one (scrubbed now, a memset of the part its
    /// last greenlet used: cheaper than the page fault a cold stack takes).
    #[inline]
    pub(crate) fn take_resident(&mut self, usable: usize) -> Option<Stack> {
        let c = self.class(usable);
        if let Some(s) = c.warm.pop() {
            self.len -= 1;
            return Some(s);
        }
        let (mut s, low) = c.dirty.pop()?;
        s.scrub(low);
        self.dirty -= 1;
        self.dirty_bytes = self.dirty_bytes.saturating_sub(used_bytes(&s, low));
        Some(s)
    }

    /// Readies a stack from [`reserve`](Self::reserve) to be run on: its
    /// slab's guards go in now if they were left for its first use (see
    /// `carve`). Stacks from [`take_resident`](Self::take_resident) were run
    /// on before and need no call.
    ///
    /// # Errors
    ///
    /// As for [`reserve`](Self::reserve) (the kernel's page tables for the
    /// guards).
    #[inline]
    pub(crate) fn arm(&mut self, stack: &Stack) -> io::Result<()> {
        if stack.slab.armed.get() {
            return Ok(());
        }
        self.arm_slab(&stack.slab)
    }

    #[cold]
    #[inline(never)]
    fn arm_slab(&mut self, slab: &Slab) -> io::Result<()> {
        let guard = slab_guard_size();
        self.ranges.clear();
        self.ranges
            .extend((0..slab.slots).map(|i| slab.guard_of(i, guard)));
        install_guards(&self.ranges, &mut self.iov).map_err(|e| map_error(e, "guard"))?;
        slab.armed.set(true);
        Ok(())
    }

    /// A stack of `usable` bytes that holds no memory yet: a released one,
    /// else a fresh slot. Its pages are committed by the first touch. A
    /// reservation that was not used goes back with
    /// [`unreserve`](Self::unreserve).
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when no slab can be mapped or guarded (address space,
    /// `vm.max_map_count`).
    pub(crate) fn reserve(&mut self, usable: usize) -> io::Result<Stack> {
        let c = self.class(usable);
        if let Some(s) = c.cold.pop() {
            s.slab.idle.set(s.slab.idle.get() - 1);
            self.cold -= 1;
            return Ok(s);
        }
        self.carve(usable)
    }

    /// Takes back a stack from [`reserve`](Self::reserve) that was never
    /// run on (so it is still zero and holds no memory): it is released at
    /// no cost.
    pub(crate) fn unreserve(&mut self, stack: Stack) {
        stack.slab.idle.set(stack.slab.idle.get() + 1);
        self.class(stack.usable()).cold.push(stack);
        self.cold += 1;
        if self.cold > self.trim_at {
            self.trim(COLD_KEEP);
        }
    }

    /// A fresh slot of the class's slab, or of a new slab.
    fn carve(&mut self, usable: usize) -> io::Result<Stack> {
        // One page more of guard than a stack of its own has: for the usual
        // sizes (an even number of pages, such as the default 64) the stride
        // is then an odd number of pages, so the tops of neighbouring
        // stacks, where every greenlet's frames are, fall on all of the L2
        // cache's page colours instead of a few of them (68 pages: 8 of 32).
        let guard = slab_guard_size();
        let StackCache {
            classes,
            iov,
            tally,
            ..
        } = self;
        let c = classes
            .iter_mut()
            .find(|c| c.usable == usable)
            .expect("the class exists (get made it)");
        if let Some((slab, next)) = &mut c.carving {
            if *next < slab.slots {
                let i = *next;
                if !slab.batch_guards {
                    // mprotect guards: one mapping more per stack, made as
                    // the stack is carved, so the map count grows only with
                    // the stacks in use.
                    install_guards(&[slab.guard_of(i, guard)], iov)
                        .map_err(|e| map_error(e, "guard"))?;
                }
                *next += 1;
                return Ok(Stack::carve(slab.clone(), i, guard));
            }
        }
        let stride = usable + guard;
        let mut slots = (4usize << c.slabs.min(8))
            .min(SLAB_SLOTS)
            .min((SLAB_BYTES / stride).max(1));
        let mut slab = loop {
            match Slab::map(stride, slots) {
                Ok(slab) => break slab,
                // Short of address space: a smaller slab may still fit.
                Err(_) if slots > 1 => slots /= 2,
                Err(e) => return Err(e),
            }
        };
        // With MADV_GUARD_INSTALL every guard goes in with one call, once
        // one of the slab's stacks is about to be run on (`arm`): a burst
        // of spawns reserves a stack for each greenlet, but those that
        // start after others have finished run on the stacks these left,
        // and their reservations are never run on. (The 100,000-sleeps
        // bench used one in six; installing the rest cost 0.5 us each.)
        // Until the process knows how guards are made, the first slot's
        // goes in now, which finds out; with mprotect each slot's goes in
        // as it is carved. (Slab::drop unmaps the slab if this fails.)
        if GUARD_MODE.load(Ordering::Relaxed) != MODE_GUARD_INSTALL {
            install_guards(&[slab.guard_of(0, guard)], iov).map_err(|e| map_error(e, "guard"))?;
        }
        if GUARD_MODE.load(Ordering::Relaxed) == MODE_GUARD_INSTALL {
            slab.batch_guards = true;
            slab.armed = Cell::new(false);
        }
        tally.slabs.set(tally.slabs.get() + 1);
        tally.bytes.set(tally.bytes.get() + slab.len);
        slab.tally = Some(tally.clone());
        let slab = Rc::new(slab);
        c.slabs += 1;
        c.carving = Some((slab.clone(), 1));
        Ok(Stack::carve(slab, 0, guard))
    }

    /// Takes back a stack whose coroutine has finished: into the cache
    /// (scrubbed) while it has room and the stack was not used deeply, else
    /// onto the dirty list.
    pub(crate) fn put(&mut self, mut stack: Stack, low_water: usize) {
        let used = used_bytes(&stack, low_water);
        if self.len < self.capacity && used <= DEEP_SCRUB {
            stack.scrub(low_water);
            self.len += 1;
            self.class(stack.usable()).warm.push(stack);
            return;
        }
        self.dirty += 1;
        self.dirty_bytes += used;
        self.class(stack.usable()).dirty.push((stack, low_water));
        if self.dirty >= RELEASE_BATCH || self.dirty_bytes >= RELEASE_BYTES {
            self.release();
        }
    }

    /// Releases the memory of every dirty stack, in as few system calls as
    /// the kernel allows; they become cold. The hub calls it before it
    /// blocks, so dirty stacks never wait long.
    pub(crate) fn release(&mut self) {
        if self.dirty == 0 {
            return;
        }
        self.ranges.clear();
        for c in &self.classes {
            self.ranges
                .extend(c.dirty.iter().map(|(s, _)| (s.usable_lo(), s.top())));
        }
        let released = advise_all(&self.ranges, libc::MADV_DONTNEED, &mut self.iov).is_ok();
        for c in &mut self.classes {
            for (mut s, low) in c.dirty.drain(..) {
                if !released {
                    // Refused (it should not be, on our own private
                    // mappings): the memory stays, but the data goes.
                    s.scrub(low);
                }
                s.slab.idle.set(s.slab.idle.get() + 1);
                c.cold.push(s);
            }
        }
        self.cold += self.dirty;
        self.dirty = 0;
        self.dirty_bytes = 0;
        if self.cold > self.trim_at {
            self.trim(COLD_KEEP);
        }
    }

    /// Whether any stack waits for [`release`](Self::release).
    pub(crate) fn has_dirty(&self) -> bool {
        self.dirty > 0
    }

    /// Unmaps slabs none of whose slots holds a stack in use or cached,
    /// while more than `keep` cold stacks remain.
    fn trim(&mut self, keep: usize) {
        for c in &mut self.classes {
            if self.cold <= keep {
                break;
            }
            if c.carving.as_ref().is_some_and(|(slab, _)| slab.all_idle()) {
                c.carving = None;
            }
            let before = c.cold.len();
            let mut over = self.cold - keep;
            c.cold.retain(|s| {
                if over > 0 && s.slab.all_idle() {
                    over -= 1;
                    false // the slab is unmapped with its last stack
                } else {
                    true
                }
            });
            self.cold -= before - c.cold.len();
        }
        // Slabs only partly idle cannot go: wait until the cold list has
        // doubled before looking again, so the scans stay linear in all.
        self.trim_at = (2 * COLD_KEEP).max(2 * self.cold);
    }
}

/// The bytes a greenlet used of `stack`, down to its lowest switch point
/// (`low_water`) and one page more.
fn used_bytes(stack: &Stack, low_water: usize) -> usize {
    (stack.top() - low_water.clamp(stack.usable_lo(), stack.top()) + page_size())
        .min(stack.usable())
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

    /// Whether the page holding `addr` is mapped and resident, not
    /// resident, or not mapped at all (`None`).
    fn resident(addr: usize) -> Option<bool> {
        let page = addr & !(page_size() - 1);
        let mut v = 0u8;
        // SAFETY: mincore only reads the page tables of one page and writes
        // one byte into `v`.
        let r = unsafe { libc::mincore(page as *mut libc::c_void, page_size(), &mut v) };
        (r == 0).then_some(v & 1 == 1)
    }

    #[test]
    fn stacks_are_carved_side_by_side_from_one_slab() {
        let mut cache = StackCache::new();
        let a = cache.get(MIN_STACK_SIZE).unwrap();
        let b = cache.get(MIN_STACK_SIZE).unwrap();
        let c = cache.get(MIN_STACK_SIZE).unwrap();
        let stride = MIN_STACK_SIZE + slab_guard_size();
        assert_eq!(b.top() - a.top(), stride);
        assert_eq!(c.top() - b.top(), stride);
        assert_eq!((stride / page_size()) % 2, 1, "an odd number of pages");
        assert!(Rc::ptr_eq(&a.slab, &c.slab));
        // Each has its own guard, right below its usable part.
        assert_eq!(b.guard_range(), (a.top(), a.top() + slab_guard_size()));
    }

    #[test]
    fn stacks_past_the_cache_come_back_clean_dirty_or_released() {
        let mut cache = StackCache::new();
        cache.set_capacity(0);
        let s = cache.get(DEFAULT_STACK_SIZE).unwrap();
        let top = s.top();
        let secret = top - 1024;
        // SAFETY: inside the usable part of a stack we own, nothing runs on it.
        unsafe { (secret as *mut u64).write(0x5EC2_E7ED) };
        cache.put(s, top - 512);
        assert_eq!(cache.len(), 0, "no room in the cache: the stack is dirty");
        assert!(cache.has_dirty());
        // Taken back before its batch was released: scrubbed on the way out.
        let s = cache.get(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(s.top(), top);
        // SAFETY: as above.
        assert_eq!(unsafe { (secret as *const u64).read() }, 0);
        // SAFETY: as above.
        unsafe { (secret as *mut u64).write(0x5EC2_E7ED) };
        cache.put(s, top - 512);
        cache.release();
        assert!(!cache.has_dirty());
        assert_eq!(resident(secret), Some(false), "released: no memory held");
        let s = cache.get(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(
            s.top(),
            top,
            "a released stack is reused before a fresh slot"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { (secret as *const u64).read() }, 0);
    }

    #[test]
    fn a_batch_of_dirty_stacks_is_released_in_one_go() {
        let mut cache = StackCache::new();
        cache.set_capacity(0);
        let stacks: Vec<Stack> = (0..RELEASE_BATCH)
            .map(|_| cache.get(MIN_STACK_SIZE).unwrap())
            .collect();
        let tops: Vec<usize> = stacks.iter().map(Stack::top).collect();
        for s in stacks {
            let top = s.top();
            // SAFETY: the top word of a stack we own; nothing runs on it.
            unsafe { ((top - 8) as *mut u64).write(1) };
            cache.put(s, top - 64);
        }
        // The last put reached the batch size: all released.
        assert!(!cache.has_dirty());
        for top in tops {
            assert_eq!(resident(top - 8), Some(false));
        }
    }

    #[test]
    fn a_deeply_used_stack_skips_the_cache() {
        let mut cache = StackCache::new();
        let s = cache.get(DEFAULT_STACK_SIZE).unwrap();
        let lo = s.usable_lo();
        cache.put(s, lo + 128);
        assert_eq!(cache.len(), 0, "too deep for a memset: released instead");
        assert!(cache.has_dirty());
    }

    #[test]
    fn idle_slabs_are_unmapped_when_the_cache_is_emptied() {
        let mut cache = StackCache::new();
        let stacks: Vec<Stack> = (0..10)
            .map(|_| cache.get(MIN_STACK_SIZE).unwrap())
            .collect();
        // (Whether the address is still mapped cannot tell: another test's
        // thread may map something there as soon as it is free.)
        let slabs: Vec<std::rc::Weak<Slab>> =
            stacks.iter().map(|s| Rc::downgrade(&s.slab)).collect();
        for s in stacks {
            let low = s.top();
            cache.put(s, low);
        }
        assert_eq!(cache.len(), 10);
        cache.set_capacity(0);
        assert_eq!(cache.len(), 0);
        for slab in slabs {
            assert!(slab.upgrade().is_none(), "a slab outlived its stacks");
        }
    }

    #[test]
    fn a_slab_stays_mapped_while_one_of_its_stacks_is_in_use() {
        let mut cache = StackCache::new();
        let a = cache.get(MIN_STACK_SIZE).unwrap();
        let b = cache.get(MIN_STACK_SIZE).unwrap();
        let top = a.top();
        cache.put(a, top);
        cache.set_capacity(0);
        assert_eq!(resident(top - 8), Some(false), "released, still mapped");
        let slab = Rc::downgrade(&b.slab);
        drop(cache);
        assert!(slab.upgrade().is_some(), "unmapped under a stack in use");
        drop(b);
        assert!(slab.upgrade().is_none(), "not unmapped with its last stack");
    }
}
