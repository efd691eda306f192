//! The producing side of a ring.

use crate::abi::{slot_flags, CONSUMER_WAITING, PRODUCER_WAITING};
use crate::error::{Corruption, RingError};
use crate::mem::Mem;
use crate::sync::{fence, Ordering};
use crate::view::{peer_wake, read_header, write_header, Deferred, NeedsWake, View, PAYLOAD};

/// Writes messages into a ring and reads back their completions.
///
/// A `Producer` is a view over shared memory it does not own. Messages are
/// written in place ([`Producer::reserve`]) or copied ([`Producer::push`]),
/// then made visible to the consumer all at once by [`Producer::publish`],
/// whose [`NeedsWake`] says whether to ring the consumer's doorbell. When the
/// consumer has completed and released a slot, its result code and in-place
/// reply are available from [`Producer::completion`] until the producer
/// reuses the slot.
///
/// Nothing the consumer writes into the ring can make a `Producer` panic or
/// access memory outside the ring: inconsistent indices or lengths are
/// reported as [`RingError::Corrupt`], and the producer stays in that state.
///
/// ```
/// use isc_ring::{Consumer, Producer, RingConfig};
/// # #[repr(C, align(4096))] struct Page([u8; 4096]);
/// # let mut page = Box::new(Page([0; 4096]));
/// let cfg = RingConfig::new(64, 4).unwrap();
/// cfg.init(&mut page.0).unwrap();
/// let ptr = std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap();
/// // SAFETY: the page outlives both views and nothing else touches it.
/// let (mut tx, mut rx) = unsafe { (Producer::new(ptr, 4096).unwrap(), Consumer::new(ptr, 4096).unwrap()) };
///
/// let seq = tx.push(b"ping", 0).unwrap();
/// let _ = tx.publish();
///
/// let msg = rx.peek().unwrap().expect("published");
/// let mut buf = [0u8; 64];
/// let n = msg.read(&mut buf);
/// assert_eq!(&buf[..n], b"ping");
/// msg.complete(7, b"pong").unwrap();
/// let _ = rx.release();
///
/// let done = tx.completion().unwrap().expect("released");
/// assert_eq!((done.seq(), done.rc()), (seq, 7));
/// let n = done.read_reply(&mut buf);
/// assert_eq!(&buf[..n], b"pong");
/// ```
#[derive(Debug)]
pub struct Producer {
    view: View,
    /// Next index to write.
    head: u32,
    /// Index last stored to the shared `head`.
    published: u32,
    /// Last shared `tail` read (the consumer has released everything before it).
    tail: u32,
    /// Next released slot whose completion has not been reported.
    reclaimed: u32,
    /// Wake-up bookkeeping of the deferred publishes.
    wake: Deferred,
    corrupt: Option<Corruption>,
}

// SAFETY: a Producer is the unique writer of its ring's head and slots; it
// holds only offsets into memory whose validity the constructor's caller
// guaranteed, and every shared access is atomic or a byte copy.
unsafe impl Send for Producer {}

impl Producer {
    /// Attaches to the ring whose header starts at `ptr`.
    ///
    /// Validates the magic, the ABI version and that the header's geometry
    /// fits in `len` bytes; never panics.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for the whole
    /// life of the `Producer`, and there must be at most one `Producer` per
    /// ring. The consumer may be anything, including hostile.
    #[cfg(not(loom))]
    pub unsafe fn new(ptr: core::ptr::NonNull<u8>, len: usize) -> Result<Self, RingError> {
        if ptr.as_ptr() as usize % 64 != 0 {
            return Err(RingError::Misaligned);
        }
        // SAFETY: forwarded from our caller.
        Self::attach(unsafe { Mem::new(ptr, len) })
    }

    /// Attaches to a modelled ring (loom builds only).
    #[cfg(loom)]
    pub fn from_mem(mem: Mem) -> Result<Self, RingError> {
        Self::attach(mem)
    }

    fn attach(mem: Mem) -> Result<Self, RingError> {
        let view = View::attach(mem)?;
        let head = view.mem.load(View::head_off(), Ordering::Relaxed);
        let tail = view.mem.load(View::tail_off(), Ordering::Acquire);
        if head.wrapping_sub(tail) > view.slot_count {
            return Err(Corruption::Indices { head, tail }.into());
        }
        Ok(Self {
            view,
            head,
            published: head,
            tail,
            reclaimed: tail,
            wake: Deferred::default(),
            corrupt: None,
        })
    }

