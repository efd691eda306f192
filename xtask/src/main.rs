//! Developer tasks of the ISC workspace, run as `cargo xtask <task>`.
//!
//! `vm-test`: builds the kernel module for every Debian cloud kernel
//! installed here (6.1 and 6.12), builds the device test binaries on the
//! host, packs them with busybox into an initramfs, boots each kernel under
//! qemu (TCG), loads the module and runs the tests in the guest, then
//! reports per kernel and in total. The last line printed is always
//! `N passed, N failed`. With `--debug-kernel` it runs the same suite on the
//! debug kernel (KASAN, UBSAN, lockdep, kmemleak), built once per machine by
//! `scripts/debug-kernel`.
//!
//! `debug-kernel`: builds the debug kernel if needed and prints where it is.
//!
//! `vm-bench`: the pathways benchmark in one guest kernel; writes
//! `docs/pathways.md` and its chart (see [`vm_bench`]).

mod cargo;
mod init_script;
mod initramfs;
mod kernels;
mod modules;
mod pathways_doc;
mod payload;
mod prereq;
mod qemu;
mod report;
mod vm_bench;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask vm-test [--kernel SERIES]... [--debug-kernel | --debug-kernel-cached]
                           [--timeout SECS] [--verbose]
       cargo xtask debug-kernel

  --kernel SERIES        only boot this kernel series (6.1 or 6.12); repeatable
  --debug-kernel         run on the debug kernel (KASAN, UBSAN, lockdep, kmemleak);
                         builds it first if this machine has none (long); without
                         --kernel, only the debug kernel runs
  --debug-kernel-cached  as --debug-kernel, but fail instead of building
  --only TEXT            run only the programs whose name contains TEXT; repeatable
  --fuzz-ops N           operations for the kernel-interface fuzzer (default 20000)
  --timeout SECS         limit for one guest run, boot to power-off
                         (default 300, 900 on the debug kernel)
  --verbose              echo the guest's serial console while it runs

  debug-kernel           build the debug kernel if needed, print its directory";

/// Default limit for one guest run on a release kernel.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Default limit for one guest run on the debug kernel (KASAN and lockdep
/// under TCG are many times slower).
const DEBUG_TIMEOUT: Duration = Duration::from_secs(900);

/// Options of `vm-test`.
#[derive(Debug)]
pub struct VmTestOptions {
    /// Kernel series to run (empty: all known).
    pub kernels: Vec<String>,
    /// Limit for one guest run, if given.
    pub timeout: Option<Duration>,
    /// Run on the debug kernel, and how to get it.
    pub debug: Option<kernels::DebugBuild>,
    /// Echo the console live.
    pub verbose: bool,
    /// Only the programs whose name contains one of these.
    pub only: Vec<String>,
    /// Operations for the kernel-interface fuzzer, if not its default.
    pub fuzz_ops: Option<u64>,
}

