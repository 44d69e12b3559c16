//! Sparse indexes of a segment, memory-mapped: an offset index and a time index.
//!
//! ```text
//! offset index entry (8 bytes):  REL_OFFSET u32 BE @0 | POSITION u32 BE @4
//! time index entry  (12 bytes):  TIMESTAMP  i64 BE @0 | REL_OFFSET u32 BE @8
//! ```
//! `REL_OFFSET` is the batch's base offset minus the segment's base offset; `POSITION` is where
//! the batch starts in the log file. An entry is added once at least `index_interval_bytes` of log
//! have been written since the last one, and never for the batch at position 0, so a zero entry
//! marks the end of a preallocated file. The time index records the segment's largest timestamp so
//! far, whenever it grows, at the same points. Both layouts are Kafka's.
//!
//! The active segment's files are preallocated to their capacity and mapped read-write; sealing
//! cuts them to the entries they hold. An index is a cache of its log: recovery rebuilds it
//! whenever it disagrees.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// Bytes of an offset index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of a time index entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// A file of fixed-size entries, mapped into memory.
#[derive(Debug)]
struct MappedEntries {
    path: PathBuf,
    file: File,
    map: Option<MmapMut>,
    entry_bytes: usize,
    entries: usize,
    capacity: usize,
}

impl MappedEntries {
    /// Opens (creating if missing) and counts the valid entries with `is_next(prev, cur)`.
    /// `capacity` is `Some(n)` for an active segment: the file is grown to `n` entries.
    fn open(
        path: &Path,
        entry_bytes: usize,
        capacity: Option<usize>,
        is_next: impl Fn(Option<&[u8]>, &[u8]) -> bool,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        let capacity = match capacity {
            Some(n) => {
                let n = n.max(len / entry_bytes);
                if len < n * entry_bytes {
                    file.set_len((n * entry_bytes) as u64)?;
                }
                n
            }
            None => len / entry_bytes,
        };
        let mut this = Self {
            path: path.to_owned(),
            file,
            map: None,
            entry_bytes,
            entries: 0,
            capacity,
        };
        this.remap()?;
        let mut prev: Option<usize> = None;
        while this.entries < capacity {
            let cur = this.entry(this.entries);
            if !is_next(prev.map(|p| this.entry(p)), cur) {
                break;
            }
            prev = Some(this.entries);
            this.entries += 1;
        }
        Ok(this)
    }

