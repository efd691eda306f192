//! What runs inside the guest, and how it is built on the host.
//!
//! Adding a test binary to the VM run is one line in [`ENTRIES`]. Entries
//! whose package, target or source does not exist (yet) are skipped with a
//! note.

use crate::cargo::{self, Metadata};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the guest's output of a program is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A libtest binary, run with `--test-threads=1`; counted from its
    /// `test result:` summary.
    RustTests,
    /// A C test printing one `ok ...` or `FAIL ...` line per check.
    CTest,
    /// A program that passes when it exits with status 0.
    Program,
    /// A benchmark: passes when it exits with status 0; its output is shown.
    Bench,
}

/// Where an entry's executables come from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// Built by cargo in this workspace.
    Cargo {
        /// Package name.
        package: &'static str,
        /// Which of its targets.
        select: Select,
        /// Build with `--release`.
        release: bool,
    },
    /// One C file compiled with `gcc -static -O2 -pthread` (include path `driver/include`).
    CStatic {
        /// Path relative to the workspace root.
        source: &'static str,
    },
    /// A C program of the C library: compiled with `gcc -static -O2 -Wall
    /// -Wextra -Werror -pthread` against `isc-capi/include` (and its
    /// examples directory) and linked with the release `libisc.a`.
    CLibisc {
        /// Path relative to the workspace root.
        source: &'static str,
        /// Its name in reports (one program may run as several entries).
        label: &'static str,
    },
}

/// A choice of cargo targets.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    /// One integration test (`tests/<name>.rs`).
    Test(&'static str),
    /// Every integration test of the package; the named ones must be among
    /// them.
    AllTests(&'static [&'static str]),
    /// One example.
    Example(&'static str),
}

/// One line of the guest's program list.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// How to build it.
    pub source: Source,
    /// How to judge it.
    pub kind: Kind,
    /// Extra arguments in the guest.
    pub args: &'static [&'static str],
    /// Its name in reports, if not the one derived from the source (needed
    /// when one source runs twice).
    pub name: Option<&'static str>,
    /// Guest shell commands run before the program, each reported as a check.
    pub before: &'static [&'static str],
    /// Guest shell commands run after the program, each reported as a check.
    pub after: &'static [&'static str],
}

impl Entry {
    const fn new(source: Source, kind: Kind) -> Self {
        Self {
            source,
            kind,
            args: &[],
            name: None,
            before: &[],
            after: &[],
        }
    }

    const fn cargo(package: &'static str, select: Select, kind: Kind) -> Self {
        Self::new(
            Source::Cargo {
                package,
                select,
                release: false,
            },
            kind,
        )
    }

    /// One integration test binary of `package`.
    pub const fn test(package: &'static str, name: &'static str) -> Self {
        Self::cargo(package, Select::Test(name), Kind::RustTests)
    }

    /// Every integration test binary of `package`; those in `required` must
    /// exist.
    pub const fn all_tests(package: &'static str, required: &'static [&'static str]) -> Self {
        Self::cargo(package, Select::AllTests(required), Kind::RustTests)
    }

    /// An example of `package`, judged as `kind`.
    pub const fn example(package: &'static str, name: &'static str, kind: Kind) -> Self {
        Self::cargo(package, Select::Example(name), kind)
    }

    /// A static C program.
    pub const fn c_static(source: &'static str, kind: Kind) -> Self {
        Self::new(Source::CStatic { source }, kind)
    }

    /// A C program linked statically with libisc, reported as `label`.
    pub const fn c_libisc(source: &'static str, label: &'static str, kind: Kind) -> Self {
        Self::new(Source::CLibisc { source, label }, kind)
    }

    /// With extra guest arguments.
    pub const fn args(self, args: &'static [&'static str]) -> Self {
        Self { args, ..self }
    }

    /// Reported as `name` instead of the name derived from the source.
    pub const fn named(self, name: &'static str) -> Self {
        Self {
            name: Some(name),
            ..self
        }
    }

