//! The user side of a channel: the mapped region, the doorbells, and the
//! two ring views the user owns (`u2k` producer, `k2u` consumer).
//!
//! An endpoint is the same type whether it was bound in-process
//! ([`SimHost::bind`](crate::SimHost::bind)) or through a Unix socket
//! ([`SimClient::connect`](crate::SimClient::connect)).
//!
//! # Doorbells
//!
//! | doorbell | rung by | means | waited on by |
//! |---|---|---|---|
//! | driver | user ([`Link::kick`]) | `u2k` has messages / `k2u` has space | the service thread |
//! | user ([`AsFd`]) | host | `k2u` has posts | [`Link::wait_posts`] (a dispatcher, epoll) |
//! | completion | host | `u2k` slots were released | [`Link::wait_completion`] (callers) |
//!
//! Each is rung only when the ring's wake-up protocol says the other side
//! is asleep ([`NeedsWake`](isc_ring::NeedsWake)); a busy channel makes no
//! system call per message. [`UserTx::publish`] and [`UserRx::release`] do
//! this bookkeeping; code using the raw views must ring [`Link::kick`]
//! itself when `publish` or `release` report a wake-up is needed.
//!
//! # Spinning before sleeping
//!
//! Waiting for a reply first re-reads the ring for a short while (default
//! [`DEFAULT_SPIN`](crate::DEFAULT_SPIN): a brief busy-loop, then yielding
//! the CPU between checks), and only then sleeps on the doorbell. A round
//! trip through an eventfd wake-up costs several microseconds per side; the
//! host's service thread usually answers well within the spin window, so a
//! blocking call costs no wake-up. Set the spin to zero to sleep at once.

use crate::error::{Fault, SimError, Uid};
use crate::host::DEFAULT_SPIN;
use crate::sys::{fired, remaining, wait_bell, Doorbell, Region, SpinWait, Woke};
use crate::wire::BIND_FDS;
use isc_ring::abi::{slot_flags, BindRequest, BindResponse};
use isc_ring::{ChannelLayout, Consumer, Producer, RingError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What both halves of an endpoint share: the mapping, the doorbells and
/// the connection to the host. Dropping the last reference unmaps the
/// region and closes the connection, which is the user's unbind.
pub struct Link {
    uid: u32,
    layout: ChannelLayout,
    response: BindResponse,
    driver_bell: Doorbell,
    user_bell: Doorbell,
    completion_bell: Doorbell,
    conn: OwnedFd,
    /// Declared last: the views (in `UserTx`/`UserRx`, which hold this
    /// `Link` through an `Arc`) point into it.
    region: Region,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("uid", &Uid(self.uid))
            .field("response", &self.response)
            .finish()
    }
}

impl Link {
    /// The channel's UID.
    pub fn uid(&self) -> Uid {
        Uid(self.uid)
    }

    /// The rings' geometry.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// The bind response (`bound` is 1 if a driver was registered at bind
    /// time; its `BOUND` message follows in `k2u`).
    pub fn response(&self) -> BindResponse {
        self.response
    }

    /// Rings the driver doorbell: the host drains `u2k` (the device's
    /// `ISC_IOC_KICK`). Only needed when `publish` reported a wake-up, or
    /// after `release` of `k2u` reported one.
    pub fn kick(&self) -> Result<(), SimError> {
        self.driver_bell.ring()
    }

    /// Sleeps until the host rings the user doorbell (`k2u` has posts), or
    /// `timeout` passes (`Ok(false)`). [`SimError::Closed`] if the host went
    /// away. Use it between `Consumer::prepare_wait` and `finish_wait`.
    pub fn wait_posts(&self, timeout: Option<Duration>) -> Result<bool, SimError> {
        woke(wait_bell(&self.user_bell, self.conn.as_fd(), timeout)?)
    }

