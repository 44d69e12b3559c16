//! Exactly-once for one processor task (processor x input partition): its outputs, dead
//! letters, state changes and input offset become visible together, or not at all.
//!
//! The task is a transactional producer (id and epoch, Kafka's model) and is its own
//! coordinator; its commit record in the offset store is its transaction log. One commit:
//!
//! ```text
//! A  append, all at once: the transaction's records to every target partition it writes,
//!    and its commit record (input offset, and for every target partition a lower bound of
//!    what this transaction wrote there) to the offset store, all transactional
//! B  append the COMMIT marker to the offset store's partition           <- the decision
//! C  append COMMIT markers to the other partitions A wrote to; this runs while the task
//!    processes its next input, and must end before that next commit's step A
//! ```
//!
//! Recovery, when a task starts (the broker runs it for every task before anything reads):
//! take the task's newest *committed* record `R` (the offset store counts a transactional
//! record only once its COMMIT marker is there). Every transaction before `R` has all its
//! markers, and no later transaction wrote anywhere before `R`'s markers were down (step C
//! ends before the next step A). So in each partition `R` names, scanning from its lower bound,
//! the producer's batches that no marker closed are `R`'s own (if `R` wrote there and no marker
//! of the producer lies between: step C was cut short, so they are committed now) or a later
//! transaction's, which never reached its step B (aborted now). A
//! task writes a plain checkpoint record (nothing open) when it starts and when it stops
//! cleanly, so a task that never committed is covered too, and a scan never reaches far back.
//!
//! Records are appended at commit time, not as they are made: between commits nothing of the
//! task is open in any log, and a stop or a failing guest call just drops what was buffered.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::group::{CommitKind, OffsetStore, PartBound, TaskCommit};
use crate::log::batch::Producer;
use crate::record::NewRecord;
use crate::topic::{AppendMode, Topic, TopicError, Topics};

/// Records for one topic, per partition (as routed).
pub type TopicWrites = (Arc<Topic>, Vec<(u32, Vec<NewRecord>)>);

/// A partition a task may write to.
#[derive(Clone)]
pub struct Target {
    pub topic: Arc<Topic>,
    pub partition: u32,
}

/// A task's transactional writer.
pub struct TaskTxn {
    store: OffsetStore,
    key: String,
    producer: Producer,
    input_topic_id: String,
    /// Every partition the task may write to, the offset store's last.
    targets: Vec<Target>,
    /// The last commit's step C, still running.
    markers: Option<JoinHandle<Result<(), TopicError>>>,
    /// Set when a write was fenced: a newer epoch of this producer runs, and this one must
    /// leave what is open to it.
    fenced: bool,
}

/// What a task starts from.
pub struct Resumed {
    pub txn: TaskTxn,
    /// The committed input offset of this input incarnation, if there is one.
    pub offset: Option<u64>,
    pub watermark: Option<i64>,
}

/// Settles the transaction a crash may have left open for the task at `key` (committing or
/// aborting it everywhere, as the module docs say), writing markers as `producer` (the
/// task's next epoch). Returns the task's last committed record.
pub async fn recover(
    store: &OffsetStore,
    topics: &Topics,
    key: &str,
    producer: Producer,
) -> Result<Option<TaskCommit>, TopicError> {
    let Some(last) = store.get(key) else { return Ok(None) };
    for part in &last.parts {
        let Ok(topic) = topics.get(&part.topic) else { continue };
        if topic.id != part.topic_id {
            continue;
        }
        let Ok(partition) = topic.partition(part.partition).map(Arc::clone) else {
            continue;
        };
        let found = partition.unclosed_transaction(last.producer_id, part.from).await?;
        let Some(first) = found.first else { continue };
        let commit = last.kind == CommitKind::Transaction && part.touched && !found.marker_seen;
        tracing::info!(
            task = key,
            topic = %part.topic,
            partition = part.partition,
            from = first,
            commit,
            "settling a transaction a crash left open"
        );
        partition.append_marker(producer, commit, Some(first)).await?;
    }
    Ok(Some(last))
}

