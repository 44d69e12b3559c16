//! Running compaction on a partition, off the async threads: plan under the log's read lock,
//! build the cleaned segments reading the log a chunk at a time (each chunk under the lock
//! briefly, paced to `COMPACTION_BYTES_PER_SEC`), then install under the write lock. Appends
//! and reads go on meanwhile.

use std::time::{Duration, Instant};

use super::Partition;
use crate::log::compaction::{self, Built};
use crate::log::{FsRef, LogError};

/// Most bytes a compaction pass reads per second: it must not take the disk from producers.
pub const COMPACTION_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;

/// One compaction pass of `partition`, if it has something to clean. Blocking.
pub fn compact(
    fs: &FsRef,
    partition: &Partition,
    delete_retention_ms: i64,
    now_ms: i64,
) -> Result<Option<Built>, LogError> {
    let (plan, dir, settings) = {
        let log = partition.log();
        let Some(plan) = log.compaction_plan(now_ms) else {
            return Ok(None);
        };
        (
            plan,
            log.dir().to_owned(),
            log.compaction_settings(now_ms, delete_retention_ms),
        )
    };
    let started = Instant::now();
    let mut read_bytes = 0u64;
    let mut read = |offset: u64, max: usize, out: &mut Vec<u8>| {
        partition.log().read(offset, max, out)?;
        read_bytes += out.len() as u64;
        let due = Duration::from_secs_f64(read_bytes as f64 / COMPACTION_BYTES_PER_SEC as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        Ok(())
    };
    let built = compaction::build(fs, &dir, &plan, settings, &mut read)?;
    let mut log = partition.log_mut();
    let installed = log.install_compacted(&built, now_ms)?;
    partition.refresh(&log);
    Ok(installed.then_some(built))
}
