//! The kernels `vm-test` boots: the Debian cloud kernels installed on the
//! host (an image in `/boot`, the matching headers in `/usr/src`), and the
//! debug kernel that `scripts/debug-kernel` builds once per machine from
//! Debian's 6.12 source with KASAN, UBSAN, lockdep and kmemleak.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel series `vm-test` runs, oldest first.
pub const SERIES: &[&str] = &["6.1", "6.12"];

/// A bootable kernel with headers to build modules against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// `6.1` or `6.12`.
    pub series: String,
    /// The release string (`uname -r`), e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// `/boot/vmlinuz-<release>`.
    pub image: PathBuf,
    /// `/usr/src/linux-headers-<release>` (the build tree for the debug
    /// kernel).
    pub headers: PathBuf,
    /// The debug kernel: its checkers are verified and kmemleak is scanned.
    pub debug: bool,
}

/// The series name of the debug kernel in reports.
pub const DEBUG_SERIES: &str = "debug";

/// How to get the debug kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugBuild {
    /// Build it if the cache is cold (a long build).
    IfNeeded,
    /// Only use a kernel already in the cache; an error otherwise.
    CachedOnly,
}

/// The debug kernel, built by `scripts/debug-kernel` in `root` (its
/// progress goes to stderr) or taken from the machine's cache.
pub fn debug_kernel(root: &Path, how: DebugBuild) -> Result<Kernel> {
    let script = root.join("scripts/debug-kernel");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if how == DebugBuild::CachedOnly {
        cmd.arg("--cached");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}){}",
            script.display(),
            out.status,
            if how == DebugBuild::CachedOnly {
                "; the debug kernel is not built on this machine yet: run scripts/debug-kernel"
            } else {
                ""
            }
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    debug_kernel_in(&dir)
}

/// The debug kernel in a cache directory (`bzImage`, `build/`).
fn debug_kernel_in(dir: &Path) -> Result<Kernel> {
    let image = dir.join("bzImage");
    let headers = dir.join("build");
    let release_file = headers.join("include/config/kernel.release");
    let release = std::fs::read_to_string(&release_file)
        .with_context(|| format!("reading {}", release_file.display()))?
        .trim()
        .to_string();
    if !image.is_file() || !headers.join("Makefile").is_file() {
        bail!("{} holds no bzImage and build tree", dir.display());
    }
    Ok(Kernel {
        series: DEBUG_SERIES.to_string(),
        release,
        image,
        headers,
        debug: true,
    })
}

/// For each wanted series (all of [`SERIES`] if `only` is empty), the newest
/// installed kernel of that series that has both an image and headers.
pub fn discover(only: &[String]) -> Vec<(String, Option<Kernel>)> {
    let releases = list_releases(Path::new("/boot"));
    SERIES
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == *s))
        .map(|series| {
            let best = releases
                .iter()
                .filter(|r| series_of(r).as_deref() == Some(*series))
                .filter_map(|r| kernel(series, r, Path::new("/boot"), Path::new("/usr/src")))
                .max_by(|a, b| version_key(&a.release).cmp(&version_key(&b.release)));
            (series.to_string(), best)
        })
        .collect()
}

/// Release strings of the `vmlinuz-*-cloud-amd64` images in `boot`.
fn list_releases(boot: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(boot) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(String::from))
        .filter(|r| r.ends_with("-cloud-amd64"))
        .collect();
    out.sort();
    out
}

fn kernel(series: &str, release: &str, boot: &Path, src: &Path) -> Option<Kernel> {
    let image = boot.join(format!("vmlinuz-{release}"));
    let headers = src.join(format!("linux-headers-{release}"));
    (image.is_file() && headers.join("Makefile").is_file()).then(|| Kernel {
        series: series.to_string(),
        release: release.to_string(),
        image,
        headers,
        debug: false,
    })
}

/// `major.minor` of a release string (`6.12.117+deb12-cloud-amd64` -> `6.12`).
pub fn series_of(release: &str) -> Option<String> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().filter(|p| !p.is_empty())?;
    let minor = parts.next().filter(|p| !p.is_empty())?;
    Some(format!("{major}.{minor}"))
}

/// Numeric components of a release, for picking the newest.
fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_parsed_exactly() {
        assert_eq!(series_of("6.1.0-56-cloud-amd64").as_deref(), Some("6.1"));
        assert_eq!(
            series_of("6.12.117+deb12-cloud-amd64").as_deref(),
            Some("6.12")
        );
        assert_eq!(series_of("cloud"), None);
        assert_eq!(series_of("6"), None);
    }

    #[test]
    fn newest_release_wins() {
        assert!(version_key("6.1.0-56-cloud-amd64") > version_key("6.1.0-9-cloud-amd64"));
    }

    #[test]
    fn needs_image_and_headers() {
        let tmp = std::env::temp_dir().join(format!("xtask-kernels-{}", std::process::id()));
        let (boot, src) = (tmp.join("boot"), tmp.join("src"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(src.join("linux-headers-6.1.0-1-cloud-amd64")).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.0-1-cloud-amd64"), b"x").unwrap();
        std::fs::write(boot.join("vmlinuz-6.12.1-cloud-amd64"), b"x").unwrap();
        std::fs::write(boot.join("config-6.1.0-1-cloud-amd64"), b"x").unwrap();
        assert_eq!(
            list_releases(&boot),
            ["6.1.0-1-cloud-amd64", "6.12.1-cloud-amd64"]
        );
        // Headers without a Makefile are not usable.
        assert!(kernel("6.1", "6.1.0-1-cloud-amd64", &boot, &src).is_none());
        std::fs::write(src.join("linux-headers-6.1.0-1-cloud-amd64/Makefile"), b"").unwrap();
        let k = kernel("6.1", "6.1.0-1-cloud-amd64", &boot, &src).unwrap();
        assert_eq!(k.image, boot.join("vmlinuz-6.1.0-1-cloud-amd64"));
        assert!(kernel("6.12", "6.12.1-cloud-amd64", &boot, &src).is_none());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn debug_kernel_from_its_cache_directory() {
        let tmp = std::env::temp_dir().join(format!("xtask-debug-kernel-{}", std::process::id()));
        let build = tmp.join("build");
        std::fs::create_dir_all(build.join("include/config")).unwrap();
        assert!(debug_kernel_in(&tmp).is_err());
        std::fs::write(build.join("include/config/kernel.release"), "6.12.57\n").unwrap();
        std::fs::write(build.join("Makefile"), b"").unwrap();
        // No image yet: not usable.
        assert!(debug_kernel_in(&tmp).is_err());
        std::fs::write(tmp.join("bzImage"), b"x").unwrap();
        let k = debug_kernel_in(&tmp).unwrap();
        assert_eq!(
            (k.series.as_str(), k.release.as_str(), k.debug),
            ("debug", "6.12.57", true)
        );
        assert_eq!((k.image, k.headers), (tmp.join("bzImage"), build));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
