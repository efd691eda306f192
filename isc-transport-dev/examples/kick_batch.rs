//! Calls per second through the sample driver (`sam0`) with one KICK per 32
//! calls against one KICK per call (one syscall per message, the original
//! design), measured in the same run, interleaved, and reported as a ratio.
//!
//! Needs `/dev/isc` with the `isc` and `isc_sample` modules loaded (run by
//! `cargo xtask vm-test` inside its VM). Usage: `kick_batch [CALLS]`.

use isc_ring::abi::{BindRequest, RingRequest};
use isc_transport_dev::DevEndpoint;
use std::process::ExitCode;
use std::time::Instant;

const BATCH: usize = 32;
const ROUNDS: usize = 3;
const WRITE: u32 = 2;

/// Makes `calls` register writes, `batch` per KICK; returns calls per second.
fn run(ep: &mut DevEndpoint, calls: usize, batch: usize) -> Result<f64, String> {
    let started = Instant::now();
    let mut sent = 0;
    while sent < calls {
        let n = batch.min(calls - sent);
        for i in 0..n {
            let reg = ((sent + i) % 256) as u32;
            let mut msg = [0u8; 12];
            msg[0..4].copy_from_slice(&WRITE.to_ne_bytes());
            msg[4..8].copy_from_slice(&reg.to_ne_bytes());
            msg[8..12].copy_from_slice(&(sent as u32).to_ne_bytes());
            ep.producer().push(&msg, 0).map_err(|e| e.to_string())?;
        }
        let _ = ep.producer().publish();
        let done = ep.kick().map_err(|e| e.to_string())?;
        if done as usize != n {
            return Err(format!("KICK processed {done} of {n} messages"));
        }
        for _ in 0..n {
            let c = ep
                .producer()
                .completion()
                .map_err(|e| e.to_string())?
                .ok_or("a kicked call has no completion")?;
            if c.rc() != 0 {
                return Err(format!("call failed with rc {}", c.rc()));
            }
        }
        sent += n;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let calls: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 20_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: kick_batch [CALLS]");
            return ExitCode::FAILURE;
        }
    };
    let req = BindRequest::new(
        u32::from_le_bytes(*b"sam0"),
        RingRequest::new(12, BATCH as u32),
        RingRequest::new(12, 8),
    );
    let mut ep = match DevEndpoint::bind(None, req) {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("kick_batch: bind sam0: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut single = Vec::new();
    let mut batched = Vec::new();
    // A short warm-up, then interleaved rounds so drift hits both alike.
    let result = run(&mut ep, calls / 10, BATCH).and_then(|_| {
        for _ in 0..ROUNDS {
            single.push(run(&mut ep, calls, 1)?);
            batched.push(run(&mut ep, calls, BATCH)?);
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("kick_batch: {e}");
        return ExitCode::FAILURE;
    }
    let (s, b) = (median(single), median(batched));
    println!("kick_batch: {calls} calls x {ROUNDS} rounds (median calls/s)");
    println!("kick_batch: one KICK per call:      {s:>12.0} calls/s");
    println!("kick_batch: one KICK per {BATCH} calls: {b:>12.0} calls/s");
    println!("kick_batch: ratio (batched / per call): {:.2}x", b / s);
    ExitCode::SUCCESS
}
