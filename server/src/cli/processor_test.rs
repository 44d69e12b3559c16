//! `weir processor test`: runs a processor locally, with no server. NDJSON records (the produce
//! API's shape) on stdin, one NDJSON line per emitted record on stdout, failures on stderr.
//!
//! With stores (`--store NAME`, or those of a `--load-state` file) the processor has keyed
//! state for the run, kept as the broker keeps it: the writes of a record that fails are undone
//! (its batch runs again one record per call, as on the broker), the watermark is the largest
//! timestamp read, and timers fire after each batch once due (event time against the
//! watermark, processing time against the clock). `--load-state FILE` starts from a state and
//! `--dump-state FILE` writes the state after the run, in one JSON shape:
//!
//! ```json
//! {"watermark": 1796300000000,
//!  "stores": {"counts": [{"key": "apple", "value": "2"}, {"key_b64": "/w==", "value": "1"}]},
//!  "timers": [{"key": "apple", "at": 1796300060000, "domain": "event_time"}]}
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::log::NewRecord;
use crate::state::timers::{self, Domain, Fired};
use crate::state::{StateLimits, TaskState};
use crate::wasm::{BatchOutput, Guest, GuestLimits, InputRef, Level, RuntimeConfig, TaskRef, WasmRuntime};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The component (.wasm).
    file: PathBuf,
    /// A config parameter NAME=VALUE (repeatable).
    #[arg(long = "config", short = 'c', value_parser = super::processor::parse_pair)]
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
    /// A state store the processor may open, as `"stores"` in a deployment (repeatable).
    #[arg(long = "store")]
    stores: Vec<String>,
    /// Start from the state in this JSON file (the shape `--dump-state` writes); its stores
    /// are declared too.
    #[arg(long)]
    load_state: Option<PathBuf>,
    /// Write the state to this JSON file after the run (it may be the `--load-state` file).
    #[arg(long)]
    dump_state: Option<PathBuf>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let loaded = match &args.load_state {
        Some(path) => Some(read_state(path)?),
        None => None,
    };
    let task = state_for(&args.stores, loaded.as_ref())?;
    if task.is_none() && args.dump_state.is_some() {
        bail!("--dump-state needs state: declare a store with --store NAME");
    }
    let runtime = WasmRuntime::new(RuntimeConfig {
        instances_max: 4,
        ..RuntimeConfig::default()
    })?;
    let module = compiled(&runtime, &bytes)?;
    let log: crate::wasm::LogSink = Arc::new(|level: Level, line: &str| eprintln!("[{level:?}] {line}"));
    let limits = GuestLimits {
        deadline_ms: args.deadline_ms,
        memory_bytes_max: args.memory_bytes_max,
        ..GuestLimits::default()
    };
    // Called on a blocking thread of the CLI's runtime: run the guest's async calls there.
    let rt = tokio::runtime::Handle::current();
    let mut guest = rt.block_on(runtime.instantiate(&module, limits, &args.topic, log, None, task.clone()))?;
    rt.block_on(guest.init(&args.config))
        .map_err(|e| anyhow::anyhow!("init rejected the config: {e}"))?;

    let mut records = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = crate::http::records_in::parse_record(line.as_bytes())
            .map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
        records.push(parsed.record);
    }
    let now = crate::topic::now_ms();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut failures = 0usize;
    let batch = args.batch.max(1);
    for (chunk_index, chunk) in records.chunks(batch).enumerate() {
        let base = (chunk_index * batch) as u64;
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
                value: r.value_bytes(),
                headers: h,
            })
            .collect();
        let result = rt.block_on(call(&mut guest, task.as_ref(), &inputs))?;
        for e in &result.emitted {
            writeln!(
                out,
                "{}",
                record_json(&e.record, e.output, Some(base + u64::from(e.input)))
            )?;
        }
        for (i, message) in &result.failed {
            failures += 1;
            eprintln!("record at offset {} failed: {message}", base + u64::from(*i));
        }
        if let Some(task) = &task {
            failures += rt.block_on(fire_timers(&mut guest, task, &mut out))?;
        }
    }
    out.flush()?;
    if let (Some(task), Some(path)) = (&task, &args.dump_state) {
        write_state(path, &lock(task))?;
    }
    if failures > 0 {
        bail!("{failures} record(s) failed");
    }
    Ok(())
}

fn lock(task: &TaskRef) -> std::sync::MutexGuard<'_, TaskState> {
    task.lock().unwrap_or_else(|e| e.into_inner())
}

