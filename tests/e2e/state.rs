//! Stateful processors: keyed state that commits with the outputs, survives redeploys,
//! restarts and `kill -9`, is undone for failing records, and is counted exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::processors::{deploy, upload, wait_for_records};
use crate::wasm::{chaos, example, guest};

/// Waits until `name` has committed everything on every partition; returns its view.
pub async fn caught_up(api: &Api, name: &str) -> Value {
    for _ in 0..1200 {
        let (_, view) = api.get(&format!("/v1/processors/{name}")).await;
        let lag = view["lag"].as_array().cloned().unwrap_or_default();
        if !lag.is_empty() && lag.iter().all(|p| p["lag"] == 0) && view["state"] == "running" {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, view) = api.get(&format!("/v1/processors/{name}")).await;
    panic!("processor {name} never caught up: {view}");
}

/// Every record of `topic` (read committed), per partition in offset order.
async fn all_records(api: &Api, topic: &str) -> Vec<Value> {
    let (_, t) = api.get(&format!("/v1/topics/{topic}")).await;
    let mut out = Vec::new();
    for p in 0..t["partitions"].as_array().unwrap().len() as u32 {
        out.extend(api.fetch_all(topic, p, 0).await);
    }
    out
}

fn words(ws: &[&str]) -> Value {
    Value::Array(ws.iter().map(|w| json!({"key": w, "value": w})).collect())
}

async fn deploy_wordcount(api: &Api, name: &str, extra: Value) -> StatusCode {
    let id = upload(api, &example("wordcount")).await;
    let mut spec = json!({"module": id, "input": "words", "outputs": ["counts"], "stores": ["counts"]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let (status, body) = deploy(api, name, spec).await;
    assert!(status.is_success(), "{status} {body}");
    status
}

#[tokio::test]
async fn wordcount_counts_words_and_keeps_its_counts_across_a_redeploy_and_a_restart() {
    let mut env = Env::start();
    env.api.create_topic("words", 2).await;
    env.api.create_topic("counts", 2).await;
    deploy_wordcount(&env.api, "wc", json!({})).await;
    env.api.produce("words", words(&["apple", "pear", "apple"])).await;
    let out = wait_for_records(&env.api, "counts", 3).await;
    let mut apple: Vec<&str> = out
        .iter()
        .filter(|r| r["key"] == "apple")
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    apple.sort();
    assert_eq!(apple, ["1", "2"]);
    let view = caught_up(&env.api, "wc").await;
    assert_eq!(
        view["state_stores"],
        json!([{"name": "counts", "keys": 2, "bytes": 11, "refused": 0}]),
        "{view}"
    );
    assert!(
        env.server.data_dir.join("topics/__weir_changelog-wc").exists(),
        "the state's changelog topic"
    );

    // A redeploy (a new module version: the same code uploaded again counts) keeps the counts.
    assert_eq!(
        deploy_wordcount(&env.api, "wc", json!({"batch_records_max": 7})).await,
        StatusCode::OK
    );
    env.api.produce("words", words(&["apple"])).await;
    let out = wait_for_records(&env.api, "counts", 4).await;
    assert!(out.iter().any(|r| r["key"] == "apple" && r["value"] == "3"), "{out:?}");

    // So does a restart, from the snapshot written at the clean stop.
    env.server.stop();
    env.server.restart();
    env.api = env.server.client();
    env.api.produce("words", words(&["apple", "kiwi"])).await;
    let out = wait_for_records(&env.api, "counts", 6).await;
    assert!(out.iter().any(|r| r["key"] == "apple" && r["value"] == "4"), "{out:?}");
    assert!(out.iter().any(|r| r["key"] == "kiwi" && r["value"] == "1"));
    let snapshots = std::fs::read_dir(env.server.data_dir.join("processors/wc/state"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(snapshots > 0, "a clean stop snapshots the state");
}

#[tokio::test]
async fn a_record_that_fails_after_writing_state_is_dead_lettered_and_its_writes_are_undone() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &chaos()).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "stores": ["counts"]});
    assert_eq!(deploy(&env.api, "c", spec).await.0, StatusCode::CREATED);
    let values = [
        "count:a",
        "count-fail:a",
        "count:a",
        "count-panic:a",
        "count:a",
        "count:b",
    ];
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    env.api.produce("in", Value::Array(records)).await;
    wait_for_records(&env.api, "c-dlq", 2).await;
    let view = caught_up(&env.api, "c").await;
    assert_eq!(view["dead_lettered"], 2, "{view}");
    let out = all_records(&env.api, "out").await;
    assert_eq!(out.len(), 4, "the good records went through: {out:?}");
    let (status, a) = env.api.get("/v1/processors/c/state/counts?key=a").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["value"], "3", "only the good records' increments: {a}");
    let (_, b) = env.api.get("/v1/processors/c/state/counts?key=b").await;
    assert_eq!(b["value"], "1");
    let dlq = all_records(&env.api, "c-dlq").await;
    let errors: Vec<&str> = dlq
        .iter()
        .map(|r| r["headers"]["weir-error"].as_str().unwrap())
        .collect();
    assert!(errors[0].contains("refused after writing state"), "{errors:?}");
    assert!(
        errors[1].contains("crashed") || errors[1].contains("panic"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn deployments_with_state_are_checked_up_front() {
    let env = Env::start();
    env.api.create_topic("words", 1).await;
    env.api.create_topic("counts", 1).await;
    let wc = upload(&env.api, &example("wordcount")).await;
    let old = upload(&env.api, &guest("weir_test_typed_upper")).await;
    let cases = [
        (json!({"module": old, "stores": ["s"]}), "contract 0.1"),
        (json!({"module": wc, "stores": ["Bad Name"]}), "store names"),
        (json!({"module": wc, "stores": ["a", "a"]}), "listed twice"),
        (json!({"module": wc, "stores": ["__timers"]}), "'__'"),
        (
            json!({"module": wc, "stores": ["counts"], "state_limits": {"value_bytes_max": 0}}),
            "value_bytes_max",
        ),
        (
            json!({"module": wc, "stores": ["counts"], "outputs": ["__weir_offsets"]}),
            "belongs to the broker",
        ),
    ];
    for (extra, says) in cases {
        let mut spec = json!({"input": "words", "outputs": ["counts"]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (status, body) = deploy(&env.api, "p", spec.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec} -> {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{spec}: '{message}' should say {says}");
    }
    let long = "p".repeat(240);
    let (status, body) = deploy(
        &env.api,
        &long,
        json!({"module": wc, "input": "words", "outputs": ["counts"], "stores": ["counts"], "on_error": "skip"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shorter processor name")
    );
    // The contract-0.1 component still runs without state.
    let spec = json!({"module": old, "input": "words", "outputs": ["counts"]});
    assert_eq!(deploy(&env.api, "old", spec).await.0, StatusCode::CREATED);
    env.api.produce("words", words(&["x"])).await;
    assert_eq!(wait_for_records(&env.api, "counts", 1).await[0]["value"], "X");
}

/// Produces keyed words until a request fails or `stop`.
async fn produce_words(api: Api, vocabulary: Arc<Vec<String>>, seed: u64, stop: Arc<AtomicBool>) {
    let mut x = seed;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<Value> = (0..40)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let w = &vocabulary[(x >> 33) as usize % vocabulary.len()];
                json!({"key": w, "value": w})
            })
            .collect();
        let sent = api
            .http
            .post(format!("{}/v1/topics/words/records", api.base))
            .json(&json!({ "records": batch }))
            .send()
            .await;
        if !matches!(sent, Ok(r) if r.status() == StatusCode::OK) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wordcount_under_repeated_kill_9_counts_every_word_exactly_once_and_in_order() {
    let mut env = Env::start();
    env.api.create_topic("words", 2).await;
    env.api.create_topic("counts", 2).await;
    deploy_wordcount(
        &env.api,
        "wc",
        json!({"batch_records_max": 64, "commit_interval_ms": 20}),
    )
    .await;
    let vocabulary: Arc<Vec<String>> = Arc::new((0..60).map(|i| format!("w{i}")).collect());
    let kills = 6;
    for round in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                tokio::spawn(produce_words(
                    env.api.clone(),
                    Arc::clone(&vocabulary),
                    round * 10 + p,
                    Arc::clone(&stop),
                ))
            })
            .collect();
        // Kill at a different moment each round: while producing and processing.
        tokio::time::sleep(Duration::from_millis(150 + 97 * round)).await;
        env.server.kill();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            p.await.unwrap();
        }
        env.server.restart();
        env.api = env.server.client();
    }
    caught_up(&env.api, "wc").await;
    // What is in the input, whatever the producers were told, is what must be counted.
    let expected = input_counts(&env.api).await;
    let total: u64 = expected.values().sum();
    assert!(total > 500, "the producers got through ({total})");
    // Read committed, each word's updates are 1, 2, ..., n: every one exactly once, in order.
    let updates = count_updates(&env.api).await;
    for (word, n) in &expected {
        let seen = updates.get(word).cloned().unwrap_or_default();
        let want: Vec<u64> = (1..=*n).collect();
        assert_eq!(seen, want, "updates of '{word}'");
        let (_, state) = env.api.get(&format!("/v1/processors/wc/state/counts?key={word}")).await;
        assert_eq!(state["value"], n.to_string(), "state of '{word}'");
    }
    assert_eq!(updates.len(), expected.len(), "no word that is not in the input");
    // Read uncommitted, aborted attempts may show too (that is what the crashes cost): never
    // fewer records than read committed.
    let committed = env.api.fetch_all("counts", 0, 0).await.len();
    let (mut uncommitted, mut offset) = (0, 0);
    loop {
        let path = format!("/v1/topics/counts/partitions/0/records?isolation=read_uncommitted&offset={offset}");
        let (_, page) = env.api.get(&path).await;
        let n = page["records"].as_array().unwrap().len();
        let next = page["next_offset"].as_u64().unwrap();
        if n == 0 && next == offset {
            break;
        }
        uncommitted += n;
        offset = next;
    }
    assert!(
        uncommitted >= committed,
        "{uncommitted} uncommitted, {committed} committed"
    );
}

#[tokio::test]
async fn a_deleted_processor_takes_its_state_and_offsets_with_it() {
    let env = Env::start();
    env.api.create_topic("words", 1).await;
    env.api.create_topic("counts", 1).await;
    deploy_wordcount(&env.api, "wc", json!({})).await;
    env.api.produce("words", words(&["a", "a"])).await;
    wait_for_records(&env.api, "counts", 2).await;
    caught_up(&env.api, "wc").await;
    let (status, _) = env.api.call(Method::DELETE, "/v1/processors/wc", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env.api.get("/v1/topics/__weir_changelog-wc").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the changelog went with it");
    // Deployed again under the same name, it starts from nothing.
    deploy_wordcount(&env.api, "wc", json!({})).await;
    env.api.produce("words", words(&["a"])).await;
    let out = wait_for_records(&env.api, "counts", 5).await;
    let last: Vec<&str> = out.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(
        last,
        ["1", "2", "1", "2", "3"],
        "offsets and state start over: {last:?}"
    );
}

/// `at_least_once` with state: outputs may repeat after a crash, but the state commits with
/// the input offset, so every word's final count is exact and every update is a count the
/// word really reached (repeats only, never a skipped or inflated one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_wordcount_under_kill_9_keeps_exact_counts_and_only_repeats_outputs() {
    let mut env = Env::start();
    env.api.create_topic("words", 2).await;
    env.api.create_topic("counts", 2).await;
    deploy_wordcount(
        &env.api,
        "wc",
        json!({"guarantee": "at_least_once", "batch_records_max": 64, "commit_interval_ms": 20}),
    )
    .await;
    let vocabulary: Arc<Vec<String>> = Arc::new((0..40).map(|i| format!("w{i}")).collect());
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let producer = tokio::spawn(produce_words(
            env.api.clone(),
            Arc::clone(&vocabulary),
            100 + round,
            Arc::clone(&stop),
        ));
        tokio::time::sleep(Duration::from_millis(200 + 131 * round)).await;
        env.server.kill();
        stop.store(true, Ordering::Relaxed);
        producer.await.unwrap();
        env.server.restart();
        env.api = env.server.client();
    }
    caught_up(&env.api, "wc").await;
    let expected = input_counts(&env.api).await;
    assert!(expected.values().sum::<u64>() > 200, "the producer got through");
    let updates = count_updates(&env.api).await;
    for (word, n) in &expected {
        let (_, state) = env.api.get(&format!("/v1/processors/wc/state/counts?key={word}")).await;
        assert_eq!(state["value"], n.to_string(), "state of '{word}'");
        let mut seen = updates.get(word).cloned().unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        let want: Vec<u64> = (1..=*n).collect();
        assert_eq!(seen, want, "every count of '{word}' from 1 to {n} was sent, none other");
    }
}

/// How often each word is in the input.
async fn input_counts(api: &Api) -> BTreeMap<String, u64> {
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in all_records(api, "words").await {
        *expected.entry(r["value"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    expected
}

/// The counts each word's output records carried, in order.
async fn count_updates(api: &Api) -> BTreeMap<String, Vec<u64>> {
    let mut updates: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in all_records(api, "counts").await {
        updates
            .entry(r["key"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["value"].as_str().unwrap().parse().unwrap());
    }
    updates
}
