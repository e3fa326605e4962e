//! Idle compaction: a greenlet that has waited long in a sleep or for IO
//! keeps only its live frames, in a heap buffer, and its stack's memory
//! goes back to the kernel until it runs again.
//!
//! A parked greenlet's memory is mostly its stack's top page (4 KiB), of
//! which its live frames use a fraction (about 1 KiB for an echo loop
//! waiting in `recv_buf`). greenlet copies the live part of a stack to the
//! heap at every switch; verdant does it only for greenlets parked long
//! enough that the copy is paid back many times over:
//!
//! * **Who.** Off unless turned on ([`Hub::set_idle_compaction`](crate::Hub::set_idle_compaction), which is
//!   `unsafe`: a greenlet may lend its stack to a scoped thread across a
//!   wait, and compaction would pull the memory from under that thread).
//!   A child greenlet parked in a sleep or an IO wait (through
//!   `Runtime::park_compactable`), not woken yet, that has not run for
//!   about the period set there. Only these waits: every other hub
//!   wait (a lock, an event, a queue, a join…) keeps a node of a wait list
//!   on the waiting greenlet's own stack, which the waker writes and reads
//!   while the greenlet is parked, so its stack must stay in place.
//!   Greenlets inside a patched libc call (`quiet`) are left alone too:
//!   foreign code may have lent its stack to another thread.
//! * **When.** A sweep visits the live greenlets, a step at a check of
//!   timers and IO ([`STEP_BUSY`] or [`STEP_IDLE`] records and
//!   compactions at most) and a step per [`STEP_GAP`], and starts again
//!   once a period has passed since the last one started. A greenlet is
//!   compacted when a sweep finds it in the same wait (its id and wait
//!   sequence number) as the sweep before, a period earlier.
//! * **What.** The bytes from [`DEPTH`] below its park address (the
//!   switch's own frames, see below) up to the top of its stack are copied
//!   to a buffer ([`Saved`]), and the whole usable stack is released with
//!   `MADV_DONTNEED`, one system call for every greenlet of the step. The
//!   stack's address range stays reserved for it. The coroutine and its
//!   buffer move to a box of their own ([`Parked`]): about 100 bytes more
//!   than the frames.
//! * **Back.** The root loop resumes a greenlet through its coroutine slot;
//!   a compacted one (`CoSlot::Compacted`) takes the slow path, which
//!   copies the bytes back where they were (the top page faults in again)
//!   before the resume. Every other way a coroutine can run again (its
//!   forced unwind, a drop) puts the bytes back first as well: [`Saved`]
//!   does so when dropped, and is dropped before the coroutine next to it.
//!
//! **The switch's depth.** The bytes just below the stack pointer that
//! the switch writes (the registers corosensei saves, and its suspend's
//! own frame where that is not inlined) are live too. A sleep or an IO
//! wait parks through `Runtime::park_compactable`, which notes its stack
//! pointer (`Inner::site_sp`): everything down to the switch is inlined
//! into the same frame, so the switch writes below that address at most
//! what corosensei's out-of-line suspend does. A *probe* greenlet
//! measures that once per process, before the first compaction: it
//! switches through a pointer to that function, with the stack below it
//! filled with a pattern, and finds the lowest word that changed
//! (`switch::probe_switch`). [`PROBE_PAD`] more is kept.
//!
//! Not under valgrind (memcheck counts reads below a stack pointer as
//! errors, and the probe writes there) nor AddressSanitizer (whose
//! redzones make the frames unreadable from outside).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::info::Waiting;
use super::record::{Co, CoSlot, Inner, Kind, State};
use super::Runtime;
use crate::stack;

/// Live records a sweep visits per step, and the most it compacts then,
/// while the hub has greenlets to run: a step then costs it about 30 µs
/// (a cache miss per record, a microsecond or two per compaction), 3% of
/// its time at one step a millisecond.
const STEP_BUSY: (usize, usize) = (256, 16);

