//! The extensions of `isc_ext.h`: functions the original library lacked.
//! They return a negative errno instead of setting `errno`.

use crate::ffi::{
    IscAttr, IscEvent, IscHandle, ISC_EVENT_BOUND, ISC_EVENT_MESSAGE, ISC_EVENT_UNBOUND,
    ISC_OPEN_PULL,
};
use crate::{errno_of, handle};
use facade::{Error, Event};
use libc::{EAGAIN, EINVAL, EIO};
use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Runs an extension's body: `Ok(v)` is `v`, `Err(errno)` is `-errno`, a
/// panic is `-EIO`.
fn ext_entry(body: impl FnOnce() -> Result<c_int, i32>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => -e,
        Err(_) => -EIO,
    }
}

/// `isc_abi_version`: the shared-memory ABI version this library speaks.
#[no_mangle]
pub extern "C" fn isc_abi_version() -> u32 {
    isc_ring::abi::ABI_VERSION
}

/// `isc_open`: `open_isc` with const sizes, flags, and a negative errno.
///
/// # Safety
/// `s` and `r` are NULL or valid for reads; `isc` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn isc_open(
    uid: u32,
    s: *const IscAttr,
    r: *const IscAttr,
    flags: u32,
    isc: *mut *mut IscHandle,
) -> c_int {
    ext_entry(|| {
        if isc.is_null() || flags & !ISC_OPEN_PULL != 0 {
            return Err(EINVAL);
        }
        // SAFETY: per the contract, NULL or readable.
        let (s, r) = unsafe { (s.as_ref().copied(), r.as_ref().copied()) };
        let h = crate::open(uid, s, r, flags & ISC_OPEN_PULL != 0)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { isc.write(h) };
        Ok(0)
    })
}

/// `isc_call`: a call returning the reply and its length separately.
///
/// # Safety
/// `isc` is NULL or an open handle; `req` is NULL or holds `len` readable
/// bytes; `reply` is NULL or has `cap` writable bytes (it may be `req`);
/// `result` and `reply_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn isc_call(
    isc: *mut IscHandle,
    req: *const c_void,
    len: u32,
    reply: *mut c_void,
    cap: u32,
    result: *mut i32,
    reply_len: *mut u32,
) -> c_int {
    ext_entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        if req.is_null() || len == 0 || (reply.is_null() && cap > 0) {
            return Err(EINVAL);
        }
        // The reply can be as long as the bound message size.
        let mut buf = vec![0u8; h.channel.max_request() as usize];
        let r = {
            // SAFETY: `len` readable bytes per the contract; the slice ends
            // before `reply` (which may alias it) is written.
            let req = unsafe { std::slice::from_raw_parts(req.cast::<u8>(), len as usize) };
            h.call(req, &mut buf)?
        };
        let n = r.len.min(cap as usize);
        if n > 0 {
            // SAFETY: `n <= cap` writable bytes; `buf` is our own.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), reply.cast::<u8>(), n) };
        }
        // SAFETY: NULL or writable per the contract.
        unsafe {
            if let Some(res) = result.as_mut() {
                *res = r.rc;
            }
            if let Some(l) = reply_len.as_mut() {
                *l = r.len as u32;
            }
        }
        Ok(0)
    })
}

/// `isc_fd`: the channel's fd for poll/epoll.
///
/// # Safety
/// `isc` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn isc_fd(isc: *mut IscHandle) -> c_int {
    ext_entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        h.channel
            .with_fd(|fd| fd.as_raw_fd())
            .map_err(|e| errno_of(&e))
    })
}

/// `isc_recv`: the next event of a pull handle.
///
/// # Safety
/// `isc` is NULL or an open handle; `ev` is NULL or writable; `buf` is NULL
/// or has `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn isc_recv(
    isc: *mut IscHandle,
    ev: *mut IscEvent,
    buf: *mut c_void,
    cap: u32,
    timeout_ms: c_int,
) -> c_int {
    ext_entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        if ev.is_null() || (buf.is_null() && cap > 0) || !h.pull {
            return Err(EINVAL);
        }
        let event = match timeout_ms {
            0 => h.channel.try_recv().map_err(|e| errno_of(&e))?,
            t => {
                let wait = if t < 0 {
                    // "Forever", one hour at a time.
                    Duration::from_secs(3600)
                } else {
                    Duration::from_millis(t as u64)
                };
                loop {
                    match h.channel.recv(wait) {
                        Ok(e) => break Some(e),
                        Err(Error::Timeout(_)) if t < 0 => continue,
                        Err(Error::Timeout(_)) => break None,
                        Err(e) => return Err(errno_of(&e)),
                    }
                }
            }
        };
        let out = match event {
            None => return Err(EAGAIN),
            Some(Event::Bound) => IscEvent {
                type_: ISC_EVENT_BOUND,
                len: 0,
            },
            Some(Event::Unbound) => IscEvent {
                type_: ISC_EVENT_UNBOUND,
                len: 0,
            },
            Some(Event::Message(m)) => {
                let bytes = m.bytes();
                let n = bytes.len().min(cap as usize);
                if n > 0 {
                    // SAFETY: `n <= cap` writable bytes per the contract.
                    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n) };
                }
                IscEvent {
                    type_: ISC_EVENT_MESSAGE,
                    len: bytes.len() as u32,
                }
            }
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { ev.write(out) };
        Ok(0)
    })
}