    fn remap(&mut self) -> io::Result<()> {
        self.map = None;
        if self.capacity > 0 {
            // SAFETY: the file belongs to this struct alone: Weir never opens an index file twice,
            // and every resize (seal, open) drops the mapping before `set_len`.
            self.map = Some(unsafe { MmapMut::map_mut(&self.file)? });
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> &[u8] {
        let map = self.map.as_ref().expect("an index with entries is mapped");
        &map[i * self.entry_bytes..(i + 1) * self.entry_bytes]
    }

    fn push(&mut self, entry: &[u8]) -> bool {
        debug_assert_eq!(entry.len(), self.entry_bytes);
        if self.entries >= self.capacity {
            return false;
        }
        let at = self.entries * self.entry_bytes;
        let map = self.map.as_mut().expect("an index with capacity is mapped");
        map[at..at + self.entry_bytes].copy_from_slice(entry);
        self.entries += 1;
        true
    }

    fn truncate(&mut self, entries: usize) {
        if entries >= self.entries {
            return;
        }
        if let Some(map) = self.map.as_mut() {
            map[entries * self.entry_bytes..self.entries * self.entry_bytes].fill(0);
        }
        self.entries = entries;
    }

    /// Writes the mapped entries to disk (msync), so that they survive a machine crash.
    fn flush(&self) -> io::Result<()> {
        match self.map.as_ref() {
            Some(map) if self.entries > 0 => map.flush_range(0, self.entries * self.entry_bytes),
            _ => Ok(()),
        }
    }

    /// Cuts the file to its entries and makes it durable; the index then takes no more entries.
    fn seal(&mut self) -> io::Result<()> {
        if let Some(map) = self.map.as_ref() {
            map.flush()?;
        }
        self.map = None;
        self.file.set_len((self.entries * self.entry_bytes) as u64)?;
        self.file.sync_all()?;
        self.capacity = self.entries;
        self.remap()
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Index of the last entry whose key (decoded by `key`) is <= `target`.
    fn floor(&self, target: u64, key: impl Fn(&[u8]) -> u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

fn u32_at(e: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]])
}

fn i64_at(e: &[u8], at: usize) -> i64 {
    let mut b = [0; 8];
    b.copy_from_slice(&e[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Maps relative offsets to log file positions.
#[derive(Debug)]
pub struct OffsetIndex(MappedEntries);

impl OffsetIndex {
    /// Opens the index; `capacity_bytes` is `Some` for the active segment.
    pub fn open(path: &Path, capacity_bytes: Option<usize>) -> io::Result<Self> {
        let capacity = capacity_bytes.map(|b| b / OFFSET_ENTRY_BYTES);
        let inner = MappedEntries::open(path, OFFSET_ENTRY_BYTES, capacity, |prev, cur| {
            let (off, pos) = (u32_at(cur, 0), u32_at(cur, 4));
            match prev {
                None => off > 0 && pos > 0,
                Some(p) => off > u32_at(p, 0) && pos > u32_at(p, 4),
            }
        })?;
        Ok(Self(inner))
    }

    pub fn len(&self) -> usize {
        self.0.entries
    }

    pub fn is_empty(&self) -> bool {
        self.0.entries == 0
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// `(relative offset, position)` of entry `i`.
    pub fn get(&self, i: usize) -> (u32, u32) {
        let e = self.0.entry(i);
        (u32_at(e, 0), u32_at(e, 4))
    }

    /// Appends an entry; false when the index is full (the segment must roll).
    pub fn push(&mut self, rel_offset: u32, position: u32) -> bool {
        let mut e = [0; OFFSET_ENTRY_BYTES];
        e[..4].copy_from_slice(&rel_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.0.push(&e)
    }

    /// The last entry at or before `rel_offset`: where a scan for it should start.
    pub fn lookup(&self, rel_offset: u32) -> Option<(u32, u32)> {
        self.0
            .floor(u64::from(rel_offset), |e| u64::from(u32_at(e, 0)))
            .map(|i| self.get(i))
    }

    pub fn truncate(&mut self, entries: usize) {
        self.0.truncate(entries);
    }

    pub fn seal(&mut self) -> io::Result<()> {
        self.0.seal()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }
}

/// Maps timestamps to the first relative offset whose batch may hold them.
#[derive(Debug)]
pub struct TimeIndex(MappedEntries);

impl TimeIndex {
    pub fn open(path: &Path, capacity_bytes: Option<usize>) -> io::Result<Self> {
        let capacity = capacity_bytes.map(|b| b / TIME_ENTRY_BYTES);
        let inner = MappedEntries::open(path, TIME_ENTRY_BYTES, capacity, |prev, cur| {
            let (ts, off) = (i64_at(cur, 0), u32_at(cur, 8));
            match prev {
                None => off > 0,
                Some(p) => ts > i64_at(p, 0) && off > u32_at(p, 8),
            }
        })?;
        Ok(Self(inner))
    }

    pub fn len(&self) -> usize {
        self.0.entries
    }

    pub fn is_empty(&self) -> bool {
        self.0.entries == 0
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// `(max timestamp so far, relative offset)` of entry `i`.
    pub fn get(&self, i: usize) -> (i64, u32) {
        let e = self.0.entry(i);
        (i64_at(e, 0), u32_at(e, 8))
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    pub fn push(&mut self, timestamp: i64, rel_offset: u32) -> bool {
        let mut e = [0; TIME_ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel_offset.to_be_bytes());
        self.0.push(&e)
    }

    /// Relative offset of the last entry whose timestamp is below `timestamp`: no record at or
    /// after `timestamp` sits before it.
    pub fn lookup(&self, timestamp: i64) -> Option<u32> {
        let below = timestamp.checked_sub(1)?;
        // Order-preserving map of i64 onto u64 so the shared binary search applies.
        let key = |e: &[u8]| (i64_at(e, 0) as u64) ^ (1 << 63);
        self.0.floor((below as u64) ^ (1 << 63), key).map(|i| self.get(i).1)
    }

    pub fn truncate(&mut self, entries: usize) {
        self.0.truncate(entries);
    }

    pub fn seal(&mut self) -> io::Result<()> {
        self.0.seal()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_finds_the_floor_entry_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, Some(80)).unwrap();
        assert!(idx.is_empty());
        for i in 1..=10u32 {
            assert!(idx.push(i * 10, i * 1000));
        }
        assert!(idx.is_full());
        assert!(!idx.push(200, 20_000));
        assert_eq!(idx.lookup(5), None);
        assert_eq!(idx.lookup(10), Some((10, 1000)));
        assert_eq!(idx.lookup(55), Some((50, 5000)));
        assert_eq!(idx.lookup(1_000), Some((100, 10_000)));
        drop(idx);
        let mut idx = OffsetIndex::open(&path, Some(160)).unwrap();
        assert_eq!(
            idx.len(),
            10,
            "reopened active index counts its entries up to the zero tail"
        );
        idx.truncate(4);
        idx.seal().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let idx = OffsetIndex::open(&path, None).unwrap();
        assert_eq!(idx.lookup(1_000), Some((40, 4000)));
    }

    #[test]
    fn time_index_lookup_returns_offset_before_the_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("0.timeindex"), Some(120)).unwrap();
        idx.push(100, 5);
        idx.push(200, 9);
        idx.push(300, 14);
        assert_eq!(idx.lookup(50), None);
        assert_eq!(idx.lookup(150), Some(5));
        assert_eq!(idx.lookup(200), Some(5));
        assert_eq!(idx.lookup(201), Some(9));
        assert_eq!(idx.last(), Some((300, 14)));
    }

    #[test]
    fn empty_sealed_index_opens_without_a_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, Some(64)).unwrap();
        idx.seal().unwrap();
        let idx = OffsetIndex::open(&path, None).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.lookup(3), None);
    }
}
