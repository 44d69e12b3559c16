//! The live broker against its own OpenAPI document, with schemathesis (installed by
//! `scripts/install-toolchains`): generated and mutated requests to every operation must never
//! get a 5xx, and every answer must match the document (status, content type, schema,
//! headers).

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::access::{ADMIN, secured};
use crate::processors::{deploy, upload};
use crate::wasm::{example, workspace};

/// The schemathesis command: `WEIR_SCHEMATHESIS`, the one `scripts/install-toolchains` put in
/// `target/toolchains/python/bin`, or the PATH's.
fn schemathesis() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let pinned = workspace().join("target/toolchains/python/bin/schemathesis");
    if pinned.exists() {
        return Some(pinned);
    }
    Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("schemathesis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_broker_conforms_to_its_openapi_document_and_never_answers_5xx() {
    let Some(st) = schemathesis() else {
        println!("skipped: schemathesis is not installed (scripts/install-toolchains installs it)");
        return;
    };
    let (env, admin) = secured();
    admin.create_topic("t", 2).await;
    admin.create_topic("out", 1).await;
    admin
        .produce("t", json!([{"value": "a"}, {"key": "k", "value": {"n": 1}}]))
        .await;
    let id = upload(&admin, &example("uppercase")).await;
    let (status, body) = deploy(&admin, "p", json!({"module": id, "input": "t", "outputs": ["out"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = format!("{}/v1/openapi.json", env.api.base);
    let hooks = workspace().join("tests/schemathesis");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &url])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            ])
            .args(["--max-examples", "25", "--seed", "1", "--request-timeout", "10"])
            .args(["--suppress-health-check", "all", "--max-failures", "20", "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", hooks)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    assert!(report.contains("passed"), "{report}");
    // Still serving after all that.
    assert_eq!(env.api.get("/healthz").await.0, StatusCode::OK);
}
