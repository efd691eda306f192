//! The ISC ring against `rtrb` and crossbeam's `ArrayQueue`: 64-byte messages
//! (`[u8; 64]`), rings of 1024 slots.
//!
//! - `ring_single`: one thread pushes then pops, one message at a time
//!   (isc-ring also with a 64-message batch per publish / release).
//! - `ring_stream`: a producer thread streams `STREAM` messages to a
//!   consumer thread; throughput in messages per second. isc-ring is
//!   measured as its API intends (the producer writes up to `BATCH` free
//!   slots and publishes once; the consumer drains what is pending, up to
//!   `BATCH`, and releases once) and with a publish and a release per
//!   message; `rtrb` is measured with its per-element `push`/`pop` and with
//!   its slice calls (up to `BATCH` at a time).
//!
//! Every message carries its index, and every receiver checks it, so no
//! implementation can skip the copy.
//!
//! Cross-thread figures on a small shared VM drift by several times between
//! runs (where the two vCPUs land matters), and criterion measures one
//! contender after another. `ISC_RING_PAIRED=25 cargo bench -p isc-benches
//! --bench ring` instead runs all streaming contenders back to back in each
//! of 25 rounds and reports the median of the per-round ratios.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use isc_ring::{Consumer, Producer, RingConfig};
use std::hint::{black_box, spin_loop};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Message size, in bytes.
const MSG: usize = 64;
/// Slots of every ring.
const DEPTH: usize = 1024;
/// Messages per cross-thread run.
const STREAM: u64 = 1 << 20;
/// Most messages the batched isc-ring producer publishes at once.
const BATCH: u32 = 128;
/// Messages per single-thread iteration batch.
const LOCAL: u64 = 64;

type Msg = [u8; MSG];

fn message(i: u64) -> Msg {
    let mut m = [0x5a; MSG];
    m[..8].copy_from_slice(&i.to_ne_bytes());
    m
}

fn index(m: &[u8]) -> u64 {
    u64::from_ne_bytes(m[..8].try_into().unwrap())
}

/// Page-aligned memory holding one isc-ring.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

/// A ring of `DEPTH` slots of `MSG` bytes, and both views of it.
struct Ring {
    // Fields drop in order: the views go before the memory they point into.
    tx: Producer,
    rx: Consumer,
    _mem: Vec<Page>,
}

impl Ring {
    fn new() -> Self {
        let cfg = RingConfig::new(MSG as u32, DEPTH as u32).unwrap();
        let len = cfg.ring_bytes() as usize;
        let mut mem = vec![Page([0; 4096]); len / 4096];
        // SAFETY: `Page` is plain bytes; the vector is `len` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), len) };
        cfg.init(bytes).unwrap();
        let ptr = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `mem` is `len` bytes, page-aligned, owned by the `Ring`
        // alongside the views and never touched directly again; one
        // producer and one consumer.
        let (tx, rx) = unsafe { (Producer::new(ptr, len), Consumer::new(ptr, len)) };
        Self {
            tx: tx.unwrap(),
            rx: rx.unwrap(),
            _mem: mem,
        }
    }
}

