//! What the facade needs from a transport, and nothing more.
//!
//! A transport binds a UID and hands back the two ring views (the facade owns
//! them, each keeping the mapping alive) plus a [`Link`]: the doorbells.
//! The binding ends when all three are dropped. The
//! facade runs the ring protocol itself, identically on every transport.

use crate::Result;
use isc_ring::{Consumer, Producer};
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// A ring view that keeps the memory it points into alive.
pub(crate) trait View<T>: Send {
    fn view(&mut self) -> &mut T;
}

/// A bound channel as a transport delivers it.
pub(crate) struct Bound {
    /// The user-to-kernel ring (we produce).
    pub u2k: Box<dyn View<Producer>>,
    /// The kernel-to-user ring (we consume).
    pub k2u: Box<dyn View<Consumer>>,
    /// True if the driver was registered at bind time.
    pub bound: bool,
    /// The doorbells.
    pub link: Box<dyn Link>,
}

/// The transport-specific half of a channel.
pub(crate) trait Link: Send + Sync {
    /// True if every publish must be followed by a kick (the device drains
    /// the ring only when kicked); false if a kick is needed only when the
    /// ring reports [`isc_ring::NeedsWake`] (a live service thread drains it).
    fn kick_always(&self) -> bool;

    /// Tells the driver side that `u2k` has new messages or that `k2u` slots
    /// were released. On the device this processes the messages before
    /// returning.
    fn kick(&self) -> Result<()>;

    /// Blocks until the driver side may have posted, or `timeout`.
    fn wait_posts(&self, timeout: Duration) -> Result<()>;

    /// Blocks until the driver side may have released `u2k` slots, or `timeout`.
    fn wait_completion(&self, timeout: Duration) -> Result<()>;

    /// False once the transport knows the other side is gone for good.
    fn is_alive(&self) -> bool;

    /// Drops any pending doorbell tokens of `posts_fd` without blocking.
    fn clear_posts(&self);

    /// The fd that becomes readable when posts arrive (for epoll).
    fn posts_fd(&self) -> BorrowedFd<'_>;

    /// The fd that becomes readable when `u2k` slots were released while
    /// the producer waited, if the transport has one (the device completes
    /// calls during KICK and has none).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn completion_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Drops pending tokens of `completion_fd` without blocking.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn clear_completion(&self);
}
