//! Runs one processor: a task per input partition reads committed records from its committed
//! offset, calls the guest once per batch (see [`super::call`]), applies the error policy
//! ([`super::deliver`]), and commits.
//!
//! `exactly_once` (the default): a task gathers what its batches produce for up to
//! `commit_interval_ms` (or until it has read everything there is), then commits it all in
//! one transaction with the input offset ([`super::txn`]); readers of committed records see
//! all of it or none, and a crash repeats nothing downstream. `at_least_once`: outputs are
//! appended as each batch is done, and the offset is checkpointed every `commit_interval_ms`;
//! after a crash the batches since the last checkpoint run again and their outputs repeat.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::aggregate::Aggregator;
use super::files;
use super::spec::{Guarantee, ProcessorSpec, Start};
use super::status::{State, Status};
use super::txn::{Target, TaskTxn};
use crate::group::OffsetStore;
use crate::group::offsets::task_key;
use crate::state::{TaskState, changelog, snapshot};
use crate::topic::{Isolation, Partition, Topic, TopicError, Topics};
use crate::wasm::{CompiledModule, Guest, TaskRef, WasmRuntime};

mod commit;
use commit::{Committer, Pending, lock};

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
/// Payload bytes a task gathers for one transaction before it commits, whatever the interval:
/// bounds the memory of an open transaction.
const PENDING_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Everything a partition task needs, shared.
pub struct Ctx {
    pub name: String,
    pub spec: ProcessorSpec,
    pub status: Arc<Status>,
    pub runtime: WasmRuntime,
    /// The guest's module; none for a built-in aggregate.
    pub module: Option<CompiledModule>,
    /// The built-in aggregate, run natively instead of a guest.
    pub aggregate: Option<Aggregator>,
    /// The declarative join, run natively instead of a guest.
    pub join: Option<super::join::JoinSpec>,
    /// The tables it reads (the join's, the module's lookups), by name.
    pub tables: Vec<(String, Arc<crate::table::Table>)>,
    pub input: Arc<Topic>,
    /// The deployment's outputs, then the window's side topic for late records, if it has one.
    pub outputs: Vec<Arc<Topic>>,
    pub dead_letter: Option<Arc<Topic>>,
    pub topics: Topics,
    pub offsets: OffsetStore,
    /// Where versions before the offset store kept this input incarnation's offsets.
    pub legacy_offsets_dir: PathBuf,
    /// The state's changelog (one partition per input partition), when the processor has stores.
    pub changelog: Option<Arc<Topic>>,
    /// Where the tasks' state snapshots are (`P.snapshot`).
    pub state_dir: PathBuf,
    pub stop: CancellationToken,
    pub paused: watch::Receiver<bool>,
    /// The processor's share of the instance pool: at most this many of its partitions hold an
    /// instance at once.
    pub share: Arc<tokio::sync::Semaphore>,
}

impl Ctx {
    /// Every partition task `partition` may write to: all partitions of the outputs and the
    /// dead-letter topic, and its own changelog partition.
    fn targets(&self, partition: u32) -> Vec<Target> {
        let mut targets: Vec<Target> = self
            .outputs
            .iter()
            .chain(self.dead_letter.iter())
            .flat_map(|t| {
                (0..t.partitions.len() as u32).map(|partition| Target {
                    topic: Arc::clone(t),
                    partition,
                })
            })
            .collect();
        if let Some(c) = &self.changelog {
            targets.push(Target {
                topic: Arc::clone(c),
                partition,
            });
        }
        targets
    }
}

/// What one partition's runner reports while it runs.
#[derive(Debug, Default)]
pub struct PartitionGauges {
    /// Committed input offset.
    pub committed: AtomicU64,
    /// Linear memory of the partition's instance, bytes (0 while none runs).
    pub memory_bytes: AtomicU64,
    /// The task's state once restored, for readers (`GET .../state/...`, the status).
    pub state: std::sync::Mutex<Option<TaskRef>>,
}

