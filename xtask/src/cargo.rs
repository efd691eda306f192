//! Asking cargo about the workspace and building executables through it.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo that runs this xtask (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A cargo target: its kinds (`lib`, `test`, `example`, ...) and its name.
type TargetSpec = (Vec<String>, String);

/// What `cargo metadata` says about the workspace.
#[derive(Debug)]
pub struct Metadata {
    /// Where cargo puts build output (honours `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
    /// Workspace packages: name and `(kinds, target name)` of each target.
    packages: Vec<(String, Vec<TargetSpec>)>,
}

impl Metadata {
    /// Runs `cargo metadata --no-deps` in `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let out = Command::new(cargo())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root)
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo metadata")?;
        if !out.status.success() {
            bail!("cargo metadata failed ({})", out.status);
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
        Self::from_json(&v)
    }

    /// Parses the JSON of `cargo metadata --format-version 1`.
    pub fn from_json(v: &Value) -> Result<Self> {
        let target_dir = v["target_directory"]
            .as_str()
            .context("cargo metadata has no target_directory")?
            .into();
        let packages = v["packages"]
            .as_array()
            .context("cargo metadata has no packages")?
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default().to_string();
                let targets = p["targets"]
                    .as_array()
                    .map(|ts| ts.iter().map(target_of).collect())
                    .unwrap_or_default();
                (name, targets)
            })
            .collect();
        Ok(Self {
            target_dir,
            packages,
        })
    }

    /// Names of `package`'s targets of `kind` (`test`, `example`, ...), or
    /// `None` if the package is not in the workspace.
    pub fn targets(&self, package: &str, kind: &str) -> Option<Vec<String>> {
        let (_, targets) = self.packages.iter().find(|(n, _)| n == package)?;
        Some(
            targets
                .iter()
                .filter(|(kinds, _)| kinds.iter().any(|k| k == kind))
                .map(|(_, name)| name.clone())
                .collect(),
        )
    }
}

fn target_of(t: &Value) -> TargetSpec {
    let kinds = t["kind"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (kinds, t["name"].as_str().unwrap_or_default().to_string())
}

/// An executable cargo built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Target kinds (`test`, `example`, `bin`, `lib`).
    pub kinds: Vec<String>,
    /// Target name.
    pub name: String,
    /// Path of the executable.
    pub executable: PathBuf,
}

/// Runs `cargo <args> --message-format=json-render-diagnostics` in `root`
/// (diagnostics go to the terminal) and returns every executable it built.
pub fn build(root: &Path, args: &[&str]) -> Result<Vec<Artifact>> {
    let out = Command::new(cargo())
        .args(args)
        .args(["--quiet", "--message-format=json-render-diagnostics"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("cargo {} failed ({})", args.join(" "), out.status);
    }
    Ok(parse_artifacts(&String::from_utf8_lossy(&out.stdout)))
}

/// The executables among cargo's JSON messages.
fn parse_artifacts(json_lines: &str) -> Vec<Artifact> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| {
            let executable = v["executable"].as_str()?.into();
            let (kinds, name) = target_of(&v["target"]);
            Some(Artifact {
                kinds,
                name,
                executable,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_the_executables_only() {
        let lines = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"x"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"device"},"executable":"/t/debug/deps/device-1"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(
            parse_artifacts(lines),
            [Artifact {
                kinds: vec!["test".into()],
                name: "device".into(),
                executable: "/t/debug/deps/device-1".into(),
            }]
        );
    }

    #[test]
    fn targets_by_kind() {
        let v: Value = serde_json::from_str(
            r#"{"target_directory":"/t","packages":[{"name":"p","targets":[
                {"kind":["lib"],"name":"p"},{"kind":["test"],"name":"a"},{"kind":["example"],"name":"e"}]}]}"#,
        )
        .unwrap();
        let m = Metadata::from_json(&v).unwrap();
        assert_eq!(m.target_dir, PathBuf::from("/t"));
        assert_eq!(m.targets("p", "test"), Some(vec!["a".to_string()]));
        assert_eq!(m.targets("p", "example"), Some(vec!["e".to_string()]));
        assert_eq!(m.targets("q", "test"), None);
    }
}
