//! Calls through the facade on the simulated transport, in one run:
//! many threads sharing one channel against one thread, and 32 calls in
//! flight (`call_batch`, async futures) against sequential calls.
//!
//! The driver is the sample register driver hosted in this process;
//! requests are 12-byte register writes. Each configuration makes the same
//! number of calls; rounds are interleaved so drift hits all alike, and
//! the medians and their ratios are printed. Not a criterion benchmark:
//! the ratios are the result. `ISC_FACADE_CALLS` sets the calls per round.
//!
//! `cargo bench -p isc-benches --bench facade`

use isc::{Channel, ChannelHandle, Transport, Uid};
use std::sync::Arc;
use std::time::Instant;

const UID: Uid = Uid::fourcc(*b"sam0");
const DEPTH: usize = 32;
const ROUNDS: usize = 5;
const THREADS: usize = 4;

fn request(i: usize) -> [u8; 12] {
    let mut msg = [0u8; 12];
    msg[0..4].copy_from_slice(&2u32.to_ne_bytes());
    msg[4..8].copy_from_slice(&((i % 256) as u32).to_ne_bytes());
    msg[8..12].copy_from_slice(&(i as u32).to_ne_bytes());
    msg
}

fn timed(calls: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    calls as f64 / t.elapsed().as_secs_f64()
}

fn sequential(ch: &ChannelHandle, calls: usize) -> f64 {
    let mut reply = [0u8; 12];
    timed(calls, || {
        for i in 0..calls {
            let r = ch.call(&request(i), &mut reply).expect("call");
            assert_eq!(r.rc, 0);
        }
    })
}

fn threads(ch: &ChannelHandle, calls: usize) -> f64 {
    timed(calls, || {
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let h = ch.clone();
                s.spawn(move || {
                    let mut reply = [0u8; 12];
                    for i in 0..calls / THREADS {
                        let r = h.call(&request(t * calls + i), &mut reply).expect("call");
                        assert_eq!(r.rc, 0);
                    }
                });
            }
        })
    })
}

fn batched(ch: &ChannelHandle, calls: usize) -> f64 {
    let reqs: Vec<[u8; 12]> = (0..DEPTH).map(request).collect();
    let refs: Vec<&[u8]> = reqs.iter().map(|r| &r[..]).collect();
    timed(calls, || {
        for _ in 0..calls / DEPTH {
            for r in ch.call_batch(&refs).expect("batch") {
                assert_eq!(r.expect("call").0, 0);
            }
        }
    })
}

fn in_flight(ch: &ChannelHandle, rt: &tokio::runtime::Runtime, calls: usize) -> f64 {
    let reqs: Vec<[u8; 12]> = (0..DEPTH).map(request).collect();
    timed(calls, || {
        rt.block_on(async {
            for _ in 0..calls / DEPTH {
                let all = futures::future::join_all(reqs.iter().map(|r| ch.call_async(r))).await;
                for r in all {
                    assert_eq!(r.expect("call").0, 0);
                }
            }
        })
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes harness flags; `cargo test --benches` passes
    // `--test` or a filter: then run a short smoke round only.
    let smoke = std::env::args().any(|a| a == "--test");
    let calls: usize = std::env::var("ISC_FACADE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 256 } else { 40_000 });
    let host = Arc::new(isc::sim::SimHost::new().expect("host"));
    host.register(UID.raw(), Arc::new(isc::sim::sample::RegisterDriver::new()))
        .expect("register");
    let ch = Channel::builder(UID)
        .u2k(12, DEPTH as u32)
        .k2u(12, 8)
        .transport(Transport::sim(&host))
        .open()
        .expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let h = ch.handle();
    sequential(&h, calls / 10);
    let rounds = if smoke { 1 } else { ROUNDS };
    let mut cols: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        cols[0].push(sequential(&h, calls));
        cols[1].push(threads(&h, calls));
        cols[2].push(batched(&h, calls));
        cols[3].push(in_flight(&h, &rt, calls));
    }
    let [seq, thr, batch, futs] = cols.map(median);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("facade (sim, {cpus} CPUs): {calls} calls x {rounds} rounds, median calls/s");
    println!("facade: 1 thread, sequential call:   {seq:>12.0}");
    println!("facade: {THREADS} threads, one channel:     {thr:>12.0}");
    println!("facade: call_batch of {DEPTH}:           {batch:>12.0}");
    println!("facade: async, {DEPTH} in flight:        {futs:>12.0}");
    println!(
        "facade: ratio {THREADS} threads / 1 thread:   {:.2}x (target >= 1.0x)",
        thr / seq
    );
    println!(
        "facade: ratio call_batch / sequential: {:.2}x (target >= 1.5x)",
        batch / seq
    );
    println!(
        "facade: ratio async 32 / sequential:   {:.2}x (target >= 1.5x)",
        futs / seq
    );
}
