//! Channels: open, call, send, receive, close.

use crate::dispatch::{Listener, ListenerId, Listeners};
use crate::event::{Event, Message};
use crate::link::{Bound, Link, View};
use crate::transport::Transport;
use crate::{Error, Result, Uid};
use crossbeam_utils::Backoff;
use isc_ring::abi::{slot_flags, BindRequest, RingRequest};
use isc_ring::{ChannelLayout, Consumer, Producer};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// Longest single sleep of a blocked operation: how often it re-checks for
/// close and for a transport that died, so nothing blocks forever.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Default time a call or a blocking send waits before [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of a [`call`](ChannelHandle::call): the driver's result code
/// and the length of its reply, written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The driver's result code (negative values are data too, e.g. `-EINVAL`).
    pub rc: i32,
    /// Bytes of reply written into the caller's buffer.
    pub len: usize,
}

/// Configures and opens a [`Channel`].
///
/// ```no_run
/// use isc::{Channel, Transport, Uid};
/// let channel = Channel::builder(Uid::fourcc(*b"sam0"))
///     .u2k(12, 8)
///     .k2u(12, 64)
///     .transport(Transport::device())
///     .open()?;
/// # Ok::<(), isc::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct ChannelBuilder {
    uid: Uid,
    u2k: RingRequest,
    k2u: RingRequest,
    transport: Option<Transport>,
    timeout: Duration,
}

impl ChannelBuilder {
    /// Message size and queue depth of the application-to-driver direction
    /// (default 64 bytes, 16 deep). The depth rounds up to a power of two.
    pub fn u2k(mut self, msz: u32, num: u32) -> Self {
        self.u2k = RingRequest { msz, num };
        self
    }

    /// Message size and queue depth of the driver-to-application direction
    /// (default 64 bytes, 16 deep).
    pub fn k2u(mut self, msz: u32, num: u32) -> Self {
        self.k2u = RingRequest { msz, num };
        self
    }

    /// The transport to bind on (default: [`Transport::from_env`]).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long calls and blocking sends wait (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the sizes (the same rules on every transport), binds the
    /// UID and maps the channel.
    pub fn open(self) -> Result<Channel> {
        let req = BindRequest::new(self.uid.raw(), self.u2k, self.k2u);
        ChannelLayout::from_request(&req)?;
        let transport = match self.transport {
            Some(t) => t,
            None => Transport::from_env()?,
        };
        let bound = transport.bind(req)?;
        Ok(Channel {
            handle: ChannelHandle(Arc::new(Inner::new(self.uid, bound, self.timeout))),
        })
    }
}

/// An open channel to the driver bound to a UID.
///
/// `Channel` owns the binding: dropping it (or [`Channel::close`]) stops the
/// dispatcher, unbinds and unmaps. Everything else is on [`ChannelHandle`],
/// which `Channel` dereferences to and which can be cloned and shared with
/// other threads and with listeners.
#[derive(Debug)]
pub struct Channel {
    handle: ChannelHandle,
}

