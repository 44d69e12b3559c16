//! Processors deployed over HTTP on the real broker, with real components built from source.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::wasm::{chaos, example};

/// Uploads a component and returns its id.
pub async fn upload(api: &Api, path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let resp = api
        .http
        .post(format!("{}/v1/modules", api.base))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Polls until `topic` holds `count` records over all its partitions; returns them all.
pub async fn wait_for_records(api: &Api, topic: &str, count: usize) -> Vec<Value> {
    for _ in 0..300 {
        let (_, t) = api.get(&format!("/v1/topics/{topic}")).await;
        let parts = t["partitions"].as_array().unwrap().len() as u32;
        let mut all = Vec::new();
        for p in 0..parts {
            all.extend(api.fetch_all(topic, p, 0).await);
        }
        if all.len() >= count {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{topic} never reached {count} records");
}

pub async fn deploy(api: &Api, name: &str, spec: Value) -> (StatusCode, Value) {
    api.call(Method::PUT, &format!("/v1/processors/{name}"), Some(spec))
        .await
}

fn values(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn uppercase_deployed_over_http_transforms_every_record() {
    let env = Env::start();
    let id = upload(&env.api, &example("uppercase")).await;
    env.api.create_topic("in", 2).await;
    env.api.create_topic("out", 1).await;
    let (status, body) = deploy(&env.api, "up", json!({"module": id, "input": "in", "outputs": ["out"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    env.api.produce("in", json!([{"key": "a", "value": "hello"}, {"key": "b", "value": "weir"}, {"key": "c", "value": "x", "headers": {"h": "v"}}])).await;
    let out = wait_for_records(&env.api, "out", 3).await;
    assert_eq!(values(&out), ["HELLO", "WEIR", "X"]);
    let x = out.iter().find(|r| r["value"] == "X").unwrap();
    assert_eq!((x["key"].as_str(), x["headers"]["h"].as_str()), (Some("c"), Some("v")));

    // Outputs are visible before the input offset commits: wait for the commit.
    wait_for_lag_zero(&env.api, "up").await;
    let (_, view) = env.api.get("/v1/processors/up").await;
    assert_eq!(view["state"], "running");
    assert_eq!(view["records_in"], 3);
    assert_eq!(view["records_out"], 3);
    let (_, list) = env.api.get("/v1/processors").await;
    assert_eq!(list["processors"][0]["name"], "up");
    let (_, modules) = env.api.get("/v1/modules").await;
    assert_eq!(modules["modules"][0]["id"], id.as_str());

    // A redeploy keeps offsets: nothing is processed twice.
    let (status, _) = deploy(&env.api, "up", json!({"module": id, "input": "in", "outputs": ["out"]})).await;
    assert_eq!(status, StatusCode::OK);
    env.api.produce("in", json!([{"value": "after"}])).await;
    let out = wait_for_records(&env.api, "out", 4).await;
    assert_eq!(values(&out), ["AFTER", "HELLO", "WEIR", "X"]);
}

#[tokio::test]
async fn router_and_split_write_to_several_outputs_and_flat_map() {
    let env = Env::start();
    for t in ["orders", "eu", "us", "sentences", "words"] {
        env.api.create_topic(t, 1).await;
    }
    let router = upload(&env.api, &example("router")).await;
    let split = upload(&env.api, &example("split")).await;
    let spec = json!({"module": router, "input": "orders", "outputs": ["eu", "us"], "config": {"field": "region", "routes": "eu:0,us:1"}});
    assert_eq!(deploy(&env.api, "route", spec).await.0, StatusCode::CREATED);
    assert_eq!(
        deploy(
            &env.api,
            "split",
            json!({"module": split, "input": "sentences", "outputs": ["words"]})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    env.api.produce("orders", json!([{"value": {"region": "eu", "n": 1}}, {"value": {"region": "us", "n": 2}}, {"value": {"region": "eu", "n": 3}}])).await;
    env.api.produce("sentences", json!([{"value": "to be or not"}])).await;
    assert_eq!(wait_for_records(&env.api, "eu", 2).await.len(), 2);
    assert_eq!(
        values(&wait_for_records(&env.api, "us", 1).await),
        [r#"{"n":2,"region":"us"}"#]
    );
    assert_eq!(
        values(&wait_for_records(&env.api, "words", 4).await),
        ["be", "not", "or", "to"]
    );
}

#[tokio::test]
async fn failing_records_are_dead_lettered_with_headers_and_the_rest_go_through() {
    let env = Env::start();
    env.api.create_topic("payments", 1).await;
    env.api.create_topic("big", 1).await;
    let id = upload(&env.api, &example("filter")).await;
    let spec = json!({"module": id, "input": "payments", "outputs": ["big"], "config": {"field": "amount", "min": "100"}, "dead_letter_topic": "bad-payments"});
    assert_eq!(deploy(&env.api, "big-only", spec).await.0, StatusCode::CREATED);
    env.api
        .produce("payments", json!([{"value": {"amount": 500}}, {"value": "not json", "key": "k7"}, {"value": {"amount": 5}}, {"value": {"amount": 100}}]))
        .await;
    let big = wait_for_records(&env.api, "big", 2).await;
    assert_eq!(values(&big), [r#"{"amount":100}"#, r#"{"amount":500}"#]);
    let dlq = wait_for_records(&env.api, "bad-payments", 1).await;
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!((d["value"].as_str(), d["key"].as_str()), (Some("not json"), Some("k7")));
    assert_eq!(d["headers"]["weir-processor"], "big-only");
    assert_eq!(d["headers"]["weir-source-topic"], "payments");
    assert_eq!(d["headers"]["weir-source-partition"], "0");
    assert_eq!(d["headers"]["weir-source-offset"], "1");
    assert!(d["headers"]["weir-error"].as_str().unwrap().contains("expected"), "{d}");
    wait_for_lag_zero(&env.api, "big-only").await;
    let (_, view) = env.api.get("/v1/processors/big-only").await;
    assert_eq!(
        (view["dead_lettered"].as_u64(), view["errors"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn looping_hoarding_and_panicking_guests_are_contained_and_the_broker_keeps_serving() {
    let env = Env::start();
    for t in ["chaos-in", "chaos-out", "plain"] {
        env.api.create_topic(t, 1).await;
    }
    let id = upload(&env.api, &chaos()).await;
    let spec = json!({"module": id, "input": "chaos-in", "outputs": ["chaos-out"], "limits": {"deadline_ms": 300, "memory_bytes_max": 16777216, "output_bytes_max": 1048576}});
    assert_eq!(deploy(&env.api, "chaos", spec).await.0, StatusCode::CREATED);
    let up = upload(&env.api, &example("uppercase")).await;
    env.api.create_topic("healthy-out", 1).await;
    assert_eq!(
        deploy(
            &env.api,
            "healthy",
            json!({"module": up, "input": "plain", "outputs": ["healthy-out"]})
        )
        .await
        .0,
        StatusCode::CREATED
    );

    env.api
        .produce("chaos-in", json!([{"value": "ok1"}, {"value": "loop"}, {"value": "ok2"}, {"value": "alloc"}, {"value": "ok3"}, {"value": "panic"}, {"value": "ok4"}, {"value": "fail"}]))
        .await;
    // While the chaos runs, other topics and processors keep working.
    env.api.produce("plain", json!([{"value": "still here"}])).await;
    assert_eq!(
        values(&wait_for_records(&env.api, "healthy-out", 1).await),
        ["STILL HERE"]
    );
    assert_eq!(env.api.get("/healthz").await.0, StatusCode::OK);

    assert_eq!(
        values(&wait_for_records(&env.api, "chaos-out", 4).await),
        ["ok1", "ok2", "ok3", "ok4"]
    );
    let dlq = wait_for_records(&env.api, "chaos-dlq", 4).await;
    let errors: BTreeMap<String, String> = dlq
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_owned(),
                r["headers"]["weir-error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(errors["loop"].contains("deadline"), "{errors:?}");
    assert!(errors["alloc"].contains("memory cap"), "{errors:?}");
    assert!(errors["panic"].contains("crashed"), "{errors:?}");
    assert!(errors["fail"].contains("refused"), "{errors:?}");
    let (_, view) = env.api.get("/v1/processors/chaos").await;
    assert_eq!(view["state"], "running", "{view}");
    assert!(view["traps"].as_u64().unwrap() >= 3, "{view}");
    // And it still processes new records after all that.
    env.api.produce("chaos-in", json!([{"value": "ok5"}])).await;
    assert_eq!(wait_for_records(&env.api, "chaos-out", 5).await.len(), 5);
}

#[tokio::test]
async fn pause_holds_records_back_and_resume_lets_them_through() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    deploy(&env.api, "p", json!({"module": id, "input": "in", "outputs": ["out"]})).await;
    let (status, view) = env.api.call(Method::POST, "/v1/processors/p/pause", None).await;
    assert_eq!((status, view["state"].as_str()), (StatusCode::OK, Some("paused")));
    env.api.produce("in", json!([{"value": "held"}])).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        env.api.fetch_all("out", 0, 0).await.is_empty(),
        "a paused processor wrote output"
    );
    let (_, view) = env.api.call(Method::POST, "/v1/processors/p/resume", None).await;
    assert_eq!(view["state"], "running");
    assert_eq!(values(&wait_for_records(&env.api, "out", 1).await), ["HELD"]);
    let (status, _) = env.api.call(Method::DELETE, "/v1/processors/p", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(env.api.get("/v1/processors/p").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn guest_logs_stream_over_sse() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &chaos()).await;
    deploy(
        &env.api,
        "talker",
        json!({"module": id, "input": "in", "outputs": ["out"]}),
    )
    .await;
    let mut logs = crate::harness::SseStream::open(&env.api, "/v1/processors/talker/logs", None).await;
    env.api.produce("in", json!([{"value": "log:hello"}])).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = logs.next(Duration::from_secs(10)).await.expect("log lines arrive");
        if ev.event == "log" {
            seen.push(
                serde_json::from_str::<Value>(&ev.data).unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert!(seen.iter().any(|m| m == "stdout says hello"), "{seen:?}");
    assert!(seen.iter().any(|m| m == "sdk log says hello"), "{seen:?}");
}

#[tokio::test]
async fn bad_uploads_and_deployments_say_what_to_fix() {
    let env = Env::start();
    let post = |body: &'static [u8], ct: &'static str| {
        env.api
            .http
            .post(format!("{}/v1/modules", env.api.base))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r: Value = post(b"\0asm\x01\0\0\0", "application/wasm")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "invalid_module");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("core WebAssembly module")
    );
    let r = post(b"hello", "text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    env.api.create_topic("in", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let cases = [
        (
            json!({"module": "sha256:00", "input": "in", "outputs": ["in2"]}),
            StatusCode::NOT_FOUND,
            "module_not_found",
        ),
        (
            json!({"module": id, "input": "in", "outputs": ["nowhere"]}),
            StatusCode::BAD_REQUEST,
            "invalid_processor",
        ),
        (
            json!({"module": id, "input": "ghost", "outputs": ["in"]}),
            StatusCode::NOT_FOUND,
            "topic_not_found",
        ),
        (
            json!({"module": id, "input": "in", "outputs": []}),
            StatusCode::BAD_REQUEST,
            "invalid_processor",
        ),
        (
            json!({"module": id, "input": "in", "outputs": ["in"], "colour": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_processor",
        ),
    ];
    for (spec, status, code) in cases {
        let (s, body) = deploy(&env.api, "x", spec.clone()).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{spec} -> {body}"
        );
    }
    let (status, body) = deploy(&env.api, "bad/name", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let filter = upload(&env.api, &example("filter")).await;
    env.api.create_topic("out", 1).await;
    // A config the guest rejects leaves the processor failed, saying why.
    let (status, _) = deploy(
        &env.api,
        "f",
        json!({"module": filter, "input": "in", "outputs": ["out"], "config": {"field": "x"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    env.api.produce("in", json!([{"value": {"x": 1}}])).await;
    for _ in 0..100 {
        let (_, v) = env.api.get("/v1/processors/f").await;
        if v["state"] == "failed" {
            assert!(
                v["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("missing config parameter 'min'"),
                "{v}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the processor with a rejected config never failed");
}

/// Every value of `topic`, with how often each appears.
async fn counts(api: &Api, topic: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in api.fetch_all(topic, 0, 0).await {
        *out.entry(r["value"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    out
}

pub async fn wait_for_lag_zero(api: &Api, name: &str) {
    for _ in 0..400 {
        let (_, v) = api.get(&format!("/v1/processors/{name}")).await;
        if v["lag"]
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.iter().all(|p| p["lag"] == 0))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("processor {name} never caught up");
}

#[tokio::test]
async fn a_clean_restart_resumes_every_processor_without_loss_or_duplicates() {
    let mut env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    deploy(
        &env.api,
        "up",
        json!({"module": id, "input": "in", "outputs": ["out"], "batch_records_max": 10}),
    )
    .await;
    let batch = |from: usize| {
        json!(
            (from..from + 100)
                .map(|i| json!({"value": format!("r{i:04}")}))
                .collect::<Vec<_>>()
        )
    };
    env.api.produce("in", batch(0)).await;
    wait_for_lag_zero(&env.api, "up").await;
    env.server.stop();
    env.server.restart();
    env.api = env.server.client();
    env.api.produce("in", batch(100)).await;
    wait_for_records(&env.api, "out", 200).await;
    wait_for_lag_zero(&env.api, "up").await;
    let c = counts(&env.api, "out").await;
    assert_eq!(c.len(), 200, "every input came out");
    assert!(c.values().all(|&n| n == 1), "nothing was duplicated after a clean stop");
    let (_, v) = env.api.get("/v1/processors/up").await;
    assert_eq!(v["state"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_sigkill_nothing_is_lost_and_at_most_the_last_batch_repeats() {
    let mut env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let batch_max = 50;
    deploy(
        &env.api,
        "up",
        json!({"module": id, "input": "in", "outputs": ["out"], "batch_records_max": batch_max}),
    )
    .await;
    let total = 3000;
    for chunk in 0..30 {
        let recs: Vec<_> = (chunk * 100..chunk * 100 + 100)
            .map(|i| json!({"value": format!("r{i:05}")}))
            .collect();
        env.api.produce("in", json!(recs)).await;
    }
    // Kill while the processor is part way through.
    for _ in 0..200 {
        if env.api.fetch_all("out", 0, 0).await.len() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.server.kill();
    env.server.restart();
    env.api = env.server.client();
    wait_for_records(&env.api, "out", total).await;
    wait_for_lag_zero(&env.api, "up").await;
    let c = counts(&env.api, "out").await;
    assert_eq!(c.len(), total, "no input was lost");
    let duplicated = c.values().filter(|&&n| n > 1).count();
    println!("records processed twice after kill -9: {duplicated} (batch_records_max {batch_max})");
    assert!(
        duplicated <= batch_max,
        "{duplicated} duplicates: more than one batch repeated"
    );
}

#[tokio::test]
async fn typed_world_guests_run_and_their_errors_are_isolated() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &crate::wasm::guest("weir_test_typed_upper")).await;
    let (_, modules) = env.api.get("/v1/modules").await;
    assert_eq!(modules["modules"][0]["kind"], "typed");
    deploy(
        &env.api,
        "typed",
        json!({"module": id, "input": "in", "outputs": ["out"]}),
    )
    .await;
    env.api
        .produce(
            "in",
            json!([{"value": "a", "headers": {"h": "1"}}, {"value": "fail"}, {"value": "b"}]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 2).await;
    assert_eq!(values(&out), ["A", "B"]);
    assert_eq!(out[0]["headers"]["h"], "1");
    let dlq = wait_for_records(&env.api, "typed-dlq", 1).await;
    assert!(
        dlq[0]["headers"]["weir-error"]
            .as_str()
            .unwrap()
            .contains("typed guest refused offset 1"),
        "{dlq:?}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_with_what_to_build() {
    let env = Env::start();
    let bytes = std::fs::read(crate::wasm::guest("weir-test-command")).unwrap();
    let resp = env
        .api
        .http
        .post(format!("{}/v1/modules", env.api.base))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("wasi:cli/run") && msg.contains("packed-processor"),
        "{msg}"
    );
}

#[tokio::test]
async fn stop_policy_halts_at_the_bad_record_and_a_redeploy_with_skip_goes_on_from_it() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("filter")).await;
    let spec = |policy: &str| json!({"module": id, "input": "in", "outputs": ["out"], "config": {"field": "n", "min": "0"}, "on_error": policy});
    assert_eq!(deploy(&env.api, "strict", spec("stop")).await.0, StatusCode::CREATED);
    env.api
        .produce(
            "in",
            json!([{"value": {"n": 1}}, {"value": {"n": 2}}, {"value": "bad"}, {"value": {"n": 4}}]),
        )
        .await;
    let mut view = Value::Null;
    for _ in 0..100 {
        view = env.api.get("/v1/processors/strict").await.1;
        if view["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["state"], "failed", "{view}");
    assert!(view["last_error"].as_str().unwrap().contains("in/0@2"), "{view}");
    assert_eq!(view["lag"][0]["committed_offset"], 2, "committed up to the bad record");
    assert_eq!(
        values(&env.api.fetch_all("out", 0, 0).await),
        [r#"{"n":1}"#, r#"{"n":2}"#]
    );
    assert_eq!(
        env.api.get("/v1/topics/strict-dlq").await.0,
        StatusCode::NOT_FOUND,
        "stop writes no dead letters"
    );

    assert_eq!(deploy(&env.api, "strict", spec("skip")).await.0, StatusCode::OK);
    let out = wait_for_records(&env.api, "out", 3).await;
    assert_eq!(values(&out), [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":4}"#]);
    wait_for_lag_zero(&env.api, "strict").await;
    let (_, view) = env.api.get("/v1/processors/strict").await;
    assert_eq!(
        (view["state"].as_str(), view["skipped"].as_u64()),
        (Some("running"), Some(1)),
        "{view}"
    );
}

#[tokio::test]
async fn processor_counters_and_lag_are_in_the_metrics() {
    let env = Env::start();
    let id = upload(&env.api, &example("uppercase")).await;
    env.api.create_topic("in", 2).await;
    env.api.create_topic("out", 1).await;
    assert_eq!(
        deploy(&env.api, "up", json!({"module": id, "input": "in", "outputs": ["out"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    env.api
        .produce(
            "in",
            json!([{"value": "a", "partition": 0}, {"value": "b", "partition": 1}]),
        )
        .await;
    wait_for_records(&env.api, "out", 2).await;
    wait_for_lag_zero(&env.api, "up").await;
    let text = env
        .api
        .http
        .get(format!("{}/metrics", env.api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("weir_processor_records_in_total{processor=\"up\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("weir_processor_lag{processor=\"up\",partition=\"1\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("weir_processor_state{processor=\"up\",state=\"running\"} 1"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "the exposition still ends with its marker"
    );
}
