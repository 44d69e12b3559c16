//! Reading a processor's state from outside (`GET /v1/processors/{name}/state/{store}`):
//! a key, or a range in key order over every partition's task, merged.

use super::{ProcessorError, Processors};

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
        let mut all = Vec::new();
        for (partition, task, handle) in self.stores_of(name, store)? {
            // One task's lock at a time, for one page of it.
            let state = task.lock().unwrap_or_else(|e| e.into_inner());
            for (key, value) in state.scan(handle, start, end, limit + 1, bytes_max).unwrap_or_default() {
                all.push(Entry { partition, key, value });
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let mut bytes = 0usize;
        let mut keep = 0;
        for e in all.iter().take(limit) {
            if keep > 0 && bytes + e.key.len() + e.value.len() > bytes_max {
                break;
            }
            bytes += e.key.len() + e.value.len();
            keep += 1;
        }
        let more = all.len() > keep;
        all.truncate(keep);
        Ok((all, more))
    }
}
