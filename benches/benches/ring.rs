//! The ISC ring against `rtrb` and crossbeam's `ArrayQueue`: messages of
//! `N` bytes (`[u8; N]`), rings of 1024 slots.
//!
//! - `ring_single`: one thread pushes then pops, one 64-byte message at a
//!   time (isc-ring also with a 64-message batch per publish / release),
//!   and 64 messages at a time through isc-ring's chunks and rtrb's slices.
//! - `ring_stream`: a producer thread streams 64-byte messages to a consumer
//!   thread; throughput in messages per second. The contenders:
//!   - isc-ring **per-message**: every message is published on its own
//!     (`publish_deferred`, a Release store) and released on its own
//!     (`release_deferred`); each side pays the fenced wake-up check
//!     (`flush_wake`) once per burst, when it runs out of work;
//!   - isc-ring **per-message fenced**: `publish` / `release` (store, SeqCst
//!     fence, flag check) after every message;
//!   - isc-ring **batched**: the producer writes up to `BATCH` free slots in
//!     place and publishes once; the consumer drains up to `BATCH` and
//!     releases once;
//!   - isc-ring **chunked**: the same through `write_chunk` / `read_chunk`;
//!   - `rtrb` per-element `push` / `pop`, and its slice calls (up to `BATCH`
//!     at a time);
//!   - `ArrayQueue` `push` / `pop`.
//!
//! Every message carries its index, and every receiver checks it, so no
//! implementation can skip the copy. A side that finds the ring full (or
//! empty) waits the same way in every contender: crossbeam's `Backoff`,
//! spinning a little, then yielding the CPU, so that on a machine with
//! fewer free cores than threads a waiting side doesn't burn the time
//! slice its peer needs. isc-ring consumes one-way messages
//! (`Incoming::consume`): like the others, it writes nothing back.
//!
//! Cross-thread figures on a small shared VM drift by several times between
//! runs (where the two vCPUs land matters), and criterion measures one
//! contender after another. `ISC_RING_PAIRED=25 cargo bench -p isc-benches
//! --bench ring` instead runs all streaming contenders back to back in each
//! of 25 rounds and reports the median of the per-round ratios, for each
//! message size in `ISC_RING_SIZES` (default `8,64,1024`; any of 8, 64, 256,
//! 1024, 4096).
//!
//! `ISC_RING_LAYOUT=5 cargo bench -p isc-benches --bench ring --features
//! layout` compares slot layouts instead: for 8, 64, 256 and 4096-byte
//! messages, isc-ring streams per message and chunked through rings whose
//! slot strides are rounded up to 8 (the ABI's), 16 and 64 bytes, back to
//! back in each round, and reports the median per-round ratios to the ABI's.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use isc_ring::{Consumer, Incoming, Producer, RingConfig};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Slots of every ring.
const DEPTH: usize = 1024;
/// Most messages a batched or chunked isc-ring side handles at once, and
/// the slice length of `rtrb`'s slice calls.
const BATCH: u32 = 128;
/// Messages per single-thread iteration batch.
const LOCAL: u64 = 64;

/// Messages per cross-thread run of `n`-byte messages: 1 Mi, fewer for large
/// messages (at most 256 MiB of payload per run).
const fn stream_len(n: usize) -> u64 {
    let by_bytes = (1u64 << 28) / n as u64;
    if by_bytes < 1 << 20 {
        by_bytes
    } else {
        1 << 20
    }
}

fn message<const N: usize>(i: u64) -> [u8; N] {
    let mut m = [0x5a; N];
    m[..8].copy_from_slice(&i.to_ne_bytes());
    m
}

fn index(m: &[u8]) -> u64 {
    u64::from_ne_bytes(m[..8].try_into().unwrap())
}

/// Reads and consumes `m`, checking that it is message `*next` of the
/// stream.
#[inline]
fn take(m: Incoming<'_>, buf: &mut [u8], next: &mut u64) {
    m.read(buf);
    m.consume();
    assert_eq!(index(buf), *next);
    *next += 1;
}

/// Page-aligned memory holding one isc-ring.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

/// A ring of `DEPTH` slots of `msz` bytes, and both views of it.
struct Ring {
    // Fields drop in order: the views go before the memory they point into.
    tx: Producer,
    rx: Consumer,
    _mem: Vec<Page>,
}

