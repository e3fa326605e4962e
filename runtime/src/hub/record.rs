//! The greenlet record behind every [`Greenlet`] handle: its coroutine and
//! stack bookkeeping, its place in the wait protocol, and how it ended
//! ([`Completion`]), with the links to notify then and its greenlet-local
//! values ([`Locals`]).
//!
//! Only the core writes a record's fields (they are private to `hub`);
//! the layers above read them through methods, and change them through the
//! core's functions.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr;
use std::rc::Weak;
use std::time::Instant;

use corosensei::{Coroutine, Yielder};

use super::info::Waiting;
use super::park::{Relay, WaitToken};
use crate::fault::FaultInfo;
use crate::greenlet::{Greenlet, GreenletExit};
use crate::stack::Stack;
use crate::value::{Exit, Payload, Value};

// Values do not travel through corosensei: the runtime's mailbox carries
// them (see `Runtime::post`), so every resume/suspend moves `()`, the
// cheapest path (4.2 ns per round trip here, against 9.5 ns for a 40-byte
// payload).
pub(super) type Co = Coroutine<(), (), (), Stack>;
pub(super) type Y = Yielder<(), ()>;

/// A greenlet's coroutine slot.
pub(super) enum CoSlot {
    /// None: dead (or main's and the hub's records, which have no coroutine).
    Empty,
    /// The coroutine, made (its first frame is on its stack).
    Live(Co),
    /// Unstarted, made when the pool had no resident stack: the stack
    /// reserved for it (address space only) and the function that makes
    /// the coroutine on the stack it is given, at its first run (see
    /// `switch::create`). Kept in the slot the coroutine will take, so a
    /// deferred start costs no record space, and no allocation at all when
    /// the function fits in [`MakeCo`].
    Deferred(Stack, MakeCo),
    /// Parked long in a sleep or for IO: the coroutine, whose stack's
    /// memory was given back, and its live frames, which go back onto the
    /// stack before it runs (see `compact`). Boxed: the slot stays as
    /// small as its other variants need.
    Compacted(Box<super::compact::Parked>),
}

/// The function of a deferred start (`FnOnce(Stack) -> Co`), stored in
/// place when it fits in [`MakeCo::INLINE`] bytes (a spawn closure that
/// captures a word or two: most do), else boxed.
///
/// Why not `Box<dyn FnOnce>`: a burst of spawns made one small allocation
/// per greenlet, freed at its first run. All alive at once, those holes
/// between the records stayed resident (32 bytes per parked greenlet), and
/// the allocator's periodic consolidation of 100,000 of them stalled the
/// hub for milliseconds at a time.
///
/// Invariant (make): `data` holds a live `F` (inline) or a `Box<F>`'s
/// pointer (boxed), for the `F` that `vtable` was made for, until `call`
/// or `drop` consumes it.
pub(super) struct MakeCo {
    data: MaybeUninit<[usize; MakeCo::WORDS]>,
    vtable: &'static MakeVtable,
}

struct MakeVtable {
    /// Moves the function out of `data` and calls it.
    call: unsafe fn(*mut u8, Stack) -> Co,
    /// Drops the function in `data` without calling it.
    drop: unsafe fn(*mut u8),
}

/// The vtables of a function type `F`, stored in place or boxed.
struct Vtables<F>(PhantomData<F>);

impl<F: FnOnce(Stack) -> Co + 'static> Vtables<F> {
    const INLINE: MakeVtable = MakeVtable {
        call: Self::call_inline,
        drop: Self::drop_inline,
    };
    const BOXED: MakeVtable = MakeVtable {
        call: Self::call_boxed,
        drop: Self::drop_boxed,
    };

    /// # Safety
    /// `data` holds a live `F`, which this consumes.
    unsafe fn call_inline(data: *mut u8, stack: Stack) -> Co {
        // SAFETY: the caller's contract.
        let f = unsafe { ptr::read(data.cast::<F>()) };
        f(stack)
    }

    /// # Safety
    /// `data` holds a live `F`, which this consumes.
    unsafe fn drop_inline(data: *mut u8) {
        // SAFETY: the caller's contract.
        unsafe { ptr::drop_in_place(data.cast::<F>()) }
    }

    /// # Safety
    /// `data` holds the pointer of a `Box<F>`, which this consumes.
    unsafe fn call_boxed(data: *mut u8, stack: Stack) -> Co {
        // SAFETY: the caller's contract.
        let f = unsafe { Box::from_raw(ptr::read(data.cast::<*mut F>())) };
        f(stack)
    }

    /// # Safety
    /// `data` holds the pointer of a `Box<F>`, which this consumes.
    unsafe fn drop_boxed(data: *mut u8) {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(ptr::read(data.cast::<*mut F>())) })
    }
}

