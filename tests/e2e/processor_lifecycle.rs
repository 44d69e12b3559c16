//! Processor administration under pressure: concurrent deploys and deletes of one name,
//! stopping a guest stuck in a long call, deployments that must be refused before they run,
//! and input topics deleted and created again.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, Env};
use crate::processors::{deploy, upload, wait_for_records};
use crate::wasm::{chaos, example};

/// Records of `topic` (read committed; transaction markers take offsets but are no records).
async fn count(api: &Api, topic: &str) -> usize {
    let (_, t) = api.get(&format!("/v1/topics/{topic}")).await;
    let partitions = t["partitions"].as_array().unwrap().len() as u32;
    let mut n = 0;
    for p in 0..partitions {
        n += api.fetch_all(topic, p, 0).await.len();
    }
    n
}

/// Waits until the processor's committed offsets reach the high watermark on every partition.
async fn wait_caught_up(api: &Api, name: &str) -> Value {
    for _ in 0..400 {
        let (_, view) = api.get(&format!("/v1/processors/{name}")).await;
        let lag = view["lag"].as_array().cloned().unwrap_or_default();
        if !lag.is_empty() && lag.iter().all(|p| p["lag"] == 0) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("processor {name} never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_deploys_of_one_name_leave_one_processor_and_delete_stops_it() {
    let env = Env::start();
    env.api.create_topic("in", 2).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"]});
    let puts: Vec<_> = (0..10)
        .map(|_| {
            let (api, spec) = (env.api.clone(), spec.clone());
            tokio::spawn(async move { deploy(&api, "r", spec).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for p in puts {
        let (status, body) = p.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {body}"
        );
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
        1,
        "exactly one deploy created the processor: {statuses:?}"
    );
    env.api.produce("in", json!([{"value": "one"}])).await;
    wait_caught_up(&env.api, "r").await;
    assert_eq!(count(&env.api, "out").await, 1, "one input record gives one output");

    let (status, _) = env.api.call(Method::DELETE, "/v1/processors/r", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    env.api
        .produce("in", json!([{"value": "two"}, {"value": "three"}]))
        .await;
    // Nothing runs any more: give a detached runner every chance to show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&env.api, "out").await, 1, "no runner survived the delete");
    let (_, list) = env.api.get("/v1/processors").await;
    assert_eq!(list["processors"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deletes_and_deploys_of_one_name_never_fail_with_500() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"]});
    let mut handles = Vec::new();
    for i in 0..24 {
        let (api, spec) = (env.api.clone(), spec.clone());
        handles.push(tokio::spawn(async move {
            if i % 3 == 0 {
                api.call(Method::DELETE, "/v1/processors/x", None).await
            } else {
                deploy(&api, "x", spec).await
            }
        }));
    }
    for h in handles {
        let (status, body) = h.await.unwrap();
        assert!(
            [
                StatusCode::OK,
                StatusCode::CREATED,
                StatusCode::NO_CONTENT,
                StatusCode::NOT_FOUND
            ]
            .contains(&status),
            "{status} {body}"
        );
    }
    // Whatever the last operation was, the listing and the disk agree, and one final deploy
    // and delete work.
    let (status, body) = deploy(&env.api, "x", spec).await;
    assert!(status.is_success(), "{body}");
    let (status, _) = env.api.call(Method::DELETE, "/v1/processors/x", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!env.server.data_dir.join("processors/x").exists());
}

/// Deploys the chaos guest with a 60 s deadline on `in` and feeds it a looping record.
async fn stuck_guest(env: &Env) {
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &chaos()).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "limits": {"deadline_ms": 60000}});
    assert_eq!(deploy(&env.api, "stuck", spec).await.0, StatusCode::CREATED);
    env.api.produce("in", json!([{"value": "loop"}])).await;
    // Wait until the call is surely running.
    for _ in 0..200 {
        let (_, v) = env.api.get("/v1/processors/stuck").await;
        if v["lag"][0]["memory_bytes"].as_u64().unwrap_or(0) > 0 || v["records_in"] != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

// Not a speed test: the bound is a sixth of the guest's 60 s deadline, which a stop that waits
// for the call (the bug) cannot meet on any machine.
const STOP_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_pause_interrupt_a_guest_stuck_in_a_long_call() {
    let env = Env::start();
    stuck_guest(&env).await;
    let started = Instant::now();
    let (status, body) = env.api.call(Method::POST, "/v1/processors/stuck/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() < STOP_BOUND, "pause waited {:?}", started.elapsed());
    assert_eq!(body["state"], "paused");
    let (status, _) = env.api.call(Method::POST, "/v1/processors/stuck/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status, _) = env.api.call(Method::DELETE, "/v1/processors/stuck", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(started.elapsed() < STOP_BOUND, "delete waited {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_broker_while_a_guest_is_stuck_in_a_long_call() {
    let mut env = Env::start();
    stuck_guest(&env).await;
    let started = Instant::now();
    env.server.stop();
    assert!(started.elapsed() < STOP_BOUND, "SIGTERM took {:?}", started.elapsed());
}

#[tokio::test]
async fn deployments_that_would_fail_later_are_refused_up_front() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let long = "p".repeat(246);
    let cases = [
        (
            "self-fed",
            json!({"module": id, "input": "in", "outputs": ["out"], "dead_letter_topic": "in"}),
            "input",
        ),
        (
            "loop-out",
            json!({"module": id, "input": "in", "outputs": ["out"], "dead_letter_topic": "out"}),
            "output",
        ),
        (
            "escape",
            json!({"module": id, "input": "in", "outputs": ["out"], "dead_letter_topic": "../../etc"}),
            "dead_letter_topic",
        ),
        (
            "huge",
            json!({"module": id, "input": "in", "outputs": ["out"], "limits": {"memory_bytes_max": 1099511627776u64}}),
            "memory_bytes_max",
        ),
        (
            long.as_str(),
            json!({"module": id, "input": "in", "outputs": ["out"]}),
            "dead_letter_topic",
        ),
        (
            "typo",
            json!({"module": id, "input": "in", "outputs": ["out"], "limits": {"deadline": 5}}),
            "deadline",
        ),
    ];
    for (name, spec, says) in cases {
        let (status, body) = deploy(&env.api, name, spec).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
        let (status, _) = env.api.get(&format!("/v1/processors/{name}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} was not created");
    }
    assert!(env.api.get("/v1/topics/..%2F..%2Fetc").await.0 != StatusCode::OK);
    // Limits may be given in part; the rest are the defaults.
    let (status, body) = deploy(
        &env.api,
        "partial",
        json!({"module": id, "input": "in", "outputs": ["out"], "limits": {"deadline_ms": 500}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["limits"]["deadline_ms"], 500);
    assert_eq!(body["limits"]["memory_bytes_max"], 64 * 1024 * 1024);
    // A refused redeploy leaves the running processor as it was.
    let (status, _) = deploy(
        &env.api,
        "partial",
        json!({"module": id, "input": "in", "outputs": ["out"], "dead_letter_topic": "in"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    env.api.produce("in", json!([{"value": "still"}])).await;
    assert_eq!(wait_for_records(&env.api, "out", 1).await[0]["value"], "STILL");
}

#[tokio::test]
async fn a_processor_reads_a_recreated_input_topic_from_its_start_position() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"]});
    assert_eq!(deploy(&env.api, "p", spec.clone()).await.0, StatusCode::CREATED);
    let first: Vec<_> = (0..500).map(|i| json!({"value": format!("a{i}")})).collect();
    env.api.produce("in", json!(first)).await;
    wait_for_records(&env.api, "out", 500).await;
    wait_caught_up(&env.api, "p").await;

    assert_eq!(
        env.api.call(Method::DELETE, "/v1/topics/in", None).await.0,
        StatusCode::NO_CONTENT
    );
    env.api.create_topic("in", 1).await;
    let second: Vec<_> = (0..300).map(|i| json!({"value": format!("b{i}")})).collect();
    env.api.produce("in", json!(second)).await;
    // The processor failed when its input went; a resume starts it again on the new topic.
    let (_, view) = env.api.get("/v1/processors/p").await;
    assert_eq!(view["state"], "failed", "{view}");
    assert!(view["last_error"].as_str().unwrap().contains("deleted"), "{view}");
    let (status, body) = env.api.call(Method::POST, "/v1/processors/p/resume", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = wait_for_records(&env.api, "out", 800).await;
    assert_eq!(out.len(), 800, "every record of the new topic was processed");
    let view = wait_caught_up(&env.api, "p").await;
    assert_eq!(view["lag"][0]["committed_offset"], 300);
    assert_eq!(view["state"], "running");
}

#[tokio::test]
async fn a_deleted_output_topic_is_named_and_resume_after_recreating_it_runs_again() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"]});
    assert_eq!(deploy(&env.api, "p", spec).await.0, StatusCode::CREATED);
    assert_eq!(
        env.api.call(Method::DELETE, "/v1/topics/out", None).await.0,
        StatusCode::NO_CONTENT
    );
    env.api.produce("in", json!([{"value": "x"}])).await;
    let mut view = Value::Null;
    for _ in 0..200 {
        view = env.api.get("/v1/processors/p").await.1;
        if view["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(view["state"], "failed", "{view}");
    let error = view["last_error"].as_str().unwrap();
    assert!(error.contains("'out' was deleted"), "{error}");
    env.api.create_topic("out", 1).await;
    let (_, body) = env.api.call(Method::POST, "/v1/processors/p/resume", None).await;
    assert_eq!(body["state"], "running", "{body}");
    assert_eq!(wait_for_records(&env.api, "out", 1).await[0]["value"], "X");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_share_a_small_pool_and_memory_budget_by_taking_turns() {
    // Two instance slots and 100 MiB of guest memory for three processors of 40 MiB each: at
    // most two are live at once; the third waits for room instead of failing.
    let env = Env::with_config("[limits]\nguest_instances_max = 2\nguest_memory_bytes_max = 104857600\n");
    let id = upload(&env.api, &example("uppercase")).await;
    for i in 0..3 {
        env.api.create_topic(&format!("in{i}"), 1).await;
        env.api.create_topic(&format!("out{i}"), 1).await;
        let spec = json!({"module": id, "input": format!("in{i}"), "outputs": [format!("out{i}")],
            "limits": {"memory_bytes_max": 41943040}});
        assert_eq!(deploy(&env.api, &format!("p{i}"), spec).await.0, StatusCode::CREATED);
    }
    for round in 0..3 {
        for i in 0..3 {
            env.api
                .produce(&format!("in{i}"), json!([{"value": format!("r{round}")}]))
                .await;
        }
        for i in 0..3 {
            let out = wait_for_records(&env.api, &format!("out{i}"), round + 1).await;
            assert_eq!(out.len(), round + 1, "processor {i} answered round {round}");
        }
    }
    for i in 0..3 {
        let (_, v) = env.api.get(&format!("/v1/processors/p{i}")).await;
        assert_eq!(v["state"], "running", "{v}");
    }
    // A cap past the whole budget can never run: refused at deploy, saying what there is.
    let spec = json!({"module": id, "input": "in0", "outputs": ["out0"], "limits": {"memory_bytes_max": 209715200}});
    let (status, body) = deploy(&env.api, "huge", spec).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("guest_memory_bytes_max") && message.contains("free"),
        "{message}"
    );
}

/// `base` (a component) with `extra` more core modules, each defining one memory of `pages`
/// 64 KiB pages and instantiated once: a component with many memories, built without tools.
fn with_extra_memories(base: &[u8], extra: usize, pages: u32) -> Vec<u8> {
    fn leb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    // Core modules at the top level of `base` (section id 1), to number the new ones after.
    let (mut pos, mut modules) = (8usize, 0u64);
    while pos < base.len() {
        let id = base[pos];
        pos += 1;
        let (mut size, mut shift) = (0u64, 0);
        loop {
            let b = base[pos];
            pos += 1;
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        if id == 1 {
            modules += 1;
        }
        pos += size as usize;
    }
    let mut out = base.to_vec();
    for k in 0..extra as u64 {
        let mut memory = vec![1u8, 0x00];
        leb(u64::from(pages), &mut memory);
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.push(5);
        leb(memory.len() as u64, &mut module);
        module.extend(&memory);
        out.push(1);
        leb(module.len() as u64, &mut out);
        out.extend(&module);
        let mut instance = vec![1u8, 0x00];
        leb(modules + k, &mut instance);
        instance.push(0);
        out.push(2);
        leb(instance.len() as u64, &mut out);
        out.extend(&instance);
    }
    out
}

async fn upload_bytes(api: &Api, bytes: Vec<u8>) -> (StatusCode, Value) {
    let resp = api
        .http
        .post(format!("{}/v1/modules", api.base))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_component_cannot_take_more_than_one_instances_share_of_memory_or_the_pool() {
    let env = Env::start();
    let identity = std::fs::read(crate::wasm::example("identity")).unwrap();
    // Too many memories for one instance's share of the pool: refused at upload.
    let (status, body) = upload_bytes(&env.api, with_extra_memories(&identity, 8, 1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("memories"),
        "{body}"
    );
    // Four memories are allowed, but their sizes count against one cap together.
    let (status, body) = upload_bytes(&env.api, with_extra_memories(&identity, 3, 128)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let spec =
        json!({"module": id, "input": "in", "outputs": ["out"], "limits": {"memory_bytes_max": 16 * 1024 * 1024}});
    assert_eq!(deploy(&env.api, "fat", spec).await.0, StatusCode::CREATED);
    env.api.produce("in", json!([{"value": "x"}])).await;
    let mut view = Value::Null;
    for _ in 0..200 {
        view = env.api.get("/v1/processors/fat").await.1;
        if view["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        view["state"], "failed",
        "three 8 MiB memories do not fit a 16 MiB cap: {view}"
    );
    assert!(view["last_error"].as_str().unwrap().contains("memory cap"), "{view}");
    assert_eq!(count(&env.api, "out").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_processors_give_their_pool_slots_up_to_one_that_waits() {
    // Four slots, four processors with long backlogs: a fifth one is still served.
    let env = Env::with_config("[limits]\nguest_instances_max = 4\n");
    let id = upload(&env.api, &example("identity")).await;
    for i in 0..5 {
        env.api.create_topic(&format!("in{i}"), 1).await;
    }
    env.api.create_topic("out", 1).await;
    let backlog: Vec<_> = (0..5000).map(|i| json!({"value": format!("b{i}")})).collect();
    for i in 0..4 {
        for _ in 0..4 {
            env.api.produce(&format!("in{i}"), json!(backlog)).await;
        }
        let spec = json!({"module": id, "input": format!("in{i}"), "outputs": ["out"], "batch_records_max": 1});
        assert_eq!(deploy(&env.api, &format!("busy{i}"), spec).await.0, StatusCode::CREATED);
    }
    env.api.create_topic("late-out", 1).await;
    let spec = json!({"module": id, "input": "in4", "outputs": ["late-out"]});
    assert_eq!(deploy(&env.api, "late", spec).await.0, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.api.produce("in4", json!([{"value": "me too"}])).await;
    wait_for_records(&env.api, "late-out", 1).await;
    // Served while the busy ones still had most of their backlog: not after it.
    let mut behind = 0;
    for i in 0..4 {
        let (_, v) = env.api.get(&format!("/v1/processors/busy{i}")).await;
        behind += v["lag"][0]["lag"].as_u64().unwrap();
    }
    assert!(
        behind > 0,
        "the busy processors were still busy when the late one answered"
    );
}

#[tokio::test]
async fn a_guest_cannot_log_a_line_larger_than_8_kib() {
    let env = Env::start();
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    let id = upload(&env.api, &chaos()).await;
    assert_eq!(
        deploy(
            &env.api,
            "talker",
            json!({"module": id, "input": "in", "outputs": ["out"]})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    env.api
        .produce("in", json!([{"value": format!("log:{}", "A".repeat(200_000))}]))
        .await;
    wait_for_records(&env.api, "out", 1).await;
    let mut sse = crate::harness::SseStream::open(&env.api, "/v1/processors/talker/logs", None).await;
    let mut longest = 0;
    while let Some(ev) = sse.next(Duration::from_millis(500)).await {
        longest = longest.max(ev.data.len());
    }
    assert!(
        longest > 1000 && longest < 9 * 1024,
        "the longest log event is {longest} bytes"
    );
}

#[tokio::test]
async fn a_module_in_use_cannot_be_deleted_an_unused_one_can_and_uploads_respect_a_quota() {
    let env = Env::with_config("[limits]\nmodules_bytes_max = 5000000\n");
    let id = upload(&env.api, &example("uppercase")).await;
    env.api.create_topic("in", 1).await;
    env.api.create_topic("out", 1).await;
    assert_eq!(
        deploy(&env.api, "p", json!({"module": id, "input": "in", "outputs": ["out"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, body) = env.api.call(Method::DELETE, &format!("/v1/modules/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "module_in_use");
    assert!(body["error"]["message"].as_str().unwrap().contains('p'));
    // The quota counts the upload and its compiled code: a second module does not fit.
    let (_, list) = env.api.get("/v1/modules").await;
    let stored = list["modules"][0]["stored_bytes"].as_u64().unwrap();
    assert!(
        stored > 2_500_000,
        "both the upload and its compiled code are counted: {stored}"
    );
    let bytes = std::fs::read(example("filter")).unwrap();
    let resp = env
        .api
        .http
        .post(format!("{}/v1/modules", env.api.base))
        .header("content-type", "application/wasm")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "module_quota_exceeded", "{body}");
    // Free the first one and the second fits.
    assert_eq!(
        env.api.call(Method::DELETE, "/v1/processors/p", None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = env.api.call(Method::DELETE, &format!("/v1/modules/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = env.api.get("/v1/modules").await;
    assert_eq!(list["modules"], json!([]));
    let resp = env
        .api
        .http
        .post(format!("{}/v1/modules", env.api.base))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = env.api.call(Method::DELETE, &format!("/v1/modules/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted module is gone");
}
