//! The pathways benchmark runner: the same echo call and the same
//! notification over ioctl, a char device, procfs, sysfs, debugfs, generic
//! netlink and ISC, measured in one run, the pathways interleaved in rounds
//! so that drift hits them alike.
//!
//! Runs inside the VM of `cargo xtask vm-bench`, as root, with `isc.ko` and
//! `isc_pathways.ko` loaded. It first checks every pathway (printing one
//! `ok ...` or `FAIL ...` line per check), then measures, and prints each
//! result as one line `@@ISC-PW <json>` for the host to turn into
//! `docs/pathways.md` and its chart.
//!
//! Usage: `pathways [--quick | --check] [--rounds N]`
//! - `--check`: the checks and a short run of each notification pathway only;
//! - `--quick`: few samples, one round (for development);
//! - default: the full run (a few minutes under TCG).

mod calls;
mod netlink;
mod notify;

use isc_benches::pathways::{self as pw, EmitArg, Event};
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Any error of the runner, with a message saying what failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The runner's results.
pub type Result<T> = std::result::Result<T, Error>;

/// An error with `msg`.
pub fn err(msg: impl Into<String>) -> Error {
    msg.into().into()
}

/// Set by SIGALRM: a blocking receive ran past its time limit.
static TIMED_OUT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: nix::libc::c_int) {
    TIMED_OUT.store(true, Ordering::Relaxed);
}

/// True once the current notification run's alarm has fired.
pub fn timed_out() -> bool {
    TIMED_OUT.load(Ordering::Relaxed)
}

/// Arms (or with 0 cancels) the alarm that interrupts blocking receives.
fn alarm(secs: u32) {
    TIMED_OUT.store(false, Ordering::Relaxed);
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe { nix::libc::alarm(secs) };
}

fn install_alarm_handler() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // No SA_RESTART: a blocking read or recv returns EINTR.
    let act = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe { sigaction(Signal::SIGALRM, &act) }.map_err(|e| err(format!("sigaction: {e}")))?;
    Ok(())
}

/// CLOCK_MONOTONIC in ns: the clock the module stamps events with.
fn mono_ns() -> u64 {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC exists.
    unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to `cpu`, so that a receiver and the thread
/// raising events always run on different CPUs (a wake-up is then always
/// a cross-CPU one, as for an interrupt on another core) and runs don't
/// depend on where the guest scheduler put them. Ignored if the CPU does
/// not exist.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: nix::libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET bounds-checks `cpu` against the set's size; `set`
    // is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    unsafe {
        nix::libc::CPU_SET(cpu, &mut set);
        nix::libc::sched_setaffinity(0, size_of::<nix::libc::cpu_set_t>(), &set);
    }
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
struct Plan {
    name: &'static str,
    rounds: usize,
    /// Individually timed calls per pathway, size and round.
    lat_calls: usize,
    /// Calls timed for throughput per pathway and round at 16 and 256 B (a
    /// quarter of it at 4 KiB), in windows of a twentieth each.
    thr_calls: usize,
    /// Events per latency run, and their spacing.
    evt_lat: u32,
    gap_us: u32,
    /// Events per throughput run.
    evt_thr: u32,
    measure: bool,
}

const SIZES: [usize; 3] = [16, 256, 4096];

/// Throughput windows per pathway, size and round.
const WINDOWS: usize = 20;

/// Blocks of burst runs per notification pathway and round.
const BURST_BLOCKS: usize = 5;

/// Events per window of a notification throughput run.
const EVENT_WINDOW: usize = 500;

/// A small deterministic generator for request bytes (xorshift64).
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

fn emit_line(v: &Value) {
    println!("@@ISC-PW {v}");
}

