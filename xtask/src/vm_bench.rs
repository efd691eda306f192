//! `vm-bench`: the pathways benchmark (ISC against ioctl, a char device,
//! procfs, sysfs, debugfs and generic netlink) in one guest kernel.
//!
//! Builds the modules and the runner (`isc-benches`' `pathways` example),
//! boots one Debian cloud kernel with `clocksource=tsc tsc=reliable` (so
//! that clock reads stay cheap under TCG), loads `isc.ko` and
//! `isc_pathways.ko`, runs the runner and collects its `@@ISC-PW <json>`
//! lines. The results are saved as `docs/pathways.json` and rendered into
//! `docs/pathways.md` and `docs/pathways.svg` by [`crate::pathways_doc`].

use crate::init_script::{MODULE_DIR, MODULE_PARAMS, NOT_LOADED};
use crate::modules::{self, file_name, Modules};
use crate::pathways_doc::{self, Results};
use crate::payload::{GuestProgram, Kind};
use crate::{cargo, initramfs, kernels, prereq, qemu, report, workspace_root};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Usage of `vm-bench`.
pub const USAGE: &str = "\
usage: cargo xtask vm-bench [--quick] [--rounds N] [--kernel SERIES] [--timeout SECS]
                            [--verbose] [--out DIR] [--from JSON]

  --quick           few samples, one round (for development; about a minute)
  --rounds N        rounds of the full run (default 5)
  --kernel SERIES   the kernel to measure in (6.1 or 6.12; default 6.12)
  --timeout SECS    limit for the guest run (default 900)
  --verbose         echo the guest's serial console while it runs
  --out DIR         where pathways.{md,svg,json} go (default docs/)
  --from JSON       only render the page and chart from saved results";

/// The kernel command line additions of a benchmark guest.
pub const BENCH_CMDLINE: &str = "clocksource=tsc tsc=reliable";

/// The module the runner needs besides the core module.
const PATHWAYS_MODULE: &str = "isc_pathways.ko";

/// Options of `vm-bench`.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Few samples.
    pub quick: bool,
    /// Rounds of the full run, if not the runner's default.
    pub rounds: Option<u32>,
    /// Kernel series.
    pub kernel: String,
    /// Limit for the guest run.
    pub timeout: Duration,
    /// Echo the console.
    pub verbose: bool,
    /// Output directory (relative to the workspace root unless absolute).
    pub out: PathBuf,
    /// Render from this results file instead of running.
    pub from: Option<PathBuf>,
}

