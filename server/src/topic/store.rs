//! The topic directory tree on disk: `topics/NAME/topic.json`, `staging/`, `trash/`, the
//! data-directory lock and the clean-shutdown marker.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TopicError;
use super::spec::{TopicConfig, validate_name};
use crate::log::LogError;

const CLEAN_MARKER: &str = ".clean-shutdown";

/// The contents of `topic.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// The incarnation id; topics of versions before ids have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub created_ms: i64,
    pub config: TopicConfig,
}

impl TopicMeta {
    /// The incarnation id: the stored one, or for older topics one derived from the creation
    /// time (stable across restarts, and different for a topic created again later).
    pub fn id(&self) -> String {
        self.id.clone().unwrap_or_else(|| format!("{:016x}", self.created_ms))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TopicError + '_ {
    move |source| {
        LogError::Io {
            path: path.to_owned(),
            source,
        }
        .into()
    }
}

pub fn topic_dir(data: &Path, name: &str) -> PathBuf {
    data.join("topics").join(name)
}

fn sync_dir(dir: &Path) -> Result<(), TopicError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// Creates the directory layout, locks it against a second broker, clears leftovers and reads
/// (then removes) the clean-shutdown marker. Returns the lock and whether the last stop was clean.
pub fn prepare(data: &Path) -> Result<(File, bool), TopicError> {
    if !data.exists() {
        // A new data directory is the broker user's alone: records are not for other users of
        // the machine. (An existing one keeps the permissions its operator chose.)
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data)
            .map_err(io(data))?;
    }
    for sub in ["topics", "staging", "trash"] {
        let dir = data.join(sub);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
    }
    let lock_path = data.join(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(TopicError::StorageFailed {
            topic: String::new(),
            partition: 0,
            reason: format!("{} is in use by another weir process", data.display()),
        });
    }
    for sub in ["staging", "trash"] {
        let dir = data.join(sub);
        for entry in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let marker = data.join(CLEAN_MARKER);
    let clean = marker.exists();
    if clean {
        fs::remove_file(&marker).map_err(io(&marker))?;
        sync_dir(data)?;
    }
    Ok((lock, clean))
}

/// Reads every topic's metadata. A directory without a readable `topic.json` is an error that
/// names it: better to refuse to start than to silently drop a topic.
pub fn load_all(data: &Path) -> Result<Vec<(String, TopicMeta)>, TopicError> {
    let dir = data.join("topics");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if validate_name(&name).is_err() {
            tracing::warn!(entry = %entry.path().display(), "ignoring a directory that is not a topic name");
            continue;
        }
        let path = entry.path().join("topic.json");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let meta: TopicMeta = serde_json::from_str(&text).map_err(|e| TopicError::StorageFailed {
            topic: name.clone(),
            partition: 0,
            reason: format!("{} is not valid topic metadata: {e}", path.display()),
        })?;
        out.push((name, meta));
    }
    Ok(out)
}

/// Builds the topic directory under `staging/ID` and renames it into `topics/NAME`.
pub fn create(data: &Path, name: &str, id: &str, config: &TopicConfig, created_ms: i64) -> Result<(), TopicError> {
    let final_dir = topic_dir(data, name);
    if final_dir.exists() {
        return Err(TopicError::Exists(name.to_owned()));
    }
    let staging = data.join("staging").join(id);
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(io(&staging))?;
    for p in 0..config.partitions {
        let pdir = staging.join(p.to_string());
        fs::create_dir(&pdir).map_err(io(&pdir))?;
    }
    // The partition directories' names are durable with the sync of `staging` below; the
    // files the log creates in them are made durable by the log itself before they are used.
    let meta = TopicMeta {
        name: name.to_owned(),
        id: Some(id.to_owned()),
        created_ms,
        config: config.clone(),
    };
    let path = staging.join("topic.json");
    let mut f = File::create(&path).map_err(io(&path))?;
    let json = serde_json::to_vec_pretty(&meta).expect("topic metadata serializes");
    f.write_all(&json).and_then(|()| f.sync_all()).map_err(io(&path))?;
    sync_dir(&staging)?;
    fs::rename(&staging, &final_dir).map_err(io(&final_dir))?;
    sync_dir(&data.join("topics"))
}

/// Moves the topic to `trash/ID` (atomic), then removes it. The trash name is the incarnation
/// id, not the topic name: `NAME.<suffix>` would pass the file-name limit for long names.
pub fn delete(data: &Path, name: &str, id: &str) -> Result<(), TopicError> {
    let from = topic_dir(data, name);
    let to = data.join("trash").join(id);
    let _ = fs::remove_dir_all(&to);
    fs::rename(&from, &to).map_err(io(&from))?;
    sync_dir(&data.join("topics"))?;
    fs::remove_dir_all(&to).map_err(io(&to))
}

pub fn mark_clean(data: &Path) -> Result<(), TopicError> {
    let marker = data.join(CLEAN_MARKER);
    File::create(&marker).and_then(|f| f.sync_all()).map_err(io(&marker))?;
    sync_dir(data)
}
