//! The device transport of ISC: the user side of `/dev/isc`.
//!
//! [`DevEndpoint::bind`] opens the device, binds a channel by UID with the
//! `ISC_IOC_BIND` ioctl, maps the channel's region (both rings, shared with
//! the kernel) and attaches an [`isc_ring::Producer`] to `u2k` and an
//! [`isc_ring::Consumer`] to `k2u`. Calls go out by publishing into `u2k`
//! and issuing `ISC_IOC_KICK` ([`DevShared::kick`]), which runs the driver
//! on every published message in the caller's context: **when `kick`
//! returns, the kicked messages are completed** (rc and in-place reply
//! written, slots released), so the device needs no completion doorbell.
//! Posts from the driver arrive in `k2u`; the descriptor polls readable
//! while there are some ([`DevEndpoint::wait_posts`], or [`AsFd`] for an
//! event loop). Consumed `k2u` slots go back with
//! [`DevEndpoint::release_posts`], which also kicks the kernel when it asks
//! for it: a `BOUND`/`UNBOUND` control message that found `k2u` full waits
//! in the kernel until a KICK after the user made room.
//!
//! The API mirrors the simulated transport's user endpoint: `bind`,
//! `bound_at_bind`, the two ring views, `kick`, `wait_posts` and `AsFd`, so
//! the facade can drive either behind one trait.
//!
//! Nothing the kernel returns is trusted blindly: the bind response must
//! match the layout computed from the request, and both ring headers are
//! validated before use; the ring views treat the shared memory as hostile.
//!
//! [`AsFd`]: std::os::fd::AsFd
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod endpoint;
mod error;
pub mod sys;

pub use endpoint::{Attached, DevEndpoint, DevShared, DEFAULT_PATH};
pub use error::{DevError, Result};
