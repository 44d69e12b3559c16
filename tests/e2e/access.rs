//! Access control: tokens and rights on every route, tickets for browsers, the refusal to serve
//! a public address without authentication, CORS, cross-site requests, and TLS.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Api, BIN, Env};
use crate::processors::{deploy, upload};
use crate::wasm::example;

pub const ADMIN: &str = "admin-token-for-the-tests-0123456789";

/// A broker with authentication on, and a client holding the admin token.
pub fn secured() -> (Env, Api) {
    let env = Env::with_args(&["--admin-token", ADMIN]);
    let admin = env.api.with_token(ADMIN);
    (env, admin)
}

/// Creates a token with `rights`; returns (secret, id).
pub async fn token(admin: &Api, rights: &[&str]) -> (String, String) {
    let (status, body) = admin
        .post("/v1/tokens", json!({"name": "test", "rights": rights}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

/// Every operation of the API's OpenAPI document (which a unit test holds equal to the
/// router), with parameters naming things that exist; public ones aside.
async fn routes(api: &Api, token_id: &str, module_id: &str) -> Vec<(Method, String)> {
    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "the document is public");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"] == json!([{}]) {
                continue;
            }
            let id = if path.starts_with("/v1/tokens") {
                token_id
            } else {
                module_id
            };
            let concrete = path
                .replace("{topic}", "t")
                .replace("{partition}", "0")
                .replace("{name}", "p")
                .replace("{id}", id);
            out.push((method.to_uppercase().parse().unwrap(), concrete));
        }
    }
    assert!(out.len() >= 22, "{out:?}");
    out
}

async fn status_of(api: &Api, method: &Method, path: &str) -> (StatusCode, Value, bool) {
    let mut req = api.http.request(method.clone(), format!("{}{path}", api.base));
    if matches!(*method, Method::POST | Method::PUT) {
        req = req.header("content-type", "application/json").body("{}");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let challenged = resp.headers().contains_key("www-authenticate");
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, challenged)
}

