//! Reading the guest's console: markers, test summaries, the kernel log.
//!
//! The guest brackets each program's output with `@@ISC-BEGIN <name>` and
//! `@@ISC-END <name> <exit status>`, followed by `@@ISC-RESULT <name>
//! pass|fail` (by exit status, for other readers); infrastructure steps print
//! `@@ISC-CHECK <name> pass|fail`; the kernel log comes between
//! `@@ISC-DMESG-BEGIN` and `@@ISC-DMESG-END`, kmemleak's report (debug
//! kernel) between `@@ISC-KMEMLEAK-BEGIN` and `@@ISC-KMEMLEAK-END`, and
//! `@@ISC-DONE` ends the run.
//! Passes and failures are counted here from the programs' own output
//! (libtest summaries, the C test's `ok`/`FAIL` lines), so a crashed or
//! silent program is a failure even if it exited 0, and so is a test binary
//! that ran no test (all of them ignored or filtered out).

use crate::modules::Modules;
use crate::payload::{GuestProgram, Kind, Payload};
use crate::qemu::Run;
use std::time::Duration;

/// Kernel log lines that fail the run wherever they appear. The release
/// kernels can print only some of them; the debug kernel (KASAN, UBSAN,
/// lockdep, kmemleak, KFENCE, debug objects, list debugging) all.
pub const KERNEL_RED_FLAGS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    // lockdep's reports (not its banner, "RCU lockdep checking is enabled").
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "lock inversion",
    "DEBUG_LOCKS_WARN_ON",
    "turning off the locking correctness validator",
    "non-static key",
    "KASAN",
    "UBSAN",
    "KFENCE:",
    "Call Trace",
    "suspected memory leak",
    "refcount_t:",
    "list_add corruption",
    "list_del corruption",
    "ODEBUG:",
    "INFO: task",
    "Poison overwritten",
    "Redzone",
];

/// A kmemleak report line that fails the run.
pub const KMEMLEAK_FLAG: &str = "unreferenced object";

/// The result of one program or check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What ran.
    pub name: String,
    /// Tests (or checks) passed.
    pub passed: u32,
    /// Tests (or checks) failed.
    pub failed: u32,
    /// Why it failed, or extra information.
    pub detail: Vec<String>,
}

impl Outcome {
    fn check(name: &str, ok: bool, detail: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            passed: ok.into(),
            failed: (!ok).into(),
            detail,
        }
    }
}

/// Everything about one kernel's run.
#[derive(Clone, Debug, Default)]
pub struct KernelSummary {
    /// `6.1` or `6.12`.
    pub series: String,
    /// The release booted (empty if none).
    pub release: String,
    /// Per program and check.
    pub outcomes: Vec<Outcome>,
    /// Sum of passes.
    pub passed: u32,
    /// Sum of failures.
    pub failed: u32,
    /// Time spent on this kernel (build, pack, boot).
    pub runtime: Option<Duration>,
}

impl KernelSummary {
    fn from_outcomes(series: &str, release: &str, outcomes: Vec<Outcome>) -> Self {
        Self {
            series: series.to_string(),
            release: release.to_string(),
            passed: outcomes.iter().map(|o| o.passed).sum(),
            failed: outcomes.iter().map(|o| o.failed).sum(),
            outcomes,
            runtime: None,
        }
    }

    /// A kernel series that is not installed: one failure.
    pub fn missing(series: &str) -> Self {
        let o = Outcome::check(
            "kernel installed",
            false,
            vec![if series == crate::kernels::DEBUG_SERIES {
                "the debug kernel is not available (see above)".to_string()
            } else {
                format!("no {series} cloud kernel image with headers")
            }],
        );
        Self::from_outcomes(series, "", vec![o])
    }

    /// A run that could not happen: one failure.
    pub fn error(series: &str, release: &str, msg: &str) -> Self {
        let o = Outcome::check("guest run", false, vec![msg.to_string()]);
        Self::from_outcomes(series, release, vec![o])
    }