/// The same for a hub with nothing else to do (about to block).
const STEP_IDLE: (usize, usize) = (4096, 1024);

/// The least time between two steps of a sweep. A sweep of 10,000 idle
/// greenlets takes 3 steps; of a million busy ones, 4 s.
const STEP_GAP: Duration = Duration::from_millis(1);

/// Bytes kept below the probe's finding (see the module docs).
const PROBE_PAD: usize = 32;

/// How far below its stack pointer the probe fills the stack.
const PROBE_SPAN: usize = 4096;

/// The pattern the probe fills with.
const PATTERN: u64 = 0xa5c3_5a3c_96e1_69d2;

/// The switch's depth below a park address (see the module docs), the same
/// for every thread of the process: 0 while unknown, [`UNUSABLE`] when the
/// probe could not tell (compaction is then off).
static DEPTH: AtomicUsize = AtomicUsize::new(0);
const UNUSABLE: usize = usize::MAX;

/// Whether compaction can work in this process at all.
fn supported() -> bool {
    !cfg!(feature = "asan") && !stack::running_on_valgrind() && cfg!(target_arch = "x86_64")
}

/// A compacted greenlet's coroutine and its live frames.
///
/// The frames come first: fields drop in order, so they are back in place
/// before the coroutine's own drop could unwind it.
pub(super) struct Parked {
    pub(super) saved: Saved,
    pub(super) co: Co,
    /// How deep its stack had been at a switch, from its top, when it was
    /// compacted (for `GreenletInfo::stack_used`: the stack itself reads
    /// as zero now).
    pub(super) used: usize,
}

impl Parked {
    /// Puts the frames back and returns the coroutine, ready to run.
    pub(super) fn into_live(self) -> Co {
        let Parked { mut saved, co, .. } = self;
        saved.put_back();
        co
    }
}

/// The live frames of a compacted greenlet, and where they go back.
///
/// Invariant (saved): `bytes` came from `[top - bytes.len(), top)` of the
/// stack of the coroutine next to it in its [`Parked`], which stays mapped
/// while that coroutine lives; nothing ran on the stack since, and until
/// the bytes are back nothing may.
pub(super) struct Saved {
    bytes: Box<[u8]>,
    top: usize,
}

impl Saved {
    /// Copies the frames back onto the stack (once).
    pub(super) fn put_back(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if bytes.is_empty() {
            return;
        }
        let n = bytes.len();
        // SAFETY: invariant (saved): the range is the coroutine's own
        // stack, mapped and idle, and the bytes came from exactly there.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (self.top - n) as *mut u8, n) };
        let _ = super::try_rt(|rt| {
            let c = &rt.compact;
            c.count.set(c.count.get().saturating_sub(1));
            c.bytes.set(c.bytes.get().saturating_sub(n));
        });
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        // The coroutine next to it is dropped after it (the field order of
        // `Parked`), and may run then (a forced unwind).
        self.put_back();
    }
}

/// A hub's compaction state (see the module docs).
pub(super) struct Compactor {
    /// The period; `None` when off.
    after: Cell<Option<Duration>>,
    /// When the next step may run; `None` before the first sweep.
    next_at: Cell<Option<Instant>>,
    /// The next record of `Runtime::live` to visit; 0 starts a sweep.
    cursor: Cell<usize>,
    /// When the current sweep started.
    sweep_started: Cell<Option<Instant>>,
    /// What the last sweep saw at each index of `Runtime::live`: the id
    /// and wait of a greenlet that may be compacted, `(0, 0)` otherwise. A
    /// greenlet still in the same wait at the next sweep, a period later,
    /// is compacted. (Indices shift as greenlets die: one that moved is
    /// seen anew and waits a sweep more.)
    marks: RefCell<Vec<(u64, u64)>>,
    /// A probe greenlet is on its way (see the module docs).
    probing: Cell<bool>,
    /// The current sweep has seen a greenlet that may be compacted once
    /// idle long enough (see `compact_deadline`).
    seen: Cell<bool>,
    /// `Runtime::switches` when the last sweep ended.
    swept_at: Cell<u64>,
    /// Scratch space for a step's ranges to release, and the records
    /// compacted with where their saved frames start.
    ranges: RefCell<Vec<(usize, usize)>>,
    lowered: RefCell<Vec<(*const Inner, usize)>>,
    iov: RefCell<Vec<libc::iovec>>,
    /// Greenlets compacted now, and the bytes their frames take.
    pub(super) count: Cell<usize>,
    pub(super) bytes: Cell<usize>,
}

