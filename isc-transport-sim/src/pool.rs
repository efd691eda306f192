//! The host's service threads: a pool that shares one `epoll` instance over
//! the doorbells and connections of every channel, and a run queue of the
//! channels that have work.
//!
//! # Channels
//!
//! A channel is in one of three states ([`Slot::state`]):
//! - *idle*: its service sleeps (armed: the user rings the driver doorbell
//!   for its next message); only an `epoll` event or a control retry wakes it;
//! - *queued*: it is in the run queue or a thread is serving it;
//! - *notified*: queued, and woken again since it was taken from the queue.
//!
//! An event (its doorbell rang, its connection hung up, its control retry
//! is due) moves an idle channel to the run queue and marks a queued one
//! notified; it never queues a channel twice. A thread takes the channel
//! at the head of the queue and serves it one round (drains at most one
//! ring's worth of `u2k`, flushes control messages, acts on registry
//! changes): the channel's callbacks therefore run on one thread at a time,
//! in order, though not always the same thread. After the round the channel
//! goes back to the end of the queue while it has work or while its spin
//! time since its last piece of work lasts; then it is armed and becomes
//! idle, unless it was notified meanwhile. An idle channel costs nothing but
//! its registration in `epoll`, however many there are.
//!
//! # Threads
//!
//! The pool starts threads as channels arrive, up to its base count. Any
//! free thread takes any queued channel, so a driver callback that blocks
//! holds up only its own channel while another thread is free. When every
//! thread has been inside one round of service for longer than [`STALL`]
//! (callbacks that sleep or compute), a manager thread starts one more, up
//! to [`MAX_EXTRA_SERVICE_THREADS`] beyond the base count, the way the
//! kernel's concurrency-managed work queues keep a worker available while
//! others sleep. The manager sleeps without a timeout while no thread is
//! inside a round, so an idle host costs no CPU. A thread beyond the base
//! count that finds nothing to do for [`RETIRE`] exits.
//!
//! Idle threads sleep in `epoll_wait` on the shared instance (the kernel
//! wakes one of them per event). A thread that takes a channel while others
//! are left in the queue wakes a sleeping thread to help, so queued work
//! never waits on a thread stuck in a callback while another sleeps.

use crate::error::SimError;
use crate::host::{HostInner, Service, Teardown, CONTROL_RETRY, IN_SERVICE};
use crate::sys::{Doorbell, PURE_SPIN};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How many threads a pool may start beyond its base count while driver
/// callbacks block or run long (a hard cap: beyond it, channels wait for a
/// thread to come back).
pub const MAX_EXTRA_SERVICE_THREADS: usize = 64;

/// How long every service thread must have been inside one round of service
/// before the pool starts another thread. The manager checks at this
/// period, so a stall is noticed after one to two periods.
pub(crate) const STALL: Duration = Duration::from_millis(5);

/// How long a thread beyond the base count waits for work before it exits.
pub(crate) const RETIRE: Duration = Duration::from_secs(1);

/// Token of the host's stop doorbell.
const STOP: u64 = u64::MAX;
/// Token of the pool's wake doorbell (queued work for a sleeping thread).
const WAKE: u64 = u64::MAX - 1;
/// A channel's tokens: `id << 1` for its driver doorbell, `id << 1 | 1`
/// for its connection. Ids are never reused, so a stale event cannot reach
/// another channel.
const CONN: u64 = 1;

/// Armed, sleeping in `epoll`.
const IDLE: u8 = 0;
/// In the run queue or being served.
const QUEUED: u8 = 1;
/// Queued, and woken again since it was taken from the queue.
const NOTIFIED: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a driver callback panicked elsewhere; the
    // protected state is always left consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One channel in the pool.
struct Slot {
    id: u64,
    /// [`IDLE`], [`QUEUED`] or [`NOTIFIED`].
    state: AtomicU8,
    /// The connection reported a hang-up (or bytes after the handshake).
    user_gone: AtomicBool,
    /// Held by the thread serving the channel.
    chan: Mutex<Chan>,
}

