//! Tables: a topic read as "the latest value of each key", materialized in memory per
//! partition by a follower that reads the topic's committed records from its start (so a
//! restart restores it from the topic itself), applying each keyed record (a tombstone
//! deletes its key; records without a key are not rows). One table per topic, shared by the
//! processors that join against it and the HTTP readers (`GET /v1/tables/{topic}`).
//!
//! A processor on input partition `p` reads table partition `p`: the stream and the table are
//! co-partitioned (same partition count, same key partitioner), checked at deploy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::topic::{Isolation, Partition, Topic, TopicError, Topics};

/// Bytes of log a follower reads at a time.
const READ_BYTES: usize = 1024 * 1024;
/// Changes a live reader (`/events`) may fall behind before it is told to start over.
const CHANGES_IN_FLIGHT: usize = 4096;

type Hasher = xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// A keyed record a follower read: offset, key, value (`None`: a tombstone).
type Read = (u64, Box<[u8]>, Option<Box<[u8]>>);

/// Why a table cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(
        "table '{topic}' would pass the memory all tables may hold ({limit} bytes, limits.tables_bytes_max): it was dropped; raise the limit (and restart), or read the topic's records instead"
    )]
    TooLarge { topic: String, limit: u64 },
}

/// A row: the offset of the record that set it, and its value.
#[derive(Debug, Clone)]
pub struct Row {
    pub offset: u64,
    pub value: Arc<[u8]>,
}

/// One change, as live readers get it.
#[derive(Debug, Clone)]
pub struct Change {
    pub partition: u32,
    pub offset: u64,
    pub key: Arc<[u8]>,
    /// `None`: the key was deleted.
    pub value: Option<Arc<[u8]>>,
}

/// Figures of one partition of a table.
#[derive(Debug, Clone, Copy)]
pub struct PartFigures {
    pub partition: u32,
    pub keys: u64,
    pub bytes: u64,
    /// The offset materialized up to.
    pub offset: u64,
}

#[derive(Default)]
struct Rows {
    map: HashMap<Arc<[u8]>, Row, Hasher>,
    bytes: u64,
    next: u64,
}

/// One partition of a table.
pub struct TablePart {
    rows: RwLock<Rows>,
}

impl TablePart {
    fn rows(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A materialized table.
pub struct Table {
    pub topic: Arc<Topic>,
    parts: Vec<TablePart>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Partitions caught up with their topic once (a restored table reads as it was).
    ready: watch::Receiver<usize>,
    /// Bytes all tables hold, and what they may.
    used: Arc<AtomicU64>,
    limit: u64,
    /// Set when the table passed the limit and was dropped.
    too_large: AtomicBool,
    /// Cancelled when the table stops following its topic: the topic stopped, or the table
    /// was dropped for its size. Processors reading it stop then.
    pub gone: CancellationToken,
}

impl Table {
    /// The row of `key` wherever it is: first the partition its key maps to (where keyed
    /// records go), then the others (records produced to a partition by hand).
    pub fn get(&self, key: &[u8]) -> Option<(u32, Row)> {
        let n = self.parts.len() as u32;
        let home = crate::topic::partitioner::for_key(key, n);
        std::iter::once(home)
            .chain((0..n).filter(|p| *p != home))
            .find_map(|p| self.parts[p as usize].rows().map.get(key).map(|r| (p, r.clone())))
    }

    pub fn figures(&self) -> Vec<PartFigures> {
        self.parts
            .iter()
            .enumerate()
            .map(|(p, part)| {
                let r = part.rows();
                PartFigures {
                    partition: p as u32,
                    keys: r.map.len() as u64,
                    bytes: r.bytes,
                    offset: r.next,
                }
            })
            .collect()
    }

    /// Every row now, and the changes after them: nothing is missed or seen twice between the
    /// two, as changes are sent while a partition's rows are locked.
    pub fn snapshot_and_follow(&self) -> (Vec<Change>, broadcast::Receiver<Arc<Change>>) {
        let guards: Vec<_> = self.parts.iter().map(TablePart::rows).collect();
        let rx = self.changes.subscribe();
        let rows = guards
            .iter()
            .enumerate()
            .flat_map(|(p, g)| {
                g.map.iter().map(move |(k, r)| Change {
                    partition: p as u32,
                    offset: r.offset,
                    key: Arc::clone(k),
                    value: Some(Arc::clone(&r.value)),
                })
            })
            .collect();
        (rows, rx)
    }

    /// Whether it was dropped for passing the tables' memory limit.
    pub fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Relaxed)
    }

