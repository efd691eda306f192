//! The host side: a registry of simulated drivers and a fixed set of service
//! threads serving the bound channels, playing the kernel's role step for
//! step.
//!
//! # Threads
//!
//! The channels are served by the host's **service threads**:
//! [`default_service_threads`] of them, or as many as
//! [`SimHost::with_threads`] says, whatever the number of channels. They
//! share one `epoll` instance over the channels' doorbells and connections
//! and a queue of the channels that have work; any free thread serves any
//! ready channel. Serving a channel drains its `u2k` ring (the device's
//! `ISC_IOC_KICK`) and calls the driver's callbacks for it, one thread at a
//! time per channel, so `bound`, `got` and `unbind` of one channel never run
//! concurrently and keep their order. A hang-up of the connection to the
//! user (the endpoint dropped, or its process died) is the user's unbind.
//! A channel's service spins only while work keeps arriving, then sleeps in
//! `epoll`, so idle channels cost no CPU.
//!
//! Callbacks may block or run long (the kernel runs them in process
//! context, where sleeping is allowed): a blocked callback holds up only its
//! own channel. Other channels go on being served by the other threads, and
//! when every service thread has been inside a callback for a few
//! milliseconds the host starts another one (at most
//! [`MAX_EXTRA_SERVICE_THREADS`](crate::MAX_EXTRA_SERVICE_THREADS) beyond
//! the base count; an extra thread exits after a second without work).
//!
//! [`SimHost::listen`] adds one accept thread per socket; each accepted
//! connection gets a short-lived thread for the handshake, which then hands
//! the channel to a service thread.
//!
//! # Binding
//!
//! A channel is bound while a user endpoint exists and a driver is
//! registered for its UID, whichever came first. Becoming bound puts a
//! `KIND_BOUND` control message in `k2u` and then calls `bound(handle)`;
//! the driver unregistering (or the channel closing) puts `KIND_UNBOUND`
//! and then calls `unbind()`. Every `bound` is followed by exactly one
//! `unbind`. While no driver is bound, messages are completed with
//! `-ENODEV` and `NOT_DELIVERED`, so a caller never hangs.
//!
//! A bind reply that says "bound" is kept: the channel's first round binds
//! that driver even if it unregistered (or the user left) since, so the
//! driver sees `bound` then `unbind` and a user still there sees `UNBOUND`.
//!
//! # Control messages are never lost
//!
//! Control messages are not squeezed into reserved slots (that would shrink
//! the ring the user asked for, to nothing for `num = 1`). When `k2u` is
//! full they wait in a per-channel queue, and while the queue is non-empty
//! ordinary posts report [`PostError::Full`] so nothing overtakes them. The
//! service thread flushes the queue as soon as the user releases slots: it
//! sets `PRODUCER_WAITING` on `k2u` before sleeping, so the user's release
//! rings the driver doorbell ([`UserRx`](crate::UserRx) does this), and it
//! also retries every few milliseconds in case the user never rings.

use crate::endpoint::UserEndpoint;
use crate::error::{Fault, PostError, SimError, Uid};
use crate::pool::Pool;
use crate::sys::{fired, poll_timeout, Doorbell, Region};
use crate::wire::{self, BindReply};
use isc_ring::abi::{errno, slot_flags, BindRequest, BindResponse};
use isc_ring::{ChannelLayout, Consumer, Producer, RingError};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, listen, shutdown, socket, socketpair, AddressFamily, Backlog, Shutdown,
    SockFlag, SockType, UnixAddr,
};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zerocopy::IntoBytes;

/// How long a waiting side (a service thread looking for more work, a caller
/// waiting for its reply) keeps checking the ring before it sleeps on its
/// doorbell. Waking a sleeping thread through an eventfd costs several
/// microseconds on each side; a peer that answers within this window costs
/// no system call at all. The wait busy-loops only for its first half
/// microsecond (a reply from a peer running on another CPU usually arrives
/// by then) and then yields the CPU between checks, so that a peer sharing
/// the CPU runs at once instead of waiting out the spin. 50 µs covers the
/// gap between back-to-back calls with margin while keeping an idle
/// channel's CPU cost negligible.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The number of service threads a host runs unless told otherwise: one per
/// CPU the process may use, at most 8 (so a host never has more spinning
/// threads than CPUs, however many channels it serves; threads started
/// while callbacks block are extra, and the blocked ones do not spin).
pub fn default_service_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// How often a service thread retries queued control messages when the user
/// does not ring after releasing `k2u` slots.
pub(crate) const CONTROL_RETRY: Duration = Duration::from_millis(5);

/// How long an accepted connection may take to send its bind request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// EIO, for failures of the host's own system calls during a bind.
const EIO: i32 = 5;

thread_local! {
    /// Set on service threads: driver callbacks run there, and an
    /// `unregister` issued from one must not wait for a service thread.
    pub(crate) static IN_SERVICE: Cell<bool> = const { Cell::new(false) };
}

