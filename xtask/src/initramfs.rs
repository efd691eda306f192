//! Packing the guest's root file system: busybox, the modules, the programs
//! and every shared library they load, as a gzipped cpio (newc) archive.

use crate::init_script::MODULE_DIR;
use crate::modules::{file_name, Modules};
use crate::payload::GuestProgram;
use crate::prereq;
use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Stages the root in `stage` (emptied first) and writes the archive to `out`.
pub fn pack(
    stage: &Path,
    mods: &Modules,
    programs: &[GuestProgram],
    init: &str,
    out: &Path,
) -> Result<()> {
    if stage.exists() {
        std::fs::remove_dir_all(stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "opt/isc",
        &MODULE_DIR[1..],
    ] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    let busybox = prereq::which("busybox").context("busybox not found")?;
    install_busybox(stage, &busybox)?;

    let mut executables = vec![busybox];
    for ko in &mods.kos {
        copy(ko, &stage.join(&MODULE_DIR[1..]).join(file_name(ko)))?;
    }
    for p in programs {
        copy(&p.host_path, &guest(stage, &p.guest_path))?;
        executables.push(p.host_path.clone());
    }
    let mut libs = BTreeSet::new();
    for exe in &executables {
        libs.extend(shared_libraries(exe)?);
    }
    for lib in &libs {
        copy(lib, &guest(stage, &lib.to_string_lossy()))?;
    }

    let init_path = stage.join("init");
    std::fs::write(&init_path, init)?;
    std::fs::set_permissions(&init_path, std::fs::Permissions::from_mode(0o755))?;
    write_cpio_gz(stage, out)
}

/// `stage` joined with an absolute guest path.
fn guest(stage: &Path, abs: &str) -> PathBuf {
    stage.join(abs.trim_start_matches('/'))
}

/// Copies `from` (following symlinks) to `to`, creating parent directories.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Installs busybox as `/bin/busybox` with a symlink per applet.
fn install_busybox(stage: &Path, busybox: &Path) -> Result<()> {
    copy(busybox, &stage.join("bin/busybox"))?;
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .context("running busybox --list")?;
    if !out.status.success() {
        bail!("busybox --list failed ({})", out.status);
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", stage.join("bin").join(applet))
            .with_context(|| format!("linking applet {applet}"))?;
    }
    Ok(())
}

/// The shared libraries (and dynamic loader) `exe` needs, from `ldd`.
/// Static executables need none.
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", exe.display(), err.trim());
    }
    parse_ldd(&text).with_context(|| format!("libraries of {}", exe.display()))
}

/// Parses `ldd` output: `name => /path (addr)` and `/path (addr)` lines.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not a dynamic executable") || line.contains("statically linked") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("shared library {} not found", name.trim());
                }
                rest
            }
            None => line,
        };
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Every path under `stage`, relative, parents before children.
fn list_tree(stage: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(stage.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = rel.join(e.file_name());
        out.push(path.clone());
        if e.file_type()?.is_dir() {
            list_tree(stage, &path, out)?;
        }
    }
    Ok(())
}

/// Archives `stage` with `cpio -o -H newc` (owner root) and gzips it to `out`.
fn write_cpio_gz(stage: &Path, out: &Path) -> Result<()> {
    let mut paths = Vec::new();
    list_tree(stage, Path::new(""), &mut paths)?;
    let mut list = String::new();
    for p in &paths {
        list.push_str(&p.to_string_lossy());
        list.push('\n');
    }
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(stage)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running cpio")?;
    let mut stdin = child.stdin.take().context("cpio stdin")?;
    // Feed the list from a thread while the archive streams out.
    let feeder = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let mut stdout = child.stdout.take().context("cpio stdout")?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
    std::io::copy(&mut stdout, &mut gz).context("compressing the archive")?;
    gz.finish()?.flush()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("cpio feeder panicked"))?
        .context("writing the file list to cpio")?;
    let status = child.wait()?;
    if !status.success() {
        bail!("cpio failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_paths_including_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                "/lib/x86_64-linux-gnu/libc.so.6".into(),
                "/lib64/ld-linux-x86-64.so.2".into(),
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn a_real_binary_needs_libc() {
        let libs = shared_libraries(Path::new("/bin/ls")).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")));
        assert!(libs
            .iter()
            .any(|l| l.to_string_lossy().contains("ld-linux")));
    }
}
