//! One segment: a log file of record batches plus its offset and time indexes.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits so that a directory
//! listing sorts them: `00000000000000001000.log`, `.index`, `.timeindex`.

use std::io;
use std::path::{Path, PathBuf};

use super::LogError;
use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::fs::{FileRef, FsRef, Open};
use super::index::{OffsetIndex, TimeIndex};
use super::recovery_point::RecoveryPoint;

/// File name stem of the segment starting at `base`.
pub fn file_stem(base: u64) -> String {
    format!("{base:020}")
}

/// Sizes that shape a segment's files.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// Log bytes between two index entries.
    pub index_interval_bytes: u32,
    /// Preallocated size of the active offset index; the time index gets the same entry count.
    pub index_bytes_max: usize,
}

/// What recovery found at the tail of an active segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the log file.
    pub truncated_bytes: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub reason: Option<String>,
    /// Whether the indexes were rebuilt from the log.
    pub index_rebuilt: bool,
    /// Where the verification started: 0, or the position of a trusted recovery point.
    pub verified_from: u64,
}

/// What a failed append puts back.
struct Undo {
    size: u64,
    next_offset: u64,
    max_timestamp: i64,
    last_indexed_pos: u64,
    index_entries: usize,
    time_index_entries: usize,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: u64,
    fs: FsRef,
    dir: PathBuf,
    file: FileRef,
    /// Whether the log file's name is known durable (its directory was synced since it was
    /// created). The first append syncs the directory: acknowledged records must not vanish
    /// with a name a power cut forgot.
    name_durable: bool,
    /// Set when a failed append may have left bytes after `size` that could not be cut: the
    /// next append cuts them first (stale whole batches there could look valid to recovery).
    tail_dirty: bool,
    /// Bytes of whole batches in the log file.
    size: u64,
    next_offset: u64,
    max_timestamp: i64,
    /// Wall-clock ms when this segment took its first batch (for roll by age).
    pub first_append_ms: Option<i64>,
    last_indexed_pos: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    limits: SegmentLimits,
}

impl Segment {
    fn path(dir: &Path, base: u64, ext: &str) -> PathBuf {
        dir.join(format!("{}.{ext}", file_stem(base)))
    }

    fn io_err(path: PathBuf) -> impl FnOnce(io::Error) -> LogError {
        move |source| LogError::Io { path, source }
    }

