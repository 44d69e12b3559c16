//! Runs one processor: a task per input partition reads from the committed offset, calls the
//! guest once per batch (on a blocking thread), appends the outputs, applies the error policy
//! to failed records, then commits the input offset.
//!
//! Failure isolation: when a batch call fails as a whole (a trap, or an error without a
//! record), the batch is replayed one record at a time on a fresh instance, so only the
//! poison records meet the policy and the good ones still go through. Traps rebuild the
//! instance; batches that trap back to back are spaced out with exponential backoff.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::files::OffsetFile;
use super::spec::{OnError, ProcessorSpec, Start};
use super::status::{State, Status, level_name};
use crate::log::{NewRecord, RecordView};
use crate::topic::{AppendMode, Chunk, Isolation, Partition, Topic, TopicError};
use crate::wasm::{CallError, CompiledModule, Emitted, Guest, InputRef, WasmRuntime};

/// Bytes of log read per batch (at most `batch_records_max` records of it are used).
const READ_BYTES: usize = 1024 * 1024;
/// Longest pause between batches that keep trapping.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long an instance stays after its input went quiet, unless someone waits for room in the
/// pool (then it goes at once). Keeping it saves re-instantiating on a steady trickle.
const INSTANCE_IDLE: Duration = Duration::from_secs(10);
/// How long a busy partition keeps its instance while others wait for room: then, after its
/// batch, it gives it up and queues behind them, so a busy processor cannot hold a slot forever.
const INSTANCE_SLICE: Duration = Duration::from_secs(1);

/// Everything a partition task needs, shared.
pub struct Ctx {
    pub name: String,
    pub spec: ProcessorSpec,
    pub status: Arc<Status>,
    pub runtime: WasmRuntime,
    pub module: CompiledModule,
    pub input: Arc<Topic>,
    pub outputs: Vec<Arc<Topic>>,
    pub dead_letter: Option<Arc<Topic>>,
    pub offsets_dir: PathBuf,
    pub stop: CancellationToken,
    pub paused: watch::Receiver<bool>,
    /// The processor's share of the instance pool: at most this many of its partitions hold an
    /// instance at once.
    pub share: Arc<tokio::sync::Semaphore>,
}

/// What one partition's runner reports while it runs.
#[derive(Debug, Default)]
pub struct PartitionGauges {
    /// Committed input offset.
    pub committed: AtomicU64,
    /// Linear memory of the partition's instance, bytes (0 while none runs).
    pub memory_bytes: AtomicU64,
}

/// A record the processor failed on, kept whole for the dead-letter topic.
struct Failed {
    index: usize,
    offset: u64,
    record: NewRecord,
    message: String,
}

/// What one batch produced, before delivery.
struct Processed {
    /// Input records taken from the log.
    count: usize,
    /// Offset after the last of them.
    next_offset: u64,
    /// Offset of each input record.
    offsets: Vec<u64>,
    emitted: Vec<Emitted>,
    failed: Vec<Failed>,
    traps: u32,
}

fn owned(v: &RecordView<'_>) -> NewRecord {
    v.to_new()
}

impl Ctx {
    async fn build_guest(&self, partition: u32) -> Result<Guest, CallError> {
        let status = Arc::clone(&self.status);
        let log: crate::wasm::LogSink =
            Arc::new(move |level, line| status.log(level_name(level), Some(partition), line.to_owned()));
        let mut guest = self
            .runtime
            .instantiate(
                &self.module,
                self.spec.limits,
                &self.input.name,
                log,
                Some(Arc::clone(&self.share)),
            )
            .await?;
        let config: Vec<(String, String)> = self.spec.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        guest.init(&config).await?;
        Ok(guest)
    }

