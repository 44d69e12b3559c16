//! The offset store: the topic `__weir_offsets` (one partition, compacted, fsync always) holds
//! one record per task, keyed `processor/NAME/PARTITION`, whose value is the task's last
//! [`TaskCommit`] as JSON. The store reads it whole at startup (compaction keeps it small) and
//! then keeps the newest committed value of each key in memory.
//!
//! A commit written inside a transaction counts only once its COMMIT marker follows; one an
//! ABORT marker (or no marker at all: the broker stopped first) follows is ignored. So the
//! input offset a task commits becomes durable at the same instant as its outputs and state,
//! or not at all (see `processor/txn.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::log::batch::{self, BatchHeader, Producer};
use crate::record::NewRecord;
use crate::topic::{CleanupPolicy, FsyncPolicy, Partition, Topic, TopicConfig, TopicError, Topics};

/// The topic of the offset store.
pub const OFFSETS_TOPIC: &str = "__weir_offsets";

/// How a commit record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitKind {
    /// Outside any transaction, when a task starts or stops cleanly: nothing of its producer
    /// is open then.
    Checkpoint,
    /// Inside the task's transaction: it counts once the COMMIT marker follows.
    Transaction,
}

/// Where a task may have written in a partition since its last commit: from `from` on. A
/// transaction a crash left open there is found by scanning from it (see `processor/txn.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartBound {
    pub topic: String,
    pub topic_id: String,
    pub partition: u32,
    /// The partition's end when the commit's transaction began: its records are at or past it.
    pub from: u64,
    /// Whether this commit's transaction wrote to the partition.
    pub touched: bool,
}

/// What a task commits: its input position, its producer, and where it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCommit {
    pub kind: CommitKind,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The input topic's incarnation the offset belongs to.
    pub input_topic_id: String,
    /// The next input offset to process.
    pub offset: u64,
    /// The task's watermark: the largest event time it has processed (ms).
    #[serde(default)]
    pub watermark: Option<i64>,
    /// Every partition the task may write to, with a lower bound of what it wrote since.
    pub parts: Vec<PartBound>,
}

impl TaskCommit {
    pub fn producer(&self) -> Producer {
        Producer {
            id: self.producer_id,
            epoch: self.producer_epoch,
        }
    }
}

/// The key of a processor task's commit.
pub fn task_key(processor: &str, partition: u32) -> String {
    format!("processor/{processor}/{partition}")
}

struct State {
    committed: HashMap<String, TaskCommit>,
    /// The next producer id to hand out: above every id the store has seen.
    next_producer_id: i64,
}

/// The handle to the offset store. Clone it freely.
#[derive(Clone)]
pub struct OffsetStore(Arc<Inner>);

struct Inner {
    topic: Arc<Topic>,
    state: Mutex<State>,
}

