//! The C types of `isc.h` and `isc_ext.h`, with `#[repr(C)]` layouts that
//! the header test (`layout.rs`) checks against the headers.

use std::ffi::{c_int, c_void};

/// `struct isc_listener_ops`: a listener's callbacks, any of them NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IscListenerOps {
    /// `void (*bound)(void *arg)`.
    pub bound: Option<unsafe extern "C" fn(arg: *mut c_void)>,
    /// `void (*unbind)(void *arg)`.
    pub unbind: Option<unsafe extern "C" fn(arg: *mut c_void)>,
    /// `int32_t (*got)(void *msg, uint32_t len, void *arg)`.
    pub got: Option<unsafe extern "C" fn(msg: *mut c_void, len: u32, arg: *mut c_void) -> i32>,
}

/// `close` member of `struct isc_handle`.
pub type CloseFn = unsafe extern "C" fn(isc: *mut IscHandle);
/// `send` member of `struct isc_handle`.
pub type SendFn = unsafe extern "C" fn(
    isc: *mut IscHandle,
    msg: *mut c_void,
    len: u32,
    result: *mut i32,
) -> c_int;
/// `add_listener` and `rm_listener` members of `struct isc_handle`.
pub type ListenerFn = unsafe extern "C" fn(
    isc: *mut IscHandle,
    ops: *const IscListenerOps,
    arg: *mut c_void,
) -> c_int;

/// `struct isc_handle`: the public part of a handle, four function
/// pointers the caller calls through. The library's state follows it in
/// the same allocation (see `Handle`).
#[repr(C)]
pub struct IscHandle {
    /// `void (*close)(struct isc_handle *)`.
    pub close: CloseFn,
    /// `int (*send)(struct isc_handle *, void *, uint32_t, int32_t *)`.
    pub send: SendFn,
    /// `int (*add_listener)(struct isc_handle *, const struct isc_listener_ops *, void *)`.
    pub add_listener: ListenerFn,
    /// `int (*rm_listener)(struct isc_handle *, const struct isc_listener_ops *, void *)`.
    pub rm_listener: ListenerFn,
}

/// `struct isc_attr`: sizes of one direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IscAttr {
    /// Payload bytes per message.
    pub msz: u16,
    /// Queue depth in messages.
    pub num: u16,
}

/// `struct isc_event` of `isc_ext.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IscEvent {
    /// `ISC_EVENT_*`.
    pub type_: u32,
    /// Full length of a message event, else 0.
    pub len: u32,
}

/// `ISC_OPEN_PULL`.
pub const ISC_OPEN_PULL: u32 = 0x1;
/// `ISC_EVENT_BOUND`.
pub const ISC_EVENT_BOUND: u32 = 1;
/// `ISC_EVENT_UNBOUND`.
pub const ISC_EVENT_UNBOUND: u32 = 2;
/// `ISC_EVENT_MESSAGE`.
pub const ISC_EVENT_MESSAGE: u32 = 3;
