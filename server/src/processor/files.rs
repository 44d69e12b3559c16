//! Small durable files: whole-file atomic replace, and a crash-safe offset slot.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::ProcessorError;

/// Replaces `path` with `bytes` durably (see [`crate::durable::write_atomically`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProcessorError> {
    crate::durable::write_atomically(path, bytes).map_err(|e| ProcessorError::io(path, e))
}

/// Fsyncs a directory, so the names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), ProcessorError> {
    crate::durable::sync_dir(dir).map_err(|e| ProcessorError::io(dir, e))
}

/// Creates `dir` and any missing parents durably.
pub fn create_dir_durable(dir: &Path) -> Result<(), ProcessorError> {
    crate::durable::create_dir(dir).map_err(|e| ProcessorError::io(dir, e))
}

/// A committed input offset, durable across crashes.
///
/// ```text
/// two 20-byte slots, written alternately:
///   SEQ u64 LE @0 | OFFSET u64 LE @8 | CRC32C(bytes 0..16) u32 LE @16
/// ```
/// A write goes to the slot not holding the latest value, then fsyncs. A torn write damages
/// only that slot, whose CRC then fails, and the other slot still holds the previous commit.
/// The file is opened for each commit, not held: ten thousand idle processors must not hold
/// ten thousand file descriptors.
pub struct OffsetFile {
    path: PathBuf,
    seq: u64,
    offset: Option<u64>,
}

const SLOT_BYTES: usize = 20;

fn decode_slot(b: &[u8]) -> Option<(u64, u64)> {
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    if crc32c::crc32c(&b[..16]) != crc {
        return None;
    }
    Some((
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u64::from_le_bytes(b[8..16].try_into().ok()?),
    ))
}

/// The offset an [`OffsetFile`] holds, without creating it: `None` if there is none.
pub fn read_offset(path: &Path) -> Option<u64> {
    if !path.exists() {
        return None;
    }
    OffsetFile::open(path).ok()?.get()
}

impl OffsetFile {
    pub fn open(path: &Path) -> Result<Self, ProcessorError> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| ProcessorError::io(path, e))?;
        if !existed && let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let mut buf = [0u8; SLOT_BYTES * 2];
        let len = file.read_at(&mut buf, 0).map_err(|e| ProcessorError::io(path, e))?;
        let mut best: Option<(u64, u64)> = None;
        if len == buf.len() {
            for slot in buf.chunks(SLOT_BYTES) {
                if let Some((seq, off)) = decode_slot(slot)
                    && best.is_none_or(|(s, _)| seq > s)
                {
                    best = Some((seq, off));
                }
            }
        }
        drop(file);
        Ok(Self {
            path: path.to_owned(),
            seq: best.map_or(0, |b| b.0),
            offset: best.map(|b| b.1),
        })
    }

    /// The last committed offset, if any.
    pub fn get(&self) -> Option<u64> {
        self.offset
    }

    /// Commits `offset` durably.
    pub fn set(&mut self, offset: u64) -> Result<(), ProcessorError> {
        let seq = self.seq + 1;
        let mut slot = [0u8; SLOT_BYTES];
        slot[..8].copy_from_slice(&seq.to_le_bytes());
        slot[8..16].copy_from_slice(&offset.to_le_bytes());
        let crc = crc32c::crc32c(&slot[..16]);
        slot[16..].copy_from_slice(&crc.to_le_bytes());
        let at = (seq % 2) * SLOT_BYTES as u64;
        let io = |e| ProcessorError::io(&self.path, e);
        let file = OpenOptions::new().write(true).open(&self.path).map_err(io)?;
        if file.metadata().map(|m| m.len()).unwrap_or(0) < (SLOT_BYTES * 2) as u64 {
            file.set_len((SLOT_BYTES * 2) as u64).map_err(io)?;
        }
        file.write_all_at(&slot, at)
            .and_then(|()| file.sync_data())
            .map_err(io)?;
        self.seq = seq;
        self.offset = Some(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_keeps_the_previous_commit_when_the_latest_slot_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.offset");
        let mut f = OffsetFile::open(&path).unwrap();
        assert_eq!(f.get(), None);
        f.set(10).unwrap();
        f.set(20).unwrap();
        assert_eq!(OffsetFile::open(&path).unwrap().get(), Some(20));
        // Tear the slot holding 20 (seq 2 lives in slot 0).
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut f = OffsetFile::open(&path).unwrap();
        assert_eq!(f.get(), Some(10));
        f.set(30).unwrap();
        assert_eq!(OffsetFile::open(&path).unwrap().get(), Some(30));
    }
}