impl MakeCo {
    const WORDS: usize = 2;
    /// The largest function stored in place, in bytes.
    pub(super) const INLINE: usize = Self::WORDS * std::mem::size_of::<usize>();

    pub(super) fn new<F: FnOnce(Stack) -> Co + 'static>(f: F) -> MakeCo {
        let mut data = MaybeUninit::<[usize; Self::WORDS]>::uninit();
        let fits = std::mem::size_of::<F>() <= Self::INLINE
            && std::mem::align_of::<F>() <= std::mem::align_of::<usize>();
        let vtable = if fits {
            // SAFETY: `data` is large and aligned enough for an `F` (just
            // checked), and uninitialised: the write moves `f` in.
            unsafe { data.as_mut_ptr().cast::<F>().write(f) };
            &Vtables::<F>::INLINE
        } else {
            // SAFETY: a pointer fits in a word of `data`.
            unsafe {
                data.as_mut_ptr()
                    .cast::<*mut F>()
                    .write(Box::into_raw(Box::new(f)))
            };
            &Vtables::<F>::BOXED
        };
        MakeCo { data, vtable }
    }

    /// Makes the coroutine on `stack`.
    pub(super) fn call(self, stack: Stack) -> Co {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: invariant (make); `this` is never dropped, so the
        // function, moved out here, is consumed once.
        unsafe { (this.vtable.call)(this.data.as_mut_ptr().cast(), stack) }
    }
}

impl Drop for MakeCo {
    fn drop(&mut self) {
        // SAFETY: invariant (make); `call` consumed `self` without dropping
        // it, so the function is still here.
        unsafe { (self.vtable.drop)(self.data.as_mut_ptr().cast()) }
    }
}

