//! `weir bench`: throughput and latency against a running server, in the manner of
//! kafka-producer-perf-test. Figures are printed, never asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::Client;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Produce fixed-size records as fast as possible over several connections.
    Produce(ProduceBench),
    /// Read a topic from the start to its end, by fetch or by one SSE subscriber.
    Consume(ConsumeBench),
    /// Produce at a fixed rate and measure produce-to-SSE latency.
    E2e(E2eBench),
    /// Open many idle SSE subscribers and report the server's memory per subscriber.
    SseIdle(SseIdleBench),
    /// Call a processor component in-process (no server) and compare with native Rust.
    Guest(GuestBench),
    /// Fill a topic, deploy a processor on it, and time topic -> processor -> topic.
    Processor(ProcessorBench),
    /// Deploy thousands of processors: broker memory idle, and each one's first answer.
    Density(density::DensityBench),
}

#[derive(Debug, clap::Args)]
pub struct ProduceBench {
    /// Topic to produce to (created if missing); default: a new `bench-<time>` topic.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Partitions of a created topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// fsync policy of a created topic: always, interval or never.
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Keyed words instead of random values: each record's key and value is one of this many
    /// words (`w0`, `w1`, ...), all of them used (a word count's input).
    #[arg(long)]
    keys: Option<u64>,
    /// With --keys: each value is a JSON object, `{"id": WORD, "amount": N}` (for joins and
    /// aggregates over a path).
    #[arg(long, requires = "keys")]
    json_values: bool,
}

#[derive(Debug, clap::Args)]
pub struct ConsumeBench {
    #[arg(long)]
    topic: String,
    /// fetch or sse.
    #[arg(long, default_value = "fetch")]
    mode: String,
    /// Records per fetch request.
    #[arg(long, default_value_t = 10_000)]
    max_records: usize,
}

#[derive(Debug, clap::Args)]
pub struct E2eBench {
    /// Records per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    #[arg(long, default_value = "always")]
    fsync: String,
}

#[derive(Debug, clap::Args)]
pub struct SseIdleBench {
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
}

mod density;
mod processors;

pub use processors::{GuestBench, ProcessorBench};

pub async fn run(client: &Client, command: BenchCommand) -> anyhow::Result<()> {
    let client = client.clone();
    match command {
        BenchCommand::Produce(b) => produce(&client, b).await,
        BenchCommand::Consume(b) => consume(&client, b).await,
        BenchCommand::E2e(b) => e2e(&client, b).await,
        BenchCommand::SseIdle(b) => sse_idle(&client, b).await,
        BenchCommand::Guest(b) => tokio::task::spawn_blocking(move || processors::guest(b)).await?,
        BenchCommand::Processor(b) => processors::pipeline(&client, b).await,
        BenchCommand::Density(b) => density::run(&client, b).await,
    }
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub(super) fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max())
    )
}

pub(super) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(super) async fn ensure_topic(client: &Client, name: &str, partitions: u32, fsync: &str) -> anyhow::Result<()> {
    let body = json!({ "name": name, "partitions": partitions, "fsync": fsync });
    let resp = client.request(Method::POST, "/v1/topics").json(&body).send().await?;
    if !(resp.status().is_success() || resp.status() == reqwest::StatusCode::CONFLICT) {
        bail!("cannot create topic {name}: {}", resp.text().await.unwrap_or_default());
    }
    Ok(())
}

