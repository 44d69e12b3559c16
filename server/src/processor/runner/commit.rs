//! A task's commits: what its batches produced, gathered ([`Pending`]), and how it goes in
//! ([`Committer`]): one transaction per commit under `exactly_once`, background appends and
//! offset checkpoints under `at_least_once`, and the state's changelog records and snapshots
//! with either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::appender::Appender;
use super::super::deliver::{Counts, Delivery};
use super::super::spec::Guarantee;
use super::super::txn::{TaskTxn, TopicWrites};
use super::{Ctx, PENDING_BYTES_MAX, PartitionGauges};
use crate::log::NewRecord;
use crate::state::{TaskState, changelog, snapshot};
use crate::topic::{Topic, TopicError};
use crate::wasm::TaskRef;

/// Records routed to one topic's partitions.
type Routed = BTreeMap<u32, Vec<NewRecord>>;

/// What a task has gathered for its next commit.
#[derive(Default)]
pub(super) struct Pending {
    /// Per output topic (the dead-letter topic last).
    pub(super) writes: Vec<Routed>,
    pub(super) counts: Counts,
    pub(super) last_error: Option<String>,
    pub(super) bytes: usize,
    /// When the first batch of it was done.
    pub(super) since: Option<Instant>,
    /// Input offset to commit with it.
    pub(super) offset: u64,
    pub(super) watermark: Option<i64>,
    /// Whether a batch was added since the last commit.
    pub(super) dirty: bool,
}

fn route(topic: &Topic, records: Vec<NewRecord>, into: &mut Routed) -> usize {
    let spread = topic.next_spread_partition();
    let mut bytes = 0;
    for r in records {
        bytes += r.payload_bytes();
        into.entry(topic.route(None, r.key.as_deref(), spread))
            .or_default()
            .push(r);
    }
    bytes
}

impl Pending {
    pub(super) fn new(ctx: &Ctx, offset: u64, watermark: Option<i64>) -> Self {
        Self {
            writes: vec![Routed::new(); ctx.outputs.len() + 1],
            offset,
            watermark,
            ..Self::default()
        }
    }

    pub(super) fn add(&mut self, ctx: &Ctx, d: Delivery) {
        for (i, records) in d.outputs.into_iter().enumerate() {
            self.bytes += route(&ctx.outputs[i], records, &mut self.writes[i]);
        }
        if let Some(dlq) = &ctx.dead_letter {
            let last = self.writes.len() - 1;
            self.bytes += route(dlq, d.letters, &mut self.writes[last]);
        }
        self.counts.add(&d.counts);
        if d.last_error.is_some() {
            self.last_error = d.last_error;
        }
        self.offset = d.next_offset;
        self.since.get_or_insert_with(Instant::now);
        self.dirty = true;
    }

    pub(super) fn due(&self, interval: Duration) -> bool {
        self.bytes >= PENDING_BYTES_MAX || self.since.is_some_and(|t| t.elapsed() >= interval)
    }

    /// The writes, per topic, and a fresh pending set for what follows.
    pub(super) fn take(&mut self, ctx: &Ctx) -> (Vec<TopicWrites>, Counts, Option<String>) {
        let writes = std::mem::replace(&mut self.writes, vec![Routed::new(); ctx.outputs.len() + 1]);
        let topics = ctx.outputs.iter().chain(ctx.dead_letter.iter());
        let out = topics
            .zip(writes)
            .map(|(t, w)| (Arc::clone(t), w.into_iter().collect::<Vec<_>>()))
            .filter(|(_, w)| !w.is_empty())
            .collect();
        let counts = std::mem::take(&mut self.counts);
        self.bytes = 0;
        self.since = None;
        self.dirty = false;
        (out, counts, self.last_error.take())
    }
}

/// The task's commits: a transaction per commit (`exactly_once`) or plain appends and
/// checkpoints (`at_least_once`).
pub(super) struct Committer {
    pub(super) txn: TaskTxn,
    /// `at_least_once`: the outputs' appends, in the background.
    pub(super) appender: Option<Appender>,
    pub(super) pending: Pending,
    pub(super) committed: u64,
    pub(super) last_checkpoint: Instant,
    /// The task's input partition.
    pub(super) partition: u32,
    /// The task's state, when the processor has stores.
    pub(super) task: Option<TaskRef>,
    /// Changelog records written since the last snapshot.
    pub(super) since_snapshot: u64,
    pub(super) last_snapshot: Instant,
}

/// Changelog records a task writes before it snapshots its state, at least: a snapshot costs a
/// pass over every key, so it follows at least as many writes as there are keys (a restart
/// then replays at most about twice the keys).
const SNAPSHOT_RECORDS_MIN: u64 = 100_000;
/// Longest time between snapshots of a state that changes: a snapshot is usable only while it
/// is younger than the changelog's delete retention (a day), and a recent one keeps restarts
/// short.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(3600);

pub(super) fn lock(task: &TaskRef) -> std::sync::MutexGuard<'_, TaskState> {
    task.lock().unwrap_or_else(|e| e.into_inner())
}

impl Committer {
    /// Commits what is pending, if anything: outputs and offset together. `visible`: wait
    /// until readers of committed records see the outputs (else that happens while the task
    /// goes on). `Err` is fatal.
    pub(super) async fn commit(&mut self, ctx: &Ctx, gauges: &PartitionGauges, visible: bool) -> Result<(), String> {
        if !self.pending.dirty {
            return Ok(());
        }
        let (offset, watermark) = (self.pending.offset, self.pending.watermark);
        let (mut writes, counts, last_error) = self.pending.take(ctx);
        let changes = self.changelog_writes(ctx);
        let changed = changes.as_ref().map_or(0, |(_, g)| g[0].1.len() as u64);
        writes.extend(changes);
        let failed = |e: TopicError| format!("could not write output: {e}");
        self.txn.commit(writes, offset, watermark).await.map_err(failed)?;
        if visible {
            self.txn.settle_markers().await.map_err(failed)?;
        }
        self.since_snapshot += changed;
        self.done(ctx, gauges, offset, counts, last_error);
        Ok(())
    }

