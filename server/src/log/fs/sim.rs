//! A simulated file system for crash tests, in the spirit of redb's and TigerBeetle's: it keeps,
//! per file, the bytes a crash would leave (what was synced) apart from the bytes a running
//! process sees, and, per directory, the durable names apart from the current ones. After a set
//! number of operations it "crashes": every later call fails, and [`SimFs::crash`] returns the
//! file system a restart would find.
//!
//! What a crash keeps of the unsynced operations is chosen by [`Survival`]: nothing (the strict
//! case), or a random prefix of each file's and each directory's pending operations, the last
//! write possibly torn at a random byte (page-cache writeback that stopped part-way).
//!
//! A rename is atomic, as journaling file systems make it (and as every log that renames
//! files into place counts on): after a crash both names changed or neither, whatever the two
//! directories kept otherwise; syncing either directory makes it durable.
//!
//! Simplification: directories are durable as soon as they are created (the log only creates
//! its own partition directory, which the topic layer made durable).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileRef, Fs, FsFile, Open};

/// What a crash keeps of operations that were not made durable.
#[derive(Debug, Clone, Copy)]
pub enum Survival {
    /// Nothing: only synced data and names survive.
    Nothing,
    /// A random prefix of each file's and directory's pending operations, seeded.
    RandomPrefix(u64),
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(String, usize),
    Unlink(String),
    /// Rename number `n` (see `State::renames`), in the source and the destination directory.
    Rename(usize),
}

/// A rename: it survives a crash as a whole, when its destination directory kept it.
#[derive(Debug, Clone)]
struct Rename {
    from_dir: PathBuf,
    from: String,
    to_dir: PathBuf,
    to: String,
    ino: usize,
}

#[derive(Debug, Clone, Default)]
struct Dir {
    entries: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
    pending: Vec<DirOp>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    renames: Vec<Rename>,
    /// Mutating operations left before the crash; `None`: never crash.
    budget: Option<u64>,
    crashed: bool,
    /// Bytes all files may hold together; `None`: unlimited.
    capacity: Option<u64>,
    /// Mutating operations done so far.
    ops: u64,
}

/// The simulated file system. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimFs(Arc<Mutex<State>>);

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?
        .to_string_lossy()
        .into_owned();
    Ok((parent.to_owned(), name))
}

impl State {
    /// Counts a mutating operation against the budget; the one that exhausts it fails.
    fn step(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        if let Some(left) = self.budget.as_mut() {
            if *left == 0 {
                self.crashed = true;
                return Err(crashed());
            }
            *left -= 1;
        }
        self.ops += 1;
        Ok(())
    }

    fn live(&self) -> io::Result<()> {
        if self.crashed { Err(crashed()) } else { Ok(()) }
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no directory {}", dir.display())))
    }

    fn used(&self) -> u64 {
        let mut live: Vec<usize> = self.dirs.values().flat_map(|d| d.entries.values().copied()).collect();
        live.sort_unstable();
        live.dedup();
        live.iter().map(|&i| self.inodes[i].data.len() as u64).sum()
    }

    fn check_room(&self, ino: usize, new_len: u64) -> io::Result<()> {
        let Some(cap) = self.capacity else { return Ok(()) };
        let cur = self.inodes[ino].data.len() as u64;
        if new_len > cur && self.used() + (new_len - cur) > cap {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (simulated)",
            ));
        }
        Ok(())
    }
}

