//! Loom models of the ring's memory orderings and wake-up protocol.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p isc-ring --release --test loom`.
//! Under `cfg(loom)` the crate uses loom's atomics and keeps the ring in a
//! [`ModeledMem`] whose payload bytes travel through relaxed word accesses:
//! a message or reply read without a happens-before edge to its write can
//! observe a stale word, which the content checks below turn into a failure.
//! A lost wake-up leaves a thread blocked on a doorbell forever, which loom
//! reports as a deadlock.
#![cfg(loom)]

use isc_ring::abi::slot_flags;
use isc_ring::{Consumer, ModeledMem, Producer, RingConfig, RingError};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Payload size of the modelled rings: two words, so that a payload read
/// half before and half after the producer's write is caught.
const MSZ: u32 = 8;

/// A fresh modelled ring of `num` slots, attached from both sides.
fn ring(num: u32) -> (Producer, Consumer) {
    let cfg = RingConfig::new(MSZ, num).expect("valid geometry");
    let mem = ModeledMem::zeroed(cfg.ring_bytes() as usize);
    cfg.init_modeled(&mem);
    let tx = Producer::from_mem(mem.clone()).expect("producer attaches");
    let rx = Consumer::from_mem(mem).expect("consumer attaches");
    (tx, rx)
}

/// The payload of message `i`: two distinct words, neither of them zero (the
/// value a never-written slot holds).
fn message(i: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&(0x1000_0000 | i).to_ne_bytes());
    m[4..].copy_from_slice(&(0x2000_0000 | (i << 8) | 0x5a).to_ne_bytes());
    m
}

/// The reply to message `i`, also two distinct non-zero words, different
/// from every message.
fn reply(i: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&(0x3000_0000 | i).to_ne_bytes());
    m[4..].copy_from_slice(&(0x4000_0000 | (i << 8) | 0xa5).to_ne_bytes());
    m
}

/// Runs `f` under loom, exhaustively when `bound` is `None`, else up to
/// `bound` preemptions per execution, and checks that loom explored more than
/// one execution. `LOOM_MAX_PREEMPTIONS`, when set, overrides the bound.
fn check<F>(bound: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = bound;
    }
    let bound = b.preemption_bound;
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("explored {runs} executions (preemption bound {bound:?})");
    // A model that ran once explored no interleaving at all.
    assert!(runs > 1, "loom explored a single execution");
}

/// An eventfd-like doorbell: `ring` makes one pending wake-up (idempotent
/// while pending), `wait` blocks until one is pending and consumes it.
struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            rung: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn wait(&self) {
        let mut rung = self.rung.lock().unwrap();
        while !*rung {
            rung = self.cv.wait(rung).unwrap();
        }
        *rung = false;
    }
}

/// Pushes message `i` into the ring, spinning (loom-yielding) while it is full.
fn push_spinning(tx: &mut Producer, i: u32) {
    loop {
        match tx.push(&message(i), 0) {
            Ok(seq) => {
                assert_eq!(seq, i, "sequence numbers are the free-running index");
                return;
            }
            Err(RingError::Full) => thread::yield_now(),
            Err(e) => panic!("push {i}: {e}"),
        }
    }
}

/// Receives message `i` (spinning while the ring is empty), checks it
/// entirely, and completes it with `rc = i` and no reply.
fn recv_spinning(rx: &mut Consumer, i: u32) {
    loop {
        if let Some(msg) = rx.peek().expect("ring stays consistent") {
            check_incoming(msg, i);
            return;
        }
        thread::yield_now();
    }
}

/// Checks that `msg` is message `i`, byte for byte, and completes it.
fn check_incoming(msg: isc_ring::Incoming<'_>, i: u32) {
    assert_eq!(msg.seq(), i, "messages arrive in order");
    assert_eq!(msg.len(), MSZ as usize);
    assert_eq!(msg.flags(), 0);
    let mut buf = [0u8; MSZ as usize];
    assert_eq!(msg.read(&mut buf), MSZ as usize);
    assert_eq!(buf, message(i), "payload of message {i}");
    msg.complete_rc(i as i32);
}