/// Parses the arguments after `vm-bench`.
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut o = Options {
        quick: false,
        rounds: None,
        kernel: "6.12".into(),
        timeout: Duration::from_secs(900),
        verbose: false,
        out: PathBuf::from("docs"),
        from: None,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => {
                let v = value("--rounds")?;
                o.rounds = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("bad --rounds {v:?}"))?,
                );
            }
            "--kernel" => {
                let k = value("--kernel")?;
                if !kernels::SERIES.contains(&k.as_str()) {
                    bail!("unknown kernel series {k:?} (known: {:?})", kernels::SERIES);
                }
                o.kernel = k;
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().with_context(|| format!("bad --timeout {v:?}"))?;
                o.timeout = Duration::from_secs(secs);
            }
            "--verbose" | "-v" => o.verbose = true,
            "--out" => o.out = value("--out")?.into(),
            "--from" => o.from = Some(value("--from")?.into()),
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// Runs `vm-bench`; `Ok(true)` when the run succeeded and the page was
/// written.
pub fn run(o: &Options) -> Result<bool> {
    let root = workspace_root();
    let out = if o.out.is_absolute() {
        o.out.clone()
    } else {
        root.join(&o.out)
    };
    let results = match &o.from {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            Results::from_json(&v)?
        }
        None => match measure(&root, o)? {
            Some(r) => r,
            None => return Ok(false),
        },
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if o.from.is_none() {
        let json_path = out.join("pathways.json");
        let text = serde_json::to_string_pretty(&results.to_json())?;
        std::fs::write(&json_path, text + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        println!("   results: {}", json_path.display());
    }
    let md = out.join("pathways.md");
    let svg = out.join("pathways.svg");
    std::fs::write(&svg, pathways_doc::render_svg(&results)?)
        .with_context(|| format!("writing {}", svg.display()))?;
    std::fs::write(&md, pathways_doc::render_markdown(&results))
        .with_context(|| format!("writing {}", md.display()))?;
    println!("   page: {}\n   chart: {}", md.display(), svg.display());
    for t in pathways_doc::targets(&results) {
        println!("   target {}: {}", t.name, t.verdict());
    }
    Ok(true)
}

/// Builds, boots and runs; `None` if the guest run failed (reported).
fn measure(root: &Path, o: &Options) -> Result<Option<Results>> {
    let started = Instant::now();
    prereq::check_tools()?;
    let kernel = kernels::discover(std::slice::from_ref(&o.kernel))
        .into_iter()
        .find_map(|(_, k)| k)
        .with_context(|| {
            prereq::missing_message(&format!("kernel {} (image or headers)", o.kernel))
        })?;
    let meta = cargo::Metadata::load(root)?;
    let work = meta.target_dir.join("xtask").join("bench");
    let kdir = work.join(&kernel.release);
    std::fs::create_dir_all(&kdir).with_context(|| format!("creating {}", kdir.display()))?;

    println!("== building the pathways runner");
    let artifacts = cargo::build(
        root,
        &[
            "build",
            "--release",
            "--package",
            "isc-benches",
            "--example",
            "pathways",
        ],
    )?;
    let runner = artifacts
        .iter()
        .find(|a| a.name == "pathways" && a.kinds.iter().any(|k| k == "example"))
        .context("cargo built no pathways runner")?;
    println!("== building the modules for {}", kernel.release);
    let mods = bench_modules(modules::build(root, &kernel.headers, &kdir)?)?;
    println!("   modules: {}", mods.describe());

    let mut args = Vec::new();
    if o.quick {
        args.push("--quick".to_string());
    }
    if let Some(r) = o.rounds {
        args.extend(["--rounds".to_string(), r.to_string()]);
    }
    let program = GuestProgram {
        name: "pathways".into(),
        host_path: runner.executable.clone(),
        guest_path: "/opt/isc/pathways".into(),
        kind: Kind::Bench,
        args,
        before: Vec::new(),
        after: Vec::new(),
    };
    let init = render_init(&mods, &program, o.timeout);
    let initrd = kdir.join("initramfs.cpio.gz");
    initramfs::pack(
        &kdir.join("root"),
        &mods,
        std::slice::from_ref(&program),
        &init,
        &initrd,
    )?;
    println!(
        "== booting {} ({BENCH_CMDLINE}); {}",
        kernel.release,
        if o.quick {
            "quick run"
        } else {
            "full run, a few minutes"
        }
    );
    let log = kdir.join("console.log");
    let run = qemu::boot_with(
        &kernel.image,
        &initrd,
        BENCH_CMDLINE,
        o.timeout,
        o.verbose,
        &log,
    )?;
    println!(
        "   guest ran {:.1?}{}; console log: {}",
        run.elapsed,
        if run.timed_out { " (TIMED OUT)" } else { "" },
        log.display()
    );
    let guest = parse_console(&run.lines);
    for c in &guest.checks {
        println!("   {c}");
    }
    let mut problems = guest.problems.clone();
    if run.timed_out {
        problems.push(format!("the guest was killed after {:.0?}", run.elapsed));
    }
    if !problems.is_empty() {
        for p in &problems {
            println!("   error: {p}");
        }
        println!("   (see {})", log.display());
        return Ok(None);
    }
    let host = host_info(started.elapsed());
    Ok(Some(Results::from_records(host, &guest.records)?))
}

/// Keeps the core module and the pathways module, in load order.
fn bench_modules(built: Modules) -> Result<Modules> {
    if let Some(p) = &built.problem {
        bail!("the modules did not build: {p}");
    }
    let kos: Vec<PathBuf> = built
        .kos
        .into_iter()
        .filter(|k| {
            let n = file_name(k);
            n == modules::CORE_MODULE || n == PATHWAYS_MODULE
        })
        .collect();
    if kos.len() != 2 || file_name(&kos[0]) != modules::CORE_MODULE {
        bail!(
            "the build has no {} and {PATHWAYS_MODULE}",
            modules::CORE_MODULE
        );
    }
    Ok(Modules { kos, problem: None })
}

/// The guest's `/init`: load the two modules, describe the machine, run the
/// runner between markers, dump the kernel log, power off.
fn render_init(mods: &Modules, program: &GuestProgram, timeout: Duration) -> String {
    let limit = timeout.as_secs().saturating_sub(30).max(30);
    let mut s = String::from(
        r#"#!/bin/sh
# Generated by `cargo xtask vm-bench`.
export PATH=/bin HOME=/root TMPDIR=/tmp
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
echo "@@ISC-BOOT $(uname -r)"
"#,
    );
    for ko in &mods.kos {
        let name = file_name(ko);
        // The same modules and parameters as vm-test's guest.
        if NOT_LOADED.contains(&name.as_str()) {
            continue;
        }
        let params: Vec<&str> = MODULE_PARAMS
            .iter()
            .filter(|(m, _)| *m == name)
            .map(|(_, p)| *p)
            .collect();
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(" {}", params.join(" "))
        };
        let _ = writeln!(
            s,
            "insmod {MODULE_DIR}/{name}{params} || echo \"@@ISC-BENCH-ERROR insmod {name} failed\""
        );
    }
    let _ = writeln!(
        s,
        "echo \"@@ISC-BEGIN {n}\"\ntimeout {limit} {path} {args}\necho \"@@ISC-END {n} $?\"",
        n = program.name,
        path = program.guest_path,
        args = program.args.join(" "),
    );
    s.push_str(
        r#"echo "@@ISC-DMESG-BEGIN"
dmesg
echo "@@ISC-DMESG-END"
echo "@@ISC-DONE"
poweroff -f
"#,
    );
    s
}