/// Checks every echo pathway at every size; returns the pathways that
/// work, and counts failures.
fn check_calls(failed: &mut u32) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &(key, _, max, _) in calls::PATHWAYS {
        for size in SIZES {
            let mut req = vec![0; size];
            rng.fill(&mut req);
            let mut reply = vec![0; size];
            let result = calls::open(key, size.min(max)).and_then(|mut p| {
                if size > max {
                    // Too large for this pathway: it must be refused.
                    return match p.op(&req, &mut reply) {
                        Err(e) if e.to_string().contains("Message too long") => Ok(()),
                        Err(e) => Err(err(format!("refused with the wrong error: {e}"))),
                        Ok(()) => Err(err("accepted a message over its limit")),
                    };
                }
                p.op(&req, &mut reply)?;
                if reply != pw::expected_reply(&req) {
                    return Err(err("reply is not the complemented request"));
                }
                Ok(())
            });
            let what = if size > max { "refuses" } else { "echoes" };
            match result {
                Ok(()) => println!("ok call {key} {what} {size} B"),
                Err(e) => {
                    *failed += 1;
                    println!("FAIL call {key} {what} {size} B: {e}");
                }
            }
        }
    }
}

/// Percentiles of a set of samples.
fn lat_json(mut samples: Vec<u64>) -> Value {
    samples.sort_unstable();
    json!({
        "p50": pw::percentile(&samples, 50.0),
        "p99": pw::percentile(&samples, 99.0),
        "samples": samples.len(),
    })
}

#[derive(Default)]
struct CallCell {
    lat: Vec<u64>,
    rates: Vec<f64>,
}