impl OffsetStore {
    /// Opens the store, creating its topic on first use, and reads it whole.
    pub async fn open(topics: &Topics) -> Result<Self, TopicError> {
        let topic = match topics.get(OFFSETS_TOPIC) {
            Ok(t) => t,
            Err(_) => {
                let topics = topics.clone();
                let config = TopicConfig {
                    partitions: 1,
                    retention_ms: None,
                    retention_bytes: None,
                    segment_bytes: 64 * 1024 * 1024,
                    fsync: FsyncPolicy::Always,
                    cleanup_policy: CleanupPolicy::Compact,
                    ..TopicConfig::default()
                };
                tokio::task::spawn_blocking(move || topics.create_internal(OFFSETS_TOPIC, config))
                    .await
                    .map_err(|_| TopicError::ShuttingDown)??
            }
        };
        let partition = Arc::clone(topic.partition(0)?);
        let started = std::time::Instant::now();
        let state = tokio::task::spawn_blocking(move || load(&partition))
            .await
            .map_err(|_| TopicError::ShuttingDown)??;
        tracing::info!(
            tasks = state.committed.len(),
            ms = started.elapsed().as_millis() as u64,
            "offset store loaded"
        );
        Ok(Self(Arc::new(Inner {
            topic,
            state: Mutex::new(state),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's one partition (a task's transactions include it).
    pub fn partition(&self) -> &Arc<Partition> {
        &self.0.topic.partitions[0]
    }

    pub fn topic(&self) -> &Arc<Topic> {
        &self.0.topic
    }

    /// The newest committed value of `key`.
    pub fn get(&self, key: &str) -> Option<TaskCommit> {
        self.state().committed.get(key).cloned()
    }

    /// A producer id no one has used.
    pub fn allocate_producer_id(&self) -> i64 {
        let mut s = self.state();
        let id = s.next_producer_id;
        s.next_producer_id += 1;
        id
    }

    fn record(key: &str, commit: Option<&TaskCommit>) -> NewRecord {
        NewRecord {
            key: Some(key.as_bytes().to_vec()),
            value: commit.map(|c| serde_json::to_vec(c).expect("a commit serializes")),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Writes `commit` outside any transaction; it counts once this returns (durable).
    pub async fn checkpoint(&self, key: &str, commit: TaskCommit) -> Result<(), TopicError> {
        self.partition().append(vec![Self::record(key, Some(&commit))]).await?;
        self.state().committed.insert(key.to_owned(), commit);
        Ok(())
    }

    /// Writes `commit` into `producer`'s open transaction; it counts once [`Self::committed`]
    /// is told its COMMIT marker is durable.
    pub async fn stage(&self, key: &str, commit: &TaskCommit, producer: Producer) -> Result<u64, TopicError> {
        self.partition()
            .append_transactional(vec![Self::record(key, Some(commit))], producer)
            .await
    }

    /// The transaction that staged `commit` was committed.
    pub fn committed(&self, key: &str, commit: TaskCommit) {
        self.state().committed.insert(key.to_owned(), commit);
    }

    /// Forgets `key` (a tombstone: compaction removes it).
    pub async fn remove(&self, key: &str) -> Result<(), TopicError> {
        self.partition().append(vec![Self::record(key, None)]).await?;
        self.state().committed.remove(key);
        Ok(())
    }

    /// Keys that start with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.state()
            .committed
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Reads the whole partition: plain records count at once, transactional ones at their
/// producer's COMMIT marker.
fn load(partition: &Partition) -> Result<State, TopicError> {
    let log = partition.log();
    let mut committed: HashMap<String, TaskCommit> = HashMap::new();
    let mut pending: HashMap<i64, Vec<(String, Option<TaskCommit>)>> = HashMap::new();
    let mut max_producer = 0i64;
    let mut at = log.log_start_offset();
    let end = log.high_watermark();
    let mut buf = Vec::new();
    let apply = |committed: &mut HashMap<String, TaskCommit>, key: String, value: Option<TaskCommit>| match value {
        Some(v) => {
            committed.insert(key, v);
        }
        None => {
            committed.remove(&key);
        }
    };
    while at < end {
        buf.clear();
        log.read(at, 4 * 1024 * 1024, &mut buf)?;
        let before = at;
        let mut pos = 0;
        while pos < buf.len() {
            let Ok(h) = BatchHeader::parse(&buf[pos..]) else { break };
            let bytes = &buf[pos..pos + h.total_bytes.min(buf.len() - pos)];
            pos += h.total_bytes;
            if h.next_offset() <= at {
                continue;
            }
            at = h.next_offset();
            max_producer = max_producer.max(h.producer_id);
            if h.is_control() {
                let commit = batch::marker_type(bytes) == Some(true);
                for (key, value) in pending.remove(&h.producer_id).unwrap_or_default() {
                    if commit {
                        apply(&mut committed, key, value);
                    }
                }
                continue;
            }
            let Ok(records) = batch::records(bytes) else { continue };
            for r in records.flatten() {
                let Some(key) = r.key.and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let value = match r.value {
                    None => None,
                    Some(v) => match serde_json::from_slice::<TaskCommit>(v) {
                        Ok(c) => {
                            max_producer = max_producer.max(c.producer_id);
                            Some(c)
                        }
                        Err(e) => {
                            tracing::error!(key, offset = r.offset, error = %e, "unreadable commit in the offset store; ignored");
                            continue;
                        }
                    },
                };
                if h.is_transactional() {
                    pending.entry(h.producer_id).or_default().push((key.to_owned(), value));
                } else {
                    apply(&mut committed, key.to_owned(), value);
                }
            }
        }
        if at == before {
            break;
        }
    }
    Ok(State {
        committed,
        next_producer_id: max_producer.max(0) + 1,
    })
}
