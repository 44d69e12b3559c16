//! Sparse indexes of a segment: an offset index and a time index.
//!
//! ```text
//! offset index entry (8 bytes):  REL_OFFSET u32 BE @0 | POSITION u32 BE @4
//! time index entry  (12 bytes):  TIMESTAMP  i64 BE @0 | REL_OFFSET u32 BE @8
//! ```
//! `REL_OFFSET` is the batch's base offset minus the segment's base offset; `POSITION` is where
//! the batch starts in the log file. An entry is added once at least `index_interval_bytes` of log
//! have been written since the last one, and never for the batch at position 0, so a zero entry
//! marks the end of the valid entries (files of earlier versions were preallocated with zeros).
//! The time index records the segment's largest timestamp so far, whenever it grows, at the same
//! points. Both layouts are Kafka's.
//!
//! No mapping: the active segment's entries live in memory and are appended to the file with
//! `write` as they are made, so a full disk is an `ENOSPC` the producer is told about, never a
//! SIGBUS (a mapped page that cannot be backed kills the process), and a file holds only the
//! entries it has. A sealed index is searched with positioned reads through the page cache
//! (about 20 reads for a 1 GiB segment). An index is a cache of its log: recovery rebuilds it
//! whenever it disagrees.

use std::io;
use std::path::{Path, PathBuf};

use super::fs::{FileRef, FsRef, Open};

/// Bytes of an offset index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of a time index entry.
pub const TIME_ENTRY_BYTES: usize = 12;
/// Largest entry of either index.
const ENTRY_BYTES_MAX: usize = TIME_ENTRY_BYTES;

/// A file of fixed-size entries.
#[derive(Debug)]
struct Entries {
    path: PathBuf,
    file: FileRef,
    entry_bytes: usize,
    /// The entries of an active index, as in the file. `None` once sealed: read from the file.
    mem: Option<Vec<u8>>,
    entries: usize,
    capacity: usize,
}