/// A value of `size` printable bytes (so it travels as a JSON string without escapes).
pub(super) fn payload(size: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

pub(super) async fn produce(client: &Client, b: ProduceBench) -> anyhow::Result<()> {
    let topic = b.topic.clone().unwrap_or_else(|| format!("bench-{}", now_us() / 1000));
    ensure_topic(client, &topic, b.partitions, &b.fsync).await?;
    let requests = b.records.div_ceil(b.batch as u64);
    let next = Arc::new(AtomicU64::new(0));
    let url = client.url(&format!("/v1/topics/{topic}/records"));
    let started = Instant::now();
    let mut workers = Vec::new();
    let connections = b.connections.max(1);
    // Keyed words: body `n` holds keys `n * batch ..`, and request `n` of the run sends body
    // `n % bodies`, so every key is sent once before any is sent twice.
    let keyed: Option<Arc<Vec<bytes::Bytes>>> = match b.keys {
        None => None,
        Some(keys) => {
            let count = keys.div_ceil(b.batch as u64).max(1);
            let bodies: Vec<bytes::Bytes> = (0..count)
                .map(|body| {
                    let records: Vec<Value> = (0..b.batch as u64)
                        .map(|i| {
                            let n = body * b.batch as u64 + i;
                            let w = format!("w{}", n % keys);
                            if b.json_values {
                                json!({ "key": w, "value": { "id": w, "amount": n % 100 } })
                            } else {
                                json!({ "key": w, "value": w })
                            }
                        })
                        .collect();
                    serde_json::to_vec(&json!({ "records": records })).map(bytes::Bytes::from)
                })
                .collect::<Result<_, _>>()?;
            Some(Arc::new(bodies))
        }
    };
    for c in 0..connections {
        let bodies: Arc<Vec<bytes::Bytes>> = match &keyed {
            Some(k) => Arc::clone(k),
            None => {
                let records: Vec<Value> = (0..b.batch)
                    .map(|i| json!({ "value": payload(b.record_size, (c * b.batch + i) as u64) }))
                    .collect();
                Arc::new(vec![bytes::Bytes::from(serde_json::to_vec(
                    &json!({ "records": records }),
                )?)])
            }
        };
        let (http, url, next) = (client.separate_http()?, url.clone(), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut h = histogram();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let t = Instant::now();
                let body = bodies[n as usize % bodies.len()].clone();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("produce failed: {}", resp.text().await.unwrap_or_default());
                }
                resp.bytes().await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(h)
        }));
    }
    let mut h = histogram();
    for w in workers {
        h.add(w.await??)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let sent = requests * b.batch as u64;
    println!(
        "produce: {sent} records of {} B in batches of {} over {} connections to {} partitions, fsync={}",
        b.record_size, b.batch, b.connections, b.partitions, b.fsync
    );
    println!(
        "  throughput: {:.0} records/s, {:.1} MB/s of values, {:.2} s",
        sent as f64 / secs,
        (sent as f64 * b.record_size as f64) / secs / 1e6,
        secs
    );
    println!("  request latency: {}", latency_line(&h));
    println!("  topic: {topic}");
    Ok(())
}