    fn too_large_error(&self) -> TableError {
        TableError::TooLarge {
            topic: self.topic.name.clone(),
            limit: self.limit,
        }
    }

    async fn wait_ready(&self) -> Result<(), TableError> {
        let mut ready = self.ready.clone();
        let n = self.parts.len();
        let caught_up = tokio::select! {
            r = ready.wait_for(|c| *c >= n) => r.is_ok(),
            () = self.gone.cancelled() => false,
        };
        if caught_up && !self.gone.is_cancelled() {
            Ok(())
        } else if self.too_large() {
            Err(self.too_large_error())
        } else if self.topic.stop.is_cancelled() {
            Err(TopicError::NotFound(self.topic.name.clone()).into())
        } else {
            Err(TopicError::ShuttingDown.into())
        }
    }

    /// Frees every row (the table stops being read).
    fn drop_rows(&self) {
        for part in &self.parts {
            let mut rows = part.rows.write().unwrap_or_else(|e| e.into_inner());
            self.used.fetch_sub(rows.bytes, Ordering::Relaxed);
            *rows = Rows::default();
        }
    }

    /// Applies a follower's records to partition `p`; false if that took the tables past their
    /// memory limit (the table is then dropped).
    fn apply(&self, p: usize, records: Vec<Read>, next: u64) -> bool {
        let mut rows = self.parts[p].rows.write().unwrap_or_else(|e| e.into_inner());
        let before = rows.bytes;
        let live = self.changes.receiver_count() > 0;
        for (offset, key, value) in records {
            let key: Arc<[u8]> = Arc::from(key);
            let change = match value {
                Some(v) => {
                    let value: Arc<[u8]> = Arc::from(v);
                    rows.bytes += (key.len() + value.len()) as u64;
                    let old = rows.map.insert(
                        Arc::clone(&key),
                        Row {
                            offset,
                            value: Arc::clone(&value),
                        },
                    );
                    if let Some(o) = old {
                        rows.bytes -= (key.len() + o.value.len()) as u64;
                    }
                    Some(value)
                }
                None => {
                    if let Some(o) = rows.map.remove(&key) {
                        rows.bytes -= (key.len() + o.value.len()) as u64;
                    }
                    None
                }
            };
            if live {
                let _ = self.changes.send(Arc::new(Change {
                    partition: p as u32,
                    offset,
                    key,
                    value: change,
                }));
            }
        }
        rows.next = next;
        let after = rows.bytes;
        drop(rows);
        let used = if after >= before {
            self.used.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.used.fetch_sub(before - after, Ordering::Relaxed) - (before - after)
        };
        if used > self.limit {
            tracing::warn!(topic = %self.topic.name, used, limit = self.limit, "a table passed limits.tables_bytes_max and is dropped");
            self.too_large.store(true, Ordering::Relaxed);
            self.drop_rows();
            self.gone.cancel();
            return false;
        }
        true
    }
}

/// The broker's tables, made on first use.
#[derive(Clone)]
pub struct Tables(Arc<Inner>);

struct Inner {
    topics: Topics,
    open: Mutex<HashMap<String, Arc<Table>>>,
    /// Bytes of keys and values all tables hold, and what they may.
    used: Arc<AtomicU64>,
    bytes_max: u64,
}

impl Tables {
    pub fn new(topics: Topics, bytes_max: u64) -> Self {
        Self(Arc::new(Inner {
            topics,
            open: Mutex::new(HashMap::new()),
            used: Arc::new(AtomicU64::new(0)),
            bytes_max,
        }))
    }

    /// The table of `topic`, materialized (restored from the topic when it is new).
    pub async fn open(&self, topic: &str) -> Result<Arc<Table>, TableError> {
        let current = self.0.topics.get(topic)?;
        let table = {
            let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.get(topic) {
                // A table of a topic deleted (and maybe made again) since is rebuilt.
                Some(t) if t.topic.id == current.id && t.too_large() => return Err(t.too_large_error()),
                Some(t) if t.topic.id == current.id && !t.topic.stop.is_cancelled() => Arc::clone(t),
                _ => {
                    let t = start(Arc::clone(&current), Arc::clone(&self.0.used), self.0.bytes_max);
                    open.insert(topic.to_owned(), Arc::clone(&t));
                    t
                }
            }
        };
        table.wait_ready().await?;
        Ok(table)
    }
}

