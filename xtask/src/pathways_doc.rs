//! `docs/pathways.md` and `docs/pathways.svg` from the pathways runner's
//! results: the tables, the targets (met or missed) and the chart.
//!
//! The results are the runner's JSON records (see
//! `benches/examples/pathways/main.rs`) plus a description of the host,
//! saved as `docs/pathways.json`, so the page can be rendered again without
//! a VM (`cargo xtask vm-bench --from docs/pathways.json`).

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::ops::Range;

/// The message sizes of the echo call, in table order.
pub const SIZES: [u64; 3] = [16, 256, 4096];

/// One echo pathway at one size.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRow {
    /// Key (`ioctl`, `isc_batch`, ...).
    pub pathway: String,
    /// Human label.
    pub label: String,
    /// Message size in bytes.
    pub size: u64,
    /// Measured values, or why the pathway cannot carry this size.
    pub measured: std::result::Result<CallStats, String>,
}

/// Measured values of one echo cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CallStats {
    /// Calls per timed operation (32 for the batched ISC pathway).
    pub calls_per_op: u64,
    /// Latency of one operation, median, ns.
    pub p50_ns: u64,
    /// Latency of one operation, 99th percentile, ns.
    pub p99_ns: u64,
    /// Median over timed windows of calls per second.
    pub calls_per_s: f64,
    /// Calls per second of each window; the k-th window of every pathway
    /// at one size ran within milliseconds of the others' k-th.
    pub windows: Vec<f64>,
}

/// One notification pathway.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyRow {
    /// Key (`chardev`, `isc`, ...).
    pub pathway: String,
    /// Human label.
    pub label: String,
    /// Raise-to-receive latency, median, ns.
    pub p50_ns: u64,
    /// Raise-to-receive latency, 99th percentile, ns.
    pub p99_ns: u64,
    /// Streaming to a sleeping receiver on another CPU: median over
    /// windows of events per second.
    pub events_per_s: f64,
    /// The median window of each round's streaming run, aligned by round.
    pub runs: Vec<f64>,
    /// Events per receive (wake-up or read) in the streaming runs.
    pub events_per_receive: f64,
    /// Events that found the queue full, over all rounds.
    pub retries: u64,
    /// Raise a burst, then receive it, on one CPU: median events/s.
    pub burst_events_per_s: f64,
    /// The same per block of bursts, aligned across pathways.
    pub burst_blocks: Vec<f64>,
    /// Events per burst.
    pub burst: u64,
    /// Time to raise one event in the bursts, ns.
    pub burst_produce_ns: f64,
    /// Time to receive one event in the bursts, ns.
    pub burst_consume_ns: f64,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct Results {
    /// The host (CPU, qemu).
    pub host: Value,
    /// The guest (kernel, clocksource, plan).
    pub machine: Value,
    /// Echo cells, in the runner's order.
    pub calls: Vec<CallRow>,
    /// Notification rows, in the runner's order.
    pub notify: Vec<NotifyRow>,
    records: Vec<Value>,
}

fn u64_at(v: &Value, path: &[&str]) -> Result<u64> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .with_context(|| format!("record {v} has no integer {}", path.join(".")))
}

fn f64_at(v: &Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .filter(|x| x.is_finite() && *x > 0.0)
        .with_context(|| format!("record {v} has no positive {key}"))
}

/// An array of positive numbers (empty if absent).
fn f64s_at(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// The median of `v`; `None` if empty.
fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// `a` relative to `b`: the median of the ratios of paired samples (the
/// k-th of each was measured at about the same time) when both have the
/// same number of samples, else the ratio of the medians.
pub fn paired_ratio(a: &[f64], b: &[f64], a_median: f64, b_median: f64) -> f64 {
    if !a.is_empty() && a.len() == b.len() {
        let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        if let Some(m) = median(&ratios) {
            return m;
        }
    }
    a_median / b_median
}

fn str_at(v: &Value, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("record {v} has no {key}"))
}

