//! [`Value`]: the checked dynamic value that travels through [`switch`].
//!
//! # Why a dynamic value
//!
//! greenlet's `switch` is symmetric: `g.switch(x)` returns whatever the *next*
//! greenlet to switch back sends, and that can be any greenlet in the thread.
//! A generic `Greenlet<In, Out>` cannot type that return statically (the sender
//! is only known at run time), so verdant passes a [`Value`]: any `'static`
//! value, type-checked when it is taken out with [`Value::downcast`]. The
//! examples then read like their Python originals (`g2.switch("tom")`), and a
//! mismatch is a clear error naming both types instead of a silent bug.
//!
//! # Representation
//!
//! A `Value` is two words: a pointer to a per-type table and a data word.
//! Zero-sized values and the primitive scalars (integers, floats, `bool`,
//! `char`) are stored in the data word, so a switch that carries them does
//! not allocate; anything else is boxed. Two plain words are what the
//! compiler keeps in registers and copies word by word: a wider value built
//! field by field and then copied whole stalls the CPU on store-to-load
//! forwarding at every switch (measured: 41 against 31 ns per round trip
//! for a 32-byte value with inline storage).
//!
//! A `Value` is neither `Send` nor `Sync`: it may hold an `Rc`.
//!
//! [`switch`]: crate::Greenlet::switch

use std::any::{Any, TypeId};
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr;

// The mailbox vocabulary: what a switch carries besides plain values. A
// resumed greenlet finds its input in the runtime's mailbox as a `Value`
// (see the core's module docs); these are the runtime's own messages and
// their meanings.

/// A panic payload, as carried by `catch_unwind`/`resume_unwind`.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What a greenlet receives when it is resumed, decoded from the [`Value`]
/// that carried it (see [`Value::into_input`]). Only slow paths decode: a
/// plain value is recognised by one test and handed over as it is.
pub(crate) enum Input {
    /// A value from `switch` (or a greenlet's return value, via its parent).
    Value(Value),
    /// Raise this payload at the switch point (`throw`, kill, or a child's
    /// uncaught panic).
    Throw(Payload),
    /// A wake-up from the hub for a greenlet parked in a hub wait.
    Wake(Wake),
}

/// Why the hub resumed a parked greenlet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// What it waited for happened.
    Ready,
    /// Its deadline passed.
    TimedOut,
    /// Nothing can ever wake it: the hub has nothing to run, watch or time.
    LoopExit,
}

/// How a greenlet's function ended: its value, or an uncaught panic.
pub(crate) type Exit = Result<Value, Payload>;

/// A value of any `'static` type, passed between greenlets by
/// [`Greenlet::switch`](crate::Greenlet::switch).
///
/// `Value` is a type-checked box: put anything in with [`Value::new`], take it
/// out with [`Value::downcast`] (which hands the value back on a type
/// mismatch). The empty value, [`Value::empty`], is what a switch with `()`
/// carries, like greenlet's empty `()` argument tuple.
///
/// # Examples
///
/// ```
/// use verdant_runtime::Value;
///
/// let v = Value::new(String::from("tom"));
/// assert!(v.is::<String>());
/// let v = v.downcast::<i32>().unwrap_err(); // wrong type: the value comes back
/// assert_eq!(v.downcast::<String>().unwrap(), "tom");
/// assert!(Value::new(()).is_empty());
/// ```
///
/// It stays on its thread:
///
/// ```compile_fail
/// let v = verdant_runtime::Value::new(1);
/// std::thread::spawn(move || drop(v));
/// ```
pub struct Value {
    vtable: &'static VTable,
    /// The value itself when [`is_inline`], else a `Box<T>` from
    /// `Box::into_raw`.
    data: *mut (),
}

/// Per-type facts, one static per `T`.
pub(crate) struct VTable {
    type_id: TypeId,
    type_name: fn() -> &'static str,
    /// Drops what `data` holds; `None` for zero-sized types without drop
    /// glue (`()` above all), so dropping the empty value costs one test.
    drop: Option<unsafe fn(*mut ())>,
    /// Non-zero for the runtime's own messages (see [`Special`]), which user
    /// code can never construct: one test tells a plain value from them.
    special: Special,
}