fn start(topic: Arc<Topic>, used: Arc<AtomicU64>, limit: u64) -> Arc<Table> {
    let (ready_tx, ready) = watch::channel(0usize);
    let (changes, _) = broadcast::channel(CHANGES_IN_FLIGHT);
    let table = Arc::new(Table {
        parts: topic
            .partitions
            .iter()
            .map(|_| TablePart {
                rows: RwLock::new(Rows::default()),
            })
            .collect(),
        topic,
        changes,
        ready,
        used,
        limit,
        too_large: AtomicBool::new(false),
        gone: CancellationToken::new(),
    });
    let ready_tx = Arc::new(ready_tx);
    for (p, partition) in table.topic.partitions.iter().enumerate() {
        tokio::spawn(follow(
            Arc::downgrade(&table),
            p,
            Arc::clone(partition),
            Arc::clone(&ready_tx),
        ));
    }
    table
}

/// Keeps partition `p` of a table up with its topic, until the topic stops (deleted, or the
/// broker stops) or the table is dropped.
async fn follow(table: std::sync::Weak<Table>, p: usize, partition: Arc<Partition>, ready: Arc<watch::Sender<usize>>) {
    let Some(stop) = table.upgrade().map(|t| t.topic.stop.clone()) else {
        return;
    };
    follow_until_stopped(&table, p, &partition, &ready, &stop).await;
    // The topic is gone (or the broker stops, or the table was dropped): its rows go too.
    if let Some(t) = table.upgrade() {
        t.drop_rows();
        t.gone.cancel();
    }
}

async fn follow_until_stopped(
    table: &std::sync::Weak<Table>,
    p: usize,
    partition: &Arc<Partition>,
    ready: &watch::Sender<usize>,
    stop: &tokio_util::sync::CancellationToken,
) {
    let mut hw = partition.watch();
    let mut next = 0u64;
    let mut caught_up = false;
    loop {
        hw.borrow_and_update();
        let (start, _) = partition.bounds();
        next = next.max(start);
        let end = partition.end(Isolation::ReadCommitted);
        if next >= end {
            if !caught_up {
                caught_up = true;
                ready.send_modify(|c| *c += 1);
            }
            tokio::select! {
                r = hw.changed() => if r.is_err() { return },
                () = stop.cancelled() => return,
            }
            continue;
        }
        let chunk = match partition.read(next, READ_BYTES, Isolation::ReadCommitted).await {
            Ok(c) => c,
            // Retention took the records meanwhile: go on from the new start.
            Err(TopicError::OffsetOutOfRange { log_start_offset, .. }) => {
                next = next.max(log_start_offset);
                continue;
            }
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "a table cannot read its topic; retrying in a second");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        let mut visible = chunk.visible();
        let mut records = Vec::new();
        for v in visible.by_ref() {
            if let Some(k) = v.key {
                records.push((v.offset, k.into(), v.value.map(Into::into)));
            }
        }
        next = next.max(visible.next_offset());
        let Some(t) = table.upgrade() else { return };
        if !t.apply(p, records, next) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_keep_the_latest_value_and_tombstones_delete() {
        let (ready_tx, ready) = watch::channel(0);
        drop(ready_tx);
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(
            crate::topic::TopicsConfig {
                data_dir: dir.path().to_owned(),
                index_interval_bytes: 4096,
                index_bytes_max: 64 * 1024,
            },
            Arc::new(crate::metrics::Metrics::default()),
        )
        .unwrap();
        let topic = topics.create("t", crate::topic::TopicConfig::default()).unwrap();
        let t = Table {
            parts: vec![TablePart {
                rows: RwLock::new(Rows::default()),
            }],
            topic,
            changes: broadcast::channel(8).0,
            ready,
            used: Arc::new(AtomicU64::new(0)),
            limit: u64::MAX,
            too_large: AtomicBool::new(false),
            gone: CancellationToken::new(),
        };
        let (_, mut rx) = t.snapshot_and_follow();
        let b = |s: &str| -> Box<[u8]> { s.as_bytes().into() };
        t.apply(
            0,
            vec![
                (0, b("a"), Some(b("1"))),
                (1, b("b"), Some(b("2"))),
                (2, b("a"), Some(b("33"))),
            ],
            3,
        );
        assert_eq!(t.get(b"a").map(|(_, r)| r.value.to_vec()), Some(b"33".to_vec()));
        assert_eq!(t.figures()[0].bytes, 2 + 3);
        t.apply(0, vec![(3, b("a"), None)], 4);
        assert!(t.get(b"a").is_none());
        assert_eq!(
            (t.figures()[0].keys, t.figures()[0].bytes, t.figures()[0].offset),
            (1, 2, 4)
        );
        let seen: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok()).map(|c| c.offset).collect();
        assert_eq!(seen, [0, 1, 2, 3]);
        let (rows, _) = t.snapshot_and_follow();
        assert_eq!(rows.len(), 1);
    }
}
