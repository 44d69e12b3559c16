//! Cranelift's incremental compilation cache, on disk: compiled functions by the hash of their
//! inputs. A component that shares code with one compiled before compiles only what is new:
//! every Python processor embeds the same CPython, every JavaScript one the same QuickJS, so
//! after the first of each language an upload compiles in a fraction of the time.
//!
//! ```text
//! DATA/modules/functions/AB/ABCDEF...    CRC32C u32 LE | compiled function (Cranelift's bytes)
//! ```
//! Entries are written by a background thread (the compile does not wait for sixteen thousand
//! small files), to a temporary name then renamed, and checked against their CRC when read: a
//! damaged or missing entry is a miss, and the function is compiled again.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use wasmtime::CacheStore;

/// Most bytes the cache may hold; above it, it is emptied at the next start. Python and
/// JavaScript runtimes take tens of megabytes each; this leaves room for many versions.
pub const FUNCTION_CACHE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
    /// Entries on their way to the writer thread, which ends when this is dropped.
    writes: Mutex<mpsc::Sender<(PathBuf, Vec<u8>)>>,
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
        let (tx, rx) = mpsc::channel::<(PathBuf, Vec<u8>)>();
        std::thread::Builder::new()
            .name("weir-function-cache".into())
            .spawn(move || {
                for (path, bytes) in rx {
                    write_entry(&path, &bytes);
                }
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            writes: Mutex::new(tx),
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
        let mut bytes = std::fs::read(self.path(key)).ok()?;
        let crc = u32::from_le_bytes(*bytes.first_chunk::<4>()?);
        // Reuse the buffer read: cache hits run once per function of every compile.
        bytes.drain(..4);
        (crc == crc32c::crc32c(&bytes)).then_some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut bytes = crc32c::crc32c(&value).to_le_bytes().to_vec();
        bytes.extend_from_slice(&value);
        let tx = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        tx.send((self.path(key), bytes)).is_ok()
    }
}

/// Writes one entry: a temporary file in the same directory, renamed into place. Failures only
/// cost a later recompile.
fn write_entry(path: &Path, bytes: &[u8]) {
    let Some(parent) = path.parent() else { return };
    let tmp = parent.join(format!(".tmp-{}", std::process::id()));
    let written = std::fs::create_dir_all(parent)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
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
        wait_for(&cache, b"key");
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
        wait_for(&cache, &long);
        assert_eq!(cache.get(&long).as_deref(), Some(&[1u8][..]));
    }

    /// Entries are written in the background: wait until one is there.
    fn wait_for(cache: &FunctionCache, key: &[u8]) {
        for _ in 0..1000 {
            if cache.path(key).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the entry was never written");
    }
}