// ---------------------------------------------------------------------------
// Single thread: push one, pop one.

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_single");
    g.throughput(Throughput::Elements(LOCAL))
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);

    g.bench_function("isc-ring", |b| {
        let mut r = Ring::new();
        let mut buf = [0u8; MSG];
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..LOCAL {
                r.tx.push(&message(i), 0).unwrap();
                let _ = r.tx.publish();
                let m = r.rx.peek().unwrap().unwrap();
                m.read(&mut buf);
                m.complete_rc(0);
                let _ = r.rx.release();
                assert_eq!(index(&buf), i);
                i += 1;
            }
            black_box(&buf);
        })
    });

    g.bench_function("isc-ring batch", |b| {
        let mut r = Ring::new();
        let mut buf = [0u8; MSG];
        let mut i = 0u64;
        b.iter(|| {
            for k in 0..LOCAL {
                r.tx.push(&message(i + k), 0).unwrap();
            }
            let _ = r.tx.publish();
            while let Some(m) = r.rx.peek().unwrap() {
                m.read(&mut buf);
                m.complete_rc(0);
                assert_eq!(index(&buf), i);
                i += 1;
            }
            let _ = r.rx.release();
            black_box(&buf);
        })
    });

    g.bench_function("rtrb", |b| {
        let (mut tx, mut rx) = rtrb::RingBuffer::<Msg>::new(DEPTH);
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..LOCAL {
                tx.push(message(i)).unwrap();
                let m = rx.pop().unwrap();
                assert_eq!(index(&m), i);
                black_box(&m);
                i += 1;
            }
        })
    });

    g.bench_function("ArrayQueue", |b| {
        let q = ArrayQueue::<Msg>::new(DEPTH);
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..LOCAL {
                q.push(message(i)).unwrap();
                let m = q.pop().unwrap();
                assert_eq!(index(&m), i);
                black_box(&m);
                i += 1;
            }
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// Two threads: a producer streams, a consumer drains.

/// Runs `produce` on a new thread and `consume` on this one, `iters` times;
/// returns the total time.
fn two_threads<S: Send>(
    iters: u64,
    mut setup: impl FnMut() -> (S, Box<dyn FnOnce() + Send>),
    consume: impl Fn(S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (state, produce) = setup();
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(produce);
            consume(state);
        });
        total += start.elapsed();
    }
    total
}

/// isc-ring producer: writes up to `batch` free slots, then publishes once.
fn isc_produce(mut tx: Producer, batch: u32) {
    let mut i = 0u64;
    while i < STREAM {
        let mut n = 0;
        while n < batch && i < STREAM {
            match tx.reserve().unwrap() {
                Some(mut slot) => {
                    slot.payload_mut()[..MSG].copy_from_slice(&message(i));
                    slot.commit(MSG, 0).unwrap();
                    i += 1;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            spin_loop();
        } else {
            let _ = tx.publish();
        }
    }
}

/// isc-ring consumer: drains what is pending, up to `BATCH` messages, then
/// releases them at once (or releases after every message when
/// `per_message`). Without the cap, a consumer that keeps finding new
/// messages never releases, and the producer stalls on a full ring.
fn isc_consume(mut rx: Consumer, per_message: bool) {
    let mut buf = [0u8; MSG];
    let mut i = 0u64;
    while i < STREAM {
        let mut n = 0;
        while n < BATCH {
            let Some(m) = rx.peek().unwrap() else { break };
            m.read(&mut buf);
            m.complete_rc(0);
            assert_eq!(index(&buf), i);
            i += 1;
            n += 1;
            if per_message {
                let _ = rx.release();
            }
        }
        if n == 0 {
            spin_loop();
        } else {
            let _ = rx.release();
        }
    }
    black_box(&buf);
}

/// One streaming run of isc-ring: producer batches of `batch`, consumer
/// releases per message if `per_message`.
fn run_isc(batch: u32, per_message: bool) -> Duration {
    two_threads(
        1,
        || {
            let r = Ring::new();
            let (tx, rx, mem) = (r.tx, r.rx, r._mem);
            let produce = Box::new(move || isc_produce(tx, batch));
            ((rx, mem), produce as Box<dyn FnOnce() + Send>)
        },
        |(rx, mem)| {
            isc_consume(rx, per_message);
            drop(mem);
        },
    )
}

/// One streaming run of `rtrb` with per-element `push` / `pop`.
fn run_rtrb() -> Duration {
    two_threads(
        1,
        || {
            let (mut tx, rx) = rtrb::RingBuffer::<Msg>::new(DEPTH);
            let produce = Box::new(move || {
                let mut i = 0u64;
                while i < STREAM {
                    match tx.push(message(i)) {
                        Ok(()) => i += 1,
                        Err(_) => spin_loop(),
                    }
                }
            });
            (rx, produce as Box<dyn FnOnce() + Send>)
        },
        |mut rx| {
            let mut i = 0u64;
            while i < STREAM {
                match rx.pop() {
                    Ok(m) => {
                        assert_eq!(index(&m), i);
                        black_box(&m);
                        i += 1;
                    }
                    Err(_) => spin_loop(),
                }
            }
        },
    )
}

/// One streaming run of `rtrb` with its slice calls, up to `BATCH` at a time.
fn run_rtrb_slices() -> Duration {
    two_threads(
        1,
        || {
            let (mut tx, rx) = rtrb::RingBuffer::<Msg>::new(DEPTH);
            let produce = Box::new(move || {
                let mut out = [[0u8; MSG]; BATCH as usize];
                let mut i = 0u64;
                while i < STREAM {
                    let n = (STREAM - i).min(BATCH as u64) as usize;
                    for (k, m) in out[..n].iter_mut().enumerate() {
                        *m = message(i + k as u64);
                    }
                    let (done, _) = tx.push_partial_slice(&out[..n]);
                    if done.is_empty() {
                        spin_loop();
                    }
                    i += done.len() as u64;
                }
            });
            (rx, produce as Box<dyn FnOnce() + Send>)
        },
        |mut rx| {
            let mut buf = [[0u8; MSG]; BATCH as usize];
            let mut i = 0u64;
            while i < STREAM {
                let (got, _) = rx.pop_partial_slice(&mut buf);
                if got.is_empty() {
                    spin_loop();
                }
                for m in got.iter() {
                    assert_eq!(index(m), i);
                    i += 1;
                }
                black_box(&got);
            }
        },
    )
}

/// One streaming run of crossbeam's `ArrayQueue`.
fn run_array_queue() -> Duration {
    two_threads(
        1,
        || {
            let q = std::sync::Arc::new(ArrayQueue::<Msg>::new(DEPTH));
            let tq = q.clone();
            let produce = Box::new(move || {
                let mut i = 0u64;
                while i < STREAM {
                    match tq.push(message(i)) {
                        Ok(()) => i += 1,
                        Err(_) => spin_loop(),
                    }
                }
            });
            (q, produce as Box<dyn FnOnce() + Send>)
        },
        |q| {
            let mut i = 0u64;
            while i < STREAM {
                match q.pop() {
                    Some(m) => {
                        assert_eq!(index(&m), i);
                        black_box(&m);
                        i += 1;
                    }
                    None => spin_loop(),
                }
            }
        },
    )
}

/// A streaming contender: name, variant, one timed run.
type Streamer = (&'static str, &'static str, fn() -> Duration);

/// The streaming contenders.
const STREAMERS: [Streamer; 5] = [
    ("isc-ring", "batched", || run_isc(BATCH, false)),
    ("isc-ring", "per-message", || run_isc(1, true)),
    ("rtrb", "per-message", run_rtrb),
    ("rtrb", "slices", run_rtrb_slices),
    ("ArrayQueue", "per-message", run_array_queue),
];

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_stream");
    g.throughput(Throughput::Elements(STREAM))
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    for (name, how, run) in STREAMERS {
        g.bench_function(BenchmarkId::new(name, how), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
        });
    }
    g.finish();
}