/// Measures every echo pathway at one size, in round `round`: all pathways
/// are open at once and take turns, window by window (in an order rotated
/// each window), each doing its share of individually timed calls and then
/// one timed window of back-to-back calls. So the k-th window of every
/// pathway ran within a few milliseconds of the others' k-th window, and
/// ratios can be taken window by window.
fn measure_size(size: usize, round: usize, plan: &Plan, cells: &mut [CallCell]) -> Result<()> {
    let mut open = calls::open_all(size)?;
    let mut req = vec![0u8; size];
    Rng(size as u64 | 1).fill(&mut req);
    let mut reply = vec![0u8; size];
    for (i, p) in open.iter_mut() {
        for _ in 0..(50 / p.batch()).max(2) {
            p.op(&req, &mut reply)
                .map_err(|e| err(format!("{}: {e}", calls::PATHWAYS[*i].0)))?;
        }
    }
    let calls = if size > 256 {
        plan.thr_calls / 4
    } else {
        plan.thr_calls
    };
    let order: Vec<usize> = (0..open.len()).collect();
    for w in 0..WINDOWS {
        for k in rotated(&order, round * WINDOWS + w) {
            let (i, p) = &mut open[k];
            let cell = &mut cells[*i];
            let batch = p.batch();
            let fail = |e: Error| err(format!("{} at {size} B: {e}", calls::PATHWAYS[*i].0));
            let lat_ops = (plan.lat_calls / WINDOWS / batch).max(3);
            for _ in 0..lat_ops {
                let t = Instant::now();
                p.op(&req, &mut reply).map_err(fail)?;
                cell.lat.push(t.elapsed().as_nanos() as u64);
            }
            let win_ops = (calls / WINDOWS).div_ceil(batch).max(1);
            let t = Instant::now();
            for _ in 0..win_ops {
                p.op(&req, &mut reply).map_err(fail)?;
            }
            cell.rates
                .push((win_ops * batch) as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// The result of one notification run.
struct NotifyRun {
    lat: Vec<u64>,
    /// Events per second over each window of [`EVENT_WINDOW`] events
    /// (receive time of its last event minus that of the window before).
    rates: Vec<f64>,
    retries: u64,
    /// Receives (wake-ups or reads) it took.
    receives: u64,
    /// How long the producer took to raise them all, ns.
    emit_ns: u64,
}

fn open_echo_dev() -> Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(pw::DEV_ECHO)
        .map_err(|e| err(format!("open {}: {e}", pw::DEV_ECHO)))
}

/// `PW_IOC_EMIT`: raises `count` events on `path`, `gap_us` apart, in this
/// thread's context; returns once they are all queued.
fn emit(dev: &std::fs::File, path: u32, count: u32, gap_us: u32) -> Result<EmitArg> {
    nix::ioctl_readwrite!(pw_emit, pw::IOC_MAGIC, pw::IOC_NR_EMIT, EmitArg);
    let mut arg = EmitArg {
        pathway: path,
        count,
        gap_us,
        ..EmitArg::default()
    };
    // SAFETY: `arg` is a valid EmitArg for the module to read and write.
    unsafe { pw_emit(dev.as_raw_fd(), &mut arg) }
        .map_err(|e| err(format!("PW_IOC_EMIT: {e} after {} events", arg.emitted)))?;
    Ok(arg)
}

/// The result of burst runs.
#[derive(Default)]
struct BurstRun {
    /// Events per second of each block of cycles (the median of its
    /// cycles: raise a burst, receive it), aligned across pathways.
    rates: Vec<f64>,
    /// Time spent raising and receiving, ns, and events.
    produce_ns: u64,
    consume_ns: u64,
    events: u64,
}

/// Raises `burst` events from this thread (they wait in the pathway's
/// queue), then receives them, `cycles` times: the cost of the pathway per
/// event without a wake-up, both sides on one CPU.
fn notify_burst(p: &notify::Pathway, cycles: u32, out: &mut BurstRun) -> Result<()> {
    let mut rx = notify::open(p.key)?;
    let dev = open_echo_dev()?;
    let mut got: Vec<Event> = Vec::with_capacity(pw::EVENT_QUEUE as usize);
    alarm(20 + cycles / 1000);
    let mut rates = Vec::with_capacity(cycles as usize);
    let result = (|| {
        for _ in 0..cycles {
            let t0 = Instant::now();
            emit(&dev, p.path, p.burst, 0)?;
            let t1 = Instant::now();
            let mut next = 0u64;
            while next < p.burst as u64 {
                got.clear();
                rx.recv(&mut got)?;
                for ev in &got {
                    if ev.seq != next {
                        return Err(err(format!("event {} where {next} was due", ev.seq)));
                    }
                    next += 1;
                }
            }
            let t2 = Instant::now();
            rates.push(p.burst as f64 / (t2 - t0).as_secs_f64());
            out.produce_ns += (t1 - t0).as_nanos() as u64;
            out.consume_ns += (t2 - t1).as_nanos() as u64;
            out.events += p.burst as u64;
        }
        Ok(())
    })();
    alarm(0);
    out.rates.extend(pw::median(&rates));
    result
}

/// Raises `count` events on `key`'s pathway, `gap_us` apart, from another
/// thread, and receives them here: each must arrive once, in order.
fn notify_run(key: &str, path: u32, count: u32, gap_us: u32) -> Result<NotifyRun> {
    let mut rx = notify::open(key)?;
    let limit = 20 + count as u64 * (gap_us as u64 + 1000) / 1_000_000;
    alarm(limit.min(600) as u32);
    let emitter = std::thread::spawn(move || -> Result<(EmitArg, u64)> {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGALRM);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| err(format!("sigmask: {e}")))?;
        pin_to(1);
        let t = Instant::now();
        let arg = emit(&open_echo_dev()?, path, count, gap_us)?;
        Ok((arg, t.elapsed().as_nanos() as u64))
    });
    let mut got: Vec<Event> = Vec::with_capacity(pw::EVENT_QUEUE as usize);
    let mut lat = Vec::with_capacity(count as usize);
    let mut arrived = Vec::with_capacity(count as usize);
    let mut next = 0u64;
    let mut receives = 0;
    let mut failure = None;
    while next < count as u64 {
        got.clear();
        receives += 1;
        if let Err(e) = rx.recv(&mut got) {
            failure = Some(e);
            break;
        }
        let now = mono_ns();
        for ev in &got {
            if ev.seq != next {
                failure = Some(err(format!("event {} where {next} was due", ev.seq)));
                break;
            }
            lat.push(now.saturating_sub(ev.t_ns));
            arrived.push(now);
            next += 1;
        }
        if failure.is_some() {
            break;
        }
    }
    alarm(0);
    // The emitter gives up on its own when nobody receives (2 s per event).
    drop(rx);
    let emitted = emitter
        .join()
        .map_err(|_| err("the emitter thread panicked"))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (emitted, emit_ns) = emitted?;
    if emitted.emitted != count as u64 {
        return Err(err(format!(
            "{} of {count} events emitted",
            emitted.emitted
        )));
    }
    let rates = arrived
        .iter()
        .step_by(EVENT_WINDOW)
        .zip(arrived.iter().skip(EVENT_WINDOW).step_by(EVENT_WINDOW))
        .map(|(a, b)| EVENT_WINDOW as f64 / (b.saturating_sub(*a).max(1) as f64 / 1e9))
        .collect();
    Ok(NotifyRun {
        lat,
        rates,
        retries: emitted.retries,
        receives,
        emit_ns,
    })
}

fn check_notify(failed: &mut u32) {
    for p in notify::PATHWAYS {
        let (key, path) = (p.key, p.path);
        let mut b = BurstRun::default();
        match notify_burst(p, 3, &mut b) {
            Ok(()) => println!("ok notify {key}: 3 bursts of {} events, in order", p.burst),
            Err(e) => {
                *failed += 1;
                println!("FAIL notify {key}: bursts of {}: {e}", p.burst);
            }
        }
        for (count, gap) in [(300, 0), (20, 200)] {
            match notify_run(key, path, count, gap) {
                Ok(r) => println!(
                    "ok notify {key}: {count} events {gap} us apart, in order ({} found the queue full)",
                    r.retries
                ),
                Err(e) => {
                    *failed += 1;
                    println!("FAIL notify {key}: {count} events {gap} us apart: {e}");
                }
            }
        }
    }
}

/// The order of pathways in round `r`: rotated, so none is always first.
fn rotated<T: Copy>(items: &[T], r: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let k = r % v.len();
        v.rotate_left(k);
    }
    v
}