impl Ring {
    fn new(msz: usize) -> Self {
        Self::with_config(RingConfig::new(msz as u32, DEPTH as u32).unwrap())
    }

    fn with_config(cfg: RingConfig) -> Self {
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
    const N: usize = 64;
    let mut g = c.benchmark_group("ring_single");
    g.throughput(Throughput::Elements(LOCAL))
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);

    g.bench_function("isc-ring", |b| {
        let mut r = Ring::new(N);
        let mut buf = [0u8; N];
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..LOCAL {
                r.tx.push(&message::<N>(i), 0).unwrap();
                let _ = r.tx.publish_deferred();
                let m = r.rx.peek().unwrap().unwrap();
                take(m, &mut buf, &mut i);
                let _ = r.rx.release_deferred();
            }
            let _ = (r.tx.flush_wake(), r.rx.flush_wake());
            black_box(&buf);
        })
    });

    g.bench_function("isc-ring batch", |b| {
        let mut r = Ring::new(N);
        let mut buf = [0u8; N];
        let mut i = 0u64;
        b.iter(|| {
            for k in 0..LOCAL {
                r.tx.push(&message::<N>(i + k), 0).unwrap();
            }
            let _ = r.tx.publish();
            while let Some(m) = r.rx.peek().unwrap() {
                take(m, &mut buf, &mut i);
            }
            let _ = r.rx.release();
            black_box(&buf);
        })
    });

    g.bench_function("isc-ring chunk", |b| {
        let mut r = Ring::new(N);
        let mut buf = [0u8; N];
        let mut i = 0u64;
        b.iter(|| {
            {
                let mut chunk = r.tx.write_chunk(LOCAL as u32).unwrap();
                let mut k = 0;
                while let Some(mut slot) = chunk.next_slot() {
                    slot.payload_mut()[..N].copy_from_slice(&message::<N>(i + k));
                    slot.commit(N, 0).unwrap();
                    k += 1;
                }
            }
            let _ = r.tx.publish();
            {
                let mut chunk = r.rx.read_chunk(LOCAL as u32).unwrap();
                while let Some(m) = chunk.next_message().unwrap() {
                    take(m, &mut buf, &mut i);
                }
            }
            let _ = r.rx.release();
            black_box(&buf);
        })
    });

    g.bench_function("rtrb slices", |b| {
        let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH);
        let mut out = vec![[0u8; N]; LOCAL as usize];
        let mut got = vec![[0u8; N]; LOCAL as usize];
        let mut i = 0u64;
        b.iter(|| {
            for (k, m) in out.iter_mut().enumerate() {
                *m = message(i + k as u64);
            }
            let (done, _) = tx.push_partial_slice(&out);
            assert_eq!(done.len(), LOCAL as usize);
            let (read, _) = rx.pop_partial_slice(&mut got);
            for m in read.iter() {
                assert_eq!(index(m), i);
                i += 1;
            }
            black_box(&read);
        })
    });

    g.bench_function("rtrb", |b| {
        let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH);
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
        let q = ArrayQueue::<[u8; N]>::new(DEPTH);
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

/// Runs `produce` on a new thread and `consume` on this one; returns the
/// time both took.
fn two_threads(produce: impl FnOnce() + Send, consume: impl FnOnce()) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(produce);
        consume();
    });
    start.elapsed()
}

/// How an isc-ring contender publishes and releases.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Publish / release every message without a fence, check once per burst.
    PerMessage,
    /// Publish / release every message with the fenced check.
    Fenced,
    /// Reserve in place / peek, up to `BATCH`, one fenced publish / release.
    Batched,
    /// `write_chunk` / `read_chunk` of up to `BATCH`, one fenced publish /
    /// release.
    Chunked,
}