    /// With guest shell commands before the program.
    pub const fn before(self, before: &'static [&'static str]) -> Self {
        Self { before, ..self }
    }

    /// With guest shell commands after the program.
    pub const fn after(self, after: &'static [&'static str]) -> Self {
        Self { after, ..self }
    }

    /// Built with `--release` (cargo entries).
    pub const fn release(self) -> Self {
        match self.source {
            Source::Cargo {
                package, select, ..
            } => Self {
                source: Source::Cargo {
                    package,
                    select,
                    release: true,
                },
                ..self
            },
            Source::CStatic { .. } | Source::CLibisc { .. } => self,
        }
    }

    /// A short description of the entry for reports about the entry itself.
    pub fn describe(&self) -> String {
        if let Some(n) = self.name {
            return n.to_string();
        }
        match self.source {
            Source::Cargo {
                package, select, ..
            } => match select {
                Select::Test(n) => format!("{package}/{n}"),
                Select::AllTests(_) => format!("{package} tests"),
                Select::Example(n) => format!("{package} example {n}"),
            },
            Source::CStatic { source } => source.to_string(),
            Source::CLibisc { label, .. } => label.to_string(),
        }
    }
}

/// The guest's programs, in the order they run. Every program gets the
/// environment `ISC_DEVICE_TESTS=1 ISC_TRANSPORT=dev`. An entry whose
/// package, target or source is missing fails the run.
pub const ENTRIES: &[Entry] = &[
    // The device transport's tests (ignored outside the VM: they need /dev/isc).
    Entry::test("isc-transport-dev", "device").args(&["--include-ignored"]),
    // Malformed ioctls, mmaps and scribbled rings; the kernel log is checked afterwards.
    // With the sample module's path it also unloads and reloads the sample driver.
    Entry::c_static("driver/tests/hostile.c", Kind::CTest).args(&["/lib/isc/isc_sample.ko"]),
    // Again with the sample posting every millisecond from hard IRQ context, so
    // that posts race with closes, unbinds and KICKs.
    Entry::c_static("driver/tests/hostile.c", Kind::CTest)
        .named("hostile-1ms-posts")
        .before(&[
            "rmmod isc_sample",
            "insmod /lib/isc/isc_sample.ko period_ms=1",
        ])
        .after(&["rmmod isc_sample", "insmod /lib/isc/isc_sample.ko"]),
    // The facade's conformance suite and the vanished-peer test, on the device transport.
    Entry::all_tests("isc", &["conformance", "peer_gone"]),
    // The facade's sample application against the sample driver.
    Entry::example("isc", "sample", Kind::Program),
    // The C sample (libisc) against the sample driver ("sam0")...
    Entry::c_libisc("isc-capi/examples/sample.c", "libisc-sample", Kind::Program).args(&["3", "0"]),
    // ... and against the driver written in the original API's style and
    // built on the compat headers ("sam1").
    Entry::c_libisc(
        "isc-capi/examples/sample.c",
        "libisc-sample-compat-driver",
        Kind::Program,
    )
    .args(&["3", "1"]),
    // The compat layer's error codes as a user sees them ("sam2").
    Entry::c_libisc(
        "isc-capi/tests/vm/compat_probe.c",
        "libisc-compat-probe",
        Kind::Program,
    )
    .args(&["2"]),
    // The driver contract: drivers that misbehave on purpose (isc_hazard.ko, loaded
    // and removed by the test), memory accounting, mmap flags, access per UID.
    Entry::c_static("driver/tests/hazard.c", Kind::CTest)
        .args(&["/lib/isc/isc_hazard.ko", "/lib/isc/isc_testdrv.ko"]),
    // The pathways benchmark module: every echo pathway and notification
    // pathway checked (replies, result codes, event order), nothing measured.
    Entry::example("isc-benches", "pathways", Kind::CTest)
        .release()
        .args(&["--check"]),
    // Random sequences of open, BIND, mmap, munmap, KICK, poll, close, fork,
    // kill and scribbles from several processes at once, against the sample
    // and test drivers; a new seed each run (printed, with the op rate).
    Entry::c_static(KFUZZ, Kind::CTest).args(&["-n", "20000", "-p", "4"]),
    // Calls per second with one KICK per 32 calls against one per call.
    Entry::example("isc-transport-dev", "kick_batch", Kind::Bench).release(),
    // Calls per second through the facade (sequential, call_batch, 32 async
    // calls in flight) against the raw endpoint's one KICK per call.
    Entry::example("isc", "call_rates", Kind::Bench).release(),
];

