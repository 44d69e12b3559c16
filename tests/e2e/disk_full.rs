//! A full disk, on a small tmpfs the test mounts (as root; skipped with a reason elsewhere):
//! producers get 507 `insufficient_storage`, the broker never crashes, starts again on the
//! full disk, and a delete frees space for producers to carry on, with nothing acknowledged lost.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, Server};

/// A tmpfs of `mib` MiB, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            path: dir.path().join("data"),
            _dir: dir,
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self._dir.path()).status();
    }
}

/// Produces 32 KiB records to `topic` until a request is refused; returns the acknowledged
/// values and the refusal.
async fn fill(api: &Api, topic: &str) -> (Vec<String>, StatusCode, Value) {
    let mut acked = Vec::new();
    for i in 0.. {
        let value = format!("{topic}-{i}-{}", "d".repeat(32 * 1024));
        let (status, body) = api
            .post(
                &format!("/v1/topics/{topic}/records"),
                json!({"records": [{"value": value}]}),
            )
            .await;
        if status != StatusCode::OK {
            return (acked, status, body);
        }
        acked.push(value);
    }
    unreachable!()
}

async fn values(api: &Api, topic: &str) -> Vec<String> {
    api.fetch_all(topic, 0, 0)
        .await
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_full_disk_answers_507_keeps_serving_restarts_and_recovers_after_a_delete() {
    let disk = match SmallDisk::mount(24) {
        Ok(d) => d,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    std::fs::create_dir_all(&disk.path).unwrap();
    let mut server = Server::start(Path::new(&disk.path), &[]);
    let api = server.client();
    api.create_topic("ballast", 1).await;
    api.create_topic("keep", 1).await;
    let (ballast, _, _) = fill(&api, "ballast").await;
    assert!(ballast.len() > 100, "the disk took {} records", ballast.len());
    let (kept, status, body) = fill(&api, "keep").await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no space left"), "{message}");

    // Still alive, still serving reads, and every acknowledged record is there.
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(values(&api, "keep").await, kept);

    // A clean stop and a start on the full disk.
    server.stop();
    server.restart();
    let api = server.client();
    assert_eq!(values(&api, "keep").await, kept);
    let (status, _) = api
        .post(
            "/v1/topics/keep/records",
            json!({"records": [{"value": "d".repeat(32 * 1024)}]}),
        )
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);

    // Deleting a topic frees the space; producers carry on.
    let (status, body) = api.call(Method::DELETE, "/v1/topics/ballast", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let more = api
        .produce("keep", json!([{"value": "after"}, {"value": "the delete"}]))
        .await;
    assert_eq!(more.len(), 2);
    server.kill();
    server.restart();
    let api = server.client();
    let mut want = kept.clone();
    want.extend(["after".to_owned(), "the delete".to_owned()]);
    assert_eq!(values(&api, "keep").await, want);
}