impl CoSlot {
    /// Takes the slot's content, leaving it empty.
    pub(super) fn take(&mut self) -> CoSlot {
        std::mem::replace(self, CoSlot::Empty)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Unstarted,
    Suspended,
    Running,
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Hub,
    Child,
}

/// The record behind a [`Greenlet`] handle.
pub(crate) struct Inner {
    pub(super) id: u64,
    pub(super) kind: Kind,
    /// A spawned task: its exit is kept for its `JoinHandle` (and a panic
    /// reported there), not switched to its parent, the hub.
    pub(super) task: bool,
    pub(super) state: Cell<State>,
    /// The coroutine (see [`CoSlot`]).
    pub(super) co: UnsafeCell<CoSlot>,
    /// Set when the coroutine starts; valid while it is alive.
    pub(super) yielder: Cell<*const Y>,
    /// Lowest stack address seen at a switch: how much of the stack to scrub.
    pub(super) low_water: Cell<usize>,
    /// `Cell`s rather than `RefCell`s here and in [`Completion`]: a borrow
    /// flag is 8 bytes a field, and no code holds these across a call out.
    parent: Cell<Option<Greenlet>>,
    /// Boxed: most greenlets keep their default name.
    name: Cell<Option<Box<Cow<'static, str>>>>,
    /// Read by the overflow handler; written only while not running.
    pub(super) fault: UnsafeCell<FaultInfo>,
    /// Hub waits: the sequence number of the current wait (the protocol
    /// is in the module docs of `hub`).
    pub(super) wait_seq: Cell<u64>,
    /// The stack pointer (within a few bytes) at the last switch out (in
    /// `note_park`, so a few frames above the switch itself); 0 until the first. See [`Inner::prefetch_if_cold`].
    pub(super) park_sp: Cell<usize>,
    /// The hub's count of ready-queue pops at the last switch out (its low
    /// 32 bits: only ages below [`COLD_AFTER`] matter).
    parked_at: Cell<u32>,
    /// The low 32 bits of the stack pointer register where its current
    /// wait parks, if that wait may be compacted (a sleep, an IO wait:
    /// `Runtime::park_compactable`); 0 otherwise. The full address is the
    /// one below `park_sp` (in the same frame) with these low bits.
    pub(super) site_sp: Cell<u32>,
    /// Hub waits: the current wait was already woken (or has ended).
    pub(super) woken: Cell<bool>,
    /// A kill was delivered: every later hub wait raises it again.
    pub(super) killed: Cell<bool>,
    /// Being unwound by the drop of its last handle: it may not switch.
    pub(super) dying: Cell<bool>,
    /// A payload the hub will throw in (see `Runtime::throw_later`).
    pub(super) pending_throw: Cell<Option<Payload>>,
    /// The outermost `with_timeout` scope of this greenlet that expired and
    /// has not ended yet (0: none): every later hub wait raises it again.
    pub(super) timeout_fired: Cell<u64>,
    /// Inside a call that foreign code made (a patched libc function, see
    /// `patch`): a frame that no unwind may cross is on this greenlet's
    /// stack, so its waits are *quiet*: a kill or an expired scope makes
    /// them return `Refused` instead of raising (both stay recorded, in
    /// `killed` and `timeout_fired`, and are raised at the next wait that
    /// is not quiet).
    pub(super) quiet: Cell<bool>,
    /// The expired scope whose signal a quiet wait absorbed instead of
    /// raising (0: none): that scope's `with_timeout` reports `Elapsed`
    /// even if its closure returns.
    pub(super) absorbed_scope: Cell<u64>,
    pub(super) locals: Locals,
    pub(super) completion: Completion,
    /// What its current (or last) hub wait is for, set by `begin_wait` and
    /// cleared when the wait ends: for `Hub::run_info` and `LoopExit`.
    pub(super) waiting: Cell<Waiting>,
    /// When its current hub wait times out, if it does.
    pub(super) deadline: Cell<Option<Instant>>,
    /// Where it was spawned (`#[track_caller]` through every spawning API).
    pub(super) site: &'static Location<'static>,
    /// The thread that made it (`sys::thread_token`), checked at every
    /// resume in a debug build (THR-5, see `Inner::assert_owner`).
    #[cfg(debug_assertions)]
    owner: usize,
    /// About when it was made: the hub's last check of timers before that
    /// (`Runtime::last_check`), which costs no clock read at spawn.
    pub(super) born: Instant,
    /// Its index in the runtime's list of live greenlets; `NOT_LISTED` when
    /// it is not there (main, the hub, a dead greenlet).
    pub(super) listed_at: Cell<u32>,
}

// A parked greenlet's memory is its stack's top page and this record (in
// an `Rc`, 16 bytes more, in a block the allocator rounds up to 16 with 8
// of its own): 360 bytes make a 384-byte block; 376 would make 400, 392
// 416. Grow it knowingly (`park_many` prints the figure per greenlet,
// `stack_pool::a_parked_greenlet_holds_at_most_4_5_kib` asserts it). A
// debug build adds the owner's thread.
#[cfg(not(debug_assertions))]
const _: () = assert!(std::mem::size_of::<Inner>() <= 360);

/// [`Inner::listed_at`] of a record not in the live list.
pub(super) const NOT_LISTED: u32 = u32::MAX;

impl Drop for Inner {
    fn drop(&mut self) {
        // A record dies before its last handle goes, so this is rare: a
        // record made but never run or unwound (the thread's teardown).
        if self.listed_at.get() != NOT_LISTED {
            let _ = super::try_rt(|rt| rt.unlist(self));
        }
    }
}

impl Inner {
    /// A record; `born` is when it was made (see [`Inner::born`]).
    pub(super) fn new(
        id: u64,
        kind: Kind,
        state: State,
        parent: Option<Greenlet>,
        born: Instant,
    ) -> Inner {
        Inner {
            id,
            kind,
            task: false,
            state: Cell::new(state),
            co: UnsafeCell::new(CoSlot::Empty),
            yielder: Cell::new(ptr::null()),
            low_water: Cell::new(usize::MAX),
            parent: Cell::new(parent),
            name: Cell::new(None),
            fault: UnsafeCell::new(FaultInfo::new(id)),
            wait_seq: Cell::new(0),
            park_sp: Cell::new(0),
            parked_at: Cell::new(0),
            site_sp: Cell::new(0),
            woken: Cell::new(false),
            killed: Cell::new(false),
            dying: Cell::new(false),
            pending_throw: Cell::new(None),
            timeout_fired: Cell::new(0),
            quiet: Cell::new(false),
            absorbed_scope: Cell::new(0),
            locals: Locals::default(),
            completion: Completion::default(),
            waiting: Cell::new(Waiting::Nothing),
            deadline: Cell::new(None),
            site: Location::caller(),
            #[cfg(debug_assertions)]
            owner: crate::sys::thread_token(),
            born,
            listed_at: Cell::new(NOT_LISTED),
        }
    }

