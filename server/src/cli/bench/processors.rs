//! Benchmarks of processors: one guest call in-process beside native Rust, and a whole
//! topic -> processor -> topic pipeline on a running server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;

use super::{ProduceBench, ensure_topic, now_us, payload, produce};
use crate::cli::Client;

/// Records/s through one guest instance per component, beside the same SDK code run natively,
/// all in one run so the figures compare.
pub fn guest(b: GuestBench) -> anyhow::Result<()> {
    use crate::wasm::{GuestLimits, InputRef, RuntimeConfig, WasmRuntime, decode_packed};
    use weir_sdk::packed::BatchWriter;

    let runtime = WasmRuntime::new(RuntimeConfig {
        instances_max: 4,
        ..RuntimeConfig::default()
    })?;
    let values: Vec<String> = (0..b.batch).map(|i| payload(b.record_size, i as u64)).collect();
    let inputs: Vec<InputRef<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| InputRef {
            offset: i as u64,
            timestamp: 1_700_000_000_000,
            key: None,
            value: v.as_bytes(),
            headers: &[],
        })
        .collect();
    let measure = |f: &mut dyn FnMut() -> anyhow::Result<usize>| -> anyhow::Result<f64> {
        let mut rates = Vec::new();
        for _ in 0..b.rounds {
            let (mut records, start) = (0usize, Instant::now());
            while start.elapsed() < Duration::from_millis(b.round_ms) {
                records += f()?;
            }
            rates.push(records as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        Ok(rates[rates.len() / 2])
    };

    // The native baseline does the host's work (encode, decode) and the SDK's, with no Wasm.
    let mut native = || -> anyhow::Result<usize> {
        let mut w = BatchWriter::new("bench", 0, inputs.len() * (b.record_size + 32));
        for r in &inputs {
            w.push(r.offset, r.timestamp, r.key, r.value, r.headers.iter().copied());
        }
        let batch = w.finish();
        let out = weir_sdk::rt::process_with(&batch, |r, out| {
            out.forward(r);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(decode_packed(&out, inputs.len(), usize::MAX)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .emitted
            .len())
    };
    let native_rate = measure(&mut native)?;
    println!(
        "guest calls: batches of {}, {} B values, median of {} rounds of {} ms, one thread",
        b.batch, b.record_size, b.rounds, b.round_ms
    );
    println!(
        "{:<40} {:>13} {:>9} {:>9} {:>14} {:>10} {:>9}",
        "component", "world", "size MiB", "compile s", "records/s", "ns/record", "vs native"
    );
    println!(
        "{:<40} {:>13} {:>9} {:>9} {:>14.0} {:>10.0} {:>9.2}",
        "native Rust closure (same SDK code)",
        "-",
        "-",
        "-",
        native_rate,
        1e9 / native_rate,
        1.0
    );
    let limits = GuestLimits {
        memory_bytes_max: b.memory_bytes_max,
        ..GuestLimits::default()
    };
    for wasm in &b.wasm {
        let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
        let compile_start = Instant::now();
        let module = runtime.compile(&bytes)?;
        let compile = compile_start.elapsed();
        let log: crate::wasm::LogSink = Arc::new(|_, _| {});
        // Called on a blocking thread of the CLI's runtime: run the guest's async calls there.
        let rt = tokio::runtime::Handle::current();
        let task = (!b.stores.is_empty()).then(|| {
            Arc::new(std::sync::Mutex::new(crate::state::TaskState::new(
                &b.stores,
                crate::state::StateLimits::default(),
            )))
        });
        let mut guest = rt.block_on(runtime.instantiate(&module, limits, "bench", log, None, task.clone()))?;
        rt.block_on(guest.init(&Vec::new()))
            .map_err(|e| anyhow::anyhow!("{}: init failed: {e}", wasm.display()))?;
        let emitted = rt.block_on(guest.process(0, &inputs))?.emitted.len();
        if emitted != inputs.len() {
            bail!(
                "{} emitted {emitted} records for {} inputs: benchmark an identity processor",
                wasm.display(),
                inputs.len()
            );
        }
        let rate = measure(&mut || {
            let n = rt.block_on(guest.process(0, &inputs))?.emitted.len();
            // What a commit does with the state: take the changes for the changelog.
            if let Some(t) = &task {
                t.lock().unwrap_or_else(|e| e.into_inner()).take_changes();
            }
            Ok(n)
        })?;
        let name = wasm
            .file_name()
            .map_or_else(|| wasm.display().to_string(), |n| n.to_string_lossy().into_owned());
        println!(
            "{:<40} {:>13} {:>9.1} {:>9.2} {:>14.0} {:>10.0} {:>9.2}",
            name,
            module.kind.name(),
            bytes.len() as f64 / (1024.0 * 1024.0),
            compile.as_secs_f64(),
            rate,
            1e9 / rate,
            rate / native_rate
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct GuestBench {
    /// A component to call (repeatable; identity processors measure the call itself).
    #[arg(long, required = true)]
    wasm: Vec<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, default_value_t = 1000)]
    round_ms: u64,
    /// Memory cap of each instance, bytes.
    #[arg(long, default_value_t = crate::wasm::GuestLimits::default().memory_bytes_max)]
    memory_bytes_max: usize,
    /// A state store every guest gets (repeatable): measures processors with state, such as
    /// the word count, whose calls then reach the host per record.
    #[arg(long = "store")]
    stores: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ProcessorBench {
    /// The component to deploy (an identity processor measures the pipeline itself).
    #[arg(long, required_unless_present_any = ["aggregate", "join_table_keys"])]
    wasm: Option<std::path::PathBuf>,
    /// A built-in aggregate to deploy instead of a component: count, sum, min, max, avg or
    /// count_distinct (the last five over `--path`).
    #[arg(long, conflicts_with = "wasm")]
    aggregate: Option<String>,
    /// The JSON pointer the aggregate reads.
    #[arg(long)]
    path: Option<String>,
    /// Tumbling windows of this many ms for the aggregate (none: a total per key).
    #[arg(long)]
    window_ms: Option<i64>,
    /// The window's emission: update or final.
    #[arg(long, default_value = "final")]
    emit: String,
    /// A declarative join (no module) against a table of this many keys, filled first; the
    /// input's keys (--keys) are looked up in it.
    #[arg(long, conflicts_with_all = ["wasm", "aggregate"], requires = "keys")]
    join_table_keys: Option<u64>,
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// fsync policy of both topics.
    #[arg(long, default_value = "always")]
    fsync: String,
    #[arg(long, default_value_t = 1000)]
    batch_records_max: usize,
    /// A hostile neighbour to run beside the measured processor: a component (the chaos guest
    /// of `tests/guests/chaos`) fed records with value `--hostile-value` on its own topic all
    /// through the run.
    #[arg(long)]
    hostile: Option<std::path::PathBuf>,
    /// What the hostile guest is fed: `loop` spins until the deadline, `alloc` hoards memory,
    /// `panic` traps.
    #[arg(long, default_value = "loop")]
    hostile_value: String,
    /// Partitions of the hostile guest's input (one instance each).
    #[arg(long, default_value_t = 1)]
    hostile_partitions: u32,
    /// The hostile guest's call deadline, ms.
    #[arg(long, default_value_t = 1000)]
    hostile_deadline_ms: u64,
    /// Keyed words for input (see `weir bench produce --keys`): a word count's.
    #[arg(long)]
    keys: Option<u64>,
    /// A state store to deploy the processor with (repeatable).
    #[arg(long = "store")]
    stores: Vec<String>,
    /// exactly_once (the default) or at_least_once.
    #[arg(long, default_value = "exactly_once")]
    guarantee: String,
}

/// Deploys the hostile neighbour and keeps feeding it until `stop`.
async fn start_hostile(
    client: &Client,
    b: &ProcessorBench,
    wasm: &std::path::Path,
    tag: u64,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (input, output) = (format!("bench-hin-{tag}"), format!("bench-hout-{tag}"));
    ensure_topic(client, &input, b.hostile_partitions, "never").await?;
    ensure_topic(client, &output, 1, "never").await?;
    let module = client.upload_module(wasm).await?;
    let spec = json!({
        "module": module["id"], "input": input, "outputs": [output], "on_error": "skip",
        "batch_records_max": 1, "limits": {"deadline_ms": b.hostile_deadline_ms},
    });
    client
        .json(
            client
                .request(Method::PUT, &format!("/v1/processors/bench-h-{tag}"))
                .json(&spec),
        )
        .await?;
    let (client, value, partitions) = (client.clone(), b.hostile_value.clone(), b.hostile_partitions);
    Ok(tokio::spawn(async move {
        // Keep every hostile instance busy: a few records queued per partition at all times.
        while !stop.is_cancelled() {
            let records: Vec<_> = (0..partitions)
                .map(|p| json!({"value": value, "partition": p}))
                .collect();
            let _ = client
                .request(Method::POST, &format!("/v1/topics/{input}/records"))
                .json(&json!({ "records": records }))
                .send()
                .await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = stop.cancelled() => {}
            }
        }
    }))
}

/// Produces one small record every 10 ms to its own topic until `stop`; returns the latency
/// histogram of those produces (what a plain producer feels while processors run).
async fn probe_produce_latency(
    client: Client,
    topic: String,
    stop: tokio_util::sync::CancellationToken,
) -> hdrhistogram::Histogram<u64> {
    let mut h = super::histogram();
    while !stop.is_cancelled() {
        let started = Instant::now();
        let sent = client
            .request(Method::POST, &format!("/v1/topics/{topic}/records"))
            .json(&json!({"records": [{"value": "probe"}]}))
            .send()
            .await;
        if sent.is_ok() {
            let _ = h.record(started.elapsed().as_micros() as u64);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
            () = stop.cancelled() => {}
        }
    }
    h
}

/// Sum of high watermarks of `topic`.
async fn topic_records(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let t = client
        .json(client.request(Method::GET, &format!("/v1/topics/{topic}")))
        .await?;
    Ok(t["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["high_watermark"].as_u64().unwrap_or(0))
        .sum())
}

/// Topic -> processor -> topic: fill the input, deploy, time until the output has everything.
pub async fn pipeline(client: &Client, b: ProcessorBench) -> anyhow::Result<()> {
    let tag = now_us() / 1000;
    let (input, output) = (format!("bench-pin-{tag}"), format!("bench-pout-{tag}"));
    ensure_topic(client, &input, b.partitions, &b.fsync).await?;
    ensure_topic(client, &output, b.partitions, &b.fsync).await?;
    produce(
        client,
        ProduceBench {
            topic: Some(input.clone()),
            records: b.records,
            record_size: b.record_size,
            batch: 1000,
            connections: 4,
            partitions: b.partitions,
            fsync: b.fsync.clone(),
            keys: b.keys,
            json_values: b.join_table_keys.is_some() || b.path.is_some(),
        },
    )
    .await?;
    let table = format!("bench-ptable-{tag}");
    if let Some(keys) = b.join_table_keys {
        produce(
            client,
            ProduceBench {
                topic: Some(table.clone()),
                records: keys,
                record_size: b.record_size,
                batch: 1000,
                connections: 4,
                partitions: b.partitions,
                fsync: b.fsync.clone(),
                keys: Some(keys),
                json_values: true,
            },
        )
        .await?;
        // Materialized before the clock starts: what is measured is the join.
        client
            .json(client.request(Method::GET, &format!("/v1/tables/{table}")))
            .await?;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let hostile = match &b.hostile {
        Some(wasm) => Some(start_hostile(client, &b, wasm, tag, stop.clone()).await?),
        None => None,
    };
    let probe_topic = format!("bench-probe-{tag}");
    ensure_topic(client, &probe_topic, 1, "always").await?;
    let probe = tokio::spawn(probe_produce_latency(client.clone(), probe_topic, stop.clone()));
    let started = Instant::now();
    let mut spec = json!({ "input": input, "outputs": [output],
        "batch_records_max": b.batch_records_max, "stores": b.stores, "guarantee": b.guarantee });
    match (&b.wasm, &b.aggregate) {
        _ if b.join_table_keys.is_some() => spec["join"] = json!({"table": table}),
        (Some(wasm), _) => spec["module"] = client.upload_module(wasm).await?["id"].clone(),
        (None, Some(op)) => {
            spec["aggregate"] = json!({"op": op, "path": b.path});
            if b.path.is_none() {
                spec["aggregate"] = json!({"op": op});
            }
            if let Some(size) = b.window_ms {
                spec["window"] = json!({"type": "tumbling", "size_ms": size, "grace_ms": 0, "emit": b.emit});
            }
        }
        (None, None) => bail!("name a component (--wasm) or a built-in aggregate (--aggregate)"),
    }
    // A windowed aggregate that emits when windows close may have written nothing yet.
    let quiet_output = b.aggregate.is_some() && b.window_ms.is_some() && b.emit == "final";
    let uploaded = started.elapsed();
    client
        .json(
            client
                .request(Method::PUT, &format!("/v1/processors/bench-{tag}"))
                .json(&spec),
        )
        .await?;
    let deployed = started.elapsed();
    let mut first = None;
    let view_path = format!("/v1/processors/bench-{tag}");
    loop {
        let n = topic_records(client, &output).await?;
        if n > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        // Done when every input record is committed (and so its output visible).
        let v = client.json(client.request(Method::GET, &view_path)).await?;
        let lag = v["lag"].as_array().cloned().unwrap_or_default();
        if !lag.is_empty() && lag.iter().all(|p| p["lag"] == 0) && (n > 0 || quiet_output) {
            break;
        }
        if v["state"] == "failed" {
            bail!("the processor failed: {}", v["last_error"]);
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "the processor did not finish in 10 minutes ({n} of {} records)",
                b.records
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let first = first.unwrap_or(total);
    stop.cancel();
    let probe = probe.await?;
    if let Some(h) = hostile {
        h.await?;
        client
            .request(Method::DELETE, &format!("/v1/processors/bench-h-{tag}"))
            .send()
            .await?;
    }
    let what = match (&b.wasm, &b.aggregate) {
        _ if b.join_table_keys.is_some() => format!("join against a table of {} keys", b.join_table_keys.unwrap_or(0)),
        (Some(w), _) => format!("module {}", w.display()),
        (None, a) => format!(
            "built-in {} {}",
            a.as_deref().unwrap_or_default(),
            b.window_ms.map_or("per key".to_owned(), |w| format!(
                "in tumbling {w} ms windows, emit {}",
                b.emit
            ))
        ),
    };
    println!(
        "processor: {} records of {}, {} partitions, fsync={}, {}, stores {:?}, {what}, {} output records",
        b.records,
        b.keys
            .map_or(format!("{} B", b.record_size), |k| format!("{k} keyed words")),
        b.partitions,
        b.fsync,
        b.guarantee,
        b.stores,
        topic_records(client, &output).await?
    );
    println!(
        "  upload {:.0} ms, deploy answered at {:.0} ms, first output record at {:.0} ms",
        uploaded.as_secs_f64() * 1e3,
        deployed.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3
    );
    // From the deploy's answer to the last input committed: an exactly-once processor's
    // first output is visible only at its first commit, so "from the first output" would
    // leave out the work before it.
    let secs = (total - deployed).as_secs_f64().max(1e-9);
    println!(
        "  topic -> processor -> topic: {:.0} records/s ({:.2} s from the deploy's answer to the last input committed)",
        b.records as f64 / secs,
        secs
    );
    match &b.hostile {
        Some(w) => println!(
            "  beside a hostile guest ({}) fed `{}` on {} partition(s), deadline {} ms",
            w.display(),
            b.hostile_value,
            b.hostile_partitions,
            b.hostile_deadline_ms
        ),
        None => println!("  no hostile neighbour"),
    }
    println!(
        "  single-record produce to another topic meanwhile ({} samples): {}",
        probe.len(),
        super::latency_line(&probe)
    );
    client
        .request(Method::DELETE, &format!("/v1/processors/bench-{tag}"))
        .send()
        .await?;
    Ok(())
}