/// A program copied into the guest.
#[derive(Clone, Debug)]
pub struct GuestProgram {
    /// Unique name in reports, e.g. `isc-transport-dev/device`.
    pub name: String,
    /// The executable on the host.
    pub host_path: PathBuf,
    /// Where it lives in the guest.
    pub guest_path: String,
    /// How to judge it.
    pub kind: Kind,
    /// Guest arguments (after the kind's own).
    pub args: Vec<String>,
    /// Guest shell commands before the program.
    pub before: Vec<String>,
    /// Guest shell commands after the program.
    pub after: Vec<String>,
}

/// An entry that could not be built because what it names does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The entry, as [`Entry::describe`] names it.
    pub entry: String,
    /// What is missing.
    pub reason: String,
}

/// Everything [`ENTRIES`] asks for: the programs built, and the entries that
/// name something that does not exist (each one fails the run).
#[derive(Clone, Debug, Default)]
pub struct Payload {
    /// The programs, in run order.
    pub programs: Vec<GuestProgram>,
    /// Entries whose package, target or source is missing.
    pub missing: Vec<Missing>,
}

/// Builds every entry of [`ENTRIES`]; a missing package, target or source
/// is recorded in [`Payload::missing`], a failed build is an error.
pub fn build_all(root: &Path, meta: &Metadata, work: &Path) -> Result<Payload> {
    let mut payload = Payload::default();
    for entry in ENTRIES {
        let built = match entry.source {
            Source::Cargo {
                package,
                select,
                release,
            } => match resolve_cargo(meta, package, select) {
                Ok(names) => build_cargo(root, package, select, &names, release)?,
                Err(reason) => {
                    payload.missing.push(Missing {
                        entry: entry.describe(),
                        reason,
                    });
                    continue;
                }
            },
            Source::CStatic { source } => match resolve_c(root, source) {
                Ok(src) => vec![(source.to_string(), build_c(root, source, &src, work)?)],
                Err(reason) => {
                    payload.missing.push(Missing {
                        entry: entry.describe(),
                        reason,
                    });
                    continue;
                }
            },
            Source::CLibisc { source, label } => match resolve_c_libisc(root, meta, source) {
                Ok(src) => vec![(
                    label.to_string(),
                    build_c_libisc(root, meta, source, &src, label, work)?,
                )],
                Err(reason) => {
                    payload.missing.push(Missing {
                        entry: entry.describe(),
                        reason,
                    });
                    continue;
                }
            },
        };
        for (derived, host_path) in built {
            let name = entry.name.map(String::from).unwrap_or(derived);
            let guest_path = format!("/opt/isc/{}", name.replace(['/', '.'], "_"));
            payload.programs.push(GuestProgram {
                name,
                host_path,
                guest_path,
                kind: entry.kind,
                args: entry.args.iter().map(|a| a.to_string()).collect(),
                before: entry.before.iter().map(|a| a.to_string()).collect(),
                after: entry.after.iter().map(|a| a.to_string()).collect(),
            });
        }
    }
    Ok(payload)
}

/// The kernel-interface fuzzer's entry (its source).
pub const KFUZZ: &str = "driver/tests/kfuzz.c";

/// Sets the kernel-interface fuzzer's operation count (its `-n`).
pub fn set_fuzz_ops(programs: &mut [GuestProgram], ops: u64) {
    for p in programs.iter_mut().filter(|p| p.name == KFUZZ) {
        let mut args = Vec::new();
        let mut it = p.args.iter();
        while let Some(a) = it.next() {
            if a == "-n" {
                it.next();
            } else {
                args.push(a.clone());
            }
        }
        args.extend(["-n".to_string(), ops.to_string()]);
        p.args = args;
    }
}

