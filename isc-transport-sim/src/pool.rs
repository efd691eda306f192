//! The host's service threads: a fixed set of threads, each serving many
//! channels from one `epoll` loop over their doorbells.
//!
//! A channel with work is *active*: its thread serves it (drains `u2k`,
//! flushes control messages, acts on registry changes) round after round,
//! polling `epoll` without blocking between rounds so that the other
//! channels of the thread are never starved. When a round finds nothing, the
//! thread spins for the host's spin time looking for new work among its
//! active channels, then *arms* them ([`Service::arm`]: the user is asked to
//! ring the driver doorbell) and sleeps in `epoll_wait`. An idle channel
//! therefore costs nothing but its registration in `epoll`, however many
//! there are, and a thread spins only while work keeps arriving.
//!
//! Callbacks of one channel run on its thread, one at a time, as before;
//! callbacks of different channels of the same thread run one after the
//! other, so a driver callback that blocks holds up the other channels of
//! its thread (as a blocking handler does in a kernel work queue).

use crate::error::SimError;
use crate::host::{HostInner, Service, Teardown, CONTROL_RETRY, IN_SERVICE};
use crate::sys::{Doorbell, SpinWait};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Token of the host's stop doorbell.
const STOP: u64 = u64::MAX;
/// Token of the thread's own wake doorbell (new channels in the inbox).
const WAKE: u64 = u64::MAX - 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service threads of one host, started on demand up to `max`.
pub(crate) struct Pool {
    max: usize,
    workers: Mutex<Vec<Arc<Worker>>>,
}

/// What the rest of the host shares with one service thread.
struct Worker {
    /// Rung when channels are put in the inbox.
    wake: Doorbell,
    inbox: Mutex<Inbox>,
    /// Channels served by (or on their way to) this thread.
    load: AtomicUsize,
}

struct Inbox {
    services: Vec<Service>,
    /// False once the thread stopped taking channels.
    open: bool,
}

impl Pool {
    /// A pool of at most `max` threads (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            workers: Mutex::default(),
        }
    }

    /// Hands `service` to a service thread: a new one while fewer than the
    /// maximum run, else the one serving the fewest channels.
    pub fn place(&self, host: &Arc<HostInner>, service: Service) -> Result<(), SimError> {
        let mut workers = lock(&self.workers);
        workers.retain(|w| lock(&w.inbox).open);
        if workers.len() < self.max {
            let worker = Arc::new(Worker {
                wake: Doorbell::new()?,
                inbox: Mutex::new(Inbox {
                    services: vec![service],
                    open: true,
                }),
                load: AtomicUsize::new(1),
            });
            let (w, h) = (Arc::clone(&worker), Arc::clone(host));
            let name = format!("isc-sim service {}", workers.len());
            // If the spawn fails, the closure and the service in the inbox
            // are dropped: the channel closes without callbacks.
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || run(&w, &h))?;
            host.add_thread(thread);
            workers.push(worker);
            return Ok(());
        }
        let worker = workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .expect("at least one thread runs");
        let mut inbox = lock(&worker.inbox);
        if !inbox.open {
            // The thread is stopping (the host shuts down): so does the channel.
            drop(inbox);
            let mut service = service;
            service.teardown(Teardown::Shutdown);
            return Err(SimError::Closed);
        }
        // Statistics for placement only.
        worker.load.fetch_add(1, Ordering::Relaxed);
        inbox.services.push(service);
        drop(inbox);
        worker.wake.ring()
    }
}

/// One channel in a service thread.
struct Entry {
    service: Service,
    /// In the active list (not armed).
    active: bool,
    /// When to retry queued control messages while armed.
    retry_at: Option<Instant>,
}

/// The state of one service thread.
struct Loop<'a> {
    worker: &'a Worker,
    host: &'a HostInner,
    epoll: Epoll,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    active: Vec<usize>,
}

fn run(worker: &Arc<Worker>, host: &Arc<HostInner>) {
    IN_SERVICE.with(|f| f.set(true));
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).and_then(|e| {
        e.add(
            host.stop.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, STOP),
        )?;
        e.add(
            worker.wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE),
        )?;
        Ok(e)
    });
    let mut lp = epoll.ok().map(|epoll| Loop {
        worker,
        host,
        epoll,
        entries: Vec::new(),
        free: Vec::new(),
        active: Vec::new(),
    });
    if let Some(lp) = lp.as_mut() {
        lp.serve();
    }
    // Stopping (shutdown, or this thread's epoll failed): refuse new
    // channels, then close every channel left.
    let orphans = {
        let mut inbox = lock(&worker.inbox);
        inbox.open = false;
        std::mem::take(&mut inbox.services)
    };
    if let Some(lp) = lp.as_mut() {
        for idx in 0..lp.entries.len() {
            lp.remove(idx, Some(Teardown::Shutdown));
        }
    }
    for mut service in orphans {
        let _ = catch_unwind(AssertUnwindSafe(|| service.teardown(Teardown::Shutdown)));
    }
}