struct Chan {
    /// `None` once the channel is torn down.
    service: Option<Service>,
    /// The service sleeps ([`Service::arm`] succeeded).
    armed: bool,
    /// The end of its last round that found work.
    last_work: Instant,
    /// Its last round found nothing and it was queued again unarmed.
    spinning: bool,
}

/// The channels of the pool, by id.
struct Slots {
    map: HashMap<u64, Arc<Slot>>,
    next: u64,
    /// Set when the threads stop: no channel is added after.
    closed: bool,
}

/// One service thread, as the manager sees it.
struct Worker {
    /// Odd while the thread is inside a round of service.
    seq: AtomicU64,
    /// The manager's previous reading of `seq`.
    seen: AtomicU64,
}

impl Worker {
    fn busy(&self) -> bool {
        self.seq.load(Ordering::Relaxed) % 2 == 1
    }
}

struct Workers {
    live: Vec<Arc<Worker>>,
    /// Threads started so far (for their names).
    started: usize,
    manager: Option<Thread>,
}

/// The service threads of one host and the channels they serve.
pub(crate) struct Pool {
    base: usize,
    epoll: Epoll,
    wake: Doorbell,
    slots: Mutex<Slots>,
    queue: Mutex<VecDeque<Arc<Slot>>>,
    /// Control retries of idle channels, due at the given instants.
    timers: Mutex<Vec<(Instant, Arc<Slot>)>>,
    /// Threads in (or about to enter) `epoll_wait`.
    sleepers: AtomicUsize,
    workers: Mutex<Workers>,
    /// Live threads (`workers.live.len()`, readable without the lock).
    live: AtomicUsize,
    /// The manager sleeps without a timeout.
    manager_parked: AtomicBool,
}

/// What a round of service left the channel in.
enum Outcome {
    /// It had work; it is queued again.
    Worked,
    /// No work yet, idle for this long; it is queued again.
    Dry(Duration),
    /// Armed and idle, or torn down: no longer this thread's.
    Done,
}

