//! One store of one task: byte keys to byte values, ordered bytewise, in memory, with the
//! bytes it holds counted.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A key and its value, as a store holds them.
pub type Entry = (Box<[u8]>, Box<[u8]>);
/// Entries copied out of a store.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A named, ordered map of bytes.
#[derive(Debug, Default)]
pub struct Store {
    pub name: String,
    map: BTreeMap<Box<[u8]>, Box<[u8]>>,
    /// Bytes of keys and values.
    bytes: u64,
}

fn size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
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
            map: entries.into_iter().collect(),
            bytes,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|v| &**v)
    }

    /// Sets `key`; returns the value it had.
    pub fn put(&mut self, key: &[u8], value: Box<[u8]>) -> Option<Box<[u8]>> {
        self.bytes += size(key, &value);
        let old = match self.map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.map.insert(key.into(), value);
                None
            }
        };
        if let Some(o) = &old {
            self.bytes -= size(key, o);
        }
        old
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<[u8]>> {
        let old = self.map.remove(key);
        if let Some(o) = &old {
            self.bytes -= size(key, o);
        }
        old
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
        for (k, v) in self.map.range::<[u8], _>((Bound::Included(start), upper)).take(limit) {
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
        self.map.iter().map(|(k, v)| (&**k, &**v))
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
    fn puts_removes_and_scans_count_bytes_and_keep_key_order() {
        let mut s = Store::new("s");
        assert_eq!(s.put(b"b", Box::from(&b"22"[..])), None);
        s.put(b"a", Box::from(&b"1"[..]));
        s.put(b"c", Box::from(&b"333"[..]));
        assert_eq!(s.bytes(), 2 + 3 + 4);
        assert_eq!(s.put(b"b", Box::from(&b"2"[..])).as_deref(), Some(&b"22"[..]));
        assert_eq!(s.bytes(), 2 + 2 + 4);
        let keys: Vec<Vec<u8>> = s.scan(b"a", Some(b"c"), 10).into_iter().map(|e| e.0).collect();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(s.scan(b"b", None, 1).len(), 1);
        assert!(s.scan(b"c", Some(b"a"), 10).is_empty());
        assert_eq!(s.remove(b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!((s.len(), s.bytes()), (2, 6));
    }
}