/// Settles whatever the task at `key` left open, in this process (a task that failed in the
/// middle of a commit) or on disk (a crash), as [`recover`] does with the producer's next
/// epoch, which fences the old one: no partition's last stable offset waits on a task that is
/// gone. Run when a task failed, and before its processor is reset or deleted. Refused while
/// the offset store's partition has failed: whether the last decision reached the disk is then
/// known only once a restart reads it back.
pub async fn settle(store: &OffsetStore, topics: &Topics, key: &str) -> Result<(), TopicError> {
    let decisions = store.partition();
    if decisions.has_failed() {
        return Err(TopicError::StorageFailed {
            topic: store.topic().name.clone(),
            partition: 0,
            reason:
                "a write to the offset store failed earlier; the outcome of the last commit is known after a restart"
                    .into(),
        });
    }
    let Some(last) = store.get(key) else { return Ok(()) };
    let next = Producer {
        id: last.producer_id,
        epoch: last.producer_epoch.saturating_add(1),
    };
    recover(store, topics, key, next).await.map(|_| ())
}

impl TaskTxn {
    /// Starts the task's producer: settles what a crash left open, takes the next epoch (a
    /// new producer id once epochs run out, or on first use), fences older epochs on every
    /// target, and writes a checkpoint. `targets` must not include the offset store.
    pub async fn start(
        store: &OffsetStore,
        topics: &Topics,
        key: &str,
        input: &Topic,
        mut targets: Vec<Target>,
        start_offset: u64,
    ) -> Result<Resumed, TopicError> {
        let last = store.get(key);
        let producer = match &last {
            Some(c) if c.producer_epoch < i16::MAX => Producer {
                id: c.producer_id,
                epoch: c.producer_epoch + 1,
            },
            _ => Producer {
                id: store.allocate_producer_id(),
                epoch: 0,
            },
        };
        if let Some(c) = &last {
            // Markers of the old producer id when epochs ran out.
            let settle = if c.producer_id == producer.id {
                producer
            } else {
                Producer {
                    id: c.producer_id,
                    epoch: c.producer_epoch,
                }
            };
            recover(store, topics, key, settle).await?;
        }
        targets.push(Target {
            topic: Arc::clone(store.topic()),
            partition: 0,
        });
        for t in &targets {
            t.topic.partition(t.partition)?.fence(producer).await;
        }
        let same_input = last.as_ref().filter(|c| c.input_topic_id == input.id);
        let offset = same_input.map(|c| c.offset);
        let watermark = same_input.and_then(|c| c.watermark);
        let mut txn = Self {
            store: store.clone(),
            key: key.to_owned(),
            producer,
            input_topic_id: input.id.clone(),
            targets,
            markers: None,
            fenced: false,
        };
        txn.checkpoint(offset.unwrap_or(start_offset), watermark).await?;
        Ok(Resumed { txn, offset, watermark })
    }

    pub fn producer(&self) -> Producer {
        self.producer
    }

    fn bounds(&self, touched: &[bool]) -> Vec<PartBound> {
        self.targets
            .iter()
            .zip(touched)
            .map(|(t, &touched)| PartBound {
                topic: t.topic.name.clone(),
                topic_id: t.topic.id.clone(),
                partition: t.partition,
                from: t.topic.partitions[t.partition as usize].high_watermark(),
                touched,
            })
            .collect()
    }

    fn commit_record(&self, kind: CommitKind, offset: u64, watermark: Option<i64>, touched: &[bool]) -> TaskCommit {
        TaskCommit {
            kind,
            producer_id: self.producer.id,
            producer_epoch: self.producer.epoch,
            input_topic_id: self.input_topic_id.clone(),
            offset,
            watermark,
            parts: self.bounds(touched),
        }
    }

    /// Waits for the last commit's markers (step C): its outputs are then visible.
    pub async fn settle_markers(&mut self) -> Result<(), TopicError> {
        match self.markers.take() {
            Some(h) => h.await.map_err(|_| TopicError::ShuttingDown)?,
            None => Ok(()),
        }
    }

    /// Writes a plain checkpoint: the input offset, and lower bounds as the partitions are now
    /// (nothing of the task is open).
    pub async fn checkpoint(&mut self, offset: u64, watermark: Option<i64>) -> Result<(), TopicError> {
        self.settle_markers().await?;
        let touched = vec![false; self.targets.len()];
        let record = self.commit_record(CommitKind::Checkpoint, offset, watermark, &touched);
        self.store.checkpoint(&self.key, record).await
    }