impl Results {
    /// From the runner's records and the host description.
    pub fn from_records(host: Value, records: &[Value]) -> Result<Self> {
        let mut machine = None;
        let mut calls = Vec::new();
        let mut notify = Vec::new();
        for r in records {
            match r["kind"].as_str() {
                Some("machine") => machine = Some(r.clone()),
                Some("call") => {
                    let measured = match r["unsupported"].as_str() {
                        Some(why) => Err(why.to_string()),
                        None => Ok(CallStats {
                            calls_per_op: u64_at(r, &["calls_per_op"])?,
                            p50_ns: u64_at(r, &["lat_ns", "p50"])?,
                            p99_ns: u64_at(r, &["lat_ns", "p99"])?,
                            calls_per_s: f64_at(r, "calls_per_s")?,
                            windows: f64s_at(r, "calls_per_s_windows"),
                        }),
                    };
                    calls.push(CallRow {
                        pathway: str_at(r, "pathway")?,
                        label: str_at(r, "label")?,
                        size: u64_at(r, &["size"])?,
                        measured,
                    });
                }
                Some("notify") => notify.push(NotifyRow {
                    pathway: str_at(r, "pathway")?,
                    label: str_at(r, "label")?,
                    p50_ns: u64_at(r, &["lat_ns", "p50"])?,
                    p99_ns: u64_at(r, &["lat_ns", "p99"])?,
                    events_per_s: f64_at(r, "events_per_s")?,
                    runs: f64s_at(r, "events_per_s_runs"),
                    events_per_receive: f64_at(r, "events_per_receive")?,
                    retries: u64_at(r, &["queue_full_retries"])?,
                    burst_events_per_s: f64_at(r, "burst_events_per_s")?,
                    burst_blocks: f64s_at(r, "burst_events_per_s_blocks"),
                    burst: u64_at(r, &["burst"])?,
                    burst_produce_ns: f64_at(r, "burst_produce_ns")?,
                    burst_consume_ns: f64_at(r, "burst_consume_ns")?,
                }),
                _ => {}
            }
        }
        let machine = machine.context("the results have no machine record")?;
        let res = Self {
            host,
            machine,
            calls,
            notify,
            records: records.to_vec(),
        };
        for (p, size) in [("ioctl", 16), ("isc", 16), ("isc_batch", 16)] {
            res.call(p, size)
                .with_context(|| format!("the results lack {p} at {size} B"))?;
        }
        for p in ["netlink", "isc"] {
            res.notification(p)
                .with_context(|| format!("the results lack notifications over {p}"))?;
        }
        Ok(res)
    }

    /// The saved form: `{"host": ..., "records": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({"host": self.host, "records": self.records})
    }

    /// From the saved form.
    pub fn from_json(v: &Value) -> Result<Self> {
        let records = v["records"]
            .as_array()
            .context("saved results have no records")?;
        Self::from_records(v["host"].clone(), records)
    }

    /// The measured cell of `pathway` at `size`.
    pub fn call(&self, pathway: &str, size: u64) -> Option<&CallStats> {
        self.calls
            .iter()
            .find(|c| c.pathway == pathway && c.size == size)
            .and_then(|c| c.measured.as_ref().ok())
    }

    /// The notification row of `pathway`.
    pub fn notification(&self, pathway: &str) -> Option<&NotifyRow> {
        self.notify.iter().find(|n| n.pathway == pathway)
    }

    /// Echo pathways in order, each once: (key, label).
    fn call_pathways(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        for c in &self.calls {
            if !v.iter().any(|(k, _)| *k == c.pathway) {
                v.push((c.pathway.clone(), c.label.clone()));
            }
        }
        v
    }

    /// Calls per second of `pathway` relative to ioctl's, at `size`
    /// (paired windows).
    fn thr_vs_ioctl(&self, pathway: &str, size: u64) -> Option<f64> {
        let (a, b) = (self.call(pathway, size)?, self.call("ioctl", size)?);
        Some(paired_ratio(
            &a.windows,
            &b.windows,
            a.calls_per_s,
            b.calls_per_s,
        ))
    }

    /// Streaming events per second relative to netlink's (paired rounds).
    fn stream_vs_netlink(&self, pathway: &str) -> Option<f64> {
        let (a, b) = (self.notification(pathway)?, self.notification("netlink")?);
        Some(paired_ratio(
            &a.runs,
            &b.runs,
            a.events_per_s,
            b.events_per_s,
        ))
    }

    /// Burst events per second relative to netlink's (paired blocks).
    fn burst_vs_netlink(&self, pathway: &str) -> Option<f64> {
        let (a, b) = (self.notification(pathway)?, self.notification("netlink")?);
        Some(paired_ratio(
            &a.burst_blocks,
            &b.burst_blocks,
            a.burst_events_per_s,
            b.burst_events_per_s,
        ))
    }

    /// Median latency of one call of `pathway` relative to ioctl's (for a
    /// batched pathway: of one batch), at `size`.
    fn lat_vs_ioctl(&self, pathway: &str, size: u64) -> Option<f64> {
        Some(self.call(pathway, size)?.p50_ns as f64 / self.call("ioctl", size)?.p50_ns as f64)
    }
}

/// One of the benchmark's targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Short name.
    pub name: &'static str,
    /// What is compared, and the threshold.
    pub goal: &'static str,
    /// The measured ratio.
    pub ratio: f64,
    /// Met?
    pub met: bool,
    /// The measured values behind the ratio.
    pub detail: String,
}

impl Target {
    /// `met (12.3x)` or `MISSED (4.5x)`.
    pub fn verdict(&self) -> String {
        format!(
            "{} ({:.2}x; {})",
            if self.met { "met" } else { "MISSED" },
            self.ratio,
            self.detail
        )
    }
}

