//! Transactions in one partition's log, as Kafka keeps them: which producers have a
//! transaction open here and from which offset (the *last stable offset* stops at the oldest),
//! the newest epoch of each producer (an older epoch is a zombie and is fenced), and the index
//! of aborted transactions that readers of committed records skip.
//!
//! ```text
//! DATA/topics/NAME/P/aborted-txns: entries of 32 bytes, little-endian, appended in order:
//!    0  producer_id   i64
//!    8  first_offset  u64  the aborted transaction's first offset in this partition
//!   16  last_offset   u64  its ABORT marker's offset
//!   24  crc           u32  CRC32C of bytes 0..24
//!   28  (zero)        u32
//! ```
//!
//! An entry is made durable *before* its marker is appended: a marker on disk whose entry a
//! crash lost would turn aborted records into committed ones. An entry without its marker (the
//! append after it failed) only names records that are being aborted anyway.
//!
//! What is open lives in memory: the log does not learn it back at startup. Whoever runs
//! transactions (a processor task) resolves the ones a crash left open, from its own durable
//! record of where it wrote, before anything reads (see `processor/txn.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::LogError;
use super::batch::{BatchKind, Producer};
use super::fs::{FsRef, Open};

/// The file's name in a partition directory.
pub const FILE_NAME: &str = "aborted-txns";
const ENTRY_BYTES: usize = 32;

/// A transaction that was aborted: readers of committed records skip `producer_id`'s batches
/// from `first_offset` to `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..8].copy_from_slice(&self.producer_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_offset.to_le_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(b[24..28].try_into().ok()?);
        (crc32c::crc32c(&b[..24]) == crc).then(|| Self {
            producer_id: u64_at(0) as i64,
            first_offset: u64_at(8),
            last_offset: u64_at(16),
        })
    }

    /// Whether a batch of `producer_id` at `offset` belongs to this aborted transaction.
    pub fn covers(&self, producer_id: i64, offset: u64) -> bool {
        self.producer_id == producer_id && (self.first_offset..=self.last_offset).contains(&offset)
    }
}

/// A producer writing with an epoch older than the partition has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenced {
    pub producer: Producer,
    pub current_epoch: i16,
}

/// The transaction state of one partition.
#[derive(Debug)]
pub struct TxnState {
    fs: FsRef,
    path: PathBuf,
    /// Producer id to the first offset of its open transaction here.
    open: BTreeMap<i64, u64>,
    /// Producer id to the newest epoch seen here.
    epochs: HashMap<i64, i16>,
    /// In the order written (ascending `last_offset`).
    aborted: Vec<AbortedTxn>,
    /// Bytes of whole entries in the file.
    file_bytes: u64,
}

