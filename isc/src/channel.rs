//! Channels: open, call, send, receive, close.

use crate::calls::Deadline;
use crate::dispatch::{Listener, ListenerId, Listeners};
use crate::event::{Event, Message};
use crate::flight::Tx;
use crate::link::{Bound, Link, View};
use crate::transport::Transport;
use crate::{Error, Result, Uid};
use isc_ring::abi::{slot_flags, BindRequest, RingRequest};
use isc_ring::{ChannelLayout, Consumer};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

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

/// One request's result in a [`call_batch`](ChannelHandle::call_batch):
/// the driver's result code and reply, or that request's error.
pub type BatchReply = Result<(i32, Vec<u8>)>;

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
/// dispatcher, unbinds and unmaps; see [`Channel::close`] for how long that
/// may wait. Everything else is on [`ChannelHandle`],
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
    ///
    /// Closing (or dropping) blocks while a listener callback is running:
    /// the dispatcher thread is joined once the callback returns, however
    /// long it takes. From inside a listener it does not wait (the
    /// dispatcher exits after the callback). On the simulated transport it
    /// also waits, at most 2 s, until the host has unbound the driver (as
    /// closing the device does), so the UID can be opened again at once.
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
    pub u2k_msz: u32,
    k2u_msz: u32,
    pub timeout: Duration,
    /// The device drains `u2k` only when kicked (see [`Link::kick_always`]).
    pub kick_always: bool,
    // Each view keeps the mapping it points into alive; `close` takes all
    // three out, which ends the binding.
    /// The ring lock: the `u2k` producer and its slot table.
    pub tx: Mutex<Option<Tx>>,
    rx: Mutex<Option<Rx>>,
    link: RwLock<Option<Box<dyn Link>>>,
    bound: AtomicBool,
    pub closed: AtomicBool,
    pub listeners: Listeners,
    dispatcher: Mutex<Option<(JoinHandle<()>, ThreadId)>>,
    undelivered: Arc<AtomicU64>,
    /// See `Tx::ensure_leader`.
    pub leaderless: Arc<AtomicBool>,
    pub listener_panics: AtomicU64,
    /// The completion doorbell as registered with a tokio runtime.
    #[cfg(feature = "tokio")]
    pub completion_fd: std::sync::OnceLock<tokio::io::unix::AsyncFd<crate::asynch::Fd>>,
}

