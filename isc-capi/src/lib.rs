//! libisc: the C library of ISC (`libisc.so`, `libisc.a`), built on the
//! `isc` facade.
//!
//! `include/isc.h` is the original ISC library's API, declaration for
//! declaration: `open_isc` and the four function pointers of `struct
//! isc_handle`. `include/isc_ext.h` adds what the original lacked. The
//! behaviour follows the original where it was sound and fixes it where it
//! was not: `rm_listener` is a barrier, `close` works from a callback,
//! `send` is thread-safe and accepts a NULL result, events are consumed even
//! with no listener, and nothing is printed.
//!
//! No Rust panic crosses into C: every exported function and every callback
//! trampoline runs under `catch_unwind` (a panic becomes `EIO` or a dropped
//! event).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod dispatch;
pub mod ext;
pub mod ffi;
#[cfg(test)]
mod layout;

use dispatch::{Forwarder, Shared};
use facade::{Channel, Error, Transport, Uid};
use ffi::{IscAttr, IscHandle, IscListenerOps};
use libc::{EBADF, EBUSY, EINVAL, EIO, EMSGSIZE, ENOENT, ENOTCONN, ETIMEDOUT};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A handle as allocated by the library: the public `struct isc_handle`
/// first (a `*mut IscHandle` is a `*mut Handle`), then the private state.
#[repr(C)]
pub(crate) struct Handle {
    public: IscHandle,
    channel: Channel,
    shared: Arc<Shared>,
    /// The caller's send `msz`, or `None` when opened without a send
    /// direction.
    send_msz: Option<u32>,
    /// Opened with `ISC_OPEN_PULL`: no forwarder, events go to `isc_recv`.
    pull: bool,
}

/// The errno of a facade error (the table of the C API document).
pub(crate) fn errno_of(e: &Error) -> i32 {
    match e {
        Error::NotBound => ENOTCONN,
        Error::TooLarge { .. } => EMSGSIZE,
        Error::Full => libc::EAGAIN,
        Error::Closed => EBADF,
        Error::Corrupt(_) => EIO,
        Error::Timeout(_) => ETIMEDOUT,
        Error::InvalidConfig(b) => b.errno(),
        Error::Busy(_) => EBUSY,
        Error::PermissionDenied(_) => libc::EACCES,
        Error::QuotaExceeded => libc::EDQUOT,
        Error::BadLength { .. } => EINVAL,
        Error::ListenersActive => EBUSY,
        Error::NoTransport(_) => ENOENT,
        Error::Io(io) => io.raw_os_error().unwrap_or(EIO),
        _ => EIO,
    }
}

/// Stores `e` in the calling thread's `errno`.
fn set_errno(e: i32) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}

/// Runs an entry point's body: `Ok` is 0, `Err(errno)` is -1 with errno
/// set, a panic is -1 with `EIO`.
fn entry(body: impl FnOnce() -> Result<(), i32>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            set_errno(EIO);
            -1
        }
    }
}

/// The library's state behind a caller's handle pointer.
///
/// # Safety
/// `isc` is NULL or a handle returned by `open_isc`/`isc_open` and not yet
/// closed.
pub(crate) unsafe fn handle<'a>(isc: *mut IscHandle) -> Result<&'a Handle, i32> {
    // SAFETY: per the contract, a non-NULL `isc` points to a live `Handle`
    // whose first field is the `IscHandle` (repr(C)).
    unsafe { isc.cast::<Handle>().as_ref() }.ok_or(EINVAL)
}

/// Opens a channel: the common part of `open_isc` and `isc_open`.
pub(crate) fn open(
    uid: u32,
    s: Option<IscAttr>,
    r: Option<IscAttr>,
    pull: bool,
) -> Result<*mut IscHandle, i32> {
    if s.is_some_and(|s| s.num == 0) || r.is_some_and(|r| r.num == 0) {
        return Err(EINVAL);
    }
    // The project always binds both directions: without a send direction a
    // minimal u2k ring; without a receive one the original's k2u sizes,
    // which carry the bound/unbound notifications.
    let (u2k_msz, u2k_num) = s.map_or((1, 1), |s| (s.msz.max(1), s.num));
    let (k2u_msz, k2u_num) = r.map_or((4, 8), |r| (r.msz.max(4), r.num));
    let transport = Transport::from_env().map_err(|e| errno_of(&e))?;
    let channel = Channel::builder(Uid::new(uid))
        .u2k(u2k_msz.into(), u2k_num.into())
        .k2u(k2u_msz.into(), k2u_num.into())
        .transport(transport)
        .open()
        .map_err(|e| errno_of(&e))?;
    // The dispatcher starts with the forwarder, so the bound state read
    // here is the bind's: a BOUND queued for this binding is filtered.
    let shared = Arc::new(Shared::new(channel.is_bound()));
    if !pull {
        // On failure `channel` is dropped: the binding ends, nothing leaks.
        channel
            .add_listener(Forwarder(Arc::clone(&shared)))
            .map_err(|e| errno_of(&e))?;
    }
    let handle = Box::new(Handle {
        public: IscHandle {
            close: handle_close,
            send: handle_send,
            add_listener: handle_add_listener,
            rm_listener: handle_rm_listener,
        },
        channel,
        shared,
        send_msz: s.map(|s| s.msz.into()),
        pull,
    });
    Ok(Box::into_raw(handle).cast())
}