fn isc_produce<const N: usize>(mut tx: Producer, mode: Mode) {
    let total = stream_len(N);
    let idle = Backoff::new();
    let mut i = 0u64;
    while i < total {
        let n0 = i;
        match mode {
            Mode::PerMessage | Mode::Fenced => {
                if tx.push(&message::<N>(i), 0).is_ok() {
                    i += 1;
                    let _ = if mode == Mode::Fenced {
                        tx.publish()
                    } else {
                        tx.publish_deferred()
                    };
                }
            }
            Mode::Batched => {
                while i < total && i - n0 < BATCH as u64 {
                    let Some(mut slot) = tx.reserve().unwrap() else {
                        break;
                    };
                    slot.payload_mut()[..N].copy_from_slice(&message::<N>(i));
                    slot.commit(N, 0).unwrap();
                    i += 1;
                }
                let _ = tx.publish();
            }
            Mode::Chunked => {
                let want = (total - i).min(BATCH as u64) as u32;
                {
                    let mut chunk = tx.write_chunk(want).unwrap();
                    while let Some(mut slot) = chunk.next_slot() {
                        slot.payload_mut()[..N].copy_from_slice(&message::<N>(i));
                        slot.commit(N, 0).unwrap();
                        i += 1;
                    }
                }
                let _ = tx.publish();
            }
        }
        if i == n0 {
            // Out of room: the end of a burst.
            let _ = tx.flush_wake();
            idle.snooze();
        } else {
            idle.reset();
        }
    }
    let _ = tx.flush_wake();
}

fn isc_consume<const N: usize>(mut rx: Consumer, mode: Mode) {
    let total = stream_len(N);
    let idle = Backoff::new();
    let mut buf = [0u8; N];
    let mut i = 0u64;
    while i < total {
        let n0 = i;
        match mode {
            Mode::PerMessage | Mode::Fenced => {
                if let Some(m) = rx.peek().unwrap() {
                    take(m, &mut buf, &mut i);
                    let _ = if mode == Mode::Fenced {
                        rx.release()
                    } else {
                        rx.release_deferred()
                    };
                }
            }
            Mode::Batched => {
                // Without the cap, a consumer that keeps finding new
                // messages never releases, and the producer stalls.
                while i - n0 < BATCH as u64 {
                    let Some(m) = rx.peek().unwrap() else { break };
                    take(m, &mut buf, &mut i);
                }
                let _ = rx.release();
            }
            Mode::Chunked => {
                {
                    let mut chunk = rx.read_chunk(BATCH).unwrap();
                    while let Some(m) = chunk.next_message().unwrap() {
                        take(m, &mut buf, &mut i);
                    }
                }
                let _ = rx.release();
            }
        }
        if i == n0 {
            let _ = rx.flush_wake();
            idle.snooze();
        } else {
            idle.reset();
        }
    }
    black_box(&buf);
}

/// One streaming run of isc-ring in `mode`.
fn run_isc<const N: usize>(mode: Mode) -> Duration {
    run_isc_on::<N>(Ring::new(N), mode)
}

/// One streaming run of isc-ring in `mode` over `ring`.
fn run_isc_on<const N: usize>(ring: Ring, mode: Mode) -> Duration {
    let Ring { tx, rx, _mem: mem } = ring;
    let t = two_threads(
        move || isc_produce::<N>(tx, mode),
        move || isc_consume::<N>(rx, mode),
    );
    drop(mem);
    t
}

/// One streaming run of `rtrb` with per-element `push` / `pop`.
fn run_rtrb<const N: usize>() -> Duration {
    let total = stream_len(N);
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH);
    two_threads(
        move || {
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                match tx.push(message(i)) {
                    Ok(()) => {
                        i += 1;
                        idle.reset();
                    }
                    Err(_) => idle.snooze(),
                }
            }
        },
        move || {
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                match rx.pop() {
                    Ok(m) => {
                        assert_eq!(index(&m), i);
                        black_box(&m);
                        i += 1;
                        idle.reset();
                    }
                    Err(_) => idle.snooze(),
                }
            }
        },
    )
}