/// Paired comparison for noisy machines: `rounds` rounds, each running every
/// contender once back to back, then the median throughput of each and the
/// median of the per-round ratios (both sides of a ratio ran under the same
/// machine conditions).
fn paired(rounds: usize) {
    let mut mps: Vec<Vec<f64>> = vec![Vec::new(); STREAMERS.len()];
    for _ in 0..rounds {
        for (k, (_, _, run)) in STREAMERS.iter().enumerate() {
            mps[k].push(STREAM as f64 / run().as_secs_f64() / 1e6);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (k, (name, how, _)) in STREAMERS.iter().enumerate() {
        let v = &mps[k];
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        println!(
            "{:<24} median {:7.2} M msg/s (min {lo:.2}, max {hi:.2})",
            format!("{name} {how}"),
            median(v.clone())
        );
    }
    for ours in 0..2 {
        for theirs in 2..STREAMERS.len() {
            let r: Vec<f64> = mps[ours]
                .iter()
                .zip(&mps[theirs])
                .map(|(a, b)| a / b)
                .collect();
            println!(
                "{} {} / {} {}: median ratio {:.2}",
                STREAMERS[ours].0,
                STREAMERS[ours].1,
                STREAMERS[theirs].0,
                STREAMERS[theirs].1,
                median(r)
            );
        }
    }
}

criterion_group!(benches, single, stream);

fn main() {
    // `ISC_RING_PAIRED=<rounds>` prints a paired comparison instead.
    if let Some(rounds) = std::env::var("ISC_RING_PAIRED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        paired(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
