//! Finding the language toolchains a build needs, and running them. The versions Weir is tested
//! with live in `scripts/toolchains/` and are compiled in, so hints name exact versions.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const REQUIREMENTS: &str = include_str!("../../../../scripts/toolchains/requirements.txt");
const PACKAGE_JSON: &str = include_str!("../../../../scripts/toolchains/package.json");

/// The version of a PyPI package in `scripts/toolchains/requirements.txt`.
pub fn pip_version(package: &str) -> &'static str {
    REQUIREMENTS
        .lines()
        .filter_map(|l| l.split_once("=="))
        .find(|(name, _)| name.trim() == package)
        .map(|(_, v)| v.trim())
        .expect("every tool is pinned in scripts/toolchains/requirements.txt")
}

/// The version of an npm package in `scripts/toolchains/package.json`.
pub fn npm_version(package: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(PACKAGE_JSON).expect("package.json is JSON");
    json["devDependencies"][package]
        .as_str()
        .expect("every tool is pinned in scripts/toolchains/package.json")
        .to_owned()
}

/// A program and the arguments that come before the tool's own (`python3 -m ziglang`).
#[derive(Debug, Clone)]
pub struct Tool {
    program: PathBuf,
    prefix: Vec<OsString>,
}

impl Tool {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.prefix);
        c
    }
}

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Zig: `$WEIR_ZIG`, `zig` on `PATH`, the `ziglang` PyPI package's `python-zig` or
/// `python3 -m ziglang`.
pub fn zig() -> anyhow::Result<Tool> {
    if let Some(path) = std::env::var_os("WEIR_ZIG") {
        return Ok(Tool {
            program: path.into(),
            prefix: Vec::new(),
        });
    }
    for name in ["zig", "python-zig"] {
        if let Some(program) = on_path(name) {
            return Ok(Tool {
                program,
                prefix: Vec::new(),
            });
        }
    }
    for python in ["python3", "python"] {
        if let Some(program) = on_path(python) {
            let found = Command::new(&program)
                .args(["-c", "import ziglang"])
                .output()
                .is_ok_and(|o| o.status.success());
            if found {
                return Ok(Tool {
                    program,
                    prefix: vec!["-m".into(), "ziglang".into()],
                });
            }
        }
    }
    bail!(
        "zig was not found. Install it with `pip install ziglang=={}` (or put zig on PATH, or set WEIR_ZIG)",
        pip_version("ziglang")
    )
}

/// A program installed from PyPI, on `PATH`.
pub fn pip_tool(name: &str) -> anyhow::Result<Tool> {
    match on_path(name) {
        Some(program) => Ok(Tool {
            program,
            prefix: Vec::new(),
        }),
        None => bail!(
            "{name} was not found on PATH. Install it with `pip install {name}=={}`",
            pip_version(name)
        ),
    }
}

/// A program from an npm package: the project's `node_modules/.bin` first, then `PATH`.
pub fn npm_tool(project: &Path, bin: &str, package: &str) -> anyhow::Result<Tool> {
    let local = project.join("node_modules").join(".bin").join(bin);
    if local.is_file() {
        return Ok(Tool {
            program: local,
            prefix: Vec::new(),
        });
    }
    match on_path(bin) {
        Some(program) => Ok(Tool {
            program,
            prefix: Vec::new(),
        }),
        None => bail!(
            "{bin} was not found. Run `npm install` in {} (its package.json pins {package}), or install it with `npm install -g {package}@{}`",
            project.display(),
            npm_version(package)
        ),
    }
}

/// Runs `cmd` in `dir`, saying what it does. Its output goes to standard error: standard output
/// carries only the built file's path, so that `$(weir processor build)` works.
pub fn run(mut cmd: Command, dir: &Path, what: &str) -> anyhow::Result<()> {
    eprintln!("  {what}");
    let status = cmd
        .current_dir(dir)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Writes `contents` to `path` (creating directories) unless it already holds exactly that, so
/// that generated files keep their times and incremental builds stay incremental.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_come_from_the_toolchain_files() {
        assert!(pip_version("componentize-py").starts_with("0."));
        assert!(!npm_version("assemblyscript").is_empty());
    }
}
