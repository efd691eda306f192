//! Calls in flight: which completion belongs to whom, and how it gets there.
//!
//! Every message on `u2k` occupies one ring slot from publish to
//! completion. Next to the ring, the facade keeps one [`Slot`] entry per
//! ring slot (indexed by sequence number, like the ring), saying what the
//! completion is for: a one-way send, a call with a waiting [`Record`], or
//! a call whose caller gave up.
//!
//! Whoever holds the ring lock may drain completions ([`Tx::drain`]); it
//! hands each call's result to its record: it writes the outcome (rc,
//! reply bytes) into the record, takes the record's waiter, publishes
//! `DONE` with a Release store, then wakes the waiter. The owner reads the
//! outcome after an Acquire load sees `DONE`, without the lock. A caller
//! that gives up (timeout, a dropped future) takes the lock and replaces
//! its entry by [`Slot::Abandoned`] unless the record is already `DONE`;
//! from then on nothing refers to the record, and the completion, when it
//! comes, is discarded.
//!
//! The record is owned by the caller: on its stack for blocking calls
//! ([`Target::Local`]), in an `Arc` for futures ([`Target::Shared`]), so a
//! leaked future can never leave a dangling pointer behind.

use crate::sync::{AtomicU32, Ordering, UnsafeCell};
use crate::Result;
use isc_ring::abi::slot_flags;
use isc_ring::Producer;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::Waker;
use std::thread::Thread;

use crate::link::View;

/// Someone to wake when a record is done or the ring has room.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// A parked thread.
    Thread(Thread),
    /// A task waiting on a future.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Task(Waker),
}

impl Waiter {
    pub fn wake(self) {
        match self {
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task(w) => w.wake(),
        }
    }
}

/// Where a call's reply goes.
#[derive(Debug)]
pub(crate) enum Dest {
    /// The blocking caller's own buffer (the caller outlives the record's
    /// registration, see [`Target::Local`]).
    Borrowed { ptr: *mut u8, cap: usize },
    /// A buffer the record owns (futures and batches); resized to the reply.
    Owned(Vec<u8>),
}

/// What a completed call produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub rc: i32,
    /// Bytes of reply stored in the destination.
    pub len: usize,
    /// The driver side completed the message without delivering it.
    pub not_delivered: bool,
    pub dest: Dest,
}

const PENDING: u32 = 0;
const DONE: u32 = 1;

/// One call's hand-off point between the drainer and the caller.
#[derive(Debug)]
pub(crate) struct Record {
    state: AtomicU32,
    /// Written only by the lock holder while `PENDING`; read only by the
    /// owner after it saw `DONE`.
    out: UnsafeCell<Outcome>,
    /// Accessed only under the ring lock.
    waiter: UnsafeCell<Option<Waiter>>,
}

// SAFETY: the raw pointer in `Dest::Borrowed` is only dereferenced by the
// lock holder while the owner waits (see `Target::Local`); every other
// field is an atomic or accessed under the protocol described above.
unsafe impl Send for Record {}
// SAFETY: as above; shared access is the point of a record.
unsafe impl Sync for Record {}

impl Record {
    pub fn new(dest: Dest) -> Self {
        Self {
            state: AtomicU32::new(PENDING),
            out: UnsafeCell::new(Outcome {
                rc: 0,
                len: 0,
                not_delivered: false,
                dest,
            }),
            waiter: UnsafeCell::new(None),
        }
    }