/// FIFO, exactly once: three messages through two slots, so the producer
/// reuses a slot after the consumer released it. Every message arrives once, in
/// order, with exactly the bytes written.
#[test]
fn fifo_exactly_once() {
    const N: u32 = 3;
    check(None, || {
        let (mut tx, mut rx) = ring(2);
        let producer = thread::spawn(move || {
            for i in 0..N {
                push_spinning(&mut tx, i);
                let _ = tx.publish();
            }
            tx
        });
        for i in 0..N {
            recv_spinning(&mut rx, i);
            let _ = rx.release();
        }
        assert!(rx.peek().unwrap().is_none(), "nothing beyond what was sent");
        let mut tx = producer.join().unwrap();
        // Every slot is back: the consumer released all of them.
        assert_eq!(tx.free_slots().unwrap(), 2);
    });
}

/// FIFO with batching on both sides: the producer commits two messages and
/// publishes them with one store; the consumer drains what it sees and
/// releases once per batch.
#[test]
fn fifo_batched() {
    const N: u32 = 4;
    check(None, || {
        let (mut tx, mut rx) = ring(2);
        let producer = thread::spawn(move || {
            let mut i = 0;
            while i < N {
                let mut wrote = false;
                while i < N {
                    match tx.reserve().unwrap() {
                        Some(slot) => {
                            slot.write(&message(i), 0).unwrap();
                            i += 1;
                            wrote = true;
                        }
                        None => break,
                    }
                }
                let _ = tx.publish();
                if !wrote {
                    thread::yield_now();
                }
            }
        });
        let mut i = 0;
        while i < N {
            let mut got = false;
            while let Some(msg) = rx.peek().unwrap() {
                check_incoming(msg, i);
                i += 1;
                got = true;
            }
            let _ = rx.release();
            if !got {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
    });
}

/// In-place replies: the consumer completes each message with a result code
/// and a reply written over it, then releases; the producer sees exactly
/// that result and reply, then reuses the slot (one slot, two calls).
#[test]
fn in_place_reply() {
    const N: u32 = 2;
    check(None, || {
        let (mut tx, mut rx) = ring(1);
        let consumer = thread::spawn(move || {
            for i in 0..N {
                loop {
                    if let Some(msg) = rx.peek().unwrap() {
                        assert_eq!(msg.seq(), i);
                        let mut buf = [0u8; MSZ as usize];
                        assert_eq!(msg.read(&mut buf), MSZ as usize);
                        assert_eq!(buf, message(i));
                        msg.complete(-7 - i as i32, &reply(i)[..4 + 4 * i as usize])
                            .unwrap();
                        break;
                    }
                    thread::yield_now();
                }
                let _ = rx.release();
            }
        });
        for i in 0..N {
            push_spinning(&mut tx, i);
            let _ = tx.publish();
            loop {
                if let Some(done) = tx.completion().unwrap() {
                    assert_eq!(done.seq(), i);
                    assert_eq!(done.rc(), -7 - i as i32);
                    assert_eq!(done.flags(), slot_flags::COMPLETED);
                    let want = &reply(i)[..4 + 4 * i as usize];
                    assert_eq!(done.reply_len(), want.len());
                    let mut buf = [0u8; MSZ as usize];
                    let n = done.read_reply(&mut buf);
                    assert_eq!(&buf[..n], want, "reply of message {i}");
                    break;
                }
                thread::yield_now();
            }
        }
        assert!(tx.completion().unwrap().is_none());
        consumer.join().unwrap();
    });
}

/// No lost wake-up on the consumer side: the consumer sleeps on a doorbell
/// whenever it finds the ring empty after `prepare_wait`; the producer rings
/// it only when `publish` says so. A missed wake-up is a loom deadlock.
#[test]
fn consumer_wakeup() {
    const N: u32 = 2;
    check(Some(5), || {
        let (mut tx, mut rx) = ring(2);
        let bell = Doorbell::new();
        let producer_bell = bell.clone();
        let producer = thread::spawn(move || {
            for i in 0..N {
                tx.push(&message(i), 0).unwrap();
                if tx.publish().is_needed() {
                    producer_bell.ring();
                }
            }
        });
        let mut i = 0;
        while i < N {
            match rx.peek().unwrap() {
                Some(msg) => {
                    check_incoming(msg, i);
                    i += 1;
                }
                None => {
                    if rx.prepare_wait() {
                        bell.wait();
                    }
                    rx.finish_wait();
                }
            }
        }
        let _ = rx.release();
        producer.join().unwrap();
    });
}

/// No lost wake-up on the producer side: with one slot, the producer finds
/// the ring full and sleeps on a doorbell after `Producer::prepare_wait`;
/// the consumer rings it only when `release` says so.
#[test]
fn producer_wakeup() {
    const N: u32 = 3;
    check(Some(5), || {
        let (mut tx, mut rx) = ring(1);
        let bell = Doorbell::new();
        let consumer_bell = bell.clone();
        let consumer = thread::spawn(move || {
            for i in 0..N {
                recv_spinning(&mut rx, i);
                if rx.release().is_needed() {
                    consumer_bell.ring();
                }
            }
        });
        for i in 0..N {
            loop {
                match tx.push(&message(i), 0) {
                    Ok(_) => break,
                    Err(RingError::Full) => {
                        if tx.prepare_wait() {
                            bell.wait();
                        }
                        tx.finish_wait();
                    }
                    Err(e) => panic!("push {i}: {e}"),
                }
            }
            let _ = tx.publish();
        }
        consumer.join().unwrap();
    });
}

/// Both sides sleep: each waits on its own doorbell when it cannot proceed,
/// and each rings the other's only when told to. One slot, two messages.
#[test]
fn both_sides_wakeup() {
    const N: u32 = 2;
    check(Some(5), || {
        let (mut tx, mut rx) = ring(1);
        let to_consumer = Doorbell::new();
        let to_producer = Doorbell::new();
        let (c_in, c_out) = (to_consumer.clone(), to_producer.clone());
        let consumer = thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match rx.peek().unwrap() {
                    Some(msg) => {
                        check_incoming(msg, i);
                        i += 1;
                        if rx.release().is_needed() {
                            c_out.ring();
                        }
                    }
                    None => {
                        if rx.prepare_wait() {
                            c_in.wait();
                        }
                        rx.finish_wait();
                    }
                }
            }
        });
        for i in 0..N {
            loop {
                match tx.push(&message(i), 0) {
                    Ok(_) => break,
                    Err(RingError::Full) => {
                        if tx.prepare_wait() {
                            to_producer.wait();
                        }
                        tx.finish_wait();
                    }
                    Err(e) => panic!("push {i}: {e}"),
                }
            }
            if tx.publish().is_needed() {
                to_consumer.ring();
            }
        }
        consumer.join().unwrap();
    });
}

