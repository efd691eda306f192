//! Reading the guest's console: markers, test summaries, the kernel log.
//!
//! The guest brackets each program's output with `@@ISC-BEGIN <name>` and
//! `@@ISC-END <name> <exit status>`, followed by `@@ISC-RESULT <name>
//! pass|fail` (by exit status, for other readers); infrastructure steps print
//! `@@ISC-CHECK <name> pass|fail`; the kernel log comes between
//! `@@ISC-DMESG-BEGIN` and `@@ISC-DMESG-END`, and `@@ISC-DONE` ends the run.
//! Passes and failures are counted here from the programs' own output
//! (libtest summaries, the C test's `ok`/`FAIL` lines), so a crashed or
//! silent program is a failure even if it exited 0.

use crate::modules::Modules;
use crate::payload::{GuestProgram, Kind};
use crate::qemu::Run;
use std::time::Duration;

/// Kernel log lines that fail the run wherever they appear.
pub const KERNEL_RED_FLAGS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "lockdep",
    "possible circular locking",
    "KASAN",
    "UBSAN",
    "Call Trace",
];

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
            vec![format!("no {series} cloud kernel image with headers")],
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

/// Parses a guest run into outcomes.
pub fn parse(
    series: &str,
    release: &str,
    run: &Run,
    mods: &Modules,
    programs: &[GuestProgram],
) -> KernelSummary {
    let lines = &run.lines;
    let mut outcomes = vec![Outcome::check(
        "modules built",
        mods.problem.is_none(),
        mods.problem.iter().cloned().collect(),
    )];
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
            let mut seen = false;
            for l in body {
                if let Some((pass, fail)) = libtest_summary(l) {
                    seen = true;
                    o.passed += pass;
                    o.failed += fail;
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

/// `(passed, failed)` from a libtest `test result:` line.
fn libtest_summary(line: &str) -> Option<(u32, u32)> {
    let rest = &line[line.find("test result: ")? + "test result: ".len()..];
    let count = |what: &str| -> Option<u32> {
        let i = rest.find(what)?;
        rest[..i]
            .split([' ', ';', '.'])
            .rfind(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    Some((count(" passed")?, count(" failed")?))
}

fn kernel_log_outcome(lines: &[String]) -> Outcome {
    let begin = lines.iter().position(|l| l.contains("@@ISC-DMESG-BEGIN"));
    let end = lines.iter().position(|l| l.contains("@@ISC-DMESG-END"));
    // Without the dumped log (crash, hang), judge the whole console.
    let (scope, whole) = match (begin, end) {
        (Some(b), Some(e)) if b < e => (&lines[b + 1..e], false),
        _ => (lines, true),
    };
    let flagged: Vec<String> = scope
        .iter()
        .filter(|l| KERNEL_RED_FLAGS.iter().any(|f| l.contains(f)))
        .take(20)
        .map(|l| format!("| {l}"))
        .collect();
    let mut detail = flagged.clone();
    if whole {
        detail.insert(0, "no kernel log dump: judged the console".into());
    }
    Outcome::check("kernel log clean", flagged.is_empty() && !whole, detail)
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
        }
    }

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn libtest_summaries() {
        assert_eq!(
            libtest_summary("test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some((12, 0))
        );
        assert_eq!(
            libtest_summary("test result: FAILED. 1 passed; 2 failed; 0 ignored"),
            Some((1, 2))
        );
        assert_eq!(libtest_summary("running 3 tests"), None);
    }

    fn sample_run(device_body: &str, dmesg: &str) -> Run {
        let text = format!(
            "@@ISC-BOOT 6.1.0\n@@ISC-CHECK insmod:isc.ko pass\n@@ISC-CHECK insmod:isc_sample.ko fail\n\
             @@ISC-BEGIN dev/device\n{device_body}\n@@ISC-END dev/device 0\n\
             @@ISC-BEGIN hostile\nok 1 mmap\nFAIL 2 kick\nok 3 bind\n@@ISC-END hostile 1\n\
             @@ISC-BEGIN bench\nratio: 9.5\n@@ISC-END bench 0\n\
             @@ISC-DMESG-BEGIN\n{dmesg}\n@@ISC-DMESG-END\n@@ISC-DONE\n"
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
        let s = parse("6.1", "r", &run, &Modules::default(), &programs());
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
        let s = parse("6.1", "r", &run, &Modules::default(), &programs());
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
        let s = parse("6.1", "r", &run, &Modules::default(), &programs());
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
            let s = parse("6.1", "r", &run, &Modules::default(), &programs());
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
        let s = parse("6.1", "r", &run, &Modules::default(), &programs());
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
}
