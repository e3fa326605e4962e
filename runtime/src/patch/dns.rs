//! The patched `getaddrinfo`: inside a greenlet, the lookup runs on the
//! blocking pool (glibc's resolver blocks in its own, unpatched, calls)
//! and the greenlet parks until it is done.

use std::ffi::{c_char, CStr, CString};

use libc::{addrinfo, c_int};

use super::{hub_here, real, set_errno};

/// Referred to by `patch_all`, so that the linker keeps this module.
#[inline(never)]
pub(super) fn link() {
    std::hint::black_box(getaddrinfo as *const () as usize);
}

/// A lookup's answer, freed by its drop unless handed to the caller (a
/// greenlet that stopped waiting leaves it to be freed on the pool).
struct Answer {
    rc: c_int,
    errno: i32,
    list: *mut addrinfo,
}

// SAFETY: the list is owned by this value alone, and `freeaddrinfo` may
// free it on any thread.
unsafe impl Send for Answer {}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.list.is_null() {
            // SAFETY: a list getaddrinfo returned, not yet freed or handed
            // out.
            unsafe { libc::freeaddrinfo(self.list) };
        }
    }
}

/// `getaddrinfo(3)`.
///
/// # Safety
///
/// As for libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    let Some(rt) = hub_here() else {
        // SAFETY: (pass-through) the caller's arguments, unchanged.
        return unsafe { real::getaddrinfo()(node, service, hints, res) };
    };
    // Copies the pool thread can own.
    // SAFETY: non-null strings are the caller's NUL-terminated ones.
    let own = |p: *const c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned());
    let (node_c, service_c): (Option<CString>, Option<CString>) = (own(node), own(service));
    // The fields a hint may set; the rest must be zero or null.
    // SAFETY: a non-null hint is the caller's valid addrinfo.
    let hint = (!hints.is_null()).then(|| unsafe {
        (
            (*hints).ai_flags,
            (*hints).ai_family,
            (*hints).ai_socktype,
            (*hints).ai_protocol,
        )
    });
    let job = move || {
        // SAFETY: a zeroed addrinfo is a valid empty hint.
        let mut h: addrinfo = unsafe { std::mem::zeroed() };
        if let Some((flags, family, socktype, protocol)) = hint {
            h.ai_flags = flags;
            h.ai_family = family;
            h.ai_socktype = socktype;
            h.ai_protocol = protocol;
        }
        let mut list = std::ptr::null_mut();
        let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: owned NUL-terminated strings (or null), a valid hint and
        // out-parameter; this thread is the pool's, so the call blocks.
        let rc = unsafe {
            real::getaddrinfo()(
                p(&node_c),
                p(&service_c),
                if hint.is_some() { &h } else { std::ptr::null() },
                &mut list,
            )
        };
        Answer {
            rc,
            errno: super::errno(),
            list,
        }
    };
    match super::wait::on_pool(rt, job) {
        Ok(mut a) => {
            // SAFETY: `res` is the caller's out-parameter.
            unsafe { *res = std::mem::replace(&mut a.list, std::ptr::null_mut()) };
            if a.rc == libc::EAI_SYSTEM {
                set_errno(a.errno);
            }
            a.rc
        }
        Err(stop) => {
            set_errno(stop.errno());
            libc::EAI_SYSTEM
        }
    }
}