/// The runtime's own messages, carried through the same mailbox as values.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Special {
    /// A value made by [`Value::new`].
    None,
    /// A panic payload to raise at the receiver's switch point.
    Thrown,
    /// A hub wake-up.
    Wake,
}

trait HasVTable {
    const VTABLE: VTable;
}

impl<T: 'static> HasVTable for T {
    const VTABLE: VTable = make_vtable::<T>(Special::None);
}

const fn make_vtable<T: 'static>(special: Special) -> VTable {
    VTable {
        type_id: TypeId::of::<T>(),
        type_name: std::any::type_name::<T>,
        drop: if mem::size_of::<T>() == 0 && !mem::needs_drop::<T>() {
            None
        } else {
            Some(drop_data::<T>)
        },
        special,
    }
}

/// Whether a `T` lives in the data word itself: zero-sized types, and
/// scalars whose every byte is initialised (so the word can be read as an
/// integer). Evaluated at compile time after monomorphisation.
#[inline(always)]
fn is_inline<T: 'static>() -> bool {
    if mem::size_of::<T>() == 0 {
        return true;
    }
    let id = TypeId::of::<T>();
    macro_rules! any_of {
        ($($t:ty),*) => { false $(|| id == TypeId::of::<$t>())* };
    }
    any_of!(bool, char, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64, Wake)
}

/// Drops the `T` that `data` holds.
///
/// # Safety
/// `data` must be the data word of a `Value` made for `T`, not used again.
unsafe fn drop_data<T: 'static>(data: *mut ()) {
    if is_inline::<T>() {
        if mem::needs_drop::<T>() {
            // Only zero-sized types can be inline and need dropping.
            // SAFETY: a ZST is valid at any aligned, non-null address, and
            // the caller guarantees one was stored and is dropped once.
            unsafe { ptr::drop_in_place(ptr::NonNull::<T>::dangling().as_ptr()) }
        }
    } else {
        // SAFETY: a non-inline value's data word is `Box::into_raw` of a
        // `Box<T>` (the caller guarantees the type), freed only here.
        drop(unsafe { Box::from_raw(data.cast::<T>()) });
    }
}

/// A panic payload in transit: raised where it is received.
pub(crate) struct Thrown(pub(crate) Payload);

static THROWN_VTABLE: VTable = make_vtable::<Thrown>(Special::Thrown);
// A wake-up is a one-byte enum stored inline: nothing to drop.
static WAKE_VTABLE: VTable = VTable {
    drop: None,
    ..make_vtable::<Wake>(Special::Wake)
};

impl Value {
    /// The empty value: what `switch(())` sends and what a greenlet that
    /// returns `()` gives its parent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(verdant_runtime::Value::empty().is_empty());
    /// ```
    pub const fn empty() -> Value {
        Value {
            vtable: &<() as HasVTable>::VTABLE,
            data: ptr::null_mut(),
        }
    }