    /// Payload capacity of each slot.
    #[inline]
    pub fn msz(&self) -> u32 {
        self.view.msz
    }

    /// Number of slots in the ring.
    #[inline]
    pub fn slot_count(&self) -> u32 {
        self.view.slot_count
    }

    /// Slots free for writing, re-reading the consumer's index.
    #[inline]
    pub fn free_slots(&mut self) -> Result<u32, RingError> {
        self.refresh_tail()?;
        Ok(self.view.slot_count - self.head.wrapping_sub(self.tail))
    }

    /// Messages committed but not yet [published](Producer::publish).
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.head.wrapping_sub(self.published)
    }

    #[inline]
    fn check(&self) -> Result<(), RingError> {
        match self.corrupt {
            Some(c) => Err(c.into()),
            None => Ok(()),
        }
    }

    #[cold]
    fn fail(&mut self, c: Corruption) -> RingError {
        self.corrupt = Some(c);
        c.into()
    }

    /// Reads the shared tail once, checks it lies in `[self.tail, self.published]`:
    /// the consumer can only release what it could see, so a tail past the
    /// shared head (even within committed but unpublished slots) is corrupt.
    #[inline]
    fn refresh_tail(&mut self) -> Result<(), RingError> {
        self.check()?;
        let tail = self.view.mem.load(View::tail_off(), Ordering::Acquire);
        if tail.wrapping_sub(self.tail) > self.published.wrapping_sub(self.tail) {
            return Err(self.fail(Corruption::Indices {
                head: self.published,
                tail,
            }));
        }
        self.tail = tail;
        Ok(())
    }

    /// Reserves the next slot for writing in place, or `Ok(None)` if the ring
    /// is full. Nothing is visible to the consumer until the slot is
    /// committed and published.
    #[inline]
    pub fn reserve(&mut self) -> Result<Option<Outgoing<'_>>, RingError> {
        self.check()?;
        if self.head.wrapping_sub(self.tail) == self.view.slot_count {
            self.refresh_tail()?;
            if self.head.wrapping_sub(self.tail) == self.view.slot_count {
                return Ok(None);
            }
        }
        // Reusing a slot forfeits its unread completion.
        if self.head.wrapping_sub(self.reclaimed) >= self.view.slot_count {
            self.reclaimed = self.head.wrapping_sub(self.view.slot_count).wrapping_add(1);
        }
        let slot = self.view.slot(self.head);
        Ok(Some(Outgoing {
            producer: self,
            slot,
        }))
    }

    /// Copies `msg` into the next slot and commits it with `flags` (see
    /// [`slot_flags`]); returns its sequence number. Fails with
    /// [`RingError::Full`] or [`RingError::TooLarge`] without side effects.
    #[inline]
    pub fn push(&mut self, msg: &[u8], flags: u32) -> Result<u32, RingError> {
        if msg.len() > self.view.msz as usize {
            return Err(RingError::TooLarge {
                len: msg.len(),
                max: self.view.msz,
            });
        }
        match self.reserve()? {
            Some(slot) => slot.write(msg, flags),
            None => Err(RingError::Full),
        }
    }

    /// Reserves up to `max` consecutive free slots at once, for writing many
    /// messages with one check of the consumer's index (like `rtrb`'s
    /// `write_chunk`). The chunk may hold fewer slots than asked (none if the
    /// ring is full); messages written into it are committed one by one and,
    /// as always, published by [`Producer::publish`] (or
    /// [`Producer::publish_deferred`]) after the chunk is dropped.
    ///
    /// ```
    /// # use isc_ring::{Consumer, Producer, RingConfig};
    /// # #[repr(C, align(4096))] struct Page([u8; 4096]);
    /// # let mut page = Box::new(Page([0; 4096]));
    /// # RingConfig::new(16, 8).unwrap().init(&mut page.0).unwrap();
    /// # let ptr = std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap();
    /// # let (mut tx, mut rx) = unsafe { (Producer::new(ptr, 4096).unwrap(), Consumer::new(ptr, 4096).unwrap()) };
    /// let mut chunk = tx.write_chunk(32).unwrap();
    /// assert_eq!(chunk.remaining(), 8); // the whole ring, not more
    /// for word in [&b"a"[..], b"bb", b"ccc"] {
    ///     chunk.push(word, 0).unwrap();
    /// }
    /// drop(chunk);
    /// let _ = tx.publish();
    ///
    /// let mut chunk = rx.read_chunk(8).unwrap();
    /// assert_eq!(chunk.remaining(), 3);
    /// let mut buf = [0u8; 16];
    /// while let Some(msg) = chunk.next_message().unwrap() {
    ///     let n = msg.read(&mut buf);
    ///     assert_eq!(n, msg.seq() as usize + 1);
    ///     msg.consume();
    /// }
    /// drop(chunk);
    /// let _ = rx.release();
    /// ```
    #[inline]
    pub fn write_chunk(&mut self, max: u32) -> Result<WriteChunk<'_>, RingError> {
        self.check()?;
        let mut free = self.view.slot_count - self.head.wrapping_sub(self.tail);
        if free < max {
            self.refresh_tail()?;
            free = self.view.slot_count - self.head.wrapping_sub(self.tail);
        }
        let end = self.head.wrapping_add(free.min(max));
        Ok(WriteChunk {
            producer: self,
            end,
        })
    }

    /// Makes every committed message visible to the consumer with one
    /// Release store, then tells whether the consumer asked to be woken.
    ///
    /// The SeqCst fence between the store and the read of the wake-up flag
    /// pairs with the one in [`Consumer::prepare_wait`](crate::Consumer::prepare_wait):
    /// either the consumer sees the new head, or this sees its flag. It also
    /// completes the check owed by earlier [`Producer::publish_deferred`]
    /// calls.
    #[inline]
    pub fn publish(&mut self) -> NeedsWake {
        if self.corrupt.is_some() {
            return NeedsWake(false);
        }
        if self.head != self.published {
            self.view
                .mem
                .store(View::head_off(), self.head, Ordering::Release);
            self.published = self.head;
        } else if !self.wake.is_owed() {
            return self.wake.take_ring();
        }
        fence(Ordering::SeqCst);
        self.wake
            .settle(peer_wake(&self.view.mem, CONSUMER_WAITING))
    }

    /// Makes every committed message visible to the consumer with one
    /// Release store, without the fence of the wake-up check: the cheap way
    /// to publish message by message in a burst.
    ///
    /// Reports a wake-up if the consumer's request is already visible (the
    /// usual case for a consumer that went to sleep a while ago). A consumer
    /// falling asleep at this very moment may be missed, so the check is
    /// owed until [`Producer::flush_wake`] (or [`Producer::publish`]) runs:
    /// call it once at the end of the burst, before stopping producing for
    /// an unbounded time. While a check is owed,
    /// [`Producer::prepare_wait`] and [`Producer::prepare_wait_for_release`]
    /// refuse to sleep.
    #[inline]
    pub fn publish_deferred(&mut self) -> NeedsWake {
        if self.corrupt.is_some() {
            return NeedsWake(false);
        }
        if self.head == self.published {
            return self.wake.take_ring();
        }
        self.view
            .mem
            .store(View::head_off(), self.head, Ordering::Release);
        self.published = self.head;
        self.wake.owe(peer_wake(&self.view.mem, CONSUMER_WAITING))
    }

    /// Completes the wake-up check owed by [`Producer::publish_deferred`]:
    /// a SeqCst fence, then the consumer's flag. Costs nothing when no
    /// check is owed.
    #[inline]
    pub fn flush_wake(&mut self) -> NeedsWake {
        if self.corrupt.is_some() {
            // A broken ring owes its peer nothing.
            self.wake = Deferred::default();
            return NeedsWake(false);
        }
        if !self.wake.is_owed() {
            return self.wake.take_ring();
        }
        fence(Ordering::SeqCst);
        self.wake
            .settle(peer_wake(&self.view.mem, CONSUMER_WAITING))
    }

    /// True while a wake-up check or a doorbell is owed to the consumer
    /// (see [`Producer::publish_deferred`]).
    #[inline]
    pub fn wake_owed(&self) -> bool {
        self.wake.is_owed() || self.wake.ring_owed()
    }

    /// The completion of the oldest released slot not yet reported, if any.
    ///
    /// Completions come in ring order, one per committed message, unless the
    /// producer reused the slot first (then that completion is skipped).
    #[inline]
    pub fn completion(&mut self) -> Result<Option<Completion<'_>>, RingError> {
        self.check()?;
        if self.reclaimed == self.tail {
            self.refresh_tail()?;
            if self.reclaimed == self.tail {
                return Ok(None);
            }
        }
        let seq = self.reclaimed;
        let slot = self.view.slot(seq);
        // Ordered after the consumer's writes by the Acquire load of `tail`.
        let [_, len, flags, rc] = read_header(&self.view.mem, slot);
        if len > self.view.msz {
            return Err(self.fail(Corruption::BadLen {
                seq,
                len,
                msz: self.view.msz,
            }));
        }
        self.reclaimed = seq.wrapping_add(1);
        Ok(Some(Completion {
            producer: self,
            slot,
            seq,
            len,
            flags,
            rc: rc as i32,
        }))
    }

    /// Announces that the producer is about to sleep until slots are freed.
    ///
    /// Sets `PRODUCER_WAITING`, issues a SeqCst fence and re-checks the ring:
    /// returns `true` if it is still full (sleep on the doorbell, then call
    /// [`Producer::finish_wait`]), `false` if space appeared meanwhile (the
    /// flag is already cleared; don't sleep).
    ///
    /// Also returns `false` while a wake-up is owed to the consumer (see
    /// [`Producer::publish_deferred`]): call [`Producer::flush_wake`], ring
    /// if told to, and try again.
    #[inline]
    pub fn prepare_wait(&mut self) -> bool {
        self.announce_wait();
        let full = matches!(self.free_slots(), Ok(0)) && !self.wake.ring_owed();
        if !full {
            self.finish_wait();
        }
        full
    }

    /// Like [`Producer::prepare_wait`], but waits for the consumer to release
    /// the message `seq` (a call awaiting its reply) rather than for space:
    /// returns `true` if `seq` is still unreleased after the fence.
    #[inline]
    pub fn prepare_wait_for_release(&mut self, seq: u32) -> bool {
        self.announce_wait();
        let pending =
            self.refresh_tail().is_ok() && self.is_unreleased(seq) && !self.wake.ring_owed();
        if !pending {
            self.finish_wait();
        }
        pending
    }

    /// Sets `PRODUCER_WAITING` and fences; the fence also settles an owed
    /// wake-up check, turning it into an owed doorbell if the consumer
    /// sleeps.
    #[inline]
    fn announce_wait(&mut self) {
        let mem = &self.view.mem;
        mem.fetch_or(View::flags_off(), PRODUCER_WAITING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.wake.is_owed() && self.corrupt.is_none() {
            let wake = peer_wake(&self.view.mem, CONSUMER_WAITING);
            self.wake.keep(wake);
        }
    }

    /// True if `seq` was committed and the consumer has not released it yet
    /// (as of the last read of the shared tail).
    #[inline]
    pub fn is_unreleased(&self, seq: u32) -> bool {
        seq.wrapping_sub(self.tail) < self.head.wrapping_sub(self.tail)
    }

    /// Clears `PRODUCER_WAITING` after a wait.
    #[inline]
    pub fn finish_wait(&mut self) {
        self.view
            .mem
            .fetch_and(View::flags_off(), !PRODUCER_WAITING, Ordering::Relaxed);
    }
}