impl Loop<'_> {
    /// Serves until the host shuts down.
    fn serve(&mut self) {
        let mut events = [EpollEvent::empty(); 64];
        // The channel this thread was started for is already in the inbox.
        self.take_inbox();
        loop {
            let timeout = if self.active.is_empty() {
                self.next_retry()
            } else {
                Some(Duration::ZERO)
            };
            let n = match self.epoll.wait(&mut events, epoll_timeout(timeout)) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(_) => return,
            };
            for ev in &events[..n] {
                match ev.data() {
                    STOP => return,
                    WAKE => self.take_inbox(),
                    token => {
                        let idx = (token / 2) as usize;
                        if token % 2 == 1 {
                            // Hang-up, or bytes after the handshake: either
                            // way the user is done with this channel.
                            self.remove(idx, Some(Teardown::UserGone));
                        } else {
                            self.activate(idx);
                        }
                    }
                }
            }
            if self.host.shutdown.load(Ordering::Acquire) {
                return;
            }
            self.retry_due();
            if self.active.is_empty() {
                continue;
            }
            if self.serve_active() || self.spin_for_work() {
                continue;
            }
            self.arm_active();
        }
    }

    /// Registers the channels waiting in the inbox; they start active.
    fn take_inbox(&mut self) {
        let _ = self.worker.wake.drain();
        let services = std::mem::take(&mut lock(&self.worker.inbox).services);
        for service in services {
            let idx = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.entries.push(None);
                    self.entries.len() - 1
                }
            };
            let token = idx as u64 * 2;
            let (bell, conn) = service.fds();
            let added = self
                .epoll
                .add(bell, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .and_then(|()| {
                    self.epoll
                        .add(conn, EpollEvent::new(EpollFlags::EPOLLIN, token + 1))
                });
            self.entries[idx] = Some(Entry {
                service,
                active: true,
                retry_at: None,
            });
            self.active.push(idx);
            if added.is_err() {
                // Out of memory for epoll: the channel cannot be served.
                self.remove(idx, Some(Teardown::UserGone));
            }
        }
    }

    /// Moves a sleeping channel to the active list (its doorbell rang or its
    /// control retry is due).
    fn activate(&mut self, idx: usize) {
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        // Also for an active channel: drains its doorbell, which would
        // otherwise keep `epoll_wait` returning at once.
        e.service.disarm();
        if !e.active {
            e.active = true;
            e.retry_at = None;
            self.active.push(idx);
        }
    }

    /// How long until the earliest control retry of a sleeping channel.
    fn next_retry(&self) -> Option<Duration> {
        let now = Instant::now();
        self.entries
            .iter()
            .flatten()
            .filter_map(|e| e.retry_at)
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.entries.len())
            .filter(
                |&i| matches!(&self.entries[i], Some(e) if e.retry_at.is_some_and(|t| t <= now)),
            )
            .collect();
        for idx in due {
            self.activate(idx);
        }
    }

    /// One round over the active channels; true if any had work.
    fn serve_active(&mut self) -> bool {
        let mut worked = false;
        let mut k = 0;
        while k < self.active.len() {
            let idx = self.active[k];
            let Some(Some(e)) = self.entries.get_mut(idx) else {
                self.active.swap_remove(k);
                continue;
            };
            match catch_unwind(AssertUnwindSafe(|| e.service.serve_once())) {
                Ok(Ok(w)) => {
                    worked |= w;
                    k += 1;
                }
                // `remove` takes it off the active list.
                Ok(Err(why)) => self.remove(idx, Some(why)),
                // A driver callback panicked: close the channel without
                // calling back into the driver.
                Err(_) => self.remove(idx, None),
            }
        }
        worked
    }

    /// Spins up to the host's spin time for new work on the active
    /// channels; true if some arrived.
    fn spin_for_work(&mut self) -> bool {
        let mut spin = SpinWait::new(self.host.spin);
        while spin.again() {
            for &idx in &self.active {
                if let Some(Some(e)) = self.entries.get_mut(idx) {
                    if e.service.has_work() {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Puts every active channel to sleep; those where work appeared in the
    /// meantime stay active.
    fn arm_active(&mut self) {
        let now = Instant::now();
        let mut k = 0;
        while k < self.active.len() {
            let idx = self.active[k];
            let Some(Some(e)) = self.entries.get_mut(idx) else {
                self.active.swap_remove(k);
                continue;
            };
            if e.service.arm() {
                e.active = false;
                e.retry_at = e.service.control_pending().then(|| now + CONTROL_RETRY);
                self.active.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    /// Tears a channel down (`why`; `None` after a panic: close it without
    /// callbacks) and forgets it.
    fn remove(&mut self, idx: usize, why: Option<Teardown>) {
        let Some(slot) = self.entries.get_mut(idx) else {
            return;
        };
        let Some(mut e) = slot.take() else {
            return;
        };
        self.active.retain(|&i| i != idx);
        self.free.push(idx);
        {
            let (bell, conn) = e.service.fds();
            let _ = self.epoll.delete(bell);
            let _ = self.epoll.delete(conn);
        }
        if let Some(why) = why {
            let _ = catch_unwind(AssertUnwindSafe(|| e.service.teardown(why)));
        }
        // Dropping the service after a panic closes the channel without
        // calling back into the driver.
        drop(e);
        // Statistics for placement only.
        self.worker.load.fetch_sub(1, Ordering::Relaxed);
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