impl Channel {
    /// Starts configuring a channel to `uid`.
    pub fn builder(uid: Uid) -> ChannelBuilder {
        ChannelBuilder {
            uid,
            u2k: RingRequest { msz: 64, num: 16 },
            k2u: RingRequest { msz: 64, num: 16 },
            transport: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A shareable handle to this channel.
    pub fn handle(&self) -> ChannelHandle {
        self.handle.clone()
    }

    /// Stops the dispatcher, unbinds and unmaps. Blocked operations on
    /// handles return [`Error::Closed`] within a fraction of a second.
    pub fn close(self) {
        // Drop does the work.
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.handle.0.close();
    }
}

impl std::ops::Deref for Channel {
    type Target = ChannelHandle;
    fn deref(&self) -> &ChannelHandle {
        &self.handle
    }
}

/// A cheap, cloneable reference to an open [`Channel`], usable from any
/// thread. After the channel is closed every operation returns
/// [`Error::Closed`].
#[derive(Clone)]
pub struct ChannelHandle(pub(crate) Arc<Inner>);

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle")
            .field("uid", &self.0.uid)
            .field("bound", &self.is_bound())
            .field("closed", &self.0.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Receive state: the `k2u` consumer and a scratch buffer of `msz` bytes.
pub(crate) struct Rx {
    pub consumer: Box<dyn View<Consumer>>,
    pub buf: Vec<u8>,
    /// Set while the dispatcher delivers an event it took but has not yet
    /// consumed (listeners run without the lock): `recv` must keep out.
    pub dispatching: bool,
}

pub(crate) struct Inner {
    pub uid: Uid,
    u2k_msz: u32,
    k2u_msz: u32,
    timeout: Duration,
    // Each view keeps the mapping it points into alive; `close` takes all
    // three out, which ends the binding.
    tx: Mutex<Option<Box<dyn View<Producer>>>>,
    rx: Mutex<Option<Rx>>,
    link: RwLock<Option<Box<dyn Link>>>,
    bound: AtomicBool,
    pub closed: AtomicBool,
    pub listeners: Listeners,
    dispatcher: Mutex<Option<(JoinHandle<()>, ThreadId)>>,
    undelivered: AtomicU64,
}

/// The producer of a locked, still open channel.
fn producer(tx: &mut Option<Box<dyn View<Producer>>>) -> Result<&mut Producer> {
    tx.as_mut().map(|v| v.view()).ok_or(Error::Closed)
}

/// Locks a mutex, recovering it if a panicking listener poisoned it: the
/// state it guards is kept consistent by the ring, not by the lock holder.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn new(uid: Uid, mut bound: Bound, timeout: Duration) -> Self {
        let k2u_msz = bound.k2u.view().msz();
        Self {
            uid,
            u2k_msz: bound.u2k.view().msz(),
            k2u_msz,
            timeout,
            tx: Mutex::new(Some(bound.u2k)),
            rx: Mutex::new(Some(Rx {
                consumer: bound.k2u,
                buf: vec![0; k2u_msz as usize],
                dispatching: false,
            })),
            link: RwLock::new(Some(bound.link)),
            bound: AtomicBool::new(bound.bound),
            closed: AtomicBool::new(false),
            listeners: Listeners::default(),
            dispatcher: Mutex::new(None),
            undelivered: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the link, or fails with `Closed`.
    pub(crate) fn with_link<R>(&self, f: impl FnOnce(&dyn Link) -> Result<R>) -> Result<R> {
        let guard = self.link.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_deref() {
            Some(link) if !self.closed.load(Ordering::Acquire) => f(link),
            _ => Err(Error::Closed),
        }
    }

    /// After publishing: kick if the transport needs it or the peer sleeps.
    fn kick_after(&self, needs_wake: isc_ring::NeedsWake) -> Result<()> {
        self.with_link(|link| {
            if link.kick_always() || needs_wake.is_needed() {
                link.kick()
            } else {
                Ok(())
            }
        })
    }

    /// Fails with `Closed` once the channel is closed or its transport died.
    fn check_open(&self) -> Result<()> {
        self.with_link(|link| {
            if link.is_alive() {
                Ok(())
            } else {
                Err(Error::Closed)
            }
        })
    }

    pub(crate) fn set_bound(&self, bound: bool) {
        self.bound.store(bound, Ordering::Release);
    }

    /// Waits until `u2k` has room, publishing and kicking what is pending
    /// first so the peer can make progress.
    fn wait_for_space<'a>(
        &'a self,
        mut tx: MutexGuard<'a, Option<Box<dyn View<Producer>>>>,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, Option<Box<dyn View<Producer>>>>> {
        loop {
            let p = producer(&mut tx)?;
            if p.free_slots()? > 0 {
                return Ok(tx);
            }
            let wake = p.publish();
            self.kick_after(wake)?;
            let must_wait = p.prepare_wait();
            drop(tx);
            if must_wait {
                let left = self.time_left(deadline)?;
                self.with_link(|link| link.wait_completion(left.min(WAIT_SLICE)))?;
            }
            self.check_open()?;
            tx = lock(&self.tx);
            if let Ok(p) = producer(&mut tx) {
                p.finish_wait();
            }
        }
    }

    fn time_left(&self, deadline: Instant) -> Result<Duration> {
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout(self.timeout));
        }
        Ok(deadline - now)
    }

