//! One partition of a topic: its log behind a lock held briefly, the high watermark readers
//! wait on, figures anyone may read without that lock, and the channel to its group-commit
//! writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{mpsc, oneshot, watch};

use super::TopicError;
use crate::log::batch::{BatchKind, Producer};
use crate::log::{AbortedTxn, LogError, NewRecord, PartitionLog, Unclosed};

/// One producer's records for this partition, waiting for the writer.
#[derive(Debug)]
pub struct AppendRequest {
    pub records: Vec<NewRecord>,
    pub kind: BatchKind,
    /// For an ABORT marker of a transaction a crash left open: where it began.
    pub aborted_from: Option<u64>,
    pub reply: oneshot::Sender<Result<u64, TopicError>>,
}

/// How much of a partition a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Records of committed transactions and records outside transactions, up to the last
    /// stable offset (the default).
    #[default]
    ReadCommitted,
    /// Everything up to the high watermark, open and aborted transactions included.
    ReadUncommitted,
}

/// Whole batches read from a partition, and what a reader needs to tell which of their
/// records it may see (see [`super::reader`]).
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// The offset asked for: records below it are not the reader's.
    pub from: u64,
    /// Records at or past it are not visible (the last stable offset or the high watermark).
    pub limit: u64,
    /// Aborted transactions overlapping the chunk (none for read-uncommitted).
    pub aborted: Vec<AbortedTxn>,
}

/// Figures of the log kept outside its lock, so that describing a topic or answering a
/// request's bounds never waits behind a write of the writer.
#[derive(Debug, Default)]
struct Figures {
    log_start_offset: AtomicU64,
    size_bytes: AtomicU64,
    segments: AtomicU64,
}

/// A partition's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    pub log_start_offset: u64,
    pub high_watermark: u64,
    pub last_stable_offset: u64,
    pub size_bytes: u64,
    pub segments: u64,
}

#[derive(Debug)]
pub struct Partition {
    pub id: u32,
    pub topic: String,
    log: RwLock<PartitionLog>,
    high_watermark: watch::Sender<u64>,
    /// The last stable offset, moved with the high watermark (a marker is an append).
    stable: AtomicU64,
    figures: Figures,
    writer: mpsc::Sender<AppendRequest>,
    /// Set when an fsync failed: what is on disk is no longer known, so appends stop.
    failed: AtomicBool,
    /// Set when the topic is deleted: appends answer "deleted" rather than "shutting down".
    deleted: AtomicBool,
}

impl Partition {
    pub fn new(id: u32, topic: String, log: PartitionLog, writer: mpsc::Sender<AppendRequest>) -> Self {
        let hw = log.high_watermark();
        let this = Self {
            id,
            topic,
            high_watermark: watch::Sender::new(hw),
            stable: AtomicU64::new(log.stable_offset()),
            figures: Figures::default(),
            writer,
            failed: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            log: RwLock::new(log),
        };
        this.refresh(&this.log());
        this
    }