/// What the guest's console says.
#[derive(Debug, Default)]
struct Guest {
    /// The runner's JSON records.
    records: Vec<Value>,
    /// Its `ok`/`FAIL` check lines.
    checks: Vec<String>,
    /// Everything that makes the run unusable.
    problems: Vec<String>,
}

fn parse_console(lines: &[String]) -> Guest {
    let mut g = Guest::default();
    let mut exit = None;
    let mut in_dmesg = false;
    for l in lines {
        if let Some(i) = l.find("@@ISC-PW ") {
            match serde_json::from_str::<Value>(&l[i + 9..]) {
                Ok(v) => g.records.push(v),
                Err(e) => g
                    .problems
                    .push(format!("unreadable result line ({e}): {l}")),
            }
            continue;
        }
        if let Some(i) = l.find("@@ISC-END pathways ") {
            exit = l[i + 19..].trim().parse::<i32>().ok();
        }
        if let Some(i) = l.find("@@ISC-BENCH-ERROR ") {
            g.problems.push(l[i + 18..].to_string());
        }
        if l.contains("@@ISC-DMESG-BEGIN") {
            in_dmesg = true;
        } else if l.contains("@@ISC-DMESG-END") {
            in_dmesg = false;
        } else if in_dmesg && report::KERNEL_RED_FLAGS.iter().any(|f| l.contains(f)) {
            g.problems.push(format!("kernel log: {l}"));
        }
        let t = l.trim_start();
        if t.starts_with("ok ") || t.starts_with("FAIL") {
            g.checks.push(t.to_string());
        }
    }
    match exit {
        Some(0) => {}
        Some(rc) => g
            .problems
            .push(format!("the runner exited with status {rc}")),
        None => g.problems.push("the runner did not finish".into()),
    }
    if !g.records.iter().any(|r| r["kind"] == "done") {
        g.problems.push("no complete set of results".into());
    }
    g
}