/// The targets, evaluated on `r`. The posts target is judged on both
/// notification throughputs the page reports.
pub fn targets(r: &Results) -> Vec<Target> {
    let mut v = Vec::new();
    if let (Some(b), Some(i), Some(ratio)) = (
        r.call("isc_batch", 16),
        r.call("ioctl", 16),
        r.thr_vs_ioctl("isc_batch", 16),
    ) {
        v.push(Target {
            name: "batched calls",
            goal: "ISC with 32 calls per KICK makes >= 10x the calls per second of one ioctl per call, at 16 B",
            ratio,
            met: ratio >= 10.0,
            detail: format!(
                "{} against {} calls/s",
                rate(b.calls_per_s),
                rate(i.calls_per_s)
            ),
        });
    }
    if let (Some(p), Some(n), Some(ratio)) = (
        r.notification("isc"),
        r.notification("netlink"),
        r.burst_vs_netlink("isc"),
    ) {
        v.push(Target {
            name: "posts (cost per event)",
            goal: "ISC posts deliver >= 5x the events per second of generic netlink multicast: bursts raised and received on one CPU",
            ratio,
            met: ratio >= 5.0,
            detail: format!(
                "{} against {} events/s",
                rate(p.burst_events_per_s),
                rate(n.burst_events_per_s)
            ),
        });
    }
    if let (Some(p), Some(n), Some(ratio)) = (
        r.notification("isc"),
        r.notification("netlink"),
        r.stream_vs_netlink("isc"),
    ) {
        v.push(Target {
            name: "posts (streaming)",
            goal: "ISC posts deliver >= 5x the events per second of generic netlink multicast: streamed to a receiver that sleeps on another CPU",
            ratio,
            met: ratio >= 5.0,
            detail: format!(
                "{} against {} events/s",
                rate(p.events_per_s),
                rate(n.events_per_s)
            ),
        });
    }
    if let (Some(c), Some(i)) = (r.call("isc", 16), r.call("ioctl", 16)) {
        let ratio = c.p50_ns as f64 / i.p50_ns as f64;
        v.push(Target {
            name: "call latency",
            goal: "one ISC call (one KICK) has a median latency <= one ioctl's, at 16 B",
            ratio,
            met: c.p50_ns <= i.p50_ns,
            detail: format!("p50 {} against {}", us(c.p50_ns), us(i.p50_ns)),
        });
    }
    v
}

/// `123 k` style rate.
fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Nanoseconds as microseconds.
fn us(ns: u64) -> String {
    let u = ns as f64 / 1000.0;
    if u >= 100.0 {
        format!("{u:.0} µs")
    } else if u >= 10.0 {
        format!("{u:.1} µs")
    } else {
        format!("{u:.2} µs")
    }
}

fn size_name(size: u64) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "unknown".into(),
    }
}

/// When to choose each pathway, by key.
const ADVICE: &[(&str, &str, &str)] = &[
    (
        "ioctl",
        "ioctl",
        "The default for a device's control plane: typed, versioned commands on a file descriptor the \
         driver already has, one system call per command, with pointers to buffers of any size. \
         Choose it when calls are occasional or when each call needs the caller's credentials and \
         file context checked; it needs no shared memory and no protocol beyond the command structs.",
    ),
    (
        "chardev",
        "char device write + read",
        "A stream or message device: natural when the data already is a byte stream (a serial port, \
         a log, raw frames) or when the device should work with `cat`, shell redirection and \
         `poll`. One request and its reply cost two system calls. As a notification path a blocking \
         `read` that returns every queued record at once is simple and fast, and the reader's \
         progress gives the driver backpressure for free.",
    ),
    (
        "procfs",
        "procfs",
        "Legacy. New drivers should not add files under `/proc` (it is for processes); keep it for \
         existing interfaces. It costs about what debugfs and a char device cost.",
    ),
    (
        "sysfs",
        "sysfs attribute",
        "One value per file, in text, that a human or a udev rule reads or sets: a mode, a \
         threshold, a counter. It is device-wide state, not a per-caller channel (two writers \
         overwrite each other's request), a read returns at most a page (the 4 KiB echo cannot be \
         carried), and each read re-runs `show()` into a fresh page. `sysfs_notify` + `poll` \
         tells a reader that the value changed, not how often: the value has no queue, so the \
         producer here waits for each read before it raises the next event.",
    ),
    (
        "debugfs",
        "debugfs",
        "Debugging and tracing knobs only: it has no ABI guarantee, may be absent or locked down \
         on production kernels, and needs root. It is quick to add and costs about what a char \
         device costs.",
    ),
    (
        "netlink",
        "generic netlink",
        "The right choice for networking-style configuration with attributes that evolve (TLVs), \
         for messages that must reach several listeners (a multicast group), and for clients in \
         other network namespaces or in tools that already speak netlink (`iproute2`, `libnl`, \
         YNL specs). Each message is an allocated socket buffer and a socket receive, and a \
         multicast group drops messages when a listener's receive queue is full.",
    ),
    (
        "isc",
        "ISC",
        "Two-way messaging at a high rate between one application and one driver: many small \
         calls per second, replies in place, posts from any context including hard IRQ without \
         a system call per message on the receiving side. It costs a mapped region per channel and \
         a protocol (the ring) that both sides must treat as hostile. Batching is where it wins \
         most: one KICK carries up to a ring's worth of calls. For one occasional call an ioctl \
         is just as good and simpler.",
    ),
];

