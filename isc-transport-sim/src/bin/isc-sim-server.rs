//! A simulated ISC host serving the sample echo driver on a Unix socket.
//!
//! ```text
//! isc-sim-server <socket-path> <uid>[=sample]...
//! ```
//!
//! Registers [`EchoDriver`] for each UID (a fourcc such as `sam0`, or a
//! number such as `0x30616d73`), or with `=sample` the sample protocol's
//! [`RegisterDriver`] posting an irq status every 100 ms while bound;
//! serves binds on the socket and prints
//! `ready`. Then reads commands on stdin, one per line, answering each with
//! one line: `register <uid>`, `unregister <uid>` (`ok` or `error <why>`),
//! `stats`. Exits on `quit` or end of input.

use isc_transport_sim::sample::{EchoDriver, IrqTimer, RegisterDriver};
use isc_transport_sim::{SimHost, Uid};
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

fn parse_uid(s: &str) -> Option<u32> {
    s.parse::<Uid>().ok().map(Uid::raw)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((path, uids)) = args.split_first().filter(|(_, u)| !u.is_empty()) else {
        eprintln!("usage: isc-sim-server <socket-path> <uid>[=sample]...");
        return ExitCode::from(2);
    };
    let host = match SimHost::new() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("isc-sim-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut timers: Vec<IrqTimer> = Vec::new();
    for u in uids {
        let (name, sample) = match u.strip_suffix("=sample") {
            Some(name) => (name, true),
            None => (u.as_str(), false),
        };
        let Some(uid) = parse_uid(name) else {
            eprintln!("isc-sim-server: bad UID {u:?}");
            return ExitCode::from(2);
        };
        let registered = if sample {
            let driver = Arc::new(RegisterDriver::new());
            timers.push(driver.start_irq(std::time::Duration::from_millis(100)));
            host.register(uid, driver)
        } else {
            host.register(uid, Arc::new(EchoDriver::new()))
        };
        if let Err(e) = registered {
            eprintln!("isc-sim-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = host.listen(path) {
        eprintln!("isc-sim-server: {path}: {e}");
        return ExitCode::FAILURE;
    }
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next().and_then(parse_uid)) {
            (Some("quit"), _) => break,
            (Some("register"), Some(uid)) => host
                .register(uid, Arc::new(EchoDriver::new()))
                .map_or_else(|e| format!("error {e}"), |()| "ok".into()),
            (Some("unregister"), Some(uid)) => host
                .unregister(uid)
                .map_or_else(|e| format!("error {e}"), |()| "ok".into()),
            (Some("stats"), _) => format!("{:?}", host.stats()),
            _ => format!("error unknown command {line:?}"),
        };
        println!("{answer}");
    }
    ExitCode::SUCCESS
}