    /// Ends the process if this greenlet was made on another thread (a
    /// debug build's check before every resume). Its handles are `!Send`,
    /// so only an `unsafe` transfer gets one across; resuming it here would
    /// run its frames against another thread's hub. Checked before anything
    /// of it is touched, and fatal: unwinding out of the root loop would
    /// leave both hubs inconsistent.
    #[cfg(debug_assertions)]
    pub(super) fn assert_owner(&self) {
        if self.owner != crate::sys::thread_token() {
            eprintln!(
                "verdant: greenlet '{}' (id {}) was made on another thread and cannot run on this \
                 one: greenlet handles are not Send (something moved one across with unsafe code)",
                self.display_name(),
                self.id
            );
            std::process::abort();
        }
    }

    /// A number unique among the greenlets of its thread.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn state(&self) -> State {
        self.state.get()
    }

    /// How it ended, the value it left for its `JoinHandle`, its links.
    pub(crate) fn completion(&self) -> &Completion {
        &self.completion
    }

    /// Whether its function ever started (its stack holds frames).
    pub(crate) fn has_run(&self) -> bool {
        !self.yielder.get().is_null()
    }

    pub(crate) fn fault_ptr(&self) -> *const FaultInfo {
        self.fault.get()
    }

    /// Usable size of its own stack; `None` for the main greenlet and the
    /// hub, which run on the thread's stack.
    pub(crate) fn stack_size(&self) -> Option<usize> {
        // SAFETY: `usable` is written once, by `create`, before the record
        // is shared; later writes to the fault record (the name) touch
        // other fields, and only on this thread.
        let usable = unsafe { (*self.fault.get()).usable };
        (self.kind == Kind::Child).then_some(usable)
    }

    pub(crate) fn display_name(&self) -> Cow<'static, str> {
        let name = self.name.take();
        let shown = match &name {
            Some(n) => Cow::clone(n),
            None => match self.kind {
                Kind::Main => Cow::Borrowed("main"),
                Kind::Hub => Cow::Borrowed("Hub"),
                Kind::Child => Cow::Owned(format!("Greenlet-{}", self.id)),
            },
        };
        self.name.set(name);
        shown
    }

    /// Names the greenlet, for panic reports and the overflow message.
    pub(crate) fn set_name(&self, name: Cow<'static, str>) {
        // SAFETY: the fault record is only read by the signal handler of this
        // thread, which interrupts nothing that writes it except this store;
        // a torn name in a crash report is harmless.
        unsafe { (*self.fault.get()).set_name(&name) };
        let old = self.name.replace(Some(Box::new(name)));
        drop(old);
    }

    pub(crate) fn parent(&self) -> Option<Greenlet> {
        let parent = self.parent.take();
        let copy = parent.clone();
        self.parent.set(parent);
        copy
    }

    /// Replaces the parent (the caller has checked for cycles).
    pub(crate) fn replace_parent(&self, parent: Greenlet) {
        let old = self.parent.replace(Some(parent));
        drop(old); // after the store: it may be the last handle
    }

    /// Records where the stack is now and when (`now`: the hub's count of
    /// ready-queue pops); called at every switch out. Keeps how deep the
    /// stack has been, for the scrub.
    #[inline(always)]
    pub(super) fn note_park(&self, now: u64) {
        let sp = crate::sys::stack_pointer();
        self.park_sp.set(sp);
        self.parked_at.set(now as u32);
        if sp < self.low_water.get() {
            self.low_water.set(sp);
        }
    }

    /// Asks the CPU to start loading the stack lines this greenlet touches
    /// first when it resumes (the registers its switch saved, the frame that
    /// parked), when at least [`COLD_AFTER`] other turns have run since it
    /// parked (`now` as in [`note_park`](Inner::note_park)). The hub calls
    /// it for the greenlet whose turn comes next, while the current one runs.
    ///
    /// Why: with many connections a parked greenlet's stack has left the
    /// caches and the TLB by its next turn, and resuming it stalled on that
    /// miss: about 0.3–0.4 µs per request at 1,000 echo connections
    /// (`perf` samples on the first instruction after the switch back in).
    /// Issued a turn ahead, the miss overlaps the current turn's work.
    /// Prefetching every woken greenlet when its IO event arrives was slower
    /// instead: with a long batch the lines are evicted again before their
    /// turn. A greenlet that parked a few turns ago is still in cache, and
    /// the prefetch would only cost time (about 4 ns per switch when two
    /// greenlets take turns); hence the age test.
    #[inline(always)]
    pub(super) fn prefetch_if_cold(&self, now: u64) {
        if (now as u32).wrapping_sub(self.parked_at.get()) < COLD_AFTER {
            return;
        }
        let sp = self.park_sp.get();
        if sp == 0 {
            return; // never ran: no frames to load
        }
        let mut line = sp.saturating_sub(PREFETCH_BELOW) & !63;
        let end = sp.saturating_add(PREFETCH_ABOVE);
        while line < end {
            prefetch(line);
            line += 64;
        }
    }
}

