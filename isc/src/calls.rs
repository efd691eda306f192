//! Blocking calls and sends: submitting to `u2k`, doorbells, and waiting.
//!
//! # Who kicks, who drains, who sleeps
//!
//! The ring lock is held only to push, publish and drain, never across a
//! sleep or a system call. A caller pushes its message, registers its
//! [`Record`] in the slot table and publishes. Then, until its record is
//! done, it drains completions (for everyone: each goes to its own
//! record), first spinning briefly, then sleeping:
//!
//! - At most one caller at a time is the **leader**. On the simulated
//!   transport the leader sleeps on the completion doorbell (after the
//!   ring's wake-up handshake); on the device the leader is the one that
//!   kicks, and the driver runs in its context during the KICK. The other
//!   callers park until the leader hands them their result or steps down.
//! - Doorbells are combined. On the device, a caller that publishes while
//!   a leader's KICK is running does not kick: it sets `kick_pending`, and
//!   the leader kicks again before it leaves, or, if its own call is done,
//!   hands leadership to a parked caller, which kicks for everyone. So one
//!   KICK serves every message queued while the previous one ran. On the
//!   simulated transport a publisher rings only if the service thread
//!   sleeps.
//! - A leader that leaves wakes one parked caller; a caller checks for a
//!   leader under the lock before it parks, so there is always someone to
//!   drain while calls are in flight.
//!
//! No clock is read unless a wait is about to sleep, and nothing is
//! allocated on a call's path.

use crate::channel::{lock, Inner, WAIT_SLICE};
use crate::flight::{Dest, Outcome, Record, Slot, Target, Tx, Waiter};
use crate::{Error, Result};
use crossbeam_utils::Backoff;
use std::ptr::NonNull;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// A deadline started lazily: the clock is read only when a wait is about
/// to sleep, so a call that completes while spinning reads no clock.
/// `Duration::MAX` (or any timeout past the clock's range) never expires.
#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Duration,
    at: Option<Option<Instant>>,
}

impl Deadline {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, at: None }
    }

    /// Starts the clock now (for waits that sleep at once).
    pub fn started(timeout: Duration) -> Self {
        let mut d = Self::new(timeout);
        d.start();
        d
    }

    fn start(&mut self) -> Option<Instant> {
        *self
            .at
            .get_or_insert_with(|| Instant::now().checked_add(self.timeout))
    }

    /// Time left (`None`: no limit), or [`Error::Timeout`].
    pub fn left(&mut self) -> Result<Option<Duration>> {
        match self.start() {
            None => Ok(None),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::Timeout(self.timeout))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }

    /// How long the next sleep may last: the time left, at most one slice.
    pub fn slice(&mut self) -> Result<Duration> {
        Ok(self.left()?.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE)))
    }
}

/// The leader role, if this operation holds it; dropping it steps down.
pub(crate) struct Lead<'a> {
    inner: &'a Inner,
    pub held: bool,
}

impl<'a> Lead<'a> {
    pub fn new(inner: &'a Inner) -> Self {
        Self { inner, held: false }
    }

    /// Steps down under the lock the caller holds.
    fn resign(&mut self, t: &mut Tx) {
        if self.held {
            self.held = false;
            t.resign();
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if self.held {
            if let Some(t) = lock(&self.inner.tx).as_mut() {
                self.resign(t);
            }
        }
    }
}

/// A call registered in the slot table; dropping it before the record is
/// done withdraws the registration, so the drainer never touches the
/// record (or the caller's buffer) after the caller has gone.
pub(crate) struct Registration<'a> {
    inner: &'a Inner,
    seq: u32,
    record: &'a Record,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if !self.record.is_done() {
            if let Some(t) = lock(&self.inner.tx).as_mut() {
                t.abandon(self.seq, self.record);
            }
            // With the channel closed the slot table is gone, and with it
            // the only reference to the record.
        }
    }
}

