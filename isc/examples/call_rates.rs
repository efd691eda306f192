//! Calls per second through the facade against the raw endpoint, in one
//! run, on the sample driver (`sam0`, 12-byte register writes):
//!
//! - raw: the device endpoint with one KICK per call (the floor a facade
//!   call is measured against);
//! - `call`: sequential blocking calls through the facade;
//! - `call_batch_into`: 32 calls per batch through the facade;
//! - async: 32 call futures in flight at once (`join_all`, tokio).
//!
//! Rounds are interleaved so drift hits all alike; medians are reported,
//! with the ratios the project tracks. Needs `/dev/isc` with `isc_sample.ko`
//! (run by `cargo xtask vm-test`); with `ISC_TRANSPORT=sim` (the default
//! without a device) it runs against the simulated sample driver in this
//! process instead, without the raw column. Usage: `call_rates [CALLS]`.

use isc::{Channel, Transport, Uid};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

const UID: Uid = Uid::fourcc(*b"sam0");
const DEPTH: u32 = 32;
const ROUNDS: usize = 3;
const WRITE: u32 = 2;

fn request(i: usize) -> [u8; 12] {
    let mut msg = [0u8; 12];
    msg[0..4].copy_from_slice(&WRITE.to_ne_bytes());
    msg[4..8].copy_from_slice(&((i % 256) as u32).to_ne_bytes());
    msg[8..12].copy_from_slice(&(i as u32).to_ne_bytes());
    msg
}

fn open(transport: &Transport) -> Result<Channel, String> {
    Channel::builder(UID)
        .u2k(12, DEPTH)
        .k2u(12, 8)
        .transport(transport.clone())
        .open()
        .map_err(|e| format!("open sam0: {e}"))
}

fn rate(calls: usize, f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    f()?;
    Ok(calls as f64 / t.elapsed().as_secs_f64())
}

fn check(rc: i32) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("call failed with rc {rc}"))
    }
}

/// One KICK per call on the raw device endpoint.
fn raw(calls: usize) -> Result<f64, String> {
    use isc_ring::abi::{BindRequest, RingRequest};
    let req = BindRequest::new(
        UID.raw(),
        RingRequest::new(12, DEPTH),
        RingRequest::new(12, 8),
    );
    let mut ep = isc_transport_dev::DevEndpoint::bind(None, req).map_err(|e| e.to_string())?;
    rate(calls, || {
        for i in 0..calls {
            ep.producer()
                .push(&request(i), 0)
                .map_err(|e| e.to_string())?;
            let _ = ep.producer().publish();
            ep.kick().map_err(|e| e.to_string())?;
            let c = ep.producer().completion().map_err(|e| e.to_string())?;
            check(c.ok_or("a kicked call has no completion")?.rc())?;
        }
        Ok(())
    })
}

fn sequential(t: &Transport, calls: usize) -> Result<f64, String> {
    let ch = open(t)?;
    let mut reply = [0u8; 12];
    rate(calls, || {
        for i in 0..calls {
            check(
                ch.call(&request(i), &mut reply)
                    .map_err(|e| e.to_string())?
                    .rc,
            )?;
        }
        Ok(())
    })
}

fn batched(t: &Transport, calls: usize) -> Result<f64, String> {
    let ch = open(t)?;
    let reqs: Vec<[u8; 12]> = (0..DEPTH as usize).map(request).collect();
    let refs: Vec<&[u8]> = reqs.iter().map(|r| &r[..]).collect();
    let mut bufs = vec![[0u8; 12]; DEPTH as usize];
    rate(calls, || {
        for _ in 0..calls / DEPTH as usize {
            let mut replies: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            for r in ch
                .call_batch_into(&refs, &mut replies)
                .map_err(|e| e.to_string())?
            {
                check(r.map_err(|e| e.to_string())?.rc)?;
            }
        }
        Ok(())
    })
}

fn in_flight(t: &Transport, calls: usize) -> Result<f64, String> {
    let ch = open(t)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let reqs: Vec<[u8; 12]> = (0..DEPTH as usize).map(request).collect();
    rate(calls, || {
        rt.block_on(async {
            for _ in 0..calls / DEPTH as usize {
                let all = futures::future::join_all(reqs.iter().map(|r| ch.call_async(r))).await;
                for r in all {
                    check(r.map_err(|e| e.to_string())?.0)?;
                }
            }
            Ok(())
        })
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let calls: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 20_000,
        Some(Ok(n)) if n >= DEPTH as usize => n,
        Some(_) => {
            eprintln!("usage: call_rates [CALLS >= {DEPTH}]");
            return ExitCode::FAILURE;
        }
    };
    let device = std::path::Path::new("/dev/isc").exists()
        && std::env::var("ISC_TRANSPORT").as_deref() != Ok("sim");
    // In-process sample driver when there is no device.
    let host;
    let transport = if device {
        Transport::device()
    } else {
        host = Arc::new(isc::sim::SimHost::new().expect("start a simulated host"));
        let driver = Arc::new(isc::sim::sample::RegisterDriver::new());
        host.register(UID.raw(), driver).expect("register sam0");
        Transport::sim(&host)
    };
    let mut cols: [Vec<f64>; 4] = Default::default();
    let result = (|| -> Result<(), String> {
        sequential(&transport, calls / 10)?;
        for _ in 0..ROUNDS {
            if device {
                cols[0].push(raw(calls)?);
            }
            cols[1].push(sequential(&transport, calls)?);
            cols[2].push(batched(&transport, calls)?);
            cols[3].push(in_flight(&transport, calls)?);
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("call_rates: {e}");
        return ExitCode::FAILURE;
    }
    let [raw, seq, batch, futs] = cols.map(|c| if c.is_empty() { f64::NAN } else { median(c) });
    let on = if device { "device" } else { "sim" };
    println!("call_rates ({on}): {calls} calls x {ROUNDS} rounds, median calls/s");
    if device {
        println!("call_rates: raw endpoint, one KICK per call: {raw:>12.0}");
    }
    println!("call_rates: facade call, sequential:        {seq:>12.0}");
    println!("call_rates: facade call_batch_into of {DEPTH}:    {batch:>12.0}");
    println!("call_rates: facade async, {DEPTH} in flight:      {futs:>12.0}");
    if device {
        println!(
            "call_rates: ratio sequential call / raw:    {:.2}x (target >= 0.9x)",
            seq / raw
        );
    }
    println!(
        "call_rates: ratio call_batch / sequential:  {:.2}x",
        batch / seq
    );
    println!(
        "call_rates: ratio async 32 / sequential:    {:.2}x",
        futs / seq
    );
    ExitCode::SUCCESS
}