/// The cargo target names an entry stands for, or what is missing.
fn resolve_cargo(meta: &Metadata, package: &str, select: Select) -> Result<Vec<String>, String> {
    let kind = match select {
        Select::Test(_) | Select::AllTests(_) => "test",
        Select::Example(_) => "example",
    };
    let Some(available) = meta.targets(package, kind) else {
        return Err(format!("package {package} is not in the workspace"));
    };
    let has = |n: &str| available.iter().any(|a| a == n);
    match select {
        Select::Test(n) | Select::Example(n) => {
            if has(n) {
                Ok(vec![n.to_string()])
            } else {
                Err(format!("{package} has no {kind} target {n:?}"))
            }
        }
        Select::AllTests(required) => {
            let absent: Vec<&str> = required.iter().copied().filter(|n| !has(n)).collect();
            if !absent.is_empty() {
                Err(format!("{package} has no test target {absent:?}"))
            } else if available.is_empty() {
                Err(format!("{package} has no integration tests"))
            } else {
                Ok(available)
            }
        }
    }
}

fn build_cargo(
    root: &Path,
    package: &str,
    select: Select,
    names: &[String],
    release: bool,
) -> Result<Vec<(String, PathBuf)>> {
    let kind = match select {
        Select::Test(_) | Select::AllTests(_) => "test",
        Select::Example(_) => "example",
    };
    let mut args = vec![match kind {
        "test" => "test",
        _ => "build",
    }];
    if kind == "test" {
        args.push("--no-run");
    }
    args.extend(["--package", package]);
    for n in names {
        args.extend([
            if kind == "test" {
                "--test"
            } else {
                "--example"
            },
            n.as_str(),
        ]);
    }
    if release {
        args.push("--release");
    }
    let artifacts = cargo::build(root, &args)?;
    let mut out = Vec::new();
    for n in names {
        let Some(a) = artifacts
            .iter()
            .find(|a| &a.name == n && a.kinds.iter().any(|k| k == kind))
        else {
            bail!("cargo built no executable for {package} {kind} {n}");
        };
        out.push((format!("{package}/{n}"), a.executable.clone()));
    }
    Ok(out)
}

/// The C source of an entry, or what is missing.
fn resolve_c(root: &Path, source: &str) -> Result<PathBuf, String> {
    let src = root.join(source);
    if src.is_file() {
        Ok(src)
    } else {
        Err(format!("{source} does not exist"))
    }
}

fn build_c(root: &Path, source: &str, src: &Path, work: &Path) -> Result<PathBuf> {
    let stem = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .context("C source without a file name")?;
    let exe = work.join(format!("c-{stem}"));
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(root.join("driver/include"))
        .arg(src)
        .status()
        .context("running gcc")?;
    if !status.success() {
        bail!("gcc -static {source} failed ({status})");
    }
    Ok(exe)
}

/// Builds the release `libisc.a` (once per run: cargo has nothing to do the
/// second time) and links `source` statically against it.
fn build_c_libisc(
    root: &Path,
    meta: &Metadata,
    source: &str,
    src: &Path,
    label: &str,
    work: &Path,
) -> Result<PathBuf> {
    cargo::build(
        root,
        &["build", "--package", "isc-capi", "--lib", "--release"],
    )?;
    let lib = meta.target_dir.join("release/libisc.a");
    let exe = work.join(format!("c-{label}"));
    let capi = root.join("isc-capi");
    let gcc = Command::new("gcc")
        .args([
            "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
        ])
        .arg(&exe)
        .arg("-I")
        .arg(capi.join("include"))
        .arg("-I")
        .arg(capi.join("examples"))
        .arg(src)
        .arg(&lib)
        // What `--print native-static-libs` reports for libisc.a.
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .output()
        .context("running gcc")?;
    // The linker's notes on glibc functions in static programs (getaddrinfo,
    // getpwuid_r, which the sample never calls) are shown only on failure.
    if !gcc.status.success() {
        bail!(
            "gcc -static {source} {} failed ({}):\n{}",
            lib.display(),
            gcc.status,
            String::from_utf8_lossy(&gcc.stderr)
        );
    }
    Ok(exe)
}