    /// Sleeps until the host rings the completion doorbell (`u2k` slots
    /// released), or `timeout` passes (`Ok(false)`). [`SimError::Closed`] if
    /// the host went away. Use it between `Producer::prepare_wait*` and
    /// `finish_wait`. The doorbell is a counter drained by whichever waiter
    /// wakes: with several waiting threads, let one wait and wake the others.
    pub fn wait_completion(&self, timeout: Option<Duration>) -> Result<bool, SimError> {
        woke(wait_bell(
            &self.completion_bell,
            self.conn.as_fd(),
            timeout,
        )?)
    }

    /// The completion doorbell: readable when the host released `u2k`
    /// slots while the user was waiting (after `Producer::prepare_wait*`).
    /// For an async runtime; drain it with [`Link::wait_completion`] (a zero
    /// timeout) after it fires.
    pub fn completion_fd(&self) -> BorrowedFd<'_> {
        self.completion_bell.as_fd()
    }

    /// True once the host has closed the channel (it shut down, the server
    /// died, or it tore the channel down after a fault).
    pub fn is_closed(&self) -> bool {
        let mut fds = [PollFd::new(self.conn.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) && fired(&fds[0])
    }

    /// Start of the mapped region (page-aligned), for tools that inspect it.
    /// The bytes are shared with the host: access them only atomically or
    /// by copy, never through a Rust reference.
    pub fn region_ptr(&self) -> NonNull<u8> {
        self.region.ptr()
    }

    /// Length of the mapped region in bytes.
    pub fn region_len(&self) -> usize {
        self.region.len()
    }
}

/// How long dropping a [`Link`] waits for the host to tear the channel down.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Drop for Link {
    /// Ends the binding like closing the device does: tells the host, then
    /// waits (at most 2 s) until it has unbound the driver and freed the
    /// UID, so the UID can be bound again at once. The wait includes a
    /// driver callback still running for this channel. Not on a host's
    /// service thread (a driver callback dropping an endpoint), where the
    /// host could not proceed until the callback returns.
    fn drop(&mut self) {
        use nix::sys::socket::{shutdown, Shutdown};
        use std::os::fd::AsRawFd;
        if crate::host::in_service() {
            return;
        }
        if shutdown(self.conn.as_raw_fd(), Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(self.conn.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, crate::sys::poll_timeout(Some(left))) {
                Err(nix::errno::Errno::EINTR) => continue,
                // Anything readable now is the host's end closing (it sends
                // nothing after the handshake), or the wait is over.
                _ => return,
            }
        }
    }
}

impl AsFd for Link {
    /// The user doorbell: readable when the host posted to `k2u` while the
    /// user was waiting. For epoll; drain it with [`Link::wait_posts`] (a
    /// zero timeout) after it fires.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.user_bell.as_fd()
    }
}

fn woke(w: Woke) -> Result<bool, SimError> {
    match w {
        Woke::Rung => Ok(true),
        Woke::Timeout => Ok(false),
        Woke::Hangup => Err(SimError::Closed),
    }
}

/// The result of a [`UserTx::call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallReply {
    /// The driver's result code.
    pub rc: i32,
    /// Length of the reply the driver left in place (bytes beyond the
    /// caller's buffer were not copied).
    pub len: usize,
}

/// The sending half of an endpoint: the `u2k` producer.
pub struct UserTx {
    tx: Producer,
    spin: Duration,
    /// Declared after the view so the view is dropped first.
    link: Arc<Link>,
}

impl fmt::Debug for UserTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTx").field("link", &self.link).finish()
    }
}

impl UserTx {
    /// The shared part (doorbells, mapping, connection).
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The raw `u2k` producer, for batching and in-place writes. After its
    /// `publish`, call [`Link::kick`] if it reports a wake-up is needed (or
    /// use [`UserTx::publish`]).
    pub fn producer_mut(&mut self) -> &mut Producer {
        &mut self.tx
    }

