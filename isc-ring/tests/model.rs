//! Model-based tests: random sequences of ring operations, driven from one
//! thread through a real `Producer` and `Consumer` on the same memory, are
//! checked step by step against a plain `VecDeque` model of the protocol.
//!
//! The indices start anywhere, including just below `u32::MAX`, so the
//! free-running counters wrap during a run.
#![cfg(not(loom))]

use isc_ring::abi::{slot_flags, HEAD_OFFSET, TAIL_OFFSET};
use isc_ring::{Consumer, Producer, RingConfig, RingError};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::ptr::NonNull;

const REGION: usize = 8192;

/// Page-aligned backing memory for one ring.
#[repr(C, align(4096))]
struct Region([u8; REGION]);

/// What the consumer does with a message it peeked.
#[derive(Clone, Debug)]
enum Action {
    /// Leave it in place (the next peek returns it again).
    Drop,
    /// Complete it with a result code, keeping the message as the reply.
    CompleteRc(i32),
    /// Complete it with a result code and a reply of `len` bytes (possibly
    /// too long) filled from `fill`.
    Complete { rc: i32, len: u16, fill: u8 },
    /// Consume it without a completion.
    Consume,
}

#[derive(Clone, Debug)]
enum Op {
    /// `Producer::push` of `len` bytes (reduced modulo `msz + 3`, so some
    /// are too large).
    Push {
        len: u16,
        fill: u8,
        flags: u32,
    },
    /// `reserve`, write through `payload_mut`, then `commit` (possibly of a
    /// too-large length) or drop the reservation.
    Reserve {
        len: u16,
        fill: u8,
        flags: u32,
        commit: bool,
    },
    Publish,
    /// `publish_deferred`: no fence, the wake-up check owed.
    PublishDeferred,
    /// `Producer::flush_wake`.
    ProducerFlush,
    /// `write_chunk(max)`, then up to `n` messages pushed into it (lengths
    /// from `len` onwards, some too large).
    WriteChunk {
        max: u8,
        n: u8,
        len: u16,
        fill: u8,
    },
    /// `read_chunk(max)`, then up to `n` messages read, each completed with
    /// its index as rc, or consumed when `consume`.
    ReadChunk {
        max: u8,
        n: u8,
        consume: bool,
    },
    /// `release_deferred`.
    ReleaseDeferred,
    /// `Consumer::flush_wake`.
    ConsumerFlush,
    /// `peek`, read into a buffer of `buf` bytes, then act.
    Peek {
        buf: u16,
        action: Action,
    },
    Release,
    /// `completion`, reading the reply into a buffer of `buf` bytes.
    Completion {
        buf: u16,
    },
    ConsumerPrepareWait,
    ConsumerFinishWait,
    ProducerPrepareWait,
    /// `prepare_wait_for_release` of the message `back` before the next one.
    ProducerWaitForRelease {
        back: u8,
    },
    ProducerFinishWait,
    /// `free_slots`, `pending`, `unpublished`, `is_unreleased`.
    Counts,
    /// Drop the consumer and attach a new one to the same ring.
    ReattachConsumer,
    /// Drop the producer and attach a new one to the same ring.
    ReattachProducer,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => Just(Action::Drop),
        3 => any::<i32>().prop_map(Action::CompleteRc),
        1 => Just(Action::Consume),
        4 => (any::<i32>(), any::<u16>(), any::<u8>())
            .prop_map(|(rc, len, fill)| Action::Complete { rc, len, fill }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u16>(), any::<u8>(), any::<u32>())
            .prop_map(|(len, fill, flags)| Op::Push { len, fill, flags }),
        3 => (any::<u16>(), any::<u8>(), any::<u32>(), any::<bool>()).prop_map(
            |(len, fill, flags, commit)| Op::Reserve { len, fill, flags, commit }
        ),
        4 => Just(Op::Publish),
        2 => Just(Op::PublishDeferred),
        1 => Just(Op::ProducerFlush),
        2 => (any::<u8>(), any::<u8>(), any::<u16>(), any::<u8>())
            .prop_map(|(max, n, len, fill)| Op::WriteChunk { max, n, len, fill }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(max, n, consume)| Op::ReadChunk { max, n, consume }),
        2 => Just(Op::ReleaseDeferred),
        1 => Just(Op::ConsumerFlush),
        8 => (any::<u16>(), action()).prop_map(|(buf, action)| Op::Peek { buf, action }),
        3 => Just(Op::Release),
        4 => any::<u16>().prop_map(|buf| Op::Completion { buf }),
        1 => Just(Op::ConsumerPrepareWait),
        1 => Just(Op::ConsumerFinishWait),
        1 => Just(Op::ProducerPrepareWait),
        1 => any::<u8>().prop_map(|back| Op::ProducerWaitForRelease { back }),
        1 => Just(Op::ProducerFinishWait),
        2 => Just(Op::Counts),
        1 => Just(Op::ReattachConsumer),
        1 => Just(Op::ReattachProducer),
    ]
}

