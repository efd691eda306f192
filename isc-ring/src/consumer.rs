//! The consuming side of a ring.

use crate::abi::{slot_flags, CONSUMER_WAITING, PRODUCER_WAITING};
use crate::error::{Corruption, RingError};
use crate::mem::Mem;
use crate::sync::{fence, Ordering};
use crate::view::{
    peer_wake, read_header, write_words, Deferred, NeedsWake, View, FLAGS, LEN, PAYLOAD,
};

/// Reads messages from a ring and completes them in place.
///
/// [`Consumer::peek`] returns the oldest published message; the consumer
/// copies it out ([`Incoming::read`]), acts on the copy, then completes the
/// slot with a result code and optional reply ([`Incoming::complete`]).
/// Completed slots go back to the producer, in a batch, at
/// [`Consumer::release`].
///
/// Nothing the producer writes can make a `Consumer` panic or touch memory
/// outside the ring: every index and length is read once, validated, and a
/// broken ring is reported as [`RingError::Corrupt`] from then on.
///
/// See [`Producer`](crate::Producer) for an example of both sides.
#[derive(Debug)]
pub struct Consumer {
    view: View,
    /// Next index to read.
    tail: u32,
    /// Index last stored to the shared `tail`.
    released: u32,
    /// Last shared `head` read (everything before it is published).
    head: u32,
    /// Wake-up bookkeeping of the deferred releases.
    wake: Deferred,
    corrupt: Option<Corruption>,
}