impl Entries {
    /// Opens (creating if missing) and counts the valid entries with `is_next(prev, cur)`.
    /// `capacity` is `Some(n)` for an active segment: it takes up to `n` entries. Bytes after the
    /// valid entries (a zero tail, a torn entry) are cut from an active index.
    fn open(
        fs: &FsRef,
        path: &Path,
        entry_bytes: usize,
        capacity: Option<usize>,
        is_next: impl Fn(Option<&[u8]>, &[u8]) -> bool,
    ) -> io::Result<Self> {
        let file = fs.open(path, Open::Create)?;
        let len = file.len()? as usize;
        let mut bytes = vec![0; len - len % entry_bytes];
        file.read_exact_at(&mut bytes, 0)?;
        let mut entries = 0;
        let mut prev: Option<&[u8]> = None;
        for cur in bytes.chunks_exact(entry_bytes) {
            if !is_next(prev, cur) {
                break;
            }
            prev = Some(cur);
            entries += 1;
        }
        bytes.truncate(entries * entry_bytes);
        let (mem, capacity) = match capacity {
            Some(n) => {
                if len > bytes.len() {
                    file.set_len(bytes.len() as u64)?;
                }
                (Some(bytes), n.max(entries))
            }
            None => (None, entries),
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            entry_bytes,
            mem,
            entries,
            capacity,
        })
    }

    /// Entry `i` (below `entries`) into `buf`.
    fn entry<'b>(&self, i: usize, buf: &'b mut [u8; ENTRY_BYTES_MAX]) -> io::Result<&'b [u8]> {
        let out = &mut buf[..self.entry_bytes];
        match &self.mem {
            Some(mem) => out.copy_from_slice(&mem[i * self.entry_bytes..(i + 1) * self.entry_bytes]),
            None => self.file.read_exact_at(out, (i * self.entry_bytes) as u64)?,
        }
        Ok(out)
    }

    /// Appends an entry to the file, then to memory. `Ok(false)` when the index is full (the
    /// segment must roll); an error (a full disk) leaves the index as it was.
    fn push(&mut self, entry: &[u8]) -> io::Result<bool> {
        debug_assert_eq!(entry.len(), self.entry_bytes);
        let Some(mem) = self.mem.as_mut() else {
            return Ok(false);
        };
        if self.entries >= self.capacity {
            return Ok(false);
        }
        self.file.write_all_at(entry, mem.len() as u64)?;
        mem.extend_from_slice(entry);
        self.entries += 1;
        Ok(true)
    }

    /// Keeps the first `entries` entries.
    fn truncate(&mut self, entries: usize) -> io::Result<()> {
        if entries >= self.entries {
            return Ok(());
        }
        if let Some(mem) = self.mem.as_mut() {
            mem.truncate(entries * self.entry_bytes);
        }
        self.entries = entries;
        self.file.set_len((entries * self.entry_bytes) as u64)
    }

    /// Makes the entries durable.
    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Makes the entries durable; the index then takes no more entries and reads from its file.
    fn seal(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.mem = None;
        self.capacity = self.entries;
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Index of the last entry whose key (decoded by `key`) is <= `target`.
    fn floor(&self, target: u64, key: impl Fn(&[u8]) -> u64) -> io::Result<Option<usize>> {
        let (mut lo, mut hi) = (0, self.entries);
        let mut buf = [0; ENTRY_BYTES_MAX];
        while lo < hi {
            let mid = (lo + hi) / 2;
            if key(self.entry(mid, &mut buf)?) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1))
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
pub struct OffsetIndex(Entries);

impl OffsetIndex {
    /// Opens the index; `capacity_bytes` is `Some` for the active segment.
    pub fn open(fs: &FsRef, path: &Path, capacity_bytes: Option<usize>) -> io::Result<Self> {
        let capacity = capacity_bytes.map(|b| b / OFFSET_ENTRY_BYTES);
        let inner = Entries::open(fs, path, OFFSET_ENTRY_BYTES, capacity, |prev, cur| {
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
    pub fn get(&self, i: usize) -> io::Result<(u32, u32)> {
        let mut buf = [0; ENTRY_BYTES_MAX];
        let e = self.0.entry(i, &mut buf)?;
        Ok((u32_at(e, 0), u32_at(e, 4)))
    }

    /// The last entry, if any.
    pub fn last(&self) -> io::Result<Option<(u32, u32)>> {
        self.len().checked_sub(1).map(|i| self.get(i)).transpose()
    }

    /// Appends an entry; `Ok(false)` when the index is full (the segment must roll).
    pub fn push(&mut self, rel_offset: u32, position: u32) -> io::Result<bool> {
        let mut e = [0; OFFSET_ENTRY_BYTES];
        e[..4].copy_from_slice(&rel_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.0.push(&e)
    }

    /// The last entry at or before `rel_offset`: where a scan for it should start.
    pub fn lookup(&self, rel_offset: u32) -> io::Result<Option<(u32, u32)>> {
        self.0
            .floor(u64::from(rel_offset), |e| u64::from(u32_at(e, 0)))?
            .map(|i| self.get(i))
            .transpose()
    }

    pub fn truncate(&mut self, entries: usize) -> io::Result<()> {
        self.0.truncate(entries)
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
pub struct TimeIndex {
    inner: Entries,
    /// The last entry, kept so appends need not read it back.
    last: Option<(i64, u32)>,
}

impl TimeIndex {
    pub fn open(fs: &FsRef, path: &Path, capacity_bytes: Option<usize>) -> io::Result<Self> {
        let capacity = capacity_bytes.map(|b| b / TIME_ENTRY_BYTES);
        let inner = Entries::open(fs, path, TIME_ENTRY_BYTES, capacity, |prev, cur| {
            let (ts, off) = (i64_at(cur, 0), u32_at(cur, 8));
            match prev {
                None => off > 0,
                Some(p) => ts > i64_at(p, 0) && off > u32_at(p, 8),
            }
        })?;
        let mut this = Self { inner, last: None };
        this.last = this.read_last()?;
        Ok(this)
    }

    fn read_last(&self) -> io::Result<Option<(i64, u32)>> {
        self.len().checked_sub(1).map(|i| self.get(i)).transpose()
    }

    pub fn len(&self) -> usize {
        self.inner.entries
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries == 0
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// `(max timestamp so far, relative offset)` of entry `i`.
    pub fn get(&self, i: usize) -> io::Result<(i64, u32)> {
        let mut buf = [0; ENTRY_BYTES_MAX];
        let e = self.inner.entry(i, &mut buf)?;
        Ok((i64_at(e, 0), u32_at(e, 8)))
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.last
    }

    /// Appends an entry; `Ok(false)` when the index is full.
    pub fn push(&mut self, timestamp: i64, rel_offset: u32) -> io::Result<bool> {
        let mut e = [0; TIME_ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel_offset.to_be_bytes());
        let pushed = self.inner.push(&e)?;
        if pushed {
            self.last = Some((timestamp, rel_offset));
        }
        Ok(pushed)
    }

    /// Relative offset of the last entry whose timestamp is below `timestamp`: no record at or
    /// after `timestamp` sits before it.
    pub fn lookup(&self, timestamp: i64) -> io::Result<Option<u32>> {
        let Some(below) = timestamp.checked_sub(1) else {
            return Ok(None);
        };
        // Order-preserving map of i64 onto u64 so the shared binary search applies.
        let key = |e: &[u8]| (i64_at(e, 0) as u64) ^ (1 << 63);
        self.inner
            .floor((below as u64) ^ (1 << 63), key)?
            .map(|i| self.get(i).map(|(_, off)| off))
            .transpose()
    }

    pub fn truncate(&mut self, entries: usize) -> io::Result<()> {
        self.inner.truncate(entries)?;
        self.last = self.read_last()?;
        Ok(())
    }

    pub fn seal(&mut self) -> io::Result<()> {
        self.inner.seal()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::fs::RealFs;

    #[test]
    fn offset_index_finds_the_floor_entry_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&fs, &path, Some(80)).unwrap();
        assert!(idx.is_empty());
        for i in 1..=10u32 {
            assert!(idx.push(i * 10, i * 1000).unwrap());
        }
        assert!(idx.is_full());
        assert!(!idx.push(200, 20_000).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            80,
            "the file holds its entries only"
        );
        assert_eq!(idx.lookup(5).unwrap(), None);
        assert_eq!(idx.lookup(10).unwrap(), Some((10, 1000)));
        assert_eq!(idx.lookup(55).unwrap(), Some((50, 5000)));
        assert_eq!(idx.lookup(1_000).unwrap(), Some((100, 10_000)));
        drop(idx);
        let mut idx = OffsetIndex::open(&fs, &path, Some(160)).unwrap();
        assert_eq!(idx.len(), 10, "a reopened active index counts its entries");
        idx.truncate(4).unwrap();
        idx.seal().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let idx = OffsetIndex::open(&fs, &path, None).unwrap();
        assert_eq!(idx.lookup(1_000).unwrap(), Some((40, 4000)));
        assert_eq!(
            idx.lookup(25).unwrap(),
            Some((20, 2000)),
            "a sealed index searches its file"
        );
    }

    #[test]
    fn a_preallocated_index_of_an_earlier_version_is_cut_to_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut bytes = vec![0u8; 4096];
        bytes[..8].copy_from_slice(&[0, 0, 0, 5, 0, 0, 1, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let idx = OffsetIndex::open(&RealFs::shared(), &path, Some(4096)).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }

    #[test]
    fn time_index_lookup_returns_offset_before_the_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&fs, &path, Some(120)).unwrap();
        idx.push(100, 5).unwrap();
        idx.push(200, 9).unwrap();
        idx.push(300, 14).unwrap();
        assert_eq!(idx.lookup(50).unwrap(), None);
        assert_eq!(idx.lookup(150).unwrap(), Some(5));
        assert_eq!(idx.lookup(200).unwrap(), Some(5));
        assert_eq!(idx.lookup(201).unwrap(), Some(9));
        assert_eq!(idx.last(), Some((300, 14)));
        idx.seal().unwrap();
        let idx = TimeIndex::open(&fs, &path, None).unwrap();
        assert_eq!(idx.last(), Some((300, 14)));
        assert_eq!(idx.lookup(201).unwrap(), Some(9));
    }

    #[test]
    fn empty_sealed_index_opens_and_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&fs, &path, Some(64)).unwrap();
        idx.seal().unwrap();
        let idx = OffsetIndex::open(&fs, &path, None).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.lookup(3).unwrap(), None);
    }
}
