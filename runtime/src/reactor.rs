//! The reactor's state, below the hub: the slab of registered fds with the
//! readiness each has reported, and the mio poll that the hub blocks in.
//!
//! * **Tokens carry a generation.** Each registration owns a slot of the
//!   [`Slab`] and its mio token is `generation << 32 | slot`. When a
//!   registration is released its slot's generation moves on, so an event
//!   still in flight for an fd number that has been closed and reused is
//!   recognised as stale and dropped (tokio's `GENERATION`, Go's
//!   `pollDesc.seq`).
//! * **Readiness is remembered.** mio is edge-triggered: an event arrives
//!   once, when the fd *becomes* ready. A slot keeps a readable and a
//!   writable bit, set by events and cleared by the socket layer when an
//!   operation shows the fd is no longer ready; both start set.
//! * **Waiters are the hub's.** A slot holds at most one waiter per
//!   direction, of a type the hub chooses (`W`); applying an event hands
//!   back the waiters it concerns, for the hub to wake outside the slab's
//!   borrow. Besides those, a slot keeps a list of *watchers*, any number
//!   per direction, each woken by the next event for its directions: the
//!   patched libc calls wait that way (several greenlets may `poll` one
//!   fd, and one `poll` watches many fds).
//!
//! The public face of all this is [`Registration`](crate::io::Registration).

use std::io;
use std::time::Duration;

/// Which way an operation moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Reading, accepting: waits for readable.
    Read,
    /// Writing, connecting: waits for writable.
    Write,
}

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;

