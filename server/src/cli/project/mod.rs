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

    /// Builds the component and returns its path.
    pub fn build(&self) -> anyhow::Result<PathBuf> {
        let (dir, name) = (self.dir.as_path(), self.manifest.name.as_str());
        eprintln!(
            "building {name} ({}) in {}",
            self.manifest.language.name(),
            dir.display()
        );
        match self.manifest.language {
            Language::Rust => rust::build_rust(dir),
            Language::Python => scripted::build_python(dir, name),
            Language::Js => scripted::build_js(dir, name),
            Language::C => native::build_c(dir, name),
            Language::Zig => native::build_zig(dir, name),
            Language::Assemblyscript => native::build_assemblyscript(dir, name),
        }
    }
}