    /// Starts the dispatcher thread if it is not running.
    pub(crate) fn ensure_dispatcher(self: &Arc<Self>) -> Result<()> {
        let mut slot = lock(&self.dispatcher);
        if slot.is_some() {
            return Ok(());
        }
        let inner = Arc::clone(self);
        let thread = thread::Builder::new()
            .name(format!("isc-dispatch-{}", self.uid))
            .spawn(move || crate::dispatch::run(ChannelHandle(inner)))?;
        let id = thread.thread().id();
        *slot = Some((thread, id));
        Ok(())
    }

    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Listeners may hold handles to this channel: drop them to break the
        // cycle, and wake an idle dispatcher so it sees `closed`.
        self.listeners.clear();
        let dispatcher = lock(&self.dispatcher).take();
        if let Some((thread, id)) = dispatcher {
            // A listener may drop the channel from the dispatcher thread:
            // that thread exits by itself once the callback returns.
            if id != thread::current().id() {
                let _ = thread.join();
            }
        }
        // Dropping the views and the link ends the binding: the driver's
        // `unbind` runs and the region is unmapped.
        drop(lock(&self.tx).take());
        drop(lock(&self.rx).take());
        drop(self.link.write().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Copies the next event off `k2u` into `rx.buf` without consuming it
    /// (see [`Inner::finish_event`]); updates the bound state on control
    /// messages.
    pub(crate) fn take_event(&self, rx: &mut Rx) -> Result<Option<EventKind>> {
        let Some(incoming) = rx.consumer.view().peek()? else {
            return Ok(None);
        };
        let len = incoming.read(&mut rx.buf);
        Ok(Some(match incoming.flags() & slot_flags::KIND_MASK {
            slot_flags::KIND_BOUND => {
                self.set_bound(true);
                EventKind::Bound
            }
            slot_flags::KIND_UNBOUND => {
                self.set_bound(false);
                EventKind::Unbound
            }
            _ => EventKind::Message(len),
        }))
    }

    /// Consumes the event [`Inner::take_event`] returned, writing `rc` into
    /// its slot.
    pub(crate) fn finish_event(&self, rx: &mut Rx, rc: i32) -> Result<()> {
        if let Some(incoming) = rx.consumer.view().peek()? {
            incoming.complete_rc(rc);
        }
        Ok(())
    }

    /// Hands consumed `k2u` slots back, kicking if the driver waits for room.
    pub(crate) fn release(&self, rx: &mut Rx) -> Result<()> {
        let wake = rx.consumer.view().release();
        if wake.is_needed() {
            self.with_link(|link| link.kick())?;
        }
        Ok(())
    }

    pub(crate) fn rx(&self) -> MutexGuard<'_, Option<Rx>> {
        lock(&self.rx)
    }

    /// Sleeps until posts may have arrived (at most one wait slice),
    /// announcing the sleep to the driver side first.
    pub(crate) fn wait_posts(&self, rx: MutexGuard<'_, Option<Rx>>, limit: Duration) -> Result<()> {
        let mut rx = rx;
        let must_wait = match rx.as_mut() {
            Some(r) => r.consumer.view().prepare_wait(),
            None => return Err(Error::Closed),
        };
        drop(rx);
        if must_wait {
            self.with_link(|link| link.wait_posts(limit.min(WAIT_SLICE)))?;
            if let Some(r) = lock(&self.rx).as_mut() {
                r.consumer.view().finish_wait();
            }
        }
        self.check_open()
    }
}

/// What [`Inner::take_event`] found; a message's bytes are in `Rx::buf`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EventKind {
    Bound,
    Unbound,
    Message(usize),
}

impl ChannelHandle {
    /// The channel's UID.
    pub fn uid(&self) -> Uid {
        self.0.uid
    }

    /// True while a driver is bound (as of the last control message seen,
    /// or the bind itself).
    pub fn is_bound(&self) -> bool {
        self.0.bound.load(Ordering::Acquire)
    }

    /// Largest message the application can send.
    pub fn max_request(&self) -> u32 {
        self.0.u2k_msz
    }

    /// Largest message the driver can post.
    pub fn max_post(&self) -> u32 {
        self.0.k2u_msz
    }

    /// One-way messages that reached no driver (completed `NotBound`) so far.
    pub fn undelivered(&self) -> u64 {
        self.0.undelivered.load(Ordering::Relaxed)
    }

