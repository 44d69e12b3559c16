use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Api, Env};

/// Produces batches until a request fails; returns every acknowledged (partition, offset, value).
async fn produce_until_failure(api: Api, tag: String, stop: Arc<AtomicBool>) -> Vec<(u64, u64, String)> {
    let mut acked = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let values: Vec<String> = (0..50).map(|i| format!("{tag}-{seq}-{i}")).collect();
        let body = json!({ "records": values.iter().map(|v| json!({"key": format!("{tag}-{seq}"), "value": v})).collect::<Vec<_>>() });
        let resp = api
            .http
            .post(format!("{}/v1/topics/d/records", api.base))
            .json(&body)
            .send()
            .await;
        let Ok(resp) = resp else { break };
        if resp.status() != StatusCode::OK {
            break;
        }
        let Ok(answer) = resp.json::<Value>().await else { break };
        for (o, v) in answer["offsets"].as_array().unwrap().iter().zip(values) {
            acked.push((o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap(), v));
        }
        seq += 1;
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_sigkill_mid_produce() {
    let mut env = Env::start();
    env.api.create_topic("d", 2).await;
    let mut acked = Vec::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..4)
            .map(|w| {
                tokio::spawn(produce_until_failure(
                    env.api.clone(),
                    format!("r{round}w{w}"),
                    Arc::clone(&stop),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        env.server.kill();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            acked.extend(p.await.unwrap());
        }
        env.server.restart();
        env.api = env.server.client();
    }
    assert!(
        acked.len() > 500,
        "the test produced a meaningful amount before each kill: {}",
        acked.len()
    );
    let mut stored: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in 0..2 {
        let records = env.api.fetch_all("d", p, 0).await;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r["offset"].as_u64(),
                Some(i as u64),
                "partition {p} offsets are contiguous after recovery"
            );
            stored.insert((p as u64, i as u64), r["value"].as_str().unwrap().to_owned());
        }
    }
    for (p, o, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {p}/{o} is present and intact"
        );
    }
}

#[tokio::test]
async fn a_clean_stop_and_restart_keeps_topics_settings_and_offsets() {
    let mut env = Env::start();
    let (status, _) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "keep", "partitions": 2, "retention_ms": 123456, "fsync": "never"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    env.api
        .produce(
            "keep",
            json!([{"value": "a", "partition": 1}, {"value": "b", "partition": 1}]),
        )
        .await;
    env.server.stop();
    env.server.restart();
    env.api = env.server.client();
    let (_, t) = env.api.get("/v1/topics/keep").await;
    assert_eq!(t["config"]["retention_ms"], 123456);
    assert_eq!(t["config"]["fsync"], "never");
    assert_eq!(t["partitions"][1]["high_watermark"], 2);
    let offsets = env.api.produce("keep", json!([{"value": "c", "partition": 1}])).await;
    assert_eq!(offsets, vec![(1, 2)]);
    let values: Vec<_> = env
        .api
        .fetch_all("keep", 1, 0)
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, vec![json!("a"), json!("b"), json!("c")]);
}

#[tokio::test]
async fn retention_deletes_whole_old_segments_and_reads_below_the_start_are_416() {
    let env = Env::with_args(&["--retention-check-interval-ms", "100"]);
    let (status, _) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "r", "segment_bytes": 4096, "retention_bytes": 8192}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..20 {
        let records: Vec<_> = (0..10).map(|_| json!({"value": "y".repeat(200)})).collect();
        env.api.produce("r", json!(records)).await;
    }
    // Retention runs in the background: wait until it has caught up with every produce. It
    // keeps at most retention_bytes of sealed segments plus the active one.
    let mut start = 0;
    for _ in 0..100 {
        let (_, t) = env.api.get("/v1/topics/r").await;
        let p = &t["partitions"][0];
        start = p["log_start_offset"].as_u64().unwrap();
        if start > 0 && p["size_bytes"].as_u64().unwrap() <= 8192 + 4096 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(start > 0, "retention never deleted a segment");
    let (status, body) = env.api.get("/v1/topics/r/partitions/0/records?offset=0").await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(body["error"]["log_start_offset"].as_u64(), Some(start));
    let rest = env.api.fetch_all("r", 0, start).await;
    assert_eq!(rest.len() as u64, 200 - start);
}
