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
    /// Every integration test of the package.
    AllTests,
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
}

impl Entry {
    const fn cargo(package: &'static str, select: Select, kind: Kind) -> Self {
        Self {
            source: Source::Cargo {
                package,
                select,
                release: false,
            },
            kind,
            args: &[],
        }
    }

    /// One integration test binary of `package`.
    pub const fn test(package: &'static str, name: &'static str) -> Self {
        Self::cargo(package, Select::Test(name), Kind::RustTests)
    }

    /// Every integration test binary of `package`.
    pub const fn all_tests(package: &'static str) -> Self {
        Self::cargo(package, Select::AllTests, Kind::RustTests)
    }

    /// An example of `package`, judged as `kind`.
    pub const fn example(package: &'static str, name: &'static str, kind: Kind) -> Self {
        Self::cargo(package, Select::Example(name), kind)
    }

    /// A static C program.
    pub const fn c_static(source: &'static str, kind: Kind) -> Self {
        Self {
            source: Source::CStatic { source },
            kind,
            args: &[],
        }
    }

    /// A C program linked statically with libisc, reported as `label`.
    pub const fn c_libisc(source: &'static str, label: &'static str, kind: Kind) -> Self {
        Self {
            source: Source::CLibisc { source, label },
            kind,
            args: &[],
        }
    }

    /// With extra guest arguments.
    pub const fn args(self, args: &'static [&'static str]) -> Self {
        Self { args, ..self }
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
}

/// The guest's programs, in the order they run. Every program gets the
/// environment `ISC_DEVICE_TESTS=1 ISC_TRANSPORT=dev`.
pub const ENTRIES: &[Entry] = &[
    // The device transport's tests (ignored outside the VM: they need /dev/isc).
    Entry::test("isc-transport-dev", "device").args(&["--include-ignored"]),
    // Malformed ioctls, mmaps and scribbled rings; the kernel log is checked afterwards.
    // With the sample module's path it also unloads and reloads the sample driver.
    Entry::c_static("driver/tests/hostile.c", Kind::CTest).args(&["/lib/isc/isc_sample.ko"]),
    // The facade's conformance suite, on the device transport.
    Entry::all_tests("isc"),
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
}

/// Builds every entry of [`ENTRIES`] that exists; the others are noted.
pub fn build_all(
    root: &Path,
    meta: &Metadata,
    work: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<GuestProgram>> {
    let mut out = Vec::new();
    for entry in ENTRIES {
        let built = match entry.source {
            Source::Cargo {
                package,
                select,
                release,
            } => build_cargo(root, meta, package, select, release, notes)?,
            Source::CStatic { source } => build_c(root, source, work, notes)?,
            Source::CLibisc { source, label } => {
                build_c_libisc(root, meta, source, label, work, notes)?
            }
        };
        for (name, host_path) in built {
            let guest_path = format!("/opt/isc/{}", name.replace(['/', '.'], "_"));
            out.push(GuestProgram {
                name,
                host_path,
                guest_path,
                kind: entry.kind,
                args: entry.args.iter().map(|a| a.to_string()).collect(),
            });
        }
    }
    Ok(out)
}

fn build_cargo(
    root: &Path,
    meta: &Metadata,
    package: &str,
    select: Select,
    release: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>> {
    let (kind, wanted): (&str, Option<&str>) = match select {
        Select::Test(n) => ("test", Some(n)),
        Select::AllTests => ("test", None),
        Select::Example(n) => ("example", Some(n)),
    };
    let Some(available) = meta.targets(package, kind) else {
        let note = format!("skipped package {package}: not in the workspace yet");
        if !notes.contains(&note) {
            notes.push(note);
        }
        return Ok(Vec::new());
    };
    let names: Vec<String> = match wanted {
        Some(n) if available.iter().any(|a| a == n) => vec![n.to_string()],
        Some(n) => {
            notes.push(format!("skipped {package} {kind} {n}: does not exist yet"));
            return Ok(Vec::new());
        }
        None if available.is_empty() => {
            notes.push(format!("skipped {package} tests: it has none yet"));
            return Ok(Vec::new());
        }
        None => available,
    };
    let mut args = vec![match kind {
        "test" => "test",
        _ => "build",
    }];
    if kind == "test" {
        args.push("--no-run");
    }
    args.extend(["--package", package]);
    for n in &names {
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
    for n in &names {
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

fn build_c(
    root: &Path,
    source: &str,
    work: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>> {
    let src = root.join(source);
    if !src.is_file() {
        notes.push(format!("skipped {source}: does not exist yet"));
        return Ok(Vec::new());
    }
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
        .arg(&src)
        .status()
        .context("running gcc")?;
    if !status.success() {
        bail!("gcc -static {source} failed ({status})");
    }
    Ok(vec![(source.to_string(), exe)])
}

/// Builds the release `libisc.a` (once per run: cargo has nothing to do the
/// second time) and links `source` statically against it.
fn build_c_libisc(
    root: &Path,
    meta: &Metadata,
    source: &str,
    label: &str,
    work: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>> {
    let src = root.join(source);
    if !src.is_file() || meta.targets("isc-capi", "cdylib").is_none() {
        notes.push(format!(
            "skipped {label}: {source} or isc-capi does not exist yet"
        ));
        return Ok(Vec::new());
    }
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
        .arg(&src)
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
    Ok(vec![(label.to_string(), exe)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_well_formed() {
        for e in ENTRIES {
            if let Source::Cargo { package, .. } = e.source {
                assert!(!package.is_empty());
            }
            if e.kind != Kind::RustTests {
                assert!(!e.args.iter().any(|a| a.starts_with("--test-threads")));
            }
        }
        // Guest paths given as arguments must be where the modules are installed.
        for a in ENTRIES.iter().flat_map(|e| e.args) {
            if a.ends_with(".ko") {
                assert!(a.starts_with(crate::init_script::MODULE_DIR), "{a}");
            }
        }
        assert!(matches!(
            ENTRIES[0].source,
            Source::Cargo {
                package: "isc-transport-dev",
                select: Select::Test("device"),
                release: false
            }
        ));
        assert!(matches!(
            ENTRIES.last().unwrap().release().source,
            Source::Cargo { release: true, .. }
        ));
    }
}
