//! Builds the example processors from source for wasm32-wasip2, once per test run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Every Rust example, built in one cargo invocation.
const EXAMPLES: &[&str] = &["uppercase", "filter", "router", "split", "identity", "wordcount"];

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// The component built from `examples/rust/NAME`.
pub fn example(name: &str) -> PathBuf {
    built(&format!("weir_example_{name}.wasm"))
}

/// A test guest of `tests/guests/`, by its file name stem.
pub fn guest(stem: &str) -> PathBuf {
    built(&format!("{stem}.wasm"))
}

/// The misbehaving guest of `tests/guests/chaos`.
pub fn chaos() -> PathBuf {
    built("weir_test_chaos.wasm")
}

fn built(file: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // A separate target directory: the outer `cargo test` may still hold the main one.
        let target = workspace().join("target").join("e2e-wasm");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace())
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target);
        for ex in EXAMPLES {
            cmd.args(["-p", &format!("weir-example-{ex}")]);
        }
        cmd.args([
            "-p",
            "weir-test-chaos",
            "-p",
            "weir-test-typed-upper",
            "-p",
            "weir-test-command",
        ]);
        let status = cmd.status().expect("cargo runs");
        assert!(
            status.success(),
            "building the examples for wasm32-wasip2 failed (is the target installed? rustup target add wasm32-wasip2)"
        );
        target.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(file);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Copies `src` into `dst`, leaving out what builds write (`target/`, `.weir/`,
/// `node_modules/`), so tests build examples without writing into the source tree.
pub fn copy_project(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["target", ".weir", "node_modules"].iter().any(|n| name == *n) {
            continue;
        }
        let (from, to) = (entry.path(), dst.join(&name));
        if from.is_dir() {
            copy_project(&from, &to);
        } else if std::fs::read(&from).ok() != std::fs::read(&to).ok() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// Runs `weir processor build DIR` and returns the component's path (its standard output).
pub fn build_project(dir: &std::path::Path) -> PathBuf {
    let out = Command::new(crate::harness::BIN)
        .args(["processor", "build"])
        .arg(dir)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "weir processor build {} failed (the language toolchains come from scripts/install-toolchains, which scripts/test runs):\n{stderr}",
        dir.display()
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.is_file(), "build printed {}, which is not a file", path.display());
    path
}

/// The component built from `examples/LANG/NAME` (copied under target/e2e-examples), once per
/// test run.
pub fn example_project(lang: &str, name: &str) -> PathBuf {
    project_built(
        &workspace().join("examples").join(lang).join(name),
        &format!("{lang}-{name}"),
    )
}

/// The component built from the test guest `tests/guests/PATH`, once per test run.
pub fn guest_project(path: &str) -> PathBuf {
    project_built(
        &workspace().join("tests").join("guests").join(path),
        &path.replace('/', "-"),
    )
}

fn project_built(src: &std::path::Path, key: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<BTreeMap<String, PathBuf>> = std::sync::Mutex::new(BTreeMap::new());
    // Held while building: two tests that need the same project wait for one build.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(key) {
        return path.clone();
    }
    let dir = workspace().join("target").join("e2e-examples").join(key);
    copy_project(src, &dir);
    let path = build_project(&dir);
    built.insert(key.to_owned(), path.clone());
    path
}
