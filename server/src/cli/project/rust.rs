//! Rust: cargo builds the component itself (wasm32-wasip2); the SDK crate is vendored into
//! `.weir/weir-sdk` for projects made by `weir processor new`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::sdk;

pub fn build_rust(project: &Path) -> anyhow::Result<PathBuf> {
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    if text.contains(".weir/weir-sdk") {
        sdk::write_rust(project)?;
    }
    eprintln!("  cargo build --release --target wasm32-wasip2");
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(project)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cargo")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut wasm = None;
    let manifest = manifest.canonicalize()?;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let ours = msg["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == manifest);
        let files = msg["filenames"].as_array().into_iter().flatten();
        for f in files.filter_map(|f| f.as_str()) {
            if ours && f.ends_with(".wasm") {
                wasm = Some(PathBuf::from(f));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed ({status}); is the target installed? rustup target add wasm32-wasip2");
    }
    wasm.context("cargo built no .wasm: a processor crate needs crate-type = [\"cdylib\"] in [lib]")
}
