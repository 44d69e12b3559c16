//! `POST /v1/processors/{name}/reset`: moves every task's committed offset (to the earliest,
//! the latest, an offset, or the first record at or after a time) and, if asked, clears the
//! state, while the processor is stopped; then starts it again.

use std::sync::Arc;

use serde::Deserialize;

use super::{ProcessorError, Processors};
use crate::group::offsets::task_key;
use crate::group::{CommitKind, PartBound, TaskCommit};
use crate::topic::{Isolation, TopicError};

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
            Ok(()) => self.move_offsets(name, &input, req).await,
            Err(e) => Err(e),
        };
        let result = match (result, req.state) {
            (Ok(()), true) => self.clear_state(name).await,
            (r, _) => r,
        };
        // Whatever happened, the processor runs again (from what was written).
        p.status.restart(p.stored.paused);
        let (r, published) = self.start(name, &p.stored, Arc::clone(&p.status), false).await;
        *running = r;
        slot.publish(Some(published));
        result
    }

    async fn move_offsets(
        &self,
        name: &str,
        input: &Arc<crate::topic::Topic>,
        req: &ResetRequest,
    ) -> Result<(), ProcessorError> {
        let offsets = &self.0.offsets;
        for partition in &input.partitions {
            let (start, _) = partition.bounds();
            // Retention may have moved the start past a stable offset not yet refreshed.
            let end = partition.end(Isolation::ReadCommitted).max(start);
            let offset = match req.to {
                ResetTo::Position(Position::Earliest) => start,
                ResetTo::Position(Position::Latest) => end,
                ResetTo::Offset(n) => n.clamp(start, end),
                ResetTo::Time { timestamp } => partition
                    .first_offset_at_or_after(timestamp, Isolation::ReadCommitted)
                    .await?
                    .clamp(start, end),
            };
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
        let dir = self.0.dir.join(name).join("state");
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProcessorError::io(&dir, e)),
        })
        .await
        .map_err(|_| ProcessorError::Topic(TopicError::ShuttingDown))?
    }
}