impl Compactor {
    pub(super) fn new() -> Compactor {
        Compactor {
            after: Cell::new(None),
            next_at: Cell::new(None),
            cursor: Cell::new(0),
            sweep_started: Cell::new(None),
            marks: RefCell::new(Vec::new()),
            probing: Cell::new(false),
            seen: Cell::new(false),
            swept_at: Cell::new(0),
            ranges: RefCell::new(Vec::new()),
            lowered: RefCell::new(Vec::new()),
            iov: RefCell::new(Vec::new()),
            count: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    pub(super) fn period(&self) -> Option<Duration> {
        self.after.get()
    }

    /// Sets the period (`None`: off). A new period starts a new sweep, with
    /// no greenlet counted as idle yet. Where compaction cannot work (see
    /// the module docs), it stays off.
    pub(super) fn set_period(&self, after: Option<Duration>) {
        self.after.set(after.filter(|_| supported()));
        self.next_at.set(None);
        self.cursor.set(0);
        self.sweep_started.set(None);
        self.marks.borrow_mut().clear();
    }
}

impl Runtime {
    /// One step of the sweep, when one is due (called at each check of
    /// timers and IO, with the time of that check; `idle`: the hub is about
    /// to block, so the step may be longer).
    #[inline]
    pub(super) fn compact_step(&self, now: Instant, idle: bool) {
        let c = &self.compact;
        if c.after.get().is_none() || c.next_at.get().is_some_and(|t| now < t) {
            return;
        }
        self.compact_step_slow(now, idle);
    }

    #[cold]
    #[inline(never)]
    fn compact_step_slow(&self, now: Instant, idle: bool) {
        let c = &self.compact;
        let Some(after) = c.after.get() else {
            return;
        };
        if self.shutting_down.get() {
            return;
        }
        let depth = DEPTH.load(Ordering::Relaxed);
        if depth == UNUSABLE {
            // The probe could not measure the switch: compaction is off.
            c.after.set(None);
            return;
        }
        let start = c.cursor.get();
        if start == 0 {
            c.sweep_started.set(Some(now));
            c.seen.set(false);
        }
        let (visit, most) = if idle { STEP_IDLE } else { STEP_BUSY };
        let mut probe = false;
        let (end, len) = {
            let live = self.live.borrow();
            let mut end = (start + visit).min(live.len());
            let mut marks = c.marks.borrow_mut();
            if marks.len() < end {
                marks.resize(end, (0, 0));
            }
            let mut ranges = c.ranges.borrow_mut();
            ranges.clear();
            let mut lowered = c.lowered.borrow_mut();
            lowered.clear();
            for (i, &p) in live.iter().enumerate().take(end).skip(start) {
                // SAFETY: (listed) every address in `live` names a live
                // record, and nothing in this loop can end one.
                let inner = unsafe { &*p };
                if !may_compact(inner) {
                    marks[i] = (0, 0);
                    continue;
                }
                let key = (inner.id, inner.wait_seq.get());
                if marks[i] == refused(key) {
                    continue; // `compact_one` turned this wait down
                }
                c.seen.set(true);
                if marks[i] != key {
                    // First seen in this wait: compacted at the next sweep
                    // if still in it.
                    marks[i] = key;
                    continue;
                }
                if depth == 0 {
                    // The first candidate: measure the switch first; this
                    // one and the rest at a later step.
                    probe = true;
                    end = i;
                    break;
                }
                match self.compact_one(inner, depth, &mut ranges) {
                    Some(from) => {
                        marks[i] = (0, 0);
                        lowered.push((p, from));
                    }
                    // Not for this wait: never looked at again until the
                    // greenlet waits anew, and no reason to keep an idle
                    // hub awake for it.
                    None => marks[i] = refused(key),
                }
                if ranges.len() == most {
                    end = i + 1; // the rest at the next step
                    break;
                }
            }
            if !ranges.is_empty() && stack::release_ranges(&ranges, &mut c.iov.borrow_mut()).is_ok()
            {
                // Released: everything below the saved frames is zero, so
                // the scrub after each greenlet finishes starts there.
                // (Refused, which it should not be on our own mappings,
                // the memory and its old data stay, and so does the scrub.)
                for &(p, from) in lowered.iter() {
                    // SAFETY: (listed) as above; still in the borrow of
                    // `live`, and nothing ran since.
                    unsafe { (*p).low_water.set(from) };
                }
            }
            if end >= live.len() {
                marks.truncate(live.len());
                if marks.capacity() > 2 * marks.len() + 1024 {
                    marks.shrink_to_fit();
                }
            }
            (end, live.len())
        };
        if probe && !c.probing.replace(true) {
            spawn_probe();
        }
        if end >= len {
            // Swept: the next sweep starts a period after this one did.
            c.cursor.set(0);
            c.swept_at.set(self.switches.get());
            let started = c.sweep_started.get().unwrap_or(now);
            c.next_at.set(Some((started + after).max(now + STEP_GAP)));
        } else {
            c.cursor.set(end);
            c.next_at.set(Some(now + STEP_GAP));
        }
    }

    /// When an idle hub must wake up for the sweep's next step, if it must:
    /// while a sweep is under way, while the last one saw greenlets that may
    /// yet be compacted, and when greenlets ran since it ended (they may
    /// have parked). Otherwise nothing is left to compact, and an idle hub
    /// sleeps on until something happens.
    pub(super) fn compact_deadline(&self) -> Option<Instant> {
        let c = &self.compact;
        c.after.get()?;
        if c.cursor.get() != 0 || c.seen.get() || c.swept_at.get() != self.switches.get() {
            return Some(c.next_at.get().unwrap_or_else(Instant::now));
        }
        None
    }

    /// Compacts `inner` (idle enough): saves its live frames and queues its
    /// stack for release. Returns where the saved frames start, or `None`
    /// if it cannot be compacted in this wait (see the checks).
    fn compact_one(
        &self,
        inner: &Inner,
        depth: usize,
        ranges: &mut Vec<(usize, usize)>,
    ) -> Option<usize> {
        // SAFETY: the fault record is written only while its greenlet does
        // not run, and this one is parked.
        let (lo, usable) = unsafe { ((*inner.fault_ptr()).guard_hi, (*inner.fault_ptr()).usable) };
        let top = lo + usable;
        // The switch's stack pointer: the address just below the park
        // address (a local of the same frame) with the noted low bits. A
        // gap of a page or more means the switch was not in that frame
        // after all (not inlined as `park_compactable` needs): leave it.
        let mark = inner.park_sp.get();
        let gap = (mark as u32).wrapping_sub(inner.site_sp.get()) as usize;
        if gap >= 4096 {
            return None;
        }
        let sp = mark - gap;
        let from = sp.checked_sub(depth)? & !15;
        if sp >= top || from < lo {
            return None;
        }
        // SAFETY: (one runner) the greenlet is parked, so the root loop is
        // not resuming it and nothing else borrows its slot.
        let slot = unsafe { &mut *inner.co.get() };
        if !matches!(slot, CoSlot::Live(_)) {
            return None;
        }
        let CoSlot::Live(co) = slot.take() else {
            unreachable!("just matched")
        };
        // SAFETY: [from, top) lies in the parked greenlet's stack (checked
        // above), mapped while its coroutine lives, and nothing runs on it.
        let live = unsafe { std::slice::from_raw_parts(from as *const u8, top - from) };
        let saved = Saved {
            bytes: live.into(),
            top,
        };
        let used = top - inner.low_water.get().clamp(lo, from);
        *slot = CoSlot::Compacted(Box::new(Parked { saved, co, used }));
        ranges.push((lo, top));
        self.compact.count.set(self.compact.count.get() + 1);
        self.compact
            .bytes
            .set(self.compact.bytes.get() + (top - from));
        Some(from)
    }

    /// Sets the period (see `Compactor::set_period`).
    pub(super) fn compact_set_period(&self, after: Option<Duration>) {
        self.compact.set_period(after);
    }

    /// For a compacted greenlet, how deep its stack had been at a switch
    /// (see `Parked::used`); `None` for any other.
    pub(super) fn compacted_depth(inner: &Inner) -> Option<usize> {
        // SAFETY: (one runner) called for a greenlet that is not running,
        // on its hub's thread; this only reads its slot.
        match unsafe { &*inner.co.get() } {
            CoSlot::Compacted(p) => Some(p.used),
            _ => None,
        }
    }

    /// Greenlets compacted now, and the bytes their saved frames take.
    pub(super) fn compacted(&self) -> (usize, usize) {
        (self.compact.count.get(), self.compact.bytes.get())
    }
}

/// The mark of a wait that `compact_one` turned down (see
/// `Compactor::marks`): a wait sequence number never reaches this.
fn refused((id, seq): (u64, u64)) -> (u64, u64) {
    (id, !seq)
}

/// Whether `inner` may be compacted once idle long enough: a started
/// child with its stack in place, parked in a sleep or an IO wait and not
/// woken, outside foreign code.
fn may_compact(inner: &Inner) -> bool {
    inner.kind == Kind::Child
        && inner.state.get() == State::Suspended
        && inner.has_run()
        && !inner.woken.get()
        && !inner.quiet.get()
        && !inner.dying.get()
        && inner.site_sp.get() != 0
        && matches!(inner.waiting.get(), Waiting::Sleep | Waiting::Io { .. })
        // SAFETY: (one runner) the greenlet is parked, so nothing else
        // borrows its slot; this only reads which variant it holds.
        && matches!(unsafe { &*inner.co.get() }, CoSlot::Live(_))
}

/// Starts the probe greenlet (see the module docs).
fn spawn_probe() {
    let spawned = super::spawn_task(
        None,
        Some("verdant-compaction-probe".into()),
        None,
        std::panic::Location::caller(),
        || {
            probe();
            crate::value::Value::empty()
        },
    );
    if spawned.is_err() {
        // No stack for it: try again at a later sweep.
        let _ = super::try_rt(|rt| rt.compact.probing.set(false));
    }
}

/// Clears `probing` however the probe ends (it may be killed).
struct ProbeDone;

impl Drop for ProbeDone {
    fn drop(&mut self) {
        let _ = super::try_rt(|rt| rt.compact.probing.set(false));
    }
}

/// The probe's body: three rounds of fill, wait, scan; the smallest depth
/// found is kept (each is an upper bound).
#[inline(never)]
fn probe() {
    let _done = ProbeDone;
    let rt = super::rt();
    let mut best = UNUSABLE;
    for _ in 0..3 {
        if let Some(d) = probe_once(rt) {
            best = best.min(d);
        }
    }
    let depth = if best == UNUSABLE {
        UNUSABLE
    } else {
        (best + PROBE_PAD + 15) & !15
    };
    let _ = DEPTH.compare_exchange(0, depth, Ordering::Relaxed, Ordering::Relaxed);
}

/// One round: how far below its stack pointer one hub wait's switch
/// wrote, or `None` if the wait did not happen or wrote past the fill.
fn probe_once(rt: &Runtime) -> Option<usize> {
    // The wait's bookkeeping first (it may allocate, and its calls would
    // write deep), then the switch, which fills and reads back.
    let token = rt.begin_wait(Waiting::Sleep).ok()?;
    rt.wake_live(token);
    let (woke, depth) = rt.park_probe();
    woke.ok()?;
    depth.filter(|&d| d > 0 && d < PROBE_SPAN)
}

/// Fills the [`PROBE_SPAN`] bytes below the stack pointer with
/// [`PATTERN`] and returns the (word-aligned) stack pointer. One `asm!`
/// block, inlined: the fill itself pushes nothing and calls nothing (a
/// call, as `ptr::write_volatile` is in a debug build, would put its frame
/// in the range it fills).
#[inline(always)]
pub(super) fn fill_below_sp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let hi: usize;
        // The range lies in this greenlet's stack: its usable part is at
        // least `MIN_STACK_SIZE`, 16 KiB, and the probe is shallow. The
        // caller calls other functions, so it keeps nothing in the red
        // zone below its stack pointer; the direction flag is clear (the
        // ABI's rule at every call and asm block).
        // SAFETY: writes only [sp - PROBE_SPAN, sp), below the caller's
        // frame, where no live data is (above).
        unsafe {
            std::arch::asm!(
                "mov rdi, rsp",
                "and rdi, -8",
                "mov {hi}, rdi",
                "sub rdi, {span}",
                "mov rcx, {words}",
                "rep stosq",
                hi = out(reg) hi,
                span = const PROBE_SPAN,
                words = const PROBE_SPAN / 8,
                out("rdi") _,
                out("rcx") _,
                in("rax") PATTERN,
                options(nostack),
            );
        }
        hi
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        unreachable!("compaction is off on this architecture (`supported`)")
    }
}