impl PartitionGauges {
    pub fn state(&self) -> Option<TaskRef> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a task with no committed offset starts.
fn start_offset(ctx: &Ctx, partition: &Partition) -> u64 {
    let (start, _) = partition.bounds();
    let end = partition.end(Isolation::ReadCommitted);
    match ctx.spec.start {
        Start::Earliest => start,
        Start::Latest => end,
        Start::Offset(n) => n.clamp(start, end),
    }
}

/// The task's state as committed: its snapshot, then the changelog after it.
async fn restore_state(ctx: &Ctx, partition: u32, watermark: Option<i64>) -> Result<Option<TaskRef>, TopicError> {
    let Some(topic) = &ctx.changelog else { return Ok(None) };
    let started = Instant::now();
    let mut state = TaskState::new(&ctx.spec.all_stores(), ctx.spec.state_limits);
    state.lag = ctx
        .aggregate
        .as_ref()
        .and_then(|a| a.window.as_ref())
        .map_or(0, |w| w.lag);
    let path = ctx.state_dir.join(format!("{partition}.snapshot"));
    let id = topic.id.clone();
    let max_age = topic.config.delete_retention_ms;
    let (state, from) = tokio::task::spawn_blocking(move || {
        let from = snapshot::load(&path, &id, crate::topic::now_ms(), max_age, &mut state);
        (state, from)
    })
    .await
    .map_err(|_| TopicError::ShuttingDown)?;
    let mut state = state;
    let p = Arc::clone(topic.partition(partition)?);
    let (_, replayed) = changelog::replay(&p, from.unwrap_or(0), &mut state).await?;
    state.watermark = watermark;
    let keys: u64 = state.figures().iter().map(|f| f.keys).sum();
    tracing::info!(
        processor = %ctx.name,
        partition,
        keys,
        snapshot = from.is_some(),
        replayed,
        ms = started.elapsed().as_millis() as u64,
        "state restored"
    );
    Ok(Some(Arc::new(std::sync::Mutex::new(state))))
}

/// Starts the task's producer (settling what a crash left open) from its committed offset.
async fn start_task(ctx: &Ctx, partition: &Partition) -> Result<(Committer, u64), TopicError> {
    let id = partition.id;
    let legacy_path = ctx.legacy_offsets_dir.join(format!("{id}.offset"));
    let legacy = {
        let p = legacy_path.clone();
        tokio::task::spawn_blocking(move || files::read_offset(&p))
            .await
            .ok()
            .flatten()
    };
    let start = legacy.unwrap_or_else(|| start_offset(ctx, partition));
    let key = task_key(&ctx.name, id);
    let resumed = TaskTxn::start(&ctx.offsets, &ctx.topics, &key, &ctx.input, ctx.targets(id), start).await?;
    let task = restore_state(ctx, id, resumed.watermark).await?;
    if legacy.is_some() {
        // Moved into the offset store with the checkpoint just written.
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(legacy_path)).await;
    }
    let next = resumed.offset.unwrap_or(start);
    let committer = Committer {
        txn: resumed.txn,
        appender: None,
        pending: Pending::new(ctx, next, resumed.watermark),
        committed: next,
        last_checkpoint: Instant::now(),
        partition: id,
        task,
        since_snapshot: 0,
        last_snapshot: Instant::now(),
    };
    Ok((committer, next))
}