    /// With the time it took.
    pub fn with_runtime(mut self, d: Duration) -> Self {
        self.runtime = Some(d);
        self
    }

    /// `kernel 6.1 (release): N passed, M failed in Xs`.
    pub fn one_line(&self) -> String {
        let rt = self
            .runtime
            .map(|d| format!(" in {:.0?}", d))
            .unwrap_or_default();
        let rel = if self.release.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.release)
        };
        format!(
            "kernel {}{rel}: {} passed, {} failed{rt}",
            self.series, self.passed, self.failed
        )
    }

    /// Prints every outcome and the kernel's totals.
    pub fn print(&self) {
        for o in &self.outcomes {
            let status = if o.failed == 0 { "ok  " } else { "FAIL" };
            println!(
                "   {status} {} ({} passed, {} failed)",
                o.name, o.passed, o.failed
            );
            for d in &o.detail {
                println!("        {d}");
            }
        }
        println!("   {}", self.one_line());
    }
}

/// Finds `@@ISC-<tag> ` in a line (markers may follow unterminated output).
fn marker<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let needle = format!("@@ISC-{tag} ");
    line.find(&needle).map(|i| line[i + needle.len()..].trim())
}

/// What one guest run was asked to do.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The modules built for the kernel.
    pub mods: &'a Modules,
    /// The programs (and the entries that could not be built).
    pub payload: &'a Payload,
    /// The debug kernel: kmemleak's report must be there and clean.
    pub debug: bool,
}

/// Parses a guest run into outcomes.
pub fn parse(series: &str, release: &str, run: &Run, expect: Expect<'_>) -> KernelSummary {
    let (mods, programs) = (expect.mods, &expect.payload.programs);
    let lines = &run.lines;
    let mut outcomes = vec![Outcome::check(
        "modules built",
        mods.problem.is_none(),
        mods.problem.iter().cloned().collect(),
    )];
    // An entry that names a missing test, example or source is a failure,
    // never a silent skip.
    for m in &expect.payload.missing {
        outcomes.push(Outcome::check(
            &format!("entry {}", m.entry),
            false,
            vec![format!("missing: {}", m.reason)],
        ));
    }
    let booted = lines.iter().any(|l| marker(l, "BOOT").is_some());
    outcomes.push(Outcome::check(
        "guest booted",
        booted,
        if booted { Vec::new() } else { tail(lines, 10) },
    ));
    for l in lines {
        if let Some(rest) = marker(l, "CHECK") {
            let (name, verdict) = rest.rsplit_once(' ').unwrap_or((rest, ""));
            outcomes.push(Outcome::check(name, verdict == "pass", Vec::new()));
        }
    }
    for p in programs {
        outcomes.push(program_outcome(p, lines));
    }
    outcomes.push(kernel_log_outcome(lines));
    if expect.debug {
        outcomes.push(kmemleak_outcome(lines));
    }
    let done = lines.iter().any(|l| l.contains("@@ISC-DONE"));
    let mut detail = Vec::new();
    if run.timed_out {
        detail.push(format!("killed after {:.0?}", run.elapsed));
    }
    if !done {
        detail.extend(tail(lines, 10));
    }
    outcomes.push(Outcome::check(
        "guest finished",
        done && !run.timed_out,
        detail,
    ));
    KernelSummary::from_outcomes(series, release, outcomes)
}

fn tail(lines: &[String], n: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("| {l}"))
        .collect()
}

/// The lines between `@@ISC-BEGIN name` and `@@ISC-END name rc`, and rc.
fn section<'a>(lines: &'a [String], name: &str) -> Option<(&'a [String], Option<i32>)> {
    let begin = lines
        .iter()
        .position(|l| marker(l, "BEGIN").is_some_and(|n| n == name))?;
    let body = &lines[begin + 1..];
    let end = body.iter().position(|l| {
        marker(l, "END").is_some_and(|r| r.rsplit_once(' ').is_some_and(|(n, _)| n == name))
    });
    match end {
        Some(e) => {
            let rc = marker(&body[e], "END")
                .and_then(|r| r.rsplit_once(' '))
                .and_then(|(_, rc)| rc.parse().ok());
            // A marker that followed unterminated output shares its line.
            Some((&body[..e], rc))
        }
        None => Some((body, None)),
    }
}

