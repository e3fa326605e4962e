//! The panic hook: names the greenlet and runs the report on a side stack.
//!
//! std's default hook names the *thread*; with `RUST_BACKTRACE=1` it also
//! needs more stack than a small greenlet has (a 16 KiB coroutine stack
//! crashes). verdant wraps whatever hook is installed when the
//! first hub starts: inside a greenlet it prints one line naming the greenlet,
//! then runs the previous hook on a per-thread 256 KiB side stack
//! (`corosensei::on_stack`). Outside greenlets it calls the previous hook
//! unchanged. Kills ([`GreenletExit`](crate::GreenletExit)) are raised with
//! `resume_unwind` and never reach the hook.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::sync::Once;

use crate::stack::Stack;

const SIDE_STACK: usize = 256 * 1024;

thread_local! {
    static SIDE: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Who panics: the running greenlet's name and id, or `None` outside
/// greenlets (on main, or with no runtime).
pub(crate) type Who = fn() -> Option<(Cow<'static, str>, u64)>;

/// Wraps the panic hook installed now (once per process); `who` names the
/// running greenlet (handed in by the hub: this module sits below it).
pub(crate) fn install_hook(who: Who) {
    INSTALL.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let who = who();
            let Some((name, id)) = who else {
                return prev(info);
            };
            let report = || {
                let _ = writeln!(std::io::stderr(), "panic in greenlet '{name}' (#{id}):");
                prev(info);
            };
            let ran = SIDE.try_with(|side| {
                let Ok(mut side) = side.try_borrow_mut() else {
                    return false; // a panic inside the hook: no side stack
                };
                if side.is_none() {
                    *side = Stack::new(SIDE_STACK).ok();
                }
                match side.as_mut() {
                    Some(stack) => {
                        corosensei::on_stack(stack, report);
                        true
                    }
                    None => false,
                }
            });
            if ran != Ok(true) {
                let _ = writeln!(std::io::stderr(), "panic in greenlet '{name}' (#{id}):");
                prev(info);
            }
        }));
    });
}
