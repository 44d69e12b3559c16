//! A task's state at one changelog offset, in one file, so that a restart replays only the
//! changelog's tail (Kafka Streams replays the whole changelog after a crash under
//! exactly-once; its users report restores of hours).
//!
//! ```text
//! DATA/processors/NAME/state/P.snapshot, little-endian, each field after the previous:
//!   MAGIC        [u8; 4]  "WSS1"
//!   TOPIC_ID     u8 length, then the changelog topic's incarnation id (UTF-8)
//!   NEXT_OFFSET  u64      the changelog offset to replay from: everything before it is here
//!   WRITTEN_MS   i64      when it was taken
//!   STORES       u16      then per store:
//!     NAME       u8 length, then the name (UTF-8)
//!     ENTRIES    u64      then per entry, in key order:
//!       KEY      u32 length, then the bytes
//!       VALUE    u32 length, then the bytes
//!   CRC          u32      CRC32C of every byte before it
//! ```
//!
//! Written whole under a temporary name, fsynced and renamed (a crash leaves the old one or
//! the new one). One that does not check out (torn, another changelog incarnation) is ignored:
//! the task then replays its whole changelog, which is still correct, only slower. So is one
//! older than the changelog's `delete_retention_ms`: compaction may have dropped tombstones
//! written after it, and replaying from it would bring deleted keys back.

use std::path::Path;

use super::store::Store;
use super::task::TaskState;

const MAGIC: &[u8; 4] = b"WSS1";

/// The snapshot of `state`, which must hold exactly what the changelog held before
/// `next_offset` (take it right after a commit, between guest calls).
pub fn encode(state: &TaskState, changelog_id: &str, next_offset: u64, written_ms: i64) -> Vec<u8> {
    let stores = state.stores();
    let bytes: u64 = stores.iter().map(|s| s.bytes() + s.len() * 8).sum();
    let mut out = Vec::with_capacity(bytes as usize + 64);
    out.extend_from_slice(MAGIC);
    out.push(changelog_id.len() as u8);
    out.extend_from_slice(changelog_id.as_bytes());
    out.extend_from_slice(&next_offset.to_le_bytes());
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&(stores.len() as u16).to_le_bytes());
    for s in stores {
        out.push(s.name.len() as u8);
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(&s.len().to_le_bytes());
        for (k, v) in s.iter() {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes `bytes` (from [`encode`]) to `path` durably.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::durable::create_dir(dir)?;
    }
    crate::durable::write_atomically(path, bytes)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len())?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// Loads the snapshot at `path` into `state` if it belongs to changelog incarnation
/// `changelog_id` and was taken at most `max_age_ms` before `now_ms`; returns the changelog
/// offset to replay from, or `None` (no usable snapshot: `state` is untouched).
pub fn load(path: &Path, changelog_id: &str, now_ms: i64, max_age_ms: i64, state: &mut TaskState) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        tracing::warn!(path = %path.display(), "state snapshot does not check out; replaying the changelog");
        return None;
    }
    let mut c = Cursor { buf: body, pos: 0 };
    if c.take(4)? != MAGIC || c.text()? != changelog_id {
        return None;
    }
    let next = c.u64()?;
    let written_ms = c.u64()? as i64;
    if now_ms.saturating_sub(written_ms) >= max_age_ms {
        tracing::info!(path = %path.display(), "state snapshot older than the changelog's delete retention; replaying the changelog");
        return None;
    }
    let stores = c.u16()?;
    let mut loaded = Vec::new();
    for _ in 0..stores {
        let name = c.text()?.to_owned();
        let count = c.u64()?;
        let mut entries = Vec::with_capacity(count.min(1 << 24) as usize);
        for _ in 0..count {
            let k = c.u32()? as usize;
            let key: Box<[u8]> = c.take(k)?.into();
            let v = c.u32()? as usize;
            entries.push((key, c.take(v)?.into()));
        }
        loaded.push((name, entries));
    }
    for (name, entries) in loaded {
        // Stores the deployment no longer declares are left out.
        if let Some(i) = state.index_of(&name) {
            state.replace_store(i, Store::from_sorted(&name, entries));
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateLimits;

    #[test]
    fn a_snapshot_round_trips_and_a_torn_or_foreign_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s").join("0.snapshot");
        let mut s = TaskState::new(&["a".into(), "b".into()], StateLimits::default());
        let (a, b) = (s.open("a").unwrap(), s.open("b").unwrap());
        for i in 0..1000u32 {
            s.set(a, &i.to_be_bytes(), format!("v{i}").as_bytes()).unwrap();
        }
        s.set(b, b"only", b"").unwrap();
        s.end_batch();
        write(&path, &encode(&s, "cafe", 1234, 1_000)).unwrap();
        let mut back = TaskState::new(&["b".into(), "a".into()], StateLimits::default());
        assert_eq!(load(&path, "cafe", 11_000, 10_000, &mut back), None, "too old");
        assert_eq!(load(&path, "cafe", 1_500, 10_000, &mut back), Some(1234));
        let (a2, b2) = (back.open("a").unwrap(), back.open("b").unwrap());
        assert_eq!(back.get(a2, &7u32.to_be_bytes()).unwrap(), Some(&b"v7"[..]));
        assert_eq!(back.get(b2, b"only").unwrap(), Some(&b""[..]));
        assert_eq!(back.figures().iter().map(|f| f.keys).sum::<u64>(), 1001);
        let mut other = TaskState::new(&["a".into()], StateLimits::default());
        assert_eq!(
            load(&path, "beef", 1_500, 10_000, &mut other),
            None,
            "another changelog incarnation"
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path, "cafe", 1_500, 10_000, &mut other), None, "torn");
        assert_eq!(other.figures()[0].keys, 0);
    }
}
