//! The file-system seam of the log: every byte the log writes, every file it creates, renames
//! or removes and every fsync goes through [`Fs`], so that a test can swap the real file system
//! for a simulated one that crashes (drops what was not made durable) at any step.
//!
//! The calls are the few the log needs, with POSIX meaning: data written to a file is durable
//! once the file is synced; a file's *name* (its directory entry, after a create, rename or
//! remove) is durable once its directory is synced. Nothing here maps files into memory: a
//! mapped page that cannot be backed on a full disk kills the process with SIGBUS, where a
//! `write` returns `ENOSPC` that the caller can answer.

use std::fmt::Debug;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

#[cfg(test)]
pub mod sim;

/// How [`Fs::open`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// The file must exist.
    Existing,
    /// Create it if missing; keep what it holds.
    Create,
    /// Create it if missing; cut it to zero bytes.
    Truncate,
}

/// A file opened for reading and writing at explicit positions.
pub trait FsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `pos`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `pos`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A shared handle to an open file (the writer fsyncs it outside the partition lock).
pub type FileRef = Arc<dyn FsFile>;

/// The directory operations the log uses.
pub trait Fs: Send + Sync + Debug {
    fn open(&self, path: &Path, mode: Open) -> io::Result<FileRef>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (names created, renamed or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// The whole file, or `None` if it does not exist.
    fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open(path, Open::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0; file.len()? as usize];
        file.read_exact_at(&mut buf, 0)?;
        Ok(Some(buf))
    }
}

/// A shared handle to the file system.
pub type FsRef = Arc<dyn Fs>;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    pub fn shared() -> FsRef {
        Arc::new(Self)
    }
}

#[derive(Debug)]
struct RealFile(std::fs::File);

impl FsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, mode: Open) -> io::Result<FileRef> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        match mode {
            Open::Existing => {}
            Open::Create => {
                o.create(true).truncate(false);
            }
            Open::Truncate => {
                o.create(true).truncate(true);
            }
        }
        Ok(Arc::new(RealFile(o.open(path)?)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */))
}