/// The host machine, for the page.
fn host_info(elapsed: Duration) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
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
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    json!({
        "cpu": model,
        "cpus": cpus,
        "qemu": qemu,
        "accel": "tcg",
        "guest_cpus": 2,
        "wall_s": elapsed.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn options() {
        let o = parse(args(&[])).unwrap();
        assert_eq!(
            (o.quick, o.kernel.as_str(), o.rounds),
            (false, "6.12", None)
        );
        let o = parse(args(&["--quick", "--kernel", "6.1", "--rounds", "3"])).unwrap();
        assert_eq!(
            (o.quick, o.kernel.as_str(), o.rounds),
            (true, "6.1", Some(3))
        );
        assert!(parse(args(&["--kernel", "5.10"])).is_err());
        assert!(parse(args(&["--rounds", "0"])).is_err());
        assert!(parse(args(&["--rounds"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
    }

    #[test]
    fn only_the_two_modules_load() {
        let m = bench_modules(Modules {
            kos: vec![
                "/b/src/isc.ko".into(),
                "/b/isc_sample.ko".into(),
                "/b/pathways/isc_pathways.ko".into(),
                "/b/testdrv/isc_testdrv.ko".into(),
            ],
            problem: None,
        })
        .unwrap();
        assert_eq!(
            m.kos,
            [
                PathBuf::from("/b/src/isc.ko"),
                PathBuf::from("/b/pathways/isc_pathways.ko")
            ]
        );
        assert!(bench_modules(Modules {
            kos: vec!["/b/src/isc.ko".into()],
            problem: None
        })
        .is_err());
        assert!(bench_modules(Modules {
            kos: vec![],
            problem: Some("make failed".into())
        })
        .is_err());
    }

    #[test]
    fn init_runs_the_runner_between_markers() {
        let mods = Modules {
            kos: vec![
                "/b/src/isc.ko".into(),
                "/b/h/isc_hazard.ko".into(),
                "/b/p/isc_pathways.ko".into(),
                "/b/t/isc_testdrv.ko".into(),
            ],
            problem: None,
        };
        let p = GuestProgram {
            name: "pathways".into(),
            host_path: "/h".into(),
            guest_path: "/opt/isc/pathways".into(),
            kind: Kind::Bench,
            args: vec!["--quick".into()],
            before: Vec::new(),
            after: Vec::new(),
        };
        let s = render_init(&mods, &p, Duration::from_secs(300));
        let pos = |n: &str| s.find(n).unwrap_or_else(|| panic!("{n} in\n{s}"));
        assert!(pos("insmod /lib/isc/isc.ko") < pos("insmod /lib/isc/isc_pathways.ko"));
        // vm-test's module parameters and exclusions apply here too.
        assert!(pos("insmod /lib/isc/isc_testdrv.ko enable=1") > 0);
        assert!(!s.contains("isc_hazard.ko"));
        assert!(pos("@@ISC-BEGIN pathways") < pos("timeout 270 /opt/isc/pathways --quick"));
        assert!(pos("@@ISC-END pathways $?") < pos("dmesg"));
        assert!(s.ends_with("poweroff -f\n"));
    }

    #[test]
    fn console_is_judged() {
        let lines: Vec<String> = [
            "@@ISC-BOOT 6.12",
            "ok call ioctl echoes 16 B",
            "@@ISC-PW {\"kind\":\"machine\"}",
            "@@ISC-PW {\"kind\":\"done\"}",
            "@@ISC-END pathways 0",
            "@@ISC-DMESG-BEGIN",
            "[ 1.0] isc: loaded",
            "@@ISC-DMESG-END",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = parse_console(&lines);
        assert!(g.problems.is_empty(), "{:?}", g.problems);
        assert_eq!(g.records.len(), 2);
        assert_eq!(g.checks, ["ok call ioctl echoes 16 B"]);

        let mut bad = lines.clone();
        bad[4] = "@@ISC-END pathways 1".into();
        bad.insert(6, "[ 2.0] WARNING: CPU: 0 PID: 1 at x".into());
        bad.insert(2, "@@ISC-PW {broken".into());
        let g = parse_console(&bad);
        assert_eq!(g.problems.len(), 3, "{:?}", g.problems);

        let g = parse_console(&lines[..3]);
        assert!(g.problems.iter().any(|p| p.contains("did not finish")));
        assert!(g.problems.iter().any(|p| p.contains("no complete set")));
    }
}
