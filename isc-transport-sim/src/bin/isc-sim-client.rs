//! An interactive client of a simulated ISC host, and a hostile-peer probe.
//!
//! ```text
//! isc-sim-client <socket-path> <uid> [<msz> <num>]
//! ```
//!
//! Binds (both rings `msz` bytes × `num` slots, default 64 × 8) and prints
//! `ready bound=<0|1>`, or `error <why>` and exits 1. Then reads commands on
//! stdin, one per line, answering each with one line:
//!
//! - `call <text>`: `reply <rc> <reply text>` or `error <why>`;
//! - `event <ms>`: the next `k2u` entry within `ms` milliseconds: `bound`,
//!   `unbound`, `post <text>`, `timeout` or `error <why>`;
//! - `closed <ms>`: `closed` once the host has closed the channel, `open` if
//!   it has not within `ms` milliseconds;
//! - `scribble <what>`: corrupts the shared region as a hostile user would,
//!   then kicks the host; `what` is `u2k-head` (an impossible producer index),
//!   `u2k-len` (a message longer than `msz`), `u2k-flags` (an unknown message
//!   kind) or `k2u-tail` (an impossible consumer index; the host notices at
//!   its next post). Answers `ok`;
//! - `quit` (or end of input): unbinds and exits.

use isc_ring::abi::{BindRequest, RingRequest, HEAD_OFFSET, SLOTS_OFFSET, TAIL_OFFSET};
use isc_transport_sim::{Event, SimClient, Uid, UserEndpoint};
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(30));

fn parse_uid(s: &str) -> Option<u32> {
    s.parse::<Uid>().ok().map(Uid::raw)
}

/// Stores `value` at byte `off` of the shared region.
fn poke(ep: &UserEndpoint, off: usize, value: u32) {
    let link = ep.link();
    if off % 4 != 0 || off + 4 > link.region_len() {
        return;
    }
    // SAFETY: `off` is in bounds and 4-aligned in a live, page-aligned
    // mapping held by `ep`; the region is shared memory, accessed atomically.
    let word = unsafe { AtomicU32::from_ptr(link.region_ptr().as_ptr().add(off).cast::<u32>()) };
    // Release: like a producer publishing, so the host sees earlier writes.
    word.store(value, Ordering::Release);
}

/// Reads the word at byte `off` of the shared region.
fn peek(ep: &UserEndpoint, off: usize) -> u32 {
    let link = ep.link();
    if off % 4 != 0 || off + 4 > link.region_len() {
        return 0;
    }
    // SAFETY: as in `poke`.
    let word = unsafe { AtomicU32::from_ptr(link.region_ptr().as_ptr().add(off).cast::<u32>()) };
    word.load(Ordering::Acquire)
}

/// Sends a one-byte message whose header is then rewritten at `field`
/// (byte offset in the slot header) with `value`, and publishes it.
fn bad_message(ep: &mut UserEndpoint, field: usize, value: u32) -> Result<(), String> {
    let u2k = ep.link().layout().u2k();
    let seq = ep.tx().send(b"x").map_err(|e| e.to_string())?;
    let slot = SLOTS_OFFSET as usize
        + (seq & (u2k.slot_count() - 1)) as usize * u2k.slot_stride() as usize;
    poke(ep, slot + field, value);
    ep.tx().publish().map_err(|e| e.to_string())
}

fn scribble(ep: &mut UserEndpoint, what: &str) -> Result<(), String> {
    let k2u_off = ep.link().layout().k2u_offset() as usize;
    match what {
        "u2k-head" => {
            let tail = peek(ep, TAIL_OFFSET);
            poke(ep, HEAD_OFFSET, tail.wrapping_add(0x1000_0000));
        }
        "u2k-len" => bad_message(ep, 4, u32::MAX)?,
        "u2k-flags" => bad_message(ep, 8, 0x77)?,
        "k2u-tail" => {
            let head = peek(ep, k2u_off + HEAD_OFFSET);
            poke(ep, k2u_off + TAIL_OFFSET, head.wrapping_add(0x1000_0000));
        }
        _ => return Err(format!("unknown target {what:?}")),
    }
    ep.link().kick().map_err(|e| e.to_string())
}

fn event(ep: &mut UserEndpoint, ms: u64) -> String {
    let mut buf = vec![0u8; ep.link().layout().k2u().msz() as usize];
    match ep.recv(&mut buf, Some(Duration::from_millis(ms))) {
        Ok(Some(Event::Bound)) => "bound".into(),
        Ok(Some(Event::Unbound)) => "unbound".into(),
        Ok(Some(Event::Post { len })) => {
            format!(
                "post {}",
                String::from_utf8_lossy(&buf[..len.min(buf.len())])
            )
        }
        Ok(None) => "timeout".into(),
        Err(e) => format!("error {e}"),
    }
}

fn closed(ep: &UserEndpoint, ms: u64) -> &'static str {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        if ep.link().is_closed() {
            return "closed";
        }
        if Instant::now() >= deadline {
            return "open";
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: isc-sim-client <socket-path> <uid> [<msz> <num>]");
        ExitCode::from(2)
    };
    let (Some(path), Some(uid)) = (args.first(), args.get(1).and_then(|u| parse_uid(u))) else {
        return usage();
    };
    let num = |i: usize, default: u32| args.get(i).map_or(Some(default), |s| s.parse().ok());
    let (Some(msz), Some(depth)) = (num(2, 64), num(3, 8)) else {
        return usage();
    };
    let ring = RingRequest { msz, num: depth };
    let req = BindRequest::new(uid, ring, ring);
    let mut ep = match SimClient::connect(path, &req) {
        Ok(ep) => ep,
        Err(e) => {
            println!("error {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready bound={}", ep.link().response().bound);
    let mut reply = vec![0u8; msz as usize];
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (cmd, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let ms = || rest.trim().parse::<u64>().unwrap_or(1000);
        let answer = match cmd {
            "quit" => break,
            "call" => match ep.call(rest.as_bytes(), &mut reply, LONG) {
                Ok(r) => format!(
                    "reply {} {}",
                    r.rc,
                    String::from_utf8_lossy(&reply[..r.len.min(reply.len())])
                ),
                Err(e) => format!("error {e}"),
            },
            "event" => event(&mut ep, ms()),
            "closed" => closed(&ep, ms()).into(),
            "scribble" => scribble(&mut ep, rest.trim())
                .map_or_else(|e| format!("error {e}"), |()| "ok".into()),
            _ => format!("error unknown command {line:?}"),
        };
        println!("{answer}");
    }
    ExitCode::SUCCESS
}
