//! Tables (a topic read as the latest value per key) over HTTP and SSE, and the declarative
//! stream-table join: enrichment with a table that changes during the run, missing keys under
//! each policy, a table whose partition count differs refused at deploy, and a table restored
//! from its topic after `kill -9`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::access::{secured, token};
use crate::harness::{Api, Env, SseStream};
use crate::processors::{deploy, wait_for_records};
use crate::state::caught_up;

/// Waits until the table `topic` holds `value` (text) for `key`.
async fn wait_for_row(api: &Api, topic: &str, key: &str, value: &str) {
    for _ in 0..200 {
        let (status, row) = api.get(&format!("/v1/tables/{topic}?key={key}")).await;
        if status == StatusCode::OK && row["value"] == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("table {topic} never held {key} = {value}");
}

fn values(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| serde_json::from_str(r["value"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_join_enriches_orders_with_a_table_that_changes_during_the_run() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("customers", 2).await;
    api.create_topic("orders", 2).await;
    for t in ["enriched", "inner"] {
        api.create_topic(t, 2).await;
    }
    api.produce(
        "customers",
        json!([{"key": "c1", "value": {"name": "Ada", "tier": "gold"}},
               {"key": "c2", "value": {"name": "Bo", "tier": "silver"}},
               {"key": "c3", "value": "plain text row"}]),
    )
    .await;
    let left = json!({"input": "orders", "outputs": ["enriched"],
        "join": {"table": "customers", "key": "/customer_id", "as": "customer"}});
    let (status, body) = deploy(api, "enrich", left).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let inner = json!({"input": "orders", "outputs": ["inner"],
        "join": {"table": "customers", "missing": "drop"}});
    let (status, body) = deploy(api, "inner", inner).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dl = json!({"input": "orders", "outputs": ["enriched-dl"],
        "join": {"table": "customers", "key": "/customer_id", "missing": "dead_letter"}});
    api.create_topic("enriched-dl", 2).await;
    let (status, body) = deploy(api, "strict", dl).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order = |id: u32, c: &str| json!({"key": c, "value": {"order": id, "customer_id": c}});
    api.produce(
        "orders",
        json!([order(1, "c1"), order(2, "c2"), order(3, "c9"), order(4, "c3")]),
    )
    .await;
    caught_up(api, "enrich").await;
    // The table changes: c1 moves tier, c2 is deleted.
    api.produce(
        "customers",
        json!([{"key": "c1", "value": {"name": "Ada", "tier": "platinum"}}, {"key": "c2", "value": null}]),
    )
    .await;
    wait_for_row(api, "customers", "c1", r#"{"name":"Ada","tier":"platinum"}"#).await;
    let (status, body) = api.get("/v1/tables/customers?key=c2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a tombstone deletes the row: {body}");
    assert_eq!(body["error"]["code"], "key_not_found");
    api.produce("orders", json!([order(5, "c1"), order(6, "c2")])).await;
    let out = wait_for_records(api, "enriched", 6).await;
    let mut got = values(&out);
    got.sort_by_key(|v| v["order"].as_u64());
    assert_eq!(
        got,
        [
            json!({"order": 1, "customer_id": "c1", "customer": {"name": "Ada", "tier": "gold"}}),
            json!({"order": 2, "customer_id": "c2", "customer": {"name": "Bo", "tier": "silver"}}),
            json!({"order": 3, "customer_id": "c9", "customer": null}),
            json!({"order": 4, "customer_id": "c3", "customer": "plain text row"}),
            json!({"order": 5, "customer_id": "c1", "customer": {"name": "Ada", "tier": "platinum"}}),
            json!({"order": 6, "customer_id": "c2", "customer": null}),
        ]
    );
    // The key is kept, so the enriched stream stays partitioned as the orders were.
    assert!(
        out.iter()
            .all(|r| r["key"] == values(std::slice::from_ref(r))[0]["customer_id"])
    );
    // Joined on the record key, dropping misses: c9 and the deleted c2 are not there.
    caught_up(api, "inner").await;
    let mut inner: Vec<u64> = values(&api_all(api, "inner").await)
        .iter()
        .map(|v| v["order"].as_u64().unwrap())
        .collect();
    inner.sort();
    assert_eq!(inner, [1, 2, 4, 5]);
    // Misses as record errors: dead-lettered with the reason.
    let dlq = wait_for_records(api, "strict-dlq", 2).await;
    let mut errors: Vec<String> = dlq
        .iter()
        .map(|r| r["headers"]["weir-error"].as_str().unwrap().to_owned())
        .collect();
    errors.sort();
    assert!(errors[0].contains("no row for key 'c2'"), "{errors:?}");
    assert!(errors[1].contains("no row for key 'c9'"), "{errors:?}");
}

async fn api_all(api: &Api, topic: &str) -> Vec<Value> {
    let (_, t) = api.get(&format!("/v1/topics/{topic}")).await;
    let mut out = Vec::new();
    for p in 0..t["partitions"].as_array().unwrap().len() as u32 {
        out.extend(api.fetch_all(topic, p, 0).await);
    }
    out
}

#[tokio::test]
async fn a_join_with_a_table_of_another_partition_count_is_refused_with_the_counts() {
    let env = Env::start();
    let api = &env.api;
    api.create_topic("customers", 3).await;
    api.create_topic("orders", 2).await;
    api.create_topic("out", 2).await;
    let cases = [
        (
            json!({"table": "customers"}),
            "table 'customers' has 3 partitions and input 'orders' has 2",
        ),
        (json!({"table": "nope"}), "table 'nope' does not exist"),
        (json!({"table": "customers", "key": "customer_id"}), "\"/customer_id\""),
        (json!({"table": "orders"}), "is also the processor's input"),
    ];
    for (join, message) in cases {
        let (status, body) = deploy(api, "j", json!({"input": "orders", "outputs": ["out"], "join": join})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{join}: {body}");
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{join}: wanted '{message}' in '{got}'");
    }
}

#[tokio::test]
async fn a_table_reads_over_http_and_follows_as_sse_and_is_restored_after_kill_9() {
    let mut env = Env::start();
    env.api.create_topic("prices", 2).await;
    env.api
        .produce(
            "prices",
            json!([{"key": "apple", "value": "1.10"}, {"key": "pear", "value": "0.80"},
                   {"key": "apple", "value": "1.25"}, {"value": "no key: not a row"}]),
        )
        .await;
    let (status, row) = env.api.get("/v1/tables/prices?key=apple").await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["value"], "1.25");
    assert_eq!(row["topic"], "prices");
    let (_, figures) = env.api.get("/v1/tables/prices").await;
    assert_eq!(figures["keys"], 2, "{figures}");
    let (status, body) = env.api.get("/v1/tables/prices?key=kiwi").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("key_not_found"))
    );
    let (status, body) = env.api.get("/v1/tables/nope?key=a").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = env.api.get("/v1/tables/prices?key=a&key_b64=YQ==").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env.api.get("/v1/tables/prices?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The rows, `ready`, then each change; a deleted key has a null value.
    let mut sse = SseStream::open(&env.api, "/v1/tables/prices/events", None).await;
    let mut rows = Vec::new();
    loop {
        let ev = sse.next(Duration::from_secs(5)).await.expect("an event");
        if ev.comment {
            continue;
        }
        if ev.event == "ready" {
            break;
        }
        assert_eq!(ev.event, "row");
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        rows.push((
            v["key"].as_str().unwrap().to_owned(),
            v["value"].as_str().unwrap().to_owned(),
        ));
    }
    rows.sort();
    assert_eq!(
        rows,
        [
            ("apple".to_owned(), "1.25".to_owned()),
            ("pear".to_owned(), "0.80".to_owned())
        ]
    );
    env.api
        .produce(
            "prices",
            json!([{"key": "pear", "value": "0.95"}, {"key": "apple", "value": null}]),
        )
        .await;
    let mut changes = Vec::new();
    while changes.len() < 2 {
        let ev = sse.next(Duration::from_secs(5)).await.expect("a change");
        if ev.event == "row" {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            changes.push((v["key"].as_str().unwrap().to_owned(), v["value"].clone()));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changes,
        [("apple".to_owned(), Value::Null), ("pear".to_owned(), json!("0.95"))]
    );
    // Restored from the topic: the same rows after a kill -9.
    env.server.kill();
    env.server.restart();
    env.api = env.server.client();
    wait_for_row(&env.api, "prices", "pear", "0.95").await;
    let (status, _) = env.api.get("/v1/tables/prices?key=apple").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_table_needs_the_topics_read_right_and_a_ticket_opens_its_events() {
    let (env, admin) = secured();
    admin.create_topic("prices", 1).await;
    admin.create_topic("secret", 1).await;
    admin.produce("prices", json!([{"key": "a", "value": "1"}])).await;
    let reader = env.api.with_token(&token(&admin, &["topic:prices:read"]).await.0);
    let (status, row) = reader.get("/v1/tables/prices?key=a").await;
    assert_eq!((status, row["value"].as_str()), (StatusCode::OK, Some("1")));
    let (status, body) = reader.get("/v1/tables/secret?key=a").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("topic:secret:read"));
    let (status, _) = reader.get("/v1/tables/secret/events").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A browser's EventSource cannot send a header: a ticket for the topic opens the table.
    let (status, t) = reader.post("/v1/tickets", json!({"topic": "prices"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let ticket = t["ticket"].as_str().unwrap();
    let mut sse = SseStream::open(&env.api, &format!("/v1/tables/prices/events?ticket={ticket}"), None).await;
    let ev = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.event, "row", "{ev:?}");
    let (status, _) = env.api.get(&format!("/v1/tables/secret/events?ticket={ticket}")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a ticket is for one topic, as for its records"
    );
    let (status, _) = env.api.get(&format!("/v1/tables/prices?key=a&ticket={ticket}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a ticket opens event streams only");
}

#[tokio::test]
async fn the_js_enrich_orders_example_looks_customers_up_in_a_table() {
    let env = Env::start();
    let api = &env.api;
    for t in ["customers", "orders", "orders-enriched"] {
        api.create_topic(t, 2).await;
    }
    api.produce(
        "customers",
        json!([{"key": "c1", "value": {"name": "Ada", "tier": "gold"}}, {"key": "c2", "value": {"name": "Bo", "tier": "silver"}}]),
    )
    .await;
    let id = crate::processors::upload(api, &crate::wasm::example_project("js", "enrich-orders")).await;
    let spec = json!({"module": id, "input": "orders", "outputs": ["orders-enriched"], "tables": ["customers"],
        "dead_letter_topic": "orders-dlq"});
    let (status, body) = deploy(api, "enrich-orders", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order = |id: u32, c: &str| json!({"key": c, "value": {"order": id, "customer_id": c}});
    api.produce("orders", json!([order(1, "c1"), order(2, "c2"), order(3, "c9")]))
        .await;
    caught_up(api, "enrich-orders").await;
    api.produce(
        "customers",
        json!([{"key": "c2", "value": {"name": "Bo", "tier": "gold"}}]),
    )
    .await;
    wait_for_row(api, "customers", "c2", r#"{"name":"Bo","tier":"gold"}"#).await;
    api.produce("orders", json!([order(4, "c2"), {"key": "c1", "value": {"order": 5}}]))
        .await;
    let out = wait_for_records(api, "orders-enriched", 4).await;
    let mut got = values(&out);
    got.sort_by_key(|v| v["order"].as_u64());
    assert_eq!(
        got,
        [
            json!({"order": 1, "customer_id": "c1", "customer": {"name": "Ada", "tier": "gold"}, "priority": true}),
            json!({"order": 2, "customer_id": "c2", "customer": {"name": "Bo", "tier": "silver"}, "priority": false}),
            json!({"order": 3, "customer_id": "c9", "customer": null, "priority": false}),
            json!({"order": 4, "customer_id": "c2", "customer": {"name": "Bo", "tier": "gold"}, "priority": true}),
        ]
    );
    let dlq = wait_for_records(api, "orders-dlq", 1).await;
    assert!(
        dlq[0]["headers"]["weir-error"]
            .as_str()
            .unwrap()
            .contains("needs a customer_id")
    );
    // A module that looks up a table it did not declare is told which ones it has.
    let undeclared =
        json!({"module": id, "input": "orders", "outputs": ["orders-enriched"], "dead_letter_topic": "orders-dlq"});
    let (status, body) = deploy(api, "enrich-orders", undeclared).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.produce("orders", json!([order(6, "c1")])).await;
    let dlq = wait_for_records(api, "orders-dlq", 2).await;
    let error = dlq[1]["headers"]["weir-error"].as_str().unwrap();
    assert!(
        error.contains("no table 'customers'") && error.contains("\"tables\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_join_needs_read_on_its_table_so_it_cannot_copy_a_topic_its_deployer_cannot_read() {
    let (env, admin) = secured();
    for t in ["orders", "out", "salaries"] {
        admin.create_topic(t, 1).await;
    }
    let deployer = env.api.with_token(
        &token(
            &admin,
            &[
                "processor:j:deploy",
                "topic:orders:read",
                "topic:out:write",
                "topic:j-dlq:admin",
            ],
        )
        .await
        .0,
    );
    let spec = json!({"input": "orders", "outputs": ["out"], "join": {"table": "salaries"}});
    let (status, body) = deploy(&deployer, "j", spec.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("topic:salaries:read"),
        "{body}"
    );
    let late = json!({"input": "orders", "outputs": ["out"], "aggregate": {"op": "count"},
        "window": {"type": "tumbling", "size_ms": 1000, "grace_ms": 0, "late": {"topic": "late"}}});
    let (status, body) = deploy(&deployer, "j", late).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "creating the late topic takes admin: {body}"
    );
    let (status, body) = deploy(&admin, "j", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_join_whose_table_is_deleted_stops_and_says_why() {
    let env = Env::start();
    let api = &env.api;
    for t in ["customers", "orders", "out"] {
        api.create_topic(t, 1).await;
    }
    let spec = json!({"input": "orders", "outputs": ["out"], "join": {"table": "customers"}});
    assert_eq!(deploy(api, "j", spec).await.0, StatusCode::CREATED);
    caught_up(api, "j").await;
    let (status, _) = api.call(reqwest::Method::DELETE, "/v1/topics/customers", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for _ in 0..200 {
        let (_, view) = api.get("/v1/processors/j").await;
        if view["state"] == "failed" {
            assert!(
                view["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("table 'customers' was deleted"),
                "{view}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the join kept running on a deleted table");
}

#[tokio::test]
async fn tables_past_their_memory_limit_are_dropped_with_a_clear_error() {
    let env = Env::with_config("[limits]\ntables_bytes_max = 20000\n");
    let api = &env.api;
    api.create_topic("small", 1).await;
    api.create_topic("big", 1).await;
    api.produce("small", json!([{"key": "a", "value": "1"}])).await;
    let rows: Vec<Value> = (0..2000)
        .map(|i| json!({"key": format!("k{i}"), "value": "0123456789"}))
        .collect();
    api.produce("big", Value::Array(rows)).await;
    let (status, row) = api.get("/v1/tables/small?key=a").await;
    assert_eq!(status, StatusCode::OK, "{row}");
    let (status, body) = api.get("/v1/tables/big?key=k1").await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["code"], "table_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.tables_bytes_max"),
        "{body}"
    );
    // The small one is still served; the dropped one gave its memory back.
    let (status, figures) = api.get("/v1/tables/small").await;
    assert_eq!((status, figures["keys"].as_u64()), (StatusCode::OK, Some(1)));
    let (status, _) = api.get("/v1/tables/big").await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
}
