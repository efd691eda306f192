//! Booting a kernel under qemu (TCG) and collecting its serial console.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a guest run produced.
#[derive(Debug, Default)]
pub struct Run {
    /// Console lines (without `\r`).
    pub lines: Vec<String>,
    /// Wall-clock time from start to exit (or kill).
    pub elapsed: Duration,
    /// True if the guest was killed at the time limit.
    pub timed_out: bool,
}

/// Kernel arguments for the release kernels: SLUB's red zones, poisoning
/// and free checks, poisoned freed pages, and KFENCE on every allocation it
/// can take, so memory errors show in the log even without KASAN.
pub const MEMORY_CHECKS: &str =
    "slub_debug=FZPU init_on_free=1 page_poison=1 kfence.sample_interval=1";

/// Boots `kernel` with `initrd`, 1 GiB, 2 CPUs, serial console on stdio,
/// with `extra` appended to the kernel command line (e.g. [`MEMORY_CHECKS`],
/// or `clocksource=tsc tsc=reliable` for benchmarks), and waits for qemu to
/// exit (the guest powers off) for at most `timeout`; kills it then. The
/// console is also written to `log`.
pub fn boot_with(
    kernel: &Path,
    initrd: &Path,
    extra: &str,
    timeout: Duration,
    verbose: bool,
    log: &Path,
) -> Result<Run> {
    let started = Instant::now();
    let append = format!("console=ttyS0 panic=-1 quiet {extra}");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(append.trim_end())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    let tx_err = tx.clone();
    let out_reader = std::thread::spawn(move || forward_lines(stdout, &tx, ""));
    let err_reader = std::thread::spawn(move || forward_lines(stderr, &tx_err, "qemu: "));

    let mut logf =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut run = Run::default();
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if verbose {
                    println!("   | {line}");
                }
                writeln!(logf, "{line}")?;
                run.lines.push(line);
            }
            // Both readers ended: qemu closed its output, i.e. exited.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            run.timed_out = true;
            // Our own child, by its handle: no other qemu is touched.
            let _ = child.kill();
            break;
        }
    }
    let _ = child.wait();
    // After exit (or kill) the pipes close and the readers finish.
    let _ = out_reader.join();
    let _ = err_reader.join();
    while let Ok(line) = rx.try_recv() {
        writeln!(logf, "{line}")?;
        run.lines.push(line);
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Sends each line of `from` (lossily decoded, `\r` dropped) with `prefix`.
fn forward_lines(from: impl std::io::Read, to: &mpsc::Sender<String>, prefix: &str) {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = printable(line.trim_end_matches(['\n', '\r']));
                if to.send(format!("{prefix}{line}")).is_err() {
                    return;
                }
            }
        }
    }
}

/// Drops terminal escape sequences (the firmware clears the screen) and
/// other control characters from a console line.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte; other escapes: ESC + one char.
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_dropped() {
        assert_eq!(
            printable("\x1bc\x1b[?7l\x1b[2J@@ISC-BOOT 6.1"),
            "@@ISC-BOOT 6.1"
        );
        assert_eq!(printable("a\rb\tc"), "ab\tc");
        assert_eq!(printable("plain [1.0] text"), "plain [1.0] text");
    }
}
