//! ISC entirely in userspace: the device protocol over a `memfd` region,
//! `eventfd` doorbells and a simulated driver.
//!
//! The simulated transport follows the `/dev/isc` protocol step for step, so
//! that the facade and its tests run unchanged on either transport, and an
//! application can be developed against a userspace model of its driver:
//!
//! | device | simulation |
//! |---|---|
//! | `open` + `ISC_IOC_BIND` | [`SimHost::bind`] (in-process) or [`SimClient::connect`] (over a Unix socket) |
//! | bind checks and errnos | the same: [`isc_ring::ChannelLayout::from_request`] |
//! | `mmap` of the region | a sealed `memfd` mapped by both sides |
//! | `ISC_IOC_KICK` | [`Link::kick`] rings the driver doorbell; a service thread drains `u2k` |
//! | `poll` on the fd | [`Link`]'s `AsFd`: the user doorbell (`k2u` has posts) |
//! | `close` / process death → `unbind` | the connection's hang-up → `unbind` |
//! | `isc_register` / `isc_unregister` | [`SimHost::register`] / [`SimHost::unregister`] |
//! | `isc_post` (never blocks, `-EAGAIN` when full) | [`Handle::post`] ([`PostError::Full`]) |
//!
//! # Example
//!
//! ```
//! use isc_ring::abi::{BindRequest, RingRequest, ABI_VERSION};
//! use isc_transport_sim::{sample::EchoDriver, Event, SimHost, Uid};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let host = SimHost::new()?;
//! let uid = Uid::fourcc(*b"sam0").raw();
//! host.register(uid, Arc::new(EchoDriver::new()))?;
//!
//! let req = BindRequest {
//!     abi_version: ABI_VERSION,
//!     uid,
//!     u2k: RingRequest { msz: 64, num: 8 },
//!     k2u: RingRequest { msz: 64, num: 8 },
//!     ..Default::default()
//! };
//! let mut ep = host.bind(&req)?;
//! let t = Some(Duration::from_secs(10));
//! let mut buf = [0u8; 64];
//! assert_eq!(ep.recv(&mut buf, t)?, Some(Event::Bound));
//! assert_eq!(ep.recv(&mut buf, t)?, Some(Event::Post { len: 5 }));
//! assert_eq!(&buf[..5], b"hello");
//!
//! let reply = ep.call(b"abc", &mut buf, t)?;
//! assert_eq!((reply.rc, &buf[..reply.len]), (3, &b"cba"[..]));
//! # Ok::<(), isc_transport_sim::SimError>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod client;
mod endpoint;
mod error;
mod host;
mod pool;
pub mod sample;
mod sys;
pub mod wire;

pub use client::{SimClient, DEFAULT_CONNECT_TIMEOUT};
pub use endpoint::{CallReply, Event, Link, UserEndpoint, UserRx, UserTx};
pub use error::{Fault, PostError, SimError, Uid, WireError};
pub use host::{
    default_service_threads, Handle, HostStats, Message, SimDriver, SimHost, DEFAULT_SPIN,
};
pub use pool::MAX_EXTRA_SERVICE_THREADS;

// The threading contract the facade relies on, checked at compile time:
// the host and driver handles are shared across threads; each endpoint half
// moves to the thread that uses it.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<SimHost>();
    send_sync::<Handle>();
    send_sync::<Link>();
    send::<UserTx>();
    send::<UserRx>();
    send::<UserEndpoint>();
};
