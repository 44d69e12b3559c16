//! Compacted topics (`cleanup_policy: compact`): the newest record of each key stays, at its
//! offset; older ones and, after `delete_retention_ms`, tombstones go; a `kill -9` in the
//! middle of a pass loses nothing that was the newest of its key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, Env};

fn env() -> Env {
    Env::with_config("retention_check_interval_ms = 100\n")
}

/// Every record of partition 0, in offset order.
async fn records(api: &Api, topic: &str) -> Vec<Value> {
    api.fetch_all(topic, 0, 0).await
}

async fn produce_updates(api: &Api, rounds: u32, keys: u32) -> BTreeMap<String, (u64, String)> {
    let mut newest = BTreeMap::new();
    for round in 0..rounds {
        let batch: Vec<Value> = (0..keys)
            .map(|k| json!({"key": format!("k{k}"), "value": format!("v{round}-{k}-{}", "x".repeat(60))}))
            .collect();
        let offsets = api.produce("c", Value::Array(batch.clone())).await;
        for (r, (_, offset)) in batch.iter().zip(offsets) {
            newest.insert(
                r["key"].as_str().unwrap().to_owned(),
                (offset, r["value"].as_str().unwrap().to_owned()),
            );
        }
    }
    newest
}

fn check(records: &[Value], newest: &BTreeMap<String, (u64, String)>) {
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut prev = None;
    for r in records {
        let offset = r["offset"].as_u64().unwrap();
        assert!(prev.is_none_or(|p| offset > p), "offsets only grow");
        prev = Some(offset);
        last.insert(
            r["key"].as_str().unwrap().to_owned(),
            (offset, r["value"].as_str().unwrap_or("").to_owned()),
        );
    }
    assert_eq!(&last, newest, "the newest record of every key, at its own offset");
}

#[tokio::test]
async fn a_compacted_topic_keeps_the_newest_record_of_each_key_at_its_offset() {
    let env = env();
    let (status, body) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "c", "cleanup_policy": "compact", "segment_bytes": 4096, "delete_retention_ms": 0}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let newest = produce_updates(&env.api, 40, 10).await;
    // A tombstone for one key.
    let t = env.api.produce("c", json!([{"key": "k3", "value": null}])).await;
    let mut newest = newest;
    newest.insert("k3".into(), (t[0].1, String::new()));
    let before = records(&env.api, "c").await.len();
    // Passes run in the background (every 100 ms here): wait until most is gone,
    // generously, since a loaded machine runs them late.
    let mut after = Vec::new();
    for _ in 0..1200 {
        after = records(&env.api, "c").await;
        if after.len() * 4 < before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        after.len() * 4 < before,
        "compaction ran: {} of {before} records left",
        after.len()
    );
    check(&after, &newest);
    let tomb = after.iter().rfind(|r| r["key"] == "k3").unwrap();
    assert_eq!(tomb["value"], Value::Null, "the newest record of k3 is its tombstone");
    let (_, t) = env.api.get("/v1/topics/c").await;
    assert_eq!(t["partitions"][0]["log_start_offset"], 0, "compaction moves no offset");
}

#[tokio::test]
async fn kill_9_during_compaction_keeps_the_newest_record_of_every_key() {
    let mut env = env();
    let (status, body) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "c", "cleanup_policy": "compact", "segment_bytes": 4096}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let mut newest = BTreeMap::new();
    for kill in 0..5u64 {
        newest.extend(produce_updates(&env.api, 30, 12).await);
        // Passes start every 100 ms: kill at a different moment each time.
        tokio::time::sleep(Duration::from_millis(60 + 37 * kill)).await;
        env.server.kill();
        env.server.restart();
        env.api = env.server.client();
        check(&records(&env.api, "c").await, &newest);
    }
}