/// Renders the page.
pub fn render_markdown(r: &Results) -> String {
    let m = &r.machine;
    let h = &r.host;
    let mut s = String::new();
    s.push_str("# ISC against the other user↔kernel pathways\n\n");
    s.push_str(
        "This page is generated by `cargo xtask vm-bench` from one run of the pathways benchmark; \
         do not edit it by hand. The benchmark module (`driver/pathways/`) offers the same two \
         operations over every pathway, each written the way drivers use that pathway:\n\n\
         - **echo call**: the user sends N bytes, the driver answers with the same N bytes \
         complemented and the result code N (the same work on every pathway);\n\
         - **notification**: the driver raises event number *seq* (16 bytes: the sequence number and \
         the `CLOCK_MONOTONIC` time it was raised); a user thread receives it.\n\n\
         The runner (`benches/examples/pathways/`) first checks every pathway (replies, result \
         codes, event order), then measures. Pathways are interleaved: each round measures every \
         pathway at every size, in an order rotated from round to round, so drift on the host hits \
         them alike. Throughput is the median over short timed windows of all rounds, so that a \
         window in which the host took the CPU away is an outlier rather than the result; \
         latencies are percentiles over all samples of all rounds.\n\n",
    );
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(
        s,
        "- Host: {} ({} CPUs), {}.",
        text(h, "cpu"),
        text(h, "cpus"),
        text(h, "qemu")
    );
    let _ = writeln!(
        s,
        "- Guest: Linux {}, {} vCPUs ({}), clocksource `{}` (booted with `clocksource=tsc tsc=reliable`).",
        text(m, "kernel"),
        text(m, "cpus"),
        text(m, "cpu"),
        text(m, "clocksource"),
    );
    let _ = writeln!(
        s,
        "- **The guest CPU is emulated (qemu TCG, no KVM)**: every instruction is translated, so \
         absolute times are many times those of real hardware and system calls are relatively \
         more expensive. Read the ratios, not the microseconds. The host is shared with other \
         work; the runs are short and interleaved to keep that fair."
    );
    let _ = writeln!(
        s,
        "- Plan `{}`: {} rounds; per pathway, size and round {} individually timed calls and \
         {} calls (a quarter of that at 4 KiB) in {} timed windows; per notification pathway \
         and round {} events {} µs apart for latency and {} back to back for throughput, in \
         windows of {} (a tenth of the events for sysfs).\n",
        text(m, "plan"),
        text(m, "rounds"),
        text(m, "lat_calls"),
        text(m, "thr_calls"),
        text(m, "windows"),
        text(m, "evt_lat"),
        text(m, "evt_gap_us"),
        text(m, "evt_thr"),
        text(m, "event_window"),
    );
    s.push_str(
        "Reproduce with `cargo xtask vm-bench` (a few minutes; `--quick` for a rough run in about \
         a minute). It needs the packages `scripts/vm-prereqs` installs. The raw results are in \
         [`pathways.json`](pathways.json); `cargo xtask vm-bench --from docs/pathways.json` renders \
         this page and the chart again from them.\n\n",
    );
    s.push_str("![Ratios of every pathway against ioctl (calls) and netlink multicast (notifications)](pathways.svg)\n\n");

    s.push_str("## Targets\n\n| target | measured | result |\n|---|---|---|\n");
    for t in targets(r) {
        let _ = writeln!(
            s,
            "| {} | {:.2}x ({}) | {} |",
            t.goal,
            t.ratio,
            t.detail,
            if t.met { "met" } else { "**missed**" }
        );
    }
    s.push('\n');
    s.push_str(&target_discussion(r));

    s.push_str("## Echo calls\n\n");
    s.push_str(
        "Calls/s is the throughput of back-to-back calls from one thread (the median of its \
         timed windows); *x ioctl* is the median, over windows, of its calls/s divided by \
         ioctl's in the window measured next to it at the same size, so that host drift cancels \
         (it can differ from the ratio of the two medians). Latency is one call's round trip as the caller sees it (for \
         ISC with 32 calls per KICK: the round trip of the whole batch).\n\n",
    );
    for size in SIZES {
        let _ = writeln!(s, "### {}\n", size_name(size));
        s.push_str(
            "| pathway | calls/s | x ioctl | latency p50 | p99 | p50 x ioctl |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for c in r.calls.iter().filter(|c| c.size == size) {
            match &c.measured {
                Ok(st) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.2} | {} | {} | {:.2} |",
                        c.label,
                        rate(st.calls_per_s),
                        r.thr_vs_ioctl(&c.pathway, size).unwrap_or(f64::NAN),
                        us(st.p50_ns),
                        us(st.p99_ns),
                        r.lat_vs_ioctl(&c.pathway, size).unwrap_or(f64::NAN),
                    );
                }
                Err(why) => {
                    let _ = writeln!(s, "| {} | n/a: {} | | | | |", c.label, why);
                }
            }
        }
        s.push('\n');
    }

    s.push_str("## Notifications\n\n");
    s.push_str(
        "Three measurements per pathway, all with the same 16-byte event:\n\n\
         - **Cost per event (bursts)**: one thread asks the driver to raise a burst of events \
         (they wait in the pathway's queue), then receives them; repeated. Nobody sleeps, so this \
         is the pathway's own work per event on one CPU: raising (driver side, including the \
         system call that triggers the burst) and receiving. sysfs holds one value, so its bursts \
         are of one event.\n\
         - **Streaming**: the driver raises events back to back from a thread on the second CPU \
         while the receiver, on the first, takes them as they come and sleeps whenever nothing \
         is queued, so wake-ups are part of the cost. Where a queue was full the producer \
         waited (char device: asleep until the reader made room; sysfs: until the value was \
         read) or sent the event again until it was taken (netlink and ISC give a driver no way \
         to wait for room, so the producer polls, yielding the CPU when the scheduler asks). \
         *Events per receive* is how many events one wake-up or read delivered on average.\n\
         - **Latency**: from the driver raising the event (just before the pathway's own work) \
         to the receiving thread holding it, with the events spaced so that the receiver is \
         asleep when each arrives: it includes the wake-up.\n\n\
         Ratios to netlink are medians of paired samples (bursts: blocks measured back to back; \
         streaming: runs of the same round).\n\n",
    );
    s.push_str(
        "| pathway | bursts: events/s | x netlink | raise | receive | streaming: events/s | x netlink | events per receive | latency p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in &r.notify {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {} | {} | {} | {:.2} | {:.1} | {} | {} |",
            n.label,
            rate(n.burst_events_per_s),
            r.burst_vs_netlink(&n.pathway).unwrap_or(f64::NAN),
            us(n.burst_produce_ns as u64),
            us(n.burst_consume_ns as u64),
            rate(n.events_per_s),
            r.stream_vs_netlink(&n.pathway).unwrap_or(f64::NAN),
            n.events_per_receive,
            us(n.p50_ns),
            us(n.p99_ns),
        );
    }
    s.push('\n');

    s.push_str("## Which pathway when\n\n");
    for (_, name, text) in ADVICE {
        let _ = writeln!(s, "**{name}.** {text}\n");
    }
    s.push_str(NOTES);
    s
}

