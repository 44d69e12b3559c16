//! Starts the real `weir` binary on port 0 in a temporary data directory and talks to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// A running broker process.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// Starts `weir serve` on a free port over `data_dir`, with extra flags.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_at(data_dir, "127.0.0.1:0", args)
    }

    /// Starts `weir serve` on `addr`.
    pub fn start_at(data_dir: &Path, addr: &str, args: &[&str]) -> Self {
        let mut all = vec!["--addr".to_owned(), addr.to_owned()];
        all.extend(args.iter().map(|s| s.to_string()));
        let args = all;
        let (child, url) = spawn(data_dir, &args);
        Self {
            child,
            url,
            data_dir: data_dir.to_owned(),
            args,
        }
    }

    /// SIGKILL: no flush, no clean-shutdown marker.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("server exits");
        assert!(exit.success(), "clean stop exits 0, got {exit}");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts again on the same data directory and the same port (clients keep their URL).
    pub fn restart_same_port(&mut self) {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let mut args: Vec<String> = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "--addr" {
                it.next();
                continue;
            }
            args.push(a.clone());
        }
        args.insert(0, addr);
        args.insert(0, "--addr".into());
        for _ in 0..50 {
            // The old socket may take a moment to be free.
            if std::net::TcpListener::bind(&args[1]).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (child, url) = spawn(&self.data_dir, &args);
        self.child = child;
        self.url = url;
    }

    /// Starts again on the same data directory (a new port).
    pub fn restart(&mut self) {
        let (child, url) = spawn(&self.data_dir, &self.args);
        self.child = child;
        self.url = url;
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.url.clone(),
            http: http_client(reqwest::header::HeaderMap::new()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(data_dir: &Path, args: &[String]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env(
            "WEIR_LOG",
            std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server prints `listening on http://ADDR`");
    (child, url)
}

/// A server with its own temporary data directory.
pub struct Env {
    pub server: Server,
    pub api: Api,
    _dir: tempfile::TempDir,
}

impl Env {
    pub fn start() -> Self {
        Self::with_args(&[])
    }

    pub fn with_args(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(dir.path(), args);
        let api = server.client();
        Self { server, api, _dir: dir }
    }

    /// A server started with `toml` as its configuration file.
    pub fn with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, toml).expect("config written");
        let data = dir.path().join("data");
        let server = Server::start(&data, &["--config", path.to_str().expect("UTF-8 path")]);
        let api = server.client();
        Self { server, api, _dir: dir }
    }

    /// host:port of the server, for raw TCP clients.
    pub fn addr(&self) -> String {
        self.server.url.trim_start_matches("http://").to_owned()
    }
}

/// A client whose pooled connections are dropped after 5 s idle, before the broker closes
/// them (it closes a kept-alive connection that sends nothing for `header_read_timeout`,
/// 10 s). A test that blocks its runtime (building the examples takes half a minute on a cold
/// cache) cannot see the broker's close meanwhile, and would otherwise send its next request
/// into a closed socket.
fn http_client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("a client")
}

/// JSON helpers over reqwest that return status and body.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// The same server, every request sending `Authorization: Bearer token`.
    pub fn with_token(&self, token: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header value"),
        );
        Api {
            base: self.base.clone(),
            http: http_client(headers),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let (status, body) = self
            .post(
                "/v1/topics",
                serde_json::json!({"name": name, "partitions": partitions}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Produces and returns the offsets answer, asserting 200.
    pub async fn produce(&self, topic: &str, records: Value) -> Vec<(u64, u64)> {
        let (status, body) = self
            .post(
                &format!("/v1/topics/{topic}/records"),
                serde_json::json!({ "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["offsets"]
            .as_array()
            .expect("offsets")
            .iter()
            .map(|o| (o["partition"].as_u64().unwrap(), o["offset"].as_u64().unwrap()))
            .collect()
    }

    /// Every record of a partition from `from` to the high watermark.
    pub async fn fetch_all(&self, topic: &str, partition: u32, from: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let (status, page) = self
                .get(&format!(
                    "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records=5000"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let records = page["records"].as_array().unwrap().clone();
            let next = page["next_offset"].as_u64().unwrap();
            // A page of transaction markers only has no records but moves on.
            if records.is_empty() && next == offset {
                return out;
            }
            offset = next;
            out.extend(records);
        }
    }

    pub async fn error_code(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
        let (status, body) = self.call(method, path, body).await;
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no error code in {body}"))
                .to_owned(),
        )
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    /// A comment line (heartbeat) rather than an event.
    pub comment: bool,
}

/// An open SSE response, read event by event.
pub struct SseStream {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseStream {
    pub async fn open(api: &Api, path: &str, last_event_id: Option<&str>) -> Self {
        let mut req = api.http.get(format!("{}{path}", api.base));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("SSE request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event or comment, or `None` after `timeout` of silence.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comment = true;
                        ev.data = c.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                    }
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout(timeout, self.stream.next()).await.ok()??.ok()?;
            self.buf.push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    }

    /// Reads `records` events until `count` records arrived; returns them and the last id.
    pub async fn records(&mut self, count: usize) -> (Vec<Value>, Option<String>) {
        let mut out = Vec::new();
        let mut last_id = None;
        while out.len() < count {
            let ev = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("only {} of {count} records arrived", out.len()));
            if ev.event != "records" {
                continue;
            }
            let v: Value = serde_json::from_str(&ev.data).expect("event data is JSON");
            out.extend(v["records"].as_array().unwrap().iter().cloned());
            last_id = ev.id;
        }
        (out, last_id)
    }
}