fn parse_vm_test(mut args: impl Iterator<Item = String>) -> Result<VmTestOptions> {
    let mut opts = VmTestOptions {
        kernels: Vec::new(),
        timeout: None,
        debug: None,
        verbose: false,
        only: Vec::new(),
        fuzz_ops: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kernel" => {
                let k = args.next().context("--kernel needs a series")?;
                if !kernels::SERIES.contains(&k.as_str()) {
                    bail!("unknown kernel series {k:?} (known: {:?})", kernels::SERIES);
                }
                opts.kernels.push(k);
            }
            "--timeout" => {
                let s = args.next().context("--timeout needs seconds")?;
                let secs: u64 = s.parse().with_context(|| format!("bad --timeout {s:?}"))?;
                opts.timeout = Some(Duration::from_secs(secs));
            }
            "--debug-kernel" => opts.debug = Some(kernels::DebugBuild::IfNeeded),
            "--debug-kernel-cached" => opts.debug = Some(kernels::DebugBuild::CachedOnly),
            "--verbose" | "-v" => opts.verbose = true,
            "--only" => opts.only.push(args.next().context("--only needs a name")?),
            "--fuzz-ops" => {
                let s = args.next().context("--fuzz-ops needs a count")?;
                opts.fuzz_ops = Some(s.parse().with_context(|| format!("bad --fuzz-ops {s:?}"))?);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("vm-test") => parse_vm_test(args).and_then(|o| vm_test(&o)),
        Some("debug-kernel") => {
            kernels::debug_kernel(&workspace_root(), kernels::DebugBuild::IfNeeded).map(|k| {
                println!("{}", k.image.parent().unwrap_or(&k.image).display());
                true
            })
        }
        Some("vm-bench") => vm_bench::parse(args).and_then(|o| vm_bench::run(&o)),
        Some("-h" | "--help") => {
            println!("{USAGE}\n\n{}", vm_bench::USAGE);
            Ok(true)
        }
        other => Err(anyhow::anyhow!(
            "unknown task {:?}\n{USAGE}",
            other.unwrap_or("")
        )),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Runs `vm-test`; `Ok(true)` when everything passed.
fn vm_test(opts: &VmTestOptions) -> Result<bool> {
    let started = Instant::now();
    let root = workspace_root();
    prereq::check_tools()?;
    // With --debug-kernel alone, only the debug kernel runs.
    let found = if opts.debug.is_some() && opts.kernels.is_empty() {
        Vec::new()
    } else {
        kernels::discover(&opts.kernels)
    };
    let mut missing = Vec::new();
    for (series, k) in &found {
        if k.is_none() {
            missing.push(series.clone());
        }
    }
    if opts.debug.is_none() && found.iter().all(|(_, k)| k.is_none()) {
        bail!(
            "{}",
            prereq::missing_message("no Debian cloud kernel with headers found")
        );
    }
    for series in &missing {
        println!(
            "{}",
            prereq::missing_message(&format!("kernel {series} (image or headers) not installed"))
        );
    }

    let meta = cargo::Metadata::load(&root)?;
    let work = meta.target_dir.join("xtask");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    println!("== building the guest payload on the host");
    let mut payload = payload::build_all(&root, &meta, &work)?;
    if !opts.only.is_empty() {
        payload
            .programs
            .retain(|p| opts.only.iter().any(|o| p.name.contains(o.as_str())));
    }
    if let Some(n) = opts.fuzz_ops {
        payload::set_fuzz_ops(&mut payload.programs, n);
    }
    for m in &payload.missing {
        println!("   MISSING entry {}: {}", m.entry, m.reason);
    }
    for p in &payload.programs {
        println!("   {} <- {}", p.name, p.host_path.display());
    }

    let mut found = found;
    if let Some(how) = opts.debug {
        println!("== the debug kernel");
        let t0 = Instant::now();
        match kernels::debug_kernel(&root, how) {
            Ok(k) => {
                println!("   {} ({:.0?})", k.image.display(), t0.elapsed());
                found.push((k.series.clone(), Some(k)));
            }
            Err(e) => {
                println!("   error: {e:#}");
                found.push((kernels::DEBUG_SERIES.to_string(), None));
            }
        }
    }

    let mut summaries = Vec::new();
    for (series, kernel) in &found {
        let Some(kernel) = kernel else {
            summaries.push(report::KernelSummary::missing(series));
            continue;
        };
        let t0 = Instant::now();
        println!("== kernel {} ({})", series, kernel.release);
        let summary = match run_kernel(&root, &work, kernel, &payload, opts) {
            Ok(s) => s,
            Err(e) => {
                println!("   error: {e:#}");
                report::KernelSummary::error(series, &kernel.release, &format!("{e:#}"))
            }
        };
        let summary = summary.with_runtime(t0.elapsed());
        summary.print();
        summaries.push(summary);
    }

    println!("== summary ({:.0?} in total)", started.elapsed());
    let (mut passed, mut failed) = (0, 0);
    for s in &summaries {
        println!("   {}", s.one_line());
        passed += s.passed;
        failed += s.failed;
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// Builds the modules for `kernel`, packs the initramfs, boots, parses.
fn run_kernel(
    root: &std::path::Path,
    work: &std::path::Path,
    kernel: &kernels::Kernel,
    payload: &payload::Payload,
    opts: &VmTestOptions,
) -> Result<report::KernelSummary> {
    let kdir = work.join(if kernel.debug {
        format!("debug-{}", kernel.release)
    } else {
        kernel.release.clone()
    });
    let timeout = opts
        .timeout
        .unwrap_or(if kernel.debug { DEBUG_TIMEOUT } else { TIMEOUT });
    let mods = modules::build(root, &kernel.headers, &kdir)?;
    println!("   modules: {}", mods.describe());
    let initrd = kdir.join("initramfs.cpio.gz");
    let programs = &payload.programs;
    let script = init_script::render(&mods, programs, timeout, kernel.debug);
    initramfs::pack(&kdir.join("root"), &mods, programs, &script, &initrd)?;
    let log_path = kdir.join("console.log");
    // The debug kernel has KASAN and KFENCE built in.
    let append = if kernel.debug {
        ""
    } else {
        qemu::MEMORY_CHECKS
    };
    let run = qemu::boot_with(
        &kernel.image,
        &initrd,
        append,
        timeout,
        opts.verbose,
        &log_path,
    )?;
    println!(
        "   guest ran {:.1?}{}; console log: {}",
        run.elapsed,
        if run.timed_out {
            " (TIMED OUT, killed)"
        } else {
            ""
        },
        log_path.display()
    );
    Ok(report::parse(
        &kernel.series,
        &kernel.release,
        &run,
        report::Expect {
            mods: &mods,
            payload,
            debug: kernel.debug,
        },
    ))
}
