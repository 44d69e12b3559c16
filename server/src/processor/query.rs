//! Reading a processor's state from outside (`GET /v1/processors/{name}/state/{store}`):
//! a key, or a range in key order over every partition's task, merged.

use super::{ProcessorError, Processors};
use crate::state::Entries;

/// One entry of a store, with the input partition whose task holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub partition: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Processors {
    /// The task states of processor `name`, and the handle of its store `store`.
    fn stores_of(&self, name: &str, store: &str) -> Result<Vec<(u32, crate::wasm::TaskRef, u32)>, ProcessorError> {
        let slot = self.slots().get(name).cloned();
        let p = slot
            .and_then(|s| s.published())
            .ok_or_else(|| ProcessorError::NotFound(name.to_owned()))?;
        let Some(handle) = p.stored.spec.stores.iter().position(|s| s == store) else {
            return Err(ProcessorError::StoreNotFound {
                processor: name.to_owned(),
                store: store.to_owned(),
                declared: p.stored.spec.stores.clone(),
            });
        };
        Ok(p.gauges
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.state().map(|t| (i as u32, t, handle as u32)))
            .collect())
    }

    /// The value of `key` in `store` of processor `name`, with the partition holding it.
    pub fn state_get(&self, name: &str, store: &str, key: &[u8]) -> Result<Option<Entry>, ProcessorError> {
        for (partition, task, handle) in self.stores_of(name, store)? {
            let state = task.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(Some(v)) = state.get(handle, key) {
                return Ok(Some(Entry {
                    partition,
                    key: key.to_vec(),
                    value: v.to_vec(),
                }));
            }
        }
        Ok(None)
    }

    /// Entries of `store` with `start <= key < end`, in key order over all partitions, at
    /// most `limit` and at most `bytes_max` bytes of keys and values (at least one entry);
    /// and whether more may follow.
    pub fn state_scan(
        &self,
        name: &str,
        store: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<(Vec<Entry>, bool), ProcessorError> {
        let tasks = self.stores_of(name, store)?;
        // One budget shared by the tasks, so a page copies at most about `bytes_max`.
        let per_task = (bytes_max / tasks.len().max(1)).max(1);
        let mut scans = Vec::with_capacity(tasks.len());
        for (partition, task, handle) in tasks {
            // One task's lock at a time, for one page of it.
            let state = task.lock().unwrap_or_else(|e| e.into_inner());
            let (entries, cut) = state.scan(handle, start, end, limit, per_task).unwrap_or_default();
            drop(state);
            scans.push((partition, entries, cut));
        }
        Ok(merge_page(scans, limit, bytes_max))
    }
}

/// One page over the tasks' scans (each its partition, entries in key order, and whether it
/// stopped with entries left): in key order, at most `limit` entries and `bytes_max` bytes
/// (at least one), and whether more may follow. A scan that stopped short has none of its
/// entries past its last key here, so the page ends at the smallest such key: the next page,
/// after it, misses nothing.
fn merge_page(scans: Vec<(u32, Entries, bool)>, limit: usize, bytes_max: usize) -> (Vec<Entry>, bool) {
    let horizon: Option<Vec<u8>> = scans
        .iter()
        .filter(|(_, _, cut)| *cut)
        .filter_map(|(_, entries, _)| entries.last().map(|(k, _)| k.clone()))
        .min();
    let mut all: Vec<Entry> = scans
        .into_iter()
        .flat_map(|(partition, entries, _)| {
            entries
                .into_iter()
                .map(move |(key, value)| Entry { partition, key, value })
        })
        .collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let mut more = false;
    if let Some(h) = &horizon {
        more = true;
        all.retain(|e| e.key <= *h);
    }
    let mut bytes = 0usize;
    let mut keep = 0;
    for e in all.iter().take(limit) {
        if keep > 0 && bytes + e.key.len() + e.value.len() > bytes_max {
            break;
        }
        bytes += e.key.len() + e.value.len();
        keep += 1;
    }
    more |= all.len() > keep;
    all.truncate(keep);
    (all, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(keys: &[&str]) -> Entries {
        keys.iter().map(|k| (k.as_bytes().to_vec(), b"v".to_vec())).collect()
    }

    fn keys(page: &[Entry]) -> Vec<String> {
        page.iter().map(|e| String::from_utf8(e.key.clone()).unwrap()).collect()
    }

    #[test]
    fn a_page_ends_where_a_cut_scan_stopped_so_the_next_misses_nothing() {
        // Partition 0 stopped at "m" (its byte share); 1 gave everything up to "p".
        let (page, more) = merge_page(
            vec![
                (0, entries(&["a", "m"]), true),
                (1, entries(&["b", "n", "o", "p"]), false),
            ],
            10,
            usize::MAX,
        );
        assert_eq!(keys(&page), ["a", "b", "m"]);
        assert!(more, "n1 of partition 0 may lie between m and n");
        // A single scan cut by bytes says more, too.
        let (page, more) = merge_page(vec![(0, entries(&["m"]), true)], 10, usize::MAX);
        assert_eq!((keys(&page), more), (vec!["m".to_owned()], true));
        // Nothing cut: the limit decides.
        let (page, more) = merge_page(
            vec![(0, entries(&["a", "c"]), false), (1, entries(&["b"]), false)],
            2,
            usize::MAX,
        );
        assert_eq!((keys(&page), more), (vec!["a".to_owned(), "b".to_owned()], true));
        let (page, more) = merge_page(vec![(0, entries(&["a"]), false)], 2, usize::MAX);
        assert_eq!((keys(&page), more), (vec!["a".to_owned()], false));
        // And the page's bytes: at least one entry.
        let (page, more) = merge_page(vec![(0, entries(&["aa", "bb"]), false)], 10, 1);
        assert_eq!((keys(&page), more), (vec!["aa".to_owned()], true));
    }
}
