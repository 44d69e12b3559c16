//! What a hostile client tries on the HTTP port: silent and half-sent connections, floods of
//! connections, slow and oversized bodies, malformed input. Each answer is the API's JSON with a
//! fitting status, and nothing holds memory or descriptors for long.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::Env;
use crate::processors::upload;
use crate::wasm::example;

/// Sends `raw` on a new connection and returns the status line's code and the body as JSON.
fn raw_request(addr: &str, raw: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        code,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

/// Whether the server closed `s` (EOF) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_and_half_sent_connections_are_closed_after_the_header_timeout() {
    let env = Env::with_config("[http]\nheader_read_timeout_ms = 500\n");
    let addr = env.addr();
    let mut silent: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut half: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /v1/topics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // Keep-alive connections that went quiet after a request are closed the same way.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 64];
    assert!(idle.read(&mut first).unwrap() > 0);
    // Not a speed test: the bound is 20 times the configured timeout.
    for s in silent
        .iter_mut()
        .chain(half.iter_mut())
        .chain(std::iter::once(&mut idle))
    {
        assert!(closed_within(s, Duration::from_secs(10)), "a connection stayed open");
    }
    assert_eq!(env.api.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_connection_flood_keeps_room_for_healthz_and_service_returns_when_it_ends() {
    let env = Env::with_config("[limits]\nconnections_max = 20\n[http]\nheader_read_timeout_ms = 1500\n");
    let addr = env.addr();
    let flood: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (code, _) = raw_request(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 200, "health checks get through a flood");
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/topics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("overloaded"), "{answer}");
    // Far past the limit, new connections are closed at once: sockets never take the
    // descriptors the logs need.
    let more: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", env.server.pid()))
        .unwrap()
        .count();
    assert!(
        fds < 20 + 32 + 64,
        "the broker holds {fds} descriptors under a flood of 90 connections"
    );
    drop(flood);
    drop(more);
    // The flood's connections are closed by the header timeout or by their clients; service
    // comes back.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = env.api.get("/v1/topics").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "service never came back: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_memory_budget_answers_503() {
    let env = Env::with_config(
        "[limits]\nbody_bytes_max = 2097152\nrecord_bytes_max = 1048576\nrequests_memory_bytes_max = 8388608\n[http]\nbody_read_timeout_ms = 500\n",
    );
    env.api.create_topic("t", 1).await;
    let addr = env.addr();
    // Sends most of a 2 MiB body (reserving 6 of the 8 MiB budget as it arrives), then pauses.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /v1/topics/t/records HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{\"records\":[").unwrap();
    slow.write_all(&vec![b' '; 1_900_000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Meanwhile a second big body does not fit the budget.
    let big = format!("{{\"records\":[{{\"value\":\"{}\"}}]}}", "x".repeat(1_000_000));
    let mut second = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/topics/t/records HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    second.write_all(head.as_bytes()).unwrap();
    // The broker refuses as soon as the body's first part does not fit; the rest may not be
    // taken.
    let _ = second.write_all(big.as_bytes());
    let mut answer = String::new();
    second.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = second.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("overloaded"), "{answer}");
    // The paused body times out; its reservation is given back.
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let resp = env
        .api
        .http
        .post(format!("{}/v1/topics/t/records", env.api.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the budget is free again");
}

#[tokio::test]
async fn too_many_records_in_one_request_are_refused_before_they_take_memory() {
    let env = Env::with_config("[limits]\nrecords_per_request_max = 1000\n");
    env.api.create_topic("t", 1).await;
    let lines: String = (0..1001).map(|i| format!("{{\"value\":{i}}}\n")).collect();
    let resp = env
        .api
        .http
        .post(format!("{}/v1/topics/t/records", env.api.base))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_records");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("records_per_request_max")
    );
    let (_, t) = env.api.get("/v1/topics/t").await;
    assert_eq!(t["partitions"][0]["high_watermark"], 0, "nothing was written");
}

async fn post_raw(env: &Env, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let resp = env
        .api
        .http
        .post(format!("{}{path}", env.api.base))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_bodies_are_refused_whole_and_name_the_line() {
    let env = Env::start();
    env.api.create_topic("t", 1).await;
    let ndjson = "application/x-ndjson";
    for (body, says) in [
        ("{\"value\":\"a\"}{\"value\":\"b\"}\n", "line 1"),
        ("{\"value\":\"ok\"}\n{\"value\":\"c\"} trailing junk ]]]\n", "line 2"),
        ("{\"value\":\"\\ud800\"}\n", "value_b64"),
    ] {
        let (status, answer) = post_raw(&env, "/v1/topics/t/records", ndjson, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, _) = post_raw(
        &env,
        "/v1/topics/t/records",
        "application/json",
        r#"{"records":[{"value":"a"}]} ]]]"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, t) = env.api.get("/v1/topics/t").await;
    assert_eq!(
        t["partitions"][0]["high_watermark"], 0,
        "nothing of a refused request is stored"
    );

    let (status, _) = post_raw(&env, "/v1/topics", "application/json", r#"{"name":"u"} junk"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(env.api.get("/v1/topics/u").await.0, StatusCode::NOT_FOUND);
    let id = upload(&env.api, &example("uppercase")).await;
    env.api.create_topic("out", 1).await;
    let spec = format!(r#"{{"module":"{id}","input":"t","outputs":["out"]}}{{}}"#);
    let resp = env
        .api
        .http
        .put(format!("{}/v1/processors/p", env.api.base))
        .body(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // JSON numbers and key order are stored as sent.
    let (status, _) = post_raw(
        &env,
        "/v1/topics/t/records",
        ndjson,
        "{\"value\": {\"b\": 1.50, \"a\": [1, 2]}}\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stored = env.api.fetch_all("t", 0, 0).await;
    assert_eq!(stored[0]["value"], r#"{"b":1.50,"a":[1,2]}"#);
}

#[tokio::test]
async fn every_error_the_framework_answers_has_the_json_shape() {
    let env = Env::start();
    let addr = env.addr();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"PATCH /v1/topics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(), 405, "method_not_allowed"),
        (
            b"GET /v1/topics/t/partitions/x/records HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (b"GET /v1/topics/%FF%FE HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(), 400, "invalid_request"),
        (
            format!("GET /v1/topics?{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "a".repeat(9000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!(
                "GET /v1/topics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}\r\n",
                (0..40).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(2000))).collect::<String>()
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            b"POST /v1/modules HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/wasm\r\nContent-Length: 999999999999\r\nConnection: close\r\n\r\n".to_vec(),
            413,
            "body_too_large",
        ),
    ];
    for (raw, status, code) in cases {
        let (got, body) = raw_request(&addr, &raw);
        let head = String::from_utf8_lossy(&raw[..raw.len().min(60)]).into_owned();
        assert_eq!(got, status, "{head}: {body}");
        assert_eq!(body["error"]["code"], code, "{head}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, body) = raw_request(
        &addr,
        b"POST /v1/modules HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/wasm\r\nContent-Length: 999999999999\r\nConnection: close\r\n\r\n",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("module_bytes_max") && !message.contains("records"),
        "{message}"
    );
    let (status, code) = env.api.error_code(Method::DELETE, "/v1/processors", None).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn a_body_is_read_only_for_a_caller_with_the_right_and_never_on_a_get() {
    let env = Env::with_config(
        "[limits]\nbody_bytes_max = 2097152\nrecord_bytes_max = 1048576\nrequests_memory_bytes_max = 8388608\n[auth]\nadmin_token = \"admin-token-for-the-tests-0123456789\"\n",
    );
    let addr = env.addr();
    let admin = env.api.with_token("admin-token-for-the-tests-0123456789");
    admin.create_topic("t", 1).await;
    // Anyone: a GET with a body (the public /healthz included) is refused at once.
    let (code, body) = raw_request(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n{",
    );
    assert_eq!(code, 400, "{body}");
    // Without the right to produce, a slow body is refused before it is read, holding nothing.
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"POST /v1/topics/t/records HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{").unwrap();
        slow.push(s);
    }
    for s in &mut slow {
        let mut answer = String::new();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
    // The budget is whole: a big authorized body fits.
    let big = format!("{{\"records\":[{{\"value\":\"{}\"}}]}}", "x".repeat(1_000_000));
    let resp = admin
        .http
        .post(format!("{}/v1/topics/t/records", admin.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let env = Env::start();
    let addr = env.addr();
    for i in 0..20 {
        let raw = format!(
            "M{i}{} /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            "Q".repeat(1000)
        );
        let (code, _) = raw_request(&addr, raw.as_bytes());
        assert!(code >= 400, "{code}");
    }
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
    assert!(!text.contains("QQQQ"), "a made-up method became a metric label");
    assert!(text.contains("method=\"other\""), "made-up methods share one label");
}

#[tokio::test]
async fn a_big_request_is_stored_in_small_batches_and_reads_stay_near_their_byte_limits() {
    let env = Env::start();
    env.api.create_topic("esc", 1).await;
    // 16 records of 1 MiB of control bytes: escaped, each is 6 MiB of JSON.
    let value = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![1u8; 1024 * 1024 - 64]);
    let records: Vec<_> = (0..16).map(|_| serde_json::json!({"value_b64": value})).collect();
    env.api.produce("esc", serde_json::json!(records)).await;
    let resp = env
        .api
        .http
        .get(format!(
            "{}/v1/topics/esc/partitions/0/records?offset=0&max_bytes=1",
            env.api.base
        ))
        .send()
        .await
        .unwrap();
    let body = resp.bytes().await.unwrap();
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        page["records"].as_array().unwrap().len(),
        1,
        "one record at least, and no more"
    );
    assert!(
        body.len() < 8 * 1024 * 1024,
        "a fetch of max_bytes=1 answered {} bytes",
        body.len()
    );
    let mut sse = crate::harness::SseStream::open(&env.api, "/v1/topics/esc/events?from=earliest", None).await;
    let ev = sse.next(Duration::from_secs(10)).await.unwrap();
    assert!(
        ev.data.len() < 8 * 1024 * 1024,
        "one event carried {} bytes",
        ev.data.len()
    );
}