#[derive(Deserialize)]
struct Page {
    records: Vec<IgnoredAny>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct EventData {
    records: Vec<IgnoredAny>,
}

async fn consume(client: &Client, b: ConsumeBench) -> anyhow::Result<()> {
    let t = client
        .json(client.request(Method::GET, &format!("/v1/topics/{}", b.topic)))
        .await?;
    let ends: Vec<(u64, u64)> = t["partitions"]
        .as_array()
        .context("topic has no partitions")?
        .iter()
        .map(|p| {
            (
                p["log_start_offset"].as_u64().unwrap_or(0),
                p["high_watermark"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let total: u64 = ends.iter().map(|(s, e)| e - s).sum();
    let started = Instant::now();
    let mut bytes = 0u64;
    match b.mode.as_str() {
        "fetch" => {
            let mut tasks = Vec::new();
            for (p, &(start, end)) in ends.iter().enumerate() {
                let (http, base) = (
                    client.http.clone(),
                    client.url(&format!("/v1/topics/{}/partitions/{p}/records", b.topic)),
                );
                let max = b.max_records;
                tasks.push(tokio::spawn(async move {
                    let (mut offset, mut bytes) = (start, 0u64);
                    while offset < end {
                        let body = http
                            .get(format!("{base}?offset={offset}&max_records={max}&max_bytes=16777216"))
                            .send()
                            .await?
                            .bytes()
                            .await?;
                        bytes += body.len() as u64;
                        let page: Page = serde_json::from_slice(&body)?;
                        if page.records.is_empty() {
                            bail!("fetch at {offset} returned nothing below the end {end}");
                        }
                        offset = page.next_offset;
                    }
                    anyhow::Ok(bytes)
                }));
            }
            for t in tasks {
                bytes += t.await??;
            }
        }
        "sse" => {
            let resp = client
                .send(client.request(Method::GET, &format!("/v1/topics/{}/events?from=earliest", b.topic)))
                .await?;
            let mut stream = resp.bytes_stream();
            let (mut seen, mut buf) = (0u64, Vec::new());
            while seen < total {
                let chunk = stream.next().await.context("stream ended early")??;
                bytes += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') {
                    let line = &buf[start..start + nl];
                    if let Some(data) = line.strip_prefix(b"data:") {
                        seen += serde_json::from_slice::<EventData>(data.trim_ascii())
                            .map_or(0, |e| e.records.len() as u64);
                    }
                    start += nl + 1;
                }
                buf.drain(..start);
            }
        }
        other => bail!("mode must be fetch or sse, got {other}"),
    }
    let secs = started.elapsed().as_secs_f64();
    println!("consume ({}): {total} records from {} partitions", b.mode, ends.len());
    println!(
        "  throughput: {:.0} records/s, {:.1} MB/s of response, {:.2} s",
        total as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    );
    Ok(())
}

async fn e2e(client: &Client, b: E2eBench) -> anyhow::Result<()> {
    let topic = format!("bench-e2e-{}", now_us() / 1000);
    ensure_topic(client, &topic, 1, &b.fsync).await?;
    let resp = client
        .send(client.request(Method::GET, &format!("/v1/topics/{topic}/events?from=earliest")))
        .await?;
    let total = b.rate * b.seconds;
    let value = payload(b.record_size, 7);
    let url = client.url(&format!("/v1/topics/{topic}/records"));
    let acks = Arc::new(std::sync::Mutex::new(histogram()));
    let producer = tokio::spawn({
        let http = client.http.clone();
        let acks = Arc::clone(&acks);
        async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / b.rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let inflight = Arc::new(tokio::sync::Semaphore::new(64));
            for _ in 0..total {
                tick.tick().await;
                let permit = Arc::clone(&inflight).acquire_owned().await?;
                let (http, url, value, acks) = (http.clone(), url.clone(), value.clone(), Arc::clone(&acks));
                tokio::spawn(async move {
                    let _permit = permit;
                    // Stamped as late as possible so client scheduling is not counted.
                    let body = json!({ "records": [{ "value": value, "headers": { "t": now_us().to_string() } }] });
                    let sent = Instant::now();
                    if let Ok(r) = http.post(&url).json(&body).send().await {
                        let _ = r.bytes().await;
                        let us = sent.elapsed().as_micros() as u64;
                        let _ = acks.lock().map(|mut h| h.record(us.max(1)));
                    }
                });
            }
            anyhow::Ok(())
        }
    });
    let mut h = histogram();
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(b.seconds + 10);
    while h.len() < total && Instant::now() < deadline {
        let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await else {
            break;
        };
        let now = now_us();
        buf.extend_from_slice(&chunk?);
        while let Some(nl) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let v: Value = serde_json::from_slice(data.trim_ascii()).unwrap_or(Value::Null);
            for r in v["records"].as_array().into_iter().flatten() {
                if let Some(sent) = r["headers"]["t"].as_str().and_then(|s| s.parse::<u64>().ok()) {
                    h.record(now.saturating_sub(sent).max(1))?;
                }
            }
        }
    }
    producer.await??;
    println!(
        "e2e: {} of {total} records at {} records/s, {} B values, fsync={}, produce -> SSE",
        h.len(),
        b.rate,
        b.record_size,
        b.fsync
    );
    println!("  produce -> SSE latency: {}", latency_line(&h));
    if let Ok(a) = acks.lock() {
        println!("  produce -> acknowledgement latency: {}", latency_line(&a));
    }
    client
        .request(Method::DELETE, &format!("/v1/topics/{topic}"))
        .send()
        .await?;
    Ok(())
}

pub(super) async fn server_memory(client: &Client) -> anyhow::Result<(f64, f64)> {
    let text = client
        .send(client.request(Method::GET, "/metrics"))
        .await?
        .text()
        .await?;
    let metric = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        metric("weir_process_resident_memory_bytes"),
        metric("weir_sse_subscribers"),
    ))
}

async fn sse_idle(client: &Client, b: SseIdleBench) -> anyhow::Result<()> {
    let topic = format!("bench-idle-{}", now_us() / 1000);
    ensure_topic(client, &topic, 1, "always").await?;
    let (before, _) = server_memory(client).await?;
    let mut subs = Vec::with_capacity(b.subscribers);
    for _ in 0..b.subscribers {
        // One client per subscriber: one connection each, as browsers would hold.
        let http = client.separate_http()?;
        let resp = http
            .get(client.url(&format!("/v1/topics/{topic}/events")))
            .send()
            .await?;
        subs.push(tokio::spawn(async move {
            let mut s = resp.bytes_stream();
            while let Some(Ok(_)) = s.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, open) = server_memory(client).await?;
    println!("sse-idle: {open} subscribers open on the server");
    println!(
        "  server resident memory: {:.1} MB before, {:.1} MB after: {:.1} MB for {} subscribers ({:.1} KB each)",
        before / 1e6,
        after / 1e6,
        (after - before) / 1e6,
        b.subscribers,
        (after - before) / 1e3 / b.subscribers as f64
    );
    for s in subs {
        s.abort();
    }
    client
        .request(Method::DELETE, &format!("/v1/topics/{topic}"))
        .send()
        .await?;
    Ok(())
}