/// The C source of a libisc entry, or what is missing (the source, or the
/// C library's package).
fn resolve_c_libisc(root: &Path, meta: &Metadata, source: &str) -> Result<PathBuf, String> {
    if meta.targets("isc-capi", "cdylib").is_none() {
        return Err("package isc-capi is not in the workspace".into());
    }
    resolve_c(root, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata::from_json(
            &serde_json::from_str(
                r#"{"target_directory":"/t","packages":[
                {"name":"p","targets":[{"kind":["lib"],"name":"p"},
                    {"kind":["test"],"name":"device"},{"kind":["test"],"name":"other"},
                    {"kind":["example"],"name":"sample"}]},
                {"name":"q","targets":[{"kind":["lib"],"name":"q"}]}]}"#,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn present_targets_resolve() {
        let m = meta();
        assert_eq!(
            resolve_cargo(&m, "p", Select::Test("device")),
            Ok(vec!["device".to_string()])
        );
        assert_eq!(
            resolve_cargo(&m, "p", Select::Example("sample")),
            Ok(vec!["sample".to_string()])
        );
        assert_eq!(
            resolve_cargo(&m, "p", Select::AllTests(&["device"])),
            Ok(vec!["device".to_string(), "other".to_string()])
        );
    }

    #[test]
    fn missing_targets_are_errors() {
        let m = meta();
        // A renamed tests/device.rs, example or package: never a silent skip.
        let e = resolve_cargo(&m, "p", Select::Test("devices")).unwrap_err();
        assert!(e.contains("no test target \"devices\""), "{e}");
        let e = resolve_cargo(&m, "p", Select::Example("sampel")).unwrap_err();
        assert!(e.contains("no example target"), "{e}");
        let e = resolve_cargo(&m, "gone", Select::Test("device")).unwrap_err();
        assert!(e.contains("not in the workspace"), "{e}");
        // A test file named as required that is gone.
        let e = resolve_cargo(&m, "p", Select::AllTests(&["device", "conformance"])).unwrap_err();
        assert!(e.contains("conformance"), "{e}");
        // A package with no tests at all.
        let e = resolve_cargo(&m, "q", Select::AllTests(&[])).unwrap_err();
        assert!(e.contains("no integration tests"), "{e}");
        // An example is not a test.
        assert!(resolve_cargo(&m, "p", Select::Test("sample")).is_err());
    }

    #[test]
    fn missing_c_source_is_an_error() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(resolve_c(&root, "driver/tests/hostile.c").is_ok());
        let e = resolve_c(&root, "driver/tests/hostile-renamed.c").unwrap_err();
        assert!(e.contains("hostile-renamed.c does not exist"), "{e}");
    }

    #[test]
    fn every_entry_resolves_in_this_workspace() {
        // The real metadata of this workspace: every entry names something
        // that exists, so the VM run builds them all.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let m = Metadata::load(&root).unwrap();
        for e in ENTRIES {
            match e.source {
                Source::Cargo {
                    package, select, ..
                } => {
                    resolve_cargo(&m, package, select).unwrap();
                }
                Source::CStatic { source } => {
                    resolve_c(&root, source).unwrap();
                }
                Source::CLibisc { source, .. } => {
                    resolve_c_libisc(&root, &m, source).unwrap();
                }
            }
        }
    }

    #[test]
    fn entries_are_well_formed() {
        let mut names = Vec::new();
        for e in ENTRIES {
            if let Source::Cargo { package, .. } = e.source {
                assert!(!package.is_empty());
            }
            if e.kind != Kind::RustTests {
                assert!(!e.args.iter().any(|a| a.starts_with("--test-threads")));
            }
            // Report names must be unique: one source running twice is named.
            let n = e.describe();
            assert!(!names.contains(&n), "two entries named {n}");
            names.push(n);
        }
        // Guest paths given as arguments or in commands must be where the
        // modules are installed.
        let words = ENTRIES
            .iter()
            .flat_map(|e| e.args.iter().chain(e.before).chain(e.after))
            .flat_map(|a| a.split_whitespace());
        for w in words {
            if w.ends_with(".ko") {
                assert!(w.starts_with(crate::init_script::MODULE_DIR), "{w}");
            }
        }
    }

    #[test]
    fn device_tests_run_with_include_ignored() {
        // The device tests are #[ignore]d outside the VM: without this
        // argument they would all be skipped.
        let device = ENTRIES
            .iter()
            .find(|e| {
                matches!(
                    e.source,
                    Source::Cargo {
                        package: "isc-transport-dev",
                        select: Select::Test("device"),
                        ..
                    }
                )
            })
            .expect("the device tests are an entry");
        assert_eq!(device.kind, Kind::RustTests);
        assert!(device.args.contains(&"--include-ignored"));
        // So do the facade's tests: the conformance suite's device run.
        let isc = ENTRIES
            .iter()
            .find(|e| {
                matches!(
                    e.source,
                    Source::Cargo {
                        package: "isc",
                        select: Select::AllTests(_),
                        ..
                    }
                )
            })
            .expect("the facade's tests are an entry");
        assert_eq!(isc.kind, Kind::RustTests);
    }

    #[test]
    fn the_benchmark_is_built_for_release() {
        let bench: Vec<&Entry> = ENTRIES.iter().filter(|e| e.kind == Kind::Bench).collect();
        assert!(!bench.is_empty());
        for e in bench {
            assert!(
                matches!(e.source, Source::Cargo { release: true, .. }),
                "{}",
                e.describe()
            );
        }
        // And `release()` is what sets it.
        let e = Entry::example("p", "e", Kind::Bench);
        assert!(matches!(e.source, Source::Cargo { release: false, .. }));
        assert!(matches!(
            e.release().source,
            Source::Cargo { release: true, .. }
        ));
    }

    #[test]
    fn the_fast_post_run_reloads_the_sample() {
        let fast = ENTRIES
            .iter()
            .find(|e| e.name == Some("hostile-1ms-posts"))
            .expect("the 1 ms hostile run is an entry");
        assert!(matches!(
            fast.source,
            Source::CStatic {
                source: "driver/tests/hostile.c"
            }
        ));
        assert!(fast.before.iter().any(|c| c.contains("period_ms=1")));
        assert!(fast.after.iter().any(|c| c.starts_with("insmod ")));
    }

    #[test]
    fn the_fuzzer_runs_at_least_ten_thousand_ops_and_can_run_longer() {
        let e = ENTRIES
            .iter()
            .find(|e| matches!(e.source, Source::CStatic { source: KFUZZ }))
            .expect("the kernel-interface fuzzer is an entry");
        let n = e.args.iter().position(|a| *a == "-n").expect("-n given");
        assert!(e.args[n + 1].parse::<u64>().unwrap() >= 10_000);
        let mut programs = vec![GuestProgram {
            name: KFUZZ.into(),
            host_path: "/h".into(),
            guest_path: "/g".into(),
            kind: Kind::CTest,
            args: e.args.iter().map(|a| a.to_string()).collect(),
            before: Vec::new(),
            after: Vec::new(),
        }];
        set_fuzz_ops(&mut programs, 1_000_000);
        assert_eq!(programs[0].args, ["-p", "4", "-n", "1000000"]);
    }

    #[test]
    fn the_driver_tests_run_on_the_debug_kernel() {
        // Every program runs on every kernel: nothing can be left out of the
        // debug kernel's run. The sharpest tests must be among them.
        let all: Vec<String> = ENTRIES.iter().map(|e| e.describe()).collect();
        for needed in ["hostile.c", "hazard.c", "kfuzz.c", "pathways", "isc"] {
            assert!(
                all.iter().any(|d| d.contains(needed)),
                "{needed} must run on the debug kernel: {all:?}"
            );
        }
    }
}