/// First index of a run: zero, just below the wrap, or anywhere.
fn start() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (u32::MAX - 24..=u32::MAX), any::<u32>(),]
}

/// A slot's contents as the model knows them.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    /// The message, or the reply once completed.
    data: Vec<u8>,
    flags: u32,
    rc: i32,
}

/// The model: every message from the oldest unreported completion to the
/// newest commit, in order, and the five counters that split them (as
/// offsets from the first index, so they never wrap).
struct Model {
    start: u32,
    n: u64,
    msz: usize,
    /// Slots `reclaimed..head`, front = `reclaimed`.
    slots: VecDeque<Slot>,
    reclaimed: u64,
    released: u64,
    consumed: u64,
    published: u64,
    head: u64,
    consumer_waiting: bool,
    producer_waiting: bool,
    /// Wake-up checks owed after deferred publishes / releases, and
    /// doorbells owed after `prepare_wait` settled such a check.
    producer_owes: Owed,
    consumer_owes: Owed,
}

/// What one side owes its peer after deferred publishes or releases.
#[derive(Clone, Copy, Debug, Default)]
struct Owed {
    check: bool,
    ring: bool,
}

impl Owed {
    /// A deferred store followed by a read of the peer's flag: in one thread
    /// the read sees the flag exactly.
    fn deferred(&mut self, peer_waiting: &mut bool) -> bool {
        let seen = std::mem::take(peer_waiting);
        self.check = !seen;
        seen | std::mem::take(&mut self.ring)
    }

    /// A fenced check (publish, release, flush_wake).
    fn settle(&mut self, peer_waiting: &mut bool) -> bool {
        let seen = self.check && std::mem::take(peer_waiting);
        self.check = false;
        seen | std::mem::take(&mut self.ring)
    }

    /// `prepare_wait`: settle an owed check, keeping the doorbell.
    fn keep(&mut self, peer_waiting: &mut bool) {
        if self.check {
            self.ring |= std::mem::take(peer_waiting);
            self.check = false;
        }
    }
}

impl Model {
    fn seq(&self, i: u64) -> u32 {
        self.start.wrapping_add(i as u32)
    }

    fn slot(&mut self, i: u64) -> &mut Slot {
        &mut self.slots[(i - self.reclaimed) as usize]
    }

    fn free(&self) -> u64 {
        self.n - (self.head - self.released)
    }

    /// The producer is about to write slot `head`: a completion still
    /// unreported in that slot is forfeited.
    fn reuse(&mut self) {
        while self.head - self.reclaimed >= self.n {
            self.slots.pop_front();
            self.reclaimed += 1;
        }
    }

    fn commit(&mut self, data: Vec<u8>, flags: u32) {
        self.slots.push_back(Slot {
            data,
            flags: flags & !slot_flags::COMPLETED,
            rc: 0,
        });
        self.head += 1;
    }
}

fn pattern(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(31)))
        .collect()
}

