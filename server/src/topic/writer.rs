//! The group-commit writer: one task per partition gathers every append request waiting on its
//! channel, writes them as one `write`, makes them durable with one fsync (policy `always`), then
//! moves the high watermark and answers them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::partition::{AppendRequest, Partition};
use super::spec::FsyncPolicy;
use super::{TopicError, now_ms};
use crate::log::batch::BatchKind;
use crate::log::{Group, LogError};
use crate::metrics::Metrics;

/// Requests one group may gather: bounds the latency a group adds to its first request.
const GROUP_REQUESTS_MAX: usize = 1024;
/// Bytes one group may gather before it is written.
const GROUP_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How often the partition's recovery point moves while data comes in: after a crash, recovery
/// verifies about this much of the newest writes instead of the whole active segment.
const RECOVERY_POINT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until `stop` fires (topic deleted or broker stopping), then commits what is queued,
/// flushes and ends; later appends fail with "shutting down".
pub async fn run(
    partition: Arc<Partition>,
    mut rx: mpsc::Receiver<AppendRequest>,
    stop: CancellationToken,
    policy: FsyncPolicy,
    interval: Duration,
    metrics: Arc<Metrics>,
    on_publish: impl Fn() + Send + 'static,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    let mut last_point = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                rx.close();
                while let Some(first) = rx.recv().await {
                    let mut group = vec![first];
                    while let Ok(next) = rx.try_recv() {
                        group.push(next);
                    }
                    dirty |= commit(&partition, group, policy, &metrics).await;
                    on_publish();
                }
                break;
            }
            first = rx.recv() => {
                let Some(first) = first else { break };
                let mut group = vec![first];
                let mut bytes = group[0].records.iter().map(|r| r.payload_bytes()).sum::<usize>();
                while group.len() < GROUP_REQUESTS_MAX && bytes < GROUP_BYTES_MAX {
                    let Ok(next) = rx.try_recv() else { break };
                    bytes += next.records.iter().map(|r| r.payload_bytes()).sum::<usize>();
                    group.push(next);
                }
                dirty |= commit(&partition, group, policy, &metrics).await;
                on_publish();
                // `always`: everything appended is fsynced now. `never`: a point for this boot
                // only. `interval` moves its point after each interval fsync instead.
                if policy != FsyncPolicy::Interval && last_point.elapsed() >= RECOVERY_POINT_INTERVAL {
                    last_point = Instant::now();
                    let p = Arc::clone(&partition);
                    let _ = tokio::task::spawn_blocking(move || write_recovery_point(&p, policy == FsyncPolicy::Always)).await;
                }
            }
            _ = ticker.tick(), if policy == FsyncPolicy::Interval && dirty => {
                let p = Arc::clone(&partition);
                let m = Arc::clone(&metrics);
                let synced = tokio::task::spawn_blocking(move || {
                    let synced = sync_active(&p, &m);
                    if synced {
                        write_recovery_point(&p, true);
                    }
                    synced
                });
                dirty = !matches!(synced.await, Ok(true));
            }
        }
    }
    if policy != FsyncPolicy::Always && dirty {
        let p = Arc::clone(&partition);
        let _ = tokio::task::spawn_blocking(move || sync_active(&p, &metrics)).await;
    }
}