impl Pool {
    /// A pool of at least one and at most `base` threads (plus the extra
    /// threads started while callbacks block), woken by `stop` at shutdown.
    pub fn new(base: usize, stop: &Doorbell) -> Result<Self, SimError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = Doorbell::new()?;
        // Level-triggered and never drained: every thread sees it.
        epoll.add(stop.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, STOP))?;
        // Edge-triggered: each ring wakes one sleeping thread.
        epoll.add(
            wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, WAKE),
        )?;
        Ok(Self {
            base: base.max(1),
            epoll,
            wake,
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                next: 0,
                closed: false,
            }),
            queue: Mutex::default(),
            timers: Mutex::default(),
            sleepers: AtomicUsize::new(0),
            workers: Mutex::new(Workers {
                live: Vec::new(),
                started: 0,
                manager: None,
            }),
            live: AtomicUsize::new(0),
            manager_parked: AtomicBool::new(false),
        })
    }

    /// Service threads currently running.
    pub fn threads(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Hands `service` to the pool: it is registered in `epoll` and queued
    /// for its first round (which calls `bound` if a driver is registered).
    pub fn place(&self, host: &Arc<HostInner>, mut service: Service) -> Result<(), SimError> {
        if let Err(e) = self.ensure_thread(host) {
            service.teardown(Teardown::Shutdown);
            return Err(e);
        }
        let slot = {
            let mut slots = lock(&self.slots);
            if slots.closed {
                drop(slots);
                // The threads are stopping (the host shuts down): so does
                // the channel.
                service.teardown(Teardown::Shutdown);
                return Err(SimError::Closed);
            }
            let id = slots.next;
            slots.next += 1;
            if let Err(e) = self.watch(id, &service) {
                drop(slots);
                service.teardown(Teardown::Shutdown);
                return Err(e.into());
            }
            let slot = Arc::new(Slot {
                id,
                state: AtomicU8::new(QUEUED),
                user_gone: AtomicBool::new(false),
                chan: Mutex::new(Chan {
                    service: Some(service),
                    armed: false,
                    last_work: Instant::now(),
                    spinning: false,
                }),
            });
            slots.map.insert(id, Arc::clone(&slot));
            slot
        };
        self.push(slot);
        self.wake_one();
        Ok(())
    }

    /// Registers a channel's doorbell and connection in `epoll`.
    fn watch(&self, id: u64, service: &Service) -> Result<(), Errno> {
        let (bell, conn) = service.fds();
        // Edge-triggered: an event per ring or hang-up, none while the
        // channel is queued and its doorbell stays undrained.
        self.epoll.add(
            bell,
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, id << 1),
        )?;
        let added = self.epoll.add(
            conn,
            EpollEvent::new(
                EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET,
                id << 1 | CONN,
            ),
        );
        if added.is_err() {
            let _ = self.epoll.delete(bell);
        }
        added
    }

    /// Starts a thread while fewer than the base count run.
    fn ensure_thread(&self, host: &Arc<HostInner>) -> Result<(), SimError> {
        let mut workers = lock(&self.workers);
        if workers.live.len() >= self.base {
            return Ok(());
        }
        match self.spawn_locked(host, &mut workers) {
            Ok(()) => Ok(()),
            // Some thread serves the channel: carry on with fewer threads.
            Err(_) if !workers.live.is_empty() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts one service thread (and the manager with the first one).
    fn spawn_locked(&self, host: &Arc<HostInner>, workers: &mut Workers) -> Result<(), SimError> {
        if host.shutdown.load(Ordering::Acquire) {
            return Err(SimError::Closed);
        }
        if workers.manager.is_none() {
            let h = Arc::clone(host);
            let thread = std::thread::Builder::new()
                .name("isc-sim manager".into())
                .spawn(move || manage(&h))?;
            workers.manager = Some(thread.thread().clone());
            host.add_thread(thread);
        }
        let worker = Arc::new(Worker {
            seq: AtomicU64::new(0),
            seen: AtomicU64::new(0),
        });
        let (w, h) = (Arc::clone(&worker), Arc::clone(host));
        let thread = std::thread::Builder::new()
            .name(format!("isc-sim service {}", workers.started))
            .spawn(move || run(&h, &w))?;
        workers.started += 1;
        workers.live.push(worker);
        self.live.store(workers.live.len(), Ordering::Relaxed);
        host.add_thread(thread);
        Ok(())
    }

    /// Wakes the manager when shutting down.
    pub fn stop(&self) {
        if let Some(m) = &lock(&self.workers).manager {
            m.unpark();
        }
    }

    fn push(&self, slot: Arc<Slot>) {
        lock(&self.queue).push_back(slot);
    }

    /// Wakes one sleeping thread, if any sleeps.
    fn wake_one(&self) {
        // SeqCst pairs with the increment in `wait`: either the sleeper sees
        // the queued work when it checks the queue, or this sees the sleeper.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _ = self.wake.ring();
        }
    }

    /// Makes `slot` runnable: queues an idle channel, marks a queued one.
    fn schedule(&self, slot: &Arc<Slot>) -> bool {
        let mut s = slot.state.load(Ordering::Acquire);
        loop {
            let next = match s {
                IDLE => QUEUED,
                QUEUED => NOTIFIED,
                _ => return false,
            };
            // AcqRel: the owner's swap in `serve` reads NOTIFIED and then
            // sees what was done before (a hang-up flag); a thread queueing
            // an idle channel sees what its last owner did.
            match slot
                .state
                .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if s == IDLE => {
                    self.push(Arc::clone(slot));
                    return true;
                }
                Ok(_) => return false,
                Err(now) => s = now,
            }
        }
    }

    /// Sleeps until an event, a timer or queued work; schedules what woke
    /// it. False when the thread must stop (shutdown, or it retires).
    fn wait(&self, host: &HostInner, me: &Arc<Worker>, events: &mut [EpollEvent]) -> bool {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if !lock(&self.queue).is_empty() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        let surplus = self.live.load(Ordering::Relaxed) > self.base;
        let timer = self.next_timer();
        let timeout = match (timer, surplus) {
            (Some(t), true) => Some(t.min(RETIRE)),
            (t, false) => t,
            (None, true) => Some(RETIRE),
        };
        let got = self.epoll.wait(events, epoll_timeout(timeout));
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        if matches!(got, Ok(0)) && surplus && timer.is_none() && self.retire(me) {
            return false;
        }
        self.take_events(host, got, events)
    }

    /// Schedules what is ready without sleeping: a busy thread calls this
    /// about once per pass over the queue, so events are never left waiting
    /// while every thread is busy. False when the thread must stop.
    fn poll(&self, host: &HostInner, events: &mut [EpollEvent]) -> bool {
        let got = self.epoll.wait(events, EpollTimeout::ZERO);
        self.take_events(host, got, events)
    }

    /// Schedules the channels of `events` (the result of an `epoll_wait`)
    /// and of the due control retries. False when the thread must stop.
    fn take_events(
        &self,
        host: &HostInner,
        got: Result<usize, Errno>,
        events: &[EpollEvent],
    ) -> bool {
        let n = match got {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(_) => {
                // Not expected for a valid instance; back off rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        };
        let mut ready = Vec::new();
        {
            let slots = lock(&self.slots);
            for ev in &events[..n] {
                match ev.data() {
                    STOP => return false,
                    WAKE => {}
                    token => {
                        if let Some(slot) = slots.map.get(&(token >> 1)) {
                            if token & CONN != 0 {
                                // Release: see `schedule`.
                                slot.user_gone.store(true, Ordering::Release);
                            }
                            ready.push(Arc::clone(slot));
                        }
                    }
                }
            }
        }
        self.fire_timers(&mut ready);
        for slot in &ready {
            self.schedule(slot);
        }
        !host.shutdown.load(Ordering::Acquire)
    }

    /// Leaves the pool if it still has more threads than its base count.
    fn retire(&self, me: &Arc<Worker>) -> bool {
        let mut workers = lock(&self.workers);
        if workers.live.len() <= self.base {
            return false;
        }
        workers.live.retain(|w| !Arc::ptr_eq(w, me));
        self.live.store(workers.live.len(), Ordering::Relaxed);
        true
    }

    /// Time until the earliest control retry.
    fn next_timer(&self) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.timers)
            .iter()
            .map(|(t, _)| t.saturating_duration_since(now))
            .min()
    }

    /// Moves the slots of due control retries to `ready`.
    fn fire_timers(&self, ready: &mut Vec<Arc<Slot>>) {
        let mut timers = lock(&self.timers);
        if timers.is_empty() {
            return;
        }
        let now = Instant::now();
        timers.retain(|(t, slot)| {
            if *t <= now {
                ready.push(Arc::clone(slot));
                false
            } else {
                true
            }
        });
    }

    /// Takes the channel at the head of the queue, waking another thread if
    /// more are left; also returns how many are left.
    fn pop(&self) -> Option<(Arc<Slot>, usize)> {
        let (slot, left) = {
            let mut q = lock(&self.queue);
            let slot = q.pop_front()?;
            (slot, q.len())
        };
        if left > 0 {
            // This thread may block in a callback: let a sleeping one take
            // the rest.
            self.wake_one();
        }
        Some((slot, left))
    }

    /// One round of service of `slot`, owned by this thread.
    fn serve(&self, host: &HostInner, slot: Arc<Slot>) -> Outcome {
        // AcqRel: see `schedule`. A notification before this point is
        // covered by the round below.
        slot.state.swap(QUEUED, Ordering::AcqRel);
        let mut guard = lock(&slot.chan);
        let ch = &mut *guard;
        let Some(service) = ch.service.as_mut() else {
            return Outcome::Done;
        };
        if std::mem::take(&mut ch.armed) {
            service.disarm();
            ch.spinning = false;
        }
        // A user that hung up is served one last round first: its bind
        // reply may have said "bound" (the driver then gets `bound` before
        // `unbind`), and what it published before leaving is delivered.
        let gone = slot.user_gone.load(Ordering::Acquire);
        // A channel spinning for work skips the full round while a cheap
        // look finds nothing.
        let skip = ch.spinning && !gone && !service.control_pending() && !service.has_work();
        let round = match catch_unwind(AssertUnwindSafe(|| {
            if skip {
                Ok(false)
            } else {
                service.serve_once()
            }
        })) {
            Ok(Ok(_)) if gone => Err(Some(Teardown::UserGone)),
            Ok(Ok(worked)) => Ok(worked),
            Ok(Err(why)) => Err(Some(why)),
            // A driver callback panicked: close the channel without calling
            // back into the driver.
            Err(_) => Err(None),
        };
        let now = Instant::now();
        let idle = match round {
            Err(why) => {
                self.remove(&slot, ch, why);
                return Outcome::Done;
            }
            Ok(true) => {
                ch.last_work = now;
                ch.spinning = false;
                drop(guard);
                self.push(slot);
                return Outcome::Worked;
            }
            Ok(false) => now.saturating_duration_since(ch.last_work),
        };
        if idle < host.spin || !service.arm() {
            ch.spinning = true;
            drop(guard);
            self.push(slot);
            return Outcome::Dry(idle);
        }
        ch.armed = true;
        let retry = service.control_pending();
        drop(guard);
        if retry {
            lock(&self.timers).push((now + CONTROL_RETRY, Arc::clone(&slot)));
            // A sleeping thread recomputes its timeout.
            self.wake_one();
        }
        // Hand the channel to `epoll`, unless an event came meanwhile.
        match slot
            .state
            .compare_exchange(QUEUED, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Outcome::Done,
            Err(_) => {
                self.push(slot);
                Outcome::Dry(idle)
            }
        }
    }

    /// Tears a channel down (`why`; `None` after a panic: close it without
    /// callbacks) and forgets it. The caller holds its lock.
    fn remove(&self, slot: &Slot, ch: &mut Chan, why: Option<Teardown>) {
        let Some(mut service) = ch.service.take() else {
            return;
        };
        lock(&self.slots).map.remove(&slot.id);
        {
            let (bell, conn) = service.fds();
            let _ = self.epoll.delete(bell);
            let _ = self.epoll.delete(conn);
        }
        if let Some(why) = why {
            let _ = catch_unwind(AssertUnwindSafe(|| service.teardown(why)));
        }
        // Dropping the service after a panic closes the channel without
        // calling back into the driver.
        drop(service);
    }

    /// At shutdown: refuses new channels and closes every channel left
    /// (waiting for a callback still running on another thread).
    fn close_all(&self) {
        let slots: Vec<Arc<Slot>> = {
            let mut s = lock(&self.slots);
            s.closed = true;
            s.map.drain().map(|(_, v)| v).collect()
        };
        for slot in slots {
            let mut ch = lock(&slot.chan);
            self.remove(&slot, &mut ch, Some(Teardown::Shutdown));
        }
        lock(&self.queue).clear();
        lock(&self.timers).clear();
    }
}