    async fn ensure_guest<'g>(&self, partition: u32, guest: &'g mut Option<Guest>) -> Result<&'g mut Guest, String> {
        if guest.is_none() {
            match self.build_guest(partition).await {
                Ok(g) => *guest = Some(g),
                Err(CallError::Guest { message, .. }) => return Err(format!("init rejected the config: {message}")),
                Err(e) => return Err(format!("could not start an instance: {e}")),
            }
        }
        Ok(guest.as_mut().expect("just built"))
    }

    fn note_trap(&self, partition: u32, e: &CallError) {
        Status::add(&self.status.traps, 1);
        self.status
            .log("warn", Some(partition), format!("instance rebuilt after a trap: {e}"));
    }

    /// Decodes the batch from `from` on and calls the guest, isolating failures. An `Err` is
    /// fatal for the processor (its config was rejected, or no instance starts).
    async fn process(&self, partition: u32, guest: &mut Option<Guest>, chunk: &Chunk) -> Result<Processed, String> {
        let mut visible = chunk.visible();
        let views: Vec<RecordView<'_>> = visible.by_ref().take(self.spec.batch_records_max).collect();
        let next_offset = visible.next_offset();
        let inputs: Vec<InputRef<'_>> = views
            .iter()
            .map(|v| InputRef {
                offset: v.offset,
                timestamp: v.timestamp,
                key: v.key,
                value: v.value_bytes(),
                headers: &v.headers,
            })
            .collect();
        let mut out = Processed {
            count: views.len(),
            next_offset,
            offsets: views.iter().map(|v| v.offset).collect(),
            emitted: Vec::new(),
            failed: Vec::new(),
            traps: 0,
        };
        if views.is_empty() {
            return Ok(out);
        }
        let started = Instant::now();
        let result = self
            .ensure_guest(partition, guest)
            .await?
            .process(partition, &inputs)
            .await;
        self.status.observe_call(started.elapsed().as_micros() as u64);
        match result {
            Ok(result) => {
                out.emitted = result.emitted;
                for (i, message) in result.failed {
                    let i = i as usize;
                    if let Some(v) = views.get(i) {
                        out.failed.push(Failed {
                            index: i,
                            offset: v.offset,
                            record: owned(v),
                            message,
                        });
                    }
                }
            }
            Err(e) => {
                if e.is_trap() {
                    *guest = None;
                    out.traps += 1;
                    self.note_trap(partition, &e);
                }
                // Replay one record at a time so only the bad ones fail.
                for (i, input) in inputs.iter().enumerate() {
                    let one = self
                        .ensure_guest(partition, guest)
                        .await?
                        .process(partition, std::slice::from_ref(input))
                        .await;
                    match one {
                        Ok(r) => {
                            out.emitted
                                .extend(r.emitted.into_iter().map(|e| Emitted { input: i as u32, ..e }));
                            if let Some((_, message)) = r.failed.into_iter().next() {
                                out.failed.push(Failed {
                                    index: i,
                                    offset: input.offset,
                                    record: owned(&views[i]),
                                    message,
                                });
                            }
                        }
                        Err(e) => {
                            if e.is_trap() {
                                *guest = None;
                                out.traps += 1;
                                self.note_trap(partition, &e);
                            }
                            out.failed.push(Failed {
                                index: i,
                                offset: input.offset,
                                record: owned(&views[i]),
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        out.failed.sort_by_key(|f| f.index);
        // An output keeps the timestamp of the record it came from, as in Kafka Streams.
        for e in &mut out.emitted {
            e.record.timestamp = views.get(e.input as usize).map(|v| v.timestamp);
        }
        Ok(out)
    }

    /// Appends outputs and dead letters per policy. Returns the offset to commit, and whether
    /// the processor must stop. `Err` is fatal (an output could not be written).
    async fn deliver(&self, partition: u32, mut p: Processed) -> Result<(u64, bool), String> {
        // An output index the deployment does not have is the guest's error for that record.
        let outputs = self.outputs.len() as u32;
        let mut bad_route: BTreeMap<usize, String> = BTreeMap::new();
        for e in &p.emitted {
            if let Some(o) = e.output.filter(|&o| o >= outputs) {
                bad_route
                    .entry(e.input as usize)
                    .or_insert_with(|| format!("emitted to output {o}, but the processor has {outputs} output(s)"));
            }
        }
        if !bad_route.is_empty() {
            p.emitted.retain(|e| !bad_route.contains_key(&(e.input as usize)));
            for (index, message) in bad_route {
                let offset = p.offsets[index];
                if !p.failed.iter().any(|f| f.index == index) {
                    let record = NewRecord {
                        key: None,
                        value: Some(Vec::new()),
                        headers: Vec::new(),
                        timestamp: None,
                    };
                    p.failed.push(Failed {
                        index,
                        offset,
                        record,
                        message,
                    });
                }
            }
            p.failed.sort_by_key(|f| f.index);
        }
        let stop_at = match self.spec.on_error {
            OnError::Stop => p.failed.first().map(|f| f.index),
            _ => None,
        };
        let mut per_output: Vec<Vec<NewRecord>> = vec![Vec::new(); self.outputs.len()];
        for e in p.emitted {
            if stop_at.is_some_and(|s| e.input as usize >= s) {
                continue;
            }
            per_output[e.output.unwrap_or(0) as usize].push(e.record);
        }
        let sent: usize = per_output.iter().map(Vec::len).sum();
        let appends = self
            .outputs
            .iter()
            .zip(per_output)
            .map(|(t, records)| append(t, records));
        for r in futures::future::join_all(appends).await {
            r.map_err(|e| format!("could not write output: {e}"))?;
        }
        Status::add(&self.status.records_out, sent as u64);
        if let Some(s) = stop_at {
            let f = &p.failed[0];
            Status::add(&self.status.records_in, s as u64);
            Status::add(&self.status.errors, 1);
            let msg = format!("stopped at {}/{partition}@{}: {}", self.input.name, f.offset, f.message);
            self.status.log("error", Some(partition), msg.clone());
            // The state turns `failed` once the offset is committed (in `run_partition`), so
            // whoever sees `failed` also sees the offset it stopped at.
            self.status.set_error(msg, false);
            return Ok((f.offset, true));
        }
        Status::add(&self.status.records_in, p.count as u64);
        Status::add(&self.status.errors, p.failed.len() as u64);
        if let Some(last) = p.failed.last() {
            self.status.set_error(
                format!("{}/{partition}@{}: {}", self.input.name, last.offset, last.message),
                false,
            );
        }
        match (&self.spec.on_error, &self.dead_letter) {
            (OnError::DeadLetter, Some(dlq)) if !p.failed.is_empty() => {
                let n = p.failed.len() as u64;
                let letters: Vec<NewRecord> = p.failed.into_iter().map(|f| self.dead_letter(partition, f)).collect();
                append(dlq, letters)
                    .await
                    .map_err(|e| format!("could not write the dead-letter topic: {e}"))?;
                Status::add(&self.status.dead_lettered, n);
            }
            _ => Status::add(&self.status.skipped, p.failed.len() as u64),
        }
        Ok((p.next_offset, false))
    }

    fn dead_letter(&self, partition: u32, f: Failed) -> NewRecord {
        let mut r = f.record;
        let add = |r: &mut NewRecord, name: &str, value: String| r.headers.push((name.to_owned(), value.into_bytes()));
        add(&mut r, "weir-processor", self.name.clone());
        add(&mut r, "weir-error", f.message);
        add(&mut r, "weir-source-topic", self.input.name.clone());
        add(&mut r, "weir-source-partition", partition.to_string());
        add(&mut r, "weir-source-offset", f.offset.to_string());
        r
    }
}

/// Appends records to `topic` (key hash, else one partition for the call); durable under the
/// topic's policy when it returns.
pub async fn append(topic: &Arc<Topic>, records: Vec<NewRecord>) -> Result<(), TopicError> {
    topic.append(records, AppendMode::Plain).await.map(|_| ())
}

/// The loop of one input partition. Ends when the processor stops, fails, or its input goes.
pub async fn run_partition(ctx: Arc<Ctx>, partition: Arc<Partition>, gauges: Arc<PartitionGauges>) {
    let id = partition.id;
    let path = ctx.offsets_dir.join(format!("{id}.offset"));
    let opened = tokio::task::spawn_blocking(move || OffsetFile::open(&path)).await;
    let Ok(Ok(mut offsets)) = opened else {
        ctx.status
            .set_error(format!("cannot open the offset file of partition {id}"), true);
        return;
    };
    let mut next = match offsets.get() {
        Some(o) => o,
        None => {
            let (start, hw) = partition.bounds();
            match ctx.spec.start {
                Start::Earliest => start,
                Start::Latest => hw,
                Start::Offset(n) => n.clamp(start, hw),
            }
        }
    };
    gauges.committed.store(next, Ordering::Relaxed);
    let mut guest: Option<Guest> = None;
    // When the instance was made: a busy partition gives it up after a slice if others wait.
    let mut held_since = Instant::now();
    let mut trap_streak = 0u32;
    let mut hw_changes = partition.watch();
    let mut paused = ctx.paused.clone();
    let mut arrivals = ctx.runtime.pool().arrivals();
    loop {
        if ctx.stop.is_cancelled() {
            break;
        }
        if *paused.borrow_and_update() {
            tokio::select! {
                r = paused.changed() => { if r.is_err() { break } }
                () = ctx.stop.cancelled() => break,
            }
            continue;
        }
        hw_changes.borrow_and_update();
        let (start, _) = partition.bounds();
        let hw = partition.end(Isolation::ReadCommitted);
        if next < start {
            ctx.status.log(
                "warn",
                Some(id),
                format!("offsets {next}..{start} were deleted by retention before they were processed"),
            );
            next = start;
        }
        if next >= hw {
            // Caught up: make way at once if another instance waits for room, else after a while.
            if guest.is_some() && ctx.runtime.pool().has_waiters() {
                guest = None;
                gauges.memory_bytes.store(0, Ordering::Relaxed);
            }
            let holds_instance = guest.is_some();
            let idle = async move {
                if holds_instance {
                    tokio::time::sleep(INSTANCE_IDLE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            arrivals.borrow_and_update();
            let someone_waits = async {
                if holds_instance {
                    let _ = arrivals.changed().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = someone_waits => {
                    guest = None;
                    gauges.memory_bytes.store(0, Ordering::Relaxed);
                }
                r = hw_changes.changed() => { if r.is_err() { break } }
                _ = paused.changed() => {}
                () = ctx.stop.cancelled() => break,
                () = ctx.input.stop.cancelled() => {
                    ctx.status.set_error(format!("input topic '{}' was deleted", ctx.input.name), true);
                    break;
                }
                () = idle => {
                    guest = None;
                    gauges.memory_bytes.store(0, Ordering::Relaxed);
                }
            }
            continue;
        }
        let chunk = match partition.read(next, READ_BYTES, Isolation::ReadCommitted).await {
            Ok(b) => b,
            Err(e) => {
                ctx.status
                    .set_error(format!("cannot read {}/{id}: {e}", ctx.input.name), true);
                break;
            }
        };
        // Stopping (pause, redeploy, delete, shutdown) drops the call at the guest's next
        // epoch tick; the batch is not committed and runs again on the next start.
        let had_instance = guest.is_some();
        let outcome = tokio::select! {
            biased;
            () = ctx.stop.cancelled() => None,
            _ = paused.changed() => Some(None),
            r = ctx.process(id, &mut guest, &chunk) => Some(Some(r)),
        };
        if !had_instance && guest.is_some() {
            held_since = Instant::now();
        }
        let processed = match outcome {
            None => break,
            Some(None) => {
                // Paused mid-call: the instance is unusable; the batch runs again on resume.
                guest = None;
                continue;
            }
            Some(Some(r)) => r,
        };
        let memory = guest.as_ref().map_or(0, |g| g.memory_bytes() as u64);
        gauges.memory_bytes.store(memory, Ordering::Relaxed);
        let processed = match processed {
            Ok(p) => p,
            Err(fatal) => {
                ctx.status.log("error", Some(id), fatal.clone());
                ctx.status.set_error(fatal, true);
                ctx.stop.cancel();
                break;
            }
        };
        let traps = processed.traps;
        let (commit, stop) = match ctx.deliver(id, processed).await {
            Ok(r) => r,
            Err(fatal) => {
                ctx.status.log("error", Some(id), fatal.clone());
                ctx.status.set_error(fatal, true);
                ctx.stop.cancel();
                break;
            }
        };
        let path_offsets = tokio::task::spawn_blocking(move || offsets.set(commit).map(|()| offsets)).await;
        match path_offsets {
            Ok(Ok(o)) => offsets = o,
            _ => {
                ctx.status
                    .set_error(format!("cannot commit the offset of partition {id}"), true);
                break;
            }
        }
        next = commit;
        gauges.committed.store(next, Ordering::Relaxed);
        if stop {
            ctx.status.set_state(State::Failed);
            ctx.stop.cancel();
            break;
        }
        // Others wait for room and this partition has had its slice: give the instance up and
        // queue behind them for the next batch.
        if guest.is_some() && held_since.elapsed() >= INSTANCE_SLICE && ctx.runtime.pool().has_waiters() {
            guest = None;
            gauges.memory_bytes.store(0, Ordering::Relaxed);
        }
        if traps > 0 {
            trap_streak += 1;
            let backoff = (Duration::from_millis(100) * 2u32.saturating_pow(trap_streak - 1)).min(BACKOFF_MAX);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = ctx.stop.cancelled() => break,
            }
        } else {
            trap_streak = 0;
        }
    }
    if ctx.status.state().0 == State::Running && *ctx.paused.borrow() {
        ctx.status.set_state(State::Paused);
    }
}