/// Writes one group, fsyncs per policy, publishes and answers. Returns whether unflushed data
/// remains (for the interval policy).
async fn commit(
    partition: &Arc<Partition>,
    group: Vec<AppendRequest>,
    policy: FsyncPolicy,
    metrics: &Arc<Metrics>,
) -> bool {
    let p = Arc::clone(partition);
    let m = Arc::clone(metrics);
    let work = tokio::task::spawn_blocking(move || {
        let mut log = p.log_mut();
        // A fenced producer's request fails alone; the others of the group go on.
        let fenced: Vec<Option<TopicError>> = group
            .iter()
            .map(|r| log.check_producer(&r.kind).err().map(|e| fenced_error(&p, e)))
            .collect();
        let groups: Vec<Group<'_>> = group
            .iter()
            .zip(&fenced)
            .filter(|(_, f)| f.is_none())
            .map(|(r, _)| Group {
                records: &r.records,
                kind: r.kind,
                aborted_from: r.aborted_from,
            })
            .collect();
        let appended = log.append_groups(&groups, now_ms());
        drop(log);
        let result = match appended {
            Ok(a) if policy == FsyncPolicy::Always => {
                let started = Instant::now();
                match a.file.sync_data() {
                    Ok(()) => {
                        m.fsync_seconds.observe(started.elapsed().as_secs_f64());
                        Ok(a.base_offsets)
                    }
                    Err(e) => {
                        // After a failed fsync the kernel may have dropped the dirty pages: what
                        // the file holds is unknown until recovery reads it again.
                        tracing::error!(topic = %p.topic, partition = p.id, error = %e, "fsync failed; partition stops taking appends");
                        p.mark_failed();
                        Err(TopicError::StorageFailed {
                            topic: p.topic.clone(),
                            partition: p.id,
                            reason: format!("fsync failed: {e}"),
                        })
                    }
                }
            }
            Ok(a) => Ok(a.base_offsets),
            Err(e) => Err(append_error(&p, e)),
        };
        {
            let mut log = p.log_mut();
            if result.is_ok() {
                log.publish();
                p.set_high_watermark(log.high_watermark(), log.stable_offset());
            }
            p.refresh(&log);
        }
        (group, fenced, result)
    });
    let Ok((group, fenced, result)) = work.await else {
        return false;
    };
    match result {
        Ok(bases) => {
            let mut bases = bases.into_iter();
            for (req, fenced) in group.into_iter().zip(fenced) {
                if let Some(e) = fenced {
                    let _ = req.reply.send(Err(e));
                    continue;
                }
                // Empty requests (not markers) get the current end; they wrote nothing.
                let base = if req.records.is_empty() && !matches!(req.kind, BatchKind::Marker { .. }) {
                    partition.high_watermark()
                } else {
                    bases.next().unwrap_or_default()
                };
                let _ = req.reply.send(Ok(base));
            }
            policy == FsyncPolicy::Interval
        }
        Err(e) => {
            for (req, fenced) in group.into_iter().zip(fenced) {
                let _ = req.reply.send(Err(fenced.unwrap_or_else(|| e.clone())));
            }
            false
        }
    }
}

fn fenced_error(p: &Partition, e: LogError) -> TopicError {
    TopicError::Fenced {
        topic: p.topic.clone(),
        partition: p.id,
        detail: e.to_string(),
    }
}

/// What a failed append tells the producer: a full disk and a deleted topic are the
/// producer's to handle (wait, free space, stop); anything else is the broker's fault.
fn append_error(p: &Partition, e: LogError) -> TopicError {
    if e.is_disk_full() {
        tracing::warn!(topic = %p.topic, partition = p.id, error = %e, "append refused: the disk is full");
        return TopicError::DiskFull {
            topic: p.topic.clone(),
            partition: p.id,
            detail: e.to_string(),
        };
    }
    if matches!(e, LogError::Closed { .. }) {
        return TopicError::Deleted(p.topic.clone());
    }
    if e.is_out_of_descriptors() {
        tracing::warn!(topic = %p.topic, partition = p.id, error = %e, "append refused: out of file descriptors");
        return TopicError::Exhausted(format!(
            "the broker is out of file descriptors ({e}); nothing was written, retry shortly"
        ));
    }
    tracing::error!(topic = %p.topic, partition = p.id, error = %e, "append failed");
    TopicError::StorageFailed {
        topic: p.topic.clone(),
        partition: p.id,
        reason: e.to_string(),
    }
}

/// Moves the partition's recovery point to where its active segment stands. `durable`: the
/// log was fsynced up to here. Failing only costs a longer scan after a crash, so it is logged.
fn write_recovery_point(partition: &Partition, durable: bool) -> bool {
    // Under the log's lock: a delete closes the log under the same lock, so the point can
    // never land in the directory of a new topic of the same name.
    match partition.log().write_recovery_point(durable) {
        Ok(()) => true,
        Err(LogError::Closed { .. }) => false,
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.id, error = %e, "cannot write the recovery point");
            false
        }
    }
}

fn sync_active(partition: &Partition, metrics: &Metrics) -> bool {
    let file = partition.log().active_file();
    let started = Instant::now();
    match file.sync_data() {
        Ok(()) => {
            metrics.fsync_seconds.observe(started.elapsed().as_secs_f64());
            true
        }
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.id, error = %e, "interval fsync failed");
            false
        }
    }
}