/// What the caller must do after publishing, once the lock is released.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterPublish {
    Nothing,
    /// Ring the doorbell (the simulated host's service thread sleeps).
    Ring,
}

impl Inner {
    /// [`Tx::ensure_leader`] for a caller leaving without the lock, which
    /// it takes only if the flag says a hand-off may be pending.
    pub(crate) fn ensure_leader(&self) {
        // Relaxed: only a hint to look under the lock. A caller whose call
        // a drainer completed after the leader stepped down sees the flag:
        // the drain's lock acquisition orders it after the store.
        if self.leaderless.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(t) = lock(&self.tx).as_mut() {
                t.ensure_leader();
            }
        }
    }

    /// Makes everything pushed to `u2k` visible to the consumer.
    ///
    /// On the device the kernel reads `u2k` only inside a KICK, which
    /// always follows a publish (the publisher's own, or the leader's next
    /// one), and never sleeps on the ring's wake-up flag: the bare Release
    /// store of `publish_deferred` is all it needs, and the fenced wake-up
    /// check is never paid (it stays owed, which matters only to
    /// `prepare_wait*` on `u2k`, never called on the device). On the
    /// simulated transport the service thread may sleep, so each publish
    /// (one per burst of pushes) pays the fenced check.
    pub(crate) fn publish_tx(&self, t: &mut Tx) -> isc_ring::NeedsWake {
        if self.kick_always {
            let _ = t.producer().publish_deferred();
            isc_ring::NeedsWake(false)
        } else {
            t.producer().publish()
        }
    }

    /// Publishes what was pushed and decides who rings: on the device the
    /// publisher becomes the leader (and kicks) unless a leader is active,
    /// which then kicks again for it.
    fn publish_locked(&self, t: &mut Tx, lead: &mut Lead<'_>) -> AfterPublish {
        let wake = self.publish_tx(t);
        if self.kick_always {
            if lead.held {
                // Our own next kick covers it.
            } else if t.leader {
                t.kick_pending = true;
            } else {
                t.leader = true;
                lead.held = true;
            }
            AfterPublish::Nothing
        } else if wake.is_needed() {
            AfterPublish::Ring
        } else {
            AfterPublish::Nothing
        }
    }

    /// Publishes under the lock the caller holds, releases it, and rings or
    /// kicks as [`Inner::publish_locked`] decided (a new device leader
    /// kicks at once).
    fn publish_and_ring(
        &self,
        mut guard: MutexGuard<'_, Option<Tx>>,
        lead: &mut Lead<'_>,
    ) -> Result<()> {
        let t = guard.as_mut().ok_or(Error::Closed)?;
        let after = self.publish_locked(t, lead);
        if self.kick_always && lead.held {
            // Everything published so far is covered by this kick.
            t.kick_pending = false;
            drop(guard);
            return self.kick();
        }
        drop(guard);
        self.after_publish(after)
    }

    fn after_publish(&self, what: AfterPublish) -> Result<()> {
        match what {
            AfterPublish::Nothing => Ok(()),
            AfterPublish::Ring => self.kick(),
        }
    }

    pub(crate) fn kick(&self) -> Result<()> {
        self.with_link(|link| link.kick())
    }

    /// Drains and waits until `ready` (checked under the lock after each
    /// drain) holds. `quick` is a lock-free early check. `register` records
    /// the waiter to unpark before this thread parks.
    ///
    /// Returns with the lock held and `ready` true, or without the lock
    /// (`None`) when `quick` said so.
    pub(crate) fn wait_for<'g>(
        &'g self,
        lead: &mut Lead<'_>,
        clock: &mut Deadline,
        quick: impl Fn() -> bool,
        mut ready: impl FnMut(&mut Tx) -> Result<bool>,
        register: impl Fn(&mut Tx, Waiter),
    ) -> Result<Option<MutexGuard<'g, Option<Tx>>>> {
        let backoff = Backoff::new();
        loop {
            if !lead.held && quick() {
                self.ensure_leader();
                return Ok(None);
            }
            let mut g = if !lead.held && !backoff.is_completed() {
                // Spinning: whoever holds the lock is draining for us.
                match self.tx.try_lock() {
                    Ok(g) => g,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        backoff.snooze();
                        continue;
                    }
                }
            } else {
                lock(&self.tx)
            };
            let t = g.as_mut().ok_or(Error::Closed)?;
            t.drain()?;
            if ready(t)? {
                if lead.held {
                    if self.kick_always && t.kick_pending && !t.calls_in_flight() {
                        // Only sends were queued during our kick and
                        // nobody waits to take over: kick once more.
                        t.kick_pending = false;
                        drop(g);
                        self.kick()?;
                        continue;
                    }
                    lead.resign(t);
                } else {
                    t.ensure_leader();
                }
                return Ok(Some(g));
            }
            if self.kick_always {
                if !lead.held && !t.leader {
                    t.leader = true;
                    lead.held = true;
                }
                if lead.held {
                    // Everything published so far is covered by this kick.
                    t.kick_pending = false;
                    drop(g);
                    self.kick()?;
                    continue;
                }
            }
            if !backoff.is_completed() {
                drop(g);
                backoff.snooze();
                continue;
            }
            let slice = clock.slice()?;
            if !self.kick_always && (lead.held || !t.leader) {
                // Sleep on the completion doorbell for everyone.
                t.leader = true;
                lead.held = true;
                let newest = t.newest();
                let must_wait = t.producer().prepare_wait_for_release(newest);
                drop(g);
                if must_wait {
                    let waited = self.with_link(|link| link.wait_completion(slice));
                    if let Some(t) = lock(&self.tx).as_mut() {
                        t.producer().finish_wait();
                    }
                    waited?;
                    self.check_open()?;
                }
                continue;
            }
            register(t, Waiter::Thread(std::thread::current()));
            drop(g);
            std::thread::park_timeout(slice);
            self.check_open()?;
        }
    }

    /// Pushes `msg` (waiting for room up to the deadline) as `what`, with
    /// the lock held on return.
    fn push_waiting<'g>(
        &'g self,
        mut guard: MutexGuard<'g, Option<Tx>>,
        lead: &mut Lead<'_>,
        clock: &mut Deadline,
        msg: &[u8],
        what: impl Fn() -> Slot,
    ) -> Result<(MutexGuard<'g, Option<Tx>>, u32)> {
        loop {
            let t = guard.as_mut().ok_or(Error::Closed)?;
            match t.push(msg, what()) {
                Ok(seq) => return Ok((guard, seq)),
                Err(Error::Full) => {}
                Err(e) => return Err(e),
            }
            // Whatever is pushed but unpublished must reach the driver
            // before room can appear.
            let after = self.publish_locked(t, lead);
            drop(guard);
            self.after_publish(after)?;
            guard = self
                .wait_for(
                    lead,
                    clock,
                    || false,
                    |t| Ok(t.room() > 0),
                    |t, w| t.wait_space(w),
                )?
                .ok_or(Error::Closed)?;
        }
    }

    /// A blocking call with its own timeout.
    pub(crate) fn call_with(
        &self,
        request: &[u8],
        reply: &mut [u8],
        timeout: Duration,
    ) -> Result<crate::Reply> {
        self.check_len(request.len())?;
        let record = Record::new(Dest::Borrowed {
            ptr: reply.as_mut_ptr(),
            cap: reply.len(),
        });
        let mut clock = Deadline::new(timeout);
        let mut lead = Lead::new(self);
        let target = || Slot::Call(Target::Local(NonNull::from(&record)));
        let (guard, seq) =
            self.push_waiting(lock(&self.tx), &mut lead, &mut clock, request, target)?;
        let registration = Registration {
            inner: self,
            seq,
            record: &record,
        };
        self.publish_and_ring(guard, &mut lead)?;
        let guard = self.wait_for(
            &mut lead,
            &mut clock,
            || record.is_done(),
            |_| Ok(record.is_done()),
            // SAFETY: called under the ring lock, while the record is
            // registered and not done.
            |_, w| unsafe { record.set_waiter(Some(w)) },
        )?;
        drop(guard);
        drop(registration);
        outcome(record.take())
    }

    /// Queues one-way messages: all of them, waiting for room up to the
    /// deadline, or (`blocking` false) only if there is room for all,
    /// else [`Error::Full`] and nothing is sent.
    pub(crate) fn send_many(
        &self,
        msgs: &[&[u8]],
        blocking: bool,
        timeout: Duration,
    ) -> Result<()> {
        for m in msgs {
            self.check_len(m.len())?;
        }
        // A dead transport would never read the messages: Closed, as for
        // calls, rather than Ok into a ring nobody drains.
        self.check_open()?;
        let mut clock = Deadline::new(timeout);
        let mut lead = Lead::new(self);
        let mut guard = lock(&self.tx);
        if !blocking {
            let t = guard.as_mut().ok_or(Error::Closed)?;
            t.drain()?;
            if (t.room() as usize) < msgs.len() {
                return Err(Error::Full);
            }
        }
        for m in msgs {
            guard = self
                .push_waiting(guard, &mut lead, &mut clock, m, || Slot::Send)?
                .0;
        }
        self.publish_and_ring(guard, &mut lead)?;
        if lead.held {
            // Device: our kick ran; drain, and kick again for anything
            // published meanwhile that nobody else will kick for.
            let g = self.wait_for(&mut lead, &mut clock, || false, |_| Ok(true), |_, _| {})?;
            drop(g);
        }
        Ok(())
    }

    /// Many calls at once (see `ChannelHandle::call_batch`).
    pub(crate) fn call_batch_with(
        &self,
        requests: &[&[u8]],
        timeout: Duration,
    ) -> Result<Vec<crate::BatchReply>> {
        let msz = (self.u2k_msz as usize).max(1);
        let mut buf = vec![0u8; requests.len() * msz];
        let dests = buf
            .chunks_mut(msz)
            .map(|c| Dest::Borrowed {
                ptr: c.as_mut_ptr(),
                cap: c.len(),
            })
            .collect();
        let results = self.batch(requests, dests, timeout)?;
        Ok(results
            .into_iter()
            .zip(buf.chunks(msz))
            .map(|(r, b)| r.map(|r| (r.rc, b[..r.len].to_vec())))
            .collect())
    }

    /// Many calls at once into the caller's buffers (see
    /// `ChannelHandle::call_batch_into`).
    pub(crate) fn call_batch_into(
        &self,
        requests: &[&[u8]],
        replies: &mut [&mut [u8]],
        timeout: Duration,
    ) -> Result<Vec<Result<crate::Reply>>> {
        if replies.len() < requests.len() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "fewer reply buffers than requests",
            )));
        }
        let dests = replies
            .iter_mut()
            .take(requests.len())
            .map(|r| Dest::Borrowed {
                ptr: r.as_mut_ptr(),
                cap: r.len(),
            })
            .collect();
        self.batch(requests, dests, timeout)
    }

    /// The batch engine: request `i`'s reply goes to `dests[i]`, which
    /// stays valid (and untouched by the caller) for the whole call.
    fn batch(
        &self,
        requests: &[&[u8]],
        dests: Vec<Dest>,
        timeout: Duration,
    ) -> Result<Vec<Result<crate::Reply>>> {
        for r in requests {
            self.check_len(r.len())?;
        }
        if lock(&self.tx).is_none() {
            return Err(Error::Closed);
        }
        let n = requests.len();
        // Never resized: the slot table points at these records.
        let records: Vec<Record> = dests.into_iter().map(Record::new).collect();
        let mut registrations = Vec::with_capacity(n);
        let mut clock = Deadline::new(timeout);
        let mut lead = Lead::new(self);
        let (mut next, mut oldest) = (0, 0);
        let failure = loop {
            let mut guard = lock(&self.tx);
            let Some(t) = guard.as_mut() else {
                break Some(Error::Closed);
            };
            // As many as there is room for, with one drain and one check of
            // the ring's tail for all of them.
            let first = next;
            let (count, result) = t.push_chunk(&requests[first..], |i, seq| {
                let record = &records[first + i];
                registrations.push(Registration {
                    inner: self,
                    seq,
                    record,
                });
                Slot::Call(Target::Local(NonNull::from(record)))
            });
            next += count;
            let pushed = count > 0;
            let mut error = result.err();
            if pushed {
                if let Err(e) = self.publish_and_ring(guard, &mut lead) {
                    error.get_or_insert(e);
                }
            } else {
                drop(guard);
            }
            if error.is_some() {
                break error;
            }
            while oldest < next && records[oldest].is_done() {
                oldest += 1;
            }
            if oldest == n {
                break None;
            }
            let waited = if oldest < next {
                let rec = &records[oldest];
                self.wait_for(
                    &mut lead,
                    &mut clock,
                    || rec.is_done(),
                    |t| Ok(rec.is_done() || (next < n && t.room() > 0)),
                    // SAFETY: under the ring lock, the record registered
                    // and not done.
                    |_, w| unsafe { rec.set_waiter(Some(w)) },
                )
            } else {
                // Others' messages fill the ring.
                self.wait_for(
                    &mut lead,
                    &mut clock,
                    || false,
                    |t| Ok(t.room() > 0),
                    |t, w| t.wait_space(w),
                )
            };
            if let Err(e) = waited {
                break Some(e);
            }
        };
        drop(lead);
        drop(registrations);
        Ok(records
            .iter()
            .map(|r| match r.take() {
                None => Err(failure.as_ref().map_or(Error::Timeout(timeout), again)),
                Some(o) => outcome(Some(o)),
            })
            .collect())
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.u2k_msz as usize {
            return Err(Error::TooLarge {
                len,
                max: self.u2k_msz,
            });
        }
        Ok(())
    }
}

