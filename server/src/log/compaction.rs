//! Log compaction: in sealed segments below the last stable offset, keep only the newest
//! record of each key, as Kafka's cleaner does. Offsets never change (a batch keeps its base
//! offset and last offset delta, with gaps where records went); keyless records stay;
//! tombstones (records without a value) go once the segment's newest record is older than
//! `delete_retention_ms`; records of aborted transactions go at once (no reader sees them).
//! Batches of committed transactions become plain batches and transaction markers go: below
//! the last stable offset every transaction is decided, and a plain batch needs no marker to be
//! read (nor to be counted by the offset store). Consecutive cleaned segments are merged up to
//! `segment_bytes`.
//!
//! Crash safety: the cleaned segments are built whole in `P/.compact/` and fsynced, then a
//! `READY` file there lists which segments they replace; only then do they move into place
//! (rename over the old files, delete the replaced ones). Opening a partition finishes a move
//! that a `READY` file announces and otherwise drops `.compact/`: a crash at any point leaves
//! either the old segments or the new ones, never a mix, and never a record lost that was the
//! newest of its key.
//!
//! ```text
//! P/.compact/READY, little-endian:
//!   COUNT_OLD u32, then COUNT_OLD base offsets u64: the segments replaced
//!   COUNT_NEW u32, then COUNT_NEW base offsets u64: the segments that replace them
//!   CRC       u32  CRC32C of the bytes before it
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use super::LogError;
use super::batch::{self, BatchHeader, NewRecord};
use super::fs::{FsRef, Open};
use super::segment::{Segment, SegmentLimits, file_stem};
use super::txn::AbortedTxn;

/// The directory cleaned segments are built in.
pub const DIR: &str = ".compact";
const READY: &str = "READY";

/// What one pass cleans: sealed segments, oldest first, all below `limit`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub segments: Vec<Source>,
    /// The first offset a pass must not touch: the last stable offset or the active segment.
    pub limit: u64,
    pub aborted: Vec<AbortedTxn>,
}

/// One sealed segment to clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub base: u64,
    pub next_offset: u64,
    pub size: u64,
    pub max_timestamp: Option<i64>,
}

/// What a pass built, ready to move into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub replaced: Vec<Source>,
    /// Base offsets of the cleaned segments in `.compact/`.
    pub bases: Vec<u64>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_dropped: u64,
}

/// Settings of a pass.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub segment_bytes: u64,
    pub limits: SegmentLimits,
}

/// A key's identity in the offset map: 128 bits of two independently keyed SipHashes (a
/// collision, which would drop a record wrongly, is then out of reach).
#[derive(Clone)]
struct KeyHasher(
    std::collections::hash_map::RandomState,
    std::collections::hash_map::RandomState,
);

impl KeyHasher {
    fn new() -> Self {
        Self(Default::default(), Default::default())
    }

    fn id(&self, key: &[u8]) -> u128 {
        let mut a = self.0.build_hasher();
        a.write(key);
        let mut b = self.1.build_hasher();
        b.write(key);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }
}

/// Reads whole batches of the log from an offset (see [`super::PartitionLog::read`]).
pub type Reader<'a> = dyn FnMut(u64, usize, &mut Vec<u8>) -> Result<(), LogError> + 'a;
/// A [`Reader`] lent to a pass.
pub type ReadFn<'a, 'b> = &'a mut Reader<'b>;

/// Calls `each` with every batch of `source`, in order.
fn for_each_batch(
    read: &mut Reader<'_>,
    source: &Source,
    mut each: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut at = source.base;
    let mut buf = Vec::new();
    while at < source.next_offset {
        buf.clear();
        read(at, 4 * 1024 * 1024, &mut buf)?;
        let before = at;
        let mut pos = 0;
        while pos < buf.len() {
            let Ok(h) = BatchHeader::parse(&buf[pos..]) else { break };
            let bytes = &buf[pos..pos + h.total_bytes];
            pos += h.total_bytes;
            if h.next_offset() <= at || h.base_offset >= source.next_offset {
                continue;
            }
            at = h.next_offset();
            each(&h, bytes)?;
        }
        if at == before {
            break;
        }
    }
    Ok(())
}