fn machine(plan: &Plan) -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    json!({
        "kind": "machine",
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu": model,
        "cpus": cpus,
        "clocksource": read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "cmdline": read("/proc/cmdline"),
        "plan": plan.name,
        "rounds": plan.rounds,
        "lat_calls": plan.lat_calls,
        "thr_calls": plan.thr_calls,
        "evt_lat": plan.evt_lat,
        "evt_gap_us": plan.gap_us,
        "evt_thr": plan.evt_thr,
        "windows": WINDOWS,
        "event_window": EVENT_WINDOW,
        "burst_blocks": BURST_BLOCKS,
        "batch": calls::BATCH,
    })
}

fn measure(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let n_calls = calls::PATHWAYS.len() * SIZES.len();
    let mut cells: Vec<CallCell> = (0..n_calls).map(|_| CallCell::default()).collect();
    let mut nlat: Vec<Vec<u64>> = vec![Vec::new(); notify::PATHWAYS.len()];
    let mut nrate: Vec<Vec<f64>> = vec![Vec::new(); notify::PATHWAYS.len()];
    // The median window of each streaming run: one per round, aligned.
    let mut nrun: Vec<Vec<f64>> = vec![Vec::new(); notify::PATHWAYS.len()];
    let mut nretries = vec![0u64; notify::PATHWAYS.len()];
    // Events and receives of the throughput runs, and the producer's time.
    let mut nsums = vec![(0u64, 0u64, 0u64); notify::PATHWAYS.len()];
    let mut bursts: Vec<BurstRun> = (0..notify::PATHWAYS.len())
        .map(|_| BurstRun::default())
        .collect();
    let nidx: Vec<usize> = (0..notify::PATHWAYS.len()).collect();
    for r in 0..plan.rounds {
        for (si, size) in SIZES.iter().enumerate() {
            let mut row: Vec<CallCell> = (0..calls::PATHWAYS.len())
                .map(|i| std::mem::take(&mut cells[i * SIZES.len() + si]))
                .collect();
            let result = measure_size(*size, r, plan, &mut row);
            for (i, c) in row.into_iter().enumerate() {
                cells[i * SIZES.len() + si] = c;
            }
            result?;
        }
        for i in rotated(&nidx, r) {
            let p = &notify::PATHWAYS[i];
            let key = p.key;
            let l = notify_run(key, p.path, plan.evt_lat / p.slow, plan.gap_us)
                .map_err(|e| err(format!("notify {key} (latency): {e}")))?;
            nlat[i].extend(l.lat);
            let count = (plan.evt_thr / p.slow).max(2 * EVENT_WINDOW as u32);
            let t = notify_run(key, p.path, count, 0)
                .map_err(|e| err(format!("notify {key} (throughput): {e}")))?;
            nrun[i].extend(pw::median(&t.rates));
            nrate[i].extend(t.rates);
            nretries[i] += t.retries;
            nsums[i].0 += count as u64;
            nsums[i].1 += t.receives;
            nsums[i].2 += t.emit_ns;
        }
        // Burst runs in blocks, the pathways taking turns block by block.
        for b in 0..BURST_BLOCKS {
            for i in rotated(&nidx, r * BURST_BLOCKS + b) {
                let p = &notify::PATHWAYS[i];
                let cycles = (plan.evt_thr / p.slow / p.burst / BURST_BLOCKS as u32).max(3);
                notify_burst(p, cycles, &mut bursts[i])
                    .map_err(|e| err(format!("notify {} (bursts): {e}", p.key)))?;
            }
        }
        eprintln!(
            "pathways: round {}/{} done after {:.1?}",
            r + 1,
            plan.rounds,
            started.elapsed()
        );
    }
    for (i, &(key, label, max, why)) in calls::PATHWAYS.iter().enumerate() {
        for (si, size) in SIZES.iter().enumerate() {
            let batch = if key.ends_with("_batch") {
                calls::BATCH
            } else {
                1
            };
            if *size > max {
                emit_line(&json!({
                    "kind": "call", "pathway": key, "label": label, "size": size,
                    "unsupported": why,
                }));
                continue;
            }
            let cell = std::mem::take(&mut cells[i * SIZES.len() + si]);
            emit_line(&json!({
                "kind": "call", "pathway": key, "label": label, "size": size,
                "calls_per_op": batch,
                "lat_ns": lat_json(cell.lat),
                "calls_per_s": pw::median(&cell.rates),
                "calls_per_s_windows": cell.rates,
            }));
        }
    }
    for (i, p) in notify::PATHWAYS.iter().enumerate() {
        let b = &bursts[i];
        let events = b.events.max(1) as f64;
        emit_line(&json!({
            "kind": "notify", "pathway": p.key, "label": p.label,
            "lat_ns": lat_json(std::mem::take(&mut nlat[i])),
            "events_per_s": pw::median(&nrate[i]),
            "events_per_s_windows": nrate[i],
            "events_per_s_runs": nrun[i],
            "queue_full_retries": nretries[i],
            "events_per_receive": nsums[i].0 as f64 / nsums[i].1.max(1) as f64,
            "producer_events_per_s": nsums[i].0 as f64 / (nsums[i].2.max(1) as f64 / 1e9),
            "burst": p.burst,
            "burst_events_per_s": pw::median(&b.rates),
            "burst_events_per_s_blocks": b.rates,
            "burst_produce_ns": b.produce_ns as f64 / events,
            "burst_consume_ns": b.consume_ns as f64 / events,
        }));
    }
    emit_line(&json!({"kind": "done", "elapsed_s": started.elapsed().as_secs_f64()}));
    Ok(())
}