    /// How long to spin before sleeping when waiting (default [`DEFAULT_SPIN`]).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Copies `msg` into the next slot without publishing it; returns its
    /// sequence number. [`SimError::Full`] / [`SimError::TooLarge`] leave
    /// the ring unchanged.
    pub fn send(&mut self, msg: &[u8]) -> Result<u32, SimError> {
        Ok(self.tx.push(msg, slot_flags::KIND_MSG)?)
    }

    /// Publishes every sent message at once, kicking the host only if its
    /// service thread is asleep.
    pub fn publish(&mut self) -> Result<(), SimError> {
        if self.tx.publish().is_needed() {
            self.link.kick()?;
        }
        Ok(())
    }

    /// Waits until the host released message `seq` (its reply and rc are
    /// then readable with `Producer::completion`). `Ok(false)` on timeout.
    pub fn wait_released(&mut self, seq: u32, timeout: Option<Duration>) -> Result<bool, SimError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spin = SpinWait::new(self.spin);
        loop {
            self.tx.free_slots()?;
            if !self.tx.is_unreleased(seq) {
                return Ok(true);
            }
            if !spin.again() {
                break;
            }
        }
        loop {
            if self.tx.prepare_wait_for_release(seq) {
                let r = self.link.wait_completion(remaining(deadline));
                self.tx.finish_wait();
                let rung = r?;
                self.tx.free_slots()?;
                if !self.tx.is_unreleased(seq) {
                    return Ok(true);
                }
                if !rung {
                    return Ok(false);
                }
            } else {
                // Released meanwhile, or the ring is corrupt (reported here).
                self.tx.free_slots()?;
                if !self.tx.is_unreleased(seq) {
                    return Ok(true);
                }
            }
        }
    }

    /// Waits until `u2k` has a free slot. `Ok(false)` on timeout.
    pub fn wait_space(&mut self, timeout: Option<Duration>) -> Result<bool, SimError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spin = SpinWait::new(self.spin);
        loop {
            if self.tx.free_slots()? > 0 {
                return Ok(true);
            }
            if !spin.again() {
                break;
            }
        }
        loop {
            if self.tx.prepare_wait() {
                let r = self.link.wait_completion(remaining(deadline));
                self.tx.finish_wait();
                let rung = r?;
                if self.tx.free_slots()? > 0 {
                    return Ok(true);
                }
                if !rung {
                    return Ok(false);
                }
            } else if self.tx.free_slots()? > 0 {
                return Ok(true);
            }
        }
    }

    /// A blocking call: sends `msg`, waits for the driver's `got` to handle
    /// it, copies the in-place reply into `reply` (truncating) and returns
    /// the rc. [`SimError::NotBound`] if no driver was bound to handle it;
    /// [`SimError::Timeout`] if `timeout` passed (the message stays queued
    /// and its completion is skipped by later calls).
    ///
    /// Completions of earlier messages not yet collected are discarded.
    pub fn call(
        &mut self,
        msg: &[u8],
        reply: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<CallReply, SimError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let seq = loop {
            match self.tx.push(msg, slot_flags::KIND_MSG) {
                Ok(seq) => break seq,
                Err(RingError::Full) => {
                    self.publish()?;
                    if !self.wait_space(remaining(deadline))? {
                        return Err(SimError::Timeout);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.publish()?;
        if !self.wait_released(seq, remaining(deadline))? {
            return Err(SimError::Timeout);
        }
        while let Some(done) = self.tx.completion()? {
            if done.seq() != seq {
                continue;
            }
            if done.flags() & slot_flags::NOT_DELIVERED != 0 {
                return Err(SimError::NotBound);
            }
            done.read_reply(reply);
            return Ok(CallReply {
                rc: done.rc(),
                len: done.reply_len(),
            });
        }
        Err(Fault::LostCompletion { seq }.into())
    }
}

/// What [`UserRx::recv`] took from `k2u`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The channel is bound: a driver is there to handle calls.
    Bound,
    /// The driver went away: calls now fail with [`SimError::NotBound`].
    Unbound,
    /// A post of `len` bytes (copied into the caller's buffer, truncated to it).
    Post {
        /// Length of the post.
        len: usize,
    },
}

/// The receiving half of an endpoint: the `k2u` consumer.
pub struct UserRx {
    rx: Consumer,
    spin: Duration,
    /// Declared after the view so the view is dropped first.
    link: Arc<Link>,
}

impl fmt::Debug for UserRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRx").field("link", &self.link).finish()
    }
}