fn aborted(aborted: &[AbortedTxn], h: &BatchHeader) -> bool {
    h.is_transactional() && !h.is_control() && aborted.iter().any(|a| a.covers(h.producer_id, h.base_offset))
}

/// Builds the cleaned segments of `plan` in `dir/.compact/` (fsynced). Nothing outside that
/// directory changes; [`super::PartitionLog::install_compacted`] moves them into place.
pub fn build(fs: &FsRef, dir: &Path, plan: &Plan, settings: Settings, read: ReadFn<'_, '_>) -> Result<Built, LogError> {
    let work = dir.join(DIR);
    remove_dir(fs, &work)?;
    fs.create_dir_all(&work).map_err(|source| LogError::Io {
        path: work.clone(),
        source,
    })?;
    // Pass 1: the newest offset of every key.
    let hasher = KeyHasher::new();
    let mut newest: HashMap<u128, u64> = HashMap::new();
    for s in &plan.segments {
        for_each_batch(read, s, |h, bytes| {
            if h.is_control() || aborted(&plan.aborted, h) {
                return Ok(());
            }
            if let Ok(records) = batch::records(bytes) {
                for r in records.flatten() {
                    if let Some(k) = r.key {
                        newest.insert(hasher.id(k), r.offset);
                    }
                }
            }
            Ok(())
        })?;
    }
    // Pass 2: what stays, into merged segments.
    let mut built = Built {
        replaced: plan.segments.clone(),
        bases: Vec::new(),
        bytes_before: plan.segments.iter().map(|s| s.size).sum(),
        bytes_after: 0,
        records_dropped: 0,
    };
    let mut out: Option<Segment> = None;
    let mut out_bytes = 0u64;
    let mut encoded = Vec::new();
    for s in &plan.segments {
        let expired = s
            .max_timestamp
            .is_none_or(|ts| settings.now_ms.saturating_sub(ts) > settings.delete_retention_ms);
        // A segment starts a new output when the current one has no room for all of it.
        if out.is_some()
            && out_bytes + s.size > settings.segment_bytes
            && let Some(seg) = out.take()
        {
            finish(&mut built, seg, out_bytes)?;
        }
        if out.is_none() {
            out = Some(Segment::create(fs, &work, s.base, settings.limits)?);
            out_bytes = 0;
        }
        let seg = out.as_mut().expect("just made");
        for_each_batch(read, s, |h, bytes| {
            if h.is_control() {
                built.records_dropped += u64::from(h.record_count);
                return Ok(());
            }
            if aborted(&plan.aborted, h) {
                built.records_dropped += u64::from(h.record_count);
                return Ok(());
            }
            let Ok(records) = batch::records(bytes) else {
                return Ok(());
            };
            let mut kept: Vec<(u64, NewRecord)> = Vec::new();
            for r in records.flatten() {
                let keep = match r.key {
                    None => true,
                    Some(k) => newest.get(&hasher.id(k)) == Some(&r.offset) && !(r.value.is_none() && expired),
                };
                if keep {
                    kept.push((r.offset, r.to_new()));
                } else {
                    built.records_dropped += 1;
                }
            }
            if kept.is_empty() {
                return Ok(());
            }
            encoded.clear();
            let mut nh = if kept.len() == h.record_count as usize {
                encoded.extend_from_slice(bytes);
                *h
            } else {
                batch::encode_sparse(&mut encoded, h, &kept)
            };
            if nh.is_transactional() {
                batch::clear_transactional(&mut encoded);
                nh = BatchHeader::parse(&encoded).map_err(|e| LogError::Corrupt {
                    path: dir.to_owned(),
                    position: 0,
                    reason: e.to_string(),
                })?;
            }
            out_bytes += encoded.len() as u64;
            seg.append_compacted(&encoded, &nh, settings.now_ms)
        })?;
    }
    if let Some(seg) = out.take() {
        finish(&mut built, seg, out_bytes)?;
    }
    fs.sync_dir(&work).map_err(|source| LogError::Io {
        path: work.clone(),
        source,
    })?;
    Ok(built)
}