/// True on a host's service thread (where driver callbacks run).
pub(crate) fn in_service() -> bool {
    IN_SERVICE.with(Cell::get)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a driver callback panicked elsewhere; the
    // protected state is always left consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A simulated driver: the callbacks of the kernel API (`isc_register`).
///
/// All three run on a service thread of the host, never concurrently for
/// one channel. They may block: the other channels are still served. They
/// may call [`Handle::post`], [`SimHost::register`] and
/// [`SimHost::unregister`] without deadlocking (an `unregister` from a
/// callback completes after the callback returns).
pub trait SimDriver: Send + Sync + 'static {
    /// The channel became bound; `handle` posts to its user until `unbind`.
    fn bound(&self, handle: Handle);
    /// The binding ended (the user went away, the driver unregistered, the
    /// channel broke, or the host shut down). Posts through the old handle
    /// now fail with [`PostError::NotBound`].
    fn unbind(&self);
    /// A message from the user. Read it, optionally write a reply in place
    /// ([`Message::data_mut`], [`Message::set_reply`]), and return the
    /// result code the caller receives.
    fn got(&self, msg: &mut Message) -> i32;
}

/// The bounce buffer a message is copied into before [`SimDriver::got`]
/// sees it: the user cannot change these bytes while the driver reads them.
///
/// On return from `got`, the first [`Message::len`] bytes are the reply
/// written back in place into the user's slot.
pub struct Message {
    buf: Box<[u8]>,
    len: usize,
    dirty: bool,
}

impl Message {
    fn new(msz: u32) -> Self {
        Self {
            buf: vec![0; msz as usize].into_boxed_slice(),
            len: 0,
            dirty: false,
        }
    }

    /// Length of the message (then of the reply).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Largest reply: the `u2k` ring's `msz`.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The message bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The message bytes, to rewrite in place as the reply.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.dirty = true;
        &mut self.buf[..self.len]
    }

    /// Changes the reply length; bytes added at the end are zero.
    pub fn set_len(&mut self, len: usize) -> Result<(), SimError> {
        let max = self.buf.len();
        if len > max {
            return Err(SimError::TooLarge {
                len,
                max: max as u32,
            });
        }
        if len > self.len {
            self.buf[self.len..len].fill(0);
        }
        self.len = len;
        self.dirty = true;
        Ok(())
    }

    /// Replaces the message with `reply` (of any length up to the capacity).
    pub fn set_reply(&mut self, reply: &[u8]) -> Result<(), SimError> {
        let max = self.buf.len() as u32;
        let dst = self.buf.get_mut(..reply.len()).ok_or(SimError::TooLarge {
            len: reply.len(),
            max,
        })?;
        dst.copy_from_slice(reply);
        self.len = reply.len();
        self.dirty = true;
        Ok(())
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.len)
            .field("capacity", &self.buf.len())
            .finish()
    }
}

/// A driver's handle on one binding of a channel: posts to the user.
///
/// Cheap to clone, usable from any thread. It stays valid until the binding
/// ends (`unbind`); afterwards every post fails with
/// [`PostError::NotBound`], even if the channel is bound again later (the
/// new binding comes with a new handle).
#[derive(Clone)]
pub struct Handle {
    ch: Arc<Channel>,
    generation: u64,
}

impl Handle {
    /// Posts `msg` to the user (`isc_post`): copies it into the next `k2u`
    /// slot and publishes it, ringing the user's doorbell only if the user
    /// is asleep. Never blocks and never overwrites an unread slot.
    pub fn post(&self, msg: &[u8]) -> Result<(), PostError> {
        self.ch.post(self.generation, msg)
    }

    /// The channel's UID.
    pub fn uid(&self) -> Uid {
        Uid(self.ch.uid)
    }

    /// Largest post: the `k2u` ring's `msz`.
    pub fn max_post(&self) -> u32 {
        self.ch.k2u_msz
    }

    /// True while this handle's binding lasts.
    pub fn is_bound(&self) -> bool {
        let k = lock(&self.ch.k2u);
        k.state == LinkState::Bound && k.generation == self.generation
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("uid", &Uid(self.ch.uid))
            .field("generation", &self.generation)
            .finish()
    }
}

/// Counters of a host, summed over all its channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Channels currently open.
    pub channels: u64,
    /// Messages delivered to a driver's `got`.
    pub messages: u64,
    /// Messages completed with `NOT_DELIVERED` (no driver bound).
    pub not_delivered: u64,
    /// Successful posts.
    pub posts: u64,
    /// Posts refused because `k2u` was full.
    pub posts_full: u64,
    /// Channels torn down because their user broke the shared region or the
    /// connection protocol.
    pub corrupt: u64,
}

#[derive(Default)]
struct Counters {
    channels: AtomicU64,
    messages: AtomicU64,
    not_delivered: AtomicU64,
    posts: AtomicU64,
    posts_full: AtomicU64,
    corrupt: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        // Statistics only: no ordering with anything else is needed.
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Unbound,
    Bound,
    Closed,
}