/// How many ready-queue pops after a greenlet parked its stack counts as
/// cold (see [`Inner::prefetch_if_cold`]). Chosen, not tuned: greenlets
/// taking turns in twos or threes stay below it, and a hub serving 100 or
/// more connections resumes each one well above it.
const COLD_AFTER: u32 = 32;

/// Bytes below the park address that [`Inner::prefetch_if_cold`] loads: the
/// switch's saved registers and return address.
const PREFETCH_BELOW: usize = 192;

/// Bytes above the park address that [`Inner::prefetch_if_cold`] loads: the
/// rest of the parking frame. More (up to 4 KiB) measured the same.
const PREFETCH_ABOVE: usize = 128;

/// A hint to load the cache line at `addr`; a no-op where Rust has no
/// stable prefetch instruction.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults (whatever the
    // address, mapped or not), never writes, and SSE, which it needs, is
    // part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ptr::without_provenance(addr));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// How a greenlet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Outcome {
    #[default]
    Pending,
    Success,
    Killed,
    Panicked,
}

/// A panic's message and payload, kept for the `JoinHandle`.
struct PanicRecord {
    message: Option<String>,
    payload: Option<Payload>,
}

/// Something to notify when a greenlet dies.
pub(super) enum Link {
    /// Wake a joiner.
    Wake(WaitToken),
    /// Report to an `iwait` (gone if the iwait was dropped).
    Relay(Weak<Relay>, usize),
    /// Dropped when it ends: what must go whether or not its stack unwinds
    /// (a group membership, in a `panic = "abort"` build).
    Drop(Box<dyn std::any::Any>),
}

/// How a greenlet ended, recorded once by the core when it does (see
/// `Runtime::complete`), and who to tell.
#[derive(Default)]
pub(crate) struct Completion {
    outcome: Cell<Outcome>,
    /// The message and payload of a panic; boxed, as most greenlets never
    /// panic (this keeps an idle greenlet small).
    panic: Cell<Option<Box<PanicRecord>>>,
    /// A task's return value, until its `JoinHandle` takes it. A `Value`
    /// rather than a typed slot of its own: small results (integers, `()`)
    /// need no allocation at all.
    result: Cell<Option<Value>>,
    links: Cell<Vec<Link>>,
}

impl Completion {
    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    /// Takes a task's return value (once).
    pub(crate) fn take_result(&self) -> Option<Value> {
        self.result.take()
    }

