//! The consuming side of a ring.

use crate::abi::{slot_flags, CONSUMER_WAITING, PRODUCER_WAITING};
use crate::error::{Corruption, RingError};
use crate::mem::relaxed;
use crate::mem::Mem;
use crate::sync::{fence, Ordering};
use crate::view::{peer_wake, NeedsWake, View, FLAGS, LEN, PAYLOAD, RC, SEQ};

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
        let seq = self.tail;
        let slot = self.view.slot(seq);
        let mem = &self.view.mem;
        // Ordered after the producer's writes by the Acquire load of `head`.
        let (found, len, flags) = (
            relaxed(mem, slot + SEQ),
            relaxed(mem, slot + LEN),
            relaxed(mem, slot + FLAGS),
        );
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
        Ok(Some(Incoming {
            consumer: self,
            slot,
            seq,
            len,
            flags,
        }))
    }

    /// Hands every completed slot back to the producer with one Release
    /// store, then tells whether the producer asked to be woken.
    #[inline]
    pub fn release(&mut self) -> NeedsWake {
        if self.tail == self.released || self.corrupt.is_some() {
            return NeedsWake(false);
        }
        self.view
            .mem
            .store(View::tail_off(), self.tail, Ordering::Release);
        self.released = self.tail;
        fence(Ordering::SeqCst);
        peer_wake(&self.view.mem, PRODUCER_WAITING)
    }

    /// Announces that the consumer is about to sleep until a message arrives.
    ///
    /// Sets `CONSUMER_WAITING`, issues a SeqCst fence (pairing with the one
    /// in [`Producer::publish`](crate::Producer::publish)) and re-checks the
    /// ring: returns `true` if it is still empty (sleep on the doorbell, then
    /// call [`Consumer::finish_wait`]), `false` if a message arrived meanwhile
    /// or the ring is corrupt (the flag is cleared; don't sleep).
    #[inline]
    pub fn prepare_wait(&mut self) -> bool {
        self.view
            .mem
            .fetch_or(View::flags_off(), CONSUMER_WAITING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let empty = self.tail == self.head && matches!(self.pending(), Ok(0));
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
        c.view
            .mem
            .store(self.slot + LEN, reply.len() as u32, Ordering::Relaxed);
        Self::finish(c, self.slot, self.flags | extra, rc);
        Ok(())
    }

    /// Sets the result code and consumes the slot, leaving the message bytes
    /// as they are (the reply is the message itself).
    #[inline]
    pub fn complete_rc(self, rc: i32) {
        Self::finish(self.consumer, self.slot, self.flags, rc);
    }

    #[inline]
    fn finish(c: &mut Consumer, slot: usize, flags: u32, rc: i32) {
        c.view.mem.store(slot + RC, rc as u32, Ordering::Relaxed);
        c.view.mem.store(
            slot + FLAGS,
            flags | slot_flags::COMPLETED,
            Ordering::Relaxed,
        );
        c.tail = c.tail.wrapping_add(1);
    }
}
