//! A partition's ordered segments: append, read, roll, retention and recovery at open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::LogError;
use super::batch::{self, BatchHeader, BatchKind, NewRecord};
use super::compaction::{self, Built, Plan, Source};
use super::fs::{FileRef, FsRef};
use super::recovery_point::{RecoveryPoint, current_boot_id};
use super::segment::{Recovery, Segment, SegmentLimits};
use super::txn::{AbortedTxn, TxnState};

/// Per-partition settings for the on-disk layout.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    /// A segment rolls before it grows past this many bytes.
    pub segment_bytes: u64,
    /// A segment rolls once its first batch is this old.
    pub segment_ms: i64,
    pub index_interval_bytes: u32,
    pub index_bytes_max: usize,
}

impl LogConfig {
    fn limits(&self) -> SegmentLimits {
        SegmentLimits {
            index_interval_bytes: self.index_interval_bytes,
            index_bytes_max: self.index_bytes_max,
        }
    }
}

/// One partition's log. Readers see records below the high watermark only; the writer moves it
/// with [`PartitionLog::publish`] once appended data is durable under the topic's policy.
#[derive(Debug)]
pub struct PartitionLog {
    fs: FsRef,
    dir: PathBuf,
    /// Set when the partition's topic is deleted: from then on nothing writes under `dir`,
    /// which may already hold a new topic of the same name.
    closed: bool,
    config: LogConfig,
    sealed: BTreeMap<u64, Segment>,
    active: Segment,
    high_watermark: u64,
    /// Bytes of the active segment below the high watermark.
    visible_bytes: u64,
    txn: TxnState,
    /// Compaction's progress: offsets below it were cleaned by the last pass, which ended then.
    cleaned_through: u64,
    last_cleaned_ms: i64,
}

/// How often compaction looks again at segments it cleaned before, for tombstones and markers
/// that have become old enough to go.
const RECLEAN_INTERVAL_MS: i64 = 24 * 3600 * 1000;

/// One producer's part of an append: its records, written as one batch or more of `kind`.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub records: &'a [NewRecord],
    pub kind: BatchKind,
    /// For an ABORT marker of a transaction this process did not see begin (a crash left it
    /// open): where it began.
    pub aborted_from: Option<u64>,
}

impl<'a> Group<'a> {
    /// Records outside any transaction.
    pub fn plain(records: &'a [NewRecord]) -> Self {
        Self {
            records,
            kind: BatchKind::Plain,
            aborted_from: None,
        }
    }
}

/// Fills its buffer with whole batches from an offset; false past the end.
pub type ReadBatches<'a> = dyn FnMut(u64, &mut Vec<u8>) -> Result<bool, LogError> + 'a;

/// Scans batch headers from `from` for `producer_id`'s transaction that no marker closed;
/// `read(at, out)` fills `out` with whole batches from `at`, false past the end.
pub fn scan_unclosed(producer_id: i64, from: u64, read: &mut ReadBatches<'_>) -> Result<Unclosed, LogError> {
    let mut at = from;
    let mut open = None;
    let mut marker_seen = false;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if !read(at, &mut buf)? {
            break;
        }
        let mut pos = 0;
        let before = at;
        while pos < buf.len() {
            let Ok(h) = BatchHeader::parse(&buf[pos..]) else { break };
            pos += h.total_bytes;
            if h.next_offset() <= at {
                continue;
            }
            at = h.next_offset();
            if h.producer_id != producer_id || !h.is_transactional() {
                continue;
            }
            if h.is_control() {
                open = None;
                marker_seen = true;
            } else if open.is_none() {
                open = Some(h.base_offset);
            }
        }
        if at == before {
            break;
        }
    }
    Ok(Unclosed {
        first: open,
        marker_seen,
    })
}

/// What [`PartitionLog::unclosed_transaction`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclosed {
    /// The first offset of the producer's transaction that no marker closed.
    pub first: Option<u64>,
    /// Whether a marker of the producer lies in the range looked at.
    pub marker_seen: bool,
}

/// What one append wrote: the base offset of each record group, in order.
#[derive(Debug)]
pub struct Appended {
    pub base_offsets: Vec<u64>,
    /// The active log file, to fsync outside the partition lock.
    pub file: FileRef,
}

