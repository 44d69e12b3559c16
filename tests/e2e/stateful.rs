//! The stateful examples in Python and JavaScript deployed over HTTP with exact outputs,
//! resetting a processor's offsets with and without its state, and paging through state.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::access::{secured, token};
use crate::harness::{Api, Env};
use crate::languages::keyed;
use crate::processors::{deploy, upload, wait_for_records};
use crate::state::caught_up;
use crate::wasm::{example, example_project};

/// Deploys `lang/name` from `in` to `out` with `stores`, dead-lettering into `dlq`.
async fn deploy_stateful(api: &Api, lang: &str, name: &str, stores: &[&str], config: Value) {
    let id = upload(api, &example_project(lang, name)).await;
    for t in ["in", "out", "dlq"] {
        api.create_topic(t, 1).await;
    }
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "stores": stores,
        "config": config, "on_error": "dead_letter", "dead_letter_topic": "dlq"});
    let (status, body) = deploy(api, name, spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn python_running_average_averages_per_key_across_a_kill_9() {
    let mut env = Env::start();
    deploy_stateful(
        &env.api,
        "python",
        "running-average",
        &["sums"],
        json!({"field": "temp"}),
    )
    .await;
    env.api
        .produce(
            "in",
            json!([
                {"key": "s1", "value": {"temp": 20}},
                {"key": "s1", "value": {"temp": 22.5}},
                {"key": "s2", "value": {"temp": -3}},
                {"key": "s1", "value": {"temp": "hot"}},
                {"value": {"temp": 1}},
                {"key": "s1", "value": {"temp": 21.25}},
            ]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 4).await;
    let expected = [
        ("s1", r#"{"average":20.0,"count":1}"#),
        ("s1", r#"{"average":21.25,"count":2}"#),
        ("s2", r#"{"average":-3.0,"count":1}"#),
        ("s1", r#"{"average":21.25,"count":3}"#),
    ];
    let want: Vec<(String, String)> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(keyed(&out), want);
    let dlq = wait_for_records(&env.api, "dlq", 2).await;
    let errors: Vec<&str> = dlq
        .iter()
        .map(|r| r["headers"]["weir-error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "ValueError: field 'temp' is 'hot', not a number",
            "ValueError: a reading needs a key (the sensor it is from)"
        ]
    );
    caught_up(&env.api, "running-average").await;
    let (status, s1) = env.api.get("/v1/processors/running-average/state/sums?key=s1").await;
    assert_eq!(status, StatusCode::OK, "{s1}");
    assert_eq!(s1["value"], r#"{"sum": 63.75, "count": 3}"#.replace(' ', ""));

    // A kill -9 loses nothing committed: the next reading of s1 averages over all four.
    env.server.kill();
    env.server.restart();
    env.api = env.server.client();
    env.api
        .produce("in", json!([{"key": "s1", "value": {"temp": 16.25}}]))
        .await;
    let out = wait_for_records(&env.api, "out", 5).await;
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(out[4]["value"], r#"{"average":20.0,"count":4}"#);
}

#[tokio::test]
async fn js_dedupe_drops_ids_seen_within_the_window_and_its_timers_forget_old_ones() {
    let env = Env::start();
    deploy_stateful(&env.api, "js", "dedupe", &["seen"], json!({"window_ms": "1000"})).await;
    env.api
        .produce(
            "in",
            json!([
                {"key": "a", "timestamp": 0, "value": "a0"},
                {"key": "b", "timestamp": 100, "value": "b100"},
                {"key": "a", "timestamp": 500, "value": "a500"},
                {"key": "a", "timestamp": 1500, "value": "a1500"},
                {"key": "c", "timestamp": 3000, "value": "c3000"},
                {"key": "c", "timestamp": 3200, "value": "c3200"},
                {"timestamp": 3300, "value": "no key"},
            ]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 4).await;
    let values: Vec<&str> = out.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["a0", "b100", "a1500", "c3000"]);
    assert_eq!(out[2]["timestamp"], 1500, "passed through unchanged: {out:?}");
    let dlq = wait_for_records(&env.api, "dlq", 1).await;
    assert_eq!(
        dlq[0]["headers"]["weir-error"],
        "Error: a record needs a key (its id), or deploy with config field=NAME"
    );
    caught_up(&env.api, "dedupe").await;
    // The timers of a and b fired once event time passed them: only c is still remembered.
    let (status, page) = env.api.get("/v1/processors/dedupe/state/seen").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["entries"], json!([{"partition": 0, "key": "c", "value": "3000"}]));
    // a is new again after its window; c is still a duplicate at 3900, not at 4100.
    env.api
        .produce(
            "in",
            json!([
                {"key": "a", "timestamp": 3500, "value": "a3500"},
                {"key": "c", "timestamp": 3900, "value": "c3900"},
                {"key": "c", "timestamp": 4100, "value": "c4100"},
            ]),
        )
        .await;
    let out = wait_for_records(&env.api, "out", 6).await;
    let values: Vec<&str> = out.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values[4..], ["a3500", "c4100"]);
}

/// Words, one record each, at `timestamp`.
fn words_at(ws: &[&str], timestamp: u64) -> Value {
    Value::Array(ws.iter().map(|w| json!({"value": w, "timestamp": timestamp})).collect())
}

/// Deploys the word count from `words` to `counts`, one partition each.
async fn wordcount(api: &Api) {
    api.create_topic("words", 1).await;
    api.create_topic("counts", 1).await;
    let id = upload(api, &example("wordcount")).await;
    let spec = json!({"module": id, "input": "words", "outputs": ["counts"], "stores": ["counts"]});
    let (status, body) = deploy(api, "wc", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The `key=value` of the output records from `from` on, once `count` are there.
async fn counts_from(api: &Api, from: usize, count: usize) -> Vec<String> {
    let out = wait_for_records(api, "counts", from + count).await;
    out[from..]
        .iter()
        .map(|r| format!("{}={}", r["key"].as_str().unwrap(), r["value"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn reset_moves_offsets_and_clears_state_only_when_asked() {
    let (env, admin) = secured();
    let api = &admin;
    wordcount(api).await;
    api.produce("words", words_at(&["apple", "pear", "apple"], 1_000)).await;
    api.produce("words", words_at(&["kiwi"], 2_000)).await;
    assert_eq!(counts_from(api, 0, 4).await, ["apple=1", "pear=1", "apple=2", "kiwi=1"]);

    // Only deploy rights reset: an operator may pause and resume but not replay input.
    let (operate, _) = token(api, &["processor:wc:operate", "processor:wc:read"]).await;
    let op = env.api.with_token(&operate);
    let (status, code) = op
        .error_code(Method::POST, "/v1/processors/wc/reset", Some(json!({"to": "earliest"})))
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, code) = api
        .error_code(
            Method::POST,
            "/v1/processors/wc/reset",
            Some(json!({"to": "yesterday"})),
        )
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (_, body) = api.post("/v1/processors/wc/reset", json!({"to": -1})).await;
    assert!(
        body.to_string().contains(r#"\"to\" must be"#),
        "says what to give: {body}"
    );
    let (status, code) = api
        .error_code(
            Method::POST,
            "/v1/processors/nope/reset",
            Some(json!({"to": "earliest"})),
        )
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "processor_not_found"));
    // A refused reset moved nothing.
    caught_up(api, "wc").await;
    assert_eq!(wait_for_records(api, "counts", 4).await.len(), 4);

    // Offsets alone: the input is read again onto the kept counts.
    let (status, view) = api.post("/v1/processors/wc/reset", json!({"to": "earliest"})).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["name"], "wc");
    assert_eq!(counts_from(api, 4, 4).await, ["apple=3", "pear=2", "apple=4", "kiwi=2"]);

    // With the state: counting starts over.
    caught_up(api, "wc").await;
    let (status, _) = api
        .post("/v1/processors/wc/reset", json!({"to": "earliest", "state": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts_from(api, 8, 4).await, ["apple=1", "pear=1", "apple=2", "kiwi=1"]);

    // From a timestamp (the first record at or after it), clearing the state.
    caught_up(api, "wc").await;
    let (status, _) = api
        .post(
            "/v1/processors/wc/reset",
            json!({"to": {"timestamp": 1_500}, "state": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts_from(api, 12, 1).await, ["kiwi=1"]);

    // From an offset, keeping the state.
    caught_up(api, "wc").await;
    let (status, _) = api.post("/v1/processors/wc/reset", json!({"to": 2})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts_from(api, 13, 2).await, ["apple=1", "kiwi=2"]);

    // To the end: nothing is read again, new input counts on.
    caught_up(api, "wc").await;
    let (status, view) = api.post("/v1/processors/wc/reset", json!({"to": "latest"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view["lag"][0]["committed_offset"], 4,
        "the answer shows the new offset: {view}"
    );
    api.produce("words", words_at(&["apple"], 3_000)).await;
    assert_eq!(counts_from(api, 15, 1).await, ["apple=2"]);
    caught_up(api, "wc").await;
    assert_eq!(wait_for_records(api, "counts", 16).await.len(), 16, "nothing more");

    // A paused processor stays paused across a reset, and picks up from the new offset.
    let (status, _) = api.post("/v1/processors/wc/pause", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, view) = api
        .post("/v1/processors/wc/reset", json!({"to": "earliest", "state": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "paused", "{view}");
    let (status, _) = api.post("/v1/processors/wc/resume", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        counts_from(api, 16, 5).await,
        ["apple=1", "pear=1", "apple=2", "kiwi=1", "apple=3"]
    );
}

#[tokio::test]
async fn state_pages_through_every_key_in_order_with_prefix_and_binary_keys() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("words", 2).await;
    api.create_topic("counts", 2).await;
    let id = upload(api, &example("wordcount")).await;
    let spec = json!({"module": id, "input": "words", "outputs": ["counts"], "stores": ["counts"]});
    assert_eq!(deploy(api, "wc", spec).await.0, StatusCode::CREATED);
    let words: Vec<String> = (0..25).map(|i| format!("w{i:02}")).collect();
    let mut records: Vec<Value> = words.iter().map(|w| json!({"key": w, "value": w})).collect();
    records.push(json!({"key": "w03", "value": "w03"}));
    api.produce("words", Value::Array(records)).await;
    wait_for_records(api, "counts", 26).await;
    caught_up(api, "wc").await;

    // Pages of 7 in key order over both partitions' tasks, each page going on from next_after.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let (status, page) = api.get(&format!("/v1/processors/wc/state/counts?limit=7{q}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for e in page["entries"].as_array().unwrap() {
            seen.push((
                e["key"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    let want: Vec<(String, String)> = words
        .iter()
        .map(|w| (w.clone(), if w == "w03" { "2" } else { "1" }.to_owned()))
        .collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 4);

    let (_, page) = api.get("/v1/processors/wc/state/counts?prefix=w1").await;
    let keys: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, (10..20).map(|i| format!("w{i}")).collect::<Vec<_>>());
    assert!(page["next_after"].is_null(), "{page}");

    // The same key in base64; a missing key and store are 404s that say which.
    let (status, one) = api.get("/v1/processors/wc/state/counts?key_b64=dzAz").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["key"].as_str(), one["value"].as_str()), (Some("w03"), Some("2")));
    for (path, code) in [
        ("/v1/processors/wc/state/counts?key=nope", "key_not_found"),
        ("/v1/processors/wc/state/nope", "store_not_found"),
        ("/v1/processors/nope/state/counts", "processor_not_found"),
    ] {
        let (status, got) = api.error_code(Method::GET, path, None).await;
        assert_eq!((status, got.as_str()), (StatusCode::NOT_FOUND, code), "{path}");
    }
    for bad in ["limit=0", "limit=1001", "limit=x", "key_b64=%%%", "key=a&key_b64=YQ"] {
        let (status, got) = api
            .error_code(Method::GET, &format!("/v1/processors/wc/state/counts?{bad}"), None)
            .await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_reset_cut_short_by_a_crash_is_finished_before_the_processor_runs_again() {
    let mut env = Env::start();
    wordcount(&env.api).await;
    env.api
        .produce("words", words_at(&["apple", "pear", "apple"], 1_000))
        .await;
    assert_eq!(counts_from(&env.api, 0, 3).await, ["apple=1", "pear=1", "apple=2"]);
    caught_up(&env.api, "wc").await;
    let (_, topic) = env.api.get("/v1/topics/words").await;
    // What a reset writes down before it changes anything, as a kill -9 right after leaves it.
    env.server.kill();
    let intent = json!({"input_topic_id": topic["id"], "offsets": [0], "state": true});
    let path = env.server.data_dir.join("processors/wc/reset.json");
    std::fs::write(&path, intent.to_string()).unwrap();
    env.server.restart();
    env.api = env.server.client();
    // Both halves happened: the input is read again from 0 onto empty counts.
    assert_eq!(counts_from(&env.api, 3, 3).await, ["apple=1", "pear=1", "apple=2"]);
    assert!(!path.exists(), "the finished reset is forgotten");
    caught_up(&env.api, "wc").await;
    let (_, apple) = env.api.get("/v1/processors/wc/state/counts?key=apple").await;
    assert_eq!(apple["value"], "2");
    // A written-down reset that cannot be read fails the start with a reason, and runs nothing.
    env.server.stop();
    std::fs::write(&path, "{not json").unwrap();
    env.server.restart();
    env.api = env.server.client();
    let (_, view) = env.api.get("/v1/processors/wc").await;
    assert_eq!(view["state"], "failed", "{view}");
    assert!(view["last_error"].as_str().unwrap().contains("reset"), "{view}");
}
