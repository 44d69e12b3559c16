use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn create_list_describe_and_delete_a_topic() {
    let env = Env::start();
    let (status, body) = env
        .api
        .post(
            "/v1/topics",
            json!({"name": "orders", "partitions": 3, "retention_ms": 60000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "orders");
    assert_eq!(body["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(body["config"]["retention_ms"], 60000);
    assert_eq!(body["config"]["fsync"], "always");

    let (_, list) = env.api.get("/v1/topics").await;
    assert_eq!(list["topics"][0]["name"], "orders");

    let (status, t) = env.api.get("/v1/topics/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t["partitions"][2],
        json!({"partition": 2, "log_start_offset": 0, "high_watermark": 0, "last_stable_offset": 0, "size_bytes": 0, "segments": 1})
    );

    let (status, _) = env.api.call(Method::DELETE, "/v1/topics/orders", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.api.error_code(Method::GET, "/v1/topics/orders", None).await,
        (StatusCode::NOT_FOUND, "topic_not_found".into())
    );
    let (_, list) = env.api.get("/v1/topics").await;
    assert_eq!(list["topics"], json!([]));
    // The name is free again, and the new topic starts empty.
    env.api.create_topic("orders", 1).await;
    let (_, t) = env.api.get("/v1/topics/orders").await;
    assert_eq!(t["partitions"][0]["high_watermark"], 0);
}

#[tokio::test]
async fn creating_an_existing_topic_is_409_topic_exists() {
    let env = Env::start();
    env.api.create_topic("dup", 1).await;
    let (status, code) = env
        .api
        .error_code(
            Method::POST,
            "/v1/topics",
            Some(json!({"name": "dup", "partitions": 2})),
        )
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "topic_exists"));
}

#[tokio::test]
async fn invalid_topic_names_are_400_and_never_touch_a_path() {
    let env = Env::start();
    for name in [
        "",
        ".",
        "..",
        "../escape",
        "a/b",
        "white space",
        "ünïcode",
        &"x".repeat(250),
    ] {
        let (status, code) = env
            .api
            .error_code(Method::POST, "/v1/topics", Some(json!({"name": name})))
            .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_topic_name"),
            "name {name:?}"
        );
    }
    let topics_dir = env.server.data_dir.join("topics");
    let made: Vec<_> = std::fs::read_dir(&topics_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "__weir_offsets")
        .collect();
    assert_eq!(made, Vec::<String>::new(), "only the broker's offset store");
    assert!(!env.server.data_dir.join("escape").exists());
    assert!(!env.server.data_dir.parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn bad_topic_settings_are_400_saying_which() {
    let env = Env::start();
    let cases = [
        (json!({"name": "t", "partitions": 0}), "partitions"),
        (json!({"name": "t", "segment_bytes": 10}), "segment_bytes"),
        (json!({"name": "t", "fsync": "sometimes"}), "fsync"),
        (json!({"name": "t", "partitions": 1, "colour": "red"}), "colour"),
    ];
    for (body, word) in cases {
        let (status, resp) = env.api.post("/v1/topics", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(word),
            "{resp} should mention {word}"
        );
    }
}

#[tokio::test]
async fn every_endpoint_of_an_unknown_topic_is_404_topic_not_found() {
    let env = Env::start();
    let paths = [
        (Method::GET, "/v1/topics/ghost"),
        (Method::DELETE, "/v1/topics/ghost"),
        (Method::GET, "/v1/topics/ghost/partitions/0/records"),
        (Method::GET, "/v1/topics/ghost/events"),
    ];
    for (method, path) in paths {
        assert_eq!(
            env.api.error_code(method.clone(), path, None).await,
            (StatusCode::NOT_FOUND, "topic_not_found".into()),
            "{method} {path}"
        );
    }
    let (status, code) = env
        .api
        .error_code(
            Method::POST,
            "/v1/topics/ghost/records",
            Some(json!({"records": [{"value": 1}]})),
        )
        .await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "topic_not_found"));
}

#[tokio::test]
async fn the_brokers_own_topics_are_readable_but_not_created_written_or_deleted_over_the_api() {
    let env = Env::start();
    env.api.create_topic("mine", 1).await;
    let (_, list) = env.api.get("/v1/topics").await;
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"], "internal topics are not listed by default");
    let (_, all) = env.api.get("/v1/topics?internal=true").await;
    let offsets = all["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "__weir_offsets")
        .expect("the offset store is listed when asked for");
    assert_eq!(offsets["internal"], true);
    assert_eq!(offsets["config"]["cleanup_policy"], "compact");
    let (status, _) = env.api.get("/v1/topics/__weir_offsets/partitions/0/records").await;
    assert_eq!(status, StatusCode::OK, "readable");
    for (method, path, body) in [
        (Method::POST, "/v1/topics", Some(json!({"name": "__mine"}))),
        (
            Method::POST,
            "/v1/topics/__weir_offsets/records",
            Some(json!({"records": [{"value": "x"}]})),
        ),
        (Method::DELETE, "/v1/topics/__weir_offsets", None),
    ] {
        let (status, code) = env.api.error_code(method.clone(), path, body).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "internal_topic"),
            "{method} {path}"
        );
    }
    let (status, _) = env.api.get("/v1/topics/__weir_offsets").await;
    assert_eq!(status, StatusCode::OK, "still there");
}
