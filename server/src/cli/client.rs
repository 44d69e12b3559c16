//! A small client for the HTTP API that turns the server's error bodies into readable errors.

use anyhow::{Context, anyhow};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base`, sending `token` (if any) with every request.
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: Self::build(token)?,
            token: token.map(str::to_owned),
        })
    }

    /// Another HTTP client with the same credentials and its own connections (a bench that
    /// wants one connection per worker or subscriber).
    pub fn separate_http(&self) -> anyhow::Result<reqwest::Client> {
        Self::build(self.token.as_deref())
    }

    fn build(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token holds characters a header cannot carry")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("cannot build the HTTP client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends, and turns a non-2xx answer into an error carrying the server's code and message.
    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let resp = req.send().await.map_err(|e| {
            // The server answered early (no right, too large, overloaded) and closed the
            // connection while the body was still going out: its answer is lost with it.
            let refused = std::error::Error::source(&e).is_some_and(|s| {
                let text = format!("{s:?}");
                text.contains("BrokenPipe") || text.contains("ConnectionReset") || text.contains("BodyWrite")
            });
            if refused {
                anyhow!(
                    "the Weir server at {} closed the connection while the request body was being sent: it refused the request before reading it (the token's rights, a body over its size limit, or an overloaded broker); try a small request, or `weir token list` with the admin token to see the token's rights",
                    self.base
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot reach the Weir server at {}", self.base))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        match parsed.as_ref().and_then(|v| v.get("error")) {
            Some(e) => Err(anyhow!(
                "{} ({status}): {}",
                e["code"].as_str().unwrap_or("error"),
                e["message"].as_str().unwrap_or(&text)
            )),
            None => Err(anyhow!("server answered {status}: {text}")),
        }
    }

    /// Opens the SSE stream at `path` (resuming after `last_id` if given) and calls `on_event`
    /// with each event's type, id and `data:` as JSON, until the stream ends (`Ok(true)`: the
    /// server closed it) or `on_event` answers false (`Ok(false)`).
    pub async fn for_each_event(
        &self,
        path: &str,
        last_id: Option<&str>,
        mut on_event: impl FnMut(&str, Option<&str>, Value) -> anyhow::Result<bool>,
    ) -> anyhow::Result<bool> {
        use futures::StreamExt;
        let mut req = self.request(Method::GET, path);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let mut stream = self.send(req).await?.bytes_stream();
        let mut buf = Vec::new();
        let (mut event, mut id, mut data) = (String::new(), None::<String>, Vec::new());
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.context("the event stream broke")?);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = line.trim_ascii_end();
                if line.is_empty() {
                    if !data.is_empty() {
                        let value = serde_json::from_slice(&data).unwrap_or(Value::Null);
                        let kind = if event.is_empty() { "message" } else { event.as_str() };
                        if !on_event(kind, id.as_deref(), value)? {
                            return Ok(false);
                        }
                    }
                    (event, id, data) = (String::new(), None, Vec::new());
                } else if let Some(v) = line.strip_prefix(b"data:") {
                    data.extend_from_slice(v.trim_ascii_start());
                } else if let Some(v) = line.strip_prefix(b"event:") {
                    event = String::from_utf8_lossy(v.trim_ascii()).into_owned();
                } else if let Some(v) = line.strip_prefix(b"id:") {
                    id = Some(String::from_utf8_lossy(v.trim_ascii()).into_owned());
                }
            }
        }
        Ok(true)
    }

    /// Uploads the component at `wasm` (`POST /v1/modules`); returns the answer, with its `id`.
    pub async fn upload_module(&self, wasm: &std::path::Path) -> anyhow::Result<Value> {
        let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
        let req = self
            .request(reqwest::Method::POST, "/v1/modules")
            .header("content-type", "application/wasm")
            .body(bytes);
        self.json(req).await
    }

    pub async fn json(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.send(req).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        resp.json().await.context("the server's answer is not JSON")
    }
}
