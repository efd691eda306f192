//! The simulated host's cost as channels grow, in one process.
//!
//! - **Idle**: 1000 bound channels (each with its user endpoint, a driver
//!   registered for its UID, nothing sent) are left alone for a few seconds;
//!   the process's CPU time over that window (`getrusage`, every thread) is
//!   reported as a share of one core. Target: under 1 %.
//! - **Busy**: `C` user threads, one channel each, stream 64-byte one-way
//!   messages (up to 64 per publish) to a driver that counts them, for a
//!   fixed window; the host's total throughput with 100 channels is compared
//!   with that of one channel, in paired rounds. Target: at least 0.8×.
//!
//! `cargo bench -p isc-benches --bench sim_host` (`ISC_SIM_ROUNDS` rounds of
//! the busy comparison, default 5).

use isc_ring::abi::{BindRequest, RingRequest};
use isc_transport_sim::sample::SinkDriver;
use isc_transport_sim::{default_service_threads, SimHost, UserEndpoint};
use nix::sys::resource::{getrusage, UsageWho};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MSG: usize = 64;
/// Slots per ring.
const DEPTH: u32 = 256;
/// Most messages a user publishes at once.
const BATCH: u32 = 64;
/// Channels of the idle measurement.
const IDLE_CHANNELS: u32 = 1000;
/// Channels of the busy measurement.
const BUSY_CHANNELS: u32 = 100;

fn uid(i: u32) -> u32 {
    0x6200_0000 | i
}

/// CPU time (user + system) of every thread of the process so far.
fn cpu_time() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// A host with `n` bound channels and their user endpoints.
fn channels(n: u32) -> (SimHost, Arc<SinkDriver>, Vec<UserEndpoint>) {
    let host = SimHost::new().expect("host");
    let driver = Arc::new(SinkDriver::new());
    let mut eps = Vec::new();
    for i in 0..n {
        host.register(uid(i), Arc::clone(&driver))
            .expect("register");
        let req = BindRequest::new(
            uid(i),
            RingRequest::new(MSG as u32, DEPTH),
            RingRequest::new(MSG as u32, 4),
        );
        eps.push(host.bind(&req).expect("bind"));
    }
    (host, driver, eps)
}

fn idle() {
    let (host, _driver, eps) = channels(IDLE_CHANNELS);
    // Let every channel be bound and its service go to sleep.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let share = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "idle: {IDLE_CHANNELS} channels, {} service threads: {:.3} % of one core \
         ({cpu:?} CPU in {wall:?}); target < 1 %: {}",
        default_service_threads(),
        share,
        if share < 1.0 { "met" } else { "missed" }
    );
    drop(eps);
    drop(host);
}

/// Total messages per second the host handles with `n` channels streaming,
/// and its service threads at the end of the window.
fn busy(n: u32, window: Duration) -> (f64, usize) {
    let (host, driver, eps) = channels(n);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = eps
        .into_iter()
        .map(|ep| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut tx, _rx) = ep.split();
                let msg = [0x5a; MSG];
                while !stop.load(Ordering::Relaxed) {
                    let mut sent = 0;
                    while sent < BATCH && tx.send(&msg).is_ok() {
                        sent += 1;
                    }
                    tx.publish().expect("publish");
                    if sent == 0 {
                        let _ = tx.wait_space(Some(Duration::from_millis(10)));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (got0, t0) = (driver.received(), Instant::now());
    std::thread::sleep(window);
    let (got, wall) = (driver.received() - got0, t0.elapsed());
    let service_threads = host.service_threads();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("user thread");
    }
    drop(host);
    (got as f64 / wall.as_secs_f64(), service_threads)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    idle();
    let rounds: usize = std::env::var("ISC_SIM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let window = Duration::from_secs(2);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (one, t1) = busy(1, window);
        let (many, tn) = busy(BUSY_CHANNELS, window);
        println!(
            "busy round {round}: 1 channel {:.2} M msg/s, {BUSY_CHANNELS} channels {:.2} M msg/s, \
             ratio {:.2} (service threads: {t1} / {tn})",
            one / 1e6,
            many / 1e6,
            many / one
        );
        ratios.push(many / one);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "busy: {BUSY_CHANNELS} channels / 1 channel total throughput, median of {rounds}: {median:.2} \
         (target >= 0.8: {})",
        if median >= 0.8 { "met" } else { "missed" }
    );
}
