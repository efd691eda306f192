//! The shared-memory ring at the heart of ISC.
//!
//! A channel between a user application and a kernel driver is one mapped
//! region holding two single-producer single-consumer rings: `u2k` (the user
//! produces) and `k2u` (the kernel produces). This crate owns their layout
//! ([`abi`]), their geometry ([`RingConfig`], [`ChannelLayout`]) and their
//! algorithms ([`Producer`], [`Consumer`]). It is `no_std`, allocates nothing,
//! and treats the peer as hostile: whatever bytes the other side writes into
//! the region, a view never reads or writes outside the ring and never panics;
//! it reports [`RingError::Corrupt`].
//!
//! # Protocol
//!
//! - The producer writes slots, then publishes them with one Release store of
//!   `head`; the consumer loads `head` with Acquire, copies each message out,
//!   completes the slot in place (result code and reply), and releases a batch
//!   with one Release store of `tail`; the producer loads `tail` with Acquire
//!   and reads the completions. A call needs no second ring.
//! - Wake-ups cost no syscall while both sides are busy: a side about to sleep
//!   sets its `*_WAITING` flag, fences (SeqCst) and re-checks
//!   ([`Consumer::prepare_wait`], [`Producer::prepare_wait`]); the other side
//!   fences after publishing or releasing and reports [`NeedsWake`] only if the
//!   flag is set.
//! - That fence need not be paid per message: [`Producer::publish_deferred`]
//!   and [`Consumer::release_deferred`] are a bare Release store plus a read
//!   of the flag (catching a peer that has been asleep for a while), and owe
//!   the fenced check to one [`Producer::flush_wake`] /
//!   [`Consumer::flush_wake`] at the end of the burst. `prepare_wait` settles
//!   an owed check itself and refuses to sleep while a doorbell is owed, so
//!   a side never sleeps on a wake-up it owes its peer.
//! - [`Producer::write_chunk`] and [`Consumer::read_chunk`] hand out many
//!   consecutive slots for one check of the peer's index; one-way messages
//!   are [consumed](Incoming::consume) without writing a completion.
//!
//! # Example
//!
//! ```
//! use isc_ring::{Consumer, Producer, RingConfig};
//! #[repr(C, align(4096))]
//! struct Region([u8; 4096]);
//! let mut region = Box::new(Region([0; 4096]));
//!
//! let cfg = RingConfig::new(16, 4).unwrap();
//! cfg.init(&mut region.0).unwrap();
//! let ptr = std::ptr::NonNull::new(region.0.as_mut_ptr()).unwrap();
//! // SAFETY: `region` outlives both views; one producer, one consumer.
//! let mut tx = unsafe { Producer::new(ptr, 4096) }.unwrap();
//! let mut rx = unsafe { Consumer::new(ptr, 4096) }.unwrap();
//!
//! for word in [&b"one"[..], b"two", b"three"] {
//!     tx.push(word, 0).unwrap();
//! }
//! assert!(!tx.publish().is_needed()); // the consumer is not asleep
//!
//! let mut buf = [0u8; 16];
//! let mut got = Vec::new();
//! while let Some(msg) = rx.peek().unwrap() {
//!     let n = msg.read(&mut buf);
//!     got.push(buf[..n].to_vec());
//!     msg.complete_rc(0);
//! }
//! let _ = rx.release();
//! assert_eq!(got, [&b"one"[..], b"two", b"three"]);
//! ```
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod abi;
mod config;
mod consumer;
mod error;
mod mem;
mod producer;
mod sync;
mod uid;
mod view;

#[cfg(feature = "layout-bench")]
pub use config::BENCH_SLOT_ALIGNS;
pub use config::{ChannelLayout, RingConfig};
pub use consumer::{Consumer, Incoming, ReadChunk};
pub use error::{BindError, ConfigError, Corruption, RingError};
pub use producer::{Completion, Outgoing, Producer, WriteChunk};
pub use uid::{ParseUidError, Uid};
pub use view::NeedsWake;

/// The modelled shared memory the loom tests build rings in.
#[cfg(loom)]
pub use mem::Mem as ModeledMem;
