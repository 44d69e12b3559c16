//! Topics: named sets of partitions, each a durable log with its own group-commit writer.
//!
//! [`Topics`] is the cheap-to-clone handle the HTTP layer (and later the processors) holds. A
//! topic lives in `DATA/topics/NAME/` as `topic.json` (its settings, written atomically) and one
//! directory per partition (`0/`, `1/`, ...). Creation builds the whole directory under
//! `DATA/staging/` and renames it into place; deletion renames it to `DATA/trash/` first, so a
//! crash never leaves half a topic behind.

mod append;
pub mod compact;
pub mod partition;
pub mod partitioner;
pub mod reader;
pub mod spec;
mod store;
mod writer;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::log::{FsRef, LogConfig, LogError, PartitionLog, RealFs};
use crate::metrics::{Metrics, TopicCounters};
pub use append::{AppendMode, Placed};
pub use partition::{Chunk, Isolation, Partition, PartitionStats};
pub use spec::{CleanupPolicy, FsyncPolicy, TopicConfig};

/// Append requests that may wait for a partition's writer before producers feel backpressure.
const WRITER_QUEUE_REQUESTS: usize = 4096;

/// Errors of topic operations.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid topic settings: {0}")]
    InvalidConfig(String),
    #[error(
        "topic '{0}' belongs to the broker (names starting with '__' are its offset store and processors' state changelogs): it can be read, not created, written or deleted over the API"
    )]
    Internal(String),
    #[error("topic '{0}' already exists")]
    Exists(String),
    #[error("topic '{0}' does not exist")]
    NotFound(String),
    #[error("topic '{0}' was deleted")]
    Deleted(String),
    #[error("topic '{topic}' is being {action}; retry when that is done")]
    Busy { topic: String, action: &'static str },
    #[error("topic '{topic}' has no partition {partition}; it has {partitions}")]
    PartitionNotFound {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error(
        "offset {offset} is out of range: the partition starts at {log_start_offset} and its high watermark is {high_watermark}"
    )]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
    #[error(
        "no space left on the disk holding topic '{topic}' partition {partition}; nothing was written. Free space (delete topics, lower retention) and retry ({detail})"
    )]
    DiskFull {
        topic: String,
        partition: u32,
        detail: String,
    },
    #[error("storage failed for topic '{topic}' partition {partition}: {reason}")]
    StorageFailed {
        topic: String,
        partition: u32,
        reason: String,
    },
    #[error("{0}")]
    Exhausted(String),
    #[error("cannot write to topic '{topic}' partition {partition}: {detail}")]
    Fenced {
        topic: String,
        partition: u32,
        detail: String,
    },
    #[error("storage error")]
    Log(#[source] Arc<LogError>),
    #[error("the broker is shutting down")]
    ShuttingDown,
}

impl From<LogError> for TopicError {
    fn from(e: LogError) -> Self {
        Self::Log(Arc::new(e))
    }
}

impl TopicError {
    /// Whether an append that answered this wrote nothing for certain (else what reached the
    /// disk is known only once recovery reads it back).
    pub fn wrote_nothing(&self) -> bool {
        match self {
            Self::InvalidName(_)
            | Self::InvalidConfig(_)
            | Self::Internal(_)
            | Self::Exists(_)
            | Self::NotFound(_)
            | Self::Deleted(_)
            | Self::Busy { .. }
            | Self::PartitionNotFound { .. }
            | Self::OffsetOutOfRange { .. }
            | Self::DiskFull { .. }
            | Self::Exhausted(_)
            | Self::Fenced { .. } => true,
            Self::StorageFailed { .. } | Self::Log(_) | Self::ShuttingDown => false,
        }
    }