/// Locks a mutex, recovering it if a panicking listener poisoned it: the
/// state it guards is kept consistent by the ring, not by the lock holder.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(crate) fn new(uid: Uid, mut bound: Bound, timeout: Duration) -> Self {
        let k2u_msz = bound.k2u.view().msz();
        let undelivered = Arc::new(AtomicU64::new(0));
        let leaderless = Arc::new(AtomicBool::new(false));
        Self {
            uid,
            u2k_msz: bound.u2k.view().msz(),
            k2u_msz,
            timeout,
            kick_always: bound.link.kick_always(),
            tx: Mutex::new(Some(Tx::new(
                bound.u2k,
                Arc::clone(&undelivered),
                Arc::clone(&leaderless),
            ))),
            leaderless,
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
            undelivered,
            listener_panics: AtomicU64::new(0),
            #[cfg(feature = "tokio")]
            completion_fd: std::sync::OnceLock::new(),
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

    /// Fails with `Closed` once the channel is closed or its transport died.
    pub(crate) fn check_open(&self) -> Result<()> {
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
        // `unbind` runs and the region is unmapped. Callers waiting for a
        // reply wake up and find the channel closed.
        // Under the lock: a woken caller's record lives until it sees
        // the table gone.
        let mut guard = lock(&self.tx);
        if let Some(t) = guard.as_mut() {
            t.wake_all();
        }
        let tx = guard.take();
        drop(guard);
        drop(tx);
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

    /// Listener callbacks that panicked so far. A panic is caught: the
    /// event counts as handled (a message's slot gets rc `-EIO`), the other
    /// listeners still get it, and delivery goes on.
    pub fn listener_panics(&self) -> u64 {
        self.0.listener_panics.load(Ordering::Relaxed)
    }

    /// The channel's default timeout for calls and blocking sends.
    pub fn timeout(&self) -> Duration {
        self.0.timeout
    }

    /// Sends `request` and blocks until the driver has handled it; its reply
    /// (written in place by the driver) is copied into `reply` (truncated to
    /// its length). Waits up to the channel's timeout (see
    /// [`call_timeout`](Self::call_timeout)).
    ///
    /// Any number of threads may call at once: their calls are in flight
    /// together (up to the ring's depth) and share doorbells; each gets its
    /// own reply. Fails with [`Error::NotBound`] if no driver handled the
    /// message, [`Error::TooLarge`], [`Error::Timeout`], or
    /// [`Error::Closed`].
    pub fn call(&self, request: &[u8], reply: &mut [u8]) -> Result<Reply> {
        self.0.call_with(request, reply, self.0.timeout)
    }

    /// Like [`call`](Self::call), waiting at most `timeout` for room in the
    /// ring and for the reply. `Duration::MAX` waits without limit.
    ///
    /// After a timeout the request may still reach the driver (it was
    /// published): its reply is then discarded, never handed to another
    /// caller. The timeout bounds waiting, not the driver: on the device,
    /// the thread that kicks runs the driver's handler inside the KICK, so
    /// a call whose own KICK is running returns when the handler does.
    pub fn call_timeout(
        &self,
        request: &[u8],
        reply: &mut [u8],
        timeout: Duration,
    ) -> Result<Reply> {
        self.0.call_with(request, reply, timeout)
    }

    /// Like [`call`](Self::call), returning the reply as a new vector.
    pub fn call_vec(&self, request: &[u8]) -> Result<(i32, Vec<u8>)> {
        let mut buf = vec![0; self.0.u2k_msz as usize];
        let reply = self.call(request, &mut buf)?;
        buf.truncate(reply.len);
        Ok((reply.rc, buf))
    }

    /// Makes many calls at once: every request that fits is pushed, then
    /// published with one doorbell; more follow as replies free slots.
    /// Returns one result per request, in order: `Ok((rc, reply))`, or the
    /// error of that request alone.
    ///
    /// Partial failure: lengths are checked first, and an oversized request
    /// fails the whole batch ([`Error::TooLarge`]) before anything is sent;
    /// so does a channel that is already closed. After that, every request
    /// gets its own result: a request whose reply did not come within the
    /// channel's timeout (counted from the start of the batch) gets
    /// [`Error::Timeout`] (it may still reach the driver, like a timed-out
    /// [`call`](Self::call)); requests never published because time ran out
    /// get [`Error::Timeout`] too, and, if the channel closed or broke
    /// meanwhile, that error instead. A request the driver did not handle
    /// gets [`Error::NotBound`].
    pub fn call_batch(&self, requests: &[&[u8]]) -> Result<Vec<BatchReply>> {
        self.0.call_batch_with(requests, self.0.timeout)
    }

    /// Like [`call_batch`](Self::call_batch), writing request `i`'s reply
    /// into `replies[i]` (truncated to its length) and allocating nothing
    /// per request: results are `Ok(Reply)` as from [`call`](Self::call),
    /// or that request's error, with the same partial-failure rules.
    /// `replies` must have at least one buffer per request.
    pub fn call_batch_into(
        &self,
        requests: &[&[u8]],
        replies: &mut [&mut [u8]],
    ) -> Result<Vec<Result<Reply>>> {
        self.0.call_batch_into(requests, replies, self.0.timeout)
    }

    /// Queues a one-way message without blocking: [`Error::Full`] if the
    /// ring is full. Visible to the driver at once. Never waits for another
    /// thread's call or send (beyond the ring lock's few instructions).
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        self.0.send_many(&[msg], false, Duration::ZERO)
    }

    /// Queues a one-way message, waiting (up to the channel's timeout) for
    /// room if the ring is full.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.0.send_many(&[msg], true, self.0.timeout)
    }

    /// Queues many one-way messages with as few publishes and kicks as the
    /// ring allows: one for the whole batch when it fits. Blocks for room
    /// (up to the channel's timeout) when it doesn't. Validates every length
    /// before sending anything.
    pub fn send_batch<'m>(&self, msgs: impl IntoIterator<Item = &'m [u8]>) -> Result<()> {
        let msgs: Vec<&[u8]> = msgs.into_iter().collect();
        self.0.send_many(&msgs, true, self.0.timeout)
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
        let mut deadline = Deadline::started(timeout);
        loop {
            // `wait_posts` announces the sleep itself: no need to arm the fd.
            if let Some(ev) = self.next_event(false)? {
                return Ok(ev);
            }
            let slice = deadline.slice()?;
            self.0.wait_posts(self.0.rx(), slice)?;
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
        unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }
    }
}

/// The same fd as [`AsFd`], with the same contract: a `Channel` can be
/// handed to `tokio::io::unix::AsyncFd` (or mio) directly.
impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
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