    /// The panic message, if it panicked with a string.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let record = self.panic.take();
        let message = record.as_ref().and_then(|r| r.message.clone());
        self.panic.set(record);
        message
    }

    /// Takes the panic payload (once; the message stays).
    pub(crate) fn take_panic_payload(&self) -> Option<Payload> {
        let mut record = self.panic.take();
        let payload = record.as_mut().and_then(|r| r.payload.take());
        self.panic.set(record);
        payload
    }

    /// Records how the greenlet ended, unless it already was: `exit` is
    /// its function's result (`Err`: an uncaught panic or kill). A task
    /// keeps its value and its panic's payload here; for any other
    /// greenlet they go on to its parent, so only the panic's message is
    /// kept. Returns what the parent receives.
    pub(super) fn record(&self, exit: Exit, task: bool) -> Value {
        let (outcome, to_parent) = match exit {
            Ok(v) if task => {
                self.result.set(Some(v));
                (Outcome::Success, Value::empty())
            }
            Ok(v) => (Outcome::Success, v),
            Err(p) if p.is::<GreenletExit>() => (Outcome::Killed, Value::new(GreenletExit)),
            Err(p) => {
                let message = panic_message(&*p);
                let (payload, to_parent) = if task {
                    (Some(p), Value::empty())
                } else {
                    (None, Value::thrown(p))
                };
                self.panic
                    .set(Some(Box::new(PanicRecord { message, payload })));
                (Outcome::Panicked, to_parent)
            }
        };
        self.mark(outcome);
        to_parent
    }

    /// Records `outcome` unless an outcome was recorded already.
    pub(super) fn mark(&self, outcome: Outcome) {
        if self.outcome.get() == Outcome::Pending {
            self.outcome.set(outcome);
        }
    }

    /// Runs `f` on the links (which must not reach this greenlet's links
    /// again: they are out of their cell meanwhile).
    pub(super) fn with_links<R>(&self, f: impl FnOnce(&mut Vec<Link>) -> R) -> R {
        let mut links = self.links.take();
        let r = f(&mut links);
        self.links.set(links);
        r
    }

    /// Takes every link.
    pub(super) fn take_links(&self) -> Vec<Link> {
        self.links.take()
    }

    #[cfg(test)]
    pub(crate) fn links_len(&self) -> usize {
        self.with_links(|l| l.len())
    }
}

/// The message of a panic payload that is a string.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> Option<String> {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        Some((*s).to_owned())
    } else {
        p.downcast_ref::<String>().cloned()
    }
}

/// One greenlet's local values: (key address, value) pairs, few of them.
pub(crate) type LocalSet = Vec<(usize, Box<dyn Any>)>;

/// A greenlet's local values (`greenlet_local!`), boxed so an empty set
/// costs one word.
#[derive(Default)]
pub(crate) struct Locals(Cell<Option<Box<LocalSet>>>);

impl Locals {
    pub(super) fn take(&self) -> Option<Box<LocalSet>> {
        self.0.take()
    }

    pub(super) fn put(&self, set: Box<LocalSet>) {
        let old = self.0.replace(Some(set));
        debug_assert!(old.is_none(), "a greenlet's locals were lent out twice");
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// What `Inner::prefetch_if_cold` relies on: a parked greenlet's park
    /// address lies in its own stack, and its park time is the hub's count
    /// of pops then.
    #[test]
    fn a_parked_greenlet_records_where_its_stack_is() {
        let h = crate::spawn(|| crate::sleep(Duration::from_secs(60)));
        crate::sleep(Duration::ZERO); // it starts, and parks in its sleep
        let inner = &h.greenlet().inner;
        // SAFETY: the fault record is written only while its greenlet does
        // not run, and this one is parked.
        let (lo, usable) = unsafe { ((*inner.fault_ptr()).guard_hi, (*inner.fault_ptr()).usable) };
        let sp = inner.park_sp.get();
        assert!(
            sp >= lo && sp < lo + usable,
            "park address {sp:#x} outside the stack {lo:#x}..{:#x}",
            lo + usable
        );
        let at = u64::from(inner.parked_at.get());
        let now = crate::hub::rt().pops();
        assert!(at >= 1 && at <= now, "parked at pop {at}, now {now}");
        for _ in 0..3 {
            crate::sleep(Duration::ZERO);
        }
        assert_eq!(u64::from(inner.parked_at.get()), at, "it did not run again");
        assert!(crate::hub::rt().pops() > now);
        h.kill();
    }
}