    /// Whether the error is a full disk, directly or through the log.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull { .. } => true,
            Self::Log(e) => e.is_disk_full(),
            _ => false,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh topic incarnation id: 16 hex digits from the OS's randomness (through std's
/// randomly keyed hasher) and the clock.
fn new_topic_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// Server-wide settings the topic layer needs.
#[derive(Debug, Clone)]
pub struct TopicsConfig {
    pub data_dir: PathBuf,
    pub index_interval_bytes: u32,
    pub index_bytes_max: usize,
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    /// This incarnation of the name: a topic deleted and created again gets a new id, so that
    /// offsets and resume tokens of the old one are never taken for the new one's.
    pub id: String,
    pub config: TopicConfig,
    pub created_ms: i64,
    pub partitions: Vec<Arc<Partition>>,
    pub counters: TopicCounters,
    /// Bumped whenever any partition's high watermark moves: all-partition subscribers wait on it.
    changed: watch::Sender<u64>,
    /// Round-robin cursor for records with neither key nor partition.
    next_partition: AtomicU32,
    /// Fires when the topic is deleted or the broker begins to stop: SSE streams and
    /// long-polls end.
    pub stop: CancellationToken,
    /// Fires when the topic is deleted or once the broker has answered its last request: the
    /// partition writers commit what is queued, flush and end.
    writer_stop: CancellationToken,
    writers: Mutex<Vec<JoinHandle<()>>>,
}

impl Topic {
    pub fn partition(&self, id: u32) -> Result<&Arc<Partition>, TopicError> {
        self.partitions
            .get(id as usize)
            .ok_or_else(|| TopicError::PartitionNotFound {
                topic: self.name.clone(),
                partition: id,
                partitions: self.partitions.len() as u32,
            })
    }

    /// A receiver that changes whenever any partition gets new records.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The partition for a keyless, unpinned request: requests rotate, all records of one
    /// request stay together (fewer, larger batches).
    pub fn next_spread_partition(&self) -> u32 {
        self.next_partition.fetch_add(1, Ordering::Relaxed) % self.partitions.len() as u32
    }

    /// Whether the topic was deleted (or the broker is stopping).
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops the writers once they have committed what is queued, and waits for them.
    async fn stop_writers(&self) {
        self.writer_stop.cancel();
        let handles = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|e| e.into_inner()));
        futures::future::join_all(handles).await;
    }
}

struct Shared {
    config: TopicsConfig,
    fs: FsRef,
    metrics: Arc<Metrics>,
    /// Held only to look up, insert or remove: never across file-system work.
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Names being created or deleted right now: a second create or delete of one of them
    /// waits for nobody, it is told the name is busy.
    busy: Mutex<BTreeMap<String, &'static str>>,
    /// Parents of every topic's tokens.
    stop_readers: CancellationToken,
    stop_writers: CancellationToken,
    /// Set once the previous run's clean-shutdown marker was read.
    clean_start: bool,
    _lock: std::fs::File,
}

/// Removes a name from the busy set when the create or delete ends, however it ends.
struct BusyGuard<'a> {
    shared: &'a Shared,
    name: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

/// The handle to every topic. Clone it freely.
#[derive(Clone)]
pub struct Topics(Arc<Shared>);

impl Topics {
    /// Opens the data directory: takes its lock, removes leftovers of interrupted creates and
    /// deletes, and opens every topic, recovering active segments if the last stop was unclean.
    /// Works on a full disk: nothing it must write is needed to serve reads and deletes.
    pub fn open(config: TopicsConfig, metrics: Arc<Metrics>) -> Result<Self, TopicError> {
        let (lock, clean_start) = store::prepare(&config.data_dir)?;
        let shared = Shared {
            config,
            fs: RealFs::shared(),
            metrics,
            topics: RwLock::new(BTreeMap::new()),
            busy: Mutex::new(BTreeMap::new()),
            stop_readers: CancellationToken::new(),
            stop_writers: CancellationToken::new(),
            clean_start,
            _lock: lock,
        };
        let this = Self(Arc::new(shared));
        for (name, meta) in store::load_all(&this.0.config.data_dir)? {
            let id = meta.id();
            let topic = this.open_topic(&name, &id, meta.config, meta.created_ms, clean_start)?;
            this.write_map().insert(name, topic);
        }
        Ok(this)
    }

    /// Cancel to end every SSE stream and long-poll (the first step of stopping).
    pub fn stop_readers(&self) -> CancellationToken {
        self.0.stop_readers.clone()
    }