// SAFETY: as for Producer: a unique view, all shared accesses atomic or copies.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Attaches to the ring whose header starts at `ptr`; see
    /// [`Producer::new`](crate::Producer::new) for what is validated.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for the whole
    /// life of the `Consumer`, and there must be at most one `Consumer` per
    /// ring. The producer may be anything, including hostile.
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
        let tail = view.mem.load(View::tail_off(), Ordering::Relaxed);
        let head = view.mem.load(View::head_off(), Ordering::Acquire);
        if head.wrapping_sub(tail) > view.slot_count {
            return Err(Corruption::Indices { head, tail }.into());
        }
        Ok(Self {
            view,
            tail,
            released: tail,
            head,
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

    /// Reads the shared head once; it may only move forward, and at most to
    /// `released + slot_count` (the producer can't pass unreleased slots).
    #[inline]
    fn refresh_head(&mut self) -> Result<(), RingError> {
        self.check()?;
        let head = self.view.mem.load(View::head_off(), Ordering::Acquire);
        let limit = self.released.wrapping_add(self.view.slot_count);
        if head.wrapping_sub(self.head) > limit.wrapping_sub(self.head) {
            return Err(self.fail(Corruption::Indices {
                head,
                tail: self.released,
            }));
        }
        self.head = head;
        Ok(())
    }

    /// Published messages not yet consumed, re-reading the producer's index.
    #[inline]
    pub fn pending(&mut self) -> Result<u32, RingError> {
        self.refresh_head()?;
        Ok(self.head.wrapping_sub(self.tail))
    }

    /// The oldest unconsumed message, or `Ok(None)` if the ring is empty.
    ///
    /// Its header is read once and validated (`len <= msz`, `seq` equal to
    /// its index). The message stays in the ring until completed.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<Incoming<'_>>, RingError> {
        self.check()?;
        if self.tail == self.head {
            self.refresh_head()?;
            if self.tail == self.head {
                return Ok(None);
            }
        }
        self.incoming().map(Some)
    }

    /// The published messages, up to `max`, for reading many with one check
    /// of the producer's index (like `rtrb`'s `read_chunk`). Each message is
    /// validated as [`Consumer::peek`] does when the chunk hands it out;
    /// completed messages go back to the producer at the next
    /// [`Consumer::release`] (or [`Consumer::release_deferred`]) after the
    /// chunk is dropped. See [`Producer::write_chunk`](crate::Producer::write_chunk)
    /// for an example.
    #[inline]
    pub fn read_chunk(&mut self, max: u32) -> Result<ReadChunk<'_>, RingError> {
        self.check()?;
        let mut ready = self.head.wrapping_sub(self.tail);
        if ready < max {
            self.refresh_head()?;
            ready = self.head.wrapping_sub(self.tail);
        }
        let end = self.tail.wrapping_add(ready.min(max));
        Ok(ReadChunk {
            consumer: self,
            end,
        })
    }

    /// Reads and validates the header of the slot at `tail` (which must be
    /// published).
    #[inline]
    fn incoming(&mut self) -> Result<Incoming<'_>, RingError> {
        let seq = self.tail;
        let slot = self.view.slot(seq);
        // Ordered after the producer's writes by the Acquire load of `head`.
        let [found, len, flags, _] = read_header(&self.view.mem, slot);
        if found != seq {
            return Err(self.fail(Corruption::BadSeq {
                expected: seq,
                found,
            }));
        }
        if len > self.view.msz {
            return Err(self.fail(Corruption::BadLen {
                seq,
                len,
                msz: self.view.msz,
            }));
        }
        Ok(Incoming {
            consumer: self,
            slot,
            seq,
            len,
            flags,
        })
    }

    /// Hands every completed slot back to the producer with one Release
    /// store, then tells whether the producer asked to be woken.
    ///
    /// A SeqCst fence separates the store from the read of the producer's
    /// flag (pairing with the one in
    /// [`Producer::prepare_wait`](crate::Producer::prepare_wait)); it also
    /// completes the check owed by earlier [`Consumer::release_deferred`]
    /// calls.
    #[inline]
    pub fn release(&mut self) -> NeedsWake {
        if self.corrupt.is_some() {
            return NeedsWake(false);
        }
        if self.tail != self.released {
            self.view
                .mem
                .store(View::tail_off(), self.tail, Ordering::Release);
            self.released = self.tail;
        } else if !self.wake.is_owed() {
            return self.wake.take_ring();
        }
        fence(Ordering::SeqCst);
        self.wake
            .settle(peer_wake(&self.view.mem, PRODUCER_WAITING))
    }

    /// Hands every completed slot back with one Release store, without the
    /// fence of the wake-up check: the cheap way to release message by
    /// message in a burst.
    ///
    /// Reports a wake-up if the producer's request is already visible. A
    /// producer falling asleep at this very moment may be missed, so the
    /// check is owed until [`Consumer::flush_wake`] (or
    /// [`Consumer::release`]) runs: call it once at the end of the burst,
    /// before stopping consuming for an unbounded time. While a check is
    /// owed, [`Consumer::prepare_wait`] refuses to sleep.
    #[inline]
    pub fn release_deferred(&mut self) -> NeedsWake {
        if self.corrupt.is_some() {
            return NeedsWake(false);
        }
        if self.tail == self.released {
            return self.wake.take_ring();
        }
        self.view
            .mem
            .store(View::tail_off(), self.tail, Ordering::Release);
        self.released = self.tail;
        self.wake.owe(peer_wake(&self.view.mem, PRODUCER_WAITING))
    }

    /// Completes the wake-up check owed by [`Consumer::release_deferred`]:
    /// a SeqCst fence, then the producer's flag. Costs nothing when no
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
            .settle(peer_wake(&self.view.mem, PRODUCER_WAITING))
    }

    /// True while a wake-up check or a doorbell is owed to the producer
    /// (see [`Consumer::release_deferred`]).
    #[inline]
    pub fn wake_owed(&self) -> bool {
        self.wake.is_owed() || self.wake.ring_owed()
    }

    /// Announces that the consumer is about to sleep until a message arrives.
    ///
    /// Sets `CONSUMER_WAITING`, issues a SeqCst fence (pairing with the one
    /// in [`Producer::publish`](crate::Producer::publish)) and re-checks the
    /// ring: returns `true` if it is still empty (sleep on the doorbell, then
    /// call [`Consumer::finish_wait`]), `false` if a message arrived meanwhile
    /// or the ring is corrupt (the flag is cleared; don't sleep).
    ///
    /// Also returns `false` while a wake-up is owed to the producer (see
    /// [`Consumer::release_deferred`]): call [`Consumer::flush_wake`], ring
    /// if told to, and try again.
    #[inline]
    pub fn prepare_wait(&mut self) -> bool {
        self.view
            .mem
            .fetch_or(View::flags_off(), CONSUMER_WAITING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.wake.is_owed() && self.corrupt.is_none() {
            let wake = peer_wake(&self.view.mem, PRODUCER_WAITING);
            self.wake.keep(wake);
        }
        let empty =
            self.tail == self.head && matches!(self.pending(), Ok(0)) && !self.wake.ring_owed();
        if !empty {
            self.finish_wait();
        }
        empty
    }

    /// Clears `CONSUMER_WAITING` after a wait.
    #[inline]
    pub fn finish_wait(&mut self) {
        self.view
            .mem
            .fetch_and(View::flags_off(), !CONSUMER_WAITING, Ordering::Relaxed);
    }
}