    /// True once the outcome is stored. Acquire: pairs with the Release
    /// store in [`Record::deliver`], so the outcome is visible.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Stores the outcome and wakes the waiter.
    ///
    /// # Safety
    /// The caller holds the ring lock and the record is registered in a
    /// [`Slot::Call`] (so it is alive and still `PENDING`).
    pub unsafe fn deliver(
        &self,
        rc: i32,
        not_delivered: bool,
        reply_len: usize,
        copy: impl FnOnce(&mut [u8]) -> usize,
    ) {
        // SAFETY: the record is PENDING, so its owner does not read `out`
        // until it sees DONE; only the lock holder writes it.
        let waiter = self.out.with_mut(|out| unsafe {
            let out = &mut *out;
            out.rc = rc;
            out.not_delivered = not_delivered;
            out.len = match &mut out.dest {
                Dest::Borrowed { ptr, cap } => {
                    // SAFETY: the owner's buffer of `cap` bytes stays
                    // valid and untouched by it while the record is
                    // registered (`Target::Local`'s contract).
                    let buf = std::slice::from_raw_parts_mut(*ptr, *cap);
                    copy(buf)
                }
                Dest::Owned(v) => {
                    v.clear();
                    v.resize(reply_len, 0);
                    copy(v)
                }
            };
            // SAFETY: the waiter is only accessed under the ring lock.
            self.waiter.with_mut(|w| (*w).take())
        });
        // Release: the outcome above is visible to whoever sees DONE. The
        // owner may free the record right after this store: nothing of it
        // is touched below.
        self.state.store(DONE, Ordering::Release);
        if let Some(w) = waiter {
            w.wake();
        }
    }

    /// Sets (or clears) whom to wake.
    ///
    /// # Safety
    /// The caller holds the ring lock.
    pub unsafe fn set_waiter(&self, w: Option<Waiter>) {
        // SAFETY: the waiter is only accessed under the ring lock.
        self.waiter.with_mut(|p| unsafe { *p = w });
    }

    /// Takes the waiter out, to wake it.
    ///
    /// # Safety
    /// The caller holds the ring lock.
    unsafe fn take_waiter(&self) -> Option<Waiter> {
        // SAFETY: the waiter is only accessed under the ring lock.
        self.waiter.with_mut(|p| unsafe { (*p).take() })
    }

    /// The outcome, once [`Record::is_done`] returned true (else `None`).
    pub fn take(&self) -> Option<Outcome> {
        if !self.is_done() {
            return None;
        }
        // SAFETY: DONE was observed with Acquire: the drainer wrote `out`
        // before its Release store and never touches it again; the owner
        // is the only one calling `take`.
        Some(self.out.with_mut(|out| unsafe {
            std::mem::replace(
                &mut *out,
                Outcome {
                    rc: 0,
                    len: 0,
                    not_delivered: false,
                    dest: Dest::Owned(Vec::new()),
                },
            )
        }))
    }
}

/// How a slot's record is reached.
#[derive(Debug)]
pub(crate) enum Target {
    /// A blocking caller's record on its stack. The caller removes the
    /// entry under the ring lock before the record goes away (see
    /// `Registration` in the call code), unless the record is `DONE`
    /// (then the drainer already removed it).
    Local(NonNull<Record>),
    /// A future's record.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Shared(Arc<Record>),
}

impl Target {
    fn record(&self) -> &Record {
        match self {
            // SAFETY: a Local record outlives its registration (above).
            Target::Local(p) => unsafe { p.as_ref() },
            Target::Shared(a) => a,
        }
    }
}

/// What the completion of a ring slot is for.
#[derive(Debug, Default)]
pub(crate) enum Slot {
    /// Nothing in flight.
    #[default]
    Free,
    /// A one-way message: counted if it was not delivered.
    Send,
    /// A call whose caller gave up: the completion is discarded.
    Abandoned,
    /// A call waiting for its reply.
    Call(Target),
}

// SAFETY: `Target::Local` points to a `Record`, which is `Sync`; the entry
// moves between threads only inside the ring's mutex.
unsafe impl Send for Slot {}

/// Hands one completion to whatever its slot entry says, under the ring
/// lock (`&mut` to the entry is only had there), leaving the entry free.
/// Returns true for an undelivered one-way message (to be counted).
pub(crate) fn complete(
    slot: &mut Slot,
    rc: i32,
    not_delivered: bool,
    reply_len: usize,
    copy: impl FnOnce(&mut [u8]) -> usize,
) -> bool {
    match std::mem::take(slot) {
        Slot::Free | Slot::Abandoned => false,
        Slot::Send => not_delivered,
        Slot::Call(target) => {
            let len = if not_delivered { 0 } else { reply_len };
            // SAFETY: under the ring lock, and the record was registered
            // in this entry until just now (so alive and pending).
            unsafe {
                target.record().deliver(rc, not_delivered, len, |buf| {
                    if not_delivered {
                        0
                    } else {
                        copy(buf)
                    }
                })
            };
            false
        }
    }
}