/// The lowest word of the [`PROBE_SPAN`] bytes below `hi` (a value of
/// [`fill_below_sp`]) that no longer holds [`PATTERN`], if any. One `asm!`
/// block (no call, so no frame of its own in the range it reads).
#[inline(always)]
pub(super) fn first_changed(hi: usize) -> Option<usize> {
    let lo = hi - PROBE_SPAN;
    #[cfg(target_arch = "x86_64")]
    {
        let end: usize;
        let differs: u8;
        // SAFETY: reads [lo, hi), the range `fill_below_sp` filled, in
        // this greenlet's mapped stack; writes no memory.
        unsafe {
            std::arch::asm!(
                "repe scasq",
                "setne {differs}",
                differs = out(reg_byte) differs,
                inout("rdi") lo => end,
                inout("rcx") PROBE_SPAN / 8 => _,
                in("rax") PATTERN,
                options(nostack, readonly),
            );
        }
        (differs != 0).then(|| end - 8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = lo;
        unreachable!("compaction is off on this architecture (`supported`)")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::{DEPTH, PROBE_PAD, UNUSABLE};

    /// The probe runs before the first compaction and finds the switch's
    /// depth: more than the registers corosensei saves (three words), and
    /// far less than a page (a debug build's frames included).
    #[test]
    fn the_probe_measures_the_switch() {
        let hub = crate::Hub::current();
        // SAFETY: no greenlet here lends its stack to another thread.
        unsafe { hub.set_idle_compaction(Some(Duration::from_millis(2))) };
        if !super::supported() {
            assert_eq!(hub.idle_compaction(), None, "off where it cannot work");
            return;
        }
        let h = crate::spawn(|| crate::sleep(Duration::from_millis(300)));
        let t = Instant::now();
        while hub.stack_stats().compacted == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nothing was compacted"
            );
            crate::sleep(Duration::from_millis(1));
        }
        let d = DEPTH.load(Ordering::Relaxed);
        assert_ne!(d, UNUSABLE);
        assert!((PROBE_PAD + 24..2048).contains(&d), "depth {d}");
        assert_eq!(d % 16, 0);
        h.join().unwrap();
        // SAFETY: turning it off is always sound.
        unsafe { hub.set_idle_compaction(None) };
    }
}