fn main() -> ExitCode {
    let mut plan = Plan {
        name: "full",
        rounds: 5,
        lat_calls: 2000,
        thr_calls: 8000,
        evt_lat: 1000,
        gap_us: 300,
        evt_thr: 10_000,
        measure: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                plan = Plan {
                    name: "quick",
                    rounds: 1,
                    lat_calls: 200,
                    thr_calls: 2000,
                    evt_lat: 100,
                    gap_us: 300,
                    evt_thr: 2000,
                    measure: true,
                }
            }
            "--check" => plan.measure = false,
            "--rounds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => plan.rounds = n,
                _ => {
                    eprintln!("--rounds needs a positive number");
                    return ExitCode::FAILURE;
                }
            },
            other => {
                eprintln!("usage: pathways [--quick | --check] [--rounds N] (not {other:?})");
                return ExitCode::FAILURE;
            }
        }
    }
    // Receivers and callers on CPU 0; the thread raising events on CPU 1.
    pin_to(0);
    if let Err(e) = install_alarm_handler() {
        eprintln!("pathways: {e}");
        return ExitCode::FAILURE;
    }
    emit_line(&machine(&plan));
    let mut failed = 0;
    check_calls(&mut failed);
    check_notify(&mut failed);
    if failed > 0 {
        println!("pathways: {failed} check(s) failed; not measuring");
        return ExitCode::FAILURE;
    }
    if plan.measure {
        if let Err(e) = measure(&plan) {
            println!("FAIL measuring: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
