use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn fetch_from_earliest_latest_and_an_offset_with_paging() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let records: Vec<_> = (0..25).map(|i| json!({"value": format!("v{i}")})).collect();
    env.api.produce("t", json!(records)).await;

    let (_, page) = env
        .api
        .get("/v1/topics/t/partitions/0/records?offset=earliest&max_records=10")
        .await;
    assert_eq!(page["records"].as_array().unwrap().len(), 10);
    assert_eq!(page["next_offset"], 10);
    assert_eq!(page["high_watermark"], 25);
    assert_eq!(page["records"][0]["offset"], 0);
    assert_eq!(page["records"][0]["partition"], 0);

    let (_, page) = env.api.get("/v1/topics/t/partitions/0/records?offset=20").await;
    let offsets: Vec<_> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![20, 21, 22, 23, 24]);
    assert_eq!(page["records"][0]["value"], "v20");

    let (_, page) = env.api.get("/v1/topics/t/partitions/0/records?offset=latest").await;
    assert_eq!(page["records"], json!([]));
    assert_eq!(page["next_offset"], 25);

    let all = env.api.fetch_all("t", 0, 0).await;
    assert_eq!(all.len(), 25);
}

#[tokio::test]
async fn offsets_outside_the_log_are_416_naming_start_and_high_watermark() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    env.api.produce("t", json!([{"value": 1}, {"value": 2}])).await;
    let (status, body) = env.api.get("/v1/topics/t/partitions/0/records?offset=3").await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(body["error"]["code"], "offset_out_of_range");
    assert_eq!(body["error"]["high_watermark"], 2);
    assert_eq!(body["error"]["log_start_offset"], 0);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("starts at 0") && msg.contains("high watermark is 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn bad_fetch_parameters_are_400_and_missing_partitions_404() {
    let env = Env::start();
    env.api.create_topic("t", 2).await;
    for q in [
        "offset=soon",
        "max_records=0",
        "max_bytes=0",
        "encoding=hex",
        "wait_ms=99999999",
        "bogus=1",
    ] {
        let (status, code) = env
            .api
            .error_code(Method::GET, &format!("/v1/topics/t/partitions/0/records?{q}"), None)
            .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{q}"
        );
    }
    let (status, code) = env
        .api
        .error_code(Method::GET, "/v1/topics/t/partitions/2/records", None)
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "partition_not_found"));
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_record_arrives() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let api = env.api.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.produce("t", json!([{"value": "late"}])).await;
    });
    let (status, page) = env
        .api
        .get("/v1/topics/t/partitions/0/records?offset=0&wait_ms=30000")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["records"][0]["value"], "late",
        "the long-poll answered with the new record: {page}"
    );
    producer.await.unwrap();
}

#[tokio::test]
async fn long_poll_with_nothing_new_answers_empty_when_time_is_up() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let (status, page) = env
        .api
        .get("/v1/topics/t/partitions/0/records?offset=latest&wait_ms=200")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["records"], json!([]));
    assert_eq!(page["next_offset"], 0);
}
