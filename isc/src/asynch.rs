//! Async calls and event streams on tokio (the `tokio` feature).
//!
//! A [`CallFuture`] takes part in the same pipelining as blocking calls:
//! its request goes into the ring on the first poll and its reply is
//! handed over by whoever drains completions. Many futures in flight on
//! one task (e.g. joined) publish first and share one doorbell: a future
//! that would have to wait yields once after publishing, so the other
//! futures polled in the same round publish before the KICK (device) or
//! the wait for replies (simulated transport), which then serves them all.
//!
//! Waiting uses the runtime's reactor: on the simulated transport the
//! leading future looks for its reply a few times in a short bounded spin
//! (the service thread usually answers within microseconds, as for a
//! blocking call), then waits for the completion doorbell through
//! [`AsyncFd`]; on the device the KICK itself completes the calls. The
//! futures and streams must be polled inside a tokio runtime with I/O
//! enabled, and a call's timeout needs its time driver
//! (`Builder::enable_all`, as `#[tokio::main]` does).

use crate::channel::{lock, ChannelHandle, Inner};
use crate::flight::{Dest, Record, Slot, Target, Waiter};
use crate::{Error, Event, Result};
use futures_core::Stream;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An fd registered with the reactor: a duplicate of one of the channel's.
#[derive(Debug)]
pub(crate) struct Fd(OwnedFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Registers a duplicate of `fd` with the current runtime's reactor.
fn register(fd: std::os::fd::BorrowedFd<'_>) -> Result<AsyncFd<Fd>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::Io(std::io::Error::other(
            "isc async operations must run inside a tokio runtime",
        )));
    }
    let fd = Fd(fd.try_clone_to_owned()?);
    // SAFETY: `Fd` owns its descriptor, which therefore stays open (and
    // the same) for as long as the `AsyncFd` holding it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| Error::Io(e.into()))
}

impl Inner {
    /// The completion doorbell, registered once with the runtime that first
    /// needs it (simulated transport only).
    fn completion_async_fd(&self) -> Result<&AsyncFd<Fd>> {
        if let Some(fd) = self.completion_fd.get() {
            return Ok(fd);
        }
        let fd = self.with_link(|link| match link.completion_fd() {
            Some(fd) => register(fd),
            None => Err(Error::Io(std::io::Error::other("no completion doorbell"))),
        })?;
        // A racing registration of the same doorbell loses and is dropped.
        Ok(self.completion_fd.get_or_init(|| fd))
    }
}

/// A call in flight as a future: resolves to the driver's result code and
/// reply, like [`ChannelHandle::call_vec`]. Returned by
/// [`ChannelHandle::call_async`].
///
/// Cancellation-safe: dropping it before it resolves withdraws the call;
/// if the request was already published the driver may still handle it,
/// and its reply is discarded (never handed to another call).
#[must_use = "a call future does nothing unless polled"]
pub struct CallFuture {
    inner: Arc<Inner>,
    request: Vec<u8>,
    record: Arc<Record>,
    /// Sequence number once the request is in the ring.
    seq: Option<u32>,
    /// This future is the channel's leader.
    leader: bool,
    /// Published, and yielded once so that the futures polled after this
    /// one publish before the KICK (device) or the wait (sim).
    yielded: bool,
    timeout: Duration,
    unlimited: bool,
    /// The timeout's timer, started the first time the call has to wait
    /// (not at a yield that lets other calls join a KICK): a call that
    /// completes without waiting reads no clock.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last `Pending` was a wait (for the reply or for room).
    waiting: bool,
    finished: bool,
}

impl CallFuture {
    fn new(handle: &ChannelHandle, request: &[u8], timeout: Duration) -> Self {
        let msz = handle.0.u2k_msz as usize;
        Self {
            inner: Arc::clone(&handle.0),
            request: request.to_vec(),
            record: Arc::new(Record::new(Dest::Owned(Vec::with_capacity(msz)))),
            seq: None,
            leader: false,
            yielded: false,
            timeout,
            unlimited: timeout == Duration::MAX,
            sleep: None,
            waiting: false,
            finished: false,
        }
    }