    /// Creates a new, empty active segment (replacing leftovers of an earlier attempt).
    pub fn create(fs: &FsRef, dir: &Path, base: u64, limits: SegmentLimits) -> Result<Self, LogError> {
        let log_path = Self::path(dir, base, "log");
        let file = fs.open(&log_path, Open::Truncate).map_err(Self::io_err(log_path))?;
        for ext in ["index", "timeindex"] {
            let p = Self::path(dir, base, ext);
            match fs.remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(LogError::Io { path: p, source: e }),
                _ => {}
            }
        }
        let (index, time_index) = Self::open_indexes(fs, dir, base, Some(limits))?;
        Ok(Self {
            base_offset: base,
            fs: fs.clone(),
            dir: dir.to_owned(),
            file,
            name_durable: false,
            tail_dirty: false,
            size: 0,
            next_offset: base,
            max_timestamp: i64::MIN,
            first_append_ms: None,
            last_indexed_pos: 0,
            index,
            time_index,
            limits,
        })
    }

    fn open_indexes(
        fs: &FsRef,
        dir: &Path,
        base: u64,
        active: Option<SegmentLimits>,
    ) -> Result<(OffsetIndex, TimeIndex), LogError> {
        let cap = active.map(|l| l.index_bytes_max);
        let ip = Self::path(dir, base, "index");
        let index = OffsetIndex::open(fs, &ip, cap).map_err(|source| LogError::Io { path: ip, source })?;
        let tp = Self::path(dir, base, "timeindex");
        let time_cap = cap.map(|b| b / 8 * 12);
        let time_index = TimeIndex::open(fs, &tp, time_cap).map_err(|source| LogError::Io { path: tp, source })?;
        Ok((index, time_index))
    }

    /// Opens an existing segment. A sealed one is trusted (it was fsynced when it rolled) but
    /// its last batches are re-read to learn its end. An active one is recovered: from its last
    /// index entry after a clean shutdown; after a crash from `point` when that describes this
    /// segment and checks out, else from the start.
    pub fn open(
        fs: &FsRef,
        dir: &Path,
        base: u64,
        limits: SegmentLimits,
        active: bool,
        full_scan: bool,
        point: Option<&RecoveryPoint>,
    ) -> Result<(Self, Recovery), LogError> {
        let log_path = Self::path(dir, base, "log");
        let file = fs
            .open(&log_path, Open::Existing)
            .map_err(Self::io_err(log_path.clone()))?;
        let file_len = file.len().map_err(Self::io_err(log_path.clone()))?;
        let (index, time_index) = Self::open_indexes(fs, dir, base, active.then_some(limits))?;
        let mut seg = Self {
            base_offset: base,
            fs: fs.clone(),
            dir: dir.to_owned(),
            file,
            // It was listed in its directory; a crash between its create and the directory's
            // sync may forget it again, so recovery counts on nothing it held being acknowledged
            // until the directory was synced: sync once more before taking appends.
            name_durable: false,
            tail_dirty: false,
            size: file_len,
            next_offset: base,
            max_timestamp: time_index.last().map_or(i64::MIN, |(ts, _)| ts),
            first_append_ms: None,
            last_indexed_pos: 0,
            index,
            time_index,
            limits,
        };
        let mut recovery = Recovery::default();
        if !active {
            seg.scan_tail(file_len, false)?;
            return Ok((seg, recovery));
        }
        if !full_scan {
            match seg.scan_tail(file_len, true) {
                Ok(()) if seg.size == file_len => return Ok((seg.with_first_append(), recovery)),
                Ok(()) | Err(LogError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let resumed = match point {
            Some(p) => seg.resume_at(p, file_len)?,
            None => false,
        };
        if !resumed {
            seg.reset()?;
        }
        recovery.verified_from = seg.size;
        let reason = seg.verify_from_here(file_len)?;
        recovery.index_rebuilt = true;
        if seg.size < file_len {
            recovery.truncated_bytes = file_len - seg.size;
            recovery.reason = reason;
            seg.file.set_len(seg.size).map_err(Self::io_err(log_path.clone()))?;
            seg.file.sync_data().map_err(Self::io_err(log_path))?;
        }
        Ok((seg.with_first_append(), recovery))
    }

    fn with_first_append(mut self) -> Self {
        if self.size > 0 {
            let mut head = [0u8; HEADER_BYTES];
            if self.file.read_exact_at(&mut head, 0).is_ok() {
                self.first_append_ms = BatchHeader::parse(&head).ok().map(|h| h.base_timestamp);
            }
        }
        self
    }

    /// Walks batch headers from the last index entry to `file_len`, learning the next offset,
    /// the max timestamp and the size of whole batches. With `check_crc`, any bad batch is an
    /// error so the caller can fall back to a full rebuild.
    fn scan_tail(&mut self, file_len: u64, check_crc: bool) -> Result<(), LogError> {
        let last = self.index.last().map_err(self.index_err())?;
        let (mut pos, mut expect) = match last {
            Some((rel, p)) => (u64::from(p), self.base_offset + u64::from(rel)),
            None => (0, self.base_offset),
        };
        self.last_indexed_pos = pos;
        let mut buf = Vec::new();
        // A sealed segment may have gaps between batches: compaction took the records there.
        let gaps = !check_crc;
        while pos < file_len {
            let header = match self.read_batch(pos, file_len, check_crc, &mut buf) {
                Ok(h) if h.base_offset == expect || (pos == 0 && expect == self.base_offset) => h,
                Ok(h) if gaps && h.base_offset > expect => h,
                Ok(h) => {
                    return Err(LogError::Corrupt {
                        path: self.log_path(),
                        position: pos,
                        reason: format!("batch at offset {} where {expect} was expected", h.base_offset),
                    });
                }
                Err(reason) => {
                    return Err(LogError::Corrupt {
                        path: self.log_path(),
                        position: pos,
                        reason,
                    });
                }
            };
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            pos += header.total_bytes as u64;
            expect = header.next_offset();
        }
        self.size = pos;
        self.next_offset = expect;
        Ok(())
    }

    fn index_err(&self) -> impl FnOnce(io::Error) -> LogError + use<> {
        Self::io_err(self.index.path().to_owned())
    }

    fn time_index_err(&self) -> impl FnOnce(io::Error) -> LogError + use<> {
        Self::io_err(self.time_index.path().to_owned())
    }

    /// Forgets the indexes and counters, so verification starts at the first batch.
    fn reset(&mut self) -> Result<(), LogError> {
        self.index.truncate(0).map_err(self.index_err())?;
        self.time_index.truncate(0).map_err(self.time_index_err())?;
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = i64::MIN;
        self.last_indexed_pos = 0;
        Ok(())
    }

    /// Takes the state a recovery point describes, if it fits this segment: same base, not past
    /// the end of the file, no more index entries than the files hold, and the last indexed
    /// batch where the index says. Index entries after the point are dropped (they will be
    /// rebuilt). False leaves the segment untouched.
    fn resume_at(&mut self, p: &RecoveryPoint, file_len: u64) -> Result<bool, LogError> {
        let fits = p.segment_base == self.base_offset
            && p.position <= file_len
            && p.next_offset >= self.base_offset
            && (p.index_entries as usize) <= self.index.len()
            && (p.time_index_entries as usize) <= self.time_index.len();
        if !fits {
            return Ok(false);
        }
        let last_indexed = match (p.index_entries as usize).checked_sub(1) {
            Some(i) => Some(self.index.get(i).map_err(self.index_err())?),
            None => None,
        };
        if let Some((rel, pos)) = last_indexed {
            let mut head = [0u8; HEADER_BYTES];
            let batch_ok = u64::from(pos) < p.position
                && self.file.read_exact_at(&mut head, u64::from(pos)).is_ok()
                && BatchHeader::parse(&head).is_ok_and(|h| h.base_offset == self.base_offset + u64::from(rel));
            if !batch_ok {
                return Ok(false);
            }
        }
        self.index
            .truncate(p.index_entries as usize)
            .map_err(self.index_err())?;
        self.time_index
            .truncate(p.time_index_entries as usize)
            .map_err(self.time_index_err())?;
        self.size = p.position;
        self.next_offset = p.next_offset;
        self.max_timestamp = p.max_timestamp;
        self.last_indexed_pos = last_indexed.map_or(0, |(_, pos)| u64::from(pos));
        Ok(true)
    }

    /// Verifies every batch from `self.size` to `file_len` and indexes it. Stops at the first
    /// batch that is cut short, fails its CRC or breaks the offset sequence; returns why.
    fn verify_from_here(&mut self, file_len: u64) -> Result<Option<String>, LogError> {
        let mut buf = Vec::new();
        let mut pos = self.size;
        while pos < file_len {
            let header = match self.read_batch(pos, file_len, true, &mut buf) {
                Ok(h) if h.base_offset == self.next_offset => h,
                Ok(h) => {
                    return Ok(Some(format!(
                        "batch at {pos} has offset {} where {} was expected",
                        h.base_offset, self.next_offset
                    )));
                }
                Err(reason) => return Ok(Some(format!("batch at {pos}: {reason}"))),
            };
            self.note_batch(&header)?;
            pos += header.total_bytes as u64;
        }
        Ok(None)
    }

    /// The recovery point of this (active) segment as it stands. With `durable`, the indexes
    /// are flushed first: the caller has fsynced the log up to here.
    pub fn recovery_point(&self, durable: bool, boot_id: [u8; 16]) -> Result<RecoveryPoint, LogError> {
        if durable {
            self.index.flush().map_err(self.index_err())?;
            self.time_index.flush().map_err(self.time_index_err())?;
        }
        Ok(RecoveryPoint {
            boot_id,
            durable,
            segment_base: self.base_offset,
            position: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            index_entries: self.index.len() as u32,
            time_index_entries: self.time_index.len() as u32,
        })
    }

    /// Reads and checks the batch at `pos`; the error says what is wrong with it.
    fn read_batch(&self, pos: u64, file_len: u64, check_crc: bool, buf: &mut Vec<u8>) -> Result<BatchHeader, String> {
        let mut head = [0u8; HEADER_BYTES];
        let avail = (file_len - pos).min(HEADER_BYTES as u64) as usize;
        self.file
            .read_exact_at(&mut head[..avail], pos)
            .map_err(|e| e.to_string())?;
        let header = BatchHeader::parse(&head[..avail]).map_err(|e| e.to_string())?;
        if pos + header.total_bytes as u64 > file_len {
            return Err(format!(
                "batch needs {} bytes, {} remain",
                header.total_bytes,
                file_len - pos
            ));
        }
        if check_crc {
            buf.resize(header.total_bytes, 0);
            self.file.read_exact_at(buf, pos).map_err(|e| e.to_string())?;
            batch::verify(buf).map_err(|e| e.to_string())?;
        }
        Ok(header)
    }

    /// Records a batch just written at `self.size` in the indexes and the segment's counters.
    /// An error (the index could not be written) leaves the counters as they were.
    fn note_batch(&mut self, header: &BatchHeader) -> Result<(), LogError> {
        let pos = self.size;
        let rel = (header.base_offset - self.base_offset) as u32;
        let max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if pos > 0 && pos - self.last_indexed_pos >= u64::from(self.limits.index_interval_bytes) {
            self.index.push(rel, pos as u32).map_err(self.index_err())?;
            self.last_indexed_pos = pos;
            let newer = self.time_index.last().is_none_or(|(ts, _)| max_timestamp > ts);
            if newer {
                self.time_index
                    .push(max_timestamp, rel)
                    .map_err(self.time_index_err())?;
            }
        }
        self.max_timestamp = max_timestamp;
        self.size += header.total_bytes as u64;
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Whether a batch of `bytes` ending at `next_offset` still fits this segment.
    pub fn fits(&self, bytes: usize, last_offset: u64, segment_bytes: u64) -> bool {
        let empty = self.size == 0;
        let size_ok = empty || self.size + bytes as u64 <= segment_bytes;
        let pos_ok = self.size + bytes as u64 <= u64::from(u32::MAX);
        let rel_ok = last_offset - self.base_offset <= u64::from(u32::MAX);
        let index_ok = !self.index.is_full() && !self.time_index.is_full();
        size_ok && pos_ok && rel_ok && (index_ok || empty)
    }

    /// Appends one batch of a compaction: it may start past `next_offset` (the records between
    /// went), never before.
    pub fn append_compacted(&mut self, bytes: &[u8], header: &BatchHeader, now_ms: i64) -> Result<(), LogError> {
        debug_assert!(header.base_offset >= self.next_offset);
        self.next_offset = header.base_offset;
        self.append(bytes, std::slice::from_ref(header), now_ms)
    }

    /// Writes encoded batches (whole, contiguous, starting at `next_offset`) to the page cache.
    /// All or nothing: on an error (a full disk) the segment is as it was before the call.
    pub fn append(&mut self, bytes: &[u8], headers: &[BatchHeader], now_ms: i64) -> Result<(), LogError> {
        debug_assert_eq!(headers.first().map(|h| h.base_offset), Some(self.next_offset));
        if self.tail_dirty {
            self.file.set_len(self.size).map_err(Self::io_err(self.log_path()))?;
            self.tail_dirty = false;
        }
        if !self.name_durable {
            self.fs.sync_dir(&self.dir).map_err(Self::io_err(self.dir.clone()))?;
            self.name_durable = true;
        }
        let before = Undo {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            last_indexed_pos: self.last_indexed_pos,
            index_entries: self.index.len(),
            time_index_entries: self.time_index.len(),
        };
        let written = self
            .file
            .write_all_at(bytes, self.size)
            .map_err(Self::io_err(self.log_path()))
            .and_then(|()| headers.iter().try_for_each(|h| self.note_batch(h)));
        if let Err(e) = written {
            self.undo(&before);
            return Err(e);
        }
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Puts the segment back as it was before a failed append. Bytes the write left after the
    /// old end are cut now, or before the next append if that fails too.
    fn undo(&mut self, u: &Undo) {
        self.size = u.size;
        self.next_offset = u.next_offset;
        self.max_timestamp = u.max_timestamp;
        self.last_indexed_pos = u.last_indexed_pos;
        // Index entries past the log's end are harmless to recovery (it rebuilds from the log),
        // but the counts must match what the log holds.
        let _ = self.index.truncate(u.index_entries);
        let _ = self.time_index.truncate(u.time_index_entries);
        self.tail_dirty = self.file.set_len(u.size).is_err();
    }

    /// Flushes the log to disk and makes the indexes final: the segment takes no more batches.
    /// On an error the segment is still active and whole.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.file.sync_data().map_err(Self::io_err(self.log_path()))?;
        let rel = self.next_offset.saturating_sub(1).saturating_sub(self.base_offset) as u32;
        let newer = self
            .time_index
            .last()
            .is_none_or(|(ts, off)| self.max_timestamp > ts && rel > off);
        if self.size > 0 && newer && rel > 0 {
            self.time_index
                .push(self.max_timestamp, rel)
                .map_err(self.time_index_err())?;
        }
        self.time_index.flush().map_err(self.time_index_err())?;
        self.index.seal().map_err(self.index_err())?;
        self.time_index.seal().map_err(self.time_index_err())
    }

    /// Position of the batch holding `offset` (or the first batch after it), scanning batch
    /// headers forward from the nearest index entry. Returns `limit` if no such batch is below it.
    pub fn position_of(&self, offset: u64, limit: u64) -> Result<u64, LogError> {
        let rel = offset.saturating_sub(self.base_offset).min(u64::from(u32::MAX)) as u32;
        let entry = self.index.lookup(rel).map_err(self.index_err())?;
        let mut pos = entry.map_or(0, |(_, p)| u64::from(p));
        let mut head = [0u8; HEADER_BYTES];
        while pos < limit {
            self.file.read_exact_at(&mut head, pos).map_err(|source| LogError::Io {
                path: self.log_path(),
                source,
            })?;
            let h = BatchHeader::parse(&head).map_err(|e| LogError::Corrupt {
                path: self.log_path(),
                position: pos,
                reason: e.to_string(),
            })?;
            if h.next_offset() > offset {
                return Ok(pos);
            }
            pos += h.total_bytes as u64;
        }
        Ok(limit)
    }

    /// Reads whole batches from `pos` up to `limit`: at most `max_bytes`, but always the first
    /// batch whole, however large, so a reader never stalls on a big batch.
    pub fn read(&self, pos: u64, limit: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
        if pos >= limit {
            return Ok(());
        }
        let io_err = |source| LogError::Io {
            path: self.log_path(),
            source,
        };
        let want = ((limit - pos) as usize).min(max_bytes.max(HEADER_BYTES));
        let start = out.len();
        out.resize(start + want, 0);
        self.file.read_exact_at(&mut out[start..], pos).map_err(io_err)?;
        // Keep whole batches only; fetch the rest of the first one if it is larger than `want`.
        let mut end = start;
        while let Ok(h) = BatchHeader::parse(&out[end..]) {
            if end + h.total_bytes > out.len() {
                if end == start {
                    let have = out.len() - start;
                    out.resize(start + h.total_bytes, 0);
                    self.file
                        .read_exact_at(&mut out[start + have..], pos + have as u64)
                        .map_err(io_err)?;
                    end = out.len();
                }
                break;
            }
            end += h.total_bytes;
        }
        out.truncate(end);
        Ok(())
    }

    pub fn log_path(&self) -> PathBuf {
        Self::path(&self.dir, self.base_offset, "log")
    }

    /// Removes the segment's three files.
    pub fn delete(self) -> Result<(), LogError> {
        for ext in ["log", "index", "timeindex"] {
            let p = Self::path(&self.dir, self.base_offset, ext);
            match self.fs.remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(LogError::Io { path: p, source: e }),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        (self.max_timestamp != i64::MIN).then_some(self.max_timestamp)
    }

    /// A handle to the log file for fsync outside the partition lock.
    pub fn file(&self) -> FileRef {
        self.file.clone()
    }

    /// Offset from which to scan for the first record at or after `timestamp`.
    pub fn time_lookup(&self, timestamp: i64) -> Result<u64, LogError> {
        let rel = self.time_index.lookup(timestamp).map_err(self.time_index_err())?;
        Ok(self.base_offset + u64::from(rel.unwrap_or(0)))
    }
}
