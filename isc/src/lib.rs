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
//!
//! # Concurrency
//!
//! A [`ChannelHandle`] is cheap to clone and usable from any number of
//! threads and tasks at once:
//!
//! - **Calls are pipelined.** Each caller reserves a ring slot, publishes
//!   its request and waits for *its own* completion; up to the ring's depth
//!   of calls (and sends) are in flight together. The ring lock is held
//!   only to push, publish and drain, never while waiting. Whoever drains
//!   completions hands each to its caller; one caller at a time leads (on
//!   the simulated transport it sleeps on the completion doorbell, on the
//!   device it makes the KICK, and the driver runs in its thread), the
//!   others park until their reply is handed over.
//! - **Doorbells are combined.** Messages published while a KICK runs are
//!   served by the next KICK of the same leader, so one system call serves
//!   every queued call; [`call_batch`](ChannelHandle::call_batch) and
//!   concurrent [async calls](ChannelHandle::call_async) publish many
//!   requests at once and ring once.
//! - **Sends and calls interleave**: a one-way message's completion is
//!   counted ([`undelivered`](ChannelHandle::undelivered)), never mistaken
//!   for a reply. [`try_send`](ChannelHandle::try_send) never waits for
//!   another thread's call.
//! - **Timeouts** are per channel ([`ChannelBuilder::timeout`]) or per call
//!   ([`call_timeout`](ChannelHandle::call_timeout)); `Duration::MAX` means
//!   no limit. A call that times out (or a dropped call future) withdraws:
//!   its late reply is discarded, never handed to another caller. On the
//!   device a timeout cannot interrupt the driver's handler running inside
//!   the caller's own KICK.
//! - A call that completes without sleeping reads no clock, allocates
//!   nothing and takes no lock but the ring's.
//! - **Events** go either to listeners (on the dispatcher thread) or to
//!   one of the pull styles below, not both: while listeners are
//!   registered, pulling fails with [`Error::ListenersActive`]. A listener
//!   that panics is caught and counted
//!   ([`listener_panics`](ChannelHandle::listener_panics)); delivery goes on.
//! - **Closing** ([`Channel::close`] or drop) waits for the listener
//!   callback running at that moment (if any) to return, and wakes every
//!   blocked call, which then fails with [`Error::Closed`].
//!
//! # Calling styles
//!
//! A blocking call, from any thread; many threads may call at once:
//!
//! ```
//! # use isc::{Channel, Transport, Uid};
//! # use std::sync::Arc;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc1"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc1")).transport(Transport::sim(&host)).open()?;
//! let mut reply = [0u8; 64];
//! let r = channel.call(b"abc", &mut reply)?; // the echo driver reverses
//! assert_eq!((r.rc, &reply[..r.len]), (3, &b"cba"[..]));
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         let h = channel.handle();
//!         s.spawn(move || assert_eq!(h.call_vec(b"xy").unwrap(), (2, b"yx".to_vec())));
//!     }
//! });
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! A batch: one publish and one doorbell for everything that fits, one
//! result per request:
//!
//! ```
//! # use isc::{Channel, Transport, Uid};
//! # use std::sync::Arc;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc2"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc2")).transport(Transport::sim(&host)).open()?;
//! let replies = channel.call_batch(&[b"ab", b"cde"])?;
//! assert_eq!(replies[0].as_ref().unwrap(), &(2, b"ba".to_vec()));
//! assert_eq!(replies[1].as_ref().unwrap(), &(3, b"edc".to_vec()));
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! Async (feature `tokio`): many futures in flight share the batching;
//! dropping one withdraws its call (see `examples/async_calls.rs`):
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # {
//! # use isc::{Channel, Transport, Uid};
//! # use std::sync::Arc;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc3"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc3")).transport(Transport::sim(&host)).open().unwrap();
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let (a, b) = tokio::join!(channel.call_async(b"one"), channel.call_async(b"two"));
//! assert_eq!(a?, (3, b"eno".to_vec()));
//! assert_eq!(b?, (3, b"owt".to_vec()));
//! # Ok::<(), isc::Error>(())
//! # }).unwrap();
//! # }
//! ```
//!
//! # Receiving styles
//!
//! Each example below receives the echo driver's `hello`, posted when it
//! binds. A listener, on the dispatcher thread:
//!
//! ```
//! # use isc::{Channel, ChannelHandle, FnListener, Transport, Uid};
//! # use std::sync::{Arc, mpsc};
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc4"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc4")).transport(Transport::sim(&host)).open()?;
//! let (tx, rx) = mpsc::channel();
//! let tx = std::sync::Mutex::new(tx);
//! channel.add_listener(FnListener(move |_: &ChannelHandle, msg: &[u8]| {
//!     tx.lock().unwrap().send(msg.to_vec()).unwrap();
//!     0 // the result code written back into the message's slot
//! }))?;
//! assert_eq!(rx.recv().unwrap(), b"hello");
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! `recv`, blocking with a timeout:
//!
//! ```
//! # use isc::{Channel, Event, Transport, Uid};
//! # use std::{sync::Arc, time::Duration};
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc5"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc5")).transport(Transport::sim(&host)).open()?;
//! assert_eq!(channel.recv(Duration::from_secs(5))?, Event::Bound);
//! match channel.recv(Duration::from_secs(5))? {
//!     Event::Message(m) => assert_eq!(m.bytes(), b"hello"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! The `events()` iterator (each item waits up to the channel's timeout):
//!
//! ```
//! # use isc::{Channel, Event, Transport, Uid};
//! # use std::sync::Arc;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc6"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc6")).transport(Transport::sim(&host)).open()?;
//! let first_two: Vec<Event> = channel.events().take(2).collect::<Result<_, _>>()?;
//! assert_eq!(first_two[0], Event::Bound);
//! assert!(matches!(&first_two[1], Event::Message(m) if m.bytes() == b"hello"));
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! Your own loop on the fd (`AsFd`; here `poll`): drain with `try_recv`
//! until `None`, which arms the fd, then wait for it:
//!
//! ```
//! # use isc::{Channel, Event, Transport, Uid};
//! # use std::sync::Arc;
//! use std::os::fd::AsFd;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc7"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc7")).transport(Transport::sim(&host)).open()?;
//! let mut got = Vec::new();
//! while got.len() < 2 {
//!     while let Some(event) = channel.try_recv()? {
//!         got.push(event);
//!     }
//!     let mut fds = [nix::poll::PollFd::new(channel.as_fd(), nix::poll::PollFlags::POLLIN)];
//!     nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap();
//! }
//! assert!(matches!(&got[1], Event::Message(m) if m.bytes() == b"hello"));
//! # Ok::<(), isc::Error>(())
//! ```
//!
//! An async stream (feature `tokio`):
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # {
//! # use isc::{Channel, Event, Transport, Uid};
//! # use std::sync::Arc;
//! use futures::StreamExt;
//! # let host = Arc::new(isc::sim::SimHost::new().unwrap());
//! # host.register(u32::from_le_bytes(*b"doc8"), Arc::new(isc::sim::sample::EchoDriver::new())).unwrap();
//! # let channel = Channel::builder(Uid::fourcc(*b"doc8")).transport(Transport::sim(&host)).open().unwrap();
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let mut events = channel.event_stream()?;
//! assert_eq!(events.next().await.unwrap()?, Event::Bound);
//! assert!(matches!(events.next().await.unwrap()?, Event::Message(m) if m.bytes() == b"hello"));
//! # Ok::<(), isc::Error>(())
//! # }).unwrap();
//! # }
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
#[cfg(feature = "test-util")]
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

/// The simulated transport: host userspace drivers for development and
/// tests (feature `test-util`; or depend on `isc-transport-sim` directly).
#[cfg(feature = "test-util")]
pub use isc_transport_sim as sim;

/// The crate typed messages are built with ([`ChannelHandle::call_as`],
/// [`decode`]): derive its traits through this re-export to match the
/// version this crate uses.
pub use zerocopy;