/// `open_isc` of isc.h: opens a channel to the driver registered under
/// `uid` and stores a new handle in `*isc`; 0, or -1 with errno.
///
/// # Safety
/// `s` and `r` are NULL or valid for reads; `isc` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn open_isc(
    uid: u32,
    s: *mut IscAttr,
    r: *mut IscAttr,
    isc: *mut *mut IscHandle,
) -> c_int {
    entry(|| {
        if isc.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: per the contract, NULL or readable.
        let (s, r) = unsafe { (s.as_ref().copied(), r.as_ref().copied()) };
        let h = open(uid, s, r, false)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { isc.write(h) };
        Ok(())
    })
}

impl Handle {
    /// A call of `len` bytes at `req`; the reply goes to `reply`
    /// (truncated to its length). Checks the C API's argument rules.
    fn call(&self, req: &[u8], reply: &mut [u8]) -> Result<facade::Reply, i32> {
        let msz = self.send_msz.ok_or(EINVAL)?;
        if req.len() > msz as usize {
            return Err(EMSGSIZE);
        }
        self.channel.call(req, reply).map_err(|e| errno_of(&e))
    }
}

/// Room for the request and reply of small calls without allocating.
const STACK_BUF: usize = 256;

unsafe extern "C" fn handle_send(
    isc: *mut IscHandle,
    msg: *mut c_void,
    len: u32,
    result: *mut i32,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        if msg.is_null() || len == 0 || h.send_msz.is_none() {
            return Err(EINVAL);
        }
        let len = len as usize;
        let mut stack = [0u8; STACK_BUF];
        let mut heap = Vec::new();
        let reply: &mut [u8] = if len <= STACK_BUF {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        let r = {
            // SAFETY: the caller provides `len` readable bytes at `msg`;
            // the slice ends before `msg` is written below.
            let req = unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len) };
            h.call(req, reply)?
        };
        if r.rc == 0 {
            // SAFETY: `r.len <= len` bytes, writable per the contract;
            // `reply` is our own buffer, distinct from `msg`.
            unsafe { std::ptr::copy_nonoverlapping(reply.as_ptr(), msg.cast::<u8>(), r.len) };
        }
        if !result.is_null() {
            // SAFETY: non-NULL `result` is writable per the contract.
            unsafe { result.write(r.rc) };
        }
        Ok(())
    })
}

unsafe extern "C" fn handle_add_listener(
    isc: *mut IscHandle,
    ops: *const IscListenerOps,
    arg: *mut c_void,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        // SAFETY: NULL or a valid listener per the contract.
        let o = unsafe { ops.as_ref() }.ok_or(EINVAL)?;
        if (o.bound.is_none() && o.unbind.is_none() && o.got.is_none()) || h.pull {
            return Err(EINVAL);
        }
        // The synchronous `bound` may close the handle: keep only the
        // shared state from here on.
        let shared = Arc::clone(&h.shared);
        shared.add(ops, arg)
    })
}

unsafe extern "C" fn handle_rm_listener(
    isc: *mut IscHandle,
    ops: *const IscListenerOps,
    arg: *mut c_void,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes its handle.
        let h = unsafe { handle(isc) }?;
        if ops.is_null() {
            return Err(EINVAL);
        }
        Arc::clone(&h.shared).remove(ops, arg)
    })
}

unsafe extern "C" fn handle_close(isc: *mut IscHandle) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if isc.is_null() {
            return;
        }
        // SAFETY: a handle from `open` (a leaked `Box<Handle>`), closed
        // once per the contract.
        let h = unsafe { Box::from_raw(isc.cast::<Handle>()) };
        // No callback runs after the current one; then dropping the channel
        // stops the dispatcher (joining it, unless this is its thread: then
        // it exits after this callback), unbinds and unmaps. The forwarder
        // keeps `Shared` alive until the dispatcher is gone.
        h.shared.close();
        drop(h);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facade_errors_map_to_the_documented_errnos() {
        let uid = Uid::new(1);
        let io = |e| Error::Io(std::io::Error::from_raw_os_error(e));
        let cases = [
            (Error::NotBound, ENOTCONN),
            (Error::TooLarge { len: 9, max: 8 }, EMSGSIZE),
            (Error::Full, libc::EAGAIN),
            (Error::Closed, EBADF),
            (Error::Corrupt("x".into()), EIO),
            (Error::Timeout(std::time::Duration::ZERO), ETIMEDOUT),
            (Error::Busy(uid), EBUSY),
            (Error::PermissionDenied(uid), libc::EACCES),
            (Error::QuotaExceeded, libc::EDQUOT),
            (Error::NoTransport("none".into()), ENOENT),
            (io(libc::ENODEV), libc::ENODEV),
            (io(libc::EFAULT), libc::EFAULT),
            (Error::Io(std::io::Error::other("no errno")), EIO),
        ];
        for (e, errno) in cases {
            assert_eq!(errno_of(&e), errno, "{e}");
        }
        let too_big = facade::Channel::builder(uid)
            .u2k(65535, 65535)
            .transport(Transport::device_at("/nonexistent"))
            .open()
            .unwrap_err();
        assert_eq!(errno_of(&too_big), libc::E2BIG);
    }
}
