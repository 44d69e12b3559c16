//! What a topic is made of: its validated name and its settings.

use serde::{Deserialize, Serialize};

/// Longest topic name: Kafka's limit, so names carry over to the Kafka protocol later.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;
/// Most partitions one topic may have: each is a directory, open files and a writer task.
pub const PARTITIONS_MAX: u32 = 1024;
/// Longest fsync interval: past an hour, "interval" would mean "never" while saying otherwise.
pub const FSYNC_INTERVAL_MS_MAX: u64 = 3600 * 1000;
/// Smallest segment: below this, rolls and index entries would dominate the work.
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;
/// Largest segment: index positions are 32-bit.
pub const SEGMENT_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024 - 1;

/// Checks a topic name: 1 to 249 of `[A-Za-z0-9._-]`, and not `.` or `..`, so that a name is
/// always one safe path component.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TOPIC_NAME_CHARS_MAX {
        return Err(format!(
            "a topic name has 1 to {TOPIC_NAME_CHARS_MAX} characters; this one has {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a valid topic name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic names use only A-Z, a-z, 0-9, '.', '_' and '-'; found {c:?}"
        ));
    }
    Ok(())
}

/// Names that start with this belong to the broker (Kafka's convention): its offset store and
/// processors' state changelogs. Users may read them, but not create, write or delete them.
pub const INTERNAL_PREFIX: &str = "__";

/// Whether `name` is one of the broker's own topics.
pub fn is_internal(name: &str) -> bool {
    name.starts_with(INTERNAL_PREFIX)
}

/// What happens to old records of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by `retention_ms` and `retention_bytes`.
    #[default]
    Delete,
    /// Only the newest record of each key is kept (in sealed segments); tombstones go after
    /// `delete_retention_ms`. Retention settings are ignored.
    Compact,
    /// Both: compacted, and old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
}

/// When appended data is flushed to disk, and so when a produce is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Group commit: concurrent appends share one write and one fsync; answers wait for it.
    #[default]
    Always,
    /// fsync every `fsync_interval_ms`; answers do not wait.
    Interval,
    /// Leave flushing to the OS page cache.
    Never,
}

impl FsyncPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Interval => "interval",
            Self::Never => "never",
        }
    }
}

/// A topic's settings as stored in its metadata file, and the server's `[defaults]` for new
/// topics. `None` retention means "keep forever".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    pub partitions: u32,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub cleanup_policy: CleanupPolicy,
    /// How long compaction keeps a tombstone (and a transaction marker) after its segment
    /// could first be compacted, so that readers behind see the delete.
    pub delete_retention_ms: i64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
        Self {
            partitions: 1,
            retention_ms: Some(WEEK_MS),
            retention_bytes: None,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: WEEK_MS,
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

impl TopicConfig {
    /// Checks every setting, saying which one is wrong and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return Err(format!(
                "partitions must be 1 to {PARTITIONS_MAX}, got {}",
                self.partitions
            ));
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment_bytes must be {SEGMENT_BYTES_MIN} to {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            ));
        }
        if self.segment_ms < 1 {
            return Err(format!("segment_ms must be at least 1, got {}", self.segment_ms));
        }
        if let Some(ms) = self.retention_ms
            && ms < 1
        {
            return Err(format!(
                "retention_ms must be at least 1 (or null for no limit), got {ms}"
            ));
        }
        if self.delete_retention_ms < 0 {
            return Err(format!(
                "delete_retention_ms must be 0 or more, got {}",
                self.delete_retention_ms
            ));
        }
        if !(1..=FSYNC_INTERVAL_MS_MAX).contains(&self.fsync_interval_ms) {
            return Err(format!(
                "fsync_interval_ms must be 1 to {FSYNC_INTERVAL_MS_MAX} (an hour), got {}",
                self.fsync_interval_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_that_could_escape_the_data_directory_are_rejected() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\\b",
            "a b",
            "é",
            "x\0",
            &"a".repeat(250),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["orders", "a", "...", "A.b_c-9", &"a".repeat(249)] {
            assert!(validate_name(good).is_ok(), "{good:?} rejected");
        }
    }
}