    /// Wraps `value`. Wrapping a `Value` returns it unchanged, and wrapping
    /// `()` gives the empty value.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Value;
    /// let v = Value::new(Value::new(5u8)); // not nested
    /// assert_eq!(v.downcast::<u8>().unwrap(), 5);
    /// ```
    #[inline]
    pub fn new<T: 'static>(value: T) -> Value {
        if TypeId::of::<T>() == TypeId::of::<Value>() {
            let value = mem::ManuallyDrop::new(value);
            // SAFETY: T is Value (same TypeId), so reading it as a Value moves
            // it out; ManuallyDrop prevents a double drop of the original.
            return unsafe { ptr::read((&*value as *const T).cast::<Value>()) };
        }
        Value::with_vtable(value, &<T as HasVTable>::VTABLE)
    }

    /// A panic payload to raise in the greenlet that receives it.
    pub(crate) fn thrown(payload: Payload) -> Value {
        Value::with_vtable(Thrown(payload), &THROWN_VTABLE)
    }

    /// A hub wake-up.
    pub(crate) fn wake(wake: Wake) -> Value {
        Value::with_vtable(wake, &WAKE_VTABLE)
    }

    /// Whether this is one of the runtime's own messages rather than a value
    /// made by [`Value::new`].
    #[inline(always)]
    pub(crate) fn is_special(&self) -> bool {
        self.vtable.special != Special::None
    }

    /// The wake-up this value carries, or the value itself when it is
    /// something else (the hub-wait fast path: one pointer test, no type-id
    /// comparison and no drop, since a wake-up owns nothing).
    #[inline(always)]
    pub(crate) fn into_wake(self) -> Result<Wake, Value> {
        if ptr::eq(self.vtable, &WAKE_VTABLE) {
            // SAFETY: only `Value::wake` uses WAKE_VTABLE, and it stores a
            // `Wake` inline at the start of the data word.
            let w = unsafe { *(&self.data as *const *mut ()).cast::<Wake>() };
            mem::forget(self); // a `Wake` is `Copy`: nothing to drop
            Ok(w)
        } else {
            Err(self)
        }
    }

    /// Whether this is a panic payload in transit.
    pub(crate) fn is_thrown(&self) -> bool {
        self.vtable.special == Special::Thrown
    }

    /// Sorts a received value into what it means.
    pub(crate) fn into_input(self) -> Input {
        match self.vtable.special {
            Special::None => Input::Value(self),
            Special::Thrown => Input::Throw(self.take::<Thrown>().0),
            Special::Wake => Input::Wake(self.take::<Wake>()),
        }
    }

    /// Stores `value` under `vtable`, which must describe a `T`.
    #[inline(always)]
    fn with_vtable<T: 'static>(value: T, vtable: &'static VTable) -> Value {
        debug_assert!(vtable.type_id == TypeId::of::<T>());
        let data = if is_inline::<T>() {
            let mut word = MaybeUninit::<usize>::zeroed();
            // SAFETY: inline types fit in a word (scalars of at most 8
            // bytes, or zero-sized) and need at most its alignment.
            unsafe { word.as_mut_ptr().cast::<T>().write(value) };
            // SAFETY: the word was zeroed and an inline `T` has no
            // uninitialised bytes, so every byte of it is initialised.
            ptr::without_provenance_mut(unsafe { word.assume_init() })
        } else {
            Box::into_raw(Box::new(value)).cast::<()>()
        };
        Value { vtable, data }
    }

    /// Whether this is the empty value (sent by `switch(())`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!verdant_runtime::Value::new(1).is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.is::<()>()
    }

    /// Whether the value holds a `T`. The empty value holds `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Value;
    /// assert!(Value::new(1u32).is::<u32>());
    /// assert!(Value::empty().is::<()>());
    /// ```
    #[inline]
    pub fn is<T: 'static>(&self) -> bool {
        self.vtable.type_id == TypeId::of::<T>()
    }

    /// The name of the held type, for error messages (`"()"` when empty).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Value::new(1u8).type_name(), "u8");
    /// ```
    pub fn type_name(&self) -> &'static str {
        (self.vtable.type_name)()
    }

    /// Takes the value out as a `T`.
    ///
    /// `downcast::<Value>()` always succeeds (it returns `self`), and
    /// `downcast::<()>()` succeeds on the empty value.
    ///
    /// # Errors
    ///
    /// Returns the value unchanged when it does not hold a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use verdant_runtime::Value;
    /// assert_eq!(Value::new(42i64).downcast::<i64>().unwrap(), 42);
    /// assert!(Value::new(42i64).downcast::<i32>().is_err());
    /// ```
    #[inline]
    pub fn downcast<T: 'static>(self) -> Result<T, Value> {
        if TypeId::of::<T>() == TypeId::of::<Value>() {
            let this = mem::ManuallyDrop::new(self);
            // SAFETY: T is Value; moving `self` out as a T is a plain move.
            return Ok(unsafe { ptr::read((&*this as *const Value).cast::<T>()) });
        }
        if !self.is::<T>() {
            return Err(self);
        }
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: `is::<T>()` matched, so the data word holds a T (inline)
        // or a `Box<T>`; `this` is never dropped, so it moves out once.
        unsafe {
            if is_inline::<T>() {
                Ok(ptr::read((&this.data as *const *mut ()).cast::<T>()))
            } else {
                Ok(*Box::from_raw(this.data.cast::<T>()))
            }
        }
    }

    /// Borrows the value as a `T`, if it holds one.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = verdant_runtime::Value::new(String::from("x"));
    /// assert_eq!(v.downcast_ref::<String>().map(|s| s.as_str()), Some("x"));
    /// ```
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        if !self.is::<T>() {
            return None;
        }
        // SAFETY: `is::<T>()` matched, so the data word holds an initialised
        // T (inline, at the word's start) or points at a live `Box<T>`.
        unsafe {
            if is_inline::<T>() {
                Some(&*(&self.data as *const *mut ()).cast::<T>())
            } else {
                Some(&*self.data.cast::<T>())
            }
        }
    }

    /// Takes the value out as a `T`.
    ///
    /// # Panics
    ///
    /// Panics with a message naming both types when the value is not a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(verdant_runtime::Value::new('x').take::<char>(), 'x');
    /// ```
    #[track_caller]
    pub fn take<T: 'static>(self) -> T {
        match self.downcast::<T>() {
            Ok(v) => v,
            Err(v) => panic!(
                "verdant: expected a value of type `{}` but got `{}`",
                std::any::type_name::<T>(),
                v.type_name()
            ),
        }
    }
}