    fn finish(&mut self) -> Result<(i32, Vec<u8>)> {
        self.finished = true;
        match self.record.take() {
            None => Err(Error::Closed),
            Some(o) if o.not_delivered => Err(Error::NotBound),
            Some(o) => match o.dest {
                Dest::Owned(mut v) => {
                    v.truncate(o.len);
                    Ok((o.rc, v))
                }
                Dest::Borrowed { .. } => Ok((o.rc, Vec::new())),
            },
        }
    }

    /// Steps down as leader and withdraws the call if it is not done. A
    /// call that was woken to take the lead passes it on.
    fn release(&mut self) {
        let pending = self.seq.is_some() && !self.record.is_done();
        if !pending && !self.leader {
            self.inner.ensure_leader();
            return;
        }
        if let Some(t) = lock(&self.inner.tx).as_mut() {
            if let Some(seq) = self.seq {
                if !self.record.is_done() {
                    t.abandon(seq, &self.record);
                }
            }
            if self.leader {
                t.producer().finish_wait();
                t.resign();
            } else {
                t.ensure_leader();
            }
        }
        self.leader = false;
    }

    /// Registers whom to wake: for the reply, or for room in the ring.
    /// Called under the ring lock.
    fn register(&self, t: &mut crate::flight::Tx, w: Waiter) {
        match self.seq {
            // SAFETY: under the ring lock; the record is registered (its
            // entry holds an Arc) and not done (checked after the drain).
            Some(_) => unsafe { self.record.set_waiter(Some(w)) },
            None => t.wait_space(w),
        }
    }

    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<(i32, Vec<u8>)>> {
        let inner = Arc::clone(&self.inner);
        // Sim: the leader's look for its reply before it sleeps, once per
        // poll (a local: the future stays `Sync`).
        let spin = crossbeam_utils::Backoff::new();
        loop {
            if self.seq.is_some() && !self.leader && self.record.is_done() {
                inner.ensure_leader();
                return Poll::Ready(self.finish());
            }
            let mut guard = lock(&inner.tx);
            let Some(t) = guard.as_mut() else {
                return Poll::Ready(Err(Error::Closed));
            };
            if self.seq.is_none() {
                let target = Slot::Call(Target::Shared(Arc::clone(&self.record)));
                match t.push(&self.request, target) {
                    Ok(seq) => {
                        self.seq = Some(seq);
                        let wake = inner.publish_tx(t);
                        if inner.kick_always {
                            if t.leader {
                                // The running kick's leader kicks again.
                                t.kick_pending = true;
                            }
                            drop(guard);
                        } else {
                            drop(guard);
                            if wake.is_needed() {
                                inner.kick()?;
                            }
                        }
                        continue;
                    }
                    Err(Error::Full) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            } else {
                t.drain()?;
                if self.record.is_done() {
                    if self.leader {
                        self.leader = false;
                        t.producer().finish_wait();
                        t.resign();
                    } else {
                        // This call may be the successor a resigning leader
                        // woke: leaving, it must pass the lead on, or the
                        // calls behind it wait with nobody draining.
                        t.ensure_leader();
                    }
                    drop(guard);
                    return Poll::Ready(self.finish());
                }
            }
            // Not done (or no room yet): lead, or wait for the leader.
            if t.leader && !self.leader {
                self.register(t, Waiter::Task(cx.waker().clone()));
                self.waiting = true;
                return Poll::Pending;
            }
            if !self.yielded && self.seq.is_some() {
                // Let futures polled after this one publish first: one KICK
                // (device), or one wait for the replies (sim), then serves
                // them all.
                self.yielded = true;
                drop(guard);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if inner.kick_always {
                t.leader = true;
                self.leader = true;
                t.kick_pending = false;
                drop(guard);
                // The driver runs in this KICK, in this task.
                if let Err(e) = inner.kick() {
                    return Poll::Ready(Err(e));
                }
                continue;
            }
            // Simulated transport: lead. The service thread usually answers
            // within microseconds; look again a few times, as a blocking
            // call does, before sleeping on the completion doorbell (which
            // costs a wake-up on both sides).
            t.leader = true;
            self.leader = true;
            if !spin.is_completed() {
                drop(guard);
                spin.snooze();
                continue;
            }
            let newest = t.newest();
            let must_wait = t.producer().prepare_wait_for_release(newest);
            drop(guard);
            if !must_wait {
                continue;
            }
            let fd = inner.completion_async_fd()?;
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => {
                    ready.clear_ready();
                    inner.with_link(|link| {
                        link.clear_completion();
                        Ok(())
                    })?;
                    if let Some(t) = lock(&inner.tx).as_mut() {
                        t.producer().finish_wait();
                    }
                    inner.check_open()?;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    // Someone else may drain our completion first.
                    if let Some(t) = lock(&inner.tx).as_mut() {
                        self.register(t, Waiter::Task(cx.waker().clone()));
                    }
                    self.waiting = true;
                    return Poll::Pending;
                }
            }
        }
    }
}

// Futures and streams may be shared and moved across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CallFuture>();
    send_sync::<EventStream>();
};