impl UserRx {
    /// The shared part (doorbells, mapping, connection).
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The raw `k2u` consumer, for listeners that complete posts with their
    /// own rc. After its `release`, call [`Link::kick`] if it reports a
    /// wake-up is needed (or use [`UserRx::release`]).
    pub fn consumer_mut(&mut self) -> &mut Consumer {
        &mut self.rx
    }

    /// How long to spin before sleeping when waiting (default [`DEFAULT_SPIN`]).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Hands completed slots back to the host, kicking it if it waits for
    /// space (it may hold `BOUND`/`UNBOUND` messages for a full ring).
    pub fn release(&mut self) -> Result<(), SimError> {
        if self.rx.release().is_needed() {
            self.link.kick()?;
        }
        Ok(())
    }

    /// Takes the next entry of `k2u`, if any: copies a post into `buf`,
    /// completes the slot with rc 0 and releases it.
    ///
    /// The release skips the fence of the wake-up check
    /// (`Consumer::release_deferred`); the check is paid once, when the ring
    /// is found empty (the end of a burst).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<Event>, SimError> {
        let Some(inc) = self.rx.peek()? else {
            if self.rx.flush_wake().is_needed() {
                self.link.kick()?;
            }
            return Ok(None);
        };
        let flags = inc.flags();
        let event = match flags {
            slot_flags::KIND_MSG => {
                inc.read(buf);
                Event::Post { len: inc.len() }
            }
            slot_flags::KIND_BOUND => Event::Bound,
            slot_flags::KIND_UNBOUND => Event::Unbound,
            _ => {
                return Err(Fault::SlotFlags {
                    seq: inc.seq(),
                    flags,
                }
                .into())
            }
        };
        inc.complete_rc(0);
        if self.rx.release_deferred().is_needed() {
            self.link.kick()?;
        }
        Ok(Some(event))
    }

    /// Like [`UserRx::try_recv`], waiting up to `timeout` (`None`: forever)
    /// for an entry; `Ok(None)` on timeout. Entries already in the ring are
    /// returned even after the host closed the channel; then
    /// [`SimError::Closed`].
    pub fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, SimError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spin = SpinWait::new(self.spin);
        loop {
            if let Some(ev) = self.try_recv(buf)? {
                return Ok(Some(ev));
            }
            if !spin.again() {
                break;
            }
        }
        loop {
            if let Some(ev) = self.try_recv(buf)? {
                return Ok(Some(ev));
            }
            if !self.rx.prepare_wait() {
                continue;
            }
            let r = self.link.wait_posts(remaining(deadline));
            self.rx.finish_wait();
            match r {
                Ok(true) => {}
                Ok(false) => return self.try_recv(buf),
                Err(e) => return self.try_recv(buf)?.map_or(Err(e), |ev| Ok(Some(ev))),
            }
        }
    }
}

impl AsFd for UserRx {
    /// The user doorbell (see [`Link`]'s `AsFd`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }
}

/// A bound user endpoint: one channel's region, doorbells and ring views.
///
/// Dropping it (both halves, after [`UserEndpoint::split`]) unbinds: the
/// host sees the connection close and runs the driver's `unbind`.
#[derive(Debug)]
pub struct UserEndpoint {
    tx: UserTx,
    rx: UserRx,
}

