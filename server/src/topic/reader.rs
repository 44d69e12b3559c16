//! The one reader of records from an offset, used by fetch, SSE and processors: it walks the
//! whole batches of a [`Chunk`] and yields the records the reader may see, skipping records
//! before the offset asked for, control batches (transaction markers), batches of aborted
//! transactions, and everything at or past the chunk's limit (the last stable offset for
//! readers of committed records).
//!
//! [`Visible::next_offset`] is where the reader goes on: one past the last record yielded, or,
//! once a batch was walked to its end, one past that batch, so markers and offsets that
//! compaction removed never stall a reader or show as records.

use crate::log::batch::{self, BatchHeader, RecordIter};
use crate::record::RecordView;

use super::partition::Chunk;

impl Chunk {
    /// The records of the chunk a reader may see, in offset order.
    pub fn visible(&self) -> Visible<'_> {
        Visible {
            chunk: self,
            pos: 0,
            current: None,
            next: self.from,
        }
    }

    /// Whether the chunk reached the end it may be read to (nothing more is visible now).
    pub fn reached_limit(&self, next: u64) -> bool {
        next >= self.limit
    }
}

/// Iterator over the visible records of a chunk.
pub struct Visible<'a> {
    chunk: &'a Chunk,
    /// Where the next batch header starts in the chunk's bytes.
    pos: usize,
    /// The batch being walked, and the offset after it.
    current: Option<(RecordIter<'a>, u64)>,
    next: u64,
}

impl Visible<'_> {
    /// The offset to read from next.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Whether a batch of this header is one a reader skips whole.
    fn skipped(&self, h: &BatchHeader) -> bool {
        if h.is_control() {
            return true;
        }
        h.is_transactional()
            && self
                .chunk
                .aborted
                .iter()
                .any(|a| a.covers(h.producer_id, h.base_offset))
    }
}

impl<'a> Iterator for Visible<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        let bytes = &self.chunk.bytes;
        loop {
            if let Some((records, end)) = &mut self.current {
                match records.next() {
                    Some(Ok(r)) if r.offset < self.chunk.from => continue,
                    Some(Ok(r)) => {
                        self.next = r.offset + 1;
                        return Some(r);
                    }
                    Some(Err(_)) => {
                        // Verified when it was written: a bad record here is a bug; go past it.
                        tracing::error!(offset = self.next, "undecodable record in a verified batch");
                        self.next = self.next.max(*end);
                        self.current = None;
                    }
                    None => {
                        self.next = self.next.max(*end);
                        self.current = None;
                    }
                }
                continue;
            }
            if self.pos >= bytes.len() {
                return None;
            }
            let rest = &bytes[self.pos..];
            let Ok(h) = BatchHeader::parse(rest) else { return None };
            if h.base_offset >= self.chunk.limit {
                return None;
            }
            self.pos += h.total_bytes;
            if h.next_offset() <= self.chunk.from {
                continue;
            }
            if self.skipped(&h) {
                self.next = self.next.max(h.next_offset());
                continue;
            }
            let Ok(records) = batch::records(rest) else { return None };
            self.current = Some((records, h.next_offset()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::AbortedTxn;
    use crate::log::batch::{BatchKind, Producer, encode, encode_kind};
    use crate::record::NewRecord;

    fn recs(values: &[&str]) -> Vec<NewRecord> {
        values.iter().map(|v| NewRecord::with_value(v.as_bytes())).collect()
    }

    fn values(c: &Chunk) -> (Vec<(u64, String)>, u64) {
        let mut it = c.visible();
        let got = it
            .by_ref()
            .map(|r| (r.offset, String::from_utf8(r.value_bytes().to_vec()).unwrap()))
            .collect();
        (got, it.next_offset())
    }

    #[test]
    fn markers_aborted_transactions_and_the_limit_are_skipped_and_offsets_go_past_them() {
        let p = Producer { id: 7, epoch: 0 };
        let q = Producer { id: 8, epoch: 0 };
        let mut bytes = Vec::new();
        encode(&mut bytes, 0, &recs(&["a", "b"]), 0); // 0, 1
        encode_kind(&mut bytes, 2, &recs(&["t1"]), 0, BatchKind::Transactional(p)); // 2
        encode_kind(&mut bytes, 3, &recs(&["x1", "x2"]), 0, BatchKind::Transactional(q)); // 3, 4
        encode_kind(
            &mut bytes,
            5,
            &[],
            0,
            BatchKind::Marker {
                producer: p,
                commit: true,
            },
        ); // 5
        encode_kind(
            &mut bytes,
            6,
            &[],
            0,
            BatchKind::Marker {
                producer: q,
                commit: false,
            },
        ); // 6
        encode(&mut bytes, 7, &recs(&["c"]), 0); // 7
        let aborted = vec![AbortedTxn {
            producer_id: 8,
            first_offset: 3,
            last_offset: 6,
        }];
        let chunk = Chunk {
            bytes: bytes.clone(),
            from: 0,
            limit: 8,
            aborted,
        };
        let (got, next) = values(&chunk);
        assert_eq!(
            got,
            [(0, "a".into()), (1, "b".into()), (2, "t1".into()), (7, "c".into())]
        );
        assert_eq!(next, 8);
        // From the middle of a batch; ending on markers moves past them.
        let chunk = Chunk {
            bytes: bytes.clone(),
            from: 1,
            limit: 7,
            aborted: Vec::new(),
        };
        let (got, next) = values(&chunk);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(next, 7, "markers are walked past, never shown");
        // A limit inside the log (an open transaction): nothing at or past it.
        let chunk = Chunk {
            bytes,
            from: 0,
            limit: 3,
            aborted: Vec::new(),
        };
        let (got, next) = values(&chunk);
        assert_eq!(got.len(), 3);
        assert_eq!(next, 3);
    }

    #[test]
    fn a_reader_that_stops_early_goes_on_from_the_next_record() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 10, &recs(&["a", "b", "c"]), 0);
        let chunk = Chunk {
            bytes,
            from: 10,
            limit: 13,
            aborted: Vec::new(),
        };
        let mut it = chunk.visible();
        assert_eq!(it.next().unwrap().offset, 10);
        assert_eq!(it.next_offset(), 11);
    }
}