/// The driver side of `k2u`, shared by the service thread and every poster.
/// The mutex plays the kernel's post spinlock.
struct K2u {
    producer: Producer,
    state: LinkState,
    /// Incremented at each binding; a [`Handle`] posts only in its own.
    generation: u64,
    /// Control messages waiting for space, in order.
    pending: VecDeque<u32>,
}

struct SyncState {
    /// Registry epoch the service thread has acted on.
    epoch: u64,
    closed: bool,
}

/// One channel, as the host sees it.
pub(crate) struct Channel {
    uid: u32,
    k2u_msz: u32,
    k2u: Mutex<K2u>,
    /// User -> service thread: `u2k` has messages, or `k2u` has space.
    /// Also rung by the host itself to make the service thread look at
    /// `reconcile` and `faulted`.
    driver_bell: Doorbell,
    /// Service thread / posters -> user: `k2u` has posts.
    user_bell: Doorbell,
    /// Service thread -> user: `u2k` slots were released.
    completion_bell: Doorbell,
    /// The host's end of the connection to the user.
    conn: OwnedFd,
    /// The registry changed for this UID; the service thread must re-read it.
    reconcile: AtomicBool,
    faulted: AtomicBool,
    fault: Mutex<Option<Fault>>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    counters: Arc<Counters>,
    /// Declared last: the ring views above point into it.
    region: Region,
}

impl Channel {
    fn post(&self, generation: u64, msg: &[u8]) -> Result<(), PostError> {
        if msg.len() > self.k2u_msz as usize {
            return Err(PostError::TooLarge {
                len: msg.len(),
                max: self.k2u_msz,
            });
        }
        let mut k = lock(&self.k2u);
        if k.state != LinkState::Bound || k.generation != generation {
            return Err(PostError::NotBound);
        }
        if let Err(f) = flush_locked(&mut k) {
            drop(k);
            self.set_fault(f);
            return Err(PostError::NotBound);
        }
        let full = !k.pending.is_empty()
            || match k.producer.push(msg, slot_flags::KIND_MSG) {
                Ok(_) => false,
                Err(RingError::Full) => true,
                Err(RingError::TooLarge { len, max }) => {
                    return Err(PostError::TooLarge { len, max });
                }
                Err(RingError::Corrupt(c)) => {
                    drop(k);
                    self.set_fault(c.into());
                    return Err(PostError::NotBound);
                }
                Err(e @ RingError::Misaligned) => {
                    drop(k);
                    self.set_fault(Fault::Attach(e));
                    return Err(PostError::NotBound);
                }
            };
        // Publish whatever was flushed, even when the post itself is refused.
        let wake = k.producer.publish();
        drop(k);
        if wake.is_needed() {
            let _ = self.user_bell.ring_guarded();
        }
        if full {
            Counters::add(&self.counters.posts_full, 1);
            Err(PostError::Full)
        } else {
            Counters::add(&self.counters.posts, 1);
            Ok(())
        }
    }

    /// Queues a control message, flushes what fits, publishes, rings.
    fn control(&self, kind: u32, state: LinkState) -> u64 {
        let mut k = lock(&self.k2u);
        k.state = state;
        if state == LinkState::Bound {
            k.generation += 1;
        }
        k.pending.push_back(kind);
        let generation = k.generation;
        let flushed = flush_locked(&mut k);
        let wake = k.producer.publish();
        drop(k);
        if let Err(f) = flushed {
            self.set_fault(f);
        }
        if wake.is_needed() {
            let _ = self.user_bell.ring_guarded();
        }
        generation
    }

    /// Retries queued control messages; true if some are still queued.
    fn flush(&self) -> bool {
        let mut k = lock(&self.k2u);
        if k.pending.is_empty() {
            return false;
        }
        let flushed = flush_locked(&mut k);
        let wake = k.producer.publish();
        let left = !k.pending.is_empty();
        drop(k);
        if let Err(f) = flushed {
            self.set_fault(f);
        }
        if wake.is_needed() {
            let _ = self.user_bell.ring_guarded();
        }
        left
    }

    /// Before sleeping with control messages queued: asks the user to ring
    /// when it releases `k2u` slots. False if space appeared meanwhile.
    fn arm_space_wait(&self) -> bool {
        let mut k = lock(&self.k2u);
        !k.pending.is_empty() && k.producer.prepare_wait()
    }

    fn disarm_space_wait(&self) {
        lock(&self.k2u).producer.finish_wait();
    }

    fn set_fault(&self, f: Fault) {
        lock(&self.fault).get_or_insert(f);
        // Release pairs with the Acquire load in the service loop, which
        // then reads the fault under its mutex anyway.
        self.faulted.store(true, Ordering::Release);
        let _ = self.driver_bell.ring();
    }

    fn take_fault(&self) -> Option<Fault> {
        if self.faulted.load(Ordering::Acquire) {
            *lock(&self.fault)
        } else {
            None
        }
    }

    fn mark_synced(&self, epoch: u64) {
        let mut s = lock(&self.sync);
        s.epoch = s.epoch.max(epoch);
        self.synced.notify_all();
    }

    fn mark_closed(&self) {
        lock(&self.sync).closed = true;
        self.synced.notify_all();
    }