/// Published messages handed out by [`Consumer::read_chunk`], in order.
#[derive(Debug)]
pub struct ReadChunk<'a> {
    consumer: &'a mut Consumer,
    /// One past the last message of the chunk.
    end: u32,
}

impl ReadChunk<'_> {
    /// Messages of the chunk not consumed yet.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.end.wrapping_sub(self.consumer.tail)
    }

    /// True when every message of the chunk is consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.consumer.tail == self.end
    }

    /// The next message of the chunk, validated as by [`Consumer::peek`], or
    /// `None` when the chunk is used up. A message dropped without being
    /// completed or consumed is handed out again.
    #[inline]
    pub fn next_message(&mut self) -> Result<Option<Incoming<'_>>, RingError> {
        self.consumer.check()?;
        if self.consumer.tail == self.end {
            return Ok(None);
        }
        self.consumer.incoming().map(Some)
    }
}

/// A message at the front of the ring, valid until completed.
/// Dropping it leaves the message in place: the next `peek` returns it again.
#[derive(Debug)]
pub struct Incoming<'a> {
    consumer: &'a mut Consumer,
    slot: usize,
    seq: u32,
    len: u32,
    flags: u32,
}

impl Incoming<'_> {
    /// Sequence number (free-running index) of the message.
    #[inline]
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Length of the message, validated `<= msz`.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for an empty message.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The producer's slot flags (see [`slot_flags`]).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Copies the message into `buf` (truncating to `buf.len()`), returning
    /// the number of bytes copied. Act on the copy: the producer may rewrite
    /// the shared bytes at any time.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len as usize);
        self.consumer
            .view
            .mem
            .read(self.slot + PAYLOAD, &mut buf[..n]);
        n
    }

    /// Writes `reply` over the message in place, sets the result code and
    /// consumes the slot. Fails with [`RingError::TooLarge`], leaving the
    /// message in place, if `reply` exceeds `msz`.
    #[inline]
    pub fn complete(self, rc: i32, reply: &[u8]) -> Result<(), RingError> {
        self.complete_with_flags(rc, reply, 0)
    }

    /// Like [`Incoming::complete`], also setting `extra` slot flags (such as
    /// [`slot_flags::NOT_DELIVERED`]) next to [`slot_flags::COMPLETED`].
    #[inline]
    pub fn complete_with_flags(self, rc: i32, reply: &[u8], extra: u32) -> Result<(), RingError> {
        let c = self.consumer;
        if reply.len() > c.view.msz as usize {
            return Err(RingError::TooLarge {
                len: reply.len(),
                max: c.view.msz,
            });
        }
        c.view.mem.write(self.slot + PAYLOAD, reply);
        let flags = self.flags | extra | slot_flags::COMPLETED;
        Self::finish(c, self.slot + LEN, &[reply.len() as u32, flags, rc as u32]);
        Ok(())
    }

    /// Sets the result code and consumes the slot, leaving the message bytes
    /// as they are (the reply is the message itself).
    #[inline]
    pub fn complete_rc(self, rc: i32) {
        let flags = self.flags | slot_flags::COMPLETED;
        Self::finish(self.consumer, self.slot + FLAGS, &[flags, rc as u32]);
    }

    /// Consumes the message without completing it (a one-way message): the
    /// slot is left untouched, so the producer's [`Completion`](crate::Completion)
    /// for it carries no [`slot_flags::COMPLETED`] flag, and no write of the
    /// consumer pulls the slot's cache line away from the producer.
    #[inline]
    pub fn consume(self) {
        self.consumer.tail = self.consumer.tail.wrapping_add(1);
    }

    /// Writes the slot's header words from `off` on (the completion's
    /// `len`, `flags`, `rc`, or the last two) and consumes the slot.
    #[inline]
    fn finish(c: &mut Consumer, off: usize, words: &[u32]) {
        write_words(&c.view.mem, off, words);
        c.tail = c.tail.wrapping_add(1);
    }
}