/// Seals an output segment; an empty one (everything in it went) is removed instead.
fn finish(built: &mut Built, mut seg: Segment, bytes: u64) -> Result<(), LogError> {
    if seg.size() == 0 {
        return seg.delete();
    }
    seg.seal()?;
    built.bases.push(seg.base_offset);
    built.bytes_after += bytes;
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

fn remove_dir(fs: &FsRef, work: &Path) -> Result<(), LogError> {
    let names = match fs.list(work) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(work)(e)),
    };
    for n in names {
        let p = work.join(&n);
        match fs.remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&p)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn encode_ready(old: &[u64], new: &[u64]) -> Vec<u8> {
    let mut b = Vec::new();
    for list in [old, new] {
        b.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for base in list {
            b.extend_from_slice(&base.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_ready(b: &[u8]) -> Option<(Vec<u64>, Vec<u64>)> {
    let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut pos = 0;
    let mut lists = Vec::new();
    for _ in 0..2 {
        let n = u32::from_le_bytes(body.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        let mut list = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            list.push(u64::from_le_bytes(body.get(pos..pos + 8)?.try_into().ok()?));
            pos += 8;
        }
        lists.push(list);
    }
    let new = lists.pop()?;
    let old = lists.pop()?;
    Some((old, new))
}

fn segment_files(dir: &Path, base: u64) -> [PathBuf; 3] {
    ["log", "index", "timeindex"].map(|ext| dir.join(format!("{}.{ext}", file_stem(base))))
}

/// Moves the cleaned segments into place: `READY` first (durable), then the renames and
/// deletes, then `.compact/` goes. [`recover`] redoes the same after a crash.
pub fn move_into_place(fs: &FsRef, dir: &Path, built: &Built) -> Result<(), LogError> {
    let work = dir.join(DIR);
    let old: Vec<u64> = built.replaced.iter().map(|s| s.base).collect();
    let ready = work.join(READY);
    let file = fs.open(&ready, Open::Truncate).map_err(io(&ready))?;
    let bytes = encode_ready(&old, &built.bases);
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync_data())
        .map_err(io(&ready))?;
    fs.sync_dir(&work).map_err(io(&work))?;
    apply(fs, dir, &old, &built.bases)
}

fn apply(fs: &FsRef, dir: &Path, old: &[u64], new: &[u64]) -> Result<(), LogError> {
    let work = dir.join(DIR);
    for &base in new {
        for (from, to) in segment_files(&work, base).iter().zip(segment_files(dir, base).iter()) {
            match fs.rename(from, to) {
                // Moved before a crash: the rename is being redone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.map_err(io(from))?,
            }
        }
    }
    for &base in old.iter().filter(|b| !new.contains(b)) {
        for p in segment_files(dir, base) {
            match fs.remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&p)(e)),
                _ => {}
            }
        }
    }
    fs.sync_dir(dir).map_err(io(dir))?;
    remove_dir(fs, &work)
}

/// At open: finishes a move a `READY` file announces, else drops a pass that was cut short.
pub fn recover(fs: &FsRef, dir: &Path) -> Result<(), LogError> {
    let work = dir.join(DIR);
    let ready = work.join(READY);
    match fs.read_file(&ready).map_err(io(&ready))? {
        Some(bytes) => match decode_ready(&bytes) {
            Some((old, new)) => {
                tracing::info!(dir = %dir.display(), segments = new.len(), "finishing a compaction a stop cut short");
                apply(fs, dir, &old, &new)
            }
            None => remove_dir(fs, &work),
        },
        None => remove_dir(fs, &work),
    }
}