/// A finished record's result.
fn outcome(out: Option<Outcome>) -> Result<crate::Reply> {
    match out {
        None => Err(Error::Closed),
        Some(o) if o.not_delivered => Err(Error::NotBound),
        Some(o) => Ok(crate::Reply {
            rc: o.rc,
            len: o.len,
        }),
    }
}

/// The same error again, for each request a failure left without a result.
fn again(e: &Error) -> Error {
    match e {
        Error::NotBound => Error::NotBound,
        Error::TooLarge { len, max } => Error::TooLarge {
            len: *len,
            max: *max,
        },
        Error::Full => Error::Full,
        Error::Closed => Error::Closed,
        Error::Corrupt(s) => Error::Corrupt(s.clone()),
        Error::Timeout(d) => Error::Timeout(*d),
        Error::Busy(u) => Error::Busy(*u),
        Error::BadLength { len, expected } => Error::BadLength {
            len: *len,
            expected: *expected,
        },
        Error::ListenersActive => Error::ListenersActive,
        Error::NoTransport(s) => Error::NoTransport(s.clone()),
        Error::Io(io) => Error::Io(match io.raw_os_error() {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::new(io.kind(), io.to_string()),
        }),
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// The pipelining protocol against in-process links that stand in for the
/// device (a kick that drains the ring inline) and for the simulated
/// transport (the test plays the service), and the facade's own cost.
#[cfg(all(test, not(isc_loom)))]
mod tests {
    use crate::channel::{ChannelHandle, Inner};
    use crate::link::{Bound, Link, View};
    use isc_ring::{Consumer, Producer, RingConfig};
    use std::os::fd::{AsFd, BorrowedFd};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[repr(C, align(4096))]
    struct Page([u8; 8192]);

    struct Own<T>(T, #[allow(dead_code)] Arc<Mutex<Box<Page>>>);
    impl<T: Send> View<T> for Own<T> {
        fn view(&mut self) -> &mut T {
            &mut self.0
        }
    }

    /// The methods of a test link that never waits (its kick does the
    /// work, or the test plays the driver side); `$fd` is the field whose
    /// descriptor stands in for the posts doorbell.
    macro_rules! never_waits {
        ($fd:tt) => {
            fn wait_posts(&self, _: Duration) -> crate::Result<()> {
                Ok(())
            }
            fn wait_completion(&self, _: Duration) -> crate::Result<()> {
                Ok(())
            }
            fn is_alive(&self) -> bool {
                true
            }
            fn clear_posts(&self) {}
            fn posts_fd(&self) -> BorrowedFd<'_> {
                self.$fd.as_fd()
            }
            fn clear_completion(&self) {}
        };
    }

    /// Kick drains `u2k` inline, completing each message with rc 0.
    struct Inline(Mutex<Consumer>, std::fs::File);
    static KICKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    impl Link for Inline {
        fn kick_always(&self) -> bool {
            true
        }
        fn kick(&self) -> crate::Result<()> {
            KICKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut c = self.0.lock().unwrap();
            while let Some(m) = c.peek().unwrap() {
                m.complete_rc(0);
            }
            let _ = c.release();
            Ok(())
        }
        never_waits!(1);
        fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
            None
        }
    }

    fn ring() -> (Producer, Consumer, Arc<Mutex<Box<Page>>>) {
        ring_of(32, 16)
    }

    /// Kick answers each message inline the way the test driver's echo
    /// does (rc from the first four bytes, the request as the reply),
    /// yielding now and then so that other threads publish during a kick.
    struct Echo(Mutex<Consumer>, std::fs::File);
    impl Link for Echo {
        fn kick_always(&self) -> bool {
            true
        }
        fn kick(&self) -> crate::Result<()> {
            let mut c = self.0.lock().unwrap();
            // Like the device's KICK: what was published when it began.
            let pending = c.pending().unwrap();
            for n in 1..=pending {
                let m = c.peek().unwrap().unwrap();
                let mut req = [0u8; 64];
                let len = m.read(&mut req);
                let rc = i32::from_le_bytes(req[..4].try_into().unwrap());
                m.complete(rc, &req[..len]).unwrap();
                if n % 3 == 0 {
                    std::thread::yield_now();
                }
            }
            let _ = c.release();
            Ok(())
        }
        never_waits!(1);
        fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
            None
        }
    }

    /// The device's doorbell protocol (leaders kick, a publish during a
    /// kick is covered by the leader's next kick, leadership is handed
    /// over) under threads mixing calls, batches, sends and try_sends on a
    /// four-slot ring: every call gets its own reply and nobody is left
    /// waiting. A lost hand-off shows up as a timeout (the channel's is
    /// ten seconds), not as a hang.
    #[test]
    fn device_doorbells_leave_no_caller_behind() {
        let (p, c, keep) = ring_of(4, 64);
        let link = Echo(Mutex::new(c), null());
        let ch = channel((p, keep), link, Duration::from_secs(10));
        let tag = |t: usize, i: usize| {
            let mut m = ((t * 100_000 + i) as i32).to_le_bytes().to_vec();
            m.extend_from_slice(format!("t{t}/{i}").as_bytes());
            m
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..6 {
                let (ch, calls) = (&ch, &calls);
                s.spawn(move || {
                    let mut buf = [0u8; 64];
                    for i in 0..3000 {
                        match (t + i) % 4 {
                            0 => ch.send(&tag(t, i)).unwrap(),
                            1 => match ch.try_send(&tag(t, i)) {
                                Ok(()) | Err(crate::Error::Full) => {}
                                Err(e) => panic!("try_send: {e}"),
                            },
                            2 => {
                                let reqs: Vec<Vec<u8>> =
                                    (0..3).map(|k| tag(t, i * 10 + k)).collect();
                                let refs: Vec<&[u8]> = reqs.iter().map(|r| &r[..]).collect();
                                for (req, r) in reqs.iter().zip(ch.call_batch(&refs).unwrap()) {
                                    let (rc, reply) = r.unwrap();
                                    assert_eq!(rc.to_le_bytes(), req[..4]);
                                    assert_eq!(&reply, req);
                                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            _ => {
                                let req = tag(t, i);
                                let r = ch.call(&req, &mut buf).unwrap();
                                assert_eq!(r.rc, (t * 100_000 + i) as i32);
                                assert_eq!(&buf[..r.len], &req[..]);
                                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        // 6 threads x 3000 rounds: a quarter single calls, a quarter
        // batches of three.
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::Relaxed),
            6 * 750 * 4
        );
    }

    /// A channel sending on `u2k` (its producer and the memory it lives
    /// in) to `link`, with a `k2u` ring nothing posts to.
    fn channel(
        u2k: (Producer, Arc<Mutex<Box<Page>>>),
        link: impl Link + 'static,
        timeout: Duration,
    ) -> ChannelHandle {
        let (_kp, kc, keep) = ring_of(4, 64);
        let bound = Bound {
            u2k: Box::new(Own(u2k.0, u2k.1)),
            k2u: Box::new(Own(kc, keep)),
            bound: true,
            link: Box::new(link),
        };
        ChannelHandle(Arc::new(Inner::new(crate::Uid::new(1), bound, timeout)))
    }

    /// A descriptor for links whose posts doorbell is never waited on.
    fn null() -> std::fs::File {
        std::fs::File::open("/dev/null").unwrap()
    }

    fn ring_of(num: u32, msz: u32) -> (Producer, Consumer, Arc<Mutex<Box<Page>>>) {
        let mut page = Box::new(Page([0; 8192]));
        RingConfig::new(msz, num)
            .unwrap()
            .init(&mut page.0)
            .unwrap();
        let ptr = std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap();
        // SAFETY: the page is kept alive by the Arc the views hold.
        let (p, c) = unsafe {
            (
                Producer::new(ptr, 8192).unwrap(),
                Consumer::new(ptr, 8192).unwrap(),
            )
        };
        (p, c, Arc::new(Mutex::new(page)))
    }

    /// The facade's own cost per call, measured natively against the raw
    /// ring with a transport whose kick drains the ring inline (as the
    /// device's KICK does).
    /// `cargo test -p isc --release --lib overhead -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn overhead() {
        const N: usize = 1_000_000;
        let (p, c, keep) = ring();
        let link = Inline(Mutex::new(c), null());
        let ch = channel((p, keep), link, Duration::from_secs(5));
        let mut reply = [0u8; 16];
        let t = Instant::now();
        for _ in 0..N {
            ch.call(b"0123456789ab", &mut reply).unwrap();
        }
        let facade = t.elapsed();
        let (mut p, c, _keep) = ring();
        let link = Inline(Mutex::new(c), null());
        let t = Instant::now();
        for _ in 0..N {
            p.push(b"0123456789ab", 0).unwrap();
            let _ = p.publish();
            link.kick().unwrap();
            let c = p.completion().unwrap().unwrap();
            assert_eq!(c.rc(), 0);
        }
        let raw = t.elapsed();
        let reqs = [&b"0123456789ab"[..]; 32];
        let k0 = KICKS.load(std::sync::atomic::Ordering::Relaxed);
        let t = Instant::now();
        let mut bufs = [[0u8; 16]; 32];
        for _ in 0..N / 32 {
            let mut replies: [&mut [u8]; 32] = {
                let mut it = bufs.iter_mut();
                std::array::from_fn(|_| &mut it.next().unwrap()[..])
            };
            ch.call_batch_into(&reqs, &mut replies).unwrap();
        }
        let batch = t.elapsed();
        println!(
            "kicks per batch: {}",
            (KICKS.load(std::sync::atomic::Ordering::Relaxed) - k0) as f64 / (N / 32) as f64
        );
        println!(
            "per call: facade {:?}, raw {:?}, batch {:?}",
            facade / N as u32,
            raw / N as u32,
            batch / N as u32
        );
    }

    /// The simulated transport's doorbell protocol under the test's
    /// control: the test plays the service thread, completing messages
    /// when it chooses; the completion doorbell never rings, so futures
    /// are woken only by each other.
    #[cfg(feature = "tokio")]
    struct Manual(std::os::unix::net::UnixStream);
    #[cfg(feature = "tokio")]
    impl Link for Manual {
        fn kick_always(&self) -> bool {
            false
        }
        fn kick(&self) -> crate::Result<()> {
            Ok(())
        }
        never_waits!(0);
        fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
            Some(self.0.as_fd())
        }
    }

    /// A waker that counts its wake-ups.
    #[cfg(feature = "tokio")]
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);
    #[cfg(feature = "tokio")]
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    #[cfg(feature = "tokio")]
    impl Count {
        fn woken(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Three async calls on a channel whose service completes one message
    /// at a time. The leader finishes and wakes the next call to take
    /// over; that call finds its reply already there and finishes too. If
    /// it left without passing the lead on, the third call would wait
    /// forever: nobody drains its completion, and the doorbell is not rung
    /// for a producer that no longer waits. Dropping the woken call
    /// instead of polling it must pass the lead on just the same.
    #[cfg(feature = "tokio")]
    #[test]
    fn async_successor_passes_the_lead_on() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};

        fn poll<F: Future + Unpin>(f: &mut F, w: &Arc<Count>) -> Poll<F::Output> {
            let waker = Waker::from(Arc::clone(w));
            std::pin::Pin::new(f).poll(&mut Context::from_waker(&waker))
        }
        let complete_next = |c: &Mutex<Consumer>| {
            let mut c = c.lock().unwrap();
            c.peek().unwrap().expect("a published call").complete_rc(7);
            let _ = c.release();
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for drop_successor in [false, true] {
            let (p, c, keep) = ring_of(4, 16);
            let consumer = Mutex::new(c);
            let (bell, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
            let ch = channel((p, keep), Manual(bell), Duration::MAX);
            rt.block_on(async {
                let w: [Arc<Count>; 3] = Default::default();
                let mut f: Vec<_> = (0..3u8).map(|i| ch.call_async(&[i])).collect();
                // Each publishes and yields once (so that the others
                // publish before anyone waits); then call 0 leads and the
                // others wait for it.
                for round in 0..2 {
                    for i in 0..3 {
                        assert!(poll(&mut f[i], &w[i]).is_pending(), "call {i}");
                        assert_eq!(w[i].woken(), 1, "call {i} yielded once, round {round}");
                    }
                }

                // The leader's reply comes: it finishes and wakes call 1.
                complete_next(&consumer);
                assert!(matches!(poll(&mut f[0], &w[0]), Poll::Ready(Ok((7, _)))));
                assert_eq!(w[1].woken(), 2, "the leader woke a successor");
                assert_eq!(w[2].woken(), 1);

                complete_next(&consumer);
                if !drop_successor {
                    assert!(matches!(poll(&mut f[1], &w[1]), Poll::Ready(Ok((7, _)))));
                    assert_eq!(w[2].woken(), 2, "the finished successor passed the lead on");
                }
                drop(f.remove(1));
                assert_eq!(w[2].woken(), 2, "the successor passed the lead on once");

                // Woken, the last call leads and gets its reply.
                assert!(poll(&mut f[1], &w[2]).is_pending());
                complete_next(&consumer);
                assert!(matches!(poll(&mut f[1], &w[2]), Poll::Ready(Ok((7, _)))));
            });
        }
    }
}
