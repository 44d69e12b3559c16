use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn string_values_are_stored_as_text_other_json_compact_and_null_as_a_tombstone() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let offsets = env
        .api
        .produce(
            "t",
            json!([
                {"key": "k1", "value": "plain text", "headers": {"source": "test"}, "timestamp": 1700000000000u64},
                {"value": {"amount": 12, "items": [1, 2]}},
                {"value": 42},
                {"value": null},
            ]),
        )
        .await;
    assert_eq!(offsets, vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
    let records = env.api.fetch_all("t", 0, 0).await;
    assert_eq!(records[0]["value"], "plain text");
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["headers"], json!({"source": "test"}));
    assert_eq!(records[0]["timestamp"], 1700000000000u64);
    assert_eq!(records[1]["value"], r#"{"amount":12,"items":[1,2]}"#);
    assert_eq!(records[1]["key"], json!(null));
    assert!(
        records[1]["timestamp"].as_u64().unwrap() > 1700000000000,
        "append time is set when none is given"
    );
    assert_eq!(records[2]["value"], "42");
    assert_eq!(
        records[3]["value"],
        json!(null),
        "a null value is a tombstone, read back as null"
    );
    assert!(records[3].get("value_b64").is_none());
}

#[tokio::test]
async fn ndjson_body_appends_one_record_per_line() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let body = "{\"value\":\"a\"}\n\n{\"value\":\"b\",\"key\":\"x\"}\r\n{\"value\":\"c\"}";
    let resp = env
        .api
        .http
        .post(format!("{}/v1/topics/t/records", env.api.base))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let values: Vec<_> = env
        .api
        .fetch_all("t", 0, 0)
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, vec![json!("a"), json!("b"), json!("c")]);
}

#[tokio::test]
async fn binary_keys_and_values_round_trip_as_base64() {
    let env = Env::start();
    env.api.create_topic("bin", 1).await;
    let value = [0u8, 159, 146, 150, 255];
    env.api
        .produce("bin", json!([{"key_b64": B64.encode(b"\xffk"), "value_b64": B64.encode(value), "headers_b64": {"raw": B64.encode([0xfe])}}]))
        .await;
    let r = &env.api.fetch_all("bin", 0, 0).await[0];
    assert_eq!(r["value_b64"], B64.encode(value));
    assert_eq!(r["key_b64"], B64.encode(b"\xffk"));
    assert_eq!(r["headers_b64"]["raw"], B64.encode([0xfe]));
    assert!(r.get("value").is_none());
    // encoding=base64 forces base64 even for text.
    env.api.produce("bin", json!([{"value": "text"}])).await;
    let (_, page) = env
        .api
        .get("/v1/topics/bin/partitions/0/records?offset=1&encoding=base64")
        .await;
    assert_eq!(page["records"][0]["value_b64"], B64.encode("text"));
}

#[tokio::test]
async fn same_key_lands_on_the_same_partition_and_explicit_partitions_are_honoured() {
    let env = Env::start();
    env.api.create_topic("p", 4).await;
    let records: Vec<_> = (0..40)
        .map(|i| json!({"key": format!("user-{}", i % 5), "value": i}))
        .collect();
    let offsets = env.api.produce("p", json!(records)).await;
    for i in 0..40 {
        assert_eq!(offsets[i].0, offsets[i % 5].0, "key user-{} moved partitions", i % 5);
    }
    let pinned = env
        .api
        .produce("p", json!([{"value": "x", "partition": 3, "key": "user-0"}]))
        .await;
    assert_eq!(pinned[0].0, 3);
    // Keyless records spread over partitions request by request.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(env.api.produce("p", json!([{"value": "spread"}])).await[0].0);
    }
    assert_eq!(seen.len(), 4, "keyless requests rotate over all partitions: {seen:?}");
}

#[tokio::test]
async fn a_request_with_one_invalid_record_appends_nothing() {
    let env = Env::start();
    env.api.create_topic("t", 2).await;
    let bad_bodies = [
        (json!({"records": [{"value": "ok"}, {"vaule": "typo"}]}), "record 1"),
        (json!({"records": [{"value": "ok"}, {"key": "no value"}]}), "record 1"),
        (
            json!({"records": [{"value": "ok"}, {"value": "x", "partition": 2}]}),
            "partition 2",
        ),
        (json!({"records": [{"value_b64": "!!!"}]}), "base64"),
        (json!({"records": [{"value": "a", "value_b64": "YQ=="}]}), "not both"),
        (json!({"records": [{"value": "a", "timestamp": -5}]}), "timestamp"),
        (
            json!({"records": [{"value": "a"}, {"value": "b", "partition": "one"}]}),
            "partition: invalid type",
        ),
    ];
    for (body, word) in bad_bodies {
        let (status, resp) = env.api.post("/v1/topics/t/records", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(resp["error"]["code"], "invalid_record", "{resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(word),
            "{resp} should say {word}"
        );
    }
    let (status, code) = env
        .api
        .error_code(Method::POST, "/v1/topics/t/records", Some(json!({"records": []})))
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (status, code) = env
        .api
        .error_code(Method::POST, "/v1/topics/t/records", Some(json!([1, 2])))
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (_, t) = env.api.get("/v1/topics/t").await;
    for p in t["partitions"].as_array().unwrap() {
        assert_eq!(p["high_watermark"], 0, "nothing was appended: {t}");
    }
}

#[tokio::test]
async fn records_and_bodies_over_their_limits_are_413() {
    let env = Env::with_args(&["--record-bytes-max", "1000", "--body-bytes-max", "20000"]);
    env.api.create_topic("t", 1).await;
    let (status, resp) = env
        .api
        .post(
            "/v1/topics/t/records",
            json!({"records": [{"value": "x"}, {"value": "y".repeat(1001)}]}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp["error"]["code"], "record_too_large");
    assert!(resp["error"]["message"].as_str().unwrap().contains("record 1"));
    let many: Vec<_> = (0..50).map(|_| json!({"value": "z".repeat(900)})).collect();
    let (status, resp) = env.api.post("/v1/topics/t/records", json!({ "records": many })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp["error"]["code"], "body_too_large");
    let (_, t) = env.api.get("/v1/topics/t").await;
    assert_eq!(t["partitions"][0]["high_watermark"], 0);
}

#[tokio::test]
async fn the_produce_answer_says_which_fsync_policy_held() {
    let env = Env::start();
    env.api.create_topic("durable", 1).await;
    let (_, resp) = env
        .api
        .post("/v1/topics/durable/records", json!({"records": [{"value": 1}]}))
        .await;
    assert_eq!(
        (resp["fsync"].as_str(), resp["durable"].as_bool()),
        (Some("always"), Some(true))
    );
    let (status, _) = env
        .api
        .post("/v1/topics", json!({"name": "fast", "fsync": "never"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, resp) = env
        .api
        .post("/v1/topics/fast/records", json!({"records": [{"value": 1}]}))
        .await;
    assert_eq!(
        (resp["fsync"].as_str(), resp["durable"].as_bool()),
        (Some("never"), Some(false))
    );
    let (status, _) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "timed", "fsync": "interval", "fsync_interval_ms": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, resp) = env
        .api
        .post("/v1/topics/timed/records", json!({"records": [{"value": 1}]}))
        .await;
    assert_eq!(resp["fsync"], "interval");
}

#[tokio::test]
async fn unsupported_content_type_is_415() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let resp = env
        .api
        .http
        .post(format!("{}/v1/topics/t/records", env.api.base))
        .header("content-type", "text/csv")
        .body("a,b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
