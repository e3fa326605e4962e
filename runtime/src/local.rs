//! Greenlet-local storage: [`greenlet_local!`](crate::greenlet_local).

use std::any::Any;
use std::fmt;

use crate::hub::{self, LocalSet as Set};

/// A key for a greenlet-local value; declare one with
/// [`greenlet_local!`](crate::greenlet_local).
pub struct GreenletLocal<T: 'static> {
    init: fn() -> T,
    /// Gives each key a distinct address (a zero-sized static might share).
    _unique: u8,
}

impl<T: 'static> fmt::Debug for GreenletLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GreenletLocal { .. }")
    }
}

impl<T: 'static> GreenletLocal<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> GreenletLocal<T> {
        GreenletLocal { init, _unique: 0 }
    }

    /// Runs `f` with the running greenlet's value, making it first if
    /// needed.
    ///
    /// # Panics
    ///
    /// Panics if `f` (or the initialiser) uses this same key again: the
    /// value is lent out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// verdant_runtime::greenlet_local!(static HITS: Cell<u32> = Cell::new(0));
    /// HITS.with(|h| h.set(h.get() + 1));
    /// assert_eq!(HITS.with(Cell::get), 1);
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        // Lend the value out, leaving a marker in its place: `f` may use
        // other keys, and a second use of this one is caught.
        let value = with_current(|set| match set.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) if slot.is::<InUse>() => Err(()),
            Some((_, slot)) => Ok(Some(std::mem::replace(slot, Box::new(InUse)))),
            None => {
                set.push((key, Box::new(InUse)));
                Ok(None)
            }
        });
        let Ok(value) = value else {
            panic!("verdant: a greenlet-local was used again while it is in use (inside its own `with`)");
        };
        let restore = Restore {
            key,
            value: Some(value.unwrap_or_else(|| Box::new((self.init)()))),
        };
        let typed = restore
            .value
            .as_ref()
            .and_then(|v| v.downcast_ref::<T>())
            .expect("a key always stores its own type");
        f(typed)
    }
}

/// Marks a value lent out to a running `with`.
struct InUse;

/// Puts a lent value back (also on unwind).
struct Restore {
    key: usize,
    value: Option<Box<dyn Any>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let value = self.value.take();
        let key = self.key;
        let marker = with_current(|set| {
            let slot = set.iter_mut().find(|(k, _)| *k == key)?;
            Some(std::mem::replace(&mut slot.1, value?))
        });
        drop(marker);
    }
}

/// Runs `f` with the running greenlet's set of locals.
fn with_current<R>(f: impl FnOnce(&mut Set) -> R) -> R {
    let mut set = hub::take_locals().unwrap_or_default();
    let r = f(&mut set);
    hub::put_locals(set);
    r
}

/// Declares greenlet-local keys: like `thread_local!`, one value per
/// greenlet.
///
/// A `thread_local!` is shared by every greenlet of the thread: a value one
/// greenlet stores there is seen (and overwritten) by the others, which is
/// rarely what per-request state wants. A greenlet-local has one value per
/// greenlet, made on first use from its initialiser and dropped when the
/// greenlet ends (inside it, so destructors still run in greenlet context).
///
/// A spawned greenlet starts with its own fresh value. To give it a copy of
/// the spawner's value, or to share one, say so where you spawn:
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use verdant_runtime::{greenlet_local, spawn};
///
/// greenlet_local!(static REQUEST_ID: RefCell<u32> = RefCell::new(0));
/// greenlet_local!(static SHARED: RefCell<Rc<RefCell<Vec<u32>>>> = RefCell::new(Rc::default()));
///
/// REQUEST_ID.with(|id| *id.borrow_mut() = 7);
/// // Fresh: a new greenlet starts from the initialiser.
/// assert_eq!(spawn(|| REQUEST_ID.with(|id| *id.borrow())).join().unwrap(), 0);
/// // A copy: read it here, set it there.
/// let mine = REQUEST_ID.with(|id| *id.borrow());
/// let copy = spawn(move || { REQUEST_ID.with(|id| *id.borrow_mut() = mine); REQUEST_ID.with(|id| *id.borrow()) });
/// assert_eq!(copy.join().unwrap(), 7);
/// // Shared: hand over an Rc.
/// let log = SHARED.with(|s| s.borrow().clone());
/// let l2 = log.clone();
/// spawn(move || { SHARED.with(|s| *s.borrow_mut() = l2); SHARED.with(|s| s.borrow().borrow_mut().push(1)) }).join().unwrap();
/// assert_eq!(*log.borrow(), [1]);
/// ```
///
/// # Examples
///
/// Each greenlet keeps its own value across switches:
///
/// ```
/// use std::cell::Cell;
/// use verdant_runtime::{greenlet_local, spawn};
///
/// greenlet_local!(static DEPTH: Cell<u32> = Cell::new(0));
/// let hs: Vec<_> = (1..=3)
///     .map(|n| spawn(move || { DEPTH.with(|d| d.set(n)); verdant_runtime::yield_now(); DEPTH.with(Cell::get) }))
///     .collect();
/// // Each kept its own value across the switches.
/// assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
/// ```
#[macro_export]
macro_rules! greenlet_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr $(;)?) => {
        $(#[$attr])*
        $vis static $name: $crate::GreenletLocal<$t> = {
            fn __init() -> $t {
                $init
            }
            $crate::GreenletLocal::new(__init)
        };
    };
}