/// One streaming run of `rtrb` with its slice calls, up to `BATCH` at a time.
fn run_rtrb_slices<const N: usize>() -> Duration {
    let total = stream_len(N);
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH);
    two_threads(
        move || {
            let mut out = vec![[0u8; N]; BATCH as usize];
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                let n = (total - i).min(BATCH as u64) as usize;
                for (k, m) in out[..n].iter_mut().enumerate() {
                    *m = message(i + k as u64);
                }
                let (done, _) = tx.push_partial_slice(&out[..n]);
                if done.is_empty() {
                    idle.snooze();
                } else {
                    idle.reset();
                }
                i += done.len() as u64;
            }
        },
        move || {
            let mut buf = vec![[0u8; N]; BATCH as usize];
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                let (got, _) = rx.pop_partial_slice(&mut buf);
                if got.is_empty() {
                    idle.snooze();
                } else {
                    idle.reset();
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
fn run_array_queue<const N: usize>() -> Duration {
    let total = stream_len(N);
    let q = ArrayQueue::<[u8; N]>::new(DEPTH);
    two_threads(
        || {
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                match q.push(message(i)) {
                    Ok(()) => {
                        i += 1;
                        idle.reset();
                    }
                    Err(_) => idle.snooze(),
                }
            }
        },
        || {
            let idle = Backoff::new();
            let mut i = 0u64;
            while i < total {
                match q.pop() {
                    Some(m) => {
                        assert_eq!(index(&m), i);
                        black_box(&m);
                        i += 1;
                        idle.reset();
                    }
                    None => idle.snooze(),
                }
            }
        },
    )
}

/// A streaming contender: name, one timed run.
type Streamer = (&'static str, fn() -> Duration);

/// Indices into [`streamers`], for the ratios.
const ISC_PER_MESSAGE: usize = 0;
const ISC_FENCED: usize = 1;
const ISC_BATCHED: usize = 2;
const ISC_CHUNKED: usize = 3;
const RTRB: usize = 4;
const RTRB_SLICES: usize = 5;
const ARRAY_QUEUE: usize = 6;

/// The streaming contenders for `N`-byte messages.
fn streamers<const N: usize>() -> [Streamer; 7] {
    [
        ("isc-ring per-message", || run_isc::<N>(Mode::PerMessage)),
        ("isc-ring per-message fenced", || run_isc::<N>(Mode::Fenced)),
        ("isc-ring batched", || run_isc::<N>(Mode::Batched)),
        ("isc-ring chunked", || run_isc::<N>(Mode::Chunked)),
        ("rtrb per-message", run_rtrb::<N>),
        ("rtrb slices", run_rtrb_slices::<N>),
        ("ArrayQueue per-message", run_array_queue::<N>),
    ]
}

fn stream(c: &mut Criterion) {
    const N: usize = 64;
    let mut g = c.benchmark_group("ring_stream");
    g.throughput(Throughput::Elements(stream_len(N)))
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    for (name, run) in streamers::<N>() {
        g.bench_function(BenchmarkId::new(name, format!("{N} B")), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
        });
    }
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Paired comparison for noisy machines: `rounds` rounds, each running every
/// contender once back to back, then the median throughput of each and the
/// median of the per-round ratios (both sides of a ratio ran under the same
/// machine conditions). Returns the ratio row of the summary table.
fn paired<const N: usize>(rounds: usize) -> String {
    let contenders = streamers::<N>();
    let mut mps: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for (k, (_, run)) in contenders.iter().enumerate() {
            mps[k].push(stream_len(N) as f64 / run().as_secs_f64() / 1e6);
        }
    }
    println!("{N}-byte messages, {rounds} rounds:");
    for (k, (name, _)) in contenders.iter().enumerate() {
        let v = &mps[k];
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        println!(
            "  {name:<28} median {:7.2} M msg/s (min {lo:.2}, max {hi:.2})",
            median(v.clone())
        );
    }
    let ratio = |ours: usize, theirs: usize| {
        median(
            mps[ours]
                .iter()
                .zip(&mps[theirs])
                .map(|(a, b)| a / b)
                .collect(),
        )
    };
    let pairs = [
        (ISC_PER_MESSAGE, RTRB),
        (ISC_PER_MESSAGE, ARRAY_QUEUE),
        (ISC_FENCED, RTRB),
        (ISC_BATCHED, RTRB_SLICES),
        (ISC_CHUNKED, RTRB_SLICES),
        (ISC_CHUNKED, RTRB),
    ];
    let mut row = format!("| {N} B |");
    for (ours, theirs) in pairs {
        let r = ratio(ours, theirs);
        println!(
            "  {} / {}: median ratio {r:.2}",
            contenders[ours].0, contenders[theirs].0
        );
        row += &format!(" {r:.2} |");
    }
    row
}

/// The slot layouts compared by `ISC_RING_LAYOUT`: stride alignments.
#[cfg(feature = "layout")]
const LAYOUT_ALIGNS: [u32; 3] = [8, 16, 64];

/// Slot layout comparison for `N`-byte messages: `rounds` rounds, each
/// streaming per message then chunked through rings whose slot strides are
/// a multiple of each of [`LAYOUT_ALIGNS`], back to back. Prints the medians
/// and returns the table row: strides, then for each mode the median of the
/// per-round ratios of every other alignment to the ABI's.
#[cfg(feature = "layout")]
fn layout<const N: usize>(rounds: usize) -> String {
    let modes = [
        ("per-message", Mode::PerMessage),
        ("chunked", Mode::Chunked),
    ];
    let cfg = |align| RingConfig::with_slot_align(N as u32, DEPTH as u32, align).unwrap();
    // mps[mode][align] = throughput of each round.
    let mut mps = vec![vec![Vec::new(); LAYOUT_ALIGNS.len()]; modes.len()];
    for _ in 0..rounds {
        for (m, &(_, mode)) in modes.iter().enumerate() {
            for (a, &align) in LAYOUT_ALIGNS.iter().enumerate() {
                let t = run_isc_on::<N>(Ring::with_config(cfg(align)), mode);
                mps[m][a].push(stream_len(N) as f64 / t.as_secs_f64() / 1e6);
            }
        }
    }
    let abi = isc_ring::abi::SLOT_ALIGN;
    let base = LAYOUT_ALIGNS.iter().position(|&a| a == abi).unwrap();
    println!("{N}-byte messages, {rounds} rounds:");
    let mut row = format!("| {N} B |");
    for &align in &LAYOUT_ALIGNS {
        row += &format!(" {} |", cfg(align).slot_stride());
    }
    for (m, (name, _)) in modes.iter().enumerate() {
        for (a, &align) in LAYOUT_ALIGNS.iter().enumerate() {
            let ratio = median(
                mps[m][a]
                    .iter()
                    .zip(&mps[m][base])
                    .map(|(x, y)| x / y)
                    .collect(),
            );
            println!(
                "  {name:<12} stride align {align:>2} ({:>4} B): median {:7.2} M msg/s, \
                 ratio to align {abi} {ratio:.2}",
                cfg(align).slot_stride(),
                median(mps[m][a].clone())
            );
            if a != base {
                row += &format!(" {ratio:.2} |");
            }
        }
    }
    row
}

#[cfg(feature = "layout")]
fn layout_table(rounds: usize) {
    let mut rows = Vec::new();
    for size in [8, 64, 256, 4096] {
        rows.push(match size {
            8 => layout::<8>(rounds),
            64 => layout::<64>(rounds),
            256 => layout::<256>(rounds),
            _ => layout::<4096>(rounds),
        });
    }
    let abi = isc_ring::abi::SLOT_ALIGN;
    let others: Vec<u32> = LAYOUT_ALIGNS.into_iter().filter(|&a| a != abi).collect();
    let mut head = String::from("| message |");
    for a in LAYOUT_ALIGNS {
        head += &format!(" stride (align {a}) |");
    }
    for mode in ["per-message", "chunked"] {
        for a in &others {
            head += &format!(" {mode} {a} / {abi} |");
        }
    }
    println!("\n{head}");
    println!(
        "|---{}",
        "|---".repeat(LAYOUT_ALIGNS.len() + 2 * others.len()) + "|"
    );
    for row in rows {
        println!("{row}");
    }
}

criterion_group!(benches, single, stream);

fn main() {
    // `ISC_RING_LAYOUT=<rounds>` compares slot layouts instead (built with
    // `--features layout`).
    if let Some(rounds) = std::env::var("ISC_RING_LAYOUT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        #[cfg(feature = "layout")]
        layout_table(rounds);
        #[cfg(not(feature = "layout"))]
        panic!("ISC_RING_LAYOUT={rounds}: build with `--features layout`");
        #[cfg(feature = "layout")]
        return;
    }
    // `ISC_RING_PAIRED=<rounds>` prints a paired comparison instead.
    if let Some(rounds) = std::env::var("ISC_RING_PAIRED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let sizes = std::env::var("ISC_RING_SIZES").unwrap_or_else(|_| "8,64,1024".into());
        let mut rows = Vec::new();
        for size in sizes.split(',').map(str::trim) {
            rows.push(match size {
                "8" => paired::<8>(rounds),
                "64" => paired::<64>(rounds),
                "256" => paired::<256>(rounds),
                "1024" => paired::<1024>(rounds),
                "4096" => paired::<4096>(rounds),
                other => panic!("ISC_RING_SIZES: no contender set for {other}-byte messages"),
            });
        }
        println!(
            "\n| message | per-message / rtrb | per-message / ArrayQueue \
             | fenced per-message / rtrb | batched / rtrb slices \
             | chunked / rtrb slices | chunked / rtrb per-message |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
