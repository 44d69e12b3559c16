//! One partition's log on disk: record batches in segment files with sparse indexes.
//!
//! How it fits together: [`batch`] encodes and checks record batches (Kafka's RecordBatch v2
//! layout); [`index`] holds the offset and time indexes; [`fs`] is the file-system seam a crash test can swap; [`segment`] is one log file
//! with its indexes; [`PartitionLog`] is the ordered set of segments of a partition, with append,
//! read, roll, retention and crash recovery; [`txn`] tracks open and aborted transactions;
//! [`recovery_point`] records how far the active
//! segment is known whole, so that crash recovery verifies only what follows. Everything here is synchronous: async callers go
//! through the topic layer's writer task or `spawn_blocking`.

pub mod batch;
pub mod compaction;
#[cfg(test)]
mod crash_tests;
pub mod fs;
pub mod index;
mod partition_log;
pub mod recovery_point;
pub mod segment;
pub mod txn;
pub mod varint;

use std::io;
use std::path::PathBuf;

pub use batch::{NewRecord, RecordView};
pub use fs::{FsRef, RealFs};
pub use partition_log::{Group, LogConfig, PartitionLog, Unclosed, scan_unclosed};
pub use recovery_point::RecoveryPoint;
pub use segment::Recovery;
pub use txn::AbortedTxn;

impl LogError {
    /// Whether the error is a full disk (or quota): the caller can say so and retry later.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io { source, .. } if fs::is_disk_full(source))
    }

    /// Whether the error is the process (EMFILE) or the system (ENFILE) out of file
    /// descriptors: passing, once connections close.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, Self::Io { source, .. } if matches!(source.raw_os_error(), Some(23 | 24)))
    }
}

/// Errors of the log layer. Each names the file or offsets involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt log {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error(
        "producer {producer_id} wrote with epoch {epoch}, but epoch {current_epoch} has written since: this writer was fenced (a newer instance took over)"
    )]
    Fenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("the log in {dir} was closed (its topic was deleted)")]
    Closed { dir: PathBuf },
    #[error(
        "offset {offset} is out of range: the log starts at {log_start_offset} and its high watermark is {high_watermark}"
    )]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        high_watermark: u64,
    },
}