impl UserEndpoint {
    /// Builds an endpoint from a bind response and the descriptors of the
    /// handshake (region, driver, user and completion doorbells), checking
    /// everything the host handed over against the request.
    pub(crate) fn from_parts(
        req: &BindRequest,
        resp: BindResponse,
        fds: [OwnedFd; BIND_FDS],
        conn: OwnedFd,
    ) -> Result<Self, SimError> {
        let layout = ChannelLayout::from_request(req)?;
        if resp.region_size != u64::from(layout.region_bytes())
            || resp.u2k_offset != u64::from(layout.u2k_offset())
            || resp.k2u_offset != u64::from(layout.k2u_offset())
            || resp.bound > 1
            || resp.reserved != 0
        {
            return Err(crate::error::WireError::Response.into());
        }
        let [region, driver_bell, user_bell, completion_bell] = fds;
        let region = Region::open(region, layout.region_bytes() as usize)?;
        let base = region.ptr();
        let u2k = layout.u2k();
        let k2u = layout.k2u();
        // SAFETY: both rings lie within the mapping (offsets and lengths
        // checked against the request's layout, and the region's size
        // against the response); the mapping lives in the `Link` that both
        // halves hold until after their view is dropped; the user makes one
        // Producer for u2k and one Consumer for k2u. Offsets are page
        // multiples of a page-aligned mapping.
        let (tx, rx) = unsafe {
            (
                Producer::new(
                    base.add(layout.u2k_offset() as usize),
                    u2k.ring_bytes() as usize,
                )?,
                Consumer::new(
                    base.add(layout.k2u_offset() as usize),
                    k2u.ring_bytes() as usize,
                )?,
            )
        };
        if tx.msz() != u2k.msz()
            || tx.slot_count() != u2k.slot_count()
            || rx.msz() != k2u.msz()
            || rx.slot_count() != k2u.slot_count()
        {
            return Err(Fault::Region("ring headers do not match the request").into());
        }
        let link = Arc::new(Link {
            uid: req.uid,
            layout,
            response: resp,
            driver_bell: Doorbell::from_fd(driver_bell),
            user_bell: Doorbell::from_fd(user_bell),
            completion_bell: Doorbell::from_fd(completion_bell),
            conn,
            region,
        });
        Ok(Self {
            tx: UserTx {
                tx,
                spin: DEFAULT_SPIN,
                link: Arc::clone(&link),
            },
            rx: UserRx {
                rx,
                spin: DEFAULT_SPIN,
                link,
            },
        })
    }

    /// Splits into the sending and receiving halves (e.g. callers behind a
    /// mutex, and a dispatcher thread). The channel stays bound until both
    /// are dropped.
    pub fn split(self) -> (UserTx, UserRx) {
        (self.tx, self.rx)
    }

    /// The sending half.
    pub fn tx(&mut self) -> &mut UserTx {
        &mut self.tx
    }

    /// The receiving half.
    pub fn rx(&mut self) -> &mut UserRx {
        &mut self.rx
    }

    /// The shared part (doorbells, mapping, connection).
    pub fn link(&self) -> &Arc<Link> {
        &self.tx.link
    }

    /// The channel's UID.
    pub fn uid(&self) -> Uid {
        self.tx.link.uid()
    }

    /// Sets the spin time of both halves (see [`UserTx::set_spin`]).
    pub fn set_spin(&mut self, spin: Duration) {
        self.tx.set_spin(spin);
        self.rx.set_spin(spin);
    }

    /// See [`UserTx::call`].
    pub fn call(
        &mut self,
        msg: &[u8],
        reply: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<CallReply, SimError> {
        self.tx.call(msg, reply, timeout)
    }

    /// See [`UserRx::recv`].
    pub fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, SimError> {
        self.rx.recv(buf, timeout)
    }
}

impl AsFd for UserEndpoint {
    /// The user doorbell (see [`Link`]'s `AsFd`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tx.link.as_fd()
    }
}