/// A reserved slot, written in place and then [committed](Outgoing::commit).
/// Dropping it uncommitted leaves the ring unchanged.
#[derive(Debug)]
pub struct Outgoing<'a> {
    producer: &'a mut Producer,
    slot: usize,
}

impl Outgoing<'_> {
    /// The slot's sequence number (its free-running index).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.producer.head
    }

    /// The whole payload area (`msz` bytes), for writing the message in place.
    ///
    /// Its initial contents are whatever the slot last held.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let msz = self.producer.view.msz as usize;
        // SAFETY: the slot lies in the validated ring and, between reserve
        // and commit, belongs to the producer alone under the protocol (the
        // consumer released it). A hostile consumer writing it anyway can
        // only garble its own messages; all bit patterns are valid `u8`s.
        unsafe { self.producer.view.mem.bytes_mut(self.slot + PAYLOAD, msz) }
    }

    /// Commits the first `len` payload bytes with `flags`; returns the
    /// sequence number. Not visible to the consumer until published.
    #[inline]
    pub fn commit(self, len: usize, flags: u32) -> Result<u32, RingError> {
        let p = self.producer;
        if len > p.view.msz as usize {
            return Err(RingError::TooLarge {
                len,
                max: p.view.msz,
            });
        }
        let seq = p.head;
        // Ordered before the consumer's reads by the Release store of `head`.
        write_header(
            &p.view.mem,
            self.slot,
            [seq, len as u32, flags & !slot_flags::COMPLETED, 0],
        );
        p.head = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Copies `msg` into the slot and commits it.
    #[inline]
    pub fn write(self, msg: &[u8], flags: u32) -> Result<u32, RingError> {
        let max = self.producer.view.msz;
        if msg.len() > max as usize {
            return Err(RingError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        self.producer.view.mem.write(self.slot + PAYLOAD, msg);
        self.commit(msg.len(), flags)
    }
}

/// Consecutive free slots reserved by [`Producer::write_chunk`].
///
/// Each message written into it is committed at once (in order); dropping
/// the chunk keeps what was committed and gives back the unused slots.
/// Nothing is visible to the consumer before the producer publishes.
#[derive(Debug)]
pub struct WriteChunk<'a> {
    producer: &'a mut Producer,
    /// One past the last slot of the chunk.
    end: u32,
}

impl WriteChunk<'_> {
    /// Slots of the chunk not written yet.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.end.wrapping_sub(self.producer.head)
    }

    /// True when every slot of the chunk is written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.producer.head == self.end
    }

    /// The next slot of the chunk, to write in place and commit, or `None`
    /// when the chunk is used up.
    #[inline]
    pub fn next_slot(&mut self) -> Option<Outgoing<'_>> {
        let p = &mut *self.producer;
        if p.head == self.end {
            return None;
        }
        // Reusing a slot forfeits its unread completion.
        if p.head.wrapping_sub(p.reclaimed) >= p.view.slot_count {
            p.reclaimed = p.head.wrapping_sub(p.view.slot_count).wrapping_add(1);
        }
        let slot = p.view.slot(p.head);
        Some(Outgoing { producer: p, slot })
    }

    /// Copies `msg` into the next slot of the chunk and commits it with
    /// `flags`; returns its sequence number. Fails with
    /// [`RingError::TooLarge`], or [`RingError::Full`] when the chunk is used
    /// up, without side effects.
    #[inline]
    pub fn push(&mut self, msg: &[u8], flags: u32) -> Result<u32, RingError> {
        let max = self.producer.view.msz;
        if msg.len() > max as usize {
            return Err(RingError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        match self.next_slot() {
            Some(slot) => slot.write(msg, flags),
            None => Err(RingError::Full),
        }
    }
}

/// The result of a message the consumer completed and released.
#[derive(Debug)]
pub struct Completion<'a> {
    producer: &'a Producer,
    slot: usize,
    seq: u32,
    len: u32,
    flags: u32,
    rc: i32,
}

impl Completion<'_> {
    /// Sequence number of the message, as returned when it was committed.
    #[inline]
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The consumer's result code.
    #[inline]
    pub fn rc(&self) -> i32 {
        self.rc
    }

    /// Slot flags as the consumer left them; [`slot_flags::COMPLETED`] is set
    /// if it completed the slot rather than only releasing it.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Length of the reply (at most `msz`).
    #[inline]
    pub fn reply_len(&self) -> usize {
        self.len as usize
    }

    /// Copies the reply into `buf` (truncating to `buf.len()`), returning
    /// the number of bytes copied.
    #[inline]
    pub fn read_reply(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len as usize);
        self.producer
            .view
            .mem
            .read(self.slot + PAYLOAD, &mut buf[..n]);
        n
    }
}