impl PartitionLog {
    /// Opens the partition in `dir` (creating it if empty). `clean` says the previous process
    /// stopped cleanly; otherwise the active segment is verified batch by batch, from its
    /// recovery point when that can be trusted, and cut at the first bad batch. Returns what
    /// recovery did to the active segment.
    pub fn open(fs: &FsRef, dir: &Path, config: LogConfig, clean: bool) -> Result<(Self, Recovery), LogError> {
        let io = |source| LogError::Io {
            path: dir.to_owned(),
            source,
        };
        fs.create_dir_all(dir).map_err(io)?;
        compaction::recover(fs, dir)?;
        let mut bases = Vec::new();
        for name in fs.list(dir).map_err(io)? {
            if let Some(stem) = name.strip_suffix(".log")
                && stem.len() == 20
                && let Ok(base) = stem.parse::<u64>()
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        // A roll creates the next segment before it fsyncs the one it seals: after a power cut
        // an empty newest segment can stand after a torn one. Drop it; the one before it is then
        // the active segment and recovery verifies it.
        while bases.len() > 1 {
            let last = *bases.last().expect("two or more");
            let path = dir.join(format!("{}.log", super::segment::file_stem(last)));
            let len = fs.open(&path, super::fs::Open::Existing).and_then(|f| f.len());
            if !matches!(len, Ok(0)) {
                break;
            }
            for ext in ["log", "index", "timeindex"] {
                let p = dir.join(format!("{}.{ext}", super::segment::file_stem(last)));
                match fs.remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(LogError::Io { path: p, source: e });
                    }
                    _ => {}
                }
            }
            bases.pop();
        }
        let limits = config.limits();
        let mut sealed = BTreeMap::new();
        let (active, recovery) = match bases.split_last() {
            None => (Segment::create(fs, dir, 0, limits)?, Recovery::default()),
            Some((&last, older)) => {
                for &base in older {
                    let (seg, _) = Segment::open(fs, dir, base, limits, false, false, None)?;
                    sealed.insert(base, seg);
                }
                let point = RecoveryPoint::read(fs, dir).filter(|p| p.trusted(&current_boot_id()));
                Segment::open(fs, dir, last, limits, true, !clean, point.as_ref())?
            }
        };
        let high_watermark = active.next_offset();
        let visible_bytes = active.size();
        let txn = TxnState::open(fs, dir)?;
        // What was just verified is at least in the page cache: a point for this boot. Only an
        // optimization, so a full disk must not stop the broker from starting.
        if let Err(e) = active
            .recovery_point(false, current_boot_id())
            .and_then(|p| p.write(fs, dir))
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the recovery point");
        }
        Ok((
            Self {
                fs: fs.clone(),
                dir: dir.to_owned(),
                closed: false,
                config,
                sealed,
                active,
                high_watermark,
                visible_bytes,
                txn,
                cleaned_through: 0,
                last_cleaned_ms: i64::MIN,
            },
            recovery,
        ))
    }

    /// Refuses writes from now on (the topic is being deleted); readers holding the log still
    /// read what it had.
    pub fn close(&mut self) {
        self.closed = true;
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.closed {
            return Err(LogError::Closed { dir: self.dir.clone() });
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.sealed.keys().next().copied().unwrap_or(self.active.base_offset)
    }

    /// One past the last durable (acknowledged) record.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// One past the last written record (durable or not).
    pub fn next_offset(&self) -> u64 {
        self.active.next_offset()
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.values().map(Segment::size).sum::<u64>() + self.active.size()
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Appends each group of records as one batch, rolling segments as needed. The data is in the
    /// page cache, not yet visible to readers: fsync `file` if the policy asks, then `publish`.
    pub fn append(&mut self, groups: &[&[NewRecord]], now_ms: i64) -> Result<Appended, LogError> {
        let groups: Vec<Group<'_>> = groups.iter().map(|g| Group::plain(g)).collect();
        self.append_groups(&groups, now_ms)
    }

    /// Refuses a batch of a producer whose epoch is older than one this partition has seen.
    pub fn check_producer(&self, kind: &BatchKind) -> Result<(), LogError> {
        self.txn.check(kind).map_err(|f| LogError::Fenced {
            producer_id: f.producer.id,
            epoch: f.producer.epoch,
            current_epoch: f.current_epoch,
        })
    }

    /// Raises a producer's epoch here without writing: older epochs are fenced from now on.
    pub fn fence(&mut self, producer: batch::Producer) {
        self.txn.fence(producer);
    }

    /// [`Self::append`] for groups of any kind: plain or transactional records, or a
    /// transaction's marker (one batch; an ABORT's index entry is durable before it is written).
    /// Every producer must have passed [`Self::check_producer`].
    pub fn append_groups(&mut self, groups: &[Group<'_>], now_ms: i64) -> Result<Appended, LogError> {
        self.check_open()?;
        let mut base_offsets = Vec::with_capacity(groups.len());
        let mut buf = Vec::new();
        let mut headers: Vec<BatchHeader> = Vec::with_capacity(groups.len());
        let mut kinds: Vec<BatchKind> = Vec::with_capacity(groups.len());
        let mut next = self.active.next_offset();
        let mut last_group = None;
        let runs = groups.iter().enumerate().flat_map(|(i, g)| {
            let runs: Box<dyn Iterator<Item = &[NewRecord]>> = match g.kind {
                BatchKind::Marker { .. } => Box::new(std::iter::once(&[][..])),
                _ => Box::new(batch::batch_runs(g.records)),
            };
            runs.map(move |run| (i, run))
        });
        for (group, run) in runs {
            let g = &groups[group];
            let start = buf.len();
            let h = batch::encode_kind(&mut buf, next, run, now_ms, g.kind);
            let pending = start as u64;
            let fits_with_pending = self.active.fits(
                pending as usize + h.total_bytes,
                h.next_offset() - 1,
                self.config.segment_bytes,
            );
            if !fits_with_pending || self.is_old(now_ms) {
                if !headers.is_empty() {
                    self.active.append(&buf[..start], &headers, now_ms)?;
                    self.txn_written(&kinds, &headers);
                    headers.clear();
                    kinds.clear();
                    buf.drain(..start);
                }
                if self.active.size() > 0 {
                    self.roll()?;
                }
            }
            if let BatchKind::Marker {
                producer,
                commit: false,
            } = g.kind
            {
                self.txn.before_abort(producer.id, g.aborted_from, h.base_offset)?;
            }
            // One base offset per (non-empty) group: its first batch's.
            if last_group != Some(group) {
                base_offsets.push(h.base_offset);
                last_group = Some(group);
            }
            next = h.next_offset();
            headers.push(h);
            kinds.push(g.kind);
        }
        if !headers.is_empty() {
            self.active.append(&buf, &headers, now_ms)?;
            self.txn_written(&kinds, &headers);
        }
        Ok(Appended {
            base_offsets,
            file: self.active.file(),
        })
    }

    fn txn_written(&mut self, kinds: &[BatchKind], headers: &[BatchHeader]) {
        for (kind, h) in kinds.iter().zip(headers) {
            self.txn.after_append(kind, h.base_offset);
        }
    }

    /// One past the last record a reader of committed records may see: the first offset of the
    /// oldest open transaction, or the high watermark.
    pub fn stable_offset(&self) -> u64 {
        let hw = self.high_watermark;
        self.txn
            .first_open()
            .map_or(hw, |first| first.clamp(self.log_start_offset(), hw))
    }

    /// Aborted transactions overlapping `from..to`: readers of committed records skip them.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.txn.aborted_between(from, to)
    }

    /// All aborted transactions of the partition.
    pub fn aborted(&self) -> &[AbortedTxn] {
        self.txn.aborted()
    }

    /// The first offset of `producer_id`'s open transaction, if this process saw it begin.
    pub fn open_transaction(&self, producer_id: i64) -> Option<u64> {
        self.txn.open_first(producer_id)
    }

    /// Where a transaction of `producer_id` that no marker closed begins, looking at batches
    /// from `from` (clamped to the log) to the end: the first of its batches after its last
    /// marker; and whether any marker of it was seen there. Used after a crash, when the log
    /// does not know what was open.
    pub fn unclosed_transaction(&self, producer_id: i64, from: u64) -> Result<Unclosed, LogError> {
        scan_unclosed(producer_id, from, &mut |at, out| {
            if at < self.log_start_offset() || at >= self.high_watermark {
                return Ok(false);
            }
            self.read(at, 1024 * 1024, out).map(|()| true)
        })
    }

    fn is_old(&self, now_ms: i64) -> bool {
        self.active
            .first_append_ms
            .is_some_and(|t| now_ms - t >= self.config.segment_ms)
    }

    /// Makes everything appended so far visible to readers.
    pub fn publish(&mut self) {
        self.high_watermark = self.active.next_offset();
        self.visible_bytes = self.active.size();
    }

    /// Seals the active segment and starts a new one at the next offset. On an error the
    /// active segment is unchanged and still takes appends.
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.check_open()?;
        let base = self.active.next_offset();
        let fresh = Segment::create(&self.fs, &self.dir, base, self.config.limits())?;
        if let Err(e) = self.active.seal() {
            let _ = fresh.delete();
            return Err(e);
        }
        let old = std::mem::replace(&mut self.active, fresh);
        // Everything in a sealed segment was durable before this roll, or is now: publish it.
        self.high_watermark = self.high_watermark.max(old.next_offset());
        self.visible_bytes = 0;
        self.sealed.insert(old.base_offset, old);
        Ok(())
    }

    /// Rolls an active segment that has aged past `segment_ms` without new appends, so that
    /// retention can reach it. Only data already published rolls.
    pub fn roll_if_idle(&mut self, now_ms: i64) -> Result<bool, LogError> {
        if self.closed {
            return Ok(false);
        }
        if self.active.size() > 0 && self.is_old(now_ms) && self.high_watermark == self.active.next_offset() {
            self.roll()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Deletes the oldest sealed segments while the partition is over `retention_bytes` or a
    /// segment's newest record is older than `retention_ms`. Returns the deleted base offsets.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Result<Vec<u64>, LogError> {
        if self.closed {
            return Ok(Vec::new());
        }
        let mut total = self.size_bytes();
        let mut deleted = Vec::new();
        while let Some((&base, seg)) = self.sealed.first_key_value() {
            let over_bytes = retention_bytes.is_some_and(|max| total > max);
            let expired = retention_ms.is_some_and(|ms| seg.max_timestamp().is_none_or(|ts| now_ms - ts > ms));
            if !over_bytes && !expired {
                break;
            }
            let seg = self.sealed.remove(&base).expect("first key exists");
            total -= seg.size();
            seg.delete()?;
            deleted.push(base);
        }
        if !deleted.is_empty() {
            self.txn.trim(self.log_start_offset())?;
            // Not needed for safety (a forgotten delete brings back old, whole segments), but
            // the space must stay freed.
            self.fs.sync_dir(&self.dir).map_err(|source| LogError::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        Ok(deleted)
    }

    /// Reads whole batches holding records from `offset` on, up to about `max_bytes` (at least one
    /// batch). The first batch may start before `offset`: callers skip those records. Empty when
    /// `offset` is the high watermark.
    pub fn read(&self, offset: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
        let start = self.log_start_offset();
        if offset < start || offset > self.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                high_watermark: self.high_watermark,
            });
        }
        if offset == self.high_watermark {
            return Ok(());
        }
        let holding = self
            .sealed
            .range(..=offset)
            .next_back()
            .filter(|(_, seg)| offset < seg.next_offset())
            // Between two segments (compaction took the end of the first): the next one.
            .or_else(|| self.sealed.range(offset..).next());
        let (seg, limit) = match holding {
            Some((_, seg)) => (seg, seg.size()),
            None => (&self.active, self.visible_bytes),
        };
        let pos = seg.position_of(offset, limit)?;
        seg.read(pos, limit, max_bytes, out)
    }

    /// First offset whose record may have a timestamp at or after `timestamp` (a lower bound
    /// to start reading from).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<u64, LogError> {
        for seg in self.sealed.values() {
            if seg.max_timestamp().is_some_and(|ts| ts >= timestamp) {
                return seg.time_lookup(timestamp);
            }
        }
        if self.active.max_timestamp().is_some_and(|ts| ts >= timestamp) {
            return Ok(self.active.time_lookup(timestamp)?.min(self.high_watermark));
        }
        Ok(self.high_watermark)
    }

    /// What compaction should clean now, if anything: every sealed segment below the last
    /// stable offset, when one of them is new since the last pass or that pass was a while ago.
    pub fn compaction_plan(&self, now_ms: i64) -> Option<Plan> {
        if self.closed {
            return None;
        }
        let limit = self.stable_offset().min(self.active.base_offset);
        // With an empty active segment, the segment before it stays as written: should the empty
        // one be dropped at the next open (a roll cut short looks the same), that segment becomes
        // the active one again, and an active segment is verified with no gaps between batches.
        let protected = (self.active.size() == 0)
            .then(|| self.sealed.keys().next_back().copied())
            .flatten();
        let segments: Vec<Source> = self
            .sealed
            .values()
            .filter(|s| s.next_offset() <= limit && Some(s.base_offset) != protected)
            .map(|s| Source {
                base: s.base_offset,
                next_offset: s.next_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
            })
            .collect();
        // Kafka's min.cleanable.dirty.ratio of 0.5: a pass rewrites every segment it plans, so
        // it waits until at least half of them hold records no pass has seen.
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.next_offset > self.cleaned_through)
            .map(|s| s.size)
            .sum();
        let fresh = dirty > 0 && dirty * 2 >= total;
        let stale = now_ms.saturating_sub(self.last_cleaned_ms) >= RECLEAN_INTERVAL_MS;
        if segments.is_empty() || !(fresh || stale) {
            return None;
        }
        Some(Plan {
            segments,
            limit,
            aborted: self.txn.aborted().to_vec(),
        })
    }

    /// The settings of a compaction pass.
    pub fn compaction_settings(&self, now_ms: i64, delete_retention_ms: i64) -> compaction::Settings {
        compaction::Settings {
            now_ms,
            delete_retention_ms,
            segment_bytes: self.config.segment_bytes,
            limits: self.config.limits(),
        }
    }

    /// Moves what a compaction pass built into place and serves it from now on. Refused (and
    /// the pass dropped) when the log was closed or its segments changed meanwhile.
    pub fn install_compacted(&mut self, built: &Built, now_ms: i64) -> Result<bool, LogError> {
        let unchanged = built.replaced.iter().all(|s| {
            self.sealed
                .get(&s.base)
                .is_some_and(|seg| seg.size() == s.size && seg.next_offset() == s.next_offset)
        });
        if self.closed || !unchanged {
            compaction::recover(&self.fs, &self.dir)?;
            return Ok(false);
        }
        compaction::move_into_place(&self.fs, &self.dir, built)?;
        for s in &built.replaced {
            self.sealed.remove(&s.base);
        }
        let limits = self.config.limits();
        for &base in &built.bases {
            let (seg, _) = Segment::open(&self.fs, &self.dir, base, limits, false, false, None)?;
            self.sealed.insert(base, seg);
        }
        self.cleaned_through = built.replaced.iter().map(|s| s.next_offset).max().unwrap_or(0);
        self.last_cleaned_ms = now_ms;
        // The aborted records below it are gone: their index entries are not needed.
        self.txn.trim(self.cleaned_through)?;
        Ok(true)
    }

    /// Where the active segment stands, as a recovery point. `durable`: the caller fsynced
    /// the log up to here (the indexes are flushed now). Write it with
    /// [`RecoveryPoint::write`], outside the partition lock.
    pub fn recovery_point(&self, durable: bool) -> Result<RecoveryPoint, LogError> {
        self.active.recovery_point(durable, current_boot_id())
    }

    /// Takes and writes the recovery point (see [`Self::recovery_point`]). Holds `&self`, so a
    /// concurrent delete (which closes the log under its write lock) cannot slip in between.
    pub fn write_recovery_point(&self, durable: bool) -> Result<(), LogError> {
        self.check_open()?;
        self.recovery_point(durable)?.write(&self.fs, &self.dir)
    }

    /// The active segment's log file (for an interval fsync).
    pub fn active_file(&self) -> FileRef {
        self.active.file()
    }
}

#[cfg(test)]
mod tests;
