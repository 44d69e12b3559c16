//! `weir processor ...`: `test` runs a processor locally, with no server.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::log::NewRecord;
use crate::wasm::{GuestLimits, InputRef, Level, RuntimeConfig, WasmRuntime};

#[derive(Debug, clap::Subcommand)]
pub enum ProcessorCommand {
    /// Run a processor locally: NDJSON records (the produce API's shape) on stdin, one NDJSON
    /// line per emitted record on stdout, failures on stderr (exit status 1 if any record failed).
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The component (.wasm).
    file: PathBuf,
    /// A config parameter NAME=VALUE (repeatable).
    #[arg(long = "config", short = 'c', value_parser = parse_pair)]
    config: Vec<(String, String)>,
    /// Records per guest call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Topic name the processor sees.
    #[arg(long, default_value = "test")]
    topic: String,
    /// Deadline of one call, ms.
    #[arg(long, default_value_t = 1000)]
    deadline_ms: u64,
    /// Memory cap, bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    memory_bytes_max: usize,
}

pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

pub fn run(command: ProcessorCommand) -> anyhow::Result<()> {
    match command {
        ProcessorCommand::Test(args) => test(args),
    }
}

fn bytes_json(out: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes.map(std::str::from_utf8) {
        None => {
            out.insert(name.into(), Value::Null);
        }
        Some(Ok(s)) => {
            out.insert(name.into(), json!(s));
        }
        Some(Err(_)) => {
            out.insert(format!("{name}_b64"), json!(B64.encode(bytes.unwrap_or_default())));
        }
    }
}

fn record_json(r: &NewRecord, output: Option<u32>, input_offset: u64) -> Value {
    let mut m = Map::new();
    bytes_json(&mut m, "key", r.key.as_deref());
    bytes_json(&mut m, "value", Some(&r.value));
    let headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), json!(String::from_utf8_lossy(v))))
        .collect();
    m.insert("headers".into(), Value::Object(headers));
    m.insert("output".into(), json!(output));
    m.insert("input_offset".into(), json!(input_offset));
    Value::Object(m)
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let runtime = WasmRuntime::new(RuntimeConfig {
        instances_max: 4,
        ..RuntimeConfig::default()
    })?;
    let module = runtime.compile(&bytes)?;
    let log: crate::wasm::LogSink = Arc::new(|level: Level, line: &str| eprintln!("[{level:?}] {line}"));
    let limits = GuestLimits {
        deadline_ms: args.deadline_ms,
        memory_bytes_max: args.memory_bytes_max,
        ..GuestLimits::default()
    };
    let mut guest = runtime.instantiate(&module, limits, &args.topic, log)?;
    guest
        .init(&args.config)
        .map_err(|e| anyhow::anyhow!("init rejected the config: {e}"))?;

    let mut records = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let (_, r) =
            crate::http::produce::parse_record(line.as_bytes()).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
        records.push(r);
    }
    let now = crate::topic::now_ms();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut failures = 0usize;
    for (chunk_index, chunk) in records.chunks(args.batch.max(1)).enumerate() {
        let base = (chunk_index * args.batch.max(1)) as u64;
        let headers: Vec<Vec<(&str, &[u8])>> = chunk
            .iter()
            .map(|r| r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect())
            .collect();
        let inputs: Vec<InputRef<'_>> = chunk
            .iter()
            .zip(&headers)
            .enumerate()
            .map(|(i, (r, h))| InputRef {
                offset: base + i as u64,
                timestamp: r.timestamp.unwrap_or(now),
                key: r.key.as_deref(),
                value: &r.value,
                headers: h,
            })
            .collect();
        let result = guest.process(0, &inputs)?;
        for e in &result.emitted {
            writeln!(out, "{}", record_json(&e.record, e.output, base + u64::from(e.input)))?;
        }
        for (i, message) in &result.failed {
            failures += 1;
            eprintln!("record at offset {} failed: {message}", base + u64::from(*i));
        }
    }
    out.flush()?;
    if failures > 0 {
        bail!("{failures} record(s) failed");
    }
    Ok(())
}