/// The loop of one input partition. Ends when the processor stops, fails, or its input goes.
pub async fn run_partition(ctx: Arc<Ctx>, partition: Arc<Partition>, gauges: Arc<PartitionGauges>) {
    let id = partition.id;
    let (mut committer, mut next) = match start_task(&ctx, &partition).await {
        Ok(s) => s,
        Err(e) => {
            ctx.status.set_error(format!("cannot start partition {id}: {e}"), true);
            return;
        }
    };
    gauges.committed.store(next, Ordering::Relaxed);
    *gauges.state.lock().unwrap_or_else(|e| e.into_inner()) = committer.task.clone();
    let task = committer.task.clone();
    let exactly_once = ctx.spec.guarantee == Guarantee::ExactlyOnce;
    let mut guest: Option<Guest> = None;
    // When the instance was made: a busy partition gives it up after a slice if others wait.
    let mut held_since = Instant::now();
    let mut trap_streak = 0u32;
    let mut hw_changes = partition.watch();
    let mut paused = ctx.paused.clone();
    let mut arrivals = ctx.runtime.pool().arrivals();
    // Whether the loop ended cleanly (what is pending may be committed).
    let mut clean = true;
    // When input last came, and the task's clock then: a window's `idle_ms` moves the clock
    // on with the wall clock from there.
    let mut last_input = (Instant::now(), task.as_ref().and_then(|t| lock(t).watermark));
    loop {
        if ctx.stop.is_cancelled() {
            break;
        }
        if let Err(fatal) = committer.flush(&ctx, &gauges, false).await {
            fail(&ctx, id, fatal);
            clean = false;
            break;
        }
        if *paused.borrow_and_update() {
            if let Err(fatal) = committer.flush(&ctx, &gauges, true).await {
                fail(&ctx, id, fatal);
                clean = false;
                break;
            }
            tokio::select! {
                r = paused.changed() => { if r.is_err() { break } }
                () = ctx.stop.cancelled() => break,
            }
            continue;
        }
        hw_changes.borrow_and_update();
        let (start, _) = partition.bounds();
        let end = partition.end(Isolation::ReadCommitted);
        if next < start {
            ctx.status.log(
                "warn",
                Some(id),
                format!("offsets {next}..{start} were deleted by retention before they were processed"),
            );
            next = start;
        }
        if next >= end {
            // Caught up: commit what was gathered, then wait. Make way at once if another
            // instance waits for room, else after a while.
            if let Err(fatal) = committer.flush(&ctx, &gauges, true).await {
                fail(&ctx, id, fatal);
                clean = false;
                break;
            }
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
            // A processing-time timer wakes the task when it is due.
            let timer_due = task.as_ref().and_then(|t| lock(t).next_processing_timer());
            let timer = async move {
                match timer_due {
                    Some(at) => {
                        let wait = at.saturating_sub(crate::topic::now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            // Event-time timers still due (more than one round of them came due): fire on.
            let timers_due = task.as_ref().is_some_and(|t| {
                let s = lock(t);
                matches!((s.next_event_timer(), s.event_watermark()), (Some(at), Some(w)) if at <= w)
            });
            if timers_due {
                if let Err(fatal) = run_timers(&ctx, id, &mut guest, task.as_ref(), &mut committer, next).await {
                    fail(&ctx, id, fatal);
                    clean = false;
                    break;
                }
                continue;
            }
            let quiet_due = quiet_wake(&ctx, task.as_ref(), last_input);
            let quiet = async move {
                match quiet_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = quiet => {
                    advance_quiet_clock(&ctx, task.as_ref(), last_input, &mut committer);
                    if let Err(fatal) = run_timers(&ctx, id, &mut guest, task.as_ref(), &mut committer, next).await {
                        fail(&ctx, id, fatal);
                        clean = false;
                        break;
                    }
                }
                () = timer => {
                    if let Err(fatal) = run_timers(&ctx, id, &mut guest, task.as_ref(), &mut committer, next).await {
                        fail(&ctx, id, fatal);
                        clean = false;
                        break;
                    }
                }
                () = someone_waits => {
                    guest = None;
                    gauges.memory_bytes.store(0, Ordering::Relaxed);
                }
                r = hw_changes.changed() => { if r.is_err() { break } }
                _ = paused.changed() => {}
                () = ctx.stop.cancelled() => break,
                name = table_gone(&ctx) => {
                    let table = ctx.tables.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
                    let deleted = table.is_some_and(|t| ctx.topics.get(&name).ok().is_none_or(|now| now.id != t.topic.id));
                    if table.is_some_and(|t| t.too_large()) {
                        ctx.status.set_error(format!("table '{name}' was dropped: it passed limits.tables_bytes_max"), true);
                    } else if deleted {
                        ctx.status.set_error(format!("table '{name}' was deleted; create it again and redeploy the processor"), true);
                    }
                    break;
                }
                () = ctx.input.stop.cancelled() => {
                    // Its readers stop when it is deleted, and when the broker stops.
                    let deleted = ctx.topics.get(&ctx.input.name).ok().is_none_or(|t| t.id != ctx.input.id);
                    if deleted {
                        ctx.status.set_error(format!("input topic '{}' was deleted", ctx.input.name), true);
                    }
                    break;
                }
                () = idle => {
                    guest = None;
                    gauges.memory_bytes.store(0, Ordering::Relaxed);
                }
            }
            continue;
        }
        // Input after a quiet spell is judged against the clock the quiet time moved on.
        advance_quiet_clock(&ctx, task.as_ref(), last_input, &mut committer);
        let chunk = match partition.read(next, READ_BYTES, Isolation::ReadCommitted).await {
            Ok(c) => c,
            Err(e) => {
                ctx.status
                    .set_error(format!("cannot read {}/{id}: {e}", ctx.input.name), true);
                clean = false;
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
            r = ctx.process(id, &mut guest, &chunk, task.as_ref()) => Some(Some(r)),
        };
        if !matches!(outcome, Some(Some(_))) {
            // The call was dropped mid-way: whatever it wrote goes.
            if let Some(t) = &task {
                lock(t).rollback_batch();
            }
        }
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
                fail(&ctx, id, fatal);
                clean = false;
                break;
            }
        };
        let traps = processed.traps;
        if processed.count > 0 {
            last_input = (Instant::now(), task.as_ref().and_then(|t| lock(t).watermark));
        }
        if let Some(ts) = processed.max_timestamp {
            committer.pending.watermark = Some(committer.pending.watermark.map_or(ts, |w| w.max(ts)));
        }
        let delivery = ctx.deliver(id, processed);
        next = delivery.next_offset;
        let timers_next = next;
        let stop = delivery.stop.clone();
        let delivered = if exactly_once {
            committer.pending.add(&ctx, delivery);
            Ok(())
        } else {
            committer.append_now(&ctx, delivery).await
        };
        if let Err(fatal) = delivered {
            fail(&ctx, id, fatal);
            clean = false;
            break;
        }
        if stop.is_none()
            && let Err(fatal) = run_timers(&ctx, id, &mut guest, task.as_ref(), &mut committer, timers_next).await
        {
            fail(&ctx, id, fatal);
            clean = false;
            break;
        }
        if let Some(msg) = stop {
            // Commit up to the record it stopped at; the state turns `failed` only then, so
            // whoever sees `failed` also sees the offset it stopped at.
            ctx.status.log("error", Some(id), msg.clone());
            ctx.status.set_error(msg, false);
            if let Err(fatal) = committer.flush(&ctx, &gauges, true).await {
                fail(&ctx, id, fatal);
                clean = false;
                break;
            }
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
    drop(guest);
    if !clean && let Some(a) = committer.appender.take() {
        // Nothing of this task is appended once it has ended (a new one may start at once).
        a.stop().await;
    }
    if clean {
        // What was processed to the end goes in; then a checkpoint, so the next start finds
        // nothing open and scans nothing.
        let flushed = match committer.flush(&ctx, &gauges, true).await {
            Ok(()) => committer.snapshot(&ctx, true).await,
            Err(e) => Err(e),
        };
        let finished = match flushed {
            Ok(()) => {
                let offset = committer.committed;
                let watermark = committer.pending.watermark;
                committer.txn.finish(offset, watermark).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = finished {
            tracing::warn!(processor = %ctx.name, partition = id, error = %e, "could not commit on stop; the next start goes on from the last commit");
        }
    } else if let Err(e) = committer.txn.abandon(&ctx.topics).await {
        // Left to the next start (or the broker's restart) to settle.
        tracing::warn!(processor = %ctx.name, partition = id, error = %e, "cannot settle the failed task's open transaction yet");
    }
    if ctx.status.state().0 == State::Running && *ctx.paused.borrow() {
        ctx.status.set_state(State::Paused);
    }
}

/// Fires the task's due timers, a batch at a time, adding what they emit to the next commit.
async fn run_timers(
    ctx: &Ctx,
    partition: u32,
    guest: &mut Option<Guest>,
    task: Option<&TaskRef>,
    committer: &mut Committer,
    next: u64,
) -> Result<(), String> {
    let Some(task) = task else { return Ok(()) };
    for _ in 0..16 {
        let Some(processed) = ctx.fire_timers(partition, guest, task, next).await? else {
            return Ok(());
        };
        let delivery = ctx.deliver(partition, processed);
        if ctx.spec.guarantee == Guarantee::ExactlyOnce {
            committer.pending.add(ctx, delivery);
        } else {
            committer.append_now(ctx, delivery).await?;
        }
    }
    Ok(())
}

/// Once a windowed task has had no input for its `idle_ms`, moves its clock on with the wall
/// clock from where its last input left it (never back), for the next commit too.
fn advance_quiet_clock(
    ctx: &Ctx,
    task: Option<&TaskRef>,
    last_input: (Instant, Option<i64>),
    committer: &mut Committer,
) {
    let Some(idle) = ctx
        .aggregate
        .as_ref()
        .and_then(|a| a.window.as_ref())
        .and_then(|w| w.idle)
    else {
        return;
    };
    let (since, clock) = last_input;
    let quiet = since.elapsed().as_millis() as i64;
    let (Some(t), Some(clock)) = (task, clock) else { return };
    if quiet < idle {
        return;
    }
    let moved = clock.saturating_add(quiet);
    let mut s = lock(t);
    s.watermark = Some(s.watermark.map_or(moved, |w| w.max(moved)));
    committer.pending.watermark = s.watermark;
}

/// Resolves with a table's name when it stops following its topic (the topic was deleted, the
/// broker stops, or the table passed the tables' memory limit).
async fn table_gone(ctx: &Ctx) -> String {
    if ctx.tables.is_empty() {
        return std::future::pending().await;
    }
    let stops = ctx.tables.iter().map(|(name, t)| {
        Box::pin(async move {
            t.gone.cancelled().await;
            name.clone()
        })
    });
    futures::future::select_all(stops).await.0
}

/// When a quiet task's clock, moving on with the wall clock after the window's `idle_ms`,
/// reaches its next event-time timer; `None` without `idle_ms`, a clock or such a timer.
fn quiet_wake(ctx: &Ctx, task: Option<&TaskRef>, last_input: (Instant, Option<i64>)) -> Option<Instant> {
    let window = ctx.aggregate.as_ref()?.window.as_ref()?;
    let idle = window.idle?;
    let (since, clock) = last_input;
    let clock = clock?;
    let (due, lag) = {
        let s = lock(task?);
        (s.next_event_timer()?, s.lag)
    };
    let wait = idle.max(due.saturating_add(lag).saturating_sub(clock)).max(0) as u64;
    Some(since + Duration::from_millis(wait))
}

fn fail(ctx: &Ctx, partition: u32, fatal: String) {
    ctx.status.log("error", Some(partition), fatal.clone());
    ctx.status.set_error(fatal, true);
    ctx.stop.cancel();
}