    /// Sends `request` and blocks until the driver has handled it; its reply
    /// (written in place by the driver) is copied into `reply` (truncated to
    /// its length).
    ///
    /// Safe to call from many threads at once: calls are serialised on the
    /// ring. Fails with [`Error::NotBound`] if no driver handled the message,
    /// [`Error::TooLarge`], [`Error::Timeout`], or [`Error::Closed`].
    pub fn call(&self, request: &[u8], reply: &mut [u8]) -> Result<Reply> {
        let inner = &*self.0;
        let max = inner.u2k_msz;
        if request.len() > max as usize {
            return Err(Error::TooLarge {
                len: request.len(),
                max,
            });
        }
        let deadline = Instant::now() + inner.timeout;
        let mut tx = inner.wait_for_space(lock(&inner.tx), deadline)?;
        let p = producer(&mut tx)?;
        let seq = p.push(request, slot_flags::KIND_MSG)?;
        let wake = p.publish();
        inner.kick_after(wake)?;
        let backoff = Backoff::new();
        loop {
            let p = producer(&mut tx)?;
            while let Some(done) = p.completion()? {
                let not_delivered = done.flags() & slot_flags::NOT_DELIVERED != 0;
                if done.seq() != seq {
                    // A one-way message sent earlier.
                    if not_delivered {
                        inner.undelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if not_delivered {
                    return Err(Error::NotBound);
                }
                let len = done.read_reply(reply);
                return Ok(Reply { rc: done.rc(), len });
            }
            if !backoff.is_completed() {
                // The peer usually answers within microseconds: spin a
                // little before paying for a sleep and a wake-up.
                backoff.snooze();
                continue;
            }
            // Sleep with the ring lock held: a completion read by another
            // caller would be lost to us, so calls are strictly serialised.
            let left = inner.time_left(deadline)?;
            if p.prepare_wait_for_release(seq) {
                let waited = inner.with_link(|link| {
                    if link.kick_always() {
                        link.kick()?;
                    }
                    link.wait_completion(left.min(WAIT_SLICE))
                });
                p.finish_wait();
                waited?;
                inner.check_open()?;
            }
        }
    }

    /// Like [`call`](Self::call), returning the reply as a new vector.
    pub fn call_vec(&self, request: &[u8]) -> Result<(i32, Vec<u8>)> {
        let mut buf = vec![0; self.0.u2k_msz as usize];
        let reply = self.call(request, &mut buf)?;
        buf.truncate(reply.len);
        Ok((reply.rc, buf))
    }

    /// Queues a one-way message without blocking: [`Error::Full`] if the
    /// ring is full. Visible to the driver at once.
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        let inner = &*self.0;
        // A dead transport would never read the message.
        inner.check_open()?;
        let mut tx = lock(&inner.tx);
        let p = producer(&mut tx)?;
        p.push(msg, slot_flags::KIND_MSG)?;
        let wake = p.publish();
        inner.kick_after(wake)
    }

    /// Queues a one-way message, waiting (up to the channel's timeout) for
    /// room if the ring is full.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_batch([msg])
    }

