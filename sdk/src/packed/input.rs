//! The input side: records of a batch, read in place and written.

use super::{Cursor, Headers, PackError, VERSION, put_headers, put_key, put_len, put_u32};

/// A record of an input batch, borrowed from the batch buffer.
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The input topic.
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Headers<'a>,
}

impl<'a> Record<'a> {
    /// The value as UTF-8 text.
    ///
    /// ```
    /// # let mut w = weir_sdk::packed::BatchWriter::new("t", 0, 0);
    /// # w.push(0, 0, None, b"hi", []);
    /// # let b = w.finish();
    /// let r = weir_sdk::packed::BatchReader::new(&b).unwrap().next().unwrap().unwrap();
    /// assert_eq!(r.value_str(), Ok("hi"));
    /// ```
    pub fn value_str(&self) -> Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(self.value)
    }

    /// The key as UTF-8 text, if there is a key.
    ///
    /// ```
    /// # let mut w = weir_sdk::packed::BatchWriter::new("t", 0, 0);
    /// # w.push(0, 0, Some(b"k"), b"v", []);
    /// # let b = w.finish();
    /// let r = weir_sdk::packed::BatchReader::new(&b).unwrap().next().unwrap().unwrap();
    /// assert_eq!(r.key_str(), Some(Ok("k")));
    /// ```
    pub fn key_str(&self) -> Option<Result<&'a str, core::str::Utf8Error>> {
        self.key.map(core::str::from_utf8)
    }
}

/// Reads an input batch in place: [`BatchReader::new`] checks the header, iteration yields
/// records (or one error, then stops).
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
pub struct BatchReader<'a> {
    cursor: Cursor<'a>,
    topic: &'a str,
    partition: u32,
    left: u32,
}

impl<'a> BatchReader<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, PackError> {
        let mut cursor = Cursor { buf, pos: 0 };
        if cursor.u32("version")? != VERSION {
            return Err(PackError {
                at: 0,
                what: "unknown packed batch version",
            });
        }
        let n = cursor.u32("topic length")? as usize;
        let topic = cursor.str(n, "topic")?;
        let partition = cursor.u32("partition")?;
        let left = cursor.u32("record count")?;
        Ok(Self {
            cursor,
            topic,
            partition,
            left,
        })
    }

    /// Records not yet read.
    pub fn remaining(&self) -> usize {
        self.left as usize
    }

    fn read(&mut self) -> Result<Record<'a>, PackError> {
        let c = &mut self.cursor;
        let offset = c.u64("offset")?;
        let timestamp = c.i64("timestamp")?;
        let (key, value, headers) = c.payload()?;
        Ok(Record {
            topic: self.topic,
            partition: self.partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<Record<'a>, PackError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = self.read();
        self.left = if r.is_ok() { self.left - 1 } else { 0 };
        Some(r)
    }
}

/// Builds an input batch (the broker's side, and the SDK's test harness).
///
/// ```
/// use weir_sdk::packed::{BatchReader, BatchWriter};
/// let mut w = BatchWriter::new("orders", 0, 64);
/// w.push(7, 1_700_000_000_000, Some(b"k"), b"v", [("h", &b"1"[..])]);
/// let bytes = w.finish();
/// let r = BatchReader::new(&bytes).unwrap().next().unwrap().unwrap();
/// assert_eq!((r.topic, r.offset, r.value, r.headers.get("h")), ("orders", 7, &b"v"[..], Some(&b"1"[..])));
/// ```
pub struct BatchWriter {
    buf: Vec<u8>,
    count_at: usize,
    count: u32,
}

impl BatchWriter {
    pub fn new(topic: &str, partition: u32, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 16 + topic.len());
        put_u32(&mut buf, VERSION);
        put_len(&mut buf, topic.len());
        buf.extend_from_slice(topic.as_bytes());
        put_u32(&mut buf, partition);
        let count_at = buf.len();
        put_u32(&mut buf, 0);
        Self {
            buf,
            count_at,
            count: 0,
        }
    }

    pub fn push<'h>(
        &mut self,
        offset: u64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let b = &mut self.buf;
        b.reserve(28 + key.map_or(0, <[u8]>::len) + value.len());
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&timestamp.to_le_bytes());
        put_key(b, key);
        put_len(b, value.len());
        let count_at = b.len();
        put_u32(b, 0);
        if let Some(k) = key {
            b.extend_from_slice(k);
        }
        b.extend_from_slice(value);
        put_headers(b, count_at, headers);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}
