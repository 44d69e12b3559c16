//! The one way records get into a topic: routed to partitions (a pinned partition, else the
//! key's hash, else one partition per call), appended per partition by its group-commit
//! writer, and counted. HTTP produce and processors both come through here.

use std::sync::Arc;

use super::{Topic, TopicError, partitioner};
use crate::log::batch::Producer;
use crate::record::NewRecord;

/// How records are appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// Visible to readers as soon as they are durable.
    Plain,
    /// Part of `producer`'s open transaction: visible to readers of committed records once its
    /// COMMIT marker is written.
    Transactional(Producer),
}

/// What one partition's part of an append got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub partition: u32,
    /// Offset of the first record; the rest follow one by one.
    pub base_offset: u64,
    pub count: usize,
}

impl Topic {
    /// The partition a record goes to: `pinned`, else its key's hash, else `spread` (one
    /// partition per request keeps a request's keyless records together, in fewer batches).
    pub fn route(&self, pinned: Option<u32>, key: Option<&[u8]>, spread: u32) -> u32 {
        match (pinned, key) {
            (Some(p), _) => p,
            (None, Some(k)) => partitioner::for_key(k, self.partitions.len() as u32),
            (None, None) => spread,
        }
    }

    /// Appends each `(partition, records)` group as one request to that partition's writer,
    /// all at once; answers when the topic's fsync policy holds for every one. Counts what
    /// was appended. Partitions must exist (the caller routed them).
    pub async fn append_to(
        &self,
        groups: Vec<(u32, Vec<NewRecord>)>,
        mode: AppendMode,
    ) -> Result<Vec<Placed>, TopicError> {
        let (mut count, mut bytes) = (0u64, 0u64);
        for (_, records) in &groups {
            count += records.len() as u64;
            bytes += records.iter().map(|r| r.payload_bytes() as u64).sum::<u64>();
        }
        let appends = groups.into_iter().filter(|(_, rs)| !rs.is_empty()).map(|(p, records)| {
            let partition = self.partition(p).map(Arc::clone);
            async move {
                let partition = partition?;
                let n = records.len();
                let base = match mode {
                    AppendMode::Plain => partition.append(records).await?,
                    AppendMode::Transactional(producer) => partition.append_transactional(records, producer).await?,
                };
                Ok::<_, TopicError>(Placed {
                    partition: p,
                    base_offset: base,
                    count: n,
                })
            }
        });
        let mut placed = Vec::new();
        let mut first_error = None;
        for r in futures::future::join_all(appends).await {
            match r {
                Ok(p) => placed.push(p),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.counters.records_in.inc_by(count);
        self.counters.bytes_in.inc_by(bytes);
        Ok(placed)
    }

    /// Routes `records` by key (keyless ones to one partition for the call) and appends them.
    pub async fn append(&self, records: Vec<NewRecord>, mode: AppendMode) -> Result<Vec<Placed>, TopicError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let spread = self.next_spread_partition();
        let mut groups: std::collections::BTreeMap<u32, Vec<NewRecord>> = std::collections::BTreeMap::new();
        for r in records {
            groups
                .entry(self.route(None, r.key.as_deref(), spread))
                .or_default()
                .push(r);
        }
        self.append_to(groups.into_iter().collect(), mode).await
    }
}
