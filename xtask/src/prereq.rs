//! Host prerequisites of `vm-test`, and the one message that names them.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The Debian packages that provide everything `vm-test` needs
/// (`scripts/vm-prereqs` installs exactly these).
pub const PACKAGES: &str = "qemu-system-x86 busybox-static cpio linux-image-cloud-amd64 \
linux-headers-cloud-amd64 linux-image-6.12-cloud-amd64 linux-headers-6.12-cloud-amd64 \
linux-source-6.12 flex bison bc libelf-dev libssl-dev";

/// Tools looked up in `PATH`.
const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "busybox",
    "cpio",
    "make",
    "gcc",
    "ldd",
];

/// One line naming what is missing and how to get it.
pub fn missing_message(what: &str) -> String {
    format!("missing prerequisite: {what}; install with `apt-get install {PACKAGES}` (or run scripts/vm-prereqs as root)")
}

/// Finds `tool` in `PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails with [`missing_message`] if a required tool is not installed.
pub fn check_tools() -> Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        bail!("{}", missing_message(&missing.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_every_package() {
        let m = missing_message("cpio");
        for p in PACKAGES.split_whitespace() {
            assert!(m.contains(p), "{p}");
        }
        assert!(!m.contains('\n'));
    }

    #[test]
    fn which_finds_a_shell_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("no-such-tool-isc-xtask").is_none());
    }
}