impl Drop for Value {
    #[inline]
    fn drop(&mut self) {
        if let Some(drop) = self.vtable.drop {
            // SAFETY: the data word holds a value of the type the vtable was
            // made for; it is dropped only here.
            unsafe { drop(self.data) }
        }
    }
}

impl Default for Value {
    fn default() -> Value {
        Value::empty()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("Value(())");
        }
        macro_rules! show {
            ($($t:ty),*) => {$(
                if let Some(v) = self.downcast_ref::<$t>() {
                    return write!(f, "Value({v:?})");
                }
            )*};
        }
        show!(
            i8,
            i16,
            i32,
            i64,
            isize,
            u8,
            u16,
            u32,
            u64,
            usize,
            bool,
            char,
            f32,
            f64,
            &'static str,
            String
        );
        write!(f, "Value(<{}>)", self.type_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn inline_and_boxed_round_trip() {
        assert!(is_inline::<u64>() && is_inline::<char>() && is_inline::<()>());
        assert_eq!(Value::new(u64::MAX).take::<u64>(), u64::MAX);
        assert_eq!(Value::new(-1i8).take::<i8>(), -1);
        assert_eq!(Value::new(1.5f32).take::<f32>(), 1.5);
        assert_eq!(*Value::new('é').downcast_ref::<char>().unwrap(), 'é');
        // Types that may hold uninitialised bytes are boxed, never inline.
        assert!(!is_inline::<(u8, u32)>() && !is_inline::<Option<u32>>());
        assert_eq!(Value::new((1u8, 2u32)).take::<(u8, u32)>(), (1, 2));
        assert_eq!(Value::new(None::<u32>).take::<Option<u32>>(), None);
        let v = Value::new([7u64; 4]);
        assert_eq!(v.take::<[u64; 4]>(), [7; 4]);
    }

    #[test]
    fn zero_sized_values_with_drop_glue_are_dropped() {
        struct Flag;
        thread_local!(static DROPS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        impl Drop for Flag {
            fn drop(&mut self) {
                DROPS.with(|d| d.set(d.get() + 1));
            }
        }
        assert!(is_inline::<Flag>());
        drop(Value::new(Flag));
        assert_eq!(DROPS.with(|d| d.get()), 1);
        let f = Value::new(Flag).take::<Flag>();
        assert_eq!(DROPS.with(|d| d.get()), 1);
        drop(f);
        assert_eq!(DROPS.with(|d| d.get()), 2);
    }

    #[test]
    fn drops_exactly_once() {
        let rc = Rc::new(());
        let v = Value::new(rc.clone());
        assert_eq!(Rc::strong_count(&rc), 2);
        let back = v.downcast::<Rc<()>>().unwrap();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(back);
        assert_eq!(Rc::strong_count(&rc), 1);
        drop(Value::new(rc.clone()));
        assert_eq!(Rc::strong_count(&rc), 1);
        let big = Value::new((rc.clone(), [0u64; 8]));
        let wrong = big.downcast::<u8>().unwrap_err();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(wrong);
        assert_eq!(Rc::strong_count(&rc), 1);
    }

    #[test]
    fn mismatch_names_both_types() {
        let err = std::panic::catch_unwind(|| Value::new(1u8).take::<String>()).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("alloc::string::String") && msg.contains("u8"),
            "{msg}"
        );
    }
}
