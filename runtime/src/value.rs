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
//! Values of up to 24 bytes (integers, `&'static str`, `String`, `Vec`, `Box`,
//! small tuples) are stored inline, so a switch that carries them does not
//! allocate; larger values are boxed.
//!
//! [`switch`]: crate::Greenlet::switch

use std::any::TypeId;
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr;

const INLINE_WORDS: usize = 3;
type Inline = [MaybeUninit<usize>; INLINE_WORDS];

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
pub struct Value {
    /// The value itself when it fits, else a `Box<T>`.
    data: Inline,
    vtable: &'static VTable,
}

/// Per-type facts, one static per `T`.
struct VTable {
    type_id: TypeId,
    type_name: fn() -> &'static str,
    /// Drops what `data` holds (a `T`, or a `Box<T>` when `boxed`).
    drop: unsafe fn(*mut Inline),
}

trait HasVTable {
    const VTABLE: VTable;
}

impl<T: 'static> HasVTable for T {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<T>(),
        type_name: std::any::type_name::<T>,
        drop: if fits_inline::<T>() {
            drop_stored::<T>
        } else {
            drop_stored::<Box<T>>
        },
    };
}

const fn fits_inline<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<Inline>()
        && mem::align_of::<T>() <= mem::align_of::<Inline>()
}

/// Drops an `S` stored at the start of an inline buffer.
///
/// # Safety
/// `data` must hold an initialised `S` written by [`Value::new`], and it must
/// not be used again afterwards.
unsafe fn drop_stored<S>(data: *mut Inline) {
    // SAFETY: the caller guarantees `data` holds an initialised, properly
    // aligned `S` (checked by `fits_inline` when it was written).
    unsafe { ptr::drop_in_place(data.cast::<S>()) }
}

const EMPTY: Inline = [MaybeUninit::uninit(); INLINE_WORDS];

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
            data: EMPTY,
            vtable: &<() as HasVTable>::VTABLE,
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
        let mut data = EMPTY;
        if fits_inline::<T>() {
            // SAFETY: `fits_inline` checked that T's size and alignment fit
            // the buffer, which is word aligned.
            unsafe { ptr::write(data.as_mut_ptr().cast::<T>(), value) };
        } else {
            // SAFETY: a Box is one word, which always fits.
            unsafe { ptr::write(data.as_mut_ptr().cast::<Box<T>>(), Box::new(value)) };
        }
        Value {
            data,
            vtable: &<T as HasVTable>::VTABLE,
        }
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
        self.vtable.type_id == TypeId::of::<()>()
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
        // SAFETY: `is::<T>()` matched, so `data` holds a T (or a Box<T> when
        // it does not fit); `this` is never dropped, so it moves out once.
        unsafe {
            if fits_inline::<T>() {
                Ok(ptr::read(this.data.as_ptr().cast::<T>()))
            } else {
                Ok(*ptr::read(this.data.as_ptr().cast::<Box<T>>()))
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
        // SAFETY: `is::<T>()` matched, so `data` holds an initialised T (or
        // Box<T>); for `()` (a ZST) any aligned pointer is a valid reference.
        unsafe {
            if fits_inline::<T>() {
                Some(&*self.data.as_ptr().cast::<T>())
            } else {
                Some(&**self.data.as_ptr().cast::<Box<T>>())
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
        if self.vtable.type_id != TypeId::of::<()>() {
            // SAFETY: `data` holds an initialised value of the type the
            // vtable was made for; it is dropped only here.
            unsafe { (self.vtable.drop)(&mut self.data) }
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
        let v = Value::new((1u64, 2u64, 3u64));
        assert!(fits_inline::<(u64, u64, u64)>());
        assert_eq!(v.take::<(u64, u64, u64)>(), (1, 2, 3));
        let v = Value::new([7u64; 4]);
        assert!(!fits_inline::<[u64; 4]>());
        assert_eq!(v.take::<[u64; 4]>(), [7; 4]);
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