impl Worker {
    /// Marks the start of a round; wakes the manager if it sleeps.
    fn enter(&self, pool: &Pool) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Pairs with the fence in `manage`: either the manager sees this
        // round before it sleeps, or this sees it asleep.
        fence(Ordering::SeqCst);
        if pool.manager_parked.load(Ordering::Relaxed)
            && pool.manager_parked.swap(false, Ordering::Relaxed)
        {
            if let Some(m) = &lock(&pool.workers).manager {
                m.unpark();
            }
        }
    }

    fn leave(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
    }
}

/// A service thread.
fn run(host: &Arc<HostInner>, me: &Arc<Worker>) {
    IN_SERVICE.with(|f| f.set(true));
    let pool = &host.pool;
    let mut events = [EpollEvent::empty(); 64];
    // Rounds in a row that found no work.
    let mut dry = 0usize;
    // Rounds since this thread last looked at `epoll`, and the length of
    // the queue behind its last channel.
    let (mut since_poll, mut last_left) = (0usize, 0usize);
    loop {
        if host.shutdown.load(Ordering::Acquire) {
            break;
        }
        if since_poll > last_left {
            // About one pass over the queue since the last look. Before
            // taking a channel, so that `pop` wakes a sleeping thread for
            // what this queued if this thread then blocks in a callback.
            since_poll = 0;
            if !pool.poll(host, &mut events) {
                break;
            }
        }
        if let Some((slot, left)) = pool.pop() {
            since_poll += 1;
            last_left = left;
            me.enter(pool);
            let outcome = pool.serve(host, slot);
            me.leave();
            match outcome {
                Outcome::Worked => dry = 0,
                Outcome::Dry(idle) => {
                    dry += 1;
                    if dry > left {
                        // A whole pass over the queue found nothing: wait a
                        // little, as `SpinWait` does.
                        dry = 0;
                        if idle < PURE_SPIN {
                            for _ in 0..16 {
                                std::hint::spin_loop();
                            }
                        } else {
                            std::thread::yield_now();
                        }
                    }
                }
                Outcome::Done => {}
            }
            continue;
        }
        dry = 0;
        (since_poll, last_left) = (0, 0);
        if !pool.wait(host, me, &mut events) {
            break;
        }
    }
    if host.shutdown.load(Ordering::Acquire) {
        pool.close_all();
        // Pass the stop on: every sleeping thread wakes and leaves.
        let _ = host.stop.ring();
    }
}