    /// Whether the previous run stopped cleanly.
    pub fn clean_start(&self) -> bool {
        self.0.clean_start
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.0.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.0.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    fn log_config(&self, c: &TopicConfig) -> LogConfig {
        LogConfig {
            segment_bytes: c.segment_bytes,
            segment_ms: c.segment_ms,
            index_interval_bytes: self.0.config.index_interval_bytes,
            index_bytes_max: self.0.config.index_bytes_max,
        }
    }

    fn open_topic(
        &self,
        name: &str,
        id: &str,
        config: TopicConfig,
        created_ms: i64,
        clean: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let dir = store::topic_dir(&self.0.config.data_dir, name);
        let (changed, _) = watch::channel(0u64);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        let mut receivers = Vec::new();
        for pid in 0..config.partitions {
            let pdir = dir.join(pid.to_string());
            let (log, recovery) = PartitionLog::open(&self.0.fs, &pdir, self.log_config(&config), clean)?;
            if recovery.truncated_bytes > 0 {
                tracing::warn!(
                    topic = name,
                    partition = pid,
                    cut_bytes = recovery.truncated_bytes,
                    reason = recovery.reason.as_deref().unwrap_or(""),
                    verified_from = recovery.verified_from,
                    high_watermark = log.high_watermark(),
                    "recovery cut a torn or corrupt tail"
                );
            } else if recovery.index_rebuilt {
                tracing::info!(
                    topic = name,
                    partition = pid,
                    verified_from = recovery.verified_from,
                    high_watermark = log.high_watermark(),
                    "verified log tail after unclean stop"
                );
            }
            let (tx, rx) = mpsc::channel(WRITER_QUEUE_REQUESTS);
            partitions.push(Arc::new(Partition::new(pid, name.to_owned(), log, tx)));
            receivers.push(rx);
        }
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            id: id.to_owned(),
            counters: self.0.metrics.topic(name),
            config: config.clone(),
            created_ms,
            partitions,
            changed,
            next_partition: AtomicU32::new(0),
            stop: self.0.stop_readers.child_token(),
            writer_stop: self.0.stop_writers.child_token(),
            writers: Mutex::new(Vec::new()),
        });
        let interval = Duration::from_millis(config.fsync_interval_ms.max(1));
        let mut writers = Vec::with_capacity(receivers.len());
        for (partition, rx) in topic.partitions.iter().zip(receivers) {
            let notify = topic.changed.clone();
            let on_publish = move || {
                notify.send_modify(|v| *v += 1);
            };
            writers.push(tokio::spawn(writer::run(
                Arc::clone(partition),
                rx,
                topic.writer_stop.clone(),
                config.fsync,
                interval,
                Arc::clone(&self.0.metrics),
                on_publish,
            )));
        }
        *topic.writers.lock().unwrap_or_else(|e| e.into_inner()) = writers;
        Ok(topic)
    }

    /// Marks `name` busy with `action`, unless it is busy already.
    fn claim(&self, name: &str, action: &'static str) -> Result<BusyGuard<'_>, TopicError> {
        let mut busy = self.0.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&action) = busy.get(name) {
            return Err(TopicError::Busy {
                topic: name.to_owned(),
                action,
            });
        }
        busy.insert(name.to_owned(), action);
        Ok(BusyGuard {
            shared: &self.0,
            name: name.to_owned(),
        })
    }

    /// Creates a topic; its directory appears whole or not at all. Blocking (file-system
    /// work): call it off the async workers. Other topics are served meanwhile.
    pub fn create(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>, TopicError> {
        if spec::is_internal(name) {
            return Err(TopicError::Internal(name.to_owned()));
        }
        self.create_internal(name, config)
    }

    /// [`Self::create`] for the broker's own topics too (names starting with `__`).
    pub fn create_internal(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>, TopicError> {
        spec::validate_name(name).map_err(TopicError::InvalidName)?;
        config.validate().map_err(TopicError::InvalidConfig)?;
        let _busy = self.claim(name, "created")?;
        if self.read_map().contains_key(name) {
            return Err(TopicError::Exists(name.to_owned()));
        }
        let created_ms = now_ms();
        let id = new_topic_id();
        store::create(&self.0.config.data_dir, name, &id, &config, created_ms)?;
        let topic = match self.open_topic(name, &id, config, created_ms, true) {
            Ok(t) => t,
            Err(e) => {
                // Not half a topic: take the directory away again.
                let _ = store::delete(&self.0.config.data_dir, name, &id);
                return Err(e);
            }
        };
        self.write_map().insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.read_map()
            .get(name)
            .cloned()
            .ok_or_else(|| TopicError::NotFound(name.to_owned()))
    }

    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.read_map().values().cloned().collect()
    }

    /// Deletes a topic and all its data. New requests see it gone at once; appends already
    /// queued are committed, then every log is closed (nothing of it writes again, wherever its
    /// path points later) before the directory goes. Readers holding the topic finish on open
    /// files.
    pub async fn delete(&self, name: &str) -> Result<(), TopicError> {
        if spec::is_internal(name) {
            return Err(TopicError::Internal(name.to_owned()));
        }
        self.delete_internal(name).await
    }

    /// [`Self::delete`] for the broker's own topics too.
    pub async fn delete_internal(&self, name: &str) -> Result<(), TopicError> {
        let busy = self.claim(name, "deleted")?;
        let topic = self
            .write_map()
            .remove(name)
            .ok_or_else(|| TopicError::NotFound(name.to_owned()))?;
        for p in &topic.partitions {
            p.mark_deleted();
        }
        topic.stop.cancel();
        topic.stop_writers().await;
        let data_dir = self.0.config.data_dir.clone();
        let t = Arc::clone(&topic);
        let removed = tokio::task::spawn_blocking(move || {
            for p in &t.partitions {
                p.log_mut().close();
            }
            store::delete(&data_dir, &t.name, &t.id)
        })
        .await
        .map_err(|_| TopicError::ShuttingDown)?;
        self.0.metrics.remove_topic(name);
        drop(busy);
        removed
    }

    /// Rolls idle segments, deletes expired ones (cleanup `delete`) and compacts (cleanup
    /// `compact`) across all topics.
    pub async fn enforce_retention(&self) {
        let topics = self.list();
        let fs = self.0.fs.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in topics {
                let policy = topic.config.cleanup_policy;
                for p in &topic.partitions {
                    if policy.compacts() {
                        match compact::compact(&fs, p, topic.config.delete_retention_ms, now) {
                            Ok(Some(b)) => tracing::info!(
                                topic = %topic.name, partition = p.id, segments_before = b.replaced.len(),
                                segments_after = b.bases.len(), bytes_before = b.bytes_before, bytes_after = b.bytes_after,
                                records_dropped = b.records_dropped, "compacted"
                            ),
                            Ok(None) => {}
                            Err(e) => tracing::error!(topic = %topic.name, partition = p.id, error = %e, "compaction failed"),
                        }
                    }
                    let mut log = p.log_mut();
                    let result = log.roll_if_idle(now).and_then(|_| match policy.deletes() {
                        true => log.apply_retention(now, topic.config.retention_ms, topic.config.retention_bytes),
                        false => Ok(Vec::new()),
                    });
                    p.refresh(&log);
                    match result {
                        Ok(deleted) if !deleted.is_empty() => tracing::info!(
                            topic = %topic.name, partition = p.id, segments = deleted.len(),
                            log_start_offset = log.log_start_offset(), "retention deleted segments"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(topic = %topic.name, partition = p.id, error = %e, "retention failed")
                        }
                    }
                }
            }
        })
        .await;
    }

    /// Stops taking appends, lets every writer finish and flush what it holds, then marks the
    /// data directory as cleanly stopped so the next start skips the full tail scan.
    pub async fn shutdown(self) {
        self.0.stop_readers.cancel();
        self.0.stop_writers.cancel();
        let topics = self.list();
        let all = futures::future::join_all(topics.iter().map(|t| t.stop_writers()));
        if tokio::time::timeout(Duration::from_secs(10), all).await.is_err() {
            tracing::warn!("writers still busy after 10 s; stopping without the clean-shutdown marker");
            return;
        }
        if let Err(e) = store::mark_clean(&self.0.config.data_dir) {
            tracing::error!(error = %e, "could not write the clean-shutdown marker");
        }
    }
}
