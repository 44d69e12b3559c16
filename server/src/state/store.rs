//! One store of one task: byte keys to byte values, ordered bytewise, in memory, with the
//! bytes it holds counted.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A key and its value, as a store holds them.
pub type Entry = (Box<[u8]>, Box<[u8]>);
/// Entries copied out of a store.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A value and whether it changed since the task's last commit (its key is then in the
/// task's list of keys to write to the changelog).
#[derive(Debug)]
struct Slot {
    value: Box<[u8]>,
    dirty: bool,
}

/// A named, ordered map of bytes.
#[derive(Debug, Default)]
pub struct Store {
    pub name: String,
    map: BTreeMap<Box<[u8]>, Slot>,
    /// Bytes of keys and values.
    bytes: u64,
}

fn size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// What a write replaced.
#[derive(Debug)]
pub struct Replaced {
    /// The value the key had (`None`: none).
    pub old: Option<Box<[u8]>>,
    /// Whether the key was clean (unchanged since the last commit) or absent before: the
    /// caller lists it for the changelog.
    pub newly_dirty: bool,
}

impl Store {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// A store holding `entries`, which must be in ascending key order (a snapshot's): built
    /// in one pass.
    pub fn from_sorted(name: &str, entries: Vec<Entry>) -> Self {
        let bytes = entries.iter().map(|(k, v)| size(k, v)).sum();
        Self {
            name: name.to_owned(),
            map: entries
                .into_iter()
                .map(|(k, value)| (k, Slot { value, dirty: false }))
                .collect(),
            bytes,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|s| &*s.value)
    }

    /// Sets `key` to what `next` makes of its current value (one lookup of the key for a key
    /// that exists, two for a new one), marking it changed. `next` may refuse: nothing is
    /// written then.
    pub fn update<E>(
        &mut self,
        key: &[u8],
        next: impl FnOnce(Option<&[u8]>) -> Result<Box<[u8]>, E>,
    ) -> Result<Replaced, E> {
        match self.map.get_mut(key) {
            Some(slot) => {
                let value = next(Some(&slot.value))?;
                self.bytes = self.bytes + value.len() as u64 - slot.value.len() as u64;
                let old = std::mem::replace(&mut slot.value, value);
                let newly_dirty = !std::mem::replace(&mut slot.dirty, true);
                Ok(Replaced {
                    old: Some(old),
                    newly_dirty,
                })
            }
            None => {
                let value = next(None)?;
                self.bytes += size(key, &value);
                self.map.insert(key.into(), Slot { value, dirty: true });
                Ok(Replaced {
                    old: None,
                    newly_dirty: true,
                })
            }
        }
    }

    /// Removes `key`; returns the value it had (`None`: it had none, nothing changed).
    pub fn delete(&mut self, key: &[u8]) -> Option<Replaced> {
        let (k, slot) = self.map.remove_entry(key)?;
        self.bytes -= size(&k, &slot.value);
        Some(Replaced {
            old: Some(slot.value),
            newly_dirty: !slot.dirty,
        })
    }

    /// Puts back what a write replaced (an undo), leaving the key marked changed; true when
    /// it was not marked (the caller lists it for the changelog).
    pub fn put_back(&mut self, key: &[u8], old: Option<Box<[u8]>>) -> bool {
        match old {
            Some(value) => match self.update::<()>(key, |_| Ok(value)) {
                Ok(r) => r.newly_dirty,
                Err(()) => false,
            },
            None => self.delete(key).is_some_and(|r| r.newly_dirty),
        }
    }

    /// The value of a changed key for the changelog, marking it clean; `None` when it is
    /// clean already (listed twice) and `Some(None)` when it is gone.
    pub fn take_change(&mut self, key: &[u8]) -> Option<Option<&[u8]>> {
        match self.map.get_mut(key) {
            None => Some(None),
            Some(slot) if slot.dirty => {
                slot.dirty = false;
                Some(Some(&slot.value))
            }
            Some(_) => None,
        }
    }

    /// Sets `key` as read back from the changelog or a snapshot: not a change.
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => {
                self.bytes += size(key, v);
                let slot = Slot {
                    value: v.into(),
                    dirty: false,
                };
                if let Some(old) = self.map.insert(key.into(), slot) {
                    self.bytes -= size(key, &old.value);
                }
            }
            None => {
                if let Some(old) = self.map.remove(key) {
                    self.bytes -= size(key, &old.value);
                }
            }
        }
    }

    /// Entries with `start <= key < end` (no end: to the last), ascending, at most `limit`.
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        self.scan_bytes(start, end, limit, usize::MAX)
    }

    /// [`Self::scan`] that also stops once the entries hold `bytes_max` bytes of keys and
    /// values (always at least one entry).
    pub fn scan_bytes(&self, start: &[u8], end: Option<&[u8]>, limit: usize, bytes_max: usize) -> Entries {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        if end.is_some_and(|e| e <= start) {
            return Vec::new();
        }
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for (k, slot) in self.map.range::<[u8], _>((Bound::Included(start), upper)).take(limit) {
            let v = &slot.value;
            if !out.is_empty() && bytes + k.len() + v.len() > bytes_max {
                break;
            }
            bytes += k.len() + v.len();
            out.push((k.to_vec(), v.to_vec()));
        }
        out
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, s)| (&**k, &*s.value))
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_deletes_and_scans_count_bytes_and_keep_key_order() {
        let mut s = Store::new("s");
        let set = |s: &mut Store, k: &[u8], v: &[u8]| s.update::<()>(k, |_| Ok(Box::from(v))).unwrap();
        let r = set(&mut s, b"b", b"22");
        assert!(r.old.is_none() && r.newly_dirty);
        set(&mut s, b"a", b"1");
        set(&mut s, b"c", b"333");
        assert_eq!(s.bytes(), 2 + 3 + 4);
        let r = set(&mut s, b"b", b"2");
        assert_eq!((r.old.as_deref(), r.newly_dirty), (Some(&b"22"[..]), false));
        assert_eq!(s.bytes(), 2 + 2 + 4);
        assert!(s.update(b"b", |_| Err("no")).is_err());
        assert_eq!(s.get(b"b"), Some(&b"2"[..]), "a refused update writes nothing");
        let keys: Vec<Vec<u8>> = s.scan(b"a", Some(b"c"), 10).into_iter().map(|e| e.0).collect();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(s.scan(b"b", None, 1).len(), 1);
        assert!(s.scan(b"c", Some(b"a"), 10).is_empty());
        assert_eq!(s.take_change(b"a"), Some(Some(&b"1"[..])));
        assert_eq!(s.take_change(b"a"), None, "clean now");
        let r = s.delete(b"a").unwrap();
        assert_eq!((r.old.as_deref(), r.newly_dirty), (Some(&b"1"[..]), true));
        assert!(s.delete(b"a").is_none());
        assert_eq!(s.take_change(b"a"), Some(None));
        assert_eq!((s.len(), s.bytes()), (2, 6));
        s.restore(b"z", Some(b"9"));
        assert_eq!(s.take_change(b"z"), None, "restored values are not changes");
        s.put_back(b"z", None);
        assert_eq!((s.len(), s.bytes()), (2, 6));
    }
}
