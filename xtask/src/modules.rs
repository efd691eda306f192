//! Building the kernel modules of `driver/` against one kernel's headers.
//!
//! The driver tree is copied (sources only) into a per-kernel build
//! directory, so building for two kernels, or while someone works in
//! `driver/`, never mixes objects.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The core module; loaded first (the others use its symbols).
pub const CORE_MODULE: &str = "isc.ko";

/// The modules built for one kernel, in load order.
#[derive(Clone, Debug, Default)]
pub struct Modules {
    /// `.ko` files, the core module first.
    pub kos: Vec<PathBuf>,
    /// Why there are none (or fewer than expected), if so.
    pub problem: Option<String>,
}

impl Modules {
    /// A one-line description for the log.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.kos.iter().map(|k| file_name(k)).collect();
        match &self.problem {
            Some(p) if names.is_empty() => format!("none ({p})"),
            Some(p) => format!("{} ({p})", names.join(", ")),
            None => names.join(", "),
        }
    }
}

/// The file name of `p` as a string.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Copies `root/driver` to `out/driver` and runs `make KDIR=<headers> W=1`
/// there. A compiler warning counts as a failed build.
/// A missing driver tree or a failed build is reported in
/// [`Modules::problem`], not as an error: the guest still boots and the
/// tests report what the missing module means.
pub fn build(root: &Path, headers: &Path, out: &Path) -> Result<Modules> {
    let src = root.join("driver");
    if !src.join("Makefile").is_file() {
        return Ok(Modules {
            kos: Vec::new(),
            problem: Some("driver/Makefile does not exist yet".into()),
        });
    }
    let dir = out.join("driver");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    copy_sources(&src, &dir)?;
    let log = out.join("make.log");
    let output = Command::new("make")
        .arg(format!("KDIR={}", headers.display()))
        .arg("W=1")
        .arg("-j2")
        .current_dir(&dir)
        .env("PWD", &dir)
        .output()
        .context("running make")?;
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    std::fs::write(&log, &text).with_context(|| format!("writing {}", log.display()))?;
    let warnings = compiler_warnings(&String::from_utf8_lossy(&text));
    if output.status.success() && !warnings.is_empty() {
        return Ok(Modules {
            kos: Vec::new(),
            problem: Some(format!(
                "make W=1 printed {} warning(s); see {}:\n      {}",
                warnings.len(),
                log.display(),
                warnings.join("\n      ")
            )),
        });
    }
    if !output.status.success() {
        let tail = String::from_utf8_lossy(&text)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n      ");
        return Ok(Modules {
            kos: Vec::new(),
            problem: Some(format!(
                "make failed ({}); see {}:\n      {tail}",
                output.status,
                log.display()
            )),
        });
    }
    let mut kos = Vec::new();
    find_kos(&dir, &mut kos)?;
    Ok(order(kos))
}

/// The compiler's `warning:` lines of a build log.
fn compiler_warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("warning:"))
        .map(str::to_owned)
        .collect()
}

/// Puts the core module first and reports if it is missing.
fn order(mut kos: Vec<PathBuf>) -> Modules {
    kos.sort_by_key(|k| (file_name(k) != CORE_MODULE, file_name(k)));
    let problem = match kos.first() {
        Some(k) if file_name(k) == CORE_MODULE => None,
        _ => Some(format!("make built no {CORE_MODULE}")),
    };
    Modules { kos, problem }
}

/// True for kbuild output that must not be copied into a fresh build tree.
fn is_build_output(name: &str) -> bool {
    name.starts_with('.')
        || [
            ".o", ".ko", ".mod", ".mod.c", ".order", ".symvers", ".a", ".tmp", ".cmd",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn copy_sources(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_build_output(&name) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_sources(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

fn find_kos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            find_kos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_warnings_are_found() {
        let log = "  CC [M]  src/isc_main.o\nsrc/isc_main.c:10:5: warning: unused variable 'x' [-Wunused-variable]\nSkipping BTF generation for isc.ko due to unavailability of vmlinux\n";
        assert_eq!(compiler_warnings(log).len(), 1);
        assert!(compiler_warnings("  LD [M]  isc.ko\n").is_empty());
    }

    #[test]
    fn build_output_is_not_copied() {
        for n in [
            "isc.o",
            "isc.ko",
            ".isc.o.cmd",
            "Module.symvers",
            "modules.order",
            "isc.mod.c",
        ] {
            assert!(is_build_output(n), "{n}");
        }
        for n in ["Makefile", "Kbuild", "isc.c", "isc.h", "hostile.c"] {
            assert!(!is_build_output(n), "{n}");
        }
    }

    #[test]
    fn core_module_loads_first() {
        let m = order(vec![
            "/b/sample/isc_sample.ko".into(),
            "/b/src/isc.ko".into(),
        ]);
        assert_eq!(m.kos[0], PathBuf::from("/b/src/isc.ko"));
        assert!(m.problem.is_none());
        let m = order(vec!["/b/sample/isc_sample.ko".into()]);
        assert!(m.problem.unwrap().contains("isc.ko"));
    }
}
