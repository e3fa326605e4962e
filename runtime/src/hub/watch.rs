//! What the core shows the blocking monitor (`crate::monitor`): a heartbeat
//! that a watched hub publishes at every switch, and a snapshot of the
//! running greenlet that a signal handler can take.

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::record::Kind;
use super::{rt, Runtime};

/// A watched hub's heartbeat. Only its own thread writes `turns` and
/// `idle`; the monitor thread reads them.
#[derive(Debug)]
pub(crate) struct Beat {
    /// Bumped at every switch and after every poll: a value that stays put
    /// while the hub is not idle means one greenlet (or the hub's own code)
    /// has held the thread since.
    pub(crate) turns: AtomicU64,
    /// Set while the hub blocks in its poll: idle, not stuck.
    pub(crate) idle: AtomicBool,
    /// Whether the hub's thread still runs: cleared (under the lock) as its
    /// runtime is destroyed, so a monitor that signals the thread while
    /// holding the lock never signals a thread that has exited.
    pub(crate) alive: Mutex<bool>,
}

/// The root loop's hook bits (`Runtime::hooks`).
pub(super) const HOOK_TRACE: u8 = 1;
pub(super) const HOOK_BEAT: u8 = 2;

impl Runtime {
    /// Called by the root loop before `target` runs when a hook is on.
    #[inline]
    pub(super) fn on_switch(&self, target: &super::record::Inner) {
        let hooks = self.hooks.get();
        if hooks & HOOK_BEAT != 0 {
            self.beat_now();
        }
        if hooks & HOOK_TRACE != 0 {
            self.trace_switch(target);
        }
    }

    /// Publishes a heartbeat, if a monitor watches this hub: one plain
    /// store (only this thread writes the counter).
    #[inline]
    pub(super) fn beat_now(&self) {
        let turns = self.beat_turns.get();
        if !turns.is_null() {
            // SAFETY: `beat_turns` points into the `Beat` that `self.beat`
            // holds, and is set and cleared with it (`watch`, `unwatch`).
            let turns = unsafe { &*turns };
            turns.store(turns.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Marks this hub idle (blocked in its poll) or busy again.
    pub(super) fn beat_idle(&self, idle: bool) {
        if self.hooks.get() & HOOK_BEAT == 0 {
            return;
        }
        if let Some(b) = &*self.beat.borrow() {
            b.idle.store(idle, Ordering::Relaxed);
        }
        if !idle {
            self.beat_now();
        }
    }

    /// Sets the hook bit `bit` on or off.
    pub(super) fn set_hook(&self, bit: u8, on: bool) {
        let h = self.hooks.get();
        self.hooks.set(if on { h | bit } else { h & !bit });
    }
}

/// Starts publishing this thread's heartbeat; returns it (the same one on
/// every call).
pub(crate) fn watch() -> Arc<Beat> {
    let rt = rt();
    let beat = rt
        .beat
        .borrow_mut()
        .get_or_insert_with(|| {
            Arc::new(Beat {
                turns: AtomicU64::new(0),
                idle: AtomicBool::new(false),
                alive: Mutex::new(true),
            })
        })
        .clone();
    rt.beat_turns.set(&beat.turns);
    rt.set_hook(HOOK_BEAT, true);
    beat
}

/// Stops publishing this thread's heartbeat.
pub(crate) fn unwatch() {
    let rt = rt();
    rt.set_hook(HOOK_BEAT, false);
    rt.beat_turns.set(std::ptr::null());
    let beat = rt.beat.borrow_mut().take();
    if let Some(b) = beat {
        b.idle.store(true, Ordering::Relaxed);
        // No longer this thread's heartbeat: a monitor that still holds it
        // must not signal the thread (which may exit, its id reused).
        *b.alive.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// The running greenlet as a signal handler sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) id: u64,
    /// Its name's first bytes (a child's, from its fault record: see
    /// `fault::FaultInfo`), or "main" / "Hub"; `name_len` of them are set.
    pub(crate) name: [u8; 32],
    pub(crate) name_len: usize,
    /// `None` for main and the hub.
    pub(crate) site: Option<&'static Location<'static>>,
}

/// Who runs on this thread, for a signal handler: async-signal-safe (it
/// reads plain memory, initialises nothing and takes no lock). `None`
/// when the thread has no runtime.
pub(crate) fn snapshot() -> Option<Snapshot> {
    let cur = super::signal_current()?;
    let mut s = Snapshot {
        id: cur.id,
        name: [0; 32],
        name_len: 0,
        site: None,
    };
    let fixed: &[u8] = match cur.kind {
        Kind::Main => b"main",
        Kind::Hub => b"Hub",
        Kind::Child => {
            // A torn read of a name being set by this thread's `set_name`
            // at worst garbles it (see `FaultInfo`).
            // SAFETY: the fault record is plain data of a live record.
            let fi = unsafe { &*cur.fault_ptr() };
            let n = fi.name_bytes();
            s.name[..n.len()].copy_from_slice(n);
            s.name_len = n.len();
            s.site = Some(cur.site);
            return Some(s);
        }
    };
    s.name[..fixed.len()].copy_from_slice(fixed);
    s.name_len = fixed.len();
    Some(s)
}