fn program_outcome(p: &GuestProgram, lines: &[String]) -> Outcome {
    let mut o = Outcome::check(&p.name, false, Vec::new());
    o.failed = 0;
    let Some((body, rc)) = section(lines, &p.name) else {
        o.failed = 1;
        o.detail.push("did not run".into());
        return o;
    };
    let Some(rc) = rc else {
        o.failed = 1;
        o.detail
            .push("did not finish (guest crashed or timed out)".into());
        o.detail.extend(tail(body, 10));
        return o;
    };
    match p.kind {
        Kind::RustTests => {
            let (mut seen, mut ignored) = (false, 0);
            for l in body {
                if let Some(s) = libtest_summary(l) {
                    seen = true;
                    o.passed += s.passed;
                    o.failed += s.failed;
                    ignored += s.ignored;
                }
                let t = l.trim();
                if t.starts_with("test ") && t.ends_with("FAILED") {
                    o.detail.push(t.to_string());
                }
            }
            if !seen || (rc != 0 && o.failed == 0) {
                o.failed += 1;
                o.detail
                    .push(format!("exit status {rc} without a passing summary"));
                o.detail.extend(tail(body, 15));
            } else if o.passed + o.failed == 0 {
                // Every test ignored or filtered out: nothing was tested.
                o.failed += 1;
                o.detail.push(format!("no test ran ({ignored} ignored)"));
            } else if o.failed > 0 {
                o.detail.extend(failure_excerpt(body));
            }
        }
        Kind::CTest => {
            for l in body {
                let t = l.trim_start();
                if t.starts_with("FAIL") || t.starts_with("not ok") {
                    o.failed += 1;
                    o.detail.push(t.to_string());
                } else if t.starts_with("ok") {
                    o.passed += 1;
                }
            }
            if o.passed + o.failed == 0 || (rc != 0 && o.failed == 0) {
                o.failed += 1;
                o.detail.push(format!("exit status {rc}"));
                o.detail.extend(tail(body, 15));
            }
        }
        Kind::Program | Kind::Bench => {
            if rc == 0 {
                o.passed = 1;
            } else {
                o.failed = 1;
                o.detail.push(format!("exit status {rc}"));
                o.detail.extend(tail(body, 15));
            }
            if p.kind == Kind::Bench {
                o.detail
                    .extend(body.iter().filter(|l| !l.trim().is_empty()).cloned());
            }
        }
    }
    o
}

/// The panic messages of failed Rust tests, briefly: each `panicked at`
/// line with the message line after it, and assertion operands.
fn failure_excerpt(body: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, l) in body.iter().enumerate() {
        let t = l.trim();
        if t.contains("panicked at") {
            out.push(format!("| {t}"));
            if let Some(msg) = body.get(i + 1) {
                out.push(format!("|   {}", msg.trim()));
            }
        } else if t.starts_with("left:") || t.starts_with("right:") {
            out.push(format!("|   {t}"));
        }
        if out.len() >= 16 {
            break;
        }
    }
    out
}

/// The counts of a libtest `test result:` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LibtestSummary {
    passed: u32,
    failed: u32,
    ignored: u32,
}