/// A call: the producer sleeps until its message is released
/// (`prepare_wait_for_release`), then finds the completion with the reply.
#[test]
fn wait_for_release() {
    check(None, || {
        let (mut tx, mut rx) = ring(2);
        let bell = Doorbell::new();
        let consumer_bell = bell.clone();
        let consumer = thread::spawn(move || {
            loop {
                if let Some(msg) = rx.peek().unwrap() {
                    assert_eq!(msg.seq(), 0);
                    msg.complete(42, &reply(0)).unwrap();
                    break;
                }
                thread::yield_now();
            }
            if rx.release().is_needed() {
                consumer_bell.ring();
            }
        });
        let seq = tx.push(&message(0), 0).unwrap();
        let _ = tx.publish();
        loop {
            if let Some(done) = tx.completion().unwrap() {
                assert_eq!((done.seq(), done.rc()), (seq, 42));
                let mut buf = [0u8; MSZ as usize];
                assert_eq!(done.read_reply(&mut buf), MSZ as usize);
                assert_eq!(buf, reply(0));
                break;
            }
            if tx.prepare_wait_for_release(seq) {
                bell.wait();
            }
            tx.finish_wait();
        }
        consumer.join().unwrap();
    });
}

/// Deferred wake-up checks, consumer side: the producer publishes every
/// message with `publish_deferred` (no fence) and pays the fenced check once,
/// with `flush_wake`, after its last message. The consumer sleeps whenever it
/// finds the ring empty. Neither the last message nor an earlier one may be
/// left unannounced to a sleeping consumer.
#[test]
fn consumer_wakeup_deferred() {
    const N: u32 = 3;
    check(Some(3), || {
        let (mut tx, mut rx) = ring(2);
        let bell = Doorbell::new();
        let producer_bell = bell.clone();
        let producer = thread::spawn(move || {
            for i in 0..N {
                push_spinning_flushed(&mut tx, i, &producer_bell);
                if tx.publish_deferred().is_needed() {
                    producer_bell.ring();
                }
            }
            if tx.flush_wake().is_needed() {
                producer_bell.ring();
            }
            assert!(!tx.wake_owed());
        });
        let mut i = 0;
        while i < N {
            match rx.peek().unwrap() {
                Some(msg) => {
                    check_incoming(msg, i);
                    i += 1;
                    let _ = rx.release();
                }
                None => {
                    if rx.prepare_wait() {
                        bell.wait();
                    }
                    rx.finish_wait();
                }
            }
        }
        producer.join().unwrap();
    });
}