    fn wait_synced(&self, epoch: u64) {
        let mut s = lock(&self.sync);
        while s.epoch < epoch && !s.closed {
            s = self.synced.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The descriptors the user needs, duplicated, in wire order.
    fn user_fds(&self) -> Result<[OwnedFd; wire::BIND_FDS], SimError> {
        Ok([
            self.region.fd().try_clone_to_owned()?,
            self.driver_bell.try_clone_fd()?,
            self.user_bell.try_clone_fd()?,
            self.completion_bell.try_clone_fd()?,
        ])
    }
}

/// Pushes queued control messages while they fit. Does not publish.
fn flush_locked(k: &mut K2u) -> Result<(), Fault> {
    while let Some(&kind) = k.pending.front() {
        match k.producer.push(&[], kind) {
            Ok(_) => {
                k.pending.pop_front();
            }
            Err(RingError::Full) => break,
            Err(RingError::Corrupt(c)) => return Err(c.into()),
            Err(e) => return Err(Fault::Attach(e)),
        }
    }
    Ok(())
}

#[derive(Clone)]
struct Registration {
    id: u64,
    ops: Arc<dyn SimDriver>,
}

#[derive(Default)]
struct Entry {
    driver: Option<Registration>,
    channel: Option<Arc<Channel>>,
}

#[derive(Default)]
struct Registry {
    entries: HashMap<u32, Entry>,
    /// Bumped by every register/unregister.
    epoch: u64,
}

pub(crate) struct HostInner {
    registry: Mutex<Registry>,
    pub(crate) shutdown: AtomicBool,
    /// Rung once at shutdown and never drained: every thread polls it.
    pub(crate) stop: Doorbell,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sockets: Mutex<Vec<PathBuf>>,
    pub(crate) spin: Duration,
    /// The service threads.
    pub(crate) pool: Pool,
    next_id: AtomicU64,
    counters: Arc<Counters>,
}

/// The simulated kernel: a registry of drivers by UID and the channels of
/// the users bound to them, in this process or, through
/// [`SimHost::listen`], in others.
///
/// Dropping the host shuts it down: every channel is unbound (drivers get
/// `unbind`), every user sees its channel closed, and all threads are joined.
pub struct SimHost {
    inner: Arc<HostInner>,
}

impl fmt::Debug for SimHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHost")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimHost {
    /// A host whose service threads spin [`DEFAULT_SPIN`] before sleeping,
    /// with [`default_service_threads`] of them.
    pub fn new() -> Result<Self, SimError> {
        Self::with_spin(DEFAULT_SPIN)
    }

    /// A host whose service threads spin for `spin` before sleeping
    /// (`Duration::ZERO`: sleep at once; lowest CPU use, highest latency),
    /// with [`default_service_threads`] of them.
    pub fn with_spin(spin: Duration) -> Result<Self, SimError> {
        Self::with_threads(spin, default_service_threads())
    }

    /// A host with `threads` service threads (at least one), sharing one
    /// `epoll` loop over all the channels; they start as channels arrive.
    /// More start while every one of them is stuck in a driver callback (at
    /// most [`MAX_EXTRA_SERVICE_THREADS`](crate::MAX_EXTRA_SERVICE_THREADS);
    /// they leave after a second without work). A channel's service spins
    /// for `spin` after its last piece of work before sleeping; idle
    /// channels cost no CPU.
    pub fn with_threads(spin: Duration, threads: usize) -> Result<Self, SimError> {
        let stop = Doorbell::new()?;
        let pool = Pool::new(threads, &stop)?;
        Ok(Self {
            inner: Arc::new(HostInner {
                registry: Mutex::default(),
                shutdown: AtomicBool::new(false),
                stop,
                threads: Mutex::default(),
                sockets: Mutex::default(),
                spin,
                pool,
                next_id: AtomicU64::new(1),
                counters: Arc::default(),
            }),
        })
    }

    /// Registers `driver` for `uid` (`isc_register`). If a user is already
    /// bound to the UID, the channel becomes bound: the user gets a `BOUND`
    /// message and the driver `bound(handle)`, on the service thread.
    pub fn register<D: SimDriver>(&self, uid: u32, driver: Arc<D>) -> Result<(), SimError> {
        let ops: Arc<dyn SimDriver> = driver;
        let inner = &self.inner;
        let mut reg = lock(&inner.registry);
        if inner.shutdown.load(Ordering::Acquire) {
            return Err(SimError::Closed);
        }
        let entry = reg.entries.entry(uid).or_default();
        if entry.driver.is_some() {
            return Err(SimError::AlreadyRegistered { uid: Uid(uid) });
        }
        entry.driver = Some(Registration {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            ops,
        });
        let ch = entry.channel.clone();
        reg.epoch += 1;
        drop(reg);
        if let Some(ch) = ch {
            wake_for_registry(&ch);
        }
        Ok(())
    }

    /// Unregisters the driver of `uid` (`isc_unregister`). A bound user gets
    /// `UNBOUND` (its later calls fail with [`SimError::NotBound`]) and the
    /// driver `unbind()`.
    ///
    /// Returns once the driver's callbacks for this UID are over, except
    /// when called from a driver callback: then it returns at once and the
    /// teardown completes after the callback returns.
    pub fn unregister(&self, uid: u32) -> Result<(), SimError> {
        let inner = &self.inner;
        let mut reg = lock(&inner.registry);
        let entry = reg
            .entries
            .get_mut(&uid)
            .ok_or(SimError::NotRegistered { uid: Uid(uid) })?;
        if entry.driver.take().is_none() {
            return Err(SimError::NotRegistered { uid: Uid(uid) });
        }
        let ch = entry.channel.clone();
        if ch.is_none() {
            reg.entries.remove(&uid);
        }
        reg.epoch += 1;
        let epoch = reg.epoch;
        drop(reg);
        if let Some(ch) = ch {
            wake_for_registry(&ch);
            if !IN_SERVICE.with(Cell::get) {
                ch.wait_synced(epoch);
            }
        }
        Ok(())
    }

    /// Binds a user endpoint in this process (the device's open + bind +
    /// mmap). The endpoint is connected to the host by a socketpair, so its
    /// drop is detected exactly as a remote user's disconnect is.
    pub fn bind(&self, req: &BindRequest) -> Result<UserEndpoint, SimError> {
        let (host_end, user_end) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let (service, resp) = self.inner.attach(req, host_end)?;
        let fds = service.ch.user_fds();
        self.inner.pool.place(&self.inner, service)?;
        UserEndpoint::from_parts(req, resp, fds?, user_end)
    }

    /// Serves bind requests on a Unix `SOCK_SEQPACKET` socket at `path`
    /// (see [`crate::wire`]) on a background thread. The socket file is
    /// removed when the host shuts down; an existing file is an error.
    pub fn listen(&self, path: impl AsRef<Path>) -> Result<(), SimError> {
        let path = path.as_ref();
        let sock = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        bind(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
        lock(&self.inner.sockets).push(path.to_owned());
        listen(&sock, Backlog::new(64)?)?;
        let inner = Arc::clone(&self.inner);
        let h = std::thread::Builder::new()
            .name("isc-sim accept".into())
            .spawn(move || accept_loop(&inner, sock))?;
        lock(&self.inner.threads).push(h);
        Ok(())
    }

    /// Current counters.
    pub fn stats(&self) -> HostStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HostStats {
            channels: get(&c.channels),
            messages: get(&c.messages),
            not_delivered: get(&c.not_delivered),
            posts: get(&c.posts),
            posts_full: get(&c.posts_full),
            corrupt: get(&c.corrupt),
        }
    }

    /// How many service threads run now: none before the first channel, at
    /// most the count given to [`SimHost::with_threads`] while callbacks
    /// return promptly, and up to [`MAX_EXTRA_SERVICE_THREADS`](crate::MAX_EXTRA_SERVICE_THREADS) more while
    /// they block.
    pub fn service_threads(&self) -> usize {
        self.inner.pool.threads()
    }

    /// True if a user endpoint is currently bound to `uid`.
    pub fn has_user(&self, uid: u32) -> bool {
        lock(&self.inner.registry)
            .entries
            .get(&uid)
            .is_some_and(|e| e.channel.is_some())
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        let inner = &self.inner;
        {
            // Under the registry lock: no channel is attached after this.
            let _reg = lock(&inner.registry);
            inner.shutdown.store(true, Ordering::Release);
        }
        let _ = inner.stop.ring();
        inner.pool.stop();
        let me = std::thread::current().id();
        loop {
            let handles = std::mem::take(&mut *lock(&inner.threads));
            if handles.is_empty() {
                break;
            }
            for h in handles {
                // A host dropped from one of its own threads cannot join it;
                // that thread sees `stop` and exits by itself.
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        }
        for p in lock(&inner.sockets).drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn wake_for_registry(ch: &Channel) {
    // Release: the registry change happened before; the service thread
    // re-reads the registry under its mutex after seeing the flag.
    ch.reconcile.store(true, Ordering::Release);
    let _ = ch.driver_bell.ring();
}

impl HostInner {
    /// Keeps a started thread for joining at shutdown, forgetting finished
    /// ones.
    pub(crate) fn add_thread(&self, h: JoinHandle<()>) {
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(h);
    }

    /// Creates a channel for `req` and enters it in the registry.
    fn attach(
        self: &Arc<Self>,
        req: &BindRequest,
        conn: OwnedFd,
    ) -> Result<(Service, BindResponse), SimError> {
        let layout = ChannelLayout::from_request(req)?;
        let len = layout.region_bytes() as usize;
        let region = Region::create(&format!("isc-sim {}", Uid(req.uid)), len)?;
        let base = region.ptr();
        // SAFETY: the mapping is fresh, `len` bytes long, and no one else
        // has it yet (its fd has not left this function): a unique slice
        // over it is sound for the duration of `init`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base.as_ptr(), len) };
        layout
            .init(bytes)
            .map_err(|_| SimError::Corrupt(Fault::Region("layout does not fit")))?;
        let k2u_off = layout.k2u_offset() as usize;
        // SAFETY: both rings lie within the mapping, which the Channel owns
        // and keeps alive as long as the views (the views are dropped with
        // or before it); the host makes exactly one Consumer for u2k and one
        // Producer for k2u. Offsets are page multiples, so 64-aligned.
        let (rx, tx) = unsafe {
            (
                Consumer::new(base, layout.u2k().ring_bytes() as usize)?,
                Producer::new(base.add(k2u_off), layout.k2u().ring_bytes() as usize)?,
            )
        };
        let ch = Arc::new(Channel {
            uid: req.uid,
            k2u_msz: layout.k2u().msz(),
            k2u: Mutex::new(K2u {
                producer: tx,
                state: LinkState::Unbound,
                generation: 0,
                pending: VecDeque::new(),
            }),
            driver_bell: Doorbell::new()?,
            user_bell: Doorbell::new()?,
            completion_bell: Doorbell::new()?,
            conn,
            reconcile: AtomicBool::new(true),
            faulted: AtomicBool::new(false),
            fault: Mutex::new(None),
            sync: Mutex::new(SyncState {
                epoch: 0,
                closed: false,
            }),
            synced: Condvar::new(),
            counters: Arc::clone(&self.counters),
            region,
        });
        let mut reg = lock(&self.registry);
        if self.shutdown.load(Ordering::Acquire) {
            return Err(SimError::Closed);
        }
        let entry = reg.entries.entry(req.uid).or_default();
        if entry.channel.is_some() {
            return Err(SimError::Busy { uid: Uid(req.uid) });
        }
        let announced = entry.driver.clone();
        let bound = announced.is_some();
        entry.channel = Some(Arc::clone(&ch));
        drop(reg);
        Counters::add(&self.counters.channels, 1);
        let resp = BindResponse {
            region_size: len as u64,
            u2k_offset: u64::from(layout.u2k_offset()),
            k2u_offset: k2u_off as u64,
            bound: u32::from(bound),
            reserved: 0,
        };
        let msg = Message::new(layout.u2k().msz());
        Ok((
            Service {
                host: Arc::clone(self),
                ch,
                rx,
                msg,
                current: None,
                announced,
                ctl_pending: false,
                space_armed: false,
                done: false,
            },
            resp,
        ))
    }

    fn remove_channel(&self, ch: &Arc<Channel>) {
        let mut reg = lock(&self.registry);
        if let Some(entry) = reg.entries.get_mut(&ch.uid) {
            if entry.channel.as_ref().is_some_and(|c| Arc::ptr_eq(c, ch)) {
                entry.channel = None;
                if entry.driver.is_none() {
                    reg.entries.remove(&ch.uid);
                }
            }
        }
    }

    /// The registration for `uid` and the registry epoch it was read at.
    fn driver_for(&self, uid: u32) -> (Option<Registration>, u64) {
        let reg = lock(&self.registry);
        (
            reg.entries.get(&uid).and_then(|e| e.driver.clone()),
            reg.epoch,
        )
    }
}

fn accept_loop(inner: &Arc<HostInner>, sock: OwnedFd) {
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(inner.stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fired(&fds[1]) || inner.shutdown.load(Ordering::Acquire) {
            return;
        }
        let conn = match accept4(sock.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            Err(Errno::EINTR | Errno::ECONNABORTED | Errno::EAGAIN) => continue,
            Err(_) => {
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let host = Arc::clone(inner);
        let spawned = std::thread::Builder::new()
            .name("isc-sim conn".into())
            .spawn(move || serve_connection(&host, conn));
        if let Ok(h) = spawned {
            inner.add_thread(h);
        }
    }
}

/// The handshake of one accepted connection, then its service loop.
fn serve_connection(inner: &Arc<HostInner>, conn: OwnedFd) {
    let mut fds = [
        PollFd::new(conn.as_fd(), PollFlags::POLLIN),
        PollFd::new(inner.stop.as_fd(), PollFlags::POLLIN),
    ];
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(&mut fds, poll_timeout(Some(left))) {
            Ok(0) => return,
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
    if fired(&fds[1]) {
        return;
    }
    let mut buf = [0u8; 2 * wire::REQUEST_LEN];
    let Ok(got) = wire::recv_msg(conn.as_fd(), &mut buf) else {
        return;
    };
    if got.len == 0 && got.fds.is_empty() {
        return; // closed before asking
    }
    // A client has no business sending descriptors: they are closed here
    // (dropped) and the request refused.
    let refuse = |errno: i32| {
        let _ = wire::send_msg(conn.as_fd(), BindReply::refused(errno).as_bytes(), &[]);
    };
    if !got.fds.is_empty() || got.truncated {
        drop(got.fds);
        return refuse(errno::EINVAL);
    }
    let req = match wire::decode_bind_request(&buf[..got.len]) {
        Ok(r) => r,
        Err(_) => return refuse(errno::EINVAL),
    };
    let Ok(ch_conn) = conn.try_clone() else {
        return refuse(EIO);
    };
    let (service, resp) = match inner.attach(&req, ch_conn) {
        Ok(v) => v,
        Err(e) => return refuse(refusal_errno(&e)),
    };
    match service.ch.user_fds() {
        Ok(fds) => {
            let borrowed = fds.each_ref().map(|f| f.as_fd());
            // A failed send means the client is gone: the service loop sees
            // the hang-up and tears the channel down.
            let _ = wire::send_msg(conn.as_fd(), BindReply::ok(resp).as_bytes(), &borrowed);
        }
        Err(_) => refuse(EIO),
    }
    drop(conn);
    // On failure the service is dropped or torn down: the user sees the
    // connection close.
    let _ = inner.pool.place(inner, service);
}

/// The errno a bind failure is reported with, as the device would.
fn refusal_errno(e: &SimError) -> i32 {
    match e {
        SimError::Bind(b) => b.errno(),
        SimError::Busy { .. } => errno::EBUSY,
        SimError::Closed => errno::ENODEV,
        SimError::Io(io) => io.raw_os_error().filter(|&n| n > 0).unwrap_or(EIO),
        _ => EIO,
    }
}

/// Why a channel's service ended.
pub(crate) enum Teardown {
    UserGone,
    Shutdown,
    Fault(Fault),
}

/// The service of one channel: the driver side's `u2k` consumer, run by
/// one of the host's service threads.
pub(crate) struct Service {
    host: Arc<HostInner>,
    ch: Arc<Channel>,
    rx: Consumer,
    msg: Message,
    /// The driver this channel is bound to.
    current: Option<Registration>,
    /// The driver the bind reply told the user it is bound to, until the
    /// first round binds it (even if it unregistered meanwhile, so that the
    /// user, told "bound", also learns of the unbinding).
    announced: Option<Registration>,
    /// Control messages wait for room in `k2u`.
    ctl_pending: bool,
    /// `PRODUCER_WAITING` is set on `k2u` for the current sleep.
    space_armed: bool,
    done: bool,
}

impl Service {
    /// One round of service: acts on a fault, a registry change, queued
    /// control messages and every message in `u2k`. `Ok(true)` if it did
    /// anything; `Err` when the channel must be torn down.
    pub(crate) fn serve_once(&mut self) -> Result<bool, Teardown> {
        let host = Arc::clone(&self.host);
        if host.shutdown.load(Ordering::Acquire) {
            return Err(Teardown::Shutdown);
        }
        if let Some(f) = self.ch.take_fault() {
            return Err(Teardown::Fault(f));
        }
        let mut worked = false;
        if self.ch.reconcile.swap(false, Ordering::Acquire) {
            self.reconcile(&host);
            worked = true;
        }
        self.ctl_pending = self.ch.flush();
        worked |= self.drain(&host).map_err(Teardown::Fault)?;
        Ok(worked)
    }

    /// True if a round of service would find something to do besides
    /// retrying queued control messages (a cheap check, for spinning).
    pub(crate) fn has_work(&mut self) -> bool {
        // Relaxed: these only decide whether to serve again; serving re-reads
        // each with the proper ordering.
        !matches!(self.rx.pending(), Ok(0))
            || self.ch.reconcile.load(Ordering::Relaxed)
            || self.ch.faulted.load(Ordering::Relaxed)
            || self.host.shutdown.load(Ordering::Relaxed)
    }

    /// Announces that the channel's service goes to sleep: asks the user to
    /// ring the driver doorbell for its next message (and for room in `k2u`
    /// while control messages wait). False if work appeared meanwhile: serve
    /// again instead. After `true`, call [`Service::disarm`] when the
    /// doorbell rings or the control retry is due.
    pub(crate) fn arm(&mut self) -> bool {
        self.flush_wake();
        if !self.rx.prepare_wait() {
            return false;
        }
        let space = self.ctl_pending && self.ch.arm_space_wait();
        if self.ctl_pending && !space {
            // Space for the queued control messages appeared: flush now.
            self.rx.finish_wait();
            return false;
        }
        self.space_armed = space;
        true
    }

    /// Ends a sleep begun by [`Service::arm`] (harmless on an awake
    /// channel: drains its doorbell).
    pub(crate) fn disarm(&mut self) {
        let _ = self.ch.driver_bell.drain_guarded();
        self.rx.finish_wait();
        if std::mem::take(&mut self.space_armed) {
            self.ch.disarm_space_wait();
        }
    }

    /// True while queued control messages wait for room in `k2u` (retry
    /// them every [`CONTROL_RETRY`] even if the user never rings).
    pub(crate) fn control_pending(&self) -> bool {
        self.ctl_pending
    }

    /// The descriptors a sleeping service waits on: the driver doorbell and
    /// the connection to the user.
    pub(crate) fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.ch.driver_bell.as_fd(), self.ch.conn.as_fd())
    }

    /// Brings the binding in line with the registry: unbinds from a driver
    /// that left, binds to one that arrived.
    fn reconcile(&mut self, host: &HostInner) {
        let (want, epoch) = host.driver_for(self.ch.uid);
        if let Some(first) = self.announced.take() {
            self.bind(first);
        }
        let cur = self.current.as_ref().map(|r| r.id);
        if cur != want.as_ref().map(|r| r.id) {
            if let Some(old) = self.current.take() {
                self.ch
                    .control(slot_flags::KIND_UNBOUND, LinkState::Unbound);
                old.ops.unbind();
            }
            if let Some(new) = want {
                self.bind(new);
            }
        }
        self.ch.mark_synced(epoch);
    }

    /// Binds the (unbound) channel to `new`: `BOUND` to the user, then the
    /// driver's `bound`.
    fn bind(&mut self, new: Registration) {
        let generation = self.ch.control(slot_flags::KIND_BOUND, LinkState::Bound);
        let handle = Handle {
            ch: Arc::clone(&self.ch),
            generation,
        };
        self.current = Some(new.clone());
        new.ops.bound(handle);
    }

    /// Drains `u2k`: each message is copied to the bounce buffer, handed to
    /// the driver (or refused with `-ENODEV` if none is bound), and its
    /// reply and rc written back in place.
    ///
    /// Each message is released as soon as it is completed, without the
    /// fence of the wake-up check (a caller spinning on its reply sees it at
    /// once); the fenced check runs once, when the ring is empty.
    /// At most one ring's worth of messages per call, so that a user who
    /// keeps the ring full cannot starve the other channels of the thread.
    fn drain(&mut self, host: &HostInner) -> Result<bool, Fault> {
        let mut worked = false;
        for _ in 0..self.rx.slot_count() {
            let Self {
                rx, msg, current, ..
            } = self;
            let inc = match rx.peek() {
                Ok(Some(inc)) => inc,
                Ok(None) => break,
                Err(RingError::Corrupt(c)) => return Err(c.into()),
                Err(e) => return Err(Fault::Attach(e)),
            };
            let (seq, flags) = (inc.seq(), inc.flags());
            if flags != slot_flags::KIND_MSG {
                return Err(Fault::SlotFlags { seq, flags });
            }
            msg.len = inc.read(&mut msg.buf);
            msg.dirty = false;
            match current {
                Some(reg) => {
                    let rc = reg.ops.got(msg);
                    if msg.dirty {
                        // Cannot fail: `msg.len` is at most `msz`.
                        let _ = inc.complete(rc, &msg.buf[..msg.len]);
                    } else {
                        inc.complete_rc(rc);
                    }
                    Counters::add(&host.counters.messages, 1);
                }
                None => {
                    let _ = inc.complete_with_flags(-errno::ENODEV, &[], slot_flags::NOT_DELIVERED);
                    Counters::add(&host.counters.not_delivered, 1);
                }
            }
            worked = true;
            if self.rx.release_deferred().is_needed() {
                let _ = self.ch.completion_bell.ring_guarded();
            }
        }
        self.flush_wake();
        Ok(worked)
    }

    /// Settles the wake-up check owed by deferred releases.
    fn flush_wake(&mut self) {
        if self.rx.flush_wake().is_needed() {
            let _ = self.ch.completion_bell.ring_guarded();
        }
    }

    pub(crate) fn teardown(&mut self, why: Teardown) {
        if self.done {
            return;
        }
        self.done = true;
        if let Teardown::Fault(f) = why {
            lock(&self.ch.fault).get_or_insert(f);
            Counters::add(&self.host.counters.corrupt, 1);
        }
        if self.current.is_some() {
            self.ch.control(slot_flags::KIND_UNBOUND, LinkState::Closed);
        } else {
            lock(&self.ch.k2u).state = LinkState::Closed;
        }
        // A user still there learns the channel is gone before the
        // driver's unbind, as a closing device file would make it. A user
        // that closed waits for the hang-up (see `Link`'s drop): it comes
        // once the UID is free again, so closing and re-opening works, as
        // on the device, whose `close` unbinds before it returns.
        let user_gone = matches!(why, Teardown::UserGone);
        if !user_gone {
            let _ = shutdown(self.ch.conn.as_raw_fd(), Shutdown::Both);
        }
        if let Some(old) = self.current.take() {
            old.ops.unbind();
        }
        self.host.remove_channel(&self.ch);
        // Statistics only, see `Counters::add`.
        self.host.counters.channels.fetch_sub(1, Ordering::Relaxed);
        if user_gone {
            let _ = shutdown(self.ch.conn.as_raw_fd(), Shutdown::Both);
        }
        self.ch.mark_closed();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if !self.done {
            // Only reached if a driver callback panicked: close the channel
            // so the user is not left waiting, without calling back into the
            // driver.
            self.done = true;
            lock(&self.ch.k2u).state = LinkState::Closed;
            self.host.remove_channel(&self.ch);
            let _ = shutdown(self.ch.conn.as_raw_fd(), Shutdown::Both);
            self.host.counters.channels.fetch_sub(1, Ordering::Relaxed);
            self.ch.mark_closed();
        }
    }
}