impl std::fmt::Debug for CallFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture")
            .field("uid", &self.inner.uid)
            .field("seq", &self.seq)
            .field("done", &self.record.is_done())
            .finish()
    }
}

impl Future for CallFuture {
    type Output = Result<(i32, Vec<u8>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(Error::Closed));
        }
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() && !this.record.is_done() {
                return Poll::Ready(this.timed_out());
            }
        }
        this.waiting = false;
        let r = this.poll_call(cx);
        match r {
            Poll::Ready(Err(_)) => {
                this.release();
                this.finished = true;
            }
            Poll::Pending if this.waiting && this.sleep.is_none() && !this.unlimited => {
                // A deadline past the clock's range is no deadline.
                match tokio::time::Instant::now().checked_add(this.timeout) {
                    Some(at) => {
                        let mut sleep = Box::pin(tokio::time::sleep_until(at));
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(this.timed_out());
                        }
                        this.sleep = Some(sleep);
                    }
                    None => this.unlimited = true,
                }
            }
            _ => {}
        }
        r
    }
}

impl CallFuture {
    fn timed_out(&mut self) -> Result<(i32, Vec<u8>)> {
        self.release();
        self.finished = true;
        Err(Error::Timeout(self.timeout))
    }
}

impl Drop for CallFuture {
    fn drop(&mut self) {
        self.release();
    }
}

/// The channel's events as a [`Stream`]; ends when the channel closes.
/// Returned by [`ChannelHandle::event_stream`].
///
/// Like [`recv`](ChannelHandle::recv), it fails with
/// [`Error::ListenersActive`] while listeners are registered.
#[derive(Debug)]
pub struct EventStream {
    handle: ChannelHandle,
    /// Dropped as soon as the channel is seen closed: on the device it is a
    /// duplicate of the channel's descriptor and would keep it open.
    fd: Option<AsyncFd<Fd>>,
}

impl Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        loop {
            let Some(fd) = this.fd.as_ref() else {
                return Poll::Ready(None);
            };
            // `try_recv` arms the fd when it finds nothing.
            match this.handle.try_recv() {
                Ok(Some(ev)) => return Poll::Ready(Some(Ok(ev))),
                Ok(None) => {}
                Err(Error::Closed) => {
                    this.fd = None;
                    return Poll::Ready(None);
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => ready.clear_ready(),
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl ChannelHandle {
    /// The call as a future (see [`CallFuture`]), with the channel's
    /// timeout; resolves to `(rc, reply)` like
    /// [`call_vec`](Self::call_vec). The request is copied; it is sent on
    /// the first poll.
    ///
    /// ```no_run
    /// # async fn demo(channel: isc::Channel) -> isc::Result<()> {
    /// // 32 calls in flight at once, sharing doorbells.
    /// let calls = (0..32u32).map(|i| channel.call_async(&i.to_le_bytes()));
    /// for r in futures::future::join_all(calls).await {
    ///     let (rc, reply) = r?;
    ///     println!("rc {rc}, {} bytes", reply.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn call_async(&self, request: &[u8]) -> CallFuture {
        CallFuture::new(self, request, self.0.timeout)
    }

    /// Like [`call_async`](Self::call_async) with its own timeout
    /// (`Duration::MAX`: none).
    pub fn call_async_timeout(&self, request: &[u8], timeout: Duration) -> CallFuture {
        CallFuture::new(self, request, timeout)
    }

    /// The channel's events as a [`Stream`], woken by the runtime's
    /// reactor. Fails outside a tokio runtime, or if the channel is closed.
    pub fn event_stream(&self) -> Result<EventStream> {
        let fd = self.0.with_link(|link| register(link.posts_fd()))?;
        Ok(EventStream {
            handle: self.clone(),
            fd: Some(fd),
        })
    }
}
