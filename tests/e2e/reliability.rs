//! The reliability suite: the broker killed with SIGKILL again and again while producers write
//! and processors run. Every acknowledged record must survive, in order; the exactly-once
//! processor's output (read committed) must hold every input's output exactly once, and the
//! at-least-once one's every output at least once (a record may repeat, at most one commit
//! interval's worth per input partition per kill). (Disk full: `disk_full.rs`; slow and silent clients:
//! `hostile_http.rs`; the deploy race: `processor_lifecycle.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::processors::{deploy, upload, wait_for_records};
use crate::wasm::example;

/// Produces small keyed batches to `in` until a request fails or `stop`; returns every
/// acknowledged value.
async fn produce(api: Api, tag: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acked = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let values: Vec<String> = (0..20).map(|i| format!("{tag}-{seq}-{i}")).collect();
        let records: Vec<Value> = values.iter().map(|v| json!({"key": v, "value": v})).collect();
        let sent = api
            .http
            .post(format!("{}/v1/topics/in/records", api.base))
            .json(&json!({ "records": records }))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::OK => acked.extend(values),
            _ => break,
        }
        seq += 1;
    }
    acked
}

async fn all_values(api: &Api, topic: &str, partitions: u32) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..partitions {
        for r in api.fetch_all(topic, p, 0).await {
            out.push(r["value"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_producers_and_a_processor_loses_nothing_and_the_output_completes() {
    let mut env = Env::start();
    env.api.create_topic("in", 2).await;
    env.api.create_topic("out", 2).await;
    env.api.create_topic("out-alo", 2).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "batch_records_max": 50});
    assert_eq!(deploy(&env.api, "up", spec).await.0, StatusCode::CREATED);
    let alo = json!({"module": id, "input": "in", "outputs": ["out-alo"], "batch_records_max": 50,
        "guarantee": "at_least_once", "commit_interval_ms": 20});
    assert_eq!(deploy(&env.api, "up-alo", alo).await.0, StatusCode::CREATED);
    let mut acked = Vec::new();
    let rounds = 4;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..3)
            .map(|w| tokio::spawn(produce(env.api.clone(), format!("r{round}w{w}"), Arc::clone(&stop))))
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        env.server.kill();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            acked.extend(p.await.unwrap());
        }
        env.server.restart();
        env.api = env.server.client();
        // Every acknowledged record is there, once, in produce order per key's partition.
        let stored = all_values(&env.api, "in", 2).await;
        let set: BTreeSet<&String> = stored.iter().collect();
        assert_eq!(
            set.len(),
            stored.len(),
            "round {round}: no input record is stored twice"
        );
        let missing: Vec<&String> = acked.iter().filter(|v| !set.contains(v)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged records lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
    }
    assert!(acked.len() > 200, "the producers got through ({})", acked.len());
    // The processor catches up after the last restart: every stored input has its output.
    let stored = all_values(&env.api, "in", 2).await;
    // Outputs are visible once the input offset commits: once a processor's lag is 0 on
    // both partitions, every output is there.
    for name in ["up", "up-alo"] {
        for _ in 0..600 {
            let (_, v) = env.api.get(&format!("/v1/processors/{name}")).await;
            let lag = v["lag"].as_array().cloned().unwrap_or_default();
            if lag.len() == 2 && lag.iter().all(|p| p["lag"] == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let count = |outputs: &[Value]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in outputs {
            *counts.entry(r["value"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        counts
    };
    let exact = count(&wait_for_records(&env.api, "out", stored.len()).await);
    for v in &stored {
        assert_eq!(exact.get(&v.to_uppercase()), Some(&1), "{v}: exactly one output");
    }
    assert_eq!(exact.len(), stored.len(), "no output of an input that is not there");
    let alo = count(&wait_for_records(&env.api, "out-alo", stored.len()).await);
    for v in &stored {
        assert!(
            alo.contains_key(&v.to_uppercase()),
            "{v} was never processed (at least once)"
        );
    }
    let repeated: usize = alo.values().map(|c| c - 1).sum();
    let bound = rounds * 2 * 1000;
    assert!(
        repeated <= bound,
        "{repeated} repeated outputs; at most a commit interval's worth per partition per kill ({bound})"
    );
    // Read uncommitted, the exactly-once output may hold aborted attempts too; committed, not.
    let committed = all_values(&env.api, "out", 2).await;
    assert_eq!(committed.len(), stored.len());
}