/// Pushes message `i`; while the ring is full, settles the owed wake-up
/// check (ringing `bell` if the consumer sleeps) and yields.
fn push_spinning_flushed(tx: &mut Producer, i: u32, bell: &Doorbell) {
    loop {
        match tx.push(&message(i), 0) {
            Ok(seq) => {
                assert_eq!(seq, i);
                return;
            }
            Err(RingError::Full) => {
                if tx.flush_wake().is_needed() {
                    bell.ring();
                }
                thread::yield_now();
            }
            Err(e) => panic!("push {i}: {e}"),
        }
    }
}

/// Deferred wake-up checks, producer side: one slot, so the producer sleeps
/// after every message until the consumer releases it; the consumer releases
/// each message with `release_deferred` and settles the check with
/// `flush_wake` before it idles.
#[test]
fn producer_wakeup_deferred() {
    const N: u32 = 3;
    check(Some(3), || {
        let (mut tx, mut rx) = ring(1);
        let bell = Doorbell::new();
        let consumer_bell = bell.clone();
        let consumer = thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match rx.peek().unwrap() {
                    Some(msg) => {
                        check_incoming(msg, i);
                        i += 1;
                        if rx.release_deferred().is_needed() {
                            consumer_bell.ring();
                        }
                    }
                    None => {
                        if rx.flush_wake().is_needed() {
                            consumer_bell.ring();
                        }
                        thread::yield_now();
                    }
                }
            }
            if rx.flush_wake().is_needed() {
                consumer_bell.ring();
            }
        });
        for i in 0..N {
            loop {
                match tx.push(&message(i), 0) {
                    Ok(_) => break,
                    Err(RingError::Full) => {
                        if tx.prepare_wait() {
                            bell.wait();
                        }
                        tx.finish_wait();
                    }
                    Err(e) => panic!("push {i}: {e}"),
                }
            }
            let _ = tx.publish();
        }
        consumer.join().unwrap();
    });
}

/// Both sides deferred and both sleeping: each publishes or releases
/// without a fence, and goes to sleep through `prepare_wait` *without*
/// settling its owed check first. `prepare_wait` must then settle it itself
/// and refuse to sleep while a doorbell is owed; the loop rings it after
/// `flush_wake`. One slot, two messages.
#[test]
fn both_sides_deferred() {
    const N: u32 = 2;
    check(Some(3), || {
        let (mut tx, mut rx) = ring(1);
        let to_consumer = Doorbell::new();
        let to_producer = Doorbell::new();
        let (c_in, c_out) = (to_consumer.clone(), to_producer.clone());
        let consumer = thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match rx.peek().unwrap() {
                    Some(msg) => {
                        check_incoming(msg, i);
                        i += 1;
                        if rx.release_deferred().is_needed() {
                            c_out.ring();
                        }
                    }
                    None => {
                        if rx.prepare_wait() {
                            c_in.wait();
                        }
                        rx.finish_wait();
                        if rx.flush_wake().is_needed() {
                            c_out.ring();
                        }
                    }
                }
            }
            if rx.flush_wake().is_needed() {
                c_out.ring();
            }
        });
        for i in 0..N {
            loop {
                match tx.push(&message(i), 0) {
                    Ok(_) => break,
                    Err(RingError::Full) => {
                        if tx.prepare_wait() {
                            to_producer.wait();
                        }
                        tx.finish_wait();
                        if tx.flush_wake().is_needed() {
                            to_consumer.ring();
                        }
                    }
                    Err(e) => panic!("push {i}: {e}"),
                }
            }
            if tx.publish_deferred().is_needed() {
                to_consumer.ring();
            }
        }
        if tx.flush_wake().is_needed() {
            to_consumer.ring();
        }
        consumer.join().unwrap();
    });
}