    /// Commits one transaction: `writes` (records per target partition, as routed) and the
    /// next input offset. On an error nothing of it is visible to readers of committed records
    /// (what was appended is aborted, now or by recovery), and the task must stop.
    pub async fn commit(
        &mut self,
        writes: Vec<TopicWrites>,
        offset: u64,
        watermark: Option<i64>,
    ) -> Result<(), TopicError> {
        let store_index = self.targets.len() - 1;
        let mut touched = vec![false; self.targets.len()];
        touched[store_index] = true;
        for (topic, groups) in &writes {
            for (p, records) in groups {
                if records.is_empty() {
                    continue;
                }
                match self
                    .targets
                    .iter()
                    .position(|t| Arc::ptr_eq(&t.topic, topic) && t.partition == *p)
                {
                    Some(i) => touched[i] = true,
                    None => {
                        return Err(TopicError::InvalidConfig(format!(
                            "partition {p} of topic '{}' is not one this task writes to",
                            topic.name
                        )));
                    }
                }
            }
        }
        // The last commit's markers first: no record of this one may precede them.
        self.settle_markers().await?;
        let record = self.commit_record(CommitKind::Transaction, offset, watermark, &touched);
        // Step A.
        let mode = AppendMode::Transactional(self.producer);
        let data = futures::future::join_all(
            writes
                .into_iter()
                .map(|(topic, groups)| async move { topic.append_to(groups, mode).await.map(|_| ()) }),
        );
        let (data, staged) = tokio::join!(data, self.store.stage(&self.key, &record, self.producer));
        let failed = data.into_iter().find_map(Result::err).or(staged.err());
        if let Some(e) = failed {
            self.fenced |= matches!(e, TopicError::Fenced { .. });
            if !self.fenced {
                self.abort(&touched).await;
            }
            return Err(e);
        }
        // Step B: the decision.
        if let Err(e) = self.store.partition().append_marker(self.producer, true, None).await {
            self.fenced |= matches!(e, TopicError::Fenced { .. });
            // Only when no COMMIT marker can have reached the disk: else the decision may be
            // down, and recovery after a restart finishes it.
            if e.wrote_nothing() && !self.fenced {
                self.abort(&touched).await;
            }
            return Err(e);
        }
        self.store.committed(&self.key, record);
        // Step C, in the background.
        let producer = self.producer;
        let partitions: Vec<_> = self
            .targets
            .iter()
            .zip(&touched)
            .take(store_index)
            .filter(|(_, t)| **t)
            .map(|(t, _)| Arc::clone(&t.topic.partitions[t.partition as usize]))
            .collect();
        self.markers = Some(tokio::spawn(async move {
            let marks = partitions.iter().map(|p| p.append_marker(producer, true, None));
            futures::future::join_all(marks)
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            Ok(())
        }));
        Ok(())
    }

    /// Aborts what step A wrote. Best effort: what fails here, recovery aborts.
    async fn abort(&self, touched: &[bool]) {
        for (t, _) in self.targets.iter().zip(touched).filter(|(_, t)| **t) {
            let p = &t.topic.partitions[t.partition as usize];
            if p.open_transaction(self.producer.id).is_none() {
                continue;
            }
            if let Err(e) = p.append_marker(self.producer, false, None).await {
                tracing::warn!(topic = %t.topic.name, partition = t.partition, error = %e, "cannot abort; recovery will");
            }
        }
    }

    /// Ends the task cleanly: its last markers, then a checkpoint.
    pub async fn finish(mut self, offset: u64, watermark: Option<i64>) -> Result<(), TopicError> {
        self.checkpoint(offset, watermark).await
    }

    /// Ends a task that failed: settles what it left open (see [`settle`]), unless a newer
    /// epoch fenced it (that one owns what is open now).
    pub async fn abandon(mut self, topics: &Topics) -> Result<(), TopicError> {
        let _ = self.settle_markers().await;
        if self.fenced {
            return Ok(());
        }
        settle(&self.store, topics, &self.key).await
    }
}