impl TxnState {
    /// Loads the aborted index of the partition in `dir`; a torn last entry is cut off.
    pub fn open(fs: &FsRef, dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(FILE_NAME);
        let io = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        let bytes = fs.read_file(&path).map_err(io)?.unwrap_or_default();
        let mut aborted = Vec::new();
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            match AbortedTxn::decode(chunk) {
                Some(a) => aborted.push(a),
                None => break,
            }
        }
        let whole = (aborted.len() * ENTRY_BYTES) as u64;
        if whole < bytes.len() as u64 {
            tracing::warn!(path = %path.display(), kept = aborted.len(), "cutting a torn tail off the aborted-transaction index");
            let file = fs.open(&path, Open::Existing).map_err(io)?;
            file.set_len(whole).and_then(|()| file.sync_data()).map_err(io)?;
        }
        Ok(Self {
            fs: fs.clone(),
            path,
            open: BTreeMap::new(),
            epochs: HashMap::new(),
            aborted,
            file_bytes: whole,
        })
    }

    /// Refuses a batch of a producer whose epoch is older than one seen here.
    pub fn check(&self, kind: &BatchKind) -> Result<(), Fenced> {
        let Some(p) = kind.producer() else { return Ok(()) };
        match self.epochs.get(&p.id) {
            Some(&current) if p.epoch < current => Err(Fenced {
                producer: p,
                current_epoch: current,
            }),
            _ => Ok(()),
        }
    }

    /// Raises `producer`'s epoch here without writing: its older epochs are fenced from now on.
    pub fn fence(&mut self, producer: Producer) {
        let e = self.epochs.entry(producer.id).or_insert(producer.epoch);
        *e = (*e).max(producer.epoch);
    }

    /// First offset of the oldest open transaction.
    pub fn first_open(&self) -> Option<u64> {
        self.open.values().min().copied()
    }

    /// The first offset of `producer_id`'s open transaction, if it has one here.
    pub fn open_first(&self, producer_id: i64) -> Option<u64> {
        self.open.get(&producer_id).copied()
    }

    /// Before an ABORT marker goes at `marker_offset`: makes its index entry durable. `first`
    /// is where the transaction began when this process did not see it begin (it was left
    /// open by a crash); none at all means the producer wrote nothing here.
    pub fn before_abort(&mut self, producer_id: i64, first: Option<u64>, marker_offset: u64) -> Result<(), LogError> {
        let first = self.open.get(&producer_id).copied().or(first).unwrap_or(marker_offset);
        let entry = AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: marker_offset,
        };
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        let file = self.fs.open(&self.path, Open::Create).map_err(io)?;
        if self.file_bytes == 0 {
            // A new file's name must be durable with its first entry.
            if let Some(dir) = self.path.parent() {
                self.fs.sync_dir(dir).map_err(io)?;
            }
        }
        file.write_all_at(&entry.encode(), self.file_bytes)
            .and_then(|()| file.sync_data())
            .map_err(io)?;
        self.file_bytes += ENTRY_BYTES as u64;
        self.aborted.push(entry);
        Ok(())
    }

    /// After a batch of `kind` was appended at `base_offset`.
    pub fn after_append(&mut self, kind: &BatchKind, base_offset: u64) {
        match *kind {
            BatchKind::Plain => {}
            BatchKind::Transactional(p) => {
                self.fence(p);
                self.open.entry(p.id).or_insert(base_offset);
            }
            BatchKind::Marker { producer, .. } => {
                self.fence(producer);
                self.open.remove(&producer.id);
            }
        }
    }

    /// Aborted transactions that overlap offsets `from..to`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// All aborted transactions (compaction drops their records).
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    /// Forgets entries wholly below `log_start` (retention deleted their records), rewriting
    /// the file when that frees at least half of it.
    pub fn trim(&mut self, log_start: u64) -> Result<(), LogError> {
        let keep: Vec<AbortedTxn> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= log_start)
            .copied()
            .collect();
        if keep.len() == self.aborted.len() || keep.len() * 2 > self.aborted.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(keep.len() * ENTRY_BYTES);
        for a in &keep {
            bytes.extend_from_slice(&a.encode());
        }
        let tmp = self.path.with_extension("tmp");
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        let file = self.fs.open(&tmp, Open::Truncate).map_err(io)?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_data())
            .map_err(io)?;
        self.fs.rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            self.fs.sync_dir(dir).map_err(io)?;
        }
        self.file_bytes = bytes.len() as u64;
        self.aborted = keep;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::RealFs;

    #[test]
    fn aborted_entries_survive_a_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let mut t = TxnState::open(&fs, dir.path()).unwrap();
        let p = Producer { id: 5, epoch: 0 };
        t.after_append(&BatchKind::Transactional(p), 10);
        t.after_append(&BatchKind::Transactional(p), 12);
        assert_eq!(t.first_open(), Some(10));
        t.before_abort(5, None, 20).unwrap();
        t.after_append(
            &BatchKind::Marker {
                producer: p,
                commit: false,
            },
            20,
        );
        assert_eq!(t.first_open(), None);
        t.before_abort(9, Some(30), 40).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let t = TxnState::open(&fs, dir.path()).unwrap();
        assert_eq!(
            t.aborted(),
            &[
                AbortedTxn {
                    producer_id: 5,
                    first_offset: 10,
                    last_offset: 20
                },
                AbortedTxn {
                    producer_id: 9,
                    first_offset: 30,
                    last_offset: 40
                },
            ]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 64);
        assert_eq!(t.aborted_between(21, 30).len(), 0);
        assert_eq!(t.aborted_between(0, 11).len(), 1);
        assert!(t.aborted()[0].covers(5, 15) && !t.aborted()[0].covers(6, 15));
    }

    #[test]
    fn an_older_epoch_is_fenced_once_a_newer_one_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TxnState::open(&RealFs::shared(), dir.path()).unwrap();
        let old = Producer { id: 1, epoch: 3 };
        let new = Producer { id: 1, epoch: 4 };
        assert!(t.check(&BatchKind::Transactional(old)).is_ok());
        t.after_append(&BatchKind::Transactional(new), 0);
        assert_eq!(
            t.check(&BatchKind::Transactional(old)),
            Err(Fenced {
                producer: old,
                current_epoch: 4
            })
        );
        assert!(
            t.check(&BatchKind::Marker {
                producer: old,
                commit: true
            })
            .is_err()
        );
        assert!(t.check(&BatchKind::Plain).is_ok());
        t.fence(Producer { id: 2, epoch: 9 });
        assert!(
            t.check(&BatchKind::Transactional(Producer { id: 2, epoch: 8 }))
                .is_err()
        );
    }

    #[test]
    fn trimming_drops_entries_below_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let mut t = TxnState::open(&fs, dir.path()).unwrap();
        for i in 0..10u64 {
            t.before_abort(1, Some(i * 10), i * 10 + 5).unwrap();
        }
        t.trim(70).unwrap();
        assert_eq!(t.aborted().len(), 3);
        let t = TxnState::open(&fs, dir.path()).unwrap();
        assert_eq!(t.aborted().len(), 3);
        assert_eq!(t.aborted()[0].first_offset, 70);
    }
}