#[tokio::test]
async fn every_route_answers_401_without_a_token_and_403_to_a_token_without_rights() {
    let (env, admin) = secured();
    admin.create_topic("t", 1).await;
    admin.create_topic("out", 1).await;
    let id = upload(&admin, &example("uppercase")).await;
    assert_eq!(
        deploy(&admin, "p", json!({"module": id, "input": "t", "outputs": ["out"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (secret, token_id) = token(&admin, &[]).await;
    let powerless = env.api.with_token(&secret);
    let forged = env.api.with_token("weir_000000000000_0000");
    for (method, path) in routes(&env.api, &token_id, &id).await {
        let (status, body, challenged) = status_of(&env.api, &method, &path).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {body}"
        );
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(challenged, "{method} {path}: a 401 names the scheme (WWW-Authenticate)");
        let (status, body, _) = status_of(&forged, &method, &path).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a forged token: {body}"
        );
        let (status, body, _) = status_of(&powerless, &method, &path).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} without the right: {body}"
        );
        assert_eq!(body["error"]["code"], "forbidden");
    }
    // What is public stays public.
    assert_eq!(env.api.get("/healthz").await.0, StatusCode::OK);
    // Nothing changed on the way.
    let (_, t) = admin.get("/v1/topics/t").await;
    assert_eq!(t["name"], "t");
}

#[tokio::test]
async fn rights_grant_exactly_what_they_name() {
    let (env, admin) = secured();
    for t in ["orders-eu", "users", "out"] {
        admin.create_topic(t, 1).await;
    }
    let writer = env.api.with_token(&token(&admin, &["topic:orders*:write"]).await.0);
    let reader = env.api.with_token(&token(&admin, &["topic:orders*:read"]).await.0);
    assert_eq!(writer.produce("orders-eu", json!([{"value": "a"}])).await.len(), 1);
    let (status, body) = writer
        .post("/v1/topics/users/records", json!({"records": [{"value": "a"}]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("topic:users:write"),
        "{body}"
    );
    let (status, _) = writer.get("/v1/topics/orders-eu/partitions/0/records").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a writer does not read");
    let (status, _) = writer.post("/v1/topics", json!({"name": "orders-new"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "writing is not creating");
    assert_eq!(reader.fetch_all("orders-eu", 0, 0).await.len(), 1);
    let (_, list) = reader.get("/v1/topics").await;
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders-eu"], "a list shows what the token may see");

    // A deployment reads and writes for whoever deploys it: it needs those rights too.
    let id = upload(&admin, &example("uppercase")).await;
    let deployer = env.api.with_token(
        &token(
            &admin,
            &["processor:etl-*:deploy", "topic:out:write", "topic:etl-a-dlq:admin"],
        )
        .await
        .0,
    );
    let (status, body) = deploy(
        &deployer,
        "etl-a",
        json!({"module": id, "input": "users", "outputs": ["out"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("topic:users:read"));
    let (status, _) = deploy(
        &deployer,
        "other",
        json!({"module": id, "input": "users", "outputs": ["out"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let operator = env
        .api
        .with_token(&token(&admin, &["processor:etl-*:deploy", "topic:*:admin"]).await.0);
    let (status, body) = deploy(
        &operator,
        "etl-a",
        json!({"module": id, "input": "users", "outputs": ["out"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn tokens_are_stored_hashed_survive_a_restart_and_stop_working_when_revoked() {
    let (mut env, admin) = secured();
    admin.create_topic("t", 1).await;
    let (secret, id) = token(&admin, &["topic:t:read"]).await;
    let stored = std::fs::read_to_string(env.server.data_dir.join("auth/tokens.json")).unwrap();
    let secret_part = secret.rsplit('_').next().unwrap();
    assert!(!stored.contains(secret_part), "only a hash of the secret is stored");
    env.server.stop();
    env.server.restart();
    let api = env.server.client().with_token(&secret);
    assert_eq!(api.get("/v1/topics/t").await.0, StatusCode::OK);
    let admin = env.server.client().with_token(ADMIN);
    let (_, list) = admin.get("/v1/tokens").await;
    assert!(list.to_string().contains(&id) && !list.to_string().contains(secret_part));
    assert_eq!(
        admin.call(Method::DELETE, &format!("/v1/tokens/{id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/v1/topics/t").await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = admin
        .post("/v1/tokens", json!({"name": "x", "rights": ["topic:x:fly"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn events_status(api: &Api, path: &str) -> StatusCode {
    api.http
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_ticket_opens_one_topics_event_stream_and_nothing_else() {
    let (env, admin) = secured();
    admin.create_topic("t", 1).await;
    admin.create_topic("u", 1).await;
    let (secret, id) = token(&admin, &["topic:t:read", "topic:u:read"]).await;
    let reader = env.api.with_token(&secret);
    let (status, body) = reader.post("/v1/tickets", json!({"topic": "t"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let anon = &env.api;
    assert_eq!(
        events_status(anon, &format!("/v1/topics/t/events?ticket={ticket}")).await,
        StatusCode::OK
    );
    assert_eq!(
        events_status(anon, &format!("/v1/topics/u/events?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED,
        "a ticket is for one topic"
    );
    assert_eq!(
        events_status(anon, &format!("/v1/topics/t/partitions/0/records?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED,
        "a ticket opens event streams only"
    );
    let (status, _) = reader.post("/v1/tickets", json!({"topic": "nope"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a ticket needs read on its topic");
    let (_, short) = reader.post("/v1/tickets", json!({"topic": "t", "ttl_ms": 1})).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let expired = short["ticket"].as_str().unwrap();
    assert_eq!(
        events_status(anon, &format!("/v1/topics/t/events?ticket={expired}")).await,
        StatusCode::UNAUTHORIZED
    );
    admin.call(Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
    assert_eq!(
        events_status(anon, &format!("/v1/topics/t/events?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED,
        "revoking a token ends its tickets"
    );
}

#[test]
fn a_broker_on_a_public_address_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure") && err.contains("WEIR_ADMIN_TOKEN"), "{err}");
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "0.0.0.0:0", "--insecure", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_cors_follows_the_allow_list() {
    let env = Env::start();
    let get_with_origin = |origin: &'static str| {
        env.api
            .http
            .get(format!("{}/v1/topics", env.api.base))
            .header("Origin", origin)
            .send()
    };
    let resp = get_with_origin("http://example.test").await.unwrap();
    assert!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "no CORS by default"
    );
    // A page elsewhere cannot make the browser create a topic, even on a loopback broker.
    let resp = env
        .api
        .http
        .post(format!("{}/v1/topics", env.api.base))
        .header("Origin", "http://evil.test")
        .header("content-type", "application/json")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = env
            .api
            .http
            .post(format!("{}/v1/topics", env.api.base))
            .header("content-type", content_type)
            .body(r#"{"name":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("--json"));
    }
    let rebound = env
        .api
        .http
        .get(format!("{}/v1/topics", env.api.base))
        .header("Host", "evil.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        rebound.status(),
        StatusCode::FORBIDDEN,
        "DNS rebinding: a foreign Host is refused"
    );
    assert_eq!(
        env.api.get("/v1/topics/x").await.0,
        StatusCode::NOT_FOUND,
        "nothing was created"
    );

    let allowed = Env::with_config("[http]\ncors_origins = [\"https://app.example\"]\n");
    let resp = allowed
        .api
        .http
        .get(format!("{}/v1/topics", allowed.api.base))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
    let preflight = allowed
        .api
        .http
        .request(Method::OPTIONS, format!("{}/v1/topics/t/records", allowed.api.base))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type,authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let (status, _) = allowed.api.post("/v1/topics", json!({"name": "y"})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    if !matches!(made, Ok(s) if s.success()) || Command::new("curl").arg("--version").output().is_err() {
        println!("skipped: openssl and curl are needed to make a certificate and speak TLS");
        return;
    }
    let data = dir.path().join("data");
    let server = crate::harness::Server::start(
        &data,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/healthz", server.url.replace("127.0.0.1", "localhost")))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"status\":\"ok\"}");
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
        .arg(format!("{}/healthz", server.url.replace("https://", "http://")))
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "200",
        "plain HTTP is not served"
    );
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_streams_and_an_expired_ticket_ends_its_stream() {
    let (env, admin) = secured();
    admin.create_topic("t", 1).await;
    let (secret, id) = token(&admin, &["topic:t:read"]).await;
    let reader = env.api.with_token(&secret);
    let mut stream = crate::harness::SseStream::open(&reader, "/v1/topics/t/events", None).await;
    let (_, short) = reader.post("/v1/tickets", json!({"topic": "t", "ttl_ms": 1500})).await;
    let ticket = short["ticket"].as_str().unwrap();
    let mut by_ticket =
        crate::harness::SseStream::open(&env.api, &format!("/v1/topics/t/events?ticket={ticket}"), None).await;
    // The ticket's time runs out: its stream says so and ends.
    let mut ended = None;
    while let Some(ev) = by_ticket.next(Duration::from_secs(10)).await {
        if ev.event == "error" {
            ended = Some(ev.data);
        }
    }
    assert!(
        ended.is_some_and(|d| d.contains("unauthorized")),
        "the ticket's stream ended with an error event"
    );
    admin.call(Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
    let mut last = None;
    while let Some(ev) = stream.next(Duration::from_secs(10)).await {
        last = Some(ev);
    }
    let last = last.expect("an event before the end");
    assert_eq!(last.event, "error", "{last:?}");
    admin.produce("t", json!([{"value": "after"}])).await;
}

#[tokio::test]
async fn odd_but_valid_credentials_work_and_malformed_ones_are_refused() {
    let (env, admin) = secured();
    admin.create_topic("t", 1).await;
    let lower = env
        .api
        .http
        .get(format!("{}/v1/topics/t", env.api.base))
        .header("authorization", format!("bearer {ADMIN}"))
        .header("host", "LOCALHOST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        lower.status(),
        StatusCode::OK,
        "the scheme and host names are case-insensitive"
    );
    for host in ["[::1]evil", "localhost:evil", "localhost:", "evil.test"] {
        let resp = admin
            .http
            .get(format!("{}/v1/topics/t", admin.base))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "Host: {host}");
    }
    for right in ["module:x:upload", "metrics:m:read"] {
        let (status, body) = admin.post("/v1/tokens", json!({"name": "x", "rights": [right]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{right}: {body}");
    }
    let (status, body) = admin
        .post("/v1/tickets", json!({"topic": "t\n99999999999999\nadmin"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = admin
        .post(
            "/v1/topics",
            json!({"name": "slow", "fsync": "interval", "fsync_interval_ms": 18446744073709551615u64}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let (status, body) = admin
        .post(
            "/v1/topics/t/records",
            json!({"records": [{"value": "x", "timestamp": ahead}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("microseconds"));
    let headers: serde_json::Map<String, Value> = (0..1025).map(|i| (format!("h{i}"), json!(""))).collect();
    let (status, _) = admin
        .post(
            "/v1/topics/t/records",
            json!({"records": [{"value": "x", "headers": headers}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "too many headers on one record");
}

#[test]
fn a_weak_admin_token_is_refused_and_one_with_a_trailing_newline_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WEIR_ADMIN_TOKEN", "aaaaaaaaaaaaaaaaaaaa")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 of them different"));
}

#[tokio::test]
async fn an_insecure_broker_off_loopback_answers_only_to_ip_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::harness::Server::start_at(dir.path(), "0.0.0.0:0", &["--insecure"]);
    let api = server.client();
    let url = format!("{}/v1/topics", api.base.replace("0.0.0.0", "127.0.0.1"));
    let rebound = api
        .http
        .get(&url)
        .header("host", "attacker.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        rebound.status(),
        StatusCode::FORBIDDEN,
        "a DNS name is refused without http.hosts"
    );
    let direct = api.http.get(&url).send().await.unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_dead_letter_topic_is_not_brought_back_by_a_resume() {
    let (_env, admin) = secured();
    admin.create_topic("in", 1).await;
    admin.create_topic("out", 1).await;
    let id = upload(&admin, &example("uppercase")).await;
    assert_eq!(
        deploy(&admin, "pz", json!({"module": id, "input": "in", "outputs": ["out"]}))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        admin.get("/v1/topics/pz-dlq").await.0,
        StatusCode::OK,
        "the deploy made it"
    );
    assert_eq!(
        admin.call(Method::DELETE, "/v1/topics/pz-dlq", None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, view) = admin.call(Method::POST, "/v1/processors/pz/pause", None).await;
    let (_, view2) = admin.call(Method::POST, "/v1/processors/pz/resume", None).await;
    assert_eq!(
        admin.get("/v1/topics/pz-dlq").await.0,
        StatusCode::NOT_FOUND,
        "{view} {view2}"
    );
    assert_eq!(view2["state"], "failed");
    assert!(view2["last_error"].as_str().unwrap().contains("dead-letter"), "{view2}");
}

#[test]
fn the_cli_says_so_when_the_broker_refuses_an_upload_before_reading_it() {
    let (env, _) = secured();
    let url = env.server.url.clone();
    let wasm = example("uppercase");
    for token in [None, Some("weir_000000000000_0000")] {
        let mut cmd = Command::new(BIN);
        cmd.args(["processor", "deploy", "x", "--wasm"])
            .arg(&wasm)
            .args(["--input", "in", "--output", "out"])
            .env("WEIR_URL", &url)
            .env_remove("WEIR_TOKEN");
        if let Some(t) = token {
            cmd.env("WEIR_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "a refused deploy is a failure");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{err}");
    }
}

#[tokio::test]
async fn an_operator_pauses_and_resumes_but_cannot_deploy_and_an_uploader_manages_only_modules() {
    let (env, admin) = secured();
    admin.create_topic("in", 1).await;
    admin.create_topic("out", 1).await;
    let id = upload(&admin, &example("uppercase")).await;
    let spec = json!({"module": id, "input": "in", "outputs": ["out"], "on_error": "skip"});
    assert_eq!(deploy(&admin, "etl-a", spec.clone()).await.0, StatusCode::CREATED);
    assert_eq!(deploy(&admin, "other", spec.clone()).await.0, StatusCode::CREATED);

    let operator = env.api.with_token(&token(&admin, &["processor:etl-*:operate"]).await.0);
    let (status, body) = operator.call(Method::POST, "/v1/processors/etl-a/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "paused");
    let (status, body) = operator.call(Method::POST, "/v1/processors/etl-a/resume", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        operator.get("/v1/processors/etl-a").await.0,
        StatusCode::OK,
        "operate reads"
    );
    let (status, _) = operator.call(Method::POST, "/v1/processors/other/pause", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the processors the pattern names");
    assert_eq!(
        deploy(&operator, "etl-a", spec.clone()).await.0,
        StatusCode::FORBIDDEN,
        "operating is not deploying"
    );
    assert_eq!(
        operator.call(Method::DELETE, "/v1/processors/etl-a", None).await.0,
        StatusCode::FORBIDDEN
    );

    let uploader = env.api.with_token(&token(&admin, &["module:*:upload"]).await.0);
    let id2 = upload(&uploader, &example("split")).await;
    let (status, list) = uploader.get("/v1/modules").await;
    assert_eq!(status, StatusCode::OK, "upload reads the list");
    assert!(list.to_string().contains(&id2), "{list}");
    assert_eq!(
        uploader
            .call(Method::DELETE, &format!("/v1/modules/{id2}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deploy(&uploader, "etl-b", spec).await.0,
        StatusCode::FORBIDDEN,
        "uploading is not deploying"
    );
    assert_eq!(uploader.get("/v1/topics/in").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.get("/v1/processors/etl-a").await.1["state"], "running");
}