    /// The changelog records of what the state changed since the last commit.
    pub(super) fn changelog_writes(&self, ctx: &Ctx) -> Option<TopicWrites> {
        let (task, topic) = (self.task.as_ref()?, ctx.changelog.as_ref()?);
        let changes = lock(task).take_changes();
        if changes.is_empty() {
            return None;
        }
        let records = changes.into_iter().map(changelog::record).collect();
        Some((Arc::clone(topic), vec![(self.partition, records)]))
    }

    /// Snapshots the state when enough was written since the last one (`force`: if anything
    /// was): after a commit, with its markers down, so the snapshot holds what the changelog
    /// holds up to its end.
    pub(super) async fn snapshot(&mut self, ctx: &Ctx, force: bool) -> Result<(), String> {
        let (Some(task), Some(topic)) = (&self.task, &ctx.changelog) else {
            return Ok(());
        };
        // Only what is committed: right after a commit, nothing pending.
        if self.pending.dirty || lock(task).has_changes() {
            return Ok(());
        }
        let keys: u64 = lock(task).figures().iter().map(|f| f.keys).sum();
        let due = if force {
            self.since_snapshot > 0
        } else {
            self.since_snapshot >= SNAPSHOT_RECORDS_MIN.max(keys)
                || (self.since_snapshot > 0 && self.last_snapshot.elapsed() >= SNAPSHOT_INTERVAL)
        };
        if !due {
            return Ok(());
        }
        self.txn
            .settle_markers()
            .await
            .map_err(|e| format!("could not write output: {e}"))?;
        let partition = self.partition;
        let next = topic.partitions[partition as usize].high_watermark();
        let path = ctx.state_dir.join(format!("{partition}.snapshot"));
        let started = Instant::now();
        let (task_ref, id) = (Arc::clone(task), topic.id.clone());
        // Encoded off the async threads: a large state takes a while to copy.
        let written = tokio::task::spawn_blocking(move || {
            let bytes = snapshot::encode(&lock(&task_ref), &id, next, crate::topic::now_ms());
            snapshot::write(&path, &bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.since_snapshot = 0;
                self.last_snapshot = Instant::now();
                tracing::debug!(processor = %ctx.name, partition, keys, ms = started.elapsed().as_millis() as u64, "state snapshot written");
            }
            // Only an optimization: the changelog still has everything.
            Ok(Err(e)) => {
                tracing::warn!(processor = %ctx.name, partition, error = %e, "cannot write the state snapshot")
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// `at_least_once`: appends a batch's records now; the offset follows at checkpoints.
    pub(super) async fn append_now(&mut self, ctx: &Ctx, d: Delivery) -> Result<(), String> {
        self.pending.add(ctx, d);
        let (writes, counts, last_error) = self.pending.take(ctx);
        self.pending.dirty = true;
        self.appender.get_or_insert_with(Appender::start).send(writes).await?;
        counts.apply(&ctx.status);
        if let Some(e) = last_error {
            ctx.status.set_error(e, false);
        }
        Ok(())
    }

    /// `at_least_once`: checkpoints the offset when the interval has passed (or `now`).
    pub(super) async fn checkpoint(&mut self, ctx: &Ctx, gauges: &PartitionGauges, now: bool) -> Result<(), String> {
        let interval = Duration::from_millis(ctx.spec.commit_interval_ms);
        if !self.pending.dirty || !(now || self.last_checkpoint.elapsed() >= interval) {
            return Ok(());
        }
        // The offset covers only outputs on disk.
        if let Some(a) = &mut self.appender {
            a.flushed().await?;
        }
        let (offset, watermark) = (self.pending.offset, self.pending.watermark);
        let failed = |e: TopicError| format!("cannot commit the offset: {e}");
        match self.changelog_writes(ctx) {
            // State and offset still commit together: outputs alone may repeat.
            Some(changes) => {
                let n = changes.1[0].1.len() as u64;
                self.txn
                    .commit(vec![changes], offset, watermark)
                    .await
                    .map_err(failed)?;
                // Markers follow in the background, as under exactly_once.
                if now {
                    self.txn.settle_markers().await.map_err(failed)?;
                }
                self.since_snapshot += n;
            }
            None => self.txn.checkpoint(offset, watermark).await.map_err(failed)?,
        }
        self.pending.dirty = false;
        self.last_checkpoint = Instant::now();
        self.done(ctx, gauges, offset, Counts::default(), None);
        Ok(())
    }

    pub(super) fn done(
        &mut self,
        ctx: &Ctx,
        gauges: &PartitionGauges,
        offset: u64,
        counts: Counts,
        last_error: Option<String>,
    ) {
        counts.apply(&ctx.status);
        if let Some(e) = last_error {
            ctx.status.set_error(e, false);
        }
        self.committed = offset;
        gauges.committed.store(offset, Ordering::Relaxed);
    }

    /// Commits what is due (or everything, when `now`).
    pub(super) async fn flush(&mut self, ctx: &Ctx, gauges: &PartitionGauges, now: bool) -> Result<(), String> {
        match ctx.spec.guarantee {
            Guarantee::ExactlyOnce => {
                if now || self.pending.due(Duration::from_millis(ctx.spec.commit_interval_ms)) {
                    self.commit(ctx, gauges, now).await?;
                }
            }
            Guarantee::AtLeastOnce => self.checkpoint(ctx, gauges, now).await?,
        }
        self.snapshot(ctx, false).await
    }
}
