//! Processor projects in any language: `weir processor new` writes one from a template,
//! `weir processor build` turns it into a component, and `weir processor deploy` run inside it
//! takes its settings from `processor.toml`.
//!
//! Everything a build needs from Weir ships inside this binary: the WIT contract, the SDK of
//! each language, C bindings (wit-bindgen-c as a library) and the step that wraps a core module
//! into a component (wit-component, with the WASI adapter). The language toolchains themselves
//! (cargo, componentize-py, componentize-qjs, zig, asc) are found on the machine; their tested
//! versions are pinned in `scripts/toolchains/`.

mod component;
mod manifest;
mod native;
mod rust;
mod scripted;
mod sdk;
mod templates;
mod tools;

use std::path::{Path, PathBuf};

pub use manifest::{Language, Manifest};
pub use templates::new;

/// `project/FILE`, which a language's build starts from; an error names it when it is missing.
fn source(project: &Path, file: &str) -> anyhow::Result<PathBuf> {
    let path = project.join(file);
    anyhow::ensure!(path.is_file(), "{} is missing", path.display());
    Ok(path)
}

/// Where a build puts the component: `project/target/NAME.wasm` (the directory is created).
fn artifact(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = project.join("target");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{name}.wasm")))
}

/// A processor project on disk.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Project {
    /// Opens the project in `dir` (its `processor.toml` must be valid).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let manifest = Manifest::read(dir)?;
        // Absolute: tools run inside the project and are handed paths within it.
        let dir = std::path::absolute(dir)?;
        Ok(Self { dir, manifest })
    }

    /// Builds the component and returns its path. A project whose sources did not change since
    /// its last build (same files, same contents, same `weir`) is not built again: a Python
    /// component takes half a minute to bundle. (Rust builds go through cargo, which knows.)
    pub fn build(&self) -> anyhow::Result<PathBuf> {
        let (dir, name) = (self.dir.as_path(), self.manifest.name.as_str());
        let language = self.manifest.language;
        let stamp_path = dir.join("target").join(".weir-build-fingerprint");
        let fingerprint = (language != Language::Rust)
            .then(|| fingerprint(dir, language))
            .transpose()?;
        if let Some(f) = &fingerprint {
            let out = dir.join("target").join(format!("{name}.wasm"));
            if out.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| &s == f) {
                eprintln!("{name} is up to date ({})", out.display());
                return Ok(out);
            }
        }
        eprintln!("building {name} ({}) in {}", language.name(), dir.display());
        let out = match language {
            Language::Rust => rust::build_rust(dir),
            Language::Python => scripted::build_python(dir, name),
            Language::Js => scripted::build_js(dir, name),
            Language::C => native::build_c(dir, name),
            Language::Zig => native::build_zig(dir, name),
            Language::Assemblyscript => native::build_assemblyscript(dir, name),
        }?;
        if let Some(f) = fingerprint {
            std::fs::write(&stamp_path, f)?;
        }
        Ok(out)
    }
}

/// Directories a fingerprint skips: build output, the SDK copy a build writes, tool caches.
const NOT_SOURCES: &[&str] = &[
    "target",
    ".weir",
    "node_modules",
    "__pycache__",
    ".git",
    "zig-cache",
    ".zig-cache",
];

/// A digest of everything a build reads from the project (paths and contents), the language
/// and this `weir` (whose SDKs and templates go into the component).
fn fingerprint(dir: &Path, language: Language) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            if NOT_SOURCES.iter().any(|n| name == *n) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    // This binary (its SDKs and templates go into the component): its size and time.
    if let Some(meta) = std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok()) {
        h.update(meta.len().to_le_bytes());
        h.update(format!("{:?}", meta.modified().ok()).as_bytes());
    }
    h.update(language.name().as_bytes());
    for f in files {
        h.update(f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&f)?);
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}