/// The counts of a libtest `test result:` line (`ignored` is 0 if absent).
fn libtest_summary(line: &str) -> Option<LibtestSummary> {
    let rest = &line[line.find("test result: ")? + "test result: ".len()..];
    let count = |what: &str| -> Option<u32> {
        let i = rest.find(what)?;
        rest[..i]
            .split([' ', ';', '.'])
            .rfind(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    Some(LibtestSummary {
        passed: count(" passed")?,
        failed: count(" failed")?,
        ignored: count(" ignored").unwrap_or(0),
    })
}

/// True for a console line the kernel printed (`[   12.345678] ...`).
fn is_kernel_line(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('[') else {
        return false;
    };
    rest.split_once(']').is_some_and(|(stamp, _)| {
        let stamp = stamp.trim();
        !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// The kernel log: the dump after the tests, which must reach back to boot
/// (a wrapped buffer could have lost a report), and every kernel line the
/// console showed meanwhile.
fn kernel_log_outcome(lines: &[String]) -> Outcome {
    let begin = lines.iter().position(|l| l.contains("@@ISC-DMESG-BEGIN"));
    let end = lines.iter().position(|l| l.contains("@@ISC-DMESG-END"));
    // Without the dumped log (crash, hang), judge the whole console.
    let (scope, whole) = match (begin, end) {
        (Some(b), Some(e)) if b < e => (&lines[b + 1..e], false),
        _ => (lines, true),
    };
    // Kernel lines on the console before the dump (the dump repeats them).
    let before_dump = &lines[..begin.unwrap_or(lines.len())];
    let console = before_dump.iter().filter(|l| is_kernel_line(l));
    let flagged: Vec<String> = scope
        .iter()
        .chain(
            if whole { None } else { Some(console) }
                .into_iter()
                .flatten(),
        )
        .filter(|l| KERNEL_RED_FLAGS.iter().any(|f| l.contains(f)))
        .take(20)
        .map(|l| format!("| {l}"))
        .collect();
    let mut detail = flagged.clone();
    if whole {
        detail.insert(0, "no kernel log dump: judged the console".into());
    }
    let complete = whole
        || scope
            .iter()
            .find(|l| is_kernel_line(l))
            .is_some_and(|l| l.contains("[    0.000000]"));
    if !complete {
        detail.insert(
            0,
            "the kernel log dump does not reach back to boot (buffer wrapped)".into(),
        );
    }
    Outcome::check(
        "kernel log clean",
        flagged.is_empty() && !whole && complete,
        detail,
    )
}

/// kmemleak's reports (after the tests, after unloading): present, and
/// without a leak.
fn kmemleak_outcome(lines: &[String]) -> Outcome {
    let mut reports = 0;
    let mut leaks = 0;
    let mut detail = Vec::new();
    let mut inside: Option<String> = None;
    for l in lines {
        if let Some(rest) = l.split("@@ISC-KMEMLEAK-BEGIN").nth(1) {
            inside = Some(rest.trim().to_string());
            reports += 1;
        } else if l.contains("@@ISC-KMEMLEAK-END") {
            inside = None;
        } else if let Some(when) = &inside {
            if l.contains(KMEMLEAK_FLAG) {
                leaks += 1;
                detail.push(format!("{when}:"));
            }
            if leaks > 0 && detail.len() < 40 {
                detail.push(format!("| {l}"));
            }
        }
    }
    if reports == 0 {
        return Outcome::check("kmemleak clean", false, vec!["no kmemleak report".into()]);
    }
    if leaks > 0 {
        detail.insert(0, format!("{leaks} unreferenced object(s)"));
    }
    Outcome::check("kmemleak clean", leaks == 0, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(name: &str, kind: Kind) -> GuestProgram {
        GuestProgram {
            name: name.into(),
            host_path: "/h".into(),
            guest_path: "/g".into(),
            kind,
            args: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    fn parse_with(run: &Run, payload: &Payload, debug: bool) -> KernelSummary {
        let mods = Modules::default();
        parse(
            "6.1",
            "r",
            run,
            Expect {
                mods: &mods,
                payload,
                debug,
            },
        )
    }

    fn parse_plain(run: &Run) -> KernelSummary {
        parse_with(
            run,
            &Payload {
                programs: programs(),
                missing: Vec::new(),
            },
            false,
        )
    }

    fn outcome<'a>(s: &'a KernelSummary, name: &str) -> &'a Outcome {
        s.outcomes
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no outcome {name}: {:?}", s.outcomes))
    }

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn libtest_summaries() {
        assert_eq!(
            libtest_summary("test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some(LibtestSummary {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
        assert_eq!(
            libtest_summary("test result: FAILED. 1 passed; 2 failed; 0 ignored"),
            Some(LibtestSummary {
                passed: 1,
                failed: 2,
                ignored: 0
            })
        );
        assert_eq!(libtest_summary("running 3 tests"), None);
    }

    fn sample_run(device_body: &str, dmesg: &str) -> Run {
        let text = format!(
            "@@ISC-BOOT 6.1.0\n@@ISC-CHECK insmod:isc.ko pass\n@@ISC-CHECK insmod:isc_sample.ko fail\n\
             @@ISC-BEGIN dev/device\n{device_body}\n@@ISC-END dev/device 0\n\
             @@ISC-BEGIN hostile\nok 1 mmap\nFAIL 2 kick\nok 3 bind\n@@ISC-END hostile 1\n\
             @@ISC-BEGIN bench\nratio: 9.5\n@@ISC-END bench 0\n\
             @@ISC-DMESG-BEGIN\n[    0.000000] Linux version 6.1.0\n{dmesg}\n@@ISC-DMESG-END\n@@ISC-DONE\n"
        );
        Run {
            lines: lines(&text),
            elapsed: Duration::from_secs(5),
            timed_out: false,
        }
    }

    fn programs() -> Vec<GuestProgram> {
        vec![
            prog("dev/device", Kind::RustTests),
            prog("hostile", Kind::CTest),
            prog("bench", Kind::Bench),
        ]
    }

    #[test]
    fn counts_every_kind() {
        let run = sample_run(
            "running 2 tests\ntest a ... ok\ntest b ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored",
            "[    0.1] isc: loaded",
        );
        let s = parse_plain(&run);
        let get = |n: &str| s.outcomes.iter().find(|o| o.name == n).unwrap().clone();
        assert_eq!((get("dev/device").passed, get("dev/device").failed), (2, 0));
        assert_eq!((get("hostile").passed, get("hostile").failed), (2, 1));
        assert_eq!((get("bench").passed, get("bench").failed), (1, 0));
        assert!(get("bench").detail.contains(&"ratio: 9.5".to_string()));
        assert_eq!(get("insmod:isc.ko").passed, 1);
        assert_eq!(get("insmod:isc_sample.ko").failed, 1);
        assert_eq!(get("kernel log clean").failed, 0);
        assert_eq!(get("guest finished").passed, 1);
        // Modules::default() has no problem recorded: counted as built.
        assert_eq!(get("modules built").passed, 1);
        assert_eq!(s.failed, 2);
    }

    #[test]
    fn failures_show_the_panic_message() {
        let run = sample_run(
            "test a ... FAILED\n\
             thread 'a' panicked at t.rs:3:5:\n\
             assertion `left == right` failed\n  left: 1\n right: 2\n\
             test result: FAILED. 0 passed; 1 failed; 0 ignored",
            "",
        );
        let s = parse_plain(&run);
        let dev = s.outcomes.iter().find(|o| o.name == "dev/device").unwrap();
        assert_eq!((dev.passed, dev.failed), (0, 1));
        assert!(dev
            .detail
            .iter()
            .any(|d| d.contains("assertion `left == right` failed")));
        assert!(dev.detail.iter().any(|d| d.contains("right: 2")));
    }

    #[test]
    fn a_crashed_test_binary_fails_even_with_partial_output() {
        let run = sample_run("running 2 tests\ntest a ... ok\n", "");
        let s = parse_plain(&run);
        let dev = s.outcomes.iter().find(|o| o.name == "dev/device").unwrap();
        assert_eq!(dev.failed, 1);
    }

    #[test]
    fn kernel_warnings_fail_the_run() {
        for flag in KERNEL_RED_FLAGS {
            let run = sample_run(
                "test result: ok. 1 passed; 0 failed;",
                &format!("[ 1.0] {flag} something at isc_kick+0x10"),
            );
            let s = parse_plain(&run);
            let log = s
                .outcomes
                .iter()
                .find(|o| o.name == "kernel log clean")
                .unwrap();
            assert_eq!(log.failed, 1, "{flag}");
        }
    }

    #[test]
    fn a_hung_guest_fails() {
        let mut run = sample_run("test result: ok. 1 passed; 0 failed;", "");
        run.lines.truncate(4);
        run.timed_out = true;
        let s = parse_plain(&run);
        let fin = s
            .outcomes
            .iter()
            .find(|o| o.name == "guest finished")
            .unwrap();
        assert_eq!(fin.failed, 1);
        let dev = s.outcomes.iter().find(|o| o.name == "dev/device").unwrap();
        assert_eq!(dev.failed, 1);
        let hostile = s.outcomes.iter().find(|o| o.name == "hostile").unwrap();
        assert_eq!(
            (hostile.failed, hostile.detail[0].as_str()),
            (1, "did not run")
        );
    }

    #[test]
    fn markers_after_unterminated_output() {
        assert_eq!(marker("partial@@ISC-END x 0", "END"), Some("x 0"));
        assert_eq!(marker("@@ISC-ENDX", "END"), None);
    }

    #[test]
    fn a_test_binary_that_ran_nothing_fails() {
        // Dropping --include-ignored turns every device test into an
        // ignored one: that is a failure, not a pass.
        let run = sample_run(
            "running 13 tests\ntest a ... ignored\n\
             test result: ok. 0 passed; 0 failed; 13 ignored; 0 measured; 0 filtered out",
            "",
        );
        let s = parse_plain(&run);
        let dev = outcome(&s, "dev/device");
        assert_eq!((dev.passed, dev.failed), (0, 1));
        assert!(
            dev.detail.iter().any(|d| d.contains("13 ignored")),
            "{dev:?}"
        );
        // All filtered out is the same.
        let run = sample_run(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out",
            "",
        );
        assert_eq!(outcome(&parse_plain(&run), "dev/device").failed, 1);
        // Some ignored next to tests that ran is fine.
        let run = sample_run("test result: ok. 4 passed; 0 failed; 2 ignored", "");
        let dev = outcome(&parse_plain(&run), "dev/device").clone();
        assert_eq!((dev.passed, dev.failed), (4, 0));
    }

    #[test]
    fn a_missing_entry_fails_the_run() {
        let run = sample_run("test result: ok. 1 passed; 0 failed;", "");
        let payload = Payload {
            programs: programs(),
            missing: vec![crate::payload::Missing {
                entry: "isc-transport-dev/device".into(),
                reason: "isc-transport-dev has no test target \"device\"".into(),
            }],
        };
        let s = parse_with(&run, &payload, false);
        let m = outcome(&s, "entry isc-transport-dev/device");
        assert_eq!((m.passed, m.failed), (0, 1));
        assert!(m.detail[0].contains("no test target"));
        // One failure more than the same run with nothing missing.
        assert_eq!(s.failed, parse_plain(&run).failed + 1);
    }

    #[test]
    fn kmemleak_is_judged_on_the_debug_kernel() {
        let with_report = |report: &str| {
            let mut run = sample_run("test result: ok. 1 passed; 0 failed;", "");
            let done = run.lines.len() - 1;
            let mut extra = vec!["@@ISC-KMEMLEAK-BEGIN".to_string()];
            extra.extend(lines(report));
            extra.push("@@ISC-KMEMLEAK-END".into());
            run.lines.splice(done..done, extra);
            run
        };
        let payload = Payload {
            programs: programs(),
            missing: Vec::new(),
        };
        let clean = parse_with(&with_report(""), &payload, true);
        assert_eq!(outcome(&clean, "kmemleak clean").failed, 0);
        let leak = parse_with(
            &with_report(
                "unreferenced object 0xffff888003a1c000 (size 64):\n  comm \"insmod\", pid 80\n  backtrace:\n    isc_bind+0x42/0x100 [isc]",
            ),
            &payload,
            true,
        );
        let k = outcome(&leak, "kmemleak clean");
        assert_eq!(k.failed, 1);
        assert!(k.detail.iter().any(|d| d.contains("isc_bind")));
        // The debug kernel must produce the report at all.
        let none = parse_with(
            &sample_run("test result: ok. 1 passed; 0 failed;", ""),
            &payload,
            true,
        );
        assert_eq!(outcome(&none, "kmemleak clean").failed, 1);
        // The release kernels have no kmemleak: no outcome.
        let release = parse_plain(&sample_run("test result: ok. 1 passed; 0 failed;", ""));
        assert!(release.outcomes.iter().all(|o| o.name != "kmemleak clean"));
    }

    #[test]
    fn debug_kernel_reports_are_red_flags() {
        // The first line of each checker's report, as the 6.12 kernel prints it.
        for line in [
            "[   12.1] BUG: KASAN: slab-use-after-free in isc_kick+0x3c/0x200 [isc]",
            "[   12.1] UBSAN: array-index-out-of-bounds in drivers/isc/isc_main.c:300:9",
            "[   12.1] WARNING: possible circular locking dependency detected",
            "[   12.1] WARNING: possible recursive locking detected",
            "[   12.1] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
            "[   12.1] BUG: KFENCE: out-of-bounds read in isc_post+0x1/0x2 [isc]",
            "[   12.1] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "[   12.1] ODEBUG: free active (active state 0) object: 0000 object type: hrtimer",
            "[   12.1] INFO: task hostile:91 blocked for more than 120 seconds.",
        ] {
            let run = sample_run("test result: ok. 1 passed; 0 failed;", line);
            assert_eq!(outcome(&parse_plain(&run), "kernel log clean").failed, 1, "{line}");
        }
    }

    #[test]
    fn a_wrapped_kernel_log_fails() {
        let mut run = sample_run(
            "test result: ok. 1 passed; 0 failed;",
            "[   12.0] isc: loaded",
        );
        let i = run
            .lines
            .iter()
            .position(|l| l.contains("Linux version"))
            .unwrap();
        run.lines.remove(i);
        let log = outcome(&parse_plain(&run), "kernel log clean").clone();
        assert_eq!(log.failed, 1);
        assert!(log.detail[0].contains("wrapped"), "{log:?}");
    }

    #[test]
    fn kernel_lines_on_the_console_count_too() {
        // A report the console showed in the middle of a program, even if
        // the dump after the tests no longer has it.
        let run = sample_run(
            "[   33.1] BUG: KASAN: use-after-free in isc_kick+0x1/0x2\ntest result: ok. 1 passed; 0 failed;",
            "",
        );
        assert_eq!(outcome(&parse_plain(&run), "kernel log clean").failed, 1);
        // Program output that merely mentions a flag is not a kernel line.
        let run = sample_run(
            "note: WARNING: not from the kernel\ntest result: ok. 1 passed; 0 failed;",
            "",
        );
        assert_eq!(outcome(&parse_plain(&run), "kernel log clean").failed, 0);
        assert!(is_kernel_line("[    0.000000] Linux version"));
        assert!(is_kernel_line("  [12.5] x"));
        assert!(!is_kernel_line("[ok] x"));
        assert!(!is_kernel_line("[] x"));
    }

    #[test]
    fn the_lockdep_banner_is_not_a_red_flag() {
        let run = sample_run(
            "test result: ok. 1 passed; 0 failed;",
            "[    0.000000] rcu: \tRCU lockdep checking is enabled.\n[    0.1] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
        );
        assert_eq!(outcome(&parse_plain(&run), "kernel log clean").failed, 0);
    }
}
