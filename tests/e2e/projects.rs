//! `weir processor new`, `build` and `deploy` on projects: a fresh project in every language
//! builds and passes records through; deploy inside a project takes processor.toml's settings;
//! long-running Python and JavaScript instances keep their memory flat.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{ok, weir};
use crate::harness::{BIN, Env};
use crate::processors::{deploy, upload, wait_for_lag_zero, wait_for_records};
use crate::wasm::{build_project, copy_project, workspace};

const RECORDS: &str = concat!(
    r#"{"key":"k1","value":"hello","headers":{"trace":"t-1"}}"#,
    "\n",
    r#"{"value_b64":"AP8B"}"#,
    "\n",
    r#"{"key":"k3","value":"{\"a\":1}"}"#,
    "\n"
);

/// `weir processor new` for `lang` in a fresh directory; returns it.
fn new_project(lang: &str, dir: &Path) -> PathBuf {
    let project = dir.join(format!("fresh-{lang}"));
    let name = format!("fresh-{lang}");
    let out = ok(&weir(
        "",
        &[
            "processor",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            project.to_str().unwrap(),
        ],
        None,
    ));
    assert!(out.contains("created"), "{out}");
    for file in ["processor.toml", ".gitignore", "README.md"] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    project
}

fn passes_records_through(wasm: &Path) {
    let out = ok(&weir("", &["processor", "test", wasm.to_str().unwrap()], Some(RECORDS)));
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        (&lines[0]["key"], &lines[0]["value"], &lines[0]["headers"]),
        (&json!("k1"), &json!("hello"), &json!({"trace": "t-1"}))
    );
    assert_eq!(
        (&lines[1]["key"], &lines[1]["value_b64"]),
        (&Value::Null, &json!("AP8B"))
    );
    assert_eq!(lines[2]["value"], "{\"a\":1}");
    assert_eq!(
        lines
            .iter()
            .map(|l| l["input_offset"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

fn fresh_template_builds_and_passes_records_through(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(lang, dir.path());
    passes_records_through(&build_project(&project));
    // Nothing changed: the second build does not bundle again.
    let again = std::process::Command::new(crate::harness::BIN)
        .args(["processor", "build"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("up to date"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // A change to a source does.
    let src = std::fs::read_dir(&project)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_stem().is_some_and(|s| s == "processor"))
        .expect("the project's processor source");
    let mut text = std::fs::read_to_string(&src).unwrap();
    text.push('\n');
    std::fs::write(&src, text).unwrap();
    let rebuilt = std::process::Command::new(crate::harness::BIN)
        .args(["processor", "build"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(rebuilt.status.success());
    assert!(String::from_utf8_lossy(&rebuilt.stderr).contains("building"));
}

#[test]
fn new_python_project_builds_and_passes_records_through() {
    fresh_template_builds_and_passes_records_through("python");
}

#[test]
fn new_js_project_builds_and_passes_records_through() {
    fresh_template_builds_and_passes_records_through("js");
}

#[test]
fn new_c_project_builds_and_passes_records_through() {
    fresh_template_builds_and_passes_records_through("c");
}

#[test]
fn new_zig_project_builds_and_passes_records_through() {
    fresh_template_builds_and_passes_records_through("zig");
}

#[test]
fn new_assemblyscript_project_builds_and_passes_records_through() {
    fresh_template_builds_and_passes_records_through("assemblyscript");
}

#[test]
fn new_rust_project_tests_natively_builds_and_passes_records_through() {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project("rust", dir.path());
    // A shared target directory: the SDK's dependencies compile once across test runs.
    let target = workspace().join("target").join("e2e-templates");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["test", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(status.success(), "the template's own unit test fails");
    let out = Command::new(BIN)
        .args(["processor", "build"])
        .arg(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    passes_records_through(Path::new(String::from_utf8(out.stdout).unwrap().trim()));
}

#[test]
fn new_refuses_a_bad_name_and_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = weir(
        "",
        &[
            "processor",
            "new",
            "../escape",
            "--lang",
            "c",
            "--dir",
            dir.path().join("x").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("processor name"));
    std::fs::write(dir.path().join("taken"), "x").unwrap();
    let out = weir(
        "",
        &[
            "processor",
            "new",
            "p",
            "--lang",
            "c",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"), "{out:?}");
    let out = weir("", &["processor", "new", "p", "--lang", "cobol"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cobol"), "{out:?}");
}

#[test]
fn build_outside_a_project_or_with_a_bad_manifest_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = weir("", &["processor", "build", dir.path().to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("processor.toml") && stderr.contains("weir processor new"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("processor.toml"),
        "name = \"p\"\nlanguage = \"c\"\n[deploy]\ninputs = \"x\"\n",
    )
    .unwrap();
    let out = weir("", &["processor", "build", dir.path().to_str().unwrap()], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deploy") && stderr.contains("inputs"), "{stderr}");

    // A C project whose code does not compile: the compiler's message reaches the user.
    std::fs::write(dir.path().join("processor.toml"), "name = \"p\"\nlanguage = \"c\"\n").unwrap();
    std::fs::write(dir.path().join("processor.c"), "this is not C\n").unwrap();
    let out = weir("", &["processor", "build", dir.path().to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("processor.c") && stderr.contains("zig cc"), "{stderr}");
}

#[tokio::test]
async fn deploy_inside_a_project_builds_it_and_takes_settings_from_its_manifest() {
    let env = Env::start();
    env.api.create_topic("logs", 1).await;
    env.api.create_topic("logs-errors", 1).await;
    let dir = workspace().join("target").join("e2e-examples").join("deploy-c-filter");
    copy_project(&workspace().join("examples/c/filter"), &dir);
    let url = env.server.url.clone();
    let project = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        ok(&weir(
            &url,
            &["processor", "deploy", "--project", project.to_str().unwrap()],
            None,
        ))
    })
    .await
    .unwrap();
    assert!(out.contains("deployed filter-c"), "{out}");
    let (_, view) = env.api.get("/v1/processors/filter-c").await;
    assert_eq!(
        (view["input"].as_str(), view["config"]["contains"].as_str()),
        (Some("logs"), Some("ERROR"))
    );
    assert_eq!(view["on_error"], "dead_letter");
    env.api
        .produce(
            "logs",
            json!([{"value": "ERROR one"}, {"value": "fine"}, {"value": "ERROR two"}]),
        )
        .await;
    let out = wait_for_records(&env.api, "logs-errors", 2).await;
    let values: Vec<&str> = out.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["ERROR one", "ERROR two"]);

    // Flags override the manifest: the same project, another name and needle.
    let url = env.server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        ok(&weir(
            &url,
            &[
                "processor",
                "deploy",
                "fine-only",
                "--project",
                dir.to_str().unwrap(),
                "-c",
                "contains=fine",
            ],
            None,
        ))
    })
    .await
    .unwrap();
    assert!(out.contains("deployed fine-only"), "{out}");
    let (_, view) = env.api.get("/v1/processors/fine-only").await;
    assert_eq!(view["config"]["contains"], "fine");
}

/// Pushes `batches` batches of 1000 records through a Python and a JavaScript passthrough and
/// checks that each instance's memory stays where it was after the first batches: a toolchain
/// that leaked what each call returns (componentize-py's `list<u8>`, componentize-js) would
/// grow by ~130 KB per batch and hit the memory cap.
#[tokio::test]
async fn python_and_js_instances_keep_their_memory_flat_over_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["python", "js"] {
        let project = new_project(lang, dir.path());
        let wasm = tokio::task::spawn_blocking(move || build_project(&project))
            .await
            .unwrap();
        let env = Env::start();
        env.api.create_topic("in", 1).await;
        env.api.create_topic("out", 1).await;
        let id = upload(&env.api, &wasm).await;
        let (status, body) = deploy(&env.api, "p", json!({"module": id, "input": "in", "outputs": ["out"]})).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        let batch: Vec<Value> = (0..1000).map(|i| json!({"value": format!("{i:0>120}")})).collect();
        let produce = |n: usize| {
            let api = env.api.clone();
            let batch = Value::Array(batch.clone());
            async move {
                for _ in 0..n {
                    api.produce("in", batch.clone()).await;
                }
            }
        };
        produce(20).await;
        wait_for_lag_zero(&env.api, "p").await;
        let memory = |v: &Value| v["lag"][0]["memory_bytes"].as_u64().unwrap();
        let (_, view) = env.api.get("/v1/processors/p").await;
        let before = memory(&view);
        assert!(before > 0, "{view}");
        produce(200).await;
        wait_for_lag_zero(&env.api, "p").await;
        let (_, view) = env.api.get("/v1/processors/p").await;
        assert_eq!(view["records_out"], 220_000, "{view}");
        assert_eq!(view["traps"], 0, "{view}");
        let after = memory(&view);
        assert!(
            after <= before + 4 * 1024 * 1024,
            "{lang}: memory grew from {before} to {after} bytes over 200 batches"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