/// The manager: starts a thread when every thread has been stuck in one
/// round for a whole [`STALL`] period; sleeps while no round runs.
fn manage(host: &Arc<HostInner>) {
    let pool = &host.pool;
    loop {
        if host.shutdown.load(Ordering::Acquire) {
            return;
        }
        let (any_busy, all_stuck) = {
            let workers = lock(&pool.workers);
            let mut any_busy = false;
            let mut all_stuck = !workers.live.is_empty();
            for w in &workers.live {
                let seq = w.seq.load(Ordering::Relaxed);
                let busy = seq % 2 == 1;
                any_busy |= busy;
                all_stuck &= busy && w.seen.swap(seq, Ordering::Relaxed) == seq;
            }
            (any_busy, all_stuck)
        };
        if all_stuck {
            let mut workers = lock(&pool.workers);
            if workers.live.len() < pool.base + MAX_EXTRA_SERVICE_THREADS {
                let _ = pool.spawn_locked(host, &mut workers);
            }
        }
        if any_busy {
            std::thread::park_timeout(STALL);
            continue;
        }
        pool.manager_parked.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Worker::enter`.
        fence(Ordering::SeqCst);
        let busy_now = lock(&pool.workers).live.iter().any(|w| w.busy());
        if !busy_now && !host.shutdown.load(Ordering::Acquire) {
            std::thread::park();
        }
        pool.manager_parked.store(false, Ordering::Relaxed);
    }
}

/// An `epoll_wait` timeout from an optional duration, rounded up to whole
/// milliseconds so a short wait never becomes a busy loop.
fn epoll_timeout(timeout: Option<Duration>) -> EpollTimeout {
    match timeout {
        None => EpollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            EpollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(EpollTimeout::MAX)
        }
    }
}
