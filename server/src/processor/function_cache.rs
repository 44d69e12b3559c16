//! Cranelift's incremental compilation cache, on disk: compiled functions by the hash of their
//! inputs. A component that shares code with one compiled before compiles only what is new:
//! every Python processor embeds the same CPython, every JavaScript one the same QuickJS, so
//! after the first of each language an upload compiles in a fraction of the time.
//!
//! ```text
//! DATA/modules/functions/AB/ABCDEF...    CRC32C u32 LE | compiled function (Cranelift's bytes)
//! ```
//! Entries are written to a temporary name and renamed, and checked against their CRC when
//! read: a damaged entry is a miss, and the function is compiled again.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::CacheStore;

/// Most bytes the cache may hold; above it, it is emptied at the next start. Python and
/// JavaScript runtimes take tens of megabytes each; this leaves room for many versions.
pub const FUNCTION_CACHE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
    /// Names temporary files apart when compiler threads insert at once.
    tmp_seq: AtomicU64,
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl FunctionCache {
    /// Opens (or creates) the cache in `dir`, emptying it first if it outgrew its limit.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let bytes = dir_bytes(dir);
        if bytes > FUNCTION_CACHE_BYTES_MAX {
            tracing::info!(bytes, dir = %dir.display(), "function cache over its limit: emptied");
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            tmp_seq: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let name = if key.len() <= 64 {
            hex::encode(key)
        } else {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(key))
        };
        self.dir.join(&name[..2]).join(&name)
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let (crc, value) = bytes.split_first_chunk::<4>()?;
        (u32::from_le_bytes(*crc) == crc32c::crc32c(value)).then(|| Cow::Owned(value.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let Some(parent) = path.parent() else { return false };
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".tmp-{}-{seq}", std::process::id()));
        let mut bytes = crc32c::crc32c(&value).to_le_bytes().to_vec();
        bytes.extend_from_slice(&value);
        let written = std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damaged_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::open(dir.path()).unwrap();
        assert!(cache.get(b"key").is_none());
        assert!(cache.insert(b"key", b"compiled".to_vec()));
        assert_eq!(cache.get(b"key").as_deref(), Some(&b"compiled"[..]));
        let path = cache.path(b"key");
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(cache.get(b"key").is_none(), "a damaged entry must not be used");
        std::fs::write(&path, b"ab").unwrap();
        assert!(cache.get(b"key").is_none());
        let long = vec![7u8; 100];
        assert!(cache.insert(&long, vec![1]));
        assert_eq!(cache.get(&long).as_deref(), Some(&[1u8][..]));
    }
}