fn apply(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { pos, bytes } => {
            let end = *pos as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*pos as usize..end].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

/// A tiny deterministic generator (xorshift64*), enough to pick prefixes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (n as u64).max(1)) as usize
    }
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crashes after `ops` more mutating operations (the next one after those fails).
    pub fn crash_after(&self, ops: u64) {
        self.lock().budget = Some(ops);
    }

    /// Limits the bytes all files may hold; writes beyond fail with `StorageFull`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Mutating operations done so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The file system a restart would find after a crash now.
    pub fn crash(&self, survival: Survival) -> SimFs {
        let st = self.lock();
        let mut rng = Rng(match survival {
            Survival::Nothing => 1,
            Survival::RandomPrefix(seed) => seed | 1,
        });
        let mut keep = |n: usize| match survival {
            Survival::Nothing => 0,
            Survival::RandomPrefix(_) => rng.below(n + 1),
        };
        // Which pending renames survive: those their destination directory kept.
        let mut kept_ops = BTreeMap::new();
        for (path, d) in &st.dirs {
            kept_ops.insert(path.clone(), keep(d.pending.len()));
        }
        let survived = |n: usize| {
            let r = &st.renames[n];
            let d = &st.dirs[&r.to_dir];
            d.pending[..kept_ops[&r.to_dir]]
                .iter()
                .any(|op| matches!(op, DirOp::Rename(m) if *m == n))
        };
        let mut dirs = BTreeMap::new();
        for (path, d) in &st.dirs {
            let mut entries = d.durable.clone();
            for (i, op) in d.pending.iter().enumerate() {
                match op {
                    DirOp::Link(name, ino) if i < kept_ops[path] => {
                        entries.insert(name.clone(), *ino);
                    }
                    DirOp::Unlink(name) if i < kept_ops[path] => {
                        entries.remove(name);
                    }
                    DirOp::Rename(n) if survived(*n) => {
                        let r = &st.renames[*n];
                        if r.from_dir == *path {
                            entries.remove(&r.from);
                        }
                        if r.to_dir == *path {
                            entries.insert(r.to.clone(), r.ino);
                        }
                    }
                    _ => {}
                }
            }
            dirs.insert(
                path.clone(),
                Dir {
                    durable: entries.clone(),
                    entries,
                    pending: Vec::new(),
                },
            );
        }
        let mut inodes = Vec::with_capacity(st.inodes.len());
        for ino in &st.inodes {
            let mut data = ino.durable.clone();
            let n = keep(ino.pending.len());
            for (i, op) in ino.pending[..n].iter().enumerate() {
                match op {
                    FileOp::Write { pos, bytes } if i + 1 == n && !bytes.is_empty() => {
                        // The last surviving write may be torn anywhere.
                        let cut = keep(bytes.len()).max(1);
                        apply(
                            &mut data,
                            &FileOp::Write {
                                pos: *pos,
                                bytes: bytes[..cut].to_vec(),
                            },
                        );
                    }
                    op => apply(&mut data, op),
                }
            }
            inodes.push(Inode {
                durable: data.clone(),
                data,
                pending: Vec::new(),
            });
        }
        SimFs(Arc::new(Mutex::new(State {
            inodes,
            dirs,
            renames: Vec::new(),
            budget: None,
            crashed: false,
            capacity: st.capacity,
            ops: 0,
        })))
    }

    fn lookup(&self, path: &Path) -> io::Result<usize> {
        let (parent, name) = split(path)?;
        let mut st = self.lock();
        st.live()?;
        st.dir(&parent)?
            .entries
            .get(&name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {}", path.display())))
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: usize,
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let st = self.fs.lock();
        st.live()?;
        let data = &st.inodes[self.ino].data;
        let start = (pos as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.step()?;
        st.check_room(self.ino, pos + buf.len() as u64)?;
        let op = FileOp::Write {
            pos,
            bytes: buf.to_vec(),
        };
        let ino = &mut st.inodes[self.ino];
        apply(&mut ino.data, &op);
        ino.pending.push(op);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.fs.lock();
        st.live()?;
        Ok(st.inodes[self.ino].data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.step()?;
        st.check_room(self.ino, len)?;
        let ino = &mut st.inodes[self.ino];
        apply(&mut ino.data, &FileOp::SetLen(len));
        ino.pending.push(FileOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.step()?;
        let ino = &mut st.inodes[self.ino];
        ino.durable = ino.data.clone();
        ino.pending.clear();
        Ok(())
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, mode: Open) -> io::Result<FileRef> {
        let ino = match (self.lookup(path), mode) {
            (Ok(ino), Open::Existing | Open::Create) => ino,
            (Ok(ino), Open::Truncate) => {
                let file = SimFile { fs: self.clone(), ino };
                file.set_len(0)?;
                ino
            }
            (Err(e), Open::Existing) => return Err(e),
            (Err(e), _) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            (Err(_), Open::Create | Open::Truncate) => {
                let (parent, name) = split(path)?;
                let mut st = self.lock();
                st.step()?;
                let ino = st.inodes.len();
                st.dir(&parent)?;
                st.inodes.push(Inode::default());
                let dir = st.dir(&parent)?;
                dir.entries.insert(name.clone(), ino);
                dir.pending.push(DirOp::Link(name, ino));
                ino
            }
        };
        Ok(Arc::new(SimFile { fs: self.clone(), ino }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lookup(path)?;
        let (parent, name) = split(path)?;
        let mut st = self.lock();
        st.step()?;
        let dir = st.dir(&parent)?;
        dir.entries.remove(&name);
        dir.pending.push(DirOp::Unlink(name));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let ino = self.lookup(from)?;
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        let mut st = self.lock();
        st.step()?;
        st.dir(&tp)?;
        let n = st.renames.len();
        st.renames.push(Rename {
            from_dir: fp.clone(),
            from: fname.clone(),
            to_dir: tp.clone(),
            to: tname.clone(),
            ino,
        });
        let src = st.dir(&fp)?;
        src.entries.remove(&fname);
        src.pending.push(DirOp::Rename(n));
        let dst = st.dir(&tp)?;
        dst.entries.insert(tname, ino);
        if fp != tp {
            dst.pending.push(DirOp::Rename(n));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        st.live()?;
        let mut names: Vec<String> = st.dir(dir)?.entries.keys().cloned().collect();
        let sub: Vec<String> = st
            .dirs
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.extend(sub);
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.live()?;
        for d in dir.ancestors() {
            st.dirs.entry(d.to_owned()).or_default();
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.step()?;
        let d = st.dir(dir)?;
        d.durable = d.entries.clone();
        let pending = std::mem::take(&mut d.pending);
        // A rename this directory had a part in is now durable in the other directory too.
        for op in pending {
            let DirOp::Rename(n) = op else { continue };
            let r = st.renames[n].clone();
            for (other, remove, insert) in [(&r.from_dir, true, false), (&r.to_dir, false, true)] {
                if other == dir {
                    continue;
                }
                let o = st.dir(other)?;
                if remove {
                    o.durable.remove(&r.from);
                }
                if insert {
                    o.durable.insert(r.to.clone(), r.ino);
                }
                o.pending.retain(|op| !matches!(op, DirOp::Rename(m) if *m == n));
            }
        }
        Ok(())
    }
}