    /// Queues many one-way messages with as few publishes and kicks as the
    /// ring allows: one for the whole batch when it fits. Blocks for room
    /// (up to the channel's timeout) when it doesn't. Validates every length
    /// before sending anything.
    pub fn send_batch<'m>(&self, msgs: impl IntoIterator<Item = &'m [u8]>) -> Result<()> {
        let inner = &*self.0;
        let max = inner.u2k_msz;
        let msgs: Vec<&[u8]> = msgs.into_iter().collect();
        if let Some(m) = msgs.iter().find(|m| m.len() > max as usize) {
            return Err(Error::TooLarge { len: m.len(), max });
        }
        // A dead transport would never read the messages.
        inner.check_open()?;
        let deadline = Instant::now() + inner.timeout;
        let mut tx = lock(&inner.tx);
        for msg in msgs {
            tx = inner.wait_for_space(tx, deadline)?;
            producer(&mut tx)?.push(msg, slot_flags::KIND_MSG)?;
        }
        let wake = producer(&mut tx)?.publish();
        inner.kick_after(wake)
    }

    /// Registers a listener; events start flowing to it on the dispatcher
    /// thread (started on first use). Callable from inside a listener.
    pub fn add_listener(&self, listener: impl Listener) -> Result<ListenerId> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let id = self.0.listeners.add(Arc::new(listener));
        self.0.ensure_dispatcher()?;
        Ok(id)
    }

    /// Removes a listener (returns false if it was not registered). Callable
    /// from inside a listener, including the one being removed. With no
    /// listeners left, events stay queued for [`recv`](Self::recv).
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.0.listeners.remove(id)
    }

    /// Waits up to `timeout` for the next event. Fails with
    /// [`Error::ListenersActive`] while listeners are registered (they get
    /// the events), [`Error::Timeout`] if none arrives.
    pub fn recv(&self, timeout: Duration) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            // `wait_posts` announces the sleep itself: no need to arm the fd.
            if let Some(ev) = self.next_event(false)? {
                return Ok(ev);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            self.0.wait_posts(self.0.rx(), left)?;
        }
    }

    /// The next event if one is queued, without blocking.
    ///
    /// When it returns `Ok(None)` the channel's fd is armed: it becomes
    /// readable when the next event arrives (see [`Channel`]'s `AsFd`).
    pub fn try_recv(&self) -> Result<Option<Event>> {
        self.next_event(true)
    }

    /// Takes the next queued event; if there is none and `arm` is set,
    /// arms the fd for the next one.
    fn next_event(&self, arm: bool) -> Result<Option<Event>> {
        let inner = &*self.0;
        let mut guard = inner.rx();
        let rx = guard.as_mut().ok_or(Error::Closed)?;
        if rx.dispatching || !inner.listeners.is_empty() {
            return Err(Error::ListenersActive);
        }
        let mut kind = inner.take_event(rx)?;
        if kind.is_none() && arm {
            // Arm the fd: clear stale doorbell tokens, then ask the driver
            // side for a doorbell; the re-check closes the race with a post
            // that landed in between.
            inner.with_link(|link| {
                link.clear_posts();
                Ok(())
            })?;
            if !rx.consumer.view().prepare_wait() {
                kind = inner.take_event(rx)?;
            }
        }
        let event = match kind {
            None => return Ok(None),
            Some(EventKind::Bound) => Event::Bound,
            Some(EventKind::Unbound) => Event::Unbound,
            Some(EventKind::Message(len)) => Event::Message(Message::new(&rx.buf[..len])),
        };
        inner.finish_event(rx, 0)?;
        inner.release(rx)?;
        Ok(Some(event))
    }

    /// A blocking iterator over events; it ends when the channel closes.
    /// Each item waits up to the channel's timeout and yields
    /// [`Error::Timeout`] if nothing came.
    pub fn events(&self) -> Events<'_> {
        Events { handle: self }
    }

    /// Runs `f` with the fd that becomes readable when events may be queued,
    /// for epoll/mio/tokio integration. The fd is level-triggered on the
    /// device, an eventfd counter on the simulated transport: after it
    /// fires, drain with [`try_recv`](Self::try_recv) until `None`.
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Result<R> {
        self.0.with_link(|link| Ok(f(link.posts_fd())))
    }
}

/// The fd that signals events, for epoll, mio or tokio.
///
/// Contract: once [`ChannelHandle::try_recv`] has returned `Ok(None)`, the fd
/// becomes readable when the next event arrives; then drain with `try_recv`
/// until it returns `None` again (which re-arms it). Spurious readiness is
/// possible, missed readiness is not. For handles, see
/// [`ChannelHandle::with_fd`].
impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        let guard = self.handle.0.link.read().unwrap_or_else(|e| e.into_inner());
        let link = guard
            .as_deref()
            .expect("the link lives as long as the Channel");
        let fd = link.posts_fd();
        // SAFETY: the link (and its fd) is only taken out of the lock by
        // `close`, which runs when this `Channel` is dropped, so the fd
        // outlives the borrow of `self` returned here.
        unsafe { BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(&fd)) }
    }
}

/// Iterator returned by [`ChannelHandle::events`].
#[derive(Debug)]
pub struct Events<'a> {
    handle: &'a ChannelHandle,
}

impl Iterator for Events<'_> {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Result<Event>> {
        match self.handle.recv(self.handle.0.timeout) {
            Err(Error::Closed) => None,
            other => Some(other),
        }
    }
}
