//! The changelog: every committed change of a processor's state, as records of its topic
//! `__weir_changelog-NAME` (compacted; one partition per input partition, the task's):
//!
//! ```text
//! key   = STORE_LEN u8, the store's name (UTF-8), then the key's bytes
//! value = the value's bytes; no value (a tombstone) for a deleted key
//! ```
//!
//! Compaction keeps the newest record of each key, so the topic holds the state itself. A task
//! restores by replaying its partition from its snapshot's offset to the end (committed records
//! only: a crash's aborted transaction never comes back).

use std::sync::Arc;

use super::task::{Change, TaskState};
use crate::record::NewRecord;
use crate::topic::{Isolation, Partition, TopicError};

/// The changelog topic of processor `name`.
pub fn topic_name(processor: &str) -> String {
    format!("__weir_changelog-{processor}")
}

/// The changelog record of one change.
pub fn record(change: Change) -> NewRecord {
    let mut key = Vec::with_capacity(1 + change.store.len() + change.key.len());
    key.push(change.store.len() as u8);
    key.extend_from_slice(change.store.as_bytes());
    key.extend_from_slice(&change.key);
    NewRecord {
        key: Some(key),
        value: change.value,
        headers: Vec::new(),
        timestamp: None,
    }
}

/// The store and key of a changelog record's key.
pub fn decode_key(key: &[u8]) -> Option<(&str, &[u8])> {
    let len = *key.first()? as usize;
    let store = std::str::from_utf8(key.get(1..1 + len)?).ok()?;
    Some((store, &key[1 + len..]))
}

/// Replays the committed records of `partition` from `from` to its end into `state`; records
/// of stores the deployment no longer declares are skipped. Returns the offset after the last.
pub async fn replay(partition: &Arc<Partition>, from: u64, state: &mut TaskState) -> Result<(u64, u64), TopicError> {
    let (start, _) = partition.bounds();
    let end = partition.end(Isolation::ReadCommitted);
    let mut next = from.max(start);
    let mut applied = 0u64;
    while next < end {
        let chunk = partition.read(next, 4 * 1024 * 1024, Isolation::ReadCommitted).await?;
        if chunk.bytes.is_empty() {
            break;
        }
        let mut visible = chunk.visible();
        for r in visible.by_ref() {
            let Some((store, key)) = r.key.and_then(decode_key) else {
                continue;
            };
            if let Some(i) = state.index_of(store) {
                state.restore(i, key, r.value);
                applied += 1;
            }
        }
        let after = visible.next_offset();
        if after <= next {
            break;
        }
        next = after;
    }
    Ok((next, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_keys_carry_the_store_and_the_key() {
        let r = record(Change {
            store: "counts".into(),
            key: b"k\x00y".to_vec(),
            value: None,
        });
        assert_eq!(decode_key(r.key.as_deref().unwrap()), Some(("counts", &b"k\x00y"[..])));
        assert_eq!(r.value, None, "a delete is a tombstone");
        assert_eq!(decode_key(b""), None);
        assert_eq!(decode_key(b"\x09ab"), None);
    }
}