/// Why each target came out as it did, from the measured components.
fn target_discussion(r: &Results) -> String {
    let mut s = String::new();
    let ioctl = r.call("ioctl", 16);
    let isc = r.call("isc", 16);
    let batch = r.call("isc_batch", 16);
    if let (Some(i), Some(k), Some(b)) = (ioctl, isc, batch) {
        let per_call_in_batch = b.p50_ns as f64 / b.calls_per_op as f64;
        let _ = writeln!(
            s,
            "- **Batched calls.** One ioctl round trip costs {} (p50); one KICK carrying 32 calls \
             costs {}, i.e. {} per call, {:.1}x less than an ioctl. Batching removes the system \
             call per message, not the work per message: for each slot the kernel's drain \
             validates the header, copies the message into the bounce buffer and the reply back, \
             takes the callback lock twice, pins the driver's module and takes a reference on its \
             registration around `got()` (the guarantees driver authors get: the module cannot \
             go while its callback runs), and offers to reschedule; the user side writes the slot \
             and reads the completion. That per-message work, against one system call, is what \
             bounds the ratio.\n",
            us(i.p50_ns),
            us(b.p50_ns),
            us(per_call_in_batch as u64),
            i.p50_ns as f64 / per_call_in_batch,
        );
        let big = (r.call("ioctl", 4096), r.call("isc", 4096));
        let copies = match big {
            (Some(i4), Some(k4)) => format!(
                " From 16 B to 4 KiB the ioctl's latency grows {:.1}x and ISC's {:.1}x: the ioctl \
                 copies the message in and the reply out of user memory (`copy_from_user`, \
                 `copy_to_user`), ISC copies between kernel mappings of the shared region. Under \
                 TCG, user-memory copies are much slower relative to other work than on hardware, \
                 so the gap at 4 KiB is larger here than it would be on a real CPU.",
                i4.p50_ns as f64 / i.p50_ns as f64,
                k4.p50_ns as f64 / k.p50_ns as f64
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "- **Call latency.** A single ISC call is one system call (KICK) like an ioctl; the \
             ioctl copies its argument struct, the message and the reply through user memory and \
             writes the result code back, while ISC's message and reply stay in the shared slot \
             and the cost moves to the ring work (publishing with a release store and a full \
             fence, validating the slot, the bounce-buffer copies, the callback pinning above). \
             Measured at 16 B: {} against {}, {:.2}x; the two are close, and on this noisy host \
             the verdict can flip between runs.{copies}\n",
            us(k.p50_ns),
            us(i.p50_ns),
            k.p50_ns as f64 / i.p50_ns as f64
        );
    }
    if let (Some(p), Some(n)) = (r.notification("isc"), r.notification("netlink")) {
        let _ = writeln!(
            s,
            "- **Posts.** Per event, a netlink multicast allocates and fills a socket buffer, \
             queues it on each listener and costs the listener one `recv`; an ISC post copies 16 \
             bytes into the shared ring and the receiver reads whatever is there without a system \
             call. In the bursts this shows directly: raising costs {} against {} per event, \
             receiving {} against {}. Streaming to a receiver on another CPU adds wake-ups, and \
             under TCG on a shared host a cross-CPU wake-up of an idle vCPU takes from tens of \
             microseconds to milliseconds, far more than either pathway's own work. A receiver \
             that is faster than its producer empties its queue, sleeps and pays that wake-up \
             again: the raw ISC receiver took {:.0} events per wake-up, netlink's one `recv` \
             per event ({:.1}), and the streaming ratio ({}) reflects how wake-ups fell on this \
             run more than the pathways' costs. (The facade's `recv` does more work per event \
             than the producer, so its ring never empties and it rarely sleeps.)\n",
            us(p.burst_produce_ns as u64),
            us(n.burst_produce_ns as u64),
            us(p.burst_consume_ns as u64),
            us(n.burst_consume_ns as u64),
            p.events_per_receive,
            n.events_per_receive,
            r.stream_vs_netlink("isc")
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_default(),
        );
    }
    s
}

const NOTES: &str = "## Notes and limits\n\n\
- Every pathway is one thread on each side; none is tuned beyond its usual use (no `recvmmsg`, \
  no `io_uring`, default socket buffers; the char device's read buffer holds 256 records).\n\
- The file-based pathways keep their request and reply in a per-open buffer (sysfs: one per \
  device); the ioctl passes a pointer and a length; netlink allocates a reply message; ISC replies \
  in place in the shared slot.\n\
- The ISC raw endpoint (`isc-transport-dev`) is the lowest layer; the facade rows (`isc::Channel`) \
  are what an application normally uses and add its locking and bookkeeping.\n\
- The queue depth is about the same everywhere: 256 records in the char device's FIFO and in the \
  ISC ring, the default netlink receive buffer (about 280 small messages).\n";

// ------------------------------------------------------------------ chart

/// A categorical axis of `n` rows, row 0 at the top; values are row
/// positions (row `i` spans `i..i+1`).
struct Rows(usize);

impl Ranged for Rows {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = v / self.0.max(1) as f64;
        // limit.0 is the bottom for a y axis: row 0 goes to the top.
        limit.1 + ((limit.0 - limit.1) as f64 * frac).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.0 as f64
    }
}

