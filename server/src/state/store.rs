//! One store of one task: byte keys to byte values, ordered bytewise, in memory, with the
//! bytes it holds counted.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A key and its value, as a store holds them.
pub type Entry = (Box<[u8]>, Box<[u8]>);
/// Entries copied out of a store.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A value (`None`: deleted since the last commit, a tombstone until the commit writes it)
/// and whether it changed since the task's last commit (its key is then in the task's list
/// of keys to write to the changelog, once).
#[derive(Debug)]
struct Slot {
    value: Option<Box<[u8]>>,
    dirty: bool,
}

/// A named, ordered map of bytes.
#[derive(Debug, Default)]
pub struct Store {
    pub name: String,
    map: BTreeMap<Box<[u8]>, Slot>,
    /// Keys with a value (the map also holds tombstones).
    live: u64,
    /// Bytes of keys and values.
    bytes: u64,
    /// State calls refused (a limit, an increment of text), since the task started.
    pub refused: u64,
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
        let live = entries.len() as u64;
        Self {
            name: name.to_owned(),
            map: entries
                .into_iter()
                .map(|(k, value)| {
                    let slot = Slot {
                        value: Some(value),
                        dirty: false,
                    };
                    (k, slot)
                })
                .collect(),
            live,
            bytes,
            refused: 0,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).and_then(|s| s.value.as_deref())
    }

    /// Sets `key` to what `next` makes of its current value (one lookup of the key for a key
    /// the map holds, two for a new one), marking it changed. `next` may refuse: nothing is
    /// written then.
    pub fn update<E>(
        &mut self,
        key: &[u8],
        next: impl FnOnce(Option<&[u8]>) -> Result<Box<[u8]>, E>,
    ) -> Result<Replaced, E> {
        match self.map.get_mut(key) {
            Some(slot) => {
                let value = next(slot.value.as_deref())?;
                self.bytes += size(key, &value);
                if let Some(old) = &slot.value {
                    self.bytes -= size(key, old);
                } else {
                    self.live += 1;
                }
                let old = slot.value.replace(value);
                let newly_dirty = !std::mem::replace(&mut slot.dirty, true);
                Ok(Replaced { old, newly_dirty })
            }
            None => {
                let value = next(None)?;
                self.bytes += size(key, &value);
                self.live += 1;
                let slot = Slot {
                    value: Some(value),
                    dirty: true,
                };
                self.map.insert(key.into(), slot);
                Ok(Replaced {
                    old: None,
                    newly_dirty: true,
                })
            }
        }
    }

    /// Deletes `key` (a tombstone until the commit); returns what it had (`None`: it had no
    /// value, nothing changed).
    pub fn delete(&mut self, key: &[u8]) -> Option<Replaced> {
        let slot = self.map.get_mut(key)?;
        let old = slot.value.take()?;
        self.bytes -= size(key, &old);
        self.live -= 1;
        let newly_dirty = !std::mem::replace(&mut slot.dirty, true);
        Some(Replaced {
            old: Some(old),
            newly_dirty,
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

    /// The value of a changed key for the changelog, marking it clean (a tombstone goes);
    /// `None` when it is clean (nothing to write).
    pub fn take_change(&mut self, key: &[u8]) -> Option<Option<&[u8]>> {
        let slot = self.map.get(key)?;
        if !slot.dirty {
            return None;
        }
        if slot.value.is_none() {
            self.map.remove(key);
            return Some(None);
        }
        let slot = self.map.get_mut(key)?;
        slot.dirty = false;
        Some(slot.value.as_deref())
    }

    /// Sets `key` as read back from the changelog or a snapshot: not a change.
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) {
        let old = match value {
            Some(v) => {
                self.bytes += size(key, v);
                self.live += 1;
                let slot = Slot {
                    value: Some(v.into()),
                    dirty: false,
                };
                self.map.insert(key.into(), slot)
            }
            None => self.map.remove(key),
        };
        if let Some(old) = old.and_then(|s| s.value) {
            self.bytes -= size(key, &old);
            self.live -= 1;
        }
    }

    /// Entries with `start <= key < end` (no end: to the last), ascending, at most `limit`.
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        self.scan_bytes(start, end, limit, usize::MAX).0
    }

    /// [`Self::scan`] that also stops once the entries hold `bytes_max` bytes of keys and
    /// values (always at least one entry); and whether it stopped before the end of the range
    /// (at `limit` or `bytes_max`, with entries left).
    pub fn scan_bytes(&self, start: &[u8], end: Option<&[u8]>, limit: usize, bytes_max: usize) -> (Entries, bool) {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        if end.is_some_and(|e| e <= start) {
            return (Vec::new(), false);
        }
        let mut bytes = 0usize;
        let mut out = Vec::new();
        let range = self.map.range::<[u8], _>((Bound::Included(start), upper));
        for (k, v) in range.filter_map(|(k, s)| Some((k, s.value.as_deref()?))) {
            if out.len() == limit || (!out.is_empty() && bytes + k.len() + v.len() > bytes_max) {
                return (out, true);
            }
            bytes += k.len() + v.len();
            out.push((k.to_vec(), v.to_vec()));
        }
        (out, false)
    }

    /// Keys with a value.
    pub fn len(&self) -> u64 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The entries with a value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().filter_map(|(k, s)| Some((&**k, s.value.as_deref()?)))
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.live = 0;
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
        assert_eq!(s.scan_bytes(b"a", None, 10, 4).0.len(), 2, "cut by bytes");
        assert!(s.scan_bytes(b"a", None, 10, 4).1);
        assert!(s.scan_bytes(b"a", None, 2, usize::MAX).1, "cut by the limit");
        assert!(!s.scan_bytes(b"a", None, 3, usize::MAX).1, "the whole range");
        assert!(s.scan(b"c", Some(b"a"), 10).is_empty());
        assert_eq!(s.take_change(b"a"), Some(Some(&b"1"[..])));
        assert_eq!(s.take_change(b"a"), None, "clean now");
        let r = s.delete(b"a").unwrap();
        assert_eq!((r.old.as_deref(), r.newly_dirty), (Some(&b"1"[..]), true));
        assert!(s.delete(b"a").is_none());
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.scan(b"", None, 10).len(), 2, "a tombstone is not an entry");
        // Written again before the commit: still listed once.
        assert!(!set(&mut s, b"a", b"1").newly_dirty);
        s.delete(b"a");
        assert_eq!(s.take_change(b"a"), Some(None));
        assert_eq!(s.take_change(b"a"), None, "the tombstone went with the commit");
        assert_eq!((s.len(), s.bytes()), (2, 6));
        s.restore(b"z", Some(b"9"));
        assert_eq!(s.take_change(b"z"), None, "restored values are not changes");
        s.put_back(b"z", None);
        assert_eq!((s.len(), s.bytes()), (2, 6));
    }
}