impl Direction {
    /// Its bit in a set of directions (a watcher's).
    pub(crate) fn bit(self) -> u8 {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// The token of the hub's cross-thread waker. Registration tokens never
/// reach it: their slot index is below `u32::MAX`.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// One registered fd: its readiness and its waiters.
pub(crate) struct Slot<W> {
    generation: u32,
    in_use: bool,
    closed: bool,
    ready: u8,
    /// The fd reported TCP urgent data (`EPOLLPRI`): a short read no
    /// longer proves it drained (see [`Slot::short_transfer`]).
    urgent: bool,
    /// Directions that reported a hang-up or an error. Final states: the
    /// event that told of them will not come again, so a short read or
    /// write must not clear their readiness (the next read returns the
    /// EOF, the next write the error).
    hung_up: u8,
    reader: Option<W>,
    writer: Option<W>,
    /// Watchers: each wakes on the next event for its directions (the
    /// bits), or on close. Empty unless patched calls wait on the fd.
    watchers: Vec<(u8, W)>,
}

impl<W> Default for Slot<W> {
    fn default() -> Self {
        Slot {
            generation: 0,
            in_use: false,
            closed: false,
            ready: 0,
            urgent: false,
            hung_up: 0,
            reader: None,
            writer: None,
            watchers: Vec::new(),
        }
    }
}

impl<W: Clone> Slot<W> {
    /// The waiter slot for `dir`.
    pub(crate) fn waiter(&mut self, dir: Direction) -> &mut Option<W> {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }

    /// Whether the fd is believed ready for `dir`.
    pub(crate) fn is_ready(&self, dir: Direction) -> bool {
        self.ready & dir.bit() != 0
    }

    /// Takes `dir` to be ready again without an event (a caller that
    /// looks again on a timer: its next try finds out).
    pub(crate) fn set_ready(&mut self, dir: Direction) {
        self.ready |= dir.bit();
    }

    /// Forgets readiness for `dir` (an operation returned `WouldBlock`).
    pub(crate) fn clear_ready(&mut self, dir: Direction) {
        self.ready &= !dir.bit();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Marks the slot closed (every direction counts as ready, so that a
    /// retried operation sees the close); returns its waiters, to wake
    /// (its watchers too, which it forgets).
    pub(crate) fn close(&mut self) -> ([Option<W>; 2], Vec<W>) {
        self.closed = true;
        self.ready = READABLE | WRITABLE;
        let watchers = self.watchers.drain(..).map(|(_, w)| w).collect();
        ([self.reader.clone(), self.writer.clone()], watchers)
    }

    /// Adds a watcher for the directions `dirs` (a set of
    /// [`Direction::bit`]s), first removing the watchers for which
    /// `pending` is false (woken or ended waits); returns those, for the
    /// caller to drop outside the slab's borrow.
    pub(crate) fn watch(&mut self, dirs: u8, w: W, pending: impl Fn(&W) -> bool) -> Vec<W> {
        let mut stale = Vec::new();
        if self.watchers.iter().any(|(_, w)| !pending(w)) {
            let (keep, gone) = std::mem::take(&mut self.watchers)
                .into_iter()
                .partition(|(_, w)| pending(w));
            self.watchers = keep;
            stale = gone.into_iter().map(|(_, w)| w).collect();
        }
        self.watchers.push((dirs, w));
        stale
    }

    /// A byte-stream operation moved fewer bytes than asked (but some): the
    /// fd is drained (or full) for `dir`, unless a hang-up or error already
    /// reported is final there, or a read stopped at TCP urgent data.
    pub(crate) fn short_transfer(&mut self, dir: Direction) {
        let final_state = self.hung_up & dir.bit() != 0;
        let at_urgent_mark = dir == Direction::Read && self.urgent;
        if !final_state && !at_urgent_mark {
            self.ready &= !dir.bit();
        }
    }
}

/// The slab of registrations, kept by each hub.
pub(crate) struct Slab<W> {
    slots: Vec<Slot<W>>,
    free: Vec<u32>,
    live: usize,
}

impl<W> Default for Slab<W> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

/// The mio token of slot `slot` in generation `generation`.
pub(crate) fn token_of(slot: u32, generation: u32) -> mio::Token {
    mio::Token(((generation as usize) << 32) | slot as usize)
}

impl<W: Clone> Slab<W> {
    /// Takes a free slot (ready both ways, no waiters); returns its index
    /// and generation.
    pub(crate) fn alloc(&mut self) -> (u32, u32) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[idx as usize];
        s.in_use = true;
        s.closed = false;
        s.urgent = false;
        s.hung_up = 0;
        s.ready = READABLE | WRITABLE;
        self.live += 1;
        (idx, s.generation)
    }

    /// The slot at `idx` if it is still the registration of `generation`.
    pub(crate) fn get(&mut self, idx: u32, generation: u32) -> Option<&mut Slot<W>> {
        self.slots
            .get_mut(idx as usize)
            .filter(|s| s.in_use && s.generation == generation)
    }

    /// Frees a slot: its generation moves on, so late events for it are
    /// dropped. Returns its waiters and watchers, to be woken or dropped by
    /// the caller outside the slab's borrow.
    pub(crate) fn release(&mut self, idx: u32) -> ([Option<W>; 2], Vec<W>) {
        let s = &mut self.slots[idx as usize];
        s.in_use = false;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(idx);
        self.live -= 1;
        let watchers = s.watchers.drain(..).map(|(_, w)| w).collect();
        ([s.reader.take(), s.writer.take()], watchers)
    }

    /// Applies one mio event: remembers the readiness it reports and
    /// returns the waiters it concerns, to wake; the watchers it concerns
    /// are moved to `woken` (a vector the caller reuses). An event for a
    /// freed slot or an older generation is dropped.
    pub(crate) fn apply(
        &mut self,
        event: &mio::event::Event,
        woken: &mut Vec<W>,
    ) -> [Option<W>; 2] {
        let token = event.token().0;
        let (idx, generation) = (token as u32, (token >> 32) as u32);
        let urgent = event.is_priority();
        let mut hung_up = 0;
        if event.is_read_closed() || event.is_error() {
            hung_up |= READABLE;
        }
        if event.is_write_closed() || event.is_error() {
            hung_up |= WRITABLE;
        }
        let mut bits = hung_up;
        if event.is_readable() || urgent {
            bits |= READABLE;
        }
        if event.is_writable() {
            bits |= WRITABLE;
        }
        let Some(slot) = self.get(idx, generation) else {
            // stale: the fd was closed (and maybe reused)
            return [None, None];
        };
        slot.ready |= bits;
        slot.urgent |= urgent;
        slot.hung_up |= hung_up;
        let r = (bits & READABLE != 0)
            .then(|| slot.reader.clone())
            .flatten();
        let w = (bits & WRITABLE != 0)
            .then(|| slot.writer.clone())
            .flatten();
        if !slot.watchers.is_empty() {
            slot.watchers.retain(|(dirs, w)| {
                let hit = dirs & bits != 0;
                if hit {
                    woken.push(w.clone());
                }
                !hit
            });
        }
        [r, w]
    }

    /// Takes every waiter (the hub's shutdown unwinds them).
    pub(crate) fn take_waiters(&mut self) -> Vec<W> {
        self.slots
            .iter_mut()
            .flat_map(|s| {
                let watchers = s.watchers.drain(..).map(|(_, w)| Some(w));
                [s.reader.take(), s.writer.take()]
                    .into_iter()
                    .chain(watchers.collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }

    /// Number of live registrations.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}

/// The hub's mio poll, made on first use: an fd-less hub never opens an
/// epoll instance.
#[derive(Default)]
pub(crate) struct Poller {
    poll: Option<(mio::Poll, mio::Events)>,
}

impl Poller {
    fn ensure(&mut self) -> io::Result<&mut (mio::Poll, mio::Events)> {
        if self.poll.is_none() {
            self.poll = Some((mio::Poll::new()?, mio::Events::with_capacity(1024)));
        }
        Ok(self.poll.as_mut().expect("just made"))
    }

    /// The registry to register fds with.
    ///
    /// # Errors
    ///
    /// When the epoll instance cannot be made (no descriptor left).
    pub(crate) fn registry(&mut self) -> io::Result<&mio::Registry> {
        Ok(self.ensure()?.0.registry())
    }

    /// Waits up to `timeout` (`None`: until an event) and hands each event
    /// to `f`, except the waker's (which only interrupts the wait). mio
    /// rounds the timeout up to whole milliseconds, so a timer is never
    /// fired early.
    ///
    /// # Errors
    ///
    /// When the epoll instance cannot be made (no descriptor left); then
    /// nothing waited. An interrupted wait (`EINTR`) is a spurious wake-up,
    /// not an error.
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mio::event::Event),
    ) -> io::Result<()> {
        let (poll, events) = self.ensure()?;
        if poll.poll(events, timeout).is_err() {
            return Ok(()); // EINTR: the caller looks at its timers again
        }
        for event in events.iter() {
            if event.token() != WAKER_TOKEN {
                f(event);
            }
        }
        Ok(())
    }
}
