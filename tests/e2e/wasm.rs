//! Builds the example processors from source for wasm32-wasip2, once per test run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Every Rust example, built in one cargo invocation.
const EXAMPLES: &[&str] = &["uppercase", "filter", "router", "split", "identity"];

fn workspace() -> PathBuf {
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
