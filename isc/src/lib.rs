//! ISC: fast two-way messaging between an application and a kernel driver
//! over shared memory.
//!
//! An application opens a [`Channel`] by [`Uid`]; a driver registered with
//! the same UID answers its [`calls`](ChannelHandle::call) (the reply is
//! written in place, with a result code) and posts messages back, which the
//! application receives through [`Listener`]s on a dispatcher thread or
//! pulls with [`recv`](ChannelHandle::recv). Both directions are lock-free
//! rings in one shared mapping; a syscall is made only to wake a side that
//! sleeps.
//!
//! The driver is the Linux module behind `/dev/isc` ([`Transport::device`])
//! or, for development and tests, a userspace stand-in with the same
//! protocol ([`Transport::sim`], see [`sim`]).
//!
//! # Example
//!
//! ```
//! use isc::sim::{Handle, Message, SimDriver, SimHost};
//! use isc::{Channel, Transport, Uid};
//! use std::sync::Arc;
//!
//! // A driver that doubles the number it is sent.
//! struct Doubler;
//! impl SimDriver for Doubler {
//!     fn bound(&self, _: Handle) {}
//!     fn unbind(&self) {}
//!     fn got(&self, msg: &mut Message) -> i32 {
//!         let Ok(n) = isc::decode::<u32>(msg.data()) else { return -22 };
//!         msg.set_reply(&(2 * n).to_le_bytes()).map_or(-22, |()| 0)
//!     }
//! }
//!
//! let host = Arc::new(SimHost::new().unwrap());
//! let uid = Uid::fourcc(*b"dbl0");
//! host.register(uid.raw(), Arc::new(Doubler)).unwrap();
//!
//! let channel = Channel::builder(uid).u2k(4, 8).k2u(4, 8).transport(Transport::sim(&host)).open()?;
//! let mut reply = [0u8; 4];
//! let r = channel.call(&21u32.to_le_bytes(), &mut reply)?;
//! assert_eq!((r.rc, u32::from_le_bytes(reply)), (0, 42));
//! # Ok::<(), isc::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "tokio")]
mod asynch;
mod calls;
mod channel;
mod dispatch;
mod error;
mod event;
mod flight;
mod link;
mod sync;
pub mod testdrv;
mod transport;
mod typed;

#[cfg(feature = "tokio")]
pub use asynch::{CallFuture, EventStream};
pub use channel::{
    BatchReply, Channel, ChannelBuilder, ChannelHandle, Events, Reply, DEFAULT_TIMEOUT,
};
pub use dispatch::{FnListener, Listener, ListenerId};
pub use error::{Error, Result};
pub use event::{decode, Event, Message};
pub use isc_ring::Uid;
pub use transport::Transport;

/// The simulated transport: host userspace drivers for development and tests.
pub use isc_transport_sim as sim;