/// Builds a ring of `msz`, `num` whose indices both start at `start`.
fn region(cfg: RingConfig, start: u32) -> Box<Region> {
    let mut r = Box::new(Region([0xEE; REGION]));
    cfg.init(&mut r.0).unwrap();
    r.0[HEAD_OFFSET..HEAD_OFFSET + 4].copy_from_slice(&start.to_ne_bytes());
    r.0[TAIL_OFFSET..TAIL_OFFSET + 4].copy_from_slice(&start.to_ne_bytes());
    r
}

fn attach_producer(ptr: NonNull<u8>) -> Producer {
    // SAFETY: `ptr` is the start of a live `Region` of REGION bytes that the
    // test keeps alive and does not touch while views exist; each test holds
    // at most one producer at a time.
    unsafe { Producer::new(ptr, REGION) }.unwrap()
}

fn attach_consumer(ptr: NonNull<u8>) -> Consumer {
    // SAFETY: as in `attach_producer`, with at most one consumer at a time.
    unsafe { Consumer::new(ptr, REGION) }.unwrap()
}

fn run(msz: u32, num: u32, start: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let cfg = RingConfig::new(msz, num).unwrap();
    // Declared before the views, so dropped after them.
    let mut backing = region(cfg, start);
    let ptr = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    let mut tx = attach_producer(ptr);
    let mut rx = attach_consumer(ptr);
    let n = cfg.slot_count() as u64;
    prop_assert_eq!(tx.slot_count() as u64, n);
    prop_assert_eq!(rx.msz(), msz);
    let mut m = Model {
        start,
        n,
        msz: msz as usize,
        slots: VecDeque::new(),
        reclaimed: 0,
        released: 0,
        consumed: 0,
        published: 0,
        head: 0,
        consumer_waiting: false,
        producer_waiting: false,
        producer_owes: Owed::default(),
        consumer_owes: Owed::default(),
    };
    let limit = m.msz + 3;
    let wrap = move |raw: u16| raw as usize % limit;

    for op in ops {
        match op {
            Op::Push { len, fill, flags } => {
                let len = wrap(len);
                let data = pattern(len, fill);
                let got = tx.push(&data, flags);
                if len > m.msz {
                    prop_assert_eq!(got, Err(RingError::TooLarge { len, max: msz }));
                } else if m.free() == 0 {
                    prop_assert_eq!(got, Err(RingError::Full));
                } else {
                    prop_assert_eq!(got, Ok(m.seq(m.head)));
                    m.reuse();
                    m.commit(data, flags);
                }
            }
            Op::Reserve {
                len,
                fill,
                flags,
                commit,
            } => {
                let len = wrap(len);
                let slot = tx.reserve().unwrap();
                if m.free() == 0 {
                    prop_assert!(slot.is_none());
                    continue;
                }
                let mut slot = slot.expect("a free slot");
                prop_assert_eq!(slot.seq(), m.seq(m.head));
                // Reserving hands the slot (and its old reply) to the producer.
                m.reuse();
                let data = pattern(len, fill);
                let payload = slot.payload_mut();
                prop_assert_eq!(payload.len(), m.msz);
                let k = len.min(m.msz);
                payload[..k].copy_from_slice(&data[..k]);
                if commit {
                    let got = slot.commit(len, flags);
                    if len > m.msz {
                        prop_assert_eq!(got, Err(RingError::TooLarge { len, max: msz }));
                    } else {
                        prop_assert_eq!(got, Ok(m.seq(m.head)));
                        m.commit(data, flags);
                    }
                }
            }
            Op::Publish => {
                let wake = tx.publish().is_needed();
                if m.head != m.published {
                    m.producer_owes.check = true;
                    m.published = m.head;
                }
                let want = m.producer_owes.settle(&mut m.consumer_waiting);
                prop_assert_eq!(wake, want);
            }
            Op::PublishDeferred => {
                let wake = tx.publish_deferred().is_needed();
                let want = if m.head == m.published {
                    std::mem::take(&mut m.producer_owes.ring)
                } else {
                    m.published = m.head;
                    m.producer_owes.deferred(&mut m.consumer_waiting)
                };
                prop_assert_eq!(wake, want);
                prop_assert_eq!(
                    tx.wake_owed(),
                    m.producer_owes.check || m.producer_owes.ring
                );
            }
            Op::ProducerFlush => {
                let wake = tx.flush_wake().is_needed();
                prop_assert_eq!(wake, m.producer_owes.settle(&mut m.consumer_waiting));
                prop_assert!(!tx.wake_owed());
            }
            Op::WriteChunk { max, n, len, fill } => {
                let max = u32::from(max % 12);
                let mut chunk = tx.write_chunk(max).unwrap();
                let size = (m.free() as u32).min(max);
                prop_assert_eq!(chunk.remaining(), size);
                prop_assert_eq!(chunk.is_empty(), size == 0);
                for k in 0..n % 12 {
                    let len = wrap(len.wrapping_add(u16::from(k) * 7));
                    let data = pattern(len, fill.wrapping_add(k));
                    let left = chunk.remaining();
                    let got = chunk.push(&data, u32::from(k));
                    if len > m.msz {
                        prop_assert_eq!(got, Err(RingError::TooLarge { len, max: msz }));
                    } else if left == 0 {
                        prop_assert_eq!(got, Err(RingError::Full));
                    } else {
                        prop_assert_eq!(got, Ok(m.seq(m.head)));
                        m.reuse();
                        m.commit(data, u32::from(k));
                        prop_assert_eq!(chunk.remaining(), left - 1);
                    }
                }
            }
            Op::ReadChunk { max, n, consume } => {
                let max = u32::from(max % 12);
                let mut chunk = rx.read_chunk(max).unwrap();
                let size = ((m.published - m.consumed) as u32).min(max);
                prop_assert_eq!(chunk.remaining(), size);
                let mut out = vec![0u8; m.msz];
                for _ in 0..n % 12 {
                    let left = chunk.remaining();
                    let msg = chunk.next_message().unwrap();
                    if left == 0 {
                        prop_assert!(msg.is_none());
                        continue;
                    }
                    let msg = msg.expect("a message of the chunk");
                    let i = m.consumed;
                    let want = m.slot(i).clone();
                    prop_assert_eq!(msg.seq(), m.seq(i));
                    prop_assert_eq!(msg.flags(), want.flags);
                    let got = msg.read(&mut out);
                    prop_assert_eq!(&out[..got], &want.data[..]);
                    if consume {
                        msg.consume();
                    } else {
                        msg.complete_rc(i as i32);
                        let s = m.slot(i);
                        s.rc = i as i32;
                        s.flags = want.flags | slot_flags::COMPLETED;
                    }
                    m.consumed += 1;
                    prop_assert_eq!(chunk.remaining(), left - 1);
                    prop_assert_eq!(chunk.is_empty(), left == 1);
                }
            }
            Op::Peek { buf, action } => {
                let msg = rx.peek().unwrap();
                if m.consumed == m.published {
                    prop_assert!(msg.is_none());
                    continue;
                }
                let msg = msg.expect("a published message");
                let i = m.consumed;
                let seq = m.seq(i);
                let want = m.slot(i).clone();
                prop_assert_eq!(msg.seq(), seq);
                prop_assert_eq!(msg.len(), want.data.len());
                prop_assert_eq!(msg.is_empty(), want.data.is_empty());
                prop_assert_eq!(msg.flags(), want.flags);
                let mut out = vec![0u8; buf as usize % (m.msz + 8)];
                let got = msg.read(&mut out);
                prop_assert_eq!(got, out.len().min(want.data.len()));
                prop_assert_eq!(&out[..got], &want.data[..got]);
                match action {
                    Action::Drop => {}
                    Action::Consume => {
                        msg.consume();
                        m.consumed += 1;
                    }
                    Action::CompleteRc(rc) => {
                        msg.complete_rc(rc);
                        let s = m.slot(i);
                        s.rc = rc;
                        s.flags = want.flags | slot_flags::COMPLETED;
                        m.consumed += 1;
                    }
                    Action::Complete { rc, len, fill } => {
                        let len = wrap(len);
                        let reply = pattern(len, fill);
                        let got = msg.complete(rc, &reply);
                        if len > m.msz {
                            prop_assert_eq!(got, Err(RingError::TooLarge { len, max: msz }));
                        } else {
                            prop_assert_eq!(got, Ok(()));
                            *m.slot(i) = Slot {
                                data: reply,
                                flags: want.flags | slot_flags::COMPLETED,
                                rc,
                            };
                            m.consumed += 1;
                        }
                    }
                }
            }
            Op::Release => {
                let wake = rx.release().is_needed();
                if m.consumed != m.released {
                    m.consumer_owes.check = true;
                    m.released = m.consumed;
                }
                let want = m.consumer_owes.settle(&mut m.producer_waiting);
                prop_assert_eq!(wake, want);
            }
            Op::ReleaseDeferred => {
                let wake = rx.release_deferred().is_needed();
                let want = if m.consumed == m.released {
                    std::mem::take(&mut m.consumer_owes.ring)
                } else {
                    m.released = m.consumed;
                    m.consumer_owes.deferred(&mut m.producer_waiting)
                };
                prop_assert_eq!(wake, want);
                prop_assert_eq!(
                    rx.wake_owed(),
                    m.consumer_owes.check || m.consumer_owes.ring
                );
            }
            Op::ConsumerFlush => {
                let wake = rx.flush_wake().is_needed();
                prop_assert_eq!(wake, m.consumer_owes.settle(&mut m.producer_waiting));
                prop_assert!(!rx.wake_owed());
            }
            Op::Completion { buf } => {
                let done = tx.completion().unwrap();
                if m.reclaimed == m.released {
                    prop_assert!(done.is_none());
                    continue;
                }
                let done = done.expect("a released message");
                let want = m.slots.pop_front().unwrap();
                prop_assert_eq!(done.seq(), m.seq(m.reclaimed));
                prop_assert_eq!(done.rc(), want.rc);
                prop_assert_eq!(done.flags(), want.flags);
                prop_assert_eq!(done.reply_len(), want.data.len());
                let mut out = vec![0u8; buf as usize % (m.msz + 8)];
                let got = done.read_reply(&mut out);
                prop_assert_eq!(got, out.len().min(want.data.len()));
                prop_assert_eq!(&out[..got], &want.data[..got]);
                m.reclaimed += 1;
            }
            Op::ConsumerPrepareWait => {
                let sleep = rx.prepare_wait();
                m.consumer_owes.keep(&mut m.producer_waiting);
                prop_assert_eq!(sleep, m.consumed == m.published && !m.consumer_owes.ring);
                m.consumer_waiting = sleep;
            }
            Op::ConsumerFinishWait => {
                rx.finish_wait();
                m.consumer_waiting = false;
            }
            Op::ProducerPrepareWait => {
                let sleep = tx.prepare_wait();
                m.producer_owes.keep(&mut m.consumer_waiting);
                prop_assert_eq!(sleep, m.free() == 0 && !m.producer_owes.ring);
                m.producer_waiting = sleep;
            }
            Op::ProducerWaitForRelease { back } => {
                let i = m.head.wrapping_sub(back as u64 % (m.n + 2));
                let seq = m.seq(i);
                let unreleased = i < m.head && i >= m.released;
                let sleep = tx.prepare_wait_for_release(seq);
                m.producer_owes.keep(&mut m.consumer_waiting);
                prop_assert_eq!(sleep, unreleased && !m.producer_owes.ring);
                prop_assert_eq!(tx.is_unreleased(seq), unreleased);
                m.producer_waiting = sleep;
            }
            Op::ProducerFinishWait => {
                tx.finish_wait();
                m.producer_waiting = false;
            }
            Op::Counts => {
                prop_assert_eq!(tx.free_slots().unwrap() as u64, m.free());
                prop_assert_eq!(rx.pending().unwrap() as u64, m.published - m.consumed);
                prop_assert_eq!(tx.unpublished() as u64, m.head - m.published);
                for i in m.released.saturating_sub(1)..=m.head {
                    let want = i >= m.released && i < m.head;
                    prop_assert_eq!(tx.is_unreleased(m.seq(i)), want);
                }
            }
            Op::ReattachConsumer => {
                rx = attach_consumer(ptr);
                // Consumed but unreleased messages come back (as completed,
                // if they were), and a new view owes nothing.
                m.consumed = m.released;
                m.consumer_owes = Owed::default();
            }
            Op::ReattachProducer => {
                tx = attach_producer(ptr);
                m.producer_owes = Owed::default();
                // Unpublished commits and unreported completions are gone.
                while m.head > m.published {
                    m.slots.pop_back();
                    m.head -= 1;
                }
                while m.reclaimed < m.released {
                    m.slots.pop_front();
                    m.reclaimed += 1;
                }
            }
        }
        prop_assert!(m.head - m.released <= m.n);
        prop_assert_eq!(m.slots.len() as u64, m.head - m.reclaimed);
    }

    // Drain: publish and consume everything, in order, with the right bytes.
    let _ = tx.publish();
    m.published = m.head;
    m.consumed = m.released;
    let mut rx = attach_consumer(ptr);
    let mut out = vec![0u8; m.msz];
    for i in m.consumed..m.published {
        let want = m.slot(i).clone();
        let msg = rx.peek().unwrap().expect("published message");
        prop_assert_eq!(msg.seq(), m.seq(i));
        let got = msg.read(&mut out);
        prop_assert_eq!(&out[..got], &want.data[..]);
        msg.complete_rc(0);
    }
    prop_assert!(rx.peek().unwrap().is_none());
    let _ = rx.release();
    prop_assert_eq!(tx.free_slots().unwrap() as u64, m.n);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Miri runs a handful; a normal run many.
        cases: if cfg!(miri) { 4 } else { 512 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_model(
        msz in prop_oneof![1u32..=24, Just(64u32), 100u32..=200],
        num in 1u32..=8,
        start in start(),
        ops in prop::collection::vec(op(), 0..300),
    ) {
        run(msz, num, start, ops)?;
    }
}

/// A long deterministic run across the wrap: many times the ring size, every
/// message checked, starting a few slots before `u32::MAX`.
#[test]
fn streams_across_the_wrap() {
    let cfg = RingConfig::new(13, 4).unwrap();
    // Declared before the views, so dropped after them.
    let mut backing = region(cfg, u32::MAX - 5);
    let ptr = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    let (mut tx, mut rx) = (attach_producer(ptr), attach_consumer(ptr));
    let mut sent = 0u32;
    let mut got = 0u32;
    let mut buf = [0u8; 13];
    while got < 1000 {
        while sent < 1000 {
            match tx.push(&pattern((sent % 14) as usize, sent as u8), sent) {
                Ok(seq) => assert_eq!(seq, (u32::MAX - 5).wrapping_add(sent)),
                Err(RingError::Full) => break,
                Err(e) => panic!("push: {e}"),
            }
            sent += 1;
        }
        let _ = tx.publish();
        let round = got;
        while let Some(msg) = rx.peek().unwrap() {
            assert_eq!(msg.flags(), got & !slot_flags::COMPLETED);
            let n = msg.read(&mut buf);
            assert_eq!(&buf[..n], &pattern((got % 14) as usize, got as u8)[..]);
            msg.complete_rc(got as i32);
            got += 1;
        }
        let _ = rx.release();
        let mut reported = 0;
        while let Some(done) = tx.completion().unwrap() {
            assert_eq!(done.rc() as u32, done.seq().wrapping_sub(u32::MAX - 5));
            reported += 1;
        }
        // No slot was reused since the release: every completion is reported.
        assert_eq!(reported, got - round);
    }
    assert_eq!(tx.free_slots().unwrap(), 4);
}