/// Withdraws `record` from its entry (under the ring lock): its completion
/// will be discarded. False if the entry no longer holds it (the record is
/// done, its outcome there to take).
pub(crate) fn withdraw(slot: &mut Slot, record: &Record) -> bool {
    match slot {
        Slot::Call(t) if std::ptr::eq(t.record(), record) => {
            // SAFETY: under the ring lock.
            unsafe { record.set_waiter(None) };
            *slot = Slot::Abandoned;
            true
        }
        _ => false,
    }
}

/// The sending side of a channel: the `u2k` producer and the slot table,
/// always behind the channel's ring lock.
pub(crate) struct Tx {
    view: Box<dyn View<Producer>>,
    slots: Box<[Slot]>,
    mask: u32,
    /// Next sequence number whose completion has not been drained.
    drained: u32,
    /// Next sequence number to be pushed.
    head: u32,
    /// Someone is draining on everyone's behalf: on the simulated
    /// transport it sleeps on the completion doorbell; on the device it
    /// kicks.
    pub leader: bool,
    /// Device: a message was published after the leader's kick started,
    /// so the leader must kick again (or hand over) before it leaves.
    pub kick_pending: bool,
    /// Threads and tasks waiting for room in the ring.
    space: Vec<Waiter>,
    undelivered: Arc<AtomicU64>,
    /// Set when a leader stepped down and woke a successor, which may not
    /// take over (see [`Tx::ensure_leader`]); read without the lock.
    leaderless: Arc<std::sync::atomic::AtomicBool>,
}

impl Tx {
    pub fn new(
        mut view: Box<dyn View<Producer>>,
        undelivered: Arc<AtomicU64>,
        leaderless: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let n = view.view().slot_count();
        // The next sequence number is the ring's head: a reservation tells
        // it (dropped uncommitted, it leaves the ring unchanged).
        let head = match view.view().reserve() {
            Ok(Some(slot)) => slot.seq(),
            _ => 0,
        };
        Self {
            view,
            slots: (0..n).map(|_| Slot::Free).collect(),
            mask: n - 1,
            drained: head,
            head,
            leader: false,
            kick_pending: false,
            space: Vec::new(),
            undelivered,
            leaderless,
        }
    }

    pub fn producer(&mut self) -> &mut Producer {
        self.view.view()
    }

