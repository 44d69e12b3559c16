//! `POST /v1/processors/{name}/reset`: moves every task's committed offset (to the earliest,
//! the latest, an offset, or the first record at or after a time) and, if asked, clears the
//! state, while the processor is stopped; then starts it again.
//!
//! The offsets are worked out first, then written down with the choice about the state in
//! `NAME/reset.json` (durably) before anything changes. The steps (delete the state, move each
//! offset) are each safe to repeat, and every start of the processor finishes a reset it finds
//! written down before a task runs: a crash or an error half-way never leaves moved offsets
//! beside the old state, or some partitions moved and others not.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Processors};
use crate::group::offsets::task_key;
use crate::group::{CommitKind, PartBound, TaskCommit};
use crate::topic::{Isolation, TopicError};

/// A reset written down before it changes anything.
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    /// The input topic's incarnation the offsets are of.
    input_topic_id: String,
    /// The new offset of each input partition, by partition.
    offsets: Vec<u64>,
    /// Whether the state is cleared too.
    state: bool,
}

/// Where a reset moves the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ResetTo {
    /// `"earliest"` or `"latest"`.
    Position(Position),
    /// An offset (past the end: the end).
    Offset(u64),
    /// `{"timestamp": MS}`: the first record at or after that time.
    Time { timestamp: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Earliest,
    Latest,
}

/// The body of a reset.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub to: ResetTo,
    /// Also clear the state of every store (default false).
    #[serde(default)]
    pub state: bool,
}

impl Processors {
    /// Stops `name`, moves its offsets and maybe clears its state, and starts it again.
    pub async fn reset(&self, name: &str, req: &ResetRequest) -> Result<(), ProcessorError> {
        let (slot, mut running) = self.owner(name, false).await?;
        let Some(p) = slot.published() else {
            return Err(ProcessorError::NotFound(name.to_owned()));
        };
        let input = self.0.topics.get(&p.stored.spec.input)?;
        if let Some(r) = running.take() {
            r.halt().await;
        }
        // A failed task may have left a transaction open, which the moved bounds would hide.
        let mut result = Ok(());
        for partition in &input.partitions {
            let key = task_key(name, partition.id);
            if let Err(e) = super::txn::settle(&self.0.offsets, &self.0.topics, &key).await {
                result = Err(e.into());
                break;
            }
        }
        let result = match result {
            Ok(()) => self.plan(name, &input, req).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(()) => self.finish_reset(name, &input).await,
            Err(e) => Err(e),
        };
        // Whatever happened, the processor runs again (from what was written; a reset written
        // down but not finished is finished by the start, or fails it).
        p.status.restart(p.stored.paused);
        let (r, published) = self.start(name, &p.stored, Arc::clone(&p.status), false).await;
        *running = r;
        slot.publish(Some(published));
        result
    }

    fn intent_path(&self, name: &str) -> PathBuf {
        self.0.dir.join(name).join("reset.json")
    }

    /// Works out every partition's new offset and writes the reset down: nothing has
    /// changed when this fails.
    async fn plan(
        &self,
        name: &str,
        input: &Arc<crate::topic::Topic>,
        req: &ResetRequest,
    ) -> Result<(), ProcessorError> {
        let mut offsets = Vec::with_capacity(input.partitions.len());
        for partition in &input.partitions {
            let (start, _) = partition.bounds();
            // Retention may have moved the start past a stable offset not yet refreshed.
            let end = partition.end(Isolation::ReadCommitted).max(start);
            offsets.push(match req.to {
                ResetTo::Position(Position::Earliest) => start,
                ResetTo::Position(Position::Latest) => end,
                ResetTo::Offset(n) => n.clamp(start, end),
                ResetTo::Time { timestamp } => partition
                    .first_offset_at_or_after(timestamp, Isolation::ReadCommitted)
                    .await?
                    .clamp(start, end),
            });
        }
        let intent = Intent {
            input_topic_id: input.id.clone(),
            offsets,
            state: req.state,
        };
        let path = self.intent_path(name);
        let bytes = serde_json::to_vec(&intent).map_err(|e| ProcessorError::Corrupt(e.to_string()))?;
        off_thread(move || crate::durable::write_atomically(&path, &bytes).map_err(|e| ProcessorError::io(&path, e)))
            .await?
    }

    /// Finishes a reset written down for `name`, if there is one: clears the state if asked,
    /// moves the offsets, and then forgets it. Called with the processor stopped.
    pub(super) async fn finish_reset(
        &self,
        name: &str,
        input: &Arc<crate::topic::Topic>,
    ) -> Result<(), ProcessorError> {
        let path = self.intent_path(name);
        let read = {
            let path = path.clone();
            off_thread(move || std::fs::read(path)).await?
        };
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ProcessorError::io(&path, e)),
        };
        let intent: Intent =
            serde_json::from_slice(&bytes).map_err(|e| ProcessorError::Corrupt(format!("{}: {e}", path.display())))?;
        // Written for an input topic since deleted and made again: its offsets mean nothing.
        if intent.input_topic_id == input.id {
            if intent.state {
                self.clear_state(name).await?;
            }
            self.move_offsets(name, input, &intent.offsets).await?;
        }
        remove_if_present(path, |p| std::fs::remove_file(p)).await
    }

    /// Checkpoints each task at its new offset (`targets`, by partition).
    async fn move_offsets(
        &self,
        name: &str,
        input: &Arc<crate::topic::Topic>,
        targets: &[u64],
    ) -> Result<(), ProcessorError> {
        let offsets = &self.0.offsets;
        for (partition, &offset) in input.partitions.iter().zip(targets) {
            let key = task_key(name, partition.id);
            let commit = match offsets.get(&key) {
                Some(mut c) => {
                    // Settled above: nothing of the tasks is open, every bound is now.
                    for part in &mut c.parts {
                        part.touched = false;
                        if let Ok(t) = self.0.topics.get(&part.topic)
                            && let Some(p) = t.partitions.get(part.partition as usize)
                        {
                            part.from = p.high_watermark();
                        }
                    }
                    // Event time starts again with the records read from here.
                    TaskCommit {
                        kind: CommitKind::Checkpoint,
                        input_topic_id: input.id.clone(),
                        offset,
                        watermark: None,
                        ..c
                    }
                }
                None => TaskCommit {
                    kind: CommitKind::Checkpoint,
                    producer_id: offsets.allocate_producer_id(),
                    producer_epoch: 0,
                    input_topic_id: input.id.clone(),
                    offset,
                    watermark: None,
                    parts: Vec::<PartBound>::new(),
                },
            };
            offsets.checkpoint(&key, commit).await?;
        }
        Ok(())
    }

    /// Deletes the changelog (the next start makes a new, empty one) and the snapshots.
    async fn clear_state(&self, name: &str) -> Result<(), ProcessorError> {
        match self
            .0
            .topics
            .delete_internal(&crate::state::changelog::topic_name(name))
            .await
        {
            Ok(()) | Err(TopicError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        remove_if_present(self.0.dir.join(name).join("state"), |p| std::fs::remove_dir_all(p)).await
    }
}

/// Runs file work off the async threads.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ProcessorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))
}

/// Removes `path` with `remove`; one already gone is fine.
async fn remove_if_present(
    path: PathBuf,
    remove: fn(&std::path::Path) -> std::io::Result<()>,
) -> Result<(), ProcessorError> {
    off_thread(move || match remove(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProcessorError::io(&path, e)),
    })
    .await?
}