    pub fn log(&self) -> RwLockReadGuard<'_, PartitionLog> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn log_mut(&self) -> RwLockWriteGuard<'_, PartitionLog> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies the log's figures out of its lock; call after every change to the log.
    pub fn refresh(&self, log: &PartitionLog) {
        let f = &self.figures;
        f.log_start_offset.store(log.log_start_offset(), Ordering::Relaxed);
        f.size_bytes.store(log.size_bytes(), Ordering::Relaxed);
        f.segments.store(log.segment_count() as u64, Ordering::Relaxed);
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// One past the last record readers of committed records may see.
    pub fn stable_offset(&self) -> u64 {
        self.stable.load(Ordering::SeqCst).min(self.high_watermark())
    }

    pub(super) fn set_high_watermark(&self, hw: u64, stable: u64) {
        self.stable.store(stable, Ordering::SeqCst);
        self.high_watermark.send_if_modified(|cur| {
            let moved = hw != *cur;
            *cur = hw;
            moved
        });
    }

    pub(super) fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Whether an fsync failed here (appends stop until a restart reads the log back).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    pub(super) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::SeqCst);
    }

    /// Appends `records` as one batch and returns its base offset once the topic's fsync policy
    /// holds for it.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<u64, TopicError> {
        self.append_as(records, BatchKind::Plain, None).await
    }

    /// Appends `records` to `producer`'s open transaction (opening it here if needed).
    pub async fn append_transactional(&self, records: Vec<NewRecord>, producer: Producer) -> Result<u64, TopicError> {
        self.append_as(records, BatchKind::Transactional(producer), None).await
    }

    /// Ends `producer`'s transaction here with a COMMIT or ABORT marker; returns its offset.
    /// `aborted_from`: where a transaction a crash left open began (see
    /// [`Self::unclosed_transaction`]).
    pub async fn append_marker(
        &self,
        producer: Producer,
        commit: bool,
        aborted_from: Option<u64>,
    ) -> Result<u64, TopicError> {
        self.append_as(Vec::new(), BatchKind::Marker { producer, commit }, aborted_from)
            .await
    }

    /// The first offset of `producer_id`'s open transaction here, if this process saw it begin.
    pub fn open_transaction(&self, producer_id: i64) -> Option<u64> {
        self.log().open_transaction(producer_id)
    }

    /// Fences `producer`'s older epochs here: their appends are refused from now on (off the
    /// async threads: the writer may hold the log's lock for a write).
    pub async fn fence(self: &Arc<Self>, producer: Producer) {
        let me = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || me.log_mut().fence(producer)).await;
    }

    /// Where `producer_id`'s transaction that no marker closed begins, scanning from `from`
    /// (off the async threads). See [`PartitionLog::unclosed_transaction`].
    pub async fn unclosed_transaction(self: &Arc<Self>, producer_id: i64, from: u64) -> Result<Unclosed, TopicError> {
        let me = Arc::clone(self);
        // The lock is taken per chunk read: a long scan never holds the writer up.
        tokio::task::spawn_blocking(move || {
            crate::log::scan_unclosed(producer_id, from, &mut |at, out| {
                let log = me.log();
                let at = at.max(log.log_start_offset());
                if at >= log.high_watermark() {
                    return Ok(false);
                }
                log.read(at, 1024 * 1024, out).map(|()| true)
            })
        })
        .await
        .map_err(|_| TopicError::ShuttingDown)?
        .map_err(TopicError::from)
    }

    async fn append_as(
        &self,
        records: Vec<NewRecord>,
        kind: BatchKind,
        aborted_from: Option<u64>,
    ) -> Result<u64, TopicError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(self.storage_failed());
        }
        let (reply, rx) = oneshot::channel();
        let gone = || {
            if self.deleted.load(Ordering::SeqCst) {
                TopicError::Deleted(self.topic.clone())
            } else {
                TopicError::ShuttingDown
            }
        };
        self.writer
            .send(AppendRequest {
                records,
                kind,
                aborted_from,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    fn storage_failed(&self) -> TopicError {
        TopicError::StorageFailed {
            topic: self.topic.clone(),
            partition: self.id,
            reason: "an earlier fsync failed; restart the broker to recover the partition".into(),
        }
    }

    /// Reads whole batches from `offset` on (see [`PartitionLog::read`]) off the async threads,
    /// with what `isolation` lets a reader see of them.
    pub async fn read(
        self: &Arc<Self>,
        offset: u64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<Chunk, TopicError> {
        let me = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || {
            let log = me.log();
            let mut bytes = Vec::new();
            log.read(offset, max_bytes, &mut bytes)?;
            let (limit, aborted) = match isolation {
                Isolation::ReadUncommitted => (log.high_watermark(), Vec::new()),
                Isolation::ReadCommitted => {
                    let limit = log.stable_offset();
                    (limit, log.aborted_between(offset, limit))
                }
            };
            Ok(Chunk {
                bytes,
                from: offset,
                limit,
                aborted,
            })
        });
        match read.await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            })) => Err(TopicError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            }),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(TopicError::ShuttingDown),
        }
    }

    /// The first offset whose record may be at or after `timestamp_ms` (a lower bound to read
    /// from; the end when every record is older), off the async threads.
    pub async fn offset_for_timestamp(self: &Arc<Self>, timestamp_ms: i64) -> Result<u64, TopicError> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.log().offset_for_timestamp(timestamp_ms))
            .await
            .map_err(|_| TopicError::ShuttingDown)?
            .map_err(TopicError::from)
    }

    /// The offset of the first record (in offset order) a reader with `isolation` sees whose
    /// timestamp is at or after `timestamp_ms`, or the end when there is none: Kafka's
    /// ListOffsets by time. Reads forward from the time index's lower bound.
    pub async fn first_offset_at_or_after(
        self: &Arc<Self>,
        timestamp_ms: i64,
        isolation: Isolation,
    ) -> Result<u64, TopicError> {
        const CHUNK_BYTES: usize = 1 << 20;
        let mut from = self.offset_for_timestamp(timestamp_ms).await?;
        loop {
            let chunk = self.read(from, CHUNK_BYTES, isolation).await?;
            let mut visible = chunk.visible();
            if let Some(r) = visible.by_ref().find(|r| r.timestamp >= timestamp_ms) {
                return Ok(r.offset);
            }
            let next = visible.next_offset();
            if chunk.bytes.is_empty() || chunk.reached_limit(next) || next <= from {
                return Ok(chunk.limit);
            }
            from = next;
        }
    }

    /// The end a reader with `isolation` reads to: the last stable offset or the high watermark.
    pub fn end(&self, isolation: Isolation) -> u64 {
        match isolation {
            Isolation::ReadCommitted => self.stable_offset(),
            Isolation::ReadUncommitted => self.high_watermark(),
        }
    }

    /// `(log start offset, high watermark)`, without taking the log's lock.
    pub fn bounds(&self) -> (u64, u64) {
        let s = self.stats();
        (s.log_start_offset, s.high_watermark)
    }

    /// The partition's figures, without taking the log's lock.
    pub fn stats(&self) -> PartitionStats {
        let f = &self.figures;
        let high_watermark = self.high_watermark();
        PartitionStats {
            log_start_offset: f.log_start_offset.load(Ordering::Relaxed).min(high_watermark),
            high_watermark,
            last_stable_offset: self.stable_offset(),
            size_bytes: f.size_bytes.load(Ordering::Relaxed),
            segments: f.segments.load(Ordering::Relaxed),
        }
    }
}