impl ValueFormatter<f64> for Rows {
    fn format_ext(&self, v: &f64) -> String {
        format!("{v}")
    }
}

/// One bar: row, slot within the row, value, colour index.
struct Bar {
    row: usize,
    slot: usize,
    value: f64,
}

const COLORS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// A horizontal bar panel on a log axis with a reference line at 1.
fn bar_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    rows: &[String],
    legend: &[String],
    bars: &[Bar],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Debug| anyhow!("drawing the chart: {e:?}");
    let values: Vec<f64> = bars.iter().map(|b| b.value).collect();
    let lo = values.iter().copied().fold(1.0f64, f64::min);
    let hi = values.iter().copied().fold(1.0f64, f64::max);
    let lo = 10f64.powf((lo * 0.8).log10().floor());
    let hi = 10f64.powf((hi * 1.6).log10().ceil());
    let n = rows.len();
    let slots = legend.len().max(1);
    // The legend goes in a strip of its own under the chart, one line.
    let (w, h) = area.dim_in_pixel();
    let (plot, strip) = area.split_vertically(h.saturating_sub(26));
    let item = (w as i32 - 230) / slots as i32;
    for (k, name) in legend.iter().enumerate() {
        let x = 225 + item * k as i32;
        let color = COLORS[k % COLORS.len()];
        strip
            .draw(&Rectangle::new([(x, 6), (x + 14, 18)], color.filled()))
            .map_err(|e| err(&e))?;
        strip
            .draw(&Text::new(
                name.clone(),
                (x + 20, 12),
                TextStyle::from(("sans-serif", 15).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(|e| err(&e))?;
    }
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(215)
        .build_cartesian_2d((lo..hi).log_scale(), Rows(n))
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = rows.to_vec();
    let fmt_row = move |v: &f64| labels.get(*v as usize).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&fmt_row)
        .x_desc(x_desc)
        .x_label_formatter(&|v: &f64| format!("{v}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| err(&e))?;
    let band = 0.8 / slots as f64;
    for k in 0..slots {
        let color = COLORS[k % COLORS.len()];
        let mine: Vec<&Bar> = bars.iter().filter(|b| b.slot == k).collect();
        chart
            .draw_series(mine.iter().map(|b| {
                let y0 = b.row as f64 + 0.1 + band * b.slot as f64;
                Rectangle::new([(lo, y0), (b.value, y0 + band * 0.9)], color.filled())
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(mine.iter().map(|b| {
                let y = b.row as f64 + 0.1 + band * (b.slot as f64 + 0.45);
                Text::new(
                    format!("{:.2}", b.value),
                    (b.value * 1.06, y),
                    TextStyle::from(("sans-serif", 13).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Renders the chart: call throughput and call latency against ioctl, and
/// notifications against netlink multicast.
pub fn render_svg(r: &Results) -> Result<String> {
    let pathways = r.call_pathways();
    if pathways.is_empty() || r.notify.is_empty() {
        bail!("nothing to chart");
    }
    let size_legend: Vec<String> = SIZES.iter().map(|s| size_name(*s)).collect();
    let mut thr = Vec::new();
    let mut lat = Vec::new();
    for (row, (key, _)) in pathways.iter().enumerate() {
        for (slot, size) in SIZES.iter().enumerate() {
            if let Some(x) = r.thr_vs_ioctl(key, *size) {
                thr.push(Bar {
                    row,
                    slot,
                    value: x,
                });
            }
            if let Some(x) = r.lat_vs_ioctl(key, *size) {
                lat.push(Bar {
                    row,
                    slot,
                    value: x,
                });
            }
        }
    }
    let rows: Vec<String> = pathways.iter().map(|(_, l)| l.clone()).collect();
    let nrows: Vec<String> = r.notify.iter().map(|n| n.label.clone()).collect();
    let mut notif = Vec::new();
    if let Some(nl) = r.notification("netlink") {
        for (row, n) in r.notify.iter().enumerate() {
            let values = [
                r.burst_vs_netlink(&n.pathway),
                r.stream_vs_netlink(&n.pathway),
                Some(n.p50_ns as f64 / nl.p50_ns as f64),
            ];
            for (slot, v) in values.into_iter().enumerate() {
                if let Some(value) = v {
                    notif.push(Bar { row, slot, value });
                }
            }
        }
    }
    let kernel = text(&r.machine, "kernel");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 1320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let (top, rest) = root.split_vertically(500);
        let (mid, bottom) = rest.split_vertically(500);
        bar_panel(
            &top,
            &format!(
                "Echo call throughput relative to one ioctl per call (Linux {kernel}, qemu TCG)"
            ),
            "calls/s ÷ ioctl's calls/s at the same size (log scale; right of 1 is faster)",
            &rows,
            &size_legend,
            &thr,
        )?;
        bar_panel(
            &mid,
            "Echo call latency (p50) relative to ioctl",
            "p50 ÷ ioctl's p50 at the same size (log scale; left of 1 is faster; ISC 32/KICK: one batch)",
            &rows,
            &size_legend,
            &lat,
        )?;
        bar_panel(
            &bottom,
            "Notifications relative to generic netlink multicast",
            "ratio to netlink's (log scale; events/s: right of 1 is faster; latency: left of 1 is faster)",
            &nrows,
            &[
                "events/s, bursts".to_string(),
                "events/s, streaming".to_string(),
                "p50 latency".to_string(),
            ],
            &notif,
        )?;
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small set of results in the runner's format.
    fn fixture(isc_batch_rate: f64, isc_post_rate: f64, isc_p50: u64) -> Results {
        let mut records = vec![json!({
            "kind": "machine", "kernel": "6.12.0-test", "cpu": "QEMU TCG CPU", "cpus": 2,
            "clocksource": "tsc", "plan": "quick", "rounds": 1, "lat_calls": 200,
            "thr_calls": 1000, "evt_lat": 100, "evt_gap_us": 300, "evt_thr": 2000,
            "windows": 20, "event_window": 500, "burst_blocks": 5,
        })];
        let cells: [(&str, &str, f64, u64, u64); 3] = [
            ("ioctl", "ioctl, one per call", 100_000.0, 10_000, 1),
            ("isc", "ISC, one call per KICK", 90_000.0, isc_p50, 1),
            (
                "isc_batch",
                "ISC, 32 calls per KICK",
                isc_batch_rate,
                40_000,
                32,
            ),
        ];
        for size in SIZES {
            for (p, label, rate, p50, per_op) in cells {
                records.push(json!({
                    "kind": "call", "pathway": p, "label": label, "size": size,
                    "calls_per_op": per_op,
                    "lat_ns": {"p50": p50 + size, "p99": 3 * p50, "samples": 200},
                    "calls_per_s": rate / (1.0 + size as f64 / 4096.0),
                    "calls_per_s_windows": [rate / (1.0 + size as f64 / 4096.0)],
                }));
            }
            let sysfs = if size > 4087 {
                json!({"kind": "call", "pathway": "sysfs", "label": "sysfs attribute",
                       "size": size, "unsupported": "a sysfs read returns at most PAGE_SIZE - 1 bytes"})
            } else {
                json!({"kind": "call", "pathway": "sysfs", "label": "sysfs attribute",
                       "size": size, "calls_per_op": 1,
                       "lat_ns": {"p50": 30_000, "p99": 60_000, "samples": 200},
                       "calls_per_s": 30_000.0, "calls_per_s_windows": [30_000.0]})
            };
            records.push(sysfs);
        }
        for (p, label, rate, p50) in [
            ("chardev", "char device blocking read", 400_000.0, 20_000),
            ("netlink", "generic netlink multicast", 100_000.0, 30_000),
            ("isc", "ISC post, raw endpoint", isc_post_rate, 25_000),
        ] {
            records.push(json!({
                "kind": "notify", "pathway": p, "label": label,
                "lat_ns": {"p50": p50, "p99": 2 * p50, "samples": 100},
                "events_per_s": rate / 2.0, "events_per_s_runs": [rate / 2.0],
                "events_per_receive": 3.5,
                "queue_full_retries": 7,
                "burst": 128,
                "burst_events_per_s": rate,
                "burst_events_per_s_blocks": [rate, rate * 1.1, rate * 0.9],
                "burst_produce_ns": 1e9 / rate / 2.0,
                "burst_consume_ns": 1e9 / rate / 2.0,
            }));
        }
        records.push(json!({"kind": "done", "elapsed_s": 12.5}));
        Results::from_records(
            json!({"cpu": "Host CPU", "cpus": 2, "qemu": "QEMU 8"}),
            &records,
        )
        .unwrap()
    }

    #[test]
    fn targets_are_judged_from_the_ratios() {
        let t = targets(&fixture(1_200_000.0, 600_000.0, 9_000));
        assert_eq!(t.len(), 4);
        assert!((t[0].ratio - 12.0).abs() < 1e-9 && t[0].met);
        // Bursts: paired blocks (1, 1.1, 0.9 times the rate on both sides).
        assert!((t[1].ratio - 6.0).abs() < 1e-9 && t[1].met);
        assert!((t[2].ratio - 6.0).abs() < 1e-9 && t[2].met);
        assert!(t[3].met, "{t:?}");
        let t = targets(&fixture(900_000.0, 400_000.0, 11_000));
        assert!(t.iter().all(|t| !t.met), "{t:?}");
        assert!(t[0].verdict().starts_with("MISSED (9.00x"));
        // Equal latency meets "<=".
        assert!(targets(&fixture(1.0e6, 1.0e5, 10_000))[3].met);
    }

    #[test]
    fn ratios_pair_samples_taken_together() {
        // A drift that halves everything in the second window cancels out.
        assert_eq!(
            paired_ratio(&[10.0, 5.0, 10.0], &[1.0, 0.5, 1.0], 10.0, 1.0),
            10.0
        );
        // Medians of the ratios, not ratios of the medians.
        assert_eq!(
            paired_ratio(&[4.0, 1.0, 3.0], &[1.0, 1.0, 1.0], 0.0, 0.0),
            3.0
        );
        // Unpaired samples fall back to the medians given.
        assert_eq!(paired_ratio(&[1.0, 2.0], &[1.0], 6.0, 2.0), 3.0);
        assert_eq!(paired_ratio(&[], &[], 6.0, 3.0), 2.0);
    }

    #[test]
    fn page_has_every_table_and_says_what_was_missed() {
        let md = render_markdown(&fixture(900_000.0, 600_000.0, 9_000));
        for needle in [
            "## Targets",
            "| ISC with 32 calls per KICK makes >= 10x the calls per second of one ioctl per call, at 16 B | 9.00x",
            "| **missed** |",
            "### 16 B",
            "### 256 B",
            "### 4 KiB",
            "| sysfs attribute | n/a: a sysfs read returns at most PAGE_SIZE - 1 bytes |",
            "| ISC post, raw endpoint | 600.0 k | 6.00 |",
            "emulated",
            "![",
            "pathways.svg",
            "**sysfs attribute.**",
            "**generic netlink.**",
            "QEMU 8",
            "6.12.0-test",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        // The ratio column is relative to ioctl at the same size.
        assert!(
            md.contains("| ioctl, one per call | 99.6 k | 1.00 | 10.0 µs | 30.0 µs | 1.00 |"),
            "{md}"
        );
    }

    /// The text items of an SVG document.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn chart_has_a_bar_per_measured_cell() {
        let r = fixture(1_200_000.0, 600_000.0, 9_000);
        let svg = render_svg(&r).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        let texts = svg_texts(&svg);
        for label in [
            "ioctl, one per call",
            "ISC, 32 calls per KICK",
            "sysfs attribute",
            "ISC post, raw endpoint",
            "16 B",
            "4 KiB",
        ] {
            assert!(texts.iter().any(|t| t == label), "{label} not in {texts:?}");
        }
        // The batched throughput ratio at 16 B is printed next to its bar.
        assert!(texts.iter().any(|t| t == "12.00"), "{texts:?}");
        // A value label per bar: 3 pathways at 3 sizes and sysfs at 2, for
        // throughput and for latency; 3 per notification pathway.
        let values = texts
            .iter()
            .filter(|t| {
                t.split_once('.').is_some_and(|(a, b)| {
                    b.len() == 2 && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
                })
            })
            .count();
        assert_eq!(values, 2 * (3 * 3 + 2) + 3 * 3, "{texts:?}");
        // One filled bar per value (plus the background and legend swatches).
        assert!(svg.matches("<rect").count() >= values);
    }

    #[test]
    fn saved_results_round_trip_and_bad_ones_fail() {
        let r = fixture(1.0e6, 1.0e5, 10_000);
        let again = Results::from_json(&r.to_json()).unwrap();
        assert_eq!(again.calls, r.calls);
        assert_eq!(again.notify, r.notify);
        let mut v = r.to_json();
        // Without the ioctl rows no target can be judged: refused.
        let recs: Vec<Value> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["pathway"] != "ioctl")
            .cloned()
            .collect();
        v["records"] = Value::Array(recs);
        assert!(Results::from_json(&v).is_err());
        assert!(Results::from_json(&json!({"records": [{"kind": "call"}]})).is_err());
    }
}