/// One batch, as the broker runs it: with state written and a record failing, the batch's
/// writes are undone and it runs again one record per call, so only the failing records'
/// writes are lost.
async fn call(guest: &mut Guest, task: Option<&TaskRef>, inputs: &[InputRef<'_>]) -> anyhow::Result<BatchOutput> {
    let Some(task) = task else {
        return Ok(guest.process(0, inputs).await?);
    };
    {
        let mut s = lock(task);
        s.watermark = s.watermark.max(inputs.iter().map(|r| r.timestamp).max());
        s.begin_batch();
    }
    let result = guest.process(0, inputs).await?;
    if result.failed.is_empty() || !lock(task).wrote_since(0) {
        end_batch(task);
        return Ok(result);
    }
    lock(task).rollback_batch();
    let mut out = BatchOutput::default();
    for (i, input) in inputs.iter().enumerate() {
        let mark = lock(task).mark();
        let one = guest.process(0, std::slice::from_ref(input)).await?;
        match one.failed.into_iter().next() {
            None => out.emitted.extend(one.emitted.into_iter().map(|mut e| {
                e.input = i as u32;
                e
            })),
            Some((_, message)) => {
                lock(task).rollback_to(mark);
                out.failed.push((i as u32, message));
            }
        }
    }
    end_batch(task);
    Ok(out)
}

/// Keeps the batch's writes (nothing is committed anywhere: the changes are dropped).
fn end_batch(task: &TaskRef) {
    let mut s = lock(task);
    s.end_batch();
    s.take_changes();
}

/// Fires the timers that are due, printing what `on-timers` emits, in at most 16 rounds as
/// the broker does (a handler that sets a due timer again would fire forever); returns the
/// failed calls.
async fn fire_timers(guest: &mut Guest, task: &TaskRef, out: &mut impl Write) -> anyhow::Result<usize> {
    let mut failures = 0;
    for _ in 0..16 {
        let fired = {
            let mut s = lock(task);
            s.begin_batch();
            s.take_due_timers(crate::topic::now_ms(), 1000)
        };
        if fired.is_empty() {
            end_batch(task);
            return Ok(failures);
        }
        let result = guest.on_timers(&fired).await?;
        if let Some((_, message)) = result.failed.first() {
            lock(task).rollback_batch();
            eprintln!(
                "on-timers failed for {} timer(s), which are dropped: {message}",
                fired.len()
            );
            failures += 1;
            // The timers were taken: they do not fire again.
            let mut s = lock(task);
            s.begin_batch();
            s.take_due_timers(crate::topic::now_ms(), fired.len());
            drop(s);
            end_batch(task);
            continue;
        }
        end_batch(task);
        for e in &result.emitted {
            let mut line = record_json(&e.record, e.output, None);
            if let Some(f) = fired.get(e.input as usize) {
                line["timer"] = timer_json(f);
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(failures)
}

/// One store's entries, key and value.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A state from `--load-state`.
struct Loaded {
    watermark: Option<i64>,
    stores: Vec<(String, Entries)>,
    timers: Vec<Fired>,
}

/// The task's state for the run: the declared stores and the loaded ones, filled.
fn state_for(declared: &[String], loaded: Option<&Loaded>) -> anyhow::Result<Option<TaskRef>> {
    let mut names: Vec<String> = declared.to_vec();
    for (name, _) in loaded.map(|l| l.stores.as_slice()).unwrap_or_default() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    for name in &names {
        crate::state::validate_store_name(name).map_err(|e| anyhow::anyhow!("--store {name}: {e}"))?;
    }
    if names.is_empty() {
        if loaded.is_some_and(|l| !l.timers.is_empty()) {
            bail!("the state file has timers but no stores: timers need a store (add --store NAME)");
        }
        return Ok(None);
    }
    let mut state = TaskState::new(&names, StateLimits::default());
    if let Some(l) = loaded {
        for (name, entries) in &l.stores {
            let index = state.index_of(name).expect("declared above");
            for (k, v) in entries {
                state.restore(index, k, Some(v));
            }
        }
        for t in &l.timers {
            state
                .set_timer(&t.key, t.at, t.domain)
                .map_err(|e| anyhow::anyhow!("timer: {e}"))?;
        }
        state.watermark = l.watermark;
        state.end_batch();
        state.take_changes();
    }
    Ok(Some(Arc::new(Mutex::new(state))))
}

fn bytes_field(m: &Map<String, Value>, name: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    if m.contains_key(name) && m.contains_key(&format!("{name}_b64")) {
        bail!("{what}: give \"{name}\" or \"{name}_b64\", not both");
    }
    if let Some(t) = m.get(name) {
        return t
            .as_str()
            .map(|t| t.as_bytes().to_vec())
            .ok_or_else(|| anyhow::anyhow!("{what}: \"{name}\" must be a string"));
    }
    let b64 = format!("{name}_b64");
    match m.get(&b64).and_then(Value::as_str) {
        Some(t) => B64
            .decode(t)
            .map_err(|e| anyhow::anyhow!("{what}: \"{b64}\" is not base64: {e}")),
        None => bail!("{what}: needs \"{name}\" (text) or \"{b64}\""),
    }
}

fn read_state(path: &Path) -> anyhow::Result<Loaded> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value = serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let what = |s: &str| format!("{}: {s}", path.display());
    let Some(doc) = doc.as_object() else {
        bail!("{}", what("must be an object with \"stores\""));
    };
    let mut stores = Vec::new();
    if let Some(s) = doc.get("stores") {
        let Some(s) = s.as_object() else {
            bail!("{}", what("\"stores\" must map each store's name to its entries"));
        };
        for (name, entries) in s {
            let Some(entries) = entries.as_array() else {
                bail!("{}", what(&format!("store {name}: its entries must be a list")));
            };
            let mut kv = Vec::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                let ctx = what(&format!("store {name}, entry {i}"));
                let Some(e) = e.as_object() else {
                    bail!("{ctx}: must be an object with \"key\" and \"value\"");
                };
                kv.push((bytes_field(e, "key", &ctx)?, bytes_field(e, "value", &ctx)?));
            }
            let mut keys: Vec<&[u8]> = kv.iter().map(|(k, _)| k.as_slice()).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                let key = String::from_utf8_lossy(w[0]);
                bail!("{}", what(&format!("store {name}: key {key:?} is there twice")));
            }
            stores.push((name.clone(), kv));
        }
    }
    let mut timers = Vec::new();
    for (i, t) in doc
        .get("timers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ctx = what(&format!("timer {i}"));
        let Some(t) = t.as_object() else {
            bail!("{ctx}: must be an object with \"key\", \"at\" and \"domain\"");
        };
        let at = t
            .get("at")
            .and_then(Value::as_i64)
            .ok_or_else(|| anyhow::anyhow!("{ctx}: \"at\" must be an integer (ms)"))?;
        let domain = match t.get("domain").and_then(Value::as_str) {
            None | Some("event_time") => Domain::EventTime,
            Some("processing_time") => Domain::ProcessingTime,
            Some(other) => bail!("{ctx}: domain is \"event_time\" or \"processing_time\", not \"{other}\""),
        };
        timers.push(Fired {
            key: bytes_field(t, "key", &ctx)?,
            at,
            domain,
        });
    }
    let watermark = match doc.get("watermark") {
        None | Some(Value::Null) => None,
        Some(w) => Some(
            w.as_i64()
                .ok_or_else(|| anyhow::anyhow!("{}", what("\"watermark\" must be an integer (ms) or null")))?,
        ),
    };
    Ok(Loaded {
        watermark,
        stores,
        timers,
    })
}

fn write_state(path: &Path, state: &TaskState) -> anyhow::Result<()> {
    let all = state.stores();
    let (declared, timer_store) = all.split_at(all.len() - 1);
    let mut stores = Map::new();
    for s in declared {
        let entries: Vec<Value> = s
            .iter()
            .map(|(k, v)| {
                let mut m = Map::new();
                bytes_json(&mut m, "key", Some(k));
                bytes_json(&mut m, "value", Some(v));
                Value::Object(m)
            })
            .collect();
        stores.insert(s.name.clone(), Value::Array(entries));
    }
    let timers: Vec<Value> = timer_store
        .iter()
        .flat_map(|s| s.iter())
        .filter_map(|(k, _)| timers::decode(k))
        .map(|f| timer_json(&f))
        .collect();
    let doc = json!({"watermark": state.watermark, "stores": stores, "timers": timers});
    let text = serde_json::to_vec_pretty(&doc)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn timer_json(f: &Fired) -> Value {
    let mut m = Map::new();
    bytes_json(&mut m, "key", Some(&f.key));
    m.insert("at".into(), json!(f.at));
    let domain = match f.domain {
        Domain::EventTime => "event_time",
        Domain::ProcessingTime => "processing_time",
    };
    m.insert("domain".into(), json!(domain));
    Value::Object(m)
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

fn record_json(r: &NewRecord, output: Option<u32>, input_offset: Option<u64>) -> Value {
    let mut m = Map::new();
    bytes_json(&mut m, "key", r.key.as_deref());
    bytes_json(&mut m, "value", r.value.as_deref());
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

/// The component compiled: from the user's cache (`$XDG_CACHE_HOME/weir/compiled/SHA256.cwasm`,
/// or `~/.cache/...`) when this `weir` compiled the same bytes before, else compiled and cached.
/// A Python component takes seconds to compile; a second `weir processor test` should not.
fn compiled(runtime: &WasmRuntime, bytes: &[u8]) -> anyhow::Result<crate::wasm::CompiledModule> {
    use sha2::{Digest, Sha256};
    let cache_dir = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .map(|d| d.join("weir").join("compiled"));
    let path = cache_dir
        .as_ref()
        .map(|d| d.join(format!("{}.cwasm", hex::encode(Sha256::digest(bytes)))));
    if let Some(m) = path.as_ref().and_then(|p| runtime.load_cached(p)) {
        return Ok(m);
    }
    let module = runtime.compile(bytes)?;
    if let (Some(dir), Some(path), Ok(code)) = (&cache_dir, &path, module.serialize()) {
        // Only a cache: a failure costs a compile next time.
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(path, code));
    }
    Ok(module)
}
