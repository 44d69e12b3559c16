//! `weir bench density`: how many processors one broker holds. Deploys N processors over T input
//! topics (processor i reads topic i mod T; all write one output), reports the broker's memory
//! with all of them idle, then produces one record to every input and measures how long each
//! processor takes to answer its first record (an idle processor holds no instance: it is
//! instantiated again from its compiled component), and the memory once they went idle again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use super::{ensure_topic, histogram, latency_line, server_memory};
use crate::cli::Client;

#[derive(Debug, clap::Args)]
pub struct DensityBench {
    /// The component every processor runs (an identity processor measures the broker).
    #[arg(long)]
    wasm: std::path::PathBuf,
    #[arg(long, default_value_t = 10_000)]
    processors: usize,
    /// Input topics the processors share (one partition each).
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Memory cap of each instance, bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    memory_bytes_max: usize,
    /// Deploys in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Leave the processors and topics in place afterwards.
    #[arg(long)]
    keep: bool,
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

pub async fn run(client: &Client, b: DensityBench) -> anyhow::Result<()> {
    let tag = super::now_us() / 1000;
    let (rss_start, _) = server_memory(client).await?;
    let output = format!("bench-dout-{tag}");
    ensure_topic(client, &output, 1, "never").await?;
    let inputs: Vec<String> = (0..b.topics).map(|i| format!("bench-din-{tag}-{i}")).collect();
    for t in &inputs {
        ensure_topic(client, t, 1, "never").await?;
    }
    let bytes = std::fs::read(&b.wasm).with_context(|| format!("cannot read {}", b.wasm.display()))?;
    let module = client
        .json(
            client
                .request(Method::POST, "/v1/modules")
                .header("content-type", "application/wasm")
                .body(bytes),
        )
        .await?;
    let id = module["id"].as_str().unwrap_or_default().to_owned();
    let (rss_topics, _) = server_memory(client).await?;

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..b.concurrency.max(1) {
        let (client, next, inputs, output, id) = (
            client.clone(),
            Arc::clone(&next),
            inputs.clone(),
            output.clone(),
            id.clone(),
        );
        let (n, memory) = (b.processors, b.memory_bytes_max);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let spec = json!({
                    "module": id, "input": inputs[i % inputs.len()], "outputs": [output],
                    "on_error": "skip", "limits": {"memory_bytes_max": memory},
                });
                client
                    .json(
                        client
                            .request(Method::PUT, &format!("/v1/processors/bench-d-{tag}-{i}"))
                            .json(&spec),
                    )
                    .await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let deployed = started.elapsed();
    // Let the runners settle (each opens its offsets and waits for input).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, _) = server_memory(client).await?;

    // One record per input: every processor answers its first record.
    let produced_at = Instant::now();
    for t in &inputs {
        client
            .json(
                client
                    .request(Method::POST, &format!("/v1/topics/{t}/records"))
                    .json(&json!({"records": [{"value": "x"}]})),
            )
            .await?;
    }
    let produce_ms = crate::topic::now_ms();
    let mut first = histogram();
    let (mut offset, mut seen) = (0u64, 0usize);
    while seen < b.processors {
        let page = client
            .json(client.request(
                Method::GET,
                &format!("/v1/topics/{output}/partitions/0/records?offset={offset}&max_records=10000&wait_ms=5000"),
            ))
            .await?;
        let now = crate::topic::now_ms();
        for r in page["records"].as_array().into_iter().flatten() {
            let ts = r["timestamp"].as_i64().unwrap_or(produce_ms);
            let _ = first.record((now - ts).max(0) as u64 * 1000);
            seen += 1;
        }
        offset = page["next_offset"].as_u64().unwrap_or(offset);
        if produced_at.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {seen} of {} processors answered in 10 minutes", b.processors);
        }
    }
    let all_answered = produced_at.elapsed();
    let (rss_busy, _) = server_memory(client).await?;
    // Instances are dropped 10 s after their input goes quiet.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (rss_after, _) = server_memory(client).await?;

    // With everything idle again, wake the processors of one input: the latency a record meets
    // when its processors hold no instance.
    let woken = b.processors.div_ceil(b.topics);
    client
        .json(
            client
                .request(Method::POST, &format!("/v1/topics/{}/records", inputs[0]))
                .json(&json!({"records": [{"value": "again"}]})),
        )
        .await?;
    let mut wake = histogram();
    let target = seen + woken;
    while seen < target {
        let page = client
            .json(client.request(
                Method::GET,
                &format!("/v1/topics/{output}/partitions/0/records?offset={offset}&max_records=10000&wait_ms=5000"),
            ))
            .await?;
        let now = crate::topic::now_ms();
        for r in page["records"].as_array().into_iter().flatten() {
            let ts = r["timestamp"].as_i64().unwrap_or(now);
            let _ = wake.record((now - ts).max(0) as u64 * 1000);
            seen += 1;
        }
        offset = page["next_offset"].as_u64().unwrap_or(offset);
    }

    println!(
        "density: {} processors over {} input topics, module {}, memory cap {} MiB each",
        b.processors,
        b.topics,
        b.wasm.display(),
        b.memory_bytes_max / (1024 * 1024)
    );
    println!(
        "  broker RSS: {:.0} MiB at start, {:.0} MiB with the topics, {:.0} MiB with every processor deployed and idle ({:.1} KiB per processor)",
        mib(rss_start),
        mib(rss_topics),
        mib(rss_idle),
        (rss_idle - rss_topics) / 1024.0 / b.processors as f64
    );
    println!(
        "  deploys: {:.1} s ({:.0} per second, {} in flight)",
        deployed.as_secs_f64(),
        b.processors as f64 / deployed.as_secs_f64(),
        b.concurrency
    );
    println!(
        "  first record of every processor (produce to output, per processor): {}; all answered in {:.1} s",
        latency_line(&first),
        all_answered.as_secs_f64()
    );
    println!(
        "  broker RSS: {:.0} MiB right after, {:.0} MiB once instances went idle",
        mib(rss_busy),
        mib(rss_after)
    );
    println!(
        "  then one record to one input, waking its {woken} idle processors: {}",
        latency_line(&wake)
    );
    if !b.keep {
        for i in 0..b.processors {
            let _ = client
                .send(client.request(Method::DELETE, &format!("/v1/processors/bench-d-{tag}-{i}")))
                .await;
        }
        for t in inputs.iter().chain(std::iter::once(&output)) {
            let _ = client
                .send(client.request(Method::DELETE, &format!("/v1/topics/{t}")))
                .await;
        }
    }
    Ok(())
}