    /// Copies `msg` into the next slot (draining completions first, so no
    /// unread completion is ever overwritten) and records what it is for;
    /// not yet published.
    pub fn push(&mut self, msg: &[u8], what: Slot) -> Result<u32> {
        self.drain()?;
        // Room is counted from what was drained, not from the ring's tail:
        // the consumer may release more between the drain and the push, and
        // reusing a slot whose completion was not drained would lose it.
        if self.head.wrapping_sub(self.drained) > self.mask {
            return Err(crate::Error::Full);
        }
        let seq = self.view.view().push(msg, slot_flags::KIND_MSG)?;
        self.slots[(seq & self.mask) as usize] = what;
        self.head = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Pushes the messages of `msgs`, in order, as many as there is room
    /// for, with one drain and one check of the consumer's index (a ring
    /// chunk) for all of them; `what(i, seq)` records what message `i`
    /// (pushed as `seq`) is for. Returns how many were pushed, and the
    /// error that stopped the batch early, if any (those before it stay
    /// pushed). Not yet published.
    pub fn push_chunk(
        &mut self,
        msgs: &[&[u8]],
        mut what: impl FnMut(usize, u32) -> Slot,
    ) -> (usize, Result<()>) {
        if let Err(e) = self.drain() {
            return (0, Err(e));
        }
        // Room counted from what was drained, as in `push`.
        let room = self.room().min(msgs.len().try_into().unwrap_or(u32::MAX));
        let Self {
            view, slots, mask, ..
        } = self;
        let mut chunk = match view.view().write_chunk(room) {
            Ok(c) => c,
            Err(e) => return (0, Err(e.into())),
        };
        let mut n = 0;
        let mut result = Ok(());
        for msg in msgs {
            if chunk.is_empty() {
                break;
            }
            match chunk.push(msg, slot_flags::KIND_MSG) {
                Ok(seq) => {
                    slots[(seq & *mask) as usize] = what(n, seq);
                    self.head = seq.wrapping_add(1);
                    n += 1;
                }
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        (n, result)
    }

    /// Slots free for pushing, counted from what was drained (see
    /// [`Tx::push`]).
    pub fn room(&self) -> u32 {
        (self.mask + 1).saturating_sub(self.head.wrapping_sub(self.drained))
    }

    /// The newest pushed sequence number (meaningful once something was
    /// pushed; waiting on it waits for any release).
    pub fn newest(&self) -> u32 {
        self.head.wrapping_sub(1)
    }

    /// Hands every available completion to its owner; returns how many.
    pub fn drain(&mut self) -> Result<u32> {
        let Self {
            view,
            slots,
            mask,
            drained,
            space,
            undelivered,
            ..
        } = self;
        let p = view.view();
        let mut n = 0;
        while let Some(done) = p.completion()? {
            let seq = done.seq();
            *drained = seq.wrapping_add(1);
            n += 1;
            let not_delivered = done.flags() & slot_flags::NOT_DELIVERED != 0;
            let slot = &mut slots[(seq & *mask) as usize];
            let reply_len = done.reply_len();
            if complete(slot, done.rc(), not_delivered, reply_len, |buf| {
                done.read_reply(buf)
            }) {
                undelivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        if n > 0 {
            for w in space.drain(..) {
                w.wake();
            }
        }
        Ok(n)
    }

    /// Index of the `i`th message in flight (pushed, not yet drained), for
    /// `i` below [`Tx::in_flight`].
    fn flight_index(&self, i: u32) -> usize {
        (self.drained.wrapping_add(i) & self.mask) as usize
    }

    /// Messages pushed and not yet drained.
    fn in_flight(&self) -> u32 {
        self.head.wrapping_sub(self.drained).min(self.mask + 1)
    }

    /// True if a call is waiting for a completion.
    pub fn calls_in_flight(&self) -> bool {
        (0..self.in_flight()).any(|i| matches!(self.slots[self.flight_index(i)], Slot::Call(_)))
    }

    /// Gives up the call `seq` of `record`: its completion will be
    /// discarded. False if the record was already done (its outcome is
    /// there to take).
    pub fn abandon(&mut self, seq: u32, record: &Record) -> bool {
        withdraw(&mut self.slots[(seq & self.mask) as usize], record)
    }

    /// Registers a waiter for room in the ring.
    pub fn wait_space(&mut self, w: Waiter) {
        self.space.push(w);
    }

    /// The leader steps down and wakes one parked caller to take over (a
    /// caller that is not parked checks for a leader before it parks).
    pub fn resign(&mut self) {
        self.leader = false;
        if self.wake_one() {
            // The one woken may find its call done and return without
            // leading; whoever sees this flag next makes sure someone leads.
            self.leaderless.store(true, Ordering::Relaxed);
        }
    }

    /// Wakes one parked caller (one waiting for a reply first, else one
    /// waiting for room); false if nobody is parked.
    fn wake_one(&mut self) -> bool {
        for i in 0..self.in_flight() {
            if let Slot::Call(t) = &self.slots[self.flight_index(i)] {
                // SAFETY: we hold the ring lock.
                if let Some(w) = unsafe { t.record().take_waiter() } {
                    w.wake();
                    return true;
                }
            }
        }
        match self.space.pop() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }

    /// Called by a non-leader leaving (done, failed or dropped): if a
    /// leader stepped down and the caller it woke may not have taken over
    /// (this one, perhaps), and nobody leads, wakes another parked caller
    /// to take over. Read under the lock, the flag is exact.
    pub fn ensure_leader(&mut self) {
        if !self.leaderless.load(Ordering::Relaxed) {
            return;
        }
        self.leaderless.store(false, Ordering::Relaxed);
        if !self.leader && self.wake_one() {
            self.leaderless.store(true, Ordering::Relaxed);
        }
    }

    /// Wakes everyone (the channel is closing).
    pub fn wake_all(&mut self) {
        for w in self.space.drain(..) {
            w.wake();
        }
        for i in 0..self.in_flight() {
            if let Slot::Call(t) = &self.slots[self.flight_index(i)] {
                // SAFETY: we hold the ring lock.
                if let Some(w) = unsafe { t.record().take_waiter() } {
                    w.wake();
                }
            }
        }
    }
}

/// Loom models of the completion hand-off: a drainer delivering under the
/// ring lock while the owner waits lock-free, or withdraws its call.
/// `RUSTFLAGS="--cfg isc_loom" cargo test -p isc --lib --release flight`.
#[cfg(all(test, isc_loom))]
mod loom_model {
    use super::*;
    use loom::sync::Mutex;
    use loom::thread;

    /// Registers `rec` in entry `i` as a blocking call does.
    fn register(table: &Mutex<[Slot; 2]>, i: usize, rec: &Record) {
        table.lock().unwrap()[i] = Slot::Call(Target::Local(NonNull::from(rec)));
    }

    fn drain(table: &Mutex<[Slot; 2]>, i: usize, rc: i32, reply: &[u8]) {
        let mut t = table.lock().unwrap();
        complete(&mut t[i], rc, false, reply.len(), |buf| {
            let n = buf.len().min(reply.len());
            buf[..n].copy_from_slice(&reply[..n]);
            n
        });
    }

    #[test]
    fn each_owner_gets_its_own_outcome_exactly_once() {
        loom::model(|| {
            let table: &'static Mutex<[Slot; 2]> =
                Box::leak(Box::new(Mutex::new([Slot::Free, Slot::Free])));
            let (reg_tx, reg_rx) = loom::sync::mpsc::channel();
            let owners: Vec<_> = (0..2)
                .map(|i| {
                    let reg_tx = reg_tx.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 4];
                        let rec = Record::new(Dest::Borrowed {
                            ptr: buf.as_mut_ptr(),
                            cap: buf.len(),
                        });
                        register(table, i, &rec);
                        reg_tx.send(()).unwrap();
                        while !rec.is_done() {
                            thread::yield_now();
                        }
                        let out = rec.take().unwrap();
                        drop(rec);
                        assert_eq!(
                            (out.rc, out.len, out.not_delivered),
                            (i as i32 + 1, 2, false)
                        );
                        assert_eq!(&buf[..2], &[i as u8, 0xAA]);
                    })
                })
                .collect();
            reg_rx.recv().unwrap();
            reg_rx.recv().unwrap();
            for i in 0..2 {
                drain(table, i, i as i32 + 1, &[i as u8, 0xAA]);
            }
            for o in owners {
                o.join().unwrap();
            }
            let t = table.lock().unwrap();
            assert!(t.iter().all(|s| matches!(s, Slot::Free)));
        });
    }

    #[test]
    fn a_withdrawn_call_is_never_written_after_its_owner_left() {
        loom::model(|| {
            let table: &'static Mutex<[Slot; 2]> =
                Box::leak(Box::new(Mutex::new([Slot::Free, Slot::Free])));
            let rec = std::sync::Arc::new(Record::new(Dest::Owned(Vec::new())));
            table.lock().unwrap()[0] = Slot::Call(Target::Shared(rec.clone()));
            let drainer = thread::spawn(move || drain(table, 0, 5, b"late"));
            // The owner gives up (a timeout, a dropped future) ...
            let withdrawn = withdraw(&mut table.lock().unwrap()[0], &rec);
            if withdrawn {
                // ... and nothing delivers to it afterwards.
                drainer.join().unwrap();
                assert!(!rec.is_done());
                assert!(rec.take().is_none());
            } else {
                // The drainer was first: the outcome is the owner's.
                let out = rec.take().unwrap();
                assert_eq!((out.rc, out.len), (5, 4));
                drainer.join().unwrap();
            }
            assert!(matches!(table.lock().unwrap()[0], Slot::Free));
        });
    }
}
